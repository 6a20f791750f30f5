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
    let mut feeder = BodyFeeder::new(cap, decoder);
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport_error(e, host, None))?
    {
        feeder.push(&chunk)?;
    }
    feeder.finish()
}

/// A piece of a body at least this long is decoded where it lies, once the
/// dimension is known (see [`BodyFeeder`]); shorter ones are gathered.
pub const DIRECT_PIECE: usize = 32 * 1024;

/// How many bytes of a long piece [`BodyFeeder`] first copies after a held
/// tail, to complete the unit the tail began (doubled, up to
/// [`STREAM_WINDOW`], each time that was not enough).
const FIRST_PROBE: usize = 64 * 1024;

/// What [`read_body_into`] does with the pieces of a body as they arrive,
/// apart from the network (so that any cutting of a body can be tested).
///
/// A short piece is gathered with what is held, which is fed to the
/// decoder every [`STREAM_WINDOW`] bytes (or when it has doubled, while
/// the first row is being learned). A long piece (at least
/// [`DIRECT_PIECE`] bytes, once the dimension is known) is decoded where it
/// lies, without a copy: first the held tail is completed with the piece's
/// first bytes, then the rest of the piece is fed from the piece itself,
/// and only what the decoder leaves of it (a unit cut off) is kept. The
/// cap is checked on every piece.
///
/// ```
/// use embeddings_http::{BodyCap, BodyDecoder, BodyFeeder};
///
/// /// Consumes whole lines.
/// struct Lines(Vec<String>);
/// impl BodyDecoder for Lines {
///     fn feed(&mut self, buf: &[u8], last: bool) -> embeddings_core::Result<usize> {
///         let mut n = 0;
///         while let Some(k) = buf[n..].iter().position(|&c| c == b'\n') {
///             self.0.push(String::from_utf8_lossy(&buf[n..n + k]).into_owned());
///             n += k + 1;
///         }
///         assert!(!last || n == buf.len());
///         Ok(n)
///     }
///     fn dim(&self) -> usize { 1 }
/// }
///
/// let mut lines = Lines(Vec::new());
/// let mut feeder = BodyFeeder::new(BodyCap::Bytes(100), &mut lines);
/// for piece in [&b"one\ntw"[..], b"o\nthree\n"] {
///     feeder.push(piece).unwrap();
/// }
/// assert_eq!(feeder.finish().unwrap(), 14);
/// assert_eq!(lines.0, ["one", "two", "three"]);
///
/// let mut lines = Lines(Vec::new());
/// let mut feeder = BodyFeeder::new(BodyCap::Bytes(4), &mut lines);
/// assert!(feeder.push(b"one\ntwo\n").is_err());
/// ```
pub struct BodyFeeder<'d> {
    decoder: &'d mut (dyn BodyDecoder + Send),
    cap: BodyCap,
    /// The body after what the decoder consumed, when it is held.
    buf: Vec<u8>,
    /// Bytes of the body received.
    total: usize,
    limit: usize,
    /// The dimension is being learned from the first row.
    learning: bool,
    /// Held bytes at which the decoder is fed next.
    next_feed: usize,
    /// Bytes of a long piece copied after a held tail.
    probe: usize,
}

impl std::fmt::Debug for BodyFeeder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyFeeder")
            .field("cap", &self.cap)
            .field("held", &self.buf.len())
            .field("total", &self.total)
            .field("limit", &self.limit)
            .field("learning", &self.learning)
            .finish_non_exhaustive()
    }
}

impl<'d> BodyFeeder<'d> {
    /// A feeder of a success body within `cap` into `decoder`.
    pub fn new(cap: BodyCap, decoder: &'d mut (dyn BodyDecoder + Send)) -> Self {
        let (limit, learning) = match cap {
            BodyCap::Rows { rows, dim: 0, .. } if rows > 1 => (max_response_len(1, 0), true),
            _ => (cap.limit(), false),
        };
        BodyFeeder {
            decoder,
            cap,
            buf: Vec::new(),
            total: 0,
            limit,
            learning,
            next_feed: if learning { 16 * 1024 } else { STREAM_WINDOW },
            probe: FIRST_PROBE,
        }
    }

    /// The next piece of the body.
    pub fn push(&mut self, piece: &[u8]) -> Result<()> {
        self.total += piece.len();
        if self.total > self.limit && !self.learning {
            return Err(self.too_large());
        }
        let mut rest = piece;
        if !self.learning && rest.len() >= DIRECT_PIECE {
            if !self.buf.is_empty() {
                // Complete the held tail with the piece's first bytes.
                let held = self.buf.len();
                let take = rest.len().min(self.probe);
                self.buf.extend_from_slice(&rest[..take]);
                let n = self.decoder.feed(&self.buf, false)?;
                if n >= held {
                    // The decoder is inside the piece: the rest is read there.
                    rest = &rest[n - held..];
                    self.buf.clear();
                } else {
                    // A unit longer than the probe: held, and a longer probe
                    // next time.
                    self.buf.drain(..n);
                    rest = &rest[take..];
                    self.probe = (self.probe * 2).min(STREAM_WINDOW);
                }
            }
            if self.buf.is_empty() {
                let n = self.decoder.feed(rest, false)?;
                self.buf.extend_from_slice(&rest[n..]);
                self.next_feed = self.after(self.buf.len());
                return Ok(());
            }
        }
        self.buf.extend_from_slice(rest);
        if self.buf.len() >= self.next_feed || self.total > self.limit {
            let n = self.decoder.feed(&self.buf, false)?;
            self.buf.drain(..n);
            if self.learning && self.decoder.dim() > 0 {
                if let BodyCap::Rows { rows, .. } = self.cap {
                    self.limit = max_response_len(rows, self.decoder.dim());
                }
                self.learning = false;
            }
            if self.total > self.limit {
                return Err(self.too_large());
            }
            self.next_feed = self.after(self.buf.len());
        }
        Ok(())
    }

    /// Feeds what is held as the end of the body; returns the body's length.
    pub fn finish(self) -> Result<usize> {
        self.decoder.feed(&self.buf, true)?;
        Ok(self.total)
    }

    /// The held length at which to feed next, `held` bytes being held now.
    fn after(&self, held: usize) -> usize {
        let window = if self.learning { 0 } else { STREAM_WINDOW };
        (held * 2).max(held + window).max(16 * 1024)
    }

    fn too_large(&self) -> Error {
        too_large(&format!("more than {}", self.limit), self.limit, &self.cap)
    }
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
