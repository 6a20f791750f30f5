//! Ollama's error answers: its wordings (a missing model, an over-long
//! input) on top of the toolkit's status table.

use embeddings_core::{Error, ErrorKind};
use embeddings_http::reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use embeddings_http::{ErrorDetail, Masker, default_kind, is_context_length_text, status_error};

use crate::NAME;

/// Maps a failed answer of an Ollama server onto a typed [`Error`].
///
/// `body` is the answer's body (Ollama sends `{"error": "..."}`),
/// `retry_after` the value of its `Retry-After` header, and `model` the model
/// the request was for (named in the `ollama pull` hint of a 404).
///
/// | status | kind |
/// |---|---|
/// | 400 or 5xx, with context-length text | `ContextLengthExceeded` |
/// | otherwise | the toolkit's table ([`embeddings_http::default_kind`]) |
///
/// A 404 tells the user to `ollama pull <model>`. The message holds at most
/// a short excerpt of the body, on one printable line, with anything
/// key-shaped masked (the provider also masks its configured key).
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
    let mut headers = HeaderMap::new();
    if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(RETRY_AFTER, v);
    }
    parse_error_masked(status, &headers, body, model, &Masker::new())
}

/// [`parse_error`] from the answer's headers (`retry-after-ms`,
/// `retry-after`, `x-should-retry`), masking `masker`'s secrets.
pub(crate) fn parse_error_masked(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    model: &str,
    masker: &Masker,
) -> Error {
    let text = ErrorDetail::from_body(body, masker).message;
    let said = if text.is_empty() {
        String::from("no details")
    } else {
        format!("server said: {text}")
    };
    let kind = if is_context_length_text(&text) && (status == 400 || status >= 500) {
        ErrorKind::ContextLengthExceeded
    } else {
        default_kind(status)
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
        ErrorKind::Timeout => format!("the server timed out ({said})"),
        ErrorKind::InvalidResponse => format!("unexpected HTTP status {status} ({said})"),
        _ => said,
    };
    status_error(kind, message, status, headers).with_provider(NAME)
}

/// Whether a 404 means the route is missing (an Ollama older than
/// `/api/embed`, whose router answers `404 page not found`) rather than the
/// model (`{"error":"model \"x\" not found, try pulling it first"}`).
pub(crate) fn is_missing_route(status: u16, body: &[u8]) -> bool {
    status == 404
        && !ErrorDetail::from_body(body, &Masker::new())
            .message
            .to_lowercase()
            .contains("model")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
            (504, "", ErrorKind::Timeout),
            (418, "teapot", ErrorKind::InvalidInput),
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
        // What the server said is kept whatever the status (the retry
        // layer only waits for retryable errors).
        let e = parse_error(400, b"{}", Some("2"), "m");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        let e = parse_error(429, b"{}", Some("-3"), "m");
        assert_eq!(e.retry_after(), None);
    }

    #[test]
    fn long_bodies_are_cut_to_an_excerpt_on_one_line() {
        let body = format!(
            "{{\"error\":\"{}\\n{}\"}}",
            "é".repeat(300),
            "x".repeat(300)
        );
        let e = parse_error(500, body.as_bytes(), None, "m");
        assert!(
            e.message().chars().count() < embeddings_http::MAX_EXCERPT + 80,
            "{e}"
        );
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
