//! The Redis store: MGET for lookups, pipelined `SET NX` (with the TTL) for
//! writes, values as raw little-endian rows behind a 16-byte header.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use embeddings_core::{Error, ErrorKind, OutputType, Result};
use redis::aio::ConnectionManager;

use crate::key::{Key, Space};
use crate::store::{Store, StoreStats, check_put, store_error};

/// Bytes of the header in front of every value.
pub const HEADER_LEN: usize = 16;
const MAGIC: [u8; 2] = *b"EC";
/// The version written: 2, checksum xxh3-64 over the 32-byte key and the
/// row; version 1 (BLAKE3 keyed by the key over the row, first 8 bytes),
/// written before, is still read.
const VERSION: u8 = 2;

/// Options of a [`RedisStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Prefix of every key: `{namespace}:{64 hex digits}`.
    pub namespace: String,
    /// Expiry of written values; `None`: none.
    pub ttl: Option<Duration>,
    /// Connection and response timeout of the connection manager.
    pub timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            namespace: crate::config::DEFAULT_NAMESPACE.to_owned(),
            ttl: None,
            timeout: crate::config::DEFAULT_TIMEOUT,
        }
    }
}

impl RedisOptions {
    /// Options with a namespace, a TTL and a timeout.
    pub fn new(namespace: impl Into<String>, ttl: Option<Duration>, timeout: Duration) -> Self {
        RedisOptions {
            namespace: namespace.into(),
            ttl,
            timeout,
        }
    }
}

/// Rows in a Redis server, shared by every process that uses the same
/// server and namespace.
///
/// The connection is made on first use (so building the store never waits
/// for or fails on the server) and re-made by redis-rs's connection manager
/// after the server went away. A value is `[b"EC", version 2, output type,
/// dimension: u32 LE, checksum: 8 bytes][row]`; a value whose header or
/// checksum (xxh3-64 over key and row; BLAKE3 in the version-1 values of
/// earlier versions, still read) does not match is a miss. The URL's
/// password never appears in `Debug` or in an error.
pub struct RedisStore {
    conn: crate::redis_conn::RedisConnection,
    options: RedisOptions,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.conn.url())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn output_code(t: OutputType) -> u8 {
    OutputType::ALL
        .iter()
        .position(|x| *x == t)
        .map_or(255, |i| i as u8)
}

/// The checksum of `row` under `key` in a value of `version` (so it also
/// proves the key): it detects a torn, truncated or foreign value; the
/// server is trusted not to forge one, so a cryptographic hash buys nothing
/// and xxh3 costs a fraction of BLAKE3 over a 6 KiB row.
fn checksum(version: u8, key: &Key, row: &[u8]) -> [u8; 8] {
    if version == 1 {
        let mut out = [0u8; 8];
        out.copy_from_slice(&blake3::keyed_hash(key.as_bytes(), row).as_bytes()[..8]);
        return out;
    }
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(key.as_bytes());
    h.update(row);
    h.digest().to_le_bytes()
}

/// The stored value of `row` under `key` in `space`.
pub fn encode_value(space: &Space, key: &Key, row: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + row.len());
    v.extend_from_slice(&MAGIC);
    v.push(VERSION);
    v.push(output_code(space.output_type()));
    v.extend_from_slice(&(space.dimension() as u32).to_le_bytes());
    v.extend_from_slice(&checksum(VERSION, key, row));
    v.extend_from_slice(row);
    v
}

/// The row of a stored value, when its header and checksum match `key` in `space`.
pub fn decode_value(space: &Space, key: &Key, value: Vec<u8>) -> Option<Bytes> {
    if value.len() != HEADER_LEN + space.row_bytes()
        || value[..2] != MAGIC
        || !(value[2] == VERSION || value[2] == 1)
        || value[3] != output_code(space.output_type())
        || value[4..8] != (space.dimension() as u32).to_le_bytes()
        || value[8..16] != checksum(value[2], key, &value[HEADER_LEN..])
    {
        return None;
    }
    Some(Bytes::from(value).slice(HEADER_LEN..))
}

impl RedisStore {
    /// A store on the server at `url` (`redis://[user:password@]host:port/db`,
    /// `rediss://` with the `tls` feature). Does not connect yet.
    pub fn new(url: &str, options: RedisOptions) -> Result<RedisStore> {
        let conn = crate::redis_conn::RedisConnection::new(url, "cache.url", options.timeout)?;
        Ok(RedisStore { conn, options })
    }

    fn err(&self, e: impl fmt::Display) -> Error {
        store_error("redis", self.conn.describe(e))
    }

    fn redis_key(&self, key: &Key) -> String {
        format!("{}:{}", self.options.namespace, key.to_hex())
    }

    async fn conn(&self) -> Result<ConnectionManager> {
        self.conn
            .manager()
            .await
            .map_err(|m| store_error("redis", m))
    }

    /// Every key of this namespace, in batches of `SCAN` (for stats and clear).
    async fn scan(&self, mut each: impl FnMut(Vec<String>)) -> Result<()> {
        let mut con = self.conn().await?;
        let pattern = format!("{}:*", self.options.namespace);
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut con)
                .await
                .map_err(|e| self.err(e))?;
            if !keys.is_empty() {
                each(keys);
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

#[async_trait]
impl Store for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, space: &Space, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.conn().await?;
        let names: Vec<String> = keys.iter().map(|k| self.redis_key(k)).collect();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&names)
            .query_async(&mut con)
            .await
            .map_err(|e| self.err(e))?;
        if values.len() != keys.len() {
            return Err(Error::new(
                ErrorKind::InvalidResponse,
                format!(
                    "redis answered {} values for {} keys",
                    values.len(),
                    keys.len()
                ),
            ));
        }
        Ok(values
            .into_iter()
            .zip(keys)
            .map(|(v, k)| v.and_then(|v| decode_value(space, k, v)))
            .collect())
    }

    async fn put(&self, space: &Space, keys: &[Key], rows: &[Bytes]) -> Result<()> {
        check_put(keys, rows, space)?;
        if keys.is_empty() {
            return Ok(());
        }
        let mut con = self.conn().await?;
        let mut pipe = redis::pipe();
        for (k, r) in keys.iter().zip(rows) {
            let cmd = pipe
                .cmd("SET")
                .arg(self.redis_key(k))
                .arg(encode_value(space, k, r))
                .arg("NX");
            if let Some(ttl) = self.options.ttl {
                cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
            }
            cmd.ignore();
        }
        pipe.query_async::<()>(&mut con)
            .await
            .map_err(|e| self.err(e))
    }

    async fn stats(&self) -> Result<StoreStats> {
        let mut all = Vec::new();
        self.scan(|keys| all.extend(keys)).await?;
        let mut con = self.conn().await?;
        let mut bytes = 0u64;
        for chunk in all.chunks(1000) {
            let mut pipe = redis::pipe();
            for k in chunk {
                pipe.cmd("STRLEN").arg(k);
            }
            let lens: Vec<u64> = pipe.query_async(&mut con).await.map_err(|e| self.err(e))?;
            bytes += lens.iter().sum::<u64>();
        }
        Ok(StoreStats {
            entries: all.len() as u64,
            bytes,
            spaces: 0,
        })
    }

    async fn clear(&self) -> Result<()> {
        let mut all = Vec::new();
        self.scan(|keys| all.extend(keys)).await?;
        let mut con = self.conn().await?;
        for chunk in all.chunks(1000) {
            redis::cmd("UNLINK")
                .arg(chunk)
                .query_async::<()>(&mut con)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embeddings_core::{InputType, ProviderInfo};

    fn space() -> Space {
        Space::new(&ProviderInfo::new("mock", "mock", 4), 4, OutputType::F32)
    }

    #[test]
    fn a_value_round_trips_and_a_changed_byte_misses() {
        let space = space();
        let key = space.key(InputType::Document, "a");
        let row: Vec<u8> = (0u8..16).collect();
        let v = encode_value(&space, &key, &row);
        assert_eq!(v[2], 2, "written as version 2");
        assert_eq!(
            decode_value(&space, &key, v.clone()).as_deref(),
            Some(&row[..])
        );
        for at in [3, 5, 9, HEADER_LEN, HEADER_LEN + 15] {
            let mut bad = v.clone();
            bad[at] ^= 1;
            assert!(decode_value(&space, &key, bad).is_none(), "byte {at}");
        }
        let other = space.key(InputType::Query, "a");
        assert!(decode_value(&space, &other, v).is_none());
    }

    #[test]
    fn a_version_1_value_of_earlier_versions_is_still_read() {
        let space = space();
        let key = space.key(InputType::Document, "a");
        let row: Vec<u8> = (0u8..16).collect();
        let mut v = vec![b'E', b'C', 1, output_code(OutputType::F32)];
        v.extend_from_slice(&4u32.to_le_bytes());
        v.extend_from_slice(&blake3::keyed_hash(key.as_bytes(), &row).as_bytes()[..8]);
        v.extend_from_slice(&row);
        assert_eq!(
            decode_value(&space, &key, v.clone()).as_deref(),
            Some(&row[..])
        );
        // A version-1 header over a version-2 checksum is a miss.
        let mut mixed = encode_value(&space, &key, &row);
        mixed[2] = 1;
        assert!(decode_value(&space, &key, mixed).is_none());
        v[2] = 3;
        assert!(
            decode_value(&space, &key, v).is_none(),
            "an unknown version"
        );
    }
}
