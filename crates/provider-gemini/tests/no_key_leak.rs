//! Every log line at trace level (this crate's, reqwest's, hyper's), the
//! errors and the provider's `Debug` are searched for the key and the
//! Vertex token. Alone in its binary: it installs the global subscriber.

use std::sync::{Arc, Mutex};

use embeddings_core::Embedder;
use embeddings_gemini::GeminiEmbedder;
use embeddings_gemini::testkit::{GeminiDialect, GeminiFixture};
use embeddings_testkit::{FakeServer, Fixture};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

const TOKEN: &str = "ya29.no-leak-token-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_and_token_are_never_logged_displayed_or_debugged() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut shown = Vec::new();
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
            shown.push(format!("{p:?}"));
            for r in [
                p.embed_documents(&["a", "b"]).await.map(drop),
                p.health_check().await,
            ] {
                if let Err(e) = r {
                    shown.push(format!("{e} {e:?}"));
                }
            }
        }
    }
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("batchEmbedContents"), "nothing was logged");
    assert!(
        shown.iter().any(|s| s.contains("Authentication")),
        "{shown:?}"
    );
    for secret in [GeminiFixture::KEY, TOKEN] {
        for text in shown.iter().chain([&logs]) {
            assert!(!text.contains(secret), "a secret leaked into: {text}");
            assert!(
                !text.contains(&secret[5..17]),
                "part of a secret leaked into: {text}"
            );
        }
    }
}
