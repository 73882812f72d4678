//! Residency: which virtual actors hold an instance, so that when the
//! system's cap on resident instances is reached the least recently used one
//! is asked to passivate (its state is durable; its next message reactivates it).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::cell::Cell;
use super::events::ActorState;

/// The resident virtual actors of one system, in LRU order (second chance).
#[derive(Default)]
pub(crate) struct Residency {
    lru: Mutex<VecDeque<Arc<Cell>>>,
}

impl Residency {
    /// Notes that a virtual actor holds an instance, for eviction.
    pub(crate) fn note(&self, cell: &Arc<Cell>) {
        if cell.in_lru.swap(true, Ordering::AcqRel) {
            return;
        }
        self.lru
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(cell.clone());
    }

    /// Asks the least recently used resident virtual actor to passivate
    /// (second chance: one used since the last scan goes to the back once).
    pub(crate) fn make_room(&self) {
        let mut lru = self.lru.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..lru.len().saturating_mul(2) {
            let Some(cell) = lru.pop_front() else { break };
            if cell.state() != ActorState::Running {
                cell.in_lru.store(false, Ordering::Release);
                continue;
            }
            if cell.touched.swap(false, Ordering::Relaxed) {
                lru.push_back(cell);
                continue;
            }
            cell.in_lru.store(false, Ordering::Release);
            cell.evict.store(true, Ordering::Release);
            cell.mailbox.poke();
            return;
        }
    }
}
