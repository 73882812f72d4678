//! HTTP routes into a running system: a path prefix (and optional methods) to
//! a component served per request, or to an actor that gets each request as a
//! message and answers with its reply, keeping its mailbox, supervision and
//! storage.
//!
//! A request to an actor route becomes a [`Message`] from `http`: the body is
//! the payload (at most the listener's `max_body_bytes`), its content type the
//! request's, and its metadata `http.method`, `http.path`, `http.query` and one
//! `http.header.NAME` per header (names lower-case). The reply becomes the
//! response, its payload the body; the actor shapes it with `messaging.set-reply`:
//!
//! - `http.status` in the reply's metadata is the status (200 to 599; default
//!   200, or 204 when the actor gave no reply at all);
//! - each `http.header.NAME` entry is a response header (repeat an entry for a
//!   header sent twice, as `set-cookie`); `content-length`, `transfer-encoding`,
//!   `connection`, `keep-alive`, `upgrade`, `te`, `trailer` and
//!   `proxy-connection` are the host's (it frames the body) and are ignored;
//! - `Content-Type` is the `http.header.content-type` entry, else the reply's
//!   content type, else the route's `content-type`, else `application/octet-stream`.
//!
//! A status or header that is not valid HTTP is the actor's fault: 502, the
//! cause logged. Other metadata is not sent. Errors map as the
//! admin API's do: unknown actor 404, full mailbox 503 with `Retry-After`, no
//! reply within the route's timeout 504, an error the guest returned 422, a
//! crash while handling (the supervisor restarts the actor) 502.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};

use super::body::{text, BoxError, ResponseBody};
use super::metrics::{Exchange, HttpMetrics, RouteMetrics};
use super::HttpHandler;
use crate::bindings::{Message, Reply};
use crate::error::{Error, Result};

/// The reply an [`ActorGateway`] promises: the actor's reply, if any.
pub type ReplyFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<Reply>>> + Send + 'a>>;

/// What an actor route needs of the actor layer: a request and its reply.
/// The actor system implements it; a cluster transport can too.
pub trait ActorGateway: Send + Sync + 'static {
    /// Sends `msg` to `actor` and waits up to `timeout` for its reply.
    fn request<'a>(&'a self, actor: &'a str, msg: Message, timeout: Duration) -> ReplyFuture<'a>;
}

/// Where a route leads.
#[derive(Clone)]
pub enum RouteTarget {
    /// A `wasi:http/proxy` component, a fresh instance per request.
    Component(HttpHandler),
    /// An actor: the request as a message, the reply as the response.
    Actor {
        /// The actor's id (`name` or `name/key` of a virtual actor).
        actor: String,
        /// How it is reached.
        gateway: Arc<dyn ActorGateway>,
        /// How long to wait for its reply.
        timeout: Duration,
        /// The content type of a response whose actor sets none (default
        /// `application/octet-stream`).
        content_type: Option<String>,
    },
}

/// One route: requests whose path starts with `prefix` (at a `/` boundary)
/// and whose method is in `methods` (any, when empty).
#[derive(Clone)]
pub struct Route {
    /// The path prefix, e.g. `/orders` (matches `/orders` and `/orders/7`, not `/ordersx`).
    pub prefix: String,
    /// The methods it takes; empty for any.
    pub methods: Vec<http::Method>,
    /// Its name in metrics and access records.
    pub name: Arc<str>,
    /// Where it leads.
    pub target: RouteTarget,
}

impl Route {
    fn matches_path(&self, path: &str) -> bool {
        let p = self.prefix.trim_end_matches('/');
        p.is_empty()
            || path == p
            || (path.starts_with(p) && path.as_bytes().get(p.len()) == Some(&b'/'))
    }
}

/// A table of routes, longest prefix first; 404 when none matches the path,
/// 405 (with `Allow`) when one matches but not its method.
#[derive(Clone)]
pub struct Routes {
    /// Each route with its figures (looked up once).
    routes: Arc<Vec<(Route, RouteMetrics)>>,
    /// The figures of requests no route took (route `none`).
    unrouted: RouteMetrics,
    metrics: Arc<HttpMetrics>,
    max_body_bytes: u64,
}

impl Routes {
    /// The table of `routes`, reporting to `metrics`; actor routes read
    /// request bodies up to `max_body_bytes`.
    pub fn new(mut routes: Vec<Route>, metrics: Arc<HttpMetrics>, max_body_bytes: u64) -> Self {
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.trim_end_matches('/').len()));
        let routes = routes
            .into_iter()
            .map(|r| {
                let m = metrics.route(&r.name);
                (r, m)
            })
            .collect();
        Routes {
            routes: Arc::new(routes),
            unrouted: metrics.route("none"),
            metrics,
            max_body_bytes,
        }
    }

    /// The figures of every route.
    pub fn metrics(&self) -> &Arc<HttpMetrics> {
        &self.metrics
    }

    /// Answers one request by its route.
    pub async fn handle<B>(&self, req: http::Request<B>) -> http::Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let path = req.uri().path().to_string();
        let mut allowed: Vec<&http::Method> = Vec::new();
        let route = self.routes.iter().find(|(r, _)| {
            if !r.matches_path(&path) {
                return false;
            }
            if r.methods.is_empty() || r.methods.contains(req.method()) {
                return true;
            }
            allowed.extend(r.methods.iter());
            false
        });
        let Some((route, metrics)) = route else {
            let exchange = Exchange::start(self.unrouted.clone(), &req);
            let r = if allowed.is_empty() {
                text(http::StatusCode::NOT_FOUND, "no route")
            } else {
                let mut r = text(http::StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                let allow: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
                if let Ok(v) = http::HeaderValue::from_str(&allow.join(", ")) {
                    r.headers_mut().insert(http::header::ALLOW, v);
                }
                r
            };
            exchange.set_status(r.status().as_u16());
            return r;
        };
        match &route.target {
            RouteTarget::Component(handler) => handler.handle(req).await,
            RouteTarget::Actor {
                actor,
                gateway,
                timeout,
                content_type,
            } => {
                let exchange = Exchange::start(metrics.clone(), &req);
                let r = self
                    .to_actor(
                        req,
                        actor,
                        gateway.as_ref(),
                        *timeout,
                        content_type,
                        &exchange,
                    )
                    .await;
                exchange.set_status(r.status().as_u16());
                if let Some(n) = http_body::Body::size_hint(r.body()).exact() {
                    exchange.add_bytes(n);
                }
                r
            }
        }
    }

    async fn to_actor<B>(
        &self,
        req: http::Request<B>,
        actor: &str,
        gateway: &dyn ActorGateway,
        timeout: Duration,
        content_type: &Option<String>,
        exchange: &Exchange,
    ) -> http::Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let cap = self.max_body_bytes;
        let (parts, body) = req.into_parts();
        let payload = match Limited::new(body, usize::try_from(cap).unwrap_or(usize::MAX))
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return text(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("request body over {cap} bytes"),
                )
            }
            Err(e) => {
                return text(
                    http::StatusCode::BAD_REQUEST,
                    &format!("reading the request body: {e}"),
                )
            }
        };
        let mut msg = Message::new("http", payload.to_vec());
        if let Some(ct) = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            msg = msg.with_content_type(ct);
        }
        msg = msg
            .with_metadata("http.method", parts.method.as_str())
            .with_metadata("http.path", parts.uri.path())
            .with_metadata("http.query", parts.uri.query().unwrap_or(""));
        for (name, value) in &parts.headers {
            msg = msg.with_metadata(
                format!("http.header.{}", name.as_str()),
                String::from_utf8_lossy(value.as_bytes()),
            );
        }
        match gateway.request(actor, msg, timeout).await {
            Ok(Some(reply)) => match response_of(reply, content_type.as_deref()) {
                Ok(r) => r,
                Err(why) => {
                    let why = format!("{actor}: {why}");
                    tracing::warn!(target: "airssys_wasm::http", "{why}");
                    exchange.fail(why);
                    text(
                        http::StatusCode::BAD_GATEWAY,
                        &format!("{actor} gave an invalid reply"),
                    )
                }
            },
            Ok(None) => {
                let mut r = text(http::StatusCode::NO_CONTENT, "");
                *r.body_mut() = http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync();
                r.headers_mut().remove(http::header::CONTENT_TYPE);
                r
            }
            Err(e) => {
                let status = status_of(&e);
                if status.is_server_error() {
                    tracing::warn!(target: "airssys_wasm::http", "{e}");
                }
                exchange.fail(e.to_string());
                // A server error's cause (a trap, the guest's stderr) is for the
                // log; the client learns only what kind of failure it was.
                let said = match status {
                    http::StatusCode::BAD_GATEWAY => {
                        format!("{actor} failed while handling the request")
                    }
                    http::StatusCode::SERVICE_UNAVAILABLE => {
                        format!("{actor} is unavailable; retry")
                    }
                    http::StatusCode::GATEWAY_TIMEOUT => {
                        format!("no reply from {actor} within {timeout:?}")
                    }
                    _ => e.to_string(),
                };
                let mut r = text(status, &crate::units::escape_controls(&said));
                if status == http::StatusCode::SERVICE_UNAVAILABLE {
                    r.headers_mut().insert(
                        http::header::RETRY_AFTER,
                        http::HeaderValue::from_static("1"),
                    );
                }
                r
            }
        }
    }
}

/// Headers the host owns: it frames the body and the connection.
const HOST_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// The response an actor's reply stands for (see the module docs); `Err` names
/// what in the reply is not valid HTTP.
fn response_of(
    reply: Reply,
    route_content_type: Option<&str>,
) -> std::result::Result<http::Response<ResponseBody>, String> {
    let status = match reply.metadata_value("http.status") {
        None => http::StatusCode::OK,
        Some(s) => s
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|n| (200..=599).contains(n))
            .and_then(|n| http::StatusCode::from_u16(n).ok())
            .ok_or_else(|| {
                format!(
                    "http.status {:?} is not a status from 200 to 599",
                    crate::units::escape_controls(s)
                )
            })?,
    };
    let mut headers = http::HeaderMap::new();
    for (key, value) in &reply.metadata {
        let Some(name) = key.strip_prefix("http.header.") else {
            continue;
        };
        let name =
            http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| {
                format!(
                    "{:?} is not a header name",
                    crate::units::escape_controls(name)
                )
            })?;
        if HOST_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header {name} is not a valid header value"))?;
        headers.append(name, value);
    }
    if !headers.contains_key(http::header::CONTENT_TYPE) {
        let ct = reply
            .content_type
            .as_deref()
            .or(route_content_type)
            .unwrap_or("application/octet-stream");
        let v = http::HeaderValue::from_str(ct).map_err(|_| {
            format!(
                "content type {:?} is not a header value",
                crate::units::escape_controls(ct)
            )
        })?;
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    let mut r = http::Response::new(
        Full::new(Bytes::from(reply.payload))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    Ok(r)
}

/// The HTTP status of a failed delivery or request, as the admin API and
/// actor routes answer it.
pub(crate) fn status_of(e: &Error) -> http::StatusCode {
    use http::StatusCode;
    match e {
        Error::NoSuchActor { .. } => StatusCode::NOT_FOUND,
        Error::MailboxFull { .. }
        | Error::NotLogged { .. }
        | Error::Unavailable { .. }
        | Error::ShuttingDown
        | Error::ActorStopped { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::Refused { .. } => StatusCode::FORBIDDEN,
        Error::InvalidActorId { .. } => StatusCode::BAD_REQUEST,
        Error::RequestTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        Error::Guest { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::BAD_GATEWAY,
    }
}
