//! Jina's `/v1/embeddings` as a fake-server dialect ([`JinaDialect`]) and
//! the `jina` fixture ([`JinaFixture`]).
//!
//! As strict as Jina's reference (its OpenAPI schema, one request schema
//! per model family): `model` and `input` required (a string, a `{"text"}`
//! document or a list of them, 1 to 2,048 items); an unknown model is a
//! 400 `INPUT_MODEL_NOT_FOUND`; the fields each family's schema has and no
//! other (`task`, `dimensions`, `late_chunking`, `normalized`,
//! `return_multivector` only where the schema has them); `task` from the
//! family's enum; `dimensions` an integer in `1..=` the model's dimension;
//! `embedding_type` one of `float`, `base64`, `binary`, `ubinary` or a list
//! of them; `truncate` a boolean (default `false`: an input over the
//! model's context is a 400); with `late_chunking` the inputs together
//! within the context. A missing or wrong key is a 401
//! (`AUTH_MISSING_API_KEY`, `AUTH_INVALID_API_KEY`). Errors are
//! `{"detail", "code", "request_id"}`; a schema violation is a 422
//! `{"detail", "errors": [{"field", "message", "type"}]}`.
//!
//! Rows are DESIGN.md §4 vectors. `float` is a JSON array; `base64` the
//! little-endian `f32` bytes; `binary` / `ubinary` are the packed signs
//! (`embeddings_core::quantize::pack_bits`, `binary` offset by 128: exactly
//! `Embeddings::quantized` of the float rows), as base64 strings. With a
//! list of types, `embedding` is an object keyed by type.

// The handlers answer a refusal early with `?`: the error is the reply.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use embeddings_core::{Config, InputType, OutputType, quantize};
use embeddings_testkit::dialect::{
    Dialect, EngineError, Exceeded, Exchange, JSON, Reply, RequestSummary, RouteSpec, RowStyle,
    Rows,
};
use embeddings_testkit::{Fixture, RecordedRequest, Route, count_tokens};
use serde_json::{Map, Value, json};

use crate::{Family, MAX_INPUTS, model_spec};

/// `POST /v1/embeddings`.
pub const JINA_EMBEDDINGS: Route = Route::new("jina_embeddings");

/// Jina's API as a dialect (every model of [`crate::model_spec`]).
#[derive(Debug, Default)]
pub struct JinaDialect {
    api_key: Option<String>,
}

impl JinaDialect {
    /// Requires `Authorization: Bearer <key>`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }
}

/// `{"detail", "code", "request_id"}`; the reference names no code for an
/// over-long input, so those answers carry none.
fn error(status: u16, code: Option<&str>, detail: &str) -> Reply {
    let mut body = json!({ "detail": detail, "request_id": "f4ke5e7ver000001" });
    if let Some(c) = code {
        body["code"] = json!(c);
    }
    Reply::json(status, JSON, &body)
}

fn invalid(field: &str, message: &str, kind: &str) -> Reply {
    Reply::json(
        422,
        JSON,
        &json!({
            "detail": format!("Validation error: {field}: {message}"),
            "errors": [{ "field": field, "message": message, "type": kind }],
        }),
    )
}

fn fields(family: Family) -> &'static [&'static str] {
    match family {
        Family::V2 => &["model", "input", "embedding_type", "truncate", "normalized"],
        Family::V3 => &[
            "model",
            "input",
            "embedding_type",
            "truncate",
            "normalized",
            "task",
            "late_chunking",
            "dimensions",
        ],
        Family::V4 => &[
            "model",
            "input",
            "embedding_type",
            "truncate",
            "task",
            "late_chunking",
            "dimensions",
            "return_multivector",
            "return_tokenized_input",
        ],
        Family::ClipV2 => &[
            "model",
            "input",
            "embedding_type",
            "truncate",
            "normalized",
            "task",
            "dimensions",
        ],
        Family::Code => &[
            "model",
            "input",
            "embedding_type",
            "truncate",
            "task",
            "dimensions",
        ],
    }
}

fn tasks(family: Family) -> &'static [&'static str] {
    match family {
        Family::V2 => &[],
        Family::V3 => &[
            "retrieval.query",
            "retrieval.passage",
            "text-matching",
            "classification",
            "separation",
        ],
        Family::V4 => &[
            "text-matching",
            "retrieval.query",
            "retrieval.passage",
            "code.query",
            "code.passage",
        ],
        Family::ClipV2 => &["retrieval.query"],
        Family::Code => &[
            "nl2code.query",
            "nl2code.passage",
            "qa.query",
            "qa.passage",
            "code2code.query",
            "code2code.passage",
            "code2nl.query",
            "code2nl.passage",
            "code2completion.query",
            "code2completion.passage",
        ],
    }
}

/// What `embedding_type` asked for, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Float,
    Base64,
    Binary,
    Ubinary,
}

fn encoding_of(name: &str) -> Option<Encoding> {
    match name {
        "float" => Some(Encoding::Float),
        "base64" => Some(Encoding::Base64),
        "binary" => Some(Encoding::Binary),
        "ubinary" => Some(Encoding::Ubinary),
        _ => None,
    }
}

fn output_type_of(e: Encoding) -> OutputType {
    match e {
        Encoding::Float | Encoding::Base64 => OutputType::F32,
        Encoding::Binary => OutputType::Binary,
        Encoding::Ubinary => OutputType::Ubinary,
    }
}

fn texts_of(v: Option<&Value>) -> Option<Vec<&str>> {
    fn one(v: &Value) -> Option<&str> {
        match v {
            Value::String(s) => Some(s),
            Value::Object(o) if o.len() == 1 => o.get("text").and_then(Value::as_str),
            _ => None,
        }
    }
    match v? {
        Value::Array(a) => a.iter().map(one).collect(),
        v => one(v).map(|t| vec![t]),
    }
}

fn bool_field(body: &Map<String, Value>, name: &str, default: bool) -> Result<bool, Reply> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(
            name,
            "Input should be a valid boolean",
            "bool_type",
        )),
    }
}

impl JinaDialect {
    fn validate(&self, ex: &Exchange<'_>) -> Result<Reply, Reply> {
        match (&self.api_key, ex.header("authorization")) {
            (None, _) => {}
            (Some(_), None) => {
                return Err(error(
                    401,
                    Some("AUTH_MISSING_API_KEY"),
                    "Authentication required. Provide your API key via the Authorization header: 'Authorization: Bearer <api-key>'.",
                ));
            }
            (Some(key), Some(sent)) => {
                if sent.strip_prefix("Bearer ").map(str::trim) != Some(key.as_str()) {
                    return Err(error(401, Some("AUTH_INVALID_API_KEY"), "Invalid API key."));
                }
            }
        }
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(ex.body()) else {
            return Err(invalid(
                "body",
                "Input should be a valid JSON object",
                "model_type",
            ));
        };
        let Some(model) = body.get("model").and_then(Value::as_str) else {
            return Err(invalid("model", "Field required", "missing"));
        };
        let Some(spec) = model_spec(model) else {
            return Err(error(
                400,
                Some("INPUT_MODEL_NOT_FOUND"),
                &format!(
                    "Model '{model}' not found. Available models: jina-embeddings-v3, jina-embeddings-v4, ..."
                ),
            ));
        };
        let allowed = fields(spec.family);
        if let Some(k) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(invalid(
                k,
                "Extra inputs are not permitted",
                "extra_forbidden",
            ));
        }
        let Some(texts) = texts_of(body.get("input")) else {
            return Err(invalid(
                "input",
                "Input should be a string, a text document or a list of them",
                "union_type",
            ));
        };
        if texts.is_empty() || texts.len() > MAX_INPUTS {
            return Err(invalid(
                "input",
                &format!(
                    "List should have 1 to {MAX_INPUTS} items, not {}",
                    texts.len()
                ),
                "too_long",
            ));
        }
        let encodings: Vec<Encoding> = match body.get("embedding_type") {
            None | Some(Value::Null) => vec![Encoding::Float],
            Some(Value::String(s)) => match encoding_of(s) {
                Some(e) => vec![e],
                None => {
                    return Err(invalid(
                        "embedding_type",
                        "Input should be 'float', 'base64', 'binary' or 'ubinary'",
                        "literal_error",
                    ));
                }
            },
            Some(Value::Array(a)) if !a.is_empty() => {
                match a.iter().map(|v| v.as_str().and_then(encoding_of)).collect() {
                    Some(v) => v,
                    None => {
                        return Err(invalid(
                            "embedding_type",
                            "Input should be 'float', 'base64', 'binary' or 'ubinary'",
                            "literal_error",
                        ));
                    }
                }
            }
            Some(_) => {
                return Err(invalid(
                    "embedding_type",
                    "Input should be a string or a list of strings",
                    "union_type",
                ));
            }
        };
        let truncate = bool_field(&body, "truncate", false)?;
        let late_chunking = bool_field(&body, "late_chunking", false)?;
        bool_field(&body, "normalized", true)?;
        if bool_field(&body, "return_multivector", false)? {
            return Err(invalid(
                "return_multivector",
                "multi-vector answers are not what this provider reads",
                "value_error",
            ));
        }
        match body.get("task") {
            None | Some(Value::Null) => {}
            Some(v) => {
                if !v.as_str().is_some_and(|t| tasks(spec.family).contains(&t)) {
                    return Err(invalid(
                        "task",
                        &format!("Input should be one of: {}", tasks(spec.family).join(", ")),
                        "literal_error",
                    ));
                }
            }
        }
        let dim = match body.get("dimensions") {
            None | Some(Value::Null) => spec.dimension,
            Some(v) => match v.as_u64() {
                Some(d) if (1..=spec.dimension as u64).contains(&d) => d as usize,
                _ => {
                    return Err(invalid(
                        "dimensions",
                        &format!("Input should be an integer from 1 to {}", spec.dimension),
                        "less_than_equal",
                    ));
                }
            },
        };
        let counts: Vec<usize> = texts.iter().map(|t| count_tokens(t)).collect();
        let context = spec.context;
        if !truncate {
            if let Some((i, n)) = counts.iter().enumerate().find(|(_, n)| **n > context) {
                return Err(error(
                    400,
                    None,
                    &format!(
                        "Input at index {i} has {n} tokens, which exceeds the maximum context length of {context} tokens of {model}. Set truncate=true or shorten it."
                    ),
                ));
            }
        }
        let total: usize = counts.iter().map(|n| (*n).min(context)).sum();
        if late_chunking && total > context {
            return Err(error(
                400,
                None,
                &format!(
                    "With late_chunking the inputs are embedded as one sequence: {total} tokens exceed the maximum context length of {context} tokens of {model}."
                ),
            ));
        }
        let limits = match ex.admit(total as u64) {
            Ok(l) => l,
            Err(r) => {
                let (code, what) = match r.exceeded {
                    Exceeded::Requests => {
                        ("RATE_REQUEST_LIMIT_EXCEEDED", "Request rate limit exceeded")
                    }
                    _ => ("RATE_TOKEN_LIMIT_EXCEEDED", "Token rate limit exceeded"),
                };
                return Err(error(
                    429,
                    Some(code),
                    &format!("{what}: {}/{} per minute.", r.used, r.limit),
                )
                .rejected(&r));
            }
        };
        let rows = ex.rows(model, &texts, dim, RowStyle::Indexed);
        let data: Vec<Value> = (0..rows.len())
            .map(|i| {
                let embedding = if let [one] = encodings[..] {
                    encode_row(&rows, i, one)
                } else {
                    let mut by_type = Map::new();
                    for e in &encodings {
                        let name = match e {
                            Encoding::Float => "float",
                            Encoding::Base64 => "base64",
                            Encoding::Binary => "binary",
                            Encoding::Ubinary => "ubinary",
                        };
                        by_type.insert(name.to_owned(), encode_row(&rows, i, *e));
                    }
                    Value::Object(by_type)
                };
                json!({ "object": "embedding", "index": rows.index(i), "embedding": embedding })
            })
            .collect();
        let answer = json!({
            "model": model,
            "object": "list",
            "usage": { "total_tokens": total, "prompt_tokens": total },
            "data": data,
        });
        Ok(Reply::json(200, JSON, &answer)
            .rate_limits(&limits)
            .embedded(texts.len(), total as u64))
    }
}

/// Row `i` in encoding `e`.
fn encode_row(rows: &Rows, i: usize, e: Encoding) -> Value {
    let r = rows.row(i);
    match e {
        Encoding::Float => json!(r),
        Encoding::Base64 => {
            Value::String(BASE64.encode(r.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>()))
        }
        Encoding::Binary | Encoding::Ubinary => {
            let mut bits = vec![0u8; r.len().div_ceil(8)];
            quantize::pack_bits(r, &mut bits);
            if e == Encoding::Binary {
                bits.iter_mut()
                    .for_each(|b| *b = quantize::binary_byte(*b) as u8);
            }
            Value::String(BASE64.encode(bits))
        }
    }
}

impl Dialect for JinaDialect {
    fn name(&self) -> &'static str {
        "jina"
    }

    fn routes(&self) -> Vec<RouteSpec> {
        vec![RouteSpec::post(JINA_EMBEDDINGS, ["/v1/embeddings"]).embedding()]
    }

    fn handle(&self, ex: &Exchange<'_>) -> Reply {
        match self.validate(ex) {
            Ok(r) | Err(r) => r,
        }
    }

    fn error(&self, _route: Route, e: &EngineError<'_>) -> Reply {
        let status = e.status().as_u16();
        let code = match status {
            401 => "AUTH_INVALID_API_KEY",
            403 => "AUTHZ_INSUFFICIENT_BALANCE",
            404 => "RESOURCE_NOT_FOUND",
            409 => "CONFLICT_RESOURCE_BUSY",
            429 => "RATE_REQUEST_LIMIT_EXCEEDED",
            503 => "SERVICE_UNAVAILABLE",
            504 => "SERVICE_TIMEOUT",
            s if s >= 500 => "INTERNAL_ERROR",
            _ => return error(status, None, &e.message()),
        };
        error(status, Some(code), &e.message())
    }

    fn describe(&self, request: &RecordedRequest) -> RequestSummary {
        let mut s = RequestSummary::default();
        if request.route != JINA_EMBEDDINGS {
            return s;
        }
        let b = &request.body;
        s.model = b["model"].as_str().map(str::to_owned);
        s.inputs = match &b["input"] {
            Value::Array(a) => Some(a.len()),
            Value::Null => None,
            _ => Some(1),
        };
        s.input_type = b["task"].as_str().and_then(crate::input_type_of_task);
        s.output_type = match &b["embedding_type"] {
            Value::Null => Some(OutputType::F32),
            v => v.as_str().and_then(encoding_of).map(output_type_of),
        };
        s
    }
}

/// The `jina` provider against [`JinaDialect`]: jina-embeddings-v3 at
/// `dimensions` 256, every task, binary and ubinary native.
#[derive(Debug, Clone, Copy, Default)]
pub struct JinaFixture;

impl JinaFixture {
    /// The key the fixture's configuration carries.
    pub const KEY: &'static str = "jina_fixture0not0a0real0key0abcdef0123456789";
    /// The model.
    pub const MODEL: &'static str = "jina-embeddings-v3";
    /// The dimension asked for.
    pub const DIMENSION: usize = 256;
}

impl Fixture for JinaFixture {
    fn provider(&self) -> &'static str {
        crate::NAME
    }

    fn dialects(&self) -> Vec<Arc<dyn Dialect>> {
        vec![Arc::new(JinaDialect::default())]
    }

    fn config(&self, base_url: &str) -> Config {
        let mut c = Config::for_provider(crate::NAME);
        c.model = Some(Self::MODEL.to_owned());
        c.dimensions = Some(Self::DIMENSION);
        c.base_url = Some(format!("{base_url}/v1"));
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
        JINA_EMBEDDINGS
    }

    fn input_types(&self) -> &'static [InputType] {
        crate::input_types(Some(Family::V3))
    }

    fn output_types(&self) -> &'static [OutputType] {
        crate::OUTPUT_TYPES
    }

    fn rows_carry_index(&self) -> bool {
        true
    }

    fn secret(&self) -> Option<&'static str> {
        Some(Self::KEY)
    }
}

embeddings_testkit::register_fixture!(JinaFixture);
