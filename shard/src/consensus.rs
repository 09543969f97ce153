//! The fast consensus of DESIGN §4: rounds, witnesses, fame by virtual voting
//! with coin rounds, unique famous witnesses, round received and the total
//! order, over a DAG held as a dense arena.
//!
//! "Sees" and "strongly sees" are answered from per-vertex summaries: the
//! last ancestor of every seat and a mask of the seats with a fork in the
//! vertex's ancestry. For a seat with no fork anywhere in the local DAG an
//! ancestry question is one sequence-number comparison; seats with a known
//! fork take a slow path (a walk down the self-parent chain, or a bounded
//! search when the fork is in the asker's own ancestry). Every answer depends
//! only on the ancestry of the vertices involved, never on arrival order, so
//! all honest nodes and every replay compute the same rounds and order.

use std::collections::{BTreeMap, HashMap, HashSet};

use pc_codec::ids::whiten;
use pc_codec::Hash32;

use crate::vertex::{FinalizedAnchor, FinalizedRound, VertexSpec};

/// Dense index of a vertex in the arena.
type Idx = u32;
/// No vertex.
const NONE: Idx = Idx::MAX;

/// Parameters of one shard's consensus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsensusConfig {
    /// Committee seats, `1..=64`.
    pub k: usize,
    /// Coin-round period `C` of the fame vote.
    pub coin_round_period: u64,
}

impl ConsensusConfig {
    /// The supermajority `q = k - floor((k - 1) / 3)`.
    pub fn q(&self) -> usize {
        let q = self.k - (self.k - 1) / 3;
        // The mutation self-test of DESIGN §10: a planted off-by-one in the
        // supermajority must make the default test run fail.
        if cfg!(feature = "planted-bug-threshold") {
            q - 1
        } else {
            q
        }
    }
}

/// Why a vertex was not inserted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// The id is already in the DAG.
    #[error("vertex already inserted")]
    Duplicate,
    /// The creator is not a seat.
    #[error("creator {creator} is not below k = {k}")]
    CreatorOutOfRange {
        /// The creator given.
        creator: u8,
        /// The committee size.
        k: usize,
    },
    /// A parent is not in the DAG.
    #[error("parent {index} is not in the DAG")]
    MissingParent {
        /// Position in the parent list.
        index: usize,
    },
    /// The anchor's claimed birth round is not the round it computes to.
    #[error("birth round {claimed} claimed, {computed} computed")]
    BirthRoundMismatch {
        /// The claim.
        claimed: u64,
        /// The computed round.
        computed: u64,
    },
    /// The self-parent rule of DESIGN §3.3 is broken.
    #[error("bad self-parent: seq {seq} needs {expected}")]
    BadSelfParent {
        /// The vertex's seq.
        seq: u64,
        /// What was expected.
        expected: &'static str,
    },
}

/// Where an inserted vertex landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Its round.
    pub round: u64,
    /// Whether it is a witness.
    pub witness: bool,
}

struct ComputedRound {
    round: u64,
    witness: bool,
    strongly_seen_previous: Vec<Idx>,
}

#[derive(Debug)]
struct Vertex {
    id: Hash32,
    creator: u8,
    seq: u64,
    coin: bool,
    self_parent: Idx,
    parents: Vec<Idx>,
    round: u64,
    witness: bool,
    /// Seats with two anchors at one seq among this vertex's ancestors.
    fork_mask: u64,
    /// Per seat, the ancestor (or self) with the highest seq, for seats not
    /// in `fork_mask`; `NONE` for a seat with no ancestor or a fork.
    last_ancestor: Box<[Idx]>,
    /// For a witness of round r > 0: the round-(r-1) witnesses it strongly sees.
    strongly_seen_previous: Vec<Idx>,
    fame: Option<bool>,
    received: bool,
}

/// The consensus state of one shard.
#[derive(Debug)]
pub struct Consensus {
    config: ConsensusConfig,
    vertices: Vec<Vertex>,
    by_id: HashMap<Hash32, Idx>,
    /// Per seat: seq -> the vertices of that seat at that seq.
    by_seat: Vec<BTreeMap<u64, Vec<Idx>>>,
    /// Seats with a known fork anywhere in the local DAG.
    forked_seats: u64,
    /// Witnesses per round, in insertion order.
    witnesses: BTreeMap<u64, Vec<Idx>>,
    /// Memoized fame votes: (voter, candidate) -> vote.
    votes: HashMap<(Idx, Idx), bool>,
    /// The lowest round not yet decided.
    next_undecided_round: u64,
    /// Vertices not yet received by a decided round, in insertion order.
    unreceived: Vec<Idx>,
    next_global_index: u64,
    finalized: std::collections::VecDeque<FinalizedRound>,
    coin_stats: CoinStats,
}

/// Counters of the fame vote's coin rounds (for the simulator's coverage).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoinStats {
    /// Votes recorded in coin rounds (`d mod C == 0`).
    pub coin_round_votes: u64,
    /// Of those, the votes that took the coin bit.
    pub coin_flips: u64,
}

impl Consensus {
    /// An empty DAG.
    ///
    /// # Panics
    /// If `k` is outside `1..=64` or the coin period is zero.
    pub fn new(config: ConsensusConfig) -> Self {
        assert!((1..=64).contains(&config.k), "k must be in 1..=64");
        assert!(config.coin_round_period > 0, "coin period must be positive");
        Consensus {
            config,
            vertices: Vec::new(),
            by_id: HashMap::new(),
            by_seat: vec![BTreeMap::new(); config.k],
            forked_seats: 0,
            witnesses: BTreeMap::new(),
            votes: HashMap::new(),
            next_undecided_round: 0,
            unreceived: Vec::new(),
            next_global_index: 0,
            finalized: std::collections::VecDeque::new(),
            coin_stats: CoinStats::default(),
        }
    }

    /// Inserts a vertex whose parents are all present, computes its round,
    /// and decides every round that became decidable.
    pub fn insert(&mut self, spec: VertexSpec) -> Result<Placement, InsertError> {
        self.insert_checked(spec, None)
    }

    /// Inserts a vertex like [`Consensus::insert`], but only if its round is
    /// `claimed_round` (an anchor's `birth_round`); otherwise nothing changes.
    pub fn insert_with_birth_round(
        &mut self,
        spec: VertexSpec,
        claimed_round: u64,
    ) -> Result<Placement, InsertError> {
        self.insert_checked(spec, Some(claimed_round))
    }

    fn insert_checked(
        &mut self,
        spec: VertexSpec,
        claimed_round: Option<u64>,
    ) -> Result<Placement, InsertError> {
        let (idx, forked_before, computed) = self.push_and_compute(&spec)?;
        if let Some(claimed) = claimed_round.filter(|claimed| *claimed != computed.round) {
            self.vertices.pop();
            self.forked_seats = forked_before;
            return Err(InsertError::BirthRoundMismatch {
                claimed,
                computed: computed.round,
            });
        }
        self.by_id.insert(spec.id, idx);
        self.by_seat[usize::from(spec.creator)]
            .entry(spec.seq)
            .or_default()
            .push(idx);
        let placement = self.place(idx, computed);
        self.unreceived.push(idx);
        self.decide_rounds();
        Ok(placement)
    }

    /// The round a vertex would get if inserted now; changes nothing. A
    /// seat uses it to fill in the birth round of its own next anchor.
    pub fn probe_round(&mut self, spec: &VertexSpec) -> Result<u64, InsertError> {
        let (_, forked_before, computed) = self.push_and_compute(spec)?;
        self.vertices.pop();
        self.forked_seats = forked_before;
        Ok(computed.round)
    }

    /// Checks a vertex, pushes it on the arena (not yet findable by id) and
    /// computes its round. Returns the fork flags to restore on rollback.
    fn push_and_compute(
        &mut self,
        spec: &VertexSpec,
    ) -> Result<(Idx, u64, ComputedRound), InsertError> {
        if self.by_id.contains_key(&spec.id) {
            return Err(InsertError::Duplicate);
        }
        if usize::from(spec.creator) >= self.config.k {
            return Err(InsertError::CreatorOutOfRange {
                creator: spec.creator,
                k: self.config.k,
            });
        }
        let parents = spec
            .parents
            .iter()
            .enumerate()
            .map(|(index, id)| {
                self.by_id
                    .get(id)
                    .copied()
                    .ok_or(InsertError::MissingParent { index })
            })
            .collect::<Result<Vec<Idx>, _>>()?;
        let self_parent = self.check_self_parent(spec, &parents)?;
        let idx = self.vertices.len() as Idx;
        let (fork_mask, last_ancestor) = self.summarize_ancestry(idx, spec, self_parent, &parents);
        self.vertices.push(Vertex {
            id: spec.id,
            creator: spec.creator,
            seq: spec.seq,
            coin: spec.coin,
            self_parent,
            parents,
            round: 0,
            witness: false,
            fork_mask,
            last_ancestor,
            strongly_seen_previous: Vec::new(),
            fame: None,
            received: false,
        });
        let forked_before = self.forked_seats;
        if self.by_seat[usize::from(spec.creator)].contains_key(&spec.seq) {
            self.forked_seats |= 1 << spec.creator;
        }
        Ok((idx, forked_before, self.compute_round(idx)))
    }

    fn check_self_parent(&self, spec: &VertexSpec, parents: &[Idx]) -> Result<Idx, InsertError> {
        let own: Vec<Idx> = parents
            .iter()
            .copied()
            .filter(|p| self.vertices[*p as usize].creator == spec.creator)
            .collect();
        match (spec.seq, own.as_slice()) {
            (0, []) => Ok(NONE),
            (0, _) => Err(InsertError::BadSelfParent {
                seq: 0,
                expected: "no parent by its own creator",
            }),
            (seq, [single])
                if parents[0] == *single && self.vertices[*single as usize].seq + 1 == seq =>
            {
                Ok(*single)
            }
            (seq, _) => Err(InsertError::BadSelfParent {
                seq,
                expected: "exactly one own parent, first, at seq - 1",
            }),
        }
    }

    /// The fork mask and last-ancestor table of a new vertex.
    fn summarize_ancestry(
        &self,
        idx: Idx,
        spec: &VertexSpec,
        self_parent: Idx,
        parents: &[Idx],
    ) -> (u64, Box<[Idx]>) {
        let mut fork_mask = parents
            .iter()
            .fold(0, |mask, p| mask | self.vertices[*p as usize].fork_mask);
        let mut last_ancestor = vec![NONE; self.config.k].into_boxed_slice();
        for seat in 0..self.config.k {
            if fork_mask & (1 << seat) != 0 {
                continue;
            }
            let mut tops: Vec<Idx> = parents
                .iter()
                .map(|p| self.vertices[*p as usize].last_ancestor[seat])
                .filter(|t| *t != NONE)
                .collect();
            tops.sort_unstable();
            tops.dedup();
            if seat == usize::from(spec.creator) {
                // The new vertex tops its own chain; every other own-seat
                // ancestor must lie below it on that chain.
                let consistent = tops
                    .iter()
                    .all(|t| self_parent != NONE && self.on_chain(*t, self_parent));
                if consistent {
                    last_ancestor[seat] = idx;
                } else {
                    fork_mask |= 1 << seat;
                }
                continue;
            }
            let Some(&highest) = tops.iter().max_by_key(|t| self.vertices[**t as usize].seq) else {
                continue;
            };
            if tops.iter().all(|t| self.on_chain(*t, highest)) {
                last_ancestor[seat] = highest;
            } else {
                fork_mask |= 1 << seat;
            }
        }
        (fork_mask, last_ancestor)
    }

    /// Whether `lower` is `top` or on `top`'s self-parent chain (both by one seat).
    fn on_chain(&self, lower: Idx, top: Idx) -> bool {
        let (lower_vertex, mut at) = (&self.vertices[lower as usize], top);
        if self.forked_seats & (1 << lower_vertex.creator) == 0 {
            return self.vertices[top as usize].seq >= lower_vertex.seq;
        }
        while at != NONE && self.vertices[at as usize].seq > lower_vertex.seq {
            at = self.vertices[at as usize].self_parent;
        }
        at == lower
    }

    /// `y <= x`: y is x or an ancestor of x.
    fn is_ancestor(&self, y: Idx, x: Idx) -> bool {
        if y == x {
            return true;
        }
        let (yv, xv) = (&self.vertices[y as usize], &self.vertices[x as usize]);
        if xv.fork_mask & (1 << yv.creator) == 0 {
            let top = xv.last_ancestor[usize::from(yv.creator)];
            return top != NONE && self.on_chain(y, top);
        }
        self.search_ancestor(y, x)
    }

    /// Bounded search for `y` among the ancestors of `x`: paths from x down
    /// to y only pass vertices of round >= round(y).
    fn search_ancestor(&self, y: Idx, x: Idx) -> bool {
        let floor = self.vertices[y as usize].round;
        let mut stack = vec![x];
        let mut visited = HashSet::new();
        while let Some(at) = stack.pop() {
            if at == y {
                return true;
            }
            for &parent in &self.vertices[at as usize].parents {
                if self.vertices[parent as usize].round >= floor
                    && parent >= y
                    && visited.insert(parent)
                {
                    stack.push(parent);
                }
            }
        }
        false
    }

    /// x sees y: y <= x and no fork by y's creator among x's ancestors.
    fn sees(&self, x: Idx, y: Idx) -> bool {
        let creator = self.vertices[y as usize].creator;
        // The mutation self-test of DESIGN §10: without the fork check the
        // default test run must fail.
        let fork_free = cfg!(feature = "planted-bug-no-fork-check")
            || self.vertices[x as usize].fork_mask & (1 << creator) == 0;
        fork_free && self.is_ancestor(y, x)
    }

    /// x strongly sees y: x sees y and anchors of at least q seats, each seen
    /// by x and each seeing y, lie between them.
    fn strongly_sees(&self, x: Idx, y: Idx) -> bool {
        if !self.sees(x, y) {
            return false;
        }
        let xv = &self.vertices[x as usize];
        let seats = xv
            .last_ancestor
            .iter()
            .filter(|top| **top != NONE && self.is_ancestor(y, **top))
            .count();
        seats >= self.config.q()
    }

    /// Round, witness status and strongly seen previous-round witnesses of
    /// a freshly pushed vertex; changes nothing.
    fn compute_round(&self, idx: Idx) -> ComputedRound {
        let vertex = &self.vertices[idx as usize];
        let parent_round = vertex
            .parents
            .iter()
            .map(|p| self.vertices[*p as usize].round)
            .max();
        let base = parent_round.unwrap_or(0);
        let seen_at_base = match parent_round {
            Some(_) => self.strongly_seen_witnesses(idx, base),
            None => Vec::new(),
        };
        let round = if self.seat_count(&seen_at_base) >= self.config.q() {
            base + 1
        } else {
            base
        };
        let self_parent = vertex.self_parent;
        let witness = self_parent == NONE || round > self.vertices[self_parent as usize].round;
        let strongly_seen_previous = match (witness, round) {
            (false, _) | (true, 0) => Vec::new(),
            (true, r) if r == base + 1 => seen_at_base,
            (true, r) => self.strongly_seen_witnesses(idx, r - 1),
        };
        ComputedRound {
            round,
            witness,
            strongly_seen_previous,
        }
    }

    /// Records a computed round; a witness of an already decided round is
    /// late and not famous.
    fn place(&mut self, idx: Idx, computed: ComputedRound) -> Placement {
        let late = computed.round < self.next_undecided_round;
        let vertex = &mut self.vertices[idx as usize];
        vertex.round = computed.round;
        vertex.witness = computed.witness;
        vertex.strongly_seen_previous = computed.strongly_seen_previous;
        if computed.witness {
            if late {
                vertex.fame = Some(false);
            }
            self.witnesses.entry(computed.round).or_default().push(idx);
        }
        Placement {
            round: computed.round,
            witness: computed.witness,
        }
    }

    fn strongly_seen_witnesses(&self, x: Idx, round: u64) -> Vec<Idx> {
        self.witnesses
            .get(&round)
            .map(|ws| {
                ws.iter()
                    .copied()
                    .filter(|w| self.strongly_sees(x, *w))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn seat_count(&self, vertices: &[Idx]) -> usize {
        vertices
            .iter()
            .fold(0u64, |mask, v| {
                mask | 1 << self.vertices[*v as usize].creator
            })
            .count_ones() as usize
    }

    /// Decides fame round by round, finalizing each round once all its
    /// witnesses are decided.
    fn decide_rounds(&mut self) {
        while let Some(round_witnesses) = self.witnesses.get(&self.next_undecided_round).cloned() {
            let round = self.next_undecided_round;
            let mut all_decided = true;
            for candidate in round_witnesses {
                if self.vertices[candidate as usize].fame.is_none() {
                    self.vertices[candidate as usize].fame = self.decide_fame(candidate, round);
                }
                all_decided &= self.vertices[candidate as usize].fame.is_some();
            }
            if !all_decided {
                return;
            }
            self.finalize_round(round);
            self.next_undecided_round += 1;
        }
    }

    /// Runs the virtual election of `candidate` over all later witnesses.
    fn decide_fame(&mut self, candidate: Idx, round: u64) -> Option<bool> {
        let voter_rounds: Vec<u64> = self.witnesses.range(round + 1..).map(|(r, _)| *r).collect();
        for voter_round in voter_rounds {
            let distance = voter_round - round;
            for voter in self.witnesses[&voter_round].clone() {
                if let Some(decision) = self.vote(voter, candidate, distance) {
                    return Some(decision);
                }
            }
        }
        None
    }

    /// Records `voter`'s vote on `candidate`; returns the decision if the
    /// vote decides fame.
    fn vote(&mut self, voter: Idx, candidate: Idx, distance: u64) -> Option<bool> {
        if distance == 1 {
            if !self.votes.contains_key(&(voter, candidate)) {
                let vote = self.sees(voter, candidate);
                self.votes.insert((voter, candidate), vote);
            }
            return None;
        }
        let mut yes = 0usize;
        let mut no = 0usize;
        for &elector in &self.vertices[voter as usize].strongly_seen_previous {
            match self.votes.get(&(elector, candidate)) {
                Some(true) => yes += 1,
                Some(false) => no += 1,
                None => unreachable!("electors vote before the voters of the next round"),
            }
        }
        let majority = yes >= no;
        let agreeing = if majority { yes } else { no };
        let supermajority = agreeing >= self.config.q();
        if distance % self.config.coin_round_period != 0 {
            self.votes.insert((voter, candidate), majority);
            return supermajority.then_some(majority);
        }
        let vote = if supermajority {
            majority
        } else {
            self.vertices[voter as usize].coin
        };
        if self.votes.insert((voter, candidate), vote).is_none() {
            self.coin_stats.coin_round_votes += 1;
            self.coin_stats.coin_flips += u64::from(!supermajority);
        }
        None
    }

    /// Votes cast in coin rounds so far, and how many of them were coin
    /// flips (no supermajority among the electors).
    pub fn coin_stats(&self) -> CoinStats {
        self.coin_stats
    }

    /// Computes the unique famous witnesses of a decided round, the anchors
    /// it receives and their total order.
    fn finalize_round(&mut self, round: u64) {
        let famous: Vec<Idx> = self.witnesses[&round]
            .iter()
            .copied()
            .filter(|w| self.vertices[*w as usize].fame == Some(true))
            .collect();
        let mut per_seat = [0u8; 64];
        for w in &famous {
            per_seat[usize::from(self.vertices[*w as usize].creator)] += 1;
        }
        let mut unique: Vec<Idx> = famous
            .into_iter()
            .filter(|w| per_seat[usize::from(self.vertices[*w as usize].creator)] == 1)
            .collect();
        assert!(
            !unique.is_empty(),
            "decided round {round} has no unique famous witness"
        );
        unique.sort_unstable_by_key(|w| self.vertices[*w as usize].id);
        let whitening_key = unique.iter().fold([0u8; 32], |mut acc, w| {
            for (a, b) in acc.iter_mut().zip(self.vertices[*w as usize].id) {
                *a ^= b;
            }
            acc
        });

        let (received, still_unreceived): (Vec<Idx>, Vec<Idx>) =
            std::mem::take(&mut self.unreceived)
                .into_iter()
                .partition(|x| unique.iter().all(|u| self.is_ancestor(*x, *u)));
        self.unreceived = still_unreceived;
        let mut layer: HashMap<Idx, u32> = HashMap::with_capacity(received.len());
        // `received` is in insertion order, which is topological.
        for &x in &received {
            let own_layer = self.vertices[x as usize]
                .parents
                .iter()
                .filter_map(|p| layer.get(p).map(|l| l + 1))
                .max()
                .unwrap_or(0);
            layer.insert(x, own_layer);
            self.vertices[x as usize].received = true;
        }
        let mut keyed: Vec<(u32, Hash32, Hash32)> = received
            .iter()
            .map(|x| {
                let id = self.vertices[*x as usize].id;
                (layer[x], whiten(&id, &whitening_key), id)
            })
            .collect();
        keyed.sort_unstable();
        let anchors = keyed
            .into_iter()
            .map(|(_, _, id)| {
                let global_index = self.next_global_index;
                self.next_global_index += 1;
                let ack_distances = self.ack_distances(self.by_id[&id], &unique);
                FinalizedAnchor {
                    id,
                    global_index,
                    ack_distances,
                }
            })
            .collect();
        self.finalized.push_back(FinalizedRound {
            round,
            unique_famous_witnesses: unique
                .iter()
                .map(|u| self.vertices[*u as usize].id)
                .collect(),
            anchors,
        });
    }

    /// Ack distance of every seat for `x`, from the ancestry of the unique
    /// famous witnesses `unique` of its round received (DESIGN §4).
    fn ack_distances(&self, x: Idx, unique: &[Idx]) -> Vec<Option<u64>> {
        (0..self.config.k)
            .map(|seat| {
                let first = if self.forked_seats & (1 << seat) == 0 {
                    self.first_acknowledging_on_chain(x, seat, unique)
                } else {
                    self.first_acknowledging_by_search(x, seat, unique)
                };
                first.map(|z| self.vertices[z as usize].round - self.vertices[x as usize].round + 1)
            })
            .collect()
    }

    /// For a seat without forks: its anchors below the UFWs form one chain on
    /// which "x is an ancestor" is monotone, so the first anchor that has x
    /// as an ancestor is found by binary search. It sees x unless a fork of
    /// x's creator is in its ancestry, and then no later anchor sees x either.
    fn first_acknowledging_on_chain(&self, x: Idx, seat: usize, unique: &[Idx]) -> Option<Idx> {
        let at_seq = |seq: u64| self.by_seat[seat][&seq][0];
        let top = unique
            .iter()
            .map(|u| self.vertices[*u as usize].last_ancestor[seat])
            .filter(|t| *t != NONE)
            .max_by_key(|t| self.vertices[*t as usize].seq)?;
        let (mut low, mut high) = (
            *self.by_seat[seat].keys().next()?,
            self.vertices[top as usize].seq,
        );
        if !self.is_ancestor(x, at_seq(high)) {
            return None;
        }
        while low < high {
            let middle = low + (high - low) / 2;
            if self.is_ancestor(x, at_seq(middle)) {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        let first = at_seq(low);
        self.sees(first, x).then_some(first)
    }

    /// For a seat with a known fork: every anchor of the seat is checked.
    fn first_acknowledging_by_search(&self, x: Idx, seat: usize, unique: &[Idx]) -> Option<Idx> {
        self.by_seat[seat]
            .values()
            .flatten()
            .copied()
            .filter(|z| self.sees(*z, x) && unique.iter().any(|u| self.is_ancestor(*z, *u)))
            .min_by_key(|z| self.vertices[*z as usize].round)
    }

    /// The next finalized round, in order.
    #[must_use]
    pub fn poll_finalized(&mut self) -> Option<FinalizedRound> {
        self.finalized.pop_front()
    }

    fn lookup(&self, id: &Hash32) -> Option<&Vertex> {
        self.by_id.get(id).map(|i| &self.vertices[*i as usize])
    }

    /// Whether `parent` names an inserted vertex with that creator, seq and
    /// round.
    pub fn matches_parent_ref(&self, parent: &pc_codec::ParentRef) -> bool {
        self.lookup(&parent.anchor_id).is_some_and(|v| {
            v.creator == parent.creator && v.seq == parent.seq && v.round == parent.birth_round
        })
    }

    /// The creator of an inserted vertex.
    pub fn creator(&self, id: &Hash32) -> Option<u8> {
        self.lookup(id).map(|v| v.creator)
    }

    /// Whether a vertex with this id is in the DAG.
    pub fn contains(&self, id: &Hash32) -> bool {
        self.by_id.contains_key(id)
    }

    /// The round of an inserted vertex.
    pub fn round(&self, id: &Hash32) -> Option<u64> {
        self.lookup(id).map(|v| v.round)
    }

    /// Whether an inserted vertex is a witness.
    pub fn is_witness(&self, id: &Hash32) -> Option<bool> {
        self.lookup(id).map(|v| v.witness)
    }

    /// The decided fame of a witness (`None`: undecided or not a witness).
    pub fn fame(&self, id: &Hash32) -> Option<bool> {
        self.lookup(id).and_then(|v| v.fame)
    }

    /// The lowest round not yet decided.
    pub fn next_undecided_round(&self) -> u64 {
        self.next_undecided_round
    }

    /// Number of vertices held.
    pub fn len(&self) -> usize {
        self.vertices.len()
    }

    /// Whether the DAG is empty.
    pub fn is_empty(&self) -> bool {
        self.vertices.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(layer: u64, seat: usize) -> Hash32 {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&layer.to_le_bytes());
        id[8] = seat as u8;
        id[9] = 1;
        id
    }

    /// Every seat creates one vertex per layer referencing its own previous
    /// vertex and up to three others of the previous layer.
    fn full_mesh(k: usize, layers: u64) -> Vec<VertexSpec> {
        let mut dag = Vec::new();
        for layer in 0..layers {
            for seat in 0..k {
                let parents = if layer == 0 {
                    Vec::new()
                } else {
                    let mut parents = vec![id(layer - 1, seat)];
                    parents.extend((1..k.min(4)).map(|offset| id(layer - 1, (seat + offset) % k)));
                    parents
                };
                dag.push(VertexSpec {
                    id: id(layer, seat),
                    creator: seat as u8,
                    seq: layer,
                    parents,
                    coin: false,
                });
            }
        }
        dag
    }

    #[test]
    fn full_mesh_advances_a_round_every_two_layers_and_finalizes_in_order() {
        // A vertex strongly sees the vertices two layers below it (paths run
        // through q seats of the layer between), so rounds advance every
        // second layer and the even layers hold the witnesses.
        let k = 4;
        let mut consensus = Consensus::new(ConsensusConfig {
            k,
            coin_round_period: 10,
        });
        for vertex in full_mesh(k, 16) {
            let placement = consensus.insert(vertex.clone()).unwrap();
            let expected = Placement {
                round: vertex.seq / 2,
                witness: vertex.seq % 2 == 0,
            };
            assert_eq!(
                placement, expected,
                "layer {} seat {}",
                vertex.seq, vertex.creator
            );
        }
        let mut finalized = Vec::new();
        while let Some(round) = consensus.poll_finalized() {
            finalized.push(round);
        }
        // Rounds 0..=7 exist; fame of round r is decided by round r + 2 voters.
        assert_eq!(
            finalized.iter().map(|r| r.round).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 5]
        );
        for round in &finalized {
            assert_eq!(
                round.unique_famous_witnesses.len(),
                k,
                "round {}",
                round.round
            );
        }
        // Round r's UFWs are layer 2r; every vertex below layer 2r is their
        // ancestor (layer 2r - 1 reaches all seats in a full mesh), so round r
        // receives exactly layers 2r - 2 and 2r - 1 (round 0 receives nothing
        // but the witnesses' common ancestors, of which there are none).
        assert!(finalized[0].anchors.is_empty());
        for round in &finalized[1..] {
            assert_eq!(round.anchors.len(), 2 * k, "round {}", round.round);
        }
        let indexes: Vec<u64> = finalized
            .iter()
            .flat_map(|r| r.anchors.iter().map(|a| a.global_index))
            .collect();
        assert_eq!(indexes, (0..indexes.len() as u64).collect::<Vec<_>>());
        // Layered order: layer 2r - 2 precedes layer 2r - 1 within a round.
        let first = &finalized[1].anchors;
        assert!(first[..k].iter().all(|a| a.id[..8] == 0u64.to_le_bytes()));
        assert!(first[k..].iter().all(|a| a.id[..8] == 1u64.to_le_bytes()));
    }

    #[test]
    fn wrong_birth_round_is_refused_and_leaves_nothing_behind() {
        let k = 4;
        let mut consensus = Consensus::new(ConsensusConfig {
            k,
            coin_round_period: 10,
        });
        let dag = full_mesh(k, 3);
        for vertex in &dag[..2 * k] {
            consensus.insert(vertex.clone()).unwrap();
        }
        let layer_two = dag[2 * k].clone();
        assert_eq!(
            consensus.insert_with_birth_round(layer_two.clone(), 0),
            Err(InsertError::BirthRoundMismatch {
                claimed: 0,
                computed: 1
            })
        );
        assert_eq!(consensus.len(), 2 * k);
        assert_eq!(consensus.round(&layer_two.id), None);
        let placement = consensus.insert_with_birth_round(layer_two, 1).unwrap();
        assert_eq!(
            placement,
            Placement {
                round: 1,
                witness: true
            }
        );
    }

    #[test]
    fn invalid_self_parents_are_refused() {
        let mut consensus = Consensus::new(ConsensusConfig {
            k: 2,
            coin_round_period: 10,
        });
        let first = VertexSpec {
            id: [1; 32],
            creator: 0,
            seq: 0,
            parents: vec![],
            coin: false,
        };
        consensus.insert(first.clone()).unwrap();
        assert_eq!(consensus.insert(first.clone()), Err(InsertError::Duplicate));
        let skip = VertexSpec {
            id: [2; 32],
            creator: 0,
            seq: 2,
            parents: vec![[1; 32]],
            coin: false,
        };
        assert!(matches!(
            consensus.insert(skip),
            Err(InsertError::BadSelfParent { .. })
        ));
        let orphan = VertexSpec {
            id: [3; 32],
            creator: 1,
            seq: 0,
            parents: vec![[9; 32]],
            coin: false,
        };
        assert_eq!(
            consensus.insert(orphan),
            Err(InsertError::MissingParent { index: 0 })
        );
        let stranger = VertexSpec {
            id: [4; 32],
            creator: 2,
            seq: 0,
            parents: vec![],
            coin: false,
        };
        assert!(matches!(
            consensus.insert(stranger),
            Err(InsertError::CreatorOutOfRange { .. })
        ));
    }
}
