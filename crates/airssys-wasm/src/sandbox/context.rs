//! What an instance runs with ([`ExecutionContext`]) and where a call stands
//! ([`ExecutionState`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::sandbox::limits::{LogBudget, ResourceLimits};
use crate::security::capability::Capabilities;

/// An opaque handle naming one live instance, unique within the process.
///
/// Two instances of the same component have the same component id and
/// different handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentHandle(u64);

impl ComponentHandle {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ComponentHandle(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for ComponentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Where an instance's current or last call stands.
///
/// `Pending` until the first call, `Running` during a call, then `Completed`,
/// `Failed` (a trap, an exhausted limit or an error returned by the guest) or
/// `Timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ExecutionState {
    /// No call has been made yet.
    Pending,
    /// A call is in progress.
    Running,
    /// The last call returned normally.
    Completed,
    /// The last call failed.
    Failed,
    /// The last call ran past its timeout.
    Timeout,
}

/// Everything an instance runs with: its identity, limits, granted capabilities
/// and the configuration it reads with `services.get-config`.
///
/// ```
/// use airssys_wasm::{ExecutionContext, ResourceLimits};
/// let ctx = ExecutionContext::new("echo")
///     .with_limits(ResourceLimits::default().with_fuel(1_000_000))
///     .with_config("greeting", "hello");
/// assert_eq!(ctx.component_id(), "echo");
/// ```
#[derive(Debug, Clone)]
pub struct ExecutionContext {
    component_id: Arc<str>,
    limits: ResourceLimits,
    capabilities: Arc<Capabilities>,
    config: Arc<[(String, String)]>,
    log_budget: LogBudget,
    storage: Option<crate::storage::Storage>,
}

impl ExecutionContext {
    /// A context for `component_id` with default limits and no capabilities.
    pub fn new(component_id: impl Into<String>) -> Self {
        ExecutionContext {
            component_id: Arc::from(component_id.into()),
            limits: ResourceLimits::default(),
            capabilities: Arc::new(Capabilities::default()),
            config: Arc::from(Vec::new()),
            log_budget: LogBudget::default(),
            storage: None,
        }
    }

    /// Replaces the log budget of `services.log`.
    pub fn with_log_budget(mut self, budget: LogBudget) -> Self {
        self.log_budget = budget;
        self
    }

    /// Gives the instance durable storage: its own namespace in `storage`,
    /// keyed by its component id (an actor's id), under the storage quota of
    /// its [`ResourceLimits`]. Without it, storage calls return `unavailable`.
    pub fn with_storage(mut self, storage: crate::storage::Storage) -> Self {
        self.storage = Some(storage);
        self
    }

    /// The storage the instance uses, if any.
    pub fn storage(&self) -> Option<&crate::storage::Storage> {
        self.storage.as_ref()
    }

    /// The log budget.
    pub fn log_budget(&self) -> LogBudget {
        self.log_budget
    }

    /// Replaces the limits.
    pub fn with_limits(mut self, limits: ResourceLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Replaces the granted capabilities.
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = Arc::new(capabilities);
        self
    }

    /// Adds one configuration entry.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let mut config = self.config.to_vec();
        config.push((key.into(), value.into()));
        self.config = Arc::from(config);
        self
    }

    /// The component's id (its name), used in logs and errors.
    pub fn component_id(&self) -> &str {
        &self.component_id
    }

    /// The limits.
    pub fn limits(&self) -> &ResourceLimits {
        &self.limits
    }

    /// The wall-clock timeout of each call.
    pub fn timeout(&self) -> Option<Duration> {
        self.limits.timeout
    }

    /// The granted capabilities.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// The configuration entries.
    pub fn config(&self) -> &[(String, String)] {
        &self.config
    }

    /// The same context under another id (an actor runs as its actor id).
    pub(crate) fn renamed(&self, id: &str) -> ExecutionContext {
        ExecutionContext {
            component_id: Arc::from(id),
            ..self.clone()
        }
    }

    pub(crate) fn shared_id(&self) -> Arc<str> {
        self.component_id.clone()
    }

    pub(crate) fn shared_config(&self) -> Arc<[(String, String)]> {
        self.config.clone()
    }

    pub(crate) fn shared_capabilities(&self) -> Arc<Capabilities> {
        self.capabilities.clone()
    }
}
