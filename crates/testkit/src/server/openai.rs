//! `POST /v1/embeddings` and `GET /v1/models`, as strict as OpenAI's API.

use std::borrow::Cow;

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::config::{
    FIXED_DIMENSION_OPENAI_MODELS, OPENAI_MAX_INPUT_TOKENS, OPENAI_MAX_INPUTS,
    OPENAI_MAX_REQUEST_TOKENS,
};
use super::faults::plan_rows;
use super::input::{Input, Text};
use super::limits::Exceeded;
use super::rows::Rows;
use super::tokens::{bpe, count_tokens};
use super::{Ctx, JSON, Reply, openai_error};

const INVALID: &str = "invalid_request_error";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Text<'a>>,
    #[serde(borrow, default)]
    input: Option<Input<'a>>,
    #[serde(borrow, default)]
    encoding_format: Option<Text<'a>>,
    #[serde(default)]
    dimensions: Option<i64>,
    #[serde(borrow, default)]
    #[allow(dead_code)]
    user: Option<Text<'a>>,
}

fn bad_request(message: &str, param: Option<&str>) -> Reply {
    openai_error(StatusCode::BAD_REQUEST, message, INVALID, param, None)
}

fn invalid_input() -> Reply {
    bad_request(
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
        Some("input"),
    )
}

/// Checks `Authorization: Bearer <key>` when a key is configured.
fn authorize(ctx: &Ctx<'_>) -> Option<Reply> {
    let key = ctx.inner.api_key.as_deref()?;
    let sent = ctx
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match sent {
        Some(k) if k == key => None,
        Some(_) => Some(openai_error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            INVALID,
            None,
            Some("invalid_api_key"),
        )),
        None => Some(openai_error(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            INVALID,
            None,
            None,
        )),
    }
}

fn parse_error(e: &serde_json::Error) -> Reply {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => {
            let text = e.to_string();
            let unknown = text
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split('`').next());
            if let Some(name) = unknown {
                return bad_request(
                    &format!("Unrecognized request argument supplied: {name}"),
                    None,
                );
            }
            let message = text.split(" at line ").next().unwrap_or(&text);
            if message.starts_with("'$.input'") {
                return bad_request(message, Some("input"));
            }
            bad_request(&format!("Invalid request: {message}"), None)
        }
        _ => bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            None,
        ),
    }
}

/// `POST /v1/embeddings`.
pub(crate) fn embeddings(ctx: &Ctx<'_>) -> Reply {
    if let Some(denied) = authorize(ctx) {
        return denied;
    }
    let req: EmbeddingRequest<'_> = match serde_json::from_slice(ctx.body) {
        Ok(r) => r,
        Err(e) => return parse_error(&e),
    };
    let Some(Text(model)) = req.model else {
        return bad_request("you must provide a model parameter", None);
    };
    let Some(input) = req.input else {
        return bad_request("'input' is a required property", Some("input"));
    };
    let base64 = match req.encoding_format.as_ref().map(|t| t.0.as_ref()) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return bad_request(
                &format!(
                    "Invalid value for 'encoding_format' = {other}. Supported values are: 'float' and 'base64'."
                ),
                Some("encoding_format"),
            );
        }
    };
    // Texts and per-input token counts.
    let (texts, counts): (Vec<Cow<'_, str>>, Vec<usize>) = match input {
        Input::Texts(texts) => {
            if texts.is_empty() || texts.iter().any(|t| t.is_empty()) {
                return invalid_input();
            }
            if texts.len() > OPENAI_MAX_INPUTS {
                return too_many_inputs(texts.len());
            }
            let counts = texts.iter().map(|t| count_tokens(t)).collect();
            (texts, counts)
        }
        Input::Tokens(lists) => {
            if lists.is_empty() || lists.iter().any(Vec::is_empty) {
                return invalid_input();
            }
            if lists.len() > OPENAI_MAX_INPUTS {
                return too_many_inputs(lists.len());
            }
            let mut texts = Vec::with_capacity(lists.len());
            for tokens in &lists {
                match bpe().decode_bytes(tokens) {
                    Ok(bytes) => {
                        texts.push(Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()))
                    }
                    Err(_) => {
                        return bad_request(
                            "'$.input' holds a token id that is not in cl100k_base.",
                            Some("input"),
                        );
                    }
                }
            }
            (texts, lists.iter().map(Vec::len).collect())
        }
    };
    let Some(&model_dim) = ctx.inner.openai_models.get(model.as_ref()) else {
        return openai_error(
            StatusCode::NOT_FOUND,
            &format!("The model `{model}` does not exist or you do not have access to it."),
            INVALID,
            None,
            Some("model_not_found"),
        );
    };
    let dim = match req.dimensions {
        None => model_dim,
        Some(_) if FIXED_DIMENSION_OPENAI_MODELS.contains(&model.as_ref()) => {
            return bad_request(
                "This model does not support specifying dimensions.",
                Some("dimensions"),
            );
        }
        Some(d) if d < 1 => {
            return bad_request(
                &format!(
                    "Invalid value for 'dimensions' = {d}. Must be greater than or equal to 1."
                ),
                Some("dimensions"),
            );
        }
        Some(d) if d as u64 > model_dim as u64 => {
            return bad_request(
                &format!(
                    "Invalid value for 'dimensions' = {d}. Must be less than or equal to {model_dim}."
                ),
                Some("dimensions"),
            );
        }
        Some(d) => d as usize,
    };
    if let Some((i, &n)) = counts
        .iter()
        .enumerate()
        .find(|(_, n)| **n > OPENAI_MAX_INPUT_TOKENS)
    {
        return openai_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "This model's maximum context length is {OPENAI_MAX_INPUT_TOKENS} tokens, however you requested {n} tokens ({n} in your prompt; 0 for the completion) in input[{i}]. Please reduce your prompt; or completion length."
            ),
            INVALID,
            Some("input"),
            Some("context_length_exceeded"),
        );
    }
    let total: usize = counts.iter().sum();
    if total > OPENAI_MAX_REQUEST_TOKENS {
        return openai_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Requested {total} tokens, max {OPENAI_MAX_REQUEST_TOKENS} tokens per request"
            ),
            INVALID,
            Some("input"),
            Some("max_tokens_per_request"),
        );
    }
    let snapshot = match ctx.inner.rate_limit(total as u64) {
        Ok(s) => s,
        Err(r) => {
            let (kind, what, unit) = match r.exceeded {
                Exceeded::Requests => ("requests", "requests per min (RPM)", "requests"),
                Exceeded::Tokens | Exceeded::TooLarge => {
                    ("tokens", "tokens per min (TPM)", "tokens")
                }
            };
            let message = match r.exceeded {
                Exceeded::TooLarge => format!(
                    "Request too large for {model} on {what}: Limit {}, Requested {total}. The input or output tokens must be reduced in order to run successfully.",
                    r.limit
                ),
                _ => format!(
                    "Rate limit reached for {model} on {what}: Limit {}, Used {}, Requested {}. Please try again in {}.",
                    r.limit,
                    r.used,
                    if unit == "requests" { 1 } else { total },
                    super::limits::format_reset(r.retry_after.unwrap_or_default()),
                ),
            };
            let mut reply = openai_error(
                StatusCode::TOO_MANY_REQUESTS,
                &message,
                kind,
                None,
                Some("rate_limit_exceeded"),
            );
            if let Some(wait) = r.retry_after {
                let ms = wait.as_millis().max(1);
                reply = reply
                    .header("retry-after", ms.div_ceil(1000).to_string())
                    .header("retry-after-ms", ms.to_string());
            }
            r.snapshot.write(&mut reply.headers);
            return reply;
        }
    };

    let plan = plan_rows(texts.len(), dim, ctx.rows, true);
    let rows = Rows::compute(&model, &texts, plan);
    let body = if base64 {
        base64_body(&rows, &model, total)
    } else {
        let mut body = Vec::with_capacity(rows.floats() * 12 + rows.len() * 64 + 256);
        let response = EmbeddingResponse {
            object: "list",
            data: FloatData(&rows),
            model: &model,
            usage: Usage {
                prompt_tokens: total,
                total_tokens: total,
            },
        };
        if serde_json::to_writer(&mut body, &response).is_err() {
            return openai_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not encode the response",
                "server_error",
                None,
                None,
            );
        }
        body
    };
    let mut reply = Reply::bytes(StatusCode::OK, JSON, body).header("openai-model", &model);
    snapshot.write(&mut reply.headers);
    reply.inputs = texts.len() as u64;
    reply.tokens = total as u64;
    reply
}

fn too_many_inputs(n: usize) -> Reply {
    bad_request(
        &format!(
            "Too many inputs. The max number of inputs is {OPENAI_MAX_INPUTS}, but {n} were given. We recommend splitting your inputs into smaller batches."
        ),
        Some("input"),
    )
}

#[derive(Serialize)]
struct EmbeddingResponse<'a> {
    object: &'static str,
    data: FloatData<'a>,
    model: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

/// The `data` list with float vectors.
struct FloatData<'a>(&'a Rows);

#[derive(Serialize)]
struct Item<'a> {
    object: &'static str,
    index: usize,
    embedding: &'a [f32],
}

impl Serialize for FloatData<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (i, plan) in self.0.plan.iter().enumerate() {
            seq.serialize_element(&Item {
                object: "embedding",
                index: plan.index,
                embedding: self.0.row(i),
            })?;
        }
        seq.end()
    }
}

/// The same JSON as [`EmbeddingResponse`] with base64 vectors, written
/// directly: base64 needs no escaping, so the (large) strings are encoded
/// straight into the body instead of being scanned again by serde_json.
fn base64_body(rows: &Rows, model: &str, tokens: usize) -> Vec<u8> {
    use std::io::Write as _;
    let encoded: usize = rows.plan.iter().map(|r| (r.dim * 4).div_ceil(3) * 4).sum();
    let mut out = Vec::with_capacity(encoded + rows.len() * 64 + model.len() + 128);
    let mut bytes: Vec<u8> = Vec::new();
    out.extend_from_slice(br#"{"object":"list","data":["#);
    for (i, plan) in rows.plan.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(
            out,
            r#"{{"object":"embedding","index":{},"embedding":""#,
            plan.index
        );
        let row = rows.row(i);
        bytes.clear();
        bytes.reserve(row.len() * 4);
        for x in row {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        let at = out.len();
        out.resize(at + (bytes.len()).div_ceil(3) * 4, 0);
        let written = BASE64.encode_slice(&bytes, &mut out[at..]).unwrap_or(0);
        out.truncate(at + written);
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(br#"],"model":"#);
    let _ = serde_json::to_writer(&mut out, model);
    let _ = write!(
        out,
        r#","usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}}}"#
    );
    out
}

#[derive(Serialize)]
struct ModelObject<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelObject<'a>>,
}

/// `GET /v1/models` and `GET /v1/models/{id}`.
pub(crate) fn models(ctx: &Ctx<'_>) -> Reply {
    if let Some(denied) = authorize(ctx) {
        return denied;
    }
    let object = |id| ModelObject {
        id,
        object: "model",
        created: 1_705_953_180,
        owned_by: "system",
    };
    let path = ctx.path.split('?').next().unwrap_or(ctx.path);
    match path.strip_prefix("/v1/models/") {
        None => Reply::json(
            StatusCode::OK,
            JSON,
            &ModelList {
                object: "list",
                data: ctx.inner.openai_models.keys().map(|k| object(k)).collect(),
            },
        ),
        Some(id) => match ctx.inner.openai_models.get_key_value(id) {
            Some((k, _)) => Reply::json(StatusCode::OK, JSON, &object(k)),
            None => openai_error(
                StatusCode::NOT_FOUND,
                &format!("The model '{id}' does not exist"),
                INVALID,
                Some("model"),
                Some("model_not_found"),
            ),
        },
    }
}
