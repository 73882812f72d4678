//! What observers see: an actor's [`ActorState`] and [`ActorStatus`], the
//! [`SystemEvent`] stream, and [`DeadLetter`]s with their reason.

use std::fmt;

use serde::Serialize;

use super::spec::RestartPolicy;
use crate::bindings::Message;
use crate::id::ActorId;
use crate::sandbox::limits::ResourceUsage;

/// Where an actor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum ActorState {
    /// Instantiating from the `InstancePre` and running `initialize(config)`.
    Starting = 0,
    /// Handling messages.
    Running = 1,
    /// Passivated: no instance; the next message activates it again.
    Suspended = 2,
    /// Running `shutdown()`.
    Stopping = 3,
    /// Stopped on request (or by its supervisor).
    Stopped = 4,
    /// Crashed; waiting for its supervisor to restart it (messages queue meanwhile).
    Failed = 5,
}

impl ActorState {
    pub(crate) fn from_u8(v: u8) -> ActorState {
        match v {
            0 => ActorState::Starting,
            1 => ActorState::Running,
            2 => ActorState::Suspended,
            3 => ActorState::Stopping,
            4 => ActorState::Stopped,
            _ => ActorState::Failed,
        }
    }
}

impl fmt::Display for ActorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ActorState::Starting => "starting",
            ActorState::Running => "running",
            ActorState::Suspended => "suspended",
            ActorState::Stopping => "stopping",
            ActorState::Stopped => "stopped",
            ActorState::Failed => "failed",
        };
        f.write_str(s)
    }
}

/// Who an actor is and who looks after it.
#[derive(Debug, Clone, Serialize)]
pub struct ActorMetadata {
    /// Its id.
    pub id: ActorId,
    /// The component it runs.
    pub component: String,
    /// Its supervisor's name (`-` for a virtual actor, which has none).
    pub supervisor: String,
    /// Its restart policy.
    pub restart: RestartPolicy,
    /// The version of its component it runs: 1 at start, one more per
    /// upgrade, back on rollback.
    pub version: u32,
    /// Whether its mailbox is durable.
    pub durable: bool,
}

/// A snapshot of one actor, for observers (the admin API, `ps`).
#[derive(Debug, Clone, Serialize)]
pub struct ActorStatus {
    /// Who it is.
    #[serde(flatten)]
    pub metadata: ActorMetadata,
    /// Where it is in its life.
    pub state: ActorState,
    /// Times it was restarted after a crash or by its supervisor.
    pub restarts: u32,
    /// Upgrades it took.
    pub upgrades: u32,
    /// Rollbacks to a previous version.
    pub rollbacks: u32,
    /// Messages waiting in its mailbox.
    pub mailbox: usize,
    /// Messages and callbacks it handled.
    pub handled: u64,
    /// What its last call consumed.
    pub usage: Option<ResourceUsage>,
    /// Log lines of its guest dropped by the log budget.
    pub log_dropped: u64,
    /// Its pending requests plus live timers.
    pub pending: u32,
    /// Health checks that failed (`unhealthy`, an error, or a timeout).
    pub health_failures: u64,
    /// Fuel its calls consumed (0 when fuel is not metered).
    pub fuel_consumed: u64,
    /// What its durable storage namespace holds (zero without storage).
    pub storage: crate::storage::Usage,
    /// What the host holds for it outside its memory (its host budget).
    pub host: HostUsage,
}

/// What the host holds on an actor's behalf, against its host budget
/// ([`HostLimits`](crate::HostLimits)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HostUsage {
    /// Bytes of its messages held now (queued in mailboxes, in timers, subscriptions).
    pub held_bytes: u64,
    /// The most bytes held at once.
    pub peak_bytes: u64,
    /// The cap.
    pub limit_bytes: u64,
    /// Sends, timers and subscriptions refused because the budget was full.
    pub refused: u64,
    /// Subscriptions it holds.
    pub subscriptions: u32,
}

/// Something that happened in an [`ActorSystem`](crate::ActorSystem), for embedders that watch it
/// ([`ActorSystem::events`](crate::ActorSystem::events)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SystemEvent {
    /// An actor's first instance is running.
    Started {
        /// The actor.
        id: ActorId,
    },
    /// An actor crashed: a trap, an exhausted limit, a failed `initialize` or health check.
    Crashed {
        /// The actor.
        id: ActorId,
        /// Why, naming the limit or rule.
        reason: String,
    },
    /// An actor runs a fresh instance after a restart.
    Restarted {
        /// The actor.
        id: ActorId,
        /// Its restarts so far.
        restarts: u32,
    },
    /// An idle actor dropped its instance.
    Passivated {
        /// The actor.
        id: ActorId,
    },
    /// A virtual or passivated actor got an instance for a message.
    Activated {
        /// The actor.
        id: ActorId,
    },
    /// An actor stopped.
    Stopped {
        /// The actor.
        id: ActorId,
    },
    /// A supervisor passed its restart intensity, stopped its children and failed.
    Escalated {
        /// The supervisor.
        supervisor: String,
        /// Why.
        reason: String,
    },
    /// The root supervisor failed: the system stopped.
    SystemFailed {
        /// Why.
        reason: String,
    },
    /// An actor switched to a new version of its component between two
    /// messages (its mailbox kept), on probation.
    Upgraded {
        /// The actor.
        id: ActorId,
        /// The version it runs now (counting from 1 at start).
        version: u32,
        /// The component's own version (`metadata().version`).
        component_version: String,
    },
    /// An upgrade was refused for an actor (the new version's `initialize`
    /// failed, or its version is not higher); it keeps its version.
    UpgradeRefused {
        /// The actor.
        id: ActorId,
        /// Why.
        reason: String,
    },
    /// An actor went back to its previous version: by hand, or because the
    /// new one crashed (a trap, a limit, a failed health check) on probation.
    RolledBack {
        /// The actor.
        id: ActorId,
        /// The version it runs now.
        version: u32,
        /// Why.
        reason: String,
    },
}

/// Why a message could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// No actor by that id (and no component to activate it from).
    NoSuchActor,
    /// The target's mailbox was full.
    MailboxFull {
        /// Its capacity.
        capacity: usize,
    },
    /// The target crashed while handling it.
    Crashed {
        /// The crash, naming the limit or rule.
        reason: String,
    },
    /// The target stopped before handling it.
    Stopped,
    /// A request got no reply in time.
    RequestTimeout {
        /// The timeout.
        timeout_ms: u64,
    },
    /// A reply came after its request timed out or was cancelled, or its
    /// requester was restarted.
    LateReply,
    /// The target's `messaging.accept` list does not admit the sender.
    Refused {
        /// The rule.
        rule: String,
    },
    /// The system is shutting down and accepts no new messages.
    ShuttingDown,
    /// The sender's host budget could not hold it.
    OverBudget {
        /// The budget.
        limit_bytes: u64,
    },
    /// A reply larger than its requester accepts.
    TooLarge {
        /// The cap.
        limit_bytes: u64,
    },
    /// A durable actor's mailbox log could not take it (the send was refused).
    NotLogged {
        /// What the storage said.
        reason: String,
    },
    /// The target's host could not be reached: it is down (no heartbeat
    /// within the cluster's `dead-after`), or the link to it failed.
    Unavailable {
        /// Which host, and why.
        reason: String,
    },
    /// A durable actor trapped or exhausted a limit on each of its
    /// deliveries: a poison message, taken out of the log.
    Poison {
        /// Deliveries made.
        deliveries: u32,
        /// The last failure.
        reason: String,
    },
    /// A virtual actor could not be activated for it (its `initialize`
    /// failed this many times in a row): a poison message.
    ActivationFailed {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadLetterReason::NoSuchActor => f.write_str("no such actor"),
            DeadLetterReason::MailboxFull { capacity } => {
                write!(f, "mailbox full (capacity {capacity})")
            }
            DeadLetterReason::Crashed { reason } => write!(f, "target crashed: {reason}"),
            DeadLetterReason::Stopped => f.write_str("target stopped"),
            DeadLetterReason::RequestTimeout { timeout_ms } => {
                write!(f, "no reply within {timeout_ms} ms")
            }
            DeadLetterReason::LateReply => f.write_str("reply after timeout or cancellation"),
            DeadLetterReason::Refused { rule } => write!(f, "refused: {rule}"),
            DeadLetterReason::ShuttingDown => f.write_str("system shutting down"),
            DeadLetterReason::OverBudget { limit_bytes } => {
                write!(f, "the sender's host budget ({limit_bytes} bytes) is full")
            }
            DeadLetterReason::TooLarge { limit_bytes } => {
                write!(f, "larger than the receiver's cap of {limit_bytes} bytes")
            }
            DeadLetterReason::NotLogged { reason } => {
                write!(f, "not written to the durable mailbox: {reason}")
            }
            DeadLetterReason::Unavailable { reason } => write!(f, "unavailable: {reason}"),
            DeadLetterReason::Poison { deliveries, reason } => {
                write!(
                    f,
                    "poison message: failed on each of {deliveries} deliveries; last: {reason}"
                )
            }
            DeadLetterReason::ActivationFailed { attempts, reason } => {
                write!(f, "activation failed {attempts} times in a row: {reason}")
            }
        }
    }
}

/// A message that could not be delivered, kept for observers: the facts and
/// a bounded prefix of the message (payload up to 256 bytes, each string up to
/// 256 bytes, 8 metadata entries), so the kept list stays small whatever was sent.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Its number, counting from 1 since the system started (for paging).
    pub seq: u64,
    /// The intended receiver.
    pub to: String,
    /// The sender.
    pub from: String,
    /// Why it was not delivered.
    pub reason: DeadLetterReason,
    /// The message, cut to the prefix above.
    #[serde(skip)]
    pub message: Message,
    /// Its payload size in bytes (before the cut).
    pub payload_bytes: usize,
    /// Its whole size in bytes ([`Message::wire_bytes`]), before the cut.
    pub message_bytes: usize,
    /// When it was declared dead, ms since the Unix epoch.
    pub timestamp_ms: u64,
}
