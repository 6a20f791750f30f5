//! Strict JSON numbers, correctly rounded to `f32`, for the providers'
//! response decoders (one implementation instead of one per provider).
//!
//! [`parse_f32`] reads exactly the JSON number grammar (RFC 8259 §6):
//! an optional `-`, an integer part without leading zeros, an optional
//! fraction with at least one digit and an optional exponent with at least
//! one digit. Anything else (`+1`, `.5`, `1.`, `01`, `inf`, `NaN`, ...) is
//! refused. The result is bit for bit what `str::parse::<f32>` gives for the
//! same text: values beyond `f32` come out infinite, tiny ones as zero or a
//! subnormal, so a caller that wants finite values checks them itself.
//!
//! ```
//! use embeddings_core::json_number::parse_f32;
//!
//! let text = b"[0.25,-1e-3]";
//! assert_eq!(parse_f32(text, 1), Some((0.25, 5)));
//! assert_eq!(parse_f32(text, 6), Some((-1e-3, 11)));
//! assert_eq!(parse_f32(b"1e39", 0), Some((f32::INFINITY, 4)));
//! assert_eq!(parse_f32(b".5", 0), None);
//! assert_eq!(parse_f32(b"01", 0), None);
//! ```

/// Parses the JSON number that starts at `bytes[start]`; returns it,
/// correctly rounded to `f32`, and the index just after it. `None` when no
/// JSON number starts there (or `start` is out of range); the number ends
/// where its grammar does, so the caller checks what follows (`,`, `]`, ...).
///
/// Fastest path: `-?0.ddd` with at most 13 fraction digits and no
/// exponent (the shortest text of most embedding components), read from
/// one 16-byte window without a loop: with SSE2 on x86-64 (part of its
/// baseline, so no detection at run time), with 64-bit integer arithmetic
/// elsewhere (see `zero_point_sse2` and `zero_point_swar`).
///
/// Fast path (Clinger): a mantissa of at most 19 significant digits is
/// exact in `u64`; when it is below 2^53 and the power of ten is at most
/// 22, `m * 10^e` (or `m / 10^-e`) is one correctly rounded `f64`
/// operation, whose rounding to `f32` is correct unless it lies exactly on
/// an `f32` midpoint. Longer mantissas (17-digit numbers printed from
/// `f64`) give an `f64` within 2 ulp, correct for `f32` unless within a few
/// ulp of a midpoint. Those rare cases, and every other shape, go to the
/// standard library's correctly rounded parser.
#[inline(always)]
pub fn parse_f32(bytes: &[u8], start: usize) -> Option<(f32, usize)> {
    if let Some(r) = zero_point(bytes, start) {
        return Some(r);
    }
    general(bytes, start)
}

/// The fastest path of [`parse_f32`] alone, for loops over many numbers
/// that want to skip their per-number checks when it answers: `Some` only
/// for `-?0.ddd` (at most 13 fraction digits, no exponent, 16 bytes from
/// `start` inside `bytes`), and then exactly what [`parse_f32`] gives, a
/// finite value below 1 in magnitude. `None` says nothing about the text:
/// ask [`parse_f32`].
///
/// ```
/// use embeddings_core::json_number::{parse_f32, parse_f32_short};
///
/// let text = b"[-0.0125,1e-3,0.5]              ";
/// assert_eq!(parse_f32_short(text, 1), Some((-0.0125, 8)));
/// assert_eq!(parse_f32_short(text, 9), None);
/// assert_eq!(parse_f32(text, 9), Some((1e-3, 13)));
/// ```
#[inline(always)]
pub fn parse_f32_short(bytes: &[u8], start: usize) -> Option<(f32, usize)> {
    zero_point(bytes, start)
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use zero_point_sse2 as zero_point;
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
use zero_point_swar as zero_point;

/// Every shape the fast path of [`parse_f32`] leaves.
#[inline(never)]
fn general(b: &[u8], start: usize) -> Option<(f32, usize)> {
    let mut i = start;
    let neg = b.get(i) == Some(&b'-');
    i += usize::from(neg);
    let int_start = i;
    let mut mant: u64 = 0;
    match b.get(i) {
        // Most embedding components are below 1: an integer part of one `0`,
        // which JSON allows no digit after.
        Some(b'0') => {
            i += 1;
            if b.get(i).is_some_and(u8::is_ascii_digit) {
                return None;
            }
        }
        Some(b'1'..=b'9') => (mant, i) = digit_run(b, i, 0),
        _ => return None,
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        let frac_start = i + 1;
        (mant, i) = digit_run(b, frac_start, mant);
        frac_digits = i - frac_start;
        if frac_digits == 0 {
            return None;
        }
    }
    let mut exp: i64 = 0;
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        let eneg = b.get(i) == Some(&b'-');
        i += usize::from(matches!(b.get(i), Some(b'-' | b'+')));
        let exp_start = i;
        while let Some(&c) = b.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            // Saturate: far beyond any f32 either way, and no overflow.
            exp = (exp * 10 + i64::from(d)).min(1 << 40);
            i += 1;
        }
        if i == exp_start {
            return None;
        }
        if eneg {
            exp = -exp;
        }
    }
    // `mant` accumulated with wrapping arithmetic: it is exact when there
    // are at most 19 significant digits (leading zeros added nothing).
    let total = int_digits + frac_digits;
    if total <= 19 || significant_digits(&b[int_start..i], total) <= 19 {
        if mant == 0 {
            return Some((if neg { -0.0 } else { 0.0 }, i));
        }
        let e10 = exp - frac_digits as i64;
        if (-22..=22).contains(&e10) {
            let m = mant as f64;
            let y = if e10 < 0 {
                m / POW10[(-e10) as usize]
            } else {
                m * POW10[e10 as usize]
            };
            // An f32 midpoint has exactly bit 28 set below f32 precision.
            // With an exact mantissa `y` is correctly rounded and only an
            // exact midpoint is ambiguous; with a longer one `y` is within
            // 2 ulp, so anything near a midpoint takes the slow path. `y`
            // is at least 1e-22 here, far above the f32 subnormals.
            let low = y.to_bits() & 0x1fff_ffff;
            let near_midpoint = if mant <= (1u64 << 53) {
                low == 0x1000_0000
            } else {
                low.abs_diff(0x1000_0000) <= 8
            };
            if !near_midpoint {
                let v = y as f32;
                return Some((if neg { -v } else { v }, i));
            }
        }
    }
    slow(&b[start..i]).map(|v| (v, i))
}

/// The common shape `-?0.ddd` at `b[start]`, without an exponent, with 1
/// to 13 fraction digits (12 after a `-`) and the byte after them inside
/// one 16-byte window, read without a branch on the sign or the number of
/// digits: with `0.` (or `-0.`) read as `0`s and the bytes after the digits
/// too, the window is the fraction times 10^14 (10^13), an integer below
/// 10^14 and so exact in `f64`, and the division by that exact power of
/// ten is one correctly rounded operation. `None` for every other shape (and for an
/// exact `f32` midpoint), which the general path handles.
///
/// The position of the next number depends on this one's end, so the end
/// is found with as short a chain of operations as possible from the one
/// load: the first three bytes count as digits there (and are checked
/// apart), and the two halves of the window are tested independently.
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
#[inline(always)]
fn zero_point_swar(b: &[u8], start: usize) -> Option<(f32, usize)> {
    let chunk: &[u8; 16] = b.get(start..start.wrapping_add(16))?.try_into().ok()?;
    // Two loads straight from the text (no copy of the window to reload).
    let (lo, hi) = chunk.split_at(8);
    let lo = u64::from_le_bytes(lo.try_into().ok()?);
    let hi = u64::from_le_bytes(hi.try_into().ok()?);
    let v = u128::from(hi) << 64 | u128::from(lo);
    // The end: the first byte that is not a digit after the third.
    let nd_lo = non_digits(lo & !0xff_ffff | 0x30_3030);
    let nd_hi = non_digits(hi);
    let end_in = if nd_lo != 0 {
        nd_lo.trailing_zeros() / 8
    } else {
        8 + nd_hi.trailing_zeros() / 8
    } as usize;
    // The shape: `0.d` or `-0.d`, and the end inside the window, not at an
    // exponent.
    let digit_at = |k: u32| (lo >> (8 * k)) as u8 as char;
    let neg = lo & 0xff_ffff == u64::from(u32::from_le_bytes(*b"-0.\0"));
    let pos = lo & 0xffff == u64::from(u16::from_le_bytes(*b"0."));
    if !((neg && digit_at(3).is_ascii_digit()) || (pos && digit_at(2).is_ascii_digit()))
        || end_in > 15
        || chunk[end_in & 15] | 0x20 == b'e'
    {
        return None;
    }
    // The sign and `0.` read as leading zeros, the bytes from the end on as
    // trailing ones.
    let (prefix, den) = if neg {
        (0xff_ffff, 1e13)
    } else {
        (0xffff, 1e14)
    };
    let w = v & !prefix | ZEROS_128 & prefix;
    let nd = u128::from(nd_hi) << 64 | u128::from(nd_lo);
    let keep = (nd ^ nd.wrapping_sub(1)) >> 8;
    let digits = (w & keep) | (ZEROS_128 & !keep);
    let scaled = eight_digits(digits as u64) * 100_000_000 + eight_digits((digits >> 64) as u64);
    let m = scaled as f64;
    // Zero comes out as a zero of the right sign.
    let y = if neg { -m } else { m } / den;
    // Correctly rounded; only an exact f32 midpoint is ambiguous.
    if y.to_bits() & 0x1fff_ffff == 0x1000_0000 {
        return None;
    }
    Some((y as f32, start + end_in))
}

/// [`zero_point_swar`] with SSE2: the same shape and the same value, with
/// fewer instructions (a float array is millions of these). The 16 bytes
/// are one register; the digits are found with one compare, the end as the
/// first byte after the third that is not a digit, and the window's digits
/// are turned into an integer with two multiply-adds instead of two
/// chains of 64-bit multiplications.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn zero_point_sse2(b: &[u8], start: usize) -> Option<(f32, usize)> {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi16, _mm_and_si128, _mm_cmpeq_epi8, _mm_cvtsi128_si64, _mm_loadu_si128,
        _mm_madd_epi16, _mm_min_epu8, _mm_movemask_epi8, _mm_mullo_epi16, _mm_packs_epi32,
        _mm_set1_epi8, _mm_set1_epi16, _mm_set1_epi32, _mm_srli_epi16, _mm_sub_epi8,
    };
    let window: &[u8; 16] = b.get(start..start.wrapping_add(16))?.try_into().ok()?;
    // SAFETY: SSE2 is enabled at compile time (the `cfg` above), and both
    // loads read 16 bytes through a reference to 16 bytes.
    #[allow(unsafe_code)]
    unsafe {
        let v = _mm_loadu_si128(window.as_ptr().cast::<__m128i>());
        let lo = _mm_cvtsi128_si64(v) as u64;
        let neg = lo & 0xff_ffff == u64::from(u32::from_le_bytes(*b"-0.\0"));
        let pos = lo & 0xffff == u64::from(u16::from_le_bytes(*b"0."));
        // Each byte minus '0': a digit is what stays at most 9.
        let t = _mm_sub_epi8(v, _mm_set1_epi8(b'0' as i8));
        let is_digit = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(9)), t);
        let digit_bits = _mm_movemask_epi8(is_digit) as u32;
        // The end: the first byte after the third that is not a digit (the
        // third is the `.` of `-0.` or the first digit of `0.`, checked apart).
        let end = ((!digit_bits & 0xfff8) | 0x1_0000).trailing_zeros() as usize;
        let first_digit = digit_bits >> (2 + u32::from(neg)) & 1 == 1;
        if !(neg | pos) || !first_digit || end > 15 || window[end & 15] | 0x20 == b'e' {
            return None;
        }
        // The digits before the end, as values; the sign, `0` and `.` are 0
        // (the `0` is a digit of value 0, the others are not digits).
        let before_end = &BEFORE_END[16 - end..32 - end];
        let keep = _mm_loadu_si128(before_end.as_ptr().cast::<__m128i>());
        let d = _mm_and_si128(_mm_and_si128(t, is_digit), keep);
        // Byte pairs to 2-digit values (the low byte of 10·first + second), to
        // 4-digit values, to two 8-digit values, and to the 16-digit window.
        let x = _mm_add_epi16(_mm_mullo_epi16(d, _mm_set1_epi16(10)), _mm_srli_epi16(d, 8));
        let pairs = _mm_and_si128(x, _mm_set1_epi16(0xff));
        let quads = _mm_madd_epi16(pairs, _mm_set1_epi32(100 | 1 << 16));
        let quads = _mm_packs_epi32(quads, quads);
        let eights =
            _mm_cvtsi128_si64(_mm_madd_epi16(quads, _mm_set1_epi32(10_000 | 1 << 16))) as u64;
        // Below 10^14: exact in f64, and as i64 one conversion instruction.
        let whole = (eights & 0xffff_ffff) * 100_000_000 + (eights >> 32);
        // The sign rides on the exact power of ten: one correctly rounded
        // division, and `-0.0` comes out negative.
        let y = whole as i64 as f64 / if neg { -1e13 } else { 1e14 };
        // Correctly rounded; only an exact f32 midpoint is ambiguous.
        if y.to_bits() & 0x1fff_ffff == 0x1000_0000 {
            return None;
        }
        Some((y as f32, start + end))
    }
}

/// Sixteen `0xff` then sixteen `0`: 16 bytes from `16 - n` keep the first
/// `n` of a window.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
static BEFORE_END: [u8; 32] = {
    let mut t = [0u8; 32];
    let mut k = 0;
    while k < 16 {
        t[k] = 0xff;
        k += 1;
    }
    t
};

/// Sixteen ASCII '0's.
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
const ZEROS_128: u128 = 0x3030_3030_3030_3030_3030_3030_3030_3030;

/// The standard library's correctly rounded parser, for what the fast
/// path leaves (kept out of line so that the fast path inlines).
#[cold]
#[inline(never)]
fn slow(number: &[u8]) -> Option<f32> {
    // The text is ASCII by construction.
    std::str::from_utf8(number).ok()?.parse::<f32>().ok()
}

/// Significant digits among the `total` digits of `number` (a JSON number
/// without its sign): all but the leading zeros. Only called for long
/// mantissas.
#[cold]
fn significant_digits(number: &[u8], total: usize) -> usize {
    let zeros = number
        .iter()
        .take_while(|&&c| c == b'0' || c == b'.')
        .filter(|&&c| c == b'0')
        .count();
    total - zeros
}

/// Appends the run of ASCII digits at `t[i..]` to `mantissa` (wrapping;
/// callers count digits to know when it is exact) and returns it with the
/// index after the run.
///
/// Eight bytes at a time, without a branch per digit (the SWAR method of
/// fast_float): the bytes that are not digits are found with two additions,
/// the run's length from the first of them, and the digits are converted
/// with three multiplications. Variable-length runs are what make a number
/// parser slow; here a float costs one or two predictable iterations.
#[inline]
fn digit_run(t: &[u8], mut i: usize, mut mantissa: u64) -> (u64, usize) {
    // Up to 15 digits from 16 bytes at once: every float component an
    // embedding server writes as f32 (at most 9 significant digits).
    if let Some(Ok(chunk)) = t.get(i..i.wrapping_add(16)).map(<[u8; 16]>::try_from) {
        let v = u128::from_le_bytes(chunk);
        let (lo, hi) = (v as u64, (v >> 64) as u64);
        let n_lo = (non_digits(lo).trailing_zeros() / 8) as usize;
        if n_lo < 8 {
            let m = mantissa
                .wrapping_mul(POW10_U64[n_lo])
                .wrapping_add(eight_digits(align(lo, n_lo)));
            return (m, i + n_lo);
        }
        let n_hi = (non_digits(hi).trailing_zeros() / 8) as usize;
        if n_hi < 8 {
            let m = mantissa
                .wrapping_mul(100_000_000)
                .wrapping_add(eight_digits(lo))
                .wrapping_mul(POW10_U64[n_hi])
                .wrapping_add(eight_digits(align(hi, n_hi)));
            return (m, i + 8 + n_hi);
        }
    }
    while let Some(chunk) = t.get(i..i.wrapping_add(8)) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let v = u64::from_le_bytes(chunk);
        let n = (non_digits(v).trailing_zeros() / 8) as usize; // 8 when all are digits
        if n == 8 {
            mantissa = mantissa
                .wrapping_mul(100_000_000)
                .wrapping_add(eight_digits(v));
            i += 8;
            continue;
        }
        mantissa = mantissa
            .wrapping_mul(POW10_U64[n])
            .wrapping_add(eight_digits(align(v, n)));
        return (mantissa, i + n);
    }
    // The last bytes of the text.
    while let Some(&c) = t.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    (mantissa, i)
}

/// The high bit of each byte of `v` that is not an ASCII digit.
#[inline]
fn non_digits(v: u64) -> u64 {
    let a = v.wrapping_add(0x4646_4646_4646_4646);
    let b = v.wrapping_sub(0x3030_3030_3030_3030);
    (a | b) & 0x8080_8080_8080_8080
}

/// The first `n <= 8` bytes of `v` moved to the top (least significant
/// digits) and the bottom filled with '0's, which read as leading zeros.
/// Shifts in two halves, so that n = 0 and n = 8 need no branch.
#[inline]
fn align(v: u64, n: usize) -> u64 {
    let (keep, fill) = ((8 - n) * 4, n * 4);
    ((v << keep) << keep) | ((0x3030_3030_3030_3030 >> fill) >> fill)
}

/// The value of 8 ASCII digits packed little-endian in `v` (first digit in
/// the lowest byte).
#[inline]
fn eight_digits(v: u64) -> u64 {
    let b = v.wrapping_sub(0x3030_3030_3030_3030);
    let v = b.wrapping_mul(10).wrapping_add(b >> 8);
    let v1 = (v & 0x0000_00FF_0000_00FF).wrapping_mul(100 + (1_000_000 << 32));
    let v2 = ((v >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32));
    u64::from((v1.wrapping_add(v2) >> 32) as u32)
}

/// Integer powers of ten.
const POW10_U64: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// Exact powers of ten in `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The value of `s` when all of it is one JSON number.
    fn num(s: &str) -> Option<f32> {
        match parse_f32(s.as_bytes(), 0) {
            Some((v, end)) if end == s.len() => Some(v),
            _ => None,
        }
    }

    fn std_bits(s: &str) -> u32 {
        s.parse::<f32>().unwrap().to_bits()
    }

    #[test]
    fn numbers_parse_like_the_standard_library() {
        for s in [
            "0",
            "-0",
            "1",
            "-1.5",
            "0.1",
            "1e2",
            "1E+2",
            "25e-1",
            "0.000001",
            "1e-7",
            "-0.006929283495992422",
            "0.0069292834959924220",
            "0.000000000000000000000000000001",
            "123456789012345678901234567890",
            "0.0000000000000000000000000000000000000000000014",
            "3.4028235e38",
            "1.17549435e-38",
            "1e-45",
            "2.5e-40",
            "1e-50",
            "16777217",
            "0.30000001192092896",
            "9007199254740993",
            "12345678901234567890",
            "1.0000000000000000000000000001",
            "0e400",
            "-0.0e-400",
        ] {
            assert_eq!(num(s).map(f32::to_bits), Some(std_bits(s)), "{s}");
        }
        assert_eq!(num("1e39"), Some(f32::INFINITY));
        assert_eq!(num("-1e99999999999"), Some(f32::NEG_INFINITY));
        assert_eq!(num("1e-99999999999"), Some(0.0));
    }

    #[test]
    fn only_the_json_grammar_is_accepted() {
        for bad in [
            "", "-", "x", ".5", "-.5", "1.", "1.e5", "1e", "1e+", "1e-", "null", "\"1\"", "01",
            "-01.5", "00", "+1", "inf", "-inf", "NaN", "nan", "Infinity", " 1", "--1", "-+1",
        ] {
            assert_eq!(parse_f32(bad.as_bytes(), 0), None, "{bad}");
        }
        // A number ends where its grammar does; the caller checks what follows.
        for (text, end) in [
            ("1,", 1),
            ("0.5]", 3),
            ("1.5.3", 3),
            ("1e5e", 3),
            ("-0x1", 2),
            ("2E-3 ", 4),
        ] {
            assert_eq!(
                parse_f32(text.as_bytes(), 0).map(|(_, e)| e),
                Some(end),
                "{text}"
            );
        }
        assert_eq!(parse_f32(b"[1]", 1), Some((1.0, 2)));
        assert_eq!(parse_f32(b"1", 1), None);
        assert_eq!(parse_f32(b"1", usize::MAX), None);
    }

    #[test]
    fn the_fast_paths_answer_the_common_shapes() {
        let fast: &[(&str, Parse)] = &[
            ("swar", zero_point_swar),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            ("sse2", zero_point_sse2),
        ];
        for (text, value, end) in [
            ("0.5,", 0.5f32, 3),
            ("-0.012345679]", -0.012_345_679, 12),
            ("0.0000012345678,", 0.000_001_234_567_8, 15),
            ("-0.0,", -0.0, 4),
        ] {
            let padded = format!("{text}{}", " ".repeat(16));
            for (name, f) in fast {
                let got = f(padded.as_bytes(), 0).map(|(v, e)| (v.to_bits(), e));
                assert_eq!(got, Some((value.to_bits(), end)), "{name} {text}");
            }
        }
        // Shapes left to the general path.
        for text in ["0.5e-3,", "1.5,", "0.12345678901234,", "-0.", "00.5,"] {
            let padded = format!("{text}{}", " ".repeat(16));
            for (name, f) in fast {
                assert_eq!(f(padded.as_bytes(), 0), None, "{name} {text}");
            }
        }
    }

    #[test]
    fn digit_runs() {
        for (text, at, want) in [
            ("12345678", 0, (12_345_678, 8)),
            ("x00000000", 1, (0, 9)),
            ("99999999,", 0, (99_999_999, 8)),
            ("1234567", 0, (1_234_567, 7)),
            ("1234567/xxxxxxxxxx", 0, (1_234_567, 7)),
            ("123:5678xxxxxxxxxx", 0, (123, 3)),
            ("/2345678xxxxxxxxxx", 0, (0, 0)),
            ("0.036156863,0.1", 2, (36_156_863, 11)),
            ("12345678901234567890]", 0, (12_345_678_901_234_567_890, 20)),
            ("", 0, (0, 0)),
            ("1234567890123456", 0, (1_234_567_890_123_456, 16)),
            ("12345678x12345678", 0, (12_345_678, 8)),
            ("123456789012345x", 0, (123_456_789_012_345, 15)),
        ] {
            assert_eq!(digit_run(text.as_bytes(), at, 0), want, "{text}");
        }
        assert_eq!(digit_run(b"12", 0, 7), (712, 2));
        assert_eq!(digit_run(b"123\xb0567xxxxxxxxx", 0, 0), (123, 3));
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// A number parser of this module's shape.
    type Parse = fn(&[u8], usize) -> Option<(f32, usize)>;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn digit_runs_match_the_naive_loop(
            digits in "[0-9]{0,19}",
            tail in "[^0-9]{0,20}",
            pad in 0usize..3,
        ) {
            let text = format!("{}{digits}{tail}", "-".repeat(pad));
            let want = digits.bytes().fold(0u64, |m, c| m.wrapping_mul(10) + u64::from(c - b'0'));
            prop_assert_eq!(digit_run(text.as_bytes(), pad, 0), (want, pad + digits.len()));
        }

        #[test]
        fn any_finite_f32_round_trips_bit_exactly(v in proptest::collection::vec(any::<f32>().prop_filter("finite", |x| x.is_finite()), 1..16)) {
            // Shortest f32 text (serde_json, Go's float32), f64 text (17
            // digits, as Python servers write), and scientific notation.
            for (k, x) in v.iter().enumerate() {
                let wide = f64::from(*x);
                for text in [serde_json::to_string(x).unwrap(), serde_json::to_string(&wide).unwrap(),
                             format!("{x:e}"), format!("{wide:e}")] {
                    let got = num(&text);
                    prop_assert_eq!(got.map(f32::to_bits), Some(x.to_bits()), "{} {}", k, text);
                }
            }
            // As one array, parsed number by number.
            let text = serde_json::to_string(&v).unwrap();
            let (mut i, mut got) = (1, Vec::new());
            while let Some((x, end)) = parse_f32(text.as_bytes(), i) {
                got.push(x);
                i = end + 1;
            }
            prop_assert_eq!(bits(&got), bits(&v));
        }

        #[test]
        fn grammar_texts_round_like_the_standard_library(
            s in r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,2})?"
        ) {
            prop_assert_eq!(num(&s).map(f32::to_bits), Some(std_bits(&s)), "{}", s);
        }

        #[test]
        fn u64_mantissas_round_like_the_standard_library(m in any::<u64>(), e in -60i32..60, neg in any::<bool>(), frac in 0usize..20) {
            let digits = m.to_string();
            let cut = frac.min(digits.len().saturating_sub(1));
            let (a, b) = digits.split_at(digits.len() - cut);
            let sign = if neg { "-" } else { "" };
            let s = if b.is_empty() { format!("{sign}{a}e{e}") } else { format!("{sign}{a}.{b}e{e}") };
            prop_assert_eq!(num(&s).map(f32::to_bits), Some(std_bits(&s)), "{}", s);
        }

        #[test]
        fn near_ties_and_17_digit_texts_round_like_the_standard_library(bits in any::<u32>(), k in 1u64..64) {
            // Decimal texts close to an f32 midpoint, where double rounding bites.
            let x = f32::from_bits(bits & 0x7fff_ffff);
            prop_assume!(x.is_finite() && x > 0.0);
            let next = f32::from_bits(x.to_bits() + 1);
            prop_assume!(next.is_finite());
            let mid = (f64::from(x) + f64::from(next)) / 2.0;
            for t in [format!("{mid:e}"), format!("{:e}", mid * (1.0 + k as f64 * 1e-16)),
                      format!("{:e}", mid * (1.0 - k as f64 * 1e-16)),
                      format!("{mid:.17e}"), format!("{mid:.16e}"), format!("{mid:.8e}"),
                      format!("{}", f64::from(x)), format!("{mid}")] {
                prop_assert_eq!(num(&t).map(f32::to_bits), Some(std_bits(&t)), "{}", t);
            }
        }

        #[test]
        fn never_panics_and_agrees_with_std_on_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..48), start in 0usize..50) {
            if let Some((v, end)) = parse_f32(&b, start) {
                prop_assert!(start < end && end <= b.len());
                let text = std::str::from_utf8(&b[start..end]).unwrap();
                prop_assert_eq!(v.to_bits(), std_bits(text), "{}", text);
            }
        }

        #[test]
        fn the_zero_point_fast_path_agrees_with_the_general_one(
            number in r"-?0\.[0-9]{0,15}",
            tail in r"[-+,\]eE.0-9 x]{0,3}",
            pad in 0usize..16,
        ) {
            // Windows of 16 bytes and more, ending anywhere in or after the number.
            let text = format!("{number}{tail}{}", " ".repeat(pad));
            let b = text.as_bytes();
            let key = |r: Option<(f32, usize)>| r.map(|(v, e)| (v.to_bits(), e));
            let want = general(b, 0);
            prop_assert_eq!(key(parse_f32(b, 0)), key(want), "{:?}", text);
            // Each fast path, where it answers, answers what the general one does.
            let fast: &[(&str, Parse)] = &[
                ("swar", zero_point_swar),
                #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
                ("sse2", zero_point_sse2),
            ];
            for (name, f) in fast {
                if let Some(r) = f(b, 0) {
                    prop_assert_eq!(Some((r.0.to_bits(), r.1)), key(want), "{} {:?}", name, text);
                }
            }
            if let Some((v, end)) = want {
                prop_assert_eq!(v.to_bits(), std_bits(&text[..end]), "{:?}", text);
            }
        }

        #[test]
        fn never_panics_on_number_like_bytes(s in r"[-+0-9.eE]{0,40}", start in 0usize..4) {
            if let Some((v, end)) = parse_f32(s.as_bytes(), start) {
                prop_assert!(start < end && end <= s.len());
                prop_assert_eq!(v.to_bits(), std_bits(&s[start..end]), "{}", &s[start..end]);
            }
        }
    }
}
