//! Inbound HTTP through a real `wasi:http/proxy` guest (`http-hello`) and a
//! real HTTP client on loopback: status and headers, bodies streamed both
//! ways, the body, header and concurrency caps, the timeout before and after
//! the response head, traps, grants, and the graceful drain.

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use airssys_wasm::serve::{serve, HttpHandler, ServeLimits};
use airssys_wasm::{AuditLog, Component, Engine, ExecutionContext, HostPolicy, Manifest};
use airssys_wasm::{Error, ResourceLimits};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use tokio::sync::oneshot;

fn hello() -> (Engine, Component) {
    static C: OnceLock<(Engine, Component)> = OnceLock::new();
    C.get_or_init(|| {
        let e = common::engine();
        let c = e.load_file(common::component("http_hello")).unwrap();
        (e, c)
    })
    .clone()
}

fn context(timeout: Duration) -> ExecutionContext {
    ExecutionContext::new("hello").with_limits(ResourceLimits::default().with_timeout(timeout))
}

/// A server on an ephemeral loopback port; dropping `stop` (or sending) drains it.
struct Server {
    addr: SocketAddr,
    handler: HttpHandler,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<bool>,
}

impl Server {
    async fn start(ctx: ExecutionContext, limits: ServeLimits) -> Server {
        Server::start_with(&hello().1, ctx, limits).await
    }

    async fn start_with(
        component: &Component,
        ctx: ExecutionContext,
        limits: ServeLimits,
    ) -> Server {
        let handler = HttpHandler::new(component, ctx, limits).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, handler.clone(), async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            handler,
            stop: Some(stop),
            task,
        }
    }

    /// Asks the drain and waits for it: whether every request finished.
    async fn stop(mut self) -> bool {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the server stopped")
            .unwrap()
    }
}

type Sender<B> = hyper::client::conn::http1::SendRequest<B>;

async fn connect<B>(addr: SocketAddr) -> Sender<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

fn get(addr: SocketAddr, path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::new())
        .unwrap()
}

/// One GET on a new connection: status, headers and the whole body.
async fn fetch(addr: SocketAddr, path: &str) -> (u16, http::HeaderMap, String) {
    let mut send = connect(addr).await;
    let res = send.send_request(get(addr, path)).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// Waits until `f` holds, for at most 30 s.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_answers_with_status_headers_and_body_on_one_kept_alive_connection() {
    let s = Server::start(context(Duration::from_secs(10)), ServeLimits::default()).await;
    let mut send = connect(s.addr).await;
    for _ in 0..3 {
        send.ready().await.unwrap();
        let res = send.send_request(get(s.addr, "/")).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["content-type"],
            "text/plain; charset=utf-8",
            "the guest's headers reach the client"
        );
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello from airssys-wasm\n");
    }
    let (status, _, body) = fetch(s.addr, "/status/418").await;
    assert_eq!((status, body.as_str()), (418, "status 418\n"));
    let req = http::Request::get("/headers")
        .header("host", s.addr.to_string())
        .header("x-request-id", "abc-123")
        .body(Empty::<Bytes>::new())
        .unwrap();
    send.ready().await.unwrap();
    let res = send.send_request(req).await.unwrap();
    let headers = res.into_body().collect().await.unwrap().to_bytes();
    let headers = String::from_utf8_lossy(&headers);
    assert!(headers.contains("x-request-id: abc-123"), "{headers}");
    let metrics = s.handler.metrics().clone();
    until("the access records", || metrics.requests("hello", 200) == 4).await;
    until("the 418 recorded", || metrics.requests("hello", 418) == 1).await;
    assert_eq!(
        metrics.instances("hello"),
        5,
        "a fresh instance per request"
    );
    let text = metrics.encode();
    assert!(
        text.contains("airssys_http_requests_total{route=\"hello\",status=\"200\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("airssys_http_request_duration_seconds"),
        "{text}"
    );
    assert!(s.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways() {
    let s = Server::start(context(Duration::from_secs(20)), ServeLimits::default()).await;
    // A request body sent in 64 chunks, echoed back as it arrives.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let body = ChannelBody(rx);
    let mut send = connect(s.addr).await;
    let req = http::Request::post("/echo")
        .header("host", s.addr.to_string())
        .header("content-type", "application/x-test")
        .body(body)
        .unwrap();
    let writer = tokio::spawn(async move {
        for i in 0..64u8 {
            let chunk = Bytes::from(vec![i; 16 << 10]);
            tx.send(chunk).await.unwrap();
        }
    });
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-test");
    let echoed = res.into_body().collect().await.unwrap().to_bytes();
    writer.await.unwrap();
    assert_eq!(echoed.len(), 64 * (16 << 10));
    for (i, chunk) in echoed.chunks(16 << 10).enumerate() {
        assert!(chunk.iter().all(|b| *b == i as u8), "chunk {i} in order");
    }
    // A 4 MB response streamed out by the guest in 64 KiB writes.
    let (status, _, big) = fetch(s.addr, "/big/4000000").await;
    assert_eq!((status, big.len()), (200, 4_000_000));
    assert!(s.stop().await);
}

/// A request body fed chunk by chunk from a channel, as a client streams one.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|c| c.map(|c| Ok(http_body::Frame::data(c))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_cap_is_413_declared_or_streamed() {
    let limits = ServeLimits {
        max_body_bytes: 1000,
        ..ServeLimits::default()
    };
    let s = Server::start(context(Duration::from_secs(10)), limits).await;
    let mut send = connect(s.addr).await;
    // Declared: refused before any guest runs.
    let req = http::Request::post("/consume")
        .header("host", s.addr.to_string())
        .body(Full::new(Bytes::from(vec![b'a'; 2000])))
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(s.handler.metrics().instances("hello"), 0);
    // Streamed (chunked, no length): the guest's read fails past the cap.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let mut send = connect(s.addr).await;
    let req = http::Request::post("/consume")
        .header("host", s.addr.to_string())
        .body(ChannelBody(rx))
        .unwrap();
    let writer = tokio::spawn(async move {
        for _ in 0..4 {
            if tx.send(Bytes::from(vec![b'a'; 500])).await.is_err() {
                break;
            }
        }
    });
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 413);
    let _ = writer.await;
    // Under the cap, the guest reads it all.
    let mut send = connect(s.addr).await;
    let req = http::Request::post("/consume")
        .header("host", s.addr.to_string())
        .body(Full::new(Bytes::from(vec![b'a'; 999])))
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"999 bytes\n");
    assert!(s.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_the_cap_is_431() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start(context(Duration::from_secs(10)), ServeLimits::default()).await;
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(100 << 10)
    );
    // The server may answer (and close) before it has read it all.
    let _ = stream.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(s.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_concurrency_cap_is_503_with_retry_after() {
    let limits = ServeLimits {
        max_concurrency: 1,
        ..ServeLimits::default()
    };
    let s = Server::start(context(Duration::from_secs(10)), limits).await;
    let addr = s.addr;
    let slow = tokio::spawn(async move { fetch(addr, "/sleep/1500").await });
    let metrics = s.handler.metrics().clone();
    until("the slow request to hold its instance", || {
        metrics.instances("hello") == 1
    })
    .await;
    let (status, headers, _) = fetch(s.addr, "/").await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    let (status, _, body) = slow.await.unwrap();
    assert_eq!((status, body.as_str()), (200, "slept 1500 ms\n"));
    // The slot is free again.
    let (status, _, _) = fetch(s.addr, "/").await;
    assert_eq!(status, 200);
    assert!(s.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_is_504_before_the_head_and_cuts_the_body_after_it() {
    let s = Server::start(context(Duration::from_millis(500)), ServeLimits::default()).await;
    // Waiting in the host, and spinning in the guest: both stopped, 504.
    for path in ["/sleep/10000", "/spin"] {
        let t = Instant::now();
        let (status, _, _) = fetch(s.addr, path).await;
        assert_eq!(status, 504, "{path}");
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "{path}: {:?}",
            t.elapsed()
        );
    }
    // After the head: the client gets the head and a first chunk, then a cut
    // stream, never a body that looks whole.
    let mut send = connect(s.addr).await;
    let res = send
        .send_request(get(s.addr, "/head-then-spin"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut got = Vec::new();
    let end = loop {
        match body.frame().await {
            Some(Ok(f)) => got.extend_from_slice(f.data_ref().map(|d| &d[..]).unwrap_or(b"")),
            Some(Err(e)) => break Err(e),
            None => break Ok(()),
        }
    };
    assert_eq!(&got[..], b"first chunk\n");
    assert!(end.is_err(), "the stream must end in an error, not cleanly");
    assert!(s.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_is_500_and_its_reason_stays_in_the_log() {
    let ctx = context(Duration::from_secs(10)).with_limits(
        ResourceLimits::default()
            .with_timeout(Duration::from_secs(10))
            .with_fuel(50_000_000),
    );
    let s = Server::start(ctx, ServeLimits::default()).await;
    for path in ["/trap", "/spin", "/drop"] {
        let (status, _, body) = fetch(s.addr, path).await;
        assert_eq!(status, 500, "{path}");
        assert_eq!(
            body, "internal server error\n",
            "{path}: nothing of the guest leaks"
        );
    }
    // The next request gets a fresh instance and is answered.
    let (status, _, _) = fetch(s.addr, "/").await;
    assert_eq!(status, 200);
    assert!(s.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_from_a_handler_needs_its_grant() {
    // The upstream: another handler of the same component.
    let upstream = Server::start(context(Duration::from_secs(10)), ServeLimits::default()).await;
    let target = format!("/fetch/{}/status/201", upstream.addr);
    let denied = Server::start(context(Duration::from_secs(10)), ServeLimits::default()).await;
    let (status, _, body) = fetch(denied.addr, &target).await;
    assert_eq!(
        (status, body.as_str()),
        (502, "ErrorCode::HttpRequestDenied\n")
    );
    let manifest = format!(
        "[component]\nname = \"hello\"\nversion = \"1.0.0\"\n[capabilities]\nnetwork = {{ outbound = [\"{}\"] }}\n",
        upstream.addr
    );
    let ctx = Manifest::parse("Component.toml", &manifest)
        .unwrap()
        .context(&HostPolicy::default(), AuditLog::default())
        .unwrap();
    let granted = Server::start(ctx, ServeLimits::default()).await;
    let (status, _, body) = fetch(granted.addr, &target).await;
    assert_eq!((status, body.as_str()), (200, "201\n"));
    assert!(denied.stop().await && granted.stop().await && upstream.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_request_in_flight_and_refuses_new_ones() {
    let s = Server::start(context(Duration::from_secs(10)), ServeLimits::default()).await;
    let addr = s.addr;
    let in_flight = tokio::spawn(async move { fetch(addr, "/sleep/800").await });
    let metrics = s.handler.metrics().clone();
    until("the request to be in its guest", || {
        metrics.instances("hello") == 1
    })
    .await;
    let drained = s.stop().await;
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!((status, body.as_str()), (200, "slept 800 ms\n"));
    assert!(drained, "every request finished inside the drain timeout");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[test]
fn a_component_without_the_handler_export_is_refused_by_name() {
    let e = common::engine();
    let echo = e.load_file(common::component("echo")).unwrap();
    assert!(!echo.is_http_handler());
    assert!(hello().1.is_http_handler());
    let err =
        HttpHandler::new(&echo, ExecutionContext::new("echo"), ServeLimits::default()).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("echo") && text.contains("wasi:http/incoming-handler"),
        "{text}"
    );
}

/// `wasi:http/proxy` handlers from componentize-py and componentize-js
/// (`examples/python/py-http`, `examples/js/js-http`), served unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_handlers_answer_under_serve_unchanged() {
    // The configuration the CLI uses for big guests, sharing the tests' compile cache.
    let engine = Engine::new(
        airssys_wasm::EngineConfig::default()
            .pooling(false)
            .consume_fuel(true)
            .cache_dir(Some(common::python_cache())),
    )
    .unwrap();
    for (name, file, hello) in [
        ("py-http", "python/py-http.wasm", "hello from python\n"),
        ("js-http", "js/js-http.wasm", "hello from javascript\n"),
    ] {
        let path = common::build_guests().join(file);
        let component = engine.load_file(&path).unwrap();
        assert!(component.is_http_handler(), "{name}");
        let ctx = ExecutionContext::new(name).with_limits(
            ResourceLimits::default()
                .with_memory_bytes(256 << 20)
                .with_fuel(20_000_000_000)
                .with_timeout(Duration::from_secs(10)),
        );
        let server = Server::start_with(&component, ctx, ServeLimits::default()).await;
        let addr = server.addr;
        let (status, headers, body) = fetch(addr, "/").await;
        assert_eq!((status, body.as_str()), (200, hello), "{name}");
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        // A body larger than one write or read, both ways, with its content type.
        let big: String = (0..20_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let mut send = connect(addr).await;
        let req = http::Request::post("/echo")
            .header("host", addr.to_string())
            .header("content-type", "text/x-letters")
            .body(Full::new(Bytes::from(big.clone())))
            .unwrap();
        let res = send.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200, "{name}");
        assert_eq!(res.headers()["content-type"], "text/x-letters", "{name}");
        let echoed = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(echoed.len(), big.len(), "{name}");
        assert_eq!(echoed, big.as_bytes(), "{name}");
        assert_eq!(fetch(addr, "/status/418").await.0, 418, "{name}");
        // A guest that throws: 500, and its reason is not sent.
        let (status, _, body) = fetch(addr, "/fail").await;
        assert_eq!(status, 500, "{name}: {body}");
        assert!(!body.contains("asked to fail"), "{name}: {body}");
        assert_eq!(fetch(addr, "/").await.0, 200, "{name} answers on");
        assert!(server.stop().await, "{name} drained");
    }
}

/// A system with `[http]` routes: one to a proxy component, one to an actor.
async fn routed_system() -> (
    std::sync::Arc<airssys_wasm::ActorSystem>,
    airssys_wasm::system::http::HttpListener,
    tempfile::TempDir,
) {
    use airssys_wasm::system::config::SystemConfig;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[components.web]\npath = {:?}\n\
         [components.crasher]\npath = {:?}\n\
         [components.probe]\npath = {:?}\n\
         [[actors]]\nid = \"crasher\"\ncomponent = \"crasher\"\n\
         [[actors]]\nid = \"probe\"\ncomponent = \"probe\"\n\
         [http]\naddr = \"127.0.0.1:0\"\nmax-body = \"1KiB\"\ntimeout = \"5s\"\n\
         [[http.routes]]\npath = \"/web\"\ncomponent = \"web\"\n\
         [[http.routes]]\npath = \"/orders\"\nmethods = [\"POST\"]\nactor = \"crasher\"\ncontent-type = \"text/plain\"\n\
         [[http.routes]]\npath = \"/ghost\"\nactor = \"nobody\"\n\
         [[http.routes]]\npath = \"/probe\"\nactor = \"probe\"\n",
        common::component("http_hello").display().to_string(),
        common::component("crasher").display().to_string(),
        common::component("actor_probe").display().to_string(),
    );
    let path = dir.path().join("system.toml");
    let config = SystemConfig::parse(&path, &text).unwrap();
    let engine = hello().0;
    let policy = HostPolicy::default();
    let audit = AuditLog::default();
    let system = std::sync::Arc::new(
        config
            .builder(&engine, &policy, &audit, None)
            .unwrap()
            .start()
            .await
            .unwrap(),
    );
    let http = config
        .http_listener(&engine, &policy, &audit, None, system.clone())
        .unwrap()
        .expect("an [http] section");
    (system, http, dir)
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, http::HeaderMap, String) {
    let mut send = connect(addr).await;
    let req = http::Request::post(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_lead_to_a_component_or_an_actor_that_survives_a_crash_mid_request() {
    let (system, http, _dir) = routed_system().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = http.routes.metrics().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(airssys_wasm::serve::serve_routes(
        listener,
        http.routes,
        http.limits,
        async {
            let _ = stopped.await;
        },
    ));
    // The component route: a fresh instance per request, the prefix kept in the path.
    let (status, _, body) = fetch(addr, "/web").await;
    assert_eq!(
        status, 404,
        "the guest sees /web and has no such route: {body}"
    );
    assert_eq!(body, "no route /web\n");
    // The actor route: the body is the message, the reply the response.
    let (status, headers, body) = post(addr, "/orders", "order 1").await;
    assert_eq!((status, body.as_str()), (200, "order 1"));
    assert_eq!(headers["content-type"], "text/plain");
    // A crash while handling: 502, the supervisor restarts the actor, and the
    // next request is answered.
    let (status, _, body) = post(addr, "/orders", "panic").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        !body.contains("panic"),
        "the guest's failure stays in the log: {body}"
    );
    let (status, _, body) = post(addr, "/orders/7", "order 2").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "order 2"),
        "answered after the restart"
    );
    assert!(system.status("crasher").unwrap().restarts >= 1);
    // An error value from the guest: 422.
    let (status, _, _) = post(addr, "/orders", "error").await;
    assert_eq!(status, 422);
    // Methods, unknown paths, unknown actors, body caps.
    let (status, headers, _) = fetch(addr, "/orders").await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "POST");
    assert_eq!(
        fetch(addr, "/ordersx").await.0,
        404,
        "a prefix ends at a '/'"
    );
    assert_eq!(fetch(addr, "/nowhere").await.0, 404);
    assert_eq!(post(addr, "/ghost", "boo").await.0, 404, "no such actor");
    assert_eq!(post(addr, "/orders", &"x".repeat(2000)).await.0, 413);
    until("the access records", || {
        metrics.requests("crasher", 200) == 2
    })
    .await;
    assert_eq!(metrics.requests("crasher", 502), 1);
    until("the web route's 404 recorded", || {
        metrics.requests("web", 404) == 1
    })
    .await;
    let _ = stop.send(());
    assert!(server.await.unwrap());
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_sets_the_status_headers_and_content_type_of_its_response() {
    let (system, http, _dir) = routed_system().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = http.routes.metrics().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(airssys_wasm::serve::serve_routes(
        listener,
        http.routes,
        http.limits,
        async {
            let _ = stopped.await;
        },
    ));
    // Status, a header, a header twice, the content type.
    let (status, headers, body) = post(
        addr,
        "/probe",
        "shape 201 application/json location=/orders/7 set-cookie=a=1 set-cookie=b=2",
    )
    .await;
    assert_eq!((status, body.as_str()), (201, "shaped"));
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["location"], "/orders/7");
    let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    // An explicit content-type header wins; none set: octet-stream (the route has no default).
    let (status, headers, _) =
        post(addr, "/probe", "shape - text/plain content-type=text/csv").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/csv");
    let (_, headers, body) = post(addr, "/probe", "plain").await;
    assert_eq!(body, "plain");
    assert_eq!(headers["content-type"], "application/octet-stream");
    // A status without a payload.
    let (status, _, body) = post(addr, "/probe", "shape-empty 404").await;
    assert_eq!((status, body.as_str()), (404, ""));
    // The host frames the body: the actor's framing headers are ignored.
    let (status, headers, body) = post(
        addr,
        "/probe",
        "shape 200 - content-length=999 transfer-encoding=chunked connection=close",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "shaped"));
    assert_eq!(headers["content-length"], "6");
    assert!(!headers.contains_key("connection"));
    // Hostile: a status or header that is not HTTP is the actor's fault (502, cause logged).
    for bad in [
        "shape 99 -",
        "shape 700 -",
        "shape two -",
        "shape 200 - bad(name=1",
    ] {
        let (status, _, body) = post(addr, "/probe", bad).await;
        assert_eq!(status, 502, "{bad}: {body}");
        assert_eq!(body, "probe gave an invalid reply\n", "{bad}");
    }
    until("the access records", || metrics.requests("probe", 502) == 4).await;
    // And the actor answers on.
    assert_eq!(post(addr, "/probe", "plain").await.0, 200);
    assert_eq!(system.status("probe").unwrap().restarts, 0);
    let _ = stop.send(());
    assert!(server.await.unwrap());
    system.shutdown().await;
}

#[test]
fn a_bad_http_section_is_refused_with_line_and_column() {
    use airssys_wasm::system::config::SystemConfig;
    let base = "[components.web]\npath = \"web.wasm\"\n[http]\naddr = \"127.0.0.1:8080\"\n";
    for (route, needle) in [
        ("path = \"/a\"\n", "give one of `component` and `actor`"),
        (
            "path = \"/a\"\ncomponent = \"web\"\nactor = \"x\"\n",
            "give one of",
        ),
        ("path = \"a\"\nactor = \"x\"\n", "starts with '/'"),
        (
            "path = \"/a\"\ncomponent = \"nope\"\n",
            "unknown component \"nope\"",
        ),
        (
            "path = \"/a\"\nactor = \"x\"\nmethods = [\"G T\"]\n",
            "invalid method",
        ),
    ] {
        let text = format!("{base}[[http.routes]]\n{route}");
        let err = SystemConfig::parse("system.toml", &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(needle) && err.contains("system.toml:"),
            "{route}: {err}"
        );
    }
    let err = SystemConfig::parse("system.toml", "[http]\naddr = \"nope\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid address \"nope\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_flooding_response_headers_is_stopped_at_the_field_limit() {
    let s = Server::start(context(Duration::from_secs(20)), ServeLimits::default()).await;
    // wasmtime-wasi-http holds at most 128 KiB of fields per instance and
    // traps the guest past it: a 500, the reason in the log, nothing of it sent.
    let t = Instant::now();
    let (status, _, body) = fetch(s.addr, "/header-flood").await;
    assert_eq!((status, body.as_str()), (500, "internal server error\n"));
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    // The others keep being answered.
    assert_eq!(fetch(s.addr, "/").await.0, 200);
    let metrics = s.handler.metrics().clone();
    until("the 500 recorded", || metrics.requests("hello", 500) == 1).await;
    assert!(s.stop().await);
}
