//! The driver of one shard on its core: feeds anchor bytes into the sans-IO
//! `Shard` machine, appends what it asks to persist to the shard's log,
//! makes the log durable through io_uring `fdatasync` (glommio) and
//! records what finalized. Lives on one core; `!Send` by construction
//! (`Rc`). The bench and replay run it as an observer; the node as a seat,
//! with an index of the anchors in its log (to serve peers' `Get`s) and
//! finality latency measured from a client's submission.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::BufferedFile;
use hdrhistogram::Histogram;
use pc_codec::genesis::Genesis;
use pc_codec::wire::{Decode, Reader};
use pc_codec::{
    Bip340, Hash32, LogRecordKind, MicroEvent, PublicKeyBytes, SignatureBytes, SignatureVerifier,
    SignedAnchorHeader, SigningKey,
};
use pc_shard::machine::{
    AnchorRejected, AnchorStatus, PeerId, Role, Shard, ShardLimits, SubmitRejected, Transmit,
};
use pc_shard::state::Outcome;
use pc_storage::{Durability, Log, LogConfig};

use crate::EngineError;

/// The product's verifier, counting every verification it performs.
#[derive(Debug, Clone, Default)]
pub struct CountingVerifier {
    count: Rc<Cell<u64>>,
}

impl CountingVerifier {
    /// Verifications so far.
    pub fn count(&self) -> u64 {
        self.count.get()
    }
}

impl SignatureVerifier for CountingVerifier {
    fn verify(&self, key: &PublicKeyBytes, message: &[u8], signature: &SignatureBytes) -> bool {
        self.count.set(self.count.get() + 1);
        Bip340.verify(key, message, signature)
    }
}

/// The product's shard machine: BIP-340 verification, BIP-340 signing when
/// it holds a seat.
pub type ProductShard = Shard<CountingVerifier, SigningKey>;

/// Most anchors the log index of a node's shard names (40 bytes each, some
/// 10 MiB): far more than the non-ancient window of a k = 64 committee, so
/// every anchor a peer may still pull is served; the oldest are forgotten
/// first.
pub const MAX_INDEXED_ANCHORS: usize = 262_144;

/// Most client submissions whose finality latency is tracked (the
/// machine's mempool bound, twice): past it the tracked ones are all
/// forgotten (their latencies go unrecorded), so events that never
/// finalize cannot hold memory.
pub const MAX_TRACKED_SUBMISSIONS: usize = 131_072;

/// Anchor id → log record of the anchors a shard logged, and the same
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

/// What a driver counted, as sent to the control thread and reported.
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
    /// BIP-340 verifications performed.
    pub signature_verifies: u64,
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
}

/// A shard's final report.
#[derive(Debug, Clone)]
pub struct ShardReport {
    /// The shard.
    pub shard: u16,
    /// The CPU it ran on.
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

/// Result of one asynchronous sync: the seq made durable.
type SyncSlot = Rc<RefCell<Option<Result<u64, std::io::Error>>>>;

/// One shard on its core.
pub struct ShardDriver {
    shard: u16,
    core: usize,
    machine: ProductShard,
    verifier: CountingVerifier,
    /// Shared with the machine's record source, which reads spilled
    /// payloads back; never borrowed across a machine call.
    log: Rc<RefCell<Log>>,
    files: HashMap<PathBuf, Rc<BufferedFile>>,
    sync_in_flight: Option<SyncSlot>,
    arrivals: HashMap<Hash32, (Instant, u64)>,
    counters: ShardCounters,
    first_input: Option<Instant>,
    last_input: Option<Instant>,
    finality_us: Histogram<u64>,
    finality_rounds: Histogram<u64>,
    /// Anchors in the log by id, when the driver serves peers.
    index: Option<AnchorIndex>,
    /// Client micro-events taken in and not yet finalized, by id.
    submitted: HashMap<Hash32, Instant>,
    event_finality_us: Histogram<u64>,
    /// The same since the last [`ShardDriver::take_interval_event_finality`].
    interval_event_finality_us: Histogram<u64>,
    /// The seat this driver signs for, if any.
    own_seat: Option<u8>,
    crash_hook: Option<CrashHook>,
}

/// The machine's record source: reads appended records back from the
/// shard's log.
struct LogSource(Rc<RefCell<Log>>);

impl pc_shard::machine::RecordSource for LogSource {
    fn record_body(&self, token: u64) -> Option<Vec<u8>> {
        anchor_record(&self.0.borrow(), token)
    }
}

/// The body of record `seq` of `log`, if it is a logged anchor.
fn anchor_record(log: &Log, seq: u64) -> Option<Vec<u8>> {
    let record = log.read(seq).ok()??;
    (record.kind == LogRecordKind::AnchorAccepted as u8).then(|| record.body.to_vec())
}

/// The log directory of `shard` in a data dir.
pub fn shard_log_dir(data_dir: &Path, shard: u16) -> PathBuf {
    data_dir.join(format!("shard-{shard:03}"))
}

/// Reads every record of `log` as (kind, body); an unknown kind or a bad
/// frame is named by file and offset.
pub fn log_records(log: &Log) -> Result<Vec<(LogRecordKind, &[u8])>, EngineError> {
    let mut records = Vec::new();
    for record in log.iter_from(0) {
        let record = record?;
        let kind = LogRecordKind::from_u8(record.kind).ok_or_else(|| EngineError::BadRecord {
            path: record.path.to_path_buf(),
            offset: record.offset,
            reason: format!("unknown record kind {}", record.kind),
        })?;
        records.push((kind, record.body));
    }
    Ok(records)
}

impl ShardDriver {
    /// Opens (and recovers) the shard's log in `data_dir` and restores an
    /// observer machine from it.
    pub fn open(
        genesis: &Genesis,
        shard: u16,
        core: usize,
        data_dir: &Path,
        config: LogConfig,
    ) -> Result<ShardDriver, EngineError> {
        Self::open_as(
            genesis,
            shard,
            core,
            data_dir,
            config,
            Role::Observer,
            ShardLimits::default(),
        )
    }

    /// Opens the shard's log and restores a machine of `role` from it. A
    /// seat's driver also indexes its log's anchors so that it can serve
    /// peers ([`ShardDriver::anchor_bytes`]).
    pub fn open_as(
        genesis: &Genesis,
        shard: u16,
        core: usize,
        data_dir: &Path,
        config: LogConfig,
        role: Role<SigningKey>,
        limits: ShardLimits,
    ) -> Result<ShardDriver, EngineError> {
        let dir = shard_log_dir(data_dir, shard);
        let (log, _report) = Log::open(&dir, config)?;
        let log = Rc::new(RefCell::new(log));
        let verifier = CountingVerifier::default();
        let serves_peers = matches!(role, Role::Seat { .. });
        let own_seat = match &role {
            Role::Seat { seat, .. } => Some(*seat),
            Role::Observer => None,
        };
        let mut machine = Shard::new(genesis, shard, role, verifier.clone(), limits);
        let mut index = serves_peers.then(AnchorIndex::default);
        // Payloads of unfinalized anchors live in the log (file-backed
        // pages), not on the heap, once appended: memory stays flat however
        // long a round takes to decide.
        machine.set_record_source(Box::new(LogSource(log.clone())));
        let restored_anchors = {
            let log = log.borrow();
            let records = log_records(&log)?;
            if let Some(index) = index.as_mut() {
                for (seq, (kind, body)) in records.iter().enumerate() {
                    if *kind == LogRecordKind::AnchorAccepted {
                        index.insert(seq as u64, body);
                    }
                }
            }
            let restored_anchors = records
                .iter()
                .filter(|(kind, _)| *kind == LogRecordKind::AnchorAccepted)
                .count() as u64;
            machine
                .restore(records)
                .map_err(|error| EngineError::Restore {
                    shard,
                    dir: dir.clone(),
                    reason: error.to_string(),
                })?;
            restored_anchors
        };
        let log_ref = log.borrow();
        machine.handle_appended(log_ref.next_seq());
        eprintln!(
            r#"{{"type":"shard_restored","shard":{shard},"records":{},"anchors":{restored_anchors},"durable_records":{}}}"#,
            log_ref.next_seq(),
            log_ref.durable_seq().map_or(0, |seq| seq + 1)
        );
        let counters = ShardCounters {
            restored_anchors,
            last_round: machine.consensus().next_undecided_round().checked_sub(1),
            log_records: log_ref.next_seq(),
            durable_seq: log_ref.durable_seq(),
            ..ShardCounters::default()
        };
        drop(log_ref);
        Ok(ShardDriver {
            shard,
            core,
            machine,
            verifier,
            log,
            files: HashMap::new(),
            sync_in_flight: None,
            arrivals: HashMap::new(),
            counters,
            first_input: None,
            last_input: None,
            finality_us: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            finality_rounds: Histogram::new_with_bounds(1, 1_000_000, 3).expect("valid bounds"),
            index,
            submitted: HashMap::new(),
            event_finality_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid bounds"),
            interval_event_finality_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid bounds"),
            own_seat,
            crash_hook: None,
        })
    }

    /// Takes in an anchor from peer `from` and says what became of it (for
    /// the peer's score); only a failing log is an error.
    pub fn handle_peer_anchor(
        &mut self,
        from: PeerId,
        bytes: &[u8],
    ) -> Result<Result<AnchorStatus, AnchorRejected>, EngineError> {
        self.take_anchor(Some(from), bytes, None)
    }

    /// Feeds an anchor to the machine, counts what became of it (and its
    /// arrival, for anchors whose finality latency is measured), appends
    /// what it emitted.
    fn take_anchor(
        &mut self,
        from: Option<PeerId>,
        bytes: &[u8],
        timed: Option<(Hash32, u64)>,
    ) -> Result<Result<AnchorStatus, AnchorRejected>, EngineError> {
        let now = Instant::now();
        self.first_input.get_or_insert(now);
        let status = self.machine.handle_anchor(from, bytes);
        match &status {
            Ok(AnchorStatus::Duplicate) => {}
            Ok(_) => {
                self.counters.anchors += 1;
                if let Some((anchor_id, birth_round)) = timed {
                    self.arrivals.insert(anchor_id, (now, birth_round));
                }
            }
            Err(_) => self.counters.refused_anchors += 1,
        }
        self.drain()?;
        self.last_input = Some(Instant::now());
        self.counters.signature_verifies = self.verifier.count();
        Ok(status)
    }

    /// Queues a client's micro-event for the seat's next own anchor and
    /// says whether the machine took it; its finality latency is measured
    /// from now. Only a failing log is an error.
    pub fn submit_micro_event(
        &mut self,
        event: MicroEvent,
    ) -> Result<Result<(), SubmitRejected>, EngineError> {
        let id = event.id();
        let status = self.machine.handle_micro_event(event);
        if status.is_ok() {
            if self.submitted.len() >= MAX_TRACKED_SUBMISSIONS {
                self.submitted.clear();
            }
            self.submitted.insert(id, Instant::now());
        }
        self.drain()?;
        self.counters.signature_verifies = self.verifier.count();
        Ok(status)
    }

    /// A peer's tips (an `Announce`).
    pub fn handle_announce(&mut self, from: PeerId, tips: &[Hash32]) -> Result<(), EngineError> {
        self.machine.handle_announce(Some(from), tips);
        self.drain()
    }

    /// Advances the machine's logical time (pull retries, announces, paced
    /// acknowledgements).
    pub fn handle_tick(&mut self, now_ticks: u64) -> Result<(), EngineError> {
        self.machine.handle_tick(now_ticks);
        self.drain()
    }

    /// The next message the machine wants sent.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.machine.poll_transmit()
    }

    /// The encoded anchor `id` from the log, if this driver indexes its log
    /// and still names it.
    pub fn anchor_bytes(&self, id: &Hash32) -> Option<Vec<u8>> {
        let (seq, _) = *self.index.as_ref()?.records.get(id)?;
        anchor_record(&self.log.borrow(), seq)
    }

    /// Logged anchors of birth round `from_round` and above, lowest round
    /// first, at most `max_count` of them and at most `max_bytes` in all
    /// (at least one if any), for a peer's `GetRange`; empty if this driver
    /// does not index its log.
    pub fn anchors_from_round(
        &self,
        from_round: u64,
        max_count: usize,
        max_bytes: usize,
    ) -> Vec<Vec<u8>> {
        let Some(index) = self.index.as_ref() else {
            return Vec::new();
        };
        let log = self.log.borrow();
        let mut out = Vec::new();
        let mut bytes = 0;
        for &(_, seq) in index.by_round.range((from_round, 0)..) {
            if out.len() >= max_count {
                break;
            }
            let Some(body) = anchor_record(&log, seq) else {
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

    /// Installs a crash-injection hook (tests of crash recovery).
    pub fn set_crash_hook(&mut self, hook: CrashHook) {
        self.crash_hook = Some(hook);
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

    /// The counters so far.
    pub fn counters(&self) -> &ShardCounters {
        &self.counters
    }

    /// Takes in one anchor (its id and birth round known to the caller for
    /// latency bookkeeping), appends the records the machine emits and
    /// records finalized rounds. A refused anchor is counted, not fatal.
    pub fn handle_anchor(
        &mut self,
        bytes: &[u8],
        anchor_id: Hash32,
        birth_round: u64,
    ) -> Result<(), EngineError> {
        self.take_anchor(None, bytes, Some((anchor_id, birth_round)))
            .map(|_| ())
    }

    /// Appends pending records and accounts finalized rounds.
    fn drain(&mut self) -> Result<(), EngineError> {
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
            let seq = self
                .log
                .borrow_mut()
                .append(record.kind as u8, &record.body)?;
            assert_eq!(
                seq, record.token,
                "shard {}: the log and the machine's record stream agree",
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
        let appended = self.log.borrow().next_seq();
        self.counters.log_records = appended;
        self.machine.handle_appended(appended);
        let now = Instant::now();
        let mut rounds_finalized = false;
        while let Some(report) = self.machine.poll_finalized() {
            rounds_finalized = true;
            self.counters.rounds += 1;
            self.counters.last_round = Some(report.round.round);
            if !self.submitted.is_empty() {
                for (id, _) in &report.outcome.outcomes {
                    if let Some(submitted) = self.submitted.remove(id) {
                        let micros = now.duration_since(submitted).as_micros() as u64;
                        self.event_finality_us.saturating_record(micros.max(1));
                        self.interval_event_finality_us
                            .saturating_record(micros.max(1));
                    }
                }
            }
            self.counters.finalized_events += report.outcome.outcomes.len() as u64;
            self.counters.applied_events += report
                .outcome
                .outcomes
                .iter()
                .filter(|(_, outcome)| *outcome == Outcome::Applied)
                .count() as u64;
            for anchor in &report.round.anchors {
                if let Some((arrival, birth_round)) = self.arrivals.remove(&anchor.id) {
                    let micros = now.duration_since(arrival).as_micros() as u64;
                    self.finality_us.saturating_record(micros.max(1));
                    self.finality_rounds
                        .saturating_record(report.round.round.saturating_sub(birth_round).max(1));
                }
            }
        }
        if rounds_finalized {
            // Applying a round frees a round's worth of decoded payloads;
            // glibc keeps freed pages of its arenas resident until trimmed,
            // which would let anonymous RSS drift above the live heap.
            #[cfg(target_env = "gnu")]
            // SAFETY: malloc_trim only returns free arena pages to the OS.
            unsafe {
                libc::malloc_trim(0);
            }
            // Applying a round is when a shard's memory peaks: sample it
            // here too, not only on the control thread's period.
            crate::host::sample_peak_anon_rss();
        }
        Ok(())
    }

    /// Whether the log has records that are not yet durable.
    fn has_dirty(&self) -> bool {
        !self.log.borrow().dirty().is_empty()
    }

    /// Completes a finished asynchronous sync, if any; a failed sync
    /// poisons the log and stops the shard.
    pub fn poll_sync(&mut self) -> Result<(), EngineError> {
        let Some(slot) = &self.sync_in_flight else {
            return Ok(());
        };
        let Some(result) = slot.borrow_mut().take() else {
            return Ok(());
        };
        self.sync_in_flight = None;
        self.finish_sync(result)
    }

    fn finish_sync(&mut self, result: Result<u64, std::io::Error>) -> Result<(), EngineError> {
        match result {
            Ok(upto_seq) => {
                self.log.borrow_mut().mark_durable(upto_seq);
                self.machine.handle_durable(upto_seq);
                self.counters.durable_seq = self.log.borrow().durable_seq();
                Ok(())
            }
            Err(error) => {
                self.log.borrow_mut().mark_sync_failed(&error);
                Err(EngineError::Sync {
                    shard: self.shard,
                    reason: error.to_string(),
                })
            }
        }
    }

    /// Starts an asynchronous `fdatasync` of every dirty range unless one is
    /// already in flight (group commit: everything appended meanwhile goes
    /// with the next one).
    pub async fn start_sync(&mut self) -> Result<(), EngineError> {
        if self.sync_in_flight.is_some() {
            return Ok(());
        }
        let ranges = self.log.borrow().dirty();
        if ranges.is_empty() {
            return Ok(());
        }
        let mut files = Vec::with_capacity(ranges.len());
        for range in &ranges {
            files.push(self.file(&range.path).await?);
        }
        self.files
            .retain(|path, _| ranges.iter().any(|range| &range.path == path));
        let upto_seq = ranges
            .iter()
            .map(|range| range.upto_seq)
            .max()
            .expect("non-empty");
        let slot: SyncSlot = Rc::new(RefCell::new(None));
        let done = slot.clone();
        glommio::spawn_local(async move {
            let mut result = Ok(upto_seq);
            for file in files {
                if let Err(error) = file.fdatasync().await {
                    result = Err(std::io::Error::other(error.to_string()));
                    break;
                }
            }
            *done.borrow_mut() = Some(result);
        })
        .detach();
        self.sync_in_flight = Some(slot);
        Ok(())
    }

    /// Syncs until nothing is dirty (the watermark written by one sync is
    /// made durable by the next).
    pub async fn sync_all(&mut self) -> Result<(), EngineError> {
        for _ in 0..4 {
            while self.sync_in_flight.is_some() {
                self.poll_sync()?;
                if self.sync_in_flight.is_some() {
                    glommio::timer::sleep(Duration::from_micros(50)).await;
                }
            }
            if !self.has_dirty() {
                return Ok(());
            }
            self.start_sync().await?;
        }
        while self.sync_in_flight.is_some() {
            self.poll_sync()?;
            if self.sync_in_flight.is_some() {
                glommio::timer::sleep(Duration::from_micros(50)).await;
            }
        }
        Ok(())
    }

    async fn file(&mut self, path: &Path) -> Result<Rc<BufferedFile>, EngineError> {
        if let Some(file) = self.files.get(path) {
            return Ok(file.clone());
        }
        let file = BufferedFile::open(path)
            .await
            .map_err(|error| EngineError::Sync {
                shard: self.shard,
                reason: format!("open {}: {error}", path.display()),
            })?;
        let file = Rc::new(file);
        self.files.insert(path.to_path_buf(), file.clone());
        Ok(file)
    }

    /// After one input: what the fsync policy asks for.
    pub async fn after_input(&mut self) -> Result<(), EngineError> {
        self.poll_sync()?;
        let durability = self.log.borrow().durability();
        match durability {
            Durability::Always => self.sync_all().await,
            Durability::Batch => self.start_sync().await,
            Durability::Never => Ok(()),
        }
    }

    /// The final report (after `sync_all`).
    pub fn report(self) -> ShardReport {
        let busy = match (self.first_input, self.last_input) {
            (Some(first), Some(last)) => last.duration_since(first),
            _ => Duration::ZERO,
        };
        let mut counters = self.counters;
        counters.signature_verifies = self.verifier.count();
        counters.durable_seq = self.log.borrow().durable_seq();
        counters.log_records = self.log.borrow().next_seq();
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
