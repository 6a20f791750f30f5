//! Static embedding models in-process, registered as `static`: each token
//! of the model's vocabulary has a vector, and a text's vector is the mean
//! of its tokens' vectors (normalised). Microseconds per text, no server,
//! no key.
//!
//! Models are in the [model2vec](https://github.com/MinishLab/model2vec)
//! format: `tokenizer.json`, `model.safetensors` (the token table
//! `embeddings`, `vocab × dim` in f32, f16 or int8; for int8 a `scales`
//! tensor of one f32 per row, the row's values being `int8 × scale`;
//! optional per-token `weights` and a `mappings` table from token id to
//! row) and `config.json` (`normalize`, `hidden_dim`). A model is a
//! directory (`model_path`), a model id in the Hugging Face cache
//! (`minishlab/potion-base-8M`; resolved as the `local` provider does, and
//! downloaded when online), or, with the crate feature `embedded-model`,
//! the model compiled into the binary: [`EMBEDDED_MODEL`], distilled by
//! this project from all-MiniLM-L6-v2 (256 dimensions, int8;
//! `cargo xtask distill` rebuilds it byte for byte). It is the default
//! model when the feature is on.
//!
//! ```toml
//! provider = "static"
//! model = "embedded"          # the compiled-in model (the default); or a model id
//! [static]
//! model_path = "/models/potion-base-8M"   # a model2vec directory instead
//! ```
//!
//! Static models have no query/document prompts and no context limit: an
//! input type changes nothing (`ProviderInfo::input_types` is empty, so a
//! configured `[prompts]` prefix would be pooled like any other words: do
//! not configure one), and a text of any length is pooled whole. Tokens the
//! vocabulary does not know (`[UNK]`) are left out of the mean, as
//! model2vec does; a text with no known token gets the zero vector.
//! Every output type is produced (int8/uint8/binary from the f32 rows as
//! `embeddings_core::quantize` defines them).
//!
//! Small calls are computed on the calling task; a call with more than
//! [`INLINE_BYTES`] bytes of text runs on tokio's blocking pool so the
//! async runtime is never held for long.

mod model;
mod wordpiece;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, Error, ErrorKind, OutputType, ProviderInfo, Result,
    Usage, async_trait,
};
use embeddings_hub::Layout;
use serde::Deserialize;

use crate::model::{Files, Model};

/// The registered name.
pub const NAME: &str = "static";
/// The name of the compiled-in model (`model = "embedded"` also selects it).
pub const EMBEDDED_MODEL: &str = "minilm-l6-v2-static-256";
/// Calls with more bytes of text than this run on the blocking pool.
pub const INLINE_BYTES: usize = 64 * 1024;

/// The files of a model2vec model directory.
const LAYOUT: Layout = Layout {
    provider: NAME,
    kind: "a model2vec model directory",
    required: &["config.json", "tokenizer.json", "model.safetensors"],
    optional: &[],
    setting: "[static] model_path (CLI: --model-path)",
};

#[cfg(feature = "embedded-model")]
mod embedded {
    pub(crate) const CONFIG: &[u8] = include_bytes!("../model/config.json");
    pub(crate) const TOKENIZER: &[u8] = include_bytes!("../model/tokenizer.json");
    pub(crate) const WEIGHTS: &[u8] = include_bytes!("../model/model.safetensors");
}

/// Whether this build has the compiled-in model (feature `embedded-model`).
pub const fn has_embedded_model() -> bool {
    cfg!(feature = "embedded-model")
}

/// The `[static]` configuration section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StaticSection {
    /// A model2vec model directory; without it, `model` is `embedded` (or
    /// unset) for the compiled-in model, or a model id in the Hugging Face
    /// cache.
    pub model_path: Option<PathBuf>,
    /// The revision (branch, tag or commit) of a model id. Default `main`.
    pub revision: Option<String>,
    /// The Hugging Face hub cache to use instead of `HF_HUB_CACHE`/`HF_HOME`.
    pub cache_dir: Option<PathBuf>,
    /// Calls with more inputs are split by the batch layer (default 4096).
    pub max_batch_size: Option<usize>,
    /// Override the model's `normalize` (unit-length vectors).
    pub normalize: Option<bool>,
}

/// A loaded static model. Clones share it.
#[derive(Clone)]
pub struct StaticEmbedder {
    info: ProviderInfo,
    model: Arc<Model>,
}

impl std::fmt::Debug for StaticEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticEmbedder")
            .field("model", &self.info.model)
            .field("dimension", &self.info.dimension)
            .finish_non_exhaustive()
    }
}

fn read(dir: &Path, file: &str) -> Result<Cow<'static, [u8]>> {
    let p = dir.join(file);
    std::fs::read(&p).map(Cow::Owned).map_err(|e| {
        Error::new(ErrorKind::NotFound, format!("{}: {e}", p.display())).with_provider(NAME)
    })
}

impl StaticEmbedder {
    /// Builds the provider from a configuration (`model`, `dimensions` and
    /// the `[static]` section).
    pub fn from_config(config: &Config) -> Result<Self> {
        let section: StaticSection = config.provider_section(NAME)?;
        let model = config.model.as_deref();
        let e = match (&section.model_path, model) {
            (Some(p), _) => {
                let dir = LAYOUT.check_dir(p)?;
                let name = model.map(str::to_owned).unwrap_or_else(|| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| p.display().to_string())
                });
                Self::open_dir(&dir, name, &section)?
            }
            (None, None) => Self::embedded_with(&section)?,
            (None, Some(m)) if m == "embedded" || m == EMBEDDED_MODEL => {
                Self::embedded_with(&section)?
            }
            (None, Some(id)) => {
                let revision = section.revision.as_deref().unwrap_or("main");
                let dir = LAYOUT.resolve_id(id, revision, section.cache_dir.clone())?;
                Self::open_dir(&dir, id.to_owned(), &section)?
            }
        };
        if let Some(d) = config.dimensions.filter(|&d| d != e.info.dimension) {
            return Err(Error::config(format!(
                "dimensions = {d}, but model {} produces {}-dimensional vectors",
                e.info.model, e.info.dimension
            ))
            .with_provider(NAME));
        }
        Ok(e)
    }

    /// Opens a model2vec model directory with default settings.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = LAYOUT.check_dir(dir.as_ref())?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Self::open_dir(&dir, name, &StaticSection::default())
    }

    /// The compiled-in model ([`EMBEDDED_MODEL`]); an `InvalidConfig` error
    /// naming the feature when this build does not have it.
    pub fn embedded() -> Result<Self> {
        Self::embedded_with(&StaticSection::default())
    }

    fn embedded_with(section: &StaticSection) -> Result<Self> {
        #[cfg(feature = "embedded-model")]
        {
            let files = Files {
                config: Cow::Borrowed(embedded::CONFIG),
                tokenizer: Cow::Borrowed(embedded::TOKENIZER),
                weights: Cow::Borrowed(embedded::WEIGHTS),
                lazy_tokenizer: true,
            };
            let mut info_extra = vec![("embedded", env!("CARGO_PKG_VERSION").to_owned())];
            info_extra.push(("weights_bytes", embedded::WEIGHTS.len().to_string()));
            Self::open(files, EMBEDDED_MODEL.to_owned(), section, info_extra)
        }
        #[cfg(not(feature = "embedded-model"))]
        {
            let _ = section;
            Err(Error::config(format!(
                "the embedded static model ({EMBEDDED_MODEL}) is not in this build: enable the \
                 `embedded-model` feature of embeddings-static (the facade's `static-embedded`), \
                 or set [static] model_path or a model id"
            ))
            .with_provider(NAME))
        }
    }

    fn open_dir(dir: &Path, name: String, section: &StaticSection) -> Result<Self> {
        let files = Files {
            config: read(dir, "config.json")?,
            tokenizer: read(dir, "tokenizer.json")?,
            weights: read(dir, "model.safetensors")?,
            lazy_tokenizer: false,
        };
        let extra = vec![
            ("path", dir.display().to_string()),
            ("weights_bytes", files.weights.len().to_string()),
        ];
        Self::open(files, name, section, extra)
    }

    fn open(
        files: Files,
        name: String,
        section: &StaticSection,
        fingerprint: Vec<(&str, String)>,
    ) -> Result<Self> {
        let t = std::time::Instant::now();
        let mut model = Model::load(files)?;
        if let Some(n) = section.normalize {
            model.normalize = n;
        }
        tracing::debug!(model = %name, elapsed = ?t.elapsed(), "static model loaded");
        let mut info = ProviderInfo::new(NAME, name, model.dim);
        info.max_batch_size = section.max_batch_size.unwrap_or(4096).max(1);
        info.max_input_tokens = usize::MAX / 4;
        info.max_batch_tokens = usize::MAX / 2;
        info.normalized = model.normalize;
        info.output_types = &OutputType::ALL;
        info.in_process = true;
        for (k, v) in fingerprint {
            info.add_fingerprint(k, v);
        }
        info.add_fingerprint("normalize", model.normalize);
        Ok(StaticEmbedder {
            info,
            model: Arc::new(model),
        })
    }

    /// Whether the ASCII fast path of the tokenizer is in use (BERT
    /// WordPiece tokenizers); other text and other tokenizers use the
    /// `tokenizers` crate.
    pub fn has_fast_tokenizer(&self) -> bool {
        self.model.has_fast_path()
    }

    /// The vocabulary size of the model's tokenizer.
    pub fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }

    /// Embeds `texts` synchronously on the calling thread (what
    /// [`Embedder::embed`] does for small calls); rows in input order.
    pub fn embed_sync<S: AsRef<str>>(&self, texts: &[S]) -> Result<Embeddings> {
        compute(&self.model, texts.iter().map(AsRef::as_ref), texts.len())
    }
}

fn compute<'a>(
    model: &Model,
    texts: impl Iterator<Item = &'a str>,
    n: usize,
) -> Result<Embeddings> {
    let dim = model.dim;
    let mut out = Embeddings::zeroed(n, dim);
    let mut ids = Vec::with_capacity(64);
    let mut word = Vec::with_capacity(32);
    let mut tokens = 0u64;
    for (i, t) in texts.enumerate() {
        ids.clear();
        model
            .token_ids(t, &mut ids, &mut word)
            .map_err(|e| e.with_inputs(i..i + 1))?;
        tokens += ids.len() as u64;
        model.pool(&ids, out.row_mut(i));
    }
    Ok(out.with_usage(Usage::tokens(tokens)))
}

#[async_trait]
impl Embedder for StaticEmbedder {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        let output = request.output_type;
        let inputs = request.inputs;
        let bytes: usize = inputs.iter().map(|t| t.len()).sum();
        let rows = if bytes <= INLINE_BYTES || tokio::runtime::Handle::try_current().is_err() {
            compute(&self.model, inputs.iter().copied(), inputs.len())?
        } else {
            let owned: Vec<String> = inputs.iter().map(|t| (*t).to_owned()).collect();
            let model = self.model.clone();
            tokio::task::spawn_blocking(move || {
                compute(&model, owned.iter().map(String::as_str), owned.len())
            })
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Internal, format!("static model task: {e}"))
                    .with_provider(NAME)
            })??
        };
        rows.quantized(output)
    }

    async fn health_check(&self) -> Result<()> {
        Ok(())
    }

    /// Tokens pooled for `text` (no special tokens, unknown tokens left out).
    fn count_tokens(&self, text: &str) -> usize {
        let mut ids = Vec::new();
        match self.model.token_ids(text, &mut ids, &mut Vec::new()) {
            Ok(()) => ids.len(),
            Err(_) => text.len(),
        }
    }
}

embeddings_core::register_provider! {
    name: NAME,
    description: "static (model2vec) models in-process; with embedded-model, a MiniLM distillation compiled in",
    build: |config| Ok(Arc::new(StaticEmbedder::from_config(config)?)),
}

#[cfg(test)]
mod tests;
