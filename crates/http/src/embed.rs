//! The steps every embedding call of an HTTP provider shares, so that a
//! provider crate keeps only its request body, its answer decoder and its
//! error codes: [`HttpClient::embed`] (the body of `Embedder::embed`),
//! [`HttpClient::call_rows`] (one JSON request whose answer holds rows),
//! [`HttpClient::call_ok`] (the same without the rows, for a provider that
//! reads more of the answer) and [`InfoCell`] (the `ProviderInfo` a
//! provider learns from its first answer or from the server).

use std::future::Future;
use std::sync::OnceLock;

use embeddings_core::{EmbedRequest, Embeddings, Error, ProviderInfo, Result};
use reqwest::header::HeaderMap;

use crate::body::BodyCap;
use crate::client::{Answer, HttpClient};
use crate::status::rate_limit_snapshot;
use crate::text::Masker;

/// A provider's [`ProviderInfo`]: the configured one, and the one it
/// learned (the dimension of its first answer, or what `prepare()` read
/// from the server), set once. `Embedder::info` returns [`InfoCell::get`],
/// a cheap borrow.
///
/// ```
/// use embeddings_core::ProviderInfo;
/// use embeddings_http::InfoCell;
/// let info = InfoCell::new(ProviderInfo::new("example", "m", 0));
/// assert_eq!(info.get().dimension, 0);
/// info.learn_dimension(384); // the first answer's rows
/// info.learn_dimension(512); // later answers change nothing
/// assert_eq!((info.get().dimension, info.configured().dimension), (384, 0));
/// ```
#[derive(Debug)]
pub struct InfoCell {
    configured: ProviderInfo,
    learned: OnceLock<ProviderInfo>,
}

impl InfoCell {
    /// The configured info; nothing learned yet.
    pub fn new(configured: ProviderInfo) -> Self {
        InfoCell {
            configured,
            learned: OnceLock::new(),
        }
    }

    /// The learned info once there is one, else the configured one.
    pub fn get(&self) -> &ProviderInfo {
        self.learned.get().unwrap_or(&self.configured)
    }

    /// The info as configured (before anything was learned).
    pub fn configured(&self) -> &ProviderInfo {
        &self.configured
    }

    /// Whether something was learned.
    pub fn is_learned(&self) -> bool {
        self.learned.get().is_some()
    }

    /// Records the dimension `dim` of an answer when none is known yet
    /// (the configured info said 0 and nothing was learned): the first
    /// answer's dimension is kept; a 0 or a later answer changes nothing.
    pub fn learn_dimension(&self, dim: usize) {
        if dim > 0 && self.get().dimension == 0 {
            let mut learned = self.configured.clone();
            learned.dimension = dim;
            let _ = self.learned.set(learned);
        }
    }

    /// Records a whole learned info (what `prepare()` read from the
    /// server); false, and nothing changed, when one is already recorded.
    pub fn learn(&self, info: ProviderInfo) -> bool {
        self.learned.set(info).is_ok()
    }
}

impl HttpClient {
    /// The body of a provider's `Embedder::embed`: the request's output
    /// type checked against `info` (`InvalidInput` when the provider does
    /// not produce it), an empty request answered without a request (an
    /// empty batch of the requested type and `info`'s dimension), otherwise
    /// `post(request)`, whose error leaves through [`HttpClient::finish`]
    /// (named, masked).
    ///
    /// ```ignore
    /// async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
    ///     self.client.embed(self.info(), request, |r| self.post(r)).await
    /// }
    /// ```
    pub async fn embed<'r, F, Fut>(
        &self,
        info: &ProviderInfo,
        request: EmbedRequest<'r>,
        post: F,
    ) -> Result<Embeddings>
    where
        F: FnOnce(EmbedRequest<'r>) -> Fut,
        Fut: Future<Output = Result<Embeddings>>,
    {
        info.check_output_type(&request)?;
        if request.is_empty() {
            return Ok(Embeddings::empty_of(request.output_type, info.dimension));
        }
        post(request).await.map_err(|e| self.finish(e))
    }

    /// [`HttpClient::call`], and an answer whose status is not 2xx turned
    /// into the provider's error: `parse_error(status, headers, body,
    /// masker)`, with the error body (at most
    /// [`MAX_ERROR_BODY`](crate::MAX_ERROR_BODY) bytes) and this client's
    /// masker, so that nothing the server echoes shows a secret. For a
    /// provider that reads more of a success than [`HttpClient::call_rows`]
    /// does (headers that carry the usage, say).
    pub async fn call_ok<P>(
        &self,
        request: reqwest::RequestBuilder,
        host: &str,
        cap: BodyCap,
        parse_error: P,
    ) -> Result<Answer>
    where
        P: FnOnce(u16, &HeaderMap, &[u8], &Masker) -> Error,
    {
        let answer = self.call(request, host, cap).await?;
        if !answer.is_success() {
            return Err(parse_error(
                answer.status,
                &answer.headers,
                &answer.body,
                self.masker(),
            ));
        }
        Ok(answer)
    }

    /// One embedding request whose answer holds rows, the steps every JSON
    /// provider shares: [`HttpClient::call_ok`] (the body within `cap`, an
    /// error status through `parse_error`), then `decode(body)` (the
    /// provider's envelope, on [`crate::json`]), then the answer's
    /// `x-ratelimit-*` headers on the result
    /// ([`rate_limit_snapshot`]). A dimension learned from the rows goes
    /// to the provider's [`InfoCell::learn_dimension`].
    ///
    /// ```ignore
    /// let dim = self.info.get().dimension;
    /// let out = self.client.call_rows(
    ///     self.client.post_json(&self.url, body),
    ///     &self.shown,
    ///     BodyCap::Rows { rows, dim, key: "embedding" },
    ///     parse_error_masked,
    ///     |body| decode_response(body, rows, dim),
    /// ).await?;
    /// self.info.learn_dimension(out.dim());
    /// ```
    pub async fn call_rows<P, D>(
        &self,
        request: reqwest::RequestBuilder,
        host: &str,
        cap: BodyCap,
        parse_error: P,
        decode: D,
    ) -> Result<Embeddings>
    where
        P: FnOnce(u16, &HeaderMap, &[u8], &Masker) -> Error,
        D: FnOnce(&[u8]) -> Result<Embeddings>,
    {
        let answer = self.call_ok(request, host, cap, parse_error).await?;
        let mut out = decode(&answer.body)?;
        out.set_rate_limits(rate_limit_snapshot(&answer.headers));
        Ok(out)
    }
}
