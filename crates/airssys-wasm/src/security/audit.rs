//! The audit trail: allow and deny decisions as structured events, written as
//! JSON Lines to a file, kept in memory, or both; denials are also logged.
//!
//! A guest decides how often the host decides, so the trail is bounded per
//! guest, and every *kind* of decision still reaches it:
//! - strings a guest controls (the resource, the component) are cut to 256
//!   bytes, ending `…(N bytes)` with their original length;
//! - decisions are metered per (component, function, verdict): 100 a second
//!   with bursts of 200 for allows, 10 a second with bursts of 20 for
//!   denials. What the meter suppresses is counted, and the next event of
//!   that kind (or [`AuditLog::flush`]) writes one summary line with
//!   `suppressed: N`;
//! - cheap, non-sensitive allowed calls (the clocks, the actor's own log) are
//!   written once per component and then only counted.
//!
//! [`AuditLog::counts`] has the exact totals of every kind, written or not.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
    /// On a summary line: how many decisions of this kind (component,
    /// function, verdict) the meter left out since the last line; otherwise 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub suppressed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The longest guest-controlled string an event keeps.
const MAX_FIELD_BYTES: usize = 256;
/// Kinds the meter tracks before it summarises and starts afresh.
const MAX_KINDS: usize = 4096;

/// The meter of one kind of decision.
struct Meter {
    tokens: f64,
    at: Instant,
    suppressed: u64,
    total: u64,
    last: Option<AuditEvent>,
}

/// (lines per second, burst) for a kind.
fn rate(function: &str, decision: Verdict) -> (f64, f64) {
    match (decision, function) {
        (Verdict::Allow, "services.now-millis" | "services.monotonic-nanos" | "services.log") => {
            (0.0, 1.0)
        }
        (Verdict::Allow, _) => (100.0, 200.0),
        (Verdict::Deny, _) => (10.0, 20.0),
    }
}

#[derive(Default)]
struct Sinks {
    file: Option<BufWriter<File>>,
    memory: Option<Vec<AuditEvent>>,
    meters: HashMap<(String, String, Verdict), Meter>,
    /// Totals of kinds whose meters were reset, per function (component `*`).
    totals: HashMap<(String, String, Verdict), u64>,
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
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) when the file cannot be opened for appending.
    pub fn to_file(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(AuditLog {
            sinks: Some(Arc::new(Mutex::new(Sinks {
                file: Some(BufWriter::new(file)),
                memory: None,
                meters: HashMap::new(),
                totals: HashMap::new(),
            }))),
        })
    }

    /// An audit log that keeps events in memory; read them with [`AuditLog::events`].
    pub fn in_memory() -> Self {
        AuditLog {
            sinks: Some(Arc::new(Mutex::new(Sinks {
                file: None,
                memory: Some(Vec::new()),
                meters: HashMap::new(),
                totals: HashMap::new(),
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

    /// Records one decision, metered per kind (see the module docs).
    /// Denials that are written are also logged as warnings.
    pub fn record(
        &self,
        component: &str,
        function: &str,
        resource: &str,
        decision: Verdict,
        rule: &str,
    ) {
        let Some(sinks) = &self.sinks else {
            if decision == Verdict::Deny {
                let resource = crate::units::truncate(resource, MAX_FIELD_BYTES);
                let component = crate::units::truncate(component, MAX_FIELD_BYTES);
                tracing::warn!(target: "airssys_wasm::audit", component, function, resource, rule, "capability denied");
            }
            return;
        };
        let now = Instant::now();
        let event = AuditEvent {
            ts_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            component: crate::units::truncate(component, MAX_FIELD_BYTES),
            function: crate::units::truncate(function, MAX_FIELD_BYTES),
            resource: crate::units::truncate(resource, MAX_FIELD_BYTES),
            decision,
            rule: crate::units::truncate(rule, MAX_FIELD_BYTES),
            suppressed: 0,
        };
        let mut sinks = sinks.lock().unwrap_or_else(|p| p.into_inner());
        if sinks.meters.len() >= MAX_KINDS {
            sinks.reset_meters();
        }
        let (per_sec, burst) = rate(function, decision);
        let key = (event.component.clone(), event.function.clone(), decision);
        let meter = sinks.meters.entry(key).or_insert_with(|| Meter {
            tokens: burst,
            at: now,
            suppressed: 0,
            total: 0,
            last: None,
        });
        meter.total += 1;
        meter.tokens =
            (meter.tokens + now.duration_since(meter.at).as_secs_f64() * per_sec).min(burst);
        meter.at = now;
        if meter.tokens < 1.0 {
            meter.suppressed += 1;
            meter.last = Some(event);
            return;
        }
        meter.tokens -= 1.0;
        let summary = (meter.suppressed > 0).then(|| AuditEvent {
            suppressed: std::mem::take(&mut meter.suppressed),
            ..meter.last.take().unwrap_or_else(|| event.clone())
        });
        if decision == Verdict::Deny {
            tracing::warn!(target: "airssys_wasm::audit", component = %event.component, function, resource = %event.resource, rule = %event.rule, "capability denied");
        }
        if let Some(summary) = summary {
            sinks.write(&summary);
        }
        sinks.write(&event);
    }

    /// Every kind of decision recorded so far, with its exact count (written
    /// or suppressed): `(component, function, verdict, count)`.
    pub fn counts(&self) -> Vec<(String, String, Verdict, u64)> {
        let Some(sinks) = &self.sinks else {
            return Vec::new();
        };
        let sinks = sinks.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: HashMap<(String, String, Verdict), u64> = sinks.totals.clone();
        for ((c, f, v), m) in &sinks.meters {
            *all.entry((c.clone(), f.clone(), *v)).or_default() += m.total;
        }
        let mut out: Vec<_> = all.into_iter().map(|((c, f, v), n)| (c, f, v, n)).collect();
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// Writes a summary line for every kind with suppressed decisions, then
    /// the buffered events to the file.
    pub fn flush(&self) {
        if let Some(sinks) = &self.sinks {
            let mut sinks = sinks.lock().unwrap_or_else(|p| p.into_inner());
            sinks.summarize();
            if let Some(file) = &mut sinks.file {
                if let Err(e) = file.flush() {
                    tracing::error!("cannot write the audit log: {e}");
                }
            }
        }
    }
}

impl Sinks {
    fn write(&mut self, event: &AuditEvent) {
        if let Some(file) = &mut self.file {
            let written = serde_json::to_writer(&mut *file, event)
                .map_err(std::io::Error::from)
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| {
                    if event.decision == Verdict::Deny {
                        file.flush()
                    } else {
                        Ok(())
                    }
                });
            if let Err(e) = written {
                tracing::error!("cannot write the audit log: {e}");
            }
        }
        if let Some(memory) = &mut self.memory {
            memory.push(event.clone());
        }
    }

    /// One summary line per kind with suppressed decisions.
    fn summarize(&mut self) {
        let summaries: Vec<AuditEvent> = self
            .meters
            .values_mut()
            .filter(|m| m.suppressed > 0)
            .filter_map(|m| {
                let n = std::mem::take(&mut m.suppressed);
                m.last.take().map(|e| AuditEvent { suppressed: n, ..e })
            })
            .collect();
        for s in &summaries {
            self.write(s);
        }
    }

    /// Summarises, folds the meters' totals into `totals`, and starts afresh.
    fn reset_meters(&mut self) {
        self.summarize();
        // Folded per function (not per component), so the totals stay bounded.
        for ((_, f, v), m) in self.meters.drain() {
            *self.totals.entry(("*".to_string(), f, v)).or_default() += m.total;
        }
    }
}

impl Drop for Sinks {
    fn drop(&mut self) {
        self.summarize();
        if let Some(file) = &mut self.file {
            let _ = file.flush();
        }
    }
}
