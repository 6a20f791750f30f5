//! Rows a provider may decode its answer straight into.
//!
//! A large call is split by the batch layer into sub-batches whose answers
//! end up in one result buffer. Without a sink each answer is decoded into
//! a buffer of its own and then copied into its place; with a [`RowSink`]
//! in the request ([`EmbedRequest::with_sink`](crate::EmbedRequest::with_sink))
//! a provider that supports it decodes straight into the rows of the result
//! that its inputs belong to: one buffer for the whole call, no copy.
//!
//! The contract:
//!
//! * A sink takes `f32` rows only, exactly [`RowSink::shape`] of them
//!   (`rows × dim`, row-major): a provider uses it only when the request
//!   asks for `f32`, the answer has that many rows of that dimension, and
//!   the request's inputs are those rows.
//! * A provider that wrote its answer into the sink (a successful
//!   [`RowSink::write`]) returns an [`Embeddings`](crate::Embeddings) with
//!   **no rows** and its usage and rate-limit snapshot. Everything else it
//!   returns as usual, and a provider may ignore the sink altogether.
//! * The caller that put the sink in the request (the batch layer) asks
//!   [`RowSink::is_filled`]: filled means the rows are in place; otherwise
//!   the answer's rows are in the returned value, as without a sink.
//! * A layer between the two that reads or changes rows forwards the request
//!   [`without_sink`](crate::EmbedRequest::without_sink).
//!
//! ```
//! use embeddings_core::{RowSink, SliceSink};
//! let mut result = vec![0.0f32; 3 * 2];
//! let (first, rest) = result.split_at_mut(2);
//! let sink = SliceSink::new(rest, 2).unwrap(); // rows 1 and 2
//! assert_eq!(sink.shape(), (2, 2));
//! sink.write(&mut |rows| {
//!     rows.copy_from_slice(&[1.0, 0.0, 0.0, 1.0]);
//!     Ok(())
//! })
//! .unwrap();
//! assert!(sink.is_filled());
//! drop(sink);
//! first.copy_from_slice(&[0.6, 0.8]);
//! assert_eq!(result, [0.6, 0.8, 1.0, 0.0, 0.0, 1.0]);
//! ```

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Error, Result};

/// Where the `f32` rows of one request's answer go (see the [module
/// documentation](self) for the contract).
pub trait RowSink: Send + Sync + fmt::Debug {
    /// The rows and the dimension the sink takes.
    fn shape(&self) -> (usize, usize);

    /// Runs `write` over the sink's rows (row-major, `rows × dim` values;
    /// zeros, or what an earlier attempt left). The sink counts as filled
    /// when `write` returns `Ok`, and as not filled while it runs or after
    /// it failed.
    fn write(&self, write: &mut dyn FnMut(&mut [f32]) -> Result<()>) -> Result<()>;

    /// Whether the last [`RowSink::write`] succeeded.
    fn is_filled(&self) -> bool;
}

/// A [`RowSink`] over a borrowed part of a result buffer.
pub struct SliceSink<'a> {
    rows: usize,
    dim: usize,
    dst: Mutex<&'a mut [f32]>,
    filled: AtomicBool,
}

impl<'a> SliceSink<'a> {
    /// The rows of `dim` values in `dst`; `None` when `dim` is `0` or does
    /// not divide its length.
    pub fn new(dst: &'a mut [f32], dim: usize) -> Option<Self> {
        if dim == 0 || dst.len() % dim != 0 {
            return None;
        }
        Some(SliceSink {
            rows: dst.len() / dim,
            dim,
            dst: Mutex::new(dst),
            filled: AtomicBool::new(false),
        })
    }
}

impl RowSink for SliceSink<'_> {
    fn shape(&self) -> (usize, usize) {
        (self.rows, self.dim)
    }

    fn write(&self, write: &mut dyn FnMut(&mut [f32]) -> Result<()>) -> Result<()> {
        let mut dst = self
            .dst
            .lock()
            .map_err(|_| Error::invalid_response("a row sink was poisoned by a panic"))?;
        self.filled.store(false, Ordering::Release);
        write(&mut dst)?;
        self.filled.store(true, Ordering::Release);
        Ok(())
    }

    fn is_filled(&self) -> bool {
        self.filled.load(Ordering::Acquire)
    }
}

impl fmt::Debug for SliceSink<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SliceSink")
            .field("rows", &self.rows)
            .field("dim", &self.dim)
            .field("filled", &self.is_filled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_is_filled_only_by_a_successful_write() {
        let mut buf = vec![0.0f32; 4];
        {
            let sink = SliceSink::new(&mut buf, 2).unwrap();
            assert!(!sink.is_filled());
            let e = sink
                .write(&mut |rows| {
                    rows[0] = 9.0;
                    Err(Error::invalid_response("torn"))
                })
                .unwrap_err();
            assert_eq!(e.message(), "torn");
            assert!(!sink.is_filled(), "a failed write does not count");
            sink.write(&mut |rows| {
                rows.copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
                Ok(())
            })
            .unwrap();
            assert!(sink.is_filled());
            assert_eq!(
                format!("{sink:?}"),
                "SliceSink { rows: 2, dim: 2, filled: true }"
            );
        }
        assert_eq!(buf, [1.0, 2.0, 3.0, 4.0]);
        assert!(SliceSink::new(&mut [0.0; 3], 2).is_none());
        assert!(SliceSink::new(&mut [0.0; 3], 0).is_none());
    }
}
