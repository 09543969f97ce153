//! The simulated network of the whole-node simulator: connections between
//! nodes (and clients) as pairs of ends, each end a FIFO of frame bytes
//! delivered after a seeded latency (a lost packet delays the rest of its
//! stream, as a QUIC stream's retransmission does), with a bounded send
//! queue (past it `send_frame` is refused, as the endpoint's is). Frames
//! travel as bytes through pc-net's frame codec, so hostile bytes reach
//! the real decoder.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use pc_net::{encode_frame, ConnId, NetMessage, SendError};
use pc_node::{CoreMsg, NodeIo};

/// Most bytes queued on one end (the endpoint's send queue).
pub const MAX_QUEUED_BYTES: usize = 8 << 20;

/// Who is at an end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Party {
    /// A node (its index).
    Node(usize),
    /// A client of the simulation (submissions, the hostile peer).
    Client(usize),
}

/// One end of a connection.
#[derive(Debug, Clone)]
pub struct End {
    /// The other end.
    pub peer: (Party, ConnId),
    /// The other end's address.
    pub remote: SocketAddr,
    /// Bytes sent and not yet delivered.
    pub queued_bytes: usize,
    /// When the last frame sent on this end arrives (FIFO delivery).
    pub last_arrival_us: u64,
    /// Whether the handshake completed (frames may flow).
    pub open: bool,
}

impl End {
    /// A fresh end towards `peer` at `remote`, its handshake pending.
    pub fn new(peer: (Party, ConnId), remote: SocketAddr) -> End {
        End {
            peer,
            remote,
            queued_bytes: 0,
            last_arrival_us: 0,
            open: false,
        }
    }
}

/// What a party asked of the network while it was handled.
#[derive(Debug)]
pub enum Out {
    /// Frame bytes on an end.
    Frame {
        conn: ConnId,
        bytes: Vec<u8>,
        anchors: Vec<Vec<u8>>,
    },
    /// A close.
    Close { conn: ConnId },
    /// A dial.
    Connect { conn: ConnId, addr: SocketAddr },
}

/// The ends of every connection, by (party, conn).
#[derive(Debug, Default)]
pub struct Links {
    pub ends: BTreeMap<(Party, ConnId), End>,
    pub next_conn: BTreeMap<Party, u64>,
}

impl Links {
    /// A fresh connection id of `party`.
    pub fn new_conn(&mut self, party: Party) -> ConnId {
        let next = self.next_conn.entry(party).or_insert(1);
        let conn = ConnId(*next);
        *next += 1;
        conn
    }
}

/// The node core's [`NodeIo`] in the simulation: outputs are collected and
/// carried out by the world after the input.
pub struct SimIo<'a> {
    pub party: Party,
    pub links: &'a mut Links,
    pub out: &'a mut Vec<Out>,
}

impl NodeIo for SimIo<'_> {
    fn send_frame(&mut self, conn: ConnId, message: &NetMessage) -> Result<usize, SendError> {
        let Some(end) = self.links.ends.get_mut(&(self.party, conn)) else {
            return Err(SendError::UnknownConnection { conn });
        };
        if !end.open {
            return Err(SendError::Closed { conn });
        }
        let mut bytes = Vec::new();
        encode_frame(message, &mut bytes).map_err(SendError::TooLarge)?;
        if end.queued_bytes + bytes.len() > MAX_QUEUED_BYTES {
            return Err(SendError::QueueFull {
                conn,
                buffered_bytes: end.queued_bytes,
                frame_bytes: bytes.len(),
                max_bytes: MAX_QUEUED_BYTES,
            });
        }
        end.queued_bytes += bytes.len();
        let frame_bytes = bytes.len();
        let anchors = match message {
            NetMessage::Anchors { anchors, .. } => anchors.clone(),
            _ => Vec::new(),
        };
        self.out.push(Out::Frame {
            conn,
            bytes,
            anchors,
        });
        Ok(frame_bytes)
    }

    fn close(&mut self, conn: ConnId, _code: u32, _reason: &str) {
        self.out.push(Out::Close { conn });
    }

    fn connect(&mut self, addr: SocketAddr) -> Result<ConnId, String> {
        let conn = self.links.new_conn(self.party);
        self.out.push(Out::Connect { conn, addr });
        Ok(conn)
    }

    fn forward(&mut self, _core: usize, _message: CoreMsg) -> bool {
        // One core per simulated node: nothing crosses a ring.
        false
    }
}
