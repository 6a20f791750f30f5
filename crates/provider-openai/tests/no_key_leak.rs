//! All logs at trace level (this crate's, reqwest's, hyper's), error
//! `Display`/`Debug` and the embedder's `Debug` are captured and searched
//! for the API key. Alone in its binary: it installs the global subscriber.

use embeddings_core::{Embedder, ErrorKind};
use embeddings_openai::OpenAiEmbedder;
use embeddings_testkit::{Fault, FaultAction, Route, StatusFault, Trigger};
use embeddings_testkit::{LeakCheck, conformance};

mod common;

use common::{KEY, MODEL, config, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_never_logged_displayed_or_debugged() {
    // Global (this binary holds this one test): every thread, every task.
    let mut check = LeakCheck::install();

    let s = server().await;
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
    check.debug(&e);
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
        check.error(&err);
        check.debug(&std::error::Error::source(&err));
    }
    let err = conformance::check_error(&e, ErrorKind::InvalidResponse, Some(KEY)).await;
    check.error(&err);

    let logs = check.logs();
    assert!(
        logs.contains("POST embeddings"),
        "logs were captured: {logs}"
    );
    assert!(logs.len() > 500, "trace-level logs were captured");
    let secret_part = &KEY[10..];
    for t in &core_texts {
        assert!(
            !t.contains(KEY) && !t.contains(secret_part),
            "the key leaked: {t}"
        );
    }
    check.assert_hidden(KEY, 10..KEY.len());
    check.assert_hidden("hdr-secret-value", 0..16);
}
