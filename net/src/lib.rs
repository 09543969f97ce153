//! `pc-net` owns the network of a Phantom-Coin node (DESIGN §7): the wire
//! messages and their framing ([`frame`]), the `Hello` that binds a TLS key
//! to a genesis validator key ([`identity`]), TLS 1.3 over rustls with the
//! `ring` provider and ALPN `phantom/0` ([`tls`]), one core's QUIC
//! endpoint as a sans-IO state machine around quinn-proto ([`endpoint`]),
//! the glommio driver that runs an endpoint over a UDP socket ([`driver`]),
//! and the persisted peer book with scores and bans ([`peer_book`]).
//!
//! The protocol modules never open a socket, never read a clock and never
//! spawn a task: datagrams and the current time come in through `handle_*`
//! calls, datagrams to send, events and the next timer go out through
//! `poll_*` calls, so the glommio [`driver`] on each core and the tests'
//! in-memory network drive the same code. (TLS key shares and QUIC
//! connection ids draw randomness; the QUIC part can be seeded.) Only
//! [`driver`] does I/O (one persistent receive per socket, a timer task
//! re-armed after every input), and [`peer_book`] reads and atomically
//! rewrites its one file; both take time from their caller or the
//! executor. Nothing trusts a peer: every frame length is checked before a
//! byte of it is buffered, every count has a bound, every connection's
//! buffers are capped, and malformed input becomes a typed violation of
//! that peer or source address, never a panic. The endpoint reports what
//! each peer proved (its TLS key) and did (frames and violations); the node
//! checks Hellos against the genesis committee and turns what peers did
//! into peer-book events.
#![warn(missing_docs)]

#[cfg(feature = "glommio")]
pub mod driver;
pub mod endpoint;
pub mod frame;
pub mod identity;
pub mod peer_book;
pub mod tls;

pub use endpoint::{
    CloseReason, ConnId, Datagram, NetConfig, NetEndpoint, NetError, NetEvent, SendError, Source,
    ViolationReason,
};
pub use frame::{encode_frame, FrameDecoder, NetMessage, Violation, MAX_FRAME_BYTES};
pub use identity::{Committee, Hello, HelloError, ShardPort};
pub use tls::{TlsError, TlsIdentity, ALPN};
