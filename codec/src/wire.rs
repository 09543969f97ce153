//! The canonical binary encoding: a byte writer, a strict reader and the
//! [`Encode`] / [`Decode`] traits every protocol type implements.
//!
//! Rules (DESIGN §3.2): fixed-width little-endian integers; counts and lengths
//! as minimal LEB128 varints; no padding; no trailing bytes. The reader rejects
//! every non-canonical form with a typed [`DecodeError`] carrying the offset,
//! and never allocates more than the remaining input can justify.

/// Why a byte string is not the canonical encoding of the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("truncated input at offset {offset}: {what} needs {needed} more bytes")]
    Truncated {
        /// Offset where the value started.
        offset: usize,
        /// The value being read.
        what: &'static str,
        /// Bytes missing.
        needed: usize,
    },
    /// A varint with a redundant trailing zero group (not minimal).
    #[error("overlong varint at offset {offset}")]
    OverlongVarint {
        /// Offset of the varint's first byte.
        offset: usize,
    },
    /// A varint that does not fit in 64 bits.
    #[error("varint overflows 64 bits at offset {offset}")]
    VarintOverflow {
        /// Offset of the varint's first byte.
        offset: usize,
    },
    /// A count outside the bounds of its field.
    #[error("{what} count {count} at offset {offset} is outside {min}..={max}")]
    CountOutOfBounds {
        /// Offset of the count.
        offset: usize,
        /// The counted field.
        what: &'static str,
        /// The count read.
        count: u64,
        /// Smallest allowed count.
        min: u64,
        /// Largest allowed count.
        max: u64,
    },
    /// Bytes left over after a complete value.
    #[error("{len} trailing bytes at offset {offset}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
        /// Number of extra bytes.
        len: usize,
    },
    /// A tag byte naming no known variant.
    #[error("unknown {what} tag {tag} at offset {offset}")]
    UnknownTag {
        /// Offset of the tag.
        offset: usize,
        /// The tagged type.
        what: &'static str,
        /// The tag read.
        tag: u8,
    },
    /// A version this implementation does not speak.
    #[error("unsupported {what} version {version} at offset {offset}")]
    UnsupportedVersion {
        /// Offset of the version byte.
        offset: usize,
        /// The versioned type.
        what: &'static str,
        /// The version read.
        version: u8,
    },
    /// A field value outside its domain (for example a count field over its
    /// protocol bound, or a signature count that does not match its mask).
    #[error("invalid {what} at offset {offset}")]
    InvalidValue {
        /// Offset of the field.
        offset: usize,
        /// The field.
        what: &'static str,
    },
}

/// A type with exactly one canonical byte encoding.
pub trait Encode {
    /// Appends the canonical encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// The canonical encoding as a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A type that can be read back from its canonical encoding.
pub trait Decode: Sized {
    /// Reads one value from `reader`, rejecting non-canonical forms.
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes a complete byte string: one value and nothing after it.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let value = Self::decode(&mut reader)?;
        reader.finish()?;
        Ok(value)
    }
}

/// Appends `value` as a minimal LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a collection length as a varint.
pub fn put_count(out: &mut Vec<u8>, count: usize) {
    put_varint(out, count as u64);
}

/// Appends a list: its count, then each item.
pub fn put_list<T: Encode>(out: &mut Vec<u8>, items: &[T]) {
    put_count(out, items.len());
    for item in items {
        item.encode(out);
    }
}

/// A cursor over an input byte string that only accepts canonical forms.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    input: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Reader { input, offset: 0 }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.input.len() - self.offset
    }

    /// Succeeds only when the whole input was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            len => Err(DecodeError::TrailingBytes {
                offset: self.offset,
                len,
            }),
        }
    }

    /// Takes the next `len` bytes.
    pub fn bytes(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < len {
            return Err(DecodeError::Truncated {
                offset: self.offset,
                what,
                needed: len - self.remaining(),
            });
        }
        let slice = &self.input[self.offset..self.offset + len];
        self.offset += len;
        Ok(slice)
    }

    /// Takes a fixed-size byte array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    /// Reads a `u8`.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Reads a little-endian `u16`.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// Reads a little-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// Reads a little-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads a minimal LEB128 varint of at most 64 bits.
    pub fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let start = self.offset;
        let mut value: u64 = 0;
        for index in 0..10 {
            let byte = self.u8(what).map_err(|_| DecodeError::Truncated {
                offset: start,
                what,
                needed: 1,
            })?;
            let group = u64::from(byte & 0x7f);
            if index == 9 && byte > 0x01 {
                return Err(DecodeError::VarintOverflow { offset: start });
            }
            value |= group << (7 * index);
            if byte & 0x80 == 0 {
                if index > 0 && byte == 0 {
                    return Err(DecodeError::OverlongVarint { offset: start });
                }
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow { offset: start })
    }

    /// Reads a collection count within `min..=max`, also bounded by the input
    /// left: each item takes at least `min_item_bytes`, so the caller may
    /// allocate `count` items without trusting the input.
    pub fn count(
        &mut self,
        what: &'static str,
        min: usize,
        max: usize,
        min_item_bytes: usize,
    ) -> Result<usize, DecodeError> {
        let offset = self.offset;
        let count = self.varint(what)?;
        if count < min as u64 || count > max as u64 {
            return Err(DecodeError::CountOutOfBounds {
                offset,
                what,
                count,
                min: min as u64,
                max: max as u64,
            });
        }
        let count = count as usize;
        let needed = count.saturating_mul(min_item_bytes);
        if needed > self.remaining() {
            return Err(DecodeError::Truncated {
                offset: self.offset,
                what,
                needed: needed - self.remaining(),
            });
        }
        Ok(count)
    }

    /// Reads a list of `T` with its count bounded as in [`Reader::count`].
    pub fn list<T: Decode>(
        &mut self,
        what: &'static str,
        min: usize,
        max: usize,
        min_item_bytes: usize,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self.count(what, min, max, min_item_bytes)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(T::decode(self)?);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_bytes(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, value);
        out
    }

    #[test]
    fn varint_round_trips_at_group_boundaries() {
        for value in [0, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let bytes = varint_bytes(value);
            let mut reader = Reader::new(&bytes);
            assert_eq!(reader.varint("v"), Ok(value));
            assert_eq!(reader.finish(), Ok(()));
        }
        assert_eq!(varint_bytes(u64::MAX).len(), 10);
    }

    #[test]
    fn overlong_varint_is_rejected() {
        for bytes in [&[0x80, 0x00][..], &[0x81, 0x80, 0x00], &[0xff, 0x00]] {
            assert_eq!(
                Reader::new(bytes).varint("v"),
                Err(DecodeError::OverlongVarint { offset: 0 })
            );
        }
    }

    #[test]
    fn varint_over_64_bits_is_rejected() {
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(
            Reader::new(&too_big).varint("v"),
            Err(DecodeError::VarintOverflow { offset: 0 })
        );
        let eleven = vec![0x80; 11];
        assert!(matches!(
            Reader::new(&eleven).varint("v"),
            Err(DecodeError::VarintOverflow { .. })
        ));
    }

    #[test]
    fn truncated_varint_is_rejected() {
        assert!(matches!(
            Reader::new(&[0x80]).varint("v"),
            Err(DecodeError::Truncated { offset: 0, .. })
        ));
    }

    #[test]
    fn count_is_bounded_by_field_and_by_input_left() {
        assert!(matches!(
            Reader::new(&[5]).count("items", 0, 4, 1),
            Err(DecodeError::CountOutOfBounds {
                count: 5,
                max: 4,
                ..
            })
        ));
        assert!(matches!(
            Reader::new(&[0]).count("items", 1, 4, 1),
            Err(DecodeError::CountOutOfBounds {
                count: 0,
                min: 1,
                ..
            })
        ));
        // A count of 3 items of 10 bytes each with 5 bytes left cannot be honest.
        let input = [3, 0, 0, 0, 0, 0];
        assert!(matches!(
            Reader::new(&input).count("items", 0, 4, 10),
            Err(DecodeError::Truncated { .. })
        ));
    }
}
