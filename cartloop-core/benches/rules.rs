//! Criterion benches of the core rules: payload validation, rendering and the send-instant
//! rule. They build with `cartloop-core` alone, so they run without the adapters:
//!
//! ```sh
//! cargo bench -p cartloop-core --bench rules
//! ```

use cartloop_core::active_hours::ActiveHours;
use cartloop_core::template::RenderValues;
use cartloop_core::validate::{Payload, ValidationPolicy};
use chrono::{TimeZone, Utc};
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

criterion_group!(benches, validation, rendering, scheduling);
criterion_main!(benches);
