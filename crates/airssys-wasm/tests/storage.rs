//! Durable storage through real guests: `kv-counter` (the airssys storage
//! interface and wasi:keyvalue through the SDK) and `kv-wasi` (a WASI command
//! built only against wasi:keyvalue). Crash safety kills a real host process.

mod common;

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use airssys_wasm::security::pattern::NamePatterns;
use airssys_wasm::storage::{Namespace, Quota, Storage, StorageLimits};
use airssys_wasm::{
    ActorId, ActorOptions, ActorSpec, ActorState, ActorSystem, AuditLog, Capabilities, Component,
    Error, ExecutionContext, Message, ResourceLimits, SystemEvent, Verdict,
};

fn kv() -> Component {
    static C: std::sync::OnceLock<(airssys_wasm::Engine, Component)> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let e = common::engine();
        let c = e.load_file(common::component("kv-counter")).unwrap();
        (e, c)
    })
    .1
    .clone()
}

fn ctx(id: &str, storage: &Storage) -> ExecutionContext {
    ExecutionContext::new(id)
        .with_limits(ResourceLimits::default().with_timeout(Duration::from_secs(5)))
        .with_storage(storage.clone())
}

/// One call of `kv-counter` in a fresh instance: the reply as text, or the error.
async fn call(ctx: &ExecutionContext, text: &str) -> Result<String, Error> {
    let mut i = kv().instantiate(ctx).await?;
    i.initialize().await?;
    let r = i
        .handle_message(&Message::new("host", text.as_bytes().to_vec()))
        .await?;
    Ok(String::from_utf8(r.unwrap_or_default()).unwrap())
}

async fn ok(ctx: &ExecutionContext, text: &str) -> String {
    call(ctx, text)
        .await
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn open(dir: &std::path::Path) -> Storage {
    Storage::open(dir, StorageLimits::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_count_survives_instances_a_trap_and_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = open(dir.path());
        let c = ctx("counter", &storage);
        assert_eq!(ok(&c, "incr").await, "1");
        assert_eq!(ok(&c, "incr").await, "2");
        let e = call(&c, "crash").await.unwrap_err();
        assert!(matches!(e, Error::Trap { .. }), "{e}");
        assert_eq!(ok(&c, "get").await, "2");
        // The same through wasi:keyvalue's atomics, over the same backend.
        assert_eq!(ok(&c, "wasi-incr count").await, "3");
    }
    let storage = open(dir.path());
    assert_eq!(ok(&ctx("counter", &storage), "get").await, "3");
    assert_eq!(
        storage.get(&Namespace::actor("counter"), "count").unwrap(),
        Some(b"3".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reports_bytes_written_per_call_and_held_per_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let c = ctx("u", &storage);
    let mut i = kv().instantiate(&c).await.unwrap();
    i.initialize().await.unwrap();
    i.handle_message(&Message::new("host", b"set hello world".to_vec()))
        .await
        .unwrap();
    // key (5) + value (5)
    assert_eq!(i.last_usage().unwrap().storage_bytes, 10);
    i.handle_message(&Message::new("host", b"read hello".to_vec()))
        .await
        .unwrap();
    assert_eq!(i.last_usage().unwrap().storage_bytes, 0);
    let q = Quota::default();
    assert_eq!(
        ok(&c, "usage").await,
        format!("10 1 {} {}", q.bytes, q.keys)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_reaches_another_actors_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let a = ctx("alice", &storage);
    let b = ctx("bob", &storage);
    assert_eq!(ok(&a, "set secret alice-only").await, "ok");
    // Bob sees nothing of Alice's, whatever key he tries.
    for key in [
        "secret",
        "../alice/secret",
        "alice/secret",
        "/alice/secret",
        "..",
        "alice\0secret",
        "shared:alice",
    ] {
        assert_eq!(
            ok(&b, &format!("read-raw {key}")).await,
            "<none>",
            "{key:?}"
        );
    }
    // Keys with separators, dots and NUL bytes are just keys, in Bob's own namespace.
    for key in ["a/b", "../../x", "..", "nul\0byte", "%2e%2e", "ünïcødé"] {
        assert_eq!(ok(&b, &format!("set-raw {key}")).await, "ok", "{key:?}");
        assert_eq!(ok(&b, &format!("read-raw {key}")).await, "raw", "{key:?}");
        assert_eq!(
            ok(&a, &format!("read-raw {key}")).await,
            "<none>",
            "{key:?}"
        );
    }
    assert_eq!(ok(&a, "read secret").await, "alice-only");
    // Empty and over-long keys are refused with the limit named.
    let e = call(&b, "set-raw ").await.unwrap_err().to_string();
    assert!(e.contains("keys must not be empty"), "{e}");
    let long = "k".repeat(257);
    let e = call(&b, &format!("set-raw {long}"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("257 bytes is over the key limit of 256 bytes"),
        "{e}"
    );
    assert_eq!(ok(&b, &format!("set-raw {}", "k".repeat(256))).await, "ok");
    let names: Vec<String> = storage
        .namespaces()
        .unwrap()
        .into_iter()
        .map(|n| n.namespace)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(storage.usage(&Namespace::actor("alice")).unwrap().keys, 1);
    assert_eq!(storage.usage(&Namespace::actor("bob")).unwrap().keys, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_namespaces_need_a_grant_read_only_grants_refuse_writes_and_both_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let audit = AuditLog::in_memory();
    let with = |rw: &[&str], ro: &[&str]| {
        let mut caps = Capabilities::default().with_audit(audit.clone());
        caps.storage_shared = NamePatterns::new(rw).unwrap();
        caps.storage_shared_read = NamePatterns::new(ro).unwrap();
        ctx("app", &storage).with_capabilities(caps)
    };
    let none = with(&[], &[]);
    let e = call(&none, "wasi-get cache.users k").await.unwrap_err();
    assert!(e.to_string().contains("access denied"), "{e}");
    let writer = with(&["cache.*"], &[]);
    assert_eq!(ok(&writer, "wasi-set cache.users k v1").await, "ok");
    assert_eq!(ok(&writer, "wasi-get cache.users k").await, "v1");
    let reader = with(&[], &["cache.*"]);
    assert_eq!(ok(&reader, "wasi-get cache.users k").await, "v1");
    let e = call(&reader, "wasi-set cache.users k v2")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("access denied"), "{e}");
    // The shared namespace is not the actor's own.
    assert_eq!(ok(&writer, "read k").await, "<none>");
    assert_eq!(
        storage.get(&Namespace::shared("cache.users"), "k").unwrap(),
        Some(b"v1".to_vec())
    );
    let events = audit.events();
    let opens: Vec<_> = events
        .iter()
        .filter(|e| e.function == "wasi:keyvalue/store.open")
        .collect();
    assert!(
        opens
            .iter()
            .any(|e| e.decision == Verdict::Deny && e.rule.contains("no storage.shared")),
        "{opens:?}"
    );
    assert!(
        opens
            .iter()
            .any(|e| e.decision == Verdict::Allow && e.rule.contains("storage.shared cache.*")),
        "{opens:?}"
    );
    assert!(
        opens
            .iter()
            .any(|e| e.decision == Verdict::Allow
                && e.rule.contains("storage.shared-read-only cache.*")),
        "{opens:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_and_limits_refuse_a_write_whole_and_name_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let small =
        ctx("small", &storage).with_limits(ResourceLimits::default().with_storage_quota(Quota {
            bytes: 100,
            keys: 3,
        }));
    assert_eq!(ok(&small, "set a 0123456789").await, "ok");
    // 4 keys > 3: refused, nothing written.
    let e = call(&small, "batch b=1 c=2 d=3")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("QuotaExceeded") && e.contains("storage-keys quota of 3"),
        "{e}"
    );
    assert_eq!(ok(&small, "list").await, "a");
    // 11 + 2*(1+60) = 133 bytes > 100.
    let v = "x".repeat(60);
    let e = call(&small, &format!("batch b={v} c={v}"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("storage-quota (bytes) quota of 100"), "{e}");
    assert_eq!(ok(&small, "list").await, "a");
    // Deleting frees quota; a batch applies whole.
    assert_eq!(ok(&small, "batch -a b=1 c=2 d=3").await, "ok");
    assert_eq!(ok(&small, "list").await, "b,c,d");
    assert_eq!(
        storage.usage(&Namespace::actor("small")).unwrap(),
        airssys_wasm::storage::Usage { bytes: 6, keys: 3 }
    );
    // A value over the limit (1 MiB) is refused with the limit.
    let big = ctx("big", &storage);
    let e = call(&big, "fill 1 1048577").await.unwrap_err().to_string();
    assert!(e.contains("ValueTooLarge(1048576)"), "{e}");
    assert_eq!(ok(&big, "fill 1 1048576").await, "1");
    // Compare-and-swap.
    assert_eq!(ok(&big, "swap k - v1").await, "true");
    assert_eq!(ok(&big, "swap k wrong v2").await, "false");
    assert_eq!(ok(&big, "swap k v1 v2").await, "true");
    assert_eq!(ok(&big, "read k").await, "v2");
    assert_eq!(ok(&big, "swap k v2 -").await, "true");
    assert_eq!(ok(&big, "read k").await, "<none>");
    // A counter over a non-number is an error, and writes nothing.
    assert_eq!(ok(&big, "set count abc").await, "ok");
    let e = call(&big, "incr").await.unwrap_err().to_string();
    assert!(e.contains("not a decimal integer"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_keys_pages_with_a_prefix_and_the_wasi_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let c = ctx("lister", &storage);
    assert_eq!(ok(&c, "fill 250 4").await, "250");
    assert_eq!(ok(&c, "set other 1").await, "ok");
    // The guest pages by 100 with a prefix.
    let listed = ok(&c, "list fill/").await;
    let keys: Vec<&str> = listed.split(',').collect();
    assert_eq!(keys.len(), 250);
    assert_eq!(keys[0], "fill/000000");
    assert_eq!(keys[249], "fill/000249");
    // The host caps a page.
    let ns = Namespace::actor("lister");
    let page = storage.list_keys(&ns, "", None, 1_000_000).unwrap();
    assert_eq!(page.keys.len(), 251);
    assert_eq!(page.cursor, None);
    let page = storage.list_keys(&ns, "fill/", None, 10).unwrap();
    assert_eq!(page.cursor.as_deref(), Some("fill/000009"));
    let next = storage
        .list_keys(&ns, "fill/", page.cursor.as_deref(), 10)
        .unwrap();
    assert_eq!(next.keys[0], "fill/000010");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_built_only_against_wasi_keyvalue_runs_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let engine = common::engine();
    let wasi_only = engine.load_file(common::component("kv-wasi")).unwrap();
    let run = |args: &[&str]| {
        let ctx = ExecutionContext::new("kv-wasi").with_storage(storage.clone());
        let argv: Vec<String> = std::iter::once("kv-wasi")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let wasi_only = wasi_only.clone();
        async move { wasi_only.run_command(&ctx, &argv).await.unwrap().code }
    };
    assert_eq!(run(&["incr", "hits"]).await, 0);
    assert_eq!(run(&["incr", "hits"]).await, 0);
    assert_eq!(run(&["set-many", "a=1", "b=2"]).await, 0);
    assert_eq!(run(&["delete", "a"]).await, 0);
    let ns = Namespace::actor("kv-wasi");
    assert_eq!(storage.get(&ns, "hits").unwrap(), Some(b"2".to_vec()));
    assert_eq!(storage.get(&ns, "b").unwrap(), Some(b"2".to_vec()));
    assert_eq!(storage.get(&ns, "a").unwrap(), None);
    // Another bucket is a shared namespace: denied without a grant (the
    // guest exits non-zero; WASI p2 exit codes are 0 or 1).
    assert_eq!(run(&["open", "other", "get", "x"]).await, 1);
    // Without a data directory, storage is unavailable, with a clear error.
    let bare = ExecutionContext::new("kv-wasi");
    let status = wasi_only
        .run_command(&bare, &["kv-wasi".into(), "get".into(), "x".into()])
        .await
        .unwrap();
    assert_eq!(status.code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_restart_and_passivation_find_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let spec = ActorSpec::new(ActorId::new("tally").unwrap(), kv(), ctx("tally", &storage))
        .with_options(ActorOptions::default().passivate_after(Duration::from_millis(100)));
    let system = ActorSystem::builder().actor(spec).start().await.unwrap();
    let mut events = system.events();
    let ask = |text: &'static str| {
        let system = &system;
        async move {
            let r = system
                .request("tally", Message::new("host", text), Duration::from_secs(5))
                .await;
            r.map(|r| String::from_utf8(r.unwrap_or_default()).unwrap())
        }
    };
    assert_eq!(ask("incr").await.unwrap(), "1");
    assert_eq!(ask("incr").await.unwrap(), "2");
    assert!(ask("crash").await.is_err());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while system.status("tally").unwrap().restarts == 0 {
        assert!(std::time::Instant::now() < deadline, "no restart");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(ask("incr").await.unwrap(), "3");
    while system.status("tally").unwrap().state != ActorState::Suspended {
        assert!(std::time::Instant::now() < deadline, "not passivated");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(ask("get").await.unwrap(), "3");
    let status = system.status("tally").unwrap();
    assert_eq!(status.storage.keys, 1);
    assert_eq!(status.storage.bytes, "count".len() as u64 + 1);
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert!(
        seen.iter()
            .any(|e| matches!(e, SystemEvent::Passivated { .. })),
        "{seen:?}"
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits_and_every_write_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let mut tasks = Vec::new();
    for w in 0..8 {
        let c = ctx(&format!("w{w}"), &storage);
        tasks.push(tokio::spawn(async move {
            let mut i = kv().instantiate(&c).await.unwrap();
            i.initialize().await.unwrap();
            for n in 0..25 {
                let text = format!("set k{n} v{n}");
                i.handle_message(&Message::new("host", text.into_bytes()))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = storage.commit_stats();
    assert_eq!(stats.writes, 200);
    assert!(stats.commits < stats.writes, "no group commit: {stats:?}");
    for w in 0..8 {
        let ns = Namespace::actor(format!("w{w}"));
        assert_eq!(storage.usage(&ns).unwrap().keys, 25);
    }
    drop(storage);
    let report = Storage::verify(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
    assert_eq!(report.keys, 200);
}

#[test]
fn export_import_round_trips_atomically_and_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let a = Namespace::actor("a");
    storage
        .set_blocking(&a, "text", b"hello".to_vec(), Quota::default())
        .unwrap();
    storage
        .set_blocking(&a, "bin", vec![0, 159, 146, 150], Quota::default())
        .unwrap();
    storage
        .set_blocking(
            &Namespace::shared("cache"),
            "k",
            b"v".to_vec(),
            Quota::default(),
        )
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(storage.export(None, &mut out).unwrap(), 3);
    let text = String::from_utf8(out.clone()).unwrap();
    assert_eq!(
        text,
        concat!(
            "{\"actor\":\"a\",\"key\":\"bin\",\"value\":\"AJ+Slg==\",\"encoding\":\"base64\"}\n",
            "{\"actor\":\"a\",\"key\":\"text\",\"value\":\"hello\"}\n",
            "{\"actor\":\"shared:cache\",\"key\":\"k\",\"value\":\"v\"}\n",
        )
    );
    let mut one = Vec::new();
    assert_eq!(storage.export(Some(&a), &mut one).unwrap(), 2);

    let other = tempfile::tempdir().unwrap();
    let restored = open(other.path());
    assert_eq!(restored.import(&mut &out[..]).unwrap(), 3);
    assert_eq!(restored.import(&mut &out[..]).unwrap(), 3); // idempotent
    assert_eq!(
        restored.get(&a, "bin").unwrap(),
        Some(vec![0, 159, 146, 150])
    );
    assert_eq!(
        restored.usage(&a).unwrap(),
        storage.usage(&a).unwrap(),
        "usage counted the same"
    );
    // A bad line anywhere: nothing is imported, and the line is named.
    let bad = format!(
        "{}{{\"actor\":\"z\",\"key\":\"\",\"value\":\"x\"}}\n",
        "{\"actor\":\"z\",\"key\":\"fine\",\"value\":\"x\"}\n"
    );
    let e = restored
        .import(&mut bad.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("import line 2") && e.contains("empty"), "{e}");
    assert_eq!(restored.usage(&Namespace::actor("z")).unwrap().keys, 0);
    // Ids no actor can have are refused: the data could never be reached.
    for id in ["a b", "-a", &"x".repeat(100)] {
        let line = format!("{{\"actor\":\"{id}\",\"key\":\"k\",\"value\":\"x\"}}\n");
        let e = restored
            .import(&mut line.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("import line 1") && e.contains("invalid actor id"),
            "{e}"
        );
    }
    drop(restored);
    let report = Storage::verify(other.path()).unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
    assert_eq!(report.keys, 3);
    // Deleting a namespace.
    assert_eq!(storage.delete_namespace(&a).unwrap(), 2);
    assert_eq!(storage.usage(&a).unwrap().keys, 0);
}

/// Not a test: the body of the child process the crash tests below run
/// (ignored, so the suite does not count it; they run it with `--ignored`).
#[test]
#[ignore = "subprocess body of the storage crash tests"]
fn storage_child_process() {
    let Ok(dir) = std::env::var("AIRSSYS_STORAGE_CHILD_DIR") else {
        return;
    };
    match std::env::var("AIRSSYS_STORAGE_CHILD_MODE").as_deref() {
        Ok("hold") => {
            let _s = open(std::path::Path::new(&dir));
            println!("held");
            std::io::stdout().flush().unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
        _ => write_until_killed(&dir),
    }
}

/// Four guest writers at once; each write acknowledged to the guest is
/// printed as `ack WRITER KEY VALUE`.
fn write_until_killed(dir: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let engine = airssys_wasm::Engine::new(
            airssys_wasm::EngineConfig::default()
                .cache_dir(Some(std::path::Path::new(dir).join("cache")))
                .pooling(false),
        )
        .unwrap();
        let component = engine.load_file(common::component("kv-counter")).unwrap();
        let storage = Arc::new(open(&std::path::Path::new(dir).join("data")));
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let mut tasks = Vec::new();
        for w in 0..4 {
            let c = ctx(&format!("w{w}"), &storage);
            let component = component.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = component.instantiate(&c).await.unwrap();
                i.initialize().await.unwrap();
                for n in 0.. {
                    let (key, value) = (format!("k{start}-{n}"), format!("v{n}"));
                    let text = format!("set {key} {value}");
                    i.handle_message(&Message::new("host", text.into_bytes()))
                        .await
                        .unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack w{w} {key} {value}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

fn child(dir: &std::path::Path, mode: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "storage_child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AIRSSYS_STORAGE_CHILD_DIR", dir)
        .env("AIRSSYS_STORAGE_CHILD_MODE", mode)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn sigkill_during_concurrent_writes_loses_no_acknowledged_write() {
    common::build_guests();
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<(String, String, String)> = Vec::new();
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    for round in 0..20 {
        let mut c = child(dir.path(), "write");
        let stdout = c.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness's "test NAME ... " may share the first line.
                if let Some(at) = line.find("ack ") {
                    let _ = tx.send(line[at + 4..].to_string());
                }
            }
        });
        // Wait for the first acknowledged write, then kill at a random point.
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("round {round}: the child acknowledged nothing"));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(5 + seed % 150));
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        reader.join().unwrap();
        for line in std::iter::once(first).chain(rx.try_iter()) {
            let mut p = line.split(' ');
            let (w, k, v) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
            acked.push((w.to_string(), k.to_string(), v.to_string()));
        }
    }
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    let data = dir.path().join("data");
    let storage = open(&data);
    for (w, k, v) in &acked {
        assert_eq!(
            storage
                .get(&Namespace::actor(w.as_str()), k)
                .unwrap()
                .as_deref(),
            Some(v.as_bytes()),
            "acknowledged write {w} {k} lost"
        );
    }
    drop(storage);
    let report = Storage::verify(&data).unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
    assert!(report.keys >= acked.len() as u64);
    eprintln!(
        "20 SIGKILLs: {} acknowledged writes, every one present; {} keys in a valid database",
        acked.len(),
        report.keys
    );
}

#[test]
fn a_second_process_gets_a_clear_error_naming_the_directory_and_the_holder() {
    common::build_guests();
    let dir = tempfile::tempdir().unwrap();
    let mut c = child(dir.path(), "hold");
    // The test harness prints its own lines first.
    let held = std::io::BufReader::new(c.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|l| l.trim().ends_with("held"));
    assert!(held, "the child did not open the storage");
    let e = Storage::open(dir.path(), StorageLimits::default()).unwrap_err();
    let text = e.to_string();
    c.kill().unwrap();
    c.wait().unwrap();
    assert!(matches!(e, Error::StorageInUse { .. }), "{e}");
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    assert!(text.contains(&format!("process {}", c.id())), "{text}");
    // Once the holder is gone, the directory opens (and the database is intact).
    let s = open(dir.path());
    assert!(s.namespaces().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_stores_at_most_its_quota_in_total_whatever_its_shared_grants() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let engine = common::engine();
    let wasi_only = engine.load_file(common::component("kv-wasi")).unwrap();
    let mut caps = Capabilities::default();
    caps.storage_shared = NamePatterns::new(&["cache.*"]).unwrap();
    let quota = Quota {
        bytes: 64 << 10,
        keys: 1000,
    };
    let ctx = ExecutionContext::new("greedy")
        .with_capabilities(caps)
        .with_limits(ResourceLimits::default().with_storage_quota(quota))
        .with_storage(storage.clone());
    let run = |args: Vec<String>| {
        let (ctx, c) = (ctx.clone(), wasi_only.clone());
        async move {
            let argv: Vec<String> = std::iter::once("kv-wasi".to_string()).chain(args).collect();
            c.run_command(&ctx, &argv).await.unwrap().code
        }
    };
    let big = "v".repeat(40 << 10);
    let set = |ns: &str| {
        vec![
            "open".into(),
            ns.to_string(),
            "set".into(),
            "k".into(),
            big.clone(),
        ]
    };
    assert_eq!(run(set("cache.1")).await, 0, "40 KiB of a 64 KiB quota");
    // A second shared namespace under the same wildcard grant: the total would
    // be 80 KiB, so it is refused (it used to get its own 64 MiB).
    assert_eq!(run(set("cache.2")).await, 1);
    assert_eq!(
        storage.get(&Namespace::shared("cache.2"), "k").unwrap(),
        None
    );
    // Its own namespace counts in the same total.
    let own = vec!["set".into(), "k".into(), big.clone()];
    assert_eq!(run(own.clone()).await, 1);
    // Once it removes what it put in the shared namespace, the room is back.
    let del = vec!["open".into(), "cache.1".into(), "delete".into(), "k".into()];
    assert_eq!(run(del).await, 0);
    assert_eq!(run(own).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasi_keyvalue_cursors_seek_and_an_invented_cursor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let engine = common::engine();
    let wasi_only = engine.load_file(common::component("kv-wasi")).unwrap();
    let ctx = ExecutionContext::new("kv-wasi").with_storage(storage.clone());
    let run = |args: &[&str]| {
        let argv: Vec<String> = std::iter::once("kv-wasi")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let (ctx, c) = (ctx.clone(), wasi_only.clone());
        async move { c.run_command(&ctx, &argv).await.unwrap().code }
    };
    // 2,700 keys in three batches of 900, then three pages, every key once.
    for batch in 0..3 {
        let kvs: Vec<String> = (0..900).map(|i| format!("k{batch}{i:04}=x")).collect();
        let mut args = vec!["set-many"];
        args.extend(kvs.iter().map(String::as_str));
        assert_eq!(run(&args).await, 0);
    }
    assert_eq!(run(&["list-count", "2700"]).await, 0);
    assert_eq!(
        run(&["list-count", "2699"]).await,
        1,
        "the count is checked"
    );
    // A cursor the host never gave (a huge offset used to scan the table).
    assert_eq!(run(&["list-from", "18446744073709551615"]).await, 1);
}
