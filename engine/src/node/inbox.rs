//! The queue between a core's network driver and ring tasks and its loop,
//! with a waker, in two classes: consensus and control traffic (peers'
//! anchors, pulls, announces, connection events) is always taken before
//! client intake (submissions, balance queries), so a flood of clients
//! never starves the verification of peers' anchors; and client frames are
//! dropped first: past [`MAX_CLIENT_INBOX_BYTES`] of them (their clients
//! get no receipt and retry), while other frames are dropped only past
//! [`MAX_INBOX_BYTES`] (gossip and pulls recover them). Drops are counted.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::future::Future;
use std::pin::Pin;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use glommio::timer::Timer;
use pc_net::{NetEvent, NetMessage};
use pc_node::CoreMsg;

/// Most bytes of consensus frames waiting in a core's inbox.
pub const MAX_INBOX_BYTES: usize = 64 << 20;
/// Most bytes of client frames waiting in a core's inbox (a submission
/// that waited long is refused by the node core anyway).
pub const MAX_CLIENT_INBOX_BYTES: usize = 1 << 20;

/// Input of a core's loop.
pub enum CoreInput {
    /// From the core's endpoint.
    Net(NetEvent),
    /// From another core's ring.
    Ring(CoreMsg),
}

/// A core's inbox.
#[derive(Default)]
pub struct Inbox {
    queue: RefCell<VecDeque<(CoreInput, usize, Instant)>>,
    /// Inputs of `queue` that came from other cores' rings.
    rings: Cell<usize>,
    bytes: Cell<usize>,
    /// Client intake, taken only when `queue` is empty, with when it came.
    clients: RefCell<VecDeque<(CoreInput, usize, Instant)>>,
    client_bytes: Cell<usize>,
    dropped: Cell<u64>,
    woken: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Inbox {
    /// Queues an input (a frame only while under the byte bound).
    pub fn push(&self, input: CoreInput) {
        let bytes = match &input {
            CoreInput::Net(NetEvent::Frame { message, .. }) => message_bytes(message),
            CoreInput::Ring(message) => message_bytes(message.message()),
            _ => 0,
        };
        let client = is_client(&input);
        let (held, bound) = if client {
            (&self.client_bytes, MAX_CLIENT_INBOX_BYTES)
        } else {
            (&self.bytes, MAX_INBOX_BYTES)
        };
        if bytes > 0 && held.get() + bytes > bound {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        held.set(held.get() + bytes);
        let arrived = Instant::now();
        if client {
            self.clients.borrow_mut().push_back((input, bytes, arrived));
        } else {
            if matches!(input, CoreInput::Ring(_)) {
                self.rings.set(self.rings.get() + 1);
            }
            self.queue.borrow_mut().push_back((input, bytes, arrived));
        }
        self.wake();
    }

    /// Ends the current wait without an input (a log sync completed).
    pub fn wake(&self) {
        self.woken.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// The oldest consensus or control input, else the oldest client
    /// input; with how long it waited.
    pub fn pop(&self) -> Option<(CoreInput, Duration)> {
        if let Some((input, bytes, arrived)) = self.queue.borrow_mut().pop_front() {
            self.bytes.set(self.bytes.get() - bytes);
            if matches!(input, CoreInput::Ring(_)) {
                self.rings.set(self.rings.get() - 1);
            }
            return Some((input, arrived.elapsed()));
        }
        let (input, bytes, arrived) = self.clients.borrow_mut().pop_front()?;
        self.client_bytes.set(self.client_bytes.get() - bytes);
        Some((input, arrived.elapsed()))
    }

    /// Messages of other cores waiting (the rings' depth).
    pub fn ring_len(&self) -> usize {
        self.rings.get()
    }

    /// Inputs waiting.
    pub fn len(&self) -> usize {
        self.queue.borrow().len() + self.clients.borrow().len()
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Waits until something is queued, [`Inbox::wake`] is called or
    /// `timeout` passed: never longer than `timeout`.
    pub async fn wait(&self, timeout: Duration) {
        if self.woken.replace(false) || self.len() > 0 {
            return;
        }
        if timeout.is_zero() {
            return;
        }
        let mut timer = Timer::new(timeout);
        poll_fn(|cx| {
            if self.woken.replace(false) || self.len() > 0 {
                return Poll::Ready(());
            }
            if Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

/// Client intake: submissions and balance queries, from the endpoint or
/// forwarded by another core.
fn is_client(input: &CoreInput) -> bool {
    let message = match input {
        CoreInput::Net(NetEvent::Frame { message, .. }) => message,
        CoreInput::Ring(message) => message.message(),
        _ => return false,
    };
    message.is_client_request()
}

/// Approximate heap bytes of a message (what the inbox bound counts).
fn message_bytes(message: &NetMessage) -> usize {
    64 + match message {
        NetMessage::Anchors { anchors, .. } => anchors.iter().map(Vec::len).sum(),
        NetMessage::SubmitMicroEvents { events, .. } => events.iter().map(Vec::len).sum(),
        NetMessage::Announce { ids, .. } | NetMessage::Get { ids, .. } => ids.len() * 32,
        NetMessage::Evidence { bytes, .. } => bytes.len(),
        NetMessage::Receipt { results, .. } => results.len() * 64,
        NetMessage::Hello(hello) => hello.ports.len() * 4 + 96,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pc_net::ConnId;

    #[test]
    fn the_inbox_drops_frames_past_its_byte_bound_but_never_connection_events() {
        let inbox = Inbox::default();
        let big = NetMessage::Anchors {
            shard: 0,
            anchors: vec![vec![0u8; MAX_INBOX_BYTES / 2]],
        };
        let frame = |message: &NetMessage| {
            CoreInput::Net(NetEvent::Frame {
                conn: ConnId(1),
                message: message.clone(),
                bytes: 0,
            })
        };
        inbox.push(frame(&big));
        inbox.push(frame(&big));
        assert_eq!(inbox.dropped(), 1, "the second half-bound frame overflows");
        inbox.push(CoreInput::Net(NetEvent::Refused {
            remote: "127.0.0.1:1".parse().unwrap(),
            reason: pc_net::CloseReason::ConnectionLimit,
        }));
        assert_eq!(inbox.dropped(), 1, "non-frame events always queue");
        assert!(matches!(
            inbox.pop(),
            Some((CoreInput::Net(NetEvent::Frame { .. }), _))
        ));
        assert_eq!(inbox.bytes.get(), 0);
        assert!(matches!(
            inbox.pop(),
            Some((CoreInput::Net(NetEvent::Refused { .. }), _))
        ));
        assert!(inbox.pop().is_none());
    }

    #[test]
    fn consensus_frames_go_before_client_intake_and_clients_are_dropped_first() {
        let inbox = Inbox::default();
        let frame = |message: NetMessage| {
            CoreInput::Net(NetEvent::Frame {
                conn: ConnId(1),
                message,
                bytes: 0,
            })
        };
        let submit = |bytes: usize| NetMessage::SubmitMicroEvents {
            request: 1,
            shard: 0,
            events: vec![vec![0u8; bytes]],
        };
        let anchors = NetMessage::Anchors {
            shard: 0,
            anchors: vec![vec![1u8; 1000]],
        };
        inbox.push(frame(submit(100)));
        inbox.push(frame(anchors.clone()));
        inbox.push(frame(NetMessage::Get {
            shard: 0,
            ids: vec![[2; 32]],
        }));
        // The anchors and the Get come out before the earlier submission,
        // which comes with how long it waited.
        assert!(matches!(
            inbox.pop(),
            Some((
                CoreInput::Net(NetEvent::Frame {
                    message: NetMessage::Anchors { .. },
                    ..
                }),
                _
            ))
        ));
        assert!(matches!(
            inbox.pop(),
            Some((
                CoreInput::Net(NetEvent::Frame {
                    message: NetMessage::Get { .. },
                    ..
                }),
                _
            ))
        ));
        assert!(matches!(
            inbox.pop(),
            Some((
                CoreInput::Net(NetEvent::Frame {
                    message: NetMessage::SubmitMicroEvents { .. },
                    ..
                }),
                _
            ))
        ));
        // A client flood fills only the client class: consensus frames
        // still queue.
        inbox.push(frame(submit(MAX_CLIENT_INBOX_BYTES - 64)));
        inbox.push(frame(submit(1000)));
        assert_eq!(inbox.dropped(), 1, "the client class is full");
        inbox.push(frame(anchors));
        assert_eq!(inbox.dropped(), 1, "consensus frames are not dropped");
        assert_eq!(inbox.len(), 2);
    }
}
