//! One task for every request deadline and `send-after` timer of a system,
//! instead of a task (and a timer entry, and an abort) per request.
//!
//! Arming is a push onto a heap under a lock; the task is woken only when
//! the new deadline is earlier than the one it sleeps until, so a steady
//! stream of requests with the same timeout wakes nobody (deadlines come in
//! order, each later than the armed one). A deadline whose request was
//! answered, or whose timer was cancelled, is not looked for: it stays in
//! the heap until due and is then skipped (its entry in `pending` or
//! `timers` is gone). So that this cannot grow with the requests answered
//! (a long timeout would keep the task asleep meanwhile), a push that takes
//! the heap past twice its size after the last compaction (and past
//! [`COMPACT_ABOVE`]) wakes the task to compact it to what is still pending:
//! memory follows what is pending, which each actor's budget bounds, and
//! each push pays O(1) of it amortized.
//!
//! The module knows nothing of the router: what is due goes to an
//! [`OnDue`] (the router implements it).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// What is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Due {
    /// Request `corr` times out.
    Request(u64),
    /// `send-after` timer `id` fires.
    Timer(u64),
}

/// Below this many entries the heap is never compacted.
const COMPACT_ABOVE: usize = 4096;

/// The longest the task sleeps before it looks whether the system is gone.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The deadlines of one router.
#[derive(Default)]
pub(crate) struct Deadlines {
    inner: Mutex<Heap>,
    notify: Notify,
    started: AtomicBool,
}

#[derive(Default)]
struct Heap {
    due: BinaryHeap<Reverse<(Instant, Due)>>,
    /// What the task sleeps until (`None`: nothing, or not asleep yet).
    armed: Option<Instant>,
    /// Past this many entries the task compacts (0: [`COMPACT_ABOVE`]).
    compact_at: usize,
}

impl Deadlines {
    fn lock(&self) -> std::sync::MutexGuard<'_, Heap> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries in the heap (answered ones included until due or compacted).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().due.len()
    }

    fn push(&self, at: Instant, due: Due) {
        let mut h = self.lock();
        h.due.push(Reverse((at, due)));
        let earlier = h.armed.is_none_or(|a| at < a);
        if earlier {
            h.armed = Some(at);
        }
        let crowded = h.due.len() > h.compact_at.max(COMPACT_ABOVE);
        drop(h);
        if earlier || crowded {
            // A permit is kept if the task is not waiting yet: never lost.
            self.notify.notify_one();
        }
    }

    /// Takes what is due at `now`; says when the next is.
    fn take_due(&self, now: Instant, out: &mut Vec<Due>) -> Option<Instant> {
        let mut h = self.lock();
        while let Some(Reverse((at, due))) = h.due.peek().copied() {
            if at > now {
                break;
            }
            h.due.pop();
            out.push(due);
        }
        h.armed = h.due.peek().map(|Reverse((at, _))| *at);
        h.armed
    }

    fn compact(&self, owner: &impl OnDue) {
        let mut h = self.lock();
        if h.due.len() <= h.compact_at.max(COMPACT_ABOVE) {
            return;
        }
        h.due.retain(|Reverse((_, due))| owner.is_pending(due));
        h.compact_at = 2 * h.due.len();
    }

    /// Arms `due` to happen `after` from now; the first deadline starts the
    /// task on `runtime`, which runs while `owner` lives.
    pub(crate) fn arm<O: OnDue>(
        self: &Arc<Self>,
        after: Duration,
        due: Due,
        runtime: &tokio::runtime::Handle,
        owner: Weak<O>,
    ) {
        let at = Instant::now()
            .checked_add(after)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365 * 30));
        self.push(at, due);
        if !self.started.swap(true, Ordering::AcqRel) {
            runtime.spawn(run(self.clone(), owner));
        }
    }
}

/// What the deadlines are for (the router).
pub(crate) trait OnDue: Send + Sync + 'static {
    /// `due` is due (it may have been answered or cancelled meanwhile).
    fn on_due(this: &Arc<Self>, due: Due);
    /// Whether `due` still waits (compaction keeps it).
    fn is_pending(&self, due: &Due) -> bool;
}

/// The task: sleeps until the earliest deadline (or an earlier one is
/// armed), does what is due, and ends once the router is gone.
async fn run<O: OnDue>(deadlines: Arc<Deadlines>, owner: Weak<O>) {
    let mut fired = Vec::new();
    loop {
        let next = {
            let Some(o) = owner.upgrade() else { return };
            let next = deadlines.take_due(Instant::now(), &mut fired);
            for due in fired.drain(..) {
                O::on_due(&o, due);
            }
            deadlines.compact(&*o);
            next
        };
        let now = Instant::now();
        let until = next.map_or(now + LOOK_EVERY, |n| n.min(now + LOOK_EVERY));
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = deadlines.notify.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Log {
        fired: Mutex<Vec<Due>>,
        pending: Mutex<std::collections::HashSet<Due>>,
    }

    impl OnDue for Log {
        fn on_due(this: &Arc<Self>, due: Due) {
            if this.pending.lock().unwrap().remove(&due) {
                this.fired.lock().unwrap().push(due);
            }
        }
        fn is_pending(&self, due: &Due) -> bool {
            self.pending.lock().unwrap().contains(due)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_fire_in_time_order_whatever_order_they_were_armed_in() {
        let log = Arc::new(Log::default());
        let d = Arc::new(Deadlines::default());
        let rt = tokio::runtime::Handle::current();
        for (ms, id) in [(300, 3), (100, 1), (200, 2), (50, 0)] {
            log.pending.lock().unwrap().insert(Due::Timer(id));
            d.arm(
                Duration::from_millis(ms),
                Due::Timer(id),
                &rt,
                Arc::downgrade(&log),
            );
        }
        // Answered before it was due: skipped.
        log.pending.lock().unwrap().remove(&Due::Timer(2));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(*log.fired.lock().unwrap(), [Due::Timer(0), Due::Timer(1)]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            *log.fired.lock().unwrap(),
            [Due::Timer(0), Due::Timer(1), Due::Timer(3)]
        );
        assert_eq!(d.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn answered_deadlines_do_not_pile_up() {
        let log = Arc::new(Log::default());
        let d = Arc::new(Deadlines::default());
        let rt = tokio::runtime::Handle::current();
        let owner = || Arc::downgrade(&log);
        // 100 pending for an hour, then 20,000 requests with a longer
        // timeout, each answered at once: no deadline wakes the task, yet
        // the heap is compacted as it grows.
        for c in 0..100 {
            log.pending.lock().unwrap().insert(Due::Request(c));
            d.arm(Duration::from_secs(3600), Due::Request(c), &rt, owner());
        }
        for c in 100..20_100 {
            d.arm(Duration::from_secs(7200), Due::Request(c), &rt, owner());
            if c % 1000 == 0 {
                tokio::task::yield_now().await;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(d.len() <= 2 * COMPACT_ABOVE, "{} entries kept", d.len());
        assert!(log.fired.lock().unwrap().is_empty());
        // What was pending stayed armed.
        tokio::time::sleep(Duration::from_secs(3601)).await;
        assert_eq!(log.fired.lock().unwrap().len(), 100);
    }
}
