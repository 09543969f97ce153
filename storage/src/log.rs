//! The log: segments in seq order, the last one open for appends.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use crate::error::LogError;
use crate::frame::frame_bytes;
use crate::header::HEADER_BYTES;
use crate::recovery::{recover, Recovered};
use crate::segment::{sync_dir, Segment};
use crate::{Durability, LogConfig};

/// Name of the lock file that keeps a second writer out of a log directory.
const LOCK_FILE_NAME: &str = "LOCK";

/// One record, borrowed from the log's mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record's sequence number.
    pub seq: u64,
    /// The caller-defined kind given to `append`.
    pub kind: u8,
    /// The body given to `append`.
    pub body: &'a [u8],
    /// The segment file holding the record.
    pub path: &'a Path,
    /// Byte offset of the record's frame in that file.
    pub offset: u64,
}

/// A file range that must be `fdatasync`ed (the whole file, in practice)
/// to make everything appended so far durable, with the watermark that
/// `Log::mark_durable` may then record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyRange {
    /// Descriptor of the segment file; valid while the `Log` lives.
    pub fd: RawFd,
    /// First byte to sync.
    pub offset: u64,
    /// Bytes to sync.
    pub len: u64,
    /// Once this range is synced, every record up to this seq in the file is durable.
    pub upto_seq: u64,
    /// The segment file.
    pub path: PathBuf,
}

/// What `Log::open` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records in the log after recovery.
    pub records: u64,
    /// Highest seq the on-disk watermark claimed durable.
    pub durable_watermark_seq: Option<u64>,
    /// Bytes of unsynced tail that recovery cut off (zeroed or deleted).
    pub truncated_bytes: u64,
    /// Segment file and offset where the tail was cut, if it was.
    pub truncated_at: Option<(PathBuf, u64)>,
    /// Segment files after recovery.
    pub segments: usize,
}

/// A segmented, pre-allocated, memory-mapped append-only log.
///
/// `append` writes into the mapping and never syncs. The driver asks
/// `dirty` what to `fdatasync`, submits that (io_uring), and on completion
/// calls `mark_durable`, which writes the durable watermark into the active
/// segment's header; that write becomes durable with the next sync, so the
/// on-disk watermark is a lower bound that may lag one sync behind.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    /// Non-empty; the last segment takes appends.
    segments: Vec<Segment>,
    /// Leading segments that are sealed and fully durable.
    clean_segments: usize,
    next_seq: u64,
    /// Every seq below this is known durable.
    durable_end_seq: u64,
    /// The first failure after which the log refuses appends and syncs.
    poisoned: Option<String>,
    /// Holds the `flock` on the directory's lock file while the log is open.
    _lock: File,
}

impl Log {
    /// Opens the log in `dir`, creating the directory if absent, and
    /// recovers it: every record is verified; a bad record below the durable
    /// watermark is refused as `LogError::Corrupt`; from the first bad record
    /// above it the tail is cut. Records that survived above the watermark
    /// are synced before this returns.
    pub fn open(dir: &Path, config: LogConfig) -> Result<(Log, RecoveryReport), LogError> {
        config.validate()?;
        create_dir(dir)?;
        let lock = lock_dir(dir)?;
        let Recovered {
            mut segments,
            durable_end_seq,
            mut report,
        } = recover(dir, &config)?;
        let next_seq = segments.last().map_or(0, Segment::end_seq);
        if segments.last().is_none_or(Segment::is_sealed) {
            segments.push(Segment::create(
                dir,
                next_seq,
                config.segment_bytes,
                durable_end_seq,
            )?);
        }
        report.segments = segments.len();
        assert!(
            durable_end_seq <= next_seq,
            "recovery keeps every record below the watermark"
        );
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            clean_segments: 0,
            next_seq,
            durable_end_seq,
            poisoned: None,
            _lock: lock,
        };
        log.mark_synced(durable_end_seq);
        log.sync()?;
        Ok((log, report))
    }

    /// Appends a record and returns its seq. Writes into the mapping only;
    /// never syncs the record. When it does not fit the active segment, that
    /// segment is sealed (its header page synced, so that the seal is durable
    /// before a successor exists) and the next one is created (fallocate,
    /// fsync, rename, directory fsync): the one blocking step, once per
    /// segment. Any I/O error here poisons the log.
    pub fn append(&mut self, kind: u8, body: &[u8]) -> Result<u64, LogError> {
        self.check_poisoned()?;
        let body_bytes = u32::try_from(body.len())
            .ok()
            .filter(|&body_bytes| body_bytes <= self.config.max_record_bytes)
            .ok_or(LogError::RecordTooLarge {
                body_bytes: body.len(),
                max_record_bytes: self.config.max_record_bytes,
            })?;
        if !self.active().fits(frame_bytes(body_bytes)) {
            let rolled = self.roll_over();
            self.poison_on_error(rolled)?;
        }
        let seq = self.next_seq;
        let written = self.active_mut().append(seq, kind, body);
        self.poison_on_error(written)?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Seals the active segment (durably) and starts the next one.
    fn roll_over(&mut self) -> Result<(), LogError> {
        let durable_end_seq = self.durable_end_seq;
        self.active_mut().seal(durable_end_seq)?;
        let segment = Segment::create(
            &self.dir,
            self.next_seq,
            self.config.segment_bytes,
            durable_end_seq,
        )?;
        self.segments.push(segment);
        Ok(())
    }

    /// The seq the next appended record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The highest seq known durable.
    pub fn durable_seq(&self) -> Option<u64> {
        self.durable_end_seq.checked_sub(1)
    }

    /// When the driver should sync.
    pub fn durability(&self) -> Durability {
        self.config.durability
    }

    /// The log's configuration.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// What must be `fdatasync`ed to make everything appended so far, and
    /// the last recorded watermark, durable: at most one range per segment
    /// file. Empty when there is nothing to sync. Never blocks.
    pub fn dirty(&self) -> Vec<DirtyRange> {
        self.segments[self.clean_segments..]
            .iter()
            .filter_map(Segment::dirty_range)
            .collect()
    }

    /// Records that every record up to `upto_seq` is durable: call it once
    /// the `fdatasync`s of all ranges of one `dirty` result have completed,
    /// with the highest `upto_seq` among them. Writes the watermark slot into
    /// the active segment's header, after the data it claims is durable; the
    /// slot itself becomes durable with the next sync. Does nothing once the
    /// log is poisoned.
    ///
    /// # Panics
    ///
    /// If `upto_seq` was never appended.
    pub fn mark_durable(&mut self, upto_seq: u64) {
        assert!(
            upto_seq < self.next_seq,
            "mark_durable({upto_seq}) but the last appended seq is {:?}",
            self.next_seq.checked_sub(1)
        );
        if self.poisoned.is_some() {
            return;
        }
        let durable_end_seq = upto_seq + 1;
        self.mark_synced(durable_end_seq);
        if durable_end_seq > self.durable_end_seq {
            self.durable_end_seq = durable_end_seq;
            self.active_mut().record_watermark(durable_end_seq);
        } else {
            self.active_mut().header_synced(durable_end_seq);
        }
    }

    fn mark_synced(&mut self, durable_end_seq: u64) {
        for segment in &mut self.segments[self.clean_segments..] {
            segment.mark_synced(durable_end_seq);
        }
        let last = self.segments.len() - 1;
        while self.clean_segments < last && self.segments[self.clean_segments].is_clean() {
            self.clean_segments += 1;
        }
    }

    /// The first record the log still holds (0 until it is pruned).
    pub fn first_seq(&self) -> u64 {
        self.segments[0].first_seq()
    }

    /// The segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments
            .iter()
            .map(|s| s.path().to_path_buf())
            .collect()
    }

    /// Bytes of the segment files on disk (their allocated size).
    pub fn disk_bytes(&self) -> u64 {
        self.segments
            .iter()
            .filter_map(|s| fs::metadata(s.path()).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Whether [`Log::prune_first_below`] would delete a segment.
    pub fn prunable_below(&self, seq: u64) -> bool {
        self.segments.len() > 1
            && self.clean_segments > 0
            && self.segments[0].is_sealed()
            && self.segments[0].end_seq() <= seq
    }

    /// Deletes the oldest segment if it is sealed, durable, not the active
    /// one and every record in it lies below `seq`; the directory is synced
    /// before this returns. The caller deletes one segment at a time, oldest
    /// first, so a crash between two deletions leaves a log that starts at
    /// a segment boundary and is whole from there. Returns the file deleted
    /// and its size.
    pub fn prune_first_below(&mut self, seq: u64) -> Result<Option<(PathBuf, u64)>, LogError> {
        self.check_poisoned()?;
        if !self.prunable_below(seq) {
            return Ok(None);
        }
        let segment = self.segments.remove(0);
        self.clean_segments -= 1;
        let path = segment.path().to_path_buf();
        let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        drop(segment);
        let removed = fs::remove_file(&path).map_err(LogError::io("remove", &path));
        let removed = self.poison_on_error(removed);
        removed?;
        let synced = crate::segment::sync_dir(&self.dir);
        self.poison_on_error(synced)?;
        Ok(Some((path, bytes)))
    }

    /// Blocking: `fdatasync` every dirty segment, then `mark_durable`. For
    /// tools and tests; the engine syncs through io_uring instead. A failed
    /// sync poisons the log and is never retried.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.check_poisoned()?;
        let mut upto_seq = None;
        for index in self.clean_segments..self.segments.len() {
            let Some(range) = self.segments[index].dirty_range() else {
                continue;
            };
            let synced = self.segments[index].sync_data();
            self.poison_on_error(synced)?;
            upto_seq = upto_seq.max(Some(range.upto_seq));
        }
        if let Some(upto_seq) = upto_seq {
            self.mark_durable(upto_seq);
        }
        Ok(())
    }

    /// Reports a failed `fdatasync` issued by the driver: the log is
    /// poisoned and refuses every further append and sync.
    pub fn mark_sync_failed(&mut self, error: &io::Error) {
        self.poisoned
            .get_or_insert_with(|| format!("fdatasync failed: {error}"));
    }

    /// Records from `seq` on (from the first record if `seq` is older). The
    /// iterator verifies each frame again and stops after the first error.
    pub fn iter_from(&self, seq: u64) -> LogIter<'_> {
        let seq = seq.max(self.segments[0].first_seq());
        let mut iter = LogIter {
            log: self,
            segment_index: self.segments.len() - 1,
            offset: HEADER_BYTES,
            seq,
            pending_error: None,
        };
        if seq < self.next_seq {
            iter.segment_index = self.segment_index(seq);
            match self.segments[iter.segment_index].locate(seq, self.config.max_record_bytes) {
                Ok(offset) => iter.offset = offset,
                Err(error) => iter.pending_error = Some(error),
            }
        }
        iter
    }

    /// The record `seq`, or `None` if the log does not hold it.
    pub fn read(&self, seq: u64) -> Result<Option<Record<'_>>, LogError> {
        if seq < self.segments[0].first_seq() || seq >= self.next_seq {
            return Ok(None);
        }
        self.iter_from(seq).next().transpose()
    }

    /// Index of the segment holding `seq` (`seq < next_seq`).
    fn segment_index(&self, seq: u64) -> usize {
        self.segments
            .partition_point(|segment| segment.end_seq() <= seq)
    }

    fn active(&self) -> &Segment {
        self.segments.last().expect("a log has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log has an active segment")
    }

    fn check_poisoned(&self) -> Result<(), LogError> {
        match &self.poisoned {
            Some(cause) => Err(LogError::Poisoned {
                dir: self.dir.clone(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn poison_on_error<T>(&mut self, result: Result<T, LogError>) -> Result<T, LogError> {
        if let Err(error) = &result {
            self.poisoned.get_or_insert_with(|| error.to_string());
        }
        result
    }
}

/// Iterator over records in seq order; yields `Err` once and then ends if a
/// frame fails verification.
#[derive(Debug)]
pub struct LogIter<'a> {
    log: &'a Log,
    segment_index: usize,
    offset: usize,
    seq: u64,
    pending_error: Option<LogError>,
}

impl<'a> Iterator for LogIter<'a> {
    type Item = Result<Record<'a>, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.pending_error.take() {
            self.seq = self.log.next_seq;
            return Some(Err(error));
        }
        if self.seq >= self.log.next_seq {
            return None;
        }
        while self.seq >= self.log.segments[self.segment_index].end_seq() {
            self.segment_index += 1;
            self.offset = HEADER_BYTES;
        }
        let segment = &self.log.segments[self.segment_index];
        match segment.record_at(self.offset, self.seq, self.log.config.max_record_bytes) {
            Ok((record, frame_bytes)) => {
                self.offset += frame_bytes;
                self.seq += 1;
                Some(Ok(record))
            }
            Err(error) => {
                self.seq = self.log.next_seq;
                Some(Err(error))
            }
        }
    }
}

/// Creates `dir` if absent and makes its entry durable in the parent.
fn create_dir(dir: &Path) -> Result<(), LogError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(LogError::io("create directory", dir))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

/// Takes an exclusive `flock` on the directory's lock file.
fn lock_dir(dir: &Path) -> Result<File, LogError> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(LogError::io("open", &path))?;
    // SAFETY: flock on a descriptor owned by `file`, which outlives the call.
    let status = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if status == 0 {
        return Ok(file);
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Err(LogError::Locked {
            dir: dir.to_path_buf(),
        })
    } else {
        Err(LogError::Io {
            operation: "flock",
            path,
            source: error,
        })
    }
}
