//! Configuration: serde structs read from TOML or JSON, validated with
//! messages that name the bad key and value.
//!
//! Common keys are typed here; each provider's own section (`[openai]`,
//! `[ollama]`, `[mock]`, ...) is kept untyped and parsed by that provider
//! with [`Config::provider_section`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The environment variables [`Config::apply_env`] reads.
pub const ENV_PROVIDER: &str = "EMBEDDINGS_PROVIDER";
/// Model override from the environment.
pub const ENV_MODEL: &str = "EMBEDDINGS_MODEL";
/// Dimension override from the environment.
pub const ENV_DIMENSIONS: &str = "EMBEDDINGS_DIMENSIONS";

/// The largest `dimensions` accepted (no embedding model comes close).
pub const MAX_DIMENSIONS: usize = 65_536;
/// The largest `batch.max_batch_size` accepted.
pub const MAX_BATCH_SIZE: usize = 1_000_000;
/// The largest `batch.concurrency` and `concurrency.max_in_flight` accepted.
pub const MAX_CONCURRENCY: usize = 4_096;

/// The typed top-level keys (every other key is a section, parsed by its owner).
const TOP_LEVEL_KEYS: &str = "provider, model, dimensions, base_url, api_key, input_type, \
                              output_type, batch, retry, rate_limit, concurrency, timeout";

/// An API key: deserialized from a string only, and a value of another type
/// is refused without being echoed (it may be a secret given as a number).
fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<SecretString>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(SecretString::from(v.to_owned())))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom(
                "`api_key` must be a string (the value is not shown)",
            ))
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom(
                "`api_key` must be a string (the value is not shown)",
            ))
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom(
                "`api_key` must be a string (the value is not shown)",
            ))
        }
        fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<Self::Value, E> {
            Err(E::custom(
                "`api_key` must be a string (the value is not shown)",
            ))
        }
        fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<Self::Value, E> {
            Err(E::custom(
                "`api_key` must be a string (the value is not shown)",
            ))
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom(
                "`api_key` must be a string (the value is not shown)",
            ))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(serde::de::Error::custom(
                "`api_key` must be a string (the value is not shown)",
            ))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(serde::de::Error::custom(
                "`api_key` must be a string (the value is not shown)",
            ))
        }
    }
    d.deserialize_option(V)
}

/// A serde message with the offending value cut out: `invalid type:
/// string "sk-..", expected ..` becomes `invalid type: string, expected ..`.
/// Values in configuration may be secrets; key names are kept.
pub fn redact_serde_message(msg: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let (head, tail) = match rest.find(", expected") {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let kind_end = head
                .find(|c: char| c == '`' || c == '"' || c == '\'' || c.is_ascii_digit())
                .unwrap_or(head.len());
            let kind = head[..kind_end].trim_end();
            return format!("{prefix}{kind}{tail}");
        }
    }
    msg.to_owned()
}

/// What to do with an input longer than the provider's `max_input_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverLengthPolicy {
    /// Fail the call with an error that names the input's index.
    #[default]
    Error,
    /// Keep the first `max_input_tokens` tokens.
    Truncate,
    /// Split by tokens, embed the pieces, average them weighted by token
    /// count, and renormalise.
    Chunk,
}

/// The batch layer: splitting, over-long inputs, concurrency of sub-batches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Whether the layer is applied.
    pub enabled: bool,
    /// Lowers the provider's `max_batch_size` (never raises it).
    pub max_batch_size: Option<usize>,
    /// Lowers the provider's `max_batch_tokens` (never raises it).
    pub max_batch_tokens: Option<usize>,
    /// Sub-batches of one call run at most this many at a time; `None`: the
    /// provider's [`ProviderInfo::concurrency`](crate::ProviderInfo::concurrency)
    /// (16 for hosted services, 4 for Ollama, TEI and in-process models).
    pub concurrency: Option<usize>,
    /// What to do with over-long inputs.
    pub over_length: OverLengthPolicy,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            enabled: true,
            max_batch_size: None,
            max_batch_tokens: None,
            concurrency: None,
            over_length: OverLengthPolicy::Error,
        }
    }
}

/// The retry layer: exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Whether the layer is applied.
    pub enabled: bool,
    /// Retries after the first attempt (so `max_retries + 1` attempts at most).
    pub max_retries: u32,
    /// The first wait.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Give up once this much time has passed since the first attempt.
    #[serde(with = "humantime_serde")]
    pub max_elapsed: Duration,
    /// The longest server-requested `retry-after` that is honoured.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
    /// Randomise waits to avoid synchronised retries.
    pub jitter: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_elapsed: Duration::from_secs(120),
            max_retry_after: Duration::from_secs(60),
            jitter: true,
        }
    }
}

/// The rate-limit layer: requests and tokens per minute, shared by clones,
/// and optionally by every process that names the same Redis server and key.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per minute (none = unlimited).
    pub requests_per_minute: Option<u32>,
    /// Tokens per minute (none = unlimited).
    pub tokens_per_minute: Option<u32>,
    /// Slow down when the server's `x-ratelimit-remaining-*` headers say the
    /// budget is nearly spent.
    pub adaptive: bool,
    /// A Redis server (`redis://[user:password@]host:port/db`) holding the
    /// budget for every process with the same `key` (needs the facade's
    /// `redis` feature). None: the budget is this process's.
    pub shared: Option<String>,
    /// The shared budget's name: processes with the same key draw from one
    /// budget (none: `default`).
    pub key: Option<String>,
    /// When the shared budget's server cannot be reached: `true` (the
    /// default) falls back to this process's own limiter and warns once;
    /// `false` fails the request with a typed error.
    pub fail_open: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            requests_per_minute: None,
            tokens_per_minute: None,
            adaptive: true,
            shared: None,
            key: None,
            fail_open: true,
        }
    }
}

/// The shared server's URL without its password.
impl std::fmt::Debug for RateLimitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = self
            .shared
            .as_deref()
            .map(|u| match (u.find("://"), u.rfind('@')) {
                (Some(s), Some(at)) if at > s => format!("{}://***@{}", &u[..s], &u[at + 1..]),
                _ => u.to_owned(),
            });
        f.debug_struct("RateLimitConfig")
            .field("requests_per_minute", &self.requests_per_minute)
            .field("tokens_per_minute", &self.tokens_per_minute)
            .field("adaptive", &self.adaptive)
            .field("shared", &shared)
            .field("key", &self.key)
            .field("fail_open", &self.fail_open)
            .finish()
    }
}

/// The concurrency layer: a bound on requests in flight, shared by clones.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConcurrencyConfig {
    /// Most requests in flight at once (none = unbounded).
    pub max_in_flight: Option<usize>,
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        ConcurrencyConfig {
            max_in_flight: Some(16),
        }
    }
}

/// The timeout layer: a deadline per attempt.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutConfig {
    /// Deadline of one attempt (none = no deadline).
    #[serde(with = "humantime_serde")]
    pub per_attempt: Option<Duration>,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            per_attempt: Some(Duration::from_secs(60)),
        }
    }
}

fn default_provider() -> String {
    "mock".to_owned()
}

/// The library's configuration.
///
/// ```toml
/// provider = "mock"          # a registered provider name
/// model = "mock"             # default: the provider's
/// dimensions = 256           # default: the model's
/// # base_url = "http://127.0.0.1:8080/v1"
/// # api_key = "..."          # default: the provider's env var
///
/// [batch]
/// max_batch_size = 512
/// concurrency = 4
/// over_length = "error"      # error | truncate | chunk
///
/// [retry]
/// max_retries = 2
/// initial_backoff = "500ms"
///
/// [rate_limit]
/// tokens_per_minute = 1000000
///
/// [mock]                     # the provider's own section
/// latency = "5ms"
/// ```
#[derive(Clone, Deserialize)]
pub struct Config {
    /// Registered provider name (case-insensitive). Default `"mock"`.
    #[serde(default = "default_provider")]
    pub provider: String,
    /// Model name; the provider's default when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Output dimension; the model's when absent.
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// Provider endpoint.
    #[serde(default)]
    pub base_url: Option<String>,
    /// API key; providers fall back to their own environment variable.
    #[serde(default, deserialize_with = "secret")]
    pub api_key: Option<SecretString>,
    /// The input type of the `embed` CLI's requests (library calls say it
    /// per request, in [`EmbedRequest`](crate::EmbedRequest)).
    #[serde(default)]
    pub input_type: Option<crate::InputType>,
    /// The output type of the `embed` CLI's requests.
    #[serde(default)]
    pub output_type: Option<crate::OutputType>,
    /// Batch layer settings.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Retry layer settings.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Rate-limit layer settings.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Concurrency layer settings.
    #[serde(default)]
    pub concurrency: ConcurrencyConfig,
    /// Timeout layer settings.
    #[serde(default)]
    pub timeout: TimeoutConfig,
    /// Every other section: providers' (`[openai]`, `[ollama]`, ...) and
    /// layers' (`[prompts]`, `[cache]`, ...), each parsed by its owner with
    /// [`Config::section`]. Parsing checks only that each is a table; which
    /// names are known is decided by the facade, which knows the features.
    #[serde(flatten)]
    pub sections: BTreeMap<String, serde_json::Value>,
}

/// Prints every typed setting; the API key as `[redacted]`; of the other
/// sections only their keys, since they may hold secrets (extra headers).
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Keys<'a>(&'a BTreeMap<String, serde_json::Value>);
        impl std::fmt::Debug for Keys<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut m = f.debug_map();
                for (name, section) in self.0 {
                    let keys: Vec<&str> = section
                        .as_object()
                        .map(|o| o.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    m.entry(name, &keys);
                }
                m.finish()
            }
        }
        f.debug_struct("Config")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("dimensions", &self.dimensions)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("batch", &self.batch)
            .field("retry", &self.retry)
            .field("rate_limit", &self.rate_limit)
            .field("concurrency", &self.concurrency)
            .field("input_type", &self.input_type)
            .field("output_type", &self.output_type)
            .field("timeout", &self.timeout)
            .field("sections", &Keys(&self.sections))
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            provider: default_provider(),
            model: None,
            dimensions: None,
            base_url: None,
            api_key: None,
            input_type: None,
            output_type: None,
            batch: BatchConfig::default(),
            retry: RetryConfig::default(),
            rate_limit: RateLimitConfig::default(),
            concurrency: ConcurrencyConfig::default(),
            timeout: TimeoutConfig::default(),
            sections: BTreeMap::new(),
        }
    }
}

impl Config {
    /// The default configuration for `provider`.
    pub fn for_provider(provider: impl Into<String>) -> Self {
        Config {
            provider: provider.into(),
            ..Config::default()
        }
    }

    /// Parses TOML and validates.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let c: Config = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    let start = span.start.min(text.len());
                    let line_no = text[..start].matches('\n').count() + 1;
                    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
                    let line = text[line_start..].lines().next().unwrap_or("");
                    match line.split_once('=') {
                        Some((key, _)) => format!(" at line {line_no} (`{}`)", key.trim()),
                        None => format!(" at line {line_no}"),
                    }
                })
                .unwrap_or_default();
            Error::config(format!(
                "invalid TOML config{at}: {}",
                redact_serde_message(e.message().trim())
            ))
        })?;
        c.validate()?;
        Ok(c)
    }

    /// Parses JSON and validates.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let c: Config = serde_json::from_str(text).map_err(|e| {
            Error::config(format!(
                "invalid JSON config: {}",
                redact_serde_message(&e.to_string())
            ))
        })?;
        c.validate()?;
        Ok(c)
    }

    /// Reads a file: JSON when its extension is `.json`, TOML otherwise.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read config file {}: {e}", path.display())).with_source(e)
        })?;
        let parsed = if path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("json"))
        {
            Config::from_json_str(&text)
        } else {
            Config::from_toml_str(&text)
        };
        parsed.map_err(|e| {
            let msg = format!("{}: {}", path.display(), e.message());
            e.with_message(msg)
        })
    }

    /// The default configuration overlaid with the environment
    /// (`EMBEDDINGS_PROVIDER`, `EMBEDDINGS_MODEL`, `EMBEDDINGS_DIMENSIONS`).
    pub fn from_env() -> Result<Self> {
        let mut c = Config::default();
        c.apply_env()?;
        c.validate()?;
        Ok(c)
    }

    /// Overlays the `EMBEDDINGS_*` environment variables that are set.
    pub fn apply_env(&mut self) -> Result<()> {
        if let Some(p) = env_nonempty(ENV_PROVIDER) {
            self.provider = p;
        }
        if let Some(m) = env_nonempty(ENV_MODEL) {
            self.model = Some(m);
        }
        if let Some(d) = env_nonempty(ENV_DIMENSIONS) {
            let n = d.parse::<usize>().map_err(|_| {
                Error::config(format!(
                    "{ENV_DIMENSIONS} = {d:?}: expected a positive integer"
                ))
            })?;
            self.dimensions = Some(n);
        }
        Ok(())
    }

    /// Checks every value; the error names the key and the bad value (never
    /// the value of a key that may hold a secret). Does not consult the
    /// provider registry: a file is portable across feature sets, and the
    /// facade checks section names against what the build knows.
    pub fn validate(&self) -> Result<()> {
        fn range(key: &str, v: Option<usize>, max: usize) -> Result<()> {
            match v {
                Some(0) => Err(Error::config(format!("`{key}` = 0: must be at least 1"))),
                Some(n) if n > max => Err(Error::config(format!(
                    "`{key}` = {n}: must be at most {max}"
                ))),
                _ => Ok(()),
            }
        }
        if self.provider.trim().is_empty() {
            return Err(Error::config("`provider` = \"\": must name a provider"));
        }
        if let Some(m) = &self.model {
            if m.trim().is_empty() {
                return Err(Error::config("`model` = \"\": must not be empty"));
            }
        }
        range("dimensions", self.dimensions, MAX_DIMENSIONS)?;
        let rl = &self.rate_limit;
        if rl.shared.is_some() && rl.requests_per_minute.is_none() && rl.tokens_per_minute.is_none()
        {
            return Err(Error::config(
                "`rate_limit.shared` is set, but there is no budget to share: set \
                 `rate_limit.requests_per_minute` and/or `rate_limit.tokens_per_minute`",
            ));
        }
        if rl.key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return Err(Error::config("`rate_limit.key` = \"\": must not be empty"));
        }
        if let Some(u) = &self.base_url {
            if u.trim().is_empty() {
                return Err(Error::config("`base_url` = \"\": must not be empty"));
            }
        }
        range(
            "batch.max_batch_size",
            self.batch.max_batch_size,
            MAX_BATCH_SIZE,
        )?;
        range(
            "batch.max_batch_tokens",
            self.batch.max_batch_tokens,
            usize::MAX,
        )?;
        range("batch.concurrency", self.batch.concurrency, MAX_CONCURRENCY)?;
        range(
            "concurrency.max_in_flight",
            self.concurrency.max_in_flight,
            MAX_CONCURRENCY,
        )?;
        range(
            "rate_limit.requests_per_minute",
            self.rate_limit.requests_per_minute.map(|v| v as usize),
            usize::MAX,
        )?;
        range(
            "rate_limit.tokens_per_minute",
            self.rate_limit.tokens_per_minute.map(|v| v as usize),
            usize::MAX,
        )?;
        if self.retry.max_backoff < self.retry.initial_backoff {
            return Err(Error::config(format!(
                "`retry.max_backoff` = {:?}: must not be shorter than `retry.initial_backoff` = {:?}",
                self.retry.max_backoff, self.retry.initial_backoff
            )));
        }
        if self.timeout.per_attempt == Some(Duration::ZERO) {
            return Err(Error::config(
                "`timeout.per_attempt` = 0s: must be longer than zero (leave it out for no deadline)",
            ));
        }
        for (key, value) in &self.sections {
            if !value.is_object() {
                let found = match value {
                    serde_json::Value::Null => "nothing",
                    serde_json::Value::Bool(_) => "a boolean",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::String(_) => "a string",
                    serde_json::Value::Array(_) => "an array",
                    serde_json::Value::Object(_) => "a table",
                };
                return Err(Error::config(format!(
                    "unknown config key `{key}` (found {found}; the value is not shown): the \
                     top-level keys are {TOP_LEVEL_KEYS}, and every other key must be a table \
                     such as [{key}] (a provider's or a layer's section)"
                )));
            }
        }
        Ok(())
    }

    /// The names of the sections present (`[openai]`, `[prompts]`, ...).
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str)
    }

    /// Parses a section (`[name]`, case-insensitive), or `T::default()` when
    /// absent. Unknown keys in the section are an error that names them; a
    /// bad value is named by its key, and not echoed (it may be a secret).
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T> {
        let found = self
            .sections
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name));
        match found {
            None => Ok(T::default()),
            Some((key, value)) => T::deserialize(value).map_err(|e| {
                Error::config(format!(
                    "in section [{key}]: {}",
                    redact_serde_message(&e.to_string())
                ))
            }),
        }
    }

    /// A provider's section: the same as [`Config::section`].
    pub fn provider_section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T> {
        self.section(name)
    }

    /// Whether a section of that name (case-insensitive) is present.
    pub fn has_section(&self, name: &str) -> bool {
        self.sections.keys().any(|k| k.eq_ignore_ascii_case(name))
    }
}

fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::from_toml_str("").unwrap();
        assert_eq!(c.provider, "mock");
        assert_eq!(c.retry.max_retries, 2);
        assert_eq!(c.retry.initial_backoff, Duration::from_millis(500));
        assert_eq!(c.retry.max_backoff, Duration::from_secs(8));
        assert_eq!(c.timeout.per_attempt, Some(Duration::from_secs(60)));
        assert!(c.batch.enabled);
    }

    #[test]
    fn toml_and_json_give_the_same_config() {
        let t = Config::from_toml_str(
            "provider = \"mock\"\nmodel = \"m\"\ndimensions = 8\n[retry]\nmax_retries = 5\ninitial_backoff = \"100ms\"\n[batch]\nover_length = \"chunk\"\n",
        )
        .unwrap();
        let j = Config::from_json_str(
            r#"{"provider":"mock","model":"m","dimensions":8,"retry":{"max_retries":5,"initial_backoff":"100ms"},"batch":{"over_length":"chunk"}}"#,
        )
        .unwrap();
        for c in [&t, &j] {
            assert_eq!(c.model.as_deref(), Some("m"));
            assert_eq!(c.dimensions, Some(8));
            assert_eq!(c.retry.max_retries, 5);
            assert_eq!(c.retry.initial_backoff, Duration::from_millis(100));
            assert_eq!(c.batch.over_length, OverLengthPolicy::Chunk);
        }
    }

    #[test]
    fn dimension_zero_names_key_and_value() {
        let e = Config::from_toml_str("dimensions = 0").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("`dimensions` = 0"), "{e}");
    }

    #[test]
    fn unknown_top_level_key_is_named() {
        let e = Config::from_toml_str("modle = \"x\"").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("unknown config key `modle`"), "{e}");
    }

    #[test]
    fn a_secret_in_the_wrong_place_is_never_echoed() {
        for (text, json) in [
            ("openai = \"sk-SECRET-1234567890\"", false),
            ("api_key = 1234567890123", false),
            (r#"{"api_key": 1234567890123}"#, true),
            (r#"{"api_key": ["sk-SECRET-1234567890"]}"#, true),
            (r#"{"openai": "sk-SECRET-1234567890"}"#, true),
        ] {
            let e = if json {
                Config::from_json_str(text).unwrap_err()
            } else {
                Config::from_toml_str(text).unwrap_err()
            };
            let shown = format!("{e} {e:?}");
            assert!(
                !shown.contains("SECRET") && !shown.contains("1234567890"),
                "{text}: {shown}"
            );
            assert!(
                shown.contains("openai") || shown.contains("api_key"),
                "{text}: {shown}"
            );
        }
        // A provider's own section: its parser's error names the key, not the value.
        #[derive(Debug, Default, serde::Deserialize)]
        #[allow(dead_code)]
        struct Section {
            api_key: Option<String>,
        }
        let c = Config::from_toml_str("[openai]\napi_key = 1234567890123").unwrap();
        let e = c.section::<Section>("openai").unwrap_err();
        assert!(!e.to_string().contains("1234567890123"), "{e}");
        assert!(e.to_string().contains("[openai]"), "{e}");
    }

    #[test]
    fn sizes_beyond_the_maxima_are_refused() {
        for (text, key) in [
            ("dimensions = 9223372036854775807", "dimensions"),
            (
                "[batch]\nmax_batch_size = 10000000000",
                "batch.max_batch_size",
            ),
            ("[batch]\nconcurrency = 100000", "batch.concurrency"),
        ] {
            let e = Config::from_toml_str(text).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
            assert!(e.to_string().contains("at most"), "{text}: {e}");
        }
        // Beyond u64: a clear parse error, not a panic.
        assert!(Config::from_toml_str("dimensions = 18446744073709551616").is_err());
    }

    #[test]
    fn input_and_output_types_are_read() {
        let c = Config::from_toml_str("input_type = \"query\"\noutput_type = \"ubinary\"").unwrap();
        assert_eq!(c.input_type, Some(crate::InputType::Query));
        assert_eq!(c.output_type, Some(crate::OutputType::Ubinary));
        let e = Config::from_toml_str("output_type = \"int4\"").unwrap_err();
        assert!(e.to_string().contains("int4"), "{e}");
    }

    #[test]
    fn unknown_key_in_typed_section_is_named() {
        let e = Config::from_toml_str("[retry]\nmax_retrys = 3").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("max_retrys"), "{e}");
    }

    #[test]
    fn wrong_type_is_reported() {
        let e = Config::from_toml_str("dimensions = \"many\"").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("line 1 (`dimensions`)"), "{e}");
        assert!(e.to_string().contains("invalid type: string"), "{e}");
        let e = Config::from_json_str("{not json").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    }

    #[test]
    fn bad_layer_values_are_named() {
        for (text, key) in [
            ("[batch]\nconcurrency = 0", "batch.concurrency"),
            ("[batch]\nmax_batch_size = 0", "batch.max_batch_size"),
            (
                "[rate_limit]\ntokens_per_minute = 0",
                "rate_limit.tokens_per_minute",
            ),
            (
                "[retry]\ninitial_backoff = \"10s\"\nmax_backoff = \"1s\"",
                "retry.max_backoff",
            ),
            ("[timeout]\nper_attempt = \"0s\"", "timeout.per_attempt"),
            ("model = \"\"", "model"),
        ] {
            let e = Config::from_toml_str(text).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn api_key_is_redacted_in_debug() {
        let c = Config::from_toml_str("api_key = \"sk-very-secret\"").unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("sk-very-secret"), "{dbg}");
        assert!(dbg.contains("api_key: Some(\"[redacted]\")"), "{dbg}");
    }

    #[test]
    fn provider_section_values_are_not_in_debug() {
        let mut c = Config::default();
        c.sections.insert(
            "some".into(),
            serde_json::json!({"headers": {"x-secret": "hunter2"}, "encoding_format": "float"}),
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(
            dbg.contains("\"some\": [\"encoding_format\", \"headers\"]"),
            "{dbg}"
        );
    }

    #[test]
    fn missing_file_is_a_config_error_naming_the_path() {
        let e = Config::from_file("/definitely/not/here.toml").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("/definitely/not/here.toml"), "{e}");
    }
}
