//! Flat cost at scale: the storage operations a request or a dispatch pass makes,
//! on a fresh database (the demo data) and again with 1,000,000 messages stored over 10,000
//! conversations, on SQLite and on PostgreSQL. Each figure at a million should stay within
//! 20% of the fresh one.
//!
//! ```sh
//! cargo bench --bench scale                                  # SQLite, and PostgreSQL at
//! CARTLOOP_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench scale
//! SCALE_MESSAGES=100000 cargo bench --bench scale            # a smaller database
//! ```

#[path = "bulk/mod.rs"]
mod bulk;

use cartloop::core::demo::demo_data;
use cartloop::core::domain::{MessageStatus, NewMessage};
use cartloop::core::ids::{ConversationId, UserId};
use cartloop::core::ports::{ClaimLimit, Page, Storage};
use cartloop::core::validate::{Payload, ValidationPolicy};
use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use std::time::Duration;

const CLAIM_BATCH: usize = 20;

fn message(status: MessageStatus) -> NewMessage {
    let now = Utc::now();
    NewMessage {
        conversation_id: ConversationId(1),
        author_id: UserId(if status == MessageStatus::New { 24 } else { 27 }),
        payload: Payload::parse(
            "Hi << username >>, still there?",
            &ValidationPolicy::default(),
        )
        .unwrap(),
        status,
        created_at: now,
        send_at: (status == MessageStatus::New).then_some(now),
        idempotency_key: None,
        not_before: None,
        last_received: None,
        waiting_for: None,
    }
}

/// The four figures, named `<backend>/<size>/<operation>`.
fn measure(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    storage: &Arc<dyn Storage>,
    name: &str,
) {
    let mut group = c.benchmark_group(name);
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("page_50", |b| {
        b.to_async(runtime).iter(|| async {
            let page = Page {
                limit: 50,
                before: None,
            };
            storage
                .conversation_page(ConversationId(1), page)
                .await
                .unwrap()
                .unwrap()
        })
    });
    group.bench_function("insert", |b| {
        b.to_async(runtime).iter(|| async {
            storage
                .insert_message(message(MessageStatus::Received))
                .await
                .unwrap()
        })
    });
    group.bench_function("next_due", |b| {
        b.to_async(runtime)
            .iter(|| async { storage.next_due().await.unwrap() })
    });
    group.bench_function("claim_20_and_record", |b| {
        // Each round: 20 messages fall due (not timed), then one claim takes them and each
        // result is recorded (timed).
        b.to_async(runtime).iter_custom(|rounds| async move {
            let mut timed = Duration::ZERO;
            for _ in 0..rounds {
                for _ in 0..CLAIM_BATCH {
                    storage
                        .insert_message(message(MessageStatus::New))
                        .await
                        .unwrap();
                }
                let started = std::time::Instant::now();
                let now = Utc::now();
                let claimed = storage
                    .claim_due(
                        now,
                        Duration::from_secs(30),
                        ClaimLimit::batch(CLAIM_BATCH as u32),
                    )
                    .await
                    .unwrap();
                assert_eq!(claimed.len(), CLAIM_BATCH);
                for claim in claimed {
                    storage.mark_sent(claim.token, now).await.unwrap();
                }
                timed += started.elapsed();
            }
            timed
        })
    });
    group.finish();
}

fn scale(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let messages: i64 = std::env::var("SCALE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let mut backends = vec![(
        "sqlite",
        format!("sqlite://{}", dir.path().join("scale.db").display()),
    )];
    if let Ok(admin) = std::env::var("CARTLOOP_TEST_POSTGRES_URL") {
        let url = runtime.block_on(fresh_postgres(&admin));
        backends.push(("postgres", url));
    }
    for (backend, url) in backends {
        let storage = runtime.block_on(async {
            let storage = cartloop::sqlx::connect(&url).await.unwrap();
            storage.import(&demo_data()).await.unwrap();
            // A full page to read from the start, as at a million.
            for _ in 0..60 {
                storage
                    .insert_message(message(MessageStatus::Received))
                    .await
                    .unwrap();
            }
            storage
        });
        measure(c, &runtime, &storage, &format!("{backend}/fresh"));
        runtime
            .block_on(bulk::load(storage.as_ref(), &url, messages, 10_000))
            .unwrap();
        measure(c, &runtime, &storage, &format!("{backend}/{messages}"));
    }
}

/// A fresh database `cartloop_scale` on the PostgreSQL server of `admin`.
async fn fresh_postgres(admin: &str) -> String {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
    conn.execute("DROP DATABASE IF EXISTS cartloop_scale WITH (FORCE)")
        .await
        .unwrap();
    conn.execute("CREATE DATABASE cartloop_scale")
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
    format!("{base}/cartloop_scale")
}

criterion_group!(benches, scale);
criterion_main!(benches);
