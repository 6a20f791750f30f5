//! TEI's errors: `{"error": "...", "error_type": "..."}` and its statuses.
//!
//! | status | TEI's `error_type` | kind |
//! | --- | --- | --- |
//! | 400 | `empty` | `InvalidInput` |
//! | 413 | `validation` (batch too large, input too long) | `InvalidInput`; `ContextLengthExceeded` for an over-long input |
//! | 422 | `tokenizer` (also axum's JSON rejection, plain text) | `InvalidInput`; `ContextLengthExceeded` for an over-long input |
//! | 424 | `backend` (the model failed) | `Unavailable` (retryable) |
//! | 429 | `overloaded` (queue full) | `RateLimited` |
//! | 503 | `unhealthy` | `Unavailable` |
//! | others | | the toolkit's table |

use embeddings_core::{Error, ErrorKind};
use embeddings_http::reqwest::header::HeaderMap;
use embeddings_http::{ErrorDetail, Masker, default_kind, is_context_length_text, status_error};

/// The error of a failed TEI answer (message masked and cut to one line).
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8], masker: &Masker) -> Error {
    let detail = ErrorDetail::from_body(body, masker);
    let error_type = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error_type")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let lower = detail.message.to_ascii_lowercase();
    let too_long = is_context_length_text(&detail.message)
        || (lower.contains("must have less than") && lower.contains("tokens"));
    let kind = match (status, error_type.as_str()) {
        (413 | 422, _) if too_long => ErrorKind::ContextLengthExceeded,
        (424, _) | (500..=599, "backend" | "unhealthy") => ErrorKind::Unavailable,
        (429, _) => ErrorKind::RateLimited,
        _ => default_kind(status),
    };
    let mut message = if detail.message.is_empty() {
        format!("HTTP {status}")
    } else {
        detail.message
    };
    if !error_type.is_empty() {
        message = format!("{message} (TEI {})", masker.excerpt(&error_type, 32));
    }
    if status == 413 && !too_long {
        message.push_str("; the batch layer keeps requests within /info's max_client_batch_size");
    }
    status_error(kind, message, status, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &str) -> Error {
        parse_error(status, &HeaderMap::new(), body.as_bytes(), &Masker::new())
    }

    #[test]
    fn every_shape() {
        let e = err(
            413,
            r#"{"error":"batch size 40 > maximum allowed batch size 32","error_type":"validation"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(!e.is_retryable());
        assert!(e.message().contains("batch size 40"), "{e}");
        let e = err(
            413,
            r#"{"error":"`inputs` must have less than 512 tokens. Given: 600","error_type":"validation"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);
        let e = err(
            422,
            r#"{"error":"Tokenizer error: prompt_name `x` not found","error_type":"tokenizer"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = err(
            422,
            "Failed to deserialize the JSON body into the target type: inputs: missing field",
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = err(
            424,
            r#"{"error":"Backend error: CUDA out of memory","error_type":"backend"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retryable());
        let e = err(
            429,
            r#"{"error":"Model is overloaded","error_type":"overloaded"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert!(e.is_retryable());
        let e = err(503, r#"{"error":"unhealthy","error_type":"unhealthy"}"#);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let e = err(
            400,
            r#"{"error":"`inputs` cannot be empty","error_type":"empty"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(err(401, "").kind(), ErrorKind::Authentication);
        // The status decides where it is not TEI's own.
        assert_eq!(
            err(401, r#"{"error":"x","error_type":"backend"}"#).kind(),
            ErrorKind::Authentication
        );
        assert_eq!(err(500, "\u{1b}[31mboom").kind(), ErrorKind::Unavailable);
        assert!(!err(500, "\u{1b}[31mboom").message().contains('\u{1b}'));
    }
}
