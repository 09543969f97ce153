//! Two endpoints, each driven by a glommio [`Driver`] over a real UDP
//! socket on 127.0.0.1, on one small executor (fits an 8 MiB memlock):
//! handshake with ALPN `phantom/0`, Hellos and frames both ways, an orderly
//! close and a clean shutdown. Every wait is bounded by a glommio timer.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::UdpSocket;
use glommio::timer::Timer;
use glommio::{LocalExecutorBuilder, Placement};
use pc_codec::{Bip340, SigningKey};
use pc_net::driver::{Driver, DriverHandle};
use pc_net::endpoint::NORMAL_CLOSE_CODE;
use pc_net::frame::MAX_ANCHOR_BYTES;
use pc_net::tls::CERTIFICATE_NAME;
use pc_net::{
    CloseReason, Committee, ConnId, Hello, NetConfig, NetEndpoint, NetEvent, NetMessage, ShardPort,
    Source, TlsIdentity, ViolationReason, ALPN,
};

const NETWORK: [u8; 8] = *b"testnet0";
/// Bound of the whole scenario: a hang fails the test instead.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound of one wait for an event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `scenario` on one small glommio executor, failing if it takes
/// longer than [`SCENARIO_TIMEOUT`].
fn run_bounded<F, Fut>(scenario: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .name("udp-loopback")
        .io_memory(256 << 10)
        .ring_depth(32)
        .spawn(move || async move {
            let task = glommio::spawn_local(scenario());
            let finished = within(SCENARIO_TIMEOUT, task).await;
            assert!(finished.is_some(), "scenario hung for {SCENARIO_TIMEOUT:?}");
        })
        .expect("executor starts")
        .join()
        .expect("executor thread");
}

/// `future`'s output, or `None` once `timeout` passed.
async fn within<T>(timeout: Duration, future: impl Future<Output = T>) -> Option<T> {
    let mut future = std::pin::pin!(future);
    let mut timer = Timer::new(timeout);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if Pin::new(&mut timer).poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// A driven endpoint and the events it reported.
struct Node {
    driver: Driver,
    handle: DriverHandle,
    events: LocalReceiver<NetEvent>,
    addr: SocketAddr,
    identity: TlsIdentity,
}

impl Node {
    fn start() -> Node {
        let identity = TlsIdentity::generate().unwrap();
        let endpoint = NetEndpoint::new(NetConfig::default(), Some(&identity)).unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let (sender, events) = local_channel::new_unbounded();
        let driver = Driver::spawn(socket, endpoint, move |event| {
            sender.try_send(event).expect("the test holds the receiver");
        });
        let handle = driver.handle();
        assert_eq!(handle.local_addr().unwrap(), addr);
        Node {
            driver,
            handle,
            events,
            addr,
            identity,
        }
    }

    /// The next event, within [`EVENT_TIMEOUT`].
    async fn next_event(&self, waiting_for: &str) -> NetEvent {
        within(EVENT_TIMEOUT, self.events.recv())
            .await
            .unwrap_or_else(|| panic!("no event within {EVENT_TIMEOUT:?}: {waiting_for}"))
            .expect("the driver holds the sender")
    }

    fn spki(&self) -> Vec<u8> {
        self.identity.spki_der().to_vec()
    }

    fn peer_spki(&self, conn: ConnId) -> Option<Vec<u8>> {
        self.handle
            .with_endpoint(|endpoint| endpoint.peer_spki(conn).map(<[u8]>::to_vec))
    }
}

fn hello(seed: u8, node: &Node) -> Hello {
    let key = SigningKey::from_secret_bytes(&[seed; 32]).unwrap();
    let ports = vec![ShardPort {
        shard: 0,
        port: node.addr.port(),
    }];
    Hello::sign(&key, ports, &node.spki(), &NETWORK, &[9; 32])
}

#[test]
fn two_drivers_handshake_exchange_hellos_and_frames_over_udp_and_shut_down() {
    run_bounded(|| async {
        let server = Node::start();
        let client = Node::start();

        let client_conn = client
            .handle
            .connect(server.addr, CERTIFICATE_NAME)
            .unwrap();
        let NetEvent::Connected {
            conn,
            remote,
            peer_spki,
            alpn,
        } = client.next_event("client connected").await
        else {
            panic!("the client's first event is not Connected");
        };
        assert_eq!(conn, client_conn);
        assert_eq!(remote, server.addr);
        assert_eq!(peer_spki, Some(server.spki()));
        assert_eq!(alpn, ALPN);
        let NetEvent::Connected {
            conn: server_conn,
            remote,
            peer_spki,
            alpn,
        } = server.next_event("server connected").await
        else {
            panic!("the server's first event is not Connected");
        };
        assert_eq!(remote, client.addr);
        assert_eq!(peer_spki, Some(client.spki()));
        assert_eq!(alpn, ALPN);

        // A Hello each way, then a frame each way, in order.
        let (client_hello, server_hello) = (hello(2, &client), hello(1, &server));
        let committee = Committee::new(
            NETWORK,
            1,
            vec![client_hello.validator_key, server_hello.validator_key],
        );
        let to_server = NetMessage::GetRange {
            shard: 0,
            from_round: 5,
            max_count: 100,
        };
        let to_client = NetMessage::Announce {
            shard: 0,
            ids: vec![[1; 32], [2; 32]],
        };
        // Three maximal anchors: a frame of over 3 MiB, several
        // flow-control windows and thousands of datagrams long.
        let anchors = NetMessage::Anchors {
            shard: 0,
            anchors: (0..3u8).map(|i| vec![i; MAX_ANCHOR_BYTES]).collect(),
        };
        let client_sends = [NetMessage::Hello(client_hello.clone()), to_server];
        let server_sends = [NetMessage::Hello(server_hello.clone()), anchors, to_client];
        for message in &client_sends {
            client.handle.send_frame(client_conn, message).unwrap();
        }
        for message in &server_sends {
            server.handle.send_frame(server_conn, message).unwrap();
        }
        for expected in &client_sends {
            let event = server.next_event("frame at the server").await;
            assert_eq!(
                event,
                NetEvent::Frame {
                    conn: server_conn,
                    message: expected.clone(),
                    bytes: wire_bytes(expected),
                }
            );
        }
        for expected in &server_sends {
            let event = client.next_event("frame at the client").await;
            assert_eq!(
                event,
                NetEvent::Frame {
                    conn: client_conn,
                    message: expected.clone(),
                    bytes: wire_bytes(expected),
                }
            );
        }
        // Each Hello binds the TLS key its sender proved.
        let seen_by_server = server.peer_spki(server_conn);
        assert_eq!(
            client_hello.verify(seen_by_server.as_deref(), &committee, &Bip340),
            Ok(())
        );
        let seen_by_client = client.peer_spki(client_conn);
        assert_eq!(
            server_hello.verify(seen_by_client.as_deref(), &committee, &Bip340),
            Ok(())
        );

        // Garbage from a stray socket is a violation of its address, and
        // the drivers keep working.
        let stray = UdpSocket::bind("127.0.0.1:0").unwrap();
        stray.send_to(&[0xff; 40], server.addr).await.unwrap();
        let event = server.next_event("violation").await;
        assert_eq!(
            event,
            NetEvent::Violation {
                source: Source::Address(stray.local_addr().unwrap()),
                reason: ViolationReason::UnroutableDatagram { bytes: 40 },
            }
        );

        // The client shuts down: its connection closes with the normal
        // code, the server sees the peer's close, then shuts down too.
        let (client_handle, server_handle) = (client.handle.clone(), server.handle.clone());
        let client_stats = client
            .driver
            .shutdown(NORMAL_CLOSE_CODE, "bye", Duration::from_secs(5))
            .await
            .unwrap();
        let event = within(EVENT_TIMEOUT, client.events.recv()).await;
        assert!(
            matches!(
                event,
                Some(Some(NetEvent::Closed {
                    conn,
                    reason: CloseReason::Local { code: 0, .. },
                    ..
                })) if conn == client_conn
            ),
            "the client reports its own close: {event:?}"
        );
        let event = server.next_event("close at the server").await;
        assert_eq!(
            event,
            NetEvent::Closed {
                conn: server_conn,
                remote: client.addr,
                reason: CloseReason::PeerApplication {
                    code: 0,
                    reason: "bye".into()
                },
            }
        );
        let server_stats = server
            .driver
            .shutdown(NORMAL_CLOSE_CODE, "bye", Duration::from_secs(5))
            .await
            .unwrap();
        assert!(client_handle.is_stopped() && server_handle.is_stopped());
        assert_eq!(client_handle.with_endpoint(|e| e.connection_count()), 0);
        assert_eq!(server_handle.with_endpoint(|e| e.connection_count()), 0);
        for stats in [client_stats, server_stats] {
            assert!(stats.datagrams_sent > 0 && stats.datagrams_received > 0);
            assert_eq!((stats.send_errors, stats.receive_errors), (0, 0));
        }
    });
}

#[test]
fn an_idle_driver_stops_at_once_and_a_dial_into_the_void_is_abandoned() {
    run_bounded(|| async {
        let idle = Node::start();
        let dialer = Node::start();
        // Nobody listens on this port: the dialer keeps retransmitting its
        // Initial until it is stopped.
        let void = UdpSocket::bind("127.0.0.1:0").unwrap();
        let void_addr = void.local_addr().unwrap();
        drop(void);
        dialer.handle.connect(void_addr, CERTIFICATE_NAME).unwrap();
        Timer::new(Duration::from_millis(50)).await;
        let stats = within(Duration::from_secs(2), dialer.driver.stop())
            .await
            .expect("stop is prompt")
            .unwrap();
        assert!(stats.datagrams_sent >= 1);
        let stats = within(Duration::from_secs(2), idle.driver.stop())
            .await
            .expect("stop is prompt")
            .unwrap();
        assert_eq!(stats, Default::default());
    });
}

/// The wire bytes of `message` as one frame.
fn wire_bytes(message: &NetMessage) -> usize {
    let mut frame = Vec::new();
    pc_net::frame::encode_frame(message, &mut frame).unwrap();
    frame.len()
}
