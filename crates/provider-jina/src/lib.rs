//! The Jina AI embeddings provider, registered as `jina`: one
//! `POST {base_url}/embeddings` per call, on the `embeddings-http` toolkit.
//!
//! * Input types natively, as Jina's `task` ([`wire_task`]): for
//!   jina-embeddings-v3 `retrieval.passage` (document), `retrieval.query`,
//!   `classification`, `separation` (clustering) and `text-matching`
//!   (similarity); for v4 the retrieval tasks and `text-matching`; for the
//!   code models `nl2code.passage`/`nl2code.query`; for jina-clip-v2 a query
//!   is `retrieval.query` and a document sends no task. A type the model has
//!   no task for is an `InvalidInput` naming provider, type and model. The
//!   v2 models take no `task` (input types are ignored, as for OpenAI).
//! * Output types natively (`embedding_type`): `f32` travels as `base64`
//!   (little-endian `f32`), `binary` and `ubinary` as Jina packs them (one
//!   bit per dimension, most significant first; `binary` offset by 128);
//!   rows are placed by `index`. Jina has no `int8`/`uint8`: those are
//!   refused with `InvalidInput` naming the provider and the type.
//! * `dimensions` from the common key (1 to 1,024 for v3 and clip-v2, 2,048
//!   for v4, 896/1,536 for the code models; the v2 models have none);
//!   `truncate` from `[jina] truncate`, else the batch layer's over-length
//!   policy (`truncate` → `true`); `late_chunking` from `[jina]` (v3, v4).
//! * Limits ([`model_spec`]): at most 2,048 inputs per call, the model's
//!   context per input (8,192 tokens; 32,768 for v4 and the code models).
//!   With `late_chunking` Jina concatenates the inputs of a request into one
//!   sequence, so a request's tokens are limited to the context as well.
//! * The key from `api_key`, else `JINA_API_KEY` (bearer); the endpoint
//!   from `base_url`, else `JINA_BASE_URL`, else `https://api.jina.ai/v1`.
//!
//! ```toml
//! provider = "jina"
//! model = "jina-embeddings-v3"
//! dimensions = 512
//! [jina]
//! late_chunking = false
//! truncate = true
//! request_timeout = "60s"
//! ```

mod decode;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, Error, ErrorKind, InputType, OutputType,
    OverLengthPolicy, ProviderInfo, Result, async_trait,
};
use embeddings_http::reqwest::header::HeaderMap;
use embeddings_http::{
    BodyCap, ErrorDetail, HostedApi, HttpClient, InfoCell, Masker, Url, default_kind,
    is_context_length_text, status_error,
};
use serde::{Deserialize, Serialize};

pub use crate::decode::decode_response;

/// The registered name.
pub const NAME: &str = "jina";
/// The default model.
pub const DEFAULT_MODEL: &str = "jina-embeddings-v3";
/// The default base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.jina.ai/v1";
/// The key's environment variable.
pub const ENV_API_KEY: &str = "JINA_API_KEY";
/// The base URL's environment variable.
pub const ENV_BASE_URL: &str = "JINA_BASE_URL";
/// Most inputs per call.
pub const MAX_INPUTS: usize = 2048;

/// The output types Jina produces besides `f32`.
pub const OUTPUT_TYPES: &[OutputType] = &[OutputType::Binary, OutputType::Ubinary];

/// The model families, by the request schema Jina validates them with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Family {
    /// jina-embeddings-v2-base-*: no task, no dimensions, no late chunking.
    V2,
    /// jina-embeddings-v3: five tasks, dimensions, late chunking.
    V3,
    /// jina-embeddings-v4: retrieval, text-matching and code tasks.
    V4,
    /// jina-clip-v2: `retrieval.query` or no task.
    ClipV2,
    /// jina-code-embeddings-0.5b / -1.5b: `nl2code.*` and other code tasks.
    Code,
}

/// What the provider knows of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelSpec {
    /// The request schema.
    pub family: Family,
    /// The default (and largest) dimension.
    pub dimension: usize,
    /// Whether `dimensions` is accepted (1 to `dimension`).
    pub flexible: bool,
    /// Most tokens per input.
    pub context: usize,
    /// Whether `late_chunking` is accepted.
    pub late_chunking: bool,
}

/// The models of Jina's reference, `None` for any other.
pub fn model_spec(model: &str) -> Option<ModelSpec> {
    let spec = |family, dimension, flexible, context, late_chunking| ModelSpec {
        family,
        dimension,
        flexible,
        context,
        late_chunking,
    };
    Some(match model {
        "jina-embeddings-v2-base-en"
        | "jina-embeddings-v2-base-zh"
        | "jina-embeddings-v2-base-de"
        | "jina-embeddings-v2-base-es"
        | "jina-embeddings-v2-base-code" => spec(Family::V2, 768, false, 8192, false),
        "jina-embeddings-v3" => spec(Family::V3, 1024, true, 8192, true),
        "jina-embeddings-v4" => spec(Family::V4, 2048, true, 32_768, true),
        "jina-clip-v2" => spec(Family::ClipV2, 1024, true, 8192, false),
        "jina-code-embeddings-0.5b" => spec(Family::Code, 896, true, 32_768, false),
        "jina-code-embeddings-1.5b" => spec(Family::Code, 1536, true, 32_768, false),
        _ => return None,
    })
}

const V3_TYPES: &[InputType] = &[
    InputType::Document,
    InputType::Query,
    InputType::Classification,
    InputType::Clustering,
    InputType::Similarity,
];
const V4_TYPES: &[InputType] = &[InputType::Document, InputType::Query, InputType::Similarity];
const RETRIEVAL_TYPES: &[InputType] = &[InputType::Document, InputType::Query];

/// The input types a family sends as `task` (empty: no task, types ignored).
pub fn input_types(family: Option<Family>) -> &'static [InputType] {
    match family {
        Some(Family::V3) => V3_TYPES,
        Some(Family::V4) => V4_TYPES,
        Some(Family::ClipV2 | Family::Code) => RETRIEVAL_TYPES,
        Some(Family::V2) | None => &[],
    }
}

/// The `task` for `t`: `Ok(None)` when none is sent (a v2 or unknown
/// model, a clip-v2 document), `Err(())` when the family has no task for it.
#[allow(clippy::result_unit_err)]
pub fn wire_task(
    family: Option<Family>,
    t: InputType,
) -> std::result::Result<Option<&'static str>, ()> {
    use InputType as I;
    let task = match (family, t) {
        (Some(Family::V2) | None, _) => return Ok(None),
        (Some(Family::V3 | Family::V4), I::Document) => "retrieval.passage",
        (Some(Family::V3 | Family::V4), I::Query) => "retrieval.query",
        (Some(Family::V3 | Family::V4), I::Similarity) => "text-matching",
        (Some(Family::V3), I::Classification) => "classification",
        (Some(Family::V3), I::Clustering) => "separation",
        (Some(Family::ClipV2), I::Document) => return Ok(None),
        (Some(Family::ClipV2), I::Query) => "retrieval.query",
        (Some(Family::Code), I::Document) => "nl2code.passage",
        (Some(Family::Code), I::Query) => "nl2code.query",
        _ => return Err(()),
    };
    Ok(Some(task))
}

/// An `InputType` for a `task` of any family (`None`: not one we send).
pub fn input_type_of_task(task: &str) -> Option<InputType> {
    match task {
        "retrieval.passage" | "nl2code.passage" => Some(InputType::Document),
        "retrieval.query" | "nl2code.query" => Some(InputType::Query),
        "text-matching" => Some(InputType::Similarity),
        "classification" => Some(InputType::Classification),
        "separation" => Some(InputType::Clustering),
        _ => None,
    }
}

/// Jina's `embedding_type` for an output type (`f32` travels as base64).
pub fn wire_embedding_type(t: OutputType) -> Option<&'static str> {
    match t {
        OutputType::F32 => Some("base64"),
        OutputType::Binary => Some("binary"),
        OutputType::Ubinary => Some("ubinary"),
        _ => None,
    }
}

/// The `[jina]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JinaSection {
    /// `truncate`; default from the batch layer's `over_length`.
    pub truncate: Option<bool>,
    /// `late_chunking` (v3 and v4 only); default off.
    pub late_chunking: Option<bool>,
    /// TCP/TLS connect timeout.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// Deadline of the whole request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// Most inputs per call (at most 2,048).
    pub max_batch_size: Option<usize>,
    /// Most tokens per request (default: none beyond the inputs' own, or
    /// the context with `late_chunking`).
    pub max_batch_tokens: Option<usize>,
}

/// The Jina embedding provider. `Debug` never shows the key.
pub struct JinaEmbedder {
    info: InfoCell,
    family: Option<Family>,
    client: HttpClient,
    url: Url,
    shown: String,
    dimensions: Option<usize>,
    truncate: bool,
    late_chunking: bool,
}

impl fmt::Debug for JinaEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JinaEmbedder")
            .field("url", &self.shown)
            .field("model", &self.info().model)
            .field("dimension", &self.info().dimension)
            .field("truncate", &self.truncate)
            .field("late_chunking", &self.late_chunking)
            .field("api_key", &"[redacted]")
            .field("headers", &self.client.header_names())
            .finish_non_exhaustive()
    }
}

fn config_err(message: impl Into<String>) -> Error {
    Error::config(message).with_provider(NAME)
}

/// Where the service is and how its key travels.
const API: HostedApi = HostedApi {
    provider: NAME,
    default_base_url: DEFAULT_BASE_URL,
    base_url_env: &[ENV_BASE_URL],
    key_env: &[ENV_API_KEY],
    path: &["embeddings"],
};

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    input: &'a [&'a str],
    embedding_type: &'a str,
    truncate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    late_chunking: bool,
}

impl JinaEmbedder {
    /// Builds from the common keys and the `[jina]` section.
    pub fn from_config(config: &Config) -> Result<Self> {
        let section: JinaSection = config
            .provider_section(NAME)
            .map_err(|e| e.with_provider(NAME))?;
        let model = config
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        if model.trim().is_empty() {
            return Err(config_err("`model` must not be empty"));
        }
        let spec = model_spec(&model);
        let family = spec.map(|s| s.family);
        let dimensions = match (config.dimensions, spec) {
            (None, _) => None,
            (Some(0), _) => return Err(config_err("`dimensions` = 0: must be at least 1")),
            (Some(d), Some(s)) if !s.flexible && d == s.dimension => None,
            (Some(d), Some(s)) if !s.flexible => {
                return Err(config_err(format!(
                    "`dimensions` = {d}: {model} always returns {} dimensions and takes no `dimensions`",
                    s.dimension
                )));
            }
            (Some(d), Some(s)) if d > s.dimension => {
                return Err(config_err(format!(
                    "`dimensions` = {d}: {model} returns at most {} dimensions",
                    s.dimension
                )));
            }
            (Some(d), _) => Some(d),
        };
        let late_chunking = section.late_chunking.unwrap_or(false);
        if late_chunking && spec.is_some_and(|s| !s.late_chunking) {
            return Err(config_err(format!(
                "`jina.late_chunking` = true: {model} does not take `late_chunking` (jina-embeddings-v3 and v4 do)"
            )));
        }
        let truncate = section
            .truncate
            .unwrap_or(config.batch.over_length == OverLengthPolicy::Truncate);
        let context = spec.map_or(8192, |s| s.context);
        let dimension = config.dimensions.or(spec.map(|s| s.dimension)).unwrap_or(0);
        let mut info = ProviderInfo::hosted(NAME, model.clone(), dimension);
        for (key, v) in [
            ("max_batch_size", section.max_batch_size),
            ("max_batch_tokens", section.max_batch_tokens),
        ] {
            if v == Some(0) {
                return Err(config_err(format!("`jina.{key}` = 0: must be at least 1")));
            }
        }
        info.max_batch_size = section.max_batch_size.unwrap_or(MAX_INPUTS).min(MAX_INPUTS);
        info.max_input_tokens = context;
        // Late chunking embeds the request as one sequence: the context is
        // the budget of the whole request.
        let per_request = if late_chunking {
            context
        } else {
            context.saturating_mul(MAX_INPUTS)
        };
        info.max_batch_tokens = section
            .max_batch_tokens
            .unwrap_or(per_request)
            .min(per_request);
        info.normalized = true;
        info.input_types = input_types(family);
        info.output_types = OUTPUT_TYPES;
        if let Some(d) = dimensions {
            info.add_fingerprint("dimensions", d);
        }
        info.add_fingerprint("truncate", truncate);
        if late_chunking {
            info.add_fingerprint("late_chunking", true);
        }
        let (url, shown) = API.url(config.base_url.as_deref(), &mut info)?;
        let client = API.client(
            config.api_key.as_ref(),
            section.connect_timeout,
            section.request_timeout,
        )?;
        Ok(JinaEmbedder {
            info: InfoCell::new(info),
            family,
            client,
            url,
            shown,
            dimensions,
            truncate,
            late_chunking,
        })
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.shown
    }

    async fn post(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        let rows = request.len();
        if rows > self.info().max_batch_size {
            return Err(Error::invalid_input(format!(
                "{rows} inputs in one request; the limit is {} (the batch layer splits larger calls)",
                self.info().max_batch_size
            )));
        }
        let task = wire_task(self.family, request.input_type).map_err(|()| {
            let names: Vec<&str> = self.info().input_types.iter().map(|t| t.as_str()).collect();
            Error::invalid_input(format!(
                "provider jina has no task for input type {} with {} (it has: {})",
                request.input_type,
                self.info().model,
                names.join(", ")
            ))
        })?;
        let output = request.output_type;
        let embedding_type = wire_embedding_type(output).ok_or_else(|| {
            Error::invalid_input(format!("provider jina does not produce {output} vectors"))
        })?;
        let body = serde_json::to_vec(&Body {
            model: &self.info().model,
            input: request.inputs,
            embedding_type,
            truncate: self.truncate,
            task,
            dimensions: self.dimensions,
            late_chunking: self.late_chunking,
        })
        .map_err(|e| Error::invalid_input(format!("encoding the request: {e}")))?;
        let dim = self.info().dimension;
        tracing::debug!(target: "embeddings_jina", url = %self.shown, model = %self.info().model,
            inputs = rows, task = task.unwrap_or(""), embedding_type, "POST embeddings");
        let cap = BodyCap::Rows {
            rows,
            dim,
            key: "embedding",
        };
        let out = self
            .client
            .call_rows(
                self.client.post_json(&self.url, body),
                &self.shown,
                cap,
                parse_error_masked,
                |body| decode_response(body, rows, dim, output),
            )
            .await?;
        self.info.learn_dimension(out.dim());
        Ok(out)
    }
}

#[async_trait]
impl Embedder for JinaEmbedder {
    fn info(&self) -> &ProviderInfo {
        self.info.get()
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.client
            .embed(self.info(), request, |r| self.post(r))
            .await
            .inspect_err(|e| tracing::debug!(target: "embeddings_jina", error = %e, "embed failed"))
    }

    async fn health_check(&self) -> Result<()> {
        self.embed_documents(&["ping"]).await.map(drop)
    }
}

/// Maps an error answer (`{"detail", "code", "request_id"}`, or a 422's
/// `{"detail", "errors"}`) to a typed error: the toolkit's table, then
/// Jina's codes: `AUTHZ_INSUFFICIENT_BALANCE` and
/// `AUTHZ_RESOURCE_LIMIT_EXCEEDED` are `QuotaExceeded`,
/// `INPUT_MODEL_NOT_FOUND` is `NotFound`, a 400/422 about the context
/// length is `ContextLengthExceeded`.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    parse_error_masked(status, headers, body, &Masker::new())
}

fn parse_error_masked(status: u16, headers: &HeaderMap, body: &[u8], masker: &Masker) -> Error {
    let detail = ErrorDetail::from_body(body, masker);
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned));
    let kind = match (status, code.as_deref()) {
        (_, Some("AUTHZ_INSUFFICIENT_BALANCE" | "AUTHZ_RESOURCE_LIMIT_EXCEEDED")) => {
            ErrorKind::QuotaExceeded
        }
        (_, Some("INPUT_MODEL_NOT_FOUND")) => ErrorKind::NotFound,
        (400 | 413 | 422, _) if is_context_length_text(&detail.message) => {
            ErrorKind::ContextLengthExceeded
        }
        (s, _) => default_kind(s),
    };
    let mut message = if detail.message.is_empty() {
        format!("server answered HTTP {status} with an empty body")
    } else {
        detail.message
    };
    if let Some(c) =
        code.filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
    {
        message = format!("{message} ({c})");
    }
    status_error(kind, message, status, headers)
}

embeddings_core::register_provider! {
    name: NAME,
    description: "Jina AI /v1/embeddings (JINA_API_KEY)",
    build: |config| Ok(Arc::new(JinaEmbedder::from_config(config)?)),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_code_table() {
        let h = HeaderMap::new();
        let b = |detail: &str, code: &str| {
            serde_json::json!({"detail": detail, "code": code, "request_id": "03f58cd9da22fabf"})
                .to_string()
                .into_bytes()
        };
        for (status, body, kind) in [
            (400, b("Model 'x' not found. Available models: ...", "INPUT_MODEL_NOT_FOUND"), ErrorKind::NotFound),
            (401, b("Authentication required.", "AUTH_MISSING_API_KEY"), ErrorKind::Authentication),
            (401, b("Invalid API key.", "AUTH_INVALID_API_KEY"), ErrorKind::Authentication),
            (403, b("Insufficient account balance.", "AUTHZ_INSUFFICIENT_BALANCE"), ErrorKind::QuotaExceeded),
            (403, b("Resource limit exceeded for your plan.", "AUTHZ_RESOURCE_LIMIT_EXCEEDED"), ErrorKind::QuotaExceeded),
            (404, b("not found", "RESOURCE_NOT_FOUND"), ErrorKind::NotFound),
            (409, b("busy", "CONFLICT_RESOURCE_BUSY"), ErrorKind::Unavailable),
            (429, b("Token rate limit exceeded", "RATE_TOKEN_LIMIT_EXCEEDED"), ErrorKind::RateLimited),
            (500, b("An unexpected error occurred", "INTERNAL_ERROR"), ErrorKind::Unavailable),
            (503, b("Service temporarily unavailable", "SERVICE_UNAVAILABLE"), ErrorKind::Unavailable),
            (504, b("Request timed out after 60 seconds", "SERVICE_TIMEOUT"), ErrorKind::Timeout),
            (400, br#"{"detail":"Input at index 0 has 9000 tokens, which exceeds the maximum context length of 8192 tokens"}"#.to_vec(), ErrorKind::ContextLengthExceeded),
            (422, br#"{"detail":"Validation error","errors":[{"field":"task","message":"Input should be 'retrieval.query'","type":"literal_error"}]}"#.to_vec(), ErrorKind::InvalidInput),
        ] {
            let e = parse_error(status, &h, &body);
            assert_eq!(e.kind(), kind, "{status}: {e}");
            assert_eq!(e.status(), Some(status));
        }
        let e = parse_error(
            403,
            &h,
            &b(
                "Insufficient account balance.",
                "AUTHZ_INSUFFICIENT_BALANCE",
            ),
        );
        assert!(e.message().contains("AUTHZ_INSUFFICIENT_BALANCE"), "{e}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn tasks_by_family() {
        assert_eq!(
            wire_task(Some(Family::V3), InputType::Clustering),
            Ok(Some("separation"))
        );
        assert_eq!(wire_task(Some(Family::V4), InputType::Clustering), Err(()));
        assert_eq!(
            wire_task(Some(Family::ClipV2), InputType::Document),
            Ok(None)
        );
        assert_eq!(
            wire_task(Some(Family::Code), InputType::Query),
            Ok(Some("nl2code.query"))
        );
        assert_eq!(wire_task(None, InputType::Similarity), Ok(None));
        for f in [Family::V3, Family::V4, Family::ClipV2, Family::Code] {
            for t in input_types(Some(f)) {
                let task = wire_task(Some(f), *t).unwrap();
                if let Some(task) = task {
                    assert_eq!(input_type_of_task(task), Some(*t), "{f:?} {t}");
                }
            }
        }
    }
}
