//! All logs at trace level (this crate's, reqwest's, hyper's), error
//! `Display`/`Debug` and the embedder's `Debug` are captured and searched
//! for the API key. Alone in its binary: it installs the global subscriber.

use std::sync::{Arc, Mutex};

use embeddings_core::{Embedder, ErrorKind};
use embeddings_openai::OpenAiEmbedder;
use embeddings_testkit::conformance;
use embeddings_testkit::{Fault, FaultAction, Route, StatusFault, Trigger};

mod common;

use common::{KEY, MODEL, config, server};

/// A `MakeWriter` into a shared buffer.
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
    // Global (this binary holds this one test): every thread, every task.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let s = server().await;
    let mut texts = Vec::new();
    // Core's `Config` Debug redacts `api_key` but prints provider sections
    // as they are, so header values are checked in what this crate prints.
    let mut core_texts = Vec::new();
    let c = config(
        &s,
        MODEL,
        Some(8),
        "[openai.headers]\nX-Secret = \"hdr-secret-value\"\n",
    );
    core_texts.push(format!("{c:?}"));
    let e = OpenAiEmbedder::from_config(&c).unwrap();
    texts.push(format!("{e:?}"));
    e.embed_documents(&["hello", "world"]).await.unwrap();
    e.health_check().await.unwrap();

    // Errors of every shape, with the key echoed back by the server.
    s.set_faults(vec![
        Fault::new(FaultAction::Status(StatusFault {
            message: Some(format!("Incorrect API key provided: {KEY}. Bad key.")),
            ..StatusFault::new(401)
        }))
        .on(Route::OpenaiEmbeddings)
        .when(Trigger::Nth(1)),
    ]);
    for action in [
        None,
        Some(FaultAction::Reset),
        Some(FaultAction::MalformedJson),
    ] {
        if let Some(a) = action {
            s.set_faults(vec![Fault::new(a).on(Route::OpenaiEmbeddings)]);
        }
        let err = e.embed_query("x").await.unwrap_err();
        texts.push(err.to_string());
        texts.push(format!("{err:?}"));
        texts.push(format!("{:?}", std::error::Error::source(&err)));
    }
    let err = conformance::check_error(&e, ErrorKind::InvalidResponse, Some(KEY)).await;
    texts.push(format!("{err:?}"));

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("POST embeddings"),
        "logs were captured: {logs}"
    );
    assert!(logs.len() > 500, "trace-level logs were captured");
    texts.push(logs);
    let secret_part = &KEY[10..];
    for t in &core_texts {
        assert!(
            !t.contains(KEY) && !t.contains(secret_part),
            "the key leaked: {t}"
        );
    }
    for t in &texts {
        assert!(!t.contains(KEY), "the key leaked: {t}");
        assert!(!t.contains(secret_part), "part of the key leaked: {t}");
        assert!(
            !t.contains("hdr-secret-value"),
            "a header value leaked: {t}"
        );
    }
}
