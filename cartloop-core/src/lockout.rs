//! The sign-in lockout: five failed sign-ins for one email within 15 minutes lock that
//! email out, even for the right password, until the oldest of those five is 15 minutes
//! old. Failures are counted in the database, so the lockout holds across servers.
//!
//! Attempts refused while locked are not failures (the password is not even checked), so
//! a lockout ends when its window passes however often someone keeps trying.
//!
//! ```
//! use cartloop_core::lockout::{self, Lockout};
//! use chrono::{Duration, TimeZone, Utc};
//!
//! let t0 = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
//! let failures: Vec<_> = (0..5).map(|m| t0 + Duration::minutes(m)).collect();
//! let now = t0 + Duration::minutes(5);
//! assert_eq!(
//!     lockout::check(&failures, now),
//!     Lockout::Locked { until: t0 + Duration::minutes(15) }
//! );
//! assert_eq!(lockout::check(&failures[1..], now), Lockout::Open);
//! ```

use chrono::{DateTime, Duration, Utc};

/// Failures within [`WINDOW`] that lock an email out.
pub const MAX_FAILURES: usize = 5;

/// How far back failures count.
pub const WINDOW: Duration = Duration::minutes(15);

/// Whether an email may try to sign in now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockout {
    /// It may.
    Open,
    /// Not before `until` (a 429 with `Retry-After`).
    Locked {
        /// When the lockout ends.
        until: DateTime<Utc>,
    },
}

impl Lockout {
    /// Whole seconds until the lockout ends at `now`, at least 1 (`Retry-After`); 0 when open.
    pub fn retry_after(&self, now: DateTime<Utc>) -> u64 {
        match self {
            Self::Open => 0,
            Self::Locked { until } => {
                let millis = (*until - now).num_milliseconds().max(0);
                u64::try_from(millis.div_euclid(1000) + i64::from(millis % 1000 != 0))
                    .unwrap_or(0)
                    .max(1)
            }
        }
    }
}

/// The instant from which failures count at `now`: what to ask the storage for.
pub fn since(now: DateTime<Utc>) -> DateTime<Utc> {
    now - WINDOW
}

/// Whether the email whose recent failures are `failures` (any order; older ones than
/// [`since`] are ignored) is locked out at `now`.
pub fn check(failures: &[DateTime<Utc>], now: DateTime<Utc>) -> Lockout {
    let mut recent: Vec<_> = failures
        .iter()
        .copied()
        .filter(|at| *at > now - WINDOW && *at <= now)
        .collect();
    if recent.len() < MAX_FAILURES {
        return Lockout::Open;
    }
    recent.sort_unstable();
    // Open again once all but four of them have left the window.
    let until = recent[recent.len() - MAX_FAILURES] + WINDOW;
    Lockout::Locked { until }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap()
    }

    #[test]
    fn four_failures_do_not_lock() {
        let failures: Vec<_> = (0..4).map(|m| t0() + Duration::minutes(m)).collect();
        assert_eq!(check(&failures, t0() + Duration::minutes(4)), Lockout::Open);
    }

    #[test]
    fn the_lock_lasts_until_the_fifth_newest_failure_leaves_the_window() {
        let failures: Vec<_> = (0..7).map(|m| t0() + Duration::minutes(m)).collect();
        let locked = check(&failures, t0() + Duration::minutes(7));
        assert_eq!(
            locked,
            Lockout::Locked {
                until: t0() + Duration::minutes(17)
            }
        );
        assert_eq!(locked.retry_after(t0() + Duration::minutes(7)), 600);
        assert_eq!(
            check(&failures, t0() + Duration::minutes(17)),
            Lockout::Open
        );
    }

    #[test]
    fn failures_spread_over_more_than_the_window_do_not_lock() {
        let failures: Vec<_> = (0..5).map(|m| t0() + Duration::minutes(4 * m)).collect();
        assert_eq!(
            check(&failures, t0() + Duration::minutes(16)),
            Lockout::Open
        );
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero_while_locked() {
        let until = t0() + Duration::milliseconds(1500);
        assert_eq!(Lockout::Locked { until }.retry_after(t0()), 2);
        assert_eq!(Lockout::Locked { until }.retry_after(until), 1);
        assert_eq!(Lockout::Open.retry_after(t0()), 0);
    }

    proptest! {
        /// Locked exactly when five failures fall in the 15 minutes before now, and the
        /// lock ends at a moment when fewer than five do.
        #[test]
        fn locked_iff_five_in_the_window(offsets in proptest::collection::vec(0i64..3600, 0..12), now in 0i64..3600) {
            let failures: Vec<_> = offsets.iter().map(|s| t0() + Duration::seconds(*s)).collect();
            let now = t0() + Duration::seconds(now);
            let in_window = |at: DateTime<Utc>| failures.iter().filter(|f| **f > at - WINDOW && **f <= at).count();
            match check(&failures, now) {
                Lockout::Open => prop_assert!(in_window(now) < MAX_FAILURES),
                Lockout::Locked { until } => {
                    prop_assert!(in_window(now) >= MAX_FAILURES);
                    prop_assert!(until > now);
                    // No new failures: at `until` fewer than five are left.
                    let left = failures.iter().filter(|f| **f > until - WINDOW && **f <= now).count();
                    prop_assert!(left < MAX_FAILURES);
                }
            }
        }
    }
}
