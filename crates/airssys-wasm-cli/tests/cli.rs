//! The `airssys-wasm` binary, driven as a user would.

#[path = "../../airssys-wasm/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

struct Cli {
    cache: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        common::build_guests();
        Cli {
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_airssys-wasm"))
            .args(args)
            .env("XDG_CACHE_HOME", self.cache.path())
            .env_remove("RUST_LOG")
            .output()
            .expect("run airssys-wasm")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exactly one line of stderr starts with `error:`, and it contains `needle`.
fn assert_error_line(o: &Output, needle: &str) {
    assert!(!o.status.success(), "expected failure, got {:?}", o.status);
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "stderr: {err}");
    assert!(
        lines[0].contains(needle),
        "expected {needle:?} in {:?}",
        lines[0]
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn run_passes_args_and_behaves_like_wasmtime_run() {
    let cli = Cli::new();
    for probe in [common::component("wasi-probe"), common::p1_probe()] {
        let o = cli.run(&["run", s(&probe), "args", "-x", "--flag", "two words"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
        assert_eq!(lines[1..], ["args", "-x", "--flag", "two words"]);
        let o = cli.run(&["run", s(&probe), "time"]);
        assert!(o.status.success());
        assert!(stdout(&o).trim().parse::<u64>().unwrap() > 1_700_000_000);
    }
}

#[test]
fn run_denies_files_and_env_by_default_and_grants_with_flags() {
    let cli = Cli::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello from the host\n").unwrap();
    let grant = format!("{}::/data", dir.path().display());
    for probe in [common::component("wasi-probe"), common::p1_probe()] {
        let o = cli.run(&["run", s(&probe), "read", "/etc/hostname"]);
        assert!(!o.status.success());
        assert!(stdout(&o).is_empty());
        let o = cli.run(&["run", "--dir", &grant, s(&probe), "read", "/data/hello.txt"]);
        assert_eq!(stdout(&o), "hello from the host\n", "{}", stderr(&o));
        let o = cli.run(&["run", s(&probe), "env", "PATH"]);
        assert!(!o.status.success());
        let o = cli.run(&["run", "--env", "PATH", s(&probe), "env", "PATH"]);
        assert_eq!(stdout(&o).trim(), std::env::var("PATH").unwrap());
        let o = cli.run(&[
            "run",
            "--env",
            "GREETING=hi there",
            s(&probe),
            "env",
            "GREETING",
        ]);
        assert_eq!(stdout(&o).trim(), "hi there");
    }
}

#[test]
fn run_exit_codes_traps_and_limits() {
    let cli = Cli::new();
    let p1 = common::p1_probe();
    let o = cli.run(&["run", s(&p1), "exit", "42"]);
    assert_eq!(o.status.code(), Some(42));
    let p2 = common::component("wasi-probe");
    let o = cli.run(&["run", s(&p2), "exit", "42"]);
    assert_eq!(o.status.code(), Some(1));
    for probe in [p2, p1] {
        assert_error_line(&cli.run(&["run", s(&probe), "panic"]), "trapped");
        assert_error_line(
            &cli.run(&["run", "--fuel", "50000000", s(&probe), "loop"]),
            "fuel exhausted (limit 50000000)",
        );
        assert_error_line(
            &cli.run(&["run", "--timeout", "1s", s(&probe), "loop"]),
            "timed out after 1s",
        );
        assert_error_line(
            &cli.run(&["run", "--max-memory", "32MiB", s(&probe), "alloc", "100"]),
            "memory limit of 32 MiB reached",
        );
        let o = cli.run(&["run", "--max-memory", "64MiB", s(&probe), "alloc", "8"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
}

#[test]
fn bad_files_give_one_clear_error_line() {
    let cli = Cli::new();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, "definitely not wasm").unwrap();
    for cmd in ["run", "inspect"] {
        assert_error_line(&cli.run(&[cmd, s(&junk)]), "junk.wasm: invalid WebAssembly");
    }
    assert_error_line(&cli.run(&["call", s(&junk), "x"]), "junk.wasm");
    assert_error_line(&cli.run(&["run", "/nonexistent.wasm"]), "/nonexistent.wasm");
    assert_error_line(
        &cli.run(&["run", s(&common::component("missing_import"))]),
        "test:missing/gadget",
    );
    assert_error_line(
        &cli.run(&["call", s(&common::component("wasi-probe")), "x"]),
        "lifecycle",
    );
    let o = cli.run(&["run", "--max-memory", "lots", s(&junk)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("invalid size"), "{}", stderr(&o));
}

#[test]
fn inspect_shows_kind_hash_imports_exports_and_wit() {
    let cli = Cli::new();
    let o = cli.run(&["inspect", s(&common::component("echo"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("kind:      component"), "{out}");
    assert!(
        out.contains("lifecycle: yes (airssys:component/lifecycle@0.2.1)"),
        "{out}"
    );
    assert!(
        out.contains("export airssys:component/lifecycle@0.2.1;"),
        "{out}"
    );
    let o = cli.run(&["inspect", "--wit", s(&common::component("echo"))]);
    assert!(
        stdout(&o).contains("handle-message: func"),
        "{}",
        stdout(&o)
    );
    let o = cli.run(&["inspect", "--json", s(&common::p1_probe())]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kind"], "module");
    assert_eq!(v["lifecycle"], false);
    assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
    assert!(v["exports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "_start"));
}

#[test]
fn compile_output_runs_with_allow_precompiled() {
    let cli = Cli::new();
    let dir = tempfile::tempdir().unwrap();
    for (probe, out) in [
        (common::component("wasi-probe"), "probe2.cwasm"),
        (common::p1_probe(), "probe1.cwasm"),
    ] {
        let out = dir.path().join(out);
        let o = cli.run(&["compile", s(&probe), "-o", s(&out)]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_error_line(&cli.run(&["run", s(&out), "args"]), "--allow-precompiled");
        let o = cli.run(&["run", "--allow-precompiled", s(&out), "args", "pre"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).ends_with("args\npre\n"), "{}", stdout(&o));
    }
}

#[test]
fn call_delivers_one_message_and_prints_the_reply() {
    let cli = Cli::new();
    let echo = common::component("echo");
    let o = cli.run(&["call", s(&echo), "hello, component"]);
    assert_eq!(stdout(&o), "hello, component\n", "{}", stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("payload.bin");
    std::fs::write(&payload, b"from a file").unwrap();
    let o = cli.run(&["call", s(&echo), &format!("@{}", payload.display())]);
    assert_eq!(stdout(&o), "from a file\n");
    let o = cli.run(&["call", "--stats", s(&echo), "x"]);
    let err = stderr(&o);
    assert!(
        err.contains("stats: fuel consumed")
            && err.contains("peak memory")
            && err.contains("wall time"),
        "{err}"
    );
    let counter = common::component("counter");
    let o = cli.run(&["call", "--config", "start=40", s(&counter), "2"]);
    assert_eq!(stdout(&o), "42\n", "{}", stderr(&o));
    let o = cli.run(&["call", s(&counter), "two"]);
    assert_error_line(&o, "counter: handle-message failed: invalid input");
    let looper = common::component("looper");
    assert_error_line(
        &cli.run(&["call", "--fuel", "1000000", s(&looper), "x"]),
        "looper: fuel exhausted (limit 1000000)",
    );
    assert_error_line(
        &cli.run(&["call", "--timeout", "250ms", s(&looper), "x"]),
        "looper: timed out after 250ms",
    );
    let memhog = common::component("memhog");
    assert_error_line(
        &cli.run(&["call", "--max-memory", "16MiB", s(&memhog), ""]),
        "memhog: memory limit of 16 MiB reached",
    );
    let crasher = common::component("crasher");
    assert_error_line(
        &cli.run(&["call", s(&crasher), "overflow"]),
        "crasher: stack overflow",
    );
    assert_error_line(
        &cli.run(&["call", s(&crasher), "panic"]),
        "crasher was asked to panic",
    );
}

#[test]
fn the_cli_uses_the_compile_cache() {
    let cli = Cli::new();
    let echo = common::component("echo");
    assert!(cli.run(&["call", s(&echo), "a"]).status.success());
    let entries = std::fs::read_dir(cli.cache.path().join("airssys-wasm"))
        .unwrap()
        .count();
    assert_eq!(entries, 1);
    let o = Command::new(env!("CARGO_BIN_EXE_airssys-wasm"))
        .args(["call", s(&echo), "b"])
        .env("XDG_CACHE_HOME", cli.cache.path())
        .env("RUST_LOG", "airssys_wasm=debug")
        .output()
        .unwrap();
    assert!(stderr(&o).contains("compile cache hit"), "{}", stderr(&o));
    let o = cli.run(&["--no-cache", "call", s(&echo), "c"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn signatures_refuse_unsigned_tampered_and_wrongly_signed_components() {
    let cli = Cli::new();
    let dir = tempfile::tempdir().unwrap();
    let comp = dir.path().join("echo.wasm");
    std::fs::copy(common::component("echo"), &comp).unwrap();
    let key = dir.path().join("key");
    let other = dir.path().join("other");
    assert!(cli.run(&["keygen", "--out", s(&key)]).status.success());
    assert!(cli.run(&["keygen", "--out", s(&other)]).status.success());
    let pubkey = format!("{}.pub", key.display());
    let other_pub = format!("{}.pub", other.display());
    assert_error_line(
        &cli.run(&["call", "--require-signature", &pubkey, s(&comp), "x"]),
        "not signed",
    );
    let o = cli.run(&["sign", "--key", s(&key), s(&comp)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli.run(&["verify", "--pubkey", &pubkey, s(&comp)]);
    assert_eq!(
        stdout(&o).trim(),
        format!("verified: {} is echo@0.0.0", comp.display())
    );
    let o = cli.run(&["call", "--require-signature", &pubkey, s(&comp), "signed"]);
    assert_eq!(stdout(&o), "signed\n", "{}", stderr(&o));
    assert_error_line(
        &cli.run(&["call", "--require-signature", &other_pub, s(&comp), "x"]),
        "untrusted key",
    );
    assert_error_line(
        &cli.run(&["verify", "--pubkey", &other_pub, s(&comp)]),
        "untrusted key",
    );
    // One flipped byte: refused before it is compiled.
    let mut bytes = std::fs::read(&comp).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&comp, bytes).unwrap();
    assert_error_line(
        &cli.run(&["call", "--require-signature", &pubkey, s(&comp), "x"]),
        "tampered",
    );
}

#[test]
fn run_with_a_manifest_a_policy_and_an_audit_log() {
    let cli = Cli::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/in.txt"), "from the manifest grant\n").unwrap();
    let manifest = dir.path().join("Component.toml");
    std::fs::write(
        &manifest,
        "[component]\nname = \"probe\"\nversion = \"1.0.0\"\n[capabilities]\nfilesystem = [{ host = \"data\", guest = \"/data\", access = \"read\" }]\nnetwork = { outbound = [\"127.0.0.1:22\"] }\n",
    )
    .unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "forbidden-ports = [22]\n").unwrap();
    let audit = dir.path().join("audit.jsonl");
    let probe = common::component("wasi-probe");
    let base = [
        "run",
        "--manifest",
        s(&manifest),
        "--policy",
        s(&policy),
        "--audit-log",
        s(&audit),
    ];
    let o = cli.run(&[&base[..], &[s(&probe), "read", "/data/in.txt"]].concat());
    assert_eq!(stdout(&o), "from the manifest grant\n", "{}", stderr(&o));
    let o = cli.run(&[&base[..], &[s(&probe), "write", "/data/x", "y"]].concat());
    assert!(!o.status.success());
    let o = cli.run(&[&base[..], &[s(&probe), "connect", "127.0.0.1:22"]].concat());
    assert!(!o.status.success());
    let text = std::fs::read_to_string(&audit).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().any(
        |e| e["function"] == "wasi:filesystem/preopens.get-directories" && e["decision"] == "allow"
    ));
    let ssh = events
        .iter()
        .find(|e| e["resource"] == "127.0.0.1:22")
        .expect("the connect was audited");
    assert_eq!(ssh["decision"], "deny");
    assert_eq!(ssh["rule"], "host policy forbids port 22");

    // A malformed manifest names the file, line and column.
    std::fs::write(
        &manifest,
        "[component]\nname = \"probe\"\nversion = \"1\"\nnetwork = 1\n",
    )
    .unwrap();
    assert_error_line(
        &cli.run(&["run", "--manifest", s(&manifest), s(&probe), "args"]),
        "Component.toml: line 4, column 1: unknown field `network`",
    );
}

#[test]
fn inspect_with_a_manifest_reports_functions_that_can_never_succeed() {
    let cli = Cli::new();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("Component.toml");
    std::fs::write(&manifest, "[component]\nname = \"counter\"\nversion = \"0.1.0\"\n[capabilities]\nservices = { config = false }\n").unwrap();
    let o = cli.run(&[
        "inspect",
        "--manifest",
        s(&manifest),
        s(&common::component("counter")),
    ]);
    let out = stdout(&o);
    assert!(
        out.contains("never callable under the manifest's grants:"),
        "{out}"
    );
    assert!(
        out.contains("airssys:component/services.get-config (needs config)"),
        "{out}"
    );
    assert!(
        out.contains("wasi:cli/environment.get-environment (needs environment)"),
        "{out}"
    );
    assert!(!out.contains("services.log"), "{out}");
    let o = cli.run(&[
        "inspect",
        "--json",
        "--manifest",
        s(&manifest),
        s(&common::component("counter")),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["never_callable"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["function"] == "airssys:component/services.get-config"));
}

#[test]
fn the_host_policy_applies_to_command_line_grants_too() {
    let cli = Cli::new();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(secret.join("key.txt"), "do not read").unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "forbidden-paths = [\"{}/**\"]\nforbidden-env = [\"SECRET_*\"]\n",
            secret.canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    let audit = dir.path().join("audit.jsonl");
    let probe = common::component("wasi-probe");
    let grant = format!("{}::/s", secret.display());
    let o = cli.run(&[
        "run",
        "--policy",
        s(&policy),
        "--audit-log",
        s(&audit),
        "--dir",
        &grant,
        s(&probe),
        "read",
        "/s/key.txt",
    ]);
    assert!(!o.status.success());
    assert!(stdout(&o).is_empty());
    let o = cli.run(&[
        "run",
        "--policy",
        s(&policy),
        "--env",
        "SECRET_TOKEN=x",
        s(&probe),
        "env",
        "SECRET_TOKEN",
    ]);
    assert!(!o.status.success());
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(
        text.contains("\"decision\":\"deny\"") && text.contains("host policy forbidden-paths"),
        "{text}"
    );
    // Without the policy the same grant works.
    let o = cli.run(&["run", "--dir", &grant, s(&probe), "read", "/s/key.txt"]);
    assert_eq!(stdout(&o), "do not read");
}

#[test]
fn a_default_network_refusal_reaches_the_audit_log() {
    // No manifest, no grant: the connect is refused, and the refusal is audited.
    let cli = Cli::new();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("a.jsonl");
    let probe = common::component("wasi-probe");
    let o = cli.run(&[
        "run",
        "--audit-log",
        s(&audit),
        s(&probe),
        "connect",
        "127.0.0.1:9",
    ]);
    assert!(!o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&audit).unwrap();
    let deny: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["function"] == "wasi:sockets/tcp.start-connect")
        .unwrap_or_else(|| panic!("no connect event in {text:?}"));
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["resource"], "127.0.0.1:9");
    assert_eq!(
        deny["rule"],
        "not granted: no network.outbound pattern matches"
    );
}

#[test]
fn a_guest_flooding_the_log_is_held_to_its_budget() {
    let cli = Cli::new();
    let probe = common::component("actor_probe");
    let started = std::time::Instant::now();
    let o = cli.run(&["call", s(&probe), "spam 50000"]);
    let elapsed = started.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let lines = err.lines().filter(|l| l.contains("spam line")).count();
    // A burst of 200, then 100 lines/s for as long as the process ran.
    let most = 200 + (100.0 * elapsed).ceil() as usize;
    assert!(
        (200..=most).contains(&lines),
        "{lines} lines in {elapsed:.2} s"
    );
    let summary: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("log lines over the log budget"))
        .collect();
    assert_eq!(summary.len(), 1, "{err}");
    assert!(
        summary[0].contains(&format!(
            "dropped {} log lines over the log budget (100 lines/s, burst 200, 65536 bytes/s)",
            50000 - lines
        )),
        "{lines} written; {}",
        summary[0]
    );
}

#[test]
fn call_with_data_keeps_the_count_across_processes_and_a_crash() {
    let cli = Cli::new();
    let kv = common::component("kv-counter");
    let data = tempfile::tempdir().unwrap();
    let d = s(data.path());
    let o = cli.run(&["call", "--data", d, s(&kv), "incr"]);
    assert_eq!(stdout(&o), "1\n", "{}", stderr(&o));
    let o = cli.run(&["call", "--data", d, s(&kv), "incr"]);
    assert_eq!(stdout(&o), "2\n", "{}", stderr(&o));
    let o = cli.run(&["call", "--data", d, s(&kv), "crash"]);
    assert_error_line(&o, "kv-counter: trapped");
    let o = cli.run(&["call", "--data", d, "--stats", s(&kv), "get"]);
    assert_eq!(stdout(&o), "2\n", "{}", stderr(&o));
    assert!(
        stderr(&o).contains("storage written 0 bytes"),
        "{}",
        stderr(&o)
    );
    // Without --data there is no storage, and the guest hears why.
    let o = cli.run(&["call", s(&kv), "get"]);
    assert_error_line(&o, "no storage is configured");
    // A guest built only against wasi:keyvalue, under `run`, in its own namespace.
    let wasi_only = common::component("kv-wasi");
    let o = cli.run(&["run", "--data", d, s(&wasi_only), "incr", "visits"]);
    assert_eq!(stdout(&o), "1\n", "{}", stderr(&o));
    let o = cli.run(&["storage", "ls", "--data", d]);
    assert_eq!(
        stdout(&o),
        format!(
            "{:<32} {:>10} {:>12}\n{:<32} {:>10} {:>12}\n{:<32} {:>10} {:>12}\n",
            "ACTOR", "KEYS", "BYTES", "kv-counter", 1, 6, "kv-wasi", 1, 7
        )
    );
    let o = cli.run(&["storage", "ls", "--data", d, "kv-counter"]);
    assert_eq!(stdout(&o), "\"count\"\t1 bytes\n");
}

#[test]
fn storage_export_import_delete_and_verify() {
    let cli = Cli::new();
    let kv = common::component("kv-counter");
    let data = tempfile::tempdir().unwrap();
    let d = s(data.path());
    for payload in ["set greeting hello", "incr", "set-raw key with spaces"] {
        let o = cli.run(&["call", "--data", d, s(&kv), payload]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = cli.run(&["storage", "export", "--data", d]);
    let exported = stdout(&o);
    assert_eq!(
        exported,
        concat!(
            "{\"actor\":\"kv-counter\",\"key\":\"count\",\"value\":\"1\"}\n",
            "{\"actor\":\"kv-counter\",\"key\":\"greeting\",\"value\":\"hello\"}\n",
            "{\"actor\":\"kv-counter\",\"key\":\"key with spaces\",\"value\":\"raw\"}\n",
        )
    );
    let file = data.path().join("backup.jsonl");
    std::fs::write(&file, &exported).unwrap();
    let other = tempfile::tempdir().unwrap();
    let d2 = s(other.path());
    for _ in 0..2 {
        let o = cli.run(&["storage", "import", "--data", d2, s(&file)]);
        assert!(stderr(&o).contains("imported 3 entries"), "{}", stderr(&o));
    }
    let o = cli.run(&["storage", "export", "--data", d2, "kv-counter"]);
    assert_eq!(stdout(&o), exported);
    // A malformed line: nothing imported, the line named.
    std::fs::write(&file, format!("{exported}{{\"actor\":\"x\"}}\n")).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let o = cli.run(&["storage", "import", "--data", s(fresh.path()), s(&file)]);
    assert_error_line(&o, "import line 4: missing field `key`");
    let o = cli.run(&["storage", "ls", "--data", s(fresh.path())]);
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));
    // Verify, then delete (refused without confirmation), then verify again.
    let o = cli.run(&["storage", "verify", "--data", d2]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).ends_with("1 namespaces, 3 keys, 37 bytes: ok\n"),
        "{}",
        stdout(&o)
    );
    let o = cli.run(&["storage", "delete", "--data", d2, "kv-counter"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("delete 3 keys (37 bytes) of kv-counter"),
        "{}",
        stderr(&o)
    );
    let o = cli.run(&["storage", "delete", "--data", d2, "--yes", "kv-counter"]);
    assert!(
        stderr(&o).contains("deleted 3 keys of kv-counter"),
        "{}",
        stderr(&o)
    );
    let o = cli.run(&["storage", "verify", "--data", d2]);
    assert!(
        stdout(&o).ends_with("0 namespaces, 0 keys, 0 bytes: ok\n"),
        "{}",
        stdout(&o)
    );
    // No storage in a directory: said so.
    let empty = tempfile::tempdir().unwrap();
    let o = cli.run(&["storage", "ls", "--data", s(empty.path())]);
    assert_error_line(&o, "no storage here");
}

/// `bytes` with a custom section of `n` bytes appended (still a valid component).
fn padded(bytes: &[u8], n: usize) -> Vec<u8> {
    let name = b"padding";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend(std::iter::repeat_n(0u8, n));
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend(payload);
    out
}

#[test]
fn logs_are_plain_off_a_terminal_json_on_request_and_long_compiles_show_progress_on_a_terminal() {
    let cli = Cli::new();
    let counter = common::component("counter");
    let manifest = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        manifest.path(),
        "[component]\nname = \"tally-ho\"\nversion = \"1.0.0\"\n",
    )
    .unwrap();
    let m = s(manifest.path());
    // Off a terminal: no colour codes; the guest's line names the manifest's name.
    let o = cli.run(&["call", "--manifest", m, s(&counter), "1"]);
    let err = stderr(&o);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(
        err.contains("counter starts at 0 component=\"tally-ho\""),
        "{err}"
    );
    // JSON for machines.
    let o = cli.run(&[
        "--log-format",
        "json",
        "call",
        "--manifest",
        m,
        s(&counter),
        "1",
    ]);
    let line = stderr(&o).lines().next().unwrap_or_default().to_string();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["fields"]["component"], "tally-ho");
    assert_eq!(v["fields"]["message"], "counter starts at 0");
    assert_eq!(v["target"], "airssys_wasm::guest");
    // A long compile (a component over 1 MiB) shows what, its size and the
    // time on a terminal, and nothing when stderr is not one.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.wasm");
    std::fs::write(&big, padded(&std::fs::read(&counter).unwrap(), 2 << 20)).unwrap();
    let o = cli.run(&["call", s(&big), "1"]);
    assert_eq!(stdout(&o), "1\n", "{}", stderr(&o));
    assert!(!stderr(&o).contains("compiling"), "{}", stderr(&o));
    // script(1) (util-linux) gives the CLI a terminal.
    {
        let other_cache = tempfile::tempdir().unwrap();
        let o = Command::new("script")
            .args([
                "-qec",
                &format!("{} call {} 1", env!("CARGO_BIN_EXE_airssys-wasm"), s(&big)),
                "/dev/null",
            ])
            .env("XDG_CACHE_HOME", other_cache.path())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let out = stdout(&o);
        assert!(out.contains(&format!("compiling {} (2.", s(&big))), "{out}");
        assert!(out.contains("MiB)…"), "{out}");
        assert!(out.contains(&format!("compiled {} in ", s(&big))), "{out}");
        assert!(!out.contains('\u{1b}'), "NO_COLOR: {out:?}");
    }
}

#[test]
fn call_invoke_calls_any_export_in_wave_and_inspect_lists_signatures() {
    let cli = Cli::new();
    let probe = common::component("invoke_probe");
    let p = s(&probe);
    let o = cli.run(&["call", "--invoke", "add(40, 2)", p]);
    assert_eq!(stdout(&o), "42\n", "{}", stderr(&o));
    let o = cli.run(&["call", "--invoke", "flip({x: 1, y: -2})", p]);
    assert_eq!(stdout(&o), "{x: -2, y: 1}\n", "{}", stderr(&o));
    let o = cli.run(&[
        "call",
        "--invoke",
        "example:invoke-probe/math#divide(1, 0)",
        p,
    ]);
    assert_eq!(stdout(&o), "err(\"division by zero\")\n", "{}", stderr(&o));
    let o = cli.run(&["call", "--invoke", "add(1)", p]);
    assert_error_line(&o, "(signature: add: func(a: u32, b: u32) -> u32)");
    let o = cli.run(&["call", "--invoke", "subtract(1, 2)", p]);
    assert_error_line(
        &o,
        "invoke_probe: subtract: no such exported function; it exports: add, greet, flip",
    );
    let o = cli.run(&["call", "--timeout", "200ms", "--invoke", "spin()", p]);
    assert_error_line(&o, "invoke_probe: timed out after 200ms");
    // A lifecycle component's exports too.
    let o = cli.run(&[
        "call",
        "--invoke",
        "metadata()",
        s(&common::component("echo")),
    ]);
    assert!(
        stdout(&o).starts_with("{name: \"echo\", version: \"0.1.0\""),
        "{}",
        stdout(&o)
    );
    // inspect shows every function with its WIT signature, in text and JSON.
    let o = cli.run(&["inspect", p]);
    let text = stdout(&o);
    assert!(
        text.contains("  add: func(a: u32, b: u32) -> u32\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "  example:invoke-probe/math#divide: func(a: f64, b: f64) -> result<f64, string>\n"
        ),
        "{text}"
    );
    let o = cli.run(&["inspect", "--json", p]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["functions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "greet" && f["signature"] == "func(name: string) -> string"));
}

#[test]
fn allow_outbound_on_call_covers_wasi_http() {
    let cli = Cli::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    let probe = common::component("http_probe");
    let url = format!("get http://127.0.0.1:{port}/");
    let o = cli.run(&["call", s(&probe), &url]);
    assert_eq!(
        stdout(&o),
        "error: ErrorCode::HttpRequestDenied\n",
        "{}",
        stderr(&o)
    );
    let grant = format!("127.0.0.1:{port}");
    let o = cli.run(&["call", "--allow-outbound", &grant, s(&probe), &url]);
    assert_eq!(stdout(&o), "200 ok\n", "{}", stderr(&o));
}

#[test]
fn a_python_guest_runs_under_call_and_its_loop_and_hunger_are_stopped() {
    let cli = Cli::new();
    let py = common::python_guest();
    let cache = common::python_cache();
    let call = |extra: &[&str]| {
        let mut args = vec!["--cache-dir", s(&cache), "call"];
        args.extend_from_slice(extra);
        cli.run(&args)
    };
    let o = call(&[s(&py), "upper hi from python"]);
    assert_eq!(stdout(&o), "HI FROM PYTHON\n", "{}", stderr(&o));
    assert!(
        stderr(&o).contains("python guest ready component=\"py-echo\""),
        "{}",
        stderr(&o)
    );
    let data = tempfile::tempdir().unwrap();
    for n in ["1", "2"] {
        let o = call(&["--data", s(data.path()), s(&py), "count"]);
        assert_eq!(stdout(&o), format!("{n}\n"), "{}", stderr(&o));
    }
    let o = call(&["--timeout", "1s", s(&py), "spin"]);
    assert_error_line(&o, "py-echo: timed out after 1s");
    let o = call(&["--max-memory", "96MiB", s(&py), "hog"]);
    assert_error_line(&o, "py-echo: memory limit of 96 MiB reached");
}

#[test]
fn new_scaffolds_guests_that_build_with_one_command_and_answer_call() {
    let cli = Cli::new();
    let dir = tempfile::tempdir().unwrap();
    // Rust: `cargo build --release` (the target is set in .cargo/config.toml).
    let rust = dir.path().join("hello-guest");
    let o = cli.run(&["new", "--dir", s(&rust), "hello-guest"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("cargo build --release"),
        "{}",
        stdout(&o)
    );
    let target = common::root().join("target/guests");
    let built = Command::new("cargo")
        .args(["build", "--quiet", "--release"])
        .current_dir(&rust)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .unwrap();
    assert!(built.success());
    let wasm = target.join("wasm32-wasip2/release/hello_guest.wasm");
    let manifest = rust.join("Component.toml");
    let o = cli.run(&["call", "--manifest", s(&manifest), s(&wasm), "hello"]);
    assert_eq!(stdout(&o), "hello-guest got: hello\n", "{}", stderr(&o));
    // Python: one componentize-py command.
    let py = dir.path().join("py-guest");
    let o = cli.run(&["new", "--lang", "python", "--dir", s(&py), "py-guest"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let componentize = common::root().join("target/pyenv/bin/componentize-py");
    let built = Command::new(&componentize)
        .args([
            "-d",
            "wit",
            "-w",
            "component",
            "componentize",
            "app",
            "-o",
            "py-guest.wasm",
        ])
        .current_dir(&py)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(built.success());
    let o = cli.run(&[
        "--cache-dir",
        s(&common::python_cache()),
        "call",
        s(&py.join("py-guest.wasm")),
        "hello",
    ]);
    assert_eq!(stdout(&o), "py-guest got: hello\n", "{}", stderr(&o));
    // A bad name, an existing directory: clear errors.
    let o = cli.run(&["new", "--dir", s(&rust), "hello-guest"]);
    assert_error_line(&o, "already exists and is not empty");
    let o = cli.run(&["new", "Bad_Name"]);
    assert_error_line(&o, "invalid name \"Bad_Name\"");
}

#[test]
fn a_componentize_js_guest_with_its_defaults_runs_under_call() {
    let cli = Cli::new();
    let o = cli.run(&[
        "--cache-dir",
        s(&common::python_cache()),
        "call",
        s(&common::js_guest()),
        "hello from js",
    ]);
    assert_eq!(stdout(&o), "js: HELLO FROM JS\n", "{}", stderr(&o));
}

#[test]
fn a_guest_cannot_start_a_host_log_line() {
    let cli = Cli::new();
    let hostile = common::component("hostile");
    let o = cli.run(&["call", s(&hostile), "forge"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("benign\\n2026-12-02T00:00:00Z"),
        "escaped: {err}"
    );
    assert!(
        !err.lines().any(|l| l.starts_with("2026-12-02T00:00:00Z")),
        "a guest line started a host line: {err}"
    );
}
