//! Start-up recovery: check the records at or above the durable watermark
//! one by one (a sealed segment wholly below it is walked by frame lengths
//! and its records are verified when read), refuse corruption below the
//! watermark, cut the tail from the first bad record above it.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{CorruptReason, LogError};
use crate::segment::{corrupt, sync_dir, Segment, SEGMENT_SUFFIX, TEMP_SUFFIX};
use crate::{LogConfig, RecoveryReport};

/// The segments that survived recovery, with the on-disk watermark.
#[derive(Debug)]
pub struct Recovered {
    /// Surviving segments in seq order; the last may be sealed (the process
    /// stopped between sealing it and creating its successor).
    pub segments: Vec<Segment>,
    /// Every seq below this was durable according to the headers.
    pub durable_end_seq: u64,
    /// What recovery found and did.
    pub report: RecoveryReport,
}

/// Recovers the log in `dir` (which exists and is locked by the caller).
pub fn recover(dir: &Path, config: &LogConfig) -> Result<Recovered, LogError> {
    let mut segments = open_segments(dir, config.segment_bytes)?;
    let durable_end_seq = segments
        .iter()
        .map(|segment| segment.watermark().durable_end_seq)
        .max()
        .unwrap_or(0);
    let kept_segments = scan_segments(&mut segments, durable_end_seq, config.max_record_bytes)?;
    let removed_bytes = remove_segments(dir, segments.drain(kept_segments..))?;
    let (truncated_bytes, truncated_at) = match segments.last_mut() {
        Some(last) => cut_tail(last, durable_end_seq, removed_bytes)?,
        None => (removed_bytes, None),
    };
    let records = match (segments.first(), segments.last()) {
        (Some(first), Some(last)) => last.end_seq() - first.first_seq(),
        _ => 0,
    };
    let report = RecoveryReport {
        records,
        durable_watermark_seq: durable_end_seq.checked_sub(1),
        truncated_bytes,
        truncated_at,
        segments: segments.len(),
    };
    Ok(Recovered {
        segments,
        durable_end_seq,
        report,
    })
}

/// Zeroes whatever follows the last good record of the last kept segment
/// and reopens it if it was sealed further on. Returns the bytes cut (with
/// `removed_bytes` of deleted later segments) and where, if anything was.
fn cut_tail(
    last: &mut Segment,
    durable_end_seq: u64,
    removed_bytes: u64,
) -> Result<(u64, Option<(PathBuf, u64)>), LogError> {
    let data_end_offset = last.data_end_offset() as u64;
    let truncated_bytes = removed_bytes + last.zero_tail(last.data_end_offset())?;
    if last.is_sealed() && last.watermark().sealed_end_offset != data_end_offset {
        last.unseal(durable_end_seq)?;
    }
    let truncated_at = (truncated_bytes > 0).then(|| (last.path().to_path_buf(), data_end_offset));
    Ok((truncated_bytes, truncated_at))
}

/// Scans the segments in order and returns how many to keep: all of them,
/// or those up to the one holding the first bad record above the watermark.
fn scan_segments(
    segments: &mut [Segment],
    durable_end_seq: u64,
    max_record_bytes: u32,
) -> Result<usize, LogError> {
    let mut expected_seq = segments.first().map_or(0, Segment::first_seq);
    let segment_count = segments.len();
    for (index, segment) in segments.iter_mut().enumerate() {
        let is_last = index + 1 == segment_count;
        check_structure(segment, expected_seq, is_last)?;
        // A sealed segment before the last whose records all lie below the
        // durable watermark is walked by frame lengths only; its records
        // are verified when read. Only the log's durable tail is checked
        // record by record at start-up, so start-up costs little more for
        // a long log than for a short one.
        if !is_last {
            let walked = segment.walk_sealed(max_record_bytes);
            if let Some(stop) = walked.filter(|stop| stop.seq <= durable_end_seq) {
                expected_seq = stop.seq;
                continue;
            }
        }
        let stop = segment.scan(max_record_bytes);
        expected_seq = stop.seq;
        // Unless a later segment continues from here, the log's data ends
        // at this stop, which must not be below the durable watermark.
        let log_ends_here = stop.bad.is_some() || is_last;
        let below_watermark = (log_ends_here && stop.seq < durable_end_seq)
            || (stop.offset as u64) < segment.watermark().durable_end_offset;
        match (stop.bad, below_watermark) {
            (bad, true) => {
                let reason = bad.unwrap_or(CorruptReason::UnexpectedEnd);
                return Err(corrupt(segment.path(), stop.offset, reason));
            }
            (Some(_), false) => return Ok(index + 1),
            (None, false) => {}
        }
    }
    Ok(segment_count)
}

/// A segment must continue the seq of the one before it, and every segment
/// but the last must be sealed (the seal is durable before a successor exists).
fn check_structure(segment: &Segment, expected_seq: u64, is_last: bool) -> Result<(), LogError> {
    if segment.first_seq() != expected_seq {
        let reason = CorruptReason::SegmentGap {
            expected_seq,
            first_seq: segment.first_seq(),
        };
        return Err(corrupt(segment.path(), 0, reason));
    }
    if !is_last && !segment.is_sealed() {
        return Err(corrupt(segment.path(), 0, CorruptReason::NotSealed));
    }
    Ok(())
}

/// Deletes segments after a cut tail and returns the data bytes they held.
fn remove_segments(dir: &Path, removed: impl Iterator<Item = Segment>) -> Result<u64, LogError> {
    let mut removed_bytes = 0;
    let mut any_removed = false;
    for segment in removed {
        removed_bytes += segment.written_data_bytes();
        fs::remove_file(segment.path()).map_err(LogError::io("remove", segment.path()))?;
        any_removed = true;
    }
    if any_removed {
        sync_dir(dir)?;
    }
    Ok(removed_bytes)
}

/// Opens every `.seg` file in `dir` in seq order, removing leftovers of
/// interrupted segment creation.
fn open_segments(dir: &Path, segment_bytes: u64) -> Result<Vec<Segment>, LogError> {
    let mut named = Vec::new();
    let entries = fs::read_dir(dir).map_err(LogError::io("read directory", dir))?;
    for entry in entries {
        let path = entry.map_err(LogError::io("read directory", dir))?.path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        if name.ends_with(TEMP_SUFFIX) {
            fs::remove_file(&path).map_err(LogError::io("remove", &path))?;
        } else if let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) {
            named.push((parse_first_seq(stem, &path)?, path));
        }
    }
    named.sort_unstable_by_key(|(first_seq, _)| *first_seq);
    named
        .into_iter()
        .map(|(first_seq, path)| Segment::open(path, first_seq, segment_bytes))
        .collect()
}

fn parse_first_seq(stem: &str, path: &Path) -> Result<u64, LogError> {
    let digits = stem.len() == 20 && stem.bytes().all(|byte| byte.is_ascii_digit());
    digits
        .then(|| stem.parse().ok())
        .flatten()
        .ok_or_else(|| corrupt(path, 0, CorruptReason::BadFileName))
}
