//! `up --cluster`: three hosts on one `nats-server -js` (Debian's package,
//! which `.ci/run` installs), each a real process on loopback ports. Sends,
//! requests and publishes cross hosts; a host killed with SIGKILL is seen dead
//! within the cluster's `dead-after`, a message for it is `unavailable`, and
//! it rejoins when it comes back.

#[path = "../../airssys-wasm/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_airssys-wasm")
}

fn guest(name: &str) -> PathBuf {
    common::component(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `nats-server -js` on a loopback port; killed when dropped.
struct Nats {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Nats {
    fn start() -> Nats {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Nats::spawn(port, dir.path());
        Nats {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// SIGKILL, then the same server again on the same port and store.
    fn restart(&mut self, down_for: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down_for);
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        self.child = Nats::spawn(port, self._dir.path());
    }

    fn spawn(port: u16, dir: &Path) -> Child {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "nats-server is not installed: apt-get install nats-server (scripts/test.sh does)",
            );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One host: `up SYSTEM --cluster URL --host-id ID`; killed when dropped.
struct Host {
    child: Child,
    url: String,
    _cache: tempfile::TempDir,
}

impl Host {
    fn start(system: &Path, nats: &str, id: &str) -> Host {
        let cache = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin())
            .arg("up")
            .arg(system)
            .args(["--admin", "127.0.0.1:0", "--cluster", nats, "--host-id", id])
            .env("XDG_CACHE_HOME", cache.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start up");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut url = None;
        for _ in 0..4 {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if let Some(u) = line.trim().strip_prefix("admin: ") {
                url = Some(u.to_string());
            }
            if line.starts_with("up: ") {
                break;
            }
        }
        let Some(url) = url else {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("{id} did not start: {}", String::from_utf8_lossy(&o.stderr));
        };
        std::thread::spawn(move || for _ in out.lines() {});
        Host {
            child,
            url,
            _cache: cache,
        }
    }

    fn ask(&self, id: &str, body: &str) -> (u16, String) {
        let mut r = agent()
            .post(&format!("{}/components/{id}/messages?reply=true", self.url))
            .send(body)
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    }

    fn get(&self, path: &str) -> String {
        let mut r = agent().get(&format!("{}{path}", self.url)).call().unwrap();
        r.body_mut().read_to_string().unwrap()
    }

    fn health_of(&self, host: &str) -> String {
        let hosts: serde_json::Value = serde_json::from_str(&self.get("/hosts")).unwrap();
        hosts
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["id"] == host)
            .map(|h| h["health"].as_str().unwrap().to_string())
            .unwrap_or_else(|| "unknown".into())
    }
}

impl Drop for Host {
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

/// A system with one `actor_probe` actor `id` that may send, publish and subscribe.
fn system(dir: &Path, id: &str) -> PathBuf {
    std::fs::write(
        dir.join("probe.toml"),
        r#"
[component]
name = "probe"
version = "0.1.0"
[capabilities]
messaging = { send = ["**"], publish = ["**"], subscribe = ["**"] }
"#,
    )
    .unwrap();
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(
        &path,
        format!(
            "[system]\nname = \"{id}\"\nshutdown-timeout = \"2s\"\n\
             [cluster]\nheartbeat = \"250ms\"\ndead-after = \"1500ms\"\n\
             [components.probe]\npath = {:?}\nmanifest = \"probe.toml\"\n\
             [[actors]]\nid = \"{id}\"\ncomponent = \"probe\"\nhealth = false\n",
            guest("actor_probe").display().to_string()
        ),
    )
    .unwrap();
    path
}

fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn three_hosts_send_request_and_publish_across_and_a_killed_host_is_seen_dead() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Host::start(&system(dir.path(), "a"), &nats.url, "host-a");
    let b = Host::start(&system(dir.path(), "b"), &nats.url, "host-b");
    let c = Host::start(&system(dir.path(), "c"), &nats.url, "host-c");
    for h in [&a, &b, &c] {
        eventually("every host sees the others", Duration::from_secs(5), || {
            ["host-a", "host-b", "host-c"]
                .iter()
                .all(|id| h.health_of(id) == "alive")
        });
    }
    let hosts = a.get("/hosts");
    assert!(hosts.contains(r#""actors":["b"]"#), "{hosts}");
    // `ps` shows the hosts and where each declared actor runs.
    let ps = Command::new(bin())
        .args(["ps", "--admin", &a.url])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout).to_string();
    assert!(
        ps.lines()
            .any(|l| l.starts_with("host-a (this)") && l.contains("alive") && l.ends_with(" a")),
        "{ps}"
    );
    assert!(
        ps.lines()
            .any(|l| l.starts_with("host-b ") && l.contains("alive") && l.ends_with(" b")),
        "{ps}"
    );
    let metrics = a.get("/metrics");
    assert!(
        metrics.contains(r#"airssys_cluster_host_up{host="host-c"} 1"#),
        "{metrics}"
    );

    // The admin API of one host reaches an actor on another.
    assert_eq!(a.ask("b", "whoami"), (200, "b".into()));
    assert_eq!(c.ask("a", "whoami"), (200, "a".into()));
    // A guest's request to a guest on another host, and its callback.
    let (_, corr) = a.ask("a", "ask b 5000 whoami");
    let want = format!("cb:{corr}:ok:b:b");
    eventually("the callback on a", Duration::from_secs(5), || {
        a.ask("a", "log?").1.contains(&want)
    });
    // A guest's send to another host: it arrives, the sender's id kept.
    assert_eq!(b.ask("b", "send c over"), (200, "ok".into()));
    eventually("the send on c", Duration::from_secs(5), || {
        c.ask("c", "log?").1.contains("msg:b:over")
    });
    // Topics span the hosts.
    assert_eq!(c.ask("c", "subscribe news"), (200, "ok".into()));
    a.ask("a", "publish news hello");
    eventually("the publish on c", Duration::from_secs(5), || {
        c.ask("c", "log?").1.contains("msg:a:hello")
    });
    // An id no host has is no such actor, as on one host.
    assert_eq!(a.ask("nobody", "x").0, 404);

    // SIGKILL: no goodbye. The others see it dead within dead-after (+ a tick).
    let killed = Instant::now();
    drop(c);
    eventually("host-c seen dead by a", Duration::from_secs(5), || {
        a.health_of("host-c") == "dead"
    });
    let detected = killed.elapsed();
    eprintln!("a SIGKILLed host seen dead after {detected:?} (dead-after 1.5 s)");
    // The issue's bound (≤ 5 s); the figure printed above is what it took.
    assert!(detected <= Duration::from_secs(5), "{detected:?}");
    let (status, body) = a.ask("c", "whoami");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("host-c") && body.contains("down"), "{body}");
    // A guest's send to it is refused as unavailable, and a dead letter on its host.
    let (_, r) = a.ask("a", "send c lost");
    assert!(r.contains("unavailable"), "{r}");
    let dead = a.get("/dead-letters");
    assert!(dead.contains("unavailable"), "{dead}");
    // Per link: frames a sent to b, and the messages for c refused.
    let metric = |name: &str, host: &str| -> u64 {
        let m = a.get("/metrics");
        let key = format!("{name}{{host=\"{host}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {m}"))
    };
    assert!(metric("airssys_cluster_link_frames_total", "host-b") >= 1);
    assert_eq!(
        metric("airssys_cluster_link_unavailable_total", "host-c"),
        2
    );

    // It comes back under the same id and is reachable again.
    let c = Host::start(&system(dir.path(), "c"), &nats.url, "host-c");
    eventually("host-c alive again", Duration::from_secs(5), || {
        a.health_of("host-c") == "alive"
    });
    assert_eq!(a.ask("c", "whoami"), (200, "c".into()));

    // A clean stop is seen at once as left.
    let pid = b.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    eventually("host-b seen left", Duration::from_secs(5), || {
        a.health_of("host-b") == "left"
    });
    drop(c);
}

/// A system that runs virtual `kv_counter` actors, with its own data directory.
fn counter_system(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[system]\nname = \"{name}\"\nshutdown-timeout = \"2s\"\ndata = \"data-{name}\"\n\
             [cluster]\nheartbeat = \"250ms\"\ndead-after = \"1500ms\"\n\
             [components.kv_counter]\npath = {:?}\nvirtual = true\nhealth = false\n",
            guest("kv_counter").display().to_string()
        ),
    )
    .unwrap();
    path
}

/// Where virtual actor `id` is resident, by which host's /components lists it.
fn resident_on(hosts: &[(&str, &Host)], id: &str) -> Vec<String> {
    let quoted = format!("\"{id}\"");
    hosts
        .iter()
        .filter(|(_, h)| h.get("/components").contains(&quoted))
        .map(|(n, _)| n.to_string())
        .collect()
}

#[test]
fn a_virtual_actor_has_one_activation_cluster_wide_and_moves_when_its_host_dies() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Host::start(&counter_system(dir.path(), "a"), &nats.url, "host-a");
    let b = Host::start(&counter_system(dir.path(), "b"), &nats.url, "host-b");
    let c = Host::start(&counter_system(dir.path(), "c"), &nats.url, "host-c");
    for h in [&a, &b, &c] {
        eventually("every host sees the others", Duration::from_secs(5), || {
            ["host-a", "host-b", "host-c"]
                .iter()
                .all(|id| h.health_of(id) == "alive")
        });
    }
    // Concurrent first messages from all three hosts to the same ids.
    let keys: Vec<String> = (0..6).map(|i| format!("kv_counter%2Fk{i}")).collect();
    std::thread::scope(|s| {
        for h in [&a, &b, &c] {
            let keys = &keys;
            s.spawn(move || {
                for _ in 0..10 {
                    for k in keys {
                        let (status, body) = h.ask(k, "incr");
                        assert_eq!(status, 200, "{k}: {body}");
                    }
                }
            });
        }
    });
    // One activation each: every host reads the whole count, and the ids
    // are resident on one host each, spread over more than one.
    let mut owners = std::collections::BTreeSet::new();
    for i in 0..6 {
        let k = format!("kv_counter%2Fk{i}");
        for h in [&a, &b, &c] {
            assert_eq!(h.ask(&k, "get"), (200, "30".into()), "{k}");
        }
        let on = resident_on(
            &[("host-a", &a), ("host-b", &b), ("host-c", &c)],
            &format!("kv_counter/k{i}"),
        );
        assert_eq!(on.len(), 1, "kv_counter/k{i} resident on {on:?}");
        owners.insert(on[0].clone());
    }
    assert!(owners.len() > 1, "all placed on {owners:?}");

    // SIGKILL the host of k0: its next message activates it on a survivor.
    let on = resident_on(
        &[("host-a", &a), ("host-b", &b), ("host-c", &c)],
        "kv_counter/k0",
    );
    let (survivor, victim) = match on[0].as_str() {
        "host-a" => ((&b, "host-b"), a),
        "host-b" => ((&c, "host-c"), b),
        _ => ((&a, "host-a"), c),
    };
    let killed = Instant::now();
    drop(victim);
    let (status, body) = loop {
        let r = survivor.0.ask("kv_counter%2Fk0", "incr");
        if r.0 == 200 || killed.elapsed() > Duration::from_secs(10) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status, 200, "{body}");
    let failover = killed.elapsed();
    eprintln!("failover: SIGKILL of the owner to the first answer from a survivor in {failover:?}");
    assert!(failover < Duration::from_secs(5), "{failover:?}");
    // Its storage was the dead host's: the new activation counts afresh.
    assert_eq!(body, "1");
    assert_eq!(survivor.0.ask("kv_counter%2Fk0", "get"), (200, "1".into()));
    let _ = survivor.1;
}

/// The NATS server killed and restarted under traffic: while it is down a
/// cross-host request fails (never hangs past its timeout); once it is back
/// the hosts reconnect by themselves and see each other again.
#[test]
fn hosts_reconnect_after_the_nats_server_restarts() {
    let mut nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Host::start(&system(dir.path(), "a"), &nats.url, "host-a");
    let b = Host::start(&system(dir.path(), "b"), &nats.url, "host-b");
    eventually("a sees b", Duration::from_secs(5), || {
        a.health_of("host-b") == "alive"
    });
    assert_eq!(a.ask("b", "whoami"), (200, "b".into()));
    nats.restart(Duration::from_secs(2));
    // Down for two seconds: past dead-after, so b is dead to a meanwhile.
    eventually(
        "a and b see each other again",
        Duration::from_secs(20),
        || a.health_of("host-b") == "alive" && b.health_of("host-a") == "alive",
    );
    eventually("a request crosses again", Duration::from_secs(10), || {
        a.ask("b", "whoami") == (200, "b".into())
    });
    assert_eq!(b.ask("a", "whoami"), (200, "a".into()));
    // Topics and guest sends work again too.
    assert_eq!(b.ask("b", "send a again"), (200, "ok".into()));
    eventually("the send on a", Duration::from_secs(5), || {
        a.ask("a", "log?").1.contains("msg:b:again")
    });
}

/// Like [`counter_system`], with durable `kv_counter` actors: their writes
/// and mailboxes live in the cluster's JetStream log.
fn durable_counter_system(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[system]\nname = \"{name}\"\nshutdown-timeout = \"2s\"\ndata = \"data-{name}\"\n\
             [cluster]\nheartbeat = \"250ms\"\ndead-after = \"1500ms\"\n\
             [components.kv_counter]\npath = {:?}\nvirtual = true\ndurable = true\nhealth = false\n",
            guest("kv_counter").display().to_string()
        ),
    )
    .unwrap();
    path
}

impl Host {
    /// A durable send with a message id: the status and the body.
    fn send_once(&self, id: &str, body: &str, message_id: &str) -> Option<(u16, String)> {
        let mut r = agent()
            .post(&format!(
                "{}/components/{id}/messages?message-id={message_id}",
                self.url
            ))
            .send(body)
            .ok()?;
        Some((r.status().as_u16(), r.body_mut().read_to_string().unwrap()))
    }
}

/// SIGKILL of a host during steady traffic to durable counters: every send
/// is retried with its message id until it is acknowledged, and after the
/// fail-over every count equals the acknowledged messages exactly (nothing
/// acknowledged lost, nothing applied twice); the killed host rejoins and
/// reads the same counts.
#[test]
fn durable_counters_keep_every_acknowledged_message_exactly_once_when_their_host_is_killed() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Host::start(
        &durable_counter_system(dir.path(), "a"),
        &nats.url,
        "host-a",
    );
    let b = Host::start(
        &durable_counter_system(dir.path(), "b"),
        &nats.url,
        "host-b",
    );
    let c = Host::start(
        &durable_counter_system(dir.path(), "c"),
        &nats.url,
        "host-c",
    );
    for h in [&a, &b, &c] {
        eventually("every host sees the others", Duration::from_secs(5), || {
            ["host-a", "host-b", "host-c"]
                .iter()
                .all(|id| h.health_of(id) == "alive")
        });
    }
    const KEYS: usize = 6;
    const ROUNDS: usize = 30;
    let sent = AtomicUsize::new(0);
    let retried = AtomicUsize::new(0);
    let victim = std::sync::Mutex::new(Some(a));
    let placed_on_a = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for k in 0..KEYS {
            let (b, c, sent, retried) = (&b, &c, &sent, &retried);
            s.spawn(move || {
                let id = format!("kv_counter%2Fd{k}");
                for round in 0..ROUNDS {
                    let mid = format!("d{k}-{round}");
                    let deadline = Instant::now() + Duration::from_secs(30);
                    let mut via = [b, c].into_iter().cycle().skip(k);
                    loop {
                        let h = via.next().unwrap();
                        match h.send_once(&id, "incr", &mid) {
                            Some((202, _)) => break,
                            other => {
                                retried.fetch_add(1, Ordering::Relaxed);
                                assert!(
                                    Instant::now() < deadline,
                                    "{id} {mid}: never acknowledged: {other:?}"
                                );
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // Mid-traffic: SIGKILL host-a, which holds some of the counters.
        let (sent, victim, placed_on_a, b, c) = (&sent, &victim, &placed_on_a, &b, &c);
        s.spawn(move || {
            while sent.load(Ordering::Relaxed) < KEYS * ROUNDS / 3 {
                std::thread::sleep(Duration::from_millis(5));
            }
            let a = victim.lock().unwrap().take().unwrap();
            let on_a: Vec<usize> = (0..KEYS)
                .filter(|k| {
                    resident_on(
                        &[("host-a", &a), ("host-b", b), ("host-c", c)],
                        &format!("kv_counter/d{k}"),
                    ) == ["host-a"]
                })
                .collect();
            *placed_on_a.lock().unwrap() = on_a;
            drop(a);
        });
    });
    let on_a = placed_on_a.into_inner().unwrap();
    eprintln!(
        "durable counters on the killed host: {on_a:?}; sends retried: {}",
        retried.load(Ordering::Relaxed)
    );
    assert!(
        !on_a.is_empty(),
        "no counter was on host-a when it was killed: the test proved nothing"
    );
    for k in 0..KEYS {
        let id = format!("kv_counter%2Fd{k}");
        for h in [&b, &c] {
            assert_eq!(h.ask(&id, "get"), (200, ROUNDS.to_string()), "{id}");
        }
    }
    // The killed host comes back on its old data directory and rejoins: it
    // reads the same counts (its stale local rows are not believed).
    let a = Host::start(
        &durable_counter_system(dir.path(), "a"),
        &nats.url,
        "host-a",
    );
    eventually("host-a is back", Duration::from_secs(5), || {
        b.health_of("host-a") == "alive"
    });
    for k in 0..KEYS {
        let id = format!("kv_counter%2Fd{k}");
        assert_eq!(a.ask(&id, "get"), (200, ROUNDS.to_string()), "{id}");
    }
    // A message id sent again (through any host) is taken once.
    for h in [&a, &b, &c, &a] {
        assert_eq!(
            h.send_once("kv_counter%2Fd0", "incr", "again").map(|r| r.0),
            Some(202)
        );
    }
    assert_eq!(
        c.ask("kv_counter%2Fd0", "get"),
        (200, (ROUNDS + 1).to_string())
    );
    // A malformed id is refused before anything is sent.
    assert_eq!(
        b.send_once("kv_counter%2Fd0", "incr", "a%20b").map(|r| r.0),
        Some(400)
    );
}

/// A system declaring durable actor `ledger` (a `kv_counter`) that may fail over.
fn failover_system(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[system]\nname = \"{name}\"\nshutdown-timeout = \"2s\"\ndata = \"data-{name}\"\n\
             [cluster]\nheartbeat = \"250ms\"\ndead-after = \"1500ms\"\n\
             [components.kv_counter]\npath = {:?}\n\
             [[actors]]\nid = \"ledger\"\ncomponent = \"kv_counter\"\ndurable = true\n\
             failover = true\nhealth = false\n",
            guest("kv_counter").display().to_string()
        ),
    )
    .unwrap();
    path
}

impl Host {
    /// The host `/hosts` says runs `actor`.
    fn runner_of(&self, actor: &str) -> Option<String> {
        let hosts: serde_json::Value = serde_json::from_str(&self.get("/hosts")).ok()?;
        hosts.as_array()?.iter().find_map(|h| {
            h["actors"]
                .as_array()?
                .iter()
                .any(|a| a == actor)
                .then(|| h["id"].as_str().unwrap().to_string())
        })
    }
}

/// A declared actor allowed to fail over runs on one of the hosts that
/// declare it; SIGKILL that host and a survivor starts it, rebuilt from its
/// log: the count it had is there, and it goes on counting.
#[test]
fn a_declared_actor_that_may_fail_over_moves_to_a_survivor_with_its_state() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Host::start(&failover_system(dir.path(), "a"), &nats.url, "host-a");
    let b = Host::start(&failover_system(dir.path(), "b"), &nats.url, "host-b");
    let c = Host::start(&failover_system(dir.path(), "c"), &nats.url, "host-c");
    for h in [&a, &b, &c] {
        eventually("every host sees the others", Duration::from_secs(5), || {
            ["host-a", "host-b", "host-c"]
                .iter()
                .all(|id| h.health_of(id) == "alive")
        });
    }
    // One host claimed it (the first to start, unless it looked dead to a
    // later one meanwhile); every host agrees which, the others keep it on
    // standby.
    let mut hosts = [Some(a), Some(b), Some(c)];
    let mut runner = String::new();
    eventually(
        "one runner of ledger, agreed by all",
        Duration::from_secs(10),
        || {
            let seen: Vec<Option<String>> = hosts
                .iter()
                .map(|h| h.as_ref().unwrap().runner_of("ledger"))
                .collect();
            match &seen[0] {
                Some(r) if seen.iter().all(|s| s.as_ref() == Some(r)) => {
                    runner = r.clone();
                    true
                }
                _ => false,
            }
        },
    );
    let at = ["host-a", "host-b", "host-c"]
        .iter()
        .position(|h| *h == runner)
        .unwrap();
    for (i, h) in hosts.iter().enumerate() {
        let listed = h
            .as_ref()
            .unwrap()
            .get("/components")
            .contains("\"ledger\"");
        assert_eq!(listed, i == at, "host {i} lists ledger: {listed}");
    }
    let others: Vec<usize> = (0..3).filter(|&i| i != at).collect();
    for i in 0..20 {
        let h = hosts[others[i % 2]].as_ref().unwrap();
        assert_eq!(
            h.send_once("ledger", "incr", &format!("l{i}")).map(|r| r.0),
            Some(202)
        );
    }
    let (x, y) = (others[0], others[1]);
    assert_eq!(
        hosts[y].as_ref().unwrap().ask("ledger", "get"),
        (200, "20".into())
    );
    let killed = Instant::now();
    drop(hosts[at].take());
    let (b, c) = (hosts[x].take().unwrap(), hosts[y].take().unwrap());
    let first = loop {
        let r = c.ask("ledger", "get");
        if r.0 == 200 || killed.elapsed() > Duration::from_secs(15) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let failover = killed.elapsed();
    eprintln!(
        "declared actor fail-over: SIGKILL to the first answer from a survivor in {failover:?}"
    );
    assert_eq!(first, (200, "20".into()), "after {failover:?}");
    assert!(failover < Duration::from_secs(5), "{failover:?}");
    let now = c.runner_of("ledger").unwrap();
    assert!(now != runner && now.starts_with("host-"), "{now}");
    assert_eq!(b.ask("ledger", "incr"), (200, "21".into()));
    assert_eq!(c.ask("ledger", "get"), (200, "21".into()));
}

/// The NATS server SIGKILLed and restarted during steady traffic to durable
/// counters: a send meets it either held (its log append is retried with the
/// same id until NATS is back) or refused (never acknowledged then, and sent
/// again with its id until acknowledged); nothing acknowledged is lost or
/// applied twice.
#[test]
fn durable_counters_lose_nothing_acknowledged_when_the_nats_server_restarts() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Host::start(
        &durable_counter_system(dir.path(), "a"),
        &nats.url,
        "host-a",
    );
    let b = Host::start(
        &durable_counter_system(dir.path(), "b"),
        &nats.url,
        "host-b",
    );
    eventually("a sees b", Duration::from_secs(5), || {
        a.health_of("host-b") == "alive" && b.health_of("host-a") == "alive"
    });
    const KEYS: usize = 4;
    const ROUNDS: usize = 40;
    let sent = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    // Every try: when it started and ended, and whether it was acknowledged.
    let tries = std::sync::Mutex::new(Vec::<(Instant, Instant, bool)>::new());
    let mut outage = None;
    std::thread::scope(|s| {
        for k in 0..KEYS {
            let (a, b, sent, refused, tries) = (&a, &b, &sent, &refused, &tries);
            s.spawn(move || {
                let id = format!("kv_counter%2Fn{k}");
                for round in 0..ROUNDS {
                    let mid = format!("n{k}-{round}");
                    let deadline = Instant::now() + Duration::from_secs(40);
                    let h = [a, b][(k + round) % 2];
                    loop {
                        let t = Instant::now();
                        let r = h.send_once(&id, "incr", &mid);
                        let ok = matches!(r, Some((202, _)));
                        tries.lock().unwrap().push((t, Instant::now(), ok));
                        match r {
                            Some((202, _)) => break,
                            other => {
                                refused.fetch_add(1, Ordering::Relaxed);
                                assert!(
                                    Instant::now() < deadline,
                                    "{id} {mid}: never acknowledged: {other:?}"
                                );
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        while sent.load(Ordering::Relaxed) < KEYS * ROUNDS / 3 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let down = Instant::now();
        nats.restart(Duration::from_secs(1));
        outage = Some((down, Instant::now()));
    });
    // The tries in flight while NATS was down: held until it was back
    // (acknowledged after), or refused (and sent again).
    let (down, up) = outage.unwrap();
    let met: Vec<bool> = tries
        .lock()
        .unwrap()
        .iter()
        .filter(|(start, end, _)| *start <= up && *end >= down)
        .map(|t| t.2)
        .collect();
    let held = met.iter().filter(|ok| **ok).count();
    eprintln!(
        "while NATS was down: {held} sends held until it was back, {} refused (then sent again); \
         {} refused in all",
        met.len() - held,
        refused.load(Ordering::Relaxed)
    );
    assert!(
        !met.is_empty(),
        "no send met the restart: the test proved nothing"
    );
    for k in 0..KEYS {
        let id = format!("kv_counter%2Fn{k}");
        for h in [&a, &b] {
            assert_eq!(h.ask(&id, "get"), (200, ROUNDS.to_string()), "{id}");
        }
    }
}

/// A host frozen (SIGSTOP) past `dead-after` is declared dead and its
/// durable counter moves to a survivor; thawed (SIGCONT), its stale
/// activation passivates as soon as it sees the move (and its log would
/// refuse an append meanwhile: one writer per actor, tested in
/// `cluster::durable`), and what is sent through it goes to the new owner.
/// Every acknowledged message counts once.
#[test]
fn a_frozen_host_that_comes_back_cannot_write_behind_the_new_owner() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let a = Host::start(
        &durable_counter_system(dir.path(), "a"),
        &nats.url,
        "host-a",
    );
    let b = Host::start(
        &durable_counter_system(dir.path(), "b"),
        &nats.url,
        "host-b",
    );
    eventually("a sees b", Duration::from_secs(5), || {
        a.health_of("host-b") == "alive" && b.health_of("host-a") == "alive"
    });
    let hosts = [("host-a", &a), ("host-b", &b)];
    // A counter placed on host-a.
    let key = (0..64)
        .map(|k| format!("z{k}"))
        .find(|k| {
            let id = format!("kv_counter%2F{k}");
            assert_eq!(a.send_once(&id, "incr", "first").map(|r| r.0), Some(202));
            resident_on(&hosts, &format!("kv_counter/{k}")) == ["host-a"]
        })
        .expect("some counter lands on host-a");
    let id = format!("kv_counter%2F{key}");
    let send = |h: &Host, mid: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match h.send_once(&id, "incr", mid) {
                Some((202, _)) => return,
                other => {
                    assert!(Instant::now() < deadline, "{mid}: {other:?}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    };
    for i in 0..4 {
        send(&a, &format!("a{i}"));
    }
    let pid = a.child.id().to_string();
    let signal = |s: &str| {
        assert!(Command::new("kill")
            .args([s, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    eventually("host-a seen dead", Duration::from_secs(5), || {
        b.health_of("host-a") == "dead"
    });
    // The counter moves to host-b with its five.
    for i in 0..5 {
        send(&b, &format!("b{i}"));
    }
    assert_eq!(
        resident_on(&[("host-b", &b)], &format!("kv_counter/{key}")),
        ["host-b"]
    );
    signal("-CONT");
    // Through host-a, which still has its old activation.
    for i in 0..3 {
        send(&a, &format!("c{i}"));
    }
    // Thawed, host-a did not take it back: it judged nobody dead from its
    // stale view (it was paused itself), so the counter stayed on host-b.
    assert_eq!(
        resident_on(&hosts, &format!("kv_counter/{key}")),
        ["host-b"]
    );
    let want = (1 + 4 + 5 + 3).to_string();
    assert_eq!(b.ask(&id, "get"), (200, want.clone()));
    eventually(
        "host-a reads the new owner's count",
        Duration::from_secs(10),
        || a.ask(&id, "get") == (200, want.clone()),
    );
}
