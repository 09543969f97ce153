//! The glommio driver of one core's [`NetEndpoint`] over a
//! [`glommio::net::UdpSocket`] (DESIGN §7).
//!
//! It follows quinn-proto's contract with two tasks on the core's executor:
//!
//! * the **receive loop**, one per socket and never raced against anything:
//!   it waits for the next datagram in one 64 KiB buffer
//!   ([`RECEIVE_BUFFER_BYTES`]), hands it to the endpoint, sends what the
//!   endpoint wants sent, hands the events to the caller's callback and
//!   wakes the timer task so it re-arms;
//! * the **timer task**: it sleeps until [`NetEndpoint::poll_timeout`] or
//!   until woken (the receive loop took a datagram, another task connected,
//!   queued a frame or closed a connection through a [`DriverHandle`]),
//!   fires [`NetEndpoint::handle_timeout`] when due, and after every wake
//!   drains datagrams and events the same way.
//!
//! A receive is never cancelled while the driver runs (a glommio receive
//! dropped half-way can lose a datagram); it is cancelled once, when the
//! driver stops. Other local tasks act on the endpoint only through a
//! [`DriverHandle`], whose calls are synchronous: they update the endpoint
//! with the current time and wake the timer task, which sends the result.
//!
//! The endpoint is borrowed only between awaits, never across one, and never
//! while the event callback runs: the callback may call the handle (send a
//! reply, close a connection) but must not block.
//!
//! Bounds: one receive buffer; datagrams leave the endpoint's queue one at
//! a time as they are sent; what one input queues is bounded by the
//! endpoint (see [`crate::endpoint`]). ECN is neither read nor set (glommio
//! exposes no control messages), so quinn sees no ECN marks.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use glommio::net::UdpSocket;
use glommio::timer::Timer;
use glommio::Task;

use crate::endpoint::{ConnId, Datagram, NetEndpoint, NetError, NetEvent, SendError};
use crate::frame::NetMessage;

/// Size of the one receive buffer of a driver: any UDP datagram fits.
pub const RECEIVE_BUFFER_BYTES: usize = 64 << 10;

/// Receive and send buffer asked of the kernel for a driver's socket
/// (capped by `net.core.rmem_max` / `wmem_max`). A core is busy with one
/// shard's input for milliseconds at a time and reads its socket only in
/// between: the kernel holds what arrives meanwhile, and the default
/// ~200 KiB is a handful of anchors, after which QUIC sees loss.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// A UDP socket bound to `addr` for a driver: large kernel buffers (best
/// effort), and no `SO_REUSEPORT` — a second process on the same port is
/// an error, not a silent split of the traffic.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: an unprivileged process gets at most the sysctl caps.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(UdpSocket::from(socket))
}

/// The caller's event callback.
type EventSink = Box<dyn FnMut(NetEvent)>;

/// Counters of a driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Datagrams received and handed to the endpoint.
    pub datagrams_received: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Sends that failed (the datagram is lost; QUIC retransmits).
    pub send_errors: u64,
    /// Receives that failed.
    pub receive_errors: u64,
}

/// A wake-up flag for one waiting task.
#[derive(Default)]
struct Notify {
    flagged: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    fn notify(&self) {
        self.flagged.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Waits until notified (since the last wait) or until `timeout`
    /// elapses, whichever comes first; `None` waits for a notification only.
    async fn wait(&self, timeout: Option<Duration>) {
        let mut timer = timeout.map(Timer::new);
        poll_fn(|cx| {
            if self.flagged.replace(false) {
                return Poll::Ready(());
            }
            if let Some(timer) = timer.as_mut() {
                if Pin::new(timer).poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

/// What the tasks and handles of one driver share.
struct Shared {
    socket: UdpSocket,
    endpoint: RefCell<NetEndpoint>,
    events: RefCell<EventSink>,
    /// Wakes the timer task.
    wake: Notify,
    /// Set to end the timer task now.
    stopping: Cell<bool>,
    /// Set by a shutdown: close new connections, end once none is left or
    /// at this instant.
    drain_deadline: Cell<Option<Instant>>,
    /// Connections this side dialed or accepted and not yet reported
    /// closed (closed at shutdown).
    open: RefCell<BTreeSet<ConnId>>,
    stats: Cell<DriverStats>,
}

impl Shared {
    fn count(&self, update: impl FnOnce(&mut DriverStats)) {
        let mut stats = self.stats.get();
        update(&mut stats);
        self.stats.set(stats);
    }

    /// Sends every queued datagram and hands every queued event to the
    /// callback, until both queues are empty.
    async fn flush(&self) {
        loop {
            let mut progress = false;
            loop {
                let datagram = self.endpoint.borrow_mut().poll_transmit();
                let Some(datagram) = datagram else { break };
                progress = true;
                self.send(datagram).await;
            }
            loop {
                let event = self.endpoint.borrow_mut().poll_event();
                let Some(event) = event else { break };
                progress = true;
                self.deliver(event);
            }
            if !progress {
                break;
            }
        }
    }

    async fn send(&self, datagram: Datagram) {
        match self
            .socket
            .send_to(&datagram.contents, datagram.destination)
            .await
        {
            Ok(_) => self.count(|s| s.datagrams_sent += 1),
            Err(_) => self.count(|s| s.send_errors += 1),
        }
    }

    fn deliver(&self, event: NetEvent) {
        let mut close_now = None;
        match &event {
            NetEvent::Connected { conn, .. } => {
                self.open.borrow_mut().insert(*conn);
                if self.drain_deadline.get().is_some() {
                    close_now = Some(*conn);
                }
            }
            NetEvent::Closed { conn, .. } => {
                self.open.borrow_mut().remove(conn);
            }
            _ => {}
        }
        (self.events.borrow_mut())(event);
        if let Some(conn) = close_now {
            self.endpoint.borrow_mut().close(
                Instant::now(),
                conn,
                crate::endpoint::NORMAL_CLOSE_CODE,
                "shutting down",
            );
        }
    }

    /// Whether the timer task should end (after a final flush).
    fn finished(&self, now: Instant) -> bool {
        if self.stopping.get() {
            return true;
        }
        match self.drain_deadline.get() {
            Some(deadline) => now >= deadline || self.endpoint.borrow().connection_count() == 0,
            None => false,
        }
    }
}

/// The receive loop: one receive at a time into one buffer, each datagram
/// followed by the endpoint's output and a wake of the timer task.
async fn receive_loop(shared: Rc<Shared>) -> io::Result<()> {
    let mut buf = vec![0u8; RECEIVE_BUFFER_BYTES];
    loop {
        match shared.socket.recv_from(&mut buf).await {
            Ok((len, from)) => {
                shared.count(|s| s.datagrams_received += 1);
                shared.endpoint.borrow_mut().handle_datagram(
                    Instant::now(),
                    from,
                    None,
                    &buf[..len],
                );
                shared.flush().await;
                shared.wake.notify();
            }
            Err(error) => {
                shared.count(|s| s.receive_errors += 1);
                let error = io::Error::from(error);
                if !is_transient(&error) {
                    shared.stopping.set(true);
                    shared.wake.notify();
                    return Err(error);
                }
            }
        }
        glommio::yield_if_needed().await;
    }
}

/// Receive errors after which the socket still works: ICMP errors
/// reported for an earlier send, an interrupted call.
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

/// The timer task: flush, sleep until the endpoint's next timer or a wake,
/// fire due timers, again, until stopped or drained.
async fn timer_loop(shared: Rc<Shared>) {
    loop {
        shared.flush().await;
        let now = Instant::now();
        if shared.finished(now) {
            return;
        }
        let timeout = shared.endpoint.borrow_mut().poll_timeout();
        let wake_at = match (timeout, shared.drain_deadline.get()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match wake_at {
            Some(at) if at <= now => {}
            Some(at) => shared.wake.wait(Some(at - now)).await,
            None => shared.wake.wait(None).await,
        }
        let now = Instant::now();
        if timeout.is_some_and(|at| at <= now) {
            shared.endpoint.borrow_mut().handle_timeout(now);
        }
        glommio::yield_if_needed().await;
    }
}

/// A running driver of one endpoint on one socket. Dropping it cancels its
/// tasks without closing connections; [`Driver::shutdown`] closes them
/// first, [`Driver::stop`] does not.
pub struct Driver {
    shared: Rc<Shared>,
    receive: Task<io::Result<()>>,
    timer: Task<()>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("local_addr", &self.shared.socket.local_addr().ok())
            .field("stats", &self.shared.stats.get())
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// Starts driving `endpoint` over `socket` on the current glommio
    /// executor (panics outside one): every event goes to `events`, in
    /// order, from the driver's tasks.
    pub fn spawn(
        socket: UdpSocket,
        endpoint: NetEndpoint,
        events: impl FnMut(NetEvent) + 'static,
    ) -> Driver {
        let shared = Rc::new(Shared {
            socket,
            endpoint: RefCell::new(endpoint),
            events: RefCell::new(Box::new(events)),
            wake: Notify::default(),
            stopping: Cell::new(false),
            drain_deadline: Cell::new(None),
            open: RefCell::new(BTreeSet::new()),
            stats: Cell::new(DriverStats::default()),
        });
        let receive = glommio::spawn_local(receive_loop(shared.clone()));
        let timer = glommio::spawn_local(timer_loop(shared.clone()));
        Driver {
            shared,
            receive,
            timer,
        }
    }

    /// A handle for other local tasks.
    pub fn handle(&self) -> DriverHandle {
        DriverHandle {
            shared: self.shared.clone(),
        }
    }

    /// Closes every connection with `code` and `reason` (and any that
    /// completes its handshake meanwhile), keeps driving until all are gone
    /// (their close acknowledged or timed out) or `linger` has passed, then
    /// stops. Returns the counters, or the error that ended the receive
    /// loop.
    pub async fn shutdown(
        self,
        code: u32,
        reason: &str,
        linger: Duration,
    ) -> io::Result<DriverStats> {
        let now = Instant::now();
        self.shared.drain_deadline.set(Some(now + linger));
        let open: Vec<ConnId> = self.shared.open.borrow().iter().copied().collect();
        {
            let mut endpoint = self.shared.endpoint.borrow_mut();
            for conn in open {
                endpoint.close(now, conn, code, reason);
            }
        }
        self.shared.wake.notify();
        self.finish().await
    }

    /// Stops at once, leaving connections to time out at their peers.
    /// Returns the counters, or the error that ended the receive loop.
    pub async fn stop(self) -> io::Result<DriverStats> {
        self.shared.stopping.set(true);
        self.shared.wake.notify();
        self.finish().await
    }

    async fn finish(self) -> io::Result<DriverStats> {
        self.timer.await;
        self.shared.stopping.set(true);
        if let Some(Err(error)) = self.receive.cancel().await {
            return Err(error);
        }
        Ok(self.shared.stats.get())
    }
}

/// Acts on a driven endpoint from another task of the same executor. Calls
/// are synchronous: they update the endpoint and wake the driver, which
/// sends what they queued. After the driver stopped they still update the
/// endpoint, but nothing is sent any more.
#[derive(Clone)]
pub struct DriverHandle {
    shared: Rc<Shared>,
}

impl std::fmt::Debug for DriverHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverHandle")
            .field("local_addr", &self.shared.socket.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl DriverHandle {
    /// The socket's local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.socket.local_addr().map_err(io::Error::from)
    }

    /// Starts a connection to `remote` (see [`NetEndpoint::connect`]).
    pub fn connect(&self, remote: SocketAddr, server_name: &str) -> Result<ConnId, NetError> {
        let conn =
            self.with_endpoint(|endpoint| endpoint.connect(Instant::now(), remote, server_name))?;
        self.shared.open.borrow_mut().insert(conn);
        Ok(conn)
    }

    /// Starts a connection with a caller-made rustls client configuration
    /// (see [`NetEndpoint::connect_with`]).
    pub fn connect_with(
        &self,
        remote: SocketAddr,
        server_name: &str,
        tls: rustls::ClientConfig,
    ) -> Result<ConnId, NetError> {
        let conn = self.with_endpoint(|endpoint| {
            endpoint.connect_with(Instant::now(), remote, server_name, tls)
        })?;
        self.shared.open.borrow_mut().insert(conn);
        Ok(conn)
    }

    /// Queues `message` as one frame on the connection (see
    /// [`NetEndpoint::send_frame`]).
    pub fn send_frame(&self, conn: ConnId, message: &NetMessage) -> Result<usize, SendError> {
        self.with_endpoint(|endpoint| endpoint.send_frame(Instant::now(), conn, message))
    }

    /// Queues raw bytes on the connection's stream (see
    /// [`NetEndpoint::send_unframed`]; hostile-peer tools only).
    pub fn send_unframed(&self, conn: ConnId, bytes: Vec<u8>) -> Result<(), SendError> {
        self.with_endpoint(|endpoint| endpoint.send_unframed(Instant::now(), conn, bytes))
    }

    /// Closes a connection (see [`NetEndpoint::close`]).
    pub fn close(&self, conn: ConnId, code: u32, reason: &str) {
        self.with_endpoint(|endpoint| endpoint.close(Instant::now(), conn, code, reason));
    }

    /// Runs `f` on the endpoint, then wakes the driver to send what it
    /// queued. `f` must not call this handle (the endpoint is borrowed).
    pub fn with_endpoint<R>(&self, f: impl FnOnce(&mut NetEndpoint) -> R) -> R {
        let result = f(&mut self.shared.endpoint.borrow_mut());
        self.shared.wake.notify();
        result
    }

    /// The driver's counters so far.
    pub fn stats(&self) -> DriverStats {
        self.shared.stats.get()
    }

    /// Whether the driver stopped (stopped, shut down, or its receive loop
    /// failed; [`Driver::stop`] then returns the error).
    pub fn is_stopped(&self) -> bool {
        self.shared.stopping.get()
    }
}

/// Period of the timer [`spawn_park_guard`] keeps armed.
pub const PARK_GUARD_PERIOD: Duration = Duration::from_millis(5);

/// Another thread's way to wake an executor's park guard (and with it the
/// executor, through glommio's foreign wake: its eventfd).
#[derive(Debug, Default)]
pub struct ParkNudge {
    waker: std::sync::Mutex<Option<Waker>>,
}

impl ParkNudge {
    /// Wakes the guard's executor if it sleeps; cheap if it does not.
    pub fn nudge(&self) {
        let waker = self.waker.lock().map(|w| w.clone()).unwrap_or(None);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Keeps a timer armed on the current glommio executor (panics outside
/// one) for as long as it runs, and lets another thread wake it through
/// the returned [`ParkNudge`], so the executor does not sleep for good
/// while it has runnable tasks.
///
/// glommio 0.9.0's `run_task_queues` returns "nothing ran" when the
/// preemption timer has already fired before it runs its first task queue
/// (the thread was descheduled between polling I/O and running tasks — on
/// an oversubscribed host, 21 node processes on 2 cores, that is every few
/// seconds), and the executor then parks with its queues still runnable.
/// With no I/O in flight and no timer in its wheel it sleeps in
/// `io_uring_enter` until an outside event: a node's core loop, the
/// endpoint's receive and timer tasks all runnable and none polled. The
/// guard's timer bounds that park while it is armed; but when the guard
/// itself is among the runnable tasks no timer is left, so a thread that
/// cannot be stuck with the executor (the node's control thread) nudges
/// it: a foreign wake writes the executor's eventfd, the executor wakes,
/// polls I/O (which arms a fresh preemption timer) and runs its queues.
/// Fixed upstream by glommio/glommio#53, not in a release yet; the test
/// `a_runnable_executor_never_parks_for_good` shows the hang without the
/// guard.
pub fn spawn_park_guard() -> std::sync::Arc<ParkNudge> {
    let nudge = std::sync::Arc::new(ParkNudge::default());
    spawn_park_guard_with(nudge.clone());
    nudge
}

/// [`spawn_park_guard`] with a nudge made before the executor started
/// (so the thread that starts it holds it from the start).
pub fn spawn_park_guard_with(slot: std::sync::Arc<ParkNudge>) {
    glommio::spawn_local(async move {
        loop {
            let mut timer = glommio::timer::Timer::new(PARK_GUARD_PERIOD);
            poll_fn(|cx| {
                if let Ok(mut waker) = slot.waker.lock() {
                    *waker = Some(cx.waker().clone());
                }
                Pin::new(&mut timer).poll(cx).map(|_| ())
            })
            .await;
        }
    })
    .detach();
}

/// Yields to the executor's other tasks when the task has run past its
/// preemption slice: the task wakes itself and returns pending once.
/// The node's core loop and the engine's loops yield this way; with
/// glommio's own `yield_if_needed` (which also marks the whole task queue
/// as yielded) a node's core loop was seen not polled again for seconds at
/// k = 21 on a 2-core host (the node's watchdog names such a stall). The
/// endpoint driver's own tasks keep glommio's: with this one there, the
/// same devnet stalled more often.
pub async fn yield_if_needed() {
    if !glommio::executor().need_preempt() {
        return;
    }
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::{LocalExecutorBuilder, Placement};
    use std::sync::mpsc;

    /// Runs `yields` self-waking yields on an executor whose preemption
    /// timer (50 µs) is often already fired when the executor turns to its
    /// task queues: the glommio 0.9.0 park described at
    /// [`spawn_park_guard`]. With `guard`, the executor runs the guard and
    /// another thread nudges it every 10 ms, as the node's control thread
    /// does (the guard's timer alone can be among the runnable tasks of a
    /// parked executor). Whether the run ended within a minute.
    fn run_yields(guard: bool, yields: u32) -> bool {
        let (done_tx, done_rx) = mpsc::channel();
        let nudge = std::sync::Arc::new(ParkNudge::default());
        let slot = nudge.clone();
        let nudging = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(guard));
        let nudger = {
            let nudging = nudging.clone();
            std::thread::spawn(move || {
                while nudging.load(std::sync::atomic::Ordering::Relaxed) {
                    nudge.nudge();
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        let executor = LocalExecutorBuilder::new(Placement::Unbound)
            .preempt_timer(Duration::from_micros(50))
            .spawn(move || async move {
                if guard {
                    spawn_park_guard_with(slot);
                }
                let yielder = glommio::spawn_local(async move {
                    for _ in 0..yields {
                        let busy = Instant::now();
                        while busy.elapsed() < Duration::from_micros(3) {}
                        let mut yielded = false;
                        poll_fn(|cx| {
                            if yielded {
                                return Poll::Ready(());
                            }
                            yielded = true;
                            cx.waker().wake_by_ref();
                            Poll::Pending
                        })
                        .await;
                    }
                });
                yielder.await;
                let _ = done_tx.send(());
            })
            .expect("executor starts");
        let done = done_rx.recv_timeout(Duration::from_secs(60)).is_ok();
        nudging.store(false, std::sync::atomic::Ordering::Relaxed);
        let _ = nudger.join();
        if done {
            executor.join().expect("executor ends");
        }
        done
    }

    #[test]
    fn a_runnable_executor_never_parks_for_good() {
        assert!(
            run_yields(true, 400_000),
            "with the park guard and its nudge, 400 000 yields did not finish within a minute"
        );
    }

    /// The hang itself (the guard's reason to exist); ignored by default
    /// as it leaves a parked executor thread behind. With a glommio that
    /// fixes the park this fails, and the guard can go.
    #[test]
    #[ignore = "leaves a parked executor thread; run with --ignored to see glommio 0.9.0 park"]
    fn without_the_guard_the_executor_parks_with_runnable_tasks() {
        assert!(!run_yields(false, 400_000));
    }
}
