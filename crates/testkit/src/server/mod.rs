//! The fake server (DESIGN.md §5): an engine (`engine.rs`: routing, faults,
//! limits, the request log, counters, connections) and dialects
//! (`dialect.rs`: the trait; `openai.rs`, `ollama.rs`: the two built in).
//! This module is the glue: [`FakeServer`], and
//! [`FakeServer::start`], which mounts the built-in dialects.

mod config;
pub(crate) mod dialect;
mod engine;
mod faults;
mod input;
mod limits;
mod ollama;
mod openai;
mod record;
mod route;
mod rows;
mod tokens;

use std::net::SocketAddr;

pub use self::config::{
    DEFAULT_OPENAI_MODELS, DEFAULT_REQUEST_LOG_LIMIT, FIXED_DIMENSION_OPENAI_MODELS,
    FakeServerConfig, Fault, FaultAction, Latency, OPENAI_MAX_INPUT_TOKENS, OPENAI_MAX_INPUTS,
    OPENAI_MAX_REQUEST_TOKENS, OllamaModel, RateLimitedFault, StatusFault, Trigger,
};
pub use self::engine::FakeServerBuilder;
pub use self::limits::{Exceeded, LimitRejection, LimitSnapshot, format_reset};
pub use self::ollama::{OllamaDialect, OllamaFixture};
pub use self::openai::{OpenAiDialect, OpenAiFixture};
pub use self::record::{RecordedRequest, Stats};
pub use self::route::Route;
pub use self::rows::{JsonRows, Rows};
pub use self::tokens::count_tokens;

/// A tokio runtime with one worker thread of its own for fake servers, so
/// that a bench measures its client apart from the server (and a client on
/// a current-thread runtime does not serve its own requests). Keep it
/// alive as long as the servers started on it.
///
/// ```
/// use embeddings_testkit::{FakeServer, FakeServerConfig, ServerRuntime};
/// let rt = ServerRuntime::new();
/// let server = FakeServer::start_on(&rt, FakeServerConfig::default()).unwrap();
/// assert!(server.openai_base_url().starts_with("http://127.0.0.1:"));
/// ```
#[derive(Debug)]
pub struct ServerRuntime(tokio::runtime::Runtime);

impl ServerRuntime {
    /// The runtime: one worker thread, IO and time enabled. Panics when the
    /// OS refuses a thread.
    pub fn new() -> ServerRuntime {
        ServerRuntime::with_workers(1)
    }

    /// The runtime with `workers` worker threads (at least one), so that
    /// concurrent requests are answered in parallel. Panics when the OS
    /// refuses a thread.
    pub fn with_workers(workers: usize) -> ServerRuntime {
        ServerRuntime(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers.max(1))
                .enable_all()
                .build()
                .expect("the fake server's runtime starts"),
        )
    }
}

impl Default for ServerRuntime {
    fn default() -> Self {
        ServerRuntime::new()
    }
}

/// A running fake server. It stops serving, and closes every connection, when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use embeddings_testkit::{FakeServer, FakeServerConfig};
/// let server = FakeServer::start(FakeServerConfig::default()).await?;
/// assert!(server.openai_base_url().ends_with("/v1"));
/// assert_eq!(server.dialects(), ["openai", "ollama"]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FakeServer {
    pub(crate) addr: SocketAddr,
    pub(crate) handle: engine::Handle,
}

impl FakeServer {
    /// The OpenAI and the Ollama dialects on one server, configured by
    /// `config` (models, key, Ollama version; the engine's host, port,
    /// faults, limits and log). Binds `config.host` (127.0.0.1 by default)
    /// on `config.port` (0: a free port) and serves on the current tokio
    /// runtime.
    ///
    /// Fails when the configuration is invalid (`InvalidInput`) or the port
    /// cannot be bound.
    pub async fn start(config: FakeServerConfig) -> std::io::Result<FakeServer> {
        FakeServer::builder()
            .dialect(OpenAiDialect::from_config(&config))
            .dialect(OllamaDialect::from_config(&config))
            .config(config)
            .start()
            .await
    }

    /// Starts a server (as [`FakeServer::start`]) on `rt`, from code that is
    /// not async: a bench's `main`, a blocking test. See [`ServerRuntime`].
    pub fn start_on(rt: &ServerRuntime, config: FakeServerConfig) -> std::io::Result<FakeServer> {
        rt.0.block_on(FakeServer::start(config))
    }

    /// A server of the dialects you mount (none by default: every path is a 404).
    pub fn builder() -> FakeServerBuilder {
        FakeServerBuilder::default()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the base URL for Ollama clients (`OLLAMA_HOST`)
    /// and what a [`Fixture`](crate::Fixture) is given.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1`: the base URL for OpenAI clients (`OPENAI_BASE_URL`).
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The names of the mounted dialects, in mounting order.
    pub fn dialects(&self) -> Vec<&'static str> {
        self.handle.dialects().collect()
    }

    /// Every mounted route.
    pub fn routes(&self) -> Vec<Route> {
        self.handle.routes().collect()
    }

    /// The latest requests received (see
    /// [`FakeServerConfig::request_log_limit`]), in arrival order, each
    /// described by its dialect (model, inputs, input and output type).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.handle.requests()
    }

    /// The counters since the start (or the last [`FakeServer::reset_stats`]).
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }

    /// Replaces the faults; their counters start again from zero. A fault
    /// scoped to a route this server does not serve never fires (see
    /// [`FakeServer::try_set_faults`]).
    pub fn set_faults(&self, faults: Vec<Fault>) {
        self.handle.set_faults(faults);
    }

    /// [`FakeServer::set_faults`], refusing (and changing nothing) when a
    /// fault names a route or dialect this server does not serve.
    pub fn try_set_faults(&self, faults: Vec<Fault>) -> Result<(), String> {
        self.handle.try_set_faults(faults)
    }

    /// Forgets the logged requests (the counters stay: see [`FakeServer::reset_stats`]).
    pub fn reset_log(&self) {
        self.handle.reset_log();
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&self) {
        self.handle.reset_stats();
    }

    /// Replaces the requests/tokens-per-minute limits (full buckets; `None`: not enforced).
    pub fn set_rate_limits(
        &self,
        requests_per_minute: Option<u32>,
        tokens_per_minute: Option<u32>,
    ) {
        self.handle
            .set_rate_limits(requests_per_minute, tokens_per_minute);
    }
}
