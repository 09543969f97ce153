//! Gossip and pulls: anchors from peers into the shard machines, and what
//! the machines want sent (own anchors to the shard's committee, `Get`s,
//! `Announce`s and catch-up `GetRange`s) onto the best connection to each
//! peer. Which anchors to pull, when to catch up by range, from which
//! round and from whom is the machine's decision; this file only routes.

use std::net::SocketAddr;

use pc_codec::wire::{Decode, Reader};
use pc_codec::SignedAnchorHeader;
use pc_net::frame::{MAX_IDS_PER_MESSAGE, MAX_RANGE_ANCHORS};
use pc_net::peer_book::PeerEvent;
use pc_net::{ConnId, NetMessage};
use pc_shard::machine::{AnchorStatus, Destination, PeerId, ShardMessage};

use crate::core::{NodeCore, NodeIo, Now, SILENT_LINK_US};
use crate::shard_host::CrashSite;
use crate::telemetry::{AnchorRefused, Event};
use crate::NodeError;

impl NodeCore {
    /// Anchors a verified peer sent (gossip or an answer to a pull).
    pub(crate) fn take_anchors(
        &mut self,
        peer: PeerId,
        remote: SocketAddr,
        shard: u16,
        anchors: &[Vec<u8>],
        now: Now,
    ) -> Result<(), NodeError> {
        let mut valid = 0;
        let mut invalid = None;
        let host = self.shards.get_mut(&shard).expect("local");
        let seats = usize::from(self.genesis.params.k);
        let seat_rounds = self
            .seat_rounds
            .entry(shard)
            .or_insert_with(|| vec![0; seats]);
        let items: Vec<&[u8]> = anchors.iter().map(Vec::as_slice).collect();
        host.preverify_anchors(&items);
        for bytes in anchors {
            match host.handle_anchor(Some(peer), bytes, None, now.mono_us)? {
                Ok(AnchorStatus::Inserted | AnchorStatus::Pending) => {
                    valid += 1;
                    // The machine checked the creator's signature.
                    if let Ok(header) = SignedAnchorHeader::decode(&mut Reader::new(bytes)) {
                        let creator = usize::from(header.header.creator);
                        if let Some(round) = seat_rounds.get_mut(creator) {
                            *round = (*round).max(header.header.birth_round);
                        }
                    }
                }
                Ok(AnchorStatus::Duplicate | AnchorStatus::Ancient | AnchorStatus::Deferred) => {}
                Err(rejected) => invalid = Some(rejected.to_string()),
            }
        }
        for _ in 0..valid.min(8) {
            self.record(remote, PeerEvent::ValidAnchor, now);
        }
        if let Some(reason) = invalid {
            self.record(remote, PeerEvent::InvalidMessage, now);
            self.log_peer(Event::AnchorRefused(AnchorRefused {
                core: self.core,
                shard,
                peer,
                remote: remote.to_string(),
                reason,
            }));
        }
        Ok(())
    }

    /// The connection to send `shard`'s traffic for `peer` on: a verified
    /// outgoing one to the port the peer's Hello gives for the shard, else
    /// any verified one (outgoing first); a link silent for longer than
    /// [`SILENT_LINK_US`] ranks below every live one.
    pub(crate) fn link_for(&self, peer: PeerId, shard: u16, now: Now) -> Option<ConnId> {
        let mut best: Option<((u8, std::cmp::Reverse<u64>), ConnId)> = None;
        for (conn, link) in &self.links {
            let Some((index, hello)) = &link.peer else {
                continue;
            };
            if *index != peer {
                continue;
            }
            let right_port = hello.port_of(shard) == Some(link.remote.port());
            let rank = match (right_port, link.outgoing) {
                (true, true) => 0,
                (true, false) => 1,
                (false, true) => 2,
                (false, false) => 3,
            };
            let silent = now.mono_us.saturating_sub(link.last_heard_us) > SILENT_LINK_US;
            let rank = (
                rank + if silent { 4 } else { 0 },
                std::cmp::Reverse(link.last_heard_us),
            );
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, *conn));
            }
        }
        best.map(|(_, conn)| conn)
    }

    /// Sends what the shard machines and their cross-shard links want
    /// sent (a cross-shard message delivered to a shard of this core may
    /// make its machine want more sent).
    pub(crate) fn route_transmits(
        &mut self,
        io: &mut dyn NodeIo,
        now: Now,
    ) -> Result<(), NodeError> {
        // Bounded: an answer delivered locally (an ack, a forward to the
        // carrier seat) ends its chain within a pass or two.
        for _ in 0..4 {
            self.route_machine_transmits(io, now);
            if !self.route_cross(io, now)? {
                break;
            }
        }
        self.route_machine_transmits(io, now);
        self.collect_cross_latency();
        Ok(())
    }

    /// Sends what the shard machines want sent.
    fn route_machine_transmits(&mut self, io: &mut dyn NodeIo, now: Now) {
        let shards: Vec<u16> = self.shards.keys().copied().collect();
        for shard in shards {
            while let Some(transmit) = self.shards.get_mut(&shard).and_then(|d| d.poll_transmit()) {
                let messages: Vec<NetMessage> = match transmit.message {
                    ShardMessage::Anchor(bytes) => {
                        if self
                            .crash
                            .is_some_and(|c| c.site == CrashSite::BeforeSending)
                        {
                            if let Some(host) = self.shards.get_mut(&shard) {
                                host.crash_point(CrashSite::BeforeSending);
                            }
                        }
                        vec![NetMessage::Anchors {
                            shard,
                            anchors: vec![bytes],
                        }]
                    }
                    ShardMessage::Get(ids) => ids
                        .chunks(MAX_IDS_PER_MESSAGE)
                        .map(|ids| NetMessage::Get {
                            shard,
                            ids: ids.to_vec(),
                        })
                        .collect(),
                    ShardMessage::Announce(ids) => ids
                        .chunks(MAX_IDS_PER_MESSAGE)
                        .map(|ids| NetMessage::Announce {
                            shard,
                            ids: ids.to_vec(),
                        })
                        .collect(),
                    ShardMessage::GetRange {
                        from_round,
                        max_count,
                    } => vec![NetMessage::GetRange {
                        shard,
                        from_round,
                        max_count: max_count.min(MAX_RANGE_ANCHORS),
                    }],
                    // An Offence is at most 12 288 bytes, the message's cap.
                    ShardMessage::Evidence(bytes) => vec![NetMessage::Evidence { shard, bytes }],
                };
                let peers: Vec<PeerId> = match transmit.destination {
                    Destination::Broadcast => self.shard_peers[usize::from(shard)].clone(),
                    Destination::Peer(peer) => vec![peer],
                };
                for peer in peers {
                    if let Some(conn) = self.link_for(peer, shard, now) {
                        for message in &messages {
                            self.send(io, conn, message);
                        }
                    }
                }
            }
        }
    }
}
