//! Anchors over loopback QUIC for `bench --network quic`: the same
//! workload as the in-process bench, sent by a feeder on its own executor
//! thread through a real pc-net endpoint (QUIC, TLS 1.3, length-prefixed
//! `Anchors` frames) to one endpoint per engine core, whose shards take
//! them exactly as they take a file's anchors.
//!
//! Flow control is by credit: the feeder keeps at most [`WINDOW_ANCHORS`]
//! anchors per shard sent and not yet taken; the engine answers every
//! anchor it took with an `Announce` of its id (the node's "I have this"),
//! which returns one credit. The engine's per-shard queue holds
//! [`QUEUE_ANCHORS`]; a feeder that overruns it is cut off with a protocol
//! violation, so memory stays bounded whatever arrives. The feeder closes
//! its connection when every anchor was taken; that ends the input of the
//! shards it fed, and once no feeder connection is left, of every shard of
//! the core. (A core the feeder never reaches ends at the engine's
//! `max_run`.)
//!
//! This intake does not check `Hello`s: it is a benchmark harness bound to
//! loopback, measuring what the network path costs, not admission.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::{LocalExecutorBuilder, Placement};
use pc_net::driver::{bind_udp, Driver, DriverHandle};
use pc_net::endpoint::{NORMAL_CLOSE_CODE, PROTOCOL_VIOLATION_CODE};
use pc_net::tls::CERTIFICATE_NAME;
use pc_net::{
    CloseReason, ConnId, NetConfig, NetEndpoint, NetEvent, NetMessage, SendError, TlsIdentity,
};

use crate::client::{within, ClientError};
use crate::tools::workload::{Workload, WorkloadError, WorkloadFile};
use crate::EngineError;

/// Anchors per shard the feeder may have sent and not yet seen taken.
pub const WINDOW_ANCHORS: usize = 8;
/// Anchors per shard the engine queues between its endpoint and the shard.
pub const QUEUE_ANCHORS: usize = 4 * WINDOW_ANCHORS;
/// How long the feeder keeps trying to reach an engine core.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(60);
/// glommio registered memory of the feeder's executor.
const FEEDER_IO_MEMORY: usize = 256 << 10;

/// Why the bench's feeder stopped before every anchor was taken.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The feeder's executor did not start or failed.
    #[error("its executor: {0}")]
    Executor(std::io::Error),
    /// Its client endpoint.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A shard's workload file.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// An engine core whose port is past 65535.
    #[error("port {base_port} + core {core} is out of range")]
    PortRange {
        /// Port of the first core.
        base_port: u16,
        /// The core.
        core: usize,
    },
    /// A dial that did not start.
    #[error("{addr}: {source}")]
    Connect {
        /// The engine core's address.
        addr: SocketAddr,
        /// Why.
        source: pc_net::NetError,
    },
    /// An engine core that did not answer the handshake in time.
    #[error("{addr}: no QUIC handshake within {CONNECT_DEADLINE:?}")]
    NoHandshake {
        /// The engine core's address.
        addr: SocketAddr,
    },
    /// A frame the endpoint refused.
    #[error("shard {shard}: {source}")]
    Send {
        /// The shard fed.
        shard: u16,
        /// Why.
        source: SendError,
    },
    /// The feeder's own endpoint stopped.
    #[error("the feeder's endpoint stopped")]
    EndpointStopped,
    /// The engine closed a feeding connection.
    #[error("the engine closed the connection: {0}")]
    Closed(CloseReason),
}

/// One anchor as it arrived, and the connection to credit.
pub(crate) struct NetAnchor {
    pub conn: ConnId,
    pub bytes: Vec<u8>,
}

/// One core's endpoint and the queues to its shards.
pub(crate) struct QuicIntake {
    pub driver: Driver,
    pub handle: DriverHandle,
    /// Per local shard, in the order given to [`start`].
    pub receivers: Vec<LocalReceiver<NetAnchor>>,
}

/// Starts the endpoint of one engine core on `bind` (on the current
/// executor), with one queue per shard of `shards`.
pub(crate) fn start(bind: SocketAddr, shards: &[u16]) -> Result<QuicIntake, EngineError> {
    let identity = TlsIdentity::generate()?;
    let config = NetConfig {
        max_connections: 16,
        ..NetConfig::default()
    };
    let endpoint = NetEndpoint::new(config, Some(&identity))?;
    let socket = bind_udp(bind).map_err(|source| EngineError::Bind { addr: bind, source })?;
    let mut senders: BTreeMap<u16, LocalSender<NetAnchor>> = BTreeMap::new();
    let mut receivers = Vec::new();
    for shard in shards {
        let (sender, receiver) = local_channel::new_bounded(QUEUE_ANCHORS);
        senders.insert(*shard, sender);
        receivers.push(receiver);
    }
    // The callback may not call the handle before it exists.
    let handle_slot: Rc<RefCell<Option<DriverHandle>>> = Rc::new(RefCell::new(None));
    let fed: Rc<RefCell<BTreeMap<ConnId, BTreeSet<u16>>>> = Rc::default();
    let mut connected: BTreeSet<ConnId> = BTreeSet::new();
    let driver = {
        let handle_slot = handle_slot.clone();
        Driver::spawn(socket, endpoint, move |event| match event {
            NetEvent::Frame {
                conn,
                message: NetMessage::Anchors { shard, anchors },
                ..
            } => {
                let Some(sender) = senders.get(&shard) else {
                    return;
                };
                fed.borrow_mut().entry(conn).or_default().insert(shard);
                for bytes in anchors {
                    if sender.try_send(NetAnchor { conn, bytes }).is_err() {
                        if let Some(handle) = handle_slot.borrow().as_ref() {
                            handle.close(
                                conn,
                                PROTOCOL_VIOLATION_CODE,
                                "anchors beyond the credit window",
                            );
                        }
                        break;
                    }
                }
            }
            NetEvent::Connected { conn, .. } => {
                connected.insert(conn);
            }
            NetEvent::Closed { conn, .. } => {
                // The end of the feeder's input for the shards it fed; once
                // no feeder connection is left, the end of every shard's
                // (one the feeder never reached, or had nothing for).
                if let Some(shards) = fed.borrow_mut().remove(&conn) {
                    for shard in shards {
                        senders.remove(&shard);
                    }
                }
                if connected.remove(&conn) && connected.is_empty() {
                    senders.clear();
                }
            }
            _ => {}
        })
    };
    let handle = driver.handle();
    *handle_slot.borrow_mut() = Some(handle.clone());
    Ok(QuicIntake {
        driver,
        handle,
        receivers,
    })
}

/// What the feeder did.
#[derive(Debug, Clone, Copy, Default)]
pub struct FeedStats {
    /// Anchors sent.
    pub anchors: u64,
    /// Encoded anchor bytes sent (frame prefixes and QUIC overhead aside).
    pub bytes: u64,
    /// Datagrams the feeder's socket sent.
    pub datagrams_sent: u64,
    /// Datagrams received.
    pub datagrams_received: u64,
}

/// One shard's feed.
struct ShardFeed {
    shard: u16,
    file: WorkloadFile,
    next: usize,
    in_flight: usize,
    conn: ConnId,
}

/// Sends every shard's workload to `127.0.0.1:base_port + placement[shard]`
/// on a new executor thread, with the credit window; returns when every
/// anchor was taken (or with the first error).
pub fn spawn_feeder(
    workload: Workload,
    placement: Vec<usize>,
    base_port: u16,
) -> Result<glommio::ExecutorJoinHandle<Result<FeedStats, FeedError>>, FeedError> {
    LocalExecutorBuilder::new(Placement::Unbound)
        .name("pc-bench-feeder")
        .io_memory(FEEDER_IO_MEMORY)
        .ring_depth(64)
        .spawn(move || async move {
            pc_net::driver::spawn_park_guard();
            feed(workload, placement, base_port).await
        })
        .map_err(|e| FeedError::Executor(e.into()))
}

async fn feed(
    workload: Workload,
    placement: Vec<usize>,
    base_port: u16,
) -> Result<FeedStats, FeedError> {
    let (driver, handle, events) = crate::client::start_endpoint([127, 0, 0, 1])?;
    let result = feed_all(&workload, &placement, base_port, &handle, &events).await;
    let stats = driver.handle().stats();
    let _ = driver
        .shutdown(
            NORMAL_CLOSE_CODE,
            "workload sent",
            Duration::from_millis(500),
        )
        .await;
    result.map(|mut feed| {
        feed.datagrams_sent = stats.datagrams_sent;
        feed.datagrams_received = stats.datagrams_received;
        feed
    })
}

/// Connects to `addr`, retrying until [`CONNECT_DEADLINE`] (the engine
/// opens its endpoints only once its shards are loaded).
async fn connect(
    addr: SocketAddr,
    handle: &DriverHandle,
    events: &LocalReceiver<NetEvent>,
) -> Result<ConnId, FeedError> {
    let deadline = Instant::now() + CONNECT_DEADLINE;
    loop {
        let conn = handle
            .connect(addr, CERTIFICATE_NAME)
            .map_err(|source| FeedError::Connect { addr, source })?;
        let outcome = within(Duration::from_millis(500), async {
            while let Some(event) = events.recv().await {
                match event {
                    NetEvent::Connected { conn: c, .. } if c == conn => return true,
                    NetEvent::Closed { conn: c, .. } if c == conn => return false,
                    _ => {}
                }
            }
            false
        })
        .await;
        if outcome == Some(true) {
            return Ok(conn);
        }
        handle.close(conn, NORMAL_CLOSE_CODE, "retrying");
        if Instant::now() >= deadline {
            return Err(FeedError::NoHandshake { addr });
        }
        glommio::timer::sleep(Duration::from_millis(200)).await;
    }
}

async fn feed_all(
    workload: &Workload,
    placement: &[usize],
    base_port: u16,
    handle: &DriverHandle,
    events: &LocalReceiver<NetEvent>,
) -> Result<FeedStats, FeedError> {
    let mut conns: BTreeMap<usize, ConnId> = BTreeMap::new();
    let mut feeds = Vec::new();
    for (shard, core) in placement.iter().enumerate() {
        let shard = shard as u16;
        let file = WorkloadFile::open(&workload.shard_path(shard))?;
        let conn = match conns.get(core) {
            Some(conn) => *conn,
            None => {
                let port = u16::try_from(usize::from(base_port) + core).map_err(|_| {
                    FeedError::PortRange {
                        base_port,
                        core: *core,
                    }
                })?;
                let conn =
                    connect(SocketAddr::from(([127, 0, 0, 1], port)), handle, events).await?;
                conns.insert(*core, conn);
                conn
            }
        };
        feeds.push(ShardFeed {
            shard,
            file,
            next: 0,
            in_flight: 0,
            conn,
        });
    }
    let mut stats = FeedStats::default();
    loop {
        // Fill every shard's window.
        for feed in feeds.iter_mut() {
            while feed.in_flight < WINDOW_ANCHORS && feed.next < feed.file.len() {
                let bytes = feed.file.item(feed.next).bytes;
                let message = NetMessage::Anchors {
                    shard: feed.shard,
                    anchors: vec![bytes.to_vec()],
                };
                match handle.send_frame(feed.conn, &message) {
                    Ok(_) => {
                        feed.next += 1;
                        feed.in_flight += 1;
                        stats.anchors += 1;
                        stats.bytes += bytes.len() as u64;
                    }
                    // The connection's send buffer is full: wait for credit.
                    Err(pc_net::SendError::QueueFull { .. }) => break,
                    Err(source) => {
                        return Err(FeedError::Send {
                            shard: feed.shard,
                            source,
                        })
                    }
                }
            }
        }
        if feeds
            .iter()
            .all(|f| f.next >= f.file.len() && f.in_flight == 0)
        {
            break;
        }
        let Some(event) = events.recv().await else {
            return Err(FeedError::EndpointStopped);
        };
        match event {
            NetEvent::Frame {
                conn,
                message: NetMessage::Announce { shard, ids },
                ..
            } => {
                if let Some(feed) = feeds
                    .iter_mut()
                    .find(|f| f.shard == shard && f.conn == conn)
                {
                    feed.in_flight = feed.in_flight.saturating_sub(ids.len());
                }
            }
            NetEvent::Closed { conn, reason, .. } if conns.values().any(|c| *c == conn) => {
                return Err(FeedError::Closed(reason));
            }
            _ => {}
        }
    }
    for conn in conns.values() {
        handle.close(*conn, NORMAL_CLOSE_CODE, "workload done");
    }
    Ok(stats)
}
