//! The SQLite dialect: the embedded default, one database file.
//!
//! Instants are INTEGER microseconds since the Unix epoch, so SQL compares them as numbers.
//! SQLite has one writer at a time: writes of this process take turns on a lock, and a
//! claim runs in a `BEGIN IMMEDIATE` transaction, which takes the write lock before it
//! reads, so two dispatchers (tasks or processes on the same file) never claim the same
//! message. Due messages wake this process's watchers only: SQLite cannot tell another
//! process.

use crate::dialect::{Codec, DbRow, Dialect, Driver, GroupRead, PoolOptions};
use crate::due::DueWatch;
use crate::error::storage_error;
use crate::rows;
use crate::sql::{self, expired_leases, message_columns, new_due};
use crate::storage::SqlStorage;
use cartloop_core::domain::Message;
use cartloop_core::ports::StorageError;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use std::sync::Arc;
use std::time::Duration;

/// The SQLite schema, embedded in the binary.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite dialect of [`SqlStorage`].
#[derive(Debug, Clone, Copy)]
pub enum Sqlite {}

/// [`Storage`](cartloop_core::ports::Storage) on a SQLite database file.
pub type SqliteStorage = SqlStorage<Sqlite>;

/// How long a statement waits for another process's write lock before failing with
/// [`StorageError::Unavailable`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The messages a claim at `$1` takes, at most `$2`, earliest due first. SQLite wants the
/// ordered and limited halves of a compound select in subqueries.
macro_rules! claimable {
    () => {
        concat!(
            "SELECT due_id, due_at FROM (SELECT * FROM (",
            new_due!(),
            ") UNION ALL SELECT * FROM (",
            expired_leases!(),
            ")) ORDER BY due_at, due_id LIMIT $2"
        )
    };
}

/// Takes the messages of `claimable!` (the same rows: the transaction holds the write
/// lock) with a lease until `$3`.
const CLAIM_CLAIMABLE: &str = concat!(
    "UPDATE messages SET status = 'sending', attempts = attempts + 1, lease_until = $3 \
     WHERE id IN (SELECT due_id FROM (",
    claimable!(),
    ")) RETURNING ",
    message_columns!("", "")
);

impl Codec for Sqlite {
    type Db = sqlx::Sqlite;
    /// Microseconds since the Unix epoch, compared as numbers.
    type Instant = i64;

    fn encode(at: DateTime<Utc>) -> i64 {
        at.timestamp_micros()
    }

    fn decode(micros: i64) -> Result<DateTime<Utc>, StorageError> {
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| StorageError::other(format!("instant {micros} out of range")))
    }
}

impl Dialect for Sqlite {
    const SERIAL_WRITES: bool = true;
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const CLAIM: &'static str = CLAIM_CLAIMABLE;
    const CONVERSATION_PAGE: &'static str = sql::SQLITE_CONVERSATION_PAGE;
    // RETURNING cannot say when an expired lease was due: that is read first.
    const CLAIM_DUE_AT: Option<&'static str> = Some(claimable!());
    const CAP_LOCK: Option<&'static str> = None;
    const CLIENT_LOCK: Option<&'static str> = None;
    const SNAPSHOT_LOCK: Option<&'static str> = None;
    const IMPORT_LOCK: Option<&'static str> = None;
    // Writes take turns and are group committed already (`SqlStorage::write`).
    const GROUP_INSERT: Option<&'static str> = None;
    // Writes are group committed already: many `sent` in one transaction, one fsync.
    const GROUP_MARK_SENT: Option<&'static str> = None;
    // Grouping the conversation reads made POST slower (measured: BENCHMARKS.md, "Design
    // choices measured"): reads on SQLite need no round trip, and the pool's connections
    // run them side by side.
    const GROUP_CONVERSATION: Option<GroupRead> = None;
    const GROUP_CONVERSATION_PAGE: Option<GroupRead> = None;
    // An INTEGER PRIMARY KEY left out takes one above the largest, and AUTOINCREMENT
    // remembers the largest id ever inserted, imported ones included.
    const AFTER_IMPORT: Option<&'static str> = None;

    fn page(row: &DbRow<Self>) -> Result<Vec<Message>, StorageError> {
        match Self::str(row, "page")? {
            Some(json) => rows::page_json(json),
            None => Ok(Vec::new()),
        }
    }

    fn migrator() -> &'static Migrator {
        &SQLITE_MIGRATOR
    }

    fn configure(
        options: SqliteConnectOptions,
    ) -> Result<(PoolOptions<Self>, SqliteConnectOptions), StorageError> {
        // SQLite opens a private, temporary database on each connection for an empty file
        // name: the pool would see a different, unmigrated database on every connection.
        if options.get_filename().as_os_str().is_empty() {
            return Err(StorageError::other(
                "the SQLite URL names no database file: use e.g. sqlite://cartloop.db \
                 (or sqlite::memory: for a database that lives as long as the process)",
            ));
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // Connections are kept open: they are cheap, and an in-memory database lives only
        // as long as one of its connections. A file connection does not die behind our
        // back, so it is not pinged each time it is taken from the pool (a round trip to its
        // thread on every request).
        //
        // A connection whose sqlx transaction did not end cleanly (SQLite rolled it back
        // itself after a full disk, so sqlx's ROLLBACK failed) is closed instead of being
        // returned: sqlx would refuse every later transaction on it. The storage's own
        // transactions never get there (`Tx`); this covers an embedder's, on `pool()`.
        let pool = PoolOptions::<Self>::new()
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .after_release(|conn, _| {
                Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
            });
        Ok((pool, options))
    }

    // The pool opens its first connection and, for `min_connections`, another at the same
    // time. On a new file both would switch it to WAL at once, which needs the exclusive
    // lock, and one fails with `database is locked` without waiting out the busy timeout.
    // One connection first makes the file WAL (it stays so); the pool's then find it done.
    // (An in-memory database made here goes with this connection, harmlessly.)
    async fn prepare(options: &SqliteConnectOptions) -> Result<(), StorageError> {
        let conn = sqlx::ConnectOptions::connect(options)
            .await
            .map_err(storage_error)?;
        sqlx::Connection::close(conn).await.map_err(storage_error)
    }

    fn announce_due(_pool: &sqlx::Pool<Self::Db>, _due: &Arc<DueWatch>) {}

    fn listen_due(_pool: &sqlx::Pool<Self::Db>, _due: &Arc<DueWatch>) -> Result<(), StorageError> {
        Ok(())
    }

    // One process: the storage's own poll of the log finds every event.
    fn listen_events(
        _pool: &sqlx::Pool<Self::Db>,
        _events: &Arc<DueWatch>,
    ) -> Result<(), StorageError> {
        Ok(())
    }

    const LOCK_SKIP: &'static str = "";

    const SEQUENCE_EVENTS: Option<&'static str> = None;
}
