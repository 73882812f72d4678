//! `airssys:component/messaging`: send, request → reply, timers, topics.
//! Owns its capability table and checks: each call checks the caller's grants
//! (`messaging.send/publish/subscribe`, then the host's `SecurityPolicy`) and
//! audits the decision before its [`Mailroom`] acts. The sender, timestamp and trace
//! id of every outgoing message are set here, never by the guest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::airssys::component::messaging::{self, MessagingError};
use crate::bindings::{now_millis, Message, Reply};
use crate::error::Error;
use crate::security::capability::{
    Capabilities, CapabilityKind, Decision, FunctionSignature, WitInterface,
};
use crate::security::policy::Capability;

const SEND: &[CapabilityKind] = &[CapabilityKind::MessagingSend];

/// What each function of the interface requires.
pub(crate) const INTERFACE: WitInterface = WitInterface {
    name: "airssys:component/messaging",
    functions: &[
        FunctionSignature {
            name: "send",
            required_capabilities: SEND,
        },
        FunctionSignature {
            name: "request",
            required_capabilities: SEND,
        },
        FunctionSignature {
            name: "send-after",
            required_capabilities: SEND,
        },
        FunctionSignature {
            name: "publish",
            required_capabilities: &[CapabilityKind::MessagingPublish],
        },
        FunctionSignature {
            name: "subscribe",
            required_capabilities: &[CapabilityKind::MessagingSubscribe],
        },
    ],
};

/// Why a message was not delivered, as its sender sees it. A [`Mailroom`]
/// returns it; [`Undeliverable::into_guest`] says it to a guest and
/// [`Undeliverable::into_error`] to an embedder, so each case is worded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Undeliverable {
    NoSuchActor,
    MailboxFull(usize),
    Refused(String),
    Stopped,
    /// The sender's host budget cannot hold the message.
    OverBudget {
        held: u64,
        asked: u64,
        limit: u64,
    },
    /// The sender may hold no more subscriptions.
    TooManySubscriptions(u32),
    /// A durable target's mailbox log could not take it.
    NotLogged(String),
    /// The target's host cannot be reached (down, or the link to it is gone).
    Unavailable(String),
}

impl std::fmt::Display for Undeliverable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Undeliverable::NoSuchActor => f.write_str("no such actor"),
            Undeliverable::MailboxFull(capacity) => {
                write!(f, "mailbox full (capacity {capacity})")
            }
            Undeliverable::Refused(rule) => write!(f, "refused: {rule}"),
            Undeliverable::Stopped => f.write_str("target stopped"),
            Undeliverable::OverBudget { held, asked, limit } => write!(
                f,
                "host budget exhausted: holds {held} of {limit} bytes of this actor's messages, \
                 {asked} more asked (limits.host-bytes)"
            ),
            Undeliverable::NotLogged(why) => write!(f, "not written to the durable mailbox: {why}"),
            Undeliverable::Unavailable(why) => write!(f, "unavailable: {why}"),
            Undeliverable::TooManySubscriptions(n) => {
                write!(f, "{n} subscriptions is the cap (limits.subscriptions)")
            }
        }
    }
}

impl Undeliverable {
    /// The error a guest gets for a message to `target`.
    pub(crate) fn into_guest(self, target: &str) -> MessagingError {
        match self {
            Undeliverable::NoSuchActor => MessagingError::NoSuchActor(target.to_string()),
            Undeliverable::MailboxFull(cap) => {
                MessagingError::MailboxFull(format!("{target}: mailbox full (capacity {cap})"))
            }
            Undeliverable::Refused(rule) => MessagingError::Refused(format!("{target}: {rule}")),
            Undeliverable::Stopped => MessagingError::NoSuchActor(format!("{target} (stopped)")),
            e @ Undeliverable::OverBudget { .. } => MessagingError::Unavailable(e.to_string()),
            Undeliverable::TooManySubscriptions(n) => MessagingError::TooManyPending(n),
            e @ (Undeliverable::NotLogged(_) | Undeliverable::Unavailable(_)) => {
                MessagingError::Unavailable(format!("{target}: {e}"))
            }
        }
    }

    /// The error an embedder (or the admin API) gets for a message to `target`.
    pub(crate) fn into_error(self, target: &str) -> Error {
        let actor = target.to_string();
        match self {
            Undeliverable::NoSuchActor => Error::NoSuchActor { actor },
            Undeliverable::MailboxFull(capacity) => Error::MailboxFull { actor, capacity },
            Undeliverable::Refused(rule) => Error::Refused { actor, rule },
            Undeliverable::Stopped => Error::ActorStopped { actor },
            Undeliverable::NotLogged(reason) => Error::NotLogged { actor, reason },
            Undeliverable::Unavailable(reason) => Error::Unavailable { actor, reason },
            e @ (Undeliverable::OverBudget { .. } | Undeliverable::TooManySubscriptions(_)) => {
                Error::Refused {
                    actor,
                    rule: e.to_string(),
                }
            }
        }
    }
}

/// The caps a [`Mailroom`] puts on what one instance sends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendLimits {
    /// The largest whole message (payload, metadata, ids and target), in bytes.
    pub(crate) max_message_bytes: usize,
    /// Requests and timers the instance may have outstanding at once.
    pub(crate) max_pending: u32,
    /// The longest timeout a request may ask for.
    pub(crate) max_request_timeout: Duration,
}

/// What a guest may ask of the world it runs in: send, request → reply,
/// timers and topics. The messaging interface checks names and grants, stamps
/// the sender, time and trace id, and then asks its mailroom; it never knows
/// how a message travels. The actor layer implements it for one host
/// (`actor::link`); a transport to other hosts is the next implementation.
///
/// Resolves when a message to a durable actor is in its mailbox log (or why
/// it could not be written).
pub(crate) type Ack = tokio::sync::oneshot::Receiver<Result<(), String>>;

/// A mailroom belongs to one instance. Dropping it (the instance is dropped:
/// crash, restart, passivation, stop) must cancel what the instance left
/// pending: its requests, its timers, its subscriptions.
pub(crate) trait Mailroom: Send + Sync + 'static {
    /// The address the instance sends as.
    fn self_id(&self) -> &str;
    /// The caps on what it sends.
    fn limits(&self) -> SendLimits;
    /// Requests and timers it has outstanding.
    fn pending(&self) -> u32;
    /// A fresh trace id for a message that starts a trace.
    fn new_trace(&self) -> String;
    /// Delivers `msg` to `target`'s mailbox (charged to the sender until taken).
    /// For a durable target, the [`Ack`] resolves once the message is in its
    /// mailbox log; the guest's `send` returns only then.
    fn send(&self, target: &str, msg: Message) -> Result<Option<Ack>, Undeliverable>;
    /// Sends a request; its reply (or timeout) comes back as a callback.
    /// Returns the correlation id.
    fn request(&self, target: &str, msg: Message, timeout: Duration) -> Result<u64, Undeliverable>;
    /// Cancels a pending request; false when it is not pending (or not the sender's).
    fn cancel_request(&self, correlation: u64) -> bool;
    /// Delivers `msg` to `target` after `delay`. Returns the timer id.
    fn send_after(&self, target: &str, msg: Message, delay: Duration)
        -> Result<u64, Undeliverable>;
    /// Cancels a timer; false when it has fired or is not the sender's.
    fn cancel_timer(&self, timer: u64) -> bool;
    /// A copy of `msg` to every subscriber of `topic`; returns how many got one.
    fn publish(&self, topic: &str, msg: Message) -> Result<u32, Undeliverable>;
    /// Subscribes the instance to a topic pattern, for its lifetime.
    fn subscribe(&self, pattern: &str) -> Result<(), Undeliverable>;
    /// Ends a subscription; false when there was none.
    fn unsubscribe(&self, pattern: &str) -> bool;
}

/// Per-instance state of the messaging interface.
pub(crate) struct MessagingCtx {
    component: Arc<str>,
    caps: Arc<Capabilities>,
    mailroom: Option<Box<dyn Mailroom>>,
    /// The trace id of the message being handled; outgoing messages carry it.
    pub(crate) trace: Option<String>,
    /// `messaging.send` grant decisions by target (the grants of an instance
    /// do not change; the host policy is still asked at every call).
    send_grants: HashMap<String, Decision>,
    /// The reply being shaped with `set-reply` (its payload comes later, the
    /// call's result); `None` outside `handle-message`.
    reply: Option<Reply>,
}

/// The cap on a shaped reply when the instance has no mailroom (as under
/// `call`): the actor default message cap.
const REPLY_BYTES_WITHOUT_MAILROOM: usize = 1 << 20;

/// Targets whose send decision an instance remembers before the memory is reset.
const SEND_GRANTS_KEPT: usize = 256;
/// The longest target, topic or pattern a guest may name: longer than any
/// actor id (63 + 1 + 128 bytes), so a longer one is refused before it is
/// checked, audited or kept.
const MAX_NAME_BYTES: usize = 256;

fn check_name(what: &str, name: &str) -> Result<(), MessagingError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(MessagingError::Invalid(format!(
            "{what} of {} bytes: at most {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    Ok(())
}

impl MessagingCtx {
    pub(crate) fn new(
        component: Arc<str>,
        caps: Arc<Capabilities>,
        mailroom: Option<Box<dyn Mailroom>>,
    ) -> Self {
        MessagingCtx {
            component,
            caps,
            mailroom,
            trace: None,
            send_grants: HashMap::new(),
            reply: None,
        }
    }

    /// A `handle-message` call starts: `set-reply` may shape its reply.
    pub(crate) fn begin_reply(&mut self) {
        self.reply = Some(Reply::default());
    }

    /// The call ended: what `set-reply` said (empty if it was not called).
    pub(crate) fn take_reply(&mut self) -> Reply {
        self.reply.take().unwrap_or_default()
    }

    fn mailroom(&self) -> Result<&dyn Mailroom, MessagingError> {
        self.mailroom.as_deref().ok_or_else(|| {
            MessagingError::Unavailable(format!(
                "{} is not running as an actor (no actor system)",
                self.component
            ))
        })
    }

    fn check(
        &self,
        function: &str,
        resource: &str,
        c: Capability<'_>,
    ) -> Result<(), MessagingError> {
        let d = self.caps.authorize(&self.component, function, resource, &c);
        self.verdict(function, resource, d)
    }

    /// [`MessagingCtx::check`] for a send target, with the grant part cached.
    fn check_send(&mut self, function: &str, target: &str) -> Result<(), MessagingError> {
        let granted = match self.send_grants.get(target) {
            Some(d) => d.clone(),
            None => {
                let d = self.caps.check_send(target);
                if self.send_grants.len() >= SEND_GRANTS_KEPT {
                    self.send_grants.clear();
                }
                self.send_grants.insert(target.to_string(), d.clone());
                d
            }
        };
        let d = self
            .caps
            .with_policy_decision(&self.component, &Capability::Send(target), granted);
        if !d.allowed || self.caps.audit.is_enabled() {
            self.caps.record(&self.component, function, target, &d);
        }
        self.verdict(function, target, d)
    }

    fn verdict(&self, function: &str, resource: &str, d: Decision) -> Result<(), MessagingError> {
        if d.allowed {
            Ok(())
        } else {
            Err(MessagingError::CapabilityDenied(format!(
                "{function} {resource}: {}",
                d.rule
            )))
        }
    }

    /// The message as it leaves this actor: the host's sender, timestamp and
    /// trace id, checked against the whole-message cap. (The mailroom then
    /// charges it to the sender's host budget until its receiver takes it.)
    fn outgoing(
        &self,
        room: &dyn Mailroom,
        target: &str,
        mut msg: Message,
    ) -> Result<Message, MessagingError> {
        let limit = room.limits().max_message_bytes;
        if msg.wire_bytes() + target.len() > limit {
            return Err(MessagingError::MessageTooLarge(limit as u64));
        }
        msg.sender = room.self_id().to_string();
        msg.timestamp_ms = now_millis();
        msg.correlation_id = None;
        msg.metadata
            .retain(|(k, _)| k != "trace-id" && k != "topic");
        let trace = self.trace.clone().unwrap_or_else(|| room.new_trace());
        msg.metadata.push(("trace-id".into(), trace));
        Ok(msg)
    }

    fn reserve(&self, room: &dyn Mailroom) -> Result<(), MessagingError> {
        let max = room.limits().max_pending;
        if room.pending() >= max {
            return Err(MessagingError::TooManyPending(max));
        }
        Ok(())
    }
}

/// Adds the messaging interface to the linker.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut MessagingCtx,
) -> wasmtime::Result<()> {
    messaging::add_to_linker::<T, HasSelf<MessagingCtx>>(linker, get)
}

impl messaging::Host for MessagingCtx {
    fn self_id(&mut self) -> String {
        match &self.mailroom {
            Some(room) => room.self_id().to_string(),
            None => self.component.to_string(),
        }
    }

    async fn send(&mut self, target: String, msg: Message) -> Result<(), MessagingError> {
        check_name("target", &target)?;
        self.check_send("messaging.send", &target)?;
        let ack = {
            let room = self.mailroom()?;
            let msg = self.outgoing(room, &target, msg)?;
            room.send(&target, msg).map_err(|e| e.into_guest(&target))?
        };
        match ack {
            None => Ok(()),
            Some(ack) => match ack.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(why)) => Err(MessagingError::Unavailable(format!(
                    "{target}: its durable mailbox did not take the message: {why}"
                ))),
                Err(_) => Err(MessagingError::Unavailable(format!(
                    "{target}: its durable mailbox is closed"
                ))),
            },
        }
    }

    fn request(
        &mut self,
        target: String,
        msg: Message,
        timeout_ms: u32,
    ) -> Result<String, MessagingError> {
        check_name("target", &target)?;
        self.check_send("messaging.request", &target)?;
        let room = self.mailroom()?;
        let max = room.limits().max_request_timeout;
        let timeout = Duration::from_millis(timeout_ms.into());
        if timeout.is_zero() || timeout > max {
            return Err(MessagingError::Invalid(format!(
                "timeout-ms must be 1 to {}",
                max.as_millis()
            )));
        }
        self.reserve(room)?;
        let msg = self.outgoing(room, &target, msg)?;
        room.request(&target, msg, timeout)
            .map(|corr| corr.to_string())
            .map_err(|e| e.into_guest(&target))
    }

    fn cancel_request(&mut self, correlation_id: String) -> bool {
        match (&self.mailroom, correlation_id.parse::<u64>()) {
            (Some(room), Ok(corr)) => room.cancel_request(corr),
            _ => false,
        }
    }

    fn send_after(
        &mut self,
        target: String,
        msg: Message,
        delay_ms: u32,
    ) -> Result<u64, MessagingError> {
        check_name("target", &target)?;
        self.check_send("messaging.send-after", &target)?;
        let room = self.mailroom()?;
        self.reserve(room)?;
        let msg = self.outgoing(room, &target, msg)?;
        room.send_after(&target, msg, Duration::from_millis(delay_ms.into()))
            .map_err(|e| e.into_guest(&target))
    }

    fn cancel_timer(&mut self, timer_id: u64) -> bool {
        match &self.mailroom {
            Some(room) => room.cancel_timer(timer_id),
            None => false,
        }
    }

    fn publish(&mut self, topic: String, msg: Message) -> Result<u32, MessagingError> {
        check_name("topic", &topic)?;
        let room = self.mailroom()?;
        if topic.is_empty() || topic.contains(['*', '?', '[', '{']) {
            return Err(MessagingError::Invalid(format!(
                "topic {topic:?}: a topic is a dot-separated name without wildcards"
            )));
        }
        self.check("messaging.publish", &topic, Capability::Publish(&topic))?;
        let msg = self.outgoing(room, &topic, msg)?;
        room.publish(&topic, msg).map_err(|e| e.into_guest(&topic))
    }

    fn subscribe(&mut self, topic_pattern: String) -> Result<(), MessagingError> {
        check_name("topic pattern", &topic_pattern)?;
        let room = self.mailroom()?;
        self.check(
            "messaging.subscribe",
            &topic_pattern,
            Capability::Subscribe(&topic_pattern),
        )?;
        room.subscribe(&topic_pattern).map_err(|e| match e {
            Undeliverable::Refused(why) => MessagingError::Invalid(why),
            e => e.into_guest(&topic_pattern),
        })
    }

    fn unsubscribe(&mut self, topic_pattern: String) -> bool {
        match &self.mailroom {
            Some(room) => room.unsubscribe(&topic_pattern),
            None => false,
        }
    }

    fn set_reply(
        &mut self,
        content_type: Option<String>,
        metadata: Vec<(String, String)>,
    ) -> Result<(), MessagingError> {
        let limit = self
            .mailroom
            .as_ref()
            .map_or(REPLY_BYTES_WITHOUT_MAILROOM, |room| {
                room.limits().max_message_bytes
            });
        let Some(reply) = self.reply.as_mut() else {
            return Err(MessagingError::Invalid(
                "set-reply is only valid during handle-message".into(),
            ));
        };
        let mut shape = Reply {
            payload: Vec::new(),
            content_type,
            metadata,
        };
        if shape.wire_bytes() > limit {
            return Err(MessagingError::MessageTooLarge(limit as u64));
        }
        // The host sets these on every message; a guest's are dropped.
        shape
            .metadata
            .retain(|(k, _)| k != "trace-id" && k != "topic");
        *reply = shape;
        Ok(())
    }
}
