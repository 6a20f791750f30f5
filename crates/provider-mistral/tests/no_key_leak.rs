//! The key is searched for in every log line at trace level (this crate's,
//! the toolkit's, reqwest's and hyper's), in errors and in the provider's
//! `Debug`. Alone in its binary: it installs the global subscriber.

use embeddings_core::{EmbedRequest, OutputType};
use embeddings_mistral::MistralEmbedder;
use embeddings_mistral::testkit::{MISTRAL_EMBEDDINGS, MistralDialect, MistralFixture};
use embeddings_testkit::{FakeServer, Fault, FaultAction, Fixture, LeakCheck, StatusFault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_in_trace_logs_errors_or_debug() {
    let mut check = LeakCheck::install();
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
        check
            .exercise(
                &e,
                &[
                    EmbedRequest::new(&["a", "b"]),
                    EmbedRequest::new(&["c"]).with_output_type(OutputType::Int8),
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
    check.assert_hidden(MistralFixture::KEY, 5..17);
}
