//! Checks across the data dirs of several nodes of one network: that they
//! logged the same finalized rounds, and that no seat ever logged two
//! anchors at one `seq` (DESIGN §10). Used by `devnet` and the network
//! tests; reads logs only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pc_codec::wire::{Decode, Reader};
use pc_codec::{to_hex, DecodeError, Hash32, LogRecordKind, RoundFinalized, SignedAnchorHeader};
use pc_storage::Log;

use crate::runtime::data_dir::read_log_config;
use crate::runtime::driver::{log_records, shard_log_dir};
use crate::EngineError;

/// What the nodes' logs disagree on, or why they could not be compared;
/// `Display` is one line naming the shard, round or seat and the nodes.
#[derive(Debug, thiserror::Error)]
pub enum Divergence {
    /// A log could not be read.
    #[error("node {node}: {source}")]
    Unreadable {
        /// The node (its index in the data dirs).
        node: usize,
        /// Why.
        source: Box<EngineError>,
    },
    /// Two nodes logged different records for one round.
    #[error("shard {shard} round {round}: node 0 logged {} anchors from index {} with state root {}, node {node} logged {} anchors from index {} with state root {}", .first.anchor_count, .first.first_global_index, to_hex(&.first.state_root), .other.anchor_count, .other.first_global_index, to_hex(&.other.state_root))]
    Round {
        /// The shard.
        shard: u16,
        /// The round.
        round: u64,
        /// Node 0's record.
        first: Box<RoundFinalized>,
        /// The other node.
        node: usize,
        /// Its record.
        other: Box<RoundFinalized>,
    },
    /// A round within every node's range that one node did not log.
    #[error(
        "shard {shard} round {round}: finalized by node {by}, missing from node {missing}'s log"
    )]
    MissingRound {
        /// The shard.
        shard: u16,
        /// The round.
        round: u64,
        /// A node that logged it.
        by: usize,
        /// The node that did not.
        missing: usize,
    },
    /// A logged anchor header that does not decode.
    #[error("node {node} shard {shard}: logged anchor: {source}")]
    BadAnchor {
        /// The node.
        node: usize,
        /// The shard.
        shard: u16,
        /// The decoder's reason.
        source: DecodeError,
    },
    /// One seat signed two anchors at one seq.
    #[error("shard {shard} seat {seat} seq {seq}: anchor {} in node {first_node}'s log, anchor {} in node {second_node}'s", to_hex(.first), to_hex(.second))]
    Equivocation {
        /// The shard.
        shard: u16,
        /// The seat.
        seat: u8,
        /// The seq.
        seq: u64,
        /// The first anchor seen.
        first: Hash32,
        /// The node that logged it.
        first_node: usize,
        /// The other anchor.
        second: Hash32,
        /// The node that logged it.
        second_node: usize,
    },
}

/// Opens the log of `shard` in `data_dir` for reading, with the settings
/// of the data dir's `engine.toml`.
fn open_log(data_dir: &Path, shard: u16) -> Result<Log, EngineError> {
    let config = read_log_config(data_dir)?;
    let (log, _) = Log::open(&shard_log_dir(data_dir, shard), config)?;
    Ok(log)
}

/// The bodies of every record of `kind` in one shard's log, in log order.
pub fn log_bodies(
    data_dir: &Path,
    shard: u16,
    kind: LogRecordKind,
) -> Result<Vec<Vec<u8>>, EngineError> {
    let log = open_log(data_dir, shard)?;
    Ok(log_records(&log)?
        .into_iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, body)| body.to_vec())
        .collect())
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
            let record = RoundFinalized::decode(&mut Reader::new(body)).map_err(|source| {
                EngineError::RoundRecord {
                    dir: shard_log_dir(data_dir, shard),
                    source,
                }
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
    /// The lowest round every node's log still holds (0 unless pruned).
    pub first_round: u64,
    /// The highest round every node finalized.
    pub common_round: Option<u64>,
    /// Anchors finalized up to and including it.
    pub finalized_anchors: u64,
    /// The state root after it.
    pub state_root: Hash32,
    /// Rounds each node finalized (its last logged round + 1), in node order.
    pub rounds_per_node: Vec<u64>,
}

/// Compares the logged rounds of `shard` across `data_dirs`: every round
/// all of them finalized (and still hold, after pruning) must carry the same record (first anchor index,
/// anchor count, state root, payout root). `Err` names the first round
/// that differs and the nodes.
pub fn compare_shard(data_dirs: &[PathBuf], shard: u16) -> Result<ShardAgreement, Divergence> {
    let logs: Vec<BTreeMap<u64, RoundFinalized>> = data_dirs
        .iter()
        .enumerate()
        .map(|(node, dir)| logged_rounds(dir, shard).map_err(|e| unreadable(node, e)))
        .collect::<Result<_, _>>()?;
    let common = logs
        .iter()
        .map(|r| r.keys().next_back().copied())
        .min()
        .flatten();
    // Rounds up to the last one logged (a pruned log holds fewer records).
    let rounds_per_node = logs
        .iter()
        .map(|r| r.keys().next_back().map_or(0, |last| last + 1))
        .collect();
    let Some(common) = common else {
        return Ok(ShardAgreement {
            shard,
            first_round: 0,
            common_round: None,
            finalized_anchors: 0,
            state_root: [0; 32],
            rounds_per_node,
        });
    };
    // A pruned log starts later: rounds are compared from the lowest one
    // every log still holds.
    let low = logs
        .iter()
        .filter_map(|r| r.keys().next().copied())
        .max()
        .unwrap_or(0);
    let reference = &logs[0];
    for (n, rounds) in logs.iter().enumerate().skip(1) {
        for (round, record) in reference.range(low..=common) {
            match rounds.get(round) {
                Some(other) if other == record => {}
                Some(other) => {
                    return Err(Divergence::Round {
                        shard,
                        round: *round,
                        first: Box::new(*record),
                        node: n,
                        other: Box::new(*other),
                    })
                }
                None => {
                    return Err(Divergence::MissingRound {
                        shard,
                        round: *round,
                        by: 0,
                        missing: n,
                    })
                }
            }
        }
        if let Some(round) = rounds
            .range(low..=common)
            .map(|(r, _)| *r)
            .find(|r| !reference.contains_key(r))
        {
            return Err(Divergence::MissingRound {
                shard,
                round,
                by: n,
                missing: 0,
            });
        }
    }
    let last = &reference[&common];
    Ok(ShardAgreement {
        shard,
        first_round: low,
        common_round: Some(common),
        finalized_anchors: last.first_global_index + last.anchor_count,
        state_root: last.state_root,
        rounds_per_node,
    })
}

/// Scans every anchor logged in `data_dirs` for `shard`: two different
/// anchors of one seat at one `seq` (an equivocation) is an `Err` naming
/// the seat, the seq and both ids. Returns the anchors seen.
pub fn scan_for_equivocation(data_dirs: &[PathBuf], shard: u16) -> Result<u64, Divergence> {
    scan_for_planted_equivocation(data_dirs, shard, None).map(|(anchors, _)| anchors)
}

/// [`scan_for_equivocation`] of a run that planted one equivocation at
/// (seat, seq): that one is counted, not refused. Returns the anchors seen
/// and whether the planted one was seen.
pub fn scan_for_planted_equivocation(
    data_dirs: &[PathBuf],
    shard: u16,
    planted: Option<(u8, u64)>,
) -> Result<(u64, bool), Divergence> {
    let mut planted_seen = false;
    let mut planted_twin: Option<Hash32> = None;
    let mut seen: BTreeMap<(u8, u64), (Hash32, usize)> = BTreeMap::new();
    let mut anchors = 0;
    for (n, dir) in data_dirs.iter().enumerate() {
        let log = open_log(dir, shard).map_err(|e| unreadable(n, e))?;
        for (kind, body) in log_records(&log).map_err(|e| unreadable(n, e))? {
            if kind != LogRecordKind::AnchorAccepted {
                continue;
            }
            let header = SignedAnchorHeader::decode(&mut Reader::new(body)).map_err(|source| {
                Divergence::BadAnchor {
                    node: n,
                    shard,
                    source,
                }
            })?;
            anchors += 1;
            let key = (header.header.creator, header.header.seq);
            let id = header.anchor_id();
            match seen.get(&key) {
                // The planted equivocation: exactly one second anchor.
                Some((other, _))
                    if *other != id
                        && Some(key) == planted
                        && planted_twin.is_none_or(|twin| twin == id) =>
                {
                    planted_seen = true;
                    planted_twin = Some(id);
                }
                Some((other, m)) if *other != id => {
                    return Err(Divergence::Equivocation {
                        shard,
                        seat: key.0,
                        seq: key.1,
                        first: *other,
                        first_node: *m,
                        second: id,
                        second_node: n,
                    })
                }
                Some(_) => {}
                None => {
                    seen.insert(key, (id, n));
                }
            }
        }
    }
    Ok((anchors, planted_seen))
}

fn unreadable(node: usize, error: EngineError) -> Divergence {
    Divergence::Unreadable {
        node,
        source: Box::new(error),
    }
}
