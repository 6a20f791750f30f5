//! Google's embedding models, registered as `gemini`: the Gemini API
//! (`POST {base_url}/v1beta/models/{model}:batchEmbedContents`, key in
//! `x-goog-api-key`) or, with a `[gemini.vertex]` section, Vertex AI
//! (`POST https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:predict`,
//! an OAuth bearer token). One request per call, on the `embeddings-http`
//! toolkit.
//!
//! * Input types natively, as `taskType`: document → `RETRIEVAL_DOCUMENT`,
//!   query → `RETRIEVAL_QUERY`, classification → `CLASSIFICATION`,
//!   clustering → `CLUSTERING`, similarity → `SEMANTIC_SIMILARITY`.
//!   `[gemini.task_types]` maps an input type to any other task type
//!   (`query = "QUESTION_ANSWERING"`, `"FACT_VERIFICATION"`,
//!   `"CODE_RETRIEVAL_QUERY"`, ...), which has no [`InputType`] of its own.
//! * `[gemini] title`: sent with every document (`RETRIEVAL_DOCUMENT`
//!   only, as the API takes it).
//! * `dimensions` below the model's is sent as `outputDimensionality`; the
//!   truncated vectors are scaled back to unit length client-side
//!   (`[gemini] renormalize`, default true), since gemini-embedding-001
//!   normalises only its full 3072-dimension output (Google says to
//!   normalise the others); for a model that does normalise, it changes
//!   nothing.
//! * Limits: 100 texts per `batchEmbedContents` call ([`MAX_BATCH`]); 2,048
//!   tokens per input for gemini-embedding-001 and text-embedding-004;
//!   Vertex: one instance per request for gemini-embedding-001 (as Google
//!   documents), 250 (and 20,000 tokens) for the text-embedding models.
//! * Rows are placed by position: both APIs answer "in the same order as
//!   provided in the request"; the count and the dimension of every row
//!   are checked, so an answer with a row too many or too few is
//!   `InvalidResponse`, never a shifted result.
//! * Key: `api_key`, else `GEMINI_API_KEY`, else `GOOGLE_API_KEY`.
//!   Vertex token: `[gemini.vertex] access_token`, else
//!   `GOOGLE_OAUTH_ACCESS_TOKEN`, else the output of `token_command`
//!   (run once, when the provider is built).
//!
//! ```toml
//! provider = "gemini"
//! model = "gemini-embedding-001"
//! dimensions = 768                      # outputDimensionality
//! [gemini]
//! title = "Product manual"              # documents only
//! task_types = { query = "QUESTION_ANSWERING" }
//! # [gemini.vertex]
//! # project = "my-project"
//! # location = "us-central1"
//! # token_command = ["gcloud", "auth", "print-access-token"]
//! ```

mod wire;

#[cfg(feature = "testkit")]
pub mod testkit;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, Error, ExposeSecret, InputType, OverLengthPolicy,
    ProviderInfo, Result, SecretString, async_trait,
};
use embeddings_http::reqwest::header::HeaderName;
use embeddings_http::{
    Auth, BodyCap, DEFAULT_CONNECT_TIMEOUT, HttpClient, InfoCell, Masker, Url, parse_base_url,
    redact_url, resolve_key, resolve_setting,
};
use serde::Deserialize;

pub use crate::wire::{decode_batch_response, decode_predict_response, parse_error};

/// The registered name.
pub const NAME: &str = "gemini";
/// The default model.
pub const DEFAULT_MODEL: &str = "gemini-embedding-001";
/// The Gemini API's root (the provider adds `/v1beta/models/...`).
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// The key's environment variables, in order.
pub const ENV_API_KEYS: [&str; 2] = ["GEMINI_API_KEY", "GOOGLE_API_KEY"];
/// The base URL's environment variable.
pub const ENV_BASE_URL: &str = "GEMINI_BASE_URL";
/// The Vertex AI access token's environment variable.
pub const ENV_ACCESS_TOKEN: &str = "GOOGLE_OAUTH_ACCESS_TOKEN";
/// Most requests in one `batchEmbedContents` call.
pub const MAX_BATCH: usize = 100;
/// Most instances in one Vertex AI `predict` call of a text-embedding model.
pub const VERTEX_MAX_INSTANCES: usize = 250;
/// Most tokens in one Vertex AI `predict` call of a text-embedding model.
pub const VERTEX_MAX_REQUEST_TOKENS: usize = 20_000;
/// The input token limit of a model this crate does not know.
pub const DEFAULT_MAX_INPUT_TOKENS: usize = 2048;

/// Every input type, natively (as a `taskType`).
pub const INPUT_TYPES: &[InputType] = &[
    InputType::Document,
    InputType::Query,
    InputType::Classification,
    InputType::Clustering,
    InputType::Similarity,
];

/// What this crate knows of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// The native (and largest) dimension.
    pub dimension: usize,
    /// Most tokens per input.
    pub max_input_tokens: usize,
    /// The `outputDimensionality` values accepted (`None`: not accepted).
    pub output_dimensions: Option<(usize, usize)>,
    /// Vertex AI: most instances per `predict`.
    pub vertex_instances: usize,
}

/// The models this crate knows (`models/` prefix removed).
pub fn known_model(model: &str) -> Option<ModelSpec> {
    let spec = |dimension, range, vertex_instances| ModelSpec {
        dimension,
        max_input_tokens: 2048,
        output_dimensions: range,
        vertex_instances,
    };
    match model {
        "gemini-embedding-001" => Some(spec(3072, Some((128, 3072)), 1)),
        "text-embedding-004" | "text-embedding-005" | "text-multilingual-embedding-002" => {
            Some(spec(768, Some((1, 768)), VERTEX_MAX_INSTANCES))
        }
        "embedding-001" => Some(spec(768, None, VERTEX_MAX_INSTANCES)),
        _ => None,
    }
}

/// A Gemini `taskType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum TaskType {
    /// `RETRIEVAL_QUERY`.
    RetrievalQuery,
    /// `RETRIEVAL_DOCUMENT`.
    RetrievalDocument,
    /// `SEMANTIC_SIMILARITY`.
    SemanticSimilarity,
    /// `CLASSIFICATION`.
    Classification,
    /// `CLUSTERING`.
    Clustering,
    /// `QUESTION_ANSWERING`.
    QuestionAnswering,
    /// `FACT_VERIFICATION`.
    FactVerification,
    /// `CODE_RETRIEVAL_QUERY`.
    CodeRetrievalQuery,
}

impl TaskType {
    /// Every task type.
    pub const ALL: [TaskType; 8] = [
        TaskType::RetrievalQuery,
        TaskType::RetrievalDocument,
        TaskType::SemanticSimilarity,
        TaskType::Classification,
        TaskType::Clustering,
        TaskType::QuestionAnswering,
        TaskType::FactVerification,
        TaskType::CodeRetrievalQuery,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskType::RetrievalQuery => "RETRIEVAL_QUERY",
            TaskType::RetrievalDocument => "RETRIEVAL_DOCUMENT",
            TaskType::SemanticSimilarity => "SEMANTIC_SIMILARITY",
            TaskType::Classification => "CLASSIFICATION",
            TaskType::Clustering => "CLUSTERING",
            TaskType::QuestionAnswering => "QUESTION_ANSWERING",
            TaskType::FactVerification => "FACT_VERIFICATION",
            TaskType::CodeRetrievalQuery => "CODE_RETRIEVAL_QUERY",
        }
    }

    /// Parses a wire name.
    pub fn from_wire(name: &str) -> Option<TaskType> {
        TaskType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The default task type of an input type (`None`: an input type this
    /// crate does not know).
    pub fn of(t: InputType) -> Option<TaskType> {
        match t {
            InputType::Document => Some(TaskType::RetrievalDocument),
            InputType::Query => Some(TaskType::RetrievalQuery),
            InputType::Classification => Some(TaskType::Classification),
            InputType::Clustering => Some(TaskType::Clustering),
            InputType::Similarity => Some(TaskType::SemanticSimilarity),
            _ => None,
        }
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[gemini]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeminiSection {
    /// Input type (`query`, `document`, ...) → the task type sent for it
    /// instead of the default.
    pub task_types: BTreeMap<String, TaskType>,
    /// The `title` of every document (`RETRIEVAL_DOCUMENT` requests only).
    pub title: Option<String>,
    /// Scale vectors truncated by `outputDimensionality` back to unit
    /// length (default true).
    pub renormalize: Option<bool>,
    /// Most tokens per input (default: the model's, 2,048 for unknown ones).
    pub max_input_tokens: Option<usize>,
    /// TCP/TLS connect timeout; default [`DEFAULT_CONNECT_TIMEOUT`].
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// Deadline of the whole request; default none (the timeout layer).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// Vertex AI instead of the Gemini API.
    pub vertex: Option<VertexSection>,
}

/// The `[gemini.vertex]` section.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VertexSection {
    /// The Google Cloud project.
    pub project: String,
    /// The region (default `us-central1`).
    pub location: Option<String>,
    /// The OAuth access token (else `GOOGLE_OAUTH_ACCESS_TOKEN`, else `token_command`).
    pub access_token: Option<SecretString>,
    /// A command whose standard output is an access token
    /// (`["gcloud", "auth", "print-access-token"]`), run once when the
    /// provider is built.
    pub token_command: Option<Vec<String>>,
    /// `parameters.autoTruncate` (default: true when the batch layer's
    /// over-length policy is `truncate`, else false).
    pub auto_truncate: Option<bool>,
}

impl fmt::Debug for VertexSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VertexSection")
            .field("project", &self.project)
            .field("location", &self.location)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .field("token_command", &self.token_command)
            .field("auto_truncate", &self.auto_truncate)
            .finish()
    }
}

/// Which API the provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Gemini,
    Vertex { auto_truncate: bool },
}

/// The Gemini / Vertex AI embedding provider. `Debug` never shows the key
/// or token.
pub struct GeminiEmbedder {
    info: InfoCell,
    client: HttpClient,
    url: Url,
    shown: String,
    api: Api,
    task_types: Vec<(InputType, TaskType)>,
    title: Option<String>,
    output_dimensionality: Option<usize>,
    renormalize: bool,
}

impl fmt::Debug for GeminiEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeminiEmbedder")
            .field("url", &self.shown)
            .field("api", &self.api)
            .field("model", &self.info().model)
            .field("dimension", &self.info().dimension)
            .field("output_dimensionality", &self.output_dimensionality)
            .field("credential", &"[redacted]")
            .finish_non_exhaustive()
    }
}

fn config_err(message: impl Into<String>) -> Error {
    Error::config(message).with_provider(NAME)
}

/// Runs `command` and returns its trimmed standard output (an access token).
fn run_token_command(command: &[String]) -> Result<SecretString> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| config_err("`gemini.vertex.token_command` is empty"))?;
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            config_err(format!(
                "`gemini.vertex.token_command`: cannot run {program:?}: {e}"
            ))
        })?;
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || token.is_empty() {
        let masker = Masker::new().with_secret(token.clone());
        let err = masker.excerpt(&String::from_utf8_lossy(&out.stderr), 200);
        return Err(config_err(format!(
            "`gemini.vertex.token_command` ({program}) gave no token ({}): {err}",
            out.status
        )));
    }
    Ok(SecretString::from(token))
}

impl GeminiEmbedder {
    /// Builds from the common keys and the `[gemini]` section.
    pub fn from_config(config: &Config) -> Result<Self> {
        let section: GeminiSection = config
            .provider_section(NAME)
            .map_err(|e| e.with_provider(NAME))?;
        let raw = config
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        let model = raw.strip_prefix("models/").unwrap_or(&raw).to_owned();
        if model.trim().is_empty() || model.contains('/') || model.contains(':') {
            return Err(config_err(format!(
                "`model` = {raw:?}: a model name such as gemini-embedding-001"
            )));
        }
        let known = known_model(&model);
        let output_dimensionality = match (config.dimensions, known) {
            (None, _) => None,
            (Some(0), _) => return Err(config_err("`dimensions` = 0: must be at least 1")),
            (Some(d), Some(k)) if d == k.dimension => None,
            (Some(d), Some(k)) => match k.output_dimensions {
                None => {
                    return Err(config_err(format!(
                        "`dimensions` = {d}: {model} does not take outputDimensionality"
                    )));
                }
                Some((lo, hi)) if d < lo || d > hi => {
                    return Err(config_err(format!(
                        "`dimensions` = {d}: {model} takes an outputDimensionality of {lo} to {hi}"
                    )));
                }
                Some(_) => Some(d),
            },
            (Some(d), None) => Some(d),
        };
        let mut task_types = Vec::new();
        for (name, task) in &section.task_types {
            let t = InputType::from_name(name).ok_or_else(|| {
                config_err(format!(
                    "`gemini.task_types.{name}`: not an input type (document, query, classification, clustering, similarity)"
                ))
            })?;
            task_types.push((t, *task));
        }
        if section.max_input_tokens == Some(0) {
            return Err(config_err(
                "`gemini.max_input_tokens` = 0: must be at least 1",
            ));
        }
        let renormalize = section.renormalize.unwrap_or(true);
        let dimension = config
            .dimensions
            .or(known.map(|k| k.dimension))
            .unwrap_or(0);

        let mut info = ProviderInfo::hosted(NAME, model.clone(), dimension);
        info.max_input_tokens = section
            .max_input_tokens
            .or(known.map(|k| k.max_input_tokens))
            .unwrap_or(DEFAULT_MAX_INPUT_TOKENS);
        info.input_types = INPUT_TYPES;
        info.normalized = output_dimensionality.is_none() || renormalize;
        if let Some(d) = output_dimensionality {
            info.add_fingerprint("output_dimensionality", d);
            if !renormalize {
                info.add_fingerprint("renormalize", false);
            }
        }
        for (t, task) in &task_types {
            info.add_fingerprint(&format!("task_type.{}", t.as_str()), task);
        }
        if let Some(title) = &section.title {
            info.add_fingerprint("title", title.escape_default());
        }

        let mut builder = HttpClient::builder(NAME)
            .user_agent(concat!(
                "embeddings-rs/",
                env!("CARGO_PKG_VERSION"),
                " (gemini)"
            ))
            .connect_timeout(section.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
            .request_timeout(section.request_timeout);
        let (api, url) = match &section.vertex {
            None => {
                info.max_batch_size = MAX_BATCH;
                info.max_batch_tokens = info.max_input_tokens.saturating_mul(MAX_BATCH);
                let (base, from) =
                    resolve_setting(config.base_url.as_deref(), "base_url", &[ENV_BASE_URL])
                        .unwrap_or_else(|| (DEFAULT_BASE_URL.to_owned(), "base_url"));
                let mut url = parse_base_url(from, &base).map_err(|e| e.with_provider(NAME))?;
                push_route(
                    &mut url,
                    &["v1beta", "models"],
                    &model,
                    "batchEmbedContents",
                );
                if url.host_str() != Some("generativelanguage.googleapis.com") {
                    info.add_fingerprint("endpoint", endpoint_of(&url));
                }
                let key = resolve_key(config.api_key.as_ref(), &ENV_API_KEYS).ok_or_else(|| {
                    config_err("no API key: set `api_key` in the config or GEMINI_API_KEY")
                })?;
                builder =
                    builder.auth(Auth::Header(HeaderName::from_static("x-goog-api-key"), key));
                (Api::Gemini, url)
            }
            Some(v) => {
                if v.project.trim().is_empty() {
                    return Err(config_err("`gemini.vertex.project` must be set"));
                }
                let location = v.location.as_deref().unwrap_or("us-central1");
                let valid = |s: &str| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                };
                if !valid(location) || !valid(&v.project) {
                    return Err(config_err(
                        "`gemini.vertex.project` and `location` must be plain names (letters, digits, '-')",
                    ));
                }
                info.max_batch_size = known.map_or(VERTEX_MAX_INSTANCES, |k| k.vertex_instances);
                info.max_batch_tokens = VERTEX_MAX_REQUEST_TOKENS.max(info.max_input_tokens);
                let default = format!("https://{location}-aiplatform.googleapis.com");
                let base = config.base_url.clone().unwrap_or(default);
                let mut url =
                    parse_base_url("base_url", &base).map_err(|e| e.with_provider(NAME))?;
                let root = [
                    "v1",
                    "projects",
                    v.project.as_str(),
                    "locations",
                    location,
                    "publishers",
                    "google",
                    "models",
                ];
                push_route(&mut url, &root, &model, "predict");
                info.add_fingerprint("endpoint", endpoint_of(&url));
                let auto_truncate = v
                    .auto_truncate
                    .unwrap_or(config.batch.over_length == OverLengthPolicy::Truncate);
                info.add_fingerprint("auto_truncate", auto_truncate);
                let token = match (&v.access_token, std::env::var(ENV_ACCESS_TOKEN)) {
                    (Some(t), _) if !t.expose_secret().trim().is_empty() => t.clone(),
                    (_, Ok(t)) if !t.trim().is_empty() => SecretString::from(t.trim().to_owned()),
                    _ => match &v.token_command {
                        Some(cmd) => run_token_command(cmd)?,
                        None => {
                            return Err(config_err(format!(
                                "no Vertex AI access token: set `gemini.vertex.access_token`, {ENV_ACCESS_TOKEN} or `gemini.vertex.token_command`"
                            )));
                        }
                    },
                };
                builder = builder.auth(Auth::Bearer(token));
                (Api::Vertex { auto_truncate }, url)
            }
        };
        let client = builder.build().map_err(|e| e.with_provider(NAME))?;
        Ok(GeminiEmbedder {
            info: InfoCell::new(info),
            client,
            shown: redact_url(&url),
            url,
            api,
            task_types,
            title: section.title,
            output_dimensionality,
            renormalize,
        })
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.shown
    }

    /// The task type sent for `t` (`None`: an input type without one).
    pub fn task_type_for(&self, t: InputType) -> Option<TaskType> {
        self.task_types
            .iter()
            .find(|(i, _)| *i == t)
            .map(|(_, task)| *task)
            .or_else(|| TaskType::of(t))
    }

    async fn post(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        let rows = request.len();
        let limit = self.info().max_batch_size;
        if rows > limit {
            return Err(Error::invalid_input(format!(
                "{rows} inputs in one request; {} takes at most {limit} (the batch layer splits larger calls)",
                self.api_name()
            )));
        }
        let task = self.task_type_for(request.input_type).ok_or_else(|| {
            Error::invalid_input(format!(
                "provider gemini has no task type for input type {}",
                request.input_type
            ))
        })?;
        let title = self
            .title
            .as_deref()
            .filter(|_| task == TaskType::RetrievalDocument);
        let body = match self.api {
            Api::Gemini => wire::encode_batch(
                &self.info().model,
                request.inputs,
                task,
                title,
                self.output_dimensionality,
            )?,
            Api::Vertex { auto_truncate } => wire::encode_predict(
                request.inputs,
                task,
                title,
                self.output_dimensionality,
                auto_truncate,
            )?,
        };
        let dim = self.info().dimension;
        tracing::debug!(target: "embeddings_gemini", url = %self.shown, model = %self.info().model,
            inputs = rows, task_type = %task, "POST {}", self.api_name());
        let cap = BodyCap::Rows {
            rows,
            dim,
            key: "values",
        };
        let out = self
            .client
            .call_rows(
                self.client.post_json(&self.url, body),
                &self.shown,
                cap,
                wire::parse_error_masked,
                |body| {
                    let mut out = match self.api {
                        Api::Gemini => decode_batch_response(body, rows, dim)?,
                        Api::Vertex { .. } => decode_predict_response(body, rows, dim)?,
                    };
                    if self.output_dimensionality.is_some() && self.renormalize {
                        wire::renormalize(&mut out);
                    }
                    Ok(out)
                },
            )
            .await?;
        self.info.learn_dimension(out.dim());
        Ok(out)
    }

    fn api_name(&self) -> &'static str {
        match self.api {
            Api::Gemini => "batchEmbedContents",
            Api::Vertex { .. } => "Vertex AI predict",
        }
    }
}

/// `{root}/{model}:{method}` under `url`'s path.
fn push_route(url: &mut Url, root: &[&str], model: &str, method: &str) {
    let last = format!("{model}:{method}");
    if let Ok(mut segs) = url.path_segments_mut() {
        segs.pop_if_empty();
        segs.extend(root);
        segs.push(&last);
    }
}

fn endpoint_of(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    redact_url(&shown)
}

#[async_trait]
impl Embedder for GeminiEmbedder {
    fn info(&self) -> &ProviderInfo {
        self.info.get()
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.client
            .embed(self.info(), request, |r| self.post(r))
            .await
            .inspect_err(
                |e| tracing::debug!(target: "embeddings_gemini", error = %e, "embed failed"),
            )
    }

    async fn health_check(&self) -> Result<()> {
        self.embed_documents(&["ping"]).await.map(drop)
    }
}

embeddings_core::register_provider! {
    name: NAME,
    description: "Google Gemini API batchEmbedContents, or Vertex AI predict (GEMINI_API_KEY / GOOGLE_OAUTH_ACCESS_TOKEN)",
    build: |config| Ok(Arc::new(GeminiEmbedder::from_config(config)?)),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        Config::from_toml_str(&format!(
            "provider = \"gemini\"\napi_key = \"k-123\"\n{toml}"
        ))
        .unwrap()
    }

    #[test]
    fn urls_limits_and_fingerprints() {
        let g = GeminiEmbedder::from_config(&config("dimensions = 768\n")).unwrap();
        assert_eq!(
            g.endpoint(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:batchEmbedContents"
        );
        let i = g.info();
        assert_eq!(
            (i.dimension, i.max_batch_size, i.max_input_tokens),
            (768, 100, 2048)
        );
        assert!(i.normalized);
        assert_eq!(
            i.fingerprint(),
            "provider=gemini;model=gemini-embedding-001;output_dimensionality=768"
        );
        // The native dimension sends nothing.
        let g = GeminiEmbedder::from_config(&config(
            "dimensions = 3072\nmodel = \"models/gemini-embedding-001\"\n",
        ))
        .unwrap();
        assert_eq!(g.output_dimensionality, None);
        assert_eq!(g.info().model, "gemini-embedding-001");
    }

    #[test]
    fn config_refusals() {
        for toml in [
            "dimensions = 64\n",
            "dimensions = 4000\n",
            "model = \"embedding-001\"\ndimensions = 256\n",
            "model = \"a/b\"\n",
            "[gemini]\ntask_types = { questions = \"QUESTION_ANSWERING\" }\n",
            "[gemini]\ntask_types = { query = \"ANSWERS\" }\n",
            "[gemini]\nnormalise = true\n",
            "[gemini.vertex]\nproject = \"\"\naccess_token = \"t\"\n",
            "[gemini.vertex]\nproject = \"p/x\"\naccess_token = \"t\"\n",
        ] {
            let e = GeminiEmbedder::from_config(&config(toml)).unwrap_err();
            assert_eq!(
                e.kind(),
                embeddings_core::ErrorKind::InvalidConfig,
                "{toml}: {e}"
            );
        }
    }

    #[test]
    fn task_types_map_every_input_type_and_can_be_overridden() {
        let g = GeminiEmbedder::from_config(&config(
            "[gemini]\ntask_types = { query = \"CODE_RETRIEVAL_QUERY\" }\n",
        ))
        .unwrap();
        assert_eq!(
            g.task_type_for(InputType::Query),
            Some(TaskType::CodeRetrievalQuery)
        );
        assert_eq!(
            g.task_type_for(InputType::Similarity),
            Some(TaskType::SemanticSimilarity)
        );
        assert!(
            g.info()
                .fingerprint()
                .contains("task_type.query=CODE_RETRIEVAL_QUERY")
        );
        for t in TaskType::ALL {
            assert_eq!(TaskType::from_wire(t.as_str()), Some(t));
        }
    }

    #[test]
    fn vertex_form_and_limits() {
        let g = GeminiEmbedder::from_config(&config(
            "[gemini.vertex]\nproject = \"my-proj\"\nlocation = \"europe-west4\"\naccess_token = \"ya29.secret-token\"\n",
        ))
        .unwrap();
        assert_eq!(
            g.endpoint(),
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-embedding-001:predict"
        );
        assert_eq!(
            g.info().max_batch_size,
            1,
            "gemini-embedding-001: one instance"
        );
        let d = format!("{g:?}");
        assert!(!d.contains("ya29"), "{d}");
        let g = GeminiEmbedder::from_config(&config(
            "model = \"text-embedding-005\"\n[gemini.vertex]\nproject = \"p\"\naccess_token = \"t\"\n",
        ))
        .unwrap();
        assert_eq!(g.info().max_batch_size, VERTEX_MAX_INSTANCES);
        assert_eq!(g.info().max_batch_tokens, VERTEX_MAX_REQUEST_TOKENS);
    }

    #[test]
    fn token_command_output_is_the_token() {
        let mut c = config(
            "[gemini.vertex]\nproject = \"p\"\ntoken_command = [\"echo\", \"ya29.from-command\"]\n",
        );
        c.api_key = None;
        // GOOGLE_OAUTH_ACCESS_TOKEN may be set on a developer machine: this
        // test only runs where it is not.
        if std::env::var(ENV_ACCESS_TOKEN).is_err() {
            let g = GeminiEmbedder::from_config(&c).unwrap();
            assert!(
                g.client
                    .masker()
                    .mask("x ya29.from-command y")
                    .contains("x ")
            );
            assert!(
                !g.client
                    .masker()
                    .mask("ya29.from-command")
                    .contains("from-command")
            );
            let c = config("[gemini.vertex]\nproject = \"p\"\ntoken_command = [\"false\"]\n");
            let e = GeminiEmbedder::from_config(&c).unwrap_err();
            assert!(e.message().contains("token_command"), "{e}");
        }
    }
}
