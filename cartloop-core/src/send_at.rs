//! Send later: an operator may ask for a message not to go before a given instant. The
//! request is refused when that instant is more than a minute in the past (a minute allows
//! for the clocks of the operator's machine and the server) or more than 90 days ahead.
//!
//! Once accepted, the instant is stored and re-read at send time, when it is in the past by
//! design; only the request is checked here. How it combines with the other rules is
//! [`crate::delivery_policy`]'s.

use chrono::{DateTime, TimeDelta, Utc};
use std::fmt;

/// A requested send instant, checked against the instant it was requested at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SendAt(DateTime<Utc>);

/// Why a requested send instant was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendAtError {
    /// Not an RFC 3339 timestamp.
    #[error("sendAt: {0:?} is not an RFC 3339 timestamp (e.g. 2026-11-25T09:00:00Z)")]
    Syntax(String),
    /// More than a minute before the request.
    #[error("sendAt: {} is {} in the past; at most 1 minute is allowed", rfc3339(requested), Ago(*now - *requested))]
    InThePast {
        /// The instant asked for.
        requested: DateTime<Utc>,
        /// When it was asked.
        now: DateTime<Utc>,
    },
    /// More than 90 days after the request.
    #[error("sendAt: {} is more than 90 days ahead (the latest is {})", rfc3339(requested), rfc3339(&(*now + SendAt::MAX_AHEAD)))]
    TooFarAhead {
        /// The instant asked for.
        requested: DateTime<Utc>,
        /// When it was asked.
        now: DateTime<Utc>,
    },
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A span in the past, in the largest whole unit, for error messages.
struct Ago(TimeDelta);

impl fmt::Display for Ago {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        match (d.num_days(), d.num_hours(), d.num_minutes()) {
            (days, _, _) if days >= 2 => write!(f, "{days} days"),
            (_, hours, _) if hours >= 2 => write!(f, "{hours} hours"),
            (_, _, minutes) if minutes >= 2 => write!(f, "{minutes} minutes"),
            _ => write!(f, "{} seconds", d.num_seconds()),
        }
    }
}

impl SendAt {
    /// How far in the past a request may be.
    pub const MAX_PAST: TimeDelta = TimeDelta::minutes(1);
    /// How far ahead a request may be.
    pub const MAX_AHEAD: TimeDelta = TimeDelta::days(90);

    /// `requested`, asked for at `now`.
    ///
    /// # Errors
    /// [`SendAtError::InThePast`] when `requested` is more than a minute before `now`,
    /// [`SendAtError::TooFarAhead`] when it is more than 90 days after it. Both limits are
    /// inclusive: exactly a minute ago and exactly 90 days ahead are accepted.
    ///
    /// ```
    /// use cartloop_core::send_at::SendAt;
    /// use chrono::{TimeDelta, TimeZone, Utc};
    /// let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
    /// assert!(SendAt::new(now - TimeDelta::seconds(60), now).is_ok());
    /// assert!(SendAt::new(now - TimeDelta::seconds(61), now).is_err());
    /// assert!(SendAt::new(now + TimeDelta::days(90), now).is_ok());
    /// assert!(SendAt::new(now + TimeDelta::days(90) + TimeDelta::seconds(1), now).is_err());
    /// ```
    pub fn new(requested: DateTime<Utc>, now: DateTime<Utc>) -> Result<Self, SendAtError> {
        if requested < now - Self::MAX_PAST {
            return Err(SendAtError::InThePast { requested, now });
        }
        if requested > now + Self::MAX_AHEAD {
            return Err(SendAtError::TooFarAhead { requested, now });
        }
        Ok(Self(requested))
    }

    /// An RFC 3339 timestamp (any offset), asked for at `now`.
    ///
    /// # Errors
    /// [`SendAtError::Syntax`] when `text` is not RFC 3339, else as [`SendAt::new`].
    ///
    /// ```
    /// use cartloop_core::send_at::SendAt;
    /// use chrono::{TimeZone, Utc};
    /// let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
    /// let at = SendAt::parse("2026-11-26T09:00:00+09:00", now)?;
    /// assert_eq!(at.instant(), Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap());
    /// # Ok::<(), cartloop_core::send_at::SendAtError>(())
    /// ```
    pub fn parse(text: &str, now: DateTime<Utc>) -> Result<Self, SendAtError> {
        let requested = DateTime::parse_from_rfc3339(text.trim())
            .map_err(|_| SendAtError::Syntax(crate::text::cut(text, 64)))?;
        Self::new(requested.with_timezone(&Utc), now)
    }

    /// The instant asked for.
    pub fn instant(self) -> DateTime<Utc> {
        self.0
    }
}

impl From<SendAt> for DateTime<Utc> {
    fn from(at: SendAt) -> Self {
        at.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
    }

    #[test]
    fn limits_are_a_minute_back_and_ninety_days_ahead() {
        let now = now();
        let s = TimeDelta::seconds;
        for ok in [now, now - s(60), now + s(1), now + TimeDelta::days(90)] {
            assert_eq!(SendAt::new(ok, now).map(SendAt::instant), Ok(ok));
        }
        assert!(matches!(
            SendAt::new(now - s(61), now),
            Err(SendAtError::InThePast { .. })
        ));
        assert!(matches!(
            SendAt::new(now + TimeDelta::days(90) + TimeDelta::nanoseconds(1), now),
            Err(SendAtError::TooFarAhead { .. })
        ));
    }

    #[test]
    fn errors_say_what_and_by_how_much() {
        let now = now();
        let msg = |r: DateTime<Utc>| SendAt::new(r, now).unwrap_err().to_string();
        assert_eq!(
            msg(now - TimeDelta::minutes(5)),
            "sendAt: 2026-11-25T08:55:00Z is 5 minutes in the past; at most 1 minute is allowed"
        );
        assert!(msg(now - TimeDelta::days(3)).contains("3 days in the past"));
        assert!(msg(now - TimeDelta::seconds(90)).contains("90 seconds"));
        assert_eq!(
            msg(now + TimeDelta::days(91)),
            "sendAt: 2027-02-24T09:00:00Z is more than 90 days ahead (the latest is 2027-02-23T09:00:00Z)"
        );
        assert_eq!(
            SendAt::parse("tomorrow", now),
            Err(SendAtError::Syntax("tomorrow".into()))
        );
        assert!(SendAt::parse("2026-11-25", now).is_err());
        assert_eq!(
            SendAt::parse(" 2026-11-25T10:00:00Z ", now).map(DateTime::from),
            Ok(now + TimeDelta::hours(1))
        );
    }
}
