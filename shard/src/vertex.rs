//! The consensus view of an anchor: what virtual voting needs and nothing
//! else, so the fast implementation and the naive oracle take the same input.

use pc_codec::Hash32;

/// One DAG vertex as consensus sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexSpec {
    /// The anchor id.
    pub id: Hash32,
    /// The creator's seat, `< k`.
    pub creator: u8,
    /// The creator's sequence number.
    pub seq: u64,
    /// Ids of the parents, self-parent first when `seq > 0`. Every parent
    /// must have been inserted before this vertex.
    pub parents: Vec<Hash32>,
    /// The coin bit of the vertex: `signature[32] & 1` for an anchor.
    pub coin: bool,
}

/// One finalized anchor in the total order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizedAnchor {
    /// The anchor id.
    pub id: Hash32,
    /// Its position in the shard's total order, from 0.
    pub global_index: u64,
    /// Ack distance per seat (DESIGN §4): among the anchors that are
    /// ancestors of a unique famous witness of the round received (or one
    /// itself), the first of seat `c` that sees this anchor has round
    /// `round(anchor) + d_c - 1`. `None`: no such anchor, so the seat is not
    /// in the vote mask.
    pub ack_distances: Vec<Option<u64>>,
}

impl FinalizedAnchor {
    /// The vote mask: bit `c` set iff seat `c` acknowledged the anchor.
    pub fn vote_mask(&self) -> u64 {
        self.ack_distances
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_some())
            .fold(0, |mask, (seat, _)| mask | 1 << seat)
    }
}

/// A decided round and the anchors it received, in total order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizedRound {
    /// The round.
    pub round: u64,
    /// The unique famous witnesses of the round, sorted by id.
    pub unique_famous_witnesses: Vec<Hash32>,
    /// The anchors whose round received is this round, in total order
    /// (layer, whitened id, id).
    pub anchors: Vec<FinalizedAnchor>,
}
