//! The shared rate limit: one token-weighted GCRA per budget (requests per
//! minute, tokens per minute) in Redis, both checked and charged by one Lua
//! script (`EVALSHA`; loaded on first use and again after `NOSCRIPT`, e.g.
//! when the server restarted).
//!
//! Each budget is a theoretical arrival time (TAT, microseconds on the
//! server's `TIME`, so every machine shares one clock): a request of cost
//! `c` passes when `TAT - now <= burst` and moves `TAT` to
//! `max(TAT, now) + c * 60 s / limit`; else the script answers how long to
//! wait. The burst ([`SharedLimiter::BURST`]) is small on purpose: the
//! budget is paced, never spent in a rush that the provider's own window
//! would refuse; it only lets a worker that woke a little late catch up.

use std::time::Duration;

use embeddings_cache::redis_conn::RedisConnection;
use embeddings_core::{Error, ErrorKind, Result};

use crate::TIMEOUT;

/// KEYS: requests TAT, tokens TAT. ARGV: requests per minute, tokens per
/// minute (0: none), request cost, token cost, burst (µs), hold (µs).
/// Returns 0 when the request was charged, else the wait in µs. A hold > 0
/// only pushes both TATs to at least `now + hold` (the adaptive pause, for
/// every process).
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local burst = tonumber(ARGV[5])
local hold = tonumber(ARGV[6])
local function tat(k)
  local v = redis.call('GET', k)
  if v then return math.max(tonumber(v), now) end
  return now
end
if hold > 0 then
  for i = 1, 2 do
    if tonumber(ARGV[i]) > 0 then
      local v = math.max(tat(KEYS[i]), now + hold)
      redis.call('SET', KEYS[i], string.format('%.0f', v), 'PX', math.floor((v - now) / 1000) + 60000)
    end
  end
  return 0
end
local wait = 0
local new = {}
for i = 1, 2 do
  local limit = tonumber(ARGV[i])
  local cost = tonumber(ARGV[i + 2])
  if limit > 0 and cost > 0 then
    local at = tat(KEYS[i])
    if at - now - burst > wait then wait = at - now - burst end
    new[i] = at + cost * 60000000 / limit
  end
end
if wait > 0 then return math.floor(wait) + 1 end
for i = 1, 2 do
  if new[i] then
    redis.call('SET', KEYS[i], string.format('%.0f', new[i]), 'PX', math.floor((new[i] - now) / 1000) + 60000)
  end
end
return 0
";

/// Requests/min and tokens/min held in Redis for every process that uses
/// the same server and key (see the module docs).
#[derive(Debug)]
pub struct SharedLimiter {
    conn: RedisConnection,
    requests_key: String,
    tokens_key: String,
    requests_per_minute: u32,
    tokens_per_minute: u32,
    script: redis::Script,
}

impl SharedLimiter {
    /// How far ahead of the paced schedule a request may start.
    pub const BURST: Duration = Duration::from_millis(100);

    /// The budget `key` on the server at `url`. Does not connect yet.
    pub fn new(
        url: &str,
        key: &str,
        requests_per_minute: Option<u32>,
        tokens_per_minute: Option<u32>,
    ) -> Result<SharedLimiter> {
        let conn = RedisConnection::new(url, "rate_limit.shared", TIMEOUT)?;
        Ok(SharedLimiter {
            conn,
            requests_key: format!("embed:rl:{{{key}}}:requests"),
            tokens_key: format!("embed:rl:{{{key}}}:tokens"),
            requests_per_minute: requests_per_minute.unwrap_or(0),
            tokens_per_minute: tokens_per_minute.unwrap_or(0),
            script: redis::Script::new(GCRA),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::Connection,
            format!("shared rate limit {}", self.conn.describe(e)),
        )
    }

    async fn call(&self, requests: u32, tokens: u64, hold: Duration) -> Result<u64> {
        let mut con = self
            .conn
            .manager()
            .await
            .map_err(|m| Error::new(ErrorKind::Connection, format!("shared rate limit {m}")))?;
        // A request larger than the whole minute's budget is charged the
        // whole budget (it waits for a full minute, as the local limiter does).
        let tokens = tokens.min(u64::from(self.tokens_per_minute).max(1));
        self.script
            .key(&self.requests_key)
            .key(&self.tokens_key)
            .arg(self.requests_per_minute)
            .arg(self.tokens_per_minute)
            .arg(requests)
            .arg(tokens)
            .arg(Self::BURST.as_micros() as u64)
            .arg(hold.as_micros() as u64)
            .invoke_async(&mut con)
            .await
            .map_err(|e| self.err(e))
    }

    /// Waits until `requests` requests and `tokens` tokens fit the shared
    /// budgets, and charges them. An error when Redis cannot be reached.
    pub async fn acquire(&self, requests: u32, tokens: u64) -> Result<()> {
        loop {
            let wait = self.call(requests, tokens, Duration::ZERO).await?;
            if wait == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_micros(wait)).await;
        }
    }

    /// Holds every process's new requests for `d` (what the server's
    /// rate-limit headers or a 429's `retry-after` asked for).
    pub async fn hold(&self, d: Duration) -> Result<()> {
        if d.is_zero() {
            return Ok(());
        }
        self.call(0, 0, d).await.map(drop)
    }
}
