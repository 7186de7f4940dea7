//! The figures `GET /metrics` exports, in the Prometheus text format (version 0.0.4).
//!
//! [`Metrics`] serves a `prometheus-client` [`Registry`] of its own rather than a global
//! one: tests build many routers in one process, an embedder may run several servers, and
//! each needs its own figures. The runtime registers the dispatcher's figures in a registry
//! and hands it to [`Metrics::with_registry`], which adds the request figures this crate
//! records; [`Metrics::new`] is the request figures alone. It is cheap to clone.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `cartloop_http_requests_total` | counter | `route` (template, or `unmatched`), `method`, `status` |
//! | `cartloop_http_request_duration_seconds` | histogram | `route`, `method` |
//! | `cartloop_messages_waiting` | gauge, read at scrape time | |
//! | `cartloop_oldest_due_message_age_seconds` | gauge, read at scrape time | |
//! | `cartloop_storage_disk_faults_total` | counter | |
//! | `cartloop_storage_degraded` | gauge | |
//! | `cartloop_event_streams_open` | gauge | |
//! | `cartloop_events_streamed_total` | counter | |
//!
//! The bundled runtime adds the dispatcher's (`cartloop::server`): emails sent, retried,
//! failed and suppressed, its storage errors and the dispatch lag.
//!
//! The text is the classic format rather than OpenMetrics: it is what `text/plain` scrapers
//! and strict parsers of that format expect (counters named `_total` in their `TYPE` line,
//! no `# EOF`), and Prometheus reads it as well as the other.

use axum::http::Method;
use cartloop_core::ports::Backlog;
use chrono::{DateTime, Utc};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds of the request-latency buckets, in seconds.
const REQUEST_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

type Durations = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The server's figures. See the [module docs](self) for the list.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    durations: Durations,
    disk_faults: Counter,
    degraded: Gauge,
    // The live stream (`GET /events/`).
    streams_open: Gauge,
    events_streamed: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The request figures alone, in a registry of their own.
    pub fn new() -> Self {
        Self::with_registry(Registry::default())
    }

    /// Adds the request figures to `registry` and exports all of it: what the caller
    /// registered before (the runtime's dispatch figures) keeps being updated through the
    /// handles the caller kept.
    ///
    /// ```
    /// use prometheus_client::metrics::counter::Counter;
    /// use prometheus_client::registry::Registry;
    ///
    /// let mut registry = Registry::default();
    /// let jobs = Counter::<u64>::default();
    /// registry.register("my_jobs", "Jobs done", jobs.clone());
    /// let metrics = cartloop_http::Metrics::with_registry(registry);
    /// jobs.inc();
    /// assert!(metrics.render(None).contains("my_jobs_total 1\n"));
    /// ```
    pub fn with_registry(mut registry: Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "cartloop_http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        let durations: Durations = Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS));
        registry.register(
            "cartloop_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method",
            durations.clone(),
        );
        let disk_faults = Counter::default();
        registry.register(
            "cartloop_storage_disk_faults",
            "Requests answered 503 storage_full and dispatcher storage failures, because the database's disk is full or failing",
            disk_faults.clone(),
        );
        let degraded = Gauge::default();
        registry.register(
            "cartloop_storage_degraded",
            "1 while the database's disk refuses writes (full or failing), else 0",
            degraded.clone(),
        );
        let streams_open = Gauge::default();
        registry.register(
            "cartloop_event_streams_open",
            "Event streams (GET /events/) open now",
            streams_open.clone(),
        );
        let events_streamed = Counter::default();
        registry.register(
            "cartloop_events_streamed",
            "Events sent on event streams (GET /events/)",
            events_streamed.clone(),
        );
        Self {
            registry: Arc::new(registry),
            requests,
            durations,
            disk_faults,
            degraded,
            streams_open,
            events_streamed,
        }
    }

    /// Counts one API request answered `503 storage_full`, or one dispatcher storage call
    /// that failed, because the database's disk is full or failing.
    pub fn storage_disk_fault(&self) {
        self.disk_faults.inc();
    }

    /// Whether the storage is degraded (its disk refuses writes), as `/healthz` and the
    /// scrape last found it.
    pub fn storage_degraded(&self, degraded: bool) {
        self.degraded.set(i64::from(degraded));
    }

    /// One more event stream open.
    pub fn stream_opened(&self) {
        self.streams_open.inc();
    }

    /// One event stream fewer.
    pub fn stream_closed(&self) {
        self.streams_open.dec();
    }

    /// Counts one event sent on an event stream.
    pub fn event_streamed(&self) {
        self.events_streamed.inc();
    }

    /// Counts one answered HTTP request. `route` is the matched route template (e.g.
    /// `/conversation/{id}/`) or [`UNMATCHED`].
    pub fn http_request(
        &self,
        route: &'static str,
        method: &Method,
        status: u16,
        elapsed: Duration,
    ) {
        let method = method_label(method);
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels { route, method })
            .observe(elapsed.as_secs_f64());
    }

    /// Every figure in the Prometheus text format. `backlog` (read from the storage at
    /// scrape time, with the instant it was read at) gives the two gauges; without it they
    /// are left out.
    pub fn render(&self, backlog: Option<(Backlog, DateTime<Utc>)>) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a `String` cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        if let Some((backlog, now)) = backlog {
            // A registry of this scrape's readings: registered for good, the gauges would
            // show stale values whenever the storage does not answer.
            let mut scrape = Registry::default();
            let waiting = Gauge::<i64>::default();
            waiting.set(i64::try_from(backlog.waiting).unwrap_or(i64::MAX));
            scrape.register(
                "cartloop_messages_waiting",
                "Messages new or sending",
                waiting,
            );
            let age = Gauge::<f64, AtomicU64>::default();
            let since = backlog.oldest_due.map_or(Duration::ZERO, |due| {
                (now - due).to_std().unwrap_or(Duration::ZERO)
            });
            age.set(since.as_secs_f64());
            scrape.register(
                "cartloop_oldest_due_message_age_seconds",
                "Seconds since the oldest due, unsent message became due (0 when none is)",
                age,
            );
            let _ = prometheus_text::encode(&mut out, &scrape);
        }
        out
    }
}

/// The method label: the standard methods by name, anything else as `other`, so that
/// made-up methods cannot grow the number of series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_by_route_method_and_status() {
        let metrics = Metrics::new();
        let ms = Duration::from_millis(3);
        metrics.http_request("/chat/", &Method::POST, 201, ms);
        metrics.http_request("/chat/", &Method::POST, 201, ms);
        metrics.http_request("/chat/", &Method::POST, 422, ms);
        let odd = Method::from_bytes(b"BREW").unwrap();
        metrics.http_request(UNMATCHED, &odd, 404, ms);
        let text = metrics.render(None);
        assert!(text.contains("# TYPE cartloop_http_requests_total counter\n"));
        assert!(text.contains(
            "cartloop_http_requests_total{route=\"/chat/\",method=\"POST\",status=\"201\"} 2\n"
        ));
        assert!(text.contains(
            "cartloop_http_requests_total{route=\"/chat/\",method=\"POST\",status=\"422\"} 1\n"
        ));
        assert!(text.contains(
            "cartloop_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"} 1\n"
        ));
        assert!(text.contains(
            "cartloop_http_request_duration_seconds_bucket{route=\"/chat/\",method=\"POST\",le=\"0.005\"} 3\n"
        ));
        assert!(text.contains(
            "cartloop_http_request_duration_seconds_bucket{route=\"/chat/\",method=\"POST\",le=\"+Inf\"} 3\n"
        ));
        assert!(text.contains(
            "cartloop_http_request_duration_seconds_count{route=\"/chat/\",method=\"POST\"} 3\n"
        ));
        assert!(
            !text.contains("# EOF"),
            "the classic format has no end marker"
        );
    }

    #[test]
    fn families_without_samples_are_left_out() {
        let text = Metrics::new().render(None);
        assert!(!text.contains("cartloop_http_requests"), "{text}");
        assert!(!text.contains("cartloop_http_request_duration"), "{text}");
        // The disk figures always read: 0 until a fault.
        assert!(
            text.contains("cartloop_storage_disk_faults_total 0\n"),
            "{text}"
        );
        assert!(text.contains("cartloop_storage_degraded 0\n"), "{text}");
    }

    #[test]
    fn gauges_come_from_the_backlog() {
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let backlog = Backlog {
            waiting: 4,
            oldest_due: Some(now - chrono::Duration::seconds(90)),
        };
        let text = Metrics::new().render(Some((backlog, now)));
        assert!(text.contains("cartloop_messages_waiting 4\n"), "{text}");
        assert!(
            text.contains("cartloop_oldest_due_message_age_seconds 90.0\n"),
            "{text}"
        );
        let text = Metrics::new().render(Some((Backlog::default(), now)));
        assert!(text.contains("cartloop_oldest_due_message_age_seconds 0.0\n"));
    }

    #[test]
    fn disk_faults_are_counted_and_the_degraded_gauge_follows() {
        let metrics = Metrics::new();
        assert!(metrics
            .render(None)
            .contains("cartloop_storage_degraded 0\n"));
        metrics.storage_disk_fault();
        metrics.storage_disk_fault();
        metrics.storage_degraded(true);
        let text = metrics.render(None);
        assert!(
            text.contains("cartloop_storage_disk_faults_total 2\n"),
            "{text}"
        );
        assert!(text.contains("cartloop_storage_degraded 1\n"), "{text}");
        metrics.storage_degraded(false);
        assert!(metrics
            .render(None)
            .contains("cartloop_storage_degraded 0\n"));
    }
}
