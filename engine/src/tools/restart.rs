//! `restart-time`: how long a stopped node's data dir takes to come back —
//! each shard's log opened and recovered, and its machine restored from
//! it, exactly as `node` does at start-up (`runtime::driver::open_shard`),
//! timed. The baseline the snapshots of DESIGN §6.1 are to cut.

use std::path::Path;
use std::time::Instant;

use pc_node::node_shard_limits;
use pc_shard::machine::Role;
use serde::Serialize;

use crate::genesis_file;
use crate::runtime::data_dir::read_log_config;
use crate::runtime::driver::{open_shard, shard_log_dir};
use crate::EngineError;

/// One shard's restart.
#[derive(Debug, Clone, Serialize)]
pub struct ShardRestart {
    /// The shard.
    pub shard: u16,
    /// Bytes of its log's records (frames), the log's size.
    pub log_bytes: u64,
    /// Bytes of its segment files on disk (pre-allocated).
    pub disk_bytes: u64,
    /// Records restored.
    pub records: u64,
    /// Of them, anchors.
    pub anchors: u64,
    /// Rounds the restored machine had decided.
    pub rounds: u64,
    /// Seconds to open the log and restore the machine.
    pub seconds: f64,
}

/// Restores every shard of `data_dir` as the node does, one after the
/// other (a node restores its cores' shards in parallel; per shard this is
/// the time).
pub fn measure(data_dir: &Path) -> Result<Vec<ShardRestart>, EngineError> {
    let genesis = genesis_file::load(&data_dir.join("genesis.toml"))?.genesis;
    let config = read_log_config(data_dir)?;
    let mut out = Vec::new();
    for shard in 0..genesis.params.shards {
        let dir = shard_log_dir(data_dir, shard);
        let disk_bytes = std::fs::read_dir(&dir)
            .map_err(|e| EngineError::io(&dir, e))?
            .filter_map(Result::ok)
            .filter_map(|entry| entry.metadata().ok())
            .map(|meta| meta.len())
            .sum();
        let started = Instant::now();
        let (host, log) = open_shard(
            &genesis,
            shard,
            0,
            data_dir,
            config,
            Role::Observer,
            node_shard_limits(),
            pc_node::SnapshotPolicy::OFF,
        )?;
        let seconds = started.elapsed().as_secs_f64();
        let log_bytes = log
            .borrow()
            .iter_from(0)
            .filter_map(Result::ok)
            .map(|record| pc_storage::frame::frame_bytes(record.body.len() as u32))
            .sum();
        let counters = host.counters();
        out.push(ShardRestart {
            shard,
            log_bytes,
            disk_bytes,
            records: counters.log_records,
            anchors: counters.restored_anchors,
            rounds: counters.last_round.map_or(0, |r| r + 1),
            seconds,
        });
    }
    Ok(out)
}

/// A snapshot made offline from a stopped node's log.
#[derive(Debug, Clone, Serialize)]
pub struct MadeSnapshot {
    /// The shard.
    pub shard: u16,
    /// The file written.
    pub file: String,
    /// Its last finalized round.
    pub round: u64,
    /// The log records it covers.
    pub records: u64,
    /// The log bytes after it (what a restart replays).
    pub tail_bytes: u64,
}

/// Makes a snapshot of each shard of a stopped node's `data_dir` from its
/// log: the log is replayed (as an observer, as a restart would) up to the
/// last anchor boundary with at least `tail_bytes` of log after it, and
/// the machine's image there is written like the node writes one. A
/// restart then replays only the tail: `restart-time` measures the worst
/// point (a tail of one snapshot interval). An observer's image carries no
/// seat chain, so a seat's node started on the dir replays from an older
/// snapshot or from genesis instead.
pub fn make_snapshots(data_dir: &Path, tail_bytes: u64) -> Result<Vec<MadeSnapshot>, EngineError> {
    use pc_codec::LogRecordKind;
    let genesis = genesis_file::load(&data_dir.join("genesis.toml"))?.genesis;
    let config = read_log_config(data_dir)?;
    let mut out = Vec::new();
    for shard in 0..genesis.params.shards {
        let dir = shard_log_dir(data_dir, shard);
        let (log, _) = pc_storage::Log::open(&dir, config)?;
        let records = crate::runtime::driver::log_records(&log)?;
        let first = log.first_seq();
        if first > 0 {
            return Err(EngineError::Restore {
                shard,
                dir,
                reason: "the log was pruned: snapshots are made from a whole log".to_string(),
            });
        }
        // The cut: before an anchor record, with the tail at least
        // `tail_bytes` long (every round derived before it is logged
        // before it).
        let frame = |body: &[u8]| pc_storage::frame::frame_bytes(body.len() as u32);
        let mut tail = 0u64;
        let mut cut = records.len();
        for (index, (kind, body)) in records.iter().enumerate().rev() {
            tail += frame(body);
            if tail >= tail_bytes && *kind == LogRecordKind::AnchorAccepted {
                cut = index;
                break;
            }
        }
        let tail: u64 = records[cut..].iter().map(|(_, body)| frame(body)).sum();
        let mut machine: pc_node::ProductShard = pc_shard::machine::Shard::new(
            &genesis,
            shard,
            Role::Observer,
            pc_node::CountingVerifier::default(),
            node_shard_limits(),
        );
        machine
            .restore(records[..cut].iter().copied())
            .map_err(|error| EngineError::Restore {
                shard,
                dir: dir.clone(),
                reason: error.to_string(),
            })?;
        let image = machine.snapshot_image();
        let written = crate::runtime::snapshots::write_snapshot(
            &crate::runtime::snapshots::snapshot_dir(&dir),
            crate::runtime::snapshots::scope(&genesis, shard),
            image,
            crate::config::DEFAULT_KEEP_SNAPSHOTS,
        )
        .map_err(|reason| EngineError::Restore {
            shard,
            dir: dir.clone(),
            reason,
        })?;
        out.push(MadeSnapshot {
            shard,
            file: written.path.display().to_string(),
            round: written.mark.round,
            records: cut as u64,
            tail_bytes: tail,
        });
    }
    Ok(out)
}
