//! Security: what a component may reach and who decides. Name and address
//! [`pattern`]s, grants ([`capability`]), the audit trail
//! ([`AuditLog`](crate::AuditLog)), the host's policy (the
//! [`SecurityPolicy`](crate::SecurityPolicy) trait and its TOML implementation
//! [`HostPolicy`](crate::HostPolicy)), and [`signing`].

pub(crate) mod audit;
pub mod capability;
pub mod pattern;
pub(crate) mod policy;
pub mod signing;
