//! Built against `wit/released/0.1.0`: a verbatim copy of `airssys:component@0.1.0`, the
//! first released contract, never edited. Its world imports only `services`
//! and its `handle-callback` takes a plain message. Every later host must keep
//! loading and answering it, beside guests of the current contract.
//!
//! `handle-message` echoes the payload prefixed with its configured `name` (read
//! through `services.get-config`) and a count kept in the instance; payload
//! `fail` returns `invalid-input`, payload `trap` traps, payload `time` answers
//! the host's wall clock, so a test sees imports, errors and traps cross.
wit_bindgen::generate!({
    path: "../../../wit/released/0.1.0",
    world: "component",
    generate_all,
});

use std::cell::Cell;

use airssys::component::services::{self, LogLevel};
use airssys::component::types::{ComponentMetadata, Error, HealthStatus, Message};
use exports::airssys::component::lifecycle::Guest;

thread_local! {
    static SEEN: Cell<u64> = const { Cell::new(0) };
}

struct Old;

impl Guest for Old {
    fn initialize(config: Vec<(String, String)>) -> Result<(), Error> {
        if config.iter().any(|(k, _)| k == "fail-init") {
            return Err(Error::Unavailable("told to fail initialize".into()));
        }
        services::log(LogLevel::Info, "0.1.0 guest up", &[]);
        Ok(())
    }

    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        match &msg.payload[..] {
            b"fail" => return Err(Error::InvalidInput("told to fail".into())),
            b"trap" => panic!("told to trap"),
            b"time" => return Ok(Some(services::now_millis()?.to_string().into_bytes())),
            _ => {}
        }
        let seen = SEEN.with(|s| {
            s.set(s.get() + 1);
            s.get()
        });
        let name = services::get_config("name")?.unwrap_or_else(|| "nobody".into());
        let mut reply = format!("{name} (0.1.0, {seen}, from {}): ", msg.sender).into_bytes();
        reply.extend_from_slice(&msg.payload);
        Ok(Some(reply))
    }

    fn handle_callback(_msg: Message) -> Result<(), Error> {
        Ok(())
    }

    fn metadata() -> ComponentMetadata {
        ComponentMetadata {
            name: "contract-0-1-0".into(),
            version: "0.1.0".into(),
            description: "built against airssys:component@0.1.0".into(),
        }
    }

    fn health() -> HealthStatus {
        HealthStatus::Healthy
    }

    fn shutdown() -> Result<(), Error> {
        Ok(())
    }
}

export!(Old);
