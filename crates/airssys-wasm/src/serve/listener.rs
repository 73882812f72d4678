//! The accept loop every HTTP listener of the host shares (`serve`, HTTP routes
//! and the admin API): hyper's HTTP/1.1 server with a connection cap, a
//! header-read timeout (no slow-loris), a header-size cap, keep-alive, and a
//! graceful drain when shutdown is asked.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How much a client may make a listener hold.
#[derive(Debug, Clone)]
pub(crate) struct ConnLimits {
    /// Who is listening, for log lines (`admin API`, `serve`).
    pub name: &'static str,
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Time to send a request head, also on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// The largest request head in bytes (431 past it; at least 8 KiB).
    pub max_header_bytes: usize,
    /// How long requests in flight may finish after shutdown is asked.
    pub drain_timeout: Duration,
    /// The answer to a connection over the cap: content type and body.
    pub refusal: (&'static str, Arc<str>),
}

/// Serves `service` on `listener` until `shutdown` completes; then stops
/// accepting, lets requests in flight finish for up to `drain_timeout`, and
/// drops the connections left. Returns whether every connection finished.
pub(crate) async fn accept_loop<S, B>(
    listener: tokio::net::TcpListener,
    limits: ConnLimits,
    service: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> bool
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("{}: accept failed: {e}", limits.name);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse_connection(stream, limits.refusal.clone()));
            continue;
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_header_size(limits.max_header_bytes.max(8192))
            .max_buf_size(limits.max_header_bytes.max(8192) + (64 << 10))
            .keep_alive(true);
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_ok()
}

/// Answers a connection over the cap with a 503 and closes it.
async fn refuse_connection(mut stream: tokio::net::TcpStream, refusal: (&'static str, Arc<str>)) {
    use tokio::io::AsyncWriteExt;
    let (content_type, body) = refusal;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {content_type}\r\n\
         retry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
