//! Contract compatibility: guests built against earlier released versions of
//! `airssys:component` run unchanged on this host, as instances and as actors:
//! an earlier minor (the frozen 0.2.0 WIT in `examples/components/contract-0-2-0`)
//! and the first release, 0.1.0 (`wit/released/0.1.0`, guest
//! `examples/components/contract-0-1-0`), beside current guests.

mod common;

use std::time::Duration;

use airssys_wasm::storage::{Storage, StorageLimits};
use airssys_wasm::{
    ActorId, ActorSpec, ActorSystem, Capabilities, Error, ExecutionContext, GuestError,
    HealthStatus, Message,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_built_against_0_2_0_runs_on_a_0_2_1_host() {
    let engine = common::engine();
    let path = common::component("contract_0_2_0");
    // It exports the lifecycle at 0.2.0, not at this host's version.
    let info = engine.inspect_file(&path).unwrap();
    assert!(
        info.exports
            .iter()
            .any(|e| e == "airssys:component/lifecycle@0.2.0"),
        "{:?}",
        info.exports
    );
    assert_ne!(
        airssys_wasm::LIFECYCLE_INTERFACE,
        "airssys:component/lifecycle@0.2.0"
    );
    assert!(info.lifecycle, "inspect knows it for a lifecycle component");
    let old = engine.load_file(&path).unwrap();
    assert!(old.is_lifecycle());

    // As an actor: its imports (messaging, storage) link and work.
    let data = tempfile::tempdir().unwrap();
    let storage = Storage::open(data.path(), StorageLimits::default()).unwrap();
    let ctx = ExecutionContext::new("old")
        .with_capabilities(common::open_caps())
        .with_storage(storage);
    let system = ActorSystem::builder()
        .actor(ActorSpec::new(ActorId::new("old").unwrap(), old, ctx))
        .start()
        .await
        .unwrap();
    for n in 1..=2 {
        let reply = system
            .request(
                "old",
                Message::new("host", b"hi".to_vec()),
                Duration::from_secs(5),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(reply).unwrap(),
            format!("old (0.2.0, {n}): hi")
        );
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_built_against_0_1_0_runs_unchanged_as_an_instance() {
    let engine = common::engine();
    let path = common::component("contract_0_1_0");
    let info = engine.inspect_file(&path).unwrap();
    assert!(
        info.exports
            .iter()
            .any(|e| e == "airssys:component/lifecycle@0.1.0"),
        "{:?}",
        info.exports
    );
    assert!(info.lifecycle, "inspect knows it for a lifecycle component");
    let old = engine.load_file(&path).unwrap();
    assert!(old.is_lifecycle());
    assert_eq!(old.contract(), Some("0.1.0"));
    let echo = engine.load_file(common::component("echo")).unwrap();
    assert_eq!(echo.contract(), Some("0.2"));

    let ctx = ExecutionContext::new("old").with_config("name", "first");
    let mut inst = old.instantiate(&ctx).await.unwrap();
    inst.initialize().await.unwrap();
    let reply = inst
        .handle_message(&Message::new("tester", b"hi".to_vec()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        "first (0.1.0, 1, from tester): hi"
    );
    // Its services import (0.1.0's) is the host's, with its checks: the clock
    // answers when granted.
    let now = inst
        .handle_message(&Message::new("tester", b"time".to_vec()))
        .await
        .unwrap()
        .unwrap();
    let now: u64 = String::from_utf8(now).unwrap().parse().unwrap();
    assert!(now > 1_700_000_000_000, "{now}");
    let meta = inst.metadata().await.unwrap();
    assert_eq!(
        (meta.name.as_str(), meta.version.as_str()),
        ("contract-0-1-0", "0.1.0")
    );
    assert_eq!(inst.health().await.unwrap(), HealthStatus::Healthy);
    // Its errors arrive in this contract's type, naming the component.
    match inst
        .handle_message(&Message::new("tester", b"fail".to_vec()))
        .await
    {
        Err(Error::Guest {
            component,
            function,
            error: GuestError::InvalidInput(why),
        }) => {
            assert_eq!((component.as_str(), function), ("old", "handle-message"));
            assert_eq!(why, "told to fail");
        }
        other => panic!("{other:?}"),
    }
    // A trap is a trap, and poisons the instance as for any guest.
    let trap = inst
        .handle_message(&Message::new("tester", b"trap".to_vec()))
        .await
        .unwrap_err();
    assert!(matches!(trap, Error::Trap { .. }), "{trap:?}");
    assert!(trap.to_string().contains("old"), "{trap}");

    // A withheld service is denied in 0.1.0's own error type.
    let mut caps = Capabilities::default();
    caps.services.clocks = false;
    let ctx = ExecutionContext::new("old")
        .with_config("name", "first")
        .with_capabilities(caps);
    let mut inst = old.instantiate(&ctx).await.unwrap();
    inst.initialize().await.unwrap();
    match inst
        .handle_message(&Message::new("tester", b"time".to_vec()))
        .await
    {
        Err(Error::Guest {
            error: GuestError::CapabilityDenied(why),
            ..
        }) => assert!(why.contains("services.now-millis"), "{why}"),
        other => panic!("{other:?}"),
    }
    // And an initialize that fails says so.
    let ctx = ExecutionContext::new("old").with_config("fail-init", "1");
    let mut inst = old.instantiate(&ctx).await.unwrap();
    let err = inst.initialize().await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Guest {
                function: "initialize",
                error: GuestError::Unavailable(_),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_of_0_1_0_0_2_0_and_0_2_1_run_side_by_side_as_actors() {
    let engine = common::engine();
    let data = tempfile::tempdir().unwrap();
    let storage = Storage::open(data.path(), StorageLimits::default()).unwrap();
    let first = engine
        .load_file(common::component("contract_0_1_0"))
        .unwrap();
    let second = engine
        .load_file(common::component("contract_0_2_0"))
        .unwrap();
    let current = engine.load_file(common::component("echo")).unwrap();
    let system = ActorSystem::builder()
        .actor(ActorSpec::new(
            ActorId::new("first").unwrap(),
            first,
            ExecutionContext::new("first").with_config("name", "first"),
        ))
        .actor(ActorSpec::new(
            ActorId::new("second").unwrap(),
            second,
            ExecutionContext::new("second")
                .with_capabilities(common::open_caps())
                .with_storage(storage),
        ))
        .actor(ActorSpec::new(
            ActorId::new("current").unwrap(),
            current,
            ExecutionContext::new("current"),
        ))
        .start()
        .await
        .unwrap();
    let ask = |to: &'static str, body: &'static [u8]| {
        let system = &system;
        async move {
            system
                .request(
                    to,
                    Message::new("host", body.to_vec()),
                    Duration::from_secs(5),
                )
                .await
        }
    };
    for n in 1..=3 {
        let a = ask("first", b"hi").await.unwrap().unwrap();
        assert_eq!(
            String::from_utf8(a).unwrap(),
            format!("first (0.1.0, {n}, from host): hi")
        );
        let b = ask("second", b"hi").await.unwrap().unwrap();
        assert_eq!(
            String::from_utf8(b).unwrap(),
            format!("second (0.2.0, {n}): hi")
        );
        assert_eq!(ask("current", b"hi").await.unwrap().unwrap(), b"hi");
    }
    // The 0.1.0 actor crashes and is restarted by its supervisor like any
    // other: its count starts again, its neighbours are untouched.
    assert!(ask("first", b"trap").await.is_err());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let again = loop {
        match ask("first", b"again").await {
            Ok(Some(r)) => break r,
            _ if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        String::from_utf8(again).unwrap(),
        "first (0.1.0, 1, from host): again"
    );
    let b = ask("second", b"hi").await.unwrap().unwrap();
    assert_eq!(String::from_utf8(b).unwrap(), "second (0.2.0, 4): hi");
    system.shutdown().await;
}
