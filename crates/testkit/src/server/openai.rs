//! The OpenAI dialect: `POST /v1/embeddings` and `GET /v1/models`, as
//! strict as OpenAI's API, and its fixture.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use embeddings_core::{Config, OutputType};
use serde::{Deserialize, Serialize};

use super::config::{
    DEFAULT_OPENAI_MODELS, FIXED_DIMENSION_OPENAI_MODELS, FakeServerConfig,
    OPENAI_MAX_INPUT_TOKENS, OPENAI_MAX_INPUTS, OPENAI_MAX_REQUEST_TOKENS,
};
use super::dialect::{
    Dialect, EngineError, Exchange, JSON, Reply, RequestSummary, RouteSpec, RowStyle,
};
use super::input::{Input, Text};
use super::limits::Exceeded;
use super::record::RecordedRequest;
use super::route::Route;
use super::rows::Rows;
use super::tokens::{bpe, count_tokens};
use crate::fixture::Fixture;

const INVALID: &str = "invalid_request_error";

#[allow(non_upper_case_globals)]
impl Route {
    /// Every OpenAI route (a fault scope: the OpenAI dialect's name).
    pub const Openai: Route = Route::new("openai");
    /// `POST /v1/embeddings` and `POST /embeddings`.
    pub const OpenaiEmbeddings: Route = Route::new("openai_embeddings");
    /// `GET /v1/models` and `GET /v1/models/{id}`.
    pub const OpenaiModels: Route = Route::new("openai_models");
}

/// The OpenAI API (`/v1/embeddings`, `/v1/models`) as a fake-server dialect:
/// strict validation, OpenAI's error shape `{error: {message, type, param,
/// code}}`, float or base64 rows placed by `index`, `usage`, and the
/// `x-ratelimit-*` headers.
///
/// ```
/// use embeddings_testkit::OpenAiDialect;
/// let d = OpenAiDialect::new().model("my-model", 64).api_key("sk-test");
/// assert_eq!(d.dimension_of("my-model"), Some(64));
/// assert_eq!(d.dimension_of("text-embedding-3-small"), Some(1536));
/// ```
#[derive(Debug, Clone)]
pub struct OpenAiDialect {
    api_key: Option<String>,
    models: BTreeMap<String, usize>,
    /// Breaks base64 answers (see [`OpenAiDialect::base64_as_floats`]).
    base64_quirk: Option<Base64Quirk>,
}

/// How a compatible server breaks `encoding_format: "base64"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base64Quirk {
    Floats,
    F64,
}

impl Default for OpenAiDialect {
    fn default() -> Self {
        OpenAiDialect::new()
    }
}

impl OpenAiDialect {
    /// The default models ([`DEFAULT_OPENAI_MODELS`]), no key required.
    pub fn new() -> Self {
        OpenAiDialect {
            api_key: None,
            base64_quirk: None,
            models: DEFAULT_OPENAI_MODELS
                .iter()
                .map(|(n, d)| ((*n).to_owned(), *d))
                .collect(),
        }
    }

    /// The models and key of `config` (`openai_models`, `api_key`).
    pub fn from_config(config: &FakeServerConfig) -> Self {
        let mut d = OpenAiDialect::new();
        d.models.extend(config.openai_models.clone());
        d.api_key = config.api_key.clone();
        d
    }

    /// Serves one more model (or resizes a default one).
    pub fn model(mut self, name: impl Into<String>, dimension: usize) -> Self {
        self.models.insert(name.into(), dimension.max(1));
        self
    }

    /// Requires `Authorization: Bearer <key>` (401 otherwise).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Answers float arrays to a base64 request, as LM Studio and some
    /// vLLM/TabbyAPI/LiteLLM versions do.
    pub fn base64_as_floats(mut self) -> Self {
        self.base64_quirk = Some(Base64Quirk::Floats);
        self
    }

    /// Answers base64 of little-endian `f64`s to a base64 request: twice
    /// the bytes, a wrong dimension for an `f32` decoder.
    pub fn base64_as_f64(mut self) -> Self {
        self.base64_quirk = Some(Base64Quirk::F64);
        self
    }

    /// The dimension of a served model.
    pub fn dimension_of(&self, model: &str) -> Option<usize> {
        self.models.get(model).copied()
    }
}

impl Dialect for OpenAiDialect {
    fn name(&self) -> &'static str {
        Route::Openai.as_str()
    }

    fn routes(&self) -> Vec<RouteSpec> {
        vec![
            RouteSpec::post(Route::OpenaiEmbeddings, ["/v1/embeddings", "/embeddings"]).embedding(),
            RouteSpec::get(Route::OpenaiModels, ["/v1/models", "/v1/models/{*id}"])
                .with_rate_limit_headers(),
        ]
    }

    fn handle(&self, ex: &Exchange<'_>) -> Reply {
        if ex.route() == Route::OpenaiModels {
            models(self, ex)
        } else {
            embeddings(self, ex)
        }
    }

    fn error(&self, _route: Route, error: &EngineError<'_>) -> Reply {
        let status = error.status();
        match error {
            EngineError::Status(fault) => {
                let (kind, code) = status_type_and_code(fault.status);
                openai_error(
                    status,
                    &error.message(),
                    fault.error_type.as_deref().unwrap_or(kind),
                    None,
                    fault.code.as_deref().or(code),
                )
            }
            EngineError::RateLimited(_) => openai_error(
                status,
                "Rate limit reached for requests. Please try again later.",
                "requests",
                None,
                Some("rate_limit_exceeded"),
            ),
            EngineError::MethodNotAllowed { method, path } => openai_error(
                status,
                &format!("Invalid method for URL ({method} {path})"),
                INVALID,
                None,
                None,
            ),
            _ => openai_error(
                status,
                "The request body is too large.",
                INVALID,
                None,
                None,
            ),
        }
    }

    fn describe(&self, request: &RecordedRequest) -> RequestSummary {
        let mut s = RequestSummary::default();
        if request.route != Route::OpenaiEmbeddings {
            return s;
        }
        let body = &request.body;
        s.model = body["model"].as_str().map(str::to_owned);
        s.inputs = match &body["input"] {
            serde_json::Value::String(_) => Some(1),
            serde_json::Value::Array(items) => match items.first() {
                Some(serde_json::Value::Number(_)) => Some(1),
                _ => Some(items.len()),
            },
            _ => None,
        };
        // OpenAI has no input type; `encoding_format` encodes f32 either way.
        s.output_type = body.get("encoding_format").map(|_| OutputType::F32);
        s
    }

    fn not_found(&self, method: &Method, path: &str) -> Option<Reply> {
        path.starts_with("/v1").then(|| {
            openai_error(
                StatusCode::NOT_FOUND,
                &format!("Invalid URL ({method} {path})"),
                INVALID,
                None,
                None,
            )
        })
    }
}

/// OpenAI's `error.type` and `error.code` for a status.
fn status_type_and_code(status: u16) -> (&'static str, Option<&'static str>) {
    match status {
        401 => (INVALID, Some("invalid_api_key")),
        403 => (INVALID, Some("permission_denied")),
        404 => (INVALID, Some("model_not_found")),
        408 => ("timeout", None),
        429 => ("requests", Some("rate_limit_exceeded")),
        s if s >= 500 => ("server_error", None),
        _ => (INVALID, None),
    }
}

#[derive(Serialize)]
struct OpenAiErrorBody<'a> {
    error: OpenAiError<'a>,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// `{error: {message, type, param, code}}`.
fn openai_error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Reply {
    Reply::json(
        status,
        JSON,
        &OpenAiErrorBody {
            error: OpenAiError {
                message,
                kind,
                param,
                code,
            },
        },
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Text<'a>>,
    #[serde(borrow, default)]
    input: Option<Input<'a>>,
    #[serde(borrow, default)]
    encoding_format: Option<Text<'a>>,
    #[serde(default)]
    dimensions: Option<i64>,
    #[serde(borrow, default)]
    #[allow(dead_code)]
    user: Option<Text<'a>>,
}

fn bad_request(message: &str, param: Option<&str>) -> Reply {
    openai_error(StatusCode::BAD_REQUEST, message, INVALID, param, None)
}

fn invalid_input() -> Reply {
    bad_request(
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
        Some("input"),
    )
}

/// Checks `Authorization: Bearer <key>` when a key is configured.
fn authorize(key: Option<&str>, ex: &Exchange<'_>) -> Option<Reply> {
    let key = key?;
    let sent = ex
        .header("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match sent {
        Some(k) if k == key => None,
        Some(_) => Some(openai_error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            INVALID,
            None,
            Some("invalid_api_key"),
        )),
        None => Some(openai_error(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            INVALID,
            None,
            None,
        )),
    }
}

fn parse_error(e: &serde_json::Error) -> Reply {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => {
            let text = e.to_string();
            let unknown = text
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split('`').next());
            if let Some(name) = unknown {
                return bad_request(
                    &format!("Unrecognized request argument supplied: {name}"),
                    None,
                );
            }
            let message = text.split(" at line ").next().unwrap_or(&text);
            if message.starts_with("'$.input'") {
                return bad_request(message, Some("input"));
            }
            bad_request(&format!("Invalid request: {message}"), None)
        }
        _ => bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            None,
        ),
    }
}

/// `POST /v1/embeddings`.
fn embeddings(d: &OpenAiDialect, ex: &Exchange<'_>) -> Reply {
    if let Some(denied) = authorize(d.api_key.as_deref(), ex) {
        return denied;
    }
    let req: EmbeddingRequest<'_> = match serde_json::from_slice(ex.body()) {
        Ok(r) => r,
        Err(e) => return parse_error(&e),
    };
    let Some(Text(model)) = req.model else {
        return bad_request("you must provide a model parameter", None);
    };
    let Some(input) = req.input else {
        return bad_request("'input' is a required property", Some("input"));
    };
    let base64 = match req.encoding_format.as_ref().map(|t| t.0.as_ref()) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return bad_request(
                &format!(
                    "Invalid value for 'encoding_format' = {other}. Supported values are: 'float' and 'base64'."
                ),
                Some("encoding_format"),
            );
        }
    };
    // Texts and per-input token counts.
    let (texts, counts): (Vec<Cow<'_, str>>, Vec<usize>) = match input {
        Input::Texts(texts) => {
            if texts.is_empty() || texts.iter().any(|t| t.is_empty()) {
                return invalid_input();
            }
            if texts.len() > OPENAI_MAX_INPUTS {
                return too_many_inputs(texts.len());
            }
            let counts = texts.iter().map(|t| count_tokens(t)).collect();
            (texts, counts)
        }
        Input::Tokens(lists) => {
            if lists.is_empty() || lists.iter().any(Vec::is_empty) {
                return invalid_input();
            }
            if lists.len() > OPENAI_MAX_INPUTS {
                return too_many_inputs(lists.len());
            }
            let mut texts = Vec::with_capacity(lists.len());
            for tokens in &lists {
                match bpe().decode_bytes(tokens) {
                    Ok(bytes) => {
                        texts.push(Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()))
                    }
                    Err(_) => {
                        return bad_request(
                            "'$.input' holds a token id that is not in cl100k_base.",
                            Some("input"),
                        );
                    }
                }
            }
            (texts, lists.iter().map(Vec::len).collect())
        }
    };
    let Some(&model_dim) = d.models.get(model.as_ref()) else {
        return openai_error(
            StatusCode::NOT_FOUND,
            &format!("The model `{model}` does not exist or you do not have access to it."),
            INVALID,
            None,
            Some("model_not_found"),
        );
    };
    let dim = match req.dimensions {
        None => model_dim,
        Some(_) if FIXED_DIMENSION_OPENAI_MODELS.contains(&model.as_ref()) => {
            return bad_request(
                "This model does not support specifying dimensions.",
                Some("dimensions"),
            );
        }
        Some(d) if d < 1 => {
            return bad_request(
                &format!(
                    "Invalid value for 'dimensions' = {d}. Must be greater than or equal to 1."
                ),
                Some("dimensions"),
            );
        }
        Some(d) if d as u64 > model_dim as u64 => {
            return bad_request(
                &format!(
                    "Invalid value for 'dimensions' = {d}. Must be less than or equal to {model_dim}."
                ),
                Some("dimensions"),
            );
        }
        Some(d) => d as usize,
    };
    if let Some((i, &n)) = counts
        .iter()
        .enumerate()
        .find(|(_, n)| **n > OPENAI_MAX_INPUT_TOKENS)
    {
        return openai_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "This model's maximum context length is {OPENAI_MAX_INPUT_TOKENS} tokens, however you requested {n} tokens ({n} in your prompt; 0 for the completion) in input[{i}]. Please reduce your prompt; or completion length."
            ),
            INVALID,
            Some("input"),
            Some("context_length_exceeded"),
        );
    }
    let total: usize = counts.iter().sum();
    if total > OPENAI_MAX_REQUEST_TOKENS {
        return openai_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Requested {total} tokens, max {OPENAI_MAX_REQUEST_TOKENS} tokens per request"
            ),
            INVALID,
            Some("input"),
            Some("max_tokens_per_request"),
        );
    }
    let snapshot = match ex.admit(total as u64) {
        Ok(s) => s,
        Err(r) => {
            let (kind, what, unit) = match r.exceeded {
                Exceeded::Requests => ("requests", "requests per min (RPM)", "requests"),
                Exceeded::Tokens | Exceeded::TooLarge => {
                    ("tokens", "tokens per min (TPM)", "tokens")
                }
            };
            let message = match r.exceeded {
                Exceeded::TooLarge => format!(
                    "Request too large for {model} on {what}: Limit {}, Requested {total}. The input or output tokens must be reduced in order to run successfully.",
                    r.limit
                ),
                _ => format!(
                    "Rate limit reached for {model} on {what}: Limit {}, Used {}, Requested {}. Please try again in {}.",
                    r.limit,
                    r.used,
                    if unit == "requests" { 1 } else { total },
                    super::limits::format_reset(r.retry_after.unwrap_or_default()),
                ),
            };
            return openai_error(
                StatusCode::TOO_MANY_REQUESTS,
                &message,
                kind,
                None,
                Some("rate_limit_exceeded"),
            )
            .rejected(&r);
        }
    };

    let rows = ex.rows(&model, &texts, dim, RowStyle::Indexed);
    let body = if base64 && d.base64_quirk != Some(Base64Quirk::Floats) {
        base64_body(
            &rows,
            &model,
            total,
            d.base64_quirk == Some(Base64Quirk::F64),
        )
    } else {
        let mut body = Vec::with_capacity(rows.floats() * 12 + rows.len() * 64 + 256);
        let response = EmbeddingResponse {
            object: "list",
            data: FloatData(&rows),
            model: &model,
            usage: Usage {
                prompt_tokens: total,
                total_tokens: total,
            },
        };
        if serde_json::to_writer(&mut body, &response).is_err() {
            return openai_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not encode the response",
                "server_error",
                None,
                None,
            );
        }
        body
    };
    Reply::bytes(StatusCode::OK, JSON, body)
        .header("openai-model", &model)
        .rate_limits(&snapshot)
        .embedded(texts.len(), total as u64)
}

fn too_many_inputs(n: usize) -> Reply {
    bad_request(
        &format!(
            "Too many inputs. The max number of inputs is {OPENAI_MAX_INPUTS}, but {n} were given. We recommend splitting your inputs into smaller batches."
        ),
        Some("input"),
    )
}

#[derive(Serialize)]
struct EmbeddingResponse<'a> {
    object: &'static str,
    data: FloatData<'a>,
    model: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

/// The `data` list with float vectors.
struct FloatData<'a>(&'a Rows);

#[derive(Serialize)]
struct Item<'a> {
    object: &'static str,
    index: usize,
    embedding: &'a [f32],
}

impl Serialize for FloatData<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for i in 0..self.0.len() {
            seq.serialize_element(&Item {
                object: "embedding",
                index: self.0.index(i),
                embedding: self.0.row(i),
            })?;
        }
        seq.end()
    }
}

/// The same JSON as [`EmbeddingResponse`] with base64 vectors, written
/// directly: base64 needs no escaping, so the (large) strings are encoded
/// straight into the body instead of being scanned again by serde_json.
fn base64_body(rows: &Rows, model: &str, tokens: usize, as_f64: bool) -> Vec<u8> {
    use std::io::Write as _;
    let encoded: usize = (0..rows.len())
        .map(|i| (rows.row(i).len() * 4).div_ceil(3) * 4)
        .sum();
    let mut out =
        embeddings_core::memory::with_capacity(encoded + rows.len() * 64 + model.len() + 128);
    let mut bytes: Vec<u8> = Vec::new();
    out.extend_from_slice(br#"{"object":"list","data":["#);
    for i in 0..rows.len() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(
            out,
            r#"{{"object":"embedding","index":{},"embedding":""#,
            rows.index(i)
        );
        let row = rows.row(i);
        bytes.clear();
        if as_f64 {
            bytes.extend(row.iter().flat_map(|x| f64::from(*x).to_le_bytes()));
        } else {
            bytes.extend(row.iter().flat_map(|x| x.to_le_bytes()));
        }
        base64_simd::STANDARD.encode_append(&bytes, &mut out);
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(br#"],"model":"#);
    let _ = serde_json::to_writer(&mut out, model);
    let _ = write!(
        out,
        r#","usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}}}"#
    );
    out
}

#[derive(Serialize)]
struct ModelObject<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelObject<'a>>,
}

/// `GET /v1/models` and `GET /v1/models/{id}`.
fn models(d: &OpenAiDialect, ex: &Exchange<'_>) -> Reply {
    if let Some(denied) = authorize(d.api_key.as_deref(), ex) {
        return denied;
    }
    let object = |id| ModelObject {
        id,
        object: "model",
        created: 1_705_953_180,
        owned_by: "system",
    };
    let path = ex.path().split('?').next().unwrap_or(ex.path());
    match path.strip_prefix("/v1/models/") {
        None => Reply::json(
            StatusCode::OK,
            JSON,
            &ModelList {
                object: "list",
                data: d.models.keys().map(|k| object(k)).collect(),
            },
        ),
        Some(id) => match d.models.get_key_value(id) {
            Some((k, _)) => Reply::json(StatusCode::OK, JSON, &object(k)),
            None => openai_error(
                StatusCode::NOT_FOUND,
                &format!("The model '{id}' does not exist"),
                INVALID,
                Some("model"),
                Some("model_not_found"),
            ),
        },
    }
}

/// The `openai` provider against the OpenAI dialect:
/// `text-embedding-3-small` at 64 dimensions, base64 rows by `index`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiFixture;

impl OpenAiFixture {
    /// The key the fixture's configuration carries (never to be shown).
    pub const KEY: &'static str = "sk-fixture-not-a-real-key";
}

impl Fixture for OpenAiFixture {
    fn provider(&self) -> &'static str {
        "openai"
    }

    fn dialects(&self) -> Vec<Arc<dyn Dialect>> {
        vec![Arc::new(OpenAiDialect::new())]
    }

    fn config(&self, base_url: &str) -> Config {
        let mut c = Config::for_provider(self.provider());
        c.model = Some(self.model().to_owned());
        c.dimensions = Some(self.dimension());
        c.base_url = Some(format!("{base_url}/v1"));
        c.api_key = Some(Self::KEY.to_owned().into());
        c
    }

    fn model(&self) -> &'static str {
        "text-embedding-3-small"
    }

    fn dimension(&self) -> usize {
        64
    }

    fn embedding_route(&self) -> Route {
        Route::OpenaiEmbeddings
    }

    fn rows_carry_index(&self) -> bool {
        true
    }

    fn secret(&self) -> Option<&'static str> {
        Some(Self::KEY)
    }
}

crate::register_fixture!(OpenAiFixture);
