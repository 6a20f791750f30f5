//! The key is searched for in every log line at trace level (this crate's,
//! the toolkit's, reqwest's and hyper's), in errors and in the provider's
//! `Debug`. Alone in its binary: it installs the global subscriber.

use embeddings_core::{EmbedRequest, OutputType};
use embeddings_jina::JinaEmbedder;
use embeddings_jina::testkit::{JINA_EMBEDDINGS, JinaDialect, JinaFixture};
use embeddings_testkit::{FakeServer, Fault, FaultAction, Fixture, LeakCheck, StatusFault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_in_trace_logs_errors_or_debug() {
    let mut check = LeakCheck::install();
    // A server that takes the key; one that refuses it; one that fails.
    for (dialect, fault) in [
        (JinaDialect::default().api_key(JinaFixture::KEY), None),
        (
            JinaDialect::default().api_key("jina_some0other0key0000000000"),
            None,
        ),
        (JinaDialect::default(), Some(500)),
    ] {
        let s = FakeServer::builder()
            .dialect(dialect)
            .start()
            .await
            .unwrap();
        if let Some(status) = fault {
            s.set_faults(vec![
                Fault::new(FaultAction::Status(StatusFault::new(status))).on(JINA_EMBEDDINGS),
            ]);
        }
        let e = JinaEmbedder::from_config(&JinaFixture.config(&s.base_url())).unwrap();
        check
            .exercise(
                &e,
                &[
                    EmbedRequest::new(&["a", "b"]),
                    EmbedRequest::new(&["c"]).with_output_type(OutputType::Binary),
                ],
            )
            .await;
    }
    assert!(
        check.logs().contains("POST embeddings"),
        "nothing was logged"
    );
    assert!(
        check.shown().len() > 3,
        "the refusing servers produced errors: {:?}",
        check.shown()
    );
    check.assert_hidden(JinaFixture::KEY, 5..17);
}
