//! The engine of the fake server: routing, faults, limits, the request log,
//! the counters and the connections. It knows no API: every route, request
//! and error body belongs to a [`Dialect`].
//!
//! Served with axum's router on hyper's HTTP/1 connections, driven by our own
//! accept loop so that a fault can reset a connection (TCP RST) and so that
//! dropping the server really ends every connection, hanging ones too.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;
use axum::routing::any;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

use super::config::{DEFAULT_REQUEST_LOG_LIMIT, FakeServerConfig, Fault, RateLimitedFault};
use super::dialect::{Dialect, EngineError, Exchange, Reply, RouteSpec};
use super::faults::{self, BodyFault, FaultState, Preempt, Target};
use super::limits::{LimitRejection, LimitSnapshot, Limits};
use super::record::{RecordedRequest, RequestLog, Stats};
use super::route::Route;
use super::tokens;

/// The largest request body accepted (413 beyond).
const MAX_BODY: usize = 64 * 1024 * 1024;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A mounted route: its dialect and its spec.
#[derive(Debug)]
struct Mounted {
    dialect: usize,
    spec: RouteSpec,
}

/// The state shared by every connection.
#[derive(Debug)]
pub(crate) struct Engine {
    dialects: Vec<Arc<dyn Dialect>>,
    routes: BTreeMap<Route, Mounted>,
    has_faults: AtomicBool,
    faults: Mutex<Vec<FaultState>>,
    limits: Mutex<Limits>,
    log: Mutex<RequestLog>,
    stats: Mutex<Stats>,
}

impl Engine {
    pub(crate) fn admit(&self, tokens: u64) -> Result<LimitSnapshot, LimitRejection> {
        let r = lock(&self.limits).acquire(tokens);
        if r.is_err() {
            lock(&self.stats).rate_limited += 1;
        }
        r
    }

    pub(crate) fn peek_limits(&self) -> LimitSnapshot {
        lock(&self.limits).peek()
    }

    /// Every name a fault may be scoped to: all, not_found, each dialect, each route.
    fn scopes(&self) -> Vec<&'static str> {
        let mut v = vec![Route::All.as_str(), Route::NotFound.as_str()];
        v.extend(self.dialects.iter().map(|d| d.name()));
        v.extend(self.routes.keys().map(|r| r.as_str()));
        v
    }

    fn check_faults(&self, faults: &[Fault]) -> Result<(), String> {
        let scopes = self.scopes();
        for (i, f) in faults.iter().enumerate() {
            if !scopes.contains(&f.route.as_str()) {
                return Err(format!(
                    "faults[{i}]: no route or dialect named {:?} on this server; known: {}",
                    f.route.as_str(),
                    scopes.join(", ")
                ));
            }
        }
        Ok(())
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
}

/// A fake server under construction: the engine's settings and the dialects
/// to mount. From [`FakeServer::builder`](crate::FakeServer::builder).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use embeddings_testkit::{FakeServer, OllamaDialect, OpenAiDialect};
/// // Only the OpenAI API, with one more model.
/// let server = FakeServer::builder()
///     .dialect(OpenAiDialect::new().model("my-model", 64))
///     .start()
///     .await?;
/// // Two dialects claiming the same path are refused.
/// let clash = FakeServer::builder()
///     .dialect(OpenAiDialect::new())
///     .dialect(OpenAiDialect::new())
///     .start()
///     .await;
/// assert!(clash.is_err());
/// # let _ = OllamaDialect::new(); Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct FakeServerBuilder {
    config: FakeServerConfig,
    dialects: Vec<Arc<dyn Dialect>>,
}

impl FakeServerBuilder {
    /// The engine's settings from `config`: host, port, faults,
    /// requests/tokens-per-minute limits, the request log's size. (Its
    /// dialect settings, such as `openai_models`, are read by the dialects'
    /// own `from_config`.)
    pub fn config(mut self, config: FakeServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Mounts a dialect.
    pub fn dialect(self, dialect: impl Dialect) -> Self {
        self.dialect_arc(Arc::new(dialect))
    }

    /// Mounts a shared dialect.
    pub fn dialect_arc(mut self, dialect: Arc<dyn Dialect>) -> Self {
        self.dialects.push(dialect);
        self
    }

    /// Mounts several dialects (a fixture's).
    pub fn dialects(mut self, dialects: impl IntoIterator<Item = Arc<dyn Dialect>>) -> Self {
        self.dialects.extend(dialects);
        self
    }

    /// Binds `config.host` (127.0.0.1 by default) on `config.port` (0: a free
    /// port) and serves on the current tokio runtime.
    ///
    /// Fails with `InvalidInput` when the configuration is invalid, when two
    /// dialects share a name, when two routes share a name or a path (say,
    /// two dialects both serving `/v1/embeddings`: give each its own
    /// server), or when a fault names a route no dialect serves; and with
    /// the bind error when the port cannot be bound.
    pub async fn start(self) -> std::io::Result<super::FakeServer> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        self.config.validate().map_err(invalid)?;
        let routes = mount(&self.dialects).map_err(invalid)?;
        let config = self.config;
        let engine = Engine {
            dialects: self.dialects,
            routes,
            has_faults: AtomicBool::new(false),
            faults: Mutex::new(Vec::new()),
            limits: Mutex::new(Limits::new(
                config.requests_per_minute,
                config.tokens_per_minute,
                config.initial_budget,
            )),
            log: Mutex::new(RequestLog::new(
                config
                    .request_log_limit
                    .unwrap_or(DEFAULT_REQUEST_LOG_LIMIT),
            )),
            stats: Mutex::new(Stats::default()),
        };
        engine.check_faults(&config.faults).map_err(invalid)?;
        engine.set_faults(config.faults);
        let router = router(&engine).map_err(invalid)?;
        let host = config.host.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let listener = TcpListener::bind((host, config.port)).await?;
        let addr = listener.local_addr()?;
        // Building the tokenizer (the limits' and the dialects' token
        // count) takes a while: not on the first request.
        tokio::task::spawn_blocking(|| {
            tokens::bpe();
        })
        .await
        .map_err(std::io::Error::other)?;
        let engine = Arc::new(engine);
        let task = tokio::spawn(accept_loop(listener, router.with_state(engine.clone())));
        Ok(super::FakeServer {
            addr,
            handle: Handle { engine, task },
        })
    }
}

/// What a running server holds: the engine, and the accept loop's task
/// (aborted on drop, which drops every connection).
#[derive(Debug)]
pub(crate) struct Handle {
    engine: Arc<Engine>,
    task: JoinHandle<()>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Handle {
    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.engine.log).snapshot(&self.engine.dialects)
    }

    pub(crate) fn stats(&self) -> Stats {
        lock(&self.engine.stats).clone()
    }

    pub(crate) fn set_faults(&self, faults: Vec<Fault>) {
        self.engine.set_faults(faults);
    }

    pub(crate) fn try_set_faults(&self, faults: Vec<Fault>) -> Result<(), String> {
        self.engine.check_faults(&faults)?;
        self.engine.set_faults(faults);
        Ok(())
    }

    pub(crate) fn reset_log(&self) {
        lock(&self.engine.log).clear();
    }

    pub(crate) fn reset_stats(&self) {
        *lock(&self.engine.stats) = Stats::default();
    }

    pub(crate) fn set_rate_limits(&self, rpm: Option<u32>, tpm: Option<u32>) {
        let mut limits = lock(&self.engine.limits);
        *limits = Limits::new(rpm, tpm, limits.initial());
    }

    pub(crate) fn dialects(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.engine.dialects.iter().map(|d| d.name())
    }

    pub(crate) fn routes(&self) -> impl Iterator<Item = Route> + '_ {
        self.engine.routes.keys().copied()
    }
}

/// A path with its parameters' names erased (`/v1/models/{*id}` → `/v1/models/{*}`),
/// so that two spellings of one pattern are seen as the same path.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with("{*") {
                "{*}"
            } else if seg.starts_with('{') {
                "{}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Collects every dialect's routes, refusing names and paths claimed twice.
fn mount(dialects: &[Arc<dyn Dialect>]) -> Result<BTreeMap<Route, Mounted>, String> {
    let mut names: BTreeMap<&'static str, &'static str> = BTreeMap::new();
    let mut routes: BTreeMap<Route, Mounted> = BTreeMap::new();
    let mut paths: BTreeMap<String, (String, &'static str, Route)> = BTreeMap::new();
    for d in dialects {
        let name = d.name();
        if name.is_empty()
            || [Route::All, Route::NotFound]
                .iter()
                .any(|r| r.as_str() == name)
        {
            return Err(format!("a dialect cannot be named {name:?}"));
        }
        if names.insert(name, name).is_some() {
            return Err(format!(
                "two dialects named {name:?} on one server: mount each once"
            ));
        }
    }
    for (i, d) in dialects.iter().enumerate() {
        for spec in d.routes() {
            let route = spec.route;
            if route == Route::All || route == Route::NotFound || names.contains_key(route.as_str())
            {
                return Err(format!(
                    "dialect {}: a route cannot be named {:?} (the name of a scope)",
                    d.name(),
                    route.as_str()
                ));
            }
            if let Some(other) = routes.get(&route) {
                return Err(format!(
                    "route {route} is declared by dialect {} and by dialect {}",
                    dialects[other.dialect].name(),
                    d.name()
                ));
            }
            for path in &spec.paths {
                if !path.starts_with('/') {
                    return Err(format!(
                        "dialect {}: route {route}: path {path:?} must start with /",
                        d.name()
                    ));
                }
                if let Some((other_path, other, other_route)) =
                    paths.insert(shape(path), (path.clone(), d.name(), route))
                {
                    return Err(format!(
                        "path {path} is served by dialect {} (route {route}) and by dialect \
                         {other} (route {other_route}, {other_path}): dialects whose routes \
                         collide need separate servers (one FakeServer each)",
                        d.name()
                    ));
                }
            }
            routes.insert(route, Mounted { dialect: i, spec });
        }
    }
    Ok(routes)
}

fn router(engine: &Engine) -> Result<Router<Arc<Engine>>, String> {
    let on = |route: Route| {
        any(move |State(engine): State<Arc<Engine>>, req: Request| dispatch(engine, route, req))
    };
    let mut router = Router::new();
    for (route, mounted) in &engine.routes {
        for path in &mounted.spec.paths {
            // axum panics on a pattern it cannot take (an overlap the
            // check above does not see): turn that into an error.
            let r = std::mem::take(&mut router);
            let path = path.clone();
            let handler = on(*route);
            router = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                r.route(&path, handler)
            }))
            .map_err(|_| {
                format!(
                    "route {route}: path {} conflicts with another route",
                    mounted.spec.paths.join(", ")
                )
            })?;
        }
    }
    Ok(router.fallback(on(Route::NotFound)))
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

// ---------------------------------------------------------------------------
// One request

async fn dispatch(engine: Arc<Engine>, route: Route, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let control = parts.extensions.get::<Arc<ConnControl>>().cloned();
    // An error here is a body over MAX_BODY or a client gone mid-body.
    let (body, too_large_body) = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => (b, false),
        Err(_) => (Bytes::new(), true),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mounted = engine.routes.get(&route);
    let dialect = mounted.map(|m| &engine.dialects[m.dialect]);
    let seq = lock(&engine.log).push(
        &parts.method,
        path,
        route,
        mounted.map(|m| m.dialect),
        &parts.headers,
        &body,
    );

    let fired = if engine.has_faults.load(Ordering::Acquire) {
        let target = Target {
            route,
            dialect: dialect.map(|d| d.name()),
            embedding: mounted.is_some_and(|m| m.spec.embedding),
        };
        faults::evaluate(&mut lock(&engine.faults), target)
    } else {
        faults::Fired::default()
    };
    if fired.count > 0 {
        lock(&engine.stats).faults += fired.count;
    }
    if !fired.latency.is_zero() {
        tokio::time::sleep(fired.latency).await;
    }

    let error = |e: &EngineError<'_>| match dialect {
        Some(d) => d.error(route, e),
        None => Reply::error(e.status(), &e.message()),
    };
    let mut reply = match &fired.preempt {
        Some(Preempt::Hang) => {
            finish(&engine, seq, route, 0, 0, 0);
            return std::future::pending().await;
        }
        Some(Preempt::Reset) => {
            finish(&engine, seq, route, 0, 0, 0);
            if let Some(control) = control {
                control.reset();
            }
            return std::future::pending().await;
        }
        Some(Preempt::Status(s)) => error(&EngineError::Status(s)),
        Some(Preempt::RateLimited(r)) => {
            let mut reply = error(&EngineError::RateLimited(r));
            retry_headers(&mut reply, r);
            reply
        }
        None => match (dialect, mounted) {
            (Some(d), Some(m)) => {
                if !m.spec.methods.is_empty() && !m.spec.methods.contains(&parts.method) {
                    error(&EngineError::MethodNotAllowed {
                        method: &parts.method,
                        path,
                    })
                } else if too_large_body {
                    error(&EngineError::BodyTooLarge)
                } else {
                    d.handle(&Exchange {
                        engine: &engine,
                        route,
                        method: &parts.method,
                        headers: &parts.headers,
                        path,
                        body: &body,
                        row_faults: &fired.rows,
                    })
                }
            }
            _ => not_found(&engine, &parts.method, path),
        },
    };
    if mounted.is_some_and(|m| m.spec.rate_limit_headers)
        && !reply.headers.contains_key("x-ratelimit-limit-requests")
    {
        engine.peek_limits().write(&mut reply.headers);
    }
    finish(
        &engine,
        seq,
        route,
        reply.status.as_u16(),
        reply.inputs,
        reply.tokens,
    );
    into_response(reply, fired.body)
}

/// `retry-after` (seconds or an HTTP date), `retry-after-ms`, `x-should-retry`.
fn retry_headers(reply: &mut Reply, fault: &RateLimitedFault) {
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            reply
                .headers
                .insert(header::HeaderName::from_static(name), v);
        }
    };
    if let Some(secs) = fault.retry_after_secs {
        if fault.http_date {
            let at = std::time::SystemTime::now() + Duration::from_secs(secs);
            put("retry-after", httpdate::fmt_http_date(at));
        } else {
            put("retry-after", secs.to_string());
        }
    }
    if let Some(ms) = fault.retry_after_ms {
        put("retry-after-ms", ms.to_string());
    }
    if let Some(retry) = fault.should_retry {
        put(
            "x-should-retry",
            (if retry { "true" } else { "false" }).into(),
        );
    }
}

/// A path no route serves: the first dialect that claims it answers, else
/// a plain-text 404 (what Go's mux, so Ollama, answers).
fn not_found(engine: &Engine, method: &Method, path: &str) -> Reply {
    engine
        .dialects
        .iter()
        .find_map(|d| d.not_found(method, path))
        .unwrap_or_else(|| Reply::bytes(404, "text/plain", b"404 page not found".to_vec()))
}

fn finish(engine: &Engine, seq: u64, route: Route, status: u16, inputs: u64, tokens: u64) {
    lock(&engine.log).set_status(seq, status);
    let mut stats = lock(&engine.stats);
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
