//! The configuration files of a sentence-transformers model directory:
//! the encoder (`config.json`), the module list (`modules.json`), pooling
//! (`1_Pooling/config.json`), `sentence_bert_config.json` (max sequence
//! length, lower-casing) and `config_sentence_transformers.json` (prompts).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use embeddings_core::{Error, ErrorKind, Result};
use serde::Deserialize;

use crate::NAME;

/// The encoder architectures this provider runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// BERT and its relatives (MiniLM, BGE, E5, GTE): absolute positions from 0.
    Bert,
    /// XLM-RoBERTa (multilingual-e5, ...): positions start after the padding id.
    XlmRoberta,
}

/// The activation of the feed-forward layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// Exact GELU (erf), `gelu` in config.json.
    GeluErf,
    /// tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    /// ReLU.
    Relu,
}

/// How token vectors become one sentence vector (`1_Pooling/config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean of the token vectors.
    Mean,
    /// The first token's (`[CLS]` / `<s>`) vector.
    Cls,
    /// Component-wise maximum over the tokens.
    Max,
    /// Sum of the token vectors divided by the square root of their number.
    MeanSqrtLen,
}

impl Pooling {
    /// The name used in the fingerprint and `health`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
            Pooling::MeanSqrtLen => "mean_sqrt_len",
        }
    }
}

/// The encoder's hyper-parameters from config.json.
#[derive(Debug, Clone)]
pub(crate) struct EncoderConfig {
    pub(crate) arch: Architecture,
    pub(crate) vocab_size: usize,
    pub(crate) hidden_size: usize,
    pub(crate) num_hidden_layers: usize,
    pub(crate) num_attention_heads: usize,
    pub(crate) intermediate_size: usize,
    pub(crate) activation: Activation,
    pub(crate) max_position_embeddings: usize,
    pub(crate) type_vocab_size: usize,
    pub(crate) layer_norm_eps: f64,
    pub(crate) pad_token_id: u32,
}

/// Everything read from a model directory except the weights and the tokenizer.
#[derive(Debug, Clone)]
pub(crate) struct ModelFiles {
    pub(crate) dir: PathBuf,
    pub(crate) encoder: EncoderConfig,
    pub(crate) pooling: Pooling,
    pub(crate) normalize: bool,
    pub(crate) max_seq_length: usize,
    pub(crate) lower_case: bool,
    pub(crate) prompts: BTreeMap<String, String>,
    pub(crate) default_prompt: Option<String>,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{}: {what}", path.display()),
    )
    .with_provider(NAME)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(path, format!("cannot read: {e}"))),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| bad(path, format!("invalid: {e}")))
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    #[serde(default)]
    architectures: Vec<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    intermediate_size: Option<usize>,
    hidden_act: Option<String>,
    max_position_embeddings: Option<usize>,
    type_vocab_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    pad_token_id: Option<u32>,
    position_embedding_type: Option<String>,
}

#[derive(Deserialize)]
struct RawModule {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPooling {
    pooling_mode_cls_token: bool,
    pooling_mode_mean_tokens: bool,
    pooling_mode_max_tokens: bool,
    pooling_mode_mean_sqrt_len_tokens: bool,
    pooling_mode_weightedmean_tokens: bool,
    pooling_mode_lasttoken: bool,
    include_prompt: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSbert {
    max_seq_length: Option<usize>,
    do_lower_case: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSt {
    prompts: BTreeMap<String, String>,
    default_prompt_name: Option<String>,
}

impl ModelFiles {
    /// Reads and checks the configuration files of `dir`.
    pub(crate) fn read(dir: &Path) -> Result<ModelFiles> {
        let config_path = dir.join("config.json");
        let raw: RawConfig = read_json(&config_path)?.ok_or_else(|| {
            bad(
                &config_path,
                "missing (every model directory needs config.json)",
            )
        })?;
        let encoder = encoder_config(&config_path, raw)?;

        // modules.json: Transformer, Pooling, Normalize; anything else is refused.
        let modules_path = dir.join("modules.json");
        let modules: Vec<RawModule> = read_json(&modules_path)?.unwrap_or_default();
        let mut pooling_dir = None;
        let mut normalize = false;
        for m in &modules {
            let kind = m.kind.rsplit('.').next().unwrap_or(&m.kind);
            match kind {
                "Transformer" => {
                    if !m.path.is_empty() {
                        return Err(bad(
                            &modules_path,
                            format!(
                                "the Transformer module lives in {:?}; only a model whose transformer is at the directory's top is supported",
                                m.path
                            ),
                        ));
                    }
                }
                "Pooling" => pooling_dir = Some(dir.join(&m.path)),
                "Normalize" => normalize = true,
                other => {
                    return Err(bad(
                        &modules_path,
                        format!(
                            "module {other} ({}) is not supported (supported: Transformer, Pooling, Normalize)",
                            m.kind
                        ),
                    ));
                }
            }
        }
        let pooling_path = pooling_dir
            .unwrap_or_else(|| dir.join("1_Pooling"))
            .join("config.json");
        let pooling = match read_json::<RawPooling>(&pooling_path)? {
            // A plain transformer without a pooling config: sentence-transformers
            // uses mean pooling then.
            None => Pooling::Mean,
            Some(p) => pooling_mode(&pooling_path, &p)?,
        };

        let sbert: RawSbert =
            read_json(&dir.join("sentence_bert_config.json"))?.unwrap_or_default();
        let position_limit = match encoder.arch {
            // RoBERTa reserves positions 0..=padding_idx.
            Architecture::XlmRoberta => encoder
                .max_position_embeddings
                .saturating_sub(encoder.pad_token_id as usize + 1),
            Architecture::Bert => encoder.max_position_embeddings,
        };
        let max_seq_length = sbert
            .max_seq_length
            .unwrap_or(position_limit)
            .min(position_limit);
        if max_seq_length < 2 {
            return Err(bad(
                &dir.join("sentence_bert_config.json"),
                format!("max_seq_length {max_seq_length} leaves no room for text"),
            ));
        }
        let st: RawSt =
            read_json(&dir.join("config_sentence_transformers.json"))?.unwrap_or_default();
        let default_prompt = match &st.default_prompt_name {
            None => None,
            Some(name) => Some(st.prompts.get(name).cloned().ok_or_else(|| {
                bad(
                    &dir.join("config_sentence_transformers.json"),
                    format!("default_prompt_name {name:?} is not one of its prompts"),
                )
            })?),
        };
        Ok(ModelFiles {
            dir: dir.to_path_buf(),
            encoder,
            pooling,
            normalize,
            max_seq_length,
            lower_case: sbert.do_lower_case,
            prompts: st.prompts,
            default_prompt,
        })
    }
}

fn pooling_mode(path: &Path, p: &RawPooling) -> Result<Pooling> {
    if p.include_prompt == Some(false) {
        return Err(bad(
            path,
            "include_prompt = false (prompt tokens left out of pooling) is not supported",
        ));
    }
    if p.pooling_mode_weightedmean_tokens || p.pooling_mode_lasttoken {
        return Err(bad(
            path,
            "weighted-mean and last-token pooling are not supported (supported: mean, cls, max, mean_sqrt_len)",
        ));
    }
    let modes = [
        (p.pooling_mode_mean_tokens, Pooling::Mean),
        (p.pooling_mode_cls_token, Pooling::Cls),
        (p.pooling_mode_max_tokens, Pooling::Max),
        (p.pooling_mode_mean_sqrt_len_tokens, Pooling::MeanSqrtLen),
    ];
    let on: Vec<Pooling> = modes.iter().filter(|m| m.0).map(|m| m.1).collect();
    match on.as_slice() {
        [one] => Ok(*one),
        [] => Err(bad(path, "no pooling mode is set")),
        _ => Err(bad(
            path,
            "several pooling modes at once (concatenated vectors) are not supported",
        )),
    }
}

fn encoder_config(path: &Path, raw: RawConfig) -> Result<EncoderConfig> {
    let model_type = raw.model_type.clone().unwrap_or_default();
    let arch = match model_type.as_str() {
        "bert" => Architecture::Bert,
        "xlm-roberta" | "roberta" | "camembert" => Architecture::XlmRoberta,
        "" => {
            return Err(bad(
                path,
                "no model_type (supported: bert and its relatives MiniLM, BGE, E5, GTE; xlm-roberta)",
            ));
        }
        other => {
            let arch = raw.architectures.first().map(String::as_str).unwrap_or("?");
            return Err(bad(
                path,
                format!(
                    "model_type {other:?} ({arch}) is not supported; the local provider runs \
                     bert (MiniLM, BGE, E5, GTE) and xlm-roberta models"
                ),
            ));
        }
    };
    if let Some(p) = raw
        .position_embedding_type
        .as_deref()
        .filter(|p| *p != "absolute")
    {
        return Err(bad(
            path,
            format!("position_embedding_type {p:?} is not supported (only absolute)"),
        ));
    }
    let need = |v: Option<usize>, key: &str| {
        v.filter(|&n| n > 0)
            .ok_or_else(|| bad(path, format!("{key} is missing or zero")))
    };
    let hidden_size = need(raw.hidden_size, "hidden_size")?;
    let num_attention_heads = need(raw.num_attention_heads, "num_attention_heads")?;
    if hidden_size % num_attention_heads != 0 {
        return Err(bad(
            path,
            format!(
                "hidden_size {hidden_size} is not a multiple of num_attention_heads {num_attention_heads}"
            ),
        ));
    }
    let activation = match raw.hidden_act.as_deref().unwrap_or("gelu") {
        "gelu" => Activation::GeluErf,
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
        "relu" => Activation::Relu,
        other => {
            return Err(bad(
                path,
                format!("hidden_act {other:?} is not supported (gelu, gelu_new, relu)"),
            ));
        }
    };
    Ok(EncoderConfig {
        arch,
        vocab_size: need(raw.vocab_size, "vocab_size")?,
        hidden_size,
        num_hidden_layers: need(raw.num_hidden_layers, "num_hidden_layers")?,
        num_attention_heads,
        intermediate_size: need(raw.intermediate_size, "intermediate_size")?,
        activation,
        max_position_embeddings: need(raw.max_position_embeddings, "max_position_embeddings")?,
        type_vocab_size: raw.type_vocab_size.unwrap_or(2).max(1),
        layer_norm_eps: raw.layer_norm_eps.unwrap_or(1e-12),
        pad_token_id: raw.pad_token_id.unwrap_or(match arch {
            Architecture::Bert => 0,
            Architecture::XlmRoberta => 1,
        }),
    })
}
