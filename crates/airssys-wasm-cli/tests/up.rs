//! `airssys-wasm up`, its admin API, `ps` and `send`, driven through the real
//! binary on loopback ports. Every process is bounded in time and killed on drop.

#[path = "../../airssys-wasm/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_airssys-wasm")
}

/// A running `up`; killed when dropped.
struct Up {
    child: Child,
    url: String,
    /// The `[http]` listener's URL, when the system has one.
    http: Option<String>,
    _cache: tempfile::TempDir,
}

impl Up {
    fn start(system: &Path, extra: &[&str]) -> Up {
        let cache = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin())
            .arg("up")
            .arg(system)
            .args(["--admin", "127.0.0.1:0"])
            .args(extra)
            .env("XDG_CACHE_HOME", cache.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start up");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let url = match line.trim().strip_prefix("admin: ") {
            Some(u) => u.to_string(),
            None => {
                let _ = child.kill();
                let o = child.wait_with_output().unwrap();
                panic!(
                    "up did not start: {line:?} {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        };
        line.clear();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("up: "), "{line:?}");
        let http = if std::fs::read_to_string(system).unwrap().contains("[http]") {
            line.clear();
            out.read_line(&mut line).unwrap();
            Some(
                line.trim()
                    .strip_prefix("http: ")
                    .expect("an http: line")
                    .to_string(),
            )
        } else {
            None
        };
        // Keep draining stdout so that the process never blocks on it.
        std::thread::spawn(move || for _ in out.lines() {});
        Up {
            child,
            url,
            http,
            _cache: cache,
        }
    }

    /// Sends `signal` and waits (at most 20 s) for the exit.
    fn stop(mut self, signal: &str) -> Output {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "up did not stop after {signal}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = agent().get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut r = req.call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

fn post(url: &str, body: &str) -> (u16, String) {
    let mut r = agent().post(url).send(body).unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

fn cli(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn guest(name: &str) -> PathBuf {
    common::component(name)
}

/// A system of `actor_probe` actors whose `shutdown()` writes `OUT/ID`.
fn probe_system(dir: &Path) -> PathBuf {
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        dir.join("probe.toml"),
        r#"
[component]
name = "probe"
version = "0.1.0"
[limits]
timeout = "1s"
[capabilities]
filesystem = [{ host = "out", guest = "/out", access = "read-write" }]
messaging = { send = ["**"] }
"#,
    )
    .unwrap();
    let system = dir.join("system.toml");
    std::fs::write(
        &system,
        format!(
            r#"
[system]
name = "probes"
shutdown-timeout = "2s"

[components.probe]
path = "{}"
manifest = "probe.toml"

[components.actor_probe]
path = "{}"
virtual = true

[[supervisors]]
name = "inner"

[[actors]]
id = "first"
component = "probe"
config = {{ shutdown-file = "/out/first" }}

[[actors]]
id = "tiny"
component = "probe"
supervisor = "inner"
mailbox-capacity = 1
config = {{ shutdown-file = "/out/tiny" }}
"#,
            guest("actor_probe").display(),
            guest("actor_probe").display()
        ),
    )
    .unwrap();
    system
}

#[test]
fn every_admin_route_answers_and_a_crash_shows_as_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&probe_system(dir.path()), &[]);
    let u = &up.url;

    let (s, body) = get(&format!("{u}/components"), None);
    assert_eq!(s, 200);
    let actors: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = actors.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["first", "tiny"]);
    for key in [
        "id",
        "component",
        "state",
        "restarts",
        "mailbox",
        "handled",
        "usage",
    ] {
        assert!(actors[0].get(key).is_some(), "{key} in {body}");
    }
    assert_eq!(actors[1]["supervisor"], "inner");

    // fire and forget, then request-reply
    assert_eq!(post(&format!("{u}/components/first/messages"), "hi").0, 202);
    assert_eq!(
        post(
            &format!("{u}/components/first/messages?reply=true"),
            "whoami"
        ),
        (200, "first".to_string())
    );
    // a virtual actor, its id percent-encoded
    assert_eq!(
        post(
            &format!("{u}/components/actor_probe%2Fk1/messages?reply=true"),
            "whoami"
        ),
        (200, "actor_probe/k1".to_string())
    );
    // errors: unknown actor, bad id, bad parameter, timeout, unknown route
    let (s, body) = post(&format!("{u}/components/nobody/messages"), "x");
    assert_eq!(
        (s, body.as_str()),
        (404, r#"{"error":"nobody: no such actor"}"#)
    );
    assert_eq!(post(&format!("{u}/components/bad.id/messages"), "x").0, 400);
    let (s, body) = post(&format!("{u}/components/first/messages?reply=maybe"), "x");
    assert_eq!(s, 400, "{body}");
    assert_eq!(
        post(
            &format!("{u}/components/first/messages?reply=true&timeout=1h"),
            "x"
        )
        .0,
        400
    );
    assert_eq!(get(&format!("{u}/nowhere"), None).0, 404);
    // a full mailbox: tiny spins on one message (its 1 s timeout), holds one more
    assert_eq!(
        post(&format!("{u}/components/tiny/messages"), "spin").0,
        202
    );
    // Wait until tiny has taken the spin off its mailbox (it is then busy).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, body) = get(&format!("{u}/components"), None);
        let actors: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        let tiny = actors.iter().find(|a| a["id"] == "tiny").unwrap();
        if tiny["mailbox"].as_u64() == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        post(&format!("{u}/components/tiny/messages"), "queued").0,
        202
    );
    let (s, body) = post(&format!("{u}/components/tiny/messages"), "one too many");
    assert_eq!(
        (s, body.as_str()),
        (503, r#"{"error":"tiny: mailbox full (capacity 1)"}"#)
    );
    // a request that gets no reply in time
    let (s, _) = post(
        &format!("{u}/components/first/messages?reply=true&timeout=300ms"),
        "spin",
    );
    assert_eq!(s, 504);
    // a crash: 502 with the trap, then a restart in /components and /metrics
    let (s, body) = post(
        &format!("{u}/components/first/messages?reply=true"),
        "panic",
    );
    assert_eq!(s, 502, "{body}");
    assert!(body.contains("actor-probe was asked to panic"), "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = get(&format!("{u}/components"), None);
        let actors: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        let first = actors.iter().find(|a| a["id"] == "first").unwrap();
        if first["restarts"].as_u64() >= Some(2) && first["state"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (s, metrics) = get(&format!("{u}/metrics"), None);
    assert_eq!(s, 200);
    assert!(
        metrics.contains(r#"airssys_actor_restarts_total{actor="first"} 2"#),
        "{metrics}"
    );
    for name in [
        "airssys_messages_sent_total",
        "airssys_messages_handled_total",
        "airssys_requests_total",
        "airssys_request_timeouts_total",
        "airssys_dead_letters_total",
        "airssys_pending_requests",
        "airssys_health_check_failures_total",
        "airssys_mailbox_depth",
        "airssys_call_duration_seconds_bucket",
        "airssys_fuel_consumed_total",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
    let (s, body) = get(&format!("{u}/dead-letters"), None);
    assert_eq!(s, 200);
    assert!(body.contains(r#""kind":"no-such-actor""#), "{body}");
    assert!(body.contains(r#""kind":"mailbox-full""#), "{body}");
    assert!(body.contains(r#""kind":"crashed""#), "{body}");
    assert_eq!(
        get(&format!("{u}/healthz"), None),
        (200, r#"{"status":"ok"}"#.into())
    );

    // ps and send against it
    let o = cli(&["ps", "--admin", u]);
    assert!(o.status.success());
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("first ") && l.contains("running")),
        "{table}"
    );
    let o = cli(&["ps", "--admin", u, "--json"]);
    assert!(serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .unwrap()
        .is_array());
    let o = cli(&["send", "--admin", u, "first", "whoami", "--reply"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "first\n");
    let o = cli(&["send", "--admin", u, "actor_probe/k2", "whoami", "--reply"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "actor_probe/k2\n");
    let o = cli(&["send", "--admin", u, "nobody", "x"]);
    assert!(!o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        "error: admin API answered 404: nobody: no such actor"
    );

    let o = up.stop("-INT");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn sigint_and_sigterm_stop_gracefully_calling_every_shutdown() {
    for signal in ["-INT", "-TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let up = Up::start(&probe_system(dir.path()), &[]);
        assert_eq!(
            post(&format!("{}/components/first/messages", up.url), "hi").0,
            202
        );
        let o = up.stop(signal);
        assert!(
            o.status.success(),
            "{signal}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for id in ["first", "tiny"] {
            let written = std::fs::read_to_string(dir.path().join("out").join(id))
                .unwrap_or_else(|e| panic!("{signal}: {id} shutdown() not called: {e}"));
            assert_eq!(written, id);
        }
    }
}

#[test]
fn the_root_failing_ends_up_with_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let system = dir.path().join("system.toml");
    std::fs::write(
        &system,
        format!(
            "[components.p]\npath = \"{}\"\nconfig = {{ fail-init = \"1\" }}\n\
             [[supervisors]]\nname = \"root\"\nmax-restarts = 1\nbackoff = \"1ms\"\n\
             [[actors]]\nid = \"doomed\"\ncomponent = \"p\"\n",
            guest("actor_probe").display()
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .arg("up")
        .arg(&system)
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines().any(|l| l
            .starts_with("error: actor system failed: supervisor root: restart intensity reached")
            && l.contains("doomed: initialize failed: invalid input: fail-init is set")),
        "{err}"
    );
}

#[test]
fn a_non_loopback_admin_needs_a_token_and_then_every_request_carries_it() {
    let dir = tempfile::tempdir().unwrap();
    let system = probe_system(dir.path());
    let o = Command::new(bin())
        .args(["up", system.to_str().unwrap(), "--admin", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "error: --admin 0.0.0.0:0 is not a loopback address: give --admin-token-file"
        ),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // With a token (served on loopback here, as every test server is).
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let up = Up::start(&system, &["--admin-token-file", token.to_str().unwrap()]);
    for route in ["/components", "/metrics", "/dead-letters", "/healthz"] {
        assert_eq!(get(&format!("{}{route}", up.url), None).0, 401, "{route}");
        assert_eq!(
            get(&format!("{}{route}", up.url), Some("wrong")).0,
            401,
            "{route}"
        );
        assert_eq!(
            get(&format!("{}{route}", up.url), Some("s3cret")).0,
            200,
            "{route}"
        );
    }
    assert_eq!(
        post(&format!("{}/components/first/messages", up.url), "x").0,
        401
    );
    let o = cli(&["ps", "--admin", &up.url]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("401"));
    let o = cli(&[
        "ps",
        "--admin",
        &up.url,
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(up.stop("-TERM").status.success());
}

#[test]
fn errors_in_system_toml_name_the_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let system = dir.path().join("system.toml");
    std::fs::write(
        &system,
        "[components.p]\npath = \"p.wasm\"\n\n[[actors]]\nid = \"a\"\ncomponent = \"q\"\n",
    )
    .unwrap();
    let o = cli(&["up", system.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "error: {}: line 6, column 13: unknown component \"q\" (declared: p)",
            system.display()
        )
    );
    std::fs::write(&system, "[system]\nname = 3\n").unwrap();
    let o = cli(&["up", system.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("line 2, column 8: invalid type: integer `3`, expected a string"),
        "{err}"
    );
}

#[test]
fn the_demo_system_runs() {
    let root = common::root();
    common::build_guests();
    let data = tempfile::tempdir().unwrap();
    let data_arg = data.path().to_str().unwrap();
    let up = Up::start(
        &root.join("examples/demo/system.toml"),
        &["--data", data_arg, "--http", "127.0.0.1:0"],
    );
    let o = cli(&["send", "--admin", &up.url, "ingest", "order 1", "--reply"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "order \"order 1\" published to 2 subscribers"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = cli(&["send", "--admin", &up.url, "store", "list", "--reply"]);
        if String::from_utf8_lossy(&o.stdout).trim() == "ORDER 1" {
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // Its HTTP route to ingest.
    let http = up.http.clone().expect("the demo's [http]");
    assert_eq!(
        post(&format!("{http}/orders"), "order 9"),
        (200, "order \"order 9\" published to 2 subscribers".into())
    );
    // The durable counter survives its crash and supervised restart.
    let tally = |text: &str| {
        let o = cli(&["send", "--admin", &up.url, "tally", text, "--reply"]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(tally("incr"), "1");
    assert_eq!(tally("incr"), "2");
    tally("crash");
    assert_eq!(tally("get"), "2");
    let (_, metrics) = get(&format!("{}/metrics", up.url), None);
    assert!(
        metrics.contains("airssys_storage_bytes{actor=\"tally\"} 6"),
        "{metrics}"
    );
    assert!(up.stop("-INT").status.success());
    // ... and the process: the next one reads it from the data directory.
    let o = cli(&["storage", "ls", "--data", data_arg]);
    let ls = String::from_utf8_lossy(&o.stdout);
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["tally", "1", "6"]),
        "{ls}"
    );
}

#[test]
fn the_committed_system_schema_is_current() {
    let o = cli(&["schema", "--system"]);
    let committed =
        std::fs::read_to_string(common::root().join("schemas/system.schema.json")).unwrap();
    assert_eq!(
        committed,
        String::from_utf8_lossy(&o.stdout),
        "regenerate with: cargo run -p airssys-wasm-cli -- schema --system > schemas/system.schema.json"
    );
}

#[test]
fn up_serves_http_routes_on_a_listener_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let system = dir.path().join("system.toml");
    std::fs::write(
        &system,
        format!(
            "[components.web]\npath = {:?}\n[components.crasher]\npath = {:?}\n\
             [[actors]]\nid = \"crasher\"\ncomponent = \"crasher\"\n\
             [http]\naddr = \"127.0.0.1:1\"\n\
             [[http.routes]]\npath = \"/\"\ncomponent = \"web\"\n\
             [[http.routes]]\npath = \"/orders\"\nactor = \"crasher\"\n",
            guest("http_hello").display().to_string(),
            guest("crasher").display().to_string(),
        ),
    )
    .unwrap();
    let up = Up::start(&system, &["--http", "127.0.0.1:0"]);
    let http = up.http.clone().expect("an http listener");
    assert_ne!(http, up.url, "apart from the admin API");
    assert_eq!(
        get(&format!("{http}/"), None),
        (200, "hello from airssys-wasm\n".into())
    );
    assert_eq!(
        post(&format!("{http}/orders"), "order 1"),
        (200, "order 1".into())
    );
    assert_eq!(post(&format!("{http}/orders"), "panic").0, 502);
    assert_eq!(
        post(&format!("{http}/orders"), "order 2"),
        (200, "order 2".into())
    );
    // The admin API does not answer on the HTTP listener, nor the routes on the admin's.
    assert_eq!(get(&format!("{http}/components"), None).0, 404);
    assert_eq!(get(&format!("{}/orders", up.url), None).0, 404);
    // One scrape of the admin API's /metrics has the listener's figures (recorded
    // when a response's last byte is gone, so wait for them).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = get(&format!("{}/metrics", up.url), None);
        let want = [
            r#"airssys_http_requests_total{route="web",status="200"} 1"#,
            r#"airssys_http_requests_total{route="crasher",status="200"} 2"#,
            r#"airssys_http_requests_total{route="crasher",status="502"} 1"#,
            r#"airssys_actor_restarts_total{actor="crasher"} 1"#,
        ];
        if want.iter().all(|w| metrics.contains(w)) {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = up.stop("-TERM");
    assert!(o.status.success(), "{o:?}");
}

/// The issue's test of durable actors: 20 times, a steady stream of messages to
/// a durable counter (every tenth adds 1 and then traps), then SIGKILL with
/// messages queued and in flight. After each restart the count is the number
/// of acknowledged (202) adding messages, exactly: none lost, none applied
/// twice, and no trapping call's add kept.
#[test]
fn durable_counters_count_exactly_the_acknowledged_messages_across_20_sigkills() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let system = dir.path().join("system.toml");
    std::fs::write(
        &system,
        format!(
            "[system]\ndata = \"data\"\n\
             [[supervisors]]\nname = \"root\"\nmax-restarts = 100000\nwithin = \"1s\"\nbackoff = \"1ms\"\nbackoff-max = \"5ms\"\n\
             [components.counter]\npath = {:?}\n\
             [[actors]]\nid = \"ledger\"\ncomponent = \"counter\"\ndurable = true\nmax-deliveries = 2\nhealth = false\n",
            guest("kv-counter").display().to_string(),
        ),
    )
    .unwrap();
    let mut acked_adds = 0u64;
    let mut total_acked = 0u64;
    for round in 0..20u64 {
        let up = Up::start(&system, &[]);
        let url = format!("{}/components/ledger/messages", up.url);
        let stop = Arc::new(AtomicBool::new(false));
        let sender = {
            let (url, stop) = (url.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut adds, mut all) = (0u64, 0u64);
                let agent = agent();
                while !stop.load(Ordering::Relaxed) {
                    let body = if (all + 1) % 10 == 0 {
                        "incr-then-crash"
                    } else {
                        "incr"
                    };
                    let r = agent.post(&url).send(body).unwrap();
                    assert_eq!(r.status().as_u16(), 202, "round {round}");
                    all += 1;
                    if body == "incr" {
                        adds += 1;
                    }
                }
                (adds, all)
            })
        };
        std::thread::sleep(Duration::from_millis(80 + (round * 37) % 150));
        stop.store(true, Ordering::Relaxed);
        // Nothing in flight between the sender and the host: every message
        // sent was acknowledged. Then the kill, with messages still queued.
        let (adds, all) = sender.join().unwrap();
        acked_adds += adds;
        total_acked += all;
        let o = up.stop("-KILL");
        assert!(!o.status.success());
    }
    assert!(
        total_acked >= 200,
        "a steady stream: {total_acked} messages"
    );
    let up = Up::start(&system, &[]);
    let (status, count) = post(
        &format!(
            "{}/components/ledger/messages?reply=true&timeout=60s",
            up.url
        ),
        "get",
    );
    assert_eq!(status, 200, "{count}");
    assert_eq!(
        count,
        acked_adds.to_string(),
        "of {total_acked} acknowledged"
    );
    // Nothing is left in the log once handled.
    let (_, status) = get(&format!("{}/components", up.url), None);
    assert!(status.contains("\"ledger\""), "{status}");
    let o = up.stop("-TERM");
    assert!(o.status.success(), "{o:?}");
}

#[test]
fn upgrade_and_rollback_a_component_of_a_running_system() {
    let dir = tempfile::tempdir().unwrap();
    let system = dir.path().join("system.toml");
    std::fs::write(
        &system,
        format!(
            "[components.probe]\npath = {:?}\n\
             [[actors]]\nid = \"u\"\ncomponent = \"probe\"\nhealth = false\n",
            guest("upgrade_probe_v1").display().to_string(),
        ),
    )
    .unwrap();
    let up = Up::start(&system, &[]);
    let ask = |body: &str| {
        post(
            &format!("{}/components/u/messages?reply=true", up.url),
            body,
        )
    };
    assert_eq!(ask("a"), (200, "1.0.0 #1: a".into()));
    let upgrade = |variant: &str| {
        cli(&[
            "upgrade",
            "--admin",
            &up.url,
            "--probation",
            "1s",
            "upgrade_probe_v1",
            guest(&format!("upgrade_probe_{variant}")).to_str().unwrap(),
        ])
    };
    let o = upgrade("v2");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "u: version 2");
    assert_eq!(ask("b"), (200, "2.0.0 #1: b".into()));
    // A version whose initialize fails is refused; the actor keeps version 2.
    let o = upgrade("bad_init");
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("u: kept its version") && out.contains("cannot start"),
        "{out}"
    );
    assert_eq!(ask("c"), (200, "2.0.0 #2: c".into()));
    // Not a component: 422 with the reason.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let o = cli(&[
        "upgrade",
        "--admin",
        &up.url,
        "upgrade_probe_v1",
        junk.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("422"), "{o:?}");
    let (_, comps) = get(&format!("{}/components", up.url), None);
    assert!(comps.contains("\"version\":2"), "{comps}");
    let o = cli(&["rollback", "--admin", &up.url, "u"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "u: version 1");
    assert_eq!(ask("d"), (200, "1.0.0 #1: d".into()));
    let (_, metrics) = get(&format!("{}/metrics", up.url), None);
    assert!(
        metrics.contains(r#"airssys_actor_upgrades_total{actor="u"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"airssys_actor_rollbacks_total{actor="u"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"airssys_actor_version{actor="u"} 1"#),
        "{metrics}"
    );
    let o = up.stop("-TERM");
    assert!(o.status.success(), "{o:?}");
}

#[test]
fn a_system_that_requires_signatures_takes_only_signed_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("release");
    let other = dir.path().join("other");
    for k in [&key, &other] {
        assert!(cli(&["keygen", "--out", k.to_str().unwrap()])
            .status
            .success());
    }
    // One name, three versions: the running one, the next, one signed by another key.
    let copy = |variant: &str, folder: &str, signer: &Path| {
        let d = dir.path().join(folder);
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("probe.wasm");
        std::fs::copy(guest(&format!("upgrade_probe_{variant}")), &f).unwrap();
        let o = cli(&[
            "sign",
            "--key",
            signer.to_str().unwrap(),
            f.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{o:?}");
        f
    };
    let v1 = copy("v1", "v1", &key);
    let v2 = copy("v2", "v2", &key);
    let forged = copy("v2", "forged", &other);
    let system = dir.path().join("system.toml");
    std::fs::write(
        &system,
        format!(
            "[system]\ntrusted-keys = [\"release.pub\"]\n\
             [components.probe]\npath = {:?}\n\
             [[actors]]\nid = \"u\"\ncomponent = \"probe\"\nhealth = false\n",
            v1.display().to_string(),
        ),
    )
    .unwrap();
    // An unsigned component does not start under the same system.
    let unsigned = dir.path().join("unsigned.toml");
    std::fs::write(
        &unsigned,
        format!(
            "[system]\ntrusted-keys = [\"release.pub\"]\n\
             [components.probe]\npath = {:?}\n\
             [[actors]]\nid = \"u\"\ncomponent = \"probe\"\n",
            guest("upgrade_probe_v1").display().to_string(),
        ),
    )
    .unwrap();
    let o = cli(&["up", unsigned.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not signed"),
        "{o:?}"
    );

    let up = Up::start(&system, &[]);
    let ask = || post(&format!("{}/components/u/messages?reply=true", up.url), "x");
    assert_eq!(ask(), (200, "1.0.0 #1: x".into()));
    let upgrade = |file: &Path| {
        cli(&[
            "upgrade",
            "--admin",
            &up.url,
            "probe",
            file.to_str().unwrap(),
        ])
    };
    // Unsigned: refused by the host, not only by the CLI.
    let bare = dir.path().join("bare").join("probe.wasm");
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    std::fs::copy(guest("upgrade_probe_v2"), &bare).unwrap();
    let o = upgrade(&bare);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success());
    assert!(
        err.contains("403") && err.contains("requires signed upgrades"),
        "{err}"
    );
    // Signed by a key the system does not trust.
    let o = upgrade(&forged);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        err.contains("403") && err.contains("untrusted key"),
        "{err}"
    );
    // Tampered after signing: the bytes are not what was signed.
    let tampered = dir.path().join("v2").join("tampered.wasm");
    let mut bytes = std::fs::read(&v2).unwrap();
    bytes.extend_from_slice(b"\0\0");
    std::fs::write(&tampered, bytes).unwrap();
    std::fs::copy(
        dir.path().join("v2").join("probe.wasm.sig"),
        dir.path().join("v2").join("tampered.wasm.sig"),
    )
    .unwrap();
    let o = upgrade(&tampered);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("403") && err.contains("tampered"), "{err}");
    assert_eq!(ask(), (200, "1.0.0 #2: x".into()));
    // Signed by the trusted key: taken.
    let o = upgrade(&v2);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "u: version 2");
    assert_eq!(ask(), (200, "2.0.0 #1: x".into()));
    let o = up.stop("-TERM");
    assert!(o.status.success(), "{o:?}");
}
