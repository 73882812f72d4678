//! Supervisors, as in Erlang/OTP: a tree whose nodes restart their children
//! per a [`Strategy`], within a restart [`Intensity`], with exponential
//! [`Backoff`] between restarts. Past the intensity a supervisor stops its
//! children and fails, and its parent decides; the root's failure stops the
//! system.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::cell::{spawn_static, ChildExit, Control, Parent};
use super::router::{Cell, Router};
use super::{ActorSpec, RestartPolicy, SystemEvent};
use crate::error::{DisplayDuration, Error, Result};

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
    fn name(&self) -> String {
        match self {
            ChildSpec::Actor(a) => a.id.to_string(),
            ChildSpec::Supervisor(s) => s.name.clone(),
        }
    }

    fn policy(&self) -> RestartPolicy {
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

struct Child {
    name: String,
    ctrl: mpsc::UnboundedSender<Control>,
    policy: RestartPolicy,
    generation: u64,
    /// A temporary child that crashed: never restarted.
    gone: bool,
}

/// Where the root reports its failure.
pub(crate) type RootFailure = watch::Sender<Option<String>>;

/// Starts a supervisor task. Its actors must be registered with the router.
pub(crate) fn spawn_supervisor(
    router: Arc<Router>,
    spec: SupervisorSpec,
    ctrl: mpsc::UnboundedReceiver<Control>,
    parent: Option<Parent>,
    root: Option<RootFailure>,
) {
    let rt = router.runtime().clone();
    rt.spawn(supervise(router, spec, ctrl, parent, root));
}

fn start_child(
    router: &Arc<Router>,
    supervisor: &str,
    spec: ChildSpec,
    parent: Parent,
) -> Result<Child> {
    let (tx, rx) = mpsc::unbounded_channel();
    let child = Child {
        name: spec.name(),
        ctrl: tx,
        policy: spec.policy(),
        generation: 0,
        gone: false,
    };
    match spec {
        ChildSpec::Actor(a) => {
            let cell = match router.get(a.id.as_str()) {
                Some(c) => c,
                None => {
                    let cell = Arc::new(Cell::new(*a, supervisor, false));
                    router.register(cell.clone()).map_err(Error::Config)?;
                    cell
                }
            };
            spawn_static(router.clone(), cell, rx, parent);
        }
        ChildSpec::Supervisor(s) => {
            register_actors(router, &s)?;
            spawn_supervisor(router.clone(), s, rx, Some(parent), None);
        }
    }
    Ok(child)
}

/// Registers every actor of a tree with the router (before any starts, so that
/// messages sent during `initialize` find their targets).
pub(crate) fn register_actors(router: &Router, spec: &SupervisorSpec) -> Result<()> {
    for c in &spec.children {
        match c {
            ChildSpec::Actor(a) => {
                if router.get(a.id.as_str()).is_none() {
                    let cell = Arc::new(Cell::new((**a).clone(), &spec.name, false));
                    router.register(cell).map_err(Error::Config)?;
                }
            }
            ChildSpec::Supervisor(s) => register_actors(router, s)?,
        }
    }
    Ok(())
}

async fn supervise(
    router: Arc<Router>,
    spec: SupervisorSpec,
    mut ctrl: mpsc::UnboundedReceiver<Control>,
    parent: Option<Parent>,
    root: Option<RootFailure>,
) {
    let (exit_tx, mut exits) = mpsc::unbounded_channel::<ChildExit>();
    let name = spec.name.clone();
    let mut children: Vec<Child> = Vec::new();
    for (index, c) in spec.children.iter().cloned().enumerate() {
        let parent = Parent {
            exits: exit_tx.clone(),
            index,
        };
        match start_child(&router, &name, c, parent) {
            Ok(child) => children.push(child),
            Err(e) => tracing::error!(supervisor = %name, "cannot start a child: {e}"),
        }
    }
    let mut generation = 0u64;
    let mut restarts: VecDeque<Instant> = VecDeque::new();
    let mut parked = false;
    loop {
        tokio::select! {
            biased;
            c = ctrl.recv() => match c {
                None => {
                    stop_all(&children, true).await;
                    return;
                }
                Some(Control::Stop { drain, ack }) => {
                    stop_all(&children, drain).await;
                    parked = true;
                    let _ = ack.send(());
                }
                Some(Control::Restart { delay, generation: g }) => {
                    generation = g;
                    restarts.clear();
                    parked = false;
                    for child in children.iter_mut().filter(|c| !c.gone) {
                        child.generation += 1;
                        let _ = child.ctrl.send(Control::Restart { delay, generation: child.generation });
                    }
                }
                Some(Control::Add { spec, ack }) => {
                    let parent = Parent { exits: exit_tx.clone(), index: children.len() };
                    let r = start_child(&router, &name, *spec, parent).map(|c| children.push(c));
                    let _ = ack.send(r);
                }
            },
            Some(exit) = exits.recv() => {
                let Some(child) = children.get_mut(exit.index) else { continue };
                if exit.generation != child.generation || parked || child.gone {
                    continue; // stale: already restarted, or stopping
                }
                let restart = match child.policy {
                    RestartPolicy::Permanent => true,
                    RestartPolicy::Transient => exit.crash.is_some(),
                    RestartPolicy::Temporary => false,
                };
                if !restart {
                    child.gone = true;
                    let (ack, _) = oneshot::channel();
                    let _ = child.ctrl.send(Control::Stop { drain: false, ack });
                    continue;
                }
                let now = Instant::now();
                restarts.push_back(now);
                while restarts.front().is_some_and(|t| now.duration_since(*t) > spec.intensity.within) {
                    restarts.pop_front();
                }
                let n = restarts.len() as u32;
                if n > spec.intensity.max_restarts {
                    let reason = format!(
                        "supervisor {name}: restart intensity reached ({} restarts within {}); last crash: {}",
                        spec.intensity.max_restarts,
                        DisplayDuration(spec.intensity.within),
                        exit.crash.as_deref().unwrap_or("normal exit"),
                    );
                    tracing::error!("{reason}");
                    router.emit(SystemEvent::Escalated { supervisor: name.clone(), reason: reason.clone() });
                    stop_all(&children, false).await;
                    parked = true;
                    match (&parent, &root) {
                        (Some(p), _) => {
                            let _ = p.exits.send(ChildExit { index: p.index, generation, crash: Some(reason) });
                        }
                        (None, Some(root)) => {
                            router.emit(SystemEvent::SystemFailed { reason: reason.clone() });
                            let _ = root.send(Some(reason));
                        }
                        (None, None) => {}
                    }
                    continue;
                }
                let delay = spec.backoff.delay(n);
                let crashed = exit.index;
                let targets: Vec<usize> = match spec.strategy {
                    Strategy::OneForOne => vec![crashed],
                    Strategy::OneForAll => (0..children.len()).collect(),
                    Strategy::RestForOne => (crashed..children.len()).collect(),
                };
                tracing::info!(supervisor = %name, child = %children[crashed].name, ?delay, "restarting");
                for i in targets {
                    let c = &mut children[i];
                    if c.gone {
                        continue;
                    }
                    c.generation += 1;
                    let _ = c.ctrl.send(Control::Restart { delay, generation: c.generation });
                }
            }
        }
    }
}

/// Stops children in reverse start order, each before the next.
async fn stop_all(children: &[Child], drain: bool) {
    for child in children.iter().rev() {
        let (ack, done) = oneshot::channel();
        if child.ctrl.send(Control::Stop { drain, ack }).is_ok() {
            let _ = done.await;
        }
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
