//! Inbound HTTP: components that export `wasi:http/incoming-handler` (the
//! `wasi:http/proxy` world that `cargo component new --proxy`, componentize-js
//! and componentize-py produce) answer requests, as under `wasmtime serve`.
//!
//! - [`HttpHandler`] — one component under one context: a fresh pooled
//!   instance per request, the context's limits and grants per request;
//! - [`serve`] — a listener around a handler: keep-alive, a connection cap, a
//!   header-read timeout and header-size cap, a graceful drain;
//! - [`HttpMetrics`] — requests by status, latency, in flight, instances; an
//!   access-log line per request (target `airssys_wasm::http`).
//!
//! ```no_run
//! # async fn demo() -> airssys_wasm::Result<()> {
//! use airssys_wasm::serve::{serve, HttpHandler, ServeLimits};
//! use airssys_wasm::{Engine, EngineConfig, ExecutionContext};
//!
//! let engine = Engine::new(EngineConfig::default().consume_fuel(true))?;
//! let component = engine.load_file("hello.wasm")?;
//! let handler = HttpHandler::new(&component, ExecutionContext::new("hello"), ServeLimits::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.map_err(|e| {
//!     airssys_wasm::Error::Io { path: "127.0.0.1:8080".into(), source: e }
//! })?;
//! serve(listener, handler, async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

mod body;
mod handler;
pub(crate) mod listener;
mod metrics;
mod routes;

use std::future::Future;
use std::time::Duration;

pub use body::{BoxError, ResponseBody};
pub use handler::HttpHandler;
pub use metrics::HttpMetrics;
pub(crate) use routes::status_of;
pub use routes::{ActorGateway, ReplyFuture, Route, RouteTarget, Routes};

/// What a listener and its handlers let clients hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Requests handled at once (each holds an instance); one more is
    /// answered 503 with `Retry-After: 1` (default 256; keep it at or under
    /// the engine's pool of instances).
    pub max_concurrency: usize,
    /// Connections open at once; one more is answered 503 and closed (default 1024).
    pub max_connections: usize,
    /// The largest request head, request line and headers (default 64 KiB,
    /// at least 8 KiB): 431 past it.
    pub max_header_bytes: usize,
    /// The largest request body (default 16 MiB): 413 past it.
    pub max_body_bytes: u64,
    /// Time to send a request head, also on a kept-alive connection waiting
    /// for its next request (default 10 s): no slow-loris.
    pub header_read_timeout: Duration,
    /// The per-request timeout when the context has none (default 30 s).
    pub request_timeout: Duration,
    /// After shutdown is asked, how long requests in flight may finish (default 10 s).
    pub drain_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_concurrency: 256,
            max_connections: 1024,
            max_header_bytes: 64 << 10,
            max_body_bytes: 16 << 20,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `handler` on `listener` until `shutdown` completes; then stops
/// accepting, lets requests in flight finish for up to the handler's
/// `drain_timeout`, and returns whether they all did.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handler: HttpHandler,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> bool {
    let conn = conn_limits(handler.limits());
    let service = hyper::service::service_fn(move |req| {
        let handler = handler.clone();
        async move { Ok::<_, std::convert::Infallible>(handler.handle(req).await) }
    });
    listener::accept_loop(listener, conn, service, shutdown).await
}

/// Serves `routes` on `listener` under `limits` until `shutdown`, as
/// [`serve`] does for one handler.
pub async fn serve_routes(
    listener: tokio::net::TcpListener,
    routes: Routes,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> bool {
    let service = hyper::service::service_fn(move |req| {
        let routes = routes.clone();
        async move { Ok::<_, std::convert::Infallible>(routes.handle(req).await) }
    });
    listener::accept_loop(listener, conn_limits(&limits), service, shutdown).await
}

fn conn_limits(limits: &ServeLimits) -> listener::ConnLimits {
    listener::ConnLimits {
        name: "serve",
        max_connections: limits.max_connections,
        header_read_timeout: limits.header_read_timeout,
        max_header_bytes: limits.max_header_bytes,
        drain_timeout: limits.drain_timeout,
        refusal: (
            "text/plain; charset=utf-8",
            format!(
                "the server holds {} connections at once; retry\n",
                limits.max_connections
            )
            .into(),
        ),
    }
}

/// Serves `GET /metrics` (Prometheus text format) on `listener` until
/// `shutdown`: the figures of `metrics`, kept off the guest's own routes.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: std::sync::Arc<HttpMetrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let conn = listener::ConnLimits {
        name: "metrics",
        max_connections: 16,
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: 16 << 10,
        drain_timeout: Duration::from_secs(1),
        refusal: ("text/plain", "too many connections\n".into()),
    };
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let metrics = metrics.clone();
        async move {
            let r = if req.uri().path() == "/metrics" {
                let mut r = body::text(http::StatusCode::OK, metrics.encode().trim_end());
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                r
            } else {
                body::text(http::StatusCode::NOT_FOUND, "only /metrics here")
            };
            Ok::<_, std::convert::Infallible>(r)
        }
    });
    listener::accept_loop(listener, conn, service, shutdown).await;
}
