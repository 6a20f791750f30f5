//! Retry, rate limit, concurrency and timeout layers, alone and stacked,
//! against the mock's faults and a scripted probe. All in paused time.

#![cfg(feature = "mock")]

mod layers_common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use embeddings::layers::{self, ConcurrencyLayer, RateLimitLayer, RetryLayer, TimeoutLayer};
use embeddings::mock::{MockEmbedder, MockFaults, vector};
use embeddings::{Config, Embedder, Error, ErrorKind, RateLimitConfig, RetryConfig};
use embeddings_core::RateLimitSnapshot;
use layers_common::{Probe, Step, assert_rows, refs, texts};
use tokio::time::Instant;

fn mock(faults: MockFaults) -> Arc<MockEmbedder> {
    Arc::new(
        MockEmbedder::new("mock", 8)
            .unwrap()
            .with_faults(faults)
            .unwrap(),
    )
}

fn no_jitter() -> RetryConfig {
    RetryConfig {
        jitter: false,
        ..RetryConfig::default()
    }
}

fn stack(inner: Arc<dyn Embedder>, f: impl FnOnce(&mut Config)) -> Arc<dyn Embedder> {
    let mut config = Config::for_provider("mock");
    config.retry = no_jitter();
    f(&mut config);
    layers::apply(inner, &config).expect("layers")
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_until_success() {
    let inner = mock(MockFaults {
        fail_on_calls: vec![1, 2],
        ..MockFaults::default()
    });
    let e = stack(inner.clone(), |_| {});
    let start = Instant::now();
    assert_eq!(e.embed_query("hi").await.unwrap(), vector("mock", "hi", 8));
    assert_eq!(inner.calls(), 3);
    // Waits of 0.5 s then 1 s (no jitter).
    assert_eq!(start.elapsed(), Duration::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_give_up_after_max_retries_with_the_attempt_count() {
    let inner = mock(MockFaults {
        error_rate: 1.0,
        ..MockFaults::default()
    });
    let e = stack(inner.clone(), |_| {});
    let err = e.embed_documents(&["a", "b"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.attempts(), Some(3));
    assert!(err.to_string().ends_with("after 3 attempts"), "{err}");
    assert_eq!(inner.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn jittered_waits_stay_within_the_backoff_bounds() {
    let inner = mock(MockFaults {
        error_rate: 1.0,
        ..MockFaults::default()
    });
    let e = RetryLayer::new(
        inner,
        RetryConfig {
            max_retries: 5,
            ..RetryConfig::default()
        },
    );
    let start = Instant::now();
    let err = e.embed_query("a").await.unwrap_err();
    assert_eq!(err.attempts(), Some(6));
    // 0.5 + 1 + 2 + 4 + 8 without jitter; jitter adds at most as much again,
    // each wait capped at max_backoff (8 s).
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(15_500), "{waited:?}");
    assert!(waited <= Duration::from_secs(8 * 4 + 8), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    for kind in [
        "authentication",
        "invalid_input",
        "not_found",
        "quota_exceeded",
    ] {
        let inner = mock(MockFaults {
            fail_on_calls: vec![1],
            error_kind: kind.into(),
            ..MockFaults::default()
        });
        let e = stack(inner.clone(), |_| {});
        let err = e.embed_documents(&["a"]).await.unwrap_err();
        assert_eq!(err.kind().as_str(), kind);
        assert_eq!(err.attempts(), Some(1));
        assert_eq!(inner.calls(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_server_marked_non_retryable_error_is_not_retried() {
    let probe = Arc::new(Probe::new("m", 4).script([Step::Fail(
        Error::new(ErrorKind::Unavailable, "x-should-retry: false").with_retryable(false),
    )]));
    let err = RetryLayer::new(probe.clone(), no_jitter())
        .embed_query("a")
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.attempts()),
        (ErrorKind::Unavailable, Some(1))
    );
    assert_eq!(probe.started(), 1);
}

#[tokio::test(start_paused = true)]
async fn rate_limited_retry_waits_the_retry_after() {
    // One request per second: the second call is told to wait until the second is over.
    let inner = mock(MockFaults {
        requests_per_second: Some(1),
        ..MockFaults::default()
    });
    let e = stack(inner.clone(), |_| {});
    e.embed_query("a").await.unwrap();
    tokio::time::advance(Duration::from_millis(300)).await;
    let start = Instant::now();
    e.embed_query("b").await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(700));
    assert_eq!(inner.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_capped_by_max_retry_after() {
    let probe = Arc::new(Probe::new("m", 4).script([Step::Fail(
        Error::new(ErrorKind::RateLimited, "slow down").with_retry_after(Duration::from_secs(600)),
    )]));
    let e = RetryLayer::new(
        probe,
        RetryConfig {
            max_retry_after: Duration::from_secs(2),
            ..no_jitter()
        },
    );
    let start = Instant::now();
    e.embed_query("a").await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_max_elapsed() {
    let inner = mock(MockFaults {
        error_rate: 1.0,
        ..MockFaults::default()
    });
    let e = RetryLayer::new(
        inner.clone(),
        RetryConfig {
            max_retries: 100,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
            max_elapsed: Duration::from_millis(4500),
            ..no_jitter()
        },
    );
    let start = Instant::now();
    let err = e.embed_query("a").await.unwrap_err();
    assert_eq!(err.attempts(), Some(5));
    assert_eq!(start.elapsed(), Duration::from_secs(4));
    assert_eq!(inner.calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn zero_retries_means_one_attempt() {
    let inner = mock(MockFaults {
        error_rate: 1.0,
        ..MockFaults::default()
    });
    let e = stack(inner.clone(), |c| c.retry.max_retries = 0);
    assert_eq!(e.embed_query("a").await.unwrap_err().attempts(), Some(1));
    let e = stack(inner.clone(), |c| c.retry.enabled = false);
    let err = e.embed_query("a").await.unwrap_err();
    assert_eq!((err.kind(), err.attempts()), (ErrorKind::Unavailable, None));
}

#[tokio::test(start_paused = true)]
async fn a_timeout_is_retryable_and_retried() {
    let probe = Arc::new(Probe::new("m", 4).script([Step::Delay(Duration::from_secs(3600))]));
    let e = stack(probe.clone(), |c| {
        c.timeout.per_attempt = Some(Duration::from_secs(2));
    });
    let start = Instant::now();
    let rows = e.embed_documents(&["a", "b"]).await.unwrap();
    assert_rows(&rows, "m", &["a", "b"]);
    assert_eq!(start.elapsed(), Duration::from_millis(2500));
    assert_eq!(probe.started(), 2);
    assert_eq!(
        probe.dropped.load(Ordering::SeqCst),
        1,
        "the late attempt was cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn timeouts_to_the_end_give_a_timeout_error() {
    let inner = mock(MockFaults {
        latency: Some(Duration::from_secs(100)),
        ..MockFaults::default()
    });
    let e = stack(inner.clone(), |c| {
        c.timeout.per_attempt = Some(Duration::from_secs(1));
    });
    let err = e.embed_query("a").await.unwrap_err();
    assert_eq!((err.kind(), err.attempts()), (ErrorKind::Timeout, Some(3)));
    let t = TimeoutLayer::new(inner, Duration::from_millis(10));
    assert_eq!(t.per_attempt(), Duration::from_millis(10));
    assert_eq!(t.health_check().await.map(|_| ()).ok(), Some(()));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_cancels_all_its_work() {
    let mut probe = Probe::new("m", 4).with_info(|i| i.max_batch_size = 2);
    probe.delay_of = Some(|_| Duration::from_secs(3600));
    let probe = Arc::new(probe);
    let concurrency = ConcurrencyLayer::new(probe.clone(), 3);
    let slots = concurrency.clone();
    let mut config = Config::for_provider("mock");
    config.concurrency.max_in_flight = None;
    let e = layers::apply(Arc::new(concurrency), &config).expect("layers");
    let owned = texts(10);
    let borrowed = refs(&owned);
    let call = e.embed_documents(&borrowed);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .is_err()
    );
    assert_eq!(probe.started(), 3);
    assert_eq!(probe.dropped.load(Ordering::SeqCst), 3);
    assert_eq!(probe.in_flight.load(Ordering::SeqCst), 0);
    assert_eq!(probe.finished.load(Ordering::SeqCst), 0);
    assert_eq!(slots.available(), 3, "every slot was given back");
    // Nothing was left running: time passes and no call completes.
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert_eq!(probe.finished.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_and_shared_by_clones() {
    let mut probe = Probe::new("m", 4);
    probe.delay_of = Some(|_| Duration::from_millis(100));
    let probe = Arc::new(probe);
    let a = ConcurrencyLayer::new(probe.clone(), 3);
    let b = a.clone();
    let calls = (0..20).map(|i| {
        let e = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { e.embed_query("x").await.unwrap() }
    });
    let start = Instant::now();
    futures::future::join_all(calls).await;
    assert_eq!(probe.max_in_flight.load(Ordering::SeqCst), 3);
    assert_eq!(start.elapsed(), Duration::from_millis(700)); // ceil(20 / 3) rounds
}

#[tokio::test(start_paused = true)]
async fn requests_per_minute_are_paced_and_shared_by_clones() {
    let probe = Arc::new(Probe::new("m", 4));
    let a = RateLimitLayer::new(
        probe.clone(),
        RateLimitConfig {
            requests_per_minute: Some(60),
            ..RateLimitConfig::default()
        },
    );
    let b = a.clone();
    let start = Instant::now();
    // A burst of 60, then one a second, whichever clone asks.
    for i in 0..70 {
        let e = if i % 2 == 0 { &a } else { &b };
        e.embed_query("x").await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn tokens_per_minute_are_counted_before_sending() {
    let probe = Arc::new(Probe::new("m", 4));
    let e = RateLimitLayer::new(
        probe.clone(),
        RateLimitConfig {
            tokens_per_minute: Some(600),
            ..RateLimitConfig::default()
        },
    );
    let text = "x".repeat(400); // 100 tokens
    let start = Instant::now();
    for _ in 0..10 {
        e.embed_documents(&[&text]).await.unwrap();
    }
    // 6 fit in the first minute's burst; then 100 tokens every 10 s.
    assert_eq!(start.elapsed(), Duration::from_secs(40));
    // A request larger than the whole budget waits for a full bucket instead of failing.
    let huge = "x".repeat(4000);
    e.embed_documents(&[&huge]).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(100));
}

/// A provider that reports `factor` times the estimated tokens as its usage
/// and counts how often its tokenizer is asked.
#[derive(Debug)]
struct Reports {
    info: embeddings::ProviderInfo,
    factor: u64,
    counted: std::sync::atomic::AtomicUsize,
}

impl Reports {
    fn new(factor: u64) -> Self {
        Reports {
            info: embeddings::ProviderInfo::new("reports", "m", 4),
            factor,
            counted: Default::default(),
        }
    }
}

#[embeddings::async_trait]
impl Embedder for Reports {
    fn info(&self) -> &embeddings::ProviderInfo {
        &self.info
    }

    async fn embed(
        &self,
        request: embeddings::EmbedRequest<'_>,
    ) -> embeddings::Result<embeddings::Embeddings> {
        let estimate: usize = request
            .inputs
            .iter()
            .map(|t| embeddings::estimate_tokens(t))
            .sum();
        Ok(embeddings::Embeddings::zeroed(request.inputs.len(), 4)
            .with_usage(embeddings::Usage::tokens(estimate as u64 * self.factor)))
    }

    async fn health_check(&self) -> embeddings::Result<()> {
        Ok(())
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.counted.fetch_add(1, Ordering::SeqCst);
        embeddings::estimate_tokens(text) * self.factor as usize
    }
}

#[tokio::test(start_paused = true)]
async fn the_token_budget_is_settled_from_usage_without_a_tokenizer_pass() {
    // The server reports what the estimate said: same pace as exact counts,
    // and the tokenizer is never asked (the answer's usage is the count).
    let exact = Arc::new(Reports::new(1));
    let e = RateLimitLayer::new(
        exact.clone(),
        RateLimitConfig {
            tokens_per_minute: Some(600),
            ..RateLimitConfig::default()
        },
    );
    let text = "x".repeat(400); // estimated 100 tokens
    let start = Instant::now();
    for _ in 0..10 {
        e.embed_documents(&[&text]).await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::from_secs(40));
    assert_eq!(exact.counted.load(Ordering::SeqCst), 0, "no tokenizer pass");

    // The server reports twice the estimate: the rest is taken before the
    // call returns, so 10 requests spend 2000 tokens of a 600/min budget:
    // 600 at once, then 10 per second for the other 1400.
    let under = Arc::new(Reports::new(2));
    let e = RateLimitLayer::new(
        under.clone(),
        RateLimitConfig {
            tokens_per_minute: Some(600),
            ..RateLimitConfig::default()
        },
    );
    let start = Instant::now();
    for _ in 0..10 {
        e.embed_documents(&[&text]).await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::from_secs(140));
    assert_eq!(under.counted.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_low_remaining_budget_slows_the_next_requests() {
    let probe = Arc::new(Probe::new("m", 4));
    *probe.snapshot.lock().unwrap() = Some(RateLimitSnapshot {
        limit_tokens: Some(1000),
        remaining_tokens: Some(0),
        reset_tokens: Some(Duration::from_secs(60)),
        ..RateLimitSnapshot::default()
    });
    let e = RateLimitLayer::new(probe.clone(), RateLimitConfig::default());
    let start = Instant::now();
    e.embed_documents(&["a"]).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        e.held_for(),
        Duration::from_secs(3),
        "5% of 1000 back after 3 s"
    );
    *probe.snapshot.lock().unwrap() = None;
    e.embed_documents(&["a"]).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    // Plenty left: no pause.
    *probe.snapshot.lock().unwrap() = Some(RateLimitSnapshot {
        limit_requests: Some(100),
        remaining_requests: Some(50),
        reset_requests: Some(Duration::from_secs(30)),
        ..RateLimitSnapshot::default()
    });
    e.embed_documents(&["a"]).await.unwrap();
    assert_eq!(e.held_for(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_answer_holds_every_clone() {
    let probe = Arc::new(Probe::new("m", 4).script([Step::Fail(
        Error::new(ErrorKind::RateLimited, "slow down").with_retry_after(Duration::from_secs(5)),
    )]));
    let a = RateLimitLayer::new(probe.clone(), RateLimitConfig::default());
    let b = a.clone();
    let err = a.embed_query("x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    let start = Instant::now();
    b.embed_query("y").await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    // Not adaptive: no hold.
    let probe = Arc::new(Probe::new("m", 4).script([Step::Fail(
        Error::new(ErrorKind::RateLimited, "slow down").with_retry_after(Duration::from_secs(5)),
    )]));
    let c = RateLimitLayer::new(
        probe,
        RateLimitConfig {
            adaptive: false,
            ..RateLimitConfig::default()
        },
    );
    c.embed_query("x").await.unwrap_err();
    assert_eq!(c.held_for(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_full_default_stack_keeps_every_row_under_rate_limits_and_faults() {
    let config = Config::from_toml_str(
        "provider = \"mock\"\ndimensions = 8\n\
         [batch]\nmax_batch_size = 16\nconcurrency = 8\n\
         [retry]\nmax_retries = 10\n\
         [rate_limit]\nrequests_per_minute = 600\ntokens_per_minute = 20000\n\
         [mock]\nerror_rate = 0.05\nseed = 3\nlatency = \"100ms\"\nrequests_per_second = 8\n",
    )
    .unwrap();
    let e = embeddings::from_config(&config).unwrap();
    let owned = texts(2000);
    let start = Instant::now();
    let rows = e.embed_documents(&refs(&owned)).await.unwrap();
    assert_rows(&rows, "mock", &refs(&owned));
    // 2000 inputs of ~4 tokens: ~8000 tokens, within the first minute's budgets.
    assert!(
        start.elapsed() < Duration::from_secs(120),
        "{:?}",
        start.elapsed()
    );
}
