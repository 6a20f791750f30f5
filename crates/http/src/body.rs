//! Bodies read with a cap: what the request can legitimately return for a
//! success, a small fixed size for an error. A huge `Content-Length`, a
//! chunked body that never ends or an endless error body costs at most the
//! cap in memory, never more.

use embeddings_core::{Error, MAX_DIMENSIONS, Result};

use crate::status::transport_error;

/// The most bytes of an error body ever read (the rest is not read: the
/// connection is dropped). Enough for any error message.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// Bytes allowed around the rows (model name, usage, object names, ...).
pub const ENVELOPE_BYTES: usize = 64 * 1024;

/// Bytes allowed per row beyond its values (index, keys, separators).
pub const ROW_OVERHEAD_BYTES: usize = 1024;

/// Bytes allowed per value: a long JSON number with pretty-printing
/// whitespace (base64 needs 5.4).
pub const MAX_BYTES_PER_VALUE: usize = 48;

/// The largest body `rows` vectors of `dim` values (`0` = unknown, bounded
/// by core's [`MAX_DIMENSIONS`]) can justify, in either encoding.
pub fn max_response_len(rows: usize, dim: usize) -> usize {
    let dim = if dim == 0 { MAX_DIMENSIONS } else { dim };
    let per_row = dim
        .saturating_mul(MAX_BYTES_PER_VALUE)
        .saturating_add(ROW_OVERHEAD_BYTES);
    rows.saturating_mul(per_row).saturating_add(ENVELOPE_BYTES)
}

/// How much of a success body may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCap {
    /// The answer to a request of `rows` inputs of `dim` values each. With
    /// `dim == 0` (unknown), at most one row of [`MAX_DIMENSIONS`] is read
    /// before the first row's length is seen after `"key":` (an array of
    /// numbers, an array of such arrays, or a base64 string); from then on
    /// the cap is that of its dimension.
    Rows {
        /// Rows asked for.
        rows: usize,
        /// Values per row, `0` when unknown.
        dim: usize,
        /// The key whose value holds the (first) row, such as `"embedding"`.
        key: &'static str,
    },
    /// At most this many bytes (answers without rows: model info, lists).
    Bytes(usize),
}

impl BodyCap {
    fn limit(&self) -> usize {
        match *self {
            BodyCap::Rows { rows, dim, .. } => max_response_len(rows, dim),
            BodyCap::Bytes(n) => n,
        }
    }

    fn describe(&self) -> String {
        match *self {
            BodyCap::Rows { rows, dim, .. } => format!(
                ", the most {rows} vector{} of dimension {} can justify",
                if rows == 1 { "" } else { "s" },
                if dim == 0 {
                    "(unknown)".to_owned()
                } else {
                    dim.to_string()
                }
            ),
            BodyCap::Bytes(_) => String::new(),
        }
    }
}

fn too_large(len: &str, limit: usize, cap: &BodyCap) -> Error {
    Error::invalid_response(format!(
        "response body of {len} bytes is larger than {limit} bytes{}",
        cap.describe()
    ))
}

/// Reads a success body, refusing one longer than `cap` allows (by
/// `Content-Length` up front, or as it streams in) with an
/// `InvalidResponse` error. `host` names the server in transport errors.
pub async fn read_body(mut resp: reqwest::Response, cap: BodyCap, host: &str) -> Result<Vec<u8>> {
    let full = cap.limit();
    if let Some(len) = resp.content_length() {
        if len > full as u64 {
            return Err(too_large(&len.to_string(), full, &cap));
        }
    }
    // While the dimension is unknown: one row of the largest dimension.
    let (mut limit, mut sniff) = match cap {
        BodyCap::Rows { rows, dim: 0, key } if rows > 1 => (max_response_len(1, 0), Some(key)),
        _ => (full, None),
    };
    let mut next_try = 1024;
    let first = resp.content_length().map_or(16 * 1024, |l| l as usize);
    let mut buf = embeddings_core::memory::with_capacity(first.min(limit));
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport_error(e, host, None))?
    {
        if let Some(key) = sniff {
            if buf.len() >= next_try || buf.len() + chunk.len() > limit {
                let mut probe = buf.clone();
                probe.extend_from_slice(&chunk[..chunk.len().min(limit - buf.len().min(limit))]);
                if let Some(d) = first_row_dim(&probe, key) {
                    if let BodyCap::Rows { rows, .. } = cap {
                        limit = max_response_len(rows, d);
                    }
                    sniff = None;
                } else {
                    next_try = buf.len().saturating_mul(2);
                }
            }
        }
        if buf.len() + chunk.len() > limit {
            return Err(too_large(&format!("more than {limit}"), limit, &cap));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// A decoder an answer's body is fed to as it streams in (a
/// [`RowStream`](crate::json::RowStream)), by [`read_body_into`].
pub trait BodyDecoder {
    /// Decodes what it can of `buf` (the body after the bytes consumed so
    /// far) and returns how many bytes that was. With `last`, `buf` is the
    /// rest of the body and all of it must be consumed.
    fn feed(&mut self, buf: &[u8], last: bool) -> Result<usize>;

    /// The rows' dimension once known (`0` before).
    fn dim(&self) -> usize;
}

impl<E: crate::json::Envelope> BodyDecoder for crate::json::RowStream<'_, E> {
    fn feed(&mut self, buf: &[u8], last: bool) -> Result<usize> {
        crate::json::RowStream::feed(self, buf, last)
    }

    fn dim(&self) -> usize {
        crate::json::RowStream::dim(self)
    }
}

/// How many new bytes [`read_body_into`] gathers before it feeds them to
/// the decoder: what it holds of an answer is this and the unconsumed tail
/// (a row cut off), never the whole body.
pub const STREAM_WINDOW: usize = 256 * 1024;

/// Reads a success body within `cap` (as [`read_body`] does) and feeds it
/// to `decoder` as it streams in, in steps of about [`STREAM_WINDOW`]
/// bytes: only the part not yet decoded is held. Returns the body's length.
/// While the dimension is unknown (`dim == 0`), the cap is one row of
/// [`MAX_DIMENSIONS`] until the decoder has read the first row (it is fed
/// every time its unconsumed bytes have doubled); then that of its
/// dimension.
pub async fn read_body_into(
    mut resp: reqwest::Response,
    cap: BodyCap,
    host: &str,
    decoder: &mut (dyn BodyDecoder + Send),
) -> Result<usize> {
    let full = cap.limit();
    if let Some(len) = resp.content_length() {
        if len > full as u64 {
            return Err(too_large(&len.to_string(), full, &cap));
        }
    }
    let (mut limit, mut learning) = match cap {
        BodyCap::Rows { rows, dim: 0, .. } if rows > 1 => (max_response_len(1, 0), true),
        _ => (full, false),
    };
    let mut buf = Vec::with_capacity(STREAM_WINDOW + 64 * 1024);
    let mut total = 0usize;
    let mut next_feed = if learning { 16 * 1024 } else { STREAM_WINDOW };
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport_error(e, host, None))?
    {
        total += chunk.len();
        buf.extend_from_slice(&chunk);
        if total > limit && !learning {
            return Err(too_large(&format!("more than {limit}"), limit, &cap));
        }
        if buf.len() >= next_feed || total > limit {
            let n = decoder.feed(&buf, false)?;
            buf.drain(..n);
            if learning && decoder.dim() > 0 {
                if let BodyCap::Rows { rows, .. } = cap {
                    limit = max_response_len(rows, decoder.dim());
                }
                learning = false;
            }
            if total > limit {
                return Err(too_large(&format!("more than {limit}"), limit, &cap));
            }
            let window = if learning { 0 } else { STREAM_WINDOW };
            next_feed = (buf.len() * 2).max(buf.len() + window).max(16 * 1024);
        }
    }
    decoder.feed(&buf, true)?;
    Ok(total)
}

/// Reads at most [`MAX_ERROR_BODY`] bytes of an error body: what was read
/// when the connection breaks or the cap is reached (the rest is dropped).
pub async fn read_error_body(mut resp: reqwest::Response) -> Vec<u8> {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = MAX_ERROR_BODY - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    buf
}

/// The length of the first row after `"key":` in `body` (a prefix of an
/// answer), when it is complete: the number of values of an array of
/// numbers (or of the first array of an array of arrays), or the `f32`s a
/// base64 string holds. `None` when not (yet) found. Clamped to
/// [`MAX_DIMENSIONS`].
///
/// ```
/// use embeddings_http::first_row_dim;
/// assert_eq!(first_row_dim(br#"{"object":"embedding","embedding":[1, 2,3]"#, "embedding"), Some(3));
/// assert_eq!(first_row_dim(br#"{"embeddings":[[1,2],[3"#, "embeddings"), Some(2));
/// assert_eq!(first_row_dim(br#"{"embedding":"mpkZP83MTD8=""#, "embedding"), Some(2));
/// assert_eq!(first_row_dim(br#"{"embedding":[1,2"#, "embedding"), None);
/// ```
pub fn first_row_dim(body: &[u8], key: &str) -> Option<usize> {
    let pat = format!("\"{key}\"");
    let pat = pat.as_bytes();
    let ws = |b: &[u8], mut i: usize| {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
            i += 1;
        }
        i
    };
    let mut from = 0;
    while let Some(at) = body.get(from..)?.windows(pat.len()).position(|w| w == pat) {
        let mut i = ws(body, from + at + pat.len());
        from += at + 1;
        if body.get(i) != Some(&b':') {
            continue;
        }
        i = ws(body, i + 1);
        match body.get(i)? {
            b'"' => {
                let len = body[i + 1..].iter().position(|&c| c == b'"')?;
                let text = &body[i + 1..i + 1 + len];
                let pad = text.iter().rev().take_while(|&&c| c == b'=').count();
                let bytes = (len - pad) * 3 / 4;
                return Some(bytes.div_ceil(4).clamp(1, MAX_DIMENSIONS));
            }
            b'[' => {
                i = ws(body, i + 1);
                if body.get(i) == Some(&b'[') {
                    i += 1;
                }
                let mut n = 1;
                for &c in body.get(i..)? {
                    match c {
                        b',' => n += 1,
                        b']' => return Some(n.clamp(1, MAX_DIMENSIONS)),
                        b'[' | b'{' | b'"' => return None,
                        _ => {}
                    }
                }
                return None;
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounds_grow_with_rows_and_dimension() {
        assert!(max_response_len(1, 1536) > 1536 * 30);
        assert!(max_response_len(2, 1536) > max_response_len(1, 1536));
        assert_eq!(max_response_len(1, 0), max_response_len(1, MAX_DIMENSIONS));
        assert_eq!(max_response_len(usize::MAX, usize::MAX), usize::MAX);
    }

    #[test]
    fn the_first_row_is_found_past_look_alikes() {
        let b = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding" : [0.1, 0.2]}]}"#;
        assert_eq!(first_row_dim(b, "embedding"), Some(2));
        assert_eq!(first_row_dim(b, "nope"), None);
        assert_eq!(first_row_dim(br#"{"embedding":{}}"#, "embedding"), None);
    }

    proptest! {
        #[test]
        fn sniffing_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = first_row_dim(&body, "embedding");
            let mut b = br#"{"embedding":"#.to_vec();
            b.extend_from_slice(&body);
            let _ = first_row_dim(&b, "embedding");
        }
    }
}
