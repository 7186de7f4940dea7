//! What the dispatcher reports, logged (one line per email, with the cause of every
//! failure) and counted in `/metrics`.
//!
//! A storage whose disk is full or failing fails every pass while it lasts; the storage
//! itself logs that at most once a minute, so those failures are counted here but logged
//! at debug level only. A result that could not be recorded is still logged: its email
//! may go out again once the lease ends.

use cartloop_core::disk_fault::DiskFault;
use cartloop_core::dispatch::{Event, Outcome};
use cartloop_http::metrics::Metrics;

/// Logs and counts one dispatcher event.
pub(crate) fn event(metrics: &Metrics, event: &Event<'_>) {
    match event {
        Event::Recorded { message, outcome } => {
            let chat = message.id;
            let attempt = message.attempts;
            match outcome {
                Outcome::Sent(at) => {
                    let due = message.send_at.unwrap_or(message.created_at);
                    let lag = Metrics::lag(due, *at);
                    metrics.email_sent(lag);
                    tracing::info!(%chat, attempt, lag_ms = lag.as_millis() as u64, "email sent");
                }
                Outcome::Deferred(at) => {
                    tracing::info!(%chat, send_at = %at, "outside active hours; deferred")
                }
                Outcome::Retry(at, error) => {
                    metrics.email_retried();
                    tracing::warn!(%chat, attempt, retry_at = %at, %error, "email failed; will retry");
                }
                Outcome::Failed(error) => {
                    metrics.email_failed();
                    tracing::error!(%chat, attempt, %error, "email failed; giving up");
                }
                Outcome::Suppressed => {
                    metrics.email_suppressed();
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
            metrics.dispatch_storage_error();
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
            metrics.dispatch_storage_error();
            if DiskFault::of(error).is_some() {
                metrics.storage_disk_fault();
            }
            match message {
                // A conversation that could not be read is handed back at once (a `Released`
                // event follows); a result that could not be recorded waits for its lease.
                Some(chat) if *action == "read the conversation" => {
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
