//! A model2vec-format static model: the token table (f32, f16 or int8 with
//! per-row scales), optional per-token weights and token→row mapping, the
//! tokenizer and the normalisation flag; and the pooling.

use std::borrow::Cow;
use std::sync::OnceLock;

use embeddings_core::{Error, ErrorKind, Result};
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;
use tokenizers::Tokenizer;

use crate::NAME;
use crate::wordpiece::WordPiece;

/// The table of token vectors.
enum Table {
    /// Row-major `rows × dim` floats (f32 files, and f16 widened at load).
    F32(Vec<f32>),
    /// Row-major `rows × dim` signed bytes, `bytes[start..]`; borrowed from
    /// the binary for the embedded model.
    I8 {
        bytes: Cow<'static, [u8]>,
        start: usize,
    },
}

/// The files of a model, as bytes.
pub(crate) struct Files {
    pub(crate) config: Cow<'static, [u8]>,
    pub(crate) tokenizer: Cow<'static, [u8]>,
    pub(crate) weights: Cow<'static, [u8]>,
    /// Build the general tokenizer only when a text needs it (the files are
    /// known good: the embedded model, whose fast path covers ASCII text).
    pub(crate) lazy_tokenizer: bool,
}

#[derive(Debug, Default, Deserialize)]
struct RawConfig {
    normalize: Option<bool>,
    hidden_dim: Option<usize>,
}

/// A loaded static model. Immutable; shared by clones of the embedder.
pub(crate) struct Model {
    /// The general tokenizer (`tokenizers`), built at load or, for a lazy
    /// model with a fast path, on the first text the fast path cannot take.
    tokenizer: OnceLock<std::result::Result<Tokenizer, String>>,
    tokenizer_json: Cow<'static, [u8]>,
    /// The exact fast path of BERT-uncased WordPiece tokenizers for ASCII text.
    fast: Option<WordPiece>,
    table: Table,
    /// Per token id: the row it reads and the factor applied to it (the
    /// int8 scale of that row times the token's weight).
    tokens: Vec<(u32, f32)>,
    pub(crate) dim: usize,
    pub(crate) normalize: bool,
    unk: Option<u32>,
}

/// The `tokenizers` tokenizer of a `tokenizer.json`, without padding or
/// truncation.
fn build_tokenizer(json: &[u8]) -> std::result::Result<Tokenizer, String> {
    let mut t = Tokenizer::from_bytes(json).map_err(|e| e.to_string())?;
    t.with_padding(None);
    t.with_truncation(None).map_err(|e| e.to_string())?;
    Ok(t)
}

fn bad(what: &str, msg: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidInput, format!("{what}: {msg}")).with_provider(NAME)
}

/// Little-endian floats of a 1-D f32/f16 tensor of `len` values.
fn floats(st: &SafeTensors<'_>, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
    let Ok(t) = st.tensor(name) else {
        return Ok(None);
    };
    let n: usize = t.shape().iter().product();
    if n != len {
        return Err(bad(
            "model.safetensors",
            format!("tensor {name:?} has {n} values, expected {len}"),
        ));
    }
    let data = t.data();
    let v = match t.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        d => {
            return Err(bad(
                "model.safetensors",
                format!("tensor {name:?} is {d:?}, expected F32 or F16"),
            ));
        }
    };
    Ok(Some(v))
}

impl Model {
    /// Reads a model from its three files.
    pub(crate) fn load(files: Files) -> Result<Model> {
        let config: RawConfig = if files.config.iter().all(u8::is_ascii_whitespace) {
            RawConfig::default()
        } else {
            serde_json::from_slice(&files.config).map_err(|e| bad("config.json", e))?
        };
        let json: serde_json::Value =
            serde_json::from_slice(&files.tokenizer).map_err(|e| bad("tokenizer.json", e))?;
        let fast = WordPiece::from_tokenizer_json(&json);
        let tokenizer = OnceLock::new();
        let vocab = match &fast {
            Some(wp) if files.lazy_tokenizer => wp.vocab_size(),
            _ => {
                let t = build_tokenizer(&files.tokenizer).map_err(|e| bad("tokenizer.json", e))?;
                let n = t.get_vocab_size(true);
                let _ = tokenizer.set(Ok(t));
                n
            }
        };
        let unk_token = json
            .get("model")
            .and_then(|m| m.get("unk_token"))
            .and_then(|u| u.as_str());
        let unk = match (unk_token, &fast, tokenizer.get()) {
            (None, _, _) => None,
            (Some(u), _, Some(Ok(t))) => t.token_to_id(u),
            (Some(u), Some(wp), _) => wp.word_id(u),
            (Some(_), None, _) => None,
        };

        let weights = files.weights;
        let st = SafeTensors::deserialize(&weights).map_err(|e| bad("model.safetensors", e))?;
        let name = if st.tensor("embeddings").is_ok() {
            "embeddings"
        } else {
            "0"
        };
        let emb = st
            .tensor(name)
            .map_err(|_| bad("model.safetensors", "no \"embeddings\" tensor"))?;
        let (rows, dim) = match emb.shape() {
            [r, d] if *r > 0 && *d > 0 => (*r, *d),
            s => {
                return Err(bad(
                    "model.safetensors",
                    format!("\"embeddings\" has shape {s:?}, expected [rows, dim]"),
                ));
            }
        };
        if let Some(h) = config.hidden_dim.filter(|&h| h != dim) {
            return Err(bad(
                "config.json",
                format!("hidden_dim {h} but the token table has {dim} columns"),
            ));
        }
        if dim > embeddings_core::MAX_DIMENSIONS {
            return Err(bad(
                "model.safetensors",
                format!(
                    "dimension {dim} is above {}",
                    embeddings_core::MAX_DIMENSIONS
                ),
            ));
        }
        let dtype = emb.dtype();
        let data = emb.data();
        // Where the tensor's bytes start in the file (safetensors slices the
        // buffer it was given).
        let start = data.as_ptr() as usize - weights.as_ptr() as usize;
        let table_scales;
        let table = match dtype {
            Dtype::I8 => {
                table_scales = floats(&st, "scales", rows)?;
                Table::I8 {
                    bytes: Cow::Borrowed(&[]),
                    start,
                }
            }
            Dtype::F32 | Dtype::F16 => {
                table_scales = None;
                Table::F32(floats(&st, name, rows * dim)?.unwrap_or_default())
            }
            d => {
                return Err(bad(
                    "model.safetensors",
                    format!("\"embeddings\" is {d:?}, expected F32, F16 or I8"),
                ));
            }
        };
        if matches!(table, Table::I8 { .. }) && data.len() != rows * dim {
            return Err(bad("model.safetensors", "\"embeddings\" is truncated"));
        }
        let weight = floats(&st, "weights", vocab)?;
        let mapping: Option<Vec<u32>> = match st.tensor("mappings") {
            Err(_) => None,
            Ok(t) => {
                let width = match t.dtype() {
                    Dtype::I32 | Dtype::U32 => 4,
                    Dtype::I64 | Dtype::U64 => 8,
                    d => return Err(bad("model.safetensors", format!("\"mappings\" is {d:?}"))),
                };
                let m: Vec<u64> = t
                    .data()
                    .chunks_exact(width)
                    .map(|b| {
                        let mut w = [0u8; 8];
                        w[..width].copy_from_slice(b);
                        u64::from_le_bytes(w)
                    })
                    .collect();
                if m.len() != vocab || m.iter().any(|&r| r >= rows as u64) {
                    return Err(bad(
                        "model.safetensors",
                        format!(
                            "\"mappings\" must map each of {vocab} tokens to a row below {rows}"
                        ),
                    ));
                }
                Some(m.into_iter().map(|r| r as u32).collect())
            }
        };
        if mapping.is_none() && rows < vocab {
            return Err(bad(
                "model.safetensors",
                format!("the token table has {rows} rows but the tokenizer has {vocab} tokens"),
            ));
        }
        let tokens = (0..vocab)
            .map(|t| {
                let row = mapping.as_ref().map_or(t as u32, |m| m[t]);
                let scale = table_scales.as_ref().map_or(1.0, |s| s[row as usize]);
                let w = weight.as_ref().map_or(1.0, |w| w[t]);
                (row, scale * w)
            })
            .collect();
        let table = match table {
            Table::I8 { start, .. } => Table::I8 {
                bytes: weights,
                start,
            },
            t => t,
        };
        Ok(Model {
            tokenizer,
            tokenizer_json: files.tokenizer,
            fast,
            table,
            tokens,
            dim,
            normalize: config.normalize.unwrap_or(true),
            unk,
        })
    }

    /// The token ids of `text` that are pooled (no special tokens, no
    /// unknown token), appended to `ids`.
    /// `word` is scratch space, reused across calls.
    pub(crate) fn token_ids(
        &self,
        text: &str,
        ids: &mut Vec<u32>,
        word: &mut Vec<u8>,
    ) -> Result<()> {
        let before = ids.len();
        let fast = match &self.fast {
            Some(wp) if wp.accepts(text) => {
                wp.encode_ascii(text, ids, word);
                true
            }
            _ => false,
        };
        if !fast {
            let enc = self.general()?.encode_fast(text, false).map_err(|e| {
                Error::new(ErrorKind::Internal, format!("tokenizer: {e}")).with_provider(NAME)
            })?;
            ids.extend_from_slice(enc.get_ids());
        }
        if let Some(unk) = self.unk {
            let mut k = before;
            for i in before..ids.len() {
                if ids[i] != unk {
                    ids[k] = ids[i];
                    k += 1;
                }
            }
            ids.truncate(k);
        }
        Ok(())
    }

    /// The tokenizer's own ids (the reference of the fast path).
    #[cfg(test)]
    pub(crate) fn reference_ids(&self, text: &str) -> Vec<u32> {
        self.general()
            .unwrap()
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    }

    /// The general tokenizer, built on first use for a lazy model.
    fn general(&self) -> Result<&Tokenizer> {
        self.tokenizer
            .get_or_init(|| build_tokenizer(&self.tokenizer_json))
            .as_ref()
            .map_err(|e| {
                Error::new(ErrorKind::Internal, format!("tokenizer.json: {e}")).with_provider(NAME)
            })
    }

    /// Whether the ASCII fast path is in use.
    pub(crate) fn has_fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// Mean of the token vectors of `ids` (normalised when the model says
    /// so) into `out` (`dim` values); zeros for no token.
    pub(crate) fn pool(&self, ids: &[u32], out: &mut [f32]) {
        out.fill(0.0);
        if ids.is_empty() {
            return;
        }
        let dim = self.dim;
        match &self.table {
            Table::F32(t) => {
                for &id in ids {
                    let (row, f) = self.tokens[id as usize];
                    let r = &t[row as usize * dim..(row as usize + 1) * dim];
                    for (o, &v) in out.iter_mut().zip(r) {
                        *o += v * f;
                    }
                }
            }
            Table::I8 { bytes, start } => {
                let row = |id: u32| {
                    let (row, f) = self.tokens[id as usize];
                    let at = start + row as usize * dim;
                    (&bytes[at..at + dim], f)
                };
                // Four tokens per pass over the accumulator: a quarter of
                // its loads and stores.
                let mut quads = ids.chunks_exact(4);
                for q in &mut quads {
                    let ((a, fa), (b, fb), (c, fc), (d, fd)) =
                        (row(q[0]), row(q[1]), row(q[2]), row(q[3]));
                    for (k, o) in out.iter_mut().enumerate() {
                        *o += f32::from(a[k] as i8) * fa
                            + f32::from(b[k] as i8) * fb
                            + f32::from(c[k] as i8) * fc
                            + f32::from(d[k] as i8) * fd;
                    }
                }
                for &id in quads.remainder() {
                    let (r, f) = row(id);
                    for (o, &v) in out.iter_mut().zip(r) {
                        *o += f32::from(v as i8) * f;
                    }
                }
            }
        }
        let scale = if self.normalize {
            // Eight running sums (vectorised), then their total.
            let mut lanes = [0f32; 8];
            let mut chunks = out.chunks_exact(8);
            for c in &mut chunks {
                for (l, v) in lanes.iter_mut().zip(c) {
                    *l += v * v;
                }
            }
            let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
            let n = (lanes.iter().sum::<f32>() + tail).sqrt();
            if n > 0.0 { 1.0 / n } else { 0.0 }
        } else {
            1.0 / ids.len() as f32
        };
        for o in out.iter_mut() {
            *o *= scale;
        }
    }

    /// The tokenizer's vocabulary size.
    pub(crate) fn vocab_size(&self) -> usize {
        self.tokens.len()
    }
}
