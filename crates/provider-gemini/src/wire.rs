//! The request and answer shapes of `batchEmbedContents` and Vertex AI's
//! `predict`, and Google's error answers.

use std::time::Duration;

use embeddings_core::{Embeddings, Error, ErrorKind, Result, Usage};
use embeddings_http::json::{RowBuffer, Scanner};
use embeddings_http::reqwest::header::HeaderMap;
use embeddings_http::{ErrorDetail, Masker, default_kind, is_context_length_text, status_error};
use serde::Serialize;

use crate::TaskType;

#[derive(Serialize)]
struct Part<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct Content<'a> {
    parts: [Part<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EmbedContent<'a> {
    model: &'a str,
    content: Content<'a>,
    task_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<usize>,
}

#[derive(Serialize)]
struct Batch<'a> {
    requests: Vec<EmbedContent<'a>>,
}

fn encoded(value: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| Error::invalid_input(format!("encoding the request: {e}")))
}

/// The body of `batchEmbedContents`: one `EmbedContentRequest` per text,
/// each naming `models/{model}` (the API requires it to match the URL's).
pub(crate) fn encode_batch(
    model: &str,
    texts: &[&str],
    task: TaskType,
    title: Option<&str>,
    output_dimensionality: Option<usize>,
) -> Result<Vec<u8>> {
    let name = format!("models/{model}");
    let requests = texts
        .iter()
        .map(|t| EmbedContent {
            model: &name,
            content: Content {
                parts: [Part { text: t }],
            },
            task_type: task.as_str(),
            title,
            output_dimensionality,
        })
        .collect();
    encoded(&Batch { requests })
}

#[derive(Serialize)]
struct Instance<'a> {
    content: &'a str,
    task_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Parameters {
    auto_truncate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<usize>,
}

#[derive(Serialize)]
struct Predict<'a> {
    instances: Vec<Instance<'a>>,
    parameters: Parameters,
}

/// The body of Vertex AI's `predict` for a text-embedding model.
pub(crate) fn encode_predict(
    texts: &[&str],
    task: TaskType,
    title: Option<&str>,
    output_dimensionality: Option<usize>,
    auto_truncate: bool,
) -> Result<Vec<u8>> {
    encoded(&Predict {
        instances: texts
            .iter()
            .map(|t| Instance {
                content: t,
                task_type: task.as_str(),
                title,
            })
            .collect(),
        parameters: Parameters {
            auto_truncate,
            output_dimensionality,
        },
    })
}

/// Scales every row to unit L2 norm (a zero row stays zero).
pub(crate) fn renormalize(e: &mut Embeddings) {
    for i in 0..e.len() {
        let row = e.row_mut(i);
        let norm = row
            .iter()
            .map(|x| f64::from(*x) * f64::from(*x))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            for x in row.iter_mut() {
                *x = (f64::from(*x) / norm) as f32;
            }
        }
    }
}

/// Decodes `batchEmbedContents`' answer: `{"embeddings": [{"values":
/// [...]}, ...]}`, exactly `rows` embeddings in request order (the API's
/// documented guarantee), each of `dim` finite values (`0`: learned from
/// the first). A missing `values`, a row too many or too few, a wrong
/// dimension or a non-finite value is `InvalidResponse`.
pub fn decode_batch_response(body: &[u8], rows: usize, dim: usize) -> Result<Embeddings> {
    decode_batch(body, rows, dim)
        .map_err(|m| Error::invalid_response(format!("batchEmbedContents answer: {m}")))
}

/// Reads `{"values": [...], ...}` at the cursor into row `i`.
fn content_embedding(s: &mut Scanner<'_>, buf: &mut RowBuffer, i: usize) -> Result<(), String> {
    s.eat(b'{', "'{' opening an embedding")?;
    let mut seen = false;
    if !s.eat_if(b'}') {
        loop {
            let key = s.string()?;
            s.eat(b':', "':'")?;
            if &*key == b"values" && !seen {
                buf.floats_at(s, i)
                    .map_err(|e| format!("embedding {i}: {e}"))?;
                seen = true;
            } else {
                s.skip_value(3)?;
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    if seen {
        Ok(())
    } else {
        Err(format!("embedding {i} has no `values`"))
    }
}

fn decode_batch(body: &[u8], rows: usize, dim: usize) -> Result<Embeddings, String> {
    let mut s = Scanner::new(body);
    let mut buf = RowBuffer::sequential(rows, dim);
    let mut found = false;
    s.eat(b'{', "'{'")?;
    if !s.eat_if(b'}') {
        loop {
            let key = s.string()?;
            s.eat(b':', "':'")?;
            if &*key == b"embeddings" && !found {
                found = true;
                s.eat(b'[', "'[' opening `embeddings`")?;
                if !s.eat_if(b']') {
                    loop {
                        let i = buf.count();
                        if i >= rows {
                            return Err(format!("more than the {rows} embeddings asked for"));
                        }
                        content_embedding(&mut s, &mut buf, i)?;
                        if !s.more(b']')? {
                            break;
                        }
                    }
                }
            } else {
                s.skip_value(1)?;
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    s.end()?;
    if !found {
        return Err("no `embeddings`".into());
    }
    buf.finish().map_err(|e| e.message().to_owned())
}

/// Decodes Vertex AI's `predict` answer: `{"predictions": [{"embeddings":
/// {"values": [...], "statistics": {"token_count": n, ...}}}, ...]}`,
/// exactly `rows` predictions in instance order; the token counts are the
/// usage. Every inconsistency is `InvalidResponse`.
pub fn decode_predict_response(body: &[u8], rows: usize, dim: usize) -> Result<Embeddings> {
    decode_predict(body, rows, dim)
        .map_err(|m| Error::invalid_response(format!("Vertex AI predict answer: {m}")))
}

fn decode_predict(body: &[u8], rows: usize, dim: usize) -> Result<Embeddings, String> {
    let mut s = Scanner::new(body);
    let mut buf = RowBuffer::sequential(rows, dim);
    let mut tokens: Option<u64> = None;
    let mut found = false;
    s.eat(b'{', "'{'")?;
    if !s.eat_if(b'}') {
        loop {
            let key = s.string()?;
            s.eat(b':', "':'")?;
            if &*key == b"predictions" && !found {
                found = true;
                s.eat(b'[', "'[' opening `predictions`")?;
                if !s.eat_if(b']') {
                    loop {
                        let i = buf.count();
                        if i >= rows {
                            return Err(format!("more than the {rows} predictions asked for"));
                        }
                        prediction(&mut s, &mut buf, i, &mut tokens)?;
                        if !s.more(b']')? {
                            break;
                        }
                    }
                }
            } else {
                s.skip_value(1)?;
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    s.end()?;
    if !found {
        return Err("no `predictions`".into());
    }
    let mut out = buf.finish().map_err(|e| e.message().to_owned())?;
    out.set_usage(tokens.map(Usage::tokens));
    Ok(out)
}

/// `{"embeddings": {"values": [...], "statistics": {...}}}` into row `i`.
fn prediction(
    s: &mut Scanner<'_>,
    buf: &mut RowBuffer,
    i: usize,
    tokens: &mut Option<u64>,
) -> Result<(), String> {
    s.eat(b'{', "'{' opening a prediction")?;
    let mut seen = false;
    if !s.eat_if(b'}') {
        loop {
            let key = s.string()?;
            s.eat(b':', "':'")?;
            if &*key == b"embeddings" && !seen {
                seen = true;
                s.eat(b'{', "'{' opening `embeddings`")?;
                let mut values = false;
                if !s.eat_if(b'}') {
                    loop {
                        let k = s.string()?;
                        s.eat(b':', "':'")?;
                        match &*k {
                            b"values" if !values => {
                                buf.floats_at(s, i)
                                    .map_err(|e| format!("prediction {i}: {e}"))?;
                                values = true;
                            }
                            b"statistics" if !s.is_null() => statistics(s, tokens)?,
                            _ => s.skip_value(4)?,
                        }
                        if !s.more(b'}')? {
                            break;
                        }
                    }
                }
                if !values {
                    return Err(format!("prediction {i} has no `embeddings.values`"));
                }
            } else {
                s.skip_value(3)?;
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    if seen {
        Ok(())
    } else {
        Err(format!("prediction {i} has no `embeddings`"))
    }
}

fn statistics(s: &mut Scanner<'_>, tokens: &mut Option<u64>) -> Result<(), String> {
    s.eat(b'{', "'{' opening `statistics`")?;
    if s.eat_if(b'}') {
        return Ok(());
    }
    loop {
        let k = s.string()?;
        s.eat(b':', "':'")?;
        if &*k == b"token_count" {
            // Vertex writes it as a JSON number, sometimes with a fraction (`6.0`).
            let start = s.pos();
            s.skip_value(5)?;
            let text = s.since(start);
            let n: f64 = text
                .trim()
                .parse()
                .map_err(|_| format!("`token_count` is not a number: {text}"))?;
            if !(n.is_finite() && n >= 0.0) {
                return Err(format!("`token_count` = {text}"));
            }
            *tokens = Some(tokens.unwrap_or(0) + n as u64);
        } else {
            s.skip_value(5)?;
        }
        if !s.more(b'}')? {
            break;
        }
    }
    Ok(())
}

/// Maps Google's error answer (`{"error": {"code", "message", "status",
/// "details"}}`) to a typed error: the `status` (canonical code) first,
/// then the HTTP status through the toolkit's table.
///
/// | HTTP / status | kind |
/// | --- | --- |
/// | 400 `INVALID_ARGUMENT`, reason `API_KEY_INVALID` ("API key not valid") | `Authentication` |
/// | 400 `INVALID_ARGUMENT` about too many tokens | `ContextLengthExceeded` |
/// | 400 `FAILED_PRECONDITION` (e.g. a region without access) | `PermissionDenied` |
/// | 401 `UNAUTHENTICATED` | `Authentication` |
/// | 403 `PERMISSION_DENIED` | `PermissionDenied` |
/// | 404 `NOT_FOUND` | `NotFound` |
/// | 429 `RESOURCE_EXHAUSTED` | `RateLimited` (`retryDelay` of a `RetryInfo` detail as `retry_after`) |
/// | 499 `CANCELLED`, 500 `INTERNAL`, 503 `UNAVAILABLE` | `Unavailable` |
/// | 504 `DEADLINE_EXCEEDED` | `Timeout` |
/// | the rest | the toolkit's table |
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    parse_error_masked(status, headers, body, &Masker::new())
}

pub(crate) fn parse_error_masked(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    masker: &Masker,
) -> Error {
    let detail = ErrorDetail::from_body(body, masker);
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error = &value["error"];
    let canonical = error["status"].as_str().unwrap_or("");
    let details = error["details"].as_array();
    let reason =
        |r: &str| details.is_some_and(|d| d.iter().any(|x| x["reason"].as_str() == Some(r)));
    let retry_delay = details.and_then(|d| {
        d.iter()
            .filter_map(|x| x["retryDelay"].as_str())
            .find_map(parse_duration)
    });
    let lower = detail.message.to_ascii_lowercase();
    let too_long = is_context_length_text(&detail.message)
        || (lower.contains("token") && (lower.contains("exceed") || lower.contains("too long")));
    let kind = match (status, canonical) {
        (400, _) if reason("API_KEY_INVALID") || lower.contains("api key not valid") => {
            ErrorKind::Authentication
        }
        (400, "FAILED_PRECONDITION") => ErrorKind::PermissionDenied,
        (400, _) if too_long => ErrorKind::ContextLengthExceeded,
        (_, "UNAUTHENTICATED") => ErrorKind::Authentication,
        (_, "PERMISSION_DENIED") => ErrorKind::PermissionDenied,
        (_, "NOT_FOUND") => ErrorKind::NotFound,
        (_, "RESOURCE_EXHAUSTED") => ErrorKind::RateLimited,
        (_, "DEADLINE_EXCEEDED") => ErrorKind::Timeout,
        (_, "CANCELLED" | "INTERNAL" | "UNAVAILABLE") => ErrorKind::Unavailable,
        (499, _) => ErrorKind::Unavailable,
        (s, _) => default_kind(s),
    };
    let mut message = if detail.message.is_empty() {
        format!("server answered HTTP {status}")
    } else {
        detail.message
    };
    if !canonical.is_empty() {
        message = format!("{message} ({})", masker.excerpt(canonical, 40));
    }
    let mut e = status_error(kind, message, status, headers);
    if e.retry_after().is_none() {
        if let Some(d) = retry_delay {
            e = e.with_retry_after(d);
        }
    }
    e
}

/// A protobuf JSON duration (`"30s"`, `"1.5s"`), at most a day.
fn parse_duration(text: &str) -> Option<Duration> {
    let secs: f64 = text.strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && (0.0..=86_400.0).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn batch_answers_and_refusals() {
        let e = decode_batch_response(
            br#"{"embeddings":[{"values":[0.5,-0.5]},{"values":[1,0],"extra":{"a":1}}]}"#,
            2,
            2,
        )
        .unwrap();
        assert_eq!(e.row(0), [0.5, -0.5]);
        assert_eq!(e.row(1), [1.0, 0.0]);
        for (body, rows, dim, want) in [
            (
                &br#"{"embeddings":[{"values":[1,0]}]}"#[..],
                2,
                2,
                "expected 2",
            ),
            (
                br#"{"embeddings":[{"values":[1,0]},{"values":[1,0]}]}"#,
                1,
                2,
                "more than the 1",
            ),
            (
                br#"{"embeddings":[{"values":[1,0,1]}]}"#,
                1,
                2,
                "embedding 0",
            ),
            (br#"{"embeddings":[{"value":[1,0]}]}"#, 1, 2, "no `values`"),
            (
                br#"{"embeddings":[{"values":[1,null]}]}"#,
                1,
                2,
                "embedding 0",
            ),
            (
                br#"{"embedding":{"values":[1,0]}}"#,
                1,
                2,
                "no `embeddings`",
            ),
            (br#"{"embeddings":[{"values":[1,0]}]"#, 1, 2, ""),
            (b"[]", 1, 2, ""),
        ] {
            let err = decode_batch_response(body, rows, dim).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidResponse);
            assert!(
                err.message().contains(want),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn predict_answers_and_refusals() {
        let body = br#"{"predictions":[{"embeddings":{"statistics":{"truncated":false,"token_count":6},"values":[0.6,0.8]}},
            {"embeddings":{"values":[1,0],"statistics":{"truncated":true,"token_count":2.0}}}],"metadata":{"billableCharacterCount":11}}"#;
        let e = decode_predict_response(body, 2, 0).unwrap();
        assert_eq!((e.len(), e.dim()), (2, 2));
        assert_eq!(e.row(0), [0.6, 0.8]);
        assert_eq!(e.usage().unwrap().prompt_tokens, 8);
        for (body, rows) in [
            (&br#"{"predictions":[{"embeddings":{"values":[1,0]}}]}"#[..], 2),
            (br#"{"predictions":[{"embeddings":{"statistics":{}}}]}"#, 1),
            (br#"{"predictions":[{"values":[1,0]}]}"#, 1),
            (br#"{"predictions":[{"embeddings":{"values":[1,0],"statistics":{"token_count":"x"}}}]}"#, 1),
            (br#"{}"#, 1),
        ] {
            let err = decode_predict_response(body, rows, 2).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn request_shapes() {
        let b = encode_batch(
            "gemini-embedding-001",
            &["a", "b"],
            TaskType::RetrievalDocument,
            Some("T"),
            Some(768),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v["requests"][1],
            serde_json::json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]},
                "taskType": "RETRIEVAL_DOCUMENT", "title": "T", "outputDimensionality": 768})
        );
        let b = encode_predict(&["a"], TaskType::RetrievalQuery, None, None, false).unwrap();
        assert_eq!(
            String::from_utf8(b).unwrap(),
            r#"{"instances":[{"content":"a","task_type":"RETRIEVAL_QUERY"}],"parameters":{"autoTruncate":false}}"#
        );
    }

    #[test]
    fn renormalize_scales_to_unit_length() {
        let mut e = Embeddings::from_flat(vec![3.0, 4.0, 0.0, 0.0], 2).unwrap();
        renormalize(&mut e);
        assert_eq!(e.row(0), [0.6, 0.8]);
        assert_eq!(e.row(1), [0.0, 0.0]);
    }

    #[test]
    fn error_table() {
        let h = HeaderMap::new();
        let body = |code: u16, status: &str, msg: &str, details: &str| {
            format!(r#"{{"error":{{"code":{code},"message":"{msg}","status":"{status}","details":[{details}]}}}}"#)
                .into_bytes()
        };
        for (code, status, msg, details, kind) in [
            (
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                r#"{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}"#,
                ErrorKind::Authentication,
            ),
            (
                400,
                "INVALID_ARGUMENT",
                "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch",
                "",
                ErrorKind::InvalidInput,
            ),
            (
                400,
                "INVALID_ARGUMENT",
                "The input token count (3000) exceeds the maximum number of tokens allowed (2048).",
                "",
                ErrorKind::ContextLengthExceeded,
            ),
            (
                400,
                "FAILED_PRECONDITION",
                "User location is not supported for the API use.",
                "",
                ErrorKind::PermissionDenied,
            ),
            (
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
                "",
                ErrorKind::Authentication,
            ),
            (
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers",
                "",
                ErrorKind::PermissionDenied,
            ),
            (
                404,
                "NOT_FOUND",
                "models/x is not found for API version v1beta",
                "",
                ErrorKind::NotFound,
            ),
            (
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
                "",
                ErrorKind::RateLimited,
            ),
            (
                499,
                "CANCELLED",
                "The operation was cancelled.",
                "",
                ErrorKind::Unavailable,
            ),
            (
                500,
                "INTERNAL",
                "An internal error has occurred.",
                "",
                ErrorKind::Unavailable,
            ),
            (
                503,
                "UNAVAILABLE",
                "The model is overloaded.",
                "",
                ErrorKind::Unavailable,
            ),
            (
                504,
                "DEADLINE_EXCEEDED",
                "Deadline exceeded.",
                "",
                ErrorKind::Timeout,
            ),
        ] {
            let e = parse_error(code, &h, &body(code, status, msg, details));
            assert_eq!(e.kind(), kind, "{code} {status}");
            assert_eq!(e.status(), Some(code));
            assert!(e.message().contains(status), "{e}");
        }
        let e = parse_error(
            429,
            &h,
            &body(
                429,
                "RESOURCE_EXHAUSTED",
                "quota",
                r#"{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"31s"}"#,
            ),
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(31)));
        assert!(e.is_retryable());
        assert_eq!(
            parse_error(502, &h, b"<html>").kind(),
            ErrorKind::Unavailable
        );
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..256), rows in 0usize..4, dim in 0usize..4) {
            let _ = decode_batch_response(&body, rows, dim);
            let _ = decode_predict_response(&body, rows, dim);
            let _ = parse_error(400, &HeaderMap::new(), &body);
        }

        #[test]
        fn round_trips(m in proptest::collection::vec(proptest::collection::vec(-1e30f32..1e30, 3), 1..5)) {
            let batch = serde_json::json!({"embeddings": m.iter().map(|r| serde_json::json!({"values": r})).collect::<Vec<_>>()});
            let e = decode_batch_response(&serde_json::to_vec(&batch).unwrap(), m.len(), 3).unwrap();
            prop_assert_eq!(e.into_vecs(), m.clone());
            let predict = serde_json::json!({"predictions": m.iter().map(|r| serde_json::json!({"embeddings": {"values": r, "statistics": {"token_count": 1}}})).collect::<Vec<_>>()});
            let e = decode_predict_response(&serde_json::to_vec(&predict).unwrap(), m.len(), 0).unwrap();
            prop_assert_eq!(e.usage().unwrap().prompt_tokens, m.len() as u64);
            prop_assert_eq!(e.into_vecs(), m);
        }
    }
}
