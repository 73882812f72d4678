//! Criterion benchmarks of the foundation, each beside bare wasmtime in the same
//! group so the ratio is visible:
//!
//! - `instantiate`: a fresh instance of `echo` from its `InstancePre` (store,
//!   deny-all WASI context, limits); `instantiate+drop` also times the drop.
//! - `handle-message-64B`: one `handle-message` call with a 64-byte payload on a
//!   warm instance.
//!
//! `airssys-wasm` is the default engine (epochs, no fuel metering);
//! `airssys-wasm-fuel` meters fuel with a limit refilled per call.
//! `bare-wasmtime` uses wasmtime 48 directly with the settings a careful embedder
//! picks (pooling allocator, `concurrency_support(false)`, no fuel, no epochs);
//! `bare-wasmtime-metered` adds fuel and epoch interruption, as airssys-wasm
//! enables them, to separate the cost of metering from the cost of this crate.
//!
//! Run with `cargo bench -p airssys-wasm --bench runtime`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use airssys_wasm::{Engine, EngineConfig, ExecutionContext, Message, ResourceLimits};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

#[path = "common/bare.rs"]
mod bare;

/// Times `iters` instances made by `$make` on `$rt`; the drop is timed too
/// when `$with_drop`, otherwise it happens outside the timer.
macro_rules! time_instances {
    ($rt:expr, $iters:expr, $with_drop:expr, $make:expr) => {
        $rt.block_on(async {
            let mut total = Duration::ZERO;
            for _ in 0..$iters {
                let start = Instant::now();
                let inst = black_box($make);
                if $with_drop {
                    drop(inst);
                    total += start.elapsed();
                } else {
                    total += start.elapsed();
                    drop(inst);
                }
            }
            total
        })
    };
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn payload() -> Vec<u8> {
    (0..64u8).collect()
}

fn benches(c: &mut Criterion) {
    let path = common::component("echo");
    let rt = runtime();
    let engine = Engine::new(EngineConfig::default().cache_dir(None)).unwrap();
    assert!(engine.is_pooling());
    let echo = engine.load_file(&path).unwrap();
    let fuel_engine =
        Engine::new(EngineConfig::default().cache_dir(None).consume_fuel(true)).unwrap();
    let echo_fuel = fuel_engine.load_file(&path).unwrap();
    let ctx = ExecutionContext::new("echo");
    let bare = bare::Bare::new(&path, false);
    let metered = bare::Bare::new(&path, true);

    // Instantiation alone (the instance is dropped outside the timer), then the
    // whole cycle including the drop, which returns the pool slot (madvise).
    for (group_name, with_drop) in [("instantiate", false), ("instantiate+drop", true)] {
        let mut group = c.benchmark_group(group_name);
        group.bench_function("airssys-wasm", |b| {
            b.iter_custom(|iters| {
                time_instances!(rt, iters, with_drop, echo.instantiate(&ctx).await.unwrap())
            })
        });
        for (name, bare) in [
            ("bare-wasmtime", &bare),
            ("bare-wasmtime-metered", &metered),
        ] {
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    time_instances!(rt, iters, with_drop, bare.instantiate().await)
                })
            });
        }
        group.finish();
    }

    let mut group = c.benchmark_group("handle-message-64B");
    let msg = Message::new("bench", payload());
    let fuel_ctx =
        ExecutionContext::new("echo").with_limits(ResourceLimits::default().with_fuel(1_000_000));
    for (name, component, ctx) in [
        ("airssys-wasm", &echo, &ctx),
        ("airssys-wasm-fuel", &echo_fuel, &fuel_ctx),
    ] {
        let mut inst = rt.block_on(component.instantiate(ctx)).unwrap();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(inst.handle_message(&msg).await.unwrap());
                    }
                    start.elapsed()
                })
            })
        });
    }
    let bare_msg = bare::Message {
        sender: "bench".into(),
        payload: payload(),
        content_type: "application/octet-stream".into(),
        correlation_id: None,
        metadata: Vec::new(),
        timestamp_ms: 0,
    };
    for (name, bare) in [
        ("bare-wasmtime", &bare),
        ("bare-wasmtime-metered", &metered),
    ] {
        let (mut store, instance) = rt.block_on(bare.instantiate());
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(bare::call(&mut store, &instance, &bare_msg).await);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = runtime_benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(runtime_benches);
