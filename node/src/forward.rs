//! Forwarding between cores: a message that arrived on this core for a
//! shard another core of this node owns crosses the ring to that core,
//! whose answer comes back the same way and is sent on the connection it
//! came in on. Also where every message is routed to its job.

use std::net::SocketAddr;

use pc_codec::ids::shard_of;
use pc_net::frame::{EventOutcome, EventReceipt, RejectReason};
use pc_net::peer_book::PeerEvent;
use pc_net::{ConnId, NetMessage};
use pc_shard::machine::PeerId;

use crate::core::{NodeCore, NodeIo, Now};
use crate::intake::undecoded_id;
use crate::telemetry::{Event, PeerPruned};
use crate::NodeError;

/// A request or answer crossing from one core to another.
#[derive(Debug, Clone)]
pub enum CoreMsg {
    /// A message that arrived on `conn` of core `reply_core` for a shard of
    /// the receiving core.
    Request {
        /// The core to answer.
        reply_core: usize,
        /// Its connection.
        conn: ConnId,
        /// The sender's address.
        remote: SocketAddr,
        /// The sender's verified validator index, if any.
        peer: Option<PeerId>,
        /// The message.
        message: NetMessage,
    },
    /// An answer to send on `conn` of the receiving core.
    Reply {
        /// The connection.
        conn: ConnId,
        /// The answer.
        message: NetMessage,
    },
    /// A cross-shard message (tags 5, 11-14) from this node's seat
    /// `from_seat` of `from_shard` to its seat in a shard of the receiving
    /// core (the ring path of DESIGN §5.2 "Carrying").
    Cross {
        /// The sending seat's shard.
        from_shard: u16,
        /// The sending seat.
        from_seat: u8,
        /// The message.
        message: NetMessage,
    },
}

impl CoreMsg {
    /// The message carried.
    pub fn message(&self) -> &NetMessage {
        match self {
            CoreMsg::Request { message, .. }
            | CoreMsg::Reply { message, .. }
            | CoreMsg::Cross { message, .. } => message,
        }
    }
}

/// Where a message came from, for its answer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    /// A connection of this core.
    Local(ConnId),
    /// A connection of another core, forwarded over the ring.
    Remote { reply_core: usize, conn: ConnId },
}

impl NodeCore {
    pub(crate) fn handle_forwarded(
        &mut self,
        io: &mut dyn NodeIo,
        message: CoreMsg,
        now: Now,
    ) -> Result<(), NodeError> {
        match message {
            CoreMsg::Request {
                reply_core,
                conn,
                remote,
                peer,
                message,
            } => self.dispatch(
                io,
                Origin::Remote { reply_core, conn },
                remote,
                peer,
                message,
                now,
            ),
            CoreMsg::Reply { conn, message } => {
                self.send(io, conn, &message);
                Ok(())
            }
            CoreMsg::Cross {
                from_shard,
                from_seat,
                message,
            } => self.take_ring_cross(from_shard, from_seat, message, now),
        }
    }

    /// The shard a message is for.
    fn shard_of_message(&self, message: &NetMessage) -> Option<u16> {
        match message {
            NetMessage::Announce { shard, .. }
            | NetMessage::Get { shard, .. }
            | NetMessage::GetRange { shard, .. }
            | NetMessage::Anchors { shard, .. }
            | NetMessage::Evidence { shard, .. }
            | NetMessage::Pruned { shard, .. }
            | NetMessage::PayoutQuery { shard, .. }
            | NetMessage::SubmitMicroEvents { shard, .. } => Some(*shard),
            NetMessage::CheckpointSig(sig) => Some(sig.checkpoint.shard),
            NetMessage::CheckpointCert(cert) => Some(cert.checkpoint.shard),
            NetMessage::Exports(bundle) => Some(bundle.dest()),
            NetMessage::ExportsAck { source, .. } | NetMessage::GetExports { source, .. } => {
                Some(*source)
            }
            NetMessage::BalanceQuery { owner, .. } | NetMessage::UnspentQuery { owner, .. } => {
                Some(shard_of(owner, self.genesis.params.shards))
            }
            NetMessage::GetMintTemplate { .. }
            | NetMessage::SubmitMintSolution { .. }
            | NetMessage::MintStatusQuery { .. } => Some(self.genesis.params.mint_shard),
            _ => None,
        }
    }

    /// Routes a message from a connection (of this core or another) to its
    /// job: refused before a verified Hello unless it is a client's, a
    /// shard that does not exist answered so, a shard of another core
    /// forwarded.
    pub(crate) fn dispatch(
        &mut self,
        io: &mut dyn NodeIo,
        origin: Origin,
        remote: SocketAddr,
        peer: Option<PeerId>,
        message: NetMessage,
        now: Now,
    ) -> Result<(), NodeError> {
        let Some(shard) = self.shard_of_message(&message) else {
            return Ok(());
        };
        let client_message = message.is_client_request();
        let peer = match peer {
            Some(peer) => Some(peer),
            None if client_message => None,
            None => {
                let conn = match origin {
                    Origin::Local(conn) => Some(conn),
                    Origin::Remote { .. } => None,
                };
                self.counters.early_frames_refused += 1;
                self.violation(
                    io,
                    remote,
                    conn,
                    &format!("{} before a verified Hello", message.kind()),
                    now,
                );
                return Ok(());
            }
        };
        if shard >= self.genesis.params.shards {
            self.record(remote, PeerEvent::InvalidMessage, now);
            if let NetMessage::SubmitMicroEvents {
                request, events, ..
            } = &message
            {
                let detail = format!(
                    "shard {shard}: the genesis has {}",
                    self.genesis.params.shards
                );
                let results = events
                    .iter()
                    .map(|bytes| EventReceipt {
                        event_id: undecoded_id(bytes),
                        outcome: EventOutcome::rejected(RejectReason::WrongShard, &detail),
                    })
                    .collect();
                let receipt = NetMessage::Receipt {
                    request: *request,
                    shard,
                    retry_after_ms: 0,
                    results,
                };
                self.reply(io, origin, receipt);
            }
            return Ok(());
        }
        if !self.shards.contains_key(&shard) {
            let owner = self.placement[usize::from(shard)];
            let Origin::Local(conn) = origin else {
                // Forwarded to the wrong core: placement is one table on
                // every core, so this is never a peer's doing.
                return Ok(());
            };
            let forwarded = CoreMsg::Request {
                reply_core: self.core,
                conn,
                remote,
                peer,
                message,
            };
            if !io.forward(owner, forwarded) {
                self.counters.dropped_ring += 1;
            }
            return Ok(());
        }
        match (message, peer) {
            (NetMessage::Announce { ids, .. }, Some(peer)) => {
                let host = self.shards.get_mut(&shard).expect("local");
                host.handle_announce(peer, &ids, now.mono_us)?;
            }
            (NetMessage::Get { ids, .. }, Some(peer)) => {
                self.serve_get(io, origin, peer, shard, &ids, now);
            }
            (
                NetMessage::GetRange {
                    from_round,
                    max_count,
                    ..
                },
                Some(peer),
            ) => {
                self.serve_range(io, origin, peer, shard, from_round, max_count, now);
            }
            (NetMessage::Anchors { anchors, .. }, Some(peer)) => {
                self.take_anchors(peer, remote, shard, &anchors, now)?;
            }
            (
                message @ (NetMessage::CheckpointSig(_)
                | NetMessage::CheckpointCert(_)
                | NetMessage::Exports(_)
                | NetMessage::ExportsAck { .. }
                | NetMessage::GetExports { .. }),
                Some(peer),
            ) => {
                self.take_cross(io, origin, remote, peer, shard, message, now)?;
            }
            (NetMessage::Evidence { bytes, .. }, Some(_)) => {
                self.take_evidence(remote, shard, &bytes, now)?;
            }
            (
                NetMessage::SubmitMicroEvents {
                    request, events, ..
                },
                _,
            ) => {
                self.take_submission(io, origin, remote, shard, request, &events, now)?;
            }
            (NetMessage::BalanceQuery { request, owner }, _) => {
                self.answer_balance(io, origin, shard, (remote, now), request, owner);
            }
            (
                NetMessage::PayoutQuery {
                    request, recipient, ..
                },
                _,
            ) => {
                self.answer_payout(io, origin, shard, request, recipient);
            }
            (NetMessage::GetMintTemplate { request }, _) => {
                self.answer_mint_template(io, origin, (remote, now), shard, request);
            }
            (
                NetMessage::SubmitMintSolution {
                    request,
                    prev_mint_id,
                    miner,
                    nonce,
                },
                _,
            ) => {
                let mint = pc_codec::Mint {
                    prev_mint_id,
                    miner,
                    nonce,
                };
                self.take_mint_solution(io, origin, remote, shard, request, mint, now)?;
            }
            (NetMessage::MintStatusQuery { request, mint_id }, _) => {
                self.answer_mint_status(io, origin, (remote, now), shard, request, mint_id);
            }
            (
                NetMessage::UnspentQuery {
                    request,
                    owner,
                    after,
                    max,
                },
                _,
            ) => {
                self.answer_unspent(io, origin, (remote, now), shard, request, owner, after, max);
            }
            (
                NetMessage::Pruned {
                    oldest_round,
                    snapshot_round,
                    ..
                },
                Some(peer),
            ) => {
                // The peer pruned the rounds asked for: the next range goes
                // to another peer (the machine asks it again only once it
                // sends anchors again).
                let host = self.shards.get_mut(&shard).expect("local");
                host.peer_pruned(peer);
                self.events.push_back(Event::PeerPruned(PeerPruned {
                    core: self.core,
                    shard,
                    peer,
                    remote: remote.to_string(),
                    oldest_round,
                    snapshot_round: (snapshot_round != u64::MAX).then_some(snapshot_round),
                }));
            }
            _ => {}
        }
        Ok(())
    }

    /// Sends an answer where the request came from; false if it was dropped.
    pub(crate) fn reply(
        &mut self,
        io: &mut dyn NodeIo,
        origin: Origin,
        message: NetMessage,
    ) -> bool {
        match origin {
            Origin::Local(conn) => self.send(io, conn, &message),
            Origin::Remote { reply_core, conn } => {
                let sent = io.forward(reply_core, CoreMsg::Reply { conn, message });
                if !sent {
                    self.counters.dropped_ring += 1;
                }
                sent
            }
        }
    }
}
