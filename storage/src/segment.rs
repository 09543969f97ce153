//! One segment file: pre-allocated, mapped over exactly its length, holding
//! a header page and then frames.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};

use crate::error::{CorruptReason, LogError};
use crate::frame::{decode_frame, encode_frame, frame_bytes, skip_frame, FrameStatus};
use crate::header::{read_header, write_new_header, write_slot, Header, Watermark, HEADER_BYTES};
use crate::{DirtyRange, Record};

/// Every this many records a segment keeps one (seq, offset) index entry.
pub const SPARSE_INDEX_STRIDE: u64 = 1024;

/// Suffix of segment files; the stem is the first seq, zero-padded to 20 digits.
pub const SEGMENT_SUFFIX: &str = ".seg";

/// Suffix of a segment being created; such files are removed on open.
pub const TEMP_SUFFIX: &str = ".seg.tmp";

/// The file name of the segment whose first record is `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

/// Where a recovery scan of a segment stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanStop {
    /// Offset of the first byte after the last good record.
    pub offset: usize,
    /// Seq the next record would have.
    pub seq: u64,
    /// Why the record at `offset` is bad; `None` at a clean end of data.
    pub bad: Option<CorruptReason>,
}

/// An open segment. Offsets are byte positions in the file.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    file: File,
    /// Covers exactly the file's length, never more.
    map: MmapMut,
    header: Header,
    /// How far this segment may grow; the file may be shorter and is then
    /// extended before a write past its end.
    capacity_bytes: usize,
    data_end_offset: usize,
    end_seq: u64,
    /// Records before this offset are known durable.
    synced_end_offset: usize,
    /// A watermark slot was written and not yet covered by a sync.
    header_dirty: bool,
    /// (seq, offset) of every `SPARSE_INDEX_STRIDE`-th record, from the first.
    sparse_index: Vec<(u64, usize)>,
}

impl Segment {
    /// Creates the segment for `first_seq` in `dir`: allocated to
    /// `segment_bytes`, header written, fsynced under a temporary name, then
    /// renamed into place and the directory fsynced.
    pub fn create(
        dir: &Path,
        first_seq: u64,
        segment_bytes: u64,
        durable_end_seq: u64,
    ) -> Result<Segment, LogError> {
        let path = dir.join(segment_file_name(first_seq));
        let temp_path = dir.join(format!("{first_seq:020}{TEMP_SUFFIX}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(LogError::io("create", &temp_path))?;
        allocate(&file, &temp_path, segment_bytes)?;
        let mut map = map_file(&file, &temp_path)?;
        let header = write_new_header(&mut map, first_seq, durable_end_seq);
        file.sync_all().map_err(LogError::io("fsync", &temp_path))?;
        fs::rename(&temp_path, &path).map_err(LogError::io("rename", &temp_path))?;
        sync_dir(dir)?;
        Ok(Segment::new(path, file, map, header, segment_bytes))
    }

    /// Opens and maps an existing segment whose name says `first_seq`.
    /// Records are not read until `scan`.
    pub fn open(path: PathBuf, first_seq: u64, segment_bytes: u64) -> Result<Segment, LogError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(LogError::io("open", &path))?;
        let file_bytes = file.metadata().map_err(LogError::io("stat", &path))?.len();
        if file_bytes < HEADER_BYTES as u64 {
            return Err(corrupt(&path, 0, CorruptReason::FileShorterThanHeader));
        }
        let map = map_file(&file, &path)?;
        let header = read_header(&map, first_seq).map_err(|reason| corrupt(&path, 0, reason))?;
        let capacity_bytes = file_bytes.max(segment_bytes);
        Ok(Segment::new(path, file, map, header, capacity_bytes))
    }

    fn new(
        path: PathBuf,
        file: File,
        map: MmapMut,
        header: Header,
        capacity_bytes: u64,
    ) -> Segment {
        Segment {
            path,
            file,
            map,
            capacity_bytes: usize::try_from(capacity_bytes).unwrap_or(usize::MAX),
            data_end_offset: HEADER_BYTES,
            end_seq: header.first_seq,
            synced_end_offset: HEADER_BYTES,
            header_dirty: false,
            sparse_index: Vec::new(),
            header,
        }
    }

    /// The segment file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seq of the segment's first record.
    pub fn first_seq(&self) -> u64 {
        self.header.first_seq
    }

    /// Seq after the segment's last record.
    pub fn end_seq(&self) -> u64 {
        self.end_seq
    }

    /// Offset after the segment's last record.
    pub fn data_end_offset(&self) -> usize {
        self.data_end_offset
    }

    /// The current watermark slot.
    pub fn watermark(&self) -> &Watermark {
        &self.header.watermark
    }

    /// Whether the segment is closed to appends.
    pub fn is_sealed(&self) -> bool {
        self.header.watermark.is_sealed()
    }

    /// Whether every record is known durable and no watermark write is pending.
    pub fn is_clean(&self) -> bool {
        self.synced_end_offset == self.data_end_offset && !self.header_dirty
    }

    /// Walks a sealed segment's frames by their lengths only (no checksum,
    /// one read per frame header) up to its seal, building the sparse
    /// index: a sealed segment wholly below the durable watermark is taken
    /// so at start-up, and its records are verified when read (every read
    /// checks its frame again). `None` when the walk does not end exactly
    /// at the seal (the caller then scans it in full).
    pub fn walk_sealed(&mut self, max_record_bytes: u32) -> Option<ScanStop> {
        if !self.is_sealed() {
            return None;
        }
        let sealed_end_offset = usize::try_from(self.watermark().sealed_end_offset).ok()?;
        let data = self.map.get(..sealed_end_offset)?;
        let mut index = Vec::new();
        let mut offset = HEADER_BYTES;
        let mut seq = self.header.first_seq;
        while offset < sealed_end_offset {
            if (seq - self.header.first_seq).is_multiple_of(SPARSE_INDEX_STRIDE) {
                index.push((seq, offset));
            }
            offset += skip_frame(data, offset, max_record_bytes).ok()?;
            seq += 1;
        }
        if offset != sealed_end_offset {
            return None;
        }
        self.sparse_index = index;
        self.data_end_offset = offset;
        self.end_seq = seq;
        Some(ScanStop {
            offset,
            seq,
            bad: None,
        })
    }

    /// Walks the records from the header page on, building the sparse index,
    /// and stops at the end of data or at the first bad record. A sealed
    /// segment must end exactly at its seal offset.
    pub fn scan(&mut self, max_record_bytes: u32) -> ScanStop {
        let sealed_end_offset =
            usize::try_from(self.watermark().sealed_end_offset).unwrap_or(usize::MAX);
        let sealed = self.is_sealed();
        let data = if sealed {
            &self.map[..sealed_end_offset.min(self.map.len())]
        } else {
            &self.map[..]
        };
        self.sparse_index.clear();
        let mut offset = HEADER_BYTES;
        let mut seq = self.header.first_seq;
        let bad = loop {
            if sealed && offset == sealed_end_offset {
                break None;
            }
            match decode_frame(data, offset, seq, max_record_bytes) {
                Ok(FrameStatus::Record(frame)) => {
                    if (seq - self.header.first_seq).is_multiple_of(SPARSE_INDEX_STRIDE) {
                        self.sparse_index.push((seq, offset));
                    }
                    offset += frame.frame_bytes;
                    seq += 1;
                }
                Ok(FrameStatus::End) if sealed => break Some(CorruptReason::UnexpectedEnd),
                Ok(FrameStatus::End) => break None,
                Err(reason) => break Some(reason),
            }
        };
        self.data_end_offset = offset;
        self.end_seq = seq;
        ScanStop { offset, seq, bad }
    }

    /// Zeroes every non-zero byte from `offset` to the end of the file, so
    /// that a zero frame marks the end of data there again, and makes the
    /// zeroes durable. Returns how many bytes of old data were cut.
    pub fn zero_tail(&mut self, offset: usize) -> Result<u64, LogError> {
        let end = nonzero_end(&self.map, offset);
        if end > offset {
            self.map[offset..end].fill(0);
            self.map
                .flush_range(offset, end - offset)
                .map_err(LogError::io("msync", &self.path))?;
        }
        Ok((end - offset) as u64)
    }

    /// Bytes of data after the header page up to the last non-zero byte.
    pub fn written_data_bytes(&self) -> u64 {
        (nonzero_end(&self.map, HEADER_BYTES) - HEADER_BYTES) as u64
    }

    /// Whether a frame of `frame_bytes` fits after the last record.
    pub fn fits(&self, frame_bytes: u64) -> bool {
        let frame_end = (self.data_end_offset as u64).saturating_add(frame_bytes);
        !self.is_sealed() && frame_end <= self.capacity_bytes as u64
    }

    /// Writes the record `seq` after the last one, extending the file first
    /// if it is shorter than the frame's end. The caller checked `fits`.
    pub fn append(&mut self, seq: u64, kind: u8, body: &[u8]) -> Result<(), LogError> {
        assert_eq!(seq, self.end_seq, "records are appended in seq order");
        let body_bytes = u32::try_from(body.len()).expect("the log checked the body length");
        let frame_end = self.data_end_offset + frame_bytes(body_bytes) as usize;
        assert!(
            frame_end <= self.capacity_bytes,
            "the log checked that the frame fits"
        );
        if frame_end > self.map.len() {
            self.extend_to_capacity()?;
        }
        encode_frame(
            &mut self.map[self.data_end_offset..frame_end],
            seq,
            kind,
            body,
        );
        if (seq - self.header.first_seq).is_multiple_of(SPARSE_INDEX_STRIDE) {
            self.sparse_index.push((seq, self.data_end_offset));
        }
        self.data_end_offset = frame_end;
        self.end_seq = seq + 1;
        Ok(())
    }

    /// Grows a file that is shorter than the segment size and maps it anew.
    fn extend_to_capacity(&mut self) -> Result<(), LogError> {
        allocate(&self.file, &self.path, self.capacity_bytes as u64)?;
        self.map = map_file(&self.file, &self.path)?;
        Ok(())
    }

    /// Closes the segment to appends at its current data end and makes the
    /// seal durable, before the next segment is created.
    pub fn seal(&mut self, durable_end_seq: u64) -> Result<(), LogError> {
        self.write_watermark(durable_end_seq, self.data_end_offset as u64);
        self.flush_header()
    }

    /// Reopens a sealed segment whose tail recovery cut off.
    pub fn unseal(&mut self, durable_end_seq: u64) -> Result<(), LogError> {
        self.write_watermark(durable_end_seq, 0);
        self.flush_header()
    }

    /// Records in the header that every seq below `durable_end_seq` is
    /// durable. The slot itself becomes durable with the next sync.
    pub fn record_watermark(&mut self, durable_end_seq: u64) {
        let sealed_end_offset = self.watermark().sealed_end_offset;
        self.write_watermark(durable_end_seq, sealed_end_offset);
        self.header_dirty = true;
    }

    /// Notes that a sync covering the watermark slot for `durable_end_seq`
    /// completed.
    pub fn header_synced(&mut self, durable_end_seq: u64) {
        if durable_end_seq >= self.watermark().durable_end_seq {
            self.header_dirty = false;
        }
    }

    fn write_watermark(&mut self, durable_end_seq: u64, sealed_end_offset: u64) {
        let watermark = Watermark {
            generation: self.header.watermark.generation + 1,
            durable_end_seq,
            durable_end_offset: self.synced_end_offset as u64,
            sealed_end_offset,
        };
        write_slot(&mut self.map, self.header.next_slot, &watermark);
        self.header.watermark = watermark;
        self.header.next_slot = 1 - self.header.next_slot;
    }

    fn flush_header(&mut self) -> Result<(), LogError> {
        self.map
            .flush_range(0, HEADER_BYTES)
            .map_err(LogError::io("msync", &self.path))?;
        self.header_dirty = false;
        Ok(())
    }

    /// Notes that every record below `durable_end_seq` is durable. The
    /// synced offset is exact at the segment's end and otherwise rounded
    /// down to a sparse index entry, which only makes a later sync cover a
    /// few records more.
    pub fn mark_synced(&mut self, durable_end_seq: u64) {
        let synced_end_offset = if durable_end_seq >= self.end_seq {
            self.data_end_offset
        } else {
            let entries = self
                .sparse_index
                .partition_point(|&(seq, _)| seq <= durable_end_seq);
            entries
                .checked_sub(1)
                .map_or(HEADER_BYTES, |entry| self.sparse_index[entry].1)
        };
        self.synced_end_offset = self.synced_end_offset.max(synced_end_offset);
    }

    /// What a sync must cover to make this segment's records and its
    /// pending watermark durable; `None` when it is clean.
    pub fn dirty_range(&self) -> Option<DirtyRange> {
        let data_dirty = self.synced_end_offset < self.data_end_offset;
        let (offset, end_offset, upto_seq) = match (self.header_dirty, data_dirty) {
            (false, false) => return None,
            (true, false) => (0, HEADER_BYTES, self.watermark().durable_end_seq - 1),
            (true, true) => (0, self.data_end_offset, self.end_seq - 1),
            (false, true) => (
                self.synced_end_offset,
                self.data_end_offset,
                self.end_seq - 1,
            ),
        };
        Some(DirtyRange {
            fd: self.file.as_raw_fd(),
            offset: offset as u64,
            len: (end_offset - offset) as u64,
            upto_seq,
            path: self.path.clone(),
        })
    }

    /// Blocking `fdatasync` of the file.
    pub fn sync_data(&self) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(LogError::io("fdatasync", &self.path))
    }

    /// Offset of record `seq` (`first_seq <= seq <= end_seq`): from the
    /// nearest sparse index entry, skipping frames already verified.
    pub fn locate(&self, seq: u64, max_record_bytes: u32) -> Result<usize, LogError> {
        assert!(
            (self.first_seq()..=self.end_seq).contains(&seq),
            "seq {seq} is not in {}",
            self.path.display()
        );
        if seq == self.end_seq {
            return Ok(self.data_end_offset);
        }
        let entry = self
            .sparse_index
            .partition_point(|&(entry_seq, _)| entry_seq <= seq)
            - 1;
        let (mut at_seq, mut offset) = self.sparse_index[entry];
        let data = &self.map[..self.data_end_offset];
        while at_seq < seq {
            offset += skip_frame(data, offset, max_record_bytes)
                .map_err(|reason| corrupt(&self.path, offset, reason))?;
            at_seq += 1;
        }
        Ok(offset)
    }

    /// The record `seq` at `offset`, verified again (checksum and seq).
    pub fn record_at(
        &self,
        offset: usize,
        seq: u64,
        max_record_bytes: u32,
    ) -> Result<(Record<'_>, usize), LogError> {
        let data = &self.map[..self.data_end_offset];
        match decode_frame(data, offset, seq, max_record_bytes) {
            Ok(FrameStatus::Record(frame)) => Ok((
                Record {
                    seq,
                    kind: frame.kind,
                    body: frame.body,
                    path: &self.path,
                    offset: offset as u64,
                },
                frame.frame_bytes,
            )),
            Ok(FrameStatus::End) => Err(corrupt(&self.path, offset, CorruptReason::UnexpectedEnd)),
            Err(reason) => Err(corrupt(&self.path, offset, reason)),
        }
    }
}

/// A `Corrupt` error at `offset` in `path`.
pub fn corrupt(path: &Path, offset: usize, reason: CorruptReason) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    }
}

/// `fsync` of a directory, so that created, renamed or removed entries persist.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(LogError::io("fsync directory", dir))
}

/// Allocates the file to `bytes` with `fallocate`, or sets its length where
/// the file system cannot pre-allocate.
fn allocate(file: &File, path: &Path, bytes: u64) -> Result<(), LogError> {
    let length = libc::off_t::try_from(bytes).map_err(|_| LogError::Io {
        operation: "fallocate",
        path: path.to_path_buf(),
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    // SAFETY: fallocate on a descriptor owned by `file`, which outlives the call.
    let status = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, length) };
    if status == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EOPNOTSUPP) {
        file.set_len(bytes).map_err(LogError::io("set_len", path))
    } else {
        Err(LogError::Io {
            operation: "fallocate",
            path: path.to_path_buf(),
            source: error,
        })
    }
}

/// Maps exactly the file's current length, pre-faulted.
fn map_file(file: &File, path: &Path) -> Result<MmapMut, LogError> {
    let file_bytes = file.metadata().map_err(LogError::io("stat", path))?.len();
    let length = usize::try_from(file_bytes).map_err(|_| LogError::Io {
        operation: "mmap",
        path: path.to_path_buf(),
        source: io::Error::from(io::ErrorKind::FileTooLarge),
    })?;
    // SAFETY: the mapping covers exactly the file's length, and the log only
    // ever grows its files (and maps them anew), so no access goes past the
    // end. The directory lock keeps other writers out; a process that
    // ignores it and shrinks the file could still cause SIGBUS.
    unsafe { MmapOptions::new().len(length).populate().map_mut(file) }
        .map_err(LogError::io("mmap", path))
}

/// End of the last non-zero byte in `data[from..]`; `from` when all are zero.
fn nonzero_end(data: &[u8], from: usize) -> usize {
    const CHUNK_BYTES: usize = 4096;
    let tail = &data[from..];
    let Some(chunk_index) = tail
        .chunks(CHUNK_BYTES)
        .rposition(|chunk| chunk.iter().fold(0u8, |any, &byte| any | byte) != 0)
    else {
        return from;
    };
    let chunk_start = chunk_index * CHUNK_BYTES;
    let chunk = &tail[chunk_start..tail.len().min(chunk_start + CHUNK_BYTES)];
    let last_in_chunk = chunk
        .iter()
        .rposition(|&byte| byte != 0)
        .map_or(0, |index| index + 1);
    from + chunk_start + last_in_chunk
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_by_first_seq() {
        assert_eq!(segment_file_name(0), "00000000000000000000.seg");
        assert_eq!(segment_file_name(u64::MAX), "18446744073709551615.seg");
    }

    #[test]
    fn nonzero_end_finds_the_last_nonzero_byte() {
        let mut data = vec![0u8; 3 * 4096 + 100];
        assert_eq!(nonzero_end(&data, 10), 10);
        data[5] = 1;
        assert_eq!(nonzero_end(&data, 10), 10);
        data[4096 + 7] = 9;
        assert_eq!(nonzero_end(&data, 10), 4096 + 8);
        data[3 * 4096 + 99] = 1;
        assert_eq!(nonzero_end(&data, 10), data.len());
    }
}
