//! A guest written in Python (componentize-py 0.25.1, `examples/python`),
//! through the library: the lifecycle, durable storage, and the limits.

mod common;

use std::time::Duration;

use airssys_wasm::storage::{Storage, StorageLimits};
use airssys_wasm::{Engine, EngineConfig, Error, ExecutionContext, Message, ResourceLimits};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_guest_runs_keeps_state_and_is_stopped_by_its_limits() {
    // The configuration the CLI uses, so both share one compile.
    let engine = Engine::new(
        EngineConfig::default()
            .pooling(false)
            .cache_dir(Some(common::python_cache())),
    )
    .unwrap();
    let py = engine.load_file(common::python_guest()).unwrap();
    assert!(py.is_lifecycle());
    let data = tempfile::tempdir().unwrap();
    let storage = Storage::open(data.path(), StorageLimits::default()).unwrap();
    let ctx = ExecutionContext::new("py-echo")
        .with_limits(
            ResourceLimits::default()
                .with_memory_bytes(128 << 20)
                .with_timeout(Duration::from_secs(2)),
        )
        .with_storage(storage);
    let mut i = py.instantiate(&ctx).await.unwrap();
    i.initialize().await.unwrap();
    let ask = |t: &str| Message::new("host", t.as_bytes().to_vec());
    let r = i.handle_message(&ask("upper hello")).await.unwrap();
    assert_eq!(r.as_deref(), Some(&b"HELLO"[..]));
    for n in 1..=2 {
        let r = i.handle_message(&ask("count")).await.unwrap();
        assert_eq!(r, Some(n.to_string().into_bytes()));
    }
    assert_eq!(i.metadata().await.unwrap().name, "py-echo");
    // A loop is stopped by the call's timeout, with the limit named.
    let e = i.handle_message(&ask("spin")).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert_eq!(e.to_string(), "py-echo: timed out after 2s");
    // Unbounded allocation is stopped by the memory limit.
    let mut i = py.instantiate(&ctx).await.unwrap();
    i.initialize().await.unwrap();
    let e = i.handle_message(&ask("hog")).await.unwrap_err();
    assert!(matches!(e, Error::MemoryLimit { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("py-echo: memory limit of 128 MiB reached"),
        "{e}"
    );
}
