//! The deterministic vector of DESIGN.md §4, shared by the mock provider and
//! the fake server so that any test can check every row it gets back.
//!
//! 1. seed = FNV-1a 64-bit over `model`, one `0x00` byte, then `text`.
//! 2. SplitMix64 from the seed; component = `(z >> 40) as f32 / 2^23 - 1`.
//! 3. The first `dimension` components, scaled to unit L2 norm.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64-bit over `model`, a zero byte, and `text`.
#[inline]
pub fn seed(model: &str, text: &str) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in model.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h = h.wrapping_mul(FNV_PRIME); // the 0x00 separator: xor with 0 is a no-op
    for &b in text.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// One SplitMix64 step: advances `state` and returns the next output.
#[inline]
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps a SplitMix64 output to a component in `[-1, 1)`.
#[inline]
fn component(z: u64) -> f32 {
    (z >> 40) as f32 / 8_388_608.0 - 1.0
}

/// Writes the raw (not normalised) components for `seed` into `out`.
#[inline]
pub fn raw_components(seed: u64, out: &mut [f32]) {
    let mut state = seed;
    for x in out.iter_mut() {
        *x = component(splitmix64(&mut state));
    }
}

/// Writes the unit-norm vector of `(model, text)` of dimension `out.len()` into `out`.
///
/// One pass generates the components and sums their squares in four
/// independent accumulators (so the additions overlap instead of waiting on
/// each other), a second scales: the hot path of the mock and the fake server.
#[inline]
pub fn fill_vector(model: &str, text: &str, out: &mut [f32]) {
    let mut state = seed(model, text);
    // Eight f32 partial sums: no conversion per component, and additions
    // that overlap. Their rounding error is far below the 1e-5 tolerance.
    let mut acc = [0f32; 8];
    let mut chunks = out.chunks_exact_mut(8);
    for chunk in &mut chunks {
        for (x, a) in chunk.iter_mut().zip(acc.iter_mut()) {
            let v = component(splitmix64(&mut state));
            *x = v;
            *a += v * v;
        }
    }
    for (x, a) in chunks.into_remainder().iter_mut().zip(acc.iter_mut()) {
        let v = component(splitmix64(&mut state));
        *x = v;
        *a += v * v;
    }
    scale_to_unit(out, acc.iter().map(|a| f64::from(*a)).sum());
}

#[inline]
fn scale_to_unit(v: &mut [f32], sum_of_squares: f64) {
    if sum_of_squares > 0.0 {
        let inv = (1.0 / sum_of_squares.sqrt()) as f32;
        for x in v.iter_mut() {
            *x *= inv;
        }
    }
}

/// The unit-norm vector of `(model, text)` at `dimension`.
///
/// ```
/// let v = embeddings_mock::vector("mock", "hello", 8);
/// assert!((v[0] - 0.464762).abs() < 1e-5);
/// ```
pub fn vector(model: &str, text: &str, dimension: usize) -> Vec<f32> {
    let mut v = vec![0.0; dimension];
    fill_vector(model, text, &mut v);
    v
}

/// Scales `v` to unit L2 norm (left as is when its norm is zero).
#[inline]
pub fn normalize(v: &mut [f32]) {
    let mut acc = [0f64; 4];
    let mut chunks = v.chunks_exact(4);
    for chunk in &mut chunks {
        for (x, a) in chunk.iter().zip(acc.iter_mut()) {
            *a += f64::from(x * x);
        }
    }
    for (x, a) in chunks.remainder().iter().zip(acc.iter_mut()) {
        *a += f64::from(x * x);
    }
    scale_to_unit(v, (acc[0] + acc[1]) + (acc[2] + acc[3]));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn reference_values_of_the_design() {
        assert_eq!(seed("mock", "hello"), 0xd1747c211b1cc0df);
        let mut raw = [0.0; 4];
        raw_components(seed("mock", "hello"), &mut raw);
        close(&raw, &[0.789856, -0.403505, 0.683578, -0.838367]);
        close(
            &vector("mock", "hello", 8),
            &[
                0.464762, -0.237427, 0.402226, -0.493306, 0.221472, -0.061545, 0.305976, 0.419559,
            ],
        );
        assert_eq!(
            seed("text-embedding-3-small", "déjà vu 🌍"),
            0xcdfa809ecd1e3b10
        );
        close(
            &vector("text-embedding-3-small", "déjà vu 🌍", 4),
            &[-0.109552, -0.580843, 0.172196, 0.788015],
        );
        assert_eq!(seed("mock", ""), 0xc94216935701ab71);
        close(&vector("mock", "", 3), &[-0.308048, -0.920147, 0.241737]);
    }

    #[test]
    fn fused_fill_equals_raw_components_then_normalize() {
        for dim in [1, 2, 3, 4, 5, 7, 8, 127, 256, 1536] {
            let mut raw = vec![0.0; dim];
            raw_components(seed("m", "some text"), &mut raw);
            normalize(&mut raw);
            close(&vector("m", "some text", dim), &raw);
        }
    }

    #[test]
    fn shorter_dimension_is_truncated_and_renormalised() {
        let long = vector("m", "t", 64);
        let mut short = long[..16].to_vec();
        normalize(&mut short);
        close(&vector("m", "t", 16), &short);
    }

    proptest::proptest! {
        #[test]
        fn any_vector_has_unit_norm(model in ".{0,12}", text in ".{0,40}", dim in 1usize..300) {
            let v = vector(&model, &text, dim);
            let n: f64 = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
            proptest::prop_assert!((n - 1.0).abs() < 1e-4);
            proptest::prop_assert!(v.iter().all(|x| x.is_finite()));
        }
    }
}
