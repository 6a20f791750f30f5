//! The batch layer and `embed_stream`: planning, limits, over-long inputs,
//! order, failures naming their inputs, bounded streaming.

#![cfg(feature = "mock")]

mod layers_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use embeddings::layers::{self, BatchLayer, StreamOptions, embed_iter, embed_stream, plan_batches};
use embeddings::mock::{MockEmbedder, MockFaults, vector};
use embeddings::{
    BatchConfig, Config, Embedder, ErrorKind, OverLengthPolicy, ProviderInfo, RetryConfig,
};
use futures::StreamExt;
use layers_common::{Probe, Step, assert_rows, refs, texts};
use proptest::prelude::*;

fn mock(dim: usize, faults: MockFaults) -> Arc<MockEmbedder> {
    Arc::new(
        MockEmbedder::new("mock", dim)
            .unwrap()
            .with_faults(faults)
            .unwrap(),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn plan_covers_every_input_once_in_order_within_limits(
        counts in proptest::collection::vec(0usize..60, 0..300),
        max_size in 1usize..40,
        max_tokens in 1usize..400,
    ) {
        let plan = plan_batches(&counts, max_size, max_tokens);
        let mut next = 0;
        for r in &plan {
            prop_assert_eq!(r.start, next, "ranges are consecutive");
            prop_assert!(!r.is_empty());
            prop_assert!(r.len() <= max_size);
            let tokens: usize = counts[r.clone()].iter().sum();
            // Only an input over the budget on its own may exceed it.
            prop_assert!(tokens <= max_tokens || r.len() == 1, "{:?} has {} tokens", r, tokens);
            next = r.end;
        }
        prop_assert_eq!(next, counts.len());
    }

    #[test]
    fn batched_calls_respect_the_providers_limits_and_keep_order(
        lens in proptest::collection::vec(0usize..40, 1..120),
        max_size in 1usize..17,
        max_tokens in 10usize..60,
        concurrency in 1usize..6,
    ) {
        // The mock refuses any request over its limits, so success proves them kept.
        let inner = mock(8, MockFaults {
            max_batch_size: Some(max_size),
            max_batch_tokens: Some(max_tokens),
            max_input_tokens: Some(10),
            ..MockFaults::default()
        });
        let layer = BatchLayer::new(inner.clone(), BatchConfig { concurrency: Some(concurrency), ..BatchConfig::default() });
        let owned: Vec<String> = lens.iter().enumerate()
            .map(|(i, &n)| format!("{i}:{}", "x".repeat(n)).chars().take(40).collect())
            .collect();
        let texts = refs(&owned);
        let rows = rt().block_on(layer.embed_documents(&texts)).unwrap();
        assert_rows(&rows, "mock", &texts);
        let min_calls = texts.len().div_ceil(max_size) as u64;
        prop_assert!(inner.calls() >= min_calls);
    }
}

#[tokio::test]
async fn one_request_passes_straight_through() {
    let probe = Arc::new(Probe::new("m", 4));
    let layer = BatchLayer::new(probe.clone(), BatchConfig::default());
    let t = ["a", "b", "c"];
    let rows = layer.embed_documents(&t).await.unwrap();
    assert_rows(&rows, "m", &t);
    assert_eq!(*probe.sizes.lock().unwrap(), vec![3]);
    assert!(layer.embed_documents(&[]).await.unwrap().is_empty());
    assert_eq!(probe.started(), 1, "an empty call makes no request");
    assert_eq!(layer.embed_query("a").await.unwrap(), vector("m", "a", 4));
}

#[tokio::test]
async fn config_lowers_the_providers_batch_size_and_token_budget() {
    let probe = Arc::new(Probe::new("m", 4).with_info(|i| i.max_batch_size = 5));
    let config = BatchConfig {
        max_batch_size: Some(3),
        max_batch_tokens: Some(1000),
        ..BatchConfig::default()
    };
    let layer = BatchLayer::new(probe.clone(), config.clone());
    assert_eq!(layer.limits().max_batch_size, 3);
    let owned = texts(10);
    let rows = layer.embed_documents(&refs(&owned)).await.unwrap();
    assert_rows(&rows, "m", &refs(&owned));
    let mut sizes = probe.sizes.lock().unwrap().clone();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![1, 3, 3, 3]);
    // The configuration never raises the provider's limit.
    let layer = BatchLayer::new(
        probe.clone(),
        BatchConfig {
            max_batch_size: Some(50),
            ..config
        },
    );
    assert_eq!(layer.limits().max_batch_size, 5);
}

#[tokio::test(start_paused = true)]
async fn rows_are_reassembled_in_input_order_when_sub_batches_finish_out_of_order() {
    let mut probe = Probe::new("m", 6).with_info(|i| i.max_batch_size = 3);
    // Later sub-batches answer sooner.
    probe.delay_of = Some(|texts| {
        let n: u64 = texts[0].rsplit(' ').next().unwrap().parse().unwrap();
        Duration::from_millis(1000 - n)
    });
    let probe = Arc::new(probe);
    let layer = BatchLayer::new(
        probe.clone(),
        BatchConfig {
            concurrency: Some(8),
            ..BatchConfig::default()
        },
    );
    let owned = texts(40);
    let rows = layer.embed_documents(&refs(&owned)).await.unwrap();
    assert_rows(&rows, "m", &refs(&owned));
    assert_eq!(probe.max_in_flight.load(Ordering::SeqCst), 8);
    assert_eq!(rows.usage().unwrap().prompt_tokens, {
        owned
            .iter()
            .map(|t| embeddings::estimate_tokens(t) as u64)
            .sum::<u64>()
    });
}

/// Without `batch.concurrency` a call's sub-batches go out as many at a time
/// as the provider says (`ProviderInfo::concurrency`); the setting overrides it.
#[tokio::test(start_paused = true)]
async fn sub_batches_in_flight_follow_the_provider_unless_configured() {
    for (provider, configured, expected) in [
        (4, None, 4),
        (ProviderInfo::HOSTED_CONCURRENCY, None, 16),
        (16, Some(3), 3),
        (2, Some(9), 9),
    ] {
        let mut probe = Probe::new("m", 6).with_info(|i| {
            i.max_batch_size = 2;
            i.concurrency = provider;
        });
        probe.delay_of = Some(|_| Duration::from_millis(100));
        let probe = Arc::new(probe);
        let layer = BatchLayer::new(
            probe.clone(),
            BatchConfig {
                concurrency: configured,
                ..BatchConfig::default()
            },
        );
        let owned = texts(40);
        let rows = layer.embed_documents(&refs(&owned)).await.unwrap();
        assert_rows(&rows, "m", &refs(&owned));
        assert_eq!(
            probe.max_in_flight.load(Ordering::SeqCst),
            expected,
            "provider {provider}, configured {configured:?}"
        );
    }
}

#[tokio::test]
async fn over_long_input_is_an_error_naming_its_index() {
    let inner = mock(
        8,
        MockFaults {
            max_input_tokens: Some(4),
            ..MockFaults::default()
        },
    );
    let layer = BatchLayer::new(inner.clone(), BatchConfig::default());
    let long = "this text has more than four tokens";
    let e = layer
        .embed_documents(&["short", "tiny", long])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);
    assert!(e.message().contains("input 2"), "{e}");
    assert_eq!(inner.calls(), 0, "refused before any request");
    let e = layer.embed_query(long).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);
}

#[tokio::test]
async fn truncate_keeps_the_first_tokens() {
    let inner = mock(
        8,
        MockFaults {
            max_input_tokens: Some(4),
            ..MockFaults::default()
        },
    );
    let config = BatchConfig {
        over_length: OverLengthPolicy::Truncate,
        ..BatchConfig::default()
    };
    let layer = BatchLayer::new(inner, config);
    let long = "0123456789abcdefghij"; // 5 estimated tokens: 16 bytes are kept
    let rows = layer.embed_documents(&["a", long, "b"]).await.unwrap();
    assert_rows(&rows, "mock", &["a", "0123456789abcdef", "b"]);
    assert_eq!(
        layer.embed_query(long).await.unwrap(),
        vector("mock", "0123456789abcdef", 8)
    );
}

#[tokio::test]
async fn chunk_averages_pieces_weighted_by_tokens_and_renormalises() {
    let inner = mock(
        8,
        MockFaults {
            max_input_tokens: Some(2),
            max_batch_size: Some(2),
            ..MockFaults::default()
        },
    );
    let config = BatchConfig {
        over_length: OverLengthPolicy::Chunk,
        ..BatchConfig::default()
    };
    let layer = BatchLayer::new(inner, config);
    // Pieces of 8 bytes (2 tokens): "abcdefgh", "ijklmnop", "qr" (1 token).
    let long = "abcdefghijklmnopqr";
    let pieces = [("abcdefgh", 2.0f32), ("ijklmnop", 2.0), ("qr", 1.0)];
    let mut want = vec![0f32; 8];
    for (p, w) in pieces {
        for (t, v) in want.iter_mut().zip(vector("mock", p, 8)) {
            *t += w / 5.0 * v;
        }
    }
    let norm = want.iter().map(|v| v * v).sum::<f32>().sqrt();
    want.iter_mut().for_each(|v| *v /= norm);

    let rows = layer.embed_documents(&["x", long, "y"]).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.row(0), vector("mock", "x", 8).as_slice());
    assert_eq!(rows.row(2), vector("mock", "y", 8).as_slice());
    for (a, b) in rows.row(1).iter().zip(&want) {
        assert!((a - b).abs() < 1e-5);
    }
    let q = layer.embed_query(long).await.unwrap();
    for (a, b) in q.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5);
    }
}

#[tokio::test]
async fn a_failed_sub_batch_fails_the_call_naming_its_inputs() {
    let inner = mock(
        8,
        MockFaults {
            max_batch_size: Some(2),
            fail_on_calls: vec![2],
            ..MockFaults::default()
        },
    );
    let config = BatchConfig {
        concurrency: Some(1),
        ..BatchConfig::default()
    };
    let layer = BatchLayer::new(inner, config);
    let owned = texts(6);
    let e = layer.embed_documents(&refs(&owned)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().contains("inputs 2..4 of 6"), "{e}");
}

#[tokio::test]
async fn a_wrong_row_count_is_an_invalid_response() {
    let probe = Arc::new(
        Probe::new("m", 4)
            .with_info(|i| i.max_batch_size = 2)
            .script([Step::WrongCount]),
    );
    let layer = BatchLayer::new(probe, BatchConfig::default());
    let e = layer.embed_documents(&["a", "b", "c"]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidResponse);
    assert!(e.message().contains("inputs 0..2"), "{e}");
}

#[tokio::test]
async fn a_sub_batch_answered_with_no_rows_is_an_invalid_response_not_zeros() {
    // The layer hands each sub-batch a sink over its rows of the result; a
    // provider that answers no rows without filling it must not leave
    // zeros in the result.
    let probe = Arc::new(
        Probe::new("m", 4)
            .with_info(|i| i.max_batch_size = 2)
            .script([Step::NoRows]),
    );
    let layer = BatchLayer::new(probe, BatchConfig::default());
    let e = layer.embed_documents(&["a", "b", "c"]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidResponse);
    assert!(
        e.message().contains("inputs 0..2") && e.message().contains("0 vectors for 2 inputs"),
        "{e}"
    );
}

/// Forwards to the mock, recording whether each call carried a row sink;
/// with `strip`, forwards without it (a provider that ignores sinks). It
/// produces f32 only, so the batch layer computes binary types from f32.
#[derive(Debug)]
struct SinkSpy {
    info: embeddings::ProviderInfo,
    inner: Arc<MockEmbedder>,
    strip: bool,
    sinks: std::sync::Mutex<Vec<bool>>,
}

#[embeddings::async_trait]
impl Embedder for SinkSpy {
    fn info(&self) -> &embeddings::ProviderInfo {
        &self.info
    }

    async fn embed(
        &self,
        request: embeddings::EmbedRequest<'_>,
    ) -> embeddings::Result<embeddings::Embeddings> {
        self.sinks.lock().unwrap().push(request.sink.is_some());
        let request = if self.strip {
            request.without_sink()
        } else {
            request
        };
        self.inner.embed(request).await
    }

    async fn health_check(&self) -> embeddings::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn sub_batches_go_straight_into_the_result_or_are_copied_with_the_same_rows() {
    let owned = texts(23);
    let inputs = refs(&owned);
    let tokens: u64 = inputs
        .iter()
        .map(|t| embeddings::estimate_tokens(t) as u64)
        .sum();
    for strip in [false, true] {
        let inner = mock(6, MockFaults::default());
        let mut info = inner.info().clone();
        info.output_types = &[embeddings::OutputType::F32];
        let spy = Arc::new(SinkSpy {
            info,
            inner,
            strip,
            sinks: Default::default(),
        });
        let config = BatchConfig {
            max_batch_size: Some(5),
            concurrency: Some(3),
            ..BatchConfig::default()
        };
        let layer = BatchLayer::new(spy.clone(), config);
        let rows = layer.embed_documents(&inputs).await.unwrap();
        assert_rows(&rows, "mock", &inputs);
        assert_eq!(
            rows.usage().unwrap().prompt_tokens,
            tokens,
            "usage of every sub-batch"
        );
        assert_eq!(
            *spy.sinks.lock().unwrap(),
            [true; 5],
            "a sink per sub-batch"
        );
        // Binary computed from f32 rows: the f32 sub-batches still use sinks.
        spy.sinks.lock().unwrap().clear();
        let packed = layer
            .embed(
                embeddings::EmbedRequest::new(&inputs)
                    .with_output_type(embeddings::OutputType::Ubinary),
            )
            .await
            .unwrap();
        let want = rows
            .clone()
            .quantized(embeddings::OutputType::Ubinary)
            .unwrap();
        assert_eq!(packed.as_u8(), want.as_u8());
        assert_eq!(*spy.sinks.lock().unwrap(), [true; 5]);
        // A call of one request goes on as it is: no sink.
        spy.sinks.lock().unwrap().clear();
        layer.embed_documents(&inputs[..3]).await.unwrap();
        assert_eq!(*spy.sinks.lock().unwrap(), [false]);
    }
}

#[tokio::test(start_paused = true)]
async fn transient_faults_through_the_registry_end_with_every_row_in_place() {
    let config = Config::from_toml_str(
        "provider = \"mock\"\ndimensions = 16\n\
         [batch]\nmax_batch_size = 7\nconcurrency = 3\n\
         [retry]\nmax_retries = 8\n\
         [mock]\nerror_rate = 0.3\nseed = 11\nlatency = \"30ms\"\n",
    )
    .unwrap();
    let embedder = embeddings::from_config(&config).unwrap();
    let owned = texts(500);
    let rows = embedder.embed_documents(&refs(&owned)).await.unwrap();
    assert_rows(&rows, "mock", &refs(&owned));
}

#[tokio::test(start_paused = true)]
async fn retries_go_to_the_failed_sub_batch_alone() {
    let inner = mock(
        8,
        MockFaults {
            max_batch_size: Some(2),
            fail_on_calls: vec![2],
            ..MockFaults::default()
        },
    );
    let mut config = Config::for_provider("mock");
    config.batch.concurrency = Some(1);
    config.retry = RetryConfig {
        jitter: false,
        ..RetryConfig::default()
    };
    let embedder = layers::apply(inner.clone(), &config).expect("layers");
    let owned = texts(6);
    let rows = embedder.embed_documents(&refs(&owned)).await.unwrap();
    assert_rows(&rows, "mock", &refs(&owned));
    assert_eq!(inner.calls(), 4, "3 sub-batches + 1 retry");
}

#[tokio::test(start_paused = true)]
async fn stream_yields_every_batch_in_order() {
    let mut probe = Probe::new("m", 4);
    probe.delay_of = Some(|t| Duration::from_millis(t.len() as u64 * 37 % 11));
    let probe = Arc::new(probe);
    let n = 1003;
    let mut s = embed_iter(
        probe.clone(),
        texts(n),
        StreamOptions::default().batch_size(10).concurrency(3),
    );
    let mut next = 0;
    while let Some(item) = s.next().await {
        let (range, rows) = item.unwrap();
        assert_eq!(range.start, next);
        let want = texts(n)[range.clone()].to_vec();
        assert_rows(&rows, "m", &refs(&want));
        next = range.end;
    }
    assert_eq!(next, n);
    assert!(probe.max_in_flight.load(Ordering::SeqCst) <= 3);
}

#[tokio::test(start_paused = true)]
async fn stream_reads_ahead_no_more_than_its_concurrency() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let inputs = futures::stream::iter(texts(100_000)).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let probe = Arc::new(Probe::new("m", 4));
    let options = StreamOptions::default().batch_size(8).concurrency(4);
    let mut s = Box::pin(embed_stream(probe, inputs, options));
    for _ in 0..5 {
        s.next().await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await; // a slow consumer
        assert!(
            pulled.load(Ordering::SeqCst) <= 8 * (5 + 4 + 1),
            "{} inputs read ahead",
            pulled.load(Ordering::SeqCst)
        );
    }
}

#[tokio::test]
async fn stream_reports_a_failed_batch_by_range_and_goes_on() {
    let inner = mock(
        4,
        MockFaults {
            fail_on_calls: vec![2],
            error_kind: "invalid_input".into(),
            ..MockFaults::default()
        },
    );
    let items: Vec<_> = embed_iter(
        inner,
        texts(25),
        StreamOptions::default().batch_size(10).concurrency(1),
    )
    .collect()
    .await;
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].as_ref().unwrap().0, 0..10);
    let e = items[1].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().starts_with("inputs 10..20 failed"), "{e}");
    assert_eq!(items[2].as_ref().unwrap().0, 20..25);
}

#[test]
fn stream_options_come_from_the_batch_config() {
    let c = Config::from_toml_str("[batch]\nmax_batch_size = 64\nconcurrency = 9").unwrap();
    let o = StreamOptions::from_config(&c.batch);
    assert_eq!((o.batch_size, o.concurrency), (Some(64), 9));
}
