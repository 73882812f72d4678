//! One task for every request deadline and `send-after` timer of a system,
//! instead of a task (and a timer entry, and an abort) per request.
//!
//! Arming is a push onto a heap under a lock; the task is woken only when
//! the new deadline is earlier than the one it sleeps until, so a steady
//! stream of requests with the same timeout wakes nobody (deadlines come in
//! order, each later than the armed one). A deadline whose request was
//! answered, or whose timer was cancelled, is not looked for: it stays in
//! the heap until due and is then skipped (its entry in `pending` or
//! `timers` is gone). So that this cannot grow with the requests answered,
//! the heap is compacted to what is still pending when it holds more than
//! twice that (and more than [`COMPACT_ABOVE`]): memory follows what is
//! pending, which each actor's budget bounds.
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
        drop(h);
        if earlier {
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
        if h.due.len() <= COMPACT_ABOVE || h.due.len() <= 2 * owner.pending() {
            return;
        }
        h.due.retain(|Reverse((_, due))| owner.is_pending(due));
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
    /// How many wait.
    fn pending(&self) -> usize;
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
        fn pending(&self) -> usize {
            self.pending.lock().unwrap().len()
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
        // 20,000 requests with a long timeout, all answered at once.
        for c in 0..20_000 {
            d.arm(
                Duration::from_secs(60),
                Due::Request(c),
                &rt,
                Arc::downgrade(&log),
            );
        }
        log.pending.lock().unwrap().insert(Due::Request(99_999));
        // An earlier deadline wakes the task, which compacts the heap.
        d.arm(
            Duration::from_millis(1),
            Due::Request(99_999),
            &rt,
            Arc::downgrade(&log),
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(*log.fired.lock().unwrap(), [Due::Request(99_999)]);
        assert!(d.len() <= COMPACT_ABOVE, "{} entries kept", d.len());
    }
}
