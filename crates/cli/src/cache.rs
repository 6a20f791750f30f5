//! The cache on the command line: `--cache DIR|redis://...|memory` (into the
//! configuration's `[cache]` section), the summary's cache counts, and
//! `embed cache stats|compact|clear`.

use clap::{Args, Subcommand};
use embeddings::cache::{CacheConfig, CacheStats, open_store};
use embeddings::{Config, Error, JsonValue, Result};
use serde::Serialize;

use crate::args::CommonArgs;

/// `embed cache ...`
#[derive(Debug, Args, Clone)]
pub(crate) struct CacheArgs {
    #[command(subcommand)]
    pub(crate) action: CacheAction,
}

/// What to do with the configured cache store.
#[derive(Debug, Subcommand, Clone)]
pub(crate) enum CacheAction {
    /// Rows, bytes and spaces in the store (one JSON line on stdout)
    Stats(CommonArgs),
    /// Drops dead rows and applies `max_bytes` (disk); prints the stats after
    Compact(CommonArgs),
    /// Removes every row of the store (of the namespace, for Redis)
    Clear(CommonArgs),
}

impl CacheAction {
    /// The options that locate the store (`--cache`, `--config`).
    pub(crate) fn common(&self) -> &CommonArgs {
        match self {
            CacheAction::Stats(c) | CacheAction::Compact(c) | CacheAction::Clear(c) => c,
        }
    }
}

/// Puts `--cache` into the `[cache]` section (over what a config file said):
/// `redis://`/`rediss://` URLs select Redis, `memory` the memory store,
/// anything else is a directory for the disk store.
pub(crate) fn apply_flag(config: &mut Config, flag: Option<&str>) {
    let Some(flag) = flag.map(str::trim).filter(|f| !f.is_empty()) else {
        return;
    };
    let key = config
        .sections
        .keys()
        .find(|k| k.eq_ignore_ascii_case("cache"))
        .cloned()
        .unwrap_or_else(|| "cache".to_owned());
    let section = config
        .sections
        .entry(key)
        .or_insert_with(|| JsonValue::Object(Default::default()));
    let Some(map) = section.as_object_mut() else {
        return; // not a table: Config::validate names the problem
    };
    let (store, key, value) = if flag.starts_with("redis://") || flag.starts_with("rediss://") {
        ("redis", "url", Some(flag))
    } else if flag.eq_ignore_ascii_case("memory") {
        ("memory", "path", None)
    } else {
        ("disk", "path", Some(flag))
    };
    map.remove("path");
    map.remove("url");
    map.insert("store".into(), store.into());
    if let Some(v) = value {
        map.insert(key.into(), v.into());
    }
}

/// The cache's counts for the summary.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct CacheCounts {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) errors: u64,
}

/// The counts since `before`, when `config` has a cache.
pub(crate) fn counts_since(config: &Config, before: CacheStats) -> Option<CacheCounts> {
    if !config.has_section("cache") {
        return None;
    }
    let now = embeddings::cache::global_stats();
    Some(CacheCounts {
        hits: now.hits - before.hits,
        misses: now.misses - before.misses,
        errors: now.errors - before.errors,
    })
}

/// `embed cache stats|compact|clear` on the configured store.
pub(crate) async fn run(config: &Config, action: &CacheAction) -> Result<()> {
    let c = CacheConfig::from_config(config)?;
    let kind = c.store.map(|s| s.as_str()).unwrap_or("none");
    let store = open_store(&c)?.ok_or_else(|| {
        Error::invalid_input(format!(
            "no persistent cache configured (store: {kind}): give --cache DIR or --cache redis://HOST:PORT/DB, or a [cache] section"
        ))
    })?;
    let stats = match action {
        CacheAction::Stats(_) => store.stats().await?,
        CacheAction::Compact(_) => store.compact().await?,
        CacheAction::Clear(_) => {
            store.clear().await?;
            store.stats().await?
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "store": kind,
            "entries": stats.entries,
            "bytes": stats.bytes,
            "spaces": stats.spaces,
        })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_selects_the_store() {
        let mut c =
            Config::from_toml_str("[cache]\nstore = \"disk\"\npath = \"/x\"\nstrict = true\n")
                .unwrap();
        apply_flag(&mut c, Some("redis://127.0.0.1:6379/0"));
        let cc = CacheConfig::from_config(&c).unwrap();
        assert_eq!(cc.store, Some(embeddings::cache::StoreKind::Redis));
        assert!(
            cc.strict && cc.path.is_none(),
            "other keys of the file stay"
        );
        apply_flag(&mut c, Some("some/dir"));
        let cc = CacheConfig::from_config(&c).unwrap();
        assert_eq!(cc.path.as_deref(), Some(std::path::Path::new("some/dir")));
        apply_flag(&mut c, Some("memory"));
        assert_eq!(
            CacheConfig::from_config(&c).unwrap().store,
            Some(embeddings::cache::StoreKind::Memory)
        );
        let mut none = Config::default();
        apply_flag(&mut none, None);
        assert!(!none.has_section("cache"));
    }
}
