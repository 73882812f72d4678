//! Capability security through real hostile components: each asserts the
//! denial, the audit event and that nothing leaked.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use airssys_wasm::{
    AuditLog, Capabilities, Error, ExecutionContext, GuestError, HostPolicy, Manifest, Message,
    Verdict,
};

use common::engine;

async fn probe(ctx: &ExecutionContext, args: &[&str]) -> i32 {
    let c = engine().load_file(common::component("wasi-probe")).unwrap();
    let mut argv = vec!["wasi-probe".to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    c.run_command(ctx, &argv).await.unwrap().code
}

/// A loopback listener that answers one connection with "pong:" + what it got.
fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn serve_one(l: TcpListener) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"pong:").unwrap();
        s.write_all(&buf).unwrap();
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_succeeds_only_to_the_granted_loopback_port() {
    let (granted, granted_port) = listener();
    let (other, other_port) = listener();
    other.set_nonblocking(true).unwrap();
    let server = serve_one(granted);
    let audit = AuditLog::in_memory();
    let caps = Capabilities::default()
        .with_outbound(&format!("127.0.0.1:{granted_port}"))
        .unwrap()
        .with_audit(audit.clone());
    let ctx = ExecutionContext::new("netprobe").with_capabilities(caps);
    assert_eq!(
        probe(&ctx, &["connect", &format!("127.0.0.1:{granted_port}")]).await,
        0
    );
    server.join().unwrap();
    assert_ne!(
        probe(&ctx, &["connect", &format!("127.0.0.1:{other_port}")]).await,
        0
    );
    // Nothing reached the port that was not granted.
    assert_eq!(
        other.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    // Without any grant the network is closed.
    let closed = ExecutionContext::new("netprobe");
    assert_ne!(
        probe(&closed, &["connect", &format!("127.0.0.1:{other_port}")]).await,
        0
    );

    let events = audit.events();
    let connects: Vec<_> = events
        .iter()
        .filter(|e| e.function == "wasi:sockets/tcp.start-connect")
        .collect();
    assert_eq!(connects.len(), 2, "{events:?}");
    assert_eq!(connects[0].decision, Verdict::Allow);
    assert_eq!(
        connects[0].rule,
        format!("network.outbound 127.0.0.1:{granted_port}")
    );
    assert_eq!(connects[1].decision, Verdict::Deny);
    assert_eq!(connects[1].resource, format!("127.0.0.1:{other_port}"));
    assert_eq!(connects[1].component, "netprobe");
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_patterns_cover_lookup_and_the_resolved_addresses_only() {
    let (granted, port) = listener();
    let server = serve_one(granted);
    let audit = AuditLog::in_memory();
    let caps = Capabilities::default()
        .with_outbound(&format!("localhost:{port}"))
        .unwrap()
        .with_audit(audit.clone());
    let ctx = ExecutionContext::new("dnsprobe").with_capabilities(caps);
    assert_eq!(
        probe(&ctx, &["connect", &format!("localhost:{port}")]).await,
        0
    );
    server.join().unwrap();
    // The name is granted, but only on its port; other names are not even looked up.
    assert_ne!(
        probe(
            &ctx,
            &["connect", &format!("localhost:{}", port.wrapping_add(1))]
        )
        .await,
        0
    );
    assert_ne!(probe(&ctx, &["connect", "example.invalid:80"]).await, 0);
    let events = audit.events();
    let allowed = events
        .iter()
        .find(|e| e.function == "wasi:sockets/tcp.start-connect" && e.decision == Verdict::Allow)
        .expect("the connect was allowed");
    assert_eq!(
        allowed.rule,
        format!("network.outbound localhost:{port} (resolved from localhost)")
    );
    let lookup_denied = events
        .iter()
        .find(|e| e.resource == "example.invalid")
        .expect("the lookup was audited");
    assert_eq!(
        lookup_denied.function,
        "wasi:sockets/ip-name-lookup.resolve-addresses"
    );
    assert_eq!(lookup_denied.decision, Verdict::Deny);
}

#[tokio::test]
async fn symlinks_and_dot_dot_do_not_escape_a_granted_directory() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "top secret").unwrap();
    std::fs::write(dir.path().join("ok.txt"), "fine").unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("escape-dir")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        dir.path().join("escape-file"),
    )
    .unwrap();
    let ctx = ExecutionContext::new("fsprobe").with_capabilities(Capabilities::default().with_dir(
        dir.path(),
        "/data",
        false,
    ));
    assert_eq!(probe(&ctx, &["read", "/data/ok.txt"]).await, 0);
    for path in [
        "/data/escape-dir/secret.txt",
        "/data/escape-file",
        "/data/../secret.txt",
        "/secret.txt",
    ] {
        assert_ne!(
            probe(&ctx, &["read", path]).await,
            0,
            "{path} escaped the grant"
        );
    }
    // Writing through the symlink does not touch the outside either.
    assert_ne!(
        probe(&ctx, &["write", "/data/escape-dir/secret.txt", "pwned"]).await,
        0
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret.txt")).unwrap(),
        "top secret"
    );
}

fn manifest(dir: &std::path::Path, body: &str) -> Manifest {
    let path = dir.join("Component.toml");
    std::fs::write(&path, body).unwrap();
    Manifest::from_file(&path).unwrap()
}

#[tokio::test]
async fn a_manifest_grants_read_only_files_and_named_env_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/in.txt"), "data").unwrap();
    let m = manifest(
        dir.path(),
        r#"
[component]
name = "probe"
version = "1.0.0"
[capabilities]
filesystem = [{ host = "data", guest = "/data", access = "read" }]
environment = ["GREETING=hello", "AIRSSYS_TEST_TOKEN"]
"#,
    );
    std::env::set_var("AIRSSYS_TEST_TOKEN", "token");
    std::env::set_var("AIRSSYS_TEST_OTHER", "other");
    let audit = AuditLog::in_memory();
    let policy = HostPolicy {
        forbidden_env: vec!["AIRSSYS_TEST_TOK*".into()],
        ..HostPolicy::default()
    };
    let ctx = m.context(&policy, audit.clone()).unwrap();
    assert_eq!(probe(&ctx, &["read", "/data/in.txt"]).await, 0);
    assert_ne!(
        probe(&ctx, &["write", "/data/new.txt", "x"]).await,
        0,
        "read-only grant"
    );
    assert!(!dir.path().join("data/new.txt").exists());
    assert_eq!(probe(&ctx, &["env", "GREETING"]).await, 0);
    assert_ne!(
        probe(&ctx, &["env", "AIRSSYS_TEST_TOKEN"]).await,
        0,
        "the policy forbids it"
    );
    assert_ne!(
        probe(&ctx, &["env", "AIRSSYS_TEST_OTHER"]).await,
        0,
        "never asked for"
    );
    let denied: Vec<_> = audit
        .events()
        .into_iter()
        .filter(|e| e.decision == Verdict::Deny)
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].resource, "AIRSSYS_TEST_TOKEN");
    assert_eq!(
        denied[0].rule,
        "host policy forbidden-env AIRSSYS_TEST_TOK*"
    );
}

#[tokio::test]
async fn a_withheld_service_is_denied_to_the_guest_which_can_handle_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(
        dir.path(),
        "[component]\nname = \"counter\"\nversion = \"0.1.0\"\n[capabilities]\nservices = { config = false }\n",
    );
    let audit = AuditLog::in_memory();
    let ctx = m.context(&HostPolicy::default(), audit.clone()).unwrap();
    let counter = engine().load_file(common::component("counter")).unwrap();
    let mut inst = counter.instantiate(&ctx).await.unwrap();
    inst.initialize().await.unwrap();
    // Empty payload: the counter asks services.get-config("step"), which is withheld.
    for _ in 0..100 {
        let err = inst
            .handle_message(&Message::new("t", Vec::new()))
            .await
            .unwrap_err();
        match &err {
            Error::Guest {
                error: GuestError::CapabilityDenied(why),
                ..
            } => {
                assert!(
                    why.contains("services.get-config")
                        && why.contains("services.config is withheld"),
                    "{why}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Repeated denials leave the instance and the host working.
    assert_eq!(
        inst.handle_message(&Message::new("t", b"5".to_vec()))
            .await
            .unwrap(),
        Some(b"5".to_vec())
    );
    // The denials are metered: a burst of 20 is written, the other 80 are
    // counted exactly and summarised on flush.
    audit.flush();
    let events = audit.events();
    let denials: Vec<_> = events
        .iter()
        .filter(|e| e.decision == Verdict::Deny)
        .collect();
    assert_eq!(denials.iter().filter(|e| e.suppressed == 0).count(), 20);
    assert_eq!(denials.iter().map(|e| e.suppressed).sum::<u64>(), 80);
    let counted = audit
        .counts()
        .into_iter()
        .find(|(_, f, v, _)| f == "services.get-config" && *v == Verdict::Deny);
    assert_eq!(counted.map(|(.., n)| n), Some(100));
    assert_eq!(denials[0].function, "services.get-config");
    assert_eq!(denials[0].resource, "step");
    assert_eq!(denials[0].component, "counter");
    // The allowed log call of initialize was audited too.
    assert!(events
        .iter()
        .any(|e| e.function == "services.log" && e.decision == Verdict::Allow));
}

#[tokio::test]
async fn the_audit_log_file_is_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log: PathBuf = dir.path().join("audit.jsonl");
    let audit = AuditLog::to_file(&log).unwrap();
    let caps = Capabilities::default().with_audit(audit.clone());
    let mut caps2 = caps.clone();
    caps2.services.clocks = false;
    let ctx = ExecutionContext::new("counter")
        .with_capabilities(caps2)
        .with_config("step", "2");
    let counter = engine().load_file(common::component("counter")).unwrap();
    let mut inst = counter.instantiate(&ctx).await.unwrap();
    inst.initialize().await.unwrap();
    inst.handle_message(&Message::new("t", Vec::new()))
        .await
        .unwrap();
    drop(inst);
    audit.flush();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{text}");
    let get = lines
        .iter()
        .find(|l| l["function"] == "services.get-config")
        .unwrap();
    assert_eq!(get["decision"], "allow");
    assert_eq!(get["rule"], "services.config");
    assert_eq!(get["component"], "counter");
    assert!(get["ts_ms"].as_u64().unwrap() > 0);
}

#[test]
fn a_tampered_signed_component_is_refused_before_it_is_compiled() {
    use airssys_wasm::security::signing::{self, SignedIdentity, TrustPolicy};
    let dir = tempfile::tempdir().unwrap();
    let comp = dir.path().join("echo.wasm");
    std::fs::copy(common::component("echo"), &comp).unwrap();
    let key = dir.path().join("key");
    signing::keygen(&key).unwrap();
    let id = SignedIdentity {
        name: "echo".into(),
        version: "0.1.0".into(),
    };
    signing::sign(&comp, &key, &id).unwrap();
    let trust = TrustPolicy::default()
        .trust_key_file(dir.path().join("key.pub"))
        .unwrap();
    let engine = engine();
    engine.load_file_trusted(&comp, &trust, Some(&id)).unwrap();
    assert_eq!(engine.cache_stats().compiles, 1);

    let wrong = SignedIdentity {
        name: "echo".into(),
        version: "9.9.9".into(),
    };
    let err = engine
        .load_file_trusted(&comp, &trust, Some(&wrong))
        .unwrap_err();
    assert!(matches!(err, Error::Signature { .. }), "{err:?}");

    let mut bytes = std::fs::read(&comp).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&comp, bytes).unwrap();
    let err = engine
        .load_file_trusted(&comp, &trust, Some(&id))
        .unwrap_err();
    assert!(err.to_string().contains("refused: tampered"), "{err}");
    assert_eq!(
        engine.cache_stats().compiles,
        1,
        "nothing more was compiled"
    );

    std::fs::remove_file(signing::signature_path(&comp)).unwrap();
    let err = engine.load_file_trusted(&comp, &trust, None).unwrap_err();
    assert!(err.to_string().contains("refused: not signed"), "{err}");
}
