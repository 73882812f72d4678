//! The router: actor ids to mailboxes. It delivers sends, correlates requests
//! with replies (and times them out), runs timers, fans published messages out
//! to subscribers, activates virtual actors on their first message, and keeps
//! the dead letters: every message it cannot deliver is counted and kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, Semaphore};

use super::cell::Cell;
use super::dead_letters::DeadLetters;
use super::deadlines::{Due, OnDue};
use super::events::{ActorState, DeadLetter, DeadLetterReason, SystemEvent};
use super::mailbox::{pack, unpack, PushError, Pushed, ReplyTo};
use super::residency::Residency;
use super::spec::ActorSpec;
use super::topics::Topics;
use crate::bindings::Message;
use crate::host::messaging::{Ack, Undeliverable};
use crate::id::ActorId;
use crate::sandbox::budget::Charge;
use crate::storage::commit::WriteOutcome;
use crate::storage::StorageError;

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
        Undeliverable::NotLogged(reason) => DeadLetterReason::NotLogged {
            reason: reason.clone(),
        },
        Undeliverable::Unavailable(reason) => DeadLetterReason::Unavailable {
            reason: reason.clone(),
        },
    }
}

/// Whether `cell`'s `messaging.accept` list admits `sender` (a refusal is audited).
fn accepts(cell: &Cell, sender: &str) -> Result<(), &'static str> {
    let caps = cell.spec.context.capabilities();
    if let Some(accept) = &caps.accept {
        if accept.matching(sender).is_none() {
            let rule = "not accepted: no messaging.accept pattern matches the sender";
            caps.record(
                cell.id().as_str(),
                "messaging.accept",
                sender,
                &crate::security::capability::Decision::deny(rule),
            );
            return Err(rule);
        }
    }
    Ok(())
}

/// A push that did not land: failed for good, or to retry on a fresh cell.
#[allow(clippy::large_enum_variant)]
enum Retry {
    Failed(Undeliverable),
    Retired(Message, Option<ReplyTo>, Option<Charge>),
}

/// A request awaiting its reply.
pub(super) struct Pending {
    pub(super) requester: Arc<Cell>,
    pub(super) incarnation: u64,
    pub(super) target: Arc<str>,
    pub(super) timeout: Duration,
}

/// An armed timer.
pub(super) struct Timer {
    pub(super) owner: Arc<Cell>,
    pub(super) incarnation: u64,
    /// Where and what it delivers, and the budget it holds until then.
    pub(super) target: String,
    pub(super) msg: Message,
    pub(super) charge: Option<Charge>,
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

impl OnDue for Router {
    fn on_due(this: &Arc<Self>, due: Due) {
        match due {
            Due::Request(corr) => this.expire(corr),
            Due::Timer(id) => this.fire(id),
        }
    }

    fn is_pending(&self, due: &Due) -> bool {
        match due {
            Due::Request(c) => self
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(c),
            Due::Timer(id) => self
                .timers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(id),
        }
    }
}

pub(crate) struct Router {
    actors: RwLock<HashMap<Arc<str>, Arc<Cell>>>,
    kinds: RwLock<HashMap<String, VirtualKind>>,
    /// Requests awaiting a reply (`rpc`), by correlation id.
    pub(super) pending: Mutex<HashMap<u64, Pending>>,
    /// Armed `send-after` timers (`timers`), by id.
    pub(super) timers: Mutex<HashMap<u64, Timer>>,
    /// When each pending request times out and each timer fires (one task).
    pub(super) deadlines: Arc<super::deadlines::Deadlines>,
    pub(super) next_id: AtomicU64,
    pub(crate) topics: Topics,
    dead: DeadLetters,
    pub(crate) counters: Counters,
    events: broadcast::Sender<SystemEvent>,
    accepting: AtomicBool,
    /// Instances virtual actors may hold at once.
    pub(crate) resident: Arc<Semaphore>,
    /// Which virtual actors hold an instance, least recently used first.
    pub(crate) residency: Residency,
    pub(super) runtime: tokio::runtime::Handle,
    trace_seed: u64,
    /// Starts the task of a virtual actor whose mailbox just got a message
    /// (the actor layer's loop; the router only knows when).
    pub(super) activate: Activate,
    /// The other hosts of a cluster, when this host is in one.
    pub(super) remote: std::sync::OnceLock<Arc<dyn super::remote::Remote>>,
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
            deadlines: Arc::default(),
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
            remote: std::sync::OnceLock::new(),
        })
    }

    /// Arms `due` on the system's one deadline task.
    pub(crate) fn arm(self: &Arc<Self>, after: Duration, due: Due) {
        self.deadlines
            .arm(after, due, &self.runtime, Arc::downgrade(self));
    }

    /// Installs the transport to the other hosts (once).
    pub(crate) fn set_remote(&self, remote: Arc<dyn super::remote::Remote>) -> bool {
        self.remote.set(remote).is_ok()
    }

    pub(crate) fn remote(&self) -> Option<&Arc<dyn super::remote::Remote>> {
        self.remote.get()
    }

    /// The timeout of actor request `corr`, while it is pending.
    pub(crate) fn pending_timeout(&self, corr: u64) -> Option<Duration> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&corr)
            .map(|p| p.timeout)
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
        if spec.options.durable && spec.context.storage().is_none() {
            return Err(format!(
                "virtual component {name} is durable, so it needs storage: give the system \
                 a data directory (ExecutionContext::with_storage, `--data DIR` or `[system] data`)"
            ));
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
    /// Whether virtual component `name` is registered on this host.
    pub(crate) fn has_kind(&self, name: &str) -> bool {
        self.kinds
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name)
    }

    /// The virtual components registered on this host.
    pub(crate) fn kind_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .kinds
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

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
    /// is returned to the sender. (To a durable actor: the log write is not
    /// awaited; see [`Router::deliver_acked`].)
    pub(crate) fn deliver(
        self: &Arc<Self>,
        target: &str,
        msg: Message,
        reply: Option<ReplyTo>,
        charge: Option<Charge>,
    ) -> Result<(), Undeliverable> {
        self.deliver_acked(target, msg, reply, charge, None)
            .map(|_| ())
    }

    /// [`Router::deliver`], with the [`Ack`] of a durable target's log write.
    /// From a durable actor's call in progress (`from`), a message to a
    /// durable actor goes to the sender's outbox instead: it is committed
    /// with the call (exactly once with its other effects), not before.
    pub(crate) fn deliver_acked(
        self: &Arc<Self>,
        target: &str,
        msg: Message,
        reply: Option<ReplyTo>,
        charge: Option<Charge>,
        from: Option<&Arc<Cell>>,
    ) -> Result<Option<Ack>, Undeliverable> {
        self.route(target, msg, reply, charge, from, true)
    }

    /// Delivers to an actor of this host, activating a virtual one here: the
    /// cluster placed it here (or it is not in a cluster). With the [`Ack`]
    /// of a durable target's log write.
    pub(crate) fn deliver_here(
        self: &Arc<Self>,
        target: &str,
        msg: Message,
        reply: Option<ReplyTo>,
        charge: Option<Charge>,
    ) -> Result<Option<Ack>, Undeliverable> {
        self.route(target, msg, reply, charge, None, false)
    }

    fn route(
        self: &Arc<Self>,
        target: &str,
        msg: Message,
        reply: Option<ReplyTo>,
        charge: Option<Charge>,
        from: Option<&Arc<Cell>>,
        remote: bool,
    ) -> Result<Option<Ack>, Undeliverable> {
        // Only a durable sender has an outbox: a plain send takes no lock here.
        if let Some(sender) = from.filter(|s| s.options().durable) {
            let mut outbox = sender.outbox.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(out) = outbox.as_mut() {
                // In a cluster, a virtual actor not held here may live on
                // another host: only what is here joins the outbox.
                let here = match self.remote.get() {
                    Some(_) => self.get(target),
                    None => self.lookup(target),
                };
                if let Some(cell) = here.filter(|c| c.options().durable) {
                    if let Err(rule) = accepts(&cell, &msg.sender) {
                        let why = Undeliverable::Refused(rule.into());
                        return Err(self.undeliverable(target, msg, why));
                    }
                    if cell.mailbox.is_full() {
                        let why = Undeliverable::MailboxFull(cell.mailbox.capacity());
                        return Err(self.undeliverable(target, msg, why));
                    }
                    out.push((cell, pack(&msg), charge));
                    return Ok(None);
                }
            }
        }
        let (mut msg, mut reply, mut charge) = (msg, reply, charge);
        // A virtual actor's cell retired between the lookup and the push:
        // look again (a fresh cell), at most a few times.
        for _ in 0..4 {
            let cell = match self.get(target) {
                Some(c) => c,
                None => {
                    // Not held here: another host of the cluster may have it,
                    // or place it (a virtual actor).
                    if let Some(r) = self.remote.get().filter(|_| remote) {
                        match r.forward(target, msg, reply, &mut charge) {
                            super::remote::Forwarded::Sent => {
                                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                                return Ok(None);
                            }
                            super::remote::Forwarded::Acked(ack) => {
                                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                                return Ok(Some(ack));
                            }
                            super::remote::Forwarded::Failed(why, msg) => {
                                return Err(self.undeliverable(target, msg, why))
                            }
                            super::remote::Forwarded::Unknown(m, r) => (msg, reply) = (m, r),
                        }
                    }
                    match self.lookup(target) {
                        Some(c) => c,
                        None => {
                            return Err(self.undeliverable(target, msg, Undeliverable::NoSuchActor))
                        }
                    }
                }
            };
            match self.deliver_to_inner(&cell, msg, reply, charge) {
                Err(Retry::Retired(m, r, c)) => (msg, reply, charge) = (m, r, c),
                Err(Retry::Failed(e)) => return Err(e),
                Ok(ack) => return Ok(ack),
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
            Ok(_) => Ok(()),
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
    ) -> Result<Option<Ack>, Retry> {
        let target = cell.id().as_str();
        if cell.state() == ActorState::Stopped && !cell.is_virtual {
            return Err(Retry::Failed(self.undeliverable(
                target,
                msg,
                Undeliverable::Stopped,
            )));
        }
        if let Err(rule) = accepts(cell, &msg.sender) {
            return Err(Retry::Failed(self.undeliverable(
                target,
                msg,
                Undeliverable::Refused(rule.into()),
            )));
        }
        if cell.options().durable {
            return self.deliver_logged(cell, msg, reply).map(Some);
        }
        match cell.mailbox.push(msg, reply, charge) {
            Ok(pushed) => {
                cell.touched.store(true, Ordering::Relaxed);
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                if let Pushed::NeedsTask = pushed {
                    (self.activate)(self.clone(), cell.clone());
                }
                Ok(None)
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

    /// To a durable actor: the message goes to its mailbox log first; once
    /// the log's commit is durable, the committer queues it in memory (so the
    /// queue follows the log's order) and the [`Ack`] resolves. The capacity
    /// is checked before the write, so concurrent senders may queue a few past it.
    #[allow(clippy::result_large_err)]
    fn deliver_logged(
        self: &Arc<Self>,
        cell: &Arc<Cell>,
        msg: Message,
        reply: Option<ReplyTo>,
    ) -> Result<Ack, Retry> {
        let target = cell.id().as_str();
        let Some(storage) = cell.spec.context.storage().cloned() else {
            let why = Undeliverable::NotLogged(format!("{target} is durable but has no storage"));
            return Err(Retry::Failed(self.undeliverable(target, msg, why)));
        };
        if cell.mailbox.is_full() {
            let why = Undeliverable::MailboxFull(cell.mailbox.capacity());
            return Err(Retry::Failed(self.undeliverable(target, msg, why)));
        }
        let packed = pack(&msg);
        let id = message_id(&msg);
        drop(msg);
        let (ack, acked) = tokio::sync::oneshot::channel();
        let (router, c) = (self.clone(), cell.clone());
        let entry = packed.clone();
        storage.enqueue(
            target,
            entry,
            id,
            Box::new(move |r: &Result<WriteOutcome, StorageError>| match r {
                Ok(WriteOutcome::Enqueued(seq)) => {
                    router.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    router.queue_logged(&c, packed, *seq, reply);
                    let _ = ack.send(Ok(()));
                }
                // Taken before under the same id: acknowledged, not again.
                Ok(WriteOutcome::Duplicate) => {
                    let _ = ack.send(Ok(()));
                }
                other => {
                    let why = match other {
                        Err(e) => e.to_string(),
                        Ok(o) => format!("unexpected outcome {o:?}"),
                    };
                    router.dead_letter(
                        c.id().as_str(),
                        unpack(&packed),
                        DeadLetterReason::NotLogged {
                            reason: why.clone(),
                        },
                    );
                    let _ = ack.send(Err(why));
                }
            }),
        );
        Ok(acked)
    }

    /// Queues a logged message of `cell` in memory; a virtual actor's cell
    /// that retired meanwhile stands for the same id as a fresh one, so the
    /// message goes there (what is in the log is always delivered).
    pub(crate) fn queue_logged(
        self: &Arc<Self>,
        cell: &Arc<Cell>,
        packed: Vec<u8>,
        seq: u64,
        reply: Option<ReplyTo>,
    ) {
        let mut cell = cell.clone();
        let (mut packed, mut reply) = (packed, reply);
        for _ in 0..4 {
            cell.touched.store(true, Ordering::Relaxed);
            match cell.mailbox.push_logged(packed, seq, reply, false) {
                Pushed::NeedsTask => return (self.activate)(self.clone(), cell.clone()),
                Pushed::Queued => return,
                Pushed::Dropped(p, r) => {
                    (packed, reply) = (p, r);
                    match self.lookup(cell.id().as_str()) {
                        Some(fresh) => cell = fresh,
                        None => break,
                    }
                }
            }
        }
        tracing::warn!(actor = %cell.id(), seq, "a logged message found no mailbox; delivered on the next start");
    }

    /// Queues what the durable virtual actors of `component` left in their
    /// logs (an earlier system on the same data directory): each is
    /// activated for its messages, in order. Returns how many messages.
    pub(crate) fn recover_virtual(self: &Arc<Self>, component: &str) -> Result<usize, String> {
        let storage = {
            let kinds = self.kinds.read().unwrap_or_else(|p| p.into_inner());
            match kinds.get(component) {
                Some(k) if k.spec.options.durable => k.spec.context.storage().cloned(),
                _ => None,
            }
        };
        let Some(storage) = storage else {
            return Ok(0);
        };
        let prefix = format!("{component}/");
        let logs = storage
            .mailboxes_under(&prefix)
            .map_err(|e| format!("{component}: durable mailboxes cannot be read: {e}"))?;
        let mut n = 0;
        for (id, entries) in logs {
            let Some(cell) = self.lookup(&id) else {
                continue;
            };
            for (seq, packed) in entries {
                n += 1;
                cell.recovered_upto.fetch_max(seq, Ordering::Relaxed);
                self.queue_logged(&cell, packed, seq, None);
            }
        }
        // Their durable timers: armed on a registered cell, which needs no
        // instance to fire them (like Orleans reminders); the cell stays
        // registered while it has timers armed.
        let owners = storage
            .timer_owners_under(&prefix)
            .map_err(|e| format!("{component}: durable timers cannot be read: {e}"))?;
        for id in owners {
            if let Some(cell) = self.lookup(&id) {
                self.recover_timers(&cell);
            }
        }
        Ok(n)
    }

    /// The storage of virtual component `component` when it is durable.
    pub(crate) fn durable_kind(&self, component: &str) -> Option<crate::storage::Storage> {
        let kinds = self.kinds.read().unwrap_or_else(|p| p.into_inner());
        kinds
            .get(component)
            .filter(|k| k.spec.options.durable)
            .and_then(|k| k.spec.context.storage().cloned())
    }

    /// The durable virtual components registered here, with their storage.
    pub(crate) fn durable_kinds(&self) -> Vec<(String, crate::storage::Storage)> {
        let kinds = self.kinds.read().unwrap_or_else(|p| p.into_inner());
        kinds
            .iter()
            .filter(|(_, k)| k.spec.options.durable)
            .filter_map(|(n, k)| Some((n.clone(), k.spec.context.storage().cloned()?)))
            .collect()
    }

    /// Queues what durable virtual actor `id`'s log holds (just rebuilt
    /// from the cluster's log) and arms its durable timers. Returns how
    /// many messages.
    pub(crate) fn recover_one(self: &Arc<Self>, id: &str) -> Result<usize, String> {
        let Some(cell) = self.lookup(id) else {
            return Ok(0);
        };
        let Some(storage) = cell.spec.context.storage().cloned() else {
            return Ok(0);
        };
        let entries = storage
            .mailbox(id)
            .map_err(|e| format!("{id}: its durable mailbox cannot be read: {e}"))?;
        let n = entries.len();
        for (seq, packed) in entries {
            cell.recovered_upto.fetch_max(seq, Ordering::Relaxed);
            self.queue_logged(&cell, packed, seq, None);
        }
        self.recover_timers(&cell);
        Ok(n)
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
        if let Some(remote) = self.remote.get() {
            remote.publish(topic, &msg);
        }
        self.publish_here(topic, msg, budget)
    }

    /// [`Router::publish`] to this host's subscribers only (a copy another
    /// host published).
    pub(crate) fn publish_here(
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
                        n += 1;
                    }
                    !mine
                });
            cell.pending.fetch_sub(n, Ordering::Relaxed);
        }
        self.topics.release(cell, incarnation);
    }
}

/// The metadata key of a sender-chosen message id: a durable actor whose log
/// is replicated (a cluster) takes a message with the same id from the same
/// sender once, within the log's de-duplication window. 1 to 128 printable ASCII characters, no
/// space; any other value is not an id.
pub const MESSAGE_ID: &str = "message-id";

/// The de-duplication key of `msg`: its sender (set by the host) and its
/// id, so one sender cannot make another's message a duplicate.
fn message_id(msg: &Message) -> Option<String> {
    let (_, v) = msg.metadata.iter().find(|(k, _)| k == MESSAGE_ID)?;
    (!v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| format!("{}.{v}", crate::units::hex(msg.sender.as_bytes())))
}
