//! Every log line at trace level (this crate's, aws-sigv4's, reqwest's,
//! hyper's), the errors and the provider's `Debug` are searched for the
//! secret key and the session token. Alone in its binary: it installs the
//! global subscriber.

use std::sync::{Arc, Mutex};

use embeddings_bedrock::BedrockEmbedder;
use embeddings_bedrock::testkit::{BedrockDialect, BedrockFixture, TestCredentials};
use embeddings_core::Embedder;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_and_token_are_never_logged_displayed_or_debugged() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut shown = Vec::new();
    // A server that accepts the credentials, and one that knows other ones.
    let other = TestCredentials {
        access_key_id: BedrockFixture::ACCESS_KEY_ID.into(),
        secret_access_key: "anotherSecret/0123456789".into(),
        session_token: Some(BedrockFixture::SESSION_TOKEN.into()),
    };
    for d in [
        BedrockDialect::default(),
        BedrockDialect::new(other, BedrockFixture::REGION),
    ] {
        let s = FakeServer::builder().dialect(d).start().await.unwrap();
        let p = BedrockEmbedder::from_config(&BedrockFixture.config(&s.base_url())).unwrap();
        shown.push(format!("{p:?}"));
        for r in [
            p.embed_documents(&["a"]).await.map(drop),
            p.health_check().await,
        ] {
            if let Err(e) = r {
                shown.push(format!("{e} {e:?}"));
            }
        }
    }
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("InvokeModel"), "nothing was logged");
    assert!(
        shown
            .iter()
            .any(|s| s.contains("InvalidSignatureException")),
        "{shown:?}"
    );
    for secret in [BedrockFixture::SECRET, BedrockFixture::SESSION_TOKEN] {
        for text in shown.iter().chain([&logs]) {
            assert!(!text.contains(secret), "a secret leaked into: {text}");
            assert!(
                !text.contains(&secret[4..16]),
                "part of a secret leaked into: {text}"
            );
        }
    }
}
