//! Many workers on one job (DESIGN §10): `--shard` then `embed merge`, and
//! `--queue` jobs on a real `redis-server` (started by each test on a free
//! port of 127.0.0.1, killed when dropped) run by `embed` worker processes
//! on the mock provider, one of them killed with SIGKILL.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use embeddings_mock::vector;

fn embed() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_embed"));
    c.env_remove("EMBEDDINGS_PROVIDER")
        .env_remove("EMBEDDINGS_MODEL")
        .env_remove("EMBEDDINGS_DIMENSIONS")
        .env_remove("EMBEDDINGS_CONFIG")
        .env_remove("RUST_LOG");
    c
}

fn run(args: &[&str], dir: &Path) -> Output {
    embed().args(args).current_dir(dir).output().unwrap()
}

fn ok(o: &Output) -> &Output {
    assert!(
        o.status.success(),
        "embed failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn lines_file(dir: &Path, n: usize) -> (PathBuf, Vec<String>) {
    let texts: Vec<String> = (0..n).map(|i| format!("line {i} of the corpus")).collect();
    let p = dir.join("corpus.txt");
    std::fs::write(&p, texts.join("\n") + "\n").unwrap();
    (p, texts)
}

/// The rows of a float32 `.npy` file (shape checked).
fn npy_rows(path: &Path, dim: usize) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape()[1], dim as u64);
    npy.into_vec::<f32>().unwrap()
}

#[test]
fn three_shards_merged_are_the_one_process_output_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // JSONL with ids, so that ids and indices go through the parts too.
    let texts: Vec<String> = (0..1000).map(|i| format!("text number {i}")).collect();
    let input: String = texts
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{{\"id\":\"r{i}\",\"text\":\"{t}\"}}\n"))
        .collect();
    std::fs::write(d.join("in.jsonl"), input).unwrap();
    for format in ["npy", "jsonl", "parquet"] {
        let one = format!("one.{format}");
        ok(&run(
            &["-q", "-p", "mock", "-d", "16", "-i", "in.jsonl", "-o", &one],
            d,
        ));
        let parts = format!("parts-{format}");
        for i in 0..3 {
            let shard = format!("{i}/3");
            ok(&run(
                &[
                    "-q", "-p", "mock", "-d", "16", "-i", "in.jsonl", "-o", &parts, "--format",
                    format, "--shard", &shard,
                ],
                d,
            ));
        }
        // Three parts: 333, 333 and 334 inputs.
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join(&parts).join("manifest.json")).unwrap())
                .unwrap();
        let ranges: Vec<(u64, u64)> = manifest["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["first"].as_u64().unwrap(), p["end"].as_u64().unwrap()))
            .collect();
        assert_eq!(ranges, [(0, 333), (333, 666), (666, 1000)], "{format}");
        let merged = format!("merged.{format}");
        ok(&run(&["merge", &parts, "-o", &merged, "-q"], d));
        assert_eq!(
            std::fs::read(d.join(&one)).unwrap(),
            std::fs::read(d.join(&merged)).unwrap(),
            "{format}: the merged shards differ from the one-process output"
        );
    }
    // And the rows are the right ones (§4 vectors, in input order).
    let rows = npy_rows(&d.join("merged.npy"), 16);
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(
            &rows[i * 16..(i + 1) * 16],
            vector("mock", t, 16).as_slice()
        );
    }
}

#[test]
fn merge_refuses_a_missing_shard_and_shards_of_another_job() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    lines_file(d, 100);
    for i in [0, 2] {
        let shard = format!("{i}/3");
        ok(&run(
            &[
                "-q",
                "-p",
                "mock",
                "-i",
                "corpus.txt",
                "-o",
                "out",
                "--format",
                "npy",
                "--shard",
                &shard,
            ],
            d,
        ));
    }
    let o = run(&["merge", "out", "-o", "all.npy"], d);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("incomplete") && err.contains("33..66"),
        "{err}"
    );
    assert!(!d.join("all.npy").exists());
    // Another dimension under the same directory: refused, nothing written.
    let o = run(
        &[
            "-q",
            "-p",
            "mock",
            "-d",
            "8",
            "-i",
            "corpus.txt",
            "-o",
            "out",
            "--format",
            "npy",
            "--shard",
            "1/3",
        ],
        d,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("holds parts of another job"), "{err}");
    assert!(!d.join("out/part-000000000033.npy").exists());
    // Bad shard specs are typed errors.
    for bad in ["3/3", "1", "a/b", "0/0"] {
        let o = run(
            &["-p", "mock", "-i", "corpus.txt", "-o", "x", "--shard", bad],
            d,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("--shard"),
            "{bad}: {err}"
        );
    }
}

/// A `redis-server` child on 127.0.0.1; killed when dropped.
struct Redis {
    port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Redis {
    /// Starts one, or `None` (the test is skipped) when `redis-server` is
    /// not installed and this is not CI.
    fn start() -> Option<Redis> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is not installed (.ci/run installs it)"
            );
            eprintln!("skipped: redis-server is not installed");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let r = Redis {
            port,
            _dir: dir,
            child,
        };
        for _ in 0..500 {
            if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 7];
                if c.write_all(b"PING\r\n").is_ok()
                    && c.read_exact(&mut buf).is_ok()
                    && &buf == b"+PONG\r\n"
                {
                    return Some(r);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status(redis: &Redis, job: &str, dir: &Path) -> serde_json::Value {
    let o = run(
        &[
            "queue",
            "status",
            "--queue",
            &redis.url(),
            "--job",
            job,
            "--json",
        ],
        dir,
    );
    serde_json::from_slice(&ok(&o).stdout).unwrap()
}

#[test]
fn a_queue_job_refuses_a_worker_with_another_input_or_settings() {
    let Some(redis) = Redis::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (_, texts) = lines_file(d, 250);
    let url = redis.url();
    let worker = |extra: &[&str], input: &str, out: &str| {
        let mut args = vec![
            "-q", "-p", "mock", "-i", input, "-o", out, "--queue", &url, "--job", "j1", "--chunk",
            "100",
        ];
        args.extend_from_slice(extra);
        run(&args, d)
    };
    ok(&worker(
        &["-d", "8", "--format", "npy"],
        "corpus.txt",
        "out",
    ));
    let s = status(&redis, "j1", d);
    assert_eq!(
        (s["chunks"].as_u64(), s["done"].as_u64()),
        (Some(3), Some(3)),
        "{s}"
    );
    assert_eq!(s["finished"], true);
    ok(&run(&["merge", "out", "-o", "all.npy", "-q"], d));
    let rows = npy_rows(&d.join("all.npy"), 8);
    assert_eq!(rows.len(), 250 * 8);
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(&rows[i * 8..(i + 1) * 8], vector("mock", t, 8).as_slice());
    }
    // Other settings, another input, another format: each refused by name.
    let o = worker(&["-d", "16", "--format", "npy"], "corpus.txt", "out2");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("provider settings"),
        "{err}"
    );
    std::fs::write(d.join("other.txt"), "a\nb\n").unwrap();
    let o = worker(&["-d", "8", "--format", "npy"], "other.txt", "out3");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("the input"), "{err}");
    let o = worker(&["-d", "8", "--format", "jsonl"], "corpus.txt", "out4");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("output format"),
        "{err}"
    );
    for p in ["out2", "out3", "out4"] {
        assert!(!d.join(p).join("manifest.json").exists(), "{p}");
    }
    // An unknown job: a clear error.
    let o = run(&["queue", "status", "--queue", &url, "--job", "nope"], d);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("no job \"nope\""),
        "{err}"
    );
}

/// A small deterministic generator (xorshift), so the kill moments are
/// random but the same on every run.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn a_worker_killed_twice_loses_and_repeats_no_input() {
    let Some(redis) = Redis::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    const N: usize = 200_000;
    const DIM: usize = 8;
    let (_, texts) = lines_file(d, N);
    // ~10k rows/s per worker (batches of 100, 2 in flight, 20 ms each):
    // the job lasts several seconds, the kills fall inside it.
    std::fs::write(d.join("slow.toml"), "[mock]\nlatency = \"20ms\"\n").unwrap();
    let url = redis.url();
    let spawn = || {
        embed()
            .args([
                "-q",
                "-c",
                "slow.toml",
                "-p",
                "mock",
                "-d",
                "8",
                "--batch-size",
                "100",
            ])
            .args([
                "--concurrency",
                "2",
                "-i",
                "corpus.txt",
                "-o",
                "out",
                "--format",
                "npy",
            ])
            .args([
                "--queue",
                &url,
                "--job",
                "big",
                "--chunk",
                "5000",
                "--claim-timeout",
                "1s",
            ])
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let started = Instant::now();
    let mut others: Vec<Child> = (0..3).map(|_| spawn()).collect();
    let mut victim = spawn();
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    // The kill moments count from when the job is enqueued (the workers
    // first read and fingerprint the input).
    let url_ = redis.url();
    let enqueued = || {
        run(&["queue", "status", "--queue", &url_, "--job", "big"], d)
            .status
            .success()
    };
    let wait_from = Instant::now();
    while !enqueued() {
        assert!(
            wait_from.elapsed() < Duration::from_secs(60),
            "never enqueued"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for kill in 0..2 {
        std::thread::sleep(Duration::from_millis(300 + rng.below(1200)));
        assert!(
            victim.try_wait().unwrap().is_none(),
            "the victim ended before kill {kill}: the job was too short to test anything"
        );
        victim.kill().unwrap(); // SIGKILL
        victim.wait().unwrap();
        let s = status(&redis, "big", d);
        assert_eq!(s["finished"], false, "kill {kill} came after the job: {s}");
        victim = spawn();
    }
    others.push(victim);
    for c in others {
        let o = c.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "a worker failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(300), "bounded: {elapsed:?}");
    let s = status(&redis, "big", d);
    assert_eq!(s["done"].as_u64(), Some(40), "{s}");
    assert_eq!(s["failed"].as_array().map(Vec::len), Some(0), "{s}");
    // No half-written part: only whole parts, the manifest and its lock.
    let mut names: Vec<String> = std::fs::read_dir(d.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 42, "{names:?}");
    assert_eq!(&names[..2], ["manifest.json", "manifest.lock"]);
    for (i, n) in names[2..].iter().enumerate() {
        assert_eq!(*n, format!("part-{:012}.npy", i * 5000));
        // Each part alone holds exactly its chunk's rows.
        let rows = npy_rows(&d.join("out").join(n), DIM);
        assert_eq!(rows.len(), 5000 * DIM, "{n}");
    }
    ok(&run(&["merge", "out", "-o", "all.npy", "-q"], d));
    let rows = npy_rows(&d.join("all.npy"), DIM);
    assert_eq!(rows.len(), N * DIM, "every input exactly once");
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(
            &rows[i * DIM..(i + 1) * DIM],
            vector("mock", t, DIM).as_slice(),
            "row {i}"
        );
    }
}
