//! The prompt layer: a configured prompt in front of each text, per input
//! type, for providers whose API has no input types of its own.

use std::sync::Arc;

use embeddings_core::{
    EmbedRequest, Embedder, Embeddings, InputType, Result, Wrapper, async_trait,
};
use serde::Deserialize;

/// The `[prompts]` section: the text put in front of every input of a type.
///
/// ```toml
/// [prompts]                      # nomic-embed-text on Ollama, say
/// query = "search_query: "
/// document = "search_document: "
/// ```
///
/// A prompt applies only to providers that do not honour that input type
/// natively (see [`ProviderInfo::input_types`](crate::ProviderInfo::input_types)):
/// where the API has the notion (Cohere, Voyage, Gemini, ...) the type is
/// sent on the wire instead. Prompts are applied before token counting and
/// before the cache, so both see the text as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptConfig {
    /// Prompt of [`InputType::Document`].
    pub document: Option<String>,
    /// Prompt of [`InputType::Query`].
    pub query: Option<String>,
    /// Prompt of [`InputType::Classification`].
    pub classification: Option<String>,
    /// Prompt of [`InputType::Clustering`].
    pub clustering: Option<String>,
    /// Prompt of [`InputType::Similarity`].
    pub similarity: Option<String>,
}

impl PromptConfig {
    /// The prompt of `t`, when one is configured (an empty one counts as none).
    pub fn prompt(&self, t: InputType) -> Option<&str> {
        let p = match t {
            InputType::Document => &self.document,
            InputType::Query => &self.query,
            InputType::Classification => &self.classification,
            InputType::Clustering => &self.clustering,
            InputType::Similarity => &self.similarity,
            _ => &None,
        };
        p.as_deref().filter(|p| !p.is_empty())
    }

    /// Whether no prompt is configured.
    pub fn is_empty(&self) -> bool {
        InputType::ALL.iter().all(|&t| self.prompt(t).is_none())
    }
}

/// Puts the configured prompt of the request's input type in front of each
/// input (a copy of each text is made only then), unless the provider
/// honours the type natively.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use embeddings::{Embedder, layers::{PromptConfig, PromptLayer}};
/// use embeddings::mock::{MockEmbedder, vector};
///
/// let prompts = PromptConfig { query: Some("search_query: ".into()), ..Default::default() };
/// let e = PromptLayer::new(Arc::new(MockEmbedder::new("mock", 8).unwrap()), prompts);
/// assert_eq!(e.embed_query("cats").await.unwrap(), vector("mock", "search_query: cats", 8));
/// assert_eq!(e.embed_documents(&["cats"]).await.unwrap().row(0), vector("mock", "cats", 8));
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct PromptLayer {
    inner: Arc<dyn Embedder>,
    prompts: PromptConfig,
}

impl PromptLayer {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Embedder>, prompts: PromptConfig) -> Self {
        PromptLayer { inner, prompts }
    }
}

#[async_trait]
impl Wrapper for PromptLayer {
    fn inner(&self) -> &dyn Embedder {
        &*self.inner
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        let t = request.input_type;
        let prompt = match self.prompts.prompt(t) {
            Some(p) if !self.inner.info().supports_input_type(t) => p,
            _ => return self.inner.embed(request).await,
        };
        let texts: Vec<String> = request
            .inputs
            .iter()
            .map(|text| {
                let mut s = String::with_capacity(prompt.len() + text.len());
                s.push_str(prompt);
                s.push_str(text);
                s
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.inner.embed(request.with_inputs(&refs)).await
    }
}
