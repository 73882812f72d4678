//! Durable actors: a message to a durable actor is in its mailbox log before
//! its send returns, and leaves it only in the transaction that commits what
//! handling it wrote. So a system lost mid-stream (its runtime torn down with
//! messages queued and in flight) loses none and applies none twice, and a
//! trap discards the call's writes and delivers the message again.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use airssys_wasm::storage::{Storage, StorageLimits};
use airssys_wasm::{
    ActorId, ActorOptions, ActorSpec, ActorSystem, DeadLetterReason, Error, ExecutionContext,
    Message,
};

fn ledger(storage: &Storage, options: ActorOptions) -> ActorSpec {
    let engine = common::engine();
    let counter = engine.load_file(common::component("kv_counter")).unwrap();
    ActorSpec::new(
        ActorId::new("ledger").unwrap(),
        counter,
        ExecutionContext::new("ledger").with_storage(storage.clone()),
    )
    .with_options(options.health(None))
}

async fn ask(system: &ActorSystem, body: &str) -> Result<String, Error> {
    system
        .request(
            "ledger",
            Message::new("host", body.as_bytes().to_vec()),
            Duration::from_secs(10),
        )
        .await
        .map(|r| String::from_utf8(r.unwrap_or_default()).unwrap())
}

/// Opens the data directory once the last system on it has let go.
fn reopen(dir: &Path) -> Storage {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Storage::open(dir, StorageLimits::default()) {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn acknowledged_messages_survive_a_lost_system_and_apply_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = 0u64;
    let mut left = 0u64;
    for round in 0..4u64 {
        let storage = reopen(dir.path());
        left += storage.mailbox_len("ledger").unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let spec = ledger(&storage, ActorOptions::default().durable(true));
        acked += rt.block_on(async {
            let system = ActorSystem::builder().actor(spec).start().await.unwrap();
            let mut n = 0;
            for _ in 0..(50 + round * 25) {
                // Acknowledged: in the log.
                system
                    .send("ledger", Message::new("host", b"incr".to_vec()))
                    .await
                    .unwrap();
                n += 1;
            }
            // Lost with messages queued and one in flight: no shutdown, no
            // drain; the runtime is torn down under it below.
            drop(system);
            n
        });
        drop(storage);
        rt.shutdown_timeout(Duration::from_secs(5));
    }
    // A last system on the same directory handles what the others left.
    let storage = reopen(dir.path());
    left += storage.mailbox_len("ledger").unwrap();
    assert!(left > 0, "some system was lost with messages unhandled");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let system = ActorSystem::builder()
            .actor(ledger(&storage, ActorOptions::default().durable(true)))
            .start()
            .await
            .unwrap();
        // `get` goes behind everything redelivered, so it sees the final count.
        assert_eq!(ask(&system, "get").await.unwrap(), acked.to_string());
        system.shutdown().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_discards_the_calls_writes_and_a_poison_message_leaves_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageLimits::default()).unwrap();
    let system = ActorSystem::builder()
        .actor(ledger(
            &storage,
            ActorOptions::default().durable(true).max_deliveries(3),
        ))
        .start()
        .await
        .unwrap();
    assert_eq!(ask(&system, "incr").await.unwrap(), "1");
    // Read-your-writes inside one durable call.
    assert_eq!(ask(&system, "incr-twice").await.unwrap(), "2 3");
    // Adds 1 and traps, three times: none of the three adds stays.
    assert!(ask(&system, "incr-then-crash").await.is_err());
    let deadline = Instant::now() + Duration::from_secs(20);
    let poison = loop {
        let found = system
            .dead_letters()
            .into_iter()
            .find(|d| matches!(d.reason, DeadLetterReason::Poison { .. }));
        if let Some(d) = found {
            break d;
        }
        assert!(Instant::now() < deadline, "{:?}", system.dead_letters());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    match &poison.reason {
        DeadLetterReason::Poison { deliveries, reason } => {
            assert_eq!(*deliveries, 3);
            assert!(reason.contains("ledger"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        poison.reason.to_string().contains("poison message"),
        "{poison:?}"
    );
    let get = loop {
        match ask(&system, "get").await {
            Ok(v) => break v,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(get, "3", "the trapping calls wrote nothing");
    system.shutdown().await;
    drop(system);
    // The poison message left the log: a new system has nothing to redeliver.
    drop(storage);
    let storage = reopen(dir.path());
    let system = ActorSystem::builder()
        .actor(ledger(&storage, ActorOptions::default().durable(true)))
        .start()
        .await
        .unwrap();
    assert_eq!(ask(&system, "get").await.unwrap(), "3");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_actor_without_storage_is_refused_at_start_by_name() {
    let engine = common::engine();
    let counter = engine.load_file(common::component("kv_counter")).unwrap();
    let spec = ActorSpec::new(
        ActorId::new("ledger").unwrap(),
        counter,
        ExecutionContext::new("ledger"),
    )
    .with_options(ActorOptions::default().durable(true));
    let err = ActorSystem::builder()
        .actor(spec)
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ledger") && err.contains("durable") && err.contains("storage"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_actors_sends_to_durable_actors_commit_with_its_call() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageLimits::default()).unwrap();
    let engine = common::engine();
    let probe = engine.load_file(common::component("actor_probe")).unwrap();
    let relay = ActorSpec::new(
        ActorId::new("relay").unwrap(),
        probe,
        ExecutionContext::new("relay")
            .with_capabilities(common::open_caps())
            .with_storage(storage.clone()),
    )
    .with_options(
        ActorOptions::default()
            .durable(true)
            .max_deliveries(2)
            .health(None),
    );
    let system = ActorSystem::builder()
        .actor(relay)
        .actor(ledger(&storage, ActorOptions::default().durable(true)))
        .start()
        .await
        .unwrap();
    for _ in 0..5 {
        system
            .send("relay", Message::new("host", b"send ledger incr".to_vec()))
            .await
            .unwrap();
    }
    // Sends, then traps, on each of its two deliveries: neither send stays.
    system
        .send(
            "relay",
            Message::new("host", b"send-then-panic ledger incr".to_vec()),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !system
        .dead_letters()
        .iter()
        .any(|d| matches!(d.reason, DeadLetterReason::Poison { deliveries: 2, .. }))
    {
        assert!(Instant::now() < deadline, "{:?}", system.dead_letters());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The relay's commits put its sends in the ledger's log; `get` queues behind them.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if ask(&system, "get").await.ok().as_deref() == Some("5") {
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(storage.mailbox_len("relay").unwrap(), 0);
    assert_eq!(storage.mailbox_len("ledger").unwrap(), 0);
    system.shutdown().await;
}

fn relay(storage: &Storage) -> ActorSpec {
    let engine = common::engine();
    let probe = engine.load_file(common::component("actor_probe")).unwrap();
    ActorSpec::new(
        ActorId::new("relay").unwrap(),
        probe,
        ExecutionContext::new("relay")
            .with_capabilities(common::open_caps())
            .with_storage(storage.clone()),
    )
    .with_options(ActorOptions::default().durable(true).health(None))
}

async fn ask_relay(system: &ActorSystem, body: &str) -> String {
    let r = system
        .request(
            "relay",
            Message::new("host", body.as_bytes().to_vec()),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    String::from_utf8(r.unwrap_or_default()).unwrap()
}

async fn wait_count(system: &ActorSystem, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = ask(system, "get").await.unwrap();
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "count {got}, want {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_durable_actors_timers_survive_a_lost_system_and_fire_once() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let storage = reopen(dir.path());
    rt.block_on(async {
        let system = ActorSystem::builder()
            .actor(relay(&storage))
            .actor(ledger(&storage, ActorOptions::default().durable(true)))
            .start()
            .await
            .unwrap();
        let soon: u64 = ask_relay(&system, "after ledger 50 incr")
            .await
            .parse()
            .unwrap();
        let late: u64 = ask_relay(&system, "after ledger 1500 incr")
            .await
            .parse()
            .unwrap();
        // Long enough to be cancelled before it is due on a loaded machine,
        // due before `late`: one not really cancelled would show below.
        let cancelled = ask_relay(&system, "after ledger 1000 incr").await;
        assert_ne!(soon, late);
        assert_eq!(
            ask_relay(&system, &format!("cancel-timer {cancelled}")).await,
            "true"
        );
        // The first fires; then the system is lost with the second armed.
        wait_count(&system, "1").await;
        drop(system);
    });
    drop(storage);
    rt.shutdown_timeout(Duration::from_secs(5));

    let storage = reopen(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let system = ActorSystem::builder()
            .actor(relay(&storage))
            .actor(ledger(&storage, ActorOptions::default().durable(true)))
            .start()
            .await
            .unwrap();
        // The late timer, re-armed from storage, fires once; the first and the
        // cancelled one never again.
        wait_count(&system, "2").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(ask(&system, "get").await.unwrap(), "2");
        // A new durable timer gets an id after the stored ones.
        let next: u64 = ask_relay(&system, "after ledger 10 incr")
            .await
            .parse()
            .unwrap();
        assert!(next > 1 << 62, "{next}");
        wait_count(&system, "3").await;
        system.shutdown().await;
    });
}

/// Hostile: a durable actor that sends without end inside one call cannot
/// make the host hold more than its budget: its uncommitted sends are charged
/// to it until the group commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_actors_uncommitted_sends_are_charged_to_its_host_budget() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageLimits::default()).unwrap();
    let mut spec = relay(&storage);
    spec.context = spec.context.with_limits(airssys_wasm::ResourceLimits {
        host: airssys_wasm::HostLimits {
            held_bytes: 64 << 10,
            ..airssys_wasm::HostLimits::default()
        },
        ..airssys_wasm::ResourceLimits::default()
    });
    let system = ActorSystem::builder()
        .actor(spec)
        .actor(ledger(&storage, ActorOptions::default().durable(true)))
        .start()
        .await
        .unwrap();
    let body = format!("flood ledger 1000000 incr 1 {}", "x".repeat(1000));
    let r = ask_relay(&system, &body).await;
    let sent: u64 = r
        .strip_prefix("sent ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{r}"));
    assert!(
        r.contains("host budget exhausted") && sent < 100,
        "stopped at the budget: {r}"
    );
    // What it did send is committed and delivered: `incr xxx…` adds 1 each.
    wait_count(&system, &sent.to_string()).await;
    assert_eq!(system.status("relay").unwrap().host.held_bytes, 0);
    system.shutdown().await;
}

/// Durable virtual actors: their logs survive a lost system, and the next
/// system activates each one that has messages waiting, in order, exactly once.
#[test]
fn durable_virtual_actors_keep_their_messages_across_a_lost_system() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::engine();
    let counter = engine.load_file(common::component("kv_counter")).unwrap();
    let build = |storage: &Storage| {
        ActorSystem::builder().virtual_actors(
            counter.clone(),
            ExecutionContext::new("kv_counter").with_storage(storage.clone()),
            ActorOptions::default()
                .durable(true)
                .health(None)
                .passivate_after(Duration::from_millis(50)),
        )
    };
    let mut acked = std::collections::HashMap::new();
    for round in 0..3u64 {
        let storage = reopen(dir.path());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let system = build(&storage).start().await.unwrap();
            for i in 0..(60 + round * 20) {
                let key = format!("kv_counter/k{}", i % 3);
                system
                    .send(&key, Message::new("host", b"incr".to_vec()))
                    .await
                    .unwrap();
                *acked.entry(key).or_insert(0u64) += 1;
                // Let some passivate and come back between messages.
                if i % 25 == 0 {
                    tokio::time::sleep(Duration::from_millis(80)).await;
                }
            }
            drop(system);
        });
        drop(storage);
        rt.shutdown_timeout(Duration::from_secs(5));
    }
    let storage = reopen(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let system = build(&storage).start().await.unwrap();
        for (key, n) in &acked {
            let got = system
                .request(
                    key,
                    Message::new("host", b"get".to_vec()),
                    Duration::from_secs(10),
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), n.to_string(), "{key}");
        }
        system.shutdown().await;
    });
}

async fn arm(system: &ActorSystem, body: &str) -> u64 {
    let r = system
        .request(
            "actor_probe/r1",
            Message::new("host", body.as_bytes().to_vec()),
            Duration::from_secs(10),
        )
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(r).unwrap().parse::<u64>().unwrap()
}

/// A durable virtual actor's timers are durable too (like Orleans reminders):
/// they fire after it passivated, and after a lost system without a message
/// to activate it.
#[test]
fn a_durable_virtual_actors_timers_fire_after_passivation_and_a_lost_system() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::engine();
    let probe = engine.load_file(common::component("actor_probe")).unwrap();
    let build = |storage: &Storage| {
        ActorSystem::builder()
            .virtual_actors(
                probe.clone(),
                ExecutionContext::new("actor_probe")
                    .with_capabilities(common::open_caps())
                    .with_storage(storage.clone()),
                ActorOptions::default()
                    .durable(true)
                    .health(None)
                    .passivate_after(Duration::from_millis(50)),
            )
            .actor(ledger(storage, ActorOptions::default().durable(true)))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let storage = reopen(dir.path());
    rt.block_on(async {
        let system = build(&storage).start().await.unwrap();
        let soon = arm(&system, "after ledger 400 incr").await;
        let late = arm(&system, "after ledger 2500 incr").await;
        assert!(soon > 1 << 62 && late > 1 << 62, "{soon} {late}");
        // It passivates (no instance) with both armed; the first still fires.
        let deadline = Instant::now() + Duration::from_secs(5);
        while system
            .status("actor_probe/r1")
            .is_some_and(|s| s.state != airssys_wasm::ActorState::Suspended)
        {
            assert!(Instant::now() < deadline, "never passivated");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        wait_count(&system, "1").await;
        drop(system);
    });
    drop(storage);
    rt.shutdown_timeout(Duration::from_secs(5));

    let storage = reopen(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Nothing is sent to actor_probe/r1: its stored timer is re-armed at start.
        let system = build(&storage).start().await.unwrap();
        wait_count(&system, "2").await;
        system.shutdown().await;
    });
}

/// Hostile: a durable message during which the host stops each time (here:
/// the system is lost while the guest spins on it) becomes a poison dead
/// letter after `max-deliveries` runs, counted in storage across them, and
/// what waits behind it is then handled.
#[test]
fn a_message_the_host_stops_during_each_time_is_poison_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs <= 6, "the spinning message was never given up");
        let storage = reopen(dir.path());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let done = rt.block_on(async {
            let system = ActorSystem::builder()
                .actor(relay(&storage))
                .actor(ledger(&storage, ActorOptions::default().durable(true)))
                .start()
                .await
                .unwrap();
            if runs == 1 {
                for body in ["send ledger incr", "spin", "send ledger incr"] {
                    system
                        .send("relay", Message::new("host", body.as_bytes().to_vec()))
                        .await
                        .unwrap();
                }
            }
            // Either the spin holds the relay (and the system is lost under
            // it), or it was given up and the message behind it got through:
            // the first incr has been handled either way.
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut count = ask(&system, "get").await.unwrap();
            while count == "0" {
                assert!(Instant::now() < deadline, "run {runs}: nothing handled");
                tokio::time::sleep(Duration::from_millis(20)).await;
                count = ask(&system, "get").await.unwrap();
            }
            // The spin's delivery starts (and is counted) right after the
            // first incr, when there is one to start: give it that moment.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let count = ask(&system, "get").await.unwrap();
            if count == "2" {
                let dead = system.dead_letters();
                assert!(
                    dead.iter().any(|d| matches!(
                        &d.reason,
                        DeadLetterReason::Poison { deliveries: 3, reason }
                            if reason.contains("host stopped")
                    )),
                    "{dead:?}"
                );
                assert_eq!(storage.mailbox_len("relay").unwrap(), 0);
                system.shutdown().await;
                return true;
            }
            assert_eq!(count, "1", "run {runs}");
            drop(system);
            false
        });
        drop(storage);
        rt.shutdown_timeout(Duration::from_secs(5));
        if done {
            break;
        }
    }
    // Fresh in run 1 (not counted), then counted in runs 2, 3 and 4: given up in run 5.
    assert_eq!(runs, 5);
}
