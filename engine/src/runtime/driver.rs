//! The I/O half of a shard on its core: its `pc_storage::Log` opened and
//! recovered, the sans-IO [`ShardHost`] (pc-node) restored from it, and
//! durability through io_uring `fdatasync` (glommio) in a background task
//! ([`LogSync`], group commit). [`ShardDriver`] puts the two together for
//! the bench, replay and the seat-driver test; the node's core driver
//! (`node::core_driver`) holds a [`LogSync`] per shard beside its
//! `NodeCore`. Lives on one core; `!Send` by construction (`Rc`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::BufferedFile;
use hdrhistogram::Histogram;
use pc_codec::genesis::Genesis;
use pc_codec::{Hash32, LogRecordKind, MicroEvent};
use pc_node::telemetry::{Event, LogPruned, ShardRestored, SnapshotSkipped};
use pc_node::{ProductShard, ShardHost, ShardStore, SnapshotPolicy};
use pc_shard::machine::{
    AnchorRejected, AnchorStatus, PeerId, Role, ShardLimits, SubmitRejected, Transmit,
};
use pc_storage::{Durability, Log, LogConfig};

pub use pc_node::shard_host::MAX_INDEXED_ANCHORS;
pub use pc_node::{CountingVerifier, CrashSite, ShardCounters, ShardReport};

use crate::runtime::snapshots::{self, Candidate, Candidates};
use crate::EngineError;

/// The log directory of `shard` in a data dir.
pub fn shard_log_dir(data_dir: &Path, shard: u16) -> PathBuf {
    data_dir.join(format!("shard-{shard:03}"))
}

/// Reads every record of `log` as (kind, body); an unknown kind or a bad
/// frame is named by file and offset.
pub fn log_records(log: &Log) -> Result<Vec<(LogRecordKind, &[u8])>, EngineError> {
    log_records_from(log, 0)
}

/// [`log_records`] from record `seq` on.
pub fn log_records_from(log: &Log, seq: u64) -> Result<Vec<(LogRecordKind, &[u8])>, EngineError> {
    let mut records = Vec::new();
    for record in log.iter_from(seq) {
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

/// Opens (and recovers) `shard`'s log in `data_dir` and restores a host of
/// `role` from it: from the newest valid snapshot and the log after it
/// (each snapshot passed over is named with its reason), else from the
/// whole log; prints the `shard_restored` line (which snapshot, how many
/// records replayed). `policy` is the shard's snapshot and pruning policy.
#[allow(clippy::too_many_arguments)]
pub fn open_shard(
    genesis: &Genesis,
    shard: u16,
    core: usize,
    data_dir: &Path,
    config: LogConfig,
    role: Role<pc_shard::machine::SharedSigner>,
    limits: ShardLimits,
    policy: SnapshotPolicy,
) -> Result<(ShardHost, Rc<RefCell<Log>>), EngineError> {
    let dir = shard_log_dir(data_dir, shard);
    let (log, _report) = Log::open(&dir, config)?;
    let log = Rc::new(RefCell::new(log));
    let store: Rc<RefCell<dyn ShardStore>> = log.clone();
    let restore_error = |reason: String| EngineError::Restore {
        shard,
        dir: dir.clone(),
        reason,
    };
    let snapshot_dir = snapshots::snapshot_dir(&dir);
    let mut candidates = Candidates::find(&snapshot_dir, snapshots::scope(genesis, shard))
        .map_err(&restore_error)?;
    let seat = matches!(role, Role::Seat { .. });
    let (mut host, restored, from) = {
        let borrowed = log.borrow();
        let (first, next) = (borrowed.first_seq(), borrowed.next_seq());
        // A seat indexes its whole log to serve peers; an observer reads
        // only the records after its snapshot.
        let mut records = None;
        loop {
            let candidate = candidates.next_valid(first, next);
            let (image, path) = match candidate {
                Some(Candidate { path, image }) => (Some(image), Some(path)),
                None => (None, None),
            };
            let round = image.as_ref().map(|image| image.round);
            let from_seq = match &image {
                Some(image) if !seat => image.next_token,
                _ => first,
            };
            if records.as_ref().is_none_or(|(at, _)| *at != from_seq) {
                records = Some((from_seq, log_records_from(&borrowed, from_seq)?));
            }
            let (_, list) = records.as_ref().expect("read above");
            let role = match &role {
                Role::Observer => Role::Observer,
                Role::Seat { seat, signer } => Role::Seat {
                    seat: *seat,
                    signer: signer.clone(),
                },
            };
            let restored = ShardHost::restore(
                genesis,
                shard,
                core,
                role,
                limits,
                store.clone(),
                image,
                (first, from_seq),
                list.iter().copied(),
            );
            match (restored, path) {
                (Ok((host, restored)), path) => break (host, restored, path.zip(round)),
                (Err(error), Some(path)) => candidates.refused(path, error.to_string()),
                (Err(error), None) => return Err(restore_error(error.to_string())),
            }
        }
    };
    for (file, reason) in &candidates.skipped {
        crate::logging::emit(&Event::SnapshotSkipped(SnapshotSkipped {
            shard,
            file: file.display().to_string(),
            reason: reason.clone(),
        }));
    }
    host.set_snapshots(policy, candidates.marks.clone());
    let durable_seq = log.borrow().durable_seq();
    if let Some(seq) = durable_seq {
        host.handle_durable(seq, 0)?;
    }
    let first = log.borrow().first_seq();
    let replayed = match &from {
        Some(_) => restored.replayed,
        None => restored.records - first,
    };
    crate::logging::emit(&Event::ShardRestored(ShardRestored {
        shard,
        records: restored.records,
        anchors: restored.anchors,
        durable_records: durable_seq.map_or(0, |seq| seq + 1),
        snapshot: from.as_ref().map(|(path, _)| path.display().to_string()),
        snapshot_round: from.as_ref().map(|(_, round)| *round),
        replayed_records: replayed,
        log_first_record: first,
    }));
    Ok((host, log))
}

/// Deletes the sealed segments of `log` wholly below `bound`, oldest first
/// (the directory synced after each); prints a `log_pruned` line when any
/// went. Kill point `prune-between`: after the first of two deletions.
pub fn prune_log(shard: u16, log: &RefCell<Log>, bound: u64) -> Result<(), EngineError> {
    let mut segments = 0u64;
    let mut bytes = 0u64;
    loop {
        let pruned = log.borrow_mut().prune_first_below(bound)?;
        let Some((_, size)) = pruned else {
            break;
        };
        segments += 1;
        bytes += size;
        if segments == 1 && log.borrow().prunable_below(bound) {
            snapshots::crash_point("prune-between");
        }
    }
    if segments > 0 {
        crate::logging::emit(&Event::LogPruned(LogPruned {
            shard,
            segments,
            bytes,
            first_record: log.borrow().first_seq(),
        }));
    }
    Ok(())
}

/// Result of one asynchronous sync: the seq made durable.
type SyncSlot = Rc<RefCell<Option<Result<u64, std::io::Error>>>>;

/// Durability of one shard's log through io_uring `fdatasync`: at most one
/// sync in flight (everything appended meanwhile goes with the next one).
pub struct LogSync {
    shard: u16,
    log: Rc<RefCell<Log>>,
    files: HashMap<PathBuf, Rc<BufferedFile>>,
    in_flight: Option<SyncSlot>,
    /// Called when a sync completes (wakes the core's loop).
    on_done: Option<Rc<dyn Fn()>>,
}

impl LogSync {
    /// Syncs `log` of `shard`; `on_done` runs on the core when a sync
    /// completes.
    pub fn new(shard: u16, log: Rc<RefCell<Log>>, on_done: Option<Rc<dyn Fn()>>) -> LogSync {
        LogSync {
            shard,
            log,
            files: HashMap::new(),
            in_flight: None,
            on_done,
        }
    }

    /// The log.
    pub fn log(&self) -> &Rc<RefCell<Log>> {
        &self.log
    }

    /// Drops the handles of segment files the log no longer holds (pruned),
    /// so their space is freed.
    pub fn forget_pruned(&mut self) {
        let held: std::collections::HashSet<PathBuf> =
            self.log.borrow().segment_paths().into_iter().collect();
        self.files.retain(|path, _| held.contains(path));
    }

    /// The log's durability policy.
    pub fn durability(&self) -> Durability {
        self.log.borrow().durability()
    }

    /// Whether a sync is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Whether the log has records that are not yet durable.
    pub fn has_dirty(&self) -> bool {
        !self.log.borrow().dirty().is_empty()
    }

    /// The seq a finished sync made durable (marked in the log), if one
    /// finished; a failed sync poisons the log and stops the shard.
    pub fn poll(&mut self) -> Result<Option<u64>, EngineError> {
        let Some(slot) = &self.in_flight else {
            return Ok(None);
        };
        let Some(result) = slot.borrow_mut().take() else {
            return Ok(None);
        };
        self.in_flight = None;
        match result {
            Ok(upto_seq) => {
                self.log.borrow_mut().mark_durable(upto_seq);
                Ok(Some(upto_seq))
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
    /// already in flight.
    pub async fn start(&mut self) -> Result<(), EngineError> {
        if self.in_flight.is_some() {
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
        let on_done = self.on_done.clone();
        glommio::spawn_local(async move {
            let mut result = Ok(upto_seq);
            for file in files {
                if let Err(error) = file.fdatasync().await {
                    result = Err(std::io::Error::other(error.to_string()));
                    break;
                }
            }
            *done.borrow_mut() = Some(result);
            if let Some(on_done) = on_done {
                on_done();
            }
        })
        .detach();
        self.in_flight = Some(slot);
        Ok(())
    }

    /// Syncs until nothing is dirty (the watermark written by one sync is
    /// made durable by the next); `durable` hears every seq made durable.
    pub async fn sync_all(&mut self, mut durable: impl FnMut(u64)) -> Result<(), EngineError> {
        for _ in 0..5 {
            while self.in_flight.is_some() {
                if let Some(seq) = self.poll()? {
                    durable(seq);
                } else {
                    glommio::timer::sleep(Duration::from_micros(50)).await;
                }
            }
            if !self.has_dirty() {
                return Ok(());
            }
            self.start().await?;
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
}

/// One shard on its core, for the bench, replay and tests: a [`ShardHost`]
/// over its log and the log's [`LogSync`], timed from its opening.
pub struct ShardDriver {
    host: ShardHost,
    sync: LogSync,
    started: Instant,
    /// The snapshot writer (`None`: snapshots off).
    snapshots: Option<snapshots::CoreSnapshots>,
}

impl ShardDriver {
    /// Opens (and recovers) the shard's log in `data_dir` and restores an
    /// observer machine from it; it takes snapshots and prunes its log as
    /// `policy` says.
    pub fn open(
        genesis: &Genesis,
        shard: u16,
        core: usize,
        data_dir: &Path,
        config: LogConfig,
        policy: SnapshotPolicy,
    ) -> Result<ShardDriver, EngineError> {
        Self::open_as(
            genesis,
            shard,
            core,
            data_dir,
            config,
            Role::Observer,
            ShardLimits::default(),
            policy,
        )
    }

    /// Opens the shard's log and restores a machine of `role` from it. A
    /// seat's host also indexes its log's anchors so that it can serve
    /// peers ([`ShardDriver::anchor_bytes`]).
    #[allow(clippy::too_many_arguments)]
    pub fn open_as(
        genesis: &Genesis,
        shard: u16,
        core: usize,
        data_dir: &Path,
        config: LogConfig,
        role: Role<pc_shard::machine::SharedSigner>,
        limits: ShardLimits,
        policy: SnapshotPolicy,
    ) -> Result<ShardDriver, EngineError> {
        let (host, log) = open_shard(genesis, shard, core, data_dir, config, role, limits, policy)?;
        let snapshots = policy
            .enabled()
            .then(|| snapshots::CoreSnapshots::new(core, data_dir, genesis, [shard], policy.keep));
        Ok(ShardDriver {
            host,
            sync: LogSync::new(shard, log, None),
            started: Instant::now(),
            snapshots,
        })
    }

    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Takes in an anchor from peer `from` and says what became of it (for
    /// the peer's score); only a failing log is an error.
    pub fn handle_peer_anchor(
        &mut self,
        from: PeerId,
        bytes: &[u8],
    ) -> Result<Result<AnchorStatus, AnchorRejected>, EngineError> {
        let now_us = self.now_us();
        Ok(self.host.handle_anchor(Some(from), bytes, None, now_us)?)
    }

    /// Queues a client's micro-event for the seat's next own anchor.
    pub fn submit_micro_event(
        &mut self,
        event: MicroEvent,
    ) -> Result<Result<(), SubmitRejected>, EngineError> {
        let now_us = self.now_us();
        Ok(self.host.submit_micro_event(event, now_us)?)
    }

    /// A peer's tips (an `Announce`).
    pub fn handle_announce(&mut self, from: PeerId, tips: &[Hash32]) -> Result<(), EngineError> {
        let now_us = self.now_us();
        Ok(self.host.handle_announce(from, tips, now_us)?)
    }

    /// Advances the machine's logical time, in its ticks.
    pub fn handle_tick(&mut self, now_ticks: u64) -> Result<(), EngineError> {
        let now_us = self.now_us();
        Ok(self.host.handle_tick(now_ticks, now_us)?)
    }

    /// The next message the machine wants sent.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.host.poll_transmit()
    }

    /// The encoded anchor `id` from the log, if this driver indexes it.
    pub fn anchor_bytes(&self, id: &Hash32) -> Option<Vec<u8>> {
        self.host.anchor_bytes(id)
    }

    /// The machine (read-only: state, consensus, sync statistics).
    pub fn machine(&self) -> &ProductShard {
        self.host.machine()
    }

    /// The shard.
    pub fn shard(&self) -> u16 {
        self.host.shard()
    }

    /// Client micro-event finality latency so far, µs.
    pub fn event_finality_us(&self) -> &Histogram<u64> {
        self.host.event_finality_us()
    }

    /// The counters so far.
    pub fn counters(&self) -> &ShardCounters {
        self.host.counters()
    }

    /// Times signature checks and log reads from now on (metrics).
    pub fn time_for_metrics(&mut self) {
        let started = self.started;
        self.host
            .set_stopwatch(Rc::new(move || started.elapsed().as_nanos() as u64));
    }

    /// The shard's metrics now.
    pub fn metrics(&mut self) -> pc_node::ShardMetrics {
        let now_us = self.started.elapsed().as_micros() as u64;
        self.host.metrics(now_us)
    }

    /// Verifies the small anchors among `items` together before they are
    /// taken in one by one ([`pc_shard::machine::Shard::preverify_anchors`]).
    pub fn preverify_anchors(&mut self, items: &[&[u8]]) {
        self.host.preverify_anchors(items);
    }

    /// Takes in one anchor (its id and birth round known to the caller for
    /// latency bookkeeping). A refused anchor is counted, not fatal.
    pub fn handle_anchor(
        &mut self,
        bytes: &[u8],
        anchor_id: Hash32,
        birth_round: u64,
    ) -> Result<(), EngineError> {
        let now_us = self.now_us();
        let rounds = self.host.counters().rounds;
        // A refused anchor is counted by the host, not fatal.
        let _status =
            self.host
                .handle_anchor(None, bytes, Some((anchor_id, birth_round)), now_us)?;
        if self.host.counters().rounds != rounds {
            crate::runtime::host::after_rounds_applied();
        }
        Ok(())
    }

    /// Completes a finished asynchronous sync, if any.
    pub fn poll_sync(&mut self) -> Result<(), EngineError> {
        if let Some(seq) = self.sync.poll()? {
            let now_us = self.now_us();
            self.host.handle_durable(seq, now_us)?;
        }
        Ok(())
    }

    /// Syncs until nothing is dirty.
    pub async fn sync_all(&mut self) -> Result<(), EngineError> {
        let mut durable = None;
        self.sync.sync_all(|seq| durable = Some(seq)).await?;
        if let Some(seq) = durable {
            let now_us = self.now_us();
            self.host.handle_durable(seq, now_us)?;
        }
        Ok(())
    }

    /// Hands a due snapshot to the writer and applies a written one.
    pub fn pump_snapshots(&mut self) -> Result<(), EngineError> {
        let Some(snapshots) = &self.snapshots else {
            return Ok(());
        };
        snapshots.submit_due(self.host.shard(), &mut self.host);
        while let Some(done) = snapshots.poll() {
            let now_us = self.started.elapsed().as_micros() as u64;
            snapshots::apply(done, &mut self.host, &mut self.sync, now_us)?;
        }
        Ok(())
    }

    /// After one input: what the fsync policy asks for.
    pub async fn after_input(&mut self) -> Result<(), EngineError> {
        self.pump_snapshots()?;
        self.poll_sync()?;
        match self.sync.durability() {
            Durability::Always => self.sync_all().await,
            Durability::Batch => self.sync.start().await,
            Durability::Never => Ok(()),
        }
    }

    /// The final report (after `sync_all`); a snapshot still being
    /// written is finished first.
    pub fn report(mut self) -> ShardReport {
        if let Some(snapshots) = self.snapshots.take() {
            snapshots.finish();
        }
        self.host.report()
    }
}
