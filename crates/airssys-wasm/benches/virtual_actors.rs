//! 100,000 addressable actors of one component in one process: each is sent
//! one message (activated from the `InstancePre`, handled, replied to) while at
//! most `max_active` hold an instance; the rest are passivated, least recently
//! used first. Prints the time to reach them all and the peak RSS.
//!
//! `cargo bench -p airssys-wasm --bench virtual_actors` runs 100,000 actors;
//! under `cargo test` (no `--bench` argument) it runs 2,000 as a smoke test.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use airssys_wasm::{
    ActorOptions, ActorState, ActorSystem, Engine, EngineConfig, ExecutionContext, Message,
};

/// Peak resident set size of this process, from /proc (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = if full { 100_000 } else { 2_000 };
    let max_active = 1_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = Engine::new(
        EngineConfig::default()
            .cache_dir(None)
            .pool_instances(max_active as u32 + 64),
    )
    .unwrap();
    let counter = engine.load_file(common::component("counter")).unwrap();
    rt.block_on(async {
        let system = ActorSystem::builder()
            .virtual_actors(
                counter,
                ExecutionContext::new("counter"),
                ActorOptions::default().health(None),
            )
            .max_active(max_active)
            .start()
            .await
            .unwrap();
        let rss_before = peak_rss_mib().unwrap_or(0.0);
        let start = Instant::now();
        // Up to 256 requests in flight at once, as many clients would.
        let system = std::sync::Arc::new(system);
        let mut tasks = tokio::task::JoinSet::new();
        let workers = 256;
        for w in 0..workers {
            let system = system.clone();
            tasks.spawn(async move {
                let mut k = w;
                while k < n {
                    let id = format!("counter/user-{k}");
                    let reply = system
                        .request(&id, Message::new("bench", "1"), Duration::from_secs(60))
                        .await
                        .unwrap_or_else(|e| panic!("{id}: {e}"));
                    assert_eq!(reply.as_deref(), Some(&b"1"[..]), "{id}");
                    k += workers;
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        let elapsed = start.elapsed();
        let actors = system.actors();
        let running = actors.iter().filter(|a| a.state == ActorState::Running).count();
        // Passivated ones leave the registry: what stays is what holds an instance.
        assert!(actors.len() <= n, "{} registered", actors.len());
        assert!(running <= max_active, "{running} resident");
        println!(
            "virtual actors: {n} reached in {:.2} s ({:.1} µs each, {:.0}/s); resident at the end {running}, \
             registered {}; peak RSS {:.0} MiB (before {:.0} MiB); dead letters {}",
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / n as f64,
            n as f64 / elapsed.as_secs_f64(),
            actors.len(),
            peak_rss_mib().unwrap_or(0.0),
            rss_before,
            system.stats().dead_letters,
        );
        if let Ok(system) = std::sync::Arc::try_unwrap(system) {
            system.shutdown().await;
        }
    });
}
