//! Replies with the payload it was sent.
use airssys_wasm_sdk::{component, Component, Error, Message};

struct Echo;

impl Component for Echo {
    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        Ok(Some(msg.payload))
    }
}

component!(Echo);
