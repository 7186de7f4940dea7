//! [`SqlStorage`]: the one [`Storage`] implementation, generic over its [`Dialect`].

use crate::dialect::{fetch, Conn, ConnectOptions, DbRow, Dialect, GroupRead, OwnedParam, Param};
use crate::error::{
    conflict, disk_fault, migrate_error, not_found, storage_error, violation, GroupFailed,
};
use crate::fault::FaultWatch;
use crate::group::Queue;
use crate::group_read::ReadKind;
use crate::rows;
use crate::sql::{self, LAST_CHAT, MESSAGE};
use crate::tx::Tx;
use crate::ACQUIRE_TIMEOUT;
use async_trait::async_trait;
use cartloop_core::active_hours::ActiveHours;
use cartloop_core::domain::{
    ClaimToken, Claimed, Client, ClientChanges, Conversation, ConversationContext,
    ConversationStatus, Dataset, Message, MessageStatus, NewClient, NewConversation, NewMessage,
    NewOperator, NewStore, Operator, Store,
};
use cartloop_core::email_address::EmailAddress;
use cartloop_core::ids::{ConversationId, MessageId, StoreId, UserId};
use cartloop_core::ports::{
    ActivityKey, Admin, Backlog, ClaimLimit, ConversationFilter, ConversationSummary,
    Conversations, Directory, DispatchQueue, DueCallback, ImportSummary, Inserted, Page, Snapshot,
    StorageError, Transition,
};
use chrono::{DateTime, Utc};
use sqlx::error::ErrorKind;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// [`Storage`](cartloop_core::ports::Storage) on a SQL database: SQLite ([`SqliteStorage`](crate::SqliteStorage)) or
/// PostgreSQL ([`PgStorage`](crate::PgStorage)).
///
/// Cloning is cheap and shares the connection pool.
pub struct SqlStorage<D: Dialect> {
    pool: sqlx::Pool<D::Db>,
    /// Taken by every write where [`Dialect::SERIAL_WRITES`]: SQLite has one writer at a
    /// time, and writers of this process queue here instead of in SQLite's busy handler,
    /// which polls with sleeps of up to 100 ms and so adds tail latency under load. Other
    /// processes on the same file still wait in the busy handler.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Writes waiting for the next group commit, where [`Dialect::SERIAL_WRITES`].
    group: Arc<Mutex<Vec<GroupedWrite<D>>>>,
    /// Messages waiting for a grouped insert, where [`Dialect::GROUP_INSERT`].
    inserts: Arc<Mutex<Queue<D>>>,
    /// Reads waiting for a grouped read, where the dialect has a group statement for them.
    reads: Arc<[Mutex<Queue<D>>; 2]>,
    due: Arc<DueWatch>,
    /// Whether the disk took the last writes (see `ping`).
    fault: Arc<FaultWatch>,
}

impl<D: Dialect> Clone for SqlStorage<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            writer: self.writer.clone(),
            group: self.group.clone(),
            inserts: self.inserts.clone(),
            reads: self.reads.clone(),
            due: self.due.clone(),
            fault: self.fault.clone(),
        }
    }
}

/// One statement waiting for a group commit, and where its result goes.
struct GroupedWrite<D: Dialect> {
    sql: &'static str,
    params: Vec<OwnedParam>,
    done: tokio::sync::oneshot::Sender<Result<Vec<DbRow<D>>, sqlx::Error>>,
}

/// The most statements of one script in a group commit. Measured with `benches/load.sh`
/// (SQLite POST, 64 connections, same run): 4: 12,544/s, 8: 12,547 and 12,083/s, 32:
/// 10,018 and 9,729/s. Each connection caches its scripts' prepared statements: with 32 the
/// server's peak RSS was 64 MB, with 8 45–47 MB.
const SCRIPT_MAX: usize = 8;

/// `size` copies of `sql`, which has `params` parameters, as one script: the parameters of
/// the n-th copy renumbered to follow those of the copies before it.
fn script(sql: &str, size: usize, params: usize) -> std::borrow::Cow<'_, str> {
    if size == 1 {
        return sql.into();
    }
    let mut script = String::with_capacity((sql.len() + 8) * size);
    for copy in 0..size {
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            script.push_str(&rest[..=at]);
            match rest[at + 1..at + 1 + digits].parse::<usize>() {
                Ok(n) => script.push_str(&(n + copy * params).to_string()),
                Err(_) => script.push_str(&rest[at + 1..at + 1 + digits]),
            }
            rest = &rest[at + 1 + digits..];
        }
        script.push_str(rest);
        script.push_str(";\n");
    }
    script.into()
}

/// The same failure for every write of a group whose transaction failed: the database's
/// own error goes to the log, each caller gets an I/O error (unavailable: try again) that
/// says whether the disk was at fault. A disk fault is logged by the storage's
/// [`FaultWatch`] instead, at most once a minute: it fails every group while it lasts.
fn group_failed(error: &sqlx::Error) -> sqlx::Error {
    let disk = disk_fault(error);
    if disk.is_none() {
        tracing::warn!(%error, "group commit failed; none of its writes was stored");
    }
    sqlx::Error::Io(std::io::Error::other(GroupFailed { disk }))
}

impl<D: Dialect> std::fmt::Debug for SqlStorage<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStorage")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// Who is told when a message becomes due, and the background tasks that tell other
/// processes (on PostgreSQL). The tasks hold it weakly and are stopped when the last clone
/// of the storage is dropped.
#[derive(Default)]
pub(crate) struct DueWatch {
    callbacks: Mutex<Vec<DueCallback>>,
    /// Set when a committed write made a message due and other processes are still to be
    /// told; taken by the dialect's announcing task.
    #[cfg(feature = "postgres")]
    pub(crate) unannounced: Arc<tokio::sync::Notify>,
    tasks: Mutex<HashMap<&'static str, tokio::task::AbortHandle>>,
}

impl DueWatch {
    /// Calls every callback. They are copied out first, so a callback may call the storage.
    pub(crate) fn wake(&self) {
        let callbacks = self
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for on_due in callbacks {
            on_due();
        }
    }

    fn add(&self, on_due: DueCallback) {
        self.callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(on_due);
    }

    #[cfg(feature = "postgres")]
    /// Starts the background task `name` unless it runs; `spawn` gets a weak handle, so the
    /// task does not keep the storage alive.
    pub(crate) fn start_task(
        self: &Arc<Self>,
        name: &'static str,
        spawn: impl FnOnce(std::sync::Weak<Self>) -> tokio::task::AbortHandle,
    ) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if tasks.get(name).is_none_or(|task| task.is_finished()) {
            tasks.insert(name, spawn(Arc::downgrade(self)));
        }
    }
}

impl Drop for DueWatch {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner);
        for task in tasks.values() {
            task.abort();
        }
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
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(())),
            group: Arc::new(Mutex::new(Vec::new())),
            inserts: Arc::default(),
            reads: Arc::default(),
            due: Arc::new(DueWatch::default()),
            fault: Arc::default(),
        }
    }

    /// Applies the pending migrations. Several servers may do so at once on PostgreSQL:
    /// the migrator takes an advisory lock.
    ///
    /// # Errors
    /// [`StorageError::Other`] when a migration fails or the database was migrated by a
    /// newer version; [`StorageError::Unavailable`] without a connection.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        D::migrate(&self.pool, D::migrator())
            .await
            .map_err(migrate_error)
    }

    /// The connection pool, e.g. to close it on shutdown.
    pub fn pool(&self) -> &sqlx::Pool<D::Db> {
        &self.pool
    }

    /// The messages waiting for a grouped insert.
    pub(crate) fn insert_queue(&self) -> &Mutex<Queue<D>> {
        &self.inserts
    }

    /// The conversation reads waiting for a grouped read.
    pub(crate) fn conversation_read_queue(&self) -> &Mutex<Queue<D>> {
        &self.reads[0]
    }

    /// The page reads waiting for a grouped read.
    pub(crate) fn page_read_queue(&self) -> &Mutex<Queue<D>> {
        &self.reads[1]
    }

    /// The callbacks of [`Storage::watch_due`], for the dialect's listener.
    #[cfg(feature = "postgres")]
    pub(crate) fn due_watch(&self) -> &Arc<DueWatch> {
        &self.due
    }

    /// Waits for this process's turn to write, where the dialect needs one.
    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if D::SERIAL_WRITES {
            Some(self.writer.lock().await)
        } else {
            None
        }
    }

    async fn connection(&self) -> Result<sqlx::pool::PoolConnection<D::Db>, StorageError> {
        self.pool.acquire().await.map_err(storage_error)
    }

    /// Runs a statement that reads.
    async fn read(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<DbRow<D>>, StorageError> {
        let rows = fetch::<D>(&mut *self.connection().await?, sql, params).await;
        self.noted(rows)
    }

    /// `result`, after telling the fault watch about a disk fault in it.
    fn noted<T>(&self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(e) = &result {
            self.fault.note(e);
        }
        result
    }

    /// Runs a statement that reads at most one row.
    async fn read_one(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<DbRow<D>>, StorageError> {
        Ok(self.read(sql, params).await?.into_iter().next())
    }

    /// [`read_one`](Self::read_one) of `single`, in a group of reads of its `kind` where
    /// the dialect has the `group` statement.
    async fn read_one_grouped(
        &self,
        kind: ReadKind,
        group: Option<GroupRead>,
        single: &'static str,
        params: &[Param<'_>],
    ) -> Result<Option<DbRow<D>>, StorageError> {
        match group {
            Some(group) => {
                (self.read_grouped(kind, group, single, params).await).map_err(storage_error)
            }
            None => self.read_one(single, params).await,
        }
    }

    /// Runs a statement that writes; errors as sqlx gives them, for the caller to name the
    /// rows a violated constraint is about. Answers once the write is committed.
    ///
    /// Where writes take turns ([`Dialect::SERIAL_WRITES`], SQLite) they are group
    /// committed: the statements that arrive while a commit is in progress are run together
    /// in the next transaction, one `fsync` for all, each answered after that commit. A
    /// write that finds no commit in progress runs at once, alone: no timer. A statement
    /// that breaks a constraint fails alone (SQLite rolls back that statement only); any
    /// other failure fails the whole group, and nothing of it is stored.
    ///
    /// A write that stored a row tells the fault watch that the disk takes writes; one that
    /// met a disk fault, that it does not.
    async fn write(
        &self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Vec<DbRow<D>>, sqlx::Error> {
        let result = self.write_unwatched(sql, params).await;
        match &result {
            Ok(rows) if !rows.is_empty() => self.fault.stored(),
            Ok(_) => {}
            Err(e) => self.fault.note_sqlx(e),
        }
        result
    }

    /// [`write`](Self::write), without telling the fault watch.
    async fn write_unwatched(
        &self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Vec<DbRow<D>>, sqlx::Error> {
        if !D::SERIAL_WRITES {
            let mut conn = self.pool.acquire().await?;
            return D::fetch(&mut conn, sql, params).await;
        }
        let (done, mut result) = tokio::sync::oneshot::channel();
        self.group
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(GroupedWrite {
                sql,
                params: params.iter().map(OwnedParam::from).collect(),
                done,
            });
        let turn = self.writer.clone().lock_owned().await;
        // A writer before us may have committed ours with its group.
        match result.try_recv() {
            Ok(answer) => return answer,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                return Err(sqlx::Error::Io(std::io::Error::other("write abandoned")));
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
        }
        let group = std::mem::take(&mut *self.group.lock().unwrap_or_else(PoisonError::into_inner));
        // On a task of its own: if this caller goes away (a client that hung up, a request
        // timeout), the group still commits or rolls back, and its connection never goes
        // back to the pool inside an open transaction holding the write lock.
        let storage = self.clone();
        tokio::spawn(async move {
            storage.commit_group(group).await;
            drop(turn);
        });
        result
            .await
            .unwrap_or_else(|_| Err(sqlx::Error::Io(std::io::Error::other("write abandoned"))))
    }

    /// Runs `group` in one transaction and answers each write after the commit.
    async fn commit_group(&self, group: Vec<GroupedWrite<D>>) {
        if group.len() == 1 {
            // Alone: autocommit, no transaction statements around it.
            for write in group {
                let answer = match self.pool.acquire().await {
                    Ok(mut conn) => {
                        let params: Vec<Param<'_>> =
                            write.params.iter().map(OwnedParam::as_param).collect();
                        D::fetch(&mut conn, write.sql, &params).await
                    }
                    Err(e) => Err(group_failed(&e)),
                };
                let _ = write.done.send(answer);
            }
            return;
        }
        let mut tx = match Tx::<D>::begin(&self.pool, D::BEGIN_WRITE).await {
            Ok(tx) => tx,
            Err(e) => {
                for write in group {
                    let _ = write.done.send(Err(group_failed(&e)));
                }
                return;
            }
        };
        let mut answers = Vec::with_capacity(group.len());
        let mut failure = None;
        let mut start = 0;
        while failure.is_none() && start < group.len() {
            // Consecutive writes of one statement go to the database as one script of 2, 4,
            // … or SCRIPT_MAX statements (few scripts to prepare and cache): one hand-off
            // to the connection's thread instead of one per write.
            let sql = group[start].sql;
            let same = group[start..].iter().take_while(|w| w.sql == sql).count();
            let size = 1 << same.min(SCRIPT_MAX).ilog2();
            let chunk = &group[start..start + size];
            let script = script(sql, size, chunk[0].params.len());
            let params: Vec<Param<'_>> = chunk
                .iter()
                .flat_map(|write| write.params.iter().map(OwnedParam::as_param))
                .collect();
            let (done, error) = D::fetch_each(tx.conn(), &script, &params).await;
            let completed = done.len();
            answers.extend(done.into_iter().map(Ok));
            match error {
                // SQLite undid that statement only: the others stand.
                Some(e) if violation(&e).is_some() => {
                    answers.push(Err(e));
                    start += completed + 1;
                }
                Some(e) => failure = Some(e),
                None if completed == size => start += size,
                None => {
                    failure = Some(sqlx::Error::Protocol(format!(
                        "a script of {size} statements completed {completed}"
                    )))
                }
            }
        }
        let failure = match failure {
            None => tx.commit().await.err(),
            Some(e) => {
                tx.rollback().await;
                Some(e)
            }
        };
        match failure {
            None => {
                for (write, answer) in group.into_iter().zip(answers) {
                    let _ = write.done.send(answer);
                }
            }
            Some(e) => {
                for write in group {
                    let _ = write.done.send(Err(group_failed(&e)));
                }
            }
        }
    }

    /// Runs a statement that writes at most one row.
    async fn write_one(
        &self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<Option<DbRow<D>>, StorageError> {
        let rows = self.write(sql, params).await.map_err(storage_error)?;
        Ok(rows.into_iter().next())
    }

    /// Opens a transaction that writes, in this process's turn (held by the caller).
    async fn begin_write(&self) -> Result<Tx<D>, StorageError> {
        let tx = Tx::begin(&self.pool, D::BEGIN_WRITE).await;
        self.noted(tx.map_err(storage_error))
    }

    /// A committed write made a message due: wake this process's watchers and tell the
    /// others.
    fn made_due(&self) {
        self.due.wake();
        D::announce_due(self);
    }

    /// The first of `references` (column, name) whose count in the row of `sql` is 0, as a
    /// `NotFound` naming it.
    async fn missing(
        &self,
        sql: &str,
        params: &[Param<'_>],
        references: &[(&str, String)],
    ) -> StorageError {
        let row = match self.read_one(sql, params).await {
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

    async fn message_after(
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
    async fn changed(&self, sql: &'static str, params: &[Param<'_>]) -> Result<bool, StorageError> {
        Ok(self.write_one(sql, params).await?.is_some())
    }

    /// Records a result under the claim `token` (`$1`, `$2`, see `fenced!`) with `more`
    /// parameters (`$3`, ...); whether the claim still held.
    async fn fenced(
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
    async fn claim_in_transaction(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: ClaimLimit,
    ) -> Result<(Vec<DbRow<D>>, HashMap<i64, DateTime<Utc>>), StorageError> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin_write().await?;
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
        let claimed = self.noted(tx.finish(claimed).await)?;
        if !claimed.0.is_empty() {
            self.fault.stored();
        }
        Ok(claimed)
    }

    /// Inserts `data`'s rows that are not there yet; returns how many it inserted.
    async fn import_rows(conn: &mut Conn<D>, data: &Dataset) -> Result<u64, StorageError> {
        let mut inserted = 0;
        for store in &data.stores {
            let hours = store.active_hours.map(|h| h.to_string());
            let params = [
                store.id.0.into(),
                store.name.as_str().into(),
                store.time_zone.name().into(),
                store.sender_email.as_str().into(),
                hours.as_deref().into(),
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
                client.name.as_str().into(),
                client.email.as_str().into(),
                key.as_str().into(),
                client.time_zone.map(|tz| tz.name()).into(),
                client.unsubscribed_at.into(),
            ];
            let what = || format!("email of client {}", client.id);
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
            ];
            let what = || format!("conversation or author of message {}", message.id);
            inserted += import_row::<D>(conn, sql::IMPORT_MESSAGE, &params, what).await?;
        }
        Ok(inserted)
    }
}

/// Runs one insert of an import: 1 when it inserted a row, 0 when the id was taken. A
/// violated constraint is reported as being about `what`.
async fn import_row<D: Dialect>(
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
fn email_key(email: &EmailAddress) -> String {
    email.as_str().to_lowercase()
}

/// When a lease taken at `now` ends.
fn lease_end(now: DateTime<Utc>, lease: Duration) -> Result<DateTime<Utc>, StorageError> {
    chrono::Duration::from_std(lease)
        .ok()
        .and_then(|lease| now.checked_add_signed(lease))
        .ok_or_else(|| StorageError::other(format!("lease of {lease:?} is too long")))
}

/// The id an `INSERT ... RETURNING id` gave.
fn inserted_id<D: Dialect>(rows: &[DbRow<D>]) -> Result<i64, StorageError> {
    let row = rows
        .first()
        .ok_or_else(|| StorageError::other("insert returned no id"))?;
    rows::int::<D>(row, "id")
}

/// A count read from the database.
fn count<D: Dialect>(row: &DbRow<D>, column: &str) -> Result<u64, StorageError> {
    let n = rows::int::<D>(row, column)?;
    u64::try_from(n).map_err(|_| StorageError::other(format!("negative count {n} in {column}")))
}

#[async_trait]
impl<D: Dialect> Conversations for SqlStorage<D> {
    async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<Option<ConversationContext>, StorageError> {
        let params = [id.0.into()];
        let group = D::GROUP_CONVERSATION;
        self.read_one_grouped(ReadKind::Conversation, group, sql::CONVERSATION, &params)
            .await?
            .as_ref()
            .map(rows::context::<D>)
            .transpose()
    }

    async fn conversation_page(
        &self,
        id: ConversationId,
        page: Page,
    ) -> Result<Option<(ConversationContext, Vec<Message>)>, StorageError> {
        let before = page.before.map_or(i64::MAX, |before| before.0);
        let params = [id.0.into(), before.into(), i64::from(page.limit).into()];
        let group = D::GROUP_CONVERSATION_PAGE;
        let kind = ReadKind::ConversationPage;
        let row = self
            .read_one_grouped(kind, group, D::CONVERSATION_PAGE, &params)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let context = rows::context::<D>(&row)?;
        Ok(Some((context, D::page(&row)?)))
    }

    async fn snapshot(&self) -> Result<Snapshot, StorageError> {
        let rows = match D::SNAPSHOT_LOCK {
            None => self.read(sql::SNAPSHOT, &[]).await?,
            Some(lock) => {
                let mut tx = Tx::<D>::begin(&self.pool, "BEGIN")
                    .await
                    .map_err(storage_error)?;
                let rows = async {
                    fetch::<D>(tx.conn(), lock, &[]).await?;
                    fetch::<D>(tx.conn(), sql::SNAPSHOT, &[]).await
                }
                .await;
                self.noted(tx.finish(rows).await)?
            }
        };
        let row = rows
            .first()
            .ok_or_else(|| StorageError::other("no snapshot row"))?;
        Ok(Snapshot {
            max_message: MessageId(rows::int::<D>(row, "max_message")?),
            max_conversation: ConversationId(rows::int::<D>(row, "max_conversation")?),
        })
    }

    async fn list_conversations(
        &self,
        filter: ConversationFilter,
        snapshot: Snapshot,
        after: Option<ActivityKey>,
        limit: u32,
    ) -> Result<Vec<ConversationSummary>, StorageError> {
        let (after_activity, after_id) =
            after.map_or((i64::MAX, i64::MAX), |a| (a.activity, a.conversation.0));
        let status = filter.status.map(ConversationStatus::as_str);
        let store = filter.store_id.map(|id| id.0);
        let operator = filter.operator_id.map(|id| id.0);
        let limit = i64::from(limit);
        let snapshot = [snapshot.max_message.0, snapshot.max_conversation.0];
        // The newest messages usually name a whole page; reading them costs the page, not
        // the whole list.
        let recent = [
            snapshot[0].into(),
            snapshot[1].into(),
            status.into(),
            store.into(),
            operator.into(),
            after_activity.into(),
            (limit * RECENT_PER_ROW).into(),
            limit.into(),
        ];
        let mut rows = self.read(sql::LIST_RECENT_CONVERSATIONS, &recent).await?;
        if rows.len() < usize::try_from(limit).unwrap_or(usize::MAX) {
            let mut all = recent;
            all[6] = after_id.into();
            rows = self.read(sql::LIST_CONVERSATIONS, &all).await?;
        }
        rows.iter()
            .map(|row| {
                let context = rows::context::<D>(row)?;
                let last_chat = match D::int(row, LAST_CHAT.id)? {
                    Some(_) => Some(rows::message::<D>(row, &LAST_CHAT)?),
                    None => None,
                };
                Ok(ConversationSummary {
                    key: ActivityKey {
                        activity: rows::int::<D>(row, "activity")?,
                        conversation: context.conversation.id,
                    },
                    client_time_zone: context.client_time_zone(),
                    client_name: context.client.name,
                    conversation: context.conversation,
                    last_chat,
                    pending_count: count::<D>(row, "pending")?,
                })
            })
            .collect()
    }

    async fn create_conversation(
        &self,
        new: NewConversation,
    ) -> Result<Conversation, StorageError> {
        let params = [
            new.store_id.0.into(),
            new.operator_id.0.into(),
            new.client_id.0.into(),
            new.discount_code.as_deref().into(),
        ];
        let rows = match self.write(sql::INSERT_CONVERSATION, &params).await {
            Ok(rows) => rows,
            Err(e) if violation(&e) == Some(ErrorKind::ForeignKeyViolation) => {
                let references = [
                    ("store", format!("store {}", new.store_id)),
                    ("operator", format!("operator {}", new.operator_id)),
                    ("client", format!("client {}", new.client_id)),
                ];
                let sql = sql::CONVERSATION_REFERENCES;
                return Err(self.missing(sql, &params[..3], &references).await);
            }
            Err(e) => return Err(storage_error(e)),
        };
        Ok(Conversation {
            id: ConversationId(inserted_id::<D>(&rows)?),
            store_id: new.store_id,
            operator_id: new.operator_id,
            client_id: new.client_id,
            status: ConversationStatus::Open,
            discount_code: new.discount_code,
        })
    }

    async fn set_conversation_status(
        &self,
        id: ConversationId,
        status: ConversationStatus,
    ) -> Result<bool, StorageError> {
        let params = [id.0.into(), status.as_str().into()];
        self.changed(sql::SET_CONVERSATION_STATUS, &params).await
    }

    async fn insert_message(&self, new: NewMessage) -> Result<Inserted, StorageError> {
        let params = [
            new.conversation_id.0.into(),
            new.author_id.0.into(),
            new.payload.as_str().into(),
            new.status.as_str().into(),
            new.created_at.into(),
            new.send_at.into(),
            new.idempotency_key.as_deref().into(),
        ];
        let inserted = match D::GROUP_INSERT {
            Some(group_sql) => {
                let inserted = self.insert_grouped(group_sql, &params).await;
                match &inserted {
                    Ok(Some(_)) => self.fault.stored(),
                    Ok(None) => {}
                    Err(e) => self.fault.note_sqlx(e),
                }
                inserted
            }
            None => {
                (self.write(sql::INSERT_MESSAGE, &params).await).map(|rows| rows.into_iter().next())
            }
        };
        let inserted = match inserted {
            Ok(row) => row,
            Err(e) if violation(&e) == Some(ErrorKind::ForeignKeyViolation) => {
                let references = [
                    (
                        "conversation",
                        format!("conversation {}", new.conversation_id),
                    ),
                    ("author", format!("user {}", new.author_id)),
                ];
                let sql = sql::MESSAGE_REFERENCES;
                return Err(self.missing(sql, &params[..2], &references).await);
            }
            Err(e) => return Err(storage_error(e)),
        };
        if let Some(row) = inserted {
            let message = rows::message::<D>(&row, &MESSAGE)?;
            if message.status == MessageStatus::New {
                self.made_due();
            }
            return Ok(Inserted {
                message,
                created: true,
            });
        }
        // The author's key was taken. A racing insert of the same key waited for the other
        // to commit before doing nothing (or they were serialized), so this read sees it.
        let params = [
            new.author_id.0.into(),
            new.idempotency_key.as_deref().into(),
        ];
        let row = self.read_one(sql::MESSAGE_BY_KEY, &params).await?;
        let row = row.ok_or_else(|| StorageError::other("idempotency key taken by no message"))?;
        Ok(Inserted {
            message: rows::message::<D>(&row, &MESSAGE)?,
            created: false,
        })
    }

    async fn message(&self, id: MessageId) -> Result<Option<Message>, StorageError> {
        let row = self.read_one(sql::MESSAGE_BY_ID, &[id.0.into()]).await?;
        row.as_ref()
            .map(|row| rows::message::<D>(row, &MESSAGE))
            .transpose()
    }

    async fn cancel_message(&self, id: MessageId) -> Result<Transition, StorageError> {
        let changed = self.write_one(sql::CANCEL_MESSAGE, &[id.0.into()]).await?;
        self.message_after(changed, id).await
    }

    async fn retry_message(
        &self,
        id: MessageId,
        at: DateTime<Utc>,
    ) -> Result<Transition, StorageError> {
        let changed = self
            .write_one(sql::RETRY_MESSAGE, &[id.0.into(), at.into()])
            .await?;
        let transition = self.message_after(changed, id).await?;
        if matches!(transition, Transition::Done(_)) {
            self.made_due();
        }
        Ok(transition)
    }
}

#[async_trait]
impl<D: Dialect> Directory for SqlStorage<D> {
    async fn create_store(&self, new: NewStore) -> Result<Store, StorageError> {
        let hours = new.active_hours.map(|h| h.to_string());
        let params = [
            new.name.as_str().into(),
            new.time_zone.name().into(),
            new.sender_email.as_str().into(),
            hours.as_deref().into(),
        ];
        let rows = self
            .write(sql::INSERT_STORE, &params)
            .await
            .map_err(storage_error)?;
        Ok(Store {
            id: StoreId(inserted_id::<D>(&rows)?),
            name: new.name,
            time_zone: new.time_zone,
            sender_email: new.sender_email,
            active_hours: new.active_hours,
        })
    }

    async fn store(&self, id: StoreId) -> Result<Option<Store>, StorageError> {
        let row = self.read_one(sql::STORE, &[id.0.into()]).await?;
        row.as_ref().map(rows::store::<D>).transpose()
    }

    async fn set_store_hours(
        &self,
        id: StoreId,
        hours: Option<ActiveHours>,
    ) -> Result<Option<Store>, StorageError> {
        let hours = hours.map(|h| h.to_string());
        let params = [id.0.into(), hours.as_deref().into()];
        let row = self.write_one(sql::SET_STORE_HOURS, &params).await?;
        row.as_ref().map(rows::store::<D>).transpose()
    }

    async fn create_operator(&self, new: NewOperator) -> Result<Operator, StorageError> {
        let params = [
            new.name.as_str().into(),
            new.store_id.0.into(),
            new.group.as_str().into(),
        ];
        let rows = self
            .write(sql::INSERT_OPERATOR, &params)
            .await
            .map_err(not_found(|| format!("store {}", new.store_id)))?;
        Ok(Operator {
            id: UserId(inserted_id::<D>(&rows)?),
            name: new.name,
            store_id: new.store_id,
            group: new.group,
        })
    }

    async fn operator(&self, id: UserId) -> Result<Option<Operator>, StorageError> {
        let row = self.read_one(sql::OPERATOR, &[id.0.into()]).await?;
        row.as_ref().map(rows::operator::<D>).transpose()
    }

    async fn create_client(&self, new: NewClient) -> Result<Client, StorageError> {
        let key = email_key(&new.email);
        let params = [
            new.name.as_str().into(),
            new.email.as_str().into(),
            key.as_str().into(),
            new.time_zone.map(|tz| tz.name()).into(),
        ];
        let rows = self
            .write(sql::INSERT_CLIENT, &params)
            .await
            .map_err(conflict("a client with this email exists"))?;
        Ok(Client {
            id: UserId(inserted_id::<D>(&rows)?),
            name: new.name,
            email: new.email,
            time_zone: new.time_zone,
            unsubscribed_at: None,
        })
    }

    async fn client(&self, id: UserId) -> Result<Option<Client>, StorageError> {
        let row = self.read_one(sql::CLIENT, &[id.0.into()]).await?;
        row.as_ref().map(rows::client::<D>).transpose()
    }

    async fn client_by_email(&self, email: &EmailAddress) -> Result<Option<Client>, StorageError> {
        let key = email_key(email);
        let row = self
            .read_one(sql::CLIENT_BY_EMAIL, &[key.as_str().into()])
            .await?;
        row.as_ref().map(rows::client::<D>).transpose()
    }

    async fn update_client(
        &self,
        id: UserId,
        changes: ClientChanges,
    ) -> Result<Option<Client>, StorageError> {
        let key = changes.email.as_ref().map(email_key);
        let params = [
            id.0.into(),
            changes.name.as_deref().into(),
            changes.email.as_ref().map(EmailAddress::as_str).into(),
            key.as_deref().into(),
            changes.time_zone.is_some().into(),
            changes.time_zone.flatten().map(|tz| tz.name()).into(),
        ];
        let rows = self
            .write(sql::UPDATE_CLIENT, &params)
            .await
            .map_err(conflict("another client has this email"))?;
        rows.first().map(rows::client::<D>).transpose()
    }

    async fn unsubscribe_client(
        &self,
        id: UserId,
        at: DateTime<Utc>,
    ) -> Result<Option<Client>, StorageError> {
        let row = self
            .write_one(sql::UNSUBSCRIBE_CLIENT, &[id.0.into(), at.into()])
            .await?;
        row.as_ref().map(rows::client::<D>).transpose()
    }
}

#[async_trait]
impl<D: Dialect> DispatchQueue for SqlStorage<D> {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: ClaimLimit,
    ) -> Result<Vec<Claimed>, StorageError> {
        let lease_until = lease_end(now, lease)?;
        let (rows, due_at) = if limit.hourly_cap.is_none() && D::CLAIM_DUE_AT.is_none() {
            // One statement that claims atomically on its own.
            let params = [
                now.into(),
                i64::from(limit.batch).into(),
                lease_until.into(),
            ];
            let rows = self.write(D::CLAIM, &params).await.map_err(storage_error)?;
            (rows, HashMap::new())
        } else {
            self.claim_in_transaction(now, lease_until, limit).await?
        };
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let message = rows::message::<D>(row, &MESSAGE)?;
            let due = match D::CLAIM_DUE_AT {
                Some(_) => due_at.get(&message.id.0).copied().ok_or_else(|| {
                    StorageError::other(format!("claimed message {} was not due", message.id))
                })?,
                None => rows::time::<D>(row, "due_at")?,
            };
            claimed.push((due, message));
        }
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

    async fn renew_leases(
        &self,
        tokens: &[ClaimToken],
        until: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        if tokens.is_empty() {
            return Ok(0);
        }
        let _turn = self.write_turn().await;
        let mut conn = self.connection().await?;
        let mut renewed = HashSet::new();
        for token in tokens {
            let params = [
                token.message_id.0.into(),
                i64::from(token.attempt).into(),
                until.into(),
            ];
            let rows = self.noted(fetch::<D>(&mut conn, sql::RENEW_LEASE, &params).await)?;
            if !rows.is_empty() {
                renewed.insert(token.message_id);
            }
        }
        Ok(renewed.len() as u64)
    }

    async fn mark_sent(&self, token: ClaimToken, at: DateTime<Utc>) -> Result<bool, StorageError> {
        self.fenced(sql::MARK_SENT, token, &[at.into()]).await
    }

    async fn reschedule(
        &self,
        token: ClaimToken,
        at: DateTime<Utc>,
        error: Option<String>,
    ) -> Result<bool, StorageError> {
        let more = [at.into(), error.as_deref().into()];
        self.fenced(sql::RESCHEDULE, token, &more).await
    }

    async fn mark_failed(&self, token: ClaimToken, error: String) -> Result<bool, StorageError> {
        self.fenced(sql::MARK_FAILED, token, &[error.as_str().into()])
            .await
    }

    async fn mark_suppressed(
        &self,
        token: ClaimToken,
        reason: String,
    ) -> Result<bool, StorageError> {
        self.fenced(sql::MARK_SUPPRESSED, token, &[reason.as_str().into()])
            .await
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        let row = self.read_one(sql::NEXT_DUE, &[]).await?;
        let row = row.ok_or_else(|| StorageError::other("no next_due row"))?;
        let new_due = D::time(&row, "new_due")?;
        let lease_due = D::time(&row, "lease_due")?;
        Ok(new_due.into_iter().chain(lease_due).min())
    }

    async fn backlog(&self, now: DateTime<Utc>) -> Result<Backlog, StorageError> {
        let row = self.read_one(sql::BACKLOG, &[now.into()]).await?;
        let row = row.ok_or_else(|| StorageError::other("no backlog row"))?;
        let oldest_new = D::time(&row, "oldest_new")?;
        let oldest_sending = D::time(&row, "oldest_sending")?;
        Ok(Backlog {
            waiting: count::<D>(&row, "new_count")? + count::<D>(&row, "sending_count")?,
            oldest_due: oldest_new.into_iter().chain(oldest_sending).min(),
        })
    }

    async fn watch_due(&self, on_due: DueCallback) -> Result<(), StorageError> {
        self.due.add(on_due);
        D::listen_due(self)
    }

    async fn contexts(
        &self,
        ids: &[ConversationId],
    ) -> Result<Vec<ConversationContext>, StorageError> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(context) = self.conversation(*id).await? {
                found.push(context);
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl<D: Dialect> Admin for SqlStorage<D> {
    async fn import(&self, data: &Dataset) -> Result<ImportSummary, StorageError> {
        let _turn = self.write_turn().await;
        let mut tx = self.begin_write().await?;
        let inserted = async {
            if let Some(lock) = D::IMPORT_LOCK {
                fetch::<D>(tx.conn(), lock, &[]).await?;
            }
            let inserted = Self::import_rows(tx.conn(), data).await?;
            if let Some(bump) = D::AFTER_IMPORT {
                fetch::<D>(tx.conn(), bump, &[]).await?;
            }
            Ok(inserted)
        }
        .await;
        let inserted = self.noted(tx.finish(inserted).await)?;
        if inserted > 0 {
            self.fault.stored();
        }
        Ok(ImportSummary { inserted })
    }

    async fn secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>, StorageError> {
        let params = [name.into(), candidate.as_slice().into()];
        self.write(sql::INSERT_SECRET, &params)
            .await
            .map_err(storage_error)?;
        // Inserted now or by a racing caller, whose insert committed before ours did nothing.
        let row = self.read_one(sql::SECRET, &[name.into()]).await?;
        let row = row.ok_or_else(|| StorageError::other(format!("secret {name:?} vanished")))?;
        D::bytes(&row, "value")?
            .ok_or_else(|| StorageError::other(format!("secret {name:?} is NULL")))
    }

    /// Reads; then, while the last writes met a full or failing disk and none has stored
    /// anything since, [`StorageError::Unavailable`] with a
    /// [`DiskFault`](cartloop_core::disk_fault::DiskFault) cause: the storage answers
    /// reads but refuses writes.
    async fn ping(&self) -> Result<(), StorageError> {
        self.read(sql::PING, &[]).await?;
        match self.fault.degraded() {
            Some(fault) => Err(fault),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::script;

    #[test]
    fn a_script_numbers_each_copy_after_the_ones_before() {
        let sql = "INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT DO UPDATE SET b = $2";
        assert_eq!(script(sql, 1, 2), sql);
        assert_eq!(
            script(sql, 3, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT DO UPDATE SET b = $2;\n\
             INSERT INTO t (a, b) VALUES ($3, $4) ON CONFLICT DO UPDATE SET b = $4;\n\
             INSERT INTO t (a, b) VALUES ($5, $6) ON CONFLICT DO UPDATE SET b = $6;\n"
        );
        assert_eq!(
            script("SELECT '$', $10", 2, 10),
            "SELECT '$', $10;\nSELECT '$', $20;\n"
        );
    }
}
