//! `airssys:component/services`: structured logging into the host's `tracing`,
//! clocks, and configuration lookup. Owns its capability table and checks: each
//! function checks the caller's grants and audits the decision before it acts.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::airssys::component::services::{self, LogLevel};
use crate::bindings::GuestError;
use crate::host::HostState;
use crate::security::capability::{
    Capabilities, Capability, CapabilityKind, FunctionSignature, WitInterface,
};

/// What each function of the interface requires.
pub(crate) const INTERFACE: WitInterface = WitInterface {
    name: "airssys:component/services",
    functions: &[
        FunctionSignature {
            name: "log",
            required_capabilities: &[CapabilityKind::Log],
        },
        FunctionSignature {
            name: "now-millis",
            required_capabilities: &[CapabilityKind::Clocks],
        },
        FunctionSignature {
            name: "monotonic-nanos",
            required_capabilities: &[CapabilityKind::Clocks],
        },
        FunctionSignature {
            name: "get-config",
            required_capabilities: &[CapabilityKind::Config],
        },
    ],
};

/// Per-instance state of the services interface.
pub(crate) struct ServicesCtx {
    component: Arc<str>,
    config: Arc<[(String, String)]>,
    caps: Arc<Capabilities>,
    epoch: Instant,
}

impl ServicesCtx {
    pub(crate) fn new(
        component: Arc<str>,
        config: Arc<[(String, String)]>,
        caps: Arc<Capabilities>,
    ) -> Self {
        ServicesCtx {
            component,
            config,
            caps,
            epoch: Instant::now(),
        }
    }

    /// Checks `kind` for `function` on `resource`, audits, and returns the
    /// guest-visible denial when refused.
    fn check(
        &self,
        capability: Capability<'_>,
        function: &str,
        resource: &str,
    ) -> Result<(), GuestError> {
        let d = self
            .caps
            .authorize(&self.component, function, resource, &capability);
        if d.allowed {
            Ok(())
        } else {
            Err(GuestError::CapabilityDenied(format!(
                "{function}: {}",
                d.rule
            )))
        }
    }
}

/// Adds the services interface to the linker.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    // `services` uses the type-only `types` interface, which must be linked too.
    crate::bindings::airssys::component::types::add_to_linker::<HostState, HasSelf<ServicesCtx>>(
        linker,
        |h| &mut h.services,
    )?;
    services::add_to_linker::<HostState, HasSelf<ServicesCtx>>(linker, |h| &mut h.services)
}

impl services::Host for ServicesCtx {
    fn log(&mut self, level: LogLevel, message: String, fields: Vec<(String, String)>) {
        if self.check(Capability::Log, "services.log", "").is_err() {
            return;
        }
        let component = &*self.component;
        let message = if fields.is_empty() {
            message
        } else {
            format!("{message} {}", DisplayFields(&fields))
        };
        match level {
            LogLevel::Trace => {
                tracing::trace!(target: "airssys_wasm::guest", component, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "airssys_wasm::guest", component, "{message}")
            }
            LogLevel::Info => tracing::info!(target: "airssys_wasm::guest", component, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "airssys_wasm::guest", component, "{message}"),
            LogLevel::Error => {
                tracing::error!(target: "airssys_wasm::guest", component, "{message}")
            }
        }
    }

    fn now_millis(&mut self) -> Result<u64, GuestError> {
        self.check(Capability::Clocks, "services.now-millis", "")?;
        Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0))
    }

    fn monotonic_nanos(&mut self) -> Result<u64, GuestError> {
        self.check(Capability::Clocks, "services.monotonic-nanos", "")?;
        Ok(self.epoch.elapsed().as_nanos() as u64)
    }

    fn get_config(&mut self, key: String) -> Result<Option<String>, GuestError> {
        self.check(Capability::Config(&key), "services.get-config", &key)?;
        Ok(self
            .config
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone()))
    }
}

impl crate::bindings::airssys::component::types::Host for ServicesCtx {}

struct DisplayFields<'a>(&'a [(String, String)]);

impl std::fmt::Display for DisplayFields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        Ok(())
    }
}
