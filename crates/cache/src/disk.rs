//! The disk store: per space an append-only file of fixed-size records, and
//! a redb index from key to record.
//!
//! Layout of a directory:
//!
//! ```text
//! index.redb                    key -> (space, row, write sequence); spaces;
//!                               counters; the directory's format
//! rows-<space id>-<gen>.bin     record i at i * (40 + row bytes):
//!                               [key: 32][row: little-endian bytes][checksum: 8]
//! ```
//!
//! Formats: the checksum of a record is, in format 2 (what this version
//! writes), xxh3-64 over the record's key and row bytes (little-endian); in
//! format 1 (directories written before the format was recorded), the first
//! 8 bytes of BLAKE3 keyed by the key over the row. Both cover key and row,
//! which is what a lookup needs: the checksum detects torn, garbled or
//! foreign bytes (the cache is no defence against someone who can write the
//! directory, so a cryptographic hash buys nothing here), and xxh3 costs a
//! fraction of BLAKE3 over a 6 KiB row. A format-1 directory is read and
//! written as such until `compact` or `clear`, which rewrite it as format 2
//! in the same index commit that switches the files; a directory of a newer
//! format is refused with a configuration error at open.
//!
//! Crash safety (kill -9 at any moment): records are written (and, with
//! `fsync = "always"`, synced) before the index commit that makes them
//! visible, and the index says where each file's committed rows end; bytes
//! past that end are a torn or uncommitted tail, cut at the next open and
//! overwritten by the next write. Every lookup also checks that the record
//! holds the key it was asked for and that its checksum (over key and row)
//! matches, so a record that is torn, stale (after a compaction the
//! index did not see) or lost by a power failure is a miss, never a wrong row.
//!
//! Size limit: past `max_bytes` the store compacts itself down to half of
//! it, keeping the most recently written rows (first in, first out).
//! Compaction writes new generation files, commits the index that points at
//! them, then deletes the old ones; files of any other generation are
//! removed at open.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use embeddings_core::{Error, ErrorKind, OutputType, Result};
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::config::FsyncPolicy;
use crate::key::{Key, Space};
use crate::store::{Store, StoreStats, check_put, store_error};

/// key -> (space number, row, write sequence)
const ROWS: TableDefinition<&[u8; 32], (u32, u64, u64)> = TableDefinition::new("rows");
/// space number -> encoded [`SpaceMeta`]
const SPACES: TableDefinition<u32, &[u8]> = TableDefinition::new("spaces");
/// counters: "seq", "next_space"; "format" (absent: format 1)
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The on-disk format of a directory (the record checksum; see the module
/// documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// BLAKE3 keyed by the key over the row, first 8 bytes.
    V1 = 1,
    /// xxh3-64 over key and row, little-endian.
    V2 = 2,
}

/// The format this version writes.
const FORMAT: Format = Format::V2;

const KEY_LEN: usize = 32;
const SUM_LEN: usize = 8;
const INDEX_FILE: &str = "index.redb";

/// Options of a [`DiskStore`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskOptions {
    /// Bytes of row files beyond which the store compacts itself (FIFO);
    /// `None`: unbounded.
    pub max_bytes: Option<u64>,
    /// When writes are forced to stable storage.
    pub fsync: FsyncPolicy,
}

impl DiskOptions {
    /// Options with a size limit and an fsync policy.
    pub fn new(max_bytes: Option<u64>, fsync: FsyncPolicy) -> DiskOptions {
        DiskOptions { max_bytes, fsync }
    }
}

/// What the index knows of one space.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SpaceMeta {
    id: [u8; 32],
    generation: u64,
    next_row: u64,
    row_bytes: u64,
    dimension: u64,
    output: u8,
    fingerprint: String,
}

impl SpaceMeta {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(80 + self.fingerprint.len());
        v.extend_from_slice(&self.id);
        v.extend_from_slice(&self.generation.to_le_bytes());
        v.extend_from_slice(&self.next_row.to_le_bytes());
        v.extend_from_slice(&self.row_bytes.to_le_bytes());
        v.extend_from_slice(&self.dimension.to_le_bytes());
        v.push(self.output);
        v.extend_from_slice(self.fingerprint.as_bytes());
        v
    }

    fn decode(b: &[u8]) -> Option<SpaceMeta> {
        let u = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        Some(SpaceMeta {
            id: b.get(..32)?.try_into().ok()?,
            generation: u(32)?,
            next_row: u(40)?,
            row_bytes: u(48)?,
            dimension: u(56)?,
            output: *b.get(64)?,
            fingerprint: String::from_utf8_lossy(b.get(65..)?).into_owned(),
        })
    }

    fn record_len(&self) -> u64 {
        KEY_LEN as u64 + self.row_bytes + SUM_LEN as u64
    }
}

fn output_code(t: OutputType) -> u8 {
    OutputType::ALL
        .iter()
        .position(|x| *x == t)
        .map_or(255, |i| i as u8)
}

/// One space's open row file.
#[derive(Debug)]
struct SpaceFile {
    no: u32,
    meta: SpaceMeta,
    file: File,
    /// The checksum of its records.
    format: Format,
    /// Held around a seek and a read of `file` (the handles of one space
    /// share their file offset).
    cursor: Arc<Mutex<()>>,
}

impl SpaceFile {
    /// Reads `len` bytes at `offset` into `buf` (empty, with that capacity)
    /// without zeroing them first; fewer at the end of the file.
    fn read_into(&self, buf: &mut Vec<u8>, offset: u64, len: usize) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let _c = self.cursor.lock().unwrap_or_else(PoisonError::into_inner);
        let mut f = &self.file;
        f.seek(SeekFrom::Start(offset))?;
        f.take(len as u64).read_to_end(buf)?;
        Ok(())
    }
}

#[derive(Debug)]
struct State {
    by_no: HashMap<u32, Arc<SpaceFile>>,
    by_id: HashMap<[u8; 32], u32>,
    /// The directory's format (that of new spaces too).
    format: Format,
}

impl Default for State {
    fn default() -> Self {
        State {
            by_no: HashMap::new(),
            by_id: HashMap::new(),
            format: FORMAT,
        }
    }
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    db: Database,
    options: DiskOptions,
    state: RwLock<State>,
    /// One writer at a time (puts, compaction, clear).
    write: Mutex<()>,
}

/// Rows in a directory, surviving restarts and crashes (see the module
/// documentation for the layout and the guarantees).
///
/// Opening the same directory twice in one process shares one store; another
/// process opening it while this one has it open gets an error (redb's lock).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use embeddings_cache::{DiskOptions, DiskStore, Space, Store};
/// use embeddings_core::{InputType, OutputType, ProviderInfo};
///
/// let dir = std::env::temp_dir().join(format!("embeddings-cache-doc-{}", std::process::id()));
/// let store = DiskStore::open(&dir, DiskOptions::default()).unwrap();
/// let space = Space::new(&ProviderInfo::new("mock", "mock", 2), 2, OutputType::F32);
/// let key = space.key(InputType::Document, "hello");
/// let row = bytes::Bytes::from(vec![0u8; 8]);
/// store.put(&space, &[key], &[row.clone()]).await.unwrap();
/// assert_eq!(store.get(&space, &[key]).await.unwrap(), vec![Some(row)]);
/// store.clear().await.unwrap();
/// assert_eq!(store.get(&space, &[key]).await.unwrap(), vec![None]);
/// # drop(store); std::fs::remove_dir_all(&dir).unwrap();
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct DiskStore {
    inner: Arc<Inner>,
}

fn io(what: impl std::fmt::Display) -> Error {
    store_error("disk", what)
}

static OPEN: Mutex<Vec<(PathBuf, Weak<Inner>)>> = Mutex::new(Vec::new());

fn file_name(id: &[u8; 32], generation: u64) -> String {
    let mut s = String::from("rows-");
    for b in &id[..16] {
        s.push_str(&format!("{b:02x}"));
    }
    s.push_str(&format!("-{generation}.bin"));
    s
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(unix)]
fn write_at(f: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, offset)
}

#[cfg(windows)]
fn read_at(f: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(windows)]
fn write_at(f: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_write(buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// The checksum of a record whose key and row are `head` (`[key][row]`).
fn checksum(format: Format, head: &[u8]) -> [u8; SUM_LEN] {
    match format {
        Format::V2 => xxhash_rust::xxh3::xxh3_64(head).to_le_bytes(),
        Format::V1 => {
            let mut key = [0u8; KEY_LEN];
            key.copy_from_slice(&head[..KEY_LEN]);
            let mut out = [0u8; SUM_LEN];
            out.copy_from_slice(&blake3::keyed_hash(&key, &head[KEY_LEN..]).as_bytes()[..SUM_LEN]);
            out
        }
    }
}

fn encode_record(format: Format, buf: &mut Vec<u8>, key: &[u8; 32], row: &[u8]) {
    let start = buf.len();
    buf.extend_from_slice(key);
    buf.extend_from_slice(row);
    let sum = checksum(format, &buf[start..]);
    buf.extend_from_slice(&sum);
}

/// Whether a record read back is whole and holds `key`.
fn check_record(format: Format, rec: &[u8], key: &[u8; 32], row_bytes: usize) -> bool {
    rec.len() == KEY_LEN + row_bytes + SUM_LEN
        && &rec[..KEY_LEN] == key
        && rec[KEY_LEN + row_bytes..] == checksum(format, &rec[..KEY_LEN + row_bytes])
}

impl Inner {
    fn open_file(&self, meta: &SpaceMeta) -> Result<File> {
        let path = self.dir.join(file_name(&meta.id, meta.generation));
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(format!("cannot open {}: {e}", path.display())))
    }

    fn load(&self, format: Format) -> Result<()> {
        let txn = self.db.begin_read().map_err(io)?;
        let spaces = txn.open_table(SPACES).map_err(io)?;
        let mut state = State {
            format,
            ..State::default()
        };
        let mut keep: Vec<String> = Vec::new();
        for entry in spaces.iter().map_err(io)? {
            let (no, meta) = entry.map_err(io)?;
            let Some(meta) = SpaceMeta::decode(meta.value()) else {
                continue;
            };
            let file = self.open_file(&meta)?;
            // The committed rows end here; anything after is a torn or
            // uncommitted tail: cut it, the next write goes there.
            let end = meta.next_row * meta.record_len();
            let len = file.metadata().map_err(io)?.len();
            if len > end {
                file.set_len(end).map_err(io)?;
            }
            keep.push(file_name(&meta.id, meta.generation));
            state.by_id.insert(meta.id, no.value());
            state.by_no.insert(
                no.value(),
                Arc::new(SpaceFile {
                    no: no.value(),
                    meta,
                    file,
                    format,
                    cursor: Arc::default(),
                }),
            );
        }
        // Files of other generations: an interrupted compaction or clear.
        if let Ok(dir) = fs::read_dir(&self.dir) {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("rows-") && name.ends_with(".bin") && !keep.contains(&name) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = state;
        Ok(())
    }

    fn durability(&self) -> Durability {
        match self.options.fsync {
            FsyncPolicy::Always => Durability::Immediate,
            FsyncPolicy::Never => Durability::Eventual,
        }
    }

    fn get(&self, space: &Space, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        let mut out = vec![None; keys.len()];
        let sf = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            match state
                .by_id
                .get(space.id())
                .and_then(|no| state.by_no.get(no))
            {
                Some(sf) => sf.clone(),
                None => return Ok(out),
            }
        };
        let row_bytes = space.row_bytes();
        if sf.meta.row_bytes != row_bytes as u64 {
            return Ok(out);
        }
        let rec_len = sf.meta.record_len() as usize;
        // Index lookups in key order (B-tree locality), then the records in
        // file order, adjacent ones read with one call (a re-run reads the
        // file nearly sequentially).
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_unstable_by_key(|&i| keys[i]);
        let mut found: Vec<(u64, usize)> = Vec::with_capacity(keys.len());
        {
            let txn = self.db.begin_read().map_err(io)?;
            let rows = txn.open_table(ROWS).map_err(io)?;
            for i in order {
                if let Some(v) = rows.get(keys[i].as_bytes()).map_err(io)? {
                    let (no, row, _) = v.value();
                    if no == sf.no {
                        found.push((row, i));
                    }
                }
            }
        }
        found.sort_unstable();
        const MAX_RUN: usize = 256;
        let mut at = 0;
        while at < found.len() {
            let mut end = at + 1;
            while end < found.len() && end - at < MAX_RUN && found[end].0 == found[end - 1].0 + 1 {
                end += 1;
            }
            let first = found[at].0;
            let len = (end - at) * rec_len;
            let mut buf = Vec::with_capacity(len);
            if sf.read_into(&mut buf, first * rec_len as u64, len).is_ok() && buf.len() == len {
                let buf = Bytes::from(buf);
                for (j, &(_, i)) in found[at..end].iter().enumerate() {
                    let rec = buf.slice(j * rec_len..(j + 1) * rec_len);
                    if check_record(sf.format, &rec, keys[i].as_bytes(), row_bytes) {
                        out[i] = Some(rec.slice(KEY_LEN..KEY_LEN + row_bytes));
                    }
                }
            } else {
                // A short file (a lost tail): read one by one, the rest are misses.
                for &(row, i) in &found[at..end] {
                    let mut rec = vec![0u8; rec_len];
                    if read_at(&sf.file, &mut rec, row * rec_len as u64).is_ok()
                        && check_record(sf.format, &rec, keys[i].as_bytes(), row_bytes)
                    {
                        out[i] = Some(Bytes::from(rec).slice(KEY_LEN..KEY_LEN + row_bytes));
                    }
                }
            }
            at = end;
        }
        Ok(out)
    }

    fn put(&self, space: &Space, keys: &[Key], rows: &[Bytes]) -> Result<()> {
        let _w = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let txn = self.db.begin_write().map_err(io)?;
        let (sf, total_after) = {
            let mut index = txn.open_table(ROWS).map_err(io)?;
            let mut spaces = txn.open_table(SPACES).map_err(io)?;
            let mut meta_t = txn.open_table(META).map_err(io)?;
            let (known, format) = {
                let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
                let known = state
                    .by_id
                    .get(space.id())
                    .and_then(|no| state.by_no.get(no))
                    .cloned();
                (known, state.format)
            };
            let sf = match known {
                Some(sf) => sf,
                None => {
                    let no = meta_t
                        .get("next_space")
                        .map_err(io)?
                        .map_or(0, |v| v.value()) as u32;
                    let meta = SpaceMeta {
                        id: *space.id(),
                        generation: 0,
                        next_row: 0,
                        row_bytes: space.row_bytes() as u64,
                        dimension: space.dimension() as u64,
                        output: output_code(space.output_type()),
                        fingerprint: space.fingerprint().to_owned(),
                    };
                    let file = self.open_file(&meta)?;
                    file.set_len(0).map_err(io)?;
                    meta_t.insert("next_space", u64::from(no) + 1).map_err(io)?;
                    Arc::new(SpaceFile {
                        no,
                        meta,
                        file,
                        format,
                        cursor: Arc::default(),
                    })
                }
            };
            // The new keys (a key already present keeps its row), once each.
            // A key whose record does not read back whole (a torn tail after
            // a crash) is written again.
            let mut meta = sf.meta.clone();
            let rec_len = meta.record_len();
            let mut fresh: Vec<usize> = Vec::with_capacity(keys.len());
            let mut seen = std::collections::HashSet::with_capacity(keys.len());
            let mut rec = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                if !seen.insert(*k) {
                    continue;
                }
                let valid = match index.get(k.as_bytes()).map_err(io)? {
                    None => false,
                    Some(v) => {
                        let (no, row, _) = v.value();
                        rec.resize(rec_len as usize, 0);
                        no == sf.no
                            && read_at(&sf.file, &mut rec, row * rec_len).is_ok()
                            && check_record(sf.format, &rec, k.as_bytes(), meta.row_bytes as usize)
                    }
                };
                if !valid {
                    fresh.push(i);
                }
            }
            let mut buf = Vec::with_capacity(fresh.len() * rec_len as usize);
            for &i in &fresh {
                encode_record(sf.format, &mut buf, keys[i].as_bytes(), &rows[i]);
            }
            // Data first (and synced), then the index that makes it visible.
            write_at(&sf.file, &buf, meta.next_row * rec_len).map_err(io)?;
            if self.options.fsync == FsyncPolicy::Always {
                sf.file.sync_data().map_err(io)?;
            }
            let mut seq = meta_t.get("seq").map_err(io)?.map_or(0, |v| v.value());
            for (j, &i) in fresh.iter().enumerate() {
                seq += 1;
                index
                    .insert(keys[i].as_bytes(), (sf.no, meta.next_row + j as u64, seq))
                    .map_err(io)?;
            }
            meta_t.insert("seq", seq).map_err(io)?;
            meta.next_row += fresh.len() as u64;
            spaces.insert(sf.no, meta.encode().as_slice()).map_err(io)?;
            let file = sf.file.try_clone().map_err(io)?;
            let new_sf = Arc::new(SpaceFile {
                no: sf.no,
                meta,
                file,
                format: sf.format,
                cursor: sf.cursor.clone(),
            });
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            let others: u64 = state
                .by_no
                .values()
                .filter(|s| s.no != new_sf.no)
                .map(|s| s.meta.next_row * s.meta.record_len())
                .sum();
            let total = others + new_sf.meta.next_row * new_sf.meta.record_len();
            (new_sf, total)
        };
        let mut txn = txn;
        txn.set_durability(self.durability());
        txn.commit().map_err(io)?;
        {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            state.by_id.insert(sf.meta.id, sf.no);
            state.by_no.insert(sf.no, sf);
        }
        if let Some(max) = self.options.max_bytes {
            if total_after > max {
                self.compact_locked(Some(max / 2))?;
            }
        }
        Ok(())
    }

    /// Rewrites every space keeping the newest rows that fit in `budget`
    /// bytes of row files (all valid rows when `None`). Called with the
    /// write lock held.
    fn compact_locked(&self, budget: Option<u64>) -> Result<()> {
        let spaces: Vec<Arc<SpaceFile>> = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            state.by_no.values().cloned().collect()
        };
        let by_no: HashMap<u32, Arc<SpaceFile>> =
            spaces.iter().map(|s| (s.no, s.clone())).collect();
        // Every entry, newest first.
        let mut entries: Vec<([u8; 32], u32, u64, u64)> = Vec::new();
        {
            let txn = self.db.begin_read().map_err(io)?;
            let rows = txn.open_table(ROWS).map_err(io)?;
            for e in rows.iter().map_err(io)? {
                let (k, v) = e.map_err(io)?;
                let (no, row, seq) = v.value();
                entries.push((*k.value(), no, row, seq));
            }
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.3));
        let mut used = 0u64;
        let mut kept: HashMap<u32, Vec<([u8; 32], u64, u64)>> = HashMap::new();
        for (k, no, row, seq) in entries {
            let Some(sf) = by_no.get(&no) else { continue };
            let rec = sf.meta.record_len();
            if budget.is_some_and(|b| used + rec > b) {
                continue;
            }
            used += rec;
            kept.entry(no).or_default().push((k, row, seq));
        }
        // New generation files with the kept rows, oldest first.
        let mut new_files: Vec<Arc<SpaceFile>> = Vec::new();
        let mut new_index: Vec<([u8; 32], (u32, u64, u64))> = Vec::new();
        for sf in &spaces {
            let mut list = kept.remove(&sf.no).unwrap_or_default();
            list.sort_by_key(|e| e.2);
            let mut meta = sf.meta.clone();
            meta.generation += 1;
            meta.next_row = 0;
            let rec_len = meta.record_len() as usize;
            let file = self.open_file(&meta)?;
            file.set_len(0).map_err(io)?;
            let mut buf = Vec::with_capacity(list.len().min(4096) * rec_len);
            let mut rec = vec![0u8; rec_len];
            let mut at = 0u64;
            let row_bytes = meta.row_bytes as usize;
            for (k, row, seq) in list {
                if read_at(&sf.file, &mut rec, row * rec_len as u64).is_err()
                    || !check_record(sf.format, &rec, &k, row_bytes)
                {
                    continue;
                }
                // Rewritten in the current format (a format-1 directory is
                // upgraded here).
                encode_record(FORMAT, &mut buf, &k, &rec[KEY_LEN..KEY_LEN + row_bytes]);
                new_index.push((k, (sf.no, meta.next_row, seq)));
                meta.next_row += 1;
                if buf.len() >= 4 << 20 {
                    write_at(&file, &buf, at).map_err(io)?;
                    at += buf.len() as u64;
                    buf.clear();
                }
            }
            write_at(&file, &buf, at).map_err(io)?;
            file.sync_all().map_err(io)?;
            new_files.push(Arc::new(SpaceFile {
                no: sf.no,
                meta,
                file,
                format: FORMAT,
                cursor: Arc::default(),
            }));
        }
        let mut txn = self.db.begin_write().map_err(io)?;
        {
            let mut index = txn.open_table(ROWS).map_err(io)?;
            index.retain(|_, _| false).map_err(io)?;
            for (k, v) in &new_index {
                index.insert(k, *v).map_err(io)?;
            }
            let mut t = txn.open_table(SPACES).map_err(io)?;
            for sf in &new_files {
                t.insert(sf.no, sf.meta.encode().as_slice()).map_err(io)?;
            }
            txn.open_table(META)
                .map_err(io)?
                .insert("format", FORMAT as u64)
                .map_err(io)?;
        }
        txn.set_durability(Durability::Immediate);
        txn.commit().map_err(io)?;
        {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            state.format = FORMAT;
            for sf in new_files {
                state.by_no.insert(sf.no, sf);
            }
        }
        for sf in &spaces {
            let _ = fs::remove_file(self.dir.join(file_name(&sf.meta.id, sf.meta.generation)));
        }
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats> {
        let txn = self.db.begin_read().map_err(io)?;
        let rows = txn.open_table(ROWS).map_err(io)?;
        let entries = rows.len().map_err(io)?;
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let mut bytes = fs::metadata(self.dir.join(INDEX_FILE)).map_or(0, |m| m.len());
        for sf in state.by_no.values() {
            bytes += sf.file.metadata().map_or(0, |m| m.len());
        }
        Ok(StoreStats {
            entries,
            bytes,
            spaces: state.by_no.len() as u64,
        })
    }

    fn clear(&self) -> Result<()> {
        let _w = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let mut txn = self.db.begin_write().map_err(io)?;
        {
            txn.open_table(ROWS)
                .map_err(io)?
                .retain(|_, _| false)
                .map_err(io)?;
            txn.open_table(SPACES)
                .map_err(io)?
                .retain(|_, _| false)
                .map_err(io)?;
            txn.open_table(META)
                .map_err(io)?
                .insert("format", FORMAT as u64)
                .map_err(io)?;
        }
        txn.set_durability(Durability::Immediate);
        txn.commit().map_err(io)?;
        // A fresh state is in the current format.
        let old = std::mem::take(&mut *self.state.write().unwrap_or_else(PoisonError::into_inner));
        for sf in old.by_no.values() {
            let _ = fs::remove_file(self.dir.join(file_name(&sf.meta.id, sf.meta.generation)));
        }
        Ok(())
    }
}

impl DiskStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: impl AsRef<Path>, options: DiskOptions) -> Result<DiskStore> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| {
            Error::config(format!(
                "cache directory {}: cannot create it: {e}",
                dir.display()
            ))
        })?;
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|(_, w)| w.strong_count() > 0);
        if let Some(inner) = open
            .iter()
            .find(|(p, _)| *p == canonical)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(DiskStore { inner });
        }
        let db = Database::create(canonical.join(INDEX_FILE)).map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "cache directory {}: cannot open its index: {e}",
                    canonical.display()
                ),
            )
        })?;
        let format = {
            let txn = db.begin_write().map_err(io)?;
            txn.open_table(ROWS).map_err(io)?;
            let empty = txn.open_table(SPACES).map_err(io)?.is_empty().map_err(io)?;
            let format = {
                let mut meta = txn.open_table(META).map_err(io)?;
                let stored = meta.get("format").map_err(io)?.map(|v| v.value());
                match stored {
                    // A new (or cleared) directory is in the current format.
                    None if empty => {
                        meta.insert("format", FORMAT as u64).map_err(io)?;
                        FORMAT
                    }
                    // Written before the format was recorded.
                    None | Some(1) => Format::V1,
                    Some(2) => Format::V2,
                    Some(v) => {
                        return Err(Error::config(format!(
                            "cache directory {}: written in disk format {v} by a newer version; \
                             this one reads formats 1 and {}: use that version, or another \
                             (or an emptied) directory",
                            canonical.display(),
                            FORMAT as u64
                        )));
                    }
                }
            };
            txn.commit().map_err(io)?;
            format
        };
        let inner = Arc::new(Inner {
            dir: canonical.clone(),
            db,
            options,
            state: RwLock::new(State::default()),
            write: Mutex::new(()),
        });
        inner.load(format)?;
        open.push((canonical, Arc::downgrade(&inner)));
        Ok(DiskStore { inner })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Drops dead records and applies the size limit now (what
    /// `embed cache compact` runs), synchronously.
    pub fn compact_now(&self) -> Result<StoreStats> {
        {
            let _w = self
                .inner
                .write
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.inner
                .compact_locked(self.inner.options.max_bytes.map(|m| m / 2))?;
        }
        self.inner.stats()
    }

    /// [`Store::stats`], synchronously.
    pub fn stats_now(&self) -> Result<StoreStats> {
        self.inner.stats()
    }

    /// [`Store::clear`], synchronously.
    pub fn clear_now(&self) -> Result<()> {
        self.inner.clear()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| io(format!("the disk task stopped: {e}")))?
    }
}

#[async_trait]
impl Store for DiskStore {
    fn name(&self) -> &'static str {
        "disk"
    }

    async fn get(&self, space: &Space, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        let space = space.clone();
        let keys = keys.to_vec();
        self.blocking(move |i| i.get(&space, &keys)).await
    }

    async fn put(&self, space: &Space, keys: &[Key], rows: &[Bytes]) -> Result<()> {
        check_put(keys, rows, space)?;
        let space = space.clone();
        let keys = keys.to_vec();
        let rows = rows.to_vec();
        self.blocking(move |i| i.put(&space, &keys, &rows)).await
    }

    async fn stats(&self) -> Result<StoreStats> {
        self.blocking(|i| i.stats()).await
    }

    async fn compact(&self) -> Result<StoreStats> {
        let s = self.clone();
        self.blocking(move |_| s.compact_now()).await
    }

    async fn clear(&self) -> Result<()> {
        self.blocking(|i| i.clear()).await
    }
}
