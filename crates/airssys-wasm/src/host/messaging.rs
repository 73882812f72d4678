//! `airssys:component/messaging`: send, request → reply, timers, topics.
//! Owns its capability table and checks: each call checks the caller's grants
//! (`messaging.send/publish/subscribe`, then the host's `SecurityPolicy`) and
//! audits the decision before the router acts. The sender, timestamp and trace
//! id of every outgoing message are set here, never by the guest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use crate::actor::budget::Charge;
use crate::actor::router::{Cell, Router, Undeliverable};
use crate::bindings::airssys::component::messaging::{self, MessagingError};
use crate::bindings::{now_millis, Message};
use crate::host::HostState;
use crate::security::capability::{
    Capabilities, Capability, CapabilityKind, Decision, FunctionSignature, WitInterface,
};

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

/// An instance's tie to the actor system it runs in. Dropping it (the instance
/// is dropped: crash, restart, passivation, stop) cancels the instance's pending
/// requests and timers and drops its subscriptions.
pub(crate) struct ActorLink {
    pub(crate) router: Arc<Router>,
    pub(crate) cell: Arc<Cell>,
    pub(crate) incarnation: u64,
    /// The trace id of the message being handled; outgoing messages carry it.
    pub(crate) trace: Option<String>,
}

impl Drop for ActorLink {
    fn drop(&mut self) {
        self.router.release(&self.cell, self.incarnation);
    }
}

/// Per-instance state of the messaging interface.
pub(crate) struct MessagingCtx {
    component: Arc<str>,
    caps: Arc<Capabilities>,
    pub(crate) link: Option<ActorLink>,
    /// `messaging.send` grant decisions by target (the grants of an instance
    /// do not change; the host policy is still asked at every call).
    send_grants: HashMap<String, Decision>,
}

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
        link: Option<ActorLink>,
    ) -> Self {
        MessagingCtx {
            component,
            caps,
            link,
            send_grants: HashMap::new(),
        }
    }

    fn link(&self) -> Result<&ActorLink, MessagingError> {
        self.link.as_ref().ok_or_else(|| {
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
    /// trace id, checked against the whole-message cap, and charged to the
    /// sender's host budget (the charge travels with the message until its
    /// receiver takes it).
    fn outgoing(
        &self,
        link: &ActorLink,
        target: &str,
        mut msg: Message,
    ) -> Result<(Message, Charge), MessagingError> {
        let limit = link.cell.options().max_message_bytes;
        if msg.wire_bytes() + target.len() > limit {
            return Err(MessagingError::MessageTooLarge(limit as u64));
        }
        msg.sender = link.cell.id().as_str().to_string();
        msg.timestamp_ms = now_millis();
        msg.correlation_id = None;
        msg.metadata
            .retain(|(k, _)| k != "trace-id" && k != "topic");
        let trace = link
            .trace
            .clone()
            .unwrap_or_else(|| link.router.new_trace());
        msg.metadata.push(("trace-id".into(), trace));
        let charge = link
            .cell
            .charge(target, &msg)
            .map_err(|e| undeliverable(target, e))?;
        Ok((msg, charge))
    }

    fn reserve(&self, link: &ActorLink) -> Result<(), MessagingError> {
        let max = link.cell.options().max_pending;
        if link.cell.pending.load(std::sync::atomic::Ordering::Relaxed) >= max {
            return Err(MessagingError::TooManyPending(max));
        }
        Ok(())
    }
}

fn undeliverable(target: &str, e: Undeliverable) -> MessagingError {
    match e {
        Undeliverable::NoSuchActor => MessagingError::NoSuchActor(target.to_string()),
        Undeliverable::MailboxFull(cap) => {
            MessagingError::MailboxFull(format!("{target}: mailbox full (capacity {cap})"))
        }
        Undeliverable::Refused(rule) => MessagingError::Refused(format!("{target}: {rule}")),
        Undeliverable::Stopped => MessagingError::NoSuchActor(format!("{target} (stopped)")),
        e @ Undeliverable::OverBudget { .. } => MessagingError::Unavailable(e.to_string()),
        Undeliverable::TooManySubscriptions(n) => MessagingError::TooManyPending(n),
    }
}

/// Adds the messaging interface to the linker.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    messaging::add_to_linker::<HostState, HasSelf<MessagingCtx>>(linker, |h| &mut h.messaging)
}

impl messaging::Host for MessagingCtx {
    fn self_id(&mut self) -> String {
        match &self.link {
            Some(link) => link.cell.id().as_str().to_string(),
            None => self.component.to_string(),
        }
    }

    fn send(&mut self, target: String, msg: Message) -> Result<(), MessagingError> {
        check_name("target", &target)?;
        self.check_send("messaging.send", &target)?;
        let link = self.link()?;
        let (msg, charge) = self.outgoing(link, &target, msg)?;
        link.router
            .deliver(&target, msg, None, Some(charge))
            .map_err(|e| undeliverable(&target, e))
    }

    fn request(
        &mut self,
        target: String,
        msg: Message,
        timeout_ms: u32,
    ) -> Result<String, MessagingError> {
        check_name("target", &target)?;
        self.check_send("messaging.request", &target)?;
        let link = self.link()?;
        let max = link.cell.options().max_request_timeout;
        let timeout = Duration::from_millis(timeout_ms.into());
        if timeout.is_zero() || timeout > max {
            return Err(MessagingError::Invalid(format!(
                "timeout-ms must be 1 to {}",
                max.as_millis()
            )));
        }
        self.reserve(link)?;
        let (msg, charge) = self.outgoing(link, &target, msg)?;
        link.router
            .request(
                &link.cell,
                link.incarnation,
                &target,
                msg,
                timeout,
                Some(charge),
            )
            .map(|corr| corr.to_string())
            .map_err(|e| undeliverable(&target, e))
    }

    fn cancel_request(&mut self, correlation_id: String) -> bool {
        match (&self.link, correlation_id.parse::<u64>()) {
            (Some(link), Ok(corr)) => link.router.cancel_request(&link.cell, corr),
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
        let link = self.link()?;
        self.reserve(link)?;
        let (msg, charge) = self.outgoing(link, &target, msg)?;
        Ok(link.router.send_after(
            &link.cell,
            link.incarnation,
            target,
            msg,
            Duration::from_millis(delay_ms.into()),
            Some(charge),
        ))
    }

    fn cancel_timer(&mut self, timer_id: u64) -> bool {
        match &self.link {
            Some(link) => link.router.cancel_timer(&link.cell, timer_id),
            None => false,
        }
    }

    fn publish(&mut self, topic: String, msg: Message) -> Result<u32, MessagingError> {
        check_name("topic", &topic)?;
        let link = self.link()?;
        if topic.is_empty() || topic.contains(['*', '?', '[', '{']) {
            return Err(MessagingError::Invalid(format!(
                "topic {topic:?}: a topic is a dot-separated name without wildcards"
            )));
        }
        self.check("messaging.publish", &topic, Capability::Publish(&topic))?;
        // The first copy's charge: publishing fails only when not even one
        // copy fits; each delivered copy is then charged on its own.
        let (msg, first) = self.outgoing(link, &topic, msg)?;
        drop(first);
        Ok(link.router.publish(&topic, msg, Some(&link.cell)))
    }

    fn subscribe(&mut self, topic_pattern: String) -> Result<(), MessagingError> {
        check_name("topic pattern", &topic_pattern)?;
        let link = self.link()?;
        self.check(
            "messaging.subscribe",
            &topic_pattern,
            Capability::Subscribe(&topic_pattern),
        )?;
        link.router
            .add_subscription(&link.cell, &topic_pattern, Some(link.incarnation))
            .map_err(|e| match e {
                Undeliverable::Refused(why) => MessagingError::Invalid(why),
                e => undeliverable(&topic_pattern, e),
            })
    }

    fn unsubscribe(&mut self, topic_pattern: String) -> bool {
        match &self.link {
            Some(link) => {
                link.router
                    .remove_subscription(&link.cell, &topic_pattern, link.incarnation)
            }
            None => false,
        }
    }
}
