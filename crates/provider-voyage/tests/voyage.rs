//! The Voyage provider against its own dialect: rows by index in every
//! type, types on the wire, limits, error statuses, the conformance suite.

use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, ErrorKind, InputType, OutputType,
};
use embeddings_testkit::conformance;
use embeddings_testkit::{FakeServer, Fault, FaultAction, Fixture};
use embeddings_voyage::testkit::{VOYAGE_EMBEDDINGS, VoyageDialect, VoyageFixture};
use embeddings_voyage::{MAX_INPUTS, VoyageEmbedder};

async fn server() -> FakeServer {
    FakeServer::builder()
        .dialect(VoyageDialect::default().api_key(VoyageFixture::KEY))
        .start()
        .await
        .unwrap()
}

fn config(server: &FakeServer) -> Config {
    VoyageFixture.config(&server.base_url())
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
    let e = VoyageEmbedder::from_config(&config(&s)).unwrap();
    conformance::run_fixture(&e, &VoyageFixture, &s, false).await;
}

#[tokio::test]
async fn every_output_type_is_the_documented_quantisation_and_reaches_the_wire() {
    let s = server().await;
    let e = VoyageEmbedder::from_config(&config(&s)).unwrap();
    let texts = ["alpha", "beta", "gamma δ"];
    for t in OutputType::ALL {
        s.reset_log();
        let got = e
            .embed(EmbedRequest::new(&texts).with_output_type(t))
            .await
            .unwrap();
        let expected = want("voyage-3.5-lite", &texts, 256).quantized(t).unwrap();
        assert_eq!((got.output_type(), got.dim()), (t, 256));
        for i in 0..texts.len() {
            assert_eq!(got.row_bytes(i), expected.row_bytes(i), "{t} row {i}");
        }
        let r = &s.requests()[0];
        assert_eq!(r.output_type, Some(t));
        assert_eq!(r.body["encoding_format"], "base64");
        assert_eq!(r.body["output_dimension"], 256);
        assert_eq!(r.body["truncation"], false);
    }
}

#[tokio::test]
async fn shuffled_rows_come_back_in_order() {
    let s = server().await;
    let e = VoyageEmbedder::from_config(&config(&s)).unwrap();
    s.set_faults(vec![
        Fault::new(FaultAction::ShuffleIndex).on(VOYAGE_EMBEDDINGS),
    ]);
    let texts = ["one", "two", "three", "four"];
    for t in [OutputType::F32, OutputType::Int8] {
        let got = e
            .embed(EmbedRequest::new(&texts).with_output_type(t))
            .await
            .unwrap();
        let expected = want("voyage-3.5-lite", &texts, 256).quantized(t).unwrap();
        for i in 0..texts.len() {
            assert_eq!(got.row_bytes(i), expected.row_bytes(i));
        }
    }
    s.set_faults(vec![
        Fault::new(FaultAction::DuplicateIndex).on(VOYAGE_EMBEDDINGS),
    ]);
    for t in [OutputType::F32, OutputType::Uint8] {
        let err = e
            .embed(EmbedRequest::new(&texts).with_output_type(t))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{t}");
    }
    s.set_faults(vec![
        Fault::new(FaultAction::WrongDimension(8)).on(VOYAGE_EMBEDDINGS),
    ]);
    let err = e
        .embed(EmbedRequest::new(&texts).with_output_type(OutputType::Ubinary))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse);
}

#[tokio::test]
async fn input_types_on_the_wire_and_the_others_refused() {
    let s = server().await;
    let e = VoyageEmbedder::from_config(&config(&s)).unwrap();
    for (t, wire) in [
        (InputType::Document, "document"),
        (InputType::Query, "query"),
    ] {
        s.reset_log();
        e.embed(EmbedRequest::new(&["x"]).with_input_type(t))
            .await
            .unwrap();
        assert_eq!(s.requests()[0].body["input_type"], wire);
    }
    s.reset_log();
    for t in [
        InputType::Classification,
        InputType::Clustering,
        InputType::Similarity,
    ] {
        let err = e
            .embed(EmbedRequest::new(&["x"]).with_input_type(t))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains("voyage") && err.to_string().contains(t.as_str()),
            "{err}"
        );
    }
    assert!(s.requests().is_empty());
}

#[tokio::test]
async fn batch_and_token_limits_by_model() {
    let s = server().await;
    let e = VoyageEmbedder::from_config(&config(&s)).unwrap();
    assert_eq!(
        (e.info().max_batch_size, e.info().max_batch_tokens),
        (MAX_INPUTS, 1_000_000)
    );
    assert_eq!(e.info().concurrency, 16, "a hosted service");
    let mut c = config(&s);
    c.model = Some("voyage-3-large".into());
    let large = VoyageEmbedder::from_config(&c).unwrap();
    assert_eq!(large.info().max_batch_tokens, 120_000);
    let owned: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    assert_eq!(
        e.embed_documents(&texts).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(s.requests().is_empty());
    // A request over the model's tokens per request: the dialect refuses it as Voyage does.
    let mut c = config(&s);
    c.model = Some("voyage-3-large".into());
    c.batch.over_length = embeddings_core::OverLengthPolicy::Truncate;
    let big = "word ".repeat(30_000);
    let five: Vec<&str> = vec![big.as_str(); 5];
    let err = VoyageEmbedder::from_config(&c)
        .unwrap()
        .embed_documents(&five)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // Within the limits conformance's planner splits and everything comes back.
    let rows = conformance::embed_within_limits(&e, EmbedRequest::new(&texts))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1001);
    assert_eq!(
        rows.row(1000),
        &embeddings_mock::vector("voyage-3.5-lite", "t1000", 256)[..]
    );
}

#[tokio::test]
async fn every_error_status_is_mapped() {
    let s = server().await;
    let e = VoyageEmbedder::from_config(&config(&s)).unwrap();
    let table = [
        (400, ErrorKind::InvalidInput, false),
        (401, ErrorKind::Authentication, false),
        (403, ErrorKind::PermissionDenied, false),
        (404, ErrorKind::NotFound, false),
        (429, ErrorKind::RateLimited, true),
        (500, ErrorKind::Unavailable, true),
        (502, ErrorKind::Unavailable, true),
        (503, ErrorKind::Unavailable, true),
        (504, ErrorKind::Timeout, true),
    ];
    conformance::check_statuses(&e, &s, VOYAGE_EMBEDDINGS, &table, Some(VoyageFixture::KEY)).await;
}

#[tokio::test]
async fn dialect_is_strict() {
    let s = server().await;
    let url = format!("{}/v1/embeddings", s.base_url());
    let client = embeddings_http::reqwest::Client::new();
    let post = |body: serde_json::Value| {
        client
            .post(&url)
            .bearer_auth(VoyageFixture::KEY)
            .json(&body)
            .send()
    };
    assert_eq!(
        post(serde_json::json!({"model": "voyage-2", "input": "a"}))
            .await
            .unwrap()
            .status(),
        200
    );
    for bad in [
        serde_json::json!({"input": ["a"]}),
        serde_json::json!({"model": "voyage-2", "input": []}),
        serde_json::json!({"model": "nope", "input": ["a"]}),
        serde_json::json!({"model": "voyage-2", "input": ["a"], "input_type": "passage"}),
        serde_json::json!({"model": "voyage-2", "input": ["a"], "output_dimension": 256}),
        serde_json::json!({"model": "voyage-2", "input": ["a"], "output_dtype": "int8"}),
        serde_json::json!({"model": "voyage-3.5", "input": ["a"], "output_dimension": 300}),
        serde_json::json!({"model": "voyage-3.5", "input": ["a"], "encoding_format": "float"}),
        serde_json::json!({"model": "voyage-3.5", "input": ["a"], "truncation": "yes"}),
        serde_json::json!({"model": "voyage-3.5", "input": ["a"], "dimensions": 256}),
    ] {
        let r = post(bad.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["detail"].is_string(), "{body}");
    }
    let r = client
        .post(&url)
        .json(&serde_json::json!({"model": "voyage-2", "input": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn config_is_checked_and_the_key_stays_hidden() {
    let mut c = Config::for_provider("voyage");
    c.api_key = Some(VoyageFixture::KEY.to_owned().into());
    c.model = Some("voyage-2".into());
    c.dimensions = Some(256);
    assert_eq!(
        VoyageEmbedder::from_config(&c).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
    c.model = Some("voyage-3.5".into());
    c.dimensions = Some(512);
    let e = VoyageEmbedder::from_config(&c).unwrap();
    assert!(e.info().fingerprint().contains("output_dimension=512"));
    assert!(!format!("{e:?}").contains(VoyageFixture::KEY));
    c.model = Some("voyage-2".into());
    c.dimensions = None;
    let e = VoyageEmbedder::from_config(&c).unwrap();
    assert!(e.info().output_types.is_empty(), "voyage-2 has float only");
}
