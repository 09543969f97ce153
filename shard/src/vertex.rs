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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalizedAnchor {
    /// The anchor id.
    pub id: Hash32,
    /// Its position in the shard's total order, from 0.
    pub global_index: u64,
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
