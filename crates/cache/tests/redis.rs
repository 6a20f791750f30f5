//! The Redis store against a real `redis-server` that each test starts on a
//! free port (in a temp dir, no persistence) and stops: hits, the value
//! format, a server killed in the middle of a job, restarted, and full.

#![cfg(feature = "redis")]

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use common::{Counting, assert_rows};
use embeddings_cache::{CacheLayer, RedisOptions, RedisStore, Space, Store};
use embeddings_core::{Embedder, InputType, OutputType};
use embeddings_testkit::RedisServer;

const DIM: usize = 64;

fn redis_store(server: &RedisServer, namespace: &str, ttl: Option<Duration>) -> RedisStore {
    RedisStore::new(
        &server.url(),
        RedisOptions::new(namespace, ttl, Duration::from_millis(500)),
    )
    .unwrap()
}

fn texts(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("line {i} of the job")).collect()
}

#[tokio::test]
async fn hits_are_the_provider_vectors_and_cost_no_request() {
    let Some(server) = RedisServer::start(&[]) else {
        return;
    };
    let mock = Counting::mock("mock", DIM);
    let store = Arc::new(redis_store(
        &server,
        "test-ns",
        Some(Duration::from_secs(3600)),
    ));
    let cached = CacheLayer::new(mock.clone(), store.clone());
    let t = texts(0..100);
    let refs: Vec<&str> = t.iter().map(String::as_str).collect();
    let first = cached.embed_documents(&refs).await.unwrap();
    assert_rows(&first, "mock", &refs, DIM);
    let again = cached.embed_documents(&refs).await.unwrap();
    assert_rows(&again, "mock", &refs, DIM);
    assert_eq!(again.usage().unwrap().cached_rows, 100);
    assert_eq!(mock.requests(), 1);
    // A second process (another layer, same server and namespace) hits too.
    let other = Counting::mock("mock", DIM);
    let shared = CacheLayer::new(
        other.clone(),
        Arc::new(redis_store(&server, "test-ns", None)),
    );
    assert_rows(
        &shared.embed_documents(&refs).await.unwrap(),
        "mock",
        &refs,
        DIM,
    );
    assert_eq!(other.requests(), 0);
    // Another namespace is another cache.
    let apart = CacheLayer::new(
        other.clone(),
        Arc::new(redis_store(&server, "other-ns", None)),
    );
    apart.embed_documents(&refs[..1]).await.unwrap();
    assert_eq!(other.requests(), 1);

    // What is stored: namespaced keys, a 16-byte header + raw rows, the TTL.
    assert_eq!(
        server.command(&["EVAL", "return #redis.call('KEYS', 'test-ns:*')", "0"]),
        "100"
    );
    let space = Space::new(mock.info(), DIM, OutputType::F32);
    let key = space.key(InputType::Document, refs[0]);
    let name = format!("test-ns:{}", key.to_hex());
    assert_eq!(
        server.command(&["STRLEN", &name]),
        (16 + DIM * 4).to_string()
    );
    let ttl: i64 = server.command(&["PTTL", &name]).parse().unwrap();
    assert!(ttl > 0 && ttl <= 3_600_000, "{ttl}");
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.entries, stats.bytes),
        (100, 100 * (16 + DIM as u64 * 4))
    );
    store.clear().await.unwrap();
    assert_eq!(store.stats().await.unwrap().entries, 0);
}

#[tokio::test]
async fn a_foreign_or_damaged_value_is_a_miss() {
    let Some(server) = RedisServer::start(&[]) else {
        return;
    };
    let store = redis_store(&server, "ns", None);
    let space = Space::from_parts("provider=mock;model=mock", "mock", 4, OutputType::F32);
    let key = space.key(InputType::Document, "t");
    let name = format!("ns:{}", key.to_hex());
    server.command(&["SET", &name, "not a row at all"]);
    assert_eq!(store.get(&space, &[key]).await.unwrap(), vec![None]);
    // A well-formed value written under another key: the checksum says no.
    let other = space.key(InputType::Document, "u");
    let v = embeddings_cache::encode_value(&space, &other, &[0u8; 16]);
    assert!(embeddings_cache::decode_value(&space, &key, v.clone()).is_none());
    assert!(embeddings_cache::decode_value(&space, &other, v).is_some());
}

#[tokio::test]
async fn redis_killed_mid_job_the_job_finishes_uncached_then_hits_after_a_restart() {
    let Some(mut server) = RedisServer::start(&[]) else {
        return;
    };
    let mock = Counting::mock("mock", DIM);
    let cached = CacheLayer::new(mock.clone(), Arc::new(redis_store(&server, "job", None)))
        .timeout(Duration::from_millis(500));
    let job = texts(0..200);
    let batches: Vec<Vec<&str>> = job
        .chunks(10)
        .map(|c| c.iter().map(String::as_str).collect())
        .collect();
    for (b, batch) in batches.iter().enumerate() {
        if b == 5 {
            server.kill(); // in the middle of the job
        }
        let rows = cached.embed_documents(batch).await.unwrap();
        assert_rows(&rows, "mock", batch, DIM);
    }
    assert_eq!(mock.inputs(), 200, "every row was embedded, none lost");
    let s = cached.stats();
    assert!(s.errors >= 15, "store errors are counted: {s:?}");
    assert_eq!(s.hits, 0);

    // Restarted (empty: no persistence): a bounded number of calls until the
    // connection manager is back, then writes and hits again.
    server.restart();
    let batch = &batches[0];
    let mut hit = false;
    for _ in 0..50 {
        let rows = cached.embed_documents(batch).await.unwrap();
        assert_rows(&rows, "mock", batch, DIM);
        if rows.usage().unwrap().cached_rows == batch.len() as u64 {
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hit, "hits again after the restart: {:?}", cached.stats());
}

#[tokio::test]
async fn a_full_redis_answers_errors_and_the_calls_go_on_uncached() {
    let Some(server) =
        RedisServer::start(&["--maxmemory", "1mb", "--maxmemory-policy", "noeviction"])
    else {
        return;
    };
    let dim = 1536;
    let mock = Counting::mock("mock", dim);
    let cached = CacheLayer::new(mock.clone(), Arc::new(redis_store(&server, "full", None)));
    let job = texts(0..400); // 400 × 6 KiB = 2.4 MiB > 1 MiB
    for batch in job.chunks(20) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        let rows = cached.embed_documents(&refs).await.unwrap();
        assert_rows(&rows, "mock", &refs, dim);
    }
    let s = cached.stats();
    assert!(s.errors > 0, "OOM answers are counted: {s:?}");
    assert_eq!(mock.inputs(), 400);
    // What did fit is still served, exactly that.
    let stored: u64 = server
        .command(&["EVAL", "return #redis.call('KEYS', 'full:*')", "0"])
        .parse()
        .unwrap();
    assert!(stored > 0 && stored < 400, "{stored}");
    let mut cached_rows = 0;
    for batch in job.chunks(20) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        let rows = cached.embed_documents(&refs).await.unwrap();
        assert_rows(&rows, "mock", &refs, dim);
        cached_rows += rows.usage().unwrap().cached_rows;
    }
    assert_eq!(cached_rows, stored);
}

#[tokio::test]
async fn strict_fails_when_redis_is_down_and_no_password_is_shown() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://user:hunter2-secret@127.0.0.1:{port}/0");
    let store = RedisStore::new(
        &url,
        RedisOptions::new("ns", None, Duration::from_millis(300)),
    )
    .unwrap();
    assert!(!format!("{store:?}").contains("hunter2"));
    let mock = Counting::mock("mock", DIM);
    let strict = CacheLayer::new(mock.clone(), Arc::new(store)).strict(true);
    let err = strict.embed_documents(&["x"]).await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(err.to_string().contains("***"), "{err}");
    assert_eq!(mock.requests(), 0);
    let lenient = CacheLayer::new(
        mock.clone(),
        Arc::new(
            RedisStore::new(
                &url,
                RedisOptions::new("ns", None, Duration::from_millis(300)),
            )
            .unwrap(),
        ),
    );
    assert_rows(
        &lenient.embed_documents(&["x"]).await.unwrap(),
        "mock",
        &["x"],
        DIM,
    );
    assert_eq!(lenient.stats().errors, 1);
}
