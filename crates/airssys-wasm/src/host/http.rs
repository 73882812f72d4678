//! `wasi:http` (`types`, `outgoing-handler`; `wasmtime-wasi-http`) under the
//! network grants, for every component. Deny by default.
//!
//! Each outgoing request is decided in [`HttpHooks::send_request`] before any
//! connection is made: its authority (`HOST:PORT`, the port defaulting from the
//! scheme) against the manifest's `network.outbound` patterns, then the host's
//! `SecurityPolicy` (`forbidden-ports`, `allow-network`). Allow and deny are
//! audited; a refusal is wasi:http's own `HTTP-request-denied`, so the guest can
//! handle it. What a guest can make the host do is bounded by [`HttpLimits`]:
//! connect and first-byte timeouts that never outlast the call, a cap on the
//! response body bytes, requests in flight, and an optional request rate.

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiHttpHooks, WasiHttpView};

use crate::sandbox::limits::HttpLimits;
use crate::security::capability::{Capabilities, CapabilityKind, FunctionSignature, WitInterface};
use crate::security::policy::Capability;

/// What each function of the interface requires.
pub(crate) const INTERFACE: WitInterface = WitInterface {
    name: "wasi:http/outgoing-handler",
    functions: &[FunctionSignature {
        name: "handle",
        required_capabilities: &[CapabilityKind::NetworkOutbound],
    }],
};

type WasiBody = wasmtime_wasi_http::WasiBody;
type IoFuture = Box<dyn std::future::Future<Output = Result<(), HttpError>> + Send>;
type SendFuture = Box<
    dyn std::future::Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>>
        + Send,
>;

/// The per-instance side of `wasi:http`: who is asking, under what limits.
pub(crate) struct HttpHooks {
    component: Arc<str>,
    caps: Arc<Capabilities>,
    limits: HttpLimits,
    /// The deadline of the call in progress (refreshed at every access).
    pub(crate) deadline: Option<Instant>,
    in_flight: Arc<AtomicU32>,
    /// Token bucket for `requests_per_sec`: tokens and when last refilled.
    bucket: (f64, Instant),
}

impl HttpHooks {
    pub(crate) fn new(component: Arc<str>, caps: Arc<Capabilities>, limits: HttpLimits) -> Self {
        let burst = limits.requests_per_sec.unwrap_or(0) as f64;
        HttpHooks {
            component,
            caps,
            limits,
            deadline: None,
            in_flight: Arc::default(),
            bucket: (burst.max(1.0), Instant::now()),
        }
    }

    /// One request from the rate bucket; false when it is empty.
    fn admit(&mut self) -> bool {
        let Some(rate) = self.limits.requests_per_sec else {
            return true;
        };
        let now = Instant::now();
        let rate = rate as f64;
        let (tokens, at) = self.bucket;
        let tokens = (tokens + now.duration_since(at).as_secs_f64() * rate).min(rate.max(1.0));
        if tokens >= 1.0 {
            self.bucket = (tokens - 1.0, now);
            true
        } else {
            self.bucket = (tokens, now);
            false
        }
    }

    /// The guest's timeout, capped by the limit and by what is left of the call.
    fn bounded(&self, asked: Option<Duration>, limit: Duration) -> Duration {
        let mut d = asked.map_or(limit, |a| a.min(limit));
        if let Some(deadline) = self.deadline {
            d = d.min(deadline.saturating_duration_since(Instant::now()));
        }
        d
    }

    fn refuse(e: HttpError) -> SendFuture {
        Box::new(async move { Err(e) })
    }
}

/// Decrements the in-flight count when the request is finished with.
struct InFlight(Arc<AtomicU32>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: IoFuture,
    ) -> SendFuture {
        drop(fut);
        let uri = request.uri();
        let Some(authority) = uri.authority() else {
            return Self::refuse(HttpError::HttpRequestUriInvalid);
        };
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = authority.host().to_string();
        let resource = format!("{host}:{port}");
        let d = self.caps.authorize(
            &self.component,
            "wasi:http/outgoing-handler.handle",
            &resource,
            &Capability::Http { host: &host, port },
        );
        if !d.allowed {
            tracing::debug!(component = &*self.component, %resource, rule = %d.rule, "outbound HTTP denied");
            return Self::refuse(HttpError::HttpRequestDenied);
        }
        if !self.admit() {
            tracing::debug!(component = &*self.component, %resource, "outbound HTTP over the request rate");
            return Self::refuse(HttpError::ConnectionLimitReached);
        }
        let max = self.limits.max_concurrent;
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!(component = &*self.component, %resource, max, "outbound HTTP: too many requests in flight");
            return Self::refuse(HttpError::ConnectionLimitReached);
        }
        let guard = InFlight(self.in_flight.clone());
        let options = RequestOptions {
            connect_timeout: Some(self.bounded(
                options.and_then(|o| o.connect_timeout),
                self.limits.connect_timeout,
            )),
            first_byte_timeout: Some(self.bounded(
                options.and_then(|o| o.first_byte_timeout),
                self.limits.first_byte_timeout,
            )),
            between_bytes_timeout: options.and_then(|o| o.between_bytes_timeout),
        };
        let limit = self.limits.max_response_bytes;
        Box::new(async move {
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            let response = response.map(|body| {
                Capped {
                    inner: body.boxed_unsync(),
                    left: limit,
                    limit,
                }
                .boxed_unsync()
            });
            let io: IoFuture = Box::new(async move {
                let _guard = guard;
                io.await
            });
            Ok((response, io))
        })
    }
}

/// A response body that fails with `HTTP-response-body-size` past `limit` bytes.
struct Capped {
    inner: WasiBody,
    left: u64,
    limit: u64,
}

impl Body for Capped {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > self.left {
                        return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                            self.limit,
                        )))));
                    }
                    self.left -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// Adds `wasi:http/types` and `wasi:http/outgoing-handler` to the linker.
pub(crate) fn add_to_linker<T: WasiHttpView + Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}
