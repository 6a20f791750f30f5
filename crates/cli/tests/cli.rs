//! End-to-end tests of the `embed` binary on the mock provider.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use embeddings_mock::vector;

fn embed(args: &[&str]) -> Output {
    embed_in(args, None, None)
}

fn embed_in(args: &[&str], stdin: Option<&[u8]>, dir: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_embed"));
    cmd.args(args)
        .env_remove("EMBEDDINGS_PROVIDER")
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
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
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

    let rows = jsonl(&embed_in(&["-d", "4", "-i", "-"], Some(b"one\ntwo\n"), None));
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
    let o = embed(&["-d", "5", "--format", "npy", "-o", out.to_str().unwrap(), "a", "b", "c"]);
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
    let names: Vec<&str> = text.lines().map(|l| l.split('\t').next().unwrap()).collect();
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
    let o = Command::new(env!("CARGO_BIN_EXE_embed"))
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
    assert!(o.stdout.is_empty(), "stdout: {}", String::from_utf8_lossy(&o.stdout));
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
    assert_fails(&embed(&["-d", "0", "x"]), "invalid_config", "`dimensions` = 0");
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
    let o = embed(&["-c", cfg.to_str().unwrap(), "-o", out.to_str().unwrap(), "a", "b"]);
    assert_fails(&o, "unavailable", "simulated failure");
    assert!(!out.exists());
    assert!(!dir.path().join("out.jsonl.partial").exists());
}
