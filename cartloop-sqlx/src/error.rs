//! How sqlx errors become [`StorageError`]s: what a caller can act on, with the sqlx error
//! kept as the cause (for logs) and never in the text an API caller sees.

use cartloop_core::ports::StorageError;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::migrate::MigrateError;

/// Classifies a sqlx error: no connection (pool exhausted or closed, I/O, TLS, a database
/// that is starting up, shutting down or overloaded, a busy SQLite file, a deadlock or
/// serialization failure) is [`StorageError::Unavailable`], worth retrying; anything else is
/// [`StorageError::Other`].
///
/// Unique and foreign-key violations the caller expects are named by the caller instead
/// (see [`conflict`] and [`violation`]): only it knows which entity is meant.
pub(crate) fn storage_error(error: sqlx::Error) -> StorageError {
    if is_unavailable(&error) {
        StorageError::Unavailable(Box::new(error))
    } else {
        StorageError::Other(Box::new(error))
    }
}

/// A failed migration: [`StorageError::Unavailable`] when the database could not be
/// reached, [`StorageError::Other`] otherwise.
pub(crate) fn migrate_error(error: MigrateError) -> StorageError {
    let unavailable = match &error {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => is_unavailable(e),
        _ => false,
    };
    if unavailable {
        StorageError::Unavailable(Box::new(error))
    } else {
        StorageError::Other(Box::new(error))
    }
}

/// A column that does not decode: stored data this version cannot read.
pub(crate) fn decode_error(error: sqlx::Error) -> StorageError {
    StorageError::Other(Box::new(error))
}

/// The constraint a failed statement violated, if it was a unique or foreign-key one.
pub(crate) fn violation(error: &sqlx::Error) -> Option<ErrorKind> {
    match error {
        sqlx::Error::Database(db) => match db.kind() {
            kind @ (ErrorKind::UniqueViolation | ErrorKind::ForeignKeyViolation) => Some(kind),
            _ => None,
        },
        _ => None,
    }
}

/// Maps a unique violation to [`StorageError::Conflict`] saying `what` is taken, and any
/// other error as [`storage_error`].
pub(crate) fn conflict(what: &'static str) -> impl FnOnce(sqlx::Error) -> StorageError {
    move |error| match violation(&error) {
        Some(ErrorKind::UniqueViolation) => StorageError::Conflict(what.to_owned()),
        _ => storage_error(error),
    }
}

/// Maps a foreign-key violation to [`StorageError::NotFound`] naming what is missing, and
/// any other error as [`storage_error`].
pub(crate) fn not_found(what: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> StorageError {
    move |error| match violation(&error) {
        Some(ErrorKind::ForeignKeyViolation) => StorageError::NotFound(what()),
        _ => storage_error(error),
    }
}

fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => database_unavailable(db.as_ref()),
        _ => false,
    }
}

/// Whether a database error means "cannot serve now" rather than "this request is wrong".
fn database_unavailable(db: &dyn DatabaseError) -> bool {
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let code = pg.code();
        // 08: connection exception; 53: insufficient resources (too many connections);
        // 57P01-03: shutting down or starting up; 40001/40P01: serialization failure and
        // deadlock, which a retry resolves.
        return code.starts_with("08")
            || code.starts_with("53")
            || matches!(code, "57P01" | "57P02" | "57P03" | "40001" | "40P01");
    }
    #[cfg(feature = "sqlite")]
    if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        // The primary result code is the low byte of the extended one: SQLITE_BUSY (5) or
        // SQLITE_LOCKED (6) once the busy timeout has run out.
        let primary = sqlite
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff);
        return matches!(primary, Some(5 | 6));
    }
    let _ = db;
    false
}
