//! The `local` provider against the contract: the conformance suite, the
//! information it reports, prompts, typed errors for bad models, and a
//! dropped call.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{embedder, model_dir};
use embeddings_core::{Config, EmbedRequest, Embedder, ErrorKind, InputType, OutputType};
use embeddings_local::{LocalEmbedder, LocalSection, Pooling};
use embeddings_testkit::conformance::{Expectations, run_all};

#[tokio::test]
async fn conformance_suite_passes() {
    let e = embedder(2, None);
    run_all(&e, &Expectations::dimension_only(384).packs_binary(false)).await;
}

#[tokio::test]
async fn info_reports_the_model() {
    let e = embedder(1, None);
    assert!(!e.is_loaded(), "weights load lazily");
    e.prepare().await.unwrap();
    assert!(e.is_loaded());
    let info = e.info();
    assert_eq!((info.provider.as_ref(), info.dimension), ("local", 384));
    assert_eq!(info.max_input_tokens, 256);
    assert!(info.in_process && info.normalized);
    assert!(
        info.input_types.is_empty(),
        "all-MiniLM-L6-v2 has no prompts"
    );
    assert_eq!(e.pooling(), Pooling::Mean);
    let fp = info.fingerprint();
    assert!(fp.contains("pooling=mean") && fp.contains("path="), "{fp}");
    // Clones share the loaded weights.
    let c = e.clone();
    assert!(c.is_loaded());
}

#[tokio::test]
async fn through_the_registry_with_model_path() {
    let text = format!(
        "provider = \"local\"\n[local]\nmodel_path = {:?}\nthreads = 1\n",
        model_dir().display().to_string()
    );
    let config = Config::from_toml_str(&text).unwrap();
    let reg = embeddings_core::registry::find("local").unwrap();
    let e = (reg.build)(&config).unwrap();
    let v = e.embed_query("hello world").await.unwrap();
    assert_eq!(v.len(), 384);
    // Wrong dimension is a config error naming the model's.
    let mut c2 = config.clone();
    c2.dimensions = Some(128);
    let err = (reg.build)(&c2).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().contains("384"), "{err}");
}

#[tokio::test]
async fn output_types_other_than_f32_are_refused_natively() {
    let e = embedder(1, None);
    let err = e
        .embed(EmbedRequest::new(&["x"]).with_output_type(OutputType::Int8))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// A copy of the model directory (the weights linked, not copied) whose
/// files `edit` may change.
fn model_copy(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let src = model_dir();
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
    ] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
    std::fs::copy(
        src.join("1_Pooling/config.json"),
        dir.path().join("1_Pooling/config.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        src.join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    edit(dir.path());
    dir
}

fn open(dir: &Path) -> embeddings_core::Result<LocalEmbedder> {
    LocalEmbedder::from_dir(
        dir,
        &LocalSection {
            threads: Some(1),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn prompts_pooling_and_normalisation_come_from_the_files() {
    let plain = embedder(1, None);
    let d = model_copy(|p| {
        std::fs::write(
            p.join("config_sentence_transformers.json"),
            r#"{"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": null}"#,
        )
        .unwrap();
        std::fs::write(
            p.join("1_Pooling/config.json"),
            r#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": true}"#,
        )
        .unwrap();
        std::fs::write(
            p.join("modules.json"),
            r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
                {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#,
        )
        .unwrap();
    });
    let e = open(d.path()).unwrap();
    let info = e.info();
    assert_eq!(e.pooling(), Pooling::Cls);
    assert!(!info.normalized);
    assert!(
        info.supports_input_type(InputType::Query) && info.supports_input_type(InputType::Document)
    );
    // "query: " is 2 tokens ("query", ":"): the advertised limit leaves room for it.
    assert_eq!(info.max_input_tokens, 254);
    assert_ne!(info.fingerprint(), plain.info().fingerprint());
    let q = e.embed_query("what is rust?").await.unwrap();
    let d1 = e
        .embed(EmbedRequest::new(&["what is rust?"]))
        .await
        .unwrap();
    assert!(
        common::max_diff(&q, d1.row(0)) > 1e-3,
        "query and document prompts differ"
    );
    // The prompt is put in front of the text: a query is "query: " + text
    // embedded with no prompt (classification has none in this model).
    let spelled = e
        .embed(
            EmbedRequest::new(&["query: what is rust?"]).with_input_type(InputType::Classification),
        )
        .await
        .unwrap();
    assert!(
        common::max_diff(&q, spelled.row(0)) < 1e-6,
        "query prompt applied as a prefix"
    );
    let norm = q.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!(
        (norm - 1.0).abs() > 1e-3,
        "no Normalize module: not unit norm"
    );
}

#[tokio::test]
async fn bad_models_are_typed_errors() {
    // Unsupported architecture, by name.
    let d = model_copy(|p| {
        let c = std::fs::read_to_string(p.join("config.json")).unwrap();
        std::fs::write(p.join("config.json"), c.replace("\"bert\"", "\"mpnet\"")).unwrap();
    });
    let err = open(d.path()).unwrap_err();
    assert!(
        err.message().contains("mpnet") && err.message().contains("not supported"),
        "{err}"
    );

    // Unsupported module.
    let d = model_copy(|p| {
        std::fs::write(
            p.join("modules.json"),
            r#"[{"path":"2_Dense","type":"sentence_transformers.models.Dense"}]"#,
        )
        .unwrap();
    });
    let err = open(d.path()).unwrap_err();
    assert!(err.message().contains("Dense"), "{err}");

    // Broken JSON.
    let d = model_copy(|p| std::fs::write(p.join("1_Pooling/config.json"), "{not json").unwrap());
    let err = open(d.path()).unwrap_err();
    assert!(err.message().contains("1_Pooling"), "{err}");

    // Config that does not match the weights: found at load, not a panic.
    let d = model_copy(|p| {
        let c = std::fs::read_to_string(p.join("config.json")).unwrap();
        std::fs::write(
            p.join("config.json"),
            c.replace("\"num_hidden_layers\": 6", "\"num_hidden_layers\": 7"),
        )
        .unwrap();
    });
    let e = open(d.path()).unwrap();
    let err = e.prepare().await.unwrap_err();
    assert!(err.message().contains("encoder.layer.6"), "{err}");

    // Weights that are not a safetensors file.
    let d = tempfile::tempdir().unwrap();
    let src = model_dir();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), d.path().join(f)).unwrap();
    }
    std::fs::write(d.path().join("model.safetensors"), b"garbage").unwrap();
    let e = open(d.path()).unwrap();
    let err = e.embed_query("x").await.unwrap_err();
    assert!(err.message().contains("model.safetensors"), "{err}");

    // Missing files: say which, and where.
    let d = tempfile::tempdir().unwrap();
    let err = open(d.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.message().contains("tokenizer.json")
            && err.message().contains(&d.path().display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn split_tokens_cover_the_text_within_the_limit() {
    let e = embedder(1, None);
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(60) + "déjà vu 🌍 終わり";
    assert!(e.count_tokens(&text) > 256);
    let pieces = e.split_tokens(&text, 256);
    assert!(pieces.len() >= 2);
    assert_eq!(pieces.concat(), text);
    for p in &pieces {
        assert!(
            e.count_tokens(p) <= 256,
            "piece of {} tokens",
            e.count_tokens(p)
        );
    }
    assert_eq!(e.split_tokens("short", 256), vec!["short"]);
}

#[tokio::test]
async fn a_dropped_call_stops_and_the_provider_stays_usable() {
    let e = Arc::new(embedder(1, Some(256)));
    e.prepare().await.unwrap();
    let e2 = e.clone();
    let call = tokio::spawn(async move {
        let long = "word ".repeat(250);
        let texts: Vec<&str> = (0..64).map(|_| long.as_str()).collect();
        e2.embed_documents(&texts).await.map(|r| r.len())
    });
    tokio::task::yield_now().await;
    call.abort();
    let _ = call.await;
    // The pool is free again soon: the next call completes.
    let v = e.embed_query("still here").await.unwrap();
    assert_eq!(v.len(), 384);
}

#[test]
fn embedding_runs_off_the_runtime_threads() {
    // A current-thread runtime: if compute blocked its only thread, a timer
    // task could not run meanwhile; it does.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let e = embedder(1, None);
        e.prepare().await.unwrap();
        let ticks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t2 = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                t2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        let long = "word ".repeat(250);
        let texts: Vec<&str> = (0..16).map(|_| long.as_str()).collect();
        e.embed_documents(&texts).await.unwrap();
        ticker.abort();
        assert!(
            ticks.load(std::sync::atomic::Ordering::Relaxed) > 10,
            "the runtime thread was blocked"
        );
    });
}

/// XLM-RoBERTa differs from BERT in its positions: they start after the
/// padding id. The same weights read as `xlm-roberta` (pad id 1: positions
/// 2, 3, ...) must give exactly what BERT gives with a position table
/// shifted up by two rows — a check of the XLM-R path with the one real
/// model on the machine.
#[tokio::test]
async fn xlm_roberta_positions_start_after_the_padding_id() {
    fn set_config(p: &Path, f: impl FnOnce(&mut serde_json::Value)) {
        let path = p.join("config.json");
        let mut c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        f(&mut c);
        std::fs::write(&path, serde_json::to_vec(&c).unwrap()).unwrap();
    }
    let xlmr = model_copy(|p| {
        set_config(p, |c| {
            c["model_type"] = "xlm-roberta".into();
            c["pad_token_id"] = 1.into();
        })
    });
    let shifted = model_copy(|p| {
        let bytes = std::fs::read(model_dir().join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let name = st
            .names()
            .into_iter()
            .find(|n| n.ends_with("position_embeddings.weight"))
            .expect("a position table")
            .to_string();
        let table = st.tensor(&name).unwrap();
        assert_eq!(table.dtype(), safetensors::Dtype::F32);
        let (rows, width) = (table.shape()[0], table.shape()[1] * 4);
        // Row i of the new table is row i + 2 of the old one.
        let mut moved = vec![0u8; rows * width];
        moved[..(rows - 2) * width].copy_from_slice(&table.data()[2 * width..]);
        let moved_view = safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            table.shape().to_vec(),
            &moved,
        )
        .unwrap();
        let mut tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
            .tensors()
            .into_iter()
            .filter(|(n, _)| *n != name)
            .collect();
        tensors.push((name, moved_view));
        std::fs::remove_file(p.join("model.safetensors")).unwrap();
        safetensors::serialize_to_file(tensors, None, &p.join("model.safetensors")).unwrap();
    });
    let a = open(xlmr.path()).unwrap();
    let b = open(shifted.path()).unwrap();
    let texts = [
        "Hello, world!",
        "Paris is the capital and most populous city of France.",
        "a",
    ];
    let ra = a.embed_documents(&texts).await.unwrap();
    let rb = b.embed_documents(&texts).await.unwrap();
    let plain = embedder(1, None).embed_documents(&texts).await.unwrap();
    for i in 0..texts.len() {
        let d = ra
            .row(i)
            .iter()
            .zip(rb.row(i))
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(
            d < 1e-5,
            "row {i}: xlm-roberta vs shifted bert differ by {d}"
        );
        // And the positions did move: not BERT's own answer.
        let moved = ra
            .row(i)
            .iter()
            .zip(plain.row(i))
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(moved > 1e-3, "row {i}: xlm-roberta gave BERT's vector");
    }
    // The usable length is the table minus the reserved positions.
    assert!(a.max_seq_length() <= 512 - 2);
}

#[tokio::test]
async fn token_id_sequences_embed_like_the_text_they_encode() {
    let e = embedder(2, None);
    let tok = tokenizers::Tokenizer::from_file(model_dir().join("tokenizer.json")).unwrap();
    let texts = ["a cat sat on the mat", "Quarterly revenue grew by 4%."];
    let seqs: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| tok.encode(*t, true).unwrap().get_ids().to_vec())
        .collect();
    // The tokenizer pads to 128 in this file: strip the padding.
    let seqs: Vec<Vec<u32>> = seqs
        .into_iter()
        .map(|s| s.into_iter().filter(|&i| i != 0).collect())
        .collect();
    let by_ids = e.embed_token_ids(seqs).await.unwrap();
    let by_text = e.embed_documents(&texts).await.unwrap();
    for i in 0..texts.len() {
        let d = by_ids
            .row(i)
            .iter()
            .zip(by_text.row(i))
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-5, "row {i}: {d}");
    }
    // Out of the vocabulary, empty, or too long: typed errors.
    for bad in [
        vec![vec![101, 999_999, 102]],
        vec![vec![]],
        vec![vec![101; 300]],
    ] {
        let err = e.embed_token_ids(bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
}
