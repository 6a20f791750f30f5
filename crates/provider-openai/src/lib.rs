//! The OpenAI `/v1/embeddings` provider, registered as `openai`: OpenAI
//! itself, Azure OpenAI, and every OpenAI-compatible server (vLLM, TEI,
//! LM Studio, Ollama's `/v1`, the testkit's fake server, ...).
//!
//! * One `POST {base_url}/embeddings` per call: never a retry, a sleep or a
//!   split batch (the layers of the `embeddings` crate do that).
//! * `encoding_format: "base64"` by default, decoded straight into the
//!   batch's contiguous buffer ([`decode`]); `"float"` for servers without base64.
//! * The key is a [`SecretString`]: never in a log line, an error or `Debug`.
//! * Typed errors ([`parse_error`]), rate-limit headers on every result
//!   ([`Embeddings::rate_limits`]), `cl100k_base` token counts for the layers.
//!
//! ```no_run
//! # async fn demo() -> embeddings_core::Result<()> {
//! use embeddings_core::{Config, Embedder};
//! use embeddings_openai::OpenAiEmbedder;
//!
//! // Reads OPENAI_API_KEY (and OPENAI_BASE_URL) when the config has none.
//! let config = Config::from_toml_str(r#"
//!     provider = "openai"
//!     model = "text-embedding-3-small"
//!     dimensions = 512
//!     [openai]
//!     encoding_format = "base64"
//! "#)?;
//! let openai = OpenAiEmbedder::from_config(&config)?;
//! let rows = openai.embed_documents(&["hello", "world"]).await?;
//! assert_eq!(rows.dim(), 512);
//! # Ok(()) }
//! ```
//!
//! The `[openai]` section ([`OpenAiSection`]):
//!
//! ```toml
//! [openai]
//! encoding_format = "base64"     # or "float"
//! organization = "org-..."       # OpenAI-Organization header
//! project = "proj_..."           # OpenAI-Project header
//! user = "end-user-42"           # sent as `user`
//! connect_timeout = "10s"
//! request_timeout = "60s"        # whole request; default none (the timeout layer)
//! max_batch_size = 2048          # limits for compatible servers
//! max_input_tokens = 8192
//! max_batch_tokens = 300000
//! normalized = true              # whether the server returns unit vectors
//! preset = "together"            # together | fireworks | deepinfra | vllm | tei | lmstudio
//! [openai.headers]               # extra headers, sent as given (never logged)
//! "X-Gateway" = "team-a"
//! [openai.azure]                 # Azure OpenAI: api-key header, deployment URL
//! endpoint = "https://my-resource.openai.azure.com"  # default: base_url
//! deployment = "my-embedding"    # default: the model
//! api_version = "2024-10-21"
//! ```
//!
//! [`Embeddings::rate_limits`]: embeddings_core::Embeddings::rate_limits

pub mod decode;
mod errors;
pub mod preset;
mod tokens;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, Error, ProviderInfo, Result, RowSink, SecretString,
    async_trait,
};
use embeddings_http::{
    Auth, BodyCap, HttpClient, InfoCell, Url, parse_base_url, push_path, rate_limit_snapshot,
    redact_url_keeping, resolve_key, resolve_setting,
};
use serde::Deserialize;

pub use crate::decode::EncodingFormat;
pub use crate::errors::{parse_error, parse_error_masked};
pub use crate::preset::{Preset, PresetSpec};
pub use crate::tokens::{count_tokens, split_tokens};
pub use embeddings_http::{
    DEFAULT_CONNECT_TIMEOUT, MAX_EXCERPT, excerpt, parse_reset, retry_after,
};

/// The registered name.
pub const NAME: &str = "openai";
/// The default model.
pub const DEFAULT_MODEL: &str = "text-embedding-3-small";
/// The default base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The default Azure OpenAI `api-version`.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";
/// The API key's environment variable.
pub const ENV_API_KEY: &str = "OPENAI_API_KEY";
/// The base URL's environment variable.
pub const ENV_BASE_URL: &str = "OPENAI_BASE_URL";
/// Azure's API key variable (read in Azure mode, before `OPENAI_API_KEY`).
pub const ENV_AZURE_API_KEY: &str = "AZURE_OPENAI_API_KEY";
/// Azure's endpoint variable (read in Azure mode when no endpoint is configured).
pub const ENV_AZURE_ENDPOINT: &str = "AZURE_OPENAI_ENDPOINT";

/// The native dimension of OpenAI's embedding models, `None` for others.
pub fn known_dimension(model: &str) -> Option<usize> {
    match model {
        "text-embedding-3-small" => Some(1536),
        "text-embedding-3-large" => Some(3072),
        "text-embedding-ada-002" => Some(1536),
        _ => None,
    }
}

/// Whether the model accepts the `dimensions` parameter (all but ada-002).
pub fn accepts_dimensions(model: &str) -> bool {
    model != "text-embedding-ada-002"
}

/// Azure OpenAI settings: the `[openai.azure]` table. Its presence switches
/// to Azure: the `api-key` header and
/// `{endpoint}/openai/deployments/{deployment}/embeddings?api-version=...`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AzureSection {
    /// `https://<resource>.openai.azure.com`; default: `base_url`, then
    /// `AZURE_OPENAI_ENDPOINT`.
    pub endpoint: Option<String>,
    /// The deployment name; default: the model.
    pub deployment: Option<String>,
    /// The `api-version` query parameter; default [`DEFAULT_AZURE_API_VERSION`].
    #[serde(alias = "api-version")]
    pub api_version: Option<String>,
}

/// The provider's own configuration: the `[openai]` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiSection {
    /// A well-known compatible service ([`Preset`]): its base URL, key
    /// variable, default model, limits and encoding, each used only where
    /// the configuration says nothing.
    pub preset: Option<Preset>,
    /// `OpenAI-Organization` header.
    pub organization: Option<String>,
    /// `OpenAI-Project` header.
    pub project: Option<String>,
    /// Extra headers sent with every request (values are never logged).
    pub headers: BTreeMap<String, String>,
    /// `base64` (default) or `float`. When not set, an embedder whose
    /// server breaks base64 (its first base64 answer holds float arrays, a
    /// wrong dimension or undecodable rows) switches to `float` once and
    /// stays there; when set, it is always used.
    pub encoding_format: Option<EncodingFormat>,
    /// The `user` field of requests.
    pub user: Option<String>,
    /// Azure OpenAI; see [`AzureSection`].
    pub azure: Option<AzureSection>,
    /// TCP/TLS connect timeout; default [`DEFAULT_CONNECT_TIMEOUT`].
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// Deadline of the whole request; default none (the timeout layer sets one).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// Most inputs per request (default 2048).
    pub max_batch_size: Option<usize>,
    /// Most tokens per input (default 8192).
    pub max_input_tokens: Option<usize>,
    /// Most tokens per request (default 300,000).
    pub max_batch_tokens: Option<usize>,
    /// Whether vectors come back unit-normalised (default true).
    pub normalized: Option<bool>,
}

/// The OpenAI (and compatible) embedding provider.
///
/// `Debug` shows the endpoint, model and settings; never the key or the
/// values of extra headers.
pub struct OpenAiEmbedder {
    /// The configured info, and the dimension of a model without a known
    /// one once learned from the first answer.
    info: InfoCell,
    client: HttpClient,
    url: Url,
    /// `url` for logs and messages (no credentials, no query values).
    url_display: String,
    /// `dimensions` as sent in requests.
    send_dimensions: Option<usize>,
    encoding_format: EncodingFormat,
    /// `encoding_format` was configured: no fallback.
    explicit_encoding: bool,
    /// Switched to `float` after a broken base64 answer (remembered).
    fell_back: AtomicBool,
    /// A base64 answer was checked and found right: no more checking.
    base64_verified: AtomicBool,
    user: Option<String>,
    azure: bool,
    has_key: bool,
}

impl fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.info();
        f.debug_struct("OpenAiEmbedder")
            .field("url", &self.url_display)
            .field("model", &info.model)
            .field("dimension", &info.dimension)
            .field("encoding_format", &self.encoding_format())
            .field("azure", &self.azure)
            .field("api_key", &if self.has_key { "[redacted]" } else { "none" })
            .field("headers", &self.client.header_names())
            .finish_non_exhaustive()
    }
}

fn config_err(message: impl Into<String>) -> Error {
    Error::config(message).with_provider(NAME)
}

impl OpenAiEmbedder {
    /// Builds from the common keys (`model`, `dimensions`, `base_url`,
    /// `api_key`) and the `[openai]` section, with `OPENAI_API_KEY` and
    /// `OPENAI_BASE_URL` as fallbacks (the config wins).
    pub fn from_config(config: &Config) -> Result<Self> {
        let section: OpenAiSection = config
            .provider_section(NAME)
            .map_err(|e| e.with_provider(NAME))?;
        Self::with_section(config, section)
    }

    /// Like [`OpenAiEmbedder::from_config`] with an explicit `[openai]` section.
    pub fn with_section(config: &Config, section: OpenAiSection) -> Result<Self> {
        let preset = section.preset.map(|p| (p, p.spec()));
        if let (Some((p, _)), Some(_)) = (preset, &section.azure) {
            return Err(config_err(format!(
                "`openai.preset` = \"{p}\" and `[openai.azure]` exclude each other"
            )));
        }
        let model = match (&config.model, preset) {
            (Some(m), _) => m.clone(),
            (None, Some((_, spec))) if spec.default_model.is_some() => {
                spec.default_model.unwrap_or_default().to_owned()
            }
            (None, Some((p, _))) => {
                return Err(config_err(format!(
                    "`openai.preset` = \"{p}\" serves whatever model it was started with: set `model`"
                )));
            }
            (None, None) => DEFAULT_MODEL.to_owned(),
        };
        if model.trim().is_empty() {
            return Err(config_err("`model` must not be empty"));
        }
        let known = known_dimension(&model);
        let send_dimensions = match (config.dimensions, known) {
            (Some(0), _) => return Err(config_err("`dimensions` = 0: must be at least 1")),
            (Some(d), Some(native)) if !accepts_dimensions(&model) => {
                if d != native {
                    return Err(config_err(format!(
                        "`dimensions` = {d}: {model} always returns {native} dimensions and does not accept `dimensions`"
                    )));
                }
                None
            }
            (Some(d), Some(native)) if d > native => {
                return Err(config_err(format!(
                    "`dimensions` = {d}: {model} returns at most {native} dimensions"
                )));
            }
            (d, _) => d,
        };
        let dimension = config.dimensions.or(known).unwrap_or(0);

        let mut info = ProviderInfo::hosted(NAME, model.clone(), dimension);
        info.max_batch_size = 2048;
        info.max_input_tokens = 8192;
        info.max_batch_tokens = 300_000;
        if let Some((_, spec)) = preset {
            info.max_batch_size = spec.max_batch_size;
            info.max_input_tokens = spec.max_input_tokens;
            info.max_batch_tokens = spec.max_batch_tokens;
        }
        info.normalized = true;
        for (key, v) in [
            ("max_batch_size", section.max_batch_size),
            ("max_input_tokens", section.max_input_tokens),
            ("max_batch_tokens", section.max_batch_tokens),
        ] {
            if v == Some(0) {
                return Err(config_err(format!(
                    "`openai.{key}` = 0: must be at least 1"
                )));
            }
        }
        if let Some(n) = section.max_batch_size {
            info.max_batch_size = n;
        }
        if let Some(n) = section.max_input_tokens {
            info.max_input_tokens = n;
        }
        if let Some(n) = section.max_batch_tokens {
            info.max_batch_tokens = n;
        }
        if let Some(n) = section.normalized {
            info.normalized = n;
        }

        let azure = section.azure.is_some();
        let key_env: &[&str] = if azure {
            &[ENV_AZURE_API_KEY, ENV_API_KEY]
        } else {
            &[ENV_API_KEY]
        };
        let key_env = preset.map_or(key_env, |(_, spec)| spec.key_env);
        let api_key: Option<SecretString> = resolve_key(config.api_key.as_ref(), key_env);

        let (url, deployment) = match &section.azure {
            None => {
                let (base, from) = match preset {
                    // A preset's own URL, unless `base_url` is configured;
                    // OPENAI_BASE_URL is not read.
                    Some((_, spec)) => match config.base_url.as_deref() {
                        Some(b) => (b.to_owned(), "base_url"),
                        None => (spec.base_url.to_owned(), "openai.preset"),
                    },
                    None => {
                        resolve_setting(config.base_url.as_deref(), "base_url", &[ENV_BASE_URL])
                            .unwrap_or_else(|| (DEFAULT_BASE_URL.to_owned(), "base_url"))
                    }
                };
                let mut url = parse_base_url(from, &base).map_err(|e| e.with_provider(NAME))?;
                push_path(&mut url, &["embeddings"]);
                (url, None)
            }
            Some(az) => {
                let configured = az
                    .endpoint
                    .as_deref()
                    .map(|e| (e, "openai.azure.endpoint"))
                    .or(config.base_url.as_deref().map(|b| (b, "base_url")));
                let (endpoint, from) = match configured {
                    Some((e, from)) => (e.to_owned(), from),
                    None => resolve_setting(None, "", &[ENV_AZURE_ENDPOINT]).ok_or_else(|| {
                        config_err(format!(
                            "Azure OpenAI needs an endpoint: set `openai.azure.endpoint`, `base_url` or {ENV_AZURE_ENDPOINT}"
                        ))
                    })?,
                };
                let deployment = az.deployment.clone().unwrap_or_else(|| model.clone());
                if deployment.trim().is_empty() {
                    return Err(config_err("`openai.azure.deployment` must not be empty"));
                }
                let version = az
                    .api_version
                    .clone()
                    .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_owned());
                let mut url = parse_base_url(from, &endpoint).map_err(|e| e.with_provider(NAME))?;
                push_path(
                    &mut url,
                    &["openai", "deployments", &deployment, "embeddings"],
                );
                url.query_pairs_mut().append_pair("api-version", &version);
                (url, Some(deployment))
            }
        };
        let url_display = redact_url_keeping(&url, &["api-version"]);

        // Every setting that changes the vectors (never a secret): the
        // `dimensions` sent, and which server answers unless it is OpenAI's.
        if let Some(d) = send_dimensions {
            info.add_fingerprint("dimensions", d);
        }
        if !is_openai_api(&url) {
            let mut shown = url.clone();
            shown.set_query(None);
            info.add_fingerprint("endpoint", redact_url_keeping(&shown, &[]));
        }
        if let Some(d) = &deployment {
            info.add_fingerprint("deployment", d);
        }

        let mut builder = HttpClient::builder(NAME)
            .user_agent(concat!("embeddings-rs/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(section.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
            .request_timeout(section.request_timeout);
        for (name, value) in &section.headers {
            builder = builder
                .secret_header("openai.headers", name, value)
                .map_err(|e| e.with_provider(NAME))?;
        }
        let auth_header_given =
            builder.has_header("authorization") || builder.has_header("api-key");
        if let Some(org) = &section.organization {
            builder = builder
                .header("openai-organization", org)
                .map_err(|_| config_err("`openai.organization` is not a valid header value"))?;
        }
        if let Some(p) = &section.project {
            builder = builder
                .header("openai-project", p)
                .map_err(|_| config_err("`openai.project` is not a valid header value"))?;
        }
        if let (None, Some((p, spec))) = (&api_key, preset) {
            if spec.key_required && !auth_header_given {
                return Err(config_err(format!(
                    "no API key for the {p} preset: set `api_key` in the config or {}",
                    spec.key_env.join(" or ")
                )));
            }
        }
        match &api_key {
            Some(key) if azure => {
                builder = builder.auth(Auth::Header(
                    embeddings_http::reqwest::header::HeaderName::from_static("api-key"),
                    key.clone(),
                ));
            }
            Some(key) => builder = builder.auth(Auth::Bearer(key.clone())),
            None if azure && !auth_header_given => {
                return Err(config_err(format!(
                    "Azure OpenAI needs an API key: set `api_key` or {ENV_AZURE_API_KEY} \
                     (or an `api-key`/`Authorization` header in `[openai.headers]`)"
                )));
            }
            None if is_openai_host(&url) && !auth_header_given => {
                return Err(config_err(format!(
                    "no API key for {url_display}: set `api_key` in the config or the {ENV_API_KEY} environment variable"
                )));
            }
            None => {}
        }
        let client = builder.build().map_err(|e| e.with_provider(NAME))?;
        // Configured, else what the preset knows of the server's base64.
        let encoding = section
            .encoding_format
            .or(preset.and_then(|(_, spec)| spec.encoding_format));

        Ok(OpenAiEmbedder {
            info: InfoCell::new(info),
            client,
            url,
            url_display,
            send_dimensions,
            encoding_format: encoding.unwrap_or_default(),
            explicit_encoding: encoding.is_some(),
            fell_back: AtomicBool::new(false),
            base64_verified: AtomicBool::new(false),
            user: section.user,
            azure,
            has_key: api_key.is_some(),
        })
    }

    /// The URL requests are sent to (without query values).
    pub fn endpoint(&self) -> &str {
        &self.url_display
    }

    /// The encoding asked of the server (`float` once a broken base64
    /// server was detected).
    pub fn encoding_format(&self) -> EncodingFormat {
        if self.fell_back.load(Ordering::Relaxed) {
            EncodingFormat::Float
        } else {
            self.encoding_format
        }
    }

    /// Whether this embedder switched from base64 to floats after a server
    /// broke base64.
    pub fn fell_back_to_float(&self) -> bool {
        self.fell_back.load(Ordering::Relaxed)
    }

    /// One call, with the base64 check: while no base64 answer has been
    /// verified (and the encoding was not configured), a base64 answer that
    /// holds float arrays, has a wrong dimension or cannot be decoded
    /// switches this embedder to `float` for good, logged once at info.
    /// Floats are decoded as they are; an undecodable answer is still this
    /// call's `InvalidResponse` (one request per call: the retry layer, or
    /// the caller, asks again, then as floats).
    async fn post(&self, texts: &[&str], sink: Option<&dyn RowSink>) -> Result<Embeddings> {
        let encoding = self.encoding_format();
        let check = encoding == EncodingFormat::Base64
            && !self.explicit_encoding
            && !self.base64_verified.load(Ordering::Relaxed);
        if !check {
            return self
                .post_as(texts, encoding, false, sink)
                .await
                .map(|(e, _)| e);
        }
        match self.post_as(texts, encoding, true, sink).await {
            Ok((out, floats)) => {
                if floats {
                    self.fall_back("its base64 answer held float arrays");
                } else {
                    self.base64_verified.store(true, Ordering::Relaxed);
                }
                Ok(out)
            }
            // A row the base64 decoder refused (wrong length for the
            // dimension, malformed): not a status, a transport or a JSON error.
            Err(e)
                if e.kind() == embeddings_core::ErrorKind::InvalidResponse
                    && e.status().is_none()
                    && e.message().contains("base64") =>
            {
                self.fall_back(&format!(
                    "its base64 answer could not be used ({})",
                    e.message()
                ));
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn fall_back(&self, why: &str) {
        if !self.fell_back.swap(true, Ordering::Relaxed) {
            tracing::info!(
                target: "embeddings_openai",
                url = %self.url_display,
                "the server breaks `encoding_format: base64`: {why}; this embedder uses `float` from now on \
                 (set `[openai] encoding_format` to choose explicitly)"
            );
        }
    }

    /// Whether this talks to Azure OpenAI.
    pub fn is_azure(&self) -> bool {
        self.azure
    }

    /// One request with `encoding`; the flag says whether the answer held
    /// float arrays (checked only when `check`).
    async fn post_as(
        &self,
        texts: &[&str],
        encoding: EncodingFormat,
        check: bool,
        sink: Option<&dyn RowSink>,
    ) -> Result<(Embeddings, bool)> {
        let rows = texts.len();
        let dim = self.dimension();
        if rows > self.info().max_batch_size {
            return Err(Error::invalid_input(format!(
                "{rows} inputs in one request; the limit is {} (the batch layer splits larger calls)",
                self.info().max_batch_size
            )));
        }
        let body = decode::encode_request(&decode::EmbeddingRequest {
            model: &self.info().model,
            input: texts,
            encoding_format: encoding,
            dimensions: self.send_dimensions,
            user: self.user.as_deref(),
        })?;
        tracing::debug!(
            target: "embeddings_openai",
            url = %self.url_display,
            model = %self.info().model,
            inputs = rows,
            request_bytes = body.len(),
            encoding_format = %encoding,
            "POST embeddings"
        );
        let cap = BodyCap::Rows {
            rows,
            dim,
            key: "embedding",
        };
        // Decoded as the answer streams in: only its undecoded tail is held.
        let mut stream = decode::response_stream(rows, dim, sink)?;
        let answer = self
            .client
            .call_into(
                self.client.post_json(&self.url, body),
                &self.url_display,
                cap,
                &mut stream,
                |status, headers, body, masker| {
                    let err = parse_error_masked(status, headers, body, masker);
                    tracing::debug!(target: "embeddings_openai", status, kind = %err.kind(), "error answer");
                    err
                },
            )
            .await?;
        tracing::trace!(
            target: "embeddings_openai",
            status = answer.status,
            response_bytes = answer.received,
            "answer received"
        );
        let floats = check && stream.envelope().held_floats();
        let mut out = stream.finish()?;
        self.info.learn_dimension(out.dim());
        out.set_rate_limits(rate_limit_snapshot(&answer.headers));
        Ok((out, floats))
    }
}

fn is_openai_host(url: &Url) -> bool {
    url.host_str()
        .is_some_and(|h| h == "openai.com" || h.ends_with(".openai.com"))
}

fn is_openai_api(url: &Url) -> bool {
    url.scheme() == "https" && url.host_str() == Some("api.openai.com")
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn info(&self) -> &ProviderInfo {
        self.info.get()
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.client
            .embed(self.info(), request, |r| {
                self.post(r.inputs, r.sink_for(r.len(), self.dimension()))
            })
            .await
            .inspect_err(|e| tracing::debug!(target: "embeddings_openai", error = %e, "embeddings request failed"))
    }

    /// Embeds a one-token text: proves the server, the key and the model.
    async fn health_check(&self) -> Result<()> {
        self.embed_documents(&["ping"]).await.map(|_| ())
    }

    fn count_tokens(&self, text: &str) -> usize {
        tokens::count_tokens(text)
    }

    fn split_tokens<'a>(&self, text: &'a str, max_tokens: usize) -> Vec<&'a str> {
        tokens::split_tokens(text, max_tokens)
    }
}

embeddings_core::register_provider! {
    name: NAME,
    description: "OpenAI /v1/embeddings, Azure OpenAI and OpenAI-compatible servers (OPENAI_API_KEY, OPENAI_BASE_URL)",
    build: |config| Ok(Arc::new(OpenAiEmbedder::from_config(config)?)),
}
