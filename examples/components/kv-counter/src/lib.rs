//! A durable counter: its count lives in the actor's storage namespace, so it
//! survives a crash, a restart, a passivation and a new process.
//!
//! - `incr` (or `incr N`) adds 1 (or N) atomically and replies the new value;
//! - `get` replies the value (0 when never set);
//! - `crash` traps; `incr-then-crash` adds 1, then traps; `incr-twice` adds 1
//!   twice in one call and replies what it read between and the new value;
//! - `usage` replies `BYTES KEYS`;
//! - `set KEY VALUE` / `read KEY` / `fill N SIZE` / `fill-batch N SIZE` / `list PREFIX` / `delete KEY` /
//!   `swap KEY OLD NEW` / `batch K1=V1 K2=V2 -K3` exercise the rest of the
//!   interface (replies are text; errors come back as the guest error);
//! - `get-loop N KEY` gets one key N times in one call (for benchmarks);
//! - `wasi-incr KEY` / `wasi-get NS KEY` / `wasi-set NS KEY VALUE` go through
//!   `wasi:keyvalue` (`NS` is `-` for the own namespace or a shared name).
use airssys_wasm_sdk::keyvalue::{atomics, store};
use airssys_wasm_sdk::{
    component, storage, BatchOp, Component, Error, HealthStatus, Message, StorageError,
};

struct KvCounter;

const KEY: &str = "count";

fn text(s: impl ToString) -> Result<Option<Vec<u8>>, Error> {
    Ok(Some(s.to_string().into_bytes()))
}

fn kv_err(e: store::Error) -> Error {
    Error::Internal(match e {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(m) => m,
    })
}

fn bucket(ns: &str) -> Result<store::Bucket, Error> {
    store::open(if ns == "-" { "" } else { ns }).map_err(kv_err)
}

fn describe(e: StorageError) -> Error {
    // Keep the variant's name visible to tests and operators.
    Error::InvalidInput(format!("{e:?}"))
}

impl Component for KvCounter {
    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        let input = String::from_utf8_lossy(&msg.payload).into_owned();
        let mut words = input.split_whitespace();
        match words.next().unwrap_or("") {
            "incr" => {
                let by = match words.next() {
                    Some(n) => n
                        .parse()
                        .map_err(|_| Error::InvalidInput(format!("not a number: {n}")))?,
                    None => 1,
                };
                text(storage::increment(KEY, by)?)
            }
            "get" => {
                let v = storage::get(KEY)?.unwrap_or_else(|| b"0".to_vec());
                Ok(Some(v))
            }
            "crash" => panic!("asked to crash"),
            // Durable actors: a write, then a trap (the write must not stay),
            // and two increments in one call (the second sees the first).
            "incr-then-crash" => {
                storage::increment(KEY, 1)?;
                panic!("asked to crash after a write")
            }
            "incr-twice" => {
                storage::increment(KEY, 1)?;
                let seen = storage::get(KEY)?.unwrap_or_default();
                let n = storage::increment(KEY, 1)?;
                text(format!("{} {n}", String::from_utf8_lossy(&seen)))
            }
            "usage" => {
                let u = storage::usage()?;
                text(format!(
                    "{} {} {} {}",
                    u.bytes, u.keys, u.quota_bytes, u.quota_keys
                ))
            }
            "set" => {
                let (k, v) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                storage::set(k, v.as_bytes()).map_err(describe)?;
                text("ok")
            }
            "set-raw" => {
                // The key is the rest of the payload verbatim (NUL bytes, spaces, …).
                let key = input.strip_prefix("set-raw ").unwrap_or("");
                storage::set(key, b"raw").map_err(describe)?;
                text("ok")
            }
            "read" => Ok(Some(
                storage::get(words.next().unwrap_or(""))
                    .map_err(describe)?
                    .unwrap_or_else(|| b"<none>".to_vec()),
            )),
            "read-raw" => {
                let key = input.strip_prefix("read-raw ").unwrap_or("");
                Ok(Some(
                    storage::get(key)
                        .map_err(describe)?
                        .unwrap_or_else(|| b"<none>".to_vec()),
                ))
            }
            "fill" => {
                let n: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(1);
                let size: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(1);
                let value = vec![b'x'; size];
                for i in 0..n {
                    storage::set(&format!("fill/{i:06}"), &value).map_err(describe)?;
                }
                text(n)
            }
            // Bulk setup: the same keys as `fill`, written 1,000 to a batch
            // (one commit each), so setting up 10,000 keys costs 10 fsyncs.
            "fill-batch" => {
                let n: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(1);
                let size: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(1);
                let value = vec![b'x'; size];
                let keys: Vec<usize> = (0..n).collect();
                for chunk in keys.chunks(1000) {
                    let ops: Vec<BatchOp> = chunk
                        .iter()
                        .map(|i| BatchOp::Set((format!("fill/{i:06}"), value.clone())))
                        .collect();
                    storage::batch(&ops).map_err(describe)?;
                }
                text(n)
            }
            "list" => {
                let prefix = words.next().unwrap_or("");
                let mut all = Vec::new();
                let mut cursor = None;
                loop {
                    let page =
                        storage::list_keys(prefix, cursor.as_deref(), 100).map_err(describe)?;
                    all.extend(page.keys);
                    match page.cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                text(all.join(","))
            }
            "delete" => text(storage::delete(words.next().unwrap_or("")).map_err(describe)?),
            "swap" => {
                let k = words.next().unwrap_or("");
                let opt = |s: Option<&str>| match s {
                    None | Some("-") => None,
                    Some(v) => Some(v.as_bytes().to_vec()),
                };
                let (old, new) = (opt(words.next()), opt(words.next()));
                text(
                    storage::compare_and_swap(k, old.as_deref(), new.as_deref())
                        .map_err(describe)?,
                )
            }
            "batch" => {
                let ops: Vec<BatchOp> = words
                    .map(|w| match w.strip_prefix('-') {
                        Some(k) => BatchOp::Delete(k.to_string()),
                        None => {
                            let (k, v) = w.split_once('=').unwrap_or((w, ""));
                            BatchOp::Set((k.to_string(), v.as_bytes().to_vec()))
                        }
                    })
                    .collect();
                storage::batch(&ops).map_err(describe)?;
                text("ok")
            }
            "wasi-incr" => {
                let b = bucket("-")?;
                text(atomics::increment(&b, words.next().unwrap_or(KEY), 1).map_err(kv_err)?)
            }
            "wasi-get" => {
                let b = bucket(words.next().unwrap_or("-"))?;
                let v = b.get(words.next().unwrap_or(KEY)).map_err(kv_err)?;
                Ok(Some(v.unwrap_or_else(|| b"<none>".to_vec())))
            }
            "wasi-set" => {
                let b = bucket(words.next().unwrap_or("-"))?;
                let (k, v) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                b.set(k, v.as_bytes()).map_err(kv_err)?;
                text("ok")
            }
            "get-loop" => {
                // `get-loop N KEY`: N gets of one key in one call (for benchmarks).
                let n: u32 = words.next().and_then(|n| n.parse().ok()).unwrap_or(1);
                let key = words.next().unwrap_or(KEY);
                let mut found = 0u32;
                for _ in 0..n {
                    found += storage::get(key).map_err(describe)?.is_some() as u32;
                }
                text(found)
            }
            other => Err(Error::InvalidInput(format!("unknown command {other:?}"))),
        }
    }

    fn health() -> HealthStatus {
        HealthStatus::Healthy
    }
}

component!(KvCounter);
