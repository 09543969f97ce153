//! The queue between a core's network driver and ring tasks and its loop,
//! with a waker; frames past [`MAX_INBOX_BYTES`] are dropped (gossip and
//! pulls recover them) and counted.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::future::Future;
use std::pin::Pin;
use std::task::{Poll, Waker};
use std::time::Duration;

use glommio::timer::Timer;
use pc_net::{NetEvent, NetMessage};
use pc_node::CoreMsg;

/// Most bytes of frames waiting in a core's inbox.
pub const MAX_INBOX_BYTES: usize = 64 << 20;

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
    queue: RefCell<VecDeque<(CoreInput, usize)>>,
    bytes: Cell<usize>,
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
        if bytes > 0 && self.bytes.get() + bytes > MAX_INBOX_BYTES {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        self.bytes.set(self.bytes.get() + bytes);
        self.queue.borrow_mut().push_back((input, bytes));
        self.wake();
    }

    /// Ends the current wait without an input (a log sync completed).
    pub fn wake(&self) {
        self.woken.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// The oldest input.
    pub fn pop(&self) -> Option<CoreInput> {
        let (input, bytes) = self.queue.borrow_mut().pop_front()?;
        self.bytes.set(self.bytes.get() - bytes);
        Some(input)
    }

    /// Inputs waiting.
    pub fn len(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Waits until something is queued, [`Inbox::wake`] is called or
    /// `timeout` passed: never longer than `timeout`.
    pub async fn wait(&self, timeout: Duration) {
        if self.woken.replace(false) || !self.queue.borrow().is_empty() {
            return;
        }
        if timeout.is_zero() {
            return;
        }
        let mut timer = Timer::new(timeout);
        poll_fn(|cx| {
            if self.woken.replace(false) || !self.queue.borrow().is_empty() {
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
            Some(CoreInput::Net(NetEvent::Frame { .. }))
        ));
        assert_eq!(inbox.bytes.get(), 0);
        assert!(matches!(
            inbox.pop(),
            Some(CoreInput::Net(NetEvent::Refused { .. }))
        ));
        assert!(inbox.pop().is_none());
    }
}
