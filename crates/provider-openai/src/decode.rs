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

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use embeddings_core::{Embeddings, Error, ErrorKind, Result, Usage};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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
/// Every failure is an [`ErrorKind::InvalidResponse`] error; a partial result
/// is never returned.
///
/// [`ErrorKind::InvalidResponse`]: embeddings_core::ErrorKind::InvalidResponse
pub fn decode_response(body: &[u8], expected_rows: usize, dim: usize) -> Result<Embeddings> {
    let mut state = Decoder::new(expected_rows, dim);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = TopSeed(&mut state)
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if let Some(e) = state.failure.take() {
        return Err(e);
    }
    if let Err(e) = parsed {
        return Err(Error::invalid_response(format!(
            "malformed embeddings response: {e}"
        )));
    }
    state.finish()
}

const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes standard base64 (padding optional) of little-endian `f32`s into
/// `out`, which must be exactly filled. Non-finite values are refused.
///
/// `scratch` is a reusable byte buffer.
pub fn decode_base64_row(
    text: &str,
    out: &mut [f32],
    scratch: &mut Vec<u8>,
) -> std::result::Result<(), RowError> {
    let want = out.len() * 4;
    let padded = want.div_ceil(3) * 4;
    let unpadded = (want * 4).div_ceil(3);
    if text.len() != padded && text.len() != unpadded {
        return Err(RowError::Base64Length {
            len: text.len(),
            expected_bytes: want,
        });
    }
    decode_base64_bytes(text, scratch)?;
    if scratch.len() != want {
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

fn decode_base64_bytes(text: &str, scratch: &mut Vec<u8>) -> std::result::Result<(), RowError> {
    scratch.clear();
    scratch.resize(text.len().div_ceil(4) * 3, 0);
    let n = B64
        .decode_slice(text.as_bytes(), scratch)
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

/// Parses a JSON array of numbers (`[0.1, -2e-3, ...]`, as `serde_json`
/// validated it) into `out`, which must be exactly filled. Numbers are
/// rounded correctly to `f32`; non-finite results are refused.
pub fn parse_float_row(json: &str, out: &mut [f32]) -> std::result::Result<(), RowError> {
    let mut n = 0;
    let dim = out.len();
    parse_floats(json.as_bytes(), |v| {
        if n < dim {
            out[n] = v;
        }
        n += 1;
    })?;
    if n != dim {
        return Err(RowError::Dimension {
            got: n,
            expected: dim,
        });
    }
    Ok(())
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
    /// A row with another number of values than expected.
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
            RowError::Dimension { got, expected } => {
                write!(f, "{got} values, expected {expected}")
            }
            RowError::NotANumber { at } => write!(f, "value {at} is not a number"),
            RowError::NotFinite { at } => write!(f, "value {at} is not finite"),
            RowError::Syntax => f.write_str("malformed array of numbers"),
        }
    }
}

impl std::error::Error for RowError {}

// ---------------------------------------------------------------------------
// Float arrays

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    i
}

/// Calls `sink` with each number of the JSON array `b`.
fn parse_floats(b: &[u8], mut sink: impl FnMut(f32)) -> std::result::Result<(), RowError> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'[') {
        return Err(RowError::Syntax);
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b']') {
        return if skip_ws(b, i + 1) == b.len() {
            Ok(())
        } else {
            Err(RowError::Syntax)
        };
    }
    let mut k = 0;
    loop {
        let (v, next) = parse_number(b, i).ok_or(RowError::NotANumber { at: k })?;
        if (v.to_bits() & 0x7f80_0000) == 0x7f80_0000 {
            return Err(RowError::NotFinite { at: k });
        }
        sink(v);
        k += 1;
        i = skip_ws(b, next);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b']') => {
                return if skip_ws(b, i + 1) == b.len() {
                    Ok(())
                } else {
                    Err(RowError::Syntax)
                };
            }
            _ => {
                return Err(RowError::NotANumber {
                    at: k.saturating_sub(1),
                });
            }
        }
    }
}

/// Exact powers of ten in `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses the JSON number starting at `b[start]`; returns it (correctly
/// rounded to `f32`) and the position after it.
///
/// Fast path (Clinger): up to 19 significant digits with a mantissa below
/// 2^53 and a power of ten up to 22 make `m * 10^e` (or `m / 10^-e`) one
/// correctly rounded `f64` operation. Rounding that `f64` to `f32` is then
/// correct unless it lies exactly on an `f32` midpoint (or in the subnormal
/// range): those rare cases, and every other shape, go to the standard
/// library's correctly rounded parser.
#[inline]
fn parse_number(b: &[u8], start: usize) -> Option<(f32, usize)> {
    let mut i = start;
    let neg = b.get(i) == Some(&b'-');
    if neg {
        i += 1;
    }
    let mut mant: u64 = 0;
    let mut sig = 0u32; // significant digits accumulated
    let mut exp: i64 = 0;
    let mut slow = false;
    let int_start = i;
    while let Some(&c) = b.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        if sig < 19 {
            mant = mant * 10 + u64::from(d);
            sig += u32::from(mant != 0);
        } else {
            slow = true;
        }
        i += 1;
    }
    if i == int_start {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while let Some(&c) = b.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if sig < 19 {
                mant = mant * 10 + u64::from(d);
                sig += u32::from(mant != 0);
                exp -= 1;
            } else {
                slow = true;
            }
            i += 1;
        }
        if i == frac_start {
            return None;
        }
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        let eneg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let e_start = i;
        let mut e: i64 = 0;
        while let Some(&c) = b.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if e < 100_000 {
                e = e * 10 + i64::from(d);
            }
            i += 1;
        }
        if i == e_start {
            return None;
        }
        exp += if eneg { -e } else { e };
    }
    if !slow && mant <= (1u64 << 53) && (-22..=22).contains(&exp) {
        let m = mant as f64;
        let y = if exp < 0 {
            m / POW10[(-exp) as usize]
        } else {
            m * POW10[exp as usize]
        };
        let bits = y.to_bits();
        // An f32 midpoint has exactly bit 28 set below f32 precision.
        let on_midpoint = bits & 0x1fff_ffff == 0x1000_0000;
        let tiny = y != 0.0 && y < f64::from(f32::MIN_POSITIVE);
        if !on_midpoint && !tiny {
            let v = y as f32;
            return Some((if neg { -v } else { v }, i));
        }
    }
    let text = std::str::from_utf8(&b[start..i]).ok()?;
    text.parse::<f32>().ok().map(|v| (v, i))
}

// ---------------------------------------------------------------------------
// The response

struct Decoder {
    rows: usize,
    dim: usize,
    out: Option<Embeddings>,
    filled: Vec<bool>,
    count: usize,
    usage: Option<Usage>,
    saw_data: bool,
    server_error: Option<String>,
    failure: Option<Error>,
    scratch: Vec<u8>,
    scratch_f32: Vec<f32>,
}

impl Decoder {
    fn new(rows: usize, dim: usize) -> Self {
        Decoder {
            rows,
            dim,
            out: (dim > 0).then(|| Embeddings::zeroed(rows, dim)),
            filled: vec![false; rows],
            count: 0,
            usage: None,
            saw_data: false,
            server_error: None,
            failure: None,
            scratch: Vec::new(),
            scratch_f32: Vec::new(),
        }
    }

    fn fail<E: de::Error>(&mut self, message: String) -> E {
        self.failure = Some(Error::invalid_response(message));
        E::custom("invalid embeddings response")
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
        let mut out = match self.out.take() {
            Some(out) => out,
            None => Embeddings::empty(self.dim),
        };
        out.set_usage(self.usage);
        Ok(out)
    }

    /// Places one item's embedding at row `index`.
    fn place(&mut self, index: usize, raw: &str) -> std::result::Result<(), String> {
        if index >= self.rows {
            return Err(format!(
                "embedding index {index} is out of range for {} inputs",
                self.rows
            ));
        }
        if self.filled[index] {
            return Err(format!("embedding index {index} appears twice"));
        }
        let row_err = |e: RowError| format!("embedding {index}: {e}");
        let bytes = raw.as_bytes();
        match bytes.first() {
            Some(b'"') => {
                let inner = &raw[1..raw.len() - 1];
                let owned;
                let text = if inner.contains('\\') {
                    owned = serde_json::from_str::<String>(raw)
                        .map_err(|e| format!("embedding {index}: {e}"))?;
                    owned.as_str()
                } else {
                    inner
                };
                if self.out.is_none() {
                    decode_base64_bytes(text, &mut self.scratch).map_err(row_err)?;
                    let n = self.scratch.len();
                    if n == 0 || n % 4 != 0 {
                        return Err(format!(
                            "embedding {index}: base64 decodes to {n} bytes, not a whole number of f32 values"
                        ));
                    }
                    self.dim = n / 4;
                    self.out = Some(Embeddings::zeroed(self.rows, self.dim));
                }
                let Some(out) = self.out.as_mut() else {
                    return Err("internal: no output buffer".to_owned());
                };
                decode_base64_row(text, out.row_mut(index), &mut self.scratch).map_err(
                    |e| match e {
                        RowError::Base64Length { len, .. } => format!(
                            "embedding {index}: base64 of {len} characters does not hold {} f32 values (wrong dimension or truncated)",
                            self.dim
                        ),
                        e => row_err(e),
                    },
                )?;
            }
            Some(b'[') => {
                if self.out.is_none() {
                    let mut v = std::mem::take(&mut self.scratch_f32);
                    v.clear();
                    parse_floats(bytes, |x| v.push(x)).map_err(row_err)?;
                    if v.is_empty() {
                        return Err(format!("embedding {index} is empty"));
                    }
                    self.dim = v.len();
                    let mut out = Embeddings::zeroed(self.rows, self.dim);
                    out.row_mut(index).copy_from_slice(&v);
                    self.out = Some(out);
                    self.scratch_f32 = v;
                } else if let Some(out) = self.out.as_mut() {
                    parse_float_row(raw, out.row_mut(index)).map_err(row_err)?;
                }
            }
            _ => {
                return Err(format!(
                    "embedding {index} is neither a base64 string nor an array of numbers: {}",
                    crate::errors::excerpt(raw, 40)
                ));
            }
        }
        self.filled[index] = true;
        self.count += 1;
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum TopField {
    Data,
    Usage,
    Error,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum ItemField {
    Index,
    Embedding,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct UsageJson {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
}

struct TopSeed<'s>(&'s mut Decoder);

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an embeddings response object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<TopField>()? {
            match key {
                TopField::Data => {
                    if self.0.saw_data {
                        return Err(self.0.fail("response has two `data` arrays".to_owned()));
                    }
                    self.0.saw_data = true;
                    map.next_value_seed(DataSeed(&mut *self.0))?;
                }
                TopField::Usage => {
                    if let Some(u) = map.next_value::<Option<UsageJson>>()? {
                        let prompt = u.prompt_tokens.or(u.total_tokens).unwrap_or(0);
                        self.0.usage = Some(Usage {
                            prompt_tokens: prompt,
                            total_tokens: u.total_tokens.unwrap_or(prompt),
                        });
                    }
                }
                TopField::Error => {
                    let raw = map.next_value::<&RawValue>()?;
                    if raw.get() != "null" {
                        self.0.server_error = Some(crate::errors::excerpt(raw.get(), 300));
                    }
                }
                TopField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct DataSeed<'s>(&'s mut Decoder);

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of embeddings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut n = 0usize;
        while seq.next_element_seed(ItemSeed(&mut *self.0, n))?.is_some() {
            n += 1;
        }
        Ok(())
    }
}

struct ItemSeed<'s>(&'s mut Decoder, usize);

impl<'de> DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an embedding object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let position = self.1;
        if position >= self.0.rows {
            return Err(self.0.fail(format!(
                "more than {} embeddings for {} inputs",
                self.0.rows, self.0.rows
            )));
        }
        let mut index: Option<usize> = None;
        let mut embedding: Option<&'de RawValue> = None;
        while let Some(key) = map.next_key::<ItemField>()? {
            match key {
                ItemField::Index => {
                    let v: i64 = map.next_value().map_err(|_| {
                        self.0.fail::<A::Error>(format!(
                            "item {position} has an `index` that is not an integer"
                        ))
                    })?;
                    if index.is_some() {
                        return Err(self.0.fail(format!("item {position} has two `index` keys")));
                    }
                    index = Some(usize::try_from(v).map_err(|_| {
                        self.0.fail::<A::Error>(format!(
                            "embedding index {v} is out of range for {} inputs",
                            self.0.rows
                        ))
                    })?);
                }
                ItemField::Embedding => {
                    if embedding.is_some() {
                        return Err(self
                            .0
                            .fail(format!("item {position} has two `embedding` keys")));
                    }
                    embedding = Some(map.next_value()?);
                }
                ItemField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some(index) = index else {
            return Err(self.0.fail(format!("item {position} has no `index`")));
        };
        let Some(raw) = embedding else {
            return Err(self.0.fail(format!("item {position} has no `embedding`")));
        };
        self.0.place(index, raw.get()).map_err(|m| self.0.fail(m))
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
        assert_eq!(
            e.usage(),
            Some(Usage {
                prompt_tokens: 3,
                total_tokens: 3
            })
        );
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
            (body_float(&[(0, &A)]), 1, 2, "3 values, expected 2"),
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
            (
                r#"{"data":[{"index":0,"embedding":[1,2"#.into(),
                1,
                3,
                "malformed",
            ),
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
    fn numbers_parse_like_the_standard_library() {
        for s in [
            "0",
            "-0",
            "1",
            "0.1",
            "-0.006929283495992422",
            "1e-7",
            "1E+2",
            "3.4028235e38",
            "1.17549435e-38",
            "1e-45",
            "123456789012345678901234567890",
            "0.000000000000000000000000000001",
            "16777217",
            "0.30000001192092896",
            "2.5e-40",
        ] {
            let (v, n) = parse_number(s.as_bytes(), 0).unwrap();
            assert_eq!(n, s.len());
            assert_eq!(v.to_bits(), s.parse::<f32>().unwrap().to_bits(), "{s}");
        }
        for s in ["", "-", "x", "1.", ".5", "1e", "null", "\"1\""] {
            assert!(
                parse_number(s.as_bytes(), 0).is_none_or(|(_, n)| n != s.len()),
                "{s}"
            );
        }
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
            fn number_parser_matches_std(m in any::<u64>(), e in -60i32..60, neg in any::<bool>(), frac in 0usize..20) {
                let digits = m.to_string();
                let cut = frac.min(digits.len().saturating_sub(1));
                let (a, b) = digits.split_at(digits.len() - cut);
                let s = if b.is_empty() { format!("{}{a}e{e}", if neg { "-" } else { "" }) }
                        else { format!("{}{a}.{b}e{e}", if neg { "-" } else { "" }) };
                let want = s.parse::<f32>().unwrap();
                let (got, n) = parse_number(s.as_bytes(), 0).unwrap();
                prop_assert_eq!(n, s.len());
                prop_assert_eq!(got.to_bits(), want.to_bits(), "{}", s);
            }

            #[test]
            fn rows_land_at_their_index_whatever_the_order(perm in Just((0..6).collect::<Vec<usize>>()).prop_shuffle()) {
                let vs: Vec<Vec<f32>> = (0..6).map(|i| vec![i as f32, -(i as f32)]).collect();
                let rows: Vec<(i64, &[f32])> = perm.iter().map(|&i| (i as i64, vs[i].as_slice())).collect();
                let e = decode_response(body_b64(&rows).as_bytes(), 6, 2).unwrap();
                for i in 0..6 { prop_assert_eq!(e.row(i), vs[i].as_slice()); }
                let e = decode_response(body_float(&rows).as_bytes(), 6, 2).unwrap();
                for i in 0..6 { prop_assert_eq!(e.row(i), vs[i].as_slice()); }
            }
        }

        fn bits(v: &[f32]) -> Vec<u32> {
            v.iter().map(|x| x.to_bits()).collect()
        }
    }
}
