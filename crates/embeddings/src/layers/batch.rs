//! The batch layer: splits a call into requests the provider accepts, applies
//! the over-long-input policy, runs the requests with bounded concurrency and
//! reassembles the rows in input order.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use embeddings_core::{
    BatchConfig, Embedder, Embeddings, Error, ErrorKind, OverLengthPolicy, ProviderInfo,
    RateLimitSnapshot, Result, Usage, async_trait,
};
use futures::StreamExt;

use super::forward_sync;

/// The limits the batch layer plans with: the provider's, lowered by the
/// [`BatchConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most inputs in one request.
    pub max_batch_size: usize,
    /// Most tokens in one request, summed over its inputs.
    pub max_batch_tokens: usize,
    /// Most tokens in one input (never more than `max_batch_tokens`, so that
    /// every input fits in some request).
    pub max_input_tokens: usize,
}

impl BatchLimits {
    /// The provider's limits lowered by the configuration (never raised); every
    /// limit is at least 1.
    pub fn new(info: &ProviderInfo, config: &BatchConfig) -> Self {
        let lower = |provider: usize, configured: Option<usize>| {
            configured.map_or(provider, |c| c.min(provider)).max(1)
        };
        let max_batch_size = lower(info.max_batch_size, config.max_batch_size);
        let max_batch_tokens = lower(info.max_batch_tokens, config.max_batch_tokens);
        BatchLimits {
            max_batch_size,
            max_batch_tokens,
            max_input_tokens: info.max_input_tokens.max(1).min(max_batch_tokens),
        }
    }
}

/// Splits inputs with the given token counts into consecutive ranges of at
/// most `max_batch_size` inputs and at most `max_batch_tokens` tokens each.
///
/// The ranges cover `0..token_counts.len()` exactly once, in order. An input
/// of more than `max_batch_tokens` tokens on its own (which the batch layer
/// never plans, having applied the over-long policy first) gets a range of
/// its own.
///
/// ```
/// use embeddings::layers::plan_batches;
/// assert_eq!(plan_batches(&[3, 3, 3, 1, 1], 10, 6), vec![0..2, 2..5]);
/// assert_eq!(plan_batches(&[1; 5], 2, 100), vec![0..2, 2..4, 4..5]);
/// ```
pub fn plan_batches(
    token_counts: &[usize],
    max_batch_size: usize,
    max_batch_tokens: usize,
) -> Vec<Range<usize>> {
    let max_batch_size = max_batch_size.max(1);
    let mut out = Vec::with_capacity(token_counts.len().div_ceil(max_batch_size));
    let mut start = 0;
    let mut tokens = 0usize;
    for (i, &count) in token_counts.iter().enumerate() {
        if i > start
            && (i - start >= max_batch_size || tokens.saturating_add(count) > max_batch_tokens)
        {
            out.push(start..i);
            start = i;
            tokens = 0;
        }
        tokens = tokens.saturating_add(count);
    }
    if start < token_counts.len() {
        out.push(start..token_counts.len());
    }
    out
}

/// Splits calls by `max_batch_size` and by tokens per request, applies the
/// over-long-input policy, runs the sub-batches `concurrency` at a time and
/// reassembles the rows in input order.
///
/// When a call fits in one request (the common case) it is passed on as it
/// is, without allocating. A sub-batch that fails (after the retries of the
/// layers below) fails the whole call with an error that names its inputs,
/// and the other sub-batches still running are cancelled; no partial result
/// is ever returned.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use embeddings::{BatchConfig, Embedder, OverLengthPolicy};
/// use embeddings::layers::BatchLayer;
/// use embeddings::mock::{MockEmbedder, MockFaults};
///
/// // A provider that takes at most 2 inputs of at most 4 tokens per request.
/// let faults = MockFaults { max_batch_size: Some(2), max_input_tokens: Some(4), ..Default::default() };
/// let mock = Arc::new(MockEmbedder::new("mock", 8).unwrap().with_faults(faults).unwrap());
/// let config = BatchConfig { over_length: OverLengthPolicy::Chunk, ..Default::default() };
/// let batched = BatchLayer::new(mock, config);
/// let long = "a text of far more than four tokens";
/// let rows = batched.embed_documents(&["a", "b", "c", long]).await.unwrap();
/// assert_eq!(rows.len(), 4);
/// assert_eq!(rows.row(2), embeddings::mock::vector("mock", "c", 8).as_slice());
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct BatchLayer {
    inner: Arc<dyn Embedder>,
    config: BatchConfig,
}

/// The inputs actually sent: the caller's, or pieces of them when the
/// over-long policy truncated or chunked some.
struct Prepared<'a> {
    texts: Cow<'a, [&'a str]>,
    counts: Vec<usize>,
    /// For the chunk policy: the pieces (indices into `texts`) of each input.
    groups: Option<Vec<Range<usize>>>,
}

impl BatchLayer {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Embedder>, config: BatchConfig) -> Self {
        BatchLayer { inner, config }
    }

    /// The configuration.
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// The limits calls are planned with.
    pub fn limits(&self) -> BatchLimits {
        BatchLimits::new(self.inner.info(), &self.config)
    }

    fn too_long(&self, index: usize, tokens: usize, limits: &BatchLimits) -> Error {
        Error::new(
            ErrorKind::ContextLengthExceeded,
            format!(
                "input {index} has {tokens} tokens; the limit is {} (set batch.over_length to \
                 \"truncate\" or \"chunk\" to accept it)",
                limits.max_input_tokens
            ),
        )
        .with_provider(self.inner.info().provider.clone())
    }

    /// Applies the over-long policy.
    fn prepare<'a>(&self, texts: &'a [&'a str], limits: &BatchLimits) -> Result<Prepared<'a>> {
        let max = limits.max_input_tokens;
        let counts: Vec<usize> = texts.iter().map(|t| self.inner.count_tokens(t)).collect();
        let Some(first) = counts.iter().position(|&n| n > max) else {
            return Ok(Prepared {
                texts: Cow::Borrowed(texts),
                counts,
                groups: None,
            });
        };
        match self.config.over_length {
            OverLengthPolicy::Error => Err(self.too_long(first, counts[first], limits)),
            OverLengthPolicy::Truncate => {
                let mut sent = texts.to_vec();
                let mut counts = counts;
                for (text, count) in sent.iter_mut().zip(counts.iter_mut()) {
                    if *count > max {
                        *text = self
                            .inner
                            .split_tokens(text, max)
                            .first()
                            .copied()
                            .unwrap_or("");
                        *count = self.inner.count_tokens(text);
                    }
                }
                Ok(Prepared {
                    texts: Cow::Owned(sent),
                    counts,
                    groups: None,
                })
            }
            OverLengthPolicy::Chunk => {
                let mut sent = Vec::with_capacity(texts.len() + 8);
                let mut sent_counts = Vec::with_capacity(texts.len() + 8);
                let mut groups = Vec::with_capacity(texts.len());
                for (text, &count) in texts.iter().zip(&counts) {
                    let start = sent.len();
                    if count > max {
                        for piece in self.inner.split_tokens(text, max) {
                            sent_counts.push(self.inner.count_tokens(piece));
                            sent.push(piece);
                        }
                    }
                    if sent.len() == start {
                        sent.push(*text);
                        sent_counts.push(count);
                    }
                    groups.push(start..sent.len());
                }
                Ok(Prepared {
                    texts: Cow::Owned(sent),
                    counts: sent_counts,
                    groups: Some(groups),
                })
            }
        }
    }

    /// The general path: prepare, plan, run the sub-batches, reassemble.
    async fn embed_planned(&self, texts: &[&str], limits: BatchLimits) -> Result<Embeddings> {
        let prepared = self.prepare(texts, &limits)?;
        let sent: &[&str] = &prepared.texts;
        let plan = plan_batches(
            &prepared.counts,
            limits.max_batch_size,
            limits.max_batch_tokens,
        );
        // The caller's input range a sent range stands for (pieces of chunked
        // inputs map back to their input).
        let original = |r: &Range<usize>| -> Range<usize> {
            match &prepared.groups {
                None => r.clone(),
                Some(groups) => {
                    let first = groups.partition_point(|g| g.end <= r.start);
                    let last = groups.partition_point(|g| g.end < r.end);
                    first..last + 1
                }
            }
        };
        let name_range = |e: Error, r: &Range<usize>| {
            let o = original(r);
            let msg = format!(
                "inputs {}..{} of {} failed: {}",
                o.start,
                o.end,
                texts.len(),
                e.message()
            );
            e.with_message(msg)
        };

        let inner = &self.inner;
        let mut results = futures::stream::iter(plan)
            .map(|r| async move {
                let res = inner.embed_documents(&sent[r.clone()]).await;
                (r, res)
            })
            .buffer_unordered(self.config.concurrency.max(1));

        let mut out: Option<Embeddings> = None;
        let mut usage: Option<Usage> = None;
        let mut rate_limits: Option<RateLimitSnapshot> = None;
        while let Some((r, res)) = results.next().await {
            let e = res.map_err(|e| name_range(e, &r))?;
            if e.len() != r.len() {
                return Err(name_range(
                    Error::invalid_response(format!("{} vectors for {} inputs", e.len(), r.len()))
                        .with_provider(inner.info().provider.clone()),
                    &r,
                ));
            }
            let buf = out.get_or_insert_with(|| Embeddings::zeroed(sent.len(), e.dim()));
            let dim = buf.dim();
            if e.dim() != dim {
                return Err(name_range(
                    Error::new(
                        ErrorKind::DimensionMismatch,
                        format!("vectors of dimension {}, earlier ones had {dim}", e.dim()),
                    )
                    .with_provider(inner.info().provider.clone()),
                    &r,
                ));
            }
            buf.as_flat_mut()[r.start * dim..r.end * dim].copy_from_slice(e.as_flat());
            if let Some(u) = e.usage() {
                usage.get_or_insert_with(Usage::default).add(u);
            }
            if let Some(s) = e.rate_limits() {
                rate_limits = Some(*s);
            }
        }
        drop(results);
        let Some(rows) = out else {
            return Ok(Embeddings::empty(self.inner.dimension()));
        };
        let mut rows = match &prepared.groups {
            None => rows,
            Some(groups) => combine_chunks(&rows, groups, &prepared.counts),
        };
        rows.set_usage(usage);
        rows.set_rate_limits(rate_limits);
        Ok(rows)
    }
}

/// One row per group: the average of its pieces' rows weighted by their
/// token counts, scaled to unit length.
fn combine_chunks(rows: &Embeddings, groups: &[Range<usize>], counts: &[usize]) -> Embeddings {
    let dim = rows.dim();
    let mut out = Embeddings::zeroed(groups.len(), dim);
    for (i, g) in groups.iter().enumerate() {
        let target = out.row_mut(i);
        if g.len() == 1 {
            target.copy_from_slice(rows.row(g.start));
            continue;
        }
        let total: usize = counts[g.clone()].iter().sum();
        for j in g.clone() {
            let w = if total == 0 {
                1.0
            } else {
                counts[j] as f32 / total as f32
            };
            for (t, v) in target.iter_mut().zip(rows.row(j)) {
                *t += w * v;
            }
        }
        let norm = target.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 && norm.is_finite() {
            target.iter_mut().for_each(|v| *v /= norm);
        }
    }
    out
}

#[async_trait]
impl Embedder for BatchLayer {
    forward_sync!();

    async fn embed_documents(&self, texts: &[&str]) -> Result<Embeddings> {
        if texts.is_empty() {
            return Ok(Embeddings::empty(self.inner.dimension()));
        }
        let limits = self.limits();
        // Fast path: everything fits in one request; pass it on untouched.
        if texts.len() <= limits.max_batch_size {
            let mut total = 0usize;
            let mut fits = true;
            for t in texts {
                let n = self.inner.count_tokens(t);
                total = total.saturating_add(n);
                if n > limits.max_input_tokens || total > limits.max_batch_tokens {
                    fits = false;
                    break;
                }
            }
            if fits {
                let e = self.inner.embed_documents(texts).await?;
                if e.len() != texts.len() {
                    return Err(Error::invalid_response(format!(
                        "{} vectors for {} inputs",
                        e.len(),
                        texts.len()
                    ))
                    .with_provider(self.inner.info().provider.clone()));
                }
                return Ok(e);
            }
        }
        self.embed_planned(texts, limits).await
    }

    async fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        let limits = self.limits();
        let n = self.inner.count_tokens(text);
        if n <= limits.max_input_tokens {
            return self.inner.embed_query(text).await;
        }
        match self.config.over_length {
            OverLengthPolicy::Error => Err(self.too_long(0, n, &limits)),
            OverLengthPolicy::Truncate => {
                let pieces = self.inner.split_tokens(text, limits.max_input_tokens);
                self.inner
                    .embed_query(pieces.first().copied().unwrap_or(""))
                    .await
            }
            OverLengthPolicy::Chunk => {
                let e = self.embed_planned(&[text], limits).await?;
                e.into_single()
                    .ok_or_else(|| Error::new(ErrorKind::Internal, "no vector for a chunked query"))
            }
        }
    }

    async fn health_check(&self) -> Result<()> {
        self.inner.health_check().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_respects_both_limits() {
        assert_eq!(plan_batches(&[], 3, 10), Vec::<Range<usize>>::new());
        assert_eq!(plan_batches(&[5, 5, 5], 3, 10), vec![0..2, 2..3]);
        assert_eq!(plan_batches(&[20, 1, 1], 3, 10), vec![0..1, 1..3]);
        assert_eq!(plan_batches(&[0; 7], 3, 10), vec![0..3, 3..6, 6..7]);
        assert_eq!(plan_batches(&[1; 3], 0, 10), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn chunks_average_by_weight_and_renormalise() {
        let rows = Embeddings::from_flat(vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8], 2).unwrap();
        let out = combine_chunks(&rows, &[0..2, 2..3], &[3, 1, 7]);
        let r = out.row(0);
        let expect = [0.75f32, 0.25];
        let n = (expect[0] * expect[0] + expect[1] * expect[1]).sqrt();
        assert!((r[0] - expect[0] / n).abs() < 1e-6 && (r[1] - expect[1] / n).abs() < 1e-6);
        assert_eq!(out.row(1), &[0.6, 0.8]);
    }
}
