//! Calling any export by name with dynamic values, as `wasmtime run --invoke`
//! does: [`Invoker`] holds one instance of a component (lifecycle or not) or a
//! core module, and calls its functions under the same limits, usage report
//! and error classification as the lifecycle calls. Arguments and results can
//! be given as WAVE text ([`Invoker::invoke_wave`]), e.g. `add(1, 2)`.

use std::time::Instant;

use wasmtime::component::wasm_wave::{self, untyped::UntypedFuncCall, wasm::DisplayType};
use wasmtime::component::{types::ComponentItem, Val};
use wasmtime::Store;

use crate::error::{Error, Result};
use crate::host::{self, wasi, HasRunState, HostState, ModuleHost};
use crate::runtime::component::{Component, Prepared};
use crate::runtime::execution::ExecutionContext;
use crate::runtime::limits::ResourceUsage;
use crate::runtime::trap::Failure;

/// One exported function and its signature in WIT syntax.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportedFunction {
    /// How to name it to [`Invoker::invoke`]: `name`, or `interface#name`.
    pub name: String,
    /// `func(a: u32, b: string) -> result<string, error>`.
    pub signature: String,
}

enum Live {
    Component {
        store: Store<HostState>,
        instance: wasmtime::component::Instance,
    },
    Module {
        store: Store<ModuleHost>,
        instance: wasmtime::Instance,
    },
}

/// An instance of any component or core module whose exports are called by
/// name with dynamic values. After a trap or an exhausted limit it is
/// poisoned, as an [`Instance`](crate::Instance) is.
pub struct Invoker {
    ctx: ExecutionContext,
    component: Component,
    live: Live,
    /// Component functions already looked up, by the name the caller used.
    funcs: std::collections::HashMap<String, (wasmtime::component::Func, usize, usize)>,
    last_usage: Option<ResourceUsage>,
    poisoned: bool,
}

impl Component {
    /// Instantiates this component or module for [`Invoker::invoke`]; it need
    /// not implement the airssys lifecycle. Nothing is called yet.
    pub async fn instantiate_invoker(&self, ctx: &ExecutionContext) -> Result<Invoker> {
        let start = Instant::now();
        let resolved = host::sockets::Resolved::default();
        let mut builder = wasi::builder(
            ctx,
            &[ctx.component_id().to_string()],
            wasi::Stdio::Inherit,
            &resolved,
        )?;
        let live = match self.prepared() {
            Prepared::Component { pre, .. } => {
                let mut store = host::new_store(
                    self.engine(),
                    HostState::new(ctx, builder.build(), resolved, None, None),
                );
                crate::runtime::instance::prepare_call(&mut store, ctx, start)?;
                let instance = match pre.instantiate_async(&mut store).await {
                    Ok(i) => i,
                    Err(e) => return Err(failure(ctx, &mut store).classify(e)),
                };
                Live::Component { store, instance }
            }
            Prepared::Module { pre } => {
                let mut store =
                    host::new_store(self.engine(), ModuleHost::new(ctx, builder.build_p1()));
                crate::runtime::instance::prepare_call(&mut store, ctx, start)?;
                let instance = match pre.instantiate_async(&mut store).await {
                    Ok(i) => i,
                    Err(e) => return Err(failure(ctx, &mut store).classify(e)),
                };
                Live::Module { store, instance }
            }
        };
        Ok(Invoker {
            ctx: ctx.clone(),
            component: self.clone(),
            live,
            funcs: Default::default(),
            last_usage: None,
            poisoned: false,
        })
    }
}

fn failure<'a, T: HasRunState>(ctx: &'a ExecutionContext, store: &mut Store<T>) -> Failure<'a> {
    let run = store.data_mut().run();
    Failure {
        component: ctx.component_id(),
        limits: ctx.limits(),
        memory_denied: run.limiter.memory_denied,
        stderr_tail: String::new(),
    }
}

fn component_signature(f: &wasmtime::component::types::ComponentFunc) -> String {
    let params: Vec<String> = f
        .params()
        .map(|(n, t)| format!("{n}: {}", DisplayType(&t)))
        .collect();
    let results: Vec<String> = f.results().map(|t| DisplayType(&t).to_string()).collect();
    match results.len() {
        0 => format!("func({})", params.join(", ")),
        1 => format!("func({}) -> {}", params.join(", "), results[0]),
        _ => format!("func({}) -> ({})", params.join(", "), results.join(", ")),
    }
}

fn core_signature(f: &wasmtime::FuncType) -> String {
    let params: Vec<String> = f.params().map(|t| DisplayType(&t).to_string()).collect();
    let results: Vec<String> = f.results().map(|t| DisplayType(&t).to_string()).collect();
    match results.len() {
        0 => format!("func({})", params.join(", ")),
        1 => format!("func({}) -> {}", params.join(", "), results[0]),
        _ => format!("func({}) -> ({})", params.join(", "), results.join(", ")),
    }
}

/// Every function a component or module exports, with its signature.
pub(crate) fn exported_functions(component: &Component) -> Vec<ExportedFunction> {
    let engine = component.engine().wasmtime();
    let mut out = Vec::new();
    match component.prepared() {
        Prepared::Component { pre, .. } => {
            let ty = pre.component().component_type();
            for (name, item) in ty.exports(engine) {
                match item.ty {
                    ComponentItem::ComponentFunc(f) => out.push(ExportedFunction {
                        name: name.to_string(),
                        signature: component_signature(&f),
                    }),
                    ComponentItem::ComponentInstance(inst) => {
                        for (fname, item) in inst.exports(engine) {
                            if let ComponentItem::ComponentFunc(f) = item.ty {
                                out.push(ExportedFunction {
                                    name: format!("{name}#{fname}"),
                                    signature: component_signature(&f),
                                });
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Prepared::Module { pre } => {
            for e in pre.module().exports() {
                if let wasmtime::ExternType::Func(f) = e.ty() {
                    out.push(ExportedFunction {
                        name: e.name().to_string(),
                        signature: core_signature(&f),
                    });
                }
            }
        }
    }
    out
}

impl Component {
    /// Every function this component or module exports, with its WIT signature.
    pub fn exported_functions(&self) -> Vec<ExportedFunction> {
        exported_functions(self)
    }
}

impl Invoker {
    /// The component's exported functions, with their signatures.
    pub fn functions(&self) -> Vec<ExportedFunction> {
        exported_functions(&self.component)
    }

    /// What the last call consumed.
    pub fn last_usage(&self) -> Option<ResourceUsage> {
        self.last_usage
    }

    fn invalid(&self, function: &str, reason: String) -> Error {
        let signature = self
            .functions()
            .into_iter()
            .find(|f| f.name == function || f.name.ends_with(&format!("#{function}")))
            .map(|f| format!("{}: {}", f.name, f.signature));
        Error::Invoke {
            component: self.ctx.component_id().to_string(),
            function: function.to_string(),
            reason,
            signature,
        }
    }

    /// Resolves `name` (`func`, or `interface#func`; a bare name is also found
    /// inside exported interfaces when it is unique) to its export name.
    fn resolve(&self, name: &str) -> Result<String> {
        let all = self.functions();
        if all.iter().any(|f| f.name == name) {
            return Ok(name.to_string());
        }
        let nested: Vec<&ExportedFunction> = all
            .iter()
            .filter(|f| f.name.rsplit_once('#').map(|(_, n)| n) == Some(name))
            .collect();
        match nested.as_slice() {
            [one] => Ok(one.name.clone()),
            [] => Err(Error::Invoke {
                component: self.ctx.component_id().to_string(),
                function: name.to_string(),
                reason: format!(
                    "no such exported function; it exports: {}",
                    all.iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                signature: None,
            }),
            many => Err(Error::Invoke {
                component: self.ctx.component_id().to_string(),
                function: name.to_string(),
                reason: format!(
                    "ambiguous; name one of: {}",
                    many.iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                signature: None,
            }),
        }
    }

    fn component_func(&mut self, name: &str) -> Result<wasmtime::component::Func> {
        if let Some((f, _, _)) = self.funcs.get(name) {
            return Ok(*f);
        }
        let full = self.resolve(name)?;
        let Live::Component { store, instance } = &mut self.live else {
            unreachable!("component_func on a module");
        };
        let index = match full.split_once('#') {
            Some((iface, f)) => instance
                .get_export_index(&mut *store, None, iface)
                .and_then(|i| instance.get_export_index(&mut *store, Some(&i), f)),
            None => instance.get_export_index(&mut *store, None, &full),
        };
        let found = index.and_then(|i| instance.get_func(&mut *store, i));
        let Some(func) = found else {
            return Err(self.invalid(name, "not a function".into()));
        };
        let Live::Component { store, .. } = &self.live else {
            unreachable!()
        };
        let ty = func.ty(store);
        let arity = (ty.params().len(), ty.results().len());
        self.funcs
            .insert(name.to_string(), (func, arity.0, arity.1));
        Ok(func)
    }

    /// Calls the component export `name` with `args`; returns its results.
    /// A wrong name, arity or type is [`Error::Invoke`] showing the signature.
    pub async fn invoke(&mut self, name: &str, args: &[Val]) -> Result<Vec<Val>> {
        if !matches!(self.live, Live::Component { .. }) {
            return Err(self.invalid(name, "a core module: use invoke_core".into()));
        }
        let func = self.component_func(name)?;
        let (_, params, results) = self.funcs[name];
        if params != args.len() {
            let reason = format!("expects {params} arguments, got {}", args.len());
            return Err(self.invalid(name, reason));
        }
        let mut results = vec![Val::Bool(false); results];
        self.begin()?;
        let Live::Component { store, .. } = &mut self.live else {
            unreachable!()
        };
        let start = Instant::now();
        let fuel = crate::runtime::instance::prepare_call(store, &self.ctx, start)?;
        let r = func.call_async(&mut *store, args, &mut results).await;
        self.finish(name, fuel, start, r.map(|()| results))
    }

    /// Calls the core module export `name` with `args`; returns its results.
    pub async fn invoke_core(
        &mut self,
        name: &str,
        args: &[wasmtime::Val],
    ) -> Result<Vec<wasmtime::Val>> {
        let Live::Module { store, instance } = &mut self.live else {
            return Err(self.invalid(name, "a component: use invoke".into()));
        };
        let Some(func) = instance.get_func(&mut *store, name) else {
            return Err(self
                .resolve(name)
                .err()
                .unwrap_or_else(|| self.invalid(name, "not a function".into())));
        };
        let ty = func.ty(&*store);
        if ty.params().len() != args.len() {
            let reason = format!(
                "expects {} arguments, got {}",
                ty.params().len(),
                args.len()
            );
            return Err(self.invalid(name, reason));
        }
        let mut results: Vec<wasmtime::Val> = ty
            .results()
            .map(|t| wasmtime::Val::default_for_ty(&t).unwrap_or(wasmtime::Val::I32(0)))
            .collect();
        self.begin()?;
        let Live::Module { store, .. } = &mut self.live else {
            unreachable!()
        };
        let start = Instant::now();
        let fuel = crate::runtime::instance::prepare_call(store, &self.ctx, start)?;
        let r = func.call_async(&mut *store, args, &mut results).await;
        self.finish(name, fuel, start, r.map(|()| results))
    }

    /// Parses `call` (`name(arg, ...)`, arguments in WAVE syntax, checked
    /// against the function's parameter types), calls it, and returns each
    /// result in WAVE syntax.
    pub async fn invoke_wave(&mut self, call: &str) -> Result<Vec<String>> {
        let bad = |reason: String| Error::Invoke {
            component: self.ctx.component_id().to_string(),
            function: call.to_string(),
            reason,
            signature: None,
        };
        // WAVE names are plain identifiers: take `interface#name` apart first.
        let open = call
            .find('(')
            .ok_or_else(|| bad("expected name(arg, ...)".into()))?;
        let (name, rest) = call.split_at(open);
        let name = name.trim();
        let source = format!("f{rest}");
        let parsed =
            UntypedFuncCall::parse(&source).map_err(|e| bad(format!("invalid WAVE: {e}")))?;
        match &self.live {
            Live::Component { .. } => {
                let func = self.component_func(name)?;
                let Live::Component { store, .. } = &self.live else {
                    unreachable!()
                };
                let ty = func.ty(store);
                let types: Vec<_> = ty.params().map(|(_, t)| t).collect();
                let args: Vec<Val> = parsed
                    .to_wasm_params(types.iter())
                    .map_err(|e| self.invalid(name, format!("invalid arguments: {e}")))?;
                let results = self.invoke(name, &args).await?;
                results
                    .iter()
                    .map(|v| wasm_wave::to_string(v).map_err(|e| self.invalid(name, e.to_string())))
                    .collect()
            }
            Live::Module { .. } => {
                let Live::Module { store, instance } = &mut self.live else {
                    unreachable!()
                };
                let ty = instance.get_func(&mut *store, name).map(|f| f.ty(&*store));
                let Some(ty) = ty else {
                    return Err(self
                        .resolve(name)
                        .err()
                        .unwrap_or_else(|| self.invalid(name, "not a function".into())));
                };
                let types: Vec<_> = ty.params().collect();
                let args: Vec<wasmtime::Val> = parsed
                    .to_wasm_params(types.iter())
                    .map_err(|e| self.invalid(name, format!("invalid arguments: {e}")))?;
                let results = self.invoke_core(name, &args).await?;
                results
                    .iter()
                    .map(|v| wasm_wave::to_string(v).map_err(|e| self.invalid(name, e.to_string())))
                    .collect()
            }
        }
    }

    fn begin(&self) -> Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned {
                component: self.ctx.component_id().to_string(),
            });
        }
        Ok(())
    }

    fn finish<R>(
        &mut self,
        name: &str,
        fuel: u64,
        start: Instant,
        r: wasmtime::Result<R>,
    ) -> Result<R> {
        let (fuel_left, peak, denied) = match &mut self.live {
            Live::Component { store, .. } => usage_of(store),
            Live::Module { store, .. } => usage_of(store),
        };
        self.last_usage = Some(ResourceUsage {
            fuel_consumed: fuel.saturating_sub(fuel_left),
            peak_memory_bytes: peak,
            wall_time: start.elapsed(),
            storage_bytes: match &mut self.live {
                Live::Component { store, .. } => store.data_mut().storage.end_call(),
                Live::Module { .. } => 0,
            },
        });
        match r {
            Ok(v) => Ok(v),
            Err(e) => {
                // wasmtime type-checks the arguments before entering the guest:
                // that error is the caller's mistake, not a trap, and leaves the
                // instance usable.
                let text = crate::runtime::trap::error_chain(&e);
                if e.downcast_ref::<wasmtime::Trap>().is_none() && text.contains("type mismatch") {
                    return Err(self.invalid(name, text));
                }
                self.poisoned = true;
                Err(Failure {
                    component: self.ctx.component_id(),
                    limits: self.ctx.limits(),
                    memory_denied: denied,
                    stderr_tail: String::new(),
                }
                .classify(e))
            }
        }
    }
}

/// Fuel left, peak memory, and whether memory was denied; ends the call's deadline.
fn usage_of<T: HasRunState>(store: &mut Store<T>) -> (u64, u64, bool) {
    let metered = store.data_mut().run().metered;
    let left = if metered {
        store.get_fuel().unwrap_or(0)
    } else {
        0
    };
    let run = store.data_mut().run();
    run.deadline = None;
    (left, run.limiter.peak(), run.limiter.memory_denied)
}
