//! Two hosts on one `nats-server -js` (started here on a loopback port; the
//! bench says so and stops when `nats-server` is not installed), each an
//! `ActorSystem` joined with `Cluster::join`, in one process:
//!
//! - `cluster/request-reply`: a guest on host A asks a guest on host B
//!   (`chain b N` in `actor-probe`: request, reply, callback, next), beside
//!   the same chain to a guest on host A itself, and beside a bare
//!   `async-nats` request → reply between two connections (a responder that
//!   answers with the request's bytes): the floor the cluster stands on.
//!   p50/p99 as the guest measured them are printed.
//! - `cluster/messages`: messages per second from a guest on A to a guest on
//!   B (`flood b N`), end to end until B has handled them all.
//! - `cluster/durable-messages`: acknowledged sends per second from host A's
//!   embedding API to durable `kv_counter` actors (their writes and
//!   mailboxes in the cluster's JetStream log), 16 counters, 64 sends in
//!   flight: to counters placed on B (each ack crosses hosts after B's log
//!   append) beside counters placed on A itself (log append, no hop).
//! - fail-over, printed once at the end: host B abandons the cluster (as a
//!   crash would, `Cluster::abandon`, `dead-after` 1.5 s) and the time until
//!   a durable counter it held answers from host A with its count rebuilt.
//!
//! Run with `cargo bench -p airssys-wasm --bench cluster`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airssys_wasm::cluster::{Cluster, ClusterOptions};
use airssys_wasm::security::pattern::NamePatterns;
use airssys_wasm::{
    ActorId, ActorOptions, ActorSpec, ActorSystem, Capabilities, EngineConfig, ExecutionContext,
    Message,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::StreamExt;

/// The server and its store (removed with it).
struct Nats(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nats() -> Option<(Nats, String)> {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((Nats(child, dir), format!("nats://127.0.0.1:{port}")))
}

async fn wait_handled(system: &ActorSystem, id: &str, n: u64) {
    while system.status(id).unwrap().handled < n {
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
}

async fn host(
    url: &str,
    id: &str,
    actors: &[&str],
    storage: &airssys_wasm::storage::Storage,
) -> (ActorSystem, Cluster) {
    let engine = airssys_wasm::Engine::new(EngineConfig::default()).unwrap();
    let probe = engine.load_file(common::component("actor_probe")).unwrap();
    let counter = engine.load_file(common::component("kv_counter")).unwrap();
    let mut caps = Capabilities::default();
    caps.send = NamePatterns::new(&["**"]).unwrap();
    let mut b = ActorSystem::builder().clustered(true).virtual_actors(
        counter,
        ExecutionContext::new("kv_counter").with_storage(storage.clone()),
        ActorOptions::default()
            .durable(true)
            .health(None)
            .mailbox_capacity(1 << 16),
    );
    for a in actors {
        b = b.actor(
            ActorSpec::new(
                ActorId::new(a).unwrap(),
                probe.clone(),
                ExecutionContext::new(*a).with_capabilities(caps.clone()),
            )
            .with_options(
                ActorOptions::default()
                    .health(None)
                    .mailbox_capacity(1 << 20),
            ),
        );
    }
    let system = b.start().await.unwrap();
    let mut options = ClusterOptions::new(url, id);
    options.heartbeat = Duration::from_millis(250);
    options.dead_after = Duration::from_millis(1500);
    let cluster = Cluster::join(&system, options).await.unwrap();
    (system, cluster)
}

fn bench(c: &mut Criterion) {
    let Some((_server, url)) = nats() else {
        eprintln!("cluster benchmarks skipped: nats-server is not installed (apt-get install nats-server)");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let open = |d: &str| {
        airssys_wasm::storage::Storage::open(
            data.path().join(d),
            airssys_wasm::storage::StorageLimits::default(),
        )
        .unwrap()
    };
    let (sa, sb) = (open("a"), open("b"));
    let (a, ca) = rt.block_on(host(&url, "bench-a", &["a", "near"], &sa));
    let (b, cb) = rt.block_on(host(&url, "bench-b", &["b"], &sb));
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while a.hosts().iter().filter(|h| !h.actors.is_empty()).count() < 2 {
            assert!(Instant::now() < deadline, "hosts did not see each other");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let mut group = c.benchmark_group("cluster/request-reply");
    for target in ["b", "near"] {
        let name = if target == "b" {
            "cross-host"
        } else {
            "same-host"
        };
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                rt.block_on(async {
                    let base = a.status("a").unwrap().handled;
                    let start = Instant::now();
                    a.send("a", Message::new("b", format!("chain {target} {iters}")))
                        .await
                        .unwrap();
                    wait_handled(&a, "a", base + 1 + iters).await;
                    start.elapsed()
                })
            })
        });
        let rtt = rt
            .block_on(a.request("a", Message::new("b", "rtt?"), Duration::from_secs(5)))
            .unwrap()
            .unwrap_or_default();
        let rtt = String::from_utf8_lossy(&rtt).into_owned();
        let p: Vec<&str> = rtt.split(' ').collect();
        if p.len() == 3 {
            eprintln!(
                "{name} request-reply measured by the guest over {} round trips: p50 {} ns, p99 {} ns",
                p[0], p[1], p[2]
            );
        }
    }
    // The floor: a bare async-nats request → reply between two connections.
    let (req, _responder) = rt.block_on(async {
        let req = async_nats::connect(&url).await.unwrap();
        let rsp = async_nats::connect(&url).await.unwrap();
        let mut sub = rsp.subscribe("bench.echo").await.unwrap();
        rsp.flush().await.unwrap();
        let task = tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                if let Some(reply) = m.reply {
                    let _ = rsp.publish(reply, m.payload).await;
                }
            }
        });
        // Until the server routes to the responder (a busy machine can
        // answer the first requests with "no responders").
        let deadline = Instant::now() + Duration::from_secs(10);
        while req.request("bench.echo", "ready?".into()).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the bare responder never answered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (req, task)
    });
    let mut lat = Vec::new();
    group.bench_function("bare-async-nats", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let t = Instant::now();
                    req.request("bench.echo", "whoami".into()).await.unwrap();
                    lat.push(t.elapsed().as_nanos() as u64);
                }
                start.elapsed()
            })
        })
    });
    lat.sort_unstable();
    if !lat.is_empty() {
        eprintln!(
            "bare async-nats request-reply over {} round trips: p50 {} ns, p99 {} ns",
            lat.len(),
            lat[lat.len() / 2],
            lat[(lat.len() * 99 / 100).min(lat.len() - 1)]
        );
    }
    group.finish();

    let mut group = c.benchmark_group("cluster/messages");
    const N: u64 = 2_000;
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    for (name, system, target) in [("cross-host", &b, "b"), ("same-host", &a, "near")] {
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let base = system.status(target).unwrap().handled;
                        let start = Instant::now();
                        a.send("a", Message::new("b", format!("flood {target} {N}")))
                            .await
                            .unwrap();
                        wait_handled(system, target, base + N).await;
                        total += start.elapsed();
                    }
                    total
                })
            })
        });
    }
    group.finish();

    // Durable counters, placed by the cluster: 16 on each host.
    let (mut on_a, mut on_b) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for k in 0..256 {
            if on_a.len() >= 16 && on_b.len() >= 16 {
                break;
            }
            let id = format!("kv_counter/bench{k}");
            a.send(&id, Message::new("host", "incr")).await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if a.status(&id).is_some() {
                    on_a.push(id);
                    break;
                }
                if b.status(&id).is_some() {
                    on_b.push(id);
                    break;
                }
                assert!(Instant::now() < deadline, "{id} was placed nowhere");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    on_a.truncate(16);
    on_b.truncate(16);
    let mut group = c.benchmark_group("cluster/durable-messages");
    const D: u64 = 512;
    group.throughput(Throughput::Elements(D));
    group.sample_size(10);
    for (name, ids) in [("cross-host", &on_b), ("same-host", &on_a)] {
        group.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        // 64 acknowledged sends in flight at a time.
                        futures_util::stream::iter(0..D)
                            .for_each_concurrent(64, |i| {
                                let (a, id) = (&a, &ids[i as usize % ids.len()]);
                                async move {
                                    a.send(id, Message::new("host", "incr")).await.unwrap();
                                }
                            })
                            .await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
    // Fail-over: B stops as a crash would; A's next request to a counter
    // B held is answered once A sees B dead and rebuilds the counter.
    let moved = on_b[0].clone();
    let count_before = rt
        .block_on(a.request(&moved, Message::new("host", "get"), Duration::from_secs(5)))
        .unwrap()
        .unwrap_or_default();
    let killed = Instant::now();
    cb.abandon();
    let answer = rt.block_on(async {
        loop {
            let r = a
                .request(&moved, Message::new("host", "get"), Duration::from_secs(1))
                .await;
            if let Ok(Some(r)) = r {
                if a.status(&moved).is_some() {
                    break r;
                }
            }
            assert!(killed.elapsed() < Duration::from_secs(20), "no fail-over");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    assert_eq!(answer, count_before, "the count moved with it");
    eprintln!(
        "fail-over of a durable counter (dead-after 1.5 s): {:?} from the crash to its first answer on the survivor, count {} rebuilt",
        killed.elapsed(),
        String::from_utf8_lossy(&answer)
    );
    rt.block_on(async {
        ca.leave().await;
        a.shutdown().await;
        b.shutdown().await;
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
