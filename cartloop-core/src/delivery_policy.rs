//! The delivery policy: the one decision of when an operator's message may be emailed, and
//! which rule holds it now. It is made when the message is written and made again at send
//! time (the client's zone, the store's calendar or closures may have changed since), from
//! the facts in a [`DeliveryInput`].
//!
//! # The decision
//!
//! For an ordinary message, [`Decision::at`] is the earliest instant `t >= max(now, sendAt)`
//! such that
//!
//! - `t` is inside the store's [`Calendar`] in the client's zone,
//! - `t` is outside every [`Closures`] entry, and
//! - one more email fits the [`FrequencyCap`] at `t`.
//!
//! Each rule alone answers "the earliest instant `>= t` that I allow", and each answer is
//! at most the combined one, so applying them in turn until none moves `t` (a fixed point)
//! reaches exactly the earliest instant all three allow. Only a closure can send the search
//! round again (the cap's free instant does not depend on `t`, and the calendar's answer is
//! inside it), and each closure at most once, so the search ends after at most one round
//! per closure plus one. Every calendar opens at least once a week (a week without windows
//! is refused when parsed), closures end, and the cap frees, so there always is an answer.
//!
//! # Replies
//!
//! A message written within the store's [`ReplyGrace`] after the client's last message
//! answers someone who is writing right now ([`DeliveryInput::is_reply`]): it goes at once,
//! whatever the calendar says, and neither waits for nor counts against the frequency cap
//! (callers leave replies out of [`DeliveryInput::recent_sends`]). Closures still apply:
//!
//! - A reply that a closure holds (one was in force when it was written, or is now) waits
//!   for the end of the closure and then for the first window of the calendar: by then the
//!   client is no longer writing right now, and a store closed for a day should not email
//!   at midnight when it reopens. It still ignores the cap.
//! - An explicit `sendAt` later than the message's creation makes it a scheduled message,
//!   not a reply: the operator chose when it goes, so it follows every rule from `sendAt`
//!   and counts against the cap. A `sendAt` at or before the creation (now, or within the
//!   minute of the past that requests may have) keeps the reply a reply.
//!
//! Both conditions depend only on facts fixed when the message is written, so deciding
//! again at send time keeps a reply a reply.
//!
//! # Waiting for
//!
//! [`Decision::waiting_for`] is `None` when the message is due (`at == now`), else the rule
//! that holds it at `now`. When several hold it, the first of
//!
//! 1. [`WaitingFor::SendAt`]: `sendAt` is still ahead. The operator's own choice comes
//!    first: it is what they expect to read, and the other rules only apply from it.
//! 2. [`WaitingFor::Closure`]: `now` is inside a closure. A closure is the exception to the
//!    usual hours ("closed for Christmas" says more than "outside active hours").
//! 3. [`WaitingFor::ActiveHours`]: `now` is outside the calendar.
//! 4. [`WaitingFor::FrequencyCap`]: the client had their share of emails. The cap comes last
//!    as it is the only rule about the client rather than the store's time.
//!
//! # Cost
//!
//! A decision allocates nothing and looks the zone up a handful of times: once per
//! calendar or closure check near `t`, more only across a change of the clocks.

use crate::calendar::Calendar;
use crate::closures::Closures;
use crate::frequency_cap::FrequencyCap;
use crate::reply_grace::ReplyGrace;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The facts a decision is made from. The store's settings are borrowed; nothing is copied.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryInput<'a> {
    /// The instant of the decision.
    pub now: DateTime<Utc>,
    /// When the message was written.
    pub created_at: DateTime<Utc>,
    /// The operator's `sendAt`, if any, as stored: checked when it was requested
    /// ([`crate::send_at::SendAt`]), possibly in the past now.
    pub send_at: Option<DateTime<Utc>>,
    /// The client's zone (the store's when the client has none).
    pub time_zone: Tz,
    /// The store's calendar.
    pub calendar: &'a Calendar,
    /// The store's closures.
    pub closures: &'a Closures,
    /// The store's frequency cap per client; `None`: off.
    pub frequency_cap: Option<FrequencyCap>,
    /// The store's reply grace.
    pub reply_grace: ReplyGrace,
    /// When the emails that count against the cap were sent to this client: the recent
    /// ones (those within the cap's `per` are enough), and those being sent right now. Any
    /// order; oldest or newest first is cheapest. Replies are left out.
    pub recent_sends: &'a [DateTime<Utc>],
    /// When the client's last message in this conversation was received, at or before
    /// `created_at`.
    pub last_received: Option<DateTime<Utc>>,
}

/// When a message may go, and what holds it until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// The earliest instant the message may be sent, never before `now`.
    pub at: DateTime<Utc>,
    /// The rule holding the message at `now`; `None` when it is due (`at == now`).
    pub waiting_for: Option<WaitingFor>,
}

/// The rule that holds a message, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitingFor {
    /// The client is outside the store's calendar: `"active_hours"`.
    ActiveHours,
    /// The store is closed: `"closure"`.
    Closure,
    /// The operator asked for later: `"send_at"`.
    SendAt,
    /// The client had as many emails as the cap allows: `"frequency_cap"`.
    FrequencyCap,
}

impl WaitingFor {
    /// The name the API uses: `"active_hours"`, `"closure"`, `"send_at"`,
    /// `"frequency_cap"`.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitingFor::ActiveHours => "active_hours",
            WaitingFor::Closure => "closure",
            WaitingFor::SendAt => "send_at",
            WaitingFor::FrequencyCap => "frequency_cap",
        }
    }
}

impl fmt::Display for WaitingFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DeliveryInput<'_> {
    /// Whether the message is a reply, which goes at once and ignores the frequency cap: it
    /// was written within the reply grace after the client's last message, and it has no
    /// `sendAt` later than its creation. A message for which this is true does not count
    /// against the cap (see the module docs).
    pub fn is_reply(&self) -> bool {
        self.reply_grace
            .is_reply(self.created_at, self.last_received)
            && self.send_at.is_none_or(|at| at <= self.created_at)
    }

    /// The decision for these facts; see [`decide`].
    pub fn decide(&self) -> Decision {
        decide(self)
    }
}

/// The decision for a message: when it may go ([`Decision::at`]) and which rule holds it now
/// ([`Decision::waiting_for`]). See the module docs for the rules, replies and precedence.
///
/// ```
/// use cartloop_core::calendar::Calendar;
/// use cartloop_core::closures::Closures;
/// use cartloop_core::delivery_policy::{decide, DeliveryInput, WaitingFor};
/// use cartloop_core::frequency_cap::FrequencyCap;
/// use cartloop_core::reply_grace::ReplyGrace;
/// use chrono::{TimeZone, Utc};
///
/// let calendar: Calendar = r#"{"mon":["09:00-20:00"],"tue":["09:00-20:00"],"wed":["09:00-20:00"],
///     "thu":["09:00-20:00"],"fri":["09:00-20:00"],"sat":["10:00-16:00"]}"#.parse()?;
/// let closures: Closures = r#"[{"date":"2026-12-25"}]"#.parse()?;
/// let utc = |d, h, m| Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap();
/// // Thursday 24 December, 19:30 in Berlin (+01:00), a cap of 3 a day already reached.
/// let now = utc(24, 18, 30);
/// let sends = [utc(24, 9, 0), utc(24, 12, 0), utc(24, 16, 0)];
/// let input = DeliveryInput {
///     now,
///     created_at: now,
///     send_at: None,
///     time_zone: chrono_tz::Europe::Berlin,
///     calendar: &calendar,
///     closures: &closures,
///     frequency_cap: Some(FrequencyCap::new(3, "24h")?),
///     reply_grace: ReplyGrace::default(),
///     recent_sends: &sends,
///     last_received: None,
/// };
/// let decision = decide(&input);
/// // Closed on Christmas Day, then Saturday opens at 10:00 local.
/// assert_eq!(decision.at, utc(26, 9, 0));
/// assert_eq!(decision.waiting_for, Some(WaitingFor::FrequencyCap));
///
/// // The client wrote two minutes ago: a reply goes at once, cap or not.
/// let reply = DeliveryInput { last_received: Some(utc(24, 18, 28)), ..input };
/// assert_eq!(decide(&reply).at, now);
/// assert_eq!(decide(&reply).waiting_for, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decide(input: &DeliveryInput<'_>) -> Decision {
    let now = input.now;
    let mut d = Decider {
        input,
        closed_now: None,
        inside_now: None,
    };
    let reply = input.is_reply();
    // A reply that a closure holds waits for the calendar after it (see the module docs).
    let reply_held = reply && (d.closed(input.created_at) || d.closed(now));
    let at = if reply {
        if reply_held {
            d.settle(now, None)
        } else {
            now
        }
    } else {
        let from = input.send_at.map_or(now, |at| at.max(now));
        let cap_free = input
            .frequency_cap
            .and_then(|cap| cap.free_from(input.recent_sends));
        d.settle(from, cap_free)
    };
    let waiting_for = if at <= now {
        None
    } else {
        d.holding_rule(reply, reply_held)
    };
    Decision {
        at: at.max(now),
        waiting_for,
    }
}

/// One decision in the making: the facts, and what is already known of `now`, so that the
/// zone and the closures are not looked up twice for it.
struct Decider<'i, 'a> {
    input: &'i DeliveryInput<'a>,
    /// Whether `now` is inside a closure, once known.
    closed_now: Option<bool>,
    /// Whether `now` is inside the calendar, once known.
    inside_now: Option<bool>,
}

impl Decider<'_, '_> {
    fn closed(&mut self, t: DateTime<Utc>) -> bool {
        if t == self.input.now {
            if let Some(closed) = self.closed_now {
                return closed;
            }
        }
        self.closed_until(t).is_some()
    }

    fn closed_until(&mut self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let until = self.input.closures.closed_until(t, self.input.time_zone);
        if t == self.input.now {
            self.closed_now = Some(until.is_some());
        }
        until
    }

    fn next_open(&mut self, t: DateTime<Utc>) -> DateTime<Utc> {
        let open = self.input.calendar.next_open(t, self.input.time_zone);
        if t == self.input.now {
            self.inside_now = Some(open == t);
        }
        open
    }

    fn inside(&mut self, t: DateTime<Utc>) -> bool {
        match self.inside_now {
            Some(inside) if t == self.input.now => inside,
            _ => self.input.calendar.contains(t, self.input.time_zone),
        }
    }

    /// The earliest instant `>= from` inside the calendar, outside closures and, when
    /// `cap_free` is given, not before it.
    fn settle(&mut self, from: DateTime<Utc>, cap_free: Option<DateTime<Utc>>) -> DateTime<Utc> {
        let mut t = cap_free.map_or(from, |free| from.max(free));
        // One round per closure passed, and the last one (see the module docs).
        for _ in 0..=self.input.closures.as_slice().len() {
            t = self.next_open(t);
            match self.closed_until(t) {
                None => return t,
                Some(open) => t = open,
            }
        }
        // Not reached: every round but the last passes a closure for good.
        self.next_open(t)
    }

    /// The first rule, in the order of the module docs, that holds the message at `now`.
    fn holding_rule(&mut self, reply: bool, reply_held: bool) -> Option<WaitingFor> {
        let input = self.input;
        let now = input.now;
        if !reply && input.send_at.is_some_and(|at| at > now) {
            return Some(WaitingFor::SendAt);
        }
        if self.closed(now) {
            return Some(WaitingFor::Closure);
        }
        if (!reply || reply_held) && !self.inside(now) {
            return Some(WaitingFor::ActiveHours);
        }
        let capped = input
            .frequency_cap
            .is_some_and(|cap| !cap.fits(now, input.recent_sends));
        if !reply && capped {
            return Some(WaitingFor::FrequencyCap);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::tests::{any_instant, any_week, calendar, oracle_contains, utc, ZONES};
    use crate::closures::tests::{any_closures, closures, oracle_inside, oracle_stretches};
    use crate::closures::Closure;
    use chrono::TimeDelta;
    use proptest::prelude::*;

    const WEEK: &str = r#"{"mon":["09:00-12:00","13:00-20:00"],"tue":["09:00-12:00","13:00-20:00"],
        "wed":["09:00-12:00","13:00-20:00"],"thu":["09:00-12:00","13:00-20:00"],
        "fri":["09:00-12:00","13:00-20:00"],"sat":["10:00-16:00"],"sun":[]}"#;

    /// The facts of a message written at `now`, in Berlin, every rule at its default.
    fn input<'a>(
        now: DateTime<Utc>,
        calendar: &'a Calendar,
        closures: &'a Closures,
    ) -> DeliveryInput<'a> {
        DeliveryInput {
            now,
            created_at: now,
            send_at: None,
            time_zone: chrono_tz::Europe::Berlin,
            calendar,
            closures,
            frequency_cap: None,
            reply_grace: ReplyGrace::default(),
            recent_sends: &[],
            last_received: None,
        }
    }

    fn due(at: DateTime<Utc>) -> Decision {
        Decision {
            at,
            waiting_for: None,
        }
    }

    fn waits(at: DateTime<Utc>, rule: WaitingFor) -> Decision {
        Decision {
            at,
            waiting_for: Some(rule),
        }
    }

    #[test]
    fn due_inside_the_calendar_and_held_outside() {
        let week = calendar(WEEK);
        let none = Closures::NONE;
        // Wednesday 2026-05-06, Berlin +02:00: 10:00 local is due, 12:30 waits for 13:00.
        assert_eq!(
            decide(&input(utc(2026, 5, 6, 8, 0), &week, &none)),
            due(utc(2026, 5, 6, 8, 0))
        );
        assert_eq!(
            decide(&input(utc(2026, 5, 6, 10, 30), &week, &none)),
            waits(utc(2026, 5, 6, 11, 0), WaitingFor::ActiveHours)
        );
        // The decision keeps fractions of a second of `now` when due.
        let now = utc(2026, 5, 6, 8, 0) + TimeDelta::nanoseconds(5);
        assert_eq!(decide(&input(now, &week, &none)), due(now));
    }

    #[test]
    fn store_closed_on_sunday() {
        let week = calendar(WEEK);
        let none = Closures::NONE;
        // Saturday 2026-05-09 16:00 local (14:00Z): Sunday is closed, Monday opens at 09:00.
        assert_eq!(
            decide(&input(utc(2026, 5, 9, 14, 0), &week, &none)),
            waits(utc(2026, 5, 11, 7, 0), WaitingFor::ActiveHours)
        );
        assert_eq!(
            decide(&input(utc(2026, 5, 10, 10, 0), &week, &none)).at,
            utc(2026, 5, 11, 7, 0)
        );
    }

    #[test]
    fn friday_window_wrapping_into_a_closed_saturday() {
        let late = calendar(r#"{"thu":["09:00-17:00"],"fri":["21:00-02:00"],"sat":[]}"#);
        let none = Closures::NONE;
        // Saturday 2026-05-09 01:30 Berlin (+02:00, 23:30Z Friday): still Friday's window.
        let at = |d, h, m| utc(2026, 5, d, h, m);
        assert_eq!(
            decide(&input(at(8, 23, 30), &late, &none)),
            due(at(8, 23, 30))
        );
        // 02:00 Saturday: closed until Thursday 09:00 (07:00Z).
        assert_eq!(
            decide(&input(at(9, 0, 0), &late, &none)),
            waits(at(14, 7, 0), WaitingFor::ActiveHours)
        );
        // Friday 20:59: the window opens at 21:00 (19:00Z).
        assert_eq!(decide(&input(at(8, 18, 59), &late, &none)).at, at(8, 19, 0));
    }

    #[test]
    fn christmas_closure() {
        let week = calendar(WEEK);
        let christmas = closures(r#"[{"date":"2026-12-25"}]"#);
        // Friday 25 December 10:00 Berlin (+01:00): closed all day, Saturday opens at 10:00.
        assert_eq!(
            decide(&input(utc(2026, 12, 25, 9, 0), &week, &christmas)),
            waits(utc(2026, 12, 26, 9, 0), WaitingFor::Closure)
        );
        // Thursday 24th 19:59: due; 20:00 waits, past Christmas, for Saturday.
        assert_eq!(
            decide(&input(utc(2026, 12, 24, 18, 59), &week, &christmas)).waiting_for,
            None
        );
        assert_eq!(
            decide(&input(utc(2026, 12, 24, 19, 0), &week, &christmas)),
            waits(utc(2026, 12, 26, 9, 0), WaitingFor::ActiveHours)
        );
    }

    #[test]
    fn closure_across_the_new_year() {
        let daily = Calendar::default();
        let new_year = closures(
            r#"[{"from":"2026-12-31T18:00","to":"2027-01-02T09:00"},{"date":"2027-01-02"}]"#,
        );
        // 31 December 17:59 Berlin is due; 18:00 waits past both closures (chained: the
        // second starts before the first ends) for Sunday 3 January 09:00.
        assert_eq!(
            decide(&input(utc(2026, 12, 31, 16, 59), &daily, &new_year)).waiting_for,
            None
        );
        assert_eq!(
            decide(&input(utc(2026, 12, 31, 17, 0), &daily, &new_year)),
            waits(utc(2027, 1, 3, 8, 0), WaitingFor::Closure)
        );
        let only_first = closures(r#"[{"from":"2026-12-31T18:00","to":"2027-01-02T09:00"}]"#);
        assert_eq!(
            decide(&input(utc(2027, 1, 1, 12, 0), &daily, &only_first)).at,
            utc(2027, 1, 2, 8, 0)
        );
    }

    #[test]
    fn a_closure_then_the_night_then_another_closure() {
        let daily = Calendar::default();
        // Monday 2026-05-04, Berlin +02:00: closed 18:00-22:00, then Tuesday 08:00-10:00.
        let two = closures(
            r#"[{"from":"2026-05-05T08:00","to":"2026-05-05T10:00"},{"from":"2026-05-04T18:00","to":"2026-05-04T22:00"}]"#,
        );
        // At 19:00 the first holds it until 22:00, the night until 09:00, the second until
        // 10:00.
        assert_eq!(
            decide(&input(utc(2026, 5, 4, 17, 0), &daily, &two)),
            waits(utc(2026, 5, 5, 8, 0), WaitingFor::Closure)
        );
        // The same with the cap freeing inside the second closure.
        let cap = FrequencyCap::new(1, "24h").unwrap();
        let sent = [utc(2026, 5, 4, 7, 0)];
        let mut facts = input(utc(2026, 5, 4, 17, 0), &daily, &two);
        facts.frequency_cap = Some(cap);
        facts.recent_sends = &sent;
        assert_eq!(decide(&facts).at, utc(2026, 5, 5, 8, 0));
    }

    #[test]
    fn cap_of_three_per_day() {
        let daily = Calendar::default();
        let none = Closures::NONE;
        let cap = FrequencyCap::new(3, "24h").unwrap();
        let at = |d, h| utc(2026, 5, d, h, 0);
        let sends = [at(4, 8), at(4, 10), at(4, 12)];
        let now = at(4, 13);
        let mut facts = input(now, &daily, &none);
        facts.frequency_cap = Some(cap);
        // Two sends: the third fits at once.
        facts.recent_sends = &sends[..2];
        assert_eq!(decide(&facts), due(now));
        // Three: the fourth waits until the first is 24 h old, 10:00 local the next day.
        facts.recent_sends = &sends;
        assert_eq!(decide(&facts), waits(at(5, 8), WaitingFor::FrequencyCap));
        // When the cap frees at night, it waits for the morning too: three sends at 19:00
        // local and a cap of 3 per 26 h free at 21:00 the next day, so 09:00 the day after.
        let cap = FrequencyCap::new(3, "26h").unwrap();
        let evening = [at(4, 17), at(4, 17), at(4, 17)];
        facts.frequency_cap = Some(cap);
        facts.recent_sends = &evening;
        facts.now = at(4, 17) + TimeDelta::minutes(30);
        facts.created_at = facts.now;
        assert_eq!(decide(&facts), waits(at(6, 7), WaitingFor::FrequencyCap));
    }

    #[test]
    fn a_reply_at_1958_goes_at_once() {
        let daily = Calendar::default();
        let none = Closures::NONE;
        let cap = FrequencyCap::new(1, "24h").unwrap();
        let full = [utc(2026, 5, 6, 17, 0)];
        // Wednesday 19:58 Berlin (17:58Z), the client wrote at 19:50.
        let now = utc(2026, 5, 6, 17, 58);
        let mut facts = input(now, &daily, &none);
        facts.last_received = Some(utc(2026, 5, 6, 17, 50));
        facts.frequency_cap = Some(cap);
        facts.recent_sends = &full;
        assert!(facts.is_reply());
        assert_eq!(decide(&facts), due(now));
        // Decided again at send time, after 20:00: still a reply, still due.
        facts.now = utc(2026, 5, 6, 18, 5);
        assert_eq!(decide(&facts), due(facts.now));
        // The same message written at 20:06 (16 minutes on) is no reply: it waits.
        facts.created_at = utc(2026, 5, 6, 18, 6);
        facts.now = facts.created_at;
        assert!(!facts.is_reply());
        assert_eq!(decide(&facts).waiting_for, Some(WaitingFor::ActiveHours));
        // A grace of 0 turns replies off.
        facts.created_at = now;
        facts.now = now;
        facts.reply_grace = ReplyGrace::OFF;
        assert_eq!(decide(&facts).waiting_for, Some(WaitingFor::FrequencyCap));
    }

    #[test]
    fn a_reply_in_a_closure_waits_for_it_and_then_for_the_calendar() {
        let daily = Calendar::default();
        let christmas = closures(r#"[{"date":"2026-12-25"}]"#);
        let cap = FrequencyCap::new(1, "24h").unwrap();
        let full = [utc(2026, 12, 25, 23, 30)];
        // 25 December 19:58 Berlin, the client wrote at 19:50: the closure holds the reply
        // until midnight, then it waits for 09:00 on the 26th, ignoring the cap.
        let now = utc(2026, 12, 25, 18, 58);
        let mut facts = input(now, &daily, &christmas);
        facts.last_received = Some(utc(2026, 12, 25, 18, 50));
        facts.frequency_cap = Some(cap);
        facts.recent_sends = &full;
        assert!(facts.is_reply());
        assert_eq!(
            decide(&facts),
            waits(utc(2026, 12, 26, 8, 0), WaitingFor::Closure)
        );
        // Decided again after the closure, before the window: the same instant.
        facts.now = utc(2026, 12, 26, 2, 0);
        assert_eq!(
            decide(&facts),
            waits(utc(2026, 12, 26, 8, 0), WaitingFor::ActiveHours)
        );
        // And at it: due.
        facts.now = utc(2026, 12, 26, 8, 0);
        assert_eq!(decide(&facts), due(facts.now));
        // A reply written outside any closure but decided again inside one (the store
        // added it meanwhile) waits too.
        let mut facts = input(utc(2026, 12, 24, 22, 50), &daily, &christmas);
        facts.last_received = Some(utc(2026, 12, 24, 22, 45));
        assert_eq!(decide(&facts), due(facts.now));
        facts.now = utc(2026, 12, 24, 23, 5);
        assert_eq!(
            decide(&facts),
            waits(utc(2026, 12, 26, 8, 0), WaitingFor::Closure)
        );
    }

    #[test]
    fn a_reply_with_a_later_send_at_is_a_scheduled_message() {
        let daily = Calendar::default();
        let none = Closures::NONE;
        let now = utc(2026, 5, 6, 17, 58); // 19:58 Berlin
        let mut facts = input(now, &daily, &none);
        facts.last_received = Some(utc(2026, 5, 6, 17, 50));
        // For 21:00 local: outside the window, so 09:00 the next morning.
        facts.send_at = Some(utc(2026, 5, 6, 19, 0));
        assert!(!facts.is_reply());
        assert_eq!(
            decide(&facts),
            waits(utc(2026, 5, 7, 7, 0), WaitingFor::SendAt)
        );
        // A sendAt up to the creation (the minute a request may lag) stays a reply.
        facts.send_at = Some(now - TimeDelta::seconds(30));
        assert!(facts.is_reply());
        assert_eq!(decide(&facts), due(now));
    }

    #[test]
    fn send_at_waits_then_follows_the_calendar() {
        let week = calendar(WEEK);
        let none = Closures::NONE;
        let now = utc(2026, 5, 6, 8, 0); // Wednesday 10:00 Berlin
        let mut facts = input(now, &week, &none);
        // Inside the calendar: exactly at sendAt.
        facts.send_at = Some(utc(2026, 5, 6, 12, 17));
        assert_eq!(
            decide(&facts),
            waits(utc(2026, 5, 6, 12, 17), WaitingFor::SendAt)
        );
        // Sunday: the next window start after it, Monday 09:00.
        facts.send_at = Some(utc(2026, 5, 10, 12, 0));
        assert_eq!(
            decide(&facts),
            waits(utc(2026, 5, 11, 7, 0), WaitingFor::SendAt)
        );
        // In the past (decided again at send time): as if absent.
        facts.send_at = Some(now - TimeDelta::hours(1));
        assert_eq!(decide(&facts), due(now));
    }

    #[test]
    fn waiting_for_precedence() {
        let week = calendar(WEEK);
        let christmas = closures(r#"[{"date":"2026-12-27"}]"#);
        let cap = FrequencyCap::new(1, "7d").unwrap();
        let full = [utc(2026, 12, 26, 9, 30)];
        // Sunday 27 December 10:00 Berlin: outside the calendar, in a closure, cap full,
        // and a sendAt ahead: each rule in turn is named as the ones before it are lifted.
        let now = utc(2026, 12, 27, 9, 0);
        let mut facts = input(now, &week, &christmas);
        facts.frequency_cap = Some(cap);
        facts.recent_sends = &full;
        facts.send_at = Some(utc(2026, 12, 27, 10, 0));
        let at = utc(2027, 1, 2, 9, 30); // Saturday 10:30: the cap frees a week on
        assert_eq!(decide(&facts), waits(at, WaitingFor::SendAt));
        facts.send_at = None;
        assert_eq!(decide(&facts), waits(at, WaitingFor::Closure));
        let none = Closures::NONE;
        facts.closures = &none;
        assert_eq!(decide(&facts), waits(at, WaitingFor::ActiveHours));
        let always = Calendar::Daily(crate::active_hours::ActiveHours::ALWAYS);
        facts.calendar = &always;
        assert_eq!(decide(&facts), waits(at, WaitingFor::FrequencyCap));
        facts.frequency_cap = None;
        assert_eq!(decide(&facts), due(now));
        assert_eq!(
            serde_json::to_string(&decide(&facts)).unwrap(),
            r#"{"at":"2026-12-27T09:00:00Z","waitingFor":null}"#
        );
        for (rule, name) in [
            (WaitingFor::ActiveHours, "active_hours"),
            (WaitingFor::Closure, "closure"),
            (WaitingFor::SendAt, "send_at"),
            (WaitingFor::FrequencyCap, "frequency_cap"),
        ] {
            assert_eq!(serde_json::to_string(&rule).unwrap(), format!("{name:?}"));
            assert_eq!(rule.to_string(), name);
            assert_eq!(
                serde_json::from_str::<WaitingFor>(&format!("{name:?}")).unwrap(),
                rule
            );
        }
    }

    #[test]
    fn dst_spring_forward_with_a_window_in_the_skipped_hour() {
        let none = Closures::NONE;
        // Berlin 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist; the window opens
        // when the gap ends, 03:00 CEST (01:00Z).
        let sunday = calendar(r#"{"sun":["02:30-05:00"]}"#);
        let mut facts = input(utc(2026, 3, 29, 0, 0), &sunday, &none);
        assert_eq!(
            decide(&facts),
            waits(utc(2026, 3, 29, 1, 0), WaitingFor::ActiveHours)
        );
        // A window lying wholly in the gap does not open that day: the next Sunday.
        let gone = calendar(r#"{"sun":["02:15-02:45"]}"#);
        facts.calendar = &gone;
        assert_eq!(decide(&facts).at, utc(2026, 4, 5, 0, 15));
        // New York 2026-03-08 02:00 EST -> 03:00 EDT: 02:15 opens at 03:00 EDT (07:00Z).
        let sunday = calendar(r#"{"sun":["02:15-04:00"]}"#);
        let mut facts = input(utc(2026, 3, 8, 5, 0), &sunday, &none);
        facts.time_zone = chrono_tz::America::New_York;
        assert_eq!(decide(&facts).at, utc(2026, 3, 8, 7, 0));
        // A closure ending in the gap ends when the gap does.
        let night = closures(r#"[{"from":"2026-03-08T00:00","to":"2026-03-08T02:30"}]"#);
        let always = Calendar::Daily(crate::active_hours::ActiveHours::ALWAYS);
        facts.calendar = &always;
        facts.closures = &night;
        assert_eq!(
            decide(&facts),
            waits(utc(2026, 3, 8, 7, 0), WaitingFor::Closure)
        );
    }

    #[test]
    fn dst_fall_back_repeated_hour() {
        let none = Closures::NONE;
        // Berlin 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 occurs at 00:30Z and 01:30Z.
        let sunday = calendar(r#"{"sun":["02:30-02:45"]}"#);
        let mut facts = input(utc(2026, 10, 25, 0, 0), &sunday, &none);
        assert_eq!(decide(&facts).at, utc(2026, 10, 25, 0, 30));
        // Between the two: the second, which is not in the past.
        facts.now = utc(2026, 10, 25, 0, 50);
        assert_eq!(decide(&facts).at, utc(2026, 10, 25, 1, 30));
        // New York 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 first at 05:30Z.
        let sunday = calendar(r#"{"sun":["01:30-20:00"]}"#);
        let mut facts = input(utc(2026, 11, 1, 4, 0), &sunday, &none);
        facts.time_zone = chrono_tz::America::New_York;
        assert_eq!(decide(&facts).at, utc(2026, 11, 1, 5, 30));
        // A closure to 01:30 ends at its first occurrence.
        let early = closures(r#"[{"from":"2026-11-01T00:00","to":"2026-11-01T01:30"}]"#);
        let always = Calendar::Daily(crate::active_hours::ActiveHours::ALWAYS);
        facts.calendar = &always;
        facts.closures = &early;
        assert_eq!(decide(&facts).at, utc(2026, 11, 1, 5, 30));
    }

    #[test]
    fn half_and_quarter_hour_zones() {
        let week = calendar(WEEK);
        let none = Closures::NONE;
        // Saturday 2026-11-28 16:00 local: Monday 09:00 local.
        for (tz, sat_1600, mon_0900) in [
            (
                chrono_tz::Asia::Kolkata, // +05:30
                utc(2026, 11, 28, 10, 30),
                utc(2026, 11, 30, 3, 30),
            ),
            (
                chrono_tz::Asia::Kathmandu, // +05:45
                utc(2026, 11, 28, 10, 15),
                utc(2026, 11, 30, 3, 15),
            ),
            (
                chrono_tz::Australia::Adelaide, // +10:30 in summer
                utc(2026, 11, 28, 5, 30),
                utc(2026, 11, 29, 22, 30),
            ),
            (
                chrono_tz::Australia::Lord_Howe, // +11 in summer
                utc(2026, 11, 28, 5, 0),
                utc(2026, 11, 29, 22, 0),
            ),
        ] {
            let mut facts = input(sat_1600, &week, &none);
            facts.time_zone = tz;
            assert_eq!(
                decide(&facts),
                waits(mon_0900, WaitingFor::ActiveHours),
                "{tz}"
            );
            facts.now = sat_1600 - TimeDelta::seconds(1);
            assert_eq!(decide(&facts).waiting_for, None, "{tz}");
        }
        // Lord Howe's half-hour change, 2026-04-05 02:00 +11 -> 01:30 +10:30, with a
        // Sunday window at 01:45 (twice that night): the first, 14:45Z on the 4th.
        let sunday = calendar(r#"{"sun":["01:45-01:50"]}"#);
        let mut facts = input(utc(2026, 4, 4, 13, 0), &sunday, &none);
        facts.time_zone = chrono_tz::Australia::Lord_Howe;
        assert_eq!(decide(&facts).at, utc(2026, 4, 4, 14, 45));
    }

    #[test]
    fn a_window_wrapping_into_a_closed_day_and_a_closure_across_the_new_year() {
        // Thursday's and Friday's windows wrap midnight; Saturday has none, so what is open
        // early on Saturday is Friday's window. Berlin, +01:00 in winter.
        let nights = calendar(r#"{"thu":["21:00-02:00"],"fri":["22:00-03:00"]}"#);
        let none = Closures::NONE;
        // Saturday 2027-01-02 02:30 local: still Friday's window.
        let facts = input(utc(2027, 1, 2, 1, 30), &nights, &none);
        assert_eq!(decide(&facts), due(facts.now));
        // 03:00 local: Friday's window is over and Saturday is closed: next Thursday 21:00.
        let facts = input(utc(2027, 1, 2, 2, 0), &nights, &none);
        assert_eq!(
            decide(&facts),
            waits(utc(2027, 1, 7, 20, 0), WaitingFor::ActiveHours)
        );

        // Closed from New Year's Eve 23:30 to 00:45 on New Year's Day, inside Thursday's
        // window (Thursday 2026-12-31 21:00 to Friday 02:00).
        let new_year = closures(r#"[{"from":"2026-12-31T23:30","to":"2027-01-01T00:45"}]"#);
        let facts = input(utc(2026, 12, 31, 22, 0), &nights, &new_year); // 23:00 local
        assert_eq!(decide(&facts), due(facts.now));
        // 23:45 local: the closure ends at 00:45 in the new year, still in Thursday's window.
        let facts = input(utc(2026, 12, 31, 22, 45), &nights, &new_year);
        assert_eq!(
            decide(&facts),
            waits(utc(2026, 12, 31, 23, 45), WaitingFor::Closure)
        );
        // A closure over the rest of Thursday's window sends it to Friday's, 22:00 local.
        let long = closures(r#"[{"from":"2026-12-31T23:30","to":"2027-01-01T02:30"}]"#);
        let facts = input(utc(2026, 12, 31, 22, 45), &nights, &long);
        assert_eq!(
            decide(&facts),
            waits(utc(2027, 1, 1, 21, 0), WaitingFor::Closure)
        );
        // New Year's Day closed all day, from 00:30 local (in Thursday's wrapped window):
        // Friday's window opens inside it too, so the first open instant is the closure's
        // end, Saturday 00:00 local, in Friday's wrapped window.
        let day = closures(r#"[{"date":"2027-01-01"}]"#);
        let facts = input(utc(2026, 12, 31, 23, 30), &nights, &day);
        assert_eq!(
            decide(&facts),
            waits(utc(2027, 1, 1, 23, 0), WaitingFor::Closure)
        );
    }

    /// The earliest whole minute `>= from` (or `from` itself) at which `ok` holds, scanning
    /// minute by minute up to `horizon`.
    fn scan(
        from: DateTime<Utc>,
        horizon: DateTime<Utc>,
        ok: impl Fn(DateTime<Utc>) -> bool,
    ) -> Option<DateTime<Utc>> {
        if ok(from) {
            return Some(from);
        }
        let mut t = DateTime::from_timestamp((from.timestamp() / 60 + 1) * 60, 0).unwrap();
        while t <= horizon {
            if ok(t) {
                return Some(t);
            }
            t += TimeDelta::minutes(1);
        }
        None
    }

    fn any_cap() -> impl Strategy<Value = Option<FrequencyCap>> {
        prop_oneof![
            Just(None),
            (1u32..4, 1u32..(3 * 24 * 60)).prop_map(|(count, per)| Some(
                FrequencyCap::new(count, &format!("{per}m")).unwrap()
            )),
        ]
    }

    fn any_calendar() -> impl Strategy<Value = Calendar> {
        prop_oneof![
            1 => Just(Calendar::default()),
            1 => Just(calendar("21:00-08:00")),
            4 => any_week(),
        ]
    }

    const HORIZON_DAYS: i64 = 21;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        /// The decided instant is the earliest one that every rule allows, compared with a
        /// minute-by-minute scan of independent statements of each rule.
        #[test]
        fn decision_is_the_earliest_instant_every_rule_allows(
            week in any_calendar(),
            fixed in any_closures(),
            near in prop::collection::vec((-96i64..2 * 96, 1i64..48, prop::bool::weighted(0.2)), 0..8),
            zone in 0..ZONES.len(),
            now in any_instant(),
            send_in in prop::option::weighted(0.3, -1i64..(3 * 24 * 60)),
            cap in any_cap(),
            sends_ago in prop::collection::vec(0i64..(3 * 24 * 60), 0..6),
            written_ago in 0i64..120,
            received_before in prop::option::of(0i64..60),
        ) {
            let tz = ZONES[zone];
            let minutes = TimeDelta::minutes;
            let sends: Vec<_> = sends_ago.iter().map(|m| now - minutes(*m)).collect();
            // The closures near the changes of the clocks, and some near `now` (by quarter
            // hours of its local time), so that they overlap, chain and hold replies.
            let local = now.with_timezone(&tz).naive_local();
            let list = Closures::new(
                fixed
                    .as_slice()
                    .iter()
                    .copied()
                    .chain(near.iter().map(|&(start, len, whole_day)| {
                        let from = local + minutes(start * 15);
                        if whole_day {
                            Closure::day(from.date())
                        } else {
                            Closure::span(from, from + minutes(len * 15)).unwrap()
                        }
                    }))
                    .collect(),
            )
            .unwrap();
            let created_at = now - minutes(written_ago);
            let facts = DeliveryInput {
                now,
                created_at,
                send_at: send_in.map(|m| now + minutes(m)),
                time_zone: tz,
                calendar: &week,
                closures: &list,
                frequency_cap: cap,
                reply_grace: ReplyGrace::default(),
                recent_sends: &sends,
                last_received: received_before.map(|m| created_at - minutes(m)),
            };
            let decision = decide(&facts);
            let at = decision.at;
            let stretches = oracle_stretches(&list, tz);
            let in_calendar = |t: DateTime<Utc>| oracle_contains(&week, t, tz);
            let outside_closures = |t: DateTime<Utc>| !oracle_inside(&stretches, t);
            let fits = |t: DateTime<Utc>| cap.is_none_or(|cap| {
                sends.iter().filter(|s| **s > t - cap.per()).count() < cap.count() as usize
            });
            let reply = received_before.is_some_and(|m| m < 15) && send_in.is_none_or(|m| m <= -written_ago);
            prop_assert_eq!(facts.is_reply(), reply);

            prop_assert!(at >= now);
            prop_assert!(outside_closures(at), "{} in a closure", at);
            let horizon = now + TimeDelta::days(HORIZON_DAYS);
            let expected = if reply {
                let held = !outside_closures(created_at) || !outside_closures(now);
                if held {
                    prop_assert!(in_calendar(at), "held reply at {} outside the calendar", at);
                    scan(now, horizon, |t| in_calendar(t) && outside_closures(t))
                } else {
                    Some(now)
                }
            } else {
                let from = facts.send_at.map_or(now, |s| s.max(now));
                prop_assert!(at >= from);
                prop_assert!(in_calendar(at), "{} outside the calendar", at);
                prop_assert!(fits(at), "{} over the cap", at);
                scan(from, horizon, |t| in_calendar(t) && outside_closures(t) && fits(t))
            };
            match expected {
                Some(first) => prop_assert_eq!(at, first),
                None => prop_assert!(at > horizon, "nothing fits before {} but {} was decided", horizon, at),
            }

            // What holds it now: the first rule in precedence that does not allow `now`.
            let expected_rule = if at == now {
                None
            } else if !reply && facts.send_at.is_some_and(|s| s > now) {
                Some(WaitingFor::SendAt)
            } else if !outside_closures(now) {
                Some(WaitingFor::Closure)
            } else if !in_calendar(now) {
                Some(WaitingFor::ActiveHours)
            } else {
                Some(WaitingFor::FrequencyCap)
            };
            prop_assert_eq!(decision.waiting_for, expected_rule);
            if expected_rule == Some(WaitingFor::FrequencyCap) {
                prop_assert!(!reply && !fits(now));
            }

            // Decided again at send time with the same facts (the dispatcher's pass at the
            // decided instant): due, nothing holds it.
            let at_send = DeliveryInput { now: at, ..facts };
            prop_assert_eq!(decide(&at_send), Decision { at, waiting_for: None });
            // Decided again earlier (a pass woken before it, or a read of the chat): the
            // same instant. Not for a reply: it goes at the moment it is decided.
            if !reply && at > now {
                for later in [now + (at - now) / 2, at - TimeDelta::seconds(1)] {
                    let again = decide(&DeliveryInput { now: later, ..facts });
                    prop_assert_eq!(again.at, at, "decided again at {}", later);
                    prop_assert!(again.waiting_for.is_some());
                }
            }
        }
    }
}
