//! One module per subcommand: its arguments and what it does. Each only
//! parses and prints; the behaviour lives in the `airssys-wasm` library.

pub(crate) mod call;
pub(crate) mod client;
pub(crate) mod compile;
pub(crate) mod inspect;
pub(crate) mod keygen;
pub(crate) mod new;
pub(crate) mod ps;
pub(crate) mod run;
pub(crate) mod send;
pub(crate) mod serve;
pub(crate) mod sign;
pub(crate) mod storage;
pub(crate) mod up;
pub(crate) mod upgrade;
pub(crate) mod verify;
