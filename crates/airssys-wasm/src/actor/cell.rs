//! A [`Cell`]: what the host keeps of one actor across its instances — its
//! spec, mailbox, counters, host budget and control channel — shared by its
//! task, the router and observers; and the [`Control`] protocol between a
//! supervisor and its children.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::events::{ActorMetadata, ActorState, ActorStatus};
use super::mailbox::Mailbox;
use super::spec::{ActorOptions, ActorSpec, ChildSpec};
use crate::bindings::Message;
use crate::host::messaging::Undeliverable;
use crate::id::ActorId;
use crate::sandbox::budget::{Charge, HostBudget};
use crate::sandbox::limits::ResourceUsage;

/// A durable group's messages to durable actors: each target, the packed
/// message, and its charge to the sender's host budget (held until the group
/// commits, so a guest cannot make the host hold more than its budget).
pub(crate) type Outbox = Vec<(Arc<Cell>, Vec<u8>, Option<Charge>)>;

/// One actor's slot: its mailbox, what it runs, and what observers see.
pub(crate) struct Cell {
    pub(crate) spec: ActorSpec,
    pub(crate) supervisor: String,
    pub(crate) mailbox: Mailbox,
    pub(crate) is_virtual: bool,
    state: AtomicU8,
    /// Bumped for each new instance; callbacks for an older one are discarded.
    pub(crate) incarnation: AtomicU64,
    pub(crate) restarts: AtomicU32,
    pub(crate) upgrades: AtomicU32,
    pub(crate) rollbacks: AtomicU32,
    pub(crate) handled: AtomicU64,
    /// Pending requests plus live timers.
    pub(crate) pending: AtomicU32,
    pub(crate) guest_subscriptions: AtomicU32,
    pub(crate) usage: Mutex<Option<ResourceUsage>>,
    pub(crate) log_dropped: AtomicU64,
    pub(crate) health_failures: AtomicU64,
    pub(crate) fuel_consumed: AtomicU64,
    /// Used since the eviction scan last looked (second chance).
    pub(crate) touched: AtomicBool,
    /// Asked to passivate (to make room for another virtual actor).
    pub(crate) evict: AtomicBool,
    /// With `evict`: this host no longer holds the actor's durable log (a
    /// cluster's log moved on): the activation ends whatever it has queued
    /// (all of it is in the log) and leaves the registry, so its next
    /// message goes through placement and is rebuilt from the log.
    pub(crate) abandon: AtomicBool,
    /// In the eviction queue (at most once).
    pub(crate) in_lru: AtomicBool,
    /// The control channel of a virtual actor's task, while it has one.
    pub(crate) ctrl: Mutex<Option<mpsc::UnboundedSender<Control>>>,
    /// What the host holds for this actor's messages, and its cap.
    pub(crate) budget: Arc<HostBudget>,
    /// Activations of a virtual actor that failed in a row, and when the last did.
    pub(crate) activation_failures: Mutex<(u32, Option<tokio::time::Instant>)>,
    /// While this durable actor handles a message: what it sent to durable
    /// actors (target and packed message), committed with the call.
    pub(crate) outbox: Mutex<Option<Outbox>>,
    /// Durable timers armed in this durable group, committed with it.
    pub(crate) group_timers: Mutex<Vec<crate::storage::commit::DurableTimer>>,
    /// Durable timers armed in memory (committed), by id.
    pub(crate) durable_timers: Mutex<std::collections::HashMap<u64, tokio::task::AbortHandle>>,
    /// The next durable timer id (below [`DURABLE_TIMER`]).
    pub(crate) next_timer: AtomicU64,
    /// The highest sequence number recovered from the durable log at start
    /// (0: none): a delivery of one at or below it is counted in storage first.
    pub(crate) recovered_upto: AtomicU64,
    /// The component it runs now, and the versions before it.
    pub(crate) versions: Mutex<Versions>,
    /// A declared actor's control channel (for upgrades), weak: its
    /// supervisor owns the channel, and the task ends when the supervisor
    /// drops it (a strong sender here would keep the task, and through it
    /// this cell, alive for ever).
    pub(crate) direct: Mutex<Option<mpsc::WeakUnboundedSender<Control>>>,
}

/// The bit that marks a durable timer's id (the others come from the router).
pub(crate) const DURABLE_TIMER: u64 = 1 << 62;

/// Previous versions an actor keeps for rollback.
pub(crate) const VERSIONS_KEPT: usize = 3;

/// What an actor runs: the current component (version 1 is the one it
/// started with), the previous ones (newest last, at most [`VERSIONS_KEPT`]),
/// and until when the current one is on probation.
pub(crate) struct Versions {
    pub(crate) current: crate::Component,
    pub(crate) version: u32,
    pub(crate) previous: Vec<(crate::Component, u32)>,
    pub(crate) probation_until: Option<tokio::time::Instant>,
}

impl Cell {
    /// Queues what a durable actor's mailbox log holds (what an earlier
    /// system on the same data directory acknowledged and never handled),
    /// oldest first, before any new message. Returns how many.
    pub(crate) fn recover_log(&self) -> crate::error::Result<usize> {
        let id = self.id().as_str();
        let Some(storage) = self.spec.context.storage() else {
            return Err(crate::error::Error::Config(format!(
                "actor {id} is durable, so it needs storage: give the system a data directory \
                 (ExecutionContext::with_storage, `--data DIR` or `[system] data`)"
            )));
        };
        let entries = storage.mailbox(id).map_err(|e| {
            crate::error::Error::Config(format!(
                "actor {id}: its durable mailbox cannot be read: {e}"
            ))
        })?;
        let n = entries.len();
        for (seq, packed) in entries {
            self.recovered_upto.fetch_max(seq, Ordering::Relaxed);
            self.mailbox.push_logged(packed, seq, None, false);
        }
        if n > 0 {
            tracing::info!(
                actor = id,
                messages = n,
                "durable mailbox: delivering again what was not handled"
            );
        }
        Ok(n)
    }

    pub(crate) fn new(mut spec: ActorSpec, supervisor: &str, is_virtual: bool) -> Cell {
        // The instance runs, logs and audits as its actor id.
        spec.context = spec.context.renamed(spec.id.as_str());
        let capacity = spec.options.mailbox_capacity;
        let budget = HostBudget::new(spec.context.limits().host.held_bytes);
        Cell {
            budget,
            activation_failures: Mutex::new((0, None)),
            outbox: Mutex::new(None),
            group_timers: Mutex::new(Vec::new()),
            durable_timers: Mutex::new(std::collections::HashMap::new()),
            next_timer: AtomicU64::new(1),
            recovered_upto: AtomicU64::new(0),
            versions: Mutex::new(Versions {
                current: spec.component.clone(),
                version: 1,
                previous: Vec::new(),
                probation_until: None,
            }),
            direct: Mutex::new(None),
            spec,
            supervisor: supervisor.to_string(),
            mailbox: Mailbox::new(capacity, !is_virtual),
            is_virtual,
            state: AtomicU8::new(if is_virtual {
                ActorState::Suspended as u8
            } else {
                ActorState::Starting as u8
            }),
            incarnation: AtomicU64::new(0),
            restarts: AtomicU32::new(0),
            upgrades: AtomicU32::new(0),
            rollbacks: AtomicU32::new(0),
            handled: AtomicU64::new(0),
            pending: AtomicU32::new(0),
            guest_subscriptions: AtomicU32::new(0),
            usage: Mutex::new(None),
            log_dropped: AtomicU64::new(0),
            health_failures: AtomicU64::new(0),
            fuel_consumed: AtomicU64::new(0),
            touched: AtomicBool::new(false),
            evict: AtomicBool::new(false),
            abandon: AtomicBool::new(false),
            in_lru: AtomicBool::new(false),
            ctrl: Mutex::new(None),
        }
    }

    pub(crate) fn id(&self) -> &ActorId {
        &self.spec.id
    }

    /// Sends `c` to this declared actor's task; false when it has none.
    pub(crate) fn control(&self, c: Control) -> bool {
        self.direct
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|weak| weak.upgrade())
            .is_some_and(|tx| tx.send(c).is_ok())
    }

    /// The component it runs now.
    pub(crate) fn component(&self) -> crate::Component {
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .current
            .clone()
    }

    /// The version it runs now (1: the one it started with).
    pub(crate) fn version(&self) -> u32 {
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .version
    }

    pub(crate) fn options(&self) -> &ActorOptions {
        &self.spec.options
    }

    pub(crate) fn state(&self) -> ActorState {
        ActorState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn set_state(&self, s: ActorState) {
        self.state.store(s as u8, Ordering::Release);
    }

    pub(crate) fn status(&self) -> ActorStatus {
        ActorStatus {
            metadata: ActorMetadata {
                id: self.spec.id.clone(),
                component: self.spec.component.name().to_string(),
                supervisor: self.supervisor.clone(),
                restart: self.spec.options.restart,
                version: self.version(),
                durable: self.spec.options.durable,
            },
            state: self.state(),
            restarts: self.restarts.load(Ordering::Relaxed),
            upgrades: self.upgrades.load(Ordering::Relaxed),
            rollbacks: self.rollbacks.load(Ordering::Relaxed),
            mailbox: self.mailbox.len(),
            handled: self.handled.load(Ordering::Relaxed),
            usage: *self.usage.lock().unwrap_or_else(|p| p.into_inner()),
            log_dropped: self.log_dropped.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            health_failures: self.health_failures.load(Ordering::Relaxed),
            storage: self
                .spec
                .context
                .storage()
                .and_then(|s| {
                    s.usage(&crate::storage::Namespace::actor(self.spec.id.as_str()))
                        .ok()
                })
                .unwrap_or_default(),
            fuel_consumed: self.fuel_consumed.load(Ordering::Relaxed),
            host: super::HostUsage {
                held_bytes: self.budget.held(),
                peak_bytes: self.budget.peak(),
                limit_bytes: self.budget.limit(),
                refused: self.budget.refused(),
                subscriptions: self.guest_subscriptions.load(Ordering::Relaxed),
            },
        }
    }

    /// Charges `msg` (sent to `target`) to this actor's host budget.
    pub(crate) fn charge(&self, target: &str, msg: &Message) -> Result<Charge, Undeliverable> {
        self.budget
            .charge(msg.wire_bytes() + target.len())
            .map_err(|o| Undeliverable::OverBudget {
                held: o.held,
                asked: o.asked,
                limit: o.limit,
            })
    }
}

/// What a supervisor tells a child (an actor or a supervisor).
pub(crate) enum Control {
    /// Start a fresh instance after `delay` (a running one is shut down first).
    Restart { delay: Duration, generation: u64 },
    /// Stop: with `drain`, handle what is queued first (up to the shutdown
    /// timeout); then `shutdown()`. The child stays parked until restarted.
    Stop {
        drain: bool,
        ack: oneshot::Sender<()>,
    },
    /// Switch to `component` between two messages: the new instance is
    /// made and initialized first; on success it takes the next message and
    /// stays on probation for `probation`; on failure the actor keeps its
    /// version. The answer is the new version number, or why not.
    Upgrade {
        component: crate::Component,
        probation: Duration,
        ack: oneshot::Sender<Result<u32, String>>,
    },
    /// Go back to the previous version, the same way.
    Rollback {
        ack: oneshot::Sender<Result<u32, String>>,
    },
    /// Add a child (supervisors only).
    Add {
        spec: Box<ChildSpec>,
        ack: oneshot::Sender<crate::Result<()>>,
    },
}

/// A child's report to its supervisor: its incarnation under `generation` ended.
pub(crate) struct ChildExit {
    pub(crate) index: usize,
    pub(crate) generation: u64,
    /// `None`: a normal stop; otherwise the crash.
    pub(crate) crash: Option<String>,
}

/// Where a child reports.
#[derive(Clone)]
pub(crate) struct Parent {
    pub(crate) exits: mpsc::UnboundedSender<ChildExit>,
    pub(crate) index: usize,
}
