//! The ecosystem features against their baselines, in the same run:
//!
//! - `invoke/handle-message-64B`: `echo`'s `handle-message` with a 64-byte
//!   payload called through dynamic values ([`Invoker::invoke`], a `Val`
//!   record) vs the typed lifecycle call ([`Instance::handle_message`]).
//! - `http/get`: one outbound HTTP GET to a loopback server from a guest
//!   (`http-probe`, through `wasi:http` and the grant check) vs the same GET
//!   from Rust with hyper (a new connection each time, as the host makes).
//!
//! Run with `cargo bench -p airssys-wasm --bench ecosystem`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use airssys_wasm::{Engine, EngineConfig, ExecutionContext, Manifest, Message, Val};
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::BodyExt;

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = Engine::new(EngineConfig::default().cache_dir(None)).unwrap();

    // --- dynamic vs typed ---
    let echo = engine.load_file(common::component("echo")).unwrap();
    let ctx = ExecutionContext::new("echo");
    let mut typed = rt.block_on(echo.instantiate(&ctx)).unwrap();
    rt.block_on(typed.initialize()).unwrap();
    let mut dynamic = rt.block_on(echo.instantiate_invoker(&ctx)).unwrap();
    let payload = vec![7u8; 64];
    let msg = Message::new("host", payload.clone());
    let record = Val::Record(vec![
        ("sender".into(), Val::String("host".into())),
        (
            "payload".into(),
            Val::List(payload.iter().map(|b| Val::U8(*b)).collect()),
        ),
        (
            "content-type".into(),
            Val::String("application/octet-stream".into()),
        ),
        ("correlation-id".into(), Val::Option(None)),
        ("metadata".into(), Val::List(Vec::new())),
        ("timestamp-ms".into(), Val::U64(0)),
    ]);
    let handle = "airssys:component/lifecycle@0.2.1#handle-message";
    let args = [record];
    let mut group = c.benchmark_group("invoke/handle-message-64B");
    group.bench_function("typed-lifecycle-call", |b| {
        b.iter(|| rt.block_on(typed.handle_message(&msg)).unwrap())
    });
    group.bench_function("dynamic-values", |b| {
        b.iter(|| rt.block_on(dynamic.invoke(handle, &args)).unwrap())
    });
    group.finish();

    // --- outbound HTTP ---
    let (port, _) = common::serve_http("hello");
    let url = format!("http://127.0.0.1:{port}/");
    let probe = engine.load_file(common::component("http_probe")).unwrap();
    let manifest = Manifest::parse(
        "Component.toml",
        &format!(
            "[component]\nname = \"fetcher\"\nversion = \"1.0.0\"\n[capabilities]\nnetwork = {{ outbound = [\"127.0.0.1:{port}\"] }}\n"
        ),
    )
    .unwrap();
    let ctx = manifest
        .context(&Default::default(), Default::default())
        .unwrap();
    let mut guest = rt.block_on(probe.instantiate(&ctx)).unwrap();
    rt.block_on(guest.initialize()).unwrap();
    let get = Message::new("host", format!("get {url}").into_bytes());
    let mut group = c.benchmark_group("http/get");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("guest-wasi-http", |b| {
        b.iter(|| {
            let r = rt.block_on(guest.handle_message(&get)).unwrap().unwrap();
            assert_eq!(r, b"200 hello");
        })
    });
    group.bench_function("rust-hyper", |b| {
        b.iter(|| {
            rt.block_on(async {
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                let (mut send, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .unwrap();
                let conn = tokio::spawn(conn);
                let req = http::Request::get(&url)
                    .header("host", format!("127.0.0.1:{port}"))
                    .body(http_body_util::Empty::<bytes::Bytes>::new())
                    .unwrap();
                let res = send.send_request(req).await.unwrap();
                let body = res.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(&body[..], b"hello");
                drop(send);
                let _ = conn.await;
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = ecosystem;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(ecosystem);
