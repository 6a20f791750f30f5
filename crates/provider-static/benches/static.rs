//! The embedded static model: load, one sentence, batches of short texts.
//!
//! ```sh
//! cargo bench -p embeddings-static --features embedded-model --bench static
//! ```
//!
//! Throughput per call of `n` texts is reported as elements/s (texts per
//! second, one core: everything runs on the bench thread).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use embeddings_core::Embedder;
use embeddings_static::StaticEmbedder;

const WORDS: [&str; 24] = [
    "the",
    "quick",
    "search",
    "index",
    "returns",
    "documents",
    "about",
    "rust",
    "async",
    "vectors",
    "for",
    "every",
    "query",
    "in",
    "a",
    "database",
    "of",
    "embeddings",
    "with",
    "low",
    "latency",
    "and",
    "high",
    "recall",
];

/// `n` short texts of 5 to 15 words, deterministic.
fn texts(n: usize) -> Vec<String> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let len = 5 + (next() % 11) as usize;
            (0..len)
                .map(|_| WORDS[(next() % WORDS.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    c.bench_function("static/load_embedded", |b| {
        b.iter(|| black_box(StaticEmbedder::embedded().unwrap()))
    });
    let model = StaticEmbedder::embedded().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    c.bench_function("static/one_sentence", |b| {
        b.iter(|| {
            rt.block_on(model.embed_query(black_box("how do I embed a query in a request path?")))
                .unwrap()
        })
    });
    let mut g = c.benchmark_group("static/short_texts");
    for n in [32usize, 1024] {
        let t = texts(n);
        let refs: Vec<&str> = t.iter().map(String::as_str).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}"), |b| {
            b.iter(|| black_box(model.embed_sync(black_box(&refs)).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
