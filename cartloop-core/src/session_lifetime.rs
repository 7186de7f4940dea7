//! How long an operator's session lasts: 12 hours after its last use, 7 days at most
//! after signing in. A use is recorded at most once a minute, so a busy console does not
//! write on every request (a session may so end up to a minute earlier than 12 hours after
//! its very last request).
//!
//! ```
//! use cartloop_core::session_lifetime::{self, IDLE, MAX};
//! use chrono::{Duration, TimeZone, Utc};
//!
//! let signed_in = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
//! let used = signed_in + Duration::hours(3);
//! assert_eq!(session_lifetime::ends_at(signed_in, used), used + IDLE);
//! let late = signed_in + Duration::days(6) + Duration::hours(20);
//! assert_eq!(session_lifetime::ends_at(signed_in, late), signed_in + MAX);
//! ```

use crate::ports::SessionLimits;
use chrono::{DateTime, Duration, Utc};

/// A session ends this long after its last use.
pub const IDLE: Duration = Duration::hours(12);

/// A session ends this long after sign-in, however often it is used.
pub const MAX: Duration = Duration::days(7);

/// A use is recorded when the recorded one is at least this old.
pub const TOUCH_EVERY: Duration = Duration::minutes(1);

/// The limits the storage applies.
pub const LIMITS: SessionLimits = SessionLimits {
    idle: IDLE,
    max: MAX,
    touch_every: TOUCH_EVERY,
};

/// When a session that began at `created_at` and was last used at `last_used_at` ends.
pub fn ends_at(created_at: DateTime<Utc>, last_used_at: DateTime<Utc>) -> DateTime<Utc> {
    (last_used_at + IDLE).min(created_at + MAX)
}
