//! The `[ollama]` configuration section and the server address.

use std::collections::BTreeMap;
use std::fmt;

use embeddings_core::{Error, JsonValue, Result};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The default server, as Ollama's own clients use it.
pub const DEFAULT_HOST: &str = "http://localhost:11434";
/// The environment variable naming the server (Ollama's own).
pub const ENV_HOST: &str = "OLLAMA_HOST";
/// The environment variable holding a bearer key for a hosted or proxied
/// Ollama, used when the configuration has no `api_key`.
pub const ENV_API_KEY: &str = "OLLAMA_API_KEY";

/// The `[ollama]` section of the configuration. Every key is optional;
/// unknown keys are an error that names them.
///
/// ```toml
/// [ollama]
/// keep_alive = "10m"          # or seconds: 600; -1 keeps the model loaded, 0 unloads it
/// truncate = false            # fail on over-long inputs instead of cutting them
/// headers = { "X-Team" = "search" }
/// max_batch_size = 128
/// connect_timeout = "5s"      # default 10s
/// request_timeout = "120s"    # default none (the timeout layer's)
///
/// [ollama.options]            # passed through to Ollama as `options`
/// num_ctx = 8192
/// num_thread = 8
/// ```
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OllamaSection {
    /// Sent as `truncate`: whether Ollama cuts inputs longer than the
    /// context (its default) or fails them. Not sent when absent.
    pub truncate: Option<bool>,
    /// Sent as `keep_alive`: how long Ollama keeps the model loaded after
    /// the request. Not sent when absent (Ollama's default is 5 minutes).
    pub keep_alive: Option<KeepAlive>,
    /// Sent as `options` unchanged (model parameters such as `num_ctx`,
    /// `num_thread`, `num_gpu`). Not sent when absent.
    pub options: Option<serde_json::Map<String, JsonValue>>,
    /// Extra HTTP headers on every request (for a proxy or a hosted Ollama).
    /// Their values are never printed.
    pub headers: BTreeMap<String, String>,
    /// Most inputs the batch layer puts in one request (default 256).
    pub max_batch_size: Option<usize>,
    /// Most tokens of one input the batch layer plans with (default: the
    /// model's context length from `/api/show` once known, else 2048;
    /// never more than `options.num_ctx`).
    pub max_input_tokens: Option<usize>,
    /// TCP/TLS connect timeout (default 10 s).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Option<std::time::Duration>,
    /// Deadline of a whole request (default none: the timeout layer's; a
    /// model that loads first may take long).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Option<std::time::Duration>,
}

impl fmt::Debug for OllamaSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .keys()
            .map(|k| (k.as_str(), "[redacted]"))
            .collect();
        f.debug_struct("OllamaSection")
            .field("truncate", &self.truncate)
            .field("keep_alive", &self.keep_alive)
            .field("options", &self.options)
            .field("headers", &headers)
            .field("max_batch_size", &self.max_batch_size)
            .field("max_input_tokens", &self.max_input_tokens)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl OllamaSection {
    /// Reads the `[ollama]` section of `config` (the default when absent);
    /// a bad value is an error naming its key, such as `ollama.keep_alive`.
    pub fn from_config(config: &embeddings_core::Config) -> Result<Self> {
        let section: Result<OllamaSection> = config.provider_section(crate::NAME);
        let section = match section {
            Ok(s) => s,
            Err(e) => {
                // Name the offending key: parse the keys one at a time.
                let Ok(raw) =
                    config.provider_section::<serde_json::Map<String, JsonValue>>(crate::NAME)
                else {
                    return Err(e);
                };
                for (key, value) in &raw {
                    let one =
                        JsonValue::Object([(key.clone(), value.clone())].into_iter().collect());
                    if let Err(err) = OllamaSection::deserialize(&one) {
                        return Err(Error::config(format!("`ollama.{key}`: {err}")));
                    }
                }
                return Err(e);
            }
        };
        section.validate()?;
        Ok(section)
    }

    /// Checks every value; the error names the key and the bad value.
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("ollama.max_batch_size", self.max_batch_size),
            ("ollama.max_input_tokens", self.max_input_tokens),
        ] {
            if v == Some(0) {
                return Err(Error::config(format!("`{key}` = 0: must be at least 1")));
            }
        }
        if let Some(KeepAlive::Duration(s)) = &self.keep_alive {
            if !is_go_duration(s) {
                return Err(Error::config(format!(
                    "`ollama.keep_alive` = {s:?}: not a duration (use e.g. \"5m\", \"1h30m\", \
                     \"-1m\", or a number of seconds)"
                )));
            }
        }
        for (name, value) in &self.headers {
            if embeddings_http::reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(Error::config(format!(
                    "`ollama.headers`: {name:?} is not a valid HTTP header name"
                )));
            }
            if embeddings_http::reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(Error::config(format!(
                    "`ollama.headers`: the value of {name:?} is not a valid HTTP header value"
                )));
            }
        }
        Ok(())
    }

    /// `options.num_ctx`, when set to a positive integer.
    pub(crate) fn num_ctx(&self) -> Option<usize> {
        let n = self.options.as_ref()?.get("num_ctx")?.as_u64()?;
        usize::try_from(n).ok().filter(|&n| n > 0)
    }
}

/// Ollama's `keep_alive`: a duration string (`"5m"`, `"1h30m"`; negative
/// such as `"-1m"` keeps the model loaded, `"0"` unloads it at once) or a
/// whole number of seconds. Serialised as given; a string holding only a
/// number (`"300"`) is read as seconds, since Ollama refuses it as a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeepAlive {
    /// A Go duration string such as `"10m"`.
    Duration(String),
    /// Seconds; negative keeps the model loaded, `0` unloads it.
    Seconds(i64),
}

impl Serialize for KeepAlive {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            KeepAlive::Duration(d) => s.serialize_str(d),
            KeepAlive::Seconds(n) => s.serialize_i64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for KeepAlive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeepAlive;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"5m\" or a whole number of seconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<KeepAlive, E> {
                Ok(KeepAlive::Seconds(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<KeepAlive, E> {
                i64::try_from(v)
                    .map(KeepAlive::Seconds)
                    .map_err(|_| E::custom(format!("keep_alive = {v}: too many seconds")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<KeepAlive, E> {
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    Ok(KeepAlive::Seconds(v as i64))
                } else {
                    Err(E::custom(format!(
                        "keep_alive = {v}: give whole seconds, or a string such as \"1500ms\""
                    )))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<KeepAlive, E> {
                let v = v.trim();
                if let Ok(n) = v.parse::<i64>() {
                    // Ollama refuses a bare number in a string; send seconds.
                    return Ok(KeepAlive::Seconds(n));
                }
                if is_go_duration(v) {
                    Ok(KeepAlive::Duration(v.to_owned()))
                } else {
                    Err(E::custom(format!(
                        "keep_alive = {v:?}: not a duration (use e.g. \"5m\", \"1h30m\", \"-1m\", \
                         or a number of seconds)"
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Whether `s` parses with Go's `time.ParseDuration` (as Ollama reads a
/// `keep_alive` string): `[-+]` then one or more `<decimal><unit>` with
/// units `ns us µs ms s m h`, or a bare `0`.
pub(crate) fn is_go_duration(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if body.is_empty() {
        return false;
    }
    if body == "0" {
        return true;
    }
    let mut rest = body;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        if !matches!(
            &rest[..unit_len],
            "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h"
        ) {
            return false;
        }
        rest = &rest[unit_len..];
    }
    true
}

/// The server's base URL from the configured `base_url`, else the value of
/// `OLLAMA_HOST`, else [`DEFAULT_HOST`].
///
/// Accepts Ollama's own forms, as `ollama` itself reads `OLLAMA_HOST`:
/// `host` and `host:port` (http, port 11434 by default), `:port`,
/// `http://host[:port]` (port 80 by default), `https://host[:port]` (443),
/// each with an optional path for a proxy. The bind-all addresses `0.0.0.0`
/// and `[::]` (common in `OLLAMA_HOST` for the server) are reached on the
/// loopback. The result has no trailing slash.
///
/// ```
/// use embeddings_ollama::resolve_host;
/// assert_eq!(resolve_host(None, None).unwrap(), "http://localhost:11434");
/// assert_eq!(resolve_host(None, Some("gpu-box")).unwrap(), "http://gpu-box:11434");
/// assert_eq!(resolve_host(None, Some("0.0.0.0:8080")).unwrap(), "http://127.0.0.1:8080");
/// assert_eq!(
///     resolve_host(Some("https://ollama.example.com/"), Some("ignored")).unwrap(),
///     "https://ollama.example.com"
/// );
/// ```
pub fn resolve_host(base_url: Option<&str>, env_host: Option<&str>) -> Result<String> {
    let (value, origin) = match (
        base_url.map(str::trim).filter(|s| !s.is_empty()),
        env_host.map(str::trim).filter(|s| !s.is_empty()),
    ) {
        (Some(b), _) => (b, "base_url"),
        (None, Some(h)) => (h, ENV_HOST),
        (None, None) => return Ok(DEFAULT_HOST.to_owned()),
    };
    let host = normalize_host(value).ok_or_else(|| {
        Error::config(format!(
            "`{origin}` = {:?}: not an Ollama address (use host, host:port, or \
             http://host:port)",
            embeddings_http::excerpt(&strip_userinfo(value), 200)
        ))
    })?;
    // No `user:pass@`: it would become Basic auth replacing the key, and
    // travel in every request (issue 19). The toolkit refuses it by name.
    embeddings_http::parse_base_url(origin, &host)?;
    Ok(host)
}

/// `value` without what could be a password, for an error message.
fn strip_userinfo(value: &str) -> String {
    match value.rsplit_once('@') {
        Some((_, host)) => format!("[redacted]@{host}"),
        None => value.to_owned(),
    }
}

fn normalize_host(value: &str) -> Option<String> {
    let (scheme, rest, default_port) = match value.split_once("://") {
        None => ("http", value, "11434"),
        Some((s, r)) if s.eq_ignore_ascii_case("http") => ("http", r, "80"),
        Some((s, r)) if s.eq_ignore_ascii_case("https") => ("https", r, "443"),
        Some(_) => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    // Credentials in the address are kept here, then refused by `resolve_host`.
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if hostport.is_empty() && value.contains("://") {
        return None;
    }
    let (host, port) = split_host_port(hostport)?;
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1",
        "[::]" => "[::1]",
        h => h,
    };
    let port = port.unwrap_or(default_port);
    let port: u16 = port.parse().ok()?;
    let user = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let url = format!("{scheme}://{user}{host}:{port}{path}");
    let parsed = embeddings_http::Url::parse(&url).ok()?;
    if parsed.host_str().is_none_or(str::is_empty)
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return None;
    }
    // Let the URL type drop a default port and normalise the host.
    Some(parsed.as_str().trim_end_matches('/').to_owned())
}

/// Splits `host:port`, `[v6]:port`, `host`, `[v6]`, `:port`.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let host = &s[..=end];
        return match &s[end + 1..] {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?))),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p))),
        Some(_) => None, // a bare IPv6 address needs brackets
        None => Some((s, None)),
    }
}

/// The address without credentials, for messages and logs.
pub(crate) fn display_host(host: &embeddings_http::Url) -> String {
    embeddings_http::redact_url(host)
        .trim_end_matches('/')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_host_forms() {
        let cases = [
            ("localhost", "http://localhost:11434"),
            ("gpu-box", "http://gpu-box:11434"),
            ("gpu-box:8080", "http://gpu-box:8080"),
            ("10.0.0.5:11434", "http://10.0.0.5:11434"),
            (":9999", "http://127.0.0.1:9999"),
            ("0.0.0.0", "http://127.0.0.1:11434"),
            ("0.0.0.0:11434", "http://127.0.0.1:11434"),
            ("[::]:11434", "http://[::1]:11434"),
            ("[::1]", "http://[::1]:11434"),
            ("http://gpu-box:8080", "http://gpu-box:8080"),
            ("http://gpu-box", "http://gpu-box"),
            ("HTTP://gpu-box:11434/", "http://gpu-box:11434"),
            ("https://ollama.example.com", "https://ollama.example.com"),
            (
                "https://ollama.example.com:8443",
                "https://ollama.example.com:8443",
            ),
            (
                "https://proxy.example.com/ollama/",
                "https://proxy.example.com/ollama",
            ),
            ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
            ("  gpu-box  ", "http://gpu-box:11434"),
        ];
        for (input, want) in cases {
            assert_eq!(resolve_host(None, Some(input)).unwrap(), want, "{input}");
            assert_eq!(resolve_host(Some(input), None).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn base_url_wins_over_env_and_default_applies() {
        assert_eq!(
            resolve_host(Some("a:1"), Some("b:2")).unwrap(),
            "http://a:1"
        );
        assert_eq!(resolve_host(None, Some("")).unwrap(), DEFAULT_HOST);
        assert_eq!(resolve_host(Some(" "), None).unwrap(), DEFAULT_HOST);
    }

    #[test]
    fn bad_hosts_name_their_origin() {
        for bad in [
            "ftp://x",
            "host:notaport",
            "host:99999",
            "::1",
            "http://",
            "http://h:1?q=1",
        ] {
            let e = resolve_host(None, Some(bad)).unwrap_err();
            assert!(e.to_string().contains(ENV_HOST), "{bad}: {e}");
            let e = resolve_host(Some(bad), None).unwrap_err();
            assert!(e.to_string().contains("base_url"), "{bad}: {e}");
        }
    }

    #[test]
    fn credentials_in_the_address_are_refused_without_being_echoed() {
        for (base, env) in [
            (Some("https://user:pw-hunter2@proxy.example.com"), None),
            (None, Some("user:pw-hunter2@gpu-box:11434")),
            (Some("http://user@gpu-box"), None),
        ] {
            let e = resolve_host(base, env).unwrap_err();
            assert_eq!(e.kind(), embeddings_core::ErrorKind::InvalidConfig);
            assert!(e.to_string().contains("user name or password"), "{e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let h = embeddings_http::Url::parse("http://gpu-box:11434/").unwrap();
        assert_eq!(display_host(&h), "http://gpu-box:11434");
    }

    #[test]
    fn go_durations() {
        for ok in [
            "5m", "1h30m", "10s", "1.5h", ".5h", "300ms", "-1s", "-1m", "0", "+2m", "1µs",
        ] {
            assert!(is_go_duration(ok), "{ok}");
        }
        for bad in [
            "", "5", "-1", "m", "5x", "1..5s", "forever", "-", "5 m", "5m ",
        ] {
            assert!(!is_go_duration(bad), "{bad}");
        }
    }

    #[test]
    fn keep_alive_reads_strings_and_seconds_and_writes_them_back() {
        #[derive(Deserialize)]
        struct T {
            k: KeepAlive,
        }
        let t: T = toml::from_str("k = \"10m\"").unwrap();
        assert_eq!(t.k, KeepAlive::Duration("10m".into()));
        let t: T = toml::from_str("k = -1").unwrap();
        assert_eq!(t.k, KeepAlive::Seconds(-1));
        let t: T = toml::from_str("k = 300").unwrap();
        assert_eq!(serde_json::to_string(&t.k).unwrap(), "300");
        let t: T = toml::from_str("k = \"300\"").unwrap();
        assert_eq!(t.k, KeepAlive::Seconds(300));
        assert_eq!(
            serde_json::to_string(&KeepAlive::Duration("5m".into())).unwrap(),
            "\"5m\""
        );
        assert!(toml::from_str::<T>("k = \"forever\"").is_err());
        assert!(toml::from_str::<T>("k = 1.5").is_err());
        assert!(toml::from_str::<T>("k = true").is_err());
    }

    #[test]
    fn header_values_are_redacted_in_debug() {
        let s = OllamaSection {
            headers: BTreeMap::from([("Authorization".into(), "Bearer hunter2".into())]),
            ..OllamaSection::default()
        };
        let d = format!("{s:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("Authorization"), "{d}");
    }
}
