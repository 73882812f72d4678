//! The admin API under load, from a loopback HTTP client:
//!
//! - `admin/request-reply`: `POST /components/echo/messages?reply=true`
//!   round trips against an `echo` actor (criterion's mean; p50/p99 of 2,000
//!   round trips are printed);
//! - `admin/fire-and-forget`: guest-to-guest messages per second (as in the
//!   `actors` bench) without and with a scraper reading `/metrics` every 100 ms,
//!   to show that observing the system does not slow it.
//!
//! Run with `cargo bench -p airssys-wasm --bench admin`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airssys_wasm::security::pattern::NamePatterns;
use airssys_wasm::system::admin;
use airssys_wasm::{
    ActorId, ActorOptions, ActorSpec, ActorSystem, Capabilities, Engine, EngineConfig,
    ExecutionContext, Message,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = Engine::new(EngineConfig::default().cache_dir(None)).unwrap();
    let echo = engine.load_file(common::component("echo")).unwrap();
    let probe = engine.load_file(common::component("actor_probe")).unwrap();
    let mut caps = Capabilities::default();
    caps.send = NamePatterns::new(&["**"]).unwrap();
    let ctx = ExecutionContext::new("bench").with_capabilities(caps);
    let quiet = ActorOptions::default()
        .health(None)
        .mailbox_capacity(1 << 22);
    let system = Arc::new(
        rt.block_on(
            ActorSystem::builder()
                .actor(ActorSpec::new(
                    ActorId::new("echo").unwrap(),
                    echo.clone(),
                    ctx.clone(),
                ))
                .actor(
                    ActorSpec::new(ActorId::new("blaster").unwrap(), probe, ctx.clone())
                        .with_options(quiet.clone()),
                )
                .actor(ActorSpec::new(ActorId::new("sink").unwrap(), echo, ctx).with_options(quiet))
                .start(),
        )
        .unwrap(),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(admin::serve(listener, system.clone(), None, async {
        let _ = stopped.await;
    }));

    let http = agent();
    let url = format!("{base}/components/echo/messages?reply=true");
    let round_trip = || {
        let mut r = http.post(&url).send(&b"ping"[..]).unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let _ = r.body_mut().read_to_vec().unwrap();
    };
    let mut group = c.benchmark_group("admin");
    group.bench_function("request-reply", |b| b.iter(round_trip));
    let mut samples: Vec<Duration> = (0..2000)
        .map(|_| {
            let t = Instant::now();
            round_trip();
            t.elapsed()
        })
        .collect();
    samples.sort();
    eprintln!(
        "admin request-reply over loopback: p50 {:?}, p99 {:?}",
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100]
    );

    const N: u64 = 20_000;
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    for scraped in [false, true] {
        let scraping = Arc::new(AtomicBool::new(scraped));
        let scraper = {
            let scraping = scraping.clone();
            let url = format!("{base}/metrics");
            std::thread::spawn(move || {
                let http = agent();
                while scraping.load(Ordering::Relaxed) {
                    let mut r = http.get(&url).call().unwrap();
                    assert_eq!(r.status().as_u16(), 200);
                    let _ = r.body_mut().read_to_vec();
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let name = if scraped {
            "fire-and-forget, /metrics every 100 ms"
        } else {
            "fire-and-forget"
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let before = system.status("sink").unwrap().handled;
                        system
                            .send("blaster", Message::new("b", format!("flood sink {N}")))
                            .await
                            .unwrap();
                        while system.status("sink").unwrap().handled < before + N {
                            tokio::time::sleep(Duration::from_micros(200)).await;
                        }
                    }
                    start.elapsed()
                })
            })
        });
        scraping.store(false, Ordering::Relaxed);
        scraper.join().unwrap();
    }
    group.finish();
    let _ = stop.send(());
    let _ = rt.block_on(server);
    rt.block_on(system.shutdown());
}

criterion_group! {
    name = admin_benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(admin_benches);
