//! Meeting the component ecosystem through real guests: outbound `wasi:http`
//! under the network grants (`http-probe` against a loopback server started
//! here), and calls of any export with dynamic values (`invoke-probe`, which
//! does not implement the lifecycle).

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use airssys_wasm::Val;
use airssys_wasm::{
    AuditLog, Component, Error, ExecutionContext, HostPolicy, Manifest, Message, ResourceLimits,
    Verdict,
};

fn probe() -> Component {
    static C: std::sync::OnceLock<(airssys_wasm::Engine, Component)> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let e = common::engine();
        let c = e.load_file(common::component("http_probe")).unwrap();
        (e, c)
    })
    .1
    .clone()
}

fn context(outbound: &[&str], policy: &HostPolicy, audit: &AuditLog) -> ExecutionContext {
    let list: Vec<String> = outbound.iter().map(|p| format!("{p:?}")).collect();
    let text = format!(
        "[component]\nname = \"fetcher\"\nversion = \"1.0.0\"\n[capabilities]\nnetwork = {{ outbound = [{}] }}\n",
        list.join(", ")
    );
    Manifest::parse("Component.toml", &text)
        .unwrap()
        .context(policy, audit.clone())
        .unwrap()
        .with_limits(ResourceLimits::default().with_timeout(Duration::from_secs(10)))
}

async fn fetch(ctx: &ExecutionContext, url: &str) -> String {
    let mut i = probe().instantiate(ctx).await.unwrap();
    i.initialize().await.unwrap();
    let r = i
        .handle_message(&Message::new("host", format!("get {url}").into_bytes()))
        .await
        .unwrap();
    String::from_utf8(r.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_succeeds_with_a_grant_and_is_refused_without_one() {
    let (port, accepted) = common::serve_http("hello from the host");
    let url = format!("http://127.0.0.1:{port}/greeting");
    let audit = AuditLog::in_memory();
    let granted = context(
        &[&format!("127.0.0.1:{port}")],
        &HostPolicy::default(),
        &audit,
    );
    assert_eq!(fetch(&granted, &url).await, "200 hello from the host");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    // No grant: refused before any connection, with wasi:http's own error code.
    let none = context(&[], &HostPolicy::default(), &audit);
    assert_eq!(
        fetch(&none, &url).await,
        "error: ErrorCode::HttpRequestDenied"
    );
    // A grant for another port does not cover this one.
    let other = context(&["127.0.0.1:1"], &HostPolicy::default(), &audit);
    assert_eq!(
        fetch(&other, &url).await,
        "error: ErrorCode::HttpRequestDenied"
    );
    // The host policy's forbidden ports apply whatever the grants say.
    let policy = HostPolicy {
        forbidden_ports: vec![port],
        ..HostPolicy::default()
    };
    let forbidden = context(&["127.0.0.1:*"], &policy, &audit);
    assert_eq!(
        fetch(&forbidden, &url).await,
        "error: ErrorCode::HttpRequestDenied"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "refusals connect nowhere"
    );
    let events: Vec<_> = audit
        .events()
        .into_iter()
        .filter(|e| e.function == "wasi:http/outgoing-handler.handle")
        .collect();
    let resource = format!("127.0.0.1:{port}");
    assert!(events.iter().all(|e| e.resource == resource), "{events:?}");
    assert_eq!(
        events
            .iter()
            .map(|e| (e.decision, e.rule.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (
                Verdict::Allow,
                format!("network.outbound 127.0.0.1:{port}").as_str()
            ),
            (
                Verdict::Deny,
                "not granted: no network.outbound pattern matches"
            ),
            (
                Verdict::Deny,
                "not granted: no network.outbound pattern matches"
            ),
            (
                Verdict::Deny,
                format!("host policy forbids port {port}").as_str()
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_bounds_response_bytes_and_the_request_rate() {
    let (port, _) = common::serve_http("a body of thirty-two bytes here!");
    let url = format!("http://127.0.0.1:{port}/");
    let audit = AuditLog::default();
    let grant = format!("127.0.0.1:{port}");
    let mut limits = ResourceLimits::default().with_timeout(Duration::from_secs(10));
    limits.http.max_response_bytes = 8;
    let capped = context(&[&grant], &HostPolicy::default(), &audit).with_limits(limits);
    let refused = fetch(&capped, &url).await;
    assert!(
        refused.contains("HTTP response body size exceeds limit: 8 bytes"),
        "{refused}"
    );
    let mut limits = ResourceLimits::default().with_timeout(Duration::from_secs(10));
    limits.http.requests_per_sec = Some(1);
    let slow = context(&[&grant], &HostPolicy::default(), &audit).with_limits(limits);
    let mut i = probe().instantiate(&slow).await.unwrap();
    i.initialize().await.unwrap();
    let twice = Message::new("host", format!("get-n 2 {url}").into_bytes());
    let r = i.handle_message(&twice).await.unwrap().unwrap();
    assert_eq!(
        String::from_utf8(r).unwrap(),
        "error: ErrorCode::ConnectionLimitReached"
    );
}

fn invoke_probe() -> Component {
    static C: std::sync::OnceLock<(airssys_wasm::Engine, Component)> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let e = common::engine();
        let c = e.load_file(common::component("invoke_probe")).unwrap();
        (e, c)
    })
    .1
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_export_is_callable_with_dynamic_values_under_the_limits() {
    let c = invoke_probe();
    assert!(!c.is_lifecycle());
    let functions = c.exported_functions();
    let sig = |name: &str| {
        functions
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.signature.clone())
            .unwrap()
    };
    assert_eq!(sig("add"), "func(a: u32, b: u32) -> u32");
    assert_eq!(
        sig("example:invoke-probe/math#divide"),
        "func(a: f64, b: f64) -> result<f64, string>"
    );
    let ctx = ExecutionContext::new("calc").with_limits(
        ResourceLimits::default()
            .with_timeout(Duration::from_millis(300))
            .with_fuel(50_000_000),
    );
    let mut inv = c.instantiate_invoker(&ctx).await.unwrap();
    assert_eq!(
        inv.invoke("add", &[Val::U32(40), Val::U32(2)])
            .await
            .unwrap(),
        vec![Val::U32(42)]
    );
    assert!(inv.last_usage().unwrap().fuel_consumed > 0);
    assert_eq!(
        inv.invoke_wave(r#"greet("wave")"#).await.unwrap(),
        vec![r#""hello, wave""#.to_string()]
    );
    assert_eq!(
        inv.invoke_wave("divide(9, 2)").await.unwrap(),
        vec!["ok(4.5)".to_string()]
    );
    // Wrong arity, wrong type, wrong name: clear errors with the signature.
    let e = inv.invoke("add", &[Val::U32(1)]).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "calc: add: expects 2 arguments, got 1 (signature: add: func(a: u32, b: u32) -> u32)"
    );
    let e = inv.invoke_wave(r#"add("x", 2)"#).await.unwrap_err();
    assert!(matches!(e, Error::Invoke { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("(signature: add: func(a: u32, b: u32) -> u32)"),
        "{e}"
    );
    let e = inv.invoke_wave("nope()").await.unwrap_err().to_string();
    assert!(
        e.contains("no such exported function; it exports: add, greet"),
        "{e}"
    );
    // A value of the wrong type is the caller's mistake: an error naming the
    // signature, and the instance stays usable.
    let e = inv
        .invoke("add", &[Val::String("x".into()), Val::U32(1)])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Invoke { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("argument 1: expected u32, got a string"),
        "{e}"
    );
    assert_eq!(
        inv.invoke("add", &[Val::U32(1), Val::U32(1)])
            .await
            .unwrap(),
        vec![Val::U32(2)]
    );
    // The limits hold: a spinning export runs out of fuel, and the invoker is poisoned.
    let e = inv.invoke("spin", &[]).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::FuelExhausted {
                limit: 50_000_000,
                ..
            }
        ),
        "{e}"
    );
    let e = inv
        .invoke("add", &[Val::U32(1), Val::U32(1)])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Poisoned { .. }), "{e}");
    // A lifecycle component's exports too.
    let echo = common::engine()
        .load_file(common::component("echo"))
        .unwrap();
    let mut inv = echo.instantiate_invoker(&ctx).await.unwrap();
    assert_eq!(
        inv.invoke_wave("health()").await.unwrap(),
        vec!["healthy".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_componentize_js_guest_built_with_its_defaults_links_and_runs() {
    // componentize-js imports wasi:http (for fetch) in every component.
    let engine = airssys_wasm::Engine::new(
        airssys_wasm::EngineConfig::default()
            .pooling(false)
            .cache_dir(Some(common::python_cache())),
    )
    .unwrap();
    let info = engine.inspect_file(common::js_guest()).unwrap();
    assert!(
        info.imports
            .iter()
            .any(|i| i.starts_with("wasi:http/types@0.2.")),
        "{:?}",
        info.imports
    );
    let js = engine.load_file(common::js_guest()).unwrap();
    let ctx = ExecutionContext::new("js-echo");
    let mut i = js.instantiate(&ctx).await.unwrap();
    i.initialize().await.unwrap();
    let r = i
        .handle_message(&Message::new("host", b"hello".to_vec()))
        .await
        .unwrap();
    assert_eq!(r.as_deref(), Some(&b"js: HELLO"[..]));
    assert_eq!(i.metadata().await.unwrap().name, "js-echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_modules_exports_are_callable_too() {
    let wasm = wat::parse_str(
        r#"(module
            (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
            (func (export "spin") (loop br 0)))"#,
    )
    .unwrap();
    let engine = common::engine();
    let m = engine.load("adder", &wasm).unwrap();
    let sigs: Vec<String> = m
        .exported_functions()
        .into_iter()
        .map(|f| format!("{}: {}", f.name, f.signature))
        .collect();
    assert_eq!(sigs, ["add: func(s32, s32) -> s32", "spin: func()"]);
    let ctx =
        ExecutionContext::new("adder").with_limits(ResourceLimits::default().with_fuel(1_000_000));
    let mut inv = m.instantiate_invoker(&ctx).await.unwrap();
    assert_eq!(inv.invoke_wave("add(2, 3)").await.unwrap(), ["5"]);
    let r = inv
        .invoke_core("add", &[wasmtime::Val::I32(40), wasmtime::Val::I32(2)])
        .await
        .unwrap();
    assert_eq!(r[0].i32(), Some(42));
    let e = inv.invoke_core("add", &[]).await.unwrap_err().to_string();
    assert_eq!(
        e,
        "adder: add: expects 2 arguments, got 0 (signature: add: func(s32, s32) -> s32)"
    );
    let e = inv.invoke_core("spin", &[]).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::FuelExhausted {
                limit: 1_000_000,
                ..
            }
        ),
        "{e}"
    );
}
