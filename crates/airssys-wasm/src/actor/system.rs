//! The [`ActorSystem`]: the composition root an embedder builds in code — a
//! supervision tree of actors, virtual actors activated on demand, and the
//! operations the host uses on them (send, request, publish, observe, shut down).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::cell::Control;
use super::mailbox::ReplyTo;
use super::router::Router;
use super::spec::SupervisorSpec;
use super::supervisor::{register_actors, spawn_supervisor};
use super::{
    ActorId, ActorSpec, ActorStatus, ChildSpec, DeadLetter, DeadLetterReason, SystemEvent,
};
use crate::bindings::{now_millis, Message, Reply};
use crate::error::{Error, Result};

/// Counters of a running system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SystemStats {
    /// Messages put in a mailbox.
    pub delivered: u64,
    /// Requests made by actors.
    pub requests: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Replies that came after their request timed out or was cancelled, or
    /// whose requester had been restarted: discarded.
    pub late_replies: u64,
    /// Messages that could not be delivered.
    pub dead_letters: u64,
}

/// How to build an [`ActorSystem`].
///
/// ```no_run
/// use airssys_wasm::{ActorId, ActorSpec, ActorSystem, Engine, EngineConfig, ExecutionContext, Message};
/// use std::time::Duration;
///
/// # async fn demo() -> airssys_wasm::Result<()> {
/// let engine = Engine::new(EngineConfig::default())?;
/// let echo = engine.load_file("echo.wasm")?;
/// let system = ActorSystem::builder()
///     .actor(ActorSpec::new(ActorId::new("echo")?, echo.clone(), ExecutionContext::new("echo")))
///     .virtual_actors(echo, ExecutionContext::new("echo"), Default::default()) // "echo/KEY" on demand
///     .start()
///     .await?;
/// let reply = system.request("echo", Message::new("host", "hi"), Duration::from_secs(1)).await?;
/// assert_eq!(reply.as_deref(), Some(&b"hi"[..]));
/// system.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SystemBuilder {
    root: SupervisorSpec,
    virtuals: Vec<ActorSpec>,
    max_active: usize,
    trust: crate::security::signing::TrustPolicy,
    clustered: bool,
}

impl Default for SystemBuilder {
    fn default() -> Self {
        SystemBuilder {
            root: SupervisorSpec::new("root"),
            virtuals: Vec::new(),
            max_active: 512,
            trust: Default::default(),
            clustered: false,
        }
    }
}

impl SystemBuilder {
    /// Replaces the root supervisor (its strategy, intensity, backoff, children).
    pub fn root(mut self, root: SupervisorSpec) -> Self {
        self.root = root;
        self
    }

    /// Adds an actor under the root supervisor.
    pub fn actor(mut self, spec: ActorSpec) -> Self {
        self.root.children.push(ChildSpec::Actor(Box::new(spec)));
        self
    }

    /// Adds a supervisor (with its children) under the root supervisor.
    pub fn supervisor(mut self, spec: SupervisorSpec) -> Self {
        self.root.children.push(ChildSpec::Supervisor(spec));
        self
    }

    /// Makes `component`'s actors addressable as `NAME/KEY` (`NAME` is the
    /// component's name): each is activated from the `InstancePre` on its first
    /// message and passivated when idle (`options.passivate_after`) or when the
    /// resident set is full. In-memory state does not survive passivation.
    pub fn virtual_actors(
        mut self,
        component: crate::Component,
        context: crate::ExecutionContext,
        options: super::ActorOptions,
    ) -> Self {
        let id = ActorId(Arc::from(component.name()));
        self.virtuals.push(ActorSpec {
            id,
            component,
            context,
            options,
        });
        self
    }

    /// How many virtual actors may hold an instance at once (default 512); the
    /// least recently used is passivated to make room. Leave room in the
    /// engine's pool for the declared actors.
    pub fn max_active(mut self, n: usize) -> Self {
        self.max_active = n.max(1);
        self
    }

    /// The system will join a cluster ([`Cluster::join`](crate::cluster::Cluster::join)):
    /// its durable virtual actors are not recovered from the local data
    /// directory at start. The cluster's log of each is the truth; the host
    /// the cluster places one on rebuilds it from there.
    pub fn clustered(mut self, clustered: bool) -> Self {
        self.clustered = clustered;
        self
    }

    /// The keys a new version must be signed with to be an upgrade
    /// ([`ActorSystem::upgrade`] refuses one loaded without a verified
    /// signature; the admin API checks an upload against them). Empty (the
    /// default): upgrades are not signature-checked.
    pub fn trust(mut self, trust: crate::security::signing::TrustPolicy) -> Self {
        self.trust = trust;
        self
    }

    /// Starts the system on the current tokio runtime: registers every actor,
    /// starts the tree, and returns once every declared actor has left
    /// `Starting` (running, or failed and in its supervisor's hands).
    ///
    /// # Errors
    ///
    /// A declared id twice or reserved, a subscription pattern that does not parse, or an actor
    /// whose `initialize` fails at start ([`Error::Config`] and the failure of the call).
    pub async fn start(self) -> Result<ActorSystem> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Config("ActorSystem::start needs a tokio runtime".into()))?;
        let router = Router::new(self.max_active, runtime, super::task::spawn_virtual);
        let mut durable_kinds = Vec::new();
        for v in self.virtuals {
            if v.options.durable {
                durable_kinds.push(v.id.as_str().to_string());
            }
            router.register_kind(v).map_err(Error::Config)?;
        }
        // In a cluster, the declared actors that may fail over wait for the
        // cluster to say which host runs each one.
        let mut tree = self.root;
        let standby = if self.clustered {
            take_failover(&mut tree)
        } else {
            Vec::new()
        };
        register_actors(&router, &tree)?;
        let declared: Vec<ActorId> = tree.actors().iter().map(|a| a.id.clone()).collect();
        let (failed_tx, failed) = watch::channel(None);
        let (root_ctrl, rx) = mpsc::unbounded_channel();
        spawn_supervisor(router.clone(), tree, rx, None, Some(failed_tx));
        // What durable virtual actors left in their logs: activated now
        // (in a cluster, each is rebuilt from the cluster's log when it is
        // placed here instead).
        for kind in durable_kinds.iter().filter(|_| !self.clustered) {
            router.recover_virtual(kind).map_err(Error::Config)?;
        }
        let system = ActorSystem {
            router,
            root: root_ctrl,
            failed,
            trust: self.trust,
            standby,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        for id in declared {
            while system
                .status(id.as_str())
                .is_some_and(|s| s.state == super::ActorState::Starting)
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        Ok(system)
    }
}

/// A running system of component actors.
///
/// Run it on a multi-thread tokio runtime. On a current-thread runtime the
/// actors still share the thread fairly (a busy guest yields at every epoch
/// tick), but tokio polls the `block_on` future itself only between batches of
/// 61 task polls: code awaiting the system there should run in a spawned task.
pub struct ActorSystem {
    router: Arc<Router>,
    root: mpsc::UnboundedSender<Control>,
    failed: watch::Receiver<Option<String>>,
    trust: crate::security::signing::TrustPolicy,
    /// Declared actors that may fail over, not started: the cluster starts
    /// each on the host that claims it ([`SystemBuilder::clustered`]).
    standby: Vec<ActorSpec>,
}

impl std::fmt::Debug for ActorSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorSystem")
            .field("actors", &self.router.cells().len())
            .finish()
    }
}

impl ActorSystem {
    /// A builder with a `OneForOne` root supervisor and no actors.
    pub fn builder() -> SystemBuilder {
        SystemBuilder::default()
    }

    fn host_message(&self, mut msg: Message) -> Message {
        msg.sender = "host".into();
        msg.correlation_id = None;
        if msg.timestamp_ms == 0 {
            msg.timestamp_ms = now_millis();
        }
        if msg.metadata_value("trace-id").is_none() {
            msg.metadata
                .push(("trace-id".into(), self.router.new_trace()));
        }
        msg
    }

    fn refuse(&self, target: &str, msg: Message) -> Result<()> {
        if self.router.is_accepting() {
            return Ok(());
        }
        self.router
            .dead_letter(target, msg, DeadLetterReason::ShuttingDown);
        Err(Error::ShuttingDown)
    }

    /// Queues `msg` in actor `target`'s mailbox (sender `host`). A virtual
    /// actor (`component/key`) is activated if needed. To a durable actor it
    /// returns once the message is in its mailbox log (one fsync, shared by
    /// concurrent sends); to any other once it is queued.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchActor`], [`Error::MailboxFull`], [`Error::Refused`] (the target's
    /// `messaging.accept`), [`Error::ActorStopped`] or [`Error::NotLogged`]; the message
    /// is then a dead letter.
    pub async fn send(&self, target: &str, msg: Message) -> Result<()> {
        let msg = self.host_message(msg);
        if !self.router.is_accepting() {
            return self.refuse(target, msg);
        }
        let ack = self
            .router
            .deliver_acked(target, msg, None, None, None)
            .map_err(|e| e.into_error(target))?;
        match ack {
            None => Ok(()),
            Some(ack) => match ack.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(Error::NotLogged {
                    actor: target.to_string(),
                    reason,
                }),
                Err(_) => Err(Error::NotLogged {
                    actor: target.to_string(),
                    reason: "the storage closed".into(),
                }),
            },
        }
    }

    /// Upgrades every running declared actor declared with a component
    /// named `component` ([`Component::name`](crate::Component::name)) to `new`, one actor at a time, each between two of its
    /// messages: the message in flight finishes on the old instance, the
    /// mailbox is kept, the next message goes to a new instance that has run
    /// `initialize` and says a higher `metadata().version`. An actor whose
    /// new instance fails that keeps its version. For `probation` after, a
    /// crash (a trap, a limit, a failed health check) sends the actor back
    /// to its previous version before its supervisor restarts it. Returns
    /// each actor's new version, or why it kept its own.
    ///
    /// `new` should come from the same [`Engine`](crate::Engine), loaded
    /// (compiled and linked) before the call. Where signatures are required
    /// ([`SystemBuilder::trust`], or the running version was loaded with a
    /// verified signature), `new` must have been loaded with one verified
    /// ([`Engine::load_file_trusted`](crate::Engine::load_file_trusted),
    /// [`Engine::load_signed`](crate::Engine::load_signed)) for the same
    /// name as the running version's.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when no actor runs a component of that name;
    /// [`Error::Signature`] when `new` is not signed as it must be.
    pub async fn upgrade(
        &self,
        component: &str,
        new: crate::Component,
        probation: Duration,
    ) -> Result<Vec<(ActorId, std::result::Result<u32, String>)>> {
        if let Some(running) = self.declared_component(component) {
            self.check_signed(component, &running, &new)?;
        }
        let mut out = Vec::new();
        for cell in self.router.cells() {
            if cell.is_virtual || cell.spec.component.name() != component {
                continue;
            }
            let (ack, answer) = oneshot::channel();
            let sent = cell.control(super::cell::Control::Upgrade {
                component: new.clone(),
                probation,
                ack,
            });
            let result = if sent {
                answer
                    .await
                    .unwrap_or_else(|_| Err(format!("{} stopped", cell.id())))
            } else {
                Err(format!("{} has no running task", cell.id()))
            };
            out.push((cell.id().clone(), result));
        }
        if out.is_empty() {
            return Err(Error::Config(format!(
                "no declared actor runs a component named {component}"
            )));
        }
        Ok(out)
    }

    /// The hosts of the cluster this system joined
    /// ([`Cluster::join`](crate::cluster::Cluster::join)), this one first;
    /// empty when it is on its own.
    pub fn hosts(&self) -> Vec<super::HostStatus> {
        self.router.remote().map(|r| r.hosts()).unwrap_or_default()
    }

    /// The declared actors that may fail over, kept on standby for the
    /// cluster ([`ActorOptions::failover`](super::ActorOptions::failover)).
    pub(crate) fn standby(&self) -> &[ActorSpec] {
        &self.standby
    }

    /// What [`ActorSystem::spawn`] needs, for a task that outlives a borrow.
    pub(crate) fn spawner(&self) -> Spawner {
        Spawner {
            root: self.root.clone(),
            router: self.router.clone(),
        }
    }

    /// The keys upgrades are checked with ([`SystemBuilder::trust`]).
    pub fn trust(&self) -> &crate::security::signing::TrustPolicy {
        &self.trust
    }

    fn check_signed(
        &self,
        component: &str,
        running: &crate::Component,
        new: &crate::Component,
    ) -> Result<()> {
        let refuse = |message: String| Error::Signature {
            path: component.into(),
            message,
        };
        let required = self.trust.is_required() || running.signed().is_some();
        match (new.signed(), running.signed()) {
            (None, _) if required => Err(refuse(
                "refused: an upgrade must be signed with a trusted key, and this version was \
                 not loaded with a verified signature"
                    .into(),
            )),
            (Some(n), Some(r)) if n.name != r.name => Err(refuse(format!(
                "refused: the new version is signed as {}@{}, the running one as {}@{}",
                n.name, n.version, r.name, r.version
            ))),
            _ => Ok(()),
        }
    }

    /// The component declared actors were declared with under `name`, if
    /// any (to load a new version of it into the same engine).
    pub fn declared_component(&self, name: &str) -> Option<crate::Component> {
        self.router
            .cells()
            .into_iter()
            .find(|c| !c.is_virtual && c.spec.component.name() == name)
            .map(|c| c.spec.component.clone())
    }

    /// Sends actor `id` back to its previous version (by hand), between two
    /// of its messages. Returns the version it runs now.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchActor`], or [`Error::Config`] with why not (no previous
    /// version, not running, the previous version failed to start).
    pub async fn rollback(&self, id: &str) -> Result<u32> {
        let cell = self.router.get(id).ok_or_else(|| Error::NoSuchActor {
            actor: id.to_string(),
        })?;
        let (ack, answer) = oneshot::channel();
        let sent = cell.control(super::cell::Control::Rollback { ack });
        if !sent {
            return Err(Error::Config(format!("{id} has no running task")));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(format!("{id} stopped")))
            .map_err(Error::Config)
    }

    /// Sends `msg` to `target` and waits up to `timeout` for the reply (the
    /// target's `handle-message` result).
    ///
    /// # Errors
    ///
    /// As [`ActorSystem::send`], and [`Error::RequestTimeout`] when no reply comes within `timeout`,
    /// or the target's own failure (a trap while handling it).
    pub async fn request(
        &self,
        target: &str,
        msg: Message,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .ask(target, msg, timeout)
            .await?
            .map(|reply| reply.payload))
    }

    /// [`ActorSystem::request`] with the whole reply: the payload and the
    /// content type and metadata the actor gave it with `messaging.set-reply`.
    ///
    /// # Errors
    ///
    /// As [`ActorSystem::request`].
    pub async fn ask(
        &self,
        target: &str,
        msg: Message,
        timeout: Duration,
    ) -> Result<Option<Reply>> {
        let msg = self.host_message(msg);
        if !self.router.is_accepting() {
            self.refuse(target, msg)?;
            return Err(Error::ShuttingDown);
        }
        let (tx, rx) = oneshot::channel();
        self.router
            .deliver(target, msg, Some(ReplyTo::Host(tx)), None)
            .map_err(|e| e.into_error(target))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::ActorStopped {
                actor: target.to_string(),
            }),
            Err(_) => {
                self.router
                    .counters
                    .timeouts
                    .fetch_add(1, Ordering::Relaxed);
                self.router.dead_letter(
                    target,
                    Message::new("host", Vec::new()),
                    DeadLetterReason::RequestTimeout {
                        timeout_ms: timeout.as_millis() as u64,
                    },
                );
                Err(Error::RequestTimeout {
                    actor: target.to_string(),
                    timeout,
                })
            }
        }
    }

    /// Delivers `msg` to every subscriber of `topic`; returns how many got it.
    pub fn publish(&self, topic: &str, msg: Message) -> usize {
        let msg = self.host_message(msg);
        self.router.publish(topic, msg, None) as usize
    }

    /// Adds an actor under the root supervisor while the system runs.
    ///
    /// # Errors
    ///
    /// The id is taken or reserved, or the actor's `initialize` fails.
    pub async fn spawn(&self, spec: ActorSpec) -> Result<()> {
        self.spawner().spawn(spec).await
    }

    /// Lifecycle events from now on (started, crashed, restarted, passivated,
    /// stopped, escalated). A receiver that falls more than 1024 events behind
    /// is told how many it missed.
    pub fn events(&self) -> broadcast::Receiver<SystemEvent> {
        self.router.subscribe_events()
    }

    /// One actor's status (a virtual actor's once it was first addressed).
    pub fn status(&self, id: &str) -> Option<ActorStatus> {
        self.router.get(id).map(|c| c.status())
    }

    /// Every actor's status, sorted by id.
    pub fn actors(&self) -> Vec<ActorStatus> {
        let mut all: Vec<ActorStatus> = self.router.cells().iter().map(|c| c.status()).collect();
        all.sort_by(|a, b| a.metadata.id.cmp(&b.metadata.id));
        all
    }

    /// The most recent dead letters (up to 1024; [`SystemStats::dead_letters`] counts all).
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.router.dead_letters()
    }

    /// One page of the kept dead letters: up to `limit` with
    /// [`DeadLetter::seq`] above `after`, oldest first (pass the last `seq`
    /// of a page to get the next one).
    pub fn dead_letters_page(&self, after: u64, limit: usize) -> Vec<DeadLetter> {
        self.router.dead_letters_page(after, limit)
    }

    pub(crate) fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// The system's counters.
    pub fn stats(&self) -> SystemStats {
        let c = &self.router.counters;
        SystemStats {
            delivered: c.delivered.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            late_replies: c.late_replies.load(Ordering::Relaxed),
            dead_letters: c.dead_letters.load(Ordering::Relaxed),
        }
    }

    /// Waits until the root supervisor fails (its restart intensity was
    /// reached); returns the error that stopped the system.
    pub async fn failed(&self) -> Error {
        let mut rx = self.failed.clone();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return Error::SystemFailed { reason };
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The root's failure, if it failed.
    pub fn failure(&self) -> Option<Error> {
        self.failed
            .borrow()
            .clone()
            .map(|reason| Error::SystemFailed { reason })
    }

    /// Stops gracefully: accepts no new messages from the host, then stops the
    /// tree children before parents (each actor handles what is queued, up to
    /// its shutdown timeout, then `shutdown()` is called), then the virtual
    /// actors. What is still queued becomes dead letters.
    pub async fn shutdown(&self) {
        self.router.stop_accepting();
        let (ack, done) = oneshot::channel();
        if self.root.send(Control::Stop { drain: true, ack }).is_ok() {
            let _ = done.await;
        }
        for cell in self.router.cells() {
            // Durable timers stay in storage for the next system; their
            // in-memory tasks end here.
            for (_, task) in cell
                .durable_timers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain()
            {
                task.abort();
            }
            if !cell.is_virtual {
                continue;
            }
            // Taken, not cloned: once stopped, the closed channel ends the task.
            let ctrl = cell.ctrl.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(ctrl) = ctrl {
                let (ack, done) = oneshot::channel();
                if ctrl.send(Control::Stop { drain: true, ack }).is_ok() {
                    let _ = done.await;
                }
            }
        }
        self.router.resident.close();
    }
}

/// Starts actors under a system's root supervisor ([`ActorSystem::spawn`]).
pub(crate) struct Spawner {
    root: mpsc::UnboundedSender<Control>,
    router: Arc<Router>,
}

impl Spawner {
    pub(crate) async fn spawn(&self, spec: ActorSpec) -> Result<()> {
        let id = spec.id.clone();
        let (ack, done) = oneshot::channel();
        self.root
            .send(Control::Add {
                spec: Box::new(ChildSpec::Actor(Box::new(spec))),
                ack,
            })
            .map_err(|_| Error::ShuttingDown)?;
        done.await.map_err(|_| Error::ShuttingDown)??;
        while self
            .router
            .get(id.as_str())
            .is_some_and(|c| c.status().state == super::ActorState::Starting)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }
}

/// Takes the actors that may fail over out of `tree` (at any depth).
fn take_failover(tree: &mut SupervisorSpec) -> Vec<ActorSpec> {
    let mut out = Vec::new();
    let children = std::mem::take(&mut tree.children);
    for child in children {
        match child {
            ChildSpec::Actor(a) if a.options.failover => out.push(*a),
            ChildSpec::Supervisor(mut s) => {
                out.extend(take_failover(&mut s));
                tree.children.push(ChildSpec::Supervisor(s));
            }
            other => tree.children.push(other),
        }
    }
    out
}
