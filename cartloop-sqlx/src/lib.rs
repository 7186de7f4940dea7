//! # cartloop-sqlx
//!
//! cartloop's [`Storage`] on [sqlx](https://docs.rs/sqlx): [`SqliteStorage`] (feature
//! `sqlite`, the embedded default: one file, no server) and [`PgStorage`] (feature
//! `postgres`, for production and for several servers sharing one database). Both pass the
//! core's storage conformance suite and apply their embedded migrations when they connect.
//!
//! [`connect`] picks the backend from a URL's scheme, as the server's `DATABASE_URL`:
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! # #[cfg(feature = "sqlite")] {
//! use cartloop_core::demo::demo_data;
//! use cartloop_core::ids::ConversationId;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let url = format!("sqlite://{}", dir.path().join("cartloop.db").display());
//! let storage = cartloop_sqlx::connect(&url).await?;
//! storage.import(&demo_data()).await?;
//! let conversation = storage.conversation(ConversationId(1)).await?.unwrap();
//! assert_eq!(conversation.client.name, "John Carter");
//! # }
//! # Ok::<(), cartloop_core::ports::StorageError>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//! - `migrations/sqlite/`, `migrations/postgres/`: the schemas, embedded as
//!   [`SQLITE_MIGRATOR`] and [`PG_MIGRATOR`]. One `users` table holds operators and clients
//!   (one id space), each of one store; conversations reference it by `(id, role)`, and by
//!   `(id, role, store_id)` for the client, so an operator id cannot stand where a client's
//!   belongs and a client of another store cannot stand in a conversation (`0003` split the
//!   clients that stores used to share). Released migrations are never edited: a schema change
//!   is a new migration, and existing databases upgrade in place when they connect.
//! - `storage/`: [`SqlStorage`], the one [`Storage`] implementation, a leaf that says what
//!   to run for each port (one file per port: `directory`, `conversations`, `queue`,
//!   `admin`); every query and every row mapping exists once. [`SqliteStorage`] is
//!   `SqlStorage<Sqlite>` and [`PgStorage`] is `SqlStorage<Postgres>`.
//! - `executor.rs`: how statements reach the database — the pool, this process's turn to
//!   write, the group commit (SQLite: writes that arrive during a commit go in the next
//!   one), the queues of `group.rs` (statements that arrive together run as one, joined
//!   back by their place) for grouped inserts (`group_insert.rs`), grouped reads
//!   (`group_read.rs`) and grouped records of sends (`group_sent.rs`), the fault watch (`fault.rs`: the disk full or failing) and the
//!   due-watch (`due.rs`: who is told of due messages, and the listener tasks); `tx.rs`:
//!   transactions that never go back to the pool open.
//! - `dialect.rs`: the seam. Each dialect says how it stores instants (INTEGER
//!   microseconds on SQLite, `TIMESTAMPTZ` on PostgreSQL) and what really differs:
//!   - `sqlite.rs`: writes take turns on an in-process lock, claims run in `BEGIN
//!     IMMEDIATE`; due messages wake this process only;
//!   - `postgres.rs`: claims lock rows with `FOR UPDATE SKIP LOCKED` and capped claims take
//!     turns on an advisory lock; imports move the id sequences; due messages are announced
//!     with `NOTIFY cartloop_due` and heard by every server's `LISTEN`.
//! - `backup.rs`: [`backup`], a consistent copy of a SQLite database taken while servers
//!   use it (`VACUUM INTO`).
//! - `tx.rs`: the transactions, which never leave a connection inside one; `fault.rs`:
//!   whether the disk takes writes, for `ping` and the logs.
//! - `sql.rs`: the SQL both run unchanged; `rows.rs`: rows to domain values (a bad stored
//!   value is [`StorageError::Other`], never a panic); `error.rs`: sqlx errors to
//!   [`StorageError`]s a caller can act on (an unreachable or exhausted database is
//!   [`StorageError::Unavailable`], never a hang: connections are awaited at most 5 s), the
//!   sqlx error kept as the cause.
//!
//! Queries are checked at run time (`sqlx::query`), not at compile time, so the crate builds
//! without a database. They are prepared once per connection and cached by sqlx.

// The docs link both backends; with one feature off, half the links have no target.
#![cfg_attr(
    not(all(feature = "sqlite", feature = "postgres")),
    allow(rustdoc::broken_intra_doc_links)
)]

use cartloop_core::ports::{Storage, StorageError};
use std::sync::Arc;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod dialect;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod due;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod error;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod executor;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod fault;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod group;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod group_insert;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod group_read;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod group_sent;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod rows;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod storage;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod tx;

#[cfg(feature = "sqlite")]
mod backup;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "sqlite")]
pub use backup::{backup, BackupSummary};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use dialect::Dialect;
#[cfg(feature = "postgres")]
pub use postgres::{PgStorage, Postgres, PG_MIGRATOR};
#[cfg(feature = "sqlite")]
pub use sqlite::{Sqlite, SqliteStorage, SQLITE_MIGRATOR};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use storage::SqlStorage;

/// The longest a call waits for a free connection before failing with
/// [`StorageError::Unavailable`].
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens the storage `url` names, applying its migrations: `sqlite:` (e.g.
/// `sqlite://cartloop.db`, created if missing) or `postgres:` / `postgresql:`.
///
/// # Errors
/// [`StorageError::Other`] for another scheme, or one whose feature (`sqlite`, `postgres`)
/// this build lacks; otherwise as [`SqliteStorage::connect`] and [`PgStorage::connect`].
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cartloop_core::ports::StorageError;
/// let err = cartloop_sqlx::connect("mysql://localhost/cartloop").await.err();
/// assert!(matches!(err, Some(StorageError::Other(_))));
/// # });
/// ```
pub async fn connect(url: &str) -> Result<Arc<dyn Storage>, StorageError> {
    // Only the scheme goes into errors: the rest of the URL may hold a password.
    let scheme = url
        .split_once(':')
        .map_or("", |(scheme, _)| scheme)
        .to_ascii_lowercase();
    match scheme.as_str() {
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(Arc::new(SqliteStorage::connect(url).await?)),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(PgStorage::connect(url).await?)),
        #[cfg(not(feature = "sqlite"))]
        "sqlite" => Err(missing_feature("SQLite", "sqlite")),
        #[cfg(not(feature = "postgres"))]
        "postgres" | "postgresql" => Err(missing_feature("PostgreSQL", "postgres")),
        _ => Err(StorageError::other(format!(
            "unsupported database URL scheme {scheme:?}: expected sqlite: or postgres:"
        ))),
    }
}

#[cfg(not(all(feature = "sqlite", feature = "postgres")))]
fn missing_feature(database: &str, feature: &str) -> StorageError {
    StorageError::other(format!(
        "this build has no {database} support: enable feature `{feature}` of cartloop-sqlx"
    ))
}
