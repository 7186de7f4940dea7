//! `PgStorage` against the storage contract and the scenarios, each test on a fresh
//! database. Needs `CARTLOOP_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`),
//! a role allowed to create databases; without it the tests are skipped, except on CI.

mod common;

use cartloop_core::ids::ConversationId;
use cartloop_core::ports::{ClaimLimit, Storage, StorageError};
use cartloop_sqlx::PgStorage;
use common::postgres::{fresh, fresh_database, DropDatabase};
use common::scenarios;
use sqlx::postgres::PgPoolOptions;
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
    scenarios::concurrent_inserts(Arc::new(storage)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_idempotent_inserts() {
    let Some(storage) = fresh().await else {
        return;
    };
    scenarios::concurrent_idempotent_inserts(Arc::new(storage)).await;
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
    scenarios::claims_merge_expired_leases_in_due_order(Arc::new(storage)).await;
}

#[tokio::test]
async fn import_is_all_or_nothing() {
    let Some(storage) = fresh().await else {
        return;
    };
    scenarios::import_is_all_or_nothing(Arc::new(storage)).await;
}

#[tokio::test]
async fn ids_continue_after_import() {
    let Some(storage) = fresh().await else {
        return;
    };
    scenarios::ids_continue_after_import(Arc::new(storage)).await;
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
    assert!(
        matches!(&err, StorageError::Other(m) if m.contains("Mars/Olympus_Mons")),
        "{err:?}"
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
