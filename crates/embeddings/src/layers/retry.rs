//! The retry layer: exponential backoff with jitter (`backon`), honouring the
//! server's `retry_after`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use backon::{ExponentialBuilder, Retryable};
use embeddings_core::{
    EmbedRequest, Embedder, Embeddings, Error, Result, RetryConfig, Wrapper, async_trait,
};
use tracing::Instrument;

use super::instrument::metric_names;

/// Tries a failed request again when its error
/// [`is_retryable`](Error::is_retryable), waiting between attempts.
///
/// The waits grow exponentially from `initial_backoff` to `max_backoff`
/// (randomised when `jitter` is on); when the error carries a `retry_after`
/// (a 429's `Retry-After`), that is waited instead, up to `max_retry_after`.
/// It gives up after `max_retries` retries, or when the next wait would end
/// more than `max_elapsed` after the first attempt began; the error returned
/// then is the last one, with [`Error::attempts`] set to the number of
/// attempts made (also on errors that were not retried: 1).
///
/// Every attempt runs in a `tracing` span `embeddings.attempt` (`op`:
/// `embed` or `prepare`, provider, model, attempt number, outcome); every retry increments the
/// `embeddings_retries_total` counter. Waits use `tokio::time`.
///
/// `health_check` is passed on once, without retries: it reports the
/// provider's state as it is.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    inner: Arc<dyn Embedder>,
    config: RetryConfig,
}

impl RetryLayer {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Embedder>, config: RetryConfig) -> Self {
        RetryLayer { inner, config }
    }

    /// The configuration.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    async fn run<T, F, Fut>(&self, op: &'static str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T>> + Send,
        T: Send,
    {
        let c = &self.config;
        let start = tokio::time::Instant::now();
        let attempts = AtomicU32::new(0);
        let info = self.inner.info();
        let mut backoff = ExponentialBuilder::new()
            .with_min_delay(c.initial_backoff)
            .with_max_delay(c.max_backoff)
            .with_max_times(c.max_retries as usize);
        if c.jitter {
            backoff = backoff.with_jitter();
        }
        let result = (|| {
            let n = attempts.fetch_add(1, Ordering::Relaxed) + 1;
            let span = tracing::info_span!(
                "embeddings.attempt",
                op,
                provider = %info.provider,
                model = %info.model,
                attempt = n,
                outcome = tracing::field::Empty,
            );
            let fut = attempt();
            let recorder = span.clone();
            async move {
                let r = fut.await;
                if !recorder.is_disabled() {
                    match &r {
                        Ok(_) => recorder.record("outcome", "ok"),
                        Err(e) => recorder.record("outcome", e.kind().as_str()),
                    };
                }
                r
            }
            .instrument(span)
        })
        .retry(backoff)
        .when(|e: &Error| e.is_retryable())
        .adjust(|e: &Error, next| {
            // `next` is None once the retries are spent.
            let backoff = next?;
            let wait = match e.retry_after() {
                Some(asked) => asked.min(c.max_retry_after),
                None => backoff.min(c.max_backoff),
            };
            (start.elapsed() + wait <= c.max_elapsed).then_some(wait)
        })
        .notify(|e: &Error, wait| {
            metrics::counter!(
                metric_names::RETRIES,
                "provider" => info.provider.clone(),
                "model" => info.model.clone(),
                "kind" => e.kind().as_str(),
            )
            .increment(1);
            tracing::debug!(
                provider = %info.provider,
                model = %info.model,
                error.kind = e.kind().as_str(),
                wait_ms = wait.as_millis() as u64,
                "retrying"
            );
        })
        .await;
        result.map_err(|e| e.with_attempts(attempts.load(Ordering::Relaxed)))
    }
}

#[async_trait]
impl Wrapper for RetryLayer {
    fn inner(&self) -> &dyn Embedder {
        &*self.inner
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.run("embed", || self.inner.embed(request)).await
    }

    /// Discovery is retried like a request: a server that is briefly
    /// unavailable at start-up does not fail the first call.
    async fn prepare(&self) -> Result<()> {
        self.run("prepare", || self.inner.prepare()).await
    }
}
