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
use crate::runtime::trap::Failure;
use crate::sandbox::context::ExecutionContext;
use crate::sandbox::limits::ResourceUsage;

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
    ///
    /// # Errors
    ///
    /// As [`Component::instantiate`], without the lifecycle requirement.
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
                let mut store =
                    self.engine()
                        .store(HostState::new(ctx, builder.build(), resolved, None, None));
                crate::runtime::instance::prepare_call(&mut store, ctx, start)?;
                let instance = match pre.instantiate_async(&mut store).await {
                    Ok(i) => i,
                    Err(e) => return Err(failure(ctx, &mut store).classify(e)),
                };
                Live::Component { store, instance }
            }
            Prepared::Module { pre } => {
                let mut store = self
                    .engine()
                    .store(ModuleHost::new(ctx, builder.build_p1()));
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
    ///
    /// # Errors
    ///
    /// [`Error::Invoke`] for an unknown export or arguments of the wrong type, and the call
    /// failures of [`Instance::handle_message`](crate::Instance::handle_message).
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
        // Checked here, not by reading wasmtime's error text: a mismatch is
        // the caller's mistake and leaves the instance usable.
        if let Live::Component { store, .. } = &self.live {
            let ty = func.ty(store);
            for (i, ((_, t), v)) in ty.params().zip(args).enumerate() {
                if let Err(why) = type_check(&t, v) {
                    let reason = format!("argument {}: {why}", i + 1);
                    return Err(self.invalid(name, reason));
                }
            }
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
    ///
    /// # Errors
    ///
    /// As [`Invoker::invoke`], and [`Error::Invoke`] for a call that does not parse as WAVE.
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
                // Arguments were type-checked before the call (`type_check`),
                // so any error here happened in or around the guest.
                let _ = name;
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

/// Whether `v` is a value of `ty`; the reason when it is not. Resources and
/// the async types are left to wasmtime (which checks them against the store).
fn type_check(ty: &wasmtime::component::Type, v: &Val) -> std::result::Result<(), String> {
    use wasmtime::component::Type as T;
    let all = |ts: &mut dyn Iterator<Item = wasmtime::component::Type>, vs: &[Val]| {
        let ts: Vec<_> = ts.collect();
        if ts.len() != vs.len() {
            return Err(format!("expected {} elements, got {}", ts.len(), vs.len()));
        }
        ts.iter().zip(vs).try_for_each(|(t, v)| type_check(t, v))
    };
    let payload =
        |t: Option<wasmtime::component::Type>, v: &Option<Box<Val>>, what: &str| match (t, v) {
            (Some(t), Some(v)) => type_check(&t, v),
            (None, None) => Ok(()),
            (Some(_), None) => Err(format!("{what} needs a payload")),
            (None, Some(_)) => Err(format!("{what} has no payload")),
        };
    match (ty, v) {
        (T::Bool, Val::Bool(_))
        | (T::S8, Val::S8(_))
        | (T::U8, Val::U8(_))
        | (T::S16, Val::S16(_))
        | (T::U16, Val::U16(_))
        | (T::S32, Val::S32(_))
        | (T::U32, Val::U32(_))
        | (T::S64, Val::S64(_))
        | (T::U64, Val::U64(_))
        | (T::Float32, Val::Float32(_))
        | (T::Float64, Val::Float64(_))
        | (T::Char, Val::Char(_))
        | (T::String, Val::String(_)) => Ok(()),
        (T::List(l), Val::List(vs)) => {
            let t = l.ty();
            vs.iter().try_for_each(|v| type_check(&t, v))
        }
        (T::FixedLengthList(l), Val::FixedLengthList(vs)) => {
            if vs.len() != l.len() as usize {
                return Err(format!("expected {} elements, got {}", l.len(), vs.len()));
            }
            let t = l.ty();
            vs.iter().try_for_each(|v| type_check(&t, v))
        }
        (T::Map(m), Val::Map(kvs)) => {
            let (k, t) = (m.key(), m.value());
            kvs.iter()
                .try_for_each(|(kv, vv)| type_check(&k, kv).and_then(|()| type_check(&t, vv)))
        }
        (T::Record(r), Val::Record(fields)) => {
            let want: Vec<_> = r.fields().collect();
            if want.len() != fields.len() {
                return Err(format!(
                    "expected {} fields, got {}",
                    want.len(),
                    fields.len()
                ));
            }
            for (f, (name, v)) in want.iter().zip(fields) {
                if f.name != name {
                    return Err(format!("expected field {}, got {name}", f.name));
                }
                type_check(&f.ty, v).map_err(|e| format!("{name}: {e}"))?;
            }
            Ok(())
        }
        (T::Tuple(t), Val::Tuple(vs)) => all(&mut t.types(), vs),
        (T::Variant(t), Val::Variant(case, v)) => match t.cases().find(|c| c.name == case) {
            Some(c) => payload(c.ty, v, case),
            None => Err(format!("no case {case}")),
        },
        (T::Enum(t), Val::Enum(case)) => match t.names().any(|n| n == case) {
            true => Ok(()),
            false => Err(format!("no case {case}")),
        },
        (T::Option(t), Val::Option(v)) => match v {
            Some(v) => type_check(&t.ty(), v),
            None => Ok(()),
        },
        (T::Result(t), Val::Result(r)) => match r {
            Ok(v) => payload(t.ok(), v, "ok"),
            Err(v) => payload(t.err(), v, "err"),
        },
        (T::Flags(t), Val::Flags(names)) => {
            let known: Vec<&str> = t.names().collect();
            match names.iter().find(|n| !known.contains(&n.as_str())) {
                Some(n) => Err(format!("no flag {n}")),
                None => Ok(()),
            }
        }
        (T::Own(_) | T::Borrow(_), Val::Resource(_))
        | (T::Future(_), Val::Future(_))
        | (T::Stream(_), Val::Stream(_))
        | (T::ErrorContext, Val::ErrorContext(_)) => Ok(()),
        (t, v) => Err(format!("expected {}, got {}", DisplayType(t), val_kind(v))),
    }
}

fn val_kind(v: &Val) -> &'static str {
    match v {
        Val::Bool(_) => "a bool",
        Val::S8(_) => "an s8",
        Val::U8(_) => "a u8",
        Val::S16(_) => "an s16",
        Val::U16(_) => "a u16",
        Val::S32(_) => "an s32",
        Val::U32(_) => "a u32",
        Val::S64(_) => "an s64",
        Val::U64(_) => "a u64",
        Val::Float32(_) => "an f32",
        Val::Float64(_) => "an f64",
        Val::Char(_) => "a char",
        Val::String(_) => "a string",
        Val::List(_) => "a list",
        Val::Map(_) => "a map",
        Val::Record(_) => "a record",
        Val::Tuple(_) => "a tuple",
        Val::Variant(..) => "a variant",
        Val::Enum(_) => "an enum",
        Val::Option(_) => "an option",
        Val::Result(_) => "a result",
        Val::Flags(_) => "flags",
        Val::Resource(_) => "a resource",
        Val::Future(_) => "a future",
        Val::Stream(_) => "a stream",
        Val::ErrorContext(_) => "an error-context",
        Val::FixedLengthList(_) => "a fixed-length list",
    }
}
