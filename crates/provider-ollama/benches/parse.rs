//! Parsing a 256 × 768 `/api/embed` answer: the streaming parser into one
//! buffer against `serde_json::from_slice` into `Vec<Vec<f32>>`.
//!
//! `cargo bench -p embeddings-ollama --bench parse -- --warm-up-time 1 --measurement-time 3`
//!
//! Throughput is in rows, so criterion's `thrpt` is rows per second and the
//! per-row cost is the median divided by 256.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};

const ROWS: usize = 256;
const DIM: usize = 768;

/// An answer as Ollama writes it: shortest round-trip floats, the usual
/// timing fields around the vectors.
fn body() -> Vec<u8> {
    let rows: Vec<Vec<f32>> = (0..ROWS)
        .map(|i| embeddings_mock::vector("nomic-embed-text", &format!("document {i}"), DIM))
        .collect();
    // Serialised as f32 (shortest round-trip form, as Go writes float32);
    // `serde_json::json!` would widen to f64 and write 17 digits.
    #[derive(Serialize)]
    struct Answer {
        model: &'static str,
        embeddings: Vec<Vec<f32>>,
        total_duration: u64,
        load_duration: u64,
        prompt_eval_count: u64,
    }
    serde_json::to_vec(&Answer {
        model: "nomic-embed-text",
        embeddings: rows,
        total_duration: 14_143_917,
        load_duration: 1_019_500,
        prompt_eval_count: 2048,
    })
    .unwrap()
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Naive {
    embeddings: Vec<Vec<f32>>,
    prompt_eval_count: Option<u64>,
}

fn parse(c: &mut Criterion) {
    let body = body();
    let mut g = c.benchmark_group("ollama_parse_256x768");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("embeddings_buffer", |b| {
        b.iter(|| {
            embeddings_ollama::parse_embed_response(black_box(&body), ROWS, Some(DIM)).unwrap()
        })
    });
    g.bench_function("embeddings_buffer_dim_unknown", |b| {
        b.iter(|| embeddings_ollama::parse_embed_response(black_box(&body), ROWS, None).unwrap())
    });
    g.bench_function("serde_json_vec_vec", |b| {
        b.iter(|| serde_json::from_slice::<Naive>(black_box(&body)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
