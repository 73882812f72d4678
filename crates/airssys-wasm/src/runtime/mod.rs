//! The runtime: wasmtime's roles, one type each — the [`Engine`](engine::Engine)
//! (pooling, epochs, fuel, compile cache), the [`Component`](component::Component)
//! (compiled code linked once into an `InstancePre`), the
//! [`Instance`](instance::Instance) (one `Store`, the lifecycle calls), and the classification of traps.

pub(crate) mod command;
pub(crate) mod component;
pub(crate) mod engine;
pub(crate) mod inspect;
pub(crate) mod instance;
pub(crate) mod invoke;
pub(crate) mod load;
pub(crate) mod trap;
