//! Bedrock's `InvokeModel` as a fake-server dialect ([`BedrockDialect`]),
//! with its own SigV4 verifier ([`verify_sigv4`], written independently of
//! `aws-sigv4` on `hmac` + `sha2`), and the `bedrock` fixture
//! ([`BedrockFixture`]: Titan Text Embeddings v2).
//!
//! Authentication as strict as AWS's: no `Authorization` is 403
//! `MissingAuthenticationTokenException`; a malformed one 403
//! `IncompleteSignatureException`; an unknown access key id, or a session
//! token other than the expected one (or missing when one is expected),
//! 403 `UnrecognizedClientException`; an `x-amz-date` more than 5 minutes
//! off 403 `InvalidSignatureException` ("Signature expired"); a
//! credential scope for another region or service, or a signature that the
//! verifier does not recompute from the request it received (method,
//! double-encoded path, query, every signed header, the body's SHA-256),
//! 403 `InvalidSignatureException`. `host` and `x-amz-date` must be
//! signed, and so must `x-amz-security-token` when sent.
//!
//! Bodies as strict as the models': Titan takes only `inputText`
//! (non-empty, at most 8,192 tokens), `dimensions` (256, 512, 1024),
//! `normalize`, `embeddingTypes` (`float`, `binary`); Cohere only `texts`
//! (1 to 96, each at most 2,048 characters), `input_type` (required),
//! `truncate`, `embedding_types`, and for embed-v4 `output_dimension`.
//! An extraneous key is a 400 `ValidationException` ("Malformed input
//! request"). Errors are `{"message"}` with the `x-amzn-ErrorType` header.
//!
//! Rows: DESIGN.md §4 vectors; Titan's `binary` is 1 where the component is
//! positive, else 0 (so packed it is `quantize::pack_bits` of the §4
//! vector); Cohere's quantized types as in `embeddings_cohere`'s dialect
//! (`quantize::{int8, uint8}`, packed signs).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use embeddings_core::{Config, InputType, OutputType, quantize};
use embeddings_testkit::dialect::{
    Dialect, EngineError, Exchange, JSON, Reply, RequestSummary, RouteSpec, RowStyle, Rows,
};
use embeddings_testkit::{Fixture, RecordedRequest, Route, count_tokens};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// `POST /model/{modelId}/invoke`.
pub const BEDROCK_INVOKE: Route = Route::new("bedrock_invoke");

/// The credentials a [`BedrockDialect`] accepts.
#[derive(Clone)]
pub struct TestCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token every request must carry, if any.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for TestCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Bedrock `InvokeModel` for Titan Text Embeddings v2 and Cohere Embed.
#[derive(Debug, Clone)]
pub struct BedrockDialect {
    credentials: TestCredentials,
    region: String,
    /// model id → (family, native dimension, context tokens).
    models: BTreeMap<String, (crate::Family, usize, usize)>,
    max_skew: Duration,
}

impl Default for BedrockDialect {
    fn default() -> Self {
        BedrockDialect::new(BedrockFixture::credentials(), BedrockFixture::REGION)
    }
}

fn exception(status: u16, name: &str, message: &str) -> Reply {
    Reply::json(status, JSON, &json!({ "message": message })).header(
        "x-amzn-errortype",
        format!("{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
    )
}

fn validation(message: &str) -> Reply {
    exception(400, "ValidationException", message)
}

/// The exception Bedrock answers a status with.
pub fn exception_of(status: u16) -> &'static str {
    match status {
        400 => "ValidationException",
        401 => "UnrecognizedClientException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn uri_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The SigV4 signature (hex) of a request, computed from scratch: the
/// canonical request (method, the path's segments encoded once more — the
/// double encoding every service but S3 uses —, the query sorted, the
/// signed headers lower-cased with trimmed, space-folded values, the
/// body's SHA-256), the string to sign, the derived key.
#[allow(clippy::too_many_arguments)]
pub fn sigv4_signature(
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    signed: &[&str],
    body: &[u8],
    secret: &str,
    amz_date: &str,
    region: &str,
    service: &str,
) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let uri: Vec<String> = path.split('/').map(uri_encode).collect();
    let uri = if path.is_empty() {
        "/".to_owned()
    } else {
        uri.join("/")
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let creq = format!(
        "{method}\n{uri}\n{query}\n{canonical_headers}\n{}\n{}",
        signed.join(";"),
        hex(&Sha256::digest(body))
    );
    let date = &amz_date[..amz_date.len().min(8)];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(creq.as_bytes()))
    );
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    let k = hmac(&k, b"aws4_request");
    hex(&hmac(&k, sts.as_bytes()))
}

/// Seconds since the epoch of an `x-amz-date` (`20150830T123600Z`).
fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Why a request's SigV4 authentication is refused, as Bedrock answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigV4Refusal {
    /// The exception name.
    pub exception: &'static str,
    /// The message.
    pub message: String,
}

/// Verifies a request's SigV4 `Authorization` against `credentials`,
/// `region` and `service` (see the module docs for what is checked), at
/// `now`.
#[allow(clippy::too_many_arguments)]
pub fn verify_sigv4(
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
    credentials: &TestCredentials,
    region: &str,
    service: &str,
    now: SystemTime,
    max_skew: Duration,
) -> Result<(), SigV4Refusal> {
    let refuse = |exception: &'static str, message: &str| SigV4Refusal {
        exception,
        message: message.to_owned(),
    };
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let Some(auth) = get("authorization") else {
        return Err(refuse(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let incomplete = |what: &str| {
        refuse(
            "IncompleteSignatureException",
            &format!("Authorization header requires '{what}' parameter."),
        )
    };
    let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(incomplete("Algorithm"));
    };
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential = credential.ok_or_else(|| incomplete("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| incomplete("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err(incomplete("Credential"));
    }
    if scope[0] != credentials.access_key_id {
        return Err(refuse(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    match (&credentials.session_token, get("x-amz-security-token")) {
        (None, None) => {}
        (Some(want), Some(got)) if want == got => {}
        _ => {
            return Err(refuse(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        }
    }
    let Some(amz_date) = get("x-amz-date") else {
        return Err(incomplete("X-Amz-Date"));
    };
    let Some(at) = parse_amz_date(amz_date) else {
        return Err(refuse(
            "IncompleteSignatureException",
            &format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'."),
        ));
    };
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if now_secs.abs_diff(at) > max_skew.as_secs() {
        return Err(refuse(
            "InvalidSignatureException",
            &format!(
                "Signature expired: {amz_date} is now earlier or later than the allowed skew."
            ),
        ));
    }
    if scope[1] != &amz_date[..8] {
        return Err(refuse(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.",
        ));
    }
    if scope[2] != region || scope[3] != service {
        return Err(refuse(
            "InvalidSignatureException",
            &format!(
                "Credential should be scoped to a valid region and service ('{region}', '{service}'), not '{}/{}'.",
                scope[2], scope[3]
            ),
        ));
    }
    let signed: Vec<&str> = signed_headers.split(';').collect();
    let mut sorted = signed.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted != signed
        || signed
            .iter()
            .any(|h| h.chars().any(|c| c.is_ascii_uppercase()))
    {
        return Err(refuse(
            "InvalidSignatureException",
            "SignedHeaders must be lower case, sorted and unique.",
        ));
    }
    for must in ["host", "x-amz-date"] {
        if !signed.contains(&must) {
            return Err(refuse(
                "InvalidSignatureException",
                &format!("'{must}' must be a signed header."),
            ));
        }
    }
    if get("x-amz-security-token").is_some() && !signed.contains(&"x-amz-security-token") {
        return Err(refuse(
            "InvalidSignatureException",
            "'x-amz-security-token' must be a signed header.",
        ));
    }
    if signed.iter().any(|h| get(h).is_none()) {
        return Err(refuse(
            "InvalidSignatureException",
            "A signed header is not in the request.",
        ));
    }
    let want = sigv4_signature(
        method,
        path_and_query,
        headers,
        &signed,
        body,
        &credentials.secret_access_key,
        amz_date,
        region,
        service,
    );
    if want != signature {
        return Err(refuse(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok(())
}

/// Percent-decodes a path segment.
fn decode_segment(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The model id of a `/model/{id}/invoke` path.
fn model_of(path: &str) -> Option<String> {
    let path = path.split('?').next()?;
    let id = path.strip_prefix("/model/")?.strip_suffix("/invoke")?;
    decode_segment(id)
}

impl BedrockDialect {
    /// Accepts these credentials, for requests signed for `region`.
    pub fn new(credentials: TestCredentials, region: &str) -> Self {
        BedrockDialect {
            credentials,
            region: region.to_owned(),
            models: [
                (
                    "amazon.titan-embed-text-v2:0",
                    crate::Family::Titan,
                    1024,
                    crate::TITAN_MAX_TOKENS,
                ),
                ("cohere.embed-english-v3", crate::Family::Cohere, 1024, 512),
                (
                    "cohere.embed-multilingual-v3",
                    crate::Family::Cohere,
                    1024,
                    512,
                ),
                ("cohere.embed-v4:0", crate::Family::Cohere, 1536, 128_000),
            ]
            .into_iter()
            .map(|(m, f, d, c)| (m.to_owned(), (f, d, c)))
            .collect(),
            max_skew: Duration::from_secs(300),
        }
    }

    fn titan(
        &self,
        ex: &Exchange<'_>,
        model: &str,
        body: &serde_json::Map<String, Value>,
        context: usize,
    ) -> Reply {
        const FIELDS: &[&str] = &["inputText", "dimensions", "normalize", "embeddingTypes"];
        if let Some(k) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return validation(&format!(
                "Malformed input request: extraneous key [{k}] is not permitted, please reformat your input and try again."
            ));
        }
        let Some(text) = body.get("inputText").and_then(Value::as_str) else {
            return validation(
                "Malformed input request: #: required key [inputText] not found, please reformat your input and try again.",
            );
        };
        if text.is_empty() {
            return validation(
                "Malformed input request: #/inputText: expected minLength: 1, actual: 0, please reformat your input and try again.",
            );
        }
        let dim = match body.get("dimensions") {
            None => 1024,
            Some(v) => match v.as_u64() {
                Some(d @ (256 | 512 | 1024)) => d as usize,
                _ => {
                    return validation(&format!(
                        "Malformed input request: #/dimensions: {v} is not a valid enum value, please reformat your input and try again."
                    ));
                }
            },
        };
        if body.get("normalize").is_some_and(|v| !v.is_boolean()) {
            return validation(
                "Malformed input request: #/normalize: expected type: Boolean, please reformat your input and try again.",
            );
        }
        let mut types = Vec::new();
        match body.get("embeddingTypes") {
            None => types.push("float"),
            Some(Value::Array(list)) if !list.is_empty() => {
                for v in list {
                    match v.as_str() {
                        Some(t @ ("float" | "binary")) if !types.contains(&t) => types.push(t),
                        _ => {
                            return validation(&format!(
                                "Malformed input request: #/embeddingTypes: {v} is not a valid enum value, please reformat your input and try again."
                            ));
                        }
                    }
                }
            }
            Some(_) => {
                return validation(
                    "Malformed input request: #/embeddingTypes: expected a non-empty array, please reformat your input and try again.",
                );
            }
        }
        let tokens = count_tokens(text);
        if tokens > context {
            return validation(&format!(
                "400 Bad Request: Too many input tokens. Max input tokens: {context}, request input token count: {tokens}"
            ));
        }
        let limits = match ex.admit(tokens as u64) {
            Ok(l) => l,
            Err(r) => {
                return exception(
                    429,
                    "ThrottlingException",
                    "Too many requests, please wait before trying again.",
                )
                .rejected(&r);
            }
        };
        let rows = ex.rows(model, &[text], dim, RowStyle::Positional);
        let mut answer = json!({ "inputTextTokenCount": tokens });
        let float = row_json(&rows, 0, |x| json!(x));
        answer["embedding"] = float.clone();
        let mut by_type = serde_json::Map::new();
        for t in types {
            let v = if t == "float" {
                float.clone()
            } else {
                row_json(&rows, 0, |x| json!(u8::from(x > 0.0)))
            };
            by_type.insert(t.to_owned(), v);
        }
        answer["embeddingsByType"] = Value::Object(by_type);
        Reply::json(200, JSON, &answer)
            .header("x-amzn-bedrock-input-token-count", tokens.to_string())
            .rate_limits(&limits)
            .embedded(1, tokens as u64)
    }

    #[allow(clippy::too_many_arguments)]
    fn cohere(
        &self,
        ex: &Exchange<'_>,
        model: &str,
        body: &serde_json::Map<String, Value>,
        native: usize,
        context: usize,
    ) -> Reply {
        const FIELDS: &[&str] = &[
            "texts",
            "images",
            "input_type",
            "truncate",
            "embedding_types",
            "output_dimension",
            "max_tokens",
        ];
        if let Some(k) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return validation(&format!(
                "Malformed input request: extraneous key [{k}] is not permitted, please reformat your input and try again."
            ));
        }
        let texts: Option<Vec<&str>> = body
            .get("texts")
            .and_then(Value::as_array)
            .and_then(|l| l.iter().map(Value::as_str).collect());
        let Some(texts) = texts.filter(|t| !t.is_empty()) else {
            return validation(
                "Malformed input request: #/texts: expected a non-empty array of strings, please reformat your input and try again.",
            );
        };
        if texts.len() > crate::COHERE_MAX_TEXTS {
            return validation(&format!(
                "Malformed input request: #/texts: expected maximum item count: {}, found: {}, please reformat your input and try again.",
                crate::COHERE_MAX_TEXTS,
                texts.len()
            ));
        }
        if let Some(t) = texts.iter().find(|t| t.chars().count() > 2048) {
            return validation(&format!(
                "Malformed input request: #/texts: expected maxLength: 2048, actual: {}, please reformat your input and try again.",
                t.chars().count()
            ));
        }
        match body.get("input_type").and_then(Value::as_str) {
            Some("search_document" | "search_query" | "classification" | "clustering") => {}
            _ => {
                return validation(
                    "Malformed input request: #/input_type: required, one of search_document, search_query, classification, clustering, please reformat your input and try again.",
                );
            }
        }
        let truncate = match body.get("truncate") {
            None => "NONE",
            Some(v) => match v.as_str() {
                Some(t @ ("NONE" | "START" | "END")) => t,
                _ => {
                    return validation(&format!(
                        "Malformed input request: #/truncate: {v} is not a valid enum value, please reformat your input and try again."
                    ));
                }
            },
        };
        let mut types: Vec<OutputType> = Vec::new();
        match body.get("embedding_types") {
            None => types.push(OutputType::F32),
            Some(Value::Array(list)) if !list.is_empty() => {
                for v in list {
                    match v
                        .as_str()
                        .and_then(OutputType::from_name)
                        .filter(|t| crate::cohere_output_type(*t) == v.as_str())
                    {
                        Some(t) if !types.contains(&t) => types.push(t),
                        _ => {
                            return validation(&format!(
                                "Malformed input request: #/embedding_types: {v} is not a valid enum value, please reformat your input and try again."
                            ));
                        }
                    }
                }
            }
            Some(_) => {
                return validation(
                    "Malformed input request: #/embedding_types: expected a non-empty array, please reformat your input and try again.",
                );
            }
        }
        let dim = match body.get("output_dimension") {
            None => native,
            Some(v) if model.contains("embed-v4") => match v.as_u64() {
                Some(d @ (256 | 512 | 1024 | 1536)) => d as usize,
                _ => {
                    return validation(&format!(
                        "Malformed input request: #/output_dimension: {v} is not a valid enum value, please reformat your input and try again."
                    ));
                }
            },
            Some(_) => {
                return validation(
                    "Malformed input request: extraneous key [output_dimension] is not permitted, please reformat your input and try again.",
                );
            }
        };
        let counts: Vec<usize> = texts.iter().map(|t| count_tokens(t)).collect();
        if truncate == "NONE" {
            if let Some(n) = counts.iter().find(|n| **n > context) {
                return validation(&format!(
                    "400 Bad Request: Too many input tokens. Max input tokens: {context}, request input token count: {n}"
                ));
            }
        }
        let total: usize = counts.iter().map(|n| (*n).min(context)).sum();
        let limits = match ex.admit(total as u64) {
            Ok(l) => l,
            Err(r) => {
                return exception(
                    429,
                    "ThrottlingException",
                    "Too many requests, please wait before trying again.",
                )
                .rejected(&r);
            }
        };
        let rows = ex.rows(model, &texts, dim, RowStyle::Positional);
        let mut embeddings = serde_json::Map::new();
        for t in types {
            if let Some(name) = crate::cohere_output_type(t) {
                embeddings.insert(name.to_owned(), cohere_rows(&rows, t));
            }
        }
        Reply::json(
            200,
            JSON,
            &json!({"id": "fake-bedrock-cohere", "embeddings": embeddings, "response_type": "embeddings_by_type", "texts": texts}),
        )
        .header("x-amzn-bedrock-input-token-count", total.to_string())
        .rate_limits(&limits)
        .embedded(texts.len(), total as u64)
    }
}

/// Row `i` as JSON values (a NaN as `null`).
fn row_json(rows: &Rows, i: usize, f: impl Fn(f32) -> Value) -> Value {
    if i >= rows.len() {
        return Value::Null;
    }
    Value::Array(
        rows.row(i)
            .iter()
            .map(|&x| if x.is_nan() { Value::Null } else { f(x) })
            .collect(),
    )
}

/// Cohere's rows as `t`.
fn cohere_rows(rows: &Rows, t: OutputType) -> Value {
    let row = |i: usize| -> Value {
        let r = rows.row(i);
        let nan = r.iter().any(|x| x.is_nan());
        let mut v: Vec<Value> = match t {
            OutputType::F32 => return row_json(rows, i, |x| json!(x)),
            OutputType::Int8 => r.iter().map(|&x| json!(quantize::int8(x))).collect(),
            OutputType::Uint8 => r.iter().map(|&x| json!(quantize::uint8(x))).collect(),
            _ => {
                let mut bits = vec![0u8; r.len().div_ceil(8)];
                quantize::pack_bits(r, &mut bits);
                bits.into_iter()
                    .map(|b| {
                        if t == OutputType::Binary {
                            json!(quantize::binary_byte(b))
                        } else {
                            json!(b)
                        }
                    })
                    .collect()
            }
        };
        if let Some(first) = v.first_mut().filter(|_| nan) {
            *first = Value::Null;
        }
        Value::Array(v)
    };
    Value::Array((0..rows.len()).map(row).collect())
}

impl Dialect for BedrockDialect {
    fn name(&self) -> &'static str {
        "bedrock"
    }

    fn routes(&self) -> Vec<RouteSpec> {
        vec![RouteSpec::post(BEDROCK_INVOKE, ["/model/{model}/invoke"]).embedding()]
    }

    fn handle(&self, ex: &Exchange<'_>) -> Reply {
        let headers: Vec<(String, String)> = ex
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        if let Err(r) = verify_sigv4(
            ex.method().as_str(),
            ex.path(),
            &headers,
            ex.body(),
            &self.credentials,
            &self.region,
            crate::SIGNING_SERVICE,
            SystemTime::now(),
            self.max_skew,
        ) {
            return exception(403, r.exception, &r.message);
        }
        let Some(model) = model_of(ex.path()) else {
            return validation("The provided model identifier is invalid.");
        };
        let Some(&(family, native, context)) = self.models.get(&model) else {
            return exception(
                404,
                "ResourceNotFoundException",
                "Could not resolve the foundation model from the provided model identifier.",
            );
        };
        if ex
            .header("content-type")
            .is_none_or(|c| !c.starts_with("application/json"))
        {
            return validation(
                "Malformed input request: the content type must be application/json.",
            );
        }
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(ex.body()) else {
            return validation(
                "Malformed input request: the body is not a JSON object, please reformat your input and try again.",
            );
        };
        match family {
            crate::Family::Titan => self.titan(ex, &model, &body, context),
            crate::Family::Cohere => self.cohere(ex, &model, &body, native, context),
        }
    }

    fn error(&self, _route: Route, e: &EngineError<'_>) -> Reply {
        let status = e.status().as_u16();
        let name = match e {
            EngineError::Status(s) => s.error_type.as_deref().unwrap_or(exception_of(status)),
            _ => exception_of(status),
        };
        let message = match e {
            EngineError::RateLimited(_) => {
                "Too many requests, please wait before trying again.".into()
            }
            other => other.message(),
        };
        Reply::json(status, JSON, &json!({ "message": message })).header(
            "x-amzn-errortype",
            format!("{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        )
    }

    fn describe(&self, r: &RecordedRequest) -> RequestSummary {
        let mut s = RequestSummary::default();
        if r.route != BEDROCK_INVOKE {
            return s;
        }
        s.model = model_of(&r.path);
        let b = &r.body;
        if b["inputText"].is_string() {
            s.inputs = Some(1);
            s.output_type = match b["embeddingTypes"].as_array().map(|l| l.as_slice()) {
                Some([v]) if v == "binary" => Some(OutputType::Binary),
                Some([v]) if v == "float" => Some(OutputType::F32),
                _ => None,
            };
        } else if let Some(texts) = b["texts"].as_array() {
            s.inputs = Some(texts.len());
            s.input_type = match b["input_type"].as_str() {
                Some("search_document") => Some(InputType::Document),
                Some("search_query") => Some(InputType::Query),
                Some("classification") => Some(InputType::Classification),
                Some("clustering") => Some(InputType::Clustering),
                _ => None,
            };
            s.output_type = match b["embedding_types"].as_array().map(|l| l.as_slice()) {
                Some([v]) => v.as_str().and_then(OutputType::from_name),
                _ => None,
            };
        }
        s
    }
}

/// The `bedrock` provider against [`BedrockDialect`]: Titan Text Embeddings
/// v2 at 512 dimensions, temporary credentials (a session token).
#[derive(Debug, Clone, Copy, Default)]
pub struct BedrockFixture;

impl BedrockFixture {
    /// The access key id.
    pub const ACCESS_KEY_ID: &'static str = "AKIAFIXTURE0EXAMPLE0";
    /// The secret access key.
    pub const SECRET: &'static str = "fixtureSecretKey/0123456789+abcdefghijKLMN";
    /// The session token.
    pub const SESSION_TOKEN: &'static str =
        "FwoGZXIvYXdzFixtureSessionToken0123456789abcdefABCDEF==";
    /// The region.
    pub const REGION: &'static str = "us-west-2";
    /// The model.
    pub const MODEL: &'static str = "amazon.titan-embed-text-v2:0";
    /// The dimension.
    pub const DIMENSION: usize = 512;

    /// The credentials the fixture's dialect accepts.
    pub fn credentials() -> TestCredentials {
        TestCredentials {
            access_key_id: Self::ACCESS_KEY_ID.into(),
            secret_access_key: Self::SECRET.into(),
            session_token: Some(Self::SESSION_TOKEN.into()),
        }
    }

    /// The `[bedrock]` section with the fixture's credentials and region.
    pub fn section() -> Value {
        json!({
            "region": Self::REGION,
            "access_key_id": Self::ACCESS_KEY_ID,
            "secret_access_key": Self::SECRET,
            "session_token": Self::SESSION_TOKEN,
        })
    }
}

impl Fixture for BedrockFixture {
    fn provider(&self) -> &'static str {
        crate::NAME
    }

    fn dialects(&self) -> Vec<Arc<dyn Dialect>> {
        vec![Arc::new(BedrockDialect::default())]
    }

    fn config(&self, base_url: &str) -> Config {
        let mut c = Config::for_provider(crate::NAME);
        c.model = Some(Self::MODEL.to_owned());
        c.dimensions = Some(Self::DIMENSION);
        c.base_url = Some(base_url.to_owned());
        c.sections.insert(crate::NAME.into(), Self::section());
        c
    }

    fn model(&self) -> &'static str {
        Self::MODEL
    }

    fn dimension(&self) -> usize {
        Self::DIMENSION
    }

    fn embedding_route(&self) -> Route {
        BEDROCK_INVOKE
    }

    fn output_types(&self) -> &'static [OutputType] {
        crate::TITAN_OUTPUT_TYPES
    }

    fn secret(&self) -> Option<&'static str> {
        Some(Self::SECRET)
    }
}

embeddings_testkit::register_fixture!(BedrockFixture);

#[cfg(test)]
mod tests {
    use super::*;

    /// The verifier reproduces the same published suite signatures as the
    /// signing path (AWS SigV4 test suite, credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z).
    #[test]
    fn the_verifier_computes_the_suites_signatures() {
        let h = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let host = ("Host", "example.amazonaws.com");
        let date = ("X-Amz-Date", "20150830T123600Z");
        for (method, path, headers, signed, body, want) in [
            (
                "GET",
                "/",
                h(&[host, date]),
                vec!["host", "x-amz-date"],
                &b""[..],
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "GET",
                "/?Param2=value2&Param1=value1",
                h(&[host, date]),
                vec!["host", "x-amz-date"],
                b"",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            (
                "POST",
                "/",
                h(&[host, date]),
                vec!["host", "x-amz-date"],
                b"",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
            (
                "POST",
                "/",
                h(&[
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    host,
                    date,
                ]),
                vec!["content-type", "host", "x-amz-date"],
                b"Param1=value1",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
            ),
        ] {
            let got = sigv4_signature(
                method,
                path,
                &headers,
                &signed,
                body,
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "20150830T123600Z",
                "us-east-1",
                "service",
            );
            assert_eq!(got, want, "{method} {path}");
        }
    }

    #[test]
    fn refusals() {
        let creds = BedrockFixture::credentials();
        let now = UNIX_EPOCH + Duration::from_secs(parse_amz_date("20250102T030405Z").unwrap());
        let signed = crate::sign_request(
            "POST",
            "http://127.0.0.1:9/model/amazon.titan-embed-text-v2%3A0/invoke",
            &[
                ("host", "127.0.0.1:9"),
                ("content-type", "application/json"),
            ],
            b"{}",
            &crate::AwsCredentials::new(
                creds.access_key_id.clone(),
                creds.secret_access_key.clone().into(),
                creds.session_token.clone().map(Into::into),
            ),
            "us-west-2",
            "bedrock",
            now,
        )
        .unwrap();
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), "127.0.0.1:9".into()),
            ("content-type".into(), "application/json".into()),
        ];
        headers.extend(signed.iter().map(|s| (s.name.to_owned(), s.value.clone())));
        let path = "/model/amazon.titan-embed-text-v2%3A0/invoke";
        let check = |headers: &[(String, String)], body: &[u8], region: &str, at: SystemTime| {
            verify_sigv4(
                "POST",
                path,
                headers,
                body,
                &creds,
                region,
                "bedrock",
                at,
                Duration::from_secs(300),
            )
            .map_err(|r| r.exception)
        };
        assert_eq!(check(&headers, b"{}", "us-west-2", now), Ok(()));
        assert_eq!(
            check(&headers, b"{ }", "us-west-2", now),
            Err("InvalidSignatureException")
        );
        assert_eq!(
            check(&headers, b"{}", "eu-west-1", now),
            Err("InvalidSignatureException")
        );
        assert_eq!(
            check(&headers, b"{}", "us-west-2", now + Duration::from_secs(600)),
            Err("InvalidSignatureException")
        );
        let without_token: Vec<_> = headers
            .iter()
            .filter(|(k, _)| k != "x-amz-security-token")
            .cloned()
            .collect();
        assert_eq!(
            check(&without_token, b"{}", "us-west-2", now),
            Err("UnrecognizedClientException")
        );
        let no_auth: Vec<_> = headers
            .iter()
            .filter(|(k, _)| k != "authorization")
            .cloned()
            .collect();
        assert_eq!(
            check(&no_auth, b"{}", "us-west-2", now),
            Err("MissingAuthenticationTokenException")
        );
        // The path is double-encoded in the canonical request (%3A → %253A):
        // the same path encoded once is another signature.
        assert!(
            verify_sigv4(
                "POST",
                "/model/amazon.titan-embed-text-v2:0/invoke",
                &headers,
                b"{}",
                &creds,
                "us-west-2",
                "bedrock",
                now,
                Duration::from_secs(300)
            )
            .is_err()
        );
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("2015-08-30T12:36:00Z"), None);
    }
}
