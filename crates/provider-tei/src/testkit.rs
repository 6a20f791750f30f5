//! The TEI API as a fake-server dialect, and the fixture that points the
//! `tei` provider at it (feature `testkit`).
//!
//! Routes: `POST /embed`, `GET /info`, `GET /health`. Validation follows
//! the router of text-embeddings-inference: `inputs` a string or a
//! non-empty list of strings, `normalize`/`truncate` booleans,
//! `truncation_direction` `"Left"`/`"Right"`, `prompt_name` one of the
//! model's prompts, at most `max_client_batch_size` inputs (413), no input
//! over `max_input_length` tokens unless truncating (413), an unknown
//! field refused (422, as a typo'd field would otherwise be silently
//! ignored); errors as `{"error", "error_type"}`. The prompt is checked,
//! not prepended, so that rows stay the DESIGN.md §4 vectors of the texts.

use std::collections::BTreeMap;
use std::sync::Arc;

use embeddings_core::{Config, InputType};
use embeddings_testkit::dialect::{
    Dialect, EngineError, Exchange, JSON, Reply, RequestSummary, RouteSpec, RowStyle,
};
use embeddings_testkit::{RecordedRequest, Route, count_tokens};
use serde::Deserialize;

/// `POST /embed`.
pub const TEI_EMBED: Route = Route::new("tei_embed");
/// `GET /info`.
pub const TEI_INFO: Route = Route::new("tei_info");
/// `GET /health`.
pub const TEI_HEALTH: Route = Route::new("tei_health");

/// The fake TEI server's model and limits.
#[derive(Debug, Clone)]
pub struct TeiDialect {
    model_id: String,
    dimension: usize,
    max_client_batch_size: usize,
    max_input_length: usize,
    max_batch_tokens: usize,
    auto_truncate: bool,
    /// prompt name → prompt text.
    prompts: BTreeMap<String, String>,
    api_key: Option<String>,
    healthy: bool,
}

impl Default for TeiDialect {
    fn default() -> Self {
        TeiDialect::new()
    }
}

impl TeiDialect {
    /// `BAAI/bge-small-en-v1.5` at 384 dimensions, TEI's default limits
    /// (32 inputs, 512 tokens per input, 16,384 batch tokens), prompts
    /// `query` and `passage`.
    pub fn new() -> Self {
        TeiDialect {
            model_id: TeiFixture::MODEL.into(),
            dimension: TeiFixture::DIMENSION,
            max_client_batch_size: 32,
            max_input_length: 512,
            max_batch_tokens: 16_384,
            auto_truncate: false,
            prompts: [("query", "query: "), ("passage", "passage: ")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
            api_key: None,
            healthy: true,
        }
    }

    /// Serves `model_id` at `dimension`.
    pub fn model(mut self, model_id: &str, dimension: usize) -> Self {
        self.model_id = model_id.into();
        self.dimension = dimension;
        self
    }

    /// `--max-client-batch-size`.
    pub fn max_client_batch_size(mut self, n: usize) -> Self {
        self.max_client_batch_size = n;
        self
    }

    /// The model's `max_input_length`.
    pub fn max_input_length(mut self, n: usize) -> Self {
        self.max_input_length = n;
        self
    }

    /// `--auto-truncate`.
    pub fn auto_truncate(mut self, on: bool) -> Self {
        self.auto_truncate = on;
        self
    }

    /// `--api-key`: requests must carry `Authorization: Bearer <key>`.
    pub fn api_key(mut self, key: &str) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Whether `/health` says 200 (else 503, and `/embed` too).
    pub fn healthy(mut self, healthy: bool) -> Self {
        self.healthy = healthy;
        self
    }
}

fn tei_error(status: u16, message: &str, error_type: &str) -> Reply {
    Reply::json(
        status,
        JSON,
        &serde_json::json!({ "error": message, "error_type": error_type }),
    )
}

fn error_type_of(status: u16) -> &'static str {
    match status {
        400 => "empty",
        413 => "validation",
        422 => "tokenizer",
        429 => "overloaded",
        503 => "unhealthy",
        _ => "backend",
    }
}

/// `inputs`: a string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Inputs {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbedBody {
    inputs: Inputs,
    #[serde(default)]
    normalize: Option<bool>,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Option<Direction>,
    #[serde(default)]
    prompt_name: Option<String>,
}

#[derive(Deserialize)]
enum Direction {
    Left,
    Right,
}

impl TeiDialect {
    fn authorized(&self, ex: &Exchange<'_>) -> bool {
        match &self.api_key {
            None => true,
            Some(k) => ex.header("authorization") == Some(&format!("Bearer {k}")),
        }
    }

    fn embed(&self, ex: &Exchange<'_>) -> Reply {
        if !self.healthy {
            return tei_error(503, "unhealthy", "unhealthy");
        }
        if ex
            .header("content-type")
            .is_none_or(|c| !c.starts_with("application/json"))
        {
            return Reply::bytes(
                415,
                "text/plain; charset=utf-8",
                b"Expected request with `Content-Type: application/json`".to_vec(),
            );
        }
        let body: EmbedBody = match serde_json::from_slice(ex.body()) {
            Ok(b) => b,
            Err(e) => {
                return Reply::bytes(
                    422,
                    "text/plain; charset=utf-8",
                    format!("Failed to deserialize the JSON body into the target type: {e}")
                        .into_bytes(),
                );
            }
        };
        let texts = match body.inputs {
            Inputs::One(t) => vec![t],
            Inputs::Many(t) => t,
        };
        if texts.is_empty() {
            return tei_error(400, "`inputs` cannot be empty", "empty");
        }
        if texts.len() > self.max_client_batch_size {
            return tei_error(
                413,
                &format!(
                    "batch size {} > maximum allowed batch size {}",
                    texts.len(),
                    self.max_client_batch_size
                ),
                "validation",
            );
        }
        if let Some(p) = &body.prompt_name {
            if !self.prompts.contains_key(p) {
                return tei_error(
                    422,
                    &format!(
                        "Tokenizer error: Prompt name `{p}` is not in the prompts list: {:?}",
                        self.prompts.keys().collect::<Vec<_>>()
                    ),
                    "tokenizer",
                );
            }
        }
        let _ = (body.normalize, &body.truncation_direction);
        let truncate = body.truncate.unwrap_or(self.auto_truncate);
        let mut tokens = 0u64;
        for t in &texts {
            let n = count_tokens(t);
            if n > self.max_input_length && !truncate {
                return tei_error(
                    413,
                    &format!(
                        "`inputs` must have less than {} tokens. Given: {n}",
                        self.max_input_length
                    ),
                    "validation",
                );
            }
            tokens += n.min(self.max_input_length) as u64;
        }
        let limits = match ex.admit(tokens) {
            Ok(l) => l,
            Err(r) => return tei_error(429, "Model is overloaded", "overloaded").rejected(&r),
        };
        let rows = ex.rows(&self.model_id, &texts, self.dimension, RowStyle::Positional);
        Reply::json(200, JSON, &rows.as_json_arrays())
            .rate_limits(&limits)
            .embedded(texts.len(), tokens)
    }

    fn info(&self) -> Reply {
        Reply::json(
            200,
            JSON,
            &serde_json::json!({
                "model_id": self.model_id,
                "model_sha": null,
                "model_dtype": "float16",
                "model_type": { "embedding": { "pooling": "cls" } },
                "max_concurrent_requests": 512,
                "max_input_length": self.max_input_length,
                "max_batch_tokens": self.max_batch_tokens,
                "max_batch_requests": null,
                "max_client_batch_size": self.max_client_batch_size,
                "auto_truncate": self.auto_truncate,
                "tokenization_workers": 2,
                "version": "1.8.0",
                "sha": null,
                "docker_label": null,
            }),
        )
    }
}

impl Dialect for TeiDialect {
    fn name(&self) -> &'static str {
        "tei"
    }

    fn routes(&self) -> Vec<RouteSpec> {
        vec![
            RouteSpec::post(TEI_EMBED, ["/embed"]).embedding(),
            RouteSpec::get(TEI_INFO, ["/info"]),
            RouteSpec::get(TEI_HEALTH, ["/health"]),
        ]
    }

    fn handle(&self, ex: &Exchange<'_>) -> Reply {
        if ex.route() != TEI_HEALTH && !self.authorized(ex) {
            return Reply::bytes(401, "text/plain", Vec::new());
        }
        match ex.route() {
            TEI_EMBED => self.embed(ex),
            TEI_INFO => self.info(),
            _ if self.healthy => Reply::bytes(200, "text/plain", Vec::new()),
            _ => tei_error(503, "unhealthy", "unhealthy"),
        }
    }

    fn error(&self, _route: Route, e: &EngineError<'_>) -> Reply {
        let status = e.status().as_u16();
        match e {
            EngineError::MethodNotAllowed { .. } => Reply::bytes(405, "text/plain", Vec::new()),
            // TEI's auth middleware and axum answer these without its JSON shape.
            _ if matches!(status, 401 | 403 | 404) => {
                Reply::bytes(status, "text/plain", e.message().as_bytes().to_vec())
            }
            _ => tei_error(status, &e.message(), error_type_of(status)),
        }
    }

    fn describe(&self, r: &RecordedRequest) -> RequestSummary {
        let mut s = RequestSummary::default();
        if r.route != TEI_EMBED {
            return s;
        }
        s.model = Some(self.model_id.clone());
        s.inputs = match &r.body["inputs"] {
            serde_json::Value::String(_) => Some(1),
            serde_json::Value::Array(a) => Some(a.len()),
            _ => None,
        };
        s.input_type = match r.body["prompt_name"].as_str() {
            Some("query") => Some(InputType::Query),
            Some("passage") => Some(InputType::Document),
            _ => None,
        };
        s
    }
}

/// Builds the `tei` provider against a [`TeiDialect`] server, with the
/// prompts `query` (queries) and `passage` (documents) and a key.
#[derive(Debug)]
pub struct TeiFixture;

impl TeiFixture {
    /// The model served.
    pub const MODEL: &'static str = "BAAI/bge-small-en-v1.5";
    /// Its dimension.
    pub const DIMENSION: usize = 384;
    /// The key in the fixture's config (the fake accepts any).
    pub const KEY: &'static str = "hf_teifixturekey0123456789";
}

impl embeddings_testkit::Fixture for TeiFixture {
    fn provider(&self) -> &'static str {
        crate::NAME
    }

    fn dialects(&self) -> Vec<Arc<dyn Dialect>> {
        vec![Arc::new(TeiDialect::new())]
    }

    fn config(&self, base_url: &str) -> Config {
        let mut c = Config::for_provider(crate::NAME);
        c.base_url = Some(base_url.into());
        c.api_key = Some(Self::KEY.to_owned().into());
        c.sections.insert(
            crate::NAME.into(),
            serde_json::json!({ "prompts": { "query": "query", "document": "passage" } }),
        );
        c
    }

    fn model(&self) -> &'static str {
        Self::MODEL
    }

    fn dimension(&self) -> usize {
        Self::DIMENSION
    }

    fn embedding_route(&self) -> Route {
        TEI_EMBED
    }

    fn input_types(&self) -> &'static [InputType] {
        &[InputType::Document, InputType::Query]
    }

    fn secret(&self) -> Option<&'static str> {
        Some(Self::KEY)
    }
}

embeddings_testkit::register_fixture!(TeiFixture);
