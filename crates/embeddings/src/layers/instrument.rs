//! The instrument layer: a `tracing` span per call and `metrics` counters,
//! gauges and histograms. Neither ever holds an input text or a key.

use std::future::Future;
use std::sync::Arc;

use embeddings_core::{EmbedRequest, Embedder, Embeddings, Error, Result, Wrapper, async_trait};
use metrics::{Key, Label, Level, Metadata};
use tracing::Instrument;

/// The names of the metrics the layers record. Every metric carries the
/// labels `provider` and `model`; the error and retry counters also `kind`
/// (an [`ErrorKind`](crate::ErrorKind) name such as `rate_limited`).
pub mod metric_names {
    /// Counter: calls made (`embed_documents`, `embed_query`).
    pub const REQUESTS: &str = "embeddings_requests_total";
    /// Counter: calls that failed, by error `kind`.
    pub const ERRORS: &str = "embeddings_errors_total";
    /// Counter: retries made by the retry layer, by the `kind` of error retried.
    pub const RETRIES: &str = "embeddings_retries_total";
    /// Counter: input tokens of successful calls (the provider's usage when
    /// reported, otherwise counts that travelled with the request; the
    /// tokenizer is not run again for a metric).
    pub const TOKENS: &str = "embeddings_tokens_total";
    /// Counter: vectors returned.
    pub const ROWS: &str = "embeddings_rows_total";
    /// Histogram: wall-clock duration of a call in seconds (retries and waits included).
    pub const LATENCY: &str = "embeddings_request_duration_seconds";
    /// Gauge: calls in progress.
    pub const IN_FLIGHT: &str = "embeddings_in_flight";
}

/// Describes every metric to the installed recorder (units and help texts),
/// for exporters such as Prometheus. Optional.
pub fn describe_metrics() {
    use metrics::Unit;
    metrics::describe_counter!(metric_names::REQUESTS, Unit::Count, "embedding calls made");
    metrics::describe_counter!(
        metric_names::ERRORS,
        Unit::Count,
        "embedding calls failed, by error kind"
    );
    metrics::describe_counter!(
        metric_names::RETRIES,
        Unit::Count,
        "requests retried, by error kind"
    );
    metrics::describe_counter!(metric_names::TOKENS, Unit::Count, "input tokens embedded");
    metrics::describe_counter!(metric_names::ROWS, Unit::Count, "vectors returned");
    metrics::describe_histogram!(
        metric_names::LATENCY,
        Unit::Seconds,
        "duration of an embedding call"
    );
    metrics::describe_gauge!(
        metric_names::IN_FLIGHT,
        Unit::Count,
        "embedding calls in progress"
    );
}

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The metric keys of one layer, built once so that a call allocates nothing.
#[derive(Debug)]
struct Keys {
    labels: Vec<Label>,
    requests: Key,
    tokens: Key,
    rows: Key,
    latency: Key,
    in_flight: Key,
}

impl Keys {
    fn new(provider: &str, model: &str) -> Self {
        let labels = vec![
            Label::new("provider", provider.to_owned()),
            Label::new("model", model.to_owned()),
        ];
        let key = |name: &'static str| Key::from_parts(name, labels.clone());
        Keys {
            requests: key(metric_names::REQUESTS),
            tokens: key(metric_names::TOKENS),
            rows: key(metric_names::ROWS),
            latency: key(metric_names::LATENCY),
            in_flight: key(metric_names::IN_FLIGHT),
            labels,
        }
    }
}

/// Decrements the in-flight gauge when the call ends or is dropped.
struct InFlight<'a>(&'a Key);

impl<'a> InFlight<'a> {
    fn start(key: &'a Key) -> Self {
        metrics::with_recorder(|r| r.register_gauge(key, &METADATA).increment(1.0));
        InFlight(key)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        metrics::with_recorder(|r| r.register_gauge(self.0, &METADATA).decrement(1.0));
    }
}

/// Records every call: a `tracing` span `embeddings.call` (fields `provider`,
/// `model`, `op` (`embed`), `input_type`, `inputs`, and once done `outcome`, `rows`, `tokens`, and for
/// failures `error.kind` and `attempts`), and the metrics of
/// [`metric_names`]. The retry layer below adds a span per attempt and the
/// retry counter. No text or key is ever recorded.
///
/// Metrics go to whatever `metrics` recorder is installed when the call is
/// made (none: nothing is recorded, at the cost of a few nanoseconds).
#[derive(Debug, Clone)]
pub struct InstrumentLayer {
    inner: Arc<dyn Embedder>,
    keys: Arc<Keys>,
}

impl InstrumentLayer {
    /// Wraps `inner`; its metrics are labelled with `inner.info()`'s provider and model.
    pub fn new(inner: Arc<dyn Embedder>) -> Self {
        let info = inner.info();
        let keys = Arc::new(Keys::new(&info.provider, &info.model));
        InstrumentLayer { inner, keys }
    }

    async fn run<T, Fut>(
        &self,
        op: &'static str,
        input_type: &'static str,
        inputs: usize,
        fut: Fut,
        measure: impl FnOnce(&T) -> (usize, u64),
    ) -> Result<T>
    where
        Fut: Future<Output = Result<T>>,
    {
        let info = self.inner.info();
        let k = &*self.keys;
        let span = tracing::info_span!(
            "embeddings.call",
            provider = %info.provider,
            model = %info.model,
            op,
            input_type,
            inputs,
            outcome = tracing::field::Empty,
            rows = tracing::field::Empty,
            tokens = tracing::field::Empty,
            error.kind = tracing::field::Empty,
            attempts = tracing::field::Empty,
        );
        metrics::with_recorder(|r| r.register_counter(&k.requests, &METADATA).increment(1));
        let in_flight = InFlight::start(&k.in_flight);
        let start = std::time::Instant::now();
        let result = fut.instrument(span.clone()).await;
        let seconds = start.elapsed().as_secs_f64();
        drop(in_flight);
        match &result {
            Ok(value) => {
                let (rows, tokens) = measure(value);
                metrics::with_recorder(|r| {
                    r.register_histogram(&k.latency, &METADATA).record(seconds);
                    r.register_counter(&k.rows, &METADATA)
                        .increment(rows as u64);
                    r.register_counter(&k.tokens, &METADATA).increment(tokens);
                });
                if !span.is_disabled() {
                    span.record("outcome", "ok");
                    span.record("rows", rows);
                    span.record("tokens", tokens);
                }
            }
            Err(e) => {
                self.record_error(e, seconds);
                if !span.is_disabled() {
                    span.record("outcome", "error");
                    span.record("error.kind", e.kind().as_str());
                    if let Some(a) = e.attempts() {
                        span.record("attempts", a);
                    }
                }
            }
        }
        result
    }

    fn record_error(&self, e: &Error, seconds: f64) {
        let k = &*self.keys;
        let mut labels = k.labels.clone();
        labels.push(Label::from_static_parts("kind", e.kind().as_str()));
        let key = Key::from_parts(metric_names::ERRORS, labels);
        metrics::with_recorder(|r| {
            r.register_histogram(&k.latency, &METADATA).record(seconds);
            r.register_counter(&key, &METADATA).increment(1);
        });
    }

    /// The tokens of a call: the provider's reported usage, else counts that
    /// travelled with the request, else 0 (the provider's tokenizer is not
    /// run again only to record a metric).
    fn tokens_of(&self, request: &EmbedRequest<'_>, e: &Embeddings) -> u64 {
        match (e.usage(), request.token_counts) {
            (Some(u), _) => u.prompt_tokens,
            (None, Some(c)) => c.iter().sum::<usize>() as u64,
            (None, None) => 0,
        }
    }
}

#[async_trait]
impl Wrapper for InstrumentLayer {
    fn inner(&self) -> &dyn Embedder {
        &*self.inner
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.run(
            "embed",
            request.input_type.as_str(),
            request.inputs.len(),
            self.inner.embed(request),
            |e: &Embeddings| (e.len(), self.tokens_of(&request, e)),
        )
        .await
    }

    async fn health_check(&self) -> Result<()> {
        let info = self.inner.info();
        let span = tracing::info_span!(
            "embeddings.health_check",
            provider = %info.provider,
            model = %info.model,
        );
        self.inner.health_check().instrument(span).await
    }
}
