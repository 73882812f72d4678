//! The host side of every grant decision: the [`SecurityPolicy`] trait, asked at
//! each call after the manifest's grants, and its TOML implementation
//! [`HostPolicy`]: what the embedder or operator allows whatever a manifest asks.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::security::pattern::{NamePatterns, PathPatterns};
use crate::units::{de_opt_duration, de_opt_size, parse_toml, DurationValue, SizeValue};

/// One capability a component is about to exercise, as the host's
/// [`SecurityPolicy`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Capability<'a> {
    /// `services.log`.
    Log,
    /// `services.now-millis`, `services.monotonic-nanos`.
    Clocks,
    /// `services.get-config` of a key.
    Config(&'a str),
    /// A socket connect, bind or datagram to an address.
    Connect(SocketAddr),
    /// A DNS lookup of a name.
    Lookup(&'a str),
    /// `messaging.send`/`request`/`send-after` to an actor id.
    Send(&'a str),
    /// `messaging.publish` to a topic.
    Publish(&'a str),
    /// `messaging.subscribe` to a topic pattern.
    Subscribe(&'a str),
    /// An outbound HTTP request (`wasi:http`) to `host:port`.
    Http {
        /// The request's host (a name or an IP address).
        host: &'a str,
        /// Its port (from the scheme when the URL names none).
        port: u16,
    },
    /// Opening a shared storage namespace (`write`: for writing too).
    Storage {
        /// The shared namespace.
        namespace: &'a str,
        /// Whether writes are asked for.
        write: bool,
    },
}

impl std::fmt::Display for Capability<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Capability::Log => f.write_str("services.log"),
            Capability::Clocks => f.write_str("services.clocks"),
            Capability::Config(k) => write!(f, "services.config {k}"),
            Capability::Connect(a) => write!(f, "network.outbound {a}"),
            Capability::Lookup(n) => write!(f, "network.outbound {n}"),
            Capability::Send(t) => write!(f, "messaging.send {t}"),
            Capability::Publish(t) => write!(f, "messaging.publish {t}"),
            Capability::Subscribe(t) => write!(f, "messaging.subscribe {t}"),
            Capability::Http { host, port } => write!(f, "network.outbound http {host}:{port}"),
            Capability::Storage { namespace, write } => write!(
                f,
                "storage.shared {namespace} ({})",
                if *write { "read-write" } else { "read" }
            ),
        }
    }
}

/// What a [`SecurityPolicy`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyDecision {
    /// The host agrees.
    Allowed,
    /// The host refuses; `reason` reaches the audit log and the guest's error.
    Denied {
        /// Why, in a few words.
        reason: String,
    },
}

/// The host's consent, asked at every call after the component's own grants
/// allowed it (dual consent). A grant the manifest lacks is never asked about.
///
/// [`HostPolicy`] (TOML) is the default. An embedder plugs in its own to decide
/// per component at run time, e.g. to revoke a grant from a running actor: the
/// next call is denied and audited.
///
/// ```
/// use airssys_wasm::{Capability, PolicyDecision, SecurityPolicy};
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// struct Revocable(AtomicBool);
/// impl SecurityPolicy for Revocable {
///     fn check_capability(&self, _component: &str, capability: &Capability<'_>) -> PolicyDecision {
///         match capability {
///             Capability::Send(_) if self.0.load(Ordering::Relaxed) => PolicyDecision::Denied {
///                 reason: "revoked by the operator".into(),
///             },
///             _ => PolicyDecision::Allowed,
///         }
///     }
/// }
/// ```
pub trait SecurityPolicy: Send + Sync + 'static {
    /// Whether `component` may exercise `capability` now.
    fn check_capability(&self, component: &str, capability: &Capability<'_>) -> PolicyDecision;
}

impl SecurityPolicy for HostPolicy {
    fn check_capability(&self, _component: &str, capability: &Capability<'_>) -> PolicyDecision {
        match capability {
            Capability::Connect(addr) if self.forbidden_ports.contains(&addr.port()) => {
                PolicyDecision::Denied {
                    reason: format!("host policy forbids port {}", addr.port()),
                }
            }
            Capability::Http { port, .. } if self.forbidden_ports.contains(port) => {
                PolicyDecision::Denied {
                    reason: format!("host policy forbids port {port}"),
                }
            }
            Capability::Connect(_) | Capability::Lookup(_) | Capability::Http { .. }
                if !self.allow_network =>
            {
                PolicyDecision::Denied {
                    reason: "host policy allow-network = false".into(),
                }
            }
            _ => PolicyDecision::Allowed,
        }
    }
}

/// What the host allows. A manifest's request is granted only where the policy
/// agrees (dual consent). The default forbids nothing and caps nothing.
///
/// As a TOML file (`--policy FILE`):
///
/// ```toml
/// forbidden-paths = ["/etc/shadow", "/root/**"]
/// forbidden-ports = [22]
/// forbidden-env = ["AWS_*"]
/// max-memory = "256MiB"
/// max-fuel = 1000000000
/// max-timeout = "30s"
/// allow-network = true
/// default-storage-quota = "16MiB"
/// max-storage-quota = "1GiB"
/// default-storage-keys = 100000
/// max-storage-keys = 10000000
/// ```
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HostPolicy {
    /// Path globs that no filesystem grant may reach.
    #[serde(default)]
    pub forbidden_paths: Vec<String>,
    /// Ports no outbound connection may use.
    #[serde(default)]
    pub forbidden_ports: Vec<u16>,
    /// Environment variable name patterns never passed to a guest.
    #[serde(default)]
    pub forbidden_env: Vec<String>,
    /// The most linear memory any component may have.
    #[serde(default, deserialize_with = "de_opt_size")]
    #[schemars(with = "Option<SizeValue>")]
    pub max_memory: Option<u64>,
    /// The most fuel any call may have.
    #[serde(default)]
    pub max_fuel: Option<u64>,
    /// The longest timeout any call may have.
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(with = "Option<DurationValue>")]
    pub max_timeout: Option<Duration>,
    /// Whether any outbound network access may be granted.
    #[serde(default = "yes")]
    pub allow_network: bool,
    /// The storage quota (bytes) of a component whose manifest names none
    /// (unset: 64 MiB).
    #[serde(default, deserialize_with = "de_opt_size")]
    #[schemars(with = "Option<SizeValue>")]
    pub default_storage_quota: Option<u64>,
    /// The largest storage quota (bytes) any component may have.
    #[serde(default, deserialize_with = "de_opt_size")]
    #[schemars(with = "Option<SizeValue>")]
    pub max_storage_quota: Option<u64>,
    /// The key-count quota of a component whose manifest names none (unset: 1,000,000).
    #[serde(default)]
    pub default_storage_keys: Option<u64>,
    /// The largest key-count quota any component may have.
    #[serde(default)]
    pub max_storage_keys: Option<u64>,
    /// The most outbound HTTP requests per second any instance may make.
    #[serde(default)]
    pub max_http_requests_per_sec: Option<u32>,
    /// The largest host budget (bytes of its messages the host holds) any
    /// actor may have (unset: no cap beyond the 16 MiB default).
    #[serde(default, deserialize_with = "de_opt_size")]
    #[schemars(with = "Option<SizeValue>")]
    pub max_host_bytes: Option<u64>,
    /// The most subscriptions any actor may hold.
    #[serde(default)]
    pub max_subscriptions: Option<u32>,
}

fn yes() -> bool {
    true
}

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy {
            forbidden_paths: Vec::new(),
            forbidden_ports: Vec::new(),
            forbidden_env: Vec::new(),
            max_memory: None,
            max_fuel: None,
            max_timeout: None,
            allow_network: true,
            default_storage_quota: None,
            max_storage_quota: None,
            default_storage_keys: None,
            max_storage_keys: None,
            max_http_requests_per_sec: None,
            max_host_bytes: None,
            max_subscriptions: None,
        }
    }
}

impl HostPolicy {
    /// Reads a policy from a TOML file; errors name the file, line and column.
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
        let policy: HostPolicy = parse_toml(path, &text)?;
        policy.compiled(path)?;
        Ok(policy)
    }

    pub(crate) fn compiled(&self, origin: &Path) -> Result<(PathPatterns, NamePatterns)> {
        let invalid = |message: String| Error::Manifest {
            path: origin.to_path_buf(),
            message,
        };
        Ok((
            PathPatterns::new(&self.forbidden_paths).map_err(invalid)?,
            NamePatterns::new(&self.forbidden_env).map_err(invalid)?,
        ))
    }
}
