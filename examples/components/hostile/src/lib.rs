//! Hostile, and scriptable: each message's payload is a command that makes the
//! host hold or do as much as it will on this guest's behalf. Every command
//! replies with what the host let it do and the first error it met, so tests
//! assert the typed refusal. Commands (words separated by spaces):
//!
//! - `timers N BYTES`: N `send-after` timers to itself, 60 s out, BYTES each
//! - `flood T N BYTES`: N sends of BYTES to T, stopping at the first error
//! - `meta T BYTES`: one send to T whose metadata value is BYTES long
//! - `ctype T BYTES`: one send to T whose content type is BYTES long
//! - `subs N`: N subscriptions `feed.0` … `feed.N-1`
//! - `publish TOPIC BYTES`: one publish of BYTES
//! - `reply BYTES`: replies with BYTES bytes
//! - `request T MS TEXT…`: a request of TEXT (the rest of the words); its
//!   callback is kept, read with `log?`
//! - `clock N`: N `monotonic-nanos` calls
//! - `long-target LEN N`: N sends to a target named with LEN characters
//! - `forge`: a log line with a newline and a fake host line after it
//! - `logs N BYTES`: N log lines of BYTES each
//! - `log?`: what the callbacks brought
//! - anything else is echoed
//!
//! Config: `trap-init` (initialize traps), `spin-shutdown` (shutdown spins).
use std::cell::RefCell;

use airssys_wasm_sdk::{
    component, config, log, message, messaging, services, Component, Error, LogLevel, Message,
    RequestError,
};

thread_local! {
    static RECORD: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
        .trim_start_matches("MessagingError::")
        .to_string()
}

fn done(n: u64, first_err: Option<String>) -> Vec<u8> {
    format!("{n} err {}", first_err.unwrap_or_else(|| "none".into())).into_bytes()
}

struct Hostile;

impl Component for Hostile {
    fn initialize(cfg: Vec<(String, String)>) -> Result<(), Error> {
        if cfg.iter().any(|(k, _)| k == "trap-init") {
            panic!("hostile: initialize traps (trap-init)");
        }
        Ok(())
    }

    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        let text = String::from_utf8_lossy(&msg.payload).into_owned();
        let w: Vec<&str> = text.split(' ').collect();
        let arg = |n: usize| w.get(n).copied().unwrap_or("");
        let num = |n: usize| arg(n).parse::<u64>().unwrap_or(0);
        let reply = match w[0] {
            "timers" => {
                let payload = vec![b't'; num(2) as usize];
                let me = messaging::self_id();
                let mut armed = 0;
                let mut first = None;
                for _ in 0..num(1) {
                    match messaging::send_after(&me, &message(payload.clone()), 60_000) {
                        Ok(_) => armed += 1,
                        Err(e) => {
                            first = Some(err(e));
                            break;
                        }
                    }
                }
                done(armed, first)
            }
            "flood" => {
                let payload = vec![b'f'; num(3) as usize];
                let mut sent = 0;
                let mut first = None;
                for _ in 0..num(2) {
                    match messaging::send(arg(1), &message(payload.clone())) {
                        Ok(()) => sent += 1,
                        Err(e) => {
                            first = Some(err(e));
                            break;
                        }
                    }
                }
                done(sent, first)
            }
            "meta" | "ctype" => {
                let big = "m".repeat(num(2) as usize);
                let mut m = message("tiny");
                if w[0] == "meta" {
                    m.metadata.push(("k".into(), big));
                } else {
                    m.content_type = big;
                }
                match messaging::send(arg(1), &m) {
                    Ok(()) => done(1, None),
                    Err(e) => done(0, Some(err(e))),
                }
            }
            "subs" => {
                let mut n = 0;
                let mut first = None;
                for i in 0..num(1) {
                    match messaging::subscribe(&format!("feed.{i}")) {
                        Ok(()) => n += 1,
                        Err(e) => {
                            first = Some(err(e));
                            break;
                        }
                    }
                }
                done(n, first)
            }
            "publish" => match messaging::publish(arg(1), &message(vec![b'p'; num(2) as usize])) {
                Ok(n) => done(n.into(), None),
                Err(e) => done(0, Some(err(e))),
            },
            "reply" => vec![b'r'; num(1) as usize],
            "request" => {
                let ms = num(2).clamp(1, 60_000) as u32;
                let text = w.get(3..).map(|r| r.join(" ")).unwrap_or_default();
                match messaging::request(arg(1), &message(text), ms) {
                    Ok(c) => c.into_bytes(),
                    Err(e) => err(e).into_bytes(),
                }
            }
            "clock" => {
                let mut last = 0;
                for _ in 0..num(1) {
                    last = services::monotonic_nanos()?;
                }
                last.to_string().into_bytes()
            }
            "long-target" => {
                let target = "x".repeat(num(1) as usize);
                let mut refused = 0;
                let mut first = None;
                for _ in 0..num(2) {
                    if let Err(e) = messaging::send(&target, &message("x")) {
                        refused += 1;
                        let e = err(e);
                        first.get_or_insert(e.chars().take(200).collect());
                    }
                }
                done(refused, first)
            }
            "forge" => {
                log(
                    LogLevel::Info,
                    "benign\n2026-12-02T00:00:00Z  INFO airssys_wasm: host line forged by a guest",
                );
                b"ok".to_vec()
            }
            "logs" => {
                let line = "l".repeat(num(2) as usize);
                for _ in 0..num(1) {
                    log(LogLevel::Info, &line);
                }
                b"ok".to_vec()
            }
            "log?" => RECORD.with(|r| r.borrow().join("\n").into_bytes()),
            _ => msg.payload.clone(),
        };
        Ok(Some(reply))
    }

    fn handle_callback(corr: String, reply: Result<Message, RequestError>) -> Result<(), Error> {
        let what = match reply {
            Ok(m) => format!("ok:{}", m.payload.len()),
            Err(RequestError::Timeout) => "timeout".into(),
            Err(RequestError::Failed(r)) => format!("failed:{r}"),
            Err(RequestError::Stopped(r)) => format!("stopped:{r}"),
        };
        RECORD.with(|r| r.borrow_mut().push(format!("cb:{corr}:{what}")));
        Ok(())
    }

    fn shutdown() -> Result<(), Error> {
        if config("spin-shutdown")?.is_some() {
            let mut n: u64 = 1;
            loop {
                n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        Ok(())
    }
}

component!(Hostile);
