//! The cross-shard link of one node's shard (DESIGN §5.2 "Checkpoint",
//! "Carrying"): sans-IO, deterministic, driven by the shard's finalized
//! rounds, by time given as an argument, and by the messages of other
//! nodes. Its clock counts decided rounds and, so that a quiet shard (no
//! rounds deciding) still retries a lost push or signature, every
//! [`RETRY_TICK_MS`] of time without one: the delays below are in that
//! clock's units ("decided rounds").
//!
//! * **Checkpoints.** Every finalized round with exports gets its
//!   checkpoint; a seat signs it (one content per round: it signs only what
//!   its own state finalized) and sends the signature to its committee,
//!   again every [`SIG_RESEND_ROUNDS`] decided rounds until it holds the
//!   certificate. Any node holding `q` valid signatures assembles the
//!   certificate and logs it (record 3); a holder answers a signature of a
//!   certified round with the certificate.
//! * **Pushes.** Each source seat `i` holding a round's certificate pushes
//!   the destination's bundle (certificate, entry, proof, leaves) to the
//!   `f+1` seats `(i + t) mod k` of each destination, per (destination,
//!   target) in chain order, retrying each until that target acks.
//! * **Receipt.** A destination node checks a bundle (the certificate
//!   against the source committee, the entry under the exports root, the
//!   leaves against the entry), logs it (record 4) and acks once it is
//!   durable, and forwards it to the carrier seat of each of its chunks
//!   (below). A missing chain predecessor is pulled with `GetExports`.
//! * **Imports.** A bundle's leaves are carried in chunks of
//!   [`CARRY_CHUNK_LEAVES`] (one full payload): chunk `c` of `(source,
//!   round)` has the carrier seat `(source + round + c) mod k`, so a round
//!   of many exports is carried by several seats at once, not by one seat
//!   at one payload per anchor. A seat holding the bundle at rank `r`
//!   behind a chunk's carrier (`r = (seat - carrier) mod k`) includes the
//!   chunk's leaves still unlanded in its finalized state `r *`
//!   [`BACKUP_DELAY_ROUNDS`] decided rounds after it got the bundle: the
//!   carrier at once, then one backup after the other, so an honest
//!   carrier's chunk is carried once, not by every holder. (DESIGN §5.2 has
//!   one carrier per round and every other holder backing it up after the
//!   same delay: under load the carrier falls behind, every holder
//!   includes the same leaves, and all but one copy are refused as
//!   duplicates.) Each chunk's carrier uses the Certified form for its
//!   first import of a round not yet registered, so a round of many
//!   chunks carries its certificate a few times (a node checks it once:
//!   its verifier remembers the signatures that held). An
//!   import is not included again until [`REINCLUDE_ROUNDS`] decided
//!   rounds passed (an import finalized as unregistered or window-full is
//!   retried). The oldest chain round goes first, the first import of a
//!   round not yet registered in the Certified form.
//!
//! Every table is bounded: own rounds by [`OWN_ROUNDS_KEPT`], early
//! signatures by [`EARLY_ROUNDS_AHEAD`] rounds of one signature per seat,
//! received bundles by [`RECEIVED_PER_SOURCE`] rounds per source, the
//! signature cache by [`SIG_CACHE_ENTRIES`].

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use pc_codec::cross::{
    leaf_proofs, supermajority, BuiltExports, CertifiedCheckpoint, Checkpoint, CheckpointSig,
    ExportsBundle, Import, RoundExports, PEND_MAX,
};
use pc_codec::ids::{derive, shard_of};
use pc_codec::{
    Encode, Hash32, LogRecordKind, MerkleProof, MicroEvent, Offence, PublicKeyBytes,
    SignatureBytes, SignatureVerifier,
};

use crate::machine::AnchorSigner;
use crate::state::{RoundOutcome, ShardState};

/// Milliseconds of time that count as one decided round when rounds do
/// not decide.
pub const RETRY_TICK_MS: u64 = 250;
/// Decided rounds between resends of an own checkpoint signature.
pub const SIG_RESEND_ROUNDS: u64 = 8;
/// Decided rounds between pushes of one bundle to one target.
pub const PUSH_RETRY_ROUNDS: u64 = 4;
/// Decided rounds each backup rank waits after the one before it (the
/// carrier, rank 0, includes at once).
pub const BACKUP_DELAY_ROUNDS: u64 = 8;
/// Leaves of a bundle in one carrying chunk (one full payload).
pub const CARRY_CHUNK_LEAVES: usize = pc_codec::MAX_PAYLOAD_EVENTS;
/// Decided rounds before an included import may be included again.
pub const REINCLUDE_ROUNDS: u64 = 12;
/// Decided rounds between pulls of a missing chain round.
pub const PULL_RETRY_ROUNDS: u64 = 8;
/// Own signed rounds kept (for certificates, pushes and `GetExports`).
pub const OWN_ROUNDS_KEPT: u64 = 4_096;
/// Rounds ahead of the last finalized one whose signatures are kept.
pub const EARLY_ROUNDS_AHEAD: u64 = 64;
/// Received bundles kept per source (the dedupe window and some slack).
pub const RECEIVED_PER_SOURCE: usize = PEND_MAX + 8;
/// Verified certificate signatures remembered.
pub const SIG_CACHE_ENTRIES: usize = 65_536;
/// Imports handed to the machine per decided round at most.
pub const IMPORTS_PER_ROUND: usize = 512;

/// A cross-shard message (DESIGN §7 tags 5, 11-14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrossMessage {
    /// A seat's checkpoint signature.
    Sig(CheckpointSig),
    /// A certificate.
    Cert(CertifiedCheckpoint),
    /// A bundle of one source round's exports to one destination.
    Exports(Box<ExportsBundle>),
    /// A destination seat logged (or already had) a bundle.
    Ack {
        /// Source shard.
        source: u16,
        /// Source round.
        round: u64,
        /// Destination shard.
        dest: u16,
    },
    /// A pull of one bundle.
    GetExports {
        /// Source shard.
        source: u16,
        /// Source round.
        round: u64,
        /// Destination shard.
        dest: u16,
    },
}

/// Where a cross-shard message goes, or where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CrossTarget {
    /// Every other seat of this node's shard.
    Committee,
    /// One seat of a shard (possibly another node of this shard).
    Seat {
        /// The shard.
        shard: u16,
        /// The seat.
        seat: u8,
    },
}

/// An import seen in another seat's anchor
/// ([`crate::machine::Shard::take_seen_imports`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenImport {
    /// Source shard.
    pub source: u16,
    /// Source round.
    pub round: u64,
    /// Leaf index.
    pub index: u64,
    /// The leaf's transfer id.
    pub tx_id: Hash32,
    /// The seat whose anchor carries it.
    pub creator: u8,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossTransmit {
    /// Receiver(s).
    pub to: CrossTarget,
    /// Content.
    pub message: CrossMessage,
}

/// A log record to append; `ack` is sent once it is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossRecord {
    /// Record kind (3, 4 or 6).
    pub kind: LogRecordKind,
    /// Record body.
    pub body: Vec<u8>,
    /// The ack to send after the record is durable.
    pub ack: Option<CrossTransmit>,
    /// The (source shard, round) the record is about: while
    /// [`CrossLink::needs`] says so, pruning keeps it.
    pub about: (u16, u64),
}

/// Why a peer's cross-shard message is refused (a scored violation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrossViolation {
    /// A checkpoint signature of a seat that does not exist, of another
    /// shard, or that does not verify.
    #[error("bad checkpoint signature: {0}")]
    BadSig(&'static str),
    /// A seat signed a checkpoint of a round other than the one this node
    /// finalized: a provable offence.
    #[error("seat {seat} signed another checkpoint of round {round}")]
    ConflictingSig {
        /// The seat.
        seat: u8,
        /// The round.
        round: u64,
    },
    /// A certificate or bundle that does not verify.
    #[error("bad certificate or bundle: {0}")]
    BadBundle(String),
}

/// Counters of the link (for metrics and the simulators' coverage).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrossCounters {
    /// Own checkpoints signed.
    pub signed: u64,
    /// Certificates assembled or adopted.
    pub certified: u64,
    /// Bundles pushed (sends, retries included).
    pub pushed: u64,
    /// Acks received for pushes.
    pub acked: u64,
    /// Bundles received and logged.
    pub received: u64,
    /// Bundles received again (acked unlogged).
    pub received_again: u64,
    /// Imports handed to the machine.
    pub imports_offered: u64,
    /// Pulls sent.
    pub pulls: u64,
    /// Violations seen.
    pub violations: u64,
}

/// One own round with exports.
#[derive(Debug, Clone)]
struct OwnRound {
    checkpoint: Checkpoint,
    id: Hash32,
    sigs: BTreeMap<u8, SignatureBytes>,
    cert: Option<CertifiedCheckpoint>,
    exports: RoundExports,
    /// Decided count when the own signature was last sent.
    sig_sent: Option<u64>,
    /// Per (dest, target seat): acked, last push.
    pushes: BTreeMap<(u16, u8), (bool, Option<u64>)>,
}

impl OwnRound {
    /// The certified bundle of this round's exports to `dest`, if both
    /// exist.
    fn bundle(&self, dest: u16) -> Option<ExportsBundle> {
        let cert = self.cert.as_ref()?;
        let position = self
            .exports
            .entries
            .iter()
            .position(|(e, _)| e.dest == dest)?;
        let (entry, leaves) = &self.exports.entries[position];
        Some(ExportsBundle {
            cert: cert.clone(),
            entry: *entry,
            entry_proof: self.exports.entry_proof(position)?,
            leaves: leaves.clone(),
        })
    }
}

/// One received bundle.
#[derive(Debug, Clone)]
struct Received {
    bundle: ExportsBundle,
    proofs: Vec<MerkleProof>,
    /// Decided count when it arrived.
    got_at: u64,
    /// Per leaf, the decided count when last included.
    included: Vec<Option<u64>>,
    /// Per leaf, the decided count when last seen in another seat's
    /// unfinalized anchor.
    seen: Vec<Option<u64>>,
}

/// The cross-shard link of one shard of one node.
pub struct CrossLink<V, S> {
    shard: u16,
    shards: u16,
    network: [u8; 8],
    k: usize,
    seat: Option<u8>,
    signer: Option<S>,
    verifier: V,
    committees: Arc<Vec<Vec<PublicKeyBytes>>>,
    /// Finalized rounds seen plus quiet ticks: the link's clock.
    decided: u64,
    /// When the next quiet tick is due (ms).
    next_tick_ms: u64,
    last_round: Option<u64>,
    own: BTreeMap<u64, OwnRound>,
    early: BTreeMap<u64, BTreeMap<u8, CheckpointSig>>,
    received: BTreeMap<(u16, u64), Received>,
    /// Per (source, round): decided count of the last pull.
    pulls: BTreeMap<(u16, u64), u64>,
    /// Per source, the head of the finalized dedupe state last seen (rounds
    /// at or below it are landed and never pulled).
    heads: BTreeMap<u16, u64>,
    sig_cache: HashSet<Hash32>,
    sig_cache_order: VecDeque<Hash32>,
    transmits: VecDeque<CrossTransmit>,
    records: VecDeque<CrossRecord>,
    /// Checkpoint offences proven from signatures received (DESIGN §5.4
    /// kinds 2 and 5), for the shard's seat to carry.
    offences: VecDeque<Offence>,
    counters: CrossCounters,
}

/// Checkpoint offences held for the seat at most (each seat of the shard
/// is slashed out after a few; older ones are dropped first).
const MAX_HELD_OFFENCES: usize = 64;

impl<V: SignatureVerifier, S: AnchorSigner> CrossLink<V, S> {
    /// The link of `shard`; `seat` with its signer for a seat, `None` for
    /// an observer. `committees` are every shard's genesis seat keys.
    pub fn new(
        network: [u8; 8],
        shard: u16,
        committees: Arc<Vec<Vec<PublicKeyBytes>>>,
        seat: Option<(u8, S)>,
        verifier: V,
    ) -> Self {
        let k = committees[usize::from(shard)].len();
        let (seat, signer) = match seat {
            Some((seat, signer)) => (Some(seat), Some(signer)),
            None => (None, None),
        };
        CrossLink {
            shard,
            shards: committees.len() as u16,
            network,
            k,
            seat,
            signer,
            verifier,
            committees,
            decided: 0,
            next_tick_ms: 0,
            last_round: None,
            own: BTreeMap::new(),
            early: BTreeMap::new(),
            received: BTreeMap::new(),
            pulls: BTreeMap::new(),
            heads: BTreeMap::new(),
            sig_cache: HashSet::new(),
            sig_cache_order: VecDeque::new(),
            transmits: VecDeque::new(),
            records: VecDeque::new(),
            offences: VecDeque::new(),
            counters: CrossCounters::default(),
        }
    }

    /// The checkpoint offences proven since the last call (a seat signed
    /// another checkpoint of a round than this shard's, or two).
    pub fn take_offences(&mut self) -> Vec<Offence> {
        self.offences.drain(..).collect()
    }

    fn hold_offence(&mut self, offence: Offence) {
        if self.offences.len() >= MAX_HELD_OFFENCES {
            self.offences.pop_front();
        }
        self.offences.push_back(offence);
    }

    /// A signature of `sig.seat` over a checkpoint of `round` that is not
    /// this shard's: when it verifies, the seat signed a wrong checkpoint
    /// (kind 2), and a fork of its own signature over this shard's one if
    /// that is held (kind 5). Always the sender's violation too.
    fn conflicting_sig(&mut self, sig: CheckpointSig) -> CrossViolation {
        let round = sig.checkpoint.round;
        let id = sig.checkpoint.id(&self.network);
        if self.verify_sig(self.shard, &id, sig.seat, &sig.signature) {
            let held = self.own.get(&round).and_then(|own| {
                own.sigs.get(&sig.seat).map(|signature| CheckpointSig {
                    checkpoint: own.checkpoint,
                    seat: sig.seat,
                    signature: *signature,
                })
            });
            if let Some(a) = held {
                self.hold_offence(Offence::CheckpointFork { a, b: sig });
            }
            self.hold_offence(Offence::WrongCheckpoint { sig });
        }
        CrossViolation::ConflictingSig {
            seat: sig.seat,
            round,
        }
    }

    /// The counters.
    pub fn counters(&self) -> CrossCounters {
        self.counters
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<CrossTransmit> {
        self.transmits.pop_front()
    }

    /// The next record to append.
    pub fn poll_record(&mut self) -> Option<CrossRecord> {
        self.records.pop_front()
    }

    /// Certificates held of own rounds (newest last), for tests and serving.
    pub fn certificate(&self, round: u64) -> Option<&CertifiedCheckpoint> {
        self.own.get(&round)?.cert.as_ref()
    }

    /// Received bundles held.
    pub fn bundles_held(&self) -> usize {
        self.received.len()
    }

    fn q(&self) -> usize {
        supermajority(self.k)
    }

    fn f(&self) -> usize {
        (self.k - 1) / 3
    }

    /// When the next quiet tick is due (ms, the origin of
    /// [`CrossLink::handle_tick`]'s time).
    pub fn poll_timeout(&self) -> u64 {
        self.next_tick_ms
    }

    /// Time passes (`now_ms`, any monotonic origin): once per
    /// [`RETRY_TICK_MS`] the clock advances and retries that are due go
    /// out. Returns whether it advanced (the driver then asks for imports).
    pub fn handle_tick(&mut self, now_ms: u64) -> bool {
        if now_ms < self.next_tick_ms {
            return false;
        }
        self.next_tick_ms = now_ms + RETRY_TICK_MS;
        self.decided += 1;
        self.drive();
        true
    }

    /// Rebuilds the link from its shard's log records, in log order (a
    /// restart): own rounds with exports from `ExportsBuilt` (each holds
    /// its round's state root: the checkpoint is rebuilt from it alone),
    /// certificates
    /// from `CheckpointCertified`, received bundles from `ExportsReceived`.
    /// Signatures and acks are not logged: uncertified rounds are signed
    /// again (the same content, so never a second checkpoint of a round)
    /// and every certified round's pushes start over until acked. Records
    /// that do not decode are skipped (the log's checksums guard them).
    ///
    /// Returns, per cross-shard record among `records` (its position
    /// there), the (source shard, round) it is about (see
    /// [`CrossRecord::about`]).
    pub fn restore<'a>(
        &mut self,
        records: impl IntoIterator<Item = (LogRecordKind, &'a [u8])>,
    ) -> Vec<(usize, (u16, u64))> {
        use pc_codec::{Decode, RoundFinalized};
        let mut certs: Vec<CertifiedCheckpoint> = Vec::new();
        let mut about = Vec::new();
        for (position, (kind, body)) in records.into_iter().enumerate() {
            match kind {
                LogRecordKind::RoundFinalized => {
                    if let Ok(round) = RoundFinalized::from_bytes(body) {
                        self.last_round = Some(round.round);
                    }
                }
                LogRecordKind::ExportsBuilt => {
                    let Ok(built) = BuiltExports::from_bytes(body) else {
                        continue;
                    };
                    about.push((position, (self.shard, built.round)));
                    let checkpoint = Checkpoint {
                        shard: self.shard,
                        round: built.round,
                        state_root: built.state_root,
                        exports_root: built.exports.root(),
                        export_count: built.exports.export_count(),
                        dest_count: built.exports.dest_count(),
                        snapshot_root: [0; 32],
                    };
                    let id = checkpoint.id(&self.network);
                    let mut sigs = BTreeMap::new();
                    if let (Some(seat), Some(signer)) = (self.seat, &self.signer) {
                        sigs.insert(seat, signer.sign_checkpoint(&checkpoint, &id));
                    }
                    self.own.insert(
                        built.round,
                        OwnRound {
                            checkpoint,
                            id,
                            sigs,
                            cert: None,
                            exports: built.exports,
                            sig_sent: None,
                            pushes: BTreeMap::new(),
                        },
                    );
                }
                LogRecordKind::CheckpointCertified => {
                    if let Ok(cert) = CertifiedCheckpoint::from_bytes(body) {
                        about.push((position, (cert.checkpoint.shard, cert.checkpoint.round)));
                        certs.push(cert);
                    }
                }
                LogRecordKind::ExportsReceived => {
                    let Ok(bundle) = ExportsBundle::from_bytes(body) else {
                        continue;
                    };
                    about.push((position, (bundle.source(), bundle.round())));
                    let proofs = leaf_proofs(&bundle.leaves);
                    let leaves = bundle.leaves.len();
                    self.received.insert(
                        (bundle.source(), bundle.round()),
                        Received {
                            bundle,
                            proofs,
                            got_at: 0,
                            included: vec![None; leaves],
                            seen: vec![None; leaves],
                        },
                    );
                }
                LogRecordKind::AnchorAccepted | LogRecordKind::SnapshotWritten => {}
            }
        }
        for cert in certs {
            let round = cert.checkpoint.round;
            if self
                .own
                .get(&round)
                .is_some_and(|own| own.checkpoint == cert.checkpoint && own.cert.is_none())
            {
                // Already logged: adopted without logging it again.
                self.adopt_cert(round, cert);
                self.records.pop_back();
            }
        }
        if let Some(last) = self.last_round {
            self.own = self.own.split_off(&last.saturating_sub(OWN_ROUNDS_KEPT));
        }
        self.counters = CrossCounters::default();
        about
    }

    /// Whether the log records about `source`'s `round` are still needed:
    /// an own round until it is certified and every push acked (the
    /// destinations then hold it durably), a received bundle until its
    /// leaves landed (the link forgets it then).
    pub fn needs(&self, source: u16, round: u64) -> bool {
        if source == self.shard {
            self.own.get(&round).is_some_and(|own| {
                own.cert.is_none() || own.pushes.values().any(|(acked, _)| !acked)
            })
        } else {
            self.received.contains_key(&(source, round))
        }
    }

    /// A finalized round of this shard (every one, in order).
    pub fn on_round(&mut self, outcome: &RoundOutcome) {
        self.decided += 1;
        self.last_round = Some(outcome.round);
        let checkpoint = outcome.checkpoint(self.shard);
        if checkpoint.is_signed() {
            self.records.push_back(CrossRecord {
                kind: LogRecordKind::ExportsBuilt,
                body: BuiltExports {
                    round: outcome.round,
                    state_root: outcome.state_root,
                    exports: outcome.exports.clone(),
                }
                .to_bytes(),
                ack: None,
                about: (self.shard, outcome.round),
            });
            let id = checkpoint.id(&self.network);
            let mut own = OwnRound {
                checkpoint,
                id,
                sigs: BTreeMap::new(),
                cert: None,
                exports: outcome.exports.clone(),
                sig_sent: None,
                pushes: BTreeMap::new(),
            };
            if let (Some(seat), Some(signer)) = (self.seat, &self.signer) {
                own.sigs
                    .insert(seat, signer.sign_checkpoint(&own.checkpoint, &id));
                self.counters.signed += 1;
            }
            self.own.insert(outcome.round, own);
            // Signatures that came before this node finalized the round.
            for (_, sig) in self.early.remove(&outcome.round).unwrap_or_default() {
                let _ = self.take_sig(sig);
            }
            self.try_certify(outcome.round);
        }
        // Bounds: own rounds, early signatures.
        let keep_from = outcome.round.saturating_sub(OWN_ROUNDS_KEPT);
        self.own = self.own.split_off(&keep_from);
        self.early = self.early.split_off(&(outcome.round + 1));
        self.drive();
    }

    /// Sends own signatures, pushes and pulls that are due.
    fn drive(&mut self) {
        let decided = self.decided;
        // Own signatures until certified.
        if let Some(seat) = self.seat {
            let mut sends = Vec::new();
            for own in self.own.values_mut() {
                if own.cert.is_some() {
                    continue;
                }
                if own
                    .sig_sent
                    .is_none_or(|at| decided >= at + SIG_RESEND_ROUNDS)
                {
                    own.sig_sent = Some(decided);
                    sends.push(CheckpointSig {
                        checkpoint: own.checkpoint,
                        seat,
                        signature: own.sigs[&seat],
                    });
                }
            }
            for sig in sends {
                self.transmits.push_back(CrossTransmit {
                    to: CrossTarget::Committee,
                    message: CrossMessage::Sig(sig),
                });
            }
        }
        // Pushes, per (dest, target) in chain order: the lowest unacked
        // round of each pair only.
        let mut blocked: BTreeSet<(u16, u8)> = BTreeSet::new();
        let mut sends = Vec::new();
        for own in self.own.values_mut() {
            if own.cert.is_none() {
                continue;
            }
            let mut due = Vec::new();
            for (pair, (acked, last)) in own.pushes.iter_mut() {
                if *acked || !blocked.insert(*pair) {
                    continue;
                }
                if last.is_none_or(|at| decided >= at + PUSH_RETRY_ROUNDS) {
                    *last = Some(decided);
                    due.push(*pair);
                }
            }
            for (dest, target) in due {
                let bundle = own.bundle(dest).expect("pushes are made from the entries");
                sends.push((
                    CrossTarget::Seat {
                        shard: dest,
                        seat: target,
                    },
                    bundle,
                ));
            }
        }
        for (to, bundle) in sends {
            self.counters.pushed += 1;
            self.transmits.push_back(CrossTransmit {
                to,
                message: CrossMessage::Exports(Box::new(bundle)),
            });
        }
        // Pulls of chain rounds this node knows exist but does not hold.
        let mut wanted: Vec<(u16, u64)> = Vec::new();
        for ((source, _), received) in &self.received {
            let prev = received.bundle.entry.prev_round;
            let landed = self.heads.get(source).is_some_and(|head| prev <= *head);
            if prev != pc_codec::cross::NO_ROUND
                && !landed
                && !self.received.contains_key(&(*source, prev))
            {
                wanted.push((*source, prev));
            }
        }
        for (source, round) in wanted {
            let due = self
                .pulls
                .get(&(source, round))
                .is_none_or(|at| decided >= at + PULL_RETRY_ROUNDS);
            if due {
                self.pulls.insert((source, round), decided);
                let k = self.committees[usize::from(source)].len() as u64;
                let seat = ((round + decided / PULL_RETRY_ROUNDS) % k.max(1)) as u8;
                self.counters.pulls += 1;
                self.transmits.push_back(CrossTransmit {
                    to: CrossTarget::Seat {
                        shard: source,
                        seat,
                    },
                    message: CrossMessage::GetExports {
                        source,
                        round,
                        dest: self.shard,
                    },
                });
            }
        }
        // Pulls of rounds no longer wanted are forgotten.
        let received = &self.received;
        self.pulls.retain(|(source, round), _| {
            !received.contains_key(&(*source, *round)) && received.keys().any(|(s, _)| s == source)
        });
    }

    /// Verifies one signature of `checkpoint` by `seat` through the cache.
    fn verify_sig(
        &mut self,
        shard: u16,
        id: &Hash32,
        seat: u8,
        signature: &SignatureBytes,
    ) -> bool {
        let Some(key) = self
            .committees
            .get(usize::from(shard))
            .and_then(|c| c.get(usize::from(seat)))
        else {
            return false;
        };
        let cache_key = derive(
            pc_codec::ids::context::CHECKPOINT,
            &[id, &[seat], signature],
        );
        if self.sig_cache.contains(&cache_key) {
            return true;
        }
        if !self.verifier.verify(key, id, signature) {
            return false;
        }
        self.remember(cache_key);
        true
    }

    fn remember(&mut self, cache_key: Hash32) {
        if self.sig_cache.insert(cache_key) {
            self.sig_cache_order.push_back(cache_key);
            if self.sig_cache_order.len() > SIG_CACHE_ENTRIES {
                if let Some(old) = self.sig_cache_order.pop_front() {
                    self.sig_cache.remove(&old);
                }
            }
        }
    }

    /// Verifies a certificate of `shard` through the signature cache.
    fn verify_cert(&mut self, cert: &CertifiedCheckpoint) -> Result<(), CrossViolation> {
        let shard = cert.checkpoint.shard;
        let Some(committee) = self.committees.get(usize::from(shard)) else {
            return Err(CrossViolation::BadBundle(format!(
                "certificate of unknown shard {shard}"
            )));
        };
        if committee.is_empty() {
            return Err(CrossViolation::BadBundle(format!(
                "shard {shard} has no committee"
            )));
        }
        cert.check_shape(committee.len())
            .map_err(|e| CrossViolation::BadBundle(e.to_string()))?;
        let id = cert.checkpoint.id(&self.network);
        let seats: Vec<u8> = cert.signers().collect();
        for (seat, signature) in seats.iter().zip(&cert.signatures) {
            if !self.verify_sig(shard, &id, *seat, signature) {
                return Err(CrossViolation::BadBundle(format!(
                    "certificate signature of seat {seat} does not verify"
                )));
            }
        }
        Ok(())
    }

    /// A peer's checkpoint signature (`from` for the certificate answer).
    pub fn on_sig(&mut self, from: CrossTarget, sig: CheckpointSig) -> Result<(), CrossViolation> {
        let result = self.on_sig_inner(from, sig);
        if result.is_err() {
            self.counters.violations += 1;
        }
        result
    }

    fn on_sig_inner(
        &mut self,
        from: CrossTarget,
        sig: CheckpointSig,
    ) -> Result<(), CrossViolation> {
        if sig.checkpoint.shard != self.shard {
            return Err(CrossViolation::BadSig("checkpoint of another shard"));
        }
        if usize::from(sig.seat) >= self.k {
            return Err(CrossViolation::BadSig("seat past the committee"));
        }
        let round = sig.checkpoint.round;
        let last = self.last_round;
        if last.is_none_or(|last| round > last) {
            // Ahead of this node: kept (one per seat) within the window,
            // once its signature verifies (a forgery is the sender's
            // violation now, not a silent drop later).
            let ahead = round.saturating_sub(last.map_or(0, |l| l + 1));
            if ahead < EARLY_ROUNDS_AHEAD {
                let id = sig.checkpoint.id(&self.network);
                if !self.verify_sig(self.shard, &id, sig.seat, &sig.signature) {
                    return Err(CrossViolation::BadSig("signature does not verify"));
                }
                let held = self
                    .early
                    .entry(round)
                    .or_default()
                    .entry(sig.seat)
                    .or_insert(sig);
                if held.checkpoint != sig.checkpoint {
                    // Two valid signatures of one seat over two
                    // checkpoints of one round: a fork (kind 5).
                    let a = *held;
                    self.hold_offence(Offence::CheckpointFork { a, b: sig });
                    return Err(CrossViolation::ConflictingSig {
                        seat: sig.seat,
                        round,
                    });
                }
            }
            return Ok(());
        }
        match self.own.get(&round) {
            Some(own) if own.cert.is_some() => {
                let cert = own.cert.clone().expect("checked");
                if own.checkpoint != sig.checkpoint {
                    return Err(self.conflicting_sig(sig));
                }
                self.transmits.push_back(CrossTransmit {
                    to: from,
                    message: CrossMessage::Cert(cert),
                });
                Ok(())
            }
            Some(_) => self.take_sig(sig),
            // A round without exports or long gone: nothing to sign.
            None => Ok(()),
        }
    }

    /// Adds a signature of a round this node finalized.
    fn take_sig(&mut self, sig: CheckpointSig) -> Result<(), CrossViolation> {
        let round = sig.checkpoint.round;
        let Some(own) = self.own.get(&round) else {
            return Ok(());
        };
        if own.checkpoint != sig.checkpoint {
            return Err(self.conflicting_sig(sig));
        }
        if own.sigs.contains_key(&sig.seat) || own.cert.is_some() {
            return Ok(());
        }
        let id = own.id;
        if !self.verify_sig(self.shard, &id, sig.seat, &sig.signature) {
            return Err(CrossViolation::BadSig("signature does not verify"));
        }
        self.own
            .get_mut(&round)
            .expect("checked")
            .sigs
            .insert(sig.seat, sig.signature);
        self.try_certify(round);
        Ok(())
    }

    /// Assembles the certificate of `round` once `q` seats signed.
    fn try_certify(&mut self, round: u64) {
        let q = self.q();
        let Some(own) = self.own.get(&round) else {
            return;
        };
        if own.cert.is_some() || own.sigs.len() < q {
            return;
        }
        let mut mask = 0u64;
        let mut signatures = Vec::with_capacity(own.sigs.len());
        for (seat, signature) in &own.sigs {
            mask |= 1 << seat;
            signatures.push(*signature);
        }
        let cert = CertifiedCheckpoint {
            checkpoint: own.checkpoint,
            mask,
            signatures,
        };
        self.adopt_cert(round, cert);
    }

    fn adopt_cert(&mut self, round: u64, cert: CertifiedCheckpoint) {
        let seat = self.seat;
        let f = self.f() as u64;
        let Some(own) = self.own.get_mut(&round) else {
            return;
        };
        self.records.push_back(CrossRecord {
            kind: LogRecordKind::CheckpointCertified,
            body: cert.to_bytes(),
            ack: None,
            about: (self.shard, round),
        });
        own.cert = Some(cert);
        self.counters.certified += 1;
        if let Some(seat) = seat {
            for (entry, _) in &own.exports.entries {
                let dest_k = self.committees[usize::from(entry.dest)].len() as u64;
                for t in 0..=f.min(dest_k.saturating_sub(1)) {
                    let target = ((u64::from(seat) + t) % dest_k.max(1)) as u8;
                    own.pushes.insert((entry.dest, target), (false, None));
                }
            }
        }
    }

    /// A peer's certificate of one of this shard's rounds.
    pub fn on_cert(&mut self, cert: CertifiedCheckpoint) -> Result<(), CrossViolation> {
        let round = cert.checkpoint.round;
        if cert.checkpoint.shard != self.shard {
            self.counters.violations += 1;
            return Err(CrossViolation::BadBundle(
                "certificate of another shard".into(),
            ));
        }
        if self
            .own
            .get(&round)
            .is_some_and(|own| own.cert.as_ref() == Some(&cert))
        {
            return Ok(());
        }
        // Verified first: a forged certificate is a violation whether or
        // not this node holds the round.
        if let Err(e) = self.verify_cert(&cert) {
            self.counters.violations += 1;
            return Err(e);
        }
        let Some(own) = self.own.get(&round) else {
            return Ok(());
        };
        if own.cert.is_some() {
            return Ok(());
        }
        if own.checkpoint != cert.checkpoint {
            self.counters.violations += 1;
            return Err(CrossViolation::BadBundle(format!(
                "certificate of another checkpoint of round {round}"
            )));
        }
        self.adopt_cert(round, cert);
        // Pushes of a fresh certificate go out at once, not a round later.
        self.drive();
        Ok(())
    }

    /// A push acknowledged by `target` of `dest`.
    pub fn on_ack(&mut self, from_seat: u8, source: u16, round: u64, dest: u16) {
        if source != self.shard {
            return;
        }
        if let Some(push) = self
            .own
            .get_mut(&round)
            .and_then(|own| own.pushes.get_mut(&(dest, from_seat)))
        {
            if !push.0 {
                push.0 = true;
                self.counters.acked += 1;
            }
        }
    }

    /// A pull of one bundle of this shard's round.
    pub fn on_get_exports(&mut self, from: CrossTarget, source: u16, round: u64, dest: u16) {
        if source != self.shard {
            return;
        }
        let Some(bundle) = self.own.get(&round).and_then(|own| own.bundle(dest)) else {
            return;
        };
        self.transmits.push_back(CrossTransmit {
            to: from,
            message: CrossMessage::Exports(Box::new(bundle)),
        });
    }

    /// A bundle for this shard from `from`; `state` is the finalized state
    /// (what already landed is acked unlogged).
    pub fn on_exports(
        &mut self,
        from: CrossTarget,
        bundle: ExportsBundle,
        state: &ShardState,
    ) -> Result<(), CrossViolation> {
        let result = self.on_exports_inner(from, bundle, state);
        if result.is_err() {
            self.counters.violations += 1;
        }
        result
    }

    fn on_exports_inner(
        &mut self,
        from: CrossTarget,
        bundle: ExportsBundle,
        state: &ShardState,
    ) -> Result<(), CrossViolation> {
        let (source, round, dest) = (bundle.source(), bundle.round(), bundle.dest());
        if dest != self.shard || source == self.shard || source >= self.shards {
            return Err(CrossViolation::BadBundle(format!(
                "bundle from shard {source} to {dest} at shard {}",
                self.shard
            )));
        }
        let shards = self.shards;
        if bundle
            .leaves
            .iter()
            .any(|leaf| shard_of(&leaf.owner, shards) != dest || leaf.amount == 0)
        {
            return Err(CrossViolation::BadBundle(
                "a leaf is not for this shard".into(),
            ));
        }
        bundle
            .check_structure()
            .map_err(|e| CrossViolation::BadBundle(e.to_string()))?;
        self.verify_cert(&bundle.cert)?;
        let ack = CrossTransmit {
            to: from,
            message: CrossMessage::Ack {
                source,
                round,
                dest,
            },
        };
        let landed = state.cross().landed(source, round, 0) == Some(true)
            && state
                .cross()
                .source(source)
                .is_some_and(|s| s.head.is_some_and(|head| round <= head));
        let frozen = state.cross().source(source).is_some_and(|s| s.frozen);
        if landed || frozen || self.received.contains_key(&(source, round)) {
            self.counters.received_again += 1;
            self.transmits.push_back(ack);
            return Ok(());
        }
        let held = self
            .received
            .range((source, 0)..=(source, u64::MAX))
            .count();
        if held >= RECEIVED_PER_SOURCE {
            // Not acked: the source retries once there is room.
            return Ok(());
        }
        self.records.push_back(CrossRecord {
            kind: LogRecordKind::ExportsReceived,
            body: bundle.to_bytes(),
            ack: Some(ack),
            about: (source, round),
        });
        self.counters.received += 1;
        // Every chunk's carrier gets the bundle (a source seat pushes to
        // f+1 destination seats only).
        let chunks = bundle.leaves.len().div_ceil(CARRY_CHUNK_LEAVES);
        let carriers: BTreeSet<u8> = (0..chunks.min(self.k))
            .map(|chunk| self.carrier(source, round, chunk as u64))
            .collect();
        for carrier in carriers {
            if self.seat != Some(carrier) {
                self.transmits.push_back(CrossTransmit {
                    to: CrossTarget::Seat {
                        shard: self.shard,
                        seat: carrier,
                    },
                    message: CrossMessage::Exports(Box::new(bundle.clone())),
                });
            }
        }
        let proofs = leaf_proofs(&bundle.leaves);
        let leaves = bundle.leaves.len();
        self.received.insert(
            (source, round),
            Received {
                bundle,
                proofs,
                got_at: self.decided,
                included: vec![None; leaves],
                seen: vec![None; leaves],
            },
        );
        Ok(())
    }

    /// A message of another node's link, from `from`, to the handler of
    /// its kind (`state` is this seat's finalized state). An ack counts
    /// only from a seat.
    pub fn on_message(
        &mut self,
        from: CrossTarget,
        message: CrossMessage,
        state: &ShardState,
    ) -> Result<(), CrossViolation> {
        match message {
            CrossMessage::Sig(sig) => self.on_sig(from, sig),
            CrossMessage::Cert(cert) => self.on_cert(cert),
            CrossMessage::Exports(bundle) => self.on_exports(from, *bundle, state),
            CrossMessage::Ack {
                source,
                round,
                dest,
            } => {
                if let CrossTarget::Seat { seat, .. } = from {
                    self.on_ack(seat, source, round, dest);
                }
                Ok(())
            }
            CrossMessage::GetExports {
                source,
                round,
                dest,
            } => {
                self.on_get_exports(from, source, round, dest);
                Ok(())
            }
        }
    }

    /// The carrier seat of chunk `chunk` of `(source, round)`:
    /// `(source + round + chunk) mod k`, without overflow.
    fn carrier(&self, source: u16, round: u64, chunk: u64) -> u8 {
        let k = self.k as u64;
        ((u64::from(source) % k + round % k + chunk % k) % k) as u8
    }

    /// Imports other seats' anchors carry into this seat's DAG (from
    /// [`crate::machine::Shard::take_seen_imports`]). A leaf that an
    /// earlier turn's seat carries (its rank behind the chunk's carrier
    /// below this seat's, so a carrier never waits) and that is the leaf
    /// of the bundle this seat holds is not included by this seat for
    /// [`REINCLUDE_ROUNDS`] decided rounds, once: a seat that carries
    /// leaves with broken proofs (refused when applied) delays each leaf
    /// at most once.
    pub fn on_seen_imports(&mut self, seen: &[SeenImport]) {
        let Some(seat) = self.seat else {
            return;
        };
        let k = self.k as u64;
        for import in seen {
            let carrier = u64::from(self.carrier(
                import.source,
                import.round,
                import.index / CARRY_CHUNK_LEAVES as u64,
            ));
            let rank = |seat: u8| (u64::from(seat) % k + k - carrier) % k;
            if rank(import.creator) >= rank(seat) {
                continue;
            }
            let decided = self.decided;
            let Some(received) = self.received.get_mut(&(import.source, import.round)) else {
                continue;
            };
            let Ok(index) = usize::try_from(import.index) else {
                continue;
            };
            let same_leaf = received
                .bundle
                .leaves
                .get(index)
                .is_some_and(|leaf| leaf.tx_id == import.tx_id);
            if let (true, Some(at @ None)) = (same_leaf, received.seen.get_mut(index)) {
                *at = Some(decided);
            }
        }
    }

    /// The imports this seat should include now, oldest chain round first,
    /// given its finalized `state`; drops bundles whose leaves all landed.
    pub fn take_imports(&mut self, state: &ShardState) -> Vec<MicroEvent> {
        let cross = state.cross();
        for source in 0..self.shards {
            if let Some(head) = cross.source(source).and_then(|s| s.head) {
                self.heads.insert(source, head);
            }
        }
        // Forget what landed (or can no longer land).
        self.received.retain(|(source, round), _| {
            let s = cross.source(*source);
            !(s.is_some_and(|s| s.frozen || s.head.is_some_and(|head| *round <= head)))
        });
        let Some(seat) = self.seat else {
            return Vec::new();
        };
        let decided = self.decided;
        let k = self.k as u64;
        let mut out = Vec::new();
        for ((source, round), received) in self.received.iter_mut() {
            let since = decided.saturating_sub(received.got_at);
            let mut registered = cross.is_registered(*source, *round);
            for index in 0..received.bundle.leaves.len() {
                if out.len() >= IMPORTS_PER_ROUND {
                    break;
                }
                let chunk = (index / CARRY_CHUNK_LEAVES) as u64;
                let carrier = {
                    let (source, round) = (u64::from(*source), *round);
                    (source % k + round % k + chunk % k) % k
                };
                let rank = (u64::from(seat) % k + k - carrier) % k;
                if since < rank * BACKUP_DELAY_ROUNDS {
                    continue;
                }
                if cross.landed(*source, *round, index as u64) == Some(true) {
                    continue;
                }
                if received.seen[index].is_some_and(|at| decided < at + REINCLUDE_ROUNDS) {
                    // Another seat's unfinalized anchor carries it.
                    continue;
                }
                if received.included[index].is_some_and(|at| decided < at + REINCLUDE_ROUNDS) {
                    // In an own anchor not finalized yet (or just now):
                    // it registers the round for the leaves after it.
                    registered = true;
                    continue;
                }
                received.included[index] = Some(decided);
                let import: Import =
                    received
                        .bundle
                        .import(index, received.proofs[index].clone(), !registered);
                registered = true;
                out.push(MicroEvent::Import(Box::new(import)));
            }
        }
        self.counters.imports_offered += out.len() as u64;
        out
    }
}
