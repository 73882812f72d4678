//! Actors: each running component instance owns its `Store` and a bounded
//! mailbox, handles one message at a time, and is restarted by its supervisor
//! when it crashes.
//!
//! The path of a message, one file per step:
//!
//! - `mailbox` — the bounded queue in front of each actor (a user lane with a
//!   capacity, and a lane for replies and control bounded by the pending caps);
//! - `router` — ids to mailboxes: send, request → reply with correlation ids,
//!   timers, topics, dead letters, activation of virtual actors;
//! - `cell` — the actor loop: instantiate from the `InstancePre`, initialize,
//!   handle messages, health checks, passivation, report crashes;
//! - `supervisor` — strategies, restart intensity, backoff, escalation;
//! - `system` — the composition root an embedder uses.

pub(crate) mod budget;
pub(crate) mod cell;
pub(crate) mod mailbox;
pub(crate) mod router;
pub(crate) mod supervisor;
pub(crate) mod system;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::bindings::Message;
use crate::error::{Error, Result};
use crate::runtime::component::Component;
use crate::runtime::execution::ExecutionContext;
use crate::runtime::limits::ResourceUsage;

pub use supervisor::{Backoff, ChildSpec, Intensity, Strategy, SupervisorSpec};
pub use system::{ActorSystem, SystemBuilder, SystemStats};

/// The id of an actor: a declared name (a DNS-label-like word: letters, digits,
/// `-`, `_`; no `/` or `.`), or `component/key` for a virtual actor activated
/// on demand.
///
/// ```
/// use airssys_wasm::ActorId;
/// assert!(ActorId::new("worker-1").is_ok());
/// assert!(ActorId::new("a/b").is_err());
/// assert_eq!(ActorId::keyed("counter", "user-42").unwrap().as_str(), "counter/user-42");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId(Arc<str>);

/// The longest actor name, as a DNS label.
const MAX_NAME: usize = 63;
/// The longest key of a virtual actor.
const MAX_KEY: usize = 128;

impl ActorId {
    /// A declared actor's id; fails unless `name` is DNS-label-like.
    pub fn new(name: &str) -> Result<ActorId> {
        check_name(name).map_err(|reason| Error::InvalidActorId {
            id: crate::units::truncate(name, 80),
            reason,
        })?;
        Ok(ActorId(Arc::from(name)))
    }

    /// The id of the virtual actor of `component` under `key`: `component/key`.
    /// The key may hold any printable character but `/`, up to 128 bytes.
    pub fn keyed(component: &str, key: &str) -> Result<ActorId> {
        let id = format!("{component}/{key}");
        let invalid = |reason: String| Error::InvalidActorId {
            id: crate::units::truncate(&id, 80),
            reason,
        };
        check_name(component).map_err(invalid)?;
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(invalid(format!("a key has 1 to {MAX_KEY} bytes")));
        }
        if key.chars().any(|c| c == '/' || c.is_control()) {
            return Err(invalid("a key has no '/' and no control characters".into()));
        }
        Ok(ActorId(Arc::from(id)))
    }

    /// Parses either form: `name` or `component/key`.
    pub fn parse(s: &str) -> Result<ActorId> {
        match s.split_once('/') {
            Some((component, key)) => ActorId::keyed(component, key),
            None => ActorId::new(s),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For `component/key`, the component and the key.
    pub fn virtual_parts(&self) -> Option<(&str, &str)> {
        self.0.split_once('/')
    }

    pub(crate) fn shared(&self) -> Arc<str> {
        self.0.clone()
    }
}

fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("a name has 1 to {MAX_NAME} characters"));
    }
    if !name.chars().all(ok_char) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(
            "a name is letters, digits, '-' and '_', starting with a letter or digit".into(),
        );
    }
    Ok(())
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorId({})", self.0)
    }
}

impl Serialize for ActorId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

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

/// When a supervisor restarts a child, as in Erlang/OTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartPolicy {
    /// Always (the default).
    #[default]
    Permanent,
    /// Only after a crash, not after a normal stop.
    Transient,
    /// Never: a crashed temporary actor stays failed.
    Temporary,
}

/// How often `health()` is polled and when an answer is a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// Time between checks.
    pub interval: Duration,
    /// How long one check may take. A check that runs past it is interrupted,
    /// which leaves the instance unusable: that is a crash at once.
    pub timeout: Duration,
    /// `unhealthy` answers in a row that make a crash (`degraded` is only reported).
    pub failures: u32,
}

impl Default for HealthCheck {
    /// Every 10 s, 1 s each, 3 `unhealthy` answers in a row.
    fn default() -> Self {
        HealthCheck {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            failures: 3,
        }
    }
}

/// Per-actor settings beyond the component's limits and grants.
///
/// ```
/// use airssys_wasm::{ActorOptions, RestartPolicy};
/// use std::time::Duration;
/// let o = ActorOptions::default()
///     .mailbox_capacity(64)
///     .restart(RestartPolicy::Transient)
///     .passivate_after(Duration::from_secs(60));
/// assert_eq!(o.mailbox_capacity, 64);
/// ```
#[derive(Debug, Clone)]
pub struct ActorOptions {
    /// Messages the mailbox holds before senders get `mailbox-full` (default 1024).
    pub mailbox_capacity: usize,
    /// When its supervisor restarts it (default `Permanent`).
    pub restart: RestartPolicy,
    /// Health polling (default: every 10 s; `None`: never).
    pub health: Option<HealthCheck>,
    /// Drop the instance after this long without a message (default: never).
    /// In-memory state does not survive passivation.
    pub passivate_after: Option<Duration>,
    /// How long `shutdown()` and the drain before it may take (default 5 s).
    pub shutdown_timeout: Duration,
    /// The largest message it may send or be replied with, counted whole
    /// ([`Message::wire_bytes`]: payload, content type, metadata, target;
    /// default 1 MiB): `message-too-large`.
    pub max_message_bytes: usize,
    /// The longest request timeout it may ask for (default 60 s).
    pub max_request_timeout: Duration,
    /// Pending requests plus live timers it may have at once (default 1024).
    pub max_pending: u32,
    /// Failed activations of a virtual actor in a row after which the
    /// messages waiting for it become dead letters (default 3); between
    /// attempts it backs off like a supervised restart (10 ms doubling to 1 s).
    pub max_activation_attempts: u32,
    /// Topic patterns the host subscribes it to (no grant needed: the host consents).
    pub subscriptions: Vec<String>,
}

impl Default for ActorOptions {
    fn default() -> Self {
        ActorOptions {
            mailbox_capacity: 1024,
            restart: RestartPolicy::Permanent,
            health: Some(HealthCheck::default()),
            passivate_after: None,
            shutdown_timeout: Duration::from_secs(5),
            max_message_bytes: 1 << 20,
            max_request_timeout: Duration::from_secs(60),
            max_pending: 1024,
            max_activation_attempts: 3,
            subscriptions: Vec::new(),
        }
    }
}

impl ActorOptions {
    /// Sets the mailbox capacity.
    pub fn mailbox_capacity(mut self, n: usize) -> Self {
        self.mailbox_capacity = n.max(1);
        self
    }

    /// Sets the restart policy.
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.restart = policy;
        self
    }

    /// Sets (or with `None` turns off) health polling.
    pub fn health(mut self, check: Option<HealthCheck>) -> Self {
        self.health = check;
        self
    }

    /// Passivates the actor after `idle` without a message.
    pub fn passivate_after(mut self, idle: Duration) -> Self {
        self.passivate_after = Some(idle);
        self
    }

    /// Sets the largest payload the actor may send.
    pub fn max_message_bytes(mut self, n: usize) -> Self {
        self.max_message_bytes = n;
        self
    }

    /// Sets the cap on pending requests plus timers.
    pub fn max_pending(mut self, n: u32) -> Self {
        self.max_pending = n;
        self
    }

    /// Subscribes the actor to a topic pattern on the host's authority.
    pub fn subscribe(mut self, pattern: impl Into<String>) -> Self {
        self.subscriptions.push(pattern.into());
        self
    }
}

/// One actor to run: an id, a component, the context it runs under (limits,
/// grants, config) and its options.
#[derive(Debug, Clone)]
pub struct ActorSpec {
    /// Its id.
    pub id: ActorId,
    /// What it runs.
    pub component: Component,
    /// Limits, grants and config (as from [`Manifest::context`](crate::Manifest::context)).
    pub context: ExecutionContext,
    /// Mailbox, restart policy, health, passivation, messaging bounds.
    pub options: ActorOptions,
}

impl ActorSpec {
    /// An actor `id` running `component` under `context`, with default
    /// options (the mailbox capacity the context's manifest asks for, if any).
    pub fn new(id: ActorId, component: Component, context: ExecutionContext) -> Self {
        let mut options = ActorOptions::default();
        if let Some(n) = context.limits().host.mailbox_capacity {
            options = options.mailbox_capacity(n);
        }
        ActorSpec {
            id,
            component,
            context,
            options,
        }
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: ActorOptions) -> Self {
        self.options = options;
        self
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

/// Something that happened in an [`ActorSystem`], for embedders that watch it
/// ([`ActorSystem::events`]).
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
