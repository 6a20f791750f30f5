//! `embed --cache`: a re-run is served from the cache (0 requests), the
//! summary reports hits and misses, `embed cache stats|compact|clear` work
//! on the store.

use std::process::{Command, Output};

fn embed(args: &[&str], dir: &std::path::Path) -> Output {
    mock_embed()
        .args(args)
        .current_dir(dir)
        .env("EMBEDDINGS_PROVIDER", "mock")
        .env_remove("EMBEDDINGS_MODEL")
        .env_remove("EMBEDDINGS_DIMENSIONS")
        .env_remove("EMBEDDINGS_CONFIG")
        .output()
        .expect("run embed")
}

fn summary(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("a JSON summary");
    serde_json::from_str(line).unwrap()
}

#[test]
fn a_rerun_with_a_disk_cache_makes_no_request() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap();
    let args = [
        "--cache", cache, "--stats", "json", "-d", "16", "alpha", "beta", "gamma",
    ];
    let first = embed(&args, tmp.path());
    let s = summary(&first);
    assert_eq!(
        s["cache"],
        serde_json::json!({"hits": 0, "misses": 3, "errors": 0})
    );
    assert!(s["requests"].as_u64().unwrap() >= 1);
    let second = embed(&args, tmp.path());
    let s2 = summary(&second);
    assert_eq!(
        s2["cache"],
        serde_json::json!({"hits": 3, "misses": 0, "errors": 0})
    );
    assert_eq!(s2["requests"], 0);
    assert_eq!(first.stdout, second.stdout, "the same rows");

    let stats = embed(&["cache", "stats", "--cache", cache], tmp.path());
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(
        (v["store"].as_str(), v["entries"].as_u64()),
        (Some("disk"), Some(3))
    );
    let compact = embed(&["cache", "compact", "--cache", cache], tmp.path());
    let v: serde_json::Value = serde_json::from_slice(&compact.stdout).unwrap();
    assert_eq!(v["entries"], 3);
    let clear = embed(&["cache", "clear", "--cache", cache], tmp.path());
    let v: serde_json::Value = serde_json::from_slice(&clear.stdout).unwrap();
    assert_eq!(v["entries"], 0);
    // Text summary names the counts.
    let text = embed(&["--cache", cache, "-d", "16", "alpha"], tmp.path());
    assert!(
        String::from_utf8_lossy(&text.stderr).contains("cache: 0 hits, 1 misses, 0 store errors")
    );
}

#[test]
fn cache_commands_without_a_store_say_what_to_give() {
    let tmp = tempfile::tempdir().unwrap();
    let o = embed(&["cache", "stats"], tmp.path());
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--cache DIR"));
}

/// The `embed` binary on the mock provider (whose every vector is known):
/// the CLI's own default is the embedded static model.
fn mock_embed() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_embed"));
    c.env("EMBEDDINGS_PROVIDER", "mock");
    c
}
