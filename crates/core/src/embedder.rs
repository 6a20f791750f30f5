//! The `Embedder` trait and what a provider tells the layers about itself.

use std::borrow::Cow;
use std::fmt::Debug;

use async_trait::async_trait;

use crate::embeddings::Embeddings;
use crate::error::{Error, ErrorKind, Result};

/// What a provider tells the layers to plan with.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl ProviderInfo {
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
        }
    }
}

/// A rough token count for providers without a tokenizer: one token per four
/// bytes of UTF-8, at least one for a non-empty text.
#[inline]
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4)
}

/// A text-embedding provider (or a layer around one).
///
/// Dyn-compatible: the registry hands out `Arc<dyn Embedder>`. Inputs are
/// borrowed; nothing here copies the caller's text.
///
/// Contract, checked for every provider by the testkit's conformance suite:
/// row `i` of the result belongs to input `i`; an empty input list gives an
/// empty result without a request; an error is never a partial result.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use embeddings_core::{Embedder, Embeddings, ProviderInfo, Result, async_trait};
///
/// #[derive(Debug)]
/// struct Ones(ProviderInfo);
///
/// #[async_trait]
/// impl Embedder for Ones {
///     fn info(&self) -> &ProviderInfo { &self.0 }
///     async fn embed_documents(&self, texts: &[&str]) -> Result<Embeddings> {
///         Embeddings::from_flat(vec![1.0; texts.len() * 2], 2)
///     }
///     async fn health_check(&self) -> Result<()> { Ok(()) }
/// }
///
/// let e = Ones(ProviderInfo::new("ones", "ones", 2));
/// assert_eq!(e.embed_query("hi").await.unwrap(), vec![1.0, 1.0]);
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

    /// Embeds every text; row `i` of the result belongs to `texts[i]`.
    async fn embed_documents(&self, texts: &[&str]) -> Result<Embeddings>;

    /// Embeds one text.
    async fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        let e = self.embed_documents(&[text]).await?;
        if e.len() != 1 {
            return Err(Error::new(
                ErrorKind::InvalidResponse,
                format!("expected 1 vector for one query, got {}", e.len()),
            ));
        }
        Ok(e.into_single().unwrap_or_default())
    }

    /// Proves the provider is reachable and configured (key, model).
    async fn health_check(&self) -> Result<()>;

    /// Tokens the provider counts for `text` (used by the layers to plan
    /// batches and rate limits). The default is [`estimate_tokens`].
    fn count_tokens(&self, text: &str) -> usize {
        estimate_tokens(text)
    }

    /// Splits `text` into consecutive pieces of at most `max_tokens` tokens
    /// each (by this provider's tokenizer), covering the whole text. Used by
    /// the truncate and chunk policies for over-long inputs.
    fn split_tokens<'a>(&self, text: &'a str, max_tokens: usize) -> Vec<&'a str> {
        split_by_bytes(text, max_tokens.max(1) * 4)
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
        self.embed_documents(&refs).await
    }
}

impl<E: Embedder + ?Sized> EmbedderExt for E {}

#[async_trait]
impl<E: Embedder + ?Sized> Embedder for std::sync::Arc<E> {
    fn info(&self) -> &ProviderInfo {
        (**self).info()
    }
    fn dimension(&self) -> usize {
        (**self).dimension()
    }
    async fn embed_documents(&self, texts: &[&str]) -> Result<Embeddings> {
        (**self).embed_documents(texts).await
    }
    async fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        (**self).embed_query(text).await
    }
    async fn health_check(&self) -> Result<()> {
        (**self).health_check().await
    }
    fn count_tokens(&self, text: &str) -> usize {
        (**self).count_tokens(text)
    }
    fn split_tokens<'a>(&self, text: &'a str, max_tokens: usize) -> Vec<&'a str> {
        (**self).split_tokens(text, max_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
