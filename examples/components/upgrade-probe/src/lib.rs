//! One component in several versions, for hot-upgrade tests. The build script
//! builds it once per variant (environment at compile time):
//!
//! - `UPGRADE_PROBE_VERSION` (default `1.0.0`): its `metadata().version`;
//! - `UPGRADE_PROBE_FAULT`: `init` (its `initialize` fails) or `trap` (it
//!   traps on every message); unset: none.
//!
//! Each message is answered `VERSION #N: PAYLOAD`, `N` counting the messages
//! this instance handled (a fresh instance starts again at 1).
use std::cell::Cell;

use airssys_wasm_sdk::{component, Component, Error, Message, Metadata};

const VERSION: &str = match option_env!("UPGRADE_PROBE_VERSION") {
    Some(v) => v,
    None => "1.0.0",
};
const FAULT: &str = match option_env!("UPGRADE_PROBE_FAULT") {
    Some(f) => f,
    None => "",
};

thread_local! {
    static HANDLED: Cell<u64> = const { Cell::new(0) };
}

struct Probe;

impl Component for Probe {
    fn initialize(_config: Vec<(String, String)>) -> Result<(), Error> {
        if FAULT == "init" {
            return Err(Error::Unavailable(format!("version {VERSION} cannot start")));
        }
        Ok(())
    }

    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        if FAULT == "trap" {
            panic!("version {VERSION} traps on every message");
        }
        let n = HANDLED.with(|h| {
            h.set(h.get() + 1);
            h.get()
        });
        let mut out = format!("{VERSION} #{n}: ").into_bytes();
        out.extend_from_slice(&msg.payload);
        Ok(Some(out))
    }

    fn metadata() -> Option<Metadata> {
        Some(Metadata {
            name: "upgrade-probe".into(),
            version: VERSION.into(),
            description: "versions of one component for hot-upgrade tests".into(),
        })
    }
}

component!(Probe);
