//! Criterion benches of what users of the `embeddings` facade pay for, on the
//! mock provider (no network): registry lookup and build, `embed_query`,
//! `embed_documents`, `dimension()`, and the default layer stack's overhead.
//!
//! Benchmark ids match the instruction-count scenarios of
//! `embeddings_bench::scenarios` where both exist. After each bench of issue
//! 2's targets, the allocations per call are printed (a counting global
//! allocator; one thread, so the count is exact).
//!
//! ```text
//! cargo bench -p embeddings-bench --bench embedder
//! cargo bench -p embeddings-bench --bench embedder -- embed_query --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use embeddings::Embedder;
use embeddings_bench::alloc::{self, CountingAlloc};
use embeddings_bench::fixtures::{self, BATCHES, DIMS, QUERY};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const CALLS: u64 = 100;

/// Prints the allocations per call, next to the target when there is one.
fn print_allocations(id: &str, target: Option<u64>, used: alloc::AllocStats) {
    let per_call = used.allocations as f64 / CALLS as f64;
    let bytes = used.bytes as f64 / CALLS as f64;
    match target {
        Some(t) => println!(
            "{id:<40} allocations per call: {per_call} ({bytes} bytes); target <= {t}: {}",
            if per_call <= t as f64 {
                "met"
            } else {
                "MISSED"
            }
        ),
        None => println!("{id:<40} allocations per call: {per_call} ({bytes} bytes)"),
    }
}

/// Allocations per call of a synchronous `op` (after one warm-up call).
fn report_allocations(id: &str, target: Option<u64>, mut op: impl FnMut()) {
    op();
    let ((), used) = alloc::measure(|| {
        for _ in 0..CALLS {
            op();
        }
    });
    print_allocations(id, target, used);
}

/// Allocations per call of an async `op`, all calls inside one `block_on`
/// (so that the runtime's own per-`block_on` work is not counted).
fn report_async_allocations<F: Future>(
    rt: &tokio::runtime::Runtime,
    id: &str,
    target: Option<u64>,
    mut op: impl FnMut() -> F,
) {
    let used = rt.block_on(async {
        op().await;
        let before = alloc::snapshot();
        for _ in 0..CALLS {
            black_box(op().await);
        }
        alloc::snapshot() - before
    });
    print_allocations(id, target, used);
}

fn registry(c: &mut Criterion) {
    let mut g = c.benchmark_group("registry");
    g.bench_function("find", |b| {
        b.iter(|| embeddings::registry::find(black_box("mock")).ok())
    });
    let config = fixtures::config(256);
    g.bench_function("build/mock", |b| {
        b.iter(|| embeddings::registry::build(black_box(&config)).ok())
    });
    g.finish();
    report_allocations("registry/build/mock", None, || {
        black_box(embeddings::registry::build(&config).ok());
    });

    let mut g = c.benchmark_group("facade");
    g.bench_function("from_config/mock", |b| {
        b.iter(|| embeddings::from_config(black_box(&config)).ok())
    });
    g.finish();
    report_allocations("facade/from_config/mock", None, || {
        black_box(embeddings::from_config(&config).ok());
    });
}

fn dimension(c: &mut Criterion) {
    let mut g = c.benchmark_group("dimension");
    for (label, e) in [
        ("mock", fixtures::bare(256)),
        ("layered", fixtures::layered(256)),
    ] {
        g.bench_function(label, |b| b.iter(|| black_box(&e).dimension()));
    }
    g.finish();
}

fn query(c: &mut Criterion, group: &str, label: &str, make: fn(usize) -> Arc<dyn Embedder>) {
    let rt = fixtures::runtime();
    let mut g = c.benchmark_group(group);
    for dim in DIMS {
        let e = make(dim);
        g.bench_function(BenchmarkId::new(label, dim), |b| {
            b.to_async(&rt)
                .iter(|| async { e.embed_query(black_box(QUERY)).await.unwrap() })
        });
        if dim == 256 {
            report_async_allocations(&rt, &format!("{group}/{label}/{dim}"), Some(2), || {
                e.embed_query(QUERY)
            });
        }
    }
    g.finish();
}

fn documents(c: &mut Criterion, group: &str, label: &str, make: fn(usize) -> Arc<dyn Embedder>) {
    let rt = fixtures::runtime();
    let mut g = c.benchmark_group(group);
    for batch in BATCHES {
        let texts = fixtures::texts(batch);
        let refs = fixtures::refs(&texts);
        g.throughput(Throughput::Elements(batch as u64));
        if batch >= 2048 {
            g.sample_size(10);
        }
        for dim in DIMS {
            let e = make(dim);
            g.bench_function(BenchmarkId::new(label, format!("{batch}x{dim}")), |b| {
                b.to_async(&rt)
                    .iter(|| async { e.embed_documents(black_box(&refs)).await.unwrap() })
            });
            if batch == 5 && dim == 256 {
                report_async_allocations(
                    &rt,
                    &format!("{group}/{label}/{batch}x{dim}"),
                    Some(3),
                    || e.embed_documents(&refs),
                );
            }
        }
    }
    g.finish();
}

fn bare_calls(c: &mut Criterion) {
    query(c, "embed_query", "mock", fixtures::bare);
    documents(c, "embed_documents", "mock", fixtures::bare);
}

/// The same calls through `embeddings::from_config`'s default layer stack;
/// compare with `embed_query/mock/*` and `embed_documents/mock/*`.
fn layered_calls(c: &mut Criterion) {
    query(c, "layers", "embed_query", fixtures::layered);
    documents(c, "layers", "embed_documents", fixtures::layered);
}

criterion_group!(benches, registry, dimension, bare_calls, layered_calls);
criterion_main!(benches);
