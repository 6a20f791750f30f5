//! Many workers on one job (DESIGN §10): `--shard` then `embed merge`, and
//! `--queue` jobs on a real `redis-server` (started by each test on a free
//! port of 127.0.0.1, killed when dropped) run by `embed` worker processes
//! on the mock provider, one of them killed with SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use embeddings_mock::vector;
use embeddings_testkit::RedisServer;
use embeddings_testkit::budget::BudgetedRun;

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

fn status(redis: &RedisServer, job: &str, dir: &Path) -> serde_json::Value {
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
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
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
    // The finished job's keys leave Redis (the parts stay), and it is gone.
    let keys = || redis.command(&["EVAL", "return #redis.call('KEYS', 'embed:job:*')", "0"]);
    assert_eq!(keys(), "3", "meta, stream, done (no failed chunk)");
    ok(&run(&["queue", "clear", "--queue", &url, "--job", "j1"], d));
    assert_eq!(keys(), "0");
    let o = run(&["queue", "status", "--queue", &url, "--job", "j1"], d);
    assert!(!o.status.success());
    assert!(d.join("out/manifest.json").exists());
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
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
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
    // A running job's keys are not deleted without --force.
    let o = run(&["queue", "clear", "--queue", &url_, "--job", "big"], d);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("not finished"), "{err}");
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
    // The victim's chunks were taken over (a kill between two chunks,
    // when it holds none, is possible but would have to happen twice).
    assert!(
        s["reclaimed"].as_u64().unwrap() >= 1,
        "no chunk was reclaimed: {s}"
    );
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

/// Tokens per minute of the rate-limited jobs, and the fake server's
/// starting budget: half a second of it, so a client that sends faster than
/// L beyond the shared limiter's 100 ms burst is answered 429 at once.
const L: u32 = 12_000;
const INITIAL_BUDGET: Duration = Duration::from_millis(500);
const SHARED_BURST: Duration = Duration::from_millis(100);
/// How much later than its limiter admitted it the server may see a
/// request (the span is measured at the server); a 24-token request is
/// 120 ms of L.
const DELIVERY_SLACK: Duration = Duration::from_millis(200);

/// Four `embed` processes (`--shard i/4` of one 200-line input, batches of
/// 4 texts, 2 requests in flight each) against one fake OpenAI server with a
/// tokens-per-minute limit L; with `shared`, all four draw from one budget
/// in Redis. Checks every process's rows (merged, in input order).
async fn four_processes_on_one_budget(shared: Option<&str>, dir: &Path) -> BudgetedRun {
    const N: usize = 200;
    let server = embeddings_testkit::FakeServer::start(embeddings_testkit::FakeServerConfig {
        tokens_per_minute: Some(L),
        initial_budget: Some(INITIAL_BUDGET),
        request_log_limit: Some(10_000),
        ..Default::default()
    })
    .await
    .unwrap();
    let (_, texts) = lines_file(dir, N);
    // Not adaptive: the server's bucket is near empty by design, which the
    // adaptive watermark reads as "slow down"; this checks the budget alone.
    // Retries enough for the control to finish through its 429s.
    let shared = shared
        .map(|url| format!("shared = {url:?}\nkey = \"four\"\n"))
        .unwrap_or_default();
    std::fs::write(
        dir.join("limited.toml"),
        format!(
            "provider = \"openai\"\nmodel = \"text-embedding-3-small\"\ndimensions = 8\n\
             base_url = {:?}\n[retry]\nmax_retries = 50\n\
             [rate_limit]\ntokens_per_minute = {L}\nadaptive = false\n{shared}",
            server.openai_base_url()
        ),
    )
    .unwrap();
    let workers: Vec<Child> = (0..4)
        .map(|i| {
            embed()
                .args(["-q", "-c", "limited.toml", "--batch-size", "4"])
                .args(["--concurrency", "2", "-i", "corpus.txt", "-o", "out"])
                .args(["--format", "npy", "--shard", &format!("{i}/4")])
                .env("OPENAI_API_KEY", "sk-test")
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = tokio::task::spawn_blocking(move || {
        workers
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for o in &outputs {
        ok(o);
    }
    ok(&run(&["merge", "out", "-o", "all.npy", "-q"], dir));
    let rows = npy_rows(&dir.join("all.npy"), 8);
    assert_eq!(rows.len(), N * 8, "every input once");
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(
            &rows[i * 8..(i + 1) * 8],
            vector("text-embedding-3-small", t, 8).as_slice(),
            "row {i}"
        );
    }
    let log = server.requests();
    let admitted: Vec<_> = log.iter().filter(|r| r.status == 200).collect();
    let count = |r: &embeddings_testkit::RecordedRequest| -> u64 {
        r.body["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| embeddings_testkit::count_tokens(t.as_str().unwrap()) as u64)
            .sum()
    };
    let stats = server.stats();
    BudgetedRun {
        tokens: stats.tokens,
        rate_limited: stats.by_status.get(&429).copied().unwrap_or(0),
        span: admitted
            .last()
            .unwrap()
            .received
            .duration_since(admitted[0].received),
        max_cost: admitted.iter().map(|r| count(r)).max().unwrap(),
    }
}

/// DESIGN §10's shared budget across processes: together the four sustain
/// at least 90% of L and at most L (every request but the last within the
/// span plus the burst and the delivery slack), and the server never
/// answers 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_worker_processes_share_one_tokens_per_minute_budget() {
    let Some(redis) = RedisServer::start(&[]) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let r = four_processes_on_one_budget(Some(&redis.url()), tmp.path()).await;
    // The span is measured at the server, which sees each request some
    // scheduling delay after its process's limiter admitted it (four
    // workers, Redis and the server on two cores): the slack.
    r.assert_paced("4 processes", L, SHARED_BURST, DELIVERY_SLACK);
}

/// The control: four processes each with its own limiter of L are refused
/// by the same server (so the check above can fail), and still finish (the
/// retry layer waits out the 429s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_worker_processes_with_their_own_limiters_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let r = four_processes_on_one_budget(None, tmp.path()).await;
    assert!(
        r.rate_limited > 0,
        "never refused: the server does not enforce L"
    );
}
