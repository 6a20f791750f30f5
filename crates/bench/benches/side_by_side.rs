//! This library side by side with async-openai on the same job (issue 12):
//! 20,000 short texts, `text-embedding-3-small` (1536 dimensions), against
//! the project's fake server (two worker threads) in a process of its own.
//! Each client runs in a process of its own too (the bench runs itself
//! once per client with `SIDE_BY_SIDE_ONLY` set, and once more as the
//! server; set `SIDE_BY_SIDE_ONLY` yourself to run one client), on a
//! current-thread runtime in its main thread: client CPU is that thread's
//! CPU time, peak allocation the high-water mark of the bytes it holds
//! (`PeakAlloc`), peak RSS the process's `VmHWM` over all its rounds.
//!
//! ```text
//! cargo bench -p embeddings-bench --bench side_by_side
//! SIDE_BY_SIDE_ROUNDS=5 cargo bench -p embeddings-bench --bench side_by_side
//! SIDE_BY_SIDE_ONLY=ours/base64 cargo bench -p embeddings-bench --bench side_by_side
//! SIDE_BY_SIDE_CONCURRENCY=4 cargo bench -p embeddings-bench --bench side_by_side
//! ```
//!
//! Prints the median over the rounds (3 by default, after one warm-up) of
//! client CPU per 10k rows, wall time and peak allocation, and the peak
//! RSS, for: this library through `EmbedderBuilder` (base64 and floats),
//! async-openai's `create_base64` and `create` in the sequential loop of
//! 2048 inputs a new user writes; then the same job with 50 ms of server
//! latency per request, for the wall time (ours sends sub-batches
//! concurrently).

use std::time::{Duration, Instant};

use async_openai::config::OpenAIConfig;
use async_openai::types::embeddings::{CreateEmbeddingRequestArgs, EncodingFormat};
use cpu_time::ThreadTime;
use embeddings::{Embedder, EmbedderBuilder};
use embeddings_bench::alloc::{PeakAlloc, peak, reset_peak, track_this_thread};
use embeddings_testkit::{
    FakeServer, FakeServerConfig, Fault, FaultAction, Latency, ServerRuntime,
};

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

const ROWS: usize = 20_000;
const DIM: usize = 1536;
const MODEL: &str = "text-embedding-3-small";
/// What an async-openai user sends per request (OpenAI's limit).
const PEER_BATCH: usize = 2048;

/// 20k short texts of 5–15 words.
fn texts() -> Vec<String> {
    const WORDS: [&str; 12] = [
        "search",
        "vector",
        "index",
        "rust",
        "query",
        "document",
        "passage",
        "model",
        "token",
        "embedding",
        "cluster",
        "server",
    ];
    (0..ROWS)
        .map(|i| {
            let n = 5 + i % 11;
            let mut s = format!("text {i}");
            for w in 0..n - 1 {
                s.push(' ');
                s.push_str(WORDS[(i * 7 + w * 3) % WORDS.len()]);
            }
            s
        })
        .collect()
}

/// What one run measured.
#[derive(Clone, Copy)]
struct Run {
    cpu: Duration,
    wall: Duration,
    peak_bytes: u64,
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Runs `job` `rounds + 1` times (the first warms connections and lazy
/// state up) and returns the medians.
fn measure<'a>(
    rt: &tokio::runtime::Runtime,
    rounds: usize,
    mut job: impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = usize> + 'a>>,
) -> Run {
    let mut runs = Vec::new();
    for round in 0..=rounds {
        let base = reset_peak();
        let (c0, w0) = (ThreadTime::now(), Instant::now());
        let rows = rt.block_on(job());
        let (cpu, wall) = (c0.elapsed(), w0.elapsed());
        assert_eq!(rows, ROWS * DIM, "every client returns every value");
        if round > 0 {
            runs.push(Run {
                cpu,
                wall,
                peak_bytes: peak() - base,
            });
        }
    }
    Run {
        cpu: median(runs.iter().map(|r| r.cpu).collect()),
        wall: median(runs.iter().map(|r| r.wall).collect()),
        peak_bytes: median(runs.iter().map(|r| r.peak_bytes).collect()),
    }
}

/// Whether `name` is selected by `SIDE_BY_SIDE_ONLY` (a substring; all when unset).
fn selected(name: &str) -> bool {
    std::env::var("SIDE_BY_SIDE_ONLY").map_or(true, |f| name.contains(&f))
}

fn report(name: &str, r: Run) {
    println!(
        "side_by_side/{name}: client CPU {:.3} s / 10k rows, wall {:.3} s, peak allocation {:.0} MB",
        r.cpu.as_secs_f64() * 10_000.0 / ROWS as f64,
        r.wall.as_secs_f64(),
        r.peak_bytes as f64 / 1e6,
    );
}

/// Our embedder as a new user builds it; `SIDE_BY_SIDE_CONCURRENCY` sets
/// `batch.concurrency` (default: the provider's, 16 for OpenAI).
fn ours(url: &str, encoding: &str) -> std::sync::Arc<dyn Embedder> {
    let mut builder = EmbedderBuilder::new("openai");
    if let Some(n) = std::env::var("SIDE_BY_SIDE_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        builder = builder.concurrency(n);
    }
    builder
        .base_url(url)
        .model(MODEL)
        .api_key("sk-bench-not-a-key")
        .provider_section("openai", serde_json::json!({ "encoding_format": encoding }))
        .build()
        .expect("our embedder")
}

fn peer(url: &str) -> async_openai::Client<OpenAIConfig> {
    async_openai::Client::with_config(
        OpenAIConfig::new()
            .with_api_base(url)
            .with_api_key("sk-bench-not-a-key"),
    )
}

/// async-openai as its README shows it: one request per 2048 inputs, one
/// after the other, base64 decoded with its own `From` into `Vec<f32>`.
async fn peer_base64(client: &async_openai::Client<OpenAIConfig>, texts: &[String]) -> usize {
    let mut out: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(PEER_BATCH) {
        let request = CreateEmbeddingRequestArgs::default()
            .model(MODEL)
            .input(chunk.to_vec())
            .encoding_format(EncodingFormat::Base64)
            .build()
            .expect("request");
        let response = client
            .embeddings()
            .create_base64(request)
            .await
            .expect("async-openai create_base64");
        out.extend(
            response
                .data
                .into_iter()
                .map(|d| Vec::<f32>::from(d.embedding)),
        );
    }
    out.iter().map(Vec::len).sum()
}

/// async-openai's default: floats.
async fn peer_float(client: &async_openai::Client<OpenAIConfig>, texts: &[String]) -> usize {
    let mut out: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(PEER_BATCH) {
        let request = CreateEmbeddingRequestArgs::default()
            .model(MODEL)
            .input(chunk.to_vec())
            .build()
            .expect("request");
        let response = client
            .embeddings()
            .create(request)
            .await
            .expect("async-openai create");
        out.extend(response.data.into_iter().map(|d| d.embedding));
    }
    out.iter().map(Vec::len).sum()
}

/// The clients, each measured in a process of its own (so that one
/// client's heap, left by another, does not make its allocations cheaper).
const CLIENTS: [&str; 5] = [
    "ours/base64",
    "ours/float",
    "async-openai/create_base64",
    "async-openai/create_float",
    "latency50ms",
];

fn main() {
    if std::env::var_os("SIDE_BY_SIDE_ONLY").is_none() {
        let exe = std::env::current_exe().expect("the bench's own path");
        for client in CLIENTS {
            let status = std::process::Command::new(&exe)
                .args(std::env::args_os().skip(1))
                .env("SIDE_BY_SIDE_ONLY", client)
                .status()
                .expect("run one client");
            assert!(status.success(), "{client}: {status}");
        }
        return;
    }
    if std::env::var_os("SIDE_BY_SIDE_SERVER").is_some() {
        serve();
        return;
    }
    let rounds: usize = std::env::var("SIDE_BY_SIDE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    // The servers: a process of their own, so that this process's peak
    // RSS is the client's.
    let mut server = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env("SIDE_BY_SIDE_SERVER", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the server process");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().expect("server stdout")),
        &mut line,
    )
    .expect("the server's addresses");
    let mut urls = line.split_whitespace().map(str::to_owned);
    let (fast_url, slow_url) = match (urls.next(), urls.next()) {
        (Some(f), Some(s)) => (f, s),
        _ => panic!("the server printed {line:?}"),
    };

    track_this_thread();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();

    let url = fast_url;
    for encoding in ["base64", "float"] {
        let name = format!("ours/{encoding}");
        if selected(&name) {
            let e = ours(&url, encoding);
            let r = measure(&rt, rounds, || {
                Box::pin(async {
                    e.embed_documents(&refs)
                        .await
                        .expect("embed")
                        .as_flat()
                        .len()
                })
            });
            report(&name, r);
        }
    }
    let client = peer(&url);
    if selected("async-openai/create_base64") {
        let r = measure(&rt, rounds, || Box::pin(peer_base64(&client, &texts)));
        report("async-openai/create_base64", r);
    }
    if selected("async-openai/create_float") {
        let r = measure(&rt, rounds, || Box::pin(peer_float(&client, &texts)));
        report("async-openai/create_float", r);
    }

    // 50 ms per request: wall time.
    if selected("latency50ms") {
        let url = slow_url;
        let e = ours(&url, "base64");
        let r = measure(&rt, rounds, || {
            Box::pin(async {
                e.embed_documents(&refs)
                    .await
                    .expect("embed")
                    .as_flat()
                    .len()
            })
        });
        report("latency50ms/ours/base64", r);
        let client = peer(&url);
        let p = measure(&rt, rounds, || Box::pin(peer_base64(&client, &texts)));
        report("latency50ms/async-openai/create_base64", p);
        println!(
            "side_by_side/latency50ms: wall ours / async-openai = {:.2}",
            r.wall.as_secs_f64() / p.wall.as_secs_f64()
        );
    }
    println!(
        "side_by_side/{}: peak RSS of the client process {:.0} MB",
        std::env::var("SIDE_BY_SIDE_ONLY").unwrap_or_default(),
        peak_rss() as f64 / 1e6
    );
    drop(server.stdin.take());
    let _ = server.wait();
}

/// The server process: the fake server (2 worker threads) without and
/// with 50 ms of latency per request; prints both OpenAI base URLs on one
/// line and serves until its standard input closes.
fn serve() {
    let server_rt = ServerRuntime::with_workers(2);
    let start = |faults: Vec<Fault>| {
        FakeServer::start_on(
            &server_rt,
            FakeServerConfig {
                request_log_limit: Some(0),
                faults,
                ..FakeServerConfig::default()
            },
        )
        .expect("fake server")
    };
    let fast = start(Vec::new());
    let slow = start(vec![Fault::new(FaultAction::Latency(Latency::Fixed(
        Duration::from_millis(50),
    )))]);
    println!("{} {}", fast.openai_base_url(), slow.openai_base_url());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
}

/// This process's peak resident set (`VmHWM`), in bytes; 0 where unknown.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
