//! The Ollama dialect: `/api/embed`, `/api/embeddings`, `/api/tags`,
//! `/api/show`, `/api/version` and `/`, and its fixture.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use embeddings_core::Config;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::config::{FakeServerConfig, OllamaModel};
use super::dialect::{
    Dialect, EngineError, Exchange, Reply, RequestSummary, RouteSpec, RowFaultKind, RowStyle,
};
use super::input::{Input, Text};
use super::limits::LimitRejection;
use super::record::RecordedRequest;
use super::route::Route;
use super::rows::JsonRows;
use super::tokens::count_tokens;
use crate::fixture::Fixture;

const OLLAMA_JSON: &str = "application/json; charset=utf-8";

#[allow(non_upper_case_globals)]
impl Route {
    /// Every Ollama route (a fault scope: the Ollama dialect's name).
    pub const Ollama: Route = Route::new("ollama");
    /// `POST /api/embed`.
    pub const OllamaEmbed: Route = Route::new("ollama_embed");
    /// `POST /api/embeddings` (legacy).
    pub const OllamaEmbeddings: Route = Route::new("ollama_embeddings");
    /// `GET /api/tags`.
    pub const OllamaTags: Route = Route::new("ollama_tags");
    /// `POST /api/show`.
    pub const OllamaShow: Route = Route::new("ollama_show");
    /// `GET /api/version`.
    pub const OllamaVersion: Route = Route::new("ollama_version");
    /// `GET /` ("Ollama is running").
    pub const OllamaRoot: Route = Route::new("ollama_root");
}

/// The Ollama API as a fake-server dialect: `/api/embed` (and the legacy
/// `/api/embeddings`), `/api/tags`, `/api/show` (dimension and context
/// length in `model_info`), `/api/version`, `/`; Ollama's error shape
/// `{error: "..."}`; rows as JSON float arrays, by position.
///
/// ```
/// use embeddings_testkit::{OllamaDialect, OllamaModel};
/// let d = OllamaDialect::new().model("tiny:latest", OllamaModel::new(8)).version("0.3.0");
/// assert_eq!(d.model_of("tiny").map(|m| m.dimension), Some(8));
/// assert_eq!(d.model_of("all-minilm:latest").map(|m| m.dimension), Some(384));
/// ```
#[derive(Debug, Clone)]
pub struct OllamaDialect {
    models: BTreeMap<String, OllamaModel>,
    version: String,
}

impl Default for OllamaDialect {
    fn default() -> Self {
        OllamaDialect::new()
    }
}

impl OllamaDialect {
    /// The default models ([`OllamaModel::defaults`]), version 0.12.0.
    pub fn new() -> Self {
        OllamaDialect {
            models: OllamaModel::defaults()
                .into_iter()
                .map(|(n, m)| (n.to_owned(), m))
                .collect(),
            version: "0.12.0".into(),
        }
    }

    /// The models and version of `config` (`ollama_models`, `ollama_version`).
    pub fn from_config(config: &FakeServerConfig) -> Self {
        let mut d = OllamaDialect::new();
        for (name, model) in &config.ollama_models {
            d = d.model(name, model.clone());
        }
        if let Some(v) = &config.ollama_version {
            d.version = v.clone();
        }
        d
    }

    /// Serves one more model (`name:latest` is `name`).
    pub fn model(mut self, name: &str, model: OllamaModel) -> Self {
        self.models.insert(canonical(name).to_owned(), model);
        self
    }

    /// What `GET /api/version` answers.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// A served model (`name:latest` is `name`).
    pub fn model_of(&self, name: &str) -> Option<&OllamaModel> {
        self.models.get(canonical(name))
    }

    fn lookup(&self, name: &str) -> Option<(&str, &OllamaModel)> {
        self.models
            .get_key_value(canonical(name))
            .map(|(k, v)| (k.as_str(), v))
    }
}

impl Dialect for OllamaDialect {
    fn name(&self) -> &'static str {
        Route::Ollama.as_str()
    }

    fn routes(&self) -> Vec<RouteSpec> {
        vec![
            RouteSpec::post(Route::OllamaEmbed, ["/api/embed"]).embedding(),
            RouteSpec::post(Route::OllamaEmbeddings, ["/api/embeddings"]).embedding(),
            RouteSpec::get(Route::OllamaTags, ["/api/tags"]),
            RouteSpec::post(Route::OllamaShow, ["/api/show"]),
            RouteSpec::get(Route::OllamaVersion, ["/api/version"]),
            RouteSpec::get(Route::OllamaRoot, ["/"]),
        ]
    }

    fn handle(&self, ex: &Exchange<'_>) -> Reply {
        match ex.route() {
            Route::OllamaEmbed => embed(self, ex),
            Route::OllamaEmbeddings => embeddings(self, ex),
            Route::OllamaTags => tags(self),
            Route::OllamaShow => show(self, ex),
            Route::OllamaVersion => Reply::json(
                StatusCode::OK,
                OLLAMA_JSON,
                &Version {
                    version: &self.version,
                },
            ),
            _ => Reply::bytes(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                b"Ollama is running".to_vec(),
            ),
        }
    }

    fn error(&self, _route: Route, error: &EngineError<'_>) -> Reply {
        match error {
            EngineError::MethodNotAllowed { .. } => Reply::bytes(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"405 method not allowed".to_vec(),
            ),
            _ => ollama_error(error.status(), &error.message()),
        }
    }

    fn describe(&self, request: &RecordedRequest) -> RequestSummary {
        let mut s = RequestSummary::default();
        let body = &request.body;
        match request.route {
            Route::OllamaEmbed => {
                s.inputs = match &body["input"] {
                    serde_json::Value::String(_) => Some(1),
                    serde_json::Value::Array(items) => Some(items.len()),
                    serde_json::Value::Null => Some(0),
                    _ => None,
                };
            }
            Route::OllamaEmbeddings => {
                s.inputs = Some(usize::from(
                    body["prompt"].as_str().is_some_and(|p| !p.is_empty()),
                ));
            }
            _ => return s,
        }
        s.model = body["model"].as_str().map(str::to_owned);
        // Ollama has neither an input type nor an output type.
        s
    }
}

/// `name:latest` is `name`.
fn canonical(name: &str) -> &str {
    name.strip_suffix(":latest").unwrap_or(name)
}

#[derive(Serialize)]
struct OllamaErrorBody<'a> {
    error: &'a str,
}

/// `{error: "..."}`.
fn ollama_error(status: StatusCode, message: &str) -> Reply {
    Reply::json(status, OLLAMA_JSON, &OllamaErrorBody { error: message })
}

fn model_not_found(name: &str) -> Reply {
    ollama_error(
        StatusCode::NOT_FOUND,
        &format!("model \"{name}\" not found, try pulling it first"),
    )
}

fn bad_json(e: &serde_json::Error) -> Reply {
    let text = e.to_string();
    let message = text.split(" at line ").next().unwrap_or(&text);
    ollama_error(StatusCode::BAD_REQUEST, message)
}

fn rate_limited(r: &LimitRejection) -> Reply {
    ollama_error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded").rejected(r)
}

#[derive(Deserialize)]
struct EmbedRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Text<'a>>,
    #[serde(borrow, default)]
    input: Option<Input<'a>>,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    options: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    keep_alive: Option<IgnoredAny>,
    #[serde(default)]
    dimensions: Option<i64>,
}

#[derive(Serialize)]
struct EmbedResponse<'a> {
    model: &'a str,
    embeddings: JsonRows<'a>,
    total_duration: u64,
    load_duration: u64,
    prompt_eval_count: usize,
}

/// `POST /api/embed`.
fn embed(d: &OllamaDialect, ex: &Exchange<'_>) -> Reply {
    let started = Instant::now();
    let req: EmbedRequest<'_> = match serde_json::from_slice(ex.body()) {
        Ok(r) => r,
        Err(e) => return bad_json(&e),
    };
    let Some(Text(name)) = req.model.filter(|m| !m.0.is_empty()) else {
        return ollama_error(StatusCode::BAD_REQUEST, "model is required");
    };
    let texts: Vec<Cow<'_, str>> = match req.input {
        None => Vec::new(),
        Some(Input::Texts(t)) => t,
        Some(Input::Tokens(_)) => {
            return ollama_error(StatusCode::BAD_REQUEST, "invalid input type");
        }
    };
    let Some((model_name, model)) = d.lookup(&name) else {
        return model_not_found(&name);
    };
    let dim = match req.dimensions {
        None | Some(0) => model.dimension,
        Some(d) if d < 0 || d as u64 > model.dimension as u64 => {
            return ollama_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "invalid dimensions {d}: must be between 1 and {}",
                    model.dimension
                ),
            );
        }
        Some(d) => d as usize,
    };
    let truncate = req.truncate.unwrap_or(true);
    let mut prompt_tokens = 0;
    for text in &texts {
        let n = count_tokens(text);
        if n > model.context_length && !truncate {
            return ollama_error(
                StatusCode::BAD_REQUEST,
                "the input length exceeds the context length",
            );
        }
        prompt_tokens += n.min(model.context_length);
    }
    let snapshot = match ex.admit(prompt_tokens as u64) {
        Ok(s) => s,
        Err(r) => return rate_limited(&r),
    };
    let rows = ex.rows(model_name, &texts, dim, RowStyle::Positional);
    let mut body = Vec::with_capacity(rows.floats() * 12 + 256);
    let response = EmbedResponse {
        model: &name,
        embeddings: rows.as_json_arrays(),
        total_duration: started.elapsed().as_nanos() as u64 + 1_000_000,
        load_duration: 1_000_000,
        prompt_eval_count: prompt_tokens,
    };
    if serde_json::to_writer(&mut body, &response).is_err() {
        return ollama_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode the response",
        );
    }
    Reply::bytes(StatusCode::OK, OLLAMA_JSON, body)
        .rate_limits(&snapshot)
        .embedded(texts.len(), prompt_tokens as u64)
}

#[derive(Deserialize)]
struct LegacyRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Text<'a>>,
    #[serde(borrow, default)]
    prompt: Option<Text<'a>>,
    #[serde(default)]
    #[allow(dead_code)]
    options: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    keep_alive: Option<IgnoredAny>,
}

#[derive(Serialize)]
struct LegacyResponse<'a> {
    embedding: &'a [f32],
}

/// `POST /api/embeddings` (legacy): one prompt, one vector; an empty prompt
/// gives an empty vector, as Ollama does.
fn embeddings(d: &OllamaDialect, ex: &Exchange<'_>) -> Reply {
    let req: LegacyRequest<'_> = match serde_json::from_slice(ex.body()) {
        Ok(r) => r,
        Err(e) => return bad_json(&e),
    };
    let Some(Text(name)) = req.model.filter(|m| !m.0.is_empty()) else {
        return ollama_error(StatusCode::BAD_REQUEST, "model is required");
    };
    let Some((model_name, model)) = d.lookup(&name) else {
        return model_not_found(&name);
    };
    let prompt = req.prompt.map(|p| p.0).unwrap_or_default();
    let tokens = count_tokens(&prompt).min(model.context_length);
    let snapshot = match ex.admit(tokens as u64) {
        Ok(s) => s,
        Err(r) => return rate_limited(&r),
    };
    // The row faults that make sense for a single vector.
    let n = usize::from(!prompt.is_empty());
    let texts = &[prompt][..n];
    let rows = ex.rows_with(
        model_name,
        texts,
        model.dimension,
        RowStyle::Positional,
        |k| {
            matches!(
                k,
                RowFaultKind::Nan | RowFaultKind::WrongDimension | RowFaultKind::WrongCount
            )
        },
    );
    let embedding: &[f32] = if rows.is_empty() { &[] } else { rows.row(0) };
    Reply::json(StatusCode::OK, OLLAMA_JSON, &LegacyResponse { embedding })
        .rate_limits(&snapshot)
        .embedded(n, tokens as u64)
}

#[derive(Serialize)]
struct Details<'a> {
    parent_model: &'static str,
    format: &'static str,
    family: &'a str,
    families: [&'a str; 1],
    parameter_size: &'static str,
    quantization_level: &'static str,
}

fn details(model: &OllamaModel) -> Details<'_> {
    Details {
        parent_model: "",
        format: "gguf",
        family: &model.family,
        families: [&model.family],
        parameter_size: "137M",
        quantization_level: "F16",
    }
}

/// A stable fake digest for a model name.
fn digest(name: &str) -> String {
    let mut state = embeddings_mock::seed("digest", name);
    (0..4)
        .map(|_| format!("{:016x}", embeddings_mock::splitmix64(&mut state)))
        .collect()
}

const MODIFIED_AT: &str = "2025-01-01T00:00:00Z";

#[derive(Serialize)]
struct Tag<'a> {
    name: String,
    model: String,
    modified_at: &'static str,
    size: u64,
    digest: String,
    details: Details<'a>,
}

#[derive(Serialize)]
struct Tags<'a> {
    models: Vec<Tag<'a>>,
}

/// `GET /api/tags`.
fn tags(d: &OllamaDialect) -> Reply {
    let models = d
        .models
        .iter()
        .map(|(name, model)| Tag {
            name: format!("{name}:latest"),
            model: format!("{name}:latest"),
            modified_at: MODIFIED_AT,
            size: model.dimension as u64 * 300_000,
            digest: digest(name),
            details: details(model),
        })
        .collect();
    Reply::json(StatusCode::OK, OLLAMA_JSON, &Tags { models })
}

#[derive(Deserialize)]
struct ShowRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Text<'a>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
}

#[derive(Serialize)]
struct Show<'a> {
    license: &'static str,
    modelfile: String,
    parameters: String,
    template: &'static str,
    details: Details<'a>,
    model_info: BTreeMap<String, serde_json::Value>,
    capabilities: [&'static str; 1],
    modified_at: &'static str,
}

/// `POST /api/show`.
fn show(d: &OllamaDialect, ex: &Exchange<'_>) -> Reply {
    let req: ShowRequest<'_> = match serde_json::from_slice(ex.body()) {
        Ok(r) => r,
        Err(e) => return bad_json(&e),
    };
    let Some(Text(name)) = req.model.or(req.name).filter(|m| !m.0.is_empty()) else {
        return ollama_error(StatusCode::BAD_REQUEST, "model is required");
    };
    let Some((model_name, model)) = d.lookup(&name) else {
        return ollama_error(StatusCode::NOT_FOUND, &format!("model '{name}' not found"));
    };
    let family = model.family.as_str();
    let model_info = BTreeMap::from([
        ("general.architecture".to_owned(), family.into()),
        ("general.basename".to_owned(), model_name.into()),
        ("general.parameter_count".to_owned(), 136_727_040u64.into()),
        (format!("{family}.embedding_length"), model.dimension.into()),
        (
            format!("{family}.context_length"),
            model.context_length.into(),
        ),
        (format!("{family}.pooling_type"), 1.into()),
    ]);
    Reply::json(
        StatusCode::OK,
        OLLAMA_JSON,
        &Show {
            license: "Apache License 2.0",
            modelfile: format!(
                "# Modelfile generated by the embeddings fake server\nFROM {model_name}:latest\n"
            ),
            parameters: format!("num_ctx {}", model.context_length),
            template: "{{ .Prompt }}",
            details: details(model),
            model_info,
            capabilities: ["embedding"],
            modified_at: MODIFIED_AT,
        },
    )
}

#[derive(Serialize)]
struct Version<'a> {
    version: &'a str,
}

/// The `ollama` provider against the Ollama dialect: `all-minilm`, 384
/// dimensions (learned from the server), JSON float rows by position.
#[derive(Debug, Clone, Copy, Default)]
pub struct OllamaFixture;

impl Fixture for OllamaFixture {
    fn provider(&self) -> &'static str {
        "ollama"
    }

    fn dialects(&self) -> Vec<Arc<dyn Dialect>> {
        vec![Arc::new(OllamaDialect::new())]
    }

    fn config(&self, base_url: &str) -> Config {
        let mut c = Config::for_provider(self.provider());
        c.model = Some(self.model().to_owned());
        c.base_url = Some(base_url.to_owned());
        c
    }

    fn model(&self) -> &'static str {
        "all-minilm"
    }

    fn dimension(&self) -> usize {
        384
    }

    fn embedding_route(&self) -> Route {
        Route::OllamaEmbed
    }
}

crate::register_fixture!(OllamaFixture);
