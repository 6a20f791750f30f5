//! The `[cache]` section.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use embeddings_core::{Config, Error, JsonValue, Result};

/// Which store the cache layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreKind {
    /// In process memory ([`MemoryStore`](crate::MemoryStore)).
    Memory,
    /// A directory ([`DiskStore`](crate::DiskStore)).
    Disk,
    /// A Redis server (`RedisStore`, feature `redis`).
    Redis,
}

impl StoreKind {
    /// `memory`, `disk` or `redis`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Disk => "disk",
            StoreKind::Redis => "redis",
        }
    }
}

/// When the disk store forces its writes to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FsyncPolicy {
    /// After every write batch: the rows file is synced, then the index
    /// commit is durable (the default). Survives power loss.
    #[default]
    Always,
    /// Never explicitly: the operating system writes back when it likes.
    /// Survives a killed process (the page cache outlives it); a power loss
    /// may lose recent rows (they are then misses, never wrong rows).
    Never,
}

/// The `[cache]` section of the configuration.
///
/// ```toml
/// [cache]
/// store = "disk"            # memory | disk | redis; absent: no cache
/// path = ".embeddings-cache" # disk: the directory
/// # url = "redis://127.0.0.1:6379/0"   # redis (rediss:// with the `tls` feature)
/// max_bytes = "2GiB"        # memory: 256MiB by default; disk: unbounded by default
/// ttl = "7d"                # memory and redis; none by default
/// namespace = "embeddings"  # redis key prefix
/// strict = false            # true: a store failure fails the call
/// timeout = "2s"            # deadline of one store operation
/// fsync = "always"          # disk: always | never
/// memory_bytes = "64MiB"    # a memory tier in front of disk or redis (0: none)
/// ```
///
/// Unknown keys and bad values are errors naming the key (a `url` is never
/// echoed: it may hold a password).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// The store; `None` leaves the layer off.
    pub store: Option<StoreKind>,
    /// The disk store's directory.
    pub path: Option<PathBuf>,
    /// The Redis URL (may hold a password: shown redacted).
    pub url: Option<String>,
    /// Size bound of the store, in bytes.
    pub max_bytes: Option<u64>,
    /// Time to live of an entry (memory and Redis).
    pub ttl: Option<Duration>,
    /// Prefix of every Redis key (`{namespace}:{hex key}`).
    pub namespace: String,
    /// Whether a store failure fails the call (default: degrade to uncached).
    pub strict: bool,
    /// Deadline of one store operation.
    pub timeout: Duration,
    /// The disk store's fsync policy.
    pub fsync: FsyncPolicy,
    /// Bytes of a memory tier in front of a disk or Redis store (0: none).
    pub memory_bytes: u64,
}

/// The memory store's bound when `max_bytes` is not set.
pub const DEFAULT_MEMORY_BYTES: u64 = 256 << 20;
/// The deadline of one store operation when `timeout` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// The Redis key prefix when `namespace` is not set.
pub const DEFAULT_NAMESPACE: &str = "embeddings";

const KEYS: &str =
    "store, path, url, max_bytes, ttl, namespace, strict, timeout, fsync, memory_bytes";

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            store: None,
            path: None,
            url: None,
            max_bytes: None,
            ttl: None,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            strict: false,
            timeout: DEFAULT_TIMEOUT,
            fsync: FsyncPolicy::Always,
            memory_bytes: 0,
        }
    }
}

impl fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheConfig")
            .field("store", &self.store)
            .field("path", &self.path)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("max_bytes", &self.max_bytes)
            .field("ttl", &self.ttl)
            .field("namespace", &self.namespace)
            .field("strict", &self.strict)
            .field("timeout", &self.timeout)
            .field("fsync", &self.fsync)
            .field("memory_bytes", &self.memory_bytes)
            .finish()
    }
}

/// `redis://user:secret@host/0` as `redis://user:***@host/0` (also a
/// password without user name); other URLs unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = match userinfo.find(':') {
                Some(c) => &userinfo[..c],
                None if userinfo.is_empty() => "",
                // `redis://secret@host`: redis-rs takes a lone userinfo as the password.
                None => "",
            };
            format!("{}://{}:***@{}", &url[..scheme_end], user, &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

fn bad(key: &str, expected: &str) -> Error {
    Error::config(format!(
        "in section [cache]: `cache.{key}`: expected {expected}"
    ))
}

fn string<'a>(key: &str, v: &'a JsonValue) -> Result<&'a str> {
    v.as_str().ok_or_else(|| bad(key, "a string"))
}

/// Bytes: an integer, or a string such as `"512MiB"`, `"2GB"`, `"1048576"`.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.replace('_', "").parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn bytes_value(key: &str, v: &JsonValue) -> Result<u64> {
    let expected = "a number of bytes (an integer, or a string such as \"512MiB\")";
    match v {
        JsonValue::Number(n) => n.as_u64().ok_or_else(|| bad(key, expected)),
        JsonValue::String(s) => parse_bytes(s).ok_or_else(|| {
            Error::config(format!(
                "in section [cache]: `cache.{key}` = {s:?}: expected {expected}"
            ))
        }),
        _ => Err(bad(key, expected)),
    }
}

fn duration_value(key: &str, v: &JsonValue) -> Result<Duration> {
    let s = string(key, v)?;
    humantime::parse_duration(s).map_err(|e| {
        Error::config(format!(
            "in section [cache]: `cache.{key}` = {s:?}: expected a duration such as \"7d\" or \"500ms\" ({e})"
        ))
    })
}

impl CacheConfig {
    /// The `[cache]` section of `config` (defaults when absent), checked.
    pub fn from_config(config: &Config) -> Result<CacheConfig> {
        let section: JsonValue = config.section("cache")?;
        CacheConfig::from_value(&section)
    }

    /// Parses a `[cache]` table given as JSON (`null`: the defaults).
    pub fn from_value(section: &JsonValue) -> Result<CacheConfig> {
        let mut c = CacheConfig::default();
        let map = match section {
            JsonValue::Null => return Ok(c),
            JsonValue::Object(m) => m,
            _ => return Err(Error::config("`cache` must be a table ([cache])")),
        };
        for (key, v) in map {
            match key.as_str() {
                "store" => {
                    let s = string(key, v)?;
                    c.store = Some(match s.trim().to_ascii_lowercase().as_str() {
                        "memory" => StoreKind::Memory,
                        "disk" => StoreKind::Disk,
                        "redis" => StoreKind::Redis,
                        _ => {
                            return Err(Error::config(format!(
                                "in section [cache]: `cache.store` = {s:?}: expected \"memory\", \"disk\" or \"redis\""
                            )));
                        }
                    });
                }
                "path" => c.path = Some(PathBuf::from(string(key, v)?)),
                "url" => c.url = Some(string(key, v)?.to_owned()),
                "max_bytes" => c.max_bytes = Some(bytes_value(key, v)?),
                "memory_bytes" => c.memory_bytes = bytes_value(key, v)?,
                "ttl" => c.ttl = Some(duration_value(key, v)?),
                "timeout" => c.timeout = duration_value(key, v)?,
                "namespace" => c.namespace = string(key, v)?.to_owned(),
                "strict" => c.strict = v.as_bool().ok_or_else(|| bad(key, "true or false"))?,
                "fsync" => {
                    let s = string(key, v)?;
                    c.fsync = match s.trim().to_ascii_lowercase().as_str() {
                        "always" => FsyncPolicy::Always,
                        "never" => FsyncPolicy::Never,
                        _ => {
                            return Err(Error::config(format!(
                                "in section [cache]: `cache.fsync` = {s:?}: expected \"always\" or \"never\""
                            )));
                        }
                    };
                }
                other => {
                    return Err(Error::config(format!(
                        "in section [cache]: unknown key `{other}`; the keys are {KEYS}"
                    )));
                }
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// Fills in the store from `path`/`url` when `store` is absent, and
    /// checks that the chosen store has what it needs.
    fn validate(&mut self) -> Result<()> {
        if self.store.is_none() {
            if self.url.is_some() {
                self.store = Some(StoreKind::Redis);
            } else if self.path.is_some() {
                self.store = Some(StoreKind::Disk);
            }
        }
        if self.timeout.is_zero() {
            return Err(Error::config(
                "in section [cache]: `cache.timeout` = 0s: must be longer than zero",
            ));
        }
        if self.ttl.is_some_and(|t| t.is_zero()) {
            return Err(Error::config(
                "in section [cache]: `cache.ttl` = 0s: must be longer than zero (leave it out for no expiry)",
            ));
        }
        if self.max_bytes == Some(0) {
            return Err(Error::config(
                "in section [cache]: `cache.max_bytes` = 0: must be at least 1",
            ));
        }
        if self.namespace.is_empty() || self.namespace.contains(char::is_whitespace) {
            return Err(Error::config(format!(
                "in section [cache]: `cache.namespace` = {:?}: must be a non-empty word",
                self.namespace
            )));
        }
        match self.store {
            Some(StoreKind::Disk) if self.path.is_none() => Err(Error::config(
                "in section [cache]: store = \"disk\" needs `cache.path` (a directory)",
            )),
            Some(StoreKind::Redis) if self.url.is_none() => Err(Error::config(
                "in section [cache]: store = \"redis\" needs `cache.url` (redis://host:port/db)",
            )),
            Some(StoreKind::Redis) if !cfg!(feature = "redis") => Err(Error::config(
                "in section [cache]: store = \"redis\" needs the `redis` feature of embeddings-cache",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_json: serde_json::Value) -> Result<CacheConfig> {
        CacheConfig::from_value(&toml_json)
    }

    #[test]
    fn keys_parse_and_errors_name_the_key() {
        let c = parse(serde_json::json!({
            "store": "disk", "path": "/tmp/x", "max_bytes": "2GiB", "ttl": "1h",
            "strict": true, "fsync": "never", "memory_bytes": 1024, "timeout": "250ms",
        }))
        .unwrap();
        assert_eq!(c.store, Some(StoreKind::Disk));
        assert_eq!(c.max_bytes, Some(2 << 30));
        assert_eq!(c.ttl, Some(Duration::from_secs(3600)));
        assert!(c.strict);
        assert_eq!(c.fsync, FsyncPolicy::Never);
        assert_eq!(c.memory_bytes, 1024);
        assert_eq!(c.timeout, Duration::from_millis(250));
        for (json, key) in [
            (serde_json::json!({"store": "disk"}), "cache.path"),
            (serde_json::json!({"store": "nope"}), "cache.store"),
            (serde_json::json!({"max_bytes": "lots"}), "cache.max_bytes"),
            (serde_json::json!({"ttl": 5}), "cache.ttl"),
            (serde_json::json!({"strict": "yes"}), "cache.strict"),
            (serde_json::json!({"colour": 1}), "colour"),
            (serde_json::json!({"url": 7}), "cache.url"),
        ] {
            let e = parse(json.clone()).unwrap_err();
            assert!(e.message().contains(key), "{json}: {}", e.message());
        }
        assert_eq!(
            parse(serde_json::json!({"url": "redis://h"}))
                .unwrap()
                .store,
            Some(StoreKind::Redis)
        );
        assert_eq!(parse(serde_json::Value::Null).unwrap().store, None);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://user:s3cret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact_url("redis://:s3cret@host/0"), "redis://:***@host/0");
        assert_eq!(redact_url("rediss://s3cret@host"), "rediss://:***@host");
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        let c = parse(serde_json::json!({"url": "redis://:s3cret@h/0"})).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
