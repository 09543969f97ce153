//! One simulated node and its driver: the machine (absent while the node is
//! down or not yet joined), its in-memory log with an anchor-id index for
//! serving pulls, and the durability model (records become durable now or
//! a few steps later; a crash keeps only the durable prefix).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::rc::Rc;

use pc_codec::genesis::Genesis;
use pc_codec::{Decode, Hash32, LogRecordKind, ParentRef, Reader, SignedAnchorHeader};
use pc_shard::machine::{FinalizedReport, RestoreError, Role, Shard, ShardLimits, Transmit};

use crate::sim::crypto::{SimCrypto, SHARD};
use crate::sim::network::NodeId;
use crate::sim::rng::Rng;

/// The machine type of a seed.
pub type Machine<C> = Shard<<C as SimCrypto>::Verifier, <C as SimCrypto>::SeatKey>;

/// One record of a node's log.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// The machine's token for it.
    pub token: u64,
    /// Its kind.
    pub kind: LogRecordKind,
    /// Its body (shared with the messages that serve it).
    pub body: Rc<[u8]>,
}

/// How a node's records become durable.
#[derive(Debug, Clone, Copy)]
pub struct Durability {
    /// Records are reported durable `0..=delay_max_steps` steps after they
    /// are appended (0: in the same step).
    pub delay_max_steps: u64,
    /// Share of batches made durable in the same step even with a delay,
    /// per mille.
    pub immediate_per_mille: u32,
    /// A same-step sync may complete records appended by the durability
    /// report itself (an instant disk: a seat then makes all the anchors it
    /// wants in one step). Otherwise a driver pass syncs once, like the
    /// `batch` policy of DESIGN §6, and what that sync triggers is synced
    /// at the next step.
    pub cascade_within_step: bool,
    /// Delayed syncs that cover only part of the records appended so far
    /// (a driver that syncs record by record, like `fsync = always`), per
    /// mille: a crash may then cut between an `AnchorAccepted` record and
    /// the `RoundFinalized` record its insertion produced.
    pub partial_sync_per_mille: u32,
}

/// What one driver pass produced.
#[derive(Default)]
pub struct DriverOutput {
    /// Messages the machine wants sent.
    pub transmits: Vec<Transmit>,
    /// Rounds it finalized.
    pub reports: Vec<FinalizedReport>,
    /// Anchors it inserted (their `AnchorAccepted` records), in order:
    /// id and creator.
    pub inserted: Vec<(Hash32, u8)>,
}

/// A node of the simulation.
pub struct Node<C: SimCrypto> {
    /// Its index (and peer id).
    pub id: NodeId,
    /// Its seat; `None` for the observer.
    pub seat: Option<u8>,
    /// The machine, while up.
    pub machine: Option<Machine<C>>,
    /// The log: everything persisted; after a crash, the durable prefix.
    pub log: Vec<LogRecord>,
    by_anchor_id: HashMap<Hash32, usize>,
    /// (birth round, log index) of every logged anchor, to serve ranges.
    by_round: BTreeSet<(u64, usize)>,
    /// Highest token reported durable in this incarnation.
    durable_token: Option<u64>,
    /// Log length covered by `durable_token`.
    durable_len: usize,
    /// Scheduled durability reports: (step, token), steps non-decreasing.
    syncs: VecDeque<(u64, u64)>,
    /// The round of the next report the node must produce.
    pub next_round: u64,
    /// Last step at which the node finalized a round, or came up.
    pub last_progress_step: u64,
    /// Starts and restarts so far.
    pub incarnation: u32,
    /// Records whose token skipped numbers after the previous record's.
    pub token_gaps: u64,
}

impl<C: SimCrypto> Node<C> {
    /// A node that is not running yet.
    pub fn new(id: NodeId, seat: Option<u8>) -> Self {
        Node {
            id,
            seat,
            machine: None,
            log: Vec::new(),
            by_anchor_id: HashMap::new(),
            by_round: BTreeSet::new(),
            durable_token: None,
            durable_len: 0,
            syncs: VecDeque::new(),
            next_round: 0,
            last_progress_step: 0,
            incarnation: 0,
            token_gaps: 0,
        }
    }

    /// Whether the machine runs.
    pub fn is_up(&self) -> bool {
        self.machine.is_some()
    }

    fn fresh_machine(&self, genesis: &Genesis, limits: ShardLimits) -> Machine<C> {
        let role = match self.seat {
            Some(seat) => Role::Seat {
                seat,
                signer: C::seat_key(seat),
            },
            None => Role::Observer,
        };
        Shard::new(genesis, SHARD, role, C::verifier(), limits)
    }

    /// Starts (or restarts) the machine at step `now`, restoring it from
    /// the log. Returns the restore error, if any: a library bug.
    pub fn start(
        &mut self,
        genesis: &Genesis,
        limits: ShardLimits,
        now: u64,
    ) -> Result<(), RestoreError> {
        let mut machine = self.fresh_machine(genesis, limits);
        machine.restore(self.log.iter().map(|r| (r.kind, &r.body[..])))?;
        self.next_round = machine.consensus().next_undecided_round();
        machine.handle_tick(now);
        self.machine = Some(machine);
        self.last_progress_step = now;
        self.incarnation += 1;
        Ok(())
    }

    /// Drops the machine and every record that was not reported durable.
    pub fn crash(&mut self) {
        self.machine = None;
        self.log.truncate(self.durable_len);
        self.by_anchor_id
            .retain(|_, index| *index < self.durable_len);
        self.by_round.retain(|(_, index)| *index < self.durable_len);
        self.syncs.clear();
        self.durable_token = None;
    }

    /// The encoded anchor with this id, if the log holds it.
    pub fn logged_anchor(&self, id: &Hash32) -> Option<Rc<[u8]>> {
        self.by_anchor_id
            .get(id)
            .map(|index| Rc::clone(&self.log[*index].body))
    }

    /// Logged anchors of birth round `from_round` and above, lowest round
    /// first and in log order within a round, at most `max_count`, for a
    /// `GetRange`. Only durable records are served: a range reaches the
    /// newest records, and an own anchor must not leave before its record
    /// is durable (a crash would let the seat sign its seq again).
    pub fn logged_range(&self, from_round: u64, max_count: u32) -> Vec<Rc<[u8]>> {
        self.by_round
            .range((from_round, 0)..)
            .filter(|(_, index)| *index < self.durable_len)
            .take(max_count as usize)
            .map(|(_, index)| Rc::clone(&self.log[*index].body))
            .collect()
    }

    /// Runs the driver once at step `now`: due durability reports, then
    /// everything the machine has to persist, finalize and send, until it
    /// is quiet.
    pub fn drive(&mut self, now: u64, rng: &mut Rng, durability: Durability) -> DriverOutput {
        let mut output = DriverOutput::default();
        if self.machine.is_none() {
            return output;
        }
        while self.syncs.front().is_some_and(|(step, _)| *step <= now) {
            let (_, token) = self.syncs.pop_front().expect("checked");
            self.mark_durable(token);
        }
        let mut synced_this_pass = false;
        loop {
            let appended = self.drain_persists(&mut output);
            if appended {
                let token = self.log.last().expect("appended").token;
                let same_step =
                    durability.delay_max_steps == 0 || rng.chance(durability.immediate_per_mille);
                if same_step && (durability.cascade_within_step || !synced_this_pass) {
                    synced_this_pass = true;
                    self.mark_durable(token);
                } else {
                    let partial = self.sync_target(rng, durability, token);
                    self.schedule_sync(now, rng, durability, partial, same_step);
                    if partial != token {
                        // The driver keeps syncing until the tail is durable.
                        self.schedule_sync(now, rng, durability, token, false);
                    }
                }
            }
            let machine = self.machine.as_mut().expect("up");
            output
                .reports
                .extend(std::iter::from_fn(|| machine.poll_finalized()));
            let before = output.transmits.len();
            output
                .transmits
                .extend(std::iter::from_fn(|| machine.poll_transmit()));
            if !appended && output.transmits.len() == before {
                return output;
            }
        }
    }

    fn drain_persists(&mut self, output: &mut DriverOutput) -> bool {
        let machine = self.machine.as_mut().expect("up");
        let mut appended = false;
        while let Some(record) = machine.poll_persist() {
            if let Some(last) = self.log.last() {
                assert!(
                    record.token > last.token,
                    "node {}: record token {} after token {}",
                    self.id,
                    record.token,
                    last.token
                );
                if record.token != last.token + 1 {
                    self.token_gaps += 1;
                }
            }
            let body: Rc<[u8]> = record.body.into();
            if record.kind == LogRecordKind::AnchorAccepted {
                let header = header_of(&body);
                let id = header.anchor_id();
                self.by_anchor_id.insert(id, self.log.len());
                self.by_round
                    .insert((header.header.birth_round, self.log.len()));
                output.inserted.push((id, header.header.creator));
            }
            self.log.push(LogRecord {
                token: record.token,
                kind: record.kind,
                body,
            });
            appended = true;
        }
        appended
    }

    /// The token a delayed sync covers: `last`, or with
    /// `partial_sync_per_mille` a record between the durable watermark and
    /// `last` (the rest then waits for the next sync).
    fn sync_target(&self, rng: &mut Rng, durability: Durability, last: u64) -> u64 {
        if !rng.chance(durability.partial_sync_per_mille) {
            return last;
        }
        let volatile = &self.log[self.durable_len..];
        volatile[rng.index(volatile.len())].token
    }

    /// Reports `token` durable at a later step: the next one for a
    /// same-step sync that this pass already used, else after a delay.
    fn schedule_sync(
        &mut self,
        now: u64,
        rng: &mut Rng,
        durability: Durability,
        token: u64,
        next_step: bool,
    ) {
        let delay = if next_step {
            1
        } else {
            rng.between(1, durability.delay_max_steps.max(1))
        };
        let earliest = self.syncs.back().map_or(now, |(step, _)| *step);
        self.syncs.push_back(((now + delay).max(earliest), token));
    }

    fn mark_durable(&mut self, token: u64) {
        if self.durable_token.is_some_and(|done| done >= token) {
            return;
        }
        self.durable_token = Some(token);
        self.durable_len = self.log.partition_point(|r| r.token <= token);
        self.machine
            .as_mut()
            .expect("durability is reported to a running machine")
            .handle_durable(token);
    }

    /// Parent refs of the last `count` anchors in the log, newest first.
    pub fn recent_parent_refs(&self, count: usize) -> Vec<ParentRef> {
        self.log
            .iter()
            .rev()
            .filter(|r| r.kind == LogRecordKind::AnchorAccepted)
            .take(count)
            .map(|r| {
                let signed = header_of(&r.body);
                ParentRef {
                    anchor_id: signed.anchor_id(),
                    creator: signed.header.creator,
                    seq: signed.header.seq,
                    birth_round: signed.header.birth_round,
                }
            })
            .collect()
    }
}

/// The signed header of an `AnchorAccepted` body (the payload is not decoded).
pub fn header_of(body: &[u8]) -> SignedAnchorHeader {
    SignedAnchorHeader::decode(&mut Reader::new(body))
        .expect("a machine logs only decodable anchors")
}
