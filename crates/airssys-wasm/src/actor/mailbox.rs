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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::bindings::{Message, Reply, RequestError};
use crate::error::Error;
use crate::sandbox::budget::Charge;

/// Where the result of a handled message goes.
pub(crate) enum ReplyTo {
    /// An actor's pending request, by correlation id.
    Actor(u64),
    /// An embedder awaiting [`ActorSystem::ask`](crate::ActorSystem::ask).
    Host(oneshot::Sender<Result<Option<Reply>, Error>>),
}

/// What a mailbox holds.
pub(crate) enum Envelope {
    /// A message for `handle-message`, and where its result goes.
    Message {
        msg: Message,
        reply: Option<ReplyTo>,
        /// Its entry in a durable actor's mailbox log.
        seq: Option<u64>,
    },
    /// The outcome of this actor's request, for `handle-callback`; `incarnation`
    /// is the instance that asked (a newer instance never receives it).
    Callback {
        correlation_id: u64,
        incarnation: u64,
        result: Result<Message, RequestError>,
    },
}

/// A user-lane entry: the packed message, where its result goes, the charge
/// to its sender's budget, and its durable log entry.
type Queued = (Vec<u8>, Option<ReplyTo>, Option<Charge>, Option<u64>);

#[derive(Default)]
struct Lanes {
    /// Messages, each flattened into one buffer (see [`pack`]), with the
    /// charge to its sender's host budget (released when it is taken).
    /// A durable actor's messages carry their log entry's sequence number.
    user: VecDeque<Queued>,
    system: VecDeque<Envelope>,
    attached: bool,
    /// Detached for good: its cell left the registry; a push goes to a fresh cell.
    retired: bool,
}

/// Why a push did not queue.
pub(crate) enum PushError {
    /// The user lane is at capacity.
    Full,
    /// The mailbox retired; the charge comes back with the message.
    Retired(Option<Charge>),
}

// A message crosses threads: the sender's strings were allocated on its
// worker, and freeing them on the receiver's makes the two threads contend for
// the allocator's arena locks (a futex per message under load, measured). So
// the mailbox holds each message as one buffer: the sender's thread frees its
// own strings, the receiver's thread allocates the ones it will free.

fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// Flattens a message into one buffer (also a durable mailbox's log entry).
pub(crate) fn pack(m: &Message) -> Vec<u8> {
    let strings: usize = m.metadata.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
    let mut buf =
        Vec::with_capacity(m.sender.len() + m.payload.len() + m.content_type.len() + strings + 40);
    put(&mut buf, m.sender.as_bytes());
    put(&mut buf, &m.payload);
    put(&mut buf, m.content_type.as_bytes());
    match &m.correlation_id {
        Some(c) => {
            buf.push(1);
            put(&mut buf, c.as_bytes());
        }
        None => buf.push(0),
    }
    buf.extend_from_slice(&(m.metadata.len() as u32).to_le_bytes());
    for (k, v) in &m.metadata {
        put(&mut buf, k.as_bytes());
        put(&mut buf, v.as_bytes());
    }
    buf.extend_from_slice(&m.timestamp_ms.to_le_bytes());
    buf
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn u32(&mut self) -> usize {
        u32::from_le_bytes(self.take(4).try_into().unwrap_or_default()) as usize
    }
    fn bytes(&mut self) -> &'a [u8] {
        let n = self.u32();
        self.take(n)
    }
    fn string(&mut self) -> String {
        // Packed from Strings: always UTF-8.
        String::from_utf8_lossy(self.bytes()).into_owned()
    }
}

/// The message [`pack`] flattened.
pub(crate) fn unpack(buf: &[u8]) -> Message {
    let mut r = Reader(buf);
    let sender = r.string();
    let payload = r.bytes().to_vec();
    let content_type = r.string();
    let correlation_id = match r.take(1) {
        [1] => Some(r.string()),
        _ => None,
    };
    let n = r.u32();
    let metadata = (0..n).map(|_| (r.string(), r.string())).collect();
    let timestamp_ms = u64::from_le_bytes(r.take(8).try_into().unwrap_or_default());
    Message {
        sender,
        payload,
        content_type,
        correlation_id,
        metadata,
        timestamp_ms,
    }
}

/// [`unpack`] for bytes from outside this host (another host of a cluster):
/// `None` unless they are exactly one packed message.
pub(crate) fn unpack_checked(buf: &[u8]) -> Option<Message> {
    struct R<'a>(&'a [u8]);
    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if n > self.0.len() {
                return None;
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Some(head)
        }
        fn u32(&mut self) -> Option<usize> {
            Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
        }
        fn bytes(&mut self) -> Option<&'a [u8]> {
            let n = self.u32()?;
            self.take(n)
        }
        fn string(&mut self) -> Option<String> {
            Some(std::str::from_utf8(self.bytes()?).ok()?.to_string())
        }
    }
    let mut r = R(buf);
    let sender = r.string()?;
    let payload = r.bytes()?.to_vec();
    let content_type = r.string()?;
    let correlation_id = match r.take(1)? {
        [1] => Some(r.string()?),
        [0] => None,
        _ => return None,
    };
    let n = r.u32()?;
    // Each entry takes at least 8 bytes: a count past that is a lie.
    if n > r.0.len() / 8 {
        return None;
    }
    let mut metadata = Vec::with_capacity(n);
    for _ in 0..n {
        metadata.push((r.string()?, r.string()?));
    }
    let timestamp_ms = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    if !r.0.is_empty() {
        return None;
    }
    Some(Message {
        sender,
        payload,
        content_type,
        correlation_id,
        metadata,
        timestamp_ms,
    })
}

/// The outcome of a push.
pub(crate) enum Pushed {
    /// Queued; a task serves the mailbox.
    Queued,
    /// Queued, and no task serves the mailbox: the caller must start one.
    NeedsTask,
    /// Not queued: the mailbox retired (a callback for an instance long gone,
    /// or a logged message for a virtual actor's cell that left: both given back).
    Dropped(Vec<u8>, Option<ReplyTo>),
}

pub(crate) struct Mailbox {
    lanes: Mutex<Lanes>,
    notify: tokio::sync::Notify,
    capacity: usize,
    /// Envelopes queued (both lanes), readable without the lock.
    queued: AtomicUsize,
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
            queued: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Queues a message on the user lane (holding `charge` until it is
    /// taken); gives it back when the lane is full.
    #[allow(clippy::result_large_err)]
    pub(crate) fn push(
        &self,
        msg: Message,
        reply: Option<ReplyTo>,
        charge: Option<Charge>,
    ) -> Result<Pushed, (Message, Option<ReplyTo>, PushError)> {
        let packed = pack(&msg);
        let mut lanes = self.lock();
        if lanes.retired {
            return Err((msg, reply, PushError::Retired(charge)));
        }
        if lanes.user.len() >= self.capacity {
            return Err((msg, reply, PushError::Full));
        }
        lanes.user.push_back((packed, reply, charge, None));
        self.queued.fetch_add(1, Ordering::Release);
        Ok(self.wake(lanes))
    }

    /// Whether the user lane is at capacity (a durable send checks before
    /// it writes the log; the log's commit then queues past it).
    pub(crate) fn is_full(&self) -> bool {
        self.lock().user.len() >= self.capacity
    }

    /// Queues a message of a durable actor's log, already packed, whatever
    /// the capacity (it was checked before the log write, and what is in the
    /// log must be delivered). `front`: before everything queued (a message
    /// to deliver again after a crash).
    pub(crate) fn push_logged(
        &self,
        packed: Vec<u8>,
        seq: u64,
        reply: Option<ReplyTo>,
        front: bool,
    ) -> Pushed {
        let mut lanes = self.lock();
        if lanes.retired {
            return Pushed::Dropped(packed, reply);
        }
        if front {
            lanes.user.push_front((packed, reply, None, Some(seq)));
        } else {
            lanes.user.push_back((packed, reply, None, Some(seq)));
        }
        self.queued.fetch_add(1, Ordering::Release);
        self.wake(lanes)
    }

    /// Queues a callback on the system lane.
    pub(crate) fn push_system(&self, e: Envelope) -> Pushed {
        let mut lanes = self.lock();
        if lanes.retired {
            return Pushed::Dropped(Vec::new(), None);
        }
        lanes.system.push_back(e);
        self.queued.fetch_add(1, Ordering::Release);
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
        if self.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut lanes = self.lock();
        if let Some(e) = lanes.system.pop_front() {
            self.queued.fetch_sub(1, Ordering::Release);
            return Some(e);
        }
        let (packed, reply, charge, seq) = lanes.user.pop_front()?;
        self.queued.fetch_sub(1, Ordering::Release);
        drop(lanes);
        drop(charge);
        Some(Envelope::Message {
            msg: unpack(&packed),
            reply,
            seq,
        })
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
        self.queued.load(Ordering::Acquire)
    }

    /// Detaches the serving task if nothing is queued; returns whether it did.
    /// Frees the queues' memory.
    pub(crate) fn detach_if_empty(&self) -> bool {
        self.detach(false)
    }

    /// Like [`Mailbox::detach_if_empty`], and retires the mailbox for good
    /// when it detaches: later pushes are refused with [`PushError::Retired`].
    pub(crate) fn retire_if_empty(&self) -> bool {
        self.detach(true)
    }

    fn detach(&self, retire: bool) -> bool {
        let mut lanes = self.lock();
        if !(lanes.user.is_empty() && lanes.system.is_empty()) {
            return false;
        }
        lanes.attached = false;
        lanes.retired |= retire;
        lanes.user = VecDeque::new();
        lanes.system = VecDeque::new();
        true
    }

    /// Takes everything queued.
    pub(crate) fn drain(&self) -> Vec<Envelope> {
        let lanes = self.lock();
        self.take_all(lanes)
    }

    /// Retires the mailbox whatever it holds (no push succeeds after) and
    /// takes everything queued, in one step.
    pub(crate) fn retire_draining(&self) -> Vec<Envelope> {
        let mut lanes = self.lock();
        lanes.attached = false;
        lanes.retired = true;
        self.take_all(lanes)
    }

    fn take_all(&self, mut lanes: std::sync::MutexGuard<'_, Lanes>) -> Vec<Envelope> {
        let mut all: Vec<Envelope> = lanes.system.drain(..).collect();
        all.extend(
            lanes
                .user
                .drain(..)
                .map(|(p, reply, _, seq)| Envelope::Message {
                    msg: unpack(&p),
                    reply,
                    seq,
                }),
        );
        self.queued.fetch_sub(all.len(), Ordering::Release);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(p: &str) -> Message {
        Message::new("t", p.as_bytes().to_vec())
    }

    #[test]
    fn a_retired_mailbox_refuses_pushes_and_gives_the_charge_back() {
        let m = Mailbox::new(2, true);
        assert!(m.push(msg("a"), None, None).is_ok());
        assert!(!m.retire_if_empty(), "not empty: not retired");
        assert!(m.try_pop().is_some());
        assert!(m.retire_if_empty());
        let budget = crate::sandbox::budget::HostBudget::new(1000);
        let charge = budget.charge(10).unwrap();
        match m.push(msg("b"), None, Some(charge)) {
            Err((_, _, PushError::Retired(Some(c)))) => drop(c),
            _ => panic!("a retired mailbox took a message"),
        }
        assert_eq!(budget.held(), 0);
        assert!(matches!(
            m.push_system(Envelope::Callback {
                correlation_id: 1,
                incarnation: 1,
                result: Err(RequestError::Timeout),
            }),
            Pushed::Dropped(..)
        ));
    }

    #[test]
    fn a_packed_message_unpacks_the_same() {
        let m = Message::new("sender-é", vec![0, 1, 2, 255])
            .with_content_type("text/plain")
            .with_correlation_id("42")
            .with_metadata("trace-id", "abc")
            .with_metadata("", "");
        let same = |a: &Message, b: &Message| {
            (
                &a.sender,
                &a.payload,
                &a.content_type,
                &a.correlation_id,
                &a.metadata,
                a.timestamp_ms,
            ) == (
                &b.sender,
                &b.payload,
                &b.content_type,
                &b.correlation_id,
                &b.metadata,
                b.timestamp_ms,
            )
        };
        assert!(same(&unpack(&pack(&m)), &m));
        let bare = Message::new("", Vec::new());
        assert!(same(&unpack(&pack(&bare)), &bare));
    }

    #[test]
    fn bounded_user_lane_and_unbounded_system_lane() {
        let m = Mailbox::new(2, true);
        assert!(m.push(msg("a"), None, None).is_ok());
        assert!(m.push(msg("b"), None, None).is_ok());
        assert!(
            m.push(msg("c"), None, None).is_err(),
            "third message refused"
        );
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
        assert!(matches!(
            m.push(msg("a"), None, None),
            Ok(Pushed::NeedsTask)
        ));
        assert!(matches!(m.push(msg("b"), None, None), Ok(Pushed::Queued)));
        assert!(!m.detach_if_empty(), "not empty: stays attached");
        m.drain();
        assert!(m.detach_if_empty());
        assert!(matches!(
            m.push(msg("c"), None, None),
            Ok(Pushed::NeedsTask)
        ));
    }
}
