//! The instrument and retry layers record every metric and span field, and
//! never an input text.

#![cfg(feature = "mock")]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use embeddings::layers::{self, describe_metrics, metric_names};
use embeddings::mock::{MockEmbedder, MockFaults};
use embeddings::{Config, Embedder};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};

type Labels = Vec<(String, String)>;

const SECRET: &str = "TOP-SECRET-INPUT-TEXT";

/// The two tests run one at a time: `tracing` caches each callsite's
/// interest globally, and a callsite first hit by the metrics test (no
/// subscriber on its thread) while the span test installs its scoped
/// subscriber can be cached as uninteresting, losing the spans.
static SERIAL: Mutex<()> = Mutex::new(());

fn embedder(faults: MockFaults) -> Arc<dyn Embedder> {
    let mock = MockEmbedder::new("mock", 8)
        .unwrap()
        .with_faults(faults)
        .unwrap();
    let mut config = Config::for_provider("mock");
    config.retry.jitter = false;
    layers::apply(Arc::new(mock), &config).expect("layers")
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Calls that succeed, are retried, and fail.
async fn workload() {
    let ok = embedder(MockFaults {
        fail_on_calls: vec![1],
        latency: Some(Duration::from_millis(10)),
        ..MockFaults::default()
    });
    let rows = ok.embed_documents(&[SECRET, "second"]).await.unwrap();
    assert_eq!(rows.len(), 2);
    ok.embed_query(SECRET).await.unwrap();
    let bad = embedder(MockFaults {
        fail_on_calls: vec![1],
        error_kind: "authentication".into(),
        ..MockFaults::default()
    });
    bad.embed_query(SECRET).await.unwrap_err();
}

#[test]
fn every_metric_is_recorded() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        describe_metrics();
        paused_runtime().block_on(workload());
    });
    let mut seen: BTreeMap<String, Vec<(Labels, DebugValue)>> = BTreeMap::new();
    for (key, _unit, _desc, value) in snapshotter.snapshot().into_vec() {
        let labels = key
            .key()
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        seen.entry(key.key().name().to_owned())
            .or_default()
            .push((labels, value));
    }
    let counter = |name: &str, extra: Option<(&str, &str)>| -> u64 {
        seen.get(name)
            .unwrap_or_else(|| panic!("{name} not recorded: {seen:?}"))
            .iter()
            .filter(|(labels, _)| {
                labels.contains(&("provider".into(), "mock".into()))
                    && labels.contains(&("model".into(), "mock".into()))
                    && extra.is_none_or(|(k, v)| labels.contains(&(k.into(), v.into())))
            })
            .map(|(_, v)| match v {
                DebugValue::Counter(n) => *n,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    };
    assert_eq!(counter(metric_names::REQUESTS, None), 3);
    assert_eq!(
        counter(metric_names::ERRORS, Some(("kind", "authentication"))),
        1
    );
    assert_eq!(
        counter(metric_names::RETRIES, Some(("kind", "unavailable"))),
        1
    );
    assert_eq!(counter(metric_names::ROWS, None), 3);
    // estimate_tokens: 21 bytes -> 6, "second" -> 2, then 6 for the query.
    assert_eq!(counter(metric_names::TOKENS, None), 14);
    match &seen[metric_names::LATENCY][0].1 {
        DebugValue::Histogram(v) => {
            assert_eq!(v.len(), 3);
            assert!(v.iter().all(|s| s.into_inner() >= 0.0), "{v:?}");
        }
        other => panic!("latency is not a histogram: {other:?}"),
    }
    match &seen[metric_names::IN_FLIGHT][0].1 {
        DebugValue::Gauge(v) => assert_eq!(v.into_inner(), 0.0, "back to zero"),
        other => panic!("in-flight is not a gauge: {other:?}"),
    }
}

/// Every span (by id): its name and fields, as text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<BTreeMap<u64, (String, FieldMap)>>>);

type FieldMap = BTreeMap<String, String>;

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap()
            .insert(id.into_u64(), (attrs.metadata().name().to_owned(), fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some((_, fields)) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let text = format!("{fields:?}");
        assert!(!text.contains(SECRET), "an event holds input text: {text}");
    }
}

#[test]
fn spans_carry_their_fields_and_never_the_text() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        paused_runtime().block_on(workload())
    });

    let spans: Vec<_> = capture.0.lock().unwrap().values().cloned().collect();
    for (name, fields) in &spans {
        for (k, v) in fields {
            assert!(
                !v.contains(SECRET),
                "span {name} field {k} holds input text"
            );
        }
    }
    let calls: Vec<_> = spans
        .iter()
        .filter(|(n, _)| n == "embeddings.call")
        .map(|(_, f)| f)
        .collect();
    assert_eq!(calls.len(), 3);
    let first = calls
        .iter()
        .find(|f| f["op"] == "\"embed\"" && f["input_type"] == "\"document\"")
        .unwrap();
    for (k, v) in [
        ("provider", "mock"),
        ("model", "mock"),
        ("inputs", "2"),
        ("outcome", "\"ok\""),
        ("rows", "2"),
        ("tokens", "8"),
    ] {
        assert_eq!(
            first.get(k).map(String::as_str),
            Some(v),
            "{k} in {first:?}"
        );
    }
    let failed = calls
        .iter()
        .find(|f| f.get("outcome").map(String::as_str) == Some("\"error\""))
        .unwrap();
    assert_eq!(failed["error.kind"], "\"authentication\"");
    assert_eq!(failed["attempts"], "1");

    let attempts: Vec<_> = spans
        .iter()
        .filter(|(n, f)| n == "embeddings.attempt" && f["op"] == "\"embed\"")
        .map(|(_, f)| f)
        .collect();
    assert_eq!(
        attempts.len(),
        4,
        "2 for the retried call, 1 each for the others"
    );
    assert!(attempts.iter().any(|f| f["attempt"] == "2"));
    assert!(
        attempts
            .iter()
            .any(|f| f.get("outcome").map(String::as_str) == Some("\"unavailable\""))
    );
    assert!(attempts.iter().all(|f| f["provider"] == "mock"));
}
