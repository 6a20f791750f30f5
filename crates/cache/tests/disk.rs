//! The disk store: rows survive restarts; a torn, garbled or uncommitted
//! tail is never returned; a process killed with SIGKILL mid-write leaves a
//! store whose every answer is right; the size limit holds.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use common::{Counting, assert_rows};
use embeddings_cache::{CacheLayer, DiskOptions, DiskStore, FsyncPolicy, Key, Space, Store};
use embeddings_core::{Embedder, InputType, OutputType, ProviderInfo};

const DIM: usize = 24;

fn space() -> Space {
    Space::new(
        &ProviderInfo::new("mock", "mock", DIM),
        DIM,
        OutputType::F32,
    )
}

fn key(i: usize) -> Key {
    space().key(InputType::Document, &format!("text {i}"))
}

/// The row written for text `i`: its §4 vector as little-endian bytes.
fn row(i: usize) -> Bytes {
    Bytes::from(
        embeddings_mock::vector("mock", &format!("text {i}"), DIM)
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
}

fn rows_file(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("rows-")
        })
        .expect("a rows file")
}

async fn put_range(store: &DiskStore, range: std::ops::Range<usize>) {
    let keys: Vec<Key> = range.clone().map(key).collect();
    let rows: Vec<Bytes> = range.map(row).collect();
    store.put(&space(), &keys, &rows).await.unwrap();
}

/// Every answer for texts `0..n` is the right row or a miss; returns the hits.
async fn check_all(store: &DiskStore, n: usize) -> Vec<bool> {
    let keys: Vec<Key> = (0..n).map(key).collect();
    let got = store.get(&space(), &keys).await.unwrap();
    got.into_iter()
        .enumerate()
        .map(|(i, r)| match r {
            Some(r) => {
                assert_eq!(r, row(i), "text {i}: a wrong row");
                true
            }
            None => false,
        })
        .collect()
}

#[tokio::test]
async fn rows_survive_a_reopen_and_the_layer_then_costs_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let texts: Vec<String> = (0..50).map(|i| format!("document {i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    {
        let mock = Counting::mock("mock", DIM);
        let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
        let cached = CacheLayer::new(mock.clone(), Arc::new(store));
        let rows = cached.embed_documents(&refs).await.unwrap();
        assert_rows(&rows, "mock", &refs, DIM);
        assert_eq!(mock.requests(), 1);
    }
    let mock = Counting::mock("mock", DIM);
    let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
    assert_eq!(store.stats().await.unwrap().entries, 50);
    let cached = CacheLayer::new(mock.clone(), Arc::new(store));
    let rows = cached.embed_documents(&refs).await.unwrap();
    assert_rows(&rows, "mock", &refs, DIM);
    assert_eq!(rows.usage().unwrap().cached_rows, 50);
    assert_eq!(mock.requests(), 0, "a re-run after a restart costs nothing");
}

#[tokio::test]
async fn a_truncated_tail_is_a_miss_and_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
        put_range(&store, 0..10).await;
    }
    // Cut the last record in half (a torn write of committed data, e.g. a
    // power loss with fsync = never).
    let f = rows_file(dir.path());
    let len = std::fs::metadata(&f).unwrap().len();
    let rec = len / 10;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len - rec / 2)
        .unwrap();
    let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
    let hits = check_all(&store, 10).await;
    assert_eq!(hits, [vec![true; 9], vec![false]].concat());
    // Written again, it hits.
    put_range(&store, 9..12).await;
    assert_eq!(check_all(&store, 12).await, vec![true; 12]);
}

#[tokio::test]
async fn an_uncommitted_or_garbled_tail_is_ignored_and_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
        put_range(&store, 0..10).await;
    }
    let f = rows_file(dir.path());
    let committed = std::fs::metadata(&f).unwrap().len();
    // Garbage after the committed rows: a write the index never saw.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&f)
        .unwrap()
        .write_all(&vec![0xA5; 1000])
        .unwrap();
    {
        let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
        assert_eq!(
            std::fs::metadata(&f).unwrap().len(),
            committed,
            "the tail is cut"
        );
        assert_eq!(check_all(&store, 10).await, vec![true; 10]);
        put_range(&store, 10..20).await;
        assert_eq!(check_all(&store, 20).await, vec![true; 20]);
    }
    // Garble one byte inside a committed record (row 3): a miss, not a wrong row.
    let rec = std::fs::metadata(&f).unwrap().len() / 20;
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[(3 * rec + 40) as usize] ^= 0xFF;
    std::fs::write(&f, &bytes).unwrap();
    let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
    let hits = check_all(&store, 20).await;
    assert!(!hits[3]);
    assert_eq!(hits.iter().filter(|h| **h).count(), 19);
}

/// The child of `a_writer_killed_with_sigkill_never_leaves_a_wrong_row`:
/// writes batches into the store forever, printing each committed range.
#[tokio::test]
async fn disk_child_writer() {
    let Ok(dir) = std::env::var("EMBEDDINGS_CACHE_CHILD_DIR") else {
        return; // run as a test on its own: nothing to do
    };
    let fsync = if std::env::var("EMBEDDINGS_CACHE_CHILD_FSYNC").as_deref() == Ok("never") {
        FsyncPolicy::Never
    } else {
        FsyncPolicy::Always
    };
    let store = DiskStore::open(&dir, DiskOptions::new(None, fsync)).unwrap();
    let start: usize = std::env::var("EMBEDDINGS_CACHE_CHILD_START")
        .unwrap()
        .parse()
        .unwrap();
    let mut next = start;
    let mut out = std::io::stdout();
    loop {
        let n = 1 + next % 37;
        put_range(&store, next..next + n).await;
        next += n;
        writeln!(out, "committed {next}").unwrap();
        out.flush().unwrap();
    }
}

#[tokio::test]
async fn a_writer_killed_with_sigkill_never_leaves_a_wrong_row() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut start = 0usize;
    let mut durable: Vec<std::ops::Range<usize>> = Vec::new();
    // Rounds alternate fsync policies and kill after a growing number of commits.
    for round in 0..6usize {
        let mut child = std::process::Command::new(&exe)
            .args([
                "disk_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("EMBEDDINGS_CACHE_CHILD_DIR", dir.path())
            .env("EMBEDDINGS_CACHE_CHILD_START", start.to_string())
            .env(
                "EMBEDDINGS_CACHE_CHILD_FSYNC",
                if round % 2 == 0 { "always" } else { "never" },
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut committed = start;
        let want = 3 + round * 5;
        let mut seen = 0;
        while seen < want {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(n) = line.strip_prefix("committed ") {
                committed = n.parse().unwrap();
                seen += 1;
            }
        }
        assert_eq!(seen, want, "the child wrote {want} batches");
        // SIGKILL while it is in the middle of the next batches.
        child.kill().unwrap();
        child.wait().unwrap();
        let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
        // Everything reported committed hits with the right row; what it
        // was writing when killed is either the right row or a miss.
        let hits = check_all(&store, committed + 200).await;
        if round % 2 == 0 {
            // fsync = always: every reported commit is durable. (With
            // `never`, the last commits may be lost: misses, not wrong rows.)
            durable.push(start..committed);
        }
        for r in &durable {
            assert!(
                hits[r.clone()].iter().all(|h| *h),
                "round {round}: a committed row of {r:?} is missing"
            );
        }
        // The store takes new writes at the end of what it has.
        let after = committed + 200;
        put_range(&store, after..after + 5).await;
        assert_eq!(check_all(&store, after + 5).await[after..], [true; 5]);
        durable.push(after..after + 5);
        start = after + 5;
        drop(store);
    }
}

#[tokio::test]
async fn the_size_limit_keeps_the_newest_rows() {
    let dir = tempfile::tempdir().unwrap();
    let rec = 32 + DIM * 4 + 8;
    let max = (100 * rec) as u64;
    let store =
        DiskStore::open(dir.path(), DiskOptions::new(Some(max), FsyncPolicy::Never)).unwrap();
    for b in 0..30 {
        put_range(&store, b * 10..b * 10 + 10).await;
    }
    let stats = store.stats().await.unwrap();
    assert!(stats.entries <= 100, "{stats:?}");
    let hits = check_all(&store, 300).await;
    assert!(hits[290..].iter().all(|h| *h), "the newest rows stay");
    assert!(!hits[0], "the oldest went");
    let row_bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("rows-"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(row_bytes <= max, "{row_bytes} > {max}");
    // Reopened, the same rows answer.
    drop(store);
    let store =
        DiskStore::open(dir.path(), DiskOptions::new(Some(max), FsyncPolicy::Never)).unwrap();
    assert_eq!(check_all(&store, 300).await, hits);
}

#[tokio::test]
async fn compact_and_clear() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
    put_range(&store, 0..40).await;
    // Same keys again: kept once (SET NX semantics).
    put_range(&store, 0..40).await;
    let before = store.stats().await.unwrap();
    assert_eq!((before.entries, before.spaces), (40, 1));
    let after = store.compact().await.unwrap();
    assert_eq!(after.entries, 40);
    assert_eq!(check_all(&store, 40).await, vec![true; 40]);
    store.clear().await.unwrap();
    assert_eq!(store.stats().await.unwrap().entries, 0);
    assert_eq!(check_all(&store, 40).await, vec![false; 40]);
    put_range(&store, 0..3).await;
    assert_eq!(check_all(&store, 3).await, vec![true; 3]);
}

#[tokio::test]
async fn spaces_are_files_apart_and_a_wrong_space_misses() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
    put_range(&store, 0..5).await;
    let other = Space::new(
        &ProviderInfo::new("mock", "mock", DIM),
        DIM,
        OutputType::Int8,
    );
    let keys: Vec<Key> = (0..5).map(key).collect();
    assert_eq!(store.get(&other, &keys).await.unwrap(), vec![None; 5]);
    let k = other.key(InputType::Document, "x");
    store
        .put(&other, &[k], &[Bytes::from(vec![7u8; DIM])])
        .await
        .unwrap();
    assert_eq!(store.stats().await.unwrap().spaces, 2);
    assert_eq!(
        store.get(&other, &[k]).await.unwrap(),
        vec![Some(Bytes::from(vec![7u8; DIM]))]
    );
    // A row of the wrong size is refused.
    assert!(
        store
            .put(&other, &[k], &[Bytes::from(vec![7u8; 3])])
            .await
            .is_err()
    );
}

const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");

/// The recorded format of a closed directory (`None`: not recorded).
fn recorded_format(dir: &Path) -> Option<u64> {
    let db = redb::Database::open(dir.join("index.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(META).unwrap();
    t.get("format").unwrap().map(|v| v.value())
}

fn set_recorded_format(dir: &Path, format: Option<u64>) {
    let db = redb::Database::open(dir.join("index.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(META).unwrap();
        match format {
            Some(v) => t.insert("format", v).unwrap(),
            None => t.remove("format").unwrap(),
        };
    }
    txn.commit().unwrap();
}

/// Turns a closed directory into what versions before the recorded format
/// wrote (format 1): no "format" entry, record checksums the first 8 bytes
/// of BLAKE3 keyed by the key over the row.
fn downgrade_to_format_1(dir: &Path) {
    set_recorded_format(dir, None);
    let f = rows_file(dir);
    let mut bytes = std::fs::read(&f).unwrap();
    let row_bytes = DIM * 4;
    for rec in bytes.chunks_exact_mut(32 + row_bytes + 8) {
        let key: [u8; 32] = rec[..32].try_into().unwrap();
        let sum = blake3::keyed_hash(&key, &rec[32..32 + row_bytes]);
        rec[32 + row_bytes..].copy_from_slice(&sum.as_bytes()[..8]);
    }
    std::fs::write(&f, bytes).unwrap();
}

#[tokio::test]
async fn a_format_1_directory_is_read_and_compaction_rewrites_it_as_format_2() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
        put_range(&store, 0..10).await;
    }
    assert_eq!(recorded_format(dir.path()), Some(2), "a new directory");
    downgrade_to_format_1(dir.path());
    {
        let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
        assert_eq!(check_all(&store, 10).await, vec![true; 10]);
        // Written to as format 1, read back.
        put_range(&store, 10..15).await;
        assert_eq!(check_all(&store, 15).await, vec![true; 15]);
    }
    assert_eq!(recorded_format(dir.path()), None, "still format 1");
    {
        let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
        assert_eq!(store.compact().await.unwrap().entries, 15);
        assert_eq!(check_all(&store, 15).await, vec![true; 15]);
        put_range(&store, 15..20).await;
    }
    assert_eq!(recorded_format(dir.path()), Some(2), "upgraded by compact");
    let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
    assert_eq!(check_all(&store, 20).await, vec![true; 20]);
}

#[tokio::test]
async fn a_format_1_record_read_as_format_2_is_a_miss() {
    // A format-1 directory whose format entry says 2 (what an older version
    // writing into a new directory amounts to): its records miss, never a
    // wrong row, and are written again.
    let dir = tempfile::tempdir().unwrap();
    {
        let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
        put_range(&store, 0..10).await;
    }
    downgrade_to_format_1(dir.path());
    set_recorded_format(dir.path(), Some(2));
    let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
    assert_eq!(check_all(&store, 10).await, vec![false; 10]);
    put_range(&store, 0..10).await;
    assert_eq!(check_all(&store, 10).await, vec![true; 10]);
}

#[tokio::test]
async fn a_directory_of_a_newer_format_is_refused_with_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = DiskStore::open(dir.path(), DiskOptions::default()).unwrap();
        put_range(&store, 0..3).await;
    }
    set_recorded_format(dir.path(), Some(3));
    let e = DiskStore::open(dir.path(), DiskOptions::default()).unwrap_err();
    assert_eq!(e.kind(), embeddings_core::ErrorKind::InvalidConfig);
    assert!(e.message().contains("disk format 3"), "{e}");
    // Left as it was.
    assert_eq!(recorded_format(dir.path()), Some(3));
}
