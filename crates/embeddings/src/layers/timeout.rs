//! The timeout layer: a deadline per attempt.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use embeddings_core::{
    EmbedRequest, Embedder, Embeddings, Error, ErrorKind, Result, Wrapper, async_trait,
};

/// Gives every call (every attempt, placed below the retry layer) at most
/// `per_attempt` to finish; a call that takes longer fails with a retryable
/// [`ErrorKind::Timeout`] error. The late call's future is dropped, which
/// cancels its work (an HTTP request is aborted); nothing keeps running.
///
/// Uses `tokio::time`, so it needs a runtime with time enabled, and tests
/// can pause time.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
/// use std::{sync::Arc, time::Duration};
/// use embeddings::{Embedder, ErrorKind};
/// use embeddings::layers::TimeoutLayer;
/// use embeddings::mock::{MockEmbedder, MockFaults};
///
/// let slow = MockFaults { latency: Some(Duration::from_secs(5)), ..Default::default() };
/// let mock = Arc::new(MockEmbedder::new("mock", 8).unwrap().with_faults(slow).unwrap());
/// let e = TimeoutLayer::new(mock, Duration::from_secs(1));
/// let err = e.embed_query("hi").await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Timeout);
/// assert!(err.is_retryable());
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    inner: Arc<dyn Embedder>,
    per_attempt: Duration,
}

impl TimeoutLayer {
    /// Wraps `inner` with a deadline of `per_attempt` per call.
    pub fn new(inner: Arc<dyn Embedder>, per_attempt: Duration) -> Self {
        TimeoutLayer { inner, per_attempt }
    }

    /// The deadline of one call.
    pub fn per_attempt(&self) -> Duration {
        self.per_attempt
    }

    async fn run<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let mut fut = std::pin::pin!(fut);
        // An answer ready at once needs no timer.
        if let Poll::Ready(r) = futures::poll!(fut.as_mut()) {
            return r;
        }
        match tokio::time::timeout(self.per_attempt, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("no answer within {:?}", self.per_attempt),
            )
            .with_provider(self.inner.info().provider.clone())),
        }
    }
}

#[async_trait]
impl Wrapper for TimeoutLayer {
    fn inner(&self) -> &dyn Embedder {
        &*self.inner
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.run(self.inner.embed(request)).await
    }

    async fn health_check(&self) -> Result<()> {
        self.run(self.inner.health_check()).await
    }

    async fn prepare(&self) -> Result<()> {
        self.run(self.inner.prepare()).await
    }
}
