//! What a node tells its operator: one struct per kind of event, written
//! one JSON object per line (`{"type":"status",...}`) by the driver and
//! read back with the same types by the devnet and the tests
//! ([`Event::parse`]). The node core queues them (`NodeCore::poll_event`);
//! it never prints.

use serde::{Deserialize, Serialize};

/// Every event of a node, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The genesis loaded and checked (DESIGN §9; the seed's line).
    GenesisLoaded(GenesisLoaded),
    /// The validator key the node runs with.
    NodeIdentity(NodeIdentity),
    /// A shard's machine was restored from its log.
    ShardRestored(ShardRestored),
    /// A core is up and listening.
    CoreStarted(CoreStarted),
    /// Once per status interval per local shard.
    Status(Box<Status>),
    /// A peer's Hello verified.
    PeerConnected(PeerConnected),
    /// A verified peer's connection closed.
    PeerDisconnected(PeerDisconnected),
    /// A peer's Hello did not verify.
    PeerRefused(PeerRefused),
    /// A peer or source address broke the protocol.
    PeerViolation(PeerViolation),
    /// An incoming connection was refused before it became one.
    ConnectionRefused(ConnectionRefused),
    /// A peer sent an anchor the machine refused.
    AnchorRefused(AnchorRefused),
    /// A peer relayed evidence that did not verify.
    EvidenceRefused(EvidenceRefused),
    /// The peer book could not be written.
    PeerBookError(PeerBookError),
    /// A core loop has not turned for a while (the watchdog).
    CoreStalled(CoreStalled),
    /// An injected crash point fired (tests).
    CrashInjected(CrashInjected),
    /// A core stopped.
    CoreStopped(CoreStopped),
    /// A shard stopped (its final report).
    ShardStopped(Box<ShardStopped>),
    /// The node serves its metrics.
    MetricsServing(MetricsServing),
    /// A snapshot file was not used at start-up (file and reason).
    SnapshotSkipped(SnapshotSkipped),
    /// A snapshot file was written.
    SnapshotWritten(SnapshotWritten),
    /// Writing a snapshot failed (the next one is taken when due).
    SnapshotFailed(SnapshotFailed),
    /// Log segments below the prune bound were deleted.
    LogPruned(LogPruned),
    /// A peer answered a catch-up request `Pruned`.
    PeerPruned(PeerPruned),
    /// A setting was taken with a note for the operator.
    ConfigNote(ConfigNote),
    /// The node could not start or stopped on an error.
    Fatal(Fatal),
}

/// How much an event matters (the log level it is written at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The node stops or lost something.
    Error,
    /// A peer or the host misbehaves; the node goes on.
    Warn,
    /// What an operator follows.
    Info,
}

impl Event {
    /// The level the event is logged at.
    pub fn severity(&self) -> Severity {
        match self {
            Event::PeerBookError(_) | Event::Fatal(_) | Event::SnapshotFailed(_) => Severity::Error,
            Event::PeerRefused(_)
            | Event::PeerViolation(_)
            | Event::ConnectionRefused(_)
            | Event::AnchorRefused(_)
            | Event::EvidenceRefused(_)
            | Event::CoreStalled(_)
            | Event::CrashInjected(_)
            | Event::ConfigNote(_)
            | Event::SnapshotSkipped(_)
            | Event::PeerPruned(_) => Severity::Warn,
            _ => Severity::Info,
        }
    }

    /// Whether the line is the seed's own, written exactly as the seed
    /// gives it (no level or time added).
    pub fn seed_shaped(&self) -> bool {
        matches!(self, Event::GenesisLoaded(_))
    }

    /// The event as one JSON line (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("events serialize")
    }

    /// An event read back from one line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Event> {
        serde_json::from_str(line).ok()
    }
}

/// The seed's `{"type":"genesis_loaded","k":..,"commitment":".."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenesisLoaded {
    /// Committee seats per shard.
    pub k: u8,
    /// `blake3_32(genesis_note)`, hex.
    pub commitment: String,
}

/// Where the node serves `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsServing {
    /// The address bound.
    pub address: String,
    /// The URL to scrape.
    pub url: String,
}

/// A setting taken with a note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigNote {
    /// The key or flag.
    pub key: String,
    /// The note.
    pub note: String,
}

/// The node could not start or stopped on an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fatal {
    /// The error (names the file, key, peer or offset).
    pub error: String,
}

/// The validator key the node runs with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// The key, hex.
    pub validator_key: String,
    /// Seats it holds in the genesis committee.
    pub seats: usize,
    /// Why it runs as an observer, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// A shard's machine was restored from its log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRestored {
    /// The shard.
    pub shard: u16,
    /// Records in its log.
    pub records: u64,
    /// Of them, anchors.
    pub anchors: u64,
    /// Records durable.
    pub durable_records: u64,
    /// The snapshot it started from (none: the log from genesis).
    #[serde(default)]
    pub snapshot: Option<String>,
    /// That snapshot's last finalized round.
    #[serde(default)]
    pub snapshot_round: Option<u64>,
    /// Log records replayed after it.
    #[serde(default)]
    pub replayed_records: u64,
    /// The first record the log holds (above 0 once pruned).
    #[serde(default)]
    pub log_first_record: u64,
}

/// A snapshot file not used at start-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSkipped {
    /// The shard.
    pub shard: u16,
    /// The file.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// A snapshot file written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotWritten {
    /// The shard.
    pub shard: u16,
    /// Its last finalized round.
    pub round: u64,
    /// The file.
    pub file: String,
    /// Its size.
    pub bytes: u64,
    /// Milliseconds to archive and hash it.
    pub encode_ms: u64,
    /// Milliseconds to write, sync and rename it.
    pub write_ms: u64,
}

/// A snapshot that could not be written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotFailed {
    /// The shard.
    pub shard: u16,
    /// The error (file and operation).
    pub error: String,
}

/// A peer no longer holds the rounds this node asked it for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerPruned {
    /// The core.
    pub core: usize,
    /// The shard.
    pub shard: u16,
    /// The peer's validator index.
    pub peer: u32,
    /// Its address.
    pub remote: String,
    /// The lowest round it serves completely.
    pub oldest_round: u64,
    /// Its newest snapshot's round (state sync would start there).
    pub snapshot_round: Option<u64>,
}

/// Log segments deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogPruned {
    /// The shard.
    pub shard: u16,
    /// Segments deleted.
    pub segments: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The first record the log now holds.
    pub first_record: u64,
}

/// A core is up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoreStarted {
    /// The core.
    pub core: usize,
    /// Its endpoint's address.
    pub listen: String,
    /// Its shards.
    pub shards: Vec<u16>,
    /// BIP-340 verifies per second measured at start-up (the floor of the
    /// shards' capacity signal).
    #[serde(default)]
    pub verify_per_s: u64,
}

/// One status line of one local shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Milliseconds since the node started.
    pub t_ms: u64,
    /// The core.
    pub core: usize,
    /// The shard.
    pub shard: u16,
    /// Anchors taken in since start.
    pub anchors: u64,
    /// Rounds finalized since start.
    pub rounds: u64,
    /// Last finalized round (-1: none).
    pub last_round: i64,
    /// Micro-events finalized since start.
    pub finalized_events: u64,
    /// Of them, applied.
    pub applied_events: u64,
    /// Anchors waiting for parents.
    pub pending: usize,
    /// Micro-events waiting for an own anchor.
    pub mempool: usize,
    /// Distinct verified peers connected.
    pub peers: usize,
    /// Connections.
    pub links: usize,
    /// Client finality p50 of this interval, µs.
    pub finality_p50_us: u64,
    /// Client finality p99 of this interval, µs.
    pub finality_p99_us: u64,
    /// Client finalities measured this interval.
    pub finality_samples: u64,
    /// `GetRange` requests the shard's machine made (catch-up).
    pub catch_up_requests: u64,
    /// Protocol violations seen.
    pub violations: u64,
    /// Hellos refused.
    pub refused_hellos: u64,
    /// Frames a connection's send queue refused.
    pub dropped_sends: u64,
    /// Frames the inbox dropped.
    pub dropped_inbox: u64,
    /// Messages a full ring dropped.
    pub dropped_ring: u64,
    /// Frames waiting in the core's inbox.
    #[serde(default)]
    pub inbox_frames: u64,
    /// Anchors not served, micro-events not taken and queries not
    /// answered for a budget.
    pub throttled: u64,
    /// The capacity signal: finalized micro-events per second over the
    /// last 2 s.
    #[serde(default)]
    pub capacity_per_s: u64,
    /// Micro-events held: mempool, unfinalized and pending anchors.
    #[serde(default)]
    pub backlog: u64,
    /// The backlog admission control admits into.
    #[serde(default)]
    pub backlog_bound: u64,
    /// Client micro-events this node accepted that are not final yet.
    #[serde(default)]
    pub own_backlog: u64,
    /// This node's share of `backlog_bound` (see `capacity`).
    #[serde(default)]
    pub own_bound: u64,
    /// Age of the oldest accepted, unfinalized client micro-event, ms.
    #[serde(default)]
    pub oldest_accepted_ms: u64,
    /// Least submit-to-final latency over the last 10 s, ms (the base
    /// both admission bounds add to).
    #[serde(default)]
    pub base_latency_ms: u64,
    /// Client micro-events admission control let through, since start.
    #[serde(default)]
    pub admitted: u64,
    /// Client micro-events admission control refused as overloaded.
    #[serde(default)]
    pub refused: u64,
    /// The last retry-after hint given, ms.
    #[serde(default)]
    pub retry_after_ms: u32,
    /// Client micro-events the mempool took (answered "accepted").
    #[serde(default)]
    pub accepted_submissions: u64,
    /// Of them, finalized (applied or rejected by apply).
    #[serde(default)]
    pub finalized_submissions: u64,
    /// Of them, no longer tracked (not finalized within 30 s).
    #[serde(default)]
    pub expired_submissions: u64,
    /// BIP-340 verifications the shard performed since start (client
    /// submissions, peers' anchors and their payloads).
    #[serde(default)]
    pub signature_verifies: u64,
    /// Anonymous RSS of the process, KiB.
    pub anon_rss_kib: u64,
    /// Value this shard exported to others, cumulative (its finalized
    /// state's counter; u64 on the line: the supply cap fits).
    #[serde(default)]
    pub exported: u64,
    /// Value it imported from others, cumulative.
    #[serde(default)]
    pub imported: u64,
    /// Own checkpoints certified (assembled or adopted).
    #[serde(default)]
    pub certified: u64,
    /// Export bundles received from other shards and logged.
    #[serde(default)]
    pub bundles_received: u64,
    /// Imports queued into own anchors.
    #[serde(default)]
    pub imports_queued: u64,
    /// Cross-shard latency into this shard so far (a transfer this node
    /// took on a shard of the same core, to its first import final here):
    /// median, µs.
    #[serde(default)]
    pub cross_final_p50_us: u64,
    /// Its 99th percentile, µs.
    #[serde(default)]
    pub cross_final_p99_us: u64,
    /// Transfers measured.
    #[serde(default)]
    pub cross_final_samples: u64,
    /// State root after the last finalized round, hex.
    pub state_root: String,
}

/// A peer's Hello verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerConnected {
    /// The core.
    pub core: usize,
    /// Its validator index.
    pub peer: u32,
    /// Its validator key, hex.
    pub validator_key: String,
    /// Its address.
    pub remote: String,
    /// This core dialed it.
    pub outgoing: bool,
}

/// A verified peer's connection closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerDisconnected {
    /// The core.
    pub core: usize,
    /// Its validator index.
    pub peer: u32,
    /// Its address.
    pub remote: String,
    /// Why.
    pub reason: String,
}

/// A peer's Hello did not verify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerRefused {
    /// The core.
    pub core: usize,
    /// Its address.
    pub remote: String,
    /// Why.
    pub reason: String,
}

/// A protocol violation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerViolation {
    /// The core.
    pub core: usize,
    /// The address.
    pub remote: String,
    /// What it did.
    pub reason: String,
    /// Whether the address is banned now.
    pub banned: bool,
}

/// An incoming connection was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionRefused {
    /// The core.
    pub core: usize,
    /// The address.
    pub remote: String,
    /// Why.
    pub reason: String,
}

/// A peer sent an anchor the machine refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnchorRefused {
    /// The core.
    pub core: usize,
    /// The shard.
    pub shard: u16,
    /// The peer's validator index.
    pub peer: u32,
    /// Its address.
    pub remote: String,
    /// Why.
    pub reason: String,
}

/// A peer relayed evidence that did not verify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRefused {
    /// The core.
    pub core: usize,
    /// The shard.
    pub shard: u16,
    /// The address.
    pub remote: String,
    /// Why.
    pub reason: String,
}

/// The peer book could not be written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerBookError {
    /// The core whose book it is.
    pub core: usize,
    /// The error (names the file).
    pub error: String,
}

/// A core loop that has not turned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoreStalled {
    /// The core.
    pub core: usize,
    /// Milliseconds since its loop last turned.
    pub stalled_ms: u64,
    /// What it was waiting on then.
    pub waiting_on: String,
}

/// An injected crash point fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrashInjected {
    /// The site.
    pub site: String,
    /// The shard.
    pub shard: u16,
    /// Which occurrence.
    pub occurrence: u64,
}

/// A core stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoreStopped {
    /// The core.
    pub core: usize,
    /// UDP datagrams received.
    pub datagrams_received: u64,
    /// UDP datagrams sent.
    pub datagrams_sent: u64,
}

/// A shard's final report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardStopped {
    /// The shard.
    pub shard: u16,
    /// Anchors restored from the log at start-up.
    pub restored_anchors: u64,
    /// Anchors taken in.
    pub anchors: u64,
    /// Rounds finalized.
    pub rounds: u64,
    /// Last finalized round (-1: none).
    pub last_round: i64,
    /// Micro-events finalized.
    pub finalized_events: u64,
    /// Of them, applied.
    pub applied_events: u64,
    /// Records in the log.
    pub log_records: u64,
    /// Of them, durable.
    pub durable_records: u64,
    /// Client finality p50 over the run, µs.
    pub event_finality_p50_us: u64,
    /// Client finality p99 over the run, µs.
    pub event_finality_p99_us: u64,
    /// Client finalities measured.
    pub event_finality_samples: u64,
    /// Final state root, hex.
    pub state_root: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_as_themselves_with_the_type_tag() {
        let event = Event::PeerViolation(PeerViolation {
            core: 1,
            remote: "127.0.0.1:9".into(),
            reason: "Anchors before a verified Hello".into(),
            banned: true,
        });
        let line = event.to_line();
        assert!(
            line.starts_with(r#"{"type":"peer_violation","core":1"#),
            "{line}"
        );
        assert_eq!(Event::parse(&line), Some(event));
        assert_eq!(Event::parse("not json"), None);
        let seed = Event::GenesisLoaded(GenesisLoaded {
            k: 21,
            commitment: "ab".into(),
        });
        assert_eq!(
            seed.to_line(),
            r#"{"type":"genesis_loaded","k":21,"commitment":"ab"}"#
        );
        assert_eq!(Event::parse(r#"{"type":"unknown_kind"}"#), None);
    }
}
