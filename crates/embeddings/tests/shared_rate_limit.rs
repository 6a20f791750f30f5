//! `[rate_limit] shared`: one tokens-per-minute budget in Redis for many
//! embedders, each with its own Redis connection (four independent
//! instances in this process, the way four worker processes would use it),
//! against the fake server's tokens-per-minute limit, whose bucket holds
//! only half a second of budget at the start (so any overspend beyond the
//! limiter's 100 ms burst is answered 429 at once, not after a minute); a
//! real `redis-server` started on a free port of 127.0.0.1 and killed when
//! dropped. Redis keeps real time, so the job runs in real time: bounded
//! (about 6 s), measured over a fixed number of requests. The worker
//! processes of the `embed` CLI are checked the same way in
//! crates/cli/tests/workers.rs.

#![cfg(all(feature = "redis", feature = "openai"))]

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use embeddings::distributed::SharedLimiter;
use embeddings::layers::RateLimitLayer;
use embeddings::{Config, EmbedRequest, Embedder, ErrorKind, RateLimitConfig};
use embeddings_testkit::budget::BudgetedRun;
use embeddings_testkit::{FakeServer, FakeServerConfig, RedisServer};

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
/// What the fake server's bucket holds at the start.
const INITIAL_BUDGET: Duration = Duration::from_millis(500);

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
        initial_budget: Some(INITIAL_BUDGET),
        ..Default::default()
    })
    .await
    .unwrap();
    let config = openai_config(&server.openai_base_url());
    // Not adaptive: the server's bucket is near empty by design, which the
    // adaptive watermark would read as "slow down"; what is checked here is
    // that the shared budget alone keeps the embedders within L.
    let rl = RateLimitConfig {
        tokens_per_minute: Some(l),
        shared,
        key: Some(key.to_owned()),
        fail_open: false,
        adaptive: false,
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
                    match e
                        .embed(EmbedRequest::new(&batch).with_token_counts(&counts[i]))
                        .await
                    {
                        Ok(rows) => assert_eq!(rows.len(), TEXTS),
                        // The control's overspend (counted by the server).
                        Err(e) if e.kind() == ErrorKind::RateLimited => {}
                        Err(e) => panic!("{e}"),
                    }
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
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let r = run_job(Some(redis.url()), "four").await;
    // The span is the client's own, from before the first request to after
    // the last answer: it holds every admission. The limiter admits by
    // Redis's clock (wall time, which NTP may slew by up to 0.05%) and the
    // span is monotonic: a little slack for that.
    BudgetedRun {
        tokens: r.tokens,
        rate_limited: r.rate_limited,
        span: r.elapsed,
        max_cost: r.max_cost,
    }
    .assert_paced(
        "shared",
        budget(),
        SharedLimiter::BURST,
        Duration::from_millis(20),
    );
}

/// The control: four local limiters (each its own minute of budget) go
/// over L, and the same server answers them 429: the check above can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_local_limiters_exceed_the_budget() {
    let r = run_job(None, "local").await;
    assert!(
        r.rate_limited > 0,
        "the control was never refused: the server does not enforce L"
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
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let limiter = SharedLimiter::new(&redis.url(), "flush", Some(600_000), Some(600_000)).unwrap();
    // The tokens' TAT (µs on the server's clock), read as a bulk string.
    let tat = || {
        redis
            .command(&["GET", "embed:rl:{flush}:tokens"])
            .parse::<u64>()
            .unwrap()
    };
    limiter.acquire(1, 10).await.unwrap();
    let first = tat();
    assert_eq!(redis.command(&["SCRIPT", "FLUSH"]), "OK");
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
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
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

/// The adaptive feedback end to end: embedder A's answer says the budget is
/// nearly spent (`x-ratelimit-remaining-tokens` below 5% of the limit), A's
/// layer works out the pause and writes it to the shared budget, and
/// embedder B, which never saw that answer, waits it out too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_remaining_budget_one_embedder_sees_holds_the_others() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    // 60 000 tokens/min = 1 000/s; the bucket starts with 100 ms = 100
    // tokens, so after A's request a few dozen remain of the 3 000 (5%)
    // watermark: A's layer holds for about (3000 - r) / 1000 s ≈ 2.9 s.
    let server = FakeServer::start(FakeServerConfig {
        tokens_per_minute: Some(60_000),
        initial_budget: Some(Duration::from_millis(100)),
        ..Default::default()
    })
    .await
    .unwrap();
    let config = openai_config(&server.openai_base_url());
    let layer = |key: &str| {
        let rl = RateLimitConfig {
            tokens_per_minute: Some(60_000),
            shared: Some(redis.url()),
            key: Some(key.to_owned()),
            fail_open: false,
            ..RateLimitConfig::default()
        };
        RateLimitLayer::try_new(embeddings::registry::build(&config).unwrap(), rl).unwrap()
    };
    let (a, b, apart) = (layer("feedback"), layer("feedback"), layer("apart"));
    let texts = ["a few words to embed for the budget"; 4];
    // Warm up (connections, tokenizers) under a key of its own, then start
    // the server's buckets again, so that A's answer reads the 100 ms budget
    // less A's request, not what a slow start let refill.
    layer("warm-up")
        .embed(EmbedRequest::new(&texts[..1]))
        .await
        .unwrap();
    server.set_rate_limits(None, Some(60_000));
    a.embed(EmbedRequest::new(&texts)).await.unwrap();
    let held = a.held_for();
    assert!(
        held > Duration::from_secs(2) && held <= Duration::from_secs(3),
        "A's own pause: {held:?}"
    );
    // B has its own (empty) local state: only the shared budget holds it.
    assert_eq!(b.held_for(), Duration::ZERO);
    b.embed(EmbedRequest::new(&texts[..1])).await.unwrap();
    // Another key's embedder is not held.
    apart.embed(EmbedRequest::new(&texts[..1])).await.unwrap();
    let log = server.requests();
    assert_eq!(log.len(), 4, "{log:?}");
    let log = &log[1..];
    let gap = log[1].received.duration_since(log[0].received);
    assert!(
        gap + SharedLimiter::BURST >= held - Duration::from_millis(50),
        "B was sent {gap:?} after A's answer asked for {held:?}"
    );
    let apart_gap = log[2].received.duration_since(log[1].received);
    assert!(
        apart_gap < Duration::from_millis(500),
        "the other key waited {apart_gap:?}"
    );
}
