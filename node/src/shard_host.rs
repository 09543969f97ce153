//! One shard of a core as the node core holds it: the sans-IO
//! `pc_shard::Shard` machine, the [`ShardStore`] its records go to, an
//! index of the anchors in that store (to serve peers' `Get`s and
//! `GetRange`s), counters and finality histograms. Time comes in as
//! microseconds since the driver's start (`now_us`); durability comes in
//! as [`ShardHost::handle_durable`]. The bench and replay run it as an
//! observer through the engine's `ShardDriver`; the node core as a seat.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use crate::snapshots::{SnapshotMark, SnapshotPolicy, Snapshots};
use hdrhistogram::Histogram;
use pc_codec::genesis::Genesis;
use pc_codec::wire::{Decode, Reader};
use pc_codec::{
    BatchEntry, BatchWork, Bip340, Hash32, LogRecordKind, MicroEvent, PublicKeyBytes,
    SignatureBytes, SignatureVerifier, SignedAnchorHeader,
};
use pc_shard::crosslink::{
    CrossCounters, CrossLink, CrossMessage, CrossTarget, CrossTransmit, CrossViolation,
};
use pc_shard::machine::{
    AnchorRejected, AnchorStatus, FinalizedReport, PeerId, RecordSource, Role, Shard, ShardLimits,
    SubmitRejected, Transmit,
};
use pc_shard::snapshot::ShardImage;
use pc_shard::state::Outcome;
use pc_shard::validate::ShardContext;

use crate::cache::{CacheCaps, CachedStore, Stopwatch};
use crate::capacity::{Admission, Capacity, Finalized, Reading};
use crate::metrics::{SecondsHistogram, ShardMetrics, LATENCY_BUCKETS_S};
use crate::store::ShardStore;
use crate::NodeError;

/// The product's verifier, counting every signature it checks and what its
/// batches did. With the environment variable `PHANTOM_SINGLE_VERIFY` set
/// (any value) when the shard starts, batches are verified one signature at
/// a time: the same verdicts, for comparing the two (README).
#[derive(Clone)]
pub struct CountingVerifier {
    batch: bool,
    count: Rc<Cell<u64>>,
    single: Rc<Cell<u64>>,
    batches: Rc<Cell<BatchWork>>,
    /// Times every call, when the driver handed in a clock.
    stopwatch: Rc<RefCell<Option<Stopwatch>>>,
    nanos: Rc<Cell<u64>>,
    /// Signatures that held, checked one at a time or in batches of at
    /// most [`REMEMBERED_BATCH`], remembered.
    recent: Rc<RefCell<RecentlyVerified>>,
}

/// Signatures that held, checked one at a time or in batches of at most
/// [`REMEMBERED_BATCH`]: digests of (key, message, signature), the last
/// [`RECENTLY_VERIFIED`] of them (first in, first out; anchor headers and
/// small payloads pass through too, so a flood of them only costs a
/// certificate its second check, never a wrong verdict). A
/// certificate's q signatures come again in every chunk of its round's
/// imports (each chunk's first import carries it) and in the bundles the
/// link checks; a signature that held once holds again (BIP-340 is
/// deterministic), so it is checked once.
#[derive(Default)]
struct RecentlyVerified {
    set: std::collections::HashSet<Hash32>,
    order: std::collections::VecDeque<Hash32>,
}

/// Batches of at most this many signatures go through
/// [`RecentlyVerified`] (a certificate has at most 43 at k = 64); larger
/// ones are payloads, never seen twice.
pub const REMEMBERED_BATCH: usize = 64;

/// Signatures [`RecentlyVerified`] remembers (some 40 rounds of anchor
/// headers at k = 21 and 10 anchors per seat and round).
pub const RECENTLY_VERIFIED: usize = 8_192;

impl RecentlyVerified {
    fn digest(key: &PublicKeyBytes, message: &[u8], signature: &SignatureBytes) -> Hash32 {
        let mut hasher = blake3::Hasher::new();
        hasher.update(key);
        hasher.update(&(message.len() as u64).to_le_bytes());
        hasher.update(message);
        hasher.update(signature);
        *hasher.finalize().as_bytes()
    }

    fn remember(&mut self, digest: Hash32) {
        if !self.set.insert(digest) {
            return;
        }
        self.order.push_back(digest);
        if self.order.len() > RECENTLY_VERIFIED {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

impl std::fmt::Debug for CountingVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingVerifier")
            .field("batch", &self.batch)
            .field("count", &self.count.get())
            .field("nanos", &self.nanos.get())
            .finish_non_exhaustive()
    }
}

impl Default for CountingVerifier {
    fn default() -> CountingVerifier {
        CountingVerifier {
            batch: std::env::var_os("PHANTOM_SINGLE_VERIFY").is_none(),
            count: Rc::default(),
            single: Rc::default(),
            batches: Rc::default(),
            stopwatch: Rc::default(),
            nanos: Rc::default(),
            recent: Rc::default(),
        }
    }
}

impl CountingVerifier {
    /// Signatures checked so far, singly or in batches.
    pub fn count(&self) -> u64 {
        self.count.get()
    }

    /// Signatures checked one at a time so far: single calls, and inside
    /// batch calls the small ones, bisection leaves and fallbacks.
    pub fn single_count(&self) -> u64 {
        self.single.get()
    }

    /// The work of every batch call so far.
    pub fn batch_work(&self) -> BatchWork {
        self.batches.get()
    }

    /// Nanoseconds spent verifying so far (0 without a stopwatch).
    pub fn nanos(&self) -> u64 {
        self.nanos.get()
    }

    /// Times `f` into the verify time, if a stopwatch is set.
    fn timed<R>(&self, f: impl FnOnce() -> R) -> R {
        let stopwatch = self.stopwatch.borrow();
        let Some(clock) = stopwatch.as_ref() else {
            return f();
        };
        let started = clock();
        let result = f();
        self.nanos
            .set(self.nanos.get() + clock().saturating_sub(started));
        result
    }
}

impl SignatureVerifier for CountingVerifier {
    fn verify(&self, key: &PublicKeyBytes, message: &[u8], signature: &SignatureBytes) -> bool {
        let digest = RecentlyVerified::digest(key, message, signature);
        if self.recent.borrow().set.contains(&digest) {
            return true;
        }
        self.count.set(self.count.get() + 1);
        self.single.set(self.single.get() + 1);
        let held = self.timed(|| Bip340.verify(key, message, signature));
        if held {
            self.recent.borrow_mut().remember(digest);
        }
        held
    }

    fn verify_batch(&self, entries: &[BatchEntry<'_>], verdicts: &mut [bool]) -> BatchWork {
        if entries.len() <= REMEMBERED_BATCH {
            return self.verify_small_batch(entries, verdicts);
        }
        self.verify_batch_counted(entries, verdicts)
    }
}

impl CountingVerifier {
    /// A batch of at most [`REMEMBERED_BATCH`] signatures (a certificate's,
    /// or a payload of few transfers): the signatures that held before are
    /// not checked again, the others are and are remembered if they hold.
    fn verify_small_batch(&self, entries: &[BatchEntry<'_>], verdicts: &mut [bool]) -> BatchWork {
        let digests: Vec<Hash32> = entries
            .iter()
            .map(|e| RecentlyVerified::digest(e.key, e.message, e.signature))
            .collect();
        let fresh: Vec<usize> = {
            let recent = self.recent.borrow();
            (0..entries.len())
                .filter(|&index| !recent.set.contains(&digests[index]))
                .collect()
        };
        for (index, verdict) in verdicts.iter_mut().enumerate() {
            *verdict = !fresh.contains(&index);
        }
        if fresh.is_empty() {
            return BatchWork::default();
        }
        let checked: Vec<BatchEntry<'_>> = fresh.iter().map(|&index| entries[index]).collect();
        let mut held = vec![false; checked.len()];
        let work = self.verify_batch_counted(&checked, &mut held);
        let mut recent = self.recent.borrow_mut();
        for (&index, held) in fresh.iter().zip(held) {
            verdicts[index] = held;
            if held {
                recent.remember(digests[index]);
            }
        }
        work
    }

    fn verify_batch_counted(&self, entries: &[BatchEntry<'_>], verdicts: &mut [bool]) -> BatchWork {
        let work = self.timed(|| {
            if self.batch {
                Bip340.verify_batch(entries, verdicts)
            } else {
                pc_codec::batch::verify_each(&Bip340, entries, verdicts)
            }
        });
        self.count.set(self.count.get() + entries.len() as u64);
        self.single.set(self.single.get() + work.single_verifies);
        let mut total = self.batches.get();
        total.add(&work);
        self.batches.set(total);
        work
    }
}

/// A submitted event's id and what the machine answered.
pub type SubmitOutcome = (Hash32, Result<(), SubmitRejected>);

/// The product's shard machine: BIP-340 verification, BIP-340 signing when
/// it holds a seat.
pub type ProductShard = Shard<CountingVerifier, pc_shard::machine::SharedSigner>;

/// A seat's cross-shard link (DESIGN §5.2): BIP-340, the seat's key.
pub type ProductLink = CrossLink<CountingVerifier, pc_shard::machine::SharedSigner>;

/// What a shard host counted of its cross-shard link's imports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    /// Imports the link handed to the machine that it queued.
    pub queued: u64,
    /// Imports the machine refused to queue (mempool full, invalid).
    pub refused: u64,
}

/// Most anchors the index of a node's shard names (40 bytes each, some
/// 10 MiB): far more than the non-ancient window of a k = 64 committee, so
/// every anchor a peer may still pull is served; the oldest are forgotten
/// first.
pub const MAX_INDEXED_ANCHORS: usize = 262_144;

/// Most client submissions whose finality latency is tracked (the
/// machine's mempool bound, twice): past it the tracked ones are all
/// forgotten (their latencies go unrecorded), so events that never
/// finalize cannot hold memory.
pub const MAX_TRACKED_SUBMISSIONS: usize = 131_072;
/// A finality latency counts towards the base latency only while the
/// events queued in front of the DAG (mempool, pending anchors) are at
/// most this fraction (1/n) of the backlog's bound.
pub const BASE_SAMPLE_BACKLOG_SHARE: u64 = 4;
/// An accepted client event not finalized after this long stops being
/// tracked (counted in [`ShardCounters::expired_submissions`]), so one
/// that can never finalize does not hold admission shut for good.
pub const SUBMISSION_HORIZON_US: u64 = 30_000_000;

/// Anchor id → store record of the anchors a shard stored, and the same
/// records by birth round (for `GetRange`), bounded by
/// [`MAX_INDEXED_ANCHORS`] (oldest first out).
#[derive(Debug, Default)]
struct AnchorIndex {
    records: HashMap<Hash32, (u64, u64)>,
    by_round: BTreeSet<(u64, u64)>,
    order: VecDeque<Hash32>,
}

impl AnchorIndex {
    /// Notes record `seq` if its body is an anchor (a body that does not
    /// decode is never the machine's: it wrote it).
    fn insert(&mut self, seq: u64, body: &[u8]) {
        let Ok(header) = SignedAnchorHeader::decode(&mut Reader::new(body)) else {
            return;
        };
        let id = header.anchor_id();
        let round = header.header.birth_round;
        if self.records.insert(id, (seq, round)).is_none() {
            self.order.push_back(id);
            self.by_round.insert((round, seq));
        }
        while self.order.len() > MAX_INDEXED_ANCHORS {
            if let Some(old) = self.order.pop_front() {
                if let Some((seq, round)) = self.records.remove(&old) {
                    self.by_round.remove(&(round, seq));
                }
            }
        }
    }
}

impl AnchorIndex {
    /// Drops the entries of records below `first_seq` (pruned); the highest
    /// birth round among them.
    fn prune_below(&mut self, first_seq: u64) -> Option<u64> {
        let mut highest = None;
        while let Some(id) = self.order.front() {
            let Some(&(seq, round)) = self.records.get(id) else {
                self.order.pop_front();
                continue;
            };
            if seq >= first_seq {
                break;
            }
            self.records.remove(id);
            self.by_round.remove(&(round, seq));
            self.order.pop_front();
            highest = Some(highest.map_or(round, |h: u64| h.max(round)));
        }
        highest
    }
}

/// Where a test may crash a node on purpose (DESIGN §10 injected points).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashSite {
    /// An own anchor was signed; its record is not appended yet.
    AfterSigning,
    /// An own anchor's record was appended (not yet synced, not sent).
    AfterPersisting,
    /// An own anchor is durable and about to be handed to the network.
    BeforeSending,
}

/// A crash-injection hook: called at every [`CrashSite`] with the shard.
pub type CrashHook = Box<dyn FnMut(CrashSite, u16)>;

/// Hears every finalized round of a shard (the simulator's checks).
pub type FinalizedHook = Box<dyn FnMut(&FinalizedReport, u64)>;

/// What a shard counted, as reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardCounters {
    /// Anchors taken in since start (inserted or pending).
    pub anchors: u64,
    /// Anchors restored from the log at start-up.
    pub restored_anchors: u64,
    /// Rounds finalized since start.
    pub rounds: u64,
    /// Micro-events finalized since start.
    pub finalized_events: u64,
    /// Finalized micro-events that applied (moved value).
    pub applied_events: u64,
    /// Of them, imports (value carried in from another shard).
    pub applied_imports: u64,
    /// Claims applied since start.
    pub claims: u64,
    /// Units they paid out.
    pub claimed_units: u64,
    /// BIP-340 signatures checked (singly or in batches).
    pub signature_verifies: u64,
    /// Batches verified with a multi-scalar multiplication.
    pub signature_batches: u64,
    /// Signatures in those batches.
    pub batched_signatures: u64,
    /// Signatures verified one at a time (single calls, small batches,
    /// bisection leaves and fallbacks).
    pub single_signature_verifies: u64,
    /// Of them, those handed in as a batch (payloads, client polls) but
    /// verified singly: batches too small to pay, bisection, fallbacks.
    pub batch_single_verifies: u64,
    /// Lookups of the parsed-key cache of this shard's core (shared by the
    /// shards of one core) that found the key lifted already.
    pub key_cache_hits: u64,
    /// Lookups that lifted the key (or found it invalid).
    pub key_cache_misses: u64,
    /// Log bytes appended (frames).
    pub log_bytes: u64,
    /// Highest log seq known durable, if any.
    pub durable_seq: Option<u64>,
    /// Log records in the log.
    pub log_records: u64,
    /// Anchors refused by the machine.
    pub refused_anchors: u64,
    /// Last finalized round, if any.
    pub last_round: Option<u64>,
    /// Anchors finalized since start.
    pub finalized_anchors: u64,
    /// Finalized transfers apply refused for an unknown or spent input.
    pub rejected_double_spends: u64,
    /// Records appended since start.
    pub persist_ok: u64,
    /// Appends that failed.
    pub persist_failed: u64,
    /// Client micro-events this host accepted (taken into the mempool).
    pub accepted_submissions: u64,
    /// Of them, finalized (applied or rejected by apply).
    pub finalized_submissions: u64,
    /// Of them, no longer tracked after [`SUBMISSION_HORIZON_US`].
    pub expired_submissions: u64,
}

/// A shard's final report.
#[derive(Debug, Clone)]
pub struct ShardReport {
    /// The shard.
    pub shard: u16,
    /// The core it ran on.
    pub core: usize,
    /// Counters.
    pub counters: ShardCounters,
    /// From the first anchor taken in to the last one processed.
    pub busy: Duration,
    /// Finality latency of finalized anchors, µs.
    pub finality_us: Histogram<u64>,
    /// Finality in rounds (finalized round − birth round).
    pub finality_rounds: Histogram<u64>,
    /// Client submission to finality of its micro-event, µs (seats only).
    pub event_finality_us: Histogram<u64>,
    /// State root after the last finalized round.
    pub state_root: Hash32,
}

/// The machine's record source: reads appended records back from the
/// shard's store.
struct StoreSource(Rc<CachedStore>);

impl RecordSource for StoreSource {
    fn record_body(&self, token: u64) -> Option<Vec<u8>> {
        self.0.anchor(token)
    }
}

/// What a restore found, for the `shard_restored` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Records in the store.
    pub records: u64,
    /// Of them, accepted anchors.
    pub anchors: u64,
    /// Records replayed (after the snapshot, if one was loaded).
    pub replayed: u64,
}

/// One shard of a core.
pub struct ShardHost {
    shard: u16,
    core: usize,
    machine: ProductShard,
    verifier: CountingVerifier,
    /// Where records are appended; never borrowed across a machine call.
    store: Rc<RefCell<dyn ShardStore>>,
    /// The same store behind the shard's header/payload cache: every read
    /// (serving peers, the machine's record source reading spilled
    /// payloads back) goes through it.
    cached: Rc<CachedStore>,
    /// Client micro-events: submission to finality, seconds buckets.
    submit_to_final: SecondsHistogram,
    /// Anchors: arrival to finality, seconds buckets.
    arrival_to_final: SecondsHistogram,
    arrivals: HashMap<Hash32, (u64, u64)>,
    counters: ShardCounters,
    first_input_us: Option<u64>,
    last_input_us: Option<u64>,
    finality_us: Histogram<u64>,
    finality_rounds: Histogram<u64>,
    /// Anchors in the store by id, when the host serves peers.
    index: Option<AnchorIndex>,
    /// Client micro-events taken in and not yet finalized, by id.
    submitted: HashMap<Hash32, u64>,
    /// The same by (time taken, id): the oldest first.
    submitted_by_age: BTreeSet<(u64, Hash32)>,
    /// The shard's capacity signal (admission control).
    capacity: Capacity,
    /// Committee seats of the shard.
    seats: usize,
    /// Its supermajority `q`.
    quorum: usize,
    /// When the last round was decided here (`now_us`), if one was.
    last_decided_us: Option<u64>,
    event_finality_us: Histogram<u64>,
    /// The same since the last [`ShardHost::take_interval_event_finality`].
    interval_event_finality_us: Histogram<u64>,
    /// The seat this host signs for, if any.
    own_seat: Option<u8>,
    crash_hook: Option<CrashHook>,
    finalized_hook: Option<FinalizedHook>,
    /// Local snapshots and the prune bound.
    snapshots: Snapshots,
    /// Birth rounds up to this lost anchors to pruning: a `GetRange` from
    /// them is answered `Pruned`.
    pruned_through_round: Option<u64>,
    /// The cross-shard link (seats only).
    cross: Option<ProductLink>,
    /// Acks of received bundles, each sent once its record (token) is
    /// durable.
    cross_acks: VecDeque<(u64, CrossTransmit)>,
    /// Cross-shard messages to send.
    cross_out: VecDeque<CrossTransmit>,
    imports: ImportCounts,
    /// Accepted client transfers paying another shard: (tx id, when taken,
    /// µs), for the core's cross-shard latency (taken by
    /// [`ShardHost::take_cross_latency_inputs`]).
    cross_submitted: Vec<(Hash32, u64)>,
    /// Imports that landed here: (source shard, tx id, when final, µs).
    landed_imports: Vec<(u16, Hash32, u64)>,
    /// The link's log records by token, with the (source, round) each is
    /// about: pruning keeps the oldest one the link still needs.
    cross_tokens: std::collections::BTreeMap<u64, (u16, u64)>,
    /// Entries left after the last sweep of `cross_tokens`.
    cross_tokens_swept: usize,
    /// Received bundles whose record is not durable yet, by (source,
    /// round): an ack of one (a repeated push) waits for that record.
    received_tokens: HashMap<(u16, u64), u64>,
}

/// Accepted transfers paying another shard (tx id, taken at µs) and
/// imports that landed (source, tx id, final at µs).
pub type LatencyInputs = (Vec<(Hash32, u64)>, Vec<(u16, Hash32, u64)>);

/// Most entries each of a host's cross-shard latency inputs holds between
/// two takes (the node core takes them after every input).
pub const MAX_LATENCY_INPUTS: usize = 65_536;

fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

impl ShardHost {
    /// A machine of `role` for `shard`, restored from `records` (the whole
    /// store, in order; what `store` holds). A seat's host also indexes the
    /// store's anchors so that it can serve peers.
    ///
    /// With a snapshot, the machine starts from its image and replays the
    /// records from its `next_token` on; `records` start at record
    /// `records_from` (a seat's host indexes every record it is given:
    /// give it the store's whole content; an observer needs only the
    /// records from the snapshot's `next_token`). `log_first_seq` is the
    /// oldest record the store still holds after pruning; without a
    /// snapshot both must be 0.
    #[allow(clippy::too_many_arguments)]
    pub fn restore<'a>(
        genesis: &Genesis,
        shard: u16,
        core: usize,
        role: Role<pc_shard::machine::SharedSigner>,
        limits: ShardLimits,
        store: Rc<RefCell<dyn ShardStore>>,
        snapshot: Option<ShardImage>,
        (log_first_seq, records_from): (u64, u64),
        records: impl IntoIterator<Item = (LogRecordKind, &'a [u8])>,
    ) -> Result<(ShardHost, Restored), NodeError> {
        let verifier = CountingVerifier::default();
        let own_seat = match &role {
            Role::Seat { seat, .. } => Some(*seat),
            Role::Observer => None,
        };
        let cross = match (&role, ShardContext::from_genesis(genesis, shard)) {
            (Role::Seat { seat, signer }, Some(context)) => Some(CrossLink::new(
                context.network,
                shard,
                context.committees,
                Some((*seat, signer.clone())),
                verifier.clone(),
            )),
            _ => None,
        };
        let mut machine = Shard::new(genesis, shard, role, verifier.clone(), limits);
        let mut index = own_seat.is_some().then(AnchorIndex::default);
        // Payloads of unfinalized anchors live in the store (file-backed
        // pages in the product), not on the heap, once appended.
        let cached = Rc::new(CachedStore::new(store.clone(), CacheCaps::default()));
        machine.set_record_source(Box::new(StoreSource(cached.clone())));
        let records: Vec<(LogRecordKind, &[u8])> = records.into_iter().collect();
        if let Some(index) = index.as_mut() {
            for (offset, (kind, body)) in records.iter().enumerate() {
                if *kind == LogRecordKind::AnchorAccepted {
                    index.insert(records_from + offset as u64, body);
                }
            }
        }
        let restore_error = |reason: String| NodeError::Restore { shard, reason };
        let replay_from = match snapshot {
            Some(image) => {
                let next = image.next_token;
                if image.replay_from_seq() < log_first_seq || next < records_from {
                    return Err(restore_error(format!(
                        "the snapshot of round {} needs record {}, the log starts at {log_first_seq}",
                        image.round,
                        image.replay_from_seq()
                    )));
                }
                machine
                    .load_image(image)
                    .map_err(|error| restore_error(error.to_string()))?;
                next
            }
            None if log_first_seq > 0 || records_from > 0 => {
                return Err(restore_error(format!(
                    "the log starts at record {log_first_seq} (pruned) and no snapshot covers it"
                )))
            }
            None => 0,
        };
        let skip = usize::try_from(replay_from - records_from).unwrap_or(usize::MAX);
        if skip > records.len() {
            return Err(restore_error(format!(
                "the snapshot covers records up to {replay_from}, the log ends at {}",
                records_from + records.len() as u64
            )));
        }
        let replayed_records = &records[skip..];
        let replayed = replayed_records.len() as u64;
        let anchors = replayed_records
            .iter()
            .filter(|(kind, _)| *kind == LogRecordKind::AnchorAccepted)
            .count() as u64;
        machine
            .restore(replayed_records.iter().copied())
            .map_err(|error| restore_error(error.to_string()))?;
        let next_seq = store.borrow().next_seq();
        machine.handle_appended(next_seq);
        let mut cross = cross;
        let mut cross_tokens = std::collections::BTreeMap::new();
        if let Some(link) = cross.as_mut() {
            // Own exports, certificates and received bundles come back from
            // the log; pushes and carrying resume from them.
            for (position, about) in link.restore(records.iter().copied()) {
                if link.needs(about.0, about.1) {
                    cross_tokens.insert(records_from + position as u64, about);
                }
            }
        }
        // Rounds with exports whose `ExportsBuilt` a crash cut off: the
        // link takes them now (and logs them in the first drain).
        for outcome in machine.take_unbuilt_rounds() {
            if let Some(link) = cross.as_mut() {
                link.on_round(&outcome);
            }
        }
        let counters = ShardCounters {
            restored_anchors: anchors,
            last_round: machine.consensus().next_undecided_round().checked_sub(1),
            log_records: next_seq,
            ..ShardCounters::default()
        };
        // A log that starts above record 0 was pruned: its lowest held
        // round may be incomplete.
        let pruned_through_round = (log_first_seq > 0).then(|| {
            index
                .as_ref()
                .and_then(|index| index.by_round.first().map(|(round, _)| *round))
                .unwrap_or(0)
        });
        let host = ShardHost {
            shard,
            core,
            machine,
            verifier,
            store,
            cached,
            submit_to_final: SecondsHistogram::new(LATENCY_BUCKETS_S),
            arrival_to_final: SecondsHistogram::new(LATENCY_BUCKETS_S),
            arrivals: HashMap::new(),
            counters,
            first_input_us: None,
            last_input_us: None,
            finality_us: latency_histogram(),
            finality_rounds: Histogram::new_with_bounds(1, 1_000_000, 3).expect("valid bounds"),
            index,
            submitted: HashMap::new(),
            submitted_by_age: BTreeSet::new(),
            capacity: Capacity::new(0, usize::from(genesis.params.k)),
            seats: usize::from(genesis.params.k),
            quorum: genesis.params.q(),
            last_decided_us: None,
            event_finality_us: latency_histogram(),
            interval_event_finality_us: latency_histogram(),
            own_seat,
            crash_hook: None,
            finalized_hook: None,
            snapshots: Snapshots::new(SnapshotPolicy::OFF),
            pruned_through_round,
            cross,
            cross_acks: VecDeque::new(),
            cross_out: VecDeque::new(),
            imports: ImportCounts::default(),
            cross_submitted: Vec::new(),
            landed_imports: Vec::new(),
            cross_tokens,
            cross_tokens_swept: 0,
            received_tokens: HashMap::new(),
        };
        Ok((
            host,
            Restored {
                records: next_seq,
                anchors,
                replayed,
            },
        ))
    }

    /// Takes in an anchor from peer `from` (`None`: the bench's feed) and
    /// says what became of it; `timed` (its id and birth round) measures
    /// its finality latency from `now_us`. Only a failing store is an
    /// error.
    pub fn handle_anchor(
        &mut self,
        from: Option<PeerId>,
        bytes: &[u8],
        timed: Option<(Hash32, u64)>,
        now_us: u64,
    ) -> Result<Result<AnchorStatus, AnchorRejected>, NodeError> {
        self.first_input_us.get_or_insert(now_us);
        let status = self.machine.handle_anchor(from, bytes);
        match &status {
            Ok(AnchorStatus::Duplicate) => {}
            Ok(_) => {
                self.counters.anchors += 1;
                if let Some((anchor_id, birth_round)) = timed {
                    self.arrivals.insert(anchor_id, (now_us, birth_round));
                }
            }
            Err(_) => self.counters.refused_anchors += 1,
        }
        self.drain(now_us)?;
        self.last_input_us = Some(now_us);
        self.sync_verify_counters();
        Ok(status)
    }

    /// Verifies the small anchors among `items` together before they are
    /// handed to [`ShardHost::handle_anchor`] one by one
    /// ([`Shard::preverify_anchors`]).
    pub fn preverify_anchors(&mut self, items: &[&[u8]]) {
        self.machine.preverify_anchors(items);
        self.sync_verify_counters();
    }

    /// Queues a client's micro-event for the seat's next own anchor and
    /// says whether the machine took it; its finality latency is measured
    /// from `now_us`. Only a failing store is an error.
    pub fn submit_micro_event(
        &mut self,
        event: MicroEvent,
        now_us: u64,
    ) -> Result<Result<(), SubmitRejected>, NodeError> {
        let id = event.id();
        let crossing = self.pays_across(&event);
        let status = self.machine.handle_micro_event(event);
        self.track_submission(id, &status, now_us);
        if let (Ok(()), Some(tx_id)) = (&status, crossing) {
            self.note_cross_submission(tx_id, now_us);
        }
        self.drain(now_us)?;
        self.sync_verify_counters();
        Ok(status)
    }

    /// [`ShardHost::submit_micro_event`] of a client's events of one submission frame,
    /// their signatures checked as one batch. One (event id, result) per
    /// event.
    pub fn submit_micro_events(
        &mut self,
        events: Vec<MicroEvent>,
        now_us: u64,
    ) -> Result<Vec<SubmitOutcome>, NodeError> {
        let ids: Vec<Hash32> = events.iter().map(MicroEvent::id).collect();
        let crossing: Vec<Option<Hash32>> = events.iter().map(|e| self.pays_across(e)).collect();
        let statuses = self.machine.handle_micro_events(events);
        for ((id, status), crossing) in ids.iter().zip(&statuses).zip(crossing) {
            self.track_submission(*id, status, now_us);
            if let (Ok(()), Some(tx_id)) = (status, crossing) {
                self.note_cross_submission(tx_id, now_us);
            }
        }
        self.drain(now_us)?;
        self.sync_verify_counters();
        Ok(ids.into_iter().zip(statuses).collect())
    }

    /// The tx id of a transfer with an output to another shard, if `event`
    /// is one (only a seat measures cross-shard latency).
    fn pays_across(&self, event: &MicroEvent) -> Option<Hash32> {
        let MicroEvent::Transfer(transfer) = event else {
            return None;
        };
        let context = self.machine.context();
        if self.own_seat.is_none()
            || transfer
                .outputs
                .iter()
                .all(|o| pc_codec::ids::shard_of(&o.owner, context.shards) == self.shard)
        {
            return None;
        }
        Some(transfer.tx_id(&context.network))
    }

    fn note_cross_submission(&mut self, tx_id: Hash32, now_us: u64) {
        if self.cross_submitted.len() < MAX_LATENCY_INPUTS {
            self.cross_submitted.push((tx_id, now_us));
        }
    }

    /// What the core's cross-shard latency needs since the last call:
    /// accepted transfers paying another shard (tx id, taken at µs) and
    /// imports that landed here (source, tx id, final at µs).
    pub fn take_cross_latency_inputs(&mut self) -> LatencyInputs {
        (
            std::mem::take(&mut self.cross_submitted),
            std::mem::take(&mut self.landed_imports),
        )
    }

    /// Starts the finality clock of an accepted submission.
    fn track_submission(&mut self, id: Hash32, status: &Result<(), SubmitRejected>, now_us: u64) {
        if status.is_err() {
            return;
        }
        if self.submitted.len() >= MAX_TRACKED_SUBMISSIONS {
            if let Some(oldest) = self.submitted_by_age.pop_first() {
                self.submitted.remove(&oldest.1);
                self.counters.expired_submissions += 1;
            }
        }
        // A repeat of an event still tracked keeps its first time (the
        // by-age index is keyed by it).
        if let std::collections::hash_map::Entry::Vacant(entry) = self.submitted.entry(id) {
            entry.insert(now_us);
            self.submitted_by_age.insert((now_us, id));
            self.counters.accepted_submissions += 1;
        }
    }

    /// Copies the verifier's counts into the counters.
    fn sync_verify_counters(&mut self) {
        self.counters.signature_verifies = self.verifier.count();
        let work = self.verifier.batch_work();
        self.counters.signature_batches = work.batches;
        self.counters.batched_signatures = work.batched_signatures;
        self.counters.single_signature_verifies = self.verifier.single_count();
        self.counters.batch_single_verifies = work.single_verifies;
        let keys = pc_codec::key_cache_counts();
        self.counters.key_cache_hits = keys.hits;
        self.counters.key_cache_misses = keys.misses;
    }

    /// Sets the capacities of the shard's header/payload cache.
    pub fn set_cache_caps(&mut self, caps: CacheCaps) {
        self.cached.set_caps(caps);
    }

    /// Times signature checks and store reads with `stopwatch` (the
    /// driver's monotonic clock, nanoseconds) from now on; they feed
    /// metrics only, never a decision.
    pub fn set_stopwatch(&mut self, stopwatch: Stopwatch) {
        *self.verifier.stopwatch.borrow_mut() = Some(stopwatch.clone());
        self.cached.set_stopwatch(stopwatch);
    }

    /// The shard's store behind its cache (the node's read path).
    pub fn cached_store(&self) -> &Rc<CachedStore> {
        &self.cached
    }

    /// The shard's metrics at `now_us` (see [`crate::metrics`]).
    pub fn metrics(&mut self, now_us: u64) -> ShardMetrics {
        self.sync_verify_counters();
        let reading = self.capacity_reading(now_us);
        let (admitted, refused, _) = self.admission_totals();
        let c = &self.counters;
        let machine = &self.machine;
        let log_records = self.store.borrow().next_seq();
        let durable = c.durable_seq.map_or(0, |seq| seq + 1);
        ShardMetrics {
            shard: self.shard,
            anchors_accepted: c.anchors,
            anchors_rejected: c.refused_anchors,
            rounds_decided: c.rounds,
            last_decided_round: c.last_round.map_or(-1, |r| r as i64),
            finalized_anchors: c.finalized_anchors,
            finalized_events: c.finalized_events,
            applied_events: c.applied_events,
            rejected_double_spends: c.rejected_double_spends,
            submit_to_final: self.submit_to_final.clone(),
            arrival_to_final: self.arrival_to_final.clone(),
            pending_parents: machine.pending_anchors() as u64,
            mempool: machine.mempool_len() as u64,
            outstanding_pulls: machine.sync_stats().outstanding_pulls as u64,
            catch_up_requests: machine.catch_up_requests(),
            log_bytes: c.log_bytes,
            log_records,
            durable_lag_records: log_records.saturating_sub(durable),
            persist_ok: c.persist_ok,
            persist_failed: c.persist_failed,
            observer_lag_rounds: machine.lag_rounds(),
            signature_verifies: c.signature_verifies,
            verify_ns: self.verifier.nanos(),
            cache: self.cached.counts(),
            store_reads: self.cached.reads(),
            admitted,
            refused,
            backlog: reading.backlog,
            backlog_bound: reading.budget,
            committee_seats: self.seats as u64,
            committee_quorum: self.quorum as u64,
            decided_age_us: now_us.saturating_sub(self.last_decided_us.unwrap_or(0)),
            cross: self.cross_metrics(),
            economics: self.economics_metrics(),
        }
    }

    /// The seats' section of the metrics: slashes from the finalized state,
    /// claims counted since start.
    fn economics_metrics(&self) -> crate::metrics::EconomicsMetrics {
        let economics = self.machine.state().economics();
        let mut metrics = crate::metrics::EconomicsMetrics {
            claims: self.counters.claims,
            claimed_units: self.counters.claimed_units,
            owed_units: u64::try_from(economics.owed_total()).unwrap_or(u64::MAX),
            bonded_units: u64::try_from(economics.bonded()).unwrap_or(u64::MAX),
            slashed_out_seats: u64::from(economics.slashed_out().count_ones()),
            ..Default::default()
        };
        for slash in economics.seats().iter().flat_map(|s| &s.slashes) {
            let class = slash.class as usize;
            metrics.slashes[class] += 1;
            metrics.slashed_units[class] += slash.amount;
        }
        metrics
    }

    /// The cross-shard part of the metrics.
    fn cross_metrics(&self) -> crate::metrics::CrossShardMetrics {
        let link = self.cross_counters().unwrap_or_default();
        let cross = self.machine.state().cross();
        let shards = self.machine.context().shards;
        let units = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
        crate::metrics::CrossShardMetrics {
            checkpoints_signed: link.signed,
            checkpoints_certified: link.certified,
            bundles_pushed: link.pushed,
            bundles_acked: link.acked,
            bundles_received: link.received,
            imports_carried: self.imports.queued,
            imports_refused: self.imports.refused,
            violations: link.violations,
            exported_to: (0..shards).map(|s| units(cross.exported_to(s))).collect(),
            imported_from: (0..shards).map(|s| units(cross.imported_from(s))).collect(),
        }
    }

    /// Sets the single-signature verify rate the driver measured on this
    /// core: the capacity signal's floor before anything finalized.
    pub fn set_verify_budget(&mut self, verify_per_s: u64) {
        self.capacity = Capacity::new(verify_per_s, self.seats);
    }

    /// The finalized counts the capacity signal reads.
    fn finalized(&self) -> Finalized {
        Finalized {
            events: self.counters.finalized_events,
            own: self.counters.finalized_submissions,
        }
    }

    /// The capacity signal at `now_us` (see [`crate::capacity`]).
    pub fn capacity_reading(&mut self, now_us: u64) -> Reading {
        while let Some(&(at, id)) = self.submitted_by_age.first() {
            if at + SUBMISSION_HORIZON_US > now_us {
                break;
            }
            self.submitted_by_age.pop_first();
            self.submitted.remove(&id);
            self.counters.expired_submissions += 1;
        }
        self.capacity.observe(now_us, self.finalized());
        self.capacity.read(
            now_us,
            self.finalized(),
            (
                self.machine.backlog_events() as u64,
                self.submitted.len() as u64,
            ),
            self.submitted_by_age.first().map(|(at, _)| *at),
        )
    }

    /// When the oldest accepted client micro-event not yet finalized was
    /// taken, µs, if any.
    pub fn oldest_accepted_us(&self) -> Option<u64> {
        self.submitted_by_age.first().map(|(at, _)| *at)
    }

    /// Admission of `wanted` client micro-events at `now_us` (before any
    /// signature check): how many of them, first to last, are taken, and
    /// the reason and a retry-after hint in ms for the rest.
    pub fn admit(&mut self, wanted: usize, now_us: u64) -> Admission {
        let reading = self.capacity_reading(now_us);
        self.capacity.admit(&reading, wanted as u64)
    }

    /// Counts `n` client micro-events refused as overloaded before
    /// admission control saw them (they waited too long in the inbox).
    pub fn count_refused(&mut self, n: usize, now_us: u64) {
        self.capacity.count_refused(n as u64, now_us);
    }

    /// Micro-events admitted and refused by admission control, and the
    /// last retry-after hint (ms).
    pub fn admission_totals(&self) -> (u64, u64, u32) {
        self.capacity.totals()
    }

    /// A peer's tips (an `Announce`).
    pub fn handle_announce(
        &mut self,
        from: PeerId,
        tips: &[Hash32],
        now_us: u64,
    ) -> Result<(), NodeError> {
        self.machine.handle_announce(Some(from), tips);
        self.drain(now_us)
    }

    /// Advances the machine's logical time, in the machine's ticks (pull
    /// retries, announces, paced acknowledgements).
    pub fn handle_tick(&mut self, now_ticks: u64, now_us: u64) -> Result<(), NodeError> {
        self.machine.handle_tick(now_ticks);
        if self
            .cross
            .as_mut()
            .is_some_and(|link| link.handle_tick(now_us / 1000))
        {
            self.offer_imports();
        }
        self.drain(now_us)
    }

    /// A cross-shard message from `from` (a seat of this node's or a
    /// peer's shard) and what the link made of it: a refusal is the
    /// sender's violation. A host without a seat takes nothing. Only a
    /// failing store is an error.
    pub fn handle_cross(
        &mut self,
        from: CrossTarget,
        message: CrossMessage,
        now_us: u64,
    ) -> Result<Result<(), CrossViolation>, NodeError> {
        let Some(link) = self.cross.as_mut() else {
            return Ok(Ok(()));
        };
        let result = link.on_message(from, message, self.machine.state());
        self.drain(now_us)?;
        Ok(result)
    }

    /// The next cross-shard message to send.
    pub fn poll_cross_transmit(&mut self) -> Option<CrossTransmit> {
        self.cross_out.pop_front()
    }

    /// The cross-shard link's counters (`None` without a seat).
    pub fn cross_counters(&self) -> Option<CrossCounters> {
        self.cross.as_ref().map(CrossLink::counters)
    }

    /// Imports the link handed to the machine, queued and refused.
    pub fn import_counts(&self) -> ImportCounts {
        self.imports
    }

    /// Hands the link's due imports to the machine: they bypass client
    /// admission (the seat's own duty, bounded per round by the link) but
    /// are validated like any micro-event.
    fn offer_imports(&mut self) {
        let seen = self.machine.take_seen_imports();
        let Some(link) = self.cross.as_mut() else {
            return;
        };
        link.on_seen_imports(&seen);
        for offence in link.take_offences() {
            self.machine.offer_offence(offence);
        }
        let imports = link.take_imports(self.machine.state());
        if imports.is_empty() {
            return;
        }
        for result in self.machine.handle_micro_events(imports) {
            match result {
                Ok(()) => self.imports.queued += 1,
                Err(_) => self.imports.refused += 1,
            }
        }
    }

    /// Moves the link's records into the machine's record stream (acks
    /// wait for their record to be durable) and its messages out; whether
    /// a record was queued.
    fn take_cross_outputs(&mut self) -> bool {
        let Some(link) = self.cross.as_mut() else {
            return false;
        };
        let mut logged = false;
        while let Some(record) = link.poll_record() {
            logged = true;
            let token = self.machine.log_record(record.kind, record.body);
            self.cross_tokens.insert(token, record.about);
            if record.kind == LogRecordKind::ExportsReceived {
                self.received_tokens.insert(record.about, token);
            }
            // Settled entries go now and then (also with snapshots off):
            // when the table doubled since the last sweep.
            if self.cross_tokens.len() > 2 * self.cross_tokens_swept + 4096 {
                self.cross_tokens
                    .retain(|_, (source, round)| link.needs(*source, *round));
                self.cross_tokens_swept = self.cross_tokens.len();
            }
            if let Some(ack) = record.ack {
                self.cross_acks.push_back((token, ack));
            }
        }
        let durable = self.counters.durable_seq;
        let is_durable = |token: u64| durable.is_some_and(|d| token <= d);
        self.received_tokens.retain(|_, token| !is_durable(*token));
        while let Some(transmit) = link.poll_transmit() {
            // An ack of a bundle whose record is not durable yet (a
            // repeated push of one just taken) waits for that record.
            if let CrossMessage::Ack { source, round, .. } = &transmit.message {
                if let Some(token) = self.received_tokens.get(&(*source, *round)) {
                    self.cross_acks.push_back((*token, transmit));
                    continue;
                }
            }
            self.cross_out.push_back(transmit);
        }
        while let Some((token, _)) = self.cross_acks.front() {
            if !self.is_durable(*token) {
                break;
            }
            let (_, ack) = self.cross_acks.pop_front().expect("checked");
            self.cross_out.push_back(ack);
        }
        logged
    }

    /// Moves the machine's logical time to `now_ticks` (before an input).
    pub fn advance_time(&mut self, now_ticks: u64) {
        self.machine.advance_time(now_ticks);
    }

    /// The next timer, in the machine's ticks (milliseconds in the node):
    /// the machine's, or the cross-shard link's retry tick.
    pub fn poll_timeout(&self) -> Option<u64> {
        let link = self.cross.as_ref().map(CrossLink::poll_timeout);
        match (self.machine.poll_timeout(), link) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Records up to and including `seq` are durable.
    pub fn handle_durable(&mut self, seq: u64, now_us: u64) -> Result<(), NodeError> {
        self.machine.handle_durable(seq);
        self.counters.durable_seq = Some(self.counters.durable_seq.map_or(seq, |d| d.max(seq)));
        self.drain(now_us)
    }

    /// The next message the machine wants sent.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.machine.poll_transmit()
    }

    /// The encoded anchor `id` from the store, if this host indexes it.
    pub fn anchor_bytes(&self, id: &Hash32) -> Option<Vec<u8>> {
        let (seq, _) = *self.index.as_ref()?.records.get(id)?;
        if !self.is_durable(seq) {
            return None;
        }
        self.cached.anchor(seq)
    }

    /// Whether record `seq` is durable. Only durable records are served:
    /// an own anchor must never leave before its record is durable (a
    /// crash would let the seat sign its seq again), and a `GetRange`
    /// reaches the newest records.
    fn is_durable(&self, seq: u64) -> bool {
        self.counters
            .durable_seq
            .is_some_and(|durable| seq <= durable)
    }

    /// Stored anchors of birth round `from_round` and above, lowest round
    /// first, at most `max_count` of them and at most `max_bytes` in all
    /// (at least one if any), for a peer's `GetRange`; empty if this host
    /// does not index its store.
    pub fn anchors_from_round(
        &self,
        from_round: u64,
        max_count: usize,
        max_bytes: usize,
    ) -> Vec<Vec<u8>> {
        let Some(index) = self.index.as_ref() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        for &(_, seq) in index.by_round.range((from_round, 0)..) {
            if out.len() >= max_count {
                break;
            }
            if !self.is_durable(seq) {
                continue;
            }
            let Some(body) = self.cached.anchor(seq) else {
                continue;
            };
            if !out.is_empty() && bytes + body.len() > max_bytes {
                break;
            }
            bytes += body.len();
            out.push(body);
        }
        out
    }

    /// Test flag (devnet `--equivocate`): the seat signs its own anchor at
    /// `seq` twice (see [`pc_shard::machine::Shard::set_equivocate_at`]).
    pub fn equivocate_at(&mut self, seq: u64) {
        self.machine.set_equivocate_at(Some(seq));
    }

    /// Installs a crash-injection hook (tests of crash recovery).
    pub fn set_crash_hook(&mut self, hook: CrashHook) {
        self.crash_hook = Some(hook);
    }

    /// Installs a hook that hears every finalized round with the time
    /// (`now_us`) it finalized at.
    pub fn set_finalized_hook(&mut self, hook: FinalizedHook) {
        self.finalized_hook = Some(hook);
    }

    /// Calls the crash hook, if any, at `site`.
    pub fn crash_point(&mut self, site: CrashSite) {
        let shard = self.shard;
        if let Some(hook) = self.crash_hook.as_mut() {
            hook(site, shard);
        }
    }

    /// Client micro-event finality latency since the last call, µs; the
    /// interval histogram starts over.
    pub fn take_interval_event_finality(&mut self) -> Histogram<u64> {
        let taken = self.interval_event_finality_us.clone();
        self.interval_event_finality_us.reset();
        taken
    }

    /// The machine (read-only: state, consensus, sync statistics).
    pub fn machine(&self) -> &ProductShard {
        &self.machine
    }

    /// Client micro-event finality latency so far, µs.
    pub fn event_finality_us(&self) -> &Histogram<u64> {
        &self.event_finality_us
    }

    /// The shard.
    pub fn shard(&self) -> u16 {
        self.shard
    }

    /// The seat this host signs for, if any.
    pub fn own_seat(&self) -> Option<u8> {
        self.own_seat
    }

    /// The counters so far.
    pub fn counters(&self) -> &ShardCounters {
        &self.counters
    }

    /// Appends pending records and accounts finalized rounds.
    fn drain(&mut self, now_us: u64) -> Result<(), NodeError> {
        loop {
            self.append_records()?;
            let rounds = self.account_finalized(now_us);
            if rounds > 0 {
                self.offer_imports();
            }
            if !self.take_cross_outputs() && rounds == 0 {
                break;
            }
        }
        let round = self.machine.last_finalized_round();
        if self.snapshots.due(round, self.counters.log_bytes) && self.machine.snapshot_ready() {
            let image = self.machine.snapshot_image();
            self.snapshots.take(image, self.counters.log_bytes);
        }
        Ok(())
    }

    /// Appends the machine's pending records.
    fn append_records(&mut self) -> Result<(), NodeError> {
        while let Some(record) = self.machine.poll_persist() {
            let own = self.crash_hook.is_some()
                && record.kind == LogRecordKind::AnchorAccepted
                && self.own_seat.is_some_and(|seat| {
                    SignedAnchorHeader::decode(&mut Reader::new(&record.body))
                        .is_ok_and(|h| h.header.creator == seat)
                });
            if own {
                self.crash_point(CrashSite::AfterSigning);
            }
            let appended = self.store.borrow_mut().append(record.kind, &record.body);
            let seq = match appended {
                Ok(seq) => seq,
                Err(reason) => {
                    self.counters.persist_failed += 1;
                    return Err(NodeError::Append {
                        shard: self.shard,
                        reason,
                    });
                }
            };
            self.counters.persist_ok += 1;
            assert_eq!(
                seq, record.token,
                "shard {}: the store and the machine's record stream agree",
                self.shard
            );
            self.counters.log_bytes += pc_storage::frame::frame_bytes(record.body.len() as u32);
            if let Some(index) = self.index.as_mut() {
                if record.kind == LogRecordKind::AnchorAccepted {
                    index.insert(seq, &record.body);
                }
            }
            if own {
                self.crash_point(CrashSite::AfterPersisting);
            }
        }
        let appended = self.store.borrow().next_seq();
        self.counters.log_records = appended;
        self.machine.handle_appended(appended);
        // The planted bug of the simulator's self-check: records count as
        // durable once appended, so an own anchor leaves before its sync.
        #[cfg(feature = "planted-bug-send-before-durable")]
        if appended > 0 {
            self.machine.handle_durable(appended - 1);
        }
        Ok(())
    }

    /// Accounts the finalized rounds (each handed to the cross-shard
    /// link); how many there were.
    fn account_finalized(&mut self, now_us: u64) -> u64 {
        let appended = self.store.borrow().next_seq();
        let mut rounds = 0;
        while let Some(report) = self.machine.poll_finalized() {
            rounds += 1;
            if let Some(link) = self.cross.as_mut() {
                link.on_round(&report.outcome);
                for (source, tx_id) in &report.outcome.imported {
                    if self.landed_imports.len() < MAX_LATENCY_INPUTS {
                        self.landed_imports.push((*source, *tx_id, now_us));
                    }
                }
            }
            if let Some(hook) = self.finalized_hook.as_mut() {
                hook(&report, now_us);
            }
            self.counters.rounds += 1;
            self.counters.last_round = Some(report.round.round);
            self.snapshots.note_round(report.round.round, appended);
            self.last_decided_us = Some(now_us);
            if !self.submitted.is_empty() {
                // The base latency is finality with no queue: only what
                // finalizes while the backlog is low says what it is (under
                // sustained overload every latency holds queueing, and a
                // base learned from them would raise the bounds it feeds).
                // Queueing is what waits in front of the DAG (mempool,
                // pending anchors): the events of inserted, unfinalized
                // anchors are consensus latency itself, and counting them
                // kept a committee whose finality takes most of a second
                // (21 nodes on 2 cores) from ever learning its base: its
                // bound stayed at 400 ms of a floor rate and refused 37 %
                // of 200 transfers/s it carried.
                let queued = self.machine.queued_events() as u64;
                let budget = self
                    .capacity
                    .read(now_us, self.finalized(), (queued, 0), None)
                    .budget;
                let uncongested = queued * BASE_SAMPLE_BACKLOG_SHARE <= budget;
                for (id, _) in &report.outcome.outcomes {
                    if let Some(submitted_us) = self.submitted.remove(id) {
                        self.submitted_by_age.remove(&(submitted_us, *id));
                        self.counters.finalized_submissions += 1;
                        let micros = now_us.saturating_sub(submitted_us).max(1);
                        if uncongested {
                            self.capacity.observe_latency(now_us, micros);
                        }
                        self.event_finality_us.saturating_record(micros);
                        self.submit_to_final.observe_us(micros);
                        self.interval_event_finality_us.saturating_record(micros);
                    }
                }
            }
            self.counters.finalized_events += report.outcome.outcomes.len() as u64;
            self.counters.finalized_anchors += report.round.anchors.len() as u64;
            self.counters.rejected_double_spends += report
                .outcome
                .outcomes
                .iter()
                .filter(|(_, outcome)| *outcome == Outcome::UnknownOrSpentInput)
                .count() as u64;
            self.capacity.observe(now_us, self.finalized());
            self.counters.applied_events += report
                .outcome
                .outcomes
                .iter()
                .filter(|(_, outcome)| *outcome == Outcome::Applied)
                .count() as u64;
            self.counters.applied_imports += report.outcome.imported.len() as u64;
            self.counters.claims += report.outcome.claims.len() as u64;
            self.counters.claimed_units += report
                .outcome
                .claims
                .iter()
                .map(|(_, units)| units)
                .sum::<u64>();
            for anchor in &report.round.anchors {
                if let Some((arrival_us, birth_round)) = self.arrivals.remove(&anchor.id) {
                    let micros = now_us.saturating_sub(arrival_us).max(1);
                    self.finality_us.saturating_record(micros);
                    self.arrival_to_final.observe_us(micros);
                    self.finality_rounds
                        .saturating_record(report.round.round.saturating_sub(birth_round).max(1));
                }
            }
        }
        rounds
    }

    /// Sets the snapshot policy and notes the snapshots found on disk.
    pub fn set_snapshots(&mut self, policy: SnapshotPolicy, found: Vec<SnapshotMark>) {
        self.snapshots = Snapshots::new(policy);
        self.snapshots.found(found, self.counters.log_bytes);
    }

    /// A snapshot image to write, once per due snapshot (the host waits for
    /// [`ShardHost::snapshot_written`] or [`ShardHost::snapshot_failed`]
    /// before it takes the next).
    pub fn poll_snapshot(&mut self) -> Option<ShardImage> {
        self.snapshots.poll()
    }

    /// The snapshot of `mark` is durable on disk: its marker is logged and
    /// the prune bound returned (records below it may be deleted).
    pub fn snapshot_written(&mut self, mark: SnapshotMark, now_us: u64) -> Result<u64, NodeError> {
        self.machine
            .note_snapshot_written(mark.round, mark.next_token);
        self.snapshots.written(mark);
        self.drain(now_us)?;
        if let Some(link) = self.cross.as_ref() {
            self.cross_tokens
                .retain(|_, (source, round)| link.needs(*source, *round));
        }
        Ok(self.prune_bound())
    }

    /// Records below this are needed by no kept snapshot, lie outside the
    /// catch-up retention, and hold no cross-shard record the link still
    /// needs (an own round's exports until certified and acked by every
    /// destination seat pushed to, a received bundle until its leaves
    /// landed).
    pub fn prune_bound(&self) -> u64 {
        let bound = self
            .snapshots
            .prune_bound(self.machine.last_finalized_round());
        match self.cross_tokens.first_key_value() {
            Some((token, _)) => bound.min(*token),
            None => bound,
        }
    }

    /// The store now starts at record `first_seq` (segments below it were
    /// deleted): anchors below it are no longer served.
    pub fn log_pruned(&mut self, first_seq: u64) {
        if let Some(round) = self.index.as_mut().and_then(|i| i.prune_below(first_seq)) {
            self.pruned_through_round =
                Some(self.pruned_through_round.map_or(round, |r| r.max(round)));
        }
    }

    /// Resumes this host's seat on a restored data dir (see
    /// `Shard::hold_for_resume`).
    pub fn hold_for_resume(&mut self) {
        self.machine.hold_for_resume();
    }

    /// `peer` answered a catch-up request `Pruned`: ranges go to others.
    pub fn peer_pruned(&mut self, peer: PeerId) {
        self.machine.forget_catch_up_peer(peer);
    }

    /// For a `GetRange` from `from_round` this node's log no longer holds
    /// completely: (the lowest round it serves completely, its newest
    /// snapshot's round or `u64::MAX`).
    pub fn pruned_answer(&self, from_round: u64) -> Option<(u64, u64)> {
        let through = self.pruned_through_round.filter(|p| from_round <= *p)?;
        Some((
            through + 1,
            self.snapshots.newest_round().unwrap_or(u64::MAX),
        ))
    }

    /// Writing the last snapshot failed; the next one is taken when due.
    pub fn snapshot_failed(&mut self) {
        self.snapshots.failed();
    }

    /// Snapshots taken, written and failed since start.
    pub fn snapshot_counts(&self) -> (u64, u64, u64) {
        (
            self.snapshots.taken,
            self.snapshots.written,
            self.snapshots.failed,
        )
    }

    /// The final report (after the driver made the store durable and said
    /// so with [`ShardHost::handle_durable`]).
    pub fn report(mut self) -> ShardReport {
        let busy = match (self.first_input_us, self.last_input_us) {
            (Some(first), Some(last)) => Duration::from_micros(last.saturating_sub(first)),
            _ => Duration::ZERO,
        };
        self.sync_verify_counters();
        let mut counters = self.counters;
        counters.log_records = self.store.borrow().next_seq();
        ShardReport {
            shard: self.shard,
            core: self.core,
            counters,
            busy,
            finality_us: self.finality_us,
            finality_rounds: self.finality_rounds,
            event_finality_us: self.event_finality_us,
            state_root: self.machine.state().state_root(),
        }
    }
}
