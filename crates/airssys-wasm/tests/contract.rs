//! Contract compatibility: a guest built against an earlier minor version of
//! `airssys:component` (the frozen 0.2.0 WIT in `examples/components/contract-0-2-0`)
//! runs unchanged on this host, as an instance and as an actor.

mod common;

use std::time::Duration;

use airssys_wasm::storage::{Storage, StorageLimits};
use airssys_wasm::{ActorId, ActorSpec, ActorSystem, ExecutionContext, Message};

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
    assert_ne!(airssys_wasm::LIFECYCLE_INTERFACE, "airssys:component/lifecycle@0.2.0");
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
            .request("old", Message::new("host", b"hi".to_vec()), Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(String::from_utf8(reply).unwrap(), format!("old (0.2.0, {n}): hi"));
    }
    system.shutdown().await;
}
