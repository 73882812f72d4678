//! # airssys-wasm
//!
//! Run untrusted WebAssembly components as sandboxed actors inside a Rust
//! application. Each component gets only the capabilities it is granted (no
//! files, environment or network by default), bounded memory, fuel and
//! wall-clock time per call, and reports what every call consumed.
//!
//! The types follow wasmtime's embedding API, one per role. The modules import
//! one way, from the composition root down to the leaves (`actor/` →
//! `runtime/` → `host/` → `sandbox/` → `security/`, `storage/` → `error`,
//! `units`); the messaging host interface reaches the actor layer only through
//! the trait it defines (`Mailroom`). `scripts/check-deps.py` fails on a cycle.
//!
//! | type | role |
//! |---|---|
//! | [`Engine`] | wasmtime configured once: pooling allocator, epoch ticker, fuel, compile cache, linkers |
//! | [`Component`] | compiled code linked into an `InstancePre`, instantiated many times |
//! | [`ExecutionContext`] | identity, [`ResourceLimits`], [`Capabilities`], config and [`LogBudget`] of an instance |
//! | [`Invoker`] | an instance of any component or module: call any export by name with dynamic values (WAVE) |
//! | [`Instance`] | a live instance owning its `Store`; lifecycle calls; [`ResourceUsage`] per call |
//! | [`Manifest`], [`HostPolicy`], [`SecurityPolicy`] | what a component asks for, what the host allows, decided per call |
//! | [`AuditLog`] | every allow and deny, as JSON Lines or in memory |
//! | [`ActorSystem`] / [`SystemBuilder`] | the composition root: a supervision tree, virtual actors, send/request/publish, events |
//! | [`SupervisorSpec`] | a supervisor: [`Strategy`], [`Intensity`], [`Backoff`], children |
//! | [`ActorSpec`] / [`ActorOptions`] | one actor: id, component, context; mailbox, restart policy, health, passivation |
//! | [`Storage`](storage::Storage) | durable per-actor key-value namespaces on redb: quotas, group commit, export/import |
//! | [`ActorStatus`], [`SystemEvent`], [`DeadLetter`] | what observers see |
//!
//! ```no_run
//! use airssys_wasm::{Engine, EngineConfig, ExecutionContext, Message, ResourceLimits};
//! use std::time::Duration;
//!
//! # async fn demo() -> airssys_wasm::Result<()> {
//! let engine = Engine::new(EngineConfig::default().consume_fuel(true))?;
//! let component = engine.load_file("echo.wasm")?; // compiled once, then cached on disk
//! let ctx = ExecutionContext::new("echo")
//!     .with_limits(ResourceLimits::default().with_fuel(10_000_000).with_timeout(Duration::from_secs(1)));
//! let mut instance = component.instantiate(&ctx).await?;
//! instance.initialize().await?;
//! let reply = instance.handle_message(&Message::new("host", b"hello".to_vec())).await?;
//! assert_eq!(reply.as_deref(), Some(&b"hello"[..]));
//! println!("{:?}", instance.last_usage()); // fuel, peak memory, wall time
//! # Ok(()) }
//! ```
//!
//! The host <-> guest contract is the WIT package `airssys:component@0.2.1` in
//! `wit/`; guests are written with the `airssys-wasm-sdk` crate.
#![warn(missing_docs)]

mod actor;
mod bindings;
pub mod cluster;
mod error;
mod host;
mod id;
mod runtime;
mod sandbox;
pub mod security;
pub mod serve;
pub mod storage;
pub mod system;
pub mod units;

pub use actor::{
    ActorId, ActorMetadata, ActorOptions, ActorSpec, ActorState, ActorStatus, ActorSystem, Backoff,
    ChildSpec, DeadLetter, DeadLetterReason, HealthCheck, HostHealth, HostStatus, HostUsage,
    Intensity, RestartPolicy, Strategy, SupervisorSpec, SystemBuilder, SystemEvent, SystemStats,
};
pub use bindings::{
    GuestError, HealthStatus, Message, MessagingError, Metadata, Payload, Reply, RequestError,
    LIFECYCLE_INTERFACE,
};
pub use error::{DisplayBytes, DisplayDuration, Error, Result};
pub use host::host_interfaces;
pub use runtime::command::ExitStatus;
pub use runtime::component::{Component, ComponentKind};
pub use runtime::engine::{default_cache_dir, CacheStats, Engine, EngineConfig};
pub use runtime::inspect::Inspection;
pub use runtime::instance::Instance;
pub use runtime::invoke::{ExportedFunction, Invoker};
pub use runtime::load::MAX_COMPONENT_FILE_BYTES;
pub use sandbox::context::{ComponentHandle, ExecutionContext, ExecutionState};
pub use sandbox::limits::{HostLimits, HttpLimits, LogBudget, ResourceLimits, ResourceUsage};
/// The `Component.toml` schema: what a [`Manifest`] holds, section by section.
pub use sandbox::manifest;
pub use sandbox::manifest::{Access, Manifest};
pub use security::audit::{AuditEvent, AuditLog, Verdict};
pub use security::capability::{Capabilities, DirGrant};
pub use security::policy::{Capability, HostPolicy, PolicyDecision, SecurityPolicy};
/// A component-model value, as [`Invoker::invoke`] takes and returns them.
pub use wasmtime::component::Val;
