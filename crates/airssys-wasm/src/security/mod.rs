//! Security: what a component may reach and who decides. Patterns and grants
//! ([`capability`]), the audit trail, the
//! host's [`policy`] (the [`SecurityPolicy`](policy::SecurityPolicy) trait and
//! its TOML implementation [`HostPolicy`](policy::HostPolicy)), and [`signing`].

mod audit;
pub mod capability;
pub mod pattern;
pub mod policy;
pub mod signing;
