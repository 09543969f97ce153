//! Record frames: `len u32 | kind u8 | seq u64 | crc32c u32 | body | zero padding`.
//!
//! All integers are little-endian. The checksum covers `len`, `kind`, `seq`
//! and the body, so a stale record (right bytes, wrong place in the sequence)
//! fails the sequence check and a torn one fails the checksum. Frames start
//! on 8-byte boundaries; the padding must be zero. An all-zero frame header
//! marks the end of data: pre-allocated space reads as zeros, and no real
//! record has an all-zero header because the checksum of a zero header is
//! not zero (a unit test pins this).

use crate::error::CorruptReason;

/// Bytes of a frame header: `len u32 | kind u8 | seq u64 | crc32c u32`.
pub const FRAME_HEADER_BYTES: usize = 17;

/// Frames start on multiples of this many bytes.
pub const FRAME_ALIGN_BYTES: usize = 8;

/// Bytes covered by the checksum before the body: `len | kind | seq`.
const CHECKED_HEADER_BYTES: usize = 13;

/// Total bytes a record with a `body_bytes` long body occupies, padding included.
pub fn frame_bytes(body_bytes: u32) -> u64 {
    let unpadded = FRAME_HEADER_BYTES as u64 + u64::from(body_bytes);
    unpadded.next_multiple_of(FRAME_ALIGN_BYTES as u64)
}

/// A decoded, verified frame borrowed from a segment mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Record sequence number.
    pub seq: u64,
    /// Caller-defined record kind.
    pub kind: u8,
    /// Record body.
    pub body: &'a [u8],
    /// Bytes the frame occupies, padding included.
    pub frame_bytes: usize,
}

/// What lies at a frame position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus<'a> {
    /// A verified record.
    Record(Frame<'a>),
    /// End of data: a zero frame header, or no room left for a header.
    End,
}

/// Writes a frame for (`seq`, `kind`, `body`) at the start of `out`, which
/// must be exactly `frame_bytes(body.len())` long and is fully overwritten
/// (padding zeroed).
pub fn encode_frame(out: &mut [u8], seq: u64, kind: u8, body: &[u8]) {
    let body_bytes = u32::try_from(body.len()).expect("body length was checked against u32");
    assert_eq!(
        out.len() as u64,
        frame_bytes(body_bytes),
        "frame buffer size"
    );
    let mut checked = [0u8; CHECKED_HEADER_BYTES];
    checked[0..4].copy_from_slice(&body_bytes.to_le_bytes());
    checked[4] = kind;
    checked[5..13].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&checked), body);
    let body_start = FRAME_HEADER_BYTES;
    let body_end = body_start + body.len();
    out[..CHECKED_HEADER_BYTES].copy_from_slice(&checked);
    out[CHECKED_HEADER_BYTES..body_start].copy_from_slice(&crc.to_le_bytes());
    out[body_start..body_end].copy_from_slice(body);
    out[body_end..].fill(0);
}

/// Decodes and verifies the frame at `offset` in `data` (a segment mapping
/// cut at the end of the bytes that may hold frames).
///
/// A frame is bad when its body is longer than `max_record_bytes`, it runs
/// past the end of `data`, its checksum does not match, its sequence number
/// is not `expected_seq`, or its padding is not zero.
pub fn decode_frame(
    data: &[u8],
    offset: usize,
    expected_seq: u64,
    max_record_bytes: u32,
) -> Result<FrameStatus<'_>, CorruptReason> {
    let Some(header) = data.get(offset..offset.saturating_add(FRAME_HEADER_BYTES)) else {
        return Ok(FrameStatus::End);
    };
    if header.iter().all(|&byte| byte == 0) {
        return Ok(FrameStatus::End);
    }
    let (body_bytes, frame) = checked_frame(data, offset, header, max_record_bytes)?;
    let kind = header[4];
    let seq = read_u64(header, 5);
    let crc_stored = read_u32(header, CHECKED_HEADER_BYTES);
    let body_end = FRAME_HEADER_BYTES + body_bytes;
    let body = &frame[FRAME_HEADER_BYTES..body_end];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[..CHECKED_HEADER_BYTES]), body);
    if crc != crc_stored {
        return Err(CorruptReason::ChecksumMismatch);
    }
    if seq != expected_seq {
        return Err(CorruptReason::WrongSeq {
            expected_seq,
            found_seq: seq,
        });
    }
    if frame[body_end..].iter().any(|&byte| byte != 0) {
        return Err(CorruptReason::NonZeroPadding);
    }
    Ok(FrameStatus::Record(Frame {
        seq,
        kind,
        body,
        frame_bytes: frame.len(),
    }))
}

/// Length of the frame at `offset` without verifying its checksum: for
/// skipping over frames that were verified when the log was opened.
pub fn skip_frame(
    data: &[u8],
    offset: usize,
    max_record_bytes: u32,
) -> Result<usize, CorruptReason> {
    let header = data
        .get(offset..offset.saturating_add(FRAME_HEADER_BYTES))
        .ok_or(CorruptReason::UnexpectedEnd)?;
    let (_, frame) = checked_frame(data, offset, header, max_record_bytes)?;
    Ok(frame.len())
}

/// Checks the length field of `header` and returns (body bytes, whole frame).
fn checked_frame<'a>(
    data: &'a [u8],
    offset: usize,
    header: &[u8],
    max_record_bytes: u32,
) -> Result<(usize, &'a [u8]), CorruptReason> {
    let body_bytes = read_u32(header, 0);
    if body_bytes > max_record_bytes {
        return Err(CorruptReason::LengthOverBound {
            body_bytes,
            max_record_bytes,
        });
    }
    // Both fit in usize: body_bytes is bounded by a u32, frames by a mapping.
    let frame_end = offset.saturating_add(frame_bytes(body_bytes) as usize);
    let frame = data
        .get(offset..frame_end)
        .ok_or(CorruptReason::CrossesSegmentEnd)?;
    Ok((body_bytes as usize, frame))
}

/// Little-endian u32 at `at` in a slice the caller has bounds-checked.
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Little-endian u64 at `at` in a slice the caller has bounds-checked.
pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(seq: u64, kind: u8, body: &[u8]) -> Vec<u8> {
        let body_bytes = u32::try_from(body.len()).expect("small body");
        let mut out = vec![0xAA; frame_bytes(body_bytes) as usize];
        encode_frame(&mut out, seq, kind, body);
        out
    }

    #[test]
    fn frame_bytes_are_header_plus_body_rounded_to_eight() {
        assert_eq!(frame_bytes(0), 24);
        assert_eq!(frame_bytes(7), 24);
        assert_eq!(frame_bytes(8), 32);
        assert_eq!(frame_bytes(u32::MAX), 17 + u64::from(u32::MAX));
    }

    #[test]
    fn empty_record_zero_seq_zero_kind_is_not_a_zero_frame() {
        let frame = encoded(0, 0, &[]);
        assert!(frame[..FRAME_HEADER_BYTES].iter().any(|&byte| byte != 0));
        let status = decode_frame(&frame, 0, 0, 16).expect("valid frame");
        assert!(matches!(
            status,
            FrameStatus::Record(Frame {
                seq: 0,
                kind: 0,
                body: &[],
                ..
            })
        ));
    }

    #[test]
    fn encode_then_decode_round_trips_and_zeroes_padding() {
        let frame = encoded(42, 7, b"hello");
        assert_eq!(&frame[22..], &[0, 0]);
        let status = decode_frame(&frame, 0, 42, 1024).expect("valid frame");
        let FrameStatus::Record(decoded) = status else {
            panic!("expected a record, got {status:?}");
        };
        assert_eq!(
            (decoded.seq, decoded.kind, decoded.body),
            (42, 7, &b"hello"[..])
        );
        assert_eq!(decoded.frame_bytes, 24);
        assert_eq!(skip_frame(&frame, 0, 1024), Ok(24));
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let frame = encoded(9, 3, b"some body bytes");
        for index in 0..frame.len() {
            let mut flipped = frame.clone();
            flipped[index] ^= 0x40;
            let status = decode_frame(&flipped, 0, 9, 1024);
            assert!(
                status.is_err(),
                "flip at byte {index} went unnoticed: {status:?}"
            );
        }
    }

    #[test]
    fn stale_record_with_valid_checksum_is_a_wrong_seq() {
        let frame = encoded(5, 1, b"x");
        assert_eq!(
            decode_frame(&frame, 0, 6, 1024),
            Err(CorruptReason::WrongSeq {
                expected_seq: 6,
                found_seq: 5
            })
        );
    }

    #[test]
    fn length_over_bound_and_frame_past_end_are_bad() {
        let frame = encoded(0, 1, &[1; 100]);
        assert_eq!(
            decode_frame(&frame, 0, 0, 99),
            Err(CorruptReason::LengthOverBound {
                body_bytes: 100,
                max_record_bytes: 99
            })
        );
        assert_eq!(
            decode_frame(&frame[..frame.len() - 8], 0, 0, 100),
            Err(CorruptReason::CrossesSegmentEnd)
        );
    }

    #[test]
    fn zero_header_or_no_room_is_end_of_data() {
        let zeros = [0u8; 64];
        assert_eq!(decode_frame(&zeros, 0, 0, 16), Ok(FrameStatus::End));
        assert_eq!(decode_frame(&zeros, 56, 0, 16), Ok(FrameStatus::End));
    }
}
