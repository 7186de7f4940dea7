//! [`PgStorage`]: PostgreSQL, for production and for several servers on one database.
//!
//! Claiming is one statement that locks the due rows with `FOR UPDATE SKIP LOCKED`: servers
//! claiming at the same moment each take different messages, and none waits for another.

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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use std::str::FromStr;
use std::time::Duration;

/// The PostgreSQL schema, embedded in the binary.
pub static PG_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Claims up to `$2` messages due at `$1` with a lease until `$3`; returns each claimed
/// message with the instant it became due. The CTEs that lock are materialized, so that
/// rows are locked and limited exactly once; rows another claim has locked are skipped.
const CLAIM_DUE: &str = concat!(
    "WITH new_due AS MATERIALIZED (",
    new_due!(),
    " FOR UPDATE SKIP LOCKED), \
     expired AS MATERIALIZED (",
    expired_leases!(),
    " FOR UPDATE SKIP LOCKED), \
     due AS (SELECT due_id, due_at FROM new_due \
             UNION ALL SELECT due_id, due_at FROM expired \
             ORDER BY due_at, due_id LIMIT $2) \
     UPDATE messages SET status = 'sending', attempts = attempts + 1, lease_until = $3 \
     FROM due WHERE messages.id = due.due_id \
     RETURNING due.due_at, ",
    message_columns!()
);

/// The advisory lock that capped claims take in turn: "cartloop" in ASCII.
const HOURLY_CAP_LOCK: i64 = 0x6361_7274_6c6f_6f70;

/// Moves the id sequence past explicitly imported ids, so later inserts do not collide.
const BUMP_MESSAGE_IDS: &str = "\
    SELECT setval(pg_get_serial_sequence('messages', 'id')::regclass, max_id) \
    FROM (SELECT MAX(id) AS max_id FROM messages) AS imported \
    WHERE max_id > COALESCE( \
        pg_sequence_last_value(pg_get_serial_sequence('messages', 'id')::regclass), 0)";

/// [`Storage`] on PostgreSQL.
///
/// Cloning is cheap and shares the connection pool.
#[derive(Debug, Clone)]
pub struct PgStorage {
    pool: PgPool,
}

impl PgStorage {
    /// Connects to `url`, e.g. `postgres://user:pass@host:5432/cartloop`, and applies the
    /// migrations. Waits at most 5 s for a connection.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when the server cannot be reached,
    /// [`StorageError::Other`] for a malformed URL, refused credentials or a failed migration.
    ///
    /// # Example
    /// ```no_run
    /// # async fn run() -> Result<(), cartloop_core::ports::StorageError> {
    /// use cartloop_core::ports::Storage;
    /// let storage = cartloop_sqlx::PgStorage::connect("postgres://postgres@127.0.0.1/cartloop").await?;
    /// storage.ping().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let options = PgConnectOptions::from_str(url).map_err(storage_error)?;
        Self::connect_with(options).await
    }

    /// Like [`connect`](Self::connect), from parsed options.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, StorageError> {
        let pool = PgPoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(storage_error)?;
        let storage = Self::from_pool(pool);
        storage.migrate().await?;
        Ok(storage)
    }

    /// A storage on an existing pool. Runs no migrations (see [`migrate`](Self::migrate))
    /// and does not connect. Give the pool an `acquire_timeout`, so that an exhausted pool
    /// is an error rather than a wait.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Applies the pending migrations of [`PG_MIGRATOR`]. Several servers may do so at
    /// once: the migrator takes an advisory lock.
    ///
    /// # Errors
    /// [`StorageError::Other`] when a migration fails or the database was migrated by a
    /// newer version; [`StorageError::Unavailable`] without a connection.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        PG_MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| storage_error(e.into()))
    }

    /// The connection pool, e.g. to close it on shutdown.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Columns for PgRow {
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
        self.try_get(column).map_err(storage_error)
    }
}

#[async_trait]
impl Storage for PgStorage {
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
        let inserted = sqlx::query(sql::INSERT_MESSAGE)
            .bind(message.conversation_id.0)
            .bind(message.author_id.0)
            .bind(&message.payload)
            .bind(message.status.as_str())
            .bind(message.created_at)
            .bind(message.send_at)
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
        // The key was taken. An insert racing with ours waited for the other to commit
        // before doing nothing, so this read (a new snapshot) sees the winner.
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
        let lease_until = crate::lease_end(now, lease)?;
        let rows = match limit.hourly_cap {
            None => sqlx::query(CLAIM_DUE)
                .bind(now)
                .bind(i64::from(limit.batch))
                .bind(lease_until)
                .fetch_all(&self.pool)
                .await
                .map_err(storage_error)?,
            Some(_) => {
                // Capped claims take turns (the lock is held until commit), so each counts
                // what the one before it claimed; uncapped claims do not wait for them.
                let mut tx = self.pool.begin().await.map_err(storage_error)?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(HOURLY_CAP_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(storage_error)?;
                let used = sqlx::query(sql::CAP_USED)
                    .bind(now - chrono::Duration::hours(1))
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(storage_error)?
                    .int("used")?;
                let allowed = limit.allowed(u64::try_from(used).unwrap_or(0));
                let rows = if allowed == 0 {
                    Vec::new()
                } else {
                    sqlx::query(CLAIM_DUE)
                        .bind(now)
                        .bind(i64::from(allowed))
                        .bind(lease_until)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(storage_error)?
                };
                tx.commit().await.map_err(storage_error)?;
                rows
            }
        };
        // RETURNING gives no order: restore the claim order.
        let mut claimed = rows
            .iter()
            .map(|row| {
                let message = rows::message(row)?;
                Ok((row.time("due_at")?, message))
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        claimed.sort_by_key(|(due_at, message)| (*due_at, message.id));
        Ok(claimed
            .into_iter()
            .map(|(_, message)| Claimed {
                token: ClaimToken {
                    message_id: message.id,
                    attempt: message.attempts,
                },
                message,
            })
            .collect())
    }

    async fn mark_sent(&self, token: ClaimToken, at: DateTime<Utc>) -> Result<bool, StorageError> {
        let result = sqlx::query(sql::MARK_SENT)
            .bind(token.message_id.0)
            .bind(i64::from(token.attempt))
            .bind(at)
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
        let result = sqlx::query(sql::RESCHEDULE)
            .bind(token.message_id.0)
            .bind(i64::from(token.attempt))
            .bind(at)
            .bind(error)
            .execute(&self.pool)
            .await
            .map_err(storage_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn mark_failed(&self, token: ClaimToken, error: String) -> Result<bool, StorageError> {
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
        let mut tx = self.pool.begin().await.map_err(storage_error)?;
        // Blocks concurrent inserts (and imports) until commit, so no insert takes an id from
        // the sequence before it has been moved past the imported ids.
        sqlx::query("LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
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
                .bind(message.created_at)
                .bind(message.send_at)
                .bind(message.sent_at)
                .bind(i64::from(message.attempts))
                .bind(&message.last_error)
                .execute(&mut *tx)
                .await
                .map_err(storage_error)?
                .rows_affected();
        }
        sqlx::query(BUMP_MESSAGE_IDS)
            .execute(&mut *tx)
            .await
            .map_err(storage_error)?;
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
