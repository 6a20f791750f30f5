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

/// The cache layer and its stores (feature `cache`): linked here so that its
/// `[cache]` layer registration exists.
#[cfg(feature = "cache")]
pub use embeddings_cache as cache;
/// Many workers on one job (DESIGN §10): the corpus queue on a Redis
/// Stream. Always present; without the `redis` feature its constructors
/// return an error naming the feature.
pub use embeddings_distributed as distributed;

use std::sync::Arc;

pub use embeddings_core::registry::{self, LayerRegistration, ProviderRegistration};
pub use embeddings_core::{
    BatchConfig, ConcurrencyConfig, Config, ENV_DIMENSIONS, ENV_MODEL, ENV_PROVIDER, EmbedRequest,
    Embedder, EmbedderExt, Embeddings, Error, ErrorKind, ExposeSecret, InputType, JsonValue, Layer,
    LayerFn, OutputType, OverLengthPolicy, ProviderInfo, RateLimitConfig, Result, RetryConfig,
    RowRef, RowSink, Rows, SecretString, SliceSink, TimeoutConfig, Usage, Wrapper, async_trait,
    estimate_tokens, quantize, registered,
};

/// The one list of providers this facade knows: `name => crate, "doc"`.
/// Each line is a Cargo feature of the same name that links the crate (its
/// `pub use` is what makes rustc link it, and so its registration exist),
/// and an entry of [`ENABLED_PROVIDERS`] / [`KNOWN_PROVIDERS`].
macro_rules! providers {
    ($($name:ident $feature:literal => $krate:ident, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            #[cfg(feature = $feature)]
            pub use $krate as $name;
        )*

        /// The providers this build of the crate was compiled with, by feature.
        pub const ENABLED_PROVIDERS: &[&str] = &[$(#[cfg(feature = $feature)] $feature,)*];

        /// Every provider this crate knows, enabled or not: each is the Cargo
        /// feature of the same name.
        pub const KNOWN_PROVIDERS: &[&str] = &[$($feature,)*];
    };
}

// Adding a provider: its crate, its feature in Cargo.toml, and one line here.
providers! {
    cohere "cohere" => embeddings_cohere, "The Cohere v2 embed provider (feature `cohere`).";
    local "local" => embeddings_local, "The local transformer-model provider, candle in-process (feature `local`).";
    mock "mock" => embeddings_mock, "The deterministic mock provider (feature `mock`).";
    ollama "ollama" => embeddings_ollama, "The Ollama provider (feature `ollama`).";
    openai "openai" => embeddings_openai, "The OpenAI provider (feature `openai`).";
    voyage "voyage" => embeddings_voyage, "The Voyage AI provider (feature `voyage`).";
    tei "tei" => embeddings_tei, "The Hugging Face text-embeddings-inference provider (feature `tei`).";
    jina "jina" => embeddings_jina, "The Jina AI provider (feature `jina`).";
    mistral "mistral" => embeddings_mistral, "The Mistral AI provider (feature `mistral`).";
    gemini "gemini" => embeddings_gemini, "The Google Gemini API / Vertex AI provider (feature `gemini`).";
    bedrock "bedrock" => embeddings_bedrock, "The AWS Bedrock provider (feature `bedrock`).";
    static_model "static" => embeddings_static, "The static (model2vec) model provider, in-process (feature `static`; `static-embedded` compiles in the distilled MiniLM).";
}

/// Checks that every section of `config` belongs to a provider or a layer
/// of this build; a section for a provider this build lacks names the
/// feature to enable.
pub fn check_sections(config: &Config) -> Result<()> {
    for name in config.section_names() {
        let provider = registry::find(name).is_ok();
        let layer = registry::find_layer(name).is_some();
        if provider || layer {
            continue;
        }
        if let Some(known) = KNOWN_PROVIDERS
            .iter()
            .find(|p| p.eq_ignore_ascii_case(name))
        {
            return Err(Error::config(format!(
                "section [{name}] configures the {known} provider, which this build lacks: \
                 enable the `{known}` feature of the `embeddings` crate"
            )));
        }
        let providers: Vec<_> = registry::registered().iter().map(|r| r.name).collect();
        let layers: Vec<_> = layers::registered_layers().map(|l| l.name).collect();
        return Err(Error::config(format!(
            "unknown config section [{name}]: sections are a provider's ({}) or a layer's ({})",
            providers.join(", "),
            layers.join(", ")
        )));
    }
    Ok(())
}

/// Builds the configured provider wrapped in the layers the configuration
/// enables (see [`layers`]).
pub fn from_config(config: &Config) -> Result<Arc<dyn Embedder>> {
    check_sections(config)?;
    let provider = registry::build(config)?;
    layers::apply(provider, config)
}

/// [`from_config`], then the provider's discovery
/// ([`Embedder::prepare`]): limits and dimension the server advertises are
/// in `info()` when this returns.
pub async fn from_config_prepared(config: &Config) -> Result<Arc<dyn Embedder>> {
    let e = from_config(config)?;
    e.prepare().await?;
    Ok(e)
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
    layers: Vec<Arc<dyn Layer>>,
}

impl EmbedderBuilder {
    /// Starts from the default configuration of `provider`.
    pub fn new(provider: impl Into<String>) -> Self {
        EmbedderBuilder {
            config: Config::for_provider(provider),
            layers: Vec::new(),
        }
    }

    /// Starts from an existing configuration.
    pub fn from_config(config: Config) -> Self {
        EmbedderBuilder {
            config,
            layers: Vec::new(),
        }
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
        self.config.batch.concurrency = Some(n);
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

    /// Sets a provider's or a layer's section (`[name]` in the config file) from JSON.
    pub fn provider_section(mut self, name: &str, section: JsonValue) -> Self {
        self.config.sections.insert(name.to_owned(), section);
        self
    }

    /// Adds a user layer. User layers sit just inside the instrument layer
    /// ([`layers::USER_LAYER_POSITION`]), above prompts, cache and batch, so
    /// they see every call as the caller made it; the first added is the
    /// outermost.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use embeddings::{EmbedRequest, Embedder, EmbedderBuilder, Embeddings, LayerFn, Result, Wrapper, async_trait};
    ///
    /// #[derive(Debug)]
    /// struct Count { inner: Arc<dyn Embedder>, calls: Arc<AtomicUsize> }
    /// #[async_trait]
    /// impl Wrapper for Count {
    ///     fn inner(&self) -> &dyn Embedder { &*self.inner }
    ///     async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
    ///         self.calls.fetch_add(1, Ordering::Relaxed);
    ///         self.inner.embed(request).await
    ///     }
    /// }
    ///
    /// let calls = Arc::new(AtomicUsize::new(0));
    /// let c = calls.clone();
    /// let e = EmbedderBuilder::new("mock")
    ///     .layer(LayerFn::new("count", move |inner| Arc::new(Count { inner, calls: c.clone() })))
    ///     .build()
    ///     .unwrap();
    /// e.embed_query("hello").await.unwrap();
    /// assert_eq!(calls.load(Ordering::Relaxed), 1);
    /// # });
    /// ```
    pub fn layer(mut self, layer: impl Layer + 'static) -> Self {
        self.layers.push(Arc::new(layer));
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
        check_sections(&self.config)?;
        let provider = registry::build(&self.config)?;
        layers::apply_with(provider, &self.config, &self.layers)
    }

    /// [`build`](EmbedderBuilder::build), then the provider's discovery
    /// ([`Embedder::prepare`]).
    pub async fn build_prepared(&self) -> Result<Arc<dyn Embedder>> {
        let e = self.build()?;
        e.prepare().await?;
        Ok(e)
    }
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
