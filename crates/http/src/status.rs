//! Failed answers and broken transports as typed [`Error`]s, and the
//! headers a server uses to say when to come back.

use std::time::{Duration, SystemTime};

use embeddings_core::{Error, ErrorKind, RateLimitSnapshot};
use reqwest::header::HeaderMap;

use crate::text::{MAX_EXCERPT, Masker, excerpt};
use crate::url::redact_url;

/// The longest wait a server's header is believed for (a larger or absurd
/// value is capped here; the retry layer caps it further).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The default status → kind table; providers adjust it from the body.
///
/// | status | kind |
/// | --- | --- |
/// | 400, 413, 422 and other 4xx | `InvalidInput` |
/// | 401 | `Authentication` |
/// | 403 | `PermissionDenied` |
/// | 404 | `NotFound` |
/// | 408, 504 | `Timeout` (retryable) |
/// | 409 | `Unavailable` (retryable: a conflict that clears) |
/// | 429 | `RateLimited` |
/// | other 5xx | `Unavailable` |
/// | anything else (1xx, 3xx) | `InvalidResponse` |
pub fn default_kind(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::Authentication,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        408 | 504 => ErrorKind::Timeout,
        409 => ErrorKind::Unavailable,
        429 => ErrorKind::RateLimited,
        400..=499 => ErrorKind::InvalidInput,
        500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::InvalidResponse,
    }
}

/// Whether an error text speaks of an over-long input (the wordings of
/// OpenAI, vLLM, TEI, Ollama and llama.cpp).
pub fn is_context_length_text(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("maximum context length")
        || (lower.contains("context") && (lower.contains("length") || lower.contains("exceed")))
        || lower.contains("input length exceeds")
        || lower.contains("too many tokens")
}

/// The error object of a body, for the shapes servers use:
/// `{"error": {"message", "code", "type"}}`, `{"error": "text"}`,
/// `{"message": ...}`, `{"detail": ...}`, else the text itself. Every field
/// is masked and cut to an [`excerpt`] on one printable line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetail {
    /// The message (empty when the body said nothing).
    pub message: String,
    /// `error.code`, when given.
    pub code: Option<String>,
    /// `error.type`, when given.
    pub r#type: Option<String>,
}

impl ErrorDetail {
    /// Reads `body` (at most the first [`MAX_ERROR_BODY`](crate::MAX_ERROR_BODY)
    /// bytes are ever read from the wire).
    pub fn from_body(body: &[u8], masker: &Masker) -> Self {
        fn text(v: &serde_json::Value) -> Option<String> {
            match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }
        }
        let mut d = ErrorDetail::default();
        if let Ok(serde_json::Value::Object(env)) = serde_json::from_slice(body) {
            match env.get("error") {
                Some(serde_json::Value::Object(o)) => {
                    d.message = o.get("message").and_then(text).unwrap_or_default();
                    d.code = o.get("code").and_then(text);
                    d.r#type = o.get("type").and_then(text);
                }
                Some(v) => d.message = text(v).unwrap_or_default(),
                None => {}
            }
            if d.message.is_empty() {
                d.message = env
                    .get("message")
                    .or(env.get("detail"))
                    .and_then(text)
                    .unwrap_or_default();
            }
        }
        if d.message.is_empty() {
            d.message = String::from_utf8_lossy(body).trim().to_owned();
        }
        d.message = masker.excerpt(&d.message, MAX_EXCERPT);
        d.code = d.code.map(|c| masker.excerpt(&c, 64));
        d.r#type = d.r#type.map(|c| masker.excerpt(&c, 64));
        d
    }

    /// `error.code` or "".
    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    /// `error.type` or "".
    pub fn type_(&self) -> &str {
        self.r#type.as_deref().unwrap_or("")
    }
}

/// Finishes the error of a failed answer: the status, `retry_after` from
/// [`retry_after`], and `x-should-retry: true|false` as the server's word
/// on retryability.
pub fn status_error(
    kind: ErrorKind,
    message: impl Into<String>,
    status: u16,
    headers: &HeaderMap,
) -> Error {
    let mut err = Error::new(kind, message).with_status(status);
    if let Some(after) = retry_after(headers) {
        err = err.with_retry_after(after);
    }
    if kind == ErrorKind::QuotaExceeded {
        err = err.with_retryable(false);
    }
    match header_str(headers, "x-should-retry") {
        Some(v) if v.eq_ignore_ascii_case("true") => err = err.with_retryable(true),
        Some(v) if v.eq_ignore_ascii_case("false") => err = err.with_retryable(false),
        _ => {}
    }
    err
}

/// A header's value as trimmed text.
pub fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// How long the server asks to wait: `retry-after-ms` (milliseconds, a
/// fraction allowed), else `retry-after` (seconds, a fraction allowed, or an
/// HTTP date; a date in the past is zero). Negative, non-numeric or absurd
/// values are ignored or capped at [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(d) = header_str(headers, "retry-after-ms").and_then(|v| parse_wait(v, 1e6)) {
        return Some(d);
    }
    let v = header_str(headers, "retry-after")?;
    parse_retry_after(v)
}

/// One `retry-after` value: seconds (a fraction allowed) or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Some(d) = parse_wait(v, 1e9) {
        return Some(d);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// A non-negative number of units of `nanos_per_unit` nanoseconds.
fn parse_wait(v: &str, nanos_per_unit: f64) -> Option<Duration> {
    let n: f64 = v.trim().parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let nanos = (n * nanos_per_unit).round();
    let max = MAX_RETRY_AFTER.as_nanos() as f64;
    Some(Duration::from_nanos(nanos.min(max) as u64))
}

/// The `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers, or
/// `None` when the server sent none of them.
pub fn rate_limit_snapshot(headers: &HeaderMap) -> Option<RateLimitSnapshot> {
    let num = |name: &str| header_str(headers, name).and_then(|v| v.parse::<u64>().ok());
    let dur = |name: &str| header_str(headers, name).and_then(parse_reset);
    let s = RateLimitSnapshot {
        limit_requests: num("x-ratelimit-limit-requests"),
        remaining_requests: num("x-ratelimit-remaining-requests"),
        reset_requests: dur("x-ratelimit-reset-requests"),
        limit_tokens: num("x-ratelimit-limit-tokens"),
        remaining_tokens: num("x-ratelimit-remaining-tokens"),
        reset_tokens: dur("x-ratelimit-reset-tokens"),
    };
    (s != RateLimitSnapshot::default()).then_some(s)
}

/// Parses reset durations as OpenAI sends them: `"1s"`, `"6m0s"`, `"20ms"`,
/// `"1h2m3.5s"`, or a bare number of seconds.
pub fn parse_reset(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let mut total = 0f64;
    let mut rest = v;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n_end == 0 {
            return None;
        }
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[u_end..];
    }
    (total.is_finite() && total <= 1e9).then(|| Duration::from_secs_f64(total))
}

/// Why a redirect was not followed (the source of a transport error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectRefused {
    /// The URL that answered with the redirect (redacted).
    pub from: String,
    /// Where it pointed (redacted).
    pub to: String,
    /// `true`: to another origin; `false`: too many same-origin hops.
    pub cross_origin: bool,
}

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cross_origin {
            write!(
                f,
                "{} redirected to another origin ({}); not followed, so that no credential \
                 leaves the origin it was configured for: point the base URL at the server \
                 that answers",
                self.from, self.to
            )
        } else {
            write!(
                f,
                "too many redirects (last from {} to {})",
                self.from, self.to
            )
        }
    }
}

impl std::error::Error for RedirectRefused {}

/// Maps a transport failure (connect, timeout, refused redirect, broken
/// body) to a typed error naming the server (`host`, or the request's URL
/// redacted); `hint` is appended to connection failures. The reqwest error
/// is kept as the source without its URL (which could hold a query key).
pub fn transport_error(e: reqwest::Error, host: &str, hint: Option<&str>) -> Error {
    let shown = e.url().map(redact_url);
    let server = shown.as_deref().unwrap_or(host);
    if e.is_redirect() {
        let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(s) = src {
            if let Some(r) = s.downcast_ref::<RedirectRefused>() {
                let kind = if r.cross_origin {
                    ErrorKind::InvalidConfig
                } else {
                    ErrorKind::InvalidResponse
                };
                return Error::new(kind, excerpt(&r.to_string(), 2 * MAX_EXCERPT))
                    .with_source(e.without_url());
            }
            src = s.source();
        }
    }
    let (kind, what) = if e.is_timeout() {
        (
            ErrorKind::Timeout,
            format!("{server} did not answer in time"),
        )
    } else if e.is_connect() {
        (ErrorKind::Connection, format!("cannot connect to {server}"))
    } else if e.is_body() || e.is_decode() {
        (
            ErrorKind::Connection,
            format!("the connection to {server} broke while reading the answer"),
        )
    } else if e.is_builder() {
        (
            ErrorKind::InvalidConfig,
            format!("cannot build a request to {server}"),
        )
    } else {
        (
            ErrorKind::Connection,
            format!("the request to {server} failed before an answer arrived"),
        )
    };
    // The chain of causes says why (refused, reset, dns, ...); no header is in it.
    let mut chain = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    let mut message = excerpt(&format!("{what}{chain}"), 2 * MAX_EXCERPT);
    if let (ErrorKind::Connection, Some(h)) = (kind, hint) {
        if e.is_connect() {
            message.push_str(" (");
            message.push_str(h);
            message.push(')');
        }
    }
    Error::new(kind, message).with_source(e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_default_table() {
        for (s, k) in [
            (400, ErrorKind::InvalidInput),
            (413, ErrorKind::InvalidInput),
            (422, ErrorKind::InvalidInput),
            (401, ErrorKind::Authentication),
            (403, ErrorKind::PermissionDenied),
            (404, ErrorKind::NotFound),
            (408, ErrorKind::Timeout),
            (504, ErrorKind::Timeout),
            (409, ErrorKind::Unavailable),
            (429, ErrorKind::RateLimited),
            (500, ErrorKind::Unavailable),
            (503, ErrorKind::Unavailable),
            (302, ErrorKind::InvalidResponse),
        ] {
            assert_eq!(default_kind(s), k, "{s}");
        }
    }

    #[test]
    fn retry_after_headers() {
        let h = headers(&[("retry-after-ms", "1500"), ("retry-after", "9")]);
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let h = headers(&[("retry-after-ms", "12.5")]);
        assert_eq!(retry_after(&h), Some(Duration::from_micros(12_500)));
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "0.5")])),
            Some(Duration::from_millis(500))
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let after = retry_after(&headers(&[("retry-after", &later)])).unwrap();
        assert!(after <= Duration::from_secs(120) && after >= Duration::from_secs(100));
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(
            retry_after(&headers(&[("retry-after", past)])),
            Some(Duration::ZERO)
        );
        for bad in ["soon", "-3", "NaN", "inf"] {
            assert_eq!(
                retry_after(&headers(&[("retry-after", bad)])),
                None,
                "{bad}"
            );
        }
        assert_eq!(
            retry_after(&headers(&[("retry-after", "1e300")])),
            Some(MAX_RETRY_AFTER)
        );
        // A bad `retry-after-ms` falls back to `retry-after`.
        let h = headers(&[("retry-after-ms", "x"), ("retry-after", "3")]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
    }

    #[test]
    fn x_should_retry_overrides() {
        let e = status_error(
            ErrorKind::InvalidInput,
            "x",
            400,
            &headers(&[("x-should-retry", "true")]),
        );
        assert!(e.is_retryable());
        let e = status_error(
            ErrorKind::Unavailable,
            "x",
            503,
            &headers(&[("x-should-retry", "false")]),
        );
        assert!(!e.is_retryable());
        let e = status_error(
            ErrorKind::RateLimited,
            "x",
            429,
            &headers(&[("x-should-retry", "maybe")]),
        );
        assert!(e.is_retryable());
        assert_eq!(e.status(), Some(429));
    }

    #[test]
    fn error_details_of_every_shape() {
        let m = Masker::new();
        let d = ErrorDetail::from_body(br#"{"error":{"message":"no","code":"c1","type":"t"}}"#, &m);
        assert_eq!((d.message.as_str(), d.code(), d.type_()), ("no", "c1", "t"));
        for (body, want) in [
            (&br#"{"error":"overloaded"}"#[..], "overloaded"),
            (br#"{"message":"m"}"#, "m"),
            (br#"{"detail":[{"loc":1}]}"#, r#"[{"loc":1}]"#),
            (b"plain\r\ntext", "plain text"),
            (b"", ""),
        ] {
            assert_eq!(ErrorDetail::from_body(body, &m).message, want);
        }
        let d = ErrorDetail::from_body(&[0xff, 0xfe, b'x'], &m);
        assert!(d.message.contains('x'));
        let d = ErrorDetail::from_body("x".repeat(100_000).as_bytes(), &m);
        assert!(d.message.chars().count() <= MAX_EXCERPT + 1);
    }

    #[test]
    fn rate_limit_headers() {
        assert_eq!(rate_limit_snapshot(&HeaderMap::new()), None);
        let s = rate_limit_snapshot(&headers(&[
            ("x-ratelimit-limit-requests", "3000"),
            ("x-ratelimit-remaining-requests", "2999"),
            ("x-ratelimit-reset-requests", "20ms"),
            ("x-ratelimit-limit-tokens", "1000000"),
            ("x-ratelimit-remaining-tokens", "999990"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]))
        .unwrap();
        assert_eq!(s.limit_requests, Some(3000));
        assert_eq!(s.remaining_requests, Some(2999));
        assert_eq!(s.reset_requests, Some(Duration::from_millis(20)));
        assert_eq!(s.remaining_tokens, Some(999_990));
        assert_eq!(s.reset_tokens, Some(Duration::from_secs(360)));
    }

    #[test]
    fn reset_durations() {
        for (s, d) in [
            ("1s", Duration::from_secs(1)),
            ("1h2m3.5s", Duration::from_millis(3_723_500)),
            ("250ms", Duration::from_millis(250)),
            ("7", Duration::from_secs(7)),
        ] {
            assert_eq!(parse_reset(s), Some(d), "{s}");
        }
        for s in ["", "s", "1x", "-1s", "1.2.3s"] {
            assert_eq!(parse_reset(s), None, "{s}");
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn header_parsers_never_panic(v in "\\PC{0,40}") {
                let _ = parse_retry_after(&v);
                let _ = parse_reset(&v);
                let _ = parse_wait(&v, 1e6);
            }

            #[test]
            fn any_wait_in_range_is_read_back(ms in 0u64..10_000_000) {
                let h = headers(&[("retry-after-ms", &ms.to_string())]);
                prop_assert_eq!(retry_after(&h), Some(Duration::from_millis(ms)));
            }

            #[test]
            fn error_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
                let d = ErrorDetail::from_body(&body, &Masker::new());
                prop_assert!(d.message.chars().count() <= MAX_EXCERPT + 1);
            }
        }
    }
}
