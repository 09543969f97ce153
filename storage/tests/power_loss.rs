//! Power-loss and corruption tests: segment images are built from what was
//! durable at the last sync plus a scrambled tail (power loss), or from a
//! synced log with a flipped byte below the watermark (corruption).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{append_records_until, assert_holds_records, record_for, seeded_rng, small_config};
use pc_storage::frame::frame_bytes;
use pc_storage::header::{read_header, write_slot, Watermark, SLOT_OFFSETS};
use pc_storage::{segment_file_name, CorruptReason, Durability, Log, LogError};
use rand::rngs::StdRng;
use rand::{Rng, RngCore};

fn config() -> pc_storage::LogConfig {
    small_config(Durability::Batch)
}

/// A single-segment log synced after `synced_records`, then `unsynced_records`
/// more appended without a sync; with the file images of both moments.
struct PowerLoss {
    dir: tempfile::TempDir,
    path: PathBuf,
    synced_records: u64,
    /// Offset after the last synced record.
    synced_end_offset: usize,
    /// Offset after the last unsynced record.
    unsynced_end_offset: usize,
    /// The file right after the sync: what was durable.
    durable_image: Vec<u8>,
    /// The file after the unsynced appends.
    unsynced_image: Vec<u8>,
}

impl PowerLoss {
    fn new(rng: &mut StdRng) -> PowerLoss {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(segment_file_name(0));
        let synced_records = rng.random_range(5..40);
        let unsynced_records = synced_records + rng.random_range(3..10);
        let (mut log, _) = Log::open(dir.path(), config()).expect("open");
        append_records_until(&mut log, synced_records);
        log.sync().expect("sync");
        let synced_end_offset = end_offset(&log, synced_records);
        let durable_image = fs::read(&path).expect("read segment");
        append_records_until(&mut log, unsynced_records);
        let unsynced_end_offset = end_offset(&log, unsynced_records);
        let unsynced_image = fs::read(&path).expect("read segment");
        assert_eq!(
            log.dirty().len(),
            1,
            "the unsynced records stay in the first segment"
        );
        PowerLoss {
            dir,
            path,
            synced_records,
            synced_end_offset,
            unsynced_end_offset,
            durable_image,
            unsynced_image,
        }
    }

    /// Writes the durable image cut at the synced end, then `tail`, then zeros.
    fn write_image_with_tail(&self, tail: &[u8]) {
        let mut image = self.durable_image.clone();
        image[self.synced_end_offset..].fill(0);
        image[self.synced_end_offset..self.synced_end_offset + tail.len()].copy_from_slice(tail);
        fs::write(&self.path, image).expect("write image");
    }

    fn unsynced_tail(&self) -> Vec<u8> {
        self.unsynced_image[self.synced_end_offset..self.unsynced_end_offset].to_vec()
    }

    /// Reopens and checks: every synced record kept, the tail cut, appends
    /// resume at the right seq, and a second reopen is clean.
    fn assert_recovers(&self, expect_cut: bool) {
        let (mut log, report) = Log::open(self.dir.path(), config()).expect("recovery succeeds");
        assert_eq!(report.durable_watermark_seq, Some(self.synced_records - 1));
        assert_eq!(report.records, self.synced_records);
        assert_holds_records(&log, self.synced_records);
        assert!(log.read(self.synced_records).expect("read").is_none());
        let tail_bytes = (self.unsynced_end_offset - self.synced_end_offset) as u64;
        if expect_cut {
            assert_eq!(
                report.truncated_at,
                Some((self.path.clone(), self.synced_end_offset as u64))
            );
            assert!(
                (1..=tail_bytes).contains(&report.truncated_bytes),
                "{report:?}"
            );
        } else {
            assert_eq!(
                (report.truncated_at.clone(), report.truncated_bytes),
                (None, 0)
            );
        }
        let (kind, body) = record_for(self.synced_records);
        assert_eq!(
            log.append(kind, &body).expect("append"),
            self.synced_records
        );
        log.sync().expect("sync");
        drop(log);
        let (log, report) = Log::open(self.dir.path(), config()).expect("clean reopen");
        assert_eq!((report.truncated_at, report.truncated_bytes), (None, 0));
        assert_eq!(report.durable_watermark_seq, Some(self.synced_records));
        assert_holds_records(&log, self.synced_records + 1);
    }
}

/// Offset after record `end_seq - 1`.
fn end_offset(log: &Log, end_seq: u64) -> usize {
    let last = log.read(end_seq - 1).expect("read").expect("record exists");
    let body_bytes = u32::try_from(last.body.len()).expect("small body");
    (last.offset + frame_bytes(body_bytes)) as usize
}

#[test]
fn power_loss_with_zeroed_tail_keeps_synced_records() {
    let (mut rng, _) = seeded_rng("power_loss_with_zeroed_tail_keeps_synced_records");
    let scenario = PowerLoss::new(&mut rng);
    scenario.write_image_with_tail(&[]);
    scenario.assert_recovers(false);
}

#[test]
fn power_loss_with_garbage_tail_cuts_it() {
    let (mut rng, _) = seeded_rng("power_loss_with_garbage_tail_cuts_it");
    let scenario = PowerLoss::new(&mut rng);
    let mut garbage = scenario.unsynced_tail();
    rng.fill_bytes(&mut garbage);
    garbage[0] |= 1;
    scenario.write_image_with_tail(&garbage);
    scenario.assert_recovers(true);
}

#[test]
fn power_loss_drops_valid_records_after_a_bad_one() {
    let (mut rng, _) = seeded_rng("power_loss_drops_valid_records_after_a_bad_one");
    let scenario = PowerLoss::new(&mut rng);
    let mut tail = scenario.unsynced_tail();
    // Byte 5 is inside the first unsynced record's seq field: its checksum
    // fails while the records after it keep valid checksums and seqs.
    tail[5] ^= 0x01;
    scenario.write_image_with_tail(&tail);
    scenario.assert_recovers(true);
}

#[test]
fn power_loss_with_torn_record_cuts_it() {
    let (mut rng, _) = seeded_rng("power_loss_with_torn_record_cuts_it");
    let scenario = PowerLoss::new(&mut rng);
    let (_, body) = record_for(scenario.synced_records);
    let first_frame_bytes = frame_bytes(u32::try_from(body.len()).expect("small body")) as usize;
    let tail = scenario.unsynced_tail();
    scenario.write_image_with_tail(&tail[..first_frame_bytes / 2]);
    scenario.assert_recovers(true);
}

#[test]
fn power_loss_after_roll_over_unseals_and_drops_later_segments() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first_path = dir.path().join(segment_file_name(0));
    let (mut log, _) = Log::open(dir.path(), config()).expect("open");
    append_records_until(&mut log, 20);
    log.sync().expect("sync");
    let synced_end_offset = end_offset(&log, 20);
    append_records_until(&mut log, 400);
    assert!(
        log.dirty().len() >= 3,
        "unsynced records span several segments"
    );
    drop(log);
    // The seal is durable (it was synced before the next segment existed);
    // the first segment's unsynced records are lost; later segments survive.
    let mut image = fs::read(&first_path).expect("read");
    image[synced_end_offset..].fill(0);
    fs::write(&first_path, image).expect("write image");
    let (log, report) = Log::open(dir.path(), config()).expect("recovery succeeds");
    assert_eq!(report.segments, 1);
    assert_eq!(report.durable_watermark_seq, Some(19));
    assert_eq!(
        report.truncated_at,
        Some((first_path, synced_end_offset as u64))
    );
    assert!(report.truncated_bytes > 0);
    assert_holds_records(&log, 20);
    drop(log);
    let (mut log, _) = Log::open(dir.path(), config()).expect("reopen");
    append_records_until(&mut log, 300);
    log.sync().expect("sync");
    drop(log);
    let (log, report) = Log::open(dir.path(), config()).expect("reopen");
    assert_eq!(report.truncated_bytes, 0);
    assert_holds_records(&log, 300);
}

/// (path, offset, frame bytes) of every record in a synced multi-segment log.
fn synced_log_records(dir: &Path, end_seq: u64) -> Vec<(PathBuf, u64, u64)> {
    let (mut log, _) = Log::open(dir, config()).expect("open");
    append_records_until(&mut log, end_seq);
    log.sync().expect("sync");
    log.iter_from(0)
        .map(|record| {
            let record = record.expect("record");
            let body_bytes = u32::try_from(record.body.len()).expect("small body");
            (
                record.path.to_path_buf(),
                record.offset,
                frame_bytes(body_bytes),
            )
        })
        .collect()
}

#[test]
fn byte_flip_below_watermark_is_refused_naming_file_and_offset() {
    let (mut rng, seed) = seeded_rng("byte_flip_below_watermark_is_refused_naming_file_and_offset");
    let dir = tempfile::tempdir().expect("temp dir");
    let records = synced_log_records(dir.path(), 300);
    // Positions in a frame: length, kind, seq, checksum, then body/padding.
    let frame_positions = [0u64, 3, 4, 5, 12, 13, 16, 17];
    for trial in 0..16 {
        let (path, offset, frame_bytes) = records[rng.random_range(0..records.len())].clone();
        let position = match frame_positions.get(trial) {
            Some(&position) => position.min(frame_bytes - 1),
            None => rng.random_range(0..frame_bytes),
        };
        let original = fs::read(&path).expect("read");
        let mut flipped = original.clone();
        flipped[(offset + position) as usize] ^= 1 << rng.random_range(0..8);
        fs::write(&path, &flipped).expect("write");
        let context = format!(
            "seed {seed}, {} offset {offset} + {position}",
            path.display()
        );
        // A flip in the log's durable tail refuses start-up; one in a
        // sealed segment below it (walked by frame lengths at start-up) is
        // refused when the record is read. Either names file and offset.
        let error = match Log::open(dir.path(), config()) {
            Err(error) => error,
            Ok((log, _)) => log
                .iter_from(0)
                .find_map(Result::err)
                .unwrap_or_else(|| panic!("{context}: the flipped record read back")),
        };
        let LogError::Corrupt {
            path: bad_path,
            offset: bad_offset,
            ..
        } = &error
        else {
            panic!("{context}: expected Corrupt, got {error}");
        };
        assert_eq!((bad_path, *bad_offset), (&path, offset), "{context}");
        let line = error.to_string();
        assert!(
            line.contains(&path.display().to_string()),
            "{context}: {line}"
        );
        assert!(
            line.contains(&format!("offset {offset}")),
            "{context}: {line}"
        );
        assert!(!line.contains('\n'), "{context}: {line}");
        fs::write(&path, &original).expect("restore");
    }
    let (log, report) = Log::open(dir.path(), config()).expect("restored log opens");
    assert_eq!(report.truncated_bytes, 0);
    assert_holds_records(&log, 300);
}

#[test]
fn torn_watermark_slot_falls_back_to_the_other_and_both_torn_is_corrupt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let records = synced_log_records(dir.path(), 50);
    let path = records[0].0.clone();
    let original = fs::read(&path).expect("read");
    for slot_offset in SLOT_OFFSETS {
        let mut torn = original.clone();
        torn[slot_offset + 3] ^= 0x10;
        fs::write(&path, &torn).expect("write");
        let (log, report) = Log::open(dir.path(), config()).expect("one valid slot is enough");
        assert!(report.durable_watermark_seq <= Some(49));
        assert_holds_records(&log, 50);
        drop(log);
        fs::write(&path, &original).expect("restore");
    }
    let mut torn = original;
    for slot_offset in SLOT_OFFSETS {
        torn[slot_offset + 3] ^= 0x10;
    }
    fs::write(&path, &torn).expect("write");
    match Log::open(dir.path(), config()) {
        Err(LogError::Corrupt {
            path: bad_path,
            offset: 0,
            reason: CorruptReason::NoValidWatermark,
        }) => {
            assert_eq!(bad_path, path);
        }
        other => panic!("expected NoValidWatermark, got {other:?}"),
    }
}

#[test]
fn missing_middle_segment_is_a_segment_gap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let records = synced_log_records(dir.path(), 400);
    let middle = records
        .iter()
        .map(|(path, _, _)| path)
        .find(|path| **path != records[0].0)
        .expect("a second segment");
    fs::remove_file(middle).expect("remove");
    let error = Log::open(dir.path(), config()).expect_err("gap is refused");
    assert!(
        matches!(error, LogError::Corrupt { reason: CorruptReason::SegmentGap { expected_seq, .. }, .. } if expected_seq > 0),
        "{error}"
    );
}

#[test]
fn unsealed_segment_followed_by_another_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let records = synced_log_records(dir.path(), 400);
    let first_path = records[0].0.clone();
    let mut image = fs::read(&first_path).expect("read");
    let header = read_header(&image, 0).expect("valid header");
    assert!(header.watermark.is_sealed());
    let unsealed = Watermark {
        generation: header.watermark.generation + 1,
        sealed_end_offset: 0,
        ..header.watermark
    };
    write_slot(&mut image, header.next_slot, &unsealed);
    fs::write(&first_path, image).expect("write");
    match Log::open(dir.path(), config()) {
        Err(LogError::Corrupt {
            path,
            offset: 0,
            reason: CorruptReason::NotSealed,
        }) => assert_eq!(path, first_path),
        other => panic!("expected NotSealed, got {other:?}"),
    }
}

#[test]
fn crash_between_seal_and_next_segment_creation_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut log, _) = Log::open(dir.path(), config()).expect("open");
    append_records_until(&mut log, 60);
    log.sync().expect("sync");
    let first_path = dir.path().join(segment_file_name(0));
    let sealed_end_seq = loop {
        let seq = log.next_seq();
        append_records_until(&mut log, seq + 1);
        if log.read(seq).expect("read").expect("record").path != first_path {
            break seq;
        }
    };
    drop(log);
    // As if the process died after sealing, before the successor was renamed
    // into place: the successor is gone and its temporary file is left over.
    let successor = dir.path().join(segment_file_name(sealed_end_seq));
    fs::remove_file(&successor).expect("remove successor");
    let leftover = dir.path().join(format!("{sealed_end_seq:020}.seg.tmp"));
    fs::write(&leftover, b"partial").expect("write leftover");
    let (mut log, report) = Log::open(dir.path(), config()).expect("recovery succeeds");
    assert!(!leftover.exists(), "temporary segment removed");
    assert_eq!(report.records, sealed_end_seq);
    assert_eq!(report.segments, 2);
    assert!(successor.exists(), "recovery created the successor");
    append_records_until(&mut log, sealed_end_seq + 5);
    log.sync().expect("sync");
    drop(log);
    let (log, _) = Log::open(dir.path(), config()).expect("reopen");
    assert_holds_records(&log, sealed_end_seq + 5);
}
