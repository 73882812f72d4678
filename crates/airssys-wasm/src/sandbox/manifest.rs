//! `Component.toml`: a component's identity, limits and the capabilities it asks
//! for. Parsed with serde (unknown keys rejected); every error names the file,
//! line and column and the expected form. [`Manifest::context`] intersects the
//! request with a [`HostPolicy`] into an [`ExecutionContext`].
//!
//! ```toml
//! [component]
//! name = "fetcher"
//! version = "0.1.0"
//! description = "Fetches things"
//!
//! [limits]
//! memory = "32MiB"        # or a number of bytes
//! fuel = 50000000         # per call
//! timeout = "1s"          # per call
//! storage-quota = "10MiB"     # bytes of keys + values in its storage namespace
//! storage-keys = 100000       # keys in its storage namespace
//! http-requests-per-sec = 10  # outbound wasi:http requests
//! mailbox-capacity = 1024
//!
//! [capabilities]
//! filesystem = [{ host = "data", guest = "/data", access = "read" }]  # or "read-write"
//! environment = ["LANG", "GREETING=hello"]   # NAME copies the host's value
//! network = { outbound = ["127.0.0.1:8080", "*.example.com:443", "[::1]:*"] }
//! storage = { shared = ["cache.*"], shared-read-only = ["catalog"] }
//! messaging = { send = ["worker-*"], publish = ["events.*"], subscribe = ["events.**"], accept = ["host", "api-*"] }
//! services = { log = true, clocks = true, config = true }   # the default
//!
//! [config]
//! greeting = "hello"
//! ```
//!
//! Pattern syntax: see [`security::pattern`](crate::security::pattern).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};
use crate::sandbox::context::ExecutionContext;
use crate::sandbox::limits::ResourceLimits;
use crate::security::audit::AuditLog;
use crate::security::capability::{Capabilities, Decision, DirGrant};
use crate::security::pattern::{HostPattern, NamePatterns, PathPatterns};
use crate::security::policy::HostPolicy;
use crate::units::{de_opt_duration, de_opt_size, parse_toml, DurationValue, SizeValue};

/// A parsed `Component.toml`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "airssys-wasm component manifest (Component.toml)")]
pub struct Manifest {
    /// Identity.
    pub component: Identity,
    /// Resource limits.
    #[serde(default)]
    pub limits: LimitsRequest,
    /// What the component asks to reach. Nothing is reachable unless listed here.
    #[serde(default)]
    pub capabilities: CapabilityRequests,
    /// Configuration entries given to `initialize` and `services.get-config`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The file it was read from (relative grants resolve against its directory).
    #[serde(skip)]
    #[schemars(skip)]
    pub path: PathBuf,
}

/// `[component]`: who the component is.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The component's name: letters, digits, `-`, `_`, `.`.
    #[serde(deserialize_with = "de_name")]
    pub name: String,
    /// Its version, e.g. `0.1.0`.
    pub version: String,
    /// One line on what it does.
    #[serde(default)]
    pub description: String,
}

/// `[limits]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitsRequest {
    /// Linear memory: bytes or `64MiB`-style.
    #[serde(default, deserialize_with = "de_opt_size")]
    #[schemars(with = "Option<SizeValue>")]
    pub memory: Option<u64>,
    /// Fuel per call.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Wall-clock time per call: `250ms`, `5s`.
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(with = "Option<DurationValue>")]
    pub timeout: Option<Duration>,
    /// Storage quota: bytes or `10MiB`-style.
    #[serde(default, deserialize_with = "de_opt_size")]
    #[schemars(with = "Option<SizeValue>")]
    pub storage_quota: Option<u64>,
    /// Storage key-count quota.
    #[serde(default)]
    pub storage_keys: Option<u64>,
    /// Outbound HTTP requests per second (per instance).
    #[serde(default)]
    pub http_requests_per_sec: Option<u32>,
    /// Mailbox capacity in messages (an actor's `system.toml` setting overrides it).
    #[serde(default)]
    pub mailbox_capacity: Option<u32>,
    /// The host budget: bytes of its messages the host may hold at once
    /// (queued, in timers), capped by the policy's `max-host-bytes`.
    #[serde(default, deserialize_with = "de_opt_size")]
    #[schemars(with = "Option<SizeValue>")]
    pub host_bytes: Option<u64>,
    /// Subscriptions held at once, capped by the policy's `max-subscriptions`.
    #[serde(default)]
    pub subscriptions: Option<u32>,
}

/// `[capabilities]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CapabilityRequests {
    /// Host directories, each mapped to a guest path, read or read-write.
    #[serde(default)]
    pub filesystem: Vec<FilesystemRequest>,
    /// Environment variables: `NAME` (the host's value) or `NAME=value`.
    #[serde(default)]
    pub environment: Vec<String>,
    /// Outbound network.
    #[serde(default)]
    pub network: NetworkRequest,
    /// Shared storage namespaces (its own namespace is always granted).
    #[serde(default)]
    pub storage: StorageRequest,
    /// Messaging.
    #[serde(default)]
    pub messaging: MessagingRequest,
    /// Host services; all granted unless set to false.
    #[serde(default)]
    pub services: ServicesRequest,
}

/// One directory grant.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesystemRequest {
    /// The host directory (relative to the manifest's directory).
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// `read` or `read-write`.
    pub access: Access,
}

/// Access to a granted directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Read only.
    Read,
    /// Read and write.
    ReadWrite,
}

/// `network`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkRequest {
    /// `HOST:PORT` patterns for TCP, UDP and name lookup.
    #[serde(default, deserialize_with = "de_host_patterns")]
    #[schemars(with = "Vec<String>")]
    pub outbound: Vec<HostPattern>,
}

/// `storage`: shared namespaces (its own namespace is always granted).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StorageRequest {
    /// Shared namespaces it may read and write (name patterns).
    #[serde(default, deserialize_with = "de_name_patterns")]
    #[schemars(with = "Vec<String>")]
    pub shared: NamePatterns,
    /// Shared namespaces it may only read (name patterns).
    #[serde(default, deserialize_with = "de_name_patterns")]
    #[schemars(with = "Vec<String>")]
    pub shared_read_only: NamePatterns,
}

/// `messaging`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagingRequest {
    /// Components it may send and request to.
    #[serde(default, deserialize_with = "de_name_patterns")]
    #[schemars(with = "Vec<String>")]
    pub send: NamePatterns,
    /// Topics it may publish to.
    #[serde(default, deserialize_with = "de_name_patterns")]
    #[schemars(with = "Vec<String>")]
    pub publish: NamePatterns,
    /// Topics it may subscribe to.
    #[serde(default, deserialize_with = "de_name_patterns")]
    #[schemars(with = "Vec<String>")]
    pub subscribe: NamePatterns,
    /// Who may send to it: actor id patterns (absent: anyone; `host` names the embedder).
    #[serde(default, deserialize_with = "de_opt_name_patterns")]
    #[schemars(with = "Option<Vec<String>>")]
    pub accept: Option<NamePatterns>,
}

/// `services`: each granted unless set to `false`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServicesRequest {
    /// `services.log`.
    #[serde(default = "yes")]
    pub log: bool,
    /// `services.now-millis`, `services.monotonic-nanos`.
    #[serde(default = "yes")]
    pub clocks: bool,
    /// `services.get-config`.
    #[serde(default = "yes")]
    pub config: bool,
}

impl Default for ServicesRequest {
    fn default() -> Self {
        ServicesRequest {
            log: true,
            clocks: true,
            config: true,
        }
    }
}

fn yes() -> bool {
    true
}

fn de_host_patterns<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<HostPattern>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| HostPattern::parse(s).map_err(serde::de::Error::custom))
        .collect()
}

fn de_name_patterns<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<NamePatterns, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    NamePatterns::new(&v).map_err(serde::de::Error::custom)
}

fn de_opt_name_patterns<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<NamePatterns>, D::Error> {
    de_name_patterns(d).map(Some)
}

fn de_name<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(s)
    } else {
        Err(serde::de::Error::custom(format!(
            "invalid component name {s:?}: expected letters, digits, '-', '_' or '.'"
        )))
    }
}

impl Manifest {
    /// A manifest asking for nothing, for building requests in code (the CLI's
    /// `--dir`, `--env` and `--allow-outbound` are added to one this way, so
    /// they meet the host policy like any manifest). Relative grants resolve
    /// against the current directory.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Manifest {
            component: Identity {
                name: name.into(),
                version: version.into(),
                description: String::new(),
            },
            limits: LimitsRequest::default(),
            capabilities: CapabilityRequests::default(),
            config: BTreeMap::new(),
            path: PathBuf::new(),
        }
    }

    /// Reads and validates a manifest file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`], or [`Error::Manifest`] naming the file, line and column of what does not
    /// parse.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses manifest text; `path` names it in errors and anchors relative grants.
    ///
    /// # Errors
    ///
    /// [`Error::Manifest`] naming the line and column of what does not parse.
    pub fn parse(path: impl AsRef<Path>, text: &str) -> Result<Self> {
        let path = path.as_ref();
        let mut m: Manifest = parse_toml(path, text)?;
        m.path = path.to_path_buf();
        Ok(m)
    }

    /// The JSON Schema of `Component.toml`, for editors.
    pub fn json_schema() -> String {
        let schema = schemars::schema_for!(Manifest);
        serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
    }

    /// The execution context the component runs with: the manifest's request
    /// intersected with `policy`. Every grant and every refusal is recorded in
    /// `audit`; a refused request is not granted, and the component sees it as
    /// absent (no such directory, variable or route).
    ///
    /// # Errors
    ///
    /// [`Error::Manifest`] when a request exceeds what the policy allows in a way that cannot
    /// be narrowed (a limit over the policy's maximum, a directory that does not exist).
    pub fn context(&self, policy: &HostPolicy, audit: AuditLog) -> Result<ExecutionContext> {
        let name = self.component.name.as_str();
        let (forbidden_paths, forbidden_env) = policy.compiled(&self.path)?;
        let mut caps = Capabilities::default().with_audit(audit);

        self.grant_dirs(&mut caps, &forbidden_paths)?;
        self.grant_env(&mut caps, &forbidden_env);
        self.grant_network(&mut caps, policy);
        caps.storage_shared = self.capabilities.storage.shared.clone();
        caps.storage_shared_read = self.capabilities.storage.shared_read_only.clone();
        caps.send = self.capabilities.messaging.send.clone();
        caps.publish = self.capabilities.messaging.publish.clone();
        caps.subscribe = self.capabilities.messaging.subscribe.clone();
        caps.accept = self.capabilities.messaging.accept.clone();
        caps.policy = std::sync::Arc::new(policy.clone());
        let s = self.capabilities.services;
        caps.services = crate::security::capability::ServiceGrants {
            log: s.log,
            clocks: s.clocks,
            config: s.config,
        };

        let limits = self.limits_under(policy);
        let mut ctx = ExecutionContext::new(name)
            .with_limits(limits)
            .with_capabilities(caps);
        for (k, v) in &self.config {
            ctx = ctx.with_config(k, v);
        }
        Ok(ctx)
    }

    /// The manifest's filesystem requests that the policy does not forbid,
    /// each decision audited.
    fn grant_dirs(&self, caps: &mut Capabilities, forbidden_paths: &PathPatterns) -> Result<()> {
        let name = self.component.name.as_str();
        let base = self.path.parent().unwrap_or(Path::new("."));
        for fs in &self.capabilities.filesystem {
            let host = base.join(&fs.host);
            let canonical = host.canonicalize().map_err(|e| Error::Manifest {
                path: self.path.clone(),
                message: format!("filesystem grant {}: {e}", host.display()),
            })?;
            let resource = format!("{} -> {}", canonical.display(), fs.guest);
            let function = "wasi:filesystem/preopens.get-directories";
            if let Some(rule) = forbidden_paths.forbidding_dir(&canonical.to_string_lossy()) {
                caps.record(
                    name,
                    function,
                    &resource,
                    &Decision::deny(format!("host policy forbidden-paths {rule}")),
                );
                continue;
            }
            let read_only = fs.access == Access::Read;
            let rule = if read_only {
                "manifest filesystem read"
            } else {
                "manifest filesystem read-write"
            };
            caps.record(name, function, &resource, &Decision::allow(rule));
            caps.dirs.push(DirGrant {
                host: canonical,
                guest: fs.guest.clone(),
                read_only,
            });
        }

        Ok(())
    }

    /// The manifest's environment requests that the policy does not forbid
    /// and the host has, each decision audited.
    fn grant_env(&self, caps: &mut Capabilities, forbidden_env: &NamePatterns) {
        let name = self.component.name.as_str();
        for entry in &self.capabilities.environment {
            let (var, value) = match entry.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (entry.as_str(), std::env::var(entry).ok()),
            };
            let function = "wasi:cli/environment.get-environment";
            if let Some(rule) = forbidden_env.matching(var) {
                caps.record(
                    name,
                    function,
                    var,
                    &Decision::deny(format!("host policy forbidden-env {rule}")),
                );
                continue;
            }
            match value {
                Some(v) => {
                    caps.record(
                        name,
                        function,
                        var,
                        &Decision::allow("manifest environment"),
                    );
                    caps.env.push((var.to_string(), v));
                }
                None => caps.record(name, function, var, &Decision::deny("not set on the host")),
            }
        }
    }

    /// The manifest's outbound patterns, when the policy allows the network.
    fn grant_network(&self, caps: &mut Capabilities, policy: &HostPolicy) {
        let name = self.component.name.as_str();
        let outbound = &self.capabilities.network.outbound;
        if !outbound.is_empty() {
            if policy.allow_network {
                caps.outbound = outbound.clone();
                caps.forbidden_ports = policy.forbidden_ports.clone();
            } else {
                for p in outbound {
                    caps.record(
                        name,
                        "wasi:sockets",
                        p.as_str(),
                        &Decision::deny("host policy allow-network = false"),
                    );
                }
            }
        }
    }

    /// The manifest's limits, the defaults where it is silent, each capped by
    /// the policy's maximum.
    fn limits_under(&self, policy: &HostPolicy) -> ResourceLimits {
        let defaults = ResourceLimits::default();
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ResourceLimits {
            memory_bytes: min(
                self.limits.memory.or(defaults.memory_bytes),
                policy.max_memory,
            ),
            fuel: min(self.limits.fuel, policy.max_fuel),
            timeout: match (self.limits.timeout.or(defaults.timeout), policy.max_timeout) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            storage: crate::storage::Quota {
                bytes: self
                    .limits
                    .storage_quota
                    .or(policy.default_storage_quota)
                    .unwrap_or(defaults.storage.bytes)
                    .min(policy.max_storage_quota.unwrap_or(u64::MAX)),
                keys: self
                    .limits
                    .storage_keys
                    .or(policy.default_storage_keys)
                    .unwrap_or(defaults.storage.keys)
                    .min(policy.max_storage_keys.unwrap_or(u64::MAX)),
            },
            http: crate::sandbox::limits::HttpLimits {
                requests_per_sec: match (
                    self.limits.http_requests_per_sec,
                    policy.max_http_requests_per_sec,
                ) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
                ..defaults.http
            },
            host: crate::sandbox::limits::HostLimits {
                held_bytes: self
                    .limits
                    .host_bytes
                    .unwrap_or(defaults.host.held_bytes)
                    .min(policy.max_host_bytes.unwrap_or(u64::MAX)),
                subscriptions: self
                    .limits
                    .subscriptions
                    .unwrap_or(defaults.host.subscriptions)
                    .min(policy.max_subscriptions.unwrap_or(u32::MAX)),
                mailbox_capacity: self.limits.mailbox_capacity.map(|n| n.max(1) as usize),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[component]
name = "fetcher"
version = "0.1.0"

[limits]
memory = "32MiB"
fuel = 1000
timeout = "250ms"
storage-quota = 1048576
mailbox-capacity = 16

[capabilities]
environment = ["GREETING=hi", "AWS_SECRET=x"]
network = { outbound = ["127.0.0.1:8080", "*.example.com:443", "[::1]:*"] }
messaging = { send = ["worker-*"] }
services = { config = false }

[config]
k = "v"
"#;

    #[test]
    fn a_full_manifest_parses_and_intersects_with_the_policy() {
        let m = Manifest::parse("Component.toml", FULL).unwrap();
        assert_eq!(m.component.name, "fetcher");
        assert_eq!(m.limits.memory, Some(32 << 20));
        assert_eq!(m.limits.timeout, Some(Duration::from_millis(250)));
        let policy = HostPolicy {
            forbidden_env: vec!["AWS_*".into()],
            forbidden_ports: vec![8080],
            max_memory: Some(16 << 20),
            ..HostPolicy::default()
        };
        let audit = AuditLog::in_memory();
        let ctx = m.context(&policy, audit.clone()).unwrap();
        assert_eq!(
            ctx.limits().memory_bytes,
            Some(16 << 20),
            "the smaller of the two"
        );
        assert_eq!(ctx.limits().fuel, Some(1000));
        let caps = ctx.capabilities();
        assert_eq!(caps.env, vec![("GREETING".to_string(), "hi".to_string())]);
        assert!(!caps.services.config);
        assert!(
            !caps
                .check_connect("127.0.0.1:8080".parse().unwrap())
                .allowed,
            "policy forbids 8080"
        );
        assert!(caps.check_connect("[::1]:9".parse().unwrap()).allowed);
        assert!(caps.check_send("worker-3").allowed);
        assert_eq!(ctx.config(), &[("k".to_string(), "v".to_string())]);
        let denied: Vec<_> = audit
            .events()
            .into_iter()
            .filter(|e| e.decision == crate::security::audit::Verdict::Deny)
            .collect();
        assert_eq!(denied.len(), 1);
        assert_eq!(denied[0].resource, "AWS_SECRET");
        assert_eq!(denied[0].rule, "host policy forbidden-env AWS_*");
    }

    #[test]
    fn storage_quotas_default_from_the_policy_and_are_capped_by_it() {
        let text = "[component]\nname = \"a\"\nversion = \"1\"\n[limits]\nstorage-quota = \"2MiB\"\nstorage-keys = 50\n[capabilities]\nstorage = { shared = [\"cache.*\"], shared-read-only = [\"catalog\"] }\n";
        let m = Manifest::parse("Component.toml", text).unwrap();
        let audit = AuditLog::default();
        let ctx = m.context(&HostPolicy::default(), audit.clone()).unwrap();
        assert_eq!(ctx.limits().storage.bytes, 2 << 20);
        assert_eq!(ctx.limits().storage.keys, 50);
        let capped = HostPolicy {
            max_storage_quota: Some(1 << 20),
            max_storage_keys: Some(10),
            ..HostPolicy::default()
        };
        let ctx = m.context(&capped, audit.clone()).unwrap();
        assert_eq!(ctx.limits().storage.bytes, 1 << 20);
        assert_eq!(ctx.limits().storage.keys, 10);
        let caps = ctx.capabilities();
        assert!(caps.check_storage("cache.x", true).allowed);
        assert!(caps.check_storage("catalog", false).allowed);
        let d = caps.check_storage("catalog", true);
        assert!(!d.allowed);
        assert_eq!(
            &*d.rule,
            "storage.shared-read-only catalog grants reads only"
        );
        assert!(!caps.check_storage("other", false).allowed);
        let bare = Manifest::new("b", "1");
        let defaults = HostPolicy {
            default_storage_quota: Some(4096),
            default_storage_keys: Some(7),
            ..HostPolicy::default()
        };
        let ctx = bare.context(&defaults, audit).unwrap();
        assert_eq!(ctx.limits().storage.bytes, 4096);
        assert_eq!(ctx.limits().storage.keys, 7);
    }

    #[test]
    fn errors_name_the_file_line_column_and_expected_form() {
        let cases = [
            ("[component]\nname = \"a\"\nversion = \"1\"\nbogus = 1\n", "Component.toml: line 4, column 1: unknown field `bogus`"),
            ("[component]\nname = \"a\"\nversion = \"1\"\n[limits]\nmemory = \"lots\"\n", "line 5, column 10: invalid size \"lots\""),
            ("[component]\nname = \"a\"\nversion = \"1\"\n[capabilities]\nnetwork = { outbound = [\"example.com\"] }\n", "line 5, column 24: invalid host pattern \"example.com\": missing :PORT"),
            ("[component]\nname = \"a b\"\nversion = \"1\"\n", "line 2, column 8: invalid component name"),
            ("[component]\nname = \"a\"\n", "missing field `version`"),
            ("[component]\nname = \"a\"\nversion = \"1\"\n[capabilities]\nfilesystem = [{ host = \"x\", guest = \"/x\", access = \"write\" }]\n", "unknown variant `write`, expected `read` or `read-write`"),
        ];
        for (text, expected) in cases {
            let err = Manifest::parse("Component.toml", text)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
            assert!(err.starts_with("Component.toml: "), "{err}");
        }
    }

    #[test]
    fn forbidden_paths_refuse_the_grant() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("secret")).unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let text = "[component]\nname = \"a\"\nversion = \"1\"\n[capabilities]\nfilesystem = [\n  { host = \"data\", guest = \"/data\", access = \"read\" },\n  { host = \"secret\", guest = \"/s\", access = \"read-write\" },\n]\n";
        let m = Manifest::parse(dir.path().join("Component.toml"), text).unwrap();
        let secret = dir.path().join("secret").canonicalize().unwrap();
        let policy = HostPolicy {
            forbidden_paths: vec![format!("{}/**", secret.display())],
            ..HostPolicy::default()
        };
        let ctx = m.context(&policy, AuditLog::default()).unwrap();
        let dirs = &ctx.capabilities().dirs;
        assert_eq!(dirs.len(), 1);
        assert_eq!(dirs[0].guest, "/data");
        assert!(dirs[0].read_only);
    }

    #[test]
    fn the_committed_json_schema_is_current() {
        let committed = include_str!("../../../../schemas/component-manifest.schema.json");
        assert_eq!(
            committed,
            Manifest::json_schema(),
            "regenerate with: cargo run -p airssys-wasm-cli -- schema > schemas/component-manifest.schema.json"
        );
    }
}
