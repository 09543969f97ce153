//! Starting and stopping the engine in one visible place: executors pinned
//! to cores, shards placed on them, every ring built before any shard
//! starts, the control thread, signals and shutdown.
//!
//! Life cycle of a core (a "tile"): init (open and recover its shards'
//! logs, restore their machines, connect its rings) → barrier → optional
//! verify calibration → barrier → run (feed anchors, append, sync, report
//! snapshots) → stop (intake stopped by the control thread or input
//! exhausted; logs made durable) → final report.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use pc_node::CoreMetrics;

use crate::metrics::http::MetricsServer;
use crate::metrics::{Board, BuildInfo, ProcessStats};
use glommio::channels::shared_channel::{self, ConnectedReceiver, SharedReceiver, SharedSender};
use pc_codec::genesis::Genesis;
use pc_codec::Hash32;
use pc_storage::LogConfig;

use crate::config::RuntimeConfig;
use crate::runtime::data_dir::prepare_data_dir_for;
use crate::runtime::driver::{ShardCounters, ShardDriver, ShardReport};
use crate::runtime::host::{sample_peak_anon_rss, VerifyRates, VerifySamples, CALIBRATION_SAMPLES};
use crate::runtime::{self, StopSignals};
use crate::tools::workload::{Workload, WorkloadFile};
use crate::EngineError;

/// Where anchors enter the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// Each core reads the input of its own shards.
    PerCore,
    /// The first core reads every shard's input and hands anchors of
    /// shards on other cores over the SPSC rings (as a single network
    /// endpoint would).
    FirstCore,
    /// Each core opens a QUIC endpoint on `127.0.0.1:base_port + core`
    /// and takes its shards' anchors from there (`bench --network quic`,
    /// see [`crate::tools::quic_intake`]); a shard's input ends when its feeder
    /// closes the connection.
    Quic {
        /// Port of the first core.
        base_port: u16,
    },
}

/// Engine configuration: the runtime's, and how the bench feeds it.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Data dir, cores, placement (`None`: round-robin), storage.
    pub runtime: RuntimeConfig,
    /// Capacity of every cross-core ring, in messages.
    pub ring_capacity: usize,
    /// Input.
    pub workload: Workload,
    /// Where input enters.
    pub intake: Intake,
    /// Stop intake after this long (`None`: run until the input ends or a signal).
    pub max_run: Option<Duration>,
    /// Measure the per-core verify rate on all cores at once before running.
    pub verify_calibration: Option<Duration>,
    /// Interval of metric snapshots to the control thread.
    pub snapshot_interval: Duration,
    /// Stop gracefully on SIGINT/SIGTERM.
    pub handle_signals: bool,
    /// Print a progress line on stderr every second while running.
    pub progress: bool,
    /// Wait this long before taking in the first anchor (lets a supervisor
    /// see the engine up before input ends; 0 for the bench).
    pub start_delay: Duration,
    /// Serve the shards' metrics here while running (`None`: no metrics
    /// are collected).
    pub metrics: Option<std::net::SocketAddr>,
}

/// Interval of the metrics snapshots, when metrics are on.
const METRICS_INTERVAL: Duration = Duration::from_secs(1);

/// What the engine reports when it stops.
#[derive(Debug)]
pub struct EngineReport {
    /// Per shard, in shard order.
    pub shards: Vec<ShardReport>,
    /// BIP-340 verifies per second per core (mean over cores), one at a
    /// time, if measured.
    pub verify_limit_per_s: Option<f64>,
    /// The same samples verified in batches of 256, signatures per second
    /// per core (mean over cores), if measured.
    pub batch_verify_per_s: Option<f64>,
    /// Highest anonymous RSS seen by the control thread, in KiB.
    pub peak_anon_rss_kib: u64,
    /// Whether a signal stopped the run.
    pub stopped_by_signal: bool,
    /// Snapshots received by the control thread.
    pub snapshots: u64,
}

/// A command from the control thread to a core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    /// Stop intake, make logs durable, report.
    Stop,
}

/// A core's metric snapshot for the control thread.
#[derive(Debug, Clone)]
struct Snapshot {
    shard: u16,
    counters: ShardCounters,
    done: bool,
    /// The shard's metrics, once per [`METRICS_INTERVAL`] when they are on.
    metrics: Option<Box<pc_node::ShardMetrics>>,
}

/// An anchor handed from the intake core to the shard's core.
#[derive(Debug)]
struct Handoff {
    bytes: Vec<u8>,
    anchor_id: Hash32,
    birth_round: u64,
}

/// Runs the engine until its input ends, `max_run` passes or a signal
/// arrives; returns every shard's report. Exits cleanly in every case.
pub fn run(config: EngineConfig) -> Result<EngineReport, EngineError> {
    let runtime = &config.runtime;
    let genesis = prepare_data_dir_for(
        &runtime.data_dir,
        &config.workload.genesis_path(),
        runtime.storage.segment_bytes,
        runtime.storage.fsync,
    )?;
    let shards = genesis.params.shards;
    let placement = runtime.placement(shards)?;
    let log_config = runtime.storage.log_config()?;
    let cores = runtime.cpus.len();
    let sizing = runtime.executor_sizing();

    // Every ring is built here, before any executor starts.
    let mut command_tx: Vec<Sender<Command>> = Vec::new();
    let mut command_rx: Vec<Option<Receiver<Command>>> = Vec::new();
    let mut snapshot_rx: Vec<Receiver<Snapshot>> = Vec::new();
    let mut snapshot_tx: Vec<Option<Sender<Snapshot>>> = Vec::new();
    for _ in 0..cores {
        let (tx, rx) = crossbeam_channel::bounded(4);
        command_tx.push(tx);
        command_rx.push(Some(rx));
        let (tx, rx) = crossbeam_channel::bounded(config.ring_capacity.max(16));
        snapshot_tx.push(Some(tx));
        snapshot_rx.push(rx);
    }
    // Intake rings: first core -> each shard placed on another core.
    let mut handoff_tx: Vec<Option<SharedSender<Handoff>>> = (0..shards).map(|_| None).collect();
    let mut handoff_rx: Vec<Option<SharedReceiver<Handoff>>> = (0..shards).map(|_| None).collect();
    if config.intake == Intake::FirstCore {
        for shard in 0..usize::from(shards) {
            if placement[shard] != 0 {
                let (tx, rx) = shared_channel::new_bounded(config.ring_capacity);
                handoff_tx[shard] = Some(tx);
                handoff_rx[shard] = Some(rx);
            }
        }
    }

    let signal = Arc::new(AtomicBool::new(false));
    let signals = if config.handle_signals {
        Some(StopSignals::register(&signal)?)
    } else {
        None
    };

    // The metrics endpoint binds before any core starts: a taken address
    // ends the run before it begins.
    let server = config.metrics.map(MetricsServer::bind).transpose()?;
    let barrier = Arc::new(Barrier::new(cores + 1));
    let samples = Arc::new(VerifySamples::new(CALIBRATION_SAMPLES));
    let genesis = Arc::new(genesis);
    let mut handles = Vec::new();
    for (core, cpu) in runtime.cpus.iter().copied().enumerate() {
        let local_shards: Vec<u16> = (0..shards)
            .filter(|s| placement[usize::from(*s)] == core)
            .collect();
        let tile = CoreTile {
            core,
            cpu,
            shards: local_shards.clone(),
            genesis: genesis.clone(),
            data_dir: runtime.data_dir.clone(),
            log_config,
            snapshot_policy: runtime.storage.snapshot_policy(),
            workload: config.workload.clone(),
            intake: config.intake,
            handoff_out: if core == 0 {
                (0..usize::from(shards))
                    .map(|s| handoff_tx[s].take())
                    .collect()
            } else {
                Vec::new()
            },
            handoff_in: local_shards
                .iter()
                .map(|s| handoff_rx[usize::from(*s)].take())
                .collect(),
            commands: command_rx[core].take().expect("one receiver per core"),
            snapshots: snapshot_tx[core].take().expect("one sender per core"),
            barrier: barrier.clone(),
            samples: samples.clone(),
            calibration: config.verify_calibration,
            snapshot_interval: config.snapshot_interval,
            start_delay: config.start_delay,
            metrics: config.metrics.is_some(),
        };
        // The bench's cores keep the guard's timer only: nothing on them
        // waits for the network (the QUIC intake has its own executor).
        let (handle, _nudge) =
            runtime::spawn_core("pc-core", core, cpu, sizing, move || tile.run())?;
        handles.push(handle);
    }
    drop(handoff_tx);

    // Control thread (this one): waits for the cores, forwards stop
    // commands, reads snapshots, samples memory.
    let control = control_loop(
        &config,
        shards,
        &barrier,
        &signal,
        &command_tx,
        &snapshot_rx,
        server,
    );
    let (outcomes, first_error) = runtime::join_cores(handles, || {});
    drop(signals);
    let mut reports = Vec::new();
    let mut rates = Vec::new();
    for (core_reports, rate) in outcomes {
        reports.extend(core_reports);
        rates.extend(rate);
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    let control = control?;
    reports.sort_by_key(|r| r.shard);
    for report in &reports {
        let c = &report.counters;
        let line = serde_json::json!({
            "type": "shard_stopped",
            "shard": report.shard,
            "restored_anchors": c.restored_anchors,
            "anchors": c.anchors,
            "log_records": c.log_records,
            "durable_records": c.durable_seq.map_or(0, |seq| seq + 1),
            "state_root": pc_codec::to_hex(&report.state_root),
        });
        eprintln!("{line}");
    }
    let cores = rates.len() as f64;
    let verify_limit_per_s =
        (!rates.is_empty()).then(|| rates.iter().map(|r| r.single_per_s).sum::<f64>() / cores);
    let batch_verify_per_s =
        (!rates.is_empty()).then(|| rates.iter().map(|r| r.batch_per_s).sum::<f64>() / cores);
    Ok(EngineReport {
        shards: reports,
        verify_limit_per_s,
        batch_verify_per_s,
        peak_anon_rss_kib: control.peak_anon_rss_kib,
        stopped_by_signal: control.stopped_by_signal,
        snapshots: control.snapshots,
    })
}

struct ControlOutcome {
    peak_anon_rss_kib: u64,
    stopped_by_signal: bool,
    snapshots: u64,
}

fn control_loop(
    config: &EngineConfig,
    shards: u16,
    barrier: &Barrier,
    signal: &AtomicBool,
    commands: &[Sender<Command>],
    snapshots: &[Receiver<Snapshot>],
    mut server: Option<MetricsServer>,
) -> Result<ControlOutcome, EngineError> {
    let cores = snapshots.len();
    // Start-up barrier, then the calibration barrier if any.
    barrier.wait();
    if config.verify_calibration.is_some() {
        barrier.wait();
    }
    let started = Instant::now();
    let line = serde_json::json!({
        "type": "engine_started",
        "shards": shards,
        "cores": cores,
        "fsync": config.runtime.storage.fsync.to_string(),
    });
    eprintln!("{line}");
    if let Some(server) = &server {
        let bound = server.local_addr();
        crate::logging::emit(&pc_node::telemetry::Event::MetricsServing(
            pc_node::telemetry::MetricsServing {
                address: bound.to_string(),
                url: format!("http://{bound}/metrics"),
            },
        ));
    }
    let mut board = Board::default();
    let build = BuildInfo::current();
    let mut outcome = ControlOutcome {
        peak_anon_rss_kib: 0,
        stopped_by_signal: false,
        snapshots: 0,
    };
    let shards_total = usize::from(shards);
    let mut done = vec![false; shards_total];
    let mut latest = vec![ShardCounters::default(); shards_total];
    let mut last_progress = Instant::now();
    let mut stop_sent = false;
    while done.iter().any(|d| !d) {
        let signalled = signal.load(Ordering::Relaxed);
        let expired = config.max_run.is_some_and(|max| started.elapsed() >= max);
        if (signalled || expired) && !stop_sent {
            outcome.stopped_by_signal = signalled;
            for tx in commands {
                // A core that already finished has dropped its receiver.
                let _ = tx.send(Command::Stop);
            }
            stop_sent = true;
        }
        outcome.peak_anon_rss_kib = outcome.peak_anon_rss_kib.max(sample_peak_anon_rss());
        let mut disconnected = 0;
        for rx in snapshots {
            loop {
                match rx.try_recv() {
                    Ok(snapshot) => {
                        outcome.snapshots += 1;
                        if let Some(metrics) = snapshot.metrics {
                            // One board entry per shard (the bench has no
                            // network of its own to report per core).
                            board.update(CoreMetrics {
                                core: usize::from(snapshot.shard),
                                t_us: started.elapsed().as_micros() as u64,
                                p2p: Default::default(),
                                shards: vec![*metrics],
                            });
                        }
                        latest[usize::from(snapshot.shard)] = snapshot.counters;
                        if snapshot.done {
                            done[usize::from(snapshot.shard)] = true;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected += 1;
                        break;
                    }
                }
            }
        }
        if disconnected == cores {
            break;
        }
        if let Some(server) = server.as_mut() {
            server.poll(Instant::now(), || {
                let process = ProcessStats::read(started.elapsed().as_secs_f64());
                crate::metrics::render(&board.view(process, &build))
            });
        }
        if config.progress && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            let events: u64 = latest.iter().map(|c| c.applied_events).sum();
            let anchors: u64 = latest.iter().map(|c| c.anchors).sum();
            eprint!(
                "\rrunning {:>5.1} s: {anchors} anchors, {events} events applied, {:.0} events/s",
                started.elapsed().as_secs_f64(),
                events as f64 / started.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if config.progress {
        eprintln!();
    }
    // The cores' own samples (taken as rounds are applied) count too.
    outcome.peak_anon_rss_kib = outcome.peak_anon_rss_kib.max(sample_peak_anon_rss());
    Ok(outcome)
}

/// One core's work.
struct CoreTile {
    core: usize,
    cpu: usize,
    shards: Vec<u16>,
    genesis: Arc<Genesis>,
    data_dir: PathBuf,
    log_config: LogConfig,
    snapshot_policy: pc_node::SnapshotPolicy,
    workload: Workload,
    intake: Intake,
    /// On the first core with `Intake::FirstCore`: per shard, the ring to its core.
    handoff_out: Vec<Option<SharedSender<Handoff>>>,
    /// Per local shard: the ring from the first core, if its input arrives that way.
    handoff_in: Vec<Option<SharedReceiver<Handoff>>>,
    commands: Receiver<Command>,
    snapshots: Sender<Snapshot>,
    barrier: Arc<Barrier>,
    samples: Arc<VerifySamples>,
    calibration: Option<Duration>,
    snapshot_interval: Duration,
    start_delay: Duration,
    /// Collect metrics (time signature checks and log reads).
    metrics: bool,
}

/// Per-core stop flag, set from the command ring.
struct CoreControl {
    commands: Receiver<Command>,
    stopped: std::cell::Cell<bool>,
}

impl CoreControl {
    fn stopped(&self) -> bool {
        if !self.stopped.get() && self.commands.try_recv() == Ok(Command::Stop) {
            self.stopped.set(true);
        }
        self.stopped.get()
    }
}

type CoreResult = Result<(Vec<ShardReport>, Option<VerifyRates>), EngineError>;

impl CoreTile {
    async fn run(self) -> CoreResult {
        let mut drivers = Vec::new();
        let mut init_error = None;
        for shard in &self.shards {
            match ShardDriver::open(
                &self.genesis,
                *shard,
                self.cpu,
                &self.data_dir,
                self.log_config,
                self.snapshot_policy,
            ) {
                Ok(mut driver) => {
                    if self.metrics {
                        driver.time_for_metrics();
                    }
                    drivers.push(driver)
                }
                Err(error) => {
                    init_error = Some(error);
                    break;
                }
            }
        }
        let mut quic = None;
        if init_error.is_none() {
            if let Intake::Quic { base_port } = self.intake {
                let bind = u16::try_from(usize::from(base_port) + self.core)
                    .map(|port| std::net::SocketAddr::from(([127, 0, 0, 1], port)))
                    .map_err(|_| EngineError::PortRange {
                        base_port,
                        core: self.core,
                    });
                match bind.and_then(|bind| crate::tools::quic_intake::start(bind, &self.shards)) {
                    Ok(intake) => quic = Some(intake),
                    Err(error) => init_error = Some(error),
                }
            }
        }
        // Always reach the barriers, so that one failed core cannot hang the others.
        self.barrier.wait();
        let rate = self.calibration.map(|duration| {
            let rate = self.samples.rates(duration);
            self.barrier.wait();
            rate
        });
        if let Some(error) = init_error {
            return Err(error);
        }
        if !self.start_delay.is_zero() {
            glommio::timer::sleep(self.start_delay).await;
        }
        let control = Rc::new(CoreControl {
            commands: self.commands,
            stopped: std::cell::Cell::new(false),
        });
        let snapshots = Rc::new(self.snapshots);
        let mut tasks = Vec::new();
        let mut handoff_in = self.handoff_in.into_iter();
        let mut net_in = quic
            .as_mut()
            .map(|q| std::mem::take(&mut q.receivers))
            .unwrap_or_default()
            .into_iter();
        for driver in drivers {
            let ring = handoff_in.next().flatten();
            let input = match ring {
                Some(receiver) => Input::Ring(receiver.connect().await),
                None if matches!(self.intake, Intake::Quic { .. }) => Input::Net {
                    receiver: net_in.next().expect("one queue per local shard"),
                    handle: quic.as_ref().expect("started above").handle.clone(),
                },
                None if self.intake == Intake::PerCore || self.core == 0 => {
                    let file = WorkloadFile::open(&self.workload.shard_path(driver.shard()))?;
                    Input::File {
                        file: Rc::new(file),
                        next: 0,
                    }
                }
                None => unreachable!("a shard off the first core has an intake ring"),
            };
            tasks.push(glommio::spawn_local(drive(
                driver,
                input,
                control.clone(),
                snapshots.clone(),
                self.snapshot_interval,
                self.metrics,
            )));
        }
        // The first core forwards input of shards on other cores. The
        // forwarding tasks are awaited below: a local shard that finishes
        // first must not end the executor while another core still waits
        // for its input (the ring would never close).
        let mut intakes = Vec::new();
        for (shard, sender) in self.handoff_out.into_iter().enumerate() {
            let Some(sender) = sender else { continue };
            let sender = sender.connect().await;
            let file = WorkloadFile::open(&self.workload.shard_path(shard as u16))?;
            let control = control.clone();
            let intake = glommio::spawn_local(async move {
                for index in 0..file.len() {
                    if control.stopped() {
                        break;
                    }
                    let item = file.item(index);
                    let handoff = Handoff {
                        bytes: item.bytes.to_vec(),
                        anchor_id: item.anchor_id,
                        birth_round: item.birth_round,
                    };
                    // Back-pressure: waits while the ring is full, but never
                    // past a stop (a blocked `send` is not woken when the
                    // other core stops and drops its receiver).
                    let mut handoff = handoff;
                    let mut stopped = false;
                    loop {
                        match sender.try_send(handoff) {
                            Ok(()) => break,
                            Err(glommio::GlommioError::WouldBlock(
                                glommio::ResourceType::Channel(back),
                            )) if !control.stopped() => {
                                handoff = back;
                                glommio::timer::sleep(Duration::from_micros(50)).await;
                            }
                            // Closed, or stopped while the ring is full.
                            Err(_) => {
                                stopped = true;
                                break;
                            }
                        }
                    }
                    if stopped {
                        break;
                    }
                }
                sender.close();
            });
            intakes.push(intake);
        }
        let mut reports = Vec::new();
        for task in tasks {
            reports.push(task.await?);
        }
        for intake in intakes {
            intake.await;
        }
        if let Some(quic) = quic {
            let _ = quic
                .driver
                .shutdown(
                    pc_net::endpoint::NORMAL_CLOSE_CODE,
                    "bench done",
                    Duration::from_millis(200),
                )
                .await;
        }
        // The rate is measured again after the run and the two averaged,
        // so a host whose speed drifts (a shared VM) is compared with what
        // it did around the run, not only before it. No barrier here: a
        // core that failed never reaches this point, and the cores end
        // their runs at about the same time.
        let rate = match (rate, self.calibration) {
            (Some(before), Some(duration)) => {
                let after = self.samples.rates(duration);
                Some(before.mean(&after))
            }
            (rate, _) => rate,
        };
        Ok((reports, rate))
    }
}

/// Where a driver's anchors come from.
enum Input {
    /// A workload file on this core.
    File { file: Rc<WorkloadFile>, next: usize },
    /// The ring from the intake core.
    Ring(ConnectedReceiver<Handoff>),
    /// The queue from this core's QUIC endpoint; every anchor taken is
    /// answered with an `Announce` of its id (the feeder's credit).
    Net {
        receiver:
            glommio::channels::local_channel::LocalReceiver<crate::tools::quic_intake::NetAnchor>,
        handle: pc_net::driver::DriverHandle,
    },
}

/// Anchors processed between checks of the command ring and the clock.
const CHECK_EVERY_ANCHORS: u64 = 8;

/// Anchors of a workload file looked at together for joint verification
/// of small payloads.
const PREVERIFY_GROUP: usize = 16;

async fn drive(
    mut driver: ShardDriver,
    mut input: Input,
    control: Rc<CoreControl>,
    snapshots: Rc<Sender<Snapshot>>,
    snapshot_interval: Duration,
    metrics: bool,
) -> Result<ShardReport, EngineError> {
    let mut last_snapshot = Instant::now();
    let mut last_metrics = Instant::now();
    let mut taken = 0u64;
    loop {
        if taken.is_multiple_of(CHECK_EVERY_ANCHORS) {
            if control.stopped() {
                break;
            }
            if last_snapshot.elapsed() >= snapshot_interval {
                let metrics = (metrics && last_metrics.elapsed() >= METRICS_INTERVAL).then(|| {
                    last_metrics = Instant::now();
                    Box::new(driver.metrics())
                });
                // A full ring drops the snapshot: the hot path never waits.
                let _ = snapshots.try_send(Snapshot {
                    shard: driver.shard(),
                    counters: driver.counters().clone(),
                    done: false,
                    metrics,
                });
                last_snapshot = Instant::now();
            }
            pc_net::driver::yield_if_needed().await;
        }
        taken += 1;
        match &mut input {
            Input::File { file, next } => {
                if *next >= file.len() {
                    break;
                }
                // The next few anchors' small payloads are verified as one
                // batch before they are taken in one by one.
                if (*next).is_multiple_of(PREVERIFY_GROUP) {
                    let end = (*next + PREVERIFY_GROUP).min(file.len());
                    let items: Vec<&[u8]> = (*next..end).map(|i| file.item(i).bytes).collect();
                    driver.preverify_anchors(&items);
                }
                let item = file.item(*next);
                *next += 1;
                driver.handle_anchor(item.bytes, item.anchor_id, item.birth_round)?;
            }
            Input::Ring(receiver) => match receiver.recv().await {
                Some(handoff) => {
                    driver.handle_anchor(&handoff.bytes, handoff.anchor_id, handoff.birth_round)?
                }
                None => break,
            },
            Input::Net { receiver, handle } => {
                // Wakes now and then to see a stop while no input comes.
                let Some(next) =
                    crate::client::within(Duration::from_millis(100), receiver.recv()).await
                else {
                    continue;
                };
                let Some(anchor) = next else { break };
                let header = <pc_codec::SignedAnchorHeader as pc_codec::Decode>::decode(
                    &mut pc_codec::Reader::new(&anchor.bytes),
                );
                let id = match header {
                    Ok(header) => {
                        let id = header.anchor_id();
                        driver.handle_anchor(&anchor.bytes, id, header.header.birth_round)?;
                        id
                    }
                    // Not an anchor: the machine refuses and counts it.
                    Err(_) => {
                        driver.handle_anchor(&anchor.bytes, [0; 32], 0)?;
                        [0; 32]
                    }
                };
                let _ = handle.send_frame(
                    anchor.conn,
                    &pc_net::NetMessage::Announce {
                        shard: driver.shard(),
                        ids: vec![id],
                    },
                );
                // Lets the endpoint send the credit and read what came.
                pc_net::driver::yield_if_needed().await;
            }
        }
        driver.after_input().await?;
        // An observer's pulls and announces have no one to go to.
        while driver.poll_transmit().is_some() {}
    }
    driver.sync_all().await?;
    let report = driver.report();
    // The final snapshot must arrive: wait for room in the ring.
    let final_snapshot = Snapshot {
        shard: report.shard,
        counters: report.counters.clone(),
        done: true,
        metrics: None,
    };
    let mut pending = Some(final_snapshot);
    while let Some(snapshot) = pending.take() {
        if let Err(crossbeam_channel::TrySendError::Full(snapshot)) = snapshots.try_send(snapshot) {
            pending = Some(snapshot);
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok(report)
}
