//! The frequency cap per client: at most `count` operator messages emailed to one client in
//! any rolling `per`, written `{"count":3,"per":"24h"}`.
//!
//! A message over the cap is held, never dropped and never sent early: it waits for the
//! earliest instant at which one more send fits. One more send fits at `t` when fewer than
//! `count` sends happened after `t - per`, so the window is `(t - per, t]` and a send exactly
//! `per` before `t` no longer counts. A send recorded after `t` (a server whose clock runs
//! ahead) counts as well: the cap is never exceeded because of clock skew.

use crate::duration_text::Span;
use chrono::{DateTime, TimeDelta, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;

/// At most [`count`](FrequencyCap::count) emails to one client in any rolling
/// [`per`](FrequencyCap::per).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrequencyCap {
    /// `1..=MAX_COUNT`.
    count: u32,
    /// Longer than zero, at most `MAX_PER_MINUTES`.
    per: Span,
}

const MAX_PER_MINUTES: u32 = 30 * 24 * 60;

/// Why a frequency cap was refused; each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrequencyCapError {
    /// `count` is outside `1..=1000`.
    #[error("count: must be a whole number from 1 to 1000, got {0}")]
    Count(i128),
    /// `per` is not a span such as `90m`, `24h` or `7d`.
    #[error("per: {0:?} is not a span of time: expected a whole number and a unit, m, h or d (e.g. 90m, 24h, 7d)")]
    PerSyntax(String),
    /// `per` is zero.
    #[error("per: must be longer than 0")]
    PerZero,
    /// `per` is longer than 30 days.
    #[error("per: {0} is longer than the longest allowed, 30d")]
    PerTooLong(String),
}

impl FrequencyCap {
    /// The largest `count`.
    pub const MAX_COUNT: u32 = 1000;
    /// The longest `per`: 30 days.
    pub const MAX_PER: TimeDelta = TimeDelta::days(30);

    /// At most `count` emails in any rolling `per`, written as a whole number and a unit:
    /// `90m`, `24h`, `7d`.
    ///
    /// # Errors
    /// [`FrequencyCapError::Count`] unless `1 <= count <= 1000`; `PerSyntax`, `PerZero` or
    /// `PerTooLong` unless `per` is a span longer than zero and at most 30 days.
    ///
    /// ```
    /// use cartloop_core::frequency_cap::{FrequencyCap, FrequencyCapError};
    /// let cap = FrequencyCap::new(3, "24h")?;
    /// assert_eq!((cap.count(), cap.per()), (3, chrono::TimeDelta::hours(24)));
    /// assert_eq!(FrequencyCap::new(0, "24h"), Err(FrequencyCapError::Count(0)));
    /// assert_eq!(FrequencyCap::new(3, "31d"), Err(FrequencyCapError::PerTooLong("31d".into())));
    /// # Ok::<(), FrequencyCapError>(())
    /// ```
    pub fn new(count: u32, per: &str) -> Result<Self, FrequencyCapError> {
        Self::checked(i128::from(count), per)
    }

    fn checked(count: i128, per: &str) -> Result<Self, FrequencyCapError> {
        let count = u32::try_from(count)
            .ok()
            .filter(|c| (1..=Self::MAX_COUNT).contains(c))
            .ok_or(FrequencyCapError::Count(count))?;
        let span = Span::parse(per).map_err(|_| FrequencyCapError::PerSyntax(per.to_owned()))?;
        if span.total_minutes() == 0 {
            return Err(FrequencyCapError::PerZero);
        }
        if span.total_minutes() > MAX_PER_MINUTES {
            return Err(FrequencyCapError::PerTooLong(per.trim().to_owned()));
        }
        Ok(Self { count, per: span })
    }

    /// How many emails fit in one rolling [`per`](Self::per).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The length of the rolling window.
    pub fn per(&self) -> TimeDelta {
        self.per.delta()
    }

    /// The instant from which one more send fits, given the instants of the sends to this
    /// client; `None` when fewer than `count` sends are given, so one more fits at any
    /// instant. It is the `count`-th most recent send plus `per`.
    ///
    /// `sends` may come in any order; oldest or newest first (as a storage reads them,
    /// ordered) is read in one pass, any other order costs a count per send.
    ///
    /// ```
    /// use cartloop_core::frequency_cap::FrequencyCap;
    /// use chrono::{TimeZone, Utc};
    /// let at = |h| Utc.with_ymd_and_hms(2026, 5, 4, h, 0, 0).unwrap();
    /// let cap = FrequencyCap::new(2, "24h").unwrap();
    /// assert_eq!(cap.free_from(&[at(9)]), None);
    /// assert_eq!(cap.free_from(&[at(9), at(11), at(12)]), Some(at(11) + chrono::TimeDelta::hours(24)));
    /// ```
    pub fn free_from(&self, sends: &[DateTime<Utc>]) -> Option<DateTime<Utc>> {
        let k = self.count as usize;
        kth_newest(sends, k).map(|s| s + self.per())
    }

    /// Whether one more send at `t` fits: fewer than `count` of `sends` are after `t - per`.
    pub fn fits(&self, t: DateTime<Utc>, sends: &[DateTime<Utc>]) -> bool {
        self.free_from(sends).is_none_or(|free| t >= free)
    }

    /// The earliest instant `>= t` at which one more send fits.
    ///
    /// ```
    /// use cartloop_core::frequency_cap::FrequencyCap;
    /// use chrono::{TimeDelta, TimeZone, Utc};
    /// let at = |d, h| Utc.with_ymd_and_hms(2026, 5, d, h, 0, 0).unwrap();
    /// let cap = FrequencyCap::new(3, "24h").unwrap();
    /// let sends = [at(4, 9), at(4, 12), at(4, 15)];
    /// // A fourth email on the 4th waits until the 9:00 send is 24 h old.
    /// assert_eq!(cap.next_fit(at(4, 18), &sends), at(5, 9));
    /// assert_eq!(cap.next_fit(at(5, 10), &sends), at(5, 10));
    /// ```
    pub fn next_fit(&self, t: DateTime<Utc>, sends: &[DateTime<Utc>]) -> DateTime<Utc> {
        self.free_from(sends).map_or(t, |free| t.max(free))
    }
}

/// The `k`-th most recent of `sends` (`k >= 1`), `None` when there are fewer than `k`.
fn kth_newest(sends: &[DateTime<Utc>], k: usize) -> Option<DateTime<Utc>> {
    if k == 0 || sends.len() < k {
        return None;
    }
    if sends.is_sorted() {
        return Some(sends[sends.len() - k]);
    }
    if sends.is_sorted_by(|a, b| a >= b) {
        return Some(sends[k - 1]);
    }
    // The k-th most recent is the latest send that has at least k sends at or after it.
    sends
        .iter()
        .copied()
        .filter(|s| sends.iter().filter(|x| *x >= s).count() >= k)
        .max()
}

impl fmt::Display for FrequencyCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {}", self.count, self.per)
    }
}

impl Serialize for FrequencyCap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("FrequencyCap", 2)?;
        s.serialize_field("count", &self.count)?;
        s.serialize_field("per", &self.per.to_string())?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for FrequencyCap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            count: Count,
            per: Per,
        }
        let raw = Raw::deserialize(deserializer)?;
        Self::checked(raw.count.0, &raw.per.0).map_err(de::Error::custom)
    }
}

/// `count` as written, any integer, so that a value out of range is refused naming it.
struct Count(i128);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("count: a whole number from 1 to 1000")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                Ok(Count(i128::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(i128::from(v)))
            }
        }
        deserializer.deserialize_i64(V)
    }
}

/// `per` as written.
struct Per(String);

impl<'de> Deserialize<'de> for Per {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Per;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("per: a span of time such as \"90m\", \"24h\" or \"7d\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Per, E> {
                Ok(Per(v.to_owned()))
            }
        }
        deserializer.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, d, h, m, 0).unwrap()
    }

    #[test]
    fn parses_and_refuses_naming_the_field() {
        let cap: FrequencyCap = serde_json::from_str(r#"{"count":3,"per":"24h"}"#).unwrap();
        assert_eq!(cap, FrequencyCap::new(3, "24h").unwrap());
        assert_eq!(cap, FrequencyCap::new(3, "1d").unwrap());
        assert_eq!(
            serde_json::to_string(&cap).unwrap(),
            r#"{"count":3,"per":"24h"}"#
        );
        assert_eq!(cap.to_string(), "3 per 24h");
        for ok in ["90m", "7d", "30d", "720h", "1m"] {
            assert!(FrequencyCap::new(1, ok).is_ok(), "{ok}");
        }
        assert_eq!(FrequencyCap::new(1000, "1m").unwrap().count(), 1000);
        for (json, field) in [
            (r#"{"count":0,"per":"24h"}"#, "count"),
            (r#"{"count":1001,"per":"24h"}"#, "count"),
            (r#"{"count":-1,"per":"24h"}"#, "count"),
            (r#"{"count":99999999999999999999,"per":"24h"}"#, "count"),
            (r#"{"count":"3","per":"24h"}"#, "count"),
            (r#"{"count":2.5,"per":"24h"}"#, "count"),
            (r#"{"per":"24h"}"#, "count"),
            (r#"{"count":3,"per":"0"}"#, "per"),
            (r#"{"count":3,"per":"0m"}"#, "per"),
            (r#"{"count":3,"per":"31d"}"#, "per"),
            (r#"{"count":3,"per":"43201m"}"#, "per"),
            (r#"{"count":3,"per":"1 day"}"#, "per"),
            (r#"{"count":3,"per":24}"#, "per"),
            (r#"{"count":3}"#, "per"),
        ] {
            let err = serde_json::from_str::<FrequencyCap>(json)
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{json}: {err}");
        }
        let err = serde_json::from_str::<FrequencyCap>(r#"{"count":3,"per":"24h","x":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `x`"), "{err}");
    }

    #[test]
    fn three_per_day() {
        let cap = FrequencyCap::new(3, "24h").unwrap();
        let two = [at(4, 9, 0), at(4, 12, 0)];
        assert!(cap.fits(at(4, 13, 0), &two));
        assert_eq!(cap.next_fit(at(4, 13, 0), &two), at(4, 13, 0));
        let three = [at(4, 9, 0), at(4, 12, 0), at(4, 13, 0)];
        assert!(!cap.fits(at(4, 14, 0), &three));
        // The oldest of the three leaves the window exactly 24 h after it was sent.
        assert!(!cap.fits(at(5, 8, 59), &three));
        assert!(cap.fits(at(5, 9, 0), &three));
        assert_eq!(cap.next_fit(at(4, 14, 0), &three), at(5, 9, 0));
        // Order does not matter.
        let shuffled = [at(4, 12, 0), at(4, 13, 0), at(4, 9, 0)];
        let newest_first = [at(4, 13, 0), at(4, 12, 0), at(4, 9, 0)];
        for sends in [&shuffled, &newest_first] {
            assert_eq!(cap.next_fit(at(4, 14, 0), sends), at(5, 9, 0));
        }
        // Older sends beyond the window change nothing; a burst waits for its third-newest.
        let many = [
            at(1, 0, 0),
            at(2, 0, 0),
            at(4, 9, 0),
            at(4, 9, 0),
            at(4, 9, 30),
            at(4, 10, 0),
        ];
        assert_eq!(cap.next_fit(at(4, 11, 0), &many), at(5, 9, 0));
        // A send recorded after t by a clock running ahead still counts.
        assert!(!cap.fits(at(4, 8, 0), &three));
        assert!(cap.fits(at(4, 8, 0), &[]));
    }

    proptest! {
        #[test]
        fn next_fit_is_the_first_instant_that_fits(
            count in 1u32..6,
            per_min in 1u32..600,
            mut sends in proptest::collection::vec(0i64..2_000, 0..12),
            t in 0i64..2_500,
        ) {
            let base = at(4, 0, 0);
            let minute = |m: i64| base + TimeDelta::minutes(m);
            let cap = FrequencyCap::new(count, &format!("{per_min}m")).unwrap();
            let unsorted: Vec<_> = sends.iter().copied().map(minute).collect();
            sends.sort_unstable();
            let sorted: Vec<_> = sends.iter().copied().map(minute).collect();
            // Counted directly: fewer than `count` sends after `c - per`.
            let fits_at = |c: DateTime<Utc>| {
                unsorted.iter().filter(|s| **s > c - cap.per()).count() < count as usize
            };
            let got = cap.next_fit(minute(t), &sorted);
            prop_assert_eq!(got, cap.next_fit(minute(t), &unsorted));
            prop_assert!(got >= minute(t));
            prop_assert!(cap.fits(got, &sorted) && fits_at(got));
            let mut probe = minute(t);
            while probe < got {
                prop_assert!(!fits_at(probe), "{} fits before {}", probe, got);
                probe += TimeDelta::minutes(1);
            }
        }
    }
}
