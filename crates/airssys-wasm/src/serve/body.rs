//! Bodies at the edge of the host: the request body a guest reads, held to its
//! cap, and the response body the client reads, counted and cut (never ended
//! cleanly) when the guest failed after sending the head.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

use super::metrics::Exchange;

/// Errors a response body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the host's HTTP listeners send.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// A short text answer from the host itself (an error, a refusal).
pub(crate) fn text(status: http::StatusCode, message: &str) -> http::Response<ResponseBody> {
    let mut r = http::Response::new(
        Full::new(Bytes::from(format!("{message}\n")))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A request body that fails once more than `cap` bytes came, and says so in
/// `tripped` (the handler answers 413 if the guest had not answered yet).
pub(crate) struct CappedBody<B> {
    inner: B,
    seen: u64,
    cap: u64,
    tripped: Arc<AtomicBool>,
}

impl<B> CappedBody<B> {
    pub(crate) fn new(inner: B, cap: u64, tripped: Arc<AtomicBool>) -> Self {
        CappedBody {
            inner,
            seen: 0,
            cap,
            tripped,
        }
    }
}

impl<B> Body for CappedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.tripped.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpRequestBodySize(
                Some(this.seen),
            ))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.cap {
                        this.tripped.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(
                            wasmtime_wasi_http::Error::HttpRequestBodySize(Some(this.seen)),
                        )));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
                    format!("reading the request body: {e}"),
                )))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The guest's response body on its way to the client: bytes counted for the
/// access log, and an error instead of a clean end when the guest failed
/// (a trap, a limit, the timeout) before finishing it, so that the client
/// sees a cut stream, never a short body that looks whole.
pub(crate) struct GuestBody<B> {
    inner: B,
    exchange: Arc<Exchange>,
    /// Whether the guest made this response (a host-made one is never cut).
    from_guest: bool,
}

impl<B> GuestBody<B> {
    pub(crate) fn new(inner: B, exchange: Arc<Exchange>, from_guest: bool) -> Self {
        GuestBody {
            inner,
            exchange,
            from_guest,
        }
    }
}

impl<B> Body for GuestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.exchange.add_bytes(data.len() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.exchange.mark_cut();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) if !this.from_guest => Poll::Ready(None),
            Poll::Ready(None) => match this.exchange.failure() {
                // The body's sender went away with the guest's store: the
                // guest failed before finishing the body.
                Some(reason) => {
                    this.exchange.mark_cut();
                    Poll::Ready(Some(Err(reason.into())))
                }
                None => Poll::Ready(None),
            },
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }
}
