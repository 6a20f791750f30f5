//! One embedding job: inputs streamed through the library's `embed_stream`
//! (bounded memory), rows written in input order, checkpoints for
//! `--resume`, progress, and the summary.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embeddings::layers::{BatchLimits, StreamOptions, embed_stream};
use embeddings::{
    Config, EmbedRequest, Embedder, Embeddings, Error, ErrorKind, Result, Wrapper, async_trait,
};
use futures::StreamExt;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::args::{EmbedArgs, OnError, StatsFormat};
use crate::input::{Fields, InputReader, Source, SourcePos};
use crate::output::{Dest, Position, Writer, identity, lock_partial, with_suffix};
use crate::progress::Progress;
use crate::resume::{Checkpoint, InputFiles, JobIdentity, checkpoint_path, save_checkpoint};

/// How often the partial output is synced and a checkpoint saved: after a
/// second, or sooner once this many bytes were written since the last one
/// (a fast job, e.g. a cached re-run, then streams its output to disk as it
/// goes instead of leaving it all to the final sync).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
const CHECKPOINT_BYTES: u64 = 32 << 20;

/// Whether a checkpoint is due, `elapsed` and `written` since the last one.
fn checkpoint_due(elapsed: Duration, written: u64) -> bool {
    elapsed >= CHECKPOINT_EVERY || written >= CHECKPOINT_BYTES
}
/// Bad inputs listed by name in the summary (all are counted).
const LISTED_SKIPS: usize = 20;

/// Counts the requests that reach the provider (under every layer, so
/// retried attempts count too) and the failed ones.
#[derive(Debug)]
pub(crate) struct Counting {
    inner: Arc<dyn Embedder>,
    requests: AtomicU64,
    failures: AtomicU64,
}

impl Counting {
    pub(crate) fn new(inner: Arc<dyn Embedder>) -> Self {
        Counting {
            inner,
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }
    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Wrapper for Counting {
    fn inner(&self) -> &dyn Embedder {
        &*self.inner
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        if request.inputs.is_empty() {
            return self.inner.embed(request).await;
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.embed(request).await;
        if r.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

/// The end-of-job summary (`--stats json` prints it as is).
#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    pub(crate) rows: u64,
    pub(crate) skipped: u64,
    pub(crate) skipped_inputs: Vec<String>,
    pub(crate) tokens: u64,
    /// Requests sent to the provider (every attempt).
    pub(crate) requests: u64,
    /// Re-attempts of a failed request.
    pub(crate) retries: u64,
    /// Requests the provider answered with an error (retried or not).
    pub(crate) failed_requests: u64,
    pub(crate) seconds: f64,
    pub(crate) rows_per_second: f64,
    pub(crate) resumed_from_row: Option<u64>,
    pub(crate) output: Option<String>,
    /// Set when there was nothing to do (a complete output and `--resume`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
    /// Cache hits, misses and store errors, when a cache is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cache: Option<crate::cache::CacheCounts>,
}

impl Summary {
    pub(crate) fn print(&self, format: StatsFormat) {
        match format {
            StatsFormat::Json => {
                if let Ok(s) = serde_json::to_string(self) {
                    eprintln!("{s}");
                }
            }
            StatsFormat::Text if self.note.is_some() => {
                eprintln!("embed: {}", self.note.as_deref().unwrap_or_default());
            }
            StatsFormat::Text => {
                let resumed = self
                    .resumed_from_row
                    .map(|r| format!(" (resumed at row {r})"))
                    .unwrap_or_default();
                eprintln!(
                    "embed: {} rows{resumed}, {} skipped, {} tokens, {} requests, {} retries, {} failed requests, {:.2} s, {:.0} rows/s{}",
                    self.rows,
                    self.skipped,
                    self.tokens,
                    self.requests,
                    self.retries,
                    self.failed_requests,
                    self.seconds,
                    self.rows_per_second,
                    self.output
                        .as_ref()
                        .map(|o| format!(" -> {o}"))
                        .unwrap_or_default()
                );
                if let Some(c) = &self.cache {
                    eprintln!(
                        "embed: cache: {} hits, {} misses, {} store errors",
                        c.hits, c.misses, c.errors
                    );
                }
                for s in &self.skipped_inputs {
                    eprintln!("embed: skipped {}", crate::printable(s));
                }
                if self.skipped as usize > self.skipped_inputs.len() {
                    eprintln!(
                        "embed: ... and {} more skipped",
                        self.skipped as usize - self.skipped_inputs.len()
                    );
                }
            }
        }
    }
}

/// A text handed to the library, with what the output needs to know about it.
struct Pending {
    index: u64,
    /// Where its bytes start in its source.
    start: SourcePos,
    id: Option<Box<RawValue>>,
    /// Kept only with `--on-error skip`, to retry a failed batch one by one.
    text: Option<String>,
    /// Where it was read: the source's name and the line.
    source: Arc<str>,
    line: u64,
}

impl Pending {
    /// `FILE line N`.
    fn at(&self) -> String {
        format!("{} line {}", self.source, self.line)
    }
}

/// Where the inputs of `batch` are, for a message: `FILE line N`, `FILE
/// lines N-M`, or `FILE line N to OTHER line M`.
fn where_are(batch: &[Pending]) -> String {
    match batch {
        [] => "no input".to_owned(),
        [one] => one.at(),
        [first, .., last] if first.source == last.source => {
            format!("{} lines {}-{}", first.source, first.line, last.line)
        }
        [first, .., last] => format!("{} to {}", first.at(), last.at()),
    }
}

/// An error of a request over `batch` (whose first input is input `start`
/// of the stream) named by file and line: the inputs the error is about
/// (`Error::inputs`, else the whole batch) lead the message, and the
/// request-relative numbering of the layers ("inputs 10..15 failed: input
/// 3 has ...") is left out.
fn named(e: Error, batch: &[Pending], start: usize) -> Error {
    let (at, e) = located(e, batch, start);
    let msg = format!("{at}: {}", e.message());
    e.with_message(msg)
}

/// What [`named`] puts in front, and the error without the layers' numbering.
fn located(e: Error, batch: &[Pending], start: usize) -> (String, Error) {
    let whole = start..start + batch.len();
    let about = e
        .inputs()
        .filter(|r| r.start >= whole.start && r.end <= whole.end && r.start < r.end)
        .unwrap_or(whole.clone());
    let rel = about.start - start..about.end - start;
    let mut msg = e.message().to_owned();
    if let Some(rest) = msg.strip_prefix(&format!("inputs {}..{} failed: ", whole.start, whole.end))
    {
        msg = rest.to_owned();
    }
    if rel.len() == 1 {
        msg = msg.replacen(&format!("input {} ", rel.start), "the input ", 1);
    }
    (where_are(&batch[rel]), e.with_message(msg))
}

#[derive(Default)]
struct Shared {
    pending: VecDeque<Pending>,
    /// Bad inputs, by index.
    skipped: Vec<(u64, String)>,
    /// Reading stopped on this error.
    fatal: Option<Error>,
    /// Inputs read (pending or done).
    read: u64,
    /// Where the next input to read starts.
    read_pos: SourcePos,
}

/// Whether a failed request was refused for its inputs (skippable) rather
/// than failing for the provider's or the network's sake.
fn is_input_error(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::InvalidInput | ErrorKind::ContextLengthExceeded
    )
}

/// The listed bad inputs, in input order, at most `LISTED_SKIPS`.
fn listed(before: &[String], now: &[&(u64, String)]) -> Vec<String> {
    let mut now: Vec<&(u64, String)> = now.to_vec();
    now.sort_by_key(|(i, _)| *i);
    let mut v = before.to_vec();
    v.extend(now.iter().map(|(_, m)| m.clone()));
    v.truncate(LISTED_SKIPS);
    v
}

/// Runs the job; returns its summary.
pub(crate) async fn run(
    embedder: Arc<dyn Embedder>,
    counting: Arc<Counting>,
    config: &Config,
    args: &EmbedArgs,
    sources: Vec<Source>,
    job: JobIdentity,
    range: Option<std::ops::Range<u64>>,
) -> Result<Summary> {
    let started = Instant::now();
    if range.is_some() && args.resume {
        return Err(Error::invalid_input(
            "--resume continues one output file; a part of --shard or --queue is redone whole",
        ));
    }
    let format = args.output_format();
    let target = Dest::resolve(args.output.as_deref())?;
    // The regular file written (a symlink's target), if any.
    let dest = target.file();
    if let Some(d) = dest {
        refuse_an_input_as_output(d, &sources)?;
    }
    let skip_mode = args.on_error == OnError::Skip;
    let (input_type, output_type) = args.request_types(config);
    let mut inputs = InputFiles::new(&sources);

    // Resume, or start afresh.
    let mut resumed: Option<Checkpoint> = None;
    if args.resume {
        let dest = match &target {
            Dest::File(d) => d.as_path(),
            Dest::Stdout => return Err(Error::invalid_input("--resume needs --output FILE")),
            Dest::Stream(p) => {
                return Err(Error::invalid_input(format!(
                    "--resume needs a regular output file, and {} is a FIFO or a device",
                    p.display()
                )));
            }
        };
        if let Some(s) = sources.iter().find(|s| !s.rereadable()) {
            return Err(Error::invalid_input(format!(
                "--resume needs inputs that can be read again from the start, and {} \
                 (a pipe, a FIFO or another stream) cannot be read again; run without \
                 --resume to start the job afresh",
                s.name()
            )));
        }
        if dest.is_file() && !with_suffix(dest, ".partial").exists() {
            // Complete (a checkpoint left by a crash right after the rename
            // is stale).
            let _ = std::fs::remove_file(checkpoint_path(dest));
            return Ok(Summary {
                output: Some(dest.display().to_string()),
                note: Some(format!("nothing to resume: {} is complete", dest.display())),
                ..Summary::default()
            });
        }
    }
    // A file output: its lock first, so that no other job changes what is
    // checked next.
    let locked = dest.map(lock_partial).transpose()?;
    if let (true, Some(dest)) = (args.resume, dest) {
        let ck_path = checkpoint_path(dest);
        if ck_path.is_file() {
            let ck = Checkpoint::load(&ck_path, &job)?;
            inputs.verify(&ck.inputs).map_err(|e| {
                let msg = format!(
                    "cannot resume: {}; run without --resume to start again",
                    e.message()
                );
                e.with_message(msg)
            })?;
            resumed = Some(ck);
        }
    }
    let mut writer = match (&resumed, dest, locked) {
        (Some(ck), Some(dest), Some(lock)) => {
            Writer::resume(dest, format, output_type, &ck.position, lock)?
        }
        (_, _, lock) => {
            let w = Writer::create(&target, format, output_type, lock)?;
            // The output's lock is held: a checkpoint left there belongs to
            // a job that this one replaces.
            if let Some(d) = dest {
                let _ = std::fs::remove_file(checkpoint_path(d));
            }
            w
        }
    };
    let start_row = writer.rows();

    let mut reader = InputReader::new(
        sources,
        Fields {
            text: args.text_field.clone(),
            id: args.id_field.clone(),
        },
    );
    let total = match &range {
        _ if args.quiet => None,
        Some(r) => Some(r.end - r.start),
        None => total_items(args),
    };
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut tokens = 0u64;
    let mut skipped_before = Vec::new();
    let mut skipped_count_before = 0;
    if let Some(ck) = &resumed {
        for _ in 0..ck.items {
            match reader.next_item() {
                Some(Err(e)) if reader.is_fatal() => return Err(e),
                Some(_) => {}
                None => break,
            }
        }
        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
        s.read = ck.items;
        s.read_pos = reader.position();
        tokens = ck.tokens;
        skipped_before.clone_from(&ck.skipped_inputs);
        skipped_count_before = ck.skipped;
    }
    // A part: the inputs before its first are read and left out (their
    // indices still count, so rows keep their place in the whole input).
    let end = range.as_ref().map_or(u64::MAX, |r| r.end);
    if let Some(r) = &range {
        for _ in 0..r.start {
            match reader.next_item() {
                Some(Err(e)) if reader.is_fatal() => return Err(e),
                Some(_) => {}
                None => break,
            }
        }
        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
        s.read = r.start;
        s.read_pos = reader.position();
    }

    // The text stream: reads lazily as the library asks for more.
    let feed = Arc::clone(&shared);
    let texts = futures::stream::iter(std::iter::from_fn(move || {
        loop {
            if feed.lock().unwrap_or_else(|p| p.into_inner()).read >= end {
                return None;
            }
            let start = reader.position();
            let item = reader.next_item()?;
            let mut s = feed.lock().unwrap_or_else(|p| p.into_inner());
            let index = s.read;
            s.read += 1;
            match item {
                Ok(rec) => {
                    s.pending.push_back(Pending {
                        index,
                        start,
                        id: rec.id,
                        text: skip_mode.then(|| rec.text.clone()),
                        source: rec.source,
                        line: rec.line,
                    });
                    s.read_pos = reader.position();
                    return Some(rec.text);
                }
                Err(e) if skip_mode && !reader.is_fatal() => {
                    s.skipped.push((index, e.message().to_owned()));
                    s.read_pos = reader.position();
                }
                Err(e) => {
                    // Not done: a resumed job reads this input again (fixed, one hopes).
                    s.read = index;
                    s.fatal = Some(e);
                    return None;
                }
            }
        }
    }));
    // A batch of the stream is never larger than one request may be, so
    // that a huge --batch-size does not hold more rows than a request returns.
    let batch_size = BatchLimits::new(embedder.info(), &config.batch).max_batch_size;
    let options = StreamOptions::from_config(&config.batch)
        .batch_size(batch_size)
        .input_type(input_type)
        .output_type(output_type);
    let mut batches = embed_stream(Arc::clone(&embedder), texts, options);
    let mut progress = Progress::new(args.quiet, args.progress_interval, total, start_row);
    let mut last_checkpoint = Instant::now();
    let mut checkpoint_bytes = 0u64;

    // The checkpoint of a flushed output's position.
    let checkpoint_at = |position: Position,
                         inputs: &mut InputFiles,
                         shared: &Shared,
                         tokens: u64|
     -> Result<Checkpoint> {
        // Every input before the first pending one is written or skipped.
        let (items, pos) = shared
            .pending
            .front()
            .map_or((shared.read, shared.read_pos), |p| (p.index, p.start));
        let skipped_now: Vec<_> = shared.skipped.iter().filter(|(i, _)| *i < items).collect();
        Ok(Checkpoint::new(
            job.clone(),
            items,
            position,
            inputs.prefixes(pos)?,
            skipped_count_before + skipped_now.len() as u64,
            listed(&skipped_before, &skipped_now),
            tokens,
        ))
    };
    // Syncs the output, then saves its checkpoint, before returning.
    let checkpoint = |writer: &mut Writer,
                      inputs: &mut InputFiles,
                      shared: &Shared,
                      tokens: u64|
     -> Result<()> {
        let (Some(dest), Some(position)) = (dest, writer.sync()?) else {
            return Ok(());
        };
        save_checkpoint(dest, &checkpoint_at(position, inputs, shared, tokens)?)
    };
    // The periodic checkpoint runs beside the job: the output is flushed
    // here, then synced and the checkpoint saved on a thread of its own, so
    // that rows go on being written while the disk catches up (a sync of a
    // second's rows can take as long as writing them). One at a time; a
    // checkpoint is saved only once the rows it counts are on disk.
    let mut in_flight: Option<std::thread::JoinHandle<Result<()>>> = None;
    let joined = |h: std::thread::JoinHandle<Result<()>>| -> Result<()> {
        h.join().unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Internal,
                "the checkpoint thread panicked",
            ))
        })
    };

    // Stream inputs handed back so far: the next batch starts there.
    let mut streamed = 0usize;
    let outcome: Result<()> = async {
        while let Some(batch) = batches.next().await {
            let (rows_meta, rows) = match batch {
                Ok((range, rows)) => {
                    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                    let meta: Vec<Pending> = s.pending.drain(..range.len()).collect();
                    streamed += meta.len();
                    (meta, Some(rows))
                }
                Err(e) => {
                    // Batches are `batch_size` texts but the last, and the
                    // failed one is the oldest pending: its texts lead the queue.
                    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                    let n = batch_size.min(s.pending.len());
                    if !(skip_mode && is_input_error(&e)) {
                        let batch: Vec<Pending> = s.pending.drain(..n).collect();
                        let e = named(e, &batch, streamed);
                        // Not done: back in front, for the checkpoint.
                        for p in batch.into_iter().rev() {
                            s.pending.push_front(p);
                        }
                        return Err(e);
                    }
                    let meta: Vec<Pending> = s.pending.drain(..n).collect();
                    streamed += meta.len();
                    (meta, None)
                }
            };
            match rows {
                Some(rows) => {
                    tokens += rows.usage().map_or(0, |u| u.prompt_tokens);
                    writer
                        .write_batch(&rows, rows_meta.iter().map(|p| (p.index, p.id.as_deref())))?;
                }
                None => {
                    // One by one: keep what embeds, skip what the provider refuses.
                    let mut metas = rows_meta.into_iter();
                    while let Some(p) = metas.next() {
                        let text = p.text.as_deref().unwrap_or_default();
                        let one = [text];
                        let request = EmbedRequest::new(&one)
                            .with_input_type(input_type)
                            .with_output_type(output_type);
                        let failed = match embedder.embed(request).await {
                            Ok(row) if row.len() == 1 => {
                                tokens += row.usage().map_or(0, |u| u.prompt_tokens);
                                writer.write(p.index, p.id.as_deref(), row.row_ref(0))?;
                                continue;
                            }
                            Ok(_) => Error::invalid_response("no vector for one input"),
                            Err(e) if is_input_error(&e) => {
                                let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                                let (at, e) = located(e, std::slice::from_ref(&p), 0);
                                s.skipped.push((p.index, format!("{at}: {e}")));
                                continue;
                            }
                            Err(e) => e,
                        };
                        // Not done, nor the ones after it: back in front of
                        // the queue, so that the checkpoint has them to do.
                        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                        let rest: Vec<Pending> = std::iter::once(p).chain(metas).collect();
                        for r in rest.into_iter().rev() {
                            s.pending.push_front(r);
                        }
                        return Err(failed);
                    }
                }
            }
            progress.update(
                writer.rows(),
                writer.rows() - start_row,
                tokens,
                crate::retries::count(),
            );
            if checkpoint_due(
                last_checkpoint.elapsed(),
                writer.bytes_written() - checkpoint_bytes,
            ) && in_flight.as_ref().is_none_or(|h| h.is_finished())
            {
                if let Some(h) = in_flight.take() {
                    joined(h)?;
                }
                let flushed = match dest {
                    Some(dest) => writer.flush()?.map(|f| (dest, f)),
                    None => None,
                };
                if let Some((dest, (position, pending))) = flushed {
                    let s = shared.lock().unwrap_or_else(|p| p.into_inner());
                    let ck = checkpoint_at(position, &mut inputs, &s, tokens)?;
                    let dest = dest.to_owned();
                    let h = std::thread::Builder::new()
                        .name("embed-checkpoint".to_owned())
                        .spawn(move || {
                            pending.sync()?;
                            save_checkpoint(&dest, &ck)
                        })
                        .map_err(|e| {
                            Error::new(
                                ErrorKind::Internal,
                                format!("cannot start the checkpoint thread: {e}"),
                            )
                        })?;
                    in_flight = Some(h);
                }
                last_checkpoint = Instant::now();
                checkpoint_bytes = writer.bytes_written();
            }
        }
        let fatal = shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fatal
            .take();
        match fatal {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
    .await;
    drop(batches);
    progress.finish();
    // No checkpoint may land after the ones below or after the output is
    // complete (its checkpoint removed); a failed one fails the job, as
    // it did when it was saved in line.
    let outcome = match (outcome, in_flight.take().map(joined)) {
        (Ok(()), Some(Err(e))) => Err(e),
        (outcome, _) => outcome,
    };

    if let Err(e) = outcome {
        // Save what is done, so that --resume continues from here.
        let saved = {
            let s = shared.lock().unwrap_or_else(|p| p.into_inner());
            checkpoint(&mut writer, &mut inputs, &s, tokens)
        };
        let hint = match (dest, saved) {
            (Some(d), Ok(())) => format!(
                "; {} rows are saved in {}: fix the cause and rerun with --resume to continue",
                writer.rows(),
                with_suffix(d, ".partial").display()
            ),
            _ => String::new(),
        };
        let msg = format!("{}{hint}", e.message());
        return Err(e.with_message(msg));
    }

    let rows = writer.rows();
    let s = shared.lock().unwrap_or_else(|p| p.into_inner());
    let skipped = skipped_count_before + s.skipped.len() as u64;
    let skipped_inputs = listed(&skipped_before, &s.skipped.iter().collect::<Vec<_>>());
    // A dimension for an empty output (shape (0, dim)).
    let dim = config.dimensions.unwrap_or_else(|| embedder.dimension());
    if rows == 0 && skipped > 0 {
        // Every input was skipped: that is a failed job, not an empty result.
        match dest {
            Some(d) => {
                writer.discard();
                let _ = std::fs::remove_file(checkpoint_path(d));
            }
            // A stream gets a well-formed empty output.
            None => writer.finish(dim)?,
        }
        return Err(Error::invalid_input(format!(
            "all {skipped} inputs were skipped, none was embedded (first: {}); nothing was written",
            skipped_inputs.first().map_or("?", String::as_str)
        )));
    }
    writer.finish(dim)?;
    if let Some(d) = dest {
        let _ = std::fs::remove_file(checkpoint_path(d));
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Summary {
        rows,
        skipped,
        skipped_inputs,
        tokens,
        requests: counting.requests(),
        retries: crate::retries::count(),
        failed_requests: counting.failures(),
        seconds,
        rows_per_second: (rows - start_row) as f64 / seconds.max(1e-9),
        resumed_from_row: resumed.map(|_| start_row),
        output: args
            .output
            .as_deref()
            .filter(|_| target != Dest::Stdout)
            .map(|d| d.display().to_string()),
        note: None,
        cache: None,
    })
}

/// Refuses an output that is one of the inputs (or its partial file is):
/// writing it would destroy the input. Compared by device and inode, so a
/// symlink, a hard link or stdin redirected from the file are caught too.
fn refuse_an_input_as_output(dest: &Path, sources: &[Source]) -> Result<()> {
    let outputs: Vec<(u64, u64)> = [dest.to_owned(), with_suffix(dest, ".partial")]
        .iter()
        .filter_map(|p| identity(p))
        .collect();
    if outputs.is_empty() {
        return Ok(());
    }
    for s in sources {
        let (path, name) = match s {
            Source::File { path, .. } => (path.as_path(), path.display().to_string()),
            Source::Stdin { .. } => (Path::new("/dev/stdin"), "stdin".to_owned()),
            Source::Args(_) => continue,
        };
        if identity(path).is_some_and(|id| outputs.contains(&id)) {
            return Err(Error::invalid_input(format!(
                "the output {} is also an input ({name}): writing it would destroy the input; \
                 choose another --output",
                dest.display()
            )));
        }
    }
    Ok(())
}

/// The number of inputs, when cheap to know (for the progress bar).
fn total_items(args: &EmbedArgs) -> Option<u64> {
    if !args.texts.is_empty() {
        return Some(args.texts.len() as u64);
    }
    let mut total = 0;
    for p in &args.input {
        total += Source::path(p, args.input_format).count_items()?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_due_after_a_second_or_32_mib() {
        let ms = Duration::from_millis;
        assert!(!checkpoint_due(ms(999), (32 << 20) - 1));
        assert!(checkpoint_due(ms(1000), 0));
        // A fast job (a cached re-run writes ~500 MB/s) syncs as it goes.
        assert!(checkpoint_due(ms(60), 32 << 20));
    }
}
