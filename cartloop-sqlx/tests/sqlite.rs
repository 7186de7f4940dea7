//! `SqliteStorage` against the storage contract and the scenarios, each test on a fresh
//! temporary database file.

mod common;

use cartloop_core::ids::ConversationId;
use cartloop_core::ports::{Storage, StorageError};
use cartloop_sqlx::SqliteStorage;
use common::scenarios;
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
    assert!(
        matches!(&err, StorageError::Other(m) if m.contains("Mars/Olympus_Mons")),
        "{err:?}"
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
