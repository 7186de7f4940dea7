//! How sqlx errors become [`StorageError`]s: what a caller can act on, with the sqlx error
//! kept as the cause (for logs) and never in the text an API caller sees.

use cartloop_core::disk_fault::{DiskFault, DiskFaultKind};
use cartloop_core::ports::StorageError;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::migrate::MigrateError;

/// Classifies a sqlx error: a disk that is full or fails is [`StorageError::Unavailable`]
/// with a [`DiskFault`] cause; no connection (pool exhausted or closed, I/O, TLS, a
/// database that is starting up, shutting down or overloaded, a busy SQLite file, a
/// deadlock or serialization failure) is [`StorageError::Unavailable`], worth retrying;
/// anything else is [`StorageError::Other`].
///
/// Unique and foreign-key violations the caller expects are named by the caller instead
/// (see [`conflict`] and [`violation`]): only it knows which entity is meant.
pub(crate) fn storage_error(error: sqlx::Error) -> StorageError {
    if let Some(kind) = disk_fault(&error) {
        DiskFault::new(kind, error).into_error()
    } else if is_unavailable(&error) {
        StorageError::Unavailable(Box::new(error))
    } else {
        StorageError::Other(Box::new(error))
    }
}

/// A failed migration: [`StorageError::Unavailable`] when the database could not be
/// reached, [`StorageError::Other`] otherwise.
pub(crate) fn migrate_error(error: MigrateError) -> StorageError {
    let cause = match &error {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => Some(e),
        _ => None,
    };
    if let Some(kind) = cause.and_then(disk_fault) {
        DiskFault::new(kind, error).into_error()
    } else if cause.is_some_and(is_unavailable) {
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

/// What each write of a failed group commit gets instead of the database's error, which
/// only one of them could own: whether the group met a disk fault.
#[derive(Debug)]
pub(crate) struct GroupFailed {
    pub(crate) disk: Option<DiskFaultKind>,
}

impl std::fmt::Display for GroupFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.disk {
            Some(DiskFaultKind::Full) => f.write_str("the group commit failed: the disk is full"),
            Some(DiskFaultKind::Io) => f.write_str("the group commit failed: a disk I/O error"),
            None => f.write_str("the group commit failed"),
        }
    }
}

impl std::error::Error for GroupFailed {}

/// The disk fault a sqlx error reports: SQLite's `SQLITE_FULL` and the `SQLITE_IOERR`
/// family, PostgreSQL's `disk_full` (53100) and `io_error` (58030), or a failed group
/// commit that met one.
pub(crate) fn disk_fault(error: &sqlx::Error) -> Option<DiskFaultKind> {
    match error {
        sqlx::Error::Database(db) => database_disk_fault(db.as_ref()),
        sqlx::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<GroupFailed>())
            .and_then(|group| group.disk),
        _ => None,
    }
}

fn database_disk_fault(db: &dyn DatabaseError) -> Option<DiskFaultKind> {
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return match pg.code() {
            "53100" => Some(DiskFaultKind::Full),
            "58030" => Some(DiskFaultKind::Io),
            _ => None,
        };
    }
    #[cfg(feature = "sqlite")]
    if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        // The primary result code is the low byte of the extended one (SQLITE_IOERR_WRITE
        // is 778 = 10 | 3 << 8).
        let primary = sqlite
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff);
        return match primary {
            Some(13) => Some(DiskFaultKind::Full),
            Some(10) => Some(DiskFaultKind::Io),
            _ => None,
        };
    }
    let _ = db;
    None
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
        // deadlock, which a retry resolves; 3D000: the database is gone (dropped or being
        // restored): the service is down, not the request wrong.
        return code.starts_with("08")
            || code.starts_with("53")
            || matches!(
                code,
                "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "3D000"
            );
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
