//! Where an in-process model lives, for the providers that run one
//! (`local`, `static`): a directory given by path, or a model id found in
//! the standard Hugging Face cache, or downloaded into it through `hf-hub`
//! when it is not there and `HF_HUB_OFFLINE` is not set.
//!
//! Each provider describes its files with a [`Layout`]; the resolution and
//! the error messages (what is missing, where it looked, how to get the
//! model) are written once here.
//!
//! ```
//! use embeddings_hub::Layout;
//!
//! const LAYOUT: Layout = Layout {
//!     provider: "static",
//!     kind: "a model2vec model directory",
//!     required: &["config.json", "tokenizer.json", "model.safetensors"],
//!     optional: &[],
//!     setting: "[static] model_path",
//! };
//! let dir = tempfile::tempdir().unwrap();
//! let err = LAYOUT.check_dir(dir.path()).unwrap_err();
//! assert!(err.to_string().contains("lacks config.json, tokenizer.json, model.safetensors"));
//! ```

use std::path::{Path, PathBuf};

use embeddings_core::{Error, ErrorKind, Result};

/// The files a provider reads from a model directory and how it names them
/// in its messages.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// The provider the errors are attributed to.
    pub provider: &'static str,
    /// What a model directory is, for messages ("a sentence-transformers
    /// model directory").
    pub kind: &'static str,
    /// Files that must be present (relative paths).
    pub required: &'static [&'static str],
    /// Files fetched when present (a download tries each).
    pub optional: &'static [&'static str],
    /// The setting that points at a directory, for messages
    /// (`"[local] model_path (CLI: --model-path)"`).
    pub setting: &'static str,
}

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
pub fn is_model_id(id: &str) -> bool {
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

impl Layout {
    /// Whether `dir` holds every required file.
    pub fn has_required_files(&self, dir: &Path) -> bool {
        self.required.iter().all(|f| dir.join(f).is_file())
    }

    /// The snapshot directory of `id` at `revision` in the cache `cache`:
    /// `models--org--name/snapshots/<commit>`, the commit read from
    /// `refs/<revision>` when `revision` is a branch or tag, else `revision`
    /// itself when it is a commit directory. `None` unless it holds the
    /// required files.
    pub fn cached_snapshot(&self, cache: &Path, id: &str, revision: &str) -> Option<PathBuf> {
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
        self.has_required_files(&dir).then_some(dir)
    }

    /// Checks a model directory given by path; the error names what is
    /// missing.
    pub fn check_dir(&self, dir: &Path) -> Result<PathBuf> {
        if !dir.is_dir() {
            return Err(Error::config(format!(
                "model_path {} is not a directory (expected {} with {})",
                dir.display(),
                self.kind,
                self.required.join(", ")
            ))
            .with_provider(self.provider));
        }
        let missing: Vec<&str> = self
            .required
            .iter()
            .copied()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "model directory {} lacks {} ({} needs {}; only safetensors weights are \
                     read, not pytorch_model.bin)",
                    dir.display(),
                    missing.join(", "),
                    self.kind,
                    self.required.join(", ")
                ),
            )
            .with_provider(self.provider));
        }
        Ok(dir.to_path_buf())
    }

    /// Resolves `id` at `revision`: the cache (`cache`, else
    /// [`hf_cache_dir`]) first, then (unless [`hf_offline`]) a download
    /// through `hf-hub` into the same cache. The error says where it looked
    /// and how to get the model.
    pub fn resolve_id(&self, id: &str, revision: &str, cache: Option<PathBuf>) -> Result<PathBuf> {
        if !is_model_id(id) {
            return Err(Error::config(format!(
                "model {id:?} is neither a model id (org/name) nor set with model_path"
            ))
            .with_provider(self.provider));
        }
        let cache = cache.or_else(hf_cache_dir);
        if let Some(dir) = cache
            .as_deref()
            .and_then(|c| self.cached_snapshot(c, id, revision))
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
            "download it with `huggingface-cli download {id}` (or unset HF_HUB_OFFLINE and let \
             the provider fetch it), or point {} at a directory holding {}",
            self.setting,
            self.required.join(", ")
        );
        if hf_offline() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "model {id} (revision {revision}) is not in {looked} and HF_HUB_OFFLINE is \
                     set; {how}"
                ),
            )
            .with_provider(self.provider));
        }
        self.download(id, revision, cache).map_err(|e| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "model {id} (revision {revision}) is not in {looked} and downloading it \
                     failed ({e}); {how}"
                ),
            )
            .with_provider(self.provider)
        })
    }

    /// Downloads the files of a model into the cache with hf-hub's blocking API.
    fn download(
        &self,
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
        for f in self.required {
            let p = repo.get(f).map_err(|e| format!("{f}: {e}"))?;
            dir = p.parent().map(Path::to_path_buf);
        }
        for f in self.optional {
            // Optional files: a model without them uses the defaults.
            let _ = repo.get(f);
        }
        dir.ok_or_else(|| "no snapshot directory".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: Layout = Layout {
        provider: "test",
        kind: "a test model directory",
        required: &["a.json", "b.bin"],
        optional: &["c.json"],
        setting: "[test] model_path",
    };

    #[test]
    fn model_ids_cannot_escape_the_cache() {
        for ok in ["org/name", "name", "BAAI/bge-small-en-v1.5", "a_b/c-d.e"] {
            assert!(is_model_id(ok), "{ok}");
        }
        for bad in [
            "", "/abs", "a/b/c", "../x", "a/..", "a//b", "a b/c", "a/b\\c",
        ] {
            assert!(!is_model_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_snapshot_is_found_through_its_ref_and_needs_every_required_file() {
        let cache = tempfile::tempdir().unwrap();
        let snap = cache.path().join("models--org--m/snapshots/abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(cache.path().join("models--org--m/refs")).unwrap();
        std::fs::write(cache.path().join("models--org--m/refs/main"), "abc123\n").unwrap();
        std::fs::write(snap.join("a.json"), "{}").unwrap();
        assert_eq!(LAYOUT.cached_snapshot(cache.path(), "org/m", "main"), None);
        std::fs::write(snap.join("b.bin"), "x").unwrap();
        assert_eq!(
            LAYOUT.cached_snapshot(cache.path(), "org/m", "main"),
            Some(snap.clone())
        );
        // A commit given directly.
        assert_eq!(
            LAYOUT.cached_snapshot(cache.path(), "org/m", "abc123"),
            Some(snap)
        );
        assert_eq!(LAYOUT.cached_snapshot(cache.path(), "org/m", "other"), None);
    }

    #[test]
    fn check_dir_names_the_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), "{}").unwrap();
        let e = LAYOUT.check_dir(dir.path()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("lacks b.bin"), "{e}");
        let e = LAYOUT.check_dir(&dir.path().join("nope")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("is not a directory"), "{e}");
    }
}
