//! The Voyage AI embeddings provider, registered as `voyage`: one
//! `POST {base_url}/embeddings` per call, on the `embeddings-http` toolkit.
//!
//! * Input types natively: `document`, `query` (Voyage's `input_type`; the
//!   others have no Voyage counterpart and are refused with `InvalidInput`).
//! * Output types natively (`output_dtype`): `float`, `int8`, `uint8`,
//!   `binary`, `ubinary` for the models that take it (voyage-3-large,
//!   voyage-3.5(-lite), voyage-code-3, voyage-context-3, voyage-4*); other
//!   models produce `float` only. Rows always travel as
//!   `encoding_format: "base64"`, placed by `index` straight into the batch.
//! * Limits by model: at most 1,000 inputs per call and 120K to 1M tokens per
//!   request ([`model_limits`]); `output_dimension` from `dimensions`
//!   (256, 512, 1024, 2048 for the flexible models); `truncation` from
//!   `[voyage] truncation`, else from the batch layer's over-length policy
//!   (`truncate` → `true`, otherwise `false`).
//! * The key from `api_key`, else `VOYAGE_API_KEY` (bearer); the endpoint
//!   from `base_url`, else `VOYAGE_BASE_URL`, else `https://api.voyageai.com/v1`.
//!
//! ```toml
//! provider = "voyage"
//! model = "voyage-3.5"
//! dimensions = 512             # output_dimension
//! [voyage]
//! truncation = true
//! request_timeout = "60s"
//! ```

#[cfg(feature = "testkit")]
pub mod testkit;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use embeddings_core::{
    Config, EmbedRequest, Embedder, Embeddings, Error, ErrorKind, InputType, OutputType,
    OverLengthPolicy, ProviderInfo, Result, async_trait,
};
use embeddings_http::json::{RowBuffer, Scanner, data_envelope, decode_base64_bytes};
use embeddings_http::reqwest::header::HeaderMap;
use embeddings_http::{
    BodyCap, ErrorDetail, HostedApi, HttpClient, InfoCell, Masker, Url, default_kind,
    is_context_length_text, status_error,
};
use serde::{Deserialize, Serialize};

/// The registered name.
pub const NAME: &str = "voyage";
/// The default model.
pub const DEFAULT_MODEL: &str = "voyage-3.5";
/// The default base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.voyageai.com/v1";
/// The key's environment variable.
pub const ENV_API_KEY: &str = "VOYAGE_API_KEY";
/// The base URL's environment variable.
pub const ENV_BASE_URL: &str = "VOYAGE_BASE_URL";
/// Most inputs per call.
pub const MAX_INPUTS: usize = 1000;
/// The `output_dimension` values the flexible models take.
pub const OUTPUT_DIMENSIONS: [usize; 4] = [256, 512, 1024, 2048];

/// The input types Voyage takes.
pub const INPUT_TYPES: &[InputType] = &[InputType::Document, InputType::Query];
/// The output types of the flexible models besides `float`.
pub const OUTPUT_TYPES: &[OutputType] = &[
    OutputType::Int8,
    OutputType::Uint8,
    OutputType::Binary,
    OutputType::Ubinary,
];

/// A model's limits: (default dimension, context tokens, tokens per request).
/// Unknown models get (0 = learned, 32,000, 120,000).
pub fn model_limits(model: &str) -> (usize, usize, usize) {
    match model {
        "voyage-3.5-lite" | "voyage-4-lite" => (1024, 32_000, 1_000_000),
        "voyage-3.5" | "voyage-4" | "voyage-3" => (1024, 32_000, 320_000),
        "voyage-3-lite" => (512, 32_000, 1_000_000),
        "voyage-2" => (1024, 4_000, 320_000),
        "voyage-large-2" | "voyage-code-2" => (1536, 16_000, 120_000),
        "voyage-3-large" | "voyage-code-3" | "voyage-context-3" | "voyage-4-large" => {
            (1024, 32_000, 120_000)
        }
        "voyage-multilingual-2" | "voyage-finance-2" | "voyage-law-2" => (1024, 32_000, 120_000),
        _ => (0, 32_000, 120_000),
    }
}

/// Whether the model takes `output_dimension` and a non-float `output_dtype`.
pub fn is_flexible(model: &str) -> bool {
    matches!(
        model,
        "voyage-3-large"
            | "voyage-3.5"
            | "voyage-3.5-lite"
            | "voyage-code-3"
            | "voyage-context-3"
            | "voyage-4"
            | "voyage-4-large"
            | "voyage-4-lite"
    )
}

/// Voyage's `input_type`, `None` when Voyage has none.
pub fn wire_input_type(t: InputType) -> Option<&'static str> {
    match t {
        InputType::Document => Some("document"),
        InputType::Query => Some("query"),
        _ => None,
    }
}

/// Voyage's `output_dtype`.
pub fn wire_output_type(t: OutputType) -> Option<&'static str> {
    match t {
        OutputType::F32 => Some("float"),
        OutputType::Int8 => Some("int8"),
        OutputType::Uint8 => Some("uint8"),
        OutputType::Binary => Some("binary"),
        OutputType::Ubinary => Some("ubinary"),
        _ => None,
    }
}

/// The `[voyage]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoyageSection {
    /// `truncation`; default from the batch layer's `over_length`.
    pub truncation: Option<bool>,
    /// TCP/TLS connect timeout.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// Deadline of the whole request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Option<Duration>,
    /// Most inputs per call (at most 1,000).
    pub max_batch_size: Option<usize>,
    /// Most tokens per request (default by model).
    pub max_batch_tokens: Option<usize>,
}

/// The Voyage embedding provider. `Debug` never shows the key.
pub struct VoyageEmbedder {
    info: InfoCell,
    client: HttpClient,
    url: Url,
    shown: String,
    output_dimension: Option<usize>,
    truncation: bool,
}

impl fmt::Debug for VoyageEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoyageEmbedder")
            .field("url", &self.shown)
            .field("model", &self.info().model)
            .field("dimension", &self.info().dimension)
            .field("truncation", &self.truncation)
            .field("api_key", &"[redacted]")
            .field("headers", &self.client.header_names())
            .finish_non_exhaustive()
    }
}

fn config_err(message: impl Into<String>) -> Error {
    Error::config(message).with_provider(NAME)
}

/// Where the service is and how its key travels.
const API: HostedApi = HostedApi {
    provider: NAME,
    default_base_url: DEFAULT_BASE_URL,
    base_url_env: &[ENV_BASE_URL],
    key_env: &[ENV_API_KEY],
    path: &["embeddings"],
};

#[derive(Serialize)]
struct Body<'a> {
    input: &'a [&'a str],
    model: &'a str,
    input_type: &'a str,
    truncation: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimension: Option<usize>,
    output_dtype: &'a str,
    encoding_format: &'a str,
}

impl VoyageEmbedder {
    /// Builds from the common keys and the `[voyage]` section.
    pub fn from_config(config: &Config) -> Result<Self> {
        let section: VoyageSection = config
            .provider_section(NAME)
            .map_err(|e| e.with_provider(NAME))?;
        let model = config
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        if model.trim().is_empty() {
            return Err(config_err("`model` must not be empty"));
        }
        let (native, context, per_request) = model_limits(&model);
        let output_dimension = match config.dimensions {
            None => None,
            Some(d) if d == native && !is_flexible(&model) => None,
            Some(d) if !is_flexible(&model) => {
                return Err(config_err(format!(
                    "`dimensions` = {d}: {model} does not take `output_dimension`"
                )));
            }
            Some(d) if !OUTPUT_DIMENSIONS.contains(&d) => {
                return Err(config_err(format!(
                    "`dimensions` = {d}: Voyage's output_dimension is one of 256, 512, 1024, 2048"
                )));
            }
            Some(d) => Some(d),
        };
        let truncation = section
            .truncation
            .unwrap_or(config.batch.over_length == OverLengthPolicy::Truncate);
        let mut info =
            ProviderInfo::hosted(NAME, model.clone(), config.dimensions.unwrap_or(native));
        info.max_batch_size = section
            .max_batch_size
            .unwrap_or(MAX_INPUTS)
            .clamp(1, MAX_INPUTS);
        info.max_input_tokens = context;
        info.max_batch_tokens = section.max_batch_tokens.unwrap_or(per_request).max(1);
        info.normalized = true;
        info.input_types = INPUT_TYPES;
        if is_flexible(&model) {
            info.output_types = OUTPUT_TYPES;
        }
        if let Some(d) = output_dimension {
            info.add_fingerprint("output_dimension", d);
        }
        info.add_fingerprint("truncation", truncation);
        let (url, shown) = API.url(config.base_url.as_deref(), &mut info)?;
        let client = API.client(
            config.api_key.as_ref(),
            section.connect_timeout,
            section.request_timeout,
        )?;
        Ok(VoyageEmbedder {
            info: InfoCell::new(info),
            client,
            url,
            shown,
            output_dimension,
            truncation,
        })
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.shown
    }

    async fn post(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        let rows = request.len();
        if rows > self.info().max_batch_size {
            return Err(Error::invalid_input(format!(
                "{rows} inputs in one request; the limit is {} (the batch layer splits larger calls)",
                self.info().max_batch_size
            )));
        }
        let input_type = wire_input_type(request.input_type).ok_or_else(|| {
            Error::invalid_input(format!(
                "provider voyage has no input type {} (it has: document, query)",
                request.input_type
            ))
        })?;
        let output = request.output_type;
        let output_dtype = wire_output_type(output).ok_or_else(|| {
            Error::invalid_input(format!("provider voyage does not produce {output} vectors"))
        })?;
        let body = serde_json::to_vec(&Body {
            input: request.inputs,
            model: &self.info().model,
            input_type,
            truncation: self.truncation,
            output_dimension: self.output_dimension,
            output_dtype,
            encoding_format: "base64",
        })
        .map_err(|e| Error::invalid_input(format!("encoding the request: {e}")))?;
        let dim = self.info().dimension;
        tracing::debug!(target: "embeddings_voyage", url = %self.shown, model = %self.info().model,
            inputs = rows, input_type, output_dtype, "POST embeddings");
        let cap = BodyCap::Rows {
            rows,
            dim,
            key: "embedding",
        };
        let out = self
            .client
            .call_rows(
                self.client.post_json(&self.url, body),
                &self.shown,
                cap,
                parse_error_masked,
                |body| decode_response(body, rows, dim, output),
            )
            .await?;
        self.info.learn_dimension(out.dim());
        Ok(out)
    }
}

#[async_trait]
impl Embedder for VoyageEmbedder {
    fn info(&self) -> &ProviderInfo {
        self.info.get()
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.client
            .embed(self.info(), request, |r| self.post(r))
            .await
            .inspect_err(
                |e| tracing::debug!(target: "embeddings_voyage", error = %e, "embed failed"),
            )
    }

    async fn health_check(&self) -> Result<()> {
        self.embed_documents(&["ping"]).await.map(drop)
    }
}

/// Rows of bytes placed by index (the quantized types).
struct ByteRows {
    row_len: usize,
    data: Vec<u8>,
    filled: Vec<bool>,
}

/// Decodes a Voyage answer with base64 rows (`data[].embedding`, by
/// `index`; `usage.total_tokens`). `dim` 0: learned from the first row.
/// Any inconsistency is `InvalidResponse`.
pub fn decode_response(
    body: &[u8],
    rows: usize,
    dim: usize,
    output: OutputType,
) -> Result<Embeddings> {
    decode(body, rows, dim, output).map_err(Error::invalid_response)
}

fn decode(body: &[u8], rows: usize, dim: usize, output: OutputType) -> Result<Embeddings, String> {
    let float = output == OutputType::F32;
    let mut floats = RowBuffer::by_index(rows, dim);
    let mut bytes = ByteRows {
        row_len: output.row_len(dim),
        data: Vec::new(),
        filled: vec![false; rows],
    };
    let mut scratch = Vec::new();
    let mut placed = 0usize;
    let usage = data_envelope(body, "total_tokens", |s| {
        let (index, text) = item(s)?;
        if float {
            let i = floats.claim(index)?;
            floats.place_base64(i, &text)?;
            floats.done(i);
        } else {
            place_bytes(&mut bytes, index, &text, &mut scratch)?;
        }
        placed += 1;
        Ok(())
    })?;
    let mut out = if float {
        floats.finish().map_err(|e| e.message().to_owned())?
    } else {
        if placed != rows {
            return Err(format!(
                "expected {rows} embeddings (one per input), got {placed}"
            ));
        }
        let dim = if dim > 0 {
            dim
        } else if output.is_packed() {
            bytes.row_len * 8
        } else {
            bytes.row_len
        };
        let e = match output {
            OutputType::Int8 | OutputType::Binary => Embeddings::from_i8(
                bytes.data.into_iter().map(|b| b as i8).collect(),
                dim,
                output,
            ),
            _ => Embeddings::from_u8(bytes.data, dim, output),
        };
        e.map_err(|e| e.message().to_owned())?
    };
    out.set_usage(usage);
    Ok(out)
}

fn place_bytes(
    rows: &mut ByteRows,
    index: u64,
    text: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<(), String> {
    let n = rows.filled.len();
    let i = usize::try_from(index)
        .ok()
        .filter(|i| *i < n)
        .ok_or_else(|| format!("embedding index {index} is out of range for {n} inputs"))?;
    if rows.filled[i] {
        return Err(format!("embedding index {i} appears twice"));
    }
    decode_base64_bytes(text, scratch).map_err(|e| format!("embedding {i}: {e}"))?;
    if rows.row_len == 0 {
        if scratch.is_empty() {
            return Err(format!("embedding {i} is empty"));
        }
        rows.row_len = scratch.len();
    }
    if scratch.len() != rows.row_len {
        return Err(format!(
            "embedding {i}: {} bytes, expected {} (wrong dimension)",
            scratch.len(),
            rows.row_len
        ));
    }
    if rows.data.is_empty() {
        rows.data = vec![0; n * rows.row_len];
    }
    rows.data[i * rows.row_len..(i + 1) * rows.row_len].copy_from_slice(scratch);
    rows.filled[i] = true;
    Ok(())
}

/// One `{"object", "embedding": "<base64>", "index"}`.
fn item<'a>(s: &mut Scanner<'a>) -> Result<(u64, std::borrow::Cow<'a, [u8]>), String> {
    let mut index = None;
    let mut text = None;
    s.eat(b'{', "'{' opening an embedding")?;
    if !s.eat_if(b'}') {
        loop {
            let key = s.string()?;
            s.eat(b':', "':'")?;
            match &*key {
                b"index" => index = Some(s.integer(|| "`index`".into())?),
                b"embedding" => {
                    if s.peek() != Some(b'"') {
                        return Err(
                            "`embedding` is not a base64 string (encoding_format base64 was asked)"
                                .into(),
                        );
                    }
                    text = Some(s.string()?);
                }
                _ => s.skip_value(2)?,
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    match (index, text) {
        (Some(i), Some(t)) => Ok((i, t)),
        (None, _) => Err("an embedding without `index`".into()),
        (_, None) => Err("an embedding without `embedding`".into()),
    }
}

/// Maps an error answer (`{"detail": "..."}`) to a typed error: the
/// toolkit's table, with a 400 about the context length or the tokens of a
/// batch as `ContextLengthExceeded`.
pub fn parse_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    parse_error_masked(status, headers, body, &Masker::new())
}

fn parse_error_masked(status: u16, headers: &HeaderMap, body: &[u8], masker: &Masker) -> Error {
    let detail = ErrorDetail::from_body(body, masker);
    let kind = match status {
        400 if is_context_length_text(&detail.message) => ErrorKind::ContextLengthExceeded,
        s => default_kind(s),
    };
    let message = if detail.message.is_empty() {
        format!("server answered HTTP {status} with an empty body")
    } else {
        detail.message
    };
    status_error(kind, message, status, headers)
}

embeddings_core::register_provider! {
    name: NAME,
    description: "Voyage AI /v1/embeddings (VOYAGE_API_KEY)",
    build: |config| Ok(Arc::new(VoyageEmbedder::from_config(config)?)),
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use proptest::prelude::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn f32s(v: &[f32]) -> String {
        b64(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>())
    }

    #[test]
    fn rows_by_index_in_every_type() {
        let body = format!(
            r#"{{"object":"list","data":[{{"object":"embedding","embedding":"{}","index":1}},{{"embedding":"{}","index":0}}],"model":"m","usage":{{"total_tokens":7}}}}"#,
            f32s(&[0.5, 1.0]),
            f32s(&[0.25, -1.0])
        );
        let e = decode_response(body.as_bytes(), 2, 2, OutputType::F32).unwrap();
        assert_eq!((e.row(0), e.row(1)), (&[0.25, -1.0][..], &[0.5, 1.0][..]));
        assert_eq!(e.usage().unwrap().prompt_tokens, 7);
        let body = format!(
            r#"{{"data":[{{"index":0,"embedding":"{}"}}]}}"#,
            b64(&[0xff, 0x01])
        );
        let e = decode_response(body.as_bytes(), 1, 2, OutputType::Int8).unwrap();
        assert_eq!(e.as_i8().unwrap(), [-1, 1]);
        let e = decode_response(body.as_bytes(), 1, 16, OutputType::Ubinary).unwrap();
        assert_eq!((e.dim(), e.as_u8().unwrap()), (16, &[0xff, 1][..]));
        let e = decode_response(body.as_bytes(), 1, 0, OutputType::Binary).unwrap();
        assert_eq!(e.dim(), 16);
    }

    #[test]
    fn bad_answers_are_refused() {
        let row = f32s(&[0.5, 1.0]);
        for body in [
            format!(r#"{{"data":[{{"index":0,"embedding":"{row}"}}]}}"#), // 1 of 2
            format!(
                r#"{{"data":[{{"index":0,"embedding":"{row}"}},{{"index":0,"embedding":"{row}"}}]}}"#
            ),
            format!(
                r#"{{"data":[{{"index":0,"embedding":"{row}"}},{{"index":2,"embedding":"{row}"}}]}}"#
            ),
            format!(
                r#"{{"data":[{{"index":0,"embedding":[0.5,1]}},{{"index":1,"embedding":"{row}"}}]}}"#
            ),
            format!(
                r#"{{"data":[{{"index":0,"embedding":"{}"}},{{"index":1,"embedding":"{row}"}}]}}"#,
                f32s(&[1.0])
            ),
            format!(
                r#"{{"data":[{{"index":0,"embedding":"@@@@"}},{{"index":1,"embedding":"{row}"}}]}}"#
            ),
            format!(r#"{{"data":[{{"embedding":"{row}"}},{{"index":1,"embedding":"{row}"}}]}}"#),
            format!(
                r#"{{"data":[{{"index":0,"embedding":"{}"}},{{"index":1,"embedding":"{row}"}}]}}"#,
                f32s(&[f32::NAN, 1.0])
            ),
            r#"{"data":["#.to_owned(),
        ] {
            let e = decode_response(body.as_bytes(), 2, 2, OutputType::F32).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidResponse, "{body}");
        }
    }

    #[test]
    fn status_table() {
        let h = HeaderMap::new();
        let d = |m: &str| format!(r#"{{"detail":"{m}"}}"#).into_bytes();
        for (status, body, kind) in [
            (400, d("Invalid request"), ErrorKind::InvalidInput),
            (
                400,
                d(
                    "Request to model 'voyage-3.5' failed. The max allowed tokens per submitted batch is 320000. Your batch has 400000 tokens after truncation. Please lower the number of tokens in the batch.",
                ),
                ErrorKind::InvalidInput,
            ),
            (
                400,
                d("The input at index 0 exceeds the context length of 32000 tokens"),
                ErrorKind::ContextLengthExceeded,
            ),
            (
                401,
                d("Provided API key is invalid."),
                ErrorKind::Authentication,
            ),
            (403, d("forbidden"), ErrorKind::PermissionDenied),
            (429, d("rate limit"), ErrorKind::RateLimited),
            (500, d("server"), ErrorKind::Unavailable),
            (502, d("bad gateway"), ErrorKind::Unavailable),
            (503, d("unavailable"), ErrorKind::Unavailable),
            (504, d("timeout"), ErrorKind::Timeout),
        ] {
            assert_eq!(parse_error(status, &h, &body).kind(), kind, "{status}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..256), rows in 0usize..4, dim in 0usize..5) {
            for out in OutputType::ALL {
                let _ = decode_response(&body, rows, dim, out);
            }
        }

        #[test]
        fn float_rows_round_trip(rows in proptest::collection::vec(proptest::collection::vec(-1e6f32..1e6, 3), 1..5)) {
            let items: Vec<String> = rows.iter().enumerate().rev()
                .map(|(i, r)| format!(r#"{{"index":{i},"embedding":"{}"}}"#, f32s(r))).collect();
            let body = format!(r#"{{"data":[{}]}}"#, items.join(","));
            let e = decode_response(body.as_bytes(), rows.len(), 3, OutputType::F32).unwrap();
            for (i, r) in rows.iter().enumerate() {
                prop_assert_eq!(e.row(i), &r[..]);
            }
        }
    }
}
