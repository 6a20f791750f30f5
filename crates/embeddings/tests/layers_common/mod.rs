//! Helpers shared by the `layers_*` tests: a scriptable probe provider.

#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use embeddings::{
    EmbedRequest, Embedder, Embeddings, Error, ProviderInfo, Result, Usage, async_trait,
    estimate_tokens,
};
use embeddings_core::RateLimitSnapshot;

/// What the probe does on one call.
#[derive(Debug)]
pub enum Step {
    /// Answer after this long.
    Delay(Duration),
    /// Fail with this error (immediately).
    Fail(Error),
    /// Answer with one row too few.
    WrongCount,
    /// Answer with no rows at all (and write no sink).
    NoRows,
}

/// A provider that answers the design's vectors, following a script of
/// steps (one per call; an empty script answers at once), and counts what
/// happens to its calls.
#[derive(Debug)]
pub struct Probe {
    info: ProviderInfo,
    script: Mutex<VecDeque<Step>>,
    /// Sleep per call computed from the inputs (after the script's step).
    pub delay_of: Option<fn(&[&str]) -> Duration>,
    /// Attached to every successful answer.
    pub snapshot: Mutex<Option<RateLimitSnapshot>>,
    pub started: AtomicUsize,
    pub finished: AtomicUsize,
    pub dropped: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub sizes: Mutex<Vec<usize>>,
}

struct Guard<'a>(&'a Probe, bool);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !self.1 {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Probe {
    pub fn new(model: &str, dim: usize) -> Self {
        Probe {
            info: ProviderInfo::new("probe", model, dim),
            script: Mutex::new(VecDeque::new()),
            delay_of: None,
            snapshot: Mutex::new(None),
            started: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            sizes: Mutex::new(Vec::new()),
        }
    }

    pub fn with_info(mut self, f: impl FnOnce(&mut ProviderInfo)) -> Self {
        f(&mut self.info);
        self
    }

    pub fn script(self, steps: impl IntoIterator<Item = Step>) -> Self {
        self.script.lock().unwrap().extend(steps);
        self
    }

    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Embedder for Probe {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.info.check_output_type(&request)?;
        let texts = request.inputs;
        if texts.is_empty() {
            return Ok(Embeddings::empty(self.info.dimension));
        }
        self.started.fetch_add(1, Ordering::SeqCst);
        self.sizes.lock().unwrap().push(texts.len());
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let mut guard = Guard(self, false);
        let step = self.script.lock().unwrap().pop_front();
        let mut rows = texts.len();
        match step {
            Some(Step::Delay(d)) => tokio::time::sleep(d).await,
            Some(Step::Fail(e)) => {
                guard.1 = true;
                return Err(e);
            }
            Some(Step::WrongCount) => rows -= 1,
            Some(Step::NoRows) => rows = 0,
            None => {}
        }
        if let Some(f) = self.delay_of {
            tokio::time::sleep(f(texts)).await;
        }
        guard.1 = true;
        self.finished.fetch_add(1, Ordering::SeqCst);
        let dim = self.info.dimension;
        let mut out = Embeddings::zeroed(rows, dim);
        for (row, text) in out.as_flat_mut().chunks_exact_mut(dim).zip(texts) {
            embeddings::mock::fill_vector(&self.info.model, text, row);
        }
        let tokens: usize = texts.iter().map(|t| estimate_tokens(t)).sum();
        let mut out = out.with_usage(Usage::tokens(tokens as u64));
        out.set_rate_limits(*self.snapshot.lock().unwrap());
        Ok(out)
    }

    async fn health_check(&self) -> Result<()> {
        Ok(())
    }
}

/// Asserts that row `i` of `rows` is the design vector of `texts[i]`.
pub fn assert_rows(rows: &Embeddings, model: &str, texts: &[&str]) {
    assert_eq!(rows.len(), texts.len(), "row count");
    for (i, t) in texts.iter().enumerate() {
        let want = embeddings::mock::vector(model, t, rows.dim());
        for (a, b) in rows.row(i).iter().zip(&want) {
            assert!(
                (a - b).abs() < 1e-5,
                "row {i} ({t:?}) is not its input's vector"
            );
        }
    }
}

/// `n` distinct texts.
pub fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("input number {i}")).collect()
}

/// Borrows owned texts.
pub fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
