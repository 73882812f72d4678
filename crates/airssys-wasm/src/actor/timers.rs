//! Timers (`send-after`): one task per armed timer, charged to its owner's
//! host budget until it fires or is cancelled; dropped with the instance.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::cell::Cell;
use super::router::{Router, Timer};
use crate::bindings::Message;
use crate::sandbox::budget::Charge;

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
}
