//! The cache layer: per-row lookups, misses embedded once, rows written back.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use embeddings_core::{
    EmbedRequest, Embedder, Embeddings, Error, ErrorKind, OutputType, Result, RowRef, Usage,
    Wrapper,
};
use tokio::sync::watch;

use crate::config::DEFAULT_TIMEOUT;
use crate::key::{Key, Space};
use crate::memory::MemoryStore;
use crate::store::Store;

/// The metric of rows answered from the cache.
pub const METRIC_HITS: &str = "cache_hits";
/// The metric of rows the cache did not have.
pub const METRIC_MISSES: &str = "cache_misses";
/// The metric of failed (or timed-out) store operations.
pub const METRIC_ERRORS: &str = "cache_errors";

/// Counts of a cache layer (or of every cache layer of the process, see
/// [`global_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Rows answered from the store (or the memory tier).
    pub hits: u64,
    /// Rows the store did not have (embedded by the provider, or taken
    /// from an identical miss in flight).
    pub misses: u64,
    /// Store operations that failed or timed out (the call went on uncached).
    pub errors: u64,
    /// Misses answered by an identical miss already in flight (another
    /// call's, or an earlier input of the same call): no provider row.
    pub coalesced: u64,
    /// Rows written to the store.
    pub written: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    coalesced: AtomicU64,
    written: AtomicU64,
}

impl Counters {
    const fn new() -> Self {
        Counters {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            written: AtomicU64::new(0),
        }
    }
    fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
        }
    }
}

static GLOBAL: Counters = Counters::new();

/// The counts of every cache layer of this process since it started (what
/// the `embed` CLI reports in its summary).
pub fn global_stats() -> CacheStats {
    GLOBAL.snapshot()
}

fn add(field: impl Fn(&Counters) -> &AtomicU64, local: &Counters, n: u64) {
    if n > 0 {
        field(local).fetch_add(n, Ordering::Relaxed);
        field(&GLOBAL).fetch_add(n, Ordering::Relaxed);
    }
}

/// A row computed by a leader, or `None` while it is in flight; a dropped
/// sender (the leader failed or was cancelled) lets followers embed it themselves.
type Flight = watch::Receiver<Option<Bytes>>;

/// The cache layer (DESIGN.md §3, §9): each input's row is looked up by its
/// [`Key`]; only the misses go to the inner embedder, in input order, and
/// their rows are written back. Identical texts in one call, and identical
/// misses of concurrent calls, are embedded once. A failing or slow store
/// degrades the call to uncached (counted in `cache_errors`, one warning per
/// outage), unless [`strict`](CacheLayer::strict).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use embeddings_cache::{CacheLayer, MemoryStore};
/// use embeddings_core::Embedder;
/// use embeddings_mock::MockEmbedder;
///
/// let mock = Arc::new(MockEmbedder::new("mock", 8).unwrap());
/// let cached = CacheLayer::memory(mock, MemoryStore::new(1 << 20, None));
/// let first = cached.embed_documents(&["a", "b"]).await.unwrap();
/// let again = cached.embed_documents(&["b", "a"]).await.unwrap();
/// assert_eq!(again.row(0), first.row(1));
/// assert_eq!(again.usage().unwrap().cached_rows, 2);
/// assert_eq!(cached.stats().hits, 2);
/// # });
/// ```
pub struct CacheLayer {
    inner: Arc<dyn Embedder>,
    front: Option<MemoryStore>,
    store: Option<Arc<dyn Store>>,
    strict: bool,
    timeout: Duration,
    spaces: Mutex<Vec<Space>>,
    inflight: Mutex<HashMap<Key, Flight>>,
    counters: Counters,
    degraded: AtomicBool,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("inner", &self.inner)
            .field("front", &self.front.as_ref().map(MemoryStore::max_bytes))
            .field("store", &self.store)
            .field("strict", &self.strict)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl CacheLayer {
    /// `inner` with a cache in `store`.
    pub fn new(inner: Arc<dyn Embedder>, store: Arc<dyn Store>) -> CacheLayer {
        CacheLayer::build(inner, None, Some(store))
    }

    /// `inner` with a cache in process memory only (no fallible store).
    pub fn memory(inner: Arc<dyn Embedder>, store: MemoryStore) -> CacheLayer {
        CacheLayer::build(inner, Some(store), None)
    }

    fn build(
        inner: Arc<dyn Embedder>,
        front: Option<MemoryStore>,
        store: Option<Arc<dyn Store>>,
    ) -> CacheLayer {
        CacheLayer {
            inner,
            front,
            store,
            strict: false,
            timeout: DEFAULT_TIMEOUT,
            spaces: Mutex::new(Vec::new()),
            inflight: Mutex::new(HashMap::new()),
            counters: Counters::new(),
            degraded: AtomicBool::new(false),
        }
    }

    /// Puts a memory tier in front of the store: looked up first, filled
    /// from the store's hits and from new rows.
    pub fn with_front(mut self, front: MemoryStore) -> CacheLayer {
        self.front = Some(front);
        self
    }

    /// Whether a store failure fails the call (default `false`: the call
    /// goes on uncached).
    pub fn strict(mut self, strict: bool) -> CacheLayer {
        self.strict = strict;
        self
    }

    /// The deadline of one store operation (default 2 s); past it the
    /// operation counts as failed.
    pub fn timeout(mut self, timeout: Duration) -> CacheLayer {
        self.timeout = timeout;
        self
    }

    /// This layer's counts.
    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot()
    }

    /// The store behind the memory tier, if any.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    fn space(&self, dim: usize, output: OutputType) -> Space {
        // The fingerprint is read on every call: a provider may change it
        // after discovery (Ollama's switch to its legacy endpoint).
        let info = self.inner.info();
        let mut spaces = self.spaces.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = spaces.iter().find(|s| {
            s.dimension() == dim
                && s.output_type() == output
                && info.has_fingerprint(s.fingerprint())
        }) {
            return s.clone();
        }
        let s = Space::from_parts(&info.fingerprint(), &info.model, dim, output);
        spaces.push(s.clone());
        s
    }

    /// Runs a store operation under the deadline.
    async fn guarded<T>(
        &self,
        store: &dyn Store,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(v)) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(store = store.name(), "cache store answers again");
                }
                Ok(v)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "cache store {}: no answer within {:?}",
                    store.name(),
                    self.timeout
                ),
            )
            .with_retryable(false)),
        }
    }

    /// Counts a store failure and warns once per outage; the error back when strict.
    fn failed(&self, store: &dyn Store, e: Error) -> Result<()> {
        add(|c| &c.errors, &self.counters, 1);
        metrics::counter!(METRIC_ERRORS, "store" => store.name()).increment(1);
        if self.strict {
            return Err(e);
        }
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                store = store.name(),
                error = %e,
                "cache store failed; calls go on uncached until it answers again"
            );
        }
        Ok(())
    }

    fn count(&self, hits: u64, misses: u64, coalesced: u64) {
        let name = self.store.as_ref().map_or("memory", |s| s.name());
        add(|c| &c.hits, &self.counters, hits);
        add(|c| &c.misses, &self.counters, misses);
        add(|c| &c.coalesced, &self.counters, coalesced);
        if hits > 0 {
            metrics::counter!(METRIC_HITS, "store" => name).increment(hits);
        }
        if misses > 0 {
            metrics::counter!(METRIC_MISSES, "store" => name).increment(misses);
        }
    }

    /// Embeds `inputs[idx]` for every `idx` of `which` in one inner call.
    async fn embed_rows(
        &self,
        request: &EmbedRequest<'_>,
        which: &[usize],
        dim: usize,
    ) -> Result<Embeddings> {
        let texts: Vec<&str> = which.iter().map(|&i| request.inputs[i]).collect();
        let counts: Option<Vec<usize>> = request
            .token_counts
            .map(|c| which.iter().map(|&i| c[i]).collect());
        let mut sub = request.with_inputs(&texts);
        if let Some(c) = &counts {
            sub = sub.with_token_counts(c);
        }
        let got = self.inner.embed(sub).await.map_err(|e| match e.inputs() {
            Some(r) if r.start < r.end && r.end <= which.len() => {
                let lo = which[r.start..r.end].iter().min().copied().unwrap_or(0);
                let hi = which[r.start..r.end].iter().max().copied().unwrap_or(0);
                e.with_inputs(lo..hi + 1)
            }
            _ => e,
        })?;
        if got.len() != texts.len() || got.output_type() != request.output_type {
            return Err(Error::invalid_response(format!(
                "the embedder under the cache answered {} {} rows for {} {} inputs",
                got.len(),
                got.output_type(),
                texts.len(),
                request.output_type
            )));
        }
        if got.dim() != dim {
            return Err(Error::new(
                ErrorKind::DimensionMismatch,
                format!(
                    "the embedder under the cache answered rows of dimension {} where it announced {dim}",
                    got.dim()
                ),
            ));
        }
        Ok(got)
    }

    async fn write_back(
        &self,
        space: &Space,
        keys: &[Key],
        rows: &[Bytes],
        store_ok: bool,
    ) -> Result<()> {
        if let Some(front) = &self.front {
            for (k, r) in keys.iter().zip(rows) {
                front.put_one(*k, r.clone());
            }
        }
        match &self.store {
            Some(store) if store_ok && !keys.is_empty() => {
                match self.guarded(&**store, store.put(space, keys, rows)).await {
                    Ok(()) => {
                        add(|c| &c.written, &self.counters, keys.len() as u64);
                        Ok(())
                    }
                    Err(e) => self.failed(&**store, e),
                }
            }
            _ => {
                if self.store.is_none() {
                    add(|c| &c.written, &self.counters, keys.len() as u64);
                }
                Ok(())
            }
        }
    }

    async fn embed_cached(&self, request: EmbedRequest<'_>, dim: usize) -> Result<Embeddings> {
        let n = request.inputs.len();
        let output = request.output_type;
        let space = self.space(dim, output);
        let keys: Vec<Key> = request
            .inputs
            .iter()
            .map(|t| space.key(request.input_type, t))
            .collect();
        // 1. The memory tier.
        let mut found: Vec<Option<Bytes>> = match &self.front {
            Some(front) => keys.iter().map(|k| front.get_one(&space, k)).collect(),
            None => vec![None; n],
        };
        let mut missing: Vec<usize> = (0..n).filter(|&i| found[i].is_none()).collect();

        // 2. The store.
        let mut store_ok = true;
        if let (Some(store), false) = (&self.store, missing.is_empty()) {
            let ks: Vec<Key> = missing.iter().map(|&i| keys[i]).collect();
            match self.guarded(&**store, store.get(&space, &ks)).await {
                Ok(rows) if rows.len() == ks.len() => {
                    let mut still = Vec::new();
                    for (&i, row) in missing.iter().zip(rows) {
                        match row {
                            Some(row) if row.len() == space.row_bytes() => {
                                if let Some(front) = &self.front {
                                    front.put_one(keys[i], row.clone());
                                }
                                found[i] = Some(row);
                            }
                            _ => still.push(i),
                        }
                    }
                    missing = still;
                }
                Ok(rows) => {
                    let e = Error::new(
                        ErrorKind::Internal,
                        format!(
                            "cache store {} answered {} rows for {} keys",
                            store.name(),
                            rows.len(),
                            ks.len()
                        ),
                    );
                    self.failed(&**store, e)?;
                    store_ok = false;
                }
                Err(e) => {
                    self.failed(&**store, e)?;
                    store_ok = false;
                }
            }
        }
        let hits = (n - missing.len()) as u64;
        if missing.is_empty() {
            // Every row cached: one pass into a fresh buffer.
            let mut out = from_rows(output, dim, &found)?;
            self.count(hits, 0, 0);
            out.set_usage(Some(Usage {
                cached_rows: n as u64,
                ..Usage::default()
            }));
            return Ok(out);
        }
        let mut out = Embeddings::zeroed_of(output, n, dim);
        for (i, row) in found.iter().enumerate() {
            if let Some(row) = row {
                write_row(&mut out, i, row);
            }
        }
        drop(found);

        // 3. The misses: one entry per distinct key, in input order.
        let mut slot: HashMap<Key, usize> = HashMap::with_capacity(missing.len());
        let mut uniq: Vec<(Key, Vec<usize>)> = Vec::with_capacity(missing.len());
        for &i in &missing {
            match slot.entry(keys[i]) {
                Entry::Occupied(o) => uniq[*o.get()].1.push(i),
                Entry::Vacant(v) => {
                    v.insert(uniq.len());
                    uniq.push((keys[i], vec![i]));
                }
            }
        }
        drop(slot);
        let in_call_dupes = (missing.len() - uniq.len()) as u64;

        // 4. Single flight: lead the keys no other call is embedding, follow the others.
        let mut lead: Vec<usize> = Vec::new();
        let mut senders: Vec<watch::Sender<Option<Bytes>>> = Vec::new();
        let mut follow: Vec<(usize, Flight)> = Vec::new();
        {
            let mut map = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
            for (u, (k, _)) in uniq.iter().enumerate() {
                match map.get(k) {
                    Some(rx) => follow.push((u, rx.clone())),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        map.insert(*k, rx);
                        senders.push(tx);
                        lead.push(u);
                    }
                }
            }
        }
        let flights = FlightGuard {
            layer: self,
            keys: lead.iter().map(|&u| uniq[u].0).collect(),
        };

        let mut usage = Usage::default();
        let mut rate_limits = None;
        if !lead.is_empty() {
            let which: Vec<usize> = lead.iter().map(|&u| uniq[u].1[0]).collect();
            let got = self.embed_rows(&request, &which, dim).await?;
            if let Some(u) = got.usage() {
                usage.add(u);
            }
            rate_limits = got.rate_limits().copied();
            let mut rows = Vec::with_capacity(lead.len());
            for (j, &u) in lead.iter().enumerate() {
                let r = got.row_ref(j);
                for &i in &uniq[u].1 {
                    write_row_ref(&mut out, i, r);
                }
                rows.push(Bytes::from(got.row_bytes(j).into_owned()));
            }
            for (tx, row) in senders.iter().zip(&rows) {
                tx.send_replace(Some(row.clone()));
            }
            let lead_keys: Vec<Key> = lead.iter().map(|&u| uniq[u].0).collect();
            let written = self.write_back(&space, &lead_keys, &rows, store_ok).await;
            drop(flights);
            written?;
        } else {
            drop(flights);
        }

        // 5. The keys another call was embedding.
        let mut coalesced = 0u64;
        let mut fallback: Vec<usize> = Vec::new();
        for (u, mut rx) in follow {
            let row = match rx.wait_for(Option::is_some).await {
                Ok(v) => v.clone(),
                Err(_) => None,
            };
            match row {
                Some(row) if row.len() == space.row_bytes() => {
                    for &i in &uniq[u].1 {
                        write_row(&mut out, i, &row);
                    }
                    coalesced += uniq[u].1.len() as u64;
                }
                _ => fallback.push(u),
            }
        }
        if !fallback.is_empty() {
            // Their leader failed or was cancelled: embed them here.
            let which: Vec<usize> = fallback.iter().map(|&u| uniq[u].1[0]).collect();
            let got = self.embed_rows(&request, &which, dim).await?;
            if let Some(u) = got.usage() {
                usage.add(u);
            }
            let mut rows = Vec::with_capacity(fallback.len());
            for (j, &u) in fallback.iter().enumerate() {
                let r = got.row_ref(j);
                for &i in &uniq[u].1 {
                    write_row_ref(&mut out, i, r);
                }
                rows.push(Bytes::from(got.row_bytes(j).into_owned()));
            }
            let ks: Vec<Key> = fallback.iter().map(|&u| uniq[u].0).collect();
            self.write_back(&space, &ks, &rows, store_ok).await?;
        }

        self.count(hits, missing.len() as u64, coalesced + in_call_dupes);
        usage.cached_rows = hits + coalesced;
        out.set_usage(Some(usage));
        out.set_rate_limits(rate_limits);
        Ok(out)
    }
}

/// Removes a call's in-flight keys when it is done, fails or is dropped.
struct FlightGuard<'a> {
    layer: &'a CacheLayer,
    keys: Vec<Key>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let mut map = self
            .layer
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for k in &self.keys {
            map.remove(k);
        }
    }
}

/// A result made of cached rows (every one present, of the space's size).
fn from_rows(output: OutputType, dim: usize, rows: &[Option<Bytes>]) -> Result<Embeddings> {
    let row_len = output.row_len(dim);
    let all = rows.iter().flatten();
    match output {
        OutputType::F32 => {
            let mut v: Vec<f32> = Vec::with_capacity(rows.len() * row_len);
            for r in all {
                embeddings_core::extend_f32_from_le_bytes(&mut v, r);
            }
            Embeddings::from_flat(v, dim)
        }
        OutputType::Int8 | OutputType::Binary => {
            let mut v: Vec<i8> = Vec::with_capacity(rows.len() * row_len);
            for r in all {
                v.extend(r.iter().map(|&b| b as i8));
            }
            Embeddings::from_i8(v, dim, output)
        }
        _ => {
            let mut v: Vec<u8> = Vec::with_capacity(rows.len() * row_len);
            for r in all {
                v.extend_from_slice(r);
            }
            Embeddings::from_u8(v, dim, output)
        }
    }
}

/// Writes little-endian row bytes into row `i` (lengths already checked).
fn write_row(out: &mut Embeddings, i: usize, bytes: &[u8]) {
    let n = out.row_len();
    match out.output_type() {
        OutputType::F32 => embeddings_core::f32_from_le_bytes(out.row_mut(i), bytes),
        _ => {
            if let Some(buf) = out.as_u8_mut() {
                if let Some(dst) = buf.get_mut(i * n..(i + 1) * n) {
                    for (d, &b) in dst.iter_mut().zip(bytes) {
                        *d = b;
                    }
                }
            } else if let Some(buf) = out.as_i8_mut() {
                if let Some(dst) = buf.get_mut(i * n..(i + 1) * n) {
                    for (d, &b) in dst.iter_mut().zip(bytes) {
                        *d = b as i8;
                    }
                }
            }
        }
    }
}

/// Copies a row of the inner answer into row `i`.
fn write_row_ref(out: &mut Embeddings, i: usize, row: RowRef<'_>) {
    let n = out.row_len();
    match row {
        RowRef::F32(r) => {
            if out.output_type() == OutputType::F32 {
                out.row_mut(i).copy_from_slice(r);
            }
        }
        RowRef::I8(r) => {
            if let Some(dst) = out.as_i8_mut().and_then(|b| b.get_mut(i * n..(i + 1) * n)) {
                dst.copy_from_slice(r);
            }
        }
        RowRef::U8(r) => {
            if let Some(dst) = out.as_u8_mut().and_then(|b| b.get_mut(i * n..(i + 1) * n)) {
                dst.copy_from_slice(r);
            }
        }
    }
}

#[async_trait]
impl Wrapper for CacheLayer {
    fn inner(&self) -> &dyn Embedder {
        &*self.inner
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        if request.inputs.is_empty() {
            return self.inner.embed(request).await;
        }
        let mut dim = self.inner.dimension();
        if dim == 0 && self.inner.prepare().await.is_ok() {
            dim = self.inner.dimension();
        }
        if dim == 0 {
            // The dimension is part of the key: unknown, the call is not cached.
            return self.inner.embed(request).await;
        }
        self.embed_cached(request, dim).await
    }
}
