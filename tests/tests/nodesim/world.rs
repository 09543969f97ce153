//! The world of one seed: the nodes (each a real `NodeCore` with its real
//! shard machine over an in-memory store), the clients, the simulated
//! network and CPU, the fault schedule, and the bookkeeping the checks
//! read. Time is simulated microseconds; every draw comes from the seed's
//! PRNG, so a seed replays exactly.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;

use pc_codec::genesis::{
    ConsensusParams, Genesis, GenesisAllocation, GenesisValidator, SeatAssignment,
};
use pc_codec::wire::{Decode, Reader};
use pc_codec::{
    Encode, Hash32, LogRecordKind, MicroEvent, OutPoint, RoundFinalized, SignedAnchorHeader,
    SigningKey, TransferBuilder,
};
use pc_net::frame::EventOutcome;
use pc_net::peer_book::PeerBook;
use pc_net::{CloseReason, ConnId, FrameDecoder, Hello, NetEvent, NetMessage, ShardPort, Source};
use pc_node::{node_shard_limits, CoreConfig, MemStore, NodeCore, Now, ShardHost, ShardStore};
use pc_shard::machine::Role;

use super::net::{End, Links, Out, Party, SimIo};
use super::{Counters, Rng, SeedConfig};

/// Simulated µs one signature verification costs a node at full speed.
pub const VERIFY_US: u64 = 60;
/// Simulated µs one finalized micro-event costs to apply.
pub const APPLY_US: u64 = 5;
/// Simulated µs every input costs.
pub const INPUT_US: u64 = 20;
/// Port of every simulated node.
const PORT: u16 = 9000;
/// Units of each genesis output of a client.
const OUTPUT_UNITS: u64 = 1_000_000;

/// What a scheduled event does.
#[derive(Debug)]
enum Ev {
    /// Frame bytes arrive at `to` on `conn`.
    Deliver {
        to: Party,
        conn: ConnId,
        bytes: Vec<u8>,
        epoch: u64,
    },
    /// A handshake completes at `to`.
    Connected {
        to: Party,
        conn: ConnId,
        remote: SocketAddr,
        spki: Option<Vec<u8>>,
        epoch: u64,
    },
    /// A connection ends at `to`.
    Closed {
        to: Party,
        conn: ConnId,
        remote: SocketAddr,
        epoch: u64,
    },
    /// A node's timer (only its latest generation counts).
    Timeout { node: usize, generation: u64 },
    /// A node's log sync completed.
    Synced {
        node: usize,
        shard: u16,
        seq: u64,
        epoch: u64,
    },
    /// A node crashes; it restarts at `restart_at_us`.
    Crash { node: usize, restart_at_us: u64 },
    /// A crashed (or late) node starts.
    Start { node: usize },
    /// The network splits into `side` and the rest.
    Partition {
        side: BTreeSet<usize>,
        heal_at_us: u64,
    },
    /// The network heals.
    Heal,
    /// The clients submit their next transfers.
    Submit,
    /// The hostile peer acts.
    Hostile { step: u32 },
    /// A node's CPU may take its next queued client frame.
    ClientTurn { node: usize, epoch: u64 },
}

/// Client frames a node's driver queues behind consensus traffic (its
/// inbox's client class); past it they are dropped, as the inbox drops
/// them past its client bound.
pub const CLIENT_QUEUE_FRAMES: usize = 256;

/// A node of the simulation.
pub struct SimNode {
    pub key: SigningKey,
    pub addr: SocketAddr,
    pub spki: Vec<u8>,
    pub core: Option<NodeCore>,
    pub stores: BTreeMap<u16, Rc<RefCell<MemStore>>>,
    pub busy_until_us: u64,
    /// CPU cost multiplier in percent (200: half speed).
    pub slowness_pct: u64,
    pub timer_generation: u64,
    pub epoch: u64,
    pub syncing: BTreeSet<u16>,
    pub decoders: BTreeMap<ConnId, FrameDecoder>,
    pub crashed_at_us: Vec<u64>,
    pub book: PeerBook,
    /// (round, state root, anchors) of every finalized round it reported.
    pub finalized: Rc<RefCell<BTreeMap<u64, (Hash32, u64)>>>,
    pub finalized_events: Rc<RefCell<BTreeMap<Hash32, u64>>>,
    pub verifies_seen: u64,
    pub applied_seen: u64,
    /// Client frames waiting for the CPU: taken only when no other input
    /// is being handled (the driver's inbox serves consensus first).
    pub client_queue: VecDeque<(NetEvent, u64)>,
    pub client_turn_due: bool,
}

/// A transfer a client submitted.
#[derive(Debug, Clone)]
pub struct Submission {
    pub node: usize,
    pub at_us: u64,
    pub accepted: Option<bool>,
}

/// The world of one seed.
pub struct World {
    pub cfg: SeedConfig,
    pub rng: Rng,
    pub now_us: u64,
    queue: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    pub genesis: Arc<Genesis>,
    pub nodes: Vec<SimNode>,
    pub links: Links,
    pub counters: Counters,
    /// Every own anchor an honest node sent: (creator, seq) → anchor id.
    pub signed: BTreeMap<(u8, u64), Hash32>,
    pub equivocations: Vec<String>,
    pub client_keys: Vec<SigningKey>,
    /// Next unspent genesis output per client.
    next_output: Vec<u32>,
    pub submissions: BTreeMap<Hash32, Submission>,
    client_decoders: BTreeMap<(usize, ConnId), FrameDecoder>,
    /// Client connections: client index → (node, conn) opened.
    client_conns: BTreeMap<(usize, usize), ConnId>,
    pub partition: Option<(BTreeSet<usize>, u64)>,
    pub hostile_addr: SocketAddr,
    pub outsider_addr: SocketAddr,
    pub max_pending: usize,
    pub max_mempool: usize,
    pub max_dag: usize,
    pub window_rounds: u64,
    pub max_queue_events: usize,
    /// Per node: the seq and time of its last acknowledgement-only anchor.
    last_ack: BTreeMap<usize, (u64, u64)>,
    /// Refusals still to print (`NODESIM_TRACE`): the first few of a seed.
    trace_refusals: u32,
    next_refusal_trace_us: u64,
}

fn addr_of(index: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(
            10,
            0,
            (index / 250) as u8,
            (index % 250) as u8 + 1,
        )),
        PORT,
    )
}

fn key_of(seed: u64, role: &str, index: usize) -> SigningKey {
    let mut material = seed.to_le_bytes().to_vec();
    material.extend_from_slice(&(index as u64).to_le_bytes());
    let secret = blake3::derive_key(&format!("phantom-engine nodesim {role} key"), &material);
    SigningKey::from_secret_bytes(&secret).expect("a BLAKE3 output is a valid key")
}

impl World {
    /// The world of `cfg`'s seed, every node scheduled to start.
    pub fn new(cfg: SeedConfig) -> World {
        let mut rng = Rng::new(cfg.seed);
        let k = cfg.seats;
        let keys: Vec<SigningKey> = (0..k).map(|i| key_of(cfg.seed, "validator", i)).collect();
        let client_keys: Vec<SigningKey> = (0..cfg.clients)
            .map(|i| key_of(cfg.seed, "client", i))
            .collect();
        let genesis = Genesis {
            params: ConsensusParams {
                ancient_window_rounds: cfg.ancient_window_rounds.into(),
                coin_round_period: cfg.coin_round_period.into(),
                ..ConsensusParams::v0(k as u8, 1)
            },
            note_commitment: *blake3::hash(&cfg.seed.to_le_bytes()).as_bytes(),
            validators: keys
                .iter()
                .enumerate()
                .map(|(seat, key)| GenesisValidator {
                    key: key.public_key(),
                    bond: 1_000,
                    seats: vec![SeatAssignment {
                        shard: 0,
                        seat: seat as u8,
                    }],
                })
                .collect(),
            allocations: client_keys
                .iter()
                .map(|key| GenesisAllocation {
                    owner: key.public_key(),
                    amount: OUTPUT_UNITS,
                    outputs: u32::from(cfg.outputs_per_client),
                })
                .collect(),
        };
        genesis
            .validate()
            .expect("the simulator's genesis is valid");
        let nodes = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| SimNode {
                addr: addr_of(i),
                spki: blake3::hash(&key.public_key()).as_bytes().to_vec(),
                key,
                core: None,
                stores: BTreeMap::from([(0, Rc::new(RefCell::new(MemStore::default())))]),
                busy_until_us: 0,
                slowness_pct: if cfg.slow_node == Some(i) { 2 } else { 1 } * cfg.slowness_pct,
                timer_generation: 0,
                epoch: 0,
                syncing: BTreeSet::new(),
                decoders: BTreeMap::new(),
                crashed_at_us: Vec::new(),
                book: PeerBook::empty(format!("peers-node-{i}.book")),
                finalized: Rc::default(),
                finalized_events: Rc::default(),
                verifies_seen: 0,
                applied_seen: 0,
                client_queue: VecDeque::new(),
                client_turn_due: false,
            })
            .collect();
        let limits = node_shard_limits();
        let g = u64::from(genesis.params.ancient_window_rounds) as usize;
        let mut world = World {
            next_output: vec![0; cfg.clients],
            max_pending: limits.max_pending_anchors,
            max_mempool: limits.max_mempool_events,
            // At most 64 anchors per seat per round over the retained
            // window of 3G + 2 decided rounds and a few undecided ones.
            // (While no quorum makes progress, seats that hear each other
            // still make an acknowledgement-only anchor per 20 ms: the
            // DAG grows with the stall, the overload issue's brake.)
            max_dag: 64 * k * (3 * g + 8),
            window_rounds: 3 * g as u64 + 2,
            max_queue_events: 0,
            last_ack: BTreeMap::new(),
            trace_refusals: u32::from(std::env::var("NODESIM_TRACE").is_ok()),
            next_refusal_trace_us: 0,
            cfg,
            now_us: 0,
            queue: BTreeMap::new(),
            seq: 0,
            genesis: Arc::new(genesis),
            nodes,
            links: Links::default(),
            counters: Counters::default(),
            signed: BTreeMap::new(),
            equivocations: Vec::new(),
            client_keys,
            submissions: BTreeMap::new(),
            client_decoders: BTreeMap::new(),
            client_conns: BTreeMap::new(),
            partition: None,
            hostile_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)), 4444),
            outsider_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 8)), PORT),
            rng: Rng::new(0),
        };
        world.rng = Rng::new(rng.next() ^ 0x9e37_79b9_7f4a_7c15);
        for node in 0..k {
            let at = if world.cfg.late_node == Some(node) {
                world.cfg.late_start_us
            } else if let Some((_, at)) = world.cfg.second_late.filter(|(n, _)| *n == node) {
                at
            } else {
                world.rng.below(2_000)
            };
            world.schedule(at, Ev::Start { node });
        }
        world.schedule_faults();
        world.schedule(200_000, Ev::Submit);
        if world.cfg.hostile {
            world.schedule(300_000, Ev::Hostile { step: 0 });
        }
        world
    }

    fn schedule(&mut self, at_us: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at_us, self.seq), ev);
    }

    fn schedule_faults(&mut self) {
        let end = self.cfg.fault_end_us;
        let honest = self.honest_nodes();
        for _ in 0..self.cfg.crashes {
            let node = honest[self.rng.below(honest.len() as u64) as usize];
            let at = 500_000 + self.rng.below(end.saturating_sub(1_000_000).max(1));
            let restart = at + 100_000 + self.rng.below(900_000);
            self.schedule(
                at,
                Ev::Crash {
                    node,
                    restart_at_us: restart,
                },
            );
        }
        for _ in 0..self.cfg.partitions {
            let at = 500_000 + self.rng.below(end.saturating_sub(1_000_000).max(1));
            let heal = at + 200_000 + self.rng.below(1_500_000);
            let mut side = BTreeSet::new();
            for node in 0..self.cfg.seats {
                if self.rng.below(2) == 0 {
                    side.insert(node);
                }
            }
            self.schedule(
                at,
                Ev::Partition {
                    side,
                    heal_at_us: heal,
                },
            );
        }
    }

    /// Nodes that follow the protocol (every one: the hostile peer and the
    /// outsider are clients of the simulation, not seats).
    pub fn honest_nodes(&self) -> Vec<usize> {
        (0..self.cfg.seats).collect()
    }

    /// Runs until `until_us` (or the queue empties).
    pub fn run_until(&mut self, until_us: u64) {
        while let Some((&(at, seq), _)) = self.queue.first_key_value() {
            if at > until_us {
                break;
            }
            let ev = self.queue.remove(&(at, seq)).expect("present");
            self.now_us = at;
            self.max_queue_events = self.max_queue_events.max(self.queue.len());
            self.step(ev);
        }
        self.now_us = self.now_us.max(until_us);
    }

    /// What a node's driver would measure as its single-signature verify
    /// rate: its simulated CPU's.
    fn verify_per_s(&self, node: usize) -> u64 {
        1_000_000 * 100 / (VERIFY_US * self.nodes[node].slowness_pct.max(1))
    }

    fn now(&self) -> Now {
        Now {
            mono_us: self.now_us,
            unix_s: 1_800_000_000 + self.now_us / 1_000_000,
        }
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver {
                to,
                conn,
                bytes,
                epoch,
            } => self.deliver(to, conn, bytes, epoch),
            Ev::Connected {
                to,
                conn,
                remote,
                spki,
                epoch,
            } => {
                if let Some(end) = self.links.ends.get_mut(&(to, conn)) {
                    end.open = true;
                } else {
                    return;
                }
                if let Party::Node(node) = to {
                    if self.nodes[node].epoch != epoch || self.nodes[node].core.is_none() {
                        return;
                    }
                    self.nodes[node].decoders.insert(conn, FrameDecoder::new());
                    let event = NetEvent::Connected {
                        conn,
                        remote,
                        peer_spki: spki,
                        alpn: pc_net::ALPN.to_vec(),
                    };
                    self.handle_node(node, |core, io, now| core.handle_net(io, event, now));
                } else if let Party::Client(client) = to {
                    self.client_decoders
                        .insert((client, conn), FrameDecoder::new());
                }
            }
            Ev::Closed {
                to,
                conn,
                remote,
                epoch,
            } => {
                if self.links.ends.remove(&(to, conn)).is_none() {
                    return;
                }
                if let Party::Node(node) = to {
                    if self.nodes[node].epoch != epoch || self.nodes[node].core.is_none() {
                        return;
                    }
                    self.nodes[node].decoders.remove(&conn);
                    let event = NetEvent::Closed {
                        conn,
                        remote,
                        reason: CloseReason::TimedOut,
                    };
                    self.handle_node(node, |core, io, now| core.handle_net(io, event, now));
                }
            }
            Ev::Timeout { node, generation } => {
                if self.nodes[node].timer_generation == generation
                    && self.nodes[node].core.is_some()
                {
                    self.handle_node(node, |core, io, now| core.handle_timeout(io, now));
                }
            }
            Ev::Synced {
                node,
                shard,
                seq,
                epoch,
            } => {
                if self.nodes[node].epoch != epoch {
                    return;
                }
                self.nodes[node].syncing.remove(&shard);
                self.nodes[node].stores[&shard]
                    .borrow_mut()
                    .mark_durable(seq);
                self.handle_node(node, |core, io, now| {
                    core.handle_durable(io, shard, seq, now)
                });
            }
            Ev::Crash {
                node,
                restart_at_us,
            } => self.crash(node, restart_at_us),
            Ev::Start { node } => self.start(node),
            Ev::Partition { side, heal_at_us } => {
                if self.partition.is_none() {
                    self.partition = Some((side, heal_at_us));
                    self.schedule(heal_at_us, Ev::Heal);
                }
            }
            Ev::Heal => {
                if self.partition.take().is_some() {
                    self.counters.partitions_healed += 1;
                }
            }
            Ev::Submit => self.submit_round(),
            Ev::Hostile { step } => self.hostile(step),
            Ev::ClientTurn { node, epoch } => self.client_turn(node, epoch),
        }
    }

    /// A client frame arrives at a node: queued behind whatever the CPU
    /// is doing (dropped past [`CLIENT_QUEUE_FRAMES`]).
    fn queue_client(&mut self, node: usize, event: NetEvent) {
        let n = &mut self.nodes[node];
        if n.core.is_none() {
            return;
        }
        if n.client_queue.len() >= CLIENT_QUEUE_FRAMES {
            self.counters.client_frames_dropped += 1;
            return;
        }
        n.client_queue.push_back((event, self.now_us));
        self.schedule_client_turn(node);
    }

    fn schedule_client_turn(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        if n.client_turn_due || n.client_queue.is_empty() {
            return;
        }
        n.client_turn_due = true;
        let (at, epoch) = (self.now_us.max(n.busy_until_us), n.epoch);
        self.schedule(at, Ev::ClientTurn { node, epoch });
    }

    /// The CPU takes the oldest client frame if nothing else holds it
    /// (a consensus input handled meanwhile pushes the turn back).
    fn client_turn(&mut self, node: usize, epoch: u64) {
        let n = &mut self.nodes[node];
        if n.epoch != epoch {
            return;
        }
        n.client_turn_due = false;
        if n.busy_until_us <= self.now_us {
            if let Some((event, arrived_us)) = n.client_queue.pop_front() {
                let waited_us = self.now_us - arrived_us;
                self.handle_node(node, |core, io, now| {
                    core.handle_net_after(io, event, waited_us, now)
                });
            }
        }
        self.schedule_client_turn(node);
    }

    /// Latency of one frame from `a` to `b` (on top of FIFO order): a
    /// partition holds it until it heals, a loss adds a retransmission.
    fn latency_us(&mut self, from: Party, to: Party) -> u64 {
        let mut us = self.cfg.latency_us + self.rng.below(self.cfg.jitter_us + 1);
        if self.rng.below(1000) < self.cfg.loss_per_mille {
            us += 200_000 + self.rng.below(200_000);
            self.counters.losses += 1;
        }
        if let (Some((nodes, peer, until_us)), Party::Node(a), Party::Node(b)) =
            (&self.cfg.only_via, from, to)
        {
            let cut = |x: usize, y: usize| nodes.contains(&x) && y != *peer;
            if (cut(a, b) || cut(b, a)) && self.now_us < *until_us {
                us += until_us - self.now_us;
            }
        }
        if let (Some((side, heal_at_us)), Party::Node(a), Party::Node(b)) =
            (&self.partition, from, to)
        {
            if side.contains(&a) != side.contains(&b) {
                // Held (QUIC retransmits) until the heal.
                us += heal_at_us.saturating_sub(self.now_us);
                self.counters.partitioned_frames += 1;
            }
        }
        us
    }

    fn party_epoch(&self, party: Party) -> u64 {
        match party {
            Party::Node(node) => self.nodes[node].epoch,
            Party::Client(_) => 0,
        }
    }

    /// Carries out what a party asked of the network, departing at `at_us`.
    pub(super) fn carry_out(&mut self, from: Party, outs: Vec<Out>, at_us: u64) {
        for out in outs {
            match out {
                Out::Frame {
                    conn,
                    bytes,
                    anchors,
                } => {
                    if let Party::Node(node) = from {
                        self.note_sent_anchors(node, &anchors);
                    }
                    self.send_bytes(from, conn, bytes, at_us);
                }
                Out::Close { conn } => self.close(from, conn, at_us),
                Out::Connect { conn, addr } => self.connect(from, conn, addr, at_us),
            }
        }
    }

    fn send_bytes(&mut self, from: Party, conn: ConnId, bytes: Vec<u8>, at_us: u64) {
        let Some(end) = self.links.ends.get(&(from, conn)) else {
            return;
        };
        let (to, to_conn) = end.peer;
        let latency = self.latency_us(from, to);
        let duplicate = self.rng.below(1000) < self.cfg.dup_per_mille;
        let end = self.links.ends.get_mut(&(from, conn)).expect("present");
        let arrival = (at_us + latency).max(end.last_arrival_us);
        end.last_arrival_us = arrival;
        let epoch = self.party_epoch(to);
        if duplicate {
            self.counters.duplicates += 1;
            self.schedule(
                arrival,
                Ev::Deliver {
                    to,
                    conn: to_conn,
                    bytes: bytes.clone(),
                    epoch,
                },
            );
        }
        self.schedule(
            arrival,
            Ev::Deliver {
                to,
                conn: to_conn,
                bytes,
                epoch,
            },
        );
    }

    fn close(&mut self, from: Party, conn: ConnId, at_us: u64) {
        let Some(end) = self.links.ends.get(&(from, conn)).cloned() else {
            return;
        };
        let (to, to_conn) = end.peer;
        let latency = self.cfg.latency_us;
        let from_remote = self.address_of(to);
        let to_remote = end.remote;
        let (e_from, e_to) = (self.party_epoch(from), self.party_epoch(to));
        self.schedule(
            at_us,
            Ev::Closed {
                to: from,
                conn,
                remote: to_remote,
                epoch: e_from,
            },
        );
        self.schedule(
            at_us + latency,
            Ev::Closed {
                to,
                conn: to_conn,
                remote: from_remote,
                epoch: e_to,
            },
        );
    }

    fn address_of(&self, party: Party) -> SocketAddr {
        match party {
            Party::Node(node) => self.nodes[node].addr,
            Party::Client(0) => self.hostile_addr,
            Party::Client(1) => self.outsider_addr,
            Party::Client(c) => SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(10, 8, (c / 250) as u8, (c % 250) as u8 + 1)),
                5000,
            ),
        }
    }

    fn spki_of(&self, party: Party) -> Option<Vec<u8>> {
        match party {
            Party::Node(node) => Some(self.nodes[node].spki.clone()),
            Party::Client(1) => Some(self.outsider_spki()),
            Party::Client(_) => None,
        }
    }

    pub fn outsider_spki(&self) -> Vec<u8> {
        b"outsider spki".to_vec()
    }

    /// A dial of `addr` by `from` (its end is `conn`).
    pub(super) fn connect(&mut self, from: Party, conn: ConnId, addr: SocketAddr, at_us: u64) {
        let Some(to_node) = self.nodes.iter().position(|n| n.addr == addr) else {
            return;
        };
        let to = Party::Node(to_node);
        if self.nodes[to_node].core.is_none() {
            // Nobody listens: the dial times out.
            let remote = addr;
            let epoch = self.party_epoch(from);
            self.links
                .ends
                .insert((from, conn), End::new((to, ConnId(0)), remote));
            self.schedule(
                at_us + 1_000_000,
                Ev::Closed {
                    to: from,
                    conn,
                    remote,
                    epoch,
                },
            );
            return;
        }
        let to_conn = self.links.new_conn(to);
        let from_addr = self.address_of(from);
        self.links
            .ends
            .insert((from, conn), End::new((to, to_conn), addr));
        self.links
            .ends
            .insert((to, to_conn), End::new((from, conn), from_addr));
        let rtt = 2 * self.cfg.latency_us;
        let (e_from, e_to) = (self.party_epoch(from), self.party_epoch(to));
        let (spki_from, spki_to) = (self.spki_of(from), self.spki_of(to));
        self.schedule(
            at_us + rtt,
            Ev::Connected {
                to,
                conn: to_conn,
                remote: from_addr,
                spki: spki_from,
                epoch: e_to,
            },
        );
        self.schedule(
            at_us + rtt,
            Ev::Connected {
                to: from,
                conn,
                remote: addr,
                spki: spki_to,
                epoch: e_from,
            },
        );
    }

    fn deliver(&mut self, to: Party, conn: ConnId, bytes: Vec<u8>, epoch: u64) {
        let Some(end) = self.links.ends.get(&(to, conn)) else {
            return;
        };
        let remote = end.remote;
        // What the sender queued leaves its queue when it arrives.
        let sender = end.peer;
        if let Some(sent) = self.links.ends.get_mut(&sender) {
            sent.queued_bytes = sent.queued_bytes.saturating_sub(bytes.len());
        }
        match to {
            Party::Client(client) => self.client_receive(client, conn, &bytes),
            Party::Node(node) => {
                if self.nodes[node].epoch != epoch || self.nodes[node].core.is_none() {
                    return;
                }
                let Some(decoder) = self.nodes[node].decoders.get_mut(&conn) else {
                    return;
                };
                let mut input = &bytes[..];
                let mut events = Vec::new();
                loop {
                    match decoder.decode(&mut input) {
                        Ok(Some(message)) => events.push(NetEvent::Frame {
                            conn,
                            message,
                            bytes: decoder.last_frame_bytes(),
                        }),
                        Ok(None) => break,
                        Err(violation) => {
                            self.counters.malformed_frames += 1;
                            events.push(NetEvent::Violation {
                                source: Source::Connection { conn, remote },
                                reason: violation.into(),
                            });
                            break;
                        }
                    }
                }
                let broke = events
                    .iter()
                    .any(|e| matches!(e, NetEvent::Violation { .. }));
                for event in events {
                    if is_client_frame(&event) {
                        self.queue_client(node, event);
                    } else {
                        self.handle_node(node, |core, io, now| core.handle_net(io, event, now));
                    }
                }
                if broke {
                    // The endpoint closes a connection whose framing broke.
                    let at = self.now_us;
                    self.close(Party::Node(node), conn, at);
                }
            }
        }
    }

    /// Hands one input to a node's core on its simulated CPU: the input
    /// waits while the CPU is busy; it costs per input, per signature
    /// verified and per event applied; its outputs leave when it is done.
    pub(super) fn handle_node(
        &mut self,
        node: usize,
        input: impl FnOnce(&mut NodeCore, &mut SimIo<'_>, Now) -> Result<(), pc_node::NodeError>,
    ) {
        let start = self.now_us.max(self.nodes[node].busy_until_us);
        let appended_before = self.nodes[node].stores[&0].borrow().next_seq();
        let now = Now {
            mono_us: start,
            ..self.now()
        };
        let mut outs = Vec::new();
        let Some(mut core) = self.nodes[node].core.take() else {
            return;
        };
        {
            let mut io = SimIo {
                party: Party::Node(node),
                links: &mut self.links,
                out: &mut outs,
            };
            input(&mut core, &mut io, now).expect("an in-memory store never fails");
        }
        let (verifies, applied) = core.shards().fold((0, 0), |(v, a), host| {
            (
                v + host.counters().signature_verifies,
                a + host.counters().applied_events,
            )
        });
        let n = &mut self.nodes[node];
        let cost = INPUT_US
            + verifies.saturating_sub(n.verifies_seen) * VERIFY_US
            + applied.saturating_sub(n.applied_seen) * APPLY_US;
        n.verifies_seen = verifies;
        n.applied_seen = applied;
        n.busy_until_us = start + cost * n.slowness_pct / 100;
        let done = n.busy_until_us;
        self.check_ack_pacing(node, appended_before, start);
        self.check_bounds(node, &core);
        let timeout = core.poll_timeout().max(done);
        self.nodes[node].core = Some(core);
        self.carry_out(Party::Node(node), outs, done);
        self.after_input(node, timeout, done);
    }

    /// A node's next timer and the syncs its stores need.
    fn after_input(&mut self, node: usize, timeout_us: u64, done_us: u64) {
        let n = &mut self.nodes[node];
        n.timer_generation += 1;
        let generation = n.timer_generation;
        let mut syncs = Vec::new();
        for (shard, store) in &n.stores {
            let store = store.borrow();
            if store.next_seq() > store.durable_len() && !n.syncing.contains(shard) {
                syncs.push((*shard, store.next_seq() - 1));
            }
        }
        let epoch = n.epoch;
        for (shard, _) in &syncs {
            self.nodes[node].syncing.insert(*shard);
        }
        self.schedule(timeout_us, Ev::Timeout { node, generation });
        for (shard, seq) in syncs {
            let at = done_us + 500 + self.rng.below(self.cfg.fsync_us);
            self.schedule(
                at,
                Ev::Synced {
                    node,
                    shard,
                    seq,
                    epoch,
                },
            );
        }
    }

    /// Acknowledgement-only own anchors (no micro-events) are made at most
    /// one per `ACK_INTERVAL_MS` (the machines tick in milliseconds, so
    /// the spacing is checked to the millisecond).
    fn check_ack_pacing(&mut self, node: usize, appended_before: u64, made_at_us: u64) {
        let store = self.nodes[node].stores[&0].borrow();
        let mut acks = Vec::new();
        for (kind, body) in &store.records()[appended_before as usize..] {
            if *kind != LogRecordKind::AnchorAccepted {
                continue;
            }
            let Ok(header) = SignedAnchorHeader::decode(&mut Reader::new(body)) else {
                continue;
            };
            if usize::from(header.header.creator) == node && header.header.payload_count == 0 {
                acks.push(header.header.seq);
            }
        }
        drop(store);
        for seq in acks {
            let interval_us = pc_node::core::ACK_INTERVAL_MS * 1000;
            if let Some((last_seq, last_us)) = self.last_ack.get(&node) {
                // A restart forgets the last one: count only within a run.
                if seq > *last_seq && made_at_us / 1000 < *last_us / 1000 + interval_us / 1000 {
                    panic!(
                        "node {node}: acknowledgement-only anchors at seqs {last_seq} and {seq} are {} µs apart, under the {interval_us} µs interval",
                        made_at_us - last_us
                    );
                }
            }
            self.last_ack.insert(node, (seq, made_at_us));
            self.counters.acks_paced += 1;
        }
    }

    fn check_bounds(&mut self, node: usize, core: &NodeCore) {
        for host in core.shards() {
            let m = host.machine();
            assert!(
                m.pending_anchors() <= self.max_pending,
                "node {node}: {} pending anchors, bound {}",
                m.pending_anchors(),
                self.max_pending
            );
            assert!(
                m.mempool_len() <= self.max_mempool,
                "node {node}: mempool {} over {}",
                m.mempool_len(),
                self.max_mempool
            );
            let held = m
                .consensus()
                .next_undecided_round()
                .saturating_sub(m.consensus().floor());
            assert!(
                held <= self.window_rounds + 2,
                "node {node}: {held} decided rounds held, the window is {}",
                self.window_rounds
            );
            assert!(
                m.consensus().len() <= self.max_dag,
                "node {node}: DAG of {} vertices over the window bound {}",
                m.consensus().len(),
                self.max_dag
            );
        }
        let c = core.counters();
        self.counters.note_core(node, &c);
    }

    /// Own anchors a node sends: two different ones at one (creator, seq)
    /// is an equivocation.
    fn note_sent_anchors(&mut self, node: usize, anchors: &[Vec<u8>]) {
        for bytes in anchors {
            let Ok(header) = SignedAnchorHeader::decode(&mut Reader::new(bytes)) else {
                continue;
            };
            if usize::from(header.header.creator) != node {
                continue;
            }
            // DESIGN §6: an own anchor leaves only once its record is
            // durable (else a crash could make the seat sign the seq again).
            // (A record is in the log once: in the tail not yet durable, or
            // below the watermark.)
            let not_durable = self.nodes[node].stores.values().any(|store| {
                let store = store.borrow();
                let durable = store.durable_len() as usize;
                store.records()[durable..]
                    .iter()
                    .any(|(kind, body)| *kind == LogRecordKind::AnchorAccepted && body == bytes)
            });
            if not_durable && self.equivocations.len() < 5 {
                let store = self.nodes[node].stores[&0].borrow();
                self.equivocations.push(format!(
                    "seat {} sent its anchor at seq {} before its record was durable (at {} µs; {} records, {} durable; {} anchors in the frame; crashes at {:?})",
                    header.header.creator,
                    header.header.seq,
                    self.now_us,
                    store.next_seq(),
                    store.durable_len(),
                    anchors.len(),
                    self.nodes[node].crashed_at_us
                ));
            }
            let key = (header.header.creator, header.header.seq);
            let id = header.anchor_id();
            match self.signed.get(&key) {
                Some(known) if *known != id && self.equivocations.len() < 5 => {
                    self.equivocations.push(format!(
                        "seat {} signed two anchors at seq {} (at {} µs)",
                        key.0, key.1, self.now_us
                    ))
                }
                Some(_) => {}
                None => {
                    self.signed.insert(key, id);
                }
            }
        }
    }

    /// Starts (or restarts) a node from what its stores hold.
    fn start(&mut self, node: usize) {
        if self.nodes[node].core.is_some() {
            return;
        }
        let genesis = self.genesis.clone();
        let n = &mut self.nodes[node];
        let mut hosts = Vec::new();
        for (shard, store) in &n.stores {
            let records: Vec<(LogRecordKind, Vec<u8>)> = store.borrow().records().to_vec();
            let dyn_store: Rc<RefCell<dyn ShardStore>> = store.clone();
            let (mut host, _) = ShardHost::restore(
                &genesis,
                *shard,
                0,
                Role::Seat {
                    seat: node as u8,
                    signer: pc_shard::machine::SharedSigner::local(n.key.clone()),
                },
                node_shard_limits(),
                dyn_store,
                None,
                (0, 0),
                records.iter().map(|(kind, body)| (*kind, &body[..])),
            )
            .unwrap_or_else(|e| panic!("node {node} restores from its durable log: {e}"));
            host.set_cache_caps(self.cfg.cache);
            let durable = store.borrow().durable_len();
            if durable > 0 {
                host.handle_durable(durable - 1, self.now_us)
                    .expect("in memory");
            }
            let finalized = n.finalized.clone();
            let events = n.finalized_events.clone();
            host.set_finalized_hook(Box::new(move |report, now_us| {
                finalized.borrow_mut().insert(
                    report.round.round,
                    (report.outcome.state_root, report.round.anchors.len() as u64),
                );
                let mut events = events.borrow_mut();
                for (id, _) in &report.outcome.outcomes {
                    events.entry(*id).or_insert(now_us);
                }
            }));
            hosts.push(host);
        }
        let hello = Hello::sign(
            &n.key,
            vec![ShardPort {
                shard: 0,
                port: PORT,
            }],
            &n.spki,
            &genesis.network(),
            &[node as u8; 32],
        );
        let config = CoreConfig {
            core: 0,
            genesis: genesis.clone(),
            placement: vec![0],
            hello: Some(hello),
            own_index: Some(node as u32),
            own_addrs: vec![n.addr],
            book: n.book.clone(),
            status_interval_us: 1_000_000,
            crash: None,
            verify_per_s: self.verify_per_s(node),
        };
        let now = self.now();
        let mut core = NodeCore::new(config, hosts, now);
        let peers: Vec<SocketAddr> = (0..self.cfg.seats)
            .filter(|p| *p != node)
            .map(addr_of)
            .collect();
        core.add_peers(&peers, now);
        let n = &mut self.nodes[node];
        n.core = Some(core);
        n.decoders.clear();
        n.busy_until_us = self.now_us;
        self.handle_node(node, |core, io, now| core.handle_timeout(io, now));
    }

    /// A crash: the node's volatile state is gone, its stores keep only
    /// what is durable, its connections die.
    fn crash(&mut self, node: usize, restart_at_us: u64) {
        let Some(core) = self.nodes[node].core.take() else {
            return;
        };
        // The peer book is a file the node saved (or not): keep its view.
        self.nodes[node].book = core.book().clone();
        drop(core);
        self.counters.crashes += 1;
        self.last_ack.remove(&node);
        let n = &mut self.nodes[node];
        n.epoch += 1;
        n.crashed_at_us.push(self.now_us);
        n.syncing.clear();
        n.client_queue.clear();
        n.client_turn_due = false;
        for store in n.stores.values() {
            store.borrow_mut().crash();
        }
        let ends: Vec<(Party, ConnId)> = self
            .links
            .ends
            .keys()
            .filter(|(p, _)| *p == Party::Node(node))
            .copied()
            .collect();
        for (party, conn) in ends {
            if let Some(end) = self.links.ends.remove(&(party, conn)) {
                let (to, to_conn) = end.peer;
                let epoch = self.party_epoch(to);
                let remote = self.nodes[node].addr;
                // The peers notice after an idle timeout (or a stateless
                // reset at the restart).
                let at = self.now_us + 300_000;
                self.schedule(
                    at,
                    Ev::Closed {
                        to,
                        conn: to_conn,
                        remote,
                        epoch,
                    },
                );
            }
        }
        self.schedule(restart_at_us, Ev::Start { node });
        self.counters.restarts += 1;
    }

    /// Clients submit a batch of transfers to random live nodes, some of
    /// them double spends of one output sent to two nodes, until
    /// `load_end_us`, and on to `load_max_end_us` while a running node has
    /// finalized fewer than `min_rounds` (rounds advance only while there
    /// is something to finalize).
    fn submit_round(&mut self) {
        let load_on = self.now_us < self.cfg.load_end_us
            || (self.now_us < self.cfg.load_max_end_us
                && self.least_running_rounds() < self.cfg.min_rounds);
        if !load_on {
            return;
        }
        if !self.client_keys.is_empty() {
            let count = match self.cfg.bursty {
                // Half a second on at twice the rate, half a second off.
                true if (self.now_us / 500_000).is_multiple_of(2) => {
                    2 * self.cfg.transfers_per_tick
                }
                true => 0,
                false => self.cfg.transfers_per_tick,
            };
            for _ in 0..count {
                self.submit_one();
            }
        }
        self.schedule(self.now_us + self.cfg.submit_every_us, Ev::Submit);
    }

    /// Rounds finalized by the running node that has finalized the fewest.
    pub fn least_running_rounds(&self) -> u64 {
        self.nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .flat_map(|core| core.shards())
            .map(|host| host.counters().last_round.map_or(0, |round| round + 1))
            .min()
            .unwrap_or(0)
    }

    fn submit_one(&mut self) {
        let client = self.rng.below(self.client_keys.len() as u64) as usize;
        let output = self.next_output[client];
        if output >= u32::from(self.cfg.outputs_per_client) {
            return;
        }
        self.next_output[client] += 1;
        let network = self.genesis.network();
        let out_point: OutPoint =
            Genesis::allocation_out_point(&network, client as u32, output as u16);
        let double = self.rng.below(100) < self.cfg.double_spend_pct;
        let copies = if double { 2 } else { 1 };
        let mut targets = BTreeSet::new();
        for copy in 0..copies {
            let recipient =
                self.client_keys[(client + 1 + copy) % self.client_keys.len()].public_key();
            let transfer = TransferBuilder::new()
                .input(out_point)
                .output(OUTPUT_UNITS - 100 - copy as u64, recipient)
                .sign(&network, &self.client_keys[client], &[copy as u8; 32])
                .expect("a valid transfer");
            let event = MicroEvent::Transfer(transfer);
            let mut node = self.rng.below(self.cfg.seats as u64) as usize;
            if double {
                while targets.contains(&node) && self.cfg.seats > 1 {
                    node = (node + 1) % self.cfg.seats;
                }
                targets.insert(node);
                self.counters.double_spends += 1;
            }
            self.counters.submitted += 1;
            self.submissions.insert(
                event.id(),
                Submission {
                    node,
                    at_us: self.now_us,
                    accepted: None,
                },
            );
            self.client_send(
                2 + client,
                node,
                NetMessage::SubmitMicroEvents {
                    request: 1,
                    shard: 0,
                    events: vec![event.to_bytes()],
                },
            );
        }
    }

    /// A client's frame to `node`, on its connection (dialed on first use).
    pub(super) fn client_send(&mut self, client: usize, node: usize, message: NetMessage) {
        let mut bytes = Vec::new();
        pc_net::encode_frame(&message, &mut bytes).expect("under the cap");
        self.client_send_bytes(client, node, bytes);
    }

    pub(super) fn client_send_bytes(&mut self, client: usize, node: usize, bytes: Vec<u8>) {
        let party = Party::Client(client);
        let conn = match self.client_conns.get(&(client, node)) {
            Some(conn) if self.links.ends.contains_key(&(party, *conn)) => *conn,
            _ => {
                let conn = self.links.new_conn(party);
                self.client_conns.insert((client, node), conn);
                let at = self.now_us;
                self.connect(party, conn, addr_of(node), at);
                conn
            }
        };
        // Frames on a connection still in its handshake leave after it.
        let at = self.now_us + 2 * self.cfg.latency_us + 1;
        self.send_bytes(party, conn, bytes, at);
    }

    fn client_receive(&mut self, client: usize, conn: ConnId, bytes: &[u8]) {
        let Some(decoder) = self.client_decoders.get_mut(&(client, conn)) else {
            return;
        };
        let mut input = bytes;
        while let Ok(Some(message)) = decoder.decode(&mut input) {
            if let NetMessage::Receipt { results, .. } = message {
                for receipt in results {
                    if let Some(sub) = self.submissions.get_mut(&receipt.event_id) {
                        let accepted = receipt.outcome == EventOutcome::Accepted;
                        sub.accepted = Some(accepted);
                        if accepted {
                            self.counters.accepted += 1;
                        } else {
                            self.counters.refused_submissions += 1;
                            if self.trace_refusals > 0 && self.now_us >= self.next_refusal_trace_us
                            {
                                self.next_refusal_trace_us = self.now_us + 250_000;
                                println!(
                                    "t={} ms: refused: {:?}",
                                    self.now_us / 1000,
                                    receipt.outcome
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The hostile peer (client 0): frames before a Hello, Get storms and
    /// garbage bytes at every node, until they ban it; the outsider
    /// (client 1) offers a Hello of a key outside the committee.
    fn hostile(&mut self, step: u32) {
        for node in 0..self.cfg.seats {
            if self.nodes[node].core.is_none() {
                continue;
            }
            match step % 4 {
                0 => self.client_send(
                    0,
                    node,
                    NetMessage::Get {
                        shard: 0,
                        ids: vec![[step as u8; 32]; 64],
                    },
                ),
                1 => self.client_send(
                    0,
                    node,
                    NetMessage::Anchors {
                        shard: 0,
                        anchors: vec![vec![0xAB; 64]],
                    },
                ),
                2 => {
                    // A length prefix past the frame cap, then garbage.
                    let mut bytes = vec![0xFF; 4];
                    bytes.extend_from_slice(&[0x42; 32]);
                    self.client_send_bytes(0, node, bytes);
                }
                _ => {
                    let outsider = key_of(self.cfg.seed, "outsider", 0);
                    let hello = Hello::sign(
                        &outsider,
                        vec![],
                        &self.outsider_spki(),
                        &self.genesis.network(),
                        &[7; 32],
                    );
                    self.client_send(1, node, NetMessage::Hello(hello));
                }
            }
        }
        if step < 40 {
            self.schedule(self.now_us + 150_000, Ev::Hostile { step: step + 1 });
        }
    }

    /// Every finalized round logged by `node` (durable or not):
    /// round → (first global index, anchors, state root).
    pub fn logged_rounds(&self, node: usize) -> BTreeMap<u64, (u64, u64, Hash32)> {
        let mut rounds = BTreeMap::new();
        for store in self.nodes[node].stores.values() {
            for (kind, body) in store.borrow().records() {
                if *kind != LogRecordKind::RoundFinalized {
                    continue;
                }
                let record = RoundFinalized::decode(&mut Reader::new(body))
                    .expect("the machine writes its own records");
                rounds.insert(
                    record.round,
                    (
                        record.first_global_index,
                        record.anchor_count,
                        record.state_root,
                    ),
                );
            }
        }
        rounds
    }
}

/// Client intake (the driver's inbox serves it after consensus traffic).
fn is_client_frame(event: &NetEvent) -> bool {
    matches!(event, NetEvent::Frame { message, .. } if message.is_client_request())
}
