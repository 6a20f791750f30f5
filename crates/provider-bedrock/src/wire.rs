//! The `InvokeModel` bodies of Amazon Titan Text Embeddings v2 and Cohere
//! Embed on Bedrock, their answers, and Bedrock's error answers.

use embeddings_core::{Embeddings, Error, ErrorKind, OutputType, Result, Usage, quantize};
use embeddings_http::json::{RowBuffer, Scanner};
use embeddings_http::reqwest::header::HeaderMap;
use embeddings_http::{ErrorDetail, Masker, default_kind, header_str, status_error};
use serde::Serialize;

/// Titan Text Embeddings v2's request.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TitanBody<'a> {
    pub(crate) input_text: &'a str,
    pub(crate) dimensions: usize,
    pub(crate) normalize: bool,
    pub(crate) embedding_types: [&'static str; 1],
}

/// Cohere Embed's request on Bedrock (no `model`: the URL names it).
#[derive(Debug, Serialize)]
pub(crate) struct CohereBody<'a> {
    pub(crate) texts: &'a [&'a str],
    pub(crate) input_type: &'static str,
    pub(crate) truncate: &'static str,
    pub(crate) embedding_types: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_dimension: Option<usize>,
}

pub(crate) fn encode(body: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(body).map_err(|e| Error::invalid_input(format!("encoding the request: {e}")))
}

/// Decodes Titan's answer: `{"embedding": [...], "embeddingsByType":
/// {"float": [...], "binary": [0, 1, ...]}, "inputTextTokenCount": n}`.
/// `F32`: `embeddingsByType.float`, else `embedding`; `Binary`/`Ubinary`:
/// `embeddingsByType.binary`, one 0 or 1 per dimension, packed here (bit =
/// 1, most significant first, as [`quantize::pack_bits`]). `dim` 0: learned.
/// Any other shape, a wrong length or a value other than 0/1 is
/// `InvalidResponse`.
pub fn decode_titan(body: &[u8], dim: usize, output: OutputType) -> Result<Embeddings> {
    titan(body, dim, output).map_err(|m| Error::invalid_response(format!("Titan answer: {m}")))
}

fn titan(body: &[u8], dim: usize, output: OutputType) -> Result<Embeddings, String> {
    let packed = match output {
        OutputType::F32 => false,
        OutputType::Binary | OutputType::Ubinary => true,
        other => return Err(format!("Titan has no {other} embeddings")),
    };
    let want: &[u8] = if packed { b"binary" } else { b"float" };
    let mut s = Scanner::new(body);
    let mut plain: Option<Embeddings> = None;
    let mut typed: Option<Embeddings> = None;
    let mut tokens = None;
    s.eat(b'{', "'{'")?;
    if !s.eat_if(b'}') {
        loop {
            let key = s.string()?;
            s.eat(b':', "':'")?;
            match &*key {
                b"embedding" if plain.is_none() && !s.is_null() => {
                    plain = Some(one_row(&mut s, dim, "embedding")?);
                }
                b"embeddingsByType" if typed.is_none() => {
                    s.eat(b'{', "'{' opening `embeddingsByType`")?;
                    if !s.eat_if(b'}') {
                        loop {
                            let k = s.string()?;
                            s.eat(b':', "':'")?;
                            if *k == *want && typed.is_none() {
                                typed = Some(one_row(&mut s, dim, "embeddingsByType")?);
                            } else {
                                s.skip_value(3)?;
                            }
                            if !s.more(b'}')? {
                                break;
                            }
                        }
                    }
                }
                b"inputTextTokenCount" => {
                    tokens = Some(s.integer(|| "`inputTextTokenCount`".into())?);
                }
                _ => s.skip_value(1)?,
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    s.end()?;
    let mut out = if packed {
        let bits = typed.ok_or("no `embeddingsByType.binary`")?;
        pack(&bits, output)?
    } else {
        typed
            .or(plain)
            .ok_or("no `embedding` and no `embeddingsByType.float`")?
    };
    out.set_usage(tokens.map(Usage::tokens));
    Ok(out)
}

fn one_row(s: &mut Scanner<'_>, dim: usize, what: &str) -> Result<Embeddings, String> {
    let mut buf = RowBuffer::sequential(1, dim);
    buf.floats_at(s, 0).map_err(|e| format!("`{what}`: {e}"))?;
    buf.finish().map_err(|e| e.message().to_owned())
}

/// One row of 0/1 values, packed.
fn pack(bits: &Embeddings, output: OutputType) -> Result<Embeddings, String> {
    let row = bits.row(0);
    if let Some((i, x)) = row
        .iter()
        .enumerate()
        .find(|(_, x)| **x != 0.0 && **x != 1.0)
    {
        return Err(format!("binary value {x} at {i} is neither 0 nor 1"));
    }
    let mut out = vec![0u8; row.len().div_ceil(8)];
    quantize::pack_bits(row, &mut out);
    let e = if output == OutputType::Binary {
        Embeddings::from_i8(
            out.into_iter().map(quantize::binary_byte).collect(),
            row.len(),
            output,
        )
    } else {
        Embeddings::from_u8(out, row.len(), output)
    };
    e.map_err(|e| e.message().to_owned())
}

/// Decodes Cohere Embed's answer on Bedrock (`response_type`
/// `embeddings_by_type`): `{"embeddings": {"<type>": [[...], ...]}}`,
/// exactly `rows` rows in input order, `float` rows as floats and the
/// others as integers of their type's range (`binary`/`ubinary` packed,
/// `dim / 8` bytes). Anything else is `InvalidResponse`.
pub fn decode_cohere(
    body: &[u8],
    rows: usize,
    dim: usize,
    output: OutputType,
) -> Result<Embeddings> {
    cohere(body, rows, dim, output)
        .map_err(|m| Error::invalid_response(format!("Cohere (Bedrock) answer: {m}")))
}

fn cohere(body: &[u8], rows: usize, dim: usize, output: OutputType) -> Result<Embeddings, String> {
    let name =
        crate::cohere_output_type(output).ok_or_else(|| format!("no Cohere type for {output}"))?;
    let mut s = Scanner::new(body);
    let mut found = None;
    s.eat(b'{', "'{'")?;
    if !s.eat_if(b'}') {
        loop {
            let key = s.string()?;
            s.eat(b':', "':'")?;
            if &*key == b"embeddings" {
                if s.peek() != Some(b'{') {
                    return Err("`embeddings` is not by type (embedding_types was sent)".into());
                }
                s.eat(b'{', "'{'")?;
                if !s.eat_if(b'}') {
                    loop {
                        let kind = s.string()?;
                        s.eat(b':', "':'")?;
                        if *kind == *name.as_bytes() && found.is_none() {
                            found = Some(cohere_rows(&mut s, rows, dim, output)?);
                        } else {
                            s.skip_value(2)?;
                        }
                        if !s.more(b'}')? {
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
    found.ok_or_else(|| format!("the answer has no `embeddings.{name}`"))
}

fn cohere_rows(
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
            if i >= rows {
                return Err(format!("more than the {rows} embeddings asked for"));
            }
            buf.floats_at(s, i)
                .map_err(|e| format!("embedding {i}: {e}"))?;
            if !s.more(b']')? {
                break;
            }
        }
    }
    let floats = buf.finish().map_err(|e| e.message().to_owned())?;
    let dim = match (dim, output.is_packed()) {
        (0, true) => floats.dim() * 8,
        (0, false) => floats.dim(),
        (d, _) => d,
    };
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

/// Bedrock's exception name: `x-amzn-ErrorType` (`ThrottlingException:http://...`),
/// else the body's `__type` / `code`.
fn exception(headers: &HeaderMap, body: &serde_json::Value) -> String {
    let raw = header_str(headers, "x-amzn-errortype")
        .map(str::to_owned)
        .or_else(|| body["__type"].as_str().map(str::to_owned))
        .or_else(|| body["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    // `ThrottlingException:http://internal...`, `com.amazon.coral#ThrottlingException`.
    let name = raw.split(':').next().unwrap_or("");
    name.rsplit('#').next().unwrap_or("").to_owned()
}

/// Maps a Bedrock error answer (`{"message": "..."}` and the
/// `x-amzn-ErrorType` header) to a typed error: the exception first, then
/// the status through the toolkit's table.
///
/// | exception (status) | kind |
/// | --- | --- |
/// | `ThrottlingException` (429) | `RateLimited` |
/// | `ModelNotReadyException` (429) | `Unavailable` (retryable: the model is loading) |
/// | `ModelTimeoutException` (408) | `Timeout` |
/// | `ServiceUnavailableException` (503), `InternalServerException` (500), `ModelErrorException` (424) | `Unavailable` |
/// | `ValidationException` (400) about too many input tokens, or a text over its `maxLength` | `ContextLengthExceeded` |
/// | `ValidationException` (400) | `InvalidInput` |
/// | `ServiceQuotaExceededException` | `QuotaExceeded` |
/// | `AccessDeniedException` (403) | `PermissionDenied` |
/// | `UnrecognizedClientException`, `InvalidSignatureException`, `ExpiredTokenException`, `IncompleteSignatureException`, `MissingAuthenticationTokenException` (403) | `Authentication` |
/// | `ResourceNotFoundException` (404) | `NotFound` |
/// | others | the toolkit's table |
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    parse_error_masked(status, headers, body, &Masker::new())
}

pub(crate) fn parse_error_masked(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    masker: &Masker,
) -> Error {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let mut detail = ErrorDetail::from_body(body, masker);
    if detail.message.is_empty() {
        if let Some(m) = value["Message"].as_str() {
            detail.message = masker.excerpt(m, embeddings_http::MAX_EXCERPT);
        }
    }
    let name = exception(headers, &value);
    let lower = detail.message.to_ascii_lowercase();
    let too_long = lower.contains("too many input tokens")
        || lower.contains("too many tokens")
        || (lower.contains("token") && lower.contains("exceed"))
        || lower.contains("expected maxlength");
    let kind = match name.as_str() {
        "ThrottlingException" => ErrorKind::RateLimited,
        "ModelNotReadyException" => ErrorKind::Unavailable,
        "ModelTimeoutException" => ErrorKind::Timeout,
        "ServiceUnavailableException" | "InternalServerException" | "ModelErrorException" => {
            ErrorKind::Unavailable
        }
        "ValidationException" if too_long => ErrorKind::ContextLengthExceeded,
        "ValidationException" => ErrorKind::InvalidInput,
        "ServiceQuotaExceededException" => ErrorKind::QuotaExceeded,
        "AccessDeniedException" => ErrorKind::PermissionDenied,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "IncompleteSignatureException"
        | "MissingAuthenticationTokenException" => ErrorKind::Authentication,
        "ResourceNotFoundException" => ErrorKind::NotFound,
        _ if status == 400 && too_long => ErrorKind::ContextLengthExceeded,
        _ => default_kind(status),
    };
    let mut message = if detail.message.is_empty() {
        format!("server answered HTTP {status}")
    } else {
        detail.message
    };
    if !name.is_empty() {
        message = format!("{} ({message})", masker.excerpt(&name, 64));
    }
    let mut e = status_error(kind, message, status, headers);
    if name == "ModelNotReadyException" {
        e = e.with_retryable(true);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use embeddings_http::reqwest::header::HeaderValue;
    use proptest::prelude::*;

    #[test]
    fn titan_answers() {
        let body = br#"{"embedding":[0.6,-0.8],"inputTextTokenCount":3,"embeddingsByType":{"float":[0.6,-0.8],"binary":[1,0]}}"#;
        let e = decode_titan(body, 2, OutputType::F32).unwrap();
        assert_eq!(e.row(0), [0.6, -0.8]);
        assert_eq!(e.usage().unwrap().prompt_tokens, 3);
        let e = decode_titan(br#"{"embedding":[0.6,-0.8]}"#, 0, OutputType::F32).unwrap();
        assert_eq!(e.dim(), 2);
        let body = br#"{"embedding":[0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1],"embeddingsByType":{"binary":[1,0,0,1,1,0,1,1,1]}}"#;
        let e = decode_titan(body, 9, OutputType::Ubinary).unwrap();
        assert_eq!(
            (e.dim(), e.as_u8().unwrap()),
            (9, &[0b1001_1011u8, 0b1000_0000][..])
        );
        let e = decode_titan(body, 9, OutputType::Binary).unwrap();
        assert_eq!(e.as_i8().unwrap()[0], quantize::binary_byte(0b1001_1011));
        for (body, dim, out) in [
            (&br#"{"embedding":[0.6]}"#[..], 2, OutputType::F32),
            (br#"{"embedding":[0.6,0.8]}"#, 2, OutputType::Binary),
            (
                br#"{"embeddingsByType":{"binary":[1,2]}}"#,
                2,
                OutputType::Ubinary,
            ),
            (
                br#"{"embeddingsByType":{"binary":[1]}}"#,
                2,
                OutputType::Ubinary,
            ),
            (br#"{"inputTextTokenCount":3}"#, 2, OutputType::F32),
            (br#"{"embedding":[0.6,0.8]}"#, 2, OutputType::Int8),
            (br#"{"embedding":[0.6,null]}"#, 2, OutputType::F32),
            (br#"[[0.6,0.8]]"#, 2, OutputType::F32),
        ] {
            let e = decode_titan(body, dim, out).unwrap_err();
            assert_eq!(
                e.kind(),
                ErrorKind::InvalidResponse,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn cohere_answers() {
        let body = br#"{"id":"x","embeddings":{"float":[[0.5,-0.5],[1,0]]},"response_type":"embeddings_by_type","texts":["a","b"]}"#;
        let e = decode_cohere(body, 2, 2, OutputType::F32).unwrap();
        assert_eq!(e.row(1), [1.0, 0.0]);
        let body = br#"{"embeddings":{"int8":[[-128,127,0]]}}"#;
        assert_eq!(
            decode_cohere(body, 1, 3, OutputType::Int8)
                .unwrap()
                .as_i8()
                .unwrap(),
            [-128, 127, 0]
        );
        for (body, rows) in [
            (&br#"{"embeddings":[[0.5,-0.5]]}"#[..], 1),
            (br#"{"embeddings":{"float":[[0.5,-0.5]]}}"#, 2),
            (br#"{"embeddings":{"float":[[0.5,-0.5],[1,0]]}}"#, 1),
            (br#"{"embeddings":{"int8":[[1,2]]}}"#, 1),
        ] {
            let e = decode_cohere(body, rows, 2, OutputType::F32).unwrap_err();
            assert_eq!(
                e.kind(),
                ErrorKind::InvalidResponse,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn exceptions_are_mapped() {
        let with = |name: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                "x-amzn-errortype",
                HeaderValue::from_str(&format!(
                    "{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"
                ))
                .unwrap(),
            );
            h
        };
        for (status, name, message, kind, retryable) in [
            (
                429,
                "ThrottlingException",
                "Too many requests, please wait before trying again.",
                ErrorKind::RateLimited,
                true,
            ),
            (
                429,
                "ModelNotReadyException",
                "Model is not ready for inference.",
                ErrorKind::Unavailable,
                true,
            ),
            (
                408,
                "ModelTimeoutException",
                "Model timed out",
                ErrorKind::Timeout,
                true,
            ),
            (
                503,
                "ServiceUnavailableException",
                "Service unavailable",
                ErrorKind::Unavailable,
                true,
            ),
            (
                500,
                "InternalServerException",
                "Internal",
                ErrorKind::Unavailable,
                true,
            ),
            (
                424,
                "ModelErrorException",
                "The model failed",
                ErrorKind::Unavailable,
                true,
            ),
            (
                400,
                "ValidationException",
                "Malformed input request: extraneous key [x] is not permitted",
                ErrorKind::InvalidInput,
                false,
            ),
            (
                400,
                "ValidationException",
                "400 Bad Request: Too many input tokens. Max input tokens: 8192, request input token count: 9000",
                ErrorKind::ContextLengthExceeded,
                false,
            ),
            (
                400,
                "ServiceQuotaExceededException",
                "Your request exceeds the service quota",
                ErrorKind::QuotaExceeded,
                false,
            ),
            (
                403,
                "AccessDeniedException",
                "You don't have access to the model with the specified model ID.",
                ErrorKind::PermissionDenied,
                false,
            ),
            (
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
                ErrorKind::Authentication,
                false,
            ),
            (
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match",
                ErrorKind::Authentication,
                false,
            ),
            (
                403,
                "ExpiredTokenException",
                "The security token included in the request is expired",
                ErrorKind::Authentication,
                false,
            ),
            (
                404,
                "ResourceNotFoundException",
                "Could not resolve the foundation model",
                ErrorKind::NotFound,
                false,
            ),
        ] {
            let body = format!(r#"{{"message":"{message}"}}"#);
            let e = parse_error(status, &with(name), body.as_bytes());
            assert_eq!(e.kind(), kind, "{name}");
            assert_eq!(e.is_retryable(), retryable, "{name}");
            assert!(
                e.message().contains(name) && e.message().contains(&message[..8]),
                "{e}"
            );
        }
        // The name from the body when the header is missing.
        let e = parse_error(
            400,
            &HeaderMap::new(),
            br#"{"__type":"com.amazon.coral#ThrottlingException","Message":"slow"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert!(e.message().contains("slow"), "{e}");
        assert_eq!(
            parse_error(502, &HeaderMap::new(), b"").kind(),
            ErrorKind::Unavailable
        );
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..256), rows in 0usize..4, dim in 0usize..9) {
            for out in OutputType::ALL {
                let _ = decode_titan(&body, dim, out);
                let _ = decode_cohere(&body, rows, dim, out);
            }
            let _ = parse_error(400, &HeaderMap::new(), &body);
        }

        #[test]
        fn titan_round_trips(v in proptest::collection::vec(-1e30f32..1e30, 1..16)) {
            let body = serde_json::to_vec(&serde_json::json!({"embedding": v, "inputTextTokenCount": 1})).unwrap();
            prop_assert_eq!(decode_titan(&body, v.len(), OutputType::F32).unwrap().into_vecs(), vec![v.clone()]);
            let bits: Vec<u8> = v.iter().map(|x| u8::from(*x > 0.0)).collect();
            let body = serde_json::to_vec(&serde_json::json!({"embeddingsByType": {"binary": bits}})).unwrap();
            let got = decode_titan(&body, v.len(), OutputType::Ubinary).unwrap();
            let want = Embeddings::from_flat(v.clone(), v.len()).unwrap().quantized(OutputType::Ubinary).unwrap();
            prop_assert_eq!(got.row_bytes(0), want.row_bytes(0));
        }

        #[test]
        fn cohere_round_trips(m in proptest::collection::vec(proptest::collection::vec(-1e30f32..1e30, 3), 1..5)) {
            let body = serde_json::to_vec(&serde_json::json!({"embeddings": {"float": m}})).unwrap();
            prop_assert_eq!(decode_cohere(&body, m.len(), 3, OutputType::F32).unwrap().into_vecs(), m);
        }
    }
}
