//! A stateful counter: starts at config `start` (default 0); each message adds
//! its payload (a decimal number, default 1, or the config `step`) and replies
//! with the new total. State lives as long as the instance.
use std::cell::Cell;

use airssys_wasm_sdk::{component, config, log, Component, Error, LogLevel, Message};

thread_local! {
    static TOTAL: Cell<i64> = const { Cell::new(0) };
}

struct Counter;

fn parse(what: &str, s: &str) -> Result<i64, Error> {
    s.trim()
        .parse()
        .map_err(|_| Error::InvalidInput(format!("{what} must be an integer, got {s:?}")))
}

impl Component for Counter {
    fn initialize(cfg: Vec<(String, String)>) -> Result<(), Error> {
        let start = match cfg.iter().find(|(k, _)| k == "start") {
            Some((_, v)) => parse("start", v)?,
            None => 0,
        };
        TOTAL.with(|t| t.set(start));
        log(LogLevel::Info, &format!("counter starts at {start}"));
        Ok(())
    }

    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        let text = String::from_utf8_lossy(&msg.payload);
        let step = if !text.trim().is_empty() {
            parse("payload", &text)?
        } else if let Some(step) = config("step")? {
            parse("step", &step)?
        } else {
            1
        };
        let total = TOTAL.with(|t| {
            t.set(t.get() + step);
            t.get()
        });
        Ok(Some(total.to_string().into_bytes()))
    }
}

component!(Counter);
