//! `PgStorage` against the storage contract and the scenarios, each test on a fresh
//! database. Needs `CARTLOOP_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`),
//! a role allowed to create databases; without it the tests are skipped, except on CI.

mod common;

use cartloop_core::demo::demo_data;
use cartloop_core::ids::ConversationId;
use cartloop_core::ports::prelude::*;
use cartloop_core::ports::{ClaimLimit, StorageError};
use cartloop_sqlx::{PgStorage, PG_MIGRATOR};
use common::postgres::{fresh, fresh_database, DropDatabase};
use common::scenarios;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

cartloop_core::storage_conformance_tests!(crate::common::postgres::fresh());

/// Two storages with separate pools on one fresh database, as two servers would have.
async fn two_on_one_database() -> Option<(Arc<dyn Storage>, Arc<dyn Storage>, DropDatabase)> {
    let (options, guard) = fresh_database().await?;
    let a = PgStorage::connect_with(options.clone()).await.unwrap();
    let b = PgStorage::connect_with(options).await.unwrap();
    Some((Arc::new(a), Arc::new(b), guard))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimed_and_died() {
    let Some((a, b, _guard)) = two_on_one_database().await else {
        return;
    };
    scenarios::claimed_and_died(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts() {
    let Some(storage) = fresh().await else {
        return;
    };
    scenarios::concurrent_inserts(Arc::new(storage.storage.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_inserts_answer_each_caller() {
    let Some(storage) = fresh().await else {
        return;
    };
    scenarios::grouped_inserts_answer_each_caller(Arc::new(storage.storage.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_sends_answer_each_caller() {
    let Some(storage) = fresh().await else {
        return;
    };
    scenarios::grouped_sends_answer_each_caller(Arc::new(storage.storage.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_reads_answer_each_caller() {
    let Some(storage) = fresh().await else {
        return;
    };
    scenarios::grouped_reads_answer_each_caller(Arc::new(storage.storage.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_idempotent_inserts() {
    let Some(storage) = fresh().await else {
        return;
    };
    scenarios::concurrent_idempotent_inserts(Arc::new(storage.storage.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_dispatchers() {
    let Some((a, b, _guard)) = two_on_one_database().await else {
        return;
    };
    scenarios::racing_dispatchers(a, b, 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capped_racing_dispatchers() {
    let Some((a, b, _guard)) = two_on_one_database().await else {
        return;
    };
    scenarios::capped_racing_dispatchers(a, b).await;
}

#[tokio::test]
async fn claims_merge_expired_leases_in_due_order() {
    let Some(storage) = fresh().await else {
        return;
    };
    scenarios::claims_merge_expired_leases_in_due_order(Arc::new(storage.storage.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_idempotency_per_author() {
    let Some(storage) = fresh().await else {
        return;
    };
    scenarios::concurrent_idempotency_per_author(Arc::new(storage.storage.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_race_claims() {
    let Some((a, b, _guard)) = two_on_one_database().await else {
        return;
    };
    scenarios::cancels_race_claims(a, b, 20).await;
}

/// Rows as the first schema stored them, for the upgrade test.
const OLD_ROWS: &str = "
    INSERT INTO stores VALUES (1, 'Sneaker Hub', 'America/Chicago', 'shop@sneakers.example.com');
    INSERT INTO users (id, role, name, store_id, operator_group)
        VALUES (24, 'operator', 'Maya', 1, 'sales');
    INSERT INTO users (id, role, name, email, time_zone)
        VALUES (27, 'client', 'John Carter', 'John.Carter@Example.com', 'America/Chicago');
    INSERT INTO conversations (id, store_id, operator_id, client_id, status, discount_code)
        VALUES (1, 1, 24, 27, 'open', 'PROMO50');
    INSERT INTO messages (id, conversation_id, author_id, payload, status, created_at,
                          send_at, sent_at, attempts, idempotency_key) VALUES
        (1, 1, 24, 'Hi << username >>', 'sent', '2020-12-03T15:00:00Z',
         '2020-12-03T15:00:00Z', '2020-12-03T15:00:00Z', 1, NULL),
        (2, 1, 27, 'Hi, a discount?', 'received', '2020-12-03T15:20:00Z', NULL, NULL, 0, NULL),
        (3, 1, 24, 'Sure {{ username }}', 'new', '2026-11-25T15:00:00Z',
         '2026-11-25T15:00:00Z', NULL, 0, 'k1');
    SELECT setval('messages_id_seq', 3);";

/// A pool on the database of `options` with only the first `count` released migrations
/// applied: a database as an older version left it.
async fn migrated_to(options: &sqlx::postgres::PgConnectOptions, count: usize) -> PgPool {
    let dir = tempfile::tempdir().unwrap();
    for released in PG_MIGRATOR.iter().take(count) {
        let file = format!(
            "{}_{}.sql",
            released.version,
            released.description.replace(' ', "_")
        );
        std::fs::write(dir.path().join(file), released.sql.as_ref()).unwrap();
    }
    let pool = PgPoolOptions::new()
        .connect_with(options.clone())
        .await
        .unwrap();
    let older = Migrator::new(dir.path()).await.unwrap();
    assert_eq!(older.iter().count(), count);
    older.run(&pool).await.unwrap();
    pool
}

/// A database at the first schema, with data, upgrades in place: its rows are kept and new
/// ids continue after them.
#[tokio::test]
async fn migrations_upgrade_a_database_in_place() {
    let Some((options, _guard)) = fresh_database().await else {
        return;
    };
    let pool = migrated_to(&options, 1).await;
    sqlx::raw_sql(OLD_ROWS).execute(&pool).await.unwrap();
    pool.close().await;

    let storage = PgStorage::connect_with(options).await.unwrap();
    scenarios::upgraded(&storage).await;
}

/// Rows as the second schema stored them: clients shared by every store (see
/// `scenarios::split_upgraded`), with the identities past them as an import leaves them;
/// the users' one has given ids up to 30 (refused inserts use ids up too), so new clients
/// start at 31.
const SHARED_CLIENTS: &str = "
    INSERT INTO stores (id, name, time_zone, sender_email) VALUES
        (1, 'Sneaker Hub', 'America/Chicago', 'shop@sneakers.example.com'),
        (2, 'Berlin Books', 'Europe/Berlin', 'team@books.example.com'),
        (3, 'Tokyo Tea', 'Asia/Tokyo', 'shop@tea.example.com');
    INSERT INTO users (id, role, name, store_id, operator_group) VALUES
        (21, 'operator', 'Maya', 1, 'sales'),
        (22, 'operator', 'Bruno', 2, 'sales'),
        (23, 'operator', 'Emi', 3, 'support');
    INSERT INTO users (id, role, name, email, email_key, time_zone, unsubscribed_at) VALUES
        (5, 'client', 'Ann Lee', 'Ann.Lee@Example.com', 'ann.lee@example.com', 'Europe/Paris',
         NULL),
        (7, 'client', 'Bo Berg', 'bo@example.com', 'bo@example.com', 'Asia/Tokyo',
         '2026-11-01T12:00:00Z'),
        (8, 'client', 'Cy Lone', 'cy@example.com', 'cy@example.com', NULL, NULL),
        (10, 'client', 'Di Solo', 'di@example.com', 'di@example.com', 'Asia/Tokyo', NULL);
    SELECT setval(pg_get_serial_sequence('users', 'id'), 30);
    INSERT INTO conversations (id, store_id, operator_id, client_id, status, discount_code)
    VALUES
        (1, 3, 23, 10, 'open', NULL),
        (2, 1, 21, 7, 'open', NULL),
        (3, 2, 22, 5, 'resolved', 'BOOKS20'),
        (4, 1, 21, 5, 'open', 'SNKR10'),
        (6, 2, 22, 5, 'open', NULL),
        (8, 3, 23, 7, 'open', NULL),
        (9, 3, 23, 5, 'open', NULL);
    INSERT INTO messages (id, conversation_id, author_id, payload, status, created_at,
                          send_at, sent_at, attempts, idempotency_key) VALUES
        (1, 3, 22, 'Your books are here', 'sent', '2020-12-03T15:00:00Z',
         '2020-12-03T15:00:00Z', '2020-12-03T15:00:00Z', 1, NULL),
        (2, 3, 5, 'Thanks!', 'received', '2020-12-03T15:20:00Z', NULL, NULL, 0, NULL),
        (3, 4, 5, 'Any discount?', 'received', '2020-12-03T15:20:00Z', NULL, NULL, 0, NULL),
        (4, 4, 21, 'Sure << username >>', 'new', '2020-12-03T15:20:00Z',
         '2026-11-25T15:00:00Z', NULL, 0, 'k4'),
        (5, 9, 5, 'Matcha please', 'received', '2020-12-03T15:20:00Z', NULL, NULL, 0, NULL),
        (6, 8, 23, 'Hello', 'sent', '2020-12-03T15:00:00Z', '2020-12-03T15:00:00Z',
         '2020-12-03T15:00:00Z', 1, NULL),
        (7, 2, 7, 'Stop please', 'received', '2020-12-03T15:20:00Z', NULL, NULL, 0, NULL);
    SELECT setval(pg_get_serial_sequence('stores', 'id'), 3);
    SELECT setval(pg_get_serial_sequence('conversations', 'id'), 9);
    SELECT setval('messages_id_seq', 7);";

/// A database of the second schema whose clients have conversations in several stores
/// upgrades to clients per store: one client per store, each conversation still reaching
/// the same person.
#[tokio::test]
async fn shared_clients_become_one_client_per_store() {
    let Some((options, _guard)) = fresh_database().await else {
        return;
    };
    let pool = migrated_to(&options, 2).await;
    sqlx::raw_sql(SHARED_CLIENTS).execute(&pool).await.unwrap();
    pool.close().await;

    let storage = PgStorage::connect_with(options).await.unwrap();
    scenarios::split_upgraded(&storage, 31).await;
}

/// Clients but no store: the upgrade makes one to hold them.
#[tokio::test]
async fn storeless_clients_get_a_store() {
    let Some((options, _guard)) = fresh_database().await else {
        return;
    };
    let pool = migrated_to(&options, 2).await;
    sqlx::raw_sql(
        "INSERT INTO users (id, role, name, email, email_key)
         VALUES (1, 'client', 'Ann', 'Ann@example.com', 'ann@example.com')",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let storage = PgStorage::connect_with(options).await.unwrap();
    scenarios::storeless_clients_upgraded(&storage).await;
}

/// Counts the calls of a `watch_due` callback.
async fn counter(storage: &dyn Storage) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let on_due = Arc::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    storage.watch_due(on_due).await.unwrap();
    calls
}

/// Waits until `calls` is above `before`, for 10 s at most.
async fn called_after(calls: &AtomicUsize, before: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls.load(Ordering::SeqCst) <= before {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The connections of this database's listeners.
async fn listeners(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'cartloop-due-listener'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A message written through one server wakes the dispatchers of another (`NOTIFY`), also
/// after the listener's connection was killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_messages_wake_other_servers() {
    let Some((options, _guard)) = fresh_database().await else {
        return;
    };
    let watching = PgStorage::connect_with(options.clone()).await.unwrap();
    let writing = PgStorage::connect_with(options).await.unwrap();
    writing.import(&demo_data()).await.unwrap();
    let calls = counter(&watching).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while listeners(writing.pool()).await == 0 {
        assert!(Instant::now() < deadline, "the listener never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let due = |payload: &str| scenarios::operator_message(payload, scenarios::nine_am_chicago());
    // A listener that (re)connects calls back once, for what it may have missed: wait for
    // that call, so that only the insert counts after it.
    called_after(&calls, 0, "the wake-up of a listener that connected").await;
    let before = calls.load(Ordering::SeqCst);
    writing.insert_message(due("first")).await.unwrap();
    called_after(&calls, before, "a message inserted by another server").await;
    let after_first = calls.load(Ordering::SeqCst);

    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'cartloop-due-listener'",
    )
    .fetch_all(writing.pool())
    .await
    .unwrap();
    assert_eq!(terminated, [true]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while listeners(writing.pool()).await == 0 {
        assert!(Instant::now() < deadline, "the listener never reconnected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    called_after(
        &calls,
        after_first,
        "the wake-up of the listener that reconnected",
    )
    .await;
    let before = calls.load(Ordering::SeqCst);
    writing.insert_message(due("second")).await.unwrap();
    called_after(
        &calls,
        before,
        "a message inserted after the listener reconnected",
    )
    .await;

    // Dropping the storage stops its listener.
    drop(watching);
    let deadline = Instant::now() + Duration::from_secs(10);
    while listeners(writing.pool()).await != 0 {
        assert!(
            Instant::now() < deadline,
            "the listener outlived its storage"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn list_pages_match_the_reference() {
    let Some(storage) = fresh().await else {
        return;
    };
    scenarios::list_pages_match_the_reference(Arc::new(storage.storage.clone())).await;
}

/// A snapshot waits for the inserts in flight: a message whose id was taken before the
/// snapshot cannot commit after it and count in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_wait_for_inserts_in_flight() {
    let Some(storage) = fresh().await else {
        return;
    };
    storage.import(&demo_data()).await.unwrap();
    let mut writer = storage.storage.pool().begin().await.unwrap();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, author_id, payload, status, created_at) \
         VALUES (1, 27, 'in flight', 'received', now()) RETURNING id",
    )
    .fetch_one(&mut *writer)
    .await
    .unwrap();
    let storage = Arc::new(storage.storage.clone());
    let snapshot = tokio::spawn({
        let storage = storage.clone();
        async move { storage.snapshot().await.unwrap() }
    });
    // The snapshot's statement waits for the writer's lock: seen by PostgreSQL itself, not
    // guessed from a pause.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(storage.pool())
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(!snapshot.is_finished(), "the snapshot did not wait");
        assert!(
            Instant::now() < deadline,
            "the snapshot never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!snapshot.is_finished(), "the snapshot did not wait");
    writer.commit().await.unwrap();
    let snapshot = snapshot.await.unwrap();
    assert_eq!(snapshot.max_message.0, id);
}

#[tokio::test]
async fn import_is_all_or_nothing() {
    let Some(storage) = fresh().await else {
        return;
    };
    scenarios::import_is_all_or_nothing(Arc::new(storage.storage.clone())).await;
}

#[tokio::test]
async fn ids_continue_after_import() {
    let Some(storage) = fresh().await else {
        return;
    };
    scenarios::ids_continue_after_import(Arc::new(storage.storage.clone())).await;
}

#[tokio::test]
async fn an_unknown_stored_zone_is_an_error() {
    let Some(storage) = fresh().await else {
        return;
    };
    storage
        .import(&cartloop_core::demo::demo_data())
        .await
        .unwrap();
    sqlx::query("UPDATE users SET time_zone = 'Mars/Olympus_Mons' WHERE id = 27")
        .execute(storage.storage.pool())
        .await
        .unwrap();
    let err = storage.conversation(ConversationId(1)).await.unwrap_err();
    assert!(matches!(err, StorageError::Other(_)), "{err:?}");
    assert!(
        err.detail().contains("Mars/Olympus_Mons"),
        "{}",
        err.detail()
    );
}

/// Nothing listens on port 1: every call fails as `Unavailable` within the acquire timeout.
#[tokio::test]
async fn an_unreachable_server_is_unavailable_not_a_hang() {
    let url = "postgres://postgres@127.0.0.1:1/x";
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy(url)
        .unwrap();
    let storage = PgStorage::from_pool(pool);
    let started = Instant::now();
    let err = storage.ping().await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    let err = storage
        .claim_due(
            chrono::Utc::now(),
            Duration::from_secs(60),
            ClaimLimit::batch(10),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // The same through `connect`, with its default 5 s acquire timeout.
    let started = Instant::now();
    let err = cartloop_sqlx::connect(url).await.err();
    assert!(matches!(err, Some(StorageError::Unavailable(_))), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_closed_pool_is_unavailable() {
    let Some(storage) = fresh().await else {
        return;
    };
    storage.storage.pool().close().await;
    let err = storage.ping().await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
}

/// Event ids follow commit order across servers although writers no longer take turns:
/// while two storages on one database write 400 chats at once, a reader tailing the log
/// through either never sees an id below one it saw, and in the end has every event, its
/// ids without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_ids_follow_commit_order_across_servers() {
    use cartloop_core::event::EventId;
    use cartloop_core::ports::EventFilter;
    let Some((a, b, _guard)) = two_on_one_database().await else {
        return;
    };
    a.import(&demo_data()).await.unwrap();
    let start = a.last_event_id().await.unwrap();
    let writers: Vec<_> = (0..400)
        .map(|n| {
            let storage = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let message = scenarios::operator_message(
                    &format!("message {n}"),
                    scenarios::nine_am_chicago(),
                );
                storage.insert_message(message).await.unwrap();
            })
        })
        .collect();
    let mut seen: Vec<EventId> = Vec::new();
    let mut after = start;
    let mut turn = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 400 {
        assert!(Instant::now() < deadline, "only {} events seen", seen.len());
        let reader = if turn % 2 == 0 { &a } else { &b };
        turn += 1;
        let page = reader
            .events_after(after, &EventFilter::default(), 50)
            .await
            .unwrap();
        for event in page {
            assert!(event.id > after, "{:?} after {after:?}", event.id);
            after = event.id;
            seen.push(event.id);
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(a.last_event_id().await.unwrap(), after, "none left unread");
    let expected: Vec<EventId> = (start.0 + 1..=start.0 + 400).map(EventId).collect();
    assert_eq!(seen, expected, "every id once, in order, no gap");
}
