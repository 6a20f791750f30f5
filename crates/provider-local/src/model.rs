//! The encoder (BERT / XLM-RoBERTa) on candle tensors, run over a packed
//! batch: the token rows of every sequence laid end to end, so that no
//! compute is spent on padding and no attention mask is needed.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use embeddings_core::{Error, ErrorKind, Result};

use crate::NAME;
use crate::files::{Activation, Architecture, EncoderConfig, Pooling};
use crate::kernels::{self, Segment};

fn model_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{}: {what}", path.display()),
    )
    .with_provider(NAME)
}

pub(crate) fn compute_error(e: candle_core::Error) -> Error {
    Error::new(ErrorKind::Internal, format!("compute failed: {e}"))
        .with_provider(NAME)
        .with_retryable(false)
}

struct Linear {
    /// `[out, in]`, as stored; used transposed (a strided view, no copy).
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

struct Layer {
    /// Q, K and V projections fused into one `[3 * hidden, hidden]` matrix.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    ffn_norm: LayerNorm,
}

/// The loaded encoder: weights (shared, read-only) and its configuration.
pub(crate) struct Encoder {
    config: EncoderConfig,
    device: Device,
    word: Tensor,
    position: Tensor,
    token_type0: Tensor,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("arch", &self.config.arch)
            .field("layers", &self.layers.len())
            .field("hidden", &self.config.hidden_size)
            .field("device", &self.device)
            .finish()
    }
}

/// Named tensors of a safetensors file, memory-mapped while the encoder is
/// built (the weights are copied into candle's storage, then the mapping
/// is released).
struct Weights {
    st: candle_core::safetensors::MmapedSafetensors,
    prefix: String,
    path: std::path::PathBuf,
    device: Device,
}

impl Weights {
    #[allow(unsafe_code)]
    fn open(path: &Path, device: &Device) -> Result<Weights> {
        // SAFETY: the file is mapped read-only for the time it takes to copy
        // the tensors out of it; like every mmap-based loader this assumes
        // the model file is not truncated or rewritten during that time.
        let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }
            .map_err(|e| model_error(path, format!("cannot read the weights: {e}")))?;
        // Checkpoints differ in their prefix: "", "bert.", "roberta.", "model.", ...
        let names: Vec<String> = st.tensors().into_iter().map(|(n, _)| n).collect();
        let prefix = names
            .iter()
            .find_map(|n| n.strip_suffix("embeddings.word_embeddings.weight"))
            .map(str::to_owned)
            .ok_or_else(|| {
                model_error(
                    path,
                    "no embeddings.word_embeddings.weight tensor: not a BERT/XLM-RoBERTa checkpoint",
                )
            })?;
        Ok(Weights {
            st,
            prefix,
            path: path.to_path_buf(),
            device: device.clone(),
        })
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = format!("{}{name}", self.prefix);
        let t = self
            .st
            .load(&full, &self.device)
            .map_err(|e| model_error(&self.path, format!("tensor {full}: {e}")))?;
        if t.dims() != shape {
            return Err(model_error(
                &self.path,
                format!(
                    "tensor {full} has shape {:?}, config.json implies {shape:?}",
                    t.dims()
                ),
            ));
        }
        t.to_dtype(DType::F32)
            .map_err(|e| model_error(&self.path, format!("tensor {full}: {e}")))
    }

    fn linear(&self, name: &str, out: usize, inp: usize) -> Result<Linear> {
        Ok(Linear {
            weight: self.get(&format!("{name}.weight"), &[out, inp])?,
            bias: self.get(&format!("{name}.bias"), &[out])?,
        })
    }

    fn norm(&self, name: &str, n: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: self.get(&format!("{name}.weight"), &[n])?,
            bias: self.get(&format!("{name}.bias"), &[n])?,
            eps: eps as f32,
        })
    }
}

impl Encoder {
    /// Loads the weights of `path` for `config` onto `device`.
    pub(crate) fn load(path: &Path, config: &EncoderConfig, device: &Device) -> Result<Encoder> {
        let w = Weights::open(path, device)?;
        let h = config.hidden_size;
        let i = config.intermediate_size;
        let eps = config.layer_norm_eps;
        let word = w.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
        let position = w.get(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        let token_type = w.get(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
        )?;
        let token_type0 = token_type
            .get(0)
            .and_then(|t| t.contiguous())
            .map_err(compute_error)?;
        let embed_norm = w.norm("embeddings.LayerNorm", h, eps)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let q = w.linear(&format!("{p}.attention.self.query"), h, h)?;
            let k = w.linear(&format!("{p}.attention.self.key"), h, h)?;
            let v = w.linear(&format!("{p}.attention.self.value"), h, h)?;
            let qkv = Linear {
                weight: Tensor::cat(&[&q.weight, &k.weight, &v.weight], 0)
                    .map_err(compute_error)?,
                bias: Tensor::cat(&[&q.bias, &k.bias, &v.bias], 0).map_err(compute_error)?,
            };
            layers.push(Layer {
                qkv,
                attn_out: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
                ffn_in: w.linear(&format!("{p}.intermediate.dense"), i, h)?,
                ffn_out: w.linear(&format!("{p}.output.dense"), h, i)?,
                ffn_norm: w.norm(&format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        Ok(Encoder {
            config: config.clone(),
            device: device.clone(),
            word,
            position,
            token_type0,
            embed_norm,
            layers,
        })
    }

    /// The position ids of a sequence of `len` tokens.
    fn positions(&self, len: usize, out: &mut Vec<u32>) {
        match self.config.arch {
            Architecture::Bert => out.extend(0..len as u32),
            // RoBERTa: padding_idx + 1 + i for every non-padding token.
            Architecture::XlmRoberta => {
                let base = self.config.pad_token_id + 1;
                out.extend((0..len as u32).map(|i| base + i));
            }
        }
    }

    /// Runs the encoder over `seqs` (token ids of each sequence) and pools
    /// each into `out` (one row of `hidden` per sequence, in order).
    pub(crate) fn embed(
        &self,
        seqs: &[&[u32]],
        pooling: Pooling,
        normalize: bool,
        out: &mut [f32],
    ) -> Result<()> {
        let h = self.config.hidden_size;
        let mut ids = Vec::new();
        let mut pos = Vec::new();
        let mut segments = Vec::with_capacity(seqs.len());
        for s in seqs {
            segments.push(Segment {
                start: ids.len(),
                len: s.len(),
            });
            ids.extend_from_slice(s);
            self.positions(s.len(), &mut pos);
        }
        let tokens = ids.len();
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= self.config.vocab_size) {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("token id {bad} is outside the vocabulary of the model"),
            )
            .with_provider(NAME));
        }
        if let Some(&p) = pos
            .iter()
            .max()
            .filter(|&&p| p as usize >= self.config.max_position_embeddings)
        {
            return Err(Error::invalid_input(format!(
                "a sequence needs position {p}, beyond the model's {} positions",
                self.config.max_position_embeddings
            ))
            .with_provider(NAME));
        }
        let hidden = self.forward(&ids, &pos, &segments).map_err(compute_error)?;
        let hidden = hidden
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(compute_error)?;
        debug_assert_eq!(hidden.len(), tokens * h);
        for (seg, row) in segments.iter().zip(out.chunks_exact_mut(h)) {
            pool(
                &hidden[seg.start * h..(seg.start + seg.len) * h],
                h,
                pooling,
                row,
            );
            if normalize {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Ok(())
    }

    fn forward(
        &self,
        ids: &[u32],
        pos: &[u32],
        segments: &[Segment],
    ) -> candle_core::Result<Tensor> {
        let dev = &self.device;
        let ids = Tensor::new(ids, dev)?;
        let pos = Tensor::new(pos, dev)?;
        let x = self
            .word
            .embedding(&ids)?
            .add(&self.position.embedding(&pos)?)?
            .broadcast_add(&self.token_type0)?;
        let mut x = self.embed_norm.forward(&x)?;
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x)?;
            let ctx = self.attention(&qkv, segments)?;
            let a = layer.attn_out.forward(&ctx)?;
            x = layer.attn_norm.forward(&(a + &x)?)?;
            let f = match self.config.activation {
                // CPU: bias and GELU in one parallel pass (candle's are two
                // single-threaded passes with a libm-style erf).
                Activation::GeluErf if self.device.is_cpu() => {
                    let f = x.matmul(&layer.ffn_in.weight.t()?)?;
                    cpu_map2(&f, &layer.ffn_in.bias, kernels::bias_gelu_erf)?
                }
                Activation::GeluErf => layer.ffn_in.forward(&x)?.gelu_erf()?,
                Activation::GeluTanh => layer.ffn_in.forward(&x)?.gelu()?,
                Activation::Relu => layer.ffn_in.forward(&x)?.relu()?,
            };
            let f = layer.ffn_out.forward(&f)?;
            x = layer.ffn_norm.forward(&(f + &x)?)?;
        }
        Ok(x)
    }

    fn attention(&self, qkv: &Tensor, segments: &[Segment]) -> candle_core::Result<Tensor> {
        let h = self.config.hidden_size;
        let heads = self.config.num_attention_heads;
        let tokens = qkv.dim(0)?;
        if self.device.is_cpu() {
            let (storage, layout) = qkv.storage_and_layout();
            let out = match (&*storage, layout.contiguous_offsets()) {
                (candle_core::Storage::Cpu(cpu), Some((a, b))) => {
                    let s = cpu.as_slice::<f32>()?;
                    kernels::attention(&s[a..b], segments, h, heads)
                }
                _ => candle_core::bail!("qkv is not a contiguous CPU tensor"),
            };
            return Tensor::from_vec(out, (tokens, h), &self.device);
        }
        // Other devices: candle's ops, one segment at a time.
        let d = h / heads;
        let scale = 1.0 / (d as f64).sqrt();
        let mut parts = Vec::with_capacity(segments.len());
        for s in segments {
            let rows = qkv.narrow(0, s.start, s.len)?;
            let split = |i: usize| -> candle_core::Result<Tensor> {
                rows.narrow(1, i * h, h)?
                    .reshape((s.len, heads, d))?
                    .transpose(0, 1)?
                    .contiguous()
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let scores = (q.matmul(&k.t()?)? * scale)?;
            let p = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = p.matmul(&v)?.transpose(0, 1)?.reshape((s.len, h))?;
            parts.push(ctx);
        }
        Tensor::cat(&parts, 0)
    }
}

/// Applies `f` to the contiguous f32 data of two CPU tensors; the result
/// has `a`'s shape.
fn cpu_map2(
    a: &Tensor,
    b: &Tensor,
    f: impl FnOnce(&[f32], &[f32]) -> Vec<f32>,
) -> candle_core::Result<Tensor> {
    let (sa, la) = a.storage_and_layout();
    let (sb, lb) = b.storage_and_layout();
    let out = match (&*sa, &*sb, la.contiguous_offsets(), lb.contiguous_offsets()) {
        (
            candle_core::Storage::Cpu(ca),
            candle_core::Storage::Cpu(cb),
            Some((a0, a1)),
            Some((b0, b1)),
        ) => f(
            &ca.as_slice::<f32>()?[a0..a1],
            &cb.as_slice::<f32>()?[b0..b1],
        ),
        _ => candle_core::bail!("expected contiguous CPU tensors"),
    };
    Tensor::from_vec(out, a.shape(), a.device())
}

/// Pools the token rows `rows` (`len x h`) into `out`.
pub(crate) fn pool(rows: &[f32], h: usize, pooling: Pooling, out: &mut [f32]) {
    let n = rows.len() / h;
    out.iter_mut().for_each(|v| *v = 0.0);
    if n == 0 {
        return;
    }
    match pooling {
        Pooling::Cls => out.copy_from_slice(&rows[..h]),
        Pooling::Max => {
            out.copy_from_slice(&rows[..h]);
            for r in rows.chunks_exact(h).skip(1) {
                for (o, v) in out.iter_mut().zip(r) {
                    *o = o.max(*v);
                }
            }
        }
        Pooling::Mean | Pooling::MeanSqrtLen => {
            for r in rows.chunks_exact(h) {
                for (o, v) in out.iter_mut().zip(r) {
                    *o += v;
                }
            }
            let div = if pooling == Pooling::Mean {
                n as f32
            } else {
                (n as f32).sqrt()
            };
            out.iter_mut().for_each(|v| *v /= div);
        }
    }
}
