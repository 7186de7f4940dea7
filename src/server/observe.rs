//! What the dispatcher reports, logged (one line per email, with the cause of every
//! failure) and counted in `/metrics`.
//!
//! A storage whose disk is full or failing fails every pass while it lasts; the storage
//! itself logs that at most once a minute, so those failures are counted here (also in
//! `cartloop_storage_disk_faults_total`) but logged at debug level only. A result that
//! could not be recorded is still logged: its email may go out again once the lease ends.
//!
//! The core's dispatcher tells every [`Event`] to an observer and knows nothing of
//! Prometheus; [`DispatchMetrics`] is the runtime's observer's half that counts. Its
//! figures live in the registry the API's `/metrics` serves:
//!
//! | metric | type |
//! |---|---|
//! | `cartloop_emails_sent_total` | counter |
//! | `cartloop_emails_retried_total` | counter |
//! | `cartloop_emails_failed_total` | counter |
//! | `cartloop_emails_suppressed_total` | counter |
//! | `cartloop_dispatch_storage_errors_total` | counter |
//! | `cartloop_dispatch_lag_seconds` | histogram (`sentAt − sendAt`) |

use cartloop_core::disk_fault::DiskFault;
use cartloop_core::dispatch::{Event, Outcome};
use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Upper bounds of the dispatch-lag buckets, in seconds: from "at once" to a day late.
const LAG_BUCKETS: [f64; 14] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0, 86400.0,
];

/// The dispatcher's figures. Clones count into the same figures.
#[derive(Debug, Clone)]
pub(crate) struct DispatchMetrics {
    sent: Counter,
    retried: Counter,
    failed: Counter,
    suppressed: Counter,
    held: Counter,
    storage_errors: Counter,
    lag: Histogram,
    /// The API's count of disk faults (registered by the API's [`Metrics`](cartloop_http::Metrics)),
    /// which the dispatcher's disk faults add to.
    disk_faults: Option<cartloop_http::Metrics>,
}

impl DispatchMetrics {
    /// The figures, registered in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            sent: Counter::default(),
            retried: Counter::default(),
            failed: Counter::default(),
            suppressed: Counter::default(),
            held: Counter::default(),
            storage_errors: Counter::default(),
            lag: Histogram::new(LAG_BUCKETS),
            disk_faults: None,
        };
        let counters = [
            (
                "cartloop_emails_sent",
                "Emails accepted by the mail server",
                &metrics.sent,
            ),
            (
                "cartloop_emails_retried",
                "Sends that failed transiently and were re-scheduled",
                &metrics.retried,
            ),
            (
                "cartloop_emails_failed",
                "Messages given up on (status failed)",
                &metrics.failed,
            ),
            (
                "cartloop_emails_suppressed",
                "Messages not sent because the client unsubscribed",
                &metrics.suppressed,
            ),
            (
                "cartloop_emails_held",
                "Sends the delivery policy held at send time and re-scheduled",
                &metrics.held,
            ),
            (
                "cartloop_dispatch_storage_errors",
                "Storage failures met by the dispatcher",
                &metrics.storage_errors,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "cartloop_dispatch_lag_seconds",
            "Seconds from a message's sendAt to its sentAt",
            metrics.lag.clone(),
        );
        metrics
    }

    /// Counts the dispatcher's disk faults into the API's figures too.
    pub(crate) fn with_api(mut self, api: &cartloop_http::Metrics) -> Self {
        self.disk_faults = Some(api.clone());
        self
    }

    fn storage_disk_fault(&self) {
        if let Some(api) = &self.disk_faults {
            api.storage_disk_fault();
        }
    }
}

/// The dispatch lag of a message due at `send_at` and sent at `sent_at`: zero if it went
/// early (it cannot, but clocks of several servers may disagree a little).
fn lag(send_at: DateTime<Utc>, sent_at: DateTime<Utc>) -> Duration {
    (sent_at - send_at).to_std().unwrap_or(Duration::ZERO)
}

/// Logs and counts one dispatcher event.
pub(crate) fn event(metrics: &DispatchMetrics, event: &Event<'_>) {
    match event {
        Event::Recorded { message, outcome } => {
            let chat = message.id;
            let attempt = message.attempts;
            match outcome {
                Outcome::Sent(at) => {
                    let due = message.send_at.unwrap_or(message.created_at);
                    let lag = lag(due, *at);
                    metrics.sent.inc();
                    metrics.lag.observe(lag.as_secs_f64());
                    tracing::info!(%chat, attempt, lag_ms = lag.as_millis() as u64, "email sent");
                }
                Outcome::Deferred(at) => {
                    tracing::info!(%chat, send_at = %at, "handed back; deferred")
                }
                Outcome::Held(at, rule) => {
                    metrics.held.inc();
                    tracing::info!(%chat, send_at = %at, waiting_for = %rule, "held by the delivery policy")
                }
                Outcome::Retry(at, error) => {
                    metrics.retried.inc();
                    tracing::warn!(%chat, attempt, retry_at = %at, %error, "email failed; will retry");
                }
                Outcome::Failed(error) => {
                    metrics.failed.inc();
                    tracing::error!(%chat, attempt, %error, "email failed; giving up");
                }
                Outcome::Suppressed => {
                    metrics.suppressed.inc();
                    tracing::info!(%chat, "client unsubscribed; email suppressed");
                }
            }
        }
        Event::Released { message, reason } => {
            tracing::info!(chat = %message.id, reason, "claim handed back unsent");
        }
        Event::LostClaim { message, outcome } => {
            tracing::warn!(chat = %message.id, ?outcome, "result not recorded: the claim no longer holds");
        }
        Event::StorageRetry {
            message,
            action,
            error,
        } if DiskFault::of(error).is_some() => {
            metrics.storage_disk_fault();
            tracing::debug!(chat = %message, action, error = %error.detail(), "storage failed; retrying");
        }
        Event::StorageFailed {
            message: None,
            action,
            error,
        } if DiskFault::of(error).is_some() => {
            metrics.storage_errors.inc();
            metrics.storage_disk_fault();
            tracing::debug!(action, error = %error.detail(), "storage failed: its disk is full or failing");
        }
        Event::StorageRetry {
            message,
            action,
            error,
        } => {
            tracing::warn!(chat = %message, action, error = %error.detail(), "storage failed; retrying");
        }
        Event::StorageFailed {
            message,
            action,
            error,
        } => {
            metrics.storage_errors.inc();
            if DiskFault::of(error).is_some() {
                metrics.storage_disk_fault();
            }
            match message {
                // A conversation that could not be read is handed back at once (a `Released`
                // event follows); a result that could not be recorded waits for its lease.
                Some(chat) if *action == "read the conversations" => {
                    tracing::error!(%chat, action, error = %error.detail(), "storage failed; the claim is handed back")
                }
                Some(chat) => {
                    tracing::error!(%chat, action, error = %error.detail(), "storage failed; the message is left to its lease")
                }
                None => tracing::error!(action, error = %error.detail(), "storage failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartloop_core::ports::StorageError;

    #[test]
    fn lag_is_never_negative() {
        let due = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let sent = due + chrono::Duration::seconds(2);
        assert_eq!(lag(due, sent), Duration::from_secs(2));
        assert_eq!(lag(sent, due), Duration::ZERO);
    }

    #[test]
    fn events_are_counted_in_the_registry_given() {
        let mut registry = Registry::default();
        let metrics = DispatchMetrics::register(&mut registry);
        let error = StorageError::NotFound("the batch".to_owned());
        for _ in 0..2 {
            event(
                &metrics,
                &Event::StorageFailed {
                    message: None,
                    action: "claim due messages",
                    error: &error,
                },
            );
        }
        metrics.lag.observe(0.05);
        metrics.lag.observe(7.0);
        metrics.lag.observe(200_000.0);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("cartloop_dispatch_storage_errors_total 2\n"),
            "{text}"
        );
        assert!(text
            .contains("# TYPE cartloop_emails_sent_total counter\ncartloop_emails_sent_total 0\n"));
        assert!(text.contains("cartloop_dispatch_lag_seconds_bucket{le=\"0.1\"} 1\n"));
        assert!(text.contains("cartloop_dispatch_lag_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("cartloop_dispatch_lag_seconds_bucket{le=\"86400\"} 2\n"));
        assert!(text.contains("cartloop_dispatch_lag_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("cartloop_dispatch_lag_seconds_count 3\n"));
    }
}
