//! `airssys-wasm serve` (and `inspect`, `new --template http`) through the
//! real binary on loopback ports. Every process is bounded in time and killed on drop.

#[path = "../../airssys-wasm/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_airssys-wasm")
}

/// A running `serve`; killed when dropped.
struct Serve {
    child: Child,
    url: String,
    metrics: String,
    /// What it printed after its first two lines.
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    _cache: tempfile::TempDir,
}

impl Serve {
    fn start(wasm: &Path, extra: &[&str]) -> Serve {
        let cache = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin())
            .arg("serve")
            .args(["--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .args(extra)
            .arg(wasm)
            .env("XDG_CACHE_HOME", cache.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let mut next = |prefix: &str, child: &mut Child| {
            line.clear();
            out.read_line(&mut line).unwrap();
            match line.trim().strip_prefix(prefix) {
                Some(rest) => rest.to_string(),
                None => {
                    let _ = child.kill();
                    let mut err = String::new();
                    let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
                    panic!("serve did not start: {line:?} {err}");
                }
            }
        };
        let metrics = next("metrics: ", &mut child);
        let serving = next("serving ", &mut child);
        let url = serving.rsplit(" on ").next().unwrap().to_string();
        let rest = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = rest.clone();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        Serve {
            child,
            url,
            metrics,
            stdout: rest,
            _cache: cache,
        }
    }

    /// Sends `signal` and waits (at most 30 s) for the exit; the output's
    /// stdout is what came after the first two lines.
    fn stop(mut self, signal: &str) -> Output {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "serve did not stop after {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        let mut o = child.wait_with_output().unwrap();
        // The reader thread ends at the pipe's end, just after the exit.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::sync::Arc::strong_count(&self.stdout) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        o.stdout = self.stdout.lock().unwrap().clone().into_bytes();
        o
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into();
    let mut r = agent.get(url).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

#[test]
fn serve_answers_reports_metrics_and_drains_on_sigterm() {
    let hello = common::component("http_hello");
    let s = Serve::start(&hello, &["--timeout", "5s", "--fuel", "100000000"]);
    assert_eq!(get(&s.url), (200, "hello from airssys-wasm\n".into()));
    let (status, body) = get(&format!("{}trap", s.url));
    assert_eq!((status, body.as_str()), (500, "internal server error\n"));
    let (_, metrics) = get(&s.metrics);
    assert!(
        metrics.contains("airssys_http_requests_total{route=\"http_hello\",status=\"500\"} 1"),
        "{metrics}"
    );
    // A request in flight when SIGTERM comes is answered, then serve exits 0.
    let url = format!("{}sleep/1500", s.url);
    let in_flight = std::thread::spawn(move || get(&url));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, m) = get(&s.metrics);
        if m.contains("airssys_http_instances_total{route=\"http_hello\"} 3") {
            break;
        }
        assert!(Instant::now() < deadline, "the request never started: {m}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = s.stop("-TERM");
    assert_eq!(
        in_flight.join().unwrap(),
        (200, "slept 1500 ms\n".into()),
        "drained"
    );
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("stopped: every request answered"), "{out}");
    // The trap's reason is in serve's log, never in the answer.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("trap requested by /trap"), "{err}");
}

#[test]
fn inspect_tells_an_http_handler_apart_and_serve_refuses_others() {
    let o = Command::new(bin())
        .args(["--no-cache", "inspect"])
        .arg(common::component("http_hello"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("http handler: yes"), "{out}");
    let o = Command::new(bin())
        .args(["--no-cache", "inspect"])
        .arg(common::component("echo"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("http handler: no"));
    let o = Command::new(bin())
        .args(["--no-cache", "serve", "--addr", "127.0.0.1:0"])
        .arg(common::component("echo"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error: echo: ") && err.contains("wasi:http/incoming-handler"),
        "{err}"
    );
}

#[test]
fn new_http_template_builds_and_serves() {
    common::build_guests();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("web-hello");
    let o = Command::new(bin())
        .args(["new", "--template", "http", "--dir"])
        .arg(&project)
        .arg("web-hello")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let target = common::root().join("target/guests");
    let built = Command::new("cargo")
        .args(["build", "--quiet", "--release"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .unwrap();
    assert!(built.success());
    let wasm = target.join("wasm32-wasip2/release/web_hello.wasm");
    let manifest = project.join("Component.toml");
    let s = Serve::start(&wasm, &["--manifest", manifest.to_str().unwrap()]);
    assert_eq!(
        get(&format!("{}x?y=1", s.url)),
        (200, "hello from web-hello: you asked for /x?y=1\n".into())
    );
    assert!(s.stop("-INT").status.success());
}
