//! The mailbox in front of each actor: a bounded user lane and a system lane.
//!
//! Messages from other actors and the host go to the user lane, which refuses
//! past its capacity (backpressure the sender sees at once; nothing blocks, so
//! two actors sending to each other cannot deadlock). Replies to the actor's own
//! requests go to the system lane, which is bounded by the actor's cap on
//! pending requests, so a reply is never lost to a full mailbox.
//!
//! An empty mailbox allocates nothing, so a suspended virtual actor costs only
//! its registry entry. The `attached` flag says whether a task serves the
//! mailbox; a push to a detached mailbox asks the caller to start one, decided
//! under the same lock as the detach, so no message is stranded.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::bindings::{Message, RequestError};
use crate::error::Error;

/// Where the result of a handled message goes.
pub(crate) enum ReplyTo {
    /// An actor's pending request, by correlation id.
    Actor(u64),
    /// An embedder awaiting [`ActorSystem::request`](crate::ActorSystem::request).
    Host(oneshot::Sender<Result<Option<Vec<u8>>, Error>>),
}

/// What a mailbox holds.
pub(crate) enum Envelope {
    /// A message for `handle-message`, and where its result goes.
    Message {
        msg: Message,
        reply: Option<ReplyTo>,
    },
    /// The outcome of this actor's request, for `handle-callback`; `incarnation`
    /// is the instance that asked (a newer instance never receives it).
    Callback {
        correlation_id: u64,
        incarnation: u64,
        result: Result<Message, RequestError>,
    },
}

#[derive(Default)]
struct Lanes {
    user: VecDeque<Envelope>,
    system: VecDeque<Envelope>,
    attached: bool,
}

/// The outcome of a push.
pub(crate) enum Pushed {
    /// Queued; a task serves the mailbox.
    Queued,
    /// Queued, and no task serves the mailbox: the caller must start one.
    NeedsTask,
}

pub(crate) struct Mailbox {
    lanes: Mutex<Lanes>,
    notify: tokio::sync::Notify,
    capacity: usize,
}

impl Mailbox {
    pub(crate) fn new(capacity: usize, attached: bool) -> Self {
        Mailbox {
            lanes: Mutex::new(Lanes {
                attached,
                ..Lanes::default()
            }),
            notify: tokio::sync::Notify::new(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues a message on the user lane; gives it back when the lane is full
    /// (not boxed: the full-mailbox path must not allocate).
    #[allow(clippy::result_large_err)]
    pub(crate) fn push(&self, e: Envelope) -> Result<Pushed, Envelope> {
        let mut lanes = self.lock();
        if lanes.user.len() >= self.capacity {
            return Err(e);
        }
        lanes.user.push_back(e);
        Ok(self.wake(lanes))
    }

    /// Queues a callback on the system lane.
    pub(crate) fn push_system(&self, e: Envelope) -> Pushed {
        let mut lanes = self.lock();
        lanes.system.push_back(e);
        self.wake(lanes)
    }

    fn wake(&self, mut lanes: std::sync::MutexGuard<'_, Lanes>) -> Pushed {
        if lanes.attached {
            drop(lanes);
            self.notify.notify_one();
            Pushed::Queued
        } else {
            lanes.attached = true;
            Pushed::NeedsTask
        }
    }

    /// The next envelope, system lane first.
    pub(crate) fn try_pop(&self) -> Option<Envelope> {
        let mut lanes = self.lock();
        lanes.system.pop_front().or_else(|| lanes.user.pop_front())
    }

    /// Waits for the next envelope; `None` when woken by [`Mailbox::poke`]
    /// with nothing queued. Cancel-safe: an envelope is taken only in the poll
    /// that returns it.
    pub(crate) async fn recv(&self) -> Option<Envelope> {
        if let Some(e) = self.try_pop() {
            return Some(e);
        }
        self.notify.notified().await;
        self.try_pop()
    }

    /// Wakes the task serving the mailbox (to look at its control flags).
    pub(crate) fn poke(&self) {
        self.notify.notify_one();
    }

    /// Messages waiting (both lanes).
    pub(crate) fn len(&self) -> usize {
        let lanes = self.lock();
        lanes.user.len() + lanes.system.len()
    }

    /// Detaches the serving task if nothing is queued; returns whether it did.
    /// Frees the queues' memory.
    pub(crate) fn detach_if_empty(&self) -> bool {
        let mut lanes = self.lock();
        if lanes.user.is_empty() && lanes.system.is_empty() {
            lanes.attached = false;
            lanes.user = VecDeque::new();
            lanes.system = VecDeque::new();
            true
        } else {
            false
        }
    }

    /// Takes everything queued.
    pub(crate) fn drain(&self) -> Vec<Envelope> {
        let mut lanes = self.lock();
        let mut all: Vec<Envelope> = lanes.system.drain(..).collect();
        all.extend(lanes.user.drain(..));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(p: &str) -> Envelope {
        Envelope::Message {
            msg: Message::new("t", p.as_bytes().to_vec()),
            reply: None,
        }
    }

    #[test]
    fn bounded_user_lane_and_unbounded_system_lane() {
        let m = Mailbox::new(2, true);
        assert!(m.push(msg("a")).is_ok());
        assert!(m.push(msg("b")).is_ok());
        assert!(m.push(msg("c")).is_err(), "third message refused");
        m.push_system(Envelope::Callback {
            correlation_id: 1,
            incarnation: 1,
            result: Err(RequestError::Timeout),
        });
        assert_eq!(m.len(), 3);
        assert!(matches!(m.try_pop(), Some(Envelope::Callback { .. })));
        assert!(matches!(m.try_pop(), Some(Envelope::Message { msg, .. }) if msg.payload == b"a"));
    }

    #[test]
    fn detached_mailbox_asks_for_a_task_once() {
        let m = Mailbox::new(4, false);
        assert!(matches!(m.push(msg("a")), Ok(Pushed::NeedsTask)));
        assert!(matches!(m.push(msg("b")), Ok(Pushed::Queued)));
        assert!(!m.detach_if_empty(), "not empty: stays attached");
        m.drain();
        assert!(m.detach_if_empty());
        assert!(matches!(m.push(msg("c")), Ok(Pushed::NeedsTask)));
    }
}
