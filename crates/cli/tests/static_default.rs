//! The CLI's default provider is the embedded static model: `embed "text"`
//! gives its 256-dimensional vectors with no flag, no file and no network.

use std::process::{Command, Output};

use embeddings::static_model::{EMBEDDED_MODEL, StaticEmbedder};

fn embed(args: &[&str], dir: &std::path::Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_embed"));
    cmd.args(args).current_dir(dir);
    for k in [
        "EMBEDDINGS_PROVIDER",
        "EMBEDDINGS_MODEL",
        "EMBEDDINGS_DIMENSIONS",
        "EMBEDDINGS_CONFIG",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("HF_HUB_OFFLINE", "1");
    cmd.output().unwrap()
}

fn rows(o: &Output) -> Vec<Vec<f32>> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

#[test]
fn embed_without_a_provider_prints_the_embedded_models_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let texts = ["some text", "another text"];
    let o = embed(&texts, dir.path());
    let got = rows(&o);
    let model = StaticEmbedder::embedded().unwrap();
    let want = model.embed_sync(&texts).unwrap();
    assert_eq!(got.len(), 2);
    for (i, row) in got.iter().enumerate() {
        assert_eq!(row.len(), 256);
        assert_eq!(row.as_slice(), want.row(i), "row {i}");
    }
    assert_ne!(got[0], got[1]);
}

#[test]
fn similarity_ranks_the_paraphrase_above_the_unrelated_text() {
    let dir = tempfile::tempdir().unwrap();
    let o = embed(
        &[
            "similarity",
            "a cat sat on the mat",
            "a kitten rested on the rug",
            "quarterly revenue grew",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let scores: Vec<f64> = out
        .lines()
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(scores.len(), 2, "{out}");
    assert!(scores[0] > scores[1] + 0.2, "{out}");
}

#[test]
fn a_config_file_or_flag_that_names_a_provider_wins_over_the_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("embeddings.toml"),
        "provider = \"mock\"\ndimensions = 8\n",
    )
    .unwrap();
    let got = rows(&embed(&["hello"], dir.path()));
    assert_eq!(got, [embeddings::mock::vector("mock", "hello", 8)]);

    // A file without `provider` keeps the default.
    std::fs::write(
        dir.path().join("embeddings.toml"),
        "[batch]\nconcurrency = 2\n",
    )
    .unwrap();
    let got = rows(&embed(&["hello"], dir.path()));
    assert_eq!(got[0].len(), 256);

    let got = rows(&embed(&["-p", "mock", "-d", "4", "hello"], dir.path()));
    assert_eq!(got, [embeddings::mock::vector("mock", "hello", 4)]);
}

#[test]
fn providers_lists_the_static_provider() {
    let dir = tempfile::tempdir().unwrap();
    let o = embed(&["providers"], dir.path());
    assert!(o.status.success());
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.lines().any(|l| l.starts_with("static")), "{out}");
    assert!(!EMBEDDED_MODEL.is_empty());
}
