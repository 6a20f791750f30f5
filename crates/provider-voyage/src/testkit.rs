//! Voyage's `/v1/embeddings` as a fake-server dialect ([`VoyageDialect`])
//! and the `voyage` fixture ([`VoyageFixture`]).
//!
//! As strict as Voyage's reference: `input` (a string or 1 to 1,000
//! strings) and `model` required; `input_type` `null`, `query` or
//! `document`; `truncation` a boolean (default `true`; with `false` an input
//! over the model's context is a 400); `output_dimension` only for the
//! flexible models and one of 256, 512, 1024, 2048; `output_dtype` `float`,
//! `int8`, `uint8`, `binary`, `ubinary` (non-float only for the flexible
//! models); `encoding_format` `null` or `base64`; the tokens of a request
//! within the model's per-request limit ([`crate::model_limits`]); an
//! unknown field is a 400. Errors are `{"detail": "..."}`.
//!
//! Quantisation: rows are DESIGN.md §4 vectors; `int8`/`uint8` are
//! `embeddings_core::quantize::{int8, uint8}` of them, `binary`/`ubinary`
//! their packed signs: exactly `Embeddings::quantized` of the float rows.
//! In base64, float rows are little-endian `f32` bytes, the others their
//! bytes (`int8` as two's complement).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use embeddings_core::{Config, InputType, OutputType, quantize};
use embeddings_testkit::dialect::{
    Dialect, EngineError, Exchange, JSON, Reply, RequestSummary, RouteSpec, RowStyle, Rows,
};
use embeddings_testkit::{Fixture, RecordedRequest, Route, count_tokens};
use serde_json::{Value, json};

/// `POST /v1/embeddings`.
pub const VOYAGE_EMBEDDINGS: Route = Route::new("voyage_embeddings");

/// Voyage's API as a dialect (every model of [`crate::model_limits`]).
#[derive(Debug, Default)]
pub struct VoyageDialect {
    api_key: Option<String>,
}

impl VoyageDialect {
    /// Requires `Authorization: Bearer <key>`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }
}

fn detail(status: u16, message: &str) -> Reply {
    Reply::json(status, JSON, &json!({ "detail": message }))
}

/// An `InputType` for Voyage's `input_type`.
pub fn input_type_of(wire: &str) -> Option<InputType> {
    match wire {
        "document" => Some(InputType::Document),
        "query" => Some(InputType::Query),
        _ => None,
    }
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
    "input",
    "model",
    "input_type",
    "truncation",
    "output_dimension",
    "output_dtype",
    "encoding_format",
];

impl Dialect for VoyageDialect {
    fn name(&self) -> &'static str {
        "voyage"
    }

    fn routes(&self) -> Vec<RouteSpec> {
        vec![RouteSpec::post(VOYAGE_EMBEDDINGS, ["/v1/embeddings"]).embedding()]
    }

    fn handle(&self, ex: &Exchange<'_>) -> Reply {
        if let Some(key) = &self.api_key {
            let sent = ex
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "));
            if sent.map(str::trim) != Some(key.as_str()) {
                return detail(401, "Provided API key is invalid.");
            }
        }
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(ex.body()) else {
            return detail(400, "Invalid request body: expected a JSON object.");
        };
        if let Some(k) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return detail(400, &format!("Unexpected argument '{k}'."));
        }
        let texts: Vec<&str> = match body.get("input") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => {
                match a.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                    Some(t) => t,
                    None => return detail(400, "'input' must be a string or a list of strings."),
                }
            }
            _ => {
                return detail(
                    400,
                    "'input' is required and must be a string or a list of strings.",
                );
            }
        };
        if texts.is_empty() || texts.len() > crate::MAX_INPUTS {
            return detail(
                400,
                &format!(
                    "The length of 'input' must be between 1 and {}; got {}.",
                    crate::MAX_INPUTS,
                    texts.len()
                ),
            );
        }
        let Some(model) = body.get("model").and_then(Value::as_str) else {
            return detail(400, "'model' is required.");
        };
        let (native, context, per_request) = crate::model_limits(model);
        if native == 0 {
            return detail(
                400,
                &format!(
                    "Model {model} is not supported. Please see https://docs.voyageai.com/docs/embeddings for the supported models."
                ),
            );
        }
        let flexible = crate::is_flexible(model);
        match body.get("input_type") {
            None | Some(Value::Null) => {}
            Some(v) if v.as_str().and_then(input_type_of).is_some() => {}
            Some(v) => {
                return detail(
                    400,
                    &format!("'input_type' must be null, 'query' or 'document'; got {v}."),
                );
            }
        }
        let truncation = match body.get("truncation") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(v) => return detail(400, &format!("'truncation' must be a boolean; got {v}.")),
        };
        let dim = match body.get("output_dimension") {
            None | Some(Value::Null) => native,
            Some(v) if !flexible => {
                return detail(
                    400,
                    &format!("Model {model} does not support 'output_dimension' (got {v})."),
                );
            }
            Some(v) => match v.as_u64() {
                Some(d @ (256 | 512 | 1024 | 2048)) => d as usize,
                _ => {
                    return detail(
                        400,
                        &format!(
                            "'output_dimension' must be one of 256, 512, 1024, 2048 for {model}; got {v}."
                        ),
                    );
                }
            },
        };
        let dtype = match body.get("output_dtype") {
            None | Some(Value::Null) => OutputType::F32,
            Some(v) => match v.as_str().and_then(output_type_of) {
                Some(OutputType::F32) => OutputType::F32,
                Some(t) if flexible => t,
                Some(_) => {
                    return detail(
                        400,
                        &format!("Model {model} only supports output_dtype 'float'; got {v}."),
                    );
                }
                None => {
                    return detail(
                        400,
                        &format!(
                            "'output_dtype' must be one of float, int8, uint8, binary, ubinary; got {v}."
                        ),
                    );
                }
            },
        };
        let base64 = match body.get("encoding_format") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) if s == "base64" => true,
            Some(v) => {
                return detail(
                    400,
                    &format!("'encoding_format' must be null or 'base64'; got {v}."),
                );
            }
        };
        let counts: Vec<usize> = texts.iter().map(|t| count_tokens(t)).collect();
        let over = counts
            .iter()
            .enumerate()
            .find(|(_, n)| !truncation && **n > context);
        if let Some((i, n)) = over {
            return detail(
                400,
                &format!(
                    "Input at index {i} has {n} tokens, which exceeds the context length of {context} tokens for {model}. Please set truncation=True or shorten it."
                ),
            );
        }
        let total: usize = counts.iter().map(|n| (*n).min(context)).sum();
        if total > per_request {
            return detail(
                400,
                &format!(
                    "Request to model '{model}' failed. The max allowed tokens per submitted batch is {per_request}. Your batch has {total} tokens after truncation. Please lower the number of tokens in the batch."
                ),
            );
        }
        let limits = match ex.admit(total as u64) {
            Ok(l) => l,
            Err(r) => {
                return detail(429, "You have exceeded your rate limit. Please see https://docs.voyageai.com/docs/rate-limits.")
                    .rejected(&r);
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
            "object": "list",
            "data": data,
            "model": model,
            "usage": { "total_tokens": total },
        });
        Reply::json(200, JSON, &answer)
            .rate_limits(&limits)
            .embedded(texts.len(), total as u64)
    }

    fn error(&self, _route: Route, error: &EngineError<'_>) -> Reply {
        detail(error.status().as_u16(), &error.message())
    }

    fn describe(&self, request: &RecordedRequest) -> RequestSummary {
        let mut s = RequestSummary::default();
        if request.route != VOYAGE_EMBEDDINGS {
            return s;
        }
        let b = &request.body;
        s.model = b["model"].as_str().map(str::to_owned);
        s.inputs = match &b["input"] {
            Value::String(_) => Some(1),
            Value::Array(a) => Some(a.len()),
            _ => None,
        };
        s.input_type = b["input_type"].as_str().and_then(input_type_of);
        s.output_type = match &b["output_dtype"] {
            Value::Null => Some(OutputType::F32),
            v => v.as_str().and_then(output_type_of),
        };
        s
    }
}

/// Row `i` as `t`: bytes (base64) or a JSON array.
fn encode_row(rows: &Rows, i: usize, t: OutputType, base64: bool) -> Value {
    let r = rows.row(i);
    let bytes: Vec<u8> = match t {
        OutputType::Int8 => r.iter().map(|&x| quantize::int8(x) as u8).collect(),
        OutputType::Uint8 => r.iter().map(|&x| quantize::uint8(x)).collect(),
        OutputType::Binary | OutputType::Ubinary => {
            let mut bits = vec![0u8; r.len().div_ceil(8)];
            quantize::pack_bits(r, &mut bits);
            if t == OutputType::Binary {
                bits.iter_mut().for_each(|b| *b ^= 0x80);
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

/// The `voyage` provider against [`VoyageDialect`]: voyage-3.5-lite at
/// `output_dimension` 256, every output type native.
#[derive(Debug, Clone, Copy, Default)]
pub struct VoyageFixture;

impl VoyageFixture {
    /// The key the fixture's configuration carries.
    pub const KEY: &'static str = "pa-fixture-not-a-real-key-4567";
}

impl Fixture for VoyageFixture {
    fn provider(&self) -> &'static str {
        crate::NAME
    }

    fn dialects(&self) -> Vec<Arc<dyn Dialect>> {
        vec![Arc::new(VoyageDialect::default())]
    }

    fn config(&self, base_url: &str) -> Config {
        let mut c = Config::for_provider(crate::NAME);
        c.model = Some(self.model().to_owned());
        c.dimensions = Some(self.dimension());
        c.base_url = Some(format!("{base_url}/v1"));
        c.api_key = Some(Self::KEY.to_owned().into());
        c
    }

    fn model(&self) -> &'static str {
        "voyage-3.5-lite"
    }

    fn dimension(&self) -> usize {
        256
    }

    fn embedding_route(&self) -> Route {
        VOYAGE_EMBEDDINGS
    }

    fn input_types(&self) -> &'static [InputType] {
        crate::INPUT_TYPES
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

embeddings_testkit::register_fixture!(VoyageFixture);
