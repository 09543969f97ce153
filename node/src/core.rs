//! [`NodeCore`]: one core of a validator node as a deterministic state
//! machine. Inputs are `handle_*` calls — network events of the core's
//! endpoint, messages from other cores' rings, durability of log records,
//! timer expiry — each with the time as a [`Now`]. Outputs are the calls it
//! makes on the driver's [`NodeIo`] (frames, dials, closes, ring messages:
//! the endpoint and the ring decide synchronously whether they take one,
//! and a reply stops at the first refusal) and `#[must_use] poll_*` values:
//! telemetry events, peer-book saves, the next timeout. It never reads a
//! clock, never touches a file or socket and never prints.
//!
//! The jobs live in files named after them: `admission` (connections,
//! `Hello`s, dialing, violations and bans), `gossip` (what the shard
//! machines send, to which connection, their catch-up `GetRange`s
//! included), `serving`
//! (`Get`/`GetRange` answers within per-peer budgets), `intake` (client
//! submissions, balance queries, relayed evidence), `forward` (messages
//! for shards of other cores and their answers).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use pc_codec::genesis::Genesis;
use pc_codec::to_hex;
use pc_net::frame::MAX_RANGE_ANCHORS;
use pc_net::peer_book::{BookSave, PeerBook, PeerEvent};
use pc_net::{Committee, ConnId, Hello, NetEvent, NetMessage, SendError};
use pc_shard::machine::{PeerId, ShardLimits};

use crate::budget::TokenBucket;
use crate::forward::CoreMsg;
use crate::metrics::{CoreMetrics, P2pMetrics};
use crate::shard_host::{CrashSite, ShardHost};
use crate::telemetry::{Event, Status};
use crate::NodeError;

/// The time of an input: microseconds on the driver's monotonic clock
/// (since its start) and seconds of wall-clock time (the peer book's bans
/// and scores only; never consensus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Now {
    /// Monotonic microseconds.
    pub mono_us: u64,
    /// Seconds since the Unix epoch.
    pub unix_s: u64,
}

impl Now {
    /// Milliseconds of the monotonic clock: the shard machines' tick.
    pub fn ms(&self) -> u64 {
        self.mono_us / 1000
    }
}

/// What the node core asks of its driver, answered at once.
pub trait NodeIo {
    /// Queues a frame on `conn`; its wire bytes.
    fn send_frame(&mut self, conn: ConnId, message: &NetMessage) -> Result<usize, SendError>;
    /// Closes `conn` with an application error code.
    fn close(&mut self, conn: ConnId, code: u32, reason: &str);
    /// Starts a connection to `addr`.
    fn connect(&mut self, addr: SocketAddr) -> Result<ConnId, String>;
    /// Puts a message on the ring to core `core`; false if it is full.
    fn forward(&mut self, core: usize, message: CoreMsg) -> bool;
}

/// The shard machines of a node tick in milliseconds.
pub const SHARD_TICK_US: u64 = 1000;
/// Least time between two acknowledgement-only own anchors. (The old
/// loop's comment said 20 ms but, ticking its machines in milliseconds
/// against limits counted in 2 ms ticks, paced them at 10 ms; measured side
/// by side, 20 ms raised the 4-node devnet's finality p50 from 41 to 57 ms,
/// so the node keeps the 10 ms it ran with, now named. The overload work
/// tunes it.)
pub const ACK_INTERVAL_MS: u64 = 10;
/// Time before an unanswered pull is asked of every peer (the old loop's
/// effective 100 ms, for the same reason).
pub const PULL_RETRY_MS: u64 = 100;
/// Most anchors sent in answer to one `Get` or `GetRange`.
pub const MAX_REPLY_ANCHORS: usize = 256;
/// Most anchor bytes in one `Anchors` frame of a reply (under the frame cap).
pub const MAX_REPLY_FRAME_BYTES: usize = 3 << 20;
/// Rounds a shard's DAG may end below its committee's before its machine
/// asks one peer at a time for ranges of rounds (`GetRange`) instead of
/// pulling parents one by one (the machine decides; see
/// [`ShardLimits::catch_up_lag_rounds`]).
pub const CATCH_UP_START_LAG_ROUNDS: u64 = 3;
/// Pending anchors (waiting for parents) per committee seat at which a
/// shard's machine catches up by range however few rounds it lags (64 at
/// k = 4, 336 at k = 21).
pub const CATCH_UP_PENDING_PER_SEAT: usize = 16;
/// Rounds behind its peers past which a shard counts as catching up and
/// refuses client submissions.
pub const CATCH_UP_LAG_ROUNDS: u64 = 50;
/// Least time between two `GetRange`s of one shard.
pub const CATCH_UP_INTERVAL_MS: u64 = 200;
/// Anchors asked for by one `GetRange`.
pub const CATCH_UP_ANCHORS: u32 = 256;
/// First wait before redialing an address.
pub const MIN_DIAL_BACKOFF_US: u64 = 100_000;
/// Longest wait between two dial attempts of one address.
pub const MAX_DIAL_BACKOFF_US: u64 = 4_000_000;
/// How often the peer book is handed to the writer (when it changed).
pub const BOOK_SAVE_INTERVAL_US: u64 = 10_000_000;
/// A link silent this long ranks below every live one (its peer may have
/// restarted).
pub const SILENT_LINK_US: u64 = 6_000_000;
/// Datagrams for no connection from one address per recorded violation.
pub const UNROUTABLE_PER_VIOLATION: u32 = 16;
/// Source addresses whose unroutable datagrams (or submissions) are
/// counted at once.
pub const MAX_TRACKED_SOURCES: usize = 4096;
/// Anchors this core serves one peer per shard per second for its `Get`s
/// and `GetRange`s (a catching-up machine asks one peer at a time, in
/// turn, for 256 every 200 ms), with a burst of as many; a request past
/// the budget is answered in part.
pub const SERVE_ANCHORS_PER_S: u32 = 4096;
/// Micro-events one source (IPv4 address, IPv6 /64) may submit to one core
/// per second (each costs a signature check before the mempool takes it),
/// with a burst of as many; past it they are refused as overloaded,
/// unchecked.
pub const SUBMIT_EVENTS_PER_S: u32 = 8192;

/// Entries of the UTXO slice the core may scan per second for client
/// queries (balances and unspent pages walk the shard's slice), over every
/// source together: a scan visits an entry in a few nanoseconds, so this
/// holds the queries to a few per cent of the core however many addresses
/// ask. A query is answered while budget is left, and its whole cost is
/// taken (the budget owes the rest), so a slice larger than the budget
/// still gets an answer now and then; one arriving with the budget spent
/// goes unanswered, and the client asks again.
pub const SCAN_OUTPUTS_PER_S: u32 = 8_000_000;

/// One source (IPv4 address or IPv6 /64) may take this share of
/// [`SCAN_OUTPUTS_PER_S`]: no single host takes the queries of the others.
pub const SCAN_SOURCE_SHARE: u32 = 8;
/// Longest a client's submission may wait in the driver's inbox (behind
/// consensus traffic) before it is refused as overloaded unchecked.
pub const MAX_CLIENT_WAIT_US: u64 = 250_000;
/// Most log lines about misbehaving peers per status interval.
pub const MAX_PEER_LOG_LINES: u32 = 20;

// A reply never asks for more than a GetRange allows.
const _: () = assert!(MAX_REPLY_ANCHORS <= MAX_RANGE_ANCHORS as usize);
const _: () = assert!(CATCH_UP_ANCHORS <= MAX_RANGE_ANCHORS);

/// The shard limits of a node's machines: ticks are milliseconds, so the
/// acknowledgement interval is [`ACK_INTERVAL_MS`], the pull retry
/// [`PULL_RETRY_MS`] and the catch-up interval [`CATCH_UP_INTERVAL_MS`].
pub fn node_shard_limits() -> ShardLimits {
    ShardLimits {
        ack_interval_ticks: ACK_INTERVAL_MS * 1000 / SHARD_TICK_US,
        pull_retry_ticks: PULL_RETRY_MS * 1000 / SHARD_TICK_US,
        catch_up_lag_rounds: CATCH_UP_START_LAG_ROUNDS,
        catch_up_pending_per_seat: CATCH_UP_PENDING_PER_SEAT,
        catch_up_interval_ticks: CATCH_UP_INTERVAL_MS * 1000 / SHARD_TICK_US,
        catch_up_anchors: CATCH_UP_ANCHORS,
        ..ShardLimits::default()
    }
}

/// Where a test crashes the node on purpose: at the `nth` (from 1)
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

/// What a core starts with.
pub struct CoreConfig {
    /// This core's index.
    pub core: usize,
    /// The genesis.
    pub genesis: Arc<Genesis>,
    /// Every shard's core.
    pub placement: Vec<usize>,
    /// This node's Hello (`None`: an observer that sends none).
    pub hello: Option<Hello>,
    /// This node's validator index, if it is in the committee.
    pub own_index: Option<PeerId>,
    /// The addresses of this node's own endpoints (never dialed).
    pub own_addrs: Vec<SocketAddr>,
    /// The peer book, as loaded.
    pub book: PeerBook,
    /// Interval of the status events.
    pub status_interval_us: u64,
    /// Injected crash point (tests).
    pub crash: Option<CrashPlan>,
    /// The single-signature BIP-340 verify rate the driver measured on
    /// this core, per second (0: unknown): the floor of each shard's
    /// capacity signal before anything finalized ([`crate::capacity`]).
    pub verify_per_s: u64,
}

/// A connection as the core sees it.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) remote: SocketAddr,
    /// This core dialed it.
    pub(crate) outgoing: bool,
    /// When a frame last arrived on it (a link to a peer's previous run
    /// hears nothing: the live one is preferred).
    pub(crate) last_heard_us: u64,
    /// The SPKI the peer proved in the handshake.
    pub(crate) peer_spki: Option<Vec<u8>>,
    /// The peer's verified Hello and its validator index.
    pub(crate) peer: Option<(PeerId, Hello)>,
}

/// An address this core dials.
#[derive(Debug)]
pub(crate) struct DialTarget {
    pub(crate) addr: SocketAddr,
    pub(crate) conn: Option<ConnId>,
    pub(crate) next_attempt_us: u64,
    pub(crate) backoff_us: u64,
}

/// Counters of a core, for its status events.
#[derive(Debug, Default, Clone, Copy)]
pub struct CoreCounters {
    /// Frames a connection's send queue refused.
    pub dropped_sends: u64,
    /// Messages a full ring refused.
    pub dropped_ring: u64,
    /// Protocol violations.
    pub violations: u64,
    /// Hellos refused.
    pub refused_hellos: u64,
    /// Anchors not served, micro-events not taken and queries not
    /// answered for a budget.
    pub throttled: u64,
    /// Frames taken before a verified Hello were refused (admission).
    pub early_frames_refused: u64,
    /// Bans this core imposed.
    pub bans: u64,
    /// Incoming connections refused before they became one.
    pub refused_connections: u64,
    /// Frames sent to a connection that was gone or closing.
    pub send_errors: u64,
}

/// What the driver knows about its host, for the status events.
#[derive(Debug, Default, Clone)]
pub struct HostStats {
    /// Frames the inbox dropped.
    pub inbox_dropped: u64,
    /// Frames waiting in the inbox.
    pub inbox_frames: u64,
    /// Anonymous RSS, KiB.
    pub anon_rss_kib: u64,
    /// Of the inbox's inputs, messages of other cores (the rings' depth).
    pub ring_depth: u64,
    /// QUIC's round-trip time of every open connection, µs.
    pub round_trips_us: Vec<u64>,
}

/// One core of a node.
pub struct NodeCore {
    pub(crate) core: usize,
    pub(crate) genesis: Arc<Genesis>,
    pub(crate) committee: Committee,
    pub(crate) own_index: Option<PeerId>,
    pub(crate) placement: Vec<usize>,
    pub(crate) shards: BTreeMap<u16, ShardHost>,
    /// Per shard: validator indices holding a seat in it (not this node).
    pub(crate) shard_peers: Vec<Vec<PeerId>>,
    pub(crate) hello: Option<Hello>,
    pub(crate) links: BTreeMap<ConnId, Link>,
    pub(crate) targets: Vec<DialTarget>,
    pub(crate) own_addrs: BTreeSet<SocketAddr>,
    pub(crate) book: PeerBook,
    pub(crate) book_dirty: bool,
    pub(crate) crash: Option<CrashPlan>,
    pub(crate) counters: CoreCounters,
    /// Message traffic by kind and the inbox wait (the counters of the
    /// `pc_p2p_*` families; gauges are filled in at each snapshot).
    pub(crate) p2p: P2pMetrics,
    /// The latest metrics snapshot not yet taken by the driver.
    pub(crate) metrics: Option<CoreMetrics>,
    pub(crate) peer_log_lines: u32,
    /// Unroutable datagrams per source address.
    pub(crate) unroutable: BTreeMap<SocketAddr, u32>,
    /// Anchors left to serve per (peer, shard).
    pub(crate) serve_budget: BTreeMap<(PeerId, u16), TokenBucket>,
    /// Micro-events left to take per source address.
    pub(crate) submit_budget: BTreeMap<IpAddr, TokenBucket>,
    /// Entries left to scan for client queries, all sources together
    /// ([`SCAN_OUTPUTS_PER_S`]).
    pub(crate) scan_budget: TokenBucket,
    /// Entries left to scan per source ([`SCAN_SOURCE_SHARE`]).
    pub(crate) scan_sources: BTreeMap<IpAddr, TokenBucket>,
    /// How long the input being handled waited in the driver's inbox (set
    /// by [`NodeCore::handle_net_after`] and its ring twin).
    pub(crate) input_waited_us: u64,
    /// Per local shard, per seat: the highest birth round of a validated
    /// anchor of that seat (see [`NodeCore::round_lag`]).
    pub(crate) seat_rounds: BTreeMap<u16, Vec<u64>>,
    /// Cross-shard messages moved (see [`crate::crossing`]).
    pub(crate) cross: crate::crossing::CrossTraffic,
    /// Cross-shard latency (see [`crate::crossing::CrossLatency`]).
    pub(crate) cross_latency: crate::crossing::CrossLatency,
    pub(crate) events: VecDeque<Event>,
    pub(crate) host: HostStats,
    pub(crate) status_interval_us: u64,
    pub(crate) next_status_us: u64,
    pub(crate) next_book_save_us: u64,
    /// The last time a timeout was handled (the next is never at or before).
    pub(crate) last_timeout_us: Option<u64>,
}

impl NodeCore {
    /// A core holding `shards` (restored by the driver from their logs).
    pub fn new(config: CoreConfig, shards: Vec<ShardHost>, now: Now) -> NodeCore {
        let genesis = config.genesis;
        let own_index = config.own_index;
        let shard_peers = (0..genesis.params.shards)
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
        NodeCore {
            core: config.core,
            committee: Committee::from_genesis(&genesis),
            genesis,
            own_index,
            placement: config.placement,
            shards: shards
                .into_iter()
                .map(|mut s| {
                    s.set_verify_budget(config.verify_per_s);
                    (s.shard(), s)
                })
                .collect(),
            shard_peers,
            hello: config.hello,
            links: BTreeMap::new(),
            targets: Vec::new(),
            own_addrs: config.own_addrs.into_iter().collect(),
            book: config.book,
            book_dirty: false,
            crash: config.crash,
            counters: CoreCounters::default(),
            p2p: P2pMetrics::default(),
            metrics: None,
            peer_log_lines: 0,
            unroutable: BTreeMap::new(),
            serve_budget: BTreeMap::new(),
            submit_budget: BTreeMap::new(),
            scan_budget: TokenBucket::full(SCAN_OUTPUTS_PER_S, 0),
            scan_sources: BTreeMap::new(),
            input_waited_us: 0,
            seat_rounds: BTreeMap::new(),
            cross: Default::default(),
            cross_latency: Default::default(),
            events: VecDeque::new(),
            host: HostStats::default(),
            status_interval_us: config.status_interval_us.max(1),
            next_status_us: now.mono_us + config.status_interval_us.max(1),
            next_book_save_us: now.mono_us + BOOK_SAVE_INTERVAL_US,
            last_timeout_us: None,
        }
    }

    /// Dials `peers` (configured), then the committee validators this core
    /// met before (the peer book's dial order: unbanned, scoring well, best
    /// first), so a restarted node finds its peers without a configured
    /// address.
    pub fn add_peers(&mut self, peers: &[SocketAddr], now: Now) {
        for addr in peers {
            self.add_target(*addr, now);
        }
        let known: Vec<SocketAddr> = self
            .book
            .dial_order(now.unix_s)
            .into_iter()
            .filter(|addr| {
                self.book
                    .get(*addr)
                    .and_then(|entry| entry.validator_key)
                    .is_some_and(|key| self.committee.contains(&key))
            })
            .collect();
        for addr in known {
            self.add_target(addr, now);
        }
    }

    /// An event of the core's endpoint.
    pub fn handle_net(
        &mut self,
        io: &mut dyn NodeIo,
        event: NetEvent,
        now: Now,
    ) -> Result<(), NodeError> {
        self.advance_shards(now);
        self.admit(io, event, now)?;
        self.route_transmits(io, now)?;
        Ok(())
    }

    /// [`NodeCore::handle_net`] of an input that waited `waited_us` in the
    /// driver's inbox (client frames wait behind consensus traffic): a
    /// submission that waited more than [`MAX_CLIENT_WAIT_US`] is refused
    /// as overloaded unchecked (its client has waited long already, and
    /// what the node admitted meanwhile is ahead of it).
    pub fn handle_net_after(
        &mut self,
        io: &mut dyn NodeIo,
        event: NetEvent,
        waited_us: u64,
        now: Now,
    ) -> Result<(), NodeError> {
        self.input_waited_us = waited_us;
        self.p2p.receive_wait.observe_us(waited_us);
        let result = self.handle_net(io, event, now);
        self.input_waited_us = 0;
        result
    }

    /// [`NodeCore::handle_net_after`] for a message forwarded by
    /// another core.
    pub fn handle_ring_after(
        &mut self,
        io: &mut dyn NodeIo,
        message: CoreMsg,
        waited_us: u64,
        now: Now,
    ) -> Result<(), NodeError> {
        self.input_waited_us = waited_us;
        self.p2p.receive_wait.observe_us(waited_us);
        let result = self.handle_ring(io, message, now);
        self.input_waited_us = 0;
        result
    }

    /// A message from another core's ring.
    pub fn handle_ring(
        &mut self,
        io: &mut dyn NodeIo,
        message: CoreMsg,
        now: Now,
    ) -> Result<(), NodeError> {
        self.advance_shards(now);
        self.handle_forwarded(io, message, now)?;
        self.route_transmits(io, now)?;
        Ok(())
    }

    /// Records of `shard` up to and including `seq` are durable: own
    /// anchors among them may be sent now.
    pub fn handle_durable(
        &mut self,
        io: &mut dyn NodeIo,
        shard: u16,
        seq: u64,
        now: Now,
    ) -> Result<(), NodeError> {
        if let Some(host) = self.shards.get_mut(&shard) {
            host.advance_time(now.ms());
            host.handle_durable(seq, now.mono_us)?;
        }
        self.route_transmits(io, now)?;
        Ok(())
    }

    /// Timers: the shard machines' ticks (pull retries, announces,
    /// catch-up), dials, status events and peer-book saves that are due at
    /// `now`.
    pub fn handle_timeout(&mut self, io: &mut dyn NodeIo, now: Now) -> Result<(), NodeError> {
        self.last_timeout_us = Some(now.mono_us);
        for host in self.shards.values_mut() {
            if host.poll_timeout().is_some_and(|at| at <= now.ms()) {
                host.handle_tick(now.ms(), now.mono_us)?;
            }
        }
        self.dial_due(io, now);
        self.route_transmits(io, now)?;
        if self.status_due(now) {
            self.status(now);
            self.next_status_us = now.mono_us + self.status_interval_us;
        }
        Ok(())
    }

    /// When [`NodeCore::handle_timeout`] has work next, in monotonic µs
    /// (at least a machine tick after the last timeout handled, so a
    /// driver never spins).
    #[must_use]
    pub fn poll_timeout(&self) -> u64 {
        let shards = self
            .shards
            .values()
            .filter_map(ShardHost::poll_timeout)
            .map(|ms| ms.saturating_mul(SHARD_TICK_US));
        let dials = self
            .targets
            .iter()
            .filter(|t| t.conn.is_none())
            .map(|t| t.next_attempt_us);
        let next = shards
            .chain(dials)
            .chain([self.next_status_us, self.next_book_save_us])
            .min()
            .unwrap_or(self.next_status_us);
        // The machines tick in milliseconds: never sooner than one after
        // the last timeout.
        match self.last_timeout_us {
            Some(last) => next.max(last + SHARD_TICK_US),
            None => next,
        }
    }

    /// The next telemetry event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The peer book to write, when it changed and a save is due at `now`
    /// (the driver hands it to a writer off the core).
    #[must_use]
    pub fn poll_book_save(&mut self, now: Now) -> Option<BookSave> {
        if now.mono_us < self.next_book_save_us {
            return None;
        }
        self.next_book_save_us = now.mono_us + BOOK_SAVE_INTERVAL_US;
        self.take_book_save()
    }

    /// The peer book to write now if it changed (at shutdown).
    #[must_use]
    pub fn take_book_save(&mut self) -> Option<BookSave> {
        if !self.book_dirty {
            return None;
        }
        self.book_dirty = false;
        Some(self.book.snapshot())
    }

    /// The writer could not take the last save: the book stays dirty for
    /// the next interval.
    pub fn book_save_refused(&mut self) {
        self.book_dirty = true;
    }

    /// This core's index.
    pub fn index(&self) -> usize {
        self.core
    }

    /// Whether [`NodeCore::handle_timeout`] at `now` writes the status
    /// events (the driver samples its host only then).
    pub fn status_due(&self, now: Now) -> bool {
        now.mono_us >= self.next_status_us
    }

    /// What the driver knows of its host, for the next status events.
    pub fn set_host_stats(&mut self, stats: HostStats) {
        for rtt in &stats.round_trips_us {
            self.p2p.round_trip.observe_us(*rtt);
        }
        self.host = stats;
    }

    /// The core's shards.
    pub fn shards(&self) -> impl Iterator<Item = &ShardHost> {
        self.shards.values()
    }

    /// A local shard.
    pub fn shard(&self, shard: u16) -> Option<&ShardHost> {
        self.shards.get(&shard)
    }

    /// A local shard, mutably (the driver's crash hooks).
    pub fn shard_mut(&mut self, shard: u16) -> Option<&mut ShardHost> {
        self.shards.get_mut(&shard)
    }

    /// `GetRange` requests the local shards' machines made.
    pub fn catch_up_requests(&self) -> u64 {
        self.shards
            .values()
            .map(|host| host.machine().catch_up_requests())
            .sum()
    }

    /// The core's counters.
    pub fn counters(&self) -> CoreCounters {
        self.counters
    }

    /// The peer book.
    pub fn book(&self) -> &PeerBook {
        &self.book
    }

    /// Verified peers connected (distinct validator indices).
    pub fn verified_peers(&self) -> BTreeSet<PeerId> {
        self.links
            .values()
            .filter_map(|l| l.peer.as_ref().map(|(p, _)| *p))
            .collect()
    }

    /// The shards, for their final reports.
    pub fn into_shards(self) -> Vec<ShardHost> {
        self.shards.into_values().collect()
    }

    /// Rounds finalized over every local shard (the driver trims the
    /// allocator when it grows).
    pub fn rounds_finalized(&self) -> u64 {
        self.shards.values().map(|s| s.counters().rounds).sum()
    }

    /// Sets every local machine's logical time (before an input).
    fn advance_shards(&mut self, now: Now) {
        for host in self.shards.values_mut() {
            host.advance_time(now.ms());
        }
    }

    pub(crate) fn record(&mut self, addr: SocketAddr, event: PeerEvent, now: Now) {
        self.book.record(addr, event, now.unix_s);
        self.book_dirty = true;
    }

    /// Queues a line about a misbehaving peer (at most
    /// [`MAX_PEER_LOG_LINES`] per status interval).
    pub(crate) fn log_peer(&mut self, event: Event) {
        if self.peer_log_lines < MAX_PEER_LOG_LINES {
            self.peer_log_lines += 1;
            self.events.push_back(event);
        }
    }

    /// Queues a frame on `conn`; false (counted) if it was not queued.
    pub(crate) fn send(&mut self, io: &mut dyn NodeIo, conn: ConnId, message: &NetMessage) -> bool {
        match io.send_frame(conn, message) {
            Ok(bytes) => {
                let kind = &mut self.p2p.outbound[message.kind_index()];
                kind.messages += 1;
                kind.bytes += bytes as u64;
                true
            }
            Err(SendError::QueueFull { .. }) | Err(SendError::TooLarge(_)) => {
                self.counters.dropped_sends += 1;
                false
            }
            Err(SendError::UnknownConnection { .. }) | Err(SendError::Closed { .. }) => {
                self.counters.send_errors += 1;
                false
            }
        }
    }

    /// The latest metrics snapshot (one per status interval, taken with
    /// the status events), if the driver has not taken it yet.
    #[must_use]
    pub fn poll_metrics(&mut self) -> Option<CoreMetrics> {
        self.metrics.take()
    }

    /// The metrics snapshot at `now`: the same counters as the status
    /// events of this moment.
    fn snapshot_metrics(&mut self, now: Now) -> CoreMetrics {
        let c = self.counters;
        let mut p2p = self.p2p.clone();
        p2p.dropped_sends = c.dropped_sends;
        p2p.dropped_inbox = self.host.inbox_dropped;
        p2p.dropped_ring = c.dropped_ring;
        p2p.send_errors = c.send_errors;
        p2p.violations = c.violations;
        p2p.bans = c.bans;
        p2p.handshake_failures = c.refused_hellos + c.refused_connections;
        p2p.connected_peers = self.verified_peers().len() as u64;
        p2p.links = self.links.len() as u64;
        p2p.banned_peers = self.book.banned_count(now.unix_s) as u64;
        p2p.inbox_frames = self.host.inbox_frames;
        p2p.ring_depth = self.host.ring_depth;
        p2p.cross = self.cross;
        CoreMetrics {
            core: self.core,
            t_us: now.mono_us,
            p2p,
            shards: self
                .shards
                .values_mut()
                .map(|host| host.metrics(now.mono_us))
                .collect(),
        }
    }

    /// One status event per local shard, and the metrics snapshot of the
    /// same moment.
    fn status(&mut self, now: Now) {
        self.metrics = Some(self.snapshot_metrics(now));
        self.peer_log_lines = 0;
        let peers = self.verified_peers().len();
        let links = self.links.len();
        for (shard, host) in self.shards.iter_mut() {
            let interval = host.take_interval_event_finality();
            let capacity = host.capacity_reading(now.mono_us);
            let (admitted, refused, retry_after_ms) = host.admission_totals();
            let c = host.counters().clone();
            let cross = host.cross_counters().unwrap_or_default();
            let cross_final = self.cross_latency.by_dest.get(shard);
            let cross_quantile = |q: f64| cross_final.map_or(0, |h| h.value_at_quantile(q));
            let machine = host.machine();
            let catch_up_requests = machine.catch_up_requests();
            self.events.push_back(Event::Status(Box::new(Status {
                t_ms: now.ms(),
                core: self.core,
                shard: *shard,
                anchors: c.anchors,
                rounds: c.rounds,
                last_round: c.last_round.map_or(-1, |r| r as i64),
                finalized_events: c.finalized_events,
                applied_events: c.applied_events,
                pending: machine.pending_anchors(),
                mempool: machine.mempool_len(),
                peers,
                links,
                finality_p50_us: interval.value_at_quantile(0.5),
                finality_p99_us: interval.value_at_quantile(0.99),
                finality_samples: interval.len(),
                catch_up_requests,
                violations: self.counters.violations,
                refused_hellos: self.counters.refused_hellos,
                dropped_sends: self.counters.dropped_sends,
                dropped_inbox: self.host.inbox_dropped,
                dropped_ring: self.counters.dropped_ring,
                inbox_frames: self.host.inbox_frames,
                throttled: self.counters.throttled,
                capacity_per_s: capacity.rate_per_s,
                backlog: capacity.backlog,
                backlog_bound: capacity.budget,
                own_backlog: capacity.own,
                own_bound: capacity.own_budget,
                oldest_accepted_ms: capacity.oldest_age_us / 1000,
                base_latency_ms: capacity.base_latency_us / 1000,
                admitted,
                refused,
                retry_after_ms,
                accepted_submissions: c.accepted_submissions,
                finalized_submissions: c.finalized_submissions,
                expired_submissions: c.expired_submissions,
                signature_verifies: c.signature_verifies,
                anon_rss_kib: self.host.anon_rss_kib,
                exported: u64::try_from(machine.state().cross().exported_total())
                    .unwrap_or(u64::MAX),
                imported: u64::try_from(machine.state().cross().imported_total())
                    .unwrap_or(u64::MAX),
                certified: cross.certified,
                bundles_received: cross.received,
                imports_queued: host.import_counts().queued,
                cross_final_p50_us: cross_quantile(0.5),
                cross_final_p99_us: cross_quantile(0.99),
                cross_final_samples: cross_final.map_or(0, |h| h.len()),
                state_root: to_hex(&machine.state().state_root()),
            })));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machines_limits_take_the_durations_their_names_give() {
        // The node's machines tick in milliseconds: a machine tick is
        // SHARD_TICK_US and the limits count ticks.
        let limits = node_shard_limits();
        assert_eq!(
            limits.ack_interval_ticks * SHARD_TICK_US,
            ACK_INTERVAL_MS * 1000
        );
        assert_eq!(
            limits.pull_retry_ticks * SHARD_TICK_US,
            PULL_RETRY_MS * 1000
        );
        assert_eq!(
            limits.catch_up_interval_ticks * SHARD_TICK_US,
            CATCH_UP_INTERVAL_MS * 1000
        );
        assert_eq!(
            (ACK_INTERVAL_MS, PULL_RETRY_MS, CATCH_UP_INTERVAL_MS),
            (10, 100, 200)
        );
        let now = Now {
            mono_us: 1_234_567,
            unix_s: 0,
        };
        assert_eq!(now.ms(), 1_234, "the tick handed to the machines");
    }

    #[test]
    fn an_unanswered_pull_is_asked_of_every_peer_after_the_named_retry() {
        // An observer machine with the node's limits, ticked as the node
        // ticks it (Now::ms): a parent announced by peer 1 is asked of peer
        // 1 at once, and of every peer PULL_RETRY_MS later, not a tick
        // sooner (the old loop's unit bug retried at half its named time).
        use pc_codec::genesis::{ConsensusParams, GenesisValidator, SeatAssignment};
        use pc_codec::{Bip340, SigningKey};
        use pc_shard::machine::{Destination, Role, Shard, ShardMessage};
        let keys: Vec<SigningKey> = (1..=4u8)
            .map(|seed| SigningKey::from_secret_bytes(&[seed; 32]).unwrap())
            .collect();
        let genesis = Genesis {
            params: ConsensusParams::v0(4, 1),
            note_commitment: [2; 32],
            validators: keys
                .iter()
                .enumerate()
                .map(|(seat, key)| GenesisValidator {
                    key: key.public_key(),
                    bond: 10,
                    seats: vec![SeatAssignment {
                        shard: 0,
                        seat: seat as u8,
                    }],
                })
                .collect(),
            allocations: Vec::new(),
        };
        let mut machine: Shard<Bip340, SigningKey> =
            Shard::new(&genesis, 0, Role::Observer, Bip340, node_shard_limits());
        let at = |ms: u64| Now {
            mono_us: ms * 1000,
            unix_s: 0,
        };
        let start = at(5_000);
        machine.handle_tick(start.ms());
        while machine.poll_transmit().is_some() {}
        let missing = [7u8; 32];
        machine.handle_announce(Some(1), &[missing]);
        let first: Vec<_> = std::iter::from_fn(|| machine.poll_transmit()).collect();
        assert!(
            first.iter().any(|t| t.destination == Destination::Peer(1)
                && t.message == ShardMessage::Get(vec![missing])),
            "asked of the announcer at once: {first:?}"
        );
        let asked_again = |machine: &mut Shard<Bip340, SigningKey>| {
            std::iter::from_fn(|| machine.poll_transmit()).any(|t| {
                t.destination == Destination::Broadcast
                    && matches!(&t.message, ShardMessage::Get(ids) if ids.contains(&missing))
            })
        };
        for ms in (1..PULL_RETRY_MS).step_by(7) {
            machine.handle_tick(at(5_000 + ms).ms());
            assert!(!asked_again(&mut machine), "asked again after {ms} ms");
        }
        machine.handle_tick(at(5_000 + PULL_RETRY_MS).ms());
        assert!(
            asked_again(&mut machine),
            "asked of every peer after {PULL_RETRY_MS} ms"
        );
    }
}
