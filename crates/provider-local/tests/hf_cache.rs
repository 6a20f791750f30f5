//! Resolution of a model id in the Hugging Face cache layout
//! (`models--org--name/snapshots/<rev>/`, `refs/main`), through
//! `HF_HUB_CACHE`, `HF_HOME` and `~/.cache/huggingface/hub`, and the error
//! for a model that is nowhere. One test in this binary: it sets
//! environment variables, which no other thread reads meanwhile.
#![allow(unsafe_code)]

mod common;

use std::path::Path;

use embeddings_core::{Config, Embedder, ErrorKind};
use embeddings_local::{LocalEmbedder, cached_snapshot, hf_cache_dir};

fn lay_out_cache(cache: &Path, id: &str, commit: &str) {
    let src = common::model_dir();
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(snap.join("1_Pooling")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "1_Pooling/config.json",
    ] {
        std::os::unix::fs::symlink(src.join(f), snap.join(f)).unwrap();
    }
}

fn set(k: &str, v: Option<&Path>) {
    // SAFETY: this binary's only test runs on one thread and nothing else
    // reads the environment while it changes it.
    unsafe {
        match v {
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn model_ids_resolve_in_the_hugging_face_cache() {
    let id = "sentence-transformers/all-MiniLM-L6-v2";
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    let hub = home.join(".cache/huggingface/hub");
    lay_out_cache(&hub, id, commit);
    let want = hub
        .join("models--sentence-transformers--all-MiniLM-L6-v2/snapshots")
        .join(commit);

    // The snapshot by branch (refs/main) and by commit.
    assert_eq!(
        cached_snapshot(&hub, id, "main").as_deref(),
        Some(want.as_path())
    );
    assert_eq!(
        cached_snapshot(&hub, id, commit).as_deref(),
        Some(want.as_path())
    );
    assert_eq!(cached_snapshot(&hub, id, "v2"), None);
    assert_eq!(cached_snapshot(&hub, "other/model", "main"), None);

    // Precedence: HF_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME, ~/.cache.
    set("HF_HUB_OFFLINE", Some(Path::new("1")));
    set("XDG_CACHE_HOME", None);
    set("HF_HUB_CACHE", None);
    set("HF_HOME", None);
    set("HOME", Some(&home));
    assert_eq!(hf_cache_dir().as_deref(), Some(hub.as_path()));
    let e = LocalEmbedder::from_config(&Config::for_provider("local")).unwrap();
    assert_eq!(
        e.model_dir(),
        want,
        "default model from ~/.cache/huggingface/hub"
    );
    assert_eq!(e.info().model, id);

    let hf_home = root.path().join("hf-home");
    lay_out_cache(&hf_home.join("hub"), "BAAI/bge-small-en-v1.5", "c0ffee");
    set("HF_HOME", Some(&hf_home));
    assert_eq!(hf_cache_dir(), Some(hf_home.join("hub")));
    let mut config = Config::for_provider("local");
    config.model = Some("BAAI/bge-small-en-v1.5".into());
    let e = LocalEmbedder::from_config(&config).unwrap();
    assert!(
        e.model_dir()
            .ends_with("models--BAAI--bge-small-en-v1.5/snapshots/c0ffee")
    );
    assert_eq!(e.embed_query("resolved").await.unwrap().len(), 384);

    let hub2 = root.path().join("hub-cache");
    lay_out_cache(&hub2, "intfloat/e5-small-v2", "feed");
    set("HF_HUB_CACHE", Some(&hub2));
    assert_eq!(hf_cache_dir(), Some(hub2.clone()));
    config.model = Some("intfloat/e5-small-v2".into());
    assert!(
        LocalEmbedder::from_config(&config)
            .unwrap()
            .model_dir()
            .starts_with(&hub2)
    );

    // Nowhere, offline: NotFound saying where it looked and how to get it.
    config.model = Some("nobody/missing-model".into());
    let err = LocalEmbedder::from_config(&config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let m = err.message();
    assert!(m.contains("models--nobody--missing-model"), "{m}");
    assert!(m.contains(&hub2.display().to_string()), "{m}");
    assert!(
        m.contains("HF_HUB_OFFLINE") && m.contains("model_path"),
        "{m}"
    );

    // Not a model id at all.
    config.model = Some("../../etc".into());
    assert_eq!(
        LocalEmbedder::from_config(&config).unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
}
