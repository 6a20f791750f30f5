//! The key is searched for in every log line at trace level (this crate's,
//! the toolkit's, reqwest's and hyper's), in errors and in the provider's
//! `Debug`. Alone in its binary: it installs the global subscriber.

use std::sync::{Arc, Mutex};

use embeddings_core::{EmbedRequest, Embedder, OutputType};
use embeddings_mistral::MistralEmbedder;
use embeddings_mistral::testkit::{MISTRAL_EMBEDDINGS, MistralDialect, MistralFixture};
use embeddings_testkit::{FakeServer, Fault, FaultAction, Fixture, StatusFault};

/// Every byte written by the subscriber.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_in_trace_logs_errors_or_debug() {
    let sink = Sink::default();
    let writer = sink.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();
    let mut seen = Vec::new();
    // A server that takes the key; one that refuses it; one that fails.
    for (dialect, fault) in [
        (MistralDialect::default().api_key(MistralFixture::KEY), None),
        (
            MistralDialect::default().api_key("mistral-some-other-key-000000"),
            None,
        ),
        (MistralDialect::default(), Some(500)),
    ] {
        let s = FakeServer::builder()
            .dialect(dialect)
            .start()
            .await
            .unwrap();
        if let Some(status) = fault {
            s.set_faults(vec![
                Fault::new(FaultAction::Status(StatusFault::new(status))).on(MISTRAL_EMBEDDINGS),
            ]);
        }
        let e = MistralEmbedder::from_config(&MistralFixture.config(&s.base_url())).unwrap();
        seen.push(format!("{e:?}"));
        for r in [
            e.embed_documents(&["a", "b"]).await.map(drop),
            e.embed(EmbedRequest::new(&["c"]).with_output_type(OutputType::Int8))
                .await
                .map(drop),
            e.health_check().await,
        ] {
            if let Err(err) = r {
                seen.push(format!("{err} {err:?}"));
            }
        }
    }
    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("POST embeddings"), "nothing was logged");
    assert!(
        seen.len() > 3,
        "the refusing servers produced errors: {seen:?}"
    );
    let key = MistralFixture::KEY;
    for text in seen.iter().chain([&logs]) {
        assert!(!text.contains(key), "the key leaked into: {text}");
        assert!(
            !text.contains(&key[5..17]),
            "part of the key leaked into: {text}"
        );
    }
}
