//! The shared layers (DESIGN.md §3), outermost first:
//!
//! ```text
//! instrument -> batch -> retry -> rate limit -> concurrency -> timeout -> provider
//! ```
//!
//! Each layer is an [`Embedder`] around any `Arc<dyn Embedder>`, usable alone,
//! and [`apply`] stacks the ones a [`Config`] enables:
//!
//! | layer | type | config | default |
//! | --- | --- | --- | --- |
//! | instrument | [`InstrumentLayer`] | always on | `tracing` spans + `metrics` |
//! | batch | [`BatchLayer`] | `[batch]` | on; provider limits; 4 sub-batches at a time; over-long inputs are an error |
//! | retry | [`RetryLayer`] | `[retry]` | on; 2 retries, 0.5 s doubling to 8 s, with jitter |
//! | rate limit | [`RateLimitLayer`] | `[rate_limit]` | no fixed limit; adaptive to the server's headers |
//! | concurrency | [`ConcurrencyLayer`] | `[concurrency]` | 16 requests in flight |
//! | timeout | [`TimeoutLayer`] | `[timeout]` | 60 s per attempt |
//!
//! Layers never look at a provider's name: they plan with
//! [`ProviderInfo`](crate::ProviderInfo) and decide from [`Error`](crate::Error)
//! (its kind, [`is_retryable`](crate::Error::is_retryable) and
//! [`retry_after`](crate::Error::retry_after)). `info()`, `dimension()`,
//! `count_tokens()` and `split_tokens()` pass through every layer unchanged.
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
//! let embedder = layers::apply(provider, &config);
//! let rows = embedder.embed_documents(&["a", "b", "c", "d", "e"]).await.unwrap();
//! assert_eq!(rows.len(), 5);
//! assert_eq!(rows.row(4), embeddings::mock::vector("mock", "e", 8).as_slice());
//! # });
//! ```

mod batch;
mod concurrency;
mod instrument;
mod rate_limit;
mod retry;
mod stream;
mod timeout;

use std::sync::Arc;

use crate::{Config, Embedder};

pub use self::batch::{BatchLayer, BatchLimits, plan_batches};
pub use self::concurrency::ConcurrencyLayer;
pub use self::instrument::{InstrumentLayer, describe_metrics, metric_names};
pub use self::rate_limit::RateLimitLayer;
pub use self::retry::RetryLayer;
pub use self::stream::{EmbeddedBatch, StreamOptions, embed_iter, embed_stream};
pub use self::timeout::TimeoutLayer;

/// Wraps `provider` in the layers `config` enables, in the documented order
/// (instrument -> batch -> retry -> rate limit -> concurrency -> timeout).
///
/// * batch: when `batch.enabled`;
/// * retry: when `retry.enabled`;
/// * rate limit: when `rate_limit.requests_per_minute` or
///   `rate_limit.tokens_per_minute` is set, or `rate_limit.adaptive`;
/// * concurrency: when `concurrency.max_in_flight` is set;
/// * timeout: when `timeout.per_attempt` is set;
/// * instrument: always (it costs a few nanoseconds when no `tracing`
///   subscriber and no `metrics` recorder is installed).
pub fn apply(provider: Arc<dyn Embedder>, config: &Config) -> Arc<dyn Embedder> {
    let mut e = provider;
    if let Some(per_attempt) = config.timeout.per_attempt {
        e = Arc::new(TimeoutLayer::new(e, per_attempt));
    }
    if let Some(n) = config.concurrency.max_in_flight {
        e = Arc::new(ConcurrencyLayer::new(e, n));
    }
    let rl = &config.rate_limit;
    if rl.requests_per_minute.is_some() || rl.tokens_per_minute.is_some() || rl.adaptive {
        e = Arc::new(RateLimitLayer::new(e, rl.clone()));
    }
    if config.retry.enabled {
        e = Arc::new(RetryLayer::new(e, config.retry.clone()));
    }
    if config.batch.enabled {
        e = Arc::new(BatchLayer::new(e, config.batch.clone()));
    }
    Arc::new(InstrumentLayer::new(e))
}

/// Implements the synchronous [`Embedder`] methods by passing them to `self.inner`.
macro_rules! forward_sync {
    () => {
        #[inline]
        fn info(&self) -> &embeddings_core::ProviderInfo {
            self.inner.info()
        }
        #[inline]
        fn dimension(&self) -> usize {
            self.inner.dimension()
        }
        #[inline]
        fn count_tokens(&self, text: &str) -> usize {
            self.inner.count_tokens(text)
        }
        #[inline]
        fn split_tokens<'a>(&self, text: &'a str, max_tokens: usize) -> Vec<&'a str> {
            self.inner.split_tokens(text, max_tokens)
        }
    };
}
pub(crate) use forward_sync;
