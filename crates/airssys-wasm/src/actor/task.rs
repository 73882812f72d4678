//! The actor loop: one tokio task per actor that owns its [`Instance`] (and so
//! its `Store`) and handles one envelope at a time.
//!
//! An incarnation starts from the `InstancePre` and `initialize(config)`, then
//! serves the mailbox, polls `health()`, and passivates when idle. A trap, an
//! exhausted limit, a failed `initialize` or failed health checks end it as a
//! crash: the message being handled becomes a dead letter, the instance is
//! dropped (its pending requests, timers and subscriptions with it) and the
//! supervisor decides. Queued messages stay for the next instance.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::time::Instant;
use tracing::Instrument;

use super::cell::{Cell, ChildExit, Control, Parent};
use super::link::ActorLink;
use super::mailbox::{Envelope, ReplyTo};
use super::router::Router;
use super::{ActorState, DeadLetterReason, SystemEvent};
use crate::bindings::{now_millis, HealthStatus, Message, Reply, RequestError};
use crate::error::Error;
use crate::runtime::instance::Instance;

/// Envelopes handled in a row before the loop looks at control and timers again.
const BATCH: usize = 64;

enum Outcome {
    Crashed(String),
    Restart { delay: Duration, generation: u64 },
    Stopped(Option<oneshot::Sender<()>>),
    Passivated,
    Closed,
}

struct ActorTask {
    router: Arc<Router>,
    cell: Arc<Cell>,
    ctrl: mpsc::UnboundedReceiver<Control>,
    parent: Option<Parent>,
    generation: u64,
    permit: Option<OwnedSemaphorePermit>,
    /// An envelope taken while suspended, handled first by the next instance.
    carry: Option<Envelope>,
    /// Log lines the current instance had dropped when last looked at.
    seen_dropped: u64,
    /// A tighter bound than the call timeout on the next calls (while draining).
    call_limit: Option<Duration>,
    /// Failed deliveries of a durable actor's log entries, by sequence number
    /// (an entry leaves when handled or poison).
    deliveries: std::collections::HashMap<u64, u32>,
    /// Recovered log entries whose delivery in this run was counted in storage.
    attempted: std::collections::HashSet<u64>,
    /// Recovered messages go one by one, each counted (see `handle_durable`).
    careful: bool,
    /// Durable messages handled whose effects are not committed yet.
    group: Vec<Handled>,
}

/// A durable message handled in the current group: its log entry, the
/// message, where its answer goes, and the answer (sent once committed).
struct Handled {
    seq: u64,
    msg: Message,
    reply: Option<ReplyTo>,
    answer: Answer,
}

enum Answer {
    Ok {
        trace: Option<String>,
        payload: Option<Vec<u8>>,
        shape: Reply,
    },
    Err(Error),
}

/// Durable messages whose effects commit in one transaction (one fsync): the
/// group ends when the mailbox is empty, at this many, or before anything
/// else the actor does.
const GROUP: usize = 64;

/// Starts the task of a declared actor under a supervisor.
pub(crate) fn spawn_static(
    router: Arc<Router>,
    cell: Arc<Cell>,
    ctrl: mpsc::UnboundedReceiver<Control>,
    parent: Parent,
) {
    let task = ActorTask {
        router: router.clone(),
        cell,
        ctrl,
        parent: Some(parent),
        generation: 0,
        permit: None,
        carry: None,
        seen_dropped: 0,
        call_limit: None,
        deliveries: std::collections::HashMap::new(),
        attempted: std::collections::HashSet::new(),
        careful: false,
        group: Vec::new(),
    };
    if task.cell.options().durable {
        router.recover_timers(&task.cell);
    }
    router.runtime().spawn(task.run());
}

/// Starts the task of a virtual actor whose mailbox just got a message.
pub(crate) fn spawn_virtual(router: Arc<Router>, cell: Arc<Cell>) {
    let (tx, rx) = mpsc::unbounded_channel();
    *cell.ctrl.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    let task = ActorTask {
        router: router.clone(),
        cell,
        ctrl: rx,
        parent: None,
        generation: 0,
        permit: None,
        carry: None,
        seen_dropped: 0,
        call_limit: None,
        deliveries: std::collections::HashMap::new(),
        attempted: std::collections::HashSet::new(),
        careful: false,
        group: Vec::new(),
    };
    router.runtime().spawn(task.run());
}

/// How a backoff wait ended.
enum Waited {
    /// The delay passed.
    Elapsed,
    /// A stop came (handled: the actor is stopped).
    Stopped,
    /// The control channel closed.
    Closed,
}

impl ActorTask {
    async fn run(mut self) {
        let mut started_before = false;
        let mut restarted = false;
        loop {
            // A virtual actor whose activations keep failing backs off before
            // the next attempt, reading its control channel meanwhile.
            if self.cell.is_virtual {
                let wait = self.activation_delay();
                if !wait.is_zero() {
                    match self.backoff(wait).await {
                        Waited::Elapsed => {}
                        Waited::Stopped => return,
                        Waited::Closed => {
                            self.discard_queued(DeadLetterReason::Stopped);
                            return;
                        }
                    }
                }
            }
            let (outcome, start_failed) = match self.start(started_before, restarted).await {
                Ok(instance) => {
                    if self.cell.is_virtual {
                        *self.failures() = (0, None);
                    }
                    (self.serve(instance).await, false)
                }
                Err(reason) => (Outcome::Crashed(reason), true),
            };
            started_before = true;
            restarted = false;
            let park = match outcome {
                Outcome::Restart { delay, generation } => {
                    self.generation = generation;
                    match self.backoff(delay).await {
                        Waited::Elapsed => {
                            restarted = true;
                            continue;
                        }
                        Waited::Stopped => None,
                        Waited::Closed => {
                            self.discard_queued(DeadLetterReason::Stopped);
                            return;
                        }
                    }
                }
                Outcome::Closed => return,
                Outcome::Passivated => {
                    self.permit = None;
                    self.cell.set_state(ActorState::Suspended);
                    self.router.emit(SystemEvent::Passivated {
                        id: self.cell.id().clone(),
                    });
                    if self.cell.is_virtual {
                        if self.cell.abandon.swap(false, Ordering::AcqRel) {
                            self.abandon();
                            return;
                        }
                        if self.detach(true) {
                            return;
                        }
                        continue;
                    }
                    // A declared actor waits for its next message or a control.
                    tokio::select! {
                        biased;
                        c = self.ctrl.recv() => match self.on_parked_control(c) {
                            Some(next) => next,
                            None => return,
                        },
                        env = self.cell.mailbox.recv() => {
                            self.carry = env;
                            continue;
                        }
                    }
                }
                Outcome::Crashed(reason) => {
                    self.permit = None;
                    self.cell.set_state(ActorState::Failed);
                    self.rollback_on_probation(&reason);
                    tracing::warn!(actor = %self.cell.id(), "actor crashed: {reason}");
                    self.router.emit(SystemEvent::Crashed {
                        id: self.cell.id().clone(),
                        reason: reason.clone(),
                    });
                    match &self.parent {
                        Some(p) => {
                            let _ = p.exits.send(ChildExit {
                                index: p.index,
                                generation: self.generation,
                                crash: Some(reason),
                            });
                        }
                        // A virtual actor has no supervisor: the next message
                        // activates a fresh instance (none once the system is
                        // shut down), after a backoff when activation failed.
                        None => {
                            if self.router.resident.is_closed() {
                                self.discard_queued(DeadLetterReason::ShuttingDown);
                                self.cell.set_state(ActorState::Stopped);
                            }
                            if start_failed {
                                let attempts = self.note_activation_failure();
                                let max = self.cell.options().max_activation_attempts.max(1);
                                if attempts >= max {
                                    // Poison: what waits for it cannot be handled.
                                    self.discard_queued(DeadLetterReason::ActivationFailed {
                                        attempts,
                                        reason,
                                    });
                                }
                            }
                            restarted = true;
                            if self.detach(false) {
                                return;
                            }
                            continue;
                        }
                    }
                    None
                }
                Outcome::Stopped(ack) => {
                    self.stopped(ack);
                    None
                }
            };
            // Parked (failed or stopped): wait for the supervisor.
            let mut next = park;
            loop {
                let (delay, generation) = match next.take() {
                    Some(n) => n,
                    None => {
                        let c = self.ctrl.recv().await;
                        match self.on_parked_control(c) {
                            Some(Some(n)) => n,
                            Some(None) => continue,
                            None => {
                                self.discard_queued(DeadLetterReason::Stopped);
                                return;
                            }
                        }
                    }
                };
                self.generation = generation;
                match self.backoff(delay).await {
                    Waited::Elapsed => {
                        restarted = true;
                        break;
                    }
                    Waited::Stopped => continue,
                    Waited::Closed => {
                        self.discard_queued(DeadLetterReason::Stopped);
                        return;
                    }
                }
            }
        }
    }

    /// Waits `delay` (a restart's backoff) while reading the control channel:
    /// a restart resets the wait, a stop stops the actor at once.
    async fn backoff(&mut self, mut delay: Duration) -> Waited {
        loop {
            tokio::select! {
                biased;
                c = self.ctrl.recv() => match c {
                    Some(Control::Restart { delay: d, generation }) => {
                        self.generation = generation;
                        delay = d;
                    }
                    Some(Control::Stop { ack, .. }) => {
                        self.stopped(Some(ack));
                        return Waited::Stopped;
                    }
                    Some(Control::Add { ack, .. }) => {
                        let _ = ack.send(Err(Error::Config("an actor has no children".into())));
                    }
                    Some(Control::Upgrade { ack, .. } | Control::Rollback { ack }) => {
                        let _ = ack.send(Err(self.not_running()));
                    }
                    None => return Waited::Closed,
                },
                _ = tokio::time::sleep(delay) => return Waited::Elapsed,
            }
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, (u32, Option<Instant>)> {
        self.cell
            .activation_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a failed activation; returns the failures in a row.
    fn note_activation_failure(&self) -> u32 {
        let mut f = self.failures();
        f.0 = f.0.saturating_add(1);
        f.1 = Some(Instant::now());
        f.0
    }

    /// How long a virtual actor waits before its next activation: the
    /// supervisor's default backoff after as many failures in a row.
    fn activation_delay(&self) -> Duration {
        let (n, last) = *self.failures();
        match last {
            Some(at) if n > 0 => super::Backoff::default()
                .delay(n)
                .saturating_sub(at.elapsed()),
            _ => Duration::ZERO,
        }
    }

    /// A control received while parked: `None` when the channel closed,
    /// `Some(Some((delay, generation)))` for a restart, `Some(None)` otherwise.
    #[allow(clippy::type_complexity)]
    fn on_parked_control(&mut self, c: Option<Control>) -> Option<Option<(Duration, u64)>> {
        match c? {
            Control::Restart { delay, generation } => Some(Some((delay, generation))),
            Control::Stop { ack, .. } => {
                if self.cell.state() != ActorState::Stopped {
                    self.stopped(Some(ack));
                } else {
                    let _ = ack.send(());
                }
                Some(None)
            }
            Control::Add { ack, .. } => {
                let _ = ack.send(Err(Error::Config("an actor has no children".into())));
                Some(None)
            }
            Control::Upgrade { ack, .. } | Control::Rollback { ack } => {
                let _ = ack.send(Err(self.not_running()));
                Some(None)
            }
        }
    }

    fn not_running(&self) -> String {
        format!(
            "{} is not running (crashed, stopped or restarting): upgrade it when it runs",
            self.cell.id()
        )
    }

    fn stopped(&mut self, ack: Option<oneshot::Sender<()>>) {
        self.permit = None;
        self.discard_queued(DeadLetterReason::Stopped);
        self.cell.set_state(ActorState::Stopped);
        self.router.emit(SystemEvent::Stopped {
            id: self.cell.id().clone(),
        });
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
    }

    /// Lets go of a virtual actor's mailbox when it is empty (the task
    /// ends). With `retire`, an idle actor that holds nothing also leaves the
    /// registry, so it costs nothing but its durable data until its next message.
    fn detach(&self, retire: bool) -> bool {
        let retire = retire
            && self.failures().0 == 0
            && self.cell.pending.load(Ordering::Relaxed) == 0
            && self.cell.guest_subscriptions.load(Ordering::Relaxed) == 0;
        let detached = if retire {
            self.cell.mailbox.retire_if_empty()
        } else {
            self.cell.mailbox.detach_if_empty()
        };
        if detached {
            *self.cell.ctrl.lock().unwrap_or_else(|p| p.into_inner()) = None;
            if retire {
                self.router.retire(&self.cell);
            }
        }
        detached
    }

    async fn start(&mut self, started_before: bool, restarted: bool) -> Result<Instance, String> {
        let cell = self.cell.clone();
        cell.set_state(ActorState::Starting);
        if cell.is_virtual && self.permit.is_none() {
            let permit = match self.router.resident.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    self.router.residency.make_room();
                    self.router
                        .resident
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| "the system is shut down".to_string())?
                }
            };
            self.permit = Some(permit);
        }
        // A restart counts when it is attempted, so an actor whose
        // `initialize` keeps failing shows its restarts.
        let restarts = restarted.then(|| cell.restarts.fetch_add(1, Ordering::Relaxed) + 1);
        let instance = self.instantiate(&cell.component()).await?;
        cell.set_state(ActorState::Running);
        let id = cell.id().clone();
        if let Some(restarts) = restarts {
            self.router.emit(SystemEvent::Restarted { id, restarts });
        } else if started_before || cell.is_virtual {
            self.router.emit(SystemEvent::Activated { id });
        } else {
            self.router.emit(SystemEvent::Started { id });
        }
        if cell.is_virtual {
            self.router.residency.note(&cell);
        }
        Ok(instance)
    }

    async fn serve(&mut self, mut instance: Instance) -> Outcome {
        let options = self.cell.options().clone();
        let far = Duration::from_secs(86400 * 365);
        let mut health = tokio::time::interval_at(
            Instant::now() + options.health.map(|h| h.interval).unwrap_or(far),
            options.health.map(|h| h.interval).unwrap_or(far),
        );
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let idle = options.passivate_after;
        let idle_sleep = tokio::time::sleep(idle.unwrap_or(far));
        tokio::pin!(idle_sleep);
        let mut last = Instant::now();
        let mut unhealthy = 0u32;
        if let Some(env) = self.carry.take() {
            if let Err(reason) = self.handle(&mut instance, env).await {
                return Outcome::Crashed(reason);
            }
            if let Err(reason) = self.commit_group(&mut instance).await {
                return Outcome::Crashed(reason);
            }
        }
        loop {
            if self.cell.evict.swap(false, Ordering::AcqRel) {
                self.shutdown(&mut instance).await;
                return Outcome::Passivated;
            }
            tokio::select! {
                biased;
                c = self.ctrl.recv() => {
                    return match c {
                        Some(Control::Restart { delay, generation }) => {
                            self.shutdown(&mut instance).await;
                            Outcome::Restart { delay, generation }
                        }
                        Some(Control::Stop { drain, ack }) => {
                            if drain {
                                if let Err(reason) = self.drain(&mut instance).await {
                                    // Crashed while draining: reported, and stopped
                                    // (the instance is unusable: no shutdown call).
                                    tracing::warn!(actor = %self.cell.id(), "actor crashed while draining: {reason}");
                                    self.router.emit(SystemEvent::Crashed {
                                        id: self.cell.id().clone(),
                                        reason,
                                    });
                                    return Outcome::Stopped(Some(ack));
                                }
                            }
                            self.shutdown(&mut instance).await;
                            Outcome::Stopped(Some(ack))
                        }
                        Some(Control::Add { ack, .. }) => {
                            let _ = ack.send(Err(Error::Config("an actor has no children".into())));
                            continue;
                        }
                        Some(Control::Upgrade { component, probation, ack }) => {
                            if let Err(reason) = self.commit_group(&mut instance).await {
                                let _ = ack.send(Err(reason.clone()));
                                return Outcome::Crashed(reason);
                            }
                            let _ = ack.send(self.upgrade(&mut instance, component, probation).await);
                            last = Instant::now();
                            continue;
                        }
                        Some(Control::Rollback { ack }) => {
                            if let Err(reason) = self.commit_group(&mut instance).await {
                                let _ = ack.send(Err(reason.clone()));
                                return Outcome::Crashed(reason);
                            }
                            let _ = ack.send(self.rollback(&mut instance, "asked").await);
                            last = Instant::now();
                            continue;
                        }
                        None => {
                            self.shutdown(&mut instance).await;
                            Outcome::Closed
                        }
                    };
                }
                env = self.cell.mailbox.recv() => {
                    let Some(env) = env else { continue };
                    if let Err(reason) = self.handle(&mut instance, env).await {
                        return Outcome::Crashed(reason);
                    }
                    for _ in 1..BATCH {
                        if !self.ctrl.is_empty() {
                            break;
                        }
                        let Some(env) = self.cell.mailbox.try_pop() else { break };
                        if let Err(reason) = self.handle(&mut instance, env).await {
                            return Outcome::Crashed(reason);
                        }
                    }
                    if let Err(reason) = self.commit_group(&mut instance).await {
                        return Outcome::Crashed(reason);
                    }
                    last = Instant::now();
                }
                _ = health.tick(), if options.health.is_some() => {
                    let Some(check) = options.health else { continue };
                    match instance.health_within(Some(check.timeout)).await {
                        Ok(HealthStatus::Healthy) => unhealthy = 0,
                        Ok(HealthStatus::Degraded) => {
                            unhealthy = 0;
                            tracing::info!(actor = %self.cell.id(), "health: degraded");
                        }
                        Ok(HealthStatus::Unhealthy) => {
                            unhealthy += 1;
                            self.cell.health_failures.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(actor = %self.cell.id(), unhealthy, threshold = check.failures, "health: unhealthy");
                            if unhealthy >= check.failures.max(1) {
                                return Outcome::Crashed(format!(
                                    "{}: health check unhealthy {unhealthy} times in a row (threshold {})",
                                    self.cell.id(), check.failures
                                ));
                            }
                        }
                        Err(e) if e.is_fatal() => {
                            self.cell.health_failures.fetch_add(1, Ordering::Relaxed);
                            return Outcome::Crashed(format!("health check failed: {e}"));
                        }
                        Err(e) => {
                            unhealthy += 1;
                            self.cell.health_failures.fetch_add(1, Ordering::Relaxed);
                            if unhealthy >= check.failures.max(1) {
                                return Outcome::Crashed(format!("health check failed {unhealthy} times in a row: {e}"));
                            }
                        }
                    }
                    self.record_usage(&instance);
                }
                _ = &mut idle_sleep, if idle.is_some() => {
                    let Some(idle) = idle else { continue };
                    if last.elapsed() >= idle && self.cell.mailbox.len() == 0 {
                        self.shutdown(&mut instance).await;
                        return Outcome::Passivated;
                    }
                    idle_sleep.as_mut().reset(last + idle);
                }
            }
        }
    }

    /// A fresh instance of `component` as this actor (a new incarnation),
    /// initialized.
    async fn instantiate(&mut self, component: &crate::Component) -> Result<Instance, String> {
        let cell = self.cell.clone();
        let incarnation = cell.incarnation.fetch_add(1, Ordering::AcqRel) + 1;
        let link = ActorLink {
            router: self.router.clone(),
            cell: cell.clone(),
            incarnation,
        };
        let mut instance = component
            .instantiate_with_mailroom(&cell.spec.context, Some(Box::new(link)))
            .await
            .map_err(|e| e.to_string())?;
        self.seen_dropped = 0;
        let init = instance.initialize().await;
        self.record_usage(&instance);
        init.map_err(|e| e.to_string())?;
        Ok(instance)
    }

    /// Switches `instance` to `component` between two messages: the new
    /// instance is made and initialized first, and must say a higher
    /// `metadata().version` than the running one; only then is the old one
    /// shut down. On failure the actor keeps its instance and version.
    async fn upgrade(
        &mut self,
        instance: &mut Instance,
        component: crate::Component,
        probation: Duration,
    ) -> Result<u32, String> {
        let id = self.cell.id().clone();
        let refuse = |task: &Self, reason: String| {
            task.router.emit(SystemEvent::UpgradeRefused {
                id: id.clone(),
                reason: reason.clone(),
            });
            tracing::warn!(actor = %id, "upgrade refused: {reason}");
            Err(reason)
        };
        let old_version = match instance.metadata().await {
            Ok(m) => m.version,
            Err(e) => {
                return refuse(
                    self,
                    format!("{id}: the running version's metadata failed: {e}"),
                )
            }
        };
        let mut fresh = match self.instantiate(&component).await {
            Ok(i) => i,
            Err(e) => return refuse(self, format!("{id}: the new version failed to start: {e}")),
        };
        let new_version = match fresh.metadata().await {
            Ok(m) => m.version,
            Err(e) => {
                return refuse(
                    self,
                    format!("{id}: the new version's metadata failed: {e}"),
                )
            }
        };
        if !version_above(&new_version, &old_version) {
            let _ = fresh
                .shutdown_within(Some(self.cell.options().shutdown_timeout))
                .await;
            return refuse(
                self,
                format!("{id}: version {new_version} is not higher than the running {old_version}"),
            );
        }
        self.shutdown(instance).await;
        *instance = fresh;
        self.cell.set_state(ActorState::Running);
        let version = {
            let mut v = self.cell.versions.lock().unwrap_or_else(|p| p.into_inner());
            let old = std::mem::replace(&mut v.current, component);
            let was = v.version;
            v.previous.push((old, was));
            if v.previous.len() > super::cell::VERSIONS_KEPT {
                v.previous.remove(0);
            }
            v.version = was + 1;
            v.probation_until = Some(Instant::now() + probation);
            v.version
        };
        self.cell.upgrades.fetch_add(1, Ordering::Relaxed);
        tracing::info!(actor = %id, version, component_version = %new_version, "upgraded");
        self.router.emit(SystemEvent::Upgraded {
            id,
            version,
            component_version: new_version,
        });
        Ok(version)
    }

    /// Goes back to the previous version (with a running `instance`: made
    /// and initialized first; without, the next start uses it).
    async fn rollback(&mut self, instance: &mut Instance, why: &str) -> Result<u32, String> {
        let id = self.cell.id().clone();
        let Some((previous, version)) = self
            .cell
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .previous
            .last()
            .cloned()
        else {
            return Err(format!("{id}: no previous version to go back to"));
        };
        let fresh = self
            .instantiate(&previous)
            .await
            .map_err(|e| format!("{id}: the previous version failed to start: {e}"))?;
        self.shutdown(instance).await;
        *instance = fresh;
        self.cell.set_state(ActorState::Running);
        self.revert(version, why);
        Ok(version)
    }

    /// Makes the previous version (`version`) current again and says so.
    fn revert(&self, version: u32, why: &str) {
        {
            let mut v = self.cell.versions.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((previous, n)) = v.previous.pop() {
                v.current = previous;
                v.version = n;
            }
            v.probation_until = None;
        }
        self.cell.rollbacks.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(actor = %self.cell.id(), version, "rolled back: {why}");
        self.router.emit(SystemEvent::RolledBack {
            id: self.cell.id().clone(),
            version,
            reason: why.to_string(),
        });
    }

    /// A crash of a version on probation sends the actor back to the
    /// previous one: its supervisor's restart then runs that.
    fn rollback_on_probation(&self, reason: &str) {
        let previous = {
            let v = self.cell.versions.lock().unwrap_or_else(|p| p.into_inner());
            match (v.probation_until, v.previous.last()) {
                (Some(until), Some((_, n))) if Instant::now() < until => Some(*n),
                _ => None,
            }
        };
        if let Some(n) = previous {
            self.revert(n, &format!("crashed on probation: {reason}"));
        }
    }

    /// Handles what is queued, up to the shutdown timeout (each call is cut
    /// short at it too).
    async fn drain(&mut self, instance: &mut Instance) -> Result<(), String> {
        let deadline = Instant::now() + self.cell.options().shutdown_timeout;
        let mut result = Ok(());
        while Instant::now() < deadline {
            let Some(env) = self.cell.mailbox.try_pop() else {
                break;
            };
            self.call_limit = Some(deadline.saturating_duration_since(Instant::now()));
            result = self.handle(instance, env).await;
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = self.commit_group(instance).await;
        }
        self.call_limit = None;
        result
    }

    /// Calls `shutdown()` under the shutdown timeout; a failure is logged
    /// (the instance is dropped anyway).
    async fn shutdown(&mut self, instance: &mut Instance) {
        self.cell.set_state(ActorState::Stopping);
        let within = self.cell.options().shutdown_timeout;
        if let Err(e) = instance.shutdown_within(Some(within)).await {
            tracing::warn!(actor = %self.cell.id(), "shutdown failed: {e}");
        }
        self.record_usage(instance);
    }

    /// This host no longer holds the actor's log ([`Cell::abandon`]): the
    /// activation ends here whatever it has queued (its messages are in the
    /// log, for whichever host holds it next; a request among them is
    /// answered `stopped`), and leaves the registry, so the next message goes
    /// through placement and a rebuild from the log.
    ///
    /// [`Cell::abandon`]: super::cell::Cell::abandon
    fn abandon(&mut self) {
        if let Some(env) = self.carry.take() {
            self.discard(vec![env], DeadLetterReason::Stopped);
        }
        let queued = self.cell.mailbox.retire_draining();
        self.discard(queued, DeadLetterReason::Stopped);
        *self.cell.ctrl.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.router.retire(&self.cell);
        tracing::info!(actor = %self.cell.id(), "its log is held elsewhere now: this activation ended");
    }

    /// Everything still queued becomes a dead letter (requests are answered).
    fn discard_queued(&self, reason: DeadLetterReason) {
        self.discard(self.cell.mailbox.drain(), reason);
    }

    fn discard(&self, envelopes: Vec<Envelope>, reason: DeadLetterReason) {
        for env in envelopes {
            match env {
                // A durable message stays in the log, for the next start.
                Envelope::Message {
                    reply,
                    seq: Some(_),
                    ..
                } => self.fail_reply(reply, RequestError::Stopped(self.cell.id().to_string())),
                Envelope::Message { msg, reply, .. } => {
                    self.fail_reply(reply, RequestError::Stopped(self.cell.id().to_string()));
                    self.router
                        .dead_letter(self.cell.id().as_str(), msg, reason.clone());
                }
                Envelope::Callback { .. } => {
                    self.router
                        .counters
                        .late_replies
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn record_usage(&mut self, instance: &Instance) {
        if let Some(u) = instance.last_usage() {
            *self.cell.usage.lock().unwrap_or_else(|p| p.into_inner()) = Some(u);
            self.cell
                .fuel_consumed
                .fetch_add(u.fuel_consumed, Ordering::Relaxed);
        }
        let dropped = instance.log_dropped();
        if dropped > self.seen_dropped {
            self.cell
                .log_dropped
                .fetch_add(dropped - self.seen_dropped, Ordering::Relaxed);
            self.seen_dropped = dropped;
        }
    }

    /// Handles one envelope; `Err` is a crash.
    async fn handle(&mut self, instance: &mut Instance, env: Envelope) -> Result<(), String> {
        if let Envelope::Message {
            msg,
            reply,
            seq: Some(seq),
        } = env
        {
            return self.handle_durable(instance, msg, reply, seq).await;
        }
        // Anything else first commits the durable group (it writes directly).
        self.commit_group(instance).await?;
        match env {
            Envelope::Message { msg, reply, seq } => {
                debug_assert!(seq.is_none());
                let (result, trace) = self.call_message(instance, &msg, &reply, seq).await;
                match result {
                    Ok(payload) => {
                        let shape = instance.take_reply();
                        self.reply_ok(reply, &msg, trace, payload, shape);
                        Ok(())
                    }
                    Err(e) if !e.is_fatal() => {
                        match reply {
                            Some(ReplyTo::Host(tx)) => {
                                let _ = tx.send(Err(e));
                            }
                            other => self.fail_reply(other, RequestError::Failed(e.to_string())),
                        }
                        Ok(())
                    }
                    Err(e) => {
                        let reason = e.to_string();
                        match reply {
                            Some(ReplyTo::Host(tx)) => {
                                let _ = tx.send(Err(e));
                            }
                            other => self.fail_reply(other, RequestError::Failed(reason.clone())),
                        }
                        self.router.dead_letter(
                            self.cell.id().as_str(),
                            msg,
                            DeadLetterReason::Crashed {
                                reason: reason.clone(),
                            },
                        );
                        Err(reason)
                    }
                }
            }
            Envelope::Callback {
                correlation_id,
                incarnation,
                result,
            } => {
                if incarnation != self.cell.incarnation.load(Ordering::Acquire) {
                    self.router
                        .counters
                        .late_replies
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                let r = instance
                    .handle_callback_within(&correlation_id.to_string(), &result, self.call_limit)
                    .await;
                self.cell.handled.fetch_add(1, Ordering::Relaxed);
                self.observe_call(instance);
                self.record_usage(instance);
                match r {
                    Err(e) if e.is_fatal() => Err(e.to_string()),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Calls `handle-message` with `msg` under its trace (`seq`: its durable
    /// log entry) and counts the call; returns the result and, for a reply
    /// to an actor, the trace id it carries on.
    async fn call_message(
        &mut self,
        instance: &mut Instance,
        msg: &Message,
        reply: &Option<ReplyTo>,
        seq: Option<u64>,
    ) -> (crate::error::Result<Option<Vec<u8>>>, Option<String>) {
        let trace = msg.metadata_value("trace-id").map(str::to_string);
        let span = tracing::debug_span!(
            "actor.message",
            actor = %self.cell.id(),
            from = %msg.sender,
            trace_id = trace.as_deref().unwrap_or(""),
            seq,
        );
        instance.host_mut().messaging.trace = trace;
        let result = instance
            .handle_message_within(msg, self.call_limit)
            .instrument(span)
            .await;
        let trace = match reply {
            Some(ReplyTo::Actor(_)) => instance.host_mut().messaging.trace.clone(),
            _ => None,
        };
        self.cell.handled.fetch_add(1, Ordering::Relaxed);
        self.observe_call(instance);
        self.record_usage(instance);
        (result, trace)
    }

    /// Handles one durable message as part of the current group: its
    /// writes are held (the group's calls read each other's), its sends to
    /// durable actors kept in the outbox, its answer kept; all of it
    /// commits with the group. A trap or a limit discards the group's
    /// effects: its messages go back first in the mailbox, in order, and only
    /// this one counts a failed delivery.
    async fn handle_durable(
        &mut self,
        instance: &mut Instance,
        msg: Message,
        reply: Option<ReplyTo>,
        seq: u64,
    ) -> Result<(), String> {
        // A message recovered from the log may be the one the host stopped
        // during, each time. The first of each group is counted in storage
        // before its delivery; once one was counted in an earlier run too,
        // the rest of the recovered messages go one by one, each counted and
        // committed alone, so that the one the host stops during is found
        // and becomes poison after `max_deliveries` runs.
        let recovered = seq <= self.cell.recovered_upto.load(Ordering::Relaxed);
        if recovered && (self.group.is_empty() || self.careful) && !self.attempted.contains(&seq) {
            if let Some(storage) = self.cell.spec.context.storage().cloned() {
                self.attempted.insert(seq);
                let before = match storage.attempt(self.cell.id().as_str(), seq).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!(
                            actor = %self.cell.id(),
                            seq,
                            "the delivery of a recovered message could not be counted: {e}"
                        );
                        0
                    }
                };
                let max = self.cell.options().max_deliveries.max(1);
                if before >= max {
                    self.fail_reply(
                        reply,
                        RequestError::Failed(format!("{}: a poison message", self.cell.id())),
                    );
                    let reason = format!(
                        "the host stopped during each of its last {before} deliveries, in \
                         earlier runs (max-deliveries {max})"
                    );
                    self.poison(instance, seq, msg, before, &reason).await;
                    return Ok(());
                }
                if before > 0 {
                    self.careful = true;
                    // What the group holds so far commits before this one.
                    self.commit_group(instance).await?;
                }
                let n = self.deliveries.entry(seq).or_insert(0);
                *n = (*n).max(before);
            }
        }
        if self.group.is_empty() {
            instance.host_mut().storage.hold_writes();
            *self.cell.outbox.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
        }
        let (result, trace) = self.call_message(instance, &msg, &reply, Some(seq)).await;
        let answer = match result {
            Ok(payload) => Answer::Ok {
                trace,
                payload,
                shape: instance.take_reply(),
            },
            Err(e) if !e.is_fatal() => Answer::Err(e),
            Err(e) => {
                let reason = e.to_string();
                match reply {
                    Some(ReplyTo::Host(tx)) => {
                        let _ = tx.send(Err(e));
                    }
                    other => self.fail_reply(other, RequestError::Failed(reason.clone())),
                }
                let _ = instance.host_mut().storage.take_held();
                self.cell
                    .outbox
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                let dropped = std::mem::take(
                    &mut *self
                        .cell
                        .group_timers
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()),
                );
                self.cell
                    .pending
                    .fetch_sub(dropped.len() as u32, Ordering::Relaxed);
                self.failed_delivery(instance, seq, msg, &reason).await;
                for h in std::mem::take(&mut self.group).into_iter().rev() {
                    self.cell.mailbox.push_logged(
                        super::mailbox::pack(&h.msg),
                        h.seq,
                        h.reply,
                        true,
                    );
                }
                return Err(reason);
            }
        };
        self.group.push(Handled {
            seq,
            msg,
            reply,
            answer,
        });
        if self.group.len() >= GROUP || self.cell.mailbox.len() == 0 || (self.careful && recovered)
        {
            self.commit_group(instance).await?;
        }
        Ok(())
    }

    /// Commits the durable group in one transaction: removes its log
    /// entries, applies the held writes (to the own namespace) and appends
    /// the outbox (messages to durable actors) to their logs; then queues
    /// those messages in log order and sends the group's answers. A refusal
    /// (the writes over the quota as a whole) or a database failure keeps
    /// nothing: the messages go back first in the mailbox, each counting a
    /// failed delivery, and the actor restarts.
    async fn commit_group(&mut self, instance: &mut Instance) -> Result<(), String> {
        if self.group.is_empty() {
            return Ok(());
        }
        let group = std::mem::take(&mut self.group);
        let held = instance.host_mut().storage.take_held();
        let sent = self
            .cell
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default();
        let timers = std::mem::take(
            &mut *self
                .cell
                .group_timers
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let id = self.cell.id().as_str().to_string();
        let Some(storage) = self.cell.spec.context.storage().cloned() else {
            return Ok(());
        };
        let quota = instance.host_mut().storage.quota().unwrap_or_default();
        let sends = sent
            .iter()
            .map(|(c, packed, _)| (c.id().as_str().to_string(), packed.clone()))
            .collect();
        let router = self.router.clone();
        let owner = self.cell.clone();
        let armed = timers.clone();
        let then: crate::storage::commit::Then = Box::new(move |r| {
            if let Ok(crate::storage::commit::WriteOutcome::Handled(seqs)) = r {
                for t in armed {
                    router.arm_durable(&owner, t);
                }
                for ((cell, packed, _charge), seq) in sent.into_iter().zip(seqs) {
                    router.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    // 0: its target's replicated log had it already (an
                    // earlier try of this group); that log delivers it.
                    if *seq == 0 {
                        continue;
                    }
                    router.queue_logged(&cell, packed, *seq, None);
                }
            }
        });
        let seqs = group.iter().map(|h| h.seq).collect();
        match storage
            .handled(
                &crate::storage::Namespace::actor(id.as_str()),
                crate::storage::commit::Group {
                    seqs,
                    ops: held,
                    sends,
                    timers: timers.clone(),
                },
                quota,
                Some(then),
            )
            .await
        {
            Ok(_) => {
                for h in group {
                    self.deliveries.remove(&h.seq);
                    self.attempted.remove(&h.seq);
                    match h.answer {
                        Answer::Ok {
                            trace,
                            payload,
                            shape,
                        } => self.reply_ok(h.reply, &h.msg, trace, payload, shape),
                        Answer::Err(e) => match h.reply {
                            Some(ReplyTo::Host(tx)) => {
                                let _ = tx.send(Err(e));
                            }
                            other => self.fail_reply(other, RequestError::Failed(e.to_string())),
                        },
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.cell
                    .pending
                    .fetch_sub(timers.len() as u32, Ordering::Relaxed);
                let reason = format!(
                    "{id}: the effects of handling {} durable messages were not committed: {e}",
                    group.len()
                );
                for h in group.into_iter().rev() {
                    self.fail_reply(h.reply, RequestError::Failed(reason.clone()));
                    self.failed_delivery(instance, h.seq, h.msg, &reason).await;
                }
                Err(reason)
            }
        }
    }

    /// A durable message whose delivery trapped, hit a limit, or could not
    /// commit: queued first again for the next instance, until its
    /// `max_deliveries`; then a `Poison` dead letter, out of the log.
    async fn failed_delivery(
        &mut self,
        instance: &mut Instance,
        seq: u64,
        msg: Message,
        reason: &str,
    ) {
        let n = {
            let n = self.deliveries.entry(seq).or_insert(0);
            *n += 1;
            *n
        };
        if n < self.cell.options().max_deliveries.max(1) {
            self.cell
                .mailbox
                .push_logged(super::mailbox::pack(&msg), seq, None, true);
            return;
        }
        self.poison(instance, seq, msg, n, reason).await;
    }

    /// A durable message that is poison: out of the log (and its count), a
    /// `Poison` dead letter.
    async fn poison(
        &mut self,
        instance: &mut Instance,
        seq: u64,
        msg: Message,
        n: u32,
        reason: &str,
    ) {
        self.deliveries.remove(&seq);
        self.attempted.remove(&seq);
        let id = self.cell.id().as_str().to_string();
        if let Some(storage) = self.cell.spec.context.storage() {
            let quota = instance.host_mut().storage.quota().unwrap_or_default();
            if let Err(e) = storage
                .handled(
                    &crate::storage::Namespace::actor(id.as_str()),
                    crate::storage::commit::Group {
                        seqs: vec![seq],
                        ..Default::default()
                    },
                    quota,
                    None,
                )
                .await
            {
                tracing::error!(actor = %id, seq, "a poison message could not leave the log: {e}");
            }
        }
        self.router.dead_letter(
            &id,
            msg,
            DeadLetterReason::Poison {
                deliveries: n,
                reason: reason.to_string(),
            },
        );
    }

    fn observe_call(&self, instance: &Instance) {
        if let Some(u) = instance.last_usage() {
            self.router
                .counters
                .call_seconds
                .observe(u.wall_time.as_secs_f64());
        }
    }

    /// Answers a handled request: `payload` is the `handle-message` result,
    /// `shape` what the guest said of it with `set-reply`.
    fn reply_ok(
        &self,
        reply: Option<ReplyTo>,
        request: &Message,
        trace: Option<String>,
        payload: Option<Vec<u8>>,
        shape: Reply,
    ) {
        match reply {
            None => {}
            Some(ReplyTo::Host(tx)) => {
                let limit = self.cell.options().max_message_bytes;
                // A reply the actor shaped stands even without a payload (an
                // HTTP route's `http.status = 404`, say): empty, not none.
                let shaped = shape != Reply::default();
                let answer = match payload {
                    Some(payload) => Some(Reply { payload, ..shape }),
                    None if shaped => Some(shape),
                    None => None,
                };
                let bytes = answer.as_ref().map_or(0, Reply::wire_bytes);
                let answer = if bytes > limit {
                    let mut cut = Message::new(
                        self.cell.id().as_str(),
                        answer.map(|a| a.payload).unwrap_or_default(),
                    );
                    cut.correlation_id = request.correlation_id.clone();
                    self.router.dead_letter(
                        "host",
                        cut,
                        DeadLetterReason::TooLarge {
                            limit_bytes: limit as u64,
                        },
                    );
                    Err(Error::ReplyTooLarge {
                        actor: self.cell.id().to_string(),
                        bytes,
                        limit,
                    })
                } else {
                    Ok(answer)
                };
                let late = tx.send(answer).is_err();
                // The embedder stopped waiting (its timeout passed).
                self.router
                    .counters
                    .late_replies
                    .fetch_add(u64::from(late), Ordering::Relaxed);
            }
            Some(ReplyTo::Actor(corr)) => {
                let mut metadata = shape.metadata;
                if let Some(t) = trace {
                    metadata.push(("trace-id".to_string(), t));
                }
                let reply = Message {
                    sender: self.cell.id().as_str().to_string(),
                    payload: payload.unwrap_or_default(),
                    content_type: shape
                        .content_type
                        .unwrap_or_else(|| request.content_type.clone()),
                    correlation_id: request.correlation_id.clone(),
                    metadata,
                    timestamp_ms: now_millis(),
                };
                self.router.complete(corr, Ok(reply));
            }
        }
    }

    fn fail_reply(&self, reply: Option<ReplyTo>, why: RequestError) {
        match reply {
            None => {}
            Some(ReplyTo::Host(tx)) => {
                let e = match why {
                    RequestError::Stopped(actor) => Error::ActorStopped { actor },
                    RequestError::Failed(reason) => Error::Runtime {
                        component: self.cell.id().to_string(),
                        message: reason,
                    },
                    RequestError::Timeout => Error::RequestTimeout {
                        actor: self.cell.id().to_string(),
                        timeout: Duration::ZERO,
                    },
                };
                let _ = tx.send(Err(e));
            }
            Some(ReplyTo::Actor(corr)) => self.router.complete(corr, Err(why)),
        }
    }
}

/// Whether `new` is a higher version than `old`: dotted numbers compared
/// piece by piece (`0.10.0` > `0.9.1`); anything after `-` or `+` is ignored.
fn version_above(new: &str, old: &str) -> bool {
    fn parts(v: &str) -> Vec<u64> {
        v.split(['-', '+'])
            .next()
            .unwrap_or("")
            .split('.')
            .map(|p| p.trim().parse().unwrap_or(0))
            .collect()
    }
    let (a, b) = (parts(new), parts(old));
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x > y;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_compare_by_number_not_by_text() {
        use super::version_above;
        assert!(version_above("0.10.0", "0.9.1"));
        assert!(version_above("2", "1.9"));
        assert!(!version_above("1.0.0", "1.0"));
        assert!(!version_above("1.0.0-rc1", "1.0.0"));
        assert!(!version_above("0.1.0", "0.2.0"));
    }
}
