//! Topics: who subscribes to which topic patterns. A subscription a guest
//! makes lives as long as its instance and is charged to its host budget; one
//! the host declares (`ActorOptions::subscriptions`) lives with the actor.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use super::cell::Cell;
use crate::host::messaging::Undeliverable;
use crate::sandbox::budget::Charge;
use crate::security::pattern::NamePatterns;

/// What the host holds for a subscription beyond its pattern.
const SUBSCRIPTION_BYTES: usize = 128;

struct Subscription {
    pattern: String,
    matcher: NamePatterns,
    cell: Arc<Cell>,
    /// The instance that subscribed; `None` for a subscription the host declared.
    incarnation: Option<u64>,
    /// A guest's subscription is charged to its host budget.
    _charge: Option<Charge>,
}

/// The subscriptions of one system.
#[derive(Default)]
pub(crate) struct Topics {
    subs: RwLock<Vec<Subscription>>,
}

impl Topics {
    /// Adds a subscription; a guest's is charged to its host budget and
    /// counted against its subscription cap.
    pub(crate) fn add(
        &self,
        cell: &Arc<Cell>,
        pattern: &str,
        incarnation: Option<u64>,
    ) -> Result<(), Undeliverable> {
        let matcher = NamePatterns::new(&[pattern]).map_err(Undeliverable::Refused)?;
        let mut topics = self.subs.write().unwrap_or_else(|p| p.into_inner());
        let dup = topics.iter().any(|s| {
            Arc::ptr_eq(&s.cell, cell) && s.pattern == pattern && s.incarnation == incarnation
        });
        if !dup {
            let charge = match incarnation {
                None => None,
                Some(_) => {
                    let cap = cell.spec.context.limits().host.subscriptions;
                    if cell.guest_subscriptions.load(Ordering::Relaxed) >= cap {
                        return Err(Undeliverable::TooManySubscriptions(cap));
                    }
                    let charge = cell
                        .budget
                        .charge(pattern.len() + SUBSCRIPTION_BYTES)
                        .map_err(|o| Undeliverable::OverBudget {
                            held: o.held,
                            asked: o.asked,
                            limit: o.limit,
                        })?;
                    Some(charge)
                }
            };
            topics.push(Subscription {
                pattern: pattern.to_string(),
                matcher,
                cell: cell.clone(),
                incarnation,
                _charge: charge,
            });
            if incarnation.is_some() {
                cell.guest_subscriptions.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Ends a guest's subscription; false when there was none.
    pub(crate) fn remove(&self, cell: &Arc<Cell>, pattern: &str, incarnation: u64) -> bool {
        let mut topics = self.subs.write().unwrap_or_else(|p| p.into_inner());
        let before = topics.len();
        topics.retain(|s| {
            !(Arc::ptr_eq(&s.cell, cell)
                && s.pattern == pattern
                && s.incarnation == Some(incarnation))
        });
        let removed = before - topics.len();
        cell.guest_subscriptions
            .fetch_sub(removed as u32, Ordering::Relaxed);
        removed > 0
    }

    /// The actors a message on `topic` goes to, once each. A subscription a
    /// guest made delivers only topics its `messaging.subscribe` grant covers.
    pub(crate) fn subscribers(&self, topic: &str) -> Vec<Arc<Cell>> {
        let topics = self.subs.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Arc<Cell>> = Vec::new();
        for s in topics.iter() {
            if s.matcher.matching(topic).is_none() || out.iter().any(|c| Arc::ptr_eq(c, &s.cell)) {
                continue;
            }
            if s.incarnation.is_some()
                && !s
                    .cell
                    .spec
                    .context
                    .capabilities()
                    .check_subscribe(topic)
                    .allowed
            {
                continue;
            }
            out.push(s.cell.clone());
        }
        out
    }

    /// Drops the subscriptions an instance made (it is gone).
    pub(crate) fn release(&self, cell: &Arc<Cell>, incarnation: u64) {
        if cell.guest_subscriptions.load(Ordering::Relaxed) > 0 {
            let mut subs = self.subs.write().unwrap_or_else(|p| p.into_inner());
            subs.retain(|s| !(Arc::ptr_eq(&s.cell, cell) && s.incarnation == Some(incarnation)));
            cell.guest_subscriptions.store(0, Ordering::Relaxed);
        }
    }
}
