//! `system.toml`: the components, the actors and the supervision tree of a
//! system that `airssys-wasm up` runs. Parsed with serde (unknown keys
//! rejected); every error names the file, line and column. Relative paths
//! resolve against the file's directory.
//!
//! ```toml
//! [system]
//! name = "demo"
//! max-active = 512            # virtual actors holding an instance at once
//! shutdown-timeout = "5s"     # per actor: drain + shutdown()
//!
//! [defaults]                  # every actor, unless it says otherwise
//! mailbox-capacity = 1024
//! restart = "permanent"       # transient, temporary
//! health = { interval = "10s", timeout = "1s", failures = 3 }
//! passivate-after = "10m"
//!
//! [components.probe]
//! path = "probe.wasm"
//! manifest = "probe.toml"     # limits and grants (deny by default without one)
//! config = { greeting = "hi" }
//!
//! [components.counter]
//! path = "counter.wasm"
//! virtual = true              # actors counter/KEY, activated on demand
//!
//! [[supervisors]]             # "root" exists; declare it to tune it
//! name = "root"
//! strategy = "one-for-one"    # one-for-all, rest-for-one
//! max-restarts = 5
//! within = "5s"
//! backoff = "10ms"
//! backoff-max = "1s"
//!
//! [[supervisors]]
//! name = "pipeline"
//! parent = "root"
//! strategy = "rest-for-one"
//!
//! [[actors]]
//! id = "alice"
//! component = "probe"
//! supervisor = "pipeline"     # default: root
//! subscriptions = ["events.*"]
//! config = { role = "first" }
//!
//! [[actors]]
//! id = "ledger"
//! component = "probe"
//! durable = true              # its mailbox survives a crash (needs [system] data)
//! failover = true             # in a cluster: a survivor starts it when its host dies
//! ```
//!
//! A supervisor's children start in the order they are declared in the file.
//! `[http]` routes requests into the system (see [`super::http`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::actor::{
    ActorId, ActorOptions, ActorSpec, Backoff, ChildSpec, HealthCheck, Intensity, RestartPolicy,
    Strategy, SupervisorSpec, SystemBuilder,
};
use crate::error::{Error, Result};
use crate::runtime::engine::Engine;
use crate::sandbox::context::ExecutionContext;
use crate::sandbox::manifest::Manifest;
use crate::security::audit::AuditLog;
use crate::security::policy::HostPolicy;
use crate::security::signing::{SignedIdentity, TrustPolicy};
use crate::units::{at, de_opt_duration, parse_toml, DurationValue};

/// A parsed `system.toml`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "airssys-wasm system (system.toml)")]
pub struct SystemConfig {
    /// The system as a whole.
    #[serde(default)]
    pub system: SystemSection,
    /// Defaults for every actor.
    #[serde(default)]
    pub defaults: ActorSettings,
    /// Components by name.
    #[serde(default)]
    pub components: BTreeMap<String, ComponentEntry>,
    /// Supervisors; `root` exists whether declared or not.
    #[serde(default)]
    pub supervisors: Vec<SupervisorEntry>,
    /// Declared actors.
    #[serde(default)]
    pub actors: Vec<ActorEntry>,
    /// An HTTP listener with routes into the system (apart from the admin API).
    #[serde(default)]
    pub http: Option<super::http::HttpSection>,
    /// Join a cluster of hosts on NATS (`up --cluster URL` overrides `url`).
    #[serde(default)]
    pub cluster: Option<ClusterSection>,
    #[serde(skip)]
    #[schemars(skip)]
    path: PathBuf,
    #[serde(skip)]
    #[schemars(skip)]
    text: String,
}

/// `[cluster]`: this host's place in a cluster of hosts on NATS.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterSection {
    /// The NATS server (JetStream enabled), e.g. `nats://127.0.0.1:4222`.
    #[serde(default)]
    pub url: Option<String>,
    /// This host's id (default: the machine's host name and the process id).
    #[serde(default)]
    pub host_id: Option<String>,
    /// The cluster's name (default `default`).
    #[serde(default)]
    pub name: Option<String>,
    /// How often this host heartbeats (default 1 s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(with = "Option<DurationValue>")]
    pub heartbeat: Option<Duration>,
    /// A host silent this long is dead (default 3 s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(with = "Option<DurationValue>")]
    pub dead_after: Option<Duration>,
    /// A file holding the NATS token, relative to this file.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Copies JetStream keeps of the durable actors' log (default 1; up to
    /// the NATS cluster's size).
    #[serde(default)]
    pub replicas: Option<usize>,
}

/// `[system]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SystemSection {
    /// A name for logs.
    #[serde(default)]
    pub name: Option<String>,
    /// Virtual actors holding an instance at once (default 512).
    #[serde(default)]
    pub max_active: Option<usize>,
    /// How long each actor may take to drain and shut down (default 5 s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(with = "Option<DurationValue>")]
    pub shutdown_timeout: Option<Duration>,
    /// The data directory of the actors' durable storage, relative to this
    /// file (`up --data DIR` overrides it; neither: no storage).
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// Public keys (`KEY.pub` files, relative to this file): when any is
    /// given, every component must carry a signature (`FILE.sig`) by one of
    /// them, for its manifest's name and version where it has a manifest, and
    /// so must every upgrade (`up --require-signature KEY.pub` adds more).
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
}

/// Per-actor settings, in `[defaults]` or on an actor.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ActorSettings {
    /// Mailbox capacity in messages.
    #[serde(default)]
    pub mailbox_capacity: Option<usize>,
    /// `permanent`, `transient` or `temporary`.
    #[serde(default)]
    pub restart: Option<RestartName>,
    /// Health polling: a table, or `false` for none.
    #[serde(default)]
    pub health: Option<HealthEntry>,
    /// Passivate after this long without a message.
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(with = "Option<DurationValue>")]
    pub passivate_after: Option<Duration>,
    /// The largest payload it may send, in bytes.
    #[serde(default)]
    pub max_message_bytes: Option<usize>,
    /// Pending requests plus timers at once.
    #[serde(default)]
    pub max_pending: Option<u32>,
    /// A durable mailbox: messages are in the data directory before their
    /// send is acknowledged and survive a crash of the host (needs `data`).
    #[serde(default)]
    pub durable: Option<bool>,
    /// Deliveries of one durable message that trap before it is a poison
    /// dead letter (default 3).
    #[serde(default)]
    pub max_deliveries: Option<u32>,
    /// In a cluster: this declared actor runs on one of the hosts that
    /// declare it and fails over to a survivor (default: pinned to its host).
    #[serde(default)]
    pub failover: Option<bool>,
}

impl ActorSettings {
    /// These settings, with `fallback`'s where these say nothing.
    fn or(&self, fallback: &ActorSettings) -> ActorSettings {
        ActorSettings {
            mailbox_capacity: self.mailbox_capacity.or(fallback.mailbox_capacity),
            restart: self.restart.or(fallback.restart),
            health: self.health.clone().or_else(|| fallback.health.clone()),
            passivate_after: self.passivate_after.or(fallback.passivate_after),
            max_message_bytes: self.max_message_bytes.or(fallback.max_message_bytes),
            max_pending: self.max_pending.or(fallback.max_pending),
            durable: self.durable.or(fallback.durable),
            max_deliveries: self.max_deliveries.or(fallback.max_deliveries),
            failover: self.failover.or(fallback.failover),
        }
    }
}

/// A restart policy by name.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartName {
    /// Always.
    Permanent,
    /// After a crash.
    Transient,
    /// Never.
    Temporary,
}

/// `health = { ... }` or `health = false`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HealthEntry {
    /// `false` turns polling off (`true` keeps the defaults).
    Enabled(bool),
    /// Polling settings.
    Settings(HealthSettings),
}

/// Health polling settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// Time between checks (default 10 s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(with = "Option<DurationValue>")]
    pub interval: Option<Duration>,
    /// How long one check may take (default 1 s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(with = "Option<DurationValue>")]
    pub timeout: Option<Duration>,
    /// `unhealthy` answers in a row that make a crash (default 3).
    #[serde(default)]
    pub failures: Option<u32>,
}

/// `[components.NAME]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentEntry {
    /// The `.wasm` file.
    pub path: PathBuf,
    /// Its `Component.toml` (limits, grants, config).
    #[serde(default)]
    pub manifest: Option<PathBuf>,
    /// Actors `NAME/KEY` activated on demand.
    #[serde(default, rename = "virtual")]
    pub is_virtual: bool,
    /// Configuration added to the manifest's.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Settings of its virtual actors.
    #[serde(default, flatten)]
    pub settings: ActorSettings,
}

/// `[[supervisors]]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SupervisorEntry {
    /// Its name.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Its parent (default `root`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub parent: Option<Spanned<String>>,
    /// `one-for-one` (default), `one-for-all`, `rest-for-one`.
    #[serde(default)]
    pub strategy: Option<StrategyName>,
    /// Restarts allowed within `within` (default 5).
    #[serde(default)]
    pub max_restarts: Option<u32>,
    /// The intensity window (default 5 s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(with = "Option<DurationValue>")]
    pub within: Option<Duration>,
    /// The first restart's delay (default 10 ms), doubling.
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(with = "Option<DurationValue>")]
    pub backoff: Option<Duration>,
    /// The longest delay (default 1 s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(with = "Option<DurationValue>")]
    pub backoff_max: Option<Duration>,
}

/// A strategy by name.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyName {
    /// Restart the crashed child.
    OneForOne,
    /// Restart every child.
    OneForAll,
    /// Restart the crashed child and those after it.
    RestForOne,
}

/// `[[actors]]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ActorEntry {
    /// Its id: letters, digits, `-`, `_`.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// The component it runs (a key of `[components]`).
    #[schemars(with = "String")]
    pub component: Spanned<String>,
    /// Its supervisor (default `root`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub supervisor: Option<Spanned<String>>,
    /// Topic patterns it is subscribed to by the host.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// Configuration added to the component's.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Settings over `[defaults]`.
    #[serde(default, flatten)]
    pub settings: ActorSettings,
}

impl SystemConfig {
    /// Reads and checks a `system.toml`: unknown keys, components, supervisors
    /// and duplicate ids are errors with the line and column.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], or [`Error::Manifest`] naming the file, line and column of what does not
    /// parse or does not hold together.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `system.toml` text; `path` names it in errors and anchors relative paths.
    ///
    /// # Errors
    ///
    /// [`Error::Manifest`] naming the line and column of what does not parse or does not hold
    /// together.
    pub fn parse(path: impl AsRef<Path>, text: &str) -> Result<Self> {
        let path = path.as_ref();
        let mut c: SystemConfig = parse_toml(path, text)?;
        c.path = path.to_path_buf();
        c.text = text.to_string();
        c.check()?;
        Ok(c)
    }

    /// The JSON Schema of `system.toml`, for editors.
    pub fn json_schema() -> String {
        let schema = schemars::schema_for!(SystemConfig);
        serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
    }

    fn err(&self, offset: usize, message: &str) -> Error {
        Error::Manifest {
            path: self.path.clone(),
            message: at(&self.text, offset, message),
        }
    }

    fn check(&self) -> Result<()> {
        let mut supervisors: HashMap<&str, usize> = HashMap::new();
        supervisors.insert("root", 0);
        for s in &self.supervisors {
            let name = s.name.get_ref();
            if name != "root" && supervisors.insert(name, s.name.span().start).is_some() {
                return Err(self.err(
                    s.name.span().start,
                    &format!("supervisor {name:?} is declared twice"),
                ));
            }
        }
        for s in &self.supervisors {
            if let Some(p) = &s.parent {
                if !supervisors.contains_key(p.get_ref().as_str()) {
                    return Err(self.err(
                        p.span().start,
                        &format!("unknown supervisor {:?}", p.get_ref()),
                    ));
                }
                if p.get_ref() == s.name.get_ref() {
                    return Err(self.err(p.span().start, "a supervisor cannot be its own parent"));
                }
            }
        }
        let mut ids: HashMap<&str, ()> = HashMap::new();
        for a in &self.actors {
            let id = a.id.get_ref();
            ActorId::new(id).map_err(|e| self.err(a.id.span().start, &e.to_string()))?;
            if ids.insert(id, ()).is_some() {
                return Err(self.err(
                    a.id.span().start,
                    &format!("actor id {id:?} is declared twice"),
                ));
            }
            let component = a.component.get_ref();
            match self.components.get(component) {
                None => {
                    let known: Vec<&str> = self.components.keys().map(String::as_str).collect();
                    return Err(self.err(
                        a.component.span().start,
                        &format!(
                            "unknown component {component:?} (declared: {})",
                            known.join(", ")
                        ),
                    ));
                }
                Some(c) if c.is_virtual => {
                    return Err(self.err(
                        a.component.span().start,
                        &format!("component {component:?} is virtual: address its actors as {component}/KEY instead of declaring them"),
                    ));
                }
                Some(_) => {}
            }
            if let Some(s) = &a.supervisor {
                if !supervisors.contains_key(s.get_ref().as_str()) {
                    return Err(self.err(
                        s.span().start,
                        &format!("unknown supervisor {:?}", s.get_ref()),
                    ));
                }
            }
        }
        if let Some(http) = &self.http {
            http.check(|c| self.components.contains_key(c), |at, m| self.err(at, m))?;
        }
        // Parents must form a tree rooted at root (no cycles).
        for s in &self.supervisors {
            let mut seen = vec![s.name.get_ref().as_str()];
            let mut cur = s
                .parent
                .as_ref()
                .map(|p| p.get_ref().as_str())
                .unwrap_or("root");
            while cur != "root" {
                if seen.contains(&cur) {
                    return Err(self.err(s.name.span().start, "supervisors form a cycle"));
                }
                seen.push(cur);
                cur = self
                    .supervisors
                    .iter()
                    .find(|x| x.name.get_ref() == cur)
                    .and_then(|x| x.parent.as_ref().map(|p| p.get_ref().as_str()))
                    .unwrap_or("root");
            }
        }
        Ok(())
    }

    /// The data directory `[system] data` names, resolved against this file.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.system.data.as_ref().map(|d| self.resolve(d))
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join(p)
    }

    /// The options of `[cluster]` with `url` (from the file when `None`);
    /// `None` when neither gives a URL. `host_id` falls back to the file's,
    /// then to the machine's host name and this process's id.
    pub fn cluster_options(
        &self,
        url: Option<&str>,
        host_id: Option<&str>,
    ) -> Option<crate::cluster::ClusterOptions> {
        let section = self.cluster.clone().unwrap_or_default();
        let url = url.map(str::to_string).or(section.url)?;
        let host = host_id
            .map(str::to_string)
            .or(section.host_id)
            .unwrap_or_else(default_host_id);
        let mut o = crate::cluster::ClusterOptions::new(url, host);
        if let Some(n) = section.name {
            o.name = n;
        }
        if let Some(h) = section.heartbeat {
            o.heartbeat = h;
        }
        if let Some(d) = section.dead_after {
            o.dead_after = d;
        }
        o.token_file = section.token_file.map(|f| self.resolve(&f));
        if let Some(r) = section.replicas {
            o.replicas = r;
        }
        Some(o)
    }

    /// The keys of `[system] trusted-keys` (empty: no signature required).
    ///
    /// # Errors
    ///
    /// A key file that cannot be read or is not a public key.
    pub fn trust(&self) -> Result<TrustPolicy> {
        let mut trust = TrustPolicy::default();
        for k in &self.system.trusted_keys {
            trust = trust.trust_key_file(self.resolve(k))?;
        }
        Ok(trust)
    }

    /// The builder of this system: loads every component into `engine`, turns
    /// each manifest into a context under `policy` (decisions audited in
    /// `audit`), gives every actor its namespace in `storage` when there is
    /// one, and lays out the tree.
    pub fn builder(
        &self,
        engine: &Engine,
        policy: &HostPolicy,
        audit: &AuditLog,
        storage: Option<&crate::storage::Storage>,
    ) -> Result<SystemBuilder> {
        let mut contexts: HashMap<&str, (crate::Component, ExecutionContext, ActorSettings)> =
            HashMap::new();
        let trust = self.trust()?;
        for (name, entry) in &self.components {
            let (component, ctx) = self.component(name, engine, policy, audit, storage, &trust)?;
            contexts.insert(name, (component, ctx, entry.settings.clone()));
        }
        // A system the pool cannot hold is refused now, not actor by actor.
        let config = engine.config();
        if config.pooling && self.actors.len() > config.pool_instances as usize {
            return Err(Error::Config(format!(
                "{}: {} actors are declared but the engine's pool holds {} instances \
                 (EngineConfig::pool_instances); declare fewer or make some virtual",
                self.path.display(),
                self.actors.len(),
                config.pool_instances
            )));
        }
        let mut builder = SystemBuilder::default().trust(trust);
        if let Some(n) = self.system.max_active {
            builder = builder.max_active(n);
        }
        for (name, entry) in &self.components {
            if entry.is_virtual {
                let (component, ctx, settings) = &contexts[name.as_str()];
                let options = self.options(settings, ctx, &[]);
                builder = builder.virtual_actors(component.clone(), ctx.clone(), options);
            }
        }
        let root = self.supervisor_spec("root", &contexts)?;
        Ok(builder.root(root))
    }

    /// The `[http]` listener of this system (`None` without one): component
    /// routes loaded into `engine` with their manifests under `policy` (and
    /// `storage`), as the actors' components are; actor routes through `system`.
    ///
    /// # Errors
    ///
    /// A component that does not load or is not a `wasi:http/proxy`
    /// ([`Error::Unsupported`]), a manifest that does not hold.
    pub fn http_listener(
        &self,
        engine: &Engine,
        policy: &HostPolicy,
        audit: &AuditLog,
        storage: Option<&crate::storage::Storage>,
        system: std::sync::Arc<crate::actor::ActorSystem>,
    ) -> Result<Option<super::http::HttpListener>> {
        let Some(http) = &self.http else {
            return Ok(None);
        };
        let trust = self.trust()?;
        http.listener(system, |name| {
            self.component(name, engine, policy, audit, storage, &trust)
        })
        .map(Some)
    }

    /// Component `name` of `[components]` loaded into `engine`, with its
    /// context: its manifest under `policy`, its config, the storage.
    fn component(
        &self,
        name: &str,
        engine: &Engine,
        policy: &HostPolicy,
        audit: &AuditLog,
        storage: Option<&crate::storage::Storage>,
        trust: &TrustPolicy,
    ) -> Result<(crate::Component, ExecutionContext)> {
        let entry = &self.components[name];
        let manifest = match &entry.manifest {
            Some(m) => Some(Manifest::from_file(self.resolve(m))?),
            None => None,
        };
        let identity = manifest.as_ref().map(|m| SignedIdentity {
            name: m.component.name.clone(),
            version: m.component.version.clone(),
        });
        let component =
            engine.load_file_trusted(self.resolve(&entry.path), trust, identity.as_ref())?;
        let mut ctx = match &manifest {
            Some(m) => m.context(policy, audit.clone())?,
            None => ExecutionContext::new(name)
                .with_capabilities(crate::Capabilities::default().with_audit(audit.clone())),
        };
        for (k, v) in &entry.config {
            ctx = ctx.with_config(k, v);
        }
        if let Some(storage) = storage {
            ctx = ctx.with_storage(storage.clone());
        }
        Ok((component, ctx))
    }

    /// An actor's options: its own settings (or its component's), then
    /// what its manifest asks for (`[limits] mailbox-capacity`), then `[defaults]`.
    fn options(
        &self,
        own: &ActorSettings,
        ctx: &ExecutionContext,
        subscriptions: &[String],
    ) -> ActorOptions {
        let mailbox = own
            .mailbox_capacity
            .or(ctx.limits().host.mailbox_capacity)
            .or(self.defaults.mailbox_capacity);
        let own = own.or(&self.defaults);
        let mut o = ActorOptions::default();
        if let Some(n) = mailbox {
            o = o.mailbox_capacity(n);
        }
        if let Some(r) = own.restart {
            o.restart = match r {
                RestartName::Permanent => RestartPolicy::Permanent,
                RestartName::Transient => RestartPolicy::Transient,
                RestartName::Temporary => RestartPolicy::Temporary,
            };
        }
        match own.health.as_ref() {
            Some(HealthEntry::Enabled(false)) => o.health = None,
            Some(HealthEntry::Enabled(true)) | None => {}
            Some(HealthEntry::Settings(h)) => {
                let base = HealthCheck::default();
                o.health = Some(HealthCheck {
                    interval: h.interval.unwrap_or(base.interval),
                    timeout: h.timeout.unwrap_or(base.timeout),
                    failures: h.failures.unwrap_or(base.failures),
                });
            }
        }
        o.passivate_after = own.passivate_after;
        if let Some(n) = own.max_message_bytes {
            o.max_message_bytes = n;
        }
        if let Some(n) = own.max_pending {
            o.max_pending = n;
        }
        o.durable = own.durable.unwrap_or(false);
        o.failover = own.failover.unwrap_or(false);
        if let Some(n) = own.max_deliveries {
            o = o.max_deliveries(n);
        }
        if let Some(t) = self.system.shutdown_timeout {
            o.shutdown_timeout = t;
        }
        o.subscriptions = subscriptions.to_vec();
        o
    }

    fn supervisor_spec(
        &self,
        name: &str,
        contexts: &HashMap<&str, (crate::Component, ExecutionContext, ActorSettings)>,
    ) -> Result<SupervisorSpec> {
        let mut spec = SupervisorSpec::new(name);
        if let Some(s) = self.supervisors.iter().find(|s| s.name.get_ref() == name) {
            spec.strategy = match s.strategy {
                Some(StrategyName::OneForAll) => Strategy::OneForAll,
                Some(StrategyName::RestForOne) => Strategy::RestForOne,
                _ => Strategy::OneForOne,
            };
            let i = Intensity::default();
            spec.intensity = Intensity {
                max_restarts: s.max_restarts.unwrap_or(i.max_restarts),
                within: s.within.unwrap_or(i.within),
            };
            let b = Backoff::default();
            spec.backoff = Backoff {
                initial: s.backoff.unwrap_or(b.initial),
                max: s.backoff_max.unwrap_or(b.max),
            };
        }
        // Children in the order they stand in the file.
        let mut children: Vec<(usize, ChildSpec)> = Vec::new();
        for s in &self.supervisors {
            let parent = s
                .parent
                .as_ref()
                .map(|p| p.get_ref().as_str())
                .unwrap_or("root");
            if parent == name && s.name.get_ref() != "root" {
                let child = self.supervisor_spec(s.name.get_ref(), contexts)?;
                children.push((s.name.span().start, ChildSpec::Supervisor(child)));
            }
        }
        for a in &self.actors {
            let sup = a
                .supervisor
                .as_ref()
                .map(|s| s.get_ref().as_str())
                .unwrap_or("root");
            if sup != name {
                continue;
            }
            let (component, ctx, settings) = &contexts[a.component.get_ref().as_str()];
            let merged = a.settings.or(settings);
            let mut ctx = ctx.clone();
            for (k, v) in &a.config {
                ctx = ctx.with_config(k, v);
            }
            let id = ActorId::new(a.id.get_ref())?;
            let options = self.options(&merged, &ctx, &a.subscriptions);
            let spec = ActorSpec::new(id, component.clone(), ctx).with_options(options);
            children.push((a.id.span().start, ChildSpec::Actor(Box::new(spec))));
        }
        children.sort_by_key(|(at, _)| *at);
        spec.children = children.into_iter().map(|(_, c)| c).collect();
        Ok(spec)
    }
}

/// The machine's host name (what a host id may hold of it) and this process's id.
fn default_host_id() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "host".into());
    let name: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!("{name}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn err(text: &str) -> String {
        SystemConfig::parse("system.toml", text)
            .unwrap_err()
            .to_string()
    }

    const OK: &str = r#"
[components.probe]
path = "probe.wasm"

[[supervisors]]
name = "pipeline"
strategy = "rest-for-one"

[[actors]]
id = "a"
component = "probe"
supervisor = "pipeline"

[[actors]]
id = "b"
component = "probe"
restart = "temporary"
health = false
"#;

    #[test]
    fn a_good_file_parses() {
        let c = SystemConfig::parse("system.toml", OK).unwrap();
        assert_eq!(c.actors.len(), 2);
        assert!(matches!(
            c.actors[1].settings.health,
            Some(HealthEntry::Enabled(false))
        ));
    }

    #[test]
    fn an_actor_takes_its_own_then_its_components_then_the_default_settings() {
        let c = SystemConfig::parse(
            "system.toml",
            "[defaults]\nmailbox-capacity = 7\nmax-pending = 3\n\
             [components.p]\npath = \"p.wasm\"\nmax-pending = 5\nmax-message-bytes = 9\n\
             [[actors]]\nid = \"a\"\ncomponent = \"p\"\nmax-message-bytes = 11\nhealth = false\n",
        )
        .unwrap();
        let a = &c.actors[0];
        let o = c.options(
            &a.settings.or(&c.components["p"].settings),
            &ExecutionContext::new("p"),
            &[],
        );
        assert_eq!(o.mailbox_capacity, 7, "from [defaults]");
        assert_eq!(o.max_pending, 5, "from the component");
        assert_eq!(o.max_message_bytes, 11, "the actor's own");
        assert!(o.health.is_none());
    }

    #[test]
    fn a_duplicate_key_is_named_and_a_huge_id_is_cut_in_the_error() {
        let e = err("[components.p]\npath = \"p.wasm\"\npath = \"q.wasm\"\n");
        assert!(e.contains("line 3, column 1: duplicate key `path`"), "{e}");
        let long = "a".repeat(70_000);
        let t = std::time::Instant::now();
        let e = err(&format!(
            "[components.p]\npath = \"p.wasm\"\n[[actors]]\nid = \"{long}\"\ncomponent = \"p\"\n"
        ));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        assert!(
            e.contains("invalid actor id") && e.len() < 400,
            "{}",
            e.len()
        );
    }

    #[test]
    fn errors_name_the_line_and_column() {
        assert_eq!(
            err(
                "[components.p]\npath = \"p.wasm\"\n[[actors]]\nid = \"a\"\ncomponent = \"nope\"\n"
            ),
            "system.toml: line 5, column 13: unknown component \"nope\" (declared: p)"
        );
        assert_eq!(
            err("[components.p]\npath = \"p.wasm\"\n[[actors]]\nid = \"a/b\"\ncomponent = \"p\"\n"),
            "system.toml: line 4, column 6: invalid actor id \"a/b\": a name is letters, digits, '-' and '_', starting with a letter or digit"
        );
        assert!(err("[system]\nbogus = 1\n")
            .starts_with("system.toml: line 2, column 1: unknown field `bogus`"));
        assert!(err(&format!(
            "{OK}\n[[actors]]\nid = \"a\"\ncomponent = \"probe\"\n"
        ))
        .contains("line 21, column 6: actor id \"a\" is declared twice"));
        assert!(err("[[supervisors]]\nname = \"x\"\nparent = \"y\"\n")
            .contains("line 3, column 10: unknown supervisor \"y\""));
        assert!(err("[[supervisors]]\nname = \"x\"\nparent = \"y\"\n[[supervisors]]\nname = \"y\"\nparent = \"x\"\n").contains("supervisors form a cycle"));
        assert!(err("[[supervisors]]\nname = \"x\"\nstrategy = \"all\"\n")
            .contains("line 3, column 12: unknown variant `all`"));
    }
}
