//! `[rate_limit] shared`: one tokens-per-minute budget in Redis for many
//! embedders, each with its own Redis connection (four independent
//! instances in this process, the way four worker processes would use it),
//! against the fake server's tokens-per-minute limit; a real `redis-server`
//! started on a free port of 127.0.0.1 and killed when dropped. Redis keeps
//! real time, so the job runs in real time: bounded (about 6 s), measured
//! over a fixed number of requests.

#![cfg(all(feature = "redis", feature = "openai"))]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use embeddings::distributed::SharedLimiter;
use embeddings::layers::RateLimitLayer;
use embeddings::{Config, EmbedRequest, Embedder, ErrorKind, RateLimitConfig};
use embeddings_testkit::{FakeServer, FakeServerConfig};

/// A `redis-server` child on 127.0.0.1; killed when dropped.
struct Redis {
    port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Redis {
    /// Starts one, or `None` (the test is skipped) when `redis-server` is
    /// not installed and this is not CI.
    fn start() -> Option<Redis> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is not installed (.ci/run installs it)"
            );
            eprintln!("skipped: redis-server is not installed");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let r = Redis {
            port,
            _dir: dir,
            child,
        };
        for _ in 0..500 {
            if r.command("PING") == "+PONG" {
                return Some(r);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not start on port {port}");
    }

    /// One inline command; the first line of the answer.
    fn command(&self, cmd: &str) -> String {
        use std::io::{BufRead, BufReader, Write};
        let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
        if c.write_all(format!("{cmd}\r\n").as_bytes()).is_err() {
            return String::new();
        }
        let mut line = String::new();
        let _ = BufReader::new(c).read_line(&mut line);
        line.trim_end().to_owned()
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openai_config(base_url: &str) -> Config {
    Config::from_toml_str(&format!(
        "provider = \"openai\"\nmodel = \"text-embedding-3-small\"\ndimensions = 8\n\
         base_url = {base_url:?}\napi_key = \"sk-test\"\n"
    ))
    .unwrap()
}

/// The budget per minute (`SHARED_RATE_LIMIT_L` overrides it, for the
/// README's throughput-vs-L figures), and the job: `L / 200` requests
/// (about 6 s of budget) of TEXTS texts (about 20 tokens a request), from 4
/// embedders with 2 requests in flight each.
fn budget() -> u32 {
    std::env::var("SHARED_RATE_LIMIT_L")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12_000)
}
const TEXTS: usize = 4;

struct Run {
    elapsed: Duration,
    /// Tokens the server counted (cl100k), and answers of 429.
    tokens: u64,
    rate_limited: u64,
    /// The most tokens of one request.
    max_cost: u64,
}

async fn run_job(shared: Option<String>, key: &str) -> Run {
    let l = budget();
    let requests = (l / 200).max(8) as usize;
    let server = FakeServer::start(FakeServerConfig {
        tokens_per_minute: Some(l),
        ..Default::default()
    })
    .await
    .unwrap();
    let config = openai_config(&server.openai_base_url());
    let rl = RateLimitConfig {
        tokens_per_minute: Some(l),
        shared,
        key: Some(key.to_owned()),
        fail_open: false,
        ..RateLimitConfig::default()
    };
    // Four independent embedders: each its provider, its layer, its Redis connection.
    let embedders: Vec<Arc<dyn Embedder>> = (0..4)
        .map(|_| {
            let provider = embeddings::registry::build(&config).unwrap();
            Arc::new(RateLimitLayer::try_new(provider, rl.clone()).unwrap()) as Arc<dyn Embedder>
        })
        .collect();
    let texts: Vec<Vec<String>> = (0..requests)
        .map(|r| {
            (0..TEXTS)
                .map(|t| format!("request {r} text {t} about rivers"))
                .collect()
        })
        .collect();
    // Each request's exact token counts (cl100k, as the server counts):
    // its cost in the budget. Counted before the clock starts (the first
    // count loads the tokenizer, which is not what is measured).
    let counts: Vec<Vec<usize>> = texts
        .iter()
        .map(|ts| ts.iter().map(|t| embedders[0].count_tokens(t)).collect())
        .collect();
    let max_cost = counts
        .iter()
        .map(|c| c.iter().sum::<usize>() as u64)
        .max()
        .unwrap_or(0);
    let (texts, counts) = (Arc::new(texts), Arc::new(counts));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for e in &embedders {
        for _ in 0..2 {
            let (e, texts, counts, next) = (
                Arc::clone(e),
                Arc::clone(&texts),
                Arc::clone(&counts),
                Arc::clone(&next),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        return;
                    }
                    let batch: Vec<&str> = texts[i].iter().map(String::as_str).collect();
                    let rows = e
                        .embed(EmbedRequest::new(&batch).with_token_counts(&counts[i]))
                        .await
                        .unwrap();
                    assert_eq!(rows.len(), TEXTS);
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let stats = server.stats();
    Run {
        elapsed,
        tokens: stats.tokens,
        rate_limited: stats.by_status.get(&429).copied().unwrap_or(0),
        max_cost,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_embedders_share_one_tokens_per_minute_budget() {
    let Some(redis) = Redis::start() else { return };
    let r = run_job(Some(redis.url()), "four").await;
    let per_sec = f64::from(budget()) / 60.0;
    let secs = r.elapsed.as_secs_f64();
    let achieved = r.tokens as f64 / secs;
    let paced = (r.tokens - r.max_cost) as f64 / (secs + SharedLimiter::BURST.as_secs_f64());
    eprintln!(
        "shared: {} tokens in {secs:.2} s = {achieved:.1} tokens/s, {:.1}% of L ({per_sec:.1}/s); \
         paced (all but the last request, over the time plus the burst): {:.1}% of L; {} 429s",
        r.tokens,
        100.0 * achieved / per_sec,
        100.0 * paced / per_sec,
        r.rate_limited
    );
    assert_eq!(r.rate_limited, 0, "answers of 429");
    // At least 90% of L over the job.
    assert!(
        achieved >= 0.9 * per_sec,
        "{achieved:.1} tokens/s < 90% of {per_sec:.1}"
    );
    // At most L: GCRA admits every request but the last within the elapsed
    // time plus the documented burst.
    let bound = per_sec * (secs + SharedLimiter::BURST.as_secs_f64());
    assert!(
        (r.tokens - r.max_cost) as f64 <= bound,
        "{} tokens (less one request of {}) > {bound:.0}: over L",
        r.tokens,
        r.max_cost
    );
    // Bounded: the job is about 6 s of budget.
    assert!(secs < 30.0, "{secs:.1} s");
}

/// The control: four local limiters (each its own minute of budget) go
/// far over L, which is what the shared one prevents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_local_limiters_exceed_the_budget() {
    let r = run_job(None, "local").await;
    let per_sec = f64::from(budget()) / 60.0;
    let achieved = r.tokens as f64 / r.elapsed.as_secs_f64();
    assert!(
        achieved > 2.0 * per_sec,
        "{achieved:.1} tokens/s: the control does not exceed L"
    );
}

#[tokio::test]
async fn an_unreachable_shared_budget_fails_open_or_closed() {
    let server = FakeServer::start(FakeServerConfig::default())
        .await
        .unwrap();
    let config = openai_config(&server.openai_base_url());
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let layer = |fail_open: bool| {
        let rl = RateLimitConfig {
            tokens_per_minute: Some(1_000_000),
            shared: Some(url.clone()),
            fail_open,
            ..RateLimitConfig::default()
        };
        RateLimitLayer::try_new(embeddings::registry::build(&config).unwrap(), rl).unwrap()
    };
    let closed = layer(false);
    let e = closed.embed(EmbedRequest::new(&["a"])).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.to_string().contains("fail_open = false"), "{e}");
    assert_eq!(
        server.stats().requests,
        0,
        "nothing sent without the budget"
    );
    let open = layer(true);
    for _ in 0..2 {
        let rows = open.embed(EmbedRequest::new(&["a", "b"])).await.unwrap();
        assert_eq!(rows.len(), 2);
    }
    assert_eq!(server.stats().requests, 2);
}

#[tokio::test]
async fn the_script_is_loaded_again_after_the_server_forgot_it() {
    let Some(redis) = Redis::start() else { return };
    let limiter = SharedLimiter::new(&redis.url(), "flush", Some(600_000), Some(600_000)).unwrap();
    // The tokens' TAT (µs on the server's clock), read as a bulk string.
    let tat = || {
        use std::io::{BufRead, BufReader, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
        c.write_all(b"GET embed:rl:{flush}:tokens\r\n").unwrap();
        let mut r = BufReader::new(c);
        let (mut len, mut value) = (String::new(), String::new());
        r.read_line(&mut len).unwrap();
        r.read_line(&mut value).unwrap();
        value.trim_end().parse::<u64>().unwrap()
    };
    limiter.acquire(1, 10).await.unwrap();
    let first = tat();
    assert_eq!(redis.command("SCRIPT FLUSH"), "+OK");
    // Without a reload this would be a NOSCRIPT error.
    limiter.acquire(1, 10).await.unwrap();
    // And it charged: 10 tokens of 100 µs each at 600 000/min moved the TAT on.
    assert!(tat() >= first + 1000, "{} then {}", first, tat());
}

#[test]
fn a_config_with_a_shared_budget_and_no_limit_is_refused() {
    let e = Config::from_toml_str("[rate_limit]\nshared = \"redis://127.0.0.1:1/0\"\n")
        .and_then(|c| c.validate())
        .unwrap_err();
    assert!(e.to_string().contains("no budget to share"), "{e}");
    // The password never shows in Debug.
    let c = Config::from_toml_str(
        "[rate_limit]\ntokens_per_minute = 10\nshared = \"redis://u:hunter2@127.0.0.1:1/0\"\n",
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[tokio::test]
async fn a_pause_one_process_learns_holds_every_process() {
    let Some(redis) = Redis::start() else { return };
    let a = SharedLimiter::new(&redis.url(), "hold", None, Some(600_000)).unwrap();
    let b = SharedLimiter::new(&redis.url(), "hold", None, Some(600_000)).unwrap();
    b.acquire(1, 1).await.unwrap();
    // What a's server said (x-ratelimit-remaining-tokens low, or a 429's
    // retry-after): hold for 3 s.
    a.hold(Duration::from_secs(3)).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), b.acquire(1, 1)).await;
    assert!(waited.is_err(), "b went on during a's pause");
    // Another key is not held.
    let c = SharedLimiter::new(&redis.url(), "other", None, Some(600_000)).unwrap();
    tokio::time::timeout(Duration::from_secs(2), c.acquire(1, 1))
        .await
        .expect("another key's budget is its own")
        .unwrap();
}
