//! Serving: `Get` and `GetRange` answered from the shard's store, within a
//! budget per (peer, shard) of [`SERVE_ANCHORS_PER_S`] anchors (a request
//! past it is answered in part; what a node does not have costs nothing),
//! in `Anchors` frames under the frame cap, stopping at the first frame the
//! connection's send queue refuses.

use pc_codec::Hash32;
use pc_net::frame::MAX_ANCHORS_PER_MESSAGE;
use pc_net::NetMessage;
use pc_shard::machine::PeerId;

use crate::budget::TokenBucket;
use crate::core::{
    NodeCore, NodeIo, Now, MAX_REPLY_ANCHORS, MAX_REPLY_FRAME_BYTES, SERVE_ANCHORS_PER_S,
};
use crate::forward::Origin;

impl NodeCore {
    /// A peer's `Get` of anchors by id.
    pub(crate) fn serve_get(
        &mut self,
        io: &mut dyn NodeIo,
        origin: Origin,
        peer: PeerId,
        shard: u16,
        ids: &[Hash32],
        now: Now,
    ) {
        let allowed = self.serve_allowance(peer, shard, ids.len(), now);
        let host = &self.shards[&shard];
        let anchors: Vec<Vec<u8>> = ids
            .iter()
            .take(allowed)
            .filter_map(|id| host.anchor_bytes(id))
            .collect();
        self.serve_refund(peer, shard, allowed - anchors.len());
        self.reply_anchors(io, origin, shard, anchors);
    }

    /// A peer's `GetRange` from a birth round.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn serve_range(
        &mut self,
        io: &mut dyn NodeIo,
        origin: Origin,
        peer: PeerId,
        shard: u16,
        from_round: u64,
        max_count: u32,
        now: Now,
    ) {
        if let Some((oldest_round, snapshot_round)) = self.shards[&shard].pruned_answer(from_round)
        {
            let pruned = NetMessage::Pruned {
                shard,
                oldest_round,
                snapshot_round,
            };
            self.reply(io, origin, pruned);
            return;
        }
        let count = self.serve_allowance(peer, shard, max_count as usize, now);
        if count == 0 {
            return;
        }
        let anchors =
            self.shards[&shard].anchors_from_round(from_round, count, 4 * MAX_REPLY_FRAME_BYTES);
        self.serve_refund(peer, shard, count.saturating_sub(anchors.len()));
        self.reply_anchors(io, origin, shard, anchors);
    }

    /// How many of `wanted` anchors `peer` may be served in `shard` now
    /// (at most [`MAX_REPLY_ANCHORS`]); what is then not served goes back
    /// with [`Self::serve_refund`].
    fn serve_allowance(&mut self, peer: PeerId, shard: u16, wanted: usize, now: Now) -> usize {
        let wanted = wanted.min(MAX_REPLY_ANCHORS);
        let allowed = self
            .serve_budget
            .entry((peer, shard))
            .or_insert_with(|| TokenBucket::full(SERVE_ANCHORS_PER_S, now.mono_us))
            .take(SERVE_ANCHORS_PER_S, wanted, now.mono_us);
        self.counters.throttled += (wanted - allowed) as u64;
        allowed
    }

    /// Returns `unused` tokens of an allowance: anchors asked for that this
    /// node does not have (or a range that ended early) cost nothing.
    fn serve_refund(&mut self, peer: PeerId, shard: u16, unused: usize) {
        if let Some(bucket) = self.serve_budget.get_mut(&(peer, shard)) {
            bucket.refund(SERVE_ANCHORS_PER_S, unused);
        }
    }

    fn reply_anchors(
        &mut self,
        io: &mut dyn NodeIo,
        origin: Origin,
        shard: u16,
        anchors: Vec<Vec<u8>>,
    ) {
        let mut batch = Vec::new();
        let mut bytes = 0;
        for anchor in anchors {
            if !batch.is_empty()
                && (batch.len() >= MAX_ANCHORS_PER_MESSAGE
                    || bytes + anchor.len() > MAX_REPLY_FRAME_BYTES)
            {
                let anchors = std::mem::take(&mut batch);
                if !self.reply(io, origin, NetMessage::Anchors { shard, anchors }) {
                    return;
                }
                bytes = 0;
            }
            bytes += anchor.len();
            batch.push(anchor);
        }
        if !batch.is_empty() {
            self.reply(
                io,
                origin,
                NetMessage::Anchors {
                    shard,
                    anchors: batch,
                },
            );
        }
    }
}
