//! Active hours: the daily window, in the client's local time, during which emails may go out.
//!
//! A window is `start-end` in local time, start included and end excluded: `09:00-20:00`
//! (the default), `00:00-24:00` (always open), or one that wraps midnight when its end is
//! before its start: `21:00-08:00` is open from 21:00 to 08:00 the next morning.
//!
//! The rule is stated over instants, not wall-clock arithmetic: the send instant for `now` is
//! the earliest instant `t >= now` whose local time in the zone lies in the window. Time
//! zone rules come from chrono-tz, and this statement fixes the policy for odd local times:
//!
//! - **DST gap** (local times that do not exist, e.g. 02:30 on a spring-forward day): the
//!   first valid instant after the gap — the transition itself, at the local time the clocks
//!   jumped to, if that is inside the window.
//! - **Fold** (local times that occur twice): the earliest occurrence that is not in the past.
//!
//! The search walks forward one constant-offset stretch at a time, so it never calls
//! `.single().unwrap()` and is correct for half-hour zones, 30-minute DST shifts (Lord Howe),
//! changes at midnight and days a zone skipped entirely.

use chrono::{DateTime, NaiveTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use std::fmt;
use std::str::FromStr;

const DAY: u32 = 24 * 3600;

/// A daily delivery window in local time, start included, end excluded, to the second.
/// Default `09:00-20:00`.
///
/// The end may be `24:00` (the next midnight), and a window whose end is before its start
/// wraps midnight. `21:00-00:00` and `21:00-24:00` are the same window (it prints as the
/// latter); `00:00-24:00` is always open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActiveHours {
    /// Seconds after midnight, `0..DAY`.
    start: u32,
    /// Seconds after midnight, `1..=DAY`, never equal to `start`.
    end: u32,
}

/// Why a window could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActiveHoursError {
    /// Not of the form `HH:MM-HH:MM`.
    #[error("invalid active hours {0:?}: expected HH:MM-HH:MM, e.g. 09:00-20:00 (24:00 only as the end)")]
    Syntax(String),
    /// The start and the end are the same instant of the day, so the window is empty.
    #[error("invalid active hours: the window starts and ends at {at}, so it is empty (00:00-24:00 is always open)")]
    Empty {
        /// Where the window starts and ends.
        at: NaiveTime,
    },
}

impl Default for ActiveHours {
    fn default() -> Self {
        Self {
            start: 9 * 3600,
            end: 20 * 3600,
        }
    }
}

impl ActiveHours {
    /// The window that is always open, `00:00-24:00`.
    pub const ALWAYS: Self = Self { start: 0, end: DAY };

    /// A window from `start` (included) to `end` (excluded), wrapping midnight when `end` is
    /// before `start`; an `end` of `00:00` is the next midnight. Fractions of a second are
    /// ignored.
    ///
    /// # Errors
    /// [`ActiveHoursError::Empty`] when `start == end` (use [`ActiveHours::ALWAYS`] for a
    /// window that is always open).
    ///
    /// ```
    /// use cartloop_core::active_hours::ActiveHours;
    /// use chrono::NaiveTime;
    /// let t = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap();
    /// assert_eq!(ActiveHours::new(t(9), t(20)).unwrap().to_string(), "09:00-20:00");
    /// assert_eq!(ActiveHours::new(t(21), t(8)).unwrap().to_string(), "21:00-08:00");
    /// assert_eq!(ActiveHours::new(t(18), t(0)).unwrap().to_string(), "18:00-24:00");
    /// assert!(ActiveHours::new(t(9), t(9)).is_err());
    /// ```
    pub fn new(start: NaiveTime, end: NaiveTime) -> Result<Self, ActiveHoursError> {
        Self::from_seconds(
            start.num_seconds_from_midnight(),
            end.num_seconds_from_midnight(),
        )
    }

    /// `start` in `0..DAY`, `end` in `0..=DAY` (`DAY` is 24:00). An end of 0 is the next
    /// midnight, unless the window starts at 0 too (then it is empty).
    fn from_seconds(start: u32, end: u32) -> Result<Self, ActiveHoursError> {
        debug_assert!(start < DAY && end <= DAY);
        let end = if end == 0 && start != 0 { DAY } else { end };
        if start == end {
            let at = NaiveTime::from_num_seconds_from_midnight_opt(start, 0).unwrap_or_default();
            return Err(ActiveHoursError::Empty { at });
        }
        Ok(Self { start, end })
    }

    /// Start of the window.
    pub fn start(&self) -> NaiveTime {
        NaiveTime::from_num_seconds_from_midnight_opt(self.start, 0).unwrap_or_default()
    }

    /// End of the window (excluded); `00:00` when it ends at midnight (`24:00`).
    pub fn end(&self) -> NaiveTime {
        NaiveTime::from_num_seconds_from_midnight_opt(self.end % DAY, 0).unwrap_or_default()
    }

    /// Whether the window wraps midnight (its end is before its start, e.g. `21:00-08:00`).
    /// A window ending at `24:00` does not.
    pub fn wraps_midnight(&self) -> bool {
        self.end < self.start
    }

    /// Whether the window is open all day (`00:00-24:00`).
    pub fn is_always(&self) -> bool {
        *self == Self::ALWAYS
    }

    /// Whether a local time of day, in seconds after midnight, is inside the window.
    fn contains_seconds(&self, secs: u32) -> bool {
        if self.start < self.end {
            self.start <= secs && secs < self.end
        } else {
            secs >= self.start || secs < self.end
        }
    }

    /// Whether `instant` falls inside the window in zone `tz`.
    ///
    /// ```
    /// use cartloop_core::active_hours::ActiveHours;
    /// use chrono::{TimeZone, Utc};
    /// let hours = ActiveHours::default();
    /// let tz = chrono_tz::Europe::London;
    /// assert!(hours.contains(Utc.with_ymd_and_hms(2026, 1, 5, 19, 59, 59).unwrap(), tz));
    /// assert!(!hours.contains(Utc.with_ymd_and_hms(2026, 1, 5, 20, 0, 0).unwrap(), tz));
    /// ```
    pub fn contains(&self, instant: DateTime<Utc>, tz: Tz) -> bool {
        self.contains_with_offset(instant, offset_seconds(tz, instant))
    }

    /// Whether `t` is inside the window at a UTC offset of `offset` seconds.
    fn contains_with_offset(&self, t: DateTime<Utc>, offset: i32) -> bool {
        self.contains_seconds(local_seconds(t, offset))
    }

    /// The instant a message written at `now` may be sent to a client in `tz`: `now` itself
    /// if it is inside the window, else the next instant the window opens (see the module
    /// docs for DST gaps and folds).
    ///
    /// ```
    /// use cartloop_core::active_hours::ActiveHours;
    /// use chrono::{TimeZone, Utc};
    /// let hours = ActiveHours::default();
    /// let tz = chrono_tz::Asia::Kolkata; // UTC+05:30
    /// let at_0830_local = Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 0).unwrap();
    /// let at_0900_local = Utc.with_ymd_and_hms(2026, 11, 25, 3, 30, 0).unwrap();
    /// assert_eq!(hours.next_send_instant(at_0830_local, tz), at_0900_local);
    /// assert_eq!(hours.next_send_instant(at_0900_local, tz), at_0900_local);
    /// ```
    pub fn next_send_instant(&self, now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let mut t = now;
        // Each round either answers or moves `t` to the next offset change; a window never
        // needs more than a few (one per transition crossed before it opens).
        for _ in 0..64 {
            let offset = offset_seconds(tz, t);
            let candidate = self.next_open_with_offset(t, offset);
            let after = offset_seconds(tz, candidate);
            if after == offset {
                return candidate;
            }
            // The offset changes at some T in (t, candidate], and nothing in [t, T) is
            // inside. If the first instant from `t` inside the window under the new offset
            // already has the new offset, it is past T, and nothing in [T, it) is inside:
            // it is the answer, found without searching for T (the common case: a window
            // opening on the morning after a change at night).
            let under_new = self.next_open_with_offset(t, after);
            if offset_seconds(tz, under_new) == after {
                return under_new;
            }
            t = next_transition(tz, t, candidate, offset);
        }
        t
    }

    /// The first instant `>= t` inside the window if the zone kept `offset` for ever.
    fn next_open_with_offset(&self, t: DateTime<Utc>, offset: i32) -> DateTime<Utc> {
        let secs = local_seconds(t, offset);
        if self.contains_seconds(secs) {
            return t;
        }
        // Outside, the window next opens at its start: later today if the start is still
        // ahead, else tomorrow. (Outside a wrapping window the time is between its end and
        // its start, so the start is always ahead.)
        let ahead = if secs < self.start {
            self.start - secs
        } else {
            DAY - secs + self.start
        };
        // From the whole second of `t`: the window opens on a whole second.
        let whole = t.timestamp() + i64::from(ahead);
        DateTime::from_timestamp(whole, 0).unwrap_or(t)
    }
}

/// The local time of day of `t`, in whole seconds after midnight, at UTC offset `offset`.
fn local_seconds(t: DateTime<Utc>, offset: i32) -> u32 {
    let local = t.timestamp() + i64::from(offset);
    // rem_euclid of a positive modulus is in 0..DAY, which fits a u32.
    local.rem_euclid(i64::from(DAY)) as u32
}

/// The UTC offset of zone `tz` at instant `t`, in seconds.
pub(crate) fn offset_seconds(tz: Tz, t: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&t.naive_utc())
        .fix()
        .local_minus_utc()
}

/// An instant in `(from, to]` where the offset first differs from `offset`, to the second.
/// Time-zone transitions fall on whole seconds.
pub(crate) fn next_transition(
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    offset: i32,
) -> DateTime<Utc> {
    let mut lo = from.timestamp();
    let mut hi = to.timestamp() + i64::from(to.nanosecond() > 0);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let at = DateTime::from_timestamp(mid, 0).unwrap_or(to);
        if offset_seconds(tz, at) == offset {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap_or(to).max(from)
}

impl fmt::Display for ActiveHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |f: &mut fmt::Formatter<'_>, secs: u32| {
            let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
            if s == 0 {
                write!(f, "{h:02}:{m:02}")
            } else {
                write!(f, "{h:02}:{m:02}:{s:02}")
            }
        };
        time(f, self.start)?;
        f.write_str("-")?;
        time(f, self.end)
    }
}

impl FromStr for ActiveHours {
    type Err = ActiveHoursError;

    /// Parses `HH:MM-HH:MM` (seconds optional), e.g. `09:00-20:00`, `21:00-08:00` or
    /// `00:00-24:00`. `24:00` is accepted only as the end.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || ActiveHoursError::Syntax(s.to_owned());
        let (start, end) = s.trim().split_once('-').ok_or_else(syntax)?;
        let time = |part: &str| {
            let part = part.trim();
            NaiveTime::parse_from_str(part, "%H:%M")
                .or_else(|_| NaiveTime::parse_from_str(part, "%H:%M:%S"))
                .map(|t| t.num_seconds_from_midnight())
                .map_err(|_| syntax())
        };
        let start = time(start)?;
        let end = match end.trim() {
            "24:00" | "24:00:00" => DAY,
            other => time(other)?,
        };
        Self::from_seconds(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use chrono_tz::TZ_VARIANTS;
    use proptest::prelude::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    fn window(s: &str) -> ActiveHours {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_displays() {
        assert_eq!(window("09:00-20:00"), ActiveHours::default());
        assert_eq!(window(" 08:30 - 17:45 ").to_string(), "08:30-17:45");
        assert_eq!(window("08:30:15-17:45").to_string(), "08:30:15-17:45");
        for round_trip in ["21:00-08:00", "00:00-24:00", "18:00-24:00", "23:59-00:01"] {
            assert_eq!(window(round_trip).to_string(), round_trip);
            assert_eq!(window(&window(round_trip).to_string()), window(round_trip));
        }
        assert_eq!(window("00:00-24:00"), ActiveHours::ALWAYS);
        assert_eq!(window("00:00-24:00:00"), ActiveHours::ALWAYS);
        assert_eq!(window("21:00-00:00"), window("21:00-24:00"));
        assert_eq!(window("21:00-00:00").to_string(), "21:00-24:00");
        for syntax in [
            "9-20",
            "24:00-08:00",
            "09:00-24:01",
            "09:00-25:00",
            "09:00",
            "",
        ] {
            assert!(
                matches!(
                    syntax.parse::<ActiveHours>(),
                    Err(ActiveHoursError::Syntax(_))
                ),
                "{syntax:?}"
            );
        }
        for empty in ["09:00-09:00", "00:00-00:00", "23:30-23:30"] {
            assert!(
                matches!(
                    empty.parse::<ActiveHours>(),
                    Err(ActiveHoursError::Empty { .. })
                ),
                "{empty:?}"
            );
        }
        let err = "09:00-09:00".parse::<ActiveHours>().unwrap_err();
        assert!(err.to_string().contains("00:00-24:00"), "{err}");
    }

    #[test]
    fn accessors() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let night = window("21:00-08:30");
        assert_eq!((night.start(), night.end()), (t(21, 0), t(8, 30)));
        assert!(night.wraps_midnight() && !night.is_always());
        let evening = window("18:00-24:00");
        assert_eq!((evening.start(), evening.end()), (t(18, 0), t(0, 0)));
        assert!(!evening.wraps_midnight());
        assert!(ActiveHours::ALWAYS.is_always() && !ActiveHours::ALWAYS.wraps_midnight());
        assert_eq!(ActiveHours::new(t(18, 0), t(0, 0)), Ok(evening));
        assert_eq!(ActiveHours::new(t(21, 0), t(8, 30)), Ok(night));
        assert!(ActiveHours::new(t(0, 0), t(0, 0)).is_err());
        let fraction = NaiveTime::from_hms_milli_opt(9, 0, 0, 500).unwrap();
        assert_eq!(
            ActiveHours::new(fraction, t(20, 0)),
            Ok(ActiveHours::default())
        );
    }

    #[test]
    fn a_window_can_wrap_midnight() {
        let hours = window("21:00-08:00");
        let tz = chrono_tz::UTC;
        for (inside, at) in [
            (false, utc(2026, 1, 1, 20, 59)),
            (true, utc(2026, 1, 1, 21, 0)),
            (true, utc(2026, 1, 1, 23, 59)),
            (true, utc(2026, 1, 2, 0, 0)),
            (true, utc(2026, 1, 2, 7, 59)),
            (false, utc(2026, 1, 2, 8, 0)),
            (false, utc(2026, 1, 2, 12, 0)),
        ] {
            assert_eq!(hours.contains(at, tz), inside, "{at}");
        }
        assert!(hours.contains(utc(2026, 1, 2, 7, 59) + Duration::seconds(59), tz));
        assert_eq!(
            hours.next_send_instant(utc(2026, 1, 1, 20, 59), tz),
            utc(2026, 1, 1, 21, 0)
        );
        assert_eq!(
            hours.next_send_instant(utc(2026, 1, 2, 3, 0), tz),
            utc(2026, 1, 2, 3, 0)
        );
        assert_eq!(
            hours.next_send_instant(utc(2026, 1, 2, 8, 0), tz),
            utc(2026, 1, 2, 21, 0)
        );
        // Tokyo (+09:00): 08:00 local is 23:00Z the day before.
        let tokyo = chrono_tz::Asia::Tokyo;
        assert_eq!(
            hours.next_send_instant(utc(2026, 1, 1, 23, 0), tokyo),
            utc(2026, 1, 2, 12, 0)
        );
        assert!(hours.contains(utc(2026, 1, 1, 22, 59), tokyo));
    }

    #[test]
    fn a_window_can_end_at_midnight() {
        let tz = chrono_tz::Europe::Berlin; // +01:00 in winter
        let hours = window("18:00-24:00");
        assert!(hours.contains(utc(2026, 1, 1, 22, 59) + Duration::seconds(59), tz));
        assert!(!hours.contains(utc(2026, 1, 1, 23, 0), tz));
        assert_eq!(
            hours.next_send_instant(utc(2026, 1, 1, 23, 0), tz),
            utc(2026, 1, 2, 17, 0)
        );
        assert_eq!(
            hours.next_send_instant(utc(2026, 1, 1, 16, 59), tz),
            utc(2026, 1, 1, 17, 0)
        );
    }

    #[test]
    fn always_open_is_open_at_every_instant() {
        let always = ActiveHours::ALWAYS;
        for tz in [
            chrono_tz::UTC,
            chrono_tz::America::New_York,
            chrono_tz::Australia::Lord_Howe,
            chrono_tz::Pacific::Apia,
        ] {
            // Across New York's and Lord Howe's DST days of 2026 and Samoa's skipped day.
            for start in [
                utc(2026, 3, 8, 0, 0),
                utc(2026, 11, 1, 0, 0),
                utc(2026, 4, 4, 0, 0),
                utc(2026, 10, 3, 0, 0),
                utc(2011, 12, 29, 0, 0),
            ] {
                let mut t = start;
                while t < start + Duration::days(2) {
                    assert!(always.contains(t, tz), "{tz} {t}");
                    assert_eq!(always.next_send_instant(t, tz), t, "{tz} {t}");
                    t += Duration::minutes(7);
                }
            }
        }
    }

    #[test]
    fn new_york_dst_with_overnight_windows() {
        let tz = chrono_tz::America::New_York;
        // 2026-03-08 02:00 EST -> 03:00 EDT. In 02:30-01:00, 01:00 EST (06:00Z) is outside;
        // the next local time that exists is 03:00 EDT (07:00Z), inside.
        let hours = window("02:30-01:00");
        assert_eq!(
            hours.next_send_instant(utc(2026, 3, 8, 6, 0), tz),
            utc(2026, 3, 8, 7, 0)
        );
        // 2026-11-01 02:00 EDT -> 01:00 EST. 21:00-01:30 closes at 01:30 EDT (05:30Z) and
        // opens again when the clocks go back to 01:00 EST (06:00Z), until 01:30 EST.
        let hours = window("21:00-01:30");
        assert!(hours.contains(utc(2026, 11, 1, 5, 29), tz));
        assert!(!hours.contains(utc(2026, 11, 1, 5, 30), tz));
        assert_eq!(
            hours.next_send_instant(utc(2026, 11, 1, 5, 30), tz),
            utc(2026, 11, 1, 6, 0)
        );
        assert!(!hours.contains(utc(2026, 11, 1, 6, 30), tz));
        // 21:00 EST is 02:00Z the next day.
        assert_eq!(
            hours.next_send_instant(utc(2026, 11, 1, 6, 30), tz),
            utc(2026, 11, 2, 2, 0)
        );
        // A window ending at 24:00 on the spring-forward day: the day is 23 hours long.
        let hours = window("22:00-24:00");
        assert_eq!(
            hours.next_send_instant(utc(2026, 3, 8, 12, 0), tz),
            utc(2026, 3, 9, 2, 0)
        );
        assert!(hours.contains(utc(2026, 3, 9, 3, 59), tz));
        assert!(!hours.contains(utc(2026, 3, 9, 4, 0), tz));
    }

    #[test]
    fn lord_howe_with_overnight_windows_and_midnight() {
        let tz = chrono_tz::Australia::Lord_Howe;
        // 2026-10-04 02:00 +10:30 -> 02:30 +11. 02:15-24:00 opens at the gap's end, 15:30Z,
        // and closes at midnight +11 (13:00Z on the 4th).
        let hours = window("02:15-24:00");
        assert_eq!(
            hours.next_send_instant(utc(2026, 10, 3, 14, 0), tz),
            utc(2026, 10, 3, 15, 30)
        );
        assert!(hours.contains(utc(2026, 10, 4, 12, 59), tz));
        assert!(!hours.contains(utc(2026, 10, 4, 13, 0), tz));
        assert_eq!(
            hours.next_send_instant(utc(2026, 10, 4, 13, 0), tz),
            utc(2026, 10, 4, 15, 15)
        );
        // 2026-04-05 02:00 +11 -> 01:30 +10:30. 21:00-01:45 closes at 01:45 +11 (14:45Z),
        // opens again at the transition (15:00Z, 01:30 +10:30) until 01:45 +10:30 (15:15Z).
        let hours = window("21:00-01:45");
        assert!(!hours.contains(utc(2026, 4, 4, 14, 50), tz));
        assert_eq!(
            hours.next_send_instant(utc(2026, 4, 4, 14, 50), tz),
            utc(2026, 4, 4, 15, 0)
        );
        assert!(hours.contains(utc(2026, 4, 4, 15, 14), tz));
        assert_eq!(
            hours.next_send_instant(utc(2026, 4, 4, 15, 15), tz),
            utc(2026, 4, 5, 10, 30)
        );
    }

    #[test]
    fn end_of_window_is_excluded() {
        let hours = ActiveHours::default();
        let tz = chrono_tz::UTC;
        assert!(hours.contains(utc(2026, 1, 1, 9, 0), tz));
        assert!(!hours.contains(utc(2026, 1, 1, 20, 0), tz));
        assert!(!hours.contains(utc(2026, 1, 1, 8, 59), tz));
        assert_eq!(
            hours.next_send_instant(utc(2026, 1, 1, 20, 0), tz),
            utc(2026, 1, 2, 9, 0)
        );
        assert_eq!(
            hours.next_send_instant(utc(2026, 1, 1, 8, 59), tz),
            utc(2026, 1, 1, 9, 0)
        );
    }

    #[test]
    fn half_and_quarter_hour_zones() {
        let hours = ActiveHours::default();
        // Kolkata +05:30: 08:30 local -> 09:00 local.
        assert_eq!(
            hours.next_send_instant(utc(2026, 11, 25, 3, 0), chrono_tz::Asia::Kolkata),
            utc(2026, 11, 25, 3, 30)
        );
        // Kathmandu +05:45: 20:15 local -> 09:00 next day.
        assert_eq!(
            hours.next_send_instant(utc(2026, 11, 25, 14, 30), chrono_tz::Asia::Kathmandu),
            utc(2026, 11, 26, 3, 15)
        );
        // Adelaide +10:30 in (southern) summer: 20:30 local -> 09:00 next day.
        assert_eq!(
            hours.next_send_instant(utc(2026, 11, 25, 10, 0), chrono_tz::Australia::Adelaide),
            utc(2026, 11, 25, 22, 30)
        );
    }

    #[test]
    fn new_york_spring_forward() {
        let tz = chrono_tz::America::New_York;
        let hours = ActiveHours::default();
        // 2026-03-08 00:00 EST -> 09:00 EDT (13:00Z), the day before 09:00 EST (14:00Z).
        assert_eq!(
            hours.next_send_instant(utc(2026, 3, 8, 5, 0), tz),
            utc(2026, 3, 8, 13, 0)
        );
        assert_eq!(
            hours.next_send_instant(utc(2026, 3, 7, 5, 0), tz),
            utc(2026, 3, 7, 14, 0)
        );
        // A window opening at 02:30, which does not exist that day: the gap's end, 03:00 EDT.
        let hours = window("02:30-20:00");
        assert_eq!(
            hours.next_send_instant(utc(2026, 3, 8, 6, 0), tz),
            utc(2026, 3, 8, 7, 0)
        );
    }

    #[test]
    fn new_york_fall_back_takes_the_earliest_occurrence() {
        let tz = chrono_tz::America::New_York;
        let hours = window("01:30-20:00");
        // 00:00 EDT -> the first 01:30 (EDT, 05:30Z).
        assert_eq!(
            hours.next_send_instant(utc(2026, 11, 1, 4, 0), tz),
            utc(2026, 11, 1, 5, 30)
        );
        // 01:10 EST, the second pass: the first 01:30 is past, the second (06:30Z) is next.
        assert_eq!(
            hours.next_send_instant(utc(2026, 11, 1, 6, 10), tz),
            utc(2026, 11, 1, 6, 30)
        );
    }

    #[test]
    fn london_spring_forward() {
        let tz = chrono_tz::Europe::London;
        let hours = ActiveHours::default();
        // 2026-03-29 00:30 GMT -> 09:00 BST = 08:00Z.
        assert_eq!(
            hours.next_send_instant(utc(2026, 3, 29, 0, 30), tz),
            utc(2026, 3, 29, 8, 0)
        );
        // 01:30 local does not exist: a 01:30 window opens at 02:00 BST (01:00Z).
        let hours = window("01:30-20:00");
        assert_eq!(
            hours.next_send_instant(utc(2026, 3, 29, 0, 30), tz),
            utc(2026, 3, 29, 1, 0)
        );
    }

    #[test]
    fn lord_howe_half_hour_shift() {
        let tz = chrono_tz::Australia::Lord_Howe;
        // 2026-10-04 02:00 +10:30 -> 02:30 +11: 02:15 does not exist; the gap ends 15:30Z.
        let hours = window("02:15-20:00");
        assert_eq!(
            hours.next_send_instant(utc(2026, 10, 3, 14, 0), tz),
            utc(2026, 10, 3, 15, 30)
        );
        // 2026-04-05 02:00 +11 -> 01:30 +10:30: 01:45 occurs twice; the first is 14:45Z.
        let hours = window("01:45-20:00");
        assert_eq!(
            hours.next_send_instant(utc(2026, 4, 4, 13, 0), tz),
            utc(2026, 4, 4, 14, 45)
        );
    }

    #[test]
    fn zone_changing_at_midnight() {
        // Havana springs forward at 00:00 -> 01:00 (2026-03-08, -05:00 -> -04:00):
        // a window opening at 00:30 opens at the transition, 05:00Z.
        let tz = chrono_tz::America::Havana;
        let hours = window("00:30-20:00");
        assert_eq!(
            hours.next_send_instant(utc(2026, 3, 8, 3, 0), tz),
            utc(2026, 3, 8, 5, 0)
        );
    }

    #[test]
    fn skipped_day_moves_to_the_next_window() {
        // Samoa skipped 2011-12-30 entirely: 23:59:59 on the 29th was followed by 00:00 on the 31st.
        let tz = chrono_tz::Pacific::Apia;
        let hours = ActiveHours::default();
        let now = utc(2011, 12, 29, 10, 0); // 2011-12-29 00:00 local (-10:00)
        let at = hours.next_send_instant(now, tz);
        assert_eq!(at, utc(2011, 12, 29, 19, 0)); // 09:00 on the 29th
        let now = utc(2011, 12, 30, 6, 30); // 20:30 on the 29th
        let at = hours.next_send_instant(now, tz);
        assert_eq!(at.with_timezone(&tz).to_string(), "2011-12-31 09:00:00 +14");
    }

    fn check_rule(hours: ActiveHours, now: DateTime<Utc>, tz: Tz) -> Result<(), TestCaseError> {
        let at = hours.next_send_instant(now, tz);
        prop_assert!(at >= now, "{tz}: {at} before {now}");
        prop_assert!(hours.contains(at, tz), "{tz}: {at} is outside the window");
        if at > now {
            prop_assert!(
                !hours.contains(at - Duration::seconds(1), tz),
                "{tz}: {at}-1s inside"
            );
            let mut probe = now;
            while probe < at {
                prop_assert!(
                    !hours.contains(probe, tz),
                    "{tz}: {probe} inside before {at}"
                );
                probe += Duration::minutes(5);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn send_instant_is_the_first_instant_inside(
            zone in 0..TZ_VARIANTS.len(),
            secs in 631_152_000i64..2_366_841_600, // 1990-01-01 .. 2045-01-01
            nanos in 0u32..1_000_000_000,
            start_min in 0u32..(24 * 60),
            len_min in 1u32..(24 * 60),
            until_midnight in any::<bool>(),
        ) {
            let tz = TZ_VARIANTS[zone];
            let now = DateTime::from_timestamp(secs, nanos).unwrap();
            check_rule(ActiveHours::default(), now, tz)?;
            // Any start and length: windows that wrap midnight, and ones ending at 24:00.
            let end_min = match (start_min + len_min) % (24 * 60) {
                _ if until_midnight => 24 * 60,
                0 => 24 * 60,
                end => end,
            };
            prop_assume!(end_min != start_min);
            let hours = ActiveHours::from_seconds(start_min * 60, end_min * 60).unwrap();
            check_rule(hours, now, tz)?;
            check_rule(ActiveHours::ALWAYS, now, tz)?;
        }
    }

    #[test]
    fn every_zone_on_its_transition_days() {
        // Around every transition 2020-2030 of every zone, hour by hour.
        let windows = [
            ActiveHours::default(),
            window("00:30-02:45"),
            window("21:00-08:00"),
            window("01:30-00:45"),
            window("22:30-24:00"),
            window("02:00-03:00"),
        ];
        for tz in TZ_VARIANTS {
            let mut t = utc(2026, 1, 1, 0, 0);
            let end = utc(2027, 1, 1, 0, 0);
            while t < end {
                let next = t + Duration::days(1);
                if offset_seconds(tz, t) != offset_seconds(tz, next) {
                    let mut probe = t - Duration::hours(24);
                    while probe < next + Duration::hours(24) {
                        for hours in windows {
                            check_rule(hours, probe, tz).unwrap();
                        }
                        probe += Duration::minutes(20);
                    }
                }
                t = next;
            }
        }
    }
}
