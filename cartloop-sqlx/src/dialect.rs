//! The seam between the one storage implementation ([`SqlStorage`](crate::SqlStorage)) and
//! its two dialects.
//!
//! Three layers, so that the generic code needs no sqlx trait bounds of its own:
//! - [`Codec`], per dialect: which sqlx database it runs on and how it stores an instant
//!   (INTEGER microseconds on SQLite, `TIMESTAMPTZ` on PostgreSQL);
//! - [`Driver`], written once for every codec whose database has the usual types: running a
//!   statement with its [`Param`]s, reading columns, applying migrations;
//! - [`Dialect`], per dialect: what really differs (connecting, the claim statement, write
//!   locks, id sequences, cross-server wake-ups).

use crate::due::DueWatch;
use crate::error::{decode_error, storage_error};
use cartloop_core::domain::Message;
use cartloop_core::ports::StorageError;
use chrono::{DateTime, Utc};
use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use std::future::Future;
use std::sync::Arc;

/// A value bound to a statement's `$n` parameter, in the order of the numbers.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    /// An integer.
    Int(i64),
    /// An integer or NULL.
    OptInt(Option<i64>),
    /// A text.
    Text(&'a str),
    /// A text or NULL.
    OptText(Option<&'a str>),
    /// A boolean.
    Bool(bool),
    /// Bytes.
    Bytes(&'a [u8]),
    /// An instant or NULL, encoded the dialect's way.
    Time(Option<DateTime<Utc>>),
}

/// A [`Param`] that owns its value: a write waiting in a group commit outlives the borrow
/// of its caller's values.
#[derive(Debug, Clone)]
pub enum OwnedParam {
    /// An integer.
    Int(i64),
    /// An integer or NULL.
    OptInt(Option<i64>),
    /// A text.
    Text(String),
    /// A text or NULL.
    OptText(Option<String>),
    /// A boolean.
    Bool(bool),
    /// Bytes.
    Bytes(Vec<u8>),
    /// An instant or NULL.
    Time(Option<DateTime<Utc>>),
}

impl OwnedParam {
    /// The borrowed form, to bind.
    pub fn as_param(&self) -> Param<'_> {
        match self {
            Self::Int(v) => Param::Int(*v),
            Self::OptInt(v) => Param::OptInt(*v),
            Self::Text(v) => Param::Text(v),
            Self::OptText(v) => Param::OptText(v.as_deref()),
            Self::Bool(v) => Param::Bool(*v),
            Self::Bytes(v) => Param::Bytes(v),
            Self::Time(v) => Param::Time(*v),
        }
    }
}

impl From<&Param<'_>> for OwnedParam {
    fn from(param: &Param<'_>) -> Self {
        match *param {
            Param::Int(v) => Self::Int(v),
            Param::OptInt(v) => Self::OptInt(v),
            Param::Text(v) => Self::Text(v.to_owned()),
            Param::OptText(v) => Self::OptText(v.map(str::to_owned)),
            Param::Bool(v) => Self::Bool(v),
            Param::Bytes(v) => Self::Bytes(v.to_vec()),
            Param::Time(v) => Self::Time(v),
        }
    }
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(value: Option<i64>) -> Self {
        Self::OptInt(value)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Self::Text(value)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Self::OptText(value)
    }
}

impl From<bool> for Param<'_> {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(value: &'a [u8]) -> Self {
        Self::Bytes(value)
    }
}

impl From<DateTime<Utc>> for Param<'_> {
    fn from(value: DateTime<Utc>) -> Self {
        Self::Time(Some(value))
    }
}

impl From<Option<DateTime<Utc>>> for Param<'_> {
    fn from(value: Option<DateTime<Utc>>) -> Self {
        Self::Time(value)
    }
}

/// The arguments of a statement on database `DB`.
pub type Args<'q, DB> = <DB as Database>::Arguments<'q>;
/// A row of dialect `D`.
pub type DbRow<D> = <<D as Codec>::Db as Database>::Row;
/// A connection of dialect `D`.
pub type Conn<D> = <<D as Codec>::Db as Database>::Connection;
/// How a connection of dialect `D` connects, e.g. `sqlx::sqlite::SqliteConnectOptions`.
pub type ConnectOptions<D> = <Conn<D> as sqlx::Connection>::Options;
/// How a pool of dialect `D` is set up.
pub type PoolOptions<D> = sqlx::pool::PoolOptions<<D as Codec>::Db>;

/// How a dialect stores instants.
pub trait Codec: Send + Sync + Sized + 'static {
    /// The sqlx database.
    type Db: Database;

    /// An instant as stored.
    type Instant: Send + Sync + 'static;

    /// An instant to store.
    fn encode(at: DateTime<Utc>) -> Self::Instant;

    /// A stored instant.
    ///
    /// # Errors
    /// [`StorageError::Other`] for a value that is no instant.
    fn decode(stored: Self::Instant) -> Result<DateTime<Utc>, StorageError>;
}

/// Statements and columns, the same for every dialect (implemented once, below).
pub trait Driver: Codec {
    /// Runs `sql` with `params` and returns its rows (statements that change rows say what
    /// they changed with `RETURNING`).
    fn fetch<'a>(
        conn: &'a mut Conn<Self>,
        sql: &'a str,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = Result<Vec<DbRow<Self>>, sqlx::Error>> + Send + 'a;

    /// `sql` with `params` bound, to run.
    fn bound<'a>(
        sql: &'a str,
        params: &'a [Param<'a>],
    ) -> sqlx::query::Query<'a, Self::Db, Args<'a, Self::Db>>;

    /// Runs `sql`, several statements, with `params` (numbered across all of them): the
    /// rows of each statement that completed, in order, and the error of the one that
    /// failed, if one did (those after it are not run).
    ///
    /// SQLite only, where writes are group committed: sqlx-sqlite prepares a script as a
    /// series of statements (a behaviour sqlx calls deprecated; the group commit tests fail
    /// if it goes), PostgreSQL takes one statement at a time.
    fn fetch_each<'a>(
        conn: &'a mut Conn<Self>,
        sql: &'a str,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = (Vec<Vec<DbRow<Self>>>, Option<sqlx::Error>)> + Send + 'a;

    /// Reads an integer column.
    ///
    /// # Errors
    /// [`StorageError::Other`] for a value of another type.
    fn int(row: &DbRow<Self>, column: &str) -> Result<Option<i64>, StorageError>;

    /// Reads a 32-bit integer column (`INTEGER` on PostgreSQL).
    ///
    /// # Errors
    /// As [`int`](Self::int).
    fn int32(row: &DbRow<Self>, column: &str) -> Result<Option<i32>, StorageError>;

    /// Reads a text column, borrowed from the row.
    ///
    /// # Errors
    /// As [`int`](Self::int).
    fn str<'r>(row: &'r DbRow<Self>, column: &str) -> Result<Option<&'r str>, StorageError>;

    /// Reads an instant column.
    ///
    /// # Errors
    /// As [`int`](Self::int), and for a value that is no instant.
    fn time(row: &DbRow<Self>, column: &str) -> Result<Option<DateTime<Utc>>, StorageError>;

    /// Reads a bytes column.
    ///
    /// # Errors
    /// As [`int`](Self::int).
    fn bytes(row: &DbRow<Self>, column: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Applies the pending migrations of `migrator`.
    fn migrate<'a>(
        pool: &'a sqlx::Pool<Self::Db>,
        migrator: &'static Migrator,
    ) -> impl Future<Output = Result<(), MigrateError>> + Send + 'a;
}

impl<D> Driver for D
where
    D: Codec,
    for<'c> &'c mut Conn<D>: Executor<'c, Database = D::Db>,
    for<'q> Args<'q, D::Db>: IntoArguments<'q, D::Db>,
    for<'q> i64: Encode<'q, D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db>,
    for<'q> bool: Encode<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db>,
    for<'q> Option<D::Instant>: Encode<'q, D::Db>,
    for<'r> D::Instant: Decode<'r, D::Db>,
    D::Instant: Type<D::Db>,
    for<'r> i64: Decode<'r, D::Db>,
    for<'r> i32: Decode<'r, D::Db>,
    for<'r> &'r str: Decode<'r, D::Db>,
    for<'r> Vec<u8>: Decode<'r, D::Db>,
    i64: Type<D::Db>,
    i32: Type<D::Db>,
    bool: Type<D::Db>,
    str: Type<D::Db>,
    [u8]: Type<D::Db>,
    Vec<u8>: Type<D::Db>,
    for<'n> &'n str: ColumnIndex<DbRow<D>>,
    Conn<D>: Migrate,
{
    fn fetch<'a>(
        conn: &'a mut Conn<Self>,
        sql: &'a str,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = Result<Vec<DbRow<Self>>, sqlx::Error>> + Send + 'a {
        Self::bound(sql, params).fetch_all(conn)
    }

    fn bound<'a>(
        sql: &'a str,
        params: &'a [Param<'a>],
    ) -> sqlx::query::Query<'a, Self::Db, Args<'a, Self::Db>> {
        let mut query = sqlx::query::<D::Db>(sql);
        for param in params {
            query = match *param {
                Param::Int(value) => query.bind(value),
                Param::OptInt(value) => query.bind(value),
                Param::Text(value) => query.bind(value),
                Param::OptText(value) => query.bind(value),
                Param::Bool(value) => query.bind(value),
                Param::Bytes(value) => query.bind(value),
                Param::Time(at) => query.bind(at.map(D::encode)),
            };
        }
        query
    }

    fn fetch_each<'a>(
        conn: &'a mut Conn<Self>,
        sql: &'a str,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = (Vec<Vec<DbRow<Self>>>, Option<sqlx::Error>)> + Send + 'a {
        use futures_util::StreamExt;
        let mut results = conn.fetch_many(Self::bound(sql, params));
        async move {
            let mut done = Vec::new();
            let mut rows = Vec::new();
            while let Some(result) = results.next().await {
                match result {
                    Ok(sqlx::Either::Left(_)) => done.push(std::mem::take(&mut rows)),
                    Ok(sqlx::Either::Right(row)) => rows.push(row),
                    Err(e) => return (done, Some(e)),
                }
            }
            (done, None)
        }
    }

    fn int(row: &DbRow<Self>, column: &str) -> Result<Option<i64>, StorageError> {
        row.try_get(column).map_err(decode_error)
    }

    fn int32(row: &DbRow<Self>, column: &str) -> Result<Option<i32>, StorageError> {
        row.try_get(column).map_err(decode_error)
    }

    fn str<'r>(row: &'r DbRow<Self>, column: &str) -> Result<Option<&'r str>, StorageError> {
        row.try_get(column).map_err(decode_error)
    }

    fn time(row: &DbRow<Self>, column: &str) -> Result<Option<DateTime<Utc>>, StorageError> {
        let stored: Option<D::Instant> = row.try_get(column).map_err(decode_error)?;
        stored.map(D::decode).transpose()
    }

    fn bytes(row: &DbRow<Self>, column: &str) -> Result<Option<Vec<u8>>, StorageError> {
        row.try_get(column).map_err(decode_error)
    }

    fn migrate<'a>(
        pool: &'a sqlx::Pool<Self::Db>,
        migrator: &'static Migrator,
    ) -> impl Future<Output = Result<(), MigrateError>> + Send + 'a {
        migrator.run(pool)
    }
}

/// A statement that runs many reads of one kind at once (see `group_read.rs`): `$1` is a
/// JSON array of objects, each with `ord` (its place) and the single read's parameters by
/// name; each row returned carries the `ord` of the read it answers.
#[derive(Debug, Clone, Copy)]
pub struct GroupRead {
    /// The statement.
    pub sql: &'static str,
    /// The names of `$1`, `$2`, … of the single read.
    pub names: &'static [&'static str],
}

/// A SQL dialect cartloop runs on: what differs between SQLite and PostgreSQL.
///
/// Implemented by [`Sqlite`](crate::Sqlite) and [`Postgres`](crate::Postgres) only.
pub trait Dialect: Driver {
    /// Whether writes of one process queue on an in-process lock (SQLite: one writer at a
    /// time, and a queue is fairer and faster than SQLite's busy handler).
    const SERIAL_WRITES: bool;

    /// The statement that opens a transaction that writes (SQLite: `BEGIN IMMEDIATE`, which
    /// takes the write lock before the first read).
    const BEGIN_WRITE: &'static str;

    /// Claims up to `$2` messages due at `$1` with a lease until `$3`: sets them `sending`,
    /// counts the attempt and returns them (`message_columns!`), with the instant each
    /// became due as `due_at` unless [`CLAIM_DUE_AT`](Self::CLAIM_DUE_AT) reads it.
    const CLAIM: &'static str;

    /// A conversation (`context_columns!`) and a page of its messages in one row, the page
    /// as [`page`](Self::page) reads it.
    const CONVERSATION_PAGE: &'static str;

    /// Run before [`CLAIM`](Self::CLAIM) in the same transaction, where `CLAIM` cannot
    /// return when each message became due: the messages `CLAIM` will take, as `due_id`
    /// and `due_at` (parameters `$1` and `$2` only).
    const CLAIM_DUE_AT: Option<&'static str>;

    /// Run first in a claim under an hourly cap, so that capped claims take turns (the
    /// PostgreSQL advisory lock); `None` where claims already take turns.
    const CAP_LOCK: Option<&'static str>;

    /// Run first in a reservation under the frequency cap, with the client's id as `$1`,
    /// so that reservations for one client take turns (a PostgreSQL advisory lock per
    /// client, held until the transaction ends); `None` where writes already take turns.
    const CLIENT_LOCK: Option<&'static str>;

    /// Run first in [`snapshot`](cartloop_core::ports::Conversations::snapshot), where ids may be
    /// committed out of order: waits for the writes in flight, so that no message or
    /// conversation with an id up to the snapshot's can appear after it (PostgreSQL: an
    /// insert may take an id from the sequence before another and commit after it); `None`
    /// where writes take turns.
    const SNAPSHOT_LOCK: Option<&'static str>;

    /// Run first in an import, so that no insert takes an id before the sequences moved past
    /// the imported ones; `None` where writes already take turns.
    const IMPORT_LOCK: Option<&'static str>;

    /// Inserts a group of messages in one statement (see `group_insert.rs`): `$1` is a JSON
    /// array of objects with `ord` and the columns of the single-row message insert;
    /// returns each inserted row with its `ord`, and none for a row whose idempotency key
    /// was taken. `None` where writes are already group committed (SQLite).
    const GROUP_INSERT: Option<&'static str>;

    /// Records a group of sends in one statement (see `group_sent.rs`): `$1` is a JSON array
    /// of objects with `ord` and the parameters of `sql::MARK_SENT` (`id`, `attempts`,
    /// `at`), each fenced by its own claim; returns the `ord` of each recorded one. `None`
    /// where writes are already group committed (SQLite).
    const GROUP_MARK_SENT: Option<&'static str>;

    /// The conversation read (`sql::CONVERSATION`, parameter `id`) for groups of reads; `None`
    /// where each read runs alone.
    const GROUP_CONVERSATION: Option<GroupRead>;

    /// [`CONVERSATION_PAGE`](Self::CONVERSATION_PAGE) (`id`, `before`, `lim`) for groups of
    /// reads; `None` where each page is read alone (SQLite cannot take a `LIMIT` from the
    /// outer query).
    const GROUP_CONVERSATION_PAGE: Option<GroupRead>;

    /// Run last in an import: moves the id sequences past the imported ids; `None` where the
    /// database does so by itself.
    const AFTER_IMPORT: Option<&'static str>;

    /// The messages of a [`CONVERSATION_PAGE`](Self::CONVERSATION_PAGE) row, oldest first.
    ///
    /// # Errors
    /// [`StorageError::Other`] for a value that cannot be read.
    fn page(row: &DbRow<Self>) -> Result<Vec<Message>, StorageError>;

    /// The dialect's migrations.
    fn migrator() -> &'static Migrator;

    /// The pool and connection settings the dialect needs, from the caller's connection
    /// options.
    ///
    /// # Errors
    /// [`StorageError::Other`] for options the dialect cannot work with.
    fn configure(
        options: ConnectOptions<Self>,
    ) -> Result<(PoolOptions<Self>, ConnectOptions<Self>), StorageError>;

    /// Run once with the configured options before the pool opens its connections, which it
    /// may do several at a time: whatever the database file must have before that.
    ///
    /// # Errors
    /// [`StorageError::Unavailable`] when the database cannot be reached.
    fn prepare(
        options: &ConnectOptions<Self>,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + '_;

    /// Called after a committed write made a message due: tells the other processes sharing
    /// the database, where the dialect can (PostgreSQL's `NOTIFY`).
    fn announce_due(pool: &sqlx::Pool<Self::Db>, due: &Arc<DueWatch>);

    /// Called by [`watch_due`](cartloop_core::ports::DispatchQueue::watch_due): starts listening
    /// to the other processes' announcements, where the dialect can.
    ///
    /// # Errors
    /// [`StorageError::Other`] outside a Tokio runtime, where a listener is needed.
    fn listen_due(pool: &sqlx::Pool<Self::Db>, due: &Arc<DueWatch>) -> Result<(), StorageError>;

    /// Called by [`watch_events`](cartloop_core::ports::EventLog::watch_events): starts
    /// listening to the other processes' new events, where the dialect can (PostgreSQL's
    /// `LISTEN`; the events' triggers `NOTIFY` at commit).
    ///
    /// # Errors
    /// [`StorageError::Other`] outside a Tokio runtime, where a listener is needed.
    fn listen_events(
        pool: &sqlx::Pool<Self::Db>,
        events: &Arc<DueWatch>,
    ) -> Result<(), StorageError>;

    /// What a claim of webhook deliveries appends to lock the rows it takes and skip those
    /// another server holds (PostgreSQL's `FOR UPDATE SKIP LOCKED`; nothing on SQLite,
    /// whose writes take turns).
    const LOCK_SKIP: &'static str;

    /// Where events are numbered after their transactions commit (PostgreSQL, migration
    /// 0007): the statement that numbers a batch of at most `$1` and returns how many as
    /// `n`. `None` where the writing transaction numbers them (SQLite, whose writers take
    /// turns).
    const SEQUENCE_EVENTS: Option<&'static str>;
}

/// Runs `sql` on `conn`, with errors as [`StorageError`]s.
pub(crate) async fn fetch<D: Driver>(
    conn: &mut Conn<D>,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<DbRow<D>>, StorageError> {
    D::fetch(conn, sql, params).await.map_err(storage_error)
}
