//! Supervisors, as in Erlang/OTP: a tree whose nodes restart their children
//! per a [`Strategy`], within a restart [`Intensity`], with exponential
//! [`Backoff`] between restarts. Past the intensity a supervisor stops its
//! children and fails, and its parent decides; the root's failure stops the
//! system.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::cell::{Cell, ChildExit, Control, Parent};
use super::events::SystemEvent;
use super::router::Router;
use super::spec::{ChildSpec, RestartPolicy, Strategy, SupervisorSpec};
use super::task::spawn_static;
use crate::error::{DisplayDuration, Error, Result};

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
        ctrl: tx.clone(),
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
            *cell.direct.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx.downgrade());
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
                    if a.options.durable {
                        cell.recover_log()?;
                    }
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
                Some(Control::Upgrade { ack, .. } | Control::Rollback { ack }) => {
                    let _ = ack.send(Err(format!("{name} is a supervisor: it runs no component")));
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
