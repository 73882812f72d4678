//! A stage of the demo's order pipeline; its `role` config says which:
//!
//! - `ingest`: publishes each order on `orders.new` and replies how many
//!   subscribers got it; the order `crash` makes it panic (supervision heals it);
//! - `enrich`: subscribed to `orders.*`; upper-cases an order and asks `store`
//!   to keep it (request → reply at `handle-callback`);
//! - `store`: keeps what it is sent; `list` replies with everything kept.
use std::cell::RefCell;

use airssys_wasm_sdk::{
    component, config, log, publish, request, Component, Error, LogLevel, Message, RequestError,
};

thread_local! {
    static KEPT: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

struct Stage;

fn role() -> Result<String, Error> {
    Ok(config("role")?.unwrap_or_else(|| "store".into()))
}

impl Component for Stage {
    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        let text = String::from_utf8_lossy(&msg.payload).into_owned();
        match role()?.as_str() {
            "ingest" => {
                if text == "crash" {
                    panic!("ingest cannot parse order {text:?}");
                }
                let n = publish("orders.new", text.clone())
                    .map_err(|e| Error::Unavailable(format!("{e:?}")))?;
                Ok(Some(
                    format!("order {text:?} published to {n} subscribers").into_bytes(),
                ))
            }
            "enrich" => {
                request("store", text.to_uppercase(), 1000)
                    .map_err(|e| Error::Unavailable(format!("{e:?}")))?;
                Ok(None)
            }
            _ if text == "list" => Ok(Some(KEPT.with(|k| k.borrow().join(", ")).into_bytes())),
            _ => {
                let n = KEPT.with(|k| {
                    let mut k = k.borrow_mut();
                    k.push(text);
                    k.len()
                });
                Ok(Some(format!("kept #{n}").into_bytes()))
            }
        }
    }

    fn handle_callback(_corr: String, reply: Result<Message, RequestError>) -> Result<(), Error> {
        match reply {
            Ok(m) => log(
                LogLevel::Info,
                &format!(
                    "{} answered: {}",
                    m.sender,
                    String::from_utf8_lossy(&m.payload)
                ),
            ),
            Err(e) => log(LogLevel::Warn, &format!("store did not answer: {e:?}")),
        }
        Ok(())
    }
}

component!(Stage);
