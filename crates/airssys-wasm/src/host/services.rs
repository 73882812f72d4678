//! `airssys:component/services`: structured logging into the host's `tracing`,
//! clocks, and configuration lookup. Owns its capability table and checks: each
//! function checks the caller's grants and audits the decision before it acts.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::airssys::component::services::{self, LogLevel};
use crate::bindings::v0_1::airssys::component as v0_1;
use crate::bindings::GuestError;
use crate::sandbox::limits::LogBudget;
use crate::security::capability::{Capabilities, CapabilityKind, FunctionSignature, WitInterface};
use crate::security::policy::Capability;

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
    pub(crate) log: LogMeter,
}

/// The log budget of one instance: a token bucket of lines and one of bytes.
pub(crate) struct LogMeter {
    budget: LogBudget,
    tokens: f64,
    bytes: f64,
    refilled: Instant,
    /// Dropped since the last summary.
    pending_dropped: u64,
    /// Dropped over the instance's life.
    pub(crate) dropped: u64,
}

impl LogMeter {
    pub(crate) fn new(budget: LogBudget) -> Self {
        LogMeter {
            budget,
            tokens: budget.burst as f64,
            bytes: Self::byte_burst(&budget),
            refilled: Instant::now(),
            pending_dropped: 0,
            dropped: 0,
        }
    }

    fn byte_burst(budget: &LogBudget) -> f64 {
        (budget.bytes_per_sec as f64 * 2.0).max(budget.max_line_bytes as f64)
    }

    /// Takes one line of `len` bytes from the buckets; false (and counted)
    /// when either is empty.
    fn admit(&mut self, len: usize) -> bool {
        let now = Instant::now();
        let rate = self.budget.lines_per_sec as f64;
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(self.budget.burst.max(1) as f64);
        self.bytes = (self.bytes + elapsed * self.budget.bytes_per_sec as f64)
            .min(Self::byte_burst(&self.budget));
        self.refilled = now;
        let len = len.min(self.budget.max_line_bytes) as f64;
        if self.tokens >= 1.0 && self.bytes >= len {
            self.tokens -= 1.0;
            self.bytes -= len;
            true
        } else {
            self.pending_dropped += 1;
            self.dropped += 1;
            false
        }
    }

    /// One summary line for what was dropped since the last one (called after each call).
    pub(crate) fn summarize(&mut self, component: &str) {
        if self.pending_dropped > 0 {
            let b = self.budget;
            tracing::warn!(
                target: "airssys_wasm::guest",
                component,
                dropped = self.pending_dropped,
                "{component}: dropped {} log lines over the log budget ({} lines/s, burst {}, {} bytes/s)",
                self.pending_dropped,
                b.lines_per_sec,
                b.burst,
                b.bytes_per_sec
            );
            self.pending_dropped = 0;
        }
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, saying how much was cut.
fn cap_line(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let total = s.len();
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(&format!("… ({} bytes cut)", total - cut));
    s
}

impl ServicesCtx {
    pub(crate) fn new(
        component: Arc<str>,
        config: Arc<[(String, String)]>,
        caps: Arc<Capabilities>,
        budget: LogBudget,
    ) -> Self {
        ServicesCtx {
            component,
            config,
            caps,
            epoch: Instant::now(),
            log: LogMeter::new(budget),
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
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ServicesCtx,
) -> wasmtime::Result<()> {
    // `services` uses the type-only `types` interface, which must be linked too.
    crate::bindings::airssys::component::types::add_to_linker::<T, HasSelf<ServicesCtx>>(
        linker, get,
    )?;
    services::add_to_linker::<T, HasSelf<ServicesCtx>>(linker, get)?;
    // The same services at the first contract, for guests built against 0.1.0.
    v0_1::types::add_to_linker::<T, HasSelf<ServicesCtx>>(linker, get)?;
    v0_1::services::add_to_linker::<T, HasSelf<ServicesCtx>>(linker, get)
}

/// `airssys:component/services@0.1.0`: the same functions, the same checks and
/// audit, in that contract's types.
impl v0_1::services::Host for ServicesCtx {
    fn log(
        &mut self,
        level: v0_1::services::LogLevel,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        use v0_1::services::LogLevel as L;
        let level = match level {
            L::Trace => LogLevel::Trace,
            L::Debug => LogLevel::Debug,
            L::Info => LogLevel::Info,
            L::Warn => LogLevel::Warn,
            L::Error => LogLevel::Error,
        };
        services::Host::log(self, level, message, fields)
    }

    fn now_millis(&mut self) -> Result<u64, v0_1::types::Error> {
        services::Host::now_millis(self).map_err(crate::bindings::v0_1::error_back)
    }

    fn monotonic_nanos(&mut self) -> Result<u64, v0_1::types::Error> {
        services::Host::monotonic_nanos(self).map_err(crate::bindings::v0_1::error_back)
    }

    fn get_config(&mut self, key: String) -> Result<Option<String>, v0_1::types::Error> {
        services::Host::get_config(self, key).map_err(crate::bindings::v0_1::error_back)
    }
}

impl v0_1::types::Host for ServicesCtx {}

impl services::Host for ServicesCtx {
    fn log(&mut self, level: LogLevel, message: String, fields: Vec<(String, String)>) {
        let len = message.len()
            + fields
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>();
        if !self.log.admit(len) || self.check(Capability::Log, "services.log", "").is_err() {
            return;
        }
        let component = &*self.component;
        let message = if fields.is_empty() {
            message
        } else {
            format!("{message} {}", DisplayFields(&fields))
        };
        let message = cap_line(message, self.log.budget.max_line_bytes);
        // Escaped after the cut, so the line stays at most ~4× the cap.
        let message = crate::units::escape_controls(&message);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_budget_admits_a_burst_then_the_rate_and_counts_the_rest() {
        let mut m = LogMeter::new(LogBudget {
            lines_per_sec: 10,
            burst: 5,
            max_line_bytes: 8,
            bytes_per_sec: 1 << 20,
        });
        let admitted = (0..50).filter(|_| m.admit(1)).count();
        assert_eq!(admitted, 5);
        assert_eq!(m.dropped, 45);
        std::thread::sleep(std::time::Duration::from_millis(220));
        let admitted = (0..50).filter(|_| m.admit(1)).count();
        assert!((2..=3).contains(&admitted), "{admitted}");
    }

    #[test]
    fn the_log_budget_bounds_bytes_as_well_as_lines() {
        let mut m = LogMeter::new(LogBudget {
            lines_per_sec: 1_000_000,
            burst: 1_000_000,
            max_line_bytes: 4096,
            bytes_per_sec: 4096,
        });
        // Two seconds' worth (8 KiB) at once, in 4 KiB lines: two lines.
        let admitted = (0..100).filter(|_| m.admit(4096)).count();
        assert_eq!(admitted, 2);
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        assert_eq!(cap_line("short".into(), 8), "short");
        assert_eq!(cap_line("ééééé".into(), 5), "éé… (6 bytes cut)");
    }
}
