//! Where a model lives: a directory given as `model_path`, or a model id
//! found in the standard Hugging Face cache, or downloaded into it.

use std::path::{Path, PathBuf};

use embeddings_core::{Error, ErrorKind, Result};

use crate::NAME;

/// The files a model directory is read from (the first three are required).
pub(crate) const REQUIRED_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];
/// Optional sentence-transformers files (pooling, normalisation, prompts).
pub(crate) const OPTIONAL_FILES: [&str; 4] = [
    "modules.json",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
];

/// The Hugging Face hub cache directory, as `huggingface_hub` resolves it:
/// `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
/// else `~/.cache/huggingface/hub`.
pub fn hf_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("HF_HUB_CACHE") {
        return Some(p);
    }
    if let Some(p) = var("HF_HOME") {
        return Some(p.join("hub"));
    }
    if let Some(p) = var("XDG_CACHE_HOME") {
        return Some(p.join("huggingface").join("hub"));
    }
    var("HOME").map(|h| h.join(".cache").join("huggingface").join("hub"))
}

/// True when `HF_HUB_OFFLINE` is set to a true value (`1`, `true`, `yes`, `on`).
pub fn hf_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// A model id is `org/name` (or a bare `name`), with no path separators
/// beyond the one slash and nothing that could escape the cache directory.
pub(crate) fn is_model_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    !id.is_empty()
        && parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && *p != "."
                && *p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

/// The snapshot directory of `id` at `revision` in the cache `cache`:
/// `models--org--name/snapshots/<commit>`, the commit read from
/// `refs/<revision>` when `revision` is a branch or tag, else `revision`
/// itself when it is a commit directory.
pub fn cached_snapshot(cache: &Path, id: &str, revision: &str) -> Option<PathBuf> {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let snapshots = repo.join("snapshots");
    let commit = std::fs::read_to_string(repo.join("refs").join(revision))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| is_model_id(s))
        .unwrap_or_else(|| revision.to_owned());
    if !is_model_id(&commit) || commit.contains('/') {
        return None;
    }
    let dir = snapshots.join(commit);
    has_required_files(&dir).then_some(dir)
}

pub(crate) fn has_required_files(dir: &Path) -> bool {
    REQUIRED_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Checks a model directory given by path; the error names what is missing.
pub(crate) fn check_dir(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::config(format!(
            "model_path {} is not a directory (expected a sentence-transformers model \
             directory with {})",
            dir.display(),
            REQUIRED_FILES.join(", ")
        ))
        .with_provider(NAME));
    }
    let missing: Vec<&str> = REQUIRED_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "model directory {} lacks {} (a sentence-transformers model needs {}; \
                 only safetensors weights are read, not pytorch_model.bin)",
                dir.display(),
                missing.join(", "),
                REQUIRED_FILES.join(", ")
            ),
        )
        .with_provider(NAME));
    }
    Ok(dir.to_path_buf())
}

/// Resolves `id` at `revision`: the cache first, then (online) a download
/// through `hf-hub` into the same cache. The error says where it looked
/// and how to get the model.
pub(crate) fn resolve_id(id: &str, revision: &str, cache: Option<PathBuf>) -> Result<PathBuf> {
    if !is_model_id(id) {
        return Err(Error::config(format!(
            "model {id:?} is neither a model id (org/name) nor set with model_path"
        ))
        .with_provider(NAME));
    }
    let cache = cache.or_else(hf_cache_dir);
    if let Some(dir) = cache
        .as_deref()
        .and_then(|c| cached_snapshot(c, id, revision))
    {
        return Ok(dir);
    }
    let looked = match &cache {
        Some(c) => format!(
            "{}",
            c.join(format!("models--{}", id.replace('/', "--")))
                .join("snapshots")
                .display()
        ),
        None => "no Hugging Face cache (HF_HUB_CACHE, HF_HOME and HOME are unset)".to_owned(),
    };
    let how = format!(
        "download it with `huggingface-cli download {id}` (or unset HF_HUB_OFFLINE and let the \
         provider fetch it), or point [local] model_path (CLI: --model-path) at a directory \
         holding {}",
        REQUIRED_FILES.join(", ")
    );
    if hf_offline() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("model {id} (revision {revision}) is not in {looked} and HF_HUB_OFFLINE is set; {how}"),
        )
        .with_provider(NAME));
    }
    download(id, revision, cache).map_err(|e| {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "model {id} (revision {revision}) is not in {looked} and downloading it \
                 failed ({e}); {how}"
            ),
        )
        .with_provider(NAME)
    })
}

/// Downloads the files of a model into the cache with hf-hub's blocking API.
fn download(
    id: &str,
    revision: &str,
    cache: Option<PathBuf>,
) -> std::result::Result<PathBuf, String> {
    use hf_hub::{Repo, RepoType, api::sync::ApiBuilder};
    let mut builder = ApiBuilder::from_env().with_progress(false);
    if let Some(c) = cache {
        builder = builder.with_cache_dir(c);
    }
    let api = builder.build().map_err(|e| e.to_string())?;
    let repo = api.repo(Repo::with_revision(
        id.to_owned(),
        RepoType::Model,
        revision.to_owned(),
    ));
    let mut dir = None;
    for f in REQUIRED_FILES {
        let p = repo.get(f).map_err(|e| format!("{f}: {e}"))?;
        dir = p.parent().map(Path::to_path_buf);
    }
    for f in OPTIONAL_FILES {
        // Optional: a model without them is plain mean pooling.
        let _ = repo.get(f);
    }
    dir.ok_or_else(|| "no snapshot directory".to_owned())
}
