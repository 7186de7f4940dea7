//! [`SqlStorage`]: the one [`Storage`](cartloop_core::ports::Storage) implementation,
//! generic over its [`Dialect`]: what to run for each port's methods, one file per port
//! (`directory`, `conversations`, `queue`, `admin`, `keys`, `accounts`, `audit`, `events`: the
//! event log and webhooks); the
//! [`Executor`] runs it.

mod accounts;
mod admin;
mod audit;
mod conversations;
mod directory;
mod events;
mod keys;
mod queue;

pub(super) use crate::dialect::{fetch, Conn, ConnectOptions, DbRow, Dialect, Param};
pub(super) use crate::error::{conflict, migrate_error, not_found, storage_error, violation};
pub(super) use crate::executor::Executor;
pub(super) use crate::group_read::ReadKind;
pub(super) use crate::rows;
pub(super) use crate::sql::{self, LAST_CHAT, MESSAGE};
pub(super) use crate::tx::Tx;
pub(super) use crate::ACQUIRE_TIMEOUT;
pub(super) use async_trait::async_trait;
pub(super) use cartloop_core::closures::Closures;
pub(super) use cartloop_core::delivery_policy::WaitingFor;
pub(super) use cartloop_core::domain::{
    ClaimToken, Claimed, Client, ClientChanges, Conversation, ConversationContext,
    ConversationStatus, Dataset, Message, MessageStatus, NewClient, NewConversation, NewMessage,
    NewOperator, NewStore, Operator, Store, StoreChanges,
};
pub(super) use cartloop_core::email_address::EmailAddress;
pub(super) use cartloop_core::frequency_cap::FrequencyCap;
pub(super) use cartloop_core::ids::{ConversationId, MessageId, StoreId, UserId};
pub(super) use cartloop_core::ports::{
    ActivityKey, Admin, Backlog, ClaimLimit, ConversationFilter, ConversationSummary,
    Conversations, DeliveryFacts, Directory, DispatchQueue, DueCallback, ImportSummary, Inserted,
    Page, Reservation, Snapshot, StorageError, Transition,
};
pub(super) use chrono::{DateTime, Utc};
pub(super) use sqlx::error::ErrorKind;
pub(super) use std::collections::{HashMap, HashSet};
pub(super) use std::sync::Arc;
pub(super) use std::time::Duration;

/// [`Storage`](cartloop_core::ports::Storage) on a SQL database: SQLite ([`SqliteStorage`](crate::SqliteStorage)) or
/// PostgreSQL ([`PgStorage`](crate::PgStorage)).
///
/// Cloning is cheap and shares the connection pool.
pub struct SqlStorage<D: Dialect> {
    exec: Arc<Executor<D>>,
}

impl<D: Dialect> Clone for SqlStorage<D> {
    fn clone(&self) -> Self {
        Self {
            exec: self.exec.clone(),
        }
    }
}

impl<D: Dialect> std::fmt::Debug for SqlStorage<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStorage")
            .field("pool", &self.exec.pool)
            .finish_non_exhaustive()
    }
}

impl<D: Dialect> SqlStorage<D> {
    /// Opens the database at `url` (`sqlite://cartloop.db`, created if missing, or
    /// `postgres://user:pass@host:5432/cartloop`) and applies the migrations. Waits at most
    /// 5 s for a connection.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when the database cannot be reached or opened,
    /// [`StorageError::Other`] for a malformed URL, refused credentials or a failed
    /// migration.
    ///
    /// # Example
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # #[cfg(feature = "sqlite")] {
    /// use cartloop_core::ports::prelude::*;
    /// let dir = tempfile::tempdir().unwrap();
    /// let url = format!("sqlite://{}", dir.path().join("cartloop.db").display());
    /// let storage = cartloop_sqlx::SqliteStorage::connect(&url).await?;
    /// storage.ping().await?;
    /// # }
    /// # Ok::<(), cartloop_core::ports::StorageError>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let options: ConnectOptions<D> = url.parse().map_err(storage_error)?;
        Self::connect_with(options).await
    }

    /// Like [`connect`](Self::connect), from parsed options. On SQLite it always sets:
    /// create if missing, WAL journal with `synchronous=FULL`, a 5 s busy timeout and
    /// foreign keys on.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(options: ConnectOptions<D>) -> Result<Self, StorageError> {
        let (pool, options) = D::configure(options)?;
        D::prepare(&options).await?;
        let pool = pool
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
    /// is an error rather than a wait; on SQLite, its connections should have foreign keys
    /// on (sqlx's default) and a busy timeout.
    pub fn from_pool(pool: sqlx::Pool<D::Db>) -> Self {
        Self {
            exec: Arc::new(Executor::new(pool)),
        }
    }

    /// Applies the pending migrations. Several servers may do so at once on PostgreSQL:
    /// the migrator takes an advisory lock.
    ///
    /// # Errors
    /// [`StorageError::Other`] when a migration fails or the database was migrated by a
    /// newer version; [`StorageError::Unavailable`] without a connection.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        D::migrate(&self.exec.pool, D::migrator())
            .await
            .map_err(migrate_error)
    }

    /// The connection pool, e.g. to close it on shutdown.
    pub fn pool(&self) -> &sqlx::Pool<D::Db> {
        &self.exec.pool
    }

    /// The first of `references` (column, name) whose count in the row of `sql` is 0, as a
    /// `NotFound` naming it.
    pub(super) async fn missing(
        &self,
        sql: &str,
        params: &[Param<'_>],
        references: &[(&str, String)],
    ) -> StorageError {
        let row = match self.exec.read_one(sql, params).await {
            Ok(Some(row)) => row,
            Ok(None) => return StorageError::other("no row counting references"),
            Err(e) => return e,
        };
        for (column, name) in references {
            match rows::int::<D>(&row, column) {
                Ok(0) => return StorageError::NotFound(name.clone()),
                Ok(_) => {}
                Err(e) => return e,
            }
        }
        StorageError::NotFound(
            references
                .iter()
                .map(|(_, name)| name.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
        )
    }

    pub(super) async fn message_after(
        &self,
        changed: Option<DbRow<D>>,
        id: MessageId,
    ) -> Result<Transition, StorageError> {
        if let Some(row) = changed {
            return Ok(Transition::Done(rows::message::<D>(&row, &MESSAGE)?));
        }
        Ok(match self.message(id).await? {
            Some(message) => Transition::WrongStatus(message),
            None => Transition::NotFound,
        })
    }

    /// Runs a statement that changes a row if its condition holds; whether it did.
    pub(super) async fn changed(
        &self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<bool, StorageError> {
        Ok(self.exec.write_one(sql, params).await?.is_some())
    }

    /// Records a result under the claim `token` (`$1`, `$2`, see `fenced!`) with `more`
    /// parameters (`$3`, ...); whether the claim still held.
    pub(super) async fn fenced(
        &self,
        sql: &'static str,
        token: ClaimToken,
        more: &[Param<'_>],
    ) -> Result<bool, StorageError> {
        let mut params = [Param::OptInt(None); 4];
        params[0] = token.message_id.0.into();
        params[1] = i64::from(token.attempt).into();
        let count = 2 + more.len();
        params[2..count].copy_from_slice(more);
        self.changed(sql, &params[..count]).await
    }

    /// A claim that takes more than one statement: the hourly cap's count, or when each
    /// message became due ([`Dialect::CLAIM_DUE_AT`], by message id). See
    /// [`Storage::claim_due`].
    pub(super) async fn claim_in_transaction(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: ClaimLimit,
    ) -> Result<(Vec<DbRow<D>>, HashMap<i64, DateTime<Utc>>), StorageError> {
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let claimed = async {
            let allowed = match limit.hourly_cap {
                None => limit.batch,
                Some(_) => {
                    // Capped claims count and claim in turn, so that together they stay
                    // under the cap.
                    if let Some(lock) = D::CAP_LOCK {
                        fetch::<D>(tx.conn(), lock, &[]).await?;
                    }
                    let hour_ago = now - chrono::Duration::hours(1);
                    let params = [hour_ago.into(), now.into()];
                    let rows = fetch::<D>(tx.conn(), sql::CAP_USED, &params).await?;
                    let row = rows
                        .first()
                        .ok_or_else(|| StorageError::other("no count"))?;
                    limit.allowed(count::<D>(row, "used")?)
                }
            };
            let mut due_at = HashMap::new();
            if allowed == 0 {
                return Ok((Vec::new(), due_at));
            }
            let params = [now.into(), i64::from(allowed).into(), lease_until.into()];
            if let Some(sql) = D::CLAIM_DUE_AT {
                for row in fetch::<D>(tx.conn(), sql, &params[..2]).await? {
                    let id = rows::int::<D>(&row, "due_id")?;
                    due_at.insert(id, rows::time::<D>(&row, "due_at")?);
                }
            }
            let rows = fetch::<D>(tx.conn(), D::CLAIM, &params).await?;
            Ok((rows, due_at))
        }
        .await;
        let claimed = self.exec.noted(tx.finish(claimed).await)?;
        if !claimed.0.is_empty() {
            self.exec.fault.stored();
        }
        Ok(claimed)
    }

    /// Inserts `data`'s rows that are not there yet; returns how many it inserted.
    pub(super) async fn import_rows(
        conn: &mut Conn<D>,
        data: &Dataset,
    ) -> Result<u64, StorageError> {
        let mut inserted = 0;
        for store in &data.stores {
            let hours = store.active_hours.as_ref().map(|h| h.to_string());
            let closures = store.closures.to_string();
            let cap = store
                .max_per_client
                .map(|cap| serde_json::json!(cap).to_string());
            let grace = store.reply_grace.to_string();
            let params = [
                store.id.0.into(),
                store.name.as_str().into(),
                store.time_zone.name().into(),
                store.sender_email.as_str().into(),
                hours.as_deref().into(),
                closures.as_str().into(),
                cap.as_deref().into(),
                grace.as_str().into(),
            ];
            let what = || format!("store {}", store.id);
            inserted += import_row::<D>(conn, sql::IMPORT_STORE, &params, what).await?;
        }
        for operator in &data.operators {
            let params = [
                operator.id.0.into(),
                operator.name.as_str().into(),
                operator.store_id.0.into(),
                operator.group.as_str().into(),
            ];
            let what = || format!("store {} of operator {}", operator.store_id, operator.id);
            inserted += import_row::<D>(conn, sql::IMPORT_OPERATOR, &params, what).await?;
        }
        for client in &data.clients {
            let key = email_key(&client.email);
            let params = [
                client.id.0.into(),
                client.store_id.0.into(),
                client.name.as_str().into(),
                client.email.as_str().into(),
                key.as_str().into(),
                client.time_zone.map(|tz| tz.name()).into(),
                client.unsubscribed_at.into(),
            ];
            let what = || format!("store {} or email of client {}", client.store_id, client.id);
            inserted += import_row::<D>(conn, sql::IMPORT_CLIENT, &params, what).await?;
        }
        for conversation in &data.conversations {
            let params = [
                conversation.id.0.into(),
                conversation.store_id.0.into(),
                conversation.operator_id.0.into(),
                conversation.client_id.0.into(),
                conversation.status.as_str().into(),
                conversation.discount_code.as_deref().into(),
            ];
            let what = || {
                let id = conversation.id;
                format!("store, operator or client of conversation {id}")
            };
            inserted += import_row::<D>(conn, sql::IMPORT_CONVERSATION, &params, what).await?;
        }
        for message in &data.messages {
            let params = [
                message.id.0.into(),
                message.conversation_id.0.into(),
                message.author_id.0.into(),
                message.payload.as_str().into(),
                message.status.as_str().into(),
                message.created_at.into(),
                message.send_at.into(),
                message.next_attempt_at.into(),
                message.sent_at.into(),
                i64::from(message.attempts).into(),
                message.last_error.as_deref().into(),
                message.not_before.into(),
                message.last_received.into(),
                message.waiting_for.map(WaitingFor::as_str).into(),
            ];
            let what = || format!("conversation or author of message {}", message.id);
            inserted += import_row::<D>(conn, sql::IMPORT_MESSAGE, &params, what).await?;
        }
        Ok(inserted)
    }
}

/// Runs one insert of an import: 1 when it inserted a row, 0 when the id was taken. A
/// violated constraint is reported as being about `what`.
pub(super) async fn import_row<D: Dialect>(
    conn: &mut Conn<D>,
    sql: &str,
    params: &[Param<'_>],
    what: impl FnOnce() -> String,
) -> Result<u64, StorageError> {
    match D::fetch(conn, sql, params).await {
        Ok(rows) => Ok(rows.len() as u64),
        Err(e) => Err(match violation(&e) {
            Some(ErrorKind::ForeignKeyViolation) => StorageError::NotFound(what()),
            Some(ErrorKind::UniqueViolation) => StorageError::Conflict(what()),
            _ => storage_error(e),
        }),
    }
}

/// How many of the newest messages the conversations list reads per row it wants, before
/// it computes every listed conversation's activity.
const RECENT_PER_ROW: i64 = 4;

/// The key client emails are compared by: case-insensitive, as the core's in-memory
/// storage compares them.
pub(super) fn email_key(email: &EmailAddress) -> String {
    email.as_str().to_lowercase()
}

/// When a lease taken at `now` ends.
pub(super) fn lease_end(
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<DateTime<Utc>, StorageError> {
    chrono::Duration::from_std(lease)
        .ok()
        .and_then(|lease| now.checked_add_signed(lease))
        .ok_or_else(|| StorageError::other(format!("lease of {lease:?} is too long")))
}

/// The id an `INSERT ... RETURNING id` gave.
pub(super) fn inserted_id<D: Dialect>(rows: &[DbRow<D>]) -> Result<i64, StorageError> {
    let row = rows
        .first()
        .ok_or_else(|| StorageError::other("insert returned no id"))?;
    rows::int::<D>(row, "id")
}

/// A count read from the database.
pub(super) fn count<D: Dialect>(row: &DbRow<D>, column: &str) -> Result<u64, StorageError> {
    let n = rows::int::<D>(row, column)?;
    u64::try_from(n).map_err(|_| StorageError::other(format!("negative count {n} in {column}")))
}
