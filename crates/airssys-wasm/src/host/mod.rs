//! The host side of the sandbox: the state each `Store` carries, the linkers,
//! and one module per host interface that adds itself to the linker.
//!
//! - [`services`] — `airssys:component/services` (log, clocks, config)
//! - [`storage`] — `airssys:component/storage` and `wasi:keyvalue` on [`crate::storage::Storage`]
//! - [`http`] — `wasi:http` outgoing requests under the network grants
//! - [`wasi`] — WASI p2 (components) and p1 (core modules), deny by default

pub(crate) mod http;
pub(crate) mod messaging;
pub(crate) mod services;
pub(crate) mod sockets;
pub(crate) mod storage;

pub(crate) mod wasi;

use std::time::Instant;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::sandbox::context::ExecutionContext;
use crate::sandbox::limits::Limiter;
use crate::security::capability::WitInterface;
use services::ServicesCtx;
use wasi::TailBuffer;

/// The capability tables of every host interface this host provides: which
/// capability each imported function needs to succeed.
pub fn host_interfaces() -> &'static [WitInterface] {
    static ALL: std::sync::OnceLock<Vec<WitInterface>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = vec![
            services::INTERFACE,
            messaging::INTERFACE,
            storage::INTERFACE,
            http::INTERFACE,
        ];
        all.extend_from_slice(wasi::INTERFACES);
        all
    })
}

/// What the `Store` of a component instance carries.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: wasmtime_wasi_http::WasiHttpCtx,
    http_hooks: http::HttpHooks,
    pub(crate) services: ServicesCtx,
    pub(crate) messaging: messaging::MessagingCtx,
    pub(crate) storage: storage::StorageCtx,
    pub(crate) lookup: sockets::LookupState,
    pub(crate) run: RunState,
}

/// What the `Store` of a core-module (WASI p1) instance carries.
pub(crate) struct ModuleHost {
    wasi: WasiP1Ctx,
    pub(crate) run: RunState,
}

/// Limits and measurements common to both kinds of store.
pub(crate) struct RunState {
    pub(crate) limiter: Limiter,
    /// The wall-clock deadline of the call in progress.
    pub(crate) deadline: Option<Instant>,
    /// The tail of what the guest wrote to stdout/stderr (lifecycle instances only).
    pub(crate) output: Option<TailBuffer>,
    /// Whether the engine meters fuel (asking a store that does not is an error,
    /// and building that error is slow).
    pub(crate) metered: bool,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        self.http_hooks.deadline = self.run.deadline;
        wasmtime_wasi_http::WasiHttpCtxView {
            hooks: &mut self.http_hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

impl HostState {
    pub(crate) fn new(
        ctx: &ExecutionContext,
        wasi: WasiCtx,
        resolved: sockets::Resolved,
        output: Option<TailBuffer>,
        mailroom: Option<Box<dyn messaging::Mailroom>>,
    ) -> Self {
        HostState {
            wasi,
            table: ResourceTable::new(),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_hooks: http::HttpHooks::new(
                ctx.shared_id(),
                ctx.shared_capabilities(),
                ctx.limits().http,
            ),
            lookup: sockets::LookupState {
                component: ctx.shared_id(),
                caps: ctx.shared_capabilities(),
                resolved,
                streams: Default::default(),
            },
            messaging: messaging::MessagingCtx::new(
                ctx.shared_id(),
                ctx.shared_capabilities(),
                mailroom,
            ),
            storage: storage::StorageCtx::new(
                ctx.shared_id(),
                ctx.shared_capabilities(),
                ctx.storage().cloned(),
                ctx.limits().storage,
            ),
            services: ServicesCtx::new(
                ctx.shared_id(),
                ctx.shared_config(),
                ctx.shared_capabilities(),
                ctx.log_budget(),
            ),
            run: RunState::new(ctx, output),
        }
    }
}

impl ModuleHost {
    pub(crate) fn new(ctx: &ExecutionContext, wasi: WasiP1Ctx) -> Self {
        ModuleHost {
            wasi,
            run: RunState::new(ctx, None),
        }
    }
}

impl RunState {
    fn new(ctx: &ExecutionContext, output: Option<TailBuffer>) -> Self {
        RunState {
            limiter: Limiter::new(ctx.limits().memory_bytes),
            deadline: None,
            output,
            metered: false,
        }
    }
}

/// Store data that carries a [`RunState`].
pub(crate) trait HasRunState: Send + 'static {
    fn run(&mut self) -> &mut RunState;
}

impl HasRunState for HostState {
    fn run(&mut self) -> &mut RunState {
        &mut self.run
    }
}

impl HasRunState for ModuleHost {
    fn run(&mut self) -> &mut RunState {
        &mut self.run
    }
}

/// The linker for components: WASI p2 and the airssys services.
pub(crate) fn component_linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::<HostState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    sockets::add_to_linker(&mut linker, |h| &mut h.lookup)?;
    services::add_to_linker(&mut linker, |h| &mut h.services)?;
    messaging::add_to_linker(&mut linker, |h| &mut h.messaging)?;
    storage::add_to_linker(&mut linker, |h| &mut h.storage)?;
    http::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// The linker for core modules: WASI p1.
pub(crate) fn module_linker(
    engine: &wasmtime::Engine,
) -> wasmtime::Result<wasmtime::Linker<ModuleHost>> {
    let mut linker = wasmtime::Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |h: &mut ModuleHost| &mut h.wasi)?;
    Ok(linker)
}
