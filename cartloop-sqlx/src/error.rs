//! How sqlx errors become [`StorageError`]s: what a caller can act on.

use cartloop_core::ports::StorageError;
use sqlx::error::{DatabaseError, ErrorKind};

/// Classifies a sqlx error.
///
/// - no connection (pool exhausted or closed, I/O, TLS, a database that is starting up or
///   shutting down, a busy SQLite file): [`StorageError::Unavailable`], worth retrying later;
/// - unique violation: [`StorageError::Conflict`];
/// - foreign-key violation: [`StorageError::NotFound`] (a referenced row is missing);
/// - anything else: [`StorageError::Other`].
pub(crate) fn storage_error(error: sqlx::Error) -> StorageError {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StorageError::Unavailable(error.to_string()),
        sqlx::Error::Migrate(migrate) => match *migrate {
            sqlx::migrate::MigrateError::Execute(inner) => storage_error(inner),
            other => StorageError::Other(format!("migration failed: {other}")),
        },
        sqlx::Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation => StorageError::Conflict(db.message().to_owned()),
            ErrorKind::ForeignKeyViolation => StorageError::NotFound(db.message().to_owned()),
            _ if is_unavailable(db.as_ref()) => StorageError::Unavailable(db.message().to_owned()),
            _ => StorageError::Other(db.to_string()),
        },
        other => StorageError::Other(other.to_string()),
    }
}

/// Whether a database error means "cannot serve now" rather than "this request is wrong".
fn is_unavailable(db: &dyn DatabaseError) -> bool {
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let code = pg.code();
        // 08: connection exception; 53: insufficient resources (too many connections);
        // 57P01-03: shutting down or starting up.
        return code.starts_with("08")
            || code.starts_with("53")
            || matches!(code, "57P01" | "57P02" | "57P03");
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
