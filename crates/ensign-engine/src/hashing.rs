//! The hashing behind `fractional`: MurmurHash3 x86 32-bit and the deterministic
//! CBOR encoding that bucketing generation v3 hashes.
//!
//! Both are written here, not taken from a crate, because bucketing must stay
//! bit-exact with flagd forever: the golden vectors in the tests pin them.

/// MurmurHash3, x86 32-bit variant, of `data` with `seed`.
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    let mut hasher = Murmur3::new(seed);
    hasher.write(data);
    hasher.finish()
}

/// MurmurHash3 x86 32-bit over input written in pieces, so bucketing values can
/// be hashed as they are encoded, without a buffer.
#[derive(Debug, Clone)]
pub struct Murmur3 {
    hash: u32,
    pending: [u8; 4],
    pending_len: usize,
    total_len: usize,
}

impl Murmur3 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;

    /// A hasher with `seed`.
    pub fn new(seed: u32) -> Self {
        Murmur3 {
            hash: seed,
            pending: [0; 4],
            pending_len: 0,
            total_len: 0,
        }
    }

    fn mix_block(&mut self, block: [u8; 4]) {
        let k = u32::from_le_bytes(block)
            .wrapping_mul(Self::C1)
            .rotate_left(15)
            .wrapping_mul(Self::C2);
        self.hash ^= k;
        self.hash = self
            .hash
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }

    /// Feeds `data`.
    pub fn write(&mut self, mut data: &[u8]) {
        self.total_len += data.len();
        if self.pending_len > 0 {
            let take = (4 - self.pending_len).min(data.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            if self.pending_len < 4 {
                return;
            }
            self.mix_block(self.pending);
            self.pending_len = 0;
        }
        let mut blocks = data.chunks_exact(4);
        for block in &mut blocks {
            self.mix_block([block[0], block[1], block[2], block[3]]);
        }
        let tail = blocks.remainder();
        self.pending[..tail.len()].copy_from_slice(tail);
        self.pending_len = tail.len();
    }

    /// The hash of everything written.
    pub fn finish(mut self) -> u32 {
        if self.pending_len > 0 {
            let mut k = 0u32;
            for (i, byte) in self.pending[..self.pending_len].iter().enumerate() {
                k |= u32::from(*byte) << (8 * i);
            }
            k = k
                .wrapping_mul(Self::C1)
                .rotate_left(15)
                .wrapping_mul(Self::C2);
            self.hash ^= k;
        }
        // The length is mixed in modulo 2^32, as the reference implementation does.
        let mut hash = self.hash ^ self.total_len as u32;
        hash ^= hash >> 16;
        hash = hash.wrapping_mul(0x85eb_ca6b);
        hash ^= hash >> 13;
        hash = hash.wrapping_mul(0xc2b2_ae35);
        hash ^= hash >> 16;
        hash
    }
}

/// Where encoded bytes go: a buffer, or straight into a hash.
pub trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for Murmur3 {
    fn put(&mut self, bytes: &[u8]) {
        self.write(bytes);
    }
}

/// Maps a 32-bit hash onto `[0, total_weight)`: `(hash × total) >> 32`.
///
/// This is the bucket mapping of generations v2 and v3. `total_weight` is at most
/// `i32::MAX`, so the product fits in 64 bits.
pub fn bucket(hash: u32, total_weight: u32) -> u32 {
    ((u64::from(hash) * u64::from(total_weight)) >> 32) as u32
}

/// Writers of RFC 8949 §4.2.1 core deterministic CBOR.
pub mod cbor {
    use super::Sink;

    /// Writes a major type with its argument in the shortest form.
    pub fn head(out: &mut impl Sink, major: u8, argument: u64) {
        let major = major << 5;
        if argument < 24 {
            out.put(&[major | argument as u8]);
        } else if argument <= u64::from(u8::MAX) {
            out.put(&[major | 24, argument as u8]);
        } else if argument <= u64::from(u16::MAX) {
            out.put(&[major | 25]);
            out.put(&(argument as u16).to_be_bytes());
        } else if argument <= u64::from(u32::MAX) {
            out.put(&[major | 26]);
            out.put(&(argument as u32).to_be_bytes());
        } else {
            out.put(&[major | 27]);
            out.put(&argument.to_be_bytes());
        }
    }

    /// `null`.
    pub fn null(out: &mut impl Sink) {
        out.put(&[0xf6]);
    }

    /// `true` or `false`.
    pub fn bool(out: &mut impl Sink, value: bool) {
        out.put(&[if value { 0xf5 } else { 0xf4 }]);
    }

    /// A UTF-8 text string.
    pub fn text(out: &mut impl Sink, value: &str) {
        head(out, 3, value.len() as u64);
        out.put(value.as_bytes());
    }

    /// An unsigned integer.
    pub fn unsigned(out: &mut impl Sink, value: u64) {
        head(out, 0, value);
    }

    /// A negative integer `-1 - magnitude`.
    pub fn negative(out: &mut impl Sink, magnitude: u64) {
        head(out, 1, magnitude);
    }

    /// A number: whole values in `[-2^63, 2^64)` become integers (so `1.0` ≡ `1`
    /// and `-0.0` ≡ `0`); others the shortest float that keeps the value exactly.
    pub fn number(out: &mut impl Sink, value: f64) {
        // 2^64 and 2^63 as f64; every whole f64 in range converts exactly.
        const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
        const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
        if value.fract() == 0.0 && value.is_finite() {
            if (0.0..TWO_POW_64).contains(&value) {
                unsigned(out, value as u64);
                return;
            }
            if (-TWO_POW_63..0.0).contains(&value) {
                // -1 - n = value, so n = -value - 1, exact for whole values in range.
                negative(out, (-value - 1.0) as u64);
                return;
            }
        }
        float(out, value);
    }

    /// The shortest of half, single and double precision that holds `value` exactly.
    pub fn float(out: &mut impl Sink, value: f64) {
        if let Some(half) = to_half(value) {
            out.put(&[0xf9]);
            out.put(&half.to_be_bytes());
            return;
        }
        let single = value as f32;
        if f64::from(single) == value || (value.is_nan() && single.is_nan()) {
            out.put(&[0xfa]);
            out.put(&single.to_bits().to_be_bytes());
            return;
        }
        out.put(&[0xfb]);
        out.put(&value.to_bits().to_be_bytes());
    }

    /// The IEEE 754 half-precision bits of `value`, if it converts without loss.
    fn to_half(value: f64) -> Option<u16> {
        if value.is_nan() {
            return Some(0x7e00);
        }
        if value.is_infinite() {
            return Some(if value > 0.0 { 0x7c00 } else { 0xfc00 });
        }
        let sign: u16 = if value.is_sign_negative() { 0x8000 } else { 0 };
        let magnitude = value.abs();
        if magnitude == 0.0 {
            return Some(sign);
        }
        // Normal halves: exponent -14..=15 with 10 mantissa bits.
        let exponent = magnitude.log2().floor() as i32;
        if (-14..=15).contains(&exponent) {
            let scaled = magnitude / 2f64.powi(exponent) * 1024.0; // in [1024, 2048)
            if scaled.fract() == 0.0 && (1024.0..2048.0).contains(&scaled) {
                let mantissa = scaled as u16 - 1024;
                let biased = (exponent + 15) as u16;
                return Some(sign | (biased << 10) | mantissa);
            }
            return None;
        }
        // Subnormal halves: multiples of 2^-24 below 2^-14.
        if exponent < -14 {
            let scaled = magnitude * 2f64.powi(24);
            if scaled.fract() == 0.0 && (1.0..1024.0).contains(&scaled) {
                return Some(sign | scaled as u16);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_golden_vectors() {
        // Vectors from flagd's documentation and the testbed's hash edge cases.
        assert_eq!(murmur3_x86_32(b"", 0), 0);
        assert_eq!(murmur3_x86_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(murmur3_x86_32(b"fractional-flagjack", 0), 0x9fe8_43e0);
        assert_eq!(murmur3_x86_32(b"jon@company.com", 0), 0x5cd9_1845);
        assert_eq!(murmur3_x86_32(b"user1", 0), 0xc50b_443d);
        assert_eq!(murmur3_x86_32(b"ejOoVL", 0), 0);
        assert_eq!(murmur3_x86_32(b"bY9fO-", 0), 1);
        assert_eq!(murmur3_x86_32(b"SI7p-", 0), 2_147_483_647);
        assert_eq!(murmur3_x86_32(b"6LvT0", 0), 2_147_483_648);
        assert_eq!(murmur3_x86_32(b"ceQdGm", 0), 4_294_967_295);
        // Published MurmurHash3 x86_32 vectors with seeds.
        assert_eq!(murmur3_x86_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(b"", 0xffff_ffff), 0x81f1_6f39);
        assert_eq!(murmur3_x86_32(&[0, 0, 0, 0], 0), 0x2362_f9de);
        assert_eq!(murmur3_x86_32(b"aaaa", 0x9747_b28c), 0x5a97_808a);
        assert_eq!(murmur3_x86_32(b"abc", 0), 0xb3dd_93fa);
        assert_eq!(
            murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0x9747_b28c),
            0x2fa8_26cd
        );
    }

    #[test]
    fn streaming_matches_one_shot_for_every_split() {
        let data = b"The quick brown fox jumps over the lazy dog";
        for split in 0..=data.len() {
            for second in split..=data.len() {
                let mut hasher = Murmur3::new(7);
                hasher.write(&data[..split]);
                hasher.write(&data[split..second]);
                hasher.write(&data[second..]);
                assert_eq!(hasher.finish(), murmur3_x86_32(data, 7), "{split} {second}");
            }
        }
    }

    #[test]
    fn bucket_golden_vectors() {
        assert_eq!(bucket(0x5cd9_1845, 100), 36);
        assert_eq!(bucket(0xc50b_443d, 100), 76);
        assert_eq!(bucket(0, 2), 0);
        assert_eq!(bucket(2_147_483_647, 2), 0);
        assert_eq!(bucket(2_147_483_648, 2), 1);
        assert_eq!(bucket(u32::MAX, i32::MAX as u32), i32::MAX as u32 - 1);
    }

    fn encoded(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out);
        out
    }

    #[test]
    fn cbor_numbers_match_rfc_8949_examples() {
        let cases: &[(f64, &[u8])] = &[
            (0.0, &[0x00]),
            (-0.0, &[0x00]),
            (1.0, &[0x01]),
            (23.0, &[0x17]),
            (24.0, &[0x18, 0x18]),
            (100.0, &[0x18, 0x64]),
            (1000.0, &[0x19, 0x03, 0xe8]),
            (1_000_000.0, &[0x1a, 0x00, 0x0f, 0x42, 0x40]),
            (
                1e12,
                &[0x1b, 0x00, 0x00, 0x00, 0xe8, 0xd4, 0xa5, 0x10, 0x00],
            ),
            (-1.0, &[0x20]),
            (-10.0, &[0x29]),
            (-100.0, &[0x38, 0x63]),
            (-1000.0, &[0x39, 0x03, 0xe7]),
            (1.5, &[0xf9, 0x3e, 0x00]),
            (65504.5, &[0xfa, 0x47, 0x7f, 0xe0, 0x80]),
            (100000.5, &[0xfa, 0x47, 0xc3, 0x50, 0x40]),
            (5.960464477539063e-8, &[0xf9, 0x00, 0x01]),
            (0.00006103515625, &[0xf9, 0x04, 0x00]),
            (
                -4.1,
                &[0xfb, 0xc0, 0x10, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66],
            ),
            (1.1, &[0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a]),
            (f64::INFINITY, &[0xf9, 0x7c, 0x00]),
            (f64::NEG_INFINITY, &[0xf9, 0xfc, 0x00]),
            (f64::NAN, &[0xf9, 0x7e, 0x00]),
            (
                1e300,
                &[0xfb, 0x7e, 0x37, 0xe4, 0x3c, 0x88, 0x00, 0x75, 0x9c],
            ),
        ];
        for (value, bytes) in cases {
            assert_eq!(&encoded(|out| cbor::number(out, *value)), bytes, "{value}");
        }
    }

    #[test]
    fn cbor_text_and_simple_values() {
        assert_eq!(encoded(|o| cbor::text(o, "")), [0x60]);
        assert_eq!(encoded(|o| cbor::text(o, "a")), [0x61, 0x61]);
        assert_eq!(
            encoded(|o| cbor::text(o, "IETF")),
            [0x64, 0x49, 0x45, 0x54, 0x46]
        );
        assert_eq!(encoded(|o| cbor::text(o, "ü")), [0x62, 0xc3, 0xbc]);
        assert_eq!(encoded(|o| cbor::bool(o, true)), [0xf5]);
        assert_eq!(encoded(|o| cbor::bool(o, false)), [0xf4]);
        assert_eq!(encoded(cbor::null), [0xf6]);
        assert_eq!(encoded(|o| cbor::head(o, 4, 2)), [0x82]);
        assert_eq!(encoded(|o| cbor::head(o, 5, 25)), [0xb8, 0x19]);
    }
}
