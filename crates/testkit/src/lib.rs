//! Test support for embedding providers.
//!
//! * [`conformance`]: `async fn`s that take any `&dyn Embedder` and check the
//!   contract of DESIGN.md §2 (order, batch == single, dimension, empty
//!   input, unicode, typed errors, the §4 vectors).
//! * [`FakeServer`]: a fake OpenAI- and Ollama-compatible HTTP server on
//!   127.0.0.1 with fault injection (DESIGN.md §5). Every vector it returns is
//!   `embeddings_mock::vector(model, text, dimension)`, so a test can check
//!   every row. Also the `embeddings-fake-server` binary.
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

pub mod conformance;
mod server;

pub use crate::server::{
    DEFAULT_OPENAI_MODELS, DEFAULT_REQUEST_LOG_LIMIT, FIXED_DIMENSION_OPENAI_MODELS, FakeServer,
    FakeServerConfig, Fault, FaultAction, Latency, OPENAI_MAX_INPUT_TOKENS, OPENAI_MAX_INPUTS,
    OPENAI_MAX_REQUEST_TOKENS, OllamaModel, RateLimitedFault, RecordedRequest, Route, Stats,
    StatusFault, Trigger, count_tokens,
};
