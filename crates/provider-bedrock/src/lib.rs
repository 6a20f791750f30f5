//! AWS Bedrock `InvokeModel`, registered as `bedrock`: one
//! `POST https://bedrock-runtime.{region}.amazonaws.com/model/{modelId}/invoke`
//! per call, SigV4-signed ([`sigv4::sign_request`], on the `aws-sigv4`
//! crate; no AWS SDK), on the `embeddings-http` toolkit.
//!
//! Two model families:
//!
//! * **Amazon Titan Text Embeddings v2** (`amazon.titan-embed-text-v2:0`,
//!   the default): one text per request (`inputText`), so
//!   [`ProviderInfo::max_batch_size`] is 1 and the batch and concurrency
//!   layers send a batch as parallel requests; `dimensions` 256, 512 or
//!   1024 (default); `normalize` (`[bedrock] normalize`, default true);
//!   `embeddingTypes` `float`, or `binary` for the `binary`/`ubinary`
//!   output types (Titan's 0/1 per dimension, packed here). No input type:
//!   the facade's `[prompts]` apply, if any. 8,192 tokens per input.
//! * **Cohere Embed** (`cohere.embed-english-v3`,
//!   `cohere.embed-multilingual-v3`, `cohere.embed-v4:0`): up to 96 texts
//!   per request, `input_type` (document, query, classification,
//!   clustering; similarity is an `InvalidInput`), `embedding_types`
//!   (every output type natively), `truncate` (`[bedrock] truncate`, else
//!   from the batch layer's over-length policy), `output_dimension` for v4.
//!
//! The family comes from the model id (`...titan-embed-text-v2...`,
//! `...cohere.embed-...`, inference-profile prefixes such as `us.`
//! allowed), or `[bedrock] family` for an ARN.
//!
//! Credentials: `[bedrock] access_key_id` + `secret_access_key` (+
//! `session_token`), else `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN`; region: `[bedrock] region`, else `AWS_REGION`, else
//! `AWS_DEFAULT_REGION`; endpoint: `base_url`, else
//! `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, else the regional endpoint. The
//! secret key and the session token never appear in a log line (at any
//! level), an error or a `Debug` output; the session token travels as
//! `x-amz-security-token`, signed.
//!
//! Errors: Bedrock's exceptions (`ThrottlingException`,
//! `ModelNotReadyException`, `ValidationException`, `AccessDeniedException`,
//! ...) mapped in [`parse_error`].
//!
//! ```toml
//! provider = "bedrock"
//! model = "amazon.titan-embed-text-v2:0"
//! dimensions = 512
//! [bedrock]
//! region = "eu-central-1"
//! normalize = true
//! ```

pub mod sigv4;
mod wire;

#[cfg(feature = "testkit")]
pub mod testkit;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, Error, InputType, OutputType, OverLengthPolicy,
    ProviderInfo, Result, SecretString, Usage, async_trait,
};
use embeddings_http::reqwest::header::HeaderValue;
use embeddings_http::{
    BodyCap, DEFAULT_CONNECT_TIMEOUT, HttpClient, Masker, Url, header_str, parse_base_url,
    redact_url, resolve_setting,
};
use serde::Deserialize;

pub use crate::sigv4::{AwsCredentials, SignedHeader, sign_request};
pub use crate::wire::{decode_cohere, decode_titan, parse_error};

/// The registered name.
pub const NAME: &str = "bedrock";
/// The default model.
pub const DEFAULT_MODEL: &str = "amazon.titan-embed-text-v2:0";
/// The SigV4 service name of the Bedrock runtime.
pub const SIGNING_SERVICE: &str = "bedrock";
/// The region's environment variables, in order.
pub const ENV_REGIONS: [&str; 2] = ["AWS_REGION", "AWS_DEFAULT_REGION"];
/// The endpoint's environment variables, in order.
pub const ENV_ENDPOINTS: [&str; 1] = ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"];
/// Titan v2's `dimensions` values.
pub const TITAN_DIMENSIONS: [usize; 3] = [256, 512, 1024];
/// Titan v2's input token limit.
pub const TITAN_MAX_TOKENS: usize = 8192;
/// Cohere Embed on Bedrock: most texts per request.
pub const COHERE_MAX_TEXTS: usize = 96;
/// Cohere embed-v4's `output_dimension` values.
pub const COHERE_V4_DIMENSIONS: [usize; 4] = [256, 512, 1024, 1536];

/// Titan's native output types besides `float` (from `embeddingTypes: ["binary"]`).
pub const TITAN_OUTPUT_TYPES: &[OutputType] = &[OutputType::Binary, OutputType::Ubinary];
/// Cohere's native output types besides `float`.
pub const COHERE_OUTPUT_TYPES: &[OutputType] = &[
    OutputType::Int8,
    OutputType::Uint8,
    OutputType::Binary,
    OutputType::Ubinary,
];
/// Cohere's input types.
pub const COHERE_INPUT_TYPES: &[InputType] = &[
    InputType::Document,
    InputType::Query,
    InputType::Classification,
    InputType::Clustering,
];

/// A model family on Bedrock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Amazon Titan Text Embeddings v2.
    Titan,
    /// Cohere Embed (v3, v4).
    Cohere,
}

impl Family {
    /// The family of a model id (`None`: not one this crate knows).
    pub fn of(model: &str) -> Option<Family> {
        if model.contains("amazon.titan-embed-text-v2") {
            Some(Family::Titan)
        } else if model.contains("cohere.embed-") {
            Some(Family::Cohere)
        } else {
            None
        }
    }
}

/// Cohere's `input_type` for an [`InputType`].
pub fn cohere_input_type(t: InputType) -> Option<&'static str> {
    match t {
        InputType::Document => Some("search_document"),
        InputType::Query => Some("search_query"),
        InputType::Classification => Some("classification"),
        InputType::Clustering => Some("clustering"),
        _ => None,
    }
}

/// Cohere's `embedding_types` entry for an [`OutputType`].
pub fn cohere_output_type(t: OutputType) -> Option<&'static str> {
    match t {
        OutputType::F32 => Some("float"),
        OutputType::Int8 => Some("int8"),
        OutputType::Uint8 => Some("uint8"),
        OutputType::Binary => Some("binary"),
        OutputType::Ubinary => Some("ubinary"),
        _ => None,
    }
}

/// Cohere's `truncate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Truncate {
    /// An over-long input is an error.
    None,
    /// Drop the start.
    Start,
    /// Drop the end.
    End,
}

impl Truncate {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Truncate::None => "NONE",
            Truncate::Start => "START",
            Truncate::End => "END",
        }
    }
}

/// The `[bedrock]` section.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BedrockSection {
    /// The AWS region (else `AWS_REGION`, `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// The access key id (with `secret_access_key`; else the environment).
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<SecretString>,
    /// The session token of temporary credentials.
    pub session_token: Option<SecretString>,
    /// The model family, for a model id this crate cannot tell (an ARN).
    pub family: Option<Family>,
    /// Titan: `normalize` (default true).
    pub normalize: Option<bool>,
    /// Cohere: `truncate` (default from the batch layer's over-length policy).
    pub truncate: Option<Truncate>,
    /// Most tokens per input (default: the model's).
    pub max_input_tokens: Option<usize>,
    /// TCP/TLS connect timeout; default [`DEFAULT_CONNECT_TIMEOUT`].
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// Deadline of the whole request; default none (the timeout layer).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
}

impl fmt::Debug for BedrockSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockSection")
            .field("region", &self.region)
            .field("credentials", &"[redacted]")
            .field("family", &self.family)
            .field("normalize", &self.normalize)
            .field("truncate", &self.truncate)
            .finish_non_exhaustive()
    }
}

/// What a request of each family carries besides the texts.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Titan {
        dimensions: usize,
        normalize: bool,
    },
    Cohere {
        truncate: Truncate,
        output_dimension: Option<usize>,
    },
}

/// The Bedrock embedding provider. `Debug` shows no credential.
pub struct BedrockEmbedder {
    info: ProviderInfo,
    client: HttpClient,
    url: Url,
    host: String,
    shown: String,
    region: String,
    credentials: AwsCredentials,
    masker: Masker,
    shape: Shape,
}

impl fmt::Debug for BedrockEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockEmbedder")
            .field("url", &self.shown)
            .field("region", &self.region)
            .field("model", &self.info.model)
            .field("shape", &self.shape)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

fn config_err(message: impl Into<String>) -> Error {
    Error::config(message).with_provider(NAME)
}

/// The model id as a path segment: everything but unreserved characters
/// percent-encoded (`:` → `%3A`), as AWS's SDKs send it.
pub fn encode_model_id(model: &str) -> String {
    let mut out = String::with_capacity(model.len() + 8);
    for b in model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl BedrockEmbedder {
    /// Builds from the common keys, the `[bedrock]` section and the environment.
    pub fn from_config(config: &Config) -> Result<Self> {
        let section: BedrockSection = config
            .provider_section(NAME)
            .map_err(|e| e.with_provider(NAME))?;
        let model = config
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        if model.trim().is_empty() {
            return Err(config_err("`model` must not be empty"));
        }
        let family = section.family.or(Family::of(&model)).ok_or_else(|| {
            config_err(format!(
                "`model` = {model:?}: not a Titan Text Embeddings v2 or Cohere Embed model id; set `bedrock.family` (\"titan\" or \"cohere\")"
            ))
        })?;
        let region = section
            .region
            .clone()
            .or_else(|| {
                ENV_REGIONS
                    .iter()
                    .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
            })
            .map(|r| r.trim().to_owned())
            .ok_or_else(|| config_err("no AWS region: set `bedrock.region` or AWS_REGION"))?;
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(config_err(format!(
                "`bedrock.region` = {region:?}: a region name such as us-east-1"
            )));
        }
        let credentials = match (&section.access_key_id, &section.secret_access_key) {
            (Some(id), Some(secret)) => {
                AwsCredentials::new(id.trim(), secret.clone(), section.session_token.clone())
            }
            (None, None) => AwsCredentials::from_env().ok_or_else(|| {
                config_err(
                    "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or `bedrock.access_key_id` and `bedrock.secret_access_key`",
                )
            })?,
            _ => {
                return Err(config_err(
                    "`bedrock.access_key_id` and `bedrock.secret_access_key` go together",
                ));
            }
        };
        if section.max_input_tokens == Some(0) {
            return Err(config_err(
                "`bedrock.max_input_tokens` = 0: must be at least 1",
            ));
        }

        let (shape, mut info) = match family {
            Family::Titan => {
                let dimensions = config.dimensions.unwrap_or(1024);
                if !TITAN_DIMENSIONS.contains(&dimensions) {
                    return Err(config_err(format!(
                        "`dimensions` = {dimensions}: Titan Text Embeddings v2 takes 256, 512 or 1024"
                    )));
                }
                let normalize = section.normalize.unwrap_or(true);
                let mut info = ProviderInfo::hosted(NAME, model.clone(), dimensions);
                info.max_batch_size = 1;
                info.max_input_tokens = section.max_input_tokens.unwrap_or(TITAN_MAX_TOKENS);
                info.max_batch_tokens = info.max_input_tokens;
                info.normalized = normalize;
                info.output_types = TITAN_OUTPUT_TYPES;
                info.add_fingerprint("dimensions", dimensions);
                info.add_fingerprint("normalize", normalize);
                (
                    Shape::Titan {
                        dimensions,
                        normalize,
                    },
                    info,
                )
            }
            Family::Cohere => {
                let v4 = model.contains("embed-v4");
                let native = if v4 { 1536 } else { 1024 };
                let output_dimension = match config.dimensions {
                    None => None,
                    Some(d) if d == native => None,
                    Some(d) if v4 && COHERE_V4_DIMENSIONS.contains(&d) => Some(d),
                    Some(d) => {
                        return Err(config_err(format!(
                            "`dimensions` = {d}: {model} answers {native} dimensions{}",
                            if v4 { " (or 256, 512, 1024)" } else { "" }
                        )));
                    }
                };
                let truncate = section.truncate.unwrap_or(match config.batch.over_length {
                    OverLengthPolicy::Truncate => Truncate::End,
                    _ => Truncate::None,
                });
                let mut info =
                    ProviderInfo::hosted(NAME, model.clone(), output_dimension.unwrap_or(native));
                info.max_batch_size = COHERE_MAX_TEXTS;
                info.max_input_tokens =
                    section
                        .max_input_tokens
                        .unwrap_or(if v4 { 128_000 } else { 512 });
                info.max_batch_tokens = info.max_input_tokens.saturating_mul(COHERE_MAX_TEXTS);
                info.input_types = COHERE_INPUT_TYPES;
                info.output_types = COHERE_OUTPUT_TYPES;
                info.add_fingerprint("truncate", truncate.as_str());
                if let Some(d) = output_dimension {
                    info.add_fingerprint("output_dimension", d);
                }
                (
                    Shape::Cohere {
                        truncate,
                        output_dimension,
                    },
                    info,
                )
            }
        };

        let default = format!("https://bedrock-runtime.{region}.amazonaws.com");
        let (base, from) = resolve_setting(config.base_url.as_deref(), "base_url", &ENV_ENDPOINTS)
            .unwrap_or((default, "base_url"));
        let mut url = parse_base_url(from, &base).map_err(|e| e.with_provider(NAME))?;
        let root = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{root}/model/{}/invoke", encode_model_id(&model)));
        url.set_query(None);
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(config_err("`base_url` has no host")),
        };
        if !url
            .host_str()
            .is_some_and(|h| h.ends_with(".amazonaws.com"))
        {
            info.add_fingerprint("endpoint", redact_url(&url));
        }
        let mut masker = Masker::new();
        for s in credentials.secrets() {
            masker.add(s.clone());
        }
        let client = HttpClient::builder(NAME)
            .user_agent(concat!(
                "embeddings-rs/",
                env!("CARGO_PKG_VERSION"),
                " (bedrock)"
            ))
            .connect_timeout(section.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
            .request_timeout(section.request_timeout)
            .build()
            .map_err(|e| e.with_provider(NAME))?;
        Ok(BedrockEmbedder {
            info,
            client,
            shown: redact_url(&url),
            url,
            host,
            region,
            credentials,
            masker,
            shape,
        })
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.shown
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    fn body(&self, request: &EmbedRequest<'_>) -> Result<Vec<u8>> {
        let rows = request.len();
        let limit = self.info.max_batch_size;
        if rows > limit {
            return Err(Error::invalid_input(format!(
                "{rows} inputs in one request; {} takes at most {limit} (the batch layer splits larger calls)",
                self.info.model
            )));
        }
        let output = request.output_type;
        match self.shape {
            Shape::Titan {
                dimensions,
                normalize,
            } => wire::encode(&wire::TitanBody {
                input_text: request.inputs[0],
                dimensions,
                normalize,
                embedding_types: [if output.is_packed() {
                    "binary"
                } else {
                    "float"
                }],
            }),
            Shape::Cohere {
                truncate,
                output_dimension,
            } => {
                let input_type = cohere_input_type(request.input_type).ok_or_else(|| {
                    Error::invalid_input(format!(
                        "provider bedrock (Cohere) has no input type {} (it has: search_document, search_query, classification, clustering)",
                        request.input_type
                    ))
                })?;
                let embedding_type = cohere_output_type(output).ok_or_else(|| {
                    Error::invalid_input(format!(
                        "provider bedrock does not produce {output} vectors"
                    ))
                })?;
                wire::encode(&wire::CohereBody {
                    texts: request.inputs,
                    input_type,
                    truncate: truncate.as_str(),
                    embedding_types: [embedding_type],
                    output_dimension,
                })
            }
        }
    }

    async fn post(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        let body = self.body(&request)?;
        let signed = sign_request(
            "POST",
            self.url.as_str(),
            &[
                ("host", &self.host),
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            &body,
            &self.credentials,
            &self.region,
            SIGNING_SERVICE,
            SystemTime::now(),
        )?;
        let mut builder = self.client.post_json(&self.url, body);
        for h in signed {
            let mut v = HeaderValue::from_str(&h.value)
                .map_err(|_| Error::invalid_input("a SigV4 header is not a valid header value"))?;
            v.set_sensitive(h.sensitive);
            builder = builder.header(h.name, v);
        }
        let rows = request.len();
        let dim = self.info.dimension;
        tracing::debug!(target: "embeddings_bedrock", url = %self.shown, model = %self.info.model,
            inputs = rows, input_type = %request.input_type, output_type = %request.output_type,
            "POST InvokeModel");
        let cap = BodyCap::Rows {
            rows,
            dim,
            key: "embedding",
        };
        let answer = self
            .client
            .call_ok(builder, &self.shown, cap, wire::parse_error_masked)
            .await?;
        let mut out = match self.shape {
            Shape::Titan { .. } => decode_titan(&answer.body, dim, request.output_type)?,
            Shape::Cohere { .. } => decode_cohere(&answer.body, rows, dim, request.output_type)?,
        };
        if let Some(n) = header_str(&answer.headers, "x-amzn-bedrock-input-token-count")
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            out.set_usage(Some(Usage::tokens(n)));
        }
        Ok(out)
    }
}

#[async_trait]
impl Embedder for BedrockEmbedder {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        // The signing secrets are masked too (the client knows only its own).
        self.client
            .embed(&self.info, request, |r| self.post(r))
            .await
            .map_err(|e| self.masker.error(e))
            .inspect_err(
                |e| tracing::debug!(target: "embeddings_bedrock", error = %e, "embed failed"),
            )
    }

    async fn health_check(&self) -> Result<()> {
        self.embed_documents(&["ping"]).await.map(drop)
    }
}

embeddings_core::register_provider! {
    name: NAME,
    description: "AWS Bedrock InvokeModel: Titan Text Embeddings v2, Cohere Embed (AWS_ACCESS_KEY_ID, AWS_REGION)",
    build: |config| Ok(Arc::new(BedrockEmbedder::from_config(config)?)),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        Config::from_toml_str(&format!(
            "provider = \"bedrock\"\n{toml}\n[bedrock]\nregion = \"eu-central-1\"\naccess_key_id = \"AKIDTEST\"\nsecret_access_key = \"secret/secret/secret\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn titan_defaults_url_and_limits() {
        let b = BedrockEmbedder::from_config(&config("")).unwrap();
        assert_eq!(
            b.endpoint(),
            "https://bedrock-runtime.eu-central-1.amazonaws.com/model/amazon.titan-embed-text-v2%3A0/invoke"
        );
        let i = b.info();
        assert_eq!(
            (i.max_batch_size, i.dimension, i.max_input_tokens),
            (1, 1024, 8192)
        );
        assert_eq!(i.output_types, TITAN_OUTPUT_TYPES);
        assert!(i.input_types.is_empty());
        assert_eq!(
            i.fingerprint(),
            "provider=bedrock;model=amazon.titan-embed-text-v2:0;dimensions=1024;normalize=true"
        );
        let d = format!("{b:?}");
        assert!(
            !d.contains("secret/secret") && !d.contains("AKIDTEST"),
            "{d}"
        );
    }

    #[test]
    fn cohere_family_and_refusals() {
        let b = BedrockEmbedder::from_config(&config(
            "model = \"us.cohere.embed-v4:0\"\ndimensions = 512",
        ))
        .unwrap();
        assert_eq!(b.info().max_batch_size, COHERE_MAX_TEXTS);
        assert_eq!(b.info().dimension, 512);
        assert!(
            b.endpoint()
                .ends_with("/model/us.cohere.embed-v4%3A0/invoke")
        );
        for toml in [
            "dimensions = 300",
            "model = \"cohere.embed-english-v3\"\ndimensions = 512",
            "model = \"amazon.titan-embed-image-v1\"",
        ] {
            let e = BedrockEmbedder::from_config(&config(toml)).unwrap_err();
            assert_eq!(
                e.kind(),
                embeddings_core::ErrorKind::InvalidConfig,
                "{toml}: {e}"
            );
            assert!(!e.to_string().contains("secret/secret"));
        }
        let c = Config::from_toml_str("provider = \"bedrock\"\n[bedrock]\nregion = \"x y\"\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n").unwrap();
        assert!(BedrockEmbedder::from_config(&c).is_err());
        let c = Config::from_toml_str(
            "provider = \"bedrock\"\n[bedrock]\nregion = \"us-east-1\"\naccess_key_id = \"a\"\n",
        )
        .unwrap();
        assert!(
            BedrockEmbedder::from_config(&c)
                .unwrap_err()
                .message()
                .contains("go together")
        );
    }

    #[test]
    fn model_ids_are_encoded_as_the_sdks_do() {
        assert_eq!(
            encode_model_id("amazon.titan-embed-text-v2:0"),
            "amazon.titan-embed-text-v2%3A0"
        );
        assert_eq!(
            encode_model_id("arn:aws:bedrock:us-east-1::foundation-model/x"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Fx"
        );
    }
}
