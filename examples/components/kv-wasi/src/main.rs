//! A guest written against the standard `wasi:keyvalue@0.2.0-draft` only, as
//! one would for wasmtime's `wasi-keyvalue`, Spin or wasmCloud: no airssys SDK,
//! no airssys WIT. A WASI command:
//!
//! - `kv-wasi incr KEY` — atomic increment, prints the new value;
//! - `kv-wasi get KEY` / `kv-wasi set KEY VALUE` / `kv-wasi delete KEY`;
//! - `kv-wasi list` — every key, through the paged cursor;
//! - `kv-wasi list-from CURSOR` — one page from a cursor of the guest's choosing;
//! - `kv-wasi list-count N` — pages through every key; exits 0 iff there are N;
//! - `kv-wasi set-many K=V ...` / `kv-wasi get-many K ...`;
//! - `kv-wasi open NAME get KEY` — the same in another bucket.
wit_bindgen::generate!({
    path: "../../../wit/deps/keyvalue",
    world: "wasi:keyvalue/imports@0.2.0-draft",
    generate_all,
});

use wasi::keyvalue::{atomics, batch, store};

fn fail(what: &str, e: store::Error) -> ! {
    let e = match e {
        store::Error::NoSuchStore => "no such store".to_string(),
        store::Error::AccessDenied => "access denied".to_string(),
        store::Error::Other(m) => m,
    };
    eprintln!("{what}: {e}");
    std::process::exit(2)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut name = String::new();
    if args.first().map(String::as_str) == Some("open") && args.len() > 1 {
        name = args[1].clone();
        args.drain(..2);
    }
    let bucket = store::open(&name).unwrap_or_else(|e| fail("open", e));
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        "incr" => {
            let v =
                atomics::increment(&bucket, &arg(1), 1).unwrap_or_else(|e| fail("increment", e));
            println!("{v}");
        }
        "get" => match bucket.get(&arg(1)).unwrap_or_else(|e| fail("get", e)) {
            Some(v) => println!("{}", String::from_utf8_lossy(&v)),
            None => println!("<none>"),
        },
        "set" => {
            bucket
                .set(&arg(1), arg(2).as_bytes())
                .unwrap_or_else(|e| fail("set", e));
            println!("ok");
        }
        "delete" => {
            bucket.delete(&arg(1)).unwrap_or_else(|e| fail("delete", e));
            println!("ok");
        }
        "list" => {
            let mut keys = Vec::new();
            let mut cursor = None;
            loop {
                let r = bucket
                    .list_keys(cursor)
                    .unwrap_or_else(|e| fail("list-keys", e));
                keys.extend(r.keys);
                match r.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            println!("{}", keys.join(","));
        }
        "list-count" => {
            let (mut n, mut cursor) = (0u64, None);
            loop {
                let r = bucket
                    .list_keys(cursor)
                    .unwrap_or_else(|e| fail("list-keys", e));
                n += r.keys.len() as u64;
                match r.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            println!("{n}");
            if arg(1).parse::<u64>().ok() != Some(n) {
                std::process::exit(1)
            }
        }
        "list-from" => {
            let cursor = arg(1).parse::<u64>().unwrap_or(u64::MAX);
            let r = bucket
                .list_keys(Some(cursor))
                .unwrap_or_else(|e| fail("list-keys", e));
            println!("{}", r.keys.len());
        }
        "set-many" => {
            let kvs: Vec<(String, Vec<u8>)> = args[1..]
                .iter()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k.to_string(), v.as_bytes().to_vec())
                })
                .collect();
            batch::set_many(&bucket, &kvs).unwrap_or_else(|e| fail("set-many", e));
            println!("ok");
        }
        "get-many" => {
            let got = batch::get_many(&bucket, &args[1..]).unwrap_or_else(|e| fail("get-many", e));
            let shown: Vec<String> = got
                .into_iter()
                .map(|e| match e {
                    Some((k, v)) => format!("{k}={}", String::from_utf8_lossy(&v)),
                    None => "<none>".into(),
                })
                .collect();
            println!("{}", shown.join(","));
        }
        other => {
            eprintln!("unknown command {other:?}");
            std::process::exit(1)
        }
    }
}
