//! Hostile: fails on demand. Payload `panic` panics, `overflow` recurses until the
//! stack overflows, `error` returns an error value, anything else is echoed.
use airssys_wasm_sdk::{component, Component, Error, Message};

struct Crasher;

/// Recursion on the wasm value stack only (no address-taken locals), so it
/// overflows the engine's stack rather than the guest's shadow stack.
#[inline(never)]
fn recurse(n: u32) -> u32 {
    if n == 0 {
        return 0;
    }
    recurse(n - 1).rotate_left(5) ^ n
}

impl Component for Crasher {
    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        match msg.payload.as_slice() {
            b"panic" => panic!("crasher was asked to panic"),
            b"overflow" => Ok(Some(
                recurse(u32::MAX - msg.sender.len() as u32)
                    .to_string()
                    .into_bytes(),
            )),
            b"error" => Err(Error::InvalidInput("crasher was asked to fail".into())),
            _ => Ok(Some(msg.payload)),
        }
    }
}

component!(Crasher);
