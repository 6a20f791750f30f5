//! The numerical parts: the uncentred PCA of the teacher's sentence
//! vectors, the regression of token vectors onto them (ridge, solved by
//! conjugate gradients, every column at once), and the measures (Spearman,
//! top-k overlap). Everything is sequential in a fixed order, so the same
//! inputs give the same bits.

use nalgebra::{DMatrix, SymmetricEigen};

/// A sparse row-normalised bag of tokens per sentence: `A[i, t]` =
/// count of `t` in sentence `i` / its token count.
pub(crate) struct Bags {
    /// Offsets into `tokens`/`weights`, one more than sentences.
    offsets: Vec<usize>,
    tokens: Vec<u32>,
    weights: Vec<f32>,
}

impl Bags {
    pub(crate) fn new(sentences: &[Vec<u32>]) -> Bags {
        let mut offsets = vec![0];
        let mut tokens = Vec::new();
        let mut weights = Vec::new();
        for s in sentences {
            let mut ids = s.clone();
            ids.sort_unstable();
            let n = ids.len().max(1) as f32;
            let mut i = 0;
            while i < ids.len() {
                let mut j = i;
                while j < ids.len() && ids[j] == ids[i] {
                    j += 1;
                }
                tokens.push(ids[i]);
                weights.push((j - i) as f32 / n);
                i = j;
            }
            offsets.push(tokens.len());
        }
        Bags {
            offsets,
            tokens,
            weights,
        }
    }

    fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// `out = A · x` (`x`: vocab × d, `out`: sentences × d).
    fn mul(&self, x: &[f32], d: usize, out: &mut [f32]) {
        out.fill(0.0);
        for i in 0..self.rows() {
            let o = &mut out[i * d..(i + 1) * d];
            for k in self.offsets[i]..self.offsets[i + 1] {
                let t = self.tokens[k] as usize;
                let w = self.weights[k];
                for (a, &b) in o.iter_mut().zip(&x[t * d..(t + 1) * d]) {
                    *a += w * b;
                }
            }
        }
    }

    /// `out = Aᵀ · z` (`z`: sentences × d, `out`: vocab × d).
    fn mul_t(&self, z: &[f32], d: usize, out: &mut [f32]) {
        out.fill(0.0);
        for i in 0..self.rows() {
            let zi = &z[i * d..(i + 1) * d];
            for k in self.offsets[i]..self.offsets[i + 1] {
                let t = self.tokens[k] as usize;
                let w = self.weights[k];
                for (a, &b) in out[t * d..(t + 1) * d].iter_mut().zip(zi) {
                    *a += w * b;
                }
            }
        }
    }
}

/// The top `k` eigenvectors (as columns, `n × k`, row-major) of the
/// uncentred second moment of `vectors` (`rows × n`): the projection that
/// keeps inner products best. Signs fixed so each column's largest entry is
/// positive.
pub(crate) fn pca(vectors: &[f32], n: usize, k: usize) -> Vec<f32> {
    let rows = vectors.len() / n;
    let mut m = DMatrix::<f64>::zeros(n, n);
    for r in 0..rows {
        let v = &vectors[r * n..(r + 1) * n];
        for i in 0..n {
            let vi = f64::from(v[i]);
            for j in i..n {
                m[(i, j)] += vi * f64::from(v[j]);
            }
        }
    }
    for i in 0..n {
        for j in 0..i {
            m[(i, j)] = m[(j, i)];
        }
    }
    let eig = SymmetricEigen::new(m);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let mut p = vec![0f32; n * k];
    for (c, &e) in order.iter().take(k).enumerate() {
        let col = eig.eigenvectors.column(e);
        let mut big = 0usize;
        for i in 0..n {
            if col[i].abs() > col[big].abs() {
                big = i;
            }
        }
        let sign = if col[big] < 0.0 { -1.0 } else { 1.0 };
        for i in 0..n {
            p[i * k + c] = (sign * col[i]) as f32;
        }
    }
    p
}

/// `x · p` for row vectors `x` (`rows × n`) and `p` (`n × k`).
pub(crate) fn project(x: &[f32], n: usize, p: &[f32], k: usize) -> Vec<f32> {
    let rows = x.len() / n;
    let mut out = vec![0f32; rows * k];
    for r in 0..rows {
        let o = &mut out[r * k..(r + 1) * k];
        for i in 0..n {
            let v = x[r * n + i];
            for (a, &b) in o.iter_mut().zip(&p[i * k..(i + 1) * k]) {
                *a += v * b;
            }
        }
    }
    out
}

/// Ridge regression of the token table towards the targets:
/// minimise `‖A·E − Y‖² + λ‖E − E₀‖²` by `iterations` steps of conjugate
/// gradients on the normal equations, each of the `d` columns its own
/// system, started from `E₀`. Calls `each(iteration, &E)` every `every`
/// steps (for early stopping).
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
pub(crate) fn ridge(
    bags: &Bags,
    targets: &[f32],
    e0: &[f32],
    d: usize,
    lambda: f32,
    iterations: usize,
    every: usize,
    mut each: impl FnMut(usize, &[f32]),
) -> Vec<f32> {
    let vocab = e0.len() / d;
    let n = bags.rows();
    let mut x = e0.to_vec();
    let mut tmp = vec![0f32; n * d];
    // r = Aᵀ(Y − A·E₀) (the λ term is zero at E₀).
    bags.mul(&x, d, &mut tmp);
    for (t, &y) in tmp.iter_mut().zip(targets) {
        *t = y - *t;
    }
    let mut r = vec![0f32; vocab * d];
    bags.mul_t(&tmp, d, &mut r);
    let mut p = r.clone();
    let mut q = vec![0f32; vocab * d];
    let col_dot = |a: &[f32], b: &[f32]| {
        let mut s = vec![0f64; d];
        for (ra, rb) in a.chunks_exact(d).zip(b.chunks_exact(d)) {
            for c in 0..d {
                s[c] += f64::from(ra[c]) * f64::from(rb[c]);
            }
        }
        s
    };
    let mut rr = col_dot(&r, &r);
    for it in 1..=iterations {
        bags.mul(&p, d, &mut tmp);
        bags.mul_t(&tmp, d, &mut q);
        for (qv, &pv) in q.iter_mut().zip(&p) {
            *qv += lambda * pv;
        }
        let pq = col_dot(&p, &q);
        let alpha: Vec<f32> = (0..d)
            .map(|c| {
                if pq[c] > 0.0 {
                    (rr[c] / pq[c]) as f32
                } else {
                    0.0
                }
            })
            .collect();
        for row in 0..vocab {
            for c in 0..d {
                let k = row * d + c;
                x[k] += alpha[c] * p[k];
                r[k] -= alpha[c] * q[k];
            }
        }
        let rr_new = col_dot(&r, &r);
        let beta: Vec<f32> = (0..d)
            .map(|c| {
                if rr[c] > 0.0 {
                    (rr_new[c] / rr[c]) as f32
                } else {
                    0.0
                }
            })
            .collect();
        for row in 0..vocab {
            for c in 0..d {
                let k = row * d + c;
                p[k] = r[k] + beta[c] * p[k];
            }
        }
        rr = rr_new;
        if every > 0 && it % every == 0 {
            each(it, &x);
        }
    }
    x
}

/// Cosine of two vectors (0 when either is zero).
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += f64::from(x) * f64::from(y);
        aa += f64::from(x) * f64::from(x);
        bb += f64::from(y) * f64::from(y);
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0f64; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation (ties averaged).
pub(crate) fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    ab / (aa.sqrt() * bb.sqrt())
}

/// The indices of the `k` rows of `corpus` (`rows × d`, unit rows) most
/// similar to `q`, best first (ties by index).
pub(crate) fn top_k(corpus: &[f32], d: usize, q: &[f32], k: usize) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = corpus
        .chunks_exact(d)
        .enumerate()
        .map(|(i, row)| (row.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), i))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_a_monotone_map_is_one_and_of_its_reverse_minus_one() {
        let a = [0.1, 0.5, 0.3, 0.9, 0.2];
        let b: Vec<f64> = a.iter().map(|x: &f64| x.powi(3)).collect();
        assert!((spearman(&a, &b) - 1.0).abs() < 1e-12);
        let c: Vec<f64> = a.iter().map(|x| -x).collect();
        assert!((spearman(&a, &c) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn ridge_recovers_an_exactly_determined_table() {
        // Three tokens, sentences that pin each down; targets from a known table.
        let d = 2;
        let truth = [1.0f32, 0.0, 0.0, 1.0, 0.5, 0.5];
        let sents = vec![vec![0u32], vec![1], vec![2], vec![0, 1], vec![1, 2, 2]];
        let bags = Bags::new(&sents);
        let mut y = vec![0f32; sents.len() * d];
        bags.mul(&truth, d, &mut y);
        let e = ridge(&bags, &y, &[0.0; 6], d, 1e-6, 20, 0, |_, _| {});
        for (a, b) in e.iter().zip(&truth) {
            assert!((a - b).abs() < 1e-3, "{e:?}");
        }
    }

    #[test]
    fn pca_keeps_the_dominant_direction() {
        let v = [3.0f32, 0.0, 0.0, -2.0, 0.1, 0.0, 1.0, 0.0, 0.2];
        let p = pca(&v, 3, 1);
        assert!((p[0].abs() - 1.0).abs() < 1e-3 && p[0] > 0.0, "{p:?}");
    }
}
