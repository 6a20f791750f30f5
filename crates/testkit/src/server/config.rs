//! The configuration of the fake server: models, limits and faults (serde, TOML).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use super::route::Route;

/// Default request-log capacity (see [`FakeServerConfig::request_log_limit`]).
pub const DEFAULT_REQUEST_LOG_LIMIT: usize = 10_000;

/// The OpenAI models served when nothing else is configured, with their sizes.
pub const DEFAULT_OPENAI_MODELS: [(&str, usize); 3] = [
    ("text-embedding-3-small", 1536),
    ("text-embedding-3-large", 3072),
    ("text-embedding-ada-002", 1536),
];

/// OpenAI models that refuse the `dimensions` parameter.
pub const FIXED_DIMENSION_OPENAI_MODELS: [&str; 1] = ["text-embedding-ada-002"];

/// The most inputs one OpenAI request may hold.
pub const OPENAI_MAX_INPUTS: usize = 2048;

/// The most tokens (cl100k_base) one OpenAI request may hold, all inputs together.
pub const OPENAI_MAX_REQUEST_TOKENS: usize = 300_000;

/// The most tokens (cl100k_base) one OpenAI input may hold (the models' context).
pub const OPENAI_MAX_INPUT_TOKENS: usize = 8192;

/// How the fake server behaves: which models exist, the API key, the rate
/// limits and the faults to inject.
///
/// Every field has a default, so `FakeServerConfig::default()` (or an empty
/// TOML file) serves the default models on a free port of 127.0.0.1 with no
/// key, no limits and no faults.
///
/// ```
/// let config: embeddings_testkit::FakeServerConfig = toml::from_str(r#"
///     api_key = "sk-test"
///     requests_per_minute = 60
///
///     [openai_models]
///     my-model = 64
///
///     [[faults]]
///     route = "openai"
///     trigger = { every_nth = 3 }
///     action = { status = 503 }
/// "#).unwrap();
/// assert_eq!(config.faults.len(), 1);
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FakeServerConfig {
    /// When set, OpenAI routes require `Authorization: Bearer <api_key>` (401 otherwise).
    pub api_key: Option<String>,
    /// OpenAI models (name → dimension), in addition to [`DEFAULT_OPENAI_MODELS`]
    /// (a name listed here overrides the default's size).
    pub openai_models: BTreeMap<String, usize>,
    /// Ollama models, in addition to the defaults (all-minilm 384,
    /// nomic-embed-text 768, mxbai-embed-large 1024). `name:latest` keys are
    /// the same as `name`.
    pub ollama_models: BTreeMap<String, OllamaModel>,
    /// Requests per minute over all embedding routes; 429 beyond. Not enforced when unset.
    pub requests_per_minute: Option<u32>,
    /// Tokens (cl100k_base) per minute over all embedding routes; 429 beyond.
    /// Not enforced when unset.
    pub tokens_per_minute: Option<u32>,
    /// How much of each per-minute budget is there when the server starts
    /// (or [`set_rate_limits`](crate::FakeServer::set_rate_limits) is
    /// called), as time at the limit's rate: `0s` starts both buckets empty
    /// (a key another client has just spent), `200ms` holds 200 ms of
    /// budget, so a client that sends faster than the limit gets 429s at
    /// once instead of after a minute. Unset: full (a whole minute's
    /// budget, a fresh key).
    #[serde(with = "humantime_serde")]
    pub initial_budget: Option<Duration>,
    /// Faults to inject, evaluated in order for every request.
    pub faults: Vec<Fault>,
    /// The port to bind; 0 (the default) picks a free one.
    pub port: u16,
    /// The address to bind; 127.0.0.1 when unset.
    pub host: Option<IpAddr>,
    /// How many of the latest requests [`FakeServer::requests`](crate::FakeServer::requests)
    /// keeps; [`DEFAULT_REQUEST_LOG_LIMIT`] when unset, `Some(0)` turns the log off
    /// (what long benchmarks want).
    pub request_log_limit: Option<usize>,
    /// What `GET /api/version` answers; `"0.12.0"` when unset.
    pub ollama_version: Option<String>,
}

impl FakeServerConfig {
    /// Checks the values serde cannot: sizes, trigger parameters, latency ranges.
    pub fn validate(&self) -> Result<(), String> {
        for (name, dim) in &self.openai_models {
            if *dim == 0 {
                return Err(format!(
                    "openai_models.{name}: the dimension must be at least 1"
                ));
            }
        }
        for (name, model) in &self.ollama_models {
            if model.dimension == 0 {
                return Err(format!(
                    "ollama_models.{name}: the dimension must be at least 1"
                ));
            }
            if model.context_length == 0 {
                return Err(format!(
                    "ollama_models.{name}: context_length must be at least 1"
                ));
            }
        }
        if self.requests_per_minute == Some(0) || self.tokens_per_minute == Some(0) {
            return Err("requests_per_minute and tokens_per_minute must be at least 1".into());
        }
        for (i, fault) in self.faults.iter().enumerate() {
            fault.validate().map_err(|e| format!("faults[{i}]: {e}"))?;
        }
        Ok(())
    }

    /// Parses a TOML configuration and validates it.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let config: FakeServerConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }
}

/// An Ollama model served by the fake server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OllamaModel {
    /// The length of its vectors (`model_info.<family>.embedding_length`).
    pub dimension: usize,
    /// Its context in tokens (cl100k_base): longer inputs are truncated, or
    /// refused with 400 when the request says `truncate: false`.
    #[serde(default = "default_context_length")]
    pub context_length: usize,
    /// Its architecture, as `/api/show` reports it (`bert`, `nomic-bert`, ...).
    #[serde(default = "default_family")]
    pub family: String,
}

fn default_context_length() -> usize {
    2048
}

fn default_family() -> String {
    "bert".to_owned()
}

impl OllamaModel {
    /// A model of `dimension` with a 2048-token context and the `bert` family.
    pub fn new(dimension: usize) -> Self {
        OllamaModel {
            dimension,
            context_length: default_context_length(),
            family: default_family(),
        }
    }

    /// The Ollama models served when nothing else is configured.
    pub fn defaults() -> Vec<(&'static str, OllamaModel)> {
        vec![
            (
                "all-minilm",
                OllamaModel {
                    dimension: 384,
                    context_length: 512,
                    family: "bert".into(),
                },
            ),
            (
                "nomic-embed-text",
                OllamaModel {
                    dimension: 768,
                    context_length: 2048,
                    family: "nomic-bert".into(),
                },
            ),
            (
                "mxbai-embed-large",
                OllamaModel {
                    dimension: 1024,
                    context_length: 512,
                    family: "bert".into(),
                },
            ),
        ]
    }
}

/// One fault: what to do, to which requests, and when.
///
/// Each fault counts the requests on its route itself (from 1), so
/// `every_nth = 3` fires on the 3rd, 6th, ... request of that route.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// The routes it applies to: a route, a dialect's name (all its routes)
    /// or [`Route::All`] (the default).
    #[serde(default)]
    pub route: Route,
    /// When it fires; always by default.
    #[serde(default)]
    pub trigger: Trigger,
    /// What it does.
    pub action: FaultAction,
}

impl Fault {
    /// A fault doing `action` on every request of every route.
    pub fn new(action: FaultAction) -> Self {
        Fault {
            route: Route::All,
            trigger: Trigger::Always,
            action,
        }
    }

    /// Scopes the fault to `route` (a route, a dialect's name, or [`Route::All`]).
    pub fn on(mut self, route: Route) -> Self {
        self.route = route;
        self
    }

    /// Fires the fault when `trigger` says so.
    pub fn when(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }

    fn validate(&self) -> Result<(), String> {
        match self.trigger {
            Trigger::EveryNth(0) | Trigger::Nth(0) => {
                return Err("every_nth and nth count from 1".into());
            }
            Trigger::Rate { probability, .. } if !(0.0..=1.0).contains(&probability) => {
                return Err(format!("rate probability {probability} is not in [0, 1]"));
            }
            _ => {}
        }
        match &self.action {
            FaultAction::Latency(Latency::Uniform { min, max }) if min > max => {
                Err(format!("latency range {min:?}..{max:?} is empty"))
            }
            FaultAction::Status(s) if !(100..=999).contains(&s.status) => {
                Err(format!("{} is not an HTTP status", s.status))
            }
            _ => Ok(()),
        }
    }
}

/// When a fault fires, counting the requests on its route from 1.
///
/// TOML: `"always"`, `{ every_nth = 3 }`, `{ nth = 2 }`, `{ first = 5 }`,
/// `{ rate = { probability = 0.1, seed = 7 } }`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// On every request.
    #[default]
    Always,
    /// On the Nth, 2Nth, 3Nth, ... request.
    EveryNth(u64),
    /// On the Nth request only.
    Nth(u64),
    /// On the first N requests.
    First(u64),
    /// On each request with this probability, drawn from a generator seeded
    /// with `seed`: the same sequence of requests gets the same faults.
    Rate {
        /// The probability, in [0, 1].
        probability: f64,
        /// The generator's seed.
        #[serde(default)]
        seed: u64,
    },
}

/// What a fault does.
///
/// TOML: `{ latency = "200ms" }`, `{ latency = { min = "10ms", max = "50ms" } }`,
/// `{ status = 503 }`, `{ status = { status = 429, code = "insufficient_quota" } }`,
/// `{ rate_limited = { retry_after_secs = 2, retry_after_ms = 1500 } }`, `"hang"`,
/// `"reset"`, `"truncate"`, `"malformed_json"`, `{ wrong_count = -1 }`,
/// `"shuffle_index"`, `"duplicate_index"`, `"nan"`, `{ wrong_dimension = -1 }`.
///
/// Latency adds up with every other fault. Of the faults that answer instead
/// of the server (status, rate_limited, hang, reset), the first that fires
/// wins. The row faults (wrong_count, shuffle_index, duplicate_index, nan,
/// wrong_dimension) change a successful embedding answer and do nothing on
/// other routes; truncate and malformed_json change whatever body is sent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Waits before answering (tokio time: paused-time tests advance it).
    Latency(Latency),
    /// Answers with this status and the provider's error body.
    Status(StatusFault),
    /// Answers 429 with `retry-after` / `retry-after-ms` headers.
    RateLimited(RateLimitedFault),
    /// Never answers (the connection stays open until the client gives up).
    Hang,
    /// Resets the connection (TCP RST) without answering.
    Reset,
    /// Sends the headers and half of the body (with the full `content-length`),
    /// then closes the connection.
    Truncate,
    /// Sends a complete HTTP answer whose body is not valid JSON.
    MalformedJson,
    /// Removes (negative) or appends (positive) that many rows.
    WrongCount(i64),
    /// Sends the rows out of order. OpenAI rows keep their correct `index`
    /// (a client that sorts by `index` is right); Ollama rows have no index,
    /// so they are simply in the wrong order. No effect on a single row.
    ShuffleIndex,
    /// OpenAI: the second row claims the first row's `index` (with one input, a
    /// second row with index 0 is added). Ollama: the second vector is a copy
    /// of the first (or is added).
    DuplicateIndex,
    /// The first component of the first row is NaN: real NaN bits in base64,
    /// `null` in JSON floats (JSON has no NaN).
    Nan,
    /// The first row has this many components more (or fewer) than it should.
    WrongDimension(i64),
}

/// A delay, fixed or drawn uniformly from a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// Always this long.
    Fixed(Duration),
    /// Uniform in `[min, max]`.
    Uniform {
        /// The shortest delay.
        min: Duration,
        /// The longest delay.
        max: Duration,
    },
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Fixed(#[serde(with = "humantime_serde")] Duration),
            Uniform {
                #[serde(with = "humantime_serde")]
                min: Duration,
                #[serde(with = "humantime_serde")]
                max: Duration,
            },
        }
        match Repr::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "latency is a duration (\"200ms\") or a range ({ min = \"10ms\", max = \"50ms\" })",
            )
        })? {
            Repr::Fixed(d) => Ok(Latency::Fixed(d)),
            Repr::Uniform { min, max } => Ok(Latency::Uniform { min, max }),
        }
    }
}

/// An error answer: the status, and optionally the error's code, type and message.
///
/// TOML: `503`, or `{ status = 429, code = "insufficient_quota" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusFault {
    /// The HTTP status.
    pub status: u16,
    /// OpenAI's `error.code` (e.g. `insufficient_quota`); a default by status when unset.
    pub code: Option<String>,
    /// OpenAI's `error.type`; a default by status when unset.
    pub error_type: Option<String>,
    /// The error message; a default by status when unset.
    pub message: Option<String>,
}

impl StatusFault {
    /// An error answer with `status` and the default body for it.
    pub fn new(status: u16) -> Self {
        StatusFault {
            status,
            code: None,
            error_type: None,
            message: None,
        }
    }
}

impl<'de> Deserialize<'de> for StatusFault {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            status: u16,
            #[serde(default)]
            code: Option<String>,
            #[serde(default, rename = "type")]
            error_type: Option<String>,
            #[serde(default)]
            message: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Status(u16),
            Full(Full),
        }
        match Repr::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "status is a number (503) or a table ({ status = 429, code = \"insufficient_quota\", type = \"...\", message = \"...\" })",
            )
        })? {
            Repr::Status(status) => Ok(StatusFault::new(status)),
            Repr::Full(f) => Ok(StatusFault {
                status: f.status,
                code: f.code,
                error_type: f.error_type,
                message: f.message,
            }),
        }
    }
}

/// A 429 answer and what it tells the client about waiting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitedFault {
    /// `retry-after: <seconds>`.
    pub retry_after_secs: Option<u64>,
    /// `retry-after-ms: <milliseconds>`.
    pub retry_after_ms: Option<u64>,
    /// Send `retry-after` as an HTTP date (now + `retry_after_secs`) instead of seconds.
    pub http_date: bool,
    /// `x-should-retry: true|false`.
    pub should_retry: Option<bool>,
}
