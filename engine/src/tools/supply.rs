//! The supply check of DESIGN §5.1 from data dirs: per shard, the unspent
//! value summed over the replayed UTXO set; per shard pair, the value in
//! flight from the export leaves the logs hold (the source's
//! `ExportsBuilt` records and the destination's `ExportsReceived` ones:
//! pruning keeps the first until every pushed destination seat acked, the
//! second until its leaves landed) minus the leaves set in the
//! destination's replayed dedupe state (its bitmaps and `head`). The counters the state
//! keeps (`exported`, `imported`, `owed`) are checked against those, not
//! trusted for them.
//!
//! * Per shard: `unspent + owed + bonded + exported − imported = genesis
//!   value` (the genesis value holds the shard's seats' bonds).
//! * Per pair whose source log is whole: `exported(A→B) − imported(B←A)`
//!   (the states' counters) equals the in-flight value the logs give.
//! * Globally: `Σ unspent + Σ owed + Σ bonded + Σ in flight = Σ genesis
//!   value`.

use std::collections::BTreeMap;

use pc_codec::cross::{BuiltExports, ExportLeaf, ExportsBundle};
use pc_codec::{Decode, LogRecordKind};
use pc_shard::cross::CrossState;
use pc_shard::state::ShardState;
use serde::Serialize;

/// What one shard's data dir says about value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSupply {
    /// The shard.
    pub shard: u16,
    /// Its genesis value.
    pub genesis: u128,
    /// Value it minted (the mint shard only).
    pub minted: u128,
    /// Unspent value, summed over the replayed UTXO set.
    pub unspent: u128,
    /// Unclaimed payouts (seats' owed balances and undistributed value).
    pub owed: u128,
    /// What remains of the seats' bonds.
    pub bonded: u128,
    /// The last finalized round replayed.
    pub round: Option<u64>,
    /// Every export leaf the log holds: (round, index in its destination's
    /// list, leaf).
    pub leaves: Vec<(u64, u64, ExportLeaf)>,
    /// Every leaf of a bundle of another shard the log holds: (source,
    /// round, index in the bundle, leaf).
    pub received: Vec<(u16, u64, u64, ExportLeaf)>,
    /// Whether the log reaches back to its first record (no leaf pruned).
    pub log_complete: bool,
    /// The replayed cross-shard state (counters and dedupe state).
    pub cross: CrossState,
}

impl ShardSupply {
    /// The supply of `shard` from its replayed `state`, the records its log
    /// holds (`log_complete`: from the first record on).
    pub fn new<'a>(
        shard: u16,
        state: &ShardState,
        round: Option<u64>,
        records: impl IntoIterator<Item = (LogRecordKind, &'a [u8])>,
        log_complete: bool,
    ) -> ShardSupply {
        let mut unspent = 0u128;
        state.for_each_unspent(|output| unspent += u128::from(output.amount));
        let mut leaves = Vec::new();
        let mut received = Vec::new();
        for (kind, body) in records {
            if kind == LogRecordKind::ExportsReceived {
                if let Ok(bundle) = ExportsBundle::from_bytes(body) {
                    for (index, leaf) in bundle.leaves.iter().enumerate() {
                        received.push((bundle.source(), bundle.round(), index as u64, *leaf));
                    }
                }
                continue;
            }
            if kind != LogRecordKind::ExportsBuilt {
                continue;
            }
            // The log's checksums guard its records; the machine wrote
            // this one from a finalized round.
            let Ok(built) = BuiltExports::from_bytes(body) else {
                continue;
            };
            for (_, list) in &built.exports.entries {
                for (index, leaf) in list.iter().enumerate() {
                    leaves.push((built.round, index as u64, *leaf));
                }
            }
        }
        ShardSupply {
            shard,
            genesis: state.genesis_supply(),
            minted: state.minted(),
            unspent,
            owed: state.owed(),
            bonded: state.bonded(),
            round,
            leaves,
            received,
            log_complete,
            cross: state.cross().clone(),
        }
    }
}

/// The value moved from one shard to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PairFlow {
    /// Source shard.
    pub source: u16,
    /// Destination shard.
    pub dest: u16,
    /// Value of the export leaves the source's log holds.
    pub exported: u128,
    /// Of it, the value landed at the destination (its dedupe state).
    pub imported: u128,
    /// The rest: in flight.
    pub in_flight: u128,
    /// Leaves in flight.
    pub in_flight_leaves: u64,
}

/// The result of a supply check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SupplyReport {
    /// Every pair with value moved.
    pub pairs: Vec<PairFlow>,
    /// Σ genesis value.
    pub genesis: u128,
    /// Σ minted value.
    pub minted: u128,
    /// Σ unspent.
    pub unspent: u128,
    /// Σ owed.
    pub owed: u128,
    /// Σ bonded.
    pub bonded: u128,
    /// Σ in flight.
    pub in_flight: u128,
    /// Every equation that does not hold, one line each.
    pub errors: Vec<String>,
}

impl SupplyReport {
    /// Whether every equation holds.
    pub fn holds(&self) -> bool {
        self.errors.is_empty()
    }

    /// Leaves in flight over every pair.
    pub fn in_flight_leaves(&self) -> u64 {
        self.pairs.iter().map(|p| p.in_flight_leaves).sum()
    }

    /// The report as text: one line per pair, then the global equation and
    /// every failure.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for p in &self.pairs {
            out.push_str(&format!(
                "supply: shard {} -> {}: exported {}, imported {}, in flight {} ({} leaves)\n",
                p.source, p.dest, p.exported, p.imported, p.in_flight, p.in_flight_leaves
            ));
        }
        out.push_str(&format!(
            "supply: unspent {} + owed {} + bonded {} + in flight {} = {} (genesis {} + minted {}): {}\n",
            self.unspent,
            self.owed,
            self.bonded,
            self.in_flight,
            self.unspent + self.owed + self.bonded + self.in_flight,
            self.genesis,
            self.minted,
            if self.holds() { "holds" } else { "BROKEN" }
        ));
        for error in &self.errors {
            out.push_str(&format!("supply: BROKEN: {error}\n"));
        }
        out
    }
}

/// Checks the supply equations over `shards` (one per shard of the
/// network, in any order; a missing shard is an error).
pub fn check(shards: &[ShardSupply], shard_count: u16) -> SupplyReport {
    let mut report = SupplyReport::default();
    let by_shard = |s: u16| shards.iter().find(|x| x.shard == s);
    for s in 0..shard_count {
        if by_shard(s).is_none() {
            report
                .errors
                .push(format!("shard {s}: no data dir holds it"));
        }
    }
    for supply in shards {
        report.genesis += supply.genesis;
        report.minted += supply.minted;
        report.unspent += supply.unspent;
        report.owed += supply.owed;
        report.bonded += supply.bonded;
        let left = supply.unspent + supply.owed + supply.bonded + supply.cross.exported_total();
        let right = supply.genesis + supply.minted + supply.cross.imported_total();
        if left != right {
            report.errors.push(format!(
                "shard {}: unspent {} + owed {} + bonded {} + exported {} - imported {} != genesis {} + minted {}",
                supply.shard,
                supply.unspent,
                supply.owed,
                supply.bonded,
                supply.cross.exported_total(),
                supply.cross.imported_total(),
                supply.genesis,
                supply.minted
            ));
        }
    }
    for source in shards {
        for dest in 0..shard_count {
            if dest == source.shard {
                continue;
            }
            let mut flow = PairFlow {
                source: source.shard,
                dest,
                exported: 0,
                imported: 0,
                in_flight: 0,
                in_flight_leaves: 0,
            };
            let landing = by_shard(dest).map(|d| &d.cross);
            // The pair's leaves the logs hold, each once.
            let mut pair: BTreeMap<(u64, u64), &ExportLeaf> = source
                .leaves
                .iter()
                .filter(|(_, _, l)| l.dest == dest)
                .map(|(round, index, leaf)| ((*round, *index), leaf))
                .collect();
            if let Some(d) = by_shard(dest) {
                for (from, round, index, leaf) in &d.received {
                    if *from == source.shard {
                        pair.entry((*round, *index)).or_insert(leaf);
                    }
                }
            }
            for ((round, index), leaf) in &pair {
                flow.exported += u128::from(leaf.amount);
                let landed = landing
                    .and_then(|cross| cross.landed(source.shard, *round, *index))
                    .unwrap_or(false);
                if landed {
                    flow.imported += u128::from(leaf.amount);
                } else {
                    flow.in_flight += u128::from(leaf.amount);
                    flow.in_flight_leaves += 1;
                }
            }
            if let Some(dest_supply) = by_shard(dest) {
                let counted = source.cross.exported_to(dest);
                let taken = dest_supply.cross.imported_from(source.shard);
                let counters_in_flight = counted.checked_sub(taken);
                if counters_in_flight.is_none() {
                    report.errors.push(format!(
                        "shard {dest} imported {taken} from shard {}, which exported {counted} to it",
                        source.shard
                    ));
                } else if source.log_complete && counters_in_flight != Some(flow.in_flight) {
                    report.errors.push(format!(
                        "shards {} -> {dest}: the states' counters leave {} in flight, the logs {}",
                        source.shard,
                        counters_in_flight.unwrap_or(0),
                        flow.in_flight
                    ));
                }
            }
            report.in_flight += flow.in_flight;
            if flow.exported > 0 {
                report.pairs.push(flow);
            }
        }
    }
    if report.unspent + report.owed + report.bonded + report.in_flight
        != report.genesis + report.minted
    {
        report.errors.push(format!(
            "global: unspent {} + owed {} + bonded {} + in flight {} != genesis {} + minted {}",
            report.unspent,
            report.owed,
            report.bonded,
            report.in_flight,
            report.genesis,
            report.minted
        ));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(amount: u64) -> ExportLeaf {
        ExportLeaf {
            dest: 1,
            tx_id: [4; 32],
            output_index: 0,
            amount,
            owner: [5; 32],
        }
    }

    /// Shard 0 exported 10 units to shard 1 in round 3, not imported yet.
    fn pair() -> Vec<ShardSupply> {
        let mut source = CrossState::new(0, 2);
        source.note_export(&leaf(10));
        vec![
            ShardSupply {
                shard: 0,
                genesis: 100,
                minted: 0,
                unspent: 85,
                owed: 5,
                bonded: 0,
                round: Some(3),
                leaves: vec![(3, 0, leaf(10))],
                received: Vec::new(),
                log_complete: true,
                cross: source,
            },
            ShardSupply {
                shard: 1,
                genesis: 50,
                minted: 0,
                unspent: 50,
                owed: 0,
                bonded: 0,
                round: Some(2),
                leaves: Vec::new(),
                received: Vec::new(),
                log_complete: true,
                cross: CrossState::new(1, 2),
            },
        ]
    }

    #[test]
    fn value_in_flight_balances_the_equations() {
        let report = check(&pair(), 2);
        assert!(report.holds(), "{:?}", report.errors);
        assert_eq!((report.in_flight, report.in_flight_leaves()), (10, 1));
        assert_eq!(report.pairs.len(), 1);
    }

    #[test]
    fn created_value_a_lost_leaf_or_a_missing_shard_break_them() {
        let mut created = pair();
        created[1].unspent += 1;
        let report = check(&created, 2);
        assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
        assert!(report.errors[0].starts_with("shard 1:"));
        assert!(report.errors[1].starts_with("global:"));

        // The counter says 10 left; the whole log holds no leaf.
        let mut lost = pair();
        lost[0].leaves.clear();
        let report = check(&lost, 2);
        assert!(
            report.errors.iter().any(|e| e.contains("the logs 0")),
            "{:?}",
            report.errors
        );

        let report = check(&pair()[..1], 2);
        assert!(report
            .errors
            .iter()
            .any(|e| e == "shard 1: no data dir holds it"));
    }
}
