//! The JSON pieces every provider's response decoder is made of, written
//! once: a validating cursor over the body ([`Scanner`]), the float-array
//! parser ([`parse_floats`], [`parse_floats_into`], on core's
//! [`json_number`](embeddings_core::json_number) parser), the base64 row
//! decoder ([`decode_base64_into`]) and the batch buffer that rows are
//! placed in by index ([`RowBuffer`]): one allocation per batch, no
//! `serde_json::Value`, no `Vec<Vec<f32>>`, and a typed refusal of any
//! incomplete or inconsistent answer.
//!
//! A provider's decoder is then only its envelope: which keys hold the
//! rows, the index and the usage. A sketch for `{"vectors":[[..],..]}`:
//!
//! ```
//! use embeddings_http::json::{RowBuffer, Scanner};
//!
//! fn decode(body: &[u8], rows: usize, dim: usize) -> Result<embeddings_core::Embeddings, String> {
//!     let mut s = Scanner::new(body);
//!     let mut out = RowBuffer::sequential(rows, dim);
//!     s.eat(b'{', "'{'")?;
//!     loop {
//!         let key = s.string()?;
//!         s.eat(b':', "':'")?;
//!         if &*key == b"vectors" {
//!             s.eat(b'[', "'['")?;
//!             loop {
//!                 let at = out.count();
//!                 out.floats_at(&mut s, at).map_err(|e| format!("vector {at}: {e}"))?;
//!                 if !s.more(b']')? { break; }
//!             }
//!         } else {
//!             s.skip_value(1)?;
//!         }
//!         if !s.more(b'}')? { break; }
//!     }
//!     s.end()?;
//!     out.finish().map_err(|e| e.to_string())
//! }
//! let e = decode(br#"{"model":"m","vectors":[[1,0.5],[0,-2]]}"#, 2, 0).unwrap();
//! assert_eq!(e.row(1), &[0.0, -2.0]);
//! assert!(decode(br#"{"vectors":[[1,0.5]]}"#, 2, 0).is_err());
//! ```

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use embeddings_core::json_number::{parse_f32, parse_f32_short};
use embeddings_core::{Embeddings, Error, MAX_DIMENSIONS, Result, Usage};

/// What a scanning step returns: the error is a message for
/// [`Error::invalid_response`].
pub type Step<T = ()> = std::result::Result<T, String>;

/// Deepest nesting of skipped values.
pub const MAX_DEPTH: u32 = 64;

// ---------------------------------------------------------------------------
// Rows

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
    /// What follows the value at this position is neither `,` nor `]`.
    Separator {
        /// Position in the row of the value before.
        after: usize,
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
            RowError::Separator { after } => {
                write!(f, "malformed array of numbers after value {after}")
            }
            RowError::Syntax => f.write_str("malformed array of numbers"),
            RowError::Truncated => f.write_str("the body ends inside the array (truncated?)"),
        }
    }
}

impl std::error::Error for RowError {}

const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 lengths (padded, unpadded) of `bytes` bytes.
#[inline]
pub fn base64_lengths(bytes: usize) -> (usize, usize) {
    (bytes.div_ceil(3) * 4, (bytes * 4).div_ceil(3))
}

/// Decodes standard base64 (padding optional) of little-endian `f32`s into
/// `out`, which must be exactly filled. Non-finite values are refused.
/// `scratch` is a reusable byte buffer.
#[inline]
pub fn decode_base64_into(
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
    // SIMD base64 (AVX2/SSSE3/NEON, detected at run time): padded or not,
    // by the length already checked.
    let engine = if text.len() == padded {
        &base64_simd::STANDARD
    } else {
        &base64_simd::STANDARD_NO_PAD
    };
    let malformed = || RowError::Base64("invalid base64".to_owned());
    // The length is right, so a wrong decoded length is wrong padding.
    if engine.decoded_length(text).map_err(|_| malformed())? != want {
        return Err(malformed());
    }
    // Little-endian targets decode straight into the row's bytes.
    #[cfg(target_endian = "little")]
    {
        let _ = scratch;
        let bytes = bytemuck::cast_slice_mut::<f32, u8>(out);
        engine
            .decode(text, base64_simd::Out::from_slice(bytes))
            .map_err(|_| malformed())?;
    }
    #[cfg(not(target_endian = "little"))]
    {
        scratch.resize(want, 0);
        engine
            .decode(text, base64_simd::Out::from_slice(&mut scratch[..]))
            .map_err(|_| malformed())?;
        embeddings_core::f32_from_le_bytes(out, scratch);
    }
    check_finite(out)
}

/// Decodes base64 of unknown length into `scratch` (for learning a dimension).
pub fn decode_base64_bytes(
    text: &[u8],
    scratch: &mut Vec<u8>,
) -> std::result::Result<(), RowError> {
    scratch.clear();
    scratch.resize(text.len().div_ceil(4) * 3, 0);
    let n = B64
        .decode_slice(text, scratch)
        .map_err(|e| RowError::Base64(e.to_string()))?;
    scratch.truncate(n);
    Ok(())
}

/// `Ok` when every value is finite; else the position of the first that is not.
#[inline]
pub fn check_finite(row: &[f32]) -> std::result::Result<(), RowError> {
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

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
        i += 1;
    }
    i
}

/// Parses a JSON array of numbers (`[0.1, -2e-3, ...]`, nothing else) into
/// `out`, which must be exactly filled. Numbers are rounded correctly to
/// `f32`; non-finite results are refused.
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
pub fn parse_floats_into(
    b: &[u8],
    i: usize,
    out: &mut [f32],
) -> std::result::Result<usize, RowError> {
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

/// Calls `sink` with each number of the JSON array at `b[i]` (stopping
/// with `Dimension` when it returns false); returns the position after `]`.
/// Non-finite values are refused.
#[inline]
pub fn parse_floats(
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
        // The common number first: it is finite and needs no check.
        let (v, next) = match parse_f32_short(b, i) {
            Some(r) => r,
            None => any_number(b, i, k)?,
        };
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
                    _ => return Err(RowError::Separator { after: k - 1 }),
                }
            }
        };
    }
}

/// Number `k` of an array at `b[i]`, after any whitespace, in any shape;
/// refused when it is not a number or not finite.
#[inline(never)]
fn any_number(b: &[u8], i: usize, k: usize) -> std::result::Result<(f32, usize), RowError> {
    let i = skip_ws(b, i);
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
    Ok((v, next))
}

// ---------------------------------------------------------------------------
// The cursor

/// A validating cursor over a JSON body. Every method that fails leaves a
/// message naming what was expected and the byte where it was not found.
#[derive(Debug, Clone)]
pub struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// Where `b` starts in the whole body (for the positions in messages).
    base: usize,
}

impl<'a> Scanner<'a> {
    /// A cursor at the start of `body`.
    #[inline]
    pub fn new(body: &'a [u8]) -> Self {
        Scanner::at_offset(body, 0)
    }

    /// A cursor at the start of `part`, which starts at byte `offset` of
    /// the whole body (a body read as it streams in): positions are
    /// `part`'s, messages name the byte of the whole body.
    #[inline]
    pub fn at_offset(part: &'a [u8], offset: usize) -> Self {
        Scanner {
            b: part,
            i: 0,
            base: offset,
        }
    }

    /// The whole body.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.b
    }

    /// The cursor's position.
    #[inline]
    pub fn pos(&self) -> usize {
        self.i
    }

    /// Moves the cursor (to a position a row parser returned).
    #[inline]
    pub fn set_pos(&mut self, i: usize) {
        self.i = i;
    }

    /// The text from `start` to the cursor (lossy UTF-8).
    pub fn since(&self, start: usize) -> Cow<'a, str> {
        String::from_utf8_lossy(&self.b[start.min(self.i)..self.i])
    }

    /// "malformed response: expected `expected` at byte N, found ...".
    pub fn syntax(&self, expected: &str) -> String {
        let at = self.base + self.i;
        match self.b.get(self.i) {
            None => format!(
                "malformed response: expected {expected} at byte {at}, found the end (truncated body?)"
            ),
            Some(&c) => format!(
                "malformed response: expected {expected} at byte {at}, found {:?}",
                char::from(c)
            ),
        }
    }

    /// Skips whitespace.
    #[inline]
    pub fn ws(&mut self) {
        self.i = skip_ws(self.b, self.i);
    }

    /// The byte at the cursor.
    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Whitespace, then `c` (or an error naming `what`).
    #[inline]
    pub fn eat(&mut self, c: u8, what: &str) -> Step {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.syntax(what))
        }
    }

    /// Whitespace, then `c` if it is there (true) or nothing (false).
    #[inline]
    pub fn eat_if(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// After a member: `,` (true, more follow) or the closing `close` (false).
    #[inline]
    pub fn more(&mut self, close: u8) -> Step<bool> {
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

    /// Whitespace, then the end of the body.
    pub fn end(&mut self) -> Step {
        self.ws();
        if self.i != self.b.len() {
            return Err(self.syntax("the end of the response"));
        }
        Ok(())
    }

    /// A string at the cursor (its bytes), unescaped only when it holds escapes.
    pub fn string(&mut self) -> Step<Cow<'a, [u8]>> {
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
                    return Ok(Cow::Borrowed(&self.b[start..j]));
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
            match self.b.get(j + k).and_then(|c| char::from(*c).to_digit(16)) {
                Some(d) => v = v * 16 + d,
                None => {
                    self.i = j + k;
                    return Err(self.syntax("4 hex digits"));
                }
            }
        }
        Ok(v)
    }

    /// Skips any JSON value, validating it (`depth` is the current nesting).
    pub fn skip_value(&mut self, depth: u32) -> Step {
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

    /// Whitespace, then `null` if it is there (true, consumed).
    pub fn is_null(&mut self) -> bool {
        self.ws();
        if self.b.get(self.i..self.i + 4) == Some(b"null") {
            self.i += 4;
            true
        } else {
            false
        }
    }

    /// A non-negative integer (an index or a token count). `what` names the
    /// value in an error; it is only built when there is one.
    pub fn integer(&mut self, what: impl Fn() -> String) -> Step<u64> {
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

    /// Counts the elements of the array whose first element starts at the
    /// cursor (for an error message; nothing is read or stored).
    pub fn count_elements(&self) -> usize {
        let (mut depth, mut n, mut in_str, mut esc) = (0usize, 1usize, false, false);
        for &b in &self.b[self.i.min(self.b.len())..] {
            if in_str {
                match (esc, b) {
                    (true, _) => esc = false,
                    (false, b'\\') => esc = true,
                    (false, b'"') => in_str = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'[' | b'{' => depth += 1,
                b']' | b'}' if depth == 0 => break,
                b']' | b'}' => depth -= 1,
                b',' if depth == 0 => n += 1,
                _ => {}
            }
        }
        n
    }
}

// ---------------------------------------------------------------------------
// The batch buffer

/// The one buffer of a batch's answer, filled row by row: by the index the
/// server names ([`RowBuffer::by_index`]: each index once, within range) or
/// in order ([`RowBuffer::sequential`]). While the dimension is unknown
/// (`0`), the first row sets it and every other row must agree. Rows are
/// parsed straight into their place; [`RowBuffer::finish`] refuses an
/// answer with another number of rows than asked.
///
/// The rows go to a buffer of its own, or, under [`decode_rows`], into the
/// caller's rows (a [`RowSink`](embeddings_core::RowSink)'s).
#[derive(Debug)]
pub struct RowBuffer<'d> {
    rows: usize,
    dim: usize,
    out: Out<'d>,
    /// Empty when sequential.
    filled: Vec<bool>,
    by_index: bool,
    count: usize,
    scratch: Vec<u8>,
    scratch_f32: Vec<f32>,
}

/// Where a row buffer's rows go.
#[derive(Debug)]
enum Out<'d> {
    /// The dimension is not known yet.
    Unknown,
    Owned(Embeddings),
    Into(&'d mut [f32]),
    /// The rows are the caller's, attached for each step of a streamed
    /// decode ([`RowStream`]) and detached between them.
    Detached,
}

impl Out<'_> {
    #[inline]
    fn row(&mut self, index: usize, dim: usize) -> Option<&mut [f32]> {
        match self {
            Out::Unknown | Out::Detached => None,
            Out::Owned(e) => e.as_flat_mut().get_mut(index * dim..(index + 1) * dim),
            Out::Into(rows) => rows.get_mut(index * dim..(index + 1) * dim),
        }
    }
}

impl RowBuffer<'static> {
    fn new(rows: usize, dim: usize, by_index: bool) -> Self {
        let out = if dim > 0 {
            Out::Owned(Embeddings::zeroed(rows, dim))
        } else {
            Out::Unknown
        };
        RowBuffer::with_out(rows, dim, by_index, out)
    }
}

impl<'d> RowBuffer<'d> {
    /// `rows` rows of `dim` values written into `dst` (`rows × dim`,
    /// row-major; [`RowBuffer::finish`] then returns no rows). `None` when
    /// `dim` is `0` or `dst` has another length.
    fn into_rows(dst: &'d mut [f32], rows: usize, dim: usize, by_index: bool) -> Option<Self> {
        (dim > 0 && rows.checked_mul(dim) == Some(dst.len()))
            .then(|| RowBuffer::with_out(rows, dim, by_index, Out::Into(dst)))
    }

    /// The same buffer (state, counts, scratch) with its rows going to `out`.
    fn moved<'x>(self, out: Out<'x>) -> RowBuffer<'x> {
        RowBuffer {
            rows: self.rows,
            dim: self.dim,
            out,
            filled: self.filled,
            by_index: self.by_index,
            count: self.count,
            scratch: self.scratch,
            scratch_f32: self.scratch_f32,
        }
    }

    /// Whether a detached buffer's rows can be attached to `len` values.
    fn attaches_to(&self, len: usize) -> bool {
        matches!(self.out, Out::Detached) && Some(len) == self.rows.checked_mul(self.dim)
    }

    /// The buffer's rows attached to `dst` for one step (checked first by
    /// [`RowBuffer::attaches_to`]).
    fn attach<'x>(self, dst: &'x mut [f32]) -> RowBuffer<'x> {
        self.moved(Out::Into(dst))
    }

    /// The buffer after a step: borrowed rows detached, its own kept.
    fn detach(mut self) -> RowBuffer<'static> {
        let out = match std::mem::replace(&mut self.out, Out::Unknown) {
            Out::Owned(e) => Out::Owned(e),
            Out::Unknown => Out::Unknown,
            Out::Into(_) | Out::Detached => Out::Detached,
        };
        self.moved(out)
    }

    fn with_out(rows: usize, dim: usize, by_index: bool, out: Out<'d>) -> Self {
        RowBuffer {
            rows,
            dim,
            out,
            filled: if by_index {
                vec![false; rows]
            } else {
                Vec::new()
            },
            by_index,
            count: 0,
            scratch: Vec::new(),
            scratch_f32: Vec::new(),
        }
    }

    /// `rows` rows of `dim` values (`0` = learned from the first row),
    /// placed by the index each item names.
    pub fn by_index(rows: usize, dim: usize) -> Self {
        RowBuffer::new(rows, dim, true)
    }

    /// `rows` rows of `dim` values (`0` = learned), placed in the order they come.
    pub fn sequential(rows: usize, dim: usize) -> Self {
        RowBuffer::new(rows, dim, false)
    }

    /// Rows expected.
    #[inline]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The dimension (`0` while not yet learned).
    #[inline]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Rows placed so far.
    #[inline]
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether the buffer exists (the dimension is known).
    #[inline]
    pub fn ready(&self) -> bool {
        !matches!(self.out, Out::Unknown)
    }

    /// Checks that row `index` may still be filled (by-index buffers: not
    /// yet filled, within range; sequential buffers: it is the next row).
    pub fn claim(&self, index: u64) -> Step<usize> {
        match usize::try_from(index) {
            Ok(i) if i < self.rows => {
                if self.by_index && self.filled[i] {
                    Err(format!("embedding index {i} appears twice"))
                } else if !self.by_index && i != self.count {
                    Err(format!("row {i} out of order (expected {})", self.count))
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

    /// Records that row `index` (claimed) is complete.
    #[inline]
    pub fn done(&mut self, index: usize) {
        if let Some(f) = self.filled.get_mut(index) {
            *f = true;
        }
        self.count += 1;
    }

    /// The row `index` to write into, when the dimension is known.
    #[inline]
    pub fn row_mut(&mut self, index: usize) -> Option<&mut [f32]> {
        if index >= self.rows {
            return None;
        }
        self.out.row(index, self.dim)
    }

    /// Parses the float array at the cursor into row `index` (claimed),
    /// learning the dimension from it when unknown, and marks it done.
    #[inline]
    pub fn floats_at(&mut self, s: &mut Scanner<'_>, index: usize) -> Step<()> {
        self.floats_into(s, index)?;
        self.done(index);
        Ok(())
    }

    /// [`RowBuffer::floats_at`] without marking the row done (for an
    /// [`Envelope`] unit, which marks it after its separator).
    #[inline]
    pub fn floats_into(&mut self, s: &mut Scanner<'_>, index: usize) -> Step<()> {
        self.in_range(index)?;
        s.ws();
        if let Some(row) = self.out.row(index, self.dim) {
            let end = parse_floats_into(s.b, s.i, row).map_err(|e| e.to_string())?;
            s.i = end;
            return Ok(());
        }
        self.read_floats(s, self.dim).map_err(|e| e.to_string())?;
        self.place_floats(index)
    }

    /// Parses the float array at the cursor into the scratch row, at most
    /// `limit` values (`0` = [`MAX_DIMENSIONS`]); for [`RowBuffer::place_floats`].
    pub fn read_floats(
        &mut self,
        s: &mut Scanner<'_>,
        limit: usize,
    ) -> std::result::Result<(), RowError> {
        let limit = if limit == 0 { MAX_DIMENSIONS } else { limit };
        let mut v = std::mem::take(&mut self.scratch_f32);
        v.clear();
        let end = parse_floats(s.b, s.i, |x| {
            v.push(x);
            v.len() <= limit
        });
        self.scratch_f32 = v;
        s.i = end.map_err(|e| match e {
            RowError::Dimension { .. } => RowError::Dimension {
                got: limit + 1,
                expected: limit,
            },
            e => e,
        })?;
        Ok(())
    }

    #[inline]
    fn in_range(&self, index: usize) -> Step {
        if index < self.rows {
            Ok(())
        } else {
            Err(format!(
                "more than {} embeddings for {} inputs",
                self.rows, self.rows
            ))
        }
    }

    /// Allocates the output once the dimension is learned from a row, and
    /// returns row `index` (in range).
    fn learn_dim(&mut self, dim: usize, index: usize) -> Step<&mut [f32]> {
        if dim == 0 {
            return Err(format!("embedding {index} is empty"));
        }
        if !self.ready() {
            self.dim = dim;
            self.out = Out::Owned(Embeddings::zeroed(self.rows, dim));
        }
        self.out
            .row(index, self.dim)
            .ok_or_else(|| "internal: no output buffer".to_owned())
    }

    /// Places the scratch row of [`RowBuffer::read_floats`] at `index`.
    pub fn place_floats(&mut self, index: usize) -> Step {
        self.in_range(index)?;
        let v = std::mem::take(&mut self.scratch_f32);
        let result = (|| {
            let row = self.learn_dim(v.len(), index)?;
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

    /// Decodes base64 `text` into row `index`, learning the dimension from
    /// it when unknown.
    pub fn place_base64(&mut self, index: usize, text: &[u8]) -> Step {
        self.in_range(index)?;
        if !self.ready() {
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
        let Some(row) = self.out.row(index, dim) else {
            return Err("internal: no output buffer".to_owned());
        };
        decode_base64_into(text, row, &mut self.scratch).map_err(|e| match e {
            RowError::Base64Length { len, .. } => format!(
                "embedding {index}: base64 of {len} characters does not hold {dim} f32 values (wrong dimension or truncated)"
            ),
            e => format!("embedding {index}: {e}"),
        })
    }

    /// Tries the fast path for a base64 string at the cursor: the closing
    /// quote where the known dimension puts it, valid base64 between.
    /// `true` when row `index` was filled (and the cursor moved past it).
    #[inline]
    pub fn try_base64_at(&mut self, s: &mut Scanner<'_>, index: usize) -> bool {
        if index >= self.rows {
            return false;
        }
        let (padded, unpadded) = base64_lengths(self.dim * 4);
        let Some(row) = self.out.row(index, self.dim) else {
            return false;
        };
        let start = s.i + 1;
        for len in [padded, unpadded] {
            if s.b.get(start + len) == Some(&b'"') {
                let text = &s.b[start..start + len];
                if decode_base64_into(text, row, &mut self.scratch).is_ok() {
                    s.i = start + len + 1;
                    return true;
                }
            }
        }
        false
    }

    /// The batch, when every row came; else an `InvalidResponse` naming the counts.
    /// Rows written into the caller's rows ([`decode_rows`])
    /// are not in the returned value: it has no rows then.
    pub fn finish(self) -> Result<Embeddings> {
        if self.count != self.rows {
            return Err(Error::invalid_response(format!(
                "expected {} embeddings (one per input), got {}",
                self.rows, self.count
            )));
        }
        Ok(match self.out {
            Out::Owned(e) => e,
            Out::Unknown | Out::Into(_) | Out::Detached => Embeddings::empty(self.dim),
        })
    }
}

/// Runs `decode` over a row buffer for an answer of `rows` rows of `dim`
/// values, placed by index (`by_index`) or in order: into `sink` when one
/// is given (a [`RowSink`](embeddings_core::RowSink) of that shape, from
/// [`EmbedRequest::sink_for`](embeddings_core::EmbedRequest::sink_for); the
/// result then has no rows and the sink is filled only when `decode`
/// succeeds), else into a buffer of its own.
pub fn decode_rows(
    sink: Option<&dyn embeddings_core::RowSink>,
    rows: usize,
    dim: usize,
    by_index: bool,
    mut decode: impl FnMut(RowBuffer<'_>) -> Result<Embeddings>,
) -> Result<Embeddings> {
    let Some(sink) = sink else {
        return decode(RowBuffer::new(rows, dim, by_index));
    };
    let mut out = None;
    sink.write(&mut |dst| {
        let buffer = RowBuffer::into_rows(dst, rows, dim, by_index)
            .ok_or_else(|| Error::invalid_input("a row sink of another shape than the request"))?;
        out = Some(decode(buffer)?);
        Ok(())
    })?;
    out.ok_or_else(|| Error::invalid_response("internal: the row sink ran no decoder"))
}

// ---------------------------------------------------------------------------
// Answers decoded as they stream in

/// A provider's answer envelope read unit by unit, so that a [`RowStream`]
/// can decode the body as it streams in: only the unconsumed tail of the
/// body is ever held, not the whole answer.
///
/// A unit is the next piece of the envelope with the separator after it
/// (`"key": value,`, or one row item and its `,` or `]`). The stream hands
/// [`Envelope::unit`] the bytes it has; a unit that fails before the body
/// has ended is tried again, from its start, once more bytes came. So a
/// unit must change the envelope's state (and mark a row done) only after
/// it read its last byte; rows it wrote into, it writes again. A unit
/// never succeeds on a truncated value as long as it reads the separator
/// after every value, which is what makes this sound.
pub trait Envelope {
    /// Reads the next unit at the cursor into `rows`: `Ok(true)` while the
    /// envelope goes on, `Ok(false)` once its closing `}` is read.
    fn unit(&mut self, s: &mut Scanner<'_>, rows: &mut RowBuffer<'_>) -> Step<bool>;

    /// The batch once the whole body was read ([`RowBuffer::finish`] and
    /// what the envelope adds, such as the usage).
    fn finish(self, rows: RowBuffer<'_>) -> Result<Embeddings>;
}

/// One answer decoded as its body streams in ([`crate::read_body_into`]),
/// or at once ([`RowStream::decode`]), by an [`Envelope`]: into the
/// request's [`RowSink`](embeddings_core::RowSink) when there is one (the
/// result then has no rows), else into a buffer of its own.
///
/// ```
/// use embeddings_http::json::{Envelope, RowBuffer, RowStream, Scanner, Step};
/// use embeddings_core::{Embeddings, Result};
///
/// /// `[[..], [..]]`: a bare array of rows.
/// struct Bare { open: bool }
/// impl Envelope for Bare {
///     fn unit(&mut self, s: &mut Scanner<'_>, rows: &mut RowBuffer<'_>) -> Step<bool> {
///         if !self.open {
///             s.eat(b'[', "'['")?;
///             self.open = true;
///             return Ok(true);
///         }
///         let i = rows.count();
///         rows.floats_into(s, i)?;
///         let more = s.more(b']')?;
///         rows.done(i);
///         Ok(more)
///     }
///     fn finish(self, rows: RowBuffer<'_>) -> Result<Embeddings> { rows.finish() }
/// }
/// let mut stream = RowStream::new(Bare { open: false }, None, 2, 0, false)?;
/// // Any split of the body: a unit cut off is tried again with more bytes.
/// let body = b"[[1,0.5],[0,-2]]";
/// let n = stream.feed(&body[..9], false)?;
/// assert_eq!(n, 9); // `[` and the first row with its `,`
/// stream.feed(&body[n..], true)?;
/// assert_eq!(stream.finish()?.row(1), &[0.0, -2.0]);
/// # Ok::<(), embeddings_core::Error>(())
/// ```
#[derive(Debug)]
pub struct RowStream<'s, E> {
    envelope: E,
    /// `None` only while a step runs.
    rows: Option<RowBuffer<'static>>,
    sink: Option<&'s dyn embeddings_core::RowSink>,
    /// Bytes of the body consumed so far.
    consumed: usize,
    /// The envelope's closing brace was read.
    ended: bool,
}

impl<'s, E: Envelope> RowStream<'s, E> {
    /// A stream for an answer of `rows` rows of `dim` values (`0` =
    /// learned from the first row), placed by index (`by_index`) or in
    /// order, into `sink` when given (of that shape: from
    /// [`EmbedRequest::sink_for`](embeddings_core::EmbedRequest::sink_for),
    /// else `InvalidInput`).
    pub fn new(
        envelope: E,
        sink: Option<&'s dyn embeddings_core::RowSink>,
        rows: usize,
        dim: usize,
        by_index: bool,
    ) -> Result<Self> {
        let buffer = match sink {
            None => RowBuffer::new(rows, dim, by_index),
            Some(sink) if dim > 0 && sink.shape() == (rows, dim) => {
                RowBuffer::with_out(rows, dim, by_index, Out::Detached)
            }
            Some(_) => {
                return Err(Error::invalid_input(
                    "a row sink of another shape than the request",
                ));
            }
        };
        Ok(RowStream {
            envelope,
            rows: Some(buffer),
            sink,
            consumed: 0,
            ended: false,
        })
    }

    /// Decodes a whole body at once: [`RowStream::feed`] of all of it, then
    /// [`RowStream::finish`].
    pub fn decode(mut self, body: &[u8]) -> Result<Embeddings> {
        self.feed(body, true)?;
        self.finish()
    }

    /// The envelope (what it read so far).
    pub fn envelope(&self) -> &E {
        &self.envelope
    }

    /// The dimension (`0` until the first row told it).
    pub fn dim(&self) -> usize {
        self.rows.as_ref().map_or(0, RowBuffer::dim)
    }

    /// Decodes every complete unit at the start of `buf` (the body's bytes
    /// after those consumed so far) and returns how many bytes that was;
    /// the caller keeps the rest and feeds it again with what follows.
    /// With `last`, `buf` is the rest of the body: all of it is consumed or
    /// the answer is refused (`InvalidResponse`, the message naming the
    /// byte of the whole body).
    pub fn feed(&mut self, buf: &[u8], last: bool) -> Result<usize> {
        let offset = self.consumed;
        let (envelope, ended) = (&mut self.envelope, &mut self.ended);
        let taken = self.rows.take().ok_or_else(|| {
            Error::invalid_response("internal: a row stream was fed after a failure")
        })?;
        let n = match self.sink {
            None => {
                let mut rows = taken;
                let n = units(envelope, &mut rows, buf, offset, ended, last);
                self.rows = Some(rows);
                n?
            }
            Some(sink) => {
                let (mut n, mut taken) = (0, Some(taken));
                let slot = &mut self.rows;
                let written = sink.write(&mut |dst| {
                    let Some(buffer) = taken.take() else {
                        return Err(Error::invalid_response("internal: a row sink wrote twice"));
                    };
                    if !buffer.attaches_to(dst.len()) {
                        *slot = Some(buffer);
                        return Err(Error::invalid_input(
                            "a row sink of another shape than the request",
                        ));
                    }
                    let mut rows = buffer.attach(dst);
                    let step = units(envelope, &mut rows, buf, offset, ended, last);
                    *slot = Some(rows.detach());
                    n = step?;
                    Ok(())
                });
                written?;
                n
            }
        };
        self.consumed += n;
        Ok(n)
    }

    /// The batch, once the whole body was fed (`last`): the envelope's
    /// [`Envelope::finish`]. On a failure the sink is left not filled.
    pub fn finish(mut self) -> Result<Embeddings> {
        let result = match self.rows.take() {
            Some(rows) if self.ended => self.envelope.finish(rows),
            _ => Err(Error::invalid_response(
                "internal: a row stream finished before its body ended",
            )),
        };
        if let (Err(e), Some(sink)) = (&result, self.sink) {
            let _ = sink.write(&mut |_| Err(Error::invalid_response(e.message().to_owned())));
        }
        result
    }
}

/// The units of `buf` (at `offset` of the body) through `envelope`; see
/// [`RowStream::feed`].
fn units<E: Envelope>(
    envelope: &mut E,
    rows: &mut RowBuffer<'_>,
    buf: &[u8],
    offset: usize,
    ended: &mut bool,
    last: bool,
) -> Result<usize> {
    let mut at = 0;
    loop {
        let mut s = Scanner::at_offset(&buf[at..], offset + at);
        if *ended {
            s.ws();
            if last || s.pos() < s.bytes().len() {
                s.end().map_err(Error::invalid_response)?;
            }
            return Ok(buf.len());
        }
        if !last && at == buf.len() {
            return Ok(at);
        }
        match envelope.unit(&mut s, rows) {
            Ok(_) if s.pos() == 0 => {
                return Err(Error::invalid_response(
                    "internal: an envelope unit read nothing",
                ));
            }
            Ok(more) => {
                at += s.pos();
                *ended = !more;
            }
            // Cut off, most likely: tried again with more bytes.
            Err(_) if !last => return Ok(at),
            Err(message) => return Err(Error::invalid_response(message)),
        }
    }
}

// ---------------------------------------------------------------------------
// The OpenAI-shaped envelope

/// The envelope of the OpenAI-shaped answers (Voyage, Jina, Mistral):
/// `{"data": [item, ...], "usage": {"<tokens>": n, ...}, ...}`. `item`
/// reads one element of `data` (the cursor on it) and places its row;
/// `usage` may be `null` or missing; every other key is skipped; the body
/// must be one complete value ([`Scanner::end`]). Returns the usage read
/// from `usage.<tokens>` ([`usage_tokens`]). Counting the rows is the row
/// buffer's.
///
/// ```
/// use embeddings_http::json::{RowBuffer, data_envelope};
/// let body = br#"{"data":[{"index":0,"embedding":[0.5,1]}],"usage":{"total_tokens":3}}"#;
/// let mut rows = RowBuffer::by_index(1, 2);
/// let usage = data_envelope(body, "total_tokens", |s| {
///     s.eat(b'{', "'{'")?;
///     let (mut index, mut at) = (None, None);
///     loop {
///         let key = s.string()?;
///         s.eat(b':', "':'")?;
///         match &*key {
///             b"index" => index = Some(s.integer(|| "`index`".into())?),
///             b"embedding" => { at = Some(s.pos()); s.skip_value(2)?; }
///             _ => s.skip_value(2)?,
///         }
///         if !s.more(b'}')? { break; }
///     }
///     let i = rows.claim(index.ok_or("no `index`")?)?;
///     let back = s.pos();
///     s.set_pos(at.ok_or("no `embedding`")?);
///     rows.floats_at(s, i)?;
///     s.set_pos(back);
///     Ok(())
/// })
/// .unwrap();
/// assert_eq!(usage.map(|u| u.prompt_tokens), Some(3));
/// assert_eq!(rows.finish().unwrap().row(0), &[0.5, 1.0]);
/// ```
pub fn data_envelope<'a>(
    body: &'a [u8],
    tokens: &str,
    mut item: impl FnMut(&mut Scanner<'a>) -> Step,
) -> Step<Option<Usage>> {
    let mut usage = None;
    let mut s = Scanner::new(body);
    s.eat(b'{', "'{'")?;
    if !s.eat_if(b'}') {
        loop {
            let key = s.string()?;
            s.eat(b':', "':'")?;
            match &*key {
                b"data" => {
                    s.eat(b'[', "'[' opening `data`")?;
                    if !s.eat_if(b']') {
                        loop {
                            item(&mut s)?;
                            if !s.more(b']')? {
                                break;
                            }
                        }
                    }
                }
                b"usage" => usage = usage_tokens(&mut s, tokens)?,
                _ => s.skip_value(1)?,
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    s.end()?;
    Ok(usage)
}

/// A `usage` object (or `null`): the integer under `tokens` (such as
/// `total_tokens`, `prompt_tokens`) as the prompt tokens; other keys
/// skipped; `None` when it is `null` or lacks the key.
pub fn usage_tokens(s: &mut Scanner<'_>, tokens: &str) -> Step<Option<Usage>> {
    if s.is_null() {
        return Ok(None);
    }
    let mut usage = None;
    s.eat(b'{', "'{' opening `usage`")?;
    if !s.eat_if(b'}') {
        loop {
            let key = s.string()?;
            s.eat(b':', "':'")?;
            if *key == *tokens.as_bytes() {
                usage = Some(Usage::tokens(s.integer(|| format!("`{tokens}`"))?));
            } else {
                s.skip_value(2)?;
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn float_rows_and_their_errors() {
        let mut out = [0.0f32; 3];
        parse_float_row(" [1, -0.5 ,2e0] ", &mut out).unwrap();
        assert_eq!(out, [1.0, -0.5, 2.0]);
        for (text, want) in [
            (
                "[1,2]",
                RowError::Dimension {
                    got: 2,
                    expected: 3,
                },
            ),
            (
                "[1,2,3,4]",
                RowError::Dimension {
                    got: 4,
                    expected: 3,
                },
            ),
            ("[1,null,3]", RowError::NotANumber { at: 1 }),
            ("[1,1e39,3]", RowError::NotFinite { at: 1 }),
            ("[1,2,", RowError::Truncated),
            ("{}", RowError::Syntax),
            ("[1,2,3] x", RowError::Syntax),
        ] {
            assert_eq!(parse_float_row(text, &mut out), Err(want), "{text}");
        }
    }

    #[test]
    fn base64_rows_and_their_errors() {
        // [0.6, 0.8]
        let mut out = [0.0f32; 2];
        let mut scratch = Vec::new();
        decode_base64_into(b"mpkZP83MTD8=", &mut out, &mut scratch).unwrap();
        assert_eq!(out, [0.6, 0.8]);
        decode_base64_into(b"mpkZP83MTD8", &mut out, &mut scratch).unwrap();
        assert!(matches!(
            decode_base64_into(b"mpkZ", &mut out, &mut scratch),
            Err(RowError::Base64Length { .. })
        ));
        assert!(matches!(
            decode_base64_into(b"@@@@@@@@@@@@", &mut out, &mut scratch),
            Err(RowError::Base64(_))
        ));
        // NaN bits
        assert_eq!(
            decode_base64_into(b"AADAfwAAAAA=", &mut out, &mut scratch),
            Err(RowError::NotFinite { at: 0 })
        );
    }

    #[test]
    fn buffers_refuse_duplicates_out_of_range_and_missing_rows() {
        let b = RowBuffer::by_index(2, 0);
        assert!(b.claim(2).unwrap_err().contains("out of range"));
        let mut b = RowBuffer::by_index(2, 1);
        let i = b.claim(1).unwrap();
        b.done(i);
        assert!(b.claim(1).unwrap_err().contains("twice"));
        assert!(b.finish().unwrap_err().to_string().contains("got 1"));
        let b = RowBuffer::sequential(2, 1);
        assert!(b.claim(1).unwrap_err().contains("out of order"));
    }

    #[test]
    fn scanner_validates_what_it_skips() {
        for bad in [
            &b"{\"a\":tru}"[..],
            b"{\"a\":01}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\\q\"}",
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        ] {
            let mut s = Scanner::new(bad);
            assert!(
                s.skip_value(1).and_then(|()| s.end()).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut s = Scanner::new(br#" {"a\u0062":[1,true,null,{"x":"\u00e9"}]} "#);
        s.skip_value(1).unwrap();
        s.end().unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn scanner_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut s = Scanner::new(&body);
            let _ = s.skip_value(1);
            let _ = s.count_elements();
            let mut s = Scanner::new(&body);
            let _ = s.string();
            let _ = s.integer(String::new);
        }

        #[test]
        fn row_decoders_never_panic(s in ".{0,64}", dim in 0usize..8) {
            let mut out = vec![0.0; dim];
            let _ = decode_base64_into(s.as_bytes(), &mut out, &mut Vec::new());
            let _ = parse_float_row(&s, &mut out);
            let mut buf = RowBuffer::sequential(1, 0);
            let mut sc = Scanner::new(s.as_bytes());
            let _ = buf.floats_at(&mut sc, 0);
        }

        #[test]
        fn any_finite_row_round_trips_in_both_encodings(
            v in proptest::collection::vec(any::<f32>().prop_filter("finite", |x| x.is_finite()), 1..64)
        ) {
            let text = format!("[{}]", v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(", "));
            let mut out = vec![0.0; v.len()];
            parse_float_row(&text, &mut out).unwrap();
            prop_assert_eq!(bits(&out), bits(&v));
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            let mut out = vec![0.0; v.len()];
            decode_base64_into(b64.as_bytes(), &mut out, &mut Vec::new()).unwrap();
            prop_assert_eq!(bits(&out), bits(&v));
        }

        #[test]
        fn embedding_rows_parse_in_every_layout(
            v in proptest::collection::vec(-1.0f32..1.0, 1..200),
            layout in 0usize..4,
        ) {
            // Shortest texts (serde_json, as most servers write them), compact,
            // spaced or pretty-printed as OpenAI's own answers are.
            let sep = [",", ", ", ",\n        ", " ,\t"][layout];
            let items: Vec<String> = v.iter().map(|x| serde_json::to_string(x).unwrap()).collect();
            let text = format!("[{}]", items.join(sep));
            let mut out = vec![0.0; v.len()];
            parse_float_row(&text, &mut out).unwrap();
            prop_assert_eq!(bits(&out), bits(&v));
        }

        #[test]
        fn a_bad_element_among_short_numbers_is_named(
            v in proptest::collection::vec(-1.0f32..1.0, 2..100),
            at in any::<proptest::sample::Index>(),
            bad in 0usize..5,
        ) {
            let at = at.index(v.len());
            let mut items: Vec<String> = v.iter().map(|x| serde_json::to_string(x).unwrap()).collect();
            let (token, want) = [
                ("null", RowError::NotANumber { at }),
                ("-", RowError::NotANumber { at }),
                ("1e39", RowError::NotFinite { at }),
                ("0.5x", RowError::Separator { after: at }),
                ("0.25e", RowError::NotANumber { at }),
            ][bad].clone();
            items[at] = token.to_owned();
            let text = format!("[{}]", items.join(","));
            let mut out = vec![0.0; v.len()];
            prop_assert_eq!(parse_float_row(&text, &mut out), Err(want), "{}", text);
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }
}
