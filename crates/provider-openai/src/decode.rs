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

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use embeddings_core::json_number::parse_f32;
use embeddings_core::{Embeddings, Error, ErrorKind, Result, Usage};
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

/// The dimension assumed for the body-size bound while a model's dimension
/// is not known yet (the largest embedding models in use are below this).
pub const UNKNOWN_DIMENSION_BOUND: usize = 16_384;

/// The largest response body that `rows` vectors of `dim` values (`0` =
/// unknown) can justify, in either encoding: 48 bytes per value (a long JSON
/// number with pretty-printing whitespace), 1 KiB per row and 64 KiB for the
/// envelope. A larger body is refused rather than buffered.
pub fn max_response_len(rows: usize, dim: usize) -> usize {
    let dim = if dim == 0 {
        UNKNOWN_DIMENSION_BOUND
    } else {
        dim
    };
    let per_row = dim.saturating_mul(48).saturating_add(1024);
    rows.saturating_mul(per_row).saturating_add(64 * 1024)
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
/// is never returned.
///
/// [`ErrorKind::InvalidResponse`]: embeddings_core::ErrorKind::InvalidResponse
pub fn decode_response(body: &[u8], expected_rows: usize, dim: usize) -> Result<Embeddings> {
    let mut d = Decoder::new(body, expected_rows, dim);
    match d.response() {
        Ok(()) => d.finish(),
        Err(message) => Err(Error::invalid_response(message)),
    }
}

const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 lengths (padded, unpadded) of `bytes` bytes.
#[inline]
fn base64_lengths(bytes: usize) -> (usize, usize) {
    (bytes.div_ceil(3) * 4, (bytes * 4).div_ceil(3))
}

/// Decodes standard base64 (padding optional) of little-endian `f32`s into
/// `out`, which must be exactly filled. Non-finite values are refused.
///
/// `scratch` is a reusable byte buffer.
pub fn decode_base64_row(
    text: &str,
    out: &mut [f32],
    scratch: &mut Vec<u8>,
) -> std::result::Result<(), RowError> {
    decode_base64_into(text.as_bytes(), out, scratch)
}

#[inline]
fn decode_base64_into(
    text: &[u8],
    out: &mut [f32],
    scratch: &mut Vec<u8>,
) -> std::result::Result<(), RowError> {
    let want = out.len() * 4;
    let (padded, unpadded) = base64_lengths(want);
    if text.len() != padded && text.len() != unpadded {
        return Err(RowError::Base64Length {
            len: text.len(),
            expected_bytes: want,
        });
    }
    if scratch.len() != want {
        scratch.resize(want, 0);
    }
    let n = B64
        .decode_slice(text, scratch)
        .map_err(|e| RowError::Base64(e.to_string()))?;
    if n != want {
        return Err(RowError::Base64Length {
            len: text.len(),
            expected_bytes: want,
        });
    }
    for (dst, src) in out.iter_mut().zip(scratch.chunks_exact(4)) {
        *dst = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
    }
    check_finite(out)
}

/// Decodes base64 of unknown length into `scratch` (for learning the dimension).
fn decode_base64_bytes(text: &[u8], scratch: &mut Vec<u8>) -> std::result::Result<(), RowError> {
    scratch.clear();
    scratch.resize(text.len().div_ceil(4) * 3, 0);
    let n = B64
        .decode_slice(text, scratch)
        .map_err(|e| RowError::Base64(e.to_string()))?;
    scratch.truncate(n);
    Ok(())
}

#[inline]
fn check_finite(row: &[f32]) -> std::result::Result<(), RowError> {
    // Branch-free reduction first (vectorises); find the culprit only on failure.
    let all = row.iter().fold(true, |ok, v| {
        ok & ((v.to_bits() & 0x7f80_0000) != 0x7f80_0000)
    });
    if all {
        Ok(())
    } else {
        let at = row.iter().position(|v| !v.is_finite()).unwrap_or(0);
        Err(RowError::NotFinite { at })
    }
}

/// Parses a JSON array of numbers (`[0.1, -2e-3, ...]`) into `out`, which
/// must be exactly filled. Numbers are rounded correctly to `f32`;
/// non-finite results are refused.
pub fn parse_float_row(json: &str, out: &mut [f32]) -> std::result::Result<(), RowError> {
    let b = json.as_bytes();
    let end = parse_floats_into(b, skip_ws(b, 0), out)?;
    if skip_ws(b, end) != b.len() {
        return Err(RowError::Syntax);
    }
    Ok(())
}

/// Parses the array at `b[i]` into `out` (exactly filled); returns the
/// position after its `]`.
#[inline]
fn parse_floats_into(b: &[u8], i: usize, out: &mut [f32]) -> std::result::Result<usize, RowError> {
    let dim = out.len();
    let mut n = 0;
    let end = parse_floats(b, i, |v| {
        if let Some(slot) = out.get_mut(n) {
            *slot = v;
            n += 1;
            true
        } else {
            false
        }
    })
    .map_err(|e| match e {
        RowError::Dimension { .. } => RowError::Dimension {
            got: dim + 1,
            expected: dim,
        },
        e => e,
    })?;
    if n != dim {
        return Err(RowError::Dimension {
            got: n,
            expected: dim,
        });
    }
    Ok(end)
}

/// Why one row could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RowError {
    /// The base64 text has a length that cannot hold the expected bytes.
    Base64Length {
        /// Length of the base64 text.
        len: usize,
        /// Bytes it should decode to (4 per value).
        expected_bytes: usize,
    },
    /// The base64 text is malformed.
    Base64(String),
    /// A row with another number of values than expected (`got` is
    /// `expected + 1` when there were more).
    Dimension {
        /// Values found.
        got: usize,
        /// Values expected.
        expected: usize,
    },
    /// The value at this position is not a number.
    NotANumber {
        /// Position in the row.
        at: usize,
    },
    /// The value at this position is NaN or infinite (or out of `f32` range).
    NotFinite {
        /// Position in the row.
        at: usize,
    },
    /// The JSON array itself is malformed.
    Syntax,
    /// The body ends inside the array.
    Truncated,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowError::Base64Length {
                len,
                expected_bytes,
            } => write!(
                f,
                "base64 of {len} characters cannot hold the expected {expected_bytes} bytes ({} f32 values)",
                expected_bytes / 4
            ),
            RowError::Base64(e) => write!(f, "malformed base64: {e}"),
            RowError::Dimension { got, expected } if got > expected => {
                write!(f, "more than {expected} values")
            }
            RowError::Dimension { got, expected } => {
                write!(f, "{got} values, expected {expected}")
            }
            RowError::NotANumber { at } => write!(f, "value {at} is not a number"),
            RowError::NotFinite { at } => write!(f, "value {at} is not finite"),
            RowError::Syntax => f.write_str("malformed array of numbers"),
            RowError::Truncated => f.write_str("the body ends inside the array (truncated?)"),
        }
    }
}

impl std::error::Error for RowError {}

// ---------------------------------------------------------------------------
// Float arrays

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
        i += 1;
    }
    i
}

/// Calls `sink` with each number of the JSON array at `b[i]` (stopping
/// with `Dimension` when it returns false); returns the position after `]`.
#[inline]
fn parse_floats(
    b: &[u8],
    i: usize,
    mut sink: impl FnMut(f32) -> bool,
) -> std::result::Result<usize, RowError> {
    if b.get(i) != Some(&b'[') {
        return Err(RowError::Syntax);
    }
    let mut i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b']') {
        return Ok(i + 1);
    }
    let mut k = 0;
    loop {
        let Some((v, next)) = parse_f32(b, i) else {
            return Err(if i >= b.len() {
                RowError::Truncated
            } else {
                RowError::NotANumber { at: k }
            });
        };
        if (v.to_bits() & 0x7f80_0000) == 0x7f80_0000 {
            return Err(RowError::NotFinite { at: k });
        }
        if !sink(v) {
            return Err(RowError::Dimension {
                got: k + 1,
                expected: k,
            });
        }
        k += 1;
        // The common separators first: `,` right after the number, then `, `.
        i = match b.get(next) {
            Some(b',') => next + 1,
            Some(b']') => return Ok(next + 1),
            _ => {
                let j = skip_ws(b, next);
                match b.get(j) {
                    Some(b',') => j + 1,
                    Some(b']') => return Ok(j + 1),
                    None => return Err(RowError::Truncated),
                    _ => return Err(RowError::NotANumber { at: k - 1 }),
                }
            }
        };
        if let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
            i = skip_ws(b, i);
        }
    }
}

// ---------------------------------------------------------------------------
// The response

/// Deepest nesting of skipped values.
const MAX_DEPTH: u32 = 64;

/// An item's embedding that could not go to its row yet (its `index` came
/// later, or the dimension is still unknown).
enum Pending<'a> {
    None,
    Base64(Cow<'a, [u8]>),
    /// In `Decoder::scratch_f32`.
    Floats,
    Placed,
}

struct Decoder<'a> {
    b: &'a [u8],
    i: usize,
    rows: usize,
    dim: usize,
    out: Option<Embeddings>,
    filled: Vec<bool>,
    count: usize,
    usage: Option<Usage>,
    saw_data: bool,
    server_error: Option<String>,
    scratch: Vec<u8>,
    scratch_f32: Vec<f32>,
}

type Step<T = ()> = std::result::Result<T, String>;

impl<'a> Decoder<'a> {
    fn new(b: &'a [u8], rows: usize, dim: usize) -> Self {
        Decoder {
            b,
            i: 0,
            rows,
            dim,
            out: (dim > 0).then(|| Embeddings::zeroed(rows, dim)),
            filled: vec![false; rows],
            count: 0,
            usage: None,
            saw_data: false,
            server_error: None,
            scratch: Vec::new(),
            scratch_f32: Vec::new(),
        }
    }

    fn finish(mut self) -> Result<Embeddings> {
        if !self.saw_data {
            let why = match &self.server_error {
                Some(e) => format!("response has no `data` array; the server says: {e}"),
                None => "response has no `data` array".to_owned(),
            };
            return Err(Error::invalid_response(why));
        }
        if self.count != self.rows {
            return Err(Error::invalid_response(format!(
                "expected {} embeddings (one per input), got {}",
                self.rows, self.count
            )));
        }
        let mut out = self
            .out
            .take()
            .unwrap_or_else(|| Embeddings::empty(self.dim));
        out.set_usage(self.usage);
        Ok(out)
    }

    // -- scanning ----------------------------------------------------------

    fn syntax(&self, expected: &str) -> String {
        match self.b.get(self.i) {
            None => format!(
                "malformed embeddings response: expected {expected} at byte {}, found the end (truncated body?)",
                self.i
            ),
            Some(&c) => format!(
                "malformed embeddings response: expected {expected} at byte {}, found {:?}",
                self.i,
                char::from(c)
            ),
        }
    }

    #[inline]
    fn ws(&mut self) {
        self.i = skip_ws(self.b, self.i);
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8, what: &str) -> Step {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.syntax(what))
        }
    }

    /// After a member: `,` (true, more follow) or the closing `close` (false).
    #[inline]
    fn more(&mut self, close: u8) -> Step<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(self.syntax(if close == b'}' {
                "',' or '}'"
            } else {
                "',' or ']'"
            })),
        }
    }

    /// A string at the cursor, unescaped only when it holds escapes.
    fn string(&mut self) -> Step<Cow<'a, [u8]>> {
        self.ws();
        if self.peek() != Some(b'"') {
            return Err(self.syntax("a string"));
        }
        let start = self.i + 1;
        let mut j = start;
        loop {
            match self.b.get(j) {
                None => {
                    self.i = j;
                    return Err(self.syntax("the end of a string"));
                }
                Some(b'"') => {
                    self.i = j + 1;
                    let raw = &self.b[start..j];
                    return Ok(Cow::Borrowed(raw));
                }
                Some(b'\\') => return self.escaped_string(start),
                Some(&c) if c < 0x20 => {
                    self.i = j;
                    return Err(self.syntax("no control character in a string"));
                }
                Some(_) => j += 1,
            }
        }
    }

    fn escaped_string(&mut self, start: usize) -> Step<Cow<'a, [u8]>> {
        let mut out = Vec::new();
        let mut j = start;
        loop {
            let Some(&c) = self.b.get(j) else {
                self.i = j;
                return Err(self.syntax("the end of a string"));
            };
            j += 1;
            match c {
                b'"' => {
                    self.i = j;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    let Some(&e) = self.b.get(j) else {
                        self.i = j;
                        return Err(self.syntax("an escape"));
                    };
                    j += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4(j)?;
                            j += 4;
                            let cp = if (0xD800..0xDC00).contains(&hi)
                                && self.b.get(j) == Some(&b'\\')
                                && self.b.get(j + 1) == Some(&b'u')
                            {
                                let lo = self.hex4(j + 2)?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    j += 6;
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                } else {
                                    0xFFFD
                                }
                            } else {
                                hi
                            };
                            char::from_u32(cp).unwrap_or('\u{FFFD}')
                        }
                        _ => {
                            self.i = j - 1;
                            return Err(self.syntax("a valid escape"));
                        }
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c if c < 0x20 => {
                    self.i = j - 1;
                    return Err(self.syntax("no control character in a string"));
                }
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self, j: usize) -> Step<u32> {
        let mut v = 0u32;
        for k in 0..4 {
            let d = self.b.get(j + k).and_then(|c| char::from(*c).to_digit(16));
            match d {
                Some(d) => v = v * 16 + d,
                None => {
                    self.i = j + k;
                    return Err(self.syntax("4 hex digits"));
                }
            }
        }
        Ok(v)
    }

    /// Skips any JSON value, validating it.
    fn skip_value(&mut self, depth: u32) -> Step {
        if depth > MAX_DEPTH {
            return Err(self.syntax("less deeply nested values"));
        }
        self.ws();
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.string()?;
                    self.eat(b':', "':'")?;
                    self.skip_value(depth + 1)?;
                    if !self.more(b'}')? {
                        return Ok(());
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    if !self.more(b']')? {
                        return Ok(());
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => match parse_f32(self.b, self.i) {
                Some((_, next)) => {
                    self.i = next;
                    Ok(())
                }
                None => Err(self.syntax("a number")),
            },
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => Err(self.syntax("a value")),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Step {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.syntax("a value"))
        }
    }

    fn is_null(&mut self) -> bool {
        self.ws();
        if self.b.get(self.i..self.i + 4) == Some(b"null") {
            self.i += 4;
            true
        } else {
            false
        }
    }

    /// A non-negative integer (an `index` or a token count).
    /// `what` names the value in an error; it is only built when there is one.
    fn integer(&mut self, what: impl Fn() -> String) -> Step<u64> {
        self.ws();
        let start = self.i;
        let neg = self.peek() == Some(b'-');
        let mut j = start + usize::from(neg);
        let mut v: u64 = 0;
        let mut overflow = false;
        while let Some(&c) = self.b.get(j) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            match v.checked_mul(10).and_then(|v| v.checked_add(u64::from(d))) {
                Some(n) => v = n,
                None => overflow = true,
            }
            j += 1;
        }
        let digits = j - start - usize::from(neg);
        if digits == 0 || matches!(self.b.get(j), Some(b'.' | b'e' | b'E')) {
            return Err(format!("{} is not an integer", what()));
        }
        self.i = j;
        if neg || overflow {
            let text = String::from_utf8_lossy(&self.b[start..j]).into_owned();
            return Err(format!("{} {text} is out of range", what()));
        }
        Ok(v)
    }

    // -- the response --------------------------------------------------------

    fn response(&mut self) -> Step {
        self.eat(b'{', "'{' (an embeddings response object)")?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                let key = self.string()?;
                self.eat(b':', "':'")?;
                match &*key {
                    b"data" => {
                        if self.saw_data {
                            return Err("response has two `data` arrays".to_owned());
                        }
                        if !self.is_null() {
                            self.saw_data = true;
                            self.data()?;
                        }
                    }
                    b"usage" => self.usage()?,
                    b"error" => {
                        self.ws();
                        let start = self.i;
                        self.skip_value(1)?;
                        let raw = String::from_utf8_lossy(&self.b[start..self.i]);
                        if raw != "null" {
                            self.server_error = Some(crate::errors::excerpt(&raw, 300));
                        }
                    }
                    _ => self.skip_value(1)?,
                }
                if !self.more(b'}')? {
                    break;
                }
            }
        }
        self.ws();
        if self.i != self.b.len() {
            return Err(self.syntax("the end of the response"));
        }
        Ok(())
    }

    fn usage(&mut self) -> Step {
        if self.is_null() {
            return Ok(());
        }
        self.eat(b'{', "'{' (usage)")?;
        let (mut prompt, mut total) = (None, None);
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                let key = self.string()?;
                self.eat(b':', "':'")?;
                match &*key {
                    b"prompt_tokens" if !self.is_null() => {
                        prompt = Some(self.integer(|| "usage.prompt_tokens".to_owned())?);
                    }
                    b"total_tokens" if !self.is_null() => {
                        total = Some(self.integer(|| "usage.total_tokens".to_owned())?);
                    }
                    b"prompt_tokens" | b"total_tokens" => {}
                    _ => self.skip_value(2)?,
                }
                if !self.more(b'}')? {
                    break;
                }
            }
        }
        if prompt.is_some() || total.is_some() {
            let p = prompt.or(total).unwrap_or(0);
            self.usage = Some(Usage {
                prompt_tokens: p,
                total_tokens: total.unwrap_or(p),
                cached_rows: 0,
            });
        }
        Ok(())
    }

    fn data(&mut self) -> Step {
        self.eat(b'[', "'[' (the `data` array)")?;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        let mut position = 0;
        loop {
            if position >= self.rows {
                return Err(format!(
                    "more than {} embeddings for {} inputs",
                    self.rows, self.rows
                ));
            }
            self.item(position)?;
            position += 1;
            if !self.more(b']')? {
                return Ok(());
            }
        }
    }

    /// Checks that `index` may still be filled.
    fn claim(&self, index: u64) -> Step<usize> {
        match usize::try_from(index) {
            Ok(i) if i < self.rows => {
                if self.filled[i] {
                    Err(format!("embedding index {i} appears twice"))
                } else {
                    Ok(i)
                }
            }
            _ => Err(format!(
                "embedding index {index} is out of range for {} inputs",
                self.rows
            )),
        }
    }

    fn item(&mut self, position: usize) -> Step {
        self.eat(b'{', "'{' (an embedding object)")?;
        let mut index: Option<usize> = None;
        let mut pending = Pending::None;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Err(format!("item {position} has no `index`"));
        }
        loop {
            let key = self.string()?;
            self.eat(b':', "':'")?;
            match &*key {
                b"index" => {
                    if index.is_some() {
                        return Err(format!("item {position} has two `index` keys"));
                    }
                    let what = || format!("the `index` of item {position}");
                    let raw = self.integer(what).map_err(|e| {
                        if e.ends_with("out of range") {
                            e.replace(&what(), "embedding index")
                                + &format!(" for {} inputs", self.rows)
                        } else {
                            e
                        }
                    })?;
                    index = Some(self.claim(raw)?);
                }
                b"embedding" => {
                    if !matches!(pending, Pending::None) {
                        return Err(format!("item {position} has two `embedding` keys"));
                    }
                    pending = self.embedding(index, position)?;
                }
                _ => self.skip_value(2)?,
            }
            if !self.more(b'}')? {
                break;
            }
        }
        let Some(index) = index else {
            return Err(format!("item {position} has no `index`"));
        };
        match pending {
            Pending::None => return Err(format!("item {position} has no `embedding`")),
            Pending::Placed => {}
            Pending::Base64(text) => self.place_base64(index, &text)?,
            Pending::Floats => self.place_floats(index)?,
        }
        self.filled[index] = true;
        self.count += 1;
        Ok(())
    }

    /// Reads an `embedding` value: straight into its row when the index and
    /// dimension are known, else kept for [`Decoder::item`] to place.
    fn embedding(&mut self, index: Option<usize>, position: usize) -> Step<Pending<'a>> {
        self.ws();
        let label = |index: Option<usize>| match index {
            Some(i) => format!("embedding {i}"),
            None => format!("the embedding of item {position}"),
        };
        match self.peek() {
            Some(b'"') => {
                if let (Some(index), Some(out)) = (index, self.out.as_mut()) {
                    // Fast path: the closing quote is where the expected
                    // length puts it, and the text between is valid base64.
                    let (padded, unpadded) = base64_lengths(self.dim * 4);
                    let start = self.i + 1;
                    for len in [padded, unpadded] {
                        if self.b.get(start + len) == Some(&b'"') {
                            let text = &self.b[start..start + len];
                            let row = out.row_mut(index);
                            if decode_base64_into(text, row, &mut self.scratch).is_ok() {
                                self.i = start + len + 1;
                                return Ok(Pending::Placed);
                            }
                        }
                    }
                }
                let text = self.string()?;
                match index {
                    Some(index) if self.out.is_some() => {
                        self.place_base64(index, &text)?;
                        Ok(Pending::Placed)
                    }
                    _ => Ok(Pending::Base64(text)),
                }
            }
            Some(b'[') => {
                if let (Some(index), Some(out)) = (index, self.out.as_mut()) {
                    let end = parse_floats_into(self.b, self.i, out.row_mut(index))
                        .map_err(|e| format!("embedding {index}: {e}"))?;
                    self.i = end;
                    return Ok(Pending::Placed);
                }
                let mut v = std::mem::take(&mut self.scratch_f32);
                v.clear();
                let limit = if self.dim > 0 {
                    self.dim
                } else {
                    UNKNOWN_DIMENSION_BOUND * 4
                };
                let end = parse_floats(self.b, self.i, |x| {
                    v.push(x);
                    v.len() <= limit
                });
                self.scratch_f32 = v;
                self.i = end.map_err(|e| match e {
                    RowError::Dimension { .. } => {
                        format!("{}: more than {limit} values", label(index))
                    }
                    e => format!("{}: {e}", label(index)),
                })?;
                Ok(Pending::Floats)
            }
            _ => {
                let start = self.i;
                self.skip_value(2)?;
                let raw = String::from_utf8_lossy(&self.b[start..self.i]);
                Err(format!(
                    "{} is neither a base64 string nor an array of numbers: {}",
                    label(index),
                    crate::errors::excerpt(&raw, 40)
                ))
            }
        }
    }

    /// Allocates the output once the dimension is learned from a row.
    fn learn_dim(&mut self, dim: usize, index: usize) -> Step<&mut Embeddings> {
        if dim == 0 {
            return Err(format!("embedding {index} is empty"));
        }
        if self.out.is_none() {
            self.dim = dim;
            self.out = Some(Embeddings::zeroed(self.rows, dim));
        }
        self.out
            .as_mut()
            .ok_or_else(|| "internal: no output buffer".to_owned())
    }

    fn place_base64(&mut self, index: usize, text: &[u8]) -> Step {
        if self.out.is_none() {
            decode_base64_bytes(text, &mut self.scratch)
                .map_err(|e| format!("embedding {index}: {e}"))?;
            let n = self.scratch.len();
            if n % 4 != 0 {
                return Err(format!(
                    "embedding {index}: base64 decodes to {n} bytes, not a whole number of f32 values"
                ));
            }
            self.learn_dim(n / 4, index)?;
        }
        let dim = self.dim;
        let Some(out) = self.out.as_mut() else {
            return Err("internal: no output buffer".to_owned());
        };
        decode_base64_into(text, out.row_mut(index), &mut self.scratch).map_err(|e| match e {
            RowError::Base64Length { len, .. } => format!(
                "embedding {index}: base64 of {len} characters does not hold {dim} f32 values (wrong dimension or truncated)"
            ),
            e => format!("embedding {index}: {e}"),
        })
    }

    fn place_floats(&mut self, index: usize) -> Step {
        let v = std::mem::take(&mut self.scratch_f32);
        let result = (|| {
            let out = self.learn_dim(v.len(), index)?;
            let row = out.row_mut(index);
            if row.len() != v.len() {
                let e = RowError::Dimension {
                    got: v.len(),
                    expected: row.len(),
                };
                return Err(format!("embedding {index}: {e}"));
            }
            row.copy_from_slice(&v);
            Ok(())
        })();
        self.scratch_f32 = v;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn body_bound_grows_with_rows_and_dimension() {
        assert!(max_response_len(1, 1536) > 1536 * 30);
        assert!(max_response_len(2, 1536) > max_response_len(1, 1536));
        assert_eq!(
            max_response_len(1, 0),
            max_response_len(1, UNKNOWN_DIMENSION_BOUND)
        );
        assert_eq!(max_response_len(usize::MAX, usize::MAX), usize::MAX);
    }

    mod props {
        use super::*;
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
    }
}
