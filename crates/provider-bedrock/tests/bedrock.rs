//! The Bedrock provider against its own dialect (which verifies every
//! request's SigV4 signature): Titan and Cohere rows, types and dimensions
//! on the wire, limits, every exception, the conformance suite.

use embeddings_bedrock::testkit::{
    BEDROCK_INVOKE, BedrockDialect, BedrockFixture, TestCredentials,
};
use embeddings_bedrock::{BedrockEmbedder, COHERE_MAX_TEXTS};
use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, ErrorKind, InputType, OutputType,
};
use embeddings_testkit::{FakeServer, Fault, FaultAction, Fixture, StatusFault, conformance};

async fn server() -> FakeServer {
    FakeServer::builder()
        .dialect(BedrockDialect::default())
        .start()
        .await
        .unwrap()
}

fn config(server: &FakeServer) -> Config {
    BedrockFixture.config(&server.base_url())
}

fn cohere_config(server: &FakeServer, model: &str) -> Config {
    let mut c = config(server);
    c.model = Some(model.into());
    c.dimensions = None;
    c
}

fn want(model: &str, texts: &[&str], dim: usize) -> Embeddings {
    Embeddings::from_rows(
        dim,
        texts.iter().map(|t| embeddings_mock::vector(model, t, dim)),
    )
    .unwrap()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
}

#[tokio::test]
async fn titan_conformance_suite() {
    let s = server().await;
    let e = BedrockEmbedder::from_config(&config(&s)).unwrap();
    conformance::run_fixture(&e, &BedrockFixture, &s, false).await;
    // Every request of the suite carried a signature the dialect verified,
    // and the session token, signed.
    let log = s.requests();
    assert!(!log.is_empty());
    for r in &log {
        let auth = r.header("authorization").unwrap();
        assert!(
            auth.starts_with(&format!(
                "AWS4-HMAC-SHA256 Credential={}/",
                BedrockFixture::ACCESS_KEY_ID
            )),
            "{auth}"
        );
        assert!(auth.contains("/us-west-2/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, Signature="), "{auth}");
        assert_eq!(
            r.header("x-amz-security-token"),
            Some(BedrockFixture::SESSION_TOKEN)
        );
    }
}

/// Cohere Embed on Bedrock, through the same suite.
#[derive(Debug)]
struct CohereOnBedrock;

impl Fixture for CohereOnBedrock {
    fn provider(&self) -> &'static str {
        "bedrock"
    }
    fn dialects(&self) -> Vec<std::sync::Arc<dyn embeddings_testkit::Dialect>> {
        vec![std::sync::Arc::new(BedrockDialect::default())]
    }
    fn config(&self, base_url: &str) -> Config {
        let mut c = BedrockFixture.config(base_url);
        c.model = Some("cohere.embed-v4:0".into());
        c.dimensions = Some(256);
        c
    }
    fn model(&self) -> &'static str {
        "cohere.embed-v4:0"
    }
    fn dimension(&self) -> usize {
        256
    }
    fn embedding_route(&self) -> embeddings_testkit::Route {
        BEDROCK_INVOKE
    }
    fn input_types(&self) -> &'static [InputType] {
        embeddings_bedrock::COHERE_INPUT_TYPES
    }
    fn output_types(&self) -> &'static [OutputType] {
        embeddings_bedrock::COHERE_OUTPUT_TYPES
    }
    fn secret(&self) -> Option<&'static str> {
        Some(BedrockFixture::SECRET)
    }
}

#[tokio::test]
async fn cohere_conformance_suite() {
    let s = server().await;
    let e = BedrockEmbedder::from_config(&CohereOnBedrock.config(&s.base_url())).unwrap();
    conformance::run_fixture(&e, &CohereOnBedrock, &s, false).await;
}

#[tokio::test]
async fn titan_rows_dimensions_and_binary_on_the_wire() {
    let s = server().await;
    let e = BedrockEmbedder::from_config(&config(&s)).unwrap();
    let got = e.embed_documents(&["déjà vu 🌍"]).await.unwrap();
    assert!(close(
        got.row(0),
        &embeddings_mock::vector(BedrockFixture::MODEL, "déjà vu 🌍", 512)
    ));
    let r = &s.requests()[0];
    assert_eq!(r.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
    assert_eq!(
        r.body,
        serde_json::json!({"inputText": "déjà vu 🌍", "dimensions": 512, "normalize": true, "embeddingTypes": ["float"]})
    );
    assert_eq!(
        got.usage().map(|u| u.prompt_tokens),
        Some(embeddings_testkit::count_tokens("déjà vu 🌍") as u64)
    );
    for t in [OutputType::Binary, OutputType::Ubinary] {
        s.reset_log();
        let got = e
            .embed(EmbedRequest::new(&["alpha"]).with_output_type(t))
            .await
            .unwrap();
        let expected = want(BedrockFixture::MODEL, &["alpha"], 512)
            .quantized(t)
            .unwrap();
        assert_eq!(got.row_bytes(0), expected.row_bytes(0), "{t}");
        assert_eq!(got.dim(), 512);
        assert_eq!(
            s.requests()[0].body["embeddingTypes"],
            serde_json::json!(["binary"])
        );
    }
    // int8 is not Titan's: refused, naming provider and type, no request.
    s.reset_log();
    let err = e
        .embed(EmbedRequest::new(&["a"]).with_output_type(OutputType::Int8))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("bedrock") && err.to_string().contains("int8"),
        "{err}"
    );
    assert!(s.requests().is_empty());
    // Two texts in one call: refused without a request (the layers split).
    let err = e.embed_documents(&["a", "b"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(s.requests().is_empty());
}

#[tokio::test]
async fn a_batch_of_10_is_10_requests_of_one_text_each_row_by_index() {
    let s = server().await;
    let e = BedrockEmbedder::from_config(&config(&s)).unwrap();
    let owned: Vec<String> = (0..10).map(|i| format!("text number {i}")).collect();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let rows = conformance::embed_within_limits(&e, EmbedRequest::new(&texts))
        .await
        .unwrap();
    let expected = want(BedrockFixture::MODEL, &texts, 512);
    for i in 0..10 {
        assert!(close(rows.row(i), expected.row(i)), "row {i}");
    }
    let log = s.requests();
    assert_eq!(log.len(), 10);
    for (i, r) in log.iter().enumerate() {
        assert_eq!(r.body["inputText"], texts[i]);
        assert_eq!(r.inputs, Some(1));
    }
}

#[tokio::test]
async fn cohere_input_types_output_types_and_96_per_call() {
    let s = server().await;
    let e = BedrockEmbedder::from_config(&cohere_config(&s, "cohere.embed-english-v3")).unwrap();
    assert_eq!(e.info().max_batch_size, COHERE_MAX_TEXTS);
    assert_eq!(e.info().concurrency, 16, "a hosted service");
    let texts = ["alpha", "beta", "gamma δ"];
    for t in OutputType::ALL {
        s.reset_log();
        let got = e
            .embed(EmbedRequest::new(&texts).with_output_type(t))
            .await
            .unwrap();
        let expected = want("cohere.embed-english-v3", &texts, 1024)
            .quantized(t)
            .unwrap();
        for i in 0..texts.len() {
            assert_eq!(got.row_bytes(i), expected.row_bytes(i), "{t} row {i}");
        }
        assert_eq!(s.requests()[0].output_type, Some(t));
    }
    for (t, wire) in [
        (InputType::Document, "search_document"),
        (InputType::Query, "search_query"),
        (InputType::Classification, "classification"),
        (InputType::Clustering, "clustering"),
    ] {
        s.reset_log();
        e.embed(EmbedRequest::new(&["x"]).with_input_type(t))
            .await
            .unwrap();
        assert_eq!(s.requests()[0].body["input_type"], wire);
        assert_eq!(s.requests()[0].body["truncate"], "NONE");
    }
    s.reset_log();
    let err = e
        .embed(EmbedRequest::new(&["x"]).with_input_type(InputType::Similarity))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("bedrock") && err.to_string().contains("similarity"),
        "{err}"
    );
    assert!(s.requests().is_empty());
    let owned: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
    let many: Vec<&str> = owned.iter().map(String::as_str).collect();
    assert_eq!(
        e.embed_documents(&many[..97]).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let rows = conformance::embed_within_limits(&e, EmbedRequest::new(&many))
        .await
        .unwrap();
    assert!(close(
        rows.row(199),
        &embeddings_mock::vector("cohere.embed-english-v3", "t199", 1024)
    ));
    let sizes: Vec<usize> = s.requests().iter().map(|r| r.inputs.unwrap()).collect();
    assert_eq!(sizes, [96, 96, 8]);
    // Over-long input: ContextLengthExceeded, unless truncating.
    let long = "word ".repeat(600);
    let err = e.embed_documents(&[long.as_str()]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded, "{err}");
}

#[tokio::test]
async fn every_error_status_and_exception_is_mapped() {
    let s = server().await;
    let e = BedrockEmbedder::from_config(&config(&s)).unwrap();
    for (status, exception, kind, retryable) in [
        (400, None, ErrorKind::InvalidInput, false),
        (401, None, ErrorKind::Authentication, false),
        (403, None, ErrorKind::PermissionDenied, false),
        (404, None, ErrorKind::NotFound, false),
        (408, None, ErrorKind::Timeout, true),
        (424, None, ErrorKind::Unavailable, true),
        (429, None, ErrorKind::RateLimited, true),
        (
            429,
            Some("ModelNotReadyException"),
            ErrorKind::Unavailable,
            true,
        ),
        (
            400,
            Some("ServiceQuotaExceededException"),
            ErrorKind::QuotaExceeded,
            false,
        ),
        (
            403,
            Some("ExpiredTokenException"),
            ErrorKind::Authentication,
            false,
        ),
        (500, None, ErrorKind::Unavailable, true),
        (503, None, ErrorKind::Unavailable, true),
    ] {
        let mut f = StatusFault::new(status);
        f.error_type = exception.map(str::to_owned);
        s.set_faults(vec![Fault::new(FaultAction::Status(f)).on(BEDROCK_INVOKE)]);
        let err = e.embed_documents(&["x"]).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{status} {exception:?}: {err}");
        assert_eq!(err.is_retryable(), retryable, "{status} {exception:?}");
        assert_eq!(err.status(), Some(status));
    }
    s.set_faults(vec![]);
    let long = "word ".repeat(9000);
    let err = e.embed_documents(&[long.as_str()]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded, "{err}");
    let mut c = config(&s);
    c.model = Some("cohere.embed-v9".into());
    c.dimensions = None;
    let err = BedrockEmbedder::from_config(&c)
        .unwrap()
        .embed_documents(&["x"])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn a_wrong_secret_or_token_is_the_services_403_and_shows_no_secret() {
    let s = server().await;
    for (secret, token, exception) in [
        (
            "wrongSecret/0123456789abcdefghijklmnopqrs",
            Some(BedrockFixture::SESSION_TOKEN),
            "InvalidSignatureException",
        ),
        (
            BedrockFixture::SECRET,
            Some("FwoGZXIvYXdzWrongSessionToken0123456789"),
            "UnrecognizedClientException",
        ),
        (BedrockFixture::SECRET, None, "UnrecognizedClientException"),
    ] {
        let mut c = config(&s);
        let mut section = BedrockFixture::section();
        section["secret_access_key"] = secret.into();
        match token {
            Some(t) => section["session_token"] = t.into(),
            None => {
                section.as_object_mut().unwrap().remove("session_token");
            }
        }
        c.sections.insert("bedrock".into(), section);
        let e = BedrockEmbedder::from_config(&c).unwrap();
        let err = e.embed_documents(&["x"]).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.status()),
            (ErrorKind::Authentication, Some(403)),
            "{err}"
        );
        assert!(err.message().contains(exception), "{err}");
        let text = format!("{err} {err:?} {e:?}");
        assert!(!text.contains(&secret[..12]), "{text}");
        if let Some(t) = token {
            assert!(!text.contains(&t[..16]), "{text}");
        }
    }
    // Signed for another region: the dialect refuses the scope.
    let mut c = config(&s);
    let mut section = BedrockFixture::section();
    section["region"] = "eu-west-1".into();
    c.sections.insert("bedrock".into(), section);
    let err = BedrockEmbedder::from_config(&c)
        .unwrap()
        .embed_documents(&["x"])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert!(err.message().contains("region"), "{err}");
    // Long-term credentials (no token) against a dialect that expects none.
    let plain = FakeServer::builder()
        .dialect(BedrockDialect::new(
            TestCredentials {
                access_key_id: "AKIAPLAIN".into(),
                secret_access_key: "plainSecret/xyz".into(),
                session_token: None,
            },
            "us-east-1",
        ))
        .start()
        .await
        .unwrap();
    let mut c = config(&plain);
    c.sections.insert(
        "bedrock".into(),
        serde_json::json!({"region": "us-east-1", "access_key_id": "AKIAPLAIN", "secret_access_key": "plainSecret/xyz"}),
    );
    BedrockEmbedder::from_config(&c)
        .unwrap()
        .embed_documents(&["x"])
        .await
        .unwrap();
    let r = &plain.requests()[0];
    assert!(r.header("x-amz-security-token").is_none());
    assert!(
        r.header("authorization")
            .unwrap()
            .contains("SignedHeaders=accept;content-type;host;x-amz-date, ")
    );
}

#[tokio::test]
async fn a_429_from_the_limits_carries_retry_after() {
    let s = server().await;
    s.set_rate_limits(Some(1), None);
    let e = BedrockEmbedder::from_config(&config(&s)).unwrap();
    e.embed_documents(&["x"]).await.unwrap();
    let err = e.embed_documents(&["x"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.retry_after().is_some());
}

#[tokio::test]
async fn dialect_is_strict() {
    let s = server().await;
    let e = BedrockEmbedder::from_config(&config(&s)).unwrap();
    // Unsigned: refused.
    let client = embeddings_http::reqwest::Client::new();
    let r = client
        .post(format!(
            "{}/model/amazon.titan-embed-text-v2%3A0/invoke",
            s.base_url()
        ))
        .json(&serde_json::json!({"inputText": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .starts_with("MissingAuthenticationTokenException")
    );
    // Signed but malformed bodies, through the provider's signing path.
    let creds = embeddings_bedrock::AwsCredentials::new(
        BedrockFixture::ACCESS_KEY_ID,
        BedrockFixture::SECRET.to_owned().into(),
        Some(BedrockFixture::SESSION_TOKEN.to_owned().into()),
    );
    let url = format!(
        "{}/model/amazon.titan-embed-text-v2%3A0/invoke",
        s.base_url()
    );
    let host = s.base_url().trim_start_matches("http://").to_owned();
    for bad in [
        serde_json::json!({"inputText": ""}),
        serde_json::json!({"inputText": "a", "dimensions": 768}),
        serde_json::json!({"inputText": "a", "embeddingTypes": ["int8"]}),
        serde_json::json!({"inputText": "a", "input_type": "search_query"}),
        serde_json::json!({"texts": ["a"]}),
    ] {
        let body = serde_json::to_vec(&bad).unwrap();
        let signed = embeddings_bedrock::sign_request(
            "POST",
            &url,
            &[("host", &host), ("content-type", "application/json")],
            &body,
            &creds,
            "us-west-2",
            "bedrock",
            std::time::SystemTime::now(),
        )
        .unwrap();
        let mut req = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        for h in signed {
            req = req.header(h.name, h.value);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(
            r.headers()["x-amzn-errortype"]
                .to_str()
                .unwrap()
                .starts_with("ValidationException")
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("Malformed input request"),
            "{body}"
        );
    }
    drop(e);
}

#[tokio::test]
async fn misbehaving_servers_are_typed_errors() {
    use embeddings_http::testing::{RawReply, RawServer};
    for (reply, kind) in [
        (
            RawReply::redirect("307 Temporary Redirect", "http://203.0.113.1/x"),
            ErrorKind::InvalidConfig,
        ),
        (
            RawReply::chunked_forever("200 OK", b"{\"embedding\":[0.1,".to_vec()),
            ErrorKind::InvalidResponse,
        ),
        (
            RawReply::json("200 OK", r#"{"embedding":[1,0]}"#),
            ErrorKind::InvalidResponse,
        ),
        (
            RawReply::json(
                "403 Forbidden",
                r#"{"message":"The security token included in the request is invalid."}"#,
            ),
            ErrorKind::PermissionDenied,
        ),
    ] {
        let raw = RawServer::start(reply).await.unwrap();
        let err = BedrockEmbedder::from_config(&BedrockFixture.config(raw.url()))
            .unwrap()
            .embed_documents(&["x"])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert_eq!(err.provider(), Some("bedrock"));
    }
}
