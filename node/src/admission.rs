//! Admission: connections as they open and close, the `Hello` of each
//! peer checked against the genesis committee, dialing with backoff,
//! protocol violations and bans (the peer book's).
//!
//! Every connection starts with both `Hello`s; consensus messages count
//! only after the peer's verified. A connection without a `Hello` (a
//! client) may only submit micro-events and query balances.

use std::net::SocketAddr;

use pc_codec::{to_hex, Bip340};
use pc_net::endpoint::{NORMAL_CLOSE_CODE, PROTOCOL_VIOLATION_CODE};
use pc_net::peer_book::PeerEvent;
use pc_net::{ConnId, NetEvent, NetMessage, Source, ViolationReason};
use pc_shard::machine::PeerId;

use crate::core::{
    DialTarget, Link, NodeCore, NodeIo, Now, MAX_DIAL_BACKOFF_US, MAX_TRACKED_SOURCES,
    MIN_DIAL_BACKOFF_US, UNROUTABLE_PER_VIOLATION,
};
use crate::forward::Origin;
use crate::telemetry::{
    ConnectionRefused, Event, PeerConnected, PeerDisconnected, PeerRefused, PeerViolation,
};
use crate::NodeError;

impl NodeCore {
    /// Adds an address to dial (never one of this node's own).
    pub(crate) fn add_target(&mut self, addr: SocketAddr, now: Now) {
        if self.own_addrs.contains(&addr) || self.targets.iter().any(|t| t.addr == addr) {
            return;
        }
        self.targets.push(DialTarget {
            addr,
            conn: None,
            next_attempt_us: now.mono_us,
            backoff_us: MIN_DIAL_BACKOFF_US,
        });
    }

    /// Dials every target that is due and not banned.
    pub(crate) fn dial_due(&mut self, io: &mut dyn NodeIo, now: Now) {
        for index in 0..self.targets.len() {
            let target = &self.targets[index];
            if target.conn.is_some() || now.mono_us < target.next_attempt_us {
                continue;
            }
            let addr = target.addr;
            if self.book.is_banned(addr, now.unix_s) {
                self.targets[index].next_attempt_us = now.mono_us + MAX_DIAL_BACKOFF_US;
                continue;
            }
            match io.connect(addr) {
                Ok(conn) => {
                    self.targets[index].conn = Some(conn);
                    self.record(addr, PeerEvent::Attempt, now);
                }
                Err(_) => {
                    let target = &mut self.targets[index];
                    target.next_attempt_us = now.mono_us + target.backoff_us;
                    target.backoff_us = (target.backoff_us * 2).min(MAX_DIAL_BACKOFF_US);
                }
            }
        }
    }

    /// A protocol violation of `remote` on `conn` (closed) or before any.
    pub(crate) fn violation(
        &mut self,
        io: &mut dyn NodeIo,
        remote: SocketAddr,
        conn: Option<ConnId>,
        reason: &str,
        now: Now,
    ) {
        self.counters.violations += 1;
        let was_banned = self.book.is_banned(remote, now.unix_s);
        self.record(remote, PeerEvent::ProtocolViolation, now);
        let banned = self.book.is_banned(remote, now.unix_s);
        if banned && !was_banned {
            self.counters.bans += 1;
        }
        self.log_peer(Event::PeerViolation(PeerViolation {
            core: self.core,
            remote: remote.to_string(),
            reason: reason.to_string(),
            banned,
        }));
        if let Some(conn) = conn {
            io.close(conn, PROTOCOL_VIOLATION_CODE, "protocol violation");
        }
        if banned {
            self.close_address(io, remote);
        }
    }

    /// Closes every connection with `remote`.
    fn close_address(&mut self, io: &mut dyn NodeIo, remote: SocketAddr) {
        let conns: Vec<ConnId> = self
            .links
            .iter()
            .filter(|(_, link)| link.remote == remote)
            .map(|(conn, _)| *conn)
            .collect();
        for conn in conns {
            io.close(conn, PROTOCOL_VIOLATION_CODE, "banned");
        }
    }

    /// One endpoint event.
    pub(crate) fn admit(
        &mut self,
        io: &mut dyn NodeIo,
        event: NetEvent,
        now: Now,
    ) -> Result<(), NodeError> {
        match event {
            NetEvent::Connected {
                conn,
                remote,
                peer_spki,
                ..
            } => {
                if self.book.is_banned(remote, now.unix_s) {
                    io.close(conn, PROTOCOL_VIOLATION_CODE, "banned");
                    return Ok(());
                }
                let outgoing = self.targets.iter().any(|t| t.conn == Some(conn));
                self.links.insert(
                    conn,
                    Link {
                        remote,
                        outgoing,
                        last_heard_us: now.mono_us,
                        peer_spki,
                        peer: None,
                    },
                );
                self.record(remote, PeerEvent::Success, now);
                if let Some(hello) = self.hello.clone() {
                    self.send(io, conn, &NetMessage::Hello(hello));
                }
                Ok(())
            }
            NetEvent::Frame {
                conn,
                message,
                bytes,
            } => {
                let kind = &mut self.p2p.inbound[message.kind_index()];
                kind.messages += 1;
                kind.bytes += bytes as u64;
                self.handle_frame(io, conn, message, now)
            }
            NetEvent::Violation { source, reason } => {
                let (remote, conn) = match source {
                    Source::Connection { conn, remote } => (remote, Some(conn)),
                    Source::Address(remote) => (remote, None),
                };
                if matches!(reason, ViolationReason::UnroutableDatagram { .. }) {
                    // Late packets of connections gone (a peer that
                    // restarted, a close still in flight) look the same as
                    // garbage: only every UNROUTABLE_PER_VIOLATION-th
                    // counts, so honest stragglers cost nothing and a
                    // flood is banned within a few hundred datagrams.
                    if self.unroutable.len() >= MAX_TRACKED_SOURCES {
                        self.unroutable.clear();
                    }
                    let count = self.unroutable.entry(remote).or_insert(0);
                    *count += 1;
                    if !(*count).is_multiple_of(UNROUTABLE_PER_VIOLATION) {
                        return Ok(());
                    }
                }
                self.violation(io, remote, conn, &reason.to_string(), now);
                Ok(())
            }
            NetEvent::Closed {
                conn,
                remote,
                reason,
            } => {
                let link = self.links.remove(&conn);
                if let Some(target) = self.targets.iter_mut().find(|t| t.conn == Some(conn)) {
                    target.conn = None;
                    target.next_attempt_us = now.mono_us + target.backoff_us;
                    target.backoff_us = (target.backoff_us * 2).min(MAX_DIAL_BACKOFF_US);
                    if link.is_none() {
                        self.record(remote, PeerEvent::Failure, now);
                    }
                }
                if let Some(Link {
                    peer: Some((peer, _)),
                    ..
                }) = link
                {
                    self.events
                        .push_back(Event::PeerDisconnected(PeerDisconnected {
                            core: self.core,
                            peer,
                            remote: remote.to_string(),
                            reason: reason.to_string(),
                        }));
                }
                Ok(())
            }
            NetEvent::Refused { remote, reason } => {
                self.counters.refused_connections += 1;
                self.log_peer(Event::ConnectionRefused(ConnectionRefused {
                    core: self.core,
                    remote: remote.to_string(),
                    reason: reason.to_string(),
                }));
                Ok(())
            }
        }
    }

    fn handle_frame(
        &mut self,
        io: &mut dyn NodeIo,
        conn: ConnId,
        message: NetMessage,
        now: Now,
    ) -> Result<(), NodeError> {
        let Some(link) = self.links.get_mut(&conn) else {
            return Ok(());
        };
        link.last_heard_us = now.mono_us;
        let remote = link.remote;
        let peer = link.peer.as_ref().map(|(peer, _)| *peer);
        match message {
            NetMessage::Hello(hello) => {
                if peer.is_some() {
                    self.violation(
                        io,
                        remote,
                        Some(conn),
                        "a second Hello on one connection",
                        now,
                    );
                    return Ok(());
                }
                self.handle_hello(io, conn, hello, now);
                Ok(())
            }
            answer if answer.is_client_answer() => {
                // Answers are for clients; a node never asked.
                self.record(remote, PeerEvent::InvalidMessage, now);
                Ok(())
            }
            other => {
                #[cfg(feature = "planted-bug-early-frames")]
                let peer = peer.or(Some(0));
                self.dispatch(io, Origin::Local(conn), remote, peer, other, now)
            }
        }
    }

    /// A peer's first Hello on `conn`.
    fn handle_hello(&mut self, io: &mut dyn NodeIo, conn: ConnId, hello: pc_net::Hello, now: Now) {
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        let (remote, outgoing) = (link.remote, link.outgoing);
        if let Err(error) = hello.verify(link.peer_spki.as_deref(), &self.committee, &Bip340) {
            self.counters.refused_hellos += 1;
            self.record(remote, PeerEvent::InvalidMessage, now);
            self.log_peer(Event::PeerRefused(PeerRefused {
                core: self.core,
                remote: remote.to_string(),
                reason: error.to_string(),
            }));
            io.close(conn, PROTOCOL_VIOLATION_CODE, "hello refused");
            return;
        }
        let Some(index) = self
            .genesis
            .validators
            .iter()
            .position(|v| v.key == hello.validator_key)
            .map(|i| i as PeerId)
        else {
            // A verified Hello names a committee validator; a committee
            // built from another genesis would be a driver bug.
            io.close(conn, PROTOCOL_VIOLATION_CODE, "hello refused");
            return;
        };
        if Some(index) == self.own_index {
            // Dialed ourselves (a peer list naming this node).
            io.close(conn, NORMAL_CLOSE_CODE, "own node");
            return;
        }
        self.record(remote, PeerEvent::Hello(hello.validator_key), now);
        if outgoing {
            // Dial the ports of this core's shards on that peer too.
            let shards: Vec<u16> = self.shards.keys().copied().collect();
            for shard in shards {
                if let Some(port) = hello.port_of(shard) {
                    self.add_target(SocketAddr::new(remote.ip(), port), now);
                }
            }
            if let Some(target) = self.targets.iter_mut().find(|t| t.conn == Some(conn)) {
                target.backoff_us = MIN_DIAL_BACKOFF_US;
            }
        }
        self.events.push_back(Event::PeerConnected(PeerConnected {
            core: self.core,
            peer: index,
            validator_key: to_hex(&hello.validator_key),
            remote: remote.to_string(),
            outgoing,
        }));
        if let Some(link) = self.links.get_mut(&conn) {
            link.peer = Some((index, hello));
        }
    }
}
