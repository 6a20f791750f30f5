//! The Cohere provider against its own dialect: rows, types on the wire,
//! limits, every error status, the conformance suite, and no key anywhere.

use embeddings_cohere::testkit::{COHERE_EMBED, CohereDialect, CohereFixture};
use embeddings_cohere::{CohereEmbedder, MAX_TEXTS};
use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, ErrorKind, InputType, OutputType,
};
use embeddings_testkit::conformance;
use embeddings_testkit::{FakeServer, Fault, FaultAction, Fixture, LeakCheck, StatusFault};

async fn server() -> FakeServer {
    FakeServer::builder()
        .dialect(CohereDialect::default().api_key(CohereFixture::KEY))
        .start()
        .await
        .unwrap()
}

fn config(server: &FakeServer) -> Config {
    CohereFixture.config(&server.base_url())
}

fn want(model: &str, texts: &[&str], dim: usize) -> Embeddings {
    Embeddings::from_rows(
        dim,
        texts.iter().map(|t| embeddings_mock::vector(model, t, dim)),
    )
    .unwrap()
}

#[tokio::test]
async fn conformance_suite() {
    let s = server().await;
    let e = CohereEmbedder::from_config(&config(&s)).unwrap();
    conformance::run_fixture(&e, &CohereFixture, &s, false).await;
}

#[tokio::test]
async fn every_output_type_is_the_documented_quantisation_and_reaches_the_wire() {
    let s = server().await;
    let e = CohereEmbedder::from_config(&config(&s)).unwrap();
    let texts = ["alpha", "beta", "gamma δ"];
    for t in OutputType::ALL {
        s.reset_log();
        let got = e
            .embed(EmbedRequest::new(&texts).with_output_type(t))
            .await
            .unwrap();
        let expected = want("embed-v4.0", &texts, 256).quantized(t).unwrap();
        assert_eq!(got.output_type(), t);
        assert_eq!(got.dim(), 256);
        for i in 0..texts.len() {
            assert_eq!(got.row_bytes(i), expected.row_bytes(i), "{t} row {i}");
        }
        let r = &s.requests()[0];
        assert_eq!(r.output_type, Some(t));
        assert_eq!(r.body["embedding_types"].as_array().unwrap().len(), 1);
        assert_eq!(r.body["output_dimension"], 256);
        assert_eq!(r.body["truncate"], "NONE");
    }
}

#[tokio::test]
async fn input_types_on_the_wire_and_similarity_refused() {
    let s = server().await;
    let e = CohereEmbedder::from_config(&config(&s)).unwrap();
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
    }
    s.reset_log();
    let err = e
        .embed(EmbedRequest::new(&["x"]).with_input_type(InputType::Similarity))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let text = err.to_string();
    assert!(
        text.contains("cohere") && text.contains("similarity"),
        "{text}"
    );
    assert!(
        s.requests().is_empty(),
        "no request for a refused input type"
    );
}

#[tokio::test]
async fn at_most_96_texts_per_call_and_the_layers_split() {
    let s = server().await;
    let e = CohereEmbedder::from_config(&config(&s)).unwrap();
    assert_eq!(e.info().max_batch_size, MAX_TEXTS);
    assert_eq!(e.info().concurrency, 16, "a hosted service");
    let owned: Vec<String> = (0..200).map(|i| format!("text {i}")).collect();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let err = e.embed_documents(&texts[..97]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(s.requests().is_empty());
    let layered = embeddings_core::registry::build(&config(&s)).unwrap();
    drop(layered);
    // Through the facade-like stack: the batch layer splits by the limit.
    let mut c = config(&s);
    c.batch.max_batch_size = None;
    let e = CohereEmbedder::from_config(&c).unwrap();
    let rows = conformance::embed_within_limits(&e, EmbedRequest::new(&texts))
        .await
        .unwrap();
    let expected = want("embed-v4.0", &texts, 256);
    for i in [0, 95, 96, 199] {
        assert_eq!(rows.row(i), expected.row(i));
    }
    assert!(s.requests().iter().all(|r| r.inputs.unwrap() <= MAX_TEXTS));
}

#[tokio::test]
async fn dialect_is_strict() {
    let s = server().await;
    let url = format!("{}/v2/embed", s.base_url());
    let client = embeddings_http::reqwest::Client::new();
    let post = |body: serde_json::Value| {
        client
            .post(&url)
            .bearer_auth(CohereFixture::KEY)
            .json(&body)
            .send()
    };
    let ok = serde_json::json!({"model": "embed-english-v3.0", "texts": ["a"], "input_type": "search_query"});
    assert_eq!(post(ok.clone()).await.unwrap().status(), 200);
    for bad in [
        serde_json::json!({"model": "embed-english-v3.0", "texts": ["a"]}),
        serde_json::json!({"model": "embed-english-v3.0", "texts": ["a"], "input_type": "query"}),
        serde_json::json!({"model": "embed-english-v3.0", "texts": [], "input_type": "search_query"}),
        serde_json::json!({"model": "embed-english-v3.0", "texts": ["a"], "input_type": "search_query", "output_dimension": 256}),
        serde_json::json!({"model": "embed-v4.0", "texts": ["a"], "input_type": "search_query", "output_dimension": 100}),
        serde_json::json!({"model": "embed-v4.0", "texts": ["a"], "input_type": "search_query", "embedding_types": ["f16"]}),
        serde_json::json!({"model": "embed-v4.0", "texts": ["a"], "input_type": "search_query", "truncate": "end"}),
        serde_json::json!({"model": "embed-v4.0", "texts": ["a"], "input_type": "search_query", "dimensions": 256}),
        serde_json::json!({"model": "embed-v4.0", "texts": vec!["a"; 97], "input_type": "search_query"}),
    ] {
        let r = post(bad.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["message"].is_string() && body["id"].is_string(),
            "{body}"
        );
    }
    let long = "word ".repeat(600);
    let r = post(serde_json::json!({"model": "embed-english-v3.0", "texts": [long], "input_type": "search_query", "truncate": "NONE"})).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = client.post(&url).json(&ok).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Several types at once answer several.
    let r = post(serde_json::json!({"model": "embed-english-light-v3.0", "texts": ["a"], "input_type": "clustering", "embedding_types": ["float", "int8"]})).await.unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["embeddings"]["float"][0].as_array().unwrap().len(),
        384
    );
    assert_eq!(body["embeddings"]["int8"][0].as_array().unwrap().len(), 384);
}

#[tokio::test]
async fn over_long_input_is_context_length_exceeded() {
    let s = server().await;
    let mut c = config(&s);
    c.model = Some("embed-english-v3.0".into());
    c.dimensions = None;
    let e = CohereEmbedder::from_config(&c).unwrap();
    let long = "word ".repeat(600);
    let err = e.embed_documents(&[long.as_str()]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded, "{err}");
    // With truncation the server cuts it.
    c.batch.over_length = embeddings_core::OverLengthPolicy::Truncate;
    let e = CohereEmbedder::from_config(&c).unwrap();
    assert!(e.info().fingerprint().contains("truncate=END"));
    e.embed_documents(&[long.as_str()]).await.unwrap();
}

#[tokio::test]
async fn every_error_status_is_mapped() {
    let s = server().await;
    let e = CohereEmbedder::from_config(&config(&s)).unwrap();
    let table = [
        (400, ErrorKind::InvalidInput, false),
        (401, ErrorKind::Authentication, false),
        (402, ErrorKind::QuotaExceeded, false),
        (403, ErrorKind::PermissionDenied, false),
        (404, ErrorKind::NotFound, false),
        (422, ErrorKind::InvalidInput, false),
        (429, ErrorKind::RateLimited, true),
        (498, ErrorKind::Authentication, false),
        (499, ErrorKind::Unavailable, true),
        (500, ErrorKind::Unavailable, true),
        (503, ErrorKind::Unavailable, true),
        (504, ErrorKind::Timeout, true),
    ];
    conformance::check_statuses(&e, &s, COHERE_EMBED, &table, Some(CohereFixture::KEY)).await;
}

#[tokio::test]
async fn a_429_from_the_limits_carries_retry_after() {
    let s = server().await;
    s.set_rate_limits(Some(1), None);
    let e = CohereEmbedder::from_config(&config(&s)).unwrap();
    e.embed_documents(&["x"]).await.unwrap();
    let err = e.embed_documents(&["x"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.retry_after().is_some());
}

#[tokio::test]
async fn the_key_appears_nowhere_even_at_trace_level() {
    let mut check = LeakCheck::scoped();
    let s = server().await;
    let e = CohereEmbedder::from_config(&config(&s)).unwrap();
    e.embed_documents(&["x"]).await.unwrap();
    s.set_faults(vec![
        Fault::new(FaultAction::Status(StatusFault::new(401))).on(COHERE_EMBED),
    ]);
    let err = e.embed_documents(&["x"]).await.unwrap_err();
    check.error(&err);
    check.debug(&e);
    assert!(!check.logs().is_empty(), "trace logging was captured");
    check.assert_hidden(CohereFixture::KEY, 0..12);
}

#[tokio::test]
async fn config_is_checked() {
    let mut c = Config::for_provider("cohere");
    c.api_key = Some("k".to_owned().into());
    c.model = Some("embed-english-v3.0".into());
    c.dimensions = Some(256);
    assert_eq!(
        CohereEmbedder::from_config(&c).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
    c.model = Some("embed-v4.0".into());
    c.dimensions = Some(300);
    assert_eq!(
        CohereEmbedder::from_config(&c).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
    c.dimensions = Some(512);
    let e = CohereEmbedder::from_config(&c).unwrap();
    assert_eq!(e.info().dimension, 512);
    assert!(e.info().fingerprint().contains("output_dimension=512"));
    assert!(e.endpoint().starts_with("https://api.cohere.com/v2/embed"));
}

#[tokio::test]
async fn a_cross_origin_redirect_and_an_endless_body_are_typed_errors() {
    use embeddings_http::testing::{RawReply, RawServer};
    let raw = RawServer::start(RawReply::redirect(
        "307 Temporary Redirect",
        "http://203.0.113.1/v2/embed",
    ))
    .await
    .unwrap();
    let mut c = config_for(raw.url());
    let e = CohereEmbedder::from_config(&c).unwrap();
    let err = e.embed_documents(&["x"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    let raw = RawServer::start(RawReply::chunked_forever("200 OK", b"[0.1,".to_vec()))
        .await
        .unwrap();
    c.base_url = Some(raw.url().to_owned());
    let e = CohereEmbedder::from_config(&c).unwrap();
    let err = e.embed_documents(&["x"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err}");
}

fn config_for(base: &str) -> Config {
    CohereFixture.config(base)
}
