//! Cache benches (1536-dim f32 rows, the mock under the cache):
//!
//! * `memory_hit/1536`: one input answered from the memory store (key hash,
//!   lookup, copy of 6 KiB into the result);
//! * `memory_hit/100x1536`: a call of 100 hits (divide by 100 for a row);
//! * `disk_rerun/100k`: a 100k-row job already in a disk store, re-run in
//!   calls of 1000 inputs (0 provider requests, checked);
//! * `redis_hits/10k`: 10k rows from a `redis-server` this bench starts on
//!   127.0.0.1, in calls of 500 (one MGET each), one at a time and 4 in
//!   flight (`10k_4_in_flight`); skipped when it is not installed.
//!
//! `cargo bench -p embeddings-cache --bench cache -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use embeddings_cache::{CacheLayer, DiskOptions, DiskStore, FsyncPolicy, MemoryStore, Store};
use embeddings_core::{EmbedRequest, Embedder, Embeddings, Result, Wrapper, async_trait};
use embeddings_mock::MockEmbedder;

const DIM: usize = 1536;

#[derive(Debug)]
struct Counting {
    inner: MockEmbedder,
    requests: AtomicUsize,
}

#[async_trait]
impl Wrapper for Counting {
    fn inner(&self) -> &dyn Embedder {
        &self.inner
    }
    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.embed(request).await
    }
}

fn counting() -> Arc<Counting> {
    Arc::new(Counting {
        inner: MockEmbedder::new("mock", DIM).unwrap(),
        requests: AtomicUsize::new(0),
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("line {i} of a corpus job"))
        .collect()
}

fn memory(c: &mut Criterion) {
    let rt = rt();
    let mock = counting();
    let cached = CacheLayer::memory(mock.clone(), MemoryStore::new(256 << 20, None));
    let t = texts(100);
    let refs: Vec<&str> = t.iter().map(String::as_str).collect();
    rt.block_on(cached.embed_documents(&refs)).unwrap();
    let before = mock.requests.load(Ordering::Relaxed);
    let mut g = c.benchmark_group("memory_hit");
    g.throughput(Throughput::Elements(1));
    let one = [refs[7]];
    g.bench_function("1536", |b| {
        b.iter(|| rt.block_on(cached.embed_documents(&one)).unwrap())
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("100x1536", |b| {
        b.iter(|| rt.block_on(cached.embed_documents(&refs)).unwrap())
    });
    g.finish();
    assert_eq!(mock.requests.load(Ordering::Relaxed), before, "hits only");
}

fn disk(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), DiskOptions::new(None, FsyncPolicy::Never)).unwrap();
    let n = 100_000;
    let t = texts(n);
    let refs: Vec<&str> = t.iter().map(String::as_str).collect();
    {
        let fill = CacheLayer::new(counting(), Arc::new(store.clone()));
        for chunk in refs.chunks(1000) {
            rt.block_on(fill.embed_documents(chunk)).unwrap();
        }
    }
    let mock = counting();
    let cached = CacheLayer::new(mock.clone(), Arc::new(store.clone()));
    let mut g = c.benchmark_group("disk_rerun");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("100k", |b| {
        b.iter(|| {
            rt.block_on(async {
                for chunk in refs.chunks(1000) {
                    let e = cached.embed_documents(chunk).await.unwrap();
                    assert_eq!(e.usage().unwrap().cached_rows, chunk.len() as u64);
                }
            })
        })
    });
    g.finish();
    assert_eq!(
        mock.requests.load(Ordering::Relaxed),
        0,
        "a re-run costs 0 requests"
    );
}

fn redis(c: &mut Criterion) {
    // Skipped (None) when redis-server is not installed; killed on drop.
    let Some(server) = embeddings_testkit::RedisServer::start(&[]) else {
        return;
    };
    let rt = rt();
    let url = server.url();
    let store = embeddings_cache::RedisStore::new(
        &url,
        embeddings_cache::RedisOptions::new("bench", None, Duration::from_secs(5)),
    )
    .unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let n = 10_000;
    let t = texts(n);
    let refs: Vec<&str> = t.iter().map(String::as_str).collect();
    let mock = counting();
    let cached = CacheLayer::new(mock.clone(), store).timeout(Duration::from_secs(5));
    for chunk in refs.chunks(500) {
        rt.block_on(cached.embed_documents(chunk)).unwrap();
    }
    let before = mock.requests.load(Ordering::Relaxed);
    let mut g = c.benchmark_group("redis_hits");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("10k", |b| {
        b.iter(|| {
            rt.block_on(async {
                for chunk in refs.chunks(500) {
                    let e = cached.embed_documents(chunk).await.unwrap();
                    assert_eq!(e.usage().unwrap().cached_rows, chunk.len() as u64);
                }
            })
        })
    });
    // As the CLI runs a job: 4 calls in flight on the one connection.
    g.bench_function("10k_4_in_flight", |b| {
        b.iter(|| {
            rt.block_on(async {
                use futures::StreamExt;
                let mut s = futures::stream::iter(refs.chunks(500))
                    .map(|chunk| cached.embed_documents(chunk))
                    .buffer_unordered(4);
                while let Some(e) = s.next().await {
                    assert_eq!(e.unwrap().usage().unwrap().cached_rows, 500);
                }
            })
        })
    });
    g.finish();
    assert_eq!(mock.requests.load(Ordering::Relaxed), before, "hits only");
}

criterion_group!(benches, memory, disk, redis);
criterion_main!(benches);
