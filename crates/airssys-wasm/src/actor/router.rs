//! The router: actor ids to mailboxes. It delivers sends, correlates requests
//! with replies (and times them out), runs timers, fans published messages out
//! to subscribers, activates virtual actors on their first message, and keeps
//! the dead letters: every message it cannot deliver is counted and kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, Semaphore};
use tokio::task::AbortHandle;

use super::cell::Cell;
use super::dead_letters::DeadLetters;
use super::events::{ActorState, DeadLetter, DeadLetterReason, SystemEvent};
use super::mailbox::{Envelope, PushError, Pushed, ReplyTo};
use super::residency::Residency;
use super::spec::ActorSpec;
use super::topics::Topics;
use crate::bindings::{Message, RequestError};
use crate::host::messaging::Undeliverable;
use crate::id::ActorId;
use crate::sandbox::budget::Charge;

/// Ids no actor may be declared with: the senders the system itself uses.
pub(crate) const RESERVED_IDS: &[&str] = &["host", "admin", "system", "-"];
/// The dead letter's reason for a message that could not be delivered.
fn reason(why: &Undeliverable) -> DeadLetterReason {
    match why {
        Undeliverable::NoSuchActor => DeadLetterReason::NoSuchActor,
        Undeliverable::MailboxFull(capacity) => DeadLetterReason::MailboxFull {
            capacity: *capacity,
        },
        Undeliverable::Refused(rule) => DeadLetterReason::Refused { rule: rule.clone() },
        Undeliverable::Stopped => DeadLetterReason::Stopped,
        Undeliverable::OverBudget { limit, .. } => DeadLetterReason::OverBudget {
            limit_bytes: *limit,
        },
        Undeliverable::TooManySubscriptions(n) => DeadLetterReason::Refused {
            rule: format!("{n} subscriptions is the cap"),
        },
    }
}

/// A push that did not land: failed for good, or to retry on a fresh cell.
#[allow(clippy::large_enum_variant)]
enum Retry {
    Failed(Undeliverable),
    Retired(Message, Option<ReplyTo>, Option<Charge>),
}

struct Pending {
    requester: Arc<Cell>,
    incarnation: u64,
    target: Arc<str>,
    timeout: Duration,
    timer: Option<AbortHandle>,
}

struct Timer {
    owner: Arc<Cell>,
    incarnation: u64,
    abort: Option<AbortHandle>,
}

/// A component whose actors are activated on demand as `component/key`.
pub(crate) struct VirtualKind {
    pub(crate) spec: ActorSpec,
}

/// Counters observers read.
pub(crate) struct Counters {
    /// Wall time of each `handle-message` and `handle-callback`, in seconds.
    pub(crate) call_seconds: prometheus_client::metrics::histogram::Histogram,
    pub(crate) delivered: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) late_replies: AtomicU64,
    pub(crate) dead_letters: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
        Counters {
            // 1 µs to ~4 s.
            call_seconds: Histogram::new(exponential_buckets(1e-6, 4.0, 12)),
            delivered: AtomicU64::default(),
            requests: AtomicU64::default(),
            timeouts: AtomicU64::default(),
            late_replies: AtomicU64::default(),
            dead_letters: AtomicU64::default(),
        }
    }
}

pub(crate) struct Router {
    actors: RwLock<HashMap<Arc<str>, Arc<Cell>>>,
    kinds: RwLock<HashMap<String, VirtualKind>>,
    pending: Mutex<HashMap<u64, Pending>>,
    timers: Mutex<HashMap<u64, Timer>>,
    next_id: AtomicU64,
    pub(crate) topics: Topics,
    dead: DeadLetters,
    pub(crate) counters: Counters,
    events: broadcast::Sender<SystemEvent>,
    accepting: AtomicBool,
    /// Instances virtual actors may hold at once.
    pub(crate) resident: Arc<Semaphore>,
    /// Which virtual actors hold an instance, least recently used first.
    pub(crate) residency: Residency,
    runtime: tokio::runtime::Handle,
    trace_seed: u64,
    /// Starts the task of a virtual actor whose mailbox just got a message
    /// (the actor layer's loop; the router only knows when).
    activate: Activate,
}

/// How the router starts a virtual actor's task.
pub(crate) type Activate = fn(Arc<Router>, Arc<Cell>);

impl Router {
    pub(crate) fn new(
        max_active: usize,
        runtime: tokio::runtime::Handle,
        activate: Activate,
    ) -> Arc<Router> {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Arc::new(Router {
            actors: RwLock::default(),
            kinds: RwLock::default(),
            pending: Mutex::default(),
            timers: Mutex::default(),
            next_id: AtomicU64::new(1),
            topics: Topics::default(),
            dead: DeadLetters::default(),
            counters: Counters::default(),
            events: broadcast::channel(1024).0,
            accepting: AtomicBool::new(true),
            resident: Arc::new(Semaphore::new(max_active.max(1))),
            residency: Residency::default(),
            runtime,
            trace_seed: u64::from_le_bytes(seed),
            activate,
        })
    }

    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    pub(crate) fn emit(&self, e: SystemEvent) {
        let _ = self.events.send(e);
    }

    pub(crate) fn subscribe_events(&self) -> broadcast::Receiver<SystemEvent> {
        self.events.subscribe()
    }

    pub(crate) fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Release);
    }

    pub(crate) fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// A fresh trace id.
    pub(crate) fn new_trace(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:016x}",
            self.trace_seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        )
    }

    /// Registers a declared actor; fails if the id is taken.
    pub(crate) fn register(&self, cell: Arc<Cell>) -> Result<(), String> {
        let mut actors = self.actors.write().unwrap_or_else(|p| p.into_inner());
        let id = cell.id().shared();
        if actors.contains_key(&id) {
            return Err(format!("actor id {id} is declared twice"));
        }
        if RESERVED_IDS.contains(&&*id) {
            return Err(format!(
                "actor id {id} is reserved: the system sends as {} and no actor may be declared so",
                RESERVED_IDS.join(", ")
            ));
        }
        for pattern in &cell.options().subscriptions {
            self.topics
                .add(&cell, pattern, None)
                .map_err(|e| format!("actor {id}: subscription {pattern:?}: {e}"))?;
        }
        actors.insert(id, cell);
        Ok(())
    }

    pub(crate) fn register_kind(&self, spec: ActorSpec) -> Result<(), String> {
        let mut kinds = self.kinds.write().unwrap_or_else(|p| p.into_inner());
        let name = spec.id.as_str().to_string();
        if RESERVED_IDS.contains(&name.as_str()) {
            return Err(format!("virtual component name {name} is reserved"));
        }
        if kinds.contains_key(&name) {
            return Err(format!("virtual component {name} is declared twice"));
        }
        kinds.insert(name, VirtualKind { spec });
        Ok(())
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Cell>> {
        self.actors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    pub(crate) fn cells(&self) -> Vec<Arc<Cell>> {
        self.actors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The cell for `id`, creating a virtual actor's cell when `id` is
    /// `component/key` of a registered virtual component.
    fn lookup(&self, id: &str) -> Option<Arc<Cell>> {
        if let Some(c) = self.get(id) {
            return Some(c);
        }
        let parsed = ActorId::parse(id).ok()?;
        let (component, _) = parsed.virtual_parts()?;
        let spec = {
            let kinds = self.kinds.read().unwrap_or_else(|p| p.into_inner());
            let kind = kinds.get(component)?;
            ActorSpec {
                id: parsed.clone(),
                ..kind.spec.clone()
            }
        };
        let mut actors = self.actors.write().unwrap_or_else(|p| p.into_inner());
        let cell = actors
            .entry(parsed.shared())
            .or_insert_with(|| Arc::new(Cell::new(spec, "-", true)));
        Some(cell.clone())
    }

    /// Delivers a message to `target`'s mailbox. A failure is a dead letter and
    /// is returned to the sender.
    pub(crate) fn deliver(
        self: &Arc<Self>,
        target: &str,
        msg: Message,
        reply: Option<ReplyTo>,
        charge: Option<Charge>,
    ) -> Result<(), Undeliverable> {
        let (mut msg, mut reply, mut charge) = (msg, reply, charge);
        // A virtual actor's cell retired between the lookup and the push:
        // look again (a fresh cell), at most a few times.
        for _ in 0..4 {
            let Some(cell) = self.lookup(target) else {
                return Err(self.undeliverable(target, msg, Undeliverable::NoSuchActor));
            };
            match self.deliver_to_inner(&cell, msg, reply, charge) {
                Err(Retry::Retired(m, r, c)) => (msg, reply, charge) = (m, r, c),
                Err(Retry::Failed(e)) => return Err(e),
                Ok(()) => return Ok(()),
            }
        }
        Err(self.undeliverable(target, msg, Undeliverable::Stopped))
    }

    pub(crate) fn deliver_to(
        self: &Arc<Self>,
        cell: &Arc<Cell>,
        msg: Message,
        reply: Option<ReplyTo>,
        charge: Option<Charge>,
    ) -> Result<(), Undeliverable> {
        match self.deliver_to_inner(cell, msg, reply, charge) {
            Ok(()) => Ok(()),
            Err(Retry::Failed(e)) => Err(e),
            // A fresh cell stands for the same id.
            Err(Retry::Retired(msg, reply, charge)) => {
                self.deliver(cell.id().as_str(), msg, reply, charge)
            }
        }
    }

    // The message comes back by value on the rare retry path (no clone on
    // the hot path), as `Mailbox::push` gives it back.
    #[allow(clippy::result_large_err)]
    fn deliver_to_inner(
        self: &Arc<Self>,
        cell: &Arc<Cell>,
        msg: Message,
        reply: Option<ReplyTo>,
        charge: Option<Charge>,
    ) -> Result<(), Retry> {
        let target = cell.id().as_str();
        if cell.state() == ActorState::Stopped && !cell.is_virtual {
            return Err(Retry::Failed(self.undeliverable(
                target,
                msg,
                Undeliverable::Stopped,
            )));
        }
        let caps = cell.spec.context.capabilities();
        if let Some(accept) = &caps.accept {
            if accept.matching(&msg.sender).is_none() {
                let rule = "not accepted: no messaging.accept pattern matches the sender";
                caps.record(
                    target,
                    "messaging.accept",
                    &msg.sender,
                    &crate::security::capability::Decision::deny(rule),
                );
                return Err(Retry::Failed(self.undeliverable(
                    target,
                    msg,
                    Undeliverable::Refused(rule.into()),
                )));
            }
        }
        match cell.mailbox.push(msg, reply, charge) {
            Ok(pushed) => {
                cell.touched.store(true, Ordering::Relaxed);
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                if let Pushed::NeedsTask = pushed {
                    (self.activate)(self.clone(), cell.clone());
                }
                Ok(())
            }
            Err((msg, reply, PushError::Full)) => {
                let why = Undeliverable::MailboxFull(cell.mailbox.capacity());
                drop(reply);
                Err(Retry::Failed(self.undeliverable(target, msg, why)))
            }
            Err((msg, reply, PushError::Retired(charge))) => {
                Err(Retry::Retired(msg, reply, charge))
            }
        }
    }

    /// Drops an idle virtual actor's registry entry: it costs nothing but its
    /// durable data until its next message makes a fresh cell. Only a cell
    /// whose mailbox retired (empty, no task) and that holds nothing is dropped.
    pub(crate) fn retire(&self, cell: &Arc<Cell>) {
        let mut actors = self.actors.write().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = actors.get(cell.id().as_str()) {
            if Arc::ptr_eq(c, cell) {
                actors.remove(cell.id().as_str());
            }
        }
    }

    fn undeliverable(&self, to: &str, msg: Message, why: Undeliverable) -> Undeliverable {
        self.dead_letter(to, msg, reason(&why));
        why
    }

    /// Records a dead letter: the facts, and a bounded prefix of the message
    /// (so the list holds at most about 1024 × 4.5 KiB, whatever was sent).
    /// Records a dead letter (counted, kept, traced).
    pub(crate) fn dead_letter(&self, to: &str, msg: Message, reason: DeadLetterReason) {
        self.counters.dead_letters.fetch_add(1, Ordering::Relaxed);
        self.dead.record(to, msg, reason);
    }

    /// Up to `limit` kept dead letters with `seq` above `after`, oldest first.
    pub(crate) fn dead_letters_page(&self, after: u64, limit: usize) -> Vec<DeadLetter> {
        self.dead.page(after, limit)
    }

    pub(crate) fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead.all()
    }

    /// Sends a request from an actor: registers it as pending, delivers it, and
    /// arms its timeout. Returns the correlation id.
    pub(crate) fn request(
        self: &Arc<Self>,
        requester: &Arc<Cell>,
        incarnation: u64,
        target: &str,
        mut msg: Message,
        timeout: Duration,
        charge: Option<Charge>,
    ) -> Result<u64, Undeliverable> {
        let corr = self.next_id.fetch_add(1, Ordering::Relaxed);
        msg.correlation_id = Some(corr.to_string());
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                corr,
                Pending {
                    requester: requester.clone(),
                    incarnation,
                    target: Arc::from(target),
                    timeout,
                    timer: None,
                },
            );
        requester.pending.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.deliver(target, msg, Some(ReplyTo::Actor(corr)), charge) {
            if self.take_pending(corr).is_some() {
                requester.pending.fetch_sub(1, Ordering::Relaxed);
            }
            return Err(e);
        }
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let router = self.clone();
        let timer = self.runtime.spawn(async move {
            tokio::time::sleep(timeout).await;
            router.expire(corr);
        });
        if let Some(p) = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&corr)
        {
            p.timer = Some(timer.abort_handle());
        }
        Ok(corr)
    }

    fn take_pending(&self, corr: u64) -> Option<Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&corr)
    }

    /// The reply to request `corr`: to the requester's `handle-callback`, or,
    /// when it is no longer pending, counted as a late reply.
    pub(crate) fn complete(self: &Arc<Self>, corr: u64, result: Result<Message, RequestError>) {
        let Some(p) = self.take_pending(corr) else {
            self.counters.late_replies.fetch_add(1, Ordering::Relaxed);
            if let Ok(msg) = result {
                self.dead_letter("-", msg, DeadLetterReason::LateReply);
            }
            return;
        };
        if let Some(t) = &p.timer {
            t.abort();
        }
        p.requester.pending.fetch_sub(1, Ordering::Relaxed);
        // The requester takes no reply larger than it may send itself.
        let cap = p.requester.options().max_message_bytes;
        let result = match result {
            Ok(reply) if reply.wire_bytes() > cap => {
                let why = format!(
                    "reply of {} bytes from {} exceeds the requester's cap of {cap} bytes (max-message-bytes)",
                    reply.wire_bytes(),
                    crate::units::truncate(&reply.sender, 256),
                );
                self.dead_letter(
                    p.requester.id().as_str(),
                    reply,
                    DeadLetterReason::TooLarge {
                        limit_bytes: cap as u64,
                    },
                );
                Err(RequestError::Failed(why))
            }
            other => other,
        };
        self.callback(&p.requester, corr, p.incarnation, result);
    }

    fn callback(
        self: &Arc<Self>,
        cell: &Arc<Cell>,
        corr: u64,
        incarnation: u64,
        result: Result<Message, RequestError>,
    ) {
        let pushed = cell.mailbox.push_system(Envelope::Callback {
            correlation_id: corr,
            incarnation,
            result,
        });
        match pushed {
            Pushed::NeedsTask => (self.activate)(self.clone(), cell.clone()),
            Pushed::Dropped => {
                self.counters.late_replies.fetch_add(1, Ordering::Relaxed);
            }
            Pushed::Queued => {}
        }
    }

    fn expire(self: &Arc<Self>, corr: u64) {
        let Some(p) = self.take_pending(corr) else {
            return;
        };
        self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
        p.requester.pending.fetch_sub(1, Ordering::Relaxed);
        let mut msg = Message::new(p.requester.id().as_str(), Vec::new());
        msg.correlation_id = Some(corr.to_string());
        self.dead_letter(
            &p.target,
            msg,
            DeadLetterReason::RequestTimeout {
                timeout_ms: p.timeout.as_millis() as u64,
            },
        );
        self.callback(
            &p.requester,
            corr,
            p.incarnation,
            Err(RequestError::Timeout),
        );
    }

    /// Cancels a pending request of `owner`; no callback comes for it.
    pub(crate) fn cancel_request(&self, owner: &Arc<Cell>, corr: u64) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match pending.get(&corr) {
            Some(p) if Arc::ptr_eq(&p.requester, owner) => {
                if let Some(p) = pending.remove(&corr) {
                    if let Some(t) = p.timer {
                        t.abort();
                    }
                    owner.pending.fetch_sub(1, Ordering::Relaxed);
                }
                true
            }
            _ => false,
        }
    }

    /// Arms a timer that delivers `msg` to `target` after `delay`.
    pub(crate) fn send_after(
        self: &Arc<Self>,
        owner: &Arc<Cell>,
        incarnation: u64,
        target: String,
        msg: Message,
        delay: Duration,
        charge: Option<Charge>,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.timers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id,
                Timer {
                    owner: owner.clone(),
                    incarnation,
                    abort: None,
                },
            );
        owner.pending.fetch_add(1, Ordering::Relaxed);
        let router = self.clone();
        let task = self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let fired = router
                .timers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let Some(t) = fired {
                t.owner.pending.fetch_sub(1, Ordering::Relaxed);
                let _ = router.deliver(&target, msg, None, charge);
            }
        });
        if let Some(t) = self
            .timers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&id)
        {
            t.abort = Some(task.abort_handle());
        }
        id
    }

    /// Cancels a timer of `owner`.
    pub(crate) fn cancel_timer(&self, owner: &Arc<Cell>, id: u64) -> bool {
        let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        match timers.get(&id) {
            Some(t) if Arc::ptr_eq(&t.owner, owner) => {
                if let Some(t) = timers.remove(&id) {
                    if let Some(a) = t.abort {
                        a.abort();
                    }
                    owner.pending.fetch_sub(1, Ordering::Relaxed);
                }
                true
            }
            _ => false,
        }
    }

    /// Delivers `msg` to every subscriber of `topic` (once each); returns how
    /// many got it. A subscription a guest made delivers only topics its
    /// `messaging.subscribe` grant covers.
    /// Each copy a guest publishes is charged to its `budget`; copies past it
    /// are dead letters.
    pub(crate) fn publish(
        self: &Arc<Self>,
        topic: &str,
        msg: Message,
        budget: Option<&Arc<Cell>>,
    ) -> u32 {
        let targets = self.topics.subscribers(topic);
        let mut delivered = 0;
        for cell in targets {
            let mut m = msg.clone();
            m.metadata.push(("topic".into(), topic.to_string()));
            let charge = match budget {
                Some(sender) => match sender.charge(cell.id().as_str(), &m) {
                    Ok(c) => Some(c),
                    Err(why) => {
                        self.undeliverable(cell.id().as_str(), m, why);
                        continue;
                    }
                },
                None => None,
            };
            if self.deliver_to(&cell, m, None, charge).is_ok() {
                delivered += 1;
            }
        }
        delivered
    }

    /// Ends what instance `incarnation` of `cell` started: its pending requests
    /// (no callback will come), its timers, its own subscriptions.
    pub(crate) fn release(&self, cell: &Arc<Cell>, incarnation: u64) {
        if cell.pending.load(Ordering::Relaxed) > 0 {
            let mut n = 0;
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, p| {
                    let mine = Arc::ptr_eq(&p.requester, cell) && p.incarnation == incarnation;
                    if mine {
                        if let Some(t) = &p.timer {
                            t.abort();
                        }
                        n += 1;
                    }
                    !mine
                });
            self.timers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, t| {
                    let mine = Arc::ptr_eq(&t.owner, cell) && t.incarnation == incarnation;
                    if mine {
                        if let Some(a) = &t.abort {
                            a.abort();
                        }
                        n += 1;
                    }
                    !mine
                });
            cell.pending.fetch_sub(n, Ordering::Relaxed);
        }
        self.topics.release(cell, incarnation);
    }
}
