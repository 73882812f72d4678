//! Running WASI commands: a p2 component exporting `wasi:cli/run`, or a p1 core
//! module exporting `_start`, with the host's stdio and only the granted
//! directories and environment variables.

use wasmtime_wasi::I32Exit;

use crate::error::error_chain;
use crate::error::{Error, Result};
use crate::host::{self, wasi, HasRunState, HostState, ModuleHost};
use crate::runtime::component::{Component, Prepared};
use crate::runtime::trap::Failure;
use crate::sandbox::context::ExecutionContext;
use crate::sandbox::limits::ResourceUsage;

/// How a WASI command ended, and what it consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code (0 on success; the argument of `exit`, or 1 when
    /// `wasi:cli/run` returned an error).
    pub code: i32,
    /// What the run consumed.
    pub usage: ResourceUsage,
}

impl Component {
    /// Runs this component or module as a WASI command. `args` are the guest's
    /// argv, program name first. Stdio is the host's; files, environment and
    /// network are exactly those granted by `ctx`'s capabilities (none by
    /// default). The limits of `ctx` apply to the whole run.
    ///
    /// # Errors
    ///
    /// A component without `wasi:cli/run` or a module without `_start`, and the call failures
    /// (trap, limits).
    pub async fn run_command(&self, ctx: &ExecutionContext, args: &[String]) -> Result<ExitStatus> {
        let resolved = host::sockets::Resolved::default();
        let mut builder = wasi::builder(ctx, args, wasi::Stdio::Inherit, &resolved)?;
        let engine = self.engine();
        let start = std::time::Instant::now();
        match self.prepared() {
            Prepared::Component { pre, .. } => {
                let command =
                    wasmtime_wasi::p2::bindings::CommandPre::new(pre.clone()).map_err(|e| {
                        Error::Unsupported {
                            component: ctx.component_id().to_string(),
                            reason: format!(
                                "is not a WASI command (no wasi:cli/run export): {}",
                                error_chain(&e)
                            ),
                        }
                    })?;
                let mut store =
                    engine.store(HostState::new(ctx, builder.build(), resolved, None, None));
                let fuel = crate::runtime::instance::prepare_call(&mut store, ctx, start)?;
                let result = async {
                    let cmd = command.instantiate_async(&mut store).await?;
                    cmd.wasi_cli_run().call_run(&mut store).await
                }
                .await;
                let code = result.map(|r| if r.is_ok() { 0 } else { 1 });
                finish(ctx, &mut store, fuel, start, code)
            }
            Prepared::Module { pre } => {
                let mut store = engine.store(ModuleHost::new(ctx, builder.build_p1()));
                let fuel = crate::runtime::instance::prepare_call(&mut store, ctx, start)?;
                let result = async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let start = instance
                        .get_typed_func::<(), ()>(&mut store, "_start")
                        .map_err(|e| e.context("the module exports no `_start` function"))?;
                    start.call_async(&mut store, ()).await
                }
                .await;
                finish(ctx, &mut store, fuel, start, result.map(|()| 0))
            }
        }
    }
}

fn finish<T: HasRunState>(
    ctx: &ExecutionContext,
    store: &mut wasmtime::Store<T>,
    fuel: u64,
    start: std::time::Instant,
    result: wasmtime::Result<i32>,
) -> Result<ExitStatus> {
    let fuel_left = if store.data_mut().run().metered {
        store.get_fuel().unwrap_or(0)
    } else {
        0
    };
    let run = store.data_mut().run();
    let usage = ResourceUsage {
        fuel_consumed: fuel.saturating_sub(fuel_left),
        peak_memory_bytes: run.limiter.peak(),
        wall_time: start.elapsed(),
        storage_bytes: 0,
    };
    match result {
        Ok(code) => Ok(ExitStatus { code, usage }),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(ExitStatus {
                code: exit.0,
                usage,
            }),
            None => Err(Failure {
                component: ctx.component_id(),
                limits: ctx.limits(),
                memory_denied: run.limiter.memory_denied,
                stderr_tail: String::new(),
            }
            .classify(e)),
        },
    }
}
