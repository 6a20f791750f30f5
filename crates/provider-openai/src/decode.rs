//! Request encoding and response decoding for `POST /embeddings`, public so
//! that benchmarks (and other OpenAI-compatible clients) can use them.
//!
//! The response decoder writes every vector straight into one contiguous
//! [`Embeddings`] buffer, at the row its `index` names: no `Vec<Vec<f32>>`,
//! no `serde_json::Value`, and no float parsing at all for base64. It accepts
//! both encodings whatever was asked for (some compatible servers ignore
//! `encoding_format`), and refuses with [`ErrorKind::InvalidResponse`]
//! (never a partial result) a wrong count, a missing, duplicated or
//! out-of-range `index`, a row of the wrong dimension, a value that is not
//! finite, and base64 that is malformed or of the wrong length.
//!
//! ```
//! use embeddings_openai::decode::{decode_response, encode_request, EmbeddingRequest, EncodingFormat};
//!
//! let body = encode_request(&EmbeddingRequest {
//!     model: "text-embedding-3-small",
//!     input: &["hello"],
//!     encoding_format: EncodingFormat::Base64,
//!     dimensions: Some(2),
//!     user: None,
//! })
//! .unwrap();
//! assert!(body.starts_with(br#"{"model":"text-embedding-3-small","input":["hello"]"#));
//!
//! // [0.6, 0.8] as little-endian f32, base64: "mpkZP83MTD8="
//! let answer = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":"mpkZP83MTD8="}],
//!                   "model":"text-embedding-3-small","usage":{"prompt_tokens":1,"total_tokens":1}}"#;
//! let e = decode_response(answer, 1, 2).unwrap();
//! assert_eq!(e.row(0), &[0.6, 0.8]);
//! assert_eq!(e.usage().unwrap().total_tokens, 1);
//! ```
//!
//! [`ErrorKind::InvalidResponse`]: embeddings_core::ErrorKind::InvalidResponse

use std::borrow::Cow;
use std::fmt;

use embeddings_core::{Embeddings, Error, ErrorKind, Result, RowSink, Usage};
use embeddings_http::json::{self, RowBuffer, RowStream, Scanner, Step};
use embeddings_http::{MAX_EXCERPT, excerpt};
use serde::{Deserialize, Serialize};

/// How the server is asked to encode the vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// Little-endian `f32`s in base64: about a third of the bytes of
    /// `float`, decoded without any float parsing. The default.
    #[default]
    Base64,
    /// JSON arrays of numbers, for servers without base64 support.
    Float,
}

impl EncodingFormat {
    /// The wire name: `"base64"` or `"float"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EncodingFormat::Base64 => "base64",
            EncodingFormat::Float => "float",
        }
    }
}

impl fmt::Display for EncodingFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of one `POST /embeddings` request. Borrows everything.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EmbeddingRequest<'a> {
    /// The model (Azure ignores it and uses the deployment's).
    pub model: &'a str,
    /// The texts, in order.
    pub input: &'a [&'a str],
    /// How the vectors should be encoded.
    pub encoding_format: EncodingFormat,
    /// The output dimension; left out of the body when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<usize>,
    /// An end-user id for abuse monitoring; left out when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
}

/// Serialises the request body in one allocation sized from the inputs.
pub fn encode_request(request: &EmbeddingRequest<'_>) -> Result<Vec<u8>> {
    let text: usize = request.input.iter().map(|t| t.len() + 3).sum();
    let mut out = Vec::with_capacity(
        96 + request.model.len() + text + request.user.map_or(0, |u| u.len() + 12),
    );
    serde_json::to_writer(&mut out, request).map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("cannot serialise the request: {e}"),
        )
    })?;
    Ok(out)
}

pub use embeddings_http::json::RowError;
pub use embeddings_http::max_response_len;

/// Decodes standard base64 (padding optional) of little-endian `f32`s into
/// `out`, which must be exactly filled. Non-finite values are refused.
/// `scratch` is a reusable byte buffer. (The toolkit's row decoder.)
pub fn decode_base64_row(
    text: &str,
    out: &mut [f32],
    scratch: &mut Vec<u8>,
) -> std::result::Result<(), RowError> {
    json::decode_base64_into(text.as_bytes(), out, scratch)
}

/// Parses a JSON array of numbers into `out`, which must be exactly filled
/// (the toolkit's row parser).
pub fn parse_float_row(text: &str, out: &mut [f32]) -> std::result::Result<(), RowError> {
    json::parse_float_row(text, out)
}

/// Decodes a `POST /embeddings` answer of `expected_rows` vectors of `dim`
/// values (`0` = learn the dimension from the first row; every row must
/// then agree) into one contiguous buffer, row `i` from the item whose
/// `index` is `i`. Usage is set when the server reported it.
///
/// A single pass over the body: base64 strings are located by their
/// expected length and decoded in place, numbers are parsed once, straight
/// into their row (when `index` comes before `embedding`, as OpenAI sends
/// it; otherwise through one reused row of scratch). Unknown keys are
/// skipped with full JSON validation.
///
/// Every failure is an [`ErrorKind::InvalidResponse`] error; a partial result
/// is never returned. A server's `error` object in a 200 answer is quoted
/// as a short excerpt (the provider masks its key in it).
///
/// [`ErrorKind::InvalidResponse`]: embeddings_core::ErrorKind::InvalidResponse
pub fn decode_response(body: &[u8], expected_rows: usize, dim: usize) -> Result<Embeddings> {
    decode_response_into(body, expected_rows, dim, None)
}

/// [`decode_response`] into `sink` when the request's sink takes this
/// answer ([`EmbedRequest::sink_for`](embeddings_core::EmbedRequest::sink_for)):
/// the rows go straight into it and the result has none (usage kept);
/// otherwise as [`decode_response`].
pub fn decode_response_into(
    body: &[u8],
    expected_rows: usize,
    dim: usize,
    sink: Option<&dyn RowSink>,
) -> Result<Embeddings> {
    response_stream(expected_rows, dim, sink)?.decode(body)
}

/// The decoder of [`decode_response_into`] for a body that streams in
/// ([`HttpClient::call_into`](embeddings_http::HttpClient::call_into)):
/// feed it the body in any pieces; the rows and every check are those of
/// decoding the whole body at once.
///
/// ```
/// use embeddings_openai::decode::response_stream;
/// let body = br#"{"data":[{"index":0,"embedding":[0.5,1]},{"index":1,"embedding":[2,3]}]}"#;
/// let mut stream = response_stream(2, 2, None)?;
/// let n = stream.feed(&body[..30], false)?; // the envelope's start, no whole row yet
/// let rest = [&body[n..30], &body[30..]].concat();
/// stream.feed(&rest, true)?;
/// assert_eq!(stream.finish()?.row(1), &[2.0, 3.0]);
/// # Ok::<(), embeddings_core::Error>(())
/// ```
pub fn response_stream(
    expected_rows: usize,
    dim: usize,
    sink: Option<&dyn RowSink>,
) -> Result<RowStream<'_, ResponseEnvelope>> {
    RowStream::new(ResponseEnvelope::default(), sink, expected_rows, dim, true)
}

/// The OpenAI envelope, read unit by unit ([`json::Envelope`]): the keys of
/// the response object (`data` item by item, `usage`, an `error` a 200
/// answer may hold) and whether its rows were float arrays.
#[derive(Debug, Default)]
pub struct ResponseEnvelope {
    state: State,
    usage: Option<Usage>,
    saw_data: bool,
    server_error: Option<String>,
    /// Items of `data` read.
    position: usize,
    /// Whether the first item's embedding was an array of numbers.
    floats: Option<bool>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `{`.
    #[default]
    Start,
    /// At a key of the response object.
    Members,
    /// Inside `data`, at an item.
    Items,
}

impl ResponseEnvelope {
    /// Whether the answer's rows were JSON arrays of numbers (its first
    /// item's embedding), not base64 strings; `false` before a row was read.
    pub fn held_floats(&self) -> bool {
        self.floats == Some(true)
    }

    /// The response object's opening brace (`false`: it was `{}`).
    fn start(&mut self, s: &mut Scanner<'_>) -> Step<bool> {
        s.eat(b'{', "'{' (an embeddings response object)")?;
        if s.eat_if(b'}') {
            return Ok(false);
        }
        self.state = State::Members;
        Ok(true)
    }

    /// One `"key": value` of the response object and the separator after it.
    fn member(&mut self, s: &mut Scanner<'_>) -> Step<bool> {
        let key = s.string()?;
        s.eat(b':', "':'")?;
        match &*key {
            b"data" => {
                if self.saw_data {
                    return Err("response has two `data` arrays".to_owned());
                }
                if s.is_null() {
                    return s.more(b'}');
                }
                s.eat(b'[', "'[' (the `data` array)")?;
                if s.eat_if(b']') {
                    let more = s.more(b'}')?;
                    self.saw_data = true;
                    return Ok(more);
                }
                self.saw_data = true;
                self.state = State::Items;
                Ok(true)
            }
            b"usage" => {
                let usage = usage(s)?;
                let more = s.more(b'}')?;
                if usage.is_some() {
                    self.usage = usage;
                }
                Ok(more)
            }
            b"error" => {
                s.ws();
                let start = s.pos();
                s.skip_value(1)?;
                let raw = s.since(start);
                let error = (raw != "null").then(|| excerpt(&raw, MAX_EXCERPT));
                let more = s.more(b'}')?;
                if error.is_some() {
                    self.server_error = error;
                }
                Ok(more)
            }
            _ => {
                s.skip_value(1)?;
                s.more(b'}')
            }
        }
    }

    /// One item of `data`, placed in its row, and the separator after it
    /// (after the last, the response object's one too).
    fn item(&mut self, s: &mut Scanner<'_>, rows: &mut RowBuffer<'_>) -> Step<bool> {
        let position = self.position;
        let expected = rows.rows();
        if position >= expected {
            return Err(format!(
                "more than {expected} embeddings for {expected} inputs"
            ));
        }
        s.eat(b'{', "'{' (an embedding object)")?;
        let mut index: Option<usize> = None;
        let mut pending = Pending::None;
        let mut floats = false;
        if s.eat_if(b'}') {
            return Err(format!("item {position} has no `index`"));
        }
        loop {
            let key = s.string()?;
            s.eat(b':', "':'")?;
            match &*key {
                b"index" => {
                    if index.is_some() {
                        return Err(format!("item {position} has two `index` keys"));
                    }
                    let what = || format!("the `index` of item {position}");
                    let raw = s.integer(what).map_err(|e| {
                        if e.ends_with("out of range") {
                            e.replace(&what(), "embedding index")
                                + &format!(" for {expected} inputs")
                        } else {
                            e
                        }
                    })?;
                    index = Some(rows.claim(raw)?);
                }
                b"embedding" => {
                    if !matches!(pending, Pending::None) {
                        return Err(format!("item {position} has two `embedding` keys"));
                    }
                    s.ws();
                    floats = s.peek() == Some(b'[');
                    pending = embedding(s, rows, index, position)?;
                }
                _ => s.skip_value(2)?,
            }
            if !s.more(b'}')? {
                break;
            }
        }
        let Some(index) = index else {
            return Err(format!("item {position} has no `index`"));
        };
        match pending {
            Pending::None => return Err(format!("item {position} has no `embedding`")),
            Pending::Placed => {}
            Pending::Base64(text) => rows.place_base64(index, &text)?,
            Pending::Floats => rows.place_floats(index)?,
        }
        let more = if s.more(b']')? {
            true
        } else {
            self.state = State::Members;
            s.more(b'}')?
        };
        rows.done(index);
        self.position += 1;
        self.floats.get_or_insert(floats);
        Ok(more)
    }
}

impl json::Envelope for ResponseEnvelope {
    fn unit(&mut self, s: &mut Scanner<'_>, rows: &mut RowBuffer<'_>) -> Step<bool> {
        // A unit that fails changes nothing: `item` sets the state back.
        let state = self.state;
        let result = match state {
            State::Start => self.start(s),
            State::Members => self.member(s),
            State::Items => self.item(s, rows),
        };
        if result.is_err() {
            self.state = state;
        }
        result
    }

    fn finish(self, rows: RowBuffer<'_>) -> Result<Embeddings> {
        if !self.saw_data {
            let why = match &self.server_error {
                Some(e) => format!("response has no `data` array; the server says: {e}"),
                None => "response has no `data` array".to_owned(),
            };
            return Err(Error::invalid_response(why));
        }
        let mut out = rows.finish()?;
        out.set_usage(self.usage);
        Ok(out)
    }
}

/// An item's embedding that could not go to its row yet (its `index` came
/// later, or the dimension is still unknown).
enum Pending<'a> {
    None,
    Base64(Cow<'a, [u8]>),
    /// In the row buffer's scratch row.
    Floats,
    Placed,
}

/// A `usage` object (or `null`): prompt and total tokens.
fn usage(s: &mut Scanner<'_>) -> Step<Option<Usage>> {
    if s.is_null() {
        return Ok(None);
    }
    s.eat(b'{', "'{' (usage)")?;
    let (mut prompt, mut total) = (None, None);
    if !s.eat_if(b'}') {
        loop {
            let key = s.string()?;
            s.eat(b':', "':'")?;
            match &*key {
                b"prompt_tokens" if !s.is_null() => {
                    prompt = Some(s.integer(|| "usage.prompt_tokens".to_owned())?);
                }
                b"total_tokens" if !s.is_null() => {
                    total = Some(s.integer(|| "usage.total_tokens".to_owned())?);
                }
                b"prompt_tokens" | b"total_tokens" => {}
                _ => s.skip_value(2)?,
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    Ok((prompt.is_some() || total.is_some()).then(|| {
        let p = prompt.or(total).unwrap_or(0);
        Usage {
            prompt_tokens: p,
            total_tokens: total.unwrap_or(p),
            cached_rows: 0,
        }
    }))
}

/// Reads an `embedding` value: straight into its row when the index and
/// dimension are known, else kept for [`ResponseEnvelope::item`] to place.
fn embedding<'a>(
    s: &mut Scanner<'a>,
    rows: &mut RowBuffer<'_>,
    index: Option<usize>,
    position: usize,
) -> Step<Pending<'a>> {
    s.ws();
    let label = |index: Option<usize>| match index {
        Some(i) => format!("embedding {i}"),
        None => format!("the embedding of item {position}"),
    };
    match s.peek() {
        Some(b'"') => {
            if let Some(index) = index {
                if rows.try_base64_at(s, index) {
                    return Ok(Pending::Placed);
                }
            }
            let text = s.string()?;
            match index {
                Some(index) if rows.ready() => {
                    rows.place_base64(index, &text)?;
                    Ok(Pending::Placed)
                }
                _ => Ok(Pending::Base64(text)),
            }
        }
        Some(b'[') => {
            if let Some(index) = index {
                let (b, i) = (s.bytes(), s.pos());
                if let Some(row) = rows.row_mut(index) {
                    let end = json::parse_floats_into(b, i, row)
                        .map_err(|e| format!("embedding {index}: {e}"))?;
                    s.set_pos(end);
                    return Ok(Pending::Placed);
                }
            }
            let dim = rows.dim();
            rows.read_floats(s, dim)
                .map_err(|e| format!("{}: {e}", label(index)))?;
            Ok(Pending::Floats)
        }
        _ => {
            let start = s.pos();
            s.skip_value(2)?;
            let raw = s.since(start);
            Err(format!(
                "{} is neither a base64 string nor an array of numbers: {}",
                label(index),
                excerpt(&raw, 40)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    fn b64(v: &[f32]) -> String {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        STANDARD.encode(bytes)
    }

    fn body_b64(rows: &[(i64, &[f32])]) -> String {
        let items: Vec<String> = rows
            .iter()
            .map(|(i, v)| {
                format!(
                    r#"{{"object":"embedding","index":{i},"embedding":"{}"}}"#,
                    b64(v)
                )
            })
            .collect();
        format!(
            r#"{{"object":"list","data":[{}],"model":"m","usage":{{"prompt_tokens":3,"total_tokens":3}}}}"#,
            items.join(",")
        )
    }

    fn body_float(rows: &[(i64, &[f32])]) -> String {
        let items: Vec<String> = rows
            .iter()
            .map(|(i, v)| {
                format!(
                    r#"{{"embedding":{},"index":{i},"object":"embedding"}}"#,
                    serde_json::to_string(v).unwrap()
                )
            })
            .collect();
        format!(r#"{{"data":[{}],"model":"m"}}"#, items.join(","))
    }

    fn err(body: &str, rows: usize, dim: usize) -> String {
        let e = decode_response(body.as_bytes(), rows, dim).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidResponse, "{e}");
        e.message().to_owned()
    }

    const A: [f32; 3] = [0.25, -0.5, 1.0];
    const B: [f32; 3] = [1e-7, 3.5, -0.0];

    #[test]
    fn base64_and_float_rows_are_placed_by_index() {
        for body in [
            body_b64(&[(1, &B), (0, &A)]),
            body_float(&[(1, &B), (0, &A)]),
        ] {
            let e = decode_response(body.as_bytes(), 2, 3).unwrap();
            assert_eq!(e.row(0), &A);
            assert_eq!(e.row(1), &B);
            let e = decode_response(body.as_bytes(), 2, 0).unwrap();
            assert_eq!(e.dim(), 3);
            assert_eq!(e.row(1), &B);
        }
        let e = decode_response(body_b64(&[(0, &A)]).as_bytes(), 1, 3).unwrap();
        assert_eq!(e.usage(), Some(Usage::tokens(3)));
    }

    #[test]
    fn answers_decode_straight_into_a_sink_and_a_bad_one_leaves_it_unfilled() {
        use embeddings_core::{RowSink, SliceSink};
        for (body, usage) in [
            (body_b64(&[(1, &B), (0, &A)]), Some(Usage::tokens(3))),
            (body_float(&[(1, &B), (0, &A)]), None),
        ] {
            let mut rows = [0.0f32; 6];
            {
                let sink = SliceSink::new(&mut rows, 3).unwrap();
                let e = decode_response_into(body.as_bytes(), 2, 3, Some(&sink)).unwrap();
                assert!(e.is_empty(), "the rows are in the sink, not in the result");
                assert_eq!((e.dim(), e.usage()), (3, usage));
                assert!(sink.is_filled());
            }
            assert_eq!(rows[..3], A);
            assert_eq!(rows[3..], B);
            // Missing a row, or another shape: an error, the sink unfilled.
            let mut rows = [0.0f32; 9];
            let sink = SliceSink::new(&mut rows, 3).unwrap();
            assert!(decode_response_into(body.as_bytes(), 3, 3, Some(&sink)).is_err());
            assert!(decode_response_into(body.as_bytes(), 2, 3, Some(&sink)).is_err());
            assert!(!sink.is_filled());
        }
    }

    #[test]
    fn escaped_slashes_and_unpadded_base64_are_accepted() {
        let v = [f32::from_bits(0xffff_ff3f), 2.0]; // bytes with '/' in base64
        let s = b64(&v);
        assert!(s.contains('/'), "{s}");
        let escaped = s.replace('/', "\\/");
        let body = format!(r#"{{"data":[{{"index":0,"embedding":"{escaped}"}}]}}"#);
        // 0xffffff3f is a NaN: refused, but only after decoding the escapes.
        assert!(err(&body, 1, 2).contains("not finite"));
        let v = [0.1f32, 0.2];
        let s = b64(&v).trim_end_matches('=').to_owned();
        let body = format!(r#"{{"data":[{{"index":0,"embedding":"{s}"}}]}}"#);
        assert_eq!(decode_response(body.as_bytes(), 1, 2).unwrap().row(0), &v);
    }

    #[test]
    fn integrity_failures_are_invalid_response() {
        let cases: Vec<(String, usize, usize, &str)> = vec![
            (body_b64(&[(0, &A)]), 2, 3, "expected 2 embeddings"),
            (body_b64(&[(0, &A), (1, &B)]), 1, 3, "more than 1"),
            (body_b64(&[(0, &A), (0, &B)]), 2, 3, "appears twice"),
            (body_b64(&[(0, &A), (2, &B)]), 2, 3, "out of range"),
            (body_b64(&[(-1, &A)]), 1, 3, "out of range"),
            (body_b64(&[(0, &A)]), 1, 4, "does not hold 4"),
            (body_float(&[(0, &A)]), 1, 4, "3 values, expected 4"),
            (body_float(&[(0, &A)]), 1, 2, "more than 2 values"),
            (body_b64(&[(0, &A)]).replace("\"index\":0,", "").replace("}]", ",\"index\":0}]"), 1, 2, "does not hold 2"),
            (r#"{"data":[{"index":0,"embedding":[1,2,3]}],"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#.into(), 1, 3, "nested"),
            (r#"{"data":[{"index":0,"embedding":[1,2,3]}]} x"#.into(), 1, 3, "the end of the response"),
            (r#"{"data":[{"index":0,"embedding":[1,2,3]}],"model":"a"}"#.into(), 1, 3, "control"),
            (r#"{"data":[{"index":0.0,"embedding":[1,2,3]}]}"#.into(), 1, 3, "not an integer"),
            (r#"{"data":[{"index":99999999999999999999999,"embedding":[1,2,3]}]}"#.into(), 1, 3, "out of range"),
            (r#"{"data":[{"index":0,"embedding":[1,2,3],"index":0}]}"#.into(), 1, 3, "two `index`"),
            (r#"{"data":[{"index":0,"embedding":[]}]}"#.into(), 1, 3, "0 values, expected 3"),
            (r#"{"data":[{"index":0,"embedding":[]}]}"#.into(), 1, 0, "is empty"),
            (r#"{"data":[{"index":0,"embedding":[1,2,3]}],"usage":{"prompt_tokens":-1}}"#.into(), 1, 3, "out of range"),
            (r#"{"data":[{"index":0}]}"#.into(), 1, 3, "no `embedding`"),
            (
                r#"{"data":[{"embedding":[1,2,3]}]}"#.into(),
                1,
                3,
                "no `index`",
            ),
            (
                r#"{"data":[{"index":0,"embedding":"@@@@"}]}"#.into(),
                1,
                3,
                "does not hold",
            ),
            (
                r#"{"data":[{"index":0,"embedding":"@@@@@@@@@@@@@@@@"}]}"#.into(),
                1,
                3,
                "malformed base64",
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,null,3]}]}"#.into(),
                1,
                3,
                "value 1 is not a number",
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,"2",3]}]}"#.into(),
                1,
                3,
                "value 1 is not a number",
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,01,3]}]}"#.into(),
                1,
                3,
                "value 1 is not a number",
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,+1,3]}]}"#.into(),
                1,
                3,
                "value 1 is not a number",
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,2,3]}],"created":01}"#.into(),
                1,
                3,
                "expected a number",
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,1e39,3]}]}"#.into(),
                1,
                3,
                "value 1 is not finite",
            ),
            (
                r#"{"data":[{"index":0,"embedding":null}]}"#.into(),
                1,
                3,
                "neither",
            ),
            (
                r#"{"data":[{"index":"0","embedding":[1,2,3]}]}"#.into(),
                1,
                3,
                "not an integer",
            ),
            (r#"{"object":"list"}"#.into(), 1, 3, "no `data`"),
            (
                r#"{"error":{"message":"boom"}}"#.into(),
                1,
                3,
                "the server says",
            ),
(r#"{"data":[{"index":0,"embedding":[1,2"#.into(), 1, 3, "truncated"),
            (r#"{"data":[{"index":0,"embedding":[1,2,"#.into(), 1, 3, "truncated"),
            (r#"{"data":[{"index":0,"embedding":"AAAA"#.into(), 1, 3, "truncated"),
            (r#"{"data":[{"index":0,"embedding":[1,2,3]}"#.into(), 1, 3, "truncated"),
            ("not json".into(), 1, 3, "malformed"),
            ("[]".into(), 1, 3, "malformed"),
        ];
        for (body, rows, dim, want) in cases {
            let m = err(&body, rows, dim);
            assert!(m.contains(want), "{body}: {m:?} should contain {want:?}");
        }
        let nan = body_b64(&[(0, &[0.0, f32::NAN, 1.0])]);
        assert!(err(&nan, 1, 3).contains("value 1 is not finite"));
        let inf = body_b64(&[(0, &[f32::INFINITY, 0.0, 1.0])]);
        assert!(err(&inf, 1, 3).contains("value 0 is not finite"));
    }

    #[test]
    fn pretty_printed_and_reordered_answers_decode() {
        let body = format!(
            "{{\n  \"usage\": null,\n  \"data\" : [\n    {{ \"embedding\" : \"{}\" ,\n      \"extra\": {{\"a\": [1, true, false, null, \"s\\u00e9\\n\"]}},\n      \"index\" : 0 }} ,\n    {{ \"index\": 1, \"embedding\": [ 1e-7 , 3.5,\n -0.0 ] }}\n  ]\n}}\n",
            b64(&A)
        );
        let e = decode_response(body.as_bytes(), 2, 3).unwrap();
        assert_eq!(e.row(0), &A);
        assert_eq!(e.row(1), &B);
        assert_eq!(e.usage(), None);
        let e = decode_response(body.as_bytes(), 2, 0).unwrap();
        assert_eq!(e.row(1), &B);
        // An escaped key still names the field.
        let body = r#"{"\u0064ata":[{"index":0,"embedding":[1.5]}],"usage":{"total_tokens":4}}"#;
        let e = decode_response(body.as_bytes(), 1, 1).unwrap();
        assert_eq!(e.row(0), &[1.5]);
        assert_eq!(e.usage().unwrap().prompt_tokens, 4);
        assert!(decode_response(br#"{"data":[]}"#, 0, 3).unwrap().is_empty());
    }

    #[test]
    fn request_leaves_out_unset_fields() {
        let body = encode_request(&EmbeddingRequest {
            model: "m",
            input: &["a", "b\"c"],
            encoding_format: EncodingFormat::Float,
            dimensions: None,
            user: None,
        })
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"model":"m","input":["a","b\"c"],"encoding_format":"float"}"#
        );
        let body = encode_request(&EmbeddingRequest {
            model: "m",
            input: &["a"],
            encoding_format: EncodingFormat::Base64,
            dimensions: Some(8),
            user: Some("u1"),
        })
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"model":"m","input":["a"],"encoding_format":"base64","dimensions":8,"user":"u1"}"#
        );
    }

    mod props {
        use super::*;
        use embeddings_http::{BodyCap, BodyFeeder};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn decoder_never_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512), rows in 0usize..4, dim in 0usize..5) {
                let _ = decode_response(&body, rows, dim);
            }

            #[test]
            fn decoder_never_panics_on_mangled_answers(v in proptest::collection::vec(any::<f32>(), 1..8), cut in 0usize..400, byte in any::<u8>(), at in 0usize..400) {
                let mut body = body_b64(&[(0, &v)]).into_bytes();
                if let Some(b) = body.get_mut(at) { *b = byte; }
                body.truncate(cut.min(body.len()));
                let _ = decode_response(&body, 1, v.len());
                let mut body = body_float(&[(0, &v)]).into_bytes();
                if let Some(b) = body.get_mut(at) { *b = byte; }
                let _ = decode_response(&body, 1, v.len());
            }

            #[test]
            fn row_decoders_never_panic(s in ".{0,64}", dim in 0usize..8) {
                let mut out = vec![0.0; dim];
                let _ = decode_base64_row(&s, &mut out, &mut Vec::new());
                let _ = parse_float_row(&s, &mut out);
            }

            #[test]
            fn base64_round_trips_any_finite_vector(v in proptest::collection::vec(any::<f32>().prop_filter("finite", |x| x.is_finite()), 1..64)) {
                let e = decode_response(body_b64(&[(0, &v)]).as_bytes(), 1, v.len()).unwrap();
                prop_assert_eq!(bits(e.row(0)), bits(&v));
            }

            #[test]
            fn json_round_trips_any_finite_vector(v in proptest::collection::vec(any::<f32>().prop_filter("finite", |x| x.is_finite()), 1..64)) {
                let e = decode_response(body_float(&[(0, &v)]).as_bytes(), 1, v.len()).unwrap();
                prop_assert_eq!(bits(e.row(0)), bits(&v));
                // The same values printed as f64 (as Python servers do) round-trip too.
                let wide: Vec<f64> = v.iter().map(|x| f64::from(*x)).collect();
                let body = format!(r#"{{"data":[{{"index":0,"embedding":{}}}]}}"#, serde_json::to_string(&wide).unwrap());
                let e = decode_response(body.as_bytes(), 1, v.len()).unwrap();
                prop_assert_eq!(bits(e.row(0)), bits(&v));
            }

            #[test]
            fn rows_land_at_their_index_whatever_the_order(perm in Just((0..6).collect::<Vec<usize>>()).prop_shuffle()) {
                let vs: Vec<Vec<f32>> = (0..6).map(|i| vec![i as f32, -(i as f32)]).collect();
                let rows: Vec<(i64, &[f32])> = perm.iter().map(|&i| (i as i64, vs[i].as_slice())).collect();
                let e = decode_response(body_b64(&rows).as_bytes(), 6, 2).unwrap();
                for (i, v) in vs.iter().enumerate() { prop_assert_eq!(e.row(i), v.as_slice()); }
                let e = decode_response(body_float(&rows).as_bytes(), 6, 2).unwrap();
                for (i, v) in vs.iter().enumerate() { prop_assert_eq!(e.row(i), v.as_slice()); }
            }
        }

        fn bits(v: &[f32]) -> Vec<u32> {
            v.iter().map(|x| x.to_bits()).collect()
        }

        /// The body fed in pieces of `cuts` sizes through the `BodyFeeder`
        /// that `read_body_into` uses, into a sink or not: rows (bits) and
        /// usage, or the message.
        fn streamed(
            body: &[u8],
            rows: usize,
            dim: usize,
            cuts: &[usize],
            into_sink: bool,
        ) -> std::result::Result<(Vec<u32>, Option<Usage>), String> {
            let mut dst = vec![0.0f32; rows * dim];
            let slice = embeddings_core::SliceSink::new(&mut dst, dim.max(1));
            let sink = slice
                .as_ref()
                .filter(|_| into_sink && dim > 0)
                .map(|s| s as &dyn RowSink);
            let run = || -> Result<Embeddings> {
                let mut stream = response_stream(rows, dim, sink)?;
                let mut feeder = BodyFeeder::new(BodyCap::Bytes(usize::MAX / 2), &mut stream);
                let mut at = 0;
                for &cut in cuts.iter().cycle().take(body.len() + 1) {
                    if at >= body.len() {
                        break;
                    }
                    let end = (at + cut.max(1)).min(body.len());
                    feeder.push(&body[at..end])?;
                    at = end;
                }
                feeder.finish()?;
                stream.finish()
            };
            let out = run().map_err(|e| e.message().to_owned());
            let filled = sink.is_some_and(|s| s.is_filled());
            let e = out?;
            if filled {
                prop_assert_eq_like(e.is_empty(), "a sink's answer has no rows of its own")?;
                return Ok((bits(&dst), e.usage()));
            }
            prop_assert_eq_like(
                !into_sink || dim == 0,
                "an answer decoded into a sink left it unfilled",
            )?;
            Ok((bits(e.as_flat()), e.usage()))
        }

        fn prop_assert_eq_like(ok: bool, what: &str) -> std::result::Result<(), String> {
            if ok {
                Ok(())
            } else {
                Err(format!("broken: {what}"))
            }
        }

        fn whole(
            body: &[u8],
            rows: usize,
            dim: usize,
        ) -> std::result::Result<(Vec<u32>, Option<Usage>), String> {
            decode_response(body, rows, dim)
                .map(|e| (bits(e.as_flat()), e.usage()))
                .map_err(|e| e.message().to_owned())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any split of any answer, good or broken, decodes as the
            /// whole body does: the same rows or the same refusal.
            #[test]
            fn an_answer_fed_in_any_pieces_decodes_as_the_whole_body(
                vs in proptest::collection::vec(proptest::collection::vec(-2.0f32..2.0, 3), 1..5),
                perm_seed in any::<u64>(),
                floats in any::<bool>(),
                usage_first in any::<bool>(),
                mangle in proptest::option::of((0usize..600, any::<u8>())),
                cut in proptest::option::of(0usize..600),
                cuts in proptest::collection::vec(1usize..40, 1..6),
                ask_rows in 0usize..6,
                dim in prop_oneof![Just(0usize), Just(3), Just(2)],
                into_sink in any::<bool>(),
            ) {
                let n = vs.len();
                let mut order: Vec<usize> = (0..n).collect();
                order.rotate_left((perm_seed as usize) % n);
                if perm_seed % 2 == 1 { order.reverse(); }
                let rows: Vec<(i64, &[f32])> = order.iter().map(|&i| (i as i64, vs[i].as_slice())).collect();
                let data = if floats { body_float(&rows) } else { body_b64(&rows) };
                // Move `usage` (and the rest of the envelope) ahead of `data` sometimes.
                let mut body = if usage_first {
                    data.replacen("{", r#"{"usage":{"prompt_tokens":7,"total_tokens":9},"model":"m","#, 1).into_bytes()
                } else {
                    data.into_bytes()
                };
                if let Some((at, byte)) = mangle {
                    if let Some(b) = body.get_mut(at) { *b = byte; }
                }
                if let Some(c) = cut { body.truncate(c.min(body.len())); }
                let rows_asked = if ask_rows == 0 { n } else { ask_rows };
                let expected = whole(&body, rows_asked, dim);
                prop_assert_eq!(streamed(&body, rows_asked, dim, &cuts, into_sink), expected.clone());
                prop_assert_eq!(streamed(&body, rows_asked, dim, &[1], into_sink), expected);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(24))]

            /// Long answers in pieces long and short, as a fast local
            /// server delivers them: the long ones are decoded where they
            /// lie (after completing a held row, also when a row is longer
            /// than the first probe), and the rows are those of the whole body.
            #[test]
            fn long_answers_in_long_pieces_decode_as_the_whole_body(
                n in 1usize..6,
                wide in any::<bool>(),
                floats in any::<bool>(),
                seed in any::<u32>(),
                cuts in proptest::collection::vec(prop_oneof![1usize..5_000, 30_000usize..300_000], 1..6),
                into_sink in any::<bool>(),
                cut in proptest::option::of(any::<proptest::sample::Index>()),
            ) {
                let dim = if wide { 8192 } else { 1536 };
                let vs: Vec<Vec<f32>> = (0..n)
                    .map(|r| (0..dim).map(|d| {
                        let h = (r * dim + d) as u32 ^ seed;
                        (h.wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                    }).collect())
                    .collect();
                let rows: Vec<(i64, &[f32])> = vs.iter().enumerate().map(|(i, v)| (i as i64, v.as_slice())).collect();
                let mut body = if floats { body_float(&rows) } else { body_b64(&rows) }.into_bytes();
                if let Some(c) = cut { body.truncate(c.index(body.len())); }
                let expected = whole(&body, n, dim);
                if cut.is_none() { prop_assert!(expected.is_ok()); }
                prop_assert_eq!(streamed(&body, n, dim, &cuts, into_sink), expected);
            }
        }
    }
}
