//! The Mistral provider against its own dialect: rows by index in every
//! type, output types on the wire, batch and token limits, every error
//! status, the strict dialect, the conformance suite.

use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, ErrorKind, InputType, OutputType,
};
use embeddings_mistral::testkit::{MISTRAL_EMBEDDINGS, MistralDialect, MistralFixture};
use embeddings_mistral::{MAX_BATCH_TOKENS, MAX_INPUTS, MistralEmbedder};
use embeddings_testkit::conformance;
use embeddings_testkit::{FakeServer, Fault, FaultAction, Fixture};
use serde_json::json;

async fn server() -> FakeServer {
    FakeServer::builder()
        .dialect(MistralDialect::default().api_key(MistralFixture::KEY))
        .start()
        .await
        .unwrap()
}

fn config(server: &FakeServer) -> Config {
    MistralFixture.config(&server.base_url())
}

fn with_model(server: &FakeServer, model: &str, dimensions: Option<usize>) -> Config {
    let mut c = config(server);
    c.model = Some(model.into());
    c.dimensions = dimensions;
    c
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
    let e = MistralEmbedder::from_config(&config(&s)).unwrap();
    conformance::run_fixture(&e, &MistralFixture, &s, false).await;
}

#[tokio::test]
async fn conformance_suite_for_mistral_embed() {
    // mistral-embed: float only (binary/ubinary from the layers, int8/uint8 refused).
    #[derive(Debug)]
    struct Embed;
    impl Fixture for Embed {
        fn provider(&self) -> &'static str {
            "mistral"
        }
        fn dialects(&self) -> Vec<std::sync::Arc<dyn embeddings_testkit::Dialect>> {
            MistralFixture.dialects()
        }
        fn config(&self, base_url: &str) -> Config {
            let mut c = MistralFixture.config(base_url);
            c.model = Some("mistral-embed".into());
            c.dimensions = None;
            c
        }
        fn model(&self) -> &'static str {
            "mistral-embed"
        }
        fn dimension(&self) -> usize {
            1024
        }
        fn embedding_route(&self) -> embeddings_testkit::Route {
            MISTRAL_EMBEDDINGS
        }
        fn rows_carry_index(&self) -> bool {
            true
        }
        fn secret(&self) -> Option<&'static str> {
            Some(MistralFixture::KEY)
        }
    }
    let s = server().await;
    let e = MistralEmbedder::from_config(&Embed.config(&s.base_url())).unwrap();
    assert!(e.info().output_types.is_empty());
    conformance::run_fixture(&e, &Embed, &s, false).await;
}

#[tokio::test]
async fn every_output_type_is_the_documented_quantisation_and_reaches_the_wire() {
    let s = server().await;
    let e = MistralEmbedder::from_config(&config(&s)).unwrap();
    let texts = ["alpha", "beta", "gamma δ", "fn main() {}"];
    for t in OutputType::ALL {
        s.reset_log();
        let got = e
            .embed(EmbedRequest::new(&texts).with_output_type(t))
            .await
            .unwrap();
        let expected = want(MistralFixture::MODEL, &texts, 256)
            .quantized(t)
            .unwrap();
        assert_eq!((got.output_type(), got.dim(), got.len()), (t, 256, 4));
        for i in 0..texts.len() {
            assert_eq!(got.row_bytes(i), expected.row_bytes(i), "{t} row {i}");
        }
        let r = &s.requests()[0];
        assert_eq!(r.output_type, Some(t));
        assert_eq!(r.body["output_dimension"], 256);
        if t == OutputType::F32 {
            assert!(r.body.get("output_dtype").is_none(), "float is the default");
        } else {
            assert_eq!(r.body["output_dtype"], t.as_str());
        }
        assert!(r.body.get("encoding_format").is_none());
    }
    // A dimension that is not a multiple of 8: packed rows of ceil(dim / 8) bytes.
    let e = MistralEmbedder::from_config(&with_model(&s, "codestral-embed", Some(100))).unwrap();
    let got = e
        .embed(EmbedRequest::new(&texts).with_output_type(OutputType::Binary))
        .await
        .unwrap();
    let expected = want("codestral-embed", &texts, 100)
        .quantized(OutputType::Binary)
        .unwrap();
    assert_eq!(got.row_len(), 13);
    for i in 0..texts.len() {
        assert_eq!(got.row_bytes(i), expected.row_bytes(i));
    }
}

#[tokio::test]
async fn mistral_embed_is_float_only_and_input_types_are_ignored() {
    let s = server().await;
    let e = MistralEmbedder::from_config(&with_model(&s, "mistral-embed", None)).unwrap();
    assert_eq!(e.info().dimension, 1024);
    for t in [OutputType::Int8, OutputType::Uint8, OutputType::Binary] {
        let err = e
            .embed(EmbedRequest::new(&["x"]).with_output_type(t))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let text = err.to_string();
        assert!(
            text.contains("mistral") && text.contains(t.as_str()),
            "{text}"
        );
    }
    assert!(s.requests().is_empty());
    // No input type on Mistral's wire: the same request (and vector) for each.
    for t in InputType::ALL {
        let row = e
            .embed(EmbedRequest::new(&["same"]).with_input_type(t))
            .await
            .unwrap();
        assert_eq!(
            row.row(0),
            &embeddings_mock::vector("mistral-embed", "same", 1024)[..]
        );
    }
    let bodies: Vec<_> = s.requests().iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies.len(), InputType::ALL.len());
    assert!(
        bodies
            .iter()
            .all(|b| *b == json!({"model": "mistral-embed", "input": ["same"]}))
    );
}

#[tokio::test]
async fn shuffled_rows_come_back_in_order_and_broken_ones_are_refused() {
    let s = server().await;
    let e = MistralEmbedder::from_config(&config(&s)).unwrap();
    let texts = ["one", "two", "three", "four", "five"];
    s.set_faults(vec![
        Fault::new(FaultAction::ShuffleIndex).on(MISTRAL_EMBEDDINGS),
    ]);
    for t in [OutputType::F32, OutputType::Int8, OutputType::Ubinary] {
        let got = e
            .embed(EmbedRequest::new(&texts).with_output_type(t))
            .await
            .unwrap();
        let expected = want(MistralFixture::MODEL, &texts, 256)
            .quantized(t)
            .unwrap();
        for i in 0..texts.len() {
            assert_eq!(got.row_bytes(i), expected.row_bytes(i), "{t} row {i}");
        }
    }
    for fault in [
        FaultAction::DuplicateIndex,
        FaultAction::WrongDimension(8),
        FaultAction::WrongCount(1),
        FaultAction::Nan,
    ] {
        s.set_faults(vec![Fault::new(fault.clone()).on(MISTRAL_EMBEDDINGS)]);
        let err = e.embed_documents(&texts).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{fault:?}");
    }
}

#[tokio::test]
async fn batch_and_token_limits_are_honoured() {
    let s = server().await;
    let e = MistralEmbedder::from_config(&config(&s)).unwrap();
    let info = e.info();
    assert_eq!(
        (
            info.max_batch_size,
            info.max_input_tokens,
            info.max_batch_tokens
        ),
        (MAX_INPUTS, 8192, MAX_BATCH_TOKENS)
    );
    let owned: Vec<String> = (0..MAX_INPUTS + 1).map(|i| format!("t{i}")).collect();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    assert_eq!(
        e.embed_documents(&texts).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(s.requests().is_empty());
    // 6 inputs of 3,000 tokens: 18,000 > 16,384 in one request, as Mistral answers.
    let chunk = "word ".repeat(3000);
    let six = vec![chunk.as_str(); 6];
    let err = e.embed_documents(&six).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("split into more batches"), "{err}");
    // Within the limits the planner splits by count and by tokens; every row comes back.
    s.reset_log();
    let mut all: Vec<&str> = texts.clone();
    all.extend(six.iter().copied());
    let rows = conformance::embed_within_limits(&e, EmbedRequest::new(&all))
        .await
        .unwrap();
    assert_eq!(rows.len(), all.len());
    assert_eq!(
        rows.row(MAX_INPUTS),
        &embeddings_mock::vector(MistralFixture::MODEL, &owned[MAX_INPUTS], 256)[..]
    );
    assert_eq!(
        rows.row(all.len() - 1),
        &embeddings_mock::vector(MistralFixture::MODEL, &chunk, 256)[..]
    );
    let reqs = s.requests();
    assert!(
        reqs.iter()
            .all(|r| r.status == 200 && r.inputs.unwrap() <= MAX_INPUTS)
    );
    // An input over the context.
    let long = "word ".repeat(9000);
    let err = e.embed_documents(&[long.as_str()]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded, "{err}");
}

#[tokio::test]
async fn every_error_status_is_mapped() {
    let s = server().await;
    let e = MistralEmbedder::from_config(&config(&s)).unwrap();
    let table = [
        (400, ErrorKind::InvalidInput, false),
        (401, ErrorKind::Authentication, false),
        (403, ErrorKind::PermissionDenied, false),
        (404, ErrorKind::NotFound, false),
        (422, ErrorKind::InvalidInput, false),
        (429, ErrorKind::RateLimited, true),
        (500, ErrorKind::Unavailable, true),
        (502, ErrorKind::Unavailable, true),
        (503, ErrorKind::Unavailable, true),
        (504, ErrorKind::Timeout, true),
    ];
    conformance::check_statuses(
        &e,
        &s,
        MISTRAL_EMBEDDINGS,
        &table,
        Some(MistralFixture::KEY),
    )
    .await;
    s.set_faults(vec![]);
    let e = MistralEmbedder::from_config(&with_model(&s, "mistral-embed-9", None)).unwrap();
    assert_eq!(
        e.embed_documents(&["x"]).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let mut c = config(&s);
    c.api_key = Some("wrong-mistral-key-0123456789".to_owned().into());
    let err = MistralEmbedder::from_config(&c)
        .unwrap()
        .embed_documents(&["x"])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert!(!err.to_string().contains("wrong-mistral-key"), "{err}");
}

#[tokio::test]
async fn a_429_from_the_limits_carries_retry_after() {
    let s = server().await;
    s.set_rate_limits(Some(1), None);
    let e = MistralEmbedder::from_config(&config(&s)).unwrap();
    e.embed_documents(&["x"]).await.unwrap();
    let err = e.embed_documents(&["x"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.retry_after().is_some());
}

#[tokio::test]
async fn dialect_is_strict() {
    let s = server().await;
    let url = format!("{}/v1/embeddings", s.base_url());
    let client = embeddings_http::reqwest::Client::new();
    let post = |body: serde_json::Value| {
        client
            .post(&url)
            .bearer_auth(MistralFixture::KEY)
            .json(&body)
            .send()
    };
    for ok in [
        json!({"model": "mistral-embed", "input": "a"}),
        json!({"model": "mistral-embed", "input": ["a"], "output_dtype": "float", "encoding_format": "float", "metadata": {"k": 1}}),
        json!({"model": "codestral-embed", "input": ["a"], "output_dimension": 3072, "output_dtype": "ubinary"}),
    ] {
        assert_eq!(post(ok.clone()).await.unwrap().status(), 200, "{ok}");
    }
    let body: serde_json::Value = post(json!({"model": "codestral-embed", "input": ["a"], "output_dimension": 10, "output_dtype": "binary"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 2);
    for (bad, status) in [
        (json!({"input": ["a"]}), 422),
        (json!({"model": "mistral-embed"}), 422),
        (json!({"model": "mistral-embed", "input": [1]}), 422),
        (
            json!({"model": "mistral-embed", "input": ["a"], "dimensions": 8}),
            422,
        ),
        (
            json!({"model": "mistral-embed", "input": ["a"], "output_dtype": "f16"}),
            422,
        ),
        (
            json!({"model": "mistral-embed", "input": ["a"], "encoding_format": "hex"}),
            422,
        ),
        (
            json!({"model": "codestral-embed", "input": ["a"], "output_dimension": 0}),
            422,
        ),
        (json!({"model": "nope", "input": ["a"]}), 400),
        (
            json!({"model": "mistral-embed", "input": ["a"], "output_dimension": 256}),
            400,
        ),
        (
            json!({"model": "mistral-embed", "input": ["a"], "output_dtype": "int8"}),
            400,
        ),
        (
            json!({"model": "codestral-embed", "input": ["a"], "output_dimension": 3073}),
            400,
        ),
        (json!({"model": "mistral-embed", "input": []}), 400),
        (
            json!({"model": "mistral-embed", "input": vec!["a"; MAX_INPUTS + 1]}),
            400,
        ),
    ] {
        let r = post(bad.clone()).await.unwrap();
        assert_eq!(r.status(), status, "{bad}");
        let body: serde_json::Value = r.json().await.unwrap();
        if status == 422 {
            assert!(
                body["detail"][0]["msg"].is_string() && body["detail"][0]["loc"].is_array(),
                "{body}"
            );
        } else {
            assert!(
                body["object"] == "error" && body["message"].is_string(),
                "{body}"
            );
        }
    }
    let r = client
        .post(&url)
        .json(&json!({"model": "mistral-embed", "input": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Unauthorized");
}

#[tokio::test]
async fn config_is_checked() {
    let mut c = Config::for_provider("mistral");
    c.api_key = Some(MistralFixture::KEY.to_owned().into());
    let e = MistralEmbedder::from_config(&c).unwrap();
    assert_eq!(
        (e.info().model.as_str(), e.info().dimension),
        ("mistral-embed", 1024)
    );
    assert!(
        e.endpoint()
            .starts_with("https://api.mistral.ai/v1/embeddings")
    );
    assert!(!format!("{e:?}").contains(MistralFixture::KEY));
    c.dimensions = Some(512);
    assert_eq!(
        MistralEmbedder::from_config(&c).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
    c.dimensions = Some(1024);
    assert!(
        !MistralEmbedder::from_config(&c)
            .unwrap()
            .info()
            .fingerprint()
            .contains("output_dimension")
    );
    c.model = Some("codestral-embed".into());
    c.dimensions = Some(4096);
    assert_eq!(
        MistralEmbedder::from_config(&c).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
    c.dimensions = None;
    let e = MistralEmbedder::from_config(&c).unwrap();
    assert_eq!(e.info().dimension, 1536);
    assert_eq!(e.info().output_types.len(), 4);
    let c = Config::from_toml_str("provider = \"mistral\"\napi_key = \"k\"\n[mistral]\nmax_batch_size = 1000\nmax_batch_tokens = 4000\n").unwrap();
    let e = MistralEmbedder::from_config(&c).unwrap();
    assert_eq!(
        (e.info().max_batch_size, e.info().max_batch_tokens),
        (MAX_INPUTS, 4000)
    );
    assert_eq!(e.info().concurrency, 16, "a hosted service");
    let c = Config::from_toml_str(
        "provider = \"mistral\"\napi_key = \"k\"\n[mistral]\ntruncate = true\n",
    )
    .unwrap();
    assert_eq!(
        MistralEmbedder::from_config(&c).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
}
