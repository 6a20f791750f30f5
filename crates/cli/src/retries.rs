//! The summary's retry count, read from the library's own
//! `embeddings_retries_total` metric (the retry layer increments it once per
//! re-attempt), through a `metrics` recorder that keeps that one counter.
//! The counting wrapper under the layers sees attempts, not which of them
//! are re-attempts; this does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use embeddings::layers::metric_names;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

static RETRIES: OnceLock<Arc<AtomicU64>> = OnceLock::new();

/// Keeps `embeddings_retries_total` (every label summed); ignores the rest.
#[derive(Debug)]
struct RetryRecorder(Arc<AtomicU64>);

impl Recorder for RetryRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() == metric_names::RETRIES {
            Counter::from_arc(Arc::clone(&self.0))
        } else {
            Counter::noop()
        }
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// Installs the recorder (once per process; later calls do nothing).
pub(crate) fn install() {
    let counter = RETRIES.get_or_init(|| Arc::new(AtomicU64::new(0)));
    let _ = metrics::set_global_recorder(RetryRecorder(Arc::clone(counter)));
}

/// Re-attempts made so far (0 when the recorder is not installed).
pub(crate) fn count() -> u64 {
    RETRIES.get().map_or(0, |c| c.load(Ordering::Relaxed))
}
