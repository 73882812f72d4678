//! Running a system from a file and watching it: `system.toml`
//! ([`config`]), and the HTTP admin API with Prometheus metrics ([`admin`])
//! that `airssys-wasm up` serves, and `[http]` routes into it ([`http`]).

pub mod admin;
pub mod config;
pub mod http;
