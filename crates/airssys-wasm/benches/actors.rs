//! Criterion benchmarks of the actor system, each beside its bare-wasmtime floor:
//!
//! - `spawn`: a fresh instance from the `InstancePre` plus `initialize`
//!   (`airssys-wasm` through `Component::instantiate`; `actor-activation` is a
//!   virtual actor activated by its first message, answered, through the whole
//!   system; `bare-wasmtime` the same two calls on wasmtime alone).
//! - `fire-and-forget`: messages per second from one guest actor to another
//!   (`flood sink N` in `actor-probe`, `echo` as the sink), end to end until the
//!   sink has handled them all; `bare-wasmtime` is one instance's
//!   `handle-message` in a loop (the most one actor can take).
//! - `request-response`: one round trip between two guest actors (`chain`:
//!   each request made from the previous reply's `handle-callback`; the guest
//!   also measures p50/p99, printed); `bare-wasmtime` is a `handle-message`
//!   plus a `handle-callback` with no scheduling between them.
//!
//! The 100,000-actor run is `benches/virtual_actors.rs`.
//! Run with `cargo bench -p airssys-wasm --bench actors`.

#[path = "common/bare.rs"]
mod bare;
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use airssys_wasm::security::pattern::NamePatterns;
use airssys_wasm::{
    ActorId, ActorOptions, ActorSpec, ActorSystem, Capabilities, Component, Engine, EngineConfig,
    ExecutionContext, Message,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn open() -> ExecutionContext {
    let mut caps = Capabilities::default();
    caps.send = NamePatterns::new(&["**"]).unwrap();
    ExecutionContext::new("bench").with_capabilities(caps)
}

/// Polls gently (every 200 µs): a tight loop would contend for the very
/// mailbox and counters it measures.
async fn wait_handled(system: &ActorSystem, id: &str, n: u64) {
    while system.status(id).unwrap().handled < n {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Two actors with open grants, large mailboxes and no health polling: a
/// guest that drives (`actor-probe`) and one that answers (`echo`).
async fn pair(driver: (&str, &Component), other: (&str, &Component)) -> ActorSystem {
    let quiet = ActorOptions::default()
        .health(None)
        .mailbox_capacity(1 << 22);
    let spec = |(id, c): (&str, &Component)| {
        ActorSpec::new(ActorId::new(id).unwrap(), c.clone(), open()).with_options(quiet.clone())
    };
    ActorSystem::builder()
        .actor(spec(driver))
        .actor(spec(other))
        .start()
        .await
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let engine = Engine::new(EngineConfig::default().cache_dir(None).pool_instances(2000)).unwrap();
    let echo_path = common::component("echo");
    let echo = engine.load_file(&echo_path).unwrap();
    let probe = engine.load_file(common::component("actor_probe")).unwrap();
    let bare = bare::Bare::new(&echo_path, false);

    // ---- spawn
    let mut group = c.benchmark_group("spawn");
    let ctx = ExecutionContext::new("echo");
    group.bench_function("airssys-wasm", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let mut inst = echo.instantiate(&ctx).await.unwrap();
                    inst.initialize().await.unwrap();
                    total += start.elapsed();
                    drop(black_box(inst));
                }
                total
            })
        })
    });
    group.bench_function("bare-wasmtime", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let (mut store, inst) = bare.instantiate().await;
                    bare::initialize(&mut store, &inst).await;
                    total += start.elapsed();
                    drop(black_box((store, inst)));
                }
                total
            })
        })
    });
    let system = rt
        .block_on(
            ActorSystem::builder()
                .virtual_actors(
                    echo.clone(),
                    ExecutionContext::new("echo"),
                    ActorOptions::default().health(None),
                )
                .max_active(1000)
                .start(),
        )
        .unwrap();
    let mut key = 0u64;
    group.bench_function("actor-activation", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    key += 1;
                    let id = format!("echo/{key}");
                    system
                        .request(&id, Message::new("b", "x"), Duration::from_secs(5))
                        .await
                        .unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    rt.block_on(system.shutdown());

    // ---- fire-and-forget between two guest actors
    const N: u64 = 20_000;
    let mut group = c.benchmark_group("fire-and-forget");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    let system = rt.block_on(pair(("blaster", &probe), ("sink", &echo)));
    group.bench_function("airssys-wasm", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let base = system.status("sink").unwrap().handled;
                    system
                        .send("blaster", Message::new("b", format!("flood sink {N}")))
                        .await
                        .unwrap();
                    wait_handled(&system, "sink", base + N).await;
                }
                start.elapsed()
            })
        })
    });
    let msg = bare::Message {
        sender: "b".into(),
        payload: b"x".to_vec(),
        content_type: "application/octet-stream".into(),
        correlation_id: None,
        metadata: vec![("trace-id".into(), "0123456789abcdef".into())],
        timestamp_ms: 0,
    };
    let (mut store, inst) = rt.block_on(bare.instantiate());
    group.bench_function("bare-wasmtime", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters * N {
                    black_box(bare::call(&mut store, &inst, &msg).await);
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    rt.block_on(system.shutdown());

    // ---- request-response between two guest actors
    let mut group = c.benchmark_group("request-response");
    let system = rt.block_on(pair(("pinger", &probe), ("ponger", &echo)));
    group.bench_function("airssys-wasm", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let base = system.status("pinger").unwrap().handled;
                let start = Instant::now();
                system
                    .send("pinger", Message::new("b", format!("chain ponger {iters}")))
                    .await
                    .unwrap();
                // the chain command itself, then one callback per round trip
                wait_handled(&system, "pinger", base + 1 + iters).await;
                start.elapsed()
            })
        })
    });
    let rtt = rt
        .block_on(system.request("pinger", Message::new("b", "rtt?"), Duration::from_secs(5)))
        .unwrap()
        .unwrap_or_default();
    let rtt = String::from_utf8_lossy(&rtt).into_owned();
    let parts: Vec<&str> = rtt.split(' ').collect();
    if parts.len() == 3 {
        eprintln!(
            "request-response measured by the guest over the last chain of {} round trips: p50 {} ns, p99 {} ns",
            parts[0], parts[1], parts[2]
        );
    }
    let (mut ping_store, ping) = rt.block_on(bare.instantiate());
    let (mut pong_store, pong) = rt.block_on(bare.instantiate());
    group.bench_function("bare-wasmtime", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let reply = bare::call(&mut pong_store, &pong, &msg).await;
                    let mut r = msg.clone();
                    r.payload = reply.unwrap_or_default();
                    bare::callback(&mut ping_store, &ping, &r).await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    rt.block_on(system.shutdown());
}

criterion_group! {
    name = actor_benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(actor_benches);
