//! Sentence-transformers models run in-process with candle, registered as
//! `local`: real semantic vectors with no server and no key.
//!
//! A model is a directory in the Hugging Face layout (`config.json`,
//! `tokenizer.json`, `model.safetensors`, and the sentence-transformers
//! files `modules.json`, `1_Pooling/config.json`,
//! `sentence_bert_config.json`, `config_sentence_transformers.json`),
//! given as `model_path`, or a model id (`sentence-transformers/all-MiniLM-L6-v2`,
//! `BAAI/bge-small-en-v1.5`, `intfloat/e5-small-v2`, ...) looked up in the
//! standard Hugging Face cache (`HF_HUB_CACHE`, `HF_HOME`,
//! `~/.cache/huggingface/hub`) and downloaded into it through `hf-hub`
//! when it is not there and `HF_HUB_OFFLINE` is not set.
//!
//! ```toml
//! provider = "local"
//! model = "sentence-transformers/all-MiniLM-L6-v2"   # a model id, or a name with model_path
//! [local]
//! model_path = "/models/all-MiniLM-L6-v2"  # a model directory instead of the hub cache
//! revision = "main"                        # branch, tag or commit in the cache
//! threads = 4                              # compute threads (default: the machine's cores)
//! device = "cpu"                           # "cuda", "cuda:1", "metal" with those features
//! chunk_tokens = 2048                      # tokens per forward pass (bounds memory)
//! ```
//!
//! Architectures: BERT (MiniLM, BGE, E5, GTE) and XLM-RoBERTa; others are
//! refused by name. Pooling (mean, CLS, max, mean/sqrt(len)) comes from
//! `1_Pooling/config.json`, normalisation from the `Normalize` module in
//! `modules.json`, the maximum sequence length from
//! `sentence_bert_config.json` (`ProviderInfo::max_input_tokens`, less the
//! longest prompt), and prompts per [`InputType`] from the `prompts` of
//! `config_sentence_transformers.json` (`query`, `document` or `passage`,
//! `classification`, `clustering`, `similarity`; the `default_prompt_name`
//! for the others). An input longer than the model's maximum is truncated
//! by the model's tokenizer, as sentence-transformers does; through the
//! facade the batch layer applies `batch.over_length` first with this
//! provider's [`count_tokens`](Embedder::count_tokens) and
//! [`split_tokens`](Embedder::split_tokens).
//!
//! Execution: tokenizing and the forward pass run on the provider's own
//! compute pool (`threads` rayon threads shared by every clone), never on
//! the async runtime's threads. Within a call inputs are sorted by length
//! and packed end to end in passes of at most `chunk_tokens` tokens (no
//! padding is computed); rows come back in input order. The weights are
//! read from the memory-mapped safetensors file once, on
//! [`prepare`](Embedder::prepare) or the first call, and shared by clones.
//! Dropping a call's future stops it at the next pass boundary.

mod files;
mod kernels;
mod model;
mod resolve;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::Device;
use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, Error, ErrorKind, InputType, ProviderInfo, Result,
    Usage, async_trait,
};
use serde::Deserialize;
use tokenizers::{PostProcessor, Tokenizer};

pub use crate::files::{Architecture, Pooling};
pub use crate::resolve::cached_snapshot;
pub use embeddings_hub::{hf_cache_dir, hf_offline};

use crate::files::ModelFiles;
use crate::model::Encoder;

/// The registered name.
pub const NAME: &str = "local";
/// The model used when the configuration names none.
pub const DEFAULT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// Tokens per forward pass unless `chunk_tokens` says otherwise.
pub const DEFAULT_CHUNK_TOKENS: usize = 2048;

/// The `[local]` configuration section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalSection {
    /// A model directory; without it, the `model` id is looked up in the
    /// Hugging Face cache.
    pub model_path: Option<PathBuf>,
    /// The revision (branch, tag or commit) of a model id. Default `main`.
    pub revision: Option<String>,
    /// The Hugging Face hub cache to use instead of `HF_HUB_CACHE`/`HF_HOME`.
    pub cache_dir: Option<PathBuf>,
    /// Compute threads (default: the machine's available parallelism).
    pub threads: Option<usize>,
    /// `cpu` (default), `cuda`, `cuda:N` or `metal` (the latter two need
    /// the crate features of the same name).
    pub device: Option<String>,
    /// At most this many tokens per forward pass (default 2048): bounds
    /// the activations' memory and is the point where a dropped call stops.
    pub chunk_tokens: Option<usize>,
    /// Calls with more inputs are split by the batch layer (default 1024).
    pub max_batch_size: Option<usize>,
}

/// A loaded (or loadable) local model. Clones share the tokenizer, the
/// weights and the compute pool.
#[derive(Clone)]
pub struct LocalEmbedder {
    shared: Arc<Shared>,
}

struct Shared {
    info: ProviderInfo,
    files: ModelFiles,
    weights: PathBuf,
    /// Truncates to the model's maximum sequence length; no padding.
    tokenizer: Tokenizer,
    /// The same, without truncation: token counts and splits.
    counter: Tokenizer,
    /// Special tokens added to one sequence (`[CLS]`/`[SEP]`, `<s>`/`</s>`).
    specials: usize,
    prompts: Prompts,
    device: Device,
    threads: usize,
    chunk_tokens: usize,
    pool: rayon::ThreadPool,
    encoder: tokio::sync::OnceCell<Arc<Encoder>>,
}

#[derive(Debug, Clone, Default)]
struct Prompts {
    by_type: Vec<(InputType, String)>,
    default: Option<String>,
}

impl Prompts {
    fn get(&self, t: InputType) -> Option<&str> {
        self.by_type
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, p)| p.as_str())
            .or(self.default.as_deref())
    }
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.shared;
        f.debug_struct("LocalEmbedder")
            .field("model", &s.info.model)
            .field("dir", &s.files.dir)
            .field("architecture", &s.files.encoder.arch)
            .field("dimension", &s.info.dimension)
            .field("pooling", &s.files.pooling)
            .field("normalize", &s.files.normalize)
            .field("max_seq_length", &s.files.max_seq_length)
            .field("threads", &s.threads)
            .field("device", &s.device)
            .field("loaded", &s.encoder.initialized())
            .finish()
    }
}

fn prompt_type(name: &str) -> Option<InputType> {
    Some(match name.to_ascii_lowercase().as_str() {
        "query" | "search_query" => InputType::Query,
        "document" | "passage" | "corpus" | "search_document" => InputType::Document,
        "classification" => InputType::Classification,
        "clustering" => InputType::Clustering,
        "similarity" | "sts" => InputType::Similarity,
        _ => return None,
    })
}

/// `ProviderInfo::input_types` is a `&'static` slice: each distinct set of
/// prompted types is leaked once (at most 2^5 of them), not once per build.
fn static_types(types: Vec<InputType>) -> &'static [InputType] {
    static SETS: OnceLock<Mutex<Vec<&'static [InputType]>>> = OnceLock::new();
    let mut sets = SETS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(s) = sets.iter().find(|s| ***s == types[..]) {
        return s;
    }
    let s: &'static [InputType] = Box::leak(types.into_boxed_slice());
    sets.push(s);
    s
}

fn parse_device(name: Option<&str>) -> Result<Device> {
    let name = name.unwrap_or("cpu").trim().to_ascii_lowercase();
    let bad = |e: String| Error::config(format!("device {name:?}: {e}")).with_provider(NAME);
    match name.as_str() {
        "cpu" => Ok(Device::Cpu),
        "metal" => Device::new_metal(0).map_err(|e| bad(e.to_string())),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let n = match s.strip_prefix("cuda:") {
                Some(n) => n
                    .parse::<usize>()
                    .map_err(|_| bad("expected cuda:N".into()))?,
                None => 0,
            };
            Device::new_cuda(n).map_err(|e| bad(e.to_string()))
        }
        _ => Err(bad("expected cpu, cuda, cuda:N or metal".into())),
    }
}

fn tokenizer_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidInput, format!("{}: {e}", path.display())).with_provider(NAME)
}

impl LocalEmbedder {
    /// Builds the provider from a configuration (`model`, `dimensions` and
    /// the `[local]` section). Resolves the model directory (downloading a
    /// model id that is not cached, unless offline), reads its configuration
    /// and tokenizer; the weights are loaded by [`Embedder::prepare`] or the
    /// first call.
    pub fn from_config(config: &Config) -> Result<Self> {
        let section: LocalSection = config.provider_section(NAME)?;
        let revision = section.revision.clone().unwrap_or_else(|| "main".into());
        let (dir, model) = match &section.model_path {
            Some(p) => {
                let dir = resolve::check_dir(p)?;
                let name = config.model.clone().unwrap_or_else(|| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| p.display().to_string())
                });
                (dir, name)
            }
            None => {
                let id = config.model.clone().unwrap_or_else(|| DEFAULT_MODEL.into());
                (
                    resolve::resolve_id(&id, &revision, section.cache_dir.clone())?,
                    id,
                )
            }
        };
        Self::open(&dir, model, &section, config.dimensions)
    }

    /// Opens the model directory `dir` (see the crate documentation for its
    /// layout) with the settings of `section`.
    pub fn from_dir(dir: impl AsRef<Path>, section: &LocalSection) -> Result<Self> {
        let dir = resolve::check_dir(dir.as_ref())?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Self::open(&dir, name, section, None)
    }

    fn open(
        dir: &Path,
        model: String,
        section: &LocalSection,
        dimensions: Option<usize>,
    ) -> Result<Self> {
        let files = ModelFiles::read(dir)?;
        let dim = files.encoder.hidden_size;
        if let Some(d) = dimensions.filter(|&d| d != dim) {
            return Err(Error::config(format!(
                "dimensions = {d}, but model {model} produces {dim}-dimensional vectors"
            ))
            .with_provider(NAME));
        }
        let device = parse_device(section.device.as_deref())?;
        let threads = match section.threads {
            Some(0) => {
                return Err(Error::config("threads must be at least 1").with_provider(NAME));
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let chunk_tokens = section.chunk_tokens.unwrap_or(DEFAULT_CHUNK_TOKENS);
        if chunk_tokens < files.max_seq_length {
            return Err(Error::config(format!(
                "chunk_tokens = {chunk_tokens} is below the model's max_seq_length {}",
                files.max_seq_length
            ))
            .with_provider(NAME));
        }

        let tok_path = dir.join("tokenizer.json");
        let mut counter =
            Tokenizer::from_file(&tok_path).map_err(|e| tokenizer_error(&tok_path, e))?;
        counter.with_padding(None);
        counter
            .with_truncation(None)
            .map_err(|e| tokenizer_error(&tok_path, e))?;
        let specials = counter
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        let mut tokenizer = counter.clone();
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: files.max_seq_length,
                ..Default::default()
            }))
            .map_err(|e| tokenizer_error(&tok_path, e))?;

        // Prompts per input type; the longest is left out of max_input_tokens.
        let mut prompts = Prompts {
            default: files.default_prompt.clone(),
            ..Default::default()
        };
        for (name, text) in &files.prompts {
            if let Some(t) =
                prompt_type(name).filter(|t| !prompts.by_type.iter().any(|(k, _)| k == t))
            {
                prompts.by_type.push((t, text.clone()));
            }
        }
        let count = |t: &str| -> Result<usize> {
            Ok(counter
                .encode(t, false)
                .map_err(|e| tokenizer_error(&tok_path, e))?
                .len())
        };
        let mut longest_prompt = 0;
        for p in prompts
            .by_type
            .iter()
            .map(|(_, p)| p)
            .chain(&prompts.default)
        {
            longest_prompt = longest_prompt.max(count(p)?);
        }
        let mut types: Vec<InputType> = if prompts.default.is_some() {
            vec![
                InputType::Document,
                InputType::Query,
                InputType::Classification,
                InputType::Clustering,
                InputType::Similarity,
            ]
        } else {
            prompts.by_type.iter().map(|(t, _)| *t).collect()
        };
        types.sort_by_key(|t| t.as_str());

        let max_input = files
            .max_seq_length
            .saturating_sub(longest_prompt)
            .max(specials + 1);
        let weights = dir.join("model.safetensors");
        let weights_len = std::fs::metadata(&weights).map(|m| m.len()).unwrap_or(0);
        let mut info = ProviderInfo::new(NAME, model, dim);
        info.max_batch_size = section.max_batch_size.unwrap_or(1024).max(1);
        info.max_input_tokens = max_input;
        info.max_batch_tokens = usize::MAX / 2;
        info.normalized = files.normalize;
        info.input_types = static_types(types);
        info.in_process = true;
        info.add_fingerprint("path", dir.display());
        info.add_fingerprint("weights_bytes", weights_len);
        info.add_fingerprint("pooling", files.pooling.as_str());
        info.add_fingerprint("normalize", files.normalize);
        info.add_fingerprint("max_seq_length", files.max_seq_length);
        let prompt_list: BTreeMap<&str, &str> = prompts
            .by_type
            .iter()
            .map(|(t, p)| (t.as_str(), p.as_str()))
            .collect();
        info.add_fingerprint("prompts", format!("{prompt_list:?}/{:?}", prompts.default));

        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("embeddings-local-{i}"))
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Internal, format!("compute pool: {e}")).with_provider(NAME)
            })?;
        Ok(LocalEmbedder {
            shared: Arc::new(Shared {
                info,
                files,
                weights,
                tokenizer,
                counter,
                specials,
                prompts,
                device,
                threads,
                chunk_tokens,
                pool,
                encoder: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The model directory in use.
    pub fn model_dir(&self) -> &Path {
        &self.shared.files.dir
    }

    /// The pooling the model's configuration asks for.
    pub fn pooling(&self) -> Pooling {
        self.shared.files.pooling
    }

    /// The model's maximum sequence length in tokens (with special tokens).
    pub fn max_seq_length(&self) -> usize {
        self.shared.files.max_seq_length
    }

    /// The number of compute threads.
    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Whether the weights are loaded.
    pub fn is_loaded(&self) -> bool {
        self.shared.encoder.initialized()
    }

    /// Embeds sequences that are already token ids (special tokens
    /// included, as the model expects them), with the model's pooling and
    /// normalisation; row `i` belongs to `sequences[i]`. For tools that
    /// work below the text level (the static-model distillation feeds every
    /// vocabulary token this way). An id outside the vocabulary or a
    /// sequence longer than the model's position table is `InvalidInput`.
    pub async fn embed_token_ids(&self, sequences: Vec<Vec<u32>>) -> Result<Embeddings> {
        let dim = self.shared.info.dimension;
        if sequences.is_empty() {
            return Ok(Embeddings::empty(dim));
        }
        let vocab = self.shared.files.encoder.vocab_size as u32;
        let max = self.max_seq_length();
        for (i, s) in sequences.iter().enumerate() {
            if s.is_empty() || s.len() > max || s.iter().any(|&t| t >= vocab) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "token sequence {i}: empty, longer than the maximum sequence length {max} or an id outside the vocabulary of {vocab}"
                    ),
                )
                .with_provider(NAME));
            }
        }
        let encoder = self.encoder().await?;
        self.on_pool(move |s, cancelled| {
            let ids: Vec<&[u32]> = sequences.iter().map(|v| v.as_slice()).collect();
            s.compute_ids(&encoder, &ids, cancelled)
        })
        .await
    }

    /// Runs `f` on the compute pool and awaits its result; `cancelled` is
    /// set when the awaiting future is dropped.
    async fn on_pool<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared, &AtomicBool) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        struct Cancel(Arc<AtomicBool>);
        impl Drop for Cancel {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let flag = Arc::new(AtomicBool::new(false));
        let guard = Cancel(flag.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared = self.shared.clone();
        self.shared.pool.spawn(move || {
            let r = if flag.load(Ordering::Relaxed) {
                Err(Error::new(ErrorKind::Internal, "call dropped").with_provider(NAME))
            } else {
                f(&shared, &flag)
            };
            let _ = tx.send(r);
        });
        let r = rx.await.map_err(|_| {
            Error::new(
                ErrorKind::Internal,
                "the compute task ended without an answer",
            )
            .with_provider(NAME)
        })?;
        drop(guard);
        r
    }

    async fn encoder(&self) -> Result<Arc<Encoder>> {
        self.shared
            .encoder
            .get_or_try_init(|| async {
                self.on_pool(|s, _| {
                    let t = std::time::Instant::now();
                    let e = Encoder::load(&s.weights, &s.files.encoder, &s.device)?;
                    tracing::debug!(model = %s.info.model, elapsed = ?t.elapsed(), "local model loaded");
                    Ok(Arc::new(e))
                })
                .await
            })
            .await
            .cloned()
    }
}

impl Shared {
    /// Tokenizes, packs by length and runs the encoder; rows in input order.
    fn compute(
        &self,
        encoder: &Encoder,
        texts: Vec<String>,
        cancelled: &AtomicBool,
    ) -> Result<Embeddings> {
        let encodings = self.tokenizer.encode_batch(texts, true).map_err(|e| {
            Error::new(ErrorKind::Internal, format!("tokenizer: {e}")).with_provider(NAME)
        })?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        self.compute_ids(encoder, &ids, cancelled)
    }

    /// Runs the encoder on token-id sequences, packed by length; rows in
    /// input order.
    fn compute_ids(
        &self,
        encoder: &Encoder,
        ids: &[&[u32]],
        cancelled: &AtomicBool,
    ) -> Result<Embeddings> {
        let dim = self.info.dimension;
        let total: usize = ids.iter().map(|s| s.len()).sum();
        // Longest first: each pass packs sequences of similar length.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut out = Embeddings::zeroed(ids.len(), dim);
        let mut rows = vec![0f32; 0];
        let mut start = 0;
        while start < order.len() {
            if cancelled.load(Ordering::Relaxed) {
                return Err(Error::new(ErrorKind::Internal, "call dropped").with_provider(NAME));
            }
            let mut end = start;
            let mut tokens = 0;
            while end < order.len()
                && (end == start || tokens + ids[order[end]].len() <= self.chunk_tokens)
            {
                tokens += ids[order[end]].len();
                end += 1;
            }
            let chunk: Vec<&[u32]> = order[start..end].iter().map(|&i| ids[i]).collect();
            rows.resize(chunk.len() * dim, 0.0);
            encoder.embed(&chunk, self.files.pooling, self.files.normalize, &mut rows)?;
            for (k, &i) in order[start..end].iter().enumerate() {
                out.row_mut(i)
                    .copy_from_slice(&rows[k * dim..(k + 1) * dim]);
            }
            start = end;
        }
        Ok(out.with_usage(Usage::tokens(total as u64)))
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn info(&self) -> &ProviderInfo {
        &self.shared.info
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.shared.info.check_output_type(&request)?;
        let dim = self.shared.info.dimension;
        if request.inputs.is_empty() {
            return Ok(Embeddings::empty(dim));
        }
        let encoder = self.encoder().await?;
        let prompt = self.shared.prompts.get(request.input_type);
        let lower = self.shared.files.lower_case;
        let texts: Vec<String> = request
            .inputs
            .iter()
            .map(|t| {
                let t = match prompt {
                    Some(p) => format!("{p}{t}"),
                    None => (*t).to_owned(),
                };
                if lower { t.to_lowercase() } else { t }
            })
            .collect();
        self.on_pool(move |s, cancelled| s.compute(&encoder, texts, cancelled))
            .await
    }

    async fn health_check(&self) -> Result<()> {
        let e = self.embed(EmbedRequest::new(&["health check"])).await?;
        if e.len() == 1 && e.row(0).iter().all(|v| v.is_finite()) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Internal,
                "the model produced a non-finite vector",
            )
            .with_provider(NAME))
        }
    }

    /// Loads the weights (once; clones share them).
    async fn prepare(&self) -> Result<()> {
        self.encoder().await.map(|_| ())
    }

    /// Tokens of `text` with the model's tokenizer, special tokens
    /// included, prompt not included, before truncation.
    fn count_tokens(&self, text: &str) -> usize {
        match self.shared.counter.encode(text, true) {
            Ok(e) => e.len(),
            Err(_) => self.token_bound(text.len()),
        }
    }

    /// Every token covers at least one byte of the text (a leading
    /// SentencePiece `▁` aside), plus the special tokens.
    fn token_bound(&self, bytes: usize) -> usize {
        bytes.saturating_add(self.shared.specials + 1)
    }

    /// Cuts `text` at token boundaries into pieces of at most `max_tokens`
    /// tokens each (special tokens included), covering the whole text.
    fn split_tokens<'a>(&self, text: &'a str, max_tokens: usize) -> Vec<&'a str> {
        let per = max_tokens.saturating_sub(self.shared.specials).max(1);
        let enc = match self.shared.counter.encode(text, false) {
            Ok(e) => e,
            Err(_) => return embeddings_core::split_by_bytes(text, per * 4),
        };
        let offsets = enc.get_offsets();
        if offsets.len() <= per {
            return vec![text];
        }
        let mut cuts = vec![0usize];
        let mut k = per;
        while k < offsets.len() {
            let at = offsets[k].0.min(text.len());
            if at > *cuts.last().unwrap_or(&0) && text.is_char_boundary(at) {
                cuts.push(at);
            }
            k += per;
        }
        cuts.push(text.len());
        cuts.windows(2)
            .map(|w| &text[w[0]..w[1]])
            .filter(|s| !s.is_empty())
            .collect()
    }
}

embeddings_core::register_provider! {
    name: NAME,
    description: "sentence-transformers models (BERT, XLM-RoBERTa) in-process with candle",
    build: |config| Ok(Arc::new(LocalEmbedder::from_config(config)?)),
}
