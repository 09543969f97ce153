//! Behaviour of an open log: round trips, roll-over, bounds, the dirty /
//! mark_durable protocol, poisoning, short files and the directory lock.

mod common;

use std::fs::{self, OpenOptions};
use std::io;

use common::{append_records_until, assert_holds_records, seeded_rng, small_config};
use pc_storage::{segment_file_name, CorruptReason, Durability, Log, LogConfig, LogError};
use proptest::prelude::*;
use rand::Rng;

fn config() -> LogConfig {
    small_config(Durability::Batch)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Records of random kinds and sizes, over several 64 KiB segments,
    /// read back the same by iteration from any seq and by random access,
    /// before and after a reopen; syncs at random points change nothing.
    #[test]
    fn records_round_trip_through_reopen(
        records in proptest::collection::vec((any::<u8>(), 0usize..3000), 1..300),
        sync_every in 1usize..64,
        starts in proptest::collection::vec(any::<prop::sample::Index>(), 4),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let bodies: Vec<(u8, Vec<u8>)> = records
            .iter()
            .enumerate()
            .map(|(index, &(kind, body_bytes))| (kind, (0..body_bytes).map(|byte| (byte * 31 + index) as u8).collect()))
            .collect();
        let (mut log, _) = Log::open(dir.path(), config()).expect("open");
        for (index, (kind, body)) in bodies.iter().enumerate() {
            prop_assert_eq!(log.append(*kind, body).expect("append"), index as u64);
            if index % sync_every == 0 {
                log.sync().expect("sync");
            }
        }
        assert_reads_back(&log, &bodies, &starts)?;
        drop(log);
        let (log, report) = Log::open(dir.path(), config()).expect("reopen");
        prop_assert_eq!(report.records, bodies.len() as u64);
        prop_assert_eq!(report.truncated_bytes, 0);
        let total_bytes: usize = records.iter().map(|&(_, body_bytes)| body_bytes).sum();
        prop_assert!(report.segments as u64 > total_bytes as u64 / (64 << 10));
        assert_reads_back(&log, &bodies, &starts)?;
    }
}

fn assert_reads_back(
    log: &Log,
    bodies: &[(u8, Vec<u8>)],
    starts: &[prop::sample::Index],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.next_seq(), bodies.len() as u64);
    for start in starts.iter().map(|index| index.index(bodies.len())) {
        let mut yielded = 0;
        for (record, (kind, body)) in log.iter_from(start as u64).zip(&bodies[start..]) {
            let record = record.expect("record");
            prop_assert_eq!(
                (record.seq, record.kind, record.body),
                ((start + yielded) as u64, *kind, &body[..])
            );
            yielded += 1;
        }
        prop_assert_eq!(yielded, bodies.len() - start);
        prop_assert_eq!(log.iter_from(start as u64).count(), bodies.len() - start);
    }
    for (seq, (kind, body)) in bodies.iter().enumerate() {
        let record = log.read(seq as u64).expect("read").expect("present");
        prop_assert_eq!((record.kind, record.body), (*kind, &body[..]));
    }
    prop_assert!(log.read(bodies.len() as u64).expect("read").is_none());
    prop_assert_eq!(log.iter_from(u64::MAX).count(), 0);
    Ok(())
}

#[test]
fn roll_over_seals_full_segments_and_names_files_by_first_seq() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut log, report) = Log::open(dir.path(), config()).expect("open");
    assert_eq!((report.records, report.segments), (0, 1));
    append_records_until(&mut log, 500);
    let mut first_seqs: Vec<u64> = Vec::new();
    for record in log.iter_from(0) {
        let record = record.expect("record");
        if first_seqs.is_empty()
            || record.path
                != dir
                    .path()
                    .join(segment_file_name(*first_seqs.last().expect("one")))
        {
            assert_eq!(record.path, dir.path().join(segment_file_name(record.seq)));
            assert_eq!(
                record.offset, 4096,
                "a segment's first record follows the header page"
            );
            first_seqs.push(record.seq);
        }
    }
    assert!(
        first_seqs.len() >= 4,
        "500 records of up to 1 KiB span several 64 KiB segments"
    );
    let mut on_disk: Vec<String> = fs::read_dir(dir.path())
        .expect("list")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .filter(|name| name.ends_with(".seg"))
        .collect();
    on_disk.sort();
    let expected: Vec<String> = first_seqs
        .iter()
        .map(|&seq| segment_file_name(seq))
        .collect();
    assert_eq!(on_disk, expected);
    for name in &on_disk {
        assert_eq!(
            fs::metadata(dir.path().join(name)).expect("stat").len(),
            64 << 10,
            "{name} pre-allocated"
        );
    }
    log.sync().expect("sync");
    drop(log);
    let (log, report) = Log::open(dir.path(), config()).expect("reopen");
    assert_eq!(report.segments, first_seqs.len());
    assert_holds_records(&log, 500);
}

#[test]
fn record_over_max_record_bytes_is_rejected_and_nothing_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut log, _) = Log::open(dir.path(), config()).expect("open");
    append_records_until(&mut log, 3);
    let too_large = vec![7u8; (8 << 10) + 1];
    match log.append(1, &too_large) {
        Err(LogError::RecordTooLarge {
            body_bytes,
            max_record_bytes,
        }) => {
            assert_eq!((body_bytes, max_record_bytes), (too_large.len(), 8 << 10));
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    assert_eq!(log.next_seq(), 3);
    let largest = vec![9u8; 8 << 10];
    assert_eq!(log.append(2, &largest).expect("a maximal record fits"), 3);
    drop(log);
    let (log, _) = Log::open(dir.path(), config()).expect("reopen");
    assert_eq!(log.next_seq(), 4);
    assert_eq!(
        log.read(3).expect("read").expect("present").body,
        &largest[..]
    );
}

#[test]
fn config_whose_segments_cannot_hold_a_maximal_record_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = LogConfig {
        max_record_bytes: 64 << 10,
        ..config()
    };
    let error = Log::open(dir.path(), config).expect_err("invalid config");
    assert!(
        matches!(
            error,
            LogError::InvalidConfig {
                segment_bytes: 65536,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn dirty_ranges_then_mark_durable_advance_the_watermark() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut log, _) = Log::open(dir.path(), config()).expect("open");
    assert!(log.dirty().is_empty());
    assert_eq!(log.durable_seq(), None);
    append_records_until(&mut log, 10);
    let dirty = log.dirty();
    assert_eq!(dirty.len(), 1);
    assert_eq!((dirty[0].offset, dirty[0].upto_seq), (4096, 9));
    let last = log.read(9).expect("read").expect("present");
    assert_eq!(
        dirty[0].offset + dirty[0].len,
        last.offset + pc_storage::frame::frame_bytes(last.body.len() as u32)
    );
    assert_eq!(
        log.durable_seq(),
        None,
        "appending never makes anything durable"
    );
    // The engine's path: fdatasync each range by its fd, then mark_durable.
    engine_sync(&mut log);
    assert_eq!(log.durable_seq(), Some(9));
    let header_only = log.dirty();
    assert_eq!(
        header_only.len(),
        1,
        "the new watermark slot is still to be synced"
    );
    assert_eq!(
        (
            header_only[0].offset,
            header_only[0].len,
            header_only[0].upto_seq
        ),
        (0, 4096, 9)
    );
    engine_sync(&mut log);
    assert!(log.dirty().is_empty());
    append_records_until(&mut log, 400);
    let spanning = log.dirty();
    assert!(
        spanning.len() >= 3,
        "one range per segment with unsynced records"
    );
    assert!(spanning
        .windows(2)
        .all(|pair| pair[0].upto_seq < pair[1].upto_seq));
    assert_eq!(spanning.last().expect("ranges").upto_seq, 399);
    engine_sync(&mut log);
    assert_eq!(log.durable_seq(), Some(399));
    assert_eq!(
        log.dirty().len(),
        1,
        "only the active segment's watermark slot remains"
    );
}

fn engine_sync(log: &mut Log) {
    let dirty = log.dirty();
    for range in &dirty {
        // SAFETY: fdatasync on a descriptor the log keeps open while it lives.
        let status = unsafe { libc::fdatasync(range.fd) };
        assert_eq!(
            status,
            0,
            "fdatasync {}: {}",
            range.path.display(),
            io::Error::last_os_error()
        );
    }
    let upto_seq = dirty
        .iter()
        .map(|range| range.upto_seq)
        .max()
        .expect("something to sync");
    log.mark_durable(upto_seq);
}

#[test]
fn failed_sync_poisons_the_log_for_appends_and_syncs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut log, _) = Log::open(dir.path(), config()).expect("open");
    append_records_until(&mut log, 5);
    log.mark_sync_failed(&io::Error::from_raw_os_error(libc::EIO));
    let append = log.append(1, b"after failure").expect_err("poisoned");
    assert!(matches!(append, LogError::Poisoned { .. }), "{append}");
    assert!(append.to_string().contains("fdatasync failed"), "{append}");
    assert!(matches!(log.sync(), Err(LogError::Poisoned { .. })));
    log.mark_durable(4);
    assert_eq!(
        log.durable_seq(),
        None,
        "no durability is claimed after a failed sync"
    );
    assert_eq!(log.next_seq(), 5);
}

#[test]
fn shorter_segment_file_is_mapped_to_its_length_and_extended_on_append() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(segment_file_name(0));
    let (mut log, _) = Log::open(dir.path(), config()).expect("open");
    append_records_until(&mut log, 10);
    log.sync().expect("sync");
    drop(log);
    OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(16 << 10)
        .expect("truncate");
    let (mut log, report) = Log::open(dir.path(), config()).expect("short file opens");
    assert_eq!(report.truncated_bytes, 0);
    assert_holds_records(&log, 10);
    append_records_until(&mut log, 50);
    assert_eq!(
        fs::metadata(&path).expect("stat").len(),
        64 << 10,
        "extended to the segment size"
    );
    log.sync().expect("sync");
    drop(log);
    let (log, _) = Log::open(dir.path(), config()).expect("reopen");
    assert_holds_records(&log, 50);
}

#[test]
fn file_cut_below_the_watermark_is_corrupt_not_sigbus() {
    let (mut rng, seed) = seeded_rng("file_cut_below_the_watermark_is_corrupt_not_sigbus");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(segment_file_name(0));
    let (mut log, _) = Log::open(dir.path(), config()).expect("open");
    append_records_until(&mut log, 40);
    log.sync().expect("sync");
    let cut_seq = rng.random_range(0..40);
    let record_offset = log.read(cut_seq).expect("read").expect("present").offset;
    let cut_offset = record_offset + rng.random_range(0..8);
    drop(log);
    OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(cut_offset)
        .expect("truncate");
    let error =
        Log::open(dir.path(), config()).expect_err("records below the watermark are missing");
    match error {
        LogError::Corrupt {
            path: bad_path,
            offset,
            reason,
        } => {
            assert_eq!((bad_path, offset), (path, record_offset), "seed {seed}");
            assert!(
                matches!(
                    reason,
                    CorruptReason::UnexpectedEnd | CorruptReason::CrossesSegmentEnd
                ),
                "seed {seed}: {reason}"
            );
        }
        other => panic!("seed {seed}: expected Corrupt, got {other}"),
    }
}

#[test]
fn second_open_of_a_locked_directory_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (log, _) = Log::open(dir.path(), config()).expect("open");
    assert!(matches!(
        Log::open(dir.path(), config()),
        Err(LogError::Locked { .. })
    ));
    drop(log);
    assert!(
        Log::open(dir.path(), config()).is_ok(),
        "the lock is released on drop"
    );
}

#[test]
fn open_creates_a_missing_directory_and_reports_the_policy() {
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("shard-0").join("log");
    let (log, report) = Log::open(&dir, small_config(Durability::Always)).expect("open");
    assert!(dir.join(segment_file_name(0)).is_file());
    assert_eq!(report.durable_watermark_seq, None);
    assert_eq!(log.durability(), Durability::Always);
    assert_eq!(log.next_seq(), 0);
}
