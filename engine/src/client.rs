//! A client of the node's wire protocol over QUIC: one request and its
//! answer (`tx send`, `tx balance`), and the paced submission load of
//! `devnet`. A client connects without a certificate and without a
//! `Hello`; the node's `Hello` (it sends one on every connection) is read
//! and ignored. Each runs on its own small glommio executor.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::timer::Timer;
use glommio::{LocalExecutorBuilder, Placement};
use pc_net::driver::{Driver, DriverHandle};
use pc_net::endpoint::NORMAL_CLOSE_CODE;
use pc_net::frame::{EventOutcome, RejectReason, MAX_SUBMITTED_EVENTS};
use pc_net::tls::CERTIFICATE_NAME;
use pc_net::{
    CloseReason, ConnId, NetConfig, NetEndpoint, NetError, NetEvent, NetMessage, SendError,
};

/// glommio registered memory of a client's executor.
const CLIENT_IO_MEMORY: usize = 256 << 10;

/// Why a client request or load run failed; `Display` is one line naming
/// the node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client's executor did not start or failed.
    #[error("client executor: {0}")]
    Executor(std::io::Error),
    /// The client's QUIC endpoint could not be made.
    #[error("QUIC client endpoint: {0}")]
    Endpoint(NetError),
    /// No UDP port to bind.
    #[error("bind a UDP port: {0}")]
    Bind(std::io::Error),
    /// The connection could not be started.
    #[error("{node}: {source}")]
    Connect {
        /// The node dialed.
        node: SocketAddr,
        /// Why.
        source: NetError,
    },
    /// The request could not be queued.
    #[error("{node}: {source}")]
    Send {
        /// The node.
        node: SocketAddr,
        /// Why.
        source: SendError,
    },
    /// The node closed the connection before answering.
    #[error("{node}: connection closed: {reason}")]
    Closed {
        /// The node.
        node: SocketAddr,
        /// Its reason.
        reason: CloseReason,
    },
    /// The client's own endpoint stopped.
    #[error("{node}: the client endpoint stopped")]
    EndpointStopped {
        /// The node.
        node: SocketAddr,
    },
    /// No answer in time.
    #[error("{node}: no answer within {timeout:?}")]
    Timeout {
        /// The node.
        node: SocketAddr,
        /// The limit.
        timeout: Duration,
    },
}

/// `future`'s output, or `None` once `timeout` passed.
pub(crate) async fn within<T>(timeout: Duration, future: impl Future<Output = T>) -> Option<T> {
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

/// Runs `job` on a fresh small executor thread and returns its output.
fn on_executor<T, F, Fut>(name: &str, job: F) -> Result<T, ClientError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .name(name)
        .io_memory(CLIENT_IO_MEMORY)
        .ring_depth(32)
        .spawn(move || async move {
            pc_net::driver::spawn_park_guard();
            job().await
        })
        .map_err(|e| ClientError::Executor(e.into()))?
        .join()
        .map_err(|e| ClientError::Executor(e.into()))
}

/// A client endpoint on an ephemeral UDP port of `ip`, its events in a
/// channel.
pub(crate) fn start_endpoint(
    ip: [u8; 4],
) -> Result<(Driver, DriverHandle, LocalReceiver<NetEvent>), ClientError> {
    let endpoint = NetEndpoint::new(NetConfig::default(), None).map_err(ClientError::Endpoint)?;
    let socket = pc_net::driver::bind_udp(SocketAddr::from((ip, 0))).map_err(ClientError::Bind)?;
    let (sender, events) = local_channel::new_unbounded();
    let driver = Driver::spawn(socket, endpoint, move |event| {
        let _ = sender.try_send(event);
    });
    let handle = driver.handle();
    Ok((driver, handle, events))
}

/// How often [`query`] asks again while no answer came.
pub const QUERY_RESEND: Duration = Duration::from_secs(1);

/// Connects to `node`, sends `message`, and returns the first answer that
/// `is_answer` accepts, within `timeout`.
pub fn request(
    node: SocketAddr,
    message: NetMessage,
    timeout: Duration,
    is_answer: fn(&NetMessage) -> bool,
) -> Result<NetMessage, ClientError> {
    exchange(node, message, timeout, None, is_answer)
}

/// [`request`] for a read-only query, sent again every [`QUERY_RESEND`]
/// without an answer: a node past its query budget leaves a query
/// unanswered rather than queue it.
pub fn query(
    node: SocketAddr,
    message: NetMessage,
    timeout: Duration,
    is_answer: fn(&NetMessage) -> bool,
) -> Result<NetMessage, ClientError> {
    exchange(node, message, timeout, Some(QUERY_RESEND), is_answer)
}

fn exchange(
    node: SocketAddr,
    message: NetMessage,
    timeout: Duration,
    resend: Option<Duration>,
    is_answer: fn(&NetMessage) -> bool,
) -> Result<NetMessage, ClientError> {
    on_executor("pc-client", move || async move {
        let (driver, handle, events) = start_endpoint([0, 0, 0, 0])?;
        let conn = handle
            .connect(node, CERTIFICATE_NAME)
            .map_err(|source| ClientError::Connect { node, source })?;
        let answer = within(timeout, async {
            let mut connected = false;
            loop {
                let event = match (resend, connected) {
                    (Some(every), true) => match within(every, events.recv()).await {
                        Some(event) => event,
                        None => {
                            handle
                                .send_frame(conn, &message)
                                .map_err(|source| ClientError::Send { node, source })?;
                            continue;
                        }
                    },
                    _ => events.recv().await,
                };
                let Some(event) = event else { break };
                match event {
                    NetEvent::Connected { conn: c, .. } if c == conn => {
                        connected = true;
                        handle
                            .send_frame(conn, &message)
                            .map_err(|source| ClientError::Send { node, source })?;
                    }
                    NetEvent::Frame {
                        conn: c, message, ..
                    } if c == conn && is_answer(&message) => {
                        return Ok(message);
                    }
                    NetEvent::Closed {
                        conn: c, reason, ..
                    } if c == conn => {
                        return Err(ClientError::Closed { node, reason });
                    }
                    _ => {}
                }
            }
            Err(ClientError::EndpointStopped { node })
        })
        .await
        .unwrap_or(Err(ClientError::Timeout { node, timeout }));
        let _ = driver
            .shutdown(NORMAL_CLOSE_CODE, "done", Duration::from_millis(200))
            .await;
        answer
    })?
}

/// What a load run counted (shared with the thread that prints progress).
#[derive(Debug, Default)]
pub struct LoadStats {
    /// Micro-events submitted.
    pub submitted: AtomicU64,
    /// Accepted by a node.
    pub accepted: AtomicU64,
    /// Rejected by a node.
    pub rejected: AtomicU64,
    /// Of them, refused as overloaded.
    pub overloaded: AtomicU64,
    /// Submissions not offered because every node of the shard had asked
    /// the client to back off (retry-after), in micro-events.
    pub held_back: AtomicU64,
    /// Submissions that could not be queued (connection down or full).
    pub unsent: AtomicU64,
}

/// One shard's source of signed micro-events to submit.
pub type EventSource = crossbeam_channel::Receiver<Vec<u8>>;

/// The offered load over time: segments of (length, micro-events per
/// second), one after the other.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadProfile {
    /// The segments.
    pub segments: Vec<(Duration, f64)>,
}

impl LoadProfile {
    /// One rate for `duration`.
    pub fn constant(rate_per_s: f64, duration: Duration) -> LoadProfile {
        LoadProfile {
            segments: vec![(duration, rate_per_s)],
        }
    }

    /// Parses `SECONDS:RATE,SECONDS:RATE,...`.
    pub fn parse(text: &str) -> Result<LoadProfile, String> {
        let mut segments = Vec::new();
        for part in text.split(',') {
            let (seconds, rate) = part
                .split_once(':')
                .ok_or_else(|| format!("load profile segment {part:?} is not SECONDS:RATE"))?;
            let seconds: f64 = seconds.trim().parse().map_err(|_| {
                format!("load profile segment {part:?}: {seconds:?} is not a number of seconds")
            })?;
            let rate: f64 = rate
                .trim()
                .parse()
                .map_err(|_| format!("load profile segment {part:?}: {rate:?} is not a rate"))?;
            if !(seconds > 0.0 && seconds.is_finite() && rate >= 0.0 && rate.is_finite()) {
                return Err(format!(
                    "load profile segment {part:?}: seconds must be positive and the rate at least 0"
                ));
            }
            segments.push((Duration::from_secs_f64(seconds), rate));
        }
        if segments.is_empty() {
            return Err("the load profile is empty".into());
        }
        Ok(LoadProfile { segments })
    }

    /// The whole length.
    pub fn duration(&self) -> Duration {
        self.segments.iter().map(|(d, _)| *d).sum()
    }

    /// Micro-events the whole profile offers.
    pub fn total(&self) -> f64 {
        self.segments
            .iter()
            .map(|(d, rate)| d.as_secs_f64() * rate)
            .sum()
    }

    /// The rate `elapsed` into the profile (0 past its end).
    pub fn rate_at(&self, elapsed: Duration) -> f64 {
        let mut start = Duration::ZERO;
        for (length, rate) in &self.segments {
            if elapsed < start + *length {
                return *rate;
            }
            start += *length;
        }
        0.0
    }
}

/// Submits micro-events along `profile` (in total over the shards), or
/// until `stop`, spreading each shard's events over `nodes[shard]` (the
/// address of the core that owns the shard on each node) round-robin, in
/// batches every 10 ms. With `backoff`, a node whose receipt asked for a
/// retry-after gets nothing until it passed (its share goes to the shard's
/// other nodes, or is held back); without, the full load is offered
/// whatever the nodes answer. Returns when done; `stats` counts as it goes.
pub fn run_load(
    nodes: Vec<Vec<SocketAddr>>,
    sources: Vec<EventSource>,
    profile: LoadProfile,
    backoff: bool,
    stop: Arc<AtomicBool>,
    stats: Arc<LoadStats>,
) -> Result<(), ClientError> {
    let duration = profile.duration();
    on_executor("pc-load", move || async move {
        let (driver, handle, events) = start_endpoint([0, 0, 0, 0])?;
        // One connection per distinct address.
        let mut addrs: Vec<SocketAddr> = nodes.iter().flatten().copied().collect();
        addrs.sort();
        addrs.dedup();
        let mut conns: Vec<(SocketAddr, Option<ConnId>)> =
            addrs.iter().map(|a| (*a, None)).collect();
        for entry in conns.iter_mut() {
            entry.1 = handle.connect(entry.0, CERTIFICATE_NAME).ok();
        }
        let stats_for_events = stats.clone();
        let connected = std::rc::Rc::new(std::cell::RefCell::new(std::collections::BTreeMap::<
            ConnId,
            bool,
        >::new()));
        // Per connection: no submissions before this (a retry-after).
        let paused = std::rc::Rc::new(std::cell::RefCell::new(std::collections::BTreeMap::<
            ConnId,
            Instant,
        >::new()));
        let events_task = {
            let connected = connected.clone();
            let paused = paused.clone();
            glommio::spawn_local(async move {
                while let Some(event) = events.recv().await {
                    match event {
                        NetEvent::Connected { conn, .. } => {
                            connected.borrow_mut().insert(conn, true);
                        }
                        NetEvent::Closed { conn, .. } => {
                            connected.borrow_mut().insert(conn, false);
                        }
                        NetEvent::Frame {
                            conn,
                            message:
                                NetMessage::Receipt {
                                    results,
                                    retry_after_ms,
                                    ..
                                },
                            ..
                        } => {
                            if retry_after_ms > 0 {
                                let until = Instant::now()
                                    + Duration::from_millis(u64::from(retry_after_ms));
                                paused.borrow_mut().insert(conn, until);
                            }
                            for receipt in results {
                                match receipt.outcome {
                                    EventOutcome::Accepted => {
                                        stats_for_events.accepted.fetch_add(1, Ordering::Relaxed);
                                    }
                                    EventOutcome::Rejected { reason, .. } => {
                                        stats_for_events.rejected.fetch_add(1, Ordering::Relaxed);
                                        if reason == RejectReason::Overloaded {
                                            stats_for_events
                                                .overloaded
                                                .fetch_add(1, Ordering::Relaxed);
                                        }
                                    }
                                };
                            }
                        }
                        _ => {}
                    }
                }
            })
        };
        let start = Instant::now();
        let period = Duration::from_millis(10);
        let mut due = 0.0f64;
        let mut request = 0u64;
        let mut next_node = vec![0usize; nodes.len()];
        let mut next_shard = 0usize;
        let mut exhausted = vec![false; sources.len()];
        while start.elapsed() < duration && !stop.load(Ordering::Relaxed) {
            glommio::timer::sleep(period).await;
            // Behind schedule by at most a second's worth (a slow source
            // does not turn into a burst).
            let rate_per_s = profile.rate_at(start.elapsed());
            due = (due + rate_per_s * period.as_secs_f64()).min(rate_per_s.max(1.0));
            // Redial lost connections.
            for entry in conns.iter_mut() {
                let up = entry
                    .1
                    .and_then(|c| connected.borrow().get(&c).copied())
                    .unwrap_or(true);
                if !up {
                    entry.1 = handle.connect(entry.0, CERTIFICATE_NAME).ok();
                }
            }
            let mut batches: Vec<Vec<Vec<u8>>> = vec![Vec::new(); sources.len()];
            while due >= 1.0 && !exhausted.iter().all(|e| *e) {
                let shard = next_shard % sources.len();
                next_shard += 1;
                if exhausted[shard] {
                    continue;
                }
                match sources[shard].try_recv() {
                    Ok(event) => {
                        batches[shard].push(event);
                        due -= 1.0;
                    }
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => exhausted[shard] = true,
                }
            }
            for (shard, batch) in batches.into_iter().enumerate() {
                for chunk in batch.chunks(MAX_SUBMITTED_EVENTS) {
                    let targets = &nodes[shard];
                    if targets.is_empty() {
                        continue;
                    }
                    let conn_of =
                        |addr: SocketAddr| conns.iter().find(|e| e.0 == addr).and_then(|e| e.1);
                    let now = Instant::now();
                    let is_paused = |addr: SocketAddr| {
                        backoff
                            && conn_of(addr).is_some_and(|c| {
                                paused.borrow().get(&c).is_some_and(|until| *until > now)
                            })
                    };
                    // The next node in turn that has not asked for a pause.
                    let Some(turn) = (0..targets.len())
                        .find(|i| !is_paused(targets[(next_node[shard] + i) % targets.len()]))
                    else {
                        stats
                            .held_back
                            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        continue;
                    };
                    let addr = targets[(next_node[shard] + turn) % targets.len()];
                    next_node[shard] += turn + 1;
                    let conn = conn_of(addr);
                    let up = conn.is_some_and(|c| connected.borrow().get(&c) == Some(&true));
                    request += 1;
                    let message = NetMessage::SubmitMicroEvents {
                        request,
                        shard: shard as u16,
                        events: chunk.to_vec(),
                    };
                    let sent =
                        up && conn.is_some_and(|conn| handle.send_frame(conn, &message).is_ok());
                    let counter = if sent {
                        &stats.submitted
                    } else {
                        &stats.unsent
                    };
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            }
            if exhausted.iter().all(|e| *e) {
                break;
            }
        }
        // Let the last receipts arrive.
        glommio::timer::sleep(Duration::from_millis(300)).await;
        let _ = driver
            .shutdown(NORMAL_CLOSE_CODE, "load done", Duration::from_millis(200))
            .await;
        events_task.cancel().await;
        Ok(())
    })?
}
