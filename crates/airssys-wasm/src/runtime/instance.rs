//! A live lifecycle [`Instance`]: it owns its `Store`, runs one call at a time
//! under its limits, and reports the [`ResourceUsage`] of every call.

use std::time::Instant;

use wasmtime::Store;

use crate::bindings::{
    v0_1, GuestError, HealthStatus, Lifecycle, Message, Metadata, Reply, RequestError,
};
use crate::error::{Error, Result};
use crate::host::{HasRunState, HostState};
use crate::runtime::trap::Failure;
use crate::sandbox::context::{ComponentHandle, ExecutionContext, ExecutionState};
use crate::sandbox::limits::ResourceUsage;

/// One instance of a lifecycle component.
///
/// Calls take `&mut self`: an instance runs one call at a time, as an actor does.
/// After a trap or an exhausted limit the instance is unusable (every further
/// call returns [`Error::Poisoned`]); instantiate the component again.
pub struct Instance {
    ctx: ExecutionContext,
    handle: ComponentHandle,
    store: Store<HostState>,
    bindings: Lifecycle,
    state: ExecutionState,
    last_usage: Option<ResourceUsage>,
    /// What the last `handle-message` said of its reply with `set-reply`.
    last_reply: Reply,
    poisoned: bool,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("component", &self.ctx.component_id())
            .field("handle", &self.handle)
            .field("state", &self.state)
            .finish()
    }
}

/// Arms the store for one call starting at `now`: fuel refilled, deadline set,
/// memory peak reset. Returns the fuel the call starts with.
pub(crate) fn prepare_call<T: HasRunState>(
    store: &mut Store<T>,
    ctx: &ExecutionContext,
    now: Instant,
) -> Result<u64> {
    prepare_call_within(store, ctx, now, ctx.timeout())
}

/// [`prepare_call`] with the call's own timeout.
pub(crate) fn prepare_call_within<T: HasRunState>(
    store: &mut Store<T>,
    ctx: &ExecutionContext,
    now: Instant,
    timeout: Option<std::time::Duration>,
) -> Result<u64> {
    let metered = store.data_mut().run().metered;
    let fuel = match (ctx.limits().fuel, metered) {
        (Some(f), true) => f,
        (None, true) => u64::MAX,
        (Some(_), false) => {
            return Err(Error::Config(format!(
                "{}: a fuel limit is set but the engine does not meter fuel (EngineConfig::consume_fuel)",
                ctx.component_id()
            )))
        }
        (None, false) => 0,
    };
    if metered {
        store
            .set_fuel(fuel)
            .map_err(|e| Error::Config(e.to_string()))?;
    }
    store.set_epoch_deadline(1);
    let run = store.data_mut().run();
    run.deadline = timeout.map(|t| now + t);
    run.limiter.begin_call();
    Ok(fuel)
}

struct CallStart {
    at: Instant,
    fuel: u64,
}

impl Instance {
    pub(crate) fn new(ctx: ExecutionContext, store: Store<HostState>, bindings: Lifecycle) -> Self {
        Instance {
            ctx,
            handle: ComponentHandle::next(),
            store,
            bindings,
            state: ExecutionState::Pending,
            last_usage: None,
            last_reply: Reply::default(),
            poisoned: false,
        }
    }

    /// The opaque handle of this instance.
    pub fn handle(&self) -> ComponentHandle {
        self.handle
    }

    /// The component id this instance runs as.
    pub fn component_id(&self) -> &str {
        self.ctx.component_id()
    }

    /// The context it was instantiated with.
    pub fn context(&self) -> &ExecutionContext {
        &self.ctx
    }

    /// The host state of the store (the actor loop sets the trace id here).
    pub(crate) fn host_mut(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// Where the current or last call stands.
    pub fn state(&self) -> ExecutionState {
        self.state
    }

    /// Log lines of this instance dropped by its [`LogBudget`](crate::LogBudget) so far.
    pub fn log_dropped(&self) -> u64 {
        self.store.data().services.log.dropped
    }

    /// What the last call consumed (`None` before the first call).
    pub fn last_usage(&self) -> Option<ResourceUsage> {
        self.last_usage
    }

    /// Calls `initialize` with the context's configuration.
    ///
    /// # Errors
    ///
    /// a trap ([`Error::Trap`]), an exhausted limit ([`Error::FuelExhausted`],
    /// [`Error::Timeout`], [`Error::MemoryLimit`] …), an error the guest returned
    /// ([`Error::Guest`]), or [`Error::Poisoned`] when an earlier call left the instance
    /// unusable.
    pub async fn initialize(&mut self) -> Result<()> {
        let start = self.begin()?;
        let config = self.ctx.config().to_vec();
        let r = match &self.bindings {
            Lifecycle::Current(b) => {
                b.airssys_component_lifecycle()
                    .call_initialize(&mut self.store, &config)
                    .await
            }
            Lifecycle::V0_1(b) => b
                .airssys_component_lifecycle()
                .call_initialize(&mut self.store, &config)
                .await
                .map(|r| r.map_err(v0_1::error)),
        };
        self.finish("initialize", start, r)
    }

    /// Delivers one message; returns the reply payload, if the component gave one.
    ///
    /// # Errors
    ///
    /// a trap ([`Error::Trap`]), an exhausted limit ([`Error::FuelExhausted`],
    /// [`Error::Timeout`], [`Error::MemoryLimit`] …), an error the guest returned
    /// ([`Error::Guest`]), or [`Error::Poisoned`] when an earlier call left the instance
    /// unusable.
    pub async fn handle_message(&mut self, msg: &Message) -> Result<Option<Vec<u8>>> {
        self.handle_message_within(msg, None).await
    }

    /// [`Instance::handle_message`] cut short at `limit` when that is
    /// tighter than the call timeout.
    pub(crate) async fn handle_message_within(
        &mut self,
        msg: &Message,
        limit: Option<std::time::Duration>,
    ) -> Result<Option<Vec<u8>>> {
        let start = self.begin_within(self.tighter(limit))?;
        self.store.data_mut().messaging.begin_reply();
        let r = match &self.bindings {
            Lifecycle::Current(b) => {
                b.airssys_component_lifecycle()
                    .call_handle_message(&mut self.store, msg)
                    .await
            }
            Lifecycle::V0_1(b) => b
                .airssys_component_lifecycle()
                .call_handle_message(&mut self.store, &v0_1::message(msg))
                .await
                .map(|r| r.map_err(v0_1::error)),
        };
        self.last_reply = self.store.data_mut().messaging.take_reply();
        self.finish("handle-message", start, r)
    }

    /// The content type and metadata the last `handle-message` gave its reply
    /// with `set-reply` (empty when it did not call it). Taken: a second call
    /// returns it empty.
    pub(crate) fn take_reply(&mut self) -> Reply {
        std::mem::take(&mut self.last_reply)
    }

    /// Delivers the outcome of a request this component made earlier: the
    /// reply, or why there is none.
    ///
    /// # Errors
    ///
    /// a trap ([`Error::Trap`]), an exhausted limit ([`Error::FuelExhausted`],
    /// [`Error::Timeout`], [`Error::MemoryLimit`] …), an error the guest returned
    /// ([`Error::Guest`]), or [`Error::Poisoned`] when an earlier call left the instance
    /// unusable.
    pub async fn handle_callback(
        &mut self,
        correlation_id: &str,
        reply: &std::result::Result<Message, RequestError>,
    ) -> Result<()> {
        self.handle_callback_within(correlation_id, reply, None)
            .await
    }

    /// [`Instance::handle_callback`] cut short at `limit` when that is
    /// tighter than the call timeout.
    pub(crate) async fn handle_callback_within(
        &mut self,
        correlation_id: &str,
        reply: &std::result::Result<Message, RequestError>,
        limit: Option<std::time::Duration>,
    ) -> Result<()> {
        let start = self.begin_within(self.tighter(limit))?;
        let r = match &self.bindings {
            Lifecycle::Current(b) => {
                b.airssys_component_lifecycle()
                    .call_handle_callback(&mut self.store, correlation_id, reply.as_ref())
                    .await
            }
            Lifecycle::V0_1(b) => b
                .airssys_component_lifecycle()
                .call_handle_callback(&mut self.store, &v0_1::callback(correlation_id, reply))
                .await
                .map(|r| r.map_err(v0_1::error)),
        };
        self.finish("handle-callback", start, r)
    }

    /// Asks the component for its metadata.
    ///
    /// # Errors
    ///
    /// a trap ([`Error::Trap`]), an exhausted limit ([`Error::FuelExhausted`],
    /// [`Error::Timeout`], [`Error::MemoryLimit`] …), an error the guest returned
    /// ([`Error::Guest`]), or [`Error::Poisoned`] when an earlier call left the instance
    /// unusable.
    pub async fn metadata(&mut self) -> Result<Metadata> {
        let start = self.begin()?;
        let r = match &self.bindings {
            Lifecycle::Current(b) => {
                b.airssys_component_lifecycle()
                    .call_metadata(&mut self.store)
                    .await
            }
            Lifecycle::V0_1(b) => b
                .airssys_component_lifecycle()
                .call_metadata(&mut self.store)
                .await
                .map(v0_1::metadata),
        }
        .map(Ok);
        self.finish("metadata", start, r)
    }

    /// Asks the component for its health.
    ///
    /// # Errors
    ///
    /// a trap ([`Error::Trap`]), an exhausted limit ([`Error::FuelExhausted`],
    /// [`Error::Timeout`], [`Error::MemoryLimit`] …), an error the guest returned
    /// ([`Error::Guest`]), or [`Error::Poisoned`] when an earlier call left the instance
    /// unusable.
    pub async fn health(&mut self) -> Result<HealthStatus> {
        self.health_within(self.ctx.timeout()).await
    }

    /// Asks the component for its health within `timeout` (at most the call timeout).
    pub(crate) async fn health_within(
        &mut self,
        timeout: Option<std::time::Duration>,
    ) -> Result<HealthStatus> {
        let start = self.begin_within(self.tighter(timeout))?;
        let r = match &self.bindings {
            Lifecycle::Current(b) => {
                b.airssys_component_lifecycle()
                    .call_health(&mut self.store)
                    .await
            }
            Lifecycle::V0_1(b) => b
                .airssys_component_lifecycle()
                .call_health(&mut self.store)
                .await
                .map(v0_1::health),
        }
        .map(Ok);
        self.finish("health", start, r)
    }

    /// Calls `shutdown`. The instance is still usable afterwards, but a
    /// well-behaved embedder drops it.
    ///
    /// # Errors
    ///
    /// a trap ([`Error::Trap`]), an exhausted limit ([`Error::FuelExhausted`],
    /// [`Error::Timeout`], [`Error::MemoryLimit`] …), an error the guest returned
    /// ([`Error::Guest`]), or [`Error::Poisoned`] when an earlier call left the instance
    /// unusable.
    pub async fn shutdown(&mut self) -> Result<()> {
        self.shutdown_within(None).await
    }

    /// [`Instance::shutdown`] cut short at `limit` (an actor's shutdown
    /// timeout) when that is tighter than the call timeout.
    pub(crate) async fn shutdown_within(
        &mut self,
        limit: Option<std::time::Duration>,
    ) -> Result<()> {
        let start = self.begin_within(self.tighter(limit))?;
        let r = match &self.bindings {
            Lifecycle::Current(b) => {
                b.airssys_component_lifecycle()
                    .call_shutdown(&mut self.store)
                    .await
            }
            Lifecycle::V0_1(b) => b
                .airssys_component_lifecycle()
                .call_shutdown(&mut self.store)
                .await
                .map(|r| r.map_err(v0_1::error)),
        };
        self.finish("shutdown", start, r)
    }

    /// The tighter of `limit` and the call timeout.
    fn tighter(&self, limit: Option<std::time::Duration>) -> Option<std::time::Duration> {
        match (limit, self.ctx.timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn begin(&mut self) -> Result<CallStart> {
        self.begin_within(self.ctx.timeout())
    }

    fn begin_within(&mut self, timeout: Option<std::time::Duration>) -> Result<CallStart> {
        if self.poisoned {
            return Err(Error::Poisoned {
                component: self.ctx.component_id().to_string(),
            });
        }
        let at = Instant::now();
        let fuel = prepare_call_within(&mut self.store, &self.ctx, at, timeout)?;
        self.state = ExecutionState::Running;
        Ok(CallStart { at, fuel })
    }

    fn finish<T>(
        &mut self,
        function: &'static str,
        start: CallStart,
        result: wasmtime::Result<std::result::Result<T, GuestError>>,
    ) -> Result<T> {
        let wall_time = start.at.elapsed();
        let metered = self.store.data_mut().run.metered;
        let fuel_left = if metered {
            self.store.get_fuel().unwrap_or(0)
        } else {
            0
        };
        let host = self.store.data_mut();
        host.services.log.summarize(self.ctx.component_id());
        let storage_bytes = host.storage.end_call();
        let run = &mut host.run;
        run.deadline = None;
        self.last_usage = Some(ResourceUsage {
            fuel_consumed: start.fuel.saturating_sub(fuel_left),
            peak_memory_bytes: run.limiter.peak(),
            wall_time,
            storage_bytes,
        });
        match result {
            Ok(Ok(value)) => {
                self.state = ExecutionState::Completed;
                Ok(value)
            }
            Ok(Err(error)) => {
                self.state = ExecutionState::Failed;
                Err(Error::Guest {
                    component: self.ctx.component_id().to_string(),
                    function,
                    error,
                })
            }
            Err(e) => {
                self.poisoned = true;
                let err = Failure::of(&self.ctx, run).classify(e);
                self.state = match err {
                    Error::Timeout { .. } => ExecutionState::Timeout,
                    _ => ExecutionState::Failed,
                };
                tracing::debug!(component = self.ctx.component_id(), handle = %self.handle, function, "{err}");
                Err(err)
            }
        }
    }
}
