//! Active hours: the daily window, in the client's local time, during which emails may go out.
//!
//! The rule is stated over instants, not wall-clock arithmetic: the send instant for `now` is
//! the earliest instant `t >= now` whose local time in the zone lies in `[start, end)`. Time
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

use chrono::{
    DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use std::fmt;
use std::str::FromStr;

/// A daily delivery window `[start, end)` in local time. Default `09:00-20:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ActiveHours {
    start: NaiveTime,
    end: NaiveTime,
}

/// Why a window could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActiveHoursError {
    /// Not of the form `HH:MM-HH:MM`.
    #[error("invalid active hours {0:?}: expected HH:MM-HH:MM, e.g. 09:00-20:00")]
    Syntax(String),
    /// The window is empty or wraps past midnight.
    #[error("invalid active hours: start {start} must be before end {end}")]
    Empty {
        /// Start of the window.
        start: NaiveTime,
        /// End of the window.
        end: NaiveTime,
    },
}

impl Default for ActiveHours {
    fn default() -> Self {
        Self {
            start: NaiveTime::from_hms_opt(9, 0, 0).expect("valid time"),
            end: NaiveTime::from_hms_opt(20, 0, 0).expect("valid time"),
        }
    }
}

impl ActiveHours {
    /// A window from `start` (included) to `end` (excluded) on the same day.
    ///
    /// # Errors
    /// [`ActiveHoursError::Empty`] unless `start < end`.
    ///
    /// ```
    /// use cartloop_core::active_hours::ActiveHours;
    /// use chrono::NaiveTime;
    /// let t = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap();
    /// assert!(ActiveHours::new(t(9), t(20)).is_ok());
    /// assert!(ActiveHours::new(t(20), t(9)).is_err());
    /// ```
    pub fn new(start: NaiveTime, end: NaiveTime) -> Result<Self, ActiveHoursError> {
        if start < end {
            Ok(Self { start, end })
        } else {
            Err(ActiveHoursError::Empty { start, end })
        }
    }

    /// Start of the window.
    pub fn start(&self) -> NaiveTime {
        self.start
    }

    /// End of the window (excluded).
    pub fn end(&self) -> NaiveTime {
        self.end
    }

    fn contains_local(&self, local: NaiveDateTime) -> bool {
        let time = local.time();
        self.start <= time && time < self.end
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
        self.contains_local(instant.with_timezone(&tz).naive_local())
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
            if offset_seconds(tz, candidate) == offset {
                return candidate;
            }
            t = next_transition(tz, t, candidate, offset);
        }
        t
    }

    /// The first instant `>= t` inside the window if the zone kept `offset` for ever.
    fn next_open_with_offset(&self, t: DateTime<Utc>, offset: i32) -> DateTime<Utc> {
        let local = t.naive_utc() + Duration::seconds(i64::from(offset));
        if self.contains_local(local) {
            return t;
        }
        let day: NaiveDate = if local.time() < self.start {
            local.date()
        } else {
            local.date().succ_opt().unwrap_or(local.date())
        };
        let open = day.and_time(self.start) - Duration::seconds(i64::from(offset));
        Utc.from_utc_datetime(&open)
    }
}

fn offset_seconds(tz: Tz, t: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&t.naive_utc())
        .fix()
        .local_minus_utc()
}

/// An instant in `(from, to]` where the offset first differs from `offset`, to the second.
/// Time-zone transitions fall on whole seconds.
fn next_transition(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>, offset: i32) -> DateTime<Utc> {
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
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

impl FromStr for ActiveHours {
    type Err = ActiveHoursError;

    /// Parses `HH:MM-HH:MM` (seconds optional), e.g. `09:00-20:00`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || ActiveHoursError::Syntax(s.to_owned());
        let (start, end) = s.trim().split_once('-').ok_or_else(syntax)?;
        let time = |part: &str| {
            let part = part.trim();
            NaiveTime::parse_from_str(part, "%H:%M")
                .or_else(|_| NaiveTime::parse_from_str(part, "%H:%M:%S"))
                .map_err(|_| syntax())
        };
        Self::new(time(start)?, time(end)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert!(matches!(
            "20:00-09:00".parse::<ActiveHours>(),
            Err(ActiveHoursError::Empty { .. })
        ));
        assert!(matches!(
            "9-20".parse::<ActiveHours>(),
            Err(ActiveHoursError::Syntax(_))
        ));
        assert!("09:00-09:00".parse::<ActiveHours>().is_err());
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
            start_min in 0u32..(23 * 60),
            len_min in 1u32..(12 * 60),
        ) {
            let tz = TZ_VARIANTS[zone];
            let now = DateTime::from_timestamp(secs, nanos).unwrap();
            check_rule(ActiveHours::default(), now, tz)?;
            let start = NaiveTime::from_num_seconds_from_midnight_opt(start_min * 60, 0).unwrap();
            let end_secs = ((start_min + len_min) * 60).min(24 * 3600 - 1);
            let end = NaiveTime::from_num_seconds_from_midnight_opt(end_secs, 0).unwrap();
            check_rule(ActiveHours::new(start, end).unwrap(), now, tz)?;
        }
    }

    #[test]
    fn every_zone_on_its_transition_days() {
        // Around every transition 2020-2030 of every zone, hour by hour.
        let hours = ActiveHours::default();
        let early = window("00:30-02:45");
        for tz in TZ_VARIANTS {
            let mut t = utc(2026, 1, 1, 0, 0);
            let end = utc(2027, 1, 1, 0, 0);
            while t < end {
                let next = t + Duration::days(1);
                if offset_seconds(tz, t) != offset_seconds(tz, next) {
                    let mut probe = t - Duration::hours(24);
                    while probe < next + Duration::hours(24) {
                        check_rule(hours, probe, tz).unwrap();
                        check_rule(early, probe, tz).unwrap();
                        probe += Duration::minutes(20);
                    }
                }
                t = next;
            }
        }
    }
}
