//! Cohere's `/v2/embed` as a fake-server dialect ([`CohereDialect`]) and
//! the `cohere` fixture ([`CohereFixture`]), so that the conformance suite
//! and the fault matrix run over this provider.
//!
//! The dialect is as strict as Cohere's reference: `model` and `texts`
//! required (1 to 96 strings), `input_type` required for v3+ models and one
//! of `search_document`, `search_query`, `classification`, `clustering`,
//! `image`; `embedding_types` of `float`, `int8`, `uint8`, `binary`,
//! `ubinary` (default `float`; several at once answer several);
//! `truncate` of `NONE`, `START`, `END` (default `END`; with `NONE` an
//! input over the model's context is a 400 "too many tokens");
//! `output_dimension` only for embed-v4.0 and one of 256, 512, 1024, 1536;
//! an unknown field is a 400. Errors are `{"id", "message"}`; 429 as
//! Cohere's trial-key message.
//!
//! Quantisation: the rows are DESIGN.md §4 vectors; `int8`/`uint8` are
//! `embeddings_core::quantize::{int8, uint8}` of them and `binary`/`ubinary`
//! their packed signs (`quantize::pack_bits`, `binary` minus 128), i.e.
//! exactly `Embeddings::quantized` of the float rows. (Cohere calibrates
//! int8 its own way; the tests need a documented one.) A NaN a row fault
//! put in a row is answered as `null` in every type.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use embeddings_core::{Config, InputType, OutputType, quantize};
use embeddings_testkit::dialect::{
    Dialect, EngineError, Exchange, JSON, Reply, RequestSummary, RouteSpec, RowStyle, Rows,
};
use embeddings_testkit::{Fixture, RecordedRequest, Route, count_tokens};
use serde_json::{Value, json};

/// `POST /v2/embed`.
pub const COHERE_EMBED: Route = Route::new("cohere_embed");

/// The models served by default: name → (dimension, context tokens).
pub const DEFAULT_MODELS: &[(&str, usize, usize)] = &[
    ("embed-v4.0", 1536, 128_000),
    ("embed-english-v3.0", 1024, 512),
    ("embed-multilingual-v3.0", 1024, 512),
    ("embed-english-light-v3.0", 384, 512),
    ("embed-multilingual-light-v3.0", 384, 512),
];

/// Cohere's `/v2/embed` as a dialect.
#[derive(Debug)]
pub struct CohereDialect {
    api_key: Option<String>,
    models: BTreeMap<String, (usize, usize)>,
    ids: AtomicU64,
}

impl Default for CohereDialect {
    fn default() -> Self {
        CohereDialect {
            api_key: None,
            models: DEFAULT_MODELS
                .iter()
                .map(|(n, d, c)| ((*n).to_owned(), (*d, *c)))
                .collect(),
            ids: AtomicU64::new(0),
        }
    }
}

impl CohereDialect {
    /// Requires `Authorization: Bearer <key>`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Serves one more model.
    pub fn model(mut self, name: impl Into<String>, dimension: usize, context: usize) -> Self {
        self.models
            .insert(name.into(), (dimension.max(1), context.max(1)));
        self
    }

    fn error(&self, status: u16, message: &str) -> Reply {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        Reply::json(
            status,
            JSON,
            &json!({ "id": format!("fake-{id:08x}"), "message": message }),
        )
    }
}

/// An `InputType` for Cohere's `input_type`.
pub fn input_type_of(wire: &str) -> Option<InputType> {
    match wire {
        "search_document" => Some(InputType::Document),
        "search_query" => Some(InputType::Query),
        "classification" => Some(InputType::Classification),
        "clustering" => Some(InputType::Clustering),
        _ => None,
    }
}

/// An `OutputType` for an `embedding_types` entry.
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
    "texts",
    "images",
    "inputs",
    "input_type",
    "embedding_types",
    "truncate",
    "output_dimension",
    "max_tokens",
];

impl Dialect for CohereDialect {
    fn name(&self) -> &'static str {
        "cohere"
    }

    fn routes(&self) -> Vec<RouteSpec> {
        vec![RouteSpec::post(COHERE_EMBED, ["/v2/embed"]).embedding()]
    }

    fn handle(&self, ex: &Exchange<'_>) -> Reply {
        if let Some(key) = &self.api_key {
            let sent = ex
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer ").or(v.strip_prefix("bearer ")));
            if sent.map(str::trim) != Some(key.as_str()) {
                return self.error(401, "invalid api token");
            }
        }
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(ex.body()) else {
            return self.error(400, "invalid request: the body must be a JSON object");
        };
        if let Some(k) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return self.error(400, &format!("invalid request: unknown field `{k}`"));
        }
        let Some(model) = body.get("model").and_then(Value::as_str) else {
            return self.error(400, "invalid request: model must be a string");
        };
        let Some(&(native, context)) = self.models.get(model) else {
            return self.error(
                404,
                &format!("model '{model}' not found, make sure the correct model ID was used and that you have access to the model."),
            );
        };
        if body.contains_key("images") || body.contains_key("inputs") {
            return self.error(
                400,
                "invalid request: this fake serves texts only (images and inputs are not supported)",
            );
        }
        let Some(texts) = body.get("texts").and_then(Value::as_array) else {
            return self.error(400, "invalid request: texts must be an array of strings");
        };
        let Some(texts) = texts
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<&str>>>()
        else {
            return self.error(400, "invalid request: texts must be an array of strings");
        };
        if texts.is_empty() {
            return self.error(400, "invalid request: texts must not be empty");
        }
        if texts.len() > crate::MAX_TEXTS {
            return self.error(
                400,
                &format!(
                    "invalid request: total number of texts must be at most {} - received {}",
                    crate::MAX_TEXTS,
                    texts.len()
                ),
            );
        }
        match body.get("input_type") {
            None | Some(Value::Null) => {
                return self.error(
                    400,
                    "invalid request: valid input_type must be provided with the provided model",
                );
            }
            Some(v) => match v.as_str() {
                Some(t) if input_type_of(t).is_some() => {}
                _ => {
                    return self.error(
                        400,
                        &format!(
                            "invalid request: input_type must be one of search_document, search_query, classification, clustering, image; received {v}"
                        ),
                    );
                }
            },
        }
        let mut types: Vec<OutputType> = Vec::new();
        match body.get("embedding_types") {
            None | Some(Value::Null) => types.push(OutputType::F32),
            Some(Value::Array(list)) if !list.is_empty() => {
                for v in list {
                    match v.as_str().and_then(output_type_of) {
                        Some(t) if !types.contains(&t) => types.push(t),
                        Some(_) => {}
                        None => {
                            return self.error(
                                400,
                                &format!(
                                    "invalid request: embedding_types must be one of float, int8, uint8, binary, ubinary; received {v}"
                                ),
                            );
                        }
                    }
                }
            }
            Some(_) => {
                return self.error(
                    400,
                    "invalid request: embedding_types must be a non-empty array",
                );
            }
        }
        let truncate = match body.get("truncate") {
            None | Some(Value::Null) => "END",
            Some(v) => match v.as_str() {
                Some(t @ ("NONE" | "START" | "END")) => t,
                _ => {
                    return self.error(
                        400,
                        &format!("invalid request: truncate must be one of NONE, START, END; received {v}"),
                    );
                }
            },
        };
        let dim = match body.get("output_dimension") {
            None | Some(Value::Null) => native,
            Some(v) => {
                if !model.starts_with("embed-v4") {
                    return self.error(
                        400,
                        &format!(
                            "invalid request: output_dimension is not supported for model {model}"
                        ),
                    );
                }
                match v.as_u64() {
                    Some(d @ (256 | 512 | 1024 | 1536)) => d as usize,
                    _ => {
                        return self.error(
                            400,
                            &format!("invalid request: output_dimension must be one of 256, 512, 1024, 1536; received {v}"),
                        );
                    }
                }
            }
        };
        if body
            .get("max_tokens")
            .is_some_and(|v| !v.is_null() && v.as_u64().is_none_or(|n| n == 0))
        {
            return self.error(
                400,
                "invalid request: max_tokens must be a positive integer",
            );
        }
        let counts: Vec<usize> = texts.iter().map(|t| count_tokens(t)).collect();
        let over = counts
            .iter()
            .find(|n| **n > context)
            .filter(|_| truncate == "NONE");
        if let Some(n) = over {
            return self.error(
                400,
                &format!(
                    "too many tokens: total number of tokens in the prompt cannot exceed {context} - received {n}. Try using a shorter prompt or enabling prompt truncating."
                ),
            );
        }
        let total: usize = counts.iter().map(|n| (*n).min(context)).sum();
        let limits = match ex.admit(total as u64) {
            Ok(l) => l,
            Err(r) => {
                return self
                    .error(
                        429,
                        "You are using a Trial key, which is limited to 100 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits.",
                    )
                    .rejected(&r);
            }
        };
        let rows = ex.rows(model, &texts, dim, RowStyle::Positional);
        let mut embeddings = serde_json::Map::new();
        for t in types {
            if let Some(name) = crate::wire_output_type(t) {
                embeddings.insert(name.to_owned(), encode(&rows, t));
            }
        }
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let answer = json!({
            "id": format!("fake-{id:08x}"),
            "embeddings": embeddings,
            "texts": texts,
            "meta": {
                "api_version": { "version": "2" },
                "billed_units": { "input_tokens": total },
            },
            "response_type": "embeddings_by_type",
        });
        Reply::json(200, JSON, &answer)
            .rate_limits(&limits)
            .embedded(texts.len(), total as u64)
    }

    fn error(&self, _route: Route, error: &EngineError<'_>) -> Reply {
        let message = match error {
            EngineError::RateLimited(_) => {
                "You are using a Trial key, which is limited to 100 API calls / minute.".into()
            }
            e => e.message(),
        };
        CohereDialect::error(self, error.status().as_u16(), &message)
    }

    fn describe(&self, request: &RecordedRequest) -> RequestSummary {
        let mut s = RequestSummary::default();
        if request.route != COHERE_EMBED {
            return s;
        }
        let b = &request.body;
        s.model = b["model"].as_str().map(str::to_owned);
        s.inputs = b["texts"].as_array().map(Vec::len);
        s.input_type = b["input_type"].as_str().and_then(input_type_of);
        s.output_type = match b["embedding_types"].as_array() {
            Some(list) if list.len() == 1 => list[0].as_str().and_then(output_type_of),
            _ => None,
        };
        s
    }
}

/// The rows as `t` in JSON (a NaN as `null`).
pub fn encode(rows: &Rows, t: OutputType) -> Value {
    let row = |i: usize| -> Value {
        let r = rows.row(i);
        let nan = r.iter().any(|x| x.is_nan());
        let mut v: Vec<Value> = match t {
            OutputType::F32 => return json!(r),
            OutputType::Int8 => r.iter().map(|&x| json!(quantize::int8(x))).collect(),
            OutputType::Uint8 => r.iter().map(|&x| json!(quantize::uint8(x))).collect(),
            OutputType::Binary | OutputType::Ubinary => {
                let mut bits = vec![0u8; r.len().div_ceil(8)];
                quantize::pack_bits(r, &mut bits);
                bits.into_iter()
                    .map(|b| {
                        if t == OutputType::Binary {
                            json!(quantize::binary_byte(b))
                        } else {
                            json!(b)
                        }
                    })
                    .collect()
            }
            _ => return Value::Null,
        };
        if let Some(first) = v.first_mut().filter(|_| nan) {
            *first = Value::Null;
        }
        Value::Array(v)
    };
    Value::Array((0..rows.len()).map(row).collect())
}

/// The `cohere` provider against [`CohereDialect`]: embed-v4.0 at
/// `output_dimension` 256, every input and output type native.
#[derive(Debug, Clone, Copy, Default)]
pub struct CohereFixture;

impl CohereFixture {
    /// The key the fixture's configuration carries.
    pub const KEY: &'static str = "co-fixture-not-a-real-key-0123";
}

impl Fixture for CohereFixture {
    fn provider(&self) -> &'static str {
        crate::NAME
    }

    fn dialects(&self) -> Vec<Arc<dyn Dialect>> {
        vec![Arc::new(CohereDialect::default())]
    }

    fn config(&self, base_url: &str) -> Config {
        let mut c = Config::for_provider(crate::NAME);
        c.model = Some(self.model().to_owned());
        c.dimensions = Some(self.dimension());
        c.base_url = Some(base_url.to_owned());
        c.api_key = Some(Self::KEY.to_owned().into());
        c
    }

    fn model(&self) -> &'static str {
        "embed-v4.0"
    }

    fn dimension(&self) -> usize {
        256
    }

    fn embedding_route(&self) -> Route {
        COHERE_EMBED
    }

    fn input_types(&self) -> &'static [InputType] {
        crate::INPUT_TYPES
    }

    fn output_types(&self) -> &'static [OutputType] {
        crate::OUTPUT_TYPES
    }

    fn secret(&self) -> Option<&'static str> {
        Some(Self::KEY)
    }
}

embeddings_testkit::register_fixture!(CohereFixture);
