//! `[http]` in `system.toml`: a listener of its own (apart from the admin API,
//! so an operator can expose one and not the other) with routes into the
//! running system. The routes' behaviour is [`crate::serve::Routes`]'s.
//!
//! ```toml
//! [http]
//! addr = "127.0.0.1:8080"
//! max-concurrency = 256       # requests at once (503 past it, per component route)
//! max-body = "1MiB"           # request bodies (413 past it)
//! timeout = "5s"              # an actor's reply (504 past it)
//!
//! [[http.routes]]
//! path = "/hello"             # a prefix: /hello and /hello/..., not /hellox
//! component = "web"           # a wasi:http/proxy component of [components], an instance per request
//!
//! [[http.routes]]
//! path = "/orders"
//! methods = ["POST"]          # 405 for others (default: any)
//! actor = "ingest"            # each request a message, the reply the response
//! content-type = "application/json"
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::actor::ActorSystem;
use crate::bindings::Message;
use crate::error::{Error, Result};
use crate::runtime::component::Component;
use crate::sandbox::context::ExecutionContext;
use crate::serve::{
    ActorGateway, HttpHandler, HttpMetrics, ReplyFuture, Route, RouteTarget, Routes, ServeLimits,
};
use crate::units::{de_opt_duration, de_opt_size, DurationValue, SizeValue};

/// `[http]`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpSection {
    /// `HOST:PORT` to listen on (`up --http ADDR` overrides it).
    #[schemars(with = "String")]
    pub addr: Spanned<String>,
    /// Requests handled at once by each component route (default 256).
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// The largest request body (default 1 MiB).
    #[serde(default, deserialize_with = "de_opt_size")]
    #[schemars(with = "Option<SizeValue>")]
    pub max_body: Option<u64>,
    /// How long an actor route waits for the reply (default 5 s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(with = "Option<DurationValue>")]
    pub timeout: Option<Duration>,
    /// The routes, longest prefix first whatever their order here.
    #[serde(default)]
    pub routes: Vec<RouteEntry>,
}

/// `[[http.routes]]`: to a `component` or to an `actor`, not both.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteEntry {
    /// The path prefix, starting with `/`.
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    /// The methods it takes (default: any).
    #[serde(default)]
    pub methods: Vec<String>,
    /// A `wasi:http/proxy` component of `[components]`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub component: Option<Spanned<String>>,
    /// An actor id (`name`, or `name/key` of a virtual component).
    #[serde(default)]
    pub actor: Option<String>,
    /// This route's reply timeout (actor routes).
    #[serde(default, deserialize_with = "de_opt_duration")]
    #[schemars(with = "Option<DurationValue>")]
    pub timeout: Option<Duration>,
    /// The content type of an actor's reply (default `application/octet-stream`).
    #[serde(default)]
    pub content_type: Option<String>,
}

/// What `up` needs to serve `[http]`: where, the routes, and the bounds.
#[derive(Clone)]
pub struct HttpListener {
    /// The address from the file.
    pub addr: SocketAddr,
    /// The routes.
    pub routes: Routes,
    /// The listener's bounds.
    pub limits: ServeLimits,
}

/// The actor system as an actor route's gateway.
struct SystemGateway(Arc<ActorSystem>);

impl ActorGateway for SystemGateway {
    fn request<'a>(&'a self, actor: &'a str, msg: Message, timeout: Duration) -> ReplyFuture<'a> {
        Box::pin(self.0.ask(actor, msg, timeout))
    }
}

impl HttpSection {
    /// Checks the section: `err(offset, message)` makes the error that names
    /// the line and column; `has_component` says whether `[components]` has a name.
    pub(super) fn check(
        &self,
        has_component: impl Fn(&str) -> bool,
        err: impl Fn(usize, &str) -> Error,
    ) -> Result<()> {
        if self.addr.get_ref().parse::<SocketAddr>().is_err() {
            return Err(err(
                self.addr.span().start,
                &format!(
                    "invalid address {:?}: expected HOST:PORT, e.g. 127.0.0.1:8080",
                    self.addr.get_ref()
                ),
            ));
        }
        for r in &self.routes {
            let at = r.path.span().start;
            if !r.path.get_ref().starts_with('/') {
                return Err(err(at, "a route's path starts with '/'"));
            }
            for m in &r.methods {
                if http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()).is_err() {
                    return Err(err(at, &format!("invalid method {m:?}")));
                }
            }
            match (&r.component, &r.actor) {
                (Some(c), None) => {
                    if !has_component(c.get_ref()) {
                        return Err(err(
                            c.span().start,
                            &format!("unknown component {:?}", c.get_ref()),
                        ));
                    }
                }
                (None, Some(a)) => {
                    crate::actor::ActorId::new(a).map_err(|e| err(at, &e.to_string()))?;
                }
                _ => {
                    return Err(err(
                        at,
                        "a route leads to a component or to an actor: give one of `component` and `actor`",
                    ))
                }
            }
        }
        Ok(())
    }

    /// The listener: component routes from `component(name)` (the component
    /// and its context, as the system's actors get theirs), actor routes
    /// through `system`.
    pub(super) fn listener(
        &self,
        system: Arc<ActorSystem>,
        mut component: impl FnMut(&str) -> Result<(Component, ExecutionContext)>,
    ) -> Result<HttpListener> {
        let addr: SocketAddr =
            self.addr.get_ref().parse().map_err(|_| {
                Error::Config(format!("invalid [http] addr {:?}", self.addr.get_ref()))
            })?;
        let defaults = ServeLimits::default();
        let limits = ServeLimits {
            max_concurrency: self.max_concurrency.unwrap_or(defaults.max_concurrency),
            max_body_bytes: self.max_body.unwrap_or(1 << 20),
            ..defaults
        };
        let metrics = Arc::new(HttpMetrics::default());
        let gateway: Arc<dyn ActorGateway> = Arc::new(SystemGateway(system));
        let mut routes = Vec::new();
        for r in &self.routes {
            let methods = r
                .methods
                .iter()
                .filter_map(|m| http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                .collect();
            let (name, target): (Arc<str>, RouteTarget) = match (&r.component, &r.actor) {
                (Some(c), _) => {
                    let (comp, ctx) = component(c.get_ref())?;
                    let route: Arc<str> = c.get_ref().as_str().into();
                    let handler = HttpHandler::with_metrics(
                        &comp,
                        ctx,
                        limits,
                        metrics.clone(),
                        route.clone(),
                    )?;
                    (route, RouteTarget::Component(handler))
                }
                (None, Some(actor)) => (
                    actor.as_str().into(),
                    RouteTarget::Actor {
                        actor: actor.clone(),
                        gateway: gateway.clone(),
                        timeout: r.timeout.or(self.timeout).unwrap_or(Duration::from_secs(5)),
                        content_type: r.content_type.clone(),
                    },
                ),
                (None, None) => continue,
            };
            routes.push(Route {
                prefix: r.path.get_ref().clone(),
                methods,
                name,
                target,
            });
        }
        Ok(HttpListener {
            addr,
            routes: Routes::new(routes, metrics, limits.max_body_bytes),
            limits,
        })
    }
}
