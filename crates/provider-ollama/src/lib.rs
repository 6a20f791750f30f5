//! The [Ollama](https://ollama.com) provider, registered as `ollama`.
//!
//! * One batched `POST /api/embed` per call, with `model`, `input: [..]` and,
//!   when configured, `truncate`, `keep_alive`, `dimensions` and `options`.
//! * A server without `/api/embed` (Ollama before 0.3.4 answers
//!   `404 page not found`) is detected once and then served through the
//!   legacy `POST /api/embeddings`, one request per input; the choice is
//!   remembered for the life of the embedder.
//! * The dimension comes from the configuration when given; otherwise from
//!   the first answer, or from [`OllamaEmbedder::discover_dimension`]
//!   (`POST /api/show`, else one probe embedding). Once known, it is cached
//!   and [`Embedder::dimension`] is free.
//! * The answer's float arrays are parsed straight into the contiguous
//!   [`Embeddings`] buffer ([`parse_embed_response`]); a wrong count, a
//!   wrong dimension or a non-finite value is an `InvalidResponse`, never
//!   a partial result.
//!
//! The server is the configured `base_url`, else `OLLAMA_HOST` (in any form
//! `ollama` accepts: `host`, `host:port`, `http://host:port`, `https://..`),
//! else `http://localhost:11434`. A bearer key (`api_key`, else
//! `OLLAMA_API_KEY`) and extra headers serve a hosted or proxied Ollama.
//!
//! ```no_run
//! # async fn run() -> embeddings_core::Result<()> {
//! use embeddings_core::{Config, Embedder};
//! use embeddings_ollama::OllamaEmbedder;
//!
//! let config = Config::from_toml_str(
//!     "provider = \"ollama\"\nmodel = \"nomic-embed-text\"\n[ollama]\nkeep_alive = \"10m\"\n",
//! )?;
//! let ollama = OllamaEmbedder::from_config(&config)?;
//! ollama.health_check().await?; // server up, model pulled
//! let rows = ollama.embed_documents(&["first text", "second text"]).await?;
//! assert_eq!(rows.len(), 2);
//! assert_eq!(ollama.dimension(), rows.dim()); // learned from the answer
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod parse;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use embeddings_core::{
    Config, Embedder, Embeddings, Error, ErrorKind, ProviderInfo, Result, SecretString, async_trait,
};
use embeddings_http::{
    Answer, Auth, BodyCap, DEFAULT_CONNECT_TIMEOUT, HttpClient, MAX_EXCERPT, Url, push_path,
    resolve_key,
};
use serde::Serialize;

pub use crate::config::{
    DEFAULT_HOST, ENV_API_KEY, ENV_HOST, KeepAlive, OllamaSection, resolve_host,
};
pub use crate::error::parse_error;
pub use crate::parse::{parse_embed_response, parse_embed_response_into};

use crate::config::display_host;
use crate::error::{is_missing_route, parse_error_masked};

/// The registered name.
pub const NAME: &str = "ollama";
/// The model used when the configuration names none: `nomic-embed-text`,
/// the most pulled embedding model of the Ollama library (768 dimensions,
/// long context, small download).
pub const DEFAULT_MODEL: &str = "nomic-embed-text";
/// Inputs per request the batch layer plans with unless `[ollama]` says
/// otherwise: a local server works through a batch one input at a time, so
/// larger batches only make each request (and its timeout) longer.
pub const DEFAULT_MAX_BATCH_SIZE: usize = 256;
/// Tokens per input the batch layer plans with until the model's context
/// length is known (Ollama's default `num_ctx`).
pub const DEFAULT_MAX_INPUT_TOKENS: usize = 2048;
/// The text embedded by the probe of [`OllamaEmbedder::discover_dimension`].
pub const PROBE_TEXT: &str = "dimension probe";
/// The largest `/api/show`, `/api/tags` or `/api/version` answer read.
pub const MAX_INFO_BODY: usize = 8 << 20;

/// What is appended to a connection failure.
const CONNECT_HINT: &str = "Ollama may not be running: start it with `ollama serve`, \
                            or point OLLAMA_HOST / base_url at it";

/// The routes of one server, built once.
#[derive(Debug)]
struct Routes {
    embed: Url,
    embeddings: Url,
    show: Url,
    tags: Url,
    version: Url,
}

impl Routes {
    fn new(base: &Url) -> Self {
        let at = |path: &str| {
            let mut u = base.clone();
            push_path(&mut u, &["api", path]);
            u
        };
        Routes {
            embed: at("embed"),
            embeddings: at("embeddings"),
            show: at("show"),
            tags: at("tags"),
            version: at("version"),
        }
    }
}

/// The embedder talking to one Ollama server about one model.
///
/// Cheap to share (`Arc`); the endpoint choice and the dimension are learned
/// once and shared by every caller.
pub struct OllamaEmbedder {
    client: HttpClient,
    routes: Routes,
    /// The server's address, for messages and logs.
    shown_host: String,
    model: String,
    /// The `dimensions` sent to the server (from the configuration).
    requested_dim: Option<usize>,
    section: OllamaSection,
    has_key: bool,
    /// Set once the server turned out to have no `/api/embed`.
    legacy: AtomicBool,
    dim: OnceLock<usize>,
    context_length: OnceLock<usize>,
    /// Info once the dimension is known: `[api/embed, legacy]`.
    known: [OnceLock<ProviderInfo>; 2],
    /// Info while the dimension is unknown (`dimension == 0`).
    pending: [ProviderInfo; 2],
}

impl fmt::Debug for OllamaEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OllamaEmbedder")
            .field("host", &self.shown_host)
            .field("model", &self.model)
            .field("dimension", &self.dim.get())
            .field("legacy_endpoint", &self.legacy.load(Ordering::Relaxed))
            .field("api_key", &self.has_key.then_some("[redacted]"))
            .field("section", &self.section)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct EmbedRequest<'a> {
    model: &'a str,
    input: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    truncate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_alive: Option<&'a KeepAlive>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize)]
struct LegacyRequest<'a> {
    model: &'a str,
    prompt: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_alive: Option<&'a KeepAlive>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize)]
struct ModelRequest<'a> {
    model: &'a str,
}

impl OllamaEmbedder {
    /// Builds from the configuration: `model` (default
    /// [`DEFAULT_MODEL`]), `dimensions`, `base_url` (else `OLLAMA_HOST`),
    /// `api_key` (else `OLLAMA_API_KEY`) and the `[ollama]` section.
    /// Sends nothing.
    pub fn from_config(config: &Config) -> Result<Self> {
        let env_host = std::env::var(ENV_HOST).ok();
        let host = resolve_host(config.base_url.as_deref(), env_host.as_deref())?;
        let key = resolve_key(config.api_key.as_ref(), &[ENV_API_KEY]);
        let section = OllamaSection::from_config(config)?;
        let model = config
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        Self::build(&host, model, config.dimensions, key, section)
    }

    /// An embedder of `model` on the server at `host` (any form
    /// [`resolve_host`] accepts), with default settings.
    pub fn new(host: &str, model: impl Into<String>) -> Result<Self> {
        let host = resolve_host(Some(host), None)?;
        Self::build(&host, model.into(), None, None, OllamaSection::default())
    }

    fn build(
        host: &str,
        model: String,
        dimensions: Option<usize>,
        api_key: Option<SecretString>,
        section: OllamaSection,
    ) -> Result<Self> {
        if model.trim().is_empty() {
            return Err(Error::config("`model` = \"\": must not be empty"));
        }
        if dimensions == Some(0) {
            return Err(Error::config("`dimensions` = 0: must be at least 1"));
        }
        section.validate()?;
        let base = embeddings_http::parse_base_url("base_url", host)?;
        let mut builder = HttpClient::builder(NAME)
            .user_agent(concat!("embeddings-ollama/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(section.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
            .request_timeout(section.request_timeout)
            .connect_hint(CONNECT_HINT);
        for (name, value) in &section.headers {
            builder = builder.secret_header("ollama.headers", name, value)?;
        }
        if let Some(key) = &api_key {
            builder = builder.auth(Auth::Bearer(key.clone()));
        }
        let client = builder.build()?;

        let mut info = ProviderInfo::new(NAME, model.clone(), 0);
        info.max_batch_size = section.max_batch_size.unwrap_or(DEFAULT_MAX_BATCH_SIZE);
        info.max_input_tokens = section
            .max_input_tokens
            .or(section.num_ctx())
            .unwrap_or(DEFAULT_MAX_INPUT_TOKENS);
        // Ollama has no budget per request beyond each input's context.
        info.max_batch_tokens = info.max_input_tokens.saturating_mul(info.max_batch_size);
        info.normalized = true;
        // Every setting that changes the vectors (never a secret).
        if let Some(d) = dimensions {
            info.add_fingerprint("dimensions", d);
        }
        if let Some(t) = section.truncate {
            info.add_fingerprint("truncate", t);
        }
        if let Some(o) = &section.options {
            // serde_json's map is ordered by key: the same options, the same text.
            info.add_fingerprint("options", serde_json::Value::Object(o.clone()));
        }
        let mut legacy = info.clone();
        legacy.normalized = false;
        legacy.add_fingerprint("endpoint", "legacy");
        let dim = OnceLock::new();
        if let Some(d) = dimensions {
            let _ = dim.set(d);
        }
        Ok(OllamaEmbedder {
            client,
            routes: Routes::new(&base),
            shown_host: display_host(&base),
            model,
            requested_dim: dimensions,
            section,
            has_key: api_key.is_some(),
            legacy: AtomicBool::new(false),
            dim,
            context_length: OnceLock::new(),
            known: [OnceLock::new(), OnceLock::new()],
            pending: [info, legacy],
        })
    }

    /// The server's base URL, without credentials.
    pub fn host(&self) -> &str {
        &self.shown_host
    }

    /// The model requests are sent for.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The `[ollama]` settings in use.
    pub fn section(&self) -> &OllamaSection {
        &self.section
    }

    /// Whether the server turned out to lack `/api/embed`, so that the legacy
    /// `/api/embeddings` (one request per input) is used.
    pub fn uses_legacy_endpoint(&self) -> bool {
        self.legacy.load(Ordering::Relaxed)
    }

    /// The dimension: the configured one, the one already learned, else
    /// `model_info.<arch>.embedding_length` from `POST /api/show`, else the
    /// length of one probe embedding of [`PROBE_TEXT`]. Cached, so only the
    /// first call may send requests.
    pub async fn discover_dimension(&self) -> Result<usize> {
        if let Some(&d) = self.dim.get() {
            return Ok(d);
        }
        let body = serde_json::to_vec(&ModelRequest { model: &self.model })
            .map_err(|e| self.internal(e))?;
        let answer = self
            .send(
                self.client.post_json(&self.routes.show, body),
                BodyCap::Bytes(MAX_INFO_BODY),
            )
            .await?;
        match answer.status {
            200..=299 => match parse::parse_show_response(&answer.body) {
                Ok(info) => {
                    if let Some(c) = info.context_length {
                        let _ = self.context_length.set(c);
                    }
                    if let Some(d) = info.embedding_length {
                        tracing::debug!(host = %self.shown_host, model = %self.model,
                            dimension = d, "ollama: dimension from /api/show");
                        return self.learn_dimension(d);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "ollama: /api/show unusable, probing"),
            },
            // The model is missing: a probe would fail the same way.
            404 if !is_missing_route(404, &answer.body) => return Err(self.status_error(&answer)),
            // A server without a usable /api/show: probe.
            400 | 404 | 405 | 501 => {}
            _ => return Err(self.status_error(&answer)),
        }
        let probe = self.embed_documents(&[PROBE_TEXT]).await?;
        tracing::debug!(host = %self.shown_host, model = %self.model, dimension = probe.dim(),
            "ollama: dimension from a probe embedding");
        Ok(probe.dim())
    }

    fn learn_dimension(&self, d: usize) -> Result<usize> {
        let got = *self.dim.get_or_init(|| d);
        if got != d {
            return Err(self.invalid(format!(
                "vectors of dimension {d}, but this model's dimension is {got}"
            )));
        }
        Ok(d)
    }

    fn internal(&self, e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::new(ErrorKind::Internal, "cannot encode the request")
            .with_provider(NAME)
            .with_source(e)
    }

    fn invalid(&self, message: impl Into<String>) -> Error {
        Error::invalid_response(message).with_provider(NAME)
    }

    /// Sends one request and reads the answer within `cap`; transport
    /// failures are mapped, statuses are left to the caller.
    async fn send(
        &self,
        request: embeddings_http::reqwest::RequestBuilder,
        cap: BodyCap,
    ) -> Result<Answer> {
        self.client.call(request, &self.shown_host, cap).await
    }

    fn status_error(&self, a: &Answer) -> Error {
        let e = parse_error_masked(
            a.status,
            &a.headers,
            &a.body,
            &self.model,
            self.client.masker(),
        );
        self.client.finish(e)
    }

    /// One `POST /api/embed` for every text; `None` when the route is missing.
    async fn embed_batch(
        &self,
        texts: &[&str],
        sink: Option<&dyn embeddings_core::RowSink>,
    ) -> Result<Option<Embeddings>> {
        let req = EmbedRequest {
            model: &self.model,
            input: texts,
            truncate: self.section.truncate,
            keep_alive: self.section.keep_alive.as_ref(),
            dimensions: self.requested_dim,
            options: self.section.options.as_ref(),
        };
        let body = serde_json::to_vec(&req).map_err(|e| self.internal(e))?;
        let cap = BodyCap::Rows {
            rows: texts.len(),
            dim: self.dimension(),
            key: "embeddings",
        };
        let answer = self
            .send(self.client.post_json(&self.routes.embed, body), cap)
            .await?;
        if answer.status == 404 && is_missing_route(404, &answer.body) {
            return Ok(None);
        }
        if !answer.is_success() {
            return Err(self.status_error(&answer));
        }
        let e = parse::parse_embed_response_into(
            &answer.body,
            texts.len(),
            self.dim.get().copied(),
            sink,
        )
        .map_err(|e| self.client.finish(e))?;
        self.learn_dimension(e.dim())?;
        Ok(Some(e))
    }

    /// The legacy route: one `POST /api/embeddings` per text, in order.
    async fn embed_legacy(&self, texts: &[&str]) -> Result<Embeddings> {
        // The legacy route answers an empty prompt with an empty vector:
        // refuse before sending anything rather than fail half-way.
        if let Some(i) = texts.iter().position(|t| t.is_empty()) {
            return Err(Error::invalid_input(format!(
                "input {i} is empty: this Ollama server only has the legacy /api/embeddings, \
                 which does not embed empty text (upgrade Ollama to 0.3.4 or later)"
            ))
            .with_provider(NAME)
            .with_inputs(i..i + 1));
        }
        let mut data: Vec<f32> = Vec::new();
        let mut dim = self.dim.get().copied();
        for (i, text) in texts.iter().enumerate() {
            let req = LegacyRequest {
                model: &self.model,
                prompt: text,
                keep_alive: self.section.keep_alive.as_ref(),
                options: self.section.options.as_ref(),
            };
            let body = serde_json::to_vec(&req).map_err(|e| self.internal(e))?;
            let cap = BodyCap::Rows {
                rows: 1,
                dim: dim.unwrap_or(0),
                key: "embedding",
            };
            let answer = self
                .send(self.client.post_json(&self.routes.embeddings, body), cap)
                .await?;
            if answer.status == 404 && is_missing_route(404, &answer.body) {
                let said = self
                    .client
                    .masker()
                    .excerpt(&String::from_utf8_lossy(&answer.body), MAX_EXCERPT);
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "{} has neither /api/embed nor /api/embeddings: is it an Ollama server? \
                         (base_url must be the server root, such as http://localhost:11434; \
                         server said: {said})",
                        self.shown_host,
                    ),
                )
                .with_provider(NAME)
                .with_status(404));
            }
            if !answer.is_success() {
                return Err(self.status_error(&answer).with_inputs(i..i + 1));
            }
            let row = parse::parse_legacy_response(&answer.body).map_err(|e| {
                let m = format!("input {i}: {}", e.message());
                self.client.finish(e.with_message(m).with_inputs(i..i + 1))
            })?;
            if let Some(d) = dim {
                if row.len() != d {
                    let hint = if self.requested_dim.is_some() {
                        " (the legacy /api/embeddings ignores `dimensions`: upgrade Ollama, \
                         or leave `dimensions` out)"
                    } else {
                        ""
                    };
                    return Err(self.invalid(format!(
                        "input {i}: vector of {} values, expected {d}{hint}",
                        row.len()
                    )));
                }
            }
            if dim.is_none() {
                dim = Some(row.len());
                data.reserve(row.len() * texts.len());
            }
            data.extend_from_slice(&row);
        }
        let d = dim.unwrap_or(0);
        let e = Embeddings::from_flat(data, d).map_err(|e| e.with_provider(NAME))?;
        self.learn_dimension(d)?;
        Ok(e)
    }
}

/// Whether `listed` (a name from `/api/tags`) is `model`, with or without
/// the `:latest` tag.
fn same_model(listed: &str, model: &str) -> bool {
    fn canonical(name: &str) -> std::borrow::Cow<'_, str> {
        let last = name.rsplit('/').next().unwrap_or(name);
        if last.contains(':') {
            name.into()
        } else {
            format!("{name}:latest").into()
        }
    }
    listed == model || canonical(listed) == canonical(model)
}

#[async_trait]
impl Embedder for OllamaEmbedder {
    fn info(&self) -> &ProviderInfo {
        let i = usize::from(self.legacy.load(Ordering::Relaxed));
        match self.dim.get() {
            Some(&d) => self.known[i].get_or_init(|| {
                let mut info = self.pending[i].clone();
                info.dimension = d;
                if let Some(&c) = self.context_length.get() {
                    if self.section.max_input_tokens.is_none() {
                        info.max_input_tokens = self.section.num_ctx().map_or(c, |n| n.min(c));
                        info.max_batch_tokens =
                            info.max_input_tokens.saturating_mul(info.max_batch_size);
                    }
                }
                info
            }),
            None => &self.pending[i],
        }
    }

    #[inline]
    fn dimension(&self) -> usize {
        self.dim.get().copied().unwrap_or(0)
    }

    async fn embed(&self, request: embeddings_core::EmbedRequest<'_>) -> Result<Embeddings> {
        self.info().check_output_type(&request)?;
        let texts = request.inputs;
        if texts.is_empty() {
            return Ok(Embeddings::empty(self.dimension()));
        }
        tracing::trace!(host = %self.shown_host, model = %self.model, inputs = texts.len(),
            "ollama: embed");
        if !self.legacy.load(Ordering::Relaxed) {
            let sink = request.sink_for(texts.len(), self.dimension());
            if let Some(e) = self.embed_batch(texts, sink).await? {
                return Ok(e);
            }
            if !self.legacy.swap(true, Ordering::Relaxed) {
                tracing::info!(host = %self.shown_host,
                    "ollama: the server has no /api/embed; using the legacy /api/embeddings \
                     (one request per input; upgrade Ollama to batch)");
            }
        }
        self.embed_legacy(texts).await
    }

    /// Learns the dimension (and the context length) from `/api/show`, or
    /// a probe, when the configuration did not give it.
    async fn prepare(&self) -> Result<()> {
        if self.dim.get().is_none() {
            self.discover_dimension().await?;
        }
        Ok(())
    }

    async fn health_check(&self) -> Result<()> {
        let get = |url: &Url| {
            self.client
                .request(embeddings_http::reqwest::Method::GET, url)
        };
        let version = self
            .send(get(&self.routes.version), BodyCap::Bytes(MAX_INFO_BODY))
            .await?;
        if !version.is_success() {
            let e = self.status_error(&version);
            let m = format!(
                "{} answered GET /api/version with HTTP {}: is it an Ollama server? ({})",
                self.shown_host,
                version.status,
                e.message()
            );
            return Err(e.with_message(m));
        }
        let tags = self
            .send(get(&self.routes.tags), BodyCap::Bytes(MAX_INFO_BODY))
            .await?;
        if !tags.is_success() {
            return Err(self.status_error(&tags));
        }
        let names = parse::parse_tags_response(&tags.body).map_err(|e| e.with_provider(NAME))?;
        if names.iter().any(|n| same_model(n, &self.model)) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "model {:?} is not on the Ollama server at {}; download it with \
                     `ollama pull {}`",
                    self.model, self.shown_host, self.model
                ),
            )
            .with_provider(NAME))
        }
    }
}

embeddings_core::register_provider! {
    name: NAME,
    description: "Ollama /api/embed (local or hosted; OLLAMA_HOST), with legacy /api/embeddings fallback",
    build: |config| Ok(Arc::new(OllamaEmbedder::from_config(config)?)),
}

#[cfg(test)]
mod tests;
