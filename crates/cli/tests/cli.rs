//! End-to-end tests of the `embed` binary on the mock provider.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use embeddings_mock::vector;

fn embed(args: &[&str]) -> Output {
    embed_in(args, None, None)
}

fn embed_in(args: &[&str], stdin: Option<&[u8]>, dir: Option<&Path>) -> Output {
    let mut cmd = mock_embed();
    cmd.args(args)
        .env("EMBEDDINGS_PROVIDER", "mock")
        .env_remove("EMBEDDINGS_MODEL")
        .env_remove("EMBEDDINGS_DIMENSIONS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().unwrap();
    let mut sin = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        sin.write_all(bytes).unwrap();
    }
    drop(sin);
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn jsonl(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "embed failed: {}", stderr(o));
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn assert_vec(got: &[f32], model: &str, text: &str, dim: usize) {
    let want = vector(model, text, dim);
    assert_eq!(got.len(), dim);
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-6, "{text}: {got:?} vs {want:?}");
    }
}

#[test]
fn texts_become_jsonl_rows_in_order_with_the_mock_vectors() {
    let o = embed(&["-d", "8", "hello", "déjà vu 🌍", "hello"]);
    let rows = jsonl(&o);
    assert_eq!(rows.len(), 3);
    for (i, text) in ["hello", "déjà vu 🌍", "hello"].iter().enumerate() {
        assert_eq!(rows[i]["index"], i);
        assert!(rows[i].get("id").is_none());
        assert_vec(&floats(&rows[i]["embedding"]), "mock", text, 8);
    }
    let err = stderr(&o);
    assert!(err.starts_with("embed: 3 rows, 0 skipped,"), "{err}");
}

#[test]
fn default_dimension_is_128_and_model_flag_changes_vectors() {
    let rows = jsonl(&embed(&["-m", "other-model", "x"]));
    assert_vec(&floats(&rows[0]["embedding"]), "other-model", "x", 128);
}

#[test]
fn jsonl_input_keeps_ids_and_stdin_works() {
    let input = b"{\"id\":\"doc-1\",\"text\":\"alpha\"}\n{\"id\":2,\"text\":\"beta\"}\n";
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.jsonl");
    std::fs::write(&p, input).unwrap();
    let rows = jsonl(&embed(&["-d", "4", "-i", p.to_str().unwrap()]));
    assert_eq!(rows[0]["id"], "doc-1");
    assert_eq!(rows[1]["id"], 2);
    assert_vec(&floats(&rows[1]["embedding"]), "mock", "beta", 4);

    let rows = jsonl(&embed_in(
        &["-d", "4", "-i", "-"],
        Some(b"one\ntwo\n"),
        None,
    ));
    assert_eq!(rows.len(), 2);
    assert_vec(&floats(&rows[1]["embedding"]), "mock", "two", 4);
    // No TEXT and no --input: stdin is read.
    let rows = jsonl(&embed_in(&["-d", "4"], Some(b"three\n"), None));
    assert_vec(&floats(&rows[0]["embedding"]), "mock", "three", 4);
}

#[test]
fn npy_output_has_the_shape_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v.npy");
    let o = embed(&[
        "-d",
        "5",
        "--format",
        "npy",
        "-o",
        out.to_str().unwrap(),
        "a",
        "b",
        "c",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'shape': (3, 5)"), "{header}");
    let data = &bytes[10 + header_len..];
    assert_eq!(data.len(), 3 * 5 * 4);
    let vals: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    for (i, t) in ["a", "b", "c"].iter().enumerate() {
        assert_eq!(&vals[i * 5..(i + 1) * 5], vector("mock", t, 5).as_slice());
    }
    assert!(!dir.path().join("v.npy.partial").exists());
}

#[test]
fn json_format_is_one_array() {
    let o = embed(&["-d", "3", "--format", "json", "a", "b"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_vec(&floats(&arr[1]["embedding"]), "mock", "b", 3);
}

#[test]
fn providers_lists_every_registered_provider() {
    let o = embed(&["providers"]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let names: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    let want: Vec<&str> = embeddings::registered().iter().map(|r| r.name).collect();
    assert_eq!(names, want);
    assert!(names.contains(&"mock"));
}

#[test]
fn health_of_the_mock_is_ok() {
    let o = embed(&["health"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("healthy: mock"));
}

#[test]
fn config_file_and_env_and_flags_take_precedence_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "model = \"from-file\"\ndimensions = 6\n").unwrap();
    let rows = jsonl(&embed(&["-c", cfg.to_str().unwrap(), "x"]));
    assert_vec(&floats(&rows[0]["embedding"]), "from-file", "x", 6);
    let rows = jsonl(&embed(&["-c", cfg.to_str().unwrap(), "-d", "3", "x"]));
    assert_vec(&floats(&rows[0]["embedding"]), "from-file", "x", 3);
    // ./embeddings.toml is read when present.
    std::fs::write(dir.path().join("embeddings.toml"), "dimensions = 2\n").unwrap();
    let rows = jsonl(&embed_in(&["x"], None, Some(dir.path())));
    assert_vec(&floats(&rows[0]["embedding"]), "mock", "x", 2);
    let o = mock_embed()
        .args(["-c", cfg.to_str().unwrap(), "x"])
        .env("EMBEDDINGS_MODEL", "from-env")
        .output()
        .unwrap();
    let rows = jsonl(&o);
    assert_vec(&floats(&rows[0]["embedding"]), "from-env", "x", 6);
}

/// Every failure: non-zero exit, nothing on stdout, one line on stderr
/// naming the error kind.
fn assert_fails(o: &Output, kind: &str, contains: &str) {
    assert!(!o.status.success(), "expected failure");
    // Streamed rows before a bad input may precede the failure on stdout, but
    // nothing that is not a row.
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        assert!(line.starts_with("{\"index\":"), "stdout: {line}");
    }
    let e = stderr(o);
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    assert!(e.starts_with(&format!("embed: {kind}: ")), "{e}");
    assert!(e.contains(contains), "{e}");
}

#[test]
fn bad_input_gets_one_line_naming_the_kind() {
    assert_fails(
        &embed(&["-p", "nosuch", "x"]),
        "provider_not_found",
        "registered providers: ",
    );
    assert_fails(
        &embed(&["-d", "0", "x"]),
        "invalid_config",
        "`--dimensions` = 0: must be a whole number from 1 to 65536",
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "dimension = 3\n").unwrap();
    assert_fails(
        &embed(&["-c", cfg.to_str().unwrap(), "x"]),
        "invalid_config",
        "unknown config key `dimension`",
    );
    std::fs::write(&cfg, "this is [not toml\n").unwrap();
    assert_fails(
        &embed(&["-c", cfg.to_str().unwrap(), "x"]),
        "invalid_config",
        "bad.toml",
    );
    assert_fails(
        &embed(&["-i", "/no/such/file.txt"]),
        "invalid_input",
        "cannot read input file /no/such/file.txt",
    );
    assert_fails(
        &embed_in(&["-i", "-"], Some(b"fine\n\xff\xfe bad\n"), None),
        "invalid_input",
        "stdin line 2: not valid UTF-8",
    );
    let out = dir.path().join("no-such-dir").join("out.jsonl");
    assert_fails(
        &embed(&["-o", out.to_str().unwrap(), "x"]),
        "invalid_input",
        "cannot write output file",
    );
}

#[test]
fn a_failing_provider_leaves_no_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "dimensions = 4\n[retry]\nenabled = false\n[mock]\nerror_rate = 1.0\nerror_kind = \"unavailable\"\n",
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let o = embed(&[
        "-c",
        cfg.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "a",
        "b",
    ]);
    assert_fails(&o, "unavailable", "simulated failure");
    assert!(stderr(&o).contains("rerun with --resume"), "{}", stderr(&o));
    assert!(
        !out.exists(),
        "a failed job must not leave a file that looks complete"
    );
}

fn lines_file(dir: &Path, name: &str, n: usize) -> std::path::PathBuf {
    let p = dir.join(name);
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!("line number {i}\n"));
    }
    std::fs::write(&p, text).unwrap();
    p
}

fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    assert_eq!(npy.dtype(), npyz::DType::Plain("<f4".parse().unwrap()));
    (shape, npy.into_vec::<f32>().unwrap())
}

#[test]
fn every_output_format_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"a\",\"text\":\"alpha\"}\n{\"id\":2,\"text\":\"beta\"}\n{\"text\":\"gamma\"}\n",
    )
    .unwrap();
    let texts = ["alpha", "beta", "gamma"];
    let run = |name: &str| {
        let out = dir.path().join(name);
        let o = embed(&[
            "-d",
            "6",
            "-q",
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(!dir.path().join(format!("{name}.partial")).exists());
        out
    };
    // npy, read back by an independent reader.
    let (shape, values) = read_npy(&run("v.npy"));
    assert_eq!(shape, [3, 6]);
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(&values[i * 6..(i + 1) * 6], vector("mock", t, 6).as_slice());
    }
    // JSON and JSONL.
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run("v.json")).unwrap()).unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(run("v.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for rows in [v.as_array().unwrap().clone(), lines] {
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["id"], "a");
        assert_eq!(rows[1]["id"], 2);
        assert!(rows[2].get("id").is_none());
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(rows[i]["index"], i);
            assert_eq!(floats(&rows[i]["embedding"]), vector("mock", t, 6));
        }
    }
    // Parquet and Arrow IPC, read back with the arrow readers.
    for name in ["v.parquet", "v.arrow"] {
        let rows = arrow_rows(&run(name));
        assert_eq!(rows.len(), 3, "{name}");
        let ids: Vec<Option<&str>> = rows.iter().map(|r| r.1.as_deref()).collect();
        assert_eq!(ids, [Some("a"), Some("2"), None], "{name}");
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(rows[i].0, i as u64);
            assert_eq!(rows[i].2, vector("mock", t, 6), "{name} row {i}");
        }
    }
}

/// Every row of a Parquet or Arrow IPC output (by extension): index, id, embedding.
fn arrow_rows(path: &Path) -> Vec<(u64, Option<String>, Vec<f32>)> {
    use arrow_array::{Array, FixedSizeListArray, Float32Array, StringArray, UInt64Array};
    let f = std::fs::File::open(path).unwrap();
    let batches: Vec<arrow_array::RecordBatch> = if path.extension().unwrap() == "parquet" {
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect()
    } else {
        arrow_ipc::reader::FileReader::try_new(f, None)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let mut rows = Vec::new();
    for b in &batches {
        let index = b.column(0).as_any().downcast_ref::<UInt64Array>().unwrap();
        let ids = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        let emb = b
            .column(2)
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .unwrap();
        for r in 0..b.num_rows() {
            let row = emb.value(r);
            let row = row.as_any().downcast_ref::<Float32Array>().unwrap();
            let id = (!ids.is_null(r)).then(|| ids.value(r).to_owned());
            rows.push((index.value(r), id, row.values().to_vec()));
        }
    }
    rows
}

#[test]
fn csv_input_with_a_chosen_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.csv");
    std::fs::write(&p, "key,body\nk1,\"hello, world\"\nk2,second\n").unwrap();
    let rows = jsonl(&embed(&[
        "-d",
        "4",
        "-q",
        "-i",
        p.to_str().unwrap(),
        "--text-field",
        "body",
        "--id-field",
        "key",
    ]));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], "k1");
    assert_vec(&floats(&rows[0]["embedding"]), "mock", "hello, world", 4);
    assert_vec(&floats(&rows[1]["embedding"]), "mock", "second", 4);
}

#[test]
fn several_input_files_are_read_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = lines_file(dir.path(), "a.txt", 3);
    let b = dir.path().join("b.txt");
    std::fs::write(&b, "last\n").unwrap();
    let rows = jsonl(&embed(&[
        "-d",
        "4",
        "-q",
        "-i",
        a.to_str().unwrap(),
        "-i",
        b.to_str().unwrap(),
    ]));
    assert_eq!(rows.len(), 4);
    assert_vec(&floats(&rows[3]["embedding"]), "mock", "last", 4);
    assert_eq!(rows[3]["index"], 3);
}

#[test]
fn on_error_skip_leaves_bad_lines_out_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.jsonl");
    std::fs::write(
        &p,
        "{\"text\":\"one\"}\nnot json\n{\"id\":3}\n{\"text\":\"\"}\n{\"text\":\"five\"}\n",
    )
    .unwrap();
    let o = embed(&["-d", "4", "-i", p.to_str().unwrap(), "--on-error", "fail"]);
    assert_fails(&o, "invalid_input", "in.jsonl line 2: not a JSON object");
    let o = embed(&[
        "-d",
        "4",
        "-i",
        p.to_str().unwrap(),
        "--on-error",
        "skip",
        "--stats",
        "json",
    ]);
    let rows = jsonl(&o);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["index"], 0);
    assert_eq!(rows[1]["index"], 4, "index is the input position");
    assert_vec(&floats(&rows[1]["embedding"]), "mock", "five", 4);
    let stats: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(stats["rows"], 2);
    assert_eq!(stats["skipped"], 3);
    let listed = stats["skipped_inputs"].to_string();
    for want in ["line 2", "line 3", "line 4"] {
        assert!(listed.contains(want), "{listed}");
    }
}

#[test]
fn on_error_skip_skips_inputs_the_provider_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "dimensions = 4\n[mock]\nmax_input_tokens = 3\n").unwrap();
    let p = dir.path().join("in.txt");
    std::fs::write(&p, "short\nthis line is far too long for the limit\nok\n").unwrap();
    let args = ["-c", cfg.to_str().unwrap(), "-i", p.to_str().unwrap()];
    let o = embed(&args);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("context_length_exceeded"),
        "{}",
        stderr(&o)
    );
    let mut skip = args.to_vec();
    skip.extend(["--on-error", "skip", "--stats", "json"]);
    let o = embed(&skip);
    let rows = jsonl(&o);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["index"], 2);
    let stats: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(stats["skipped"], 1);
    assert!(
        stats["skipped_inputs"][0]
            .as_str()
            .unwrap()
            .contains("in.txt line 2")
    );
}

#[test]
fn similarity_ranks_identical_text_first() {
    let o = embed(&["similarity", "-d", "16", "hello", "hello", "goodbye"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<(f64, &str)> = text
        .lines()
        .map(|l| {
            let (s, t) = l.split_once('\t').unwrap();
            (s.parse().unwrap(), t)
        })
        .collect();
    assert_eq!(lines.len(), 2);
    assert!((lines[0].0 - 1.0).abs() < 1e-6 && lines[0].1 == "hello");
    let a = vector("mock", "hello", 16);
    let b = vector("mock", "goodbye", 16);
    let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    assert!((lines[1].0 - f64::from(dot)).abs() < 1e-5);
}

/// Waits for `child` and returns (exit status code, its own peak RSS in KiB).
#[allow(unsafe_code)]
fn wait_with_peak_rss(mut child: std::process::Child) -> (i32, i64) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, and wait4 only writes into
    // the two locals for our own child process.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    // Already reaped by wait4: this only satisfies the Child's bookkeeping.
    let _ = child.wait();
    (status, usage.ru_maxrss)
}

#[test]
fn memory_stays_bounded_on_a_large_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let input = lines_file(dir.path(), "big.txt", 200_000);
    let out = dir.path().join("big.npy");
    let child = mock_embed()
        .args([
            "-q",
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (status, peak_kib) = wait_with_peak_rss(child);
    assert_eq!(status, 0, "embed failed");
    let (shape, values) = read_npy(&out);
    assert_eq!(shape, [200_000, 128]);
    assert_eq!(
        &values[199_999 * 128..],
        vector("mock", "line number 199999", 128).as_slice()
    );
    // The output alone is 100 MB: a job that held it would exceed this.
    let peak_mib = peak_kib / 1024;
    assert!(peak_mib < 64, "peak RSS {peak_mib} MiB");
}

#[test]
fn a_killed_job_resumes_without_lost_duplicated_or_reordered_rows() {
    let dir = tempfile::tempdir().unwrap();
    let input = lines_file(dir.path(), "in.txt", 3000);
    let cfg = dir.path().join("slow.toml");
    std::fs::write(&cfg, "dimensions = 4\n[batch]\nmax_batch_size = 20\nconcurrency = 2\n[mock]\nlatency = \"20ms\"\n").unwrap();
    let out = dir.path().join("out.jsonl");
    let args = [
        "-q",
        "-c",
        cfg.to_str().unwrap(),
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    // The job takes about 1.5 s; kill it somewhere after its first checkpoint.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let kill_after = std::time::Duration::from_millis(1100 + u64::from(nanos % 300));
    let mut child = mock_embed()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(kill_after);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.exists() || std::fs::read_to_string(&out).unwrap().lines().count() == 3000);
    let mut resume = args.to_vec();
    resume.retain(|a| *a != "-q");
    resume.push("--resume");
    let o = embed(&resume);
    assert!(
        o.status.success(),
        "resume failed (killed after {kill_after:?}): {}",
        stderr(&o)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3000, "killed after {kill_after:?}");
    for (i, l) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(
            v["index"], i,
            "row {i} misplaced (killed after {kill_after:?})"
        );
        assert_eq!(
            floats(&v["embedding"]),
            vector("mock", &format!("line number {i}"), 4)
        );
    }
    assert!(!dir.path().join("out.jsonl.partial").exists());
    assert!(!dir.path().join("out.jsonl.partial.checkpoint").exists());
    // Resuming a finished job does nothing and says so.
    let o = embed(&resume);
    assert!(o.status.success());
    assert!(stderr(&o).contains("nothing to resume"), "{}", stderr(&o));
}

#[test]
fn resume_refuses_a_checkpoint_of_another_job() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "dimensions = 4\n[retry]\nenabled = false\n[mock]\nfail_on_calls = [2]\n[batch]\nmax_batch_size = 2\nconcurrency = 1\n").unwrap();
    let input = lines_file(dir.path(), "in.txt", 10);
    let out = dir.path().join("o.jsonl");
    let o = embed(&[
        "-c",
        cfg.to_str().unwrap(),
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(dir.path().join("o.jsonl.partial.checkpoint").exists());
    let o = embed(&[
        "-c",
        cfg.to_str().unwrap(),
        "-m",
        "other",
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--resume",
    ]);
    assert_fails(&o, "invalid_input", "saved by another job");
    // The same job resumes from row 2 (call 2 failed; call 1 wrote rows 0-1).
    std::fs::write(
        &cfg,
        "dimensions = 4\n[batch]\nmax_batch_size = 2\nconcurrency = 1\n",
    )
    .unwrap();
    let o = embed(&[
        "-c",
        cfg.to_str().unwrap(),
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--resume",
        "--stats",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stats: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(stats["resumed_from_row"], 2);
    assert_eq!(stats["rows"], 10);
    let n = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(n, 10);
}

/// numpy reads the `.npy` output. CI installs numpy (`.ci/run`), where a
/// missing numpy fails this test; elsewhere it is skipped with a note.
#[test]
fn numpy_loads_the_npy_output() {
    let have_numpy = Command::new("python3")
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_numpy {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have numpy (see .ci/run)"
        );
        eprintln!("skipped: python3 with numpy is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v.npy");
    let o = embed(&[
        "-q",
        "-d",
        "7",
        "-o",
        out.to_str().unwrap(),
        "alpha",
        "beta",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let py = Command::new("python3")
        .args([
            "-c",
            "import json, sys, numpy; v = numpy.load(sys.argv[1]); \
             print(json.dumps({'shape': list(v.shape), 'dtype': str(v.dtype), 'values': v.tolist()}))",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(v["shape"], serde_json::json!([2, 7]));
    assert_eq!(v["dtype"], "float32");
    for (i, t) in ["alpha", "beta"].iter().enumerate() {
        assert_eq!(floats(&v["values"][i]), vector("mock", t, 7));
    }
}

/// The same formats from a real HTTP provider: the fake OpenAI server.
#[test]
fn formats_round_trip_from_the_fake_openai_server() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(embeddings_testkit::FakeServer::start(
            embeddings_testkit::FakeServerConfig::default(),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = lines_file(dir.path(), "in.txt", 300);
    let model = "text-embedding-3-large";
    let base = server.openai_base_url();
    let run = |name: &str| {
        let out = dir.path().join(name);
        let o = mock_embed()
            .args([
                "-q",
                "-p",
                "openai",
                "-m",
                model,
                "-d",
                "32",
                "--batch-size",
                "64",
            ])
            .args([
                "--base-url",
                &base,
                "-i",
                input.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ])
            .env_remove("OPENAI_API_KEY")
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        out
    };
    let (shape, values) = read_npy(&run("v.npy"));
    assert_eq!(shape, [300, 32]);
    for i in 0..300 {
        let want = vector(model, &format!("line number {i}"), 32);
        let got = &values[i * 32..(i + 1) * 32];
        assert!(
            got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6),
            "row {i}"
        );
    }
    let rows = arrow_rows(&run("v.parquet"));
    assert_eq!(rows.len(), 300);
    for (i, (index, _, row)) in rows.iter().enumerate() {
        assert_eq!(*index, i as u64);
        let want = vector(model, &format!("line number {i}"), 32);
        assert!(
            row.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6),
            "row {i}"
        );
    }
    // 300 inputs in batches of at most 64: 5 requests per job.
    let posts = server
        .requests()
        .iter()
        .filter(|r| r.route == embeddings_testkit::Route::OpenaiEmbeddings)
        .count();
    assert_eq!(posts, 10);
}

#[test]
fn plain_progress_lines_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let input = lines_file(dir.path(), "in.txt", 400);
    let cfg = dir.path().join("slow.toml");
    std::fs::write(
        &cfg,
        "dimensions = 4\n[batch]\nmax_batch_size = 10\nconcurrency = 1\n[mock]\nlatency = \"10ms\"\n",
    )
    .unwrap();
    let out = dir.path().join("o.jsonl");
    let o = embed(&[
        "-c",
        cfg.to_str().unwrap(),
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--progress-interval",
        "50ms",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let progress: Vec<&str> = err.lines().filter(|l| l.contains("rows/s,")).collect();
    // 40 batches of 10 ms one after another: several lines, each with done/total,
    // percentage, rate, tokens, retries and ETA.
    assert!(progress.len() >= 2, "{err}");
    for l in &progress {
        assert!(l.starts_with("embed: ") && l.contains("/400 rows ("), "{l}");
        assert!(
            l.contains(" tokens, 0 retries") || l.contains(" tokens, "),
            "{l}"
        );
    }
    assert!(progress.iter().any(|l| l.contains("ETA")), "{err}");
    // The summary comes last.
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("embed: 400 rows, 0 skipped"),
        "{err}"
    );
    // --quiet prints nothing.
    let o = embed(&[
        "-q",
        "-c",
        cfg.to_str().unwrap(),
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--progress-interval",
        "50ms",
    ]);
    assert!(o.status.success());
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn a_job_stopped_by_a_bad_line_resumes_at_that_line_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "one\ntwo\n\nfour\n").unwrap();
    let out = dir.path().join("o.jsonl");
    let args = |extra: &[&'static str]| {
        let mut v = vec![
            "-d".to_owned(),
            "4".into(),
            "--batch-size".into(),
            "1".into(),
            "--concurrency".into(),
            "1".into(),
            "-i".into(),
            input.to_str().unwrap().to_owned(),
            "-o".into(),
            out.to_str().unwrap().to_owned(),
        ];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        embed(&refs)
    };
    let o = run(args(&[]));
    assert_fails(&o, "invalid_input", "in.txt line 3: empty text");
    assert!(stderr(&o).contains("2 rows are saved"), "{}", stderr(&o));
    std::fs::write(&input, "one\ntwo\nthree\nfour\n").unwrap();
    let o = run(args(&["--resume", "--stats", "json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let stats: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    assert_eq!(stats["resumed_from_row"], 2);
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    for (i, t) in ["one", "two", "three", "four"].iter().enumerate() {
        assert_eq!(rows[i]["index"], i);
        assert_eq!(floats(&rows[i]["embedding"]), vector("mock", t, 4));
    }
}

#[test]
fn numeric_flags_out_of_range_are_one_line_errors_not_panics() {
    for (args, contains) in [
        (
            ["--batch-size", "18446744073709551615"],
            "`--batch-size` = 18446744073709551615: must be a whole number from 1 to 1000000",
        ),
        (
            ["--batch-size", "10000000000"],
            "`--batch-size` = 10000000000: must be",
        ),
        (
            ["-d", "9223372036854775808"],
            "`--dimensions` = 9223372036854775808: must be a whole number from 1 to 65536",
        ),
        (
            ["-d", "18446744073709551615"],
            "`--dimensions` = 18446744073709551615: must be",
        ),
        (
            ["-d", "99999999999999999999999"],
            "`--dimensions` = 99999999999999999999999: must be",
        ),
        (["-d", "abc"], "`--dimensions` = \"abc\": must be"),
        (
            ["--concurrency", "4097"],
            "`--concurrency` = 4097: must be a whole number from 1 to 4096",
        ),
        (["--concurrency", "0"], "`--concurrency` = 0: must be"),
        (
            ["--max-retries", "4294967296"],
            "`--max-retries` = 4294967296: must be a whole number from 0 to 1000",
        ),
    ] {
        let mut a = args.to_vec();
        a.push("x");
        assert_fails(&embed(&a), "invalid_config", contains);
    }
    // The same bounds hold for the config file and the environment.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    for (text, contains) in [
        (
            "dimensions = 9223372036854775807\n",
            "`dimensions` = 9223372036854775807: must be at most 65536",
        ),
        (
            "[batch]\nmax_batch_size = 10000000000\n",
            "`batch.max_batch_size` = 10000000000: must be at most 1000000",
        ),
        (
            "[batch]\nconcurrency = 100000\n",
            "`batch.concurrency` = 100000: must be at most 4096",
        ),
        (
            "[concurrency]\nmax_in_flight = 100000\n",
            "`concurrency.max_in_flight` = 100000: must be at most 4096",
        ),
        (
            "[retry]\nmax_retries = 4000000000\n",
            "`retry.max_retries` = 4000000000: must be at most 1000",
        ),
    ] {
        std::fs::write(&cfg, text).unwrap();
        assert_fails(
            &embed(&["-c", cfg.to_str().unwrap(), "x"]),
            "invalid_config",
            contains,
        );
    }
    let o = mock_embed()
        .args(["x"])
        .env("EMBEDDINGS_DIMENSIONS", "18446744073709551615")
        .output()
        .unwrap();
    assert_fails(&o, "invalid_config", "must be at most 65536");
    // The maxima themselves work.
    let rows = jsonl(&embed(&[
        "-q",
        "-d",
        "65536",
        "--batch-size",
        "1000000",
        "--concurrency",
        "4096",
        "--max-retries",
        "1000",
        "x",
    ]));
    assert_vec(&floats(&rows[0]["embedding"]), "mock", "x", 65536);
    // And --help says so.
    let help = String::from_utf8(embed(&["--help"]).stdout).unwrap();
    for want in ["1..=65536", "1..=1000000", "1..=4096", "0..=1000"] {
        assert!(help.contains(want), "{want} in {help}");
    }
}

/// `embed` under `timeout`, so that a regression that hangs fails the test
/// instead of hanging the suite (the limit is far above the run's length;
/// nothing here depends on timing).
fn embed_guarded(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("120")
        .arg(env!("CARGO_BIN_EXE_embed"))
        .args(args)
        .env("EMBEDDINGS_PROVIDER", "mock")
        .env_remove("EMBEDDINGS_MODEL")
        .env_remove("EMBEDDINGS_DIMENSIONS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut sin = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        sin.write_all(bytes).unwrap();
    }
    drop(sin);
    let o = child.wait_with_output().unwrap();
    assert_ne!(o.status.code(), Some(124), "embed hung: {}", stderr(&o));
    o
}

fn mkfifo(path: &Path) {
    let s = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(s.success());
}

/// Writes `bytes` into the FIFO once a reader opens it.
fn feed_fifo(path: &Path, bytes: &'static [u8]) -> std::thread::JoinHandle<()> {
    let path = path.to_owned();
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        let _ = f.write_all(bytes);
    })
}

#[test]
fn non_regular_inputs_are_read_as_streams_without_losing_inputs() {
    let texts = ["one", "two", "three"];
    let check = |o: &Output, what: &str| {
        let rows = jsonl(o);
        assert_eq!(rows.len(), 3, "{what}: {}", stderr(o));
        for (i, t) in texts.iter().enumerate() {
            assert_vec(&floats(&rows[i]["embedding"]), "mock", t, 4);
        }
        assert!(
            stderr(o).contains("3 rows, 0 skipped"),
            "{what}: {}",
            stderr(o)
        );
    };
    // A named FIFO (without -q, so that the progress total is asked for).
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("in.fifo");
    mkfifo(&fifo);
    let writer = feed_fifo(&fifo, b"one\ntwo\nthree\n");
    check(
        &embed_guarded(&["-d", "4", "-i", fifo.to_str().unwrap()], None),
        "fifo",
    );
    writer.join().unwrap();
    // /dev/stdin on a pipe.
    check(
        &embed_guarded(&["-d", "4", "-i", "/dev/stdin"], Some(b"one\ntwo\nthree\n")),
        "/dev/stdin",
    );
    // Process substitution, as a shell user writes it.
    let o = Command::new("timeout")
        .args(["120", "bash", "-c"])
        .arg(format!(
            "{} -d 4 -i <(printf 'one\\ntwo\\nthree\\n')",
            env!("CARGO_BIN_EXE_embed")
        ))
        .env("EMBEDDINGS_PROVIDER", "mock")
        .env_remove("EMBEDDINGS_MODEL")
        .env_remove("EMBEDDINGS_DIMENSIONS")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(124), "hung");
    check(&o, "process substitution");
}

#[test]
fn resume_refuses_an_input_that_cannot_be_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.jsonl");
    let fifo = dir.path().join("in.fifo");
    mkfifo(&fifo);
    for input in [fifo.to_str().unwrap(), "-", "/dev/stdin"] {
        let o = embed_guarded(
            &[
                "-d",
                "4",
                "-i",
                input,
                "-o",
                out.to_str().unwrap(),
                "--resume",
            ],
            Some(b"one\n"),
        );
        assert_fails(&o, "invalid_input", "--resume");
        assert!(
            stderr(&o).contains("cannot be read again"),
            "{}",
            stderr(&o)
        );
    }
    // Stdin without -i, too.
    let o = embed_guarded(
        &["-d", "4", "-o", out.to_str().unwrap(), "--resume"],
        Some(b"one\n"),
    );
    assert_fails(&o, "invalid_input", "cannot be read again");
    assert!(!out.exists());
}

#[test]
fn a_utf8_bom_is_not_part_of_the_first_input() {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in [
        ("in.txt", &b"\xef\xbb\xbfhello\nworld\n"[..]),
        (
            "in.jsonl",
            b"\xef\xbb\xbf{\"text\":\"hello\"}\n{\"text\":\"world\"}\n",
        ),
        ("in.csv", b"\xef\xbb\xbftext\nhello\nworld\n"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        let rows = jsonl(&embed(&["-q", "-d", "4", "-i", p.to_str().unwrap()]));
        assert_eq!(rows.len(), 2, "{name}");
        assert_vec(&floats(&rows[0]["embedding"]), "mock", "hello", 4);
        assert_vec(&floats(&rows[1]["embedding"]), "mock", "world", 4);
    }
    // On stdin as well.
    let rows = jsonl(&embed_in(
        &["-q", "-d", "4"],
        Some(b"\xef\xbb\xbfhello\n"),
        None,
    ));
    assert_vec(&floats(&rows[0]["embedding"]), "mock", "hello", 4);
}

#[test]
fn a_single_trailing_blank_line_is_the_end_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in [
        ("a.txt", &b"one\ntwo\n\n"[..]),
        ("b.txt", b"one\r\ntwo\r\n\r\n"),
        ("c.jsonl", b"{\"text\":\"one\"}\n{\"text\":\"two\"}\n\n"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        let o = embed(&["-d", "4", "-i", p.to_str().unwrap()]);
        let rows = jsonl(&o);
        assert_eq!(rows.len(), 2, "{name}");
        assert!(
            stderr(&o).starts_with("embed: 2 rows, 0 skipped"),
            "{}",
            stderr(&o)
        );
    }
    // A blank line that is not the last is still a bad input.
    let p = dir.path().join("d.txt");
    std::fs::write(&p, "one\n\n\n").unwrap();
    assert_fails(
        &embed(&["-d", "4", "-i", p.to_str().unwrap()]),
        "invalid_input",
        "d.txt line 2: empty text",
    );
}

#[test]
fn an_empty_input_gives_an_empty_output_of_the_right_dimension() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let out = dir.path().join("v.npy");
    let o = embed(&[
        "-q",
        "-d",
        "7",
        "-i",
        empty.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (shape, values) = read_npy(&out);
    assert_eq!(shape, [0, 7]);
    assert!(values.is_empty());
    // To stdout too.
    let o = embed(&[
        "-q",
        "-d",
        "7",
        "--format",
        "npy",
        "-i",
        empty.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let npy = npyz::NpyFile::new(&o.stdout[..]).unwrap();
    assert_eq!(npy.shape(), [0, 7]);
    // Parquet and Arrow: a fixed-size list of 7.
    for name in ["v.parquet", "v.arrow"] {
        let out = dir.path().join(name);
        let o = embed(&[
            "-q",
            "-d",
            "7",
            "-i",
            empty.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(arrow_list_size(&out), 7, "{name}");
    }
}

/// The size of the `embedding` column's fixed-size list in a Parquet or Arrow file.
fn arrow_list_size(path: &Path) -> i32 {
    let f = std::fs::File::open(path).unwrap();
    let schema = if path.extension().unwrap() == "parquet" {
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .schema()
            .clone()
    } else {
        arrow_ipc::reader::FileReader::try_new(f, None)
            .unwrap()
            .schema()
    };
    match schema.field_with_name("embedding").unwrap().data_type() {
        arrow_schema::DataType::FixedSizeList(_, n) => *n,
        other => panic!("embedding is {other:?}"),
    }
}

/// Reads the FIFO to its end on another thread.
fn drain_fifo(path: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let path = path.to_owned();
    std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::open(path).unwrap(), &mut v).unwrap();
        v
    })
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .file_type()
        .is_fifo()
}

#[test]
fn output_to_a_fifo_is_written_through_and_the_fifo_stays() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("out.fifo");
    mkfifo(&fifo);
    // JSONL and JSON stream into it; .npy is held until complete, as on stdout.
    for format in ["jsonl", "json", "npy"] {
        let reader = drain_fifo(&fifo);
        let o = embed_guarded(
            &[
                "-q",
                "-d",
                "4",
                "--format",
                format,
                "-o",
                fifo.to_str().unwrap(),
                "a",
                "b",
            ],
            None,
        );
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        // (Checked before joining: the reader never ends if the FIFO was replaced.)
        assert!(is_fifo(&fifo), "{format}: the FIFO was replaced");
        let got = reader.join().unwrap();
        match format {
            "jsonl" => assert_eq!(String::from_utf8(got).unwrap().lines().count(), 2),
            "json" => {
                let v: serde_json::Value = serde_json::from_slice(&got).unwrap();
                assert_eq!(v.as_array().unwrap().len(), 2);
            }
            _ => {
                let npy = npyz::NpyFile::new(&got[..]).unwrap();
                assert_eq!(npy.shape(), [2, 4]);
            }
        }
        assert!(!dir.path().join("out.fifo.partial").exists());
    }
    // Parquet and Arrow are written whole and renamed: refused before the FIFO is opened.
    for format in ["parquet", "arrow"] {
        let o = embed_guarded(
            &[
                "-d",
                "4",
                "--format",
                format,
                "-o",
                fifo.to_str().unwrap(),
                "a",
            ],
            None,
        );
        assert_fails(&o, "invalid_input", "needs a regular file");
        assert!(is_fifo(&fifo));
    }
    // --resume cannot continue a stream.
    let o = embed_guarded(
        &["-d", "4", "-o", fifo.to_str().unwrap(), "--resume", "a"],
        None,
    );
    assert_fails(&o, "invalid_input", "--resume");
    assert!(is_fifo(&fifo));
}

#[test]
fn output_to_a_character_device_is_written_through() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    // A node like /dev/null of our own (mknod needs root: skipped otherwise).
    let null = dir.path().join("null");
    let made = Command::new("mknod")
        .arg(&null)
        .args(["c", "1", "3"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        eprintln!("skipped: cannot mknod (not root)");
        return;
    }
    let o = embed(&["-q", "-d", "4", "-o", null.to_str().unwrap(), "a", "b"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = std::fs::symlink_metadata(&null).unwrap().file_type();
    assert!(t.is_char_device(), "the device node was replaced");
    assert!(!dir.path().join("null.partial").exists());
}

#[test]
fn output_through_a_symlink_writes_the_target_and_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("real");
    std::fs::create_dir(&real_dir).unwrap();
    let target = real_dir.join("v.jsonl");
    std::fs::write(&target, "old\n").unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let o = embed(&["-q", "-d", "4", "-o", link.to_str().unwrap(), "a", "b"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), target);
    assert_eq!(std::fs::read_to_string(&target).unwrap().lines().count(), 2);
    // A relative, dangling link: its target is created, next to the link.
    let dangling = dir.path().join("dangling.npy");
    std::os::unix::fs::symlink("made.npy", &dangling).unwrap();
    let o = embed(&["-q", "-d", "4", "-o", dangling.to_str().unwrap(), "a"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(read_npy(&dir.path().join("made.npy")).0, [1, 4]);
    // Nothing is left beside the link or the target.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .chain(std::fs::read_dir(&real_dir).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["dangling.npy", "link.jsonl", "made.npy", "real", "v.jsonl"]
    );
}

#[test]
fn output_that_is_an_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = lines_file(dir.path(), "in.txt", 3);
    let before = std::fs::read(&input).unwrap();
    let link = dir.path().join("link.txt");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let hard = dir.path().join("hard.txt");
    std::fs::hard_link(&input, &hard).unwrap();
    for out in [&input, &link, &hard] {
        let o = embed(&[
            "-d",
            "4",
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_fails(&o, "invalid_input", "is also an input");
        assert_eq!(std::fs::read(&input).unwrap(), before);
    }
    // The input given on stdin, redirected from the file.
    let o = mock_embed()
        .args(["-d", "4", "-o", input.to_str().unwrap()])
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert_fails(&o, "invalid_input", "is also an input");
    assert_eq!(std::fs::read(&input).unwrap(), before);
    // A directory is refused up front, too.
    let o = embed(&["-d", "4", "-o", dir.path().to_str().unwrap(), "a"]);
    assert_fails(&o, "invalid_input", "is a directory");
}

#[test]
fn a_second_job_on_the_same_output_is_refused_while_the_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("in.fifo");
    mkfifo(&fifo);
    let out = dir.path().join("o.jsonl");
    // Job A reads its inputs from a FIFO, so it runs until the test closes it.
    let a = mock_embed()
        .args([
            "-q",
            "-d",
            "4",
            "-i",
            fifo.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Opening the FIFO returns once A has opened it: A holds its output by then.
    let mut feed = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let other = lines_file(dir.path(), "other.txt", 50);
    for extra in [&[][..], &["--resume"][..]] {
        let mut args = vec![
            "-d",
            "4",
            "-i",
            other.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = embed(&args);
        assert_fails(&o, "invalid_input", "another embed job is writing");
    }
    feed.write_all(b"one\ntwo\nthree\n").unwrap();
    drop(feed);
    let o = a.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    for (i, t) in ["one", "two", "three"].iter().enumerate() {
        assert_eq!(floats(&rows[i]["embedding"]), vector("mock", t, 4));
    }
    // Once A is done, the output is free again.
    let o = embed(&[
        "-q",
        "-d",
        "4",
        "-i",
        other.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 50);
}

#[test]
fn dash_and_dev_stdout_mean_stdout() {
    for out in ["-", "/dev/stdout"] {
        for format in ["jsonl", "npy"] {
            let o = embed(&["-q", "-d", "4", "--format", format, "-o", out, "a", "b"]);
            assert!(o.status.success(), "{out} {format}: {}", stderr(&o));
            if format == "jsonl" {
                assert_eq!(String::from_utf8(o.stdout).unwrap().lines().count(), 2);
            } else {
                assert_eq!(npyz::NpyFile::new(&o.stdout[..]).unwrap().shape(), [2, 4]);
            }
        }
    }
    assert!(!Path::new("/dev/stdout.partial").exists());
}

/// A job over `input` that stops after rows 0..4 (the mock fails its third
/// call, batches of 2): its partial output and checkpoint stay for --resume.
/// Returns the arguments of the same job without the fault (`resume`).
fn stopped_job(dir: &Path, input: &Path, out: &Path) -> Vec<String> {
    stopped_job_with(dir, input, out, &[])
}

/// [`stopped_job`] with more arguments (on both runs).
fn stopped_job_with(dir: &Path, input: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let failing = dir.join("failing.toml");
    std::fs::write(
        &failing,
        "dimensions = 4\n[retry]\nenabled = false\n[mock]\nfail_on_calls = [3]\n[batch]\nmax_batch_size = 2\nconcurrency = 1\n",
    )
    .unwrap();
    let fixed = dir.join("fixed.toml");
    std::fs::write(
        &fixed,
        "dimensions = 4\n[batch]\nmax_batch_size = 2\nconcurrency = 1\n",
    )
    .unwrap();
    let args = |cfg: &Path| {
        vec![
            "-q".to_owned(),
            "-c".into(),
            cfg.to_str().unwrap().into(),
            "-i".into(),
            input.to_str().unwrap().into(),
            "-o".into(),
            out.to_str().unwrap().into(),
        ]
        .into_iter()
        .chain(extra.iter().map(|s| (*s).to_owned()))
        .collect::<Vec<String>>()
    };
    let o = embed(
        &args(&failing)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("4 rows are saved"), "{}", stderr(&o));
    args(&fixed)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn checkpoint_of(out: &Path) -> std::path::PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".partial.checkpoint");
    p.into()
}

fn partial_of(out: &Path) -> std::path::PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".partial");
    p.into()
}

/// The rows of a JSONL output are the mock vectors of `line number i`, in order.
fn assert_lines_output(out: &Path, n: usize) {
    let text = std::fs::read_to_string(out).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), n);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["index"], i);
        assert_eq!(
            floats(&r["embedding"]),
            vector("mock", &format!("line number {i}"), 4),
            "row {i}"
        );
    }
}

#[test]
fn resume_refuses_changed_inputs_formats_and_texts_and_says_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let input = lines_file(dir.path(), "in.txt", 10);
    let original = std::fs::read(&input).unwrap();
    let out = dir.path().join("o.jsonl");
    let resume = {
        let mut a = stopped_job(dir.path(), &input, &out);
        a.push("--resume".into());
        a
    };
    let saved_partial = std::fs::read(partial_of(&out)).unwrap();
    let saved_checkpoint = std::fs::read(checkpoint_of(&out)).unwrap();
    // The input rewritten within the saved prefix (same length).
    std::fs::write(
        &input,
        String::from_utf8(original.clone())
            .unwrap()
            .replacen("line number 1", "line NUMBER 1", 1),
    )
    .unwrap();
    let o = embed(&strs(&resume));
    assert_fails(&o, "invalid_input", "in.txt changed: its first");
    assert!(
        stderr(&o).contains("which the saved rows were made from"),
        "{}",
        stderr(&o)
    );
    // Another input format.
    std::fs::write(&input, &original).unwrap();
    let mut other_format = resume.clone();
    other_format.extend(["--input-format".into(), "csv".into()]);
    let o = embed(&strs(&other_format));
    assert_fails(&o, "invalid_input", "saved by another job (inputs: ");
    assert!(
        stderr(&o).contains("(lines) then,") && stderr(&o).contains("(csv) now"),
        "{}",
        stderr(&o)
    );
    // Other field names, another output format, another model: each named.
    for (extra, what) in [
        (
            &["--text-field", "body"][..],
            "--text-field: \"text\" then, \"body\" now",
        ),
        (
            &["--format", "json"][..],
            "output format: jsonl then, json now",
        ),
        (&["-m", "other"][..], "model: \"mock\" then, \"other\" now"),
        (
            &["--output-type", "int8"][..],
            "output type: f32 then, int8 now",
        ),
        (
            &["--input-type", "query"][..],
            "input type: document then, query now",
        ),
    ] {
        let mut a = resume.clone();
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        assert_fails(&embed(&strs(&a)), "invalid_input", what);
    }
    // Nothing was touched by the refusals.
    assert_eq!(std::fs::read(partial_of(&out)).unwrap(), saved_partial);
    assert_eq!(
        std::fs::read(checkpoint_of(&out)).unwrap(),
        saved_checkpoint
    );
    // The input written again with the same bytes (a new mtime): the same job.
    std::fs::write(&input, &original).unwrap();
    let o = embed(&strs(&resume));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_lines_output(&out, 10);

    // TEXT arguments.
    let out = dir.path().join("t.jsonl");
    let cfg = dir.path().join("failing.toml");
    let texts = ["a", "b", "c", "d", "e", "f"];
    let mut args = vec![
        "-q",
        "-c",
        cfg.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend(texts);
    assert!(!embed(&args).status.success());
    let fixed = dir.path().join("fixed.toml");
    let mut other = vec![
        "-q",
        "-c",
        fixed.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--resume",
    ];
    other.extend(["a", "b", "c", "d", "X", "Y"]);
    assert_fails(&embed(&other), "invalid_input", "the TEXT arguments differ");
    let mut same = vec![
        "-q",
        "-c",
        fixed.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--resume",
    ];
    same.extend(texts);
    let o = embed(&same);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6);
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(floats(&rows[i]["embedding"]), vector("mock", t, 4));
    }
}

#[test]
fn a_new_job_on_the_same_output_removes_the_old_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let input = lines_file(dir.path(), "in.txt", 10);
    let out = dir.path().join("o.jsonl");
    let resume = {
        let mut a = stopped_job(dir.path(), &input, &out);
        a.push("--resume".into());
        a
    };
    // Job B on the same output, from a FIFO kept open: it writes rows, then
    // waits for more input, and is killed before its first checkpoint.
    let fifo = dir.path().join("b.fifo");
    mkfifo(&fifo);
    let mut b = mock_embed()
        // Small batches, one at a time: B writes the rows of every batch it
        // can fill, then waits in its read of the FIFO.
        .args(["-q", "-d", "4", "--batch-size", "10", "--concurrency", "1"])
        .args(["-i", fifo.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut feed = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let mut text = String::new();
    for i in 0..3000 {
        text.push_str(&format!("job B line {i}\n"));
    }
    feed.write_all(text.as_bytes()).unwrap();
    // B has opened its output before reading its input: its lock is held
    // and the old checkpoint is gone, whatever B does next.
    while std::fs::metadata(partial_of(&out)).map_or(0, |m| m.len()) < 65_536 {
        assert!(b.try_wait().unwrap().is_none(), "job B ended early");
        std::thread::yield_now();
    }
    b.kill().unwrap();
    b.wait().unwrap();
    drop(feed);
    if let Ok(text) = std::fs::read_to_string(checkpoint_of(&out)) {
        assert!(
            !text.contains("in.txt"),
            "job A's checkpoint survived job B: {text}"
        );
    }
    // A resumed: never B's rows in A's output (here: no checkpoint of A,
    // so the job starts again from its first input).
    let o = embed(&strs(&resume));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_lines_output(&out, 10);
}

#[test]
fn resume_refuses_a_damaged_checkpoint_or_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = lines_file(dir.path(), "in.txt", 10);
    for name in ["o.jsonl", "o.json", "o.npy", "o.parquet"] {
        let out = dir.path().join(name);
        let resume = {
            let mut a = stopped_job(dir.path(), &input, &out);
            a.push("--resume".into());
            a
        };
        let ck_path = checkpoint_of(&out);
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&ck_path).unwrap()).unwrap();
        assert_eq!(saved["items"], 4, "{name}");
        let partial = std::fs::read(partial_of(&out)).unwrap();
        let write_ck = |v: &serde_json::Value| {
            std::fs::write(&ck_path, serde_json::to_vec(v).unwrap()).unwrap()
        };
        // An item count ahead of the rows.
        let mut ahead = saved.clone();
        ahead["items"] = 1004.into();
        write_ck(&ahead);
        assert_fails(
            &embed(&strs(&resume)),
            "invalid_input",
            "is damaged (it counts 1004 inputs done, but 4 rows and 0 skipped)",
        );
        // Items and rows raised together: the partial file cannot hold them.
        let mut both = saved.clone();
        both["items"] = 1004.into();
        both["position"]["rows"] = 1004.into();
        write_ck(&both);
        assert_fails(
            &embed(&strs(&resume)),
            "invalid_input",
            "cannot hold the 1004 rows saved",
        );
        write_ck(&saved);
        // A flipped byte in the partial file before the checkpoint's end.
        let mut flipped = partial.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x01;
        std::fs::write(partial_of(&out), &flipped).unwrap();
        assert_fails(
            &embed(&strs(&resume)),
            "invalid_input",
            "are not those the job wrote",
        );
        // Undamaged, it resumes.
        std::fs::write(partial_of(&out), &partial).unwrap();
        let o = embed(&strs(&resume));
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        if name == "o.jsonl" {
            assert_lines_output(&out, 10);
        }
    }
    let (shape, values) = read_npy(&dir.path().join("o.npy"));
    assert_eq!(shape, [10, 4]);
    assert_eq!(
        &values[9 * 4..],
        vector("mock", "line number 9", 4).as_slice()
    );
    assert_eq!(arrow_rows(&dir.path().join("o.parquet")).len(), 10);
}

#[test]
fn on_error_skip_fails_a_job_whose_every_input_was_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("in.jsonl");
    std::fs::write(&p, "not json\n{\"id\":1}\n{\"text\":\"\"}\n").unwrap();
    let out = dir.path().join("o.jsonl");
    let o = embed(&[
        "-d",
        "4",
        "-i",
        p.to_str().unwrap(),
        "--on-error",
        "skip",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_fails(
        &o,
        "invalid_input",
        "all 3 inputs were skipped, none was embedded (first: ",
    );
    assert!(stderr(&o).contains("in.jsonl line 1"), "{}", stderr(&o));
    assert!(!out.exists() && !partial_of(&out).exists() && !checkpoint_of(&out).exists());
    // On stdout too (nothing but rows there: none).
    let o = embed(&["-d", "4", "-i", p.to_str().unwrap(), "--on-error", "skip"]);
    assert_fails(&o, "invalid_input", "all 3 inputs were skipped");
    assert!(o.stdout.is_empty());
}

/// The rows the library gives for `texts` at `output` (the mock, 12 dims):
/// what the CLI must write, byte for byte.
fn library_rows(texts: &[&str], output: embeddings::OutputType) -> Vec<Vec<i64>> {
    use embeddings::{EmbedRequest, Embedder, RowRef};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = embeddings_mock::MockEmbedder::new("mock", 12).unwrap();
    let rows = rt
        .block_on(mock.embed(EmbedRequest::new(texts).with_output_type(output)))
        .unwrap();
    (0..rows.len())
        .map(|i| match rows.row_ref(i) {
            RowRef::I8(r) => r.iter().map(|&x| i64::from(x)).collect(),
            RowRef::U8(r) => r.iter().map(|&x| i64::from(x)).collect(),
            RowRef::F32(_) => panic!("f32 rows for {output}"),
        })
        .collect()
}

/// Every row of a Parquet or Arrow output with an int8 or uint8 embedding list.
fn arrow_byte_rows(path: &Path) -> (arrow_schema::DataType, Vec<Vec<i64>>) {
    use arrow_array::{Array, FixedSizeListArray, Int8Array, UInt8Array};
    let f = std::fs::File::open(path).unwrap();
    let batches: Vec<arrow_array::RecordBatch> = if path.extension().unwrap() == "parquet" {
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect()
    } else {
        arrow_ipc::reader::FileReader::try_new(f, None)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let mut rows = Vec::new();
    let mut data_type = None;
    for b in &batches {
        let emb = b
            .column(2)
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .unwrap();
        data_type = Some(emb.data_type().clone());
        for r in 0..b.num_rows() {
            let row = emb.value(r);
            let v: Vec<i64> = if let Some(a) = row.as_any().downcast_ref::<Int8Array>() {
                a.values().iter().map(|&x| i64::from(x)).collect()
            } else {
                let a = row.as_any().downcast_ref::<UInt8Array>().unwrap();
                a.values().iter().map(|&x| i64::from(x)).collect()
            };
            rows.push(v);
        }
    }
    (data_type.unwrap(), rows)
}

#[test]
fn quantized_output_types_round_trip_in_every_format() {
    use embeddings::OutputType;
    let dir = tempfile::tempdir().unwrap();
    let texts = ["alpha", "beta", "gamma"];
    let input = dir.path().join("in.txt");
    std::fs::write(&input, texts.join("\n") + "\n").unwrap();
    for (name, t, bytes_per_row, descr, signed) in [
        ("int8", OutputType::Int8, 12, "|i1", true),
        ("uint8", OutputType::Uint8, 12, "|u1", false),
        ("binary", OutputType::Binary, 2, "|i1", true),
        ("ubinary", OutputType::Ubinary, 2, "|u1", false),
    ] {
        let want = library_rows(&texts, t);
        assert_eq!(want[0].len(), bytes_per_row);
        let run = |file: &str| {
            let out = dir.path().join(file);
            let o = embed(&[
                "-q",
                "-d",
                "12",
                "--output-type",
                name,
                "-i",
                input.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{name} {file}: {}", stderr(&o));
            out
        };
        // JSONL and JSON: integer arrays.
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(run(&format!("{name}.jsonl")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run(&format!("{name}.json"))).unwrap()).unwrap();
        for rows in [lines, json.as_array().unwrap().clone()] {
            let got: Vec<Vec<i64>> = rows
                .iter()
                .map(|r| {
                    r["embedding"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_i64().unwrap())
                        .collect()
                })
                .collect();
            assert_eq!(got, want, "{name} json");
        }
        // .npy: int8 or uint8, N × bytes per row.
        let bytes = std::fs::read(run(&format!("{name}.npy"))).unwrap();
        let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
        assert_eq!(npy.shape(), [3, bytes_per_row as u64], "{name}");
        assert_eq!(
            npy.dtype(),
            npyz::DType::Plain(descr.parse().unwrap()),
            "{name}"
        );
        let flat: Vec<i64> = if signed {
            npy.into_vec::<i8>()
                .unwrap()
                .into_iter()
                .map(i64::from)
                .collect()
        } else {
            npy.into_vec::<u8>()
                .unwrap()
                .into_iter()
                .map(i64::from)
                .collect()
        };
        assert_eq!(flat, want.concat(), "{name} npy");
        // Parquet and Arrow: fixed-size lists of int8 or uint8.
        for ext in ["parquet", "arrow"] {
            let (data_type, rows) = arrow_byte_rows(&run(&format!("{name}.{ext}")));
            let element = if signed {
                arrow_schema::DataType::Int8
            } else {
                arrow_schema::DataType::UInt8
            };
            match data_type {
                arrow_schema::DataType::FixedSizeList(item, n) => {
                    assert_eq!((item.data_type(), n), (&element, bytes_per_row as i32))
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(rows, want, "{name} {ext}");
        }
    }
    // An empty input: shape (0, bytes per row).
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let out = dir.path().join("e.npy");
    let o = embed(&[
        "-q",
        "-d",
        "12",
        "--output-type",
        "binary",
        "-i",
        empty.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(npyz::NpyFile::new(&bytes[..]).unwrap().shape(), [0, 2]);
}

#[test]
fn the_input_type_and_output_type_reach_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    // The mock has no input types of its own: the prompt layer puts the
    // query prompt in front of each text, so each row shows the type arrived.
    std::fs::write(
        &cfg,
        "dimensions = 4\n[prompts]\nquery = \"query: \"\nclustering = \"cluster: \"\n[mock]\nmax_input_tokens = 5\n",
    )
    .unwrap();
    let input = dir.path().join("in.txt");
    // Line 2 is too long: with --on-error skip its batch is retried input by input.
    std::fs::write(
        &input,
        "one\nthis line is far too long for the limit\nthree\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut a = vec![
            "-q",
            "-c",
            cfg.to_str().unwrap(),
            "-i",
            input.to_str().unwrap(),
            "--on-error",
            "skip",
        ];
        a.extend_from_slice(extra);
        jsonl(&embed(&a))
    };
    for (extra, prompt) in [
        (&[][..], ""),
        (&["--input-type", "query"][..], "query: "),
        (&["--input-type", "clustering"][..], "cluster: "),
    ] {
        let rows = run(extra);
        assert_eq!(rows.len(), 2, "{extra:?}");
        assert_eq!(rows[1]["index"], 2);
        assert_vec(
            &floats(&rows[0]["embedding"]),
            "mock",
            &format!("{prompt}one"),
            4,
        );
        assert_vec(
            &floats(&rows[1]["embedding"]),
            "mock",
            &format!("{prompt}three"),
            4,
        );
    }
    // From the config file, and the flags win over it.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text = format!("input_type = \"query\"\noutput_type = \"int8\"\n{text}");
    std::fs::write(&cfg, text).unwrap();
    let rows = run(&[]);
    let want = {
        use embeddings::{EmbedRequest, Embedder, OutputType, RowRef};
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mock = embeddings_mock::MockEmbedder::new("mock", 4).unwrap();
        let e = rt
            .block_on(
                mock.embed(EmbedRequest::new(&["query: one"]).with_output_type(OutputType::Int8)),
            )
            .unwrap();
        match e.row_ref(0) {
            RowRef::I8(r) => r
                .iter()
                .map(|&x| serde_json::Value::from(x))
                .collect::<Vec<_>>(),
            _ => unreachable!(),
        }
    };
    assert_eq!(rows[0]["embedding"].as_array().unwrap(), &want);
    let rows = run(&["--input-type", "document", "--output-type", "f32"]);
    assert_vec(&floats(&rows[0]["embedding"]), "mock", "one", 4);
}

#[test]
fn a_quantized_job_resumes_to_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let input = lines_file(dir.path(), "in.txt", 10);
    for (t, file) in [
        ("ubinary", "b.npy"),
        ("int8", "i.parquet"),
        ("binary", "b.jsonl"),
    ] {
        let out = dir.path().join(file);
        let mut resume = stopped_job_with(dir.path(), &input, &out, &["--output-type", t]);
        resume.push("--resume".into());
        let o = embed(&strs(&resume));
        assert!(o.status.success(), "{t}: {}", stderr(&o));
        // The same as one uninterrupted run.
        let whole = dir.path().join(format!("whole-{file}"));
        let o = embed(&[
            "-q",
            "-d",
            "4",
            "--output-type",
            t,
            "-i",
            input.to_str().unwrap(),
            "-o",
            whole.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        if file.ends_with(".parquet") {
            assert_eq!(arrow_byte_rows(&out).1, arrow_byte_rows(&whole).1, "{t}");
        } else {
            assert_eq!(
                std::fs::read(&out).unwrap(),
                std::fs::read(&whole).unwrap(),
                "{t}"
            );
        }
    }
}

#[test]
fn an_over_length_input_is_named_by_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "dimensions = 4\n[mock]\nmax_input_tokens = 5\n").unwrap();
    let input = dir.path().join("in.txt");
    let mut lines: Vec<String> = (1..=20).map(|i| format!("l{i}")).collect();
    lines[13] = "this line is far too long for the limit".into();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    // Batches of 5: line 14 is input 3 of inputs 10..15.
    let args = [
        "-c",
        cfg.to_str().unwrap(),
        "--batch-size",
        "5",
        "-i",
        input.to_str().unwrap(),
    ];
    let o = embed(&args);
    assert_fails(
        &o,
        "context_length_exceeded",
        "in.txt line 14: the input has 10 tokens; the limit is 5",
    );
    let err = stderr(&o);
    assert!(
        !err.contains("inputs 10..15") && !err.contains("input 3"),
        "{err}"
    );
    let mut skip = args.to_vec();
    skip.extend(["--on-error", "skip", "--stats", "json"]);
    let o = embed(&skip);
    assert_eq!(jsonl(&o).len(), 19);
    let stats: serde_json::Value = serde_json::from_str(stderr(&o).trim()).unwrap();
    let listed = stats["skipped_inputs"][0].as_str().unwrap();
    assert!(
        listed.contains("in.txt line 14: context_length_exceeded: mock: the input has 10 tokens"),
        "{listed}"
    );
    assert!(!listed.contains("input 0"), "{listed}");
}

#[test]
fn error_lines_are_printable_whatever_a_file_name_holds() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("a\x1b[2J\rb\x07.txt");
    let o = embed(&["-i", bad.to_str().unwrap()]);
    assert_fails(&o, "invalid_input", "cannot read input file");
    let err = stderr(&o);
    assert!(
        !err.trim_end_matches('\n').chars().any(char::is_control),
        "{err:?}"
    );
    assert!(err.contains("a\\u{1b}[2J\\rb\\u{7}.txt"), "{err:?}");
}

/// The `embed` binary on the mock provider (whose every vector is known):
/// the CLI's own default is the embedded static model.
fn mock_embed() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_embed"));
    c.env("EMBEDDINGS_PROVIDER", "mock");
    c
}
