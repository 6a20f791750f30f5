//! Parsers of Ollama's answers.
//!
//! The `/api/embed` parser is the envelope (`embeddings`,
//! `prompt_eval_count`) around the toolkit's scanner and row buffer
//! ([`embeddings_http::json`]): every float goes straight into one
//! contiguous buffer, and the number of rows and the dimension are checked
//! as it goes. No `serde_json::Value`, no `Vec<Vec<f32>>`.

use std::fmt;

use embeddings_core::{Embeddings, Error, Result, RowSink, Usage};
use embeddings_http::json::{self, RowBuffer, RowError, Scanner};
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
    parse_embed_response_into(body, expected_rows, expected_dim, None)
}

/// [`parse_embed_response`] straight into `sink` when given (a sink of
/// `expected_rows` × the known dimension, from
/// [`EmbedRequest::sink_for`](embeddings_core::EmbedRequest::sink_for)): the
/// result then has no rows, its usage is kept.
///
/// ```
/// use embeddings_core::{RowSink, SliceSink};
/// let body = br#"{"model":"m","embeddings":[[1,0],[0.5,-0.25]],"prompt_eval_count":4}"#;
/// let mut rows = [0.0f32; 4];
/// let sink = SliceSink::new(&mut rows, 2).unwrap();
/// let e = embeddings_ollama::parse_embed_response_into(body, 2, Some(2), Some(&sink)).unwrap();
/// assert!(e.is_empty() && sink.is_filled());
/// assert_eq!(e.usage().unwrap().prompt_tokens, 4);
/// // One row too few: an error, and the sink is not filled.
/// assert!(embeddings_ollama::parse_embed_response_into(br#"{"embeddings":[[1,0]]}"#, 2, Some(2), Some(&sink)).is_err());
/// assert!(!sink.is_filled());
/// drop(sink);
/// assert_eq!(rows[2..], [0.5, -0.25]);
/// ```
pub fn parse_embed_response_into(
    body: &[u8],
    expected_rows: usize,
    expected_dim: Option<usize>,
    sink: Option<&dyn RowSink>,
) -> Result<Embeddings> {
    let dim = expected_dim.unwrap_or(0);
    let sink = sink.filter(|_| dim > 0);
    json::decode_rows(sink, expected_rows, dim, false, |rows| {
        parse_into(body, rows)
    })
}

fn parse_into(body: &[u8], mut rows: RowBuffer<'_>) -> Result<Embeddings> {
    let count = parse_top(body, &mut rows, false)
        .map_err(|m| Error::invalid_response(format!("/api/embed answer: {m}")))?;
    let mut e = finish(rows)?;
    if let Some(n) = count {
        e.set_usage(Some(Usage::tokens(n)));
    }
    Ok(e)
}

/// Parses the body of a legacy `POST /api/embeddings` answer
/// (`{"embedding": [..]}`) into a new vector.
pub(crate) fn parse_legacy_response(body: &[u8]) -> Result<Vec<f32>> {
    let mut rows = RowBuffer::sequential(1, 0);
    parse_top(body, &mut rows, true)
        .map_err(|m| Error::invalid_response(format!("/api/embeddings answer: {m}")))?;
    Ok(finish(rows)?.into_flat())
}

fn finish(rows: RowBuffer) -> Result<Embeddings> {
    if rows.count() != rows.rows() {
        return Err(Error::invalid_response(format!(
            "expected {} vectors, got {}",
            rows.rows(),
            rows.count()
        )));
    }
    rows.finish()
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

// ---------------------------------------------------------------------------
// The envelope.

/// Walks the top-level object of an answer: the vectors field
/// (`embeddings`, or `embedding` when `legacy`) is scanned into `rows`;
/// `prompt_eval_count` is read; every other value is checked and skipped.
/// Returns `prompt_eval_count`.
fn parse_top(
    body: &[u8],
    rows: &mut RowBuffer,
    legacy: bool,
) -> std::result::Result<Option<u64>, String> {
    let field: &[u8] = if legacy { b"embedding" } else { b"embeddings" };
    let mut s = Scanner::new(body);
    let mut seen = false;
    let mut count = None;
    if !s.eat_if(b'{') {
        return Err("not a JSON object".to_owned());
    }
    let malformed = |m: String| m.replacen("malformed response", "malformed JSON", 1);
    if !s.eat_if(b'}') {
        loop {
            let at = s.pos();
            let key = s.string().map_err(malformed)?;
            if std::str::from_utf8(&key).is_err() {
                return Err(format!("invalid UTF-8 in a key at byte {at}"));
            }
            s.eat(b':', "':'").map_err(malformed)?;
            if *key == *field {
                if seen {
                    return Err(format!(
                        "duplicate field `{}`",
                        String::from_utf8_lossy(field)
                    ));
                }
                seen = true;
                if legacy {
                    row(&mut s, rows, 0)?;
                } else {
                    vectors(&mut s, rows)?;
                }
            } else if &*key == b"prompt_eval_count" && !legacy {
                if !s.is_null() {
                    count = Some(
                        s.integer(|| "`prompt_eval_count`".to_owned())
                            .map_err(malformed)?,
                    );
                }
            } else {
                s.skip_value(1).map_err(malformed)?;
            }
            if !s.more(b'}').map_err(malformed)? {
                break;
            }
        }
    }
    s.ws();
    if s.pos() != body.len() {
        return Err(format!("trailing characters at byte {}", s.pos()));
    }
    if !seen {
        return Err(format!("no `{}` field", String::from_utf8_lossy(field)));
    }
    Ok(count)
}

/// The `embeddings` array, `[[n, ..], ..]`.
fn vectors(s: &mut Scanner<'_>, rows: &mut RowBuffer) -> std::result::Result<(), String> {
    s.ws();
    if !s.eat_if(b'[') {
        return Err("`embeddings` is not an array".to_owned());
    }
    if s.eat_if(b']') {
        return Ok(());
    }
    loop {
        if rows.count() == rows.rows() {
            s.ws();
            let got = rows.count() + s.count_elements();
            return Err(format!("expected {} vectors, got {got}", rows.rows()));
        }
        let i = rows.count();
        row(s, rows, i)?;
        if s.eat_if(b',') {
            continue;
        }
        if s.eat_if(b']') {
            return Ok(());
        }
        return Err(format!("malformed `embeddings` array at byte {}", s.pos()));
    }
}

/// One vector, `[n, ..]`, parsed straight into row `i` of the buffer
/// (learning the dimension from the first when unknown).
fn row(s: &mut Scanner<'_>, rows: &mut RowBuffer, i: usize) -> std::result::Result<(), String> {
    s.ws();
    if s.peek() != Some(b'[') {
        return Err(format!("vector {i} is not an array"));
    }
    let start = s.pos();
    let result = match rows.row_mut(i) {
        Some(dst) => json::parse_floats_into(s.bytes(), start, dst).map(|end| s.set_pos(end)),
        None => rows.read_floats(s, 0),
    };
    let dim = rows.dim();
    if let Err(e) = result {
        return Err(row_error(s, start, i, dim, e));
    }
    if rows.ready() {
        rows.done(i);
        return Ok(());
    }
    // The first row of an unknown dimension: in the scratch row.
    rows.place_floats(i)
        .map_err(|_| format!("vector {i} is empty"))?;
    rows.done(i);
    Ok(())
}

fn row_error(s: &Scanner<'_>, start: usize, i: usize, dim: usize, e: RowError) -> String {
    match e {
        RowError::Dimension { got: 0, .. } => format!("vector {i} is empty"),
        RowError::Dimension { got, expected } if got > expected => {
            let mut c = s.clone();
            c.set_pos(start + 1);
            c.ws();
            let n = c.count_elements();
            if dim == 0 {
                format!("vector {i} has {n} values, more than {expected}")
            } else {
                format!("vector {i} has {n} values, expected {expected}")
            }
        }
        RowError::Dimension { got, expected } => {
            format!("vector {i} has {got} values, expected {expected}")
        }
        RowError::NotANumber { at } => {
            format!("vector {i} holds a value that is not a number at index {at}")
        }
        RowError::NotFinite { at } => {
            format!("vector {i} holds a non-finite value at index {at}")
        }
        _ => format!("vector {i} is malformed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
