//! Actors, supervision and messaging through real guests (`actor_probe`,
//! `echo`, `crasher`), built from source.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use airssys_wasm::security::pattern::NamePatterns;
use airssys_wasm::{
    ActorId, ActorOptions, ActorSpec, ActorState, ActorSystem, AuditLog, Capabilities, Capability,
    Component, DeadLetterReason, Error, ExecutionContext, HealthCheck, Message, PolicyDecision,
    ResourceLimits, RestartPolicy, SecurityPolicy, Strategy, SupervisorSpec, SystemEvent, Verdict,
};

fn probe() -> Component {
    static C: std::sync::OnceLock<(airssys_wasm::Engine, Component)> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let e = common::engine();
        let c = e.load_file(common::component("actor_probe")).unwrap();
        (e, c)
    })
    .1
    .clone()
}

use common::open_caps;

fn ctx(caps: Capabilities) -> ExecutionContext {
    ExecutionContext::new("probe")
        .with_capabilities(caps)
        .with_limits(ResourceLimits::default().with_timeout(Duration::from_secs(2)))
}

fn actor(id: &str) -> ActorSpec {
    ActorSpec::new(ActorId::new(id).unwrap(), probe(), ctx(open_caps()))
}

/// A system of `actor_probe` actors with open grants, under the root.
async fn system_of(ids: &[&str]) -> ActorSystem {
    ids.iter()
        .fold(ActorSystem::builder(), |b, id| b.actor(actor(id)))
        .start()
        .await
        .unwrap()
}

fn msg(text: &str) -> Message {
    Message::new("host", text.as_bytes().to_vec())
}

async fn ask(system: &ActorSystem, id: &str, text: &str) -> String {
    let r = system
        .request(id, msg(text), Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{id} <- {text}: {e}"));
    String::from_utf8(r.unwrap_or_default()).unwrap()
}

/// Polls `f` until it holds, for at most 5 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn log_of(system: &ActorSystem, id: &str) -> String {
    ask(system, id, "log?").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_send_and_the_sender_is_set_by_the_host() {
    let system = system_of(&["a", "b"]).await;
    assert_eq!(ask(&system, "a", "hello").await, "hello");
    assert_eq!(ask(&system, "a", "whoami").await, "a");
    assert_eq!(ask(&system, "a", "sender?").await, "host");
    // a -> b, fire and forget; b records who sent it.
    assert_eq!(ask(&system, "a", "send b one").await, "ok");
    // A forged sender and trace id are overwritten by the host.
    assert_eq!(ask(&system, "a", "spoof b two").await, "ok");
    eventually("b got both", || system.status("b").unwrap().handled >= 2).await;
    let log = log_of(&system, "b").await;
    assert!(log.contains("msg:a:one"), "{log}");
    assert!(log.contains("msg:a:two"), "{log}");
    assert!(!log.contains("admin"), "{log}");
    // Request from a guest: b's handle-message result arrives at a's handle-callback.
    let corr = ask(&system, "a", "request b pong 1000").await;
    assert!(corr.parse::<u64>().is_ok(), "correlation id: {corr}");
    eventually("a's callback", || system.status("a").unwrap().handled >= 7).await;
    let log = log_of(&system, "a").await;
    assert!(
        log.contains(&format!("cb:{corr}:ok:b:pong:{corr}")),
        "{log}"
    );
    let status = system.status("a").unwrap();
    assert_eq!(status.state, ActorState::Running);
    assert_eq!(status.metadata.supervisor, "root");
    assert!(status.usage.is_some());
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_carries_the_content_type_and_metadata_set_reply_gave_it() {
    let system = system_of(&["a", "b"]).await;
    // To the embedder: ask() returns the whole reply.
    let reply = system
        .ask(
            "b",
            msg("shape 201 text/csv x-one=1 x-one=2"),
            Duration::from_secs(5),
        )
        .await
        .unwrap()
        .expect("a reply");
    assert_eq!(reply.payload, b"shaped");
    assert_eq!(reply.content_type.as_deref(), Some("text/csv"));
    assert_eq!(
        reply.metadata,
        [
            ("http.status".to_string(), "201".to_string()),
            ("http.header.x-one".to_string(), "1".to_string()),
            ("http.header.x-one".to_string(), "2".to_string()),
        ]
    );
    // A plain reply says nothing more; request() still gives the bytes.
    let plain = system
        .ask("b", msg("plain"), Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((plain.content_type, plain.metadata.len()), (None, 0));
    // A shaped reply with no payload is an empty reply, not none.
    let empty = system
        .ask("b", msg("shape-empty 404"), Duration::from_secs(5))
        .await
        .unwrap()
        .expect("shaped, so a reply");
    assert_eq!(empty.payload, b"");
    assert_eq!(empty.metadata_value("http.status"), Some("404"));
    // To another actor: the callback's message carries them (and the host's trace id).
    let corr = ask(&system, "a", "ask b 1000 shape 202 text/plain x=1").await;
    eventually("a's callback", || system.status("a").unwrap().handled >= 2).await;
    let log = log_of(&system, "a").await;
    assert!(
        log.contains(&format!(
            "cb:{corr}:ok:b:shaped:{corr}:text/plain:http.status=202,http.header.x=1"
        )),
        "{log}"
    );
    // Hostile: more metadata than a message may carry is refused, and nothing is kept.
    let big = ask(&system, "b", "shape-big 2000000").await;
    assert!(big.starts_with("err:MessageTooLarge"), "{big}");
    // Outside handle-message (here: initialize) set-reply is refused.
    system
        .spawn(ActorSpec::new(
            ActorId::new("c").unwrap(),
            probe(),
            ctx(open_caps()).with_config("shape-in-init", "1"),
        ))
        .await
        .unwrap();
    assert_eq!(ask(&system, "c", "hello").await, "hello");
    assert_eq!(
        system.status("c").unwrap().restarts,
        0,
        "initialize saw set-reply refused"
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_id_follows_a_message_across_actors() {
    let system = system_of(&["a", "b"]).await;
    // The host's message to a carries trace t-9; a asks b "trace?" (which trace
    // its message carried) and b's answer reaches a's callback.
    let m = msg("request b trace? 1000").with_metadata("trace-id", "t-9");
    let corr = String::from_utf8(
        system
            .request("a", m, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    eventually("callback", || system.status("a").unwrap().handled >= 2).await;
    let log = log_of(&system, "a").await;
    assert!(log.contains(&format!("cb:{corr}:ok:b:t-9:{corr}")), "{log}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_and_cancel_reach_the_guest_correctly() {
    let system = system_of(&["a", "slow"]).await;
    // `slow` is kept busy spinning (until its 2 s timeout); a's 100 ms request times out.
    system.send("slow", msg("spin")).await.unwrap();
    let corr = ask(&system, "a", "request slow x 100").await;
    eventually("timeout callback", || {
        system.status("a").unwrap().handled >= 2
    })
    .await;
    let log = log_of(&system, "a").await;
    assert!(log.contains(&format!("cb:{corr}:timeout")), "{log}");
    // A cancelled request brings no callback, and its late reply is discarded and counted.
    let corr2 = ask(&system, "a", "request slow y 3000").await;
    assert_eq!(ask(&system, "a", &format!("cancel {corr2}")).await, "true");
    assert_eq!(ask(&system, "a", &format!("cancel {corr2}")).await, "false");
    eventually("slow restarted and answered y", || {
        system.stats().late_replies >= 1
    })
    .await;
    let log = log_of(&system, "a").await;
    assert!(!log.contains(&format!("cb:{corr2}")), "{log}");
    let dead = system.dead_letters();
    assert!(
        dead.iter().any(|d| matches!(
            d.reason,
            DeadLetterReason::RequestTimeout { timeout_ms: 100 }
        )),
        "{dead:?}"
    );
    assert!(dead
        .iter()
        .any(|d| matches!(d.reason, DeadLetterReason::LateReply)));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_restarts_the_actor_keeps_the_queue_and_dead_letters_the_message() {
    let system = system_of(&["c"]).await;
    let mut events = system.events();
    assert_eq!(ask(&system, "c", "one").await, "one");
    system.send("c", msg("panic")).await.unwrap();
    system.send("c", msg("after-the-crash")).await.unwrap();
    eventually("restart", || system.status("c").unwrap().restarts == 1).await;
    eventually("queued message handled by the new instance", || {
        system.status("c").unwrap().handled >= 1 && system.status("c").unwrap().mailbox == 0
    })
    .await;
    let log = log_of(&system, "c").await;
    assert!(log.contains("msg:host:after-the-crash"), "{log}");
    assert!(!log.contains("msg:host:one"), "a fresh instance: {log}");
    let dead = system.dead_letters();
    let d = dead
        .iter()
        .find(|d| d.message.payload == b"panic")
        .expect("the crashing message is a dead letter");
    match &d.reason {
        DeadLetterReason::Crashed { reason } => {
            assert!(reason.contains("c: trapped"), "{reason}");
            assert!(
                reason.contains("actor-probe was asked to panic"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert!(seen.iter().any(|e| matches!(e, SystemEvent::Crashed { id, reason } if id.as_str() == "c" && reason.contains("panic"))), "{seen:?}");
    assert!(
        seen.iter()
            .any(|e| matches!(e, SystemEvent::Restarted { id, restarts: 1 } if id.as_str() == "c")),
        "{seen:?}"
    );
    // The host's request to a crashing actor gets the crash as its error.
    let e = system
        .request("c", msg("panic"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Trap { .. }), "{e}");
    system.shutdown().await;
}

/// The restarts of x, y, z once y has crashed under `strategy`, waited for
/// until they are `expected` (a wrong strategy times out with what it did).
async fn restarts_under(strategy: Strategy, expected: [u32; 3]) -> Vec<u32> {
    let sup = SupervisorSpec::new("trio")
        .strategy(strategy)
        .actor(actor("x"))
        .actor(actor("y"))
        .actor(actor("z"));
    let system = ActorSystem::builder()
        .supervisor(sup)
        .start()
        .await
        .unwrap();
    system.send("y", msg("panic")).await.unwrap();
    let restarts = || {
        ["x", "y", "z"]
            .iter()
            .map(|id| system.status(id).unwrap().restarts)
            .collect::<Vec<u32>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while restarts() != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "{strategy:?}: restarts {:?}, expected {expected:?}",
            restarts()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for id in ["x", "y", "z"] {
        eventually("running", || {
            system.status(id).unwrap().state == ActorState::Running
        })
        .await;
    }
    let r = ["x", "y", "z"]
        .iter()
        .map(|id| system.status(id).unwrap().restarts)
        .collect();
    system.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategies_restart_the_right_children() {
    assert_eq!(
        restarts_under(Strategy::OneForOne, [0, 1, 0]).await,
        vec![0, 1, 0]
    );
    assert_eq!(
        restarts_under(Strategy::OneForAll, [1, 1, 1]).await,
        vec![1, 1, 1]
    );
    assert_eq!(
        restarts_under(Strategy::RestForOne, [0, 1, 1]).await,
        vec![0, 1, 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policies() {
    let temp =
        actor("temp").with_options(ActorOptions::default().restart(RestartPolicy::Temporary));
    let trans =
        actor("trans").with_options(ActorOptions::default().restart(RestartPolicy::Transient));
    let system = ActorSystem::builder()
        .actor(temp)
        .actor(trans)
        .start()
        .await
        .unwrap();
    system.send("temp", msg("panic")).await.unwrap();
    system.send("trans", msg("panic")).await.unwrap();
    eventually("transient restarted", || {
        system.status("trans").unwrap().restarts == 1
    })
    .await;
    eventually("temporary stopped", || {
        system.status("temp").unwrap().state == ActorState::Stopped
    })
    .await;
    assert_eq!(system.status("temp").unwrap().restarts, 0);
    let e = system.send("temp", msg("hi")).await.unwrap_err();
    assert!(matches!(e, Error::ActorStopped { .. }), "{e}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intensity_escalates_to_the_parent_and_the_root_fails_the_system() {
    // The inner supervisor tolerates 1 restart in 10 s; the root tolerates 1 too.
    let inner = SupervisorSpec::new("inner")
        .intensity(1, Duration::from_secs(10))
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .actor(actor("w"));
    let root = SupervisorSpec::new("root")
        .intensity(1, Duration::from_secs(10))
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .supervisor(inner);
    let system = ActorSystem::builder().root(root).start().await.unwrap();
    let mut events = system.events();
    system.send("w", msg("panic")).await.unwrap();
    eventually("first restart", || {
        system.status("w").unwrap().restarts == 1
    })
    .await;
    system.send("w", msg("panic")).await.unwrap();
    // inner gives up; root restarts inner (its 1 allowed restart), which restarts w.
    eventually("inner restarted by root", || {
        system.status("w").unwrap().restarts == 2
            && system.status("w").unwrap().state == ActorState::Running
    })
    .await;
    assert!(system.failure().is_none());
    system.send("w", msg("panic")).await.unwrap();
    eventually("w restarted by the fresh inner", || {
        system.status("w").unwrap().restarts == 3
    })
    .await;
    system.send("w", msg("panic")).await.unwrap();
    // inner gives up again; root has had 1 restart already: it fails.
    let failed = tokio::time::timeout(Duration::from_secs(5), system.failed())
        .await
        .expect("the root fails");
    let text = failed.to_string();
    assert!(
        text.contains("supervisor root: restart intensity reached (1 restarts within 10s)"),
        "{text}"
    );
    assert!(text.contains("supervisor inner"), "{text}");
    let mut escalated = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let SystemEvent::Escalated { supervisor, .. } = e {
            escalated.push(supervisor);
        }
    }
    assert_eq!(escalated, vec!["inner", "inner", "root"]);
    assert_eq!(system.status("w").unwrap().state, ActorState::Stopped);
    system.shutdown().await;
}

/// Paused tokio time: the clock moves only when every task waits, so each gap
/// is exactly the backoff the supervisor chose, however slow the machine.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn backoff_spaces_restarts_exponentially() {
    let sup = SupervisorSpec::new("s")
        .intensity(10, Duration::from_secs(60))
        .backoff(Duration::from_millis(100), Duration::from_millis(400))
        .actor(actor("b").with_options(ActorOptions::default().health(None)));
    let system = ActorSystem::builder()
        .supervisor(sup)
        .start()
        .await
        .unwrap();
    let mut events = system.events();
    let mut gaps = Vec::new();
    for n in 1..=5u32 {
        let mut crashed_at = None;
        system.send("b", msg("panic")).await.unwrap();
        loop {
            match events.recv().await.unwrap() {
                SystemEvent::Crashed { .. } => crashed_at = Some(tokio::time::Instant::now()),
                SystemEvent::Restarted { restarts, .. } if restarts == n => break,
                _ => {}
            }
        }
        gaps.push(crashed_at.unwrap().elapsed());
    }
    let ms: Vec<u128> = gaps.iter().map(|g| g.as_millis()).collect();
    assert_eq!(
        ms,
        vec![100, 200, 400, 400, 400],
        "doubling from 100 ms, capped at 400 ms"
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_for_unknown_targets_and_full_mailboxes() {
    let small = actor("small").with_options(ActorOptions::default().mailbox_capacity(2));
    let system = ActorSystem::builder()
        .actor(actor("a"))
        .actor(small)
        .start()
        .await
        .unwrap();
    let e = system.send("nobody", msg("x")).await.unwrap_err();
    assert_eq!(e.to_string(), "nobody: no such actor");
    // Keep `small` busy, then fill its mailbox: the guest sees backpressure.
    system.send("small", msg("spin")).await.unwrap();
    eventually("small took the spin", || {
        system.status("small").unwrap().mailbox == 0
    })
    .await;
    let out = ask(&system, "a", "flood small 100").await;
    assert!(out.starts_with("sent 2 err MailboxFull"), "{out}");
    assert!(out.contains("capacity 2"), "{out}");
    let e = system.send("small", msg("more")).await.unwrap_err();
    assert_eq!(e.to_string(), "small: mailbox full (capacity 2)");
    assert_eq!(
        ask(&system, "a", "send nobody x").await,
        "err:NoSuchActor(\"nobody\")"
    );
    let dead = system.dead_letters();
    assert!(dead
        .iter()
        .any(|d| d.to == "nobody" && d.reason == DeadLetterReason::NoSuchActor));
    assert!(dead.iter().any(|d| d.to == "small"
        && d.from == "a"
        && d.reason == DeadLetterReason::MailboxFull { capacity: 2 }));
    assert!(system.stats().dead_letters >= 4);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_actors_flooding_each_other_do_not_deadlock() {
    let a = actor("a").with_options(ActorOptions::default().mailbox_capacity(16));
    let b = actor("b").with_options(ActorOptions::default().mailbox_capacity(16));
    let system = ActorSystem::builder()
        .actor(a)
        .actor(b)
        .start()
        .await
        .unwrap();
    system.send("a", msg("flood b 100000")).await.unwrap();
    system.send("b", msg("flood a 100000")).await.unwrap();
    // Both floods end (mailbox-full) and both actors still answer.
    tokio::time::timeout(Duration::from_secs(10), async {
        eventually("a drained", || system.status("a").unwrap().mailbox == 0).await;
        eventually("b drained", || system.status("b").unwrap().mailbox == 0).await;
        assert_eq!(ask(&system, "a", "ping").await, "ping");
        assert_eq!(ask(&system, "b", "ping").await, "ping");
    })
    .await
    .expect("no deadlock");
    assert!(system.stats().dead_letters > 0);
    system.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_spinning_actor_does_not_starve_a_responsive_one() {
    // One thread for everything. The requests run in a task, as an embedder's
    // code would: tokio polls a current-thread runtime's `block_on` future only
    // between batches of 61 task polls.
    tokio::spawn(async {
        let system = system_of(&["spinner", "quick"]).await;
        // The spinner's task runs first (it was woken first) and yields at
        // every epoch tick, so the quick actor gets its turns.
        system.send("spinner", msg("spin")).await.unwrap();
        let t = std::time::Instant::now();
        for i in 0..5 {
            let text = format!("still here {i}");
            assert_eq!(ask(&system, "quick", &text).await, text);
        }
        assert!(
            // Without yielding, quick would wait for the spinner's 2 s timeout.
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
        let spinner = system.status("spinner").unwrap();
        assert_eq!(
            (spinner.mailbox, spinner.handled, spinner.restarts),
            (0, 0, 0),
            "the spinner took its message and is still in it"
        );
        system.shutdown().await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messaging_denied_without_a_grant_and_audited() {
    let audit = AuditLog::in_memory();
    let closed = ActorSpec::new(
        ActorId::new("closed").unwrap(),
        probe(),
        ctx(Capabilities::default().with_audit(audit.clone())),
    );
    let system = ActorSystem::builder()
        .actor(closed)
        .actor(actor("b"))
        .start()
        .await
        .unwrap();
    let out = ask(&system, "closed", "send b hi").await;
    assert_eq!(
        out,
        "err:CapabilityDenied(\"messaging.send b: not granted: no messaging.send pattern matches\")"
    );
    let out = ask(&system, "closed", "publish events.x hi").await;
    assert!(
        out.starts_with("err:CapabilityDenied(\"messaging.publish events.x"),
        "{out}"
    );
    let out = ask(&system, "closed", "subscribe events.*").await;
    assert!(
        out.starts_with("err:CapabilityDenied(\"messaging.subscribe"),
        "{out}"
    );
    let events = audit.events();
    assert!(events.iter().any(|e| e.component == "closed"
        && e.function == "messaging.send"
        && e.resource == "b"
        && e.decision == Verdict::Deny));
    assert_eq!(system.status("b").unwrap().handled, 0, "nothing reached b");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receivers_accept_list_refuses_other_senders() {
    let audit = AuditLog::in_memory();
    let mut caps = open_caps().with_audit(audit.clone());
    caps.accept = Some(NamePatterns::new(&["friend", "host"]).unwrap());
    let guarded = ActorSpec::new(ActorId::new("guarded").unwrap(), probe(), ctx(caps));
    let system = ActorSystem::builder()
        .actor(guarded)
        .actor(actor("friend"))
        .actor(actor("stranger"))
        .start()
        .await
        .unwrap();
    assert_eq!(ask(&system, "friend", "send guarded hi").await, "ok");
    let out = ask(&system, "stranger", "send guarded hi").await;
    assert!(
        out.starts_with("err:Refused(\"guarded: not accepted"),
        "{out}"
    );
    assert!(audit
        .events()
        .iter()
        .any(|e| e.function == "messaging.accept"
            && e.resource == "stranger"
            && e.decision == Verdict::Deny));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_and_pending_caps() {
    // The cap counts the whole message (payload, content type, metadata, target).
    let tight = actor("tight").with_options(
        ActorOptions::default()
            .max_message_bytes(150)
            .max_pending(2),
    );
    let system = ActorSystem::builder()
        .actor(tight)
        .actor(actor("slow"))
        .start()
        .await
        .unwrap();
    assert_eq!(
        ask(&system, "tight", &format!("send slow {}", "x".repeat(100))).await,
        "err:MessageTooLarge(150)"
    );
    system.send("slow", msg("spin")).await.unwrap();
    assert!(ask(&system, "tight", "request slow a 5000")
        .await
        .parse::<u64>()
        .is_ok());
    assert!(ask(&system, "tight", "after slow 5000 b")
        .await
        .parse::<u64>()
        .is_ok());
    assert_eq!(
        ask(&system, "tight", "request slow c 5000").await,
        "err:TooManyPending(2)"
    );
    assert_eq!(
        ask(&system, "tight", "request slow c 0").await,
        "err:Invalid(\"timeout-ms must be 1 to 60000\")"
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_cancel_and_tick() {
    let ticker = ActorSpec::new(
        ActorId::new("ticker").unwrap(),
        probe(),
        ctx(open_caps()).with_config("tick-ms", "20"),
    );
    let system = ActorSystem::builder()
        .actor(actor("a"))
        .actor(ticker)
        .start()
        .await
        .unwrap();
    let id = ask(&system, "a", "after a 30 fired").await;
    assert!(id.parse::<u64>().is_ok(), "{id}");
    let id2 = ask(&system, "a", "after a 30 never").await;
    assert_eq!(
        ask(&system, "a", &format!("cancel-timer {id2}")).await,
        "true"
    );
    // A later timer fires after the cancelled one would have: once it has,
    // the cancelled one is known not to have fired.
    let mut log = String::new();
    for _ in 0..500 {
        log = log_of(&system, "a").await;
        if log.contains("msg:a:fired") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(log.contains("msg:a:fired"), "{log}");
    ask(&system, "a", "after a 30 sentinel").await;
    for _ in 0..500 {
        log = log_of(&system, "a").await;
        if log.contains("msg:a:sentinel") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(log.contains("msg:a:sentinel"), "{log}");
    assert!(!log.contains("msg:a:never"), "{log}");
    eventually("periodic ticks", || {
        system.status("ticker").unwrap().handled >= 4
    })
    .await;
    let ticks = system.status("ticker").unwrap().handled;
    assert!(ticks >= 4, "periodic ticks: {ticks}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_reaches_subscribers_declared_by_guest_or_host() {
    let guest_sub = ActorSpec::new(
        ActorId::new("gs").unwrap(),
        probe(),
        ctx(open_caps()).with_config("subscribe", "events.*"),
    );
    let host_sub = ActorSpec::new(
        ActorId::new("hs").unwrap(),
        probe(),
        ctx(Capabilities::default()),
    )
    .with_options(ActorOptions::default().subscribe("events.**"));
    let system = ActorSystem::builder()
        .actor(actor("pub"))
        .actor(guest_sub)
        .actor(host_sub)
        .start()
        .await
        .unwrap();
    assert_eq!(
        ask(&system, "pub", "publish events.created hello").await,
        "2"
    );
    assert_eq!(ask(&system, "pub", "publish events.a.b deep").await, "1");
    assert_eq!(system.publish("other", msg("nobody")), 0);
    eventually("delivered", || system.status("hs").unwrap().handled >= 2).await;
    let gs = log_of(&system, "gs").await;
    assert!(gs.contains("msg:pub:hello") && !gs.contains("deep"), "{gs}");
    let hs = log_of(&system, "hs").await;
    assert!(
        hs.contains("msg:pub:hello") && hs.contains("msg:pub:deep"),
        "{hs}"
    );
    assert_eq!(ask(&system, "gs", "unsubscribe events.*").await, "true");
    assert_eq!(
        ask(&system, "pub", "publish events.created again").await,
        "1"
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passivation_drops_the_instance_and_the_next_message_reactivates_it() {
    let lazy = actor("lazy")
        .with_options(ActorOptions::default().passivate_after(Duration::from_millis(50)));
    let system = ActorSystem::builder().actor(lazy).start().await.unwrap();
    let mut events = system.events();
    assert_eq!(ask(&system, "lazy", "remember-me").await, "remember-me");
    eventually("suspended", || {
        system.status("lazy").unwrap().state == ActorState::Suspended
    })
    .await;
    let log = log_of(&system, "lazy").await;
    assert!(
        !log.contains("remember-me"),
        "in-memory state is gone: {log}"
    );
    assert_eq!(system.status("lazy").unwrap().restarts, 0);
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert!(
        seen.iter()
            .any(|e| matches!(e, SystemEvent::Passivated { .. })),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, SystemEvent::Activated { .. })),
        "{seen:?}"
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_actors_activate_on_demand_and_the_resident_set_is_bounded() {
    let system = ActorSystem::builder()
        .virtual_actors(probe(), ctx(open_caps()), ActorOptions::default())
        .max_active(2)
        .actor(actor("a"))
        .start()
        .await
        .unwrap();
    for k in 0..6 {
        let id = format!("actor_probe/user-{k}");
        assert_eq!(ask(&system, &id, "whoami").await, id);
    }
    // From a guest too.
    assert_eq!(ask(&system, "a", "send actor_probe/user-9 hi").await, "ok");
    eventually("at most 2 resident", || {
        system
            .actors()
            .iter()
            .filter(|s| {
                s.metadata.id.as_str().starts_with("actor_probe/") && s.state == ActorState::Running
            })
            .count()
            <= 2
    })
    .await;
    // The passivated ones left the registry (they cost nothing until addressed).
    eventually("evicted actors reclaimed", || {
        system
            .actors()
            .iter()
            .filter(|s| s.metadata.id.as_str().starts_with("actor_probe/"))
            .count()
            <= 3
    })
    .await;
    assert_eq!(ask(&system, "actor_probe/user-0", "again").await, "again");
    assert!(ActorId::parse("actor_probe/a/b").is_err());
    let e = system.send("nope/x", msg("x")).await.unwrap_err();
    assert!(matches!(e, Error::NoSuchActor { .. }));
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_and_calls_every_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mk = |id: &str| {
        let caps = open_caps().with_dir(dir.path(), "/out", false);
        ActorSpec::new(
            ActorId::new(id).unwrap(),
            probe(),
            ctx(caps).with_config("shutdown-file", format!("/out/{id}")),
        )
    };
    let sup = SupervisorSpec::new("inner").actor(mk("c1")).actor(mk("c2"));
    let system = ActorSystem::builder()
        .actor(mk("p1"))
        .supervisor(sup)
        .start()
        .await
        .unwrap();
    for i in 0..50 {
        system.send("c1", msg(&format!("m{i}"))).await.unwrap();
    }
    let mut events = system.events();
    system.shutdown().await;
    for id in ["p1", "c1", "c2"] {
        let written = std::fs::read_to_string(dir.path().join(id)).unwrap();
        assert_eq!(written, id);
    }
    let mut stopped = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let SystemEvent::Stopped { id } = e {
            stopped.push(id.to_string());
        }
    }
    // Children before parents, in reverse start order.
    assert_eq!(stopped, vec!["c2", "c1", "p1"]);
}

#[derive(Default)]
struct Revocable(AtomicBool);

impl SecurityPolicy for Revocable {
    fn check_capability(&self, _component: &str, capability: &Capability<'_>) -> PolicyDecision {
        match capability {
            Capability::Send(_) if self.0.load(Ordering::Relaxed) => PolicyDecision::Denied {
                reason: "revoked by the operator".into(),
            },
            _ => PolicyDecision::Allowed,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_security_policy_revokes_a_grant_of_a_running_actor() {
    let policy = Arc::new(Revocable::default());
    let audit = AuditLog::in_memory();
    let caps = open_caps()
        .with_audit(audit.clone())
        .with_policy(policy.clone());
    let spec = ActorSpec::new(ActorId::new("a").unwrap(), probe(), ctx(caps));
    let system = ActorSystem::builder()
        .actor(spec)
        .actor(actor("b"))
        .start()
        .await
        .unwrap();
    assert_eq!(ask(&system, "a", "send b one").await, "ok");
    policy.0.store(true, Ordering::Relaxed);
    let out = ask(&system, "a", "send b two").await;
    assert_eq!(
        out,
        "err:CapabilityDenied(\"messaging.send b: host policy: revoked by the operator\")"
    );
    let deny = audit
        .events()
        .into_iter()
        .find(|e| e.decision == Verdict::Deny)
        .unwrap();
    assert_eq!(deny.rule, "host policy: revoked by the operator");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_health_checks_in_a_row_are_a_crash_but_one_is_not() {
    let check = HealthCheck {
        interval: Duration::from_millis(20),
        timeout: Duration::from_millis(500),
        failures: 3,
    };
    let sick = actor("sick").with_options(ActorOptions::default().health(Some(check)));
    let system = ActorSystem::builder().actor(sick).start().await.unwrap();
    let mut events = system.events();
    assert_eq!(ask(&system, "sick", "health unhealthy").await, "ok");
    let reason = loop {
        if let SystemEvent::Crashed { reason, .. } = events.recv().await.unwrap() {
            break reason;
        }
    };
    assert_eq!(
        reason,
        "sick: health check unhealthy 3 times in a row (threshold 3)"
    );
    eventually("restarted healthy", || {
        system.status("sick").unwrap().restarts == 1
    })
    .await;
    // A fresh instance is healthy; a failing initialize is a crash too.
    system.shutdown().await;

    let bad = ActorSpec::new(
        ActorId::new("bad").unwrap(),
        probe(),
        ctx(open_caps()).with_config("fail-init", "1"),
    );
    let root = SupervisorSpec::new("root")
        .intensity(2, Duration::from_secs(10))
        .backoff(Duration::from_millis(1), Duration::from_millis(2));
    let system = ActorSystem::builder()
        .root(root.actor(bad))
        .start()
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), system.failed())
        .await
        .unwrap();
    assert!(
        e.to_string()
            .contains("bad: initialize failed: invalid input: fail-init is set"),
        "{e}"
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_flooding_the_log_is_held_to_its_budget_and_the_drops_are_counted() {
    let budget = airssys_wasm::LogBudget {
        lines_per_sec: 10,
        burst: 20,
        max_line_bytes: 100,
        ..Default::default()
    };
    let spec = ActorSpec::new(
        ActorId::new("noisy").unwrap(),
        probe(),
        ctx(open_caps()).with_log_budget(budget),
    );
    let system = ActorSystem::builder().actor(spec).start().await.unwrap();
    // A burst of 20, then 10 lines/s for as long as the call ran.
    let refill = |s: &airssys_wasm::ActorStatus| {
        (10.0 * s.usage.unwrap().wall_time.as_secs_f64()).ceil() as u64
    };
    assert_eq!(ask(&system, "noisy", "spam 5000").await, "ok");
    let status = system.status("noisy").unwrap();
    let dropped = status.log_dropped;
    assert!(
        (4980 - refill(&status)..=4980).contains(&dropped),
        "{dropped} dropped in {:?}",
        status.usage.unwrap().wall_time
    );
    // Across a restart the count keeps growing.
    system.send("noisy", msg("panic")).await.unwrap();
    eventually("restart", || system.status("noisy").unwrap().restarts == 1).await;
    assert_eq!(ask(&system, "noisy", "spam 100").await, "ok");
    let status = system.status("noisy").unwrap();
    let more = status.log_dropped;
    assert!(
        (dropped + 80 - refill(&status)..=dropped + 80).contains(&more),
        "{dropped} -> {more}"
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_flooding_send_without_end_is_stopped_by_its_timeout() {
    // The target's mailbox is large enough that only the flooder's own call
    // timeout can end the loop: it does, as a crash, and the system carries on.
    let flooder = ActorSpec::new(
        ActorId::new("flooder").unwrap(),
        probe(),
        ExecutionContext::new("probe")
            .with_capabilities(open_caps())
            .with_limits(ResourceLimits::default().with_timeout(Duration::from_millis(200))),
    );
    let sink = ActorSpec::new(ActorId::new("sink").unwrap(), probe(), ctx(open_caps()))
        .with_options(ActorOptions {
            shutdown_timeout: Duration::from_millis(100),
            ..ActorOptions::default().mailbox_capacity(1 << 30)
        });
    let system = ActorSystem::builder()
        .actor(flooder)
        .actor(sink)
        .start()
        .await
        .unwrap();
    let mut events = system.events();
    system
        .send("flooder", msg(&format!("flood sink {}", u64::MAX)))
        .await
        .unwrap();
    let reason = loop {
        if let SystemEvent::Crashed { id, reason } = events.recv().await.unwrap() {
            assert_eq!(id.as_str(), "flooder");
            break reason;
        }
    };
    assert_eq!(reason, "flooder: timed out after 200ms");
    eventually("flooder restarted", || {
        system.status("flooder").unwrap().restarts == 1
    })
    .await;
    assert!(system.status("sink").unwrap().mailbox > 0);
    assert_eq!(ask(&system, "flooder", "still alive").await, "still alive");
    system.shutdown().await;
}
