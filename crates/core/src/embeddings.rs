//! The batch result: one contiguous row-major buffer.

use crate::error::{Error, Result};
use crate::request::OutputType;

/// Token usage reported by the provider for one request (or summed over a batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the inputs.
    pub prompt_tokens: u64,
    /// Tokens billed in total.
    pub total_tokens: u64,
    /// Rows answered from a cache rather than by the provider.
    pub cached_rows: u64,
}

impl Usage {
    /// Adds another request's usage to this one.
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.total_tokens += other.total_tokens;
        self.cached_rows += other.cached_rows;
    }

    /// Usage of `prompt_tokens` input tokens, billed as such.
    pub fn tokens(prompt_tokens: u64) -> Self {
        Usage {
            prompt_tokens,
            total_tokens: prompt_tokens,
            cached_rows: 0,
        }
    }
}

/// The provider's rate-limit budget as its answer reported it
/// (OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers).
/// The rate-limit layer slows down when the remaining budget runs low.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitSnapshot {
    /// Requests allowed per window.
    pub limit_requests: Option<u64>,
    /// Requests left in the current window.
    pub remaining_requests: Option<u64>,
    /// Time until the request budget is full again.
    pub reset_requests: Option<std::time::Duration>,
    /// Tokens allowed per window.
    pub limit_tokens: Option<u64>,
    /// Tokens left in the current window.
    pub remaining_tokens: Option<u64>,
    /// Time until the token budget is full again.
    pub reset_tokens: Option<std::time::Duration>,
}

/// The rows of an [`Embeddings`] in their element type.
#[derive(Debug, Clone, PartialEq)]
enum Data {
    F32(Vec<f32>),
    I8(Vec<i8>),
    U8(Vec<u8>),
}

/// One row of an [`Embeddings`] of any [`OutputType`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RowRef<'a> {
    /// An `f32` row.
    F32(&'a [f32]),
    /// An `int8` row, or a packed `binary` row.
    I8(&'a [i8]),
    /// A `uint8` row, or a packed `ubinary` row.
    U8(&'a [u8]),
}

impl<'a> RowRef<'a> {
    /// The row as little-endian bytes (4 per `f32`, 1 per byte type):
    /// borrowed, without a copy, on little-endian targets.
    ///
    /// ```
    /// use embeddings_core::RowRef;
    /// let row = [0.5f32, -1.0];
    /// let bytes = RowRef::F32(&row).le_bytes();
    /// assert_eq!(bytes[..4], 0.5f32.to_le_bytes());
    /// assert_eq!(bytes.len(), 8);
    /// ```
    pub fn le_bytes(&self) -> std::borrow::Cow<'a, [u8]> {
        use std::borrow::Cow;
        match *self {
            #[cfg(target_endian = "little")]
            RowRef::F32(r) => Cow::Borrowed(bytemuck::cast_slice(r)),
            #[cfg(not(target_endian = "little"))]
            RowRef::F32(r) => Cow::Owned(r.iter().flat_map(|x| x.to_le_bytes()).collect()),
            RowRef::I8(r) => Cow::Borrowed(bytemuck::cast_slice(r)),
            RowRef::U8(r) => Cow::Borrowed(r),
        }
    }
}

/// Fills `dst` with the `f32`s of little-endian bytes (4 per value), as a
/// cache or a binary response holds them: one copy on little-endian
/// targets. Panics when `src` is not `4 * dst.len()` bytes long.
///
/// ```
/// let mut row = [0.0f32; 2];
/// let bytes: Vec<u8> = [0.25f32, 3.0].iter().flat_map(|x| x.to_le_bytes()).collect();
/// embeddings_core::f32_from_le_bytes(&mut row, &bytes);
/// assert_eq!(row, [0.25, 3.0]);
/// ```
pub fn f32_from_le_bytes(dst: &mut [f32], src: &[u8]) {
    assert_eq!(
        src.len(),
        dst.len() * 4,
        "{} bytes for {} f32 values",
        src.len(),
        dst.len()
    );
    #[cfg(target_endian = "little")]
    bytemuck::cast_slice_mut::<f32, u8>(dst).copy_from_slice(src);
    #[cfg(not(target_endian = "little"))]
    for (d, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}

/// Appends the `f32`s of little-endian bytes (4 per value; a trailing
/// partial value is ignored) to `dst`, without zeroing its room first: one
/// copy when `src` is 4-byte aligned on a little-endian target, else value
/// by value.
///
/// ```
/// let mut v = vec![1.0f32];
/// let bytes: Vec<u8> = [0.25f32, 3.0].iter().flat_map(|x| x.to_le_bytes()).collect();
/// embeddings_core::extend_f32_from_le_bytes(&mut v, &bytes);
/// assert_eq!(v, [1.0, 0.25, 3.0]);
/// ```
pub fn extend_f32_from_le_bytes(dst: &mut Vec<f32>, src: &[u8]) {
    let whole = &src[..src.len() / 4 * 4];
    #[cfg(target_endian = "little")]
    if let Ok(floats) = bytemuck::try_cast_slice::<u8, f32>(whole) {
        dst.extend_from_slice(floats);
        return;
    }
    dst.extend(
        whole
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
    );
}

/// The vectors of one batch: `len()` rows of `dim()` dimensions in one buffer.
///
/// Row `i` always belongs to input `i`. One allocation per batch, not one per
/// vector. The buffer holds `f32` (the default [`OutputType`]), or bytes for
/// the quantized types: `int8`/`binary` as `i8`, `uint8`/`ubinary` as `u8`,
/// packed types with `dim().div_ceil(8)` bytes per row.
///
/// The `f32` accessors ([`row`](Embeddings::row), [`iter`](Embeddings::iter),
/// [`as_flat`](Embeddings::as_flat), ...) panic on quantized rows, as
/// indexing out of range does: a caller gets quantized rows only by asking
/// for them. [`row_ref`](Embeddings::row_ref), [`as_i8`](Embeddings::as_i8),
/// [`as_u8`](Embeddings::as_u8) and [`row_bytes`](Embeddings::row_bytes)
/// read every type.
///
/// ```
/// use embeddings_core::Embeddings;
/// let e = Embeddings::from_flat(vec![1.0, 0.0, 0.0, 1.0], 2).unwrap();
/// assert_eq!(e.len(), 2);
/// assert_eq!(e.row(1), &[0.0, 1.0]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    data: Data,
    output: OutputType,
    dim: usize,
    rows: usize,
    usage: Option<Usage>,
    rate_limits: Option<RateLimitSnapshot>,
}

impl Default for Embeddings {
    fn default() -> Self {
        Embeddings::empty(0)
    }
}

fn wrong_type(what: &str, output: OutputType) -> ! {
    panic!("{what} on {output} embeddings (use row_ref, as_i8 or as_u8)")
}

impl Embeddings {
    /// An empty result (no rows) of the given dimension.
    pub fn empty(dim: usize) -> Self {
        Embeddings::empty_of(OutputType::F32, dim)
    }

    /// An empty result of the given type and dimension.
    pub fn empty_of(output: OutputType, dim: usize) -> Self {
        Embeddings {
            data: match output {
                OutputType::F32 => Data::F32(Vec::new()),
                OutputType::Int8 | OutputType::Binary => Data::I8(Vec::new()),
                OutputType::Uint8 | OutputType::Ubinary => Data::U8(Vec::new()),
            },
            output,
            dim,
            rows: 0,
            usage: None,
            rate_limits: None,
        }
    }

    fn check_len(len: usize, row_len: usize, what: &str) -> Result<usize> {
        if row_len == 0 {
            if len == 0 {
                return Ok(0);
            }
            return Err(Error::invalid_response("vectors of dimension 0"));
        }
        if len % row_len != 0 {
            return Err(Error::invalid_response(format!(
                "buffer of {len} {what} is not a whole number of rows of {row_len}"
            )));
        }
        Ok(len / row_len)
    }

    /// Wraps a row-major buffer. Fails when `dim` is 0 with data present, or
    /// when the buffer's length is not a multiple of `dim`.
    pub fn from_flat(data: Vec<f32>, dim: usize) -> Result<Self> {
        let rows = Self::check_len(data.len(), dim, "floats")?;
        Ok(Embeddings {
            rows,
            data: Data::F32(data),
            ..Embeddings::empty(dim)
        })
    }

    /// Wraps `int8` rows (`output` = `Int8`, `dim` bytes per row) or packed
    /// `binary` rows (`output` = `Binary`, `dim.div_ceil(8)` bytes per row).
    pub fn from_i8(data: Vec<i8>, dim: usize, output: OutputType) -> Result<Self> {
        if !matches!(output, OutputType::Int8 | OutputType::Binary) {
            return Err(Error::new(
                crate::ErrorKind::Internal,
                format!("from_i8 with output type {output}"),
            ));
        }
        let rows = Self::check_len(data.len(), output.row_len(dim), "bytes")?;
        Ok(Embeddings {
            rows,
            data: Data::I8(data),
            ..Embeddings::empty_of(output, dim)
        })
    }

    /// Wraps `uint8` rows (`output` = `Uint8`) or packed `ubinary` rows
    /// (`output` = `Ubinary`).
    pub fn from_u8(data: Vec<u8>, dim: usize, output: OutputType) -> Result<Self> {
        if !matches!(output, OutputType::Uint8 | OutputType::Ubinary) {
            return Err(Error::new(
                crate::ErrorKind::Internal,
                format!("from_u8 with output type {output}"),
            ));
        }
        let rows = Self::check_len(data.len(), output.row_len(dim), "bytes")?;
        Ok(Embeddings {
            rows,
            data: Data::U8(data),
            ..Embeddings::empty_of(output, dim)
        })
    }

    /// `rows` rows of zeros, to be filled in place with [`Embeddings::row_mut`].
    pub fn zeroed(rows: usize, dim: usize) -> Self {
        Embeddings {
            rows,
            data: Data::F32(crate::memory::zeroed_vec(rows * dim)),
            ..Embeddings::empty(dim)
        }
    }

    /// `rows` zeroed rows of `output`, to be filled in place (with
    /// [`Embeddings::row_mut`], [`Embeddings::as_i8_mut`] or [`Embeddings::as_u8_mut`]).
    pub fn zeroed_of(output: OutputType, rows: usize, dim: usize) -> Self {
        let n = rows * output.row_len(dim);
        Embeddings {
            rows,
            data: match output {
                OutputType::F32 => Data::F32(crate::memory::zeroed_vec(n)),
                OutputType::Int8 | OutputType::Binary => Data::I8(crate::memory::zeroed_vec(n)),
                OutputType::Uint8 | OutputType::Ubinary => Data::U8(crate::memory::zeroed_vec(n)),
            },
            ..Embeddings::empty_of(output, dim)
        }
    }

    /// Builds from one vector per row (all of the same length).
    pub fn from_rows<I, R>(dim: usize, rows: I) -> Result<Self>
    where
        I: IntoIterator<Item = R>,
        R: AsRef<[f32]>,
    {
        let mut data = Vec::new();
        let mut n = 0;
        for (i, r) in rows.into_iter().enumerate() {
            let r = r.as_ref();
            if r.len() != dim {
                return Err(Error::new(
                    crate::ErrorKind::DimensionMismatch,
                    format!("row {i} has {} values, expected {dim}", r.len()),
                ));
            }
            data.extend_from_slice(r);
            n += 1;
        }
        let mut e = Embeddings::from_flat(data, dim)?;
        e.rows = n;
        Ok(e)
    }

    /// Number of rows (vectors).
    #[inline]
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether there are no rows.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The dimension of every row (for packed types: bits, not bytes).
    #[inline]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// How the rows are stored.
    #[inline]
    pub fn output_type(&self) -> OutputType {
        self.output
    }

    /// Elements (floats or bytes) per row.
    #[inline]
    pub fn row_len(&self) -> usize {
        self.output.row_len(self.dim)
    }

    #[inline]
    fn f32s(&self) -> &[f32] {
        match &self.data {
            Data::F32(v) => v,
            _ => wrong_type("an f32 accessor", self.output),
        }
    }

    /// Row `i` (`f32`). Panics when `i >= len()`, like slice indexing (see
    /// [`Embeddings::get`]), and on quantized rows (see [`Embeddings::row_ref`]).
    #[inline]
    pub fn row(&self, i: usize) -> &[f32] {
        assert!(i < self.rows, "row {i} out of range ({} rows)", self.rows);
        &self.f32s()[i * self.dim..(i + 1) * self.dim]
    }

    /// Row `i` (`f32`), or `None` when out of range or not `f32`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) if i < self.rows => Some(&v[i * self.dim..(i + 1) * self.dim]),
            _ => None,
        }
    }

    /// Row `i` of any type. Panics when out of range.
    pub fn row_ref(&self, i: usize) -> RowRef<'_> {
        assert!(i < self.rows, "row {i} out of range ({} rows)", self.rows);
        let n = self.row_len();
        let r = i * n..(i + 1) * n;
        match &self.data {
            Data::F32(v) => RowRef::F32(&v[r]),
            Data::I8(v) => RowRef::I8(&v[r]),
            Data::U8(v) => RowRef::U8(&v[r]),
        }
    }

    /// Row `i` as little-endian bytes (4 per `f32`, 1 per byte type).
    /// Panics when out of range.
    pub fn row_bytes(&self, i: usize) -> std::borrow::Cow<'_, [u8]> {
        self.row_ref(i).le_bytes()
    }

    /// Every row, in order, as little-endian bytes (what
    /// [`row_bytes`](Embeddings::row_bytes) gives row by row): borrowed,
    /// without a copy, on little-endian targets.
    ///
    /// ```
    /// use embeddings_core::Embeddings;
    /// let e = Embeddings::from_flat(vec![1.0, 0.0, 0.0, 1.0], 2).unwrap();
    /// assert_eq!(e.le_bytes().len(), 16);
    /// assert_eq!(e.le_bytes()[8..], *e.row_bytes(1));
    /// ```
    pub fn le_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match &self.data {
            Data::F32(v) => RowRef::F32(v),
            Data::I8(v) => RowRef::I8(v),
            Data::U8(v) => RowRef::U8(v),
        }
        .le_bytes()
    }

    /// Row `i` (`f32`), mutable. Panics when out of range or not `f32`.
    #[inline]
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        assert!(i < self.rows, "row {i} out of range ({} rows)", self.rows);
        let dim = self.dim;
        &mut self.as_flat_mut()[i * dim..(i + 1) * dim]
    }

    /// The `f32` rows in order. Panics on quantized rows.
    pub fn iter(&self) -> Rows<'_> {
        Rows {
            data: self.f32s(),
            dim: self.dim,
            front: 0,
            back: self.rows,
        }
    }

    /// The whole row-major `f32` buffer. Panics on quantized rows.
    #[inline]
    pub fn as_flat(&self) -> &[f32] {
        self.f32s()
    }

    /// The whole row-major `f32` buffer, mutable. Panics on quantized rows.
    #[inline]
    pub fn as_flat_mut(&mut self) -> &mut [f32] {
        match &mut self.data {
            Data::F32(v) => v,
            _ => wrong_type("as_flat_mut", self.output),
        }
    }

    /// The `f32` buffer, when the rows are `f32`.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The signed-byte buffer (`int8`, `binary`).
    pub fn as_i8(&self) -> Option<&[i8]> {
        match &self.data {
            Data::I8(v) => Some(v),
            _ => None,
        }
    }

    /// The signed-byte buffer, mutable.
    pub fn as_i8_mut(&mut self) -> Option<&mut [i8]> {
        match &mut self.data {
            Data::I8(v) => Some(v),
            _ => None,
        }
    }

    /// The unsigned-byte buffer (`uint8`, `ubinary`).
    pub fn as_u8(&self) -> Option<&[u8]> {
        match &self.data {
            Data::U8(v) => Some(v),
            _ => None,
        }
    }

    /// The unsigned-byte buffer, mutable.
    pub fn as_u8_mut(&mut self) -> Option<&mut [u8]> {
        match &mut self.data {
            Data::U8(v) => Some(v),
            _ => None,
        }
    }

    /// Gives up the `f32` buffer. Panics on quantized rows.
    pub fn into_flat(self) -> Vec<f32> {
        match self.data {
            Data::F32(v) => v,
            _ => wrong_type("into_flat", self.output),
        }
    }

    /// One `Vec` per row (allocates one vector per row; prefer [`Embeddings::iter`]).
    /// Panics on quantized rows.
    pub fn into_vecs(self) -> Vec<Vec<f32>> {
        self.iter().map(<[f32]>::to_vec).collect()
    }

    /// The first `f32` row, taking the buffer without copying when there is
    /// exactly one row; `None` without rows or when the rows are not `f32`.
    pub fn into_single(self) -> Option<Vec<f32>> {
        match (self.rows, self.data) {
            (1, Data::F32(v)) => Some(v),
            (0, _) | (_, Data::I8(_) | Data::U8(_)) => None,
            (_, Data::F32(mut v)) => {
                v.truncate(self.dim);
                Some(v)
            }
        }
    }

    /// These `f32` rows quantized to `output` as [`crate::quantize`] defines
    /// it (`F32` gives the rows back unchanged); usage and rate limits are kept.
    /// Rows that are already quantized cannot be converted again (`InvalidInput`).
    pub fn quantized(self, output: OutputType) -> Result<Embeddings> {
        use crate::quantize;
        if output == self.output {
            return Ok(self);
        }
        let Data::F32(src) = &self.data else {
            return Err(Error::invalid_input(format!(
                "{} rows cannot be converted to {output}",
                self.output
            )));
        };
        let dim = self.dim;
        let data = match output {
            OutputType::F32 => unreachable!("F32 rows are F32"),
            OutputType::Int8 => Data::I8(src.iter().map(|&x| quantize::int8(x)).collect()),
            OutputType::Uint8 => Data::U8(src.iter().map(|&x| quantize::uint8(x)).collect()),
            OutputType::Binary | OutputType::Ubinary => {
                let n = output.row_len(dim);
                let mut bits = vec![0u8; self.rows * n];
                if n > 0 {
                    for (out, row) in bits.chunks_exact_mut(n).zip(src.chunks_exact(dim)) {
                        quantize::pack_bits(row, out);
                    }
                }
                if output == OutputType::Binary {
                    Data::I8(bits.into_iter().map(quantize::binary_byte).collect())
                } else {
                    Data::U8(bits)
                }
            }
        };
        Ok(Embeddings {
            data,
            output,
            ..self
        })
    }

    /// Usage reported by the provider, when known.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Sets the usage.
    pub fn set_usage(&mut self, usage: Option<Usage>) {
        self.usage = usage;
    }

    /// Builder-style [`Embeddings::set_usage`].
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// The rate-limit budget the provider reported with this answer, when it did.
    pub fn rate_limits(&self) -> Option<&RateLimitSnapshot> {
        self.rate_limits.as_ref()
    }

    /// Records the rate-limit budget reported with this answer.
    pub fn set_rate_limits(&mut self, snapshot: Option<RateLimitSnapshot>) {
        self.rate_limits = snapshot;
    }

    /// Copies every row of `src` (same type and dimension) into rows
    /// `at..at + src.len()` of `self`.
    pub fn copy_rows_from(&mut self, at: usize, src: &Embeddings) -> Result<()> {
        if src.output != self.output || (src.rows > 0 && src.dim != self.dim) {
            return Err(Error::new(
                crate::ErrorKind::DimensionMismatch,
                format!(
                    "{} rows of dimension {} where {} rows of dimension {} belong",
                    src.output, src.dim, self.output, self.dim
                ),
            ));
        }
        if at + src.rows > self.rows {
            return Err(Error::new(
                crate::ErrorKind::Internal,
                format!(
                    "rows {at}..{} do not fit in {} rows",
                    at + src.rows,
                    self.rows
                ),
            ));
        }
        let n = self.row_len();
        let r = at * n..(at + src.rows) * n;
        match (&mut self.data, &src.data) {
            (Data::F32(a), Data::F32(b)) => a[r].copy_from_slice(b),
            (Data::I8(a), Data::I8(b)) => a[r].copy_from_slice(b),
            (Data::U8(a), Data::U8(b)) => a[r].copy_from_slice(b),
            _ => unreachable!("same output type, same storage"),
        }
        Ok(())
    }

    /// Appends the rows of `other` (same dimension and type), summing usage.
    pub fn extend(&mut self, other: &Embeddings) -> Result<()> {
        if self.rows == 0 && self.output == other.output {
            self.dim = other.dim;
        } else if other.rows > 0 && (other.dim != self.dim || other.output != self.output) {
            return Err(Error::new(
                crate::ErrorKind::DimensionMismatch,
                format!(
                    "cannot append {} rows of dimension {} to {} rows of dimension {}",
                    other.output, other.dim, self.output, self.dim
                ),
            ));
        }
        match (&mut self.data, &other.data) {
            (Data::F32(a), Data::F32(b)) => a.extend_from_slice(b),
            (Data::I8(a), Data::I8(b)) => a.extend_from_slice(b),
            (Data::U8(a), Data::U8(b)) => a.extend_from_slice(b),
            _ if other.rows == 0 => {}
            _ => {
                return Err(Error::new(
                    crate::ErrorKind::DimensionMismatch,
                    format!(
                        "cannot append {} rows to {} rows",
                        other.output, self.output
                    ),
                ));
            }
        }
        self.rows += other.rows;
        match (&mut self.usage, other.usage) {
            (Some(u), Some(o)) => u.add(o),
            (None, Some(o)) => self.usage = Some(o),
            _ => {}
        }
        Ok(())
    }
}

impl std::ops::Index<usize> for Embeddings {
    type Output = [f32];
    fn index(&self, i: usize) -> &[f32] {
        self.row(i)
    }
}

impl<'a> IntoIterator for &'a Embeddings {
    type Item = &'a [f32];
    type IntoIter = Rows<'a>;
    fn into_iter(self) -> Rows<'a> {
        self.iter()
    }
}

/// Iterator over the rows of an [`Embeddings`].
#[derive(Debug, Clone)]
pub struct Rows<'a> {
    data: &'a [f32],
    dim: usize,
    front: usize,
    back: usize,
}

impl<'a> Iterator for Rows<'a> {
    type Item = &'a [f32];
    fn next(&mut self) -> Option<&'a [f32]> {
        if self.front >= self.back {
            return None;
        }
        let i = self.front;
        self.front += 1;
        Some(&self.data[i * self.dim..(i + 1) * self.dim])
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Rows<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        self.back -= 1;
        let i = self.back;
        Some(&self.data[i * self.dim..(i + 1) * self.dim])
    }
}

impl ExactSizeIterator for Rows<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_bytes_round_trip_every_f32_bit_pattern_in_row_order() {
        let values = [
            0.5f32,
            -0.0,
            f32::MIN_POSITIVE,
            f32::MAX,
            -3.25,
            1e-40,
            7.0,
            -1.0,
        ];
        let e = Embeddings::from_flat(values.to_vec(), 4).unwrap();
        for i in 0..2 {
            let bytes = e.row_bytes(i);
            let want: Vec<u8> = values[i * 4..i * 4 + 4]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            assert_eq!(&*bytes, &want[..]);
            let mut back = [1.0f32; 4];
            f32_from_le_bytes(&mut back, &bytes);
            let bits = |r: &[f32]| r.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&back), bits(&values[i * 4..i * 4 + 4]));
        }
        // Aligned and unaligned sources give the same values.
        let mut padded = vec![0u8; 1];
        padded.extend_from_slice(&e.le_bytes());
        for src in [&e.le_bytes()[..], &padded[1..]] {
            let mut v = vec![9.0f32];
            extend_f32_from_le_bytes(&mut v, src);
            let bits = |r: &[f32]| r.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&v[1..]), bits(&values));
        }
        let nan = f32::from_bits(0x7fc0_1234);
        let mut one = [0.0f32];
        f32_from_le_bytes(&mut one, &nan.to_le_bytes());
        assert_eq!(one[0].to_bits(), 0x7fc0_1234);
        let q = [-2i8, 5];
        assert_eq!(&*RowRef::I8(&q).le_bytes(), &[254u8, 5]);
    }

    #[test]
    #[should_panic(expected = "7 bytes for 2 f32 values")]
    fn f32_from_le_bytes_refuses_a_wrong_length() {
        f32_from_le_bytes(&mut [0.0; 2], &[0; 7]);
    }

    #[test]
    fn rows_are_in_order_and_contiguous() {
        let e = Embeddings::from_flat((0..12).map(|x| x as f32).collect(), 3).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e.dim(), 3);
        assert_eq!(e.row(2), &[6.0, 7.0, 8.0]);
        assert_eq!(&e[3], &[9.0, 10.0, 11.0]);
        assert_eq!(e.get(4), None);
        let rows: Vec<_> = e.iter().collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1], &[3.0, 4.0, 5.0]);
        assert_eq!(e.iter().next_back().unwrap(), &[9.0, 10.0, 11.0]);
        let vecs = e.clone().into_vecs();
        assert_eq!(vecs[0], vec![0.0, 1.0, 2.0]);
    }

    #[test]
    fn ragged_buffers_are_refused() {
        assert!(Embeddings::from_flat(vec![1.0; 5], 2).is_err());
        assert!(Embeddings::from_flat(vec![1.0; 5], 0).is_err());
        assert!(Embeddings::from_flat(vec![], 0).unwrap().is_empty());
        let err = Embeddings::from_rows(2, [vec![1.0, 2.0], vec![1.0]]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::DimensionMismatch);
    }

    #[test]
    fn extend_appends_rows_and_sums_usage() {
        let mut a = Embeddings::from_flat(vec![1.0, 2.0], 2)
            .unwrap()
            .with_usage(Usage::tokens(3));
        let b = Embeddings::from_flat(vec![3.0, 4.0, 5.0, 6.0], 2)
            .unwrap()
            .with_usage(Usage::tokens(4));
        a.extend(&b).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a.row(2), &[5.0, 6.0]);
        assert_eq!(a.usage().unwrap().total_tokens, 7);
        let c = Embeddings::from_flat(vec![1.0; 3], 3).unwrap();
        assert!(a.extend(&c).is_err());
    }

    #[test]
    fn quantized_rows_are_packed_and_typed() {
        let e = Embeddings::from_flat(
            vec![
                0.5, -0.5, 0.1, 0.0, 0.2, 0.2, 0.2, 0.2, 0.3, -1.0, -1.0, 1.0, 0.0, 0.0, 0.0, 0.0,
                0.0, 0.0,
            ],
            9,
        )
        .unwrap()
        .with_usage(Usage::tokens(5));
        let u = e.clone().quantized(OutputType::Ubinary).unwrap();
        assert_eq!((u.len(), u.dim(), u.row_len()), (2, 9, 2));
        assert_eq!(
            u.as_u8().unwrap(),
            &[0b1010_1111, 0b1000_0000, 0b0010_0000, 0]
        );
        assert_eq!(u.usage(), Some(Usage::tokens(5)));
        let b = e.clone().quantized(OutputType::Binary).unwrap();
        assert_eq!(b.as_i8().unwrap()[..2], [0b1010_1111u8 as i8 ^ i8::MIN, 0]);
        let i = e.clone().quantized(OutputType::Int8).unwrap();
        assert_eq!(
            i.row_ref(1),
            RowRef::I8(&[-127, -127, 127, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(i.row_bytes(1)[0], (-127i8) as u8);
        assert!(i.clone().quantized(OutputType::Uint8).is_err());
        assert!(i.get(0).is_none() && i.as_f32().is_none());
        assert_eq!(e.row_bytes(0)[..4], 0.5f32.to_le_bytes());
        let mut all = Embeddings::empty_of(OutputType::Ubinary, 9);
        all.extend(&u).unwrap();
        all.extend(&u).unwrap();
        assert_eq!(all.len(), 4);
        assert!(all.extend(&e).is_err());
        assert!(Embeddings::from_u8(vec![0; 3], 9, OutputType::Ubinary).is_err());
        assert_eq!(
            Embeddings::zeroed_of(OutputType::Binary, 3, 9)
                .as_i8()
                .unwrap()
                .len(),
            6
        );
    }

    #[test]
    #[should_panic(expected = "on int8 embeddings")]
    fn f32_access_to_quantized_rows_panics_with_a_clear_message() {
        let e = Embeddings::from_flat(vec![0.5], 1).unwrap();
        let _ = e.quantized(OutputType::Int8).unwrap().row(0);
    }

    #[test]
    fn single_row_is_taken_without_copy() {
        let e = Embeddings::from_flat(vec![1.0, 2.0], 2).unwrap();
        assert_eq!(e.into_single(), Some(vec![1.0, 2.0]));
        assert_eq!(Embeddings::empty(2).into_single(), None);
    }
}
