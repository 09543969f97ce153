//! The sans-IO state machine of one shard of one validator, in the
//! quinn-proto style: `handle_*` methods take input (anchor bytes from a
//! peer, micro-events from clients, "record N is durable", a logical tick),
//! `#[must_use] poll_*` methods give output (messages to send, records to
//! persist, finalized rounds, the next timer). It runs as a seat (it signs
//! anchors) or as an observer (it validates and finalizes, never signs).
//!
//! The machine never does I/O and never reads a clock: the driver (the
//! engine, or the simulator) owns sockets, logs and time. Every queue it
//! holds has a bound from [`ShardLimits`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use foldhash::{HashMap, HashMapExt};

use pc_codec::genesis::Genesis;
use pc_codec::{
    AnchorHeader, AnchorPayload, Decode, DecodeError, DecodedAnchor, Encode, EventDigest, Evidence,
    Hash32, LogRecordKind, MerkleProof, MicroEvent, Offence, ParentRef, PublicKeyBytes,
    RoundFinalized, SignatureBytes, SignatureVerifier, SignedAnchor, SignedAnchorHeader,
    SigningKey, Why, MAX_PAYLOAD_EVENTS, PROTOCOL_VERSION,
};

use crate::consensus::{Consensus, ConsensusConfig, InsertError};
use crate::state::{FinalizedPayload, RoundOutcome, ShardState};
use crate::validate::{
    preverify_anchors, validate_decoded_with, validate_micro_event, validate_micro_events,
    AnchorError, MicroEventError, Preverified, ShardContext,
};
use crate::vertex::{FinalizedRound, VertexSpec};

/// Signs a seat's anchors.
pub trait AnchorSigner {
    /// The seat's public key.
    fn public_key(&self) -> PublicKeyBytes;
    /// Signs a header id.
    fn sign(&self, message: &[u8]) -> SignatureBytes;
    /// Signs a header id a second time, with another signature where the
    /// scheme allows: only the equivocation test flag
    /// ([`Shard::set_equivocate_at`]) calls it.
    fn sign_again(&self, message: &[u8]) -> SignatureBytes {
        self.sign(message)
    }
    /// Signs an own anchor header (its id). A signer held apart (the
    /// signer process) sees the header and keeps one per (shard, seat,
    /// seq).
    fn sign_header(&self, header: &AnchorHeader) -> SignatureBytes {
        self.sign(&header.id())
    }
    /// Signs the shard's checkpoint of a round, whose id is `id`.
    fn sign_checkpoint(&self, checkpoint: &pc_codec::Checkpoint, id: &Hash32) -> SignatureBytes {
        let _ = checkpoint;
        self.sign(id)
    }
}

/// A signer shared by a validator's seats and cross-shard links: its own
/// key, or a signer process it asks (the engine's `RemoteSigner`).
#[derive(Clone)]
pub struct SharedSigner(pub std::sync::Arc<dyn AnchorSigner + Send + Sync>);

impl SharedSigner {
    /// A validator key held by the node itself.
    pub fn local(key: SigningKey) -> SharedSigner {
        SharedSigner(std::sync::Arc::new(key))
    }
}

impl std::fmt::Debug for SharedSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SharedSigner({})",
            pc_codec::to_hex(&self.0.public_key())
        )
    }
}

impl AnchorSigner for SharedSigner {
    fn public_key(&self) -> PublicKeyBytes {
        self.0.public_key()
    }
    fn sign(&self, message: &[u8]) -> SignatureBytes {
        self.0.sign(message)
    }
    fn sign_again(&self, message: &[u8]) -> SignatureBytes {
        self.0.sign_again(message)
    }
    fn sign_header(&self, header: &AnchorHeader) -> SignatureBytes {
        self.0.sign_header(header)
    }
    fn sign_checkpoint(&self, checkpoint: &pc_codec::Checkpoint, id: &Hash32) -> SignatureBytes {
        self.0.sign_checkpoint(checkpoint, id)
    }
}

/// BIP-340 signing for the product. The auxiliary randomness is all zeros,
/// which BIP-340 allows (the nonce stays deterministic in key and message);
/// a driver that wants fresh auxiliary randomness wraps its own signer.
impl AnchorSigner for SigningKey {
    fn public_key(&self) -> PublicKeyBytes {
        SigningKey::public_key(self)
    }
    fn sign(&self, message: &[u8]) -> SignatureBytes {
        SigningKey::sign(self, message, &[0; 32])
    }
    fn sign_again(&self, message: &[u8]) -> SignatureBytes {
        // Other auxiliary randomness, another nonce: another valid
        // signature of the same header, so another anchor id.
        SigningKey::sign(self, message, &[1; 32])
    }
}

/// A seat of the simulator's fast signature scheme (never the product;
/// `test-support` feature).
#[cfg(feature = "test-support")]
#[derive(Debug, Clone, Copy)]
pub struct FastSeatKey(pub PublicKeyBytes);

#[cfg(feature = "test-support")]
impl AnchorSigner for FastSeatKey {
    fn public_key(&self) -> PublicKeyBytes {
        self.0
    }
    fn sign(&self, message: &[u8]) -> SignatureBytes {
        crate::sim_crypto::FastSigner.sign(&self.0, message)
    }
}

/// Numeric bounds on everything the machine queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLimits {
    /// Largest anchor accepted, in encoded bytes (checked before decoding).
    pub max_anchor_bytes: usize,
    /// Anchors held while their parents are pulled; the oldest is dropped
    /// to admit a new one.
    pub max_pending_anchors: usize,
    /// Parent ids requested and not yet received.
    pub max_outstanding_pulls: usize,
    /// Micro-events waiting for an own anchor.
    pub max_mempool_events: usize,
    /// Ticks before an unanswered pull is asked of every peer.
    pub pull_retry_ticks: u64,
    /// Least ticks between two own anchors that carry no micro-events
    /// (`0`: no pacing; a driver that never ticks must use 0).
    pub ack_interval_ticks: u64,
    /// Rounds the machine's DAG may end below the committee's (see
    /// [`Shard::lag_rounds`]) before it catches up by
    /// [`ShardMessage::GetRange`].
    pub catch_up_lag_rounds: u64,
    /// Pending anchors (waiting for parents) per committee seat, `k` times
    /// this in all, at which the machine catches up by range however few
    /// rounds it lags: a committee that cannot advance rounds still makes
    /// acknowledgement anchors, so a node restarted in a stall lacks
    /// hundreds of anchors of its own rounds. (Per seat: a round holds
    /// anchors of every seat, and a larger committee keeps more pending in
    /// step.)
    pub catch_up_pending_per_seat: usize,
    /// Least ticks between two `GetRange`s.
    pub catch_up_interval_ticks: u64,
    /// Anchors one `GetRange` asks for (`0`: the machine never asks).
    pub catch_up_anchors: u32,
}

impl Default for ShardLimits {
    fn default() -> Self {
        ShardLimits {
            max_anchor_bytes: 1 << 20,
            max_pending_anchors: 4096,
            max_outstanding_pulls: 1024,
            max_mempool_events: 65_536,
            pull_retry_ticks: 10,
            ack_interval_ticks: 0,
            catch_up_lag_rounds: 3,
            catch_up_pending_per_seat: 16,
            catch_up_interval_ticks: 20,
            catch_up_anchors: 256,
        }
    }
}

/// Sync bookkeeping of a machine (see [`Shard::sync_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    /// Pulls sent and not answered yet.
    pub outstanding_pulls: usize,
    /// Missing parent ids that pending anchors wait for.
    pub missing_parents: usize,
    /// Evicted anchors to fetch again.
    pub refetch: usize,
    /// `GetRange` requests made since the machine started.
    pub catch_up_requests: u64,
    /// Anchors left unchecked because the pending set was full of anchors
    /// closer to insertion ([`AnchorStatus::Deferred`]).
    pub deferred: u64,
}

/// A peer as the driver names it.
pub type PeerId = u32;

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Every peer of the shard's committee.
    Broadcast,
    /// One peer.
    Peer(PeerId),
}

/// A message of the shard protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardMessage {
    /// An encoded [`SignedAnchor`].
    Anchor(Vec<u8>),
    /// A request for anchors by id.
    Get(Vec<Hash32>),
    /// The sender's tips: per seat its highest anchor (DESIGN §7
    /// `Announce`), sent every [`ANNOUNCE_EVERY_RETRIES`] pull-retry
    /// periods by a node that inserted nothing in the last period, so that
    /// a node that lost track of a backlog (evictions, restarts,
    /// partitions) pulls what it is missing.
    Announce(Vec<Hash32>),
    /// Catch-up (DESIGN §7 `GetRange`): a request for up to `max_count`
    /// anchors of birth round `from_round` and above, lowest round first
    /// and in the server's log order within a round (parents before
    /// children), so that they insert as they arrive instead of waiting in
    /// the pending set. Always to one peer.
    GetRange {
        /// The lowest birth round wanted.
        from_round: u64,
        /// Most anchors wanted.
        max_count: u32,
    },
    /// An encoded Evidence or Offence micro-event this seat found (DESIGN
    /// §7 `Evidence`): relayed to the peers, so the first seat to carry it
    /// need not be this one. A receiver queues it as a submission.
    Evidence(Vec<u8>),
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: Destination,
    /// What.
    pub message: ShardMessage,
}

/// A record to append to the shard's log. Tokens count up from 0 in the
/// order records are emitted; the driver appends them in that order and
/// reports durability with [`Shard::handle_durable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistRecord {
    /// Position in the machine's record stream.
    pub token: u64,
    /// The record kind.
    pub kind: LogRecordKind,
    /// The record body.
    pub body: Vec<u8>,
}

/// A finalized round with its anchors and state outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizedReport {
    /// Consensus' view: UFWs and the ordered anchors.
    pub round: FinalizedRound,
    /// The state's view: outcomes, fees, roots.
    pub outcome: RoundOutcome,
}

/// How an accepted anchor was taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorStatus {
    /// Inserted into the DAG (with any pending descendants it unblocked).
    Inserted,
    /// Held until its missing parents arrive.
    Pending,
    /// Already known.
    Duplicate,
    /// Ancient (DESIGN §4): its window reaches below the rounds this node
    /// still holds, so it can never be finalized; dropped.
    Ancient,
    /// Neither checked nor held: it misses parents and the pending set is
    /// full of anchors closer to insertion (it would be the first evicted).
    /// A catch-up range or a pull brings it again once there is room.
    Deferred,
}

/// Why an anchor was refused. Its sender is to be penalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorRejected {
    /// Over [`ShardLimits::max_anchor_bytes`].
    #[error("anchor of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a canonical encoding.
    #[error("malformed anchor: {0}")]
    Malformed(#[from] DecodeError),
    /// Breaks a validity rule of DESIGN §3.3.
    #[error("invalid anchor: {0}")]
    Invalid(#[from] AnchorError),
    /// A parent reference whose creator, seq or birth round is not the
    /// parent's.
    #[error("parent {index} does not match the anchor it references")]
    ParentRefMismatch {
        /// Position in the parent list.
        index: usize,
    },
    /// Its birth round is not the round it computes to, or consensus refused it.
    #[error("anchor refused by consensus: {0}")]
    Consensus(#[from] InsertError),
}

/// Why a client's micro-event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitRejected {
    /// The machine is an observer.
    #[error("this node holds no seat in the shard")]
    NotASeat,
    /// The mempool is full.
    #[error("mempool full ({max} micro-events)")]
    MempoolFull {
        /// The bound.
        max: usize,
    },
    /// The micro-event is not valid for this shard.
    #[error("invalid micro-event: {0}")]
    Invalid(#[from] crate::validate::MicroEventError),
    /// Valid evidence against a seat that already has evidence queued.
    #[error("evidence against seat {seat} is already queued")]
    EvidenceQueued {
        /// The accused seat.
        seat: u8,
    },
    /// A transfer spends a minted output the finalized state does not let
    /// it spend yet (apply would refuse it: outcome 10).
    #[error("input {input} is a minted output that matures at anchor index {mature_at}; the shard is at {next_index}")]
    ImmatureInput {
        /// Position of the input.
        input: usize,
        /// Anchor index it spends from.
        mature_at: u64,
        /// The finalized state's next anchor index.
        next_index: u64,
    },
    /// A mint the finalized chain already refuses (not on the tip, not
    /// below the target, the schedule spent, the race's best again).
    #[error("mint would not apply: {outcome:?}")]
    MintRefused {
        /// What apply would say.
        outcome: crate::state::Outcome,
    },
    /// A mint that cannot win: the open race's best is lower, or the pool
    /// holds 16 lower ones on this tip (or this one already).
    #[error("mint cannot win: {reason}")]
    MintNotBest {
        /// Which.
        reason: &'static str,
    },
    /// A claim the finalized state already refuses (stale: the seat claimed
    /// since; its root unknown or expired; a proof that does not fit).
    #[error("claim would not apply: {outcome:?}")]
    ClaimRefused {
        /// What apply would say.
        outcome: crate::state::Outcome,
    },
}

/// A restart that found the log inconsistent with what the machine derives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// A record does not decode.
    #[error("record {index}: {error}")]
    Malformed {
        /// Position among the records given.
        index: usize,
        /// The decode error.
        error: DecodeError,
    },
    /// A logged anchor is refused on replay.
    #[error("record {index}: logged anchor refused: {error}")]
    Refused {
        /// Position among the records given.
        index: usize,
        /// Why.
        error: AnchorRejected,
    },
    /// A logged finalized round differs from the re-derived one.
    #[error("round {round}: logged {logged} but re-derived {derived}")]
    RoundMismatch {
        /// The round.
        round: u64,
        /// What the log says.
        logged: String,
        /// What replay derived.
        derived: String,
    },
    /// A record of the node's (a snapshot marker, a cross-shard record)
    /// between an anchor and the rounds it finalized: the log's order is
    /// not the one the node writes.
    #[error(
        "record {index}: a {kind:?} record before the finalized rounds of the anchor ahead of it"
    )]
    OutOfOrder {
        /// Position among the records given.
        index: usize,
        /// Its kind.
        kind: LogRecordKind,
    },
}

struct SeatRole<S> {
    seat: u8,
    signer: S,
    next_seq: u64,
    last_own: Option<ParentRef>,
    /// The own anchor waiting for its record to become durable before it is sent.
    awaiting_durable: Option<(u64, Vec<u8>)>,
    /// Latest anchor of each other seat.
    latest: BTreeMap<u8, ParentRef>,
    /// Other seats with an anchor not yet referenced, with the own anchor
    /// count when they started waiting (oldest first: no seat starves).
    unacknowledged: BTreeMap<u8, u64>,
    /// Other seats with an anchor inserted since the own last anchor: an
    /// acknowledgement-only anchor waits until, with its own, they make a
    /// supermajority (round progress calls for one then, not before).
    fresh: BTreeSet<u8>,
    own_anchors: u64,
    /// The highest own seq another seat's inserted anchor names as a
    /// parent: the committee holds the own chain up to it.
    acked_seq: Option<u64>,
    /// Own anchors of the current chain (since its last cut) above
    /// `acked_seq`: seq -> birth round, one entry per birth round (the
    /// lowest seq born there). The first is the oldest anchor no other
    /// seat is known to hold.
    unacked_births: BTreeMap<u64, u64>,
    /// The birth round of the last own anchor, and how many own anchors
    /// were born there.
    own_round: (u64, u32),
    /// While resuming a seat whose own log may end before its last anchors
    /// (DESIGN §6.1 step 4): the decided round it must reach before it
    /// signs; raised by `G` rounds each time a higher own seq is seen.
    resume_until: Option<u64>,
}

/// Most entries of [`SeatRole::unacked_births`] (distinct birth rounds of
/// an unacknowledged own chain); past it new rounds are not recorded, so
/// the oldest stays known and the hold errs on the safe side.
const MAX_UNACKED_BIRTHS: usize = 4096;

/// Own anchors with micro-events a seat makes at one birth round, at most;
/// past it, only (paced) acknowledgement-only anchors until the round
/// advances. A committee in step makes one or two per seat and round.
pub const MAX_OWN_PER_ROUND: u32 = 8;
/// Most re-derived rounds with exports a restore keeps for the node's
/// cross-shard link when the log lacks their `ExportsBuilt` record (the
/// link keeps as many own rounds).
pub const MAX_UNBUILT_ROUNDS: usize = 4_096;

/// Anchors of at most this many transfers are verified together with the
/// other small anchors of a group ([`Shard::preverify_anchors`]); larger
/// ones are a batch of their own.
pub const JOIN_BELOW_TRANSFERS: usize = 64;

/// At most this many signatures are joined into one batch.
pub const JOIN_MAX_SIGNATURES: usize = 1024;
/// The payload of a seat's fifth own anchor at one birth round is half the
/// maximum, of the sixth a quarter, and so on down to this: a seat whose
/// mempool fills faster than rounds advance does not put more into the
/// round than its slowest quorum member must verify, and the rest waits in
/// the mempool, where admission control counts it. (Halving from the third
/// anchor on cut the 4-node devnet's finalized rate and raised its p99:
/// under load a seat makes two anchors per round on average, and three or
/// four in some.)
pub const MIN_PAYLOAD_CAP: usize = 32;
/// Imports seen in other seats' anchors kept until the driver takes them
/// ([`Shard::take_seen_imports`]); past it they are not noted (a hint:
/// at worst a leaf is carried twice and the second copy refused).
pub const SEEN_IMPORTS_MAX: usize = 65_536;
/// Own anchors at one birth round that carry a full payload.
pub const FULL_PAYLOADS_PER_ROUND: u32 = 4;

/// The payload cap of a seat's own anchor when `made` own anchors were
/// already born at its birth round (none from [`MAX_OWN_PER_ROUND`] on).
#[must_use]
pub fn payload_cap(made: u32) -> usize {
    if made >= MAX_OWN_PER_ROUND {
        return 0;
    }
    let halvings = (made + 1).saturating_sub(FULL_PAYLOADS_PER_ROUND).min(8);
    (MAX_PAYLOAD_EVENTS >> halvings).max(MIN_PAYLOAD_CAP)
}

/// An upper bound of `event`'s encoded bytes: exact arithmetic for a
/// transfer (the common case), the encoding for the rest.
fn event_bytes_bound(event: &MicroEvent) -> usize {
    match event {
        // Tag, two counts of at most 16 (one byte each), 34-byte inputs,
        // 40-byte outputs, the owner and the signature.
        MicroEvent::Transfer(t) => 3 + 34 * t.inputs.len() + 40 * t.outputs.len() + 96,
        other => other.to_bytes().len(),
    }
}

/// Bytes of micro-events an own payload may hold: the payload bound less
/// its count's varint (DESIGN §3.3: an anchor past it is unsatisfiable).
const PAYLOAD_EVENT_BYTES: usize = crate::validate::MAX_PAYLOAD_BYTES as usize - 3;

/// Takes up to `cap` micro-events from the front of `mempool` for an own
/// anchor, in order, but at most
/// [`pc_codec::cross::MAX_CERTIFIED_IMPORTS_PER_ANCHOR`] imports of the
/// Certified form (an anchor with more is invalid) and at most
/// [`PAYLOAD_EVENT_BYTES`] of encoded events (a larger payload breaks the
/// satisfiable commitment): the ones past either stay at the front of the
/// mempool for the next anchor.
fn take_payload(mempool: &mut VecDeque<MicroEvent>, cap: usize) -> Vec<MicroEvent> {
    let is_certified =
        |e: &MicroEvent| matches!(e, MicroEvent::Import(i) if i.certificate().is_some());
    let take = mempool.len().min(cap);
    let (mut certified, mut bytes) = (0, 0);
    for event in mempool.iter().take(take) {
        certified += usize::from(is_certified(event));
        bytes += event_bytes_bound(event);
    }
    if certified <= pc_codec::cross::MAX_CERTIFIED_IMPORTS_PER_ANCHOR
        && bytes <= PAYLOAD_EVENT_BYTES
    {
        return mempool.drain(..take).collect();
    }
    let mut events = Vec::with_capacity(take);
    let mut kept = VecDeque::new();
    let (mut certified, mut bytes) = (0, 0);
    // Looks at most twice the payload's worth of events.
    let mut budget = 2 * take;
    while events.len() < take && budget > 0 {
        budget -= 1;
        let Some(event) = mempool.pop_front() else {
            break;
        };
        let size = event_bytes_bound(&event);
        let certified_full =
            is_certified(&event) && certified == pc_codec::cross::MAX_CERTIFIED_IMPORTS_PER_ANCHOR;
        if certified_full || bytes + size > PAYLOAD_EVENT_BYTES {
            kept.push_back(event);
            continue;
        }
        certified += usize::from(is_certified(&event));
        bytes += size;
        events.push(event);
    }
    while let Some(event) = kept.pop_back() {
        mempool.push_front(event);
    }
    events
}

impl<S> SeatRole<S> {
    /// Takes note of an inserted own anchor: a cut chain (no self-parent
    /// held below it) starts a new unacknowledged run.
    fn note_own(&mut self, seq: u64, birth_round: u64, cuts: bool) {
        if self.acked_seq.is_some_and(|acked| seq <= acked) {
            return;
        }
        if cuts {
            self.unacked_births.clear();
        }
        let new_round = self
            .unacked_births
            .last_key_value()
            .is_none_or(|(_, birth)| *birth != birth_round);
        if new_round && self.unacked_births.len() < MAX_UNACKED_BIRTHS {
            self.unacked_births.insert(seq, birth_round);
        }
    }

    /// Takes note of another seat's anchor naming own seq `seq` as a parent.
    fn note_acked(&mut self, seq: u64) {
        if self.acked_seq.is_some_and(|acked| acked >= seq) {
            return;
        }
        self.acked_seq = Some(seq);
        // The run's entry covering seq + 1 (if any) moves up to it.
        let above = self.unacked_births.split_off(&(seq + 1));
        let covering = self.unacked_births.last_key_value().map(|(_, b)| *b);
        self.unacked_births = above;
        if let Some(birth) = covering {
            if seq < self.next_seq.saturating_sub(1)
                && !self.unacked_births.contains_key(&(seq + 1))
            {
                self.unacked_births.insert(seq + 1, birth);
            }
        }
    }

    /// Birth round of the oldest own anchor of the current chain that no
    /// other seat is known to hold.
    fn oldest_unacked_birth(&self) -> Option<u64> {
        self.unacked_births
            .first_key_value()
            .map(|(_, birth)| *birth)
    }
}

/// When an outstanding pull was first and last asked for.
#[derive(Debug, Clone, Copy)]
struct PullSince {
    first: u64,
    last: u64,
}

impl PullSince {
    fn at(now: u64) -> Self {
        PullSince {
            first: now,
            last: now,
        }
    }
}

/// Tips are announced every this many pull-retry periods.
pub const ANNOUNCE_EVERY_RETRIES: u64 = 4;

/// Most peers a machine remembers to ask for catch-up ranges (far more
/// than a committee of 64 seats and its observers).
pub const MAX_CATCH_UP_PEERS: usize = 256;

/// Catch-up bookkeeping: the peers that sent valid anchors (asked in turn,
/// in peer order), the last one asked and when, and requests so far.
#[derive(Debug, Default)]
struct CatchUp {
    peers: BTreeSet<PeerId>,
    last_peer: Option<PeerId>,
    last_at: Option<u64>,
    requests: u64,
}

impl CatchUp {
    /// Remembers a peer that sent a valid anchor (while there is room).
    fn note_peer(&mut self, peer: PeerId) {
        if self.peers.len() < MAX_CATCH_UP_PEERS {
            self.peers.insert(peer);
        }
    }

    /// The peer after the last one asked, in peer order, wrapping around.
    fn next_peer(&self) -> Option<PeerId> {
        let after = self.last_peer.and_then(|last| {
            self.peers
                .range((std::ops::Bound::Excluded(last), std::ops::Bound::Unbounded))
                .next()
        });
        after.or_else(|| self.peers.first()).copied()
    }
}

/// Retries after which an unanswered pull is given up; the anchors waiting
/// for it stay pending (bounded) and ask again on a later tick.
pub const PULL_GIVE_UP_RETRIES: u64 = 8;

/// Pull retries the committee's round must stand still before a seat
/// holding its anchor for its chain's sake signs anyway (see
/// `Shard::holds_for_chain`).
pub const CHAIN_HOLD_PATIENCE_RETRIES: u64 = 10;

/// Acknowledgement intervals a seat waits, after its last own anchor, for
/// a supermajority of seats to move on before it makes an
/// acknowledgement-only anchor anyway (see `Shard::after_input`).
pub const ACK_PATIENCE_INTERVALS: u64 = 10;

/// A parent whose birth round is more than `G + 1` below the child's
/// claimed birth round: ancient relative to the child, neither required nor
/// pulled nor an edge of the DAG (DESIGN §4). Every node decides this from
/// the child's header alone. Such a parent lies below the child's consensus
/// window (`max parent round - G`, and the child's round is that maximum or
/// one more), so leaving it out never changes the child's round: a creator
/// computes the same birth round with or without it.
fn is_relatively_ancient(parent: &ParentRef, child_birth_round: u64, window: u64) -> bool {
    parent.birth_round.saturating_add(window + 1) < child_birth_round
}

/// The parents of a header that are DAG edges.
/// The consensus vertex of a signed header in a DAG whose non-ancient
/// window is `window` rounds: its id, creator, seq, the parents it requires
/// (relatively ancient ones dropped) and its coin bit. The machine inserts
/// exactly this; the consensus tools replay headers files with it.
pub fn vertex_spec(signed: &SignedAnchorHeader, window: u64) -> VertexSpec {
    let header = &signed.header;
    VertexSpec {
        id: signed.anchor_id(),
        creator: header.creator,
        seq: header.seq,
        parents: required_parents(header, window)
            .map(|p| p.anchor_id)
            .collect(),
        coin: signed.signature[32] & 1 == 1,
    }
}

fn required_parents(header: &AnchorHeader, window: u64) -> impl Iterator<Item = &ParentRef> {
    header
        .parents
        .iter()
        .filter(move |p| !is_relatively_ancient(p, header.birth_round, window))
}

/// Provably invalid anchors remembered for offences against the seats that
/// acknowledge them: per creator for validly signed ones (which a peer
/// cannot push out with forgeries of other seats' headers)...
const INVALID_SEEN_PER_SEAT: usize = 16;
/// ... and in one pool for those whose signature does not verify (a parent
/// a voter cannot have checked either; anyone can forge these, so they are
/// best effort).
const INVALID_SEEN_UNSIGNED: usize = 256;

/// Offences a seat queues against one accused seat at most (each slash
/// takes at least 25 % of a bond or the rest of it).
pub const MAX_QUEUED_OFFENCES_PER_SEAT: usize = crate::economics::MAX_SLASHES_PER_SEAT;

/// Pending anchors looked at, from the highest down, for one that no other
/// pending anchor waits for (the preferred eviction victim).
const VICTIM_SCAN: usize = 64;

/// An unfinalized anchor whose payload was spilled to the log.
struct Spilled {
    token: u64,
    creator: u8,
    birth_round: u64,
    /// Micro-events in its payload. Their ids are not kept (64 bytes an
    /// event, 16 KiB a full anchor, times the finality backlog): the read
    /// back derives them again, some 1 % of a core's time.
    events: u16,
}

/// Where a machine reads back the bodies of records it emitted once its
/// driver has appended them (see [`Shard::set_record_source`]).
pub trait RecordSource {
    /// The body of record `token`, if it was appended.
    fn record_body(&self, token: u64) -> Option<Vec<u8>>;
}

struct Pending {
    anchor: DecodedAnchor,
    bytes: Vec<u8>,
    arrival: (u64, u64, u64),
}

/// The state machine of one shard.
pub struct Shard<V, S> {
    context: ShardContext,
    limits: ShardLimits,
    verifier: V,
    seat: Option<SeatRole<S>>,
    consensus: Consensus,
    state: ShardState,
    /// Inserted anchors not yet finalized (payloads needed at apply time).
    unfinalized: HashMap<Hash32, DecodedAnchor>,
    /// Inserted anchors not yet finalized whose payloads left memory: their
    /// records were appended where `record_source` reads them back.
    spilled: HashMap<Hash32, Spilled>,
    /// Where spilled payloads are read back; `None`: nothing is spilled.
    record_source: Option<Box<dyn RecordSource>>,
    /// (token, id) of other seats' resident unfinalized anchors, in token
    /// order, while a record source is set: the next to spill.
    resident: VecDeque<(u64, Hash32)>,
    /// How many of `unfinalized` and `spilled` carry micro-events.
    unfinalized_with_payload: usize,
    /// Micro-events in `unfinalized` and `spilled`.
    unfinalized_events: usize,
    /// The imports in other seats' anchors this seat took in since
    /// [`Shard::take_seen_imports`] (at most [`SEEN_IMPORTS_MAX`]; the link
    /// then leaves them to the seat carrying them).
    seen_imports: Vec<crate::crosslink::SeenImport>,
    /// Own unfinalized anchors whose micro-events were already put back in
    /// the mempool when a later own anchor cut the chain above them.
    reincluded: BTreeSet<Hash32>,
    /// First header seen per (seat, seq), for fork detection.
    first_header: HashMap<(u8, u64), SignedAnchorHeader>,
    /// Signature verdicts of the small anchors of the last group given to
    /// [`Shard::preverify_anchors`], by BLAKE3 of the anchor's bytes;
    /// taken by [`Shard::handle_anchor`], dropped at the next group.
    preverified: Vec<(Hash32, Preverified)>,
    evidence_queued: u64,
    /// Offence ids this seat queued (at most [`MAX_QUEUED_OFFENCES_PER_SEAT`]
    /// per accused seat).
    offences_queued: BTreeMap<u8, Vec<Hash32>>,
    /// Provably invalid anchors seen lately, by id: their headers and the
    /// breach, for an offence against a seat that acknowledges one
    /// (at most [`INVALID_SEEN_PER_SEAT`] per creator whose signature
    /// verifies, [`INVALID_SEEN_UNSIGNED`] of the others; oldest dropped
    /// first).
    invalid_seen: HashMap<Hash32, (SignedAnchorHeader, Why)>,
    /// The ids of `invalid_seen` by validly signing creator (`None`: the
    /// unsigned pool), oldest first.
    invalid_order: BTreeMap<Option<u8>, VecDeque<Hash32>>,
    /// Test flag: the own seq at which this seat equivocates.
    equivocate_at: Option<u64>,
    /// The second anchor at that seq, sent right after the first.
    twin: Option<Vec<u8>>,
    /// (birth round, seq, arrival) -> id of the pending anchors: the
    /// lowest keys are the closest to being inserted.
    pending: BTreeMap<(u64, u64, u64), Hash32>,
    /// The keys of `pending`, per creator seat.
    pending_per_seat: Vec<BTreeMap<(u64, u64, u64), Hash32>>,
    pending_by_id: HashMap<Hash32, Pending>,
    /// Missing parent id -> pending anchors waiting for it.
    waiting_for: BTreeMap<Hash32, Vec<Hash32>>,
    /// The consensus floor when the side tables were last pruned.
    pruned_floor: u64,
    /// Valid anchors evicted from a full pending set: (birth round, id) ->
    /// attempts. Nobody may ask for them again (they can be the newest of
    /// a backlog), so they are fetched again, lowest first, once pending
    /// has room.
    refetch: BTreeMap<(u64, Hash32), PullSince>,
    /// Parent id -> when it was first and last requested.
    requested: BTreeMap<Hash32, PullSince>,
    mempool: VecDeque<MicroEvent>,
    /// Submitted mints' pool bound and the fate of recent mints.
    mints: crate::mint::MintTracker,
    arrivals: u64,
    /// Anchors deferred unchecked (see [`AnchorStatus::Deferred`]).
    deferred: u64,
    /// Per seat, the highest birth round a valid anchor it signed claims
    /// (inserted or pending).
    seat_rounds: Vec<u64>,
    /// The (f+1)-th highest of other seats' `seat_rounds`: a round at least
    /// one honest seat has reached, which f Byzantine seats cannot raise.
    committee_round: u64,
    /// The highest birth round inserted: where this machine's DAG ends.
    top_round: u64,
    now: u64,
    next_announce: u64,
    len_at_announce: usize,
    /// Tick of the last acknowledgement-only own anchor.
    last_ack_only: Option<u64>,
    /// When this seat made its last own anchor.
    last_own_at: Option<u64>,
    /// An acknowledgement-only anchor waits for its pacing interval.
    ack_deferred: bool,
    /// The seat holds its next anchor for its chain's sake (see
    /// `Shard::holds_for_chain`).
    chain_held: bool,
    /// When `committee_round` last changed (ticks).
    committee_round_at: u64,
    catch_up: CatchUp,
    next_token: u64,
    replaying: bool,
    transmits: VecDeque<Transmit>,
    persists: VecDeque<PersistRecord>,
    finalized: VecDeque<FinalizedReport>,
    /// Rounds with exports that a restore re-derived and whose
    /// `ExportsBuilt` record the log does not hold (a crash between the
    /// two appends), oldest first, at most [`MAX_UNBUILT_ROUNDS`].
    unbuilt: BTreeMap<u64, RoundOutcome>,
}

/// The role of a machine.
pub enum Role<S> {
    /// Validates and finalizes, never signs.
    Observer,
    /// Holds `seat` and signs with `signer`.
    Seat {
        /// The seat index.
        seat: u8,
        /// Its signing key.
        signer: S,
    },
}

impl<V: SignatureVerifier, S: AnchorSigner> Shard<V, S> {
    /// A fresh machine for `shard` of a validated genesis.
    ///
    /// # Panics
    /// If the genesis has no such shard or the seat's key is not the
    /// committee's key for that seat (a configuration error).
    pub fn new(
        genesis: &Genesis,
        shard: u16,
        role: Role<S>,
        verifier: V,
        limits: ShardLimits,
    ) -> Self {
        let context = ShardContext::from_genesis(genesis, shard)
            .expect("a validated genesis with this shard");
        let k = context.k();
        let seat = match role {
            Role::Observer => None,
            Role::Seat { seat, signer } => {
                assert_eq!(
                    context.committee.get(usize::from(seat)),
                    Some(&signer.public_key()),
                    "seat {seat} of shard {shard} is not this key's"
                );
                Some(SeatRole {
                    seat,
                    signer,
                    next_seq: 0,
                    last_own: None,
                    awaiting_durable: None,
                    latest: BTreeMap::new(),
                    unacknowledged: BTreeMap::new(),
                    fresh: BTreeSet::new(),
                    own_anchors: 0,
                    acked_seq: None,
                    unacked_births: BTreeMap::new(),
                    own_round: (0, 0),
                    resume_until: None,
                })
            }
        };
        Shard {
            consensus: Consensus::new(ConsensusConfig {
                k: context.k(),
                coin_round_period: u64::from(genesis.params.coin_round_period),
                window: u64::from(genesis.params.ancient_window_rounds),
            }),
            state: ShardState::from_genesis(genesis, shard),
            context,
            limits,
            verifier,
            seat,
            unfinalized: HashMap::new(),
            spilled: HashMap::new(),
            record_source: None,
            resident: VecDeque::new(),
            unfinalized_with_payload: 0,
            unfinalized_events: 0,
            seen_imports: Vec::new(),
            first_header: HashMap::new(),
            preverified: Vec::new(),
            evidence_queued: 0,
            offences_queued: BTreeMap::new(),
            invalid_seen: HashMap::new(),
            invalid_order: BTreeMap::new(),
            equivocate_at: None,
            twin: None,
            pending: BTreeMap::new(),
            pending_per_seat: vec![BTreeMap::new(); k],
            pending_by_id: HashMap::new(),
            waiting_for: BTreeMap::new(),
            pruned_floor: 0,
            reincluded: BTreeSet::new(),
            refetch: BTreeMap::new(),
            requested: BTreeMap::new(),
            mempool: VecDeque::new(),
            mints: crate::mint::MintTracker::default(),
            arrivals: 0,
            deferred: 0,
            seat_rounds: vec![0; k],
            committee_round: 0,
            top_round: 0,
            now: 0,
            next_announce: 0,
            len_at_announce: usize::MAX,
            last_ack_only: None,
            last_own_at: None,
            ack_deferred: false,
            chain_held: false,
            committee_round_at: 0,
            catch_up: CatchUp::default(),
            next_token: 0,
            replaying: false,
            transmits: VecDeque::new(),
            persists: VecDeque::new(),
            finalized: VecDeque::new(),
            unbuilt: BTreeMap::new(),
        }
    }

    /// Takes in an anchor's bytes from `from` (`None`: the driver itself,
    /// e.g. catch-up from a log).
    pub fn handle_anchor(
        &mut self,
        from: Option<PeerId>,
        bytes: &[u8],
    ) -> Result<AnchorStatus, AnchorRejected> {
        if bytes.len() > self.limits.max_anchor_bytes {
            return Err(AnchorRejected::TooLarge {
                len: bytes.len(),
                max: self.limits.max_anchor_bytes,
            });
        }
        let anchor = DecodedAnchor::from_bytes(bytes, &self.context.network)?;
        let id = anchor.anchor_id;
        if self.consensus.contains(&id) || self.pending_by_id.contains_key(&id) {
            return Ok(AnchorStatus::Duplicate);
        }
        if self.defers(&id, &anchor.anchor.header.header) {
            self.deferred += 1;
            return Ok(AnchorStatus::Deferred);
        }
        let preverified = self.take_preverified(bytes);
        if let Err(error) =
            validate_decoded_with(&self.context, &self.verifier, &anchor, preverified.as_ref())
        {
            self.detect_invalid(&anchor, &error);
            return Err(error.into());
        }
        self.detect_invalid_parent(&anchor.anchor.header);
        if let Some(peer) = from {
            self.catch_up.note_peer(peer);
        }
        let header = &anchor.anchor.header.header;
        self.note_seat_round(header.creator, header.birth_round);
        self.requested.remove(&id);
        if self
            .consensus
            .is_ancient(anchor.anchor.header.header.birth_round)
        {
            self.forget_waiters_of(&id);
            return Ok(AnchorStatus::Ancient);
        }
        let missing: Vec<Hash32> =
            required_parents(&anchor.anchor.header.header, self.consensus.window())
                .map(|p| p.anchor_id)
                .filter(|p| !self.consensus.contains(p))
                .collect();
        if missing.is_empty() {
            self.insert(anchor, bytes.to_vec())?;
            self.after_input();
            return Ok(AnchorStatus::Inserted);
        }
        let lowest_missing =
            required_parents(&anchor.anchor.header.header, self.consensus.window())
                .filter(|p| !self.consensus.contains(&p.anchor_id))
                .map(|p| p.birth_round)
                .min();
        if self.hold(id, anchor, bytes.to_vec(), &missing) {
            self.request(from, missing);
            if let (Some(peer), Some(round)) = (from, lowest_missing) {
                self.range_below_decided(peer, round);
            }
        }
        Ok(AnchorStatus::Pending)
    }

    /// Verifies the signatures of the small anchors among `items` (the
    /// anchors a caller is about to hand to [`Shard::handle_anchor`] one by
    /// one: a peer's message, a file's next few) together, as one batch:
    /// an anchor of a few transfers would not pay for a batch of its own.
    /// Only anchors new to the machine, of 1 to [`JOIN_BELOW_TRANSFERS`]
    /// transfers, up to [`JOIN_MAX_SIGNATURES`] signatures in all, and only
    /// if there are two or more; the verdicts wait for their anchor's
    /// [`Shard::handle_anchor`] and are dropped at the next call. Nothing
    /// else changes: the anchors are taken in only by `handle_anchor`.
    pub fn preverify_anchors(&mut self, items: &[&[u8]]) {
        self.preverified.clear();
        let mut decoded = Vec::new();
        let mut hashes = Vec::new();
        let mut signatures = 0;
        for bytes in items {
            if bytes.len() > self.limits.max_anchor_bytes {
                continue;
            }
            // The header alone first: a large anchor is a batch of its own
            // and is decoded once, by `handle_anchor`.
            let Ok(header) = SignedAnchorHeader::decode(&mut pc_codec::Reader::new(bytes)) else {
                continue;
            };
            let events = usize::from(header.header.payload_count);
            if events == 0 || events > JOIN_BELOW_TRANSFERS {
                continue;
            }
            let Ok(anchor) = DecodedAnchor::from_bytes(bytes, &self.context.network) else {
                continue;
            };
            let id = anchor.anchor_id;
            if self.consensus.contains(&id)
                || self.pending_by_id.contains_key(&id)
                || self.defers(&id, &anchor.anchor.header.header)
            {
                continue;
            }
            let transfers = anchor
                .anchor
                .payload
                .events
                .iter()
                .filter(|event| matches!(event, MicroEvent::Transfer(_)))
                .count();
            if transfers == 0
                || transfers > JOIN_BELOW_TRANSFERS
                || signatures + transfers > JOIN_MAX_SIGNATURES
            {
                continue;
            }
            signatures += transfers;
            hashes.push(*blake3::hash(bytes).as_bytes());
            decoded.push(anchor);
        }
        if decoded.len() < 2 {
            return;
        }
        let anchors: Vec<&DecodedAnchor> = decoded.iter().collect();
        let verdicts = preverify_anchors(&self.context, &self.verifier, &anchors);
        for (hash, verdict) in hashes.into_iter().zip(verdicts) {
            if let Some(verdict) = verdict {
                self.preverified.push((hash, verdict));
            }
        }
    }

    /// The verdicts [`Shard::preverify_anchors`] left for exactly these
    /// bytes, if any.
    fn take_preverified(&mut self, bytes: &[u8]) -> Option<Preverified> {
        if self.preverified.is_empty() {
            return None;
        }
        let hash = *blake3::hash(bytes).as_bytes();
        let at = self.preverified.iter().position(|(h, _)| *h == hash)?;
        Some(self.preverified.swap_remove(at).1)
    }

    /// Queues a client's micro-event for the next own anchor.
    pub fn handle_micro_event(&mut self, event: MicroEvent) -> Result<(), SubmitRejected> {
        if self.seat.is_none() {
            return Err(SubmitRejected::NotASeat);
        }
        if self.mempool.len() >= self.limits.max_mempool_events {
            return Err(SubmitRejected::MempoolFull {
                max: self.limits.max_mempool_events,
            });
        }
        let validated = validate_micro_event(&self.context, &self.verifier, &event);
        let queued = self.queue_validated(event, validated);
        if queued.is_ok() {
            self.after_input();
        }
        queued
    }

    /// [`Shard::handle_micro_event`] of every event in order, their
    /// transfers' signatures checked as one batch first (a client's
    /// submission frame), the seat reacting once after all of them
    /// are queued (so one own anchor can carry them all). One result per
    /// event.
    pub fn handle_micro_events(
        &mut self,
        events: Vec<MicroEvent>,
    ) -> Vec<Result<(), SubmitRejected>> {
        if self.seat.is_none() {
            return events
                .iter()
                .map(|_| Err(SubmitRejected::NotASeat))
                .collect();
        }
        // The node's admission control bounds a frame before it gets here,
        // so all of it is verified; the mempool's own bound is checked per
        // event (an invalid event takes no room).
        let validated = validate_micro_events(&self.context, &self.verifier, &events);
        let mut results = Vec::with_capacity(events.len());
        for (event, validated) in events.into_iter().zip(validated) {
            let outcome = if self.mempool.len() < self.limits.max_mempool_events {
                self.queue_validated(event, validated)
            } else {
                Err(SubmitRejected::MempoolFull {
                    max: self.limits.max_mempool_events,
                })
            };
            results.push(outcome);
        }
        if results.iter().any(Result::is_ok) {
            self.after_input();
        }
        results
    }

    /// Queues a client's validated micro-event (deduplicating evidence).
    fn queue_validated(
        &mut self,
        event: MicroEvent,
        validated: Result<(), MicroEventError>,
    ) -> Result<(), SubmitRejected> {
        validated.map_err(SubmitRejected::Invalid)?;
        // A claim is judged against the finalized state as a later round
        // would judge it, so a client learns at once that it is stale.
        if let MicroEvent::Claim(claim) = &event {
            let economics = self.state.economics();
            economics
                .check_claim(claim, u64::MAX, economics.next_anchor_index())
                .map_err(|outcome| SubmitRejected::ClaimRefused { outcome })?;
        }
        // A spend of a minted output is refused while the finalized state
        // says it is immature: apply could only refuse it.
        if let MicroEvent::Transfer(transfer) = &event {
            let chain = self.state.mint();
            if chain.tracked_outputs() > 0 {
                let next_index = self.state.economics().next_anchor_index();
                for (input, out_point) in transfer.inputs.iter().enumerate() {
                    if let Some(mature_at) =
                        chain.mature_at(out_point).filter(|at| *at > next_index)
                    {
                        return Err(SubmitRejected::ImmatureInput {
                            input,
                            mature_at,
                            next_index,
                        });
                    }
                }
            }
        }
        // A mint is pre-checked against the finalized chain and kept only
        // among the best 16 on the tip; it goes first into the next own
        // anchor (a race lasts W_race rounds).
        if let MicroEvent::Mint(mint) = &event {
            let chain = self.state.mint();
            let id = pc_codec::EventDigest::of(&event, &self.context.network).id;
            let (pow, pow_hash) = chain
                .precheck(mint, &id)
                .map_err(|outcome| SubmitRejected::MintRefused { outcome })?;
            if chain
                .race()
                .is_some_and(|race| (pow_hash, id) >= (race.best.pow_hash, race.best.mint_id))
            {
                return Err(SubmitRejected::MintNotBest {
                    reason: "the open race's best candidate is lower",
                });
            }
            if !self.mints.admit(chain.tip(), pow, id) {
                return Err(SubmitRejected::MintNotBest {
                    reason: "16 lower mints on this tip are pooled, or this one is",
                });
            }
            self.mempool.push_front(event);
            return Ok(());
        }
        // An offence goes into an anchor once per offence id, at most four
        // per accused seat, never once the seat is slashed out.
        if let MicroEvent::Offence(offence) = event {
            let seat = offence.offender();
            return if self.queue_offence(*offence, false) {
                Ok(())
            } else {
                Err(SubmitRejected::EvidenceQueued { seat })
            };
        }
        // Evidence against a seat goes into an anchor once, whether this
        // machine found the fork itself or a peer relayed it. Checked after
        // validation, so a forgery is always reported as one.
        if let MicroEvent::Evidence(evidence) = &event {
            let seat = evidence.first.header.creator;
            if let Some(bit) = 1u64.checked_shl(u32::from(seat)) {
                if self.evidence_queued & bit != 0 {
                    return Err(SubmitRejected::EvidenceQueued { seat });
                }
                self.evidence_queued |= bit;
            }
        }
        self.mempool.push_back(event);
        Ok(())
    }

    /// Test support: queues `event` for the next own anchor after its
    /// stateless validation only, skipping the node's pre-checks against
    /// the finalized state (a proposer that carries whatever clients send:
    /// a mint that is stale or lacks work then reaches apply, which must
    /// refuse it the same way on every seat).
    #[cfg(feature = "test-support")]
    pub fn carry_unchecked(&mut self, event: MicroEvent) -> Result<(), SubmitRejected> {
        if self.seat.is_none() {
            return Err(SubmitRejected::NotASeat);
        }
        if self.mempool.len() >= self.limits.max_mempool_events {
            return Err(SubmitRejected::MempoolFull {
                max: self.limits.max_mempool_events,
            });
        }
        validate_micro_event(&self.context, &self.verifier, &event)?;
        self.mempool.push_back(event);
        self.after_input();
        Ok(())
    }

    /// Test flag (devnet `--equivocate`): this seat signs its own anchor at
    /// `seq` twice and sends both, an equivocation its peers must turn
    /// into evidence. Never set on a validator.
    pub fn set_equivocate_at(&mut self, seq: Option<u64>) {
        self.equivocate_at = seq;
    }

    /// Every record up to and including `token` is durable.
    pub fn handle_durable(&mut self, token: u64) {
        let Some(seat) = self.seat.as_mut() else {
            return;
        };
        if let Some((waiting, _)) = &seat.awaiting_durable {
            if *waiting <= token {
                let (_, bytes) = seat.awaiting_durable.take().expect("checked above");
                self.transmits.push_back(Transmit {
                    destination: Destination::Broadcast,
                    message: ShardMessage::Anchor(bytes),
                });
                if let Some(twin) = self.twin.take() {
                    self.transmits.push_back(Transmit {
                        destination: Destination::Broadcast,
                        message: ShardMessage::Anchor(twin),
                    });
                }
                self.after_input();
            }
        }
    }

    /// Reads spilled payloads back from `source` from now on. Without one
    /// (the default) every unfinalized anchor's decoded payload stays in
    /// memory until it is finalized; with one, other seats' anchors whose
    /// records the driver reports appended ([`Shard::handle_appended`])
    /// leave memory and are read back and decoded again when their round
    /// is applied, so memory does not grow with the finality backlog.
    ///
    /// Set it before the first input (and before [`Shard::restore`]): only
    /// anchors inserted after it are spilled.
    pub fn set_record_source(&mut self, source: Box<dyn RecordSource>) {
        self.record_source = Some(source);
    }

    /// Every record with a token below `upto` is appended where the record
    /// source reads it: the payloads of other seats' unfinalized anchors
    /// among them leave memory.
    pub fn handle_appended(&mut self, upto: u64) {
        if self.record_source.is_none() {
            return;
        }
        while let Some(&(token, id)) = self.resident.front() {
            if token >= upto {
                break;
            }
            self.resident.pop_front();
            if let Some(anchor) = self.unfinalized.remove(&id) {
                let header = &anchor.anchor.header.header;
                self.spilled.insert(
                    id,
                    Spilled {
                        token,
                        creator: header.creator,
                        birth_round: header.birth_round,
                        events: anchor.digests.len() as u16,
                    },
                );
            }
        }
    }

    /// Moves logical time forward to `now` without a tick's work, so that
    /// what the next input records (when a pull was asked, when the last
    /// acknowledgement-only anchor was made) carries the time it happened
    /// at, however rarely the driver ticks.
    pub fn advance_time(&mut self, now: u64) {
        self.now = self.now.max(now);
    }

    /// Advances logical time: unanswered pulls are asked of every peer
    /// again, pulls unanswered for [`PULL_GIVE_UP_RETRIES`] retries are
    /// given up (freeing their slot), pending anchors that became ancient
    /// are dropped, missing parents that are not yet requested (over the
    /// pull budget before, or whose pending child was evicted) are asked
    /// for as the budget allows, quiet nodes announce their tips, and a
    /// machine far behind asks a peer for a range of rounds (catch-up).
    pub fn handle_tick(&mut self, now: u64) {
        self.now = now;
        if self.ack_deferred || self.chain_held {
            self.after_input();
        }
        self.drop_ancient_pending();
        let retry_after = self.limits.pull_retry_ticks.max(1);
        let give_up_after = retry_after * PULL_GIVE_UP_RETRIES;
        let (mut retry, mut expired) = (Vec::new(), Vec::new());
        for (id, since) in &self.requested {
            let waited = now.saturating_sub(since.first);
            if waited >= give_up_after {
                expired.push(*id);
            } else if now.saturating_sub(since.last) >= retry_after {
                retry.push(*id);
            }
        }
        for id in &expired {
            self.requested.remove(id);
            // Nobody answered: anchors waiting for it leave the pending set
            // (to be fetched again later) instead of blocking it.
            for child in self.waiting_for.get(id).cloned().unwrap_or_default() {
                if let Some(pending) = self.pending_by_id.get(&child) {
                    let birth_round = pending.anchor.anchor.header.header.birth_round;
                    self.evict(&child);
                    self.remember_evicted(child, birth_round);
                }
            }
        }
        for id in &retry {
            if let Some(since) = self.requested.get_mut(id) {
                since.last = now;
            }
        }
        // Missing parents not asked for yet, lowest (birth round, seq)
        // first: a backlog is caught up from below, and anchors above the
        // pending set's bound would only be refused on arrival.
        let budget = self
            .limits
            .max_outstanding_pulls
            .saturating_sub(self.requested.len());
        let mut unasked: Vec<((u64, u64), Hash32)> = self
            .waiting_for
            .iter()
            .filter(|(id, _)| {
                !self.requested.contains_key(*id)
                    && !self.pending_by_id.contains_key(*id)
                    && !self.consensus.contains(id)
                    && !expired.contains(id)
            })
            .map(|(id, children)| (self.missing_rank(id, children), *id))
            .collect();
        unasked.sort_unstable();
        let unasked: Vec<Hash32> = unasked.into_iter().take(budget).map(|(_, id)| id).collect();
        for id in &unasked {
            self.requested.insert(*id, PullSince::at(now));
        }
        retry.extend(unasked);
        retry.extend(self.refetch_evicted());
        if !retry.is_empty() {
            self.transmits.push_back(Transmit {
                destination: Destination::Broadcast,
                message: ShardMessage::Get(retry),
            });
        }
        if now >= self.next_announce {
            self.next_announce = now + retry_after * ANNOUNCE_EVERY_RETRIES;
            // Only a quiet node announces: while anchors flow, gossip and
            // pulls carry them; when nothing arrived for a period, a node
            // that lost track of a backlog learns what it is missing.
            let quiet = self.consensus.len() == self.len_at_announce;
            self.len_at_announce = self.consensus.len();
            let tips = self.consensus.tips();
            if quiet && !tips.is_empty() {
                self.transmits.push_back(Transmit {
                    destination: Destination::Broadcast,
                    message: ShardMessage::Announce(tips),
                });
            }
        }
        self.catch_up_due(now);
    }

    /// Whether the machine is far enough behind its peers to catch up by
    /// ranges: its DAG ends at least [`ShardLimits::catch_up_lag_rounds`]
    /// below the committee's round or `k` times
    /// [`ShardLimits::catch_up_pending_per_seat`] anchors wait for parents,
    /// and it knows a peer to ask.
    fn wants_catch_up(&self) -> bool {
        let pending_bound = self
            .limits
            .catch_up_pending_per_seat
            .max(1)
            .saturating_mul(self.context.k());
        let behind = self.lag_rounds() >= self.limits.catch_up_lag_rounds.max(1)
            || self.pending_by_id.len() >= pending_bound;
        self.limits.catch_up_anchors > 0 && behind && !self.catch_up.peers.is_empty()
    }

    /// The tick at which the next `GetRange` may go.
    fn next_catch_up_at(&self) -> u64 {
        self.catch_up.last_at.map_or(self.now, |at| {
            at + self.limits.catch_up_interval_ticks.max(1)
        })
    }

    /// Catch-up: a machine far behind asks the next peer (round-robin over
    /// the peers that sent it valid anchors) for a range of rounds, at most
    /// once per [`ShardLimits::catch_up_interval_ticks`]. Pulls by id climb
    /// down a backlog one round trip per anchor of a seat's chain, into a
    /// pending set whose per-seat shares a long backlog overfills; a range
    /// starts where the DAG ends and arrives parents first, so it inserts
    /// as it arrives.
    fn catch_up_due(&mut self, now: u64) {
        if !self.wants_catch_up() || now < self.next_catch_up_at() {
            return;
        }
        let peer = self.catch_up.next_peer().expect("wants_catch_up: a peer");
        let from_round = self.catch_up_from_round();
        self.catch_up.last_peer = Some(peer);
        self.catch_up.last_at = Some(now);
        self.catch_up.requests += 1;
        self.transmits.push_back(Transmit {
            destination: Destination::Peer(peer),
            message: ShardMessage::GetRange {
                from_round,
                max_count: self.limits.catch_up_anchors,
            },
        });
    }

    /// A chain gap: a pending anchor from `peer` misses a parent of birth
    /// `round`, below the rounds still being decided. Its creator's chain
    /// may lack many anchors there (a seat that signed a run of anchors
    /// no peer received, then crashed or was cut off), and pulls by id
    /// climb down such a chain one round trip per anchor: at 20 anchors
    /// and rounds decided every 100 ms, the chain's foot became ancient
    /// first and the seat's chain could never be inserted again (its
    /// later anchors all descend from it). So the peer that sent the
    /// child, which holds its ancestry, is asked for the range from the
    /// round below the gap at once, at most once per catch-up interval.
    fn range_below_decided(&mut self, peer: PeerId, round: u64) {
        if self.limits.catch_up_anchors == 0
            || round >= self.consensus.next_undecided_round()
            || self.now < self.next_catch_up_at()
        {
            return;
        }
        self.catch_up.last_at = Some(self.now);
        self.catch_up.requests += 1;
        self.transmits.push_back(Transmit {
            destination: Destination::Peer(peer),
            message: ShardMessage::GetRange {
                from_round: round.saturating_sub(1),
                max_count: self.limits.catch_up_anchors,
            },
        });
    }

    /// Where a catch-up range starts: the highest round the DAG holds
    /// (other seats' anchors of it may be missing), or lower where an
    /// evicted anchor lies (fetched again by `Get` only while the pending
    /// set has room), but never below the round before the lowest
    /// undecided one (an evicted Byzantine anchor may claim any round;
    /// below it the DAG is decided). Missing parents are known by id and
    /// pulled by `Get`; a range from below them would mostly bring back
    /// anchors held already.
    fn catch_up_from_round(&self) -> u64 {
        let lowest_evicted = self.refetch.keys().next().map(|(round, _)| *round);
        lowest_evicted
            .map_or(self.top_round, |round| round.min(self.top_round))
            .max(self.consensus.next_undecided_round().saturating_sub(1))
    }

    /// The (birth round, seq) a pending child's header claims for its missing
    /// parent `id` (the lowest over `children`).
    fn missing_rank(&self, id: &Hash32, children: &[Hash32]) -> (u64, u64) {
        children
            .iter()
            .filter_map(|child| self.pending_by_id.get(child))
            .flat_map(|pending| &pending.anchor.anchor.header.header.parents)
            .filter(|parent| parent.anchor_id == *id)
            .map(|parent| (parent.birth_round, parent.seq))
            .min()
            .unwrap_or((u64::MAX, u64::MAX))
    }

    /// A peer's tips: the unknown ones (at most `k`) are pulled from it.
    pub fn handle_announce(&mut self, from: Option<PeerId>, tips: &[Hash32]) {
        let unknown: Vec<Hash32> = tips
            .iter()
            .take(self.context.k())
            .filter(|id| !self.consensus.contains(id) && !self.pending_by_id.contains_key(*id))
            .copied()
            .collect();
        if !unknown.is_empty() {
            self.request(from, unknown);
        }
    }

    /// Once pending has room again, asks again for evicted anchors (each
    /// at most [`PULL_GIVE_UP_RETRIES`] times), as many as the pull budget
    /// allows; drops those inserted, pending or ancient meanwhile.
    fn refetch_evicted(&mut self) -> Vec<Hash32> {
        let consensus = &self.consensus;
        let pending = &self.pending_by_id;
        self.refetch.retain(|(birth_round, id), attempts| {
            attempts.first < PULL_GIVE_UP_RETRIES
                && !consensus.contains(id)
                && !pending.contains_key(id)
                && !consensus.is_ancient(*birth_round)
        });
        if self.pending_by_id.len() * 2 >= self.limits.max_pending_anchors {
            return Vec::new();
        }
        let budget = self
            .limits
            .max_outstanding_pulls
            .saturating_sub(self.requested.len())
            .min(self.limits.max_pending_anchors / 2);
        let (now, retry_after) = (self.now, self.limits.pull_retry_ticks.max(1));
        self.refetch
            .iter_mut()
            .filter(|(_, attempts)| attempts.first == 0 || now >= attempts.last + retry_after)
            .take(budget)
            .map(|((_, id), attempts)| {
                attempts.first += 1;
                attempts.last = now;
                *id
            })
            .collect()
    }

    /// Drops pending anchors whose birth round became ancient.
    fn drop_ancient_pending(&mut self) {
        let ancient: Vec<Hash32> = self
            .pending_by_id
            .iter()
            .filter(|(_, p)| {
                self.consensus
                    .is_ancient(p.anchor.anchor.header.header.birth_round)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ancient {
            self.evict(&id);
        }
    }

    fn remember_evicted(&mut self, id: Hash32, birth_round: u64) {
        if self.refetch.len() >= self.limits.max_pending_anchors {
            self.refetch.pop_last();
        }
        // `first` counts attempts here; `last` is the tick of the last one.
        self.refetch
            .insert((birth_round, id), PullSince { first: 0, last: 0 });
    }

    /// Removes a pending anchor and its entries in `waiting_for`.
    fn evict(&mut self, id: &Hash32) {
        let Some(pending) = self.pending_by_id.remove(id) else {
            return;
        };
        self.pending.remove(&pending.arrival);
        self.pending_per_seat[usize::from(pending.anchor.anchor.header.header.creator)]
            .remove(&pending.arrival);
        for parent in &pending.anchor.anchor.header.header.parents {
            if let Some(waiters) = self.waiting_for.get_mut(&parent.anchor_id) {
                waiters.retain(|w| w != id);
                if waiters.is_empty() {
                    self.waiting_for.remove(&parent.anchor_id);
                }
            }
        }
    }

    /// An anchor that will never be inserted: anchors waiting for it wait
    /// in vain and are dropped too.
    fn forget_waiters_of(&mut self, id: &Hash32) {
        let mut work = vec![*id];
        while let Some(id) = work.pop() {
            for child in self.waiting_for.remove(&id).unwrap_or_default() {
                self.evict(&child);
                work.push(child);
            }
        }
    }

    /// Rebuilds the machine from its own log records, in log order, to
    /// exactly the state it had: every logged anchor is inserted again (its
    /// signatures were checked before it was logged), every logged
    /// finalized round must match the re-derived one, and a seat continues
    /// after its highest logged own anchor. Emits nothing.
    pub fn restore<'a>(
        &mut self,
        records: impl IntoIterator<Item = (LogRecordKind, &'a [u8])>,
    ) -> Result<(), RestoreError> {
        self.replaying = true;
        let mut derived: VecDeque<RoundFinalized> = VecDeque::new();
        let first_token = self.next_token;
        let mut logged_records = 0u64;
        #[allow(clippy::redundant_closure_call)]
        let result = (|| {
            for (index, (kind, body)) in records.into_iter().enumerate() {
                logged_records += 1;
                match kind {
                    LogRecordKind::AnchorAccepted => {
                        let anchor = DecodedAnchor::from_bytes(body, &self.context.network)
                            .map_err(|error| RestoreError::Malformed { index, error })?;
                        self.insert(anchor, body.to_vec())
                            .map_err(|error| RestoreError::Refused { index, error })?;
                        for report in self.finalized.drain(..) {
                            derived.push_back(round_record(&report));
                            if !report.outcome.exports.entries.is_empty() {
                                self.unbuilt.insert(report.round.round, report.outcome);
                                while self.unbuilt.len() > MAX_UNBUILT_ROUNDS {
                                    self.unbuilt.pop_first();
                                }
                            }
                        }
                    }
                    // Snapshot markers and the cross-shard records (own
                    // certificates, received bundles, built exports) are
                    // the node's: the machine re-derives its state from
                    // the anchors alone. Each took its token live (a
                    // token is a record's position): the anchors after it
                    // are read back by theirs.
                    LogRecordKind::SnapshotWritten
                    | LogRecordKind::CheckpointCertified
                    | LogRecordKind::ExportsReceived
                    | LogRecordKind::ExportsBuilt => {
                        if !derived.is_empty() {
                            return Err(RestoreError::OutOfOrder { index, kind });
                        }
                        if kind == LogRecordKind::ExportsBuilt {
                            if let Ok(built) = pc_codec::cross::BuiltExports::from_bytes(body) {
                                self.unbuilt.remove(&built.round);
                            }
                        }
                        self.next_token += 1;
                    }
                    LogRecordKind::RoundFinalized => {
                        let logged = RoundFinalized::from_bytes(body)
                            .map_err(|error| RestoreError::Malformed { index, error })?;
                        match derived.pop_front() {
                            Some(ours) if ours == logged => {}
                            other => {
                                return Err(RestoreError::RoundMismatch {
                                    round: logged.round,
                                    logged: format!("{logged:?}"),
                                    derived: format!("{other:?}"),
                                })
                            }
                        }
                    }
                }
            }
            Ok(derived)
        })();
        self.replaying = false;
        self.transmits.clear();
        self.persists.clear();
        self.finalized.clear();
        // Rounds derived from logged anchors whose own records were lost in
        // a crash are logged now, so the next restart finds them in order.
        let missing = result?;
        // Tokens continue from the records in the log (a token is a record's
        // position), also after rounds whose records were lost.
        self.next_token = first_token + logged_records;
        for round in missing {
            self.persist(LogRecordKind::RoundFinalized, round.to_bytes());
        }
        self.prune_side_tables();
        Ok(())
    }

    /// Whether an anchor (not yet checked) is left unchecked and unheld:
    /// it misses parents, no pending anchor waits for it, and the pending
    /// set (or its creator's share of it) is full of anchors that rank
    /// below it, so [`Shard::hold`] would refuse it after its signatures
    /// were checked. A node catching up at k = 21 spent most of its CPU
    /// checking the committee's live anchors, dozens of rounds above its
    /// DAG, only to refuse them (254 000 of 274 000 checks), and fell
    /// behind faster than its ranges caught it up.
    fn defers(&self, id: &Hash32, header: &AnchorHeader) -> bool {
        let Some(seat_set) = self.pending_per_seat.get(usize::from(header.creator)) else {
            return false;
        };
        let share = self
            .limits
            .max_pending_anchors
            .div_ceil(self.context.k())
            .max(1);
        let set = if seat_set.len() >= share {
            seat_set
        } else if self.pending_by_id.len() >= self.limits.max_pending_anchors {
            &self.pending
        } else {
            return false;
        };
        let ranks_last = set
            .last_key_value()
            .is_some_and(|((round, seq, _), _)| (header.birth_round, header.seq) >= (*round, *seq));
        ranks_last
            && !self.waiting_for.contains_key(id)
            && required_parents(header, self.consensus.window())
                .any(|p| !self.consensus.contains(&p.anchor_id))
    }

    /// Holds an anchor until its missing parents arrive. A full pending set
    /// keeps the anchors of the lowest birth rounds (those closest to being
    /// inserted: a catch-up backlog drains from below, and a flood of
    /// far-future anchors cannot crowd it out); the highest one is evicted
    /// and fetched again later. Returns whether `id` is held.
    fn hold(
        &mut self,
        id: Hash32,
        anchor: DecodedAnchor,
        bytes: Vec<u8>,
        missing: &[Hash32],
    ) -> bool {
        let header = &anchor.anchor.header.header;
        let key = (header.birth_round, header.seq, self.arrivals);
        self.arrivals += 1;
        let creator = header.creator;
        // One seat may hold at most its share of the pending set, so a
        // Byzantine seat's anchors with unresolvable parents cannot crowd
        // out everyone else's.
        let share = self
            .limits
            .max_pending_anchors
            .div_ceil(self.context.k())
            .max(1);
        let own_full = self.pending_per_seat[usize::from(creator)].len() >= share;
        if own_full || self.pending_by_id.len() >= self.limits.max_pending_anchors {
            let set = if own_full {
                &self.pending_per_seat[usize::from(creator)]
            } else {
                &self.pending
            };
            // The victim is the highest pending anchor no other pending
            // anchor waits for, else the highest of all. An anchor that
            // pending anchors wait for is admitted over any victim nobody
            // waits for: otherwise two full shares whose members wait for
            // anchors ranked above the other share would refuse each
            // other's missing anchors forever.
            let unwaited = set
                .iter()
                .rev()
                .take(VICTIM_SCAN)
                .find(|(_, other)| !self.waiting_for.contains_key(*other))
                .map(|(k, other)| (*k, *other));
            let highest = set.last_key_value().map(|(k, other)| (*k, *other));
            let waited_for = self.waiting_for.contains_key(&id);
            let victim = match (unwaited, highest) {
                (Some(victim), _) if waited_for || key < victim.0 => Some(victim),
                (_, Some(highest)) if key < highest.0 => Some(highest),
                _ => None,
            };
            let Some((victim_key, victim)) = victim else {
                self.remember_evicted(id, key.0);
                return false;
            };
            self.evict(&victim);
            self.remember_evicted(victim, victim_key.0);
        }
        self.pending_per_seat[usize::from(creator)].insert(key, id);
        let arrival = key;
        self.pending.insert(arrival, id);
        self.pending_by_id.insert(
            id,
            Pending {
                anchor,
                bytes,
                arrival,
            },
        );
        for parent in missing {
            let waiters = self.waiting_for.entry(*parent).or_default();
            if !waiters.contains(&id) {
                waiters.push(id);
            }
        }
        true
    }

    fn request(&mut self, from: Option<PeerId>, missing: Vec<Hash32>) {
        let fresh: Vec<Hash32> = missing
            .into_iter()
            .filter(|id| !self.requested.contains_key(id) && !self.pending_by_id.contains_key(id))
            .take(
                self.limits
                    .max_outstanding_pulls
                    .saturating_sub(self.requested.len()),
            )
            .collect();
        if fresh.is_empty() {
            return;
        }
        for id in &fresh {
            self.requested.insert(*id, PullSince::at(self.now));
        }
        self.transmits.push_back(Transmit {
            destination: from.map_or(Destination::Broadcast, Destination::Peer),
            message: ShardMessage::Get(fresh),
        });
    }

    /// Inserts an anchor whose parents are all present, then every pending
    /// anchor that it unblocks.
    fn insert(&mut self, anchor: DecodedAnchor, bytes: Vec<u8>) -> Result<(), AnchorRejected> {
        let mut work = vec![(anchor, bytes)];
        let mut first = true;
        while let Some((anchor, bytes)) = work.pop() {
            let id = anchor.anchor_id;
            match self.insert_one(anchor, bytes) {
                Ok(_) => {}
                Err(error) if first => return Err(error),
                Err(_) => continue,
            }
            first = false;
            for child in self.waiting_for.remove(&id).unwrap_or_default() {
                let window = self.consensus.window();
                let ready = self.pending_by_id.get(&child).is_some_and(|p| {
                    required_parents(&p.anchor.anchor.header.header, window)
                        .all(|parent| self.consensus.contains(&parent.anchor_id))
                });
                if ready {
                    let pending = self.pending_by_id.remove(&child).expect("checked above");
                    self.pending.remove(&pending.arrival);
                    self.pending_per_seat[usize::from(pending.anchor.anchor.header.header.creator)]
                        .remove(&pending.arrival);
                    work.push((pending.anchor, pending.bytes));
                }
            }
        }
        Ok(())
    }

    /// Inserts one anchor; returns the token of its `AnchorAccepted` record.
    fn insert_one(&mut self, anchor: DecodedAnchor, bytes: Vec<u8>) -> Result<u64, AnchorRejected> {
        let id = anchor.anchor_id;
        let signed = &anchor.anchor;
        let header = &signed.header.header;
        let window = self.consensus.window();
        if let Some(index) = header.parents.iter().position(|p| {
            !is_relatively_ancient(p, header.birth_round, window)
                && !self.consensus.matches_parent_ref(p)
        }) {
            let voter = signed.header.clone();
            self.detect_conflicting_ref(&voter, index);
            return Err(AnchorRejected::ParentRefMismatch { index });
        }
        let spec = vertex_spec(&signed.header, window);
        debug_assert_eq!(spec.id, id);
        self.consensus
            .insert_with_birth_round(spec, header.birth_round)?;
        self.detect_fork(&signed.header);
        let header = &anchor.anchor.header.header;
        let parent_ref = ParentRef {
            anchor_id: id,
            creator: header.creator,
            seq: header.seq,
            birth_round: header.birth_round,
        };
        if let Some(seat) = self.seat.as_mut() {
            if header.creator == seat.seat {
                if header.seq >= seat.next_seq {
                    seat.next_seq = header.seq + 1;
                    seat.last_own = Some(parent_ref);
                    if seat.resume_until.is_some() {
                        // A higher own seq than this node knew: wait G
                        // more decided rounds for anything higher still.
                        seat.resume_until = Some(self.consensus.next_undecided_round() + window);
                    }
                }
                let cuts = header.seq == 0
                    || header
                        .parents
                        .first()
                        .is_some_and(|p| is_relatively_ancient(p, header.birth_round, window));
                seat.note_own(header.seq, header.birth_round, cuts);
            } else {
                let own = seat.seat;
                if let Some(named) = header
                    .parents
                    .iter()
                    .filter(|p| p.creator == own)
                    .map(|p| p.seq)
                    .max()
                {
                    seat.note_acked(named);
                }
            }
            if header.creator != seat.seat
                && seat
                    .latest
                    .get(&header.creator)
                    .is_none_or(|known| known.seq < header.seq)
            {
                seat.latest.insert(header.creator, parent_ref);
                seat.unacknowledged
                    .entry(header.creator)
                    .or_insert(seat.own_anchors);
                seat.fresh.insert(header.creator);
            }
        }
        self.unfinalized_with_payload += usize::from(!anchor.digests.is_empty());
        self.unfinalized_events += anchor.digests.len();
        if self
            .seat
            .as_ref()
            .is_some_and(|seat| seat.seat != header.creator)
        {
            for event in &anchor.anchor.payload.events {
                if self.seen_imports.len() >= SEEN_IMPORTS_MAX {
                    break;
                }
                if let MicroEvent::Import(import) = event {
                    self.seen_imports.push(crate::crosslink::SeenImport {
                        source: import.source,
                        round: import.round,
                        index: import.leaf_proof.index,
                        tx_id: import.leaf.tx_id,
                        creator: header.creator,
                    });
                }
            }
        }
        self.top_round = self.top_round.max(header.birth_round);
        let own = self
            .seat
            .as_ref()
            .is_some_and(|seat| seat.seat == header.creator);
        self.unfinalized.insert(parent_ref.anchor_id, anchor);
        let token = self.persist(LogRecordKind::AnchorAccepted, bytes);
        if self.record_source.is_some() && !own {
            self.resident.push_back((token, parent_ref.anchor_id));
        }
        self.drain_finalized();
        Ok(token)
    }

    /// The micro-events of the anchor of record `token` and their ids,
    /// read back from the record source and decoded again.
    fn read_back(&self, token: u64) -> (Vec<MicroEvent>, Vec<EventDigest>) {
        let body = self
            .record_source
            .as_ref()
            .expect("payloads are spilled only with a record source")
            .record_body(token)
            .unwrap_or_else(|| panic!("appended record {token} reads back"));
        let decoded = DecodedAnchor::from_bytes(&body, &self.context.network)
            .unwrap_or_else(|error| panic!("record {token} read back does not decode: {error}"));
        (decoded.anchor.payload.events, decoded.digests)
    }

    /// An anchor failed validation: remembers a provable breach (for
    /// offences against seats that acknowledge it) and, for a seat, queues
    /// the offence of its creator when the header is validly signed and of
    /// this shard (DESIGN §5.4 kinds 0 and 4).
    fn detect_invalid(&mut self, decoded: &DecodedAnchor, error: &AnchorError) {
        let signed = &decoded.anchor.header;
        let why = match error {
            AnchorError::MicroEvent { index, .. } => {
                let ids: Vec<Hash32> = decoded.digests.iter().map(|d| d.id).collect();
                let (Some(event), Some(proof)) = (
                    decoded.anchor.payload.events.get(*index),
                    MerkleProof::build(&ids, *index),
                ) else {
                    return;
                };
                Why::Event {
                    bytes: event.to_bytes(),
                    proof,
                }
            }
            // A payload that does not match its header, or too many
            // certified imports: refused, but no offence proves it.
            AnchorError::PayloadCountMismatch { .. }
            | AnchorError::PayloadBytesMismatch { .. }
            | AnchorError::PayloadRootMismatch
            | AnchorError::TooManyCertifiedImports { .. } => return,
            _ => Why::Header,
        };
        // Only a seat reports offences.
        if self.seat.is_none() {
            return;
        }
        // Structural checks run before the header's signature: it is
        // checked here, once per refused anchor of this shard.
        let signer = (!matches!(error, AnchorError::BadSignature { .. })
            && crate::offence::own_header(&self.context, &signed.header))
        .then_some(signed.header.creator)
        .filter(|creator| {
            let key = self.context.committee[usize::from(*creator)];
            signed.verify_signature(&self.verifier, &key)
        });
        let id = decoded.anchor_id;
        if !self.invalid_seen.contains_key(&id) {
            let bound = match signer {
                Some(_) => INVALID_SEEN_PER_SEAT,
                None => INVALID_SEEN_UNSIGNED,
            };
            let order = self.invalid_order.entry(signer).or_default();
            if order.len() >= bound {
                if let Some(old) = order.pop_front() {
                    self.invalid_seen.remove(&old);
                }
            }
            order.push_back(id);
            self.invalid_seen.insert(id, (signed.clone(), why.clone()));
        }
        // Anchors already held pending on this one acknowledged it.
        let waiters: Vec<SignedAnchorHeader> = self
            .waiting_for
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(|child| self.pending_by_id.get(child))
            .map(|p| p.anchor.anchor.header.clone())
            .collect();
        for voter in waiters {
            self.detect_invalid_parent(&voter);
        }
        if signer.is_none() {
            return;
        }
        // An unsatisfiable commitment is kind 4 (conflicting data) unless
        // the header also breaks another rule (kind 0, the higher rate).
        let offence = match error {
            AnchorError::Unsatisfiable { .. }
                if crate::validate::check_header_structure(&self.context, &signed.header)
                    .is_ok() =>
            {
                Offence::Unsatisfiable {
                    anchor: signed.clone(),
                }
            }
            _ => Offence::InvalidAnchor {
                anchor: signed.clone(),
                why,
            },
        };
        self.queue_offence(offence, true);
    }

    /// A valid anchor that names a provably invalid parent: its creator
    /// acknowledged invalid data (DESIGN §5.4 kind 1).
    fn detect_invalid_parent(&mut self, voter: &SignedAnchorHeader) {
        if self.seat.is_none() || self.invalid_seen.is_empty() {
            return;
        }
        let found = voter
            .header
            .parents
            .iter()
            .find_map(|p| self.invalid_seen.get(&p.anchor_id).cloned());
        if let Some((parent, why)) = found {
            self.queue_offence(
                Offence::InvalidParent {
                    voter: voter.clone(),
                    parent,
                    why,
                },
                true,
            );
        }
    }

    /// A ref of `voter` names an inserted parent with another creator, seq
    /// or birth round (DESIGN §5.4 kind 3), when this node still holds
    /// the parent's header.
    fn detect_conflicting_ref(&mut self, voter: &SignedAnchorHeader, index: usize) {
        if self.seat.is_none() {
            return;
        }
        let Some(parent) = voter
            .header
            .parents
            .get(index)
            .and_then(|p| self.unfinalized.get(&p.anchor_id))
            .map(|d| d.anchor.header.clone())
        else {
            return;
        };
        self.queue_offence(
            Offence::ConflictingRef {
                voter: voter.clone(),
                parent,
            },
            true,
        );
    }

    /// An offence proven outside the DAG (a checkpoint signature the
    /// cross-shard link received): queued like one this machine found, if
    /// it holds as a micro-event of this shard.
    pub fn offer_offence(&mut self, offence: Offence) {
        self.queue_offence(offence, true);
    }

    /// Queues an offence once per offence id, at most
    /// [`MAX_QUEUED_OFFENCES_PER_SEAT`] per accused seat, never against a
    /// seat slashed out or this seat itself.
    fn queue_offence(&mut self, offence: Offence, relay: bool) -> bool {
        let Some(own) = self.seat.as_ref().map(|s| s.seat) else {
            return false;
        };
        let accused = offence.offender();
        let id = crate::economics::offence_id(offence.kind(), accused, &offence.object());
        if accused == own || !self.state.economics().is_new_offence(accused, &id) {
            return false;
        }
        let queued = self.offences_queued.entry(accused).or_default();
        if queued.len() >= MAX_QUEUED_OFFENCES_PER_SEAT || queued.contains(&id) {
            return false;
        }
        // A wrong checkpoint is judged at apply: one that this node's
        // finalized state does not already find wrong would take a queue
        // slot (of four per seat) for nothing, so it is refused here.
        if let Offence::WrongCheckpoint { sig } = &offence {
            let own = self.state.economics().checkpoint_of(sig.checkpoint.round);
            if own.is_none_or(|id| id == sig.checkpoint.id(&self.context.network)) {
                return false;
            }
        }
        let event = MicroEvent::Offence(Box::new(offence));
        // Never carry an offence that does not hold or decode: the anchor
        // would be invalid (its creator slashable). What a detector built
        // is checked here as every receiver will check it.
        if crate::validate::validate_micro_event(&self.context, &self.verifier, &event).is_err()
            || MicroEvent::from_bytes(&event.to_bytes()).is_err()
        {
            return false;
        }
        self.offences_queued.entry(accused).or_default().push(id);
        if relay {
            self.relay(&event);
        }
        self.mempool.push_front(event);
        true
    }

    /// Queues Evidence when a second header of one seat at one seq arrives.
    fn detect_fork(&mut self, header: &SignedAnchorHeader) {
        if self.seat.is_none() {
            // Only a seat puts evidence in an anchor; an observer keeps no
            // headers for it (some 430 bytes per anchor in the window).
            return;
        }
        let key = (header.header.creator, header.header.seq);
        let Some(first) = self.first_header.get(&key) else {
            self.first_header.insert(key, header.clone());
            return;
        };
        let seat_bit = 1u64 << header.header.creator;
        if self.evidence_queued & seat_bit != 0 || self.seat.is_none() {
            return;
        }
        self.evidence_queued |= seat_bit;
        let evidence = MicroEvent::Evidence(Evidence {
            first: first.clone(),
            second: header.clone(),
        });
        self.relay(&evidence);
        self.mempool.push_front(evidence);
    }

    /// Sends evidence this seat found to its peers.
    fn relay(&mut self, event: &MicroEvent) {
        self.transmits.push_back(Transmit {
            destination: Destination::Broadcast,
            message: ShardMessage::Evidence(event.to_bytes()),
        });
    }

    fn drain_finalized(&mut self) {
        while let Some(round) = self.consensus.poll_finalized() {
            let ufw_creators: Vec<u8> = round
                .unique_famous_witnesses
                .iter()
                .map(|id| {
                    self.consensus
                        .creator(id)
                        .expect("a unique famous witness is in the DAG")
                })
                .collect();
            // One anchor's payload on the heap at a time: a spilled one is
            // read back and decoded just before it is applied, and dropped
            // right after, so a long round costs no more memory than a
            // short one.
            let mut applying = self.state.begin_round(round.round, &ufw_creators);
            for finalized in &round.anchors {
                self.reincluded.remove(&finalized.id);
                let (creator, events, digests) = match self.unfinalized.remove(&finalized.id) {
                    Some(decoded) => (
                        decoded.anchor.header.header.creator,
                        decoded.anchor.payload.events,
                        decoded.digests,
                    ),
                    None => {
                        let spilled = self
                            .spilled
                            .remove(&finalized.id)
                            .expect("finalized anchors were inserted");
                        let (events, digests) = self.read_back(spilled.token);
                        assert_eq!(
                            events.len(),
                            usize::from(spilled.events),
                            "record {} read back is the anchor that was spilled",
                            spilled.token
                        );
                        (spilled.creator, events, digests)
                    }
                };
                self.unfinalized_with_payload -= usize::from(!digests.is_empty());
                self.unfinalized_events -= digests.len();
                self.state.apply_anchor(
                    &mut applying,
                    &FinalizedPayload {
                        creator,
                        events: &events,
                        digests: &digests,
                        ack_distances: &finalized.ack_distances,
                    },
                );
            }
            let tip = self.state.mint().tip();
            let outcome = self.state.finish_round(applying);
            self.mints.note_round(
                outcome.round,
                &outcome.mints,
                tip,
                outcome.mint_win.as_ref(),
            );
            let report = FinalizedReport { round, outcome };
            self.persist(
                LogRecordKind::RoundFinalized,
                round_record(&report).to_bytes(),
            );
            self.finalized.push_back(report);
        }
        self.prune_side_tables();
    }

    /// Once the consensus floor rises: drops fork-detection headers and
    /// inserted anchors of rounds below it (stale anchors that were never
    /// finalized), so memory stays bounded.
    fn prune_side_tables(&mut self) {
        let floor = self.consensus.floor();
        if floor <= self.pruned_floor {
            return;
        }
        self.pruned_floor = floor;
        self.first_header
            .retain(|_, header| header.header.birth_round >= floor);
        let own_seat = self.seat.as_ref().map(|seat| seat.seat);
        let mut dropped_with_payload = 0;
        let mut dropped_events = 0;
        let mut own_stale: Vec<(u64, Vec<MicroEvent>)> = Vec::new();
        let reincluded = &mut self.reincluded;
        self.unfinalized.retain(|decoded_id, decoded| {
            let anchor = &mut decoded.anchor;
            let keep = anchor.header.header.birth_round >= floor;
            if !keep {
                dropped_with_payload += usize::from(!anchor.payload.events.is_empty());
                dropped_events += anchor.payload.events.len();
                if Some(anchor.header.header.creator) == own_seat && !reincluded.remove(decoded_id)
                {
                    own_stale.push((
                        anchor.header.header.seq,
                        std::mem::take(&mut anchor.payload.events),
                    ));
                }
            }
            keep
        });
        self.spilled.retain(|_, spilled| {
            let keep = spilled.birth_round >= floor;
            dropped_with_payload += usize::from(!keep && spilled.events > 0);
            if !keep {
                dropped_events += usize::from(spilled.events);
            }
            keep
        });
        self.unfinalized_with_payload -= dropped_with_payload;
        self.unfinalized_events -= dropped_events;
        // An own anchor that went stale was never finalized: its
        // micro-events go back to the mempool (in seq order), to be
        // included again (apply rejects any that meanwhile became invalid).
        // They were accepted once, so the mempool bound does not drop them.
        own_stale.sort_unstable_by_key(|(seq, _)| *seq);
        for (_, events) in own_stale {
            self.mempool.extend(events);
        }
        if let Some(seat) = self.seat.as_mut() {
            seat.latest.retain(|_, parent| parent.birth_round >= floor);
            let latest = &seat.latest;
            seat.unacknowledged
                .retain(|other, _| latest.contains_key(other));
        }
    }

    /// The imports other seats' anchors carried into this seat's DAG since
    /// the last call (a seat's cross-shard link does not include an import
    /// already in an unfinalized anchor it holds, DESIGN §5.2). Empty for
    /// an observer.
    pub fn take_seen_imports(&mut self) -> Vec<crate::crosslink::SeenImport> {
        std::mem::take(&mut self.seen_imports)
    }

    /// The rounds with exports a restore re-derived whose `ExportsBuilt`
    /// record the log lacks (a crash between the appends), oldest first:
    /// the node hands them to its cross-shard link, which logs them.
    pub fn take_unbuilt_rounds(&mut self) -> Vec<RoundOutcome> {
        std::mem::take(&mut self.unbuilt).into_values().collect()
    }

    /// Queues a record of another component of this shard (the
    /// cross-shard link's certificates, bundles and built exports) in the
    /// machine's record stream, so that every record of the shard's log
    /// has its token (its position) and a restore counts it. Returns its
    /// token.
    pub fn log_record(&mut self, kind: LogRecordKind, body: Vec<u8>) -> u64 {
        self.persist(kind, body)
    }

    fn persist(&mut self, kind: LogRecordKind, body: Vec<u8>) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        if !self.replaying {
            self.persists.push_back(PersistRecord { token, kind, body });
        }
        token
    }

    /// After new input: a seat makes its next own anchor when it has
    /// micro-events to include, or anchors to acknowledge while payloads
    /// still wait for finality; one own anchor is in flight at a time.
    fn after_input(&mut self) {
        if self.replaying {
            return;
        }
        let Some(seat) = self.seat.as_ref() else {
            return;
        };
        if seat.awaiting_durable.is_some() {
            return;
        }
        if let Some(until) = seat.resume_until {
            if self.consensus.next_undecided_round() < until {
                return;
            }
            self.seat.as_mut().expect("a seat").resume_until = None;
        }
        let seat = self.seat.as_ref().expect("a seat");
        // A lone seat has nothing to acknowledge: it advances rounds alone.
        let can_advance = !seat.unacknowledged.is_empty() || self.context.k() == 1;
        // After its first anchor a seat needs another seat's anchor to
        // reference when the committee has more than one seat (DESIGN §3.3).
        let can_reference = seat.next_seq == 0 || self.context.k() == 1 || !seat.latest.is_empty();
        if !can_reference || self.far_behind_peers() {
            return;
        }
        // Micro-events wait while the seat's last birth round holds its
        // bound of payload anchors and the next would be born there too;
        // then only an acknowledgement (which may advance the round) is
        // made, paced as any.
        let has_events = !self.mempool.is_empty();
        let carries = has_events && !self.round_full();
        let work_waiting =
            carries || (can_advance && (self.unfinalized_with_payload > 0 || has_events));
        if !work_waiting {
            return;
        }
        self.chain_held = self.holds_for_chain();
        if self.chain_held {
            return;
        }
        // An anchor with nothing but acknowledgements is paced: at most one
        // per `ack_interval_ticks`, so seats that are in step do not answer
        // each other's anchors in a storm that outruns round progress (and
        // every catching-up node). Anchors with micro-events are never held.
        // Nor, under load, is one made before a supermajority of seats
        // (this one and the others with a new anchor since its last) has
        // moved on, unless `ACK_PATIENCE_INTERVALS` intervals passed since
        // the seat's last own anchor: a fast part of the committee
        // answering itself would outrun what the slowest quorum member can
        // verify, and its backlog would stall every round (positive
        // feedback, no brake; 21 nodes on 2 cores finalized 4 rounds in
        // 60 s). The patience keeps a quiet committee live: after a lull a
        // lone payload anchor is acknowledged at once (the last own anchor
        // is long past), and a committee in step is never held (each seat
        // hears from the others between two of its anchors).
        let interval = self.limits.ack_interval_ticks;
        if !carries && interval > 0 {
            let due = self.ack_due_at();
            if self.now < due {
                self.ack_deferred = true;
                return;
            }
            self.last_ack_only = Some(self.now);
        }
        self.ack_deferred = false;
        self.create_own_anchor();
    }

    /// When the next acknowledgement-only anchor may be made: one
    /// `ack_interval_ticks` after the last, and, while fewer than a
    /// supermajority of seats (this one included) made an anchor since the
    /// seat's last own one, `ACK_PATIENCE_INTERVALS` intervals after that.
    fn ack_due_at(&self) -> u64 {
        let interval = self.limits.ack_interval_ticks;
        let paced = self.last_ack_only.map_or(0, |last| last + interval);
        let q = self.consensus.supermajority();
        let short = self
            .seat
            .as_ref()
            .is_some_and(|seat| seat.next_seq > 0 && seat.fresh.len() + 1 < q);
        let patient = match (short, self.last_own_at) {
            (true, Some(at)) => at + interval * ACK_PATIENCE_INTERVALS,
            _ => 0,
        };
        paced.max(patient)
    }

    /// Whether this seat is too far behind the committee to sign: its
    /// DAG ends more than `G` rounds below the committee's round (see
    /// [`Shard::lag_rounds`]). An own anchor made there would be born
    /// where its peers are about to prune (at most `3G + 2` rounds below
    /// their last decided one, and an anchor whose window reaches below
    /// that is ancient), or be ancient on arrival, and every later own
    /// anchor within `G + 1` rounds of it would need it as its
    /// self-parent, so that no peer could ever insert the seat's chain
    /// again. It catches up first (pulls and ranges), then signs at most
    /// `G` rounds below its peers.
    fn far_behind_peers(&self) -> bool {
        self.lag_rounds() > self.consensus.window()
    }

    /// Takes note of a valid anchor of `creator` claiming `birth_round`.
    fn note_seat_round(&mut self, creator: u8, birth_round: u64) {
        let seat_round = &mut self.seat_rounds[usize::from(creator)];
        if birth_round <= *seat_round {
            return;
        }
        *seat_round = birth_round;
        let before = self.committee_round;
        let own = self.seat.as_ref().map(|seat| usize::from(seat.seat));
        let mut others: Vec<u64> = self
            .seat_rounds
            .iter()
            .enumerate()
            .filter(|(seat, _)| Some(*seat) != own)
            .map(|(_, round)| *round)
            .collect();
        let f = (self.context.k() - 1) / 3;
        if others.len() > f {
            let (_, round, _) = others.select_nth_unstable_by(f, |a, b| b.cmp(a));
            self.committee_round = *round;
        }
        if self.committee_round != before {
            self.committee_round_at = self.now;
        }
    }

    /// The parents and birth round the seat's next own anchor would have.
    fn next_own_parents(&mut self) -> (Vec<ParentRef>, u64) {
        let seat = self.seat.as_ref().expect("only seats create anchors");
        let mut parents: Vec<ParentRef> = seat.last_own.into_iter().collect();
        parents.extend(choose_other_parents(seat, &self.consensus));
        // Other parents are never ancient (they were pruned from `latest`);
        // the self-parent may be, after a long silence, and is then left
        // out of the DAG edges exactly as every receiver leaves it out.
        let spec = VertexSpec {
            id: [0xff; 32],
            creator: seat.seat,
            seq: seat.next_seq,
            parents: parents
                .iter()
                .filter(|p| self.consensus.contains(&p.anchor_id))
                .map(|p| p.anchor_id)
                .collect(),
            coin: false,
        };
        // Held parents only: an ancient self-parent may be pruned here, and
        // is left out of the edges by every receiver anyway.
        let birth_round = self
            .consensus
            .probe_round(&spec)
            .expect("own parents are inserted and follow the self-parent rule");
        (parents, birth_round)
    }

    /// Whether the seat's next own anchor carries no micro-events for the
    /// bound on payload anchors per birth round: it made
    /// [`MAX_OWN_PER_ROUND`] at its last birth round and the next would be
    /// born there too. Micro-events then wait in the mempool (where
    /// admission control counts them) until the round advances; the seat
    /// still makes paced acknowledgement-only anchors, which is how the
    /// round advances.
    fn round_full(&mut self) -> bool {
        let Some(seat) = self.seat.as_ref() else {
            return false;
        };
        let (round, made) = seat.own_round;
        if made < MAX_OWN_PER_ROUND {
            return false;
        }
        let (_, birth_round) = self.next_own_parents();
        birth_round <= round
    }

    /// Whether the seat holds its next anchor to keep its chain
    /// insertable. Peers refuse an anchor born `2G + 2` rounds below the
    /// round they decide as ancient, and every own anchor within `G + 1`
    /// rounds of its self-parent needs it. A seat back from a partition or
    /// a crash whose last anchors no peer received, catching up and
    /// signing as soon as it lags no more than `G` rounds, extended that
    /// chain step by step until its foot was ancient at every peer and no
    /// later anchor of the seat could be inserted again (its transfers
    /// never finalized). So while the oldest own anchor no other seat has
    /// named as a parent lies more than `G` rounds below the committee's
    /// round, the seat signs only an anchor that cuts its chain (born more
    /// than `G + 1` rounds above its self-parent), unless the committee's
    /// round has not moved for [`CHAIN_HOLD_PATIENCE_RETRIES`] pull
    /// retries: then no peer is deciding rounds (it may need this seat),
    /// the foot does not age, and pulls and ranges fetch the chain.
    fn holds_for_chain(&mut self) -> bool {
        let window = self.consensus.window();
        let Some(oldest) = self.seat.as_ref().and_then(SeatRole::oldest_unacked_birth) else {
            return false;
        };
        let patience = self.limits.pull_retry_ticks.max(1) * CHAIN_HOLD_PATIENCE_RETRIES;
        if self.committee_round <= oldest + window || self.now >= self.committee_round_at + patience
        {
            return false;
        }
        let (_, birth_round) = self.next_own_parents();
        let last_own = self.seat.as_ref().and_then(|seat| seat.last_own);
        !last_own.is_some_and(|own| is_relatively_ancient(&own, birth_round, window))
    }

    fn create_own_anchor(&mut self) {
        let seat = self.seat.as_ref().expect("only seats create anchors");
        let (creator, seq) = (seat.seat, seat.next_seq);
        let last_own = seat.last_own;
        let window = self.consensus.window();
        let (parents, birth_round) = self.next_own_parents();
        debug_assert!(parents.iter().all(|p| self.consensus.contains(&p.anchor_id)
            || is_relatively_ancient(p, birth_round, window)));
        // A cut chain: the self-parent is relatively ancient, so no own
        // anchor below it is an ancestor of this one. Their micro-events
        // (never finalized yet) go first into this anchor's payload, so that
        // a spend included here never precedes the transfer it spends from.
        if last_own.is_some_and(|own| is_relatively_ancient(&own, birth_round, window)) {
            let mut below: Vec<(u64, Hash32)> = self
                .unfinalized
                .iter()
                .filter(|(id, d)| {
                    d.anchor.header.header.creator == creator
                        && !d.anchor.payload.events.is_empty()
                        && !self.reincluded.contains(*id)
                })
                .map(|(id, d)| (d.anchor.header.header.seq, *id))
                .collect();
            below.sort_unstable();
            let mut events = Vec::new();
            for (_, id) in &below {
                events.extend(self.unfinalized[id].anchor.payload.events.iter().cloned());
                self.reincluded.insert(*id);
            }
            for event in events.into_iter().rev() {
                self.mempool.push_front(event);
            }
        }
        let seat = self.seat.as_mut().expect("only seats create anchors");
        let made = match seat.own_round {
            (round, made) if round == birth_round => made,
            _ => 0,
        };
        seat.own_round = (birth_round, made.saturating_add(1));
        let payload = AnchorPayload {
            events: take_payload(&mut self.mempool, payload_cap(made)),
        };
        let mut header = AnchorHeader {
            version: PROTOCOL_VERSION,
            network: self.context.network,
            shard: self.context.shard,
            epoch: 0,
            creator,
            seq,
            birth_round,
            parents,
            payload_root: payload.root(),
            payload_count: payload.events.len() as u16,
            payload_bytes: 0,
        };
        header.payload_bytes = payload.to_bytes().len() as u32;
        let signature = seat.signer.sign_header(&header);
        if self.equivocate_at == Some(seq) {
            // A second signature of this header is a second anchor at this
            // seq (DESIGN §4): sent to the peers, never inserted here.
            let twin = SignedAnchor {
                header: SignedAnchorHeader {
                    header: header.clone(),
                    signature: seat.signer.sign_again(&header.id()),
                },
                payload: payload.clone(),
            };
            self.twin = Some(twin.to_bytes());
        }
        let anchor = SignedAnchor {
            header: SignedAnchorHeader { header, signature },
            payload,
        };
        let bytes = anchor.to_bytes();
        let anchor = DecodedAnchor::from_anchor(anchor, &self.context.network);
        let own_ref = ParentRef {
            anchor_id: anchor.anchor_id,
            creator,
            seq,
            birth_round,
        };
        let referenced: Vec<u8> = anchor
            .anchor
            .header
            .header
            .parents
            .iter()
            .map(|p| p.creator)
            .collect();
        let token = self
            .insert_one(anchor, bytes.clone())
            .expect("an own anchor built from inserted parents is valid");
        let seat = self.seat.as_mut().expect("only seats create anchors");
        for creator in referenced {
            seat.unacknowledged.remove(&creator);
        }
        seat.fresh.clear();
        seat.own_anchors += 1;
        debug_assert_eq!(seat.last_own, Some(own_ref));
        seat.awaiting_durable = Some((token, bytes));
        self.last_own_at = Some(self.now);
    }

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next record to append to the log.
    #[must_use]
    pub fn poll_persist(&mut self) -> Option<PersistRecord> {
        self.persists.pop_front()
    }

    /// The next finalized round.
    #[must_use]
    pub fn poll_finalized(&mut self) -> Option<FinalizedReport> {
        self.finalized.pop_front()
    }

    /// The logical time at which [`Shard::handle_tick`] has work, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        let retry_after = self.limits.pull_retry_ticks.max(1);
        let next_retry = self
            .requested
            .values()
            .map(|at| at.last + retry_after)
            .min();
        // Parents waited for but not yet asked (over budget) need a tick too.
        let unasked = (!self.waiting_for.is_empty()
            || !self.pending_by_id.is_empty()
            || !self.refetch.is_empty())
        .then_some(self.now + retry_after);
        // A deferred acknowledgement whose interval has passed waits for
        // an input (its record's durability, new parents), not for time:
        // no timer, or a driver that sleeps until this would spin.
        let deferred = self
            .ack_deferred
            .then(|| self.ack_due_at())
            .filter(|at| *at > self.now);
        let catch_up = self
            .wants_catch_up()
            .then(|| self.next_catch_up_at().max(self.now));
        // A chain hold ends at the latest when its patience runs out.
        let held = self
            .chain_held
            .then(|| {
                self.committee_round_at
                    + self.limits.pull_retry_ticks.max(1) * CHAIN_HOLD_PATIENCE_RETRIES
            })
            .filter(|at| *at > self.now);
        next_retry
            .into_iter()
            .chain(held)
            .chain(unasked)
            .chain(deferred)
            .chain(catch_up)
            .chain(Some(self.next_announce.max(self.now)))
            .min()
    }

    /// The shard's UTXO state.
    pub fn state(&self) -> &ShardState {
        &self.state
    }

    /// Sync bookkeeping, for metrics: outstanding pulls, missing parent ids
    /// waited for, evicted anchors to fetch again.
    pub fn sync_stats(&self) -> SyncStats {
        SyncStats {
            outstanding_pulls: self.requested.len(),
            missing_parents: self.waiting_for.len(),
            refetch: self.refetch.len(),
            catch_up_requests: self.catch_up.requests,
            deferred: self.deferred,
        }
    }

    /// `GetRange` requests made since the machine started.
    pub fn catch_up_requests(&self) -> u64 {
        self.catch_up.requests
    }

    /// How many rounds this machine's DAG ends below the committee: the
    /// (f+1)-th highest birth round that other seats' valid anchors
    /// (inserted or pending) claim, a round at least one honest seat has
    /// reached and f Byzantine seats cannot raise, less the highest birth
    /// round inserted here.
    pub fn lag_rounds(&self) -> u64 {
        self.committee_round.saturating_sub(self.top_round)
    }

    /// The ids pulled and not answered yet, in id order (diagnostics).
    pub fn outstanding_pulls(&self) -> Vec<Hash32> {
        self.requested.keys().copied().collect()
    }

    /// Anchors held while their parents are pulled.
    pub fn pending_anchors(&self) -> usize {
        self.pending_by_id.len()
    }

    /// What this node knows of the mint `mint_id` (DESIGN §7 MintStatus).
    pub fn mint_status(&self, mint_id: &Hash32) -> crate::mint::MintStatus {
        self.mints.status(mint_id)
    }

    /// Micro-events waiting for an own anchor.
    pub fn mempool_len(&self) -> usize {
        self.mempool.len()
    }

    /// The micro-events queued in front of the DAG: the mempool's and those
    /// of pending anchors (verified, waiting for parents). Unlike the
    /// events of inserted, unfinalized anchors they are not part of what
    /// consensus takes with no queue.
    pub fn queued_events(&self) -> usize {
        let pending: usize = self
            .pending_by_id
            .values()
            .map(|p| p.anchor.digests.len())
            .sum();
        self.mempool.len() + pending
    }

    /// The work this machine holds in micro-events: what waits in the
    /// mempool, in inserted anchors not yet finalized (own and peers'), and
    /// in pending anchors (verified, waiting for parents). The node's
    /// admission control weighs it against the finalized rate.
    pub fn backlog_events(&self) -> usize {
        self.queued_events() + self.unfinalized_events
    }

    /// What the shard validates against (network, committees).
    pub fn context(&self) -> &ShardContext {
        &self.context
    }

    /// The DAG.
    pub fn consensus(&self) -> &Consensus {
        &self.consensus
    }
}

/// The log record of a finalized round.
fn round_record(report: &FinalizedReport) -> RoundFinalized {
    RoundFinalized {
        round: report.round.round,
        first_global_index: report.round.anchors.first().map_or(0, |a| a.global_index),
        anchor_count: report.round.anchors.len() as u64,
        state_root: report.outcome.state_root,
        payout_root: report.outcome.payout_root,
    }
}

/// Up to three other-seat parents, one per seat: the unacknowledged seat
/// waiting longest (so no seat starves), then unacknowledged anchors of the
/// highest round (to advance the round), then already acknowledged ones;
/// ties by seat.
fn choose_other_parents<S>(seat: &SeatRole<S>, consensus: &Consensus) -> Vec<ParentRef> {
    let mut chosen: BTreeSet<u8> = BTreeSet::new();
    if let Some((oldest, _)) = seat
        .unacknowledged
        .iter()
        .min_by_key(|(other, since)| (**since, **other))
    {
        chosen.insert(*oldest);
    }
    let mut candidates: Vec<(bool, u64, u8)> = seat
        .latest
        .iter()
        .map(|(other, parent)| {
            let round = consensus.round(&parent.anchor_id).unwrap_or(0);
            (!seat.unacknowledged.contains_key(other), round, *other)
        })
        .collect();
    candidates.sort_by_key(|(acknowledged, round, other)| {
        (*acknowledged, std::cmp::Reverse(*round), *other)
    });
    for (_, _, other) in candidates {
        if chosen.len() == 3 {
            break;
        }
        chosen.insert(other);
    }
    chosen
        .into_iter()
        .map(|other| seat.latest[&other])
        .collect()
}

fn parent_image(p: &ParentRef) -> crate::snapshot::ParentImage {
    crate::snapshot::ParentImage {
        anchor_id: p.anchor_id,
        creator: p.creator,
        seq: p.seq,
        birth_round: p.birth_round,
    }
}

fn parent_of_image(p: &crate::snapshot::ParentImage) -> ParentRef {
    ParentRef {
        anchor_id: p.anchor_id,
        creator: p.creator,
        seq: p.seq,
        birth_round: p.birth_round,
    }
}

impl<V: SignatureVerifier, S: AnchorSigner> Shard<V, S> {
    /// Whether the machine is at a point a snapshot can be taken: every
    /// record it emitted was taken by the driver and no finalized round
    /// waits to be polled.
    pub fn snapshot_ready(&self) -> bool {
        self.persists.is_empty() && self.finalized.is_empty() && !self.replaying
    }

    /// Resumes a seat whose own log may end before its last own anchors (a
    /// data dir restored from a backup, DESIGN §6.1 step 4): it signs
    /// nothing until `G` rounds were decided after the highest own seq it
    /// has seen (in its log or, as it catches up, in the DAG), and then
    /// signs above it. Taken by the operator (`--resume-seat`): an own
    /// anchor no peer holds any more could still be overwritten.
    pub fn hold_for_resume(&mut self) {
        let until = self.consensus.next_undecided_round() + self.consensus.window();
        if let Some(seat) = self.seat.as_mut() {
            seat.resume_until = Some(until);
        }
    }

    /// Whether a resuming seat still holds its signature.
    pub fn resuming(&self) -> bool {
        self.seat
            .as_ref()
            .is_some_and(|seat| seat.resume_until.is_some())
    }

    /// Stops asking `peer` for catch-up ranges (it answered that it pruned
    /// them) until it sends a valid anchor again.
    pub fn forget_catch_up_peer(&mut self, peer: PeerId) {
        self.catch_up.peers.remove(&peer);
    }

    /// Records that a snapshot of `round` covering the records below
    /// `next_token` was written (DESIGN §6 record 5); the marker takes the
    /// next token like every record the machine emits.
    pub fn note_snapshot_written(&mut self, round: u64, next_token: u64) {
        let mut body = Vec::with_capacity(16);
        body.extend_from_slice(&round.to_le_bytes());
        body.extend_from_slice(&next_token.to_le_bytes());
        self.persist(LogRecordKind::SnapshotWritten, body);
    }

    /// The last finalized round, if any.
    pub fn last_finalized_round(&self) -> Option<u64> {
        self.consensus.next_undecided_round().checked_sub(1)
    }

    /// The machine's deterministic state as a snapshot image (DESIGN §6.1,
    /// a local snapshot): what a replay of the log records before
    /// [`crate::snapshot::ShardImage::next_token`] rebuilds. Timers, pulls,
    /// the pending set, the mempool and the seats' claimed rounds are not
    /// in it (a restart from the log does not rebuild them either: they
    /// come back from the peers).
    ///
    /// # Panics
    /// Unless [`Shard::snapshot_ready`].
    #[must_use]
    pub fn snapshot_image(&self) -> crate::snapshot::ShardImage {
        use crate::snapshot::{MachineImage, SeatImage, ShardImage, UnfinalizedImage};
        assert!(self.snapshot_ready(), "a snapshot is taken between inputs");
        let resident_tokens: HashMap<Hash32, u64> = self
            .resident
            .iter()
            .map(|(token, id)| (*id, *token))
            .collect();
        let mut unfinalized: Vec<(Hash32, UnfinalizedImage)> = self
            .unfinalized
            .iter()
            .map(|(id, decoded)| {
                let mut bytes = Vec::new();
                decoded.anchor.encode(&mut bytes);
                let token = resident_tokens.get(id).copied();
                (*id, UnfinalizedImage::Resident { bytes, token })
            })
            .chain(self.spilled.iter().map(|(id, s)| {
                (
                    *id,
                    UnfinalizedImage::Spilled {
                        id: *id,
                        token: s.token,
                        creator: s.creator,
                        birth_round: s.birth_round,
                        events: s.events,
                    },
                )
            }))
            .collect();
        unfinalized.sort_unstable_by_key(|(id, _)| *id);
        let mut first_headers: Vec<(u8, u64, Vec<u8>)> = self
            .first_header
            .iter()
            .map(|((seat, seq), header)| {
                let mut bytes = Vec::new();
                header.encode(&mut bytes);
                (*seat, *seq, bytes)
            })
            .collect();
        first_headers.sort_unstable_by_key(|(seat, seq, _)| (*seat, *seq));
        let seat = self.seat.as_ref().map(|seat| SeatImage {
            seat: seat.seat,
            next_seq: seat.next_seq,
            last_own: seat.last_own.as_ref().map(parent_image),
            latest: seat
                .latest
                .iter()
                .map(|(s, p)| (*s, parent_image(p)))
                .collect(),
            unacknowledged: seat.unacknowledged.keys().copied().collect(),
            fresh: seat.fresh.iter().copied().collect(),
            acked_seq: seat.acked_seq,
            unacked_births: seat.unacked_births.iter().map(|(s, b)| (*s, *b)).collect(),
        });
        ShardImage {
            shard: self.context.shard,
            round: self.last_finalized_round().unwrap_or(u64::MAX),
            next_token: self.next_token,
            state: self.state.to_image(),
            consensus: self.consensus.to_image(),
            machine: MachineImage {
                unfinalized: unfinalized.into_iter().map(|(_, u)| u).collect(),
                reincluded: self.reincluded.iter().copied().collect(),
                first_headers,
                evidence_queued: self.evidence_queued,
                pruned_floor: self.pruned_floor,
                top_round: self.top_round,
                seat,
            },
        }
    }

    /// Loads a snapshot image into this fresh machine (made by
    /// [`Shard::new`] for the same genesis and shard, before any input);
    /// [`Shard::restore`] then replays the log records from the image's
    /// `next_token` on. Every section is checked against the genesis and
    /// against the others; a seat's machine refuses an image without that
    /// seat's own chain (an observer's), since it could sign a used seq.
    pub fn load_image(
        &mut self,
        image: crate::snapshot::ShardImage,
    ) -> Result<(), crate::snapshot::SnapshotError> {
        use crate::snapshot::{SnapshotError, UnfinalizedImage};
        let bad = |reason: String| SnapshotError::Image(reason);
        assert!(
            self.next_token == 0 && self.consensus.is_empty(),
            "an image loads into a fresh machine"
        );
        if image.shard != self.context.shard {
            return Err(bad(format!(
                "image of shard {}, machine of shard {}",
                image.shard, self.context.shard
            )));
        }
        let k = self.context.k();
        let machine = image.machine;
        let consensus =
            Consensus::from_image(self.consensus.config(), image.consensus).map_err(bad)?;
        let last_round = consensus.next_undecided_round().checked_sub(1);
        if last_round.unwrap_or(u64::MAX) != image.round {
            return Err(bad(format!(
                "round {} but the DAG decided up to {last_round:?}",
                image.round
            )));
        }
        self.state.load_image(image.state).map_err(bad)?;
        self.consensus = consensus;
        let network = self.context.network;
        let mut resident: Vec<(u64, Hash32)> = Vec::new();
        for entry in machine.unfinalized {
            let (id, events) = match entry {
                UnfinalizedImage::Resident { bytes, token } => {
                    let decoded = DecodedAnchor::from_bytes(&bytes, &network)
                        .map_err(|error| bad(format!("unfinalized anchor: {error}")))?;
                    let id = decoded.anchor_id;
                    if let Some(token) = token {
                        resident.push((token, id));
                    }
                    let events = decoded.digests.len();
                    self.unfinalized.insert(id, decoded);
                    (id, events)
                }
                UnfinalizedImage::Spilled {
                    id,
                    token,
                    creator,
                    birth_round,
                    events,
                } => {
                    if token >= image.next_token || usize::from(creator) >= k {
                        return Err(bad(format!("spilled anchor at record {token}")));
                    }
                    self.spilled.insert(
                        id,
                        Spilled {
                            token,
                            creator,
                            birth_round,
                            events,
                        },
                    );
                    (id, usize::from(events))
                }
            };
            if !self.consensus.contains(&id) {
                return Err(bad(format!(
                    "unfinalized anchor {} is not in the DAG",
                    pc_codec::ids::to_hex(&id)
                )));
            }
            self.unfinalized_with_payload += usize::from(events > 0);
            self.unfinalized_events += events;
        }
        resident.sort_unstable();
        self.resident = resident.into();
        self.reincluded = machine.reincluded.into_iter().collect();
        for (seat, seq, bytes) in machine.first_headers {
            let header = SignedAnchorHeader::decode(&mut pc_codec::Reader::new(&bytes))
                .map_err(|error| bad(format!("first header of seat {seat}: {error}")))?;
            if (header.header.creator, header.header.seq) != (seat, seq) {
                return Err(bad(format!("first header of seat {seat} seq {seq}")));
            }
            self.first_header.insert((seat, seq), header);
        }
        self.evidence_queued = machine.evidence_queued;
        self.pruned_floor = machine.pruned_floor;
        self.top_round = machine.top_round;
        if let Some(seat) = self.seat.as_mut() {
            let Some(saved) = machine.seat.filter(|saved| saved.seat == seat.seat) else {
                return Err(bad(format!(
                    "the image holds no chain of seat {}: it was taken without that seat",
                    seat.seat
                )));
            };
            seat.next_seq = saved.next_seq;
            seat.last_own = saved.last_own.as_ref().map(parent_of_image);
            seat.latest = saved
                .latest
                .iter()
                .map(|(s, p)| (*s, parent_of_image(p)))
                .collect();
            seat.unacknowledged = saved.unacknowledged.into_iter().map(|s| (s, 0)).collect();
            seat.fresh = saved.fresh.into_iter().collect();
            seat.acked_seq = saved.acked_seq;
            seat.unacked_births = saved.unacked_births.into_iter().collect();
        }
        self.next_token = image.next_token;
        Ok(())
    }
}
