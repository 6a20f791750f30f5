//! The in-memory store: moka, bounded by bytes, optional time to live.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use embeddings_core::Result;

use crate::key::{Key, Space};
use crate::store::{Store, StoreStats, check_put};

/// Bytes an entry is weighed at beyond its row (key, moka's bookkeeping).
const ENTRY_OVERHEAD: u32 = 96;

/// Rows in process memory (moka), evicted by size (TinyLFU) past
/// `max_bytes` and after `ttl` when set. Lookups never fail.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use embeddings_cache::{MemoryStore, Space, Store};
/// use embeddings_core::{InputType, OutputType, ProviderInfo};
/// let store = MemoryStore::new(64 << 20, None);
/// let space = Space::new(&ProviderInfo::new("mock", "mock", 8), 8, OutputType::Int8);
/// let k = space.key(InputType::Query, "q");
/// assert_eq!(store.get(&space, &[k]).await.unwrap(), vec![None]);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct MemoryStore {
    cache: moka::sync::Cache<Key, Bytes>,
    max_bytes: u64,
}

impl MemoryStore {
    /// A store of at most `max_bytes` (rows plus about 96 bytes per entry),
    /// entries expiring `ttl` after they were written when set.
    pub fn new(max_bytes: u64, ttl: Option<Duration>) -> MemoryStore {
        let mut b = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_: &Key, v: &Bytes| {
                u32::try_from(v.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(ENTRY_OVERHEAD)
            });
        if let Some(ttl) = ttl {
            b = b.time_to_live(ttl);
        }
        MemoryStore {
            cache: b.build(),
            max_bytes,
        }
    }

    /// The row of `key`, synchronously (what [`Store::get`] does per key).
    #[inline]
    pub fn get_one(&self, space: &Space, key: &Key) -> Option<Bytes> {
        self.cache
            .get(key)
            .filter(|row| row.len() == space.row_bytes())
    }

    /// Stores one row, synchronously.
    #[inline]
    pub fn put_one(&self, key: Key, row: Bytes) {
        self.cache.insert(key, row);
    }

    /// The byte bound it was built with.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, space: &Space, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        Ok(keys.iter().map(|k| self.get_one(space, k)).collect())
    }

    async fn put(&self, space: &Space, keys: &[Key], rows: &[Bytes]) -> Result<()> {
        check_put(keys, rows, space)?;
        for (k, r) in keys.iter().zip(rows) {
            self.cache.insert(*k, r.clone());
        }
        Ok(())
    }

    async fn stats(&self) -> Result<StoreStats> {
        self.cache.run_pending_tasks();
        Ok(StoreStats {
            entries: self.cache.entry_count(),
            bytes: self.cache.weighted_size(),
            spaces: 0,
        })
    }

    async fn compact(&self) -> Result<StoreStats> {
        self.stats().await
    }

    async fn clear(&self) -> Result<()> {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embeddings_core::{InputType, OutputType};

    #[tokio::test]
    async fn the_byte_bound_holds() {
        let store = MemoryStore::new(64 * 1024, None);
        let space = Space::from_parts("f", "m", 256, OutputType::F32);
        for i in 0..1000 {
            let k = space.key(InputType::Document, &i.to_string());
            store
                .put(&space, &[k], &[Bytes::from(vec![0u8; 1024])])
                .await
                .unwrap();
        }
        let s = store.stats().await.unwrap();
        assert!(s.bytes <= 64 * 1024, "{s:?}");
        assert!(s.entries > 0 && s.entries < 1000, "{s:?}");
    }
}
