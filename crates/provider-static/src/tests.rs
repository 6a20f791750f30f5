use super::*;
use crate::model::Model;
use embeddings_core::quantize;
use proptest::prelude::*;
use safetensors::{Dtype, tensor::TensorView};

/// A tiny BERT-style WordPiece tokenizer: ids 0..=7.
fn tokenizer_json() -> String {
    let added = |id: u32, c: &str| {
        format!(
            r#"{{"id":{id},"content":"{c}","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}}"#
        )
    };
    format!(
        r###"{{"version":"1.0","truncation":null,"padding":null,"added_tokens":[{},{}],
        "normalizer":{{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true}},
        "pre_tokenizer":{{"type":"BertPreTokenizer"}},"post_processor":null,"decoder":null,
        "model":{{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,
        "vocab":{{"[PAD]":0,"[UNK]":1,"cat":2,"dog":3,"##s":4,"sat":5,".":6,"the":7}}}}}}"###,
        added(0, "[PAD]"),
        added(1, "[UNK]")
    )
}

const VOCAB: usize = 8;
const D: usize = 3;

/// The f32 table of the tiny model: row t = [t, 1, -t/2].
fn table() -> Vec<f32> {
    (0..VOCAB)
        .flat_map(|t| [t as f32, 1.0, -(t as f32) / 2.0])
        .collect()
}

fn le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes a model directory with the table in `dtype` (F32, F16 or I8 with
/// per-row scales) and the given config.
fn model_dir(dtype: Dtype, config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let t = table();
    let (data, scales): (Vec<u8>, Option<Vec<u8>>) = match dtype {
        Dtype::F32 => (le(&t), None),
        Dtype::F16 => (
            t.iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect(),
            None,
        ),
        Dtype::I8 => {
            let mut q = Vec::new();
            let mut s = Vec::new();
            for row in t.chunks(D) {
                let m = row.iter().fold(0f32, |m, v| m.max(v.abs()));
                s.push(m / 127.0);
                q.extend(row.iter().map(|v| ((v / (m / 127.0)).round() as i8) as u8));
            }
            (q, Some(le(&s)))
        }
        _ => unreachable!(),
    };
    let mut tensors = vec![(
        "embeddings".to_owned(),
        TensorView::new(dtype, vec![VOCAB, D], &data).unwrap(),
    )];
    if let Some(s) = &scales {
        tensors.push((
            "scales".to_owned(),
            TensorView::new(Dtype::F32, vec![VOCAB], s).unwrap(),
        ));
    }
    let bytes = safetensors::serialize(tensors, None).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), bytes).unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), tokenizer_json()).unwrap();
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    dir
}

fn mean_normalised(ids: &[usize], t: &[f32]) -> Vec<f32> {
    let mut v = [0f32; D];
    for &i in ids {
        for k in 0..D {
            v[k] += t[i * D + k];
        }
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

#[tokio::test]
async fn rows_are_the_normalised_mean_of_the_token_vectors_in_input_order() {
    let dir = model_dir(Dtype::F32, r#"{"normalize": true, "hidden_dim": 3}"#);
    let e = StaticEmbedder::from_dir(dir.path()).unwrap();
    assert_eq!(e.info().dimension, D);
    assert!(e.info().normalized && e.info().in_process);
    assert!(e.info().input_types.is_empty());
    assert!(e.has_fast_tokenizer());
    let texts = ["The cats sat.", "dog", "", "zebra", "DOG dog zebra"];
    let got = e.embed_documents(&texts).await.unwrap();
    let t = table();
    // the=7 cat=2 ##s=4 sat=5 .=6
    assert!(close(
        got.row(0),
        &mean_normalised(&[7, 2, 4, 5, 6], &t),
        1e-6
    ));
    assert!(close(got.row(1), &mean_normalised(&[3], &t), 1e-6));
    // No token, and only an unknown one: the zero vector.
    assert_eq!(got.row(2), [0.0; D]);
    assert_eq!(got.row(3), [0.0; D]);
    // The unknown word is left out of the mean.
    assert!(close(got.row(4), &mean_normalised(&[3, 3], &t), 1e-6));
    assert_eq!(got.usage().unwrap().prompt_tokens, 5 + 1 + 2);
    assert_eq!(e.count_tokens("The cats sat."), 5);
}

#[tokio::test]
async fn f16_and_int8_tables_give_the_f32_rows_within_their_precision() {
    let reference = StaticEmbedder::from_dir(model_dir(Dtype::F32, "{}").path()).unwrap();
    let texts = ["the cat sat", "dogs.", "cat cat dog"];
    let want = reference.embed_documents(&texts).await.unwrap();
    for (dtype, tol) in [(Dtype::F16, 2e-3), (Dtype::I8, 2e-2)] {
        let e = StaticEmbedder::from_dir(model_dir(dtype, "{}").path()).unwrap();
        let got = e.embed_documents(&texts).await.unwrap();
        for i in 0..texts.len() {
            assert!(close(got.row(i), want.row(i), tol), "{dtype:?} row {i}");
        }
    }
}

#[tokio::test]
async fn without_normalisation_rows_are_the_plain_mean() {
    let dir = model_dir(Dtype::F32, r#"{"normalize": false}"#);
    let e = StaticEmbedder::from_dir(dir.path()).unwrap();
    assert!(!e.info().normalized);
    let got = e.embed_query("cat dog").await.unwrap();
    assert!(close(&got, &[2.5, 1.0, -1.25], 1e-6), "{got:?}");
}

#[tokio::test]
async fn every_output_type_is_the_quantized_f32_row() {
    let dir = model_dir(Dtype::F32, "{}");
    let e = StaticEmbedder::from_dir(dir.path()).unwrap();
    let texts = ["the cat", "dogs sat"];
    let f = e.embed_documents(&texts).await.unwrap();
    for out in OutputType::ALL {
        let got = e
            .embed(EmbedRequest::new(&texts).with_output_type(out))
            .await
            .unwrap();
        assert_eq!(got.output_type(), out);
        let want = f.clone().quantized(out).unwrap();
        assert_eq!(got, want, "{out}");
    }
    let i8 = e
        .embed(EmbedRequest::new(&texts).with_output_type(OutputType::Int8))
        .await
        .unwrap();
    assert_eq!(i8.as_i8().unwrap()[0], quantize::int8(f.row(0)[0]));
}

#[tokio::test]
async fn a_large_call_runs_off_the_runtime_and_gives_the_same_rows() {
    let dir = model_dir(Dtype::F32, "{}");
    let e = StaticEmbedder::from_dir(dir.path()).unwrap();
    let long: Vec<String> = (0..5000)
        .map(|i| format!("the cat {} sat .", ["dog", "cats", "zebra"][i % 3]))
        .collect();
    assert!(long.iter().map(String::len).sum::<usize>() > INLINE_BYTES);
    let refs: Vec<&str> = long.iter().map(String::as_str).collect();
    let big = e.embed_documents(&refs).await.unwrap();
    let small = e.embed_sync(&long).unwrap();
    assert_eq!(big, small);
    for (i, text) in long.iter().enumerate().step_by(97) {
        assert_eq!(big.row(i), e.embed_sync(&[text]).unwrap().row(0));
    }
}

#[test]
fn bad_model_files_are_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = StaticEmbedder::from_dir(dir.path()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.to_string()
            .contains("lacks config.json, tokenizer.json, model.safetensors"),
        "{e}"
    );

    let dir = model_dir(Dtype::F32, r#"{"hidden_dim": 4}"#);
    let e = StaticEmbedder::from_dir(dir.path()).unwrap_err();
    assert!(e.to_string().contains("hidden_dim 4"), "{e}");

    let dir = model_dir(Dtype::F32, "{}");
    std::fs::write(
        dir.path().join("model.safetensors"),
        b"not a safetensors file",
    )
    .unwrap();
    let e = StaticEmbedder::from_dir(dir.path()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("static: model.safetensors"), "{e}");

    // Fewer rows than tokens.
    let data = le(&table()[..(VOCAB - 1) * D]);
    let bytes = safetensors::serialize(
        [(
            "embeddings",
            TensorView::new(Dtype::F32, vec![VOCAB - 1, D], &data).unwrap(),
        )],
        None,
    )
    .unwrap();
    std::fs::write(dir.path().join("model.safetensors"), bytes).unwrap();
    let e = StaticEmbedder::from_dir(dir.path()).unwrap_err();
    assert!(
        e.to_string().contains("7 rows but the tokenizer has 8"),
        "{e}"
    );

    std::fs::write(dir.path().join("config.json"), "{").unwrap();
    let e = StaticEmbedder::from_dir(dir.path()).unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn the_configured_dimension_must_match_the_model() {
    let dir = model_dir(Dtype::F32, "{}");
    let mut c = Config {
        provider: NAME.into(),
        dimensions: Some(8),
        ..Config::default()
    };
    c.sections
        .insert(NAME.into(), serde_json::json!({"model_path": dir.path()}));
    let e = StaticEmbedder::from_config(&c).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(e.to_string().contains("produces 3-dimensional"), "{e}");
}

/// all-MiniLM-L6-v2's tokenizer, as the embedded model ships it (loaded once).
fn minilm() -> &'static Model {
    static M: std::sync::OnceLock<Model> = std::sync::OnceLock::new();
    M.get_or_init(load_minilm)
}

fn load_minilm() -> Model {
    Model::load(Files {
        config: Cow::Borrowed(b"{}"),
        tokenizer: Cow::Owned(
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/model/tokenizer.json")).unwrap(),
        ),
        lazy_tokenizer: false,
        weights: Cow::Owned(
            safetensors::serialize(
                [(
                    "embeddings",
                    TensorView::new(Dtype::I8, vec![30522, 1], &[0u8; 30522]).unwrap(),
                )],
                None,
            )
            .unwrap(),
        ),
    })
    .unwrap()
}

fn fast_ids(m: &Model, text: &str) -> Vec<u32> {
    let mut v = Vec::new();
    m.token_ids(text, &mut v, &mut Vec::new()).unwrap();
    v
}

#[test]
fn the_fast_path_matches_the_tokenizer_on_real_text() {
    let m = minilm();
    assert!(m.has_fast_path());
    let text = include_str!("lib.rs");
    for line in text.lines() {
        let want: Vec<u32> = m
            .reference_ids(line)
            .into_iter()
            .filter(|&i| i != 100)
            .collect();
        assert_eq!(fast_ids(m, line), want, "{line:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn the_fast_path_matches_the_tokenizer_on_any_ascii(
        text in proptest::string::string_regex(
            "([a-zA-Z]{1,12}|[0-9]{1,4}|[ \t\r\n]{1,2}|[!-/:-@\\[-`{-~]|[\\x00-\\x1f\\x7f]|ing|un|##|\\[CLS\\]|[a-z]{101})*"
        ).unwrap(),
    ) {
        let m = minilm();
        let want: Vec<u32> = m.reference_ids(&text).into_iter().filter(|&i| i != 100).collect();
        prop_assert_eq!(fast_ids(m, &text), want);
    }
}

#[cfg(feature = "embedded-model")]
mod embedded_model {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[tokio::test]
    async fn the_embedded_model_ranks_a_paraphrase_above_unrelated_text() {
        let e = StaticEmbedder::embedded().unwrap();
        assert_eq!(e.info().model, EMBEDDED_MODEL);
        assert_eq!(e.info().dimension, 256);
        assert!(e.has_fast_tokenizer());
        let v = e
            .embed_documents(&[
                "a cat sat on the mat",
                "a kitten rested on the rug",
                "quarterly revenue grew",
            ])
            .await
            .unwrap();
        for i in 0..3 {
            let n: f32 = v.row(i).iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-5);
        }
        let para = cos(v.row(0), v.row(1));
        let unrelated = cos(v.row(0), v.row(2));
        assert!(
            para > unrelated + 0.2,
            "paraphrase {para}, unrelated {unrelated}"
        );
    }

    #[tokio::test]
    async fn the_embedded_model_is_the_default_and_rows_do_not_depend_on_the_batch() {
        let c = Config {
            provider: NAME.into(),
            ..Config::default()
        };
        let e = StaticEmbedder::from_config(&c).unwrap();
        assert_eq!(e.info().model, EMBEDDED_MODEL);
        let texts = [
            "one text",
            "another, longer text with more words",
            "é ü ß 中文",
        ];
        let all = e.embed_documents(&texts).await.unwrap();
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(all.row(i), e.embed_query(t).await.unwrap().as_slice());
        }
    }
}

#[cfg(not(feature = "embedded-model"))]
#[test]
fn without_the_feature_the_embedded_model_is_a_config_error_naming_it() {
    let e = StaticEmbedder::embedded().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(e.to_string().contains("embedded-model"), "{e}");
}
