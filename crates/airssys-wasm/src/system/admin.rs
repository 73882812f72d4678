//! The HTTP admin API of a running [`ActorSystem`], with JSON bodies and
//! Prometheus metrics (axum):
//!
//! | route | answer |
//! |---|---|
//! | `GET /components` | a JSON array, one [`ActorStatus`](crate::ActorStatus) per actor |
//! | `POST /components/{id}/messages` (`id` percent-encoded: `counter%2F7`) | the body is the payload: 202 (`?message-id=ID`: a durable actor in a cluster takes it once, so a send that failed may be sent again with the same id); with `?reply=true` (and `&timeout=5s`, at most 60 s) the reply body with 200 (204 when the actor gave none) |
//! | `GET /dead-letters` | kept dead letters as JSON, oldest first, a page at a time: `?after=SEQ&limit=N` (default 100, at most 1000); pass the last `seq` to get the next page |
//! | `POST /upgrade/{component}` (`?probation=30s`) | the body is the new version's `.wasm` (at most 512 MiB, the component file limit), with its `.sig` hex-encoded in an `airssys-signature` header where signatures are required (403 without one or when it does not verify): compiled and link-checked, then each actor declared with that component switches to it between two messages ([`ActorSystem::upgrade`]); 200 with `{"component", "actors": [{"id", "version"} or {"id", "error"}]}`, 404 when no actor runs it, 422 when it does not load |
//! | `POST /components/{id}/rollback` | the actor goes back to its previous version: 200 `{"id", "version"}`, 409 with why not |
//! | `GET /metrics` | Prometheus text format: the system's figures, and the `[http]` listener's (`airssys_http_*`) when [`serve_with`] is given them |
//! | `GET /healthz` | 200 while the system runs, 503 once its root supervisor failed |
//! | `GET /hosts` | the hosts of the cluster this system joined, this one first: a JSON array of [`HostStatus`](crate::HostStatus) (`id`, `health`: alive/dead/left, `last_seen_ms`, `actors`, `this`); `[]` on its own |
//!
//! Errors are JSON `{"error": "..."}`: an unknown actor 404, a full mailbox 503
//! (with `Retry-After`), a refused sender 403, a malformed id or parameter 400,
//! a payload over 1 MiB 413, an error the guest returned 422, a crash while
//! handling (or a reply over the actor's `max-message-bytes`) 502, no reply in
//! time 504, a missing or wrong bearer token 401. Errors axum or hyper raise
//! themselves (405, a broken body, an oversized header) are answered as JSON too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::actor::ActorSystem;
use crate::bindings::Message;
use crate::error::Error;
use crate::serve::{status_of, HttpMetrics};
use crate::units::parse_duration;

/// The largest request body (a message payload).
const MAX_BODY: usize = 1 << 20;
/// The longest `?reply=true` wait.
const MAX_REPLY_WAIT: Duration = Duration::from_secs(60);
/// The `?reply=true` wait when `timeout` is not given.
const DEFAULT_REPLY_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct Admin {
    system: Arc<ActorSystem>,
    token: Option<Arc<str>>,
    body_read_timeout: Duration,
    http: Option<Arc<HttpMetrics>>,
}

/// The admin API as an axum `Router` over `system`. With `token`, every request
/// must carry `Authorization: Bearer TOKEN`.
pub fn router(system: Arc<ActorSystem>, token: Option<String>) -> Router {
    router_with(system, token, AdminLimits::default(), None)
}

fn router_with(
    system: Arc<ActorSystem>,
    token: Option<String>,
    limits: AdminLimits,
    http: Option<Arc<HttpMetrics>>,
) -> Router {
    let admin = Admin {
        system,
        token: token.map(Arc::from),
        body_read_timeout: limits.body_read_timeout,
        http,
    };
    Router::new()
        .route("/components", get(components))
        .route("/components/{id}/messages", post(message))
        .route("/components/{id}/rollback", post(rollback))
        .route("/upgrade/{component}", post(upgrade))
        .route("/dead-letters", get(dead_letters))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/hosts", get(hosts))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(admin.clone(), authorize))
        .with_state(admin)
}

/// How much the admin API lets a client hold: connections, time to send a
/// request's head and body, and (with the 1 MiB body cap) so its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// Connections open at once; one more is answered 503 and closed (default 128).
    pub max_connections: usize,
    /// Time to send a request head, also on a kept-alive connection waiting
    /// for its next request (default 10 s): no slow-loris.
    pub header_read_timeout: Duration,
    /// Time to send a request body (default 10 s): 408 past it.
    pub body_read_timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            max_connections: 128,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves the admin API on `listener` until `shutdown` completes, under the
/// default [`AdminLimits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    system: Arc<ActorSystem>,
    token: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(
        listener,
        system,
        token,
        AdminLimits::default(),
        None,
        shutdown,
    )
    .await
}

/// [`serve`] under `limits`; `/metrics` also shows `http` (the figures of the
/// system's `[http]` listener, [`Routes::metrics`](crate::serve::Routes::metrics)),
/// so one scrape sees both. In-flight requests finish after `shutdown` (up
/// to 5 s); then the remaining connections are dropped.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    system: Arc<ActorSystem>,
    token: Option<String>,
    limits: AdminLimits,
    http: Option<Arc<HttpMetrics>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router_with(system, token, limits, http);
    let conn = crate::serve::listener::ConnLimits {
        name: "admin API",
        max_connections: limits.max_connections,
        header_read_timeout: limits.header_read_timeout,
        max_header_bytes: 64 << 10,
        drain_timeout: Duration::from_secs(5),
        refusal: (
            "application/json",
            format!(
                "{{\"error\":\"the admin API holds {} connections at once; retry\"}}",
                limits.max_connections
            )
            .into(),
        ),
    };
    let service = hyper_util::service::TowerToHyperService::new(app);
    crate::serve::listener::accept_loop(listener, conn, service, shutdown).await;
    Ok(())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// Turns the plain-text or empty error answers axum's extractors and routing
/// give (405, 413, 400 for a broken body or bad UTF-8 in a path) into JSON.
async fn json_errors(req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    let status = r.status();
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return r;
    }
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text.trim().to_string()
    };
    let mut out = error(status, message);
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

async fn authorize(State(admin): State<Admin>, req: Request, next: Next) -> Response {
    if let Some(token) = &admin.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Compare in constant time for equal lengths.
        let ok = given.is_some_and(|g| {
            g.len() == token.len()
                && g.bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if !ok {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

async fn components(State(admin): State<Admin>) -> Response {
    Json(admin.system.actors()).into_response()
}

/// Dead letters per page by default, and at most.
const DEAD_LETTER_PAGE: usize = 100;
const DEAD_LETTER_PAGE_MAX: usize = 1000;

async fn dead_letters(
    State(admin): State<Admin>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let after = match q.get("after").map(|a| a.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "after: expected a dead letter's seq",
            )
        }
    };
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => DEAD_LETTER_PAGE,
        Some(Ok(n)) if (1..=DEAD_LETTER_PAGE_MAX).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("limit: expected 1 to {DEAD_LETTER_PAGE_MAX}"),
            )
        }
    };
    Json(admin.system.dead_letters_page(after, limit)).into_response()
}

async fn hosts(State(admin): State<Admin>) -> Response {
    Json(admin.system.hosts()).into_response()
}

async fn healthz(State(admin): State<Admin>) -> Response {
    match admin.system.failure() {
        None => Json(serde_json::json!({ "status": "ok" })).into_response(),
        Some(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "failed", "reason": e.to_string() })),
        )
            .into_response(),
    }
}

fn failed(e: Error) -> Response {
    let status = status_of(&e);
    let mut r = error(status, e.to_string());
    if matches!(e, Error::MailboxFull { .. }) {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

async fn message(
    State(admin): State<Admin>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Body,
) -> Response {
    if let Err(e) = crate::ActorId::parse(&id) {
        return failed(e);
    }
    let reply = match q.get("reply").map(String::as_str) {
        None | Some("false") => false,
        Some("true") | Some("") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("reply={other:?}: expected true or false"),
            )
        }
    };
    let wait = match q.get("timeout") {
        None => DEFAULT_REPLY_WAIT,
        Some(t) => match parse_duration(t) {
            Ok(d) if !d.is_zero() && d <= MAX_REPLY_WAIT => d,
            Ok(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("timeout={t}: expected more than 0 and at most 60s"),
                )
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("timeout={t}: {e}")),
        },
    };
    let message_id = match q.get("message-id") {
        None => None,
        Some(m) if !m.is_empty() && m.len() <= 128 && m.bytes().all(|b| b.is_ascii_graphic()) => {
            Some(m.clone())
        }
        Some(m) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("message-id={m:?}: 1 to 128 printable ASCII characters, no space"),
            )
        }
    };
    // The parameters are checked first: a bad request is answered before
    // its body is asked for (no `100 Continue`).
    let body: Bytes = match tokio::time::timeout(
        admin.body_read_timeout,
        axum::body::to_bytes(body, MAX_BODY),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            let mut too_big = false;
            while let Some(c) = cause {
                too_big |= c.is::<http_body_util::LengthLimitError>();
                cause = c.source();
            }
            return if too_big {
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the payload is over {MAX_BODY} bytes"),
                )
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                )
            };
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {}",
                    crate::error::DisplayDuration(admin.body_read_timeout)
                ),
            )
        }
    };
    let mut msg = Message::new("host", body.to_vec());
    if let Some(m) = message_id {
        msg.metadata.push((crate::actor::MESSAGE_ID.to_string(), m));
    }
    if !reply {
        return match admin.system.send(&id, msg).await {
            Ok(()) => (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "accepted": true })),
            )
                .into_response(),
            Err(e) => failed(e),
        };
    }
    match admin.system.request(&id, msg, wait).await {
        Ok(Some(bytes)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failed(e),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActorLabel {
    actor: String,
}

/// The system's metrics in the Prometheus text format, with `http`'s (an
/// `[http]` listener's) after them when given.
pub fn metrics_text(system: &ActorSystem, http: Option<&HttpMetrics>) -> String {
    let mut registry = Registry::with_prefix("airssys");
    if let Some(http) = http {
        http.register(&mut registry);
    }
    let stats = system.stats();
    let total = |name: &str, help: &str, v: u64, r: &mut Registry| {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        r.register(name, help, c);
    };
    total(
        "messages_sent",
        "Messages put in a mailbox",
        stats.delivered,
        &mut registry,
    );
    total(
        "requests",
        "Requests made by actors",
        stats.requests,
        &mut registry,
    );
    total(
        "request_timeouts",
        "Requests that got no reply in time",
        stats.timeouts,
        &mut registry,
    );
    total(
        "late_replies",
        "Replies discarded because their request had ended",
        stats.late_replies,
        &mut registry,
    );
    total(
        "dead_letters",
        "Messages that could not be delivered",
        stats.dead_letters,
        &mut registry,
    );
    let handled = Family::<ActorLabel, Counter<u64>>::default();
    let restarts = Family::<ActorLabel, Counter<u64>>::default();
    let health = Family::<ActorLabel, Counter<u64>>::default();
    let fuel = Family::<ActorLabel, Counter<u64>>::default();
    let dropped = Family::<ActorLabel, Counter<u64>>::default();
    let mailbox = Family::<ActorLabel, Gauge<i64>>::default();
    let pending = Family::<ActorLabel, Gauge<i64>>::default();
    let stored = Family::<ActorLabel, Gauge<i64>>::default();
    let stored_keys = Family::<ActorLabel, Gauge<i64>>::default();
    let held = Family::<ActorLabel, Gauge<i64>>::default();
    let refused = Family::<ActorLabel, Counter<u64>>::default();
    let subscriptions = Family::<ActorLabel, Gauge<i64>>::default();
    let version = Family::<ActorLabel, Gauge<i64>>::default();
    let upgrades = Family::<ActorLabel, Counter<u64>>::default();
    let rollbacks = Family::<ActorLabel, Counter<u64>>::default();
    for a in system.actors() {
        let l = ActorLabel {
            actor: a.metadata.id.to_string(),
        };
        handled.get_or_create(&l).inc_by(a.handled);
        restarts.get_or_create(&l).inc_by(a.restarts.into());
        version.get_or_create(&l).set(a.metadata.version.into());
        upgrades.get_or_create(&l).inc_by(a.upgrades.into());
        rollbacks.get_or_create(&l).inc_by(a.rollbacks.into());
        health.get_or_create(&l).inc_by(a.health_failures);
        fuel.get_or_create(&l).inc_by(a.fuel_consumed);
        dropped.get_or_create(&l).inc_by(a.log_dropped);
        mailbox.get_or_create(&l).set(a.mailbox as i64);
        pending.get_or_create(&l).set(a.pending.into());
        held.get_or_create(&l).set(a.host.held_bytes as i64);
        refused.get_or_create(&l).inc_by(a.host.refused);
        subscriptions
            .get_or_create(&l)
            .set(a.host.subscriptions.into());
        if a.storage.keys > 0 {
            stored.get_or_create(&l).set(a.storage.bytes as i64);
            stored_keys.get_or_create(&l).set(a.storage.keys as i64);
        }
    }
    registry.register(
        "messages_handled",
        "Messages and callbacks an actor handled",
        handled,
    );
    registry.register("actor_restarts", "Restarts of an actor", restarts);
    registry.register(
        "actor_version",
        "The version of its component an actor runs (1 at start)",
        version,
    );
    registry.register("actor_upgrades", "Upgrades an actor took", upgrades);
    registry.register(
        "actor_rollbacks",
        "Rollbacks of an actor to a previous version",
        rollbacks,
    );
    registry.register(
        "health_check_failures",
        "Failed health checks of an actor",
        health,
    );
    registry.register("fuel_consumed", "Fuel an actor's calls consumed", fuel);
    registry.register(
        "log_lines_dropped",
        "Guest log lines dropped by the log budget",
        dropped,
    );
    registry.register("mailbox_depth", "Messages waiting in a mailbox", mailbox);
    registry.register(
        "pending_requests",
        "Pending requests plus live timers of an actor",
        pending,
    );
    registry.register(
        "storage_bytes",
        "Bytes (keys plus values) in an actor's durable storage namespace",
        stored,
    );
    registry.register(
        "storage_keys",
        "Keys in an actor's durable storage namespace",
        stored_keys,
    );
    registry.register(
        "host_held_bytes",
        "Bytes of an actor's messages the host holds (queued, in timers, subscriptions), against its host budget",
        held,
    );
    registry.register(
        "host_budget_refusals",
        "Sends, timers and subscriptions of an actor refused because its host budget was full",
        refused,
    );
    registry.register(
        "subscriptions",
        "Subscriptions an actor holds",
        subscriptions,
    );
    let hosts = system.hosts();
    if !hosts.is_empty() {
        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        struct HostLabel {
            host: String,
        }
        let up = Family::<HostLabel, Gauge>::default();
        let sent = Family::<HostLabel, Counter>::default();
        let unavailable = Family::<HostLabel, Counter>::default();
        for h in &hosts {
            let l = HostLabel { host: h.id.clone() };
            up.get_or_create(&l)
                .set(i64::from(h.health == crate::HostHealth::Alive));
            if !h.this {
                sent.get_or_create(&l).inc_by(h.frames_sent);
                unavailable.get_or_create(&l).inc_by(h.unavailable);
            }
        }
        registry.register(
            "cluster_host_up",
            "1 while a host of the cluster heartbeats, as this host sees it",
            up,
        );
        registry.register(
            "cluster_link_frames",
            "Frames this host sent to another host of the cluster",
            sent,
        );
        registry.register(
            "cluster_link_unavailable",
            "Messages for another host refused as unavailable (it was down)",
            unavailable,
        );
    }
    let counters = &system.router().counters;
    registry.register(
        "call_duration_seconds",
        "Wall time of handle-message and handle-callback calls",
        counters.call_seconds.clone(),
    );
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

/// The longest probation an upgrade may ask for.
const MAX_PROBATION: Duration = Duration::from_secs(3600);

async fn upgrade(
    State(admin): State<Admin>,
    Path(component): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    let probation = match q.get("probation") {
        None => Duration::from_secs(30),
        Some(t) => match parse_duration(t) {
            Ok(d) if d <= MAX_PROBATION => d,
            Ok(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("probation={t}: at most 1h"),
                )
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("probation={t}: {e}")),
        },
    };
    let Some(running) = admin.system.declared_component(&component) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no declared actor runs a component named {component}"),
        );
    };
    let limit = crate::MAX_COMPONENT_FILE_BYTES as usize;
    let bytes = match tokio::time::timeout(
        admin.body_read_timeout.max(Duration::from_secs(60)),
        axum::body::to_bytes(body, limit),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cannot read the component (at most {limit} bytes): {e}"),
            )
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "the component did not arrive in time",
            )
        }
    };
    // Where signatures are required, the upload carries its signature file and
    // is checked before anything compiles it.
    use crate::security::signing::{from_header_value, SIGNATURE_HEADER};
    let signature = match headers.get(SIGNATURE_HEADER) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(from_header_value) {
            Some(text) => Some(text),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("{SIGNATURE_HEADER}: not the hex of a signature file"),
                )
            }
        },
    };
    let required = admin.system.trust().is_required() || running.signed().is_some();
    if required && signature.is_none() {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "{component}: refused: this system requires signed upgrades and the upload \
                 carries no {SIGNATURE_HEADER} header (the new version's .sig)"
            ),
        );
    }
    // Compiled and linked against the same host before any actor is touched.
    let engine = running.engine().clone();
    let name = component.clone();
    let system = admin.system.clone();
    let loaded = tokio::task::spawn_blocking(move || match signature.filter(|_| required) {
        Some(sig) => engine.load_signed(&name, &bytes, &sig, system.trust(), None),
        None => engine.load(&name, &bytes),
    })
    .await;
    let new = match loaded {
        Ok(Ok(c)) => c,
        Ok(Err(e @ Error::Signature { .. })) => return error(StatusCode::FORBIDDEN, e.to_string()),
        Ok(Err(e)) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if !new.is_lifecycle() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{component}: the new version does not export the airssys lifecycle"),
        );
    }
    match admin.system.upgrade(&component, new, probation).await {
        Ok(outcome) => {
            let actors: Vec<serde_json::Value> = outcome
                .into_iter()
                .map(|(id, r)| match r {
                    Ok(v) => serde_json::json!({ "id": id.as_str(), "version": v }),
                    Err(e) => serde_json::json!({ "id": id.as_str(), "error": e }),
                })
                .collect();
            Json(serde_json::json!({ "component": component, "actors": actors })).into_response()
        }
        Err(e @ Error::Signature { .. }) => error(StatusCode::FORBIDDEN, e.to_string()),
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn rollback(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    match admin.system.rollback(&id).await {
        Ok(v) => Json(serde_json::json!({ "id": id, "version": v })).into_response(),
        Err(e @ Error::NoSuchActor { .. }) => failed(e),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

async fn metrics(State(admin): State<Admin>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics_text(&admin.system, admin.http.as_deref()),
    )
        .into_response()
}
