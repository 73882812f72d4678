//! Hostile: never returns from handle-message (burns fuel or wall-clock time).
use airssys_wasm_sdk::{component, Component, Error, Message};

struct Looper;

impl Component for Looper {
    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        let mut n: u64 = msg.payload.len() as u64;
        loop {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

component!(Looper);
