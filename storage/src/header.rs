//! The segment header page: identity plus two alternating watermark slots.
//!
//! ```text
//! offset   bytes  field
//! 0        8      magic "PCLOGSEG"
//! 8        4      format version (1)
//! 12       8      first record seq of the segment (equals the file name)
//! 20       4      crc32c over bytes 0..20
//! 512      36     watermark slot 0
//! 1024     36     watermark slot 1
//! ```
//!
//! A slot is `generation u64 | durable_end_seq u64 | durable_end_offset u64 |
//! sealed_end_offset u64 | crc32c u32` (crc over the first 32 bytes). Slot
//! writes alternate and each write goes to the slot that is not the newest,
//! so a torn header write leaves the other slot intact; the valid slot with
//! the higher generation wins. The identity part is written once, before the
//! file gets its final name.

use crate::error::CorruptReason;
use crate::frame::{read_u32, read_u64};

/// Bytes of the header page; the first record starts here.
pub const HEADER_BYTES: usize = 4096;

const MAGIC: &[u8; 8] = b"PCLOGSEG";
const FORMAT_VERSION: u32 = 1;
const IDENTITY_CHECKED_BYTES: usize = 20;
/// Byte offsets of the two watermark slots in the header page.
pub const SLOT_OFFSETS: [usize; 2] = [512, 1024];
const SLOT_CHECKED_BYTES: usize = 32;
const SLOT_BYTES: usize = SLOT_CHECKED_BYTES + 4;

/// One watermark slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    /// Write counter; the valid slot with the higher one is current.
    pub generation: u64,
    /// Every record with a lower seq, in any segment, was durable when this
    /// slot was written.
    pub durable_end_seq: u64,
    /// Offset in this segment up to which its records were durable.
    pub durable_end_offset: u64,
    /// Offset where this segment's data ends once it is sealed; 0 while open.
    pub sealed_end_offset: u64,
}

impl Watermark {
    /// Whether the segment is closed to appends.
    pub fn is_sealed(&self) -> bool {
        self.sealed_end_offset != 0
    }
}

/// The decoded header: first seq, current watermark and which slot to write next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Seq of the first record in the segment.
    pub first_seq: u64,
    /// The newest valid watermark slot.
    pub watermark: Watermark,
    /// Index of the slot the next watermark write goes to (the older one).
    pub next_slot: usize,
}

/// Writes a fresh header for a segment starting at `first_seq` into the
/// first `HEADER_BYTES` of `page`; both slots hold `durable_end_seq`.
pub fn write_new_header(page: &mut [u8], first_seq: u64, durable_end_seq: u64) -> Header {
    page[..HEADER_BYTES].fill(0);
    page[0..8].copy_from_slice(MAGIC);
    page[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    page[12..20].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&page[..IDENTITY_CHECKED_BYTES]);
    page[20..24].copy_from_slice(&crc.to_le_bytes());
    let mut watermark = Watermark {
        generation: 0,
        durable_end_seq,
        durable_end_offset: HEADER_BYTES as u64,
        sealed_end_offset: 0,
    };
    write_slot(page, 0, &watermark);
    watermark.generation = 1;
    write_slot(page, 1, &watermark);
    Header {
        first_seq,
        watermark,
        next_slot: 0,
    }
}

/// Writes `watermark` into slot `index` (0 or 1) of the header `page`.
pub fn write_slot(page: &mut [u8], index: usize, watermark: &Watermark) {
    let mut slot = [0u8; SLOT_BYTES];
    slot[0..8].copy_from_slice(&watermark.generation.to_le_bytes());
    slot[8..16].copy_from_slice(&watermark.durable_end_seq.to_le_bytes());
    slot[16..24].copy_from_slice(&watermark.durable_end_offset.to_le_bytes());
    slot[24..32].copy_from_slice(&watermark.sealed_end_offset.to_le_bytes());
    let crc = crc32c::crc32c(&slot[..SLOT_CHECKED_BYTES]);
    slot[SLOT_CHECKED_BYTES..].copy_from_slice(&crc.to_le_bytes());
    let at = SLOT_OFFSETS[index];
    page[at..at + SLOT_BYTES].copy_from_slice(&slot);
}

/// Decodes a header page, checking it belongs to a segment named `first_seq`.
pub fn read_header(page: &[u8], expected_first_seq: u64) -> Result<Header, CorruptReason> {
    let page = page
        .get(..HEADER_BYTES)
        .ok_or(CorruptReason::FileShorterThanHeader)?;
    if &page[0..8] != MAGIC {
        return Err(CorruptReason::BadMagic);
    }
    let crc = crc32c::crc32c(&page[..IDENTITY_CHECKED_BYTES]);
    if crc != read_u32(page, IDENTITY_CHECKED_BYTES) {
        return Err(CorruptReason::HeaderChecksumMismatch);
    }
    let version = read_u32(page, 8);
    if version != FORMAT_VERSION {
        return Err(CorruptReason::UnsupportedVersion { version });
    }
    let first_seq = read_u64(page, 12);
    if first_seq != expected_first_seq {
        return Err(CorruptReason::FirstSeqMismatch {
            name_seq: expected_first_seq,
            header_seq: first_seq,
        });
    }
    let (newest, watermark) = [read_slot(page, 0), read_slot(page, 1)]
        .into_iter()
        .enumerate()
        .filter_map(|(index, slot)| Some((index, slot?)))
        .max_by_key(|(_, slot)| slot.generation)
        .ok_or(CorruptReason::NoValidWatermark)?;
    Ok(Header {
        first_seq,
        watermark,
        next_slot: 1 - newest,
    })
}

/// The slot at `index` if its checksum holds.
fn read_slot(page: &[u8], index: usize) -> Option<Watermark> {
    let slot = &page[SLOT_OFFSETS[index]..SLOT_OFFSETS[index] + SLOT_BYTES];
    let crc = crc32c::crc32c(&slot[..SLOT_CHECKED_BYTES]);
    (crc == read_u32(slot, SLOT_CHECKED_BYTES)).then(|| Watermark {
        generation: read_u64(slot, 0),
        durable_end_seq: read_u64(slot, 8),
        durable_end_offset: read_u64(slot, 16),
        sealed_end_offset: read_u64(slot, 24),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(first_seq: u64) -> (Vec<u8>, Header) {
        let mut page = vec![0xEE; HEADER_BYTES];
        let header = write_new_header(&mut page, first_seq, 3);
        (page, header)
    }

    #[test]
    fn fresh_header_reads_back() {
        let (page, written) = fresh(77);
        let read = read_header(&page, 77).expect("valid header");
        assert_eq!(read, written);
        assert_eq!(read.watermark.durable_end_seq, 3);
        assert!(!read.watermark.is_sealed());
    }

    #[test]
    fn newer_generation_wins_and_next_write_goes_to_the_other_slot() {
        let (mut page, header) = fresh(0);
        let newer = Watermark {
            generation: header.watermark.generation + 1,
            durable_end_seq: 10,
            durable_end_offset: 5000,
            sealed_end_offset: 0,
        };
        write_slot(&mut page, header.next_slot, &newer);
        let read = read_header(&page, 0).expect("valid header");
        assert_eq!(read.watermark, newer);
        assert_eq!(read.next_slot, 1 - header.next_slot);
    }

    #[test]
    fn torn_newest_slot_falls_back_to_the_older_slot() {
        let (mut page, header) = fresh(0);
        let newer = Watermark {
            generation: 2,
            durable_end_seq: 10,
            durable_end_offset: 5000,
            sealed_end_offset: 6000,
        };
        write_slot(&mut page, header.next_slot, &newer);
        page[SLOT_OFFSETS[header.next_slot] + 9] ^= 1;
        let read = read_header(&page, 0).expect("older slot still valid");
        assert_eq!(read.watermark, header.watermark);
        assert_eq!(read.next_slot, header.next_slot);
    }

    #[test]
    fn bad_identity_or_both_slots_torn_is_corrupt() {
        let (page, _) = fresh(5);
        assert_eq!(
            read_header(&page, 6),
            Err(CorruptReason::FirstSeqMismatch {
                name_seq: 6,
                header_seq: 5
            })
        );
        let mut flipped = page.clone();
        flipped[13] ^= 1;
        assert_eq!(
            read_header(&flipped, 5),
            Err(CorruptReason::HeaderChecksumMismatch)
        );
        let mut torn = page.clone();
        torn[SLOT_OFFSETS[0]] ^= 1;
        torn[SLOT_OFFSETS[1]] ^= 1;
        assert_eq!(read_header(&torn, 5), Err(CorruptReason::NoValidWatermark));
        assert_eq!(
            read_header(&page[..100], 5),
            Err(CorruptReason::FileShorterThanHeader)
        );
        let mut magic = page;
        magic[0] = b'X';
        assert_eq!(read_header(&magic, 5), Err(CorruptReason::BadMagic));
    }
}
