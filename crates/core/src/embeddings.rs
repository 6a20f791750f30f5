//! The batch result: one contiguous row-major buffer.

use crate::error::{Error, Result};

/// Token usage reported by the provider for one request (or summed over a batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the inputs.
    pub prompt_tokens: u64,
    /// Tokens billed in total.
    pub total_tokens: u64,
}

impl Usage {
    /// Adds another request's usage to this one.
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.total_tokens += other.total_tokens;
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

/// The vectors of one batch: `len()` rows of `dim()` floats in one `Vec<f32>`.
///
/// Row `i` always belongs to input `i`. One allocation per batch, not one per
/// vector.
///
/// ```
/// use embeddings_core::Embeddings;
/// let e = Embeddings::from_flat(vec![1.0, 0.0, 0.0, 1.0], 2).unwrap();
/// assert_eq!(e.len(), 2);
/// assert_eq!(e.row(1), &[0.0, 1.0]);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embeddings {
    data: Vec<f32>,
    dim: usize,
    rows: usize,
    usage: Option<Usage>,
    rate_limits: Option<RateLimitSnapshot>,
}

impl Embeddings {
    /// An empty result (no rows) of the given dimension.
    pub fn empty(dim: usize) -> Self {
        Embeddings {
            data: Vec::new(),
            dim,
            rows: 0,
            usage: None,
            rate_limits: None,
        }
    }

    /// Wraps a row-major buffer. Fails when `dim` is 0 with data present, or
    /// when the buffer's length is not a multiple of `dim`.
    pub fn from_flat(data: Vec<f32>, dim: usize) -> Result<Self> {
        if dim == 0 {
            if data.is_empty() {
                return Ok(Embeddings::empty(0));
            }
            return Err(Error::invalid_response("vectors of dimension 0"));
        }
        if data.len() % dim != 0 {
            return Err(Error::invalid_response(format!(
                "buffer of {} floats is not a whole number of rows of dimension {dim}",
                data.len()
            )));
        }
        let rows = data.len() / dim;
        Ok(Embeddings {
            data,
            dim,
            rows,
            usage: None,
            rate_limits: None,
        })
    }

    /// `rows` rows of zeros, to be filled in place with [`Embeddings::row_mut`].
    pub fn zeroed(rows: usize, dim: usize) -> Self {
        Embeddings {
            data: vec![0.0; rows * dim],
            dim,
            rows,
            usage: None,
            rate_limits: None,
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

    /// The dimension of every row.
    #[inline]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Row `i`. Panics when `i >= len()`, like slice indexing; see [`Embeddings::get`].
    #[inline]
    pub fn row(&self, i: usize) -> &[f32] {
        assert!(i < self.rows, "row {i} out of range ({} rows)", self.rows);
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Row `i`, or `None` when out of range.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&[f32]> {
        (i < self.rows).then(|| &self.data[i * self.dim..(i + 1) * self.dim])
    }

    /// Row `i`, mutable. Panics when out of range.
    #[inline]
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        assert!(i < self.rows, "row {i} out of range ({} rows)", self.rows);
        &mut self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The rows in order.
    pub fn iter(&self) -> Rows<'_> {
        Rows {
            data: &self.data,
            dim: self.dim,
            front: 0,
            back: self.rows,
        }
    }

    /// The whole row-major buffer.
    #[inline]
    pub fn as_flat(&self) -> &[f32] {
        &self.data
    }

    /// The whole row-major buffer, mutable.
    #[inline]
    pub fn as_flat_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Gives up the buffer.
    pub fn into_flat(self) -> Vec<f32> {
        self.data
    }

    /// One `Vec` per row (allocates one vector per row; prefer [`Embeddings::iter`]).
    pub fn into_vecs(self) -> Vec<Vec<f32>> {
        self.iter().map(<[f32]>::to_vec).collect()
    }

    /// The first row, taking the buffer without copying when there is exactly one row.
    pub fn into_single(self) -> Option<Vec<f32>> {
        match self.rows {
            1 => Some(self.data),
            0 => None,
            _ => Some(self.row(0).to_vec()),
        }
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

    /// Appends the rows of `other` (same dimension), summing usage.
    pub fn extend(&mut self, other: &Embeddings) -> Result<()> {
        if self.rows == 0 && self.data.is_empty() {
            self.dim = other.dim;
        } else if other.rows > 0 && other.dim != self.dim {
            return Err(Error::new(
                crate::ErrorKind::DimensionMismatch,
                format!(
                    "cannot append rows of dimension {} to rows of dimension {}",
                    other.dim, self.dim
                ),
            ));
        }
        self.data.extend_from_slice(&other.data);
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
            .with_usage(Usage {
                prompt_tokens: 3,
                total_tokens: 3,
            });
        let b = Embeddings::from_flat(vec![3.0, 4.0, 5.0, 6.0], 2)
            .unwrap()
            .with_usage(Usage {
                prompt_tokens: 4,
                total_tokens: 4,
            });
        a.extend(&b).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a.row(2), &[5.0, 6.0]);
        assert_eq!(a.usage().unwrap().total_tokens, 7);
        let c = Embeddings::from_flat(vec![1.0; 3], 3).unwrap();
        assert!(a.extend(&c).is_err());
    }

    #[test]
    fn single_row_is_taken_without_copy() {
        let e = Embeddings::from_flat(vec![1.0, 2.0], 2).unwrap();
        assert_eq!(e.into_single(), Some(vec![1.0, 2.0]));
        assert_eq!(Embeddings::empty(2).into_single(), None);
    }
}
