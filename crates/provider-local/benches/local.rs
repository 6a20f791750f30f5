//! Throughput and latency of the `local` provider on all-MiniLM-L6-v2,
//! side by side with benches/st_bench.py (sentence-transformers, same
//! texts, same threads).
//!
//! ```sh
//! EMBEDDINGS_LOCAL_TEST_MODEL=/path/to/model cargo bench -p embeddings-local --bench local
//! LOCAL_THREADS=1 ... # compute threads (default: the machine's cores)
//! ```

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use embeddings_core::Embedder;
use embeddings_local::{LocalEmbedder, LocalSection};

/// The texts both benchmarks use (benches/st_bench.py builds the same).
pub fn short_texts() -> Vec<String> {
    (0..32)
        .map(|i| format!("Sentence number {i} is a short example about everyday things."))
        .collect()
}

/// 32 texts of at least 256 tokens (truncated to the model's 256).
pub fn long_texts() -> Vec<String> {
    let lorem = "The quick brown fox jumps over the lazy dog while the committee debates \
                 the annual budget, the weather turns, and a train leaves the station on time. ";
    (0..32)
        .map(|i| format!("{i} {}", lorem.repeat(15)))
        .collect()
}

fn model_dir() -> PathBuf {
    std::env::var_os("EMBEDDINGS_LOCAL_TEST_MODEL")
        .map(PathBuf::from)
        .expect("set EMBEDDINGS_LOCAL_TEST_MODEL to the all-MiniLM-L6-v2 directory")
}

fn bench(c: &mut Criterion) {
    let threads = std::env::var("LOCAL_THREADS")
        .ok()
        .and_then(|t| t.parse().ok());
    let section = LocalSection {
        threads,
        ..Default::default()
    };
    let e = LocalEmbedder::from_dir(model_dir(), &section).expect("model");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(e.prepare()).unwrap();
    let short = short_texts();
    let short: Vec<&str> = short.iter().map(String::as_str).collect();
    let long = long_texts();
    let long: Vec<&str> = long.iter().map(String::as_str).collect();
    assert!(long.iter().all(|t| e.count_tokens(t) > 256));

    let mut g = c.benchmark_group("local");
    g.sample_size(20);
    g.bench_function("single_sentence", |b| {
        b.iter(|| {
            rt.block_on(e.embed_query(black_box("A man is playing a guitar.")))
                .unwrap()
        })
    });
    g.bench_function("batch32_short", |b| {
        b.iter(|| rt.block_on(e.embed_documents(black_box(&short))).unwrap())
    });
    g.sample_size(10);
    g.bench_function("batch32_256tokens", |b| {
        b.iter(|| rt.block_on(e.embed_documents(black_box(&long))).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
