//! Criterion bench of a dispatch pass over the in-memory storage. The rules' benches
//! (validation, rendering, scheduling) are in cartloop-core:
//!
//! ```sh
//! cargo bench --bench core                      # dispatch
//! cargo bench -p cartloop-core --bench rules    # validate, render, next_send_instant
//! ```

use cartloop::core::chat::{post_chat, PostChat};
use cartloop::core::demo::demo_data;
use cartloop::core::dispatch::{DispatchConfig, Dispatcher};
use cartloop::core::ids::{ConversationId, UserId};
use cartloop::core::ports::prelude::*;
use cartloop::core::rules::Rules;
use cartloop::core::testing::{ManualClock, MemoryStorage, RecordingMailer};
use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;

const TYPICAL: &str = "Sure << username >>, here is your code << discountCode >>. Enjoy!";

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
                            principal: cartloop_core::access::Principal::deployment_token(),
                            user_id: Some(UserId(24)),
                            payload: TYPICAL.to_owned(),
                            idempotency_key: None,
                            send_at: None,
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

criterion_group!(benches, dispatch);
criterion_main!(benches);
