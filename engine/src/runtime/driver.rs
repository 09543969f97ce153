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
use pc_codec::{Hash32, LogRecordKind, MicroEvent, SigningKey};
use pc_node::telemetry::{Event, ShardRestored};
use pc_node::{ProductShard, ShardHost, ShardStore};
use pc_shard::machine::{
    AnchorRejected, AnchorStatus, PeerId, Role, ShardLimits, SubmitRejected, Transmit,
};
use pc_storage::{Durability, Log, LogConfig};

pub use pc_node::shard_host::MAX_INDEXED_ANCHORS;
pub use pc_node::{CountingVerifier, CrashSite, ShardCounters, ShardReport};

use crate::EngineError;

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

/// Opens (and recovers) `shard`'s log in `data_dir` and restores a host of
/// `role` from it; prints the `shard_restored` line.
pub fn open_shard(
    genesis: &Genesis,
    shard: u16,
    core: usize,
    data_dir: &Path,
    config: LogConfig,
    role: Role<SigningKey>,
    limits: ShardLimits,
) -> Result<(ShardHost, Rc<RefCell<Log>>), EngineError> {
    let dir = shard_log_dir(data_dir, shard);
    let (log, _report) = Log::open(&dir, config)?;
    let log = Rc::new(RefCell::new(log));
    let store: Rc<RefCell<dyn ShardStore>> = log.clone();
    let (mut host, restored) = {
        let borrowed = log.borrow();
        let records = log_records(&borrowed)?;
        ShardHost::restore(genesis, shard, core, role, limits, store, records).map_err(|error| {
            EngineError::Restore {
                shard,
                dir: dir.clone(),
                reason: error.to_string(),
            }
        })?
    };
    let durable_seq = log.borrow().durable_seq();
    if let Some(seq) = durable_seq {
        host.handle_durable(seq, 0)?;
    }
    crate::logging::emit(&Event::ShardRestored(ShardRestored {
        shard,
        records: restored.records,
        anchors: restored.anchors,
        durable_records: durable_seq.map_or(0, |seq| seq + 1),
    }));
    Ok((host, log))
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
    /// seat's host also indexes its log's anchors so that it can serve
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
        let (host, log) = open_shard(genesis, shard, core, data_dir, config, role, limits)?;
        Ok(ShardDriver {
            host,
            sync: LogSync::new(shard, log, None),
            started: Instant::now(),
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

    /// After one input: what the fsync policy asks for.
    pub async fn after_input(&mut self) -> Result<(), EngineError> {
        self.poll_sync()?;
        match self.sync.durability() {
            Durability::Always => self.sync_all().await,
            Durability::Batch => self.sync.start().await,
            Durability::Never => Ok(()),
        }
    }

    /// The final report (after `sync_all`).
    pub fn report(self) -> ShardReport {
        self.host.report()
    }
}
