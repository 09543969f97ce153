//! `pc-net` owns the network of a Phantom-Coin node (DESIGN §7): the wire
//! messages and their framing ([`frame`]), the `Hello` that binds a TLS key
//! to a genesis validator key ([`identity`]), TLS 1.3 over rustls with the
//! `ring` provider and ALPN `phantom/0` ([`tls`]), and one core's QUIC
//! endpoint as a sans-IO state machine around quinn-proto ([`endpoint`]).
//!
//! It never opens a socket, never reads a clock and never spawns a task:
//! datagrams and the current time come in through `handle_*` calls,
//! datagrams to send, events and the next timer go out through `poll_*`
//! calls, so a glommio driver on each core and the deterministic simulator
//! of the tests drive the same code. (TLS key shares and QUIC connection
//! ids draw randomness; the QUIC part can be seeded.) It never trusts a
//! peer: every frame length is checked before a byte of it is buffered,
//! every count has a bound, every connection's buffers are capped, and
//! malformed input becomes a typed violation of that peer or source
//! address, never a panic. It does not decide admission or score peers:
//! it reports what each peer proved (its TLS key) and did (frames and
//! violations); the node checks Hellos against the genesis committee and
//! keeps the peer book.
#![warn(missing_docs)]

pub mod endpoint;
pub mod frame;
pub mod identity;
pub mod tls;

pub use endpoint::{
    CloseReason, ConnId, Datagram, NetConfig, NetEndpoint, NetError, NetEvent, SendError, Source,
    ViolationReason,
};
pub use frame::{encode_frame, FrameDecoder, NetMessage, Violation, MAX_FRAME_BYTES};
pub use identity::{Committee, Hello, HelloError, ShardPort};
pub use tls::{TlsError, TlsIdentity, ALPN};
