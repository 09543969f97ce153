//! One core's QUIC endpoint as a sans-IO state machine around
//! [`quinn_proto::Endpoint`] and its connections.
//!
//! Input comes in through `handle_*` (a datagram, a timer expiry, a frame
//! to send), each with the current time; output goes out through
//! `#[must_use] poll_*` (datagrams to send, events, the next timer). The
//! driver (a glommio UDP socket on the core, or the in-memory network of the
//! tests) owns the socket and the clock. After every `handle_*` call it must
//! drain [`NetEndpoint::poll_transmit`] and [`NetEndpoint::poll_event`] and
//! re-arm its timer from [`NetEndpoint::poll_timeout`].
//!
//! Inside, every input is followed by quinn-proto's contract: the touched
//! connection's endpoint events go to the endpoint (and its answers back),
//! its application events are handled (streams accepted, read, written),
//! and its datagrams are drained, until a pass makes no progress.
//!
//! Streams: each side sends its frames on one unidirectional stream it
//! opens; the peer may open exactly one (bidirectional streams are not
//! allowed by the transport parameters). Memory per connection is bounded:
//! the send queue by [`NetConfig::max_send_buffer_bytes`], the receive side
//! by one partial frame in the [`FrameDecoder`] plus quinn's flow-control
//! windows ([`STREAM_WINDOW_BYTES`], [`SEND_WINDOW_BYTES`]). With the
//! defaults that is at most about 4 + 4 + 1 + 4 = 13 MiB for a connection
//! whose peer sends and reads at the worst pace, times
//! [`NetConfig::max_connections`]. The event queue holds what one input
//! produced (at most the frames of one datagram, or of what flow control
//! let quinn buffer), since the driver drains it after every input.
//!
//! Anything a peer does against the protocol (a malformed or oversized
//! frame, a second stream, a stream ended inside a frame, stopping our
//! stream) is reported as [`NetEvent::Violation`] and the connection is
//! closed with [`PROTOCOL_VIOLATION_CODE`]. A datagram that reaches no
//! connection and starts none is reported against its source address.
//! Nothing a peer sends makes this module panic.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quinn_proto::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use quinn_proto::{
    ClientConfig, Connection, ConnectionError, ConnectionHandle, DatagramEvent, Dir, Endpoint,
    EndpointConfig, Event, IdleTimeout, Incoming, ReadError, ServerConfig, StreamEvent, StreamId,
    Transmit, TransportConfig, VarInt, WriteError,
};
use rustls::pki_types::CertificateDer;

pub use quinn_proto::EcnCodepoint;

use crate::frame::{encode_frame, FrameDecoder, FrameTooLarge, NetMessage, Violation};
use crate::tls::{self, spki_of_certificate, TlsError, TlsIdentity};

/// Application error code with which this endpoint closes a connection
/// whose peer broke the protocol.
pub const PROTOCOL_VIOLATION_CODE: u32 = 1;
/// Application error code of an orderly close.
pub const NORMAL_CLOSE_CODE: u32 = 0;
/// Flow-control window of a stream and of a connection's receive side: how
/// much a peer may send before this side has read it.
pub const STREAM_WINDOW_BYTES: u32 = 1 << 20;
/// Unacknowledged bytes quinn keeps per connection for sending.
pub const SEND_WINDOW_BYTES: u64 = 4 << 20;
/// Longest close reason kept from a peer or sent to one, in bytes.
pub const MAX_CLOSE_REASON_BYTES: usize = 256;

/// Settings of an endpoint.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Most connections at once, incoming and outgoing; further incoming
    /// ones are refused with `CONNECTION_REFUSED`.
    pub max_connections: usize,
    /// Most frame bytes queued per connection and not yet taken by its
    /// stream; at least one maximal frame.
    pub max_send_buffer_bytes: usize,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Ping interval that keeps a quiet connection alive (`None`: none).
    pub keep_alive: Option<Duration>,
    /// Seed of quinn's connection-id and reset randomness; `None` draws it
    /// from the OS. (TLS draws its own randomness from ring either way.)
    pub rng_seed: Option<[u8; 32]>,
    /// Key of the stateless resets (HMAC-SHA256 over connection ids);
    /// `None` draws one at random. A node derives it from its validator
    /// key, so that after a restart it answers packets of its previous
    /// run's connections with resets their peers accept, and they drop
    /// those connections at once instead of at the idle timeout.
    pub reset_key: Option<[u8; 32]>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            max_connections: 256,
            max_send_buffer_bytes: crate::frame::MAX_FRAME_BYTES + crate::frame::FRAME_PREFIX_BYTES,
            idle_timeout: Duration::from_secs(30),
            keep_alive: Some(Duration::from_secs(5)),
            rng_seed: None,
            reset_key: None,
        }
    }
}

/// An error setting an endpoint up or starting a connection.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The TLS material or configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A rustls configuration QUIC cannot use (no TLS 1.3
    /// `TLS_AES_128_GCM_SHA256`, needed for QUIC's initial packets).
    #[error("TLS configuration unusable for QUIC: {0}")]
    QuicTls(String),
    /// A setting out of range.
    #[error("network configuration: {0}")]
    Config(&'static str),
    /// quinn refused to start the connection.
    #[error("connecting to {remote}: {source}")]
    Connect {
        /// The address dialed.
        remote: SocketAddr,
        /// quinn's reason.
        source: quinn_proto::ConnectError,
    },
    /// [`NetConfig::max_connections`] connections are open.
    #[error("connecting to {remote}: {max} connections open, the limit")]
    ConnectionLimit {
        /// The address dialed.
        remote: SocketAddr,
        /// The limit.
        max: usize,
    },
}

/// Why a frame was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No such connection (never was, or gone).
    #[error("{conn}: no such connection")]
    UnknownConnection {
        /// The connection.
        conn: ConnId,
    },
    /// The connection is closed or closing.
    #[error("{conn}: connection closed")]
    Closed {
        /// The connection.
        conn: ConnId,
    },
    /// The send queue is full: back-pressure, try again after datagrams
    /// have gone out and been acknowledged.
    #[error(
        "{conn}: send queue holds {buffered_bytes} bytes, {frame_bytes} more exceed {max_bytes}"
    )]
    QueueFull {
        /// The connection.
        conn: ConnId,
        /// Bytes queued now.
        buffered_bytes: usize,
        /// The frame refused.
        frame_bytes: usize,
        /// The bound.
        max_bytes: usize,
    },
    /// The message does not fit one frame.
    #[error(transparent)]
    TooLarge(#[from] FrameTooLarge),
}

/// A connection of this endpoint. Never reused, unlike quinn's handles, so
/// a stale id can never reach another peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection {}", self.0)
    }
}

/// A UDP datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Where to.
    pub destination: SocketAddr,
    /// The ECN codepoint to set, if any.
    pub ecn: Option<EcnCodepoint>,
    /// The payload.
    pub contents: Vec<u8>,
}

/// Who broke the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A peer on an established (or handshaking) connection.
    Connection {
        /// The connection.
        conn: ConnId,
        /// Its remote address.
        remote: SocketAddr,
    },
    /// A source address no connection belongs to.
    Address(SocketAddr),
}

/// What a peer did against the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViolationReason {
    /// Its stream broke the framing.
    #[error(transparent)]
    Frame(#[from] Violation),
    /// It opened a second stream (one unidirectional stream per side).
    #[error("opened a second stream")]
    UnexpectedStream,
    /// Its stream ended inside a frame.
    #[error("stream ended inside a frame ({buffered_bytes} bytes of it received)")]
    StreamEndedInsideFrame {
        /// Bytes of the unfinished frame.
        buffered_bytes: usize,
    },
    /// It stopped the stream this side sends on.
    #[error("stopped this side's stream with code {code}")]
    StoppedOurStream {
        /// The peer's error code.
        code: u64,
    },
    /// A datagram that reached no connection and started none (garbage,
    /// or rarely a late packet of a connection already gone: weigh lightly).
    #[error("{bytes}-byte datagram for no connection")]
    UnroutableDatagram {
        /// Its size.
        bytes: usize,
    },
}

/// Why a connection ended (or never began).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// This side closed it with an application code (a close call, or
    /// [`PROTOCOL_VIOLATION_CODE`] after a violation).
    Local {
        /// The code.
        code: u64,
        /// The reason sent.
        reason: String,
    },
    /// This side found a transport or TLS error; the code is a QUIC
    /// transport error code (`0x100 + alert` for a TLS alert).
    LocalTransport {
        /// The code.
        code: u64,
        /// What failed.
        reason: String,
    },
    /// The peer closed with a transport or TLS error.
    PeerTransport {
        /// The code (`0x100 + alert` for a TLS alert).
        code: u64,
        /// The peer's reason, cut to [`MAX_CLOSE_REASON_BYTES`].
        reason: String,
    },
    /// The peer closed at the application level.
    PeerApplication {
        /// The code.
        code: u64,
        /// The peer's reason, cut to [`MAX_CLOSE_REASON_BYTES`].
        reason: String,
    },
    /// No traffic within the idle timeout.
    TimedOut,
    /// The peer reset the connection (stateless reset).
    Reset,
    /// No QUIC version in common.
    VersionMismatch,
    /// Connection ids ran out.
    CidsExhausted,
    /// Refused: [`NetConfig::max_connections`] connections were open.
    ConnectionLimit,
}

impl CloseReason {
    /// The QUIC transport error code, for transport-level closes.
    pub fn transport_code(&self) -> Option<u64> {
        match self {
            CloseReason::LocalTransport { code, .. } | CloseReason::PeerTransport { code, .. } => {
                Some(*code)
            }
            _ => None,
        }
    }

    /// The TLS alert, for a close with a QUIC `CRYPTO_ERROR` (RFC 9001
    /// §4.8: code `0x100 + alert`).
    pub fn tls_alert(&self) -> Option<u8> {
        self.transport_code()
            .filter(|code| (0x100..=0x1ff).contains(code))
            .map(|code| (code - 0x100) as u8)
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Local { code, reason } => write!(f, "closed here (code {code}): {reason}"),
            CloseReason::LocalTransport { code, reason } => {
                write!(f, "transport error here (code {code:#x}): {reason}")
            }
            CloseReason::PeerTransport { code, reason } => {
                write!(f, "peer closed with transport error {code:#x}: {reason}")
            }
            CloseReason::PeerApplication { code, reason } => {
                write!(f, "peer closed (code {code}): {reason}")
            }
            CloseReason::TimedOut => f.write_str("idle timeout"),
            CloseReason::Reset => f.write_str("reset by the peer"),
            CloseReason::VersionMismatch => f.write_str("no QUIC version in common"),
            CloseReason::CidsExhausted => f.write_str("connection ids exhausted"),
            CloseReason::ConnectionLimit => f.write_str("refused: connection limit reached"),
        }
    }
}

fn bounded_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_CLOSE_REASON_BYTES)]);
    text.into_owned()
}

impl From<&ConnectionError> for CloseReason {
    fn from(error: &ConnectionError) -> CloseReason {
        match error {
            ConnectionError::VersionMismatch => CloseReason::VersionMismatch,
            ConnectionError::TransportError(error) => CloseReason::LocalTransport {
                code: u64::from(error.code),
                reason: bounded_text(error.reason.as_bytes()),
            },
            ConnectionError::ConnectionClosed(close) => CloseReason::PeerTransport {
                code: u64::from(close.error_code),
                reason: bounded_text(&close.reason),
            },
            ConnectionError::ApplicationClosed(close) => CloseReason::PeerApplication {
                code: close.error_code.into_inner(),
                reason: bounded_text(&close.reason),
            },
            ConnectionError::Reset => CloseReason::Reset,
            ConnectionError::TimedOut => CloseReason::TimedOut,
            ConnectionError::LocallyClosed => CloseReason::Local {
                code: u64::from(NORMAL_CLOSE_CODE),
                reason: String::new(),
            },
            ConnectionError::CidsExhausted => CloseReason::CidsExhausted,
        }
    }
}

/// What happened on the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// The handshake completed.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The peer's address.
        remote: SocketAddr,
        /// The SPKI of the certificate the peer proved it holds (`None`: a
        /// client that presented no certificate).
        peer_spki: Option<Vec<u8>>,
        /// The negotiated application protocol (always [`tls::ALPN`]).
        alpn: Vec<u8>,
    },
    /// A complete frame arrived.
    Frame {
        /// The connection.
        conn: ConnId,
        /// The message.
        message: NetMessage,
        /// Its wire bytes (length prefix and body).
        bytes: usize,
    },
    /// A peer or source address broke the protocol (the connection, if
    /// any, is being closed).
    Violation {
        /// Who.
        source: Source,
        /// What.
        reason: ViolationReason,
    },
    /// A connection ended; its id is never used again.
    Closed {
        /// The connection.
        conn: ConnId,
        /// The peer's address.
        remote: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
    /// An incoming connection was refused before it became one (the
    /// connection limit, or its first packet failed the handshake, as a
    /// client offering another ALPN does).
    Refused {
        /// The client's address.
        remote: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
}

/// The frames queued for a connection's outgoing stream.
#[derive(Debug, Default)]
struct Outbound {
    stream: Option<StreamId>,
    queue: VecDeque<Vec<u8>>,
    /// Bytes of the front frame already written to the stream.
    front_written: usize,
    queued_bytes: usize,
}

/// The peer's stream and the frame being reassembled from it.
#[derive(Debug)]
struct Inbound {
    stream: StreamId,
    decoder: FrameDecoder,
    ended: bool,
}

struct Conn {
    id: ConnId,
    connection: Connection,
    remote: SocketAddr,
    peer_spki: Option<Vec<u8>>,
    connected: bool,
    /// A `Closed` event was emitted; nothing more is read or written.
    closed: bool,
    outbound: Outbound,
    inbound: Option<Inbound>,
}

/// One core's QUIC endpoint: connections, their streams and frames.
pub struct NetEndpoint {
    config: NetConfig,
    endpoint: Endpoint,
    client_config: ClientConfig,
    transport: Arc<TransportConfig>,
    connections: BTreeMap<ConnectionHandle, Conn>,
    handles: BTreeMap<ConnId, ConnectionHandle>,
    next_conn_id: u64,
    datagrams: VecDeque<Datagram>,
    events: VecDeque<NetEvent>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for NetEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetEndpoint")
            .field("connections", &self.connections.len())
            .field("queued_datagrams", &self.datagrams.len())
            .field("queued_events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl NetEndpoint {
    /// An endpoint with `identity` (a node: accepts connections and
    /// presents its certificate when dialing) or without (a plain client:
    /// dials only, without a certificate).
    pub fn new(config: NetConfig, identity: Option<&TlsIdentity>) -> Result<NetEndpoint, NetError> {
        if config.max_send_buffer_bytes
            < crate::frame::MAX_FRAME_BYTES + crate::frame::FRAME_PREFIX_BYTES
        {
            return Err(NetError::Config(
                "max_send_buffer_bytes must hold one maximal frame",
            ));
        }
        if config.max_connections == 0 {
            return Err(NetError::Config("max_connections must be at least 1"));
        }
        let transport = Arc::new(transport_config(&config));
        let client_config = quic_client_config(tls::client_config(identity)?, &transport)?;
        let server_config = match identity {
            Some(identity) => {
                let crypto = QuicServerConfig::try_from(tls::server_config(identity)?)
                    .map_err(|error| NetError::QuicTls(error.to_string()))?;
                let mut server = ServerConfig::with_crypto(Arc::new(crypto));
                server.transport_config(transport.clone());
                Some(Arc::new(server))
            }
            None => None,
        };
        let endpoint_config = match &config.reset_key {
            Some(key) => {
                EndpointConfig::new(Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key)))
            }
            None => EndpointConfig::default(),
        };
        let endpoint = Endpoint::new(
            Arc::new(endpoint_config),
            server_config,
            true,
            config.rng_seed,
        );
        Ok(NetEndpoint {
            config,
            endpoint,
            client_config,
            transport,
            connections: BTreeMap::new(),
            handles: BTreeMap::new(),
            next_conn_id: 0,
            datagrams: VecDeque::new(),
            events: VecDeque::new(),
            buf: Vec::new(),
        })
    }

    /// Starts a connection to `remote`; `server_name` goes into the TLS
    /// SNI (names are not checked: [`tls::CERTIFICATE_NAME`] will do).
    pub fn connect(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        server_name: &str,
    ) -> Result<ConnId, NetError> {
        let config = self.client_config.clone();
        self.connect_with_config(now, remote, server_name, config)
    }

    /// Starts a connection with a caller-made rustls client configuration
    /// (tools and tests: another ALPN, another certificate). It must use
    /// TLS 1.3 with a provider that has `TLS_AES_128_GCM_SHA256`.
    pub fn connect_with(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        server_name: &str,
        tls: rustls::ClientConfig,
    ) -> Result<ConnId, NetError> {
        let config = quic_client_config(tls, &self.transport)?;
        self.connect_with_config(now, remote, server_name, config)
    }

    fn connect_with_config(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        server_name: &str,
        config: ClientConfig,
    ) -> Result<ConnId, NetError> {
        if self.connections.len() >= self.config.max_connections {
            return Err(NetError::ConnectionLimit {
                remote,
                max: self.config.max_connections,
            });
        }
        let (handle, connection) = self
            .endpoint
            .connect(now, config, remote, server_name)
            .map_err(|source| NetError::Connect { remote, source })?;
        let conn = self.insert(handle, connection, remote);
        self.drive(handle, now);
        Ok(conn)
    }

    /// Takes one received UDP datagram from `from`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        ecn: Option<EcnCodepoint>,
        datagram: &[u8],
    ) {
        self.buf.clear();
        let event = self.endpoint.handle(
            now,
            from,
            None,
            ecn,
            BytesMut::from(datagram),
            &mut self.buf,
        );
        match event {
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                if let Some(conn) = self.connections.get_mut(&handle) {
                    conn.connection.handle_event(event);
                    self.drive(handle, now);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => self.accept(now, incoming),
            Some(DatagramEvent::Response(transmit)) => self.queue_response(&transmit),
            None => self.events.push_back(NetEvent::Violation {
                source: Source::Address(from),
                reason: ViolationReason::UnroutableDatagram {
                    bytes: datagram.len(),
                },
            }),
        }
    }

    /// Fires every connection timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<ConnectionHandle> = self
            .connections
            .iter_mut()
            .filter_map(|(handle, conn)| {
                let at = conn.connection.poll_timeout()?;
                (at <= now).then_some(*handle)
            })
            .collect();
        for handle in due {
            if let Some(conn) = self.connections.get_mut(&handle) {
                conn.connection.handle_timeout(now);
            }
            self.drive(handle, now);
        }
    }

    /// Queues `message` as one frame on the connection's stream (opened
    /// once the handshake allows it); its wire bytes.
    pub fn send_frame(
        &mut self,
        now: Instant,
        conn: ConnId,
        message: &NetMessage,
    ) -> Result<usize, SendError> {
        let mut frame = Vec::new();
        encode_frame(message, &mut frame)?;
        let bytes = frame.len();
        self.queue_bytes(now, conn, frame).map(|()| bytes)
    }

    /// Closes a connection with an application `code` and `reason`.
    pub fn close(&mut self, now: Instant, conn: ConnId, code: u32, reason: &str) {
        let Some(&handle) = self.handles.get(&conn) else {
            return;
        };
        if let Some(entry) = self.connections.get_mut(&handle) {
            close_locally(entry, now, code, reason, &mut self.events);
        }
        self.drive(handle, now);
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.datagrams.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<NetEvent> {
        self.events.pop_front()
    }

    /// When [`NetEndpoint::handle_timeout`] must be called next, if ever.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.connections
            .values_mut()
            .filter_map(|conn| conn.connection.poll_timeout())
            .min()
    }

    /// Connections open (including handshaking and closing ones).
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// The round-trip time QUIC estimates for every established, open
    /// connection (a frame's send-to-acknowledgement latency).
    pub fn round_trip_times(&self) -> Vec<std::time::Duration> {
        self.connections
            .values()
            .filter(|conn| conn.connected && !conn.closed)
            .map(|conn| conn.connection.rtt())
            .collect()
    }

    /// The remote address of a connection.
    pub fn remote_address(&self, conn: ConnId) -> Option<SocketAddr> {
        self.conn(conn).map(|c| c.remote)
    }

    /// The SPKI of the peer's certificate, once connected.
    pub fn peer_spki(&self, conn: ConnId) -> Option<&[u8]> {
        self.conn(conn).and_then(|c| c.peer_spki.as_deref())
    }

    /// Frame bytes queued on a connection and not yet taken by its stream
    /// (for the caller's back-pressure).
    pub fn queued_send_bytes(&self, conn: ConnId) -> Option<usize> {
        self.conn(conn).map(|c| c.outbound.queued_bytes)
    }

    fn conn(&self, conn: ConnId) -> Option<&Conn> {
        self.handles
            .get(&conn)
            .and_then(|handle| self.connections.get(handle))
    }

    fn insert(
        &mut self,
        handle: ConnectionHandle,
        connection: Connection,
        remote: SocketAddr,
    ) -> ConnId {
        let id = ConnId(self.next_conn_id);
        self.next_conn_id += 1;
        self.handles.insert(id, handle);
        let previous = self.connections.insert(
            handle,
            Conn {
                id,
                connection,
                remote,
                peer_spki: None,
                connected: false,
                closed: false,
                outbound: Outbound::default(),
                inbound: None,
            },
        );
        assert!(previous.is_none(), "quinn reused a live connection handle");
        id
    }

    fn accept(&mut self, now: Instant, incoming: Incoming) {
        let remote = incoming.remote_address();
        self.buf.clear();
        if self.connections.len() >= self.config.max_connections {
            let transmit = self.endpoint.refuse(incoming, &mut self.buf);
            self.queue_response(&transmit);
            self.events.push_back(NetEvent::Refused {
                remote,
                reason: CloseReason::ConnectionLimit,
            });
            return;
        }
        match self.endpoint.accept(incoming, now, &mut self.buf, None) {
            Ok((handle, connection)) => {
                self.insert(handle, connection, remote);
                self.drive(handle, now);
            }
            Err(error) => {
                if let Some(transmit) = &error.response {
                    self.queue_response(transmit);
                }
                self.events.push_back(NetEvent::Refused {
                    remote,
                    reason: CloseReason::from(&error.cause),
                });
            }
        }
    }

    /// Queues a datagram the endpoint itself wrote into `self.buf`.
    fn queue_response(&mut self, transmit: &Transmit) {
        self.datagrams.push_back(Datagram {
            destination: transmit.destination,
            ecn: transmit.ecn,
            contents: self.buf[..transmit.size].to_vec(),
        });
        self.buf.clear();
    }

    /// Queues `bytes` on the connection's stream as they are, without a
    /// frame around them: for tools and tests that play a hostile peer
    /// (a node never sends anything but frames).
    pub fn send_unframed(
        &mut self,
        now: Instant,
        conn: ConnId,
        bytes: Vec<u8>,
    ) -> Result<(), SendError> {
        self.queue_bytes(now, conn, bytes)
    }

    fn queue_bytes(&mut self, now: Instant, conn: ConnId, bytes: Vec<u8>) -> Result<(), SendError> {
        let handle = *self
            .handles
            .get(&conn)
            .ok_or(SendError::UnknownConnection { conn })?;
        let entry = self
            .connections
            .get_mut(&handle)
            .expect("every handle maps to a connection");
        if entry.closed {
            return Err(SendError::Closed { conn });
        }
        let max_bytes = self.config.max_send_buffer_bytes;
        let buffered_bytes = entry.outbound.queued_bytes;
        if buffered_bytes + bytes.len() > max_bytes {
            return Err(SendError::QueueFull {
                conn,
                buffered_bytes,
                frame_bytes: bytes.len(),
                max_bytes,
            });
        }
        entry.outbound.queued_bytes += bytes.len();
        entry.outbound.queue.push_back(bytes);
        flush(entry, now, &mut self.events);
        self.drive(handle, now);
        Ok(())
    }

    /// quinn's contract for one connection after an input: endpoint events
    /// to the endpoint and back, application events, datagrams out, until
    /// a pass changes nothing; a drained connection is forgotten.
    fn drive(&mut self, handle: ConnectionHandle, now: Instant) {
        let Some(conn) = self.connections.get_mut(&handle) else {
            return;
        };
        loop {
            let mut progress = false;
            while let Some(event) = conn.connection.poll_endpoint_events() {
                progress = true;
                if let Some(reply) = self.endpoint.handle_event(handle, event) {
                    conn.connection.handle_event(reply);
                }
            }
            while let Some(event) = conn.connection.poll() {
                progress = true;
                on_connection_event(conn, event, now, &mut self.events);
            }
            self.buf.clear();
            while let Some(transmit) = conn.connection.poll_transmit(now, 1, &mut self.buf) {
                progress = true;
                self.datagrams.push_back(Datagram {
                    destination: transmit.destination,
                    ecn: transmit.ecn,
                    contents: self.buf[..transmit.size].to_vec(),
                });
                self.buf.clear();
            }
            if !progress {
                break;
            }
        }
        if conn.connection.is_drained() {
            let id = conn.id;
            self.connections.remove(&handle);
            self.handles.remove(&id);
        }
    }
}

fn transport_config(config: &NetConfig) -> TransportConfig {
    let idle_ms = u32::try_from(config.idle_timeout.as_millis()).unwrap_or(u32::MAX);
    let mut transport = TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(0))
        .max_concurrent_uni_streams(VarInt::from_u32(1))
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW_BYTES))
        .receive_window(VarInt::from_u32(STREAM_WINDOW_BYTES))
        .send_window(SEND_WINDOW_BYTES)
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(idle_ms))))
        .keep_alive_interval(config.keep_alive)
        .datagram_receive_buffer_size(None);
    transport
}

fn quic_client_config(
    tls: rustls::ClientConfig,
    transport: &Arc<TransportConfig>,
) -> Result<ClientConfig, NetError> {
    let crypto =
        QuicClientConfig::try_from(tls).map_err(|error| NetError::QuicTls(error.to_string()))?;
    let mut config = ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport.clone());
    Ok(config)
}

fn on_connection_event(
    conn: &mut Conn,
    event: Event,
    now: Instant,
    events: &mut VecDeque<NetEvent>,
) {
    match event {
        Event::Connected => {
            conn.connected = true;
            conn.peer_spki = peer_spki(&conn.connection);
            events.push_back(NetEvent::Connected {
                conn: conn.id,
                remote: conn.remote,
                peer_spki: conn.peer_spki.clone(),
                alpn: negotiated_alpn(&conn.connection),
            });
            flush(conn, now, events);
        }
        Event::ConnectionLost { reason } => {
            if !conn.closed {
                conn.closed = true;
                conn.outbound = Outbound::default();
                events.push_back(NetEvent::Closed {
                    conn: conn.id,
                    remote: conn.remote,
                    reason: CloseReason::from(&reason),
                });
            }
        }
        Event::Stream(StreamEvent::Opened { .. }) => accept_streams(conn, now, events),
        Event::Stream(StreamEvent::Readable { id }) => {
            if conn
                .inbound
                .as_ref()
                .is_some_and(|inbound| inbound.stream == id)
            {
                read_inbound(conn, now, events);
            }
        }
        Event::Stream(StreamEvent::Writable { .. })
        | Event::Stream(StreamEvent::Available { dir: Dir::Uni }) => flush(conn, now, events),
        Event::Stream(StreamEvent::Stopped { error_code, .. }) => violate(
            conn,
            now,
            ViolationReason::StoppedOurStream {
                code: error_code.into_inner(),
            },
            events,
        ),
        Event::HandshakeDataReady
        | Event::Stream(StreamEvent::Finished { .. })
        | Event::Stream(StreamEvent::Available { dir: Dir::Bi })
        | Event::DatagramReceived
        | Event::DatagramsUnblocked => {}
    }
}

/// Takes the peer's stream: the first unidirectional one is its frame
/// stream; any other is a violation.
fn accept_streams(conn: &mut Conn, now: Instant, events: &mut VecDeque<NetEvent>) {
    if conn.closed {
        return;
    }
    while let Some(stream) = conn.connection.streams().accept(Dir::Uni) {
        if conn.inbound.is_some() {
            return violate(conn, now, ViolationReason::UnexpectedStream, events);
        }
        conn.inbound = Some(Inbound {
            stream,
            decoder: FrameDecoder::new(),
            ended: false,
        });
        read_inbound(conn, now, events);
        if conn.closed {
            return;
        }
    }
    if conn.connection.streams().accept(Dir::Bi).is_some() {
        violate(conn, now, ViolationReason::UnexpectedStream, events);
    }
}

/// Reads what the peer's stream holds into frames.
fn read_inbound(conn: &mut Conn, now: Instant, events: &mut VecDeque<NetEvent>) {
    if conn.closed {
        return;
    }
    let Some(inbound) = conn.inbound.as_mut().filter(|inbound| !inbound.ended) else {
        return;
    };
    let mut stream = conn.connection.recv_stream(inbound.stream);
    let Ok(mut chunks) = stream.read(true) else {
        return;
    };
    let mut violation = None;
    loop {
        match chunks.next(usize::MAX) {
            Ok(Some(chunk)) => {
                let mut input: &[u8] = &chunk.bytes;
                while violation.is_none() {
                    match inbound.decoder.decode(&mut input) {
                        Ok(Some(message)) => events.push_back(NetEvent::Frame {
                            conn: conn.id,
                            message,
                            bytes: inbound.decoder.last_frame_bytes(),
                        }),
                        Ok(None) => break,
                        Err(error) => violation = Some(ViolationReason::Frame(error)),
                    }
                }
                if violation.is_some() {
                    break;
                }
            }
            Ok(None) => {
                inbound.ended = true;
                if !inbound.decoder.is_at_boundary() {
                    violation = Some(ViolationReason::StreamEndedInsideFrame {
                        buffered_bytes: inbound.decoder.buffered_bytes(),
                    });
                }
                break;
            }
            Err(ReadError::Reset(_)) => {
                // The peer abandoned its stream: nothing more comes on it.
                inbound.ended = true;
                break;
            }
            Err(ReadError::Blocked) => break,
        }
    }
    let _ = chunks.finalize();
    if let Some(reason) = violation {
        violate(conn, now, reason, events);
    }
}

/// Moves queued frames into the connection's stream as far as flow control
/// allows, opening the stream first if needed.
fn flush(conn: &mut Conn, now: Instant, events: &mut VecDeque<NetEvent>) {
    if conn.closed || !conn.connected || conn.outbound.queue.is_empty() {
        return;
    }
    let stream = match conn.outbound.stream {
        Some(stream) => stream,
        None => match conn.connection.streams().open(Dir::Uni) {
            Some(stream) => *conn.outbound.stream.insert(stream),
            None => return,
        },
    };
    let outbound = &mut conn.outbound;
    while let Some(front) = outbound.queue.front() {
        match conn
            .connection
            .send_stream(stream)
            .write(&front[outbound.front_written..])
        {
            Ok(0) | Err(WriteError::Blocked) => break,
            Ok(written) => {
                outbound.front_written += written;
                outbound.queued_bytes -= written;
                if outbound.front_written == front.len() {
                    outbound.queue.pop_front();
                    outbound.front_written = 0;
                }
            }
            Err(WriteError::Stopped(code)) => {
                let reason = ViolationReason::StoppedOurStream {
                    code: code.into_inner(),
                };
                return violate(conn, now, reason, events);
            }
            Err(WriteError::ClosedStream) => {
                conn.outbound = Outbound::default();
                return;
            }
        }
    }
}

/// Reports a violation by the connection's peer and closes the connection.
fn violate(
    conn: &mut Conn,
    now: Instant,
    reason: ViolationReason,
    events: &mut VecDeque<NetEvent>,
) {
    if conn.closed {
        return;
    }
    let text = reason.to_string();
    events.push_back(NetEvent::Violation {
        source: Source::Connection {
            conn: conn.id,
            remote: conn.remote,
        },
        reason,
    });
    close_locally(conn, now, PROTOCOL_VIOLATION_CODE, &text, events);
}

fn close_locally(
    conn: &mut Conn,
    now: Instant,
    code: u32,
    reason: &str,
    events: &mut VecDeque<NetEvent>,
) {
    if conn.closed {
        return;
    }
    let reason = bounded_text(reason.as_bytes());
    conn.connection.close(
        now,
        VarInt::from_u32(code),
        Bytes::copy_from_slice(reason.as_bytes()),
    );
    conn.closed = true;
    conn.outbound = Outbound::default();
    events.push_back(NetEvent::Closed {
        conn: conn.id,
        remote: conn.remote,
        reason: CloseReason::Local {
            code: u64::from(code),
            reason,
        },
    });
}

/// The SPKI of the first certificate the peer presented, if any.
fn peer_spki(connection: &Connection) -> Option<Vec<u8>> {
    let identity = connection.crypto_session().peer_identity()?;
    let certificates = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let end_entity = certificates.first()?;
    spki_of_certificate(end_entity).ok().map(<[u8]>::to_vec)
}

fn negotiated_alpn(connection: &Connection) -> Vec<u8> {
    connection
        .crypto_session()
        .handshake_data()
        .and_then(|data| data.downcast::<HandshakeData>().ok())
        .and_then(|data| data.protocol)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
