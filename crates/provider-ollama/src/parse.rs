//! Parsers of Ollama's answers.
//!
//! The `/api/embed` parser writes every float straight into one contiguous
//! buffer (a serde `DeserializeSeed` per row), checking the number of rows
//! and the dimension as it goes: no `serde_json::Value`, no `Vec<Vec<f32>>`.

use std::fmt;

use embeddings_core::{Embeddings, Error, Result, Usage, json_number};
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
        e.set_usage(Some(Usage::tokens(n)));
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
                // Whitespace between values is rare: look before looping.
                if let Some(b' ' | b'\n' | b'\r' | b'\t') = self.text.get(self.pos) {
                    self.ws();
                }
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
                // The common separators first: `,` or `]` right after the number.
                match self.text.get(self.pos) {
                    Some(b',') => {
                        self.pos += 1;
                        continue;
                    }
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => {}
                }
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
        let (v, end) = json_number::parse_f32(self.text, self.pos)?;
        self.pos = end;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The number grammar and its rounding are tested in
    // `embeddings_core::json_number`; here, that the scanner uses it.
    #[test]
    fn numbers_advance_the_cursor_only_when_read() {
        let mut s = Scanner {
            text: b"-1.5e1, 01",
            pos: 0,
        };
        assert_eq!(s.number(), Some(-15.0));
        assert_eq!(s.pos, 6);
        s.pos = 8;
        assert_eq!(s.number(), None);
        assert_eq!(s.pos, 8);
    }

    #[test]
    fn values_that_are_not_json_numbers_or_not_finite_are_refused() {
        for (v, want) in [
            ("01", "not a number at index 1"),
            ("+1", "not a number at index 1"),
            (".5", "not a number at index 1"),
            ("1.", "not a number at index 1"),
            ("NaN", "not a number at index 1"),
            ("1e39", "non-finite value at index 1"),
            ("-1e99999999999", "non-finite value at index 1"),
        ] {
            let body = format!(r#"{{"embeddings":[[0,{v},2]]}}"#);
            let e = parse_embed_response(body.as_bytes(), 1, Some(3)).unwrap_err();
            assert!(e.to_string().contains(want), "{v}: {e}");
        }
    }
}
