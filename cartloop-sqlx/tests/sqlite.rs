//! `SqliteStorage` against the storage contract and the scenarios, each test on a fresh
//! temporary database file.

mod common;

use cartloop_core::ids::ConversationId;
use cartloop_core::ports::prelude::*;
use cartloop_core::ports::StorageError;
use cartloop_sqlx::{SqliteStorage, SQLITE_MIGRATOR};
use common::scenarios;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

cartloop_core::storage_conformance_tests!(crate::common::sqlite::fresh());

/// Two storages (two pools) on one fresh file, as two processes would have.
async fn two_on_one_file() -> (Arc<dyn Storage>, Arc<dyn Storage>, tempfile::TempDir) {
    let (url, dir) = common::sqlite::fresh_url();
    let a = SqliteStorage::connect(&url).await.unwrap();
    let b = SqliteStorage::connect(&url).await.unwrap();
    (Arc::new(a), Arc::new(b), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimed_and_died() {
    let (a, b, _dir) = two_on_one_file().await;
    scenarios::claimed_and_died(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts() {
    let (a, _, _dir) = two_on_one_file().await;
    scenarios::concurrent_inserts(a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_inserts_answer_each_caller() {
    let (a, _, _dir) = two_on_one_file().await;
    scenarios::grouped_inserts_answer_each_caller(a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_sends_answer_each_caller() {
    let (a, _, _dir) = two_on_one_file().await;
    scenarios::grouped_sends_answer_each_caller(a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_reads_answer_each_caller() {
    let (a, _, _dir) = two_on_one_file().await;
    scenarios::grouped_reads_answer_each_caller(a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_idempotent_inserts() {
    let (a, _, _dir) = two_on_one_file().await;
    scenarios::concurrent_idempotent_inserts(a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_dispatchers() {
    let (a, b, _dir) = two_on_one_file().await;
    scenarios::racing_dispatchers(a, b, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capped_racing_dispatchers() {
    let (a, b, _dir) = two_on_one_file().await;
    scenarios::capped_racing_dispatchers(a, b).await;
}

#[tokio::test]
async fn claims_merge_expired_leases_in_due_order() {
    let (a, _, _dir) = two_on_one_file().await;
    scenarios::claims_merge_expired_leases_in_due_order(a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_idempotency_per_author() {
    let (a, _, _dir) = two_on_one_file().await;
    scenarios::concurrent_idempotency_per_author(a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_race_claims() {
    let (a, b, _dir) = two_on_one_file().await;
    scenarios::cancels_race_claims(a, b, 20).await;
}

/// Rows as the first schema stored them (instants in microseconds), for the upgrade test.
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
        (1, 1, 24, 'Hi << username >>', 'sent', 1607007600000000, 1607007600000000,
         1607007600000000, 1, NULL),
        (2, 1, 27, 'Hi, a discount?', 'received', 1607008800000000, NULL, NULL, 0, NULL),
        (3, 1, 24, 'Sure {{ username }}', 'new', 1795618800000000, 1795618800000000, NULL,
         0, 'k1');";

/// A pool on the database at `url` with only the first `count` released migrations
/// applied: a database as an older version left it.
async fn migrated_to(url: &str, count: usize) -> sqlx::SqlitePool {
    let dir = tempfile::tempdir().unwrap();
    for released in SQLITE_MIGRATOR.iter().take(count) {
        let file = format!(
            "{}_{}.sql",
            released.version,
            released.description.replace(' ', "_")
        );
        std::fs::write(dir.path().join(file), released.sql.as_ref()).unwrap();
    }
    let options = SqliteConnectOptions::from_str(url)
        .unwrap()
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .connect_with(options)
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
    let (url, _dir) = common::sqlite::fresh_url();
    let pool = migrated_to(&url, 1).await;
    sqlx::raw_sql(OLD_ROWS).execute(&pool).await.unwrap();
    pool.close().await;

    let storage = SqliteStorage::connect(&url).await.unwrap();
    scenarios::upgraded(&storage).await;
}

/// Rows as the second schema stored them: clients shared by every store (see
/// `scenarios::split_upgraded`). Bo unsubscribed at 2026-11-01T12:00:00Z; message 4 is due
/// at 2026-11-25T15:00:00Z.
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
         1793534400000000),
        (8, 'client', 'Cy Lone', 'cy@example.com', 'cy@example.com', NULL, NULL),
        (10, 'client', 'Di Solo', 'di@example.com', 'di@example.com', 'Asia/Tokyo', NULL);
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
        (1, 3, 22, 'Your books are here', 'sent', 1607007600000000, 1607007600000000,
         1607007600000000, 1, NULL),
        (2, 3, 5, 'Thanks!', 'received', 1607008800000000, NULL, NULL, 0, NULL),
        (3, 4, 5, 'Any discount?', 'received', 1607008800000000, NULL, NULL, 0, NULL),
        (4, 4, 21, 'Sure << username >>', 'new', 1607008800000000, 1795618800000000, NULL,
         0, 'k4'),
        (5, 9, 5, 'Matcha please', 'received', 1607008800000000, NULL, NULL, 0, NULL),
        (6, 8, 23, 'Hello', 'sent', 1607007600000000, 1607007600000000, 1607007600000000,
         1, NULL),
        (7, 2, 7, 'Stop please', 'received', 1607008800000000, NULL, NULL, 0, NULL);";

/// A database of the second schema whose clients have conversations in several stores
/// upgrades to clients per store: one client per store, each conversation still reaching
/// the same person.
#[tokio::test]
async fn shared_clients_become_one_client_per_store() {
    let (url, _dir) = common::sqlite::fresh_url();
    let pool = migrated_to(&url, 2).await;
    sqlx::raw_sql(SHARED_CLIENTS).execute(&pool).await.unwrap();
    pool.close().await;

    let storage = SqliteStorage::connect(&url).await.unwrap();
    // Above user 23, the largest id.
    scenarios::split_upgraded(&storage, 24).await;
    drop(storage);
    // No row lost its reference on the way.
    let pool = SqlitePoolOptions::new().connect(&url).await.unwrap();
    let orphans = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        orphans.is_empty(),
        "{} rows with a broken reference",
        orphans.len()
    );
}

/// Clients but no store: the upgrade makes one to hold them.
#[tokio::test]
async fn storeless_clients_get_a_store() {
    let (url, _dir) = common::sqlite::fresh_url();
    let pool = migrated_to(&url, 2).await;
    sqlx::raw_sql(
        "INSERT INTO users (id, role, name, email, email_key)
         VALUES (1, 'client', 'Ann', 'Ann@example.com', 'ann@example.com')",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let storage = SqliteStorage::connect(&url).await.unwrap();
    scenarios::storeless_clients_upgraded(&storage).await;
}

#[tokio::test]
async fn list_pages_match_the_reference() {
    let (a, _, _dir) = two_on_one_file().await;
    scenarios::list_pages_match_the_reference(a).await;
}

#[tokio::test]
async fn import_is_all_or_nothing() {
    let (a, _, _dir) = two_on_one_file().await;
    scenarios::import_is_all_or_nothing(a).await;
}

#[tokio::test]
async fn ids_continue_after_import() {
    let (a, _, _dir) = two_on_one_file().await;
    scenarios::ids_continue_after_import(a).await;
}

#[tokio::test]
async fn connect_dispatches_on_the_scheme() {
    let (url, _dir) = common::sqlite::fresh_url();
    let storage = cartloop_sqlx::connect(&url).await.unwrap();
    storage.ping().await.unwrap();
    for url in [
        "mysql://localhost/x",
        "cartloop.db",
        "",
        "sqlite://",
        "sqlite:",
    ] {
        let err = cartloop_sqlx::connect(url).await.err();
        assert!(
            matches!(err, Some(StorageError::Other(_))),
            "{url}: {err:?}"
        );
    }
    // In memory: one database shared by the pool's connections, migrated once.
    let memory = cartloop_sqlx::connect("sqlite::memory:").await.unwrap();
    memory
        .import(&cartloop_core::demo::demo_data())
        .await
        .unwrap();
    assert!(memory
        .conversation(cartloop_core::ids::ConversationId(1))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn an_unknown_stored_zone_is_an_error() {
    let storage = common::sqlite::fresh().await.unwrap();
    storage
        .import(&cartloop_core::demo::demo_data())
        .await
        .unwrap();
    sqlx::query("UPDATE stores SET time_zone = 'Mars/Olympus_Mons' WHERE id = 1")
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

#[tokio::test]
async fn a_closed_pool_is_unavailable() {
    let storage = common::sqlite::fresh().await.unwrap();
    storage.storage.pool().close().await;
    let err = storage.ping().await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn an_exhausted_pool_is_unavailable_not_a_hang() {
    let (url, _dir) = common::sqlite::fresh_url();
    let options = SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect_with(options)
        .await
        .unwrap();
    let storage = SqliteStorage::from_pool(pool.clone());
    storage.migrate().await.unwrap();
    let _held = pool.acquire().await.unwrap();
    let started = Instant::now();
    let err = storage.ping().await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Writes that arrive together are committed together, and one that breaks a constraint
/// (an unknown conversation) fails alone: the others of its group are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_fails_alone_in_its_group() {
    let (a, _, _dir) = two_on_one_file().await;
    a.import(&cartloop_core::demo::demo_data()).await.unwrap();
    let now = chrono::Utc::now();
    let writes: Vec<_> = (0..60)
        .map(|n| {
            let storage = a.clone();
            let mut message = scenarios::operator_message(&format!("group {n}"), now);
            if n % 10 == 0 {
                message.conversation_id = ConversationId(9_999);
            }
            tokio::spawn(async move { storage.insert_message(message).await })
        })
        .collect();
    let mut stored = 0;
    for write in writes {
        match write.await.unwrap() {
            Ok(inserted) => {
                assert!(inserted.created);
                stored += 1;
            }
            Err(StorageError::NotFound(what)) => assert!(what.contains("9999"), "{what}"),
            Err(e) => panic!("{}", e.detail()),
        }
    }
    assert_eq!(stored, 54);
    let page = cartloop_core::ports::Page {
        limit: 1000,
        before: None,
    };
    let (_, messages) = a
        .conversation_page(ConversationId(1), page)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(messages.len(), 3 + 54);
}

/// Callers that give up while their group is committing (a client that hung up, a request
/// timeout) leave no transaction open: the next writer is not locked out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_that_give_up_leave_no_transaction_open() {
    let (a, _, _dir) = two_on_one_file().await;
    a.import(&cartloop_core::demo::demo_data()).await.unwrap();
    let now = chrono::Utc::now();
    for round in 0..20 {
        let writes: Vec<_> = (0..20)
            .map(|n| {
                let storage = a.clone();
                let message = scenarios::operator_message(&format!("r{round} m{n}"), now);
                tokio::spawn(async move {
                    // Gives up after a few microseconds, often mid-commit.
                    let _ = tokio::time::timeout(
                        Duration::from_micros(50 * (n % 5)),
                        storage.insert_message(message),
                    )
                    .await;
                })
            })
            .collect();
        for write in writes {
            write.await.unwrap();
        }
    }
    // A claim takes the write lock at once (BEGIN IMMEDIATE): it would wait for the busy
    // timeout and fail if a connection had been left inside a transaction.
    let started = Instant::now();
    let claimed = a
        .claim_due(
            now + chrono::Duration::seconds(1),
            Duration::from_secs(30),
            cartloop_core::ports::ClaimLimit::batch(1_000),
        )
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!claimed.is_empty());
    a.insert_message(scenarios::operator_message("after", now))
        .await
        .unwrap();
}

/// Claims and imports whose callers give up mid-transaction (a dispatcher stopped, a
/// request timed out) leave no connection inside their transaction: the next writer is
/// not locked out and every pooled connection opens a transaction again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_imports_dropped_mid_way_leave_no_transaction_open() {
    let (a, _, _dir) = two_on_one_file().await;
    a.import(&cartloop_core::demo::demo_data()).await.unwrap();
    let now = chrono::Utc::now();
    for n in 0..200 {
        a.insert_message(scenarios::operator_message(&format!("m{n}"), now))
            .await
            .unwrap();
    }
    let data = cartloop_core::demo::demo_data();
    for round in 0..200u64 {
        let (a, data) = (a.clone(), data.clone());
        let give_up = Duration::from_micros(20 * (round % 15));
        let _ = tokio::time::timeout(give_up, async move {
            if round % 2 == 0 {
                let _ = a
                    .claim_due(
                        now + chrono::Duration::seconds(1),
                        Duration::from_secs(30),
                        cartloop_core::ports::ClaimLimit::batch(3),
                    )
                    .await;
            } else {
                let _ = a.import(&data).await;
            }
        })
        .await;
    }
    let started = Instant::now();
    for _ in 0..20 {
        a.claim_due(
            now + chrono::Duration::seconds(1),
            Duration::from_secs(30),
            cartloop_core::ports::ClaimLimit::batch(1),
        )
        .await
        .unwrap();
        a.insert_message(scenarios::operator_message("after", now))
            .await
            .unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A new file opened by a multi-threaded runtime: the pool opens two connections at once,
/// and before they both switched the file to WAL together, one now and then failed with
/// `database is locked` (the server did not start). Many fresh files, none may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_file_opens_every_time() {
    let dir = tempfile::tempdir().unwrap();
    for n in 0..200 {
        let url = format!("sqlite://{}", dir.path().join(format!("{n}.db")).display());
        let storage = SqliteStorage::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("open #{n}: {e}"));
        storage.pool().close().await;
    }
}
