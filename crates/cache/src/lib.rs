//! The cache layer of the `embeddings` crate (DESIGN.md §3, §9): a re-run
//! of the same texts costs no provider request.
//!
//! * [`CacheLayer`]: a [`Wrapper`](embeddings_core::Wrapper) that looks up
//!   every input's row by its [`Key`] (BLAKE3 over the provider fingerprint,
//!   model, dimension, input type, output type and text), sends only the
//!   misses on, in input order, and writes their rows back. Identical texts
//!   of one call and identical misses of concurrent calls are embedded once.
//!   A store that fails or times out degrades the call to uncached (metric
//!   `cache_errors`, one warning per outage) unless `strict = true`.
//!   `Usage::cached_rows` reports the hits.
//! * [`Store`]: [`MemoryStore`] (moka, bounded by bytes, optional TTL),
//!   [`DiskStore`] (a directory: append-only row files + a redb index, crash
//!   safe), `RedisStore` (feature `redis`, the default: MGET and pipelined
//!   `SET NX`), and a memory tier in front of either ([`CacheLayer::with_front`]).
//! * The `[cache]` section ([`CacheConfig`]); the layer registers itself at
//!   position 600 (inside prompts, outside batch), so enabling the `cache`
//!   feature of `embeddings` is all it takes.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use embeddings_cache::{CacheLayer, MemoryStore};
//! use embeddings_core::{EmbedRequest, Embedder, InputType};
//! use embeddings_mock::{MockEmbedder, vector};
//!
//! let cached = CacheLayer::memory(Arc::new(MockEmbedder::new("mock", 16).unwrap()), MemoryStore::new(1 << 20, None));
//! let texts = ["what is a cat?"];
//! cached.embed(EmbedRequest::query(&texts)).await.unwrap();
//! let again = cached.embed(EmbedRequest::query(&texts)).await.unwrap();
//! assert_eq!(again.row(0), vector("mock", "what is a cat?", 16).as_slice());
//! assert_eq!(again.usage().unwrap().cached_rows, 1);
//! // A document of the same text is another key.
//! let doc = cached.embed(EmbedRequest::new(&texts).with_input_type(InputType::Document)).await.unwrap();
//! assert_eq!(doc.usage().unwrap().cached_rows, 0);
//! # });
//! ```

mod config;
mod disk;
mod key;
mod layer;
mod memory;
#[cfg(feature = "redis")]
pub mod redis_conn;
#[cfg(feature = "redis")]
mod redis_store;
mod store;

use std::sync::Arc;

use embeddings_core::{Config, Embedder, Result};

pub use crate::config::{
    CacheConfig, DEFAULT_MEMORY_BYTES, DEFAULT_NAMESPACE, DEFAULT_TIMEOUT, FsyncPolicy, StoreKind,
    parse_bytes, redact_url,
};
pub use crate::disk::{DiskOptions, DiskStore};
pub use crate::key::{Key, Space};
pub use crate::layer::{
    CacheLayer, CacheStats, METRIC_ERRORS, METRIC_HITS, METRIC_MISSES, global_stats,
};
pub use crate::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use crate::redis_store::{HEADER_LEN, RedisOptions, RedisStore, decode_value, encode_value};
pub use crate::store::{Store, StoreStats};

/// The position of the cache layer in the stack (inside prompts at 700,
/// outside batch at 500).
pub const POSITION: u32 = 600;

/// Opens the store a `[cache]` section configures (`None` when it
/// configures none): what the layer uses, and what `embed cache stats`,
/// `compact` and `clear` work on.
pub fn open_store(c: &CacheConfig) -> Result<Option<Arc<dyn Store>>> {
    Ok(match c.store {
        None | Some(StoreKind::Memory) => None,
        Some(StoreKind::Disk) => {
            let path = c.path.clone().unwrap_or_default();
            Some(Arc::new(DiskStore::open(
                path,
                DiskOptions::new(c.max_bytes, c.fsync),
            )?))
        }
        #[cfg(feature = "redis")]
        Some(StoreKind::Redis) => Some(Arc::new(RedisStore::new(
            c.url.as_deref().unwrap_or_default(),
            RedisOptions::new(c.namespace.clone(), c.ttl, c.timeout),
        )?)),
        #[allow(unreachable_patterns)]
        Some(other) => {
            return Err(embeddings_core::Error::config(format!(
                "cache store {:?} is not in this build (enable the `redis` feature of embeddings-cache)",
                other.as_str()
            )));
        }
    })
}

/// Wraps `inner` in the cache layer `c` configures, or gives `inner` back
/// when `c` configures no store.
pub fn layer(c: &CacheConfig, inner: Arc<dyn Embedder>) -> Result<Arc<dyn Embedder>> {
    let Some(kind) = c.store else {
        return Ok(inner);
    };
    let mut layer = match open_store(c)? {
        None => CacheLayer::memory(
            inner,
            MemoryStore::new(c.max_bytes.unwrap_or(DEFAULT_MEMORY_BYTES), c.ttl),
        ),
        Some(store) => {
            let l = CacheLayer::new(inner, store);
            if c.memory_bytes > 0 && kind != StoreKind::Memory {
                l.with_front(MemoryStore::new(c.memory_bytes, c.ttl))
            } else {
                l
            }
        }
    };
    layer = layer.strict(c.strict).timeout(c.timeout);
    Ok(Arc::new(layer))
}

/// The cache layer of a configuration: its `[cache]` section, parsed and
/// applied (the function the layer registration calls).
pub fn from_config(config: &Config, inner: Arc<dyn Embedder>) -> Result<Arc<dyn Embedder>> {
    if !config.has_section("cache") {
        return Ok(inner); // no section, no layer, no allocation
    }
    layer(&CacheConfig::from_config(config)?, inner)
}

embeddings_core::register_layer! {
    name: "cache",
    description: "per-row cache of vectors in memory, on disk or in Redis ([cache])",
    position: POSITION,
    build: from_config,
}
