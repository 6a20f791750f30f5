//! A fully cached CLI re-run (issue #17): the release `embed` binary embeds
//! a 100k-line file with provider `openai` against the in-process fake
//! OpenAI server (127.0.0.1, model text-embedding-3-small, 1536 dims, to
//! `.npy`) with `--cache DIR`, then runs the same job again.
//!
//! Checked, else the bench fails: the re-run makes 0 requests and writes the
//! same file byte for byte. Reported: the median time of the first runs
//! (each with an empty cache) and of the re-runs, and their ratio (target:
//! the re-run takes at most 20% of the first run); and, as the floor under
//! any re-run, the time this disk takes to write the same output file and
//! sync it.
//!
//! `cargo bench -p embeddings-bench --bench cli_cache`
//!
//! It builds the binary first (`cargo build --release -p embeddings-cli
//! --bin embed`, a no-op when it is up to date; `EMBED_BIN=path` skips that
//! and runs the given binary). `CLI_CACHE_ROWS` (default 100000) and
//! `CLI_CACHE_ROUNDS` (default 3) size the job. With `CLI_CACHE_REDIS_URL`
//! set (e.g. `redis://127.0.0.1:6379/15`, a database the bench may fill;
//! its namespace is cleared by the bench with `embed cache clear`) the same is
//! measured with the Redis store.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use embeddings_testkit::{FakeServer, FakeServerConfig, ServerRuntime};

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

/// The `embed` binary: `EMBED_BIN`, else built here (release profile).
fn embed_binary() -> PathBuf {
    if let Ok(p) = std::env::var("EMBED_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("cli_cache: cargo build --release -p embeddings-cli --bin embed");
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "-p",
            "embeddings-cli",
            "--bin",
            "embed",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building embed failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    target.join("release").join("embed")
}

struct Job<'a> {
    bin: &'a Path,
    dir: &'a Path,
    input: &'a Path,
    base_url: &'a str,
}

impl Job<'_> {
    fn command(&self) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.current_dir(self.dir).env("OPENAI_API_KEY", "sk-bench");
        for k in [
            "EMBEDDINGS_CONFIG",
            "EMBEDDINGS_PROVIDER",
            "EMBEDDINGS_MODEL",
            "EMBEDDINGS_DIMENSIONS",
            "OPENAI_BASE_URL",
            "RUST_LOG",
        ] {
            cmd.env_remove(k);
        }
        cmd
    }

    /// One run of the job to `out`; its wall time.
    fn run(&self, cache: &str, out: &Path) -> Duration {
        let mut cmd = self.command();
        cmd.args(["-q", "-p", "openai", "--base-url", self.base_url])
            .args(["--cache", cache])
            .arg("-i")
            .arg(self.input)
            .arg("-o")
            .arg(out);
        let t = Instant::now();
        let o = cmd.output().expect("embed runs");
        let took = t.elapsed();
        assert!(
            o.status.success(),
            "embed failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        took
    }

    fn clear(&self, cache: &str) {
        let o = self
            .command()
            .args(["cache", "clear", "--cache", cache])
            .output()
            .expect("embed runs");
        assert!(
            o.status.success(),
            "embed cache clear failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Rounds of (first run on an empty cache, re-run); false when a check failed.
fn measure(
    job: &Job<'_>,
    server: &FakeServer,
    label: &str,
    rows: usize,
    rounds: usize,
    cache: &dyn Fn(usize) -> String,
) -> bool {
    let mut first = Vec::new();
    let mut again = Vec::new();
    let mut floor = Vec::new();
    let mut ok = true;
    for round in 0..rounds {
        let cache = cache(round);
        let out1 = job.dir.join("first.npy");
        let out2 = job.dir.join("again.npy");
        let before = server.stats().requests;
        first.push(job.run(&cache, &out1));
        let mid = server.stats().requests;
        again.push(job.run(&cache, &out2));
        let after = server.stats().requests;
        let bytes = std::fs::read(&out1).unwrap();
        let same = bytes == std::fs::read(&out2).unwrap();
        floor.push(write_durably(&job.dir.join("floor.npy"), &bytes));
        eprintln!(
            "cli_cache/{label} round {round}: first {:.2?} ({} requests), re-run {:.2?} ({} requests){}",
            first[round],
            mid - before,
            again[round],
            after - mid,
            if same { "" } else { ", OUTPUT DIFFERS" }
        );
        if mid == before || after != mid || !same {
            ok = false;
        }
    }
    let (f, a, w) = (median(first), median(again), median(floor));
    let ratio = a.as_secs_f64() / f.as_secs_f64();
    println!(
        "cli_cache/{label}/{rows}: first run {:.2?} ({:.0} rows/s), cached re-run {:.2?} ({:.0} rows/s), \
         ratio {:.1}% (target <= 20%: {}), re-run requests: {}",
        f,
        rows as f64 / f.as_secs_f64(),
        a,
        rows as f64 / a.as_secs_f64(),
        ratio * 100.0,
        if ratio <= 0.2 { "met" } else { "NOT met" },
        if ok { "0 (checked)" } else { "CHECK FAILED" }
    );
    println!(
        "cli_cache/{label}/{rows}: writing the same output file and syncing it takes {w:.2?} on \
         this disk (a floor under any re-run that writes it): {:.1}% of the first run",
        w.as_secs_f64() / f.as_secs_f64() * 100.0
    );
    ok
}

/// Writes `bytes` to `path` and syncs it: the time a re-run needs at least.
fn write_durably(path: &Path, bytes: &[u8]) -> Duration {
    use std::io::Write as _;
    let t = Instant::now();
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
    let took = t.elapsed();
    drop(f);
    let _ = std::fs::remove_file(path);
    took
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench` and maybe a filter: run unless the
    // filter names something else.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.as_deref().is_some_and(|f| !"cli_cache".contains(f)) {
        return ExitCode::SUCCESS;
    }
    let rows = env_usize("CLI_CACHE_ROWS", 100_000);
    let rounds = env_usize("CLI_CACHE_ROUNDS", 3).max(1);
    let bin = embed_binary();
    let server_rt = ServerRuntime::new();
    let server = FakeServer::start_on(
        &server_rt,
        FakeServerConfig {
            request_log_limit: Some(0),
            ..FakeServerConfig::default()
        },
    )
    .expect("the fake server starts");
    let base_url = server.openai_base_url();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let text: String = (0..rows)
        .map(|i| format!("line {i} of a corpus job\n"))
        .collect();
    std::fs::write(&input, text).unwrap();
    let job = Job {
        bin: &bin,
        dir: dir.path(),
        input: &input,
        base_url: &base_url,
    };
    let mut ok = measure(&job, &server, "disk", rows, rounds, &|round| {
        dir.path()
            .join(format!("cache-{round}"))
            .to_string_lossy()
            .into_owned()
    });
    if let Ok(url) = std::env::var("CLI_CACHE_REDIS_URL") {
        ok &= measure(&job, &server, "redis", rows, rounds, &|_| {
            job.clear(&url);
            url.clone()
        });
        job.clear(&url);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
