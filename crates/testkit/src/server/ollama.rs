//! Ollama's `/api/embed`, `/api/embeddings`, `/api/tags`, `/api/show` and `/api/version`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Instant;

use axum::http::StatusCode;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::config::OllamaModel;
use super::faults::{RowFault, plan_rows};
use super::input::{Input, Text};
use super::rows::{FloatRows, Rows};
use super::tokens::count_tokens;
use super::{Ctx, OLLAMA_JSON, Reply, ollama_error};

/// `name:latest` is `name`.
pub(crate) fn canonical(name: &str) -> &str {
    name.strip_suffix(":latest").unwrap_or(name)
}

fn lookup<'m>(ctx: &'m Ctx<'_>, name: &str) -> Option<(&'m str, &'m OllamaModel)> {
    ctx.inner
        .ollama_models
        .get_key_value(canonical(name))
        .map(|(k, v)| (k.as_str(), v))
}

fn model_not_found(name: &str) -> Reply {
    ollama_error(
        StatusCode::NOT_FOUND,
        &format!("model \"{name}\" not found, try pulling it first"),
    )
}

fn bad_json(e: &serde_json::Error) -> Reply {
    let text = e.to_string();
    let message = text.split(" at line ").next().unwrap_or(&text);
    ollama_error(StatusCode::BAD_REQUEST, message)
}

fn rate_limited(r: &super::limits::Rejection) -> Reply {
    let mut reply = ollama_error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
    if let Some(wait) = r.retry_after {
        let ms = wait.as_millis().max(1);
        reply = reply
            .header("retry-after", ms.div_ceil(1000).to_string())
            .header("retry-after-ms", ms.to_string());
    }
    r.snapshot.write(&mut reply.headers);
    reply
}

#[derive(Deserialize)]
struct EmbedRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Text<'a>>,
    #[serde(borrow, default)]
    input: Option<Input<'a>>,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    options: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    keep_alive: Option<IgnoredAny>,
    #[serde(default)]
    dimensions: Option<i64>,
}

#[derive(Serialize)]
struct EmbedResponse<'a> {
    model: &'a str,
    embeddings: FloatRows<'a>,
    total_duration: u64,
    load_duration: u64,
    prompt_eval_count: usize,
}

/// `POST /api/embed`.
pub(crate) fn embed(ctx: &Ctx<'_>) -> Reply {
    let started = Instant::now();
    let req: EmbedRequest<'_> = match serde_json::from_slice(ctx.body) {
        Ok(r) => r,
        Err(e) => return bad_json(&e),
    };
    let Some(Text(name)) = req.model.filter(|m| !m.0.is_empty()) else {
        return ollama_error(StatusCode::BAD_REQUEST, "model is required");
    };
    let texts: Vec<Cow<'_, str>> = match req.input {
        None => Vec::new(),
        Some(Input::Texts(t)) => t,
        Some(Input::Tokens(_)) => {
            return ollama_error(StatusCode::BAD_REQUEST, "invalid input type");
        }
    };
    let Some((model_name, model)) = lookup(ctx, &name) else {
        return model_not_found(&name);
    };
    let dim = match req.dimensions {
        None | Some(0) => model.dimension,
        Some(d) if d < 0 || d as u64 > model.dimension as u64 => {
            return ollama_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "invalid dimensions {d}: must be between 1 and {}",
                    model.dimension
                ),
            );
        }
        Some(d) => d as usize,
    };
    let truncate = req.truncate.unwrap_or(true);
    let mut prompt_tokens = 0;
    for text in &texts {
        let n = count_tokens(text);
        if n > model.context_length && !truncate {
            return ollama_error(
                StatusCode::BAD_REQUEST,
                "the input length exceeds the context length",
            );
        }
        prompt_tokens += n.min(model.context_length);
    }
    let snapshot = match ctx.inner.rate_limit(prompt_tokens as u64) {
        Ok(s) => s,
        Err(r) => return rate_limited(&r),
    };
    let plan = plan_rows(texts.len(), dim, ctx.rows, false);
    let rows = Rows::compute(model_name, &texts, plan);
    let mut body = Vec::with_capacity(rows.floats() * 12 + 256);
    let response = EmbedResponse {
        model: &name,
        embeddings: FloatRows(&rows),
        total_duration: started.elapsed().as_nanos() as u64 + 1_000_000,
        load_duration: 1_000_000,
        prompt_eval_count: prompt_tokens,
    };
    if serde_json::to_writer(&mut body, &response).is_err() {
        return ollama_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode the response",
        );
    }
    let mut reply = Reply::bytes(StatusCode::OK, OLLAMA_JSON, body);
    snapshot.write(&mut reply.headers);
    reply.inputs = texts.len() as u64;
    reply.tokens = prompt_tokens as u64;
    reply
}

#[derive(Deserialize)]
struct LegacyRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Text<'a>>,
    #[serde(borrow, default)]
    prompt: Option<Text<'a>>,
    #[serde(default)]
    #[allow(dead_code)]
    options: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    keep_alive: Option<IgnoredAny>,
}

#[derive(Serialize)]
struct LegacyResponse<'a> {
    embedding: &'a [f32],
}

/// `POST /api/embeddings` (legacy): one prompt, one vector; an empty prompt
/// gives an empty vector, as Ollama does.
pub(crate) fn embeddings(ctx: &Ctx<'_>) -> Reply {
    let req: LegacyRequest<'_> = match serde_json::from_slice(ctx.body) {
        Ok(r) => r,
        Err(e) => return bad_json(&e),
    };
    let Some(Text(name)) = req.model.filter(|m| !m.0.is_empty()) else {
        return ollama_error(StatusCode::BAD_REQUEST, "model is required");
    };
    let Some((model_name, model)) = lookup(ctx, &name) else {
        return model_not_found(&name);
    };
    let prompt = req.prompt.map(|p| p.0).unwrap_or_default();
    let tokens = count_tokens(&prompt).min(model.context_length);
    let snapshot = match ctx.inner.rate_limit(tokens as u64) {
        Ok(s) => s,
        Err(r) => return rate_limited(&r),
    };
    // The row faults that make sense for a single vector.
    let faults: Vec<RowFault> = ctx
        .rows
        .iter()
        .copied()
        .filter(|f| {
            matches!(
                f,
                RowFault::Nan | RowFault::WrongDimension(_) | RowFault::WrongCount(_)
            )
        })
        .collect();
    let n = usize::from(!prompt.is_empty());
    let mut plan = plan_rows(n, model.dimension, &faults, false);
    plan.truncate(1);
    let rows = Rows::compute(model_name, std::slice::from_ref(&prompt), plan);
    let embedding: &[f32] = if rows.len() == 1 { rows.row(0) } else { &[] };
    let mut reply = Reply::json(StatusCode::OK, OLLAMA_JSON, &LegacyResponse { embedding });
    snapshot.write(&mut reply.headers);
    reply.inputs = n as u64;
    reply.tokens = tokens as u64;
    reply
}

#[derive(Serialize)]
struct Details<'a> {
    parent_model: &'static str,
    format: &'static str,
    family: &'a str,
    families: [&'a str; 1],
    parameter_size: &'static str,
    quantization_level: &'static str,
}

fn details(model: &OllamaModel) -> Details<'_> {
    Details {
        parent_model: "",
        format: "gguf",
        family: &model.family,
        families: [&model.family],
        parameter_size: "137M",
        quantization_level: "F16",
    }
}

/// A stable fake digest for a model name.
fn digest(name: &str) -> String {
    let mut state = embeddings_mock::seed("digest", name);
    (0..4)
        .map(|_| format!("{:016x}", embeddings_mock::splitmix64(&mut state)))
        .collect()
}

const MODIFIED_AT: &str = "2025-01-01T00:00:00Z";

#[derive(Serialize)]
struct Tag<'a> {
    name: String,
    model: String,
    modified_at: &'static str,
    size: u64,
    digest: String,
    details: Details<'a>,
}

#[derive(Serialize)]
struct Tags<'a> {
    models: Vec<Tag<'a>>,
}

/// `GET /api/tags`.
pub(crate) fn tags(ctx: &Ctx<'_>) -> Reply {
    let models = ctx
        .inner
        .ollama_models
        .iter()
        .map(|(name, model)| Tag {
            name: format!("{name}:latest"),
            model: format!("{name}:latest"),
            modified_at: MODIFIED_AT,
            size: model.dimension as u64 * 300_000,
            digest: digest(name),
            details: details(model),
        })
        .collect();
    Reply::json(StatusCode::OK, OLLAMA_JSON, &Tags { models })
}

#[derive(Deserialize)]
struct ShowRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Text<'a>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
}

#[derive(Serialize)]
struct Show<'a> {
    license: &'static str,
    modelfile: String,
    parameters: String,
    template: &'static str,
    details: Details<'a>,
    model_info: BTreeMap<String, serde_json::Value>,
    capabilities: [&'static str; 1],
    modified_at: &'static str,
}

/// `POST /api/show`.
pub(crate) fn show(ctx: &Ctx<'_>) -> Reply {
    let req: ShowRequest<'_> = match serde_json::from_slice(ctx.body) {
        Ok(r) => r,
        Err(e) => return bad_json(&e),
    };
    let Some(Text(name)) = req.model.or(req.name).filter(|m| !m.0.is_empty()) else {
        return ollama_error(StatusCode::BAD_REQUEST, "model is required");
    };
    let Some((model_name, model)) = lookup(ctx, &name) else {
        return ollama_error(StatusCode::NOT_FOUND, &format!("model '{name}' not found"));
    };
    let family = model.family.as_str();
    let model_info = BTreeMap::from([
        ("general.architecture".to_owned(), family.into()),
        ("general.basename".to_owned(), model_name.into()),
        ("general.parameter_count".to_owned(), 136_727_040u64.into()),
        (format!("{family}.embedding_length"), model.dimension.into()),
        (
            format!("{family}.context_length"),
            model.context_length.into(),
        ),
        (format!("{family}.pooling_type"), 1.into()),
    ]);
    Reply::json(
        StatusCode::OK,
        OLLAMA_JSON,
        &Show {
            license: "Apache License 2.0",
            modelfile: format!(
                "# Modelfile generated by the embeddings fake server\nFROM {model_name}:latest\n"
            ),
            parameters: format!("num_ctx {}", model.context_length),
            template: "{{ .Prompt }}",
            details: details(model),
            model_info,
            capabilities: ["embedding"],
            modified_at: MODIFIED_AT,
        },
    )
}

#[derive(Serialize)]
struct Version<'a> {
    version: &'a str,
}

/// `GET /api/version`.
pub(crate) fn version(ctx: &Ctx<'_>) -> Reply {
    Reply::json(
        StatusCode::OK,
        OLLAMA_JSON,
        &Version {
            version: &ctx.inner.ollama_version,
        },
    )
}
