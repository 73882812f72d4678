//! Shared by the integration tests and benchmarks: builds the example components
//! from source (once per process) and finds them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Builds every example component (cargo skips the work when nothing changed).
pub fn build_guests() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = root();
        let status = std::process::Command::new("bash")
            .arg(root.join("scripts/build-components.sh"))
            .status()
            .expect("run scripts/build-components.sh");
        assert!(status.success(), "building the example components failed");
        root.join("target/guests")
    })
}

/// A component built for wasm32-wasip2, e.g. `component("echo")`.
pub fn component(name: &str) -> PathBuf {
    let p = build_guests()
        .join("wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// The WASI p1 core module build of `wasi-probe`.
pub fn p1_probe() -> PathBuf {
    let p = build_guests().join("wasm32-wasip1/release/wasi-probe.wasm");
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// Grants sending to, publishing and subscribing to everything.
pub fn open_caps() -> airssys_wasm::Capabilities {
    use airssys_wasm::security::pattern::NamePatterns;
    let mut caps = airssys_wasm::Capabilities::default();
    caps.send = NamePatterns::new(&["**"]).unwrap();
    caps.publish = NamePatterns::new(&["**"]).unwrap();
    caps.subscribe = NamePatterns::new(&["**"]).unwrap();
    caps
}

/// A pooled engine for tests: no compile cache, a small pool, fuel metered.
pub fn engine() -> airssys_wasm::Engine {
    airssys_wasm::Engine::new(
        airssys_wasm::EngineConfig::default()
            .cache_dir(None)
            .pool_instances(16)
            .consume_fuel(true),
    )
    .expect("engine")
}

/// The Python example (`examples/python/py-echo`), built with componentize-py.
pub fn python_guest() -> PathBuf {
    let p = build_guests().join("python/py-echo.wasm");
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// A compile cache shared by the tests that load the big Python and JS guests, so
/// that it is compiled once (per engine configuration), not once per test.
pub fn python_cache() -> PathBuf {
    root().join("target/test-compile-cache")
}

/// The JavaScript example (`examples/js/js-echo`), built with componentize-js's defaults.
pub fn js_guest() -> PathBuf {
    let p = build_guests().join("js/js-echo.wasm");
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// A loopback HTTP/1.1 server answering every request with `body` (one
/// connection each); counts the connections it accepted. It lives as long as
/// the test or benchmark process.
pub fn serve_http(body: &'static str) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .ok();
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (port, accepted)
}
