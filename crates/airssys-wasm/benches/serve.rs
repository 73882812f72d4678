//! Inbound HTTP, side by side in one run, with the same hello-world component
//! (`http-hello`, `GET /`) under the same load: 64 keep-alive connections
//! from an in-process hyper client, a per-request timeout and fuel on.
//!
//! - `serve/hello/airssys-wasm`: [`airssys_wasm::serve::serve`] with its bounds,
//!   metrics and access records;
//! - `serve/hello/bare-wasmtime`: wasmtime-wasi-http alone, a fresh pooled
//!   instance per request, the floor (what `wasmtime serve` does for p2);
//! - `serve/hello/wasmtime-serve`: the `wasmtime serve` binary itself
//!   (`cargo install wasmtime-cli --version 48.0.8`), when `wasmtime` is on PATH;
//! - `serve/hello/route-to-actor`: a route into an actor (`echo`): each POST a
//!   message through its mailbox, its reply the response.
//!
//! Each also prints its requests per second and p50/p99 latency over one
//! longer run, and again under `wrk -t2 -c64 -d10s --latency` (a load
//! generator in its own process) when `wrk` is on PATH. Run with `cargo bench -p airssys-wasm --bench serve`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airssys_wasm::serve::{ActorGateway, HttpHandler, Route, RouteTarget, Routes, ServeLimits};
use airssys_wasm::{EngineConfig, ExecutionContext, ResourceLimits};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_body_util::{BodyExt, Full};

const CONNECTIONS: usize = 64;

/// `per_conn` GETs of `/` on each of 64 kept-alive connections; the elapsed
/// time and every request's latency.
async fn load(addr: SocketAddr, per_conn: usize, post: bool) -> (Duration, Vec<Duration>) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = stream.set_nodelay(true);
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let mut lat = Vec::with_capacity(per_conn);
            for _ in 0..per_conn {
                let t = Instant::now();
                send.ready().await.unwrap();
                // A POST to /actor (the actor route) echoes its body; a GET of / is hello.
                let req = if post {
                    http::Request::post("/actor")
                        .header("host", addr.to_string())
                        .body(Full::new(Bytes::from_static(b"hello from airssys-wasm\n")))
                        .unwrap()
                } else {
                    http::Request::get("/")
                        .header("host", addr.to_string())
                        .body(Full::new(Bytes::new()))
                        .unwrap()
                };
                let res = send.send_request(req).await.unwrap();
                assert_eq!(res.status(), 200);
                let body = res.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(&body[..], b"hello from airssys-wasm\n");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (start.elapsed(), all)
}

fn report(name: &str, rt: &tokio::runtime::Runtime, addr: SocketAddr, post: bool) {
    // A short run when the suite smoke-tests the benchmark (no `--bench`).
    let per_conn = if std::env::args().any(|a| a == "--bench") {
        300
    } else {
        5
    };
    let (elapsed, mut lat) = rt.block_on(load(addr, per_conn, post));
    lat.sort();
    let n = lat.len();
    println!(
        "serve/hello/{name}: {:.0} req/s over {n} requests on {CONNECTIONS} connections; p50 {:?}, p99 {:?}",
        n as f64 / elapsed.as_secs_f64(),
        lat[n / 2],
        lat[n * 99 / 100],
    );
}

/// Drives `addr` with `wrk` (keep-alive, 64 connections, 2 threads, 10 s), when
/// it is on PATH and the run is a real one (`--bench`): requests per second,
/// p50 and p99 as wrk prints them.
fn wrk(name: &str, addr: SocketAddr, post: bool) {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut cmd = std::process::Command::new("wrk");
    cmd.args(["-t2", &format!("-c{CONNECTIONS}"), "-d10s", "--latency"]);
    let script = std::env::temp_dir().join(format!("airssys-wrk-post-{}.lua", std::process::id()));
    if post {
        std::fs::write(
            &script,
            "wrk.method = \"POST\"\nwrk.body = \"hello from airssys-wasm\\n\"\n",
        )
        .unwrap();
        cmd.arg("-s").arg(&script);
        cmd.arg(format!("http://{addr}/actor"));
    } else {
        cmd.arg(format!("http://{addr}/"));
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(_) => {
            println!(
                "serve/hello/{name} (wrk): skipped (`wrk` is not on PATH; apt-get install wrk)"
            );
            return;
        }
    };
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    let errors = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("Non-2xx") || l.starts_with("Socket errors"))
        .unwrap_or("no errors");
    println!(
        "serve/hello/{name} (wrk -t2 -c{CONNECTIONS} -d10s): {} req/s; p50 {}, p99 {}; {errors}",
        field("Requests/sec:"),
        field("50%"),
        field("99%"),
    );
}

/// The actor system as an actor route's gateway.
struct Gateway(Arc<airssys_wasm::ActorSystem>);

impl ActorGateway for Gateway {
    fn request<'a>(
        &'a self,
        actor: &'a str,
        msg: airssys_wasm::Message,
        timeout: Duration,
    ) -> airssys_wasm::serve::ReplyFuture<'a> {
        Box::pin(self.0.ask(actor, msg, timeout))
    }
}

/// wasmtime-wasi-http alone: the floor.
mod bare {
    use super::*;
    use wasmtime::component::{Linker, ResourceTable};
    use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
    use wasmtime_wasi_http::p2::bindings::ProxyPre;
    use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

    pub struct State {
        wasi: WasiCtx,
        http: WasiHttpCtx,
        table: ResourceTable,
    }

    impl WasiView for State {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    impl WasiHttpView for State {
        fn http(&mut self) -> WasiHttpCtxView<'_> {
            WasiHttpCtxView {
                ctx: &mut self.http,
                table: &mut self.table,
                hooks: Default::default(),
            }
        }
    }

    pub fn prepare(wasm: &std::path::Path) -> (Engine, ProxyPre<State>) {
        let mut cfg = Config::new();
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(1000);
        cfg.epoch_interruption(true)
            .consume_fuel(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg).unwrap();
        let ticker = engine.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(10));
            ticker.increment_epoch();
        });
        let component = wasmtime::component::Component::from_file(&engine, wasm).unwrap();
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).unwrap();
        let pre = ProxyPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        (engine, pre)
    }

    pub async fn serve(listener: tokio::net::TcpListener, engine: Engine, pre: ProxyPre<State>) {
        let pre = Arc::new(pre);
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            let (engine, pre) = (engine.clone(), pre.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (engine, pre) = (engine.clone(), pre.clone());
                    async move {
                        let mut store = Store::new(
                            &engine,
                            State {
                                wasi: WasiCtx::builder().build(),
                                http: WasiHttpCtx::new(),
                                table: ResourceTable::new(),
                            },
                        );
                        store.set_fuel(u64::MAX / 2).unwrap();
                        // A 30 s timeout in 10 ms ticks.
                        store.set_epoch_deadline(3000);
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        let req = store
                            .data_mut()
                            .http()
                            .new_incoming_request(
                                wasmtime_wasi_http::p2::bindings::http::types::Scheme::Http,
                                req,
                            )
                            .unwrap();
                        let out = store.data_mut().http().new_response_outparam(tx).unwrap();
                        let pre = pre.clone();
                        tokio::spawn(async move {
                            let proxy = pre.instantiate_async(&mut store).await.unwrap();
                            proxy
                                .wasi_http_incoming_handler()
                                .call_handle(&mut store, req, out)
                                .await
                        });
                        let resp = rx.await.unwrap().unwrap();
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}

/// The `wasmtime serve` binary on a free port, when installed; killed on drop.
struct WasmtimeServe(std::process::Child, SocketAddr);

impl WasmtimeServe {
    fn start(wasm: &std::path::Path) -> Option<WasmtimeServe> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = std::process::Command::new("wasmtime")
            .arg("serve")
            .args([
                "--addr",
                &addr.to_string(),
                // The guest is built with Rust's std, which imports wasi:cli
                // beyond the proxy world (environment): as `serve` links it.
                "-S",
                "cli",
                "-W",
                "timeout=30s",
                "-W",
                "fuel=100000000",
            ])
            .arg(wasm)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(WasmtimeServe(child, addr))
    }
}

impl Drop for WasmtimeServe {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let wasm = common::component("http_hello");

    // airssys-wasm serve, as the CLI sets it up.
    let engine = airssys_wasm::Engine::new(
        EngineConfig::default()
            .cache_dir(None)
            .consume_fuel(true)
            .pool_instances(256),
    )
    .unwrap();
    let component = engine.load_file(&wasm).unwrap();
    let ctx = ExecutionContext::new("hello").with_limits(
        ResourceLimits::default()
            .with_timeout(Duration::from_secs(30))
            .with_fuel(100_000_000),
    );
    let handler = HttpHandler::new(&component, ctx, ServeLimits::default()).unwrap();
    let ours = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(airssys_wasm::serve::serve(
            l,
            handler,
            std::future::pending(),
        ));
        addr
    });

    // Bare wasmtime-wasi-http.
    let (bare_engine, pre) = bare::prepare(&wasm);
    let bare = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(bare::serve(l, bare_engine, pre));
        addr
    });

    let wasmtime = WasmtimeServe::start(&wasm);
    if wasmtime.is_none() {
        println!("serve/hello/wasmtime-serve: skipped (`wasmtime serve` did not start: is wasmtime 48.0.8 on PATH? cargo install wasmtime-cli --version 48.0.8)");
    }

    // A route into an actor: each request a message to `echo`, its reply the response.
    let echo = engine.load_file(common::component("echo")).unwrap();
    let system = rt
        .block_on(
            airssys_wasm::ActorSystem::builder()
                .actor(
                    airssys_wasm::ActorSpec::new(
                        airssys_wasm::ActorId::new("echo").unwrap(),
                        echo,
                        ExecutionContext::new("echo"),
                    )
                    .with_options(
                        airssys_wasm::ActorOptions::default()
                            .health(None)
                            .mailbox_capacity(4096),
                    ),
                )
                .start(),
        )
        .unwrap();
    let routes = Routes::new(
        vec![Route {
            prefix: "/actor".into(),
            methods: Vec::new(),
            name: "echo".into(),
            target: RouteTarget::Actor {
                actor: "echo".into(),
                gateway: Arc::new(Gateway(Arc::new(system))),
                timeout: Duration::from_secs(10),
                content_type: None,
            },
        }],
        Arc::default(),
        1 << 20,
    );
    let routed = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(airssys_wasm::serve::serve_routes(
            l,
            routes,
            ServeLimits::default(),
            std::future::pending(),
        ));
        addr
    });

    let mut targets = vec![
        ("airssys-wasm", ours, false),
        ("bare-wasmtime", bare, false),
    ];
    if let Some(w) = &wasmtime {
        targets.push(("wasmtime-serve", w.1, false));
    }
    targets.push(("route-to-actor", routed, true));
    let mut group = c.benchmark_group("serve/hello");
    group.throughput(Throughput::Elements((CONNECTIONS * 10) as u64));
    for (name, addr, post) in &targets {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(load(*addr, 10, *post)).0;
                }
                total
            })
        });
    }
    group.finish();
    for (name, addr, post) in &targets {
        report(name, &rt, *addr, *post);
    }
    // The same servers under wrk, a load generator in its own process.
    for (name, addr, post) in &targets {
        wrk(name, *addr, *post);
    }
}

criterion_group! {
    name = serve;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(serve);
