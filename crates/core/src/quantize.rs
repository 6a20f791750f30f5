//! The quantisations this workspace computes from `f32` vectors.
//!
//! * binary / ubinary (computed client-side for every provider that does not
//!   produce them): bit = component > 0, packed 8 per byte, most significant
//!   bit first (as `numpy.packbits` does); `Ubinary` keeps the byte, `Binary`
//!   stores it minus 128 as a signed byte (as Cohere defines them). A last
//!   byte of a dimension that is not a multiple of 8 is padded with 0 bits.
//! * int8 / uint8 (what the mock and the fake servers answer, so that tests
//!   can check every quantized row): `int8 = round(127 · x)` clamped to
//!   `-127..=127`, `uint8 = int8 + 128`. Providers that quantize natively use
//!   their own calibration.
//!
//! ```
//! use embeddings_core::quantize;
//! let mut bits = [0u8; 2];
//! quantize::pack_bits(&[0.5, -0.1, 0.0, 0.2, 1.0, -1.0, 0.3, 0.3, 0.9], &mut bits);
//! assert_eq!(bits, [0b1001_1011, 0b1000_0000]);
//! assert_eq!(quantize::binary_byte(0b1001_1011), 0b1001_1011_u8 as i8 ^ i8::MIN);
//! assert_eq!(quantize::int8(0.5), 64);
//! assert_eq!(quantize::uint8(-1.0), 1);
//! ```

/// `round(127 · x)` clamped to `-127..=127` (NaN gives 0).
#[inline]
pub fn int8(x: f32) -> i8 {
    let v = (x * 127.0).round();
    if v.is_nan() {
        0
    } else {
        v.clamp(-127.0, 127.0) as i8
    }
}

/// [`int8`] plus 128.
#[inline]
pub fn uint8(x: f32) -> u8 {
    (i16::from(int8(x)) + 128) as u8
}

/// A packed ubinary byte as the signed `binary` byte (the value minus 128).
#[inline]
pub fn binary_byte(ubinary: u8) -> i8 {
    (ubinary ^ 0x80) as i8
}

/// Packs `row` into `out` (`row.len().div_ceil(8)` bytes): bit = component
/// > 0, most significant bit first.
pub fn pack_bits(row: &[f32], out: &mut [u8]) {
    debug_assert_eq!(out.len(), row.len().div_ceil(8));
    for (byte, chunk) in out.iter_mut().zip(row.chunks(8)) {
        let mut b = 0u8;
        for (j, &x) in chunk.iter().enumerate() {
            b |= u8::from(x > 0.0) << (7 - j);
        }
        *byte = b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_is_rounded_and_clamped() {
        assert_eq!(int8(1.0), 127);
        assert_eq!(int8(-1.0), -127);
        assert_eq!(int8(2.0), 127);
        assert_eq!(int8(0.0), 0);
        assert_eq!(int8(f32::NAN), 0);
        assert_eq!(uint8(0.0), 128);
        assert_eq!(uint8(1.0), 255);
    }

    #[test]
    fn bits_are_msb_first_and_padded() {
        let mut out = [0u8; 1];
        pack_bits(&[1.0, 0.0, 0.0], &mut out);
        assert_eq!(out, [0b1000_0000]);
        pack_bits(&[-1.0, -1.0, 1.0], &mut out);
        assert_eq!(out, [0b0010_0000]);
        assert_eq!(binary_byte(0), -128);
        assert_eq!(binary_byte(255), 127);
    }
}
