//! What one instance runs with, as plain data filled in before it starts: its
//! [`ExecutionContext`](context::ExecutionContext) (identity, grants, config),
//! its [`ResourceLimits`](limits::ResourceLimits) (enforced as a wasmtime
//! `ResourceLimiter` and the epoch deadline), its host budget
//! ([`budget`]: what the host holds on its behalf), and the
//! [`Manifest`](manifest::Manifest) (`Component.toml`) these are built from,
//! intersected with the host's policy.
//!
//! Below the host interfaces and the runtime, above `security` and `storage`:
//! everything here is filled in by a higher layer and read by a lower one.

pub(crate) mod budget;
pub(crate) mod context;
pub(crate) mod limits;
pub mod manifest;
