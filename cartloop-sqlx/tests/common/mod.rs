//! Fresh databases for the tests, and scenarios both backends run.
#![allow(dead_code)] // Each test binary uses a part.

pub mod scenarios;

use async_trait::async_trait;
use cartloop_core::active_hours::ActiveHours;
use cartloop_core::domain::{
    ClaimToken, Claimed, Client, ClientChanges, Conversation, ConversationContext,
    ConversationStatus, Dataset, Message, NewClient, NewConversation, NewMessage, NewOperator,
    NewStore, Operator, Store,
};
use cartloop_core::email_address::EmailAddress;
use cartloop_core::ids::{ConversationId, MessageId, StoreId, UserId};
use cartloop_core::ports::{
    ActivityKey, Backlog, ClaimLimit, ConversationFilter, ConversationSummary, DueCallback,
    ImportSummary, Inserted, Page, Snapshot, Storage, StorageError, Transition,
};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A storage together with what must live exactly as long as it: the temporary directory of
/// its SQLite file, or a guard that drops its PostgreSQL database.
pub struct Guarded<S> {
    pub storage: S,
    // Declared after `storage`, so dropped after it.
    _guard: Box<dyn Send + Sync>,
}

impl<S> Guarded<S> {
    pub fn new(storage: S, guard: impl Send + Sync + 'static) -> Self {
        Self {
            storage,
            _guard: Box::new(guard),
        }
    }
}

/// Every call goes to the storage, so that the conformance suite can take a `Guarded`.
#[async_trait]
impl<S: Storage> Storage for Guarded<S> {
    async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<Option<ConversationContext>, StorageError> {
        self.storage.conversation(id).await
    }

    async fn conversation_page(
        &self,
        id: ConversationId,
        page: Page,
    ) -> Result<Option<(ConversationContext, Vec<Message>)>, StorageError> {
        self.storage.conversation_page(id, page).await
    }

    async fn snapshot(&self) -> Result<Snapshot, StorageError> {
        self.storage.snapshot().await
    }

    async fn list_conversations(
        &self,
        filter: ConversationFilter,
        snapshot: Snapshot,
        after: Option<ActivityKey>,
        limit: u32,
    ) -> Result<Vec<ConversationSummary>, StorageError> {
        self.storage
            .list_conversations(filter, snapshot, after, limit)
            .await
    }

    async fn create_conversation(
        &self,
        conversation: NewConversation,
    ) -> Result<Conversation, StorageError> {
        self.storage.create_conversation(conversation).await
    }

    async fn set_conversation_status(
        &self,
        id: ConversationId,
        status: ConversationStatus,
    ) -> Result<bool, StorageError> {
        self.storage.set_conversation_status(id, status).await
    }

    async fn create_store(&self, store: NewStore) -> Result<Store, StorageError> {
        self.storage.create_store(store).await
    }

    async fn store(&self, id: StoreId) -> Result<Option<Store>, StorageError> {
        self.storage.store(id).await
    }

    async fn set_store_hours(
        &self,
        id: StoreId,
        hours: Option<ActiveHours>,
    ) -> Result<Option<Store>, StorageError> {
        self.storage.set_store_hours(id, hours).await
    }

    async fn create_operator(&self, operator: NewOperator) -> Result<Operator, StorageError> {
        self.storage.create_operator(operator).await
    }

    async fn operator(&self, id: UserId) -> Result<Option<Operator>, StorageError> {
        self.storage.operator(id).await
    }

    async fn create_client(&self, client: NewClient) -> Result<Client, StorageError> {
        self.storage.create_client(client).await
    }

    async fn client(&self, id: UserId) -> Result<Option<Client>, StorageError> {
        self.storage.client(id).await
    }

    async fn client_by_email(&self, email: &EmailAddress) -> Result<Option<Client>, StorageError> {
        self.storage.client_by_email(email).await
    }

    async fn update_client(
        &self,
        id: UserId,
        changes: ClientChanges,
    ) -> Result<Option<Client>, StorageError> {
        self.storage.update_client(id, changes).await
    }

    async fn unsubscribe_client(
        &self,
        id: UserId,
        at: DateTime<Utc>,
    ) -> Result<Option<Client>, StorageError> {
        self.storage.unsubscribe_client(id, at).await
    }

    async fn insert_message(&self, message: NewMessage) -> Result<Inserted, StorageError> {
        self.storage.insert_message(message).await
    }

    async fn message(&self, id: MessageId) -> Result<Option<Message>, StorageError> {
        self.storage.message(id).await
    }

    async fn cancel_message(&self, id: MessageId) -> Result<Transition, StorageError> {
        self.storage.cancel_message(id).await
    }

    async fn retry_message(
        &self,
        id: MessageId,
        at: DateTime<Utc>,
    ) -> Result<Transition, StorageError> {
        self.storage.retry_message(id, at).await
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: ClaimLimit,
    ) -> Result<Vec<Claimed>, StorageError> {
        self.storage.claim_due(now, lease, limit).await
    }

    async fn renew_leases(
        &self,
        tokens: &[ClaimToken],
        until: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        self.storage.renew_leases(tokens, until).await
    }

    async fn mark_sent(&self, token: ClaimToken, at: DateTime<Utc>) -> Result<bool, StorageError> {
        self.storage.mark_sent(token, at).await
    }

    async fn reschedule(
        &self,
        token: ClaimToken,
        at: DateTime<Utc>,
        error: Option<String>,
    ) -> Result<bool, StorageError> {
        self.storage.reschedule(token, at, error).await
    }

    async fn mark_failed(&self, token: ClaimToken, error: String) -> Result<bool, StorageError> {
        self.storage.mark_failed(token, error).await
    }

    async fn mark_suppressed(
        &self,
        token: ClaimToken,
        reason: String,
    ) -> Result<bool, StorageError> {
        self.storage.mark_suppressed(token, reason).await
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        self.storage.next_due().await
    }

    async fn backlog(&self, now: DateTime<Utc>) -> Result<Backlog, StorageError> {
        self.storage.backlog(now).await
    }

    async fn watch_due(&self, on_due: DueCallback) -> Result<(), StorageError> {
        self.storage.watch_due(on_due).await
    }

    async fn import(&self, data: &Dataset) -> Result<ImportSummary, StorageError> {
        self.storage.import(data).await
    }

    async fn secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>, StorageError> {
        self.storage.secret(name, candidate).await
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.storage.ping().await
    }
}

#[cfg(feature = "sqlite")]
pub mod sqlite {
    use super::Guarded;
    use cartloop_sqlx::SqliteStorage;

    /// A fresh database file in a new temporary directory, and its URL.
    pub fn fresh_url() -> (String, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("cartloop.db").display());
        (url, dir)
    }

    /// A migrated storage on a fresh database file, removed when dropped.
    pub async fn fresh() -> Option<Guarded<SqliteStorage>> {
        let (url, dir) = fresh_url();
        let storage = SqliteStorage::connect(&url).await.expect("open SQLite");
        Some(Guarded::new(storage, dir))
    }
}

#[cfg(feature = "postgres")]
pub mod postgres {
    use super::Guarded;
    use cartloop_sqlx::PgStorage;
    use sqlx::postgres::PgConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    use std::str::FromStr;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The server the tests create their databases on, or `None` to skip.
    ///
    /// `CARTLOOP_TEST_POSTGRES_URL`; unset, the tests are skipped, except on CI (`CI=true`)
    /// where they use `postgres://postgres@127.0.0.1:5432/test`.
    pub fn admin_url() -> Option<String> {
        match std::env::var("CARTLOOP_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ if std::env::var("CI").as_deref() == Ok("true") => {
                Some("postgres://postgres@127.0.0.1:5432/test".to_owned())
            }
            _ => {
                eprintln!("skipped: set CARTLOOP_TEST_POSTGRES_URL");
                None
            }
        }
    }

    /// Drops its database when dropped.
    pub struct DropDatabase {
        admin: PgConnectOptions,
        name: String,
    }

    impl Drop for DropDatabase {
        fn drop(&mut self) {
            let admin = self.admin.clone();
            let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            // Drop cannot await: run the statement on a runtime of its own.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let mut connection = admin.connect().await?;
                    sqlx::query(&statement).execute(&mut connection).await?;
                    connection.close().await
                })
            })
            .join();
            if let Ok(Err(e)) = dropped {
                eprintln!("could not drop test database {}: {e}", self.name);
            }
        }
    }

    /// A new, empty database (not migrated): options to connect to it and its guard.
    pub async fn fresh_database() -> Option<(PgConnectOptions, DropDatabase)> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let admin = PgConnectOptions::from_str(&admin_url()?).expect("valid PostgreSQL URL");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "cartloop_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut connection = admin.connect().await.expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut connection)
            .await
            .expect("create test database");
        connection.close().await.expect("close");
        let options = admin.clone().database(&name);
        Some((options, DropDatabase { admin, name }))
    }

    /// A migrated storage on a fresh database, dropped when the storage is.
    pub async fn fresh() -> Option<Guarded<PgStorage>> {
        let (options, guard) = fresh_database().await?;
        let storage = PgStorage::connect_with(options)
            .await
            .expect("connect to the test database");
        Some(Guarded::new(storage, guard))
    }
}
