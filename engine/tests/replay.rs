//! The engine on one core over a small signed workload, then replay of its
//! data dir: it reproduces the run; a flipped byte in a logged anchor is
//! named by file and offset; a re-checksummed `RoundFinalized` record with
//! a wrong state root is named by its round; a log cut inside its last
//! record replays up to the last whole record.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pc_codec::{Decode, Encode, LogRecordKind, RoundFinalized};
use pc_engine::config::{RuntimeConfig, StorageConfig};
use pc_engine::runtime::host::usable_cpus;
use pc_engine::tools::engine::{self, EngineConfig, Intake};
use pc_engine::tools::replay::{render_text, replay};
use pc_engine::tools::workload::{load_or_generate, WorkloadParams};
use pc_storage::frame::{encode_frame, frame_bytes};
use pc_storage::{Durability, Log, LogConfig};

const SEGMENT_BYTES: u64 = 4 << 20;

/// Runs the engine over a 1-shard workload into `data_dir`; returns the
/// final state root (hex) and finalized events.
fn run_engine(root: &Path, data_dir: &Path) -> (String, u64) {
    let workload = load_or_generate(
        &root.join("cache"),
        WorkloadParams {
            shards: 1,
            committee: 4,
            tx_per_anchor: 8,
            events_per_shard: 512,
            cross_per_mille: 0,
        },
        false,
    )
    .unwrap();
    let report = engine::run(EngineConfig {
        runtime: RuntimeConfig {
            data_dir: data_dir.to_path_buf(),
            cpus: usable_cpus()[..1].to_vec(),
            placement: Some(vec![0]),
            storage: StorageConfig {
                fsync: Durability::Batch,
                segment_bytes: SEGMENT_BYTES,
                ..StorageConfig::default()
            },
            io_memory_bytes: None,
        },
        ring_capacity: 4,
        workload,
        intake: Intake::PerCore,
        max_run: None,
        verify_calibration: None,
        snapshot_interval: Duration::from_millis(10),
        handle_signals: false,
        progress: false,
        start_delay: Duration::ZERO,
        metrics: None,
    })
    .unwrap();
    let shard = &report.shards[0];
    assert_eq!(
        shard.counters.signature_verifies,
        shard.counters.finalized_events + shard.counters.anchors,
        "every signature verified exactly once"
    );
    (
        pc_codec::to_hex(&shard.state_root),
        shard.counters.finalized_events,
    )
}

fn segment(data_dir: &Path) -> PathBuf {
    data_dir
        .join("shard-000")
        .join(pc_storage::segment_file_name(0))
}

/// (kind, offset, body) of every record of shard 0.
fn records(data_dir: &Path) -> Vec<(LogRecordKind, u64, u64, Vec<u8>)> {
    let config = LogConfig {
        segment_bytes: SEGMENT_BYTES,
        durability: Durability::Never,
        max_record_bytes: pc_engine::runtime::data_dir::MAX_RECORD_BYTES,
    };
    let (log, _) = Log::open(&data_dir.join("shard-000"), config).unwrap();
    log.iter_from(0)
        .map(|r| {
            let r = r.unwrap();
            (
                LogRecordKind::from_u8(r.kind).unwrap(),
                r.offset,
                r.seq,
                r.body.to_vec(),
            )
        })
        .collect()
}

fn error_of(data_dir: &Path) -> String {
    replay(data_dir, None).unwrap_err().to_string()
}

#[test]
fn replay_reproduces_the_run_and_names_what_is_wrong() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let (state_root, finalized_events) = run_engine(root.path(), &data);
    assert_eq!(finalized_events, 512);

    let replayed = replay(&data, None).unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].state_root, state_root);
    assert_eq!(replayed[0].finalized_events, 512);
    assert_eq!(
        render_text(&replayed),
        render_text(&replay(&data, Some(0)).unwrap()),
        "replay output is the same on every run"
    );
    let all = records(&data);

    // A flipped byte in a logged anchor: file and offset.
    let flipped = root.path().join("flipped");
    copy_dir(&data, &flipped);
    let (_, anchor_offset, _, _) = all
        .iter()
        .find(|r| r.0 == LogRecordKind::AnchorAccepted)
        .unwrap()
        .clone();
    let mut bytes = std::fs::read(segment(&flipped)).unwrap();
    bytes[anchor_offset as usize + 40] ^= 0x10;
    std::fs::write(segment(&flipped), &bytes).unwrap();
    let error = error_of(&flipped);
    assert!(
        error.contains(segment(&flipped).to_str().unwrap())
            && error.contains(&format!("offset {anchor_offset}")),
        "{error}"
    );

    // A re-checksummed RoundFinalized with a wrong state root: its round.
    let wrong_root = root.path().join("wrong-root");
    copy_dir(&data, &wrong_root);
    let (_, round_offset, round_seq, round_body) = all
        .iter()
        .filter(|r| r.0 == LogRecordKind::RoundFinalized)
        .nth(2)
        .unwrap()
        .clone();
    let mut round = RoundFinalized::from_bytes(&round_body).unwrap();
    round.state_root[0] ^= 1;
    let body = round.to_bytes();
    let mut bytes = std::fs::read(segment(&wrong_root)).unwrap();
    let start = round_offset as usize;
    let end = start + frame_bytes(body.len() as u32) as usize;
    encode_frame(
        &mut bytes[start..end],
        round_seq,
        LogRecordKind::RoundFinalized as u8,
        &body,
    );
    std::fs::write(segment(&wrong_root), &bytes).unwrap();
    let error = error_of(&wrong_root);
    assert!(
        error.contains(&format!("shard 0: round {}:", round.round)),
        "{error}"
    );

    // A log cut inside its last record: replay up to the last whole record.
    let cut = root.path().join("cut");
    copy_dir(&data, &cut);
    let (_, last_offset, _, _) = all.last().unwrap().clone();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment(&cut))
        .unwrap();
    file.set_len(last_offset + 10).unwrap();
    drop(file);
    let replayed_cut = replay(&cut, None).unwrap();
    let whole_anchors = all[..all.len() - 1]
        .iter()
        .filter(|r| r.0 == LogRecordKind::AnchorAccepted)
        .count() as u64;
    assert_eq!(replayed_cut[0].anchors, whole_anchors);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
