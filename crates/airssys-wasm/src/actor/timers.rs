//! Timers (`send-after`): armed on the system's one deadline task
//! ([`deadlines`](super::deadlines)), charged to its owner's host budget
//! until it fires or is cancelled; dropped with the instance. (Durable
//! timers, below, are rarer and keep a task each.)
//!
//! A durable actor's timers armed while it handles durable messages are
//! durable (like Orleans reminders): stored with the call's transaction,
//! armed once committed, kept across restarts of the instance and of the host
//! (re-armed when the actor's task starts; a timer due while the host was down
//! fires at once), and removed in the transaction that delivers them (to a
//! durable target: into its log, exactly once; to another: after the removal,
//! at most once). A virtual actor's durable timers are armed on its cell,
//! which stays registered (without an instance) until they have fired, and
//! are re-armed at start for every `component/key` that has some stored.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::cell::{Cell, DURABLE_TIMER};
use super::deadlines::Due;
use super::mailbox::{pack, unpack};
use super::router::{Router, Timer};
use crate::bindings::{now_millis, Message};
use crate::sandbox::budget::Charge;
use crate::storage::commit::{DurableTimer, WriteOutcome};

impl Router {
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
                    target,
                    msg,
                    charge,
                },
            );
        owner.pending.fetch_add(1, Ordering::Relaxed);
        self.arm(delay, Due::Timer(id));
        id
    }

    /// Timer `id`'s deadline ([`Due::Timer`]): delivers, unless it was
    /// cancelled (or its owner's instance dropped) meanwhile.
    pub(super) fn fire(self: &Arc<Self>, id: u64) {
        let fired = self
            .timers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(t) = fired {
            t.owner.pending.fetch_sub(1, Ordering::Relaxed);
            let _ = self.deliver(&t.target, t.msg, None, t.charge);
        }
    }

    /// A durable timer, armed during `owner`'s durable group: committed with
    /// the group, armed in memory after. Returns its id.
    pub(crate) fn send_after_durable(
        &self,
        owner: &Arc<Cell>,
        target: String,
        msg: &Message,
        delay: Duration,
    ) -> u64 {
        let id = DURABLE_TIMER | owner.next_timer.fetch_add(1, Ordering::Relaxed);
        owner
            .group_timers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(DurableTimer {
                id,
                due_ms: now_millis().saturating_add(delay.as_millis() as u64),
                target,
                message: pack(msg),
            });
        owner.pending.fetch_add(1, Ordering::Relaxed);
        id
    }

    /// Arms a committed durable timer of `owner` in memory.
    pub(crate) fn arm_durable(self: &Arc<Self>, owner: &Arc<Cell>, timer: DurableTimer) {
        let delay = Duration::from_millis(timer.due_ms.saturating_sub(now_millis()));
        let (router, cell) = (self.clone(), owner.clone());
        let id = timer.id;
        let mut armed = owner
            .durable_timers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let task = self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let live = cell
                .durable_timers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id)
                .is_some();
            if !live {
                return;
            }
            cell.pending.fetch_sub(1, Ordering::Relaxed);
            let Some(storage) = cell.spec.context.storage().cloned() else {
                return;
            };
            let target = router.get(&timer.target).filter(|c| c.options().durable);
            let to = target.as_ref().map(|c| c.id().as_str().to_string());
            let (r, packed, name) = (router.clone(), timer.message, timer.target);
            let fired = storage.fire_timer(
                cell.id().as_str(),
                id,
                to,
                Box::new(move |outcome| match (outcome, target) {
                    (Ok(WriteOutcome::Enqueued(seq)), Some(t)) => {
                        r.counters.delivered.fetch_add(1, Ordering::Relaxed);
                        r.queue_logged(&t, packed, *seq, None);
                    }
                    // The row was there (and is gone): deliver, at most once.
                    (Ok(WriteOutcome::Deleted(1)), None) => {
                        let _ = r.deliver(&name, unpack(&packed), None, None);
                    }
                    // Already fired or cancelled.
                    (Ok(WriteOutcome::Deleted(_)), _) => {}
                    (outcome, _) => {
                        tracing::error!(timer = id, "a durable timer could not fire: {outcome:?}");
                    }
                }),
            );
            let _ = fired.await;
        });
        armed.insert(id, task.abort_handle());
    }

    /// Re-arms the durable timers `owner`'s storage holds (when its task starts).
    pub(crate) fn recover_timers(self: &Arc<Self>, owner: &Arc<Cell>) {
        let Some(storage) = owner.spec.context.storage() else {
            return;
        };
        let timers = match storage.timers(owner.id().as_str()) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(actor = %owner.id(), "durable timers cannot be read: {e}");
                return;
            }
        };
        for t in timers {
            let next = (t.id & !DURABLE_TIMER) + 1;
            owner.next_timer.fetch_max(next, Ordering::Relaxed);
            if owner
                .durable_timers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&t.id)
            {
                continue;
            }
            owner.pending.fetch_add(1, Ordering::Relaxed);
            self.arm_durable(owner, t);
        }
    }

    /// Cancels a durable timer of `owner`: one of its group's (never stored),
    /// or an armed one (its row removed shortly after).
    pub(crate) fn cancel_durable(&self, owner: &Arc<Cell>, id: u64) -> bool {
        {
            let mut group = owner.group_timers.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = group.iter().position(|t| t.id == id) {
                group.remove(i);
                owner.pending.fetch_sub(1, Ordering::Relaxed);
                return true;
            }
        }
        let armed = owner
            .durable_timers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        match armed {
            Some(task) => {
                task.abort();
                owner.pending.fetch_sub(1, Ordering::Relaxed);
                if let Some(storage) = owner.spec.context.storage() {
                    storage.cancel_timer(owner.id().as_str(), id);
                }
                true
            }
            None => false,
        }
    }

    /// Cancels a timer of `owner`.
    pub(crate) fn cancel_timer(&self, owner: &Arc<Cell>, id: u64) -> bool {
        let mut timers = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        match timers.get(&id) {
            Some(t) if Arc::ptr_eq(&t.owner, owner) => {
                if timers.remove(&id).is_some() {
                    owner.pending.fetch_sub(1, Ordering::Relaxed);
                }
                true
            }
            _ => false,
        }
    }
}
