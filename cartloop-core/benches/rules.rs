//! Criterion benches of the core rules: payload validation, rendering, the send-instant
//! rule and the delivery decision. They build with `cartloop-core` alone, so they run without the adapters:
//!
//! ```sh
//! cargo bench -p cartloop-core --bench rules
//! ```

use cartloop_core::active_hours::ActiveHours;
use cartloop_core::calendar::Calendar;
use cartloop_core::closures::Closures;
use cartloop_core::delivery_policy::{decide, DeliveryInput, WaitingFor};
use cartloop_core::frequency_cap::FrequencyCap;
use cartloop_core::reply_grace::ReplyGrace;
use cartloop_core::template::RenderValues;
use cartloop_core::validate::{Payload, ValidationPolicy};
use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

/// The original task's kind of message, two placeholders. Its bench keeps the name it has in
/// the root package's `benches/core.rs` so the figures compare, though the text is 65
/// characters.
const TYPICAL: &str = "Sure << username >>, here is your code << discountCode >>. Enjoy!";

/// A realistic longer message: 150 characters, two placeholders (issue 9's target size).
const TYPICAL_150: &str = "Hi << username >>, thanks for shopping with us! Your cart is still \
waiting. Use code << discountCode >> at checkout for 10% off - valid until Tuesday.";

fn validation(c: &mut Criterion) {
    let policy = ValidationPolicy::default();
    assert_eq!(TYPICAL_150.chars().count(), 150);
    let placeholder = "{{ username }}";
    let filler: String = "Hello there, friend. "
        .repeat(20)
        .chars()
        .take(299 - placeholder.len())
        .collect();
    let longest = format!("{filler}{placeholder}");
    assert_eq!(longest.chars().count(), 299);
    let mut group = c.benchmark_group("validate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("typical_64_chars", |b| {
        b.iter(|| Payload::parse(black_box(TYPICAL), &policy).unwrap())
    });
    group.bench_function("typical_150_chars", |b| {
        b.iter(|| Payload::parse(black_box(TYPICAL_150), &policy).unwrap())
    });
    group.bench_function("longest_299_chars", |b| {
        b.iter(|| Payload::parse(black_box(&longest), &policy).unwrap())
    });
    group.bench_function("rejected_at_end", |b| {
        let bad = format!("{}\u{e9}", "a".repeat(298));
        b.iter(|| Payload::parse(black_box(&bad), &policy).unwrap_err())
    });
    group.finish();
}

fn rendering(c: &mut Criterion) {
    let policy = ValidationPolicy::default();
    let payload = Payload::parse(TYPICAL, &policy).unwrap();
    let values = RenderValues {
        username: "John Carter",
        discount_code: Some("PROMO50"),
        operator: "Dan Brooks",
    };
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));
    group.bench_function("typical", |b| {
        b.iter(|| payload.render_checked(black_box(&values), &policy).unwrap())
    });
    group.finish();
}

fn scheduling(c: &mut Criterion) {
    let hours = ActiveHours::default();
    let mut group = c.benchmark_group("next_send_instant");
    group.throughput(Throughput::Elements(1));
    let inside = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap();
    let outside = Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 0).unwrap();
    group.bench_function("inside_new_york", |b| {
        b.iter(|| hours.next_send_instant(black_box(inside), chrono_tz::America::New_York))
    });
    group.bench_function("outside_new_york", |b| {
        b.iter(|| hours.next_send_instant(black_box(outside), chrono_tz::America::New_York))
    });
    group.bench_function("outside_lord_howe", |b| {
        b.iter(|| hours.next_send_instant(black_box(outside), chrono_tz::Australia::Lord_Howe))
    });
    let dst_eve = Utc.with_ymd_and_hms(2026, 3, 8, 2, 0, 0).unwrap();
    group.bench_function("across_dst_new_york", |b| {
        b.iter(|| hours.next_send_instant(black_box(dst_eve), chrono_tz::America::New_York))
    });
    group.finish();
}

/// A message written at `now` to a client in Berlin, the store's cap 3 a day.
fn facts<'a>(
    now: DateTime<Utc>,
    recent_sends: &'a [DateTime<Utc>],
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
        frequency_cap: Some(FrequencyCap::new(3, "24h").unwrap()),
        reply_grace: ReplyGrace::default(),
        recent_sends,
        last_received: None,
    }
}

/// One decision for a typical store: a week of two windows a day, a short Saturday and a
/// closed Sunday, two closures (Christmas and the new year), a cap of 3 a day, in Berlin.
fn delivery(c: &mut Criterion) {
    let calendar: Calendar =
        r#"{"mon":["09:00-12:00","13:00-20:00"],"tue":["09:00-12:00","13:00-20:00"],
        "wed":["09:00-12:00","13:00-20:00"],"thu":["09:00-12:00","13:00-20:00"],
        "fri":["09:00-12:00","13:00-20:00"],"sat":["10:00-16:00"],"sun":[]}"#
            .parse()
            .unwrap();
    let closures: Closures =
        r#"[{"date":"2026-12-25"},{"from":"2026-12-31T18:00","to":"2027-01-02T09:00"}]"#
            .parse()
            .unwrap();
    let utc = |m, d, h, min| Utc.with_ymd_and_hms(2026, m, d, h, min, 0).unwrap();
    let two_sends = [utc(11, 24, 9, 0), utc(11, 25, 8, 0)];
    let three_sends = [utc(11, 28, 9, 0), utc(11, 28, 9, 10), utc(11, 28, 9, 20)];
    let input = |now, sends| facts(now, sends, &calendar, &closures);
    // Wednesday 25 November 10:00 local: due.
    let due = input(utc(11, 25, 9, 0), &two_sends);
    // Wednesday 21:00: the next morning.
    let evening = input(utc(11, 25, 20, 0), &two_sends);
    // Saturday 28th 11:00, cap full: Sunday closed, so Monday 09:00.
    let weekend_capped = input(utc(11, 28, 10, 0), &three_sends);
    // Christmas Day: Saturday 26th 10:00.
    let christmas = input(utc(12, 25, 9, 0), &two_sends);
    // A reply at 21:00, the client wrote at 20:55.
    let reply = DeliveryInput {
        last_received: Some(utc(11, 25, 19, 55)),
        ..evening
    };
    assert_eq!(decide(&due).waiting_for, None);
    assert_eq!(decide(&evening).waiting_for, Some(WaitingFor::ActiveHours));
    assert_eq!(decide(&weekend_capped).at, utc(11, 30, 8, 0));
    assert_eq!(decide(&christmas).waiting_for, Some(WaitingFor::Closure));
    assert_eq!(decide(&reply).waiting_for, None);
    let mut group = c.benchmark_group("delivery_policy");
    group.throughput(Throughput::Elements(1));
    for (name, facts) in [
        ("due_week_2_closures_cap", &due),
        ("evening_week_2_closures_cap", &evening),
        ("weekend_capped_week_2_closures_cap", &weekend_capped),
        ("christmas_week_2_closures_cap", &christmas),
        ("reply_week_2_closures_cap", &reply),
    ] {
        group.bench_function(name, |b| b.iter(|| decide(black_box(facts))));
    }
    group.finish();
}

criterion_group!(benches, validation, rendering, scheduling, delivery);
criterion_main!(benches);
