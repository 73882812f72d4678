//! Lifecycle components driven through the library: messages, state, config,
//! services, usage reporting and execution states.

mod common;

use airssys_wasm::{
    Error, ExecutionContext, ExecutionState, GuestError, HealthStatus, Message, ResourceLimits,
};

use common::engine;

#[tokio::test]
async fn echo_replies_with_the_payload_and_reports_usage() {
    let engine = engine();
    let echo = engine.load_file(common::component("echo")).unwrap();
    assert!(echo.is_lifecycle());
    let ctx =
        ExecutionContext::new("echo").with_limits(ResourceLimits::default().with_fuel(10_000_000));
    let mut inst = echo.instantiate(&ctx).await.unwrap();
    assert_eq!(inst.state(), ExecutionState::Pending);
    assert!(inst.last_usage().is_none());
    inst.initialize().await.unwrap();
    let payload = vec![7u8; 64];
    let reply = inst
        .handle_message(&Message::new("test", payload.clone()))
        .await
        .unwrap();
    assert_eq!(reply, Some(payload));
    assert_eq!(inst.state(), ExecutionState::Completed);
    let usage = inst.last_usage().unwrap();
    assert!(
        usage.fuel_consumed > 0 && usage.fuel_consumed < 10_000_000,
        "{usage:?}"
    );
    assert!(usage.peak_memory_bytes >= 64 * 1024, "{usage:?}");
    assert!(usage.wall_time.as_nanos() > 0);

    let meta = inst.metadata().await.unwrap();
    assert_eq!(meta.name, "echo");
    assert_eq!(meta.version, "0.1.0");
    assert_eq!(inst.health().await.unwrap(), HealthStatus::Healthy);
    inst.shutdown().await.unwrap();
}

#[tokio::test]
async fn counter_keeps_state_per_instance_and_reads_config() {
    let engine = engine();
    let counter = engine.load_file(common::component("counter")).unwrap();
    let ctx = ExecutionContext::new("counter")
        .with_config("start", "10")
        .with_config("step", "5");
    let mut a = counter.instantiate(&ctx).await.unwrap();
    a.initialize().await.unwrap();
    // Empty payload: the step comes from services.get-config("step").
    assert_eq!(
        a.handle_message(&Message::new("t", b"".to_vec()))
            .await
            .unwrap(),
        Some(b"15".to_vec())
    );
    assert_eq!(
        a.handle_message(&Message::new("t", b"2".to_vec()))
            .await
            .unwrap(),
        Some(b"17".to_vec())
    );

    // A second instance has its own state.
    let mut b = counter
        .instantiate(&ExecutionContext::new("counter"))
        .await
        .unwrap();
    b.initialize().await.unwrap();
    assert_eq!(
        b.handle_message(&Message::new("t", b"".to_vec()))
            .await
            .unwrap(),
        Some(b"1".to_vec())
    );
    assert_ne!(a.handle(), b.handle());
    assert_eq!(
        a.handle_message(&Message::new("t", b"0".to_vec()))
            .await
            .unwrap(),
        Some(b"17".to_vec())
    );
}

#[tokio::test]
async fn a_guest_error_is_reported_and_the_instance_stays_usable() {
    let engine = engine();
    let counter = engine.load_file(common::component("counter")).unwrap();
    let mut inst = counter
        .instantiate(&ExecutionContext::new("counter"))
        .await
        .unwrap();
    inst.initialize().await.unwrap();
    let err = inst
        .handle_message(&Message::new("t", b"seven".to_vec()))
        .await
        .unwrap_err();
    match &err {
        Error::Guest {
            component,
            function,
            error: GuestError::InvalidInput(m),
        } => {
            assert_eq!(component, "counter");
            assert_eq!(*function, "handle-message");
            assert!(m.contains("seven"), "{m}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "counter: handle-message failed: invalid input: payload must be an integer, got \"seven\""
    );
    assert!(!err.is_fatal());
    assert_eq!(inst.state(), ExecutionState::Failed);
    assert_eq!(
        inst.handle_message(&Message::new("t", b"3".to_vec()))
            .await
            .unwrap(),
        Some(b"3".to_vec())
    );
    assert_eq!(inst.state(), ExecutionState::Completed);
}

#[tokio::test]
async fn initialize_rejects_bad_config() {
    let engine = engine();
    let counter = engine.load_file(common::component("counter")).unwrap();
    let ctx = ExecutionContext::new("counter").with_config("start", "ten");
    let mut inst = counter.instantiate(&ctx).await.unwrap();
    let err = inst.initialize().await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Guest {
                function: "initialize",
                error: GuestError::InvalidInput(_),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn many_instances_run_concurrently_on_one_engine() {
    let engine = engine();
    let echo = engine.load_file(common::component("echo")).unwrap();
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let echo = echo.clone();
        tasks.push(tokio::spawn(async move {
            let mut inst = echo
                .instantiate(&ExecutionContext::new(format!("echo-{i}")))
                .await
                .unwrap();
            inst.initialize().await.unwrap();
            for j in 0..10u8 {
                let reply = inst
                    .handle_message(&Message::new("t", vec![i, j]))
                    .await
                    .unwrap();
                assert_eq!(reply, Some(vec![i, j]));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
