//! The validator node (DESIGN §7, §8): every core's shards, logs and QUIC
//! endpoint, the `Hello` admission of peers, gossip and pulls, catch-up by
//! `GetRange`, client submissions and balance queries, the peer book, and
//! graceful shutdown.
//!
//! Each core runs one task that owns its shard drivers, its view of the
//! connections and its peer book. The network driver (`pc_net::driver`)
//! hands it endpoint events through an [`Inbox`]; the other cores hand it
//! forwarded requests and replies through bounded SPSC rings (glommio
//! shared channels). Nothing is shared between cores but those rings and
//! the stop flag.
//!
//! Connections: every core dials every configured peer address (the
//! peer's core 0) and, once the peer's `Hello` says which port serves each
//! shard, the ports of the shards this core owns. Both ends of every
//! connection send their `Hello` first; consensus messages are taken only
//! on a connection whose peer's `Hello` verified against the genesis
//! committee. A connection without a `Hello` (a client) may only submit
//! micro-events and query balances. A message for a shard another core of
//! this node owns is forwarded over the ring to that core, whose answer
//! comes back the same way.
//!
//! Bounds: the inbox holds at most [`MAX_INBOX_BYTES`] of frames (more are
//! dropped and counted: gossip and pulls recover them); each ring holds
//! [`RING_CAPACITY`] messages (a full ring drops and counts); a `Get` or
//! `GetRange` is answered with at most [`MAX_REPLY_ANCHORS`] anchors and
//! stops at the first frame the connection's send queue refuses.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::poll_fn;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glommio::channels::shared_channel::{self, ConnectedSender, SharedReceiver, SharedSender};
use glommio::timer::Timer;
use glommio::{LocalExecutorBuilder, Placement};
use pc_codec::genesis::Genesis;
use pc_codec::ids::{context, derive, shard_of};
use pc_codec::wire::{Decode, Reader};
use pc_codec::{to_hex, Bip340, MicroEvent, SignedAnchorHeader, SigningKey};
use pc_net::driver::{Driver, DriverHandle};
use pc_net::endpoint::{NORMAL_CLOSE_CODE, PROTOCOL_VIOLATION_CODE};
use pc_net::frame::{
    EventOutcome, EventReceipt, RejectReason, MAX_ANCHORS_PER_MESSAGE, MAX_IDS_PER_MESSAGE,
    MAX_RANGE_ANCHORS,
};
use pc_net::peer_book::{PeerBook, PeerEvent};
use pc_net::tls::CERTIFICATE_NAME;
use pc_net::{
    Committee, ConnId, Hello, NetConfig, NetEndpoint, NetEvent, NetMessage, SendError, ShardPort,
    Source, TlsIdentity, ViolationReason,
};
use pc_shard::machine::{
    AnchorStatus, Destination, PeerId, Role, ShardLimits, ShardMessage, SubmitRejected,
};
use pc_storage::{Durability, LogConfig};

use crate::driver::{CrashSite, ShardDriver, ShardReport};
use crate::engine::{prepare_data_dir_for, round_robin, MAX_RECORD_BYTES};
use crate::host::{executor_sizing, memlock_limit_bytes, sample_peak_anon_rss};
use crate::EngineError;

/// Logical tick of the shard machines, in milliseconds.
pub const TICK_MS: u64 = 2;
/// Most bytes of frames waiting in a core's inbox.
pub const MAX_INBOX_BYTES: usize = 64 << 20;
/// Messages each cross-core ring holds.
pub const RING_CAPACITY: usize = 1024;
/// Most anchors sent in answer to one `Get` or `GetRange`.
pub const MAX_REPLY_ANCHORS: usize = 256;
/// Most anchor bytes in one `Anchors` frame of a reply (under the frame cap).
pub const MAX_REPLY_FRAME_BYTES: usize = 3 << 20;
/// Pending anchors (waiting for parents) above which a shard asks a peer
/// for a range of rounds instead of pulling parents one by one.
pub const CATCH_UP_PENDING: usize = 64;
/// Rounds behind its peers past which a shard counts as catching up and
/// refuses client submissions.
pub const CATCH_UP_LAG_ROUNDS: u64 = 50;
/// Least time between two `GetRange`s of one shard.
pub const CATCH_UP_INTERVAL: Duration = Duration::from_millis(200);
/// Anchors asked for by one `GetRange`.
pub const CATCH_UP_ANCHORS: u32 = 256;
/// Longest wait between two dial attempts of one address.
pub const MAX_DIAL_BACKOFF: Duration = Duration::from_secs(4);
/// How often the peer book is written.
pub const BOOK_SAVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long shutdown waits for connections to acknowledge their close.
pub const SHUTDOWN_LINGER: Duration = Duration::from_millis(300);
/// Datagrams for no connection from one address per recorded violation.
pub const UNROUTABLE_PER_VIOLATION: u32 = 16;
/// Source addresses whose unroutable datagrams are counted at once.
const MAX_TRACKED_SOURCES: usize = 4096;
/// Anchors this core serves one peer per shard per second for its `Get`s
/// and `GetRange`s (catch-up asks for 256 every 200 ms), with a burst of
/// as many; a request past the budget is answered in part.
pub const SERVE_ANCHORS_PER_S: u32 = 4096;
/// Micro-events one source (IPv4 address, IPv6 /64) may submit to one core
/// per second (each costs a signature check before the mempool takes it),
/// with a burst of as many; past it they are refused as overloaded,
/// unchecked.
pub const SUBMIT_EVENTS_PER_S: u32 = 8192;
/// Most log lines about misbehaving peers per status interval.
const MAX_PEER_LOG_LINES: u32 = 20;

// A reply never asks for more than a GetRange allows, nor sends more ids or
// anchors per frame than the wire allows.
const _: () = assert!(MAX_REPLY_ANCHORS <= MAX_RANGE_ANCHORS as usize);
const _: () = assert!(CATCH_UP_ANCHORS <= MAX_RANGE_ANCHORS);

/// Where a test crashes the node on purpose: SIGKILL at the `nth` (from 1)
/// occurrence of `site`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashPlan {
    /// The injected point.
    pub site: CrashSite,
    /// Which occurrence.
    pub nth: u64,
}

impl std::str::FromStr for CrashPlan {
    type Err = String;
    /// `after-signing:N`, `after-persisting:N` or `before-sending:N`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (site, nth) = text.split_once(':').unwrap_or((text, "1"));
        let site = match site {
            "after-signing" => CrashSite::AfterSigning,
            "after-persisting" => CrashSite::AfterPersisting,
            "before-sending" => CrashSite::BeforeSending,
            other => {
                return Err(format!(
                "crash point {other:?}: expected after-signing, after-persisting or before-sending"
            ))
            }
        };
        let nth = nth
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("crash point count {nth:?}: expected a positive integer"))?;
        Ok(CrashPlan { site, nth })
    }
}

impl std::fmt::Display for CrashPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let site = match self.site {
            CrashSite::AfterSigning => "after-signing",
            CrashSite::AfterPersisting => "after-persisting",
            CrashSite::BeforeSending => "before-sending",
        };
        write!(f, "{site}:{}", self.nth)
    }
}

/// How to run a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The data dir: genesis copy, `engine.toml`, shard logs, peer books.
    pub data_dir: PathBuf,
    /// The genesis file.
    pub genesis_path: PathBuf,
    /// The validator key (`None`: an observer that sends no `Hello`).
    pub key: Option<SigningKey>,
    /// CPUs to run executors on, one per core.
    pub cpus: Vec<usize>,
    /// Index into `cpus` of every shard's core (`None`: round-robin).
    pub placement: Option<Vec<usize>>,
    /// Log durability.
    pub fsync: Durability,
    /// Log segment size.
    pub segment_bytes: u64,
    /// Address the endpoints bind.
    pub listen: IpAddr,
    /// Port of core 0; core `c` listens on `base_port + c`.
    pub base_port: u16,
    /// Peer addresses to dial (their core 0).
    pub peers: Vec<SocketAddr>,
    /// glommio registered memory per core (`None`: sized to the memlock
    /// limit).
    pub io_memory_bytes: Option<usize>,
    /// Interval of the status lines.
    pub status_interval: Duration,
    /// Stop after this long (`None`: on a signal only).
    pub max_run: Option<Duration>,
    /// Crash on purpose (tests).
    pub crash: Option<CrashPlan>,
    /// Write the node's TLS certificate (DER) here at start-up.
    pub cert_out: Option<PathBuf>,
}

/// What a node reports when it stops.
#[derive(Debug)]
pub struct NodeReport {
    /// Per local shard, in shard order.
    pub shards: Vec<ShardReport>,
    /// Whether a signal stopped it.
    pub stopped_by_signal: bool,
}

/// A request or answer crossing from one core to another.
#[derive(Debug)]
enum CoreMsg {
    /// A message that arrived on `conn` of core `reply_core` for a shard of
    /// the receiving core.
    Request {
        reply_core: usize,
        conn: ConnId,
        remote: SocketAddr,
        peer: Option<PeerId>,
        message: NetMessage,
    },
    /// An answer to send on `conn` of the receiving core.
    Reply { conn: ConnId, message: NetMessage },
}

/// Input of a core's task.
enum CoreInput {
    Net(NetEvent),
    Ring(CoreMsg),
}

/// The queue between the network driver (and ring tasks) and a core's
/// task, with a waker; frames past [`MAX_INBOX_BYTES`] are dropped.
#[derive(Default)]
struct Inbox {
    queue: RefCell<VecDeque<(CoreInput, usize)>>,
    bytes: Cell<usize>,
    dropped: Cell<u64>,
    waker: RefCell<Option<Waker>>,
}

impl Inbox {
    fn push(&self, input: CoreInput) {
        let bytes = match &input {
            CoreInput::Net(NetEvent::Frame { message, .. }) => message_bytes(message),
            CoreInput::Ring(CoreMsg::Request { message, .. } | CoreMsg::Reply { message, .. }) => {
                message_bytes(message)
            }
            _ => 0,
        };
        if bytes > 0 && self.bytes.get() + bytes > MAX_INBOX_BYTES {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        self.bytes.set(self.bytes.get() + bytes);
        self.queue.borrow_mut().push_back((input, bytes));
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    fn pop(&self) -> Option<CoreInput> {
        let (input, bytes) = self.queue.borrow_mut().pop_front()?;
        self.bytes.set(self.bytes.get() - bytes);
        Some(input)
    }

    /// Waits until something is queued or `timeout` passed.
    async fn wait(&self, timeout: Duration) {
        if !self.queue.borrow().is_empty() {
            return;
        }
        let mut timer = Timer::new(timeout);
        poll_fn(|cx| {
            if !self.queue.borrow().is_empty() {
                return Poll::Ready(());
            }
            if Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

/// Approximate heap bytes of a message (what the inbox bound counts).
fn message_bytes(message: &NetMessage) -> usize {
    64 + match message {
        NetMessage::Anchors { anchors, .. } => anchors.iter().map(Vec::len).sum(),
        NetMessage::SubmitMicroEvents { events, .. } => events.iter().map(Vec::len).sum(),
        NetMessage::Announce { ids, .. } | NetMessage::Get { ids, .. } => ids.len() * 32,
        NetMessage::Evidence { bytes, .. } => bytes.len(),
        NetMessage::Receipt { results, .. } => results.len() * 64,
        NetMessage::Hello(hello) => hello.ports.len() * 4 + 96,
        _ => 0,
    }
}

/// Seconds since the Unix epoch (the peer book's clock; never consensus).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Quotes `text` as a JSON string.
fn json_str(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

/// Runs a node until a signal (or `max_run`); returns its shards' reports.
pub fn run(options: NodeOptions) -> Result<NodeReport, EngineError> {
    let genesis = prepare_data_dir_for(
        &options.data_dir,
        &options.genesis_path,
        options.segment_bytes,
        options.fsync,
    )?;
    let shards = genesis.params.shards;
    let cores = options.cpus.len();
    if cores == 0 {
        return Err(EngineError::Config("[engine] cores: at least one".into()));
    }
    let placement = options
        .placement
        .clone()
        .unwrap_or_else(|| round_robin(shards, cores));
    if placement.len() != usize::from(shards) {
        return Err(EngineError::Config(format!(
            "[engine] placement names {} shards but the genesis has {shards}",
            placement.len()
        )));
    }
    if let Some(bad) = placement.iter().find(|c| **c >= cores) {
        return Err(EngineError::Config(format!(
            "[engine] placement names core {bad} but only {cores} are configured"
        )));
    }
    if usize::from(options.base_port) + cores > usize::from(u16::MAX) + 1 || options.base_port == 0
    {
        return Err(EngineError::Config(format!(
            "[net] base_port {}: needs {cores} ports from it",
            options.base_port
        )));
    }
    let log_config = LogConfig {
        segment_bytes: options.segment_bytes,
        durability: options.fsync,
        max_record_bytes: MAX_RECORD_BYTES,
    };
    log_config.validate()?;
    let mut sizing = executor_sizing(memlock_limit_bytes(), cores);
    if let Some(bytes) = options.io_memory_bytes {
        sizing.io_memory_bytes = bytes;
        sizing.ring_depth = if bytes < (1 << 20) { 32 } else { 128 };
    }
    let identity =
        TlsIdentity::generate().map_err(|e| EngineError::Config(format!("TLS identity: {e}")))?;
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
    let hello = options.key.as_ref().map(|key| {
        let mut aux = [0u8; 32];
        aux[..8].copy_from_slice(&unix_now().to_le_bytes());
        Hello::sign(
            key,
            ports.clone(),
            identity.spki_der(),
            &genesis.network(),
            &aux,
        )
    });
    if let Some(key) = &options.key {
        let public = key.public_key();
        match genesis.validators.iter().find(|v| v.key == public) {
            Some(v) => eprintln!(
                r#"{{"type":"node_identity","validator_key":"{}","seats":{}}}"#,
                to_hex(&public),
                v.seats.len()
            ),
            None => eprintln!(
                r#"{{"type":"node_identity","validator_key":"{}","seats":0,"warning":"key is not in the genesis committee: running as an observer, peers will refuse its Hello"}}"#,
                to_hex(&public)
            ),
        }
    }

    // Every ring is built before any core starts: ring[a][b] carries a -> b.
    let mut senders: Vec<Vec<Option<SharedSender<CoreMsg>>>> = (0..cores)
        .map(|_| (0..cores).map(|_| None).collect())
        .collect();
    let mut receivers: Vec<Vec<SharedReceiver<CoreMsg>>> = (0..cores).map(|_| Vec::new()).collect();
    for (a, row) in senders.iter_mut().enumerate() {
        for (b, slot) in row.iter_mut().enumerate() {
            if a != b {
                let (tx, rx) = shared_channel::new_bounded(RING_CAPACITY);
                *slot = Some(tx);
                receivers[b].push(rx);
            }
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut signal_ids = Vec::new();
    for number in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let id = signal_hook::flag::register(number, stop.clone())
            .map_err(|e| EngineError::Config(format!("cannot handle signal {number}: {e}")))?;
        signal_ids.push(id);
    }
    let signalled = Arc::new(AtomicBool::new(false));
    let genesis = Arc::new(genesis);
    let mut handles = Vec::new();
    for (core, cpu) in options.cpus.iter().copied().enumerate() {
        let setup = CoreSetup {
            core,
            genesis: genesis.clone(),
            local_shards: (0..shards)
                .filter(|s| placement[usize::from(*s)] == core)
                .collect(),
            placement: placement.clone(),
            data_dir: options.data_dir.clone(),
            log_config,
            key: options.key.clone(),
            identity: identity.clone(),
            hello: hello.clone(),
            bind: SocketAddr::new(options.listen, options.base_port + core as u16),
            peers: options.peers.clone(),
            rings_out: std::mem::take(&mut senders[core]),
            rings_in: std::mem::take(&mut receivers[core]),
            stop: stop.clone(),
            status_interval: options.status_interval,
            crash: options.crash,
        };
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("pc-node-{core}"))
            .io_memory(sizing.io_memory_bytes)
            .ring_depth(sizing.ring_depth)
            .preempt_timer(Duration::from_millis(10))
            .spawn(move || async move { run_core(setup).await })
            .map_err(|e| EngineError::Config(format!("cannot start executor on cpu {cpu}: {e}")))?;
        handles.push(handle);
    }

    // Control thread: the run limit; signals set the stop flag directly.
    let started = Instant::now();
    let watcher = {
        let stop = stop.clone();
        let signalled = signalled.clone();
        let max_run = options.max_run;
        std::thread::spawn(move || loop {
            if stop.load(Ordering::Relaxed) {
                if max_run.is_none_or(|limit| started.elapsed() < limit) {
                    signalled.store(true, Ordering::Relaxed);
                }
                return;
            }
            if max_run.is_some_and(|limit| started.elapsed() >= limit) {
                stop.store(true, Ordering::Relaxed);
                return;
            }
            sample_peak_anon_rss();
            std::thread::sleep(Duration::from_millis(50));
        })
    };
    let mut reports = Vec::new();
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(core_reports)) => reports.extend(core_reports),
            Ok(Err(error)) => {
                stop.store(true, Ordering::Relaxed);
                first_error.get_or_insert(error);
            }
            Err(error) => {
                stop.store(true, Ordering::Relaxed);
                first_error.get_or_insert(EngineError::Config(format!("core failed: {error}")));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    for id in signal_ids {
        signal_hook::low_level::unregister(id);
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    reports.sort_by_key(|r| r.shard);
    for report in &reports {
        let c = &report.counters;
        let p = |q: f64| report.event_finality_us.value_at_quantile(q);
        eprintln!(
            r#"{{"type":"shard_stopped","shard":{},"restored_anchors":{},"anchors":{},"rounds":{},"last_round":{},"finalized_events":{},"applied_events":{},"log_records":{},"durable_records":{},"event_finality_p50_us":{},"event_finality_p99_us":{},"event_finality_samples":{},"state_root":"{}"}}"#,
            report.shard,
            c.restored_anchors,
            c.anchors,
            c.rounds,
            c.last_round.map_or(-1, |r| r as i64),
            c.finalized_events,
            c.applied_events,
            c.log_records,
            c.durable_seq.map_or(0, |seq| seq + 1),
            p(0.5),
            p(0.99),
            report.event_finality_us.len(),
            to_hex(&report.state_root)
        );
    }
    Ok(NodeReport {
        shards: reports,
        stopped_by_signal: signalled.load(Ordering::Relaxed),
    })
}

/// What a core starts with.
struct CoreSetup {
    core: usize,
    genesis: Arc<Genesis>,
    local_shards: Vec<u16>,
    placement: Vec<usize>,
    data_dir: PathBuf,
    log_config: LogConfig,
    key: Option<SigningKey>,
    identity: TlsIdentity,
    hello: Option<Hello>,
    bind: SocketAddr,
    peers: Vec<SocketAddr>,
    rings_out: Vec<Option<SharedSender<CoreMsg>>>,
    rings_in: Vec<SharedReceiver<CoreMsg>>,
    stop: Arc<AtomicBool>,
    status_interval: Duration,
    crash: Option<CrashPlan>,
}

/// A connection as the core sees it.
#[derive(Debug)]
struct Link {
    remote: SocketAddr,
    /// This core dialed it.
    outgoing: bool,
    /// When a frame last arrived on it (a link to a peer's previous run
    /// hears nothing: the live one is preferred).
    last_heard: Instant,
    /// The peer's verified Hello and its validator index.
    peer: Option<(PeerId, Hello)>,
}

/// An address this core dials.
#[derive(Debug)]
struct DialTarget {
    addr: SocketAddr,
    conn: Option<ConnId>,
    next_attempt: Instant,
    backoff: Duration,
}

/// Rounds `finalized` trails the (f+1)-th highest of `seat_rounds` (one
/// entry per seat, f = (k - 1) / 3): a round at least one honest seat
/// reached, however high f Byzantine seats claim theirs are.
fn round_lag(seat_rounds: &[u64], finalized: Option<u64>) -> u64 {
    let mut rounds = seat_rounds.to_vec();
    rounds.sort_unstable_by(|a, b| b.cmp(a));
    let f = rounds.len().saturating_sub(1) / 3;
    let reached = rounds.get(f).copied().unwrap_or(0);
    reached.saturating_sub(finalized.unwrap_or(0))
}

/// A token bucket: `rate` tokens per second, at most `rate` banked.
#[derive(Debug, Clone, Copy)]
struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn full(rate: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(rate),
            last: now,
        }
    }

    /// Takes up to `wanted` tokens and returns how many it took.
    fn take(&mut self, rate: u32, wanted: usize, now: Instant) -> usize {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(f64::from(rate));
        self.last = self.last.max(now);
        let taken = (wanted as f64).min(self.tokens.floor()).max(0.0);
        self.tokens -= taken;
        taken as usize
    }

    /// Gives back `unused` tokens (never above the burst).
    fn refund(&mut self, rate: u32, unused: usize) {
        self.tokens = (self.tokens + unused as f64).min(f64::from(rate));
    }
}

/// Catch-up bookkeeping of a shard.
#[derive(Debug, Default)]
struct CatchUp {
    last_sent: Option<Instant>,
    next_peer: usize,
    requests: u64,
}

/// A core's state, owned by its task.
struct Core {
    core: usize,
    genesis: Arc<Genesis>,
    committee: Committee,
    own_index: Option<PeerId>,
    placement: Vec<usize>,
    drivers: BTreeMap<u16, ShardDriver>,
    /// Per shard: validator indices holding a seat in it (not this node).
    shard_peers: Vec<Vec<PeerId>>,
    net: DriverHandle,
    hello: Option<Hello>,
    links: BTreeMap<ConnId, Link>,
    targets: Vec<DialTarget>,
    own_addrs: BTreeSet<SocketAddr>,
    rings: Vec<Option<ConnectedSender<CoreMsg>>>,
    book: PeerBook,
    book_dirty: bool,
    catch_up: BTreeMap<u16, CatchUp>,
    crash: Option<CrashPlan>,
    /// Counters for the status line.
    dropped_sends: u64,
    dropped_ring: u64,
    violations: u64,
    refused_hellos: u64,
    peer_log_lines: u32,
    /// Unroutable datagrams per source address.
    unroutable: BTreeMap<SocketAddr, u32>,
    /// Anchors left to serve per (peer, shard).
    serve_budget: BTreeMap<(PeerId, u16), TokenBucket>,
    /// Micro-events left to take per source address.
    submit_budget: BTreeMap<IpAddr, TokenBucket>,
    /// Anchors not served and micro-events not taken for a budget.
    throttled: u64,
    /// Per local shard, per seat: the highest birth round of a validated
    /// anchor of that seat (see [`Core::round_lag`]).
    seat_rounds: BTreeMap<u16, Vec<u64>>,
}

async fn run_core(setup: CoreSetup) -> Result<Vec<ShardReport>, EngineError> {
    let CoreSetup {
        core,
        genesis,
        local_shards,
        placement,
        data_dir,
        log_config,
        key,
        identity,
        hello,
        bind,
        peers,
        rings_out,
        rings_in,
        stop,
        status_interval,
        crash,
    } = setup;
    let own_key = key.as_ref().map(SigningKey::public_key);
    let own_index = own_key.and_then(|k| {
        genesis
            .validators
            .iter()
            .position(|v| v.key == k)
            .map(|i| i as PeerId)
    });
    let crash_seen = Rc::new(Cell::new(0u64));
    let mut drivers = BTreeMap::new();
    for &shard in &local_shards {
        let seat = own_index.and_then(|index| {
            genesis.validators[index as usize]
                .seats
                .iter()
                .find(|s| s.shard == shard)
                .map(|s| s.seat)
        });
        let role = match (seat, &key) {
            (Some(seat), Some(key)) => Role::Seat {
                seat,
                signer: key.clone(),
            },
            _ => Role::Observer,
        };
        let limits = ShardLimits {
            // 20 ms between acknowledgement-only anchors; 200 ms before a
            // pull is asked of everyone.
            ack_interval_ticks: 20 / TICK_MS,
            pull_retry_ticks: 200 / TICK_MS,
            ..ShardLimits::default()
        };
        let mut driver =
            ShardDriver::open_as(&genesis, shard, core, &data_dir, log_config, role, limits)?;
        if let Some(plan) = crash {
            let seen = crash_seen.clone();
            driver.set_crash_hook(Box::new(move |site, shard| {
                if site == plan.site {
                    seen.set(seen.get() + 1);
                    if seen.get() >= plan.nth {
                        eprintln!(
                            r#"{{"type":"crash_injected","site":"{site:?}","shard":{shard},"occurrence":{}}}"#,
                            seen.get()
                        );
                        // SIGKILL, as an operator's `kill -9` or the OOM
                        // killer would: no destructor, no flush, no sync.
                        // SAFETY: kill(2) on this process with a signal
                        // number; nothing else is touched.
                        unsafe {
                            libc::kill(libc::getpid(), libc::SIGKILL);
                        }
                        std::process::abort();
                    }
                }
            }));
        }
        drivers.insert(shard, driver);
    }
    let shard_peers: Vec<Vec<PeerId>> = (0..genesis.params.shards)
        .map(|shard| {
            genesis
                .validators
                .iter()
                .enumerate()
                .filter(|(i, v)| {
                    Some(*i as PeerId) != own_index && v.seats.iter().any(|s| s.shard == shard)
                })
                .map(|(i, _)| i as PeerId)
                .collect()
        })
        .collect();

    // Stateless resets with a key that survives restarts (derived from the
    // validator key and the core): peers of a restarted node drop their
    // connections to its previous run at the first packet.
    let reset_key = key.as_ref().map(|key| {
        let mut material = key.secret_bytes().to_vec();
        material.extend_from_slice(&(core as u64).to_le_bytes());
        blake3::derive_key("phantom-engine v0 QUIC stateless reset key", &material)
    });
    let net_config = NetConfig {
        reset_key,
        ..NetConfig::default()
    };
    let endpoint = NetEndpoint::new(net_config, Some(&identity))
        .map_err(|e| EngineError::Config(format!("QUIC endpoint: {e}")))?;
    let socket = pc_net::driver::bind_udp(bind)
        .map_err(|e| EngineError::Config(format!("[net] cannot bind {bind}: {e}")))?;
    let inbox = Rc::new(Inbox::default());
    let driver = {
        let inbox = inbox.clone();
        Driver::spawn(socket, endpoint, move |event| {
            inbox.push(CoreInput::Net(event))
        })
    };
    let net = driver.handle();
    let mut ring_tasks = Vec::new();
    for receiver in rings_in {
        let inbox = inbox.clone();
        ring_tasks.push(glommio::spawn_local(async move {
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
    let book_path = data_dir.join(format!("peers-core-{core}.book"));
    let book = PeerBook::load(&book_path).map_err(|e| EngineError::Config(e.to_string()))?;
    let now = Instant::now();
    let mut own_addrs = BTreeSet::new();
    own_addrs.insert(bind);
    let mut core_state = Core {
        core,
        committee: Committee::from_genesis(&genesis),
        genesis: genesis.clone(),
        own_index,
        placement,
        drivers,
        shard_peers,
        net: net.clone(),
        hello,
        links: BTreeMap::new(),
        targets: Vec::new(),
        own_addrs,
        rings,
        book,
        book_dirty: false,
        catch_up: BTreeMap::new(),
        crash,
        dropped_sends: 0,
        dropped_ring: 0,
        violations: 0,
        refused_hellos: 0,
        peer_log_lines: 0,
        unroutable: BTreeMap::new(),
        serve_budget: BTreeMap::new(),
        submit_budget: BTreeMap::new(),
        throttled: 0,
        seat_rounds: BTreeMap::new(),
    };
    for addr in peers {
        core_state.add_target(addr, now);
    }
    // Then the validators this core met before (the peer book's dial order:
    // unbanned, scoring well, best first), so a restarted node finds its
    // peers without a configured address.
    let known: Vec<SocketAddr> = core_state
        .book
        .dial_order(unix_now())
        .into_iter()
        .filter(|addr| {
            core_state
                .book
                .get(*addr)
                .and_then(|entry| entry.validator_key)
                .is_some_and(|key| core_state.committee.contains(&key))
        })
        .collect();
    for addr in known {
        core_state.add_target(addr, now);
    }
    eprintln!(
        r#"{{"type":"core_started","core":{core},"listen":"{bind}","shards":{local_shards:?}}}"#
    );

    let started = Instant::now();
    let tick = Duration::from_millis(TICK_MS);
    let mut next_tick = started;
    let mut next_status = started + status_interval;
    let mut next_book_save = started + BOOK_SAVE_INTERVAL;
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed) {
        inbox
            .wait(next_tick.saturating_duration_since(Instant::now()))
            .await;
        let mut handled = 0;
        while let Some(input) = inbox.pop() {
            if let Err(error) = core_state.handle_input(input) {
                result = Err(error);
                break;
            }
            handled += 1;
            if handled >= 256 {
                break;
            }
        }
        if result.is_err() {
            break;
        }
        let now = Instant::now();
        if now >= next_tick {
            let ticks = now.duration_since(started).as_millis() as u64;
            if let Err(error) = core_state.tick(ticks, now) {
                result = Err(error);
                break;
            }
            next_tick = now + tick;
        }
        core_state.route_transmits();
        for driver in core_state.drivers.values_mut() {
            if let Err(error) = driver.after_input().await {
                result = Err(error);
                break;
            }
        }
        if result.is_err() {
            break;
        }
        core_state.route_transmits();
        if now >= next_status {
            core_state.status(started, inbox.dropped.get());
            next_status = now + status_interval;
        }
        if now >= next_book_save {
            core_state.save_book();
            next_book_save = now + BOOK_SAVE_INTERVAL;
        }
        glommio::yield_if_needed().await;
    }
    // Shutdown: intake stops, logs are made durable, what became durable
    // is sent, connections close.
    for driver in core_state.drivers.values_mut() {
        if let Err(error) = driver.sync_all().await {
            result = result.and(Err(error));
        }
    }
    core_state.route_transmits();
    core_state.save_book();
    let stats = driver
        .shutdown(NORMAL_CLOSE_CODE, "shutting down", SHUTDOWN_LINGER)
        .await;
    for task in ring_tasks {
        task.cancel().await;
    }
    if let Ok(stats) = stats {
        eprintln!(
            r#"{{"type":"core_stopped","core":{core},"datagrams_received":{},"datagrams_sent":{}}}"#,
            stats.datagrams_received, stats.datagrams_sent
        );
    }
    result?;
    Ok(core_state
        .drivers
        .into_values()
        .map(ShardDriver::report)
        .collect())
}

impl Core {
    fn add_target(&mut self, addr: SocketAddr, now: Instant) {
        if self.own_addrs.contains(&addr) || self.targets.iter().any(|t| t.addr == addr) {
            return;
        }
        self.targets.push(DialTarget {
            addr,
            conn: None,
            next_attempt: now,
            backoff: Duration::from_millis(100),
        });
    }

    fn record(&mut self, addr: SocketAddr, event: PeerEvent) {
        self.book.record(addr, event, unix_now());
        self.book_dirty = true;
    }

    fn save_book(&mut self) {
        if !self.book_dirty {
            return;
        }
        match self.book.save() {
            Ok(()) => self.book_dirty = false,
            Err(error) => eprintln!(
                r#"{{"type":"peer_book_error","core":{},"error":{}}}"#,
                self.core,
                json_str(&error.to_string())
            ),
        }
    }

    fn log_peer(&mut self, line: String) {
        if self.peer_log_lines < MAX_PEER_LOG_LINES {
            self.peer_log_lines += 1;
            eprintln!("{line}");
        }
    }

    /// A protocol violation of `remote` on `conn` (closed) or before any.
    fn violation(&mut self, remote: SocketAddr, conn: Option<ConnId>, reason: &str) {
        self.violations += 1;
        self.record(remote, PeerEvent::ProtocolViolation);
        let banned = self.book.is_banned(remote, unix_now());
        self.log_peer(format!(
            r#"{{"type":"peer_violation","core":{},"remote":"{remote}","reason":{},"banned":{banned}}}"#,
            self.core,
            json_str(reason)
        ));
        if let Some(conn) = conn {
            self.net
                .close(conn, PROTOCOL_VIOLATION_CODE, "protocol violation");
        }
        if banned {
            self.close_address(remote);
        }
    }

    /// Closes every connection with `remote`.
    fn close_address(&mut self, remote: SocketAddr) {
        let conns: Vec<ConnId> = self
            .links
            .iter()
            .filter(|(_, link)| link.remote == remote)
            .map(|(conn, _)| *conn)
            .collect();
        for conn in conns {
            self.net.close(conn, PROTOCOL_VIOLATION_CODE, "banned");
        }
    }

    fn handle_input(&mut self, input: CoreInput) -> Result<(), EngineError> {
        match input {
            CoreInput::Net(event) => self.handle_net(event),
            CoreInput::Ring(CoreMsg::Request {
                reply_core,
                conn,
                remote,
                peer,
                message,
            }) => self.dispatch(Origin::Remote { reply_core, conn }, remote, peer, message),
            CoreInput::Ring(CoreMsg::Reply { conn, message }) => {
                self.send(conn, &message);
                Ok(())
            }
        }
    }

    fn handle_net(&mut self, event: NetEvent) -> Result<(), EngineError> {
        match event {
            NetEvent::Connected { conn, remote, .. } => {
                if self.book.is_banned(remote, unix_now()) {
                    self.net.close(conn, PROTOCOL_VIOLATION_CODE, "banned");
                    return Ok(());
                }
                let outgoing = self.targets.iter().any(|t| t.conn == Some(conn));
                self.links.insert(
                    conn,
                    Link {
                        remote,
                        outgoing,
                        last_heard: Instant::now(),
                        peer: None,
                    },
                );
                self.record(remote, PeerEvent::Success);
                if let Some(hello) = self.hello.clone() {
                    self.send(conn, &NetMessage::Hello(hello));
                }
                Ok(())
            }
            NetEvent::Frame { conn, message } => self.handle_frame(conn, message),
            NetEvent::Violation { source, reason } => {
                let (remote, conn) = match source {
                    Source::Connection { conn, remote } => (remote, Some(conn)),
                    Source::Address(remote) => (remote, None),
                };
                if matches!(reason, ViolationReason::UnroutableDatagram { .. }) {
                    // Late packets of connections gone (a peer that
                    // restarted, a close still in flight) look the same as
                    // garbage: only every UNROUTABLE_PER_VIOLATION-th
                    // counts, so honest stragglers cost nothing and a
                    // flood is banned within a few hundred datagrams.
                    if self.unroutable.len() >= MAX_TRACKED_SOURCES {
                        self.unroutable.clear();
                    }
                    let count = self.unroutable.entry(remote).or_insert(0);
                    *count += 1;
                    if !(*count).is_multiple_of(UNROUTABLE_PER_VIOLATION) {
                        return Ok(());
                    }
                }
                self.violation(remote, conn, &reason.to_string());
                Ok(())
            }
            NetEvent::Closed {
                conn,
                remote,
                reason,
            } => {
                let link = self.links.remove(&conn);
                let now = Instant::now();
                if let Some(target) = self.targets.iter_mut().find(|t| t.conn == Some(conn)) {
                    target.conn = None;
                    target.next_attempt = now + target.backoff;
                    target.backoff = (target.backoff * 2).min(MAX_DIAL_BACKOFF);
                    if link.is_none() {
                        self.book.record(remote, PeerEvent::Failure, unix_now());
                        self.book_dirty = true;
                    }
                }
                if let Some(Link {
                    peer: Some((peer, _)),
                    ..
                }) = link
                {
                    eprintln!(
                        r#"{{"type":"peer_disconnected","core":{},"peer":{peer},"remote":"{remote}","reason":{}}}"#,
                        self.core,
                        json_str(&reason.to_string())
                    );
                }
                Ok(())
            }
            NetEvent::Refused { remote, reason } => {
                self.log_peer(format!(
                    r#"{{"type":"connection_refused","core":{},"remote":"{remote}","reason":{}}}"#,
                    self.core,
                    json_str(&reason.to_string())
                ));
                Ok(())
            }
        }
    }

    fn handle_frame(&mut self, conn: ConnId, message: NetMessage) -> Result<(), EngineError> {
        let Some(link) = self.links.get_mut(&conn) else {
            return Ok(());
        };
        link.last_heard = Instant::now();
        let remote = link.remote;
        let outgoing = link.outgoing;
        let peer = link.peer.as_ref().map(|(peer, _)| *peer);
        match message {
            NetMessage::Hello(hello) => {
                if peer.is_some() {
                    self.violation(remote, Some(conn), "a second Hello on one connection");
                    return Ok(());
                }
                let spki = self
                    .net
                    .with_endpoint(|e| e.peer_spki(conn).map(<[u8]>::to_vec));
                if let Err(error) = hello.verify(spki.as_deref(), &self.committee, &Bip340) {
                    self.refused_hellos += 1;
                    self.record(remote, PeerEvent::InvalidMessage);
                    eprintln!(
                        r#"{{"type":"peer_refused","core":{},"remote":"{remote}","reason":{}}}"#,
                        self.core,
                        json_str(&error.to_string())
                    );
                    self.net
                        .close(conn, PROTOCOL_VIOLATION_CODE, "hello refused");
                    return Ok(());
                }
                let index = self
                    .genesis
                    .validators
                    .iter()
                    .position(|v| v.key == hello.validator_key)
                    .expect("a verified Hello names a genesis validator")
                    as PeerId;
                if Some(index) == self.own_index {
                    // Dialed ourselves (a peer list naming this node).
                    self.net.close(conn, NORMAL_CLOSE_CODE, "own node");
                    return Ok(());
                }
                self.record(remote, PeerEvent::Hello(hello.validator_key));
                if outgoing {
                    // Dial the ports of this core's shards on that peer too.
                    let now = Instant::now();
                    let shards: Vec<u16> = self.drivers.keys().copied().collect();
                    for shard in shards {
                        if let Some(port) = hello.port_of(shard) {
                            self.add_target(SocketAddr::new(remote.ip(), port), now);
                        }
                    }
                    if let Some(target) = self.targets.iter_mut().find(|t| t.conn == Some(conn)) {
                        target.backoff = Duration::from_millis(100);
                    }
                }
                eprintln!(
                    r#"{{"type":"peer_connected","core":{},"peer":{index},"validator_key":"{}","remote":"{remote}","outgoing":{outgoing}}}"#,
                    self.core,
                    to_hex(&hello.validator_key)
                );
                if let Some(link) = self.links.get_mut(&conn) {
                    link.peer = Some((index, hello));
                }
                Ok(())
            }
            NetMessage::Receipt { .. } | NetMessage::Balance { .. } => {
                // Answers are for clients; a node never asked.
                self.record(remote, PeerEvent::InvalidMessage);
                Ok(())
            }
            other => self.dispatch(Origin::Local(conn), remote, peer, other),
        }
    }

    /// The shard a message is for.
    fn shard_of_message(&self, message: &NetMessage) -> Option<u16> {
        match message {
            NetMessage::Announce { shard, .. }
            | NetMessage::Get { shard, .. }
            | NetMessage::GetRange { shard, .. }
            | NetMessage::Anchors { shard, .. }
            | NetMessage::Evidence { shard, .. }
            | NetMessage::SubmitMicroEvents { shard, .. } => Some(*shard),
            NetMessage::CheckpointSig(sig) => Some(sig.checkpoint.shard),
            NetMessage::BalanceQuery { owner, .. } => {
                Some(shard_of(owner, self.genesis.params.shards))
            }
            _ => None,
        }
    }

    fn dispatch(
        &mut self,
        origin: Origin,
        remote: SocketAddr,
        peer: Option<PeerId>,
        message: NetMessage,
    ) -> Result<(), EngineError> {
        let Some(shard) = self.shard_of_message(&message) else {
            return Ok(());
        };
        let client_message = matches!(
            message,
            NetMessage::SubmitMicroEvents { .. } | NetMessage::BalanceQuery { .. }
        );
        if !client_message && peer.is_none() {
            let conn = match origin {
                Origin::Local(conn) => Some(conn),
                Origin::Remote { .. } => None,
            };
            self.violation(
                remote,
                conn,
                &format!("{} before a verified Hello", message.kind()),
            );
            return Ok(());
        }
        if shard >= self.genesis.params.shards {
            self.record(remote, PeerEvent::InvalidMessage);
            if let NetMessage::SubmitMicroEvents {
                request, events, ..
            } = &message
            {
                let results = events
                    .iter()
                    .map(|bytes| EventReceipt {
                        event_id: undecoded_id(bytes),
                        outcome: EventOutcome::rejected(
                            RejectReason::WrongShard,
                            &format!(
                                "shard {shard}: the genesis has {}",
                                self.genesis.params.shards
                            ),
                        ),
                    })
                    .collect();
                self.reply(
                    origin,
                    NetMessage::Receipt {
                        request: *request,
                        shard,
                        results,
                    },
                );
            }
            return Ok(());
        }
        if !self.drivers.contains_key(&shard) {
            let owner = self.placement[usize::from(shard)];
            let Origin::Local(conn) = origin else {
                return Ok(());
            };
            let forwarded = CoreMsg::Request {
                reply_core: self.core,
                conn,
                remote,
                peer,
                message,
            };
            let sent = self.rings[owner]
                .as_ref()
                .is_some_and(|ring| ring.try_send(forwarded).is_ok());
            if !sent {
                self.dropped_ring += 1;
            }
            return Ok(());
        }
        match message {
            NetMessage::Announce { ids, .. } => {
                let driver = self.drivers.get_mut(&shard).expect("local");
                driver.handle_announce(peer.expect("checked"), &ids)?;
            }
            NetMessage::Get { ids, .. } => {
                let peer = peer.expect("checked");
                let allowed = self.serve_allowance(peer, shard, ids.len());
                let driver = &self.drivers[&shard];
                let anchors: Vec<Vec<u8>> = ids
                    .iter()
                    .take(allowed)
                    .filter_map(|id| driver.anchor_bytes(id))
                    .collect();
                self.serve_refund(peer, shard, allowed - anchors.len());
                self.reply_anchors(origin, shard, anchors);
            }
            NetMessage::GetRange {
                from_round,
                max_count,
                ..
            } => {
                let peer = peer.expect("checked");
                let count = self.serve_allowance(peer, shard, max_count as usize);
                if count == 0 {
                    return Ok(());
                }
                let anchors = self.drivers[&shard].anchors_from_round(
                    from_round,
                    count,
                    4 * MAX_REPLY_FRAME_BYTES,
                );
                self.serve_refund(peer, shard, count.saturating_sub(anchors.len()));
                self.reply_anchors(origin, shard, anchors);
            }
            NetMessage::Anchors { anchors, .. } => {
                let peer = peer.expect("checked");
                let mut valid = 0;
                let mut invalid = None;
                let driver = self.drivers.get_mut(&shard).expect("local");
                let seats = usize::from(self.genesis.params.k);
                let seat_rounds = self
                    .seat_rounds
                    .entry(shard)
                    .or_insert_with(|| vec![0; seats]);
                for bytes in &anchors {
                    match driver.handle_peer_anchor(peer, bytes)? {
                        Ok(AnchorStatus::Inserted | AnchorStatus::Pending) => {
                            valid += 1;
                            // The machine checked the creator's signature.
                            if let Ok(header) = SignedAnchorHeader::decode(&mut Reader::new(bytes))
                            {
                                let creator = usize::from(header.header.creator);
                                if let Some(round) = seat_rounds.get_mut(creator) {
                                    *round = (*round).max(header.header.birth_round);
                                }
                            }
                        }
                        Ok(AnchorStatus::Duplicate | AnchorStatus::Ancient) => {}
                        Err(rejected) => invalid = Some(rejected.to_string()),
                    }
                }
                for _ in 0..valid.min(8) {
                    self.record(remote, PeerEvent::ValidAnchor);
                }
                if let Some(reason) = invalid {
                    self.record(remote, PeerEvent::InvalidMessage);
                    let line = format!(
                        r#"{{"type":"anchor_refused","core":{},"shard":{shard},"peer":{peer},"remote":"{remote}","reason":{}}}"#,
                        self.core,
                        json_str(&reason)
                    );
                    self.log_peer(line);
                }
            }
            NetMessage::CheckpointSig(_) => {
                // Checkpoints serve cross-shard imports, which v0's node
                // does not do yet: taken (the peer is entitled to send
                // them) and dropped.
            }
            NetMessage::Evidence { bytes, .. } => {
                // Relayed equivocation evidence: queued for this seat's next
                // own anchor (once per accused seat). Evidence that does not
                // decode as evidence or does not verify is the sender's
                // fault; a duplicate is not. A node without a seat, or with
                // a full mempool, drops it unchecked.
                let refused = match decode_event(&bytes) {
                    Ok(event @ MicroEvent::Evidence(_)) => {
                        let driver = self.drivers.get_mut(&shard).expect("local");
                        match driver.submit_micro_event(event)? {
                            Err(SubmitRejected::Invalid(reason)) => Some(reason),
                            // Taken, a duplicate, no seat, or a full mempool
                            // (then unchecked): not the sender's fault.
                            _ => None,
                        }
                    }
                    Ok(_) => Some("an Evidence message that holds another micro-event".to_string()),
                    Err(error) => Some(error.to_string()),
                };
                if let Some(reason) = refused {
                    self.record(remote, PeerEvent::InvalidMessage);
                    let line = format!(
                        r#"{{"type":"evidence_refused","core":{},"shard":{shard},"remote":"{remote}","reason":{}}}"#,
                        self.core,
                        json_str(&reason)
                    );
                    self.log_peer(line);
                }
            }
            NetMessage::SubmitMicroEvents {
                request, events, ..
            } => {
                let allowed = self.submit_allowance(remote, events.len());
                let mut results = self.submit(shard, &events[..allowed])?;
                for bytes in &events[allowed..] {
                    results.push(EventReceipt {
                        event_id: event_id_of(bytes),
                        outcome: EventOutcome::rejected(
                            RejectReason::Overloaded,
                            &format!(
                                "more than {SUBMIT_EVENTS_PER_S} micro-events per second from {}",
                                remote.ip()
                            ),
                        ),
                    });
                }
                self.record(remote, PeerEvent::MicroEventBatch);
                self.reply(
                    origin,
                    NetMessage::Receipt {
                        request,
                        shard,
                        results,
                    },
                );
            }
            NetMessage::BalanceQuery { request, owner } => {
                let driver = &self.drivers[&shard];
                let amount = driver.machine().state().balance_of(&owner);
                let finalized_round = driver.counters().last_round.unwrap_or(0);
                self.reply(
                    origin,
                    NetMessage::Balance {
                        request,
                        owner,
                        amount,
                        finalized_round,
                    },
                );
            }
            NetMessage::Hello(_) | NetMessage::Receipt { .. } | NetMessage::Balance { .. } => {}
        }
        Ok(())
    }

    /// Rounds this node's finalization of `shard` trails its peers: the
    /// (f+1)-th highest birth round among the seats' validated anchors (so
    /// at least one honest seat reached it, whatever f Byzantine seats
    /// claim) minus the last finalized round.
    fn round_lag(&self, shard: u16) -> u64 {
        let Some(rounds) = self.seat_rounds.get(&shard) else {
            return 0;
        };
        round_lag(rounds, self.drivers[&shard].counters().last_round)
    }

    /// Takes a client's micro-events into the shard's mempool.
    fn submit(&mut self, shard: u16, events: &[Vec<u8>]) -> Result<Vec<EventReceipt>, EngineError> {
        let lag = self.round_lag(shard);
        let driver = self.drivers.get_mut(&shard).expect("local");
        let mut results = Vec::with_capacity(events.len());
        // A shard that is catching up would judge transfers against a state
        // seconds or minutes old and hold them until it is live again: the
        // client is better served by another node.
        if lag > CATCH_UP_LAG_ROUNDS {
            let detail = format!(
                "shard {shard} is catching up ({lag} rounds behind its peers); submit to another node"
            );
            for bytes in events {
                results.push(EventReceipt {
                    event_id: event_id_of(bytes),
                    outcome: EventOutcome::rejected(RejectReason::Overloaded, &detail),
                });
            }
            return Ok(results);
        }
        for bytes in events {
            let event = match decode_event(bytes) {
                Ok(event) => event,
                Err(error) => {
                    results.push(EventReceipt {
                        event_id: undecoded_id(bytes),
                        outcome: EventOutcome::rejected(
                            RejectReason::Malformed,
                            &error.to_string(),
                        ),
                    });
                    continue;
                }
            };
            let event_id = event.id();
            let outcome = match driver.submit_micro_event(event)? {
                Ok(()) => EventOutcome::Accepted,
                Err(SubmitRejected::NotASeat) => EventOutcome::rejected(
                    RejectReason::Invalid,
                    &format!("this node holds no seat in shard {shard}"),
                ),
                Err(SubmitRejected::MempoolFull { max }) => EventOutcome::rejected(
                    RejectReason::Overloaded,
                    &format!("mempool full ({max} micro-events)"),
                ),
                Err(rejected @ SubmitRejected::EvidenceQueued { .. }) => {
                    EventOutcome::rejected(RejectReason::Duplicate, &rejected.to_string())
                }
                Err(SubmitRejected::Invalid(reason)) => {
                    let class = if reason.contains("signature") {
                        RejectReason::BadSignature
                    } else if reason.contains("shard") {
                        RejectReason::WrongShard
                    } else {
                        RejectReason::Invalid
                    };
                    EventOutcome::rejected(class, &reason)
                }
            };
            results.push(EventReceipt { event_id, outcome });
        }
        Ok(results)
    }

    /// How many of `wanted` anchors `peer` may be served in `shard` now
    /// (at most [`MAX_REPLY_ANCHORS`]); what is then not served goes back
    /// with [`Self::serve_refund`].
    fn serve_allowance(&mut self, peer: PeerId, shard: u16, wanted: usize) -> usize {
        let wanted = wanted.min(MAX_REPLY_ANCHORS);
        let now = Instant::now();
        let allowed = self
            .serve_budget
            .entry((peer, shard))
            .or_insert_with(|| TokenBucket::full(SERVE_ANCHORS_PER_S, now))
            .take(SERVE_ANCHORS_PER_S, wanted, now);
        self.throttled += (wanted - allowed) as u64;
        allowed
    }

    /// Returns `unused` tokens of an allowance: anchors asked for that this
    /// node does not have (or a range that ended early) cost nothing.
    fn serve_refund(&mut self, peer: PeerId, shard: u16, unused: usize) {
        if let Some(bucket) = self.serve_budget.get_mut(&(peer, shard)) {
            bucket.refund(SERVE_ANCHORS_PER_S, unused);
        }
    }

    /// How many of `wanted` micro-events from `remote` are taken now. The
    /// budget is per IPv4 address or IPv6 /64 (one host's share of
    /// addresses), on this core; when [`MAX_TRACKED_SOURCES`] are tracked a
    /// new source evicts the one idle longest, never resetting the others.
    fn submit_allowance(&mut self, remote: SocketAddr, wanted: usize) -> usize {
        let now = Instant::now();
        let source = match remote.ip() {
            IpAddr::V6(ip) => {
                let mut octets = ip.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
            ip => ip,
        };
        if self.submit_budget.len() >= MAX_TRACKED_SOURCES
            && !self.submit_budget.contains_key(&source)
        {
            let idle = self
                .submit_budget
                .iter()
                .min_by_key(|(ip, bucket)| (bucket.last, **ip))
                .map(|(ip, _)| *ip);
            if let Some(ip) = idle {
                self.submit_budget.remove(&ip);
            }
        }
        let allowed = self
            .submit_budget
            .entry(source)
            .or_insert_with(|| TokenBucket::full(SUBMIT_EVENTS_PER_S, now))
            .take(SUBMIT_EVENTS_PER_S, wanted, now);
        self.throttled += (wanted - allowed) as u64;
        allowed
    }

    fn reply_anchors(&mut self, origin: Origin, shard: u16, anchors: Vec<Vec<u8>>) {
        let mut batch = Vec::new();
        let mut bytes = 0;
        for anchor in anchors {
            if !batch.is_empty()
                && (batch.len() >= MAX_ANCHORS_PER_MESSAGE
                    || bytes + anchor.len() > MAX_REPLY_FRAME_BYTES)
            {
                let anchors = std::mem::take(&mut batch);
                if !self.reply(origin, NetMessage::Anchors { shard, anchors }) {
                    return;
                }
                bytes = 0;
            }
            bytes += anchor.len();
            batch.push(anchor);
        }
        if !batch.is_empty() {
            self.reply(
                origin,
                NetMessage::Anchors {
                    shard,
                    anchors: batch,
                },
            );
        }
    }

    /// Sends an answer where the request came from; false if it was dropped.
    fn reply(&mut self, origin: Origin, message: NetMessage) -> bool {
        match origin {
            Origin::Local(conn) => self.send(conn, &message),
            Origin::Remote { reply_core, conn } => {
                let sent = self.rings[reply_core]
                    .as_ref()
                    .is_some_and(|ring| ring.try_send(CoreMsg::Reply { conn, message }).is_ok());
                if !sent {
                    self.dropped_ring += 1;
                }
                sent
            }
        }
    }

    /// Queues a frame on `conn`; false (counted) if it was not queued.
    fn send(&mut self, conn: ConnId, message: &NetMessage) -> bool {
        match self.net.send_frame(conn, message) {
            Ok(()) => true,
            Err(SendError::QueueFull { .. }) | Err(SendError::TooLarge(_)) => {
                self.dropped_sends += 1;
                false
            }
            Err(SendError::UnknownConnection { .. }) | Err(SendError::Closed { .. }) => false,
        }
    }

    /// The connection to send `shard`'s traffic for `peer` on: a verified
    /// outgoing one to the port the peer's Hello gives for the shard, else
    /// any verified one (outgoing first).
    fn link_for(&self, peer: PeerId, shard: u16) -> Option<ConnId> {
        let mut best: Option<((u8, std::cmp::Reverse<Instant>), ConnId)> = None;
        for (conn, link) in &self.links {
            let Some((index, hello)) = &link.peer else {
                continue;
            };
            if *index != peer {
                continue;
            }
            let right_port = hello.port_of(shard) == Some(link.remote.port());
            let rank = match (right_port, link.outgoing) {
                (true, true) => 0,
                (true, false) => 1,
                (false, true) => 2,
                (false, false) => 3,
            };
            // A link silent for longer than a keep-alive period is ranked
            // below every live one: its peer may have restarted.
            let silent = link.last_heard.elapsed() > Duration::from_secs(6);
            let rank = (
                rank + if silent { 4 } else { 0 },
                std::cmp::Reverse(link.last_heard),
            );
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, *conn));
            }
        }
        best.map(|(_, conn)| conn)
    }

    /// Sends what the shard machines want sent.
    fn route_transmits(&mut self) {
        let shards: Vec<u16> = self.drivers.keys().copied().collect();
        for shard in shards {
            while let Some(transmit) = self.drivers.get_mut(&shard).and_then(|d| d.poll_transmit())
            {
                let messages: Vec<NetMessage> = match transmit.message {
                    ShardMessage::Anchor(bytes) => {
                        if self
                            .crash
                            .is_some_and(|c| c.site == CrashSite::BeforeSending)
                        {
                            if let Some(driver) = self.drivers.get_mut(&shard) {
                                driver.crash_point(CrashSite::BeforeSending);
                            }
                        }
                        vec![NetMessage::Anchors {
                            shard,
                            anchors: vec![bytes],
                        }]
                    }
                    ShardMessage::Get(ids) => ids
                        .chunks(MAX_IDS_PER_MESSAGE)
                        .map(|ids| NetMessage::Get {
                            shard,
                            ids: ids.to_vec(),
                        })
                        .collect(),
                    ShardMessage::Announce(ids) => ids
                        .chunks(MAX_IDS_PER_MESSAGE)
                        .map(|ids| NetMessage::Announce {
                            shard,
                            ids: ids.to_vec(),
                        })
                        .collect(),
                };
                let peers: Vec<PeerId> = match transmit.destination {
                    Destination::Broadcast => self.shard_peers[usize::from(shard)].clone(),
                    Destination::Peer(peer) => vec![peer],
                };
                for peer in peers {
                    if let Some(conn) = self.link_for(peer, shard) {
                        for message in &messages {
                            self.send(conn, message);
                        }
                    }
                }
            }
        }
    }

    /// Ticks the machines, dials, asks for ranges when far behind.
    fn tick(&mut self, ticks: u64, now: Instant) -> Result<(), EngineError> {
        for driver in self.drivers.values_mut() {
            driver.handle_tick(ticks)?;
        }
        // Dial.
        let banned_now = unix_now();
        for index in 0..self.targets.len() {
            let target = &self.targets[index];
            if target.conn.is_some() || now < target.next_attempt {
                continue;
            }
            let addr = target.addr;
            if self.book.is_banned(addr, banned_now) {
                self.targets[index].next_attempt = now + MAX_DIAL_BACKOFF;
                continue;
            }
            match self.net.connect(addr, CERTIFICATE_NAME) {
                Ok(conn) => {
                    self.targets[index].conn = Some(conn);
                    self.book.record(addr, PeerEvent::Attempt, banned_now);
                    self.book_dirty = true;
                }
                Err(_) => {
                    let target = &mut self.targets[index];
                    target.next_attempt = now + target.backoff;
                    target.backoff = (target.backoff * 2).min(MAX_DIAL_BACKOFF);
                }
            }
        }
        // Catch-up: a shard holding many anchors whose parents it lacks is
        // behind; it asks one peer at a time for the rounds from where its
        // slowest seat's chain ends.
        let shards: Vec<u16> = self.drivers.keys().copied().collect();
        for shard in shards {
            let driver = &self.drivers[&shard];
            if driver.machine().pending_anchors() < CATCH_UP_PENDING {
                continue;
            }
            let (last_sent, next_peer) = {
                let state = self.catch_up.entry(shard).or_default();
                (state.last_sent, state.next_peer)
            };
            if last_sent.is_some_and(|at| now.duration_since(at) < CATCH_UP_INTERVAL) {
                continue;
            }
            let consensus = driver.machine().consensus();
            let from_round = consensus
                .tips()
                .iter()
                .filter_map(|id| consensus.round(id))
                .min()
                .unwrap_or(0)
                .max(consensus.next_undecided_round().saturating_sub(1));
            let peers = &self.shard_peers[usize::from(shard)];
            if peers.is_empty() {
                continue;
            }
            let mut sent = false;
            let mut advanced = next_peer;
            for attempt in 0..peers.len() {
                let peer = peers[(next_peer + attempt) % peers.len()];
                if let Some(conn) = self.link_for(peer, shard) {
                    advanced = (next_peer + attempt + 1) % peers.len();
                    let message = NetMessage::GetRange {
                        shard,
                        from_round,
                        max_count: CATCH_UP_ANCHORS,
                    };
                    sent = self.net.send_frame(conn, &message).is_ok();
                    break;
                }
            }
            let state = self.catch_up.entry(shard).or_default();
            state.last_sent = Some(now);
            state.next_peer = advanced;
            if sent {
                state.requests += 1;
            }
        }
        Ok(())
    }

    /// One status line per local shard.
    fn status(&mut self, started: Instant, inbox_dropped: u64) {
        self.peer_log_lines = 0;
        let peers: BTreeSet<PeerId> = self
            .links
            .values()
            .filter_map(|l| l.peer.as_ref().map(|(p, _)| *p))
            .collect();
        let elapsed_ms = started.elapsed().as_millis();
        let rss_kib = crate::host::proc_status_kib("RssAnon").unwrap_or(0);
        for (shard, driver) in self.drivers.iter_mut() {
            let interval = driver.take_interval_event_finality();
            let c = driver.counters().clone();
            let machine = driver.machine();
            let catch_up = self.catch_up.get(shard).map_or(0, |c| c.requests);
            eprintln!(
                r#"{{"type":"status","t_ms":{elapsed_ms},"core":{},"shard":{shard},"anchors":{},"rounds":{},"last_round":{},"finalized_events":{},"applied_events":{},"pending":{},"mempool":{},"peers":{},"links":{},"finality_p50_us":{},"finality_p99_us":{},"finality_samples":{},"catch_up_requests":{catch_up},"violations":{},"refused_hellos":{},"dropped_sends":{},"dropped_inbox":{inbox_dropped},"dropped_ring":{},"throttled":{},"anon_rss_kib":{rss_kib},"state_root":"{}"}}"#,
                self.core,
                c.anchors,
                c.rounds,
                c.last_round.map_or(-1, |r| r as i64),
                c.finalized_events,
                c.applied_events,
                machine.pending_anchors(),
                machine.mempool_len(),
                peers.len(),
                self.links.len(),
                interval.value_at_quantile(0.5),
                interval.value_at_quantile(0.99),
                interval.len(),
                self.violations,
                self.refused_hellos,
                self.dropped_sends,
                self.dropped_ring,
                self.throttled,
                to_hex(&machine.state().state_root()),
            );
        }
    }
}

/// Where a message came from, for its answer.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// A connection of this core.
    Local(ConnId),
    /// A connection of another core, forwarded over the ring.
    Remote { reply_core: usize, conn: ConnId },
}

/// The id a receipt names for bytes that do not decode: the BLAKE3 of the
/// bytes under the micro-event context.
fn undecoded_id(bytes: &[u8]) -> pc_codec::Hash32 {
    derive(context::MICRO_EVENT, &[bytes])
}

/// One micro-event, the whole of `bytes`.
fn decode_event(bytes: &[u8]) -> Result<MicroEvent, pc_codec::DecodeError> {
    let mut reader = Reader::new(bytes);
    let event = MicroEvent::decode(&mut reader)?;
    reader.finish()?;
    Ok(event)
}

/// The id a receipt names for `bytes`: the event's, or that of the bytes
/// when they do not decode.
fn event_id_of(bytes: &[u8]) -> pc_codec::Hash32 {
    decode_event(bytes).map_or_else(|_| undecoded_id(bytes), |event| event.id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_lag_ignores_what_f_byzantine_seats_claim() {
        // k = 4, f = 1: one seat claiming round 10^9 moves nothing.
        assert_eq!(round_lag(&[1_000_000_000, 120, 118, 0], Some(110)), 10);
        // Two seats that far ahead include an honest one: far behind.
        assert_eq!(
            round_lag(&[5_000, 4_990, 118, 0], Some(110)),
            4_880,
            "a late node"
        );
        // Live, or ahead of what peers sent: no lag.
        assert_eq!(round_lag(&[100, 100, 100, 100], Some(100)), 0);
        assert_eq!(round_lag(&[3, 2, 1, 0], Some(50)), 0);
        // Nothing finalized yet counts from round 0.
        assert_eq!(round_lag(&[70, 60, 0, 0], None), 60);
        // k = 1: the only seat is this node's own.
        assert_eq!(round_lag(&[0], Some(9)), 0);
        // k = 7, f = 2: the third highest.
        assert_eq!(round_lag(&[900, 900, 40, 40, 40, 40, 40], Some(30)), 10);
    }

    #[test]
    fn token_buckets_give_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(100, start);
        assert_eq!(bucket.take(100, 60, start), 60);
        assert_eq!(bucket.take(100, 60, start), 40, "the rest of the burst");
        assert_eq!(bucket.take(100, 10, start), 0, "empty");
        let later = start + Duration::from_millis(250);
        assert_eq!(
            bucket.take(100, 60, later),
            25,
            "a quarter second refills 25"
        );
        let much_later = later + Duration::from_secs(60);
        assert_eq!(
            bucket.take(100, 1000, much_later),
            100,
            "never more than a burst"
        );
        // A clock that goes backwards refills nothing.
        assert_eq!(bucket.take(100, 1, start), 0);
    }

    #[test]
    fn crash_plans_parse_and_bad_ones_name_the_problem() {
        assert_eq!(
            "after-signing:3".parse::<CrashPlan>().unwrap(),
            CrashPlan {
                site: CrashSite::AfterSigning,
                nth: 3
            }
        );
        assert_eq!(
            "before-sending".parse::<CrashPlan>().unwrap().site,
            CrashSite::BeforeSending
        );
        let plan: CrashPlan = "after-persisting:7".parse().unwrap();
        assert_eq!(plan.to_string().parse::<CrashPlan>().unwrap(), plan);
        assert!("sideways:1"
            .parse::<CrashPlan>()
            .unwrap_err()
            .contains("sideways"));
        assert!("after-persisting:0"
            .parse::<CrashPlan>()
            .unwrap_err()
            .contains("positive"));
    }

    #[test]
    fn the_inbox_drops_frames_past_its_byte_bound_but_never_connection_events() {
        let inbox = Inbox::default();
        let big = NetMessage::Anchors {
            shard: 0,
            anchors: vec![vec![0u8; MAX_INBOX_BYTES / 2]],
        };
        let frame = |message: &NetMessage| {
            CoreInput::Net(NetEvent::Frame {
                conn: ConnId(1),
                message: message.clone(),
            })
        };
        inbox.push(frame(&big));
        inbox.push(frame(&big));
        assert_eq!(
            inbox.dropped.get(),
            1,
            "the second half-bound frame overflows"
        );
        inbox.push(CoreInput::Net(NetEvent::Refused {
            remote: "127.0.0.1:1".parse().unwrap(),
            reason: pc_net::CloseReason::ConnectionLimit,
        }));
        assert_eq!(inbox.dropped.get(), 1, "non-frame events always queue");
        assert!(matches!(
            inbox.pop(),
            Some(CoreInput::Net(NetEvent::Frame { .. }))
        ));
        assert_eq!(inbox.bytes.get(), 0);
        assert!(matches!(
            inbox.pop(),
            Some(CoreInput::Net(NetEvent::Refused { .. }))
        ));
        assert!(inbox.pop().is_none());
    }
}
