//! Mapping of HTTP answers and transport failures to typed [`Error`]s, and
//! the rate-limit headers.

use std::time::{Duration, SystemTime};

use embeddings_core::{Error, ErrorKind, RateLimitSnapshot};
use reqwest::header::HeaderMap;
use serde::Deserialize;

/// The longest excerpt of a server's error body kept in a message.
pub const MAX_EXCERPT: usize = 300;

/// Maps a non-success answer to a typed error.
///
/// | status | kind |
/// | --- | --- |
/// | 400, 413, 422 and other 4xx | `InvalidInput` (`context_length_exceeded` → `ContextLengthExceeded`) |
/// | 401 | `Authentication` |
/// | 403 | `PermissionDenied` |
/// | 404 | `NotFound` |
/// | 408 | `Timeout` (retryable) |
/// | 409 | `Unavailable` (retryable) |
/// | 429 `insufficient_quota` | `QuotaExceeded` (not retryable) |
/// | other 429 | `RateLimited`, `retry_after` from `retry-after-ms` / `retry-after` |
/// | 5xx | `Unavailable` |
///
/// `x-should-retry: true|false` overrides retryability; `retry-after-ms`
/// and `retry-after` (seconds or an HTTP date) set `retry_after` on any
/// status. The message is the server's `error.message` (or a short excerpt
/// of the body), cut to [`MAX_EXCERPT`] characters, with anything shaped
/// like an OpenAI key (`sk-...`) masked.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    let detail = ErrorDetail::from_body(body);
    let code = detail.code.as_deref().unwrap_or("");
    let ty = detail.r#type.as_deref().unwrap_or("");
    let msg_lower = detail.message.to_ascii_lowercase();
    let kind = match status {
        400 | 413 | 422
            if code == "context_length_exceeded"
                || msg_lower.contains("maximum context length")
                || msg_lower.contains("context length")
                || msg_lower.contains("too many tokens") =>
        {
            ErrorKind::ContextLengthExceeded
        }
        401 => ErrorKind::Authentication,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        409 => ErrorKind::Unavailable,
        429 if code == "insufficient_quota" || ty == "insufficient_quota" => {
            ErrorKind::QuotaExceeded
        }
        429 => ErrorKind::RateLimited,
        400..=499 => ErrorKind::InvalidInput,
        500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::InvalidResponse,
    };
    let mut message = if detail.message.is_empty() {
        format!("server answered HTTP {status} with an empty body")
    } else {
        detail.message
    };
    if !code.is_empty() && !message.contains(code) {
        message.push_str(&format!(" [{code}]"));
    }
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

/// The error object of an OpenAI-style body, or a best effort for other
/// shapes (`{"error": "text"}`, `{"message": ...}`, `{"detail": ...}`, plain text).
#[derive(Debug, Default)]
struct ErrorDetail {
    message: String,
    code: Option<String>,
    r#type: Option<String>,
}

impl ErrorDetail {
    fn from_body(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Envelope {
            error: Option<serde_json::Value>,
            message: Option<serde_json::Value>,
            detail: Option<serde_json::Value>,
        }
        fn text(v: &serde_json::Value) -> Option<String> {
            match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }
        }
        let mut d = ErrorDetail::default();
        let parsed = serde_json::from_slice::<Envelope>(body).ok();
        if let Some(env) = parsed {
            match env.error {
                Some(serde_json::Value::Object(o)) => {
                    d.message = o.get("message").and_then(text).unwrap_or_default();
                    d.code = o.get("code").and_then(text);
                    d.r#type = o.get("type").and_then(text);
                }
                Some(v) => d.message = text(&v).unwrap_or_default(),
                None => {}
            }
            if d.message.is_empty() {
                d.message = env
                    .message
                    .as_ref()
                    .or(env.detail.as_ref())
                    .and_then(text)
                    .unwrap_or_default();
            }
        }
        if d.message.is_empty() {
            d.message = String::from_utf8_lossy(body).trim().to_owned();
        }
        d.message = excerpt(&mask_keys(&d.message), MAX_EXCERPT);
        d.code = d.code.map(|c| excerpt(&c, 64));
        d
    }
}

/// At most `max` characters of `text` (on a char boundary), with `…` when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// Masks every `sk-...` token (what an OpenAI key looks like) in `text`.
pub(crate) fn mask_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("sk-") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 3..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*'))
            .unwrap_or(tail.len());
        if len >= 4 {
            out.push_str("sk-[redacted]");
        } else {
            out.push_str(&rest[at..at + 3 + len]);
        }
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// How long the server asks to wait: `retry-after-ms` (milliseconds), else
/// `retry-after` (seconds, or an HTTP date; a past date is zero).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = header_str(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms.min(1e12) / 1000.0));
        }
    }
    let v = header_str(headers, "retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
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

/// Parses OpenAI's reset durations: `"1s"`, `"6m0s"`, `"20ms"`,
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

/// Maps a transport failure (connect, timeout, broken body) to a typed error.
pub fn transport_error(e: &reqwest::Error) -> Error {
    // Body-read failures surface as `is_body` or `is_decode`: the
    // connection broke mid-answer, which is worth another try.
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_builder() {
        ErrorKind::InvalidConfig
    } else {
        ErrorKind::Connection
    };
    let what = if e.is_timeout() {
        "request timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the connection broke while reading the answer"
    } else if e.is_builder() {
        "invalid request"
    } else {
        "request failed"
    };
    // The chain of causes says why (refused, reset, dns, ...); no header is in it.
    let mut chain = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    let url = e
        .url()
        .map(|u| format!(" ({})", redact_url(u)))
        .unwrap_or_default();
    Error::new(
        kind,
        excerpt(&format!("{what}{url}{chain}"), 2 * MAX_EXCERPT),
    )
}

/// The URL without user info or query values (which could hold a key).
pub(crate) fn redact_url(u: &reqwest::Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let keep = k == "api-version";
            (
                k.into_owned(),
                if keep {
                    v.into_owned()
                } else {
                    "…".to_owned()
                },
            )
        })
        .collect();
    if pairs.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
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

    fn openai(code: &str, ty: &str, msg: &str) -> Vec<u8> {
        serde_json::json!({"error": {"message": msg, "type": ty, "param": null, "code": code}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn status_table() {
        let none = HeaderMap::new();
        let cases: &[(u16, Vec<u8>, ErrorKind, bool)] = &[
            (
                400,
                openai("", "invalid_request_error", "bad"),
                ErrorKind::InvalidInput,
                false,
            ),
            (
                400,
                openai(
                    "context_length_exceeded",
                    "invalid_request_error",
                    "too long",
                ),
                ErrorKind::ContextLengthExceeded,
                false,
            ),
            (
                400,
                openai(
                    "",
                    "invalid_request_error",
                    "This model's maximum context length is 8192 tokens, however you requested 9000 tokens",
                ),
                ErrorKind::ContextLengthExceeded,
                false,
            ),
            (
                401,
                openai(
                    "invalid_api_key",
                    "invalid_request_error",
                    "Incorrect API key provided: sk-abcd****wxyz.",
                ),
                ErrorKind::Authentication,
                false,
            ),
            (
                403,
                openai("", "", "no"),
                ErrorKind::PermissionDenied,
                false,
            ),
            (
                404,
                openai("model_not_found", "", "The model `x` does not exist"),
                ErrorKind::NotFound,
                false,
            ),
            (408, b"".to_vec(), ErrorKind::Timeout, true),
            (409, b"conflict".to_vec(), ErrorKind::Unavailable, true),
            (413, b"too large".to_vec(), ErrorKind::InvalidInput, false),
            (
                422,
                br#"{"detail":"bad"}"#.to_vec(),
                ErrorKind::InvalidInput,
                false,
            ),
            (
                429,
                openai("rate_limit_exceeded", "requests", "slow down"),
                ErrorKind::RateLimited,
                true,
            ),
            (
                429,
                openai(
                    "insufficient_quota",
                    "insufficient_quota",
                    "You exceeded your current quota",
                ),
                ErrorKind::QuotaExceeded,
                false,
            ),
            (
                500,
                b"<html>oops</html>".to_vec(),
                ErrorKind::Unavailable,
                true,
            ),
            (502, b"".to_vec(), ErrorKind::Unavailable, true),
            (
                503,
                br#"{"error":"overloaded"}"#.to_vec(),
                ErrorKind::Unavailable,
                true,
            ),
            (504, b"".to_vec(), ErrorKind::Unavailable, true),
            (302, b"".to_vec(), ErrorKind::InvalidResponse, false),
        ];
        for (status, body, kind, retryable) in cases {
            let e = parse_error(*status, &none, body);
            assert_eq!(e.kind(), *kind, "{status}: {e}");
            assert_eq!(e.is_retryable(), *retryable, "{status}: {e}");
            assert_eq!(e.status(), Some(*status));
            assert!(!e.message().is_empty());
            assert!(!e.message().contains("abcd"), "{e}");
        }
    }

    #[test]
    fn messages_come_from_the_error_object_or_an_excerpt() {
        let none = HeaderMap::new();
        let e = parse_error(404, &none, &openai("model_not_found", "", "no such model"));
        assert_eq!(e.message(), "no such model [model_not_found]");
        let e = parse_error(503, &none, br#"{"error":"overloaded"}"#);
        assert_eq!(e.message(), "overloaded");
        let long = "x".repeat(10_000);
        let e = parse_error(500, &none, long.as_bytes());
        assert!(
            e.message().chars().count() <= MAX_EXCERPT + 1,
            "{}",
            e.message().len()
        );
        let e = parse_error(500, &none, "é".repeat(1000).as_bytes());
        assert!(e.message().ends_with('…'));
        let e = parse_error(500, &none, &[0xff, 0xfe, b'x']);
        assert!(e.message().contains('x'));
    }

    #[test]
    fn retry_after_headers() {
        let e = parse_error(
            429,
            &headers(&[("retry-after-ms", "1500"), ("retry-after", "9")]),
            b"",
        );
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        let e = parse_error(429, &headers(&[("retry-after", "2")]), b"");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        let e = parse_error(429, &headers(&[("retry-after", "0.5")]), b"");
        assert_eq!(e.retry_after(), Some(Duration::from_millis(500)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let e = parse_error(503, &headers(&[("retry-after", &later)]), b"");
        let after = e.retry_after().unwrap();
        assert!(after <= Duration::from_secs(120) && after >= Duration::from_secs(100));
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        let e = parse_error(429, &headers(&[("retry-after", past)]), b"");
        assert_eq!(e.retry_after(), Some(Duration::ZERO));
        let e = parse_error(429, &headers(&[("retry-after", "soon")]), b"");
        assert_eq!(e.retry_after(), None);
        let e = parse_error(429, &headers(&[("retry-after", "-3")]), b"");
        assert_eq!(e.retry_after(), None);
    }

    #[test]
    fn x_should_retry_overrides() {
        let e = parse_error(400, &headers(&[("x-should-retry", "true")]), b"");
        assert!(e.is_retryable());
        let e = parse_error(503, &headers(&[("x-should-retry", "false")]), b"");
        assert!(!e.is_retryable());
        let e = parse_error(429, &headers(&[("x-should-retry", "maybe")]), b"");
        assert!(e.is_retryable());
    }

    #[test]
    fn keys_are_masked() {
        assert_eq!(
            mask_keys("key sk-proj-AbC123xyz_9 was wrong; sk- alone; sk-ab"),
            "key sk-[redacted] was wrong; sk- alone; sk-ab"
        );
        assert_eq!(mask_keys("no key"), "no key");
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

    #[test]
    fn urls_lose_credentials_and_query_values() {
        let u = reqwest::Url::parse(
            "https://user:pw@x.openai.azure.com/openai/deployments/d/embeddings?api-version=2024-10-21&key=secret",
        )
        .unwrap();
        let s = redact_url(&u);
        assert!(
            !s.contains("pw") && !s.contains("secret") && !s.contains("user"),
            "{s}"
        );
        assert!(s.contains("api-version=2024-10-21"), "{s}");
    }
}
