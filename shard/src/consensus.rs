//! The fast consensus of DESIGN §4: rounds, witnesses, fame by virtual voting
//! with coin rounds, unique famous witnesses, round received and the total
//! order, over a DAG held as a dense arena that is pruned from below.
//!
//! "Sees" and "strongly sees" are answered from per-vertex summaries: per
//! seat the *tops* (the highest anchors of that seat in the vertex's
//! ancestry, usually one) and the seats with a fork in the ancestry. An
//! ancestry question for a seat without forks or chain cuts is one
//! sequence-number comparison; other seats walk the self-parent chain.
//!
//! # The window (ancient anchors)
//!
//! Every summary is taken over a window: a vertex whose parents reach round
//! `base` looks only at ancestors of round `>= base - G` (`G`, the
//! non-ancient window of the genesis parameters). Forks are counted only
//! when both anchors of the pair lie in that window. The window is a
//! property of the vertex's own ancestry, never of what a node has pruned
//! or decided, so every node computes the same rounds and order; and
//! everything a window can reach is kept in memory (`floor`, below), so
//! pruning never changes an answer.
//!
//! # Receiving, the drag and stale anchors
//!
//! When round `R` is decided it receives `S`: the unreceived anchors of
//! round `> R - G` that are ancestors of every unique famous witness (an
//! anchor `G` or more rounds below `R` is outside the witnesses' windows
//! and is not received directly). With `S` it also receives, in the same
//! round, every unreceived ancestor of an anchor of `S` (over parent edges)
//! of round `>= R - 2G - 1`, the *drag bound*: an anchor that missed its
//! window is dragged in by a received descendant, so a received anchor's
//! ancestors are finalized before or with it (its self-parent chain and the
//! transfers it spends from stay in causal order). An edge spans at most
//! `G + 1` rounds, so the direct parents of `S` are all within the bound.
//! An unreceived anchor that falls below the drag bound of the next round
//! is dropped and counted *stale*: no later round can receive it (ancient
//! anchors are never finalized). Ack distances of a dragged anchor are
//! computed over exact ancestry (it may lie outside the windows of the
//! anchors that answer for it).
//!
//! Memory is bounded: once round `r` is decided, vertices of rounds below
//! `r - 3G - 2` are dropped, and a new vertex whose window would reach below
//! the kept rounds is refused as [`InsertError::Ancient`]. The margin keeps
//! every vertex that can still be received (round above `r - G`), the
//! parents it requires (within `G + 1` rounds below it) insertable and every
//! anchor a later round can drag (round `>= r - 2G`) held; the unreceived
//! bookkeeping holds only anchors within the drag bound.

use std::collections::{BTreeMap, HashMap, VecDeque};

use pc_codec::ids::whiten;
use pc_codec::Hash32;

use crate::vertex::{FinalizedAnchor, FinalizedRound, VertexSpec};

/// Absolute index of a vertex (the arena position plus what was pruned).
type Idx = u64;
/// No vertex.
const NONE: Idx = Idx::MAX;

/// Parameters of one shard's consensus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsensusConfig {
    /// Committee seats, `1..=64`.
    pub k: usize,
    /// Coin-round period `C` of the fame vote.
    pub coin_round_period: u64,
    /// The non-ancient window `G` in rounds, `>= 2`.
    pub window: u64,
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
    /// The vertex's window reaches below the rounds still held: it is
    /// ancient and can never be finalized.
    #[error("ancient: parents reach round {base}, rounds below {floor} are pruned")]
    Ancient {
        /// The highest round among its parents.
        base: u64,
        /// The lowest round held.
        floor: u64,
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

/// A memoized fame vote: the vote, and whether it decided.
#[derive(Debug, Clone, Copy)]
struct Vote {
    yes: bool,
    decides: bool,
}

#[derive(Debug)]
struct Vertex {
    id: Hash32,
    creator: u8,
    seq: u64,
    coin: bool,
    /// `NONE` at seq 0 and for a chain cut (an ancient self-parent).
    self_parent: Idx,
    /// Self-chain ancestors 2, 4, 8, ... steps below (while the chain
    /// reaches), so that a walk down a forked seat's chain takes
    /// logarithmic steps.
    skips: Vec<Idx>,
    parents: Vec<Idx>,
    round: u64,
    witness: bool,
    /// Seats with a fork (two anchors of the seat, neither on the other's
    /// self-parent chain, both in the window) among the ancestors.
    fork_mask: u64,
    /// Per forked seat: the highest `min(round(a), round(b))` over its fork
    /// pairs `(a, b)`, so that a descendant can tell whether the pair is
    /// still inside its own window.
    fork_rounds: Vec<(u8, u64)>,
    /// Per seat, its single top in the window (`NONE`: none or several).
    last_ancestor: Box<[Idx]>,
    /// Seats with several tops: `(seat, top)` pairs, sorted.
    multi_tops: Vec<(u8, Idx)>,
    /// For a witness of round r > 0: the round-(r-1) witnesses it strongly sees.
    strongly_seen_previous: Vec<Idx>,
    fame: Option<bool>,
}

/// The ancestry summary of a vertex before it is pushed.
struct Summary {
    fork_mask: u64,
    fork_rounds: Vec<(u8, u64)>,
    last_ancestor: Box<[Idx]>,
    multi_tops: Vec<(u8, Idx)>,
}

/// The consensus state of one shard.
#[derive(Debug)]
pub struct Consensus {
    config: ConsensusConfig,
    /// The arena; `vertices[i]` has absolute index `pruned + i`.
    vertices: VecDeque<Vertex>,
    /// Vertices dropped from the front of the arena.
    pruned: Idx,
    /// Rounds below this are not held (and may have been dropped).
    floor: u64,
    by_id: HashMap<Hash32, Idx>,
    /// Per seat: seq -> the vertices of that seat at that seq.
    by_seat: Vec<BTreeMap<u64, Vec<Idx>>>,
    /// Seats whose ancestry questions must walk the self-parent chain: a
    /// fork, a second seq-0 anchor or a chain cut was seen (never cleared).
    walk_seats: u64,
    /// Seats with a seq-0 anchor inserted (never cleared).
    started_seats: u64,
    /// Witnesses per round, in insertion order.
    witnesses: BTreeMap<u64, Vec<Idx>>,
    /// Memoized fame votes per undecided candidate: voter -> vote.
    votes: HashMap<Idx, HashMap<Idx, Vote>>,
    /// The lowest round not yet decided.
    next_undecided_round: u64,
    /// Vertices not yet received by a decided round that a later round may
    /// still receive or drag (round `>=` the next round's drag bound), in
    /// insertion order.
    unreceived: Vec<Idx>,
    next_global_index: u64,
    finalized: VecDeque<FinalizedRound>,
    coin_stats: CoinStats,
    stale: u64,
    dragged: u64,
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
    /// If `k` is outside `1..=64`, the coin period is zero or the window
    /// is below 2.
    pub fn new(config: ConsensusConfig) -> Self {
        assert!((1..=64).contains(&config.k), "k must be in 1..=64");
        assert!(config.coin_round_period > 0, "coin period must be positive");
        assert!(config.window >= 2, "the window must be at least 2 rounds");
        Consensus {
            config,
            vertices: VecDeque::new(),
            pruned: 0,
            floor: 0,
            by_id: HashMap::new(),
            by_seat: vec![BTreeMap::new(); config.k],
            walk_seats: 0,
            started_seats: 0,
            witnesses: BTreeMap::new(),
            votes: HashMap::new(),
            next_undecided_round: 0,
            unreceived: Vec::new(),
            next_global_index: 0,
            finalized: VecDeque::new(),
            coin_stats: CoinStats::default(),
            stale: 0,
            dragged: 0,
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
        let (idx, computed) = self.push_and_compute(&spec)?;
        if let Some(claimed) = claimed_round.filter(|claimed| *claimed != computed.round) {
            self.vertices.pop_back();
            return Err(InsertError::BirthRoundMismatch {
                claimed,
                computed: computed.round,
            });
        }
        let seat_bit = 1u64 << spec.creator;
        let seat_chain = &mut self.by_seat[usize::from(spec.creator)];
        let cut = spec.seq > 0 && self.vertices.back().is_some_and(|v| v.self_parent == NONE);
        let second_start = spec.seq == 0 && self.started_seats & seat_bit != 0;
        if seat_chain.contains_key(&spec.seq) || cut || second_start {
            self.walk_seats |= seat_bit;
        }
        if spec.seq == 0 {
            self.started_seats |= seat_bit;
        }
        seat_chain.entry(spec.seq).or_default().push(idx);
        self.by_id.insert(spec.id, idx);
        let placement = self.place(idx, computed);
        self.unreceived.push(idx);
        if placement.witness {
            self.vote_as_new_witness(idx);
            self.decide_rounds();
        }
        Ok(placement)
    }

    /// The round a vertex would get if inserted now; changes nothing. A
    /// seat uses it to fill in the birth round of its own next anchor.
    pub fn probe_round(&mut self, spec: &VertexSpec) -> Result<u64, InsertError> {
        let (_, computed) = self.push_and_compute(spec)?;
        self.vertices.pop_back();
        Ok(computed.round)
    }

    fn vertex(&self, idx: Idx) -> &Vertex {
        &self.vertices[(idx - self.pruned) as usize]
    }

    fn vertex_mut(&mut self, idx: Idx) -> &mut Vertex {
        &mut self.vertices[(idx - self.pruned) as usize]
    }

    /// A vertex still held (`None` for `NONE` and pruned indexes).
    fn held(&self, idx: Idx) -> Option<&Vertex> {
        if idx == NONE || idx < self.pruned {
            return None;
        }
        self.vertices.get((idx - self.pruned) as usize)
    }

    /// Checks a vertex, pushes it on the arena (not yet findable by id) and
    /// computes its round.
    fn push_and_compute(&mut self, spec: &VertexSpec) -> Result<(Idx, ComputedRound), InsertError> {
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
        let base = parents
            .iter()
            .map(|p| self.vertex(*p).round)
            .max()
            .unwrap_or(0);
        if self.floor > 0 && base.saturating_sub(self.config.window) < self.floor {
            return Err(InsertError::Ancient {
                base,
                floor: self.floor,
            });
        }
        let idx = self.pruned + self.vertices.len() as Idx;
        let summary = self.summarize_ancestry(idx, spec, self_parent, &parents, base);
        let mut skips = Vec::new();
        let mut at = self_parent;
        while let Some(vertex) = self.held(at) {
            // skips[i] is 2^(i+1) steps down: two hops of 2^i.
            let half = if skips.is_empty() {
                vertex.self_parent
            } else {
                vertex.skips.get(skips.len() - 1).copied().unwrap_or(NONE)
            };
            if self.held(half).is_none() {
                break;
            }
            skips.push(half);
            at = half;
        }
        self.vertices.push_back(Vertex {
            id: spec.id,
            creator: spec.creator,
            seq: spec.seq,
            coin: spec.coin,
            self_parent,
            skips,
            parents,
            round: 0,
            witness: false,
            fork_mask: summary.fork_mask,
            fork_rounds: summary.fork_rounds,
            last_ancestor: summary.last_ancestor,
            multi_tops: summary.multi_tops,
            strongly_seen_previous: Vec::new(),
            fame: None,
        });
        Ok((idx, self.compute_round(idx)))
    }

    /// The self-parent of a vertex: `NONE` at seq 0 and for a cut chain (a
    /// seq > 0 anchor whose self-parent was ancient and left out).
    fn check_self_parent(&self, spec: &VertexSpec, parents: &[Idx]) -> Result<Idx, InsertError> {
        let own: Vec<Idx> = parents
            .iter()
            .copied()
            .filter(|p| self.vertex(*p).creator == spec.creator)
            .collect();
        match (spec.seq, own.as_slice()) {
            (_, []) => Ok(NONE),
            (0, _) => Err(InsertError::BadSelfParent {
                seq: 0,
                expected: "no parent by its own creator",
            }),
            (seq, [single]) if parents[0] == *single && self.vertex(*single).seq + 1 == seq => {
                Ok(*single)
            }
            (seq, _) => Err(InsertError::BadSelfParent {
                seq,
                expected: "exactly one own parent, first, at seq - 1",
            }),
        }
    }

    /// The tops of `seat` in a vertex's summary.
    fn tops<'a>(&self, vertex: &'a Vertex, seat: usize) -> impl Iterator<Item = Idx> + 'a {
        let single = vertex.last_ancestor[seat];
        let multi: &[(u8, Idx)] = if single == NONE {
            &vertex.multi_tops
        } else {
            &[]
        };
        std::iter::once(single).filter(|t| *t != NONE).chain(
            multi
                .iter()
                .filter(move |(s, _)| usize::from(*s) == seat)
                .map(|(_, t)| *t),
        )
    }

    /// The summary of a new vertex: per seat its tops in the window and
    /// the fork pairs among them.
    fn summarize_ancestry(
        &self,
        idx: Idx,
        spec: &VertexSpec,
        self_parent: Idx,
        parents: &[Idx],
        base: u64,
    ) -> Summary {
        let window = base.saturating_sub(self.config.window);
        let mut summary = Summary {
            fork_mask: 0,
            fork_rounds: Vec::new(),
            last_ancestor: vec![NONE; self.config.k].into_boxed_slice(),
            multi_tops: Vec::new(),
        };
        let in_window = |t: &Idx| self.held(*t).is_some_and(|v| v.round >= window);
        let mut tops: Vec<Idx> = Vec::with_capacity(8);
        let mut maximal: Vec<Idx> = Vec::with_capacity(8);
        for seat in 0..self.config.k {
            tops.clear();
            for p in parents {
                tops.extend(self.tops(self.vertex(*p), seat).filter(in_window));
            }
            tops.sort_unstable();
            tops.dedup();
            let own = seat == usize::from(spec.creator);
            maximal.clear();
            if own {
                // The new vertex tops its chain; an own top not below it on
                // that chain is a fork with it.
                maximal.extend(
                    tops.iter()
                        .copied()
                        .filter(|t| self_parent == NONE || !self.on_chain(*t, self_parent)),
                );
            } else if tops.len() == 1 {
                maximal.push(tops[0]);
            } else {
                maximal.extend(tops.iter().copied().filter(|t| {
                    !tops
                        .iter()
                        .any(|other| other != t && self.on_chain(*t, *other))
                }));
            }
            let mut fork_round: Option<u64> = parents
                .iter()
                .flat_map(|p| self.vertex(*p).fork_rounds.iter())
                .filter(|(s, r)| usize::from(*s) == seat && *r >= window)
                .map(|(_, r)| *r)
                .max();
            for (i, a) in maximal.iter().enumerate() {
                let round_a = self.vertex(*a).round;
                if own {
                    // round(a) <= base <= round(new vertex)
                    fork_round = fork_round.max(Some(round_a));
                }
                for b in &maximal[i + 1..] {
                    let pair = round_a.min(self.vertex(*b).round);
                    fork_round = fork_round.max(Some(pair));
                }
            }
            if let Some(round) = fork_round {
                summary.fork_mask |= 1 << seat;
                summary.fork_rounds.push((seat as u8, round));
            }
            if own {
                if maximal.is_empty() {
                    summary.last_ancestor[seat] = idx;
                } else {
                    summary.multi_tops.push((seat as u8, idx));
                    summary
                        .multi_tops
                        .extend(maximal.iter().map(|t| (seat as u8, *t)));
                }
            } else if maximal.len() == 1 {
                summary.last_ancestor[seat] = maximal[0];
            } else {
                summary
                    .multi_tops
                    .extend(maximal.iter().map(|t| (seat as u8, *t)));
            }
        }
        summary.multi_tops.sort_unstable();
        summary
    }

    /// Whether `lower` is `top` or on `top`'s self-parent chain (both by
    /// one seat, both held; a pruned one answers no).
    fn on_chain(&self, lower: Idx, top: Idx) -> bool {
        if lower == top {
            return true;
        }
        let (Some(lower_vertex), Some(top_vertex)) = (self.held(lower), self.held(top)) else {
            return false;
        };
        if lower_vertex.seq > top_vertex.seq {
            return false;
        }
        if self.walk_seats & (1 << lower_vertex.creator) == 0 {
            return true;
        }
        let target = lower_vertex.seq;
        let mut at = top;
        while let Some(vertex) = self.held(at) {
            if vertex.seq <= target {
                break;
            }
            // The longest jump that does not pass the target seq.
            at = vertex
                .skips
                .iter()
                .rev()
                .copied()
                .find(|s| self.held(*s).is_some_and(|v| v.seq >= target))
                .unwrap_or(vertex.self_parent);
        }
        at == lower
    }

    /// `y <= x`: y is x or an ancestor of x (exact for y in x's window).
    fn is_ancestor(&self, y: Idx, x: Idx) -> bool {
        if y == x {
            return true;
        }
        let seat = usize::from(self.vertex(y).creator);
        let xv = self.vertex(x);
        let single = xv.last_ancestor[seat];
        if single != NONE {
            return self.on_chain(y, single);
        }
        self.tops(xv, seat).any(|t| self.on_chain(y, t))
    }

    /// x sees y: y <= x and no fork by y's creator in x's window.
    fn sees(&self, x: Idx, y: Idx) -> bool {
        let creator = self.vertex(y).creator;
        // The mutation self-test of DESIGN §10: without the fork check the
        // default test run must fail.
        let fork_free = cfg!(feature = "planted-bug-no-fork-check")
            || self.vertex(x).fork_mask & (1 << creator) == 0;
        fork_free && self.is_ancestor(y, x)
    }

    /// x strongly sees y: x sees y, and for at least q seats x sees the
    /// seat's top in x's window and that top sees y.
    fn strongly_sees(&self, x: Idx, y: Idx) -> bool {
        if !self.sees(x, y) {
            return false;
        }
        let xv = self.vertex(x);
        let seats = xv
            .last_ancestor
            .iter()
            .enumerate()
            .filter(|(seat, top)| {
                **top != NONE && xv.fork_mask & (1 << seat) == 0 && self.sees(**top, y)
            })
            .count();
        seats >= self.config.q()
    }

    /// Round, witness status and strongly seen previous-round witnesses of
    /// a freshly pushed vertex; changes nothing.
    fn compute_round(&self, idx: Idx) -> ComputedRound {
        let vertex = self.vertex(idx);
        let parent_round = vertex.parents.iter().map(|p| self.vertex(*p).round).max();
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
        let witness = self_parent == NONE || round > self.vertex(self_parent).round;
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
        let vertex = self.vertex_mut(idx);
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
            .fold(0u64, |mask, v| mask | 1 << self.vertex(*v).creator)
            .count_ones() as usize
    }

    /// A new witness takes part in the election: as a candidate, it is voted
    /// on by the witnesses already above it; as a voter, it votes on every
    /// undecided candidate below it. No other vote can change, because a
    /// vote depends only on the voter's ancestry.
    fn vote_as_new_witness(&mut self, idx: Idx) {
        let round = self.vertex(idx).round;
        if self.vertex(idx).fame.is_none() {
            let fame = self.decide_fame(idx, round);
            self.vertex_mut(idx).fame = fame;
        }
        if round <= self.next_undecided_round {
            return;
        }
        let candidates: Vec<(Idx, u64)> = self
            .witnesses
            .range(self.next_undecided_round..round)
            .flat_map(|(r, ws)| ws.iter().map(move |w| (*w, *r)))
            .collect();
        for (candidate, candidate_round) in candidates {
            if self.vertex(candidate).fame.is_none() {
                if let Some(decision) = self.vote(idx, candidate, round - candidate_round) {
                    self.vertex_mut(candidate).fame = Some(decision);
                }
            }
        }
    }

    /// Decides fame round by round, finalizing each round once all its
    /// witnesses are decided.
    fn decide_rounds(&mut self) {
        while let Some(round_witnesses) = self.witnesses.get(&self.next_undecided_round) {
            if round_witnesses
                .iter()
                .any(|w| self.vertex(*w).fame.is_none())
            {
                return;
            }
            let round = self.next_undecided_round;
            self.finalize_round(round);
            for w in self.witnesses[&round].clone() {
                self.votes.remove(&w);
            }
            self.next_undecided_round += 1;
            let floor = self
                .next_undecided_round
                .saturating_sub(3 * self.config.window + 2);
            self.prune_below(floor);
        }
    }

    /// Runs the virtual election of `candidate` over all later witnesses,
    /// in (round, insertion) order.
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

    /// `voter`'s vote on `candidate` (memoized; electors vote first, on
    /// demand); returns the decision if the vote decides fame.
    fn vote(&mut self, voter: Idx, candidate: Idx, distance: u64) -> Option<bool> {
        if let Some(vote) = self.votes.get(&candidate).and_then(|v| v.get(&voter)) {
            return vote.decides.then_some(vote.yes);
        }
        let vote = if distance == 1 {
            Vote {
                yes: self.sees(voter, candidate),
                decides: false,
            }
        } else {
            let electors = self.vertex(voter).strongly_seen_previous.clone();
            let (mut yes, mut no) = (0usize, 0usize);
            for elector in electors {
                self.vote(elector, candidate, distance - 1);
                match self.votes[&candidate][&elector].yes {
                    true => yes += 1,
                    false => no += 1,
                }
            }
            let majority = yes >= no;
            let agreeing = if majority { yes } else { no };
            let supermajority = agreeing >= self.config.q();
            if !distance.is_multiple_of(self.config.coin_round_period) {
                Vote {
                    yes: majority,
                    decides: supermajority,
                }
            } else {
                self.coin_stats.coin_round_votes += 1;
                self.coin_stats.coin_flips += u64::from(!supermajority);
                Vote {
                    yes: if supermajority {
                        majority
                    } else {
                        self.vertex(voter).coin
                    },
                    decides: false,
                }
            }
        };
        self.votes.entry(candidate).or_default().insert(voter, vote);
        vote.decides.then_some(vote.yes)
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
            .filter(|w| self.vertex(*w).fame == Some(true))
            .collect();
        let mut per_seat = [0u8; 64];
        for w in &famous {
            per_seat[usize::from(self.vertex(*w).creator)] += 1;
        }
        let mut unique: Vec<Idx> = famous
            .into_iter()
            .filter(|w| per_seat[usize::from(self.vertex(*w).creator)] == 1)
            .collect();
        assert!(
            !unique.is_empty(),
            "decided round {round} has no unique famous witness"
        );
        unique.sort_unstable_by_key(|w| self.vertex(*w).id);
        let whitening_key = unique.iter().fold([0u8; 32], |mut acc, w| {
            for (a, b) in acc.iter_mut().zip(self.vertex(*w).id) {
                *a ^= b;
            }
            acc
        });

        let (received, dragged) = self.receive(round, &unique);
        let mut layer: HashMap<Idx, u32> = HashMap::with_capacity(received.len());
        // `received` is in insertion order, which is topological.
        for &x in &received {
            let own_layer = self
                .vertex(x)
                .parents
                .iter()
                .filter_map(|p| layer.get(p).map(|l| l + 1))
                .max()
                .unwrap_or(0);
            layer.insert(x, own_layer);
        }
        let mut keyed: Vec<(u32, Hash32, Hash32, Idx)> = received
            .iter()
            .map(|x| {
                let id = self.vertex(*x).id;
                (layer[x], whiten(&id, &whitening_key), id, *x)
            })
            .collect();
        keyed.sort_unstable();
        // The exact ancestry of the UFWs, needed only for dragged anchors.
        let below_ufw = if dragged.is_empty() {
            Vec::new()
        } else {
            self.ancestors_of_all(&unique, self.drag_bound(round))
        };
        let anchors = keyed
            .into_iter()
            .map(|(_, _, id, x)| {
                let global_index = self.next_global_index;
                self.next_global_index += 1;
                let ack_distances = if dragged.binary_search(&x).is_ok() {
                    self.ack_distances_exact(x, &below_ufw)
                } else {
                    self.ack_distances(x, &unique)
                };
                FinalizedAnchor {
                    id,
                    global_index,
                    ack_distances,
                }
            })
            .collect();
        self.finalized.push_back(FinalizedRound {
            round,
            unique_famous_witnesses: unique.iter().map(|u| self.vertex(*u).id).collect(),
            anchors,
        });
    }

    /// The lowest round an anchor received by `round` may drag along:
    /// `round - 2G - 1` (module docs, "Receiving, the drag and stale
    /// anchors").
    fn drag_bound(&self, round: u64) -> u64 {
        round.saturating_sub(2 * self.config.window + 1)
    }

    /// The anchors decided round `round` receives, in insertion order, and
    /// (a sorted subset of them) those it drags along: `S`, the unreceived
    /// anchors of round `> round - G` below every unique famous witness,
    /// plus every unreceived ancestor of an anchor of `S` (over parent
    /// edges) of round `>= round - 2G - 1`. Unreceived anchors that no later
    /// round can drag are dropped from the bookkeeping and counted stale.
    fn receive(&mut self, round: u64, unique: &[Idx]) -> (Vec<Idx>, Vec<Idx>) {
        let window = self.config.window;
        let bound = self.drag_bound(round);
        let next_bound = self.drag_bound(round + 1);
        let mut direct = Vec::new();
        // Unreceived, not in `S`, within the drag bound; insertion order.
        let mut draggable = Vec::new();
        for x in std::mem::take(&mut self.unreceived) {
            let x_round = self.vertex(x).round;
            if x_round + window > round && unique.iter().all(|u| self.is_ancestor(x, *u)) {
                direct.push(x);
            } else if x_round >= bound {
                draggable.push(x);
            } else {
                self.stale += 1;
            }
        }
        // Walk down from `S` over unreceived anchors within the bound. An
        // unreceived ancestor within the bound is reached through unreceived
        // anchors of rounds >= its own (the bound only rises, so a received
        // anchor on the way would have dragged it already): the walk stops
        // at received anchors and below the bound. `draggable` is sorted, so
        // membership is a binary search.
        let mut marked = vec![false; draggable.len()];
        let mut stack = direct.clone();
        while let Some(x) = stack.pop() {
            for p in &self.vertex(x).parents {
                if let Ok(at) = draggable.binary_search(p) {
                    if !marked[at] {
                        marked[at] = true;
                        stack.push(*p);
                    }
                }
            }
        }
        let mut dragged = Vec::new();
        let mut kept = Vec::new();
        for (x, is_dragged) in draggable.into_iter().zip(marked) {
            if is_dragged {
                dragged.push(x);
            } else if self.vertex(x).round >= next_bound {
                kept.push(x);
            } else {
                // No later round can receive or drag it.
                self.stale += 1;
            }
        }
        self.unreceived = kept;
        self.dragged += dragged.len() as u64;
        let mut received = direct;
        received.extend_from_slice(&dragged);
        received.sort_unstable();
        (received, dragged)
    }

    /// Per held vertex (by arena position): whether it is one of `tops` or
    /// an ancestor of one, over parent edges, looking no lower than round
    /// `bound` (rounds never rise along a parent edge, so nothing below is
    /// needed to reach a vertex of round `>= bound`).
    fn ancestors_of_all(&self, tops: &[Idx], bound: u64) -> Vec<bool> {
        let mut below = vec![false; self.vertices.len()];
        let mut stack = Vec::new();
        for &t in tops {
            if !below[(t - self.pruned) as usize] {
                below[(t - self.pruned) as usize] = true;
                stack.push(t);
            }
        }
        while let Some(x) = stack.pop() {
            for &p in &self.vertex(x).parents {
                if let Some(parent) = self.held(p) {
                    let at = (p - self.pruned) as usize;
                    if parent.round >= bound && !below[at] {
                        below[at] = true;
                        stack.push(p);
                    }
                }
            }
        }
        below
    }

    /// Ack distances (the definition of [`Consensus::ack_distances`]) over
    /// exact ancestry, for a dragged anchor `y`: `y` may lie outside the
    /// windows of the unique famous witnesses and of the anchors that see
    /// it, where the summaries do not answer ancestry questions.
    /// `below_ufw` marks the held vertices below a unique famous witness
    /// down to `y`'s round ([`Consensus::ancestors_of_all`]).
    fn ack_distances_exact(&self, y: Idx, below_ufw: &[bool]) -> Vec<Option<u64>> {
        let y_vertex = self.vertex(y);
        let y_bit = 1u64 << y_vertex.creator;
        let start = (y - self.pruned) as usize;
        // Descendants of y (y included): arena order is topological.
        let mut above = vec![false; self.vertices.len() - start];
        above[0] = true;
        let mut first: Vec<Option<u64>> = vec![None; self.config.k];
        for (offset, z) in self.vertices.range(start..).enumerate() {
            if offset > 0 {
                above[offset] = z.parents.iter().any(|p| *p >= y && above[(p - y) as usize]);
            }
            let fork_free = cfg!(feature = "planted-bug-no-fork-check") || z.fork_mask & y_bit == 0;
            if above[offset] && below_ufw[start + offset] && fork_free {
                let best = &mut first[usize::from(z.creator)];
                *best = Some(best.map_or(z.round, |r| r.min(z.round)));
            }
        }
        first
            .into_iter()
            .map(|r| r.map(|r| r - y_vertex.round + 1))
            .collect()
    }

    /// Ack distance of every seat for `x`, from the ancestry of the unique
    /// famous witnesses `unique` of its round received (DESIGN §4).
    fn ack_distances(&self, x: Idx, unique: &[Idx]) -> Vec<Option<u64>> {
        let x_round = self.vertex(x).round;
        (0..self.config.k)
            .map(|seat| {
                let first = if self.walk_seats & (1 << seat) == 0 {
                    self.first_acknowledging_on_chain(x, seat, unique)
                } else {
                    self.first_acknowledging_by_search(x, seat, unique)
                };
                first.map(|z| self.vertex(z).round - x_round + 1)
            })
            .collect()
    }

    /// For a seat without forks or cuts: its anchors below the UFWs form one
    /// chain on which "x is an ancestor" is monotone; walk down from the
    /// top to the first anchor with x as ancestor, then up to the first
    /// that sees x.
    fn first_acknowledging_on_chain(&self, x: Idx, seat: usize, unique: &[Idx]) -> Option<Idx> {
        let top = unique
            .iter()
            .flat_map(|u| self.tops(self.vertex(*u), seat))
            .max_by_key(|t| self.vertex(*t).seq)?;
        if !self.is_ancestor(x, top) {
            return None;
        }
        let mut chain = vec![top];
        loop {
            let below = self.vertex(*chain.last().expect("non-empty")).self_parent;
            match self.held(below) {
                Some(_) if self.is_ancestor(x, below) => chain.push(below),
                _ => break,
            }
        }
        chain.into_iter().rev().find(|z| self.sees(*z, x))
    }

    /// For a seat with a fork or cut: every held anchor of the seat is checked.
    fn first_acknowledging_by_search(&self, x: Idx, seat: usize, unique: &[Idx]) -> Option<Idx> {
        self.by_seat[seat]
            .values()
            .flatten()
            .copied()
            .filter(|z| self.sees(*z, x) && unique.iter().any(|u| self.is_ancestor(*z, *u)))
            .min_by_key(|z| (self.vertex(*z).round, *z))
    }

    /// Drops every vertex of a round below `floor` from the front of the
    /// arena, with its index entries; afterwards vertices whose window
    /// reaches below `floor` are refused as ancient.
    fn prune_below(&mut self, floor: u64) {
        if floor <= self.floor {
            return;
        }
        self.floor = floor;
        while let Some(front) = self.vertices.front() {
            if front.round >= floor {
                break;
            }
            let idx = self.pruned;
            let vertex = self.vertices.pop_front().expect("front exists");
            self.pruned += 1;
            self.by_id.remove(&vertex.id);
            let seat = &mut self.by_seat[usize::from(vertex.creator)];
            if let Some(at_seq) = seat.get_mut(&vertex.seq) {
                at_seq.retain(|i| *i != idx);
                if at_seq.is_empty() {
                    seat.remove(&vertex.seq);
                }
            }
        }
        let pruned = self.pruned;
        self.witnesses = self.witnesses.split_off(&floor);
        for ws in self.witnesses.values_mut() {
            ws.retain(|w| *w >= pruned);
        }
        self.unreceived.retain(|x| *x >= pruned);
    }

    /// The next finalized round, in order.
    #[must_use]
    pub fn poll_finalized(&mut self) -> Option<FinalizedRound> {
        self.finalized.pop_front()
    }

    fn lookup(&self, id: &Hash32) -> Option<&Vertex> {
        self.by_id.get(id).map(|i| self.vertex(*i))
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

    /// Whether a vertex with this id is held.
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

    /// Rounds below this are pruned: an anchor whose parents reach no
    /// higher than `floor + G` is ancient and refused.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Whether an anchor claiming `birth_round` is ancient here: its window
    /// would reach below the rounds held (DESIGN §4 "ancient").
    pub fn is_ancient(&self, birth_round: u64) -> bool {
        self.floor > 0 && birth_round.saturating_sub(1 + self.config.window) < self.floor
    }

    /// Per seat, the id of its held anchor with the highest seq (the
    /// lowest id on a tie), in seat order: what a node announces so that
    /// peers missing them pull them.
    pub fn tips(&self) -> Vec<Hash32> {
        self.by_seat
            .iter()
            .filter_map(|chain| chain.last_key_value())
            .filter_map(|(_, at_seq)| at_seq.iter().map(|i| self.vertex(*i).id).min())
            .collect()
    }

    /// The parameters.
    pub fn config(&self) -> ConsensusConfig {
        self.config
    }

    /// The non-ancient window `G`.
    pub fn window(&self) -> u64 {
        self.config.window
    }

    /// The supermajority `q` of the committee.
    pub fn supermajority(&self) -> usize {
        self.config.q()
    }

    /// Anchors dropped as stale: never received, and now below the drag
    /// bound (`round - 2G - 1`) of every round still to be decided, so no
    /// round can receive them any more.
    pub fn stale_count(&self) -> u64 {
        self.stale
    }

    /// Anchors received by dragging: below the window of the round that
    /// received them, as unreceived ancestors of an anchor it received.
    pub fn dragged_count(&self) -> u64 {
        self.dragged
    }

    /// Number of vertices held.
    pub fn len(&self) -> usize {
        self.vertices.len()
    }

    /// Whether no vertex is held.
    pub fn is_empty(&self) -> bool {
        self.vertices.is_empty()
    }
}

impl Consensus {
    /// The DAG as a snapshot section (DESIGN §6.1, the node's own
    /// encoding). Taken between inputs: no finalized round is waiting.
    ///
    /// # Panics
    /// If finalized rounds were not polled first.
    #[must_use]
    pub fn to_image(&self) -> crate::snapshot::ConsensusImage {
        use crate::snapshot::{ConsensusImage, VertexImage};
        assert!(
            self.finalized.is_empty(),
            "a snapshot is taken once finalized rounds are polled"
        );
        let vertices = self
            .vertices
            .iter()
            .map(|v| VertexImage {
                id: v.id,
                creator: v.creator,
                seq: v.seq,
                coin: v.coin,
                self_parent: v.self_parent,
                skips: v.skips.clone(),
                parents: v.parents.clone(),
                round: v.round,
                witness: v.witness,
                fork_mask: v.fork_mask,
                fork_rounds: v.fork_rounds.clone(),
                last_ancestor: v.last_ancestor.to_vec(),
                multi_tops: v.multi_tops.clone(),
                strongly_seen_previous: v.strongly_seen_previous.clone(),
                fame: v.fame,
            })
            .collect();
        let mut votes: Vec<(u64, crate::snapshot::VotesImage)> = self
            .votes
            .iter()
            .map(|(candidate, voters)| {
                let mut voters: crate::snapshot::VotesImage = voters
                    .iter()
                    .map(|(voter, vote)| (*voter, vote.yes, vote.decides))
                    .collect();
                voters.sort_unstable();
                (*candidate, voters)
            })
            .collect();
        votes.sort_unstable_by_key(|(candidate, _)| *candidate);
        ConsensusImage {
            pruned: self.pruned,
            floor: self.floor,
            vertices,
            by_seat: self
                .by_seat
                .iter()
                .map(|seat| seat.iter().map(|(seq, v)| (*seq, v.clone())).collect())
                .collect(),
            walk_seats: self.walk_seats,
            started_seats: self.started_seats,
            witnesses: self
                .witnesses
                .iter()
                .map(|(round, ws)| (*round, ws.clone()))
                .collect(),
            votes,
            next_undecided_round: self.next_undecided_round,
            unreceived: self.unreceived.clone(),
            next_global_index: self.next_global_index,
            coin_stats: (self.coin_stats.coin_round_votes, self.coin_stats.coin_flips),
            stale: self.stale,
            dragged: self.dragged,
        }
    }

    /// The DAG of a snapshot section, every index and length checked.
    pub fn from_image(
        config: ConsensusConfig,
        image: crate::snapshot::ConsensusImage,
    ) -> Result<Consensus, String> {
        let mut consensus = Consensus::new(config);
        let k = config.k;
        let low = image.pruned;
        let high = image
            .pruned
            .checked_add(image.vertices.len() as u64)
            .ok_or("arena index overflow")?;
        // Indices below `low` name pruned vertices: the live arena keeps
        // such references too, and every lookup checks against `pruned`.
        let held = |idx: u64| idx < high;
        let held_or_none = |idx: u64| idx == NONE || held(idx);
        let all_held = |ids: &[u64]| ids.iter().all(|i| held(*i));
        let mut vertices = VecDeque::with_capacity(image.vertices.len());
        for (offset, v) in image.vertices.into_iter().enumerate() {
            let this = low + offset as u64;
            let before = |idx: &u64| *idx < this;
            let ok = usize::from(v.creator) < k
                && held_or_none(v.self_parent)
                && (v.self_parent == NONE || v.self_parent < this)
                && all_held(&v.skips)
                && v.skips.iter().all(before)
                && all_held(&v.parents)
                && v.parents.iter().all(before)
                && v.last_ancestor.len() == k
                && v.last_ancestor.iter().all(|i| held_or_none(*i))
                && v.fork_rounds.iter().all(|(seat, _)| usize::from(*seat) < k)
                && v.multi_tops
                    .iter()
                    .all(|(seat, i)| usize::from(*seat) < k && held(*i))
                && all_held(&v.strongly_seen_previous);
            if !ok {
                return Err(format!("vertex {this}: an index or seat out of range"));
            }
            if consensus.by_id.insert(v.id, this).is_some() {
                return Err(format!("vertex {this}: duplicate id"));
            }
            vertices.push_back(Vertex {
                id: v.id,
                creator: v.creator,
                seq: v.seq,
                coin: v.coin,
                self_parent: v.self_parent,
                skips: v.skips,
                parents: v.parents,
                round: v.round,
                witness: v.witness,
                fork_mask: v.fork_mask,
                fork_rounds: v.fork_rounds,
                last_ancestor: v.last_ancestor.into_boxed_slice(),
                multi_tops: v.multi_tops,
                strongly_seen_previous: v.strongly_seen_previous,
                fame: v.fame,
            });
        }
        if image.by_seat.len() != k {
            return Err(format!("{} seat chains for k = {k}", image.by_seat.len()));
        }
        for (seat, chain) in image.by_seat.into_iter().enumerate() {
            for (seq, ids) in chain {
                if !all_held(&ids) {
                    return Err(format!("seat {seat} seq {seq}: index out of range"));
                }
                consensus.by_seat[seat].insert(seq, ids);
            }
        }
        for (round, ws) in image.witnesses {
            if !all_held(&ws) {
                return Err(format!("witnesses of round {round}: index out of range"));
            }
            consensus.witnesses.insert(round, ws);
        }
        for (candidate, voters) in image.votes {
            if !held(candidate) || !voters.iter().all(|(voter, _, _)| held(*voter)) {
                return Err(format!("votes on {candidate}: index out of range"));
            }
            consensus.votes.insert(
                candidate,
                voters
                    .into_iter()
                    .map(|(voter, yes, decides)| (voter, Vote { yes, decides }))
                    .collect(),
            );
        }
        if !all_held(&image.unreceived) {
            return Err("unreceived: index out of range".to_string());
        }
        consensus.vertices = vertices;
        consensus.pruned = image.pruned;
        consensus.floor = image.floor;
        consensus.walk_seats = image.walk_seats;
        consensus.started_seats = image.started_seats;
        consensus.next_undecided_round = image.next_undecided_round;
        consensus.unreceived = image.unreceived;
        consensus.next_global_index = image.next_global_index;
        consensus.coin_stats = CoinStats {
            coin_round_votes: image.coin_stats.0,
            coin_flips: image.coin_stats.1,
        };
        consensus.stale = image.stale;
        consensus.dragged = image.dragged;
        Ok(consensus)
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
            window: 26,
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
            window: 26,
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
            window: 26,
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
