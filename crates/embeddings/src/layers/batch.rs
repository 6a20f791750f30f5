//! The batch layer: splits a call into requests the provider accepts, applies
//! the over-long-input policy, runs the requests with bounded concurrency and
//! reassembles the rows in input order.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use embeddings_core::{
    BatchConfig, EmbedRequest, Embedder, Embeddings, Error, ErrorKind, OutputType,
    OverLengthPolicy, ProviderInfo, RateLimitSnapshot, Result, RowSink, SliceSink, Usage, Wrapper,
    async_trait,
};
use futures::StreamExt;
use tokio::sync::OnceCell;

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
/// over-long-input policy, runs the sub-batches `concurrency` at a time
/// (`batch.concurrency`, else the provider's [`ProviderInfo::concurrency`]:
/// 16 for hosted services, 4 otherwise) and reassembles the rows in input
/// order.
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
    /// Set once the inner embedder's `prepare` (discovery) succeeded.
    prepared: OnceCell<()>,
}

/// The inputs actually sent: the caller's, or pieces of them when the
/// over-long policy truncated or chunked some.
struct Prepared<'a> {
    texts: Cow<'a, [&'a str]>,
    counts: Vec<usize>,
    /// Whether `counts` are the provider's counts (else some are upper bounds
    /// from [`Embedder::token_bound`], good for planning, not for accounting).
    exact: bool,
    /// For the chunk policy: the pieces (indices into `texts`) of each input.
    groups: Option<Vec<Range<usize>>>,
}

impl BatchLayer {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Embedder>, config: BatchConfig) -> Self {
        BatchLayer {
            inner,
            config,
            prepared: OnceCell::new(),
        }
    }

    /// Runs the inner embedder's discovery once (until it succeeds), so that
    /// limits the server advertises are known before the first plan.
    async fn ensure_prepared(&self) -> Result<()> {
        if self.prepared.initialized() {
            return Ok(());
        }
        self.prepared
            .get_or_try_init(|| async { self.inner.prepare().await })
            .await
            .map(|_| ())
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
        .with_inputs(index..index + 1)
    }

    /// Applies the over-long policy.
    fn apply_policy<'a>(
        &self,
        request: &EmbedRequest<'a>,
        limits: &BatchLimits,
    ) -> Result<Prepared<'a>> {
        let texts = request.inputs;
        let max = limits.max_input_tokens;
        let exact_counts =
            || -> Vec<usize> { texts.iter().map(|t| self.inner.count_tokens(t)).collect() };
        if let Some(c) = request.token_counts {
            return self.apply_policy_to(texts, c.to_vec(), true, limits);
        }
        // Count only what can matter: a text whose bound fits needs no count
        // for the over-long policy, and a plan made from bounds that is
        // already as short as the batch size allows needs none either.
        let bounds: Vec<usize> = texts
            .iter()
            .map(|t| self.inner.token_bound(t.len()))
            .collect();
        if bounds.iter().all(|&b| b <= max) {
            let plan = plan_batches(&bounds, limits.max_batch_size, limits.max_batch_tokens);
            if plan.len() == texts.len().div_ceil(limits.max_batch_size.max(1)) {
                return Ok(Prepared {
                    texts: Cow::Borrowed(texts),
                    counts: bounds,
                    exact: false,
                    groups: None,
                });
            }
        }
        self.apply_policy_to(texts, exact_counts(), true, limits)
    }

    /// Applies the over-long policy to texts of known counts.
    fn apply_policy_to<'a>(
        &self,
        texts: &'a [&'a str],
        counts: Vec<usize>,
        exact: bool,
        limits: &BatchLimits,
    ) -> Result<Prepared<'a>> {
        let max = limits.max_input_tokens;
        let Some(first) = counts.iter().position(|&n| n > max) else {
            return Ok(Prepared {
                texts: Cow::Borrowed(texts),
                counts,
                exact,
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
                    exact,
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
                    exact,
                    groups: Some(groups),
                })
            }
        }
    }

    /// The general path: apply the over-long policy, plan, run the
    /// sub-batches, reassemble. `request.output_type` is what the inner
    /// embedder is asked for.
    async fn embed_planned(
        &self,
        request: EmbedRequest<'_>,
        limits: BatchLimits,
    ) -> Result<Embeddings> {
        let texts = request.inputs;
        let prepared = self.apply_policy(&request, &limits)?;
        let sent: &[&str] = &prepared.texts;
        let output = request.output_type;
        if prepared.groups.is_some() && output != OutputType::F32 {
            return Err(Error::invalid_input(format!(
                "the chunk policy averages f32 vectors and cannot produce {output} vectors \
                 natively; ask for f32, binary or ubinary, or set batch.over_length to \
                 \"truncate\""
            ))
            .with_provider(self.inner.info().provider.clone()));
        }
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
            // An error about some inputs of the sub-request names them (pieces
            // of chunked inputs name their input); otherwise the whole range.
            let inputs = match (e.inputs(), &prepared.groups) {
                (Some(i), None) if i.end <= r.len() => r.start + i.start..r.start + i.end,
                (Some(i), Some(_)) if i.end <= r.len() => {
                    original(&(r.start + i.start..r.start + i.end))
                }
                _ => o,
            };
            e.with_message(msg).with_inputs(inputs)
        };

        let inner = &self.inner;
        let counts: Option<&[usize]> = prepared.exact.then_some(&prepared.counts[..]);
        let sub = request.with_inputs(sent);
        // With the dimension known and f32 asked for, one buffer for the
        // whole call up front, a sink over each sub-batch's rows in it:
        // providers that support sinks decode straight into their rows.
        let dim = inner.dimension();
        let mut whole = (output == OutputType::F32 && dim > 0 && plan.len() > 1)
            .then(|| Embeddings::zeroed(sent.len(), dim));
        let sink_list: Vec<SliceSink<'_>> = match whole.as_mut() {
            Some(w) => {
                let mut rest = w.as_flat_mut();
                plan.iter()
                    .map(|r| {
                        let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len() * dim);
                        rest = tail;
                        SliceSink::new(head, dim)
                    })
                    .collect::<Option<Vec<_>>>()
                    .unwrap_or_default()
            }
            None => Vec::new(),
        };
        let in_whole = !sink_list.is_empty();
        let sinks = &sink_list;
        let mut results = futures::stream::iter(plan.into_iter().enumerate())
            .map(|(k, r)| async move {
                let mut req = EmbedRequest::new(&sent[r.clone()])
                    .with_input_type(sub.input_type)
                    .with_output_type(sub.output_type);
                if let Some(c) = counts {
                    req = req.with_token_counts(&c[r.clone()]);
                }
                let sink = sinks.get(k);
                if let Some(s) = sink {
                    req = req.with_sink(s);
                }
                let res = inner.embed(req).await;
                (r, sink, res)
            })
            .buffer_unordered(
                self.config
                    .concurrency
                    .unwrap_or(inner.info().concurrency)
                    .max(1),
            );

        let mut out: Option<Embeddings> = None;
        let mut usage: Option<Usage> = None;
        let mut rate_limits: Option<RateLimitSnapshot> = None;
        while let Some((r, sink, res)) = results.next().await {
            let e = res.map_err(|e| name_range(e, &r))?;
            let in_place = sink.is_some_and(|s| s.is_filled()) && e.is_empty();
            if !in_place {
                if e.len() != r.len() {
                    return Err(name_range(
                        Error::invalid_response(format!(
                            "{} vectors for {} inputs",
                            e.len(),
                            r.len()
                        ))
                        .with_provider(inner.info().provider.clone()),
                        &r,
                    ));
                }
                let expected = match (sink, &out) {
                    (Some(_), _) => dim,
                    (None, Some(buf)) => buf.dim(),
                    (None, None) => e.dim(),
                };
                if e.dim() != expected || e.output_type() != output {
                    return Err(name_range(
                        Error::new(
                            ErrorKind::DimensionMismatch,
                            format!(
                                "{} vectors of dimension {} where {output} vectors of dimension \
                                 {expected} were expected",
                                e.output_type(),
                                e.dim()
                            ),
                        )
                        .with_provider(inner.info().provider.clone()),
                        &r,
                    ));
                }
                match sink {
                    // A provider that does not use sinks: copy into its rows.
                    Some(s) => s.write(&mut |dst| {
                        dst.copy_from_slice(e.as_flat());
                        Ok(())
                    })?,
                    None => out
                        .get_or_insert_with(|| Embeddings::zeroed_of(output, sent.len(), e.dim()))
                        .copy_rows_from(r.start, &e)?,
                }
            }
            if let Some(u) = e.usage() {
                usage.get_or_insert_with(Usage::default).add(u);
            }
            if let Some(s) = e.rate_limits() {
                rate_limits = Some(*s);
            }
        }
        drop(results);
        drop(sink_list);
        let Some(rows) = (if in_whole { whole } else { out }) else {
            return Ok(Embeddings::empty_of(output, self.inner.dimension()));
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

impl BatchLayer {
    /// Plans and sends a request whose output type the inner embedder produces.
    async fn embed_native(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        let texts = request.inputs;
        let limits = self.limits();
        // Fast path: everything fits in one request; pass it on untouched.
        if texts.len() <= limits.max_batch_size {
            // Without counting: the provider's bound of tokens per byte
            // already shows that every text and the whole request fit.
            let mut bound = 0usize;
            let quick = texts.iter().all(|t| {
                let b = self.inner.token_bound(t.len());
                bound = bound.saturating_add(b);
                b <= limits.max_input_tokens && bound <= limits.max_batch_tokens
            });
            let fits = quick || {
                let mut total = 0usize;
                let count = |i: usize, t: &str| match request.token_counts {
                    Some(c) => c[i],
                    None => self.inner.count_tokens(t),
                };
                texts.iter().enumerate().all(|(i, t)| {
                    let n = count(i, t);
                    total = total.saturating_add(n);
                    n <= limits.max_input_tokens && total <= limits.max_batch_tokens
                })
            };
            if fits {
                let e = self.inner.embed(request).await?;
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
        self.embed_planned(request, limits).await
    }
}

/// Passes on a request whose output type the inner embedder does not
/// produce natively as far as it can: binary and ubinary are asked for as
/// `f32` and packed here ([`embeddings_core::quantize`]); int8 and uint8 are
/// an `InvalidInput` error naming the provider.
pub(crate) async fn embed_converting<'a, F, Fut>(
    info: &ProviderInfo,
    request: EmbedRequest<'a>,
    send: F,
) -> Result<Embeddings>
where
    F: FnOnce(EmbedRequest<'a>) -> Fut,
    Fut: std::future::Future<Output = Result<Embeddings>>,
{
    let wanted = request.output_type;
    if info.supports_output_type(wanted) {
        return send(request).await;
    }
    if !wanted.is_packed() {
        info.check_output_type(&request)?;
    }
    send(request.with_output_type(OutputType::F32))
        .await?
        .quantized(wanted)
}

#[async_trait]
impl Wrapper for BatchLayer {
    fn inner(&self) -> &dyn Embedder {
        &*self.inner
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.ensure_prepared().await?;
        if request.inputs.is_empty() {
            return Ok(Embeddings::empty_of(
                request.output_type,
                self.inner.dimension(),
            ));
        }
        let info = self.inner.info();
        if info.supports_output_type(request.output_type) {
            return self.embed_native(request).await;
        }
        embed_converting(info, request, |r| self.embed_native(r)).await
    }

    async fn prepare(&self) -> Result<()> {
        self.ensure_prepared().await
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
