//! What a dialect is: one API's wire format on the fake server's engine.
//!
//! The engine (routing, faults, limits, the request log, counters, the
//! connections) knows no API. A [`Dialect`] says which routes it serves,
//! validates requests as strictly as the real service, encodes the rows the
//! engine computed, shapes every error body, and tells the log what a
//! request asked for. The OpenAI and Ollama APIs are two dialects
//! ([`OpenAiDialect`](crate::OpenAiDialect), [`OllamaDialect`](crate::OllamaDialect));
//! a provider crate adds its own without touching the engine:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! use embeddings_testkit::dialect::{Dialect, Exchange, Reply, RouteSpec, RowStyle, JSON};
//! use embeddings_testkit::{FakeServer, Route};
//!
//! const ECHO_EMBED: Route = Route::new("echo_embed");
//!
//! /// `POST /embed {"texts": [...]}` → `{"vectors": [[...], ...]}` at 8 dimensions.
//! #[derive(Debug)]
//! struct Echo;
//!
//! impl Dialect for Echo {
//!     fn name(&self) -> &'static str { "echo" }
//!     fn routes(&self) -> Vec<RouteSpec> {
//!         vec![RouteSpec::post(ECHO_EMBED, ["/embed"]).embedding()]
//!     }
//!     fn handle(&self, ex: &Exchange<'_>) -> Reply {
//!         let Ok(body) = serde_json::from_slice::<serde_json::Value>(ex.body()) else {
//!             return Reply::error(400, "not JSON");
//!         };
//!         let Some(texts) = body["texts"].as_array() else {
//!             return Reply::error(400, "texts is required");
//!         };
//!         let texts: Vec<&str> = texts.iter().filter_map(|t| t.as_str()).collect();
//!         let tokens = texts.iter().map(|t| embeddings_testkit::count_tokens(t) as u64).sum();
//!         let limits = match ex.admit(tokens) {
//!             Ok(l) => l,
//!             Err(r) => return Reply::error(429, "slow down").rejected(&r),
//!         };
//!         let rows = ex.rows("echo", &texts, 8, RowStyle::Positional);
//!         Reply::json(200, JSON, &serde_json::json!({ "vectors": rows.as_json_arrays() }))
//!             .rate_limits(&limits)
//!             .embedded(texts.len(), tokens)
//!     }
//! }
//!
//! let server = FakeServer::builder().dialect(Echo).start().await?;
//! assert!(server.requests().is_empty());
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::fmt::Debug;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use embeddings_core::{InputType, OutputType};
use serde::Serialize;

use super::config::{RateLimitedFault, StatusFault};
use super::engine::Engine;
use super::faults::{RowFault, plan_rows};
use super::limits::{LimitRejection, LimitSnapshot};
use super::record::RecordedRequest;
use super::route::Route;
use super::rows::Rows;

/// `application/json`.
pub const JSON: &str = "application/json";

/// One API's wire format, served by the fake server's engine.
///
/// Implementations are plain values (`Send + Sync`, `Debug`); the engine
/// holds them in an `Arc` and calls them from every connection. Nothing
/// here may panic on a bad request: answer it, as the real service would.
pub trait Dialect: Debug + Send + Sync + 'static {
    /// A short name: the fault scope for all its routes (`route = "openai"`),
    /// shown in errors. Unique among the dialects of one server.
    fn name(&self) -> &'static str;

    /// The routes it serves. Two dialects (or two routes) claiming the same
    /// path cannot share a server: [`FakeServerBuilder::start`](crate::FakeServerBuilder::start)
    /// refuses them, naming both; serve them from two servers.
    fn routes(&self) -> Vec<RouteSpec>;

    /// Answers a request on one of its routes, after the engine applied the
    /// faults that answer in the server's place and checked the method and
    /// the body size. Validates as strictly as the real API; on an embedding
    /// route calls [`Exchange::admit`] (the rate limits) and
    /// [`Exchange::rows`] (the vectors, after the row faults), then encodes
    /// them.
    fn handle(&self, exchange: &Exchange<'_>) -> Reply;

    /// The body of an answer the engine gives in the server's place (a
    /// status or 429 fault, a wrong method, a body too large), in this
    /// API's error shape. The engine adds the `retry-after` and
    /// `x-ratelimit-*` headers. Default: [`Reply::error`] (`{"error": "..."}`).
    fn error(&self, route: Route, error: &EngineError<'_>) -> Reply {
        let _ = route;
        Reply::error(error.status(), &error.message())
    }

    /// What a logged request asked for (model, inputs, input and output
    /// type), read from the request as the client sent it. Called when the
    /// log is read, not on the hot path. Default: nothing known.
    fn describe(&self, request: &RecordedRequest) -> RequestSummary {
        let _ = request;
        RequestSummary::default()
    }

    /// The answer to a path no dialect serves, when it looks like this
    /// API's (OpenAI answers JSON for an unknown `/v1/...`); `None` leaves
    /// it to the engine's plain-text `404 page not found`.
    fn not_found(&self, method: &Method, path: &str) -> Option<Reply> {
        let _ = (method, path);
        None
    }
}

/// One route of a dialect: its name, its paths, its methods, and whether
/// it answers with embeddings.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub(crate) route: Route,
    pub(crate) paths: Vec<String>,
    pub(crate) methods: Vec<Method>,
    pub(crate) embedding: bool,
    pub(crate) rate_limit_headers: bool,
}

impl RouteSpec {
    /// `route` on `paths` (axum syntax: `/v1/models/{*id}`), any method.
    pub fn new<P: Into<String>>(route: Route, paths: impl IntoIterator<Item = P>) -> Self {
        RouteSpec {
            route,
            paths: paths.into_iter().map(Into::into).collect(),
            methods: Vec::new(),
            embedding: false,
            rate_limit_headers: false,
        }
    }

    /// `route` on `paths`, `POST` only (other methods: 405 in the dialect's shape).
    pub fn post<P: Into<String>>(route: Route, paths: impl IntoIterator<Item = P>) -> Self {
        RouteSpec::new(route, paths).methods([Method::POST])
    }

    /// `route` on `paths`, `GET` and `HEAD` only.
    pub fn get<P: Into<String>>(route: Route, paths: impl IntoIterator<Item = P>) -> Self {
        RouteSpec::new(route, paths).methods([Method::GET, Method::HEAD])
    }

    /// The methods allowed (empty: any).
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// The route answers with embeddings: row faults apply to it, and its
    /// answers carry the `x-ratelimit-*` headers.
    pub fn embedding(mut self) -> Self {
        self.embedding = true;
        self.rate_limit_headers = true;
        self
    }

    /// Every answer of the route carries the `x-ratelimit-*` headers (as
    /// OpenAI's `/v1/models` does).
    pub fn with_rate_limit_headers(mut self) -> Self {
        self.rate_limit_headers = true;
        self
    }

    /// The route's name.
    pub fn route(&self) -> Route {
        self.route
    }
}

/// An answer the engine gives in a dialect's place; the dialect shapes its body.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum EngineError<'a> {
    /// A status fault fired (`{ status = 503 }`): answer with that status,
    /// and the fault's code, type and message where the API has them.
    Status(&'a StatusFault),
    /// A `rate_limited` fault fired: a 429 (the engine adds `retry-after`).
    RateLimited(&'a RateLimitedFault),
    /// The route does not take this method.
    MethodNotAllowed {
        /// The method sent.
        method: &'a Method,
        /// The path with the query.
        path: &'a str,
    },
    /// The body is over the engine's cap (64 MiB).
    BodyTooLarge,
}

impl EngineError<'_> {
    /// The status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            EngineError::Status(s) => {
                StatusCode::from_u16(s.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            EngineError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            EngineError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            EngineError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// A message: the fault's own, else a plain one for the status.
    pub fn message(&self) -> Cow<'_, str> {
        match self {
            EngineError::Status(s) => match &s.message {
                Some(m) => Cow::Borrowed(m.as_str()),
                None => Cow::Borrowed(default_status_message(s.status)),
            },
            EngineError::RateLimited(_) => Cow::Borrowed("rate limit exceeded"),
            EngineError::MethodNotAllowed { method, path } => {
                Cow::Owned(format!("method {method} not allowed for {path}"))
            }
            EngineError::BodyTooLarge => Cow::Borrowed("request body too large"),
        }
    }
}

/// A plain message for an error status.
pub fn default_status_message(status: u16) -> &'static str {
    match status {
        400 => "Bad request.",
        401 => "Incorrect API key provided.",
        403 => "You are not allowed to use this model.",
        404 => "The model does not exist or you do not have access to it.",
        408 => "Request timed out.",
        429 => "Rate limit reached. Please try again later.",
        500 => "The server had an error while processing your request. Sorry about that!",
        502 => "Bad gateway.",
        503 => "The engine is currently overloaded, please try again later.",
        504 => "Gateway timeout.",
        s if s >= 500 => "The server had an error while processing your request.",
        _ => "The request failed.",
    }
}

/// What a request asked for, as far as its dialect can tell: the request
/// log's view ([`RecordedRequest`]) and what conformance checks read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestSummary {
    /// The model named.
    pub model: Option<String>,
    /// The number of inputs.
    pub inputs: Option<usize>,
    /// The input type on the wire, mapped back to [`InputType`] (`None`:
    /// the API has none, or the request sent none).
    pub input_type: Option<InputType>,
    /// The output type asked for (`None`: the API has none, or the request
    /// sent none; an encoding of `f32`, such as base64, is `F32`).
    pub output_type: Option<OutputType>,
}

/// How a duplicate-row fault shows in a dialect's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStyle {
    /// Rows carry an `index` (OpenAI): a duplicate relabels the second row
    /// with the first's index; a shuffle keeps each row's true index.
    Indexed,
    /// Rows are placed by position (Ollama): a duplicate copies the first
    /// vector into the second row.
    Positional,
}

/// A request on one of a dialect's routes, and the engine's services.
#[derive(Debug)]
pub struct Exchange<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) route: Route,
    pub(crate) method: &'a Method,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) path: &'a str,
    pub(crate) body: &'a [u8],
    pub(crate) row_faults: &'a [RowFault],
}

impl<'a> Exchange<'a> {
    /// The route matched.
    pub fn route(&self) -> Route {
        self.route
    }

    /// The method.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        self.headers
    }

    /// The first value of header `name`, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The path with the query (`/v1/models/x?y=1`).
    pub fn path(&self) -> &str {
        self.path
    }

    /// The body as received.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Takes one request and `tokens` tokens from the requests/tokens-per-
    /// minute budgets, or says why not (answer the rejection with a 429 in
    /// the dialect's shape and [`Reply::rejected`]). Call it after the
    /// request passed validation: a refused request costs nothing.
    pub fn admit(&self, tokens: u64) -> Result<LimitSnapshot, LimitRejection> {
        self.engine.admit(tokens)
    }

    /// The budgets now, consuming nothing.
    pub fn rate_limits(&self) -> LimitSnapshot {
        self.engine.peek_limits()
    }

    /// The rows to answer for `texts` at `dim`: the §4 vector of
    /// `(model, text, dim)` for each, after the row faults that fired for
    /// this request.
    pub fn rows<T: AsRef<str>>(
        &self,
        model: &str,
        texts: &[T],
        dim: usize,
        style: RowStyle,
    ) -> Rows {
        self.rows_with(model, texts, dim, style, |_| true)
    }

    /// [`Exchange::rows`] with only the row faults `keep` accepts (a route
    /// answering one vector ignores a shuffle).
    pub fn rows_with<T: AsRef<str>>(
        &self,
        model: &str,
        texts: &[T],
        dim: usize,
        style: RowStyle,
        keep: impl Fn(&RowFaultKind) -> bool,
    ) -> Rows {
        let faults: Vec<RowFault> = self
            .row_faults
            .iter()
            .copied()
            .filter(|f| keep(&f.kind()))
            .collect();
        let plan = plan_rows(texts.len(), dim, &faults, style == RowStyle::Indexed);
        Rows::compute(model, texts, plan)
    }
}

/// The kinds of row faults (see [`FaultAction`](crate::FaultAction)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RowFaultKind {
    /// Rows removed or added.
    WrongCount,
    /// Rows out of order.
    Shuffle,
    /// A row repeated.
    Duplicate,
    /// A NaN in the first row.
    Nan,
    /// The first row of the wrong length.
    WrongDimension,
}

/// An answer: status, headers, content type, body, and for a successful
/// embedding answer the inputs and tokens it embedded (for the counters).
#[derive(Debug)]
pub struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    pub(crate) inputs: u64,
    pub(crate) tokens: u64,
}

impl Reply {
    /// A JSON answer (an unknown status is 500).
    pub fn json(
        status: impl IntoStatus,
        content_type: &'static str,
        value: &impl Serialize,
    ) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_default();
        Reply::bytes(status, content_type, body)
    }

    /// An answer of raw bytes (an unknown status is 500).
    pub fn bytes(status: impl IntoStatus, content_type: &'static str, body: Vec<u8>) -> Self {
        Reply {
            status: status.into_status(),
            headers: HeaderMap::new(),
            content_type,
            body,
            inputs: 0,
            tokens: 0,
        }
    }

    /// `{"error": message}` with `status` (the default error shape).
    pub fn error(status: impl IntoStatus, message: &str) -> Self {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
        }
        Reply::json(status, JSON, &Body { error: message })
    }

    /// Adds a header (an invalid value is left out).
    pub fn header(mut self, name: &'static str, value: impl AsRef<str>) -> Self {
        if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
            self.headers.insert(HeaderName::from_static(name), v);
        }
        self
    }

    /// Adds the `x-ratelimit-*` headers of `snapshot`.
    pub fn rate_limits(mut self, snapshot: &LimitSnapshot) -> Self {
        snapshot.write(&mut self.headers);
        self
    }

    /// Adds the `retry-after`, `retry-after-ms` and `x-ratelimit-*` headers of a refusal.
    pub fn rejected(mut self, rejection: &LimitRejection) -> Self {
        rejection.write_headers(&mut self.headers);
        self
    }

    /// Records that this (successful) answer embedded `inputs` inputs of `tokens` tokens.
    pub fn embedded(mut self, inputs: usize, tokens: u64) -> Self {
        self.inputs = inputs as u64;
        self.tokens = tokens;
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers, to change.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// A status: an [`axum::http::StatusCode`] or its number (an unknown number is 500).
pub trait IntoStatus {
    /// The status.
    fn into_status(self) -> StatusCode;
}

impl IntoStatus for StatusCode {
    fn into_status(self) -> StatusCode {
        self
    }
}

impl IntoStatus for u16 {
    fn into_status(self) -> StatusCode {
        StatusCode::from_u16(self).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}
