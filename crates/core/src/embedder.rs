//! The `Embedder` trait and what a provider tells the layers about itself.

use std::borrow::Cow;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

use crate::embeddings::Embeddings;
use crate::error::{Error, ErrorKind, Result};
use crate::request::{EmbedRequest, InputType, OutputType};

/// What a provider tells the layers to plan with.
///
/// Built with [`ProviderInfo::new`] (generous limits) and adjusted field by
/// field by the provider; `#[non_exhaustive]` so that fields can be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderInfo {
    /// The registered provider name (`"openai"`, `"ollama"`, `"mock"`, ...).
    pub provider: Cow<'static, str>,
    /// The model requests are sent for.
    pub model: String,
    /// The dimension of every returned vector; `0` while the provider has not
    /// learned it yet (a server-side model whose size is discovered on first use).
    pub dimension: usize,
    /// Most inputs one request may carry.
    pub max_batch_size: usize,
    /// Most tokens one input may have.
    pub max_input_tokens: usize,
    /// Most tokens one request may carry, summed over its inputs.
    pub max_batch_tokens: usize,
    /// Whether returned vectors have unit L2 norm.
    pub normalized: bool,
    /// The input types the provider's API honours natively (sent on the
    /// wire); for the others a configured `[prompts]` prompt is applied, or
    /// the type is ignored. Empty: none.
    pub input_types: &'static [InputType],
    /// The output types the provider produces natively, besides `F32`
    /// (which every provider produces). `Binary` and `Ubinary` are computed
    /// client-side for the others.
    pub output_types: &'static [OutputType],
    /// Whether the model runs in this process (no network): the layers use
    /// defaults that fit (no retry of compute errors, no adaptive rate limit).
    pub in_process: bool,
    /// How many sub-batches of one call the batch layer sends at once when
    /// `batch.concurrency` is not configured. [`ProviderInfo::new`] gives 4,
    /// which fits a server that computes one batch at a time (Ollama, TEI on
    /// the user's hardware: requests beyond what it computes only wait in its
    /// queue, where they may run into their timeout) and in-process models;
    /// hosted services are built with [`ProviderInfo::hosted`]
    /// ([`ProviderInfo::HOSTED_CONCURRENCY`]).
    pub concurrency: usize,
    /// The vector-changing settings beyond provider and model
    /// (`;key=value` each), see [`ProviderInfo::fingerprint`].
    settings: String,
}

impl ProviderInfo {
    /// The [`concurrency`](ProviderInfo::concurrency) of a hosted service
    /// (OpenAI, Cohere, Voyage, ...): such a service limits requests and
    /// tokens per minute (which the rate-limit layer paces), not requests in
    /// flight, so a call's sub-batches go out together and its wall time is
    /// about one request's latency instead of one per four sub-batches.
    pub const HOSTED_CONCURRENCY: usize = 16;

    /// Info with generous limits; providers override what they know.
    pub fn new(
        provider: impl Into<Cow<'static, str>>,
        model: impl Into<String>,
        dimension: usize,
    ) -> Self {
        ProviderInfo {
            provider: provider.into(),
            model: model.into(),
            dimension,
            max_batch_size: 2048,
            max_input_tokens: 8192,
            max_batch_tokens: 300_000,
            normalized: true,
            input_types: &[],
            output_types: &[],
            in_process: false,
            concurrency: 4,
            settings: String::new(),
        }
    }

    /// [`ProviderInfo::new`] for a hosted service: its
    /// [`concurrency`](ProviderInfo::concurrency) is
    /// [`ProviderInfo::HOSTED_CONCURRENCY`].
    ///
    /// ```
    /// let info = embeddings_core::ProviderInfo::hosted("openai", "text-embedding-3-small", 1536);
    /// assert_eq!(info.concurrency, 16);
    /// ```
    pub fn hosted(
        provider: impl Into<Cow<'static, str>>,
        model: impl Into<String>,
        dimension: usize,
    ) -> Self {
        ProviderInfo {
            concurrency: Self::HOSTED_CONCURRENCY,
            ..ProviderInfo::new(provider, model, dimension)
        }
    }

    /// Adds a setting that changes the vectors (a `dimensions` parameter sent
    /// to the server, a truncation mode, the endpoint of a compatible server,
    /// ...) to the [fingerprint](ProviderInfo::fingerprint). Never a secret.
    pub fn add_fingerprint(&mut self, key: &str, value: impl std::fmt::Display) {
        use std::fmt::Write;
        let _ = write!(self.settings, ";{key}={value}");
    }

    /// Every setting that changes the vectors: `provider=..;model=..` and
    /// what the provider added with [`ProviderInfo::add_fingerprint`]. Cache
    /// keys and job checkpoints use it; it never holds a secret.
    ///
    /// ```
    /// let mut info = embeddings_core::ProviderInfo::new("openai", "text-embedding-3-small", 256);
    /// info.add_fingerprint("dimensions", 256);
    /// assert_eq!(info.fingerprint(), "provider=openai;model=text-embedding-3-small;dimensions=256");
    /// ```
    pub fn fingerprint(&self) -> String {
        format!(
            "provider={};model={}{}",
            self.provider, self.model, self.settings
        )
    }

    /// Whether `fingerprint` is this [fingerprint](ProviderInfo::fingerprint),
    /// compared without building it (a cache asks on every call).
    ///
    /// ```
    /// let mut info = embeddings_core::ProviderInfo::new("openai", "m", 256);
    /// info.add_fingerprint("dimensions", 256);
    /// assert!(info.has_fingerprint(&info.fingerprint()));
    /// assert!(!info.has_fingerprint("provider=openai;model=m"));
    /// ```
    pub fn has_fingerprint(&self, fingerprint: &str) -> bool {
        fingerprint
            .strip_prefix("provider=")
            .and_then(|f| f.strip_prefix(&*self.provider))
            .and_then(|f| f.strip_prefix(";model="))
            .and_then(|f| f.strip_prefix(self.model.as_str()))
            .is_some_and(|f| f == self.settings)
    }

    /// Whether the provider sends `input_type` on the wire.
    #[inline]
    pub fn supports_input_type(&self, t: InputType) -> bool {
        self.input_types.contains(&t)
    }

    /// Whether the provider produces `t` itself (`F32` always).
    #[inline]
    pub fn supports_output_type(&self, t: OutputType) -> bool {
        t == OutputType::F32 || self.output_types.contains(&t)
    }

    /// `Ok` when the provider produces the request's output type natively;
    /// otherwise an `InvalidInput` error naming the provider and the type.
    /// Providers call it first thing in [`Embedder::embed`].
    pub fn check_output_type(&self, request: &EmbedRequest<'_>) -> Result<()> {
        if self.supports_output_type(request.output_type) {
            return Ok(());
        }
        let mut native = vec!["f32"];
        native.extend(self.output_types.iter().map(|t| t.as_str()));
        Err(Error::invalid_input(format!(
            "provider {} does not produce {} vectors (it produces: {}{})",
            self.provider,
            request.output_type,
            native.join(", "),
            if request.output_type.is_packed() {
                "; the layers compute binary and ubinary from f32"
            } else {
                ""
            }
        ))
        .with_provider(self.provider.clone()))
    }
}

/// A rough token count for providers without a tokenizer: one token per four
/// bytes of UTF-8, at least one for a non-empty text.
#[inline]
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4)
}

/// The boxed future of the [`Embedder`] methods (what `async_trait` makes).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A text-embedding provider (or a layer around one).
///
/// Dyn-compatible: the registry hands out `Arc<dyn Embedder>`. Inputs are
/// borrowed; nothing here copies the caller's text. One method does the
/// work, [`embed`](Embedder::embed); [`embed_documents`](Embedder::embed_documents)
/// and [`embed_query`](Embedder::embed_query) are conveniences over it (a
/// query is an [`EmbedRequest`] of [`InputType::Query`], and stays one
/// through every layer). Implement `embed`, never the conveniences.
///
/// Contract, checked for every provider by the testkit's conformance suite:
/// row `i` of the result belongs to input `i`; an empty input list gives an
/// empty result without a request; an error is never a partial result.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use embeddings_core::{EmbedRequest, Embedder, Embeddings, ProviderInfo, Result, async_trait};
///
/// #[derive(Debug)]
/// struct Ones(ProviderInfo);
///
/// #[async_trait]
/// impl Embedder for Ones {
///     fn info(&self) -> &ProviderInfo { &self.0 }
///     async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
///         self.0.check_output_type(&request)?;
///         Embeddings::from_flat(vec![1.0; request.inputs.len() * 2], 2)
///     }
///     async fn health_check(&self) -> Result<()> { Ok(()) }
/// }
///
/// let e = Ones(ProviderInfo::new("ones", "ones", 2));
/// assert_eq!(e.embed_query("hi").await.unwrap(), vec![1.0, 1.0]);
/// assert_eq!(e.embed_documents(&["a", "b"]).await.unwrap().len(), 2);
/// # });
/// ```
#[async_trait]
pub trait Embedder: Send + Sync + Debug + 'static {
    /// What the layers plan with: model, dimension, limits.
    fn info(&self) -> &ProviderInfo;

    /// The dimension of the returned vectors (`0` while not yet known).
    #[inline]
    fn dimension(&self) -> usize {
        self.info().dimension
    }

    /// Embeds every input of `request`; row `i` of the result belongs to
    /// `request.inputs[i]`, in the request's output type.
    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings>;

    /// Embeds documents as `f32`: `embed(EmbedRequest::new(texts))`.
    fn embed_documents<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        texts: &'life1 [&'life2 str],
    ) -> BoxFuture<'async_trait, Result<Embeddings>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.embed(EmbedRequest::new(texts))
    }

    /// Embeds one query as `f32`: `embed(EmbedRequest::query(&[text]))`.
    async fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        let inputs = [text];
        let e = self.embed(EmbedRequest::query(&inputs)).await?;
        single_row(e)
    }

    /// Proves the provider is reachable and configured (key, model).
    async fn health_check(&self) -> Result<()>;

    /// Learns from the server what the configuration did not say (limits,
    /// dimension), so that [`info`](Embedder::info) reports them before the
    /// first planned batch. Idempotent and cheap once done; the batch layer
    /// calls it before planning, layers pass it on. The default does nothing.
    async fn prepare(&self) -> Result<()> {
        Ok(())
    }

    /// Tokens the provider counts for `text` (used by the layers to plan
    /// batches and rate limits). The default is [`estimate_tokens`].
    fn count_tokens(&self, text: &str) -> usize {
        estimate_tokens(text)
    }

    /// An upper bound of [`count_tokens`](Embedder::count_tokens) for any
    /// text of `bytes` bytes, so that the layers skip counting texts that
    /// fit whatever their tokens. The default, `bytes`, holds for byte-level
    /// BPE (every token is at least one byte) and for [`estimate_tokens`]; a
    /// tokenizer that adds special tokens per text overrides it.
    fn token_bound(&self, bytes: usize) -> usize {
        bytes
    }

    /// Splits `text` into consecutive pieces of at most `max_tokens` tokens
    /// each (by this provider's tokenizer), covering the whole text. Used by
    /// the truncate and chunk policies for over-long inputs.
    fn split_tokens<'a>(&self, text: &'a str, max_tokens: usize) -> Vec<&'a str> {
        split_by_bytes(text, max_tokens.max(1) * 4)
    }
}

/// The one `f32` row of a one-input answer (for `embed_query`), or an
/// `InvalidResponse` error naming what came back instead.
pub fn single_row(e: Embeddings) -> Result<Vec<f32>> {
    if e.len() != 1 {
        return Err(Error::new(
            ErrorKind::InvalidResponse,
            format!("expected 1 vector for one query, got {}", e.len()),
        ));
    }
    let output = e.output_type();
    e.into_single().ok_or_else(|| {
        Error::new(
            ErrorKind::Internal,
            format!("a query asked for f32 rows got {output} rows"),
        )
    })
}

/// The forwarding base of a layer: implement [`inner`](Wrapper::inner) and
/// only the methods the layer changes; everything else goes to the inner
/// embedder unchanged (and without an extra boxed future). Every `Wrapper`
/// is an [`Embedder`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use embeddings_core::{EmbedRequest, Embedder, Embeddings, Result, Wrapper, async_trait};
///
/// /// Counts the inputs that pass.
/// #[derive(Debug)]
/// struct CountInputs { inner: Arc<dyn Embedder>, seen: AtomicUsize }
///
/// #[async_trait]
/// impl Wrapper for CountInputs {
///     fn inner(&self) -> &dyn Embedder { &*self.inner }
///     async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
///         self.seen.fetch_add(request.inputs.len(), Ordering::Relaxed);
///         self.inner.embed(request).await
///     }
/// }
/// # #[derive(Debug)] struct Two(embeddings_core::ProviderInfo);
/// # #[async_trait] impl Embedder for Two {
/// #     fn info(&self) -> &embeddings_core::ProviderInfo { &self.0 }
/// #     async fn embed(&self, r: EmbedRequest<'_>) -> Result<Embeddings> { Embeddings::from_flat(vec![0.5; r.inputs.len() * 2], 2) }
/// #     async fn health_check(&self) -> Result<()> { Ok(()) }
/// # }
/// let provider: Arc<dyn Embedder> = Arc::new(Two(embeddings_core::ProviderInfo::new("two", "two", 2)));
/// let layer = CountInputs { inner: provider, seen: AtomicUsize::new(0) };
/// layer.embed_documents(&["a", "b"]).await.unwrap();
/// layer.embed_query("q").await.unwrap(); // a query goes through `embed` too
/// assert_eq!(layer.seen.load(Ordering::Relaxed), 3);
/// assert_eq!(Embedder::dimension(&layer), 2); // forwarded
/// # });
/// ```
#[async_trait]
pub trait Wrapper: Send + Sync + Debug + 'static {
    /// The embedder this layer wraps.
    fn inner(&self) -> &dyn Embedder;

    /// What the layers above plan with; the inner embedder's by default.
    fn info(&self) -> &ProviderInfo {
        self.inner().info()
    }

    /// The inner embedder's dimension by default (a wrapper that changes
    /// [`Wrapper::info`] overrides this too).
    fn dimension(&self) -> usize {
        self.inner().dimension()
    }

    /// Passes the request on by default.
    fn embed<'life0, 'life1, 'async_trait>(
        &'life0 self,
        request: EmbedRequest<'life1>,
    ) -> BoxFuture<'async_trait, Result<Embeddings>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().embed(request)
    }

    /// Passes the check on by default.
    fn health_check<'life0, 'async_trait>(&'life0 self) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().health_check()
    }

    /// Passes discovery on by default.
    fn prepare<'life0, 'async_trait>(&'life0 self) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.inner().prepare()
    }

    /// The inner embedder's count by default.
    fn count_tokens(&self, text: &str) -> usize {
        self.inner().count_tokens(text)
    }

    /// The inner embedder's bound by default.
    fn token_bound(&self, bytes: usize) -> usize {
        self.inner().token_bound(bytes)
    }

    /// The inner embedder's split by default.
    fn split_tokens<'a>(&self, text: &'a str, max_tokens: usize) -> Vec<&'a str> {
        self.inner().split_tokens(text, max_tokens)
    }
}

impl<W: Wrapper> Embedder for W {
    #[inline]
    fn info(&self) -> &ProviderInfo {
        Wrapper::info(self)
    }
    #[inline]
    fn dimension(&self) -> usize {
        Wrapper::dimension(self)
    }
    #[inline]
    fn embed<'life0, 'life1, 'async_trait>(
        &'life0 self,
        request: EmbedRequest<'life1>,
    ) -> BoxFuture<'async_trait, Result<Embeddings>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Wrapper::embed(self, request)
    }
    #[inline]
    fn health_check<'life0, 'async_trait>(&'life0 self) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Wrapper::health_check(self)
    }
    #[inline]
    fn prepare<'life0, 'async_trait>(&'life0 self) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Wrapper::prepare(self)
    }
    #[inline]
    fn count_tokens(&self, text: &str) -> usize {
        Wrapper::count_tokens(self, text)
    }
    #[inline]
    fn token_bound(&self, bytes: usize) -> usize {
        Wrapper::token_bound(self, bytes)
    }
    #[inline]
    fn split_tokens<'a>(&self, text: &'a str, max_tokens: usize) -> Vec<&'a str> {
        Wrapper::split_tokens(self, text, max_tokens)
    }
}

/// Wraps an embedder in another: the unit of the layer stack
/// (DESIGN.md §3). `EmbedderBuilder::layer` in the facade adds user layers;
/// the facade's built-in layers implement it too.
pub trait Layer: Send + Sync + Debug {
    /// Wraps `inner`.
    fn layer(&self, inner: Arc<dyn Embedder>) -> Arc<dyn Embedder>;
}

/// A [`Layer`] made of a function (`name` shows in `Debug`).
///
/// ```
/// use std::sync::Arc;
/// use embeddings_core::{Embedder, Layer, LayerFn};
/// let identity = LayerFn::new("identity", |inner: Arc<dyn Embedder>| inner);
/// assert_eq!(format!("{identity:?}"), "LayerFn(\"identity\")");
/// ```
#[derive(Clone)]
pub struct LayerFn<F> {
    name: &'static str,
    f: F,
}

impl<F> LayerFn<F>
where
    F: Fn(Arc<dyn Embedder>) -> Arc<dyn Embedder> + Send + Sync,
{
    /// A layer that calls `f`.
    pub fn new(name: &'static str, f: F) -> Self {
        LayerFn { name, f }
    }
}

impl<F> Debug for LayerFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LayerFn").field(&self.name).finish()
    }
}

impl<F> Layer for LayerFn<F>
where
    F: Fn(Arc<dyn Embedder>) -> Arc<dyn Embedder> + Send + Sync,
{
    fn layer(&self, inner: Arc<dyn Embedder>) -> Arc<dyn Embedder> {
        (self.f)(inner)
    }
}

/// Splits `text` on char boundaries into consecutive pieces of at most
/// `max_bytes` bytes each, covering the whole text (a char wider than
/// `max_bytes` makes a piece of its own). An empty text gives no piece.
///
/// The default [`Embedder::split_tokens`] (at 4 bytes per token), and a
/// fallback for providers whose tokenizer is unavailable.
///
/// ```
/// assert_eq!(embeddings_core::split_by_bytes("déjà", 2), ["d", "é", "j", "à"]);
/// assert_eq!(embeddings_core::split_by_bytes("abcde", 2), ["ab", "cd", "e"]);
/// ```
pub fn split_by_bytes(text: &str, max_bytes: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(max_bytes);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            // One char wider than max_bytes: take it whole.
            cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out
}

/// Conveniences over any [`Embedder`].
#[async_trait]
pub trait EmbedderExt: Embedder {
    /// Embeds owned strings (or anything `AsRef<str>`) without copying their text.
    async fn embed_texts<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Embeddings> {
        let refs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        self.embed(EmbedRequest::new(&refs)).await
    }
}

impl<E: Embedder + ?Sized> EmbedderExt for E {}

impl Embedder for Arc<dyn Embedder> {
    #[inline]
    fn info(&self) -> &ProviderInfo {
        (**self).info()
    }
    #[inline]
    fn dimension(&self) -> usize {
        (**self).dimension()
    }
    #[inline]
    fn embed<'life0, 'life1, 'async_trait>(
        &'life0 self,
        request: EmbedRequest<'life1>,
    ) -> BoxFuture<'async_trait, Result<Embeddings>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        (**self).embed(request)
    }
    fn embed_query<'life0, 'life1, 'async_trait>(
        &'life0 self,
        text: &'life1 str,
    ) -> BoxFuture<'async_trait, Result<Vec<f32>>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        (**self).embed_query(text)
    }
    #[inline]
    fn health_check<'life0, 'async_trait>(&'life0 self) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        (**self).health_check()
    }
    #[inline]
    fn prepare<'life0, 'async_trait>(&'life0 self) -> BoxFuture<'async_trait, Result<()>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        (**self).prepare()
    }
    #[inline]
    fn count_tokens(&self, text: &str) -> usize {
        (**self).count_tokens(text)
    }
    #[inline]
    fn token_bound(&self, bytes: usize) -> usize {
        (**self).token_bound(bytes)
    }
    #[inline]
    fn split_tokens<'a>(&self, text: &'a str, max_tokens: usize) -> Vec<&'a str> {
        (**self).split_tokens(text, max_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn has_fingerprint_is_equality_with_the_built_fingerprint(
            p in "[a-z;=]{0,4}", m in "[a-z;=]{0,4}", k in "[a-z]{0,2}", v in "[a-z;=]{0,3}",
            p2 in "[a-z;=]{0,4}", m2 in "[a-z;=]{0,4}", v2 in "[a-z;=]{0,3}",
        ) {
            let info = |p: &str, m: &str, v: &str| {
                let mut i = ProviderInfo::new(p.to_owned(), m, 8);
                if !v.is_empty() {
                    i.add_fingerprint(&k, v);
                }
                i
            };
            let a = info(&p, &m, &v);
            let b = info(&p2, &m2, &v2);
            proptest::prop_assert!(a.has_fingerprint(&a.fingerprint()));
            proptest::prop_assert_eq!(a.has_fingerprint(&b.fingerprint()), a.fingerprint() == b.fingerprint());
            let cut = a.fingerprint();
            proptest::prop_assert!(!a.has_fingerprint(&cut[..cut.len() - 1]));
            let longer = format!("{cut}x");
            proptest::prop_assert!(!a.has_fingerprint(&longer));
        }
    }

    #[test]
    fn byte_split_covers_text_on_char_boundaries() {
        let t = "héllo wörld 🌍🌍";
        for max in 1..10 {
            let parts = split_by_bytes(t, max);
            assert_eq!(parts.concat(), t);
            for p in &parts {
                assert!(p.len() <= max.max(4));
            }
        }
        assert!(split_by_bytes("", 4).is_empty());
    }

    #[test]
    fn estimate_is_a_quarter_of_bytes_rounded_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("a"), 1);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
    }
}
