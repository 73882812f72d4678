//! Virtual actors across hosts: exactly one activation cluster-wide. Where
//! `component/key` is activated is an entry of the cluster's `activations`
//! bucket, claimed with compare-and-set (create when absent, update on the
//! revision naming a dead host), so concurrent first messages from every
//! host end on one activation. The host that claims is the one rendezvous
//! hashing picks among the live hosts that run the component (the same pick
//! on every host that sees the same members); a host that receives one from
//! another host claims it itself (no second hop). Messages for an id being
//! placed wait in order and follow it. When a host dies, its virtual actors
//! are claimed by a survivor on their next message. Their in-memory state
//! starts fresh there; a durable one's storage and mailbox are rebuilt
//! from its log in JetStream (`durable`) before its first message there.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use sha2::{Digest, Sha256};

use super::{key_of, AckTx, Shared};
use crate::actor::mailbox::ReplyTo;
use crate::actor::remote::{Forwarded, HostHealth};
use crate::actor::router::Router;
use crate::bindings::{Message, RequestError};
use crate::host::messaging::Undeliverable;
use crate::sandbox::budget::Charge;

impl Shared {
    /// A message for virtual actor `target` (of `component`) that this host
    /// does not hold. With `claim`, this host claims it if unplaced (another
    /// host sent it here to be placed). `ack` (who waits for a durable
    /// target's log write) is taken when the message goes elsewhere or waits
    /// to be placed; left when it comes back `Unknown`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_virtual(
        &self,
        target: &str,
        component: &str,
        msg: Message,
        reply: Option<ReplyTo>,
        charge: &mut Option<Charge>,
        ack: &mut Option<AckTx>,
        claim: bool,
    ) -> Forwarded {
        let Some(router) = self.router.upgrade() else {
            return Forwarded::Unknown(msg, reply);
        };
        let here = router.has_kind(component);
        if !here && self.runners(component).is_empty() {
            return Forwarded::Unknown(msg, reply);
        }
        let mut placing = self.placing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = placing.get_mut(target) {
            q.push((msg, reply, charge.take(), ack.take()));
            return Forwarded::Sent;
        }
        let owner = self
            .activations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
            .cloned();
        match owner {
            // Here, and (a durable one) rebuilt from its log here.
            Some(h) if h == self.host_id && self.ready_here(target) => {
                return Forwarded::Unknown(msg, reply)
            }
            Some(h) if h != self.host_id && self.health(&h) == HostHealth::Alive => {
                drop(placing);
                return self.send_to(&h, target, msg, reply, charge.take(), ack.take());
            }
            _ => {}
        }
        placing.insert(
            target.to_string(),
            vec![(msg, reply, charge.take(), ack.take())],
        );
        if let Some(me) = self.me.upgrade() {
            tokio::spawn(place(
                me,
                target.to_string(),
                component.to_string(),
                claim && here,
            ));
        }
        Forwarded::Sent
    }

    /// Whether a virtual actor this host is named for can run here now: it
    /// is not durable, or its log was rebuilt here.
    pub(super) fn ready_here(&self, target: &str) -> bool {
        use crate::storage::replica::Replica;
        self.log
            .as_ref()
            .is_none_or(|l| !l.covers(target) || l.holds(target))
    }

    /// A delivery another host sent here; `ack` hears when a durable
    /// target's log has it.
    pub(super) fn arrived(
        &self,
        router: &Arc<Router>,
        target: &str,
        msg: Message,
        reply: Option<ReplyTo>,
        mut ack: Option<AckTx>,
    ) -> Result<(), Undeliverable> {
        let r = match target.split_once('/') {
            Some((component, _)) if router.get(target).is_none() => {
                match self.forward_virtual(target, component, msg, reply, &mut None, &mut ack, true)
                {
                    Forwarded::Sent | Forwarded::Acked(_) => return Ok(()),
                    Forwarded::Failed(why, m) => {
                        router.dead_letter(target, m, reason(&why));
                        Err(why)
                    }
                    Forwarded::Unknown(m, r) => router.deliver_here(target, m, r, None),
                }
            }
            _ => router.deliver_here(target, msg, reply, None),
        };
        acknowledge(r, ack)
    }

    /// The live hosts that run virtual component `component` (this one included).
    fn runners(&self, component: &str) -> Vec<String> {
        let with_kind: Vec<String> = {
            let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
            peers
                .iter()
                .filter(|(id, p)| **id != self.host_id && p.kinds.iter().any(|k| k == component))
                .map(|(id, _)| id.clone())
                .collect()
        };
        // `health` takes the peers' lock: not under it.
        let mut v: Vec<String> = with_kind
            .into_iter()
            .filter(|id| self.health(id) == HostHealth::Alive)
            .collect();
        if self.router.upgrade().is_some_and(|r| r.has_kind(component)) {
            v.push(self.host_id.clone());
        }
        v
    }

    /// Rendezvous hashing: the runner whose hash with `id` is highest.
    fn choose(&self, id: &str, component: &str) -> Option<String> {
        self.runners(component).into_iter().max_by_key(|h| {
            let d = Sha256::new()
                .chain_update(id.as_bytes())
                .chain_update([0])
                .chain_update(h.as_bytes())
                .finalize();
            u64::from_be_bytes(d[..8].try_into().unwrap_or_default())
        })
    }
}

/// Tells `ack` (if anyone waits) how a delivery here went: at once, or once
/// the durable target's log write is done. Returns the delivery's failure.
fn acknowledge(
    r: Result<Option<crate::host::messaging::Ack>, Undeliverable>,
    ack: Option<AckTx>,
) -> Result<(), Undeliverable> {
    match (r, ack) {
        (Ok(Some(logged)), Some(tx)) => {
            tokio::spawn(async move {
                let _ = tx.send(
                    logged
                        .await
                        .unwrap_or_else(|_| Err("the storage closed".into())),
                );
            });
            Ok(())
        }
        (Ok(_), Some(tx)) => {
            let _ = tx.send(Ok(()));
            Ok(())
        }
        (Err(why), Some(tx)) => {
            let _ = tx.send(Err(why.to_string()));
            Err(why)
        }
        (r, None) => r.map(|_| ()),
    }
}

fn reason(why: &Undeliverable) -> crate::actor::DeadLetterReason {
    crate::actor::DeadLetterReason::Unavailable {
        reason: why.to_string(),
    }
}

/// Decides where `id` is activated, then lets what waited for it go there.
async fn place(shared: Arc<Shared>, id: String, component: String, claim: bool) {
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        let host = decide(&shared, &id, &component, claim).await?;
        if host == shared.host_id {
            shared.rebuild(&id, &component).await?;
        }
        Ok::<_, String>(host)
    })
    .await
    .unwrap_or_else(|_| Err("the cluster's directory did not answer within 10 s".into()));
    let Some(router) = shared.router.upgrade() else {
        return;
    };
    // Under the lock: a message that arrives meanwhile waits behind these.
    let mut placing = shared.placing.lock().unwrap_or_else(|p| p.into_inner());
    let queued = placing.remove(&id).unwrap_or_default();
    match outcome {
        Ok(host) => {
            shared
                .activations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone(), host.clone());
            for (m, r, charge, ack) in queued {
                if host == shared.host_id {
                    let _ = acknowledge(router.deliver_here(&id, m, r, charge), ack);
                } else if shared.health(&host) != HostHealth::Alive {
                    let why = Undeliverable::Unavailable(format!("its host {host} is down"));
                    if let Some(r) = r {
                        fail(&router, r, &id, &why);
                    }
                    if let Some(tx) = ack {
                        let _ = tx.send(Err(why.to_string()));
                    }
                    router.dead_letter(&id, m, reason(&why));
                } else if let Forwarded::Failed(why, m) =
                    shared.send_to(&host, &id, m, r, charge, ack)
                {
                    router.dead_letter(&id, m, reason(&why));
                }
            }
        }
        Err(e) => {
            let why = Undeliverable::Unavailable(format!("cannot place it: {e}"));
            for (m, r, _charge, ack) in queued {
                if let Some(r) = r {
                    fail(&router, r, &id, &why);
                }
                if let Some(tx) = ack {
                    let _ = tx.send(Err(why.to_string()));
                }
                router.dead_letter(&id, m, reason(&why));
            }
        }
    }
}

fn fail(router: &Arc<Router>, reply: ReplyTo, target: &str, why: &Undeliverable) {
    match reply {
        ReplyTo::Host(tx) => {
            let _ = tx.send(Err(why.clone().into_error(target)));
        }
        ReplyTo::Actor(corr) => {
            router.complete(corr, Err(RequestError::Failed(format!("{target}: {why}"))))
        }
    }
}

/// The host `id` is (or now is) activated on.
async fn decide(shared: &Shared, id: &str, component: &str, claim: bool) -> Result<String, String> {
    let key = key_of(id);
    let me = shared.host_id.clone();
    for _ in 0..8 {
        let entry = shared
            .activations_kv
            .entry(key.clone())
            .await
            .map_err(|e| e.to_string())?;
        let live = entry
            .as_ref()
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| String::from_utf8_lossy(&e.value).into_owned());
        if let Some(h) = &live {
            if *h == me || shared.health(h) == HostHealth::Alive {
                return Ok(h.clone());
            }
        }
        // Unplaced, or its host is down.
        if !claim {
            match shared.choose(id, component) {
                Some(h) if h != me => return Ok(h),
                Some(_) => {}
                None => return Err(format!("no live host runs component {component}")),
            }
        }
        let claimed = match &entry {
            None => shared
                .activations_kv
                .create(key.clone(), me.clone().into_bytes().into())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Some(e) => shared
                .activations_kv
                .update(key.clone(), me.clone().into_bytes().into(), e.revision)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        if claimed.is_ok() {
            tracing::debug!(target: "airssys_wasm::cluster", actor = id, "activated here");
            return Ok(me);
        }
        // Another host claimed it first: read who.
    }
    Err("the claim kept losing to other hosts".into())
}

impl Shared {
    /// A durable virtual actor placed here: its rows rebuilt from the
    /// cluster's log (unless held here already), then what its log holds
    /// queued and its timers armed, before anything new.
    async fn rebuild(&self, id: &str, component: &str) -> Result<(), String> {
        let (Some(log), Some(router)) = (&self.log, self.router.upgrade()) else {
            return Ok(());
        };
        let Some(storage) = router.durable_kind(component) else {
            return Ok(());
        };
        if log.holds(id) {
            return Ok(());
        }
        log.hold(&storage, id).await?;
        router.recover_one(id)?;
        Ok(())
    }
}

/// Keeps this host's view of where virtual actors are activated; a durable
/// one that another host now holds is let go (rebuilt if it comes back).
pub(super) async fn watch_activations(shared: Arc<Shared>, kv: kv::Store) {
    super::watch(kv, "the activations", None, |e| {
        if let (Some(log), Some(id)) = (&shared.log, super::id_of(&e.key)) {
            if e.operation != kv::Operation::Put || *e.value != *shared.host_id.as_bytes() {
                log.release(&id);
            }
        }
        super::apply_owner(&shared.activations, e)
    })
    .await
}
