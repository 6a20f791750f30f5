//! The corpus queue on a Redis Stream with a consumer group.
//!
//! Keys of job `NAME` (all under `embed:job:{NAME}:`):
//! - `meta`: a hash: the job's identity (`input`, `settings`, `format`),
//!   `total` inputs, `chunk` size, `chunks`, and `reclaimed` (how many
//!   times a chunk was taken over from a worker that stopped);
//! - `stream`: one entry per chunk (`first`, `end`), consumer group `workers`;
//! - `done`: a set of the first inputs of acknowledged chunks;
//! - `failed`: a hash, first input -> message, of chunks given up on.
//!
//! A chunk is delivered by `XREADGROUP` (new) or taken over by
//! `XAUTOCLAIM` once idle for the claim timeout (its worker died); a worker
//! keeps its claim fresh with `XCLAIM .. JUSTID` while it works; `XACK` and
//! `SADD done` run in one `MULTI` once the chunk's part is written.

use std::time::Duration;

use embeddings_cache::redis_conn::RedisConnection;
use embeddings_core::{Error, ErrorKind, Result};
use redis::Value;
use redis::aio::ConnectionManager;

use crate::{Chunk, JobSpec, QueueStatus, TIMEOUT};

const GROUP: &str = "workers";

/// What the join script answers: created?, then the job's input, settings,
/// format, total and chunk.
type JoinReply = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);
/// `HGET chunks`, `HGET total`, `SCARD done`, `HGETALL failed`, `HGET reclaimed`.
type StatusReply = (
    Option<u64>,
    Option<u64>,
    u64,
    Vec<(u64, String)>,
    Option<u64>,
);

/// Enqueues a job once: when `meta` exists, returns what it holds; else
/// writes it, creates the stream and its group and adds every chunk, all
/// in one script (so two first workers cannot both enqueue).
const JOIN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  local m = redis.call('HMGET', KEYS[1], 'input', 'settings', 'format', 'total', 'chunk')
  return {0, m[1], m[2], m[3], m[4], m[5]}
end
local total = tonumber(ARGV[4])
local chunk = tonumber(ARGV[5])
redis.call('DEL', KEYS[2])
redis.call('XGROUP', 'CREATE', KEYS[2], 'workers', '0', 'MKSTREAM')
local n = 0
local first = 0
while first < total do
  local e = math.min(first + chunk, total)
  redis.call('XADD', KEYS[2], '*', 'first', string.format('%d', first), 'end', string.format('%d', e))
  n = n + 1
  first = e
end
redis.call('HSET', KEYS[1], 'input', ARGV[1], 'settings', ARGV[2], 'format', ARGV[3],
  'total', ARGV[4], 'chunk', ARGV[5], 'chunks', n)
return {1, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]}
";

/// A corpus job's queue on one Redis server (see the module docs).
#[derive(Debug)]
pub struct CorpusQueue {
    conn: RedisConnection,
    job: String,
    meta: String,
    stream: String,
    done: String,
    failed: String,
}

impl CorpusQueue {
    /// The queue of job `job` on the server at `url`. Does not connect yet.
    pub fn new(url: &str, job: &str) -> Result<CorpusQueue> {
        if job.is_empty()
            || job.len() > 200
            || !job
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return Err(Error::config(format!(
                "`--job` = {job:?}: a job name is 1 to 200 letters, digits, `-`, `_`, `.` or `:`"
            )));
        }
        let conn = RedisConnection::new(url, "--queue", TIMEOUT)?;
        let key = |k: &str| format!("embed:job:{{{job}}}:{k}");
        Ok(CorpusQueue {
            meta: key("meta"),
            stream: key("stream"),
            done: key("done"),
            failed: key("failed"),
            conn,
            job: job.to_owned(),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::Connection,
            format!("job queue {}", self.conn.describe(e)),
        )
    }

    async fn con(&self) -> Result<ConnectionManager> {
        self.conn
            .manager()
            .await
            .map_err(|m| Error::new(ErrorKind::Connection, format!("job queue {m}")))
    }

    /// Joins the job: enqueues it when this worker is the first (then
    /// `true`), else checks that `spec` is the job's identity and refuses
    /// it, naming what differs, when it is not.
    pub async fn join(&self, spec: &JobSpec) -> Result<bool> {
        let mut con = self.con().await?;
        let script = redis::Script::new(JOIN);
        let (created, input, settings, format, total, chunk): JoinReply = script
            .key(&self.meta)
            .key(&self.stream)
            .arg(&spec.input)
            .arg(&spec.settings)
            .arg(&spec.format)
            .arg(spec.total)
            .arg(spec.chunk)
            .invoke_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        let mut differs = Vec::new();
        if input.as_deref() != Some(spec.input.as_str()) {
            differs.push("the input (its content, format or fields)".to_owned());
        }
        if settings.as_deref() != Some(spec.settings.as_str()) {
            differs.push(
                "the provider settings (provider, model, dimensions, input or output type)"
                    .to_owned(),
            );
        }
        if format.as_deref() != Some(spec.format.as_str()) {
            differs.push(format!(
                "the output format ({} then, {} now)",
                format.as_deref().unwrap_or("?"),
                spec.format
            ));
        }
        if chunk.as_deref() != Some(spec.chunk.to_string().as_str()) {
            differs.push(format!(
                "the chunk size ({} then, {} now)",
                chunk.as_deref().unwrap_or("?"),
                spec.chunk
            ));
        }
        if total.as_deref() != Some(spec.total.to_string().as_str()) && differs.is_empty() {
            differs.push("the number of inputs".to_owned());
        }
        if !differs.is_empty() {
            return Err(Error::invalid_input(format!(
                "job {:?} on {} was started otherwise: this worker differs in {}; give this run \
                 another --job name, or the same input and settings as the job's other workers",
                self.job,
                self.conn.url(),
                differs.join(", and in ")
            )));
        }
        Ok(created == 1)
    }

    /// The next chunk for `consumer`: one idle for longer than `idle` (its
    /// worker stopped reporting), else a new one; `None` when neither is.
    pub async fn claim(&self, consumer: &str, idle: Duration) -> Result<Option<Chunk>> {
        let mut con = self.con().await?;
        let reply: Value = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(idle.as_millis().max(1) as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        let taken = match &reply {
            Value::Array(parts) => match parts.get(1) {
                Some(Value::Array(entries)) => entries.iter().find_map(entry),
                _ => None,
            },
            _ => None,
        };
        if let Some(c) = taken {
            // Counted for `embed queue status` (a take-over is worth seeing).
            redis::cmd("HINCRBY")
                .arg(&self.meta)
                .arg("reclaimed")
                .arg(1)
                .query_async::<Value>(&mut con)
                .await
                .map_err(|e| self.err(e))?;
            return Ok(Some(Chunk {
                reclaimed: true,
                ..c
            }));
        }
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        Ok(first_read_entry(&reply))
    }

    /// Keeps `consumer`'s claim on `chunk` fresh (resets its idle time), so
    /// that no other worker takes it over while this one works.
    pub async fn keep(&self, consumer: &str, chunk: &Chunk) -> Result<()> {
        let mut con = self.con().await?;
        redis::cmd("XCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(0)
            .arg(&chunk.id)
            .arg("JUSTID")
            .query_async::<Value>(&mut con)
            .await
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Acknowledges `chunk`: its part is written.
    pub async fn complete(&self, chunk: &Chunk) -> Result<()> {
        let mut con = self.con().await?;
        redis::pipe()
            .atomic()
            .cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&chunk.id)
            .ignore()
            .cmd("SADD")
            .arg(&self.done)
            .arg(chunk.first)
            .ignore()
            .cmd("HDEL")
            .arg(&self.failed)
            .arg(chunk.first)
            .ignore()
            .query_async::<()>(&mut con)
            .await
            .map_err(|e| self.err(e))
    }

    /// Gives `chunk` up (its inputs were refused): recorded with `message`
    /// and acknowledged, so that no worker tries it again.
    pub async fn fail(&self, chunk: &Chunk, message: &str) -> Result<()> {
        let mut con = self.con().await?;
        redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&self.failed)
            .arg(chunk.first)
            .arg(message)
            .ignore()
            .cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&chunk.id)
            .ignore()
            .query_async::<()>(&mut con)
            .await
            .map_err(|e| self.err(e))
    }

    /// Where the job stands; an error when no such job was enqueued.
    pub async fn status(&self) -> Result<QueueStatus> {
        let mut con = self.con().await?;
        let (chunks, total, done, failed, reclaimed): StatusReply = redis::pipe()
            .cmd("HGET")
            .arg(&self.meta)
            .arg("chunks")
            .cmd("HGET")
            .arg(&self.meta)
            .arg("total")
            .cmd("SCARD")
            .arg(&self.done)
            .cmd("HGETALL")
            .arg(&self.failed)
            .cmd("HGET")
            .arg(&self.meta)
            .arg("reclaimed")
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        let Some(chunks) = chunks else {
            return Err(Error::invalid_input(format!(
                "no job {:?} on {}: its first worker enqueues it",
                self.job,
                self.conn.url()
            )));
        };
        let pending: Value = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(GROUP)
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        let in_progress = match &pending {
            Value::Array(v) => match v.first() {
                Some(Value::Int(n)) => *n as u64,
                _ => 0,
            },
            _ => 0,
        };
        let mut failed = failed;
        failed.sort();
        let settled = done + failed.len() as u64 + in_progress;
        Ok(QueueStatus {
            chunks,
            total: total.unwrap_or(0),
            pending: chunks.saturating_sub(settled),
            in_progress,
            done,
            failed,
            reclaimed: reclaimed.unwrap_or(0),
        })
    }

    /// Deletes every key of the job (its identity, chunks, done and failed
    /// sets); `false` when there was no such job. Workers still at work on
    /// it would then fail their next acknowledgement: callers check
    /// [`status`](Self::status) first.
    pub async fn delete(&self) -> Result<bool> {
        let mut con = self.con().await?;
        let removed: u64 = redis::cmd("DEL")
            .arg(&self.meta)
            .arg(&self.stream)
            .arg(&self.done)
            .arg(&self.failed)
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        Ok(removed > 0)
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// A stream entry `[id, [field, value, ...]]` as a chunk.
fn entry(v: &Value) -> Option<Chunk> {
    let Value::Array(e) = v else { return None };
    let id = text(e.first()?)?;
    let Value::Array(fields) = e.get(1)? else {
        return None;
    };
    let (mut first, mut end) = (None, None);
    for pair in fields.chunks(2) {
        if let [k, v] = pair {
            match text(k)?.as_str() {
                "first" => first = text(v)?.parse().ok(),
                "end" => end = text(v)?.parse().ok(),
                _ => {}
            }
        }
    }
    Some(Chunk {
        id,
        first: first?,
        end: end?,
        reclaimed: false,
    })
}

/// The first entry of an `XREADGROUP` reply (`[[stream, [entry, ..]]]`, or
/// a map of stream to entries in RESP3).
fn first_read_entry(v: &Value) -> Option<Chunk> {
    match v {
        Value::Array(streams) => streams.iter().find_map(|s| match s {
            Value::Array(pair) => match pair.get(1) {
                Some(Value::Array(entries)) => entries.iter().find_map(entry),
                _ => None,
            },
            _ => None,
        }),
        Value::Map(m) => m.iter().find_map(|(_, es)| match es {
            Value::Array(entries) => entries.iter().find_map(entry),
            _ => None,
        }),
        _ => None,
    }
}
