//! Loading: bad input, missing imports, kinds, the compile cache, precompiled
//! code, and the pooling allocator with its fallback.

mod common;

use airssys_wasm::{ComponentKind, Engine, EngineConfig, Error, ExecutionContext, Message};

use common::engine;

#[test]
fn garbage_is_rejected_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.wasm");
    std::fs::write(&path, b"this is not wasm at all").unwrap();
    let err = engine().load_file(&path).unwrap_err();
    assert!(matches!(err, Error::InvalidWasm { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("garbage.wasm") && text.contains("not a WebAssembly file"),
        "{text}"
    );
}

#[test]
fn a_truncated_component_is_rejected_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(common::component("echo")).unwrap();
    let path = dir.path().join("truncated.wasm");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = engine().load_file(&path).unwrap_err();
    match &err {
        Error::InvalidWasm { name, reason } => {
            assert!(name.ends_with("truncated.wasm"), "{name}");
            assert!(!reason.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let err = engine().load_file("/nonexistent/nothing.wasm").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("/nonexistent/nothing.wasm:"),
        "{err}"
    );
}

#[test]
fn a_missing_import_fails_at_load_naming_the_import() {
    let err = engine()
        .load_file(common::component("missing_import"))
        .unwrap_err();
    match &err {
        Error::Link { component, reason } => {
            assert_eq!(component, "missing_import");
            assert!(reason.contains("test:missing/gadget"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn commands_and_modules_are_not_lifecycle_components() {
    let engine = engine();
    let probe = engine.load_file(common::component("wasi-probe")).unwrap();
    assert_eq!(probe.kind(), ComponentKind::Component);
    assert!(!probe.is_lifecycle());
    let err = probe
        .instantiate(&ExecutionContext::new("wasi-probe"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { reason, .. } if reason.contains("airssys:component/lifecycle@0.2.1")),
        "{err:?}"
    );
    let module = engine.load_file(common::p1_probe()).unwrap();
    assert_eq!(module.kind(), ComponentKind::Module);
    let err = module
        .instantiate(&ExecutionContext::new("wasi-probe"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
}

#[test]
fn the_second_load_is_served_by_the_compile_cache() {
    let cache = tempfile::tempdir().unwrap();
    let config = || {
        EngineConfig::default()
            .pool_instances(4)
            .cache_dir(Some(cache.path().to_path_buf()))
    };
    let first = Engine::new(config()).unwrap();
    let a = first.load_file(common::component("echo")).unwrap();
    assert_eq!(first.cache_stats().compiles, 1);
    assert_eq!(first.cache_stats().hits, 0);
    // A new engine (a second start of the process) does not compile again.
    let second = Engine::new(config()).unwrap();
    let b = second.load_file(common::component("echo")).unwrap();
    assert_eq!(second.cache_stats().compiles, 0);
    assert_eq!(second.cache_stats().hits, 1);
    assert_eq!(a.content_hash(), b.content_hash());
    assert!(b.is_lifecycle());
    // A corrupt cache entry is a miss, not an error.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"corrupt").unwrap();
    }
    let third = Engine::new(config()).unwrap();
    third.load_file(common::component("echo")).unwrap();
    assert_eq!(third.cache_stats().compiles, 1);
}

#[test]
fn a_cached_component_that_fails_to_link_is_not_compiled_again() {
    let cache = tempfile::tempdir().unwrap();
    let config = || {
        EngineConfig::default()
            .pool_instances(2)
            .cache_dir(Some(cache.path().to_path_buf()))
    };
    let first = Engine::new(config()).unwrap();
    let e = first
        .load_file(common::component("missing_import"))
        .unwrap_err();
    assert!(matches!(e, airssys_wasm::Error::Link { .. }), "{e}");
    assert_eq!(first.cache_stats().compiles, 1);
    // The next process: a cache hit, and the same link error at once.
    let second = Engine::new(config()).unwrap();
    let again = second
        .load_file(common::component("missing_import"))
        .unwrap_err();
    assert_eq!(again.to_string(), e.to_string());
    assert_eq!(second.cache_stats().hits, 1);
    assert_eq!(
        second.cache_stats().compiles,
        0,
        "compiled again after a hit"
    );
}

#[test]
fn a_different_engine_configuration_does_not_reuse_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let unmetered = Engine::new(
        EngineConfig::default()
            .pooling(false)
            .cache_dir(Some(cache.path().into())),
    )
    .unwrap();
    unmetered.load_file(common::component("echo")).unwrap();
    let metered = Engine::new(
        EngineConfig::default()
            .pooling(false)
            .consume_fuel(true)
            .cache_dir(Some(cache.path().into())),
    )
    .unwrap();
    metered.load_file(common::component("echo")).unwrap();
    assert_eq!(metered.cache_stats().hits, 0);
    assert_eq!(metered.cache_stats().compiles, 1);
}

#[tokio::test]
async fn precompiled_code_loads_and_runs() {
    let engine = engine();
    let bytes = std::fs::read(common::component("echo")).unwrap();
    let compiled = engine.precompile("echo", &bytes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.cwasm");
    std::fs::write(&path, &compiled).unwrap();
    // Precompiled code is refused by the safe loader...
    assert!(matches!(
        engine.load_file(&path).unwrap_err(),
        Error::InvalidWasm { .. }
    ));
    // ...and accepted by the unsafe one.
    // SAFETY: produced just above by `precompile` of this engine.
    let echo = unsafe { engine.load_precompiled_file(&path) }.unwrap();
    let mut inst = echo
        .instantiate(&ExecutionContext::new("echo"))
        .await
        .unwrap();
    let reply = inst
        .handle_message(&Message::new("t", b"pre".to_vec()))
        .await
        .unwrap();
    assert_eq!(reply, Some(b"pre".to_vec()));
}

#[tokio::test]
async fn pooling_is_on_by_default_and_falls_back_when_the_pool_cannot_be_reserved() {
    let pooled = Engine::new(EngineConfig::default().cache_dir(None).pool_instances(8)).unwrap();
    assert!(pooled.is_pooling());
    // Ten million 4 GiB slots do not fit in a 47-bit address space.
    let fallback = Engine::new(
        EngineConfig::default()
            .cache_dir(None)
            .pool_instances(10_000_000),
    )
    .unwrap();
    assert!(!fallback.is_pooling());
    let echo = fallback.load_file(common::component("echo")).unwrap();
    let mut inst = echo
        .instantiate(&ExecutionContext::new("echo"))
        .await
        .unwrap();
    assert_eq!(
        inst.handle_message(&Message::new("t", b"ok".to_vec()))
            .await
            .unwrap(),
        Some(b"ok".to_vec())
    );
}

#[tokio::test]
async fn the_pool_bounds_live_instances_and_frees_slots_on_drop() {
    let engine = Engine::new(EngineConfig::default().cache_dir(None).pool_instances(2)).unwrap();
    assert!(engine.is_pooling());
    let echo = engine.load_file(common::component("echo")).unwrap();
    let ctx = ExecutionContext::new("echo");
    let a = echo.instantiate(&ctx).await.unwrap();
    let _b = echo.instantiate(&ctx).await.unwrap();
    let err = echo.instantiate(&ctx).await.unwrap_err();
    assert_eq!(err.component(), Some("echo"));
    assert!(
        err.to_string().contains("maximum concurrent limit of 2"),
        "{err}"
    );
    drop(a);
    echo.instantiate(&ctx).await.unwrap();
}

#[test]
fn inspect_reports_kind_hash_imports_exports_and_wit() {
    let engine = engine();
    let echo = engine.inspect_file(common::component("echo")).unwrap();
    assert_eq!(echo.kind, ComponentKind::Component);
    assert!(echo.lifecycle);
    assert_eq!(echo.sha256.len(), 64);
    assert!(
        echo.exports
            .iter()
            .any(|e| e == "airssys:component/lifecycle@0.2.1"),
        "{:?}",
        echo.exports
    );
    assert!(echo
        .wit
        .as_deref()
        .unwrap()
        .contains("handle-message: func"));
    assert!(echo
        .world
        .as_deref()
        .unwrap()
        .contains("export airssys:component/lifecycle@0.2.1;"));
    // Inspect works on a component this host cannot link.
    let missing = engine
        .inspect_file(common::component("missing_import"))
        .unwrap();
    assert!(
        missing.imports.iter().any(|i| i == "test:missing/gadget"),
        "{:?}",
        missing.imports
    );
    assert!(!missing.lifecycle);
    let module = engine.inspect_file(common::p1_probe()).unwrap();
    assert_eq!(module.kind, ComponentKind::Module);
    assert!(module.exports.iter().any(|e| e == "_start"));
    assert!(module
        .imports
        .iter()
        .any(|i| i.starts_with("wasi_snapshot_preview1::")));
}
