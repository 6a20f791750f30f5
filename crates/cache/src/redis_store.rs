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
const VERSION: u8 = 1;

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
/// after the server went away. A value is `[b"EC", version 1, output type,
/// dimension: u32 LE, checksum: 8 bytes][row]`; a value whose header or
/// checksum (BLAKE3 over key and row) does not match is a miss. The URL's
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

/// BLAKE3 of the row keyed by the row's key (so it also proves the key).
fn checksum(key: &Key, row: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&blake3::keyed_hash(key.as_bytes(), row).as_bytes()[..8]);
    out
}

/// The stored value of `row` under `key` in `space`.
pub fn encode_value(space: &Space, key: &Key, row: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + row.len());
    v.extend_from_slice(&MAGIC);
    v.push(VERSION);
    v.push(output_code(space.output_type()));
    v.extend_from_slice(&(space.dimension() as u32).to_le_bytes());
    v.extend_from_slice(&checksum(key, row));
    v.extend_from_slice(row);
    v
}

/// The row of a stored value, when its header and checksum match `key` in `space`.
pub fn decode_value(space: &Space, key: &Key, value: Vec<u8>) -> Option<Bytes> {
    if value.len() != HEADER_LEN + space.row_bytes()
        || value[..2] != MAGIC
        || value[2] != VERSION
        || value[3] != output_code(space.output_type())
        || value[4..8] != (space.dimension() as u32).to_le_bytes()
        || value[8..16] != checksum(key, &value[HEADER_LEN..])
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
