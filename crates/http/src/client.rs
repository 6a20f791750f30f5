//! The HTTP client of a provider: built once, with every rule of a
//! provider's transport applied.

use std::fmt;
use std::time::Duration;

use embeddings_core::{Error, ErrorKind, ExposeSecret, Result, SecretString};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::body::{BodyCap, BodyDecoder, read_body, read_body_into, read_error_body};
use crate::status::{RedirectRefused, transport_error};
use crate::text::Masker;
use crate::url::{Url, redact_url, same_origin};

/// The default TCP/TLS connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Same-origin redirects followed at most (a cross-origin one never is).
pub const MAX_REDIRECTS: usize = 5;

/// How a provider's key travels. It is only ever exposed into the header
/// (or query parameter) it names, marked sensitive so that no `Debug` of
/// the request shows it.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Auth {
    /// No key.
    #[default]
    None,
    /// `Authorization: Bearer <key>`.
    Bearer(SecretString),
    /// `<name>: <key>` (Azure's `api-key`, Gemini's `x-goog-api-key`, ...).
    Header(HeaderName, SecretString),
    /// `?<name>=<key>` on every request (for APIs that accept nothing else;
    /// prefer a header). The URL is never printed with it.
    Query(String, SecretString),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Bearer(_) => f.write_str("Bearer([redacted])"),
            Auth::Header(n, _) => write!(f, "Header({n}: [redacted])"),
            Auth::Query(n, _) => write!(f, "Query({n}=[redacted])"),
        }
    }
}

impl Auth {
    /// The key, when there is one.
    pub fn key(&self) -> Option<&SecretString> {
        match self {
            Auth::None => None,
            Auth::Bearer(k) | Auth::Header(_, k) | Auth::Query(_, k) => Some(k),
        }
    }
}

fn sensitive(value: &str, what: &str) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        Error::config(format!(
            "{what} holds characters that cannot be sent in an HTTP header"
        ))
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Builds an [`HttpClient`].
///
/// ```
/// use std::time::Duration;
/// use embeddings_http::{Auth, HttpClient};
/// let client = HttpClient::builder("example")
///     .auth(Auth::Bearer("sk-secret".into()))
///     .header("x-team", "search")?
///     .connect_timeout(Duration::from_secs(5))
///     .build()?;
/// assert!(!format!("{client:?}").contains("sk-secret"));
/// # Ok::<(), embeddings_core::Error>(())
/// ```
#[derive(Debug)]
pub struct HttpClientBuilder {
    provider: &'static str,
    user_agent: String,
    connect_timeout: Duration,
    read_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    headers: HeaderMap,
    header_names: Vec<String>,
    auth: Auth,
    masker: Masker,
    connect_hint: Option<String>,
}

impl HttpClientBuilder {
    /// Sets the user agent (default `embeddings-rs/<version> (<provider>)`).
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// TCP/TLS connect timeout (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Longest wait for the next bytes of an answer (default none: the
    /// timeout layer bounds each attempt).
    pub fn read_timeout(mut self, t: Option<Duration>) -> Self {
        self.read_timeout = t;
        self
    }

    /// Deadline of a whole request (default none: the timeout layer's).
    pub fn request_timeout(mut self, t: Option<Duration>) -> Self {
        self.request_timeout = t;
        self
    }

    /// How the key travels.
    pub fn auth(mut self, auth: Auth) -> Self {
        if let Some(k) = auth.key() {
            self.masker.add(k.clone());
        }
        self.auth = auth;
        self
    }

    /// A header sent with every request, not secret (`OpenAI-Organization`).
    pub fn header(mut self, name: &str, value: &str) -> Result<Self> {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::config(format!("{name:?} is not a valid HTTP header name")))?;
        let v = HeaderValue::from_str(value).map_err(|_| {
            Error::config(format!(
                "the value of header {name:?} is not a valid HTTP header value"
            ))
        })?;
        self.headers.insert(n, v);
        Ok(self)
    }

    /// A configured header whose value may be a credential: sent marked
    /// sensitive, never shown, masked in every server excerpt. `section`
    /// names the setting in errors (`openai.headers`).
    pub fn secret_header(mut self, section: &str, name: &str, value: &str) -> Result<Self> {
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Error::config(format!(
                "`{section}`: {name:?} is not a valid HTTP header name"
            ))
        })?;
        let v = sensitive(value, &format!("`{section}`: the value of {name:?}"))?;
        self.headers.insert(n, v);
        self.header_names.push(name.to_owned());
        self.masker.add(SecretString::from(value.to_owned()));
        Ok(self)
    }

    /// Whether a header of that name is configured (such as a hand-set
    /// `Authorization`).
    pub fn has_header(&self, name: &str) -> bool {
        self.headers.contains_key(name)
    }

    /// Text appended to a connection failure ("is the server running?").
    pub fn connect_hint(mut self, hint: impl Into<String>) -> Self {
        self.connect_hint = Some(hint.into());
        self
    }

    /// The client: rustls, the timeouts, **no transport retry** (reqwest's
    /// default retry policy is off: a provider sends one request per call),
    /// the headers (credentials marked sensitive), and the redirect policy:
    /// a redirect to another origin (scheme, host, port) is never followed
    /// and fails the call with an `InvalidConfig` error naming both
    /// addresses, so no credential ever leaves the origin it was configured
    /// for; same-origin redirects are followed, at most [`MAX_REDIRECTS`].
    pub fn build(self) -> Result<HttpClient> {
        let mut headers = self.headers;
        let query = match self.auth {
            Auth::None => None,
            Auth::Bearer(k) => {
                let v = sensitive(&format!("Bearer {}", k.expose_secret()), "the API key")?;
                headers.insert(header::AUTHORIZATION, v);
                None
            }
            Auth::Header(name, k) => {
                headers.insert(name, sensitive(k.expose_secret(), "the API key")?);
                None
            }
            Auth::Query(name, k) => Some((name, k)),
        };
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let Some(first) = attempt.previous().first() else {
                return attempt.follow();
            };
            let last = attempt.previous().last().unwrap_or(first);
            if !same_origin(first, attempt.url()) {
                let e = RedirectRefused {
                    from: redact_url(last),
                    to: redact_url(attempt.url()),
                    cross_origin: true,
                };
                return attempt.error(e);
            }
            if attempt.previous().len() > MAX_REDIRECTS {
                let e = RedirectRefused {
                    from: redact_url(last),
                    to: redact_url(attempt.url()),
                    cross_origin: false,
                };
                return attempt.error(e);
            }
            attempt.follow()
        });
        let mut b = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(self.user_agent)
            .connect_timeout(self.connect_timeout)
            .retry(reqwest::retry::never())
            .redirect(policy);
        if let Some(t) = self.read_timeout {
            b = b.read_timeout(t);
        }
        if let Some(t) = self.request_timeout {
            b = b.timeout(t);
        }
        let client = b.build().map_err(|e| {
            Error::new(ErrorKind::Internal, "cannot build the HTTP client")
                .with_provider(self.provider)
                .with_source(e.without_url())
        })?;
        Ok(HttpClient {
            client,
            provider: self.provider,
            query,
            masker: self.masker,
            header_names: self.header_names,
            connect_hint: self.connect_hint,
        })
    }
}

/// A provider's HTTP client (see [`HttpClientBuilder::build`] for its
/// rules), and the one way its answers are read: [`HttpClient::call`].
///
/// `Debug` shows the provider and the names of configured headers, never
/// a key or a header value.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    provider: &'static str,
    query: Option<(String, SecretString)>,
    masker: Masker,
    header_names: Vec<String>,
    connect_hint: Option<String>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("provider", &self.provider)
            .field("headers", &self.header_names)
            .field("query_key", &self.query.as_ref().map(|(n, _)| n))
            .finish_non_exhaustive()
    }
}

/// A complete answer: status, headers and the (capped) body.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (for an error status, at most [`MAX_ERROR_BODY`](crate::MAX_ERROR_BODY)
    /// bytes; empty for a success fed to a decoder by [`HttpClient::call_into`]).
    pub body: Vec<u8>,
    /// The body's length as received (also when it went to a decoder).
    pub received: usize,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl HttpClient {
    /// A builder for `provider` (the registered name, used in errors).
    pub fn builder(provider: &'static str) -> HttpClientBuilder {
        HttpClientBuilder {
            provider,
            user_agent: format!("embeddings-rs/{} ({provider})", env!("CARGO_PKG_VERSION")),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: None,
            request_timeout: None,
            headers: HeaderMap::new(),
            header_names: Vec::new(),
            auth: Auth::None,
            masker: Masker::new(),
            connect_hint: None,
        }
    }

    /// The masker of this client's secrets (its key, its secret headers).
    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// The names of the configured secret headers (for a provider's `Debug`).
    pub fn header_names(&self) -> &[String] {
        &self.header_names
    }

    /// A request (the query key, if any, added).
    pub fn request(&self, method: reqwest::Method, url: &Url) -> reqwest::RequestBuilder {
        match &self.query {
            Some((name, key)) => {
                let mut url = url.clone();
                url.query_pairs_mut().append_pair(name, key.expose_secret());
                self.client.request(method, url)
            }
            None => self.client.request(method, url.clone()),
        }
    }

    /// A `POST` of a JSON body.
    pub fn post_json(&self, url: &Url, body: Vec<u8>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(body)
    }

    /// Sends the request and reads the answer: a success body within `cap`
    /// (else `InvalidResponse`), an error body up to
    /// [`MAX_ERROR_BODY`](crate::MAX_ERROR_BODY). Transport failures are
    /// typed errors naming `host` (a redacted origin). Statuses are left to
    /// the provider (see [`crate::status_error`]).
    pub async fn call(
        &self,
        request: reqwest::RequestBuilder,
        host: &str,
        cap: BodyCap,
    ) -> Result<Answer> {
        let (resp, status, headers) = self.send(request, host).await?;
        let body = if resp.status().is_success() {
            read_body(resp, cap, host)
                .await
                .map_err(|e| self.finish(e))?
        } else {
            read_error_body(resp).await
        };
        Ok(Answer {
            status,
            headers,
            received: body.len(),
            body,
        })
    }

    /// [`HttpClient::call`] with a success body fed to `decoder` as it
    /// streams in ([`read_body_into`]: the whole answer is never held),
    /// and an error status turned into the provider's error by
    /// `parse_error(status, headers, body, masker)` as in
    /// [`HttpClient::call_ok`]. The answer's `body` is empty.
    pub async fn call_into<P>(
        &self,
        request: reqwest::RequestBuilder,
        host: &str,
        cap: BodyCap,
        decoder: &mut (dyn BodyDecoder + Send),
        parse_error: P,
    ) -> Result<Answer>
    where
        P: FnOnce(u16, &HeaderMap, &[u8], &Masker) -> Error,
    {
        let (resp, status, headers) = self.send(request, host).await?;
        if !resp.status().is_success() {
            let body = read_error_body(resp).await;
            return Err(parse_error(status, &headers, &body, self.masker()));
        }
        let received = read_body_into(resp, cap, host, decoder)
            .await
            .map_err(|e| self.finish(e))?;
        Ok(Answer {
            status,
            headers,
            body: Vec::new(),
            received,
        })
    }

    /// Sends the request: the response, its status and its headers (taken).
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        host: &str,
    ) -> Result<(reqwest::Response, u16, HeaderMap)> {
        let mut resp = request
            .send()
            .await
            .map_err(|e| self.finish(transport_error(e, host, self.connect_hint.as_deref())))?;
        let status = resp.status().as_u16();
        let headers = std::mem::take(resp.headers_mut());
        Ok((resp, status, headers))
    }

    /// A provider error: names the provider, and holds none of this
    /// client's secrets (whole or in part) nor anything key-shaped.
    pub fn finish(&self, e: Error) -> Error {
        let e = if e.provider().is_none() {
            e.with_provider(self.provider)
        } else {
            e
        };
        self.masker.error(e)
    }
}
