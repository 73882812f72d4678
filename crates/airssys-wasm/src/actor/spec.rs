//! What an embedder declares: one actor ([`ActorSpec`], [`ActorOptions`],
//! [`RestartPolicy`], [`HealthCheck`]) and a supervision tree
//! ([`SupervisorSpec`], [`ChildSpec`], [`Strategy`], [`Intensity`], [`Backoff`]).
//! Plain data: the supervisor and the actor task read it.

use std::time::Duration;

use serde::Serialize;

use crate::id::ActorId;
use crate::runtime::component::Component;
use crate::sandbox::context::ExecutionContext;

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
    /// ([`Message::wire_bytes`](crate::Message::wire_bytes): payload, content type, metadata, target;
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
    /// A durable mailbox (default off; needs storage in the actor's context).
    /// A message to it is in the mailbox log of the data directory before its
    /// send returns, and leaves it only in the transaction that commits the
    /// effects of handling it (its writes to its own storage namespace):
    /// after a crash of the host, the next system on the same data directory
    /// delivers every unhandled message again, in order. See the README's
    /// "Durable actors" for what is exactly-once and what is not.
    pub durable: bool,
    /// Deliveries of one durable message that trap or exhaust a limit after
    /// which it becomes a `Poison` dead letter and leaves the log (default 3).
    pub max_deliveries: u32,
    /// In a cluster, a declared actor that may fail over (default off:
    /// pinned to its host). Every host that declares it keeps it on
    /// standby; one runs it (a claim in the cluster's directory), and when
    /// that host dies a survivor claims it and starts it (under its root
    /// supervisor), a durable one rebuilt from its log in JetStream.
    pub failover: bool,
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
            durable: false,
            max_deliveries: 3,
            failover: false,
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

    /// Makes the mailbox durable (see [`ActorOptions::durable`]).
    pub fn durable(mut self, on: bool) -> Self {
        self.durable = on;
        self
    }

    /// Lets this declared actor fail over between the hosts of a cluster
    /// that declare it (see [`ActorOptions::failover`]).
    pub fn failover(mut self, on: bool) -> Self {
        self.failover = on;
        self
    }

    /// Sets the deliveries of a durable message before it is a poison message.
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n.max(1);
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

/// Which children a supervisor restarts when one crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Only the crashed child (the default).
    #[default]
    OneForOne,
    /// Every child.
    OneForAll,
    /// The crashed child and the children declared after it.
    RestForOne,
}

/// At most `max_restarts` restarts within `within`; one more and the
/// supervisor gives up (stops its children and fails to its parent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed within the window.
    pub max_restarts: u32,
    /// The window.
    pub within: Duration,
}

impl Default for Intensity {
    /// 5 restarts in 5 s (kameo's default; Erlang's 1 in 5 s is strict for
    /// guests that crash on one bad input and recover in microseconds).
    fn default() -> Self {
        Intensity {
            max_restarts: 5,
            within: Duration::from_secs(5),
        }
    }
}

/// The wait before the n-th restart within the window: `initial · 2^(n-1)`,
/// at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first restart.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    /// 10 ms, doubling, at most 1 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_secs(1),
        }
    }
}

impl Backoff {
    /// The wait before the `n`-th restart in the window (`n` ≥ 1).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// A child of a supervisor.
#[derive(Debug, Clone)]
pub enum ChildSpec {
    /// An actor.
    Actor(Box<ActorSpec>),
    /// A supervisor and its own children.
    Supervisor(SupervisorSpec),
}

impl ChildSpec {
    pub(crate) fn name(&self) -> String {
        match self {
            ChildSpec::Actor(a) => a.id.to_string(),
            ChildSpec::Supervisor(s) => s.name.clone(),
        }
    }

    pub(crate) fn policy(&self) -> RestartPolicy {
        match self {
            ChildSpec::Actor(a) => a.options.restart,
            ChildSpec::Supervisor(_) => RestartPolicy::Permanent,
        }
    }
}

/// A supervisor: its name, how it restarts, and its children in start order.
///
/// ```
/// use airssys_wasm::{Strategy, SupervisorSpec};
/// let s = SupervisorSpec::new("workers").strategy(Strategy::RestForOne);
/// assert_eq!(s.strategy, Strategy::RestForOne);
/// ```
#[derive(Debug, Clone)]
pub struct SupervisorSpec {
    /// Its name (in events and errors).
    pub name: String,
    /// Which children it restarts.
    pub strategy: Strategy,
    /// How many restarts it tolerates.
    pub intensity: Intensity,
    /// How long it waits before restarting.
    pub backoff: Backoff,
    /// Its children, started in order, stopped in reverse order.
    pub children: Vec<ChildSpec>,
}

impl SupervisorSpec {
    /// A `OneForOne` supervisor with the default intensity and backoff, no children.
    pub fn new(name: impl Into<String>) -> Self {
        SupervisorSpec {
            name: name.into(),
            strategy: Strategy::default(),
            intensity: Intensity::default(),
            backoff: Backoff::default(),
            children: Vec::new(),
        }
    }

    /// Sets the strategy.
    pub fn strategy(mut self, s: Strategy) -> Self {
        self.strategy = s;
        self
    }

    /// Sets the restart intensity.
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.intensity = Intensity {
            max_restarts,
            within,
        };
        self
    }

    /// Sets the backoff.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Backoff { initial, max };
        self
    }

    /// Adds an actor child.
    pub fn actor(mut self, spec: ActorSpec) -> Self {
        self.children.push(ChildSpec::Actor(Box::new(spec)));
        self
    }

    /// Adds a supervisor child.
    pub fn supervisor(mut self, spec: SupervisorSpec) -> Self {
        self.children.push(ChildSpec::Supervisor(spec));
        self
    }

    /// Every actor in the tree below, in start order.
    pub(crate) fn actors(&self) -> Vec<&ActorSpec> {
        let mut out = Vec::new();
        for c in &self.children {
            match c {
                ChildSpec::Actor(a) => out.push(&**a),
                ChildSpec::Supervisor(s) => out.extend(s.actors()),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
        };
        assert_eq!(b.delay(1), Duration::from_millis(10));
        assert_eq!(b.delay(2), Duration::from_millis(20));
        assert_eq!(b.delay(3), Duration::from_millis(40));
        assert_eq!(b.delay(4), Duration::from_millis(50));
        assert_eq!(b.delay(100), Duration::from_millis(50));
    }
}
