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
