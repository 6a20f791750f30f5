//! OpenAI's error answers: its codes on top of the toolkit's status table.

use embeddings_core::{Error, ErrorKind};
use embeddings_http::reqwest::header::HeaderMap;
use embeddings_http::{ErrorDetail, Masker, default_kind, is_context_length_text, status_error};

/// Maps a non-success answer to a typed error (key-shaped tokens masked;
/// the provider also masks its configured key, see [`parse_error_masked`]).
///
/// The toolkit's table ([`embeddings_http::default_kind`]) with OpenAI's
/// codes on top:
///
/// | status | kind |
/// | --- | --- |
/// | 400, 413, 422 with `context_length_exceeded` or its wording | `ContextLengthExceeded` |
/// | other 4xx (but 401, 403, 404, 408, 409, 429) | `InvalidInput` |
/// | 401 | `Authentication` |
/// | 403 | `PermissionDenied` |
/// | 404 | `NotFound` |
/// | 408, 504 | `Timeout` (retryable) |
/// | 409 | `Unavailable` (retryable) |
/// | 429 `insufficient_quota` | `QuotaExceeded` (not retryable) |
/// | other 429 | `RateLimited`, `retry_after` from `retry-after-ms` / `retry-after` |
/// | other 5xx | `Unavailable` |
///
/// `x-should-retry: true|false` overrides retryability; `retry-after-ms`
/// and `retry-after` set `retry_after` on any status. The message is the
/// server's `error.message` (or a short excerpt of the body) on one
/// printable line, cut to [`MAX_EXCERPT`](embeddings_http::MAX_EXCERPT) characters.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    parse_error_masked(status, headers, body, &Masker::new())
}

/// [`parse_error`], masking `masker`'s secrets (the configured key, secret
/// headers) wherever they appear in the body, `error.code` included.
pub fn parse_error_masked(status: u16, headers: &HeaderMap, body: &[u8], masker: &Masker) -> Error {
    let detail = ErrorDetail::from_body(body, masker);
    let code = detail.code();
    let ty = detail.type_();
    let kind = match status {
        400 | 413 | 422
            if code == "context_length_exceeded" || is_context_length_text(&detail.message) =>
        {
            ErrorKind::ContextLengthExceeded
        }
        429 if code == "insufficient_quota" || ty == "insufficient_quota" => {
            ErrorKind::QuotaExceeded
        }
        s => default_kind(s),
    };
    let mut message = if detail.message.is_empty() {
        format!("server answered HTTP {status} with an empty body")
    } else {
        detail.message.clone()
    };
    if !code.is_empty() && !message.contains(code) {
        message.push_str(&format!(" [{code}]"));
    }
    status_error(kind, message, status, headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use embeddings_http::reqwest::header::HeaderValue;
    use embeddings_http::{MAX_EXCERPT, mask_tokens};
    use std::time::Duration;

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
            (504, b"".to_vec(), ErrorKind::Timeout, true),
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
    fn the_servers_wait_and_word_on_retrying_are_kept() {
        // The parsing itself is the toolkit's (`embeddings_http::retry_after`).
        let mut h = HeaderMap::new();
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        h.insert("x-should-retry", HeaderValue::from_static("false"));
        let e = parse_error(429, &h, b"");
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        assert!(!e.is_retryable());
    }

    #[test]
    fn keys_are_masked_in_the_message_and_the_code() {
        let key = "sk-test-0123456789abcdefSECRET";
        let m = Masker::new().with_secret(key);
        let body = openai(
            &format!("{}{key}", "c".repeat(40)),
            "",
            &format!("bad key {key}"),
        );
        let e = parse_error_masked(401, &HeaderMap::new(), &body, &m);
        assert!(!e.message().contains("0123456789"), "{e}");
        assert!(!e.message().contains("SECRET"), "{e}");
        assert_eq!(
            mask_tokens("key sk-proj-AbC123xyz_9 was wrong"),
            "key sk-[redacted] was wrong"
        );
    }
}
