//! [`SqliteStorage`]: the embedded default, one database file.
//!
//! Instants are stored as INTEGER microseconds since the Unix epoch, so SQL compares them as
//! numbers. SQLite has one writer at a time: claiming runs in a `BEGIN IMMEDIATE`
//! transaction, which takes the write lock before it reads, so two dispatchers (tasks or
//! processes on the same file) never claim the same message.

use crate::error::storage_error;
use crate::rows::{self, Columns};
use crate::sql::{self, expired_leases, message_columns, new_due};
use crate::ACQUIRE_TIMEOUT;
use async_trait::async_trait;
use cartloop_core::demo::DemoData;
use cartloop_core::domain::{ClaimToken, Claimed, ConversationContext, Message, NewMessage};
use cartloop_core::ids::{ConversationId, MessageId};
use cartloop_core::ports::{ClaimLimit, ImportSummary, Inserted, Page, Storage, StorageError};
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::Row;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The SQLite schema, embedded in the binary.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The messages a claim at `$1` takes, at most `$2`, oldest due first. SQLite wants the
/// ordered and limited halves of a compound select in subqueries.
const CLAIMABLE: &str = concat!(
    "SELECT due_id FROM (SELECT * FROM (",
    new_due!(),
    ") UNION ALL SELECT * FROM (",
    expired_leases!(),
    ")) ORDER BY due_at, due_id LIMIT $2"
);

/// How long a statement waits for another connection's write lock before failing with
/// [`StorageError::Unavailable`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// [`Storage`] on a SQLite database file.
///
/// Cloning is cheap and shares the connection pool.
#[derive(Debug, Clone)]
pub struct SqliteStorage {
    pool: SqlitePool,
    /// Taken by every write. SQLite has one writer at a time; writers of this process queue
    /// here instead of in SQLite's busy handler, which polls with sleeps of up to 100 ms and
    /// so adds tail latency under load. Other processes on the same file still wait in the
    /// busy handler.
    writer: Arc<Mutex<()>>,
}

impl SqliteStorage {
    /// Opens (creating it if missing) the database at `url`, e.g. `sqlite://cartloop.db`,
    /// and applies the migrations.
    ///
    /// # Errors
    /// [`StorageError::Other`] for a malformed URL or a failed migration,
    /// [`StorageError::Unavailable`] when the file cannot be opened.
    ///
    /// # Example
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use cartloop_core::ports::Storage;
    /// let dir = tempfile::tempdir().unwrap();
    /// let url = format!("sqlite://{}", dir.path().join("cartloop.db").display());
    /// let storage = cartloop_sqlx::SqliteStorage::connect(&url).await?;
    /// storage.ping().await?;
    /// # Ok::<(), cartloop_core::ports::StorageError>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let options = SqliteConnectOptions::from_str(url).map_err(storage_error)?;
        Self::connect_with(options).await
    }

    /// Like [`connect`](Self::connect), from parsed options. Always sets: create if
    /// missing, WAL journal, a 5 s busy timeout and foreign keys on.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(options: SqliteConnectOptions) -> Result<Self, StorageError> {
        // SQLite opens a private, temporary database on each connection for an empty file
        // name: the pool would see a different, unmigrated database on every connection.
        if options.get_filename().as_os_str().is_empty() {
            return Err(StorageError::Other(
                "the SQLite URL names no database file: use e.g. sqlite://cartloop.db \
                 (or sqlite::memory: for a database that lives as long as the process)"
                    .to_owned(),
            ));
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // Connections are kept open: they are cheap, and an in-memory database lives only
        // as long as one of its connections.
        let pool = SqlitePoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(storage_error)?;
        let storage = Self::from_pool(pool);
        storage.migrate().await?;
        Ok(storage)
    }

    /// A storage on an existing pool. Runs no migrations (see [`migrate`](Self::migrate))
    /// and does not connect. The pool's connections should have foreign keys on (sqlx's
    /// default) and a busy timeout.
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self {
            pool,
            writer: Arc::new(Mutex::new(())),
        }
    }

    /// Applies the pending migrations of [`SQLITE_MIGRATOR`].
    ///
    /// # Errors
    /// [`StorageError::Other`] when a migration fails or the database was migrated by a
    /// newer version; [`StorageError::Unavailable`] without a connection.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        SQLITE_MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| storage_error(e.into()))
    }

    /// The connection pool, e.g. to close it on shutdown.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl Columns for SqliteRow {
    fn int(&self, column: &str) -> Result<i64, StorageError> {
        self.try_get(column).map_err(storage_error)
    }

    fn int32(&self, column: &str) -> Result<i32, StorageError> {
        self.try_get(column).map_err(storage_error)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, StorageError> {
        self.try_get(column).map_err(storage_error)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StorageError> {
        let micros: Option<i64> = self.try_get(column).map_err(storage_error)?;
        micros
            .map(|micros| {
                DateTime::from_timestamp_micros(micros).ok_or_else(|| {
                    StorageError::Other(format!("column {column}: instant {micros} out of range"))
                })
            })
            .transpose()
    }
}

/// How an instant is stored.
fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<Option<ConversationContext>, StorageError> {
        sqlx::query(sql::CONVERSATION)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage_error)?
            .as_ref()
            .map(rows::conversation_context)
            .transpose()
    }

    async fn messages(&self, id: ConversationId, page: Page) -> Result<Vec<Message>, StorageError> {
        let mut messages = sqlx::query(sql::MESSAGES_PAGE)
            .bind(id.0)
            .bind(page.before.map_or(i64::MAX, |before| before.0))
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(storage_error)?
            .iter()
            .map(rows::message)
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(messages)
    }

    async fn insert_message(&self, message: NewMessage) -> Result<Inserted, StorageError> {
        let _writing = self.writer.lock().await;
        let inserted = sqlx::query(sql::INSERT_MESSAGE)
            .bind(message.conversation_id.0)
            .bind(message.author_id.0)
            .bind(&message.payload)
            .bind(message.status.as_str())
            .bind(micros(message.created_at))
            .bind(message.send_at.map(micros))
            .bind(&message.idempotency_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| match storage_error(e) {
                StorageError::NotFound(_) => StorageError::NotFound(format!(
                    "conversation {} or user {}",
                    message.conversation_id, message.author_id
                )),
                other => other,
            })?;
        if let Some(row) = inserted {
            return Ok(Inserted {
                message: rows::message(&row)?,
                created: true,
            });
        }
        // The key was taken. Writes are serialized, so the message holding it is committed.
        let row = sqlx::query(sql::MESSAGE_BY_KEY)
            .bind(&message.idempotency_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage_error)?
            .ok_or_else(|| StorageError::Other("idempotency key taken by no message".into()))?;
        Ok(Inserted {
            message: rows::message(&row)?,
            created: false,
        })
    }

    async fn message(&self, id: MessageId) -> Result<Option<Message>, StorageError> {
        sqlx::query(sql::MESSAGE)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage_error)?
            .as_ref()
            .map(rows::message)
            .transpose()
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: ClaimLimit,
    ) -> Result<Vec<Claimed>, StorageError> {
        let _writing = self.writer.lock().await;
        let lease_until = crate::lease_end(now, lease)?;
        // The write lock is taken before reading, so no other claim reads the same rows,
        // and no other claim counts the hourly cap before this one has taken its share.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(storage_error)?;
        let allowed = match limit.hourly_cap {
            None => limit.batch,
            Some(_) => {
                let used = sqlx::query(sql::CAP_USED)
                    .bind(micros(now - chrono::Duration::hours(1)))
                    .bind(micros(now))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(storage_error)?
                    .int("used")?;
                limit.allowed(u64::try_from(used).unwrap_or(0))
            }
        };
        if allowed == 0 {
            return Ok(Vec::new());
        }
        let due: Vec<i64> = sqlx::query(CLAIMABLE)
            .bind(micros(now))
            .bind(i64::from(allowed))
            .fetch_all(&mut *tx)
            .await
            .map_err(storage_error)?
            .iter()
            .map(|row| row.int("due_id"))
            .collect::<Result<_, _>>()?;
        let mut claimed = Vec::with_capacity(due.len());
        for id in due {
            let row = sqlx::query(concat!(
                "UPDATE messages SET status = 'sending', attempts = attempts + 1, \
                 lease_until = $2 WHERE id = $1 RETURNING ",
                message_columns!()
            ))
            .bind(id)
            .bind(micros(lease_until))
            .fetch_one(&mut *tx)
            .await
            .map_err(storage_error)?;
            let message = rows::message(&row)?;
            claimed.push(Claimed {
                token: ClaimToken {
                    message_id: message.id,
                    attempt: message.attempts,
                },
                message,
            });
        }
        tx.commit().await.map_err(storage_error)?;
        Ok(claimed)
    }

    async fn mark_sent(&self, token: ClaimToken, at: DateTime<Utc>) -> Result<bool, StorageError> {
        let _writing = self.writer.lock().await;
        let result = sqlx::query(sql::MARK_SENT)
            .bind(token.message_id.0)
            .bind(i64::from(token.attempt))
            .bind(micros(at))
            .execute(&self.pool)
            .await
            .map_err(storage_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn reschedule(
        &self,
        token: ClaimToken,
        at: DateTime<Utc>,
        error: Option<String>,
    ) -> Result<bool, StorageError> {
        let _writing = self.writer.lock().await;
        let result = sqlx::query(sql::RESCHEDULE)
            .bind(token.message_id.0)
            .bind(i64::from(token.attempt))
            .bind(micros(at))
            .bind(error)
            .execute(&self.pool)
            .await
            .map_err(storage_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn mark_failed(&self, token: ClaimToken, error: String) -> Result<bool, StorageError> {
        let _writing = self.writer.lock().await;
        let result = sqlx::query(sql::MARK_FAILED)
            .bind(token.message_id.0)
            .bind(i64::from(token.attempt))
            .bind(error)
            .execute(&self.pool)
            .await
            .map_err(storage_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        sqlx::query(sql::NEXT_DUE)
            .fetch_one(&self.pool)
            .await
            .map_err(storage_error)?
            .opt_time("next_due")
    }

    async fn import(&self, data: &DemoData) -> Result<ImportSummary, StorageError> {
        let _writing = self.writer.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(storage_error)?;
        let mut inserted = 0;
        for store in &data.stores {
            inserted += sqlx::query(sql::IMPORT_STORE)
                .bind(store.id.0)
                .bind(&store.name)
                .bind(store.time_zone.name())
                .bind(&store.sender_email)
                .execute(&mut *tx)
                .await
                .map_err(storage_error)?
                .rows_affected();
        }
        for operator in &data.operators {
            inserted += sqlx::query(sql::IMPORT_OPERATOR)
                .bind(operator.id.0)
                .bind(&operator.name)
                .bind(operator.store_id.0)
                .bind(&operator.group)
                .execute(&mut *tx)
                .await
                .map_err(storage_error)?
                .rows_affected();
        }
        for client in &data.clients {
            inserted += sqlx::query(sql::IMPORT_CLIENT)
                .bind(client.id.0)
                .bind(&client.name)
                .bind(&client.email)
                .bind(client.time_zone.map(|tz| tz.name()))
                .execute(&mut *tx)
                .await
                .map_err(storage_error)?
                .rows_affected();
        }
        for conversation in &data.conversations {
            inserted += sqlx::query(sql::IMPORT_CONVERSATION)
                .bind(conversation.id.0)
                .bind(conversation.store_id.0)
                .bind(conversation.operator_id.0)
                .bind(conversation.client_id.0)
                .bind(conversation.status.as_str())
                .bind(&conversation.discount_code)
                .execute(&mut *tx)
                .await
                .map_err(storage_error)?
                .rows_affected();
        }
        for message in &data.messages {
            inserted += sqlx::query(sql::IMPORT_MESSAGE)
                .bind(message.id.0)
                .bind(message.conversation_id.0)
                .bind(message.author_id.0)
                .bind(&message.payload)
                .bind(message.status.as_str())
                .bind(micros(message.created_at))
                .bind(message.send_at.map(micros))
                .bind(message.sent_at.map(micros))
                .bind(i64::from(message.attempts))
                .bind(&message.last_error)
                .execute(&mut *tx)
                .await
                .map_err(storage_error)?
                .rows_affected();
        }
        tx.commit().await.map_err(storage_error)?;
        Ok(ImportSummary { inserted })
    }

    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query(sql::PING)
            .execute(&self.pool)
            .await
            .map_err(storage_error)?;
        Ok(())
    }
}
