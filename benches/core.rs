//! Criterion benches of the core rules: validation, rendering, scheduling and dispatch.
//!
//! ```sh
//! cargo bench --bench core
//! ```

use cartloop::core::active_hours::ActiveHours;
use cartloop::core::chat::{post_chat, PostChat};
use cartloop::core::demo::demo_data;
use cartloop::core::dispatch::{DispatchConfig, Dispatcher};
use cartloop::core::ids::{ConversationId, UserId};
use cartloop::core::ports::Storage;
use cartloop::core::rules::Rules;
use cartloop::core::template::RenderValues;
use cartloop::core::testing::{ManualClock, MemoryStorage, RecordingMailer};
use cartloop::core::validate::{Payload, ValidationPolicy};
use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;

const TYPICAL: &str = "Sure << username >>, here is your code << discountCode >>. Enjoy!";

fn validation(c: &mut Criterion) {
    let policy = ValidationPolicy::default();
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

fn dispatch(c: &mut Criterion) {
    const BATCH: u64 = 100;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap();
    let mut group = c.benchmark_group("dispatch");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("run_once_100_in_memory", |b| {
        b.iter_batched(
            || {
                runtime.block_on(async {
                    let storage = Arc::new(MemoryStorage::new());
                    storage.import(&demo_data()).await.unwrap();
                    let clock = Arc::new(ManualClock::new(now));
                    for _ in 0..BATCH {
                        let request = PostChat {
                            conversation_id: ConversationId(1),
                            user_id: UserId(24),
                            payload: TYPICAL.to_owned(),
                            idempotency_key: None,
                        };
                        post_chat(storage.as_ref(), clock.as_ref(), &Rules::default(), request)
                            .await
                            .unwrap();
                    }
                    Dispatcher::new(
                        storage,
                        Arc::new(RecordingMailer::new_ok()),
                        clock,
                        Arc::new(Rules::default()),
                        DispatchConfig::default(),
                    )
                })
            },
            |dispatcher| {
                let report = runtime.block_on(dispatcher.run_once()).unwrap();
                assert_eq!(u64::from(report.sent), BATCH);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, validation, rendering, scheduling, dispatch);
criterion_main!(benches);
