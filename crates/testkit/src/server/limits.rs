//! Requests-per-minute and tokens-per-minute limits (token buckets on tokio time).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

/// The limit reported (and never reached in practice) when none is configured.
const UNLIMITED: u32 = u32::MAX;

#[derive(Debug)]
struct Bucket {
    capacity: f64,
    level: f64,
    per_sec: f64,
    last: Instant,
}

impl Bucket {
    /// A bucket of a minute's budget, holding `initial` worth of it (the
    /// whole minute when `None`).
    fn new(per_minute: u32, initial: Option<Duration>, now: Instant) -> Self {
        let capacity = f64::from(per_minute);
        let per_sec = capacity / 60.0;
        let level = match initial {
            Some(d) => (d.as_secs_f64() * per_sec).min(capacity),
            None => capacity,
        };
        Bucket {
            capacity,
            level,
            per_sec,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + dt * self.per_sec).min(self.capacity);
        self.last = now;
    }

    /// Time until `amount` is available.
    fn wait_for(&self, amount: f64) -> Duration {
        Duration::from_secs_f64(((amount - self.level).max(0.0) / self.per_sec).max(0.001))
    }

    fn reset(&self) -> Duration {
        Duration::from_secs_f64((self.capacity - self.level).max(0.0) / self.per_sec)
    }

    fn remaining(&self) -> u64 {
        self.level.max(0.0).floor() as u64
    }
}

/// The state of the requests/tokens-per-minute budgets: what the
/// `x-ratelimit-*` headers say.
#[derive(Debug, Clone, Copy)]
pub struct LimitSnapshot {
    limit_requests: u64,
    remaining_requests: u64,
    reset_requests: Duration,
    limit_tokens: u64,
    remaining_tokens: u64,
    reset_tokens: Duration,
}

impl LimitSnapshot {
    /// Writes `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (OpenAI's
    /// names and formats, which most services copy).
    pub fn write(&self, headers: &mut HeaderMap) {
        let mut put = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        put(
            "x-ratelimit-limit-requests",
            self.limit_requests.to_string(),
        );
        put(
            "x-ratelimit-remaining-requests",
            self.remaining_requests.to_string(),
        );
        put(
            "x-ratelimit-reset-requests",
            format_reset(self.reset_requests),
        );
        put("x-ratelimit-limit-tokens", self.limit_tokens.to_string());
        put(
            "x-ratelimit-remaining-tokens",
            self.remaining_tokens.to_string(),
        );
        put("x-ratelimit-reset-tokens", format_reset(self.reset_tokens));
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exceeded {
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
    /// The request alone holds more tokens than the per-minute limit: waiting cannot help.
    TooLarge,
}

/// A refusal by the requests/tokens-per-minute limits: which limit, how
/// long to wait, and the budgets' state. A dialect answers it with a 429 in
/// its own error shape and [`LimitRejection::write_headers`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct LimitRejection {
    /// The limit that refused.
    pub exceeded: Exceeded,
    /// How long until the request would pass (`None`: never, it is larger than the limit).
    pub retry_after: Option<Duration>,
    /// The limit, per minute.
    pub limit: u64,
    /// How much of it is in use.
    pub used: u64,
    /// The budgets.
    pub snapshot: LimitSnapshot,
}

impl LimitRejection {
    /// Writes `retry-after` (seconds, rounded up), `retry-after-ms` and the
    /// `x-ratelimit-*` headers.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if let Some(wait) = self.retry_after {
            let ms = wait.as_millis().max(1);
            for (name, value) in [
                ("retry-after", ms.div_ceil(1000).to_string()),
                ("retry-after-ms", ms.to_string()),
            ] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(HeaderName::from_static(name), v);
                }
            }
        }
        self.snapshot.write(headers);
    }
}

/// The two buckets shared by every embedding route.
#[derive(Debug)]
pub(crate) struct Limits {
    requests: Bucket,
    tokens: Bucket,
    initial: Option<Duration>,
}

impl Limits {
    /// Buckets of `rpm` requests and `tpm` tokens per minute, holding
    /// `initial` worth of budget (a whole minute when `None`).
    pub(crate) fn new(rpm: Option<u32>, tpm: Option<u32>, initial: Option<Duration>) -> Self {
        let now = Instant::now();
        Limits {
            requests: Bucket::new(rpm.unwrap_or(UNLIMITED), initial, now),
            tokens: Bucket::new(tpm.unwrap_or(UNLIMITED), initial, now),
            initial,
        }
    }

    /// What the buckets held when they were made (see [`Limits::new`]).
    pub(crate) fn initial(&self) -> Option<Duration> {
        self.initial
    }

    fn snapshot(&self) -> LimitSnapshot {
        LimitSnapshot {
            limit_requests: self.requests.capacity as u64,
            remaining_requests: self.requests.remaining(),
            reset_requests: self.requests.reset(),
            limit_tokens: self.tokens.capacity as u64,
            remaining_tokens: self.tokens.remaining(),
            reset_tokens: self.tokens.reset(),
        }
    }

    /// The current state, consuming nothing.
    pub(crate) fn peek(&mut self) -> LimitSnapshot {
        let now = Instant::now();
        self.requests.refill(now);
        self.tokens.refill(now);
        self.snapshot()
    }

    /// Takes one request and `tokens` tokens, or says why not.
    pub(crate) fn acquire(&mut self, tokens: u64) -> Result<LimitSnapshot, LimitRejection> {
        let now = Instant::now();
        self.requests.refill(now);
        self.tokens.refill(now);
        let t = tokens as f64;
        let reject = |s: &Self, exceeded, retry_after, limit: &Bucket| LimitRejection {
            exceeded,
            retry_after,
            limit: limit.capacity as u64,
            used: (limit.capacity - limit.level).max(0.0).ceil() as u64,
            snapshot: s.snapshot(),
        };
        if self.requests.level < 1.0 {
            let wait = self.requests.wait_for(1.0);
            return Err(reject(self, Exceeded::Requests, Some(wait), &self.requests));
        }
        if t > self.tokens.capacity {
            return Err(reject(self, Exceeded::TooLarge, None, &self.tokens));
        }
        if self.tokens.level < t {
            let wait = self.tokens.wait_for(t);
            return Err(reject(self, Exceeded::Tokens, Some(wait), &self.tokens));
        }
        self.requests.level -= 1.0;
        self.tokens.level -= t;
        Ok(self.snapshot())
    }
}

/// A reset time as OpenAI writes it: `20ms`, `1.5s`, `6m0s`.
///
/// ```
/// # use std::time::Duration;
/// assert_eq!(embeddings_testkit::dialect::format_reset(Duration::from_millis(61_250)), "1m1.25s");
/// ```
pub fn format_reset(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let minutes = ms / 60_000;
    let rest_ms = ms % 60_000;
    let secs = if rest_ms % 1000 == 0 {
        format!("{}", rest_ms / 1000)
    } else {
        let s = format!("{:.3}", rest_ms as f64 / 1000.0);
        s.trim_end_matches('0').to_owned()
    };
    if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_format() {
        assert_eq!(format_reset(Duration::ZERO), "0s");
        assert_eq!(format_reset(Duration::from_millis(20)), "20ms");
        assert_eq!(format_reset(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_reset(Duration::from_secs(2)), "2s");
        assert_eq!(format_reset(Duration::from_secs(60)), "1m0s");
        assert_eq!(format_reset(Duration::from_millis(61_250)), "1m1.25s");
    }

    #[tokio::test(start_paused = true)]
    async fn buckets_refill_over_time() {
        let mut l = Limits::new(Some(2), Some(100), None);
        assert!(l.acquire(40).is_ok());
        assert!(l.acquire(40).is_ok());
        let r = l.acquire(10).unwrap_err();
        assert_eq!(r.exceeded, Exceeded::Requests);
        let wait = r.retry_after.unwrap().as_secs_f64();
        assert!((wait - 30.0).abs() < 1e-3, "{wait}");
        tokio::time::advance(Duration::from_secs(30)).await;
        let s = l.acquire(85).unwrap_err();
        assert_eq!(s.exceeded, Exceeded::Tokens);
        assert_eq!(l.acquire(101).unwrap_err().exceeded, Exceeded::TooLarge);
        let ok = l.acquire(70).unwrap();
        assert_eq!(ok.remaining_requests, 0);
        assert_eq!(ok.remaining_tokens, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_initial_budget_is_what_the_buckets_start_with() {
        // 6000 tokens/min = 100/s; 200 ms of it = 20 tokens.
        let mut l = Limits::new(None, Some(6000), Some(Duration::from_millis(200)));
        assert_eq!(l.peek().remaining_tokens, 20);
        let r = l.acquire(30).unwrap_err();
        assert_eq!(r.exceeded, Exceeded::Tokens);
        let wait = r.retry_after.unwrap().as_secs_f64();
        assert!((wait - 0.1).abs() < 1e-3, "{wait}");
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(l.acquire(30).unwrap().remaining_tokens, 0);
        // Empty: nothing until it refills; the limit reported is the minute's.
        let mut empty = Limits::new(Some(60), Some(6000), Some(Duration::ZERO));
        let r = empty.acquire(1).unwrap_err();
        assert_eq!((r.exceeded, r.limit), (Exceeded::Requests, 60));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(empty.acquire(100).is_ok());
    }
}
