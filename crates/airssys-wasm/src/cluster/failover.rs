//! Declared actors that may fail over ([`ActorOptions::failover`]): every
//! host that declares one keeps it on standby, and the host that claims its
//! entry in the cluster's `actors` bucket (compare-and-set: create, or update
//! on the revision naming a dead host) starts it. Each standby host checks
//! once a heartbeat; when the running host is dead (or left), the first
//! survivor to claim the entry starts the actor under its root supervisor —
//! a durable one rebuilt from its log in JetStream first. The others route
//! to it.
//!
//! A host cut off from NATS but alive keeps running its copy until it
//! stops: a durable one's writes are refused by its log from the moment a
//! survivor took it over (one writer per actor), a non-durable one may run
//! twice meanwhile.
//!
//! [`ActorOptions::failover`]: crate::actor::ActorOptions::failover

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;

use super::{key_of, Shared};
use crate::actor::remote::HostHealth;
use crate::actor::system::Spawner;
use crate::actor::ActorSpec;

/// This host's declared actors that may fail over.
pub(super) struct Standby {
    pub(super) specs: Vec<ActorSpec>,
    pub(super) spawner: Spawner,
    /// The ones running here.
    pub(super) running: Mutex<HashSet<String>>,
}

impl Standby {
    pub(super) fn running(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        v.sort();
        v
    }
}

/// Whether this host now holds `id`'s entry (claimed it, or held it).
async fn claim(shared: &Shared, kv: &kv::Store, id: &str) -> Result<bool, String> {
    let key = key_of(id);
    let me = shared.host_id.clone();
    let entry = kv.entry(key.clone()).await.map_err(|e| e.to_string())?;
    let live = entry
        .as_ref()
        .filter(|e| e.operation == kv::Operation::Put)
        .map(|e| String::from_utf8_lossy(&e.value).into_owned());
    if let Some(h) = &live {
        if *h != me && shared.health(h) == HostHealth::Alive {
            return Ok(false);
        }
    }
    let claimed = match &entry {
        None => kv
            .create(key, me.into_bytes().into())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Some(e) => kv
            .update(key, me.into_bytes().into(), e.revision)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
    };
    // Lost the race: another host claimed it first.
    Ok(claimed.is_ok())
}

/// Starts what this host claims; called at join and once a heartbeat.
pub(super) async fn take_over(shared: &Shared, kv: &kv::Store, standby: &Standby) {
    for spec in &standby.specs {
        let id = spec.id.as_str();
        if standby
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
        {
            continue;
        }
        match claim(shared, kv, id).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(target: "airssys_wasm::cluster", actor = id, "cannot claim: {e}");
                continue;
            }
        }
        if let (Some(log), Some(storage)) = (&shared.log, spec.context.storage()) {
            if spec.options.durable {
                if let Err(e) = log.hold(storage, id).await {
                    tracing::error!(target: "airssys_wasm::cluster", actor = id, "not started here: {e}");
                    continue;
                }
            }
        }
        match standby.spawner.spawn(spec.clone()).await {
            Ok(()) => {
                standby
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_string());
                shared
                    .directory
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_string(), shared.host_id.clone());
                tracing::info!(target: "airssys_wasm::cluster", actor = id, host = %shared.host_id, "runs here (fail-over)");
            }
            Err(e) => {
                tracing::error!(target: "airssys_wasm::cluster", actor = id, "claimed but did not start: {e}");
            }
        }
    }
}

/// Checks, once a heartbeat, whether a standby actor's host is gone.
pub(super) async fn watch_standby(
    shared: Arc<Shared>,
    kv: kv::Store,
    standby: Arc<Standby>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        take_over(&shared, &kv, &standby).await;
    }
}
