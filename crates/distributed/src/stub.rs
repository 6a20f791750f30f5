//! The queue in a build without the `redis` feature: the same API, and a
//! constructor that says which feature is missing.

use std::convert::Infallible;
use std::time::Duration;

use embeddings_core::Result;

use crate::{Chunk, JobSpec, QueueStatus, missing_feature};

/// A corpus job's queue (this build lacks Redis: [`CorpusQueue::new`] fails).
#[derive(Debug)]
pub struct CorpusQueue {
    never: Infallible,
}

impl CorpusQueue {
    /// Always an error naming the missing `redis` feature.
    pub fn new(_url: &str, _job: &str) -> Result<CorpusQueue> {
        Err(missing_feature("`--queue`"))
    }
    /// Never called (no queue exists).
    pub async fn join(&self, _spec: &JobSpec) -> Result<bool> {
        match self.never {}
    }
    /// Never called (no queue exists).
    pub async fn claim(&self, _consumer: &str, _idle: Duration) -> Result<Option<Chunk>> {
        match self.never {}
    }
    /// Never called (no queue exists).
    pub async fn keep(&self, _consumer: &str, _chunk: &Chunk) -> Result<()> {
        match self.never {}
    }
    /// Never called (no queue exists).
    pub async fn complete(&self, _chunk: &Chunk) -> Result<()> {
        match self.never {}
    }
    /// Never called (no queue exists).
    pub async fn fail(&self, _chunk: &Chunk, _message: &str) -> Result<()> {
        match self.never {}
    }
    /// Never called (no queue exists).
    pub async fn status(&self) -> Result<QueueStatus> {
        match self.never {}
    }
    /// Never called (no queue exists).
    pub async fn delete(&self) -> Result<bool> {
        match self.never {}
    }
}

/// The shared rate limit (this build lacks Redis: [`SharedLimiter::new`] fails).
#[derive(Debug)]
pub struct SharedLimiter {
    never: Infallible,
}

impl SharedLimiter {
    /// How far ahead of the paced schedule a request may start.
    pub const BURST: Duration = Duration::from_millis(100);

    /// Always an error naming the missing `redis` feature.
    pub fn new(
        _url: &str,
        _key: &str,
        _requests_per_minute: Option<u32>,
        _tokens_per_minute: Option<u32>,
    ) -> Result<SharedLimiter> {
        Err(missing_feature("`rate_limit.shared`"))
    }
    /// Never called (no limiter exists).
    pub async fn acquire(&self, _requests: u32, _tokens: u64) -> Result<()> {
        match self.never {}
    }
    /// Never called (no limiter exists).
    pub async fn hold(&self, _d: Duration) -> Result<()> {
        match self.never {}
    }
}
