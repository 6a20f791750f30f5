//! The Cohere v2 embed provider, registered as `cohere`: one
//! `POST {base_url}/v2/embed` per call, on the `embeddings-http` toolkit.
//!
//! * Input types natively: `search_document`, `search_query`,
//!   `classification`, `clustering` ([`InputType::Similarity`] has no Cohere
//!   counterpart: `InvalidInput`). Cohere v3+ models require one, so one is
//!   always sent.
//! * Output types natively: `embedding_types` = the request's output type
//!   (`float`, `int8`, `uint8`, `binary`, `ubinary`), decoded straight into
//!   the batch's buffer.
//! * At most 96 texts per call ([`MAX_TEXTS`]); `truncate` (`NONE`, `START`,
//!   `END`) from `[cohere] truncate`, else from the batch layer's
//!   over-length policy (`truncate` → `END`, otherwise `NONE`: the layer
//!   already handled over-long inputs); `output_dimension` from
//!   `dimensions` (embed-v4.0: 256, 512, 1024 or 1536).
//! * The key from `api_key`, else `COHERE_API_KEY`, else `CO_API_KEY`
//!   (bearer); the endpoint from `base_url`, else `COHERE_BASE_URL`, else
//!   `CO_API_URL`, else `https://api.cohere.com`.
//!
//! ```toml
//! provider = "cohere"
//! model = "embed-v4.0"
//! dimensions = 512              # output_dimension (embed-v4.0 only)
//! [cohere]
//! truncate = "END"              # NONE | START | END
//! connect_timeout = "10s"
//! request_timeout = "60s"
//! ```

mod wire;

#[cfg(feature = "testkit")]
pub mod testkit;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, Error, InputType, OutputType, OverLengthPolicy,
    ProviderInfo, Result, async_trait,
};
use embeddings_http::{BodyCap, HostedApi, HttpClient, InfoCell, Url};
use serde::Deserialize;

pub use crate::wire::{decode_response, parse_error};

/// The registered name.
pub const NAME: &str = "cohere";
/// The default model.
pub const DEFAULT_MODEL: &str = "embed-v4.0";
/// The default base URL (the provider adds `/v2/embed`).
pub const DEFAULT_BASE_URL: &str = "https://api.cohere.com";
/// The key's environment variables, in order.
pub const ENV_API_KEYS: [&str; 2] = ["COHERE_API_KEY", "CO_API_KEY"];
/// The base URL's environment variables, in order.
pub const ENV_BASE_URLS: [&str; 2] = ["COHERE_BASE_URL", "CO_API_URL"];
/// Most texts per call.
pub const MAX_TEXTS: usize = 96;
/// The `output_dimension` values embed-v4.0 accepts.
pub const OUTPUT_DIMENSIONS: [usize; 4] = [256, 512, 1024, 1536];

/// The input types Cohere takes.
pub const INPUT_TYPES: &[InputType] = &[
    InputType::Document,
    InputType::Query,
    InputType::Classification,
    InputType::Clustering,
];
/// The output types Cohere produces besides `float`.
pub const OUTPUT_TYPES: &[OutputType] = &[
    OutputType::Int8,
    OutputType::Uint8,
    OutputType::Binary,
    OutputType::Ubinary,
];

/// The native dimension and context length (tokens) of Cohere's embedding
/// models; `None` for others.
pub fn known_model(model: &str) -> Option<(usize, usize)> {
    match model {
        "embed-v4.0" => Some((1536, 128_000)),
        "embed-english-v3.0" | "embed-multilingual-v3.0" => Some((1024, 512)),
        "embed-english-light-v3.0" | "embed-multilingual-light-v3.0" => Some((384, 512)),
        _ => None,
    }
}

/// Whether the model takes `output_dimension` (embed-v4.0 and later).
pub fn accepts_output_dimension(model: &str) -> bool {
    model.starts_with("embed-v4")
}

/// Cohere's `input_type` for an [`InputType`], `None` when Cohere has none.
pub fn wire_input_type(t: InputType) -> Option<&'static str> {
    match t {
        InputType::Document => Some("search_document"),
        InputType::Query => Some("search_query"),
        InputType::Classification => Some("classification"),
        InputType::Clustering => Some("clustering"),
        _ => None,
    }
}

/// Cohere's `embedding_types` entry for an [`OutputType`] (`None` for a
/// type Cohere lacks).
pub fn wire_output_type(t: OutputType) -> Option<&'static str> {
    match t {
        OutputType::F32 => Some("float"),
        OutputType::Int8 => Some("int8"),
        OutputType::Uint8 => Some("uint8"),
        OutputType::Binary => Some("binary"),
        OutputType::Ubinary => Some("ubinary"),
        _ => None,
    }
}

/// Cohere's `truncate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Truncate {
    /// An over-long input is an error.
    None,
    /// Drop the start of an over-long input.
    Start,
    /// Drop the end of an over-long input.
    End,
}

impl Truncate {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Truncate::None => "NONE",
            Truncate::Start => "START",
            Truncate::End => "END",
        }
    }
}

/// The `[cohere]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CohereSection {
    /// `truncate`; default from the batch layer's `over_length`.
    pub truncate: Option<Truncate>,
    /// TCP/TLS connect timeout; default [`embeddings_http::DEFAULT_CONNECT_TIMEOUT`].
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// Deadline of the whole request; default none (the timeout layer).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// Most tokens per input (default: the model's context length, 512 for
    /// unknown models).
    pub max_input_tokens: Option<usize>,
}

/// The Cohere embedding provider. `Debug` never shows the key.
pub struct CohereEmbedder {
    info: InfoCell,
    client: HttpClient,
    url: Url,
    shown: String,
    output_dimension: Option<usize>,
    truncate: Truncate,
}

impl fmt::Debug for CohereEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CohereEmbedder")
            .field("url", &self.shown)
            .field("model", &self.info().model)
            .field("dimension", &self.info().dimension)
            .field("truncate", &self.truncate)
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
    base_url_env: &ENV_BASE_URLS,
    key_env: &ENV_API_KEYS,
    path: &["v2", "embed"],
};

impl CohereEmbedder {
    /// Builds from the common keys and the `[cohere]` section.
    pub fn from_config(config: &Config) -> Result<Self> {
        let section: CohereSection = config
            .provider_section(NAME)
            .map_err(|e| e.with_provider(NAME))?;
        let model = config
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        if model.trim().is_empty() {
            return Err(config_err("`model` must not be empty"));
        }
        let known = known_model(&model);
        let output_dimension = match config.dimensions {
            None => None,
            Some(d) if known.is_some_and(|(n, _)| n == d) => None,
            Some(d) if !accepts_output_dimension(&model) => {
                return Err(config_err(format!(
                    "`dimensions` = {d}: {model} does not take `output_dimension` (embed-v4.0 does)"
                )));
            }
            Some(d) if !OUTPUT_DIMENSIONS.contains(&d) => {
                return Err(config_err(format!(
                    "`dimensions` = {d}: Cohere's output_dimension is one of 256, 512, 1024, 1536"
                )));
            }
            Some(d) => Some(d),
        };
        let dimension = config.dimensions.or(known.map(|k| k.0)).unwrap_or(0);
        let truncate = section.truncate.unwrap_or(match config.batch.over_length {
            OverLengthPolicy::Truncate => Truncate::End,
            _ => Truncate::None,
        });

        let mut info = ProviderInfo::hosted(NAME, model.clone(), dimension);
        info.max_batch_size = MAX_TEXTS;
        info.max_input_tokens = section
            .max_input_tokens
            .or(known.map(|k| k.1))
            .unwrap_or(512);
        info.max_batch_tokens = info.max_input_tokens.saturating_mul(MAX_TEXTS);
        info.normalized = true;
        info.input_types = INPUT_TYPES;
        info.output_types = OUTPUT_TYPES;
        if let Some(d) = output_dimension {
            info.add_fingerprint("output_dimension", d);
        }
        info.add_fingerprint("truncate", truncate.as_str());

        let (url, shown) = API.url(config.base_url.as_deref(), &mut info)?;
        let client = API.client(
            config.api_key.as_ref(),
            section.connect_timeout,
            section.request_timeout,
        )?;
        Ok(CohereEmbedder {
            info: InfoCell::new(info),
            client,
            url,
            shown,
            output_dimension,
            truncate,
        })
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.shown
    }

    async fn post(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        let rows = request.len();
        if rows > MAX_TEXTS {
            return Err(Error::invalid_input(format!(
                "{rows} inputs in one request; Cohere takes at most {MAX_TEXTS} (the batch layer splits larger calls)"
            )));
        }
        let input_type = wire_input_type(request.input_type).ok_or_else(|| {
            Error::invalid_input(format!(
                "provider cohere has no input type {} (it has: search_document, search_query, classification, clustering)",
                request.input_type
            ))
        })?;
        let output = request.output_type;
        let embedding_type = wire_output_type(output).ok_or_else(|| {
            Error::invalid_input(format!("provider cohere does not produce {output} vectors"))
        })?;
        let body = wire::encode_request(&wire::EmbedBody {
            model: &self.info().model,
            texts: request.inputs,
            input_type,
            embedding_types: [embedding_type],
            truncate: self.truncate.as_str(),
            output_dimension: self.output_dimension,
        })?;
        let dim = self.info().dimension;
        tracing::debug!(target: "embeddings_cohere", url = %self.shown, model = %self.info().model,
            inputs = rows, input_type, output_type = %output, "POST v2/embed");
        let cap = BodyCap::Rows {
            rows,
            dim,
            key: "embeddings",
        };
        let out = self
            .client
            .call_rows(
                self.client.post_json(&self.url, body),
                &self.shown,
                cap,
                wire::parse_error_masked,
                |body| decode_response(body, rows, dim, output),
            )
            .await?;
        self.info.learn_dimension(out.dim());
        Ok(out)
    }
}

#[async_trait]
impl Embedder for CohereEmbedder {
    fn info(&self) -> &ProviderInfo {
        self.info.get()
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.client
            .embed(self.info(), request, |r| self.post(r))
            .await
            .inspect_err(
                |e| tracing::debug!(target: "embeddings_cohere", error = %e, "embed failed"),
            )
    }

    async fn health_check(&self) -> Result<()> {
        self.embed_documents(&["ping"]).await.map(drop)
    }
}

embeddings_core::register_provider! {
    name: NAME,
    description: "Cohere v2 /v2/embed (COHERE_API_KEY)",
    build: |config| Ok(Arc::new(CohereEmbedder::from_config(config)?)),
}
