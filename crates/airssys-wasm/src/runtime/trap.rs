//! Turning what wasmtime reports after a failed call into an [`Error`] that names
//! the component, the cause and the limit.

use std::time::Duration;

use wasmtime::{Trap, WasmBacktrace};

use crate::error::{error_chain, Error};
use crate::host::RunState;
use crate::sandbox::context::ExecutionContext;
use crate::sandbox::limits::{DeadlineExceeded, ResourceLimits};

/// The facts about one failed call needed to explain it.
pub(crate) struct Failure<'a> {
    pub component: &'a str,
    pub limits: &'a ResourceLimits,
    /// The limiter refused a memory request during the call.
    pub memory_denied: bool,
    /// The last bytes the guest wrote to stderr (its panic message, usually).
    pub stderr_tail: String,
}

impl<'a> Failure<'a> {
    /// The facts of a failed call of a lifecycle or HTTP instance under `ctx`:
    /// whether its limiter refused memory, and the tail of its output.
    pub(crate) fn of(ctx: &'a ExecutionContext, run: &mut RunState) -> Self {
        Failure {
            component: ctx.component_id(),
            limits: ctx.limits(),
            memory_denied: run.limiter.memory_denied,
            stderr_tail: run.output.as_ref().map(|o| o.take()).unwrap_or_default(),
        }
    }

    pub(crate) fn classify(self, err: wasmtime::Error) -> Error {
        let component = self.component.to_string();
        let backtrace = err
            .downcast_ref::<WasmBacktrace>()
            .map(|bt| bt.to_string())
            .filter(|s| !s.trim().is_empty());
        if err.downcast_ref::<DeadlineExceeded>().is_some() {
            return Error::Timeout {
                component,
                limit: self.limits.timeout.unwrap_or(Duration::ZERO),
            };
        }
        let trap = err.downcast_ref::<Trap>().copied();
        match trap {
            Some(Trap::OutOfFuel) => {
                return Error::FuelExhausted {
                    component,
                    limit: self.limits.fuel.unwrap_or(0),
                }
            }
            Some(Trap::StackOverflow) => {
                return Error::StackOverflow {
                    component,
                    backtrace,
                }
            }
            Some(Trap::Interrupt) => {
                return Error::Timeout {
                    component,
                    limit: self.limits.timeout.unwrap_or(Duration::ZERO),
                }
            }
            _ => {}
        }
        let mut message = error_chain(&err);
        // Rust's panic hook ends with a hint about RUST_BACKTRACE that says nothing here.
        let tail: Vec<&str> = self
            .stderr_tail
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        let tail = tail.join("\n");
        if self.memory_denied {
            if let Some(limit) = self.limits.memory_bytes {
                let detail = if tail.is_empty() {
                    message
                } else {
                    tail.clone()
                };
                return Error::MemoryLimit {
                    component,
                    limit,
                    detail: Some(last_line(&detail)),
                };
            }
        }
        if trap.is_none() {
            return Error::Runtime { component, message };
        }
        if !tail.is_empty() {
            message = format!("{message}; guest stderr: {}", tail.replace('\n', " | "));
        }
        Error::Trap {
            component,
            message,
            backtrace,
        }
    }
}

fn last_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}
