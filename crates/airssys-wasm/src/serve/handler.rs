//! [`HttpHandler`]: a `wasi:http/proxy` component answering requests, a fresh
//! instance per request from one `InstancePre`, as `wasmtime serve` does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::{oneshot, Semaphore};
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::WasiHttpView;

use super::body::{text, BoxError, CappedBody, GuestBody, ResponseBody};
use super::metrics::{Exchange, HttpMetrics, RouteMetrics};
use super::ServeLimits;
use crate::error::{Error, Result};
use crate::host::HostState;
use crate::runtime::component::{Component, Prepared};
use crate::runtime::instance::prepare_call_within;
use crate::runtime::trap::Failure;
use crate::sandbox::context::ExecutionContext;

type Outparam = std::result::Result<
    hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>,
    ErrorCode,
>;

struct Inner {
    component: Component,
    ctx: ExecutionContext,
    pre: ProxyPre<HostState>,
    limits: ServeLimits,
    timeout: Duration,
    permits: Arc<Semaphore>,
    metrics: Arc<HttpMetrics>,
    route: RouteMetrics,
}

/// A component that exports `wasi:http/incoming-handler`, ready to answer
/// requests under one [`ExecutionContext`]: each request gets a fresh
/// instance with the context's limits (memory, fuel, timeout) and grants
/// (outbound HTTP, files, storage), and the host's bounds of [`ServeLimits`].
/// Cheap to clone.
///
/// [`HttpHandler::handle`] answers one request; [`serve`](super::serve) runs
/// a listener around it. What a client sees when things go wrong:
///
/// | case | answer |
/// |---|---|
/// | more than `max_concurrency` requests in flight | 503 with `Retry-After: 1` |
/// | a declared body over `max_body_bytes` | 413 before the guest runs |
/// | a streamed body going past it | 413 if the guest has not answered yet (its read fails) |
/// | the timeout before the guest sent a response head | 504 |
/// | the timeout, a trap or a limit after the head | the body is cut (the connection closes mid-stream) |
/// | a trap, a limit, no response at all | 500; the reason is logged, never sent |
#[derive(Clone)]
pub struct HttpHandler {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HttpHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpHandler")
            .field("component", &self.inner.ctx.component_id())
            .field("route", &self.inner.route.name)
            .finish()
    }
}

impl HttpHandler {
    /// A handler for `component` under `ctx` and `limits`, reporting to a
    /// fresh [`HttpMetrics`] under the route name `component_id`.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the component does not export
    /// `wasi:http/incoming-handler`.
    pub fn new(component: &Component, ctx: ExecutionContext, limits: ServeLimits) -> Result<Self> {
        let route: Arc<str> = ctx.component_id().into();
        Self::with_metrics(component, ctx, limits, Arc::default(), route)
    }

    /// [`HttpHandler::new`] reporting to `metrics` under `route` (several
    /// handlers of one listener share one [`HttpMetrics`]).
    ///
    /// # Errors
    ///
    /// As [`HttpHandler::new`].
    pub fn with_metrics(
        component: &Component,
        ctx: ExecutionContext,
        limits: ServeLimits,
        metrics: Arc<HttpMetrics>,
        route: Arc<str>,
    ) -> Result<Self> {
        let pre =
            match component.prepared() {
                Prepared::Component {
                    http: Some(pre), ..
                } => pre.clone(),
                _ => return Err(Error::Unsupported {
                    component: ctx.component_id().to_string(),
                    reason:
                        "does not export wasi:http/incoming-handler@0.2 (the wasi:http/proxy world)"
                            .into(),
                }),
            };
        let timeout = ctx.timeout().unwrap_or(limits.request_timeout);
        Ok(HttpHandler {
            inner: Arc::new(Inner {
                component: component.clone(),
                permits: Arc::new(Semaphore::new(limits.max_concurrency.max(1))),
                ctx,
                pre,
                limits,
                timeout,
                route: metrics.route(&route),
                metrics,
            }),
        })
    }

    /// The figures of the requests this handler answered.
    pub fn metrics(&self) -> &Arc<HttpMetrics> {
        &self.inner.metrics
    }

    /// The component it serves.
    pub fn component(&self) -> &Component {
        &self.inner.component
    }

    /// The bounds it answers under.
    pub fn limits(&self) -> &ServeLimits {
        &self.inner.limits
    }

    /// Answers one request: never an error, every failure is a status (see
    /// the table on [`HttpHandler`]) and a log line.
    pub async fn handle<B>(&self, req: http::Request<B>) -> http::Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let inner = &self.inner;
        let exchange = Exchange::start(inner.route.clone(), &req);
        let (response, from_guest) = match self.answer(req, &exchange).await {
            Ok(guest) => (guest, true),
            Err(host) => (host, false),
        };
        exchange.set_status(response.status().as_u16());
        response.map(|b| GuestBody::new(b, exchange, from_guest).boxed_unsync())
    }

    /// `Ok` the guest's response, `Err` the host's (a host-made answer is
    /// never cut by the guest's failure: it is the report of that failure).
    async fn answer<B>(
        &self,
        req: http::Request<B>,
        exchange: &Arc<Exchange>,
    ) -> std::result::Result<http::Response<ResponseBody>, http::Response<ResponseBody>>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let inner = &self.inner;
        let component = inner.ctx.component_id();
        let cap = inner.limits.max_body_bytes;
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let internal = || {
            text(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error",
            )
        };
        let too_large = || {
            text(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body over {cap} bytes"),
            )
        };
        let too_late = || {
            text(
                http::StatusCode::GATEWAY_TIMEOUT,
                &format!("no response within {:?}", inner.timeout),
            )
        };
        if declared.is_some_and(|n| n > cap) {
            return Err(too_large());
        }
        let Ok(permit) = inner.permits.clone().try_acquire_owned() else {
            let mut r = text(
                http::StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "{component} is answering {} requests at once; retry",
                    inner.limits.max_concurrency
                ),
            );
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
            return Err(r);
        };
        let (mut parts, body) = req.into_parts();
        if parts.uri.authority().is_none() && !parts.headers.contains_key(http::header::HOST) {
            // HTTP/1.0 without Host: wasi:http needs an authority.
            parts.headers.insert(
                http::header::HOST,
                http::HeaderValue::from_static("localhost"),
            );
        }
        let body = CappedBody::new(body, cap, exchange.body_too_large.clone());
        let req = http::Request::from_parts(parts, body);
        let start = Instant::now();
        let deadline = start + inner.timeout;
        let store = match self.store(start) {
            Ok(s) => s,
            Err(e) => {
                exchange.fail(e.to_string());
                tracing::warn!(target: "airssys_wasm::http", "{e}");
                return Err(internal());
            }
        };
        inner.route.instance_created();
        let (tx, rx) = oneshot::channel::<Outparam>();
        let guest = tokio::spawn(run_guest(
            self.inner.clone(),
            store,
            req,
            tx,
            deadline,
            exchange.clone(),
            permit,
        ));
        match tokio::time::timeout_at(deadline.into(), rx).await {
            Ok(Ok(Ok(resp))) => Ok(resp.map(|b| b.map_err(BoxError::from).boxed_unsync())),
            Ok(Ok(Err(code))) => {
                let reason = format!("{component}: the guest answered with error {code:?}");
                tracing::warn!(target: "airssys_wasm::http", "{reason}");
                exchange.fail(reason);
                Err(internal())
            }
            Ok(Err(_)) => {
                // The guest's store is gone without a response: its task has
                // recorded why (or it returned without answering).
                let _ = guest.await;
                if exchange
                    .body_too_large
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    return Err(too_large());
                }
                if exchange.timed_out() {
                    return Err(too_late());
                }
                if exchange.failure().is_none() {
                    let reason = format!("{component}: returned without sending a response");
                    tracing::warn!(target: "airssys_wasm::http", "{reason}");
                    exchange.fail(reason);
                }
                Err(internal())
            }
            Err(_) => Err(too_late()),
        }
    }

    /// A store for one request: the context's grants and limits, armed for a
    /// call that may last the request's timeout.
    fn store(&self, start: Instant) -> Result<Store<HostState>> {
        let inner = &self.inner;
        let mut store = inner.component.store_for(&inner.ctx, None)?;
        prepare_call_within(&mut store, &inner.ctx, start, Some(inner.timeout))?;
        Ok(store)
    }
}

/// Instantiates the component and calls its handler; records how the guest
/// ended (and its fuel) in `exchange` before the store, and with it the
/// response body's sender, is dropped.
async fn run_guest<B>(
    inner: Arc<Inner>,
    mut store: Store<HostState>,
    req: http::Request<CappedBody<B>>,
    tx: oneshot::Sender<Outparam>,
    deadline: Instant,
    exchange: Arc<Exchange>,
    permit: tokio::sync::OwnedSemaphorePermit,
) where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let fuel_start = store.get_fuel().ok();
    let call = async {
        let proxy = inner.pre.instantiate_async(&mut store).await?;
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(tx)?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, req, out)
            .await
    };
    let result = match tokio::time::timeout_at(deadline.into(), call).await {
        Ok(r) => r.map_err(|e| Failure::of(&inner.ctx, &mut store.data_mut().run).classify(e)),
        // Waiting in the host (a slow client's body, a sleep): no epoch check
        // can stop it, the clock does.
        Err(_) => Err(Error::Timeout {
            component: inner.ctx.component_id().to_string(),
            limit: inner.timeout,
        }),
    };
    if let (Some(start), Ok(left)) = (fuel_start, store.get_fuel()) {
        if store.data_mut().run.metered {
            exchange.set_fuel(start.saturating_sub(left));
        }
    }
    if let Err(mut e) = result {
        if let Error::Timeout { limit, .. } = &mut e {
            *limit = inner.timeout;
            exchange.mark_timed_out();
        }
        let reason = e.to_string();
        tracing::warn!(target: "airssys_wasm::http", route = %inner.route.name, "{reason}");
        exchange.fail(reason);
    }
    drop(store);
    drop(permit);
}
