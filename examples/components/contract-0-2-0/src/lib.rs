//! Built against `wit/` here: a verbatim copy of `airssys:component@0.2.0`, the
//! contract as it was released, never edited. The host's contract moves on by
//! minor versions; this guest must keep loading and answering on every 0.2.x host.
//!
//! `handle-message` echoes the payload prefixed with its actor id, and counts the
//! messages it handled in its storage (key `seen`), so a test sees imports work.
wit_bindgen::generate!({
    path: "wit",
    world: "component",
    generate_all,
});

use airssys::component::{messaging, storage};
use exports::airssys::component::lifecycle::Guest;
use airssys::component::types::{ComponentMetadata, Error, HealthStatus, Message, RequestError};

struct Old;

impl Guest for Old {
    fn initialize(_config: Vec<(String, String)>) -> Result<(), Error> {
        Ok(())
    }

    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        let seen = storage::get("seen")
            .map_err(|e| Error::Internal(format!("{e:?}")))?
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_le_bytes)
            + 1;
        storage::set("seen", &seen.to_le_bytes()).map_err(|e| Error::Internal(format!("{e:?}")))?;
        let mut reply = format!("{} (0.2.0, {seen}): ", messaging::self_id()).into_bytes();
        reply.extend_from_slice(&msg.payload);
        Ok(Some(reply))
    }

    fn handle_callback(_id: String, _reply: Result<Message, RequestError>) -> Result<(), Error> {
        Ok(())
    }

    fn metadata() -> ComponentMetadata {
        ComponentMetadata {
            name: "contract-0-2-0".into(),
            version: "0.2.0".into(),
            description: "built against airssys:component@0.2.0".into(),
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
