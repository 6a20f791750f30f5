//! Where a model lives: a directory given as `model_path`, or a model id
//! found in the standard Hugging Face cache, or downloaded into it (the
//! resolution is `embeddings-hub`'s; this is the local provider's layout).

use std::path::{Path, PathBuf};

use embeddings_core::Result;
use embeddings_hub::Layout;

use crate::NAME;

/// The files a sentence-transformers model directory is read from.
pub(crate) const LAYOUT: Layout = Layout {
    provider: NAME,
    kind: "a sentence-transformers model directory",
    required: &["config.json", "tokenizer.json", "model.safetensors"],
    optional: &[
        "modules.json",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
    ],
    setting: "[local] model_path (CLI: --model-path)",
};

/// The snapshot directory of `id` at `revision` in the cache `cache`
/// holding a sentence-transformers model (see [`Layout::cached_snapshot`]).
pub fn cached_snapshot(cache: &Path, id: &str, revision: &str) -> Option<PathBuf> {
    LAYOUT.cached_snapshot(cache, id, revision)
}

pub(crate) fn check_dir(dir: &Path) -> Result<PathBuf> {
    LAYOUT.check_dir(dir)
}

pub(crate) fn resolve_id(id: &str, revision: &str, cache: Option<PathBuf>) -> Result<PathBuf> {
    LAYOUT.resolve_id(id, revision, cache)
}
