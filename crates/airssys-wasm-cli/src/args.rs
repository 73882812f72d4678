//! Parsers for command-line values, in wasmtime's habits. Sizes and durations
//! are parsed by the library (`airssys_wasm::units`), as the manifest needs them too.

use std::path::{Path, PathBuf};

use airssys_wasm::security::signing::{SignedIdentity, TrustPolicy};
use airssys_wasm::units::{parse_duration, parse_size};
use airssys_wasm::{
    AuditLog, Component, Engine, EngineConfig, ExecutionContext, HostPolicy, Manifest,
    ResourceLimits,
};
use anyhow::{bail, Context, Result};
use clap::Args;

/// `HOST` or `HOST::GUEST`.
pub fn parse_dir(s: &str) -> Result<(PathBuf, String), String> {
    let (host, guest) = match s.split_once("::") {
        Some((h, g)) => (h, g),
        None => (s, s),
    };
    if host.is_empty() || guest.is_empty() {
        return Err(format!("invalid --dir {s:?}: expected HOST or HOST::GUEST"));
    }
    Ok((PathBuf::from(host), guest.to_string()))
}

/// `NAME=VALUE` or `NAME`.
pub fn parse_env(s: &str) -> Result<(String, Option<String>), String> {
    match s.split_once('=') {
        Some(("", _)) => Err(format!("invalid --env {s:?}: empty name")),
        Some((n, v)) => Ok((n.to_string(), Some(v.to_string()))),
        None if s.is_empty() => Err("invalid --env: empty name".to_string()),
        None => Ok((s.to_string(), None)),
    }
}

/// `KEY=VALUE`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("invalid {s:?}: expected KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_envs_and_config() {
        assert_eq!(
            parse_dir("/tmp/x::/data").unwrap(),
            (PathBuf::from("/tmp/x"), "/data".into())
        );
        assert_eq!(
            parse_dir("data").unwrap(),
            (PathBuf::from("data"), "data".into())
        );
        assert!(parse_dir("::/x").is_err());
        assert_eq!(parse_env("A=1").unwrap(), ("A".into(), Some("1".into())));
        assert_eq!(parse_env("HOME").unwrap(), ("HOME".into(), None));
        assert_eq!(
            parse_key_value("k=v=w").unwrap(),
            ("k".into(), "v=w".into())
        );
        assert!(parse_key_value("novalue").is_err());
    }
}

#[derive(Args)]
pub(crate) struct SecurityArgs {
    /// The component's manifest (Component.toml): identity, limits, capabilities.
    #[arg(long, value_name = "FILE")]
    pub(crate) manifest: Option<PathBuf>,
    /// The host policy (TOML): forbidden paths, ports and env, maximum limits.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// Append every capability decision to PATH as JSON Lines.
    #[arg(long, value_name = "PATH")]
    pub(crate) audit_log: Option<PathBuf>,
    /// Refuse the component unless FILE.sig verifies with this public key (repeatable).
    #[arg(long, value_name = "KEY.pub")]
    pub(crate) require_signature: Vec<PathBuf>,
}

impl SecurityArgs {
    pub(crate) fn manifest(&self) -> Result<Option<Manifest>> {
        Ok(match &self.manifest {
            Some(p) => Some(Manifest::from_file(p)?),
            None => None,
        })
    }

    /// The trusted keys, and the identity a signature must carry (the manifest's).
    pub(crate) fn trust(&self, manifest: Option<&Manifest>) -> Result<Trust> {
        let mut policy = TrustPolicy::default();
        for key in &self.require_signature {
            policy = policy.trust_key_file(key)?;
        }
        let identity = manifest.map(|m| SignedIdentity {
            name: m.component.name.clone(),
            version: m.component.version.clone(),
        });
        Ok(Trust { policy, identity })
    }

    /// The context from the manifest intersected with the policy, or a
    /// deny-all context with `limits` when there is no manifest.
    /// The context: the manifest's requests intersected with the host policy.
    pub(crate) fn context(&self, manifest: &Manifest) -> Result<(ExecutionContext, AuditLog)> {
        let audit = match &self.audit_log {
            Some(p) => {
                AuditLog::to_file(p).with_context(|| format!("audit log {}", p.display()))?
            }
            None => AuditLog::default(),
        };
        let policy = match &self.policy {
            Some(p) => HostPolicy::from_file(p)?,
            None => HostPolicy::default(),
        };
        let ctx = manifest.context(&policy, audit.clone())?;
        Ok((ctx, audit))
    }
}

/// Who must have signed a component, and as what.
pub(crate) struct Trust {
    pub(crate) policy: TrustPolicy,
    pub(crate) identity: Option<SignedIdentity>,
}

#[derive(Args)]
pub(crate) struct EngineArgs {
    /// Directory of the compile cache (default: $XDG_CACHE_HOME/airssys-wasm or ~/.cache/airssys-wasm).
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Do not read or write the compile cache.
    #[arg(long, global = true)]
    pub(crate) no_cache: bool,
}

impl EngineArgs {
    pub(crate) fn config(&self) -> EngineConfig {
        let config = EngineConfig::default();
        if self.no_cache {
            config.cache_dir(None)
        } else if let Some(dir) = &self.cache_dir {
            config.cache_dir(Some(dir.clone()))
        } else {
            config
        }
    }

    /// The CLI runs one instance per process: on-demand allocation avoids
    /// reserving a pool it would not use.
    pub(crate) fn engine(&self, metered: bool) -> Result<Engine> {
        Ok(Engine::new(
            self.config().pooling(false).consume_fuel(metered),
        )?)
    }

    /// For `up`: many instances, so the pooling allocator; fuel metered so
    /// that manifests' fuel limits hold.
    pub(crate) fn pooled_engine(&self) -> Result<Engine> {
        Ok(Engine::new(self.config().consume_fuel(true))?)
    }
}

#[derive(Args)]
pub(crate) struct LimitArgs {
    /// Fuel the guest may consume (per call for `call`).
    #[arg(long, value_name = "N")]
    pub(crate) fuel: Option<u64>,
    /// Maximum linear memory: bytes, or with a unit (`64MiB`, `1GiB`, `512KiB`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_memory: Option<u64>,
    /// Wall-clock limit (`250ms`, `5s`, `2m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) timeout: Option<std::time::Duration>,
}

impl LimitArgs {
    pub(crate) fn apply(&self, mut limits: ResourceLimits) -> ResourceLimits {
        if let Some(f) = self.fuel {
            limits.fuel = Some(f);
        }
        if let Some(m) = self.max_memory {
            limits.memory_bytes = Some(m);
        }
        if let Some(t) = self.timeout {
            limits.timeout = Some(t);
        }
        limits
    }
}

/// A payload argument: literal text, or `@FILE`.
pub(crate) fn read_payload(arg: &str) -> Result<Vec<u8>> {
    Ok(match arg.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("payload file {path}"))?,
        None => arg.as_bytes().to_vec(),
    })
}

/// Loads a component; an unsigned, tampered or wrongly-signed one is refused
/// before it is compiled.
pub(crate) fn load(
    engine: &Engine,
    file: &Path,
    allow_precompiled: bool,
    trust: &Trust,
) -> Result<Component> {
    let precompiled = wasmtime_precompiled(file)?;
    if precompiled {
        if !allow_precompiled {
            bail!(
                "{}: is precompiled code; pass --allow-precompiled to run it (it is trusted machine code)",
                file.display()
            );
        }
        // SAFETY: the user asserted with --allow-precompiled that this file was
        // produced by `airssys-wasm compile` and is trusted, which is the contract
        // of `load_precompiled_file` (as with `wasmtime run --allow-precompiled`).
        // The signature is checked on the bytes that are loaded (one read).
        return Ok(unsafe {
            engine.load_precompiled_file_trusted(file, &trust.policy, trust.identity.as_ref())
        }?);
    }
    Ok(engine.load_file_trusted(file, &trust.policy, trust.identity.as_ref())?)
}

pub(crate) fn wasmtime_precompiled(file: &Path) -> Result<bool> {
    let mut head = [0u8; 64];
    let n = std::fs::File::open(file)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .with_context(|| file.display().to_string())?;
    Ok(head[..n].starts_with(b"\x7fELF"))
}

pub(crate) fn identity_of(file: &Path, manifest: Option<&Path>) -> Result<SignedIdentity> {
    Ok(match manifest {
        Some(m) => {
            let m = Manifest::from_file(m)?;
            SignedIdentity {
                name: m.component.name,
                version: m.component.version,
            }
        }
        None => SignedIdentity {
            name: file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("component")
                .to_string(),
            version: "0.0.0".to_string(),
        },
    })
}

pub(crate) fn file_stem(file: &Path) -> &str {
    file.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("component")
}
