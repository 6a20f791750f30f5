//! The vectors of an embedding answer, computed once into one buffer.

use embeddings_mock::fill_vector;

use super::faults::RowPlan;

/// The rows of an answer: the plan (after the row faults) and their vectors,
/// back to back in one buffer.
#[derive(Debug)]
pub(crate) struct Rows {
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
            if row.nan {
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

    /// The vector of row `i`.
    pub(crate) fn row(&self, i: usize) -> &[f32] {
        &self.flat[self.offsets[i]..self.offsets[i] + self.plan[i].dim]
    }

    pub(crate) fn len(&self) -> usize {
        self.plan.len()
    }

    /// The number of floats in every row together.
    pub(crate) fn floats(&self) -> usize {
        self.flat.len()
    }
}

/// Serializes as a JSON array of float arrays (Ollama's `embeddings`).
#[derive(Debug)]
pub(crate) struct FloatRows<'a>(pub(crate) &'a Rows);

impl serde::Serialize for FloatRows<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for i in 0..self.0.len() {
            seq.serialize_element(self.0.row(i))?;
        }
        seq.end()
    }
}
