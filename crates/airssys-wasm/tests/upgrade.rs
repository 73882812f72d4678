//! Hot upgrade: an actor switches to a new version of its component between
//! two messages, keeps its mailbox, and goes back to the previous version when
//! the new one cannot start (it never switches) or crashes on probation.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use airssys_wasm::{
    ActorId, ActorOptions, ActorSpec, ActorSystem, Component, Engine, ExecutionContext, Message,
    SystemEvent,
};

fn versions(engine: &Engine) -> [Component; 4] {
    ["v1", "v2", "bad_init", "trap"].map(|v| {
        engine
            .load_file(common::component(&format!("upgrade_probe_{v}")))
            .unwrap()
    })
}

async fn system(v1: &Component) -> Arc<ActorSystem> {
    Arc::new(
        ActorSystem::builder()
            .actor(
                ActorSpec::new(
                    ActorId::new("u").unwrap(),
                    v1.clone(),
                    ExecutionContext::new("u"),
                )
                .with_options(ActorOptions::default().health(None)),
            )
            .start()
            .await
            .unwrap(),
    )
}

async fn ask(system: &ActorSystem, body: &str) -> airssys_wasm::Result<String> {
    system
        .request(
            "u",
            Message::new("host", body.as_bytes().to_vec()),
            Duration::from_secs(10),
        )
        .await
        .map(|r| String::from_utf8(r.unwrap_or_default()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_under_load_loses_nothing_repeats_nothing_and_keeps_order() {
    let engine = common::engine();
    let [v1, v2, _, _] = versions(&engine);
    let system = system(&v1).await;
    let mut events = system.events();
    let load = {
        let system = system.clone();
        tokio::spawn(async move {
            let mut replies = Vec::new();
            for i in 0..300 {
                replies.push(ask(&system, &i.to_string()).await.unwrap());
            }
            replies
        })
    };
    while system.status("u").unwrap().handled < 100 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let t = Instant::now();
    let outcome = system
        .upgrade("upgrade_probe_v1", v2.clone(), Duration::from_secs(5))
        .await
        .unwrap();
    let pause = t.elapsed();
    assert_eq!(outcome.len(), 1);
    assert_eq!(outcome[0].1, Ok(2), "{outcome:?}");
    let replies = load.await.unwrap();
    // Every request answered once, in order: version 1 up to the switch, then
    // version 2 from a fresh instance whose count starts at 1.
    let switch = replies
        .iter()
        .position(|r| r.starts_with("2.0.0"))
        .expect("a switch");
    for (i, r) in replies.iter().enumerate() {
        let want = if i < switch {
            format!("1.0.0 #{}: {i}", i + 1)
        } else {
            format!("2.0.0 #{}: {i}", i - switch + 1)
        };
        assert_eq!(r, &want);
    }
    let status = system.status("u").unwrap();
    assert_eq!(status.metadata.version, 2);
    assert_eq!(status.metadata.component, "upgrade_probe_v1", "declared as");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Ok(SystemEvent::Upgraded {
                version: 2,
                component_version,
                ..
            })) => {
                assert_eq!(component_version, "2.0.0");
                break;
            }
            Ok(_) if Instant::now() < deadline => continue,
            other => panic!("{other:?}"),
        }
    }
    println!("upgrade pause (one actor, under load): {pause:?}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_cannot_start_or_is_not_higher_is_refused_and_the_old_one_keeps_running() {
    let engine = common::engine();
    let [v1, v2, bad_init, _] = versions(&engine);
    let system = system(&v1).await;
    assert_eq!(ask(&system, "a").await.unwrap(), "1.0.0 #1: a");
    let outcome = system
        .upgrade("upgrade_probe_v1", bad_init, Duration::from_secs(5))
        .await
        .unwrap();
    let why = outcome[0].1.clone().unwrap_err();
    assert!(
        why.contains("failed to start") && why.contains("3.0.0 cannot start"),
        "{why}"
    );
    // Same instance, same version: its count goes on.
    assert_eq!(ask(&system, "b").await.unwrap(), "1.0.0 #2: b");
    assert_eq!(system.status("u").unwrap().metadata.version, 1);
    // Not higher: refused.
    let same = system
        .upgrade("upgrade_probe_v1", v1.clone(), Duration::from_secs(5))
        .await
        .unwrap();
    let why = same[0].1.clone().unwrap_err();
    assert!(why.contains("not higher"), "{why}");
    // An unknown component is an error naming it.
    let err = system
        .upgrade("nope", v2, Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_traps_on_probation_is_rolled_back_and_rollback_works_by_hand() {
    let engine = common::engine();
    let [v1, v2, _, trap] = versions(&engine);
    let system = system(&v1).await;
    let mut events = system.events();
    assert_eq!(ask(&system, "a").await.unwrap(), "1.0.0 #1: a");
    let outcome = system
        .upgrade("upgrade_probe_v1", trap, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(outcome[0].1, Ok(2));
    // Its first message traps: the actor goes back to version 1, restarted.
    assert!(ask(&system, "boom").await.is_err());
    let deadline = Instant::now() + Duration::from_secs(10);
    let back = loop {
        match ask(&system, "b").await {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(back, "1.0.0 #1: b");
    assert_eq!(system.status("u").unwrap().metadata.version, 1);
    let mut rolled = false;
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
        if let SystemEvent::RolledBack {
            version: 1, reason, ..
        } = e
        {
            assert!(reason.contains("probation"), "{reason}");
            rolled = true;
        }
    }
    assert!(rolled, "a RolledBack event");
    // By hand: up to 2.0.0, then back.
    let outcome = system
        .upgrade("upgrade_probe_v1", v2, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(outcome[0].1, Ok(2));
    assert_eq!(ask(&system, "c").await.unwrap(), "2.0.0 #1: c");
    assert_eq!(system.rollback("u").await.unwrap(), 1);
    assert_eq!(ask(&system, "d").await.unwrap(), "1.0.0 #1: d");
    assert!(
        system.rollback("u").await.is_err(),
        "nothing before version 1"
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_with_trusted_keys_refuses_an_unsigned_upgrade_from_the_embedding_api() {
    use airssys_wasm::security::signing::{self, SignedIdentity, TrustPolicy};
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    signing::keygen(&key).unwrap();
    let trust = TrustPolicy::default()
        .trust_key_file(dir.path().join("k.pub"))
        .unwrap();
    let place = |variant: &str, name: &str| {
        let d = dir.path().join(variant);
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("probe.wasm");
        std::fs::copy(common::component(&format!("upgrade_probe_{variant}")), &f).unwrap();
        let id = SignedIdentity {
            name: name.into(),
            version: "1".into(),
        };
        signing::sign(&f, &key, &id).unwrap();
        f
    };
    let engine = common::engine();
    let v1 = engine
        .load_file_trusted(place("v1", "probe"), &trust, None)
        .unwrap();
    assert_eq!(v1.signed().unwrap().name, "probe");
    let system = Arc::new(
        ActorSystem::builder()
            .trust(trust.clone())
            .actor(
                ActorSpec::new(
                    ActorId::new("u").unwrap(),
                    v1.clone(),
                    ExecutionContext::new("u"),
                )
                .with_options(ActorOptions::default().health(None)),
            )
            .start()
            .await
            .unwrap(),
    );
    // Loaded without a signature check: refused before any actor is touched.
    let unsigned = engine
        .load_file(common::component("upgrade_probe_v2"))
        .unwrap();
    let err = system
        .upgrade("probe", unsigned, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("probe: refused: an upgrade must be signed"),
        "{err}"
    );
    // Signed by the trusted key, but for another component's name.
    let other = engine
        .load_file_trusted(place("v2", "something-else"), &trust, None)
        .unwrap();
    let err = system
        .upgrade("probe", other, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("signed as something-else@1"),
        "{err}"
    );
    assert_eq!(ask(&system, "a").await.unwrap(), "1.0.0 #1: a");
    // An upload's bytes with its signature file's text.
    let d = dir.path().join("up");
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("probe.wasm");
    std::fs::copy(common::component("upgrade_probe_v2"), &f).unwrap();
    let id = SignedIdentity {
        name: "probe".into(),
        version: "2".into(),
    };
    signing::sign(&f, &key, &id).unwrap();
    let bytes = std::fs::read(&f).unwrap();
    let sig = std::fs::read_to_string(signing::signature_path(&f)).unwrap();
    let mut forged = bytes.clone();
    forged.push(0);
    let err = engine
        .load_signed("probe", &forged, &sig, &trust, None)
        .unwrap_err();
    assert!(err.to_string().contains("tampered"), "{err}");
    let v2 = engine
        .load_signed("probe", &bytes, &sig, &trust, None)
        .unwrap();
    let outcome = system
        .upgrade("probe", v2, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(outcome[0].1, Ok(2), "{outcome:?}");
    assert_eq!(ask(&system, "b").await.unwrap(), "2.0.0 #1: b");
    system.shutdown().await;
}
