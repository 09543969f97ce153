//! The validator node's runtime (DESIGN §7, §8): the data dir and genesis,
//! the TLS identity and `Hello`, one pinned glommio executor per core with
//! its shards' logs and its QUIC endpoint on `addr + core`, the ring mesh
//! between cores, signals, the control thread (run limit, peak RSS, the
//! watchdog of the core loops), the peer-book writer, and the shards'
//! final reports.
//!
//! The node's logic — admission, gossip and pulls, serving, client intake,
//! forwarding between cores — is `pc_node::NodeCore`, one per core, the
//! same state machine the whole-node simulator runs; each core's thin
//! driver ([`core_driver`]) feeds it and carries out what it asks.

mod book_writer;
mod core_driver;
mod inbox;
mod watchdog;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glommio::channels::shared_channel::{SharedReceiver, SharedSender};
use pc_codec::genesis::Genesis;
use pc_codec::{to_hex, SigningKey};
use pc_net::driver::{Driver, ParkNudge};
use pc_net::peer_book::PeerBook;
use pc_net::{Hello, NetConfig, NetEndpoint, ShardPort, TlsIdentity};
use pc_node::telemetry::MetricsServing;
use pc_node::telemetry::{CoreStarted, CrashInjected, Event, NodeIdentity, ShardStopped};
use pc_node::{
    node_shard_limits, CacheCaps, CoreConfig, CoreMetrics, CoreMsg, NodeCore, ShardReport,
};
use pc_shard::machine::{AnchorSigner, PeerId, Role, SharedSigner};
use pc_storage::LogConfig;

pub use book_writer::{BookWriter, BOOK_QUEUE};
pub use inbox::MAX_INBOX_BYTES;
pub use pc_node::CrashPlan;
pub use watchdog::{Heartbeat, Waiting, Watchdog, STALL_AFTER};

use crate::config::{check_base_port, RuntimeConfig};
use crate::metrics::http::MetricsServer;
use crate::metrics::{Board, BuildInfo, ProcessStats};
use crate::runtime::data_dir::prepare_data_dir_for;
use crate::runtime::driver::open_shard;
use crate::runtime::host::sample_peak_anon_rss;
use crate::runtime::{self, RingMesh, StopSignals};
use crate::{logging, EngineError};

/// Messages each cross-core ring holds.
pub const RING_CAPACITY: usize = 1024;

/// How the node signs as its validator.
#[derive(Debug, Clone)]
pub enum ValidatorKey {
    /// The key, held by the node.
    Local(SigningKey),
    /// A signer process listening at this socket (`unix:PATH`), which
    /// holds the key (`phantom-engine signer`).
    Remote(String),
}

/// How to run a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Data dir, cores, placement, logs, executor memory: what the bench
    /// engine runs with too.
    pub runtime: RuntimeConfig,
    /// The genesis file.
    pub genesis_path: PathBuf,
    /// The validator key or its signer (`None`: an observer that sends
    /// no `Hello`).
    pub key: Option<ValidatorKey>,
    /// Address the endpoints bind.
    pub listen: IpAddr,
    /// Port of core 0; core `c` listens on `base_port + c`.
    pub base_port: u16,
    /// Peer addresses to dial (their core 0).
    pub peers: Vec<SocketAddr>,
    /// Interval of the status lines.
    pub status_interval: Duration,
    /// Stop after this long (`None`: on a signal only).
    pub max_run: Option<Duration>,
    /// Crash on purpose (tests).
    pub crash: Option<CrashPlan>,
    /// Equivocate on purpose (tests, devnet `--equivocate`): this node's
    /// seat in shard `.0` signs its own anchor at seq `.1` twice.
    pub equivocate: Option<(u16, u64)>,
    /// Write the node's TLS certificate (DER) here at start-up.
    pub cert_out: Option<PathBuf>,
    /// Where `/metrics` is served (`None`: not served).
    pub metrics: Option<SocketAddr>,
    /// The header/payload cache of every shard.
    pub cache: CacheCaps,
    /// On a data dir restored from a backup: run the seats (holding each
    /// until `G` rounds passed above its highest own seq seen) instead of
    /// as observers.
    pub resume_seat: bool,
}

/// The file in the data dir holding the address a running node serves
/// its metrics at (for `P2pMetricsServe` and operators' scripts).
pub const METRICS_ADDR_FILE: &str = "metrics.addr";

/// What a node reports when it stops.
#[derive(Debug)]
pub struct NodeReport {
    /// Per local shard, in shard order.
    pub shards: Vec<ShardReport>,
    /// Whether a signal stopped it.
    pub stopped_by_signal: bool,
}

/// Seconds since the Unix epoch (the peer book's clock; never consensus).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What every core shares, built once.
struct NodeSetup {
    genesis: Arc<Genesis>,
    placement: Vec<usize>,
    log_config: LogConfig,
    identity: TlsIdentity,
    hello: Option<Hello>,
    own_index: Option<PeerId>,
    /// What the seats sign with, and the signer process behind it if any.
    signer: Option<SharedSigner>,
    remote: Option<Arc<crate::signer::RemoteSigner>>,
    /// BIP-340 verifies per second measured at start-up on this host (the
    /// capacity signal's floor; see `pc_node::capacity`).
    verify_per_s: u64,
    /// The data dir was restored from a backup: its seats run as
    /// observers.
    restored: bool,
}

/// Distinct signed messages and time of the start-up verify measurement.
const VERIFY_SAMPLES: usize = 512;
const VERIFY_MEASURE: std::time::Duration = std::time::Duration::from_millis(150);

/// Checks the options against the genesis; the shared set-up.
fn set_up(options: &NodeOptions) -> Result<NodeSetup, EngineError> {
    let runtime = &options.runtime;
    let genesis = prepare_data_dir_for(
        &runtime.data_dir,
        &options.genesis_path,
        runtime.storage.segment_bytes,
        runtime.storage.fsync,
    )?;
    let shards = genesis.params.shards;
    let placement = runtime.placement(shards)?;
    check_base_port(options.base_port, runtime.cpus.len())?;
    let log_config = runtime.storage.log_config()?;
    let identity = TlsIdentity::generate()?;
    if let Some(path) = &options.cert_out {
        std::fs::write(path, identity.certificate_der().as_ref())
            .map_err(|e| EngineError::io(path, e))?;
    }
    let ports: Vec<ShardPort> = (0..shards)
        .map(|shard| ShardPort {
            shard,
            port: options.base_port + placement[usize::from(shard)] as u16,
        })
        .collect();
    let (signer, remote) = match &options.key {
        None => (None, None),
        Some(ValidatorKey::Local(key)) => (Some(SharedSigner::local(key.clone())), None),
        Some(ValidatorKey::Remote(path)) => {
            let remote = Arc::new(crate::signer::RemoteSigner::connect(path)?);
            let shared: Arc<dyn AnchorSigner + Send + Sync> = remote.clone();
            (Some(SharedSigner(shared)), Some(remote))
        }
    };
    let hello = match (&options.key, &remote) {
        (Some(ValidatorKey::Local(key)), _) => {
            let mut aux = [0u8; 32];
            aux[..8].copy_from_slice(&unix_now().to_le_bytes());
            Some(Hello::sign(
                key,
                ports,
                identity.spki_der(),
                &genesis.network(),
                &aux,
            ))
        }
        // The signer signs the binding of this node's TLS key; the ports
        // are in shard order already.
        (_, Some(remote)) => Some(Hello {
            validator_key: remote.public_key(),
            ports,
            binding_signature: remote.tls_binding(identity.spki_der()),
        }),
        _ => None,
    };
    let own_index = signer.as_ref().and_then(|signer| {
        let public = signer.public_key();
        let index = genesis.validators.iter().position(|v| v.key == public);
        let identity = NodeIdentity {
            validator_key: to_hex(&public),
            seats: index.map_or(0, |i| genesis.validators[i].seats.len()),
            warning: index.is_none().then(|| {
                "key is not in the genesis committee: running as an observer, peers will refuse its Hello".to_string()
            }),
        };
        logging::emit(&Event::NodeIdentity(identity));
        index.map(|i| i as PeerId)
    });
    let restored = runtime
        .data_dir
        .join(crate::tools::backup::RESTORED_MARKER)
        .is_file();
    if restored && own_index.is_some() {
        let note = if options.resume_seat {
            "this data dir was restored from a backup, which may end before this validator's last anchors: --resume-seat: each seat signs again only after G decided rounds without an own anchor above the highest seq it has seen, and then above it"
        } else {
            "this data dir was restored from a backup, which may end before this validator's last anchors: its seats run as observers (they follow and serve, and sign nothing), so no seq is signed twice; --resume-seat resumes them"
        };
        logging::emit(&Event::ConfigNote(pc_node::telemetry::ConfigNote {
            key: crate::tools::backup::RESTORED_MARKER.to_string(),
            note: note.to_string(),
        }));
    }
    let verify_per_s = crate::runtime::host::VerifySamples::new(VERIFY_SAMPLES)
        .verify_rate_per_s(VERIFY_MEASURE) as u64;
    Ok(NodeSetup {
        restored,
        verify_per_s,
        genesis: Arc::new(genesis),
        placement,
        log_config,
        identity,
        hello,
        own_index,
        signer,
        remote,
    })
}

/// What one core's executor starts from.
struct CoreStart {
    core: usize,
    setup: Arc<NodeSetup>,
    options: Arc<NodeOptions>,
    rings_out: Vec<Option<SharedSender<CoreMsg>>>,
    rings_in: Vec<SharedReceiver<CoreMsg>>,
    stop: Arc<AtomicBool>,
    heartbeat: Arc<Heartbeat>,
    books: BookWriter,
    started: Instant,
    metrics: Option<crossbeam_channel::Sender<CoreMetrics>>,
}

/// A core's shards, restored from their logs (with the crash hook of
/// `--crash-at`), and the logs.
type CoreShards = (
    Vec<pc_node::ShardHost>,
    BTreeMap<u16, Rc<RefCell<pc_storage::Log>>>,
);

fn open_core_shards(
    core: usize,
    setup: &NodeSetup,
    options: &NodeOptions,
) -> Result<CoreShards, EngineError> {
    let genesis = &setup.genesis;
    let crash_seen = Rc::new(std::cell::Cell::new(0u64));
    let mut hosts = Vec::new();
    let mut logs = BTreeMap::new();
    for shard in (0..genesis.params.shards).filter(|s| setup.placement[usize::from(*s)] == core) {
        let seat = setup.own_index.and_then(|index| {
            genesis.validators[index as usize]
                .seats
                .iter()
                .find(|s| s.shard == shard)
                .map(|s| s.seat)
        });
        let resuming = setup.restored && options.resume_seat;
        let role = match (seat.filter(|_| !setup.restored || resuming), &setup.signer) {
            (Some(seat), Some(signer)) => Role::Seat {
                seat,
                signer: signer.clone(),
            },
            _ => Role::Observer,
        };
        let (mut host, log) = open_shard(
            genesis,
            shard,
            core,
            &options.runtime.data_dir,
            setup.log_config,
            role,
            node_shard_limits(),
            options.runtime.storage.snapshot_policy(),
        )?;
        if resuming {
            host.hold_for_resume();
        }
        if let Some(plan) = options.crash {
            host.set_crash_hook(crash_hook(plan, crash_seen.clone()));
        }
        if let Some((_, seq)) = options.equivocate.filter(|(s, _)| *s == shard) {
            host.equivocate_at(seq);
        }
        host.set_cache_caps(options.cache);
        hosts.push(host);
        logs.insert(shard, log);
    }
    Ok((hosts, logs))
}

/// The QUIC endpoint of `core` on its port, driven into a new inbox.
fn open_endpoint(
    core: usize,
    setup: &NodeSetup,
    options: &NodeOptions,
) -> Result<(Driver, Rc<inbox::Inbox>, SocketAddr), EngineError> {
    // Stateless resets with a key that survives restarts (derived from the
    // validator key and the core): peers of a restarted node drop their
    // connections to its previous run at the first packet.
    let reset_key = match (&options.key, &setup.remote) {
        (Some(ValidatorKey::Local(key)), _) => Some(crate::signer::reset_secret(key, core as u64)),
        (_, Some(remote)) => Some(remote.reset_secret(core as u64)),
        _ => None,
    };
    let net_config = NetConfig {
        reset_key,
        ..NetConfig::default()
    };
    let endpoint = NetEndpoint::new(net_config, Some(&setup.identity))?;
    let bind = SocketAddr::new(options.listen, options.base_port + core as u16);
    let socket = pc_net::driver::bind_udp(bind)
        .map_err(|source| EngineError::Bind { addr: bind, source })?;
    let inbox = Rc::new(inbox::Inbox::default());
    let driver = {
        let inbox = inbox.clone();
        Driver::spawn(socket, endpoint, move |event| {
            inbox.push(inbox::CoreInput::Net(event))
        })
    };
    Ok((driver, inbox, bind))
}

/// Opens a core's shards, endpoint and book, and runs its driver.
async fn start_core(start: CoreStart) -> Result<Vec<ShardReport>, EngineError> {
    let CoreStart {
        core,
        setup,
        options,
        rings_out,
        rings_in,
        stop,
        heartbeat,
        books,
        started,
        metrics,
    } = start;
    let (mut hosts, logs) = open_core_shards(core, &setup, &options)?;
    for host in &mut hosts {
        host.set_stopwatch(core_driver::stopwatch(started));
    }
    let genesis = &setup.genesis;
    let (driver, inbox, bind) = open_endpoint(core, &setup, &options)?;
    let book_path = options
        .runtime
        .data_dir
        .join(format!("peers-core-{core}.book"));
    let book = PeerBook::load(&book_path)?;
    let shards: Vec<u16> = hosts.iter().map(|h| h.shard()).collect();
    let config = CoreConfig {
        core,
        genesis: genesis.clone(),
        placement: setup.placement.clone(),
        hello: setup.hello.clone(),
        own_index: setup.own_index,
        own_addrs: vec![bind],
        book,
        status_interval_us: options.status_interval.as_micros() as u64,
        crash: options.crash,
        verify_per_s: setup.verify_per_s,
    };
    let node_core = NodeCore::new(config, hosts, core_driver::now(started));
    let started_line = CoreStarted {
        verify_per_s: setup.verify_per_s,
        core,
        listen: bind.to_string(),
        shards,
    };
    logging::emit(&Event::CoreStarted(started_line));
    let policy = options.runtime.storage.snapshot_policy();
    let snapshots = policy.enabled().then(|| {
        crate::runtime::snapshots::CoreSnapshots::new(
            core,
            &options.runtime.data_dir,
            genesis,
            logs.keys().copied(),
            policy.keep,
        )
    });
    core_driver::run_core(core_driver::CoreRun {
        core: node_core,
        logs,
        snapshots,
        driver,
        inbox,
        rings_in,
        rings_out,
        peers: options.peers.clone(),
        stop,
        heartbeat,
        books,
        started,
        metrics,
    })
    .await
}

/// The crash hook of `--crash-at`: SIGKILL at the plan's occurrence.
fn crash_hook(plan: CrashPlan, seen: Rc<std::cell::Cell<u64>>) -> pc_node::CrashHook {
    Box::new(move |site, shard| {
        if site != plan.site {
            return;
        }
        seen.set(seen.get() + 1);
        if seen.get() >= plan.nth {
            let line = CrashInjected {
                site: format!("{site:?}"),
                shard,
                occurrence: seen.get(),
            };
            logging::emit(&Event::CrashInjected(line));
            // SIGKILL, as an operator's `kill -9` or the OOM killer would:
            // no destructor, no flush, no sync.
            // SAFETY: kill(2) on this process with a signal number; nothing
            // else is touched.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            std::process::abort();
        }
    })
}

/// Runs a node until a signal (or `max_run`); returns its shards' reports.
pub fn run(options: NodeOptions) -> Result<NodeReport, EngineError> {
    let setup = Arc::new(set_up(&options)?);
    let cores = options.runtime.cpus.len();
    let server = match options.metrics {
        Some(addr) => Some(serve_metrics(addr)?),
        None => None,
    };
    let (metrics_tx, metrics_rx) = crossbeam_channel::bounded(METRICS_RING * cores.max(1));
    let sizing = options.runtime.executor_sizing();
    let mut rings = RingMesh::new(cores, RING_CAPACITY);
    let stop = Arc::new(AtomicBool::new(false));
    let signals = StopSignals::register(&stop)?;
    let (books, book_thread) = BookWriter::spawn_product(cores);
    let heartbeats: Vec<Arc<Heartbeat>> = (0..cores).map(|_| Arc::default()).collect();
    let started = Instant::now();
    let options = Arc::new(options);
    let mut handles = Vec::new();
    let mut nudges = Vec::new();
    for (core, cpu) in options.runtime.cpus.iter().copied().enumerate() {
        let (rings_out, rings_in) = rings.take(core);
        let start = CoreStart {
            core,
            setup: setup.clone(),
            options: options.clone(),
            rings_out,
            rings_in,
            stop: stop.clone(),
            heartbeat: heartbeats[core].clone(),
            books: books.clone(),
            started,
            metrics: server.is_some().then(|| metrics_tx.clone()),
        };
        let (handle, nudge) =
            runtime::spawn_core("pc-node", core, cpu, sizing, move || start_core(start))?;
        handles.push(handle);
        nudges.push(nudge);
    }
    drop(books);
    let signalled = Arc::new(AtomicBool::new(false));
    let joined = Arc::new(AtomicBool::new(false));
    let control = control_thread(
        Control {
            stop: stop.clone(),
            signalled: signalled.clone(),
            joined: joined.clone(),
            max_run: options.max_run,
            heartbeats,
            nudges,
            metrics: server.map(|server| (server, metrics_rx)),
            data_dir: options.runtime.data_dir.clone(),
        },
        started,
    );
    drop(metrics_tx);
    let (core_reports, first_error) =
        runtime::join_cores(handles, || stop.store(true, Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    joined.store(true, Ordering::Relaxed);
    let _ = control.join();
    let _ = book_thread.join();
    drop(signals);
    if let Some(error) = first_error {
        return Err(error);
    }
    let mut reports: Vec<ShardReport> = core_reports.into_iter().flatten().collect();
    reports.sort_by_key(|r| r.shard);
    for report in &reports {
        logging::emit(&Event::ShardStopped(Box::new(stopped(report))));
    }
    let _ = std::fs::remove_file(options.runtime.data_dir.join(METRICS_ADDR_FILE));
    Ok(NodeReport {
        shards: reports,
        stopped_by_signal: signalled.load(Ordering::Relaxed),
    })
}

/// What the control thread watches.
struct Control {
    stop: Arc<AtomicBool>,
    signalled: Arc<AtomicBool>,
    /// Every core was joined: the control thread ends.
    joined: Arc<AtomicBool>,
    max_run: Option<Duration>,
    heartbeats: Vec<Arc<Heartbeat>>,
    nudges: Vec<Arc<ParkNudge>>,
    /// The `/metrics` endpoint and the ring the cores' snapshots come on.
    metrics: Option<(MetricsServer, crossbeam_channel::Receiver<CoreMetrics>)>,
    /// The data dir (where the metrics address is noted).
    data_dir: PathBuf,
}

/// Snapshots each core may have waiting for the control thread.
const METRICS_RING: usize = 4;

/// Binds the metrics endpoint and says where (the data dir notes the
/// address once the cores run, see [`note_metrics_address`]).
fn serve_metrics(addr: SocketAddr) -> Result<MetricsServer, EngineError> {
    let server = MetricsServer::bind(addr)?;
    let bound = server.local_addr();
    logging::emit(&Event::MetricsServing(MetricsServing {
        address: bound.to_string(),
        url: format!("http://{bound}/metrics"),
    }));
    Ok(server)
}

/// Notes where the metrics are served in the data dir: once the cores
/// run (their logs are locked, so no second node on this data dir wrote
/// it), for `metrics-serve` and operators' scripts.
fn note_metrics_address(data_dir: &std::path::Path, bound: SocketAddr) {
    let path = data_dir.join(METRICS_ADDR_FILE);
    if let Err(error) = std::fs::write(&path, format!("{bound}\n")) {
        tracing::warn!(file = %path.display(), error = %error, "cannot note the metrics address");
    }
}

/// Renders of the exposition are kept this long (or until a core's
/// snapshot comes): a flood of scrapes costs the control thread little.
const RENDER_KEPT: Duration = Duration::from_millis(500);

/// How often the control thread turns: nudges every core's executor
/// ([`ParkNudge`]), checks the run limit, the watchdog and the peak RSS.
const CONTROL_EVERY: Duration = Duration::from_millis(10);

/// The control thread: the run limit (signals set the stop flag
/// directly), the peak RSS, the watchdog of the core loops, and a nudge of
/// every core's executor each turn until the cores are joined (shutdown
/// included), so no executor sleeps for good with runnable tasks.
fn control_thread(control: Control, started: Instant) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut control = control;
        let mut board = Board::default();
        let build = BuildInfo::current();
        let mut rendered: Option<(Instant, String)> = None;
        let mut noted = false;
        let data_dir = control.data_dir.clone();
        let mut watchdog = Watchdog::new(&control.heartbeats, Instant::now());
        let mut stopping = false;
        let mut turns = 0u64;
        while !control.joined.load(Ordering::Relaxed) {
            for nudge in &control.nudges {
                nudge.nudge();
            }
            if !stopping && control.stop.load(Ordering::Relaxed) {
                stopping = true;
                if control
                    .max_run
                    .is_none_or(|limit| started.elapsed() < limit)
                {
                    control.signalled.store(true, Ordering::Relaxed);
                }
            }
            if control
                .max_run
                .is_some_and(|limit| started.elapsed() >= limit)
            {
                control.stop.store(true, Ordering::Relaxed);
            }
            for stall in watchdog.check(Instant::now()) {
                logging::emit(&stall);
            }
            if let Some((server, snapshots)) = control.metrics.as_mut() {
                for snapshot in snapshots.try_iter() {
                    board.update(snapshot);
                    rendered = None;
                    if !noted {
                        noted = true;
                        note_metrics_address(&data_dir, server.local_addr());
                    }
                }
                server.poll(Instant::now(), || match &rendered {
                    Some((at, body)) if at.elapsed() < RENDER_KEPT => body.clone(),
                    _ => {
                        let process = ProcessStats::read(started.elapsed().as_secs_f64());
                        let body = crate::metrics::render(&board.view(process, &build));
                        rendered = Some((Instant::now(), body.clone()));
                        body
                    }
                });
            }
            if turns.is_multiple_of(5) {
                sample_peak_anon_rss();
            }
            turns += 1;
            std::thread::sleep(CONTROL_EVERY);
        }
    })
}

/// A shard's final line.
fn stopped(report: &ShardReport) -> ShardStopped {
    let c = &report.counters;
    let p = |q: f64| report.event_finality_us.value_at_quantile(q);
    ShardStopped {
        shard: report.shard,
        restored_anchors: c.restored_anchors,
        anchors: c.anchors,
        rounds: c.rounds,
        last_round: c.last_round.map_or(-1, |r| r as i64),
        finalized_events: c.finalized_events,
        applied_events: c.applied_events,
        log_records: c.log_records,
        durable_records: c.durable_seq.map_or(0, |seq| seq + 1),
        event_finality_p50_us: p(0.5),
        event_finality_p99_us: p(0.99),
        event_finality_samples: report.event_finality_us.len(),
        state_root: to_hex(&report.state_root),
    }
}
