//! When a failed webhook delivery is tried again (SPEC §10): 5 s after the first failure,
//! doubling, at most an hour between tries, and given up 3 days after the event.

use crate::ports::DeliveryNext;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The wait after the first failed attempt.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long after its event a delivery is still tried.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(3 * 24 * 3600);

/// The wait after failed attempt number `attempt` (1 for the first).
pub fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(20);
    FIRST_BACKOFF
        .saturating_mul(1u32 << doublings)
        .min(MAX_BACKOFF)
}

/// What follows attempt number `attempt` of a delivery whose event was written at
/// `first_at`, when it failed at `now`: another try after [`backoff`], or done (given up)
/// when that try would come later than [`GIVE_UP_AFTER`] after the event.
pub fn after_failure(first_at: DateTime<Utc>, attempt: u32, now: DateTime<Utc>) -> DeliveryNext {
    let wait = chrono::Duration::from_std(backoff(attempt)).unwrap_or(chrono::Duration::MAX);
    let give_up = chrono::Duration::from_std(GIVE_UP_AFTER).unwrap_or(chrono::Duration::MAX);
    let next = now + wait;
    if next > first_at + give_up {
        DeliveryNext::Done
    } else {
        DeliveryNext::RetryAt(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_starts_at_five_seconds_doubles_and_stops_at_an_hour() {
        let waits: Vec<u64> = (1..=12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(
            waits,
            [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_delivery_is_given_up_three_days_after_its_event() {
        let first = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let soon = first + chrono::Duration::seconds(1);
        assert_eq!(
            after_failure(first, 1, soon),
            DeliveryNext::RetryAt(soon + chrono::Duration::seconds(5))
        );
        let late = first + chrono::Duration::hours(71) + chrono::Duration::minutes(30);
        assert_eq!(after_failure(first, 40, late), DeliveryNext::Done);
        let just = first + chrono::Duration::hours(70);
        assert_eq!(
            after_failure(first, 40, just),
            DeliveryNext::RetryAt(just + chrono::Duration::hours(1))
        );
    }
}
