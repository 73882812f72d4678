//! The audit trail: every allow and deny as a structured event, written as JSON
//! Lines to a file, kept in memory, or both; denials are also logged.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The action was permitted.
    Allow,
    /// The action was refused.
    Deny,
}

/// One access decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// The component that asked.
    pub component: String,
    /// `interface.function`, e.g. `wasi:sockets/tcp.connect` or `services.get-config`.
    pub function: String,
    /// What was asked for: a path, an address, a key, a name.
    pub resource: String,
    /// Allow or deny.
    pub decision: Verdict,
    /// The rule that decided: the grant pattern, `not granted`, or the host-policy rule.
    pub rule: String,
}

#[derive(Default)]
struct Sinks {
    file: Option<BufWriter<File>>,
    memory: Option<Vec<AuditEvent>>,
}

/// Where audit events go. Cheap to clone; clones share the sinks. The default
/// records nothing (denials are still logged through `tracing`).
#[derive(Clone, Default)]
pub struct AuditLog {
    sinks: Option<Arc<Mutex<Sinks>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("enabled", &self.sinks.is_some())
            .finish()
    }
}

impl AuditLog {
    /// An audit log that appends JSON Lines to `path` (created if missing).
    pub fn to_file(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(AuditLog {
            sinks: Some(Arc::new(Mutex::new(Sinks {
                file: Some(BufWriter::new(file)),
                memory: None,
            }))),
        })
    }

    /// An audit log that keeps events in memory; read them with [`AuditLog::events`].
    pub fn in_memory() -> Self {
        AuditLog {
            sinks: Some(Arc::new(Mutex::new(Sinks {
                file: None,
                memory: Some(Vec::new()),
            }))),
        }
    }

    /// Whether events are recorded anywhere.
    pub fn is_enabled(&self) -> bool {
        self.sinks.is_some()
    }

    /// The events kept in memory so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.sinks
            .as_ref()
            .and_then(|s| s.lock().unwrap_or_else(|p| p.into_inner()).memory.clone())
            .unwrap_or_default()
    }

    /// Records one decision. Denials are also logged as warnings.
    pub fn record(
        &self,
        component: &str,
        function: &str,
        resource: &str,
        decision: Verdict,
        rule: &str,
    ) {
        if decision == Verdict::Deny {
            tracing::warn!(target: "airssys_wasm::audit", component, function, resource, rule, "capability denied");
        }
        let Some(sinks) = &self.sinks else { return };
        let event = AuditEvent {
            ts_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            component: component.to_string(),
            function: function.to_string(),
            resource: resource.to_string(),
            decision,
            rule: rule.to_string(),
        };
        let mut sinks = sinks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = &mut sinks.file {
            let written = serde_json::to_writer(&mut *file, &event)
                .map_err(std::io::Error::from)
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| {
                    if decision == Verdict::Deny {
                        file.flush()
                    } else {
                        Ok(())
                    }
                });
            if let Err(e) = written {
                tracing::error!("cannot write the audit log: {e}");
            }
        }
        if let Some(memory) = &mut sinks.memory {
            memory.push(event);
        }
    }

    /// Writes buffered events to the file.
    pub fn flush(&self) {
        if let Some(sinks) = &self.sinks {
            if let Some(file) = &mut sinks.lock().unwrap_or_else(|p| p.into_inner()).file {
                if let Err(e) = file.flush() {
                    tracing::error!("cannot write the audit log: {e}");
                }
            }
        }
    }
}

impl Drop for Sinks {
    fn drop(&mut self) {
        if let Some(file) = &mut self.file {
            let _ = file.flush();
        }
    }
}
