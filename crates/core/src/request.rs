//! What one call asks for: the inputs, what they are for ([`InputType`]) and
//! how the vectors should come back ([`OutputType`]).

use std::fmt;
use std::ops::Range;

use serde::Deserialize;

use crate::RowSink;

/// What the inputs of a request are for.
///
/// Providers whose API has the notion map it natively (Cohere's
/// `input_type`, Voyage's `input_type`, Gemini's `taskType`, ...), and say so
/// in [`ProviderInfo::input_types`](crate::ProviderInfo::input_types); for the
/// others a prompt from the `[prompts]` configuration is put in front of each
/// text, and without one the type is ignored. A query stays a query through
/// every layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InputType {
    /// Texts to be searched (the default).
    #[default]
    Document,
    /// A search query.
    Query,
    /// Texts to be classified.
    Classification,
    /// Texts to be clustered.
    Clustering,
    /// Texts compared with each other (semantic similarity).
    Similarity,
}

impl InputType {
    /// Every input type, in declaration order.
    pub const ALL: [InputType; 5] = [
        InputType::Document,
        InputType::Query,
        InputType::Classification,
        InputType::Clustering,
        InputType::Similarity,
    ];

    /// The snake_case name (`"document"`, `"query"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            InputType::Document => "document",
            InputType::Query => "query",
            InputType::Classification => "classification",
            InputType::Clustering => "clustering",
            InputType::Similarity => "similarity",
        }
    }

    /// Parses [`InputType::as_str`] (case-insensitive).
    pub fn from_name(name: &str) -> Option<InputType> {
        InputType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for InputType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the vectors of a request come back.
///
/// `F32` is the default. The quantized types are produced natively by the
/// providers that list them in
/// [`ProviderInfo::output_types`](crate::ProviderInfo::output_types);
/// `Binary` and `Ubinary` are computed client-side for every other provider
/// (see [`crate::quantize`]); `Int8` and `Uint8` from a provider that does not
/// produce them are an `InvalidInput` error naming the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OutputType {
    /// 32-bit floats, one per dimension.
    #[default]
    #[serde(alias = "float")]
    F32,
    /// Signed bytes, one per dimension.
    Int8,
    /// Unsigned bytes, one per dimension.
    Uint8,
    /// One bit per dimension (component > 0), packed 8 per byte MSB-first,
    /// each byte stored as a signed byte (the unsigned value minus 128).
    Binary,
    /// One bit per dimension (component > 0), packed 8 per byte MSB-first.
    Ubinary,
}

impl OutputType {
    /// Every output type, in declaration order.
    pub const ALL: [OutputType; 5] = [
        OutputType::F32,
        OutputType::Int8,
        OutputType::Uint8,
        OutputType::Binary,
        OutputType::Ubinary,
    ];

    /// The snake_case name (`"f32"`, `"int8"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            OutputType::F32 => "f32",
            OutputType::Int8 => "int8",
            OutputType::Uint8 => "uint8",
            OutputType::Binary => "binary",
            OutputType::Ubinary => "ubinary",
        }
    }

    /// Parses [`OutputType::as_str`] (case-insensitive; `float` is `f32`).
    pub fn from_name(name: &str) -> Option<OutputType> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("float") {
            return Some(OutputType::F32);
        }
        OutputType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether the rows are bit-packed (8 dimensions per byte).
    pub const fn is_packed(self) -> bool {
        matches!(self, OutputType::Binary | OutputType::Ubinary)
    }

    /// Elements (floats or bytes) in one row of `dim` dimensions.
    pub const fn row_len(self, dim: usize) -> usize {
        if self.is_packed() {
            dim.div_ceil(8)
        } else {
            dim
        }
    }

    /// Bytes of one element: 4 for `F32`, 1 otherwise.
    pub const fn element_size(self) -> usize {
        match self {
            OutputType::F32 => 4,
            _ => 1,
        }
    }
}

impl fmt::Display for OutputType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One call: borrowed inputs, their [`InputType`], the wanted [`OutputType`],
/// and the token count of each input when a layer already computed it (so
/// that nothing is counted twice).
///
/// ```
/// use embeddings_core::{EmbedRequest, InputType, OutputType};
/// let texts = ["what is a cat?"];
/// let req = EmbedRequest::query(&texts).with_output_type(OutputType::Binary);
/// assert_eq!(req.input_type, InputType::Query);
/// assert_eq!(req.inputs, &["what is a cat?"]);
/// assert_eq!(EmbedRequest::new(&texts).input_type, InputType::Document);
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct EmbedRequest<'a> {
    /// The texts; row `i` of the answer belongs to `inputs[i]`.
    pub inputs: &'a [&'a str],
    /// What the texts are for.
    pub input_type: InputType,
    /// How the vectors come back.
    pub output_type: OutputType,
    /// Tokens of each input by the provider's count, when already known
    /// (same length as `inputs`).
    pub token_counts: Option<&'a [usize]>,
    /// Where a provider may decode the `f32` rows of its answer straight
    /// into (see [`RowSink`]); set by the batch layer.
    pub sink: Option<&'a dyn RowSink>,
}

/// Equal when the inputs, the types and the counts are, and both requests
/// have the same sink (the same object) or none.
impl PartialEq for EmbedRequest<'_> {
    fn eq(&self, other: &Self) -> bool {
        let same_sink = match (self.sink, other.sink) {
            (None, None) => true,
            (Some(a), Some(b)) => std::ptr::addr_eq(a, b),
            _ => false,
        };
        self.inputs == other.inputs
            && self.input_type == other.input_type
            && self.output_type == other.output_type
            && self.token_counts == other.token_counts
            && same_sink
    }
}

impl Eq for EmbedRequest<'_> {}

impl<'a> EmbedRequest<'a> {
    /// Documents, as `f32`.
    #[inline]
    pub fn new(inputs: &'a [&'a str]) -> Self {
        EmbedRequest {
            inputs,
            input_type: InputType::Document,
            output_type: OutputType::F32,
            token_counts: None,
            sink: None,
        }
    }

    /// Documents, as `f32` (the same as [`EmbedRequest::new`]).
    #[inline]
    pub fn documents(inputs: &'a [&'a str]) -> Self {
        EmbedRequest::new(inputs)
    }

    /// Queries, as `f32`.
    #[inline]
    pub fn query(inputs: &'a [&'a str]) -> Self {
        EmbedRequest::new(inputs).with_input_type(InputType::Query)
    }

    /// Sets the input type.
    #[inline]
    pub fn with_input_type(mut self, input_type: InputType) -> Self {
        self.input_type = input_type;
        self
    }

    /// Sets the output type.
    #[inline]
    pub fn with_output_type(mut self, output_type: OutputType) -> Self {
        self.output_type = output_type;
        self
    }

    /// Records the inputs' token counts (ignored unless one per input).
    #[inline]
    pub fn with_token_counts(mut self, counts: &'a [usize]) -> Self {
        self.token_counts = (counts.len() == self.inputs.len()).then_some(counts);
        self
    }

    /// Lets the provider decode the answer's `f32` rows straight into
    /// `sink` (see [`RowSink`]).
    #[inline]
    pub fn with_sink(mut self, sink: &'a dyn RowSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The same request without a sink: what a layer that reads or changes
    /// the rows forwards.
    #[inline]
    pub fn without_sink(mut self) -> Self {
        self.sink = None;
        self
    }

    /// The same request (types kept) for other inputs; token counts and
    /// the sink are dropped.
    #[inline]
    pub fn with_inputs<'b>(&self, inputs: &'b [&'b str]) -> EmbedRequest<'b> {
        EmbedRequest {
            inputs,
            input_type: self.input_type,
            output_type: self.output_type,
            token_counts: None,
            sink: None,
        }
    }

    /// The sub-request of the inputs in `range` (token counts kept; the
    /// sink, which holds the rows of every input, dropped).
    /// Panics when the range is out of bounds, like slice indexing.
    #[inline]
    pub fn slice(&self, range: Range<usize>) -> EmbedRequest<'a> {
        EmbedRequest {
            inputs: &self.inputs[range.clone()],
            input_type: self.input_type,
            output_type: self.output_type,
            token_counts: self.token_counts.map(|c| &c[range]),
            sink: None,
        }
    }

    /// The sink, when the provider may use it for an answer of `rows` rows
    /// of `dim` `f32` values: the request asks for `f32`, has `rows` inputs
    /// and the sink has that shape.
    #[inline]
    pub fn sink_for(&self, rows: usize, dim: usize) -> Option<&'a dyn RowSink> {
        self.sink.filter(|s| {
            self.output_type == OutputType::F32
                && rows == self.inputs.len()
                && dim > 0
                && s.shape() == (rows, dim)
        })
    }

    /// Number of inputs.
    #[inline]
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether there are no inputs.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Total tokens by `count` (used per input when no counts travel with the request).
    pub fn total_tokens(&self, count: impl Fn(&str) -> usize) -> usize {
        match self.token_counts {
            Some(c) => c.iter().sum(),
            None => self.inputs.iter().map(|t| count(t)).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in InputType::ALL {
            assert_eq!(InputType::from_name(t.as_str()), Some(t));
        }
        for t in OutputType::ALL {
            assert_eq!(OutputType::from_name(t.as_str()), Some(t));
        }
        assert_eq!(OutputType::from_name("FLOAT"), Some(OutputType::F32));
        assert_eq!(InputType::from_name("nope"), None);
    }

    #[test]
    fn slices_keep_types_and_counts() {
        let texts = ["a", "bb", "ccc"];
        let counts = [1, 2, 3];
        let req = EmbedRequest::query(&texts)
            .with_output_type(OutputType::Int8)
            .with_token_counts(&counts);
        let s = req.slice(1..3);
        assert_eq!(s.inputs, &["bb", "ccc"]);
        assert_eq!(s.token_counts, Some(&counts[1..3]));
        assert_eq!(
            (s.input_type, s.output_type),
            (InputType::Query, OutputType::Int8)
        );
        assert_eq!(s.total_tokens(|_| 100), 5);
        let other = ["x"];
        let o = req.with_inputs(&other);
        assert_eq!((o.input_type, o.token_counts), (InputType::Query, None));
        // Counts of the wrong length are not kept.
        assert_eq!(
            EmbedRequest::new(&texts)
                .with_token_counts(&[1])
                .token_counts,
            None
        );
    }

    #[test]
    fn a_sink_is_offered_only_for_f32_rows_of_its_shape_and_never_to_a_part() {
        let texts = ["a", "b"];
        let mut rows = [0.0f32; 6];
        let sink = crate::SliceSink::new(&mut rows, 3).unwrap();
        let req = EmbedRequest::new(&texts).with_sink(&sink);
        assert!(req.sink_for(2, 3).is_some());
        assert!(req.sink_for(2, 4).is_none(), "another dimension");
        assert!(req.sink_for(1, 3).is_none(), "another row count");
        assert!(
            req.with_output_type(OutputType::Int8)
                .sink_for(2, 3)
                .is_none()
        );
        assert!(req.slice(0..1).sink.is_none() && req.with_inputs(&texts).sink.is_none());
        assert!(req.without_sink().sink.is_none());
        // Equality: same sink object or none.
        assert_eq!(req, req);
        assert_ne!(req, req.without_sink());
        let mut other_rows = [0.0f32; 6];
        let other = crate::SliceSink::new(&mut other_rows, 3).unwrap();
        assert_ne!(req, EmbedRequest::new(&texts).with_sink(&other));
        assert_eq!(EmbedRequest::new(&texts), EmbedRequest::new(&texts));
    }

    #[test]
    fn packed_rows_take_a_bit_per_dimension() {
        assert_eq!(OutputType::Binary.row_len(9), 2);
        assert_eq!(OutputType::Ubinary.row_len(8), 1);
        assert_eq!(OutputType::Int8.row_len(9), 9);
        assert_eq!(OutputType::F32.element_size(), 4);
    }
}
