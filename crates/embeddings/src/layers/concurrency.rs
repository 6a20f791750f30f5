//! The concurrency layer: a bound on requests in flight, shared by clones.

use std::future::Future;
use std::sync::Arc;

use embeddings_core::{
    EmbedRequest, Embedder, Embeddings, Error, ErrorKind, Result, Wrapper, async_trait,
};
use tokio::sync::Semaphore;

/// Lets at most `max_in_flight` calls reach the inner embedder at once; the
/// others wait for a free slot. Clones share the bound.
/// A waiting or running call that is dropped gives its slot back.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use embeddings::Embedder;
/// use embeddings::layers::ConcurrencyLayer;
/// use embeddings::mock::MockEmbedder;
///
/// let e = ConcurrencyLayer::new(Arc::new(MockEmbedder::new("mock", 8).unwrap()), 4);
/// let clone = e.clone(); // shares the 4 slots
/// assert_eq!(clone.available(), 4);
/// assert_eq!(e.embed_query("hi").await.unwrap().len(), 8);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct ConcurrencyLayer {
    inner: Arc<dyn Embedder>,
    semaphore: Arc<Semaphore>,
    max_in_flight: usize,
}

impl ConcurrencyLayer {
    /// Wraps `inner` with a bound of `max_in_flight` (at least 1) calls at once.
    pub fn new(inner: Arc<dyn Embedder>, max_in_flight: usize) -> Self {
        let max_in_flight = max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        ConcurrencyLayer {
            inner,
            semaphore: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
        }
    }

    /// The bound.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    async fn run<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let _permit = match self.semaphore.try_acquire() {
            Ok(permit) => permit,
            Err(_) => self.semaphore.acquire().await.map_err(|_| {
                Error::new(ErrorKind::Cancelled, "the concurrency limiter was closed")
            })?,
        };
        fut.await
    }
}

#[async_trait]
impl Wrapper for ConcurrencyLayer {
    fn inner(&self) -> &dyn Embedder {
        &*self.inner
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.run(self.inner.embed(request)).await
    }

    async fn health_check(&self) -> Result<()> {
        self.run(self.inner.health_check()).await
    }
}
