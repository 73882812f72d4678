//! WASI commands (p2 components and p1 modules) through the library: deny by
//! default for files and environment, grants, exit codes, limits.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use airssys_wasm::{Capabilities, Engine, EngineConfig, Error, ExecutionContext, ResourceLimits};

fn engine() -> Engine {
    Engine::new(
        EngineConfig::default()
            .cache_dir(None)
            .pooling(false)
            .consume_fuel(true),
    )
    .unwrap()
}

fn probes() -> Vec<PathBuf> {
    vec![common::component("wasi-probe"), common::p1_probe()]
}

async fn run(path: &PathBuf, ctx: ExecutionContext, args: &[&str]) -> airssys_wasm::Result<i32> {
    let c = engine().load_file(path).unwrap();
    let mut argv = vec!["wasi-probe".to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    c.run_command(&ctx, &argv).await.map(|s| s.code)
}

/// p1 keeps exact exit codes; Rust std on p2 reports any failure as 1.
fn failed(code: i32, p1_code: i32, path: &Path) -> bool {
    if path.to_string_lossy().contains("wasip1") {
        code == p1_code
    } else {
        code == 1
    }
}

#[tokio::test]
async fn files_outside_a_grant_are_invisible() {
    for probe in probes() {
        let code = run(
            &probe,
            ExecutionContext::new("probe"),
            &["read", "/etc/passwd"],
        )
        .await
        .unwrap();
        assert!(
            failed(code, 2, &probe),
            "{}: read /etc/passwd exited {code}",
            probe.display()
        );
        let code = run(&probe, ExecutionContext::new("probe"), &["ls", "/"])
            .await
            .unwrap();
        assert_ne!(code, 0, "{}", probe.display());
    }
}

#[tokio::test]
async fn a_granted_directory_is_readable_and_writable_and_read_only_holds() {
    for probe in probes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.txt"), "data").unwrap();
        let caps = |read_only| Capabilities::default().with_dir(dir.path(), "/data", read_only);
        let ctx = ExecutionContext::new("probe").with_capabilities(caps(false));
        assert_eq!(
            run(&probe, ctx.clone(), &["read", "/data/in.txt"])
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            run(&probe, ctx.clone(), &["write", "/data/out.txt", "written"])
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
            "written"
        );
        // Escaping the grant with .. does not reach the host's parent directory.
        let code = run(&probe, ctx, &["read", "/data/../etc/passwd"])
            .await
            .unwrap();
        assert_ne!(code, 0);

        let ro = ExecutionContext::new("probe").with_capabilities(caps(true));
        assert_eq!(
            run(&probe, ro.clone(), &["read", "/data/in.txt"])
                .await
                .unwrap(),
            0
        );
        let code = run(&probe, ro, &["write", "/data/denied.txt", "x"])
            .await
            .unwrap();
        assert!(
            failed(code, 2, &probe),
            "write to a read-only grant exited {code}"
        );
        assert!(!dir.path().join("denied.txt").exists());
    }
}

#[tokio::test]
async fn environment_variables_are_denied_by_default_and_granted_by_name() {
    std::env::set_var("AIRSSYS_TEST_SECRET", "host-secret");
    for probe in probes() {
        let code = run(
            &probe,
            ExecutionContext::new("probe"),
            &["env", "AIRSSYS_TEST_SECRET"],
        )
        .await
        .unwrap();
        assert!(failed(code, 3, &probe), "host env leaked: exit {code}");
        let caps = Capabilities::default().with_env("GRANTED", "yes");
        let code = run(
            &probe,
            ExecutionContext::new("probe").with_capabilities(caps),
            &["env", "GRANTED"],
        )
        .await
        .unwrap();
        assert_eq!(code, 0);
    }
}

#[tokio::test]
async fn exit_codes_and_failures_propagate() {
    let p1 = common::p1_probe();
    assert_eq!(
        run(&p1, ExecutionContext::new("probe"), &["exit", "7"])
            .await
            .unwrap(),
        7
    );
    assert_eq!(
        run(&p1, ExecutionContext::new("probe"), &["args"])
            .await
            .unwrap(),
        0
    );
    let p2 = common::component("wasi-probe");
    assert_eq!(
        run(&p2, ExecutionContext::new("probe"), &["exit", "7"])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        run(&p2, ExecutionContext::new("probe"), &["time"])
            .await
            .unwrap(),
        0
    );
    for probe in probes() {
        let err = run(&probe, ExecutionContext::new("probe"), &["panic"])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Trap { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn limits_apply_to_commands() {
    for probe in probes() {
        let fuel = ExecutionContext::new("probe")
            .with_limits(ResourceLimits::unlimited().with_fuel(1_000_000));
        assert!(matches!(
            run(&probe, fuel, &["loop"]).await.unwrap_err(),
            Error::FuelExhausted {
                limit: 1_000_000,
                ..
            }
        ));
        let time = ExecutionContext::new("probe")
            .with_limits(ResourceLimits::unlimited().with_timeout(Duration::from_millis(100)));
        assert!(matches!(
            run(&probe, time, &["loop"]).await.unwrap_err(),
            Error::Timeout { .. }
        ));
        let mem = ExecutionContext::new("probe")
            .with_limits(ResourceLimits::unlimited().with_memory_bytes(16 << 20));
        let err = run(&probe, mem, &["alloc", "64"]).await.unwrap_err();
        assert!(
            matches!(err, Error::MemoryLimit { limit, .. } if limit == 16 << 20),
            "{err:?}"
        );
        let ok = ExecutionContext::new("probe")
            .with_limits(ResourceLimits::unlimited().with_memory_bytes(64 << 20));
        assert_eq!(run(&probe, ok, &["alloc", "8"]).await.unwrap(), 0);
    }
}
