//! Mapping of Ollama's HTTP answers and transport failures onto [`Error`].

use std::time::{Duration, SystemTime};

use embeddings_core::{Error, ErrorKind};

use crate::NAME;
use crate::parse::parse_error_body;

/// Longest excerpt of a server's answer kept in an error message, in chars.
const EXCERPT_CHARS: usize = 200;

/// Maps a failed answer of an Ollama server onto a typed [`Error`].
///
/// `body` is the answer's body (Ollama sends `{"error": "..."}`),
/// `retry_after` the value of its `Retry-After` header, and `model` the model
/// the request was for (named in the `ollama pull` hint of a 404).
///
/// | status | kind |
/// |---|---|
/// | any, with context-length text | `ContextLengthExceeded` |
/// | 400, 413, 422 | `InvalidInput` |
/// | 401 | `Authentication` |
/// | 403 | `PermissionDenied` |
/// | 404 | `NotFound`, telling the user to `ollama pull <model>` |
/// | 408 | `Timeout` |
/// | 429 | `RateLimited`, with `retry_after` |
/// | 5xx | `Unavailable` (with `retry_after` when sent) |
/// | else | `InvalidResponse` |
///
/// The message holds at most a short excerpt of the body.
///
/// ```
/// use embeddings_core::ErrorKind;
/// let e = embeddings_ollama::parse_error(
///     404,
///     br#"{"error":"model \"all-minilm\" not found, try pulling it first"}"#,
///     None,
///     "all-minilm",
/// );
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// assert!(e.message().contains("ollama pull all-minilm"));
/// ```
pub fn parse_error(status: u16, body: &[u8], retry_after: Option<&str>, model: &str) -> Error {
    let text = error_text(body);
    let lower = text.to_lowercase();
    let said = if text.is_empty() {
        String::from("no details")
    } else {
        format!("server said: {text}")
    };
    let kind = if is_context_length_text(&lower) && (status == 400 || status >= 500) {
        ErrorKind::ContextLengthExceeded
    } else {
        match status {
            400 | 413 | 422 => ErrorKind::InvalidInput,
            401 => ErrorKind::Authentication,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            408 => ErrorKind::Timeout,
            429 => ErrorKind::RateLimited,
            500..=599 => ErrorKind::Unavailable,
            _ => ErrorKind::InvalidResponse,
        }
    };
    let message = match kind {
        ErrorKind::NotFound => {
            format!("model {model:?} not found; download it with `ollama pull {model}` ({said})")
        }
        ErrorKind::ContextLengthExceeded => format!(
            "an input is longer than the context of model {model:?} ({said}); \
             shorten it, set `truncate = true` in [ollama], or use the chunk policy"
        ),
        ErrorKind::Authentication => {
            format!("the server refused the credentials; check `api_key` ({said})")
        }
        ErrorKind::RateLimited => format!("too many requests ({said})"),
        ErrorKind::Unavailable => format!("the server failed ({said})"),
        ErrorKind::InvalidResponse => format!("unexpected HTTP status {status} ({said})"),
        _ => said,
    };
    let mut e = Error::new(kind, message)
        .with_provider(NAME)
        .with_status(status);
    if matches!(kind, ErrorKind::RateLimited | ErrorKind::Unavailable) {
        if let Some(d) = retry_after.and_then(parse_retry_after) {
            e = e.with_retry_after(d);
        }
    }
    e
}

/// Whether a 404 means the route is missing (an Ollama older than
/// `/api/embed`, whose router answers `404 page not found`) rather than the
/// model (`{"error":"model \"x\" not found, try pulling it first"}`).
pub(crate) fn is_missing_route(status: u16, body: &[u8]) -> bool {
    if status != 404 {
        return false;
    }
    match parse_error_body(body) {
        Some(t) => !t.to_lowercase().contains("model"),
        None => true,
    }
}

fn is_context_length_text(lower: &str) -> bool {
    (lower.contains("context") && (lower.contains("length") || lower.contains("exceed")))
        || lower.contains("input length exceeds")
        || lower.contains("too many tokens")
}

/// The error text of a body: Ollama's `error` field or the raw text, on
/// one line and cut to a short excerpt.
pub(crate) fn error_text(body: &[u8]) -> String {
    let raw = match parse_error_body(body) {
        Some(t) => t,
        None => String::from_utf8_lossy(&body[..body.len().min(4 * EXCERPT_CHARS)]).into_owned(),
    };
    excerpt(&raw)
}

/// `text` on one line, at most [`EXCERPT_CHARS`] chars.
pub(crate) fn excerpt(text: &str) -> String {
    let mut out = String::new();
    let mut chars = 0;
    let mut last_space = false;
    for c in text.trim().chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if chars == EXCERPT_CHARS {
            out.push('…');
            return out;
        }
        out.push(c);
        chars += 1;
    }
    out
}

/// `Retry-After`: delay seconds (integer or decimal) or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0)
            .then(|| Duration::try_from_secs_f64(s).ok())
            .flatten();
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Maps a transport failure (no answer, or a broken one) onto an [`Error`]
/// that names the host.
pub(crate) fn transport_error(e: reqwest::Error, host: &str, reading: bool) -> Error {
    let (kind, message) = if e.is_timeout() {
        (
            ErrorKind::Timeout,
            format!("the Ollama server at {host} did not answer in time"),
        )
    } else if e.is_connect() {
        (
            ErrorKind::Connection,
            format!(
                "cannot connect to Ollama at {host}: Ollama may not be running \
                 (start it with `ollama serve`, or point OLLAMA_HOST / base_url at it)"
            ),
        )
    } else if e.is_builder() {
        (
            ErrorKind::InvalidConfig,
            format!("cannot build a request to {host}"),
        )
    } else if reading {
        (
            ErrorKind::Connection,
            format!("the connection to {host} broke while reading the answer"),
        )
    } else {
        (
            ErrorKind::Connection,
            format!("the request to {host} failed before an answer arrived"),
        )
    };
    Error::new(kind, message)
        .with_provider(NAME)
        .with_source(e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_texts_map_to_kinds() {
        let cases: &[(u16, &str, ErrorKind)] = &[
            (
                400,
                r#"{"error":"input length exceeds maximum context length"}"#,
                ErrorKind::ContextLengthExceeded,
            ),
            (
                500,
                r#"{"error":"the input length exceeds the context length"}"#,
                ErrorKind::ContextLengthExceeded,
            ),
            (
                400,
                r#"{"error":"invalid input type"}"#,
                ErrorKind::InvalidInput,
            ),
            (413, "", ErrorKind::InvalidInput),
            (422, "x", ErrorKind::InvalidInput),
            (
                401,
                r#"{"error":"unauthorized"}"#,
                ErrorKind::Authentication,
            ),
            (403, "", ErrorKind::PermissionDenied),
            (
                404,
                r#"{"error":"model \"nope\" not found, try pulling it first"}"#,
                ErrorKind::NotFound,
            ),
            (408, "", ErrorKind::Timeout),
            (
                429,
                r#"{"error":"too many requests"}"#,
                ErrorKind::RateLimited,
            ),
            (
                500,
                r#"{"error":"llama runner process has terminated"}"#,
                ErrorKind::Unavailable,
            ),
            (502, "<html>Bad Gateway</html>", ErrorKind::Unavailable),
            (503, r#"{"error":"server busy"}"#, ErrorKind::Unavailable),
            (504, "", ErrorKind::Unavailable),
            (418, "teapot", ErrorKind::InvalidResponse),
            (302, "", ErrorKind::InvalidResponse),
        ];
        for (status, body, kind) in cases {
            let e = parse_error(*status, body.as_bytes(), None, "m");
            assert_eq!(e.kind(), *kind, "{status} {body}: {e}");
            assert_eq!(e.status(), Some(*status));
            assert_eq!(e.provider(), Some(NAME));
            assert_eq!(e.is_retryable(), kind.is_retryable(), "{status}");
        }
    }

    #[test]
    fn not_found_tells_to_pull_the_model() {
        let e = parse_error(
            404,
            br#"{"error":"model 'all-minilm' not found"}"#,
            None,
            "all-minilm",
        );
        assert!(e.message().contains("`ollama pull all-minilm`"), "{e}");
        assert!(e.message().contains("not found"), "{e}");
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let e = parse_error(429, b"{}", Some("7"), "m");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = parse_error(429, b"{}", Some("1.5"), "m");
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        let e = parse_error(503, b"{}", Some("2"), "m");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        let e = parse_error(429, b"{}", Some("soon"), "m");
        assert_eq!(e.retry_after(), None);
        let e = parse_error(400, b"{}", Some("2"), "m");
        assert_eq!(e.retry_after(), None);
        // An HTTP date in the past is "now".
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-3"), None);
    }

    #[test]
    fn long_bodies_are_cut_to_an_excerpt_on_one_line() {
        let body = format!(
            "{{\"error\":\"{}\\n{}\"}}",
            "é".repeat(300),
            "x".repeat(300)
        );
        let e = parse_error(500, body.as_bytes(), None, "m");
        assert!(e.message().chars().count() < EXCERPT_CHARS + 80, "{e}");
        assert!(e.message().contains('…'));
        let raw = vec![b'a'; 100_000];
        let e = parse_error(502, &raw, None, "m");
        assert!(e.message().len() < 400);
        let e = parse_error(500, b"line1\n\n\tline2", None, "m");
        assert!(e.message().contains("line1 line2"), "{e}");
        // Invalid UTF-8 is no panic.
        let e = parse_error(500, &[0xff, 0xfe, b'a'], None, "m");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn route_404_is_told_from_model_404() {
        assert!(is_missing_route(404, b"404 page not found"));
        assert!(is_missing_route(404, b""));
        assert!(is_missing_route(404, br#"{"error":"not found"}"#));
        assert!(!is_missing_route(
            404,
            br#"{"error":"model \"x\" not found, try pulling it first"}"#
        ));
        assert!(!is_missing_route(400, b"404 page not found"));
    }

    #[test]
    fn error_objects_are_read_too() {
        let e = parse_error(400, br#"{"error":{"message":"bad thing"}}"#, None, "m");
        assert!(e.message().contains("bad thing"), "{e}");
    }
}
