//! Calendars: when, on each day of the week, emails may go out, in the client's local time.
//!
//! A calendar is either one window for every day ([`Calendar::Daily`], written as the plain
//! string `"09:00-20:00"`) or a week ([`Calendar::Weekly`]):
//! `{"mon":["09:00-12:00","13:00-20:00"],...,"sat":[],"sun":[]}`. A day that is missing or
//! has no windows is closed. A window that wraps midnight belongs to the day it starts:
//! `"fri":["21:00-02:00"]` is open from Friday 21:00 to Saturday 02:00, even when Saturday
//! itself is closed. The windows of one day may touch (`09:00-12:00`, `12:00-13:00`) but not
//! overlap; a window running past midnight may overlap the next day's, and then the calendar
//! is open whenever either is. A week with no window at all is refused: such a store would
//! never send anything (closures are the way to stop sending for a while).
//!
//! The rule is the one of [`active_hours`](crate::active_hours), stated over instants: an
//! instant is inside the calendar when its local time in the client's zone falls in one of
//! the windows of its local day (or in a window that wrapped from the day before), and the
//! next open instant from `t` is the earliest instant `>= t` inside. So across a change of
//! the clocks:
//!
//! - **DST gap**: a window opening at a local time that does not exist opens at the first
//!   valid instant after the gap (if that is still inside the window; a window lying
//!   entirely in the gap does not open that day);
//! - **fold**: a window opening at a local time that occurs twice opens at the earliest
//!   occurrence that is not in the past.
//!
//! A daily calendar is exactly [`ActiveHours`]. A week is kept as open stretches of local
//! week time, searched one constant-offset stretch of the zone at a time, at most three days
//! at once: no zone of the tz database changes its offset twice within three days (the
//! closest changes since 1990 are almost seven days apart), so each stretch holds at most
//! one change and is searched without looking up the zone minute by minute.

use crate::active_hours::{next_transition, offset_seconds, ActiveHours, ActiveHoursError};
use crate::json::{self, FromJson, Json};
use chrono::{DateTime, TimeDelta, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

const DAY: u32 = 24 * 3600;
const WEEK: u32 = 7 * DAY;

/// How far one search under a single UTC offset looks ahead, in seconds: less than the
/// shortest time between two offset changes of any zone, so a stretch holds at most one.
const STRETCH: i64 = 3 * DAY as i64;

/// The most windows one day may have.
pub const MAX_WINDOWS_PER_DAY: usize = 24;

/// The days of the week, Monday first, as the calendar's JSON lists them.
pub const DAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// The JSON key of a day: `"mon"`, `"tue"`, `"wed"`, `"thu"`, `"fri"`, `"sat"`, `"sun"`.
pub fn day_key(day: Weekday) -> &'static str {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][day.num_days_from_monday() as usize]
}

fn day_from_key(key: &str) -> Option<Weekday> {
    DAYS.into_iter().find(|&day| day_key(day) == key)
}

/// When emails may go out: the same window every day, or windows per day of the week.
///
/// ```
/// use cartloop_core::calendar::Calendar;
/// use chrono::{TimeZone, Utc};
///
/// let week: Calendar = r#"{"mon":["09:00-12:00","13:00-20:00"],"fri":["21:00-02:00"]}"#.parse()?;
/// let tz = chrono_tz::Asia::Tokyo; // +09:00
/// // Saturday 2026-11-28 01:30 in Tokyo: still Friday's window.
/// assert!(week.contains(Utc.with_ymd_and_hms(2026, 11, 27, 16, 30, 0).unwrap(), tz));
/// // Saturday 02:00: closed until Monday 09:00.
/// let sat = Utc.with_ymd_and_hms(2026, 11, 27, 17, 0, 0).unwrap();
/// assert_eq!(week.next_open(sat, tz), Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap());
/// # Ok::<(), cartloop_core::calendar::CalendarError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Calendar {
    /// The same window every day (`"09:00-20:00"`).
    Daily(ActiveHours),
    /// Windows per day of the week.
    Weekly(Week),
}

/// The windows of each day of a week; at least one window in the week.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Week {
    /// By day, Monday first; each day's windows sorted by start and not overlapping.
    days: [Vec<ActiveHours>; 7],
    /// The open stretches of local week time, in seconds after Monday 00:00: sorted,
    /// merged where they touch or overlap, within `0..WEEK` (a stretch running past Sunday
    /// midnight is split), never empty.
    spans: Vec<(u32, u32)>,
}

/// Why a value is not a calendar. Each names the day, and the window by its index in the
/// day's list, where one is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// Neither a string nor an object.
    #[error("expected a window such as \"09:00-20:00\" or a week such as {{\"mon\":[\"09:00-12:00\",\"13:00-20:00\"],\"sun\":[]}}, not {found}")]
    Shape {
        /// What the value was: `"a number"`, `"a list"`, ...
        found: &'static str,
    },
    /// The plain string is not a window.
    #[error("{0}")]
    Daily(ActiveHoursError),
    /// A key of the week is not a day.
    #[error("unknown day {key:?}: the days are mon, tue, wed, thu, fri, sat and sun")]
    UnknownDay {
        /// The key as written.
        key: String,
    },
    /// A day is given twice.
    #[error("{} is given twice", day_key(*.day))]
    DuplicateDay {
        /// The day.
        day: Weekday,
    },
    /// A day's value is not a list.
    #[error("{}: expected a list of windows such as [\"09:00-12:00\",\"13:00-20:00\"] ([] when closed), not {found}", day_key(*.day))]
    NotAList {
        /// The day.
        day: Weekday,
        /// What the value was.
        found: &'static str,
    },
    /// An entry of a day's list is not a string.
    #[error("{}[{index}]: expected a window such as \"09:00-20:00\", not {found}", day_key(*.day))]
    NotText {
        /// The day.
        day: Weekday,
        /// The entry's index in the day's list, from 0.
        index: usize,
        /// What the entry was.
        found: &'static str,
    },
    /// An entry of a day's list is not a window.
    #[error("{}[{index}]: {reason}", day_key(*.day))]
    Window {
        /// The day.
        day: Weekday,
        /// The entry's index in the day's list, from 0.
        index: usize,
        /// The entry as written.
        text: String,
        /// Why it is not a window.
        reason: ActiveHoursError,
    },
    /// Two windows of one day overlap.
    #[error("{}: the windows {first} and {second} overlap", day_key(*.day))]
    Overlap {
        /// The day.
        day: Weekday,
        /// The window that starts first.
        first: ActiveHours,
        /// The window that starts inside it.
        second: ActiveHours,
    },
    /// A day has more than [`MAX_WINDOWS_PER_DAY`] windows.
    #[error("{}: {count} windows, at most 24 are allowed", day_key(*.day))]
    TooManyWindows {
        /// The day.
        day: Weekday,
        /// How many windows it has.
        count: usize,
    },
    /// No day has a window, so nothing would ever be sent.
    #[error("the week has no window, so nothing would ever be sent: give at least one day a window (closures stop sending for a while)")]
    NeverOpen,
    /// Text that looks like JSON but is not (from [`FromStr`]).
    #[error("invalid calendar JSON: {0}")]
    Syntax(String),
}

impl CalendarError {
    /// The day at fault, if the error is about one day.
    pub fn day(&self) -> Option<Weekday> {
        match self {
            CalendarError::DuplicateDay { day }
            | CalendarError::NotAList { day, .. }
            | CalendarError::NotText { day, .. }
            | CalendarError::Window { day, .. }
            | CalendarError::Overlap { day, .. }
            | CalendarError::TooManyWindows { day, .. } => Some(*day),
            _ => None,
        }
    }
}

impl Default for Calendar {
    /// Every day `09:00-20:00`.
    fn default() -> Self {
        Calendar::Daily(ActiveHours::default())
    }
}

impl From<ActiveHours> for Calendar {
    fn from(hours: ActiveHours) -> Self {
        Calendar::Daily(hours)
    }
}

impl From<Week> for Calendar {
    fn from(week: Week) -> Self {
        Calendar::Weekly(week)
    }
}

impl Calendar {
    /// Whether `instant` is inside the calendar in zone `tz`.
    pub fn contains(&self, instant: DateTime<Utc>, tz: Tz) -> bool {
        match self {
            Calendar::Daily(hours) => hours.contains(instant, tz),
            Calendar::Weekly(week) => week.contains(instant, tz),
        }
    }

    /// The earliest instant `>= instant` inside the calendar in zone `tz`: `instant` itself
    /// when it is inside (see the module docs for DST gaps and folds). Every calendar opens
    /// at least once a week, so there always is one.
    ///
    /// ```
    /// use cartloop_core::calendar::Calendar;
    /// use chrono::{TimeZone, Utc};
    /// let closed_on_sunday: Calendar =
    ///     r#"{"mon":["09:00-20:00"],"tue":["09:00-20:00"],"wed":["09:00-20:00"],"thu":["09:00-20:00"],"fri":["09:00-20:00"],"sat":["10:00-16:00"]}"#.parse()?;
    /// let tz = chrono_tz::Europe::Berlin; // +01:00 in winter
    /// // Saturday 2026-11-28 17:00 local -> Monday 09:00 local.
    /// let sat = Utc.with_ymd_and_hms(2026, 11, 28, 16, 0, 0).unwrap();
    /// assert_eq!(closed_on_sunday.next_open(sat, tz), Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap());
    /// # Ok::<(), cartloop_core::calendar::CalendarError>(())
    /// ```
    pub fn next_open(&self, instant: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        match self {
            Calendar::Daily(hours) => hours.next_send_instant(instant, tz),
            Calendar::Weekly(week) => week.next_open(instant, tz),
        }
    }

    /// The windows of `day`, sorted by start (a daily calendar's one window on every day).
    pub fn windows(&self, day: Weekday) -> &[ActiveHours] {
        match self {
            Calendar::Daily(hours) => std::slice::from_ref(hours),
            Calendar::Weekly(week) => week.day(day),
        }
    }
}

/// Seconds after midnight of a window's start, and its length in seconds.
fn start_and_len(hours: &ActiveHours) -> (u32, u32) {
    let start = hours.start().num_seconds_from_midnight();
    let end = match hours.end().num_seconds_from_midnight() {
        0 => DAY,
        end => end,
    };
    let len = if hours.wraps_midnight() {
        DAY - start + end
    } else {
        end - start
    };
    (start, len)
}

impl Week {
    /// A week from the windows of each day, Monday first. Each day's windows are sorted by
    /// start.
    ///
    /// # Errors
    /// [`CalendarError::Overlap`] when two windows of one day overlap,
    /// [`CalendarError::TooManyWindows`] over [`MAX_WINDOWS_PER_DAY`] in one day,
    /// [`CalendarError::NeverOpen`] when no day has a window.
    ///
    /// ```
    /// use cartloop_core::calendar::{CalendarError, Week};
    /// use chrono::Weekday;
    /// let w = |s: &str| s.parse().unwrap();
    /// let week = Week::new([vec![w("13:00-20:00"), w("09:00-12:00")], vec![], vec![], vec![], vec![], vec![], vec![]])?;
    /// assert_eq!(week.day(Weekday::Mon), [w("09:00-12:00"), w("13:00-20:00")]);
    /// assert!(matches!(
    ///     Week::new([vec![w("09:00-12:00"), w("11:00-13:00")], vec![], vec![], vec![], vec![], vec![], vec![]]),
    ///     Err(CalendarError::Overlap { day: Weekday::Mon, .. })
    /// ));
    /// # Ok::<(), CalendarError>(())
    /// ```
    pub fn new(mut days: [Vec<ActiveHours>; 7]) -> Result<Self, CalendarError> {
        let mut spans = Vec::new();
        for (index, windows) in days.iter_mut().enumerate() {
            let day = DAYS[index];
            if windows.len() > MAX_WINDOWS_PER_DAY {
                return Err(CalendarError::TooManyWindows {
                    day,
                    count: windows.len(),
                });
            }
            windows.sort_by_key(|w| start_and_len(w).0);
            for pair in windows.windows(2) {
                let (start, len) = start_and_len(&pair[0]);
                if start_and_len(&pair[1]).0 < start + len {
                    return Err(CalendarError::Overlap {
                        day,
                        first: pair[0],
                        second: pair[1],
                    });
                }
            }
            let day_start = index as u32 * DAY;
            for window in windows.iter() {
                let (start, len) = start_and_len(window);
                let (from, to) = (day_start + start, day_start + start + len);
                if to > WEEK {
                    spans.push((from, WEEK));
                    spans.push((0, to - WEEK));
                } else {
                    spans.push((from, to));
                }
            }
        }
        if spans.is_empty() {
            return Err(CalendarError::NeverOpen);
        }
        spans.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(spans.len());
        for (from, to) in spans {
            match merged.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ => merged.push((from, to)),
            }
        }
        merged.shrink_to_fit();
        Ok(Self {
            days,
            spans: merged,
        })
    }

    /// The windows of `day`, sorted by start; empty when the day is closed.
    pub fn day(&self, day: Weekday) -> &[ActiveHours] {
        &self.days[day.num_days_from_monday() as usize]
    }

    /// Whether `instant` is inside the week in zone `tz`.
    pub fn contains(&self, instant: DateTime<Utc>, tz: Tz) -> bool {
        self.next_open_with_offset(instant, offset_seconds(tz, instant)) == instant
    }

    /// The earliest instant `>= now` inside the week in zone `tz`.
    pub fn next_open(&self, now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let mut t = now;
        // Each round answers or moves `t` forward by a stretch or to an offset change; a
        // week needs at most three stretches and two or three changes.
        for _ in 0..64 {
            let offset = offset_seconds(tz, t);
            let candidate = self.next_open_with_offset(t, offset);
            let limit = t + TimeDelta::seconds(STRETCH);
            let end = candidate.min(limit);
            let at_end = offset_seconds(tz, end);
            if at_end == offset {
                // No change in (t, end]: the offset held, and so does the answer.
                if candidate <= limit {
                    return candidate;
                }
                t = limit;
                continue;
            }
            // One change T in (t, end], and nothing in [t, T) is inside. If the first
            // instant inside under the new offset comes within the stretch and has the new
            // offset, it is past T and nothing in [T, it) is inside: the answer.
            let under_new = self.next_open_with_offset(t, at_end);
            if under_new <= limit && offset_seconds(tz, under_new) == at_end {
                return under_new;
            }
            t = next_transition(tz, t, end, offset);
        }
        t
    }

    /// The first instant `>= t` inside the week if the zone kept `offset` for ever.
    fn next_open_with_offset(&self, t: DateTime<Utc>, offset: i32) -> DateTime<Utc> {
        let local = t.timestamp() + i64::from(offset);
        // 1970-01-01 was a Thursday, three days after a Monday; rem_euclid of a positive
        // modulus is in 0..WEEK, which fits a u32.
        let at = (local + 3 * i64::from(DAY)).rem_euclid(i64::from(WEEK)) as u32;
        let i = self.spans.partition_point(|&(_, to)| to <= at);
        let ahead = match self.spans.get(i) {
            Some(&(from, _)) if from <= at => return t,
            Some(&(from, _)) => from - at,
            // Past the week's last stretch: its first one, next week (never empty).
            None => WEEK - at + self.spans.first().map_or(0, |s| s.0),
        };
        // From the whole second of `t`: stretches open on whole seconds.
        DateTime::from_timestamp(t.timestamp() + i64::from(ahead), 0).unwrap_or(t)
    }
}

impl fmt::Display for Calendar {
    /// The JSON text without the quotes of a plain window: `09:00-20:00`, or
    /// `{"mon":["09:00-12:00","13:00-20:00"],"tue":[],...}` with all seven days. It reads
    /// back with [`FromStr`] to the same calendar.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Calendar::Daily(hours) => write!(f, "{hours}"),
            Calendar::Weekly(week) => {
                f.write_str("{")?;
                for (i, day) in DAYS.into_iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "\"{}\":[", day_key(day))?;
                    for (j, window) in week.day(day).iter().enumerate() {
                        if j > 0 {
                            f.write_str(",")?;
                        }
                        write!(f, "\"{window}\"")?;
                    }
                    f.write_str("]")?;
                }
                f.write_str("}")
            }
        }
    }
}

impl FromStr for Calendar {
    type Err = CalendarError;

    /// Parses a plain window (`09:00-20:00`) or the JSON of a calendar (`"09:00-20:00"` or
    /// a week object): what [`Display`](fmt::Display) writes, as a database column or an
    /// environment variable holds it.
    ///
    /// # Errors
    /// [`CalendarError::Syntax`] for malformed JSON, else as [`FromJson`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.starts_with('{') || s.starts_with('"') {
            return json::parse_text(s).map_err(CalendarError::Syntax)?;
        }
        s.parse().map(Calendar::Daily).map_err(CalendarError::Daily)
    }
}

impl FromJson for Calendar {
    type Error = CalendarError;

    /// A string is a daily window, an object a week.
    ///
    /// # Errors
    /// A [`CalendarError`] naming the day and the window at fault.
    fn from_json(value: &Json) -> Result<Self, CalendarError> {
        let entries = match value {
            Json::String(s) => return s.parse().map(Calendar::Daily).map_err(CalendarError::Daily),
            Json::Object(entries) => entries,
            other => {
                return Err(CalendarError::Shape {
                    found: other.kind(),
                })
            }
        };
        let mut days: [Option<Vec<ActiveHours>>; 7] = Default::default();
        for (key, value) in entries {
            let day =
                day_from_key(key).ok_or_else(|| CalendarError::UnknownDay { key: key.clone() })?;
            let slot = &mut days[day.num_days_from_monday() as usize];
            if slot.is_some() {
                return Err(CalendarError::DuplicateDay { day });
            }
            let Json::Array(items) = value else {
                return Err(CalendarError::NotAList {
                    day,
                    found: value.kind(),
                });
            };
            if items.len() > MAX_WINDOWS_PER_DAY {
                return Err(CalendarError::TooManyWindows {
                    day,
                    count: items.len(),
                });
            }
            let mut windows = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let Json::String(text) = item else {
                    return Err(CalendarError::NotText {
                        day,
                        index,
                        found: item.kind(),
                    });
                };
                let window = text.parse().map_err(|reason| CalendarError::Window {
                    day,
                    index,
                    text: text.clone(),
                    reason,
                })?;
                windows.push(window);
            }
            *slot = Some(windows);
        }
        Week::new(days.map(Option::unwrap_or_default)).map(Calendar::Weekly)
    }
}

impl Serialize for Calendar {
    /// A daily calendar as its window string, a week as an object of all seven days.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Windows<'a>(&'a [ActiveHours]);
        impl Serialize for Windows<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().map(ToString::to_string))
            }
        }
        match self {
            Calendar::Daily(hours) => serializer.collect_str(hours),
            Calendar::Weekly(week) => {
                let mut map = serializer.serialize_map(Some(7))?;
                for day in DAYS {
                    map.serialize_entry(day_key(day), &Windows(week.day(day)))?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Calendar {
    /// Strict: any [`CalendarError`] fails deserialisation with its message.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        json::deserialize_strict(deserializer)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::json::Checked;
    use chrono::{Datelike, NaiveDate, TimeZone};
    use chrono_tz::TZ_VARIANTS;
    use proptest::prelude::*;

    pub(crate) fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    pub(crate) fn calendar(s: &str) -> Calendar {
        s.parse().unwrap()
    }

    fn error(json: &str) -> CalendarError {
        let Checked(verdict) = serde_json::from_str::<Checked<Calendar>>(json).unwrap();
        verdict.unwrap_err()
    }

    /// Whether `t` is inside `calendar`, computed from chrono-tz's local date and time and
    /// each day's windows as written, independently of the week's stretches.
    pub(crate) fn oracle_contains(calendar: &Calendar, t: DateTime<Utc>, tz: Tz) -> bool {
        let local = t.with_timezone(&tz).naive_local();
        let secs = local.time().num_seconds_from_midnight();
        let today = local.date();
        let yesterday = today.pred_opt().unwrap();
        let bounds = |w: &ActiveHours| {
            let start = w.start().num_seconds_from_midnight();
            let end = w.end().num_seconds_from_midnight();
            (start, if end == 0 { DAY } else { end })
        };
        calendar.windows(today.weekday()).iter().any(|w| {
            let (start, end) = bounds(w);
            if start < end {
                start <= secs && secs < end
            } else {
                start <= secs
            }
        }) || calendar.windows(yesterday.weekday()).iter().any(|w| {
            let (start, end) = bounds(w);
            start > end && secs < end
        })
    }

    #[test]
    fn parses_the_json_shapes() {
        assert_eq!(calendar("09:00-20:00"), Calendar::default());
        assert_eq!(
            calendar("\"21:00-08:00\""),
            Calendar::Daily(ActiveHours::from_str("21:00-08:00").unwrap())
        );
        let week =
            calendar(r#"{"mon":["13:00-20:00","09:00-12:00"],"fri":["21:00-02:00"],"sun":[]}"#);
        let w = |s: &str| ActiveHours::from_str(s).unwrap();
        assert_eq!(
            week.windows(Weekday::Mon),
            [w("09:00-12:00"), w("13:00-20:00")]
        );
        assert_eq!(week.windows(Weekday::Fri), [w("21:00-02:00")]);
        for closed in [Weekday::Tue, Weekday::Sat, Weekday::Sun] {
            assert!(week.windows(closed).is_empty());
        }
        assert_eq!(
            Calendar::default().windows(Weekday::Sun),
            [ActiveHours::default()]
        );
        // Windows of one day may touch.
        let touching = calendar(r#"{"tue":["09:00-12:00","12:00-13:00"]}"#);
        assert_eq!(touching.windows(Weekday::Tue).len(), 2);
        // A window wrapping into the next day may overlap that day's.
        calendar(r#"{"fri":["21:00-03:00"],"sat":["00:00-09:00"]}"#);
    }

    #[test]
    fn round_trips_through_display_and_serde() {
        for text in [
            "09:00-20:00",
            "21:00-08:00",
            "00:00-24:00",
            r#"{"mon":["09:00-12:00","13:00-20:00"],"tue":[],"wed":[],"thu":[],"fri":["21:00-02:00"],"sat":[],"sun":["00:00-24:00"]}"#,
        ] {
            let parsed = calendar(text);
            assert_eq!(parsed.to_string(), text);
            assert_eq!(calendar(&parsed.to_string()), parsed);
            let json = serde_json::to_string(&parsed).unwrap();
            assert_eq!(serde_json::from_str::<Calendar>(&json).unwrap(), parsed);
        }
        assert_eq!(
            serde_json::to_string(&Calendar::default()).unwrap(),
            "\"09:00-20:00\""
        );
        let sparse = calendar(r#"{"wed":["10:00-11:00"]}"#);
        assert_eq!(
            sparse.to_string(),
            r#"{"mon":[],"tue":[],"wed":["10:00-11:00"],"thu":[],"fri":[],"sat":[],"sun":[]}"#
        );
        assert_eq!(serde_json::to_string(&sparse).unwrap(), sparse.to_string());
    }

    #[test]
    fn errors_name_the_day_and_the_window() {
        assert_eq!(error("42"), CalendarError::Shape { found: "a number" });
        assert_eq!(error("[]"), CalendarError::Shape { found: "a list" });
        assert!(matches!(
            error("\"9-20\""),
            CalendarError::Daily(ActiveHoursError::Syntax(_))
        ));
        assert_eq!(
            error(r#"{"Mon":[]}"#),
            CalendarError::UnknownDay { key: "Mon".into() }
        );
        assert_eq!(
            error(r#"{"monday":[]}"#),
            CalendarError::UnknownDay {
                key: "monday".into()
            }
        );
        assert_eq!(
            error(r#"{"mon":[],"tue":[],"mon":["09:00-20:00"]}"#),
            CalendarError::DuplicateDay { day: Weekday::Mon }
        );
        assert_eq!(
            error(r#"{"wed":"09:00-20:00"}"#),
            CalendarError::NotAList {
                day: Weekday::Wed,
                found: "a string"
            }
        );
        assert_eq!(
            error(r#"{"wed":null}"#),
            CalendarError::NotAList {
                day: Weekday::Wed,
                found: "null"
            }
        );
        assert_eq!(
            error(r#"{"thu":["09:00-12:00",900]}"#),
            CalendarError::NotText {
                day: Weekday::Thu,
                index: 1,
                found: "a number"
            }
        );
        let bad = error(r#"{"fri":["09:00-12:00","13:00-25:00"]}"#);
        assert!(
            matches!(&bad, CalendarError::Window { day: Weekday::Fri, index: 1, text, .. } if text == "13:00-25:00")
        );
        assert_eq!(bad.day(), Some(Weekday::Fri));
        let message = bad.to_string();
        assert!(
            message.starts_with("fri[1]: ") && message.contains("13:00-25:00"),
            "{message}"
        );
        let empty = error(r#"{"sat":["10:00-10:00"]}"#);
        assert!(empty.to_string().starts_with("sat[0]: "), "{empty}");
        let overlap = error(r#"{"sun":["13:00-20:00","09:00-14:00"]}"#);
        assert_eq!(
            overlap.to_string(),
            "sun: the windows 09:00-14:00 and 13:00-20:00 overlap"
        );
        // A wrapping window overlaps a later one of its own day on that day's timeline.
        assert!(matches!(
            error(r#"{"mon":["20:00-02:00","22:00-23:00"]}"#),
            CalendarError::Overlap { .. }
        ));
        assert!(matches!(
            error(r#"{"mon":["09:00-10:00","09:00-09:30"]}"#),
            CalendarError::Overlap { .. }
        ));
        let many: Vec<String> = (0..25)
            .map(|h| format!("\"{:02}:00-{:02}:30\"", h % 24, h % 24))
            .collect();
        assert_eq!(
            error(&format!("{{\"tue\":[{}]}}", many.join(","))),
            CalendarError::TooManyWindows {
                day: Weekday::Tue,
                count: 25
            }
        );
        assert_eq!(error("{}"), CalendarError::NeverOpen);
        assert_eq!(error(r#"{"mon":[],"sun":[]}"#), CalendarError::NeverOpen);
        assert!(matches!(
            "{\"mon\":[".parse::<Calendar>(),
            Err(CalendarError::Syntax(_))
        ));
        assert!(matches!(
            "24:00-08:00".parse::<Calendar>(),
            Err(CalendarError::Daily(_))
        ));
        // Strict deserialisation carries the message.
        let strict = serde_json::from_str::<Calendar>(r#"{"fri":["13:00-25:00"]}"#).unwrap_err();
        assert!(strict.to_string().contains("fri[0]"), "{strict}");
    }

    #[test]
    fn a_friday_window_wraps_into_a_closed_saturday() {
        let week = calendar(r#"{"mon":["09:00-20:00"],"fri":["21:00-02:00"]}"#);
        let tz = chrono_tz::UTC;
        // 2026-11-27 is a Friday.
        assert!(!week.contains(utc(2026, 11, 27, 20, 59), tz));
        assert!(week.contains(utc(2026, 11, 27, 21, 0), tz));
        assert!(week.contains(utc(2026, 11, 28, 1, 59), tz));
        assert!(!week.contains(utc(2026, 11, 28, 2, 0), tz));
        assert_eq!(
            week.next_open(utc(2026, 11, 28, 1, 0), tz),
            utc(2026, 11, 28, 1, 0)
        );
        assert_eq!(
            week.next_open(utc(2026, 11, 28, 2, 0), tz),
            utc(2026, 11, 30, 9, 0)
        );
        assert_eq!(
            week.next_open(utc(2026, 11, 23, 20, 0), tz),
            utc(2026, 11, 27, 21, 0)
        );
        // A Sunday window wrapping into Monday crosses the week's end.
        let sunday = calendar(r#"{"sun":["22:00-03:00"]}"#);
        assert!(sunday.contains(utc(2026, 11, 30, 2, 59), tz));
        assert!(!sunday.contains(utc(2026, 11, 30, 3, 0), tz));
        assert_eq!(
            sunday.next_open(utc(2026, 11, 30, 3, 0), tz),
            utc(2026, 12, 6, 22, 0)
        );
    }

    #[test]
    fn a_store_closed_on_sunday() {
        let week = calendar(
            r#"{"mon":["09:00-20:00"],"tue":["09:00-20:00"],"wed":["09:00-20:00"],"thu":["09:00-20:00"],"fri":["09:00-20:00"],"sat":["09:00-20:00"]}"#,
        );
        let tz = chrono_tz::America::New_York; // -05:00 in winter
                                               // Saturday 2026-11-28 20:00 local -> Monday 09:00 local.
        assert_eq!(
            week.next_open(utc(2026, 11, 29, 1, 0), tz),
            utc(2026, 11, 30, 14, 0)
        );
        // Sunday noon is closed.
        assert!(!week.contains(utc(2026, 11, 29, 17, 0), tz));
        assert!(week.contains(utc(2026, 11, 28, 17, 0), tz));
    }

    #[test]
    fn spring_forward_with_a_window_in_the_skipped_hour() {
        // Berlin, Sunday 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00Z.
        let tz = chrono_tz::Europe::Berlin;
        let in_gap = calendar(r#"{"sun":["02:00-03:00"]}"#);
        // Entirely in the gap: it does not open that day, but the next Sunday (00:00Z).
        assert_eq!(
            in_gap.next_open(utc(2026, 3, 28, 22, 0), tz),
            utc(2026, 4, 5, 0, 0)
        );
        assert!(!in_gap.contains(utc(2026, 3, 29, 1, 0), tz));
        // Opening in the gap: it opens when the gap ends, 03:00 CEST.
        let from_gap = calendar(r#"{"sun":["02:30-04:00"]}"#);
        assert_eq!(
            from_gap.next_open(utc(2026, 3, 28, 22, 0), tz),
            utc(2026, 3, 29, 1, 0)
        );
        assert!(from_gap.contains(utc(2026, 3, 29, 1, 59), tz));
        assert!(!from_gap.contains(utc(2026, 3, 29, 2, 0), tz));
        // New York, Sunday 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00Z.
        let tz = chrono_tz::America::New_York;
        let in_gap = calendar(r#"{"sun":["02:00-02:59"],"mon":["09:00-20:00"]}"#);
        assert_eq!(
            in_gap.next_open(utc(2026, 3, 8, 6, 0), tz),
            utc(2026, 3, 9, 13, 0)
        );
        let from_gap = calendar(r#"{"sun":["02:15-10:00"]}"#);
        assert_eq!(
            from_gap.next_open(utc(2026, 3, 8, 5, 0), tz),
            utc(2026, 3, 8, 7, 0)
        );
    }

    #[test]
    fn fall_back_with_a_window_in_the_repeated_hour() {
        // Berlin, Sunday 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00Z.
        let tz = chrono_tz::Europe::Berlin;
        let week = calendar(r#"{"sun":["02:30-03:00"]}"#);
        // The first 02:30 (CEST, 00:30Z) is the earliest occurrence.
        assert_eq!(
            week.next_open(utc(2026, 10, 24, 20, 0), tz),
            utc(2026, 10, 25, 0, 30)
        );
        // Closed again at 03:00 CEST, open again from 02:30 CET (01:30Z) to 03:00 CET.
        assert!(!week.contains(utc(2026, 10, 25, 1, 15), tz));
        assert_eq!(
            week.next_open(utc(2026, 10, 25, 1, 0), tz),
            utc(2026, 10, 25, 1, 30)
        );
        assert!(week.contains(utc(2026, 10, 25, 1, 59), tz));
        assert_eq!(
            week.next_open(utc(2026, 10, 25, 2, 0), tz),
            utc(2026, 11, 1, 1, 30)
        );
        // New York, Sunday 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00Z.
        let tz = chrono_tz::America::New_York;
        let week = calendar(r#"{"sun":["01:00-01:30"]}"#);
        assert_eq!(
            week.next_open(utc(2026, 11, 1, 4, 0), tz),
            utc(2026, 11, 1, 5, 0)
        );
        assert!(!week.contains(utc(2026, 11, 1, 5, 45), tz));
        assert_eq!(
            week.next_open(utc(2026, 11, 1, 5, 45), tz),
            utc(2026, 11, 1, 6, 0)
        );
    }

    #[test]
    fn half_and_quarter_hour_zones() {
        let week = calendar(r#"{"mon":["09:00-20:00"],"wed":["09:00-20:00"]}"#);
        // Monday 2026-11-23 20:00 local in each -> Wednesday 09:00 local.
        for (tz, monday_20, wednesday_09) in [
            (
                chrono_tz::Asia::Kolkata,
                utc(2026, 11, 23, 14, 30),
                utc(2026, 11, 25, 3, 30),
            ),
            (
                chrono_tz::Asia::Kathmandu,
                utc(2026, 11, 23, 14, 15),
                utc(2026, 11, 25, 3, 15),
            ),
            (
                chrono_tz::Australia::Adelaide,
                utc(2026, 11, 23, 9, 30),
                utc(2026, 11, 24, 22, 30),
            ),
            (
                chrono_tz::Australia::Lord_Howe,
                utc(2026, 11, 23, 9, 0),
                utc(2026, 11, 24, 22, 0),
            ),
        ] {
            assert!(week.contains(monday_20 - TimeDelta::seconds(1), tz), "{tz}");
            assert_eq!(week.next_open(monday_20, tz), wednesday_09, "{tz}");
        }
        // Lord Howe's 30-minute change, Sunday 2026-10-04 02:00 +10:30 -> 02:30 +11 (15:30Z
        // on the 3rd): a Sunday window from 02:15 opens when the gap ends.
        let tz = chrono_tz::Australia::Lord_Howe;
        let sunday = calendar(r#"{"sun":["02:15-03:00"]}"#);
        assert_eq!(
            sunday.next_open(utc(2026, 10, 3, 10, 0), tz),
            utc(2026, 10, 3, 15, 30)
        );
        // And back, Sunday 2026-04-05 02:00 +11 -> 01:30 +10:30 (15:00Z on the 4th):
        // 01:30-02:00 happens twice.
        let sunday = calendar(r#"{"sun":["01:40-01:50"]}"#);
        assert_eq!(
            sunday.next_open(utc(2026, 4, 4, 10, 0), tz),
            utc(2026, 4, 4, 14, 40)
        );
        assert_eq!(
            sunday.next_open(utc(2026, 4, 4, 14, 50), tz),
            utc(2026, 4, 4, 15, 10)
        );
    }

    #[test]
    fn two_offset_changes_within_a_week() {
        // Recife kept summer time for one week of 2000: 00:00 -03 -> 01:00 -02 on Sunday
        // October 8th (03:00Z), back at 00:00 -02 on Sunday October 15th (02:00Z).
        let tz: Tz = "America/Recife".parse().unwrap();
        let week = calendar(r#"{"sat":["23:00-23:30"]}"#);
        // From Sunday 23:45 -03, before the first change: Saturday 23:00 falls in summer
        // time, 01:00Z. (Read with the offset of the start, 23:00 -03 would be 02:00Z, just
        // after the second change, where the offset is -03 again: a search assuming one
        // change per week would answer that.)
        assert_eq!(
            week.next_open(utc(2000, 10, 8, 2, 45), tz),
            utc(2000, 10, 15, 1, 0)
        );
        let mut t = utc(2000, 10, 8, 2, 30);
        while t < utc(2000, 10, 8, 3, 30) {
            check_week(&week, t, tz).unwrap();
            t += TimeDelta::minutes(10);
        }
    }

    /// The decided instant is inside and nothing earlier, minute by minute, is.
    fn check_week(calendar: &Calendar, now: DateTime<Utc>, tz: Tz) -> Result<(), TestCaseError> {
        let at = calendar.next_open(now, tz);
        prop_assert!(at >= now, "{tz}: {at} before {now}");
        prop_assert!(
            oracle_contains(calendar, at, tz),
            "{tz}: {at} outside {calendar}"
        );
        prop_assert_eq!(calendar.contains(at, tz), true);
        let mut probe = now;
        while probe < at {
            prop_assert!(
                !oracle_contains(calendar, probe, tz),
                "{tz}: {probe} inside before {at} ({calendar})"
            );
            prop_assert!(!calendar.contains(probe, tz));
            probe += TimeDelta::minutes(1);
        }
        Ok(())
    }

    /// Up to three windows a day, on quarter hours, some wrapping midnight; not overlapping.
    pub(crate) fn any_week() -> impl Strategy<Value = Calendar> {
        let day = prop::collection::vec((0u32..96, 1u32..96), 0..4).prop_map(|raw| {
            let mut windows: Vec<ActiveHours> = Vec::new();
            let mut next_free = 0;
            let mut starts: Vec<(u32, u32)> = raw;
            starts.sort_unstable();
            for (start, len) in starts {
                let start = start.max(next_free);
                if start >= 96 {
                    break;
                }
                let end = start + len;
                let t = |q: u32| {
                    chrono::NaiveTime::from_num_seconds_from_midnight_opt(q % 96 * 900, 0).unwrap()
                };
                windows.push(ActiveHours::new(t(start), t(end)).unwrap());
                next_free = end;
            }
            windows
        });
        prop::array::uniform7(day).prop_filter_map("a week with a window", |days| {
            Week::new(days).ok().map(Calendar::Weekly)
        })
    }

    pub(crate) const ZONES: [Tz; 10] = [
        chrono_tz::Europe::Berlin,
        chrono_tz::America::New_York,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Asia::Kathmandu,
        chrono_tz::Australia::Adelaide,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::America::St_Johns,
        chrono_tz::Pacific::Auckland,
        chrono_tz::Asia::Tokyo,
        chrono_tz::UTC,
    ];

    /// Instants near the 2026 changes of the zones above, or anywhere in 2020-2030.
    pub(crate) fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
        let near_changes = (0usize..8, -3 * 24 * 60i64..3 * 24 * 60).prop_map(|(i, minutes)| {
            let changes = [
                utc(2026, 3, 29, 1, 0),
                utc(2026, 10, 25, 1, 0),
                utc(2026, 3, 8, 7, 0),
                utc(2026, 11, 1, 6, 0),
                utc(2026, 4, 4, 15, 0),
                utc(2026, 10, 3, 15, 30),
                utc(2026, 4, 4, 16, 30),
                utc(2026, 12, 31, 12, 0),
            ];
            changes[i] + TimeDelta::minutes(minutes)
        });
        let anywhere = (26_297_280i64..31_556_160)
            .prop_map(|minutes| DateTime::from_timestamp(minutes * 60, 0).unwrap());
        prop_oneof![near_changes, anywhere]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn next_open_is_the_first_instant_inside(
            week in any_week(),
            zone in 0..ZONES.len(),
            now in any_instant(),
        ) {
            check_week(&week, now, ZONES[zone])?;
        }

        #[test]
        fn any_zone_any_time(
            week in any_week(),
            zone in 0..TZ_VARIANTS.len(),
            minutes in 10_519_200i64..39_446_640, // 1990 .. 2045
        ) {
            check_week(&week, DateTime::from_timestamp(minutes * 60, 0).unwrap(), TZ_VARIANTS[zone])?;
        }

        #[test]
        fn a_week_of_the_same_window_is_the_daily_window(
            start in 0u32..96,
            len in 1u32..96,
            zone in 0..TZ_VARIANTS.len(),
            secs in 631_152_000i64..2_366_841_600,
        ) {
            let t = |q: u32| chrono::NaiveTime::from_num_seconds_from_midnight_opt(q % 96 * 900, 0).unwrap();
            let hours = ActiveHours::new(t(start), t(start + len)).unwrap();
            let week = Calendar::Weekly(Week::new(std::array::from_fn(|_| vec![hours])).unwrap());
            let daily = Calendar::Daily(hours);
            let (tz, now) = (TZ_VARIANTS[zone], DateTime::from_timestamp(secs, 0).unwrap());
            prop_assert_eq!(week.contains(now, tz), daily.contains(now, tz));
            prop_assert_eq!(week.next_open(now, tz), daily.next_open(now, tz));
        }
    }

    #[test]
    fn every_zone_around_its_changes() {
        let week = calendar(
            r#"{"mon":["09:00-12:00","13:00-20:00"],"tue":["00:30-02:45"],"wed":["21:00-08:00"],"thu":["01:30-00:45"],"fri":["22:30-24:00"],"sat":["02:00-03:00"],"sun":["00:00-01:00","23:00-02:00"]}"#,
        );
        for tz in TZ_VARIANTS {
            let mut day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
            while day.year() == 2026 {
                let t = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
                let next = t + TimeDelta::days(1);
                if offset_seconds(tz, t) != offset_seconds(tz, next) {
                    let mut probe = t - TimeDelta::hours(12);
                    while probe < next + TimeDelta::hours(12) {
                        check_week(&week, probe, tz).unwrap();
                        probe += TimeDelta::minutes(97);
                    }
                }
                day = day.succ_opt().unwrap();
            }
        }
    }
}
