//! Capability security: what a component may reach outside its linear memory.
//!
//! Deny by default. The effective [`Capabilities`] of an instance are what its
//! manifest asks for intersected with what the [`HostPolicy`] allows (see
//! [`Manifest::context`](crate::Manifest::context)); both must say yes. Every host
//! function checks them before it acts and records the decision in the
//! [`AuditLog`]. Each host interface declares, as data, which capability each of
//! its functions requires ([`WitInterface`]), so a component's imports can be
//! checked against its grants before it runs ([`never_callable`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::audit::{AuditLog, Verdict};
use super::pattern::{HostPattern, NamePatterns};
use super::policy::{Capability, HostPolicy, PolicyDecision, SecurityPolicy};

/// A kind of capability a host function may require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapabilityKind {
    /// Files under a granted directory.
    Filesystem,
    /// Environment variables.
    Environment,
    /// Outbound network connections and name lookups.
    NetworkOutbound,
    /// Structured logging into the host.
    Log,
    /// Clocks.
    Clocks,
    /// Configuration lookup.
    Config,
    /// Shared storage namespaces.
    Storage,
    /// Sending and requesting to other components.
    MessagingSend,
    /// Publishing to topics.
    MessagingPublish,
    /// Subscribing to topics.
    MessagingSubscribe,
}

/// One imported function and the capabilities it needs to succeed.
#[derive(Debug, Clone, Copy)]
pub struct FunctionSignature {
    /// The function's WIT name.
    pub name: &'static str,
    /// Every capability the function needs (empty: always allowed).
    pub required_capabilities: &'static [CapabilityKind],
}

/// A host interface and the capability table of its functions.
#[derive(Debug, Clone, Copy)]
pub struct WitInterface {
    /// The interface name without version, e.g. `airssys:component/services`.
    pub name: &'static str,
    /// Its functions.
    pub functions: &'static [FunctionSignature],
}

/// A host directory the guest may open, at a guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it (e.g. `/data` or `.`).
    pub guest: String,
    /// Whether the guest may only read.
    pub read_only: bool,
}

/// Which of the host's services a component may use. All granted by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServiceGrants {
    /// `services.log`.
    pub log: bool,
    /// `services.now-millis` and `services.monotonic-nanos`.
    pub clocks: bool,
    /// `services.get-config`.
    pub config: bool,
}

impl Default for ServiceGrants {
    fn default() -> Self {
        ServiceGrants {
            log: true,
            clocks: true,
            config: true,
        }
    }
}

/// The outcome of one check, and the rule that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the action is permitted.
    pub allowed: bool,
    /// The grant pattern that allowed it, or why it was denied.
    pub rule: Arc<str>,
}

impl Decision {
    pub(crate) fn allow(rule: impl Into<Arc<str>>) -> Self {
        Decision {
            allowed: true,
            rule: rule.into(),
        }
    }

    pub(crate) fn deny(rule: impl Into<Arc<str>>) -> Self {
        Decision {
            allowed: false,
            rule: rule.into(),
        }
    }
}

/// The effective grants of one component: what it may reach, and where its
/// decisions are audited. The default grants the services and nothing else.
///
/// ```
/// use airssys_wasm::Capabilities;
/// let caps = Capabilities::default()
///     .with_env("GREETING", "hello")
///     .with_outbound("127.0.0.1:8080").unwrap();
/// assert!(caps.check_connect("127.0.0.1:8080".parse().unwrap()).allowed);
/// assert!(!caps.check_connect("127.0.0.1:22".parse().unwrap()).allowed);
/// ```
pub struct Capabilities {
    /// Host directories visible to the guest.
    pub dirs: Vec<DirGrant>,
    /// Environment variables visible to the guest, with their values.
    pub env: Vec<(String, String)>,
    /// Outbound `HOST:PORT` patterns (TCP, UDP, name lookup).
    pub outbound: Vec<HostPattern>,
    /// Ports the host policy forbids whatever the grants say.
    pub forbidden_ports: Vec<u16>,
    /// Shared storage namespaces it may read and write (its own namespace is always granted).
    pub storage_shared: NamePatterns,
    /// Shared storage namespaces it may only read.
    pub storage_shared_read: NamePatterns,
    /// Components it may send and request to.
    pub send: NamePatterns,
    /// Topics it may publish to.
    pub publish: NamePatterns,
    /// Topics it may subscribe to.
    pub subscribe: NamePatterns,
    /// Host services.
    pub services: ServiceGrants,
    /// Who may send to it (`messaging.accept`; `None`: anyone).
    pub accept: Option<NamePatterns>,
    /// Where decisions are recorded.
    pub audit: AuditLog,
    /// The host's consent, asked after the grants at every call.
    pub policy: Arc<dyn SecurityPolicy>,
    /// Connect decisions by address. Never shared between clones: a clone's
    /// grant fields may be changed, and must be decided afresh.
    connect_cache: Mutex<HashMap<SocketAddr, Decision>>,
}

impl Clone for Capabilities {
    fn clone(&self) -> Self {
        Capabilities {
            dirs: self.dirs.clone(),
            env: self.env.clone(),
            outbound: self.outbound.clone(),
            forbidden_ports: self.forbidden_ports.clone(),
            storage_shared: self.storage_shared.clone(),
            storage_shared_read: self.storage_shared_read.clone(),
            send: self.send.clone(),
            publish: self.publish.clone(),
            subscribe: self.subscribe.clone(),
            services: self.services,
            accept: self.accept.clone(),
            audit: self.audit.clone(),
            policy: self.policy.clone(),
            connect_cache: Mutex::default(),
        }
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            dirs: Vec::new(),
            env: Vec::new(),
            outbound: Vec::new(),
            forbidden_ports: Vec::new(),
            storage_shared: NamePatterns::default(),
            storage_shared_read: NamePatterns::default(),
            send: NamePatterns::default(),
            publish: NamePatterns::default(),
            subscribe: NamePatterns::default(),
            services: ServiceGrants::default(),
            accept: None,
            audit: AuditLog::default(),
            policy: Arc::new(HostPolicy::default()),
            connect_cache: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capabilities")
            .field("dirs", &self.dirs)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("outbound", &self.outbound)
            .field("forbidden_ports", &self.forbidden_ports)
            .field("send", &self.send)
            .field("publish", &self.publish)
            .field("subscribe", &self.subscribe)
            .field("accept", &self.accept)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl Capabilities {
    /// Asks the host's [`SecurityPolicy`] instead of the default [`HostPolicy`].
    pub fn with_policy(mut self, policy: Arc<dyn SecurityPolicy>) -> Self {
        self.policy = policy;
        self
    }

    /// Decides one use of a capability: the component's grant first, then the
    /// host's [`SecurityPolicy`]. Not audited (see [`Capabilities::authorize`]).
    pub fn decide(&self, component: &str, capability: &Capability<'_>) -> Decision {
        let granted = match *capability {
            Capability::Log => self.check_service(CapabilityKind::Log),
            Capability::Clocks => self.check_service(CapabilityKind::Clocks),
            Capability::Config(_) => self.check_service(CapabilityKind::Config),
            Capability::Connect(addr) => self.check_connect(addr),
            Capability::Lookup(name) => self.check_lookup(name),
            Capability::Send(target) => self.check_send(target),
            Capability::Publish(topic) => self.check_publish(topic),
            Capability::Subscribe(topic) => self.check_subscribe(topic),
            Capability::Storage { namespace, write } => self.check_storage(namespace, write),
            Capability::Http { host, port } => self.check_http(host, port),
        };
        self.with_policy_decision(component, capability, granted)
    }

    /// The host's [`SecurityPolicy`] on top of a grant decision already made
    /// (a caller that caches grant decisions still asks the policy every time).
    pub fn with_policy_decision(
        &self,
        component: &str,
        capability: &Capability<'_>,
        granted: Decision,
    ) -> Decision {
        if !granted.allowed {
            return granted;
        }
        match self.policy.check_capability(component, capability) {
            PolicyDecision::Allowed => granted,
            PolicyDecision::Denied { reason } => Decision::deny(format!("host policy: {reason}")),
        }
    }

    /// [`Capabilities::decide`], recorded in the audit log (always when denied;
    /// when allowed, if the log is enabled).
    pub fn authorize(
        &self,
        component: &str,
        function: &str,
        resource: &str,
        capability: &Capability<'_>,
    ) -> Decision {
        let d = self.decide(component, capability);
        if !d.allowed || self.audit.is_enabled() {
            self.record(component, function, resource, &d);
        }
        d
    }

    /// Grants a host directory at a guest path.
    pub fn with_dir(
        mut self,
        host: impl Into<PathBuf>,
        guest: impl Into<String>,
        read_only: bool,
    ) -> Self {
        self.dirs.push(DirGrant {
            host: host.into(),
            guest: guest.into(),
            read_only,
        });
        self
    }

    /// Grants an environment variable with its value.
    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Grants outbound connections matching a `HOST:PORT` pattern.
    pub fn with_outbound(mut self, pattern: &str) -> Result<Self, String> {
        self.outbound.push(HostPattern::parse(pattern)?);
        Ok(self)
    }

    /// Records decisions in `audit`.
    pub fn with_audit(mut self, audit: AuditLog) -> Self {
        self.audit = audit;
        self
    }

    /// Whether connecting (or binding, or sending a datagram) to `addr` is
    /// allowed. Cached per address; not audited (see [`Capabilities::audit_connect`]).
    pub fn check_connect(&self, addr: SocketAddr) -> Decision {
        let mut cache = self.connect_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = cache.get(&addr) {
            return d.clone();
        }
        let d = if self.forbidden_ports.contains(&addr.port()) {
            Decision::deny(format!("host policy forbids port {}", addr.port()))
        } else {
            match self
                .outbound
                .iter()
                .find(|p| p.matches_addr(addr.ip(), addr.port()))
            {
                Some(p) => Decision::allow(format!("network.outbound {}", p.as_str())),
                None => Decision::deny("not granted: no network.outbound pattern matches"),
            }
        };
        if cache.len() >= CONNECT_CACHE_LIMIT {
            // A guest probing many addresses must not grow host memory without bound.
            cache.clear();
        }
        cache.insert(addr, d.clone());
        d
    }

    /// Checks a connection and records the decision.
    pub fn audit_connect(&self, component: &str, function: &str, addr: SocketAddr) -> bool {
        let d = self.check_connect(addr);
        self.record(component, function, &addr.to_string(), &d);
        d.allowed
    }

    /// Whether a DNS name may be looked up: some outbound pattern names it.
    pub fn check_lookup(&self, name: &str) -> Decision {
        match self.outbound.iter().find(|p| p.matches_name(name)) {
            Some(p) => Decision::allow(format!("network.outbound {}", p.as_str())),
            None => Decision::deny("not granted: no network.outbound pattern names this host"),
        }
    }

    /// Whether an outbound HTTP request may go to `host:port` (an IP literal
    /// or a DNS name, as the request's authority names it).
    pub fn check_http(&self, host: &str, port: u16) -> Decision {
        if self.forbidden_ports.contains(&port) {
            return Decision::deny(format!("host policy forbids port {port}"));
        }
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok();
        let found = self.outbound.iter().find(|p| match ip {
            Some(ip) => p.matches_addr(ip, port),
            None => p.matches_name(host) && p.matches_port(port),
        });
        match found {
            Some(p) => Decision::allow(format!("network.outbound {}", p.as_str())),
            None => Decision::deny("not granted: no network.outbound pattern matches"),
        }
    }

    /// Whether a service may be used.
    pub fn check_service(&self, kind: CapabilityKind) -> Decision {
        let (granted, name) = match kind {
            CapabilityKind::Log => (self.services.log, "services.log"),
            CapabilityKind::Clocks => (self.services.clocks, "services.clocks"),
            CapabilityKind::Config => (self.services.config, "services.config"),
            _ => (false, "not a service"),
        };
        if granted {
            Decision::allow(name)
        } else {
            Decision::deny(format!("not granted: {name} is withheld"))
        }
    }

    /// Whether it may send or make requests to component `target`.
    pub fn check_send(&self, target: &str) -> Decision {
        named(&self.send, target, "messaging.send")
    }

    /// Whether it may publish to `topic`.
    pub fn check_publish(&self, topic: &str) -> Decision {
        named(&self.publish, topic, "messaging.publish")
    }

    /// Whether it may subscribe to `topic`.
    pub fn check_subscribe(&self, topic: &str) -> Decision {
        named(&self.subscribe, topic, "messaging.subscribe")
    }

    /// Whether it may use the shared storage namespace `namespace`
    /// (`write`: for writing too; `storage.shared-read-only` grants reads only).
    pub fn check_storage(&self, namespace: &str, write: bool) -> Decision {
        let rw = named(&self.storage_shared, namespace, "storage.shared");
        if rw.allowed {
            return rw;
        }
        let ro = named(
            &self.storage_shared_read,
            namespace,
            "storage.shared-read-only",
        );
        match (ro.allowed, write) {
            (true, false) => ro,
            (true, true) => Decision::deny(format!("{} grants reads only", ro.rule)),
            (false, _) => rw,
        }
    }

    /// Records a decision in the audit log.
    pub fn record(&self, component: &str, function: &str, resource: &str, d: &Decision) {
        let verdict = if d.allowed {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        self.audit
            .record(component, function, resource, verdict, &d.rule);
    }

    /// Whether `kind` is granted at all (for the static import report).
    pub fn grants_kind(&self, kind: CapabilityKind) -> bool {
        match kind {
            CapabilityKind::Filesystem => !self.dirs.is_empty(),
            CapabilityKind::Environment => !self.env.is_empty(),
            CapabilityKind::NetworkOutbound => !self.outbound.is_empty(),
            CapabilityKind::Log => self.services.log,
            CapabilityKind::Clocks => self.services.clocks,
            CapabilityKind::Config => self.services.config,
            CapabilityKind::Storage => true,
            CapabilityKind::MessagingSend => !self.send.is_empty(),
            CapabilityKind::MessagingPublish => !self.publish.is_empty(),
            CapabilityKind::MessagingSubscribe => !self.subscribe.is_empty(),
        }
    }
}

fn named(patterns: &NamePatterns, name: &str, what: &str) -> Decision {
    match patterns.matching(name) {
        Some(p) => Decision::allow(format!("{what} {p}")),
        None => Decision::deny(format!("not granted: no {what} pattern matches")),
    }
}

/// Entries the per-component connect-decision cache holds before it is reset.
const CONNECT_CACHE_LIMIT: usize = 4096;

/// One imported function that can never succeed under some grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreachable {
    /// `interface.function`.
    pub function: String,
    /// The capability that is not granted.
    pub missing: CapabilityKind,
}

/// The imported functions of a component (by interface name, versions ignored)
/// that can never be called successfully under `caps`, given the host's
/// interface tables (see [`crate::host_interfaces`]).
pub fn never_callable(
    interfaces: &[WitInterface],
    imports: &[String],
    caps: &Capabilities,
) -> Vec<Unreachable> {
    let mut out = Vec::new();
    for import in imports {
        let unversioned = import.split('@').next().unwrap_or(import);
        let Some(iface) = interfaces.iter().find(|i| i.name == unversioned) else {
            continue;
        };
        for f in iface.functions {
            if let Some(missing) = f
                .required_capabilities
                .iter()
                .find(|k| !caps.grants_kind(**k))
            {
                out.push(Unreachable {
                    function: format!("{}.{}", iface.name, f.name),
                    missing: *missing,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_with_narrower_grants_does_not_reuse_the_originals_cached_allows() {
        let wide = Capabilities::default()
            .with_outbound("127.0.0.1:*")
            .unwrap();
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert!(wide.check_connect(addr).allowed, "cached as allowed");
        let mut narrow = wide.clone();
        narrow.outbound.clear();
        assert!(!narrow.check_connect(addr).allowed);
        assert!(wide.check_connect(addr).allowed);
    }

    #[test]
    fn connect_checks_patterns_ports_and_caches() {
        let mut caps = Capabilities::default()
            .with_outbound("127.0.0.1:*")
            .unwrap();
        caps.forbidden_ports = vec![22];
        let a: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(caps.check_connect(a).allowed);
        assert_eq!(&*caps.check_connect(a).rule, "network.outbound 127.0.0.1:*");
        let ssh: SocketAddr = "127.0.0.1:22".parse().unwrap();
        let d = caps.check_connect(ssh);
        assert!(!d.allowed);
        assert!(d.rule.contains("host policy forbids port 22"));
        assert!(!caps.check_connect("10.0.0.1:80".parse().unwrap()).allowed);
        assert!(
            !Capabilities::default().check_connect(a).allowed,
            "deny by default"
        );
    }

    #[test]
    fn services_default_granted_and_withholdable() {
        let mut caps = Capabilities::default();
        assert!(caps.check_service(CapabilityKind::Config).allowed);
        caps.services.config = false;
        let d = caps.check_service(CapabilityKind::Config);
        assert!(!d.allowed && d.rule.contains("services.config"));
    }

    #[test]
    fn messaging_and_storage_use_name_patterns() {
        let mut caps = Capabilities::default();
        assert!(!caps.check_send("worker-1").allowed);
        caps.send = NamePatterns::new(&["worker-*"]).unwrap();
        caps.publish = NamePatterns::new(&["events.*"]).unwrap();
        caps.storage_shared = NamePatterns::new(&["cache.**"]).unwrap();
        assert!(caps.check_send("worker-1").allowed);
        assert!(!caps.check_send("admin").allowed);
        assert!(caps.check_publish("events.created").allowed);
        assert!(!caps.check_subscribe("events.created").allowed);
        assert!(caps.check_storage("cache.a.b", true).allowed);
    }

    #[test]
    fn audit_records_allow_and_deny_with_the_rule() {
        let audit = AuditLog::in_memory();
        let caps = Capabilities::default()
            .with_outbound("[::1]:8080")
            .unwrap()
            .with_audit(audit.clone());
        assert!(caps.audit_connect(
            "c",
            "wasi:sockets/tcp.connect",
            "[::1]:8080".parse().unwrap()
        ));
        assert!(!caps.audit_connect(
            "c",
            "wasi:sockets/tcp.connect",
            "[::1]:9090".parse().unwrap()
        ));
        let events = audit.events();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].decision, Verdict::Allow);
        assert_eq!(events[0].rule, "network.outbound [::1]:8080");
        assert_eq!(events[1].decision, Verdict::Deny);
        assert_eq!(events[1].resource, "[::1]:9090");
        assert_eq!(events[1].function, "wasi:sockets/tcp.connect");
    }
}
