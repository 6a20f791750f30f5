//! Jina's answer: `{"model", "object", "usage": {"total_tokens",
//! "prompt_tokens"}, "data": [{"object", "index", "embedding"}]}`, where an
//! `embedding` is a base64 string (`base64`: little-endian `f32`; `binary`
//! / `ubinary`: the packed bytes) or a JSON array (`float`, or the packed
//! bytes as integers, as older answers had them).

use std::borrow::Cow;

use embeddings_core::{Embeddings, Error, OutputType, Result};
use embeddings_http::json::{RowBuffer, Scanner, data_envelope, decode_base64_bytes};

/// Decodes an answer for `rows` inputs of `output` rows (`dim` 0: learned
/// from the first row), each placed by its `index`. Any inconsistency (a
/// count, index, dimension or value that does not fit) is `InvalidResponse`.
pub fn decode_response(
    body: &[u8],
    rows: usize,
    dim: usize,
    output: OutputType,
) -> Result<Embeddings> {
    decode(body, rows, dim, output).map_err(Error::invalid_response)
}

/// Packed rows placed by index.
struct Packed {
    signed: bool,
    row_len: usize,
    data: Vec<u8>,
    filled: Vec<bool>,
    count: usize,
    scratch: Vec<u8>,
}

impl Packed {
    fn new(rows: usize, dim: usize, signed: bool) -> Self {
        Packed {
            signed,
            row_len: dim.div_ceil(8),
            data: Vec::new(),
            filled: vec![false; rows],
            count: 0,
            scratch: Vec::new(),
        }
    }

    fn claim(&self, index: u64) -> Result<usize, String> {
        let n = self.filled.len();
        let i = usize::try_from(index)
            .ok()
            .filter(|i| *i < n)
            .ok_or_else(|| format!("embedding index {index} is out of range for {n} inputs"))?;
        if self.filled[i] {
            return Err(format!("embedding index {i} appears twice"));
        }
        Ok(i)
    }

    /// Places `self.scratch` at row `i`.
    fn place(&mut self, i: usize) -> Result<(), String> {
        let got = self.scratch.len();
        if self.row_len == 0 {
            if got == 0 {
                return Err(format!("embedding {i} is empty"));
            }
            self.row_len = got;
        }
        if got != self.row_len {
            return Err(format!(
                "embedding {i}: {got} packed bytes, expected {} (wrong dimension)",
                self.row_len
            ));
        }
        if self.data.is_empty() {
            self.data = vec![0; self.filled.len() * self.row_len];
        }
        self.data[i * self.row_len..(i + 1) * self.row_len].copy_from_slice(&self.scratch);
        self.filled[i] = true;
        self.count += 1;
        Ok(())
    }

    /// The integer array at the cursor into `self.scratch` (as bytes).
    fn read_ints(&mut self, s: &mut Scanner<'_>, i: usize) -> Result<(), String> {
        self.scratch.clear();
        s.eat(b'[', "'[' opening an embedding")?;
        if s.eat_if(b']') {
            return Ok(());
        }
        let (lo, hi) = if self.signed { (-128, 127) } else { (0, 255) };
        loop {
            let v = signed_integer(s, i)?;
            if v < lo || v > hi {
                return Err(format!(
                    "embedding {i}: {v} is not a packed {} byte",
                    if self.signed { "int8" } else { "uint8" }
                ));
            }
            self.scratch.push(v as u8);
            if self.scratch.len() > embeddings_core::MAX_DIMENSIONS {
                return Err(format!("embedding {i} is too long"));
            }
            if !s.more(b']')? {
                return Ok(());
            }
        }
    }

    fn finish(self, dim: usize, output: OutputType) -> Result<Embeddings, String> {
        let rows = self.filled.len();
        if self.count != rows {
            return Err(format!(
                "expected {rows} embeddings (one per input), got {}",
                self.count
            ));
        }
        let dim = if dim > 0 { dim } else { self.row_len * 8 };
        let e = if self.signed {
            Embeddings::from_i8(
                self.data.into_iter().map(|b| b as i8).collect(),
                dim,
                output,
            )
        } else {
            Embeddings::from_u8(self.data, dim, output)
        };
        e.map_err(|e| e.message().to_owned())
    }
}

/// An integer, `-` allowed.
fn signed_integer(s: &mut Scanner<'_>, i: usize) -> Result<i64, String> {
    s.ws();
    let neg = s.peek() == Some(b'-');
    if neg {
        s.set_pos(s.pos() + 1);
        if !s.peek().is_some_and(|c| c.is_ascii_digit()) {
            return Err(format!("embedding {i}: a value is not an integer"));
        }
    }
    let v = s.integer(|| format!("a value of embedding {i}"))?;
    let v = i64::try_from(v).map_err(|_| format!("embedding {i}: {v} is out of range"))?;
    Ok(if neg { -v } else { v })
}

enum Rows {
    Float(RowBuffer<'static>),
    Packed(Packed),
}

fn decode(body: &[u8], rows: usize, dim: usize, output: OutputType) -> Result<Embeddings, String> {
    let mut buf = match output {
        OutputType::F32 => Rows::Float(RowBuffer::by_index(rows, dim)),
        OutputType::Binary => Rows::Packed(Packed::new(rows, dim, true)),
        OutputType::Ubinary => Rows::Packed(Packed::new(rows, dim, false)),
        other => return Err(format!("Jina has no {other} embeddings")),
    };
    let usage = data_envelope(body, "total_tokens", |s| item(s, &mut buf))?;
    let mut out = match buf {
        Rows::Float(b) => b.finish().map_err(|e| e.message().to_owned())?,
        Rows::Packed(p) => p.finish(dim, output)?,
    };
    out.set_usage(usage);
    Ok(out)
}

/// Where an item's embedding is, until its index is known.
enum Embedding<'a> {
    Text(Cow<'a, [u8]>),
    /// The cursor position of a JSON array.
    Array(usize),
}

/// One `{"object", "index", "embedding"}`, placed.
fn item(s: &mut Scanner<'_>, buf: &mut Rows) -> Result<(), String> {
    let mut index = None;
    let mut embedding = None;
    s.eat(b'{', "'{' opening an embedding")?;
    if !s.eat_if(b'}') {
        loop {
            let key = s.string()?;
            s.eat(b':', "':'")?;
            match &*key {
                b"index" => index = Some(s.integer(|| "`index`".into())?),
                b"embedding" => {
                    s.ws();
                    embedding = Some(match s.peek() {
                        Some(b'"') => Embedding::Text(s.string()?),
                        Some(b'[') => {
                            let at = s.pos();
                            s.skip_value(2)?;
                            Embedding::Array(at)
                        }
                        _ => return Err("`embedding` is neither a string nor an array".into()),
                    });
                }
                _ => s.skip_value(2)?,
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    let (Some(index), Some(embedding)) = (index, embedding) else {
        return Err(if index.is_none() {
            "an embedding without `index`".into()
        } else {
            "an embedding without `embedding`".into()
        });
    };
    let resume = s.pos();
    match (buf, embedding) {
        (Rows::Float(b), Embedding::Text(t)) => {
            let i = b.claim(index)?;
            b.place_base64(i, &t)?;
            b.done(i);
        }
        (Rows::Float(b), Embedding::Array(at)) => {
            let i = b.claim(index)?;
            s.set_pos(at);
            b.floats_at(s, i)
                .map_err(|e| format!("embedding {i}: {e}"))?;
        }
        (Rows::Packed(p), Embedding::Text(t)) => {
            let i = p.claim(index)?;
            decode_base64_bytes(&t, &mut p.scratch).map_err(|e| format!("embedding {i}: {e}"))?;
            p.place(i)?;
        }
        (Rows::Packed(p), Embedding::Array(at)) => {
            let i = p.claim(index)?;
            s.set_pos(at);
            p.read_ints(s, i)?;
            p.place(i)?;
        }
    }
    s.set_pos(resume);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use embeddings_core::ErrorKind;
    use proptest::prelude::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn f32s(v: &[f32]) -> String {
        b64(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>())
    }

    #[test]
    fn rows_by_index_as_base64_floats_and_packed() {
        let body = format!(
            r#"{{"model":"jina-embeddings-v3","object":"list","usage":{{"total_tokens":7,"prompt_tokens":7}},"data":[{{"object":"embedding","index":1,"embedding":"{}"}},{{"object":"embedding","index":0,"embedding":[0.25,-1.0]}}]}}"#,
            f32s(&[0.5, 1.0])
        );
        let e = decode_response(body.as_bytes(), 2, 2, OutputType::F32).unwrap();
        assert_eq!((e.row(0), e.row(1)), (&[0.25, -1.0][..], &[0.5, 1.0][..]));
        assert_eq!(e.usage().unwrap().prompt_tokens, 7);
        // Packed bytes as base64 or as integers, by index.
        let body = format!(
            r#"{{"data":[{{"index":1,"embedding":"{}"}},{{"index":0,"embedding":[-128, 127]}}]}}"#,
            b64(&[0x01, 0xff])
        );
        let e = decode_response(body.as_bytes(), 2, 16, OutputType::Binary).unwrap();
        assert_eq!(e.as_i8().unwrap(), [-128, 127, 1, -1]);
        let body = r#"{"data":[{"index":0,"embedding":[255, 0]}]}"#;
        let e = decode_response(body.as_bytes(), 1, 0, OutputType::Ubinary).unwrap();
        assert_eq!((e.dim(), e.as_u8().unwrap()), (16, &[255, 0][..]));
    }

    #[test]
    fn bad_answers_are_refused() {
        let row = f32s(&[0.5, 1.0]);
        for (body, out) in [
            (format!(r#"{{"data":[{{"index":0,"embedding":"{row}"}}]}}"#), OutputType::F32),
            (format!(r#"{{"data":[{{"index":0,"embedding":"{row}"}},{{"index":0,"embedding":"{row}"}}]}}"#), OutputType::F32),
            (format!(r#"{{"data":[{{"index":0,"embedding":"{row}"}},{{"index":2,"embedding":"{row}"}}]}}"#), OutputType::F32),
            (format!(r#"{{"data":[{{"index":0,"embedding":"{}"}},{{"index":1,"embedding":"{row}"}}]}}"#, f32s(&[1.0])), OutputType::F32),
            (format!(r#"{{"data":[{{"index":0,"embedding":"@@@@"}},{{"index":1,"embedding":"{row}"}}]}}"#), OutputType::F32),
            (format!(r#"{{"data":[{{"embedding":"{row}"}},{{"index":1,"embedding":"{row}"}}]}}"#), OutputType::F32),
            (format!(r#"{{"data":[{{"index":0,"embedding":"{}"}},{{"index":1,"embedding":"{row}"}}]}}"#, f32s(&[f32::NAN, 1.0])), OutputType::F32),
            (r#"{"data":[{"index":0,"embedding":[0.5]},{"index":1,"embedding":[0.5,1]}]}"#.to_owned(), OutputType::F32),
            (r#"{"data":[{"index":0,"embedding":{"float":[0.5,1]}},{"index":1,"embedding":[0.5,1]}]}"#.to_owned(), OutputType::F32),
            (r#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[300]}]}"#.to_owned(), OutputType::Ubinary),
            (r#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[-1]}]}"#.to_owned(), OutputType::Ubinary),
            (r#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[1.5]}]}"#.to_owned(), OutputType::Binary),
            (r#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[1, 2]}]}"#.to_owned(), OutputType::Binary),
            (r#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[]}]}"#.to_owned(), OutputType::Binary),
            (r#"{"data":[{"index":0,"embedding":[1]}]}"#.to_owned(), OutputType::Binary),
            (r#"{"data":["#.to_owned(), OutputType::F32),
        ] {
            let e = decode_response(body.as_bytes(), 2, 0, out).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidResponse, "{body}");
        }
        // A known dimension: a packed row of another length is refused.
        let body = format!(
            r#"{{"data":[{{"index":0,"embedding":"{}"}}]}}"#,
            b64(&[1, 2, 3])
        );
        assert!(decode_response(body.as_bytes(), 1, 16, OutputType::Binary).is_err());
        assert!(decode_response(body.as_bytes(), 1, 24, OutputType::Binary).is_ok());
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..256), rows in 0usize..4, dim in 0usize..20) {
            for out in OutputType::ALL {
                let _ = decode_response(&body, rows, dim, out);
            }
        }

        #[test]
        fn never_panics_on_near_valid_answers(idx in proptest::collection::vec(0u64..5, 0..5), cut in 0usize..200) {
            let items: Vec<String> = idx.iter().map(|i| format!(r#"{{"index":{i},"embedding":[{i},-1]}}"#)).collect();
            let body = format!(r#"{{"data":[{}],"usage":{{"total_tokens":3}}}}"#, items.join(","));
            let body = &body.as_bytes()[..cut.min(body.len())];
            for out in OutputType::ALL {
                let _ = decode_response(body, 3, 0, out);
            }
        }

        #[test]
        fn float_rows_round_trip(rows in proptest::collection::vec(proptest::collection::vec(-1e6f32..1e6, 3), 1..5), as_text in any::<bool>()) {
            let items: Vec<String> = rows.iter().enumerate().rev().map(|(i, r)| {
                if as_text {
                    format!(r#"{{"object":"embedding","index":{i},"embedding":"{}"}}"#, f32s(r))
                } else {
                    format!(r#"{{"index":{i},"embedding":{}}}"#, serde_json::to_string(r).unwrap())
                }
            }).collect();
            let body = format!(r#"{{"data":[{}]}}"#, items.join(","));
            let e = decode_response(body.as_bytes(), rows.len(), 3, OutputType::F32).unwrap();
            for (i, r) in rows.iter().enumerate() {
                prop_assert_eq!(e.row(i), &r[..]);
            }
        }

        #[test]
        fn packed_rows_round_trip(rows in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 2), 1..5), as_text in any::<bool>()) {
            let items: Vec<String> = rows.iter().enumerate().rev().map(|(i, r)| {
                if as_text {
                    format!(r#"{{"index":{i},"embedding":"{}"}}"#, b64(r))
                } else {
                    format!(r#"{{"index":{i},"embedding":{:?}}}"#, r)
                }
            }).collect();
            let body = format!(r#"{{"data":[{}]}}"#, items.join(","));
            let e = decode_response(body.as_bytes(), rows.len(), 16, OutputType::Ubinary).unwrap();
            for (i, r) in rows.iter().enumerate() {
                prop_assert_eq!(&e.row_bytes(i)[..], &r[..]);
            }
        }
    }
}
