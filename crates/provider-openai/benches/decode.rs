//! Response decoding: one 1536-dim row and a batch of 256, base64 vs JSON
//! floats, against `serde_json::from_slice::<Vec<f32>>` of the bare array.
//!
//! `cargo bench -p embeddings-openai --bench decode -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use embeddings_openai::decode::{
    EmbeddingRequest, EncodingFormat, decode_response, encode_request,
};

const DIM: usize = 1536;

fn vectors(rows: usize) -> Vec<Vec<f32>> {
    (0..rows)
        .map(|i| embeddings_mock::vector("text-embedding-3-small", &format!("text {i}"), DIM))
        .collect()
}

fn body_base64(vs: &[Vec<f32>]) -> Vec<u8> {
    let items: Vec<String> = vs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            format!(
                r#"{{"object":"embedding","index":{i},"embedding":"{}"}}"#,
                STANDARD.encode(bytes)
            )
        })
        .collect();
    envelope(&items)
}

/// `wide`: numbers printed as f64 (17 digits, like Python servers and OpenAI);
/// otherwise the shortest f32 text (like serde_json and the fake server).
fn body_float(vs: &[Vec<f32>], wide: bool) -> Vec<u8> {
    let items: Vec<String> = vs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let arr = if wide {
                let w: Vec<f64> = v.iter().map(|x| f64::from(*x)).collect();
                serde_json::to_string(&w).unwrap()
            } else {
                serde_json::to_string(v).unwrap()
            };
            format!(r#"{{"object":"embedding","index":{i},"embedding":{arr}}}"#)
        })
        .collect();
    envelope(&items)
}

fn envelope(items: &[String]) -> Vec<u8> {
    format!(
        r#"{{"object":"list","data":[{}],"model":"text-embedding-3-small","usage":{{"prompt_tokens":5,"total_tokens":5}}}}"#,
        items.join(",")
    )
    .into_bytes()
}

fn bench_decode(c: &mut Criterion) {
    for rows in [1usize, 256] {
        let vs = vectors(rows);
        let mut g = c.benchmark_group(format!("decode_{DIM}d_x{rows}"));
        g.throughput(Throughput::Elements(rows as u64));
        let b64 = body_base64(&vs);
        let f32s = body_float(&vs, false);
        let f64s = body_float(&vs, true);
        g.bench_function("base64", |b| {
            b.iter(|| decode_response(black_box(&b64), rows, DIM).unwrap())
        });
        g.bench_function("float", |b| {
            b.iter(|| decode_response(black_box(&f32s), rows, DIM).unwrap())
        });
        g.bench_function("float_17_digits", |b| {
            b.iter(|| decode_response(black_box(&f64s), rows, DIM).unwrap())
        });
        if rows == 1 {
            let bare = serde_json::to_vec(&vs[0]).unwrap();
            g.bench_function("serde_json_vec_f32", |b| {
                b.iter(|| serde_json::from_slice::<Vec<f32>>(black_box(&bare)).unwrap())
            });
            let wide: Vec<f64> = vs[0].iter().map(|x| f64::from(*x)).collect();
            let bare = serde_json::to_vec(&wide).unwrap();
            g.bench_function("serde_json_vec_f32_17_digits", |b| {
                b.iter(|| serde_json::from_slice::<Vec<f32>>(black_box(&bare)).unwrap())
            });
        }
        g.finish();
    }
}

fn bench_encode(c: &mut Criterion) {
    let texts: Vec<String> = (0..2048)
        .map(|i| format!("document {i}: the quick brown fox jumps over the lazy dog"))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut g = c.benchmark_group("encode_request");
    for n in [1usize, 2048] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &refs[..n], |b, input| {
            b.iter(|| {
                encode_request(black_box(&EmbeddingRequest {
                    model: "text-embedding-3-small",
                    input,
                    encoding_format: EncodingFormat::Base64,
                    dimensions: None,
                    user: None,
                }))
                .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_decode, bench_encode);
criterion_main!(benches, rows);

/// The row decoders alone, without the response envelope.
fn bench_rows(c: &mut Criterion) {
    let vs = vectors(1);
    let mut g = c.benchmark_group("row_1536d");
    let arr = serde_json::to_string(&vs[0]).unwrap();
    let mut out = vec![0f32; DIM];
    g.bench_function("float", |b| {
        b.iter(|| embeddings_openai::decode::parse_float_row(black_box(&arr), &mut out).unwrap())
    });
    let bytes: Vec<u8> = vs[0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let s = STANDARD.encode(&bytes);
    let mut scratch = Vec::new();
    g.bench_function("base64", |b| {
        b.iter(|| {
            embeddings_openai::decode::decode_base64_row(black_box(&s), &mut out, &mut scratch)
                .unwrap()
        })
    });
    g.finish();
}
criterion_group!(rows, bench_rows);
