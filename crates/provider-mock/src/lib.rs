//! An in-process embedding provider, registered as `mock`: deterministic
//! vectors (DESIGN.md §4) and simulated faults, so applications and the
//! layers can be tested without an API key or a network.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use embeddings_core::{Config, Embedder};
//! use embeddings_mock::MockEmbedder;
//!
//! let mut config = Config::for_provider("mock");
//! config.dimensions = Some(8);
//! let mock = MockEmbedder::from_config(&config).unwrap();
//! let v = mock.embed_query("hello").await.unwrap();
//! assert_eq!(v, embeddings_mock::vector("mock", "hello", 8));
//! # });
//! ```
//!
//! Faults come from the `[mock]` section of the configuration (and so reach
//! the mock through the registry), or from [`MockEmbedder::with_faults`]:
//!
//! ```toml
//! [mock]
//! latency = "20ms"            # every call sleeps this long (tokio::time)
//! error_rate = 0.1            # this share of calls fail ...
//! seed = 42                   # ... decided by this seed, reproducibly
//! error_kind = "unavailable"  # the kind of simulated failures
//! fail_on_calls = [3]         # these calls (1-based) fail
//! requests_per_second = 5     # more calls in one second get RateLimited + retry_after
//! max_batch_size = 16         # larger calls are refused with InvalidInput
//! max_input_tokens = 8192     # longer inputs: ContextLengthExceeded
//! max_batch_tokens = 300000   # more tokens in one call: InvalidInput
//! ```

mod vector;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, Error, ErrorKind, InputType, OutputType,
    ProviderInfo, Result, Usage, async_trait, estimate_tokens,
};
use serde::Deserialize;

pub use crate::vector::{fill_vector, normalize, raw_components, seed, splitmix64, vector};

/// The registered name.
pub const NAME: &str = "mock";
/// The default model name.
pub const DEFAULT_MODEL: &str = "mock";
/// The default dimension.
pub const DEFAULT_DIMENSION: usize = 128;

/// Simulated faults; all off by default. The `[mock]` config section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockFaults {
    /// Every call waits this long first (with `tokio::time`, so tests can pause time).
    #[serde(with = "humantime_serde")]
    pub latency: Option<Duration>,
    /// Share of calls, in `[0, 1]`, that fail with `error_kind`.
    pub error_rate: f64,
    /// Seed of the error-rate decisions: the same seed fails the same calls.
    pub seed: u64,
    /// The kind of simulated failures (snake_case name, default `unavailable`).
    pub error_kind: String,
    /// These calls (numbered from 1) fail with `error_kind`.
    pub fail_on_calls: Vec<u64>,
    /// At most this many calls per second; more are answered `RateLimited`
    /// with a `retry_after` until the second is over.
    pub requests_per_second: Option<u32>,
    /// Calls with more inputs are refused with `InvalidInput`.
    pub max_batch_size: Option<usize>,
    /// Inputs with more (estimated) tokens fail with `ContextLengthExceeded`.
    pub max_input_tokens: Option<usize>,
    /// Calls with more (estimated) tokens in total are refused with `InvalidInput`.
    pub max_batch_tokens: Option<usize>,
}

impl Default for MockFaults {
    fn default() -> Self {
        MockFaults {
            latency: None,
            error_rate: 0.0,
            seed: 0,
            error_kind: ErrorKind::Unavailable.as_str().to_owned(),
            fail_on_calls: Vec::new(),
            requests_per_second: None,
            max_batch_size: None,
            max_input_tokens: None,
            max_batch_tokens: None,
        }
    }
}

impl MockFaults {
    fn validate(&self) -> Result<ErrorKind> {
        if !(0.0..=1.0).contains(&self.error_rate) || self.error_rate.is_nan() {
            return Err(Error::config(format!(
                "`mock.error_rate` = {}: must be between 0 and 1",
                self.error_rate
            )));
        }
        for (key, v) in [
            ("mock.max_batch_size", self.max_batch_size),
            ("mock.max_input_tokens", self.max_input_tokens),
            ("mock.max_batch_tokens", self.max_batch_tokens),
            (
                "mock.requests_per_second",
                self.requests_per_second.map(|v| v as usize),
            ),
        ] {
            if v == Some(0) {
                return Err(Error::config(format!("`{key}` = 0: must be at least 1")));
            }
        }
        if self.fail_on_calls.contains(&0) {
            return Err(Error::config(
                "`mock.fail_on_calls` contains 0: calls are numbered from 1",
            ));
        }
        ErrorKind::from_name(&self.error_kind).ok_or_else(|| {
            Error::config(format!(
                "`mock.error_kind` = {:?}: not an error kind (one of: {})",
                self.error_kind,
                ErrorKind::ALL.map(ErrorKind::as_str).join(", ")
            ))
        })
    }

    fn any(&self) -> bool {
        self.latency.is_some()
            || self.error_rate > 0.0
            || !self.fail_on_calls.is_empty()
            || self.requests_per_second.is_some()
    }
}

/// One call as the mock saw it (see [`MockEmbedder::with_recorder`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// The inputs, as received (prompts applied by the layers included).
    pub inputs: Vec<String>,
    /// The request's input type.
    pub input_type: InputType,
    /// The request's output type.
    pub output_type: OutputType,
    /// Whether token counts travelled with the request.
    pub had_token_counts: bool,
}

/// The calls a recording mock received, in order.
pub type Recorder = Arc<Mutex<Vec<RecordedCall>>>;

/// The deterministic in-process provider.
///
/// Input types reach it unchanged (a query's vector is the §4 vector of its
/// text as given, prompts included) and it produces every
/// output type natively, as [`embeddings_core::Embeddings::quantized`]
/// defines them from the §4 vector.
#[derive(Debug)]
pub struct MockEmbedder {
    info: ProviderInfo,
    faults: Option<Box<Faults>>,
    recorder: Option<Recorder>,
}

#[derive(Debug)]
struct Faults {
    config: MockFaults,
    kind: ErrorKind,
    calls: AtomicU64,
    window: Mutex<(Option<tokio::time::Instant>, u32)>,
}

impl MockEmbedder {
    /// A mock of `model` at `dimension` (at least 1), without faults.
    pub fn new(model: impl Into<String>, dimension: usize) -> Result<Self> {
        if dimension == 0 {
            return Err(Error::config("`dimensions` = 0: must be at least 1"));
        }
        let mut info = ProviderInfo::new(NAME, model, dimension);
        // Input types reach the mock (and its recorder) but do not change
        // its vectors, so it lists none as native: configured prompts apply.
        // It simulates a remote service (latency, faults), so it is not
        // `in_process` either: the layers treat it as a server.
        info.output_types = &OutputType::ALL;
        Ok(MockEmbedder {
            info,
            faults: None,
            recorder: None,
        })
    }

    /// Builds from the configuration: `model`, `dimensions`, and the `[mock]` section.
    pub fn from_config(config: &Config) -> Result<Self> {
        let model = config
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        let dim = config.dimensions.unwrap_or(DEFAULT_DIMENSION);
        let faults: MockFaults = config.provider_section(NAME)?;
        MockEmbedder::new(model, dim)?.with_faults(faults)
    }

    /// Sets the simulated faults and the limits.
    pub fn with_faults(mut self, faults: MockFaults) -> Result<Self> {
        let kind = faults.validate()?;
        if let Some(n) = faults.max_batch_size {
            self.info.max_batch_size = n;
        }
        if let Some(n) = faults.max_input_tokens {
            self.info.max_input_tokens = n;
        }
        if let Some(n) = faults.max_batch_tokens {
            self.info.max_batch_tokens = n;
        }
        self.faults = (faults.any()
            || faults.max_batch_size.is_some()
            || faults.max_input_tokens.is_some()
            || faults.max_batch_tokens.is_some())
        .then(|| {
            Box::new(Faults {
                config: faults,
                kind,
                calls: AtomicU64::new(0),
                window: Mutex::new((None, 0)),
            })
        });
        Ok(self)
    }

    /// Records every call that reaches the mock (inputs, input and output
    /// type) in the returned log, for tests of what the layers send.
    pub fn with_recorder(mut self) -> (Self, Recorder) {
        let r = Recorder::default();
        self.recorder = Some(r.clone());
        (self, r)
    }

    /// How many calls (`embed_documents`/`embed_query`) were made so far, when
    /// faults are configured (the counter is only kept then).
    pub fn calls(&self) -> u64 {
        self.faults
            .as_ref()
            .map_or(0, |f| f.calls.load(Ordering::Relaxed))
    }

    fn err(&self, kind: ErrorKind, msg: String) -> Error {
        Error::new(kind, msg).with_provider(NAME)
    }

    /// Applies limits and simulated faults before a call of `texts`.
    async fn before_call(&self, texts: &[&str]) -> Result<()> {
        let Some(f) = &self.faults else {
            return Ok(());
        };
        let call = f.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let c = &f.config;
        if let Some(lat) = c.latency {
            tokio::time::sleep(lat).await;
        }
        if let Some(rps) = c.requests_per_second {
            let now = tokio::time::Instant::now();
            let wait = {
                let mut w = f.window.lock().unwrap_or_else(|p| p.into_inner());
                match w.0 {
                    Some(start) if now.duration_since(start) < Duration::from_secs(1) => {
                        if w.1 >= rps {
                            Some(Duration::from_secs(1) - now.duration_since(start))
                        } else {
                            w.1 += 1;
                            None
                        }
                    }
                    _ => {
                        *w = (Some(now), 1);
                        None
                    }
                }
            };
            if let Some(wait) = wait {
                return Err(self
                    .err(
                        ErrorKind::RateLimited,
                        format!("simulated rate limit of {rps} requests per second"),
                    )
                    .with_retry_after(wait));
            }
        }
        if c.fail_on_calls.contains(&call) {
            return Err(self.err(f.kind, format!("simulated failure on call {call}")));
        }
        if c.error_rate > 0.0 {
            let mut s = c.seed ^ call.wrapping_mul(0x2545_F491_4F6C_DD1D);
            let u = (splitmix64(&mut s) >> 11) as f64 / (1u64 << 53) as f64;
            if u < c.error_rate {
                return Err(self.err(
                    f.kind,
                    format!(
                        "simulated failure (error_rate {}) on call {call}",
                        c.error_rate
                    ),
                ));
            }
        }
        if let Some(max) = c.max_batch_size {
            if texts.len() > max {
                return Err(self.err(
                    ErrorKind::InvalidInput,
                    format!("{} inputs in one request; the limit is {max}", texts.len()),
                ));
            }
        }
        if c.max_input_tokens.is_some() || c.max_batch_tokens.is_some() {
            let mut total = 0;
            for (i, t) in texts.iter().enumerate() {
                let n = estimate_tokens(t);
                if c.max_input_tokens.is_some_and(|m| n > m) {
                    return Err(self.err(
                        ErrorKind::ContextLengthExceeded,
                        format!(
                            "input {i} has {n} tokens; the limit is {}",
                            self.info.max_input_tokens
                        ),
                    ));
                }
                total += n;
            }
            if c.max_batch_tokens.is_some_and(|m| total > m) {
                return Err(self.err(
                    ErrorKind::InvalidInput,
                    format!(
                        "{total} tokens in one request; the limit is {}",
                        self.info.max_batch_tokens
                    ),
                ));
            }
        }
        Ok(())
    }

    fn usage(texts: &[&str]) -> Usage {
        let n: usize = texts.iter().map(|t| estimate_tokens(t)).sum();
        Usage::tokens(n as u64)
    }

    fn record(&self, request: &EmbedRequest<'_>) {
        if let Some(r) = &self.recorder {
            r.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(RecordedCall {
                    inputs: request.inputs.iter().map(|t| (*t).to_owned()).collect(),
                    input_type: request.input_type,
                    output_type: request.output_type,
                    had_token_counts: request.token_counts.is_some(),
                });
        }
    }
}

#[async_trait]
impl Embedder for MockEmbedder {
    #[inline]
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    #[inline]
    fn dimension(&self) -> usize {
        self.info.dimension
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        let texts = request.inputs;
        if texts.is_empty() {
            return Ok(Embeddings::empty_of(
                request.output_type,
                self.info.dimension,
            ));
        }
        self.record(&request);
        self.before_call(texts).await?;
        let dim = self.info.dimension;
        let fill = |rows: &mut [f32]| {
            for (row, text) in rows.chunks_exact_mut(dim).zip(texts) {
                fill_vector(&self.info.model, text, row);
            }
        };
        // Straight into the caller's rows when it gave a sink for them.
        if let Some(sink) = request.sink_for(texts.len(), dim) {
            sink.write(&mut |rows| {
                fill(rows);
                Ok(())
            })?;
            return Ok(Embeddings::empty(dim).with_usage(Self::usage(texts)));
        }
        let mut out = Embeddings::zeroed(texts.len(), dim);
        fill(out.as_flat_mut());
        out.with_usage(Self::usage(texts))
            .quantized(request.output_type)
    }

    async fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        if self.recorder.is_some() {
            self.record(&EmbedRequest::query(&[text]));
        }
        self.before_call(&[text]).await?;
        let mut v = vec![0.0; self.info.dimension];
        fill_vector(&self.info.model, text, &mut v);
        Ok(v)
    }

    async fn health_check(&self) -> Result<()> {
        Ok(())
    }
}

embeddings_core::register_provider! {
    name: NAME,
    description: "deterministic in-process vectors with simulated faults (no network, no key)",
    build: |config| Ok(Arc::new(MockEmbedder::from_config(config)?)),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(f: MockFaults) -> MockEmbedder {
        MockEmbedder::new("mock", 8)
            .unwrap()
            .with_faults(f)
            .unwrap()
    }

    #[tokio::test]
    async fn rows_are_the_design_vectors_in_input_order() {
        let m = MockEmbedder::new("mock", 8).unwrap();
        let texts = ["hello", "", "déjà vu 🌍", "hello"];
        let e = m.embed_documents(&texts).await.unwrap();
        assert_eq!(e.len(), 4);
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(e.row(i), vector("mock", t, 8).as_slice());
        }
        assert_eq!(m.embed_query("hello").await.unwrap(), e.row(0));
        assert!(m.embed_documents(&[]).await.unwrap().is_empty());
        // ceil(bytes / 4): "hello" 2, "" 0, "déjà vu 🌍" 4, "hello" 2.
        assert_eq!(e.usage().unwrap().prompt_tokens, 8);
    }

    #[tokio::test]
    async fn every_output_type_is_the_quantised_design_vector() {
        let (m, log) = MockEmbedder::new("mock", 8).unwrap().with_recorder();
        let texts = ["hello", "déjà vu 🌍"];
        for t in OutputType::ALL {
            let req = EmbedRequest::new(&texts)
                .with_output_type(t)
                .with_input_type(InputType::Clustering);
            let e = m.embed(req).await.unwrap();
            assert_eq!((e.len(), e.dim(), e.output_type()), (2, 8, t));
            for (i, text) in texts.iter().enumerate() {
                let v = vector("mock", text, 8);
                let want = Embeddings::from_flat(v, 8).unwrap().quantized(t).unwrap();
                assert_eq!(e.row_ref(i), want.row_ref(0), "{t} row {i}");
            }
        }
        // The reference vector of DESIGN §4 ("hello", 8 dims) in ubinary: signs + - + - + - + +.
        let e = m
            .embed(EmbedRequest::new(&["hello"]).with_output_type(OutputType::Ubinary))
            .await
            .unwrap();
        assert_eq!(e.as_u8().unwrap(), &[0b1010_1011]);
        let log = log.lock().unwrap();
        assert_eq!(log.len(), OutputType::ALL.len() + 1);
        assert!(
            log[..5]
                .iter()
                .all(|c| c.input_type == InputType::Clustering)
        );
        assert_eq!(log[3].output_type, OutputType::Binary);
    }

    #[test]
    fn dimension_zero_is_a_config_error() {
        assert_eq!(
            MockEmbedder::new("m", 0).unwrap_err().kind(),
            ErrorKind::InvalidConfig
        );
    }

    #[tokio::test]
    async fn fail_on_nth_call() {
        let m = faults(MockFaults {
            fail_on_calls: vec![2],
            error_kind: "timeout".into(),
            ..MockFaults::default()
        });
        assert!(m.embed_query("a").await.is_ok());
        let e = m.embed_query("a").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.message().contains("call 2"));
        assert!(m.embed_query("a").await.is_ok());
        assert_eq!(m.calls(), 3);
    }

    #[tokio::test]
    async fn error_rate_is_reproducible_by_seed() {
        let run = |seed| async move {
            let m = faults(MockFaults {
                error_rate: 0.3,
                seed,
                ..MockFaults::default()
            });
            let mut failed = Vec::new();
            for i in 0..200 {
                if m.embed_query("x").await.is_err() {
                    failed.push(i);
                }
            }
            failed
        };
        let a = run(7).await;
        assert_eq!(a, run(7).await);
        assert_ne!(a, run(8).await);
        assert!(
            (40..=80).contains(&a.len()),
            "{} failures of 200 at 30%",
            a.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn latency_uses_tokio_time() {
        let m = faults(MockFaults {
            latency: Some(Duration::from_secs(5)),
            ..MockFaults::default()
        });
        let start = tokio::time::Instant::now();
        m.embed_query("a").await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_per_second_limit_answers_rate_limited_with_retry_after() {
        let m = faults(MockFaults {
            requests_per_second: Some(2),
            ..MockFaults::default()
        });
        m.embed_query("a").await.unwrap();
        tokio::time::advance(Duration::from_millis(300)).await;
        m.embed_query("a").await.unwrap();
        let e = m.embed_query("a").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_millis(700)));
        tokio::time::advance(Duration::from_millis(700)).await;
        m.embed_query("a").await.unwrap();
    }

    #[tokio::test]
    async fn limits_are_enforced_and_reported_in_info() {
        let m = faults(MockFaults {
            max_batch_size: Some(2),
            max_input_tokens: Some(2),
            ..MockFaults::default()
        });
        assert_eq!(m.info().max_batch_size, 2);
        let e = m.embed_documents(&["a", "b", "c"]).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = m.embed_documents(&["a", "123456789"]).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);
        assert!(e.message().contains("input 1"));
    }

    #[test]
    fn faults_come_from_the_config_section() {
        let c = Config::from_toml_str(
            "provider = \"mock\"\ndimensions = 4\n[mock]\nfail_on_calls = [1]\nlatency = \"1ms\"\nmax_batch_size = 3\n",
        )
        .unwrap();
        let m = MockEmbedder::from_config(&c).unwrap();
        assert_eq!(m.info().max_batch_size, 3);
        assert_eq!(m.dimension(), 4);
        let c = Config::from_toml_str("[mock]\nerror_rate = 2.0").unwrap();
        let e = MockEmbedder::from_config(&c).unwrap_err();
        assert!(e.to_string().contains("mock.error_rate"), "{e}");
        let c = Config::from_toml_str("[mock]\nbogus = 1").unwrap();
        let e = MockEmbedder::from_config(&c).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let c = Config::from_toml_str("[mock]\nerror_kind = \"nope\"").unwrap();
        assert!(MockEmbedder::from_config(&c).is_err());
    }
}
