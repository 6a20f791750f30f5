//! Mistral's `/v1/embeddings` as a fake-server dialect ([`MistralDialect`])
//! and the `mistral` fixture ([`MistralFixture`]).
//!
//! As strict as Mistral's reference (its OpenAPI `EmbeddingRequest`,
//! `additionalProperties: false`): `model` and `input` (a string or a list
//! of strings) required, only `metadata`, `output_dimension`,
//! `output_dtype` and `encoding_format` besides; a schema violation is a 422
//! `{"detail": [{"type", "loc", "msg", "input"}]}`. An unknown model is a 400
//! `invalid_model`; mistral-embed takes no `output_dimension` (but 1024) and
//! no `output_dtype` but `float`; codestral-embed's `output_dimension` is
//! 1 to 3,072. At most 512 inputs and 16,384 tokens per request, 8,192 per
//! input (400s with code 3210 / a context-length message, as the service
//! answers). A missing or wrong key is a 401 `{"message": "Unauthorized"}`;
//! other errors are `{"object": "error", "message", "type", "param", "code"}`.
//!
//! Rows are DESIGN.md §4 vectors as JSON arrays: `int8`/`uint8` are
//! `embeddings_core::quantize::{int8, uint8}` of them, `binary`/`ubinary`
//! their packed signs (`binary` offset by 128): exactly
//! `Embeddings::quantized` of the float rows. With `encoding_format:
//! base64` a row is the base64 of its bytes (`f32` little-endian).

// The handlers answer a refusal early with `?`: the error is the reply.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use embeddings_core::{Config, InputType, OutputType, quantize};
use embeddings_testkit::dialect::{
    Dialect, EngineError, Exchange, JSON, Reply, RequestSummary, RouteSpec, RowStyle, Rows,
};
use embeddings_testkit::{Fixture, RecordedRequest, Route, count_tokens};
use serde_json::{Value, json};

use crate::{MAX_BATCH_TOKENS, MAX_INPUT_TOKENS, MAX_INPUTS, model_spec};

/// `POST /v1/embeddings`.
pub const MISTRAL_EMBEDDINGS: Route = Route::new("mistral_embeddings");

/// Mistral's API as a dialect (the models of [`crate::model_spec`]).
#[derive(Debug, Default)]
pub struct MistralDialect {
    api_key: Option<String>,
}

impl MistralDialect {
    /// Requires `Authorization: Bearer <key>`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }
}

/// Mistral's error object.
fn error(status: u16, kind: &str, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        JSON,
        &json!({ "object": "error", "message": message, "type": kind, "param": null, "code": code }),
    )
}

/// A 422 of the request schema.
fn invalid(kind: &str, field: &str, msg: &str, input: &Value) -> Reply {
    Reply::json(
        422,
        JSON,
        &json!({ "detail": [{ "type": kind, "loc": ["body", field], "msg": msg, "input": input }] }),
    )
}

/// An `OutputType` for `output_dtype`.
pub fn output_type_of(wire: &str) -> Option<OutputType> {
    match wire {
        "float" => Some(OutputType::F32),
        "int8" => Some(OutputType::Int8),
        "uint8" => Some(OutputType::Uint8),
        "binary" => Some(OutputType::Binary),
        "ubinary" => Some(OutputType::Ubinary),
        _ => None,
    }
}

const FIELDS: &[&str] = &[
    "model",
    "metadata",
    "input",
    "output_dimension",
    "output_dtype",
    "encoding_format",
];

impl MistralDialect {
    fn answer(&self, ex: &Exchange<'_>) -> Result<Reply, Reply> {
        if let Some(key) = &self.api_key {
            let sent = ex
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "));
            if sent.map(str::trim) != Some(key.as_str()) {
                return Err(Reply::json(
                    401,
                    JSON,
                    &json!({ "message": "Unauthorized", "request_id": "f4ke0000000000000000000000000001" }),
                ));
            }
        }
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(ex.body()) else {
            return Err(invalid(
                "model_attributes_type",
                "body",
                "Input should be a valid dictionary or object to extract fields from",
                &Value::Null,
            ));
        };
        if let Some((k, v)) = body.iter().find(|(k, _)| !FIELDS.contains(&k.as_str())) {
            return Err(invalid(
                "extra_forbidden",
                k,
                "Extra inputs are not permitted",
                v,
            ));
        }
        let Some(model) = body.get("model").and_then(Value::as_str) else {
            return Err(invalid("missing", "model", "Field required", &Value::Null));
        };
        let texts: Vec<&str> = match body.get("input") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => {
                match a.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                    Some(t) => t,
                    None => {
                        return Err(invalid(
                            "string_type",
                            "input",
                            "Input should be a valid string",
                            &json!(a),
                        ));
                    }
                }
            }
            Some(v) => {
                return Err(invalid(
                    "string_type",
                    "input",
                    "Input should be a valid string",
                    v,
                ));
            }
            None => return Err(invalid("missing", "input", "Field required", &Value::Null)),
        };
        let Some(spec) = model_spec(model) else {
            return Err(error(
                400,
                "invalid_model",
                "1500",
                &format!("Invalid model: {model}"),
            ));
        };
        let dtype = match body.get("output_dtype") {
            None | Some(Value::Null) => OutputType::F32,
            Some(v) => match v.as_str().and_then(output_type_of) {
                Some(t) => t,
                None => {
                    return Err(invalid(
                        "enum",
                        "output_dtype",
                        "Input should be 'float', 'int8', 'uint8', 'binary' or 'ubinary'",
                        v,
                    ));
                }
            },
        };
        if dtype != OutputType::F32 && !spec.quantized {
            return Err(error(
                400,
                "invalid_request_error",
                "3051",
                &format!("Model {model} does not support output_dtype {dtype}."),
            ));
        }
        let dim = match body.get("output_dimension") {
            None | Some(Value::Null) => spec.dimension,
            Some(v) => match v.as_u64().filter(|d| *d > 0) {
                None => {
                    return Err(invalid(
                        "greater_than",
                        "output_dimension",
                        "Input should be greater than 0",
                        v,
                    ));
                }
                Some(d) => match spec.max_dimension {
                    Some(max) if d as usize <= max => d as usize,
                    None if d as usize == spec.dimension => spec.dimension,
                    _ => {
                        return Err(error(
                            400,
                            "invalid_request_error",
                            "3051",
                            &format!("output_dimension {d} is not supported by model {model}."),
                        ));
                    }
                },
            },
        };
        let base64 = match body.get("encoding_format") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) if s == "float" => false,
            Some(Value::String(s)) if s == "base64" => true,
            Some(v) => {
                return Err(invalid(
                    "enum",
                    "encoding_format",
                    "Input should be 'float' or 'base64'",
                    v,
                ));
            }
        };
        if texts.is_empty() || texts.len() > MAX_INPUTS {
            return Err(error(
                400,
                "invalid_request_prompt",
                "3210",
                if texts.is_empty() {
                    "Input should not be empty."
                } else {
                    "Too many inputs in request, split into more batches."
                },
            ));
        }
        let counts: Vec<usize> = texts.iter().map(|t| count_tokens(t)).collect();
        if let Some(n) = counts.iter().find(|n| **n > MAX_INPUT_TOKENS) {
            return Err(error(
                400,
                "invalid_request_prompt",
                "3051",
                &format!(
                    "Prompt contains {n} tokens, too large for model with {MAX_INPUT_TOKENS} maximum context length"
                ),
            ));
        }
        let total: usize = counts.iter().sum();
        if total > MAX_BATCH_TOKENS {
            return Err(error(
                400,
                "invalid_request_prompt",
                "3210",
                "Too many tokens overall, split into more batches.",
            ));
        }
        let limits = match ex.admit(total as u64) {
            Ok(l) => l,
            Err(r) => {
                return Err(error(429, "rate_limited", "1300", "Rate limit exceeded").rejected(&r));
            }
        };
        let rows = ex.rows(model, &texts, dim, RowStyle::Indexed);
        let data: Vec<Value> = (0..rows.len())
            .map(|i| {
                json!({
                    "object": "embedding",
                    "embedding": encode_row(&rows, i, dtype, base64),
                    "index": rows.index(i),
                })
            })
            .collect();
        let answer = json!({
            "id": "f4ke5e7ver00000000000000000000ab",
            "object": "list",
            "data": data,
            "model": model,
            "usage": {
                "prompt_tokens": total,
                "completion_tokens": 0,
                "total_tokens": total,
                "prompt_audio_seconds": null,
            },
        });
        Ok(Reply::json(200, JSON, &answer)
            .rate_limits(&limits)
            .embedded(texts.len(), total as u64))
    }
}

/// Row `i` as `t`: a JSON array, or the base64 of its bytes.
fn encode_row(rows: &Rows, i: usize, t: OutputType, base64: bool) -> Value {
    let r = rows.row(i);
    let bytes: Vec<u8> = match t {
        OutputType::Int8 => r.iter().map(|&x| quantize::int8(x) as u8).collect(),
        OutputType::Uint8 => r.iter().map(|&x| quantize::uint8(x)).collect(),
        OutputType::Binary | OutputType::Ubinary => {
            let mut bits = vec![0u8; r.len().div_ceil(8)];
            quantize::pack_bits(r, &mut bits);
            if t == OutputType::Binary {
                bits.iter_mut()
                    .for_each(|b| *b = quantize::binary_byte(*b) as u8);
            }
            bits
        }
        _ if base64 => r.iter().flat_map(|x| x.to_le_bytes()).collect(),
        _ => return json!(r),
    };
    if base64 {
        Value::String(BASE64.encode(bytes))
    } else if matches!(t, OutputType::Int8 | OutputType::Binary) {
        json!(bytes.iter().map(|&b| b as i8).collect::<Vec<_>>())
    } else {
        json!(bytes)
    }
}

impl Dialect for MistralDialect {
    fn name(&self) -> &'static str {
        "mistral"
    }

    fn routes(&self) -> Vec<RouteSpec> {
        vec![RouteSpec::post(MISTRAL_EMBEDDINGS, ["/v1/embeddings"]).embedding()]
    }

    fn handle(&self, ex: &Exchange<'_>) -> Reply {
        match self.answer(ex) {
            Ok(r) | Err(r) => r,
        }
    }

    fn error(&self, _route: Route, e: &EngineError<'_>) -> Reply {
        let status = e.status().as_u16();
        if status == 401 {
            return Reply::json(401, JSON, &json!({ "message": "Unauthorized" }));
        }
        let (kind, code) = match status {
            429 => ("rate_limited", "1300"),
            s if s >= 500 => ("internal_server_error", "1000"),
            _ => ("invalid_request_error", "1000"),
        };
        error(status, kind, code, &e.message())
    }

    fn describe(&self, request: &RecordedRequest) -> RequestSummary {
        let mut s = RequestSummary::default();
        if request.route != MISTRAL_EMBEDDINGS {
            return s;
        }
        let b = &request.body;
        s.model = b["model"].as_str().map(str::to_owned);
        s.inputs = match &b["input"] {
            Value::String(_) => Some(1),
            Value::Array(a) => Some(a.len()),
            _ => None,
        };
        s.output_type = match &b["output_dtype"] {
            Value::Null => Some(OutputType::F32),
            v => v.as_str().and_then(output_type_of),
        };
        s
    }
}

/// The `mistral` provider against [`MistralDialect`]: codestral-embed at
/// `output_dimension` 256, every output type native.
#[derive(Debug, Clone, Copy, Default)]
pub struct MistralFixture;

impl MistralFixture {
    /// The key the fixture's configuration carries.
    pub const KEY: &'static str = "mistral-fixture-not-a-real-key-0123456789";
    /// The model.
    pub const MODEL: &'static str = "codestral-embed";
    /// The dimension asked for.
    pub const DIMENSION: usize = 256;
}

impl Fixture for MistralFixture {
    fn provider(&self) -> &'static str {
        crate::NAME
    }

    fn dialects(&self) -> Vec<Arc<dyn Dialect>> {
        vec![Arc::new(MistralDialect::default())]
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
        MISTRAL_EMBEDDINGS
    }

    fn input_types(&self) -> &'static [InputType] {
        &[]
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

embeddings_testkit::register_fixture!(MistralFixture);
