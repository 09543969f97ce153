//! Cross-shard carrying (DESIGN §5.2 "Carrying", §7 tags 5 and 11-14): what
//! the shards' cross-shard links want sent goes to the seat that holds its
//! target — a peer over QUIC, a shard of this core at once, a shard of
//! another core of this node over the ring — and what arrives is handed to
//! the link of its shard with the seat it came from (a peer's seat in the
//! shard the message speaks for; a refusal is that peer's violation).

use std::collections::VecDeque;
use std::net::SocketAddr;

use pc_net::NetMessage;
use pc_shard::crosslink::{CrossMessage, CrossTarget};
use pc_shard::machine::PeerId;

use crate::core::{NodeCore, NodeIo, Now};
use crate::forward::{CoreMsg, Origin};
use crate::NodeError;

/// Rounds of local delivery per routing pass (a bundle to a seat of this
/// node, its ack back, a forward to the carrier): more than any chain of
/// answers needs, so a pass always ends.
const MAX_LOCAL_PASSES: usize = 8;

/// Cross-shard transfers whose submission time a core remembers until
/// their first import lands (oldest forgotten first).
pub const MAX_TRACKED_CROSS: usize = 131_072;

/// Cross-shard latency of one core: a client's transfer paying another
/// shard, from when this node took it to when its first import is final
/// at the destination, for pairs of shards this core holds both of (the
/// node's cores keep no common table).
#[derive(Debug, Default)]
pub struct CrossLatency {
    taken: std::collections::HashMap<pc_codec::Hash32, u64>,
    order: VecDeque<pc_codec::Hash32>,
    /// Per destination shard, µs.
    pub by_dest: std::collections::BTreeMap<u16, hdrhistogram::Histogram<u64>>,
}

impl CrossLatency {
    fn note(
        &mut self,
        submitted: Vec<(pc_codec::Hash32, u64)>,
        landed: Vec<(u16, pc_codec::Hash32, u64)>,
        dest: u16,
    ) {
        for (tx_id, at) in submitted {
            if self.taken.insert(tx_id, at).is_none() {
                self.order.push_back(tx_id);
            }
            while self.order.len() > MAX_TRACKED_CROSS {
                if let Some(old) = self.order.pop_front() {
                    self.taken.remove(&old);
                }
            }
        }
        for (_, tx_id, final_us) in landed {
            if let Some(at) = self.taken.remove(&tx_id) {
                self.by_dest
                    .entry(dest)
                    .or_insert_with(|| {
                        hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                            .expect("valid bounds")
                    })
                    .saturating_record(final_us.saturating_sub(at).max(1));
            }
        }
        if self.order.len() > 2 * self.taken.len() + 1024 {
            let taken = &self.taken;
            self.order.retain(|id| taken.contains_key(id));
        }
    }
}

/// The kinds of cross-shard messages, for the ring counters.
pub const CROSS_KINDS: [&str; 5] = ["sig", "cert", "exports", "ack", "get_exports"];

/// Cross-shard messages this core moved, by kind ([`CROSS_KINDS`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CrossTraffic {
    /// Put on a ring to another core of this node.
    pub ring_sent: [u64; 5],
    /// Taken from a ring (another core of this node sent them).
    pub ring_received: [u64; 5],
    /// Delivered between two shards of this core.
    pub local: [u64; 5],
    /// Sent to peers.
    pub sent: [u64; 5],
    /// Taken from peers.
    pub received: [u64; 5],
    /// Refused as a peer's violation.
    pub refused: u64,
}

/// The index of a cross-shard message's kind in [`CROSS_KINDS`].
fn kind(message: &CrossMessage) -> usize {
    match message {
        CrossMessage::Sig(_) => 0,
        CrossMessage::Cert(_) => 1,
        CrossMessage::Exports(_) => 2,
        CrossMessage::Ack { .. } => 3,
        CrossMessage::GetExports { .. } => 4,
    }
}

/// The wire form of a cross-shard message.
pub fn to_net(message: CrossMessage) -> NetMessage {
    match message {
        CrossMessage::Sig(sig) => NetMessage::CheckpointSig(sig),
        CrossMessage::Cert(cert) => NetMessage::CheckpointCert(cert),
        CrossMessage::Exports(bundle) => NetMessage::Exports(bundle),
        CrossMessage::Ack {
            source,
            round,
            dest,
        } => NetMessage::ExportsAck {
            source,
            round,
            dest,
        },
        CrossMessage::GetExports {
            source,
            round,
            dest,
        } => NetMessage::GetExports {
            source,
            round,
            dest,
        },
    }
}

/// The cross-shard message a wire message is, and the shard whose seat
/// sends it (`None`: not a cross-shard message).
pub fn from_net(message: NetMessage) -> Option<(u16, CrossMessage)> {
    Some(match message {
        NetMessage::CheckpointSig(sig) => (sig.checkpoint.shard, CrossMessage::Sig(sig)),
        NetMessage::CheckpointCert(cert) => (cert.checkpoint.shard, CrossMessage::Cert(cert)),
        NetMessage::Exports(bundle) => (bundle.source(), CrossMessage::Exports(bundle)),
        NetMessage::ExportsAck {
            source,
            round,
            dest,
        } => (
            dest,
            CrossMessage::Ack {
                source,
                round,
                dest,
            },
        ),
        NetMessage::GetExports {
            source,
            round,
            dest,
        } => (
            dest,
            CrossMessage::GetExports {
                source,
                round,
                dest,
            },
        ),
        _ => return None,
    })
}

impl NodeCore {
    /// Matches the local shards' cross-shard submissions with the imports
    /// that landed (after every input).
    pub(crate) fn collect_cross_latency(&mut self) {
        let shards: Vec<u16> = self.shards.keys().copied().collect();
        let mut submitted = Vec::new();
        let mut landed = Vec::new();
        for shard in &shards {
            let host = self.shards.get_mut(shard).expect("listed");
            let (s, l) = host.take_cross_latency_inputs();
            submitted.extend(s);
            if !l.is_empty() {
                landed.push((*shard, l));
            }
        }
        self.cross_latency.note(submitted, Vec::new(), 0);
        for (dest, list) in landed {
            self.cross_latency.note(Vec::new(), list, dest);
        }
    }

    /// Cross-shard latency so far, µs, per destination shard of this core.
    pub fn cross_latency(&self) -> &std::collections::BTreeMap<u16, hdrhistogram::Histogram<u64>> {
        &self.cross_latency.by_dest
    }

    /// The validator holding `seat` of `shard`, if the genesis names one.
    fn seat_holder(&self, shard: u16, seat: u8) -> Option<PeerId> {
        self.genesis
            .validators
            .iter()
            .position(|v| v.seats.iter().any(|s| s.shard == shard && s.seat == seat))
            .map(|index| index as PeerId)
    }

    /// The seat validator `peer` holds in `shard`, if any.
    fn seat_of(&self, peer: PeerId, shard: u16) -> Option<u8> {
        self.genesis
            .validators
            .get(peer as usize)?
            .seats
            .iter()
            .find(|s| s.shard == shard)
            .map(|s| s.seat)
    }

    /// Sends what the local shards' cross-shard links want sent; whether a
    /// message was delivered to a shard of this core (its answers may
    /// want routing).
    pub(crate) fn route_cross(&mut self, io: &mut dyn NodeIo, now: Now) -> Result<bool, NodeError> {
        let mut delivered = false;
        for _ in 0..MAX_LOCAL_PASSES {
            let mut local: VecDeque<(u16, CrossTarget, CrossMessage)> = VecDeque::new();
            let shards: Vec<u16> = self.shards.keys().copied().collect();
            for shard in shards {
                let Some(own_seat) = self.shards.get(&shard).and_then(|h| h.own_seat()) else {
                    continue;
                };
                let from = CrossTarget::Seat {
                    shard,
                    seat: own_seat,
                };
                while let Some(transmit) = self
                    .shards
                    .get_mut(&shard)
                    .and_then(|h| h.poll_cross_transmit())
                {
                    let kind = kind(&transmit.message);
                    match transmit.to {
                        CrossTarget::Committee => {
                            let message = to_net(transmit.message);
                            for peer in self.shard_peers[usize::from(shard)].clone() {
                                if let Some(conn) = self.link_for(peer, shard, now) {
                                    if self.send(io, conn, &message) {
                                        self.cross.sent[kind] += 1;
                                    }
                                }
                            }
                        }
                        CrossTarget::Seat { shard: to, seat } => {
                            let Some(holder) = self.seat_holder(to, seat) else {
                                continue;
                            };
                            if Some(holder) != self.own_index {
                                if let Some(conn) = self.link_for(holder, to, now) {
                                    if self.send(io, conn, &to_net(transmit.message)) {
                                        self.cross.sent[kind] += 1;
                                    }
                                }
                            } else if self.shards.contains_key(&to) {
                                local.push_back((to, from, transmit.message));
                            } else if let Some(&core) = self.placement.get(usize::from(to)) {
                                let message = CoreMsg::Cross {
                                    from_shard: shard,
                                    from_seat: own_seat,
                                    message: to_net(transmit.message),
                                };
                                if io.forward(core, message) {
                                    self.cross.ring_sent[kind] += 1;
                                } else {
                                    // The link sends it again (pushes and
                                    // pulls retry until answered).
                                    self.counters.dropped_ring += 1;
                                }
                            }
                        }
                    }
                }
            }
            if local.is_empty() {
                break;
            }
            delivered = true;
            for (to, from, message) in local {
                self.cross.local[kind(&message)] += 1;
                let host = self.shards.get_mut(&to).expect("checked local");
                if host.handle_cross(from, message, now.mono_us)?.is_err() {
                    // This node's own link refused its own message: never
                    // expected; counted, not a peer's fault.
                    self.cross.refused += 1;
                }
            }
        }
        Ok(delivered)
    }

    /// A cross-shard message from verified `peer` for local `shard`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn take_cross(
        &mut self,
        io: &mut dyn NodeIo,
        origin: Origin,
        remote: SocketAddr,
        peer: PeerId,
        shard: u16,
        message: NetMessage,
        now: Now,
    ) -> Result<(), NodeError> {
        let name = message.kind();
        let Some((from_shard, message)) = from_net(message) else {
            return Ok(());
        };
        let conn = match origin {
            Origin::Local(conn) => Some(conn),
            Origin::Remote { .. } => None,
        };
        // A destination seat forwarding a bundle to its round's carrier
        // sends it from a seat of this (the destination) shard.
        let sender = self
            .seat_of(peer, from_shard)
            .map(|seat| (from_shard, seat))
            .or_else(|| {
                matches!(message, CrossMessage::Exports(_))
                    .then(|| self.seat_of(peer, shard).map(|seat| (shard, seat)))
                    .flatten()
            });
        let Some((from_shard, seat)) = sender else {
            self.cross.refused += 1;
            self.violation(
                io,
                remote,
                conn,
                &format!("{name} from validator {peer}, which holds no seat in shard {from_shard}"),
                now,
            );
            return Ok(());
        };
        self.cross.received[kind(&message)] += 1;
        let from = CrossTarget::Seat {
            shard: from_shard,
            seat,
        };
        let host = self
            .shards
            .get_mut(&shard)
            .expect("dispatched to a local shard");
        if let Err(violation) = host.handle_cross(from, message, now.mono_us)? {
            self.cross.refused += 1;
            self.violation(
                io,
                remote,
                conn,
                &format!("{name} for shard {shard}: {violation}"),
                now,
            );
        }
        Ok(())
    }

    /// A cross-shard message another core of this node put on the ring.
    pub(crate) fn take_ring_cross(
        &mut self,
        from_shard: u16,
        from_seat: u8,
        message: NetMessage,
        now: Now,
    ) -> Result<(), NodeError> {
        let Some((_, message)) = from_net(message) else {
            return Ok(());
        };
        let to = match &message {
            CrossMessage::Sig(sig) => sig.checkpoint.shard,
            CrossMessage::Cert(cert) => cert.checkpoint.shard,
            CrossMessage::Exports(bundle) => bundle.dest(),
            CrossMessage::Ack { source, .. } | CrossMessage::GetExports { source, .. } => *source,
        };
        self.cross.ring_received[kind(&message)] += 1;
        let Some(host) = self.shards.get_mut(&to) else {
            return Ok(());
        };
        let from = CrossTarget::Seat {
            shard: from_shard,
            seat: from_seat,
        };
        if host.handle_cross(from, message, now.mono_us)?.is_err() {
            self.cross.refused += 1;
        }
        Ok(())
    }

    /// Cross-shard messages this core moved.
    pub fn cross_traffic(&self) -> CrossTraffic {
        self.cross
    }
}
