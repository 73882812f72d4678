//! Durable actors, beside the same pair non-durable in the same run:
//!
//! - `durable/messages`: messages per second from one guest actor to another
//!   (`flood sink N` in `actor-probe`, `kv-counter` as the sink counting each
//!   one in its storage with `incr`), end to end until the sink has handled
//!   them all. `durable`: both actors durable, so every message is in the
//!   sink's log before it is handled and leaves it in the transaction that
//!   commits its count (group commit: one fsync per group); `in-memory`: the
//!   same pair, not durable (each `incr` its own storage commit).
//! - `durable/request`: one request → reply from the host to the durable
//!   counter and back (log write, handling, commit): p50/p99 printed.
//! - `upgrade/switch`: one actor switched to another version of its
//!   component and back (`ActorSystem::upgrade` to `upgrade-probe` 2.0.0, then
//!   `rollback`), each between two messages: the pause an actor's mailbox
//!   sees (new instance, `initialize`, the version check, the old one's
//!   `shutdown`); p50/p99 printed.
//!
//! Run with `cargo bench -p airssys-wasm --bench durable`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use airssys_wasm::security::pattern::NamePatterns;
use airssys_wasm::storage::{Storage, StorageLimits};
use airssys_wasm::{
    ActorId, ActorOptions, ActorSpec, ActorSystem, Capabilities, Engine, EngineConfig,
    ExecutionContext, Message,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const N: u64 = 2_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn wait_handled(system: &ActorSystem, id: &str, n: u64) {
    while system.status(id).unwrap().handled < n {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// `n` messages from `blaster` to `sink`, until the sink has handled them.
async fn flood(system: &ActorSystem, n: u64) {
    let base = system.status("sink").unwrap().handled;
    system
        .send("blaster", Message::new("b", format!("flood sink {n} incr")))
        .await
        .unwrap();
    wait_handled(system, "sink", base + n).await;
}

/// `blaster` (actor-probe) and `sink` (kv-counter), both durable or neither.
async fn pair(engine: &Engine, storage: &Storage, durable: bool) -> ActorSystem {
    let mut caps = Capabilities::default();
    caps.send = NamePatterns::new(&["**"]).unwrap();
    let options = ActorOptions::default()
        .health(None)
        .mailbox_capacity(1 << 20)
        .durable(durable);
    let probe = engine.load_file(common::component("actor_probe")).unwrap();
    let counter = engine.load_file(common::component("kv_counter")).unwrap();
    ActorSystem::builder()
        .actor(
            ActorSpec::new(
                ActorId::new("blaster").unwrap(),
                probe,
                ExecutionContext::new("blaster")
                    .with_capabilities(caps)
                    .with_storage(storage.clone()),
            )
            .with_options(options.clone()),
        )
        .actor(
            ActorSpec::new(
                ActorId::new("sink").unwrap(),
                counter,
                ExecutionContext::new("sink").with_storage(storage.clone()),
            )
            .with_options(options),
        )
        .start()
        .await
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let engine = Engine::new(EngineConfig::default().cache_dir(None).pool_instances(64)).unwrap();
    let real = std::env::args().any(|a| a == "--bench");
    let n = if real { N } else { 20 };

    let mut group = c.benchmark_group("durable/messages");
    group.throughput(Throughput::Elements(n));
    for (name, durable) in [("durable", true), ("in-memory", false)] {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageLimits::default()).unwrap();
        let system = rt.block_on(pair(&engine, &storage, durable));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        flood(&system, n).await;
                    }
                    start.elapsed()
                })
            })
        });
        // One longer run, printed: messages/s and the commits they took.
        let before = storage.commit_stats();
        let t = Instant::now();
        rt.block_on(flood(&system, n));
        let took = t.elapsed();
        let after = storage.commit_stats();
        println!(
            "durable/messages/{name}: {:.0} msg/s ({n} messages, {} commits)",
            n as f64 / took.as_secs_f64(),
            after.commits - before.commits,
        );
        rt.block_on(system.shutdown());
    }
    group.finish();

    // Request → reply to the durable counter: latency of one message through
    // the log, the call and the commit.
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageLimits::default()).unwrap();
    let system = rt.block_on(pair(&engine, &storage, true));
    let ask = || async {
        system
            .request(
                "sink",
                Message::new("b", b"incr".to_vec()),
                Duration::from_secs(10),
            )
            .await
            .unwrap()
    };
    c.bench_function("durable/request", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    ask().await;
                }
                start.elapsed()
            })
        })
    });
    let mut lat: Vec<Duration> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..(if real { 2000 } else { 10 }) {
            let t = Instant::now();
            ask().await;
            v.push(t.elapsed());
        }
        v
    });
    lat.sort();
    println!(
        "durable/request: p50 {:?}, p99 {:?} over {} requests",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
        lat.len()
    );
    rt.block_on(system.shutdown());

    // Upgrade and rollback of one actor: each call's time is its pause.
    let v1 = engine
        .load_file(common::component("upgrade_probe_v1"))
        .unwrap();
    let v2 = engine
        .load_file(common::component("upgrade_probe_v2"))
        .unwrap();
    let system = rt.block_on(async {
        ActorSystem::builder()
            .actor(
                ActorSpec::new(ActorId::new("u").unwrap(), v1, ExecutionContext::new("u"))
                    .with_options(ActorOptions::default().health(None)),
            )
            .start()
            .await
            .unwrap()
    });
    let switch = || async {
        let t = Instant::now();
        let r = system
            .upgrade("upgrade_probe_v1", v2.clone(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(r[0].1, Ok(2), "{r:?}");
        let up = t.elapsed();
        let t = Instant::now();
        assert_eq!(system.rollback("u").await.unwrap(), 1);
        (up, t.elapsed())
    };
    c.bench_function("upgrade/switch", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (a, b) = switch().await;
                    total += a + b;
                }
                // Two switches per iteration.
                total / 2
            })
        })
    });
    let mut pauses: Vec<Duration> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..(if real { 200 } else { 3 }) {
            let (a, b) = switch().await;
            v.push(a);
            v.push(b);
        }
        v
    });
    pauses.sort();
    println!(
        "upgrade/switch: p50 {:?}, p99 {:?} over {} switches",
        pauses[pauses.len() / 2],
        pauses[pauses.len() * 99 / 100],
        pauses.len()
    );
    rt.block_on(system.shutdown());
}

criterion_group! {
    name = durable;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(durable);
