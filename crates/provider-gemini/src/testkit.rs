//! The Gemini API (`batchEmbedContents`, `embedContent`) and Vertex AI's
//! `predict` as one fake-server dialect ([`GeminiDialect`]), and the
//! `gemini` fixture ([`GeminiFixture`]) that runs the conformance suite and
//! the fault matrix over this provider.
//!
//! As strict as Google's references: a key (`x-goog-api-key` or `?key=`)
//! is required (none: 403 `PERMISSION_DENIED`; a wrong one: 400
//! `INVALID_ARGUMENT` with reason `API_KEY_INVALID`); an unknown model is
//! 404 `NOT_FOUND`; an unknown field anywhere is 400 (`Unknown name`);
//! `requests` holds 1 to 100 requests, each naming the URL's model as
//! `models/{model}` and one `content` with one text part; `taskType` one
//! of the eight task types; `title` only with `RETRIEVAL_DOCUMENT`;
//! `outputDimensionality` within the model's range (none for
//! embedding-001); an input over the model's 2,048 tokens is a 400.
//! Vertex: `Authorization: Bearer` required (401 `UNAUTHENTICATED`), 1
//! instance for gemini-embedding-001 and up to 250 (20,000 tokens) for the
//! others, `autoTruncate` honoured. Errors are `{"error": {"code",
//! "message", "status"}}`.
//!
//! Vectors: DESIGN.md §4 rows of `(model, text, dimension)`, except that
//! gemini-embedding-001 below 3072 dimensions answers what Google
//! describes: the full 3072-dimension vector truncated and **not**
//! renormalised (so a client that skips renormalisation gets vectors
//! shorter than 1, and fails the suite's checks).

// A validation step's refusal is the `Reply` the fake server sends.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use embeddings_core::{Config, InputType};
use embeddings_testkit::dialect::{
    Dialect, EngineError, Exchange, JSON, Reply, RequestSummary, RouteSpec, RowStyle, Rows,
};
use embeddings_testkit::{Fixture, RecordedRequest, Route, count_tokens};
use serde_json::{Map, Value, json};

use crate::{ModelSpec, TaskType, known_model};

/// `POST /v1beta/models/{model}:batchEmbedContents` and `:embedContent`.
pub const GEMINI_EMBED: Route = Route::new("gemini_embed");
/// `POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:predict`.
pub const VERTEX_PREDICT: Route = Route::new("vertex_predict");

/// The models served by default.
pub const DEFAULT_MODELS: &[&str] = &[
    "gemini-embedding-001",
    "text-embedding-004",
    "text-embedding-005",
    "embedding-001",
];

/// The Gemini API and Vertex AI embeddings as a dialect.
#[derive(Debug, Clone)]
pub struct GeminiDialect {
    api_key: Option<String>,
    token: Option<String>,
    models: BTreeMap<String, ModelSpec>,
}

impl Default for GeminiDialect {
    fn default() -> Self {
        GeminiDialect {
            api_key: None,
            token: None,
            models: DEFAULT_MODELS
                .iter()
                .filter_map(|m| Some(((*m).to_owned(), known_model(m)?)))
                .collect(),
        }
    }
}

/// Google's canonical code of an HTTP status.
pub fn canonical_status(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if s >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

/// `{"error": {"code", "message", "status"}}`.
pub fn google_error(status: u16, message: &str) -> Reply {
    Reply::json(
        status,
        JSON,
        &json!({"error": {"code": status, "message": message, "status": canonical_status(status)}}),
    )
}

fn bad(message: &str) -> Reply {
    google_error(400, message)
}

/// The `InputType` a task type stands for (`None`: a task type without one).
pub fn input_type_of(task: &str) -> Option<InputType> {
    match task {
        "RETRIEVAL_DOCUMENT" => Some(InputType::Document),
        "RETRIEVAL_QUERY" => Some(InputType::Query),
        "CLASSIFICATION" => Some(InputType::Classification),
        "CLUSTERING" => Some(InputType::Clustering),
        "SEMANTIC_SIMILARITY" => Some(InputType::Similarity),
        _ => None,
    }
}

/// One text to embed, validated.
struct Item {
    text: String,
}

impl GeminiDialect {
    /// Requires exactly this Gemini API key (default: any non-empty key).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Requires exactly this Vertex AI bearer token (default: any).
    pub fn access_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Serves one more model.
    pub fn model(mut self, name: &str, spec: ModelSpec) -> Self {
        self.models.insert(name.to_owned(), spec);
        self
    }

    fn check_key(&self, ex: &Exchange<'_>) -> Option<Reply> {
        let query_key = ex.path().split_once('?').and_then(|(_, q)| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("key=").map(str::to_owned))
        });
        let sent = ex
            .header("x-goog-api-key")
            .map(str::to_owned)
            .or(query_key)
            .filter(|k| !k.is_empty());
        match (sent, &self.api_key) {
            (None, _) => Some(google_error(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            )),
            (Some(k), Some(want)) if &k != want => Some(Reply::json(
                400,
                JSON,
                &json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                    "status": "INVALID_ARGUMENT",
                    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com"}]}}),
            )),
            _ => None,
        }
    }

    /// `{model}:{method}` at the end of the path.
    fn target<'p>(&self, ex: &'p Exchange<'_>) -> Result<(String, ModelSpec, &'p str), Reply> {
        let path = ex.path().split('?').next().unwrap_or("");
        let last = path.rsplit('/').next().unwrap_or("");
        let Some((model, method)) = last.split_once(':') else {
            return Err(google_error(
                404,
                &format!("The requested URL {path} was not found on this server."),
            ));
        };
        let Some(spec) = self.models.get(model) else {
            return Err(google_error(
                404,
                &format!(
                    "models/{model} is not found for API version v1beta, or is not supported for embedContent. Call ListModels to see the list of available models and their supported methods."
                ),
            ));
        };
        Ok((model.to_owned(), *spec, method))
    }

    fn dimension(
        &self,
        spec: &ModelSpec,
        model: &str,
        v: Option<&Value>,
        at: &str,
    ) -> Result<usize, Reply> {
        match v {
            None | Some(Value::Null) => Ok(spec.dimension),
            Some(v) => {
                let Some((lo, hi)) = spec.output_dimensions else {
                    return Err(bad(&format!(
                        "* {at}: outputDimensionality is not supported for models/{model}"
                    )));
                };
                match v.as_u64() {
                    Some(d) if (lo as u64..=hi as u64).contains(&d) => Ok(d as usize),
                    _ => Err(bad(&format!(
                        "* {at}: outputDimensionality must be between {lo} and {hi}, got {v}"
                    ))),
                }
            }
        }
    }

    /// One `EmbedContentRequest` (batch element or `embedContent` body).
    fn content_request(
        &self,
        o: &Map<String, Value>,
        model: &str,
        spec: &ModelSpec,
        at: &str,
        model_required: bool,
    ) -> Result<(Item, Option<String>, usize), Reply> {
        const FIELDS: &[&str] = &[
            "model",
            "content",
            "taskType",
            "title",
            "outputDimensionality",
        ];
        if let Some(k) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(bad(&format!(
                "Invalid JSON payload received. Unknown name \"{k}\" at '{at}': Cannot find field."
            )));
        }
        match o.get("model").and_then(Value::as_str) {
            None if model_required => {
                return Err(bad(&format!("* {at}.model: model is required")));
            }
            Some(m) if m != format!("models/{model}") => {
                return Err(bad(&format!(
                    "* {at}.model: the model of a request ({m}) must be the batch's (models/{model})"
                )));
            }
            _ => {}
        }
        let parts = o
            .get("content")
            .and_then(|c| c.get("parts"))
            .and_then(Value::as_array);
        let Some(parts) = parts.filter(|p| !p.is_empty()) else {
            return Err(bad(&format!("* {at}.content: contents is not specified")));
        };
        if parts.len() != 1 {
            return Err(bad(&format!(
                "* {at}.content.parts: this fake embeds one text part per content"
            )));
        }
        let Some(text) = parts[0].get("text").and_then(Value::as_str) else {
            return Err(bad(&format!("* {at}.content.parts[0]: text is required")));
        };
        let task = match o.get("taskType") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_str().and_then(TaskType::from_wire) {
                Some(t) => Some(t.as_str().to_owned()),
                None => {
                    return Err(bad(&format!(
                        "Invalid value at '{at}.task_type' (type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType), {v}"
                    )));
                }
            },
        };
        if o.get("title").is_some_and(|t| !t.is_null()) {
            if !o["title"].is_string() {
                return Err(bad(&format!("* {at}.title: must be a string")));
            }
            if task.as_deref() != Some("RETRIEVAL_DOCUMENT") {
                return Err(bad(&format!(
                    "* {at}.title: a title is only applicable with task type RETRIEVAL_DOCUMENT"
                )));
            }
        }
        let dim = self.dimension(spec, model, o.get("outputDimensionality"), at)?;
        Ok((
            Item {
                text: text.to_owned(),
            },
            task,
            dim,
        ))
    }

    fn too_long(&self, spec: &ModelSpec, items: &[Item]) -> Result<u64, Reply> {
        let mut total = 0u64;
        for it in items {
            let n = count_tokens(&it.text);
            if n > spec.max_input_tokens {
                return Err(bad(&format!(
                    "The input token count ({n}) exceeds the maximum number of tokens allowed ({}).",
                    spec.max_input_tokens
                )));
            }
            total += n as u64;
        }
        Ok(total)
    }

    /// The rows, as gemini-embedding-001 answers them: truncated from 3072
    /// dimensions and not renormalised below it.
    fn values(
        model: &str,
        spec: &ModelSpec,
        items: &[Item],
        rows: &Rows,
        dim: usize,
    ) -> Vec<Vec<f32>> {
        let truncated = model == "gemini-embedding-001" && dim < spec.dimension;
        (0..rows.len())
            .map(|i| {
                let mut r = rows.row(i).to_vec();
                if truncated && !items.is_empty() {
                    let text = &items[i.min(items.len() - 1)].text;
                    let mut raw = vec![0.0f32; spec.dimension];
                    embeddings_mock::raw_components(embeddings_mock::seed(model, text), &mut raw);
                    let norm =
                        |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
                    let (part, full) = (norm(&raw[..dim]), norm(&raw));
                    if full > 0.0 {
                        let s = (part / full) as f32;
                        r.iter_mut().for_each(|x| *x *= s);
                    }
                }
                r
            })
            .collect()
    }

    fn gemini(&self, ex: &Exchange<'_>) -> Reply {
        if let Some(r) = self.check_key(ex) {
            return r;
        }
        let (model, spec, method) = match self.target(ex) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(ex.body()) else {
            return bad("Invalid JSON payload received. Expected an object.");
        };
        let (items, task, dim) = match method {
            "batchEmbedContents" => {
                if let Some(k) = body.keys().find(|k| k.as_str() != "requests") {
                    return bad(&format!(
                        "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
                    ));
                }
                let Some(list) = body.get("requests").and_then(Value::as_array) else {
                    return bad("* BatchEmbedContentsRequest.requests: requests is required");
                };
                if list.is_empty() {
                    return bad("* BatchEmbedContentsRequest.requests: requests is required");
                }
                if list.len() > crate::MAX_BATCH {
                    return bad(&format!(
                        "* BatchEmbedContentsRequest.requests: at most {} requests can be in one batch",
                        crate::MAX_BATCH
                    ));
                }
                let mut items = Vec::with_capacity(list.len());
                let mut first: Option<(Option<String>, usize)> = None;
                for (i, r) in list.iter().enumerate() {
                    let at = format!("BatchEmbedContentsRequest.requests[{i}]");
                    let Some(o) = r.as_object() else {
                        return bad(&format!("* {at}: must be an object"));
                    };
                    let (item, task, dim) = match self.content_request(o, &model, &spec, &at, true)
                    {
                        Ok(x) => x,
                        Err(r) => return r,
                    };
                    match &first {
                        None => first = Some((task, dim)),
                        // The fake answers one dimension per batch (so does the provider).
                        Some((_, d)) if *d != dim => {
                            return bad(&format!(
                                "* {at}.outputDimensionality: this fake takes one outputDimensionality per batch"
                            ));
                        }
                        Some(_) => {}
                    }
                    items.push(item);
                }
                let (task, dim) = first.unwrap_or((None, spec.dimension));
                (items, task, dim)
            }
            "embedContent" => {
                match self.content_request(&body, &model, &spec, "EmbedContentRequest", false) {
                    Ok((item, task, dim)) => (vec![item], task, dim),
                    Err(r) => return r,
                }
            }
            other => {
                return google_error(
                    404,
                    &format!("models/{model}:{other} is not a method of this API"),
                );
            }
        };
        let _ = task;
        let tokens = match self.too_long(&spec, &items) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let limits = match ex.admit(tokens) {
            Ok(l) => l,
            Err(r) => {
                return google_error(429, "Resource has been exhausted (e.g. check quota).")
                    .rejected(&r);
            }
        };
        let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
        let rows = if method == "embedContent" {
            ex.rows_with(&model, &texts, dim, RowStyle::Positional, |k| {
                !matches!(
                    k,
                    embeddings_testkit::dialect::RowFaultKind::Shuffle
                        | embeddings_testkit::dialect::RowFaultKind::Duplicate
                )
            })
        } else {
            ex.rows(&model, &texts, dim, RowStyle::Positional)
        };
        let values = Self::values(&model, &spec, &items, &rows, dim);
        let answer = if method == "embedContent" {
            match values.first() {
                Some(v) => json!({"embedding": {"values": v}}),
                None => json!({}),
            }
        } else {
            json!({"embeddings": values.iter().map(|v| json!({"values": v})).collect::<Vec<_>>()})
        };
        Reply::json(200, JSON, &answer)
            .rate_limits(&limits)
            .embedded(items.len(), tokens)
    }

    fn vertex(&self, ex: &Exchange<'_>) -> Reply {
        let bearer = ex
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|t| !t.is_empty());
        let ok = match (&self.token, bearer) {
            (_, None) => false,
            (Some(want), Some(t)) => t == want,
            (None, Some(_)) => true,
        };
        if !ok {
            return google_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            );
        }
        let (model, spec, method) = match self.target(ex) {
            Ok(t) => t,
            Err(r) => return r,
        };
        if method != "predict" {
            return google_error(404, &format!("{model}:{method} is not served by this fake"));
        }
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(ex.body()) else {
            return bad("Invalid JSON payload received. Expected an object.");
        };
        if let Some(k) = body
            .keys()
            .find(|k| !["instances", "parameters"].contains(&k.as_str()))
        {
            return bad(&format!(
                "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
            ));
        }
        let Some(list) = body
            .get("instances")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
        else {
            return bad("instances must be a non-empty list");
        };
        if list.len() > spec.vertex_instances {
            return bad(&format!(
                "{} instances in one request; {model} takes at most {}",
                list.len(),
                spec.vertex_instances
            ));
        }
        let params = body.get("parameters").cloned().unwrap_or(json!({}));
        let Some(params) = params.as_object() else {
            return bad("parameters must be an object");
        };
        if let Some(k) = params
            .keys()
            .find(|k| !["autoTruncate", "outputDimensionality"].contains(&k.as_str()))
        {
            return bad(&format!(
                "Invalid JSON payload received. Unknown name \"{k}\" at 'parameters': Cannot find field."
            ));
        }
        let auto_truncate = match params.get("autoTruncate") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return bad(&format!(
                    "parameters.autoTruncate must be a boolean, got {v}"
                ));
            }
        };
        let dim = match self.dimension(
            &spec,
            &model,
            params.get("outputDimensionality"),
            "parameters",
        ) {
            Ok(d) => d,
            Err(r) => return r,
        };
        let mut items = Vec::with_capacity(list.len());
        let mut counts = Vec::with_capacity(list.len());
        for (i, inst) in list.iter().enumerate() {
            let Some(o) = inst.as_object() else {
                return bad(&format!("instances[{i}] must be an object"));
            };
            if let Some(k) = o
                .keys()
                .find(|k| !["content", "task_type", "title"].contains(&k.as_str()))
            {
                return bad(&format!(
                    "Invalid JSON payload received. Unknown name \"{k}\" at 'instances[{i}]': Cannot find field."
                ));
            }
            let Some(text) = o.get("content").and_then(Value::as_str) else {
                return bad(&format!("instances[{i}].content is required"));
            };
            let task = o.get("task_type").and_then(Value::as_str);
            if o.get("task_type").is_some() && task.and_then(TaskType::from_wire).is_none() {
                return bad(&format!("instances[{i}].task_type is not a task type"));
            }
            let n = count_tokens(text);
            if n > spec.max_input_tokens && !auto_truncate {
                return bad(&format!(
                    "The input token count ({n}) exceeds the maximum number of tokens allowed ({}).",
                    spec.max_input_tokens
                ));
            }
            counts.push((n.min(spec.max_input_tokens), n > spec.max_input_tokens));
            items.push(Item {
                text: text.to_owned(),
            });
        }
        let tokens: u64 = counts.iter().map(|(n, _)| *n as u64).sum();
        if tokens > crate::VERTEX_MAX_REQUEST_TOKENS as u64 {
            return bad(&format!(
                "Unable to submit request because the input token count is {tokens} but the model supports up to {}.",
                crate::VERTEX_MAX_REQUEST_TOKENS
            ));
        }
        let limits = match ex.admit(tokens) {
            Ok(l) => l,
            Err(r) => {
                return google_error(429, "Quota exceeded for aiplatform.googleapis.com.")
                    .rejected(&r);
            }
        };
        let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
        let rows = ex.rows(&model, &texts, dim, RowStyle::Positional);
        let values = Self::values(&model, &spec, &items, &rows, dim);
        let predictions: Vec<Value> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let (n, truncated) = counts.get(i).copied().unwrap_or((0, false));
                json!({"embeddings": {"statistics": {"truncated": truncated, "token_count": n}, "values": v}})
            })
            .collect();
        let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
        Reply::json(
            200,
            JSON,
            &json!({"predictions": predictions, "metadata": {"billableCharacterCount": chars}}),
        )
        .rate_limits(&limits)
        .embedded(items.len(), tokens)
    }
}

impl Dialect for GeminiDialect {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn routes(&self) -> Vec<RouteSpec> {
        vec![
            RouteSpec::post(GEMINI_EMBED, ["/v1beta/models/{*rest}"]).embedding(),
            RouteSpec::post(
                VERTEX_PREDICT,
                ["/v1/projects/{project}/locations/{location}/publishers/google/models/{*rest}"],
            )
            .embedding(),
        ]
    }

    fn handle(&self, ex: &Exchange<'_>) -> Reply {
        if ex
            .header("content-type")
            .is_none_or(|c| !c.starts_with("application/json"))
        {
            return bad("Invalid JSON payload received. Content-Type must be application/json.");
        }
        if ex.route() == VERTEX_PREDICT {
            self.vertex(ex)
        } else {
            self.gemini(ex)
        }
    }

    fn error(&self, _route: Route, e: &EngineError<'_>) -> Reply {
        let status = e.status().as_u16();
        let message = match e {
            EngineError::RateLimited(_) => "Resource has been exhausted (e.g. check quota).".into(),
            other => other.message(),
        };
        google_error(status, &message)
    }

    fn describe(&self, r: &RecordedRequest) -> RequestSummary {
        let mut s = RequestSummary::default();
        let path = r.path.split('?').next().unwrap_or("");
        let last = path.rsplit('/').next().unwrap_or("");
        s.model = last.split_once(':').map(|(m, _)| m.to_owned());
        let b = &r.body;
        if r.route == GEMINI_EMBED {
            if let Some(list) = b["requests"].as_array() {
                s.inputs = Some(list.len());
                s.input_type = list
                    .first()
                    .and_then(|x| x["taskType"].as_str())
                    .and_then(input_type_of);
            } else if b["content"].is_object() {
                s.inputs = Some(1);
                s.input_type = b["taskType"].as_str().and_then(input_type_of);
            }
        } else if r.route == VERTEX_PREDICT {
            if let Some(list) = b["instances"].as_array() {
                s.inputs = Some(list.len());
                s.input_type = list
                    .first()
                    .and_then(|x| x["task_type"].as_str())
                    .and_then(input_type_of);
            }
        }
        s
    }
}

/// The `gemini` provider against [`GeminiDialect`]: gemini-embedding-001 at
/// `outputDimensionality` 768 (so renormalisation is exercised), every
/// input type native.
#[derive(Debug, Clone, Copy, Default)]
pub struct GeminiFixture;

impl GeminiFixture {
    /// The key the fixture's configuration carries.
    pub const KEY: &'static str = "AIzaFixtureNotARealKey0123456789";
    /// The model.
    pub const MODEL: &'static str = "gemini-embedding-001";
    /// The dimension asked for.
    pub const DIMENSION: usize = 768;
}

impl Fixture for GeminiFixture {
    fn provider(&self) -> &'static str {
        crate::NAME
    }

    fn dialects(&self) -> Vec<Arc<dyn Dialect>> {
        vec![Arc::new(GeminiDialect::default())]
    }

    fn config(&self, base_url: &str) -> Config {
        let mut c = Config::for_provider(crate::NAME);
        c.model = Some(Self::MODEL.to_owned());
        c.dimensions = Some(Self::DIMENSION);
        c.base_url = Some(base_url.to_owned());
        c.api_key = Some(Self::KEY.to_owned().into());
        c
    }

    fn model(&self) -> &'static str {
        Self::MODEL
    }

    fn dimension(&self) -> usize {
        Self::DIMENSION
    }

    fn embedding_route(&self) -> Route {
        GEMINI_EMBED
    }

    fn input_types(&self) -> &'static [InputType] {
        crate::INPUT_TYPES
    }

    fn secret(&self) -> Option<&'static str> {
        Some(Self::KEY)
    }
}

embeddings_testkit::register_fixture!(GeminiFixture);
