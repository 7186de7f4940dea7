//! The reply grace: an operator message written within this span after the client's last
//! message in the conversation answers someone who is writing right now. Default `15m`;
//! `0` turns it off.
//!
//! What a reply may skip (the active hours and the frequency cap, not closures) is decided
//! by [`crate::delivery_policy`]; this rule only says whether a message is one.

use crate::duration_text::Span;
use chrono::{DateTime, TimeDelta, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// How long after a client's message an operator's message counts as a reply. Default
/// `15m`; [`ReplyGrace::OFF`] (`0`) makes no message a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplyGrace(Span);

/// Why a reply grace was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyGraceError {
    /// Not `0` or a whole number and a unit.
    #[error("replyGrace: {0:?} is not a span of time: expected 0 (off) or a whole number and a unit, m, h or d (e.g. 15m)")]
    Syntax(String),
    /// Longer than a day: a message written that long after the client's is not an answer
    /// to someone writing right now.
    #[error("replyGrace: {0} is longer than the longest allowed, 24h")]
    TooLong(String),
}

const MAX_MINUTES: u32 = 24 * 60;

impl Default for ReplyGrace {
    fn default() -> Self {
        Self(Span::minutes(15))
    }
}

impl ReplyGrace {
    /// No message is a reply.
    pub const OFF: Self = Self(Span::ZERO);
    /// The longest grace: 24 hours.
    pub const MAX: TimeDelta = TimeDelta::hours(24);

    /// The grace as a span of time; zero when off.
    pub fn duration(&self) -> TimeDelta {
        self.0.delta()
    }

    /// Whether replies are recognised at all (the grace is not `0`).
    pub fn is_on(&self) -> bool {
        self.0.total_minutes() > 0
    }

    /// Whether a message created at `created_at` is a reply, given the instant of the
    /// client's last received message in the conversation at or before it: it is when
    /// `0 <= created_at - last_received < grace`. A client message received after
    /// `created_at` is not one the operator was answering, so it makes no reply.
    ///
    /// ```
    /// use cartloop_core::reply_grace::ReplyGrace;
    /// use chrono::{TimeDelta, TimeZone, Utc};
    /// let received = Utc.with_ymd_and_hms(2026, 5, 4, 18, 50, 0).unwrap();
    /// let grace = ReplyGrace::default(); // 15m
    /// assert!(grace.is_reply(received + TimeDelta::minutes(14), Some(received)));
    /// assert!(!grace.is_reply(received + TimeDelta::minutes(15), Some(received)));
    /// assert!(!grace.is_reply(received, None));
    /// assert!(!ReplyGrace::OFF.is_reply(received, Some(received)));
    /// ```
    pub fn is_reply(
        &self,
        created_at: DateTime<Utc>,
        last_received: Option<DateTime<Utc>>,
    ) -> bool {
        last_received.is_some_and(|received| {
            let since = created_at - received;
            since >= TimeDelta::zero() && since < self.duration()
        })
    }
}

impl fmt::Display for ReplyGrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for ReplyGrace {
    type Err = ReplyGraceError;

    /// Parses `0` (off) or a whole number and a unit: `15m`, `1h`, `1d`.
    ///
    /// # Errors
    /// [`ReplyGraceError::Syntax`] for anything else, [`ReplyGraceError::TooLong`] beyond
    /// 24 hours.
    ///
    /// ```
    /// use cartloop_core::reply_grace::ReplyGrace;
    /// assert_eq!("15m".parse::<ReplyGrace>(), Ok(ReplyGrace::default()));
    /// assert_eq!("0".parse::<ReplyGrace>(), Ok(ReplyGrace::OFF));
    /// assert!("2d".parse::<ReplyGrace>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let span = Span::parse(s).map_err(|_| ReplyGraceError::Syntax(s.to_owned()))?;
        if span.total_minutes() > MAX_MINUTES {
            return Err(ReplyGraceError::TooLong(s.trim().to_owned()));
        }
        Ok(Self(span))
    }
}

impl Serialize for ReplyGrace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ReplyGrace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ReplyGrace;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("replyGrace: \"0\" or a span of time such as \"15m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ReplyGrace, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_and_prints() {
        for text in ["15m", "0", "90m", "1h", "24h", "1d"] {
            let grace: ReplyGrace = text.parse().unwrap();
            assert_eq!(grace.to_string(), text);
            let json = serde_json::to_string(&grace).unwrap();
            assert_eq!(json, format!("{text:?}"));
            assert_eq!(serde_json::from_str::<ReplyGrace>(&json).unwrap(), grace);
        }
        assert_eq!(ReplyGrace::default().duration(), TimeDelta::minutes(15));
        assert!(ReplyGrace::default().is_on() && !ReplyGrace::OFF.is_on());
        assert_eq!("0m".parse::<ReplyGrace>(), Ok(ReplyGrace::OFF));
        assert_eq!(
            "25h".parse::<ReplyGrace>(),
            Err(ReplyGraceError::TooLong("25h".into()))
        );
        for bad in ["", "15", "-1m", "15 minutes", "1.5h"] {
            assert_eq!(
                bad.parse::<ReplyGrace>(),
                Err(ReplyGraceError::Syntax(bad.into()))
            );
        }
        let err = serde_json::from_str::<ReplyGrace>("15")
            .unwrap_err()
            .to_string();
        assert!(err.contains("replyGrace"), "{err}");
    }

    #[test]
    fn a_reply_is_written_within_the_grace_after_the_clients_message() {
        let received = Utc.with_ymd_and_hms(2026, 5, 4, 18, 50, 0).unwrap();
        let grace = ReplyGrace::default();
        let after = |s| received + TimeDelta::seconds(s);
        assert!(grace.is_reply(after(0), Some(received)));
        assert!(grace.is_reply(after(15 * 60 - 1), Some(received)));
        assert!(!grace.is_reply(after(15 * 60), Some(received)));
        assert!(!grace.is_reply(after(-1), Some(received)));
        let hour: ReplyGrace = "1h".parse().unwrap();
        assert!(hour.is_reply(after(59 * 60), Some(received)));
        assert!(!ReplyGrace::OFF.is_reply(after(0), Some(received)));
    }
}
