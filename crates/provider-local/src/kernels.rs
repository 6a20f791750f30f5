//! CPU kernels for the part of the forward pass where candle's generic
//! ops are slow on small per-head matrices: self-attention over a packed
//! batch (sequences laid end to end, no padding).
//!
//! candle's batched matmul runs one multi-threaded gemm per (sequence,
//! head) with transposed, then copied, Q/K/V; here every (sequence) is one
//! task on the compute pool, each head two single-threaded gemms that read
//! Q, K and V in place from the fused QKV projection (strides, no copies),
//! and the softmax uses a vectorisable exp.
#![allow(unsafe_code)]

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// One sequence of a packed batch: its first row and its number of tokens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// Multi-head self-attention of every segment.
///
/// `qkv` is `[tokens, 3 * hidden]` row-major (Q, then K, then V columns);
/// the result is `[tokens, hidden]` row-major. Each segment attends only to
/// its own tokens, so no mask is needed.
pub(crate) fn attention(
    qkv: &[f32],
    segments: &[Segment],
    hidden: usize,
    heads: usize,
) -> Vec<f32> {
    let tokens: usize = segments.iter().map(|s| s.len).sum();
    assert_eq!(qkv.len(), tokens * 3 * hidden, "qkv shape");
    assert!(heads > 0 && hidden % heads == 0, "heads");
    let d = hidden / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0f32; tokens * hidden];

    // Split the output by segment (contiguous rows): disjoint &mut slices.
    let mut parts: Vec<(Segment, &mut [f32])> = Vec::with_capacity(segments.len());
    let mut rest = out.as_mut_slice();
    for s in segments {
        let (head, tail) = rest.split_at_mut(s.len * hidden);
        parts.push((*s, head));
        rest = tail;
    }
    debug_assert!(rest.is_empty());

    parts.into_par_iter().for_each(|(seg, dst)| {
        let l = seg.len;
        if l == 0 {
            return;
        }
        let rows = &qkv[seg.start * 3 * hidden..(seg.start + l) * 3 * hidden];
        let mut scores = vec![0f32; l * l];
        let rs = (3 * hidden) as isize;
        for h in 0..heads {
            let q = &rows[h * d..];
            let k = &rows[hidden + h * d..];
            let v = &rows[2 * hidden + h * d..];
            // The last element each matrix reads is at (l - 1) * 3 * hidden
            // + d - 1 from its start, inside `rows`.
            debug_assert!((l - 1) * 3 * hidden + d <= v.len());
            // SAFETY: every pointer is derived from a live slice whose
            // length covers all elements addressed by (m, n, k) and the
            // strides given (rows of 3*hidden, d columns; scores l x l;
            // dst l rows of `hidden` with d columns at offset h*d), and dst
            // does not alias the inputs.
            unsafe {
                // scores = scale * Q Kᵀ   (l x d) (d x l)
                gemm(
                    l,
                    l,
                    d,
                    scores.as_mut_ptr(),
                    1,
                    l as isize,
                    false,
                    q.as_ptr(),
                    1,
                    rs,
                    k.as_ptr(),
                    rs,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
            for row in scores.chunks_exact_mut(l) {
                softmax_in_place(row);
            }
            let ctx = &mut dst[h * d..];
            debug_assert!((l - 1) * hidden + d <= ctx.len());
            // SAFETY: as above; ctx has l rows of stride `hidden`, d columns.
            unsafe {
                // ctx = P V   (l x l) (l x d)
                gemm(
                    l,
                    d,
                    l,
                    ctx.as_mut_ptr(),
                    1,
                    hidden as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    l as isize,
                    v.as_ptr(),
                    1,
                    rs,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        }
    });
    out
}

/// `out = gelu(x + bias)` (exact GELU, erf form) row by row, rows split
/// across the compute pool. `x` is `[rows, bias.len()]` row-major.
pub(crate) fn bias_gelu_erf(x: &[f32], bias: &[f32]) -> Vec<f32> {
    let n = bias.len();
    assert!(n > 0 && x.len() % n == 0, "bias_gelu shape");
    let mut out = vec![0f32; x.len()];
    // ~16k elements per task: enough work to pay for the split.
    let rows_per_task = (16_384 / n).max(1);
    out.par_chunks_mut(rows_per_task * n)
        .zip(x.par_chunks(rows_per_task * n))
        .for_each(|(o, x)| {
            for (orow, xrow) in o.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
                for ((o, &v), &b) in orow.iter_mut().zip(xrow).zip(bias) {
                    *o = gelu_erf(v + b);
                }
            }
        });
    out
}

/// Exact GELU, `0.5 x (1 + erf(x / sqrt 2))`, with erf from Abramowitz &
/// Stegun 7.1.26 (absolute error below 1.5e-7), branch-free.
#[inline(always)]
pub(crate) fn gelu_erf(x: f32) -> f32 {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let a = z.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let erf_abs = 1.0 - poly * exp_neg(-a * a);
    let erf = erf_abs.copysign(z);
    0.5 * x * (1.0 + erf)
}

/// `exp(x)` for `x <= 0` (arguments below -87 give 0): Cephes' polynomial
/// after a range reduction by ln 2, relative error about 2e-7. Written
/// without branches or calls so that the loops that use it vectorise.
#[inline(always)]
pub(crate) fn exp_neg(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: rounds to an integer
    let x = x.max(-87.0);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^n from the integer in t's low mantissa bits.
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let scale = f32::from_bits((ni.wrapping_add(127) as u32) << 23);
    e * scale
}

/// Softmax of one row of attention scores, in place.
#[inline]
pub(crate) fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut acc = [0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c.iter_mut()) {
            *v = exp_neg(*v - max);
            *a += *v;
        }
    }
    let mut sum: f32 = 0.0;
    for v in chunks.into_remainder() {
        *v = exp_neg(*v - max);
        sum += *v;
    }
    sum += acc.iter().sum::<f32>();
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        let mut worst = 0f32;
        let mut x = -90.0f32;
        while x <= 0.0 {
            let want = x.exp();
            let got = exp_neg(x);
            let err = if want > 1e-30 {
                ((got - want) / want).abs()
            } else {
                (got - want).abs()
            };
            worst = worst.max(err);
            x += 0.0137;
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(-1000.0), 0.0f32.max(exp_neg(-1000.0)));
    }

    #[test]
    fn gelu_matches_erf_definition() {
        // erf via a high-precision series for reference.
        fn erf64(x: f64) -> f64 {
            let mut sum = 0.0;
            let mut term = x;
            let mut n = 0.0;
            while term.abs() > 1e-17 || n < 5.0 {
                sum += term / (2.0 * n + 1.0);
                n += 1.0;
                term *= -x * x / n;
                if n > 200.0 {
                    break;
                }
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        }
        let mut worst = 0f64;
        let mut x = -6.0f64;
        while x <= 6.0 {
            let want = 0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2));
            let got = f64::from(gelu_erf(x as f32));
            worst = worst.max((got - want).abs());
            x += 0.001;
        }
        assert!(worst < 1e-6, "worst absolute error {worst}");
        let v = bias_gelu_erf(&[1.0, -1.0, 0.5, 2.0], &[0.5, -0.5]);
        assert!((v[0] - gelu_erf(1.5)).abs() < 1e-7 && (v[3] - gelu_erf(1.5)).abs() < 1e-7);
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut row: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let want: Vec<f32> = {
            let m = row.iter().copied().fold(f32::MIN, f32::max);
            let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
            let s: f32 = e.iter().sum();
            e.iter().map(|v| v / s).collect()
        };
        softmax_in_place(&mut row);
        for (a, b) in row.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    /// The kernel against a plain triple loop.
    #[test]
    fn attention_matches_naive() {
        let (hidden, heads) = (8, 2);
        let d = hidden / heads;
        let segments = [Segment { start: 0, len: 3 }, Segment { start: 3, len: 5 }];
        let tokens = 8;
        let qkv: Vec<f32> = (0..tokens * 3 * hidden)
            .map(|i| ((i * 7919) % 113) as f32 / 50.0 - 1.0)
            .collect();
        let got = attention(&qkv, &segments, hidden, heads);
        for s in segments {
            for h in 0..heads {
                for i in 0..s.len {
                    let at = |t: usize, part: usize, j: usize| {
                        qkv[(s.start + t) * 3 * hidden + part * hidden + h * d + j]
                    };
                    let mut sc: Vec<f32> = (0..s.len)
                        .map(|t| {
                            (0..d).map(|j| at(i, 0, j) * at(t, 1, j)).sum::<f32>()
                                / (d as f32).sqrt()
                        })
                        .collect();
                    let m = sc.iter().copied().fold(f32::MIN, f32::max);
                    sc.iter_mut().for_each(|v| *v = (*v - m).exp());
                    let sum: f32 = sc.iter().sum();
                    for j in 0..d {
                        let want: f32 = (0..s.len).map(|t| sc[t] / sum * at(t, 2, j)).sum();
                        let g = got[(s.start + i) * hidden + h * d + j];
                        assert!((g - want).abs() < 1e-5, "{g} vs {want}");
                    }
                }
            }
        }
    }
}
