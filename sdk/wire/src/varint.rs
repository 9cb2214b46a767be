//! Variable-length integers for compact state values: LEB128, with zigzag for signed
//! integers (the Protocol Buffers encoding), so small numbers and small differences
//! take one or two bytes instead of eight.
//!
//! State values are rewritten on every batch that touches them, and the state store
//! logs every byte written, so their size is what a state write costs.

use integer_encoding::VarInt;

/// Append `v` to `out`.
pub fn put<V: VarInt>(out: &mut Vec<u8>, v: V) {
    let mut buf = [0u8; 10];
    let n = v.encode_var(&mut buf);
    out.extend_from_slice(&buf[..n]);
}

/// Append a non-negative integral `v` below 2^53 as a varint of `v << 1`, anything else
/// as the byte 1 and the eight bytes of the `f64`: counts and sums of whole numbers,
/// the common case, take one to three bytes.
pub fn put_f64(out: &mut Vec<u8>, v: f64) {
    const EXACT: f64 = (1u64 << 53) as f64;
    if v.fract() == 0.0 && (0.0..EXACT).contains(&v) && !(v == 0.0 && v.is_sign_negative()) {
        put(out, (v as u64) << 1);
    } else {
        out.push(1);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Reads what [`put`] and [`put_f64`] wrote, front to back; every read is `None` at a
/// malformed or truncated value.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The next integer.
    pub fn get<V: VarInt>(&mut self) -> Option<V> {
        let (v, n) = V::decode_var(self.bytes)?;
        self.bytes = self.bytes.get(n..)?;
        Some(v)
    }

    /// The next number written by [`put_f64`].
    pub fn f64(&mut self) -> Option<f64> {
        if self.bytes.first() == Some(&1) {
            let b: [u8; 8] = self.bytes.get(1..9)?.try_into().ok()?;
            self.bytes = &self.bytes[9..];
            return Some(f64::from_le_bytes(b));
        }
        let v: u64 = self.get()?;
        // Only `put_f64` writes these: an odd varint other than the byte 1 is corrupt.
        (v & 1 == 0).then_some((v >> 1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_numbers_round_trip() {
        let floats = [0.0, 1.0, 127.0, 1e15, 2.5, -1.0, -0.0, f64::MAX, 1e300];
        let ints = [0i64, 1, -1, 63, -64, 1 << 40, i64::MIN, i64::MAX];
        let mut out = Vec::new();
        for v in floats {
            put_f64(&mut out, v);
        }
        for v in ints {
            put(&mut out, v);
        }
        let mut r = Reader::new(&out);
        for v in floats {
            assert_eq!(r.f64().map(f64::to_bits), Some(v.to_bits()), "{v}");
        }
        for v in ints {
            assert_eq!(r.get::<i64>(), Some(v));
        }
        assert!(r.is_empty());
    }

    #[test]
    fn small_whole_numbers_take_one_byte() {
        let mut out = Vec::new();
        put_f64(&mut out, 42.0);
        put(&mut out, -3i64);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn truncated_input_reads_none() {
        let mut out = Vec::new();
        put(&mut out, 1u64 << 40);
        put_f64(&mut out, 0.5);
        for cut in [out.len() - 1, 3] {
            let mut r = Reader::new(&out[..cut]);
            let _ = r.get::<u64>();
            assert_eq!(r.f64(), None, "cut at {cut}");
        }
    }
}
