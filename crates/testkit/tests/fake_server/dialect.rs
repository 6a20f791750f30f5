//! A dialect written outside the testkit, with its public API only, as a
//! provider crate would: mounted beside the built-in ones, refused when its
//! routes collide, given the engine's faults, limits and log, and checked by
//! the conformance suite (input types on the wire included) through a tiny
//! client that honours input types.

use embeddings_core::{
    EmbedRequest, Embedder, Embeddings, Error, ErrorKind, InputType, OutputType, ProviderInfo,
    async_trait,
};
use embeddings_testkit::conformance::{self, Expectations};
use embeddings_testkit::dialect::{
    Dialect, EngineError, Exchange, JSON, Reply, RequestSummary, RouteSpec, RowStyle,
};
use embeddings_testkit::{
    FakeServer, FakeServerConfig, Fault, FaultAction, OpenAiDialect, RecordedRequest, Route,
    StatusFault, Trigger, count_tokens,
};
use serde_json::{Value, json};

use crate::common::*;

const TYPED_EMBED: Route = Route::new("typed_embed");
const TYPED_INFO: Route = Route::new("typed_info");
const DIM: usize = 12;
const MAX_BATCH: usize = 3;

/// `POST /typed/embed {"model", "texts", "input_type"}` → `{"vectors"}`;
/// `GET /typed/info` → `{"max_batch": 3}`. Errors are `{"detail": "..."}`.
#[derive(Debug)]
struct Typed;

fn detail(status: u16, message: &str) -> Reply {
    Reply::json(status, JSON, &json!({ "detail": message }))
}

fn wire_type(name: &str) -> Option<InputType> {
    match name {
        "search_document" => Some(InputType::Document),
        "search_query" => Some(InputType::Query),
        "classification" => Some(InputType::Classification),
        _ => None,
    }
}

impl Dialect for Typed {
    fn name(&self) -> &'static str {
        "typed"
    }

    fn routes(&self) -> Vec<RouteSpec> {
        vec![
            RouteSpec::post(TYPED_EMBED, ["/typed/embed"]).embedding(),
            RouteSpec::get(TYPED_INFO, ["/typed/info"]),
        ]
    }

    fn handle(&self, ex: &Exchange<'_>) -> Reply {
        if ex.route() == TYPED_INFO {
            return Reply::json(200, JSON, &json!({ "max_batch": MAX_BATCH }));
        }
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(ex.body()) else {
            return detail(422, "the body is not a JSON object");
        };
        if let Some(k) = body
            .keys()
            .find(|k| !["model", "texts", "input_type"].contains(&k.as_str()))
        {
            return detail(422, &format!("unknown field {k}"));
        }
        let Some(model) = body.get("model").and_then(Value::as_str) else {
            return detail(422, "model is required");
        };
        if body
            .get("input_type")
            .and_then(Value::as_str)
            .and_then(wire_type)
            .is_none()
        {
            return detail(
                422,
                "input_type must be search_document, search_query or classification",
            );
        }
        let Some(texts) = body.get("texts").and_then(Value::as_array) else {
            return detail(422, "texts is required");
        };
        let texts: Option<Vec<&str>> = texts.iter().map(Value::as_str).collect();
        let Some(texts) = texts.filter(|t| !t.is_empty() && t.len() <= MAX_BATCH) else {
            return detail(422, &format!("texts must hold 1 to {MAX_BATCH} strings"));
        };
        let tokens: u64 = texts.iter().map(|t| count_tokens(t) as u64).sum();
        let limits = match ex.admit(tokens) {
            Ok(l) => l,
            Err(r) => return detail(429, "too many requests").rejected(&r),
        };
        let rows = ex.rows(model, &texts, DIM, RowStyle::Positional);
        Reply::json(200, JSON, &json!({ "vectors": rows.as_json_arrays() }))
            .rate_limits(&limits)
            .embedded(texts.len(), tokens)
    }

    fn error(&self, _route: Route, error: &EngineError<'_>) -> Reply {
        detail(error.status().as_u16(), &error.message())
    }

    fn describe(&self, request: &RecordedRequest) -> RequestSummary {
        let mut s = RequestSummary::default();
        s.model = request.body["model"].as_str().map(str::to_owned);
        s.inputs = request.body["texts"].as_array().map(Vec::len);
        s.input_type = request.body["input_type"].as_str().and_then(wire_type);
        s.output_type = Some(OutputType::F32);
        s
    }
}

/// A client of the typed API that honours document, query and
/// classification on the wire (or, `drop_types`, forgets to send them as
/// asked), learning its batch limit from `/typed/info` in `prepare`.
#[derive(Debug)]
struct TypedClient {
    base: String,
    info: std::sync::OnceLock<ProviderInfo>,
    unprepared: ProviderInfo,
    http: reqwest::Client,
    drop_types: bool,
}

impl TypedClient {
    fn new(server: &FakeServer, drop_types: bool) -> Self {
        let mut info = ProviderInfo::new("typed", "typed-model", DIM);
        info.input_types = &[
            InputType::Document,
            InputType::Query,
            InputType::Classification,
        ];
        TypedClient {
            base: server.base_url(),
            info: std::sync::OnceLock::new(),
            unprepared: info,
            http: client(),
            drop_types,
        }
    }
}

fn http_error(e: reqwest::Error) -> Error {
    Error::new(ErrorKind::Connection, e.to_string())
}

#[async_trait]
impl Embedder for TypedClient {
    fn info(&self) -> &ProviderInfo {
        self.info.get().unwrap_or(&self.unprepared)
    }

    async fn prepare(&self) -> embeddings_core::Result<()> {
        if self.info.get().is_some() {
            return Ok(());
        }
        let v: Value = self
            .http
            .get(format!("{}/typed/info", self.base))
            .send()
            .await
            .map_err(http_error)?
            .json()
            .await
            .map_err(http_error)?;
        let mut info = self.unprepared.clone();
        info.max_batch_size = v["max_batch"].as_u64().unwrap_or(1) as usize;
        let _ = self.info.set(info);
        Ok(())
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> embeddings_core::Result<Embeddings> {
        self.info().check_output_type(&request)?;
        if request.inputs.is_empty() {
            return Ok(Embeddings::empty(DIM));
        }
        let input_type = match (self.drop_types, request.input_type) {
            (false, InputType::Query) => "search_query",
            (false, InputType::Classification) => "classification",
            _ => "search_document",
        };
        let resp = self
            .http
            .post(format!("{}/typed/embed", self.base))
            .json(
                &json!({"model": "typed-model", "texts": request.inputs, "input_type": input_type}),
            )
            .send()
            .await
            .map_err(http_error)?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.map_err(http_error)?;
        if status != 200 {
            let kind = match status {
                401 => ErrorKind::Authentication,
                429 => ErrorKind::RateLimited,
                s if s >= 500 => ErrorKind::Unavailable,
                _ => ErrorKind::InvalidInput,
            };
            return Err(Error::new(
                kind,
                format!("HTTP {status}: {}", body["detail"]),
            ));
        }
        let rows: Vec<Vec<f32>> = serde_json::from_value(body["vectors"].clone())
            .map_err(|e| Error::new(ErrorKind::InvalidResponse, e.to_string()))?;
        if rows.len() != request.inputs.len() {
            return Err(Error::new(ErrorKind::InvalidResponse, "wrong row count"));
        }
        Embeddings::from_rows(DIM, rows.iter().map(Vec::as_slice))
    }

    async fn health_check(&self) -> embeddings_core::Result<()> {
        Ok(())
    }
}

async fn typed_server() -> FakeServer {
    FakeServer::builder()
        .dialect(Typed)
        .dialect(OpenAiDialect::new())
        .start()
        .await
        .expect("the typed and openai dialects share a server")
}

#[tokio::test]
async fn a_foreign_dialect_is_served_beside_a_built_in_one() {
    let s = typed_server().await;
    assert_eq!(s.dialects(), ["typed", "openai"]);
    let a = post(
        &format!("{}/typed/embed", s.base_url()),
        json!({"model": "m", "texts": ["hello", "world"], "input_type": "search_query"}),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    for (i, t) in ["hello", "world"].iter().enumerate() {
        let got: Vec<f32> = serde_json::from_value(a.body["vectors"][i].clone()).unwrap();
        let want = embeddings_mock::vector("m", t, DIM);
        assert!(
            got.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-6),
            "row {i}"
        );
    }
    assert!(a.header("x-ratelimit-limit-requests").is_some());
    // Strict validation is the dialect's.
    let bad = post(
        &format!("{}/typed/embed", s.base_url()),
        json!({"model": "m", "texts": ["a"], "input_type": "search_query", "extra": 1}),
    )
    .await;
    assert_eq!(
        (bad.status, bad.body["detail"].as_str()),
        (422, Some("unknown field extra"))
    );
    // The OpenAI routes still answer, and unknown /v1 paths are OpenAI's 404.
    let o = post(
        &format!("{}/embeddings", s.openai_base_url()),
        json!({"model": SMALL, "input": "x", "dimensions": 4}),
    )
    .await;
    assert_eq!(o.status, 200);
    assert_eq!(get(&format!("{}/v1/nope", s.base_url())).await.status, 404);
    // The log: the dialect read the input type back.
    let log = s.requests();
    assert_eq!(log[0].dialect, Some("typed"));
    assert_eq!(log[0].input_type, Some(InputType::Query));
    assert_eq!(
        (log[0].inputs, log[0].model.as_deref()),
        (Some(2), Some("m"))
    );
    assert_eq!(log[2].dialect, Some("openai"));
    assert_eq!(log[3].dialect, None);
    assert_eq!(s.stats().count(TYPED_EMBED, 200), 1);
    assert_eq!(s.stats().count(TYPED_EMBED, 422), 1);
}

#[tokio::test]
async fn engine_faults_and_limits_apply_to_a_foreign_dialect_in_its_error_shape() {
    let s = FakeServer::builder()
        .config(FakeServerConfig {
            requests_per_minute: Some(2),
            ..FakeServerConfig::default()
        })
        .dialect(Typed)
        .start()
        .await
        .unwrap();
    let url = format!("{}/typed/embed", s.base_url());
    let body = json!({"model": "m", "texts": ["a"], "input_type": "search_document"});
    // Scoped by the dialect's name: every route of it.
    s.try_set_faults(vec![
        Fault::new(FaultAction::Status(StatusFault::new(503)))
            .on(Route::new("typed"))
            .when(Trigger::Nth(1)),
    ])
    .unwrap();
    let a = post(&url, body.clone()).await;
    assert_eq!(a.status, 503);
    assert!(
        a.body["detail"].as_str().is_some_and(|m| !m.is_empty()),
        "{:?}",
        a.body
    );
    // The real rpm limit: two pass, the third is a 429 with retry-after.
    assert_eq!(post(&url, body.clone()).await.status, 200);
    assert_eq!(post(&url, body.clone()).await.status, 200);
    let limited = post(&url, body.clone()).await;
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").is_some());
    assert_eq!(limited.body["detail"], "too many requests");
    // A row fault changes the dialect's rows.
    s.set_rate_limits(None, None);
    s.set_faults(vec![
        Fault::new(FaultAction::WrongCount(-1)).on(TYPED_EMBED),
    ]);
    let short = post(
        &url,
        json!({"model": "m", "texts": ["a", "b"], "input_type": "search_document"}),
    )
    .await;
    assert_eq!(short.body["vectors"].as_array().map(Vec::len), Some(1));
    // Methods are checked by the engine, answered in the dialect's shape.
    let wrong = get(&url).await;
    assert_eq!(
        (wrong.status, wrong.body["detail"].is_string()),
        (405, true)
    );
    // A fault naming an unknown route is refused.
    assert!(
        s.try_set_faults(vec![
            Fault::new(FaultAction::Hang).on(Route::OpenaiEmbeddings)
        ])
        .is_err()
    );
}

/// Claims OpenAI's path: several services use `/v1/embeddings`.
#[derive(Debug)]
struct Squatter;

impl Dialect for Squatter {
    fn name(&self) -> &'static str {
        "squatter"
    }
    fn routes(&self) -> Vec<RouteSpec> {
        vec![RouteSpec::post(Route::new("squatter_embed"), ["/v1/embeddings"]).embedding()]
    }
    fn handle(&self, _: &Exchange<'_>) -> Reply {
        Reply::error(500, "unused")
    }
}

#[tokio::test]
async fn colliding_dialects_are_refused_and_served_by_separate_servers() {
    let err = FakeServer::builder()
        .dialect(OpenAiDialect::new())
        .dialect(Squatter)
        .start()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let text = err.to_string();
    for part in ["/v1/embeddings", "squatter", "openai", "separate servers"] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    // A parameter spelled differently is still the same path.
    #[derive(Debug)]
    struct Models;
    impl Dialect for Models {
        fn name(&self) -> &'static str {
            "models"
        }
        fn routes(&self) -> Vec<RouteSpec> {
            vec![RouteSpec::get(
                Route::new("models_one"),
                ["/v1/models/{*name}"],
            )]
        }
        fn handle(&self, _: &Exchange<'_>) -> Reply {
            Reply::error(500, "unused")
        }
    }
    assert!(
        FakeServer::builder()
            .dialect(OpenAiDialect::new())
            .dialect(Models)
            .start()
            .await
            .is_err()
    );
    // The same dialect twice is refused too.
    assert!(
        FakeServer::builder()
            .dialect(Typed)
            .dialect(Typed)
            .start()
            .await
            .is_err()
    );
    // Each on its own server: fine.
    let a = FakeServer::builder()
        .dialect(OpenAiDialect::new())
        .start()
        .await
        .unwrap();
    let b = FakeServer::builder()
        .dialect(Squatter)
        .start()
        .await
        .unwrap();
    assert_ne!(a.addr(), b.addr());
    assert_eq!(b.routes(), [Route::new("squatter_embed")]);
}

#[tokio::test]
async fn the_suite_checks_input_types_on_the_wire_within_the_advertised_limit() {
    let s = typed_server().await;
    let c = TypedClient::new(&s, false);
    conformance::run_all(
        &c,
        &Expectations::deterministic("typed-model", DIM).packs_binary(false),
    )
    .await;
    // run_all learned the limit of 3 and never sent more (the dialect refuses more).
    assert_eq!(c.info().max_batch_size, MAX_BATCH);
    assert_eq!(s.stats().count(TYPED_EMBED, 422), 0);
    conformance::check_input_types(&c, &s, TYPED_EMBED).await;
    let queries = s.requests();
    assert!(
        queries
            .iter()
            .all(|r| r.input_type == Some(InputType::Query))
    );
    // Faults make typed errors.
    s.set_faults(vec![
        Fault::new(FaultAction::Status(StatusFault::new(401))).on(TYPED_EMBED),
    ]);
    conformance::check_error(&c, ErrorKind::Authentication, None).await;
}

#[tokio::test]
#[should_panic(expected = "reached typed_embed as Some(Document)")]
async fn the_suite_catches_an_input_type_lost_on_the_way() {
    let s = typed_server().await;
    let c = TypedClient::new(&s, true);
    c.prepare().await.unwrap();
    conformance::check_input_types(&c, &s, TYPED_EMBED).await;
}
