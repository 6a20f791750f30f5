//! The Gemini provider against its own dialect: rows (renormalised),
//! task types and dimensions on the wire, the 100-per-call limit, every
//! error status, the conformance suite (Gemini API and Vertex AI).

use embeddings_core::{Config, EmbedRequest, Embedder, Embeddings, ErrorKind, InputType};
use embeddings_gemini::testkit::{GEMINI_EMBED, GeminiDialect, GeminiFixture, VERTEX_PREDICT};
use embeddings_gemini::{GeminiEmbedder, MAX_BATCH};
use embeddings_testkit::{FakeServer, Fault, FaultAction, Fixture, conformance};

async fn server() -> FakeServer {
    FakeServer::builder()
        .dialect(GeminiDialect::default().api_key(GeminiFixture::KEY))
        .start()
        .await
        .unwrap()
}

fn config(server: &FakeServer) -> Config {
    GeminiFixture.config(&server.base_url())
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
async fn conformance_suite() {
    let s = server().await;
    let e = GeminiEmbedder::from_config(&config(&s)).unwrap();
    conformance::run_fixture(&e, &GeminiFixture, &s, false).await;
}

#[tokio::test]
async fn truncated_rows_are_renormalised_and_every_row_is_right_by_index() {
    let s = server().await;
    let e = GeminiEmbedder::from_config(&config(&s)).unwrap();
    let texts = ["alpha", "beta", "gamma δ", ""];
    let got = e.embed_documents(&texts).await.unwrap();
    let expected = want("gemini-embedding-001", &texts, 768);
    for i in 0..texts.len() {
        assert!(close(got.row(i), expected.row(i)), "row {i}");
    }
    let r = &s.requests()[0];
    assert_eq!(
        r.path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(r.header("x-goog-api-key"), Some(GeminiFixture::KEY));
    for (i, req) in r.body["requests"].as_array().unwrap().iter().enumerate() {
        assert_eq!(req["outputDimensionality"], 768);
        assert_eq!(req["model"], "models/gemini-embedding-001");
        assert_eq!(req["content"]["parts"][0]["text"], texts[i]);
    }
    // Without renormalisation the server's truncated rows are shorter than 1:
    // the dialect really answers what gemini-embedding-001 does.
    let mut c = config(&s);
    c.sections
        .insert("gemini".into(), serde_json::json!({ "renormalize": false }));
    let raw = GeminiEmbedder::from_config(&c).unwrap();
    assert!(!raw.info().normalized);
    let got = raw.embed_documents(&texts[..1]).await.unwrap();
    let norm: f32 = got.row(0).iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(norm < 0.9, "norm {norm}");
    // At the native 3072 no outputDimensionality is sent and rows are unit.
    c.sections.clear();
    c.dimensions = None;
    let full = GeminiEmbedder::from_config(&c).unwrap();
    s.reset_log();
    let got = full.embed_documents(&texts[..2]).await.unwrap();
    assert_eq!(got.dim(), 3072);
    assert!(close(
        got.row(1),
        &embeddings_mock::vector("gemini-embedding-001", "beta", 3072)
    ));
    assert!(
        s.requests()[0].body["requests"][0]
            .get("outputDimensionality")
            .is_none()
    );
}

#[tokio::test]
async fn task_types_and_title_on_the_wire() {
    let s = server().await;
    let mut c = config(&s);
    c.sections.insert(
        "gemini".into(),
        serde_json::json!({ "title": "Manual", "task_types": { "classification": "FACT_VERIFICATION" } }),
    );
    let e = GeminiEmbedder::from_config(&c).unwrap();
    for (t, wire, title) in [
        (InputType::Document, "RETRIEVAL_DOCUMENT", true),
        (InputType::Query, "RETRIEVAL_QUERY", false),
        (InputType::Classification, "FACT_VERIFICATION", false),
        (InputType::Clustering, "CLUSTERING", false),
        (InputType::Similarity, "SEMANTIC_SIMILARITY", false),
    ] {
        s.reset_log();
        e.embed(EmbedRequest::new(&["x", "y"]).with_input_type(t))
            .await
            .unwrap();
        let body = &s.requests()[0].body;
        for req in body["requests"].as_array().unwrap() {
            assert_eq!(req["taskType"], wire, "{t}");
            assert_eq!(req.get("title").is_some(), title, "{t}: {req}");
        }
        if title {
            assert_eq!(body["requests"][0]["title"], "Manual");
        }
    }
}

#[tokio::test]
async fn at_most_100_per_call_and_the_layers_split() {
    let s = server().await;
    let e = GeminiEmbedder::from_config(&config(&s)).unwrap();
    assert_eq!(e.info().max_batch_size, MAX_BATCH);
    assert_eq!(e.info().concurrency, 16, "a hosted service");
    let owned: Vec<String> = (0..250).map(|i| format!("text {i}")).collect();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let err = e.embed_documents(&texts[..101]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(s.requests().is_empty(), "refused without a request");
    // Through the facade's layers (batch, retry, ...): requests of <= 100.
    let rows = conformance::embed_within_limits(&e, EmbedRequest::new(&texts))
        .await
        .unwrap();
    let expected = want("gemini-embedding-001", &texts, 768);
    for i in [0, 99, 100, 199, 249] {
        assert!(close(rows.row(i), expected.row(i)), "row {i}");
    }
    let sizes: Vec<usize> = s.requests().iter().map(|r| r.inputs.unwrap()).collect();
    assert_eq!(sizes, [100, 100, 50]);
}

#[tokio::test]
async fn a_wrong_count_is_an_error_never_a_shifted_result() {
    let s = server().await;
    let e = GeminiEmbedder::from_config(&config(&s)).unwrap();
    for action in [
        FaultAction::WrongCount(-1),
        FaultAction::WrongCount(1),
        FaultAction::WrongDimension(1),
        FaultAction::Nan,
    ] {
        s.set_faults(vec![Fault::new(action.clone()).on(GEMINI_EMBED)]);
        let err = e.embed_documents(&["a", "b", "c"]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{action:?}: {err}");
    }
}

#[tokio::test]
async fn every_error_status_is_mapped() {
    let s = server().await;
    let e = GeminiEmbedder::from_config(&config(&s)).unwrap();
    let table = [
        (400, ErrorKind::InvalidInput, false),
        (401, ErrorKind::Authentication, false),
        (403, ErrorKind::PermissionDenied, false),
        (404, ErrorKind::NotFound, false),
        (429, ErrorKind::RateLimited, true),
        (499, ErrorKind::Unavailable, true),
        (500, ErrorKind::Unavailable, true),
        (503, ErrorKind::Unavailable, true),
        (504, ErrorKind::Timeout, true),
    ];
    conformance::check_statuses(&e, &s, GEMINI_EMBED, &table, Some(GeminiFixture::KEY)).await;
    s.set_faults(vec![]);
    // The service's own answers: a wrong key, an unknown model, a long input.
    let mut c = config(&s);
    c.api_key = Some("AIzaWrongWrongWrong0000".to_owned().into());
    let err = GeminiEmbedder::from_config(&c)
        .unwrap()
        .embed_documents(&["x"])
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Authentication, Some(400))
    );
    let mut c = config(&s);
    c.model = Some("gemini-embedding-999".into());
    c.dimensions = Some(8);
    let err = GeminiEmbedder::from_config(&c)
        .unwrap()
        .embed_documents(&["x"])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let long = "word ".repeat(2100);
    let err = e.embed_documents(&[long.as_str()]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded, "{err}");
}

#[tokio::test]
async fn a_429_from_the_limits_carries_retry_after() {
    let s = server().await;
    s.set_rate_limits(Some(1), None);
    let e = GeminiEmbedder::from_config(&config(&s)).unwrap();
    e.embed_documents(&["x"]).await.unwrap();
    let err = e.embed_documents(&["x"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.retry_after().is_some());
}

#[tokio::test]
async fn dialect_is_strict() {
    let s = server().await;
    let client = embeddings_http::reqwest::Client::new();
    let url = format!(
        "{}/v1beta/models/gemini-embedding-001:batchEmbedContents",
        s.base_url()
    );
    let post = |body: serde_json::Value, key: Option<&str>| {
        let mut r = client.post(&url).json(&body);
        if let Some(k) = key {
            r = r.header("x-goog-api-key", k);
        }
        r.send()
    };
    let one = |extra: serde_json::Value| {
        let mut r = serde_json::json!({"model": "models/gemini-embedding-001",
            "content": {"parts": [{"text": "a"}]}});
        if let (Some(o), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::json!({ "requests": [r] })
    };
    let key = Some(GeminiFixture::KEY);
    let r = post(one(serde_json::json!({})), key).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["embeddings"][0]["values"].as_array().unwrap().len(),
        3072
    );
    for (bad, status) in [
        (one(serde_json::json!({"taskType": "QUERY"})), 400),
        (one(serde_json::json!({"outputDimensionality": 64})), 400),
        (
            one(serde_json::json!({"title": "t", "taskType": "RETRIEVAL_QUERY"})),
            400,
        ),
        (
            one(serde_json::json!({"task_type": "RETRIEVAL_QUERY"})),
            400,
        ),
        (
            one(serde_json::json!({"model": "models/text-embedding-004"})),
            400,
        ),
        (serde_json::json!({"requests": []}), 400),
        (
            serde_json::json!({"requests": [{"content": {"parts": [{"text": "a"}]}}]}),
            400,
        ),
        (
            serde_json::json!({"requests": vec![one(serde_json::json!({}))["requests"][0].clone(); 101]}),
            400,
        ),
        (serde_json::json!({"requests": [], "extra": 1}), 400),
    ] {
        let r = post(bad.clone(), key).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{bad}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], status);
        assert!(
            body["error"]["message"].is_string() && body["error"]["status"] == "INVALID_ARGUMENT",
            "{body}"
        );
    }
    let r = post(one(serde_json::json!({})), None).await.unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .post(format!(
            "{}/v1beta/models/nope:batchEmbedContents",
            s.base_url()
        ))
        .header("x-goog-api-key", GeminiFixture::KEY)
        .json(&serde_json::json!({"requests": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // embedContent, a single input, is served too.
    let r = client
        .post(format!(
            "{}/v1beta/models/text-embedding-004:embedContent",
            s.base_url()
        ))
        .header("x-goog-api-key", GeminiFixture::KEY)
        .json(&serde_json::json!({"content": {"parts": [{"text": "a"}]}, "taskType": "CLUSTERING"}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    let got: Vec<f32> = body["embedding"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert!(close(
        &got,
        &embeddings_mock::vector("text-embedding-004", "a", 768)
    ));
}

/// Vertex AI against the same dialect: the conformance suite runs over a
/// text-embedding-005 endpoint, gemini-embedding-001 goes one instance per
/// request.
#[derive(Debug)]
struct VertexFixture;

impl Fixture for VertexFixture {
    fn provider(&self) -> &'static str {
        "gemini"
    }
    fn dialects(&self) -> Vec<std::sync::Arc<dyn embeddings_testkit::Dialect>> {
        vec![std::sync::Arc::new(GeminiDialect::default())]
    }
    fn config(&self, base_url: &str) -> Config {
        let mut c = Config::for_provider("gemini");
        c.model = Some("text-embedding-005".into());
        c.dimensions = Some(256);
        c.base_url = Some(base_url.into());
        c.sections.insert(
            "gemini".into(),
            serde_json::json!({"vertex": {"project": "proj-1", "location": "europe-west4",
                "access_token": VertexFixture::TOKEN}}),
        );
        c
    }
    fn model(&self) -> &'static str {
        "text-embedding-005"
    }
    fn dimension(&self) -> usize {
        256
    }
    fn embedding_route(&self) -> embeddings_testkit::Route {
        VERTEX_PREDICT
    }
    fn input_types(&self) -> &'static [InputType] {
        embeddings_gemini::INPUT_TYPES
    }
    fn secret(&self) -> Option<&'static str> {
        Some(Self::TOKEN)
    }
}

impl VertexFixture {
    const TOKEN: &'static str = "ya29.vertex-fixture-token-0123456789";
}

#[tokio::test]
async fn vertex_conformance_and_one_instance_for_gemini_embedding_001() {
    let s = FakeServer::builder()
        .dialect(GeminiDialect::default().access_token(VertexFixture::TOKEN))
        .start()
        .await
        .unwrap();
    let e = GeminiEmbedder::from_config(&VertexFixture.config(&s.base_url())).unwrap();
    conformance::run_fixture(&e, &VertexFixture, &s, false).await;
    s.reset_log();
    let texts = ["a", "b"];
    let got = e.embed_query(texts[0]).await.unwrap();
    assert!(close(
        &got,
        &embeddings_mock::vector("text-embedding-005", "a", 256)
    ));
    let r = &s.requests()[0];
    assert_eq!(
        r.path,
        "/v1/projects/proj-1/locations/europe-west4/publishers/google/models/text-embedding-005:predict"
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", VertexFixture::TOKEN).as_str())
    );
    assert_eq!(r.body["instances"][0]["task_type"], "RETRIEVAL_QUERY");
    assert_eq!(
        r.body["parameters"],
        serde_json::json!({"autoTruncate": false, "outputDimensionality": 256})
    );

    let mut c = VertexFixture.config(&s.base_url());
    c.model = Some("gemini-embedding-001".into());
    c.dimensions = Some(768);
    let g = GeminiEmbedder::from_config(&c).unwrap();
    assert_eq!(g.info().max_batch_size, 1);
    s.reset_log();
    let rows = conformance::embed_within_limits(&g, EmbedRequest::new(&texts))
        .await
        .unwrap();
    assert_eq!(s.requests().len(), 2, "one instance per request");
    for (i, t) in texts.iter().enumerate() {
        assert!(close(
            rows.row(i),
            &embeddings_mock::vector("gemini-embedding-001", t, 768)
        ));
    }
    assert_eq!(
        rows.usage().map(|u| u.prompt_tokens),
        Some(2),
        "token_count summed"
    );
    let err = g.embed_documents(&texts).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    // A wrong token is the service's 401.
    c.sections.insert(
        "gemini".into(),
        serde_json::json!({"vertex": {"project": "p", "access_token": "ya29.wrong-wrong-wrong"}}),
    );
    let err = GeminiEmbedder::from_config(&c)
        .unwrap()
        .embed_documents(&["x"])
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.status()),
        (ErrorKind::Authentication, Some(401))
    );
    assert!(!format!("{err} {err:?}").contains("wrong-wrong"));
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
            RawReply::chunked_forever("200 OK", b"{\"embeddings\":[{\"values\":[0.1,".to_vec()),
            ErrorKind::InvalidResponse,
        ),
        (
            RawReply::json(
                "200 OK",
                r#"{"embeddings":[{"values":[1,0]},{"values":[0,1]}]}"#,
            ),
            ErrorKind::InvalidResponse,
        ),
    ] {
        let raw = RawServer::start(reply).await.unwrap();
        let mut c = GeminiFixture.config(raw.url());
        c.dimensions = Some(768);
        let err = GeminiEmbedder::from_config(&c)
            .unwrap()
            .embed_documents(&["x"])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert_eq!(err.provider(), Some("gemini"));
    }
}
