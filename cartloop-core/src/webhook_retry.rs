//! When a webhook delivery is tried again (SPEC §10): from 5 s, doubling, at most 1 h
//! between tries, given up 3 days after the event was written.
//!
//! A 2xx is delivered; a 410 turns the webhook off (the delivery waits for it to be turned
//! on again); anything else, a timeout, or an address refused is tried again by
//! [`retry_delay`] until [`GIVE_UP_AFTER`] has passed since the event's `first_at`.
//!
//! # Example
//! ```
//! use cartloop_core::ports::{AttemptStatus, DeliveryNext};
//! use cartloop_core::webhook_retry::{decide, Outcome};
//! use chrono::{Duration, TimeZone, Utc};
//!
//! let first_at = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
//! let now = first_at + Duration::seconds(1);
//! // The third attempt failed: the fourth goes 20 s later.
//! let (status, next) = decide(&Outcome::Failed, 3, first_at, now);
//! assert_eq!(status, AttemptStatus::Retrying);
//! assert_eq!(next, DeliveryNext::RetryAt(now + Duration::seconds(20)));
//! ```

use crate::ports::{AttemptStatus, DeliveryNext};
use chrono::{DateTime, Duration, Utc};

/// The wait after the first failed attempt.
pub const FIRST_DELAY: Duration = Duration::seconds(5);

/// The longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::hours(1);

/// How long after the event was written a delivery is given up.
pub const GIVE_UP_AFTER: Duration = Duration::days(3);

/// How an attempt ended, as the deliverer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx in time.
    Delivered,
    /// The receiver answered 410 Gone: the webhook is turned off with this reason.
    Gone(String),
    /// Anything else: another status, a timeout, a refused address, a broken connection.
    Failed,
}

/// The wait after attempt `attempt` (1 for the first) failed: 5 s doubling per attempt,
/// at most [`MAX_DELAY`].
pub fn retry_delay(attempt: u32) -> Duration {
    // 5 s · 2^10 is already past an hour; keep the shift small so it cannot overflow.
    let doublings = attempt.saturating_sub(1).min(12);
    (FIRST_DELAY * (1 << doublings)).min(MAX_DELAY)
}

/// What an attempt's outcome makes of its delivery: the status the log shows and what
/// comes next.
///
/// A failure is retried after [`retry_delay`], the last try no later than
/// [`GIVE_UP_AFTER`] after `first_at`; a failure at or after that instant is given up
/// ([`AttemptStatus::Failed`], [`DeliveryNext::Done`]). A 410 is logged as failed and
/// disables the webhook.
pub fn decide(
    outcome: &Outcome,
    attempt: u32,
    first_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (AttemptStatus, DeliveryNext) {
    match outcome {
        Outcome::Delivered => (AttemptStatus::Delivered, DeliveryNext::Done),
        Outcome::Gone(reason) => (AttemptStatus::Failed, DeliveryNext::Disable(reason.clone())),
        Outcome::Failed => {
            let deadline = first_at + GIVE_UP_AFTER;
            if now >= deadline {
                (AttemptStatus::Failed, DeliveryNext::Done)
            } else {
                let at = (now + retry_delay(attempt)).min(deadline);
                (AttemptStatus::Retrying, DeliveryNext::RetryAt(at))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn delays_double_from_five_seconds_up_to_an_hour() {
        let secs: Vec<i64> = (1..=12).map(|a| retry_delay(a).num_seconds()).collect();
        assert_eq!(
            secs,
            [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(retry_delay(0), FIRST_DELAY);
        assert_eq!(retry_delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn given_up_three_days_after_the_event() {
        let first = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let late = first + Duration::days(3) - Duration::minutes(10);
        // The last try is clamped to the deadline, not past it.
        assert_eq!(
            decide(&Outcome::Failed, 40, first, late),
            (
                AttemptStatus::Retrying,
                DeliveryNext::RetryAt(first + GIVE_UP_AFTER)
            )
        );
        assert_eq!(
            decide(&Outcome::Failed, 41, first, first + GIVE_UP_AFTER),
            (AttemptStatus::Failed, DeliveryNext::Done)
        );
    }

    #[test]
    fn delivered_and_gone() {
        let first = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        assert_eq!(
            decide(&Outcome::Delivered, 1, first, first),
            (AttemptStatus::Delivered, DeliveryNext::Done)
        );
        assert_eq!(
            decide(&Outcome::Gone("410 Gone".into()), 2, first, first),
            (
                AttemptStatus::Failed,
                DeliveryNext::Disable("410 Gone".into())
            )
        );
    }
}
