//! The contract every embedding provider implements, and the types shared by
//! providers, layers and applications.
//!
//! * [`Embedder`]: the async, dyn-compatible trait (`Arc<dyn Embedder>`).
//! * [`Embeddings`]: one contiguous row-major `f32` buffer per batch.
//! * [`ProviderInfo`]: what the layers plan batches and limits with.
//! * [`Error`] / [`ErrorKind`]: typed failures, [`Error::is_retryable`] and
//!   [`Error::retry_after`].
//! * [`Config`]: the serde configuration (TOML or JSON), validated.
//! * [`registry`]: providers register themselves with `inventory` and are
//!   looked up by case-insensitive name.
//! * [`json_number`]: the strict, correctly rounded JSON-number-to-`f32`
//!   parser the providers' response decoders share.
//!
//! This crate depends on no HTTP client and names no provider.

mod config;
mod embedder;
mod embeddings;
mod error;
pub mod json_number;
pub mod registry;

pub use crate::config::{
    BatchConfig, ConcurrencyConfig, Config, ENV_DIMENSIONS, ENV_MODEL, ENV_PROVIDER,
    OverLengthPolicy, RateLimitConfig, RetryConfig, TimeoutConfig,
};
pub use crate::embedder::{Embedder, EmbedderExt, ProviderInfo, estimate_tokens, split_by_bytes};
pub use crate::embeddings::{Embeddings, RateLimitSnapshot, Rows, Usage};
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::registry::{ProviderRegistration, registered};

/// Re-exported so provider crates and applications use the same `async_trait`.
pub use async_trait::async_trait;
/// Re-exported so that provider crates register with the same `inventory`
/// version as core collects with.
pub use inventory;
/// Re-exported for API keys held in configuration.
pub use secrecy::{ExposeSecret, SecretString};
/// JSON values, as held in the untyped provider sections of [`Config`].
pub use serde_json::Value as JsonValue;
