//! Embedding corpora too big to hold: a stream of batches in input order with
//! memory bounded by the concurrency.

use std::ops::Range;
use std::sync::Arc;

use embeddings_core::{
    BatchConfig, EmbedRequest, Embedder, Embeddings, Error, InputType, OutputType, Result,
};
use futures::{Stream, StreamExt};

/// The vectors of consecutive inputs `range` (0-based positions in the input
/// stream): row `i` of `embeddings` belongs to input `range.start + i`.
pub type EmbeddedBatch = (Range<usize>, Embeddings);

/// How [`embed_stream`] groups and overlaps requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Inputs per batch; `None`: the embedder's `info().max_batch_size`.
    pub batch_size: Option<usize>,
    /// Batches in flight or waiting to be consumed, at most (at least 1).
    pub concurrency: usize,
    /// The input type of every request.
    pub input_type: InputType,
    /// The output type of every request.
    pub output_type: OutputType,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            batch_size: None,
            concurrency: 4,
            input_type: InputType::Document,
            output_type: OutputType::F32,
        }
    }
}

impl StreamOptions {
    /// Batch size and concurrency from the `[batch]` section (the CLI's
    /// `--batch-size` and `--concurrency`); an unset concurrency stays 4.
    pub fn from_config(config: &BatchConfig) -> Self {
        let default = StreamOptions::default();
        StreamOptions {
            batch_size: config.max_batch_size,
            concurrency: config.concurrency.unwrap_or(default.concurrency),
            ..default
        }
    }

    /// Sets the input type of every request.
    pub fn input_type(mut self, t: InputType) -> Self {
        self.input_type = t;
        self
    }

    /// Sets the output type of every request.
    pub fn output_type(mut self, t: OutputType) -> Self {
        self.output_type = t;
        self
    }

    /// Sets the batch size.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// Sets the concurrency.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
}

/// Embeds a stream of texts batch by batch, yielding each batch's vectors in
/// input order.
///
/// Inputs are read `batch_size` at a time; at most `concurrency` batches are
/// in flight or finished but not yet consumed, so memory stays bounded
/// whatever the corpus size (the stream is pulled only as fast as results are
/// consumed). A batch that fails yields an `Err` naming its input range, and
/// the stream goes on with the next batches: a consumer that wants to stop at
/// the first failure just stops reading (dropping the stream cancels the
/// batches in flight). The error's [`Error::inputs`] are positions in the
/// input stream. Every request carries the options' input and output type.
/// Nothing is spawned; the work is done while the
/// returned stream is polled.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use futures::StreamExt;
/// use embeddings::layers::{StreamOptions, embed_stream};
/// use embeddings::mock::MockEmbedder;
///
/// let embedder = Arc::new(MockEmbedder::new("mock", 8).unwrap());
/// let lines = futures::stream::iter((0..10).map(|i| format!("line {i}")));
/// let mut batches = embed_stream(embedder, lines, StreamOptions::default().batch_size(4));
/// let mut seen = 0;
/// while let Some(batch) = batches.next().await {
///     let (range, rows) = batch.unwrap();
///     assert_eq!(range.start, seen);
///     seen = range.end;
///     assert_eq!(rows.len(), range.len());
/// }
/// assert_eq!(seen, 10);
/// # });
/// ```
pub fn embed_stream<S>(
    embedder: Arc<dyn Embedder>,
    inputs: S,
    options: StreamOptions,
) -> impl Stream<Item = Result<EmbeddedBatch>> + Send + 'static
where
    S: Stream<Item = String> + Send + 'static,
{
    let batch_size = options
        .batch_size
        .unwrap_or_else(|| embedder.info().max_batch_size)
        .max(1);
    // `chunks` yields full batches except the last, so batch i starts at i * batch_size.
    inputs
        .chunks(batch_size)
        .enumerate()
        .map(move |(i, texts)| {
            let embedder = Arc::clone(&embedder);
            async move {
                let range = i * batch_size..i * batch_size + texts.len();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let name = |e: Error| {
                    let msg = format!(
                        "inputs {}..{} failed: {}",
                        range.start,
                        range.end,
                        e.message()
                    );
                    e.with_message(msg).offset_inputs(range.start, range.len())
                };
                let request = EmbedRequest::new(&refs)
                    .with_input_type(options.input_type)
                    .with_output_type(options.output_type);
                let rows = embedder.embed(request).await.map_err(name)?;
                if rows.len() != refs.len() {
                    return Err(name(Error::invalid_response(format!(
                        "{} vectors for {} inputs",
                        rows.len(),
                        refs.len()
                    ))));
                }
                Ok((range, rows))
            }
        })
        .buffered(options.concurrency.max(1))
}

/// [`embed_stream`] over an iterator of texts (lines of a file, rows of a
/// table, ...). The iterator is advanced on the task polling the stream.
pub fn embed_iter<I>(
    embedder: Arc<dyn Embedder>,
    inputs: I,
    options: StreamOptions,
) -> impl Stream<Item = Result<EmbeddedBatch>> + Send + 'static
where
    I: IntoIterator<Item = String>,
    I::IntoIter: Send + 'static,
{
    embed_stream(embedder, futures::stream::iter(inputs), options)
}
