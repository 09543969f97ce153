//! The thin driver of one core of a node: a glommio task that owns the
//! core's endpoint driver, its shards' logs and their syncs, and the rings;
//! feeds the core's [`NodeCore`] with the time, carries out what it asks
//! ([`NodeIo`]), writes its events as JSON lines, hands peer-book saves to
//! the writer thread, and sleeps until the core's next timeout or input
//! (at most [`MAX_WAIT`]). All node logic is in pc-node.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{atomic::AtomicBool, atomic::Ordering, Arc};
use std::time::{Duration, Instant};

use glommio::channels::shared_channel::{ConnectedSender, SharedReceiver, SharedSender};
use pc_net::driver::{Driver, DriverHandle};
use pc_net::endpoint::NORMAL_CLOSE_CODE;
use pc_net::tls::CERTIFICATE_NAME;
use pc_net::{ConnId, NetMessage, SendError};
use pc_node::telemetry::{CoreStopped, Event, PeerBookError};
use pc_node::{CoreMetrics, CoreMsg, HostStats, NodeCore, NodeIo, Now, ShardHost, ShardReport};
use pc_storage::{Durability, Log};

use super::book_writer::BookWriter;
use super::inbox::{CoreInput, Inbox};
use super::watchdog::{Heartbeat, Waiting};
use crate::runtime::driver::LogSync;
use crate::runtime::snapshots::CoreSnapshots;
use crate::{logging, EngineError};

/// Longest sleep of a core loop.
pub const MAX_WAIT: Duration = Duration::from_millis(100);
/// Inputs handled per turn before timers and syncs get their turn.
pub const INPUTS_PER_TURN: usize = 256;
/// How long shutdown waits for connections to acknowledge their close.
pub const SHUTDOWN_LINGER: Duration = Duration::from_millis(300);

/// What a core's driver runs with (built by `node::run`).
pub(crate) struct CoreRun {
    pub core: NodeCore,
    pub logs: BTreeMap<u16, Rc<RefCell<Log>>>,
    /// The snapshot writer of the core's shards (`None`: snapshots off).
    pub snapshots: Option<CoreSnapshots>,
    pub driver: Driver,
    pub inbox: Rc<Inbox>,
    pub rings_in: Vec<SharedReceiver<CoreMsg>>,
    pub rings_out: Vec<Option<SharedSender<CoreMsg>>>,
    pub peers: Vec<SocketAddr>,
    pub stop: Arc<AtomicBool>,
    pub heartbeat: Arc<Heartbeat>,
    pub books: BookWriter,
    pub started: Instant,
    /// The ring to the control thread's metrics board (`None`: metrics off).
    pub metrics: Option<crossbeam_channel::Sender<CoreMetrics>>,
}

/// The core's monotonic clock in nanoseconds, for the shards' timing of
/// signature checks and store reads (metrics only).
pub(super) fn stopwatch(started: Instant) -> pc_node::Stopwatch {
    Rc::new(move || started.elapsed().as_nanos() as u64)
}

/// The time now, as the node core takes it.
pub(super) fn now(started: Instant) -> Now {
    Now {
        mono_us: started.elapsed().as_micros() as u64,
        unix_s: super::unix_now(),
    }
}

/// The node core's outputs carried out on the endpoint and the rings.
struct CoreIo<'a> {
    net: &'a DriverHandle,
    rings: &'a [Option<ConnectedSender<CoreMsg>>],
}

impl NodeIo for CoreIo<'_> {
    fn send_frame(&mut self, conn: ConnId, message: &NetMessage) -> Result<usize, SendError> {
        self.net.send_frame(conn, message)
    }
    fn close(&mut self, conn: ConnId, code: u32, reason: &str) {
        self.net.close(conn, code, reason);
    }
    fn connect(&mut self, addr: SocketAddr) -> Result<ConnId, String> {
        self.net
            .connect(addr, CERTIFICATE_NAME)
            .map_err(|e| e.to_string())
    }
    fn forward(&mut self, core: usize, message: CoreMsg) -> bool {
        self.rings
            .get(core)
            .and_then(Option::as_ref)
            .is_some_and(|ring| ring.try_send(message).is_ok())
    }
}

/// Runs one core until the stop flag; its shards' reports.
pub(crate) async fn run_core(run: CoreRun) -> Result<Vec<ShardReport>, EngineError> {
    let CoreRun {
        mut core,
        logs,
        snapshots,
        driver,
        inbox,
        rings_in,
        rings_out,
        peers,
        stop,
        heartbeat,
        books,
        started,
        metrics,
    } = run;
    let (ring_tasks, rings) = connect_rings(rings_in, rings_out, &inbox).await;
    let waker = inbox.clone();
    let on_done: Rc<dyn Fn()> = Rc::new(move || waker.wake());
    let mut syncs: BTreeMap<u16, LogSync> = logs
        .into_iter()
        .map(|(shard, log)| (shard, LogSync::new(shard, log, Some(on_done.clone()))))
        .collect();
    core.add_peers(&peers, now(started));
    let net = driver.handle();
    let mut result = Ok(());
    let mut rounds = core.rounds_finalized();
    while !stop.load(Ordering::Relaxed) && result.is_ok() {
        let mut io = CoreIo {
            net: &net,
            rings: &rings,
        };
        result = turn(&mut core, &mut syncs, &mut io, &inbox, &heartbeat, started).await;
        if let (Some(snapshots), true) = (&snapshots, result.is_ok()) {
            result = pump_snapshots(&mut core, snapshots, &mut syncs, now(started));
        }
        emit(&mut core, &books, metrics.as_ref(), now(started));
        if core.rounds_finalized() != rounds {
            rounds = core.rounds_finalized();
            crate::runtime::host::after_rounds_applied();
        }
        heartbeat.turn(Waiting::Yield);
        pc_net::driver::yield_if_needed().await;
    }
    // Shutdown: stop intake, sync the logs, send, save the book, close.
    heartbeat.turn(Waiting::Shutdown);
    let mut io = CoreIo {
        net: &net,
        rings: &rings,
    };
    result = result.and(sync_at_stop(&mut core, &mut syncs, &mut io, started).await);
    emit(&mut core, &books, metrics.as_ref(), now(started));
    // The last save goes to the writer's kept room; it is joined after us.
    if let Some(save) = core.take_book_save() {
        if !books.submit_final(core.index(), save) {
            let line = PeerBookError {
                core: core.index(),
                error: "the peer-book writer is gone; the last save is lost".to_string(),
            };
            logging::emit(&Event::PeerBookError(line));
        }
    }
    stop_endpoint(driver, ring_tasks, core.index()).await;
    // A snapshot still being written finishes (its file is complete and
    // found at the next start); its marker is not logged after the final sync.
    if let Some(snapshots) = snapshots {
        snapshots.finish();
    }
    result?;
    Ok(core
        .into_shards()
        .into_iter()
        .map(ShardHost::report)
        .collect())
}

/// Hands the shards' due snapshots to the writer and applies the written
/// ones (marker record, pruning).
fn pump_snapshots(
    core: &mut NodeCore,
    snapshots: &CoreSnapshots,
    syncs: &mut BTreeMap<u16, LogSync>,
    now: Now,
) -> Result<(), EngineError> {
    for shard in syncs.keys() {
        if let Some(host) = core.shard_mut(*shard) {
            snapshots.submit_due(*shard, host);
        }
    }
    while let Some(done) = snapshots.poll() {
        let shard = match &done {
            Ok(written) => written.shard,
            Err((shard, _)) => *shard,
        };
        if let (Some(host), Some(sync)) = (core.shard_mut(shard), syncs.get_mut(&shard)) {
            crate::runtime::snapshots::apply(done, host, sync, now.mono_us)?;
        }
    }
    Ok(())
}

/// Closes the core's connections (waiting [`SHUTDOWN_LINGER`] for their
/// acknowledgement), ends the ring tasks, prints the `core_stopped` line.
async fn stop_endpoint(driver: Driver, ring_tasks: Vec<glommio::Task<()>>, core: usize) {
    let stats = driver
        .shutdown(NORMAL_CLOSE_CODE, "shutting down", SHUTDOWN_LINGER)
        .await;
    for task in ring_tasks {
        task.cancel().await;
    }
    if let Ok(stats) = stats {
        let stopped = CoreStopped {
            core,
            datagrams_received: stats.datagrams_received,
            datagrams_sent: stats.datagrams_sent,
        };
        logging::emit(&Event::CoreStopped(stopped));
    }
}

/// The ring tasks feeding `inbox` from the other cores, and the connected
/// senders to them.
async fn connect_rings(
    rings_in: Vec<SharedReceiver<CoreMsg>>,
    rings_out: Vec<Option<SharedSender<CoreMsg>>>,
    inbox: &Rc<Inbox>,
) -> (
    Vec<glommio::Task<()>>,
    Vec<Option<ConnectedSender<CoreMsg>>>,
) {
    let mut tasks = Vec::new();
    for receiver in rings_in {
        let inbox = inbox.clone();
        tasks.push(glommio::spawn_local(async move {
            let receiver = receiver.connect().await;
            while let Some(message) = receiver.recv().await {
                inbox.push(CoreInput::Ring(message));
            }
        }));
    }
    let mut rings = Vec::new();
    for sender in rings_out {
        rings.push(match sender {
            Some(sender) => Some(sender.connect().await),
            None => None,
        });
    }
    (tasks, rings)
}

/// Syncs every log until nothing is dirty and tells the core what became
/// durable (its own anchors among it leave now).
async fn sync_at_stop(
    core: &mut NodeCore,
    syncs: &mut BTreeMap<u16, LogSync>,
    io: &mut CoreIo<'_>,
    started: Instant,
) -> Result<(), EngineError> {
    let mut result = Ok(());
    for (shard, sync) in syncs.iter_mut() {
        let mut durable = None;
        result = result.and(sync.sync_all(|seq| durable = Some(seq)).await);
        if let Some(seq) = durable {
            result = result.and(
                core.handle_durable(io, *shard, seq, now(started))
                    .map_err(Into::into),
            );
        }
    }
    result
}

/// One turn: wait for inputs or the next timeout, handle what came, due
/// timers and completed syncs, start the syncs the fsync policy asks for.
async fn turn(
    core: &mut NodeCore,
    syncs: &mut BTreeMap<u16, LogSync>,
    io: &mut CoreIo<'_>,
    inbox: &Inbox,
    heartbeat: &Heartbeat,
    started: Instant,
) -> Result<(), EngineError> {
    let wait_us = core.poll_timeout().saturating_sub(now(started).mono_us);
    heartbeat.turn(Waiting::Inbox);
    let wait = Duration::from_micros(wait_us).min(MAX_WAIT);
    inbox.wait(wait).await;
    heartbeat.turn(Waiting::Working);
    for _ in 0..INPUTS_PER_TURN {
        let Some((input, waited)) = inbox.pop() else {
            break;
        };
        let waited_us = waited.as_micros() as u64;
        match input {
            CoreInput::Net(event) => core.handle_net_after(io, event, waited_us, now(started))?,
            CoreInput::Ring(msg) => core.handle_ring_after(io, msg, waited_us, now(started))?,
        }
    }
    for (shard, sync) in syncs.iter_mut() {
        if let Some(seq) = sync.poll()? {
            core.handle_durable(io, *shard, seq, now(started))?;
        }
    }
    let now_t = now(started);
    if now_t.mono_us >= core.poll_timeout() {
        // /proc is read once per status interval, not per timeout.
        if core.status_due(now_t) {
            core.set_host_stats(HostStats {
                inbox_dropped: inbox.dropped(),
                inbox_frames: inbox.len() as u64,
                ring_depth: inbox.ring_len() as u64,
                round_trips_us: io
                    .net
                    .with_endpoint(|endpoint| endpoint.round_trip_times())
                    .iter()
                    .map(|rtt| rtt.as_micros() as u64)
                    .collect(),
                anon_rss_kib: crate::runtime::host::proc_status_kib("RssAnon").unwrap_or(0),
            });
        }
        core.handle_timeout(io, now_t)?;
    }
    for (shard, sync) in syncs.iter_mut() {
        match sync.durability() {
            Durability::Always => {
                heartbeat.turn(Waiting::LogSync);
                let mut durable = None;
                sync.sync_all(|seq| durable = Some(seq)).await?;
                if let Some(seq) = durable {
                    core.handle_durable(io, *shard, seq, now(started))?;
                }
            }
            // `never` leaves writeback of other records to the OS, but a
            // seat's own anchor is sent only once durable (and only durable
            // records are served): the node syncs in the background as
            // under `batch`, never waiting for it.
            Durability::Batch | Durability::Never => {
                heartbeat.turn(Waiting::OpenFile);
                sync.start().await?;
            }
        }
    }
    Ok(())
}

/// Logs the core's events, hands its metrics snapshot to the control
/// thread (a full ring drops it: the next one follows an interval later)
/// and a due peer-book save to the writer (kept for the next interval if
/// the writer is behind).
fn emit(
    core: &mut NodeCore,
    books: &BookWriter,
    metrics: Option<&crossbeam_channel::Sender<CoreMetrics>>,
    now: Now,
) {
    while let Some(event) = core.poll_event() {
        logging::emit(&event);
    }
    if let Some(snapshot) = core.poll_metrics() {
        if let Some(ring) = metrics {
            let _ = ring.try_send(snapshot);
        }
    }
    if let Some(save) = core.poll_book_save(now) {
        if !books.submit(core.index(), save) {
            core.book_save_refused();
        }
    }
}
