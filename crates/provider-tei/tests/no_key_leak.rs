//! Every log line at trace level (this crate's, reqwest's, hyper's), the
//! errors and the provider's `Debug` are searched for the key. Alone in its
//! binary: it installs the global subscriber.

#![cfg(feature = "testkit")]

use embeddings_core::EmbedRequest;
use embeddings_tei::TeiEmbedder;
use embeddings_tei::testkit::{TeiDialect, TeiFixture};
use embeddings_testkit::{FakeServer, Fixture, LeakCheck};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_is_never_logged_displayed_or_debugged() {
    let mut check = LeakCheck::install();
    // A server that accepts the key, then one that refuses it.
    for d in [
        TeiDialect::new(),
        TeiDialect::new().api_key("another-key-0123456789"),
    ] {
        let s = FakeServer::builder().dialect(d).start().await.unwrap();
        let p = TeiEmbedder::from_config(&TeiFixture.config(&s.base_url())).unwrap();
        // prepare (`/info`, the probe), an embedding, `/health`.
        check.exercise(&p, &[EmbedRequest::new(&["a", "b"])]).await;
    }
    let logs = check.logs();
    assert!(
        logs.contains("POST /embed") || logs.contains("/info"),
        "nothing was logged"
    );
    check.assert_hidden(TeiFixture::KEY, 4..16);
}
