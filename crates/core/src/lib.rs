//! The contract every embedding provider implements, and the types shared by
//! providers, layers and applications.
//!
//! * [`Embedder`]: the async, dyn-compatible trait (`Arc<dyn Embedder>`);
//!   one required method, [`Embedder::embed`] of an [`EmbedRequest`]
//!   (inputs, [`InputType`], [`OutputType`], known token counts).
//! * [`Wrapper`] and [`Layer`]: the forwarding base of layers and the unit
//!   of the layer stack.
//! * [`RowSink`]: rows of the caller's result buffer that a provider may
//!   decode its answer straight into (set by the batch layer).
//! * [`Embeddings`]: one contiguous row-major buffer per batch (`f32`, or
//!   bytes for the quantized output types, see [`quantize`]).
//! * [`ProviderInfo`]: what the layers plan batches and limits with.
//! * [`Error`] / [`ErrorKind`]: typed failures, [`Error::is_retryable`] and
//!   [`Error::retry_after`].
//! * [`Config`]: the serde configuration (TOML or JSON), validated.
//! * [`registry`]: providers register themselves with `inventory` and are
//!   looked up by case-insensitive name.
//! * [`json_number`]: the strict, correctly rounded JSON-number-to-`f32`
//!   parser the providers' response decoders share.
//! * [`memory`]: large buffers backed by transparent huge pages on Linux,
//!   so that a batch of thousands of vectors faults cheaply.
//!
//! This crate depends on no HTTP client and names no provider.

mod config;
mod embedder;
mod embeddings;
mod error;
pub mod json_number;
pub mod memory;
pub mod quantize;
pub mod registry;
mod request;
pub mod sink;

pub use crate::config::{
    BatchConfig, ConcurrencyConfig, Config, ENV_DIMENSIONS, ENV_MODEL, ENV_PROVIDER,
    MAX_BATCH_SIZE, MAX_CONCURRENCY, MAX_DIMENSIONS, OverLengthPolicy, RateLimitConfig,
    RetryConfig, TimeoutConfig, redact_serde_message,
};
pub use crate::embedder::{
    BoxFuture, Embedder, EmbedderExt, Layer, LayerFn, ProviderInfo, Wrapper, estimate_tokens,
    single_row, split_by_bytes,
};
pub use crate::embeddings::{
    Embeddings, RateLimitSnapshot, RowRef, Rows, Usage, extend_f32_from_le_bytes, f32_from_le_bytes,
};
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::registry::{LayerRegistration, ProviderRegistration, registered};
pub use crate::request::{EmbedRequest, InputType, OutputType};
pub use crate::sink::{RowSink, SliceSink};

/// Re-exported so provider crates and applications use the same `async_trait`.
pub use async_trait::async_trait;
/// Re-exported so that provider crates register with the same `inventory`
/// version as core collects with.
pub use inventory;
/// Re-exported for API keys held in configuration.
pub use secrecy::{ExposeSecret, SecretString};
/// JSON values, as held in the untyped provider sections of [`Config`].
pub use serde_json::Value as JsonValue;
