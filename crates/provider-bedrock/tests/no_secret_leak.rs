//! Every log line at trace level (this crate's, aws-sigv4's, reqwest's,
//! hyper's), the errors and the provider's `Debug` are searched for the
//! secret key and the session token. Alone in its binary: it installs the
//! global subscriber.

use embeddings_bedrock::BedrockEmbedder;
use embeddings_bedrock::testkit::{BedrockDialect, BedrockFixture, TestCredentials};
use embeddings_core::EmbedRequest;
use embeddings_testkit::{FakeServer, Fixture, LeakCheck};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_and_token_are_never_logged_displayed_or_debugged() {
    let mut check = LeakCheck::install();
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
        check.exercise(&p, &[EmbedRequest::new(&["a"])]).await;
    }
    assert!(check.logs().contains("InvokeModel"), "nothing was logged");
    assert!(
        check
            .shown()
            .iter()
            .any(|s| s.contains("InvalidSignatureException")),
        "{:?}",
        check.shown()
    );
    for secret in [BedrockFixture::SECRET, BedrockFixture::SESSION_TOKEN] {
        check.assert_hidden(secret, 4..16);
    }
}
