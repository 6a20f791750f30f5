//! What the OpenAI provider's test binaries share: the fake server with a
//! key, and a configuration pointing at it.

use embeddings_core::{Config, SecretString};
use embeddings_testkit::{FakeServer, FakeServerConfig};

/// The key the fake server requires (and that must never leak).
pub(crate) const KEY: &str = "sk-test-0123456789abcdefSECRET";
/// The default model.
pub(crate) const MODEL: &str = "text-embedding-3-small";

/// A fake server that requires [`KEY`].
pub(crate) async fn server() -> FakeServer {
    FakeServer::start(FakeServerConfig {
        api_key: Some(KEY.to_owned()),
        ..FakeServerConfig::default()
    })
    .await
    .expect("fake server starts")
}

/// An `openai` configuration for `server`, with [`KEY`], `model`, optional
/// `dimensions`, and `extra` TOML appended.
pub(crate) fn config(server: &FakeServer, model: &str, dims: Option<usize>, extra: &str) -> Config {
    let text = format!(
        "provider = \"openai\"\nmodel = \"{model}\"\nbase_url = \"{}\"\n{}{extra}",
        server.openai_base_url(),
        dims.map(|d| format!("dimensions = {d}\n"))
            .unwrap_or_default(),
    );
    let mut c = Config::from_toml_str(&text).expect("config parses");
    c.api_key = Some(SecretString::from(KEY));
    c
}
