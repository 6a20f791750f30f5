//! Parsers of Ollama's answers.
//!
//! The `/api/embed` parser writes every float straight into one contiguous
//! buffer (a serde `DeserializeSeed` per row), checking the number of rows
//! and the dimension as it goes: no `serde_json::Value`, no `Vec<Vec<f32>>`.

use std::fmt;

use embeddings_core::{Embeddings, Error, Result, Usage};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

/// Parses the body of a successful `POST /api/embed` answer
/// (`{"model": .., "embeddings": [[..], ..], "prompt_eval_count": ..}`)
/// into one contiguous buffer.
///
/// Fails with [`ErrorKind::InvalidResponse`](embeddings_core::ErrorKind::InvalidResponse)
/// (never a partial result, never a panic) when the body is not JSON, has no
/// `embeddings`, holds another number of vectors than `expected_rows`, a
/// vector of another length than `expected_dim` (or than the first vector
/// when `expected_dim` is `None`), an empty vector, or a value that is not a
/// finite `f32`. `prompt_eval_count`, when present, becomes the usage.
///
/// ```
/// let body = br#"{"model":"m","embeddings":[[1,0],[0.5,-0.25]],"prompt_eval_count":4}"#;
/// let e = embeddings_ollama::parse_embed_response(body, 2, Some(2)).unwrap();
/// assert_eq!(e.row(1), &[0.5, -0.25]);
/// assert_eq!(e.usage().unwrap().prompt_tokens, 4);
/// assert!(embeddings_ollama::parse_embed_response(body, 3, None).is_err());
/// ```
pub fn parse_embed_response(
    body: &[u8],
    expected_rows: usize,
    expected_dim: Option<usize>,
) -> Result<Embeddings> {
    let mut rows = Rows::new(expected_rows, expected_dim);
    let count = parse_top(body, &mut rows, false)
        .map_err(|m| Error::invalid_response(format!("/api/embed answer: {m}")))?;
    let mut e = rows.finish()?;
    if let Some(n) = count {
        e.set_usage(Some(Usage {
            prompt_tokens: n,
            total_tokens: n,
        }));
    }
    Ok(e)
}

/// Parses the body of a legacy `POST /api/embeddings` answer
/// (`{"embedding": [..]}`) into a new vector.
pub(crate) fn parse_legacy_response(body: &[u8]) -> Result<Vec<f32>> {
    let mut rows = Rows::new(1, None);
    parse_top(body, &mut rows, true)
        .map_err(|m| Error::invalid_response(format!("/api/embeddings answer: {m}")))?;
    Ok(rows.data)
}

/// What `POST /api/show` tells about a model.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShowInfo {
    /// `<arch>.embedding_length`.
    pub(crate) embedding_length: Option<usize>,
    /// `<arch>.context_length`.
    pub(crate) context_length: Option<usize>,
}

/// Parses `POST /api/show`: `model_info["<arch>.embedding_length"]` where
/// `<arch>` is `model_info["general.architecture"]` (or, without it, the
/// only `*.embedding_length` key).
pub(crate) fn parse_show_response(body: &[u8]) -> Result<ShowInfo> {
    #[derive(Deserialize)]
    struct Show {
        #[serde(default)]
        model_info: Option<ModelInfo>,
    }
    #[derive(Default)]
    struct ModelInfo {
        arch: Option<String>,
        embedding: Vec<(String, u64)>,
        context: Vec<(String, u64)>,
    }
    impl<'de> Deserialize<'de> for ModelInfo {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = ModelInfo;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a map of model metadata")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<ModelInfo, A::Error> {
                    let mut info = ModelInfo::default();
                    while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                        if key == "general.architecture" {
                            info.arch = map.next_value::<Option<String>>()?;
                        } else if let Some(arch) = key.strip_suffix(".embedding_length") {
                            if let Some(n) = map.next_value::<Option<u64>>()? {
                                info.embedding.push((arch.to_owned(), n));
                            }
                        } else if let Some(arch) = key.strip_suffix(".context_length") {
                            if let Some(n) = map.next_value::<Option<u64>>()? {
                                info.context.push((arch.to_owned(), n));
                            }
                        } else {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    Ok(info)
                }
            }
            d.deserialize_map(V)
        }
    }
    fn pick(arch: Option<&str>, found: &[(String, u64)]) -> Option<usize> {
        let hit = match arch {
            Some(a) => found.iter().find(|(k, _)| k == a),
            None if found.len() == 1 => found.first(),
            None => None,
        };
        hit.and_then(|(_, n)| usize::try_from(*n).ok())
            .filter(|&n| n > 0)
    }
    let show: Show = serde_json::from_slice(body)
        .map_err(|e| Error::invalid_response(format!("malformed /api/show answer: {e}")))?;
    let Some(mi) = show.model_info else {
        return Ok(ShowInfo::default());
    };
    Ok(ShowInfo {
        embedding_length: pick(mi.arch.as_deref(), &mi.embedding),
        context_length: pick(mi.arch.as_deref(), &mi.context),
    })
}

/// Parses `GET /api/tags` into the model names it lists.
pub(crate) fn parse_tags_response(body: &[u8]) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Tags {
        #[serde(default)]
        models: Vec<Tag>,
    }
    #[derive(Deserialize)]
    struct Tag {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        model: Option<String>,
    }
    let tags: Tags = serde_json::from_slice(body)
        .map_err(|e| Error::invalid_response(format!("malformed /api/tags answer: {e}")))?;
    Ok(tags
        .models
        .into_iter()
        .flat_map(|t| [t.name, t.model])
        .flatten()
        .collect())
}

/// Ollama's error body, `{"error": "..."}`.
pub(crate) fn parse_error_body(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: ErrorField,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorField {
        Text(String),
        Object { message: String },
    }
    match serde_json::from_slice::<ErrorBody>(body).ok()?.error {
        ErrorField::Text(t) | ErrorField::Object { message: t } => Some(t),
    }
}

// ---------------------------------------------------------------------------
// The top-level object.

/// Walks the top-level object of an answer: the vectors field
/// (`embeddings`, or `embedding` when `legacy`) is scanned into `rows`;
/// `prompt_eval_count` is read; every other value is checked and skipped
/// by serde_json. Returns `prompt_eval_count`.
fn parse_top(
    body: &[u8],
    rows: &mut Rows,
    legacy: bool,
) -> std::result::Result<Option<u64>, String> {
    let field = if legacy { "embedding" } else { "embeddings" };
    let mut s = Scanner { text: body, pos: 0 };
    let mut seen = false;
    let mut count = None;
    s.ws();
    if !s.eat(b'{') {
        return Err("not a JSON object".to_owned());
    }
    s.ws();
    if !s.eat(b'}') {
        loop {
            s.ws();
            let key = s.key()?;
            s.ws();
            if !s.eat(b':') {
                return Err(format!("malformed JSON at byte {}", s.pos));
            }
            s.ws();
            if key == field {
                if seen {
                    return Err(format!("duplicate field `{field}`"));
                }
                seen = true;
                if legacy {
                    s.row(rows)?;
                } else {
                    s.rows(rows)?;
                }
            } else if key == "prompt_eval_count" && !legacy {
                count = s.serde_value::<Option<u64>>()?;
            } else {
                s.serde_value::<IgnoredAny>()?;
            }
            s.ws();
            if s.eat(b',') {
                continue;
            }
            if s.eat(b'}') {
                break;
            }
            return Err(format!("malformed JSON at byte {}", s.pos));
        }
    }
    s.ws();
    if s.pos != body.len() {
        return Err(format!("trailing characters at byte {}", s.pos));
    }
    if !seen {
        return Err(format!("no `{field}` field"));
    }
    Ok(count)
}

// ---------------------------------------------------------------------------
// The vectors.

/// The buffer being filled, and what is known and expected of it.
#[derive(Debug)]
struct Rows {
    data: Vec<f32>,
    dim: Option<usize>,
    rows: usize,
    expected_rows: usize,
}

impl Rows {
    fn new(expected_rows: usize, expected_dim: Option<usize>) -> Self {
        // Reserve what the answer should hold, within reason: the buffer
        // still grows if a (bad) answer holds more.
        let cap = expected_dim.map_or(0, |d| expected_rows.saturating_mul(d).min(1 << 26));
        Rows {
            data: Vec::with_capacity(cap),
            dim: expected_dim,
            rows: 0,
            expected_rows,
        }
    }

    fn finish(self) -> Result<Embeddings> {
        if self.rows != self.expected_rows {
            return Err(Error::invalid_response(format!(
                "expected {} vectors, got {}",
                self.expected_rows, self.rows
            )));
        }
        if self.rows == 0 {
            return Ok(Embeddings::empty(self.dim.unwrap_or(0)));
        }
        Embeddings::from_flat(self.data, self.dim.unwrap_or(0))
    }
}

/// A cursor over the JSON text of an answer.
struct Scanner<'t> {
    text: &'t [u8],
    pos: usize,
}

impl<'t> Scanner<'t> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    #[inline]
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// An object key. Plain keys are compared in place; keys with escapes
    /// are decoded by serde_json.
    fn key(&mut self) -> std::result::Result<std::borrow::Cow<'t, str>, String> {
        let t = self.text;
        if self.peek() != Some(b'"') {
            return Err(format!(
                "malformed JSON at byte {}: expected a key",
                self.pos
            ));
        }
        let start = self.pos + 1;
        let mut i = start;
        while let Some(&c) = t.get(i) {
            match c {
                b'"' => {
                    let key = std::str::from_utf8(&t[start..i])
                        .map_err(|_| format!("invalid UTF-8 in a key at byte {start}"))?;
                    self.pos = i + 1;
                    return Ok(key.into());
                }
                b'\\' | 0..=0x1f => break,
                _ => i += 1,
            }
        }
        self.serde_value::<String>().map(Into::into)
    }

    /// One JSON value at the cursor, read (and checked) by serde_json.
    fn serde_value<T: serde::de::DeserializeOwned>(&mut self) -> std::result::Result<T, String> {
        let rest = &self.text[self.pos..];
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
        match values.next() {
            Some(Ok(v)) => {
                self.pos += values.byte_offset();
                Ok(v)
            }
            Some(Err(e)) => Err(format!("malformed JSON at byte {}: {e}", self.pos)),
            None => Err("unexpected end of the answer".to_owned()),
        }
    }

    /// The `embeddings` array, `[[n, ..], ..]`.
    fn rows(&mut self, rows: &mut Rows) -> std::result::Result<(), String> {
        if !self.eat(b'[') {
            return Err("`embeddings` is not an array".to_owned());
        }
        self.ws();
        if self.eat(b']') {
            return Ok(());
        }
        loop {
            if rows.rows == rows.expected_rows {
                let got = rows.rows + self.count_elements();
                return Err(format!(
                    "expected {} vectors, got {got}",
                    rows.expected_rows
                ));
            }
            self.row(rows)?;
            self.ws();
            if self.eat(b',') {
                self.ws();
                continue;
            }
            if self.eat(b']') {
                return Ok(());
            }
            return Err(format!("malformed `embeddings` array at byte {}", self.pos));
        }
    }

    /// Counts the remaining elements of the array whose first element
    /// starts at the cursor (for an error message; nothing is stored).
    fn count_elements(&self) -> usize {
        let (mut depth, mut n, mut in_str, mut esc) = (0usize, 1usize, false, false);
        for &b in &self.text[self.pos..] {
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

    /// One vector, `[n, ..]`, appended to the buffer value by value and
    /// checked against the known dimension as it goes.
    fn row(&mut self, rows: &mut Rows) -> std::result::Result<(), String> {
        let row = rows.rows;
        self.ws();
        if !self.eat(b'[') {
            return Err(format!("vector {row} is not an array"));
        }
        let start = rows.data.len();
        let limit = rows.dim.map_or(usize::MAX, |d| start + d);
        if let Some(d) = rows.dim {
            rows.data.reserve(d);
        }
        self.ws();
        if !self.eat(b']') {
            loop {
                self.ws();
                let index = rows.data.len() - start;
                let Some(v) = self.number() else {
                    return Err(format!(
                        "vector {row} holds a value that is not a number at index {index}"
                    ));
                };
                if rows.data.len() == limit {
                    let n = index + self.count_elements();
                    let d = limit - start;
                    return Err(format!("vector {row} has {n} values, expected {d}"));
                }
                if !v.is_finite() {
                    return Err(format!(
                        "vector {row} holds a non-finite value at index {index}"
                    ));
                }
                rows.data.push(v);
                self.ws();
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b']') {
                    break;
                }
                return Err(format!("vector {row} is malformed"));
            }
        }
        let n = rows.data.len() - start;
        if n == 0 {
            return Err(format!("vector {row} is empty"));
        }
        match rows.dim {
            Some(d) if n != d => return Err(format!("vector {row} has {n} values, expected {d}")),
            Some(_) => {}
            None => {
                rows.dim = Some(n);
                let more = rows.expected_rows.saturating_sub(1).saturating_mul(n);
                rows.data.reserve(more.min(1 << 26));
            }
        }
        rows.rows += 1;
        Ok(())
    }

    /// A JSON number as the nearest `f32` (`None` when the cursor is not
    /// on a JSON number). Values beyond `f32` come out infinite.
    #[inline]
    fn number(&mut self) -> Option<f32> {
        let t = self.text;
        let start = self.pos;
        let mut i = start;
        let neg = t.get(i) == Some(&b'-');
        i += usize::from(neg);
        let mut mantissa: u64 = 0;
        // Integer part: `0` or a digit run without a leading zero.
        let int_start = i;
        let int_digits = if t.get(i) == Some(&b'0') {
            // Most components are below 1: their integer part is one `0`
            // (which JSON allows no digit after).
            i += 1;
            if t.get(i).is_some_and(u8::is_ascii_digit) {
                return None;
            }
            1
        } else {
            (mantissa, i) = digit_run(t, i, mantissa);
            i - int_start
        };
        if int_digits == 0 {
            return None;
        }
        let mut frac_digits = 0;
        if t.get(i) == Some(&b'.') {
            i += 1;
            let frac_start = i;
            (mantissa, i) = digit_run(t, i, mantissa);
            frac_digits = i - frac_start;
            if frac_digits == 0 {
                return None;
            }
        }
        let mut exp: i64 = 0;
        if let Some(b'e' | b'E') = t.get(i) {
            i += 1;
            let eneg = t.get(i) == Some(&b'-');
            i += usize::from(matches!(t.get(i), Some(b'-' | b'+')));
            let exp_start = i;
            while let Some(&c) = t.get(i) {
                let d = c.wrapping_sub(b'0');
                if d > 9 {
                    break;
                }
                exp = (exp * 10 + i64::from(d)).min(1 << 40);
                i += 1;
            }
            if i == exp_start {
                return None;
            }
            if eneg {
                exp = -exp;
            }
        }
        self.pos = i;
        // Clinger's fast path: with at most 19 digits the mantissa is exact
        // in u64; when it is also exact in f64 and so is the power of ten,
        // one IEEE operation gives the correctly rounded f64. Rounding that
        // to f32 is exact too unless it lies exactly half-way between two
        // f32 (double rounding): such ties, and everything outside the fast
        // path, go to the standard library's correctly rounded parser.
        let exp10 = exp - frac_digits as i64;
        if int_digits + frac_digits <= 19 {
            if mantissa == 0 {
                return Some(if neg { -0.0 } else { 0.0 });
            }
            if mantissa <= (1 << 53) && (-22..=22).contains(&exp10) {
                let m = mantissa as f64;
                let y = if exp10 < 0 {
                    m / POW10[(-exp10) as usize]
                } else {
                    m * POW10[exp10 as usize]
                };
                if y.to_bits() & 0x1FFF_FFFF != 0x1000_0000 {
                    let x = y as f32;
                    return Some(if neg { -x } else { x });
                }
            }
        }
        std::str::from_utf8(&t[start..i]).ok()?.parse::<f32>().ok()
    }
}

/// Appends the run of ASCII digits at `t[i..]` to `mantissa` (wrapping;
/// callers count digits to know when it is exact) and returns it with the
/// index after the run.
///
/// Eight bytes at a time, without a branch per digit (the SWAR method of
/// fast_float): the bytes that are not digits are found with two additions,
/// the run's length from the first of them, and the digits are converted
/// with three multiplications. Variable-length runs are what make a number
/// parser slow; here a float costs one or two predictable iterations.
#[inline]
fn digit_run(t: &[u8], mut i: usize, mut mantissa: u64) -> (u64, usize) {
    // Up to 15 digits from 16 bytes at once: every float component an
    // embedding server writes (f32 needs at most 9 significant digits).
    if let Some(Ok(chunk)) = t.get(i..i.wrapping_add(16)).map(<[u8; 16]>::try_from) {
        let v = u128::from_le_bytes(chunk);
        let (lo, hi) = (v as u64, (v >> 64) as u64);
        let n_lo = (non_digits(lo).trailing_zeros() / 8) as usize;
        if n_lo < 8 {
            let m = mantissa
                .wrapping_mul(POW10_U64[n_lo])
                .wrapping_add(eight_digits(align(lo, n_lo)));
            return (m, i + n_lo);
        }
        let n_hi = (non_digits(hi).trailing_zeros() / 8) as usize;
        if n_hi < 8 {
            let m = mantissa
                .wrapping_mul(100_000_000)
                .wrapping_add(eight_digits(lo))
                .wrapping_mul(POW10_U64[n_hi])
                .wrapping_add(eight_digits(align(hi, n_hi)));
            return (m, i + 8 + n_hi);
        }
    }
    while let Some(chunk) = t.get(i..i.wrapping_add(8)) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let v = u64::from_le_bytes(chunk);
        let n = (non_digits(v).trailing_zeros() / 8) as usize; // 8 when all are digits
        if n == 8 {
            mantissa = mantissa
                .wrapping_mul(100_000_000)
                .wrapping_add(eight_digits(v));
            i += 8;
            continue;
        }
        mantissa = mantissa
            .wrapping_mul(POW10_U64[n])
            .wrapping_add(eight_digits(align(v, n)));
        return (mantissa, i + n);
    }
    // The last bytes of the text.
    while let Some(&c) = t.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    (mantissa, i)
}

/// The high bit of each byte of `v` that is not an ASCII digit.
#[inline]
fn non_digits(v: u64) -> u64 {
    let a = v.wrapping_add(0x4646_4646_4646_4646);
    let b = v.wrapping_sub(0x3030_3030_3030_3030);
    (a | b) & 0x8080_8080_8080_8080
}

/// The first `n < 8` bytes of `v` moved to the top (least significant
/// digits) and the bottom filled with '0's, which read as leading zeros.
/// Two shifts, so that n = 0 shifts everything out without a branch.
#[inline]
fn align(v: u64, n: usize) -> u64 {
    let half = (8 - n) * 4;
    ((v << half) << half) | (0x3030_3030_3030_3030 >> (n * 8))
}

/// The value of 8 ASCII digits packed little-endian in `v` (first digit in
/// the lowest byte).
#[inline]
fn eight_digits(v: u64) -> u64 {
    let b = v.wrapping_sub(0x3030_3030_3030_3030);
    let v = b.wrapping_mul(10).wrapping_add(b >> 8);
    let v1 = (v & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32));
    let v2 = ((v >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32));
    u64::from((v1.wrapping_add(v2) >> 32) as u32)
}

const POW10_U64: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn num(s: &str) -> Option<f32> {
        Scanner {
            text: s.as_bytes(),
            pos: 0,
        }
        .number()
    }

    #[test]
    fn numbers() {
        for (s, want) in [
            ("0", 0.0f32),
            ("-0", -0.0),
            ("1", 1.0),
            ("-1.5", -1.5),
            ("0.1", 0.1),
            ("1e2", 100.0),
            ("1E+2", 100.0),
            ("25e-1", 2.5),
            ("0.000001", 1e-6),
            ("123456789012345678901234567890", 1.2345679e29),
            ("0.0000000000000000000000000000000000000000000014", 1e-45),
            ("3.4028235e38", f32::MAX),
            ("1.17549435e-38", f32::MIN_POSITIVE),
            ("1e-50", 0.0),
        ] {
            let got = num(s).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{s}: {got:e}");
        }
        assert_eq!(num("1e39"), Some(f32::INFINITY));
        assert_eq!(num("-1e99999999999"), Some(f32::NEG_INFINITY));
        for bad in [
            "", "-", "x", ".5", "1.", "1e", "1e+", "null", "01", "-01.5", "+1",
        ] {
            assert_eq!(num(bad), None, "{bad}");
        }
    }

    #[test]
    fn digit_runs() {
        for (text, at, want) in [
            ("12345678", 0, (12_345_678, 8)),
            ("x00000000", 1, (0, 9)),
            ("99999999,", 0, (99_999_999, 8)),
            ("1234567", 0, (1_234_567, 7)),
            ("1234567/xxxxxxxxxx", 0, (1_234_567, 7)),
            ("123:5678xxxxxxxxxx", 0, (123, 3)),
            ("/2345678xxxxxxxxxx", 0, (0, 0)),
            ("0.036156863,0.1", 2, (36_156_863, 11)),
            ("12345678901234567890]", 0, (12_345_678_901_234_567_890, 20)),
            ("", 0, (0, 0)),
        ] {
            assert_eq!(digit_run(text.as_bytes(), at, 0), want, "{text}");
        }
        assert_eq!(digit_run(b"12", 0, 7), (712, 2));
        assert_eq!(digit_run(b"123\xb0567xxxxxxxxx", 0, 0), (123, 3));
    }

    proptest! {
        #[test]
        fn digit_runs_match_the_naive_loop(
            digits in "[0-9]{0,19}",
            tail in "[^0-9]{0,9}",
            pad in 0usize..3,
        ) {
            let text = format!("{}{digits}{tail}", "-".repeat(pad));
            let want = digits.bytes().fold(0u64, |m, c| m.wrapping_mul(10) + u64::from(c - b'0'));
            prop_assert_eq!(digit_run(text.as_bytes(), pad, 0), (want, pad + digits.len()));
        }

        #[test]
        fn numbers_round_like_the_standard_library(
            s in r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,2})?"
        ) {
            let want: f32 = s.parse().unwrap();
            let got = num(&s).unwrap();
            prop_assert_eq!(got.to_bits(), want.to_bits(), "{}", s);
        }

        #[test]
        fn f64_near_ties_round_like_the_standard_library(bits in any::<u32>(), k in 1u64..64) {
            // Decimal texts close to an f32 midpoint, where double rounding bites.
            let x = f32::from_bits(bits & 0x7fff_ffff);
            prop_assume!(x.is_finite() && x > 0.0);
            let next = f32::from_bits(x.to_bits() + 1);
            prop_assume!(next.is_finite());
            let mid = (f64::from(x) + f64::from(next)) / 2.0;
            for t in [format!("{mid:e}"), format!("{:e}", mid * (1.0 + k as f64 * 1e-16)),
                      format!("{:.17e}", mid), format!("{:.8e}", mid)] {
                let want: f32 = t.parse().unwrap();
                let got = num(&t).unwrap();
                prop_assert_eq!(got.to_bits(), want.to_bits(), "{}", t);
            }
        }
    }
}
