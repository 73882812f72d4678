//! Request → reply: a request is registered as pending under a correlation
//! id, delivered, and its timeout armed; the reply (or the timeout, or the
//! target's crash) comes back to the requester's mailbox as a callback. A
//! reply after the timeout or a cancellation is a dead letter.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::cell::Cell;
use super::deadlines::Due;
use super::events::DeadLetterReason;
use super::mailbox::{Envelope, Pushed, ReplyTo};
use super::router::{Pending, Router};
use crate::bindings::{Message, RequestError};
use crate::host::messaging::Undeliverable;
use crate::sandbox::budget::Charge;

impl Router {
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
        self.arm(timeout, Due::Request(corr));
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
            Pushed::Dropped(..) => {
                self.counters.late_replies.fetch_add(1, Ordering::Relaxed);
            }
            Pushed::Queued => {}
        }
    }

    /// Request `corr`'s deadline ([`Due::Request`]): a timeout, unless it
    /// was answered or cancelled meanwhile.
    pub(super) fn expire(self: &Arc<Self>, corr: u64) {
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
                if pending.remove(&corr).is_some() {
                    owner.pending.fetch_sub(1, Ordering::Relaxed);
                }
                true
            }
            _ => false,
        }
    }
}
