//! Layer overhead: the default layer stack, and each layer alone, against
//! the bare mock provider.
//!
//! `cargo bench -p embeddings --bench layers`; the difference between a
//! `stack/*` (or `<layer>/*`) and its `bare/*` median is what the layers (or
//! that one layer) cost per call.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use embeddings::mock::MockEmbedder;
use embeddings::{Config, Embedder, layers};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bare: Arc<dyn Embedder> = Arc::new(MockEmbedder::new("mock", 8).expect("mock"));
    let config = Config::for_provider("mock");
    let stack = layers::apply(bare.clone(), &config).expect("layers");
    // Each layer alone around the bare mock, with the default settings.
    let alone: [(&str, Arc<dyn Embedder>); 6] = [
        (
            "instrument",
            Arc::new(layers::InstrumentLayer::new(bare.clone())),
        ),
        (
            "batch",
            Arc::new(layers::BatchLayer::new(bare.clone(), config.batch.clone())),
        ),
        (
            "retry",
            Arc::new(layers::RetryLayer::new(bare.clone(), config.retry.clone())),
        ),
        (
            "rate_limit",
            Arc::new(layers::RateLimitLayer::new(
                bare.clone(),
                config.rate_limit.clone(),
            )),
        ),
        (
            "concurrency",
            Arc::new(layers::ConcurrencyLayer::new(bare.clone(), 16)),
        ),
        (
            "timeout",
            Arc::new(layers::TimeoutLayer::new(
                bare.clone(),
                std::time::Duration::from_secs(60),
            )),
        ),
    ];
    let docs: Vec<String> = (0..5).map(|i| format!("document number {i}")).collect();
    let docs: Vec<&str> = docs.iter().map(String::as_str).collect();

    let mut g = c.benchmark_group("layers");
    for (name, e) in [("bare", &bare), ("stack", &stack)] {
        g.bench_function(format!("{name}/embed_query"), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(e.embed_query(black_box("hello")).await) })
        });
        g.bench_function(format!("{name}/embed_documents_5"), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(e.embed_documents(black_box(&docs)).await) })
        });
    }
    for (name, e) in &alone {
        g.bench_function(format!("{name}/embed_query"), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(e.embed_query(black_box("hello")).await) })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
