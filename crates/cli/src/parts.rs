//! A job split into parts: `--shard I/N` (one of N line ranges, for
//! schedulers that hand out work) and `--queue URL --job NAME` (chunks
//! handed out by a Redis Stream, DESIGN §10).
//!
//! A part is an ordinary job ([`crate::job::run`]) over a range of inputs
//! `first..end` with its own output file `DIR/part-<first>.<format>`,
//! written to `<file>.partial`, synced and renamed into place (then the
//! directory is synced), so a part under its name is always whole. Once a
//! part is in place it is recorded in `DIR/manifest.json` (under an
//! exclusive lock on `DIR/manifest.lock`, rewritten through a synced
//! temporary file and a rename), which lists the parts in input order and
//! the job's identity; `embed merge DIR` reads it. Rows keep their index in
//! the whole input, so the merged output is the one-process output.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use embeddings::distributed::{Chunk, CorpusQueue, JobSpec};
use embeddings::{Config, Embedder, Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::args::{EmbedArgs, Format};
use crate::input::{Fields, InputReader, Source};
use crate::job::{Counting, Summary};
use crate::resume::JobIdentity;

/// `--shard`, `--queue` and their options.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct DistArgs {
    /// Embed only the I-th (0-based) of N equal ranges of input lines into `-o DIR` as one part;
    /// `embed merge DIR -o FILE` joins the parts
    #[arg(long, value_name = "I/N", conflicts_with = "queue")]
    pub(crate) shard: Option<String>,
    /// Share the job with other workers through a Redis Stream (redis://HOST:PORT/DB): each
    /// worker claims chunks of --chunk lines and writes them as parts of `-o DIR`
    #[arg(long, value_name = "URL", requires = "job")]
    pub(crate) queue: Option<String>,
    /// The job's name in the queue (the same for every worker of one job)
    #[arg(long, value_name = "NAME", requires = "queue")]
    pub(crate) job: Option<String>,
    /// Input lines per chunk of a queued job
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub(crate) chunk: u64,
    /// A chunk whose worker has not reported for this long is taken over by another worker
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) claim_timeout: Duration,
}

impl DistArgs {
    /// Whether the job is split into parts.
    pub(crate) fn active(&self) -> bool {
        self.shard.is_some() || self.queue.is_some()
    }
}

/// The manifest's name in the output directory.
pub(crate) const MANIFEST: &str = "manifest.json";
const MANIFEST_VERSION: u32 = 1;

/// `DIR/manifest.json`: the parts written so far, in input order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) version: u32,
    /// BLAKE3 of what decides the rows and of how the job is split.
    pub(crate) job: String,
    /// How the job is split (`shard of 3`, `queue job NAME, chunks of 10000`).
    pub(crate) split: String,
    /// Output format of every part (`npy`, `jsonl`, `parquet`).
    pub(crate) format: String,
    pub(crate) output_type: String,
    /// Inputs in the whole job.
    pub(crate) total: u64,
    pub(crate) parts: Vec<PartEntry>,
}

/// One part: inputs `first..end`, `rows` of them embedded (fewer when
/// `--on-error skip` left some out), in `file` (relative to the directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartEntry {
    pub(crate) first: u64,
    pub(crate) end: u64,
    pub(crate) rows: u64,
    pub(crate) file: String,
}

impl Manifest {
    /// Reads `dir`'s manifest, if there is one.
    pub(crate) fn load(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("read", &path, e)),
        };
        let m: Manifest = serde_json::from_str(&text).map_err(|e| {
            Error::invalid_input(format!("{} is not a parts manifest: {e}", path.display()))
        })?;
        if m.version != MANIFEST_VERSION {
            return Err(Error::invalid_input(format!(
                "{} is a manifest of version {}, this embed reads version {MANIFEST_VERSION}",
                path.display(),
                m.version
            )));
        }
        Ok(Some(m))
    }

    /// The parts' gaps in `0..total`, as ranges (empty when complete).
    pub(crate) fn missing(&self) -> Vec<Range<u64>> {
        let mut gaps = Vec::new();
        let mut at = 0;
        for p in &self.parts {
            if p.first > at {
                gaps.push(at..p.first);
            }
            at = at.max(p.end);
        }
        if at < self.total {
            gaps.push(at..self.total);
        }
        gaps
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("cannot {what} {}: {e}", path.display()),
    )
}

/// Syncs a directory, so that a rename in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("sync", dir, e))
}

/// Writes `bytes` to `path` atomically: a synced temporary file renamed
/// into place, then the directory synced.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = crate::output::with_suffix(path, ".tmp");
    let mut f = File::create(&tmp).map_err(|e| io_err("create", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err("rename", path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Holds `DIR/manifest.lock` exclusively while it lives.
struct ManifestLock(File);

impl ManifestLock {
    fn take(dir: &Path) -> Result<ManifestLock> {
        let p = dir.join("manifest.lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| io_err("open", &p, e))?;
        fs4::FileExt::lock(&f).map_err(|e| io_err("lock", &p, e))?;
        Ok(ManifestLock(f))
    }
}

impl Drop for ManifestLock {
    fn drop(&mut self) {
        let _ = fs4::FileExt::unlock(&self.0);
    }
}

/// What every part of one job shares.
struct Plan {
    dir: PathBuf,
    /// The manifest without parts.
    head: Manifest,
    ext: &'static str,
}

impl Plan {
    /// Refuses a directory that holds parts of another job.
    fn check_dir(&self) -> Result<()> {
        let _lock = ManifestLock::take(&self.dir)?;
        self.check(Manifest::load(&self.dir)?.as_ref())
    }

    fn check(&self, m: Option<&Manifest>) -> Result<()> {
        match m {
            Some(m) if m.job != self.head.job => Err(Error::invalid_input(format!(
                "{} holds parts of another job ({}, {} {} of {} inputs); choose another -o \
                 directory, or remove it to start again",
                self.dir.display(),
                m.split,
                m.format,
                m.output_type,
                m.total
            ))),
            _ => Ok(()),
        }
    }

    /// Adds (or replaces) a written part in the manifest.
    fn record(&self, part: PartEntry) -> Result<()> {
        let _lock = ManifestLock::take(&self.dir)?;
        let existing = Manifest::load(&self.dir)?;
        self.check(existing.as_ref())?;
        let mut m = existing.unwrap_or_else(|| self.head.clone());
        m.parts.retain(|p| p.first != part.first);
        m.parts.push(part);
        m.parts.sort_by_key(|p| p.first);
        let mut text = serde_json::to_vec_pretty(&m)
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        text.push(b'\n');
        write_atomic(&self.dir.join(MANIFEST), &text)
    }

    fn part_name(&self, first: u64) -> String {
        format!("part-{first:012}.{}", self.ext)
    }
}

/// The job's identity in three parts (input, provider settings, output),
/// as the queue compares them; none depends on where the input file is.
fn fingerprints(
    job: &JobIdentity,
    args: &EmbedArgs,
    sources: &[Source],
) -> Result<(String, String, String)> {
    let mut input = blake3::Hasher::new();
    for s in sources {
        match s {
            Source::File { path, format } => {
                input.update(format!("file {format:?}\n").as_bytes());
                let mut f = File::open(path).map_err(|e| {
                    Error::invalid_input(format!("cannot read input file {}: {e}", path.display()))
                })?;
                input
                    .update_reader(&mut f)
                    .map_err(|e| io_err("read", path, e))?;
            }
            Source::Args(texts) => {
                for t in texts {
                    input.update(&(t.len() as u64).to_le_bytes());
                    input.update(t.as_bytes());
                }
            }
            Source::Stdin { .. } => {
                return Err(Error::invalid_input(
                    "--shard and --queue need input files, not stdin",
                ));
            }
        }
        input.update(b"\n--\n");
    }
    input.update(format!("{:?} {:?}", args.text_field, args.id_field).as_bytes());
    let settings = format!(
        "{:?} {:?} {} {:?} {} {}",
        job.provider,
        job.model,
        job.dimensions,
        job.provider_fingerprint,
        job.input_type,
        job.output_type
    );
    Ok((
        input.finalize().to_hex().to_string(),
        blake3::hash(settings.as_bytes()).to_hex().to_string(),
        format!("{} {}", job.output_format, job.output_type),
    ))
}

/// The number of inputs, by reading them (a bad line counts, as it does in
/// the job; an unreadable file is an error).
fn count_inputs(sources: &[Source], args: &EmbedArgs) -> Result<u64> {
    let mut reader = InputReader::new(
        sources.to_vec(),
        Fields {
            text: args.text_field.clone(),
            id: args.id_field.clone(),
        },
    );
    let mut n = 0;
    while let Some(item) = reader.next_item() {
        if let Err(e) = item {
            if reader.is_fatal() {
                return Err(e);
            }
        }
        n += 1;
    }
    Ok(n)
}

/// `I/N`, 0 <= I < N.
pub(crate) fn parse_shard(raw: &str) -> Result<(u64, u64)> {
    let bad = || {
        Error::config(format!(
            "`--shard` = {raw:?}: expected I/N with 0 <= I < N (0-based: the shards of 3 are \
             0/3, 1/3 and 2/3)"
        ))
    };
    let (i, n) = raw.split_once('/').ok_or_else(bad)?;
    let i: u64 = i.trim().parse().map_err(|_| bad())?;
    let n: u64 = n.trim().parse().map_err(|_| bad())?;
    if n == 0 || i >= n || n > 1_000_000 {
        return Err(bad());
    }
    Ok((i, n))
}

/// Shard `i` of `n` of `total` inputs: `total * i / n .. total * (i+1) / n`.
pub(crate) fn shard_range(i: u64, n: u64, total: u64) -> Range<u64> {
    let at = |k: u64| ((u128::from(total) * u128::from(k)) / u128::from(n)) as u64;
    at(i)..at(i + 1)
}

/// Runs a split job: one shard, or chunks of the queue until none is left.
pub(crate) async fn run(
    embedder: Arc<dyn Embedder>,
    counting: Arc<Counting>,
    config: &Config,
    args: &EmbedArgs,
    sources: Vec<Source>,
    job: JobIdentity,
) -> Result<Summary> {
    let started = Instant::now();
    let flag = if args.dist.shard.is_some() {
        "--shard"
    } else {
        "--queue"
    };
    let format = args.output_format();
    let ext = match format {
        Format::Npy => "npy",
        Format::Jsonl => "jsonl",
        Format::Parquet => "parquet",
        Format::Json | Format::Arrow => {
            return Err(Error::invalid_input(format!(
                "{flag} writes parts that `embed merge` joins: use --format jsonl, npy or parquet"
            )));
        }
    };
    if args.resume {
        return Err(Error::invalid_input(format!(
            "{flag} needs no --resume: a part written is kept, and one that was not is done again"
        )));
    }
    let Some(dir) = args.output.clone() else {
        return Err(Error::invalid_input(format!(
            "{flag} needs -o DIR: the directory that receives the parts and their manifest"
        )));
    };
    if sources.iter().any(|s| matches!(s, Source::Stdin { .. })) {
        return Err(Error::invalid_input(format!(
            "{flag} needs input files (every worker reads the same input), not stdin"
        )));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(Error::invalid_input(format!(
            "{flag}: -o {} must be a directory (it receives part-<first line>.{ext} files)",
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir).map_err(|e| {
        Error::invalid_input(format!(
            "cannot create the directory {}: {e}",
            dir.display()
        ))
    })?;
    let (input, settings, out) = fingerprints(&job, args, &sources)?;
    let total = count_inputs(&sources, args)?;
    let split = match (&args.dist.shard, &args.dist.job) {
        (Some(s), _) => format!("shard of {}", parse_shard(s)?.1),
        (None, Some(name)) => format!("queue job {name}, chunks of {}", args.dist.chunk),
        (None, None) => return Err(Error::invalid_input("--queue needs --job NAME")),
    };
    let plan = Plan {
        head: Manifest {
            version: MANIFEST_VERSION,
            job: blake3::hash(format!("{input}\n{settings}\n{out}\n{split}\n{total}").as_bytes())
                .to_hex()
                .to_string(),
            split,
            format: ext.to_owned(),
            output_type: job.output_type.clone(),
            total,
            parts: Vec::new(),
        },
        dir,
        ext,
    };
    if args.dist.shard.is_some() {
        plan.check_dir()?;
    }
    let run_part = |range: Range<u64>| {
        let mut part_args = args.clone();
        part_args.output = Some(plan.dir.join(plan.part_name(range.start)));
        part_args.format = Some(format);
        let embedder = Arc::clone(&embedder);
        let counting = Arc::clone(&counting);
        let sources = sources.clone();
        let job = job.clone();
        let plan = &plan;
        async move {
            let first = range.start;
            let end = range.end;
            let s = crate::job::run(
                embedder,
                counting,
                config,
                &part_args,
                sources,
                job,
                Some(range),
            )
            .await?;
            sync_dir(&plan.dir)?;
            plan.record(PartEntry {
                first,
                end,
                rows: s.rows,
                file: plan.part_name(first),
            })?;
            Ok::<Summary, Error>(s)
        }
    };

    let mut total_summary = Summary::default();
    let mut add = |s: Summary| {
        total_summary.rows += s.rows;
        total_summary.skipped += s.skipped;
        total_summary.tokens += s.tokens;
        total_summary.requests = s.requests;
        total_summary.retries = s.retries;
        total_summary.failed_requests = s.failed_requests;
        for i in s.skipped_inputs {
            if total_summary.skipped_inputs.len() < 20 {
                total_summary.skipped_inputs.push(i);
            }
        }
    };
    if let Some(s) = &args.dist.shard {
        let (i, n) = parse_shard(s)?;
        add(run_part(shard_range(i, n, total)).await?);
    } else {
        let (Some(url), Some(name)) = (&args.dist.queue, &args.dist.job) else {
            return Err(Error::invalid_input("--queue needs --job NAME"));
        };
        if args.dist.chunk == 0 {
            return Err(Error::config(
                "`--chunk` = 0: a chunk holds at least one line",
            ));
        }
        let queue = Arc::new(CorpusQueue::new(url, name)?);
        queue
            .join(&JobSpec {
                input,
                settings,
                format: out,
                total,
                chunk: args.dist.chunk,
            })
            .await?;
        // After the queue's check, which says what differs.
        plan.check_dir()?;
        let consumer = consumer_name();
        let timeout = args.dist.claim_timeout.max(Duration::from_millis(100));
        loop {
            let Some(chunk) = queue.claim(&consumer, timeout).await? else {
                let status = queue.status().await?;
                if status.finished() {
                    if let Some((first, msg)) = status.failed.first() {
                        return Err(Error::invalid_input(format!(
                            "job {name:?} ended with {} failed chunk(s); the first, from input \
                             {first}: {msg}",
                            status.failed.len()
                        )));
                    }
                    break;
                }
                // Others are at work: wait for a chunk to free up or be reclaimed.
                tokio::time::sleep((timeout / 4).min(Duration::from_millis(500))).await;
                continue;
            };
            let keeper = keep_alive(Arc::clone(&queue), consumer.clone(), chunk.clone(), timeout);
            let r = run_part(chunk.first..chunk.end).await;
            keeper.abort();
            match r {
                // A worker that was thought dead is still writing this part:
                // it is its chunk; leave it (unacknowledged) and go on.
                Err(e) if e.message().contains("another embed job is writing") => {
                    eprintln!(
                        "embed: the chunk at input {} is still being written by another worker; \
                         leaving it",
                        chunk.first
                    );
                }
                Ok(s) => {
                    queue.complete(&chunk).await?;
                    add(s);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::InvalidInput | ErrorKind::ContextLengthExceeded
                    ) =>
                {
                    queue.fail(&chunk, e.message()).await?;
                    return Err(e);
                }
                // Not acknowledged: another worker takes it over after the claim timeout.
                Err(e) => return Err(e),
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    total_summary.seconds = seconds;
    total_summary.rows_per_second = total_summary.rows as f64 / seconds.max(1e-9);
    total_summary.output = Some(plan.dir.display().to_string());
    Ok(total_summary)
}

/// This worker's name in the consumer group: host, process id and a random part.
fn consumer_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}-{}-{nanos:08x}", std::process::id())
}

/// Keeps the claim on `chunk` fresh every third of the claim timeout.
fn keep_alive(
    queue: Arc<CorpusQueue>,
    consumer: String,
    chunk: Chunk,
    timeout: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(timeout / 3);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = queue.keep(&consumer, &chunk).await {
                eprintln!(
                    "embed: warning: cannot renew the claim on the chunk at input {}: {}",
                    chunk.first,
                    crate::printable(&e.to_string())
                );
            }
        }
    })
}

/// `embed queue status|clear --queue URL --job NAME`.
#[derive(Debug, Args, Clone)]
pub(crate) struct QueueArgs {
    #[command(subcommand)]
    pub(crate) action: QueueAction,
}

/// What to do with a queued job.
#[derive(Debug, clap::Subcommand, Clone)]
pub(crate) enum QueueAction {
    /// Chunks of the job: pending, in progress, done, failed.
    Status {
        /// The queue's Redis server (redis://HOST:PORT/DB)
        #[arg(long, value_name = "URL")]
        queue: String,
        /// The job's name
        #[arg(long, value_name = "NAME")]
        job: String,
        /// One JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// Deletes the job's keys from Redis (after `embed merge`; the parts stay)
    Clear {
        /// The queue's Redis server (redis://HOST:PORT/DB)
        #[arg(long, value_name = "URL")]
        queue: String,
        /// The job's name
        #[arg(long, value_name = "NAME")]
        job: String,
        /// Delete an unfinished job too (its workers then fail)
        #[arg(long)]
        force: bool,
    },
}

/// Runs `embed queue ...`.
pub(crate) async fn queue_command(args: &QueueArgs) -> Result<()> {
    match &args.action {
        QueueAction::Status { queue, job, json } => {
            let s = CorpusQueue::new(queue, job)?.status().await?;
            if *json {
                let failed: Vec<serde_json::Value> = s
                    .failed
                    .iter()
                    .map(|(f, m)| serde_json::json!({"first": f, "message": m}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "job": job, "inputs": s.total, "chunks": s.chunks, "pending": s.pending,
                        "in_progress": s.in_progress, "done": s.done, "failed": failed,
                        "reclaimed": s.reclaimed, "finished": s.finished(),
                    })
                );
            } else {
                println!(
                    "job {job}: {} inputs in {} chunks: {} pending, {} in progress, {} done, {} failed{}{}",
                    s.total,
                    s.chunks,
                    s.pending,
                    s.in_progress,
                    s.done,
                    s.failed.len(),
                    if s.reclaimed > 0 {
                        format!(" ({} taken over from stopped workers)", s.reclaimed)
                    } else {
                        String::new()
                    },
                    if s.finished() { " (finished)" } else { "" }
                );
                for (first, msg) in &s.failed {
                    println!(
                        "failed: the chunk from input {first}: {}",
                        crate::printable(msg)
                    );
                }
            }
            Ok(())
        }
        QueueAction::Clear { queue, job, force } => {
            let q = CorpusQueue::new(queue, job)?;
            let s = q.status().await?;
            if !s.finished() && !*force {
                return Err(Error::invalid_input(format!(
                    "job {job} is not finished ({} pending, {} in progress): its workers need \
                     its keys; `--force` deletes them anyway",
                    s.pending, s.in_progress
                )));
            }
            q.delete().await?;
            println!("job {job}: its keys are deleted from the queue's Redis server");
            Ok(())
        }
    }
}
