//! The Jina provider against its own dialect: rows by index in every
//! type, tasks and embedding types on the wire, limits, every error status,
//! the strict dialect, the conformance suite.

use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, ErrorKind, InputType, OutputType, OverLengthPolicy,
};
use embeddings_jina::testkit::{JINA_EMBEDDINGS, JinaDialect, JinaFixture};
use embeddings_jina::{JinaEmbedder, MAX_INPUTS};
use embeddings_testkit::conformance;
use embeddings_testkit::{FakeServer, Fault, FaultAction, Fixture};
use serde_json::json;

async fn server() -> FakeServer {
    FakeServer::builder()
        .dialect(JinaDialect::default().api_key(JinaFixture::KEY))
        .start()
        .await
        .unwrap()
}

fn config(server: &FakeServer) -> Config {
    JinaFixture.config(&server.base_url())
}

fn with_model(server: &FakeServer, model: &str, dimensions: Option<usize>) -> Config {
    let mut c = config(server);
    c.model = Some(model.into());
    c.dimensions = dimensions;
    c
}

/// The fixture's configuration plus TOML lines (sections at the end).
fn config_with(server: &FakeServer, model: &str, extra: &str) -> Config {
    Config::from_toml_str(&format!(
        "provider = \"jina\"\nmodel = \"{model}\"\nbase_url = \"{}/v1\"\napi_key = \"{}\"\n{extra}\n",
        server.base_url(),
        JinaFixture::KEY
    ))
    .unwrap()
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
    let e = JinaEmbedder::from_config(&config(&s)).unwrap();
    conformance::run_fixture(&e, &JinaFixture, &s, false).await;
}

#[tokio::test]
async fn native_output_types_are_the_documented_quantisation_and_reach_the_wire() {
    let s = server().await;
    let e = JinaEmbedder::from_config(&config(&s)).unwrap();
    let texts = ["alpha", "beta", "gamma δ", ""];
    for (t, wire) in [
        (OutputType::F32, "base64"),
        (OutputType::Binary, "binary"),
        (OutputType::Ubinary, "ubinary"),
    ] {
        s.reset_log();
        let got = e
            .embed(EmbedRequest::new(&texts).with_output_type(t))
            .await
            .unwrap();
        let expected = want(JinaFixture::MODEL, &texts, 256).quantized(t).unwrap();
        assert_eq!((got.output_type(), got.dim(), got.len()), (t, 256, 4));
        for i in 0..texts.len() {
            assert_eq!(got.row_bytes(i), expected.row_bytes(i), "{t} row {i}");
        }
        let r = &s.requests()[0];
        assert_eq!(r.output_type, Some(t));
        assert_eq!(r.body["embedding_type"], wire);
        assert_eq!(r.body["dimensions"], 256);
        assert_eq!(r.body["truncate"], false);
        assert!(r.body.get("late_chunking").is_none());
    }
    // f32 rows are the §4 vectors within 1e-5 (and bit-exact through base64).
    let rows = e.embed_documents(&texts).await.unwrap();
    let v = embeddings_mock::vector(JinaFixture::MODEL, "gamma δ", 256);
    assert!(
        rows.row(2)
            .iter()
            .zip(&v)
            .all(|(a, b)| (a - b).abs() < 1e-5)
    );
}

#[tokio::test]
async fn int8_and_uint8_are_refused_naming_provider_and_type_without_a_request() {
    let s = server().await;
    let e = JinaEmbedder::from_config(&config(&s)).unwrap();
    for t in [OutputType::Int8, OutputType::Uint8] {
        let err = e
            .embed(EmbedRequest::new(&["x"]).with_output_type(t))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let text = err.to_string();
        assert!(text.contains("jina") && text.contains(t.as_str()), "{text}");
    }
    assert!(s.requests().is_empty());
}

#[tokio::test]
async fn shuffled_rows_come_back_in_order_and_broken_ones_are_refused() {
    let s = server().await;
    let e = JinaEmbedder::from_config(&config(&s)).unwrap();
    let texts = ["one", "two", "three", "four", "five"];
    s.set_faults(vec![
        Fault::new(FaultAction::ShuffleIndex).on(JINA_EMBEDDINGS),
    ]);
    for t in [OutputType::F32, OutputType::Ubinary] {
        let got = e
            .embed(EmbedRequest::new(&texts).with_output_type(t))
            .await
            .unwrap();
        let expected = want(JinaFixture::MODEL, &texts, 256).quantized(t).unwrap();
        for i in 0..texts.len() {
            assert_eq!(got.row_bytes(i), expected.row_bytes(i), "{t} row {i}");
        }
    }
    for fault in [
        FaultAction::DuplicateIndex,
        FaultAction::WrongDimension(8),
        FaultAction::WrongCount(-1),
    ] {
        s.set_faults(vec![Fault::new(fault.clone()).on(JINA_EMBEDDINGS)]);
        for t in [OutputType::F32, OutputType::Binary] {
            let err = e
                .embed(EmbedRequest::new(&texts).with_output_type(t))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{fault:?} {t}");
        }
    }
}

#[tokio::test]
async fn tasks_on_the_wire_per_model_family() {
    let s = server().await;
    let v3 = JinaEmbedder::from_config(&config(&s)).unwrap();
    for (t, wire) in [
        (InputType::Document, "retrieval.passage"),
        (InputType::Query, "retrieval.query"),
        (InputType::Classification, "classification"),
        (InputType::Clustering, "separation"),
        (InputType::Similarity, "text-matching"),
    ] {
        s.reset_log();
        v3.embed(EmbedRequest::new(&["x"]).with_input_type(t))
            .await
            .unwrap();
        assert_eq!(s.requests()[0].body["task"], wire);
        assert_eq!(s.requests()[0].input_type, Some(t));
    }
    // v4: no classification/clustering task: refused, naming provider, type and model.
    let v4 = JinaEmbedder::from_config(&with_model(&s, "jina-embeddings-v4", Some(128))).unwrap();
    s.reset_log();
    v4.embed_query("q").await.unwrap();
    assert_eq!(s.requests()[0].body["task"], "retrieval.query");
    for t in [InputType::Classification, InputType::Clustering] {
        let err = v4
            .embed(EmbedRequest::new(&["x"]).with_input_type(t))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let text = err.to_string();
        assert!(
            text.contains("jina")
                && text.contains(t.as_str())
                && text.contains("jina-embeddings-v4"),
            "{text}"
        );
    }
    assert_eq!(s.requests().len(), 1);
    // clip-v2: a document sends no task; the code models their own.
    let clip = JinaEmbedder::from_config(&with_model(&s, "jina-clip-v2", None)).unwrap();
    let code =
        JinaEmbedder::from_config(&with_model(&s, "jina-code-embeddings-0.5b", None)).unwrap();
    s.reset_log();
    clip.embed_documents(&["d"]).await.unwrap();
    clip.embed_query("q").await.unwrap();
    code.embed_documents(&["fn main() {}"]).await.unwrap();
    let tasks: Vec<_> = s
        .requests()
        .iter()
        .map(|r| r.body["task"].clone())
        .collect();
    assert_eq!(
        tasks,
        [
            json!(null),
            json!("retrieval.query"),
            json!("nl2code.passage")
        ]
    );
    // v2: no task at all, input types ignored.
    let v2 =
        JinaEmbedder::from_config(&with_model(&s, "jina-embeddings-v2-base-en", None)).unwrap();
    assert!(v2.info().input_types.is_empty());
    s.reset_log();
    let rows = v2.embed_query("q").await.unwrap();
    assert_eq!(
        rows,
        embeddings_mock::vector("jina-embeddings-v2-base-en", "q", 768)
    );
    assert!(s.requests()[0].body.get("task").is_none());
    assert!(s.requests()[0].body.get("dimensions").is_none());
}

#[tokio::test]
async fn batch_limit_and_the_layers_split() {
    let s = server().await;
    let e = JinaEmbedder::from_config(&config(&s)).unwrap();
    assert_eq!(
        (e.info().max_batch_size, e.info().max_input_tokens),
        (MAX_INPUTS, 8192)
    );
    assert_eq!(e.info().concurrency, 16, "a hosted service");
    let owned: Vec<String> = (0..MAX_INPUTS + 3).map(|i| format!("t{i}")).collect();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let err = e.embed_documents(&texts).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(s.requests().is_empty());
    let rows = conformance::embed_within_limits(&e, EmbedRequest::new(&texts))
        .await
        .unwrap();
    assert_eq!(rows.len(), MAX_INPUTS + 3);
    let last = MAX_INPUTS + 2;
    assert_eq!(
        rows.row(last),
        &embeddings_mock::vector(JinaFixture::MODEL, &owned[last], 256)[..]
    );
    assert!(s.requests().iter().all(|r| r.inputs.unwrap() <= MAX_INPUTS));
}

#[tokio::test]
async fn over_length_inputs_and_truncate() {
    let s = server().await;
    let long = "word ".repeat(9000);
    let e = JinaEmbedder::from_config(&config(&s)).unwrap();
    let err = e.embed_documents(&[long.as_str()]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded, "{err}");
    let mut c = config(&s);
    c.batch.over_length = OverLengthPolicy::Truncate;
    let e = JinaEmbedder::from_config(&c).unwrap();
    assert!(e.info().fingerprint().contains("truncate=true"));
    s.reset_log();
    e.embed_documents(&[long.as_str()]).await.unwrap();
    assert_eq!(s.requests()[0].body["truncate"], true);
    // `[jina] truncate` wins over the policy.
    let c = config_with(
        &s,
        JinaFixture::MODEL,
        "[batch]\nover_length = \"truncate\"\n[jina]\ntruncate = false",
    );
    let e = JinaEmbedder::from_config(&c).unwrap();
    assert!(e.info().fingerprint().contains("truncate=false"));
}

#[tokio::test]
async fn late_chunking_keeps_a_request_within_the_context() {
    let s = server().await;
    let c = config_with(
        &s,
        JinaFixture::MODEL,
        "dimensions = 256\n[jina]\nlate_chunking = true",
    );
    let e = JinaEmbedder::from_config(&c).unwrap();
    assert_eq!(e.info().max_batch_tokens, 8192);
    assert!(e.info().fingerprint().contains("late_chunking=true"));
    let chunk = "word ".repeat(3000);
    let chunks = [chunk.as_str(), chunk.as_str(), chunk.as_str()];
    // Together 9,000 tokens: the service refuses the one sequence ...
    let err = e.embed_documents(&chunks).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded, "{err}");
    // ... the planner keeps each request within 8,192 tokens, and every row comes back.
    s.reset_log();
    let rows = conformance::embed_within_limits(&e, EmbedRequest::new(&chunks))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    let reqs = s.requests();
    assert!(
        reqs.len() >= 2
            && reqs
                .iter()
                .all(|r| r.status == 200 && r.body["late_chunking"] == true)
    );
    // v2 has no late chunking: a configuration error.
    let c = config_with(
        &s,
        "jina-embeddings-v2-base-de",
        "[jina]\nlate_chunking = true",
    );
    assert_eq!(
        JinaEmbedder::from_config(&c).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
}

#[tokio::test]
async fn every_error_status_is_mapped() {
    let s = server().await;
    let e = JinaEmbedder::from_config(&config(&s)).unwrap();
    let table = [
        (400, ErrorKind::InvalidInput, false),
        (401, ErrorKind::Authentication, false),
        (403, ErrorKind::QuotaExceeded, false),
        (404, ErrorKind::NotFound, false),
        (409, ErrorKind::Unavailable, true),
        (422, ErrorKind::InvalidInput, false),
        (429, ErrorKind::RateLimited, true),
        (500, ErrorKind::Unavailable, true),
        (502, ErrorKind::Unavailable, true),
        (503, ErrorKind::Unavailable, true),
        (504, ErrorKind::Timeout, true),
    ];
    conformance::check_statuses(&e, &s, JINA_EMBEDDINGS, &table, Some(JinaFixture::KEY)).await;
    // The dialect's own refusals: an unknown model, a wrong key.
    s.set_faults(vec![]);
    let e = JinaEmbedder::from_config(&with_model(&s, "jina-embeddings-v9", Some(64))).unwrap();
    let err = e.embed_documents(&["x"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let mut c = config(&s);
    c.api_key = Some("jina_wrong0key0abcdefabcdefabcdef".to_owned().into());
    let err = JinaEmbedder::from_config(&c)
        .unwrap()
        .embed_documents(&["x"])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert!(!err.to_string().contains("jina_wrong0key0abcdef"), "{err}");
}

#[tokio::test]
async fn a_429_from_the_limits_carries_retry_after() {
    let s = server().await;
    s.set_rate_limits(Some(1), None);
    let e = JinaEmbedder::from_config(&config(&s)).unwrap();
    e.embed_documents(&["x"]).await.unwrap();
    let err = e.embed_documents(&["x"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.retry_after().is_some());
    assert!(
        err.message().contains("RATE_REQUEST_LIMIT_EXCEEDED"),
        "{err}"
    );
}

#[tokio::test]
async fn dialect_is_strict() {
    let s = server().await;
    let url = format!("{}/v1/embeddings", s.base_url());
    let client = embeddings_http::reqwest::Client::new();
    let post = |body: serde_json::Value| {
        client
            .post(&url)
            .bearer_auth(JinaFixture::KEY)
            .json(&body)
            .send()
    };
    for ok in [
        json!({"model": "jina-embeddings-v3", "input": "a"}),
        json!({"model": "jina-embeddings-v3", "input": [{"text": "a"}, "b"], "task": "separation", "normalized": true}),
        json!({"model": "jina-embeddings-v4", "input": ["a"], "task": "code.query", "dimensions": 2048}),
        json!({"model": "jina-embeddings-v2-base-en", "input": ["a"], "embedding_type": ["float", "binary"]}),
    ] {
        let r = post(ok.clone()).await.unwrap();
        assert_eq!(r.status(), 200, "{ok}");
    }
    let body: serde_json::Value = post(json!({"model": "jina-embeddings-v2-base-en", "input": ["a"], "embedding_type": ["float", "ubinary"]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["data"][0]["embedding"]["float"]
            .as_array()
            .unwrap()
            .len(),
        768
    );
    assert!(body["data"][0]["embedding"]["ubinary"].is_string());
    for (bad, status) in [
        (json!({"input": ["a"]}), 422),
        (json!({"model": "jina-embeddings-v3"}), 422),
        (json!({"model": "jina-embeddings-v3", "input": []}), 422),
        (
            json!({"model": "jina-embeddings-v3", "input": vec!["a"; MAX_INPUTS + 1]}),
            422,
        ),
        (json!({"model": "nope", "input": ["a"]}), 400),
        (
            json!({"model": "jina-embeddings-v3", "input": ["a"], "task": "code.query"}),
            422,
        ),
        (
            json!({"model": "jina-embeddings-v4", "input": ["a"], "task": "classification"}),
            422,
        ),
        (
            json!({"model": "jina-clip-v2", "input": ["a"], "task": "retrieval.passage"}),
            422,
        ),
        (
            json!({"model": "jina-embeddings-v2-base-en", "input": ["a"], "task": "retrieval.query"}),
            422,
        ),
        (
            json!({"model": "jina-embeddings-v2-base-en", "input": ["a"], "dimensions": 256}),
            422,
        ),
        (
            json!({"model": "jina-embeddings-v2-base-en", "input": ["a"], "late_chunking": true}),
            422,
        ),
        (
            json!({"model": "jina-embeddings-v4", "input": ["a"], "normalized": true}),
            422,
        ),
        (
            json!({"model": "jina-embeddings-v3", "input": ["a"], "dimensions": 1025}),
            422,
        ),
        (
            json!({"model": "jina-embeddings-v3", "input": ["a"], "dimensions": 0}),
            422,
        ),
        (
            json!({"model": "jina-embeddings-v3", "input": ["a"], "embedding_type": "int8"}),
            422,
        ),
        (
            json!({"model": "jina-embeddings-v3", "input": ["a"], "truncate": "yes"}),
            422,
        ),
        (
            json!({"model": "jina-embeddings-v3", "input": ["a"], "encoding_format": "float"}),
            422,
        ),
        (
            json!({"model": "jina-embeddings-v3", "input": ["word ".repeat(9000)]}),
            400,
        ),
    ] {
        let r = post(bad.clone()).await.unwrap();
        assert_eq!(r.status(), status, "{bad}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["detail"].is_string(), "{body}");
        if status == 422 {
            assert!(body["errors"][0]["field"].is_string(), "{body}");
        }
    }
    // No key, a wrong key: 401 with Jina's codes.
    let ok = json!({"model": "jina-embeddings-v3", "input": "a"});
    let r = client.post(&url).json(&ok).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "AUTH_MISSING_API_KEY");
    let r = client
        .post(&url)
        .bearer_auth("jina_other")
        .json(&ok)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "AUTH_INVALID_API_KEY");
}

#[tokio::test]
async fn config_is_checked() {
    let mut c = Config::for_provider("jina");
    c.api_key = Some(JinaFixture::KEY.to_owned().into());
    c.model = Some("jina-embeddings-v2-base-en".into());
    c.dimensions = Some(256);
    assert_eq!(
        JinaEmbedder::from_config(&c).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
    c.dimensions = Some(768);
    let e = JinaEmbedder::from_config(&c).unwrap();
    assert!(!e.info().fingerprint().contains("dimensions="));
    c.model = Some("jina-embeddings-v3".into());
    c.dimensions = Some(2048);
    assert_eq!(
        JinaEmbedder::from_config(&c).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
    c.model = None;
    c.dimensions = Some(64);
    let e = JinaEmbedder::from_config(&c).unwrap();
    assert_eq!(
        (e.info().model.as_str(), e.info().dimension),
        ("jina-embeddings-v3", 64)
    );
    assert!(e.info().fingerprint().contains("dimensions=64"));
    assert!(
        e.endpoint()
            .starts_with("https://api.jina.ai/v1/embeddings")
    );
    assert!(!format!("{e:?}").contains(JinaFixture::KEY));
    let c = config_with(
        &server().await,
        "jina-embeddings-v3",
        "[jina]\nlate_chunk = true",
    );
    assert_eq!(
        JinaEmbedder::from_config(&c).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
}

#[tokio::test]
async fn a_cross_origin_redirect_and_an_endless_body_are_typed_errors() {
    use embeddings_http::testing::{RawReply, RawServer};
    let raw = RawServer::start(RawReply::redirect(
        "307 Temporary Redirect",
        "http://203.0.113.1/v1/embeddings",
    ))
    .await
    .unwrap();
    let mut c = JinaFixture.config(raw.url());
    let err = JinaEmbedder::from_config(&c)
        .unwrap()
        .embed_documents(&["x"])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    let raw = RawServer::start(RawReply::chunked_forever("200 OK", b"{\"data\":[".to_vec()))
        .await
        .unwrap();
    c.base_url = Some(raw.url().to_owned());
    let err = JinaEmbedder::from_config(&c)
        .unwrap()
        .embed_documents(&["x"])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err}");
}
