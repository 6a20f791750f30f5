//! Writing vectors: JSONL, JSON, `.npy` (float32, N×D), Parquet and Arrow
//! IPC (index, id, fixed-size list of float32).
//!
//! A file output is written to `<name>.partial` and renamed only when every
//! row is written, so a file under the requested name is always complete.
//! The job saves a checkpoint after syncing the partial file: on `--resume`
//! the partial file is cut back to the checkpoint's length, which always
//! ends on a whole row, so a crash never leaves a half-written row behind.
//! Parquet and Arrow cannot be appended to, so their rows are spooled as raw
//! float32 (plus a JSONL file of index and id) and converted at the end.
//!
//! Where `-o` leads is decided first ([`Dest::resolve`]): `-` and
//! `/dev/stdout` are stdout; a FIFO or a character device is written through
//! like stdout (Parquet and Arrow, which need a file to rename, are refused);
//! a symlink is followed, and its target is written (the link stays); a
//! directory, a block device or a socket is refused. A job holds an
//! exclusive lock on `<name>.partial` from its start to its end, so a second
//! job on the same output is refused instead of interleaving rows.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use embeddings::{Embeddings, Error, ErrorKind, OutputType, Result, RowRef};
use serde_json::value::RawValue;

use crate::args::Format;

/// Bytes reserved for the `.npy` header, so it can be rewritten in place
/// with the final shape (format version 1.0; a multiple of 64).
const NPY_HEADER_LEN: usize = 128;
/// Rows per record batch when converting the spool to Parquet or Arrow.
const CONVERT_ROWS: usize = 8192;

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("cannot {what} {}: {e}", path.display()),
    )
}

/// `<path><suffix>`.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Where `-o` leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dest {
    /// Standard output: no `-o`, `-o -`, `-o /dev/stdout`.
    Stdout,
    /// A FIFO or a character device, written through like stdout.
    Stream(PathBuf),
    /// A regular file, there or not yet: written to `<path>.partial` and
    /// renamed into place. When `-o` names a symlink, this is its target.
    File(PathBuf),
}

impl Dest {
    /// Follows `-o` to what it names; refuses what cannot be written.
    pub(crate) fn resolve(output: Option<&Path>) -> Result<Dest> {
        use std::os::unix::fs::FileTypeExt;
        let Some(given) = output else {
            return Ok(Dest::Stdout);
        };
        if ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"]
            .iter()
            .any(|s| given.as_os_str() == *s)
        {
            return Ok(Dest::Stdout);
        }
        let path = follow_links(given)?;
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Dest::File(path)),
            Err(e) => {
                return Err(Error::invalid_input(format!(
                    "cannot write output file {}: {e}",
                    given.display()
                )));
            }
        };
        let t = meta.file_type();
        if t.is_file() {
            Ok(Dest::File(path))
        } else if t.is_fifo() || t.is_char_device() {
            Ok(Dest::Stream(path))
        } else {
            let what = if t.is_dir() {
                "a directory"
            } else if t.is_block_device() {
                "a block device"
            } else {
                "a socket or another special file"
            };
            Err(Error::invalid_input(format!(
                "cannot write output file {}: it is {what}; name a file, a FIFO or `-` (stdout)",
                given.display()
            )))
        }
    }

    /// The regular file written (after following a symlink), if any.
    pub(crate) fn file(&self) -> Option<&Path> {
        match self {
            Dest::File(p) => Some(p),
            _ => None,
        }
    }
}

/// `path` with every symlink of its last component followed (the target of
/// a dangling link is where the file will be created, as a shell's `>` does).
fn follow_links(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_owned();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p).map_err(|e| {
                    Error::invalid_input(format!("cannot follow the symlink {}: {e}", p.display()))
                })?;
                p = match p.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(Error::invalid_input(format!(
        "cannot write output file {}: too many levels of symbolic links",
        path.display()
    )))
}

/// `(device, inode)` of what `path` names (following symlinks), if it exists.
pub(crate) fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Takes the output's lock: `<dest>.partial`, opened (created when absent,
/// never truncated here) and locked exclusively for as long as the returned
/// file is open. A second job on the same output is refused.
pub(crate) fn lock_partial(dest: &Path) -> Result<File> {
    open_locked(&with_suffix(dest, ".partial"), dest, true)
}

/// Opens `partial` (creating it when `create`) and takes an exclusive lock
/// on it, or says that another job holds it. Nothing is truncated before the
/// lock is held.
fn open_locked(partial: &Path, dest: &Path, create: bool) -> Result<File> {
    use std::os::unix::fs::MetadataExt;
    for _ in 0..8 {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(partial)
            .map_err(|e| {
                if create {
                    Error::invalid_input(format!(
                        "cannot write output file {}: {e}",
                        dest.display()
                    ))
                } else {
                    io_err("reopen", partial, e)
                }
            })?;
        match fs4::FileExt::try_lock(&f) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(Error::invalid_input(format!(
                    "another embed job is writing {} (it holds {}); wait for it to finish or \
                     choose another --output",
                    dest.display(),
                    partial.display()
                )));
            }
            Err(fs4::TryLockError::Error(e)) => return Err(io_err("lock", partial, e)),
        }
        // The job that held the lock may have renamed the file into place
        // between our open and our lock: then lock the new one.
        let held = f.metadata().map_err(|e| io_err("read", partial, e))?;
        if identity(partial) == Some((held.dev(), held.ino())) {
            return Ok(f);
        }
    }
    Err(Error::invalid_input(format!(
        "another embed job keeps replacing {}; choose another --output",
        partial.display()
    )))
}

enum Sink {
    /// Stdout, a FIFO or a character device: rows are written through.
    Stream {
        w: BufWriter<Box<dyn Write + Send>>,
        name: String,
    },
    /// `.npy` to a stream: the header needs the row count, so rows are held.
    Memory {
        buf: Vec<u8>,
        out: Box<dyn Write + Send>,
        name: String,
    },
    File {
        w: BufWriter<File>,
        partial: PathBuf,
        dest: PathBuf,
    },
}

impl Sink {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Stream { w, .. } => w,
            Sink::Memory { buf, .. } => buf,
            Sink::File { w, .. } => w,
        }
    }
}

/// Where the vectors go, in which format.
pub(crate) struct Writer {
    sink: Sink,
    /// Parquet/Arrow: index and id of each spooled row.
    ids: Option<(BufWriter<File>, PathBuf)>,
    format: Format,
    /// f32, or bytes of a quantized type.
    output: OutputType,
    rows: u64,
    /// Elements per row (floats, or bytes: `dim / 8` rounded up when packed).
    dim: Option<usize>,
    buf: Vec<u8>,
    /// Bytes handed to the sink by this process.
    written: u64,
    /// Digests of what the partial file (and the ids spool) hold.
    hash: Digest,
    ids_hash: Digest,
}

/// What a checkpoint needs to cut the output back to a whole row, and to
/// know that the partial file up to there is what this job wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Position {
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
    pub(crate) id_bytes: u64,
    /// Elements per row.
    pub(crate) dim: Option<usize>,
    /// XXH3-128 of the partial file's first `bytes` bytes, as hex.
    pub(crate) digest: String,
    /// XXH3-128 of the ids spool's first `id_bytes` bytes (Parquet, Arrow).
    #[serde(default)]
    pub(crate) ids_digest: String,
}

/// The running digest of an output file: XXH3-128, which proves on
/// `--resume` that the partial file is what the job wrote (it guards
/// against torn and changed files, not against an adversary). It runs at
/// memory speed, so a job that writes hundreds of MB a second (a cached
/// re-run) does not spend its time hashing, as it did with BLAKE3.
#[derive(Clone)]
struct Digest(Box<xxhash_rust::xxh3::Xxh3>);

impl Digest {
    fn new() -> Self {
        Digest(Box::new(xxhash_rust::xxh3::Xxh3::new()))
    }

    fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything fed so far, as hex.
    fn hex(&self) -> String {
        format!("{:032x}", self.0.digest128())
    }
}

/// Reads `len` bytes of `f` from its start: their hash and newline count.
fn hash_prefix(f: &mut File, len: u64, p: &Path) -> Result<(Digest, u64)> {
    f.seek(SeekFrom::Start(0))
        .map_err(|e| io_err("seek", p, e))?;
    let mut hasher = Digest::new();
    let mut newlines = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = f.read(&mut buf[..want]).map_err(|e| io_err("read", p, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        newlines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        left -= n as u64;
    }
    Ok((hasher, newlines))
}

/// Files flushed by [`Writer::flush`] that a checkpoint must see on disk
/// before it is saved.
pub(crate) struct PendingSync {
    files: Vec<(File, PathBuf)>,
}

impl PendingSync {
    /// `fdatasync`s each file (blocking: call it off the async threads when
    /// the job goes on meanwhile).
    pub(crate) fn sync(self) -> Result<()> {
        for (f, p) in self.files {
            f.sync_data().map_err(|e| io_err("sync", &p, e))?;
        }
        Ok(())
    }
}

impl Writer {
    /// A new output: a file's `<dest>.partial` is created (emptied when
    /// there) once its lock is held.
    /// `locked`: the file output's [`lock_partial`] (taken here when `None`).
    pub(crate) fn create(
        dest: &Dest,
        format: Format,
        output: OutputType,
        locked: Option<File>,
    ) -> Result<Self> {
        let spooled = matches!(format, Format::Parquet | Format::Arrow);
        let stream = |out: Box<dyn Write + Send>, name: String| {
            if format == Format::Npy {
                Sink::Memory {
                    buf: Vec::new(),
                    out,
                    name,
                }
            } else {
                Sink::Stream {
                    w: BufWriter::with_capacity(1 << 16, out),
                    name,
                }
            }
        };
        let sink = match dest {
            Dest::Stdout if spooled => {
                return Err(Error::invalid_input(
                    "parquet and arrow output need --output FILE",
                ));
            }
            Dest::Stream(p) if spooled => {
                return Err(Error::invalid_input(format!(
                    "parquet and arrow output needs a regular file (it is written whole, then \
                     renamed into place), and {} is a FIFO or a device; use jsonl, json or npy",
                    p.display()
                )));
            }
            Dest::Stdout => stream(Box::new(std::io::stdout()), "stdout".to_owned()),
            Dest::Stream(p) => {
                // Opening a FIFO waits for its reader, as a shell's `>` does.
                let f = OpenOptions::new().write(true).open(p).map_err(|e| {
                    Error::invalid_input(format!("cannot write output file {}: {e}", p.display()))
                })?;
                stream(Box::new(f), p.display().to_string())
            }
            Dest::File(dest) => {
                let partial = with_suffix(dest, ".partial");
                let f = match locked {
                    Some(f) => f,
                    None => lock_partial(dest)?,
                };
                f.set_len(0).map_err(|e| io_err("truncate", &partial, e))?;
                Sink::File {
                    w: BufWriter::with_capacity(1 << 16, f),
                    partial,
                    dest: dest.to_owned(),
                }
            }
        };
        let ids = match (&sink, spooled) {
            (Sink::File { partial, .. }, true) => {
                let p = with_suffix(partial, ".ids");
                let f = File::create(&p).map_err(|e| io_err("create", &p, e))?;
                Some((BufWriter::new(f), p))
            }
            _ => None,
        };
        let mut w = Writer {
            sink,
            ids,
            format,
            output,
            rows: 0,
            dim: None,
            buf: Vec::with_capacity(1 << 12),
            written: 0,
            hash: Digest::new(),
            ids_hash: Digest::new(),
        };
        match format {
            Format::Npy => w.put(&[b' '; NPY_HEADER_LEN])?,
            Format::Json => w.put(b"[")?,
            _ => {}
        }
        Ok(w)
    }

    /// Reopens `<output>.partial` cut back to `at` (a checkpoint), once its
    /// lock is held and its content up to `at` is proven to be what the
    /// checkpoint saved (its hash, and a length that fits the rows).
    pub(crate) fn resume(
        dest: &Path,
        format: Format,
        output: OutputType,
        at: &Position,
        locked: File,
    ) -> Result<Self> {
        let partial = with_suffix(dest, ".partial");
        let mismatch = |p: &Path, why: String| {
            Error::invalid_input(format!(
                "cannot resume: {} does not match its checkpoint ({why}); run without --resume \
                 to start again",
                p.display()
            ))
        };
        let reopen = |p: &Path, len: u64, digest: &str, locked: Option<File>| {
            let mut f = match locked {
                Some(f) => f,
                None => OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(p)
                    .map_err(|e| io_err("reopen", p, e))?,
            };
            let have = f.metadata().map_err(|e| io_err("read", p, e))?.len();
            if have < len {
                return Err(mismatch(
                    p,
                    format!("it holds {have} bytes, fewer than the {len} saved"),
                ));
            }
            let (hasher, newlines) = hash_prefix(&mut f, len, p)?;
            if hasher.hex() != digest {
                return Err(mismatch(
                    p,
                    format!("its first {len} bytes are not those the job wrote"),
                ));
            }
            Ok((f, hasher, newlines))
        };
        // Cut back to the checkpoint (a torn row after it goes), once
        // everything is checked.
        let cut = |f: &mut File, len: u64, p: &Path| -> Result<()> {
            f.set_len(len).map_err(|e| io_err("truncate", p, e))?;
            f.seek(SeekFrom::End(0)).map_err(|e| io_err("seek", p, e))?;
            Ok(())
        };
        let (mut f, hash, newlines) = reopen(&partial, at.bytes, &at.digest, Some(locked))?;
        let row_bytes = (at.dim.unwrap_or(0) * output.element_size()) as u64;
        // The saved length must be that of the saved rows.
        let fits = match format {
            Format::Npy => at.bytes == NPY_HEADER_LEN as u64 + at.rows * row_bytes,
            Format::Parquet | Format::Arrow => at.bytes == at.rows * row_bytes,
            Format::Jsonl => newlines == at.rows,
            Format::Json => at.bytes >= 1 && newlines == at.rows.saturating_sub(1),
        };
        if !fits {
            return Err(mismatch(
                &partial,
                format!("{} bytes cannot hold the {} rows saved", at.bytes, at.rows),
            ));
        }
        let (ids, ids_hash) = if matches!(format, Format::Parquet | Format::Arrow) {
            let p = with_suffix(&partial, ".ids");
            let (mut f, h, lines) = reopen(&p, at.id_bytes, &at.ids_digest, None)?;
            if lines != at.rows {
                return Err(mismatch(
                    &p,
                    format!("{lines} ids for {} rows saved", at.rows),
                ));
            }
            cut(&mut f, at.id_bytes, &p)?;
            (Some((BufWriter::new(f), p)), h)
        } else {
            (None, Digest::new())
        };
        cut(&mut f, at.bytes, &partial)?;
        Ok(Writer {
            sink: Sink::File {
                w: BufWriter::with_capacity(1 << 16, f),
                partial,
                dest: dest.to_owned(),
            },
            ids,
            format,
            output,
            rows: at.rows,
            dim: at.dim,
            buf: Vec::with_capacity(1 << 12),
            written: 0,
            hash,
            ids_hash,
        })
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        if let Sink::File { .. } = self.sink {
            self.hash.update(bytes);
        }
        self.written += bytes.len() as u64;
        self.sink
            .writer()
            .write_all(bytes)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot write output: {e}")))
    }

    /// Bytes written by this process (not counting a resumed prefix).
    pub(crate) fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Rows written so far.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends the rows of one batch, `meta` giving each one's input
    /// position and id: rows of the raw formats go out as one write of the
    /// batch's buffer.
    pub(crate) fn write_batch<'m>(
        &mut self,
        rows: &Embeddings,
        meta: impl ExactSizeIterator<Item = (u64, Option<&'m RawValue>)>,
    ) -> Result<()> {
        if meta.len() != rows.len() {
            return Err(Error::invalid_response(format!(
                "{} rows for a batch of {} inputs",
                rows.len(),
                meta.len()
            )));
        }
        if rows.is_empty() {
            return Ok(());
        }
        if !matches!(self.format, Format::Npy | Format::Parquet | Format::Arrow) {
            for (i, (index, id)) in meta.enumerate() {
                self.write(index, id, rows.row_ref(i))?;
            }
            return Ok(());
        }
        // Rows of one batch share their type and length.
        self.check_row(rows.row_ref(0))?;
        self.put(&rows.le_bytes())?;
        for (index, id) in meta {
            self.write_id(index, id)?;
            self.rows += 1;
        }
        Ok(())
    }

    /// Refuses a row of another type or length than those before it.
    fn check_row(&mut self, row: RowRef<'_>) -> Result<()> {
        let len = match row {
            RowRef::F32(r) => r.len(),
            RowRef::I8(r) => r.len(),
            RowRef::U8(r) => r.len(),
        };
        let expected = matches!(
            (row, self.output),
            (RowRef::F32(_), OutputType::F32)
                | (RowRef::I8(_), OutputType::Int8 | OutputType::Binary)
                | (RowRef::U8(_), OutputType::Uint8 | OutputType::Ubinary)
        );
        if !expected {
            return Err(Error::invalid_response(format!(
                "a row of another type than the {} asked for",
                self.output
            )));
        }
        match self.dim {
            None => self.dim = Some(len),
            Some(d) if d != len => {
                return Err(Error::new(
                    ErrorKind::DimensionMismatch,
                    format!("a row of {len} elements after rows of {d}"),
                ));
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Appends one row (`index`: its input position) of the writer's output type.
    pub(crate) fn write(
        &mut self,
        index: u64,
        id: Option<&RawValue>,
        row: RowRef<'_>,
    ) -> Result<()> {
        self.check_row(row)?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let r = match self.format {
            // Raw rows: their bytes as they are (little-endian), no copy.
            Format::Npy | Format::Parquet | Format::Arrow => self.put(&row.le_bytes()),
            Format::Jsonl | Format::Json => {
                if self.format == Format::Json && self.rows > 0 {
                    buf.extend_from_slice(b",\n");
                }
                json_row(&mut buf, index, id, row);
                if self.format == Format::Jsonl {
                    buf.push(b'\n');
                }
                self.put(&buf)
            }
        };
        self.buf = buf;
        r?;
        self.write_id(index, id)?;
        self.rows += 1;
        Ok(())
    }

    /// Parquet/Arrow: spools a row's input position and id.
    fn write_id(&mut self, index: u64, id: Option<&RawValue>) -> Result<()> {
        if let Some((w, p)) = &mut self.ids {
            let mut line = Vec::with_capacity(32);
            let _ = write!(line, "{index}");
            if let Some(id) = id {
                line.push(b'\t');
                line.extend_from_slice(id.get().as_bytes());
            }
            line.push(b'\n');
            self.ids_hash.update(&line);
            w.write_all(&line).map_err(|e| io_err("write", p, e))?;
        }
        Ok(())
    }

    /// Flushes and syncs the file output; returns the position a checkpoint
    /// can cut back to. `None` for stdout.
    pub(crate) fn sync(&mut self) -> Result<Option<Position>> {
        let Some((position, pending)) = self.flush()? else {
            return Ok(None);
        };
        pending.sync()?;
        Ok(Some(position))
    }

    /// Flushes the file output to the OS: the position a checkpoint can cut
    /// back to once the returned [`PendingSync`] has synced the files (on
    /// another thread, while rows go on being written). `None` for stdout.
    pub(crate) fn flush(&mut self) -> Result<Option<(Position, PendingSync)>> {
        let Sink::File { w, partial, .. } = &mut self.sink else {
            return Ok(None);
        };
        let mut files = Vec::with_capacity(2);
        let mut flushed = |w: &mut BufWriter<File>, p: &Path| -> Result<u64> {
            w.flush().map_err(|e| io_err("write", p, e))?;
            let f = w.get_ref();
            let len = f.metadata().map_err(|e| io_err("read", p, e))?.len();
            let clone = f.try_clone().map_err(|e| io_err("sync", p, e))?;
            files.push((clone, p.to_owned()));
            Ok(len)
        };
        let bytes = flushed(w, partial)?;
        let id_bytes = match &mut self.ids {
            Some((w, p)) => flushed(w, p)?,
            None => 0,
        };
        Ok(Some((
            Position {
                rows: self.rows,
                bytes,
                id_bytes,
                dim: self.dim,
                digest: self.hash.hex(),
                ids_digest: self.ids_hash.hex(),
            },
            PendingSync { files },
        )))
    }

    /// Gives the output up: a file output's partial files are removed.
    pub(crate) fn discard(self) {
        if let Sink::File { partial, .. } = &self.sink {
            let _ = std::fs::remove_file(partial);
            if let Some((_, ids)) = &self.ids {
                let _ = std::fs::remove_file(ids);
            }
        }
    }

    /// Completes the output: npy header, closing bracket, or conversion to
    /// Parquet/Arrow; then renames the partial file into place. `dim` is the
    /// dimension of an output without rows (that of the rows otherwise).
    pub(crate) fn finish(mut self, dim: usize) -> Result<()> {
        if self.format == Format::Json {
            self.put(b"]\n")?;
        }
        let dim = self.dim.unwrap_or(self.output.row_len(dim));
        match &mut self.sink {
            Sink::Stream { w, name } => {
                w.flush().map_err(|e| io_err("write", Path::new(name), e))?;
            }
            Sink::Memory { buf, out, name } => {
                buf[..NPY_HEADER_LEN].copy_from_slice(&npy_header(self.rows, dim, self.output));
                out.write_all(buf)
                    .and_then(|()| out.flush())
                    .map_err(|e| io_err("write", Path::new(name), e))?;
            }
            Sink::File { w, partial, dest } => {
                w.flush().map_err(|e| io_err("write", partial, e))?;
                if self.format == Format::Npy {
                    let f = w.get_mut();
                    f.seek(SeekFrom::Start(0))
                        .and_then(|_| f.write_all(&npy_header(self.rows, dim, self.output)))
                        .map_err(|e| io_err("write", partial, e))?;
                }
                w.get_ref()
                    .sync_all()
                    .map_err(|e| io_err("sync", partial, e))?;
                if let Some((ids, ids_path)) = self.ids.take() {
                    drop(ids);
                    let converted = with_suffix(dest, ".converting");
                    convert(
                        self.format,
                        self.output,
                        partial,
                        &ids_path,
                        &converted,
                        dim,
                    )?;
                    std::fs::rename(&converted, &*dest).map_err(|e| io_err("rename", dest, e))?;
                    let _ = std::fs::remove_file(&*partial);
                    let _ = std::fs::remove_file(&ids_path);
                } else {
                    std::fs::rename(&*partial, &*dest).map_err(|e| io_err("rename", dest, e))?;
                }
            }
        }
        Ok(())
    }
}

/// `{"index":N[,"id":ID],"embedding":[..]}` with shortest round-trip floats,
/// or integers for the quantized types.
fn json_row(buf: &mut Vec<u8>, index: u64, id: Option<&RawValue>, row: RowRef<'_>) {
    buf.extend_from_slice(b"{\"index\":");
    let _ = write!(buf, "{index}");
    if let Some(id) = id {
        buf.extend_from_slice(b",\"id\":");
        buf.extend_from_slice(id.get().as_bytes());
    }
    buf.extend_from_slice(b",\"embedding\":[");
    fn list<T>(buf: &mut Vec<u8>, row: &[T], mut one: impl FnMut(&mut Vec<u8>, &T)) {
        for (i, x) in row.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            one(buf, x);
        }
    }
    match row {
        // serde_json writes finite f32 with the shortest representation that round-trips.
        RowRef::F32(r) => list(buf, r, |b, x| {
            serde_json::to_writer(&mut *b, x).ok();
        }),
        RowRef::I8(r) => list(buf, r, |b, x| {
            let _ = write!(b, "{x}");
        }),
        RowRef::U8(r) => list(buf, r, |b, x| {
            let _ = write!(b, "{x}");
        }),
    }
    buf.extend_from_slice(b"]}");
}

/// The NumPy dtype of a row element.
fn npy_descr(output: OutputType) -> &'static str {
    match output {
        OutputType::Int8 | OutputType::Binary => "|i1",
        OutputType::Uint8 | OutputType::Ubinary => "|u1",
        _ => "<f4",
    }
}

/// The 128-byte `.npy` v1.0 header for a (rows, dim) array of the output
/// type's elements (float32, int8 or uint8; packed bits: bytes).
pub(crate) fn npy_header(rows: u64, dim: usize, output: OutputType) -> [u8; NPY_HEADER_LEN] {
    let mut h = [b' '; NPY_HEADER_LEN];
    h[..6].copy_from_slice(b"\x93NUMPY");
    h[6] = 1;
    h[7] = 0;
    let len = (NPY_HEADER_LEN - 10) as u16;
    h[8..10].copy_from_slice(&len.to_le_bytes());
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({rows}, {dim}), }}",
        npy_descr(output)
    );
    h[10..10 + dict.len()].copy_from_slice(dict.as_bytes());
    h[NPY_HEADER_LEN - 1] = b'\n';
    h
}

/// Converts the raw spool (float32 rows + index/id lines) into Parquet or
/// Arrow IPC, `CONVERT_ROWS` rows at a time (bounded memory).
fn convert(
    format: Format,
    output: OutputType,
    spool: &Path,
    ids: &Path,
    dest: &Path,
    dim: usize,
) -> Result<()> {
    use arrow_array::builder::{StringBuilder, UInt64Builder};
    use arrow_array::{
        ArrayRef, FixedSizeListArray, Float32Array, Int8Array, RecordBatch, UInt8Array,
    };
    use arrow_schema::{DataType, Field, Schema};

    let arrow_err = |e: &dyn std::fmt::Display| {
        Error::new(
            ErrorKind::Internal,
            format!("cannot write {}: {e}", dest.display()),
        )
    };
    let element = match output {
        OutputType::F32 => DataType::Float32,
        OutputType::Int8 | OutputType::Binary => DataType::Int8,
        _ => DataType::UInt8,
    };
    let item = Arc::new(Field::new("item", element, false));
    let schema = Arc::new(Schema::new(vec![
        Field::new("index", DataType::UInt64, false),
        Field::new("id", DataType::Utf8, true),
        Field::new(
            "embedding",
            DataType::FixedSizeList(item.clone(), dim as i32),
            false,
        ),
    ]));
    let out = File::create(dest).map_err(|e| io_err("create", dest, e))?;
    enum W {
        Parquet(parquet::arrow::ArrowWriter<File>),
        Arrow(arrow_ipc::writer::FileWriter<File>),
    }
    let mut writer = match format {
        Format::Parquet => {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .build();
            W::Parquet(
                parquet::arrow::ArrowWriter::try_new(out, schema.clone(), Some(props))
                    .map_err(|e| arrow_err(&e))?,
            )
        }
        _ => W::Arrow(
            arrow_ipc::writer::FileWriter::try_new(out, &schema).map_err(|e| arrow_err(&e))?,
        ),
    };
    let mut rows_in = BufReader::with_capacity(
        1 << 16,
        File::open(spool).map_err(|e| io_err("read", spool, e))?,
    );
    let mut ids_in = BufReader::new(File::open(ids).map_err(|e| io_err("read", ids, e))?);
    let row_bytes = dim * output.element_size();
    let mut raw = vec![0u8; row_bytes * CONVERT_ROWS];
    let mut line = String::new();
    loop {
        // Fill up to CONVERT_ROWS whole rows.
        let mut filled = 0;
        while filled < raw.len() {
            let n = rows_in
                .read(&mut raw[filled..])
                .map_err(|e| io_err("read", spool, e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled % row_bytes.max(1) != 0 {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("{} does not hold whole rows", spool.display()),
            ));
        }
        let n = filled.checked_div(row_bytes).unwrap_or(0);
        if n == 0 {
            break;
        }
        let raw = &raw[..filled];
        let values: ArrayRef = match output {
            OutputType::F32 => Arc::new(Float32Array::from(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect::<Vec<f32>>(),
            )),
            OutputType::Int8 | OutputType::Binary => Arc::new(Int8Array::from(
                raw.iter().map(|&b| b as i8).collect::<Vec<i8>>(),
            )),
            _ => Arc::new(UInt8Array::from(raw.to_vec())),
        };
        let mut index = UInt64Builder::with_capacity(n);
        let mut id = StringBuilder::new();
        for _ in 0..n {
            line.clear();
            ids_in
                .read_line(&mut line)
                .map_err(|e| io_err("read", ids, e))?;
            let l = line.trim_end_matches('\n');
            let (i, rest) = match l.split_once('\t') {
                Some((i, rest)) => (i, Some(rest)),
                None => (l, None),
            };
            let i: u64 = i.parse().map_err(|_| {
                Error::new(ErrorKind::Internal, format!("{} is damaged", ids.display()))
            })?;
            index.append_value(i);
            match rest {
                // A string id is stored as the string; any other JSON id as its JSON text.
                Some(r) => match serde_json::from_str::<String>(r) {
                    Ok(s) => id.append_value(s),
                    Err(_) => id.append_value(r),
                },
                None => id.append_null(),
            }
        }
        let list = FixedSizeListArray::try_new(item.clone(), dim as i32, values, None)
            .map_err(|e| arrow_err(&e))?;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(index.finish()) as ArrayRef,
                Arc::new(id.finish()),
                Arc::new(list),
            ],
        )
        .map_err(|e| arrow_err(&e))?;
        match &mut writer {
            W::Parquet(w) => w.write(&batch).map_err(|e| arrow_err(&e))?,
            W::Arrow(w) => w.write(&batch).map_err(|e| arrow_err(&e))?,
        }
    }
    match writer {
        W::Parquet(w) => {
            w.close().map_err(|e| arrow_err(&e))?;
        }
        W::Arrow(mut w) => w.finish().map_err(|e| arrow_err(&e))?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_names_the_shape() {
        let h = npy_header(1_000_000, 1536, OutputType::F32);
        assert_eq!(&h[..6], b"\x93NUMPY");
        assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize + 10, 128);
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.contains("'shape': (1000000, 1536)"), "{text}");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn json_rows_round_trip_f32_exactly() {
        let row = [0.1f32, -1.0e-8, 3.4028235e38, 0.0];
        let mut buf = Vec::new();
        json_row(&mut buf, 7, None, RowRef::F32(&row));
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["index"], 7);
        let back: Vec<f32> = v["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(back, row);
    }

    #[test]
    fn resume_cuts_back_to_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("o.jsonl");
        let mut w = Writer::create(
            &Dest::File(dest.clone()),
            Format::Jsonl,
            OutputType::F32,
            None,
        )
        .unwrap();
        w.write(0, None, RowRef::F32(&[1.0])).unwrap();
        let at = w.sync().unwrap().unwrap();
        w.write(1, None, RowRef::F32(&[2.0])).unwrap();
        w.sync().unwrap();
        drop(w);
        // Simulate a crash in the middle of a row.
        let partial = with_suffix(&dest, ".partial");
        let mut f = OpenOptions::new().append(true).open(&partial).unwrap();
        f.write_all(b"{\"index\":2,\"embe").unwrap();
        drop(f);
        let lock = lock_partial(&dest).unwrap();
        let mut w = Writer::resume(&dest, Format::Jsonl, OutputType::F32, &at, lock).unwrap();
        assert_eq!(w.rows(), 1);
        w.write(1, None, RowRef::F32(&[3.0])).unwrap();
        w.finish(1).unwrap();
        let text = std::fs::read_to_string(&dest).unwrap();
        assert_eq!(
            text,
            "{\"index\":0,\"embedding\":[1.0]}\n{\"index\":1,\"embedding\":[3.0]}\n"
        );
        assert!(!partial.exists());
    }
}
