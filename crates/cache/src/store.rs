//! The `Store` trait every cache backend implements.

use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;
use embeddings_core::{Error, ErrorKind, Result};

use crate::key::{Key, Space};

/// A backend of the cache: rows by [`Key`] within a [`Space`].
///
/// A row is the little-endian bytes of one vector in the space's output type
/// ([`Space::row_bytes`] of them). A store must never return a row that was
/// not written for that key (a torn, truncated or foreign value is a miss),
/// and keeps no text: keys are hashes.
///
/// Errors are the store's failures (unreachable, full, I/O); the cache
/// layer degrades the call to uncached on them (unless `strict`).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use embeddings_cache::{MemoryStore, Space, Store};
/// use embeddings_core::{InputType, OutputType, ProviderInfo};
///
/// let store = MemoryStore::new(1 << 20, None);
/// let space = Space::new(&ProviderInfo::new("mock", "mock", 2), 2, OutputType::F32);
/// let key = space.key(InputType::Document, "hello");
/// let row = bytes::Bytes::from([1.0f32, 0.0].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
/// store.put(&space, &[key], &[row.clone()]).await.unwrap();
/// assert_eq!(store.get(&space, &[key]).await.unwrap(), vec![Some(row)]);
/// # });
/// ```
#[async_trait]
pub trait Store: Send + Sync + Debug + 'static {
    /// A short name for metrics and messages (`memory`, `disk`, `redis`).
    fn name(&self) -> &'static str;

    /// The row of each key (`None`: not cached), in the order of `keys`.
    async fn get(&self, space: &Space, keys: &[Key]) -> Result<Vec<Option<Bytes>>>;

    /// Writes `rows[i]` under `keys[i]` (same length; a key already present
    /// keeps its row).
    async fn put(&self, space: &Space, keys: &[Key], rows: &[Bytes]) -> Result<()>;

    /// What the store holds.
    async fn stats(&self) -> Result<StoreStats> {
        Ok(StoreStats::default())
    }

    /// Reclaims space (drops dead rows, applies the size limit); returns
    /// the stats afterwards. Stores that manage themselves do nothing.
    async fn compact(&self) -> Result<StoreStats> {
        self.stats().await
    }

    /// Removes every row.
    async fn clear(&self) -> Result<()>;
}

/// What a store holds, as far as it knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Rows that can be looked up.
    pub entries: u64,
    /// Bytes used (files on disk, weighed entries in memory, values in Redis).
    pub bytes: u64,
    /// Spaces (fingerprint, dimension, output type) present.
    pub spaces: u64,
}

pub(crate) fn store_error(store: &str, what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("cache store {store}: {what}"),
    )
    .with_retryable(false)
}

pub(crate) fn check_put(keys: &[Key], rows: &[Bytes], space: &Space) -> Result<()> {
    if keys.len() != rows.len() {
        return Err(Error::new(
            ErrorKind::Internal,
            format!("cache put of {} keys with {} rows", keys.len(), rows.len()),
        ));
    }
    if let Some(r) = rows.iter().find(|r| r.len() != space.row_bytes()) {
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "cache put of a {}-byte row in a space of {}-byte rows",
                r.len(),
                space.row_bytes()
            ),
        ));
    }
    Ok(())
}
