//! Every log line at trace level (this crate's, reqwest's, hyper's), the
//! errors and the provider's `Debug` are searched for the key and the
//! Vertex token. Alone in its binary: it installs the global subscriber.

use embeddings_core::EmbedRequest;
use embeddings_gemini::GeminiEmbedder;
use embeddings_gemini::testkit::{GeminiDialect, GeminiFixture};
use embeddings_testkit::{FakeServer, Fixture, LeakCheck};

const TOKEN: &str = "ya29.no-leak-token-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_and_token_are_never_logged_displayed_or_debugged() {
    let mut check = LeakCheck::install();
    // A server that accepts the key, one that refuses it, and Vertex.
    for d in [
        GeminiDialect::default(),
        GeminiDialect::default().api_key("AIzaAnotherKey0123456789"),
        GeminiDialect::default().access_token("ya29.another-token-0123456789"),
    ] {
        let s = FakeServer::builder().dialect(d).start().await.unwrap();
        let mut configs = vec![GeminiFixture.config(&s.base_url())];
        let mut vertex = GeminiFixture.config(&s.base_url());
        vertex.sections.insert(
            "gemini".into(),
            serde_json::json!({"vertex": {"project": "p", "access_token": TOKEN}}),
        );
        configs.push(vertex);
        for c in configs {
            let p = GeminiEmbedder::from_config(&c).unwrap();
            check.exercise(&p, &[EmbedRequest::new(&["a", "b"])]).await;
        }
    }
    assert!(
        check.logs().contains("batchEmbedContents"),
        "nothing was logged"
    );
    assert!(
        check.shown().iter().any(|s| s.contains("Authentication")),
        "{:?}",
        check.shown()
    );
    for secret in [GeminiFixture::KEY, TOKEN] {
        check.assert_hidden(secret, 5..17);
    }
}
