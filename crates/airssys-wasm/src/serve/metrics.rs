//! What every inbound request leaves behind: one access-log line through
//! `tracing` (target `airssys_wasm::http`) and the Prometheus figures of
//! [`HttpMetrics`], both written when the exchange ends (the last body byte
//! sent, or the client gone).

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

/// The Prometheus figures of inbound HTTP, per route (`serve` has one route,
/// named after its component): requests by status, a latency histogram
/// (first byte of the request to the last byte of the response), requests in
/// flight, and guest instances created.
#[derive(Debug)]
pub struct HttpMetrics {
    requests: Family<StatusLabel, Counter<u64>>,
    latency: Family<RouteLabel, Histogram, fn() -> Histogram>,
    in_flight: Family<RouteLabel, Gauge<i64>>,
    instances: Family<RouteLabel, Counter<u64>>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        fn histogram() -> Histogram {
            // 100 µs to 13 s.
            Histogram::new(exponential_buckets(1e-4, 2.0, 18))
        }
        HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(histogram),
            in_flight: Family::default(),
            instances: Family::default(),
        }
    }
}

impl HttpMetrics {
    /// Adds the figures to `registry` (names `http_requests`,
    /// `http_request_duration_seconds`, `http_requests_in_flight`,
    /// `http_instances`, under the registry's prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "Inbound HTTP requests answered, by route and status",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Inbound HTTP requests: time to the last byte of the response",
            self.latency.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Inbound HTTP requests being handled",
            self.in_flight.clone(),
        );
        registry.register(
            "http_instances",
            "Guest instances created for inbound HTTP requests",
            self.instances.clone(),
        );
    }

    /// The figures alone in Prometheus' text format (prefix `airssys`).
    pub fn encode(&self) -> String {
        let mut registry = Registry::with_prefix("airssys");
        self.register(&mut registry);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// Requests answered so far on `route` with `status`.
    pub fn requests(&self, route: &str, status: u16) -> u64 {
        self.requests
            .get_or_create(&StatusLabel {
                route: route.to_string(),
                status,
            })
            .get()
    }

    /// Instances created so far for `route`.
    pub fn instances(&self, route: &str) -> u64 {
        self.instances
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .get()
    }

    /// The figures of one route, looked up once (not per request).
    pub(crate) fn route(self: &Arc<Self>, route: &str) -> RouteMetrics {
        let label = RouteLabel {
            route: route.to_string(),
        };
        RouteMetrics {
            name: route.into(),
            requests: self.requests.clone(),
            latency: self.latency.get_or_create(&label).clone(),
            in_flight: self.in_flight.get_or_create(&label).clone(),
            instances: self.instances.get_or_create(&label).clone(),
        }
    }
}

/// One route's figures: handles into the families of [`HttpMetrics`].
#[derive(Clone, Debug)]
pub(crate) struct RouteMetrics {
    pub(crate) name: Arc<str>,
    requests: Family<StatusLabel, Counter<u64>>,
    latency: Histogram,
    in_flight: Gauge<i64>,
    instances: Counter<u64>,
}

impl RouteMetrics {
    pub(crate) fn instance_created(&self) {
        self.instances.inc();
    }
}

/// One request from its head to the end of its response. Shared by the
/// request's guest task and its response body; the last one to let go writes
/// the access-log line and the metrics.
pub(crate) struct Exchange {
    metrics: RouteMetrics,
    method: http::Method,
    path: String,
    start: Instant,
    status: AtomicU16,
    bytes: AtomicU64,
    fuel: AtomicU64,
    /// Why the guest failed (a trap, a limit), once it has.
    failure: Mutex<Option<String>>,
    /// The guest failed after the response head was sent: the body was cut.
    cut: AtomicBool,
    /// The guest ran out of time.
    timed_out: AtomicBool,
    /// The request body went past its cap.
    pub(crate) body_too_large: Arc<AtomicBool>,
}

impl Exchange {
    pub(crate) fn start<B>(metrics: RouteMetrics, req: &http::Request<B>) -> Arc<Self> {
        metrics.in_flight.inc();
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        // A log line is bounded whatever the client sent.
        let path = crate::units::escape_controls(&crate::units::truncate(path, 512)).into_owned();
        Arc::new(Exchange {
            metrics,
            method: req.method().clone(),
            path,
            start: Instant::now(),
            status: AtomicU16::new(0),
            bytes: AtomicU64::new(0),
            fuel: AtomicU64::new(0),
            failure: Mutex::new(None),
            cut: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
            body_too_large: Arc::default(),
        })
    }

    pub(crate) fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    pub(crate) fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_fuel(&self, fuel: u64) {
        self.fuel.store(fuel, Ordering::Relaxed);
    }

    pub(crate) fn fail(&self, reason: String) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn mark_timed_out(&self) {
        self.timed_out.store(true, Ordering::Relaxed);
    }

    pub(crate) fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    pub(crate) fn mark_cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let status = self.status.load(Ordering::Relaxed);
        let m = &self.metrics;
        m.in_flight.dec();
        m.latency.observe(elapsed.as_secs_f64());
        m.requests
            .get_or_create(&StatusLabel {
                route: m.name.to_string(),
                status,
            })
            .inc();
        let failure = self.failure.get_mut().ok().and_then(|f| f.take());
        tracing::info!(
            target: "airssys_wasm::http",
            route = %self.metrics.name,
            method = %self.method,
            path = %self.path,
            status,
            bytes = self.bytes.load(Ordering::Relaxed),
            duration_us = elapsed.as_micros() as u64,
            fuel = self.fuel.load(Ordering::Relaxed),
            cut = self.cut.load(Ordering::Relaxed),
            error = failure.as_deref().unwrap_or(""),
            "request"
        );
    }
}
