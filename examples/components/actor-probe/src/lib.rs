//! A scriptable actor for tests, benchmarks and the demo. Each message's payload
//! is a command; every message and callback is also recorded, and `log?`
//! returns the record. Commands (words separated by spaces):
//!
//! - `send T TEXT`, `send-then-panic T TEXT`, `spoof T TEXT` (claims to be `admin`), `request T TEXT MS`,
//!   `cancel CORR`, `after T MS TEXT`, `cancel-timer ID`, `publish TOPIC TEXT`,
//!   `subscribe PAT`, `unsubscribe PAT`, `flood T N [TEXT]` (N messages, `x` or TEXT, until an error)
//! - `chain T N`: N requests to T one after another (each sent from the
//!   previous one's callback), timing each round trip; `rtt?` → `p50 p99` in ns
//! - `panic`, `spin`, `health STATUS`, `spam N` (N log lines), `whoami`,
//!   `sender?`, `trace?`, `log?`
//! - anything else is the reply (an echo)
//!
//! Config: `fail-init`, `health`, `subscribe` (a pattern), `tick-ms` (a
//! periodic tick to itself), `shutdown-file` (written by `shutdown()`).
use std::cell::RefCell;

use airssys_wasm_sdk::{
    component, config, log, message, messaging, services, Component, Error, HealthStatus, LogLevel,
    Message, RequestError,
};

#[derive(Default)]
struct State {
    record: Vec<String>,
    health: Option<HealthStatus>,
    chain: Option<Chain>,
    rtts: Vec<u64>,
}

struct Chain {
    target: String,
    left: u32,
    started: u64,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn record(s: String) {
    STATE.with(|st| {
        let mut st = st.borrow_mut();
        if st.record.len() < 10_000 {
            st.record.push(s);
        }
    });
}

fn err<E: std::fmt::Debug>(e: E) -> Vec<u8> {
    let text = format!("{e:?}");
    format!("err:{}", text.trim_start_matches("MessagingError::")).into_bytes()
}

fn parse_health(s: &str) -> HealthStatus {
    match s {
        "unhealthy" => HealthStatus::Unhealthy,
        "degraded" => HealthStatus::Degraded,
        _ => HealthStatus::Healthy,
    }
}

fn next_request(target: &str) -> Result<(), Error> {
    let now = services::monotonic_nanos()?;
    STATE.with(|st| {
        if let Some(c) = st.borrow_mut().chain.as_mut() {
            c.started = now;
        }
    });
    messaging::request(target, &message("ping"), 5000)
        .map(|_| ())
        .map_err(|e| Error::Internal(format!("{e:?}")))
}

struct Probe;

impl Component for Probe {
    fn initialize(cfg: Vec<(String, String)>) -> Result<(), Error> {
        let get = |k: &str| cfg.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if get("fail-init").is_some() {
            return Err(Error::InvalidInput("fail-init is set".into()));
        }
        if get("shape-in-init").is_some() {
            // set-reply belongs to handle-message; here it must be refused.
            if messaging::set_reply(None, &[]).is_ok() {
                return Err(Error::Internal("set-reply was accepted in initialize".into()));
            }
        }
        if let Some(h) = get("health") {
            STATE.with(|st| st.borrow_mut().health = Some(parse_health(&h)));
        }
        if let Some(p) = get("subscribe") {
            messaging::subscribe(&p).map_err(|e| Error::Internal(format!("{e:?}")))?;
        }
        if let Some(ms) = get("tick-ms") {
            let ms: u32 = ms
                .parse()
                .map_err(|_| Error::InvalidInput("tick-ms".into()))?;
            messaging::send_after(&messaging::self_id(), &message("tick"), ms)
                .map_err(|e| Error::Internal(format!("{e:?}")))?;
        }
        Ok(())
    }

    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        let text = String::from_utf8_lossy(&msg.payload).into_owned();
        let words: Vec<&str> = text.split(' ').collect();
        let rest = |n: usize| words.get(n..).map(|w| w.join(" ")).unwrap_or_default();
        let arg = |n: usize| words.get(n).copied().unwrap_or("");
        if text != "log?" && text != "rtt?" {
            record(format!("msg:{}:{}", msg.sender, text));
        }
        let reply: Vec<u8> = match words[0] {
            "send" => match messaging::send(arg(1), &message(rest(2))) {
                Ok(()) => b"ok".to_vec(),
                Err(e) => err(e),
            },
            // Sends, then traps: a durable sender's send must not stay.
            "send-then-panic" => {
                let _ = messaging::send(arg(1), &message(rest(2)));
                panic!("actor-probe sent, then was asked to panic")
            }
            "spoof" => {
                let mut m = message(rest(2));
                m.sender = "admin".into();
                m.metadata.push(("trace-id".into(), "forged".into()));
                match messaging::send(arg(1), &m) {
                    Ok(()) => b"ok".to_vec(),
                    Err(e) => err(e),
                }
            }
            "request" => {
                let ms: u32 = arg(3).parse().unwrap_or(1000);
                match messaging::request(arg(1), &message(arg(2)), ms) {
                    Ok(corr) => corr.into_bytes(),
                    Err(e) => err(e),
                }
            }
            // ask TARGET MS PAYLOAD...: a request whose payload has spaces.
            "ask" => {
                let ms: u32 = arg(2).parse().unwrap_or(1000);
                match messaging::request(arg(1), &message(rest(3)), ms) {
                    Ok(corr) => corr.into_bytes(),
                    Err(e) => err(e),
                }
            }
            "cancel" => messaging::cancel_request(arg(1)).to_string().into_bytes(),
            "after" => {
                let ms: u32 = arg(2).parse().unwrap_or(0);
                match messaging::send_after(arg(1), &message(rest(3)), ms) {
                    Ok(id) => id.to_string().into_bytes(),
                    Err(e) => err(e),
                }
            }
            "cancel-timer" => messaging::cancel_timer(arg(1).parse().unwrap_or(0))
                .to_string()
                .into_bytes(),
            "publish" => match messaging::publish(arg(1), &message(rest(2))) {
                Ok(n) => n.to_string().into_bytes(),
                Err(e) => err(e),
            },
            "subscribe" => match messaging::subscribe(arg(1)) {
                Ok(()) => b"ok".to_vec(),
                Err(e) => err(e),
            },
            "unsubscribe" => messaging::unsubscribe(arg(1)).to_string().into_bytes(),
            "flood" => {
                let n: u64 = arg(2).parse().unwrap_or(0);
                let mut sent = 0;
                let mut last = String::from("none");
                let body = match rest(3) {
                    b if b.is_empty() => "x".to_string(),
                    b => b,
                };
                while sent < n {
                    match messaging::send(arg(1), &message(&*body)) {
                        Ok(()) => sent += 1,
                        Err(e) => {
                            last = String::from_utf8_lossy(&err(e)[4..]).into_owned();
                            break;
                        }
                    }
                }
                format!("sent {sent} err {last}").into_bytes()
            }
            "chain" => {
                let n: u32 = arg(2).parse().unwrap_or(1);
                STATE.with(|st| {
                    let mut st = st.borrow_mut();
                    st.rtts.clear();
                    st.chain = Some(Chain {
                        target: arg(1).to_string(),
                        left: n,
                        started: 0,
                    });
                });
                next_request(arg(1))?;
                b"ok".to_vec()
            }
            "rtt?" => STATE.with(|st| {
                let mut v = st.borrow().rtts.clone();
                v.sort_unstable();
                let at = |q: f64| {
                    v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
                        .copied()
                        .unwrap_or(0)
                };
                format!("{} {} {}", v.len(), at(0.5), at(0.99)).into_bytes()
            }),
            "panic" => panic!("actor-probe was asked to panic"),
            "spin" => {
                let mut n: u64 = 1;
                loop {
                    n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "health" => {
                STATE.with(|st| st.borrow_mut().health = Some(parse_health(arg(1))));
                b"ok".to_vec()
            }
            "spam" => {
                let n: u32 = arg(1).parse().unwrap_or(0);
                for i in 0..n {
                    log(LogLevel::Info, &format!("spam line {i}"));
                }
                b"ok".to_vec()
            }
            "tick" => {
                if let Some(ms) = config("tick-ms")? {
                    let ms: u32 = ms.parse().unwrap_or(1000);
                    let _ = messaging::send_after(&messaging::self_id(), &message("tick"), ms);
                }
                b"tock".to_vec()
            }
            // shape STATUS CT NAME=VALUE...: a shaped reply ("-" leaves a part out).
            "shape" => {
                let mut meta = Vec::new();
                if arg(1) != "-" && !arg(1).is_empty() {
                    meta.push(("http.status".to_string(), arg(1).to_string()));
                }
                for w in words.iter().skip(3) {
                    if let Some((k, v)) = w.split_once('=') {
                        meta.push((format!("http.header.{k}"), v.to_string()));
                    }
                }
                let ct = (arg(2) != "-" && !arg(2).is_empty()).then(|| arg(2).to_string());
                match messaging::set_reply(ct.as_deref(), &meta) {
                    Ok(()) => b"shaped".to_vec(),
                    Err(e) => err(e),
                }
            }
            // shape-empty STATUS: a status and no payload.
            "shape-empty" => {
                let meta = [("http.status".to_string(), arg(1).to_string())];
                messaging::set_reply(None, &meta).map_err(|e| Error::Internal(format!("{e:?}")))?;
                return Ok(None);
            }
            // shape-big N: metadata of N bytes; the host caps it.
            "shape-big" => {
                let n: usize = arg(1).parse().unwrap_or(0);
                let meta = [("x-big".to_string(), "b".repeat(n))];
                match messaging::set_reply(None, &meta) {
                    Ok(()) => b"ok".to_vec(),
                    Err(e) => err(e),
                }
            }
            "whoami" => messaging::self_id().into_bytes(),
            "sender?" => msg.sender.clone().into_bytes(),
            "trace?" => msg
                .metadata
                .iter()
                .find(|(k, _)| k == "trace-id")
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
                .into_bytes(),
            "log?" => STATE.with(|st| st.borrow().record.join("\n").into_bytes()),
            _ => msg.payload.clone(),
        };
        Ok(Some(reply))
    }

    fn handle_callback(corr: String, reply: Result<Message, RequestError>) -> Result<(), Error> {
        let chained = STATE.with(|st| st.borrow().chain.is_some());
        if chained {
            let now = services::monotonic_nanos()?;
            let next = STATE.with(|st| {
                let mut st = st.borrow_mut();
                let c = st.chain.as_mut()?;
                let rtt = now.saturating_sub(c.started);
                c.left -= 1;
                let target = (c.left > 0).then(|| c.target.clone());
                if target.is_none() {
                    st.chain = None;
                }
                st.rtts.push(rtt);
                target
            });
            if let Some(t) = next {
                next_request(&t)?;
            }
            return Ok(());
        }
        let what = match reply {
            Ok(m) => {
                let mut line = format!(
                    "ok:{}:{}:{}",
                    m.sender,
                    String::from_utf8_lossy(&m.payload),
                    m.correlation_id.unwrap_or_default()
                );
                // What the replier said with set-reply, when it said anything.
                let meta: Vec<String> = m
                    .metadata
                    .iter()
                    .filter(|(k, _)| k != "trace-id")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                if m.content_type != "application/octet-stream" || !meta.is_empty() {
                    line.push_str(&format!(":{}:{}", m.content_type, meta.join(",")));
                }
                line
            }
            Err(RequestError::Timeout) => "timeout".into(),
            Err(RequestError::Failed(r)) => format!("failed:{r}"),
            Err(RequestError::Stopped(r)) => format!("stopped:{r}"),
        };
        record(format!("cb:{corr}:{what}"));
        Ok(())
    }

    fn health() -> HealthStatus {
        STATE.with(|st| st.borrow().health.unwrap_or(HealthStatus::Healthy))
    }

    fn shutdown() -> Result<(), Error> {
        if let Some(path) = config("shutdown-file")? {
            std::fs::write(&path, messaging::self_id())
                .map_err(|e| Error::Internal(format!("{path}: {e}")))?;
        }
        Ok(())
    }
}

component!(Probe);
