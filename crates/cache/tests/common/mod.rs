//! Helpers shared by the cache tests: a request-counting wrapper, stores
//! that fail or hang, a provider under another name.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use embeddings_cache::{Key, Space, Store};
use embeddings_core::{
    EmbedRequest, Embedder, Embeddings, Error, ErrorKind, ProviderInfo, Result, Wrapper,
    async_trait,
};
use embeddings_mock::MockEmbedder;

/// Counts the requests and the inputs that reach the provider.
#[derive(Debug)]
pub struct Counting {
    pub inner: Arc<dyn Embedder>,
    pub requests: AtomicUsize,
    pub inputs: AtomicUsize,
    pub log: std::sync::Mutex<Vec<Vec<String>>>,
}

impl Counting {
    pub fn new(inner: Arc<dyn Embedder>) -> Arc<Counting> {
        Arc::new(Counting {
            inner,
            requests: AtomicUsize::new(0),
            inputs: AtomicUsize::new(0),
            log: std::sync::Mutex::new(Vec::new()),
        })
    }
    pub fn mock(model: &str, dim: usize) -> Arc<Counting> {
        Counting::new(Arc::new(MockEmbedder::new(model, dim).unwrap()))
    }
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
    pub fn inputs(&self) -> usize {
        self.inputs.load(Ordering::SeqCst)
    }
    pub fn calls(&self) -> Vec<Vec<String>> {
        self.log.lock().unwrap().clone()
    }
}

#[async_trait]
impl Wrapper for Counting {
    fn inner(&self) -> &dyn Embedder {
        &*self.inner
    }
    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inputs
            .fetch_add(request.inputs.len(), Ordering::SeqCst);
        self.log
            .lock()
            .unwrap()
            .push(request.inputs.iter().map(|s| s.to_string()).collect());
        self.inner.embed(request).await
    }
}

/// The mock under another provider name (another fingerprint, same vectors).
#[derive(Debug)]
pub struct Renamed {
    pub inner: Arc<dyn Embedder>,
    pub info: ProviderInfo,
}

impl Renamed {
    pub fn new(inner: Arc<dyn Embedder>, provider: &'static str) -> Arc<Renamed> {
        let old = inner.info();
        let mut info = ProviderInfo::new(provider, old.model.clone(), old.dimension);
        info.output_types = old.output_types;
        Arc::new(Renamed { inner, info })
    }
}

#[async_trait]
impl Wrapper for Renamed {
    fn inner(&self) -> &dyn Embedder {
        &*self.inner
    }
    fn info(&self) -> &ProviderInfo {
        &self.info
    }
    fn dimension(&self) -> usize {
        self.info.dimension
    }
}

/// A store whose every operation fails (or never answers, when `hang`).
#[derive(Debug, Default)]
pub struct Broken {
    pub hang: bool,
    pub calls: AtomicUsize,
}

#[async_trait]
impl Store for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    async fn get(&self, _: &Space, _: &[Key]) -> Result<Vec<Option<Bytes>>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hang {
            std::future::pending::<()>().await;
        }
        Err(Error::new(ErrorKind::Connection, "the store is down"))
    }
    async fn put(&self, _: &Space, _: &[Key], _: &[Bytes]) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hang {
            std::future::pending::<()>().await;
        }
        Err(Error::new(ErrorKind::Connection, "the store is down"))
    }
    async fn clear(&self) -> Result<()> {
        Ok(())
    }
}

/// The §4 vector of every text, flattened.
pub fn expected(model: &str, texts: &[&str], dim: usize) -> Vec<f32> {
    texts
        .iter()
        .flat_map(|t| embeddings_mock::vector(model, t, dim))
        .collect()
}

/// Asserts the rows of `e` are the §4 vectors of `texts` (tolerance 1e-5).
pub fn assert_rows(e: &Embeddings, model: &str, texts: &[&str], dim: usize) {
    assert_eq!((e.len(), e.dim()), (texts.len(), dim));
    for (i, t) in texts.iter().enumerate() {
        let want = embeddings_mock::vector(model, t, dim);
        for (a, b) in e.row(i).iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5, "row {i} ({t:?}): {a} != {b}");
        }
    }
}
