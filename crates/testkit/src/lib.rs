//! Test support for embedding providers.
//!
//! * [`conformance`]: `async fn`s that take any `&dyn Embedder` and check the
//!   contract of DESIGN.md §2 (order, batch == single, dimension, empty
//!   input, unicode, typed errors, the §4 vectors).
//! * [`FakeServer`]: a fake embedding server on 127.0.0.1 with fault
//!   injection (DESIGN.md §5): an engine (routing, faults, rpm/tpm limits,
//!   the request log, counters) and [`dialect`]s, one per API (OpenAI and
//!   Ollama built in: [`OpenAiDialect`], [`OllamaDialect`]; a provider crate
//!   adds its own). Every vector it returns is
//!   `embeddings_mock::vector(model, text, dimension)`, so a test can check
//!   every row. Also the `embeddings-fake-server` binary.
//! * [`fixture`]s: how to build each provider against a fake server, so
//!   that the conformance suite and the fault matrix run over every
//!   provider that registers one.
//! * [`LeakCheck`]: the no-secret-leak test every provider brings (trace
//!   logs, errors and `Debug` searched for the key).
//! * [`RedisServer`]: a real `redis-server` on a free port of 127.0.0.1 for
//!   the tests of the Redis stores, queues and the shared rate limit.
//! * [`budget`]: the check that many embedders kept one shared
//!   tokens-per-minute budget and used it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! use embeddings_testkit::{FakeServer, FakeServerConfig, Fault, FaultAction, Route, StatusFault, Trigger};
//!
//! let server = FakeServer::start(FakeServerConfig::default()).await?;
//! // Every 3rd OpenAI request fails with 503.
//! server.set_faults(vec![
//!     Fault::new(FaultAction::Status(StatusFault::new(503)))
//!         .on(Route::Openai)
//!         .when(Trigger::EveryNth(3)),
//! ]);
//! println!("OPENAI_BASE_URL={}", server.openai_base_url());
//! println!("OLLAMA_HOST={}", server.addr());
//! # Ok(()) }
//! ```

pub mod budget;
pub mod conformance;
pub mod fixture;
mod leak;
mod redis;
mod server;

/// Writing a dialect: the trait, what the engine hands a handler, and what
/// a handler answers (see [`Dialect`]).
pub mod dialect {
    pub use crate::server::dialect::{
        Dialect, EngineError, Exchange, IntoStatus, JSON, Reply, RequestSummary, RouteSpec,
        RowFaultKind, RowStyle, default_status_message,
    };
    pub use crate::server::{
        Exceeded, JsonRows, LimitRejection, LimitSnapshot, Rows, format_reset,
    };
}

pub use crate::dialect::Dialect;
pub use crate::fixture::{Fixture, FixtureRegistration, fixtures, fixtures_registered};
pub use crate::leak::LeakCheck;
pub use crate::redis::RedisServer;
pub use crate::server::{
    DEFAULT_OPENAI_MODELS, DEFAULT_REQUEST_LOG_LIMIT, FIXED_DIMENSION_OPENAI_MODELS, FakeServer,
    FakeServerBuilder, FakeServerConfig, Fault, FaultAction, Latency, OPENAI_MAX_INPUT_TOKENS,
    OPENAI_MAX_INPUTS, OPENAI_MAX_REQUEST_TOKENS, OllamaDialect, OllamaFixture, OllamaModel,
    OpenAiDialect, OpenAiFixture, RateLimitedFault, RecordedRequest, Route, ServerRuntime, Stats,
    StatusFault, Trigger, count_tokens,
};

#[doc(hidden)]
pub use embeddings_core::inventory as __inventory;
