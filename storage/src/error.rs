//! Typed errors of the log. Each names the file it concerns.

use std::io;
use std::path::{Path, PathBuf};

/// Why a segment, or a record in it, is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CorruptReason {
    /// The record's checksum does not match its length, kind, seq and body.
    #[error("record checksum mismatch")]
    ChecksumMismatch,
    /// A record with a valid checksum but out of sequence: stale or misplaced.
    #[error("record has seq {found_seq}, expected {expected_seq}")]
    WrongSeq {
        /// The seq the log expected at this position.
        expected_seq: u64,
        /// The seq the record carries.
        found_seq: u64,
    },
    /// The record's length field is over `max_record_bytes`.
    #[error("record body of {body_bytes} bytes exceeds max_record_bytes {max_record_bytes}")]
    LengthOverBound {
        /// Body length from the frame header.
        body_bytes: u32,
        /// The configured bound.
        max_record_bytes: u32,
    },
    /// The record's frame runs past the end of the segment's data.
    #[error("record frame crosses the end of the segment")]
    CrossesSegmentEnd,
    /// The zero padding after a record body is not zero.
    #[error("non-zero padding after record body")]
    NonZeroPadding,
    /// Data ends (zero frame or end of file) where a record must be.
    #[error("data ends where a record must be")]
    UnexpectedEnd,
    /// The file is shorter than the 4096-byte header page.
    #[error("file is shorter than the segment header")]
    FileShorterThanHeader,
    /// The header does not start with the segment magic.
    #[error("not a log segment (bad magic)")]
    BadMagic,
    /// The header's identity checksum does not match.
    #[error("segment header checksum mismatch")]
    HeaderChecksumMismatch,
    /// The header has a format version this build cannot read.
    #[error("unsupported segment format version {version}")]
    UnsupportedVersion {
        /// The version found on disk.
        version: u32,
    },
    /// The header's first seq differs from the file name.
    #[error("file name says first seq {name_seq}, header says {header_seq}")]
    FirstSeqMismatch {
        /// First seq from the file name.
        name_seq: u64,
        /// First seq from the header.
        header_seq: u64,
    },
    /// Neither watermark slot has a valid checksum.
    #[error("no valid watermark slot")]
    NoValidWatermark,
    /// A segment that is not the last one was never sealed.
    #[error("segment is followed by another but is not sealed")]
    NotSealed,
    /// A segment's first seq does not continue the previous segment.
    #[error("segment starts at seq {first_seq}, expected {expected_seq}")]
    SegmentGap {
        /// The seq the previous segment ends at.
        expected_seq: u64,
        /// The seq this segment starts at.
        first_seq: u64,
    },
    /// A `.seg` file whose name is not a 20-digit sequence number.
    #[error("segment file name is not a 20-digit sequence number")]
    BadFileName,
}

/// An error of the log. `Display` is one line naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An I/O call failed.
    #[error("{operation} {path} failed: {source}")]
    Io {
        /// The system call or step that failed, e.g. `fdatasync`.
        operation: &'static str,
        /// File or directory it was applied to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Bad data below the durable watermark, or a broken segment structure:
    /// the log refuses to open (or a read refuses to return the record).
    #[error("corrupt log segment {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad record or header field in that file.
        offset: u64,
        /// What is wrong.
        reason: CorruptReason,
    },
    /// `append` was given a body over `max_record_bytes`; nothing was written.
    #[error("record body of {body_bytes} bytes exceeds max_record_bytes {max_record_bytes}")]
    RecordTooLarge {
        /// Length of the rejected body.
        body_bytes: usize,
        /// The configured bound.
        max_record_bytes: u32,
    },
    /// The configuration cannot work.
    #[error("invalid log config: segment_bytes {segment_bytes} must be a multiple of 4096 and hold the 4096-byte header plus one frame of max_record_bytes {max_record_bytes}")]
    InvalidConfig {
        /// Configured segment size.
        segment_bytes: u64,
        /// Configured record bound.
        max_record_bytes: u32,
    },
    /// Another `Log` (in this or another process) holds the directory.
    #[error("log directory {dir} is locked by another writer")]
    Locked {
        /// The log directory.
        dir: PathBuf,
    },
    /// An earlier sync or write failed; the log accepts no more appends or
    /// syncs (a failed fsync is never retried).
    #[error("log {dir} is poisoned by an earlier failure: {cause}")]
    Poisoned {
        /// The log directory.
        dir: PathBuf,
        /// The first failure, as one line.
        cause: String,
    },
}

impl LogError {
    /// Builds a `map_err` closure for an I/O step on `path`.
    pub(crate) fn io<'a>(
        operation: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> LogError + 'a {
        move |source| LogError::Io {
            operation,
            path: path.to_path_buf(),
            source,
        }
    }
}
