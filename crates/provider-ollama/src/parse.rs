//! Parsers of Ollama's answers.
//!
//! The `/api/embed` parser writes every float straight into one contiguous
//! buffer (a serde `DeserializeSeed` per row), checking the number of rows
//! and the dimension as it goes: no `serde_json::Value`, no `Vec<Vec<f32>>`.

use std::fmt;

use embeddings_core::{Embeddings, Error, Result, Usage};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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
    let mut top = Top {
        rows: &mut rows,
        legacy: false,
        seen: false,
        prompt_eval_count: None,
    };
    let parsed = parse_json(body, &mut top);
    let (seen, count) = (top.seen, top.prompt_eval_count);
    if let Some(f) = rows.failure.take() {
        return Err(Error::invalid_response(f));
    }
    parsed.map_err(|e| Error::invalid_response(format!("malformed /api/embed answer: {e}")))?;
    if !seen {
        return Err(Error::invalid_response(
            "the /api/embed answer has no `embeddings` field",
        ));
    }
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
    let mut top = Top {
        rows: &mut rows,
        legacy: true,
        seen: false,
        prompt_eval_count: None,
    };
    let parsed = parse_json(body, &mut top);
    let seen = top.seen;
    if let Some(f) = rows.failure.take() {
        return Err(Error::invalid_response(f));
    }
    parsed
        .map_err(|e| Error::invalid_response(format!("malformed /api/embeddings answer: {e}")))?;
    if !seen {
        return Err(Error::invalid_response(
            "the /api/embeddings answer has no `embedding` field",
        ));
    }
    Ok(rows.data)
}

fn parse_json(body: &[u8], top: &mut Top<'_>) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_slice(body);
    de.deserialize_map(top)?;
    de.end()
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopKey {
    Embeddings,
    Embedding,
    PromptEvalCount,
    Other,
}

impl<'de> Deserialize<'de> for TopKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TopKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<TopKey, E> {
                Ok(match v {
                    "embeddings" => TopKey::Embeddings,
                    "embedding" => TopKey::Embedding,
                    "prompt_eval_count" => TopKey::PromptEvalCount,
                    _ => TopKey::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// The top-level object of an `/api/embed` (or legacy `/api/embeddings`) answer.
struct Top<'r> {
    rows: &'r mut Rows,
    legacy: bool,
    seen: bool,
    prompt_eval_count: Option<u64>,
}

impl<'de> Visitor<'de> for &mut Top<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<TopKey>()? {
            match (key, self.legacy) {
                (TopKey::Embeddings, false) | (TopKey::Embedding, true) => {
                    if self.seen {
                        return Err(de::Error::custom("duplicate vectors field"));
                    }
                    self.seen = true;
                    if self.legacy {
                        map.next_value_seed(RowSeed(self.rows))?;
                    } else {
                        map.next_value_seed(RowsSeed(self.rows))?;
                    }
                }
                (TopKey::PromptEvalCount, false) => {
                    self.prompt_eval_count = map.next_value::<Option<u64>>()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
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
    /// Set when a check fails; preferred over serde's generic message.
    failure: Option<String>,
}

impl Rows {
    fn new(expected_rows: usize, expected_dim: Option<usize>) -> Self {
        // Reserve what the answer should hold, but never trust a huge
        // expectation blindly: the buffer also grows as rows arrive.
        let cap = expected_dim.map_or(0, |d| expected_rows.saturating_mul(d).min(1 << 26));
        Rows {
            data: Vec::with_capacity(cap),
            dim: expected_dim,
            rows: 0,
            expected_rows,
            failure: None,
        }
    }

    fn fail<E: de::Error>(&mut self, msg: String) -> E {
        let e = E::custom(&msg);
        self.failure.get_or_insert(msg);
        e
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

/// The `embeddings` array: one [`RowSeed`] per element.
struct RowsSeed<'r>(&'r mut Rows);

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of vectors")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let rows = self.0;
        loop {
            if rows.rows == rows.expected_rows {
                // Count the surplus for the message, without storing it.
                let mut extra = 0usize;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    extra += 1;
                }
                if extra > 0 {
                    let msg = format!(
                        "expected {} vectors, got {}",
                        rows.expected_rows,
                        rows.expected_rows + extra
                    );
                    return Err(rows.fail(msg));
                }
                return Ok(());
            }
            if seq.next_element_seed(RowSeed(rows))?.is_none() {
                return Ok(());
            }
        }
    }
}

/// One vector, appended to the buffer value by value.
struct RowSeed<'r>(&'r mut Rows);

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of numbers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let rows = self.0;
        let row = rows.rows;
        let start = rows.data.len();
        match rows.dim {
            Some(dim) => {
                // Known dimension: fail on the first value too many.
                let end = start + dim;
                rows.data.reserve(dim);
                while let Some(F32(v)) = seq.next_element()? {
                    if rows.data.len() == end {
                        let mut n = dim + 1;
                        while seq.next_element::<IgnoredAny>()?.is_some() {
                            n += 1;
                        }
                        let msg = format!("vector {row} has {n} values, expected {dim}");
                        return Err(rows.fail(msg));
                    }
                    if !v.is_finite() {
                        let msg = format!(
                            "vector {row} holds a non-finite value at index {}",
                            rows.data.len() - start
                        );
                        return Err(rows.fail(msg));
                    }
                    rows.data.push(v);
                }
                if rows.data.len() != end {
                    let msg = format!(
                        "vector {row} has {} values, expected {dim}",
                        rows.data.len() - start
                    );
                    return Err(rows.fail(msg));
                }
            }
            None => {
                // The first vector sets the dimension of the others.
                while let Some(F32(v)) = seq.next_element()? {
                    if !v.is_finite() {
                        let msg = format!(
                            "vector {row} holds a non-finite value at index {}",
                            rows.data.len() - start
                        );
                        return Err(rows.fail(msg));
                    }
                    rows.data.push(v);
                }
                let dim = rows.data.len() - start;
                if dim == 0 {
                    return Err(rows.fail(format!("vector {row} is empty")));
                }
                rows.dim = Some(dim);
                let more = rows.expected_rows.saturating_sub(1).saturating_mul(dim);
                rows.data.reserve(more.min(1 << 26));
            }
        }
        rows.rows += 1;
        Ok(())
    }
}

/// One float, read as `f32` (JSON integers such as `0` are accepted).
struct F32(f32);

impl<'de> Deserialize<'de> for F32 {
    #[inline]
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = F32;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            #[inline]
            fn visit_f32<E: de::Error>(self, v: f32) -> std::result::Result<F32, E> {
                Ok(F32(v))
            }
            #[inline]
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<F32, E> {
                Ok(F32(v as f32))
            }
            #[inline]
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<F32, E> {
                Ok(F32(v as f32))
            }
            #[inline]
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<F32, E> {
                Ok(F32(v as f32))
            }
        }
        d.deserialize_f32(V)
    }
}
