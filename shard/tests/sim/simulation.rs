//! One seed of the simulation: k seat machines and an observer, a faulty
//! network, drivers with in-memory logs, clients and Byzantine seats,
//! advanced one logical step at a time by [`Simulation::step`] and checked
//! after every step.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use pc_codec::genesis::Genesis;
use pc_codec::{Decode, Encode, Hash32, LogRecordKind, MicroEvent, SignedAnchor};
use pc_shard::economics::OffenceClass;
use pc_shard::machine::{
    AnchorRejected, AnchorStatus, Destination, FinalizedReport, ShardMessage, SubmitRejected,
    Transmit,
};
use pc_shard::oracle::{Oracle, OracleConfig};
use pc_shard::state::Outcome;
use pc_shard::validate::{AnchorError, MicroEventError};
use pc_shard::VertexSpec;

use crate::sim::byzantine::{self, Mode};
use crate::sim::checker::{short, Checker, FinalizedEvent};
use crate::sim::clients::Clients;
use crate::sim::config::{supermajority, CrashPlan, SeedConfig};
use crate::sim::counters::Counters;
use crate::sim::crypto::{self, SimCrypto};
use crate::sim::model::Model;
use crate::sim::network::{Envelope, Expect, Network, NodeId, Payload};
use crate::sim::node::{header_of, Node};
use crate::sim::rng::Rng;

/// Genesis outputs per client (enough for every submission of a run).
const OUTPUTS_PER_CLIENT: u32 = 512;
/// Units per genesis output.
const GENESIS_OUTPUT_UNITS: u64 = 1_000_000;
/// During the drain, how often the simulator checks whether it is over.
const SETTLE_CHECK_EVERY_STEPS: u64 = 10;
/// Recent log entries a far-future flood takes real parents from.
const RECENT_PARENTS: usize = 16;
/// Chance per step, per mille, that a seat claims (or a claim is sent
/// again).
const CLAIM_PER_MILLE: u32 = 20;
/// Chance per step, per mille, that a miner sends a mint.
const MINT_PER_MILLE: u32 = 40;
/// Most nonces a simulated miner tries for one mint.
const MINT_TRIES: u64 = 1 << 14;
/// Units left to mint in a seed with `mint_exhaust` (`H = 1`: rewards 5, 2
/// and 1, then the schedule is spent).
const EXHAUST_EMISSION: u64 = 10;

/// Two anchors of one seat at one seq, made by an equivocating seat.
struct Fork {
    seat: u8,
    seq: u64,
    ids: [Hash32; 2],
}

/// One seed.
pub struct Simulation<C: SimCrypto> {
    config: SeedConfig,
    genesis: Genesis,
    q: usize,
    now: u64,
    /// Seats `0..k`, then the observer.
    nodes: Vec<Node<C>>,
    /// Byzantine behaviour per node (`None`: honest).
    modes: Vec<Option<Mode>>,
    network: Network,
    rng_network: Rng,
    rng_clients: Rng,
    rng_faults: Rng,
    rng_byzantine: Rng,
    rng_disk: Rng,
    checker: Checker,
    clients: Clients<C>,
    forks: Vec<Fork>,
    /// The second anchor of every fork.
    fork_ids: HashSet<Hash32>,
    /// (seat, seq) -> id of every anchor an honest seat sent.
    sent_by_honest: HashMap<(u8, u64), Hash32>,
    /// Forged anchors that no honest node may ever insert.
    never_insert: Vec<Hash32>,
    /// Claims submitted, to send again later.
    claims_made: Vec<MicroEvent>,
    /// Tips the mint chain had, for stale mints.
    old_tips: Vec<Hash32>,
    restart_at: Vec<Option<u64>>,
    /// First step of the current healthy stretch.
    healthy_since: u64,
    /// Valid anchors made so far: own anchors of every machine plus forks.
    anchors_created: u64,
    /// Valid anchors made by honest machines, per round.
    created_by_round: BTreeMap<u64, u64>,
    /// Per node, the highest round among the anchors it inserted.
    highest_round: Vec<u64>,
    counters: Counters,
    /// `SIM_TRACE=<steps>`: print every node's status every so many steps.
    trace_every_steps: Option<u64>,
    /// `SIM_ORACLE=<n>`: at the end, replay the observer's first `n` logged
    /// anchors into the library's naive oracle and compare.
    oracle_vertices: Option<usize>,
}

impl<C: SimCrypto> Simulation<C> {
    /// The simulation of one seed.
    pub fn new(config: SeedConfig) -> Self {
        let seed = config.seed;
        let k = config.k;
        let mut genesis = crypto::genesis(
            k,
            OUTPUTS_PER_CLIENT,
            GENESIS_OUTPUT_UNITS,
            config.coin_round_period,
            config.window,
        );
        genesis.params.slash_window_anchors = config.slash_window_anchors;
        genesis.params.claim_window_anchors = config.claim_window_anchors;
        // Mints every few rounds, cheap to find (1 in 64 hashes at first),
        // maturity of a few rounds in three tiers within a seed.
        genesis.params.mint_interval_anchors = 8;
        genesis.params.mint_race_rounds = config.mint_race_rounds;
        genesis.params.mint_target_max = 1 << 125;
        genesis.params.mint_target_initial = 1 << 122;
        // Maturity scales with k (a round holds at least k anchors), so
        // spends of minted outputs meet it in every committee size.
        let kk = k as u64;
        genesis.params.maturity_anchors = [10 * kk, 20 * kk, 40 * kk];
        genesis.params.maturity_tier_bounds = [30 * kk, 100 * kk];
        if config.mint_exhaust {
            let cap = u128::from(pc_codec::genesis::SUPPLY_CAP_UNITS);
            let rest = cap - genesis.total_value() - u128::from(EXHAUST_EMISSION);
            genesis.params.mint_halving_mints = 1;
            genesis.allocations.push(pc_codec::GenesisAllocation {
                owner: crypto::client_public(0),
                amount: rest as u64,
                outputs: 1,
            });
        }
        let mut rng_clients = Rng::new(seed, 2);
        let clients = Clients::new(&genesis, &mut rng_clients);
        let nodes = (0..=k)
            .map(|id| Node::new(id, (id < k).then_some(id as u8)))
            .collect();
        let modes = (0..=k)
            .map(|id| {
                if id < k {
                    config.mode_of(id as u8)
                } else {
                    None
                }
            })
            .collect();
        Simulation {
            q: supermajority(k),
            now: 0,
            nodes,
            modes,
            network: Network::new(config.network),
            rng_network: Rng::new(seed, 1),
            rng_clients,
            rng_faults: Rng::new(seed, 3),
            rng_byzantine: Rng::new(seed, 4),
            rng_disk: Rng::new(seed, 5),
            checker: Checker::new(Model::new(&genesis)),
            clients,
            forks: Vec::new(),
            fork_ids: HashSet::new(),
            never_insert: Vec::new(),
            claims_made: Vec::new(),
            old_tips: Vec::new(),
            sent_by_honest: HashMap::new(),
            restart_at: vec![None; k + 1],
            healthy_since: 0,
            anchors_created: 0,
            created_by_round: BTreeMap::new(),
            highest_round: vec![0; k + 1],
            counters: Counters::default(),
            trace_every_steps: std::env::var("SIM_TRACE").ok().and_then(|v| v.parse().ok()),
            oracle_vertices: std::env::var("SIM_ORACLE")
                .ok()
                .and_then(|v| v.parse().ok()),
            genesis,
            config,
        }
    }

    /// Runs every step and the final checks; the error names the step.
    pub fn run(mut self) -> Result<Counters, String> {
        self.count_seed_kind();
        self.start_initial_nodes()
            .and_then(|()| {
                while self.clients_active() || !self.settled() {
                    if self.now >= self.config.phases.max_steps() {
                        return self.finish();
                    }
                    self.step()?;
                }
                self.finish()
            })
            .map_err(|error| format!("step {}: {error}", self.now))?;
        self.counters.steps = self.now;
        self.counters.token_gaps = self.nodes.iter().map(|n| n.token_gaps).sum();
        let stats = self.network.stats;
        self.counters.messages_sent = stats.sent;
        self.counters.messages_lost = stats.lost;
        self.counters.messages_duplicated = stats.duplicated;
        self.counters.messages_partitioned = stats.partitioned;
        let clients = self.clients.stats;
        self.counters.double_spend_pairs = clients.double_spend_pairs;
        self.counters.rejected_double_spends = clients.rejected_double_spends;
        self.counters.chained_applied = clients.chained_applied;
        self.counters.transfers_applied = clients.applied;
        self.counters.finalized_again = clients.finalized_again;
        self.counters.mempool_full = clients.mempool_full;
        self.counters.submissions_lost = clients.lost_to_absent_seat;
        self.counters.seeds_double_spends = u64::from(clients.double_spend_pairs > 0);
        self.counters.rounds_finalized = self.checker.rounds();
        self.counters.slash_tier_resets = self.checker.model().tier_resets;
        self.counters.max_rounds_per_seed = self.checker.rounds();
        self.counters.mint_races_decided = self.checker.races_decided;
        self.counters.mint_races_contested = self.checker.races_contested;
        self.counters.immature_spends_rejected = clients.immature_rejected;
        self.counters.matured_spends_applied = clients.matured_spent;
        self.counters.immature_spends_refused = clients.immature_refused;
        Ok(self.counters)
    }

    fn count_seed_kind(&mut self) {
        let config = &self.config;
        let counters = &mut self.counters;
        counters.seeds = 1;
        counters.seeds_calm = u64::from(config.calm);
        counters.seeds_bip340 = u64::from(config.bip340);
        counters.seeds_short_coin_period = u64::from(config.coin_round_period < 10);
        counters.seeds_short_window = u64::from(config.window < 26);
        counters.seeds_short_slash_window = u64::from(config.slash_window_anchors < 100);
        counters.seeds_short_claim_window = u64::from(config.claim_window_anchors < 100);
        counters.seeds_mint_exhaust = u64::from(config.mint_exhaust);
        counters.seeds_equivocate = u64::from(config.has_mode(Mode::Equivocate));
        counters.seeds_invalid_signatures = u64::from(config.has_mode(Mode::InvalidSignatures));
        counters.seeds_random_parents = u64::from(config.has_mode(Mode::RandomParents));
        counters.seeds_far_future = u64::from(config.has_mode(Mode::FarFuture));
        counters.seeds_silent = u64::from(config.has_mode(Mode::Silent));
        counters.seeds_crashes = u64::from(!config.crashes.is_empty());
        counters.seeds_partitions = u64::from(!config.partitions.is_empty());
        counters.seeds_late_join = u64::from(config.late_join.is_some());
    }

    fn start_initial_nodes(&mut self) -> Result<(), String> {
        if self.trace_every_steps.is_some() {
            println!("{:#?}", self.config);
        }
        let late = self.config.late_join.map(|(seat, _)| usize::from(seat));
        for id in 0..self.nodes.len() {
            if self.modes[id] != Some(Mode::Silent) && Some(id) != late {
                self.start_node(id)?;
            }
        }
        Ok(())
    }

    /// One logical step: faults, deliveries, client input, floods, drivers,
    /// then the per-step checks.
    pub fn step(&mut self) -> Result<(), String> {
        self.apply_fault_plan()?;
        self.deliver()?;
        if self.clients_active() {
            self.submit_transfers()?;
            self.submit_claims()?;
            self.submit_mints()?;
        }
        if self.in_fault_phase() {
            self.flood();
        }
        self.drive_nodes()?;
        self.check_bounds()?;
        self.check_progress()?;
        if self
            .trace_every_steps
            .is_some_and(|every| self.now.is_multiple_of(every))
        {
            self.trace();
        }
        self.now += 1;
        Ok(())
    }

    /// Clients submit until their stop step, and past it while the seed has
    /// finalized fewer than its minimum rounds (a seed whose faults held
    /// rounds back until late still has to show it finalizes them; the
    /// step limit bounds the wait).
    fn clients_active(&self) -> bool {
        self.now < self.config.phases.clients_stop_step()
            || self.checker.rounds() < self.config.phases.min_rounds
    }

    fn in_fault_phase(&self) -> bool {
        self.now < self.config.phases.fault_steps
    }

    fn is_honest(&self, id: NodeId) -> bool {
        self.modes[id].is_none()
    }

    fn honest_seats_up(&self) -> usize {
        (0..self.config.k)
            .filter(|id| self.is_honest(*id) && self.nodes[*id].is_up())
            .count()
    }

    // ----- faults ---------------------------------------------------------

    fn apply_fault_plan(&mut self) -> Result<(), String> {
        let now = self.now;
        if now == self.config.phases.fault_steps {
            self.end_faults();
        }
        for plan in self.config.partitions.clone() {
            if now == plan.start_step {
                self.partition();
            }
            if now == plan.heal_step && self.network.is_partitioned() {
                self.network.heal();
                self.counters.partitions_healed += 1;
            }
        }
        for plan in self.config.crashes.clone() {
            if now == plan.at_step {
                self.crash(plan);
            }
        }
        for id in 0..self.nodes.len() {
            if self.restart_at[id] == Some(now) {
                self.restart_at[id] = None;
                self.start_node(id)?;
                self.counters.restarts += 1;
            }
        }
        if let Some((seat, step)) = self.config.late_join {
            if now == step.min(self.config.phases.fault_steps) && !self.nodes[seat as usize].is_up()
            {
                self.start_node(usize::from(seat))?;
                self.counters.late_joins += 1;
            }
        }
        Ok(())
    }

    /// The network stops losing and duplicating, partitions heal and every
    /// crashed seat restarts now.
    fn end_faults(&mut self) {
        self.network.stop_faults();
        if self.network.is_partitioned() {
            self.network.heal();
            self.counters.partitions_healed += 1;
        }
        for restart in self.restart_at.iter_mut().flatten() {
            *restart = self.now;
        }
    }

    /// Splits the honest nodes into two non-empty groups; Byzantine seats
    /// land on either side.
    fn partition(&mut self) {
        let mut honest: Vec<NodeId> = (0..self.nodes.len())
            .filter(|id| self.is_honest(*id))
            .collect();
        if honest.len() < 2 {
            return;
        }
        self.rng_faults.shuffle(&mut honest);
        let split = self.rng_faults.between(1, honest.len() as u64 - 1) as usize;
        let mut sides: Vec<u8> = (0..self.nodes.len())
            .map(|_| self.rng_faults.below(2) as u8)
            .collect();
        for (position, id) in honest.iter().enumerate() {
            sides[*id] = u8::from(position < split);
        }
        self.network.partition(sides);
    }

    fn crash(&mut self, plan: CrashPlan) {
        let id = usize::from(plan.seat);
        if !self.nodes[id].is_up() {
            return;
        }
        let over_budget = self.honest_seats_up() <= self.q;
        if over_budget && !self.config.crash_beyond_budget {
            self.counters.crashes_skipped += 1;
            return;
        }
        self.nodes[id].crash();
        let fault_end = self.config.phases.fault_steps;
        self.restart_at[id] = Some((self.now + plan.down_steps).clamp(self.now + 1, fault_end));
    }

    /// Starts a node from its log (empty for a first start) and checks that
    /// the restored state is the canonical one.
    fn start_node(&mut self, id: NodeId) -> Result<(), String> {
        let node = &mut self.nodes[id];
        node.start(&self.genesis, self.config.limits, self.now)
            .map_err(|error| {
                format!(
                    "node {id} cannot restart from its log of {} records: {error}",
                    node.log.len()
                )
            })?;
        let restored_rounds = node.next_round;
        if restored_rounds > self.checker.rounds() {
            return Err(format!(
                "node {id} restored {restored_rounds} rounds, more than the {} ever finalized",
                self.checker.rounds()
            ));
        }
        let expected = match restored_rounds.checked_sub(1) {
            Some(last) => {
                self.checker
                    .round(last)
                    .expect("checked")
                    .outcome
                    .state_root
            }
            None => self.genesis.hash(),
        };
        let machine = node.machine.as_ref().expect("started");
        if machine.state().state_root() != expected {
            return Err(format!(
                "node {id} restored {restored_rounds} rounds to state root {} instead of {}",
                short(&machine.state().state_root()),
                short(&expected)
            ));
        }
        Ok(())
    }

    // ----- network --------------------------------------------------------

    fn send(&mut self, from: NodeId, to: NodeId, payload: Payload, expect: Expect) {
        let envelope = Envelope {
            from,
            to,
            payload,
            expect,
        };
        self.network.send(&mut self.rng_network, self.now, envelope);
    }

    fn deliver(&mut self) -> Result<(), String> {
        while let Some(envelope) = self.network.pop_due(self.now) {
            if !self.nodes[envelope.to].is_up() {
                self.network.stats.to_down_node += 1;
                continue;
            }
            match &envelope.payload {
                Payload::Anchor(bytes) => self.deliver_anchor(&envelope, bytes)?,
                Payload::Get(ids) => self.serve_get(envelope.to, envelope.from, ids),
                Payload::Announce(ids) => {
                    if let Some(machine) = self.nodes[envelope.to].machine.as_mut() {
                        machine.handle_announce(Some(envelope.from as u32), ids);
                    }
                }
                Payload::Evidence(bytes) => {
                    // Queued like a submission: a duplicate or an offence
                    // against a seat already out is refused, not an error.
                    let event = MicroEvent::from_bytes(bytes).expect("relayed evidence decodes");
                    if let Some(machine) = self.nodes[envelope.to].machine.as_mut() {
                        if machine.handle_micro_event(event).is_ok() {
                            self.counters.evidence_relayed += 1;
                        }
                    }
                }
                Payload::GetRange {
                    from_round,
                    max_count,
                } => self.serve_range(envelope.to, envelope.from, *from_round, *max_count),
            }
        }
        Ok(())
    }

    /// Hands an anchor to its receiver and holds an honest receiver's answer
    /// to the ground truth.
    fn deliver_anchor(&mut self, envelope: &Envelope, bytes: &[u8]) -> Result<(), String> {
        let (from, to) = (envelope.from, envelope.to);
        let machine = self.nodes[to]
            .machine
            .as_mut()
            .expect("delivered to a running node");
        let result = machine.handle_anchor(Some(from as u32), bytes);
        if !self.is_honest(to) {
            return Ok(());
        }
        let id = || anchor_label(bytes);
        match (envelope.expect, &result) {
            // Deferred unchecked (a full pending set would refuse it): not
            // taken, whatever it is; a range or pull brings a valid one again.
            (_, Ok(AnchorStatus::Deferred)) => Ok(()),
            (Expect::Accept, Err(error)) => Err(format!(
                "node {to} refused valid anchor {} from node {from}: {error}",
                id()
            )),
            (Expect::Reject, Ok(status)) => Err(format!(
                "node {to} took invalid anchor {} from node {from} as {status:?}",
                id()
            )),
            (Expect::NeverInsert, Ok(AnchorStatus::Inserted)) => Err(format!(
                "node {to} inserted anchor {} from node {from}, whose parents do not exist or do not match",
                id()
            )),
            (_, Ok(AnchorStatus::Pending)) if envelope.expect != Expect::Accept => {
                self.counters.forged_held_pending += 1;
                Ok(())
            }
            (_, Err(error)) => {
                self.count_rejection(error);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn count_rejection(&mut self, error: &AnchorRejected) {
        let counter = match error {
            AnchorRejected::Invalid(AnchorError::BadSignature { .. }) => {
                &mut self.counters.rejected_bad_signature
            }
            AnchorRejected::Invalid(AnchorError::MicroEvent {
                error: MicroEventError::TransferBadSignature,
                ..
            }) => &mut self.counters.rejected_bad_payload_signature,
            AnchorRejected::Invalid(AnchorError::BirthRoundTooHigh { .. })
            | AnchorRejected::Invalid(AnchorError::ParentBirthRoundAhead { .. })
            | AnchorRejected::Consensus(_) => &mut self.counters.rejected_far_future,
            AnchorRejected::ParentRefMismatch { .. } => &mut self.counters.rejected_parent_mismatch,
            _ => &mut self.counters.rejected_other,
        };
        *counter += 1;
    }

    /// The driver of `server` answers a Get from its log.
    fn serve_get(&mut self, server: NodeId, requester: NodeId, ids: &[Hash32]) {
        for id in ids {
            if let Some(body) = self.nodes[server].logged_anchor(id) {
                self.counters.pulls_served += 1;
                self.send(server, requester, Payload::Anchor(body), Expect::Accept);
            }
        }
    }

    /// The driver of `server` answers a GetRange from its durable log.
    fn serve_range(&mut self, server: NodeId, requester: NodeId, from_round: u64, max_count: u32) {
        for body in self.nodes[server].logged_range(from_round, max_count) {
            self.counters.range_anchors_served += 1;
            self.send(server, requester, Payload::Anchor(body), Expect::Accept);
        }
    }

    /// Sends what a machine asked to send; a Byzantine seat's own anchors
    /// may be replaced on the way.
    fn route(&mut self, from: NodeId, transmit: Transmit) -> Result<(), String> {
        let targets: Vec<NodeId> = match transmit.destination {
            Destination::Broadcast => (0..self.nodes.len()).filter(|t| *t != from).collect(),
            Destination::Peer(peer) => vec![peer as NodeId],
        };
        match transmit.message {
            ShardMessage::Get(ids) => {
                self.counters.gets_sent += 1;
                let ids: Rc<[Hash32]> = ids.into();
                for to in targets {
                    self.send(from, to, Payload::Get(Rc::clone(&ids)), Expect::Accept);
                }
            }
            ShardMessage::Evidence(bytes) => {
                let bytes: Rc<[u8]> = bytes.into();
                for to in targets {
                    self.send(
                        from,
                        to,
                        Payload::Evidence(Rc::clone(&bytes)),
                        Expect::Accept,
                    );
                }
            }
            ShardMessage::Announce(ids) => {
                self.counters.announces_sent += 1;
                let ids: Rc<[Hash32]> = ids.into();
                for to in targets {
                    self.send(from, to, Payload::Announce(Rc::clone(&ids)), Expect::Accept);
                }
            }
            ShardMessage::GetRange {
                from_round,
                max_count,
            } => {
                self.counters.catch_ups_sent += 1;
                for to in targets {
                    let payload = Payload::GetRange {
                        from_round,
                        max_count,
                    };
                    self.send(from, to, payload, Expect::Accept);
                }
            }
            ShardMessage::Anchor(bytes) => {
                let bytes: Rc<[u8]> = bytes.into();
                if self.is_honest(from) {
                    self.check_no_honest_fork(from, &bytes)?;
                }
                match self.modes[from] {
                    Some(mode) if self.in_fault_phase() => {
                        self.misbehave(from, mode, bytes, targets)
                    }
                    _ => self.send_all(from, &targets, &bytes, Expect::Accept),
                }
            }
        }
        Ok(())
    }

    /// An honest seat never sends two different anchors at one seq (a
    /// restarted seat must continue after every anchor it sent).
    fn check_no_honest_fork(&mut self, from: NodeId, bytes: &[u8]) -> Result<(), String> {
        let signed = header_of(bytes);
        let key = (signed.header.creator, signed.header.seq);
        let id = signed.anchor_id();
        match self.sent_by_honest.insert(key, id) {
            Some(earlier) if earlier != id => Err(format!(
                "honest node {from} sent anchors {} and {} of seat {} at seq {}",
                short(&earlier),
                short(&id),
                key.0,
                key.1
            )),
            _ => Ok(()),
        }
    }

    fn send_all(&mut self, from: NodeId, targets: &[NodeId], bytes: &Rc<[u8]>, expect: Expect) {
        for to in targets {
            self.send(from, *to, Payload::Anchor(Rc::clone(bytes)), expect);
        }
    }

    // ----- Byzantine seats ------------------------------------------------

    /// A Byzantine seat's own anchor on its way out.
    fn misbehave(&mut self, from: NodeId, mode: Mode, bytes: Rc<[u8]>, targets: Vec<NodeId>) {
        let rng = &mut self.rng_byzantine;
        let (honest, byzantine): (Vec<NodeId>, Vec<NodeId>) =
            targets.into_iter().partition(|t| self.modes[*t].is_none());
        match mode {
            Mode::Equivocate
                if rng.chance(self.config.fork_per_mille)
                    && honest.len() >= 2
                    && self
                        .forks
                        .iter()
                        .filter(|f| usize::from(f.seat) == from)
                        .count()
                        < self.config.max_forks_per_seat as usize =>
            {
                let original = SignedAnchor::from_bytes(&bytes).expect("own anchors decode");
                let fork = byzantine::fork_of::<C>(&original, rng);
                let mut halves = honest;
                rng.shuffle(&mut halves);
                let second_half = halves.split_off(halves.len() / 2);
                self.forks.push(Fork {
                    seat: original.header.header.creator,
                    seq: original.header.header.seq,
                    ids: [original.anchor_id(), fork.anchor_id()],
                });
                self.fork_ids.insert(fork.anchor_id());
                self.counters.forks_created += 1;
                self.anchors_created += 1;
                let fork_bytes: Rc<[u8]> = fork.to_bytes().into();
                self.send_all(from, &halves, &bytes, Expect::Accept);
                self.send_all(from, &byzantine, &bytes, Expect::Accept);
                self.send_all(from, &second_half, &fork_bytes, Expect::Accept);
            }
            Mode::InvalidSignatures if rng.chance(self.config.bad_signature_per_mille) => {
                let original = SignedAnchor::from_bytes(&bytes).expect("own anchors decode");
                let bad_anchor = byzantine::badly_signed::<C>(&original, rng);
                let bad: Rc<[u8]> = bad_anchor.to_bytes().into();
                let also_original = rng.coin();
                // Sometimes an anchor on top of the refused one (its
                // creator acknowledges invalid data), or the original with
                // an unsatisfiable commitment.
                let (name_it, unsatisfiable) = (rng.coin(), rng.chance(250));
                let voter = byzantine::naming_invalid::<C>(rng, &bad_anchor, self.config.k);
                self.counters.forged_sent += 1;
                self.send_all(from, &honest, &bad, Expect::Reject);
                if name_it {
                    self.never_insert.push(voter.anchor_id());
                    self.counters.forged_sent += 1;
                    let voter: Rc<[u8]> = voter.to_bytes().into();
                    self.send_all(from, &honest, &voter, Expect::NeverInsert);
                }
                if unsatisfiable {
                    let forged: Rc<[u8]> =
                        byzantine::unsatisfiable::<C>(&original).to_bytes().into();
                    self.counters.forged_sent += 1;
                    self.send_all(from, &honest, &forged, Expect::Reject);
                }

                if also_original {
                    self.send_all(from, &honest, &bytes, Expect::Accept);
                }
                self.send_all(from, &byzantine, &bytes, Expect::Accept);
            }
            _ => {
                self.send_all(from, &honest, &bytes, Expect::Accept);
                self.send_all(from, &byzantine, &bytes, Expect::Accept);
            }
        }
    }

    /// Flooding seats send bursts of forged anchors to random honest nodes.
    fn flood(&mut self) {
        for from in 0..self.config.k {
            let Some(mode @ (Mode::RandomParents | Mode::FarFuture)) = self.modes[from] else {
                continue;
            };
            if !self.nodes[from].is_up() || !self.rng_byzantine.chance(self.config.flood_per_mille)
            {
                continue;
            }
            let burst = self.rng_byzantine.between(1, self.config.flood_burst_max);
            for _ in 0..burst {
                self.flood_one(from, mode);
            }
        }
    }

    fn flood_one(&mut self, from: NodeId, mode: Mode) {
        let (network, k, seat) = (self.genesis.network(), self.config.k, from as u8);
        let rng = &mut self.rng_byzantine;
        let forged = if mode == Mode::RandomParents {
            let round_hint = self.nodes[from]
                .machine
                .as_ref()
                .map_or(0, |m| m.consensus().next_undecided_round() + 2);
            byzantine::with_random_parents::<C>(rng, network, k, seat, round_hint)
        } else {
            let known = self.nodes[from].recent_parent_refs(RECENT_PARENTS);
            byzantine::far_future::<C>(
                rng,
                network,
                k,
                seat,
                &known,
                self.config.blocked.unresolvable_parents,
            )
        };
        if forged.expect == Expect::NeverInsert {
            self.never_insert.push(forged.anchor.anchor_id());
        }
        self.counters.forged_sent += 1;
        let bytes: Rc<[u8]> = forged.anchor.to_bytes().into();
        let targets: Vec<NodeId> = (0..self.nodes.len())
            .filter(|t| *t != from && self.modes[*t].is_none() && self.rng_byzantine.coin())
            .collect();
        self.send_all(from, &targets, &bytes, forged.expect);
    }

    // ----- clients --------------------------------------------------------

    fn submit_transfers(&mut self) -> Result<(), String> {
        if !self.rng_clients.chance(self.config.submit_per_mille) {
            return Ok(());
        }
        let honest_seats: Vec<u8> = (0..self.config.k as u8)
            .filter(|s| self.is_honest(usize::from(*s)))
            .collect();
        let batch = self
            .clients
            .next_batch(&mut self.rng_clients, self.config.k, &honest_seats);
        for submission in batch {
            let seat = usize::from(submission.seat);
            let honest = self.is_honest(seat);
            let node = &mut self.nodes[seat];
            let Some(machine) = node.machine.as_mut() else {
                self.clients.stats.lost_to_absent_seat += 1;
                continue;
            };
            self.clients.stats.submitted += 1;
            // Half the spends of minted outputs skip the seat's maturity
            // pre-check, so apply meets immature spends too.
            let taken = if submission.spends_minted && self.rng_clients.coin() {
                machine.carry_unchecked(submission.event.clone())
            } else {
                machine.handle_micro_event(submission.event.clone())
            };
            match taken {
                Ok(()) => {
                    let incarnation = node.incarnation;
                    self.clients
                        .record_accepted(submission, incarnation, honest);
                }
                Err(SubmitRejected::ImmatureInput { .. }) if submission.spends_minted => {
                    self.clients.refused_immature(submission)
                }
                Err(SubmitRejected::MempoolFull { .. }) => self.clients.stats.mempool_full += 1,
                Err(error) => return Err(format!("seat {seat} refused a valid transfer: {error}")),
            }
        }
        Ok(())
    }

    /// Now and then an honest seat claims what it is owed, with the proof
    /// an up-to-date honest node serves (its finalized state's leaves and
    /// last payout root), through a random honest seat's mempool; or a
    /// claim made earlier is sent again (stale, or expired with a short
    /// `W_claim`): the model says which must apply.
    fn submit_claims(&mut self) -> Result<(), String> {
        if !self.rng_clients.chance(CLAIM_PER_MILLE) {
            return Ok(());
        }
        let honest: Vec<usize> = (0..self.config.k)
            .filter(|s| self.is_honest(*s) && self.nodes[*s].machine.is_some())
            .collect();
        if honest.is_empty() {
            return Ok(());
        }
        let via = honest[self.rng_clients.index(honest.len())];
        let again = !self.claims_made.is_empty() && self.rng_clients.chance(300);
        let event = if again {
            self.claims_made[self.rng_clients.index(self.claims_made.len())].clone()
        } else {
            let claimant = honest[self.rng_clients.index(honest.len())] as u8;
            let server = honest[self.rng_clients.index(honest.len())];
            let state = self.nodes[server].machine.as_ref().expect("up").state();
            let economics = state.economics();
            let Some(root) = economics.roots().last().copied() else {
                return Ok(());
            };
            let leaves = economics.leaves();
            let key = crypto::seat_public(claimant);
            let Some(at) = leaves.iter().position(|l| l.recipient == key) else {
                return Ok(());
            };
            let bytes: Vec<Vec<u8>> = leaves.iter().map(Encode::to_bytes).collect();
            let mut claim = pc_codec::Claim {
                round: root.round,
                leaf: leaves[at],
                proof: pc_codec::MerkleProof::build(&bytes, at).expect("within the leaves"),
                owner: key,
                signature: [0; 64],
            };
            claim.signature = C::sign_claim(
                claimant,
                &claim.signing_message(&self.genesis.network(), crypto::SHARD),
            );
            MicroEvent::Claim(claim)
        };
        let machine = self.nodes[via].machine.as_mut().expect("up");
        match machine.handle_micro_event(event.clone()) {
            Ok(()) => {
                self.counters.claims_submitted += 1;
                if !again {
                    self.claims_made.push(event);
                }
            }
            Err(SubmitRejected::ClaimRefused { outcome }) => match outcome {
                Outcome::ClaimStale => self.counters.claims_refused_stale += 1,
                _ => self.counters.claims_refused_other += 1,
            },
            Err(SubmitRejected::MempoolFull { .. }) => {}
            Err(error) => {
                return Err(format!(
                    "seat {via} refused a claim for a wrong reason: {error}"
                ))
            }
        }
        Ok(())
    }

    /// Now and then a miner sends a mint through a random honest seat, as
    /// that seat's finalized chain shows the tip and target: mostly a
    /// valid one (sometimes to a second seat too: a duplicate), else one
    /// on an old tip or without enough work. Most go through the seat's
    /// pre-check; some are carried unchecked, so apply meets every
    /// outcome 12-16 (the model says which).
    fn submit_mints(&mut self) -> Result<(), String> {
        if !self.rng_clients.chance(MINT_PER_MILLE) {
            return Ok(());
        }
        let honest: Vec<usize> = (0..self.config.k)
            .filter(|s| self.is_honest(*s) && self.nodes[*s].machine.is_some())
            .collect();
        if honest.is_empty() {
            return Ok(());
        }
        let via = honest[self.rng_clients.index(honest.len())];
        let chain = self.nodes[via].machine.as_ref().expect("up").state().mint();
        let (tip, target) = (chain.tip(), chain.target());
        if !self.old_tips.contains(&tip) {
            self.old_tips.push(tip);
        }
        let network = self.genesis.network();
        let t_max = self.genesis.params.mint_target_max;
        let kind = self.rng_clients.below(100);
        let prev = if (60..75).contains(&kind) && self.old_tips.len() > 1 {
            self.old_tips[self.rng_clients.index(self.old_tips.len() - 1)]
        } else {
            tip
        };
        // Work below the target, or (kind 75..90) between it and T_max.
        let (low, high) = if (75..90).contains(&kind) {
            (target, t_max)
        } else {
            (0, target)
        };
        let miner = crypto::client_public(self.rng_clients.index(crypto::CLIENTS));
        let start = self.rng_clients.next_u64();
        let Some(nonce) = (0..MINT_TRIES)
            .map(|i| start.wrapping_add(i))
            .find(|nonce| {
                let pow = pc_codec::mint::pow_value(&pc_codec::mint::pow_hash(
                    &network, &prev, &miner, *nonce,
                ));
                (low..high).contains(&pow)
            })
        else {
            return Ok(());
        };
        let event = MicroEvent::Mint(pc_codec::Mint {
            prev_mint_id: prev,
            miner,
            nonce,
        });
        let unchecked = self.rng_clients.chance(250);
        let mut targets = vec![via];
        if kind < 15 {
            targets.push(honest[self.rng_clients.index(honest.len())]);
        }
        for seat in targets {
            let machine = self.nodes[seat].machine.as_mut().expect("up");
            let taken = if unchecked {
                machine.carry_unchecked(event.clone())
            } else {
                machine.handle_micro_event(event.clone())
            };
            match taken {
                Ok(()) if unchecked => self.counters.mints_carried_unchecked += 1,
                Ok(()) => self.counters.mints_submitted += 1,
                Err(SubmitRejected::MintRefused { .. } | SubmitRejected::MintNotBest { .. }) => {
                    self.counters.mints_refused += 1
                }
                Err(SubmitRejected::MempoolFull { .. }) => {}
                Err(error) => {
                    return Err(format!(
                        "seat {seat} refused a mint for a wrong reason: {error}"
                    ))
                }
            }
        }
        Ok(())
    }

    // ----- drivers --------------------------------------------------------

    fn drive_nodes(&mut self) -> Result<(), String> {
        for id in 0..self.nodes.len() {
            let Some(machine) = self.nodes[id].machine.as_mut() else {
                continue;
            };
            machine.handle_tick(self.now);
            let output = self.nodes[id].drive(self.now, &mut self.rng_disk, self.config.durability);
            self.track_inserted(id, &output.inserted);
            if self.is_honest(id) {
                for report in &output.reports {
                    self.on_report(id, report)?;
                }
                if !output.reports.is_empty() {
                    self.check_node_state(id)?;
                }
            }
            for transmit in output.transmits {
                self.route(id, transmit)?;
            }
        }
        Ok(())
    }

    fn track_inserted(&mut self, id: NodeId, inserted: &[(Hash32, u8)]) {
        let node = &self.nodes[id];
        let machine = node.machine.as_ref().expect("driven nodes run");
        for (anchor, creator) in inserted {
            // A machine logs each own anchor once, when it makes it (a
            // Byzantine machine may also pull a fork of its own, counted
            // when the fork was made).
            let round = machine.consensus().round(anchor).unwrap_or(0);
            if node.seat == Some(*creator) && !self.fork_ids.contains(anchor) {
                self.anchors_created += 1;
                *self.created_by_round.entry(round).or_default() += 1;
            }
            self.highest_round[id] = self.highest_round[id].max(round);
        }
    }

    /// Checks one finalized report of honest node `id` against the
    /// canonical sequence and the model.
    fn on_report(&mut self, id: NodeId, report: &FinalizedReport) -> Result<(), String> {
        let node = &self.nodes[id];
        let new_round_events = self
            .checker
            .observe(id, node.next_round, report, |anchor| {
                node.logged_anchor(anchor)
            })?;
        let node = &mut self.nodes[id];
        node.next_round += 1;
        node.last_progress_step = self.now;
        let Some(events) = new_round_events else {
            return Ok(());
        };
        let lag = self.highest_round[id].saturating_sub(report.round.round);
        self.counters.max_decision_lag_rounds = self.counters.max_decision_lag_rounds.max(lag);
        if lag >= self.config.coin_round_period {
            self.counters.rounds_decided_late += 1;
        }
        self.on_new_round(report, &events)
    }

    /// A round finalized for the first time.
    fn on_new_round(
        &mut self,
        report: &FinalizedReport,
        events: &[FinalizedEvent],
    ) -> Result<(), String> {
        self.counters.anchors_finalized += report.round.anchors.len() as u64;
        self.counters.events_finalized += events.len() as u64;
        for event in events {
            match (&event.event, event.outcome) {
                (MicroEvent::Evidence(evidence), Outcome::EvidenceRecorded) => {
                    let seat = evidence.first.header.creator;
                    if self.is_honest(usize::from(seat)) {
                        return Err(format!(
                            "round {}: honest seat {seat} slashed for equivocating at seq {}",
                            report.round.round, evidence.first.header.seq
                        ));
                    }
                    self.counters.evidence_finalized += 1;
                }
                (MicroEvent::Claim(_), Outcome::Applied) => self.counters.claims_applied += 1,
                (MicroEvent::Claim(_), Outcome::ClaimStale) => self.counters.claims_stale += 1,
                (MicroEvent::Claim(_), Outcome::ClaimRootUnknown) => {
                    self.counters.claims_expired += 1
                }
                (MicroEvent::Offence(offence), Outcome::EvidenceRecorded) => match offence.kind() {
                    0 => self.counters.offence_invalid_anchor += 1,
                    1 => self.counters.offence_invalid_parent += 1,
                    3 => self.counters.offence_conflicting_ref += 1,
                    4 => self.counters.offence_unsatisfiable += 1,
                    kind => self.counters.offence_checkpoint += u64::from(kind > 0),
                },
                (_, Outcome::EvidenceDuplicate) => self.counters.evidence_duplicate += 1,
                (MicroEvent::Mint(_), outcome) => match outcome {
                    Outcome::MintCandidate => self.counters.mint_candidates += 1,
                    Outcome::MintStale => self.counters.mint_stale += 1,
                    Outcome::MintInsufficientWork => self.counters.mint_insufficient_work += 1,
                    Outcome::MintExhausted => self.counters.mint_exhausted += 1,
                    Outcome::MintDuplicate => self.counters.mint_duplicates += 1,
                    other => return Err(format!("a mint finalized as {other:?}")),
                },
                _ => {}
            }
        }
        for applied in &report.outcome.slashes {
            if self.is_honest(usize::from(applied.seat)) {
                return Err(format!(
                    "round {}: honest seat {} slashed: {:?}",
                    report.round.round, applied.seat, applied.slash
                ));
            }
            match applied.slash.class {
                OffenceClass::Equivocation => self.counters.slashes_equivocation += 1,
                OffenceClass::VoteForInvalid => self.counters.slashes_vote_for_invalid += 1,
                OffenceClass::ConflictingData => self.counters.slashes_conflicting_data += 1,
            }
            if applied.slash.tier > 1 {
                self.counters.slashes_repeat_tier += 1;
            }
        }
        if let Some(win) = &report.outcome.mint_win {
            self.clients.on_mint_won(win);
        }
        self.clients.on_finalized(events, self.checker.model())
    }

    /// After new rounds: the node's state conserves supply and its root is
    /// the canonical one.
    fn check_node_state(&self, id: NodeId) -> Result<(), String> {
        let node = &self.nodes[id];
        let state = node.machine.as_ref().expect("running").state();
        if state.accounted_value() != state.supply() {
            return Err(format!(
                "node {id}: supply {} after round {}, genesis supply {} and {} minted",
                state.accounted_value(),
                node.next_round - 1,
                state.genesis_supply(),
                state.minted()
            ));
        }
        if state.minted() > u128::from(state.mint().schedule().emission) {
            return Err(format!(
                "node {id}: {} minted, over CAP - genesis",
                state.minted()
            ));
        }
        let round = node.next_round - 1;
        let (owed, bonded) = self
            .checker
            .economics_after(round)
            .expect("reported rounds are canonical");
        if (state.owed(), state.bonded()) != (u128::from(owed), u128::from(bonded)) {
            return Err(format!(
                "node {id}: owed {} and bonded {} after round {round}; the model says {owed} and {bonded}",
                state.owed(),
                state.bonded()
            ));
        }
        let canonical = self
            .checker
            .round(node.next_round - 1)
            .expect("reported rounds are canonical");
        if state.state_root() != canonical.outcome.state_root {
            return Err(format!(
                "node {id}: state root {} after round {}, canonical {}",
                short(&state.state_root()),
                node.next_round - 1,
                short(&canonical.outcome.state_root)
            ));
        }
        Ok(())
    }

    // ----- per-step checks ------------------------------------------------

    /// Memory: every bounded queue within its bound; the DAG within the
    /// anchors made so far and, once the node prunes, within the rounds
    /// it must still hold.
    fn check_bounds(&mut self) -> Result<(), String> {
        let limits = self.config.limits;
        for id in 0..self.nodes.len() {
            let Some(machine) = self.nodes[id].machine.as_ref() else {
                continue;
            };
            if !self.is_honest(id) {
                continue;
            }
            let (pending, mempool, dag) = (
                machine.pending_anchors(),
                machine.mempool_len(),
                machine.consensus().len(),
            );
            if pending > limits.max_pending_anchors {
                return Err(format!(
                    "node {id}: {pending} pending anchors, bound {}",
                    limits.max_pending_anchors
                ));
            }
            if mempool > limits.max_mempool_events {
                return Err(format!(
                    "node {id}: {mempool} mempool events, bound {}",
                    limits.max_mempool_events
                ));
            }
            if dag as u64 > self.anchors_created {
                return Err(format!(
                    "node {id}: {dag} DAG vertices, but only {} valid anchors were made",
                    self.anchors_created
                ));
            }
            // Pruning: a node holds the anchors of rounds >= floor - 2G at
            // most (rounds below the floor are dropped; the window of what
            // was inserted reaches G below, and as much again for anchors
            // kept behind the arena's front), plus forks and forgeries of
            // at most f Byzantine seats, counted generously as k per round.
            let consensus = machine.consensus();
            let lowest = consensus.floor().saturating_sub(2 * consensus.window());
            let honest_made: u64 = self.created_by_round.range(lowest..).map(|(_, n)| n).sum();
            let rounds_held = self.highest_round[id].saturating_sub(lowest) + 1;
            let bound = honest_made + rounds_held * self.config.k as u64;
            if consensus.floor() > 0 && dag as u64 > bound {
                return Err(format!(
                    "node {id}: {dag} DAG vertices above the pruning bound {bound} \
                     (floor {}, rounds from {lowest})",
                    consensus.floor()
                ));
            }
            if consensus.floor() > 0 {
                self.counters.seeds_pruned = 1;
            }
            let counters = &mut self.counters;
            counters.max_pending_anchors = counters.max_pending_anchors.max(pending as u64);
            counters.max_mempool_events = counters.max_mempool_events.max(mempool as u64);
            counters.max_dag_vertices = counters.max_dag_vertices.max(dag as u64);
        }
        Ok(())
    }

    /// Liveness: while the network is whole, at least q honest seats run and
    /// clients submit, every running honest seat finalizes a round within
    /// the seed's `progress_window_steps`. (The observer holds no seat and
    /// may lag: it is held to catching up by the end of the drain.)
    fn check_progress(&mut self) -> Result<(), String> {
        let healthy = !self.network.is_partitioned()
            && self.honest_seats_up() >= self.q
            && self.now < self.config.phases.clients_stop_step();
        if !healthy {
            self.healthy_since = self.now + 1;
            return Ok(());
        }
        for node in &self.nodes {
            if !node.is_up() || !self.is_honest(node.id) || node.seat.is_none() {
                continue;
            }
            let since = self.healthy_since.max(node.last_progress_step);
            let gap = self.now - since;
            self.counters.max_progress_gap_steps = self.counters.max_progress_gap_steps.max(gap);
            if gap > self.config.phases.progress_window_steps {
                return Err(format!(
                    "node {} finalized no round for {gap} steps (healthy since step {}, last round {} at step {})",
                    node.id,
                    self.healthy_since,
                    node.next_round as i64 - 1,
                    node.last_progress_step
                ));
            }
        }
        Ok(())
    }

    /// One line per node: role, rounds, DAG, pending, mempool, log.
    fn trace(&self) {
        println!(
            "step {} canonical rounds {} partitioned {} healthy since {}",
            self.now,
            self.checker.rounds(),
            self.network.is_partitioned(),
            self.healthy_since
        );
        for node in &self.nodes {
            let role = match (node.seat, self.modes[node.id]) {
                (None, _) => "observer".to_string(),
                (Some(seat), None) => format!("seat {seat}"),
                (Some(seat), Some(mode)) => format!("seat {seat} {mode:?}"),
            };
            match &node.machine {
                None => println!("  {role}: down"),
                Some(machine) => println!(
                    "  {role}: rounds {} undecided {} dag {} highest round {} pending {} {:?} mempool {} log {} timeout {:?}",
                    node.next_round,
                    machine.consensus().next_undecided_round(),
                    machine.consensus().len(),
                    self.highest_round[node.id],
                    machine.pending_anchors(),
                    machine.sync_stats(),
                    machine.mempool_len(),
                    node.log.len(),
                    machine.poll_timeout()
                ),
            }
            if let Some(machine) = &node.machine {
                for id in machine.outstanding_pulls().iter().take(4) {
                    let holders: Vec<NodeId> = self
                        .nodes
                        .iter()
                        .filter(|n| n.logged_anchor(id).is_some())
                        .map(|n| n.id)
                        .collect();
                    println!("    pull {} held by {holders:?}", short(id));
                }
            }
        }
    }

    // ----- final checks ---------------------------------------------------

    /// Whether the drain is over: every running honest node has every
    /// canonical round, and the final checks have nothing left to wait for.
    fn settled(&mut self) -> bool {
        if !self.now.is_multiple_of(SETTLE_CHECK_EVERY_STEPS) {
            return false;
        }
        let rounds = self.checker.rounds();
        self.honest_running().all(|n| n.next_round == rounds)
            && self.check_accepted_transfers_finalized().is_ok()
            && self.exposed_forks_without_evidence().is_none()
    }

    fn finish(&mut self) -> Result<(), String> {
        if let Some(vertices) = self.oracle_vertices {
            self.cross_check_with_oracle(self.config.k, vertices)?;
        }
        self.check_forks_ended_in_evidence()?;
        self.check_accepted_transfers_finalized()?;
        self.check_forged_never_inserted()?;
        self.check_all_caught_up()?;
        let coin = self
            .nodes
            .iter()
            .filter_map(|n| n.machine.as_ref())
            .map(|m| m.consensus().coin_stats())
            .max_by_key(|c| c.coin_round_votes)
            .unwrap_or_default();
        self.counters.coin_round_votes = coin.coin_round_votes;
        self.counters.coin_flips = coin.coin_flips;
        let rounds = self.checker.rounds();
        if rounds < self.config.phases.min_rounds {
            return Err(format!(
                "only {rounds} rounds finalized, at least {} expected for k = {}",
                self.config.phases.min_rounds, self.config.k
            ));
        }
        Ok(())
    }

    fn honest_running(&self) -> impl Iterator<Item = &Node<C>> {
        self.nodes
            .iter()
            .filter(|n| n.is_up() && self.modes[n.id].is_none())
    }

    /// Replays the first `limit` anchors `node` logged into the naive oracle
    /// (explicit ancestor sets, DESIGN §4 read literally) and compares the
    /// rounds it finalizes with the canonical ones, and every vertex's round
    /// and witness flag, and fame where both decided, with the node's fast
    /// consensus. Quadratic: for diagnosis, not every run.
    fn cross_check_with_oracle(&self, node: NodeId, limit: usize) -> Result<(), String> {
        let Some(machine) = self.nodes[node].machine.as_ref() else {
            return Ok(());
        };
        let consensus = machine.consensus();
        let mut oracle = Oracle::new(OracleConfig {
            k: self.config.k,
            coin_round_period: self.config.coin_round_period,
            window: 26,
        });
        let mut ids = Vec::new();
        for record in self.nodes[node]
            .log
            .iter()
            .filter(|r| r.kind == LogRecordKind::AnchorAccepted)
            .take(limit)
        {
            let signed = header_of(&record.body);
            let id = signed.anchor_id();
            oracle.insert(VertexSpec {
                id,
                creator: signed.header.creator,
                seq: signed.header.seq,
                parents: signed.header.parents.iter().map(|p| p.anchor_id).collect(),
                coin: signed.signature[32] & 1 == 1,
            });
            ids.push(id);
        }
        println!(
            "oracle: {} vertices of node {node}: oracle finalized {} rounds, node {} (of {} vertices)",
            ids.len(),
            oracle.finalized().len(),
            consensus.next_undecided_round(),
            consensus.len()
        );
        for (round, naive) in oracle.finalized().iter().enumerate() {
            let canonical = self.checker.round(round as u64).map(|r| &r.round);
            if canonical.is_some_and(|c| c != naive) {
                return Err(format!(
                    "round {round}: the oracle finalizes another round than the machines"
                ));
            }
        }
        for id in &ids {
            let fast = (
                consensus.round(id),
                consensus.is_witness(id),
                consensus.fame(id),
            );
            let naive = (oracle.round(id), oracle.is_witness(id), oracle.fame(id));
            let fame_differs = fast.2.is_some() && naive.2.is_some() && fast.2 != naive.2;
            if fast.0 != naive.0 || fast.1 != naive.1 || fame_differs {
                return Err(format!(
                    "vertex {}: fast (round, witness, fame) {fast:?}, oracle {naive:?}",
                    short(id)
                ));
            }
        }
        Ok(())
    }

    /// Whether each anchor of `fork` reached (is in the DAG of) a running
    /// honest seat. The observer does not count: it holds no seat, so it
    /// cannot put evidence in an anchor.
    fn exposed(&self, fork: &Fork) -> bool {
        fork.ids.iter().all(|id| {
            self.honest_running()
                .filter(|node| node.seat.is_some())
                .any(|node| {
                    node.machine
                        .as_ref()
                        .expect("running")
                        .consensus()
                        .contains(id)
                })
        })
    }

    /// A fork whose two anchors reached honest seats but whose seat has no
    /// finalized evidence.
    fn exposed_forks_without_evidence(&self) -> Option<&Fork> {
        let slashed = self.checker.model().slashed();
        self.forks
            .iter()
            .find(|fork| slashed & (1 << fork.seat) == 0 && self.exposed(fork))
    }

    /// Every fork whose two anchors reached honest seats was finalized as
    /// evidence against its seat (no honest seat is ever slashed: checked
    /// at every round).
    fn check_forks_ended_in_evidence(&mut self) -> Result<(), String> {
        if let Some(fork) = self.exposed_forks_without_evidence() {
            return Err(format!(
                "seat {} forked at seq {} ({} / {}), both anchors reached honest seats, but no evidence was finalized",
                fork.seat,
                fork.seq,
                short(&fork.ids[0]),
                short(&fork.ids[1])
            ));
        }
        self.counters.forks_exposed = self.forks.iter().filter(|f| self.exposed(f)).count() as u64;
        Ok(())
    }

    /// Every transfer an honest seat took in (and did not lose in a crash)
    /// was finalized.
    fn check_accepted_transfers_finalized(&self) -> Result<(), String> {
        let missing = self
            .clients
            .unfinalized(|seat| self.nodes[usize::from(seat)].incarnation);
        if let Some((id, seat)) = missing.first() {
            return Err(format!(
                "{} transfers accepted by honest seats were never finalized, e.g. {} at seat {seat}",
                missing.len(),
                short(id)
            ));
        }
        Ok(())
    }

    fn check_forged_never_inserted(&self) -> Result<(), String> {
        for node in self.honest_running() {
            let consensus = node.machine.as_ref().expect("running").consensus();
            if let Some(id) = self.never_insert.iter().find(|id| consensus.contains(id)) {
                return Err(format!(
                    "node {} inserted forged anchor {} whose parents do not exist or do not match",
                    node.id,
                    short(id)
                ));
            }
        }
        Ok(())
    }

    /// After the drain every running honest node has finalized every round.
    fn check_all_caught_up(&self) -> Result<(), String> {
        let rounds = self.checker.rounds();
        for node in self.honest_running() {
            if node.next_round != rounds {
                return Err(format!(
                    "node {} finalized {} rounds after the drain, canonical {rounds}",
                    node.id, node.next_round
                ));
            }
        }
        Ok(())
    }
}

/// Short id of encoded anchor bytes, for messages (garbage shows as such).
fn anchor_label(bytes: &[u8]) -> String {
    SignedAnchor::from_bytes(bytes)
        .map_or_else(|_| "<undecodable>".into(), |a| short(&a.anchor_id()))
}
