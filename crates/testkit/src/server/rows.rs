//! The vectors of an embedding answer, computed once into one buffer.

use embeddings_mock::fill_vector;

use super::faults::RowPlan;

/// The rows of an embedding answer, after the row faults that fired
/// (rows removed, added, shuffled, duplicated, a NaN, a wrong dimension):
/// the DESIGN.md §4 vector of each, back to back in one buffer, and the
/// `index` each row claims. A dialect encodes them in its wire format; get
/// them from [`Exchange::rows`](crate::dialect::Exchange::rows).
#[derive(Debug)]
pub struct Rows {
    pub(crate) plan: Vec<RowPlan>,
    flat: Vec<f32>,
    offsets: Vec<usize>,
}

impl Rows {
    /// Computes the DESIGN.md §4 vector of every planned row.
    pub(crate) fn compute<T: AsRef<str>>(model: &str, texts: &[T], plan: Vec<RowPlan>) -> Self {
        let total: usize = plan.iter().map(|r| r.dim).sum();
        let mut flat = vec![0.0f32; total];
        let mut offsets = Vec::with_capacity(plan.len());
        let mut at = 0;
        for row in &plan {
            let out = &mut flat[at..at + row.dim];
            fill_vector(model, texts[row.text].as_ref(), out);
            if row.nan && !out.is_empty() {
                out[0] = f32::NAN;
            }
            offsets.push(at);
            at += row.dim;
        }
        Rows {
            plan,
            flat,
            offsets,
        }
    }

    /// The vector of row `i`. Panics when `i >= len()`, like slice indexing.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.flat[self.offsets[i]..self.offsets[i] + self.plan[i].dim]
    }

    /// The input index row `i` claims (what an `index` field says): its
    /// position, unless a shuffle or duplicate fault changed it.
    pub fn index(&self, i: usize) -> usize {
        self.plan[i].index
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.plan.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.plan.is_empty()
    }

    /// The number of floats in every row together.
    pub fn floats(&self) -> usize {
        self.flat.len()
    }

    /// Serializes as a JSON array of float arrays (`[[0.1, ...], ...]`).
    pub fn as_json_arrays(&self) -> JsonRows<'_> {
        JsonRows(self)
    }
}

/// [`Rows`] serialized as a JSON array of float arrays (Ollama's `embeddings`).
#[derive(Debug, Clone, Copy)]
pub struct JsonRows<'a>(&'a Rows);

impl serde::Serialize for JsonRows<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for i in 0..self.0.len() {
            seq.serialize_element(self.0.row(i))?;
        }
        seq.end()
    }
}
