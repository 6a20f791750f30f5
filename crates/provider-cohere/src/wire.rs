//! Cohere's request and answer shapes, and its error answers.

use embeddings_core::{Embeddings, Error, ErrorKind, OutputType, Result, Usage};
use embeddings_http::json::{RowBuffer, Scanner};
use embeddings_http::reqwest::header::HeaderMap;
use embeddings_http::{ErrorDetail, Masker, default_kind, is_context_length_text, status_error};
use serde::Serialize;

/// The body of `POST /v2/embed`.
#[derive(Debug, Serialize)]
pub(crate) struct EmbedBody<'a> {
    pub(crate) model: &'a str,
    pub(crate) texts: &'a [&'a str],
    pub(crate) input_type: &'a str,
    pub(crate) embedding_types: [&'a str; 1],
    pub(crate) truncate: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_dimension: Option<usize>,
}

pub(crate) fn encode_request(body: &EmbedBody<'_>) -> Result<Vec<u8>> {
    serde_json::to_vec(body).map_err(|e| Error::invalid_input(format!("encoding the request: {e}")))
}

/// Decodes a `/v2/embed` answer: `embeddings.<type>` holds one row per
/// input, in order (`float` rows as floats, the others as integers in
/// their type's range); `meta.billed_units.input_tokens` is the usage.
/// `dim` 0: learned from the first row. Any inconsistency is `InvalidResponse`.
pub fn decode_response(
    body: &[u8],
    rows: usize,
    dim: usize,
    output: OutputType,
) -> Result<Embeddings> {
    decode(body, rows, dim, output).map_err(Error::invalid_response)
}

fn decode(body: &[u8], rows: usize, dim: usize, output: OutputType) -> Result<Embeddings, String> {
    let name = crate::wire_output_type(output)
        .ok_or_else(|| format!("no Cohere embedding type for {output}"))?;
    let want = name.as_bytes();
    let mut s = Scanner::new(body);
    let mut found = None;
    let mut usage = None;
    s.eat(b'{', "'{'")?;
    if !s.eat_if(b'}') {
        loop {
            let key = s.string()?;
            s.eat(b':', "':'")?;
            match &*key {
                b"embeddings" => {
                    s.eat(b'{', "'{' opening `embeddings`")?;
                    if !s.eat_if(b'}') {
                        loop {
                            let kind = s.string()?;
                            s.eat(b':', "':'")?;
                            if *kind == *want && found.is_none() {
                                found = Some(rows_of(&mut s, rows, dim, output)?);
                            } else {
                                s.skip_value(2)?;
                            }
                            if !s.more(b'}')? {
                                break;
                            }
                        }
                    }
                }
                b"meta" => usage = meta(&mut s)?,
                _ => s.skip_value(1)?,
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    s.end()?;
    let mut out = found.ok_or_else(|| format!("the answer has no `embeddings.{name}`"))?;
    out.set_usage(usage);
    Ok(out)
}

/// `{"billed_units": {"input_tokens": n}, ...}`.
fn meta(s: &mut Scanner<'_>) -> Result<Option<Usage>, String> {
    let mut usage = None;
    if s.is_null() {
        return Ok(None);
    }
    s.eat(b'{', "'{' opening `meta`")?;
    if s.eat_if(b'}') {
        return Ok(None);
    }
    loop {
        let key = s.string()?;
        s.eat(b':', "':'")?;
        if &*key == b"billed_units" && !s.is_null() {
            s.eat(b'{', "'{' opening `billed_units`")?;
            if !s.eat_if(b'}') {
                loop {
                    let k = s.string()?;
                    s.eat(b':', "':'")?;
                    if &*k == b"input_tokens" {
                        usage = Some(Usage::tokens(s.integer(|| "`input_tokens`".into())?));
                    } else {
                        s.skip_value(3)?;
                    }
                    if !s.more(b'}')? {
                        break;
                    }
                }
            }
        } else {
            s.skip_value(2)?;
        }
        if !s.more(b'}')? {
            break;
        }
    }
    Ok(usage)
}

/// The array of rows at the cursor, as `output`.
fn rows_of(
    s: &mut Scanner<'_>,
    rows: usize,
    dim: usize,
    output: OutputType,
) -> Result<Embeddings, String> {
    let mut buf = RowBuffer::sequential(rows, output.row_len(dim));
    s.eat(b'[', "'['")?;
    if !s.eat_if(b']') {
        loop {
            let i = buf.count();
            buf.floats_at(s, i)
                .map_err(|e| format!("embedding {i}: {e}"))?;
            if !s.more(b']')? {
                break;
            }
        }
    }
    let floats = buf.finish().map_err(|e| e.message().to_owned())?;
    let dim = if dim == 0 && output.is_packed() {
        floats.dim() * 8
    } else if dim == 0 {
        floats.dim()
    } else {
        dim
    };
    to_output(floats, dim, output)
}

/// Integer rows read as floats, as `output` (each value an integer in the
/// type's range).
pub(crate) fn to_output(
    floats: Embeddings,
    dim: usize,
    output: OutputType,
) -> Result<Embeddings, String> {
    fn each<T>(data: &[f32], lo: f32, hi: f32, f: impl Fn(f32) -> T) -> Result<Vec<T>, String> {
        data.iter()
            .enumerate()
            .map(|(i, &x)| {
                if x.fract() == 0.0 && (lo..=hi).contains(&x) {
                    Ok(f(x))
                } else {
                    Err(format!("value {x} at {i} is not an integer in {lo}..={hi}"))
                }
            })
            .collect()
    }
    let flat = floats.as_flat();
    let e = match output {
        OutputType::F32 => return Ok(floats),
        OutputType::Int8 | OutputType::Binary => {
            Embeddings::from_i8(each(flat, -128.0, 127.0, |x| x as i8)?, dim, output)
        }
        OutputType::Uint8 | OutputType::Ubinary => {
            Embeddings::from_u8(each(flat, 0.0, 255.0, |x| x as u8)?, dim, output)
        }
        other => return Err(format!("unsupported output type {other}")),
    };
    e.map_err(|e| e.message().to_owned())
}

/// Maps an error answer (`{"id", "message"}`) to a typed error: the
/// toolkit's table with Cohere's codes on top.
///
/// | status | kind |
/// | --- | --- |
/// | 400, 422 speaking of too many tokens | `ContextLengthExceeded` |
/// | 402 (payment required) | `QuotaExceeded` |
/// | 498 (invalid token) | `Authentication` |
/// | 499 (request cancelled) | `Unavailable` |
/// | the rest | the toolkit's table (401, 403, 404, 408, 429, 4xx, 5xx) |
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
    let kind = match status {
        400 | 422 if is_context_length_text(&detail.message) => ErrorKind::ContextLengthExceeded,
        402 => ErrorKind::QuotaExceeded,
        498 => ErrorKind::Authentication,
        499 => ErrorKind::Unavailable,
        s => default_kind(s),
    };
    let message = if detail.message.is_empty() {
        format!("server answered HTTP {status} with an empty body")
    } else {
        detail.message
    };
    status_error(kind, message, status, headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn float_and_quantized_answers() {
        let body = br#"{"id":"x","embeddings":{"float":[[0.5,-0.5],[1,0]]},"texts":["a","b"],
            "meta":{"api_version":{"version":"2"},"billed_units":{"input_tokens":3}},"response_type":"embeddings_by_type"}"#;
        let e = decode_response(body, 2, 2, OutputType::F32).unwrap();
        assert_eq!(e.row(1), [1.0, 0.0]);
        assert_eq!(e.usage().unwrap().prompt_tokens, 3);
        let body = br#"{"embeddings":{"float":[[0.5]],"int8":[[-128,127,0]]}}"#;
        let e = decode_response(body, 1, 3, OutputType::Int8).unwrap();
        assert_eq!(e.as_i8().unwrap(), [-128, 127, 0]);
        let body = br#"{"embeddings":{"ubinary":[[255,1]]}}"#;
        let e = decode_response(body, 1, 16, OutputType::Ubinary).unwrap();
        assert_eq!((e.dim(), e.as_u8().unwrap()), (16, &[255u8, 1][..]));
        // learned dimension of packed rows: bytes × 8
        let e = decode_response(body, 1, 0, OutputType::Ubinary).unwrap();
        assert_eq!(e.dim(), 16);
    }

    #[test]
    fn bad_answers_are_refused() {
        for (body, rows, dim, out) in [
            (
                &br#"{"embeddings":{"float":[[0.5,1]]}}"#[..],
                2,
                2,
                OutputType::F32,
            ),
            (
                br#"{"embeddings":{"float":[[0.5]]}}"#,
                1,
                2,
                OutputType::F32,
            ),
            (
                br#"{"embeddings":{"float":[[0.5,1]]}}"#,
                1,
                2,
                OutputType::Int8,
            ),
            (
                br#"{"embeddings":{"int8":[[300,1]]}}"#,
                1,
                2,
                OutputType::Int8,
            ),
            (
                br#"{"embeddings":{"uint8":[[-1,1]]}}"#,
                1,
                2,
                OutputType::Uint8,
            ),
            (
                br#"{"embeddings":{"int8":[[1.5,1]]}}"#,
                1,
                2,
                OutputType::Int8,
            ),
            (
                br#"{"embeddings":{"float":[[null,1]]}}"#,
                1,
                2,
                OutputType::F32,
            ),
            (br#"{"embeddings":{"float":[[1,1]],"#, 1, 2, OutputType::F32),
            (br#"[]"#, 1, 2, OutputType::F32),
        ] {
            let e = decode_response(body, rows, dim, out).unwrap_err();
            assert_eq!(
                e.kind(),
                ErrorKind::InvalidResponse,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn status_table() {
        let h = HeaderMap::new();
        let msg = |m: &str| format!(r#"{{"id":"1","message":"{m}"}}"#).into_bytes();
        for (status, body, kind) in [
            (400, msg("invalid request: bad"), ErrorKind::InvalidInput),
            (
                400,
                msg("too many tokens: total number of tokens in the prompt cannot exceed 512"),
                ErrorKind::ContextLengthExceeded,
            ),
            (401, msg("invalid api token"), ErrorKind::Authentication),
            (402, msg("payment required"), ErrorKind::QuotaExceeded),
            (404, msg("model not found"), ErrorKind::NotFound),
            (422, msg("unprocessable"), ErrorKind::InvalidInput),
            (429, msg("trial key limited"), ErrorKind::RateLimited),
            (498, msg("invalid token"), ErrorKind::Authentication),
            (499, msg("cancelled"), ErrorKind::Unavailable),
            (500, msg("internal"), ErrorKind::Unavailable),
            (503, msg("unavailable"), ErrorKind::Unavailable),
            (504, msg("timeout"), ErrorKind::Timeout),
        ] {
            let e = parse_error(status, &h, &body);
            assert_eq!(e.kind(), kind, "{status}");
            assert_eq!(e.status(), Some(status));
        }
        assert!(!parse_error(402, &h, b"").is_retryable());
        assert!(parse_error(429, &h, b"").is_retryable());
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..256), rows in 0usize..4, dim in 0usize..5) {
            for out in OutputType::ALL {
                let _ = decode_response(&body, rows, dim, out);
            }
        }

        #[test]
        fn int8_rows_round_trip(rows in proptest::collection::vec(proptest::collection::vec(-128i16..=127, 3), 1..5)) {
            let text: Vec<String> = rows.iter().map(|r| format!("[{}]", r.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","))).collect();
            let body = format!(r#"{{"embeddings":{{"int8":[{}]}}}}"#, text.join(","));
            let e = decode_response(body.as_bytes(), rows.len(), 3, OutputType::Int8).unwrap();
            let flat: Vec<i8> = rows.iter().flatten().map(|&x| x as i8).collect();
            prop_assert_eq!(e.as_i8().unwrap(), &flat[..]);
        }
    }
}
