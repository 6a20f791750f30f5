//! The Mistral AI embeddings provider, registered as `mistral`: one
//! `POST {base_url}/embeddings` per call, on the `embeddings-http` toolkit.
//!
//! * Models ([`model_spec`]): `mistral-embed` (1,024 dimensions, `float`
//!   only) and `codestral-embed` (`codestral-embed-2505`; 1,536 dimensions
//!   by default, `output_dimension` 1 to 3,072, every `output_dtype`).
//! * Output types natively (`output_dtype`, codestral-embed): `float`,
//!   `int8`, `uint8`, `binary` (packed bits as offset-binary `int8`),
//!   `ubinary`; rows are JSON arrays (the reference documents no other
//!   shape for them), placed by `index`. For mistral-embed every type but
//!   `f32` is refused with `InvalidInput` naming the provider and the type
//!   (the layers compute binary/ubinary from floats).
//! * Mistral has no input types: they are ignored (a `[prompts]` prompt
//!   applies, as for OpenAI), and no truncation parameter: an input over the
//!   context is the server's 400, or the batch layer's over-length policy.
//! * Limits: at most 512 inputs and 16,384 tokens per request, 8,192 tokens
//!   per input (what the service answers `3210` "split into more batches"
//!   beyond).
//! * The key from `api_key`, else `MISTRAL_API_KEY` (bearer); the endpoint
//!   from `base_url`, else `MISTRAL_BASE_URL`, else `https://api.mistral.ai/v1`.
//!
//! ```toml
//! provider = "mistral"
//! model = "codestral-embed"
//! dimensions = 512             # output_dimension
//! [mistral]
//! request_timeout = "60s"
//! ```

mod decode;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, Error, ErrorKind, OutputType, ProviderInfo, Result,
    async_trait,
};
use embeddings_http::reqwest::header::HeaderMap;
use embeddings_http::{
    BodyCap, ErrorDetail, HostedApi, HttpClient, InfoCell, Masker, Url, default_kind,
    is_context_length_text, status_error,
};
use serde::{Deserialize, Serialize};

pub use crate::decode::decode_response;

/// The registered name.
pub const NAME: &str = "mistral";
/// The default model.
pub const DEFAULT_MODEL: &str = "mistral-embed";
/// The default base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.mistral.ai/v1";
/// The key's environment variable.
pub const ENV_API_KEY: &str = "MISTRAL_API_KEY";
/// The base URL's environment variable.
pub const ENV_BASE_URL: &str = "MISTRAL_BASE_URL";
/// Most inputs per request.
pub const MAX_INPUTS: usize = 512;
/// Most tokens per input.
pub const MAX_INPUT_TOKENS: usize = 8192;
/// Most tokens per request.
pub const MAX_BATCH_TOKENS: usize = 16_384;

/// The output types of codestral-embed besides `float`.
pub const OUTPUT_TYPES: &[OutputType] = &[
    OutputType::Int8,
    OutputType::Uint8,
    OutputType::Binary,
    OutputType::Ubinary,
];

/// What the provider knows of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelSpec {
    /// The default dimension.
    pub dimension: usize,
    /// The largest `output_dimension`; `None`: the model takes none.
    pub max_dimension: Option<usize>,
    /// Whether it takes a non-float `output_dtype`.
    pub quantized: bool,
}

/// The models of Mistral's reference, `None` for any other.
pub fn model_spec(model: &str) -> Option<ModelSpec> {
    match model {
        "mistral-embed" | "mistral-embed-2312" => Some(ModelSpec {
            dimension: 1024,
            max_dimension: None,
            quantized: false,
        }),
        "codestral-embed" | "codestral-embed-2505" => Some(ModelSpec {
            dimension: 1536,
            max_dimension: Some(3072),
            quantized: true,
        }),
        _ => None,
    }
}

/// Mistral's `output_dtype`.
pub fn wire_output_dtype(t: OutputType) -> Option<&'static str> {
    match t {
        OutputType::F32 => Some("float"),
        OutputType::Int8 => Some("int8"),
        OutputType::Uint8 => Some("uint8"),
        OutputType::Binary => Some("binary"),
        OutputType::Ubinary => Some("ubinary"),
        _ => None,
    }
}

/// The `[mistral]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MistralSection {
    /// TCP/TLS connect timeout.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// Deadline of the whole request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// Most inputs per request (at most 512).
    pub max_batch_size: Option<usize>,
    /// Most tokens per request (at most 16,384).
    pub max_batch_tokens: Option<usize>,
}

/// The Mistral embedding provider. `Debug` never shows the key.
pub struct MistralEmbedder {
    info: InfoCell,
    client: HttpClient,
    url: Url,
    shown: String,
    output_dimension: Option<usize>,
}

impl fmt::Debug for MistralEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MistralEmbedder")
            .field("url", &self.shown)
            .field("model", &self.info().model)
            .field("dimension", &self.info().dimension)
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
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimension: Option<usize>,
    /// Sent for the quantized types only (`float` is the default, and the
    /// only type mistral-embed has).
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dtype: Option<&'a str>,
}

impl MistralEmbedder {
    /// Builds from the common keys and the `[mistral]` section.
    pub fn from_config(config: &Config) -> Result<Self> {
        let section: MistralSection = config
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
        let output_dimension = match (config.dimensions, spec) {
            (None, _) => None,
            (Some(0), _) => return Err(config_err("`dimensions` = 0: must be at least 1")),
            (Some(d), Some(s)) => match s.max_dimension {
                None if d == s.dimension => None,
                None => {
                    return Err(config_err(format!(
                        "`dimensions` = {d}: {model} always returns {} dimensions and takes no `output_dimension`",
                        s.dimension
                    )));
                }
                Some(max) if d > max => {
                    return Err(config_err(format!(
                        "`dimensions` = {d}: {model} returns at most {max} dimensions"
                    )));
                }
                Some(_) => Some(d),
            },
            (Some(d), None) => Some(d),
        };
        for (key, v) in [
            ("max_batch_size", section.max_batch_size),
            ("max_batch_tokens", section.max_batch_tokens),
        ] {
            if v == Some(0) {
                return Err(config_err(format!(
                    "`mistral.{key}` = 0: must be at least 1"
                )));
            }
        }
        let dimension = config.dimensions.or(spec.map(|s| s.dimension)).unwrap_or(0);
        let mut info = ProviderInfo::hosted(NAME, model.clone(), dimension);
        info.max_batch_size = section.max_batch_size.unwrap_or(MAX_INPUTS).min(MAX_INPUTS);
        info.max_input_tokens = MAX_INPUT_TOKENS;
        info.max_batch_tokens = section
            .max_batch_tokens
            .unwrap_or(MAX_BATCH_TOKENS)
            .min(MAX_BATCH_TOKENS);
        info.normalized = true;
        if spec.is_some_and(|s| s.quantized) {
            info.output_types = OUTPUT_TYPES;
        }
        if let Some(d) = output_dimension {
            info.add_fingerprint("output_dimension", d);
        }
        let (url, shown) = API.url(config.base_url.as_deref(), &mut info)?;
        let client = API.client(
            config.api_key.as_ref(),
            section.connect_timeout,
            section.request_timeout,
        )?;
        Ok(MistralEmbedder {
            info: InfoCell::new(info),
            client,
            url,
            shown,
            output_dimension,
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
        let output = request.output_type;
        let dtype = wire_output_dtype(output).ok_or_else(|| {
            Error::invalid_input(format!(
                "provider mistral does not produce {output} vectors"
            ))
        })?;
        let body = serde_json::to_vec(&Body {
            model: &self.info().model,
            input: request.inputs,
            output_dimension: self.output_dimension,
            output_dtype: (output != OutputType::F32).then_some(dtype),
        })
        .map_err(|e| Error::invalid_input(format!("encoding the request: {e}")))?;
        let dim = self.info().dimension;
        tracing::debug!(target: "embeddings_mistral", url = %self.shown, model = %self.info().model,
            inputs = rows, output_dtype = dtype, "POST embeddings");
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
impl Embedder for MistralEmbedder {
    fn info(&self) -> &ProviderInfo {
        self.info.get()
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.client
            .embed(self.info(), request, |r| self.post(r))
            .await
            .inspect_err(
                |e| tracing::debug!(target: "embeddings_mistral", error = %e, "embed failed"),
            )
    }

    async fn health_check(&self) -> Result<()> {
        self.embed_documents(&["ping"]).await.map(drop)
    }
}

/// Maps an error answer to a typed error: the toolkit's table, then
/// Mistral's shapes (`{"object": "error", "message", "type", "param",
/// "code"}`, `{"message", "request_id"}`, a 422's `{"detail": [...]}`):
/// "split into more batches" (code 3210: too many inputs or tokens in the
/// request) stays `InvalidInput`, an input over the context is
/// `ContextLengthExceeded`, `invalid_model` is `NotFound`.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    parse_error_masked(status, headers, body, &Masker::new())
}

fn parse_error_masked(status: u16, headers: &HeaderMap, body: &[u8], masker: &Masker) -> Error {
    let detail = ErrorDetail::from_body(body, masker);
    let (r#type, code) = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => (
            v.get("type").and_then(|t| t.as_str()).map(str::to_owned),
            match v.get("code") {
                Some(serde_json::Value::String(c)) => Some(c.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            },
        ),
        Err(_) => (None, None),
    };
    let text = detail.message.to_ascii_lowercase();
    let kind = match status {
        400 | 422 if text.contains("split into more batches") => ErrorKind::InvalidInput,
        400 | 422 if is_context_length_text(&detail.message) => ErrorKind::ContextLengthExceeded,
        400 | 404 if r#type.as_deref() == Some("invalid_model") => ErrorKind::NotFound,
        s => default_kind(s),
    };
    let mut message = if detail.message.is_empty() {
        format!("server answered HTTP {status} with an empty body")
    } else {
        detail.message
    };
    if let Some(c) = code.filter(|c| c.len() <= 16 && c.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        message = format!("{message} (code {c})");
    }
    status_error(kind, message, status, headers)
}

embeddings_core::register_provider! {
    name: NAME,
    description: "Mistral AI /v1/embeddings (MISTRAL_API_KEY)",
    build: |config| Ok(Arc::new(MistralEmbedder::from_config(config)?)),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_code_table() {
        let h = HeaderMap::new();
        let e = |m: &str, t: &str, c: &str| {
            serde_json::json!({"object": "error", "message": m, "type": t, "param": null, "code": c})
                .to_string()
                .into_bytes()
        };
        for (status, body, kind) in [
            (400, e("Too many inputs in request, split into more batches.", "invalid_request_prompt", "3210"), ErrorKind::InvalidInput),
            (400, e("Too many tokens overall, split into more batches.", "invalid_request_prompt", "3210"), ErrorKind::InvalidInput),
            (400, e("Prompt contains 9000 tokens, too large for model with 8192 maximum context length", "invalid_request_prompt", "3051"), ErrorKind::ContextLengthExceeded),
            (400, e("Invalid model: mistral-embedx", "invalid_model", "1500"), ErrorKind::NotFound),
            (401, br#"{"message":"Unauthorized","request_id":"0c3f"}"#.to_vec(), ErrorKind::Authentication),
            (403, br#"{"message":"Forbidden"}"#.to_vec(), ErrorKind::PermissionDenied),
            (422, br#"{"detail":[{"type":"extra_forbidden","loc":["body","dimensions"],"msg":"Extra inputs are not permitted","input":8}]}"#.to_vec(), ErrorKind::InvalidInput),
            (429, e("Rate limit exceeded", "rate_limited", "1300"), ErrorKind::RateLimited),
            (500, e("Internal error", "internal_server_error", "1000"), ErrorKind::Unavailable),
            (503, br#"{"message":"Service unavailable"}"#.to_vec(), ErrorKind::Unavailable),
            (504, b"upstream timed out".to_vec(), ErrorKind::Timeout),
        ] {
            let err = parse_error(status, &h, &body);
            assert_eq!(err.kind(), kind, "{status}: {err}");
            assert_eq!(err.status(), Some(status));
        }
        let err = parse_error(
            400,
            &h,
            &e(
                "Too many tokens overall, split into more batches.",
                "invalid_request_prompt",
                "3210",
            ),
        );
        assert!(err.message().contains("code 3210"), "{err}");
    }
}
