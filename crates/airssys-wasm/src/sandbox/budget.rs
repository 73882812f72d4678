//! The host budget of one actor: the bytes the host holds on its behalf
//! outside its own linear memory.
//!
//! Every message an actor sends sits in host memory until its receiver takes
//! it: in another actor's mailbox, in a pending timer, in a subscription's
//! pattern. Each such hold is a [`Charge`] against the sender's
//! [`HostBudget`], taken before the host keeps anything and released when the
//! host lets go (the receiver pops the message, the timer is cancelled or
//! dies with the instance, the subscription ends). A charge that would pass
//! the budget is refused, so a guest with a 48 MiB memory limit and a 16 MiB
//! host budget makes the host hold at most 16 MiB of its messages, whatever
//! it does. The accounting is two relaxed atomic adds per message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What the host holds for one actor, and its cap.
#[derive(Debug)]
pub(crate) struct HostBudget {
    limit: u64,
    held: AtomicU64,
    peak: AtomicU64,
    refused: AtomicU64,
}

/// A refused charge: what was held and the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget {
    pub(crate) held: u64,
    pub(crate) asked: u64,
    pub(crate) limit: u64,
}

impl HostBudget {
    pub(crate) fn new(limit: u64) -> Arc<HostBudget> {
        Arc::new(HostBudget {
            limit,
            held: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Charges `bytes`, or refuses when the budget would be passed.
    pub(crate) fn charge(self: &Arc<Self>, bytes: usize) -> Result<Charge, OverBudget> {
        let bytes = bytes as u64;
        let before = self.held.fetch_add(bytes, Ordering::Relaxed);
        if before + bytes > self.limit {
            self.held.fetch_sub(bytes, Ordering::Relaxed);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(OverBudget {
                held: before,
                asked: bytes,
                limit: self.limit,
            });
        }
        self.peak.fetch_max(before + bytes, Ordering::Relaxed);
        Ok(Charge {
            budget: self.clone(),
            bytes,
        })
    }

    /// Bytes held now.
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// The most bytes held at once.
    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Charges refused so far.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The cap.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }
}

/// Bytes charged to an actor's budget; released when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<HostBudget>,
    bytes: u64,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_refused_past_the_cap_and_released_on_drop() {
        let b = HostBudget::new(100);
        let a = b.charge(60).unwrap();
        let refused = b.charge(41).unwrap_err();
        assert_eq!(
            refused,
            OverBudget {
                held: 60,
                asked: 41,
                limit: 100
            }
        );
        assert_eq!(b.held(), 60, "a refused charge holds nothing");
        let c = b.charge(40).unwrap();
        assert_eq!(b.held(), 100);
        drop(a);
        drop(c);
        assert_eq!((b.held(), b.peak(), b.refused()), (0, 100, 1));
    }
}
