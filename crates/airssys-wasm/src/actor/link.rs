//! The actor layer's [`Mailroom`]: an instance's tie to the actor system on
//! this host. Every send is charged to the sending actor's host budget here,
//! then handed to the router. Dropping the link (the instance is dropped:
//! crash, restart, passivation, stop) cancels the instance's pending requests
//! and timers and drops its subscriptions.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::cell::Cell;
use super::router::Router;
use crate::bindings::Message;
use crate::host::messaging::{Ack, Mailroom, SendLimits, Undeliverable};

/// One incarnation of one actor, as its instance's mailroom.
pub(crate) struct ActorLink {
    pub(crate) router: Arc<Router>,
    pub(crate) cell: Arc<Cell>,
    pub(crate) incarnation: u64,
}

impl Drop for ActorLink {
    fn drop(&mut self) {
        self.router.release(&self.cell, self.incarnation);
    }
}

impl Mailroom for ActorLink {
    fn self_id(&self) -> &str {
        self.cell.id().as_str()
    }

    fn limits(&self) -> SendLimits {
        let o = self.cell.options();
        SendLimits {
            max_message_bytes: o.max_message_bytes,
            max_pending: o.max_pending,
            max_request_timeout: o.max_request_timeout,
        }
    }

    fn pending(&self) -> u32 {
        self.cell.pending.load(Ordering::Relaxed)
    }

    fn new_trace(&self) -> String {
        self.router.new_trace()
    }

    fn send(&self, target: &str, msg: Message) -> Result<Option<Ack>, Undeliverable> {
        let charge = self.cell.charge(target, &msg)?;
        self.router
            .deliver_acked(target, msg, None, Some(charge), Some(&self.cell))
    }

    fn request(&self, target: &str, msg: Message, timeout: Duration) -> Result<u64, Undeliverable> {
        let charge = self.cell.charge(target, &msg)?;
        self.router.request(
            &self.cell,
            self.incarnation,
            target,
            msg,
            timeout,
            Some(charge),
        )
    }

    fn cancel_request(&self, correlation: u64) -> bool {
        self.router.cancel_request(&self.cell, correlation)
    }

    fn send_after(
        &self,
        target: &str,
        msg: Message,
        delay: Duration,
    ) -> Result<u64, Undeliverable> {
        // A durable actor's timer armed while it handles durable messages is
        // durable: committed with them.
        if self.cell.options().durable
            && self
                .cell
                .outbox
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
        {
            return Ok(self
                .router
                .send_after_durable(&self.cell, target.to_string(), &msg, delay));
        }
        let charge = self.cell.charge(target, &msg)?;
        Ok(self.router.send_after(
            &self.cell,
            self.incarnation,
            target.to_string(),
            msg,
            delay,
            Some(charge),
        ))
    }

    fn cancel_timer(&self, timer: u64) -> bool {
        if timer & super::cell::DURABLE_TIMER != 0 {
            return self.router.cancel_durable(&self.cell, timer);
        }
        self.router.cancel_timer(&self.cell, timer)
    }

    fn publish(&self, topic: &str, msg: Message) -> Result<u32, Undeliverable> {
        // The first copy's charge: publishing fails only when not even one
        // copy fits; each delivered copy is then charged on its own.
        drop(self.cell.charge(topic, &msg)?);
        Ok(self.router.publish(topic, msg, Some(&self.cell)))
    }

    fn subscribe(&self, pattern: &str) -> Result<(), Undeliverable> {
        self.router
            .topics
            .add(&self.cell, pattern, Some(self.incarnation))
    }

    fn unsubscribe(&self, pattern: &str) -> bool {
        self.router
            .topics
            .remove(&self.cell, pattern, self.incarnation)
    }
}
