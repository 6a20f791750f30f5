//! Load against the in-process fake OpenAI server (embeddings-testkit),
//! through the facade (`embeddings::from_config`, provider `openai`, the
//! default layers with the in-flight limit lifted so that N tasks really
//! have N requests in flight):
//!
//! * `load/concurrent_users/{1,8,64,512}`: N tasks (spawned on a
//!   multi-thread runtime, so they really run concurrently) each send one
//!   `embed_query`; one criterion iteration is one such round.
//! * `load/sustained/64x8`: 64 users each sending 8 requests back to back
//!   (512 requests a round, closed loop).
//! * `load/burst/512`: after 20 ms of idleness (not timed), 512 requests at
//!   once.
//!
//! Criterion reports the time per round and the throughput in requests per
//! second; after each bench the latency percentiles of every request it sent
//! (warm-up included) are printed: `p50`, `p95`, `p99`, `max`.
//!
//! Not gated by instruction counts (networking and scheduling are not
//! deterministic); `cargo xtask bench-check --time` compares their medians on
//! a quiet machine. The fake server and the client share the machine: these
//! figures are the library's overhead plus loopback HTTP, not a provider's.
//!
//! ```text
//! cargo bench -p embeddings-bench --bench load -- --warm-up-time 1 --measurement-time 3
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use embeddings::{Config, Embedder};
use embeddings_testkit::{FakeServer, FakeServerConfig, ServerRuntime};

/// Every request's latency, in microseconds.
#[derive(Debug, Default, Clone)]
struct Latencies(Arc<Mutex<Vec<u64>>>);

impl Latencies {
    fn record(&self, d: Duration) {
        self.0.lock().unwrap().push(d.as_micros() as u64);
    }

    fn report(&self, id: &str) {
        let mut v = std::mem::take(&mut *self.0.lock().unwrap());
        if v.is_empty() {
            return;
        }
        v.sort_unstable();
        let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        println!(
            "{id:<32} latency over {} requests: p50 {} µs, p95 {} µs, p99 {} µs, max {} µs",
            v.len(),
            p(0.50),
            p(0.95),
            p(0.99),
            v[v.len() - 1]
        );
    }
}

struct Setup {
    _server_rt: ServerRuntime,
    _server: FakeServer,
    rt: tokio::runtime::Runtime,
    embedder: Arc<dyn Embedder>,
}

fn setup() -> Setup {
    let server_rt = ServerRuntime::new();
    let server = FakeServer::start_on(
        &server_rt,
        FakeServerConfig {
            request_log_limit: Some(0),
            ..FakeServerConfig::default()
        },
    )
    .expect("the fake server starts");
    let mut config = Config::for_provider("openai");
    config.base_url = Some(server.openai_base_url());
    config.api_key = Some("sk-bench".to_owned().into());
    config.model = Some("text-embedding-3-small".to_owned());
    config.dimensions = Some(256);
    config.concurrency.max_in_flight = None;
    let embedder = embeddings::from_config(&config).expect("the openai provider builds");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    Setup {
        _server_rt: server_rt,
        _server: server,
        rt,
        embedder,
    }
}

/// `users` tasks each sending `per_user` queries back to back; returns when
/// all are done.
async fn round(e: &Arc<dyn Embedder>, users: usize, per_user: usize, lat: &Latencies) {
    let tasks: Vec<_> = (0..users)
        .map(|u| {
            let e = e.clone();
            let lat = lat.clone();
            tokio::spawn(async move {
                for i in 0..per_user {
                    let text = format!("user {u} request {i}: the quick brown fox");
                    let start = Instant::now();
                    e.embed_query(&text).await.expect("the fake server answers");
                    lat.record(start.elapsed());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a load task panicked");
    }
}

fn load(c: &mut Criterion) {
    let s = setup();
    let lat = Latencies::default();
    // Connections are opened before anything is timed.
    s.rt.block_on(round(&s.embedder, 512, 1, &lat));
    lat.0.lock().unwrap().clear();

    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    for users in [1usize, 8, 64, 512] {
        g.throughput(Throughput::Elements(users as u64));
        let id = BenchmarkId::new("concurrent_users", users);
        g.bench_function(id, |b| {
            b.to_async(&s.rt)
                .iter(|| round(&s.embedder, users, 1, &lat))
        });
        lat.report(&format!("load/concurrent_users/{users}"));
    }

    g.throughput(Throughput::Elements(64 * 8));
    g.bench_function("sustained/64x8", |b| {
        b.to_async(&s.rt).iter(|| round(&s.embedder, 64, 8, &lat))
    });
    lat.report("load/sustained/64x8");

    g.throughput(Throughput::Elements(512));
    g.bench_function("burst/512", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                std::thread::sleep(Duration::from_millis(20));
                let start = Instant::now();
                s.rt.block_on(round(&s.embedder, 512, 1, &lat));
                total += start.elapsed();
            }
            total
        })
    });
    lat.report("load/burst/512");
    g.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
