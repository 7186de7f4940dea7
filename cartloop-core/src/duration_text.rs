//! Spans of time written as a store writes them: a whole number and one unit, `90m`,
//! `24h`, `7d`. Shared by the frequency cap's `per` and the reply grace.
//!
//! A span remembers the unit it was written in, so `24h` reads back as `24h`, not `1d`;
//! two spans of the same length are equal whatever their units.

use chrono::TimeDelta;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A positive or zero span of whole minutes, with the unit it is shown in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    minutes: u32,
    unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Minutes,
    Hours,
    Days,
}

impl Unit {
    const fn minutes(self) -> u32 {
        match self {
            Self::Minutes => 1,
            Self::Hours => 60,
            Self::Days => 24 * 60,
        }
    }

    const fn suffix(self) -> char {
        match self {
            Self::Minutes => 'm',
            Self::Hours => 'h',
            Self::Days => 'd',
        }
    }
}

/// Why a text is not a span: the whole reason, for the caller to put after the field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanSyntax;

impl fmt::Display for SpanSyntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected a whole number and a unit, m, h or d (e.g. 90m, 24h, 7d)")
    }
}

impl Span {
    /// The zero span, shown as `0`.
    pub(crate) const ZERO: Self = Self {
        minutes: 0,
        unit: Unit::Minutes,
    };

    /// `n` minutes, shown in minutes.
    pub(crate) const fn minutes(n: u32) -> Self {
        Self {
            minutes: n,
            unit: Unit::Minutes,
        }
    }

    /// Parses `<digits><m|h|d>`; `0` alone is the zero span.
    pub(crate) fn parse(text: &str) -> Result<Self, SpanSyntax> {
        let text = text.trim();
        if text == "0" {
            return Ok(Self::ZERO);
        }
        let (digits, unit) = match text.as_bytes().last() {
            Some(b'm') => (&text[..text.len() - 1], Unit::Minutes),
            Some(b'h') => (&text[..text.len() - 1], Unit::Hours),
            Some(b'd') => (&text[..text.len() - 1], Unit::Days),
            _ => return Err(SpanSyntax),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SpanSyntax);
        }
        let n: u32 = digits.parse().map_err(|_| SpanSyntax)?;
        let minutes = n.checked_mul(unit.minutes()).ok_or(SpanSyntax)?;
        Ok(Self { minutes, unit })
    }

    /// The length in whole minutes.
    pub(crate) const fn total_minutes(self) -> u32 {
        self.minutes
    }

    /// The length as a [`TimeDelta`].
    pub(crate) const fn delta(self) -> TimeDelta {
        TimeDelta::minutes(self.minutes as i64)
    }
}

impl PartialEq for Span {
    fn eq(&self, other: &Self) -> bool {
        self.minutes == other.minutes
    }
}

impl Eq for Span {}

impl Hash for Span {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.minutes.hash(state);
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.minutes == 0 {
            return f.write_str("0");
        }
        // A span parsed as 90m stays 90m; one built in minutes that is not a whole number of
        // its unit (never the case for parsed spans) falls back to minutes.
        let unit = if self.minutes % self.unit.minutes() == 0 {
            self.unit
        } else {
            Unit::Minutes
        };
        write!(f, "{}{}", self.minutes / unit.minutes(), unit.suffix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_reads_back_as_written() {
        for (text, minutes) in [
            ("90m", 90),
            ("24h", 1440),
            ("1d", 1440),
            ("7d", 10080),
            ("0", 0),
            (" 15m ", 15),
        ] {
            let span = Span::parse(text).unwrap();
            assert_eq!(span.total_minutes(), minutes, "{text:?}");
            assert_eq!(span.to_string(), text.trim());
            assert_eq!(span.delta(), TimeDelta::minutes(i64::from(minutes)));
        }
        assert_eq!(Span::parse("24h").unwrap(), Span::parse("1d").unwrap());
        assert_eq!(Span::parse("0m").unwrap().to_string(), "0");
        assert_eq!(Span::minutes(90).to_string(), "90m");
    }

    #[test]
    fn refuses_anything_else() {
        for text in [
            "",
            "m",
            "15",
            "-5m",
            "+5m",
            "1.5h",
            "15 m",
            "15s",
            "1h30m",
            "15M",
            "99999999999m",
            "4294967295d",
        ] {
            assert_eq!(Span::parse(text), Err(SpanSyntax), "{text:?}");
        }
    }
}
