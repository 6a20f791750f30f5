//! Mistral's answer: `{"id", "object": "list", "model", "usage":
//! {"prompt_tokens", "total_tokens", ...}, "data": [{"object", "embedding",
//! "index"}]}`. An `embedding` is a JSON array: floats for `float`,
//! integers for `int8` (-128..=127), `uint8` (0..=255), `binary` (the
//! packed bits, offset by 128, as `int8`) and `ubinary` (as `uint8`);
//! packed rows hold `ceil(dimension / 8)` values.

use embeddings_core::{Embeddings, Error, OutputType, Result};
use embeddings_http::json::{RowBuffer, Scanner, data_envelope};

/// Decodes an answer for `rows` inputs of `output` rows (`dim` 0: learned
/// from the first row), each placed by its `index`. Any inconsistency (a
/// count, index, length or value that does not fit) is `InvalidResponse`.
pub fn decode_response(
    body: &[u8],
    rows: usize,
    dim: usize,
    output: OutputType,
) -> Result<Embeddings> {
    decode(body, rows, dim, output).map_err(Error::invalid_response)
}

/// Integer rows placed by index.
struct IntRows {
    output: OutputType,
    row_len: usize,
    data: Vec<u8>,
    filled: Vec<bool>,
    count: usize,
    scratch: Vec<u8>,
}

impl IntRows {
    fn new(rows: usize, dim: usize, output: OutputType) -> Self {
        IntRows {
            output,
            row_len: output.row_len(dim),
            data: Vec::new(),
            filled: vec![false; rows],
            count: 0,
            scratch: Vec::new(),
        }
    }

    fn signed(&self) -> bool {
        matches!(self.output, OutputType::Int8 | OutputType::Binary)
    }

    /// The array at the cursor, as row `index`.
    fn place(&mut self, s: &mut Scanner<'_>, index: u64) -> Result<(), String> {
        let n = self.filled.len();
        let i = usize::try_from(index)
            .ok()
            .filter(|i| *i < n)
            .ok_or_else(|| format!("embedding index {index} is out of range for {n} inputs"))?;
        if self.filled[i] {
            return Err(format!("embedding index {i} appears twice"));
        }
        self.read(s, i)?;
        let got = self.scratch.len();
        if self.row_len == 0 {
            if got == 0 {
                return Err(format!("embedding {i} is empty"));
            }
            self.row_len = got;
        }
        if got != self.row_len {
            return Err(format!(
                "embedding {i}: {got} values, expected {} (wrong dimension)",
                self.row_len
            ));
        }
        if self.data.is_empty() {
            self.data = vec![0; n * self.row_len];
        }
        self.data[i * self.row_len..(i + 1) * self.row_len].copy_from_slice(&self.scratch);
        self.filled[i] = true;
        self.count += 1;
        Ok(())
    }

    fn read(&mut self, s: &mut Scanner<'_>, i: usize) -> Result<(), String> {
        self.scratch.clear();
        s.eat(b'[', "'[' opening an embedding")?;
        if s.eat_if(b']') {
            return Ok(());
        }
        let (lo, hi) = if self.signed() { (-128, 127) } else { (0, 255) };
        loop {
            s.ws();
            let neg = s.peek() == Some(b'-');
            if neg {
                s.set_pos(s.pos() + 1);
                if !s.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return Err(format!("embedding {i}: a value is not an integer"));
                }
            }
            let v = s.integer(|| format!("a value of embedding {i}"))?;
            let v = i64::try_from(v).unwrap_or(i64::MAX);
            let v = if neg { -v } else { v };
            if v < lo || v > hi {
                return Err(format!(
                    "embedding {i}: {v} is not an {} value",
                    self.output
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

    fn finish(self, dim: usize) -> Result<Embeddings, String> {
        let rows = self.filled.len();
        if self.count != rows {
            return Err(format!(
                "expected {rows} embeddings (one per input), got {}",
                self.count
            ));
        }
        let dim = match (dim, self.output.is_packed()) {
            (0, true) => self.row_len * 8,
            (0, false) => self.row_len,
            (d, _) => d,
        };
        let e = if self.signed() {
            Embeddings::from_i8(
                self.data.into_iter().map(|b| b as i8).collect(),
                dim,
                self.output,
            )
        } else {
            Embeddings::from_u8(self.data, dim, self.output)
        };
        e.map_err(|e| e.message().to_owned())
    }
}

enum Rows {
    Float(RowBuffer<'static>),
    Int(IntRows),
}

fn decode(body: &[u8], rows: usize, dim: usize, output: OutputType) -> Result<Embeddings, String> {
    let mut buf = if output == OutputType::F32 {
        Rows::Float(RowBuffer::by_index(rows, dim))
    } else {
        Rows::Int(IntRows::new(rows, dim, output))
    };
    let usage = data_envelope(body, "prompt_tokens", |s| item(s, &mut buf))?;
    let mut out = match buf {
        Rows::Float(b) => b.finish().map_err(|e| e.message().to_owned())?,
        Rows::Int(r) => r.finish(dim)?,
    };
    out.set_usage(usage);
    Ok(out)
}

/// One `{"object", "embedding", "index"}`, placed once its index is known
/// (the `embedding` is read again from where it starts).
fn item(s: &mut Scanner<'_>, buf: &mut Rows) -> Result<(), String> {
    let mut index = None;
    let mut at = None;
    s.eat(b'{', "'{' opening an embedding")?;
    if !s.eat_if(b'}') {
        loop {
            let key = s.string()?;
            s.eat(b':', "':'")?;
            match &*key {
                b"index" => index = Some(s.integer(|| "`index`".into())?),
                b"embedding" => {
                    s.ws();
                    if s.peek() != Some(b'[') {
                        return Err("`embedding` is not an array".into());
                    }
                    at = Some(s.pos());
                    s.skip_value(2)?;
                }
                _ => s.skip_value(2)?,
            }
            if !s.more(b'}')? {
                break;
            }
        }
    }
    let (Some(index), Some(at)) = (index, at) else {
        return Err(if index.is_none() {
            "an embedding without `index`".into()
        } else {
            "an embedding without `embedding`".into()
        });
    };
    let resume = s.pos();
    s.set_pos(at);
    match buf {
        Rows::Float(b) => {
            let i = b.claim(index)?;
            b.floats_at(s, i)
                .map_err(|e| format!("embedding {i}: {e}"))?;
        }
        Rows::Int(r) => r.place(s, index)?,
    }
    s.set_pos(resume);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use embeddings_core::ErrorKind;
    use proptest::prelude::*;

    #[test]
    fn rows_by_index_in_every_type() {
        let body = r#"{"id":"e49d","object":"list","data":[{"object":"embedding","embedding":[0.5,1.0],"index":1},{"object":"embedding","embedding":[0.25,-1],"index":0}],"model":"codestral-embed","usage":{"prompt_tokens":7,"completion_tokens":0,"total_tokens":7,"prompt_audio_seconds":null}}"#;
        let e = decode_response(body.as_bytes(), 2, 2, OutputType::F32).unwrap();
        assert_eq!((e.row(0), e.row(1)), (&[0.25, -1.0][..], &[0.5, 1.0][..]));
        assert_eq!(e.usage().unwrap().prompt_tokens, 7);
        let body =
            r#"{"data":[{"index":1,"embedding":[-128,127]},{"index":0,"embedding":[0,-1]}]}"#;
        let e = decode_response(body.as_bytes(), 2, 2, OutputType::Int8).unwrap();
        assert_eq!(e.as_i8().unwrap(), [0, -1, -128, 127]);
        let e = decode_response(body.as_bytes(), 2, 16, OutputType::Binary).unwrap();
        assert_eq!((e.dim(), e.row_len()), (16, 2));
        let body = r#"{"data":[{"index":0,"embedding":[255,0,7]}]}"#;
        let e = decode_response(body.as_bytes(), 1, 0, OutputType::Uint8).unwrap();
        assert_eq!((e.dim(), e.as_u8().unwrap()), (3, &[255, 0, 7][..]));
        let e = decode_response(body.as_bytes(), 1, 0, OutputType::Ubinary).unwrap();
        assert_eq!(e.dim(), 24);
        // A dimension that is not a multiple of 8: ceil(10 / 8) = 2 bytes.
        let body = r#"{"data":[{"index":0,"embedding":[255,192]}]}"#;
        let e = decode_response(body.as_bytes(), 1, 10, OutputType::Ubinary).unwrap();
        assert_eq!((e.dim(), e.as_u8().unwrap()), (10, &[255, 192][..]));
    }

    #[test]
    fn bad_answers_are_refused() {
        for (body, out) in [
            (
                r#"{"data":[{"index":0,"embedding":[0.5,1]}]}"#,
                OutputType::F32,
            ),
            (
                r#"{"data":[{"index":0,"embedding":[0.5,1]},{"index":0,"embedding":[0.5,1]}]}"#,
                OutputType::F32,
            ),
            (
                r#"{"data":[{"index":0,"embedding":[0.5,1]},{"index":2,"embedding":[0.5,1]}]}"#,
                OutputType::F32,
            ),
            (
                r#"{"data":[{"index":0,"embedding":[0.5]},{"index":1,"embedding":[0.5,1]}]}"#,
                OutputType::F32,
            ),
            (
                r#"{"data":[{"index":0,"embedding":"AAAA"},{"index":1,"embedding":[0.5,1]}]}"#,
                OutputType::F32,
            ),
            (
                r#"{"data":[{"embedding":[0.5,1]},{"index":1,"embedding":[0.5,1]}]}"#,
                OutputType::F32,
            ),
            (
                r#"{"data":[{"index":0},{"index":1,"embedding":[0.5,1]}]}"#,
                OutputType::F32,
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1,128]}]}"#,
                OutputType::Int8,
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1,-129]}]}"#,
                OutputType::Binary,
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1,-1]}]}"#,
                OutputType::Uint8,
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1,256]}]}"#,
                OutputType::Ubinary,
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1,0.5]}]}"#,
                OutputType::Uint8,
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1]}]}"#,
                OutputType::Uint8,
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1,-]}]}"#,
                OutputType::Int8,
            ),
            (
                r#"{"data":[{"index":0,"embedding":[1,2]}]}"#,
                OutputType::Int8,
            ),
            (r#"{"data":["#, OutputType::F32),
        ] {
            let e = decode_response(body.as_bytes(), 2, 0, out).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidResponse, "{body}");
        }
        // A known dimension is held to: 16 dims are 2 packed bytes.
        let body = r#"{"data":[{"index":0,"embedding":[1,2,3]}]}"#;
        assert!(decode_response(body.as_bytes(), 1, 16, OutputType::Binary).is_err());
        assert!(decode_response(body.as_bytes(), 1, 2, OutputType::Int8).is_err());
        assert!(decode_response(body.as_bytes(), 1, 3, OutputType::Int8).is_ok());
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
            let body = format!(r#"{{"data":[{}],"usage":{{"prompt_tokens":3}}}}"#, items.join(","));
            let body = &body.as_bytes()[..cut.min(body.len())];
            for out in OutputType::ALL {
                let _ = decode_response(body, 3, 0, out);
            }
        }

        #[test]
        fn float_rows_round_trip(rows in proptest::collection::vec(proptest::collection::vec(-1e6f32..1e6, 3), 1..5)) {
            let items: Vec<String> = rows.iter().enumerate().rev()
                .map(|(i, r)| format!(r#"{{"object":"embedding","embedding":{},"index":{i}}}"#, serde_json::to_string(r).unwrap())).collect();
            let body = format!(r#"{{"data":[{}]}}"#, items.join(","));
            let e = decode_response(body.as_bytes(), rows.len(), 3, OutputType::F32).unwrap();
            for (i, r) in rows.iter().enumerate() {
                prop_assert_eq!(e.row(i), &r[..]);
            }
        }

        #[test]
        fn int8_rows_round_trip(rows in proptest::collection::vec(proptest::collection::vec(any::<i8>(), 4), 1..5)) {
            let items: Vec<String> = rows.iter().enumerate().rev()
                .map(|(i, r)| format!(r#"{{"embedding":{:?},"index":{i}}}"#, r)).collect();
            let body = format!(r#"{{"data":[{}]}}"#, items.join(","));
            let e = decode_response(body.as_bytes(), rows.len(), 4, OutputType::Int8).unwrap();
            for (i, r) in rows.iter().enumerate() {
                let got: Vec<i8> = e.row_bytes(i).iter().map(|b| *b as i8).collect();
                prop_assert_eq!(&got, r);
            }
        }
    }
}
