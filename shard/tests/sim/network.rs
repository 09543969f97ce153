//! The simulated network: every message gets a delivery step (latency, with
//! occasional long delays that reorder), may be lost or duplicated, and is
//! dropped at delivery when a partition separates its ends.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;

use pc_codec::Hash32;

use crate::sim::rng::Rng;

/// A node's index: seats `0..k` (a seat's index is its seat number), then
/// the observer at `k`. The machines use it as their `PeerId`.
pub type NodeId = usize;

/// A message on the wire.
#[derive(Debug, Clone)]
pub enum Payload {
    /// An encoded anchor.
    Anchor(Rc<[u8]>),
    /// A request for anchors by id.
    Get(Rc<[Hash32]>),
    /// A node's tips.
    Announce(Rc<[Hash32]>),
    /// Relayed evidence (an encoded Evidence or Offence micro-event).
    Evidence(Rc<[u8]>),
    /// A catch-up request: anchors of birth round `from_round` and above.
    GetRange {
        /// The lowest birth round wanted.
        from_round: u64,
        /// Most anchors wanted.
        max_count: u32,
    },
}

/// What an honest receiver must do with an anchor: the simulator knows how
/// every anchor was made, so a machine's answer is checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Made by a machine (or a valid fork): must never be refused.
    Accept,
    /// Invalid on its face (bad signature, impossible birth round): must be
    /// refused.
    Reject,
    /// References parents that do not exist or do not match: may be held
    /// pending or refused, never inserted.
    NeverInsert,
}

/// A message in flight.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// Content.
    pub payload: Payload,
    /// Ground truth for anchors.
    pub expect: Expect,
}

struct Scheduled {
    deliver_at_step: u64,
    tiebreak: u64,
    envelope: Envelope,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: the heap pops the earliest delivery first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deliver_at_step, other.tiebreak).cmp(&(self.deliver_at_step, self.tiebreak))
    }
}

/// Per-seed network behaviour.
#[derive(Debug, Clone, Copy)]
pub struct NetworkConfig {
    /// Messages lost, per mille (only while faults are on).
    pub loss_per_mille: u32,
    /// Messages delivered twice, per mille (only while faults are on).
    pub duplicate_per_mille: u32,
    /// Ordinary latency is `1..=latency_max_steps`.
    pub latency_max_steps: u64,
    /// Messages delayed far beyond the ordinary latency (reordering), per mille.
    pub long_delay_per_mille: u32,
    /// Longest extra delay of a long-delayed message.
    pub long_delay_max_steps: u64,
}

/// Counters of what the network did.
#[derive(Debug, Default, Clone, Copy)]
pub struct NetworkStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages lost.
    pub lost: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Messages dropped by a partition.
    pub partitioned: u64,
    /// Messages addressed to a node that was down.
    pub to_down_node: u64,
}

/// The network of one seed.
pub struct Network {
    config: NetworkConfig,
    queue: BinaryHeap<Scheduled>,
    /// Loss and duplication are on (the fault phase).
    faulty: bool,
    /// Side of each node while a partition is active.
    partition: Option<Vec<u8>>,
    pub stats: NetworkStats,
}

impl Network {
    /// An empty network.
    pub fn new(config: NetworkConfig) -> Self {
        Network {
            config,
            queue: BinaryHeap::new(),
            faulty: true,
            partition: None,
            stats: NetworkStats::default(),
        }
    }

    /// Turns loss and duplication off (the heal phase); latency and
    /// reordering stay.
    pub fn stop_faults(&mut self) {
        self.faulty = false;
    }

    /// Splits the nodes by `sides` until [`Network::heal`].
    pub fn partition(&mut self, sides: Vec<u8>) {
        self.partition = Some(sides);
    }

    /// Ends the partition.
    pub fn heal(&mut self) {
        self.partition = None;
    }

    /// Whether a partition is active.
    pub fn is_partitioned(&self) -> bool {
        self.partition.is_some()
    }

    /// Hands `envelope` to the network at step `now`.
    pub fn send(&mut self, rng: &mut Rng, now: u64, envelope: Envelope) {
        self.stats.sent += 1;
        if self.faulty && rng.chance(self.config.loss_per_mille) {
            self.stats.lost += 1;
            return;
        }
        if self.faulty && rng.chance(self.config.duplicate_per_mille) {
            self.stats.duplicated += 1;
            self.schedule(rng, now, envelope.clone());
        }
        self.schedule(rng, now, envelope);
    }

    fn schedule(&mut self, rng: &mut Rng, now: u64, envelope: Envelope) {
        let mut delay = rng.between(1, self.config.latency_max_steps);
        if rng.chance(self.config.long_delay_per_mille) {
            delay += rng.between(1, self.config.long_delay_max_steps);
        }
        self.queue.push(Scheduled {
            deliver_at_step: now + delay,
            tiebreak: rng.next_u64(),
            envelope,
        });
    }

    /// The next message due at step `now` that the partition lets through.
    pub fn pop_due(&mut self, now: u64) -> Option<Envelope> {
        while self.queue.peek()?.deliver_at_step <= now {
            let envelope = self.queue.pop().expect("peeked").envelope;
            let separated = self
                .partition
                .as_ref()
                .is_some_and(|sides| sides[envelope.from] != sides[envelope.to]);
            if separated {
                self.stats.partitioned += 1;
                continue;
            }
            return Some(envelope);
        }
        None
    }
}
