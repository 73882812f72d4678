//! Hostile guests against the host's own budgets: what a guest makes the host
//! hold or do for it (timers, queued messages, subscriptions, replies, dead
//! letters, audit lines, restarts, shutdown) is charged to that guest and
//! refused with a typed error when its budget is spent, while a bystander
//! keeps answering. The guest is `examples/components/hostile`.

mod common;

use std::time::{Duration, Instant};

use airssys_wasm::security::pattern::NamePatterns;
use airssys_wasm::{
    ActorId, ActorOptions, ActorSpec, ActorSystem, AuditLog, Capabilities, Component,
    DeadLetterReason, Error, ExecutionContext, HostLimits, Message, ResourceLimits, SystemEvent,
    Verdict,
};

fn loaded(name: &'static str) -> Component {
    static C: std::sync::OnceLock<(airssys_wasm::Engine, Component, Component)> =
        std::sync::OnceLock::new();
    let (_, hostile, probe) = C.get_or_init(|| {
        let e = common::engine();
        let h = e.load_file(common::component("hostile")).unwrap();
        let p = e.load_file(common::component("actor_probe")).unwrap();
        (e, h, p)
    });
    match name {
        "hostile" => hostile.clone(),
        _ => probe.clone(),
    }
}

use common::open_caps;

fn limits(host: HostLimits) -> ResourceLimits {
    let mut l = ResourceLimits::default().with_timeout(Duration::from_secs(5));
    l.host = host;
    l
}

fn hostile_ctx(host: HostLimits) -> ExecutionContext {
    ExecutionContext::new("hostile")
        .with_capabilities(open_caps())
        .with_limits(limits(host))
}

fn hostile(id: &str, host: HostLimits) -> ActorSpec {
    ActorSpec::new(
        ActorId::new(id).unwrap(),
        loaded("hostile"),
        hostile_ctx(host),
    )
}

fn bystander() -> ActorSpec {
    ActorSpec::new(
        ActorId::new("bystander").unwrap(),
        loaded("probe"),
        ExecutionContext::new("probe").with_capabilities(open_caps()),
    )
}

fn mib(n: u64) -> HostLimits {
    HostLimits {
        held_bytes: n << 20,
        ..HostLimits::default()
    }
}

async fn ask(system: &ActorSystem, id: &str, text: &str) -> String {
    let r = system
        .request(id, Message::new("host", text), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{id} <- {text}: {e}"));
    String::from_utf8(r.unwrap_or_default()).unwrap()
}

/// The bystander answers, and fast.
async fn bystander_answers(system: &ActorSystem) {
    let t = Instant::now();
    assert_eq!(ask(system, "bystander", "still here").await, "still here");
    // Generous for a busy machine: a pinned core or a flooded host takes seconds.
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_are_charged_whole_to_the_senders_host_budget() {
    let system = ActorSystem::builder()
        .actor(hostile("h", mib(1)))
        .actor(bystander())
        .start()
        .await
        .unwrap();
    // 1000 timers of 64 KiB would make the host hold 64 MiB; the budget is 1 MiB.
    let r = ask(&system, "h", "timers 1000 65536").await;
    let armed: u64 = r.split(' ').next().unwrap().parse().unwrap();
    assert!((10..16).contains(&armed), "{r}");
    assert!(
        r.contains("Unavailable") && r.contains("host budget exhausted"),
        "{r}"
    );
    assert!(r.contains("limits.host-bytes"), "{r}");
    let s = system.status("h").unwrap();
    assert!(s.host.held_bytes <= 1 << 20, "{:?}", s.host);
    assert!(s.host.held_bytes >= armed * 65536, "{:?}", s.host);
    assert_eq!(s.host.refused, 1);
    bystander_answers(&system).await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_are_charged_until_taken_and_released_after() {
    let system = ActorSystem::builder()
        .actor(hostile("h", mib(1)))
        .actor(bystander())
        .start()
        .await
        .unwrap();
    // Its own mailbox is not drained while it floods it: every message stays held.
    let r = ask(&system, "h", "flood h 1000 65536").await;
    let sent: u64 = r.split(' ').next().unwrap().parse().unwrap();
    assert!((10..16).contains(&sent), "{r}");
    assert!(r.contains("host budget exhausted"), "{r}");
    // Once it has handled them, the host holds nothing for it.
    eventually("released", || {
        system.status("h").unwrap().host.held_bytes == 0
    })
    .await;
    bystander_answers(&system).await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_cap_counts_metadata_content_type_and_target_not_just_the_payload() {
    let system = ActorSystem::builder()
        .actor(
            hostile("h", HostLimits::default())
                .with_options(ActorOptions::default().max_message_bytes(4096)),
        )
        .actor(bystander())
        .start()
        .await
        .unwrap();
    assert_eq!(ask(&system, "h", "meta bystander 100").await, "1 err none");
    let r = ask(&system, "h", "meta bystander 2000000").await;
    assert_eq!(r, "0 err MessageTooLarge(4096)");
    let r = ask(&system, "h", "ctype bystander 5000").await;
    assert_eq!(r, "0 err MessageTooLarge(4096)");
    // A target name longer than any actor id is refused before it is checked or audited.
    let r = ask(&system, "h", "long-target 262144 3").await;
    assert!(
        r.starts_with("3 err Invalid(\"target of 262144 bytes: at most 256\""),
        "{r}"
    );
    bystander_answers(&system).await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_published_copy_is_charged_to_the_publisher() {
    let listener = bystander().with_options(ActorOptions::default().subscribe("feed.*"));
    let system = ActorSystem::builder()
        .actor(hostile(
            "h",
            HostLimits {
                held_bytes: 64 << 10,
                ..HostLimits::default()
            },
        ))
        .actor(listener)
        .start()
        .await
        .unwrap();
    assert_eq!(ask(&system, "h", "publish feed.1 1024").await, "1 err none");
    let r = ask(&system, "h", "publish feed.1 100000").await;
    assert!(
        r.starts_with("0 err Unavailable(\"host budget exhausted"),
        "{r}"
    );
    assert_eq!(system.status("h").unwrap().host.refused, 1);
    bystander_answers(&system).await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_capped_per_actor() {
    let host = HostLimits {
        subscriptions: 10,
        ..HostLimits::default()
    };
    let system = ActorSystem::builder()
        .actor(hostile("h", host))
        .actor(bystander())
        .start()
        .await
        .unwrap();
    assert_eq!(
        ask(&system, "h", "subs 20000").await,
        "10 err TooManyPending(10)"
    );
    let s = system.status("h").unwrap();
    assert_eq!(s.host.subscriptions, 10);
    assert!(s.host.held_bytes > 0);
    // Publishing in the system stays fast.
    let t = Instant::now();
    for _ in 0..100 {
        system.publish("feed.3", Message::new("host", "x"));
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    bystander_answers(&system).await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_larger_than_the_requester_accepts_is_a_failure_not_its_crash() {
    let system = ActorSystem::builder()
        .actor(
            hostile("big", HostLimits::default())
                .with_options(ActorOptions::default().max_message_bytes(8 << 20)),
        )
        .actor(
            hostile("asker", HostLimits::default())
                .with_options(ActorOptions::default().max_message_bytes(64 << 10)),
        )
        .actor(bystander())
        .start()
        .await
        .unwrap();
    let mut events = system.events();
    // A 5 MB reply to an actor that accepts 64 KiB: its callback says why.
    let corr = ask(&system, "asker", "request big 5000 reply 5000000").await;
    assert!(corr.parse::<u64>().is_ok(), "{corr}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = ask(&system, "asker", "log?").await;
        if log.contains("cb:") || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        log.contains(&format!("cb:{corr}:failed:reply of 5000"))
            && log.contains("exceeds the requester's cap of 65536 bytes"),
        "{log}"
    );
    // The host asking: a reply over the replier's own cap is refused.
    let e = system
        .request(
            "asker",
            Message::new("host", "reply 100000"),
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ReplyTooLarge {
                bytes: 100_000,
                limit: 65_536,
                ..
            }
        ),
        "{e}"
    );
    let dl = system.dead_letters();
    let d = dl
        .iter()
        .rev()
        .find(|d| d.payload_bytes == 100_000)
        .expect("a dead letter");
    assert!(
        matches!(d.reason, DeadLetterReason::TooLarge { .. }),
        "{:?}",
        d.reason
    );
    assert!(d.message.payload.len() <= 256, "only a prefix is kept");
    assert_eq!(system.status("big").unwrap().restarts, 0);
    assert_eq!(system.status("asker").unwrap().restarts, 0);
    while let Ok(e) = events.try_recv() {
        assert!(!matches!(e, SystemEvent::Crashed { .. }), "{e:?}");
    }
    bystander_answers(&system).await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_actor_whose_initialize_traps_backs_off_and_its_messages_are_dead_letters() {
    let ctx = hostile_ctx(HostLimits::default()).with_config("trap-init", "1");
    let system = ActorSystem::builder()
        .virtual_actors(loaded("hostile"), ctx, ActorOptions::default())
        .actor(bystander())
        .start()
        .await
        .unwrap();
    let mut events = system.events();
    system
        .send("hostile/k", Message::new("host", "hi"))
        .await
        .unwrap();
    // Three attempts (10 ms, 20 ms apart), then the message is a dead letter.
    eventually("the poison message dead-lettered", || {
        system.dead_letters().iter().any(|d| {
            matches!(&d.reason, DeadLetterReason::ActivationFailed { attempts: 3, reason } if reason.contains("trap-init"))
        })
    })
    .await;
    // More messages: each activation waits out the backoff (up to 1 s), so
    // the crash rate stays bounded instead of pinning a core.
    for _ in 0..50 {
        let _ = system
            .send("hostile/k", Message::new("host", "again"))
            .await;
    }
    bystander_answers(&system).await;
    // Not a wait for an event: the window the crash rate is measured over.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut crashes = 0;
    while let Ok(e) = events.try_recv() {
        if matches!(e, SystemEvent::Crashed { .. }) {
            crashes += 1;
        }
    }
    assert!((3..=10).contains(&crashes), "{crashes} crashes in ~0.6 s");
    let s = system.status("hostile/k").unwrap();
    assert!(
        s.restarts >= 2,
        "failed re-activations count as restarts: {s:?}"
    );
    // Shutdown ends promptly although the actor is in its backoff.
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), system.shutdown())
        .await
        .expect("shutdown ends");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_shutdown_is_cut_at_the_shutdown_timeout() {
    let mut ctx = hostile_ctx(HostLimits::default()).with_config("spin-shutdown", "1");
    // A long call timeout: shutdown() must not get it.
    ctx = ctx.with_limits(limits(HostLimits::default()).with_timeout(Duration::from_secs(20)));
    let options = ActorOptions {
        shutdown_timeout: Duration::from_millis(300),
        ..ActorOptions::default()
    };
    let spec =
        ActorSpec::new(ActorId::new("h").unwrap(), loaded("hostile"), ctx).with_options(options);
    let system = ActorSystem::builder().actor(spec).start().await.unwrap();
    assert_eq!(ask(&system, "h", "ping").await, "ping");
    let t = Instant::now();
    system.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheap_calls_and_repeated_denials_do_not_flood_the_audit_log() {
    let audit = AuditLog::in_memory();
    let mut caps = Capabilities::default().with_audit(audit.clone());
    caps.send = NamePatterns::new(&["bystander"]).unwrap();
    let ctx = ExecutionContext::new("hostile")
        .with_capabilities(caps)
        .with_limits(limits(HostLimits::default()));
    let system = ActorSystem::builder()
        .actor(ActorSpec::new(
            ActorId::new("h").unwrap(),
            loaded("hostile"),
            ctx,
        ))
        .actor(bystander())
        .start()
        .await
        .unwrap();
    ask(&system, "h", "clock 100000").await;
    // 1000 denied sends to a 200-byte name.
    let r = ask(&system, "h", "long-target 200 1000").await;
    assert!(r.starts_with("1000 err CapabilityDenied"), "{r}");
    audit.flush();
    let events = audit.events();
    let clocks: Vec<_> = events
        .iter()
        .filter(|e| e.function == "services.monotonic-nanos")
        .collect();
    assert!(
        clocks.len() <= 2,
        "written once, then counted: {}",
        clocks.len()
    );
    // A summary line stands for the decisions it left out, not one more.
    let written = clocks.iter().filter(|e| e.suppressed == 0).count() as u64;
    assert_eq!(
        clocks.iter().map(|e| e.suppressed).sum::<u64>() + written,
        100_000
    );
    let denials: Vec<_> = events
        .iter()
        .filter(|e| e.decision == Verdict::Deny && e.function == "messaging.send")
        .collect();
    assert!(denials.len() <= 25, "{}", denials.len());
    assert!(
        denials.iter().any(|e| e.suppressed > 0),
        "a summary says what was left out"
    );
    let counted = audit
        .counts()
        .into_iter()
        .find(|(c, f, v, _)| c == "h" && f == "messaging.send" && *v == Verdict::Deny)
        .map(|(.., n)| n);
    assert_eq!(counted, Some(1000));
    let bytes: usize = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap().len())
        .sum();
    assert!(bytes < 64 << 10, "{bytes} bytes of audit");
    bystander_answers(&system).await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_virtual_actors_leave_the_registry() {
    let options = ActorOptions::default().passivate_after(Duration::from_millis(20));
    let system = ActorSystem::builder()
        .virtual_actors(
            loaded("probe"),
            ExecutionContext::new("probe").with_capabilities(open_caps()),
            options,
        )
        .start()
        .await
        .unwrap();
    for k in 0..50 {
        let id = format!("actor_probe/k{k}");
        assert_eq!(ask(&system, &id, "whoami").await, id);
    }
    eventually("reclaimed", || system.actors().is_empty()).await;
    // And a reclaimed actor comes back on its next message.
    assert_eq!(
        ask(&system, "actor_probe/k7", "whoami").await,
        "actor_probe/k7"
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_ids_cannot_be_declared() {
    let spec = ActorSpec::new(
        ActorId::new("host").unwrap(),
        loaded("probe"),
        ExecutionContext::new("probe"),
    );
    let e = ActorSystem::builder()
        .actor(spec)
        .start()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("actor id host is reserved"), "{e}");
}

#[test]
fn component_files_are_size_and_type_checked_before_they_are_read() {
    let engine = common::engine();
    let e = engine.load_file("/dev/zero").unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.wasm");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(airssys_wasm::MAX_COMPONENT_FILE_BYTES + 1)
        .unwrap();
    let e = engine.load_file(&big).unwrap_err();
    assert!(
        e.to_string().contains("larger than the 512 MiB limit"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_toml_limits_are_checked_when_read_and_the_manifest_mailbox_is_used() {
    use airssys_wasm::system::config::SystemConfig;
    let dir = tempfile::tempdir().unwrap();
    let hostile = common::component("hostile");
    std::fs::write(
        dir.path().join("h.toml"),
        "[component]\nname = \"h\"\nversion = \"1\"\n[limits]\nmailbox-capacity = 2\n\
         [capabilities]\nmessaging = { send = [\"**\"] }\n",
    )
    .unwrap();
    let engine = common::engine(); // a pool of 16 instances
    let mut text = format!(
        "[components.h]\npath = {:?}\nmanifest = \"h.toml\"\n",
        hostile.display().to_string()
    );
    text.push_str("[[actors]]\nid = \"h\"\ncomponent = \"h\"\n");
    let path = dir.path().join("system.toml");
    let config = SystemConfig::parse(&path, &text).unwrap();
    let policy = airssys_wasm::HostPolicy::default();
    let system = config
        .builder(&engine, &policy, &AuditLog::default(), None)
        .unwrap()
        .start()
        .await
        .unwrap();
    // Its own mailbox, capacity 2 from the manifest, fills while it floods it.
    assert_eq!(
        ask(&system, "h", "flood h 10 1").await,
        "2 err MailboxFull(\"h: mailbox full (capacity 2)\")"
    );
    system.shutdown().await;
    // More actors than the pool has slots: refused at once, with the numbers.
    for i in 0..20 {
        text.push_str(&format!("[[actors]]\nid = \"x{i}\"\ncomponent = \"h\"\n"));
    }
    let config = SystemConfig::parse(&path, &text).unwrap();
    let Err(e) = config.builder(&engine, &policy, &AuditLog::default(), None) else {
        panic!("21 actors on a 16-slot pool were accepted");
    };
    assert!(
        e.to_string()
            .contains("21 actors are declared but the engine's pool holds 16 instances"),
        "{e}"
    );
}
