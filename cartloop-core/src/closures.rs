//! Closures: days and stretches of time, in the client's local time, when a store sends
//! nothing at all (holidays, stocktaking, a move).
//!
//! A closure is a whole local day, `{"date":"2026-12-25"}`, or a stretch between two local
//! dates and times, `{"from":"2026-12-31T18:00","to":"2027-01-02T09:00"}` (start included,
//! end excluded, `to` after `from`). A store keeps a list of at most [`MAX_CLOSURES`].
//!
//! A closure is the stretch of instants between its two ends, each resolved in the client's
//! zone with the policy of [`active_hours`](crate::active_hours): a local time that does
//! not exist (DST gap) is the instant the gap ends; a local time that occurs twice (fold) is
//! its earliest occurrence. A day's closure runs from its midnight to the next one.
//!
//! Inside a closure a message waits for the closure's end, and if that end falls in another
//! closure (they may overlap or follow each other), for that one's end: see
//! [`Closures::closed_until`]. The list is kept sorted and merged in local time, so a
//! lookup looks only at the closures near the instant.

use crate::active_hours::offset_seconds;
use crate::json::{self, FromJson, Json};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::{GapInfo, Tz};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The most closures a store may have: one a day for a year.
pub const MAX_CLOSURES: usize = 366;

/// Local times are within this many seconds of the instants they name in any zone (offsets
/// stay within ±1 day, and a gap's end within a day of the time that falls in it), doubled
/// for margin: closures further than this from an instant's local time cannot hold it.
const NEAR: i64 = 2 * 2 * 86_400;

/// One closure: a whole local day, or a stretch from one local date and time to a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Closure {
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Day(NaiveDate),
    Span {
        from: NaiveDateTime,
        to: NaiveDateTime,
    },
}

impl Closure {
    /// The whole local day `date`, midnight to midnight.
    pub fn day(date: NaiveDate) -> Self {
        Self {
            kind: Kind::Day(date),
        }
    }

    /// From local `from` (included) to local `to` (excluded).
    ///
    /// # Errors
    /// [`ClosuresError::Empty`] (index 0) unless `to` is after `from`.
    ///
    /// ```
    /// use cartloop_core::closures::Closure;
    /// let at = |s: &str| s.parse().unwrap();
    /// let new_year = Closure::span(at("2026-12-31T18:00:00"), at("2027-01-02T09:00:00")).unwrap();
    /// assert_eq!(new_year.to_string(), r#"{"from":"2026-12-31T18:00","to":"2027-01-02T09:00"}"#);
    /// assert!(Closure::span(at("2027-01-02T09:00:00"), at("2027-01-02T09:00:00")).is_err());
    /// ```
    pub fn span(from: NaiveDateTime, to: NaiveDateTime) -> Result<Self, ClosuresError> {
        if to <= from {
            return Err(ClosuresError::Empty { index: 0, from, to });
        }
        Ok(Self {
            kind: Kind::Span { from, to },
        })
    }

    /// The local date and time the closure starts (a day's midnight).
    pub fn from(&self) -> NaiveDateTime {
        match self.kind {
            Kind::Day(date) => date.and_time(NaiveTime::MIN),
            Kind::Span { from, .. } => from,
        }
    }

    /// The local date and time the closure ends, excluded (the next midnight for a day).
    pub fn to(&self) -> NaiveDateTime {
        match self.kind {
            Kind::Day(date) => date
                .succ_opt()
                .unwrap_or(NaiveDate::MAX)
                .and_time(NaiveTime::MIN),
            Kind::Span { to, .. } => to,
        }
    }

    /// The day, if the closure is a whole day.
    pub fn date(&self) -> Option<NaiveDate> {
        match self.kind {
            Kind::Day(date) => Some(date),
            Kind::Span { .. } => None,
        }
    }
}

/// A store's closures, in the order given, at most [`MAX_CLOSURES`].
///
/// ```
/// use cartloop_core::closures::Closures;
/// use chrono::{TimeZone, Utc};
///
/// let closures: Closures = r#"[{"date":"2026-12-25"},{"from":"2026-12-31T18:00","to":"2027-01-02T09:00"}]"#.parse()?;
/// let tz = chrono_tz::Europe::Berlin; // +01:00
/// let christmas_noon = Utc.with_ymd_and_hms(2026, 12, 25, 11, 0, 0).unwrap();
/// assert_eq!(closures.closed_until(christmas_noon, tz), Some(Utc.with_ymd_and_hms(2026, 12, 25, 23, 0, 0).unwrap()));
/// let boxing_day = Utc.with_ymd_and_hms(2026, 12, 26, 11, 0, 0).unwrap();
/// assert_eq!(closures.closed_until(boxing_day, tz), None);
/// # Ok::<(), cartloop_core::closures::ClosuresError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Closures {
    /// As given.
    list: Vec<Closure>,
    /// The closures' local stretches as seconds of local time since 1970-01-01 00:00,
    /// sorted and merged where they overlap or touch.
    merged: Vec<(i64, i64)>,
}

/// Why a value is not a list of closures. Each names the closure by its index in the list,
/// and the field, where one is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClosuresError {
    /// The value is not a list.
    #[error("expected a list of closures such as [{{\"date\":\"2026-12-25\"}},{{\"from\":\"2026-12-31T18:00\",\"to\":\"2027-01-02T09:00\"}}], not {found}")]
    NotAList {
        /// What the value was.
        found: &'static str,
    },
    /// More than [`MAX_CLOSURES`].
    #[error("{count} closures, at most 366 are allowed")]
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// An entry is not an object.
    #[error("[{index}]: expected {{\"date\":\"YYYY-MM-DD\"}} or {{\"from\":\"YYYY-MM-DDTHH:MM\",\"to\":\"YYYY-MM-DDTHH:MM\"}}, not {found}")]
    NotAnObject {
        /// The entry's index, from 0.
        index: usize,
        /// What the entry was.
        found: &'static str,
    },
    /// An entry has a field other than `date`, `from` and `to`.
    #[error(
        "[{index}].{field}: unknown field; a closure has either \"date\" or \"from\" and \"to\""
    )]
    UnknownField {
        /// The entry's index.
        index: usize,
        /// The field as written.
        field: String,
    },
    /// An entry has a field twice.
    #[error("[{index}].{field}: given twice")]
    DuplicateField {
        /// The entry's index.
        index: usize,
        /// The field.
        field: String,
    },
    /// An entry lacks a field: `date`, or `from` or `to`.
    #[error("[{index}].{field}: missing; a closure has either \"date\" or \"from\" and \"to\"")]
    MissingField {
        /// The entry's index.
        index: usize,
        /// The missing field.
        field: &'static str,
    },
    /// An entry has both `date` and `from`/`to`.
    #[error("[{index}]: a closure has either \"date\" or \"from\" and \"to\", not both")]
    DateAndSpan {
        /// The entry's index.
        index: usize,
    },
    /// A field is not a string.
    #[error("[{index}].{field}: expected a string, not {found}")]
    NotText {
        /// The entry's index.
        index: usize,
        /// The field.
        field: &'static str,
        /// What the value was.
        found: &'static str,
    },
    /// `date` is not a date.
    #[error("[{index}].date: {text:?} is not a date: expected YYYY-MM-DD, e.g. 2026-12-25")]
    Date {
        /// The entry's index.
        index: usize,
        /// The value as written.
        text: String,
    },
    /// `from` or `to` is not a local date and time.
    #[error("[{index}].{field}: {text:?} is not a local date and time: expected YYYY-MM-DDTHH:MM without offset, e.g. 2026-12-31T18:00")]
    DateTime {
        /// The entry's index.
        index: usize,
        /// `"from"` or `"to"`.
        field: &'static str,
        /// The value as written.
        text: String,
    },
    /// `to` is not after `from`.
    #[error("[{index}].to: {} is not after from {}", local_text(.to), local_text(.from))]
    Empty {
        /// The entry's index.
        index: usize,
        /// The start.
        from: NaiveDateTime,
        /// The end.
        to: NaiveDateTime,
    },
    /// Text that is not JSON (from [`FromStr`](std::str::FromStr)).
    #[error("invalid closures JSON: {0}")]
    Syntax(String),
}

impl ClosuresError {
    /// The index of the closure at fault, if the error is about one.
    pub fn index(&self) -> Option<usize> {
        match self {
            ClosuresError::NotAnObject { index, .. }
            | ClosuresError::UnknownField { index, .. }
            | ClosuresError::DuplicateField { index, .. }
            | ClosuresError::MissingField { index, .. }
            | ClosuresError::DateAndSpan { index }
            | ClosuresError::NotText { index, .. }
            | ClosuresError::Date { index, .. }
            | ClosuresError::DateTime { index, .. }
            | ClosuresError::Empty { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// The field at fault (`"date"`, `"from"`, `"to"` or an unknown one), if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            ClosuresError::UnknownField { field, .. }
            | ClosuresError::DuplicateField { field, .. } => Some(field),
            ClosuresError::MissingField { field, .. } | ClosuresError::NotText { field, .. } => {
                Some(field)
            }
            ClosuresError::Date { .. } => Some("date"),
            ClosuresError::DateTime { field, .. } => Some(field),
            ClosuresError::Empty { .. } => Some("to"),
            _ => None,
        }
    }

    fn at(self, at: usize) -> Self {
        match self {
            ClosuresError::Empty { from, to, .. } => ClosuresError::Empty {
                index: at,
                from,
                to,
            },
            other => other,
        }
    }
}

/// `2026-12-31T18:00`, with `:SS` only when the seconds are not zero.
fn local_text(at: &NaiveDateTime) -> String {
    if at.and_utc().timestamp() % 60 == 0 {
        at.format("%Y-%m-%dT%H:%M").to_string()
    } else {
        at.format("%Y-%m-%dT%H:%M:%S").to_string()
    }
}

fn local_seconds(at: NaiveDateTime) -> i64 {
    at.and_utc().timestamp()
}

/// The instant a local date and time names in `tz`: the earliest occurrence in a fold, the
/// end of the gap in a gap.
pub(crate) fn resolve(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(at) => at.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        chrono::LocalResult::None => GapInfo::new(&local, &tz)
            .and_then(|gap| gap.end)
            .map(|end| end.with_timezone(&Utc))
            .unwrap_or_else(|| {
                // No gap found (should not happen): read the local time at the offset the
                // zone has at that instant taken as UTC.
                let guess = local.and_utc();
                guess - chrono::TimeDelta::seconds(i64::from(offset_seconds(tz, guess)))
            }),
    }
}

impl Closures {
    /// No closures.
    pub const NONE: Self = Self {
        list: Vec::new(),
        merged: Vec::new(),
    };

    /// The closures given, in that order.
    ///
    /// # Errors
    /// [`ClosuresError::TooMany`] over [`MAX_CLOSURES`].
    pub fn new(list: Vec<Closure>) -> Result<Self, ClosuresError> {
        if list.len() > MAX_CLOSURES {
            return Err(ClosuresError::TooMany { count: list.len() });
        }
        let mut stretches: Vec<(i64, i64)> = list
            .iter()
            .map(|c| (local_seconds(c.from()), local_seconds(c.to())))
            .collect();
        stretches.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(stretches.len());
        for (from, to) in stretches {
            match merged.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ => merged.push((from, to)),
            }
        }
        Ok(Self { list, merged })
    }

    /// The closures, in the order given.
    pub fn as_slice(&self) -> &[Closure] {
        &self.list
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// If `instant` is inside a closure in zone `tz`, the instant the store opens again:
    /// the end of that closure, or of the last of the closures that overlap or follow it
    /// without a gap. `None` when no closure holds `instant`.
    pub fn closed_until(&self, instant: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if self.merged.is_empty() {
            return None;
        }
        let local = instant.timestamp() + i64::from(offset_seconds(tz, instant));
        // The first stretch that could hold the instant: none ending well before it.
        let first = self.merged.partition_point(|&(_, to)| to + NEAR <= local);
        let mut until: Option<DateTime<Utc>> = None;
        for &(from, to) in &self.merged[first..] {
            if from - NEAR > local && until.is_none() {
                break;
            }
            let start = resolve(naive(from), tz);
            match until {
                None if start <= instant => {
                    let end = resolve(naive(to), tz);
                    if instant < end {
                        until = Some(end);
                    }
                }
                // Closures apart in local time may meet once resolved: both ends in one
                // DST gap.
                Some(open) if start <= open => until = Some(open.max(resolve(naive(to), tz))),
                Some(_) => break,
                None => {}
            }
        }
        until
    }

    /// Whether `instant` is inside a closure in zone `tz`.
    pub fn contains(&self, instant: DateTime<Utc>, tz: Tz) -> bool {
        self.closed_until(instant, tz).is_some()
    }
}

fn naive(local_seconds: i64) -> NaiveDateTime {
    DateTime::from_timestamp(local_seconds, 0)
        .map(|t| t.naive_utc())
        .unwrap_or(NaiveDateTime::MAX)
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    shape
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
}

fn parse_local(text: &str) -> Option<NaiveDateTime> {
    let (date, time) = text.split_once('T')?;
    let date = parse_date(date)?;
    let b = time.as_bytes();
    let digits = |i: &[usize]| i.iter().all(|&i| b[i].is_ascii_digit());
    let time = match b.len() {
        5 if b[2] == b':' && digits(&[0, 1, 3, 4]) => NaiveTime::parse_from_str(time, "%H:%M"),
        8 if b[2] == b':' && b[5] == b':' && digits(&[0, 1, 3, 4, 6, 7]) => {
            NaiveTime::parse_from_str(time, "%H:%M:%S")
        }
        _ => return None,
    }
    .ok()?;
    Some(date.and_time(time))
}

impl FromJson for Closure {
    type Error = ClosuresError;

    /// `{"date":"YYYY-MM-DD"}` or `{"from":"YYYY-MM-DDTHH:MM","to":"YYYY-MM-DDTHH:MM"}`
    /// (seconds optional). Errors name index 0; [`Closures`] sets the entry's index.
    ///
    /// # Errors
    /// A [`ClosuresError`] naming the field at fault.
    fn from_json(value: &Json) -> Result<Self, ClosuresError> {
        closure_at(0, value)
    }
}

fn closure_at(index: usize, value: &Json) -> Result<Closure, ClosuresError> {
    let Json::Object(entries) = value else {
        return Err(ClosuresError::NotAnObject {
            index,
            found: value.kind(),
        });
    };
    let entries = json::unique_keys(entries, |field| ClosuresError::DuplicateField {
        index,
        field: field.to_owned(),
    })?;
    let (mut date, mut from, mut to) = (None, None, None);
    for (key, value) in entries {
        let (field, slot) = match key.as_str() {
            "date" => ("date", &mut date),
            "from" => ("from", &mut from),
            "to" => ("to", &mut to),
            _ => {
                return Err(ClosuresError::UnknownField {
                    index,
                    field: key.clone(),
                })
            }
        };
        let Json::String(text) = value else {
            return Err(ClosuresError::NotText {
                index,
                field,
                found: value.kind(),
            });
        };
        *slot = Some(text.as_str());
    }
    match (date, from, to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(ClosuresError::DateAndSpan { index }),
        (Some(text), None, None) => {
            parse_date(text)
                .map(Closure::day)
                .ok_or_else(|| ClosuresError::Date {
                    index,
                    text: text.to_owned(),
                })
        }
        (None, None, None) => Err(ClosuresError::MissingField {
            index,
            field: "date",
        }),
        (None, None, Some(_)) => Err(ClosuresError::MissingField {
            index,
            field: "from",
        }),
        (None, Some(_), None) => Err(ClosuresError::MissingField { index, field: "to" }),
        (None, Some(from), Some(to)) => {
            let local = |field, text: &str| {
                parse_local(text).ok_or_else(|| ClosuresError::DateTime {
                    index,
                    field,
                    text: text.to_owned(),
                })
            };
            Closure::span(local("from", from)?, local("to", to)?).map_err(|e| e.at(index))
        }
    }
}

impl FromJson for Closures {
    type Error = ClosuresError;

    /// A list of closures.
    ///
    /// # Errors
    /// A [`ClosuresError`] naming the index and the field at fault.
    fn from_json(value: &Json) -> Result<Self, ClosuresError> {
        let Json::Array(items) = value else {
            return Err(ClosuresError::NotAList {
                found: value.kind(),
            });
        };
        if items.len() > MAX_CLOSURES {
            return Err(ClosuresError::TooMany { count: items.len() });
        }
        let list = items
            .iter()
            .enumerate()
            .map(|(index, item)| closure_at(index, item))
            .collect::<Result<Vec<_>, _>>()?;
        Closures::new(list)
    }
}

impl fmt::Display for Closure {
    /// The closure's JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Day(date) => write!(f, "{{\"date\":\"{}\"}}", date.format("%Y-%m-%d")),
            Kind::Span { from, to } => write!(
                f,
                "{{\"from\":\"{}\",\"to\":\"{}\"}}",
                local_text(&from),
                local_text(&to)
            ),
        }
    }
}

impl fmt::Display for Closures {
    /// The list's JSON, which [`FromStr`](std::str::FromStr) reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, closure) in self.list.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{closure}")?;
        }
        f.write_str("]")
    }
}

impl std::str::FromStr for Closures {
    type Err = ClosuresError;

    /// Parses the list's JSON.
    ///
    /// # Errors
    /// [`ClosuresError::Syntax`] for malformed JSON, else as [`FromJson`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        json::parse_text(s).map_err(ClosuresError::Syntax)?
    }
}

impl Serialize for Closure {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.kind {
            Kind::Day(date) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("date", &date.format("%Y-%m-%d").to_string())?;
                map.end()
            }
            Kind::Span { from, to } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("from", &local_text(&from))?;
                map.serialize_entry("to", &local_text(&to))?;
                map.end()
            }
        }
    }
}

impl Serialize for Closures {
    /// The list, in the order given.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.list)
    }
}

impl<'de> Deserialize<'de> for Closure {
    /// Strict: any [`ClosuresError`] fails deserialisation with its message.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        json::deserialize_strict(deserializer)
    }
}

impl<'de> Deserialize<'de> for Closures {
    /// Strict: any [`ClosuresError`] fails deserialisation with its message.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        json::deserialize_strict(deserializer)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::calendar::tests::utc;
    use crate::json::Checked;
    use chrono::TimeDelta;
    use proptest::prelude::*;

    pub(crate) fn closures(s: &str) -> Closures {
        s.parse().unwrap()
    }

    fn error(json: &str) -> ClosuresError {
        let Checked(verdict) = serde_json::from_str::<Checked<Closures>>(json).unwrap();
        verdict.unwrap_err()
    }

    /// Each closure's stretch of instants, found with chrono-tz alone: each end is the
    /// first instant, minute by minute, whose local time is at or past it.
    pub(crate) fn oracle_stretches(
        closures: &Closures,
        tz: Tz,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let first_at_or_past = |local: NaiveDateTime| {
            let local_at = |t: DateTime<Utc>| t.with_timezone(&tz).naive_local();
            let mut probe = (local - TimeDelta::days(2)).and_utc();
            while local_at(probe) < local - TimeDelta::hours(3) {
                probe += TimeDelta::hours(1);
            }
            // Local time goes back by at most an hour in a fold: from here it is behind.
            probe -= TimeDelta::hours(4);
            while local_at(probe) < local {
                probe += TimeDelta::minutes(1);
            }
            probe
        };
        closures
            .as_slice()
            .iter()
            .map(|c| (first_at_or_past(c.from()), first_at_or_past(c.to())))
            .collect()
    }

    pub(crate) fn oracle_inside(
        stretches: &[(DateTime<Utc>, DateTime<Utc>)],
        t: DateTime<Utc>,
    ) -> bool {
        stretches.iter().any(|&(from, to)| from <= t && t < to)
    }

    #[test]
    fn parses_days_and_spans() {
        let list = closures(
            r#"[{"date":"2026-12-25"},{"from":"2026-12-31T18:00","to":"2027-01-02T09:00:30"}]"#,
        );
        let [christmas, new_year] = list.as_slice() else {
            panic!("{list}")
        };
        assert_eq!(christmas.date(), NaiveDate::from_ymd_opt(2026, 12, 25));
        assert_eq!(christmas.from().to_string(), "2026-12-25 00:00:00");
        assert_eq!(christmas.to().to_string(), "2026-12-26 00:00:00");
        assert_eq!(new_year.date(), None);
        assert_eq!(new_year.to().to_string(), "2027-01-02 09:00:30");
        let text =
            r#"[{"date":"2026-12-25"},{"from":"2026-12-31T18:00","to":"2027-01-02T09:00:30"}]"#;
        assert_eq!(list.to_string(), text);
        assert_eq!(serde_json::to_string(&list).unwrap(), text);
        assert_eq!(serde_json::from_str::<Closures>(text).unwrap(), list);
        assert_eq!(closures("[]"), Closures::NONE);
        assert!(Closures::NONE.is_empty() && !list.is_empty());
        let one: Closure = serde_json::from_str(r#"{"date":"2026-01-01"}"#).unwrap();
        assert_eq!(one.to_string(), r#"{"date":"2026-01-01"}"#);
    }

    #[test]
    fn errors_name_the_index_and_the_field() {
        assert_eq!(error("{}"), ClosuresError::NotAList { found: "an object" });
        assert_eq!(
            error(r#"[{"date":"2026-12-25"}, 3]"#),
            ClosuresError::NotAnObject {
                index: 1,
                found: "a number"
            }
        );
        let cases = [
            (r#"[{"day":"2026-12-25"}]"#, Some("day")),
            (
                r#"[{"date":"2026-12-25","date":"2026-12-26"}]"#,
                Some("date"),
            ),
            (r#"[{}]"#, Some("date")),
            (r#"[{"to":"2027-01-02T09:00"}]"#, Some("from")),
            (r#"[{"from":"2027-01-02T09:00"}]"#, Some("to")),
            (r#"[{"date":"2026-12-25","to":"2027-01-02T09:00"}]"#, None),
            (r#"[{"date":20261225}]"#, Some("date")),
            (r#"[{"date":"2026-12-32"}]"#, Some("date")),
            (r#"[{"date":"2026-1-5"}]"#, Some("date")),
            (r#"[{"date":"2026-12-25T00:00"}]"#, Some("date")),
            (
                r#"[{"from":"2026-12-31 18:00","to":"2027-01-02T09:00"}]"#,
                Some("from"),
            ),
            (
                r#"[{"from":"2026-12-31T18:00","to":"2027-01-02T09:00Z"}]"#,
                Some("to"),
            ),
            (
                r#"[{"from":"2026-12-31T18:00","to":"2027-01-02T09:00+01:00"}]"#,
                Some("to"),
            ),
            (
                r#"[{"from":"2026-12-31T24:00","to":"2027-01-02T09:00"}]"#,
                Some("from"),
            ),
            (
                r#"[{"from":"2026-12-31T18:00","to":"2026-12-31T18:00"}]"#,
                Some("to"),
            ),
            (
                r#"[{"from":"2026-12-31T18:00","to":"2026-12-30T18:00"}]"#,
                Some("to"),
            ),
        ];
        for (json, field) in cases {
            let bad = format!("[{{\"date\":\"2026-01-01\"}},{}", &json[1..]);
            let e = error(&bad);
            assert_eq!((e.index(), e.field()), (Some(1), field), "{json}: {e}");
            assert!(e.to_string().starts_with("[1]"), "{e}");
        }
        assert_eq!(
            error(r#"[{"from":"2026-12-31T18:00","to":"2026-12-30T18:00"}]"#).to_string(),
            "[0].to: 2026-12-30T18:00 is not after from 2026-12-31T18:00"
        );
        assert!(
            error(r#"[{"from":"2026-12-31T18:00","to":"2027-13-01T00:00"}]"#)
                .to_string()
                .starts_with("[0].to: \"2027-13-01T00:00\" is not a local date and time")
        );
        let many = format!("[{}]", vec![r#"{"date":"2026-12-25"}"#; 367].join(","));
        assert_eq!(error(&many), ClosuresError::TooMany { count: 367 });
        let most = format!("[{}]", vec![r#"{"date":"2026-12-25"}"#; 366].join(","));
        assert_eq!(closures(&most).as_slice().len(), 366);
        assert!(matches!(
            "[".parse::<Closures>(),
            Err(ClosuresError::Syntax(_))
        ));
        assert!(Closures::new(vec![Closure::day(NaiveDate::MIN); 367]).is_err());
    }

    #[test]
    fn christmas_day_is_closed_midnight_to_midnight() {
        let list = closures(r#"[{"date":"2026-12-25"}]"#);
        let tz = chrono_tz::America::New_York; // -05:00
        assert_eq!(list.closed_until(utc(2026, 12, 25, 4, 59), tz), None);
        assert_eq!(
            list.closed_until(utc(2026, 12, 25, 5, 0), tz),
            Some(utc(2026, 12, 26, 5, 0))
        );
        assert_eq!(
            list.closed_until(utc(2026, 12, 26, 4, 59), tz),
            Some(utc(2026, 12, 26, 5, 0))
        );
        assert_eq!(list.closed_until(utc(2026, 12, 26, 5, 0), tz), None);
        // The same day in Kathmandu (+05:45) is other instants.
        let tz = chrono_tz::Asia::Kathmandu;
        assert_eq!(
            list.closed_until(utc(2026, 12, 24, 18, 15), tz),
            Some(utc(2026, 12, 25, 18, 15))
        );
        assert_eq!(list.closed_until(utc(2026, 12, 24, 18, 14), tz), None);
    }

    #[test]
    fn a_closure_across_the_new_year() {
        let list = closures(r#"[{"from":"2026-12-31T18:00","to":"2027-01-02T09:00"}]"#);
        let tz = chrono_tz::Australia::Adelaide; // +10:30 in summer
        let end = utc(2027, 1, 1, 22, 30);
        assert_eq!(list.closed_until(utc(2026, 12, 31, 7, 29), tz), None);
        assert_eq!(list.closed_until(utc(2026, 12, 31, 7, 30), tz), Some(end));
        assert_eq!(list.closed_until(utc(2027, 1, 1, 12, 0), tz), Some(end));
        assert_eq!(list.closed_until(end, tz), None);
    }

    #[test]
    fn chained_and_overlapping_closures_end_together() {
        let list = closures(
            r#"[{"date":"2026-12-26"},{"date":"2026-12-25"},{"from":"2026-12-24T12:00","to":"2026-12-25T08:00"},{"from":"2026-12-27T00:00","to":"2026-12-27T09:00"},{"date":"2026-12-29"}]"#,
        );
        let tz = chrono_tz::UTC;
        for t in [
            utc(2026, 12, 24, 12, 0),
            utc(2026, 12, 25, 7, 0),
            utc(2026, 12, 26, 23, 0),
        ] {
            assert_eq!(
                list.closed_until(t, tz),
                Some(utc(2026, 12, 27, 9, 0)),
                "{t}"
            );
        }
        assert_eq!(list.closed_until(utc(2026, 12, 27, 9, 0), tz), None);
        assert_eq!(
            list.closed_until(utc(2026, 12, 29, 9, 0), tz),
            Some(utc(2026, 12, 30, 0, 0))
        );
    }

    #[test]
    fn closure_ends_in_dst_gaps_and_folds() {
        let tz = chrono_tz::Europe::Berlin;
        // Spring forward 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z): an end at 02:30
        // (missing) is the gap's end; one closure ending in the gap and the next starting
        // in it meet.
        let list = closures(
            r#"[{"from":"2026-03-28T20:00","to":"2026-03-29T02:15"},{"from":"2026-03-29T02:45","to":"2026-03-29T10:00"}]"#,
        );
        assert_eq!(
            list.closed_until(utc(2026, 3, 28, 23, 0), tz),
            Some(utc(2026, 3, 29, 8, 0))
        );
        // Fall back 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z): 02:30 means its first
        // occurrence, 00:30Z.
        let list = closures(r#"[{"from":"2026-10-24T20:00","to":"2026-10-25T02:30"}]"#);
        assert_eq!(
            list.closed_until(utc(2026, 10, 25, 0, 0), tz),
            Some(utc(2026, 10, 25, 0, 30))
        );
        assert_eq!(list.closed_until(utc(2026, 10, 25, 1, 15), tz), None);
        // A closure starting at a repeated time starts at its first occurrence.
        let list = closures(r#"[{"from":"2026-10-25T02:30","to":"2026-10-25T04:00"}]"#);
        assert_eq!(list.closed_until(utc(2026, 10, 25, 0, 29), tz), None);
        assert_eq!(
            list.closed_until(utc(2026, 10, 25, 0, 30), tz),
            Some(utc(2026, 10, 25, 3, 0))
        );
    }

    pub(crate) fn any_closures() -> impl Strategy<Value = Closures> {
        // Around the changes of 2026 and the new year, by quarter hours.
        let base = [
            NaiveDate::from_ymd_opt(2026, 3, 27).unwrap(),
            NaiveDate::from_ymd_opt(2026, 10, 23).unwrap(),
            NaiveDate::from_ymd_opt(2026, 3, 6).unwrap(),
            NaiveDate::from_ymd_opt(2026, 10, 30).unwrap(),
            NaiveDate::from_ymd_opt(2026, 4, 2).unwrap(),
            NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 12, 29).unwrap(),
        ];
        let one = (0..base.len(), 0i64..6 * 96, 1i64..3 * 96, any::<bool>()).prop_map(
            move |(b, start, len, whole_day)| {
                let start = base[b].and_time(NaiveTime::MIN) + TimeDelta::minutes(start * 15);
                if whole_day {
                    Closure::day(start.date())
                } else {
                    Closure::span(start, start + TimeDelta::minutes(len * 15)).unwrap()
                }
            },
        );
        prop::collection::vec(one, 0..4).prop_map(|list| Closures::new(list).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn closed_until_matches_the_closures(
            list in any_closures(),
            zone in 0..crate::calendar::tests::ZONES.len(),
            now in crate::calendar::tests::any_instant(),
        ) {
            let tz = crate::calendar::tests::ZONES[zone];
            let stretches = oracle_stretches(&list, tz);
            let until = list.closed_until(now, tz);
            prop_assert_eq!(until.is_some(), oracle_inside(&stretches, now), "{} at {} in {}", list, now, tz);
            if let Some(until) = until {
                prop_assert!(until > now);
                prop_assert!(!oracle_inside(&stretches, until), "{} open at {}", list, until);
                let mut probe = now;
                while probe < until {
                    prop_assert!(oracle_inside(&stretches, probe), "{} open at {} before {}", list, probe, until);
                    probe += TimeDelta::minutes(1);
                }
            }
        }
    }
}
