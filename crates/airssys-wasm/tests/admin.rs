//! The admin API against hostile clients: half-sent requests, too many
//! connections, odd requests; every error is JSON. Raw TCP on loopback.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airssys_wasm::system::admin::{self, AdminLimits};
use airssys_wasm::{ActorId, ActorSpec, ActorSystem, ExecutionContext};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(limits: AdminLimits) -> (SocketAddr, Arc<ActorSystem>) {
    let engine = common::engine();
    let probe = engine.load_file(common::component("actor_probe")).unwrap();
    let spec = ActorSpec::new(
        ActorId::new("a").unwrap(),
        probe,
        ExecutionContext::new("probe"),
    );
    let system = Arc::new(ActorSystem::builder().actor(spec).start().await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(admin::serve_with(
        listener,
        system.clone(),
        None,
        limits,
        None,
        std::future::pending(),
    ));
    (addr, system)
}

/// Sends `request` and reads the answer until the server closes (at most 5 s).
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_and_json(answer: &str) -> (u16, bool) {
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = answer
        .to_ascii_lowercase()
        .contains("content-type: application/json")
        && answer.contains("{\"error\":");
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_even_the_ones_axum_makes() {
    let (addr, system) = start(AdminLimits::default()).await;
    let close = "Connection: close\r\n";
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (format!("GET /nope HTTP/1.1\r\nHost: x\r\n{close}\r\n").into_bytes(), 404),
        (format!("GET /components/a/messages HTTP/1.1\r\nHost: x\r\n{close}\r\n").into_bytes(), 405),
        (format!("POST /components/%FF/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n{close}\r\n").into_bytes(), 400),
        (
            format!(
                "POST /components/a/messages?reply=true&timeout=99999999999999999999 HTTP/1.1\r\n\
                 Host: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n{close}\r\nhi"
            )
            .into_bytes(),
            400,
        ),
        (
            format!(
                "POST /components/a/messages HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n{close}\r\n{}",
                2 << 20,
                "x".repeat(2 << 20)
            )
            .into_bytes(),
            413,
        ),
        (
            format!(
                "POST /components/a/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n{close}\r\nzz\r\n"
            )
            .into_bytes(),
            400,
        ),
    ];
    for (request, want) in cases {
        let answer = raw(addr, &request).await;
        let head = String::from_utf8_lossy(&request[..request.len().min(80)]).into_owned();
        let (status, json) = status_and_json(&answer);
        assert_eq!(status, want, "{head}: {answer}");
        assert!(json, "{head}: not JSON: {answer}");
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_is_dropped_at_the_header_read_timeout() {
    let limits = AdminLimits {
        header_read_timeout: Duration::from_millis(300),
        ..AdminLimits::default()
    };
    let (addr, system) = start(limits).await;
    let t = Instant::now();
    let answer = raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    let waited = t.elapsed();
    assert!(waited < Duration::from_secs(3), "held {waited:?}: {answer}");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A whole request still gets its answer.
    let ok = raw(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_refused_with_503() {
    let limits = AdminLimits {
        max_connections: 2,
        ..AdminLimits::default()
    };
    let (addr, system) = start(limits).await;
    let held: Vec<TcpStream> = vec![
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    // Give the server the two accepts first.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = raw(
            addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        if answer.starts_with("HTTP/1.1 503") {
            let (_, json) = status_and_json(&answer);
            assert!(json, "{answer}");
            assert!(
                answer.to_ascii_lowercase().contains("retry-after: 1"),
                "{answer}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never refused: {answer}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(held);
    // Once they close, there is room again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = raw(
            addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_page_and_metrics_show_what_each_actor_holds() {
    let (addr, system) = start(AdminLimits::default()).await;
    for i in 0..5 {
        let _ = system
            .send(
                "nobody",
                airssys_wasm::Message::new("host", format!("m{i}")),
            )
            .await;
    }
    let get = |path: &str| {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        async move { raw(addr, request.as_bytes()).await }
    };
    let page = get("/dead-letters?limit=2").await;
    let body = page.split("\r\n\r\n").nth(1).unwrap_or_default();
    let letters: serde_json::Value = serde_json::from_str(body).unwrap();
    let seqs: Vec<u64> = letters
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2], "{body}");
    let next = get("/dead-letters?after=2&limit=100").await;
    let body = next.split("\r\n\r\n").nth(1).unwrap_or_default();
    let letters: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(letters.as_array().unwrap().len(), 3, "{body}");
    let (status, json) = status_and_json(&get("/dead-letters?limit=0").await);
    assert_eq!((status, json), (400, true));
    let metrics = get("/metrics").await;
    assert!(
        metrics.contains("airssys_host_held_bytes{actor=\"a\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("airssys_host_budget_refusals_total"),
        "{metrics}"
    );
    system.shutdown().await;
}
