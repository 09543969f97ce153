//! The naive reference implementation ("oracle") of the consensus of
//! DESIGN §4, written for clarity, not speed: every vertex keeps its explicit
//! ancestor set and every definition is evaluated literally over those sets.
//! The fast implementation is tested against it on random DAGs.
//!
//! Everything that depends only on a vertex's ancestry (round, witness, who
//! it sees and strongly sees) is computed once, at insertion, because the
//! ancestry of a vertex never changes afterwards. Fame is re-derived from
//! scratch after every insertion for every witness of a round not yet
//! decided; decided rounds (their fame, unique famous witnesses and
//! finalized anchors) are frozen, because a round-r witness inserted after
//! round r was decided is not famous and must not change the decision.
//!
//! Only ordered collections (`Vec`, `BTreeMap`, `BTreeSet`) are used, so no
//! hash-map iteration order can reach a result.

use std::collections::{BTreeMap, BTreeSet};

use pc_codec::ids::whiten;
use pc_codec::Hash32;

use crate::vertex::{FinalizedAnchor, FinalizedRound, VertexSpec};

/// The consensus parameters the oracle needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OracleConfig {
    /// Committee seats of the shard, `1 <= k <= 64`.
    pub k: usize,
    /// The coin-round period `C` of the fame vote, `>= 1`.
    pub coin_round_period: u64,
    /// The non-ancient window `G` in rounds.
    pub window: u64,
}

/// One inserted vertex and everything derived from its ancestry alone.
#[derive(Debug, Clone)]
struct OracleVertex {
    spec: VertexSpec,
    /// Dense indexes of the parents, in the order of `spec.parents`.
    parents: Vec<usize>,
    /// Dense indexes of every `y <= x`, including the vertex itself.
    ancestors: BTreeSet<usize>,
    /// The lowest round of the vertex's window: `max parent round - G`.
    window: u64,
    /// Creators with a fork in the window: two of their vertices among
    /// `ancestors`, both of round `>= window`, neither on the other's
    /// self-parent chain.
    forked_creators: BTreeSet<u8>,
    round: u64,
    is_witness: bool,
    /// For a witness of round >= 1: the witnesses of the previous round it
    /// strongly sees (at most one per seat), in insertion order.
    strongly_seen_previous_round_witnesses: Vec<usize>,
}

/// The naive reference implementation of DESIGN §4 consensus.
#[derive(Debug, Clone)]
pub struct Oracle {
    config: OracleConfig,
    /// `q = k - floor((k - 1) / 3)`.
    supermajority: usize,
    /// Every vertex, in insertion order; the position is the dense index.
    vertices: Vec<OracleVertex>,
    index_by_id: BTreeMap<Hash32, usize>,
    /// Per vertex: the decided fame of a witness, `None` while undecided and
    /// for non-witnesses.
    fame: Vec<Option<bool>>,
    /// Per vertex: whether some finalized round already received it.
    received: Vec<bool>,
    /// Decided rounds `0..finalized.len()`, in order.
    finalized: Vec<FinalizedRound>,
    /// Anchors finalized so far, the next global index.
    finalized_anchor_count: u64,
}

impl Oracle {
    /// Creates an oracle over an empty DAG.
    ///
    /// Panics unless `1 <= k <= 64` and `coin_round_period >= 1`.
    pub fn new(config: OracleConfig) -> Self {
        assert!(
            (1..=64).contains(&config.k),
            "k must be in 1..=64, got {}",
            config.k
        );
        assert!(
            config.coin_round_period >= 1,
            "the coin-round period must be at least 1"
        );
        let supermajority = config.k - (config.k - 1) / 3;
        Oracle {
            config,
            supermajority,
            vertices: Vec::new(),
            index_by_id: BTreeMap::new(),
            fame: Vec::new(),
            received: Vec::new(),
            finalized: Vec::new(),
            finalized_anchor_count: 0,
        }
    }

    /// Inserts the next vertex and re-derives fame and finality.
    ///
    /// Panics on an input that is not a valid DAG extension: a duplicate id,
    /// a creator `>= k`, a parent not inserted yet, or a self-parent rule
    /// broken (`seq = 0` has no parent by its creator; otherwise `parents[0]`
    /// is by the same creator at `seq - 1` and no other parent is by it).
    pub fn insert(&mut self, vertex: VertexSpec) {
        assert!(
            !self.index_by_id.contains_key(&vertex.id),
            "vertex {} inserted twice",
            pc_codec::to_hex(&vertex.id)
        );
        assert!(
            usize::from(vertex.creator) < self.config.k,
            "creator {} out of range for k = {}",
            vertex.creator,
            self.config.k
        );
        let parents: Vec<usize> = vertex
            .parents
            .iter()
            .map(|parent| {
                *self.index_by_id.get(parent).unwrap_or_else(|| {
                    panic!(
                        "parent {} of {} is not inserted",
                        pc_codec::to_hex(parent),
                        pc_codec::to_hex(&vertex.id)
                    )
                })
            })
            .collect();
        self.assert_self_parent_rule(&vertex, &parents);

        let index = self.vertices.len();
        let mut ancestors = BTreeSet::from([index]);
        for &parent in &parents {
            ancestors.extend(self.vertices[parent].ancestors.iter().copied());
        }
        let window = parents
            .iter()
            .map(|&p| self.vertices[p].round)
            .max()
            .unwrap_or(0)
            .saturating_sub(self.config.window);
        let forked_creators = self.forked_creators_among(&ancestors, &vertex, &parents, window);
        self.index_by_id.insert(vertex.id, index);
        // The round and witness flag are placeholders until computed below;
        // they are not read before then because the new vertex is excluded
        // from every "round-r witness" scan by `index < new index`.
        self.vertices.push(OracleVertex {
            spec: vertex,
            parents,
            ancestors,
            window,
            forked_creators,
            round: 0,
            is_witness: false,
            strongly_seen_previous_round_witnesses: Vec::new(),
        });

        let round = self.compute_round(index);
        let is_witness = match self.self_parent(index) {
            None => true,
            Some(self_parent) => round > self.vertices[self_parent].round,
        };
        let strongly_seen_previous_round_witnesses = if is_witness && round >= 1 {
            let previous = self.strongly_seen_witnesses_of_round(index, round - 1);
            self.assert_one_per_seat(index, &previous);
            previous
        } else {
            Vec::new()
        };
        let vertex = &mut self.vertices[index];
        vertex.round = round;
        vertex.is_witness = is_witness;
        vertex.strongly_seen_previous_round_witnesses = strongly_seen_previous_round_witnesses;

        // The late-witness rule: a witness of an already decided round is
        // not famous and leaves the decided round untouched.
        let late_witness = is_witness && round < self.decided_round_count();
        self.fame
            .push(if late_witness { Some(false) } else { None });
        self.received.push(false);

        self.rederive();
    }

    /// The round of a vertex, `None` if it is unknown.
    pub fn round(&self, id: &Hash32) -> Option<u64> {
        self.index_of(id).map(|index| self.vertices[index].round)
    }

    /// Whether a vertex is a witness, `None` if it is unknown.
    pub fn is_witness(&self, id: &Hash32) -> Option<bool> {
        self.index_of(id)
            .map(|index| self.vertices[index].is_witness)
    }

    /// The decided fame of a witness; `None` while undecided, for a
    /// non-witness and for an unknown id.
    pub fn fame(&self, id: &Hash32) -> Option<bool> {
        self.index_of(id).and_then(|index| self.fame[index])
    }

    /// All rounds finalized so far, in order from round 0.
    pub fn finalized(&self) -> &[FinalizedRound] {
        &self.finalized
    }

    fn index_of(&self, id: &Hash32) -> Option<usize> {
        self.index_by_id.get(id).copied()
    }

    fn decided_round_count(&self) -> u64 {
        u64::try_from(self.finalized.len()).expect("round count fits in u64")
    }

    fn creator(&self, index: usize) -> u8 {
        self.vertices[index].spec.creator
    }

    /// The self-parent: `parents[0]` when it is by the same creator (at
    /// seq 0, and for a chain cut where the self-parent was ancient and left
    /// out, there is none).
    fn self_parent(&self, index: usize) -> Option<usize> {
        let vertex = &self.vertices[index];
        vertex
            .parents
            .first()
            .copied()
            .filter(|&p| self.vertices[p].spec.creator == vertex.spec.creator)
    }

    /// Whether `lower` is `top` or on `top`'s self-parent chain.
    fn on_chain(&self, lower: usize, top: usize) -> bool {
        let mut at = Some(top);
        while let Some(vertex) = at {
            if vertex == lower {
                return true;
            }
            at = self.self_parent(vertex);
        }
        false
    }

    fn assert_self_parent_rule(&self, vertex: &VertexSpec, parents: &[usize]) {
        let id = pc_codec::to_hex(&vertex.id);
        let cut = parents
            .first()
            .is_none_or(|&p| self.vertices[p].spec.creator != vertex.creator);
        let other_parents = if vertex.seq == 0 || cut {
            parents
        } else {
            let self_parent = parents
                .first()
                .map(|&parent| &self.vertices[parent].spec)
                .unwrap_or_else(|| panic!("vertex {id} at seq {} has no parents", vertex.seq));
            assert!(
                self_parent.creator == vertex.creator && self_parent.seq + 1 == vertex.seq,
                "parents[0] of {id} (creator {}, seq {}) is not its self-parent \
                 (creator {}, seq {})",
                self_parent.creator,
                self_parent.seq,
                vertex.creator,
                vertex.seq - 1
            );
            &parents[1..]
        };
        assert!(
            other_parents
                .iter()
                .all(|&parent| self.vertices[parent].spec.creator != vertex.creator),
            "vertex {id} has a parent by its own creator other than its self-parent"
        );
    }

    /// The creators with a fork in the window among `ancestors`: two
    /// vertices of one creator, both of round `>= window`, neither on the
    /// other's self-parent chain (`new_vertex` is among `ancestors` under
    /// the next dense index but not yet in `vertices`; its round is at least
    /// its parents', so it is in the window).
    fn forked_creators_among(
        &self,
        ancestors: &BTreeSet<usize>,
        new_vertex: &VertexSpec,
        new_parents: &[usize],
        window: u64,
    ) -> BTreeSet<u8> {
        let new_index = self.vertices.len();
        let new_self_parent = new_parents
            .first()
            .copied()
            .filter(|&p| self.vertices[p].spec.creator == new_vertex.creator);
        let mut by_creator: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
        for &ancestor in ancestors {
            if ancestor == new_index {
                by_creator
                    .entry(new_vertex.creator)
                    .or_default()
                    .push(ancestor);
            } else if self.vertices[ancestor].round >= window {
                by_creator
                    .entry(self.vertices[ancestor].spec.creator)
                    .or_default()
                    .push(ancestor);
            }
        }
        // Chain order, with the new vertex above its self-parent's chain.
        let on_chain = |lower: usize, top: usize| {
            if top == new_index {
                lower == new_index || new_self_parent.is_some_and(|sp| self.on_chain(lower, sp))
            } else {
                lower != new_index && self.on_chain(lower, top)
            }
        };
        by_creator
            .into_iter()
            .filter(|(_, members)| {
                members.iter().enumerate().any(|(i, &a)| {
                    members[i + 1..]
                        .iter()
                        .any(|&b| !on_chain(a, b) && !on_chain(b, a))
                })
            })
            .map(|(creator, _)| creator)
            .collect()
    }

    /// x sees y: `y <= x` and no fork by `creator(y)` is among x's ancestors.
    fn sees(&self, x: usize, y: usize) -> bool {
        let vertex = &self.vertices[x];
        vertex.ancestors.contains(&y) && !vertex.forked_creators.contains(&self.creator(y))
    }

    /// x strongly sees y: x sees y, and for at least `q` seats not forked
    /// in x's window, the seat's highest vertex among x's ancestors in the
    /// window (x itself for x's seat) sees y.
    fn strongly_sees(&self, x: usize, y: usize) -> bool {
        if !self.sees(x, y) {
            return false;
        }
        let vertex = &self.vertices[x];
        let mut tops: BTreeMap<u8, usize> = BTreeMap::new();
        for &z in &vertex.ancestors {
            let creator = self.creator(z);
            let in_window = z == x || self.vertices[z].round >= vertex.window;
            if !in_window || vertex.forked_creators.contains(&creator) {
                continue;
            }
            let top = tops.entry(creator).or_insert(z);
            if self.vertices[z].spec.seq > self.vertices[*top].spec.seq {
                *top = z;
            }
        }
        let seats = tops.values().filter(|&&top| self.sees(top, y)).count();
        seats >= self.supermajority
    }

    /// The witnesses of `round` inserted before `x` that `x` strongly sees,
    /// in insertion order. Only vertices before `x` can be its ancestors.
    fn strongly_seen_witnesses_of_round(&self, x: usize, round: u64) -> Vec<usize> {
        (0..x)
            .filter(|&w| {
                let witness = &self.vertices[w];
                witness.is_witness && witness.round == round && self.strongly_sees(x, w)
            })
            .collect()
    }

    fn distinct_seats(&self, indexes: &[usize]) -> usize {
        indexes
            .iter()
            .map(|&index| self.creator(index))
            .collect::<BTreeSet<u8>>()
            .len()
    }

    /// Two witnesses of one seat and one round are never ancestors of each
    /// other, so with valid self-parent chains they imply a fork and no
    /// vertex sees both: "one per seat" holds by construction.
    fn assert_one_per_seat(&self, x: usize, witnesses: &[usize]) {
        assert_eq!(
            self.distinct_seats(witnesses),
            witnesses.len(),
            "vertex {} strongly sees two witnesses of one seat in one round",
            pc_codec::to_hex(&self.vertices[x].spec.id)
        );
    }

    /// round(x): `r` = max round of the parents (0 without parents); `r + 1`
    /// if x strongly sees round-r witnesses of at least `q` seats, else `r`.
    fn compute_round(&self, x: usize) -> u64 {
        let parents = &self.vertices[x].parents;
        let Some(parent_round) = parents.iter().map(|&p| self.vertices[p].round).max() else {
            return 0;
        };
        let strongly_seen = self.strongly_seen_witnesses_of_round(x, parent_round);
        if self.distinct_seats(&strongly_seen) >= self.supermajority {
            parent_round + 1
        } else {
            parent_round
        }
    }

    /// Re-derives, from scratch, the fame of every witness of a round not
    /// yet decided, then decides and finalizes rounds strictly in order.
    fn rederive(&mut self) {
        let first_undecided_round = self.decided_round_count();
        let mut voters: Vec<usize> = (0..self.vertices.len())
            .filter(|&index| self.vertices[index].is_witness)
            .collect();
        voters.sort_by_key(|&index| (self.vertices[index].round, index));
        for &witness in &voters {
            if self.vertices[witness].round >= first_undecided_round {
                self.fame[witness] = self.decide_fame(witness, &voters);
            }
        }
        while self.try_finalize_next_round() {}
    }

    /// The fame of witness `x` from the virtual votes of every witness of a
    /// higher round; `voters` are all witnesses by (round, insertion order).
    /// The first deciding voter in that order decides; every later deciding
    /// voter must agree.
    fn decide_fame(&self, x: usize, voters: &[usize]) -> Option<bool> {
        let x_round = self.vertices[x].round;
        let mut votes: BTreeMap<usize, bool> = BTreeMap::new();
        let mut decision: Option<bool> = None;
        for &y in voters {
            let y_vertex = &self.vertices[y];
            if y_vertex.round <= x_round {
                continue;
            }
            let distance = y_vertex.round - x_round;
            let vote = if distance == 1 {
                self.sees(y, x)
            } else {
                // Every witness y strongly sees in round(y) - 1 > round(x)
                // comes earlier in `voters`, so its vote is already cast.
                let previous = &y_vertex.strongly_seen_previous_round_witnesses;
                let yes = previous.iter().filter(|w| votes[w]).count();
                let no = previous.len() - yes;
                let majority = yes >= no;
                let agreeing = if majority { yes } else { no };
                let supermajority = agreeing >= self.supermajority;
                if !distance.is_multiple_of(self.config.coin_round_period) {
                    if supermajority {
                        assert!(
                            decision.is_none_or(|decided| decided == majority),
                            "voters disagree on the fame of {}",
                            pc_codec::to_hex(&self.vertices[x].spec.id)
                        );
                        decision = Some(majority);
                    }
                    majority
                } else if supermajority {
                    majority
                } else {
                    y_vertex.spec.coin
                }
            };
            votes.insert(y, vote);
        }
        decision
    }

    /// Decides and finalizes the lowest undecided round if it has witnesses
    /// and all of them have decided fame. Returns whether it did.
    fn try_finalize_next_round(&mut self) -> bool {
        let round = self.decided_round_count();
        let witnesses: Vec<usize> = (0..self.vertices.len())
            .filter(|&index| self.vertices[index].is_witness && self.vertices[index].round == round)
            .collect();
        if witnesses.is_empty() || witnesses.iter().any(|&w| self.fame[w].is_none()) {
            return false;
        }

        let famous: Vec<usize> = witnesses
            .into_iter()
            .filter(|&w| self.fame[w] == Some(true))
            .collect();
        let mut famous_count_by_seat: BTreeMap<u8, usize> = BTreeMap::new();
        for &w in &famous {
            *famous_count_by_seat.entry(self.creator(w)).or_insert(0) += 1;
        }
        let mut unique_famous: Vec<usize> = famous
            .into_iter()
            .filter(|&w| famous_count_by_seat[&self.creator(w)] == 1)
            .collect();
        unique_famous.sort_by_key(|&w| self.vertices[w].spec.id);
        assert!(
            !unique_famous.is_empty(),
            "decided round {round} has no unique famous witness"
        );

        let anchors = self.receive_and_order(&unique_famous);
        self.finalized.push(FinalizedRound {
            round,
            unique_famous_witnesses: unique_famous
                .iter()
                .map(|&w| self.vertices[w].spec.id)
                .collect(),
            anchors,
        });
        true
    }

    /// Marks as received, and returns in total order (layer, whitened id,
    /// id) with consecutive global indexes, every vertex not received yet
    /// that is either
    /// * in `S`: of round `> R - G` and an ancestor of every unique famous
    ///   witness (a vertex `G` or more rounds below `R` is not received
    ///   directly), or
    /// * dragged: of round `>= R - 2G - 1` and an ancestor of a vertex of
    ///   `S`, so that a received vertex's ancestors are finalized before or
    ///   with it; below that bound it stays unreceived for ever.
    fn receive_and_order(&mut self, unique_famous: &[usize]) -> Vec<FinalizedAnchor> {
        let mut ufw_xor: Hash32 = [0; 32];
        for &w in unique_famous {
            for (byte, id_byte) in ufw_xor.iter_mut().zip(self.vertices[w].spec.id) {
                *byte ^= id_byte;
            }
        }

        let round = self.decided_round_count();
        let direct: Vec<usize> = (0..self.vertices.len())
            .filter(|&index| {
                !self.received[index]
                    && self.vertices[index].round + self.config.window > round
                    && unique_famous
                        .iter()
                        .all(|&w| self.vertices[w].ancestors.contains(&index))
            })
            .collect();
        let drag_bound = round.saturating_sub(2 * self.config.window + 1);
        let received_now: Vec<usize> = (0..self.vertices.len())
            .filter(|&index| {
                !self.received[index]
                    && (direct.binary_search(&index).is_ok()
                        || (self.vertices[index].round >= drag_bound
                            && direct
                                .iter()
                                .any(|&x| self.vertices[x].ancestors.contains(&index))))
            })
            .collect();

        // Increasing dense index is a topological order: parents first.
        let mut layer_by_index: BTreeMap<usize, u64> = BTreeMap::new();
        for index in received_now {
            let layer = self.vertices[index]
                .parents
                .iter()
                .filter_map(|parent| layer_by_index.get(parent))
                .max()
                .map_or(0, |&max_parent_layer| max_parent_layer + 1);
            layer_by_index.insert(index, layer);
        }

        let mut order: Vec<(u64, Hash32, Hash32)> = layer_by_index
            .iter()
            .map(|(&index, &layer)| {
                let id = self.vertices[index].spec.id;
                (layer, whiten(&id, &ufw_xor), id)
            })
            .collect();
        order.sort();
        for &index in layer_by_index.keys() {
            self.received[index] = true;
        }

        order
            .into_iter()
            .map(|(_, _, id)| {
                let global_index = self.finalized_anchor_count;
                self.finalized_anchor_count += 1;
                let ack_distances = self.ack_distances(self.index_by_id[&id], unique_famous);
                FinalizedAnchor {
                    id,
                    global_index,
                    ack_distances,
                }
            })
            .collect()
    }

    /// Per seat c: among the vertices of c that are (ancestors of) a unique
    /// famous witness and see x, the least round; d_c = that - round(x) + 1.
    fn ack_distances(&self, x: usize, unique_famous: &[usize]) -> Vec<Option<u64>> {
        let round_x = self.vertices[x].round;
        (0..self.config.k)
            .map(|seat| {
                (0..self.vertices.len())
                    .filter(|&z| usize::from(self.creator(z)) == seat)
                    .filter(|&z| {
                        unique_famous
                            .iter()
                            .any(|&u| self.vertices[u].ancestors.contains(&z))
                    })
                    .filter(|&z| self.sees(z, x))
                    .map(|z| self.vertices[z].round - round_x + 1)
                    .min()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(creator: u8, seq: u64, variant: u8) -> Hash32 {
        let mut id = [0; 32];
        id[0] = creator;
        id[1..9].copy_from_slice(&seq.to_le_bytes());
        id[9] = variant;
        id
    }

    fn vertex(creator: u8, seq: u64, variant: u8, parents: Vec<Hash32>) -> VertexSpec {
        VertexSpec {
            id: id(creator, seq, variant),
            creator,
            seq,
            parents,
            coin: false,
        }
    }

    fn oracle(k: usize, coin_round_period: u64) -> Oracle {
        Oracle::new(OracleConfig {
            k,
            coin_round_period,
            window: 26,
        })
    }

    fn chain_vertex(seq: u64) -> VertexSpec {
        let parents = if seq == 0 {
            Vec::new()
        } else {
            vec![id(0, seq - 1, 0)]
        };
        vertex(0, seq, 0, parents)
    }

    /// With k = 1 (q = 1) every vertex of the single creator's chain is the
    /// witness of its own round; round r is decided by the round r + 2
    /// vertex, or by the round r + 3 vertex when d = 2 is a coin round.
    fn check_single_seat_chain(coin_round_period: u64, rounds_to_decide: u64) {
        let mut oracle = oracle(1, coin_round_period);
        for seq in 0..12 {
            oracle.insert(chain_vertex(seq));
            let decided = (seq + 1).saturating_sub(rounds_to_decide);
            assert_eq!(oracle.finalized().len() as u64, decided, "after seq {seq}");
            for earlier in 0..=seq {
                let earlier_id = id(0, earlier, 0);
                assert_eq!(oracle.round(&earlier_id), Some(earlier));
                assert_eq!(oracle.is_witness(&earlier_id), Some(true));
                let expected_fame = (earlier < decided).then_some(true);
                assert_eq!(oracle.fame(&earlier_id), expected_fame, "seq {earlier}");
            }
        }
        for (round, finalized) in (0u64..).zip(oracle.finalized()) {
            assert_eq!(
                finalized,
                &FinalizedRound {
                    round,
                    unique_famous_witnesses: vec![id(0, round, 0)],
                    anchors: vec![FinalizedAnchor {
                        id: id(0, round, 0),
                        global_index: round,
                        ack_distances: vec![Some(1)],
                    }],
                }
            );
        }
    }

    #[test]
    fn single_seat_chain_advances_a_round_per_vertex_and_finalizes_after_two_rounds() {
        check_single_seat_chain(10, 2);
    }

    #[test]
    fn single_seat_chain_with_coin_round_at_distance_two_finalizes_after_three_rounds() {
        check_single_seat_chain(2, 3);
    }

    /// Layer `layer` of a full mesh: creator c at seq `layer`, parents its own
    /// previous vertex and the previous layer's vertices of all other seats.
    fn mesh_vertex(k: u8, layer: u64, creator: u8) -> VertexSpec {
        let parents = if layer == 0 {
            Vec::new()
        } else {
            std::iter::once(creator)
                .chain((0..k).filter(|&other| other != creator))
                .map(|parent_creator| id(parent_creator, layer - 1, 0))
                .collect()
        };
        vertex(creator, layer, 0, parents)
    }

    fn mesh(creator_order: &[u8], layers: u64) -> Oracle {
        let k = u8::try_from(creator_order.len()).unwrap();
        let mut oracle = oracle(creator_order.len(), 10);
        for layer in 0..layers {
            for &creator in creator_order {
                oracle.insert(mesh_vertex(k, layer, creator));
            }
        }
        oracle
    }

    /// The expected round `round >= 1` of a k = 4 full mesh: it receives
    /// layers 2r - 2 (layer 0 in the round) and 2r - 1 (layer 1), each
    /// sorted by whitened id under the XOR of layer 2r's ids.
    fn expected_mesh_round(round: u64, first_global_index: u64) -> FinalizedRound {
        let ufw: Vec<Hash32> = (0..4).map(|c| id(c, 2 * round, 0)).collect();
        let mut ufw_xor = [0; 32];
        for ufw_id in &ufw {
            for (byte, id_byte) in ufw_xor.iter_mut().zip(ufw_id) {
                *byte ^= id_byte;
            }
        }
        // Ack distances: every seat acknowledges a layer-(2r-2) anchor in
        // layer 2r-1, still in its round (d = 1); a layer-(2r-1) anchor is
        // acknowledged by its creator at once (d = 1) and by the others in
        // layer 2r, one round later (d = 2).
        let mut anchors = Vec::new();
        for (dag_layer, other_seats_distance) in [(2 * round - 2, 1), (2 * round - 1, 2)] {
            let mut ids: Vec<(Hash32, u8)> = (0..4).map(|c| (id(c, dag_layer, 0), c)).collect();
            ids.sort_by_key(|(anchor_id, _)| (whiten(anchor_id, &ufw_xor), *anchor_id));
            anchors.extend(ids.into_iter().map(|(anchor_id, creator)| {
                let distances = (0..4u8)
                    .map(|seat| {
                        Some(if seat == creator {
                            1
                        } else {
                            other_seats_distance
                        })
                    })
                    .collect::<Vec<_>>();
                (anchor_id, distances)
            }));
        }
        FinalizedRound {
            round,
            unique_famous_witnesses: ufw,
            anchors: (first_global_index..)
                .zip(anchors)
                .map(|(global_index, (id, ack_distances))| FinalizedAnchor {
                    id,
                    global_index,
                    ack_distances,
                })
                .collect(),
        }
    }

    #[test]
    fn full_mesh_of_four_seats_advances_a_round_every_two_layers() {
        let mut oracle = oracle(4, 10);
        for layer in 0..14 {
            for creator in 0..4 {
                oracle.insert(mesh_vertex(4, layer, creator));
                let vertex_id = id(creator, layer, 0);
                // Layer 2r + 1 strongly sees layer 2r only through the two
                // endpoints' seats (2 < q = 3); layer 2r + 2 through all four.
                assert_eq!(oracle.round(&vertex_id), Some(layer / 2));
                assert_eq!(oracle.is_witness(&vertex_id), Some(layer % 2 == 0));
                // Round r is decided by the first vertex of layer 2r + 4.
                let decided = (layer / 2).saturating_sub(1);
                assert_eq!(oracle.finalized().len() as u64, decided);
            }
        }
        for layer in 0..14 {
            let expected = (layer % 2 == 0 && layer / 2 < 5).then_some(true);
            for creator in 0..4 {
                assert_eq!(oracle.fame(&id(creator, layer, 0)), expected);
            }
        }
        let finalized = oracle.finalized();
        let mut round_zero_ufw: Vec<Hash32> = (0..4).map(|c| id(c, 0, 0)).collect();
        round_zero_ufw.sort();
        assert_eq!(
            finalized[0],
            FinalizedRound {
                round: 0,
                unique_famous_witnesses: round_zero_ufw,
                anchors: Vec::new(),
            },
            "no vertex is an ancestor of all four round-0 witnesses"
        );
        assert_eq!(finalized.len(), 5);
        for round in 1..5 {
            let expected = expected_mesh_round(round, 8 * (round - 1));
            assert_eq!(finalized[usize::try_from(round).unwrap()], expected);
        }
    }

    #[test]
    fn full_mesh_result_does_not_depend_on_insertion_order_within_a_layer() {
        let forward = mesh(&[0, 1, 2, 3], 12);
        let backward = mesh(&[3, 1, 0, 2], 12);
        assert_eq!(forward.finalized(), backward.finalized());
        assert_eq!(forward.finalized().len(), 4);
    }

    #[test]
    fn vertex_with_both_fork_siblings_in_its_ancestry_sees_neither() {
        let mut oracle = oracle(4, 10);
        let fork_a = vertex(0, 0, 0, Vec::new());
        let fork_b = vertex(0, 0, 1, Vec::new());
        oracle.insert(fork_a.clone());
        oracle.insert(fork_b.clone());
        oracle.insert(vertex(1, 0, 0, vec![fork_a.id]));
        oracle.insert(vertex(2, 0, 0, vec![fork_b.id]));
        oracle.insert(vertex(3, 0, 0, vec![id(1, 0, 0), id(2, 0, 0)]));
        let index = |vertex_id: &Hash32| oracle.index_of(vertex_id).unwrap();
        let (a, b) = (index(&fork_a.id), index(&fork_b.id));
        let (c1, c2, c3) = (
            index(&id(1, 0, 0)),
            index(&id(2, 0, 0)),
            index(&id(3, 0, 0)),
        );
        assert!(oracle.sees(c1, a));
        assert!(!oracle.sees(c1, b));
        assert!(oracle.sees(c2, b));
        assert!(!oracle.sees(c3, a));
        assert!(!oracle.sees(c3, b));
        assert!(oracle.sees(c3, c1));
        assert!(oracle.sees(c3, c2));
        assert!(oracle.sees(c3, c3));
        assert_eq!(oracle.vertices[c3].forked_creators, BTreeSet::from([0]));
    }

    #[test]
    fn fork_sibling_that_is_an_ancestor_is_still_a_fork() {
        // a1 <= a1' although both are creator 0 at seq 1: the pair is
        // comparable, yet it is a fork, so a1' sees no vertex of creator 0,
        // not even itself.
        let mut oracle = oracle(2, 10);
        oracle.insert(vertex(0, 0, 0, Vec::new()));
        oracle.insert(vertex(0, 1, 0, vec![id(0, 0, 0)]));
        oracle.insert(vertex(1, 0, 0, vec![id(0, 1, 0)]));
        oracle.insert(vertex(0, 1, 1, vec![id(0, 0, 0), id(1, 0, 0)]));
        let index = |vertex_id: &Hash32| oracle.index_of(vertex_id).unwrap();
        let a0 = index(&id(0, 0, 0));
        let a1 = index(&id(0, 1, 0));
        let b0 = index(&id(1, 0, 0));
        let a1_fork = index(&id(0, 1, 1));
        assert!(oracle.vertices[a1_fork].ancestors.contains(&a1));
        assert!(oracle.sees(b0, a1));
        assert!(oracle.sees(a1_fork, b0));
        assert!(!oracle.sees(a1_fork, a0));
        assert!(!oracle.sees(a1_fork, a1));
        assert!(!oracle.sees(a1_fork, a1_fork));
    }

    #[test]
    fn late_witness_of_a_decided_round_is_not_famous_and_changes_nothing() {
        let mut with_late = oracle(4, 10);
        for layer in 0..5 {
            for creator in 0..4 {
                with_late.insert(mesh_vertex(4, layer, creator));
            }
        }
        assert_eq!(with_late.finalized().len(), 1);
        let before = with_late.finalized().to_vec();
        let late = vertex(0, 0, 1, Vec::new());
        with_late.insert(late.clone());
        assert_eq!(with_late.round(&late.id), Some(0));
        assert_eq!(with_late.is_witness(&late.id), Some(true));
        assert_eq!(with_late.fame(&late.id), Some(false));
        assert_eq!(with_late.finalized(), &before[..]);
        for layer in 5..12 {
            for creator in 0..4 {
                with_late.insert(mesh_vertex(4, layer, creator));
            }
        }
        let without_late = mesh(&[0, 1, 2, 3], 12);
        assert_eq!(with_late.finalized(), without_late.finalized());
        assert!(with_late
            .finalized()
            .iter()
            .flat_map(|round| &round.anchors)
            .all(|anchor| anchor.id != late.id));
    }

    #[test]
    fn undecided_non_witness_and_unknown_ids_have_no_fame() {
        let mut oracle = oracle(4, 10);
        for layer in 0..3 {
            for creator in 0..4 {
                oracle.insert(mesh_vertex(4, layer, creator));
            }
        }
        assert_eq!(oracle.fame(&id(0, 0, 0)), None);
        assert_eq!(oracle.fame(&id(0, 1, 0)), None);
        assert_eq!(oracle.is_witness(&id(0, 1, 0)), Some(false));
        let unknown = id(9, 9, 9);
        assert_eq!(oracle.round(&unknown), None);
        assert_eq!(oracle.is_witness(&unknown), None);
        assert_eq!(oracle.fame(&unknown), None);
        assert!(oracle.finalized().is_empty());
    }

    /// SplitMix64: a seeded generator, so a failing DAG replays from its seed.
    struct SplitMix64(u64);

    impl SplitMix64 {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, bound: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(bound).unwrap()).unwrap()
        }
    }

    /// A random gossip DAG: each step one seat creates a vertex on its
    /// latest vertex plus the latest vertices of 1..=3 other seats. When
    /// `forking_seat` is set, that seat sometimes builds a second vertex on
    /// its previous self-parent instead (a fork).
    fn random_dag(
        seed: u64,
        k: u8,
        vertex_count: usize,
        forking_seat: Option<u8>,
    ) -> Vec<VertexSpec> {
        let mut random = SplitMix64(seed);
        let mut latest: Vec<Vec<VertexSpec>> = vec![Vec::new(); usize::from(k)];
        let mut dag = Vec::new();
        for _ in 0..vertex_count {
            let creator = u8::try_from(random.below(usize::from(k))).unwrap();
            let own = &latest[usize::from(creator)];
            let fork = forking_seat == Some(creator) && own.len() >= 2 && random.below(4) == 0;
            let self_parent = if fork {
                own.get(own.len() - 2)
            } else {
                own.last()
            };
            let seq = self_parent.map_or(0, |parent| parent.seq + 1);
            let mut parents: Vec<Hash32> =
                self_parent.map(|parent| parent.id).into_iter().collect();
            let mut others: Vec<u8> = (0..k)
                .filter(|&other| other != creator && !latest[usize::from(other)].is_empty())
                .collect();
            let wanted = 1 + random.below(3);
            while !others.is_empty() && parents.len() < wanted + usize::from(seq > 0) {
                let other = others.remove(random.below(others.len()));
                parents.push(latest[usize::from(other)].last().unwrap().id);
            }
            let variant = u8::try_from(dag.len() % 256).unwrap();
            let spec = VertexSpec {
                id: id(creator, seq, variant),
                creator,
                seq,
                parents,
                coin: random.next() & 1 == 1,
            };
            latest[usize::from(creator)].push(spec.clone());
            dag.push(spec);
        }
        dag
    }

    /// Checks what every finalized prefix must satisfy: consecutive rounds
    /// and global indexes, each anchor at most once, parents before children.
    fn check_finalized_prefix(oracle: &Oracle, dag: &[VertexSpec]) {
        let parents_by_id: BTreeMap<Hash32, &[Hash32]> = dag
            .iter()
            .map(|spec| (spec.id, &spec.parents[..]))
            .collect();
        let mut position_by_id: BTreeMap<Hash32, u64> = BTreeMap::new();
        for (round, finalized) in (0u64..).zip(oracle.finalized()) {
            assert_eq!(finalized.round, round);
            assert!(!finalized.unique_famous_witnesses.is_empty());
            assert!(finalized.unique_famous_witnesses.is_sorted());
            for anchor in &finalized.anchors {
                let position = u64::try_from(position_by_id.len()).unwrap();
                assert_eq!(anchor.global_index, position);
                assert!(position_by_id.insert(anchor.id, position).is_none());
                for parent in parents_by_id[&anchor.id] {
                    assert!(position_by_id[parent] < position, "parent after child");
                }
            }
        }
    }

    #[test]
    fn random_honest_and_single_forker_dags_finalize_a_causal_prefix() {
        for seed in 0..12 {
            for k in [1u8, 2, 3, 4, 7] {
                let forking_seat = (k >= 4 && seed % 2 == 1).then_some(0);
                let dag = random_dag(seed, k, 300, forking_seat);
                let mut oracle = oracle(usize::from(k), 2 + seed % 9);
                for spec in &dag {
                    oracle.insert(spec.clone());
                }
                check_finalized_prefix(&oracle, &dag);
                assert!(
                    oracle.finalized().len() >= 3,
                    "seed {seed}, k {k}: only {} rounds finalized",
                    oracle.finalized().len()
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "is not inserted")]
    fn inserting_a_vertex_before_its_parent_panics() {
        let mut oracle = oracle(1, 10);
        oracle.insert(chain_vertex(1));
    }

    #[test]
    #[should_panic(expected = "other than its self-parent")]
    fn inserting_a_vertex_without_its_self_parent_first_panics() {
        let mut oracle = oracle(2, 10);
        oracle.insert(vertex(0, 0, 0, Vec::new()));
        oracle.insert(vertex(1, 0, 0, Vec::new()));
        oracle.insert(vertex(0, 1, 0, vec![id(1, 0, 0), id(0, 0, 0)]));
    }
}
