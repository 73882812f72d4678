//! Every limit and every failure path, through real hostile components. The host
//! never panics, names the component and the limit, and stays usable.

mod common;

use std::time::{Duration, Instant};

use airssys_wasm::{
    Engine, EngineConfig, Error, ExecutionContext, ExecutionState, Message, ResourceLimits,
};

use common::engine;

fn msg(p: &str) -> Message {
    Message::new("test", p.as_bytes().to_vec())
}

async fn instance(engine: &Engine, name: &str, limits: ResourceLimits) -> airssys_wasm::Instance {
    let c = engine.load_file(common::component(name)).unwrap();
    let mut inst = c
        .instantiate(&ExecutionContext::new(name).with_limits(limits))
        .await
        .unwrap();
    inst.initialize().await.unwrap();
    inst
}

#[tokio::test]
async fn fuel_is_exhausted_refilled_per_call_and_named() {
    let engine = engine();
    let limits = ResourceLimits::default().with_fuel(50_000_000);
    let mut looper = instance(&engine, "looper", limits).await;
    let err = looper.handle_message(&msg("x")).await.unwrap_err();
    assert!(
        matches!(err, Error::FuelExhausted { ref component, limit: 50_000_000 } if component == "looper"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "looper: fuel exhausted (limit 50000000)");
    assert_eq!(looper.state(), ExecutionState::Failed);
    assert_eq!(looper.last_usage().unwrap().fuel_consumed, 50_000_000);
    // The instance is unusable now, and says so.
    let again = looper.handle_message(&msg("x")).await.unwrap_err();
    assert!(matches!(again, Error::Poisoned { .. }), "{again:?}");

    // Fuel is refilled for each call: many cheap calls each well under the limit.
    let mut echo = instance(&engine, "echo", ResourceLimits::default().with_fuel(20_000)).await;
    for _ in 0..50 {
        echo.handle_message(&msg("hello")).await.unwrap();
        assert!(echo.last_usage().unwrap().fuel_consumed < 20_000);
    }
}

#[tokio::test]
async fn a_timeout_stops_an_infinite_loop() {
    let engine = engine();
    let limits = ResourceLimits::unlimited().with_timeout(Duration::from_millis(200));
    let mut looper = instance(&engine, "looper", limits).await;
    let started = Instant::now();
    let err = looper.handle_message(&msg("x")).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, Error::Timeout { limit, .. } if limit == Duration::from_millis(200)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "looper: timed out after 200ms");
    assert_eq!(looper.state(), ExecutionState::Timeout);
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(looper.last_usage().unwrap().wall_time >= Duration::from_millis(200));
}

#[tokio::test(flavor = "current_thread")]
async fn a_looping_guest_does_not_starve_other_tasks() {
    // The epoch callback yields to the executor every tick, so a looping guest on
    // a single-threaded runtime lets other instances run.
    let engine = engine();
    let looper = engine.load_file(common::component("looper")).unwrap();
    let echo = engine.load_file(common::component("echo")).unwrap();
    let started = Instant::now();
    let slow = tokio::spawn(async move {
        let ctx = ExecutionContext::new("looper")
            .with_limits(ResourceLimits::unlimited().with_timeout(Duration::from_secs(1)));
        let mut inst = looper.instantiate(&ctx).await.unwrap();
        inst.handle_message(&msg("x")).await.unwrap_err()
    });
    let fast = tokio::spawn(async move {
        let mut inst = echo
            .instantiate(&ExecutionContext::new("echo"))
            .await
            .unwrap();
        for _ in 0..20 {
            inst.handle_message(&msg("ping")).await.unwrap();
        }
        started.elapsed()
    });
    let fast_took = fast.await.unwrap();
    assert!(
        fast_took < Duration::from_millis(500),
        "echo was starved: {fast_took:?}"
    );
    assert!(matches!(slow.await.unwrap(), Error::Timeout { .. }));
}

#[tokio::test]
async fn memory_growth_past_the_limit_is_reported_as_the_memory_limit() {
    let engine = engine();
    let limits = ResourceLimits::unlimited().with_memory_bytes(32 << 20);
    let mut hog = instance(&engine, "memhog", limits).await;
    let err = hog.handle_message(&msg("")).await.unwrap_err();
    match &err {
        Error::MemoryLimit {
            component,
            limit,
            detail,
        } => {
            assert_eq!(component, "memhog");
            assert_eq!(*limit, 32 << 20);
            assert!(
                detail
                    .as_deref()
                    .unwrap_or("")
                    .contains("memory allocation"),
                "{detail:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("memhog: memory limit of 32 MiB reached"),
        "{err}"
    );
    let peak = hog.last_usage().unwrap().peak_memory_bytes;
    assert!(peak <= 32 << 20 && peak > 16 << 20, "peak {peak}");
}

#[tokio::test]
async fn memory_under_the_limit_is_measured() {
    let engine = engine();
    let mut hog = instance(
        &engine,
        "memhog",
        ResourceLimits::unlimited().with_memory_bytes(64 << 20),
    )
    .await;
    let reply = hog.handle_message(&msg("8")).await.unwrap();
    assert_eq!(reply, Some(b"allocated 8 MiB".to_vec()));
    let peak = hog.last_usage().unwrap().peak_memory_bytes;
    assert!(peak >= 8 << 20, "peak {peak}");
}

#[tokio::test]
async fn an_initial_memory_over_the_limit_fails_at_instantiation() {
    let engine = engine();
    let echo = engine.load_file(common::component("echo")).unwrap();
    let ctx = ExecutionContext::new("echo")
        .with_limits(ResourceLimits::default().with_memory_bytes(64 << 10));
    let err = echo.instantiate(&ctx).await.unwrap_err();
    assert!(
        matches!(err, Error::MemoryLimit { limit, .. } if limit == 64 << 10),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("echo: memory limit of 64 KiB reached"),
        "{err}"
    );
}

#[tokio::test]
async fn stack_overflow_and_panics_are_errors_with_the_guest_message() {
    let engine = engine();
    let mut c = instance(&engine, "crasher", ResourceLimits::default()).await;
    let err = c.handle_message(&msg("overflow")).await.unwrap_err();
    assert!(
        matches!(err, Error::StackOverflow { ref component, .. } if component == "crasher"),
        "{err:?}"
    );
    assert_eq!(c.state(), ExecutionState::Failed);

    let mut c = instance(&engine, "crasher", ResourceLimits::default()).await;
    let err = c.handle_message(&msg("panic")).await.unwrap_err();
    match &err {
        Error::Trap {
            component,
            message,
            backtrace,
        } => {
            assert_eq!(component, "crasher");
            assert!(message.contains("unreachable"), "{message}");
            assert!(message.contains("crasher was asked to panic"), "{message}");
            assert!(
                backtrace.as_deref().unwrap_or("").contains("crasher"),
                "{backtrace:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.to_string().contains('\n'), "one line: {err}");
}

#[tokio::test]
async fn the_host_survives_repeated_hostile_guests() {
    let engine = engine();
    for _ in 0..5 {
        let mut l = instance(
            &engine,
            "looper",
            ResourceLimits::default().with_fuel(1_000_000),
        )
        .await;
        assert!(l.handle_message(&msg("x")).await.unwrap_err().is_fatal());
        let mut c = instance(&engine, "crasher", ResourceLimits::default()).await;
        assert!(c
            .handle_message(&msg("panic"))
            .await
            .unwrap_err()
            .is_fatal());
        let mut h = instance(
            &engine,
            "memhog",
            ResourceLimits::default().with_memory_bytes(8 << 20),
        )
        .await;
        assert!(h.handle_message(&msg("")).await.unwrap_err().is_fatal());
    }
    let mut echo = instance(&engine, "echo", ResourceLimits::default()).await;
    assert_eq!(
        echo.handle_message(&msg("still here")).await.unwrap(),
        Some(b"still here".to_vec())
    );
}

#[tokio::test]
async fn a_fuel_limit_on_an_unmetered_engine_is_a_configuration_error() {
    let engine = Engine::new(
        EngineConfig::default()
            .cache_dir(None)
            .pooling(false)
            .consume_fuel(false),
    )
    .unwrap();
    let echo = engine.load_file(common::component("echo")).unwrap();
    let ctx = ExecutionContext::new("echo").with_limits(ResourceLimits::default().with_fuel(100));
    let err = echo.instantiate(&ctx).await.unwrap_err();
    assert!(
        matches!(err, Error::Config(ref m) if m.contains("consume_fuel")),
        "{err:?}"
    );
    // Without a fuel limit it runs, and reports no fuel.
    let mut inst = echo
        .instantiate(&ExecutionContext::new("echo"))
        .await
        .unwrap();
    inst.handle_message(&msg("x")).await.unwrap();
    assert_eq!(inst.last_usage().unwrap().fuel_consumed, 0);
}
