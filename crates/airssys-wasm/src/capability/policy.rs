//! The host policy: what the embedder or operator allows whatever a manifest asks.

use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::pattern::{NamePatterns, PathPatterns};
use crate::error::{Error, Result};
use crate::manifest::{de_opt_duration, de_opt_size, parse_toml, DurationValue, SizeValue};

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
        }
    }
}

impl HostPolicy {
    /// Reads a policy from a TOML file; errors name the file, line and column.
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
