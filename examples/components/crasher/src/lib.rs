//! Hostile: fails on demand. Payload `panic` panics, `overflow` recurses until the
//! stack overflows, `error` returns an error value, anything else is echoed.
use airssys_wasm_sdk::{component, Component, Error, Message};

struct Crasher;

fn recurse(depth: u64, pad: [u8; 256]) -> u64 {
    let pad = std::hint::black_box(pad);
    recurse(depth + 1, pad) + pad[(depth % 256) as usize] as u64
}

impl Component for Crasher {
    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        match msg.payload.as_slice() {
            b"panic" => panic!("crasher was asked to panic"),
            b"overflow" => Ok(Some(recurse(0, [1; 256]).to_string().into_bytes())),
            b"error" => Err(Error::InvalidInput("crasher was asked to fail".into())),
            _ => Ok(Some(msg.payload)),
        }
    }
}

component!(Crasher);
