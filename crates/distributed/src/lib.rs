//! One embeddings job across many workers (DESIGN.md §10), on Redis.
//!
//! [`CorpusQueue`]: a corpus job's chunks (ranges of input lines) in a Redis
//! Stream with a consumer group. The first worker to arrive enqueues every
//! chunk together with the job's identity (a fingerprint of the input, of
//! the provider settings and of the output format) in one Lua script, so
//! that two workers arriving at once cannot both enqueue; a worker whose
//! identity differs is refused with an error that says what differs. Workers
//! claim chunks (a chunk idle for longer than the claim timeout — its worker
//! died — is reclaimed with `XAUTOCLAIM`), keep their claim alive while they
//! work, and acknowledge a chunk once its part is written.
//!
//! [`SharedLimiter`]: requests/min and tokens/min for every process of
//! every machine that names the same Redis server and key, as a
//! token-weighted GCRA in one Lua script (the facade's rate-limit layer uses
//! it when `[rate_limit] shared` is set).
//!
//! The Redis pieces are behind this crate's `redis` feature (the facade's
//! `redis` feature). Without it the same API exists and
//! [`CorpusQueue::new`] returns a configuration error naming the missing
//! feature, so callers need no `cfg` of their own.
//!
//! ```
//! use embeddings_distributed::CorpusQueue;
//! // Does not connect yet; a bad URL (or a build without Redis) is an error.
//! let q = CorpusQueue::new("redis://127.0.0.1:1/0", "my-job");
//! # let _ = q;
//! ```

use std::time::Duration;

use embeddings_core::Error;

/// What identifies a queued job: workers of one job must agree on all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// Fingerprint of the input (its bytes, formats and fields).
    pub input: String,
    /// Fingerprint of the provider settings that decide the vectors.
    pub settings: String,
    /// The output format and type (`npy f32`).
    pub format: String,
    /// Inputs in the whole job.
    pub total: u64,
    /// Inputs per chunk.
    pub chunk: u64,
}

/// One chunk of a job: inputs `first..end` (0-based, in input order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The stream entry's id.
    pub id: String,
    /// Index of the chunk's first input.
    pub first: u64,
    /// One past its last input.
    pub end: u64,
    /// Whether it was taken over from a worker that stopped reporting.
    pub reclaimed: bool,
}

/// Where a job stands (`embed queue status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStatus {
    /// Chunks in the job.
    pub chunks: u64,
    /// Inputs in the job.
    pub total: u64,
    /// Not handed to any worker yet.
    pub pending: u64,
    /// Handed to a worker, not acknowledged.
    pub in_progress: u64,
    /// Written and acknowledged.
    pub done: u64,
    /// Given up on (first input and message), in input order.
    pub failed: Vec<(u64, String)>,
    /// How many times a chunk was taken over from a worker that stopped
    /// renewing its claim (died, or was too slow for `--claim-timeout`).
    pub reclaimed: u64,
}

impl QueueStatus {
    /// Whether no chunk is left to do (every one done or failed).
    pub fn finished(&self) -> bool {
        self.done + self.failed.len() as u64 >= self.chunks
    }
}

/// How long one Redis command may take before it is an error.
pub const TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(feature = "redis")]
mod limiter;
#[cfg(feature = "redis")]
mod queue;
#[cfg(feature = "redis")]
pub use limiter::SharedLimiter;
#[cfg(feature = "redis")]
pub use queue::CorpusQueue;

#[cfg(not(feature = "redis"))]
mod stub;
#[cfg(not(feature = "redis"))]
pub use stub::{CorpusQueue, SharedLimiter};

/// The error of every Redis-backed constructor in a build without Redis.
pub fn missing_feature(what: &str) -> Error {
    Error::config(format!(
        "{what} needs Redis, and this build of embeddings lacks its `redis` feature \
         (build with `--features redis`, or `full`)"
    ))
}
