//! What a core tells the metrics endpoint (DESIGN §9): one typed snapshot
//! per status interval ([`CoreMetrics`], `NodeCore::poll_metrics`), taken
//! at the same moment and from the same counters as the status events. The
//! driver hands it to the node's control thread over a ring, which renders
//! the Prometheus families; nothing on a core is shared or locked for it.
//!
//! Counters are totals since start; gauges are values at the snapshot;
//! histograms are cumulative bucket counts in seconds.

use serde::{Deserialize, Serialize};

/// Buckets of the latency histograms (finality, inbox wait), seconds.
pub const LATENCY_BUCKETS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The wire message kinds, by `pc_net::NetMessage::kind_index`, as the
/// `kind` label of the `pc_p2p_*` families.
pub const MESSAGE_KINDS: [&str; 26] = [
    "hello",
    "announce",
    "get",
    "get_range",
    "anchors",
    "checkpoint_sig",
    "evidence",
    "submit_micro_events",
    "receipt",
    "balance_query",
    "balance",
    "checkpoint_cert",
    "exports",
    "exports_ack",
    "get_exports",
    "pruned",
    "get_mint_template",
    "mint_template",
    "submit_mint_solution",
    "mint_submitted",
    "mint_status_query",
    "mint_status",
    "payout_query",
    "payout_proof",
    "unspent_query",
    "unspent",
];

/// A histogram with fixed bounds in seconds (`+Inf` implied), kept as
/// per-bucket counts and a sum in nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondsHistogram {
    bounds: Vec<f64>,
    /// Per bucket (not cumulative), the last one `+Inf`.
    counts: Vec<u64>,
    sum_ns: u128,
}

impl SecondsHistogram {
    /// An empty histogram with `bounds` (ascending, seconds).
    pub fn new(bounds: &[f64]) -> SecondsHistogram {
        SecondsHistogram {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
            sum_ns: 0,
        }
    }

    /// Records one observation of `ns` nanoseconds.
    pub fn observe_ns(&mut self, ns: u64) {
        let seconds = ns as f64 / 1e9;
        let bucket = self.bounds.partition_point(|bound| *bound < seconds);
        self.counts[bucket] += 1;
        self.sum_ns += u128::from(ns);
    }

    /// Records one observation of `us` microseconds.
    pub fn observe_us(&mut self, us: u64) {
        self.observe_ns(us.saturating_mul(1000));
    }

    /// The bounds, seconds (without `+Inf`).
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Cumulative counts per bound, `+Inf` last.
    pub fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .scan(0u64, |total, count| {
                *total += count;
                Some(*total)
            })
            .collect()
    }

    /// Observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Their sum, seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }
}

/// Counters of one message kind in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Messages.
    pub messages: u64,
    /// Wire bytes (length prefix included).
    pub bytes: u64,
}

/// A core's network: `pc_p2p_*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct P2pMetrics {
    /// Per [`MESSAGE_KINDS`]: frames received.
    pub inbound: Vec<Traffic>,
    /// Per [`MESSAGE_KINDS`]: frames queued for sending.
    pub outbound: Vec<Traffic>,
    /// Frames a connection's send queue refused (full or too large).
    pub dropped_sends: u64,
    /// Frames the core's inbox dropped (its byte bound).
    pub dropped_inbox: u64,
    /// Messages a full ring to another core refused.
    pub dropped_ring: u64,
    /// Frames sent to a connection that was gone or closing.
    pub send_errors: u64,
    /// Protocol violations seen.
    pub violations: u64,
    /// Bans this core imposed.
    pub bans: u64,
    /// Handshakes that failed: Hellos refused and connections refused.
    pub handshake_failures: u64,
    /// Distinct verified peers connected.
    pub connected_peers: u64,
    /// Connections.
    pub links: u64,
    /// Addresses the peer book holds banned.
    pub banned_peers: u64,
    /// Frames waiting in the core's inbox.
    pub inbox_frames: u64,
    /// Of them, messages of other cores (the rings' depth).
    pub ring_depth: u64,
    /// How long received frames and ring messages waited in the inbox
    /// before the core handled them.
    pub receive_wait: SecondsHistogram,
    /// Cross-shard messages this core moved, by path and kind.
    pub cross: crate::crossing::CrossTraffic,
    /// QUIC's round-trip time of each open connection, sampled once per
    /// status interval (send to acknowledgement).
    pub round_trip: SecondsHistogram,
}

impl Default for P2pMetrics {
    fn default() -> P2pMetrics {
        P2pMetrics {
            inbound: vec![Traffic::default(); MESSAGE_KINDS.len()],
            outbound: vec![Traffic::default(); MESSAGE_KINDS.len()],
            dropped_sends: 0,
            dropped_inbox: 0,
            dropped_ring: 0,
            send_errors: 0,
            violations: 0,
            bans: 0,
            handshake_failures: 0,
            connected_peers: 0,
            links: 0,
            banned_peers: 0,
            inbox_frames: 0,
            ring_depth: 0,
            receive_wait: SecondsHistogram::new(LATENCY_BUCKETS_S),
            cross: Default::default(),
            round_trip: SecondsHistogram::new(LATENCY_BUCKETS_S),
        }
    }
}

/// One local shard: `pc_shard_*` and its `pc_node_*` store and cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardMetrics {
    /// The shard.
    pub shard: u16,
    /// Anchors the machine took in (inserted or pending).
    pub anchors_accepted: u64,
    /// Anchors the machine refused.
    pub anchors_rejected: u64,
    /// Rounds decided (finalized) since start.
    pub rounds_decided: u64,
    /// The last decided round (-1: none); the state root is of this round.
    pub last_decided_round: i64,
    /// Anchors finalized.
    pub finalized_anchors: u64,
    /// Micro-events finalized.
    pub finalized_events: u64,
    /// Of them, applied.
    pub applied_events: u64,
    /// Finalized transfers apply refused for a spent or unknown input.
    pub rejected_double_spends: u64,
    /// Client micro-events: submission to finality.
    pub submit_to_final: SecondsHistogram,
    /// Anchors: arrival to finality.
    pub arrival_to_final: SecondsHistogram,
    /// Anchors waiting for parents.
    pub pending_parents: u64,
    /// Micro-events waiting for an own anchor.
    pub mempool: u64,
    /// Pulls sent and not answered yet.
    pub outstanding_pulls: u64,
    /// `GetRange` requests made (catch-up).
    pub catch_up_requests: u64,
    /// Log bytes appended since start.
    pub log_bytes: u64,
    /// Records in the log.
    pub log_records: u64,
    /// Records appended but not yet durable.
    pub durable_lag_records: u64,
    /// Records appended (persistence successes).
    pub persist_ok: u64,
    /// Appends that failed (the shard stops at the first).
    pub persist_failed: u64,
    /// Rounds this node's DAG is below the committee's.
    pub observer_lag_rounds: u64,
    /// BIP-340 signatures checked.
    pub signature_verifies: u64,
    /// Time spent checking them, nanoseconds (0 without a stopwatch).
    pub verify_ns: u64,
    /// Header/payload cache lookups.
    pub cache: crate::cache::CacheCounts,
    /// Store reads behind the cache.
    pub store_reads: crate::cache::StoreReads,
    /// Client micro-events admission control let through.
    pub admitted: u64,
    /// Client micro-events refused as overloaded.
    pub refused: u64,
    /// Micro-events held (mempool, unfinalized and pending anchors).
    pub backlog: u64,
    /// The backlog admission control admits into.
    pub backlog_bound: u64,
    /// Seats of the shard's committee (`k`).
    pub committee_seats: u64,
    /// Its supermajority (`q`): a round needs this many seats.
    pub committee_quorum: u64,
    /// Microseconds since this node last decided a round of the shard
    /// (since the node started, if it decided none).
    pub decided_age_us: u64,
    /// The cross-shard link's work (zeros for an observer).
    pub cross: CrossShardMetrics,
    /// Bonds, slashes and claims (DESIGN §5.3, §5.4).
    #[serde(default)]
    pub economics: EconomicsMetrics,
}

/// One shard's seats' section: slashes by class from the finalized state,
/// claims applied since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EconomicsMetrics {
    /// Slashes applied since genesis, per offence class (equivocation,
    /// vote for invalid, conflicting data).
    pub slashes: [u64; 3],
    /// Units slashed since genesis, per class.
    pub slashed_units: [u64; 3],
    /// Claims applied since start.
    pub claims: u64,
    /// Units they paid out.
    pub claimed_units: u64,
    /// Owed and not yet claimed (seats' balances and undistributed).
    pub owed_units: u64,
    /// What remains of the seats' bonds.
    pub bonded_units: u64,
    /// Seats slashed out.
    pub slashed_out_seats: u64,
}

/// One shard's cross-shard carrying (DESIGN §5.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrossShardMetrics {
    /// Own checkpoints signed.
    pub checkpoints_signed: u64,
    /// Own checkpoints certified (assembled or adopted).
    pub checkpoints_certified: u64,
    /// Export bundles pushed to destination seats (retries included).
    pub bundles_pushed: u64,
    /// Pushes acknowledged.
    pub bundles_acked: u64,
    /// Bundles received from other shards and logged.
    pub bundles_received: u64,
    /// Imports this seat queued into its anchors.
    pub imports_carried: u64,
    /// Imports its mempool refused (retried later).
    pub imports_refused: u64,
    /// Cross-shard messages of peers refused as violations.
    pub violations: u64,
    /// Per shard of the network: value exported to it (finalized state).
    pub exported_to: Vec<u64>,
    /// Per shard of the network: value imported from it.
    pub imported_from: Vec<u64>,
}

/// One core's snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoreMetrics {
    /// The core.
    pub core: usize,
    /// Microseconds since the node started, at the snapshot.
    pub t_us: u64,
    /// Its network.
    pub p2p: P2pMetrics,
    /// Its shards, in shard order.
    pub shards: Vec<ShardMetrics>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_at_or_above_them() {
        let mut h = SecondsHistogram::new(&[0.001, 0.01]);
        h.observe_us(1_000); // exactly 1 ms: le="0.001"
        h.observe_us(1_001);
        h.observe_us(50_000);
        assert_eq!(h.cumulative(), vec![1, 2, 3]);
        assert_eq!(h.count(), 3);
        assert!((h.sum_seconds() - 0.052_001).abs() < 1e-9);
    }

    #[test]
    fn every_message_tag_that_decodes_has_a_kind_label() {
        // The smallest body of each tag is not needed: kind_index is a
        // function of the tag, which every variant below covers.
        let samples = [
            pc_net::NetMessage::GetMintTemplate { request: 1 },
            pc_net::NetMessage::UnspentQuery {
                request: 1,
                owner: [0; 32],
                after: None,
                max: 1,
            },
            pc_net::NetMessage::Unspent {
                request: 1,
                owner: [0; 32],
                finalized_round: 0,
                next_anchor_index: 0,
                outputs: Vec::new(),
                more: 0,
            },
            pc_net::NetMessage::Pruned {
                shard: 0,
                oldest_round: 0,
                snapshot_round: 0,
            },
        ];
        for message in &samples {
            assert!(
                message.kind_index() < MESSAGE_KINDS.len(),
                "{}",
                message.kind()
            );
        }
        // Tags 0-15 and 20-29 are spoken: 26 kinds, the last one tag 29.
        assert_eq!(MESSAGE_KINDS.len(), 26);
        assert_eq!(MESSAGE_KINDS[samples[2].kind_index()], "unspent");
        assert_eq!(MESSAGE_KINDS[samples[0].kind_index()], "get_mint_template");
    }
}
