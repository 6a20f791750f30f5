//! Throughput of the fake server, client and server in one process on a
//! two-worker tokio runtime (the machine has two cores):
//!
//! * `fake_server/single_input/reqwest_c16_{base64,float}`: single-input
//!   requests (1536 dims) from 16 concurrent reqwest clients over keep-alive
//!   connections (elements = requests). Client and server share the cores.
//! * `fake_server/single_input/raw_c16_base64`: the same with a minimal
//!   HTTP/1.1 client on 16 keep-alive TCP connections, so that what is
//!   measured is mostly the server.
//! * `fake_server/batch_256x1536/{base64,float}`: one client posting 256
//!   inputs to text-embedding-3-small (bytes = response body).
//!
//! `cargo bench -p embeddings-testkit --bench fake_server -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use embeddings_testkit::{FakeServer, FakeServerConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()
        .expect("a reqwest client")
}

const CLIENTS: u64 = 16;

/// Runs `iters` requests over `CLIENTS` tasks; `one(k)` makes client k's future.
async fn spread<F, Fut>(iters: u64, one: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..CLIENTS {
        let n = iters / CLIENTS + u64::from(k < iters % CLIENTS);
        tasks.push(tokio::spawn(one(n)));
    }
    for t in tasks {
        t.await.expect("a client task");
    }
    start.elapsed()
}

/// A minimal keep-alive HTTP/1.1 client: sends `n` requests one after the
/// other on one connection and reads each answer by its content-length.
async fn raw_client(addr: std::net::SocketAddr, request: Arc<Vec<u8>>, n: u64) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    for _ in 0..n {
        stream.write_all(&request).await.expect("write");
        buf.clear();
        let (head, len) = loop {
            let read = stream.read(&mut chunk).await.expect("read");
            assert!(read > 0, "the server closed the connection");
            buf.extend_from_slice(&chunk[..read]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end]).expect("ascii headers");
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .expect("a content-length")
                    .trim()
                    .parse::<usize>()
                    .expect("a length");
                break (end + 4, len);
            }
        };
        while buf.len() < head + len {
            let read = stream.read(&mut chunk).await.expect("read");
            assert!(read > 0, "the server closed the connection");
            buf.extend_from_slice(&chunk[..read]);
        }
    }
}

fn single_input(c: &mut Criterion) {
    let rt = runtime();
    let server = rt
        .block_on(FakeServer::start(FakeServerConfig::default()))
        .expect("the fake server starts");
    let url: Arc<str> = format!("{}/embeddings", server.openai_base_url()).into();
    let http = client();
    let mut group = c.benchmark_group("fake_server/single_input");
    group.throughput(Throughput::Elements(1));
    for format in ["base64", "float"] {
        let body = Arc::new(
            serde_json::to_vec(&json!({"model": "text-embedding-3-small", "input": "hello world", "encoding_format": format}))
                .expect("json"),
        );
        group.bench_function(format!("reqwest_c{CLIENTS}_{format}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (url, http, body) = (url.clone(), http.clone(), body.clone());
                spread(iters, move |n| {
                    let (url, http, body) = (url.clone(), http.clone(), body.clone());
                    async move {
                        for _ in 0..n {
                            let r = http
                                .post(&*url)
                                .header("content-type", "application/json")
                                .body(body.to_vec())
                                .send()
                                .await
                                .expect("an answer");
                            assert!(r.status().is_success());
                            r.bytes().await.expect("a body");
                        }
                    }
                })
            });
        });
    }
    let body =
        br#"{"model":"text-embedding-3-small","input":"hello world","encoding_format":"base64"}"#;
    let mut request = format!(
        "POST /v1/embeddings HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        server.addr(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let request = Arc::new(request);
    let addr = server.addr();
    group.bench_function(format!("raw_c{CLIENTS}_base64"), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let request = request.clone();
            spread(iters, move |n| raw_client(addr, request.clone(), n))
        });
    });
    group.finish();
    drop(server);
}

fn batch(c: &mut Criterion) {
    let rt = runtime();
    let server = rt
        .block_on(FakeServer::start(FakeServerConfig::default()))
        .expect("the fake server starts");
    let url = format!("{}/embeddings", server.openai_base_url());
    let http = client();
    let texts: Vec<String> = (0..256)
        .map(|i| format!("document number {i} of the batch"))
        .collect();
    let mut group = c.benchmark_group("fake_server/batch_256x1536");
    for format in ["base64", "float"] {
        let body = serde_json::to_vec(
            &json!({"model": "text-embedding-3-small", "input": texts, "encoding_format": format}),
        )
        .expect("json");
        let size = rt.block_on(async {
            let r = http
                .post(&url)
                .body(body.clone())
                .send()
                .await
                .expect("an answer");
            assert!(r.status().is_success());
            r.bytes().await.expect("a body").len()
        });
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format, |b| {
            b.to_async(&rt).iter(|| {
                let req = http.post(&url).body(body.clone());
                async move {
                    let r = req.send().await.expect("an answer");
                    r.bytes().await.expect("a body")
                }
            });
        });
    }
    group.finish();
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(20);
    targets = single_input, batch
}
criterion_main!(benches);
