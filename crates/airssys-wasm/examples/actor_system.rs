//! A small actor system built in code: two guest actors that talk to each
//! other, a publisher and a subscriber, a crash healed by the supervisor, a
//! dead letter, and a graceful shutdown. `scripts/demo.sh` runs it.
//!
//! ```sh
//! scripts/build-components.sh
//! cargo run --release -p airssys-wasm --example actor_system
//! ```

use std::time::Duration;

use airssys_wasm::security::pattern::NamePatterns;
use airssys_wasm::{
    ActorId, ActorOptions, ActorSpec, ActorSystem, Capabilities, Engine, EngineConfig,
    ExecutionContext, Message, Strategy, SupervisorSpec, SystemEvent,
};

fn guest(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/guests/wasm32-wasip2/release")
        .join(format!("{name}.wasm"))
}

fn text(reply: Option<Vec<u8>>) -> String {
    String::from_utf8_lossy(&reply.unwrap_or_default()).into_owned()
}

#[tokio::main]
async fn main() -> airssys_wasm::Result<()> {
    let engine = Engine::new(EngineConfig::default())?;
    let probe = engine.load_file(guest("actor_probe"))?;
    let counter = engine.load_file(guest("counter"))?;

    // What the actors may do: send to anyone, publish and subscribe `events.*`.
    let mut caps = Capabilities::default();
    caps.send = NamePatterns::new(&["**"]).expect("pattern");
    caps.publish = NamePatterns::new(&["events.*"]).expect("pattern");
    caps.subscribe = NamePatterns::new(&["events.*"]).expect("pattern");
    let ctx = ExecutionContext::new("probe").with_capabilities(caps);
    let spec = |id: &str| ActorSpec::new(ActorId::new(id).expect("id"), probe.clone(), ctx.clone());

    let workers = SupervisorSpec::new("workers")
        .strategy(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(5))
        .actor(spec("alice"))
        .actor(spec("bob"))
        .actor(
            ActorSpec::new(
                ActorId::new("audit").expect("id"),
                probe.clone(),
                ctx.clone(),
            )
            .with_options(ActorOptions::default().subscribe("events.*")),
        );
    let system = ActorSystem::builder()
        .supervisor(workers)
        .virtual_actors(
            counter,
            ExecutionContext::new("counter"),
            ActorOptions::default(),
        )
        .start()
        .await?;
    let mut events = system.events();
    let t = Duration::from_secs(2);

    println!("== alice asks bob; bob's reply reaches alice's handle-callback");
    let corr = system
        .request("alice", Message::new("host", "request bob pong 1000"), t)
        .await?;
    println!("alice: request sent, correlation id {}", text(corr));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let log = system
        .request("alice", Message::new("host", "log?"), t)
        .await?;
    println!("alice's record:\n  {}", text(log).replace('\n', "\n  "));

    println!("\n== alice publishes on events.greeting; audit is subscribed");
    let n = system
        .request(
            "alice",
            Message::new("host", "publish events.greeting hello"),
            t,
        )
        .await?;
    println!("delivered to {} subscriber(s)", text(n));

    println!("\n== bob crashes; his supervisor restarts him from the InstancePre");
    let err = system
        .request("bob", Message::new("host", "panic"), t)
        .await
        .unwrap_err();
    println!("the request failed: {err}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    while let Ok(e) = events.try_recv() {
        match e {
            SystemEvent::Crashed { id, reason } => println!("event: {id} crashed: {reason}"),
            SystemEvent::Restarted { id, restarts } => {
                println!("event: {id} restarted ({restarts})")
            }
            _ => {}
        }
    }
    println!(
        "bob answers again: {}",
        text(system.request("bob", Message::new("host", "hi"), t).await?)
    );

    println!("\n== virtual actors: counter/KEY is activated on its first message");
    for key in ["ann", "ben", "ann"] {
        let id = format!("counter/{key}");
        let v = system.request(&id, Message::new("host", "1"), t).await?;
        println!("{id} -> {}", text(v));
    }

    println!("\n== a message to nobody is a dead letter");
    if let Err(e) = system.send("nobody", Message::new("host", "lost?")).await {
        println!("send: {e}");
    }
    for d in system.dead_letters() {
        println!("dead letter to {} from {}: {}", d.to, d.from, d.reason);
    }

    println!("\n== actors");
    println!(
        "{:<14} {:<12} {:<10} {:>8} {:>8} {:>8}",
        "ID", "COMPONENT", "STATE", "RESTARTS", "MAILBOX", "HANDLED"
    );
    for a in system.actors() {
        println!(
            "{:<14} {:<12} {:<10} {:>8} {:>8} {:>8}",
            a.metadata.id.as_str(),
            a.metadata.component,
            a.state.to_string(),
            a.restarts,
            a.mailbox,
            a.handled
        );
    }
    println!("stats: {:?}", system.stats());
    system.shutdown().await;
    println!("\nshut down: every actor drained its mailbox and ran shutdown()");
    Ok(())
}
