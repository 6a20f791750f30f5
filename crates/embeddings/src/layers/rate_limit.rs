//! The rate-limit layer: requests and tokens per minute (`governor`), shared
//! by clones, and an adaptive pause from what the server reports.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use embeddings_core::{
    EmbedRequest, Embedder, Embeddings, Error, ErrorKind, RateLimitConfig, RateLimitSnapshot,
    Result, Wrapper, async_trait, estimate_tokens,
};
use embeddings_distributed::SharedLimiter;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// The longest pause the adaptive part imposes at once.
const MAX_HOLD: Duration = Duration::from_secs(60);

/// `governor`'s clock on `tokio::time`, so paused-time tests see it advance.
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    start: tokio::time::Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

struct State {
    clock: TokioClock,
    requests: Option<Limiter>,
    tokens: Option<(Limiter, NonZeroU32)>,
    adaptive: bool,
    /// No request starts before this (nanoseconds on `clock`; 0: none).
    hold_until: AtomicU64,
    /// The budget every process with the same Redis server and key shares.
    shared: Option<Shared>,
}

#[derive(Debug)]
struct Shared {
    limiter: SharedLimiter,
    fail_open: bool,
    /// Whether the fall-back to the local limiter was reported.
    warned: AtomicBool,
    /// After a failure, Redis is not asked again before this (so that an
    /// unreachable server does not cost every request a connection timeout).
    retry_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long an unreachable shared budget is left alone before it is asked again.
const SHARED_RETRY: Duration = Duration::from_secs(5);

impl Shared {
    /// Whether to ask Redis (no failure in the last `SHARED_RETRY`).
    fn available(&self) -> bool {
        let at = *self.retry_at.lock().unwrap_or_else(|p| p.into_inner());
        at.is_none_or(|t| std::time::Instant::now() >= t)
    }

    /// What an unreachable shared budget means: `Ok(false)` (use the local
    /// limiter, warned once) when failing open, else the error.
    fn fallback(&self, e: Error) -> Result<bool> {
        if !self.fail_open {
            let msg = format!(
                "{} (rate_limit.fail_open = false: no request is sent without the shared budget)",
                e.message()
            );
            return Err(e.with_message(msg));
        }
        // Failing open: the local limiter for a while (failing closed asks
        // Redis every time, so that it works again as soon as Redis does).
        *self.retry_at.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(std::time::Instant::now() + SHARED_RETRY);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = %e,
                "the shared rate limit is unreachable: this process falls back to its own limiter"
            );
        }
        Ok(false)
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("requests", &self.requests.is_some())
            .field("tokens", &self.tokens.as_ref().map(|t| t.1))
            .field("adaptive", &self.adaptive)
            .field("hold_until_ns", &self.hold_until.load(Ordering::Relaxed))
            .field("shared", &self.shared)
            .finish()
    }
}

/// Keeps requests under `requests_per_minute` and `tokens_per_minute` (each
/// optional). A request reserves its tokens before it is sent: the exact
/// counts it carries (see [`EmbedRequest::with_token_counts`]), else an
/// estimate of a quarter of its bytes; when the answer reports more
/// (`usage`, else [`count_tokens`](Embedder::count_tokens)), the rest is
/// taken from the budget before the call returns. Clones share
/// one budget, so every task using the same embedder (or key) draws from it.
///
/// Limits are `governor` GCRA buckets whose burst is one minute's budget;
/// a request larger than the whole token budget waits for a full bucket.
///
/// With `adaptive` on, it also slows down from what the server says: when an
/// answer's [`RateLimitSnapshot`] shows the remaining requests or tokens
/// below 5% of the window (or below this request's tokens), new requests wait
/// until enough of the budget is back (estimated from the reset time), and a
/// [`ErrorKind::RateLimited`] error with a `retry_after` holds every request
/// for that long. All waits are `tokio::time` sleeps.
///
/// With `shared` set ([`RateLimitLayer::try_new`]), the budgets live in
/// Redis ([`SharedLimiter`]: a token-weighted GCRA in one Lua script), so
/// every process of every machine with the same server and `key` draws from
/// one budget; the adaptive pauses are written there too, for all of them.
/// When Redis cannot be reached, `fail_open` (the default) falls back to
/// this process's own limiter with one warning; otherwise the request fails
/// with a [`ErrorKind::Connection`] error.
///
/// `health_check` is not limited.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    inner: Arc<dyn Embedder>,
    state: Arc<State>,
}

impl RateLimitLayer {
    /// Wraps `inner`, with the budgets of this process (`config.shared` is
    /// not used here: see [`try_new`](Self::try_new)).
    pub fn new(inner: Arc<dyn Embedder>, config: RateLimitConfig) -> Self {
        let clock = TokioClock {
            start: tokio::time::Instant::now(),
        };
        let per_minute = |n: Option<u32>| {
            let n = NonZeroU32::new(n?)?;
            Some((
                RateLimiter::direct_with_clock(Quota::per_minute(n), clock),
                n,
            ))
        };
        let requests = per_minute(config.requests_per_minute).map(|(l, _)| l);
        let tokens = per_minute(config.tokens_per_minute);
        RateLimitLayer {
            inner,
            state: Arc::new(State {
                clock,
                requests,
                tokens,
                adaptive: config.adaptive,
                hold_until: AtomicU64::new(0),
                shared: None,
            }),
        }
    }

    /// Wraps `inner`; with `config.shared`, the budgets are those of the
    /// Redis server and key it names. An error for a bad URL, or a build
    /// without the `redis` feature.
    pub fn try_new(inner: Arc<dyn Embedder>, config: RateLimitConfig) -> Result<Self> {
        let shared = match &config.shared {
            Some(url) => Some(Shared {
                limiter: SharedLimiter::new(
                    url,
                    config.key.as_deref().unwrap_or("default"),
                    config.requests_per_minute,
                    config.tokens_per_minute,
                )?,
                fail_open: config.fail_open,
                warned: AtomicBool::new(false),
                retry_at: std::sync::Mutex::new(None),
            }),
            None => None,
        };
        let mut layer = Self::new(inner, config);
        if let Some(state) = Arc::get_mut(&mut layer.state) {
            state.shared = shared;
        }
        Ok(layer)
    }

    /// How long new requests are held by the adaptive pause from now.
    pub fn held_for(&self) -> Duration {
        let until = self.state.hold_until.load(Ordering::Relaxed);
        if until == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(until).saturating_sub(self.state.clock.now())
    }

    fn hold_for(&self, d: Duration) {
        let d = d.min(MAX_HOLD);
        if d.is_zero() {
            return;
        }
        let until = (self.state.clock.now() + d).as_nanos() as u64;
        self.state.hold_until.fetch_max(until, Ordering::Relaxed);
    }

    /// Waits until a request of `tokens` tokens may start.
    async fn acquire(&self, tokens: usize) -> Result<()> {
        let s = &*self.state;
        loop {
            let held = self.held_for();
            if held.is_zero() {
                break;
            }
            tokio::time::sleep(held).await;
        }
        if let Some(sh) = s.shared.as_ref().filter(|sh| sh.available()) {
            match sh.limiter.acquire(1, tokens as u64).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    sh.fallback(e)?;
                }
            }
        }
        if let Some(limiter) = &s.requests {
            while let Err(not_until) = limiter.check() {
                tokio::time::sleep(not_until.wait_time_from(s.clock.now())).await;
            }
        }
        self.acquire_local_tokens(tokens).await;
        Ok(())
    }

    /// Waits until `tokens` more tokens of the budget are free, and takes
    /// them (the shared budget's, else this process's).
    async fn acquire_tokens(&self, tokens: usize) {
        if let Some(sh) = self.state.shared.as_ref().filter(|sh| sh.available()) {
            match sh.limiter.acquire(0, tokens as u64).await {
                Ok(()) => return,
                // The request is answered already: its rest is charged locally.
                Err(e) => {
                    let _ = sh.fallback(e);
                }
            }
        }
        self.acquire_local_tokens(tokens).await;
    }

    async fn acquire_local_tokens(&self, tokens: usize) {
        let s = &*self.state;
        if let Some((limiter, capacity)) = &s.tokens {
            let want = u32::try_from(tokens).unwrap_or(u32::MAX);
            let Some(n) = NonZeroU32::new(want.min(capacity.get())) else {
                return;
            };
            // `n` never exceeds the burst, so `check_n` never answers
            // InsufficientCapacity.
            while let Ok(Err(not_until)) = limiter.check_n(n) {
                tokio::time::sleep(not_until.wait_time_from(s.clock.now())).await;
            }
        }
    }

    /// Reads what the server said about the budget: the pause it asks
    /// for (also written to the shared budget, for every process).
    async fn observe<T>(
        &self,
        result: &Result<T>,
        snapshot: Option<&RateLimitSnapshot>,
        tokens: impl FnOnce() -> usize,
    ) {
        if !self.state.adaptive {
            return;
        }
        let before = self.held_for();
        self.observe_local(result, snapshot, tokens);
        let held = self.held_for();
        if let Some(sh) = &self.state.shared {
            if held > before {
                if let Err(e) = sh.limiter.hold(held).await {
                    let _ = sh.fallback(e);
                }
            }
        }
    }

    fn observe_local<T>(
        &self,
        result: &Result<T>,
        snapshot: Option<&RateLimitSnapshot>,
        tokens: impl FnOnce() -> usize,
    ) {
        match result {
            Err(e) if e.kind() == ErrorKind::RateLimited => {
                if let Some(wait) = e.retry_after() {
                    self.hold_for(wait);
                }
            }
            Err(_) => {}
            Ok(_) => {
                if let Some(s) = snapshot {
                    let wait = low_budget_wait(
                        s.limit_requests,
                        s.remaining_requests,
                        s.reset_requests,
                        1,
                    )
                    .max(low_budget_wait(
                        s.limit_tokens,
                        s.remaining_tokens,
                        s.reset_tokens,
                        tokens() as u64,
                    ));
                    self.hold_for(wait);
                }
            }
        }
    }
}

/// How long to wait until the budget is back above its low watermark: 5% of
/// the window's limit, or `need` when more. The reset time is when the whole
/// spent budget is back; it refills linearly.
fn low_budget_wait(
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<Duration>,
    need: u64,
) -> Duration {
    let (Some(remaining), Some(reset)) = (remaining, reset) else {
        return Duration::ZERO;
    };
    let limit = limit.unwrap_or(0);
    let low = (limit / 20).max(need).max(1);
    if remaining >= low {
        return Duration::ZERO;
    }
    if limit <= remaining {
        return reset;
    }
    let share = (low.min(limit) - remaining) as f64 / (limit - remaining) as f64;
    reset.mul_f64(share.clamp(0.0, 1.0))
}

#[async_trait]
impl Wrapper for RateLimitLayer {
    fn inner(&self) -> &dyn Embedder {
        &*self.inner
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        let (inputs, carried) = (request.inputs, request.token_counts);
        // What a request reserves of a token budget before it is sent: the
        // exact counts a layer already made, else an estimate (a quarter of
        // the bytes) — never a tokenizer pass per text. The answer's usage
        // settles the difference below.
        let reserved = self.state.tokens.as_ref().map(|_| match carried {
            Some(c) => c.iter().sum::<usize>(),
            None => inputs.iter().map(|t| estimate_tokens(t)).sum(),
        });
        self.acquire(reserved.unwrap_or(0)).await?;
        let r = self.inner.embed(request).await;
        let snapshot = r.as_ref().ok().and_then(Embeddings::rate_limits);
        // The tokens spent: what the server reported, else the carried
        // counts, else counted now (only when a budget or the adaptive
        // watermark needs them).
        let reported = r
            .as_ref()
            .ok()
            .and_then(Embeddings::usage)
            .map(|u| u.prompt_tokens as usize);
        let spent = || {
            reported
                .or_else(|| carried.map(|c| c.iter().sum()))
                .unwrap_or_else(|| inputs.iter().map(|t| self.inner.count_tokens(t)).sum())
        };
        let mut settled = None;
        if let (Some(reserved), Ok(_)) = (reserved, &r) {
            // An estimate below the real cost: the rest is taken now, so the
            // budget is never overspent (the next requests wait for it).
            let n = spent();
            settled = Some(n);
            if n > reserved {
                self.acquire_tokens(n - reserved).await;
            }
        }
        self.observe(&r, snapshot, || settled.unwrap_or_else(spent))
            .await;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_budget_wait_is_zero_with_budget_left() {
        let w = low_budget_wait(Some(1000), Some(500), Some(Duration::from_secs(30)), 10);
        assert_eq!(w, Duration::ZERO);
        assert_eq!(low_budget_wait(None, None, None, 1), Duration::ZERO);
    }

    #[test]
    fn low_budget_wait_waits_for_the_watermark() {
        // 1000 per window, 0 left, full again in 60 s: 5% (50) is back in 3 s.
        let w = low_budget_wait(Some(1000), Some(0), Some(Duration::from_secs(60)), 1);
        assert_eq!(w, Duration::from_secs(3));
        // Unknown limit: wait for the reset when nothing is left.
        let w = low_budget_wait(None, Some(0), Some(Duration::from_secs(7)), 1);
        assert_eq!(w, Duration::from_secs(7));
    }
}
