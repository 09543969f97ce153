//! Checks across the data dirs of several nodes of one network: that they
//! logged the same finalized rounds, and that no seat ever logged two
//! anchors at one `seq` (DESIGN §10). Used by `devnet` and the network
//! tests; reads logs only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pc_codec::wire::{Decode, Reader};
use pc_codec::{to_hex, Hash32, LogRecordKind, RoundFinalized, SignedAnchorHeader};
use pc_storage::{Durability, Log, LogConfig};

use crate::driver::{log_records, shard_log_dir};
use crate::EngineError;

/// Opens the log of `shard` in `data_dir` for reading.
fn open_log(data_dir: &Path, shard: u16) -> Result<Log, EngineError> {
    let config = LogConfig {
        durability: Durability::Never,
        max_record_bytes: crate::engine::MAX_RECORD_BYTES,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(&shard_log_dir(data_dir, shard), config)?;
    Ok(log)
}

/// The `RoundFinalized` records of one shard's log, by round.
pub fn logged_rounds(
    data_dir: &Path,
    shard: u16,
) -> Result<BTreeMap<u64, RoundFinalized>, EngineError> {
    let log = open_log(data_dir, shard)?;
    let mut rounds = BTreeMap::new();
    for (kind, body) in log_records(&log)? {
        if kind == LogRecordKind::RoundFinalized {
            let record = RoundFinalized::decode(&mut Reader::new(body)).map_err(|e| {
                EngineError::Config(format!(
                    "{}: round record: {e}",
                    shard_log_dir(data_dir, shard).display()
                ))
            })?;
            rounds.insert(record.round, record);
        }
    }
    Ok(rounds)
}

/// What the nodes agree on for one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardAgreement {
    /// The shard.
    pub shard: u16,
    /// The highest round every node finalized.
    pub common_round: Option<u64>,
    /// Anchors finalized up to and including it.
    pub finalized_anchors: u64,
    /// The state root after it.
    pub state_root: Hash32,
    /// Rounds each node finalized, in node order.
    pub rounds_per_node: Vec<u64>,
}

/// Compares the logged rounds of `shard` across `data_dirs`: every round
/// all of them finalized must carry the same record (first anchor index,
/// anchor count, state root, payout root). `Err` names the first round
/// that differs and the nodes.
pub fn compare_shard(data_dirs: &[PathBuf], shard: u16) -> Result<ShardAgreement, String> {
    let logs: Vec<BTreeMap<u64, RoundFinalized>> = data_dirs
        .iter()
        .map(|dir| logged_rounds(dir, shard).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let common = logs
        .iter()
        .map(|r| r.keys().next_back().copied())
        .min()
        .flatten();
    let rounds_per_node = logs.iter().map(|r| r.len() as u64).collect();
    let Some(common) = common else {
        return Ok(ShardAgreement {
            shard,
            common_round: None,
            finalized_anchors: 0,
            state_root: [0; 32],
            rounds_per_node,
        });
    };
    let reference = &logs[0];
    for (n, rounds) in logs.iter().enumerate().skip(1) {
        for (round, record) in reference.range(..=common) {
            match rounds.get(round) {
                Some(other) if other == record => {}
                Some(other) => {
                    return Err(format!(
                        "shard {shard} round {round}: node 0 logged {} anchors from index {} with state root {}, node {n} logged {} anchors from index {} with state root {}",
                        record.anchor_count,
                        record.first_global_index,
                        to_hex(&record.state_root),
                        other.anchor_count,
                        other.first_global_index,
                        to_hex(&other.state_root)
                    ))
                }
                None => {
                    return Err(format!(
                        "shard {shard} round {round}: finalized by node 0, missing from node {n}'s log"
                    ))
                }
            }
        }
        if let Some(round) = rounds
            .range(..=common)
            .map(|(r, _)| *r)
            .find(|r| !reference.contains_key(r))
        {
            return Err(format!(
                "shard {shard} round {round}: finalized by node {n}, missing from node 0's log"
            ));
        }
    }
    let last = &reference[&common];
    Ok(ShardAgreement {
        shard,
        common_round: Some(common),
        finalized_anchors: last.first_global_index + last.anchor_count,
        state_root: last.state_root,
        rounds_per_node,
    })
}

/// Scans every anchor logged in `data_dirs` for `shard`: two different
/// anchors of one seat at one `seq` (an equivocation) is an `Err` naming
/// the seat, the seq and both ids. Returns the anchors seen.
pub fn scan_for_equivocation(data_dirs: &[PathBuf], shard: u16) -> Result<u64, String> {
    let mut seen: BTreeMap<(u8, u64), (Hash32, usize)> = BTreeMap::new();
    let mut anchors = 0;
    for (n, dir) in data_dirs.iter().enumerate() {
        let log = open_log(dir, shard).map_err(|e| e.to_string())?;
        for (kind, body) in log_records(&log).map_err(|e| e.to_string())? {
            if kind != LogRecordKind::AnchorAccepted {
                continue;
            }
            let header = SignedAnchorHeader::decode(&mut Reader::new(body))
                .map_err(|e| format!("node {n} shard {shard}: logged anchor: {e}"))?;
            anchors += 1;
            let key = (header.header.creator, header.header.seq);
            let id = header.anchor_id();
            match seen.get(&key) {
                Some((other, m)) if *other != id => {
                    return Err(format!(
                        "shard {shard} seat {} seq {}: anchor {} in node {m}'s log, anchor {} in node {n}'s",
                        key.0,
                        key.1,
                        to_hex(other),
                        to_hex(&id)
                    ))
                }
                Some(_) => {}
                None => {
                    seen.insert(key, (id, n));
                }
            }
        }
    }
    Ok(anchors)
}
