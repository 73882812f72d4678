//! # airssys-wasm
//!
//! Run untrusted WebAssembly components as sandboxed actors inside a Rust
//! application. Each component gets only the capabilities it is granted (no
//! files, environment or network by default), bounded memory, fuel and
//! wall-clock time per call, and reports what every call consumed.
//!
//! The types follow wasmtime's embedding API, one per role:
//!
//! | type | role |
//! |---|---|
//! | [`Engine`] | wasmtime configured once: pooling allocator, epoch ticker, fuel, compile cache, linkers |
//! | [`Component`] | compiled code linked into an `InstancePre`, instantiated many times |
//! | [`ExecutionContext`] | identity, [`ResourceLimits`], [`Capabilities`] and config of an instance |
//! | [`Instance`] | a live instance owning its `Store`; lifecycle calls; [`ResourceUsage`] per call |
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
//! The host <-> guest contract is the WIT package `airssys:component@0.1.0` in
//! `wit/`; guests are written with the `airssys-wasm-sdk` crate.
#![warn(missing_docs)]

mod bindings;
pub mod capability;
mod command;
mod component;
mod engine;
mod error;
mod execution;
mod host;
mod inspect;
mod instance;
mod limits;
pub mod manifest;
pub mod signing;
mod trap;
pub mod units;

pub use bindings::{GuestError, HealthStatus, Message, Metadata, Payload, LIFECYCLE_INTERFACE};
pub use capability::{AuditEvent, AuditLog, Capabilities, DirGrant, HostPolicy, Verdict};
pub use command::ExitStatus;
pub use component::{Component, ComponentKind};
pub use engine::{default_cache_dir, CacheStats, Engine, EngineConfig};
pub use error::{DisplayBytes, DisplayDuration, Error, Result};
pub use execution::{ComponentHandle, ExecutionContext, ExecutionState};
pub use inspect::Inspection;
pub use instance::Instance;
pub use limits::{ResourceLimits, ResourceUsage};
pub use manifest::{Access, Manifest};
