//! Endpoints driven through an in-memory network: every datagram one
//! endpoint sends is handed to the endpoint at its destination, and when
//! nothing is in flight the clock jumps to the earliest timer.

use std::net::{Ipv4Addr, SocketAddr};

use pc_codec::{Bip340, SigningKey};

use super::*;
use crate::frame::{EventOutcome, EventReceipt, MAX_ANCHOR_BYTES};
use crate::identity::{Committee, Hello, HelloError, ShardPort};

const NETWORK: [u8; 8] = *b"testnet0";

fn address(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A small deterministic generator (xorshift64*) for garbage and faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

struct Node {
    endpoint: NetEndpoint,
    addr: SocketAddr,
    identity: Option<TlsIdentity>,
    events: Vec<NetEvent>,
}

/// Applied to a datagram in flight: may change it; `false` drops it.
type Fault = Box<dyn FnMut(&mut Vec<u8>) -> bool>;

struct Network {
    nodes: Vec<Node>,
    now: Instant,
    /// Applied to every datagram in flight; `false` drops it.
    fault: Option<Fault>,
}

impl Network {
    fn new() -> Network {
        Network {
            nodes: Vec::new(),
            now: Instant::now(),
            fault: None,
        }
    }

    /// Adds a node (with a TLS identity) or a plain client (without).
    fn add(&mut self, port: u16, with_identity: bool, config: NetConfig) -> usize {
        let identity = with_identity.then(|| TlsIdentity::generate().unwrap());
        let endpoint = NetEndpoint::new(config, identity.as_ref()).unwrap();
        self.nodes.push(Node {
            endpoint,
            addr: address(port),
            identity,
            events: Vec::new(),
        });
        self.nodes.len() - 1
    }

    fn seeded_config(seed: u8) -> NetConfig {
        NetConfig {
            rng_seed: Some([seed; 32]),
            ..NetConfig::default()
        }
    }

    fn connect(&mut self, from: usize, to: usize) -> ConnId {
        let (now, remote) = (self.now, self.nodes[to].addr);
        self.nodes[from]
            .endpoint
            .connect(now, remote, tls::CERTIFICATE_NAME)
            .unwrap()
    }

    fn collect_events(&mut self) {
        for node in &mut self.nodes {
            while let Some(event) = node.endpoint.poll_event() {
                node.events.push(event);
            }
        }
    }

    /// Delivers every queued datagram once; true if any was in flight.
    fn deliver(&mut self) -> bool {
        let mut moved = false;
        for from in 0..self.nodes.len() {
            let source = self.nodes[from].addr;
            let mut outgoing = Vec::new();
            while let Some(datagram) = self.nodes[from].endpoint.poll_transmit() {
                outgoing.push(datagram);
            }
            for mut datagram in outgoing {
                moved = true;
                if let Some(fault) = &mut self.fault {
                    if !fault(&mut datagram.contents) {
                        continue;
                    }
                }
                let now = self.now;
                if let Some(to) = self
                    .nodes
                    .iter()
                    .position(|n| n.addr == datagram.destination)
                {
                    self.nodes[to].endpoint.handle_datagram(
                        now,
                        source,
                        datagram.ecn,
                        &datagram.contents,
                    );
                }
            }
        }
        self.collect_events();
        moved
    }

    /// Delivers, or when nothing is in flight fires the earliest timer.
    fn step(&mut self) -> bool {
        if self.deliver() {
            return true;
        }
        let Some(next) = self
            .nodes
            .iter_mut()
            .filter_map(|node| node.endpoint.poll_timeout())
            .min()
        else {
            return false;
        };
        self.now = self.now.max(next);
        let now = self.now;
        for node in &mut self.nodes {
            node.endpoint.handle_timeout(now);
        }
        self.collect_events();
        true
    }

    fn run_until(&mut self, what: &str, done: impl Fn(&Network) -> bool) {
        for _ in 0..100_000 {
            if done(self) {
                return;
            }
            if !self.step() {
                break;
            }
        }
        assert!(done(self), "never happened: {what}");
    }

    fn spki(&self, node: usize) -> Vec<u8> {
        let identity = self.nodes[node].identity.as_ref().expect("a node");
        identity.spki_der().to_vec()
    }

    fn connected(&self, node: usize) -> Vec<(ConnId, Option<Vec<u8>>, Vec<u8>)> {
        self.nodes[node]
            .events
            .iter()
            .filter_map(|event| match event {
                NetEvent::Connected {
                    conn,
                    peer_spki,
                    alpn,
                    ..
                } => Some((*conn, peer_spki.clone(), alpn.clone())),
                _ => None,
            })
            .collect()
    }

    fn frames(&self, node: usize) -> Vec<(ConnId, NetMessage)> {
        self.nodes[node]
            .events
            .iter()
            .filter_map(|event| match event {
                NetEvent::Frame { conn, message, .. } => Some((*conn, message.clone())),
                _ => None,
            })
            .collect()
    }

    fn violations(&self, node: usize) -> Vec<(Source, ViolationReason)> {
        self.nodes[node]
            .events
            .iter()
            .filter_map(|event| match event {
                NetEvent::Violation { source, reason } => Some((*source, reason.clone())),
                _ => None,
            })
            .collect()
    }

    fn closes(&self, node: usize) -> Vec<CloseReason> {
        self.nodes[node]
            .events
            .iter()
            .filter_map(|event| match event {
                NetEvent::Closed { reason, .. } | NetEvent::Refused { reason, .. } => {
                    Some(reason.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn send(&mut self, node: usize, conn: ConnId, message: &NetMessage) {
        let now = self.now;
        self.nodes[node]
            .endpoint
            .send_frame(now, conn, message)
            .unwrap();
    }

    /// Connects `client` to `server` and waits for both handshakes.
    fn handshake(&mut self, client: usize, server: usize) -> (ConnId, ConnId) {
        let client_conn = self.connect(client, server);
        let before = self.connected(server).len();
        self.run_until("both sides connected", |net| {
            net.connected(client).iter().any(|c| c.0 == client_conn)
                && net.connected(server).len() > before
        });
        let server_conn = self.connected(server)[before].0;
        (client_conn, server_conn)
    }
}

fn validator_key(seed: u8) -> SigningKey {
    SigningKey::from_secret_bytes(&[seed; 32]).unwrap()
}

fn ports(port: u16) -> Vec<ShardPort> {
    vec![ShardPort { shard: 0, port }]
}

fn small_messages() -> Vec<NetMessage> {
    vec![
        NetMessage::Announce {
            shard: 0,
            ids: vec![[1; 32], [2; 32]],
        },
        NetMessage::GetRange {
            shard: 0,
            from_round: 5,
            max_count: 100,
        },
        NetMessage::BalanceQuery {
            request: 3,
            owner: [8; 32],
        },
    ]
}

#[test]
fn handshake_negotiates_phantom_alpn_and_each_side_sees_the_others_certificate_key() {
    let mut net = Network::new();
    let server = net.add(4000, true, Network::seeded_config(1));
    let client = net.add(4001, true, Network::seeded_config(2));
    let (client_conn, server_conn) = net.handshake(client, server);

    let (server_spki, client_spki) = (net.spki(server), net.spki(client));
    assert_ne!(server_spki, client_spki);
    assert_eq!(
        net.connected(client),
        vec![(client_conn, Some(server_spki.clone()), tls::ALPN.to_vec())]
    );
    assert_eq!(
        net.connected(server),
        vec![(server_conn, Some(client_spki.clone()), tls::ALPN.to_vec())]
    );
    let endpoint = &net.nodes[client].endpoint;
    assert_eq!(endpoint.peer_spki(client_conn), Some(&server_spki[..]));
    let endpoint = &net.nodes[server].endpoint;
    assert_eq!(endpoint.peer_spki(server_conn), Some(&client_spki[..]));
    assert_eq!(
        endpoint.remote_address(server_conn),
        Some(net.nodes[client].addr)
    );
}

#[test]
fn hellos_are_exchanged_and_verified_then_frames_flow_both_ways_in_order() {
    let mut net = Network::new();
    let server = net.add(4010, true, Network::seeded_config(3));
    let client = net.add(4011, true, Network::seeded_config(4));
    let (client_conn, server_conn) = net.handshake(client, server);
    let (server_key, client_key) = (validator_key(1), validator_key(2));
    let committee = Committee::new(
        NETWORK,
        1,
        vec![server_key.public_key(), client_key.public_key()],
    );

    let client_hello = Hello::sign(
        &client_key,
        ports(4011),
        &net.spki(client),
        &NETWORK,
        &[9; 32],
    );
    let server_hello = Hello::sign(
        &server_key,
        ports(4010),
        &net.spki(server),
        &NETWORK,
        &[9; 32],
    );
    net.send(
        client,
        client_conn,
        &NetMessage::Hello(client_hello.clone()),
    );
    net.send(
        server,
        server_conn,
        &NetMessage::Hello(server_hello.clone()),
    );
    // A batch of three maximal anchors: a frame of over 3 MiB, several
    // flow-control windows long, after the Hello and before small frames.
    let anchors = NetMessage::Anchors {
        shard: 0,
        anchors: (0..3u8).map(|i| vec![i; MAX_ANCHOR_BYTES]).collect(),
    };
    net.send(server, server_conn, &anchors);
    for message in small_messages() {
        net.send(client, client_conn, &message);
        net.send(server, server_conn, &message);
    }
    net.run_until("every frame arrived", |net| {
        net.frames(client).len() == 5 && net.frames(server).len() == 4
    });

    let mut expected_at_server = vec![NetMessage::Hello(client_hello.clone())];
    expected_at_server.extend(small_messages());
    assert_eq!(
        net.frames(server),
        with_conn(server_conn, expected_at_server)
    );
    let mut expected_at_client = vec![NetMessage::Hello(server_hello.clone()), anchors];
    expected_at_client.extend(small_messages());
    assert_eq!(
        net.frames(client),
        with_conn(client_conn, expected_at_client)
    );

    // Each side checks the Hello against the key the peer proved in TLS.
    let seen_by_server = net.nodes[server].endpoint.peer_spki(server_conn);
    assert_eq!(
        client_hello.verify(seen_by_server, &committee, &Bip340),
        Ok(())
    );
    let seen_by_client = net.nodes[client].endpoint.peer_spki(client_conn);
    assert_eq!(
        server_hello.verify(seen_by_client, &committee, &Bip340),
        Ok(())
    );
    // A Hello relayed onto a connection with another TLS key is refused.
    assert!(matches!(
        client_hello.verify(seen_by_client, &committee, &Bip340),
        Err(HelloError::BindingDoesNotVerify { .. })
    ));
    assert!(net.violations(server).is_empty() && net.violations(client).is_empty());
    let endpoint = &net.nodes[server].endpoint;
    assert_eq!(endpoint.queued_send_bytes(server_conn), Some(0));
}

fn with_conn(conn: ConnId, messages: Vec<NetMessage>) -> Vec<(ConnId, NetMessage)> {
    messages
        .into_iter()
        .map(|message| (conn, message))
        .collect()
}

#[test]
fn client_without_certificate_submits_and_gets_a_receipt_but_cannot_pass_a_hello() {
    let mut net = Network::new();
    let server = net.add(4020, true, Network::seeded_config(5));
    let client = net.add(4021, false, Network::seeded_config(6));
    let (client_conn, server_conn) = net.handshake(client, server);
    assert_eq!(net.connected(server)[0].1, None, "no client certificate");
    assert!(net.connected(client)[0].1.is_some());

    let submit = NetMessage::SubmitMicroEvents {
        request: 7,
        shard: 0,
        events: vec![vec![1, 2, 3]],
    };
    net.send(client, client_conn, &submit);
    net.run_until("submission arrived", |net| net.frames(server).len() == 1);
    assert_eq!(net.frames(server)[0].1, submit);
    let receipt = NetMessage::Receipt {
        request: 7,
        shard: 0,
        retry_after_ms: 250,
        results: vec![EventReceipt {
            event_id: [0; 32],
            outcome: EventOutcome::rejected(crate::frame::RejectReason::Malformed, "3 bytes"),
        }],
    };
    net.send(server, server_conn, &receipt);
    net.run_until("receipt arrived", |net| net.frames(client).len() == 1);
    assert_eq!(net.frames(client)[0].1, receipt);

    // A Hello over a certificate-less connection cannot bind anything.
    let key = validator_key(1);
    let committee = Committee::new(NETWORK, 1, vec![key.public_key()]);
    let some_identity = TlsIdentity::generate().unwrap();
    let hello = Hello::sign(&key, ports(1), some_identity.spki_der(), &NETWORK, &[9; 32]);
    let peer_spki = net.nodes[server].endpoint.peer_spki(server_conn);
    assert!(matches!(
        hello.verify(peer_spki, &committee, &Bip340),
        Err(HelloError::NoPeerCertificate { .. })
    ));
}

#[test]
fn another_alpn_is_refused_with_the_no_application_protocol_alert() {
    for offered in [vec![b"phantom/1".to_vec()], vec![b"h3".to_vec()], vec![]] {
        let mut net = Network::new();
        let server = net.add(4030, true, Network::seeded_config(7));
        let client = net.add(4031, false, Network::seeded_config(8));
        let mut tls = tls::client_config(None).unwrap();
        tls.alpn_protocols = offered.clone();
        let now = net.now;
        let remote = net.nodes[server].addr;
        let conn = net.nodes[client]
            .endpoint
            .connect_with(now, remote, tls::CERTIFICATE_NAME, tls)
            .unwrap();
        net.run_until("the client's connection closed", |net| {
            !net.closes(client).is_empty()
        });

        let at_client = net.closes(client);
        assert_eq!(at_client.len(), 1, "offered {offered:?}");
        // QUIC CRYPTO_ERROR 0x100 + TLS alert no_application_protocol (120).
        assert_eq!(
            at_client[0].transport_code(),
            Some(0x178),
            "{}",
            at_client[0]
        );
        assert_eq!(at_client[0].tls_alert(), Some(120));
        assert!(matches!(at_client[0], CloseReason::PeerTransport { .. }));
        assert!(net.connected(client).is_empty() && net.connected(server).is_empty());
        let at_server = net.closes(server);
        assert_eq!(at_server.len(), 1);
        assert_eq!(at_server[0].tls_alert(), Some(120), "{}", at_server[0]);
        assert_eq!(net.nodes[server].endpoint.connection_count(), 0);
        assert!(matches!(
            net.nodes[client]
                .endpoint
                .send_frame(now, conn, &small_messages()[0]),
            Err(SendError::UnknownConnection { .. } | SendError::Closed { .. })
        ));
    }
}

/// Sets up a client and a server, then has the client put `raw` bytes on
/// its stream; returns the network and the server's violations.
fn server_violations_after_raw_bytes(raw: &[u8], port: u16) -> (Network, usize, usize) {
    let mut net = Network::new();
    let server = net.add(port, true, Network::seeded_config(9));
    let client = net.add(port + 1, true, Network::seeded_config(10));
    let (client_conn, _) = net.handshake(client, server);
    let now = net.now;
    net.send(client, client_conn, &small_messages()[0]);
    net.nodes[client]
        .endpoint
        .queue_bytes(now, client_conn, raw.to_vec())
        .unwrap();
    net.run_until("the client saw its connection closed", |net| {
        !net.closes(client).is_empty()
    });
    (net, server, client)
}

fn assert_violation_closes_the_connection(net: &Network, server: usize, client: usize) {
    let closes = net.closes(client);
    assert_eq!(
        closes,
        vec![CloseReason::PeerApplication {
            code: u64::from(PROTOCOL_VIOLATION_CODE),
            reason: net.violations(server)[0].1.to_string(),
        }]
    );
    assert!(matches!(
        net.closes(server)[..],
        [CloseReason::Local { code, .. }] if code == u64::from(PROTOCOL_VIOLATION_CODE)
    ));
    assert!(matches!(
        net.violations(server)[0].0,
        Source::Connection { remote, .. } if remote == net.nodes[client].addr
    ));
    // The frame before the violation was delivered.
    assert_eq!(net.frames(server).len(), 1);
}

#[test]
fn four_gib_length_prefix_on_the_wire_is_a_violation_that_closes_the_connection() {
    let (net, server, client) = server_violations_after_raw_bytes(&[0xff; 4], 4040);
    assert_eq!(
        net.violations(server)
            .into_iter()
            .map(|v| v.1)
            .collect::<Vec<_>>(),
        vec![ViolationReason::Frame(Violation::FrameTooLarge {
            body_bytes: u64::from(u32::MAX)
        })]
    );
    assert_violation_closes_the_connection(&net, server, client);
}

#[test]
fn malformed_frame_body_is_a_violation_that_closes_the_connection() {
    // A frame of 2 bytes: tag 99 is no message.
    let (net, server, client) = server_violations_after_raw_bytes(&[2, 0, 0, 0, 99, 0], 4050);
    assert!(matches!(
        net.violations(server)[..],
        [(_, ViolationReason::Frame(Violation::Malformed(_)))]
    ));
    assert_violation_closes_the_connection(&net, server, client);
}

/// The quinn connection of `conn` on `node`, for tests that misbehave
/// below the frame layer.
fn raw_connection(net: &mut Network, node: usize, conn: ConnId) -> &mut Connection {
    let endpoint = &mut net.nodes[node].endpoint;
    let handle = endpoint.handles[&conn];
    &mut endpoint.connections.get_mut(&handle).unwrap().connection
}

#[test]
fn a_second_stream_is_a_violation() {
    let mut net = Network::new();
    let server = net.add(4060, true, Network::seeded_config(11));
    let client = net.add(4061, true, Network::seeded_config(12));
    let (client_conn, _) = net.handshake(client, server);
    net.send(client, client_conn, &small_messages()[0]);
    net.run_until("first frame arrived", |net| net.frames(server).len() == 1);
    // The first stream ends cleanly (finish at a frame boundary is fine),
    // then the client opens another.
    let now = net.now;
    let first = net.nodes[client]
        .endpoint
        .connections
        .values()
        .next()
        .unwrap()
        .outbound
        .stream
        .unwrap();
    raw_connection(&mut net, client, client_conn)
        .send_stream(first)
        .finish()
        .unwrap();
    let handle = net.nodes[client].endpoint.handles[&client_conn];
    net.nodes[client].endpoint.drive(handle, now);
    // Once the server has read the finished stream it grants a new one.
    let mut second = None;
    for _ in 0..1000 {
        second = raw_connection(&mut net, client, client_conn)
            .streams()
            .open(Dir::Uni);
        if second.is_some() || !net.step() {
            break;
        }
    }
    let second = second.expect("the server grants another stream");
    let now = net.now;
    let connection = raw_connection(&mut net, client, client_conn);
    connection.send_stream(second).write(&[0, 0, 0, 0]).unwrap();
    let handle = net.nodes[client].endpoint.handles[&client_conn];
    net.nodes[client].endpoint.drive(handle, now);
    net.run_until("the client saw its connection closed", |net| {
        !net.closes(client).is_empty()
    });
    assert!(matches!(
        net.violations(server)[..],
        [(_, ViolationReason::UnexpectedStream)]
    ));
    assert_violation_closes_the_connection(&net, server, client);
}

#[test]
fn a_stream_ending_inside_a_frame_is_a_violation() {
    let mut net = Network::new();
    let server = net.add(4070, true, Network::seeded_config(13));
    let client = net.add(4071, true, Network::seeded_config(14));
    let (client_conn, _) = net.handshake(client, server);
    net.send(client, client_conn, &small_messages()[0]);
    let now = net.now;
    net.nodes[client]
        .endpoint
        .queue_bytes(now, client_conn, vec![10, 0, 0, 0, 1, 2])
        .unwrap();
    let stream = net.nodes[client]
        .endpoint
        .connections
        .values()
        .next()
        .unwrap()
        .outbound
        .stream
        .unwrap();
    raw_connection(&mut net, client, client_conn)
        .send_stream(stream)
        .finish()
        .unwrap();
    let handle = net.nodes[client].endpoint.handles[&client_conn];
    net.nodes[client].endpoint.drive(handle, now);
    net.run_until("the client saw its connection closed", |net| {
        !net.closes(client).is_empty()
    });
    assert_eq!(
        net.violations(server)
            .into_iter()
            .map(|v| v.1)
            .collect::<Vec<_>>(),
        vec![ViolationReason::StreamEndedInsideFrame { buffered_bytes: 6 }]
    );
    assert_violation_closes_the_connection(&net, server, client);
}

#[test]
fn random_datagrams_never_panic_are_reported_by_address_and_spare_live_connections() {
    let mut net = Network::new();
    let server = net.add(4080, true, Network::seeded_config(15));
    let client = net.add(4081, true, Network::seeded_config(16));
    let (client_conn, server_conn) = net.handshake(client, server);
    let attacker = address(4089);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let now = net.now;
    for round in 0..3000 {
        let len = rng.below(1500) as usize;
        let mut datagram = rng.bytes(len);
        // Some look like QUIC v1 long-header packets (Initial, 0-RTT,
        // Handshake), some like short-header ones.
        match round % 4 {
            0 if len >= 5 => {
                datagram[0] = 0xc0 | (datagram[0] & 0x3f);
                datagram[1..5].copy_from_slice(&1u32.to_be_bytes());
            }
            1 if len >= 1 => datagram[0] = 0x40 | (datagram[0] & 0x3f),
            _ => {}
        }
        let target = if round % 2 == 0 { server } else { client };
        net.nodes[target]
            .endpoint
            .handle_datagram(now, attacker, None, &datagram);
        // Garbage also arrives from the peer's own address.
        let peer = net.nodes[1 - target].addr;
        net.nodes[target]
            .endpoint
            .handle_datagram(now, peer, None, &rng.bytes(len.min(64)));
    }
    // What the endpoints answered the attacker with goes nowhere.
    net.deliver();
    let reported = net.violations(server).len() + net.violations(client).len();
    assert!(reported > 1000, "garbage is reported: {reported}");
    assert!(net
        .violations(server)
        .iter()
        .chain(net.violations(client).iter())
        .all(|(source, reason)| matches!(source, Source::Address(_))
            && matches!(reason, ViolationReason::UnroutableDatagram { .. })));
    assert!(net.closes(server).is_empty() && net.closes(client).is_empty());

    // The live connection still carries frames both ways.
    net.send(client, client_conn, &small_messages()[1]);
    net.send(server, server_conn, &small_messages()[2]);
    net.run_until("frames after the garbage", |net| {
        net.frames(server).len() == 1 && net.frames(client).len() == 1
    });
}

#[test]
fn corrupted_handshake_datagrams_never_panic() {
    for seed in 1..=12u64 {
        let mut net = Network::new();
        let server = net.add(4090, true, Network::seeded_config(17));
        let client = net.add(4091, true, Network::seeded_config(18));
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        net.fault = Some(Box::new(move |datagram: &mut Vec<u8>| match rng.below(8) {
            0 => false,
            1 | 2 if !datagram.is_empty() => {
                let index = rng.below(datagram.len() as u64) as usize;
                datagram[index] ^= 1 << rng.below(8);
                true
            }
            3 => {
                datagram.truncate(rng.below(datagram.len() as u64 + 1) as usize);
                true
            }
            _ => true,
        }));
        let conn = net.connect(client, server);
        net.send(client, conn, &small_messages()[0]);
        // Run a bounded while; whether the handshake survives the faults
        // depends on the seed, but nothing may panic and every frame that
        // arrives is one that was sent.
        for _ in 0..3000 {
            if !net.step() {
                break;
            }
        }
        assert!(net
            .frames(server)
            .iter()
            .all(|f| f.1 == small_messages()[0]));
    }
}

#[test]
fn connections_over_the_limit_are_refused() {
    let mut net = Network::new();
    let config = NetConfig {
        max_connections: 1,
        ..Network::seeded_config(19)
    };
    let server = net.add(4100, true, config);
    let first = net.add(4101, true, Network::seeded_config(20));
    let second = net.add(4102, false, Network::seeded_config(21));
    net.handshake(first, server);
    net.connect(second, server);
    net.run_until("the second client was refused", |net| {
        !net.closes(second).is_empty()
    });
    assert_eq!(net.closes(server), vec![CloseReason::ConnectionLimit]);
    // QUIC CONNECTION_REFUSED.
    assert_eq!(net.closes(second)[0].transport_code(), Some(0x2));
    assert_eq!(net.nodes[server].endpoint.connection_count(), 1);
}

#[test]
fn send_queue_is_bounded_until_the_stream_drains_it() {
    let mut net = Network::new();
    let smallest_queue = NetConfig {
        max_send_buffer_bytes: crate::frame::MAX_FRAME_BYTES + crate::frame::FRAME_PREFIX_BYTES,
        ..Network::seeded_config(23)
    };
    let server = net.add(4110, true, Network::seeded_config(22));
    let client = net.add(4111, true, smallest_queue);
    // Before the handshake no stream exists, so frames queue.
    let conn = net.connect(client, server);
    let big = NetMessage::Anchors {
        shard: 0,
        anchors: vec![vec![1; MAX_ANCHOR_BYTES]],
    };
    let now = net.now;
    let mut queued = 0;
    let error = loop {
        match net.nodes[client].endpoint.send_frame(now, conn, &big) {
            Ok(_) => queued += 1,
            Err(error) => break error,
        }
    };
    assert!(queued >= 1);
    assert!(matches!(error, SendError::QueueFull { max_bytes, .. }
        if max_bytes == crate::frame::MAX_FRAME_BYTES + crate::frame::FRAME_PREFIX_BYTES));
    let queued_bytes = net.nodes[client].endpoint.queued_send_bytes(conn).unwrap();
    assert!(queued_bytes <= crate::frame::MAX_FRAME_BYTES + crate::frame::FRAME_PREFIX_BYTES);
    net.run_until("every queued frame arrived", |net| {
        net.frames(server).len() == queued
    });
    assert_eq!(net.nodes[client].endpoint.queued_send_bytes(conn), Some(0));
}

#[test]
fn closed_connection_ids_are_never_reused() {
    let mut net = Network::new();
    let server = net.add(4120, true, Network::seeded_config(24));
    let client = net.add(4121, true, Network::seeded_config(25));
    let (first, _) = net.handshake(client, server);
    let now = net.now;
    net.nodes[client]
        .endpoint
        .close(now, first, NORMAL_CLOSE_CODE, "bye");
    net.run_until("both sides forgot the connection", |net| {
        net.nodes[client].endpoint.connection_count() == 0
            && net.nodes[server].endpoint.connection_count() == 0
    });
    assert_eq!(
        net.closes(server),
        vec![CloseReason::PeerApplication {
            code: 0,
            reason: "bye".into()
        }]
    );
    let (second, _) = net.handshake(client, server);
    assert_ne!(first, second);
    assert_eq!(
        net.nodes[client]
            .endpoint
            .send_frame(net.now, first, &small_messages()[0]),
        Err(SendError::UnknownConnection { conn: first })
    );
}

/// Presents a certificate with a key that is not the certificate's.
#[derive(Debug)]
struct BorrowedCertificate(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for BorrowedCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[test]
fn a_certificate_presented_without_its_private_key_fails_the_handshake() {
    let mut net = Network::new();
    let server = net.add(4130, true, Network::seeded_config(26));
    let client = net.add(4131, false, Network::seeded_config(27));
    // The client shows the server's own certificate (public, it saw it)
    // but can only sign with a key of its own.
    let victim = net.nodes[server].identity.clone().unwrap();
    let own_key = TlsIdentity::generate().unwrap();
    let signing_key = tls::provider()
        .key_provider
        .load_private_key(rustls::pki_types::PrivateKeyDer::Pkcs8(
            own_key.private_key_der().clone_key(),
        ))
        .unwrap();
    let mut config = tls::client_config(None).unwrap();
    config.client_auth_cert_resolver = Arc::new(BorrowedCertificate(Arc::new(
        rustls::sign::CertifiedKey::new(vec![victim.certificate_der().clone()], signing_key),
    )));
    let (now, remote) = (net.now, net.nodes[server].addr);
    net.nodes[client]
        .endpoint
        .connect_with(now, remote, tls::CERTIFICATE_NAME, config)
        .unwrap();
    net.run_until("the server refused the handshake", |net| {
        !net.closes(server).is_empty() && !net.closes(client).is_empty()
    });
    assert!(
        net.connected(server).is_empty(),
        "the server never admits it"
    );
    // QUIC CRYPTO_ERROR with the TLS alert decrypt_error (51): the
    // CertificateVerify signature does not verify under the certificate.
    assert_eq!(
        net.closes(server)[0].tls_alert(),
        Some(51),
        "{}",
        net.closes(server)[0]
    );
    assert_eq!(
        net.closes(client)[0].tls_alert(),
        Some(51),
        "{}",
        net.closes(client)[0]
    );
}
