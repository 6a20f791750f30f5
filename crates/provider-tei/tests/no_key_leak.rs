//! Every log line at trace level (this crate's, reqwest's, hyper's), the
//! errors and the provider's `Debug` are searched for the key. Alone in its
//! binary: it installs the global subscriber.

#![cfg(feature = "testkit")]

use std::sync::{Arc, Mutex};

use embeddings_core::Embedder;
use embeddings_tei::TeiEmbedder;
use embeddings_tei::testkit::{TeiDialect, TeiFixture};
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
async fn the_key_is_never_logged_displayed_or_debugged() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut shown = Vec::new();
    // A server that accepts the key, then one that refuses it.
    for d in [
        TeiDialect::new(),
        TeiDialect::new().api_key("another-key-0123456789"),
    ] {
        let s = FakeServer::builder().dialect(d).start().await.unwrap();
        let p = TeiEmbedder::from_config(&TeiFixture.config(&s.base_url())).unwrap();
        shown.push(format!("{p:?}"));
        for r in [
            p.prepare().await.map(drop),
            p.embed_documents(&["a", "b"]).await.map(drop),
            p.health_check().await,
        ] {
            if let Err(e) = r {
                shown.push(format!("{e} {e:?}"));
            }
        }
    }
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("POST /embed") || logs.contains("/info"),
        "nothing was logged"
    );
    let key = TeiFixture::KEY;
    for text in shown.iter().chain([&logs]) {
        assert!(!text.contains(key), "the key leaked into: {text}");
        assert!(
            !text.contains(&key[4..16]),
            "part of the key leaked into: {text}"
        );
    }
}
