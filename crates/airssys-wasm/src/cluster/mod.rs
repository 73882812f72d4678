//! Hosts of one system on NATS: [`Cluster::join`] connects an
//! [`ActorSystem`] to a NATS server (JetStream enabled), announces the host
//! with a heartbeat, publishes where its declared actors live, and from then
//! on a message to an id this host does not have goes to the host that has
//! it; topics span the hosts.
//!
//! What each kind of message gets across hosts, stated once:
//!
//! | what | guarantee |
//! |---|---|
//! | `send` to an actor on another host | at most once: handed to NATS in order per pair of hosts; lost if the link or the host fails in between. A send to a host that is down is a dead letter (`unavailable`) on the sender's host |
//! | `request` | the reply, or `timeout`, or `unavailable` (the host is down or the link failed): never silence past the timeout |
//! | `publish` | at most once per subscriber on each other host |
//! | `send` to a durable virtual actor | acknowledged once its JetStream log has it; exactly once in effect, across the loss of its host; a retry with the same `message-id` is taken once (see `durable`) |
//! | a durable virtual actor's writes | in its JetStream log before they are applied or acknowledged; rebuilt from it on the host it moves to |
//!
//! The trust boundary: guests trust nobody; hosts of one cluster trust each
//! other (a frame is bounds-checked, its sender id believed): the sender id
//! on a message is set by the sending host. NATS credentials come from a
//! file ([`ClusterOptions::token_file`]), never from a command line.
//!
//! Failure detection: every host puts its heartbeat in a JetStream key-value
//! bucket every [`ClusterOptions::heartbeat`]; a host whose heartbeat has not
//! reached this one for [`ClusterOptions::dead_after`] (default 3 s) is dead
//! until it heartbeats again. Declared actors are pinned to their host, or
//! (`ActorOptions::failover`) started by a survivor when it dies (see
//! `failover`).

mod durable;
mod failover;
mod placement;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use crate::actor::mailbox::ReplyTo;
use crate::actor::remote::{Forwarded, HostHealth, HostStatus, Remote};
use crate::actor::router::Router;
use crate::actor::ActorSystem;
use crate::bindings::{Message, Reply, RequestError};
use crate::error::{Error, Result};
use crate::host::messaging::Undeliverable;
use crate::sandbox::budget::Charge;
use wire::{Answer, Failure};

/// How a host joins a cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The NATS server, e.g. `nats://127.0.0.1:4222` (JetStream enabled).
    pub url: String,
    /// This host's id (letters, digits, `-`, `_`; unique in the cluster).
    pub host_id: String,
    /// The cluster's name: hosts with the same name form one cluster on one
    /// NATS server (default `default`).
    pub name: String,
    /// How often this host heartbeats (default 1 s).
    pub heartbeat: Duration,
    /// A host silent this long is dead (default 3 s; at least 2 heartbeats).
    pub dead_after: Duration,
    /// A file holding the NATS token, if the server wants one.
    pub token_file: Option<std::path::PathBuf>,
    /// Copies JetStream keeps of the durable virtual actors' log (default 1;
    /// 3 on a NATS cluster of 3 survives the loss of a NATS server too).
    pub replicas: usize,
}

impl ClusterOptions {
    /// Options for `url`, with `host_id`, and the defaults.
    pub fn new(url: impl Into<String>, host_id: impl Into<String>) -> Self {
        ClusterOptions {
            url: url.into(),
            host_id: host_id.into(),
            name: "default".into(),
            heartbeat: Duration::from_secs(1),
            dead_after: Duration::from_secs(3),
            token_file: None,
            replicas: 1,
        }
    }

    fn check(&self) -> Result<()> {
        let token_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !token_ok(&self.host_id) {
            return Err(Error::Config(format!(
                "cluster host id {:?}: 1 to 64 letters, digits, '-' or '_'",
                self.host_id
            )));
        }
        if !token_ok(&self.name) {
            return Err(Error::Config(format!(
                "cluster name {:?}: 1 to 64 letters, digits, '-' or '_'",
                self.name
            )));
        }
        if self.heartbeat.is_zero() || self.dead_after < self.heartbeat * 2 {
            return Err(Error::Config(format!(
                "cluster: dead-after ({:?}) must be at least two heartbeats ({:?} each)",
                self.dead_after, self.heartbeat
            )));
        }
        Ok(())
    }
}

/// The longest an embedder's remote `ask` is waited for by the link (its own
/// timeout usually ends it first).
const MAX_REMOTE_WAIT: Duration = Duration::from_secs(300);

/// A message waiting for its virtual target to be placed, its reply's way,
/// its sender's charge (held while it waits), and who waits for its
/// acknowledgement (a durable target's log write).
type Waiting = (Message, Option<ReplyTo>, Option<Charge>, Option<AckTx>);

/// Where the acknowledgement of a message to a durable actor goes.
type AckTx = oneshot::Sender<std::result::Result<(), String>>;

/// The longest a send to a durable actor on another host waits for its
/// acknowledgement (its log write there).
const ACK_WAIT: Duration = Duration::from_secs(10);

/// What goes out to NATS, in order: the subject, where the answer goes, the
/// bytes, and the sending guest's charge, released once it is sent.
struct Frame {
    subject: String,
    reply: Option<String>,
    payload: Vec<u8>,
    _charge: Option<Charge>,
}

impl Frame {
    fn new(subject: String, reply: Option<String>, payload: Vec<u8>) -> Frame {
        Frame {
            subject,
            reply,
            payload,
            _charge: None,
        }
    }
}

/// What one host knows of another.
struct Peer {
    last_seen: Instant,
    left: bool,
    /// The virtual components it runs (from its heartbeat).
    kinds: Vec<String>,
}

struct Shared {
    host_id: String,
    prefix: String,
    dead_after: Duration,
    router: Weak<Router>,
    client: async_nats::Client,
    /// Ordered outbound frames.
    out: mpsc::UnboundedSender<Frame>,
    peers: Mutex<HashMap<String, Peer>>,
    /// Where each declared actor of the cluster lives.
    directory: Mutex<HashMap<String, String>>,
    /// Requests this host sent and awaits, by id.
    waiting: Mutex<HashMap<u64, Waiter>>,
    next: AtomicU64,
    /// Where each virtual actor of the cluster is activated (see `placement`).
    activations_kv: kv::Store,
    activations: Mutex<HashMap<String, String>>,
    /// Messages for virtual actors being placed, in order, by id.
    placing: Mutex<HashMap<String, Vec<Waiting>>>,
    /// The log of the durable virtual actors (when this host runs some).
    log: Option<Arc<durable::Log>>,
    /// Per other host: frames sent to it, messages refused as unavailable.
    links: Mutex<HashMap<String, (u64, u64)>>,
    /// This host's own last heartbeat tick, and when it last resumed from a
    /// pause (frozen, starved): see [`Shared::health`].
    ticks: Mutex<(Instant, Instant)>,
    me: Weak<Shared>,
}

enum Waiter {
    Host {
        target: String,
        tx: oneshot::Sender<Result<Option<Reply>>>,
        deadline: Instant,
    },
    Actor {
        target: String,
        corr: u64,
        deadline: Instant,
    },
    /// A send to a durable actor, waiting for its log write on its host.
    Ack {
        target: String,
        tx: AckTx,
        deadline: Instant,
    },
}

impl Waiter {
    fn deadline(&self) -> Instant {
        match self {
            Waiter::Host { deadline, .. }
            | Waiter::Actor { deadline, .. }
            | Waiter::Ack { deadline, .. } => *deadline,
        }
    }

    fn target(&self) -> &str {
        match self {
            Waiter::Host { target, .. }
            | Waiter::Actor { target, .. }
            | Waiter::Ack { target, .. } => target,
        }
    }

    /// Whoever waited is gone.
    fn abandoned(&self) -> bool {
        match self {
            Waiter::Host { tx, .. } => tx.is_closed(),
            Waiter::Ack { tx, .. } => tx.is_closed(),
            Waiter::Actor { .. } => false,
        }
    }
}

/// A host's membership in a cluster: dropping it does not leave; call
/// [`Cluster::leave`].
pub struct Cluster {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    hosts_kv: kv::Store,
    actors_kv: kv::Store,
    actors: Vec<String>,
    standby: Arc<failover::Standby>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("host", &self.shared.host_id)
            .field("prefix", &self.shared.prefix)
            .finish()
    }
}

fn nats_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("cluster: {what}: {e}"))
}

/// A KV key for an actor id (ids may hold characters keys may not).
fn key_of(id: &str) -> String {
    crate::units::hex(id.as_bytes())
}

fn id_of(key: &str) -> Option<String> {
    let b = key.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let bytes = b
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

impl Cluster {
    /// Joins `system` to the cluster `options` names: connects, creates the
    /// cluster's buckets if they are missing, announces this host and its
    /// declared actors, and starts the heartbeat, the watchers and the
    /// delivery of what other hosts send here. Returns once this host is
    /// announced. When `system` runs durable virtual actors, their writes go
    /// to the cluster's JetStream log from now on: build it with
    /// [`SystemBuilder::clustered`](crate::SystemBuilder::clustered) so that
    /// it does not run them from its local data directory before it joins.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for bad options, a token file that cannot be read,
    /// a server that cannot be reached or has no JetStream, or an actor id
    /// another live host already declared.
    pub async fn join(system: &ActorSystem, options: ClusterOptions) -> Result<Cluster> {
        options.check()?;
        let mut connect = async_nats::ConnectOptions::new()
            .name(format!("airssys-wasm {}", options.host_id))
            .retry_on_initial_connect()
            .max_reconnects(None);
        if let Some(f) = &options.token_file {
            let token = std::fs::read_to_string(f).map_err(|source| Error::Io {
                path: f.clone(),
                source,
            })?;
            connect = connect.token(token.trim().to_string());
        }
        let client = tokio::time::timeout(Duration::from_secs(10), connect.connect(&options.url))
            .await
            .map_err(|_| nats_err(&options.url, "no answer within 10 s"))?
            .map_err(|e| nats_err(&options.url, e))?;
        let js = async_nats::jetstream::new(client.clone());
        // A bucket is a stream as JetStream's key-value layer lays it out;
        // made here directly because the client's own `create_key_value`
        // first reads account details nats-server 2.9 words differently.
        let open = |suffix: &str, max_age: Duration| {
            let js = js.clone();
            let bucket = format!("airssys-{}-{suffix}", options.name);
            async move {
                use async_nats::jetstream::stream;
                let cfg = stream::Config {
                    name: format!("KV_{bucket}"),
                    subjects: vec![format!("$KV.{bucket}.>")],
                    max_messages_per_subject: 1,
                    max_age,
                    storage: stream::StorageType::File,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: stream::DiscardPolicy::New,
                    num_replicas: 1,
                    ..Default::default()
                };
                if let Err(created) = js.get_or_create_stream(cfg).await {
                    return Err(nats_err(&format!("bucket {bucket}"), created));
                }
                js.get_key_value(bucket.clone())
                    .await
                    .map_err(|e| nats_err(&format!("bucket {bucket}"), e))
            }
        };
        // A heartbeat older than a minute is gone from the bucket by itself.
        let hosts_kv = open("hosts", Duration::from_secs(60)).await?;
        let actors_kv = open("actors", Duration::ZERO).await?;
        let activations_kv = open("activations", Duration::ZERO).await?;
        let router = system.router().clone();
        // Durable virtual actors: their writes go to the cluster's log first.
        // So do durable declared actors that may fail over.
        let mut durable = router.durable_kinds();
        let kinds: Vec<String> = durable.iter().map(|(k, _)| k.clone()).collect();
        let mut movable = Vec::new();
        for spec in system.standby().iter().filter(|s| s.options.durable) {
            if let Some(storage) = spec.context.storage() {
                movable.push(spec.id.as_str().to_string());
                durable.push((spec.id.as_str().to_string(), storage.clone()));
            }
        }
        let log = if durable.is_empty() {
            None
        } else {
            let log = durable::Log::open(
                js.clone(),
                &options.name,
                options.replicas,
                kinds,
                movable,
                Arc::downgrade(&router),
                &options.host_id,
            )
            .await
            .map_err(|e| nats_err("the durable actors' log", e))?;
            let log = Arc::new(log);
            let mut kept: Vec<crate::storage::Storage> = Vec::new();
            for (kind, storage) in &durable {
                // One storage is usually shared by all of them.
                if kept.iter().any(|k| k.same(storage)) {
                    continue;
                }
                kept.push(storage.clone());
                if !storage.set_replica(log.clone()) {
                    return Err(Error::Config(format!(
                        "cluster: the storage of durable component {kind} is kept by another \
                         cluster already"
                    )));
                }
            }
            Some(log)
        };
        let prefix = format!("airssys.{}", options.name);
        let (out, out_rx) = mpsc::unbounded_channel();
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            log,
            links: Mutex::default(),
            ticks: Mutex::new((Instant::now(), Instant::now())),
            activations_kv: activations_kv.clone(),
            activations: Mutex::default(),
            placing: Mutex::default(),
            host_id: options.host_id.clone(),
            prefix: prefix.clone(),
            dead_after: options.dead_after,
            router: Arc::downgrade(&router),
            client: client.clone(),
            out,
            peers: Mutex::default(),
            directory: Mutex::default(),
            waiting: Mutex::default(),
            next: AtomicU64::new(1),
        });
        // What is already known, before anything is announced: a live host
        // holding one of our ids is refused, not overwritten.
        let mut tasks = Vec::new();
        let (hosts_ready, hosts_seen) = oneshot::channel();
        tasks.push(tokio::spawn(watch_hosts(
            shared.clone(),
            hosts_kv.clone(),
            hosts_ready,
        )));
        let (actors_ready, actors_seen) = oneshot::channel();
        tasks.push(tokio::spawn(watch_actors(
            shared.clone(),
            actors_kv.clone(),
            actors_ready,
        )));
        tasks.push(tokio::spawn(placement::watch_activations(
            shared.clone(),
            activations_kv,
        )));
        let _ = tokio::time::timeout(Duration::from_secs(10), hosts_seen).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), actors_seen).await;
        let actors: Vec<String> = system
            .actors()
            .into_iter()
            .map(|a| a.metadata.id.as_str().to_string())
            .filter(|id| !id.contains('/'))
            .collect();
        for id in &actors {
            let owner = shared
                .directory
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(id)
                .cloned();
            if let Some(owner) = owner {
                if owner != shared.host_id && shared.health(&owner) == HostHealth::Alive {
                    for t in &tasks {
                        t.abort();
                    }
                    return Err(Error::Config(format!(
                        "cluster {}: actor {id} is declared by host {owner}, which is alive",
                        options.name
                    )));
                }
            }
        }
        // Deliveries to this host, and the replies to what it asked.
        let inbox = client
            .subscribe(format!("{prefix}.host.{}", options.host_id))
            .await
            .map_err(|e| nats_err("subscribe", e))?;
        tasks.push(tokio::spawn(serve_inbox(shared.clone(), inbox)));
        let replies = client
            .subscribe(format!("{prefix}.reply.{}.*", options.host_id))
            .await
            .map_err(|e| nats_err("subscribe", e))?;
        tasks.push(tokio::spawn(serve_replies(shared.clone(), replies)));
        let topics = client
            .subscribe(format!("{prefix}.topic"))
            .await
            .map_err(|e| nats_err("subscribe", e))?;
        tasks.push(tokio::spawn(serve_topics(shared.clone(), topics)));
        tasks.push(tokio::spawn(send_out(client.clone(), out_rx)));
        tasks.push(tokio::spawn(sweep(shared.clone())));
        for id in &actors {
            actors_kv
                .put(key_of(id), options.host_id.clone().into_bytes().into())
                .await
                .map_err(|e| nats_err("announce an actor", e))?;
            shared
                .directory
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone(), options.host_id.clone());
        }
        let beat = serde_json::to_vec(&Beat {
            kinds: router.kind_names(),
        })
        .unwrap_or_default();
        hosts_kv
            .put(&options.host_id, beat.clone().into())
            .await
            .map_err(|e| nats_err("heartbeat", e))?;
        client.flush().await.map_err(|e| nats_err("flush", e))?;
        tasks.push(tokio::spawn(notice_pauses(
            shared.clone(),
            options.heartbeat,
        )));
        tasks.push(tokio::spawn(heartbeat(
            hosts_kv.clone(),
            options.host_id.clone(),
            options.heartbeat,
            beat,
        )));
        router.set_remote(shared.clone());
        // Declared actors that may fail over: started here if this host
        // claims them, else watched for their host's death.
        let standby = Arc::new(failover::Standby {
            specs: system.standby().to_vec(),
            spawner: system.spawner(),
            running: Mutex::default(),
        });
        if !standby.specs.is_empty() {
            failover::take_over(&shared, &actors_kv, &standby).await;
            tasks.push(tokio::spawn(failover::watch_standby(
                shared.clone(),
                actors_kv.clone(),
                standby.clone(),
                options.heartbeat,
            )));
        }
        tracing::info!(
            target: "airssys_wasm::cluster",
            host = %options.host_id,
            cluster = %options.name,
            actors = actors.len(),
            "joined the cluster at {}", options.url
        );
        Ok(Cluster {
            shared,
            tasks,
            hosts_kv,
            actors_kv,
            actors,
            standby,
        })
    }

    /// This host's id.
    pub fn host_id(&self) -> &str {
        &self.shared.host_id
    }

    /// The hosts of the cluster as this host sees them, this one first.
    pub fn hosts(&self) -> Vec<HostStatus> {
        self.shared.hosts()
    }

    /// Stops this host's part in the cluster without a goodbye, as a crash
    /// would: the heartbeat, the watchers and the deliveries stop, nothing
    /// is removed, and the other hosts see it dead after their `dead-after`
    /// (a fail-over drill; the benchmark measures fail-over with it).
    pub fn abandon(self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Leaves the cluster: the heartbeat stops, this host's entry and its
    /// actors' entries are removed (the others see it `left` at once, not
    /// `dead` after the timeout), and nothing more is delivered here.
    pub async fn leave(self) {
        for t in &self.tasks {
            t.abort();
        }
        for id in self.actors.iter().chain(&self.standby.running()) {
            let _ = self.actors_kv.delete(key_of(id)).await;
        }
        let _ = self.hosts_kv.delete(&self.shared.host_id).await;
        let _ = self.shared.client.flush().await;
    }
}

impl Shared {
    fn health(&self, host: &str) -> HostHealth {
        if host == self.host_id {
            return HostHealth::Alive;
        }
        // A host that was paused itself (SIGSTOP, a starved runtime) has
        // not heard anyone meanwhile: it judges nobody dead until its own
        // heartbeat runs again, and then gives each a fresh `dead-after`.
        let (tick, resumed) = *self.ticks.lock().unwrap_or_else(|p| p.into_inner());
        let paused = tick.elapsed() > self.dead_after / 2;
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        match peers.get(host) {
            Some(p) if p.left => HostHealth::Left,
            Some(_) if paused => HostHealth::Alive,
            Some(p) if p.last_seen.max(resumed).elapsed() < self.dead_after => HostHealth::Alive,
            _ => HostHealth::Dead,
        }
    }

    fn hosts(&self) -> Vec<HostStatus> {
        let directory = self
            .directory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let actors_of = |h: &str| {
            let mut v: Vec<String> = directory
                .iter()
                .filter(|(_, owner)| owner.as_str() == h)
                .map(|(id, _)| id.clone())
                .collect();
            v.sort();
            v
        };
        let mut out = vec![HostStatus {
            id: self.host_id.clone(),
            health: HostHealth::Alive,
            last_seen_ms: 0,
            actors: actors_of(&self.host_id),
            this: true,
            frames_sent: 0,
            unavailable: 0,
        }];
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut peers: Vec<(String, u64)> = self
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(id, _)| **id != self.host_id)
            .map(|(id, p)| (id.clone(), p.last_seen.elapsed().as_millis() as u64))
            .collect();
        peers.sort();
        for (id, ms) in peers {
            let (frames_sent, unavailable) = links.get(&id).copied().unwrap_or_default();
            out.push(HostStatus {
                health: self.health(&id),
                last_seen_ms: ms,
                actors: actors_of(&id),
                this: false,
                frames_sent,
                unavailable,
                id,
            });
        }
        out
    }

    /// Sends `msg` for `target` to `host` (with where its reply goes, or
    /// who waits for its acknowledgement).
    fn send_to(
        &self,
        host: &str,
        target: &str,
        msg: Message,
        reply: Option<ReplyTo>,
        charge: Option<Charge>,
        ack: Option<AckTx>,
    ) -> Forwarded {
        match self.health(host) {
            HostHealth::Alive => {}
            h => {
                let why = Undeliverable::Unavailable(format!(
                    "its host {host} is {}",
                    if h == HostHealth::Left {
                        "gone (left the cluster)"
                    } else {
                        "down (no heartbeat)"
                    }
                ));
                // The caller answers the sender (and drops `reply`).
                drop(reply);
                self.count(host, 0, 1);
                return Forwarded::Failed(why, msg);
            }
        }
        let now = Instant::now();
        // A timeout of 0 with a reply subject: an acknowledged send.
        let (timeout_ms, reply_to) = match reply {
            None => match ack {
                None => (0, None),
                Some(tx) => {
                    let subject = self.wait(Waiter::Ack {
                        target: target.to_string(),
                        tx,
                        deadline: now + ACK_WAIT,
                    });
                    (0, Some(subject))
                }
            },
            Some(ReplyTo::Host(tx)) => {
                let subject = self.wait(Waiter::Host {
                    target: target.to_string(),
                    tx,
                    deadline: now + MAX_REMOTE_WAIT,
                });
                (MAX_REMOTE_WAIT.as_millis() as u64, Some(subject))
            }
            Some(ReplyTo::Actor(corr)) => {
                let timeout = self
                    .router
                    .upgrade()
                    .and_then(|r| r.pending_timeout(corr))
                    .unwrap_or(Duration::from_secs(30));
                let subject = self.wait(Waiter::Actor {
                    target: target.to_string(),
                    corr,
                    deadline: now + timeout + Duration::from_secs(1),
                });
                ((timeout.as_millis() as u64).max(1), Some(subject))
            }
        };
        let frame = wire::delivery(target, timeout_ms, &msg);
        if self
            .out
            .send(Frame {
                subject: self.subject_of(host),
                reply: reply_to,
                payload: frame,
                _charge: charge,
            })
            .is_err()
        {
            return Forwarded::Failed(
                Undeliverable::Unavailable("this host's cluster link is closed".into()),
                msg,
            );
        }
        self.count(host, 1, 0);
        Forwarded::Sent
    }

    /// Counts on the link to `host`.
    fn count(&self, host: &str, sent: u64, unavailable: u64) {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let l = match links.get_mut(host) {
            Some(l) => l,
            None => links.entry(host.to_string()).or_default(),
        };
        l.0 += sent;
        l.1 += unavailable;
    }

    fn subject_of(&self, host: &str) -> String {
        format!("{}.host.{host}", self.prefix)
    }

    fn wait(&self, w: Waiter) -> String {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, w);
        format!("{}.reply.{}.{id}", self.prefix, self.host_id)
    }
}

impl Remote for Shared {
    fn forward(
        &self,
        target: &str,
        msg: Message,
        reply: Option<ReplyTo>,
        charge: &mut Option<Charge>,
    ) -> Forwarded {
        if let Some((component, _)) = target.split_once('/') {
            // To a durable actor, a send is acknowledged once its log has it.
            let durable = reply.is_none()
                && self
                    .router
                    .upgrade()
                    .is_some_and(|r| r.durable_kind(component).is_some());
            if !durable {
                return self
                    .forward_virtual(target, component, msg, reply, charge, &mut None, false);
            }
            let (tx, rx) = oneshot::channel();
            let mut ack = Some(tx);
            return match self
                .forward_virtual(target, component, msg, reply, charge, &mut ack, false)
            {
                Forwarded::Sent if ack.is_none() => Forwarded::Acked(rx),
                other => other,
            };
        }
        let host = self
            .directory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
            .cloned();
        match host.filter(|h| *h != self.host_id) {
            Some(host) => self.send_to(&host, target, msg, reply, charge.take(), None),
            None => Forwarded::Unknown(msg, reply),
        }
    }

    fn publish(&self, topic: &str, msg: &Message) {
        let frame = wire::delivery(topic, 0, msg);
        let mut m = Vec::with_capacity(frame.len() + self.host_id.len() + 1);
        m.push(self.host_id.len() as u8);
        m.extend_from_slice(self.host_id.as_bytes());
        m.extend_from_slice(&frame);
        let _ = self
            .out
            .send(Frame::new(format!("{}.topic", self.prefix), None, m));
    }

    fn hosts(&self) -> Vec<HostStatus> {
        Shared::hosts(self)
    }
}

async fn send_out(client: async_nats::Client, mut rx: mpsc::UnboundedReceiver<Frame>) {
    while let Some(Frame {
        subject,
        reply,
        payload,
        _charge,
    }) = rx.recv().await
    {
        let r = match reply {
            Some(reply) => {
                client
                    .publish_with_reply(subject, reply, payload.into())
                    .await
            }
            None => client.publish(subject, payload.into()).await,
        };
        if let Err(e) = r {
            tracing::warn!(target: "airssys_wasm::cluster", "a frame was not sent: {e}");
        }
    }
}

/// What a heartbeat carries.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Beat {
    /// The virtual components the host runs.
    kinds: Vec<String>,
}

async fn heartbeat(kv: kv::Store, host: String, every: Duration, beat: Vec<u8>) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Err(e) = kv.put(&host, beat.clone().into()).await {
            tracing::warn!(target: "airssys_wasm::cluster", host = %host, "heartbeat not written: {e}");
        }
    }
}

/// Keeps [`Shared::ticks`]: a tick that comes more than half a `dead-after`
/// late means this host was paused (frozen, starved), not that the others
/// went quiet. No I/O here, so a slow NATS is not taken for a pause.
async fn notice_pauses(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    shared.ticks.lock().unwrap_or_else(|p| p.into_inner()).0 = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        let mut t = shared.ticks.lock().unwrap_or_else(|p| p.into_inner());
        let gap = now.duration_since(t.0);
        if gap > shared.dead_after / 2 {
            tracing::warn!(target: "airssys_wasm::cluster", host = %shared.host_id, "this host was paused for {gap:?}: the others get a fresh dead-after");
            t.1 = now;
        }
        t.0 = now;
    }
}

/// Follows bucket `kv` from its current values on: `on` sees every entry; a
/// watch that ends (the server restarted, the link broke) is made again.
/// `ready` is told once `on` has seen the bucket's current values (not
/// merely once the watch is open: a host that joins must know who is alive
/// before it claims anything).
pub(super) async fn watch(
    kv: kv::Store,
    what: &'static str,
    mut ready: Option<oneshot::Sender<()>>,
    mut on: impl FnMut(kv::Entry),
) {
    loop {
        match kv.watch_with_history(">").await {
            Ok(mut w) => {
                if ready.is_some() {
                    // An empty bucket delivers nothing: ready at once.
                    let mut stream = kv.stream.clone();
                    let empty = stream.info().await.map_or(true, |i| i.state.messages == 0);
                    if empty {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                }
                while let Some(e) = w.next().await {
                    let Ok(e) = e else { break };
                    let current = e.seen_current;
                    on(e);
                    if current {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(target: "airssys_wasm::cluster", "cannot watch {what}: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An entry of a bucket that maps an actor id to the host it lives on.
pub(super) fn apply_owner(map: &Mutex<HashMap<String, String>>, e: kv::Entry) {
    let Some(id) = id_of(&e.key) else { return };
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    match e.operation {
        kv::Operation::Put => {
            map.insert(id, String::from_utf8_lossy(&e.value).into_owned());
        }
        _ => {
            map.remove(&id);
        }
    }
}

async fn watch_hosts(shared: Arc<Shared>, kv: kv::Store, ready: oneshot::Sender<()>) {
    watch(kv, "the hosts", Some(ready), |e| {
        let left = !matches!(e.operation, kv::Operation::Put);
        let kinds = serde_json::from_slice::<Beat>(&e.value)
            .map(|b| b.kinds)
            .unwrap_or_default();
        let peer = Peer {
            last_seen: Instant::now(),
            left,
            kinds,
        };
        let was = shared
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(e.key.clone(), peer);
        if e.key != shared.host_id {
            if left {
                tracing::info!(target: "airssys_wasm::cluster", host = %e.key, "a host left the cluster");
            } else if was.is_none_or(|p| p.left) {
                tracing::info!(target: "airssys_wasm::cluster", host = %e.key, "a host joined the cluster");
            }
        }
    })
    .await
}

async fn watch_actors(shared: Arc<Shared>, kv: kv::Store, ready: oneshot::Sender<()>) {
    watch(kv, "the directory", Some(ready), |e| {
        apply_owner(&shared.directory, e)
    })
    .await
}

/// Delivers what other hosts send to actors here; answers requests.
async fn serve_inbox(shared: Arc<Shared>, mut inbox: async_nats::Subscriber) {
    while let Some(m) = inbox.next().await {
        let Some(router) = shared.router.upgrade() else {
            return;
        };
        let Some(d) = wire::read_delivery(&m.payload) else {
            tracing::warn!(target: "airssys_wasm::cluster", subject = %m.subject, "a malformed frame was dropped");
            continue;
        };
        match m.reply {
            None => {
                // A failure is this host's dead letter (at most once).
                let _ = shared.arrived(&router, &d.target, d.msg, None, None);
            }
            // A send to a durable actor: answered once its log has it.
            Some(reply) if d.timeout_ms == 0 => {
                let (tx, rx) = oneshot::channel();
                let _ = shared.arrived(&router, &d.target, d.msg, None, Some(tx));
                let shared = shared.clone();
                tokio::spawn(async move {
                    let answer = match tokio::time::timeout(ACK_WAIT, rx).await {
                        Ok(Ok(Ok(()))) => Answer::Reply(None),
                        Ok(Ok(Err(why))) => Answer::Failed(Failure::Failed(why)),
                        Ok(Err(_)) => Answer::Failed(Failure::Stopped),
                        Err(_) => Answer::Failed(Failure::Timeout),
                    };
                    let _ =
                        shared
                            .out
                            .send(Frame::new(reply.to_string(), None, wire::answer(&answer)));
                });
            }
            Some(reply) => {
                let (tx, rx) = oneshot::channel();
                let answer = match shared.arrived(
                    &router,
                    &d.target,
                    d.msg,
                    Some(ReplyTo::Host(tx)),
                    None,
                ) {
                    Err(why) => Some(failure_of(why)),
                    Ok(()) => None,
                };
                let shared = shared.clone();
                let timeout = Duration::from_millis(d.timeout_ms.max(1));
                tokio::spawn(async move {
                    let answer = match answer {
                        Some(a) => a,
                        None => match tokio::time::timeout(timeout, rx).await {
                            Ok(Ok(Ok(r))) => Answer::Reply(r),
                            Ok(Ok(Err(e))) => Answer::Failed(failure_of_error(e)),
                            Ok(Err(_)) => Answer::Failed(Failure::Stopped),
                            Err(_) => Answer::Failed(Failure::Timeout),
                        },
                    };
                    let _ =
                        shared
                            .out
                            .send(Frame::new(reply.to_string(), None, wire::answer(&answer)));
                });
            }
        }
    }
}

fn failure_of(why: Undeliverable) -> Answer {
    Answer::Failed(match why {
        Undeliverable::NoSuchActor => Failure::NoSuchActor,
        Undeliverable::MailboxFull(c) => Failure::MailboxFull(c as u64),
        Undeliverable::Refused(r) => Failure::Refused(r),
        Undeliverable::Stopped => Failure::Stopped,
        other => Failure::Unavailable(other.to_string()),
    })
}

fn failure_of_error(e: Error) -> Failure {
    match e {
        Error::NoSuchActor { .. } => Failure::NoSuchActor,
        Error::MailboxFull { capacity, .. } => Failure::MailboxFull(capacity as u64),
        Error::Refused { rule, .. } => Failure::Refused(rule),
        Error::ActorStopped { .. } => Failure::Stopped,
        Error::RequestTimeout { .. } => Failure::Timeout,
        Error::Unavailable { reason, .. } => Failure::Unavailable(reason),
        other => Failure::Failed(other.to_string()),
    }
}

/// Answers from other hosts to this host's requests.
async fn serve_replies(shared: Arc<Shared>, mut replies: async_nats::Subscriber) {
    while let Some(m) = replies.next().await {
        let Some(id) = m
            .subject
            .rsplit('.')
            .next()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let Some(w) = shared
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
        else {
            continue;
        };
        let answer = wire::read_answer(&m.payload).unwrap_or(Answer::Failed(Failure::Unavailable(
            "a malformed answer".into(),
        )));
        resolve(&shared.router, w, answer);
    }
}

fn resolve(router: &Weak<Router>, w: Waiter, answer: Answer) {
    match w {
        Waiter::Host { target, tx, .. } => {
            let actor = target.clone();
            let r = match answer {
                Answer::Reply(r) => Ok(r),
                Answer::Failed(f) => Err(match f {
                    Failure::NoSuchActor => Error::NoSuchActor { actor },
                    Failure::MailboxFull(c) => Error::MailboxFull {
                        actor,
                        capacity: c as usize,
                    },
                    Failure::Refused(rule) => Error::Refused { actor, rule },
                    Failure::Stopped => Error::ActorStopped { actor },
                    Failure::Timeout => Error::RequestTimeout {
                        actor,
                        timeout: MAX_REMOTE_WAIT,
                    },
                    Failure::Failed(message) => Error::Runtime {
                        component: actor,
                        message,
                    },
                    Failure::Unavailable(reason) => Error::Unavailable { actor, reason },
                }),
            };
            let _ = tx.send(r);
        }
        Waiter::Ack { target, tx, .. } => {
            let _ = tx.send(match answer {
                Answer::Reply(_) => Ok(()),
                Answer::Failed(Failure::Timeout) => Err(format!(
                    "{target}: no acknowledgement from its host within {ACK_WAIT:?} (it may \
                     have taken it: send again with the same message-id)"
                )),
                Answer::Failed(Failure::Failed(why)) => Err(why),
                Answer::Failed(Failure::Unavailable(why)) => Err(format!("unavailable: {why}")),
                Answer::Failed(f) => Err(format!("{target}: {f:?}")),
            });
        }
        Waiter::Actor { target, corr, .. } => {
            let Some(router) = router.upgrade() else {
                return;
            };
            let r = match answer {
                Answer::Reply(r) => {
                    let r = r.unwrap_or(Reply {
                        payload: Vec::new(),
                        content_type: None,
                        metadata: Vec::new(),
                    });
                    Ok(Message {
                        sender: target,
                        payload: r.payload,
                        content_type: r.content_type.unwrap_or_default(),
                        correlation_id: Some(corr.to_string()),
                        metadata: r.metadata,
                        timestamp_ms: crate::bindings::now_millis(),
                    })
                }
                Answer::Failed(Failure::Timeout) => Err(RequestError::Timeout),
                Answer::Failed(Failure::Stopped) => Err(RequestError::Stopped(target)),
                Answer::Failed(f) => Err(RequestError::Failed(format!("{target}: {f:?}"))),
            };
            router.complete(corr, r);
        }
    }
}

/// Copies of what other hosts published, to this host's subscribers.
async fn serve_topics(shared: Arc<Shared>, mut topics: async_nats::Subscriber) {
    while let Some(m) = topics.next().await {
        let Some(router) = shared.router.upgrade() else {
            return;
        };
        let Some((&n, rest)) = m.payload.split_first() else {
            continue;
        };
        let Some(origin) = rest.get(..n as usize) else {
            continue;
        };
        if origin == shared.host_id.as_bytes() {
            continue;
        }
        if let Some(d) = wire::read_delivery(&rest[n as usize..]) {
            router.publish_here(&d.target, d.msg, None);
        }
    }
}

/// Ends what waits past its deadline, and what waits for a host that died.
async fn sweep(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        // Nothing waits most of the time: no copy of the directory then.
        if shared
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            continue;
        }
        let now = Instant::now();
        let gone: Vec<(Waiter, Option<String>)> = {
            let mut waiting = shared.waiting.lock().unwrap_or_else(|p| p.into_inner());
            let mut ids: Vec<(u64, Option<String>)> = Vec::new();
            for (id, w) in waiting.iter() {
                if w.abandoned() || w.deadline() <= now {
                    ids.push((*id, None));
                    continue;
                }
                // A declared actor's host, or where a virtual one is activated.
                let host = {
                    let directory = shared.directory.lock().unwrap_or_else(|p| p.into_inner());
                    directory.get(w.target()).cloned()
                }
                .or_else(|| {
                    let a = shared.activations.lock().unwrap_or_else(|p| p.into_inner());
                    a.get(w.target()).cloned()
                });
                if let Some(host) = host.filter(|h| shared.health(h) != HostHealth::Alive) {
                    ids.push((*id, Some(host)));
                }
            }
            ids.into_iter()
                .filter_map(|(id, host)| waiting.remove(&id).map(|w| (w, host)))
                .collect()
        };
        for (w, host) in gone {
            let answer = match host {
                Some(h) => Answer::Failed(Failure::Unavailable(format!(
                    "its host {h} went down before it answered"
                ))),
                None => Answer::Failed(Failure::Timeout),
            };
            resolve(&shared.router, w, answer);
        }
    }
}
