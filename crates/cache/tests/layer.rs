//! The cache layer over the memory store and over failing stores: vector
//! values, what reaches the provider, key parts, single flight, degradation.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Broken, Counting, Renamed, assert_rows};
use embeddings_cache::{CacheLayer, MemoryStore, Store};
use embeddings_core::{
    EmbedRequest, Embedder, Embeddings, Error, ErrorKind, InputType, OutputType, Result, Wrapper,
    async_trait,
};
use embeddings_mock::MockEmbedder;
use tokio::sync::Semaphore;

const DIM: usize = 32;

fn memory() -> MemoryStore {
    MemoryStore::new(64 << 20, None)
}

#[tokio::test]
async fn a_hit_is_the_provider_vector_and_costs_no_request() {
    let mock = Counting::mock("mock", DIM);
    let cached = CacheLayer::memory(mock.clone(), memory());
    let texts = ["first document", "second document", "déjà vu 🌍"];
    let first = cached.embed_documents(&texts).await.unwrap();
    assert_rows(&first, "mock", &texts, DIM);
    assert_eq!(first.usage().unwrap().cached_rows, 0);
    assert_eq!(mock.requests(), 1);
    for _ in 0..3 {
        let again = cached.embed_documents(&texts).await.unwrap();
        assert_eq!(again, first.clone().with_usage(again.usage().unwrap()));
        assert_rows(&again, "mock", &texts, DIM);
        assert_eq!(again.usage().unwrap().cached_rows, 3);
    }
    assert_eq!(mock.requests(), 1, "hits cost no provider request");
    let s = cached.stats();
    assert_eq!((s.hits, s.misses, s.errors), (9, 3, 0));
    // A query of the same text is another entry.
    let q = cached.embed_query("first document").await.unwrap();
    assert_eq!(q, embeddings_mock::vector("mock", "first document", DIM));
    assert_eq!(mock.requests(), 2);
    cached.embed_query("first document").await.unwrap();
    assert_eq!(mock.requests(), 2);
}

#[tokio::test]
async fn only_misses_go_down_in_input_order() {
    let mock = Counting::mock("mock", DIM);
    let cached = CacheLayer::memory(mock.clone(), memory());
    cached.embed_documents(&["b", "d"]).await.unwrap();
    let texts = ["a", "b", "c", "d", "e"];
    let rows = cached.embed_documents(&texts).await.unwrap();
    assert_rows(&rows, "mock", &texts, DIM);
    assert_eq!(rows.usage().unwrap().cached_rows, 2);
    assert_eq!(mock.calls(), vec![vec!["b", "d"], vec!["a", "c", "e"]]);
}

#[tokio::test]
async fn identical_texts_in_one_call_are_embedded_once() {
    let mock = Counting::mock("mock", DIM);
    let cached = CacheLayer::memory(mock.clone(), memory());
    let texts = ["x", "y", "x", "x", "z", "y"];
    let rows = cached.embed_documents(&texts).await.unwrap();
    assert_rows(&rows, "mock", &texts, DIM);
    assert_eq!(mock.calls(), vec![vec!["x", "y", "z"]]);
    assert_eq!(cached.stats().coalesced, 3);
}

#[tokio::test]
async fn changing_any_part_of_the_key_misses() {
    let store = memory();
    let mock = Counting::mock("mock", DIM);
    let base = CacheLayer::new(mock.clone(), Arc::new(store.clone()));
    let t = ["the text"];
    base.embed_documents(&t).await.unwrap();
    base.embed_documents(&t).await.unwrap();
    assert_eq!(mock.requests(), 1);

    // Another text, input type, output type: each misses once, then hits.
    let variants: Vec<EmbedRequest<'_>> = vec![
        EmbedRequest::new(&["another text"]),
        EmbedRequest::new(&t).with_input_type(InputType::Query),
        EmbedRequest::new(&t).with_input_type(InputType::Clustering),
        EmbedRequest::new(&t).with_output_type(OutputType::Int8),
        EmbedRequest::new(&t).with_output_type(OutputType::Ubinary),
    ];
    for (n, r) in variants.iter().enumerate() {
        let got = Embedder::embed(&base, *r).await.unwrap();
        assert_eq!(mock.requests(), 2 + n, "{r:?} must miss");
        assert_eq!(got.usage().unwrap().cached_rows, 0);
        let again = Embedder::embed(&base, *r).await.unwrap();
        assert_eq!(again.usage().unwrap().cached_rows, 1, "{r:?} then hits");
        assert_eq!(again.row_ref(0), got.row_ref(0));
    }

    // Another provider (fingerprint), model, dimension over the same store: misses.
    type Variant = (Arc<Counting>, Arc<dyn Embedder>, &'static str, usize);
    let others: Vec<Variant> = {
        let renamed = Counting::new(Renamed::new(
            Arc::new(MockEmbedder::new("mock", DIM).unwrap()),
            "other-provider",
        ));
        let model = Counting::mock("other-model", DIM);
        let dim = Counting::mock("mock", DIM / 2);
        vec![
            (renamed.clone(), renamed, "mock", DIM),
            (model.clone(), model, "other-model", DIM),
            (dim.clone(), dim, "mock", DIM / 2),
        ]
    };
    for (counter, inner, model, dim) in others {
        let layer = CacheLayer::new(inner, Arc::new(store.clone()));
        let got = layer.embed_documents(&t).await.unwrap();
        assert_eq!(counter.requests(), 1, "{model}/{dim} must miss");
        assert_rows(&got, model, &t, dim);
        let again = layer.embed_documents(&t).await.unwrap();
        assert_eq!(counter.requests(), 1);
        assert_rows(&again, model, &t, dim);
    }
}

#[tokio::test]
async fn quantized_rows_are_cached_as_they_came() {
    let mock = Counting::mock("mock", 20);
    let cached = CacheLayer::memory(mock.clone(), memory());
    let texts = ["a", "b"];
    for t in OutputType::ALL {
        let want = Embeddings::from_flat(common::expected("mock", &texts, 20), 20)
            .unwrap()
            .quantized(t)
            .unwrap();
        let req = EmbedRequest::new(&texts).with_output_type(t);
        let first = Embedder::embed(&cached, req).await.unwrap();
        let second = Embedder::embed(&cached, req).await.unwrap();
        assert_eq!(second.usage().unwrap().cached_rows, 2, "{t}");
        for e in [&first, &second] {
            assert_eq!(e.output_type(), t);
            for i in 0..2 {
                match (e.row_ref(i), want.row_ref(i)) {
                    (embeddings_core::RowRef::F32(a), embeddings_core::RowRef::F32(b)) => {
                        for (x, y) in a.iter().zip(b) {
                            assert!((x - y).abs() <= 1e-5)
                        }
                    }
                    (a, b) => assert_eq!(a, b, "{t} row {i}"),
                }
            }
        }
    }
    assert_eq!(mock.requests(), OutputType::ALL.len());
}

/// Holds every call at a gate until the test opens it.
#[derive(Debug)]
struct Gate {
    inner: Arc<dyn Embedder>,
    gate: Semaphore,
    entered: AtomicUsize,
    fail_first: bool,
}

#[async_trait]
impl Wrapper for Gate {
    fn inner(&self) -> &dyn Embedder {
        &*self.inner
    }
    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        let n = self.entered.fetch_add(1, Ordering::SeqCst);
        let _permit = self
            .gate
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorKind::Cancelled, "closed"))?;
        if self.fail_first && n == 0 {
            return Err(Error::new(ErrorKind::Unavailable, "the first call fails"));
        }
        self.inner.embed(request).await
    }
}

fn gated(fail_first: bool) -> (Arc<Counting>, Arc<Gate>) {
    let mock = Counting::mock("mock", DIM);
    let gate = Arc::new(Gate {
        inner: mock.clone(),
        gate: Semaphore::new(0),
        entered: AtomicUsize::new(0),
        fail_first,
    });
    (mock, gate)
}

#[tokio::test]
async fn concurrent_identical_misses_are_embedded_once() {
    let (mock, gate) = gated(false);
    let cached = Arc::new(CacheLayer::memory(gate.clone(), memory()));
    let texts = ["same", "texts", "here"];
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let c = cached.clone();
            async move { c.embed_documents(&texts).await }
        })
        .collect();
    let opener = async {
        // Every call has looked up and either leads or follows by now
        // (current-thread runtime: the others ran until they waited).
        while gate.entered.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
        gate.gate.add_permits(100);
    };
    let (results, ()) = tokio::join!(futures::future::join_all(calls), opener);
    for r in results {
        assert_rows(&r.unwrap(), "mock", &texts, DIM);
    }
    assert_eq!(mock.requests(), 1, "one leader embedded them");
    assert_eq!(gate.entered.load(Ordering::SeqCst), 1);
    assert_eq!(cached.stats().coalesced, 21);
}

#[tokio::test]
async fn when_the_leader_fails_followers_embed_for_themselves() {
    let (mock, gate) = gated(true);
    let cached = Arc::new(CacheLayer::memory(gate.clone(), memory()));
    let texts = ["one", "two"];
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let c = cached.clone();
            async move { c.embed_documents(&texts).await }
        })
        .collect();
    let opener = async {
        while gate.entered.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
        gate.gate.add_permits(100);
    };
    let (results, ()) = tokio::join!(futures::future::join_all(calls), opener);
    let (ok, err): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.is_ok());
    assert_eq!(err.len(), 1, "the leader's error is its own");
    assert_eq!(err[0].as_ref().unwrap_err().kind(), ErrorKind::Unavailable);
    for r in ok {
        assert_rows(&r.unwrap(), "mock", &texts, DIM);
    }
    // The leader's request failed at the gate, before the provider; each
    // follower then embedded its rows itself.
    assert_eq!(mock.requests(), 2);
    // Nothing is left in flight: a new call hits.
    let again = cached.embed_documents(&texts).await.unwrap();
    assert_eq!(again.usage().unwrap().cached_rows, 2);
}

#[tokio::test]
async fn a_failing_store_degrades_to_uncached_and_is_counted() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let warnings = common_warnings::install();

    let mock = Counting::mock("mock", DIM);
    let store = Arc::new(Broken::default());
    let cached = CacheLayer::new(mock.clone(), store.clone());
    let texts = ["a", "b", "c"];
    for _ in 0..5 {
        let rows = cached.embed_documents(&texts).await.unwrap();
        assert_rows(&rows, "mock", &texts, DIM);
        assert_eq!(rows.usage().unwrap().cached_rows, 0);
    }
    assert_eq!(mock.requests(), 5, "every call went to the provider");
    let s = cached.stats();
    // Each call: the lookup failed, so no write was tried.
    assert_eq!((s.hits, s.misses, s.errors), (0, 15, 5));
    assert_eq!(store.calls.load(Ordering::SeqCst), 5);
    let counters: std::collections::HashMap<String, u64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(k, _, _, v)| match v {
            metrics_util::debugging::DebugValue::Counter(n) => Some((k.key().name().to_owned(), n)),
            _ => None,
        })
        .collect();
    assert_eq!(counters.get("cache_errors"), Some(&5));
    assert_eq!(counters.get("cache_misses"), Some(&15));
    assert_eq!(warnings.count(), 1, "one warning for the outage");
}

#[tokio::test(start_paused = true)]
async fn a_store_that_never_answers_times_out_and_degrades() {
    let mock = Counting::mock("mock", DIM);
    let store = Arc::new(Broken {
        hang: true,
        ..Broken::default()
    });
    let cached = CacheLayer::new(mock.clone(), store).timeout(std::time::Duration::from_millis(50));
    let rows = cached.embed_documents(&["x", "y"]).await.unwrap();
    assert_rows(&rows, "mock", &["x", "y"], DIM);
    assert_eq!(cached.stats().errors, 1);
    assert_eq!(mock.requests(), 1);
}

#[tokio::test]
async fn a_strict_cache_fails_the_call_on_a_store_failure() {
    let mock = Counting::mock("mock", DIM);
    let cached = CacheLayer::new(mock.clone(), Arc::new(Broken::default())).strict(true);
    let err = cached.embed_documents(&["x"]).await.unwrap_err();
    assert!(err.message().contains("the store is down"), "{err}");
    assert_eq!(mock.requests(), 0);
    assert_eq!(cached.stats().errors, 1);
}

#[tokio::test]
async fn a_memory_tier_in_front_answers_before_the_store() {
    let mock = Counting::mock("mock", DIM);
    let back = memory();
    let front = MemoryStore::new(1 << 20, None);
    let cached = CacheLayer::new(mock.clone(), Arc::new(back.clone())).with_front(front.clone());
    cached.embed_documents(&["p", "q"]).await.unwrap();
    assert_eq!(back.stats().await.unwrap().entries, 2);
    assert_eq!(front.stats().await.unwrap().entries, 2);
    back.clear().await.unwrap();
    let rows = cached.embed_documents(&["p", "q"]).await.unwrap();
    assert_eq!(rows.usage().unwrap().cached_rows, 2, "from the memory tier");
    assert_rows(&rows, "mock", &["p", "q"], DIM);
    assert_eq!(mock.requests(), 1);
}

#[tokio::test]
async fn an_error_names_the_callers_inputs() {
    let faults = embeddings_mock::MockFaults {
        max_batch_size: Some(2),
        ..Default::default()
    };
    let mock = Arc::new(
        MockEmbedder::new("mock", DIM)
            .unwrap()
            .with_faults(faults)
            .unwrap(),
    );
    let cached = CacheLayer::memory(mock, memory());
    cached.embed_documents(&["a", "b"]).await.unwrap();
    // 3 misses in one request over a limit of 2: the mock refuses them all.
    let err = cached
        .embed_documents(&["a", "c", "b", "d", "e"])
        .await
        .unwrap_err();
    if let Some(r) = err.inputs() {
        assert!(r.start <= 1 && r.end >= 5, "{r:?}");
    }
}

mod common_warnings {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone, Default)]
    pub(crate) struct Warnings(Arc<AtomicUsize>);

    impl Warnings {
        pub(crate) fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    struct Count(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            if *e.metadata().level() == tracing::Level::WARN {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Counts WARN events on this thread while the returned value lives.
    pub(crate) fn install() -> WarningsGuard {
        use tracing_subscriber::layer::SubscriberExt;
        let w = Warnings::default();
        let sub = tracing_subscriber::registry().with(Count(w.0.clone()));
        WarningsGuard(w, tracing::subscriber::set_default(sub))
    }

    pub(crate) struct WarningsGuard(
        Warnings,
        #[allow(dead_code)] tracing::subscriber::DefaultGuard,
    );

    impl WarningsGuard {
        pub(crate) fn count(&self) -> usize {
            self.0.count()
        }
    }
}
