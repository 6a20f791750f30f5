//! The shared layers (DESIGN.md §3), outermost first:
//!
//! ```text
//! instrument -> (user layers) -> prompts -> (cache) -> batch -> retry -> rate limit
//!            -> concurrency -> timeout -> provider
//! ```
//!
//! Each layer is an [`Embedder`] around any `Arc<dyn Embedder>`, usable alone,
//! and [`apply`] stacks the ones a [`Config`] enables:
//!
//! | layer | type | config | default |
//! | --- | --- | --- | --- |
//! | instrument | [`InstrumentLayer`] | always on | `tracing` spans + `metrics` |
//! | prompts | [`PromptLayer`] | `[prompts]` | off; a prompt per input type for providers without native input types |
//! | batch | [`BatchLayer`] | `[batch]` | on; provider limits; 4 sub-batches at a time; over-long inputs are an error; binary/ubinary computed from f32 where the provider lacks them |
//! | retry | [`RetryLayer`] | `[retry]` | on; 2 retries, 0.5 s doubling to 8 s, with jitter |
//! | rate limit | [`RateLimitLayer`] | `[rate_limit]` | no fixed limit; adaptive to the server's headers |
//! | concurrency | [`ConcurrencyLayer`] | `[concurrency]` | 16 requests in flight |
//! | timeout | [`TimeoutLayer`] | `[timeout]` | 60 s per attempt |
//!
//! Layers never look at a provider's name: they plan with
//! [`ProviderInfo`](crate::ProviderInfo) and decide from [`Error`](crate::Error)
//! (its kind, [`is_retryable`](crate::Error::is_retryable) and
//! [`retry_after`](crate::Error::retry_after)). `info()`, `dimension()`,
//! `count_tokens()` and `split_tokens()` pass through every layer unchanged
//! (each layer is a [`Wrapper`], which forwards what it does not change).
//! The request's [`InputType`](crate::InputType) and
//! [`OutputType`](crate::OutputType) travel through every layer.
//!
//! The stack is built from [`LayerRegistration`]s: a crate adds a layer
//! with `embeddings_core::register_layer!` (name = its config section,
//! position in the stack), without editing this module.
//!
//! Every wait is a `tokio::time` sleep, so tests can pause time; nothing is
//! spawned, so dropping a call's future cancels all of its work.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use embeddings::{Config, Embedder, layers};
//! use embeddings::mock::MockEmbedder;
//!
//! let mut config = Config::for_provider("mock");
//! config.batch.max_batch_size = Some(2); // split into requests of 2 inputs
//! let provider = Arc::new(MockEmbedder::new("mock", 8).unwrap());
//! let embedder = layers::apply(provider, &config).unwrap();
//! let rows = embedder.embed_documents(&["a", "b", "c", "d", "e"]).await.unwrap();
//! assert_eq!(rows.len(), 5);
//! assert_eq!(rows.row(4), embeddings::mock::vector("mock", "e", 8).as_slice());
//! # });
//! ```

mod batch;
mod concurrency;
mod instrument;
mod prompts;
mod rate_limit;
mod retry;
mod stream;
mod timeout;

use std::sync::Arc;

use embeddings_core::registry::{self, LayerRegistration};
use embeddings_core::{EmbedRequest, Layer, Wrapper, async_trait};

use crate::{Config, Embedder, Embeddings, Result};

pub use self::batch::{BatchLayer, BatchLimits, plan_batches};
pub use self::concurrency::ConcurrencyLayer;
pub use self::instrument::{InstrumentLayer, describe_metrics, metric_names};
pub use self::prompts::{PromptConfig, PromptLayer};
pub use self::rate_limit::RateLimitLayer;
pub use self::retry::RetryLayer;
pub use self::stream::{EmbeddedBatch, StreamOptions, embed_iter, embed_stream};
pub use self::timeout::TimeoutLayer;

/// Where in the stack [`EmbedderBuilder::layer`](crate::EmbedderBuilder::layer)
/// puts user layers: just inside the instrument layer, above prompts, cache
/// and batch, so they see every call as the caller made it.
pub const USER_LAYER_POSITION: u32 = 800;

/// Wraps `provider` in every layer `config` enables, in the documented
/// order (instrument -> prompts -> cache -> batch -> retry -> rate limit ->
/// concurrency -> timeout, DESIGN.md §3), with `user` layers at
/// [`USER_LAYER_POSITION`] (the first one outermost).
///
/// The stack is every [`LayerRegistration`] (the built-in ones are
/// registered by this crate; a crate such as the cache adds its own), sorted
/// by position, each built from the configuration:
///
/// * timeout: when `timeout.per_attempt` is set;
/// * concurrency: when `concurrency.max_in_flight` is set;
/// * rate limit: when `rate_limit.requests_per_minute` or
///   `rate_limit.tokens_per_minute` is set, or `rate_limit.adaptive` (not for
///   an in-process provider, which has no server budget to adapt to);
/// * retry: when `retry.enabled`;
/// * batch: when `batch.enabled` (without it, an output-type adapter takes
///   its place, so binary and ubinary still work everywhere);
/// * prompts: when `[prompts]` has a prompt;
/// * instrument: always (it costs a few nanoseconds when no `tracing`
///   subscriber and no `metrics` recorder is installed).
pub fn apply(provider: Arc<dyn Embedder>, config: &Config) -> Result<Arc<dyn Embedder>> {
    apply_with(provider, config, &[])
}

/// [`apply`] with user layers at [`USER_LAYER_POSITION`].
pub fn apply_with(
    provider: Arc<dyn Embedder>,
    config: &Config,
    user: &[Arc<dyn Layer>],
) -> Result<Arc<dyn Embedder>> {
    let mut e = provider;
    let mut user_done = false;
    // Registered layers are sorted outermost first; wrap from the inside out.
    for reg in registry::layers().iter().rev() {
        if reg.position > USER_LAYER_POSITION && !user_done {
            for l in user.iter().rev() {
                e = l.layer(e);
            }
            user_done = true;
        }
        e = (reg.build)(config, e)?;
    }
    if !user_done {
        for l in user.iter().rev() {
            e = l.layer(e);
        }
    }
    Ok(e)
}

embeddings_core::register_layer! {
    name: "timeout",
    description: "a deadline per attempt ([timeout])",
    position: 100,
    build: |config: &Config, e: Arc<dyn Embedder>| Ok(match config.timeout.per_attempt {
        Some(d) => Arc::new(TimeoutLayer::new(e, d)),
        None => e,
    }),
}

embeddings_core::register_layer! {
    name: "concurrency",
    description: "a bound on requests in flight, shared by clones ([concurrency])",
    position: 200,
    build: |config: &Config, e: Arc<dyn Embedder>| Ok(match config.concurrency.max_in_flight {
        Some(n) => Arc::new(ConcurrencyLayer::new(e, n)),
        None => e,
    }),
}

embeddings_core::register_layer! {
    name: "rate_limit",
    description: "requests and tokens per minute, adaptive to the server's headers ([rate_limit])",
    position: 300,
    build: |config: &Config, e: Arc<dyn Embedder>| {
        let rl = &config.rate_limit;
        let fixed = rl.requests_per_minute.is_some() || rl.tokens_per_minute.is_some();
        Ok(if fixed || (rl.adaptive && !e.info().in_process) {
            Arc::new(RateLimitLayer::try_new(e, rl.clone())?)
        } else {
            e
        })
    },
}

embeddings_core::register_layer! {
    name: "retry",
    description: "exponential backoff with jitter for retryable errors ([retry])",
    position: 400,
    build: |config: &Config, e: Arc<dyn Embedder>| {
        Ok(if config.retry.enabled {
            Arc::new(RetryLayer::new(e, config.retry.clone()))
        } else {
            e
        })
    },
}

embeddings_core::register_layer! {
    name: "batch",
    description: "splits by the provider's limits, over-long inputs, rows in input order ([batch])",
    position: 500,
    build: |config: &Config, e: Arc<dyn Embedder>| {
        Ok(if config.batch.enabled {
            Arc::new(BatchLayer::new(e, config.batch.clone()))
        } else {
            Arc::new(OutputTypeLayer::new(e))
        })
    },
}

embeddings_core::register_layer! {
    name: "prompts",
    description: "query/document prompts for providers without native input types ([prompts])",
    position: 700,
    build: |config: &Config, e: Arc<dyn Embedder>| {
        let prompts: PromptConfig = config.section("prompts")?;
        Ok(if prompts.is_empty() {
            e
        } else {
            Arc::new(PromptLayer::new(e, prompts))
        })
    },
}

embeddings_core::register_layer! {
    name: "instrument",
    description: "tracing spans and metrics of every call (always on)",
    position: 900,
    build: |_: &Config, e: Arc<dyn Embedder>| Ok(Arc::new(InstrumentLayer::new(e))),
}

/// The names of every registered layer (built-in and added by other crates),
/// outermost first. A config section of one of these names is the layer's.
pub fn registered_layers() -> impl Iterator<Item = &'static LayerRegistration> {
    registry::layers().iter().copied()
}

/// What the batch layer does for output types when it is switched off:
/// binary and ubinary asked of a provider that only gives `f32` are
/// computed from `f32` rows; int8 and uint8 are an `InvalidInput` error.
#[derive(Debug, Clone)]
pub struct OutputTypeLayer {
    inner: Arc<dyn Embedder>,
}

impl OutputTypeLayer {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Embedder>) -> Self {
        OutputTypeLayer { inner }
    }
}

#[async_trait]
impl Wrapper for OutputTypeLayer {
    fn inner(&self) -> &dyn Embedder {
        &*self.inner
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        batch::embed_converting(self.inner.info(), request, |r| self.inner.embed(r)).await
    }
}
