//! The fake OpenAI- and Ollama-compatible server (DESIGN.md §5).
//!
//! Served with axum's router on hyper's HTTP/1 connections, driven by our own
//! accept loop so that a fault can reset a connection (TCP RST) and so that
//! dropping the [`FakeServer`] really ends every connection, hanging ones too.

mod config;
mod faults;
mod input;
mod limits;
mod ollama;
mod openai;
mod record;
mod rows;
mod tokens;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

pub use self::config::{
    DEFAULT_OPENAI_MODELS, DEFAULT_REQUEST_LOG_LIMIT, FIXED_DIMENSION_OPENAI_MODELS,
    FakeServerConfig, Fault, FaultAction, Latency, OPENAI_MAX_INPUT_TOKENS, OPENAI_MAX_INPUTS,
    OPENAI_MAX_REQUEST_TOKENS, OllamaModel, RateLimitedFault, Route, StatusFault, Trigger,
};
pub use self::record::{RecordedRequest, Stats};
pub use self::tokens::count_tokens;

use self::faults::{BodyFault, FaultState, Preempt, RowFault};
use self::limits::{Limits, Snapshot};
use self::record::RequestLog;

/// The largest request body accepted (413 beyond).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A running fake server. It stops serving, and closes every connection, when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use embeddings_testkit::{FakeServer, FakeServerConfig};
/// let server = FakeServer::start(FakeServerConfig::default()).await?;
/// assert!(server.openai_base_url().ends_with("/v1"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FakeServer {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl FakeServer {
    /// Binds `config.host` (127.0.0.1 by default) on `config.port` (0: a free
    /// port) and serves on the current tokio runtime.
    ///
    /// Fails when the configuration is invalid (`InvalidInput`) or the port
    /// cannot be bound.
    pub async fn start(config: FakeServerConfig) -> std::io::Result<FakeServer> {
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let host = config.host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let listener = TcpListener::bind((host, config.port)).await?;
        let addr = listener.local_addr()?;
        // Building the tokenizer takes a while: not on the first request.
        tokio::task::spawn_blocking(|| {
            tokens::bpe();
        })
        .await
        .map_err(std::io::Error::other)?;
        let inner = Arc::new(Inner::new(config));
        let router = router(inner.clone());
        let task = tokio::spawn(accept_loop(listener, router));
        Ok(FakeServer { addr, inner, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the base URL for Ollama clients (`OLLAMA_HOST`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1`: the base URL for OpenAI clients (`OPENAI_BASE_URL`).
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The latest requests received (see
    /// [`FakeServerConfig::request_log_limit`]), in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.log).snapshot()
    }

    /// The counters since the start (or the last [`FakeServer::reset_stats`]).
    pub fn stats(&self) -> Stats {
        lock(&self.inner.stats).clone()
    }

    /// Replaces the faults; their counters start again from zero.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        self.inner.set_faults(faults);
    }

    /// Forgets the logged requests (the counters stay: see [`FakeServer::reset_stats`]).
    pub fn reset_log(&self) {
        lock(&self.inner.log).clear();
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&self) {
        *lock(&self.inner.stats) = Stats::default();
    }

    /// Replaces the requests/tokens-per-minute limits (full buckets; `None`: not enforced).
    pub fn set_rate_limits(
        &self,
        requests_per_minute: Option<u32>,
        tokens_per_minute: Option<u32>,
    ) {
        *lock(&self.inner.limits) = Limits::new(requests_per_minute, tokens_per_minute);
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The state shared by every connection.
#[derive(Debug)]
pub(crate) struct Inner {
    api_key: Option<String>,
    openai_models: BTreeMap<String, usize>,
    ollama_models: BTreeMap<String, OllamaModel>,
    ollama_version: String,
    has_faults: AtomicBool,
    faults: Mutex<Vec<FaultState>>,
    limits: Mutex<Limits>,
    log: Mutex<RequestLog>,
    stats: Mutex<Stats>,
}

impl Inner {
    fn new(config: FakeServerConfig) -> Self {
        let mut openai_models: BTreeMap<String, usize> = DEFAULT_OPENAI_MODELS
            .iter()
            .map(|(n, d)| ((*n).to_owned(), *d))
            .collect();
        openai_models.extend(config.openai_models);
        let mut ollama_models: BTreeMap<String, OllamaModel> = OllamaModel::defaults()
            .into_iter()
            .map(|(n, m)| (n.to_owned(), m))
            .collect();
        for (name, model) in config.ollama_models {
            ollama_models.insert(ollama::canonical(&name).to_owned(), model);
        }
        let inner = Inner {
            api_key: config.api_key,
            openai_models,
            ollama_models,
            ollama_version: config.ollama_version.unwrap_or_else(|| "0.12.0".into()),
            has_faults: AtomicBool::new(false),
            faults: Mutex::new(Vec::new()),
            limits: Mutex::new(Limits::new(
                config.requests_per_minute,
                config.tokens_per_minute,
            )),
            log: Mutex::new(RequestLog::new(
                config
                    .request_log_limit
                    .unwrap_or(DEFAULT_REQUEST_LOG_LIMIT),
            )),
            stats: Mutex::new(Stats::default()),
        };
        inner.set_faults(config.faults);
        inner
    }

    fn set_faults(&self, faults: Vec<Fault>) {
        let states: Vec<FaultState> = faults
            .into_iter()
            .enumerate()
            .map(|(i, f)| FaultState::new(f, i))
            .collect();
        let mut guard = lock(&self.faults);
        self.has_faults.store(!states.is_empty(), Ordering::Release);
        *guard = states;
    }

    fn rate_limit(&self, tokens: u64) -> Result<Snapshot, limits::Rejection> {
        let r = lock(&self.limits).acquire(tokens);
        if r.is_err() {
            lock(&self.stats).rate_limited += 1;
        }
        r
    }
}

// ---------------------------------------------------------------------------
// Serving

/// Lets a handler reset its own connection.
#[derive(Debug)]
struct ConnControl {
    /// A duplicate of the connection's socket, to set `SO_LINGER 0` on.
    socket: std::net::TcpStream,
    kill: Notify,
}

impl ConnControl {
    /// Makes the close send a TCP RST, then has the connection task drop the connection.
    fn reset(&self) {
        let _ = socket2::SockRef::from(&self.socket).set_linger(Some(Duration::ZERO));
        self.kill.notify_one();
    }
}

async fn accept_loop(listener: TcpListener, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone()));
                }
                // Out of file descriptors or a connection aborted while queued: go on.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Dropping the JoinSet (when this task is aborted) aborts every connection.
}

async fn serve_connection(stream: TcpStream, router: Router) {
    let _ = stream.set_nodelay(true);
    let Ok(std_stream) = stream.into_std() else {
        return;
    };
    let Ok(dup) = std_stream.try_clone() else {
        return;
    };
    let Ok(stream) = TcpStream::from_std(std_stream) else {
        return;
    };
    let control = Arc::new(ConnControl {
        socket: dup,
        kill: Notify::new(),
    });
    let svc_control = control.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(svc_control.clone());
            router.clone().oneshot(req)
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        _ = control.kill.notified() => {}
    }
}

fn router(inner: Arc<Inner>) -> Router {
    let on = |route: Route| {
        any(move |State(inner): State<Arc<Inner>>, req: Request| dispatch(inner, route, req))
    };
    Router::new()
        .route("/v1/embeddings", on(Route::OpenaiEmbeddings))
        .route("/embeddings", on(Route::OpenaiEmbeddings))
        .route("/v1/models", on(Route::OpenaiModels))
        .route("/v1/models/{*id}", on(Route::OpenaiModels))
        .route("/api/embed", on(Route::OllamaEmbed))
        .route("/api/embeddings", on(Route::OllamaEmbeddings))
        .route("/api/tags", on(Route::OllamaTags))
        .route("/api/show", on(Route::OllamaShow))
        .route("/api/version", on(Route::OllamaVersion))
        .route("/", on(Route::OllamaRoot))
        .fallback(on(Route::NotFound))
        .with_state(inner)
}

// ---------------------------------------------------------------------------
// One request

/// What a route answers, before the body faults.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    /// Inputs embedded (successful embedding answers only).
    pub(crate) inputs: u64,
    /// Tokens of those inputs.
    pub(crate) tokens: u64,
}

pub(crate) const JSON: &str = "application/json";
pub(crate) const OLLAMA_JSON: &str = "application/json; charset=utf-8";

impl Reply {
    pub(crate) fn json(
        status: StatusCode,
        content_type: &'static str,
        value: &impl Serialize,
    ) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_default();
        Reply::bytes(status, content_type, body)
    }

    pub(crate) fn bytes(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Self {
        Reply {
            status,
            headers: HeaderMap::new(),
            content_type,
            body,
            inputs: 0,
            tokens: 0,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl AsRef<str>) -> Self {
        if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
            self.headers.insert(HeaderName::from_static(name), v);
        }
        self
    }
}

/// What a route handler gets.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) inner: &'a Inner,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) path: &'a str,
    pub(crate) body: &'a [u8],
    pub(crate) rows: &'a [RowFault],
}

fn expected_method(route: Route) -> &'static [Method] {
    match route {
        Route::OpenaiEmbeddings
        | Route::OllamaEmbed
        | Route::OllamaEmbeddings
        | Route::OllamaShow => &[Method::POST],
        Route::OpenaiModels | Route::OllamaTags | Route::OllamaVersion | Route::OllamaRoot => {
            &[Method::GET, Method::HEAD]
        }
        _ => &[],
    }
}

async fn dispatch(inner: Arc<Inner>, route: Route, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let control = parts.extensions.get::<Arc<ConnControl>>().cloned();
    // An error here is a body over MAX_BODY or a client gone mid-body.
    let (body, too_large_body) = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => (b, false),
        Err(_) => (Bytes::new(), true),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let seq = lock(&inner.log).push(&parts.method, path, route, &parts.headers, &body);

    let fired = if inner.has_faults.load(Ordering::Acquire) {
        faults::evaluate(&mut lock(&inner.faults), route)
    } else {
        faults::Fired::default()
    };
    if fired.count > 0 {
        lock(&inner.stats).faults += fired.count;
    }
    if !fired.latency.is_zero() {
        tokio::time::sleep(fired.latency).await;
    }

    let reply = match fired.preempt {
        Some(Preempt::Hang) => {
            finish(&inner, seq, route, 0, 0, 0);
            return std::future::pending().await;
        }
        Some(Preempt::Reset) => {
            finish(&inner, seq, route, 0, 0, 0);
            if let Some(control) = control {
                control.reset();
            }
            return std::future::pending().await;
        }
        Some(Preempt::Status(s)) => status_fault(route, &s),
        Some(Preempt::RateLimited(r)) => rate_limited_fault(&inner, route, &r),
        None => {
            let methods = expected_method(route);
            if !methods.is_empty() && !methods.contains(&parts.method) {
                method_not_allowed(route, &parts.method, path)
            } else if too_large_body {
                too_large(route)
            } else {
                let ctx = Ctx {
                    inner: &inner,
                    headers: &parts.headers,
                    path,
                    body: &body,
                    rows: &fired.rows,
                };
                match route {
                    Route::OpenaiEmbeddings => openai::embeddings(&ctx),
                    Route::OpenaiModels => openai::models(&ctx),
                    Route::OllamaEmbed => ollama::embed(&ctx),
                    Route::OllamaEmbeddings => ollama::embeddings(&ctx),
                    Route::OllamaTags => ollama::tags(&ctx),
                    Route::OllamaShow => ollama::show(&ctx),
                    Route::OllamaVersion => ollama::version(&ctx),
                    Route::OllamaRoot => Reply::bytes(
                        StatusCode::OK,
                        "text/plain; charset=utf-8",
                        b"Ollama is running".to_vec(),
                    ),
                    _ => not_found(&parts.method, path),
                }
            }
        }
    };
    let mut reply = reply;
    if (route.is_embedding() || route.is_openai())
        && !reply.headers.contains_key("x-ratelimit-limit-requests")
    {
        lock(&inner.limits).peek().write(&mut reply.headers);
    }
    finish(
        &inner,
        seq,
        route,
        reply.status.as_u16(),
        reply.inputs,
        reply.tokens,
    );
    into_response(reply, fired.body)
}

fn finish(inner: &Inner, seq: u64, route: Route, status: u16, inputs: u64, tokens: u64) {
    lock(&inner.log).set_status(seq, status);
    let mut stats = lock(&inner.stats);
    stats.record(route, status);
    stats.inputs += inputs;
    stats.tokens += tokens;
}

fn into_response(reply: Reply, body_fault: Option<BodyFault>) -> Response {
    let Reply {
        status,
        mut headers,
        content_type,
        mut body,
        ..
    } = reply;
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let body = match body_fault {
        None => Body::from(body),
        Some(BodyFault::MalformedJson) => {
            body.truncate(body.len() / 2);
            body.extend_from_slice(b"<!-- not json");
            Body::from(body)
        }
        Some(BodyFault::Truncate) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            let mut bytes = Bytes::from(body);
            let first = bytes.split_to(bytes.len() / 2);
            // The first half goes out (hyper flushes while the next chunk is
            // pending), then the body fails and hyper closes the connection.
            let rest = futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Err::<Bytes, _>(std::io::Error::other("truncated by an injected fault"))
            });
            let stream = futures::StreamExt::chain(
                futures::stream::once(async move { Ok::<_, std::io::Error>(first) }),
                rest,
            );
            Body::from_stream(stream)
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

// ---------------------------------------------------------------------------
// Errors in each provider's shape

#[derive(Serialize)]
struct OpenAiErrorBody<'a> {
    error: OpenAiError<'a>,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// `{error: {message, type, param, code}}`.
pub(crate) fn openai_error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Reply {
    Reply::json(
        status,
        JSON,
        &OpenAiErrorBody {
            error: OpenAiError {
                message,
                kind,
                param,
                code,
            },
        },
    )
}

#[derive(Serialize)]
struct OllamaErrorBody<'a> {
    error: &'a str,
}

/// `{error: "..."}`.
pub(crate) fn ollama_error(status: StatusCode, message: &str) -> Reply {
    Reply::json(status, OLLAMA_JSON, &OllamaErrorBody { error: message })
}

fn status_fault(route: Route, fault: &StatusFault) -> Reply {
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (message, kind, code) = match fault.status {
        400 => ("Bad request.", "invalid_request_error", None),
        401 => (
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => (
            "You are not allowed to use this model.",
            "invalid_request_error",
            Some("permission_denied"),
        ),
        404 => (
            "The model does not exist or you do not have access to it.",
            "invalid_request_error",
            Some("model_not_found"),
        ),
        408 => ("Request timed out.", "timeout", None),
        429 => (
            "Rate limit reached. Please try again later.",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        500 => (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        502 => ("Bad gateway.", "server_error", None),
        503 => (
            "The engine is currently overloaded, please try again later.",
            "server_error",
            None,
        ),
        504 => ("Gateway timeout.", "server_error", None),
        s if s >= 500 => (
            "The server had an error while processing your request.",
            "server_error",
            None,
        ),
        _ => ("The request failed.", "invalid_request_error", None),
    };
    let message = fault.message.as_deref().unwrap_or(message);
    if route.is_ollama() {
        return ollama_error(status, message);
    }
    openai_error(
        status,
        message,
        fault.error_type.as_deref().unwrap_or(kind),
        None,
        fault.code.as_deref().or(code),
    )
}

fn rate_limited_fault(inner: &Inner, route: Route, fault: &RateLimitedFault) -> Reply {
    let mut reply = if route.is_ollama() {
        ollama_error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded")
    } else {
        openai_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached for requests. Please try again later.",
            "requests",
            None,
            Some("rate_limit_exceeded"),
        )
    };
    if let Some(secs) = fault.retry_after_secs {
        reply = if fault.http_date {
            let at = std::time::SystemTime::now() + Duration::from_secs(secs);
            reply.header("retry-after", httpdate::fmt_http_date(at))
        } else {
            reply.header("retry-after", secs.to_string())
        };
    }
    if let Some(ms) = fault.retry_after_ms {
        reply = reply.header("retry-after-ms", ms.to_string());
    }
    if let Some(retry) = fault.should_retry {
        reply = reply.header("x-should-retry", if retry { "true" } else { "false" });
    }
    if route.is_embedding() {
        lock(&inner.limits).peek().write(&mut reply.headers);
    }
    reply
}

fn method_not_allowed(route: Route, method: &Method, path: &str) -> Reply {
    if route.is_ollama() {
        return Reply::bytes(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"405 method not allowed".to_vec(),
        );
    }
    openai_error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("Invalid method for URL ({method} {path})"),
        "invalid_request_error",
        None,
        None,
    )
}

fn too_large(route: Route) -> Reply {
    if route.is_ollama() {
        return ollama_error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    openai_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "The request body is too large.",
        "invalid_request_error",
        None,
        None,
    )
}

fn not_found(method: &Method, path: &str) -> Reply {
    if path.starts_with("/v1") {
        return openai_error(
            StatusCode::NOT_FOUND,
            &format!("Invalid URL ({method} {path})"),
            "invalid_request_error",
            None,
            None,
        );
    }
    Reply::bytes(
        StatusCode::NOT_FOUND,
        "text/plain",
        b"404 page not found".to_vec(),
    )
}
