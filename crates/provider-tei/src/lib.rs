//! Hugging Face [text-embeddings-inference] (TEI), its native API,
//! registered as `tei`.
//!
//! * One `POST {base_url}/embed` per call (`inputs`, `normalize`,
//!   `truncate`, `truncation_direction`, `prompt_name`): never a retry, a
//!   sleep or a split batch (the layers of the `embeddings` crate do that).
//! * [`Embedder::prepare`] reads `GET {base_url}/info` (model id,
//!   `max_input_length`, `max_client_batch_size`, `max_batch_tokens`) into
//!   [`ProviderInfo`], so that the batch layer plans within the server's
//!   limits from the very first call; the dimension, which `/info` does not
//!   give, comes from the configuration or one probe embedding.
//! * `health_check` is `GET {base_url}/health`.
//! * TEI's error shape `{"error": "...", "error_type": "validation" |
//!   "tokenizer" | "backend" | "overloaded" | "unhealthy" | "empty"}` and its
//!   statuses (413, 422, 424, 429, 503) are mapped in [`parse_error`].
//! * The input type travels as `prompt_name`, for the input types the
//!   configuration maps to a prompt the model defines (`[tei.prompts]`);
//!   TEI has no other notion of one.
//! * `POST /embed_sparse` (SPLADE vectors) is out of scope: the contract
//!   has no sparse output type.
//!
//! ```toml
//! provider = "tei"
//! base_url = "http://127.0.0.1:8080"   # or TEI_BASE_URL
//! dimensions = 384                     # optional: else learned by prepare()
//! [tei]
//! normalize = true                     # default true
//! truncate = false                     # default: the server's --auto-truncate
//! truncation_direction = "right"       # "left" | "right"
//! max_batch_size = 16                  # caps below what /info says
//! request_timeout = "60s"
//! [tei.prompts]                        # input type -> prompt_name of the model
//! query = "query"
//! document = "passage"
//! ```
//!
//! The key (a TEI started with `--api-key`, or a Hugging Face Inference
//! Endpoint token) is `api_key`, else `TEI_API_KEY`, else `HF_TOKEN`, sent as
//! a bearer token; no key is needed for a local server.
//!
//! [text-embeddings-inference]: https://huggingface.co/docs/text-embeddings-inference

mod decode;
mod errors;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, Error, ErrorKind, InputType, ProviderInfo, Result,
    async_trait,
};
use embeddings_http::reqwest::Method;
use embeddings_http::{
    Auth, BodyCap, DEFAULT_CONNECT_TIMEOUT, HttpClient, InfoCell, Url, parse_base_url, push_path,
    redact_url, resolve_key, resolve_setting,
};
use serde::{Deserialize, Serialize};

pub use crate::decode::{ServerInfo, decode_embed_response, parse_info};
pub use crate::errors::parse_error;

/// The registered name.
pub const NAME: &str = "tei";
/// The default base URL (TEI's default port on this host).
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080";
/// The base URL's environment variable.
pub const ENV_BASE_URL: &str = "TEI_BASE_URL";
/// The key's environment variables, in order.
pub const ENV_API_KEY: &[&str] = &["TEI_API_KEY", "HF_TOKEN"];
/// TEI's default `--max-client-batch-size` (the limit before `prepare`).
pub const DEFAULT_MAX_BATCH_SIZE: usize = 32;
/// TEI's default `--max-batch-tokens`.
pub const DEFAULT_MAX_BATCH_TOKENS: usize = 16_384;
/// A common `max_input_length` (BERT-sized models), the limit before `prepare`.
pub const DEFAULT_MAX_INPUT_TOKENS: usize = 512;
/// The largest `/info` or `/health` answer read.
const MAX_INFO_BODY: usize = 64 * 1024;

/// Which end of an over-long input TEI cuts (`truncation_direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TruncationDirection {
    /// Keep the end of the text.
    Left,
    /// Keep the start of the text (TEI's default).
    #[default]
    Right,
}

impl TruncationDirection {
    /// The wire value (`"Left"` / `"Right"`, as TEI's enum deserializes).
    pub fn wire(self) -> &'static str {
        match self {
            TruncationDirection::Left => "Left",
            TruncationDirection::Right => "Right",
        }
    }
}

/// The `[tei]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeiSection {
    /// `normalize` sent with every request (default true).
    pub normalize: Option<bool>,
    /// `truncate`; default: not sent (the server's `--auto-truncate`).
    pub truncate: Option<bool>,
    /// `truncation_direction` (sent only when `truncate` is true).
    pub truncation_direction: Option<TruncationDirection>,
    /// Input type (`query`, `document`, ...) → a `prompt_name` the model
    /// defines in its sentence-transformers configuration.
    pub prompts: BTreeMap<String, String>,
    /// Caps `max_client_batch_size` from `/info`.
    pub max_batch_size: Option<usize>,
    /// Caps `max_input_length` from `/info`.
    pub max_input_tokens: Option<usize>,
    /// Caps `max_batch_tokens` from `/info`.
    pub max_batch_tokens: Option<usize>,
    /// TCP/TLS connect timeout; default [`DEFAULT_CONNECT_TIMEOUT`].
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// Deadline of the whole request; default none (the timeout layer sets one).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
}

/// The routes of one server.
#[derive(Debug, Clone)]
struct Routes {
    embed: Url,
    info: Url,
    health: Url,
}

/// The TEI embedding provider.
///
/// `Debug` shows the endpoint, model and settings; never the key.
pub struct TeiEmbedder {
    /// What the configuration says, and once `prepare` read `/info` (and
    /// learned the dimension) what the server says.
    info: InfoCell,
    section: TeiSection,
    /// `InputType` → `prompt_name`.
    prompts: Vec<(InputType, String)>,
    model_given: bool,
    client: HttpClient,
    routes: Routes,
    shown: String,
    has_key: bool,
}

impl fmt::Debug for TeiEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.info();
        f.debug_struct("TeiEmbedder")
            .field("url", &self.shown)
            .field("model", &info.model)
            .field("dimension", &info.dimension)
            .field("max_batch_size", &info.max_batch_size)
            .field("discovered", &self.info.is_learned())
            .field("api_key", &if self.has_key { "[redacted]" } else { "none" })
            .finish_non_exhaustive()
    }
}

fn config_err(message: impl Into<String>) -> Error {
    Error::config(message).with_provider(NAME)
}

/// A `'static` slice of these input types (one leaked slice per distinct set).
fn static_input_types(types: &[InputType]) -> &'static [InputType] {
    static SEEN: Mutex<Vec<&'static [InputType]>> = Mutex::new(Vec::new());
    if types.is_empty() {
        return &[];
    }
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = seen.iter().find(|s| **s == types) {
        return s;
    }
    let s: &'static [InputType] = Box::leak(types.to_vec().into_boxed_slice());
    seen.push(s);
    s
}

impl TeiEmbedder {
    /// Builds from the common keys (`model`, `dimensions`, `base_url`,
    /// `api_key`) and the `[tei]` section, with `TEI_BASE_URL` and
    /// `TEI_API_KEY` / `HF_TOKEN` as fallbacks (the config wins).
    pub fn from_config(config: &Config) -> Result<Self> {
        let section: TeiSection = config
            .provider_section(NAME)
            .map_err(|e| e.with_provider(NAME))?;
        Self::with_section(config, section)
    }

    /// Like [`TeiEmbedder::from_config`] with an explicit `[tei]` section.
    pub fn with_section(config: &Config, section: TeiSection) -> Result<Self> {
        let (base, from) = resolve_setting(config.base_url.as_deref(), "base_url", &[ENV_BASE_URL])
            .unwrap_or_else(|| (DEFAULT_BASE_URL.to_owned(), "base_url"));
        let root = parse_base_url(from, &base).map_err(|e| e.with_provider(NAME))?;
        let route = |name: &str| {
            let mut u = root.clone();
            push_path(&mut u, &[name]);
            u
        };
        let routes = Routes {
            embed: route("embed"),
            info: route("info"),
            health: route("health"),
        };
        let shown = redact_url(&root);

        if config.dimensions == Some(0) {
            return Err(config_err("`dimensions` = 0: must be at least 1"));
        }
        for (key, v) in [
            ("max_batch_size", section.max_batch_size),
            ("max_input_tokens", section.max_input_tokens),
            ("max_batch_tokens", section.max_batch_tokens),
        ] {
            if v == Some(0) {
                return Err(config_err(format!("`tei.{key}` = 0: must be at least 1")));
            }
        }
        if section.truncation_direction.is_some() && section.truncate != Some(true) {
            return Err(config_err(
                "`tei.truncation_direction` needs `tei.truncate = true` (TEI ignores it otherwise)",
            ));
        }
        let mut prompts = Vec::new();
        for (name, prompt) in &section.prompts {
            let t = InputType::from_name(name).ok_or_else(|| {
                config_err(format!(
                    "`tei.prompts.{name}`: not an input type (document, query, classification, clustering, similarity)"
                ))
            })?;
            if prompt.trim().is_empty() {
                return Err(config_err(format!(
                    "`tei.prompts.{name}` must not be empty"
                )));
            }
            prompts.push((t, prompt.clone()));
        }
        let model = config.model.clone().unwrap_or_default();
        let mut info = ProviderInfo::new(NAME, model.clone(), config.dimensions.unwrap_or(0));
        info.max_batch_size = section.max_batch_size.unwrap_or(DEFAULT_MAX_BATCH_SIZE);
        info.max_input_tokens = section.max_input_tokens.unwrap_or(DEFAULT_MAX_INPUT_TOKENS);
        info.max_batch_tokens = section.max_batch_tokens.unwrap_or(DEFAULT_MAX_BATCH_TOKENS);
        let normalize = section.normalize.unwrap_or(true);
        info.normalized = normalize;
        let types: Vec<InputType> = prompts.iter().map(|(t, _)| *t).collect();
        info.input_types = static_input_types(&types);

        // Every setting that changes the vectors: the server (TEI serves
        // one model, which the model name alone may not pin), normalize,
        // truncation, prompts.
        info.add_fingerprint("endpoint", &shown);
        if !normalize {
            info.add_fingerprint("normalize", false);
        }
        if let Some(t) = section.truncate {
            info.add_fingerprint("truncate", t);
        }
        if let Some(d) = section.truncation_direction {
            info.add_fingerprint("truncation_direction", d.wire());
        }
        for (t, p) in &prompts {
            info.add_fingerprint(&format!("prompt.{}", t.as_str()), p);
        }

        let key = resolve_key(config.api_key.as_ref(), ENV_API_KEY);
        let mut builder = HttpClient::builder(NAME)
            .user_agent(concat!("embeddings-rs/", env!("CARGO_PKG_VERSION"), " (tei)"))
            .connect_timeout(section.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
            .request_timeout(section.request_timeout)
            .connect_hint(format!(
                "is text-embeddings-inference running at {shown}? (set `base_url` or {ENV_BASE_URL})"
            ));
        if let Some(k) = &key {
            builder = builder.auth(Auth::Bearer(k.clone()));
        }
        let client = builder.build().map_err(|e| e.with_provider(NAME))?;
        Ok(TeiEmbedder {
            info: InfoCell::new(info),
            model_given: !model.is_empty(),
            section,
            prompts,
            client,
            routes,
            shown,
            has_key: key.is_some(),
        })
    }

    /// The server's root URL (no credentials).
    pub fn endpoint(&self) -> &str {
        &self.shown
    }

    /// The `prompt_name` sent for `t`, if the configuration maps one.
    pub fn prompt_for(&self, t: InputType) -> Option<&str> {
        self.prompts
            .iter()
            .find(|(p, _)| *p == t)
            .map(|(_, n)| n.as_str())
    }

    fn status_error(&self, a: &embeddings_http::Answer) -> Error {
        parse_error(a.status, &a.headers, &a.body, self.client.masker())
    }

    /// `GET /info`.
    pub async fn server_info(&self) -> Result<ServerInfo> {
        let a = self
            .client
            .call(
                self.client.request(Method::GET, &self.routes.info),
                &self.shown,
                BodyCap::Bytes(MAX_INFO_BODY),
            )
            .await?;
        if !a.is_success() {
            let e = self.status_error(&a);
            let m = format!(
                "GET /info at {} answered HTTP {}: is it a text-embeddings-inference server? ({})",
                self.shown,
                a.status,
                e.message()
            );
            return Err(self.client.finish(e.with_message(m)));
        }
        parse_info(&a.body).map_err(|e| self.client.finish(e))
    }

    async fn post(&self, request: EmbedRequest<'_>, dim: usize) -> Result<Embeddings> {
        let texts = request.inputs;
        let rows = texts.len();
        let limit = self.info().max_batch_size;
        if rows > limit {
            return Err(Error::invalid_input(format!(
                "{rows} inputs in one request; the server's limit is {limit} \
                 (max_client_batch_size; the batch layer splits larger calls)"
            )));
        }
        let body = decode::encode_request(&decode::EmbedBody {
            inputs: texts,
            normalize: self.section.normalize.unwrap_or(true),
            truncate: self.section.truncate,
            truncation_direction: self.section.truncation_direction.map(|d| d.wire()),
            prompt_name: self.prompt_for(request.input_type),
        })?;
        tracing::debug!(target: "embeddings_tei", url = %self.shown, inputs = rows,
            request_bytes = body.len(), "POST /embed");
        // A bare array has no key to sniff the first row's length after:
        // with the dimension unknown (no `prepare` yet), the bound of the
        // largest dimension.
        let cap = if dim == 0 {
            BodyCap::Bytes(embeddings_http::max_response_len(rows, 0))
        } else {
            BodyCap::Rows {
                rows,
                dim,
                key: "embedding",
            }
        };
        self.client
            .call_rows(
                self.client.post_json(&self.routes.embed, body),
                &self.shown,
                cap,
                |status, headers, body, masker| {
                    let e = parse_error(status, headers, body, masker);
                    tracing::debug!(target: "embeddings_tei", status, kind = %e.kind(), "error answer");
                    e
                },
                |body| decode_embed_response(body, rows, dim),
            )
            .await
    }

    /// `/info` into `ProviderInfo`, and the dimension from the config or a probe.
    async fn discover(&self) -> Result<ProviderInfo> {
        let server = self.server_info().await?;
        if let Some(kind) = server.non_embedding_kind() {
            return Err(config_err(format!(
                "the TEI server at {} serves {} model {:?}, not an embedding model",
                self.shown, kind, server.model_id
            )));
        }
        let mut info = self.info.configured().clone();
        if self.model_given && !server.model_id.is_empty() && info.model != server.model_id {
            return Err(config_err(format!(
                "`model` = {:?}, but the TEI server at {} serves {:?} (TEI serves one model; \
                 leave `model` unset or point `base_url` at the right server)",
                info.model, self.shown, server.model_id
            )));
        }
        if !server.model_id.is_empty() {
            info.model = server.model_id.clone();
        }
        let cap = |configured: Option<usize>, advertised: Option<usize>, fallback: usize| match (
            configured, advertised,
        ) {
            (Some(c), Some(a)) => c.min(a),
            (Some(c), None) => c,
            (None, Some(a)) => a,
            (None, None) => fallback,
        };
        info.max_batch_size = cap(
            self.section.max_batch_size,
            server.max_client_batch_size,
            DEFAULT_MAX_BATCH_SIZE,
        )
        .max(1);
        info.max_input_tokens = cap(
            self.section.max_input_tokens,
            server.max_input_length,
            DEFAULT_MAX_INPUT_TOKENS,
        )
        .max(1);
        info.max_batch_tokens = cap(
            self.section.max_batch_tokens,
            server.max_batch_tokens,
            DEFAULT_MAX_BATCH_TOKENS,
        )
        .max(1);
        if info.dimension == 0 {
            let probe = self
                .post(EmbedRequest::new(&["dimension probe"]), 0)
                .await?;
            info.dimension = probe.dim();
        }
        tracing::debug!(target: "embeddings_tei", model = %info.model, dimension = info.dimension,
            max_batch_size = info.max_batch_size, max_input_tokens = info.max_input_tokens,
            max_batch_tokens = info.max_batch_tokens, "tei: limits from /info");
        Ok(info)
    }
}

#[async_trait]
impl Embedder for TeiEmbedder {
    fn info(&self) -> &ProviderInfo {
        self.info.get()
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        let dim = self.dimension();
        self.client
            .embed(self.info(), request, |r| self.post(r, dim))
            .await
            .inspect_err(
                |e| tracing::debug!(target: "embeddings_tei", error = %e, "tei request failed"),
            )
    }

    /// Reads `GET /info` (limits, model id) once, and learns the dimension
    /// from one probe embedding when the configuration did not give it.
    async fn prepare(&self) -> Result<()> {
        if self.info.is_learned() {
            return Ok(());
        }
        let info = self.discover().await.map_err(|e| self.client.finish(e))?;
        let _ = self.info.learn(info);
        Ok(())
    }

    /// `GET /health`: 200 when the model is loaded and answers.
    async fn health_check(&self) -> Result<()> {
        let a = self
            .client
            .call(
                self.client.request(Method::GET, &self.routes.health),
                &self.shown,
                BodyCap::Bytes(MAX_INFO_BODY),
            )
            .await?;
        if a.is_success() {
            return Ok(());
        }
        let e = self.status_error(&a);
        let e = if a.status == 503 {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "the TEI server at {} is not healthy: {}",
                    self.shown,
                    e.message()
                ),
            )
            .with_status(503)
        } else {
            e
        };
        Err(self.client.finish(e))
    }
}

embeddings_core::register_provider! {
    name: NAME,
    description: "Hugging Face text-embeddings-inference native /embed, limits from /info (TEI_BASE_URL, TEI_API_KEY)",
    build: |config| Ok(Arc::new(TeiEmbedder::from_config(config)?)),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_refusals_name_the_key() {
        let mut c = Config::for_provider("tei");
        c.base_url = Some("http://u:p@localhost:1".into());
        assert_eq!(
            TeiEmbedder::from_config(&c).unwrap_err().kind(),
            ErrorKind::InvalidConfig
        );
        let c =
            Config::from_toml_str("provider = \"tei\"\n[tei]\nprompts = { nonsense = \"q\" }\n")
                .unwrap();
        let e = TeiEmbedder::from_config(&c).unwrap_err();
        assert!(e.message().contains("tei.prompts.nonsense"), "{e}");
        let c =
            Config::from_toml_str("provider = \"tei\"\n[tei]\ntruncation_direction = \"left\"\n")
                .unwrap();
        assert!(
            TeiEmbedder::from_config(&c)
                .unwrap_err()
                .message()
                .contains("truncate")
        );
        let c = Config::from_toml_str("provider = \"tei\"\n[tei]\nnormalise = true\n").unwrap();
        assert!(TeiEmbedder::from_config(&c).is_err());
    }

    #[test]
    fn prompts_become_input_types_and_fingerprint() {
        let c = Config::from_toml_str(
            "provider = \"tei\"\nbase_url = \"http://h:1\"\n[tei]\nprompts = { query = \"query\", document = \"passage\" }\ntruncate = true\ntruncation_direction = \"left\"\n",
        )
        .unwrap();
        let t = TeiEmbedder::from_config(&c).unwrap();
        let mut types = t.info().input_types.to_vec();
        types.sort_by_key(|t| t.as_str());
        assert_eq!(types, [InputType::Document, InputType::Query]);
        assert_eq!(t.prompt_for(InputType::Query), Some("query"));
        assert_eq!(t.prompt_for(InputType::Clustering), None);
        let f = t.info().fingerprint();
        assert!(
            f.contains("truncate=true") && f.contains("truncation_direction=Left"),
            "{f}"
        );
        assert!(f.contains("prompt.query=query"), "{f}");
        assert_eq!(t.info().max_batch_size, DEFAULT_MAX_BATCH_SIZE);
    }

    #[test]
    fn debug_hides_the_key() {
        let mut c = Config::for_provider("tei");
        c.api_key = Some("hf_secretsecretsecret".to_owned().into());
        let t = TeiEmbedder::from_config(&c).unwrap();
        let d = format!("{t:?}");
        assert!(d.contains("[redacted]") && !d.contains("hf_secret"), "{d}");
    }
}
