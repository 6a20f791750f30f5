//! One async API over text-embedding providers.
//!
//! Pick providers with Cargo features (`mock`, the default; `openai`;
//! `ollama`; `full`), configure them with a [`Config`] (TOML, JSON, the
//! environment, or the [`EmbedderBuilder`]), and get back an
//! `Arc<dyn Embedder>` wrapped in the shared layers.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use embeddings::{Embedder, EmbedderBuilder};
//!
//! let embedder = EmbedderBuilder::new("mock").dimensions(256).build().unwrap();
//! let rows = embedder.embed_documents(&["first text", "second text"]).await.unwrap();
//! assert_eq!((rows.len(), rows.dim()), (2, 256));
//! let query = embedder.embed_query("a question").await.unwrap();
//! assert_eq!(query.len(), 256);
//! # });
//! ```

pub mod layers;

use std::sync::Arc;

pub use embeddings_core::registry::{self, ProviderRegistration};
pub use embeddings_core::{
    BatchConfig, ConcurrencyConfig, Config, ENV_DIMENSIONS, ENV_MODEL, ENV_PROVIDER, Embedder,
    EmbedderExt, Embeddings, Error, ErrorKind, ExposeSecret, JsonValue, OverLengthPolicy,
    ProviderInfo, RateLimitConfig, Result, RetryConfig, Rows, SecretString, TimeoutConfig, Usage,
    async_trait, estimate_tokens, registered,
};

// Each enabled provider crate is referenced here, so that rustc links it and
// its `inventory` registration is present (see `tests/registry.rs`).
/// The deterministic mock provider (feature `mock`).
#[cfg(feature = "mock")]
pub use embeddings_mock as mock;
/// The Ollama provider (feature `ollama`).
#[cfg(feature = "ollama")]
pub use embeddings_ollama as ollama;
/// The OpenAI provider (feature `openai`).
#[cfg(feature = "openai")]
pub use embeddings_openai as openai;

/// The providers this build of the crate was compiled with, by feature.
pub const ENABLED_PROVIDERS: &[&str] = &[
    #[cfg(feature = "mock")]
    "mock",
    #[cfg(feature = "ollama")]
    "ollama",
    #[cfg(feature = "openai")]
    "openai",
];

/// Builds the configured provider wrapped in the layers the configuration
/// enables (see [`layers`]).
pub fn from_config(config: &Config) -> Result<Arc<dyn Embedder>> {
    let provider = registry::build(config)?;
    Ok(layers::apply(provider, config))
}

/// [`from_config`] on the default configuration overlaid with the
/// environment (`EMBEDDINGS_PROVIDER`, `EMBEDDINGS_MODEL`,
/// `EMBEDDINGS_DIMENSIONS`; providers read their own, such as
/// `OPENAI_API_KEY` or `OLLAMA_HOST`). When `EMBEDDINGS_CONFIG` names a
/// file, that file is read first and the environment overlays it.
pub fn from_env() -> Result<Arc<dyn Embedder>> {
    let mut config = match std::env::var("EMBEDDINGS_CONFIG") {
        Ok(path) if !path.trim().is_empty() => Config::from_file(path)?,
        _ => Config::default(),
    };
    config.apply_env()?;
    from_config(&config)
}

/// A fluent way to build a [`Config`] and then an embedder.
///
/// ```
/// let e = embeddings::EmbedderBuilder::new("mock")
///     .model("my-model")
///     .dimensions(64)
///     .max_retries(5)
///     .build()
///     .unwrap();
/// assert_eq!(e.dimension(), 64);
/// assert_eq!(e.info().model, "my-model");
/// ```
#[derive(Debug, Clone, Default)]
pub struct EmbedderBuilder {
    config: Config,
}

impl EmbedderBuilder {
    /// Starts from the default configuration of `provider`.
    pub fn new(provider: impl Into<String>) -> Self {
        EmbedderBuilder {
            config: Config::for_provider(provider),
        }
    }

    /// Starts from an existing configuration.
    pub fn from_config(config: Config) -> Self {
        EmbedderBuilder { config }
    }

    /// The model to request.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.config.model = Some(model.into());
        self
    }

    /// The output dimension.
    pub fn dimensions(mut self, dimensions: usize) -> Self {
        self.config.dimensions = Some(dimensions);
        self
    }

    /// The provider's endpoint.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.config.base_url = Some(url.into());
        self
    }

    /// The API key (kept as a secret; never printed).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.config.api_key = Some(SecretString::from(key.into()));
        self
    }

    /// Most inputs per request (lowers the provider's limit).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch.max_batch_size = Some(n);
        self
    }

    /// Sub-batches of one call in flight at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.batch.concurrency = n;
        self
    }

    /// Retries after the first attempt.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.config.retry.max_retries = n;
        self
    }

    /// Deadline of one attempt.
    pub fn timeout(mut self, per_attempt: std::time::Duration) -> Self {
        self.config.timeout.per_attempt = Some(per_attempt);
        self
    }

    /// Sets the provider's own section (`[name]` in the config file) from JSON.
    pub fn provider_section(mut self, name: &str, section: JsonValue) -> Self {
        self.config.providers.insert(name.to_owned(), section);
        self
    }

    /// Edits the configuration directly.
    pub fn configure(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Validates and builds (provider + layers).
    pub fn build(&self) -> Result<Arc<dyn Embedder>> {
        from_config(&self.config)
    }
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
