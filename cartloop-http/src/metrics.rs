//! The figures `GET /metrics` exports, in the Prometheus text format (version 0.0.4).
//!
//! [`Metrics`] is a small registry of its own rather than a global `metrics` recorder: tests
//! build many routers in one process, an embedder may run several servers, and each needs
//! its own figures; a fixed set of typed methods also keeps every name and label in one
//! place. It is cheap to clone (one `Arc`); the runtime holds a clone and calls the
//! dispatch methods ([`email_sent`](Metrics::email_sent) and the others) as emails go out,
//! and the HTTP layer records every request.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `cartloop_http_requests_total` | counter | `route` (template, or `unmatched`), `method`, `status` |
//! | `cartloop_http_request_duration_seconds` | histogram | `route`, `method` |
//! | `cartloop_emails_sent_total` | counter | |
//! | `cartloop_emails_retried_total` | counter | |
//! | `cartloop_emails_failed_total` | counter | |
//! | `cartloop_emails_suppressed_total` | counter | |
//! | `cartloop_dispatch_storage_errors_total` | counter | |
//! | `cartloop_storage_disk_faults_total` | counter | |
//! | `cartloop_storage_degraded` | gauge, read at scrape time | |
//! | `cartloop_dispatch_lag_seconds` | histogram (`sentAt − sendAt`) | |
//! | `cartloop_messages_waiting` | gauge, read at scrape time | |
//! | `cartloop_oldest_due_message_age_seconds` | gauge, read at scrape time | |

use axum::http::Method;
use cartloop_core::ports::Backlog;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the request-latency buckets, in seconds.
const REQUEST_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of the dispatch-lag buckets, in seconds: from "at once" to a day late.
const LAG_BUCKETS: [f64; 14] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0, 86400.0,
];

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The server's figures. See the [module docs](self) for the list.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Registry>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

struct Registry {
    /// Per route template, per method.
    requests: Mutex<HashMap<String, BTreeMap<&'static str, RouteStats>>>,
    emails_sent: AtomicU64,
    emails_retried: AtomicU64,
    emails_failed: AtomicU64,
    emails_suppressed: AtomicU64,
    dispatch_storage_errors: AtomicU64,
    storage_disk_faults: AtomicU64,
    storage_degraded: AtomicU64,
    dispatch_lag: Mutex<Histogram<14>>,
}

struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    duration: Histogram<14>,
}

/// A Prometheus histogram with `N` finite buckets (counts kept per bucket, made
/// cumulative when rendered).
#[derive(Clone)]
struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    counts: [u64; N],
    count: u64,
    sum: f64,
}

impl<const N: usize> Histogram<N> {
    const fn new(bounds: &'static [f64; N]) -> Self {
        Self {
            bounds,
            counts: [0; N],
            count: 0,
            sum: 0.0,
        }
    }

    fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|bound| value <= *bound) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += value;
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines; `labels` is empty or ends in `,`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(self.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count);
        let bare = labels.trim_end_matches(',');
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(bare), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(bare), self.count);
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            emails_sent: AtomicU64::new(0),
            emails_retried: AtomicU64::new(0),
            emails_failed: AtomicU64::new(0),
            emails_suppressed: AtomicU64::new(0),
            dispatch_storage_errors: AtomicU64::new(0),
            storage_disk_faults: AtomicU64::new(0),
            storage_degraded: AtomicU64::new(0),
            dispatch_lag: Mutex::new(Histogram::new(&LAG_BUCKETS)),
        }
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one email accepted by the mail server, `lag` after its `sendAt` (its
    /// `sentAt − sendAt`; see [`lag`](Self::lag)).
    pub fn email_sent(&self, lag: Duration) {
        self.inner.emails_sent.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.dispatch_lag).observe(lag.as_secs_f64());
    }

    /// Counts one send that failed transiently and was re-scheduled.
    pub fn email_retried(&self) {
        self.inner.emails_retried.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one message given up on (`failed`).
    pub fn email_failed(&self) {
        self.inner.emails_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one message not sent because its client unsubscribed (`suppressed`).
    pub fn email_suppressed(&self) {
        self.inner.emails_suppressed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one storage failure of the dispatcher (a claim, a read or a result it could
    /// not record).
    pub fn dispatch_storage_error(&self) {
        self.inner
            .dispatch_storage_errors
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one API request answered `503 storage_full`, or one dispatcher storage call
    /// that failed, because the database's disk is full or failing.
    pub fn storage_disk_fault(&self) {
        self.inner
            .storage_disk_faults
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the storage is degraded (its disk refuses writes), as `/healthz` and the
    /// scrape last found it.
    pub fn storage_degraded(&self, degraded: bool) {
        self.inner
            .storage_degraded
            .store(u64::from(degraded), Ordering::Relaxed);
    }

    /// The dispatch lag of a message due at `send_at` and sent at `sent_at`: zero if it
    /// went early (it cannot, but clocks of several servers may disagree a little).
    ///
    /// ```
    /// use cartloop_http::metrics::Metrics;
    /// use chrono::{TimeZone, Utc};
    /// let due = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
    /// let sent = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 2).unwrap();
    /// assert_eq!(Metrics::lag(due, sent).as_secs(), 2);
    /// assert_eq!(Metrics::lag(sent, due).as_secs(), 0);
    /// ```
    pub fn lag(send_at: DateTime<Utc>, sent_at: DateTime<Utc>) -> Duration {
        (sent_at - send_at).to_std().unwrap_or(Duration::ZERO)
    }

    /// Counts one answered HTTP request. `route` is the matched route template (e.g.
    /// `/conversation/{id}/`) or [`UNMATCHED`].
    pub fn http_request(&self, route: &str, method: &Method, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let mut requests = lock(&self.inner.requests);
        // Look up by `&str` first: no allocation once a route has been seen.
        let per_method = match requests.get_mut(route) {
            Some(per_method) => per_method,
            None => requests.entry(route.to_owned()).or_default(),
        };
        let stats = per_method.entry(method).or_insert_with(|| RouteStats {
            by_status: BTreeMap::new(),
            duration: Histogram::new(&REQUEST_BUCKETS),
        });
        *stats.by_status.entry(status).or_default() += 1;
        stats.duration.observe(elapsed.as_secs_f64());
    }

    /// Every figure in the Prometheus text format. `backlog` (read from the storage at
    /// scrape time, with the instant it was read at) gives the two gauges; without it they
    /// are left out.
    pub fn render(&self, backlog: Option<(Backlog, DateTime<Utc>)>) -> String {
        let mut out = String::with_capacity(4096);
        self.render_requests(&mut out);
        let counters = [
            (
                "cartloop_emails_sent_total",
                "Emails accepted by the mail server.",
                &self.inner.emails_sent,
            ),
            (
                "cartloop_emails_retried_total",
                "Sends that failed transiently and were re-scheduled.",
                &self.inner.emails_retried,
            ),
            (
                "cartloop_emails_failed_total",
                "Messages given up on (status failed).",
                &self.inner.emails_failed,
            ),
            (
                "cartloop_emails_suppressed_total",
                "Messages not sent because the client unsubscribed.",
                &self.inner.emails_suppressed,
            ),
            (
                "cartloop_dispatch_storage_errors_total",
                "Storage failures met by the dispatcher.",
                &self.inner.dispatch_storage_errors,
            ),
            (
                "cartloop_storage_disk_faults_total",
                "Requests answered 503 storage_full and dispatcher storage failures, because the database's disk is full or failing.",
                &self.inner.storage_disk_faults,
            ),
        ];
        for (name, help, value) in counters {
            header(&mut out, name, help, "counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let lag = lock(&self.inner.dispatch_lag).clone();
        header(
            &mut out,
            "cartloop_dispatch_lag_seconds",
            "Seconds from a message's sendAt to its sentAt.",
            "histogram",
        );
        lag.render(&mut out, "cartloop_dispatch_lag_seconds", "");
        header(
            &mut out,
            "cartloop_storage_degraded",
            "1 while the database's disk refuses writes (full or failing), else 0.",
            "gauge",
        );
        let degraded = self.inner.storage_degraded.load(Ordering::Relaxed);
        let _ = writeln!(out, "cartloop_storage_degraded {degraded}");
        if let Some((backlog, now)) = backlog {
            header(
                &mut out,
                "cartloop_messages_waiting",
                "Messages new or sending.",
                "gauge",
            );
            let _ = writeln!(out, "cartloop_messages_waiting {}", backlog.waiting);
            let age = backlog
                .oldest_due
                .map_or(0.0, |due| Self::lag(due, now).as_secs_f64());
            header(
                &mut out,
                "cartloop_oldest_due_message_age_seconds",
                "Seconds since the oldest due, unsent message became due (0 when none is).",
                "gauge",
            );
            let _ = writeln!(out, "cartloop_oldest_due_message_age_seconds {age}");
        }
        out
    }

    fn render_requests(&self, out: &mut String) {
        // Copy out under the lock, format without it.
        let mut rows: Vec<(String, &'static str, BTreeMap<u16, u64>, Histogram<14>)> =
            lock(&self.inner.requests)
                .iter()
                .flat_map(|(route, per_method)| {
                    per_method.iter().map(move |(method, stats)| {
                        (
                            route.clone(),
                            *method,
                            stats.by_status.clone(),
                            stats.duration.clone(),
                        )
                    })
                })
                .collect();
        rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        // A family without samples is left out whole, as client libraries do with empty
        // vectors (strict parsers refuse a TYPE line without samples).
        if rows.is_empty() {
            return;
        }
        header(
            out,
            "cartloop_http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            "counter",
        );
        for (route, method, by_status, _) in &rows {
            for (status, count) in by_status {
                let _ = writeln!(
                    out,
                    "cartloop_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {count}",
                    escape(route)
                );
            }
        }
        header(
            out,
            "cartloop_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            "histogram",
        );
        for (route, method, _, duration) in &rows {
            let labels = format!("route=\"{}\",method=\"{method}\",", escape(route));
            duration.render(out, "cartloop_http_request_duration_seconds", &labels);
        }
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the text format needs it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves counts that are still counts.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_inf_sum_and_count() {
        let metrics = Metrics::new();
        metrics.email_sent(Duration::from_millis(50));
        metrics.email_sent(Duration::from_secs(7));
        metrics.email_sent(Duration::from_secs(200_000));
        let text = metrics.render(None);
        assert!(text.contains("cartloop_dispatch_lag_seconds_bucket{le=\"0.1\"} 1\n"));
        assert!(text.contains("cartloop_dispatch_lag_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("cartloop_dispatch_lag_seconds_bucket{le=\"86400\"} 2\n"));
        assert!(text.contains("cartloop_dispatch_lag_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("cartloop_dispatch_lag_seconds_count 3\n"));
        assert!(text.contains("cartloop_dispatch_lag_seconds_sum 200007.05\n"));
        assert!(text.contains("cartloop_emails_sent_total 3\n"));
        assert!(!text.contains("cartloop_messages_waiting"));
    }

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
            "cartloop_http_request_duration_seconds_count{route=\"/chat/\",method=\"POST\"} 3\n"
        ));
    }

    #[test]
    fn gauges_come_from_the_backlog() {
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let backlog = Backlog {
            waiting: 4,
            oldest_due: Some(now - chrono::Duration::seconds(90)),
        };
        let text = Metrics::new().render(Some((backlog, now)));
        assert!(text.contains("cartloop_messages_waiting 4\n"));
        assert!(text.contains("cartloop_oldest_due_message_age_seconds 90\n"));
        let text = Metrics::new().render(Some((Backlog::default(), now)));
        assert!(text.contains("cartloop_oldest_due_message_age_seconds 0\n"));
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
        assert!(text.contains("cartloop_storage_disk_faults_total 2\n"));
        assert!(text.contains("cartloop_storage_degraded 1\n"));
        metrics.storage_degraded(false);
        assert!(metrics
            .render(None)
            .contains("cartloop_storage_degraded 0\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
