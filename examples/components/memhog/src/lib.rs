//! Hostile: grows its linear memory by 1 MiB per step. The payload is the number
//! of MiB to allocate (decimal); empty means "until something stops me".
use airssys_wasm_sdk::{component, Component, Error, Message};

struct MemHog;

impl Component for MemHog {
    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        let want: usize = String::from_utf8_lossy(&msg.payload)
            .trim()
            .parse()
            .unwrap_or(usize::MAX);
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        while hoard.len() < want {
            hoard.push(vec![0xA5; 1 << 20]);
        }
        let total: usize = hoard.iter().map(|v| v.len()).sum();
        Ok(Some(format!("allocated {} MiB", total >> 20).into_bytes()))
    }
}

component!(MemHog);
