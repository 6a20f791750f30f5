//! What `--resume` checks before it continues a job: that the checkpoint
//! belongs to this exact job (everything that decides the rows), that the
//! inputs it consumed are unchanged, and that it agrees with itself.
//!
//! A job is identified by its provider (name, model, dimension, and the
//! provider's fingerprint when it gives one), the output format, every input
//! (path and format), the JSONL/CSV field names and the TEXT arguments. The
//! inputs are checked by content: the checkpoint records, for every input
//! file, its size, modification time and a BLAKE3 hash of the bytes the saved
//! rows were made from (the consumed prefix). A resumed job goes on only when
//! each consumed prefix is byte for byte the same; what follows it may have
//! changed (a bad line fixed after the job stopped on it is the point of
//! `--resume`). The partial output is checked by the output module against
//! its own XXH3-128 digest in the checkpoint.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use embeddings::{Config, Error, ErrorKind, ProviderInfo, Result};
use serde::{Deserialize, Serialize};

use crate::args::EmbedArgs;
use crate::input::{Source, SourcePos};
use crate::output::{Position, with_suffix};

/// The checkpoint format this build writes and reads.
const VERSION: u32 = 3;

/// Everything that decides the rows of a job, but the input bytes themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobIdentity {
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) dimensions: usize,
    /// The provider's own fingerprint of the settings that change vectors,
    /// when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) provider_fingerprint: Option<String>,
    pub(crate) output_format: String,
    pub(crate) input_type: String,
    pub(crate) output_type: String,
    pub(crate) inputs: Vec<InputIdentity>,
    pub(crate) text_field: String,
    pub(crate) id_field: String,
    /// BLAKE3 of the TEXT arguments, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) texts_blake3: Option<String>,
}

/// One input: where and how it is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InputIdentity {
    /// The canonical path when it can be had (the same file given by
    /// another relative path is the same input), else as given.
    pub(crate) path: String,
    pub(crate) format: String,
}

impl JobIdentity {
    pub(crate) fn new(
        info: &ProviderInfo,
        config: &Config,
        args: &EmbedArgs,
        sources: &[Source],
    ) -> Self {
        let inputs = sources
            .iter()
            .map(|s| match s {
                Source::Args(_) => InputIdentity {
                    path: "(TEXT arguments)".to_owned(),
                    format: "arguments".to_owned(),
                },
                Source::Stdin { format } => InputIdentity {
                    path: "(stdin)".to_owned(),
                    format: format!("{format:?}").to_ascii_lowercase(),
                },
                Source::File { path, format } => InputIdentity {
                    path: std::fs::canonicalize(path)
                        .unwrap_or_else(|_| path.clone())
                        .display()
                        .to_string(),
                    format: format!("{format:?}").to_ascii_lowercase(),
                },
            })
            .collect();
        let texts_blake3 = (!args.texts.is_empty()).then(|| {
            let mut h = blake3::Hasher::new();
            for t in &args.texts {
                h.update(&(t.len() as u64).to_le_bytes());
                h.update(t.as_bytes());
            }
            h.finalize().to_hex().to_string()
        });
        JobIdentity {
            provider: info.provider.to_string(),
            model: info.model.clone(),
            dimensions: config.dimensions.unwrap_or(info.dimension),
            provider_fingerprint: Some(info.fingerprint()),
            output_format: format!("{:?}", args.output_format()).to_ascii_lowercase(),
            input_type: args.request_types(config).0.to_string(),
            output_type: args.request_types(config).1.to_string(),
            inputs,
            text_field: args.text_field.clone(),
            id_field: args.id_field.clone(),
            texts_blake3,
        }
    }

    /// What differs from `now`, one phrase each ("model: \"a\" then, \"b\" now").
    pub(crate) fn differences(&self, now: &JobIdentity) -> Vec<String> {
        let mut d = Vec::new();
        let mut cmp = |what: &str, then: String, now: String| {
            if then != now {
                d.push(format!("{what}: {then} then, {now} now"));
            }
        };
        cmp(
            "provider",
            format!("{:?}", self.provider),
            format!("{:?}", now.provider),
        );
        cmp(
            "model",
            format!("{:?}", self.model),
            format!("{:?}", now.model),
        );
        cmp(
            "dimensions",
            self.dimensions.to_string(),
            now.dimensions.to_string(),
        );
        cmp(
            "provider settings (fingerprint)",
            format!("{:?}", self.provider_fingerprint),
            format!("{:?}", now.provider_fingerprint),
        );
        cmp(
            "output format",
            self.output_format.clone(),
            now.output_format.clone(),
        );
        cmp(
            "input type",
            self.input_type.clone(),
            now.input_type.clone(),
        );
        cmp(
            "output type",
            self.output_type.clone(),
            now.output_type.clone(),
        );
        let list = |v: &[InputIdentity]| {
            v.iter()
                .map(|i| format!("{} ({})", i.path, i.format))
                .collect::<Vec<_>>()
                .join(", ")
        };
        cmp("inputs", list(&self.inputs), list(&now.inputs));
        cmp(
            "--text-field",
            format!("{:?}", self.text_field),
            format!("{:?}", now.text_field),
        );
        cmp(
            "--id-field",
            format!("{:?}", self.id_field),
            format!("{:?}", now.id_field),
        );
        if self.texts_blake3 != now.texts_blake3 {
            d.push("the TEXT arguments differ".to_owned());
        }
        d
    }
}

/// An input file as a checkpoint saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InputPrefix {
    pub(crate) path: String,
    pub(crate) size: u64,
    /// RFC 3339, when the file system says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) modified: Option<String>,
    /// Bytes of it that the saved rows (and skipped inputs) were read from.
    pub(crate) consumed: u64,
    /// BLAKE3 of those bytes.
    pub(crate) blake3: String,
}

/// Hashes the consumed prefix of each input file, as the job goes on (each
/// byte is read once more, by a handle of its own).
pub(crate) struct InputFiles {
    files: Vec<Option<Prefix>>,
}

struct Prefix {
    path: PathBuf,
    file: Option<File>,
    hasher: blake3::Hasher,
    hashed: u64,
    at_end: bool,
}

impl Prefix {
    /// Hashes up to `len` bytes from the start (`None`: to the end).
    fn hash_to(&mut self, len: Option<u64>) -> Result<()> {
        let io = |e: std::io::Error| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot read {} again: {e}", self.path.display()),
            )
        };
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(File::open(&self.path).map_err(io)?),
        };
        let mut buf = vec![0u8; 1 << 16];
        while len.is_none_or(|l| self.hashed < l) && !self.at_end {
            let want = len.map_or(buf.len() as u64, |l| {
                (l - self.hashed).min(buf.len() as u64)
            });
            let n = file.read(&mut buf[..want as usize]).map_err(io)?;
            if n == 0 {
                self.at_end = true;
                break;
            }
            self.hasher.update(&buf[..n]);
            self.hashed += n as u64;
        }
        Ok(())
    }

    fn record(&self) -> InputPrefix {
        let meta = std::fs::metadata(&self.path).ok();
        InputPrefix {
            path: self.path.display().to_string(),
            size: meta.as_ref().map_or(0, std::fs::Metadata::len),
            modified: meta
                .and_then(|m| m.modified().ok())
                .map(|t| humantime::format_rfc3339_nanos(t).to_string()),
            consumed: self.hashed,
            blake3: self.hasher.clone().finalize().to_hex().to_string(),
        }
    }
}

impl InputFiles {
    /// One entry per source; only regular files are hashed (`--resume`
    /// refuses the others).
    pub(crate) fn new(sources: &[Source]) -> Self {
        let files = sources
            .iter()
            .map(|s| match s {
                Source::File { path, .. } if s.rereadable() => Some(Prefix {
                    path: path.clone(),
                    file: None,
                    hasher: blake3::Hasher::new(),
                    hashed: 0,
                    at_end: false,
                }),
                _ => None,
            })
            .collect();
        InputFiles { files }
    }

    /// Every input file with the prefix consumed when the reading is at
    /// `pos`: the files before it whole, its own up to the offset.
    pub(crate) fn prefixes(&mut self, pos: SourcePos) -> Result<Vec<InputPrefix>> {
        let mut out = Vec::new();
        for (i, f) in self.files.iter_mut().enumerate() {
            let Some(f) = f else { continue };
            let len = match i.cmp(&pos.source) {
                std::cmp::Ordering::Less => None,
                std::cmp::Ordering::Equal => Some(pos.offset),
                std::cmp::Ordering::Greater => Some(0),
            };
            f.hash_to(len)?;
            out.push(f.record());
        }
        Ok(out)
    }

    /// Checks each saved prefix against the file as it is now; the error
    /// says which file changed and how.
    pub(crate) fn verify(&mut self, saved: &[InputPrefix]) -> Result<()> {
        let files: Vec<&mut Prefix> = self.files.iter_mut().flatten().collect();
        if files.len() != saved.len() {
            return Err(Error::invalid_input(format!(
                "the checkpoint lists {} input files, this job has {}",
                saved.len(),
                files.len()
            )));
        }
        for (f, s) in files.into_iter().zip(saved) {
            f.hash_to(Some(s.consumed))?;
            let now = f.record();
            if now.consumed != s.consumed || now.blake3 != s.blake3 {
                let mut how = Vec::new();
                if now.size != s.size {
                    how.push(format!("size {} then, {} now", s.size, now.size));
                }
                if now.modified != s.modified {
                    how.push(format!(
                        "modified {} then, {} now",
                        s.modified.as_deref().unwrap_or("?"),
                        now.modified.as_deref().unwrap_or("?")
                    ));
                }
                let how = if how.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", how.join("; "))
                };
                return Err(Error::invalid_input(format!(
                    "the input {} changed: its first {} bytes, which the saved rows were made \
                     from, are not the same{how}",
                    f.path.display(),
                    s.consumed
                )));
            }
        }
        Ok(())
    }
}

/// What `--resume` needs: where the job was, and proof it is the same job.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) version: u32,
    pub(crate) job: JobIdentity,
    /// Inputs done (written or skipped), from the start.
    pub(crate) items: u64,
    pub(crate) position: Position,
    pub(crate) inputs: Vec<InputPrefix>,
    pub(crate) skipped: u64,
    pub(crate) skipped_inputs: Vec<String>,
    pub(crate) tokens: u64,
}

impl Checkpoint {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        job: JobIdentity,
        items: u64,
        position: Position,
        inputs: Vec<InputPrefix>,
        skipped: u64,
        skipped_inputs: Vec<String>,
        tokens: u64,
    ) -> Self {
        Checkpoint {
            version: VERSION,
            job,
            items,
            position,
            inputs,
            skipped,
            skipped_inputs,
            tokens,
        }
    }

    /// Reads and checks a checkpoint against this job: its version, its
    /// job identity (the error lists what differs), its own consistency.
    pub(crate) fn load(path: &Path, now: &JobIdentity) -> Result<Checkpoint> {
        let text = std::fs::read(path)
            .map_err(|e| Error::invalid_input(format!("cannot read {}: {e}", path.display())))?;
        let damaged = |why: String| {
            Error::invalid_input(format!(
                "cannot resume: {} is damaged ({why}); run without --resume to start again",
                path.display()
            ))
        };
        let value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| damaged(e.to_string()))?;
        let version = value.get("version").and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(VERSION)) {
            return Err(Error::invalid_input(format!(
                "cannot resume: {} was saved by another version of embed (checkpoint format {}, \
                 this one reads {VERSION}); run without --resume to start again",
                path.display(),
                version.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
            )));
        }
        let ck: Checkpoint = serde_json::from_value(value).map_err(|e| damaged(e.to_string()))?;
        let diff = ck.job.differences(now);
        if !diff.is_empty() {
            return Err(Error::invalid_input(format!(
                "cannot resume: {} was saved by another job ({}); run without --resume to \
                 start again",
                path.display(),
                diff.join("; ")
            )));
        }
        if ck.items != ck.position.rows + ck.skipped {
            return Err(damaged(format!(
                "it counts {} inputs done, but {} rows and {} skipped",
                ck.items, ck.position.rows, ck.skipped
            )));
        }
        Ok(ck)
    }
}

/// `<out>.partial.checkpoint`.
pub(crate) fn checkpoint_path(dest: &Path) -> PathBuf {
    with_suffix(dest, ".partial.checkpoint")
}

/// Writes the checkpoint (to a temporary file, synced, then renamed).
pub(crate) fn save_checkpoint(dest: &Path, ck: &Checkpoint) -> Result<()> {
    let path = checkpoint_path(dest);
    let tmp = with_suffix(&path, ".tmp");
    let text =
        serde_json::to_vec(ck).map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        std::io::Write::write_all(&mut f, &text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("cannot save the checkpoint {}: {e}", path.display()),
        )
    })
}
