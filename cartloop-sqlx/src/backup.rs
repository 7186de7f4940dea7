//! [`backup`]: a consistent copy of a SQLite database taken while servers use it.

use crate::error::storage_error;
use cartloop_core::ports::StorageError;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// What [`backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// The backup file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The messages it holds.
    pub messages: u64,
}

/// Copies the SQLite database `url` names to a new file `target`, while servers go on
/// reading and writing it: `VACUUM INTO` reads one snapshot of the database (a read
/// transaction, which in WAL mode blocks no writer), so the copy holds every transaction
/// committed before it started and nothing of those after. The copy is written beside
/// `target` under a temporary name, checked (`PRAGMA integrity_check`), flushed to disk
/// and only then renamed to `target`: a backup that exists is complete.
///
/// Restore by stopping the server, replacing the database file with the backup and
/// removing the old file's `-wal` and `-shm` files (they belong to the old database), then
/// starting the server.
///
/// # Errors
/// [`StorageError::Other`] for a URL that is not `sqlite:` (PostgreSQL is backed up with
/// `pg_dump`), a database file that does not exist, a `target` that exists, or a copy that
/// fails its check; [`StorageError::Unavailable`] when the database cannot be read or the
/// copy cannot be written (a full disk is a
/// [`DiskFault`](cartloop_core::disk_fault::DiskFault)).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let url = format!("sqlite://{}", dir.path().join("cartloop.db").display());
/// let storage = cartloop_sqlx::connect(&url).await?;
/// storage.import(&cartloop_core::demo::demo_data()).await?;
/// let copy = dir.path().join("backup.db");
/// let summary = cartloop_sqlx::backup(&url, &copy).await?;
/// assert_eq!(summary.messages, 5);
/// assert!(cartloop_sqlx::backup(&url, &copy).await.is_err(), "never overwrites");
/// # Ok::<(), cartloop_core::ports::StorageError>(())
/// # }).unwrap();
/// ```
pub async fn backup(url: &str, target: &Path) -> Result<BackupSummary, StorageError> {
    let scheme = url
        .split_once(':')
        .map_or("", |(s, _)| s)
        .to_ascii_lowercase();
    if scheme != "sqlite" {
        return Err(StorageError::other(format!(
            "backup copies SQLite databases; for {scheme:?} use the database's own tool \
             (PostgreSQL: pg_dump --format=custom --file=cartloop.dump \"$DATABASE_URL\", \
             while the servers run)"
        )));
    }
    if target.exists() {
        return Err(StorageError::other(format!(
            "{} exists: a backup never replaces a file",
            target.display()
        )));
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(storage_error)?
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(5))
        .disable_statement_logging();
    if !options.get_filename().exists() {
        return Err(StorageError::other(format!(
            "no database at {}",
            options.get_filename().display()
        )));
    }
    let name = target
        .file_name()
        .map_or_else(|| "backup".into(), |n| n.to_string_lossy().into_owned());
    let partial = target.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let result = copy(options, &partial, target).await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

async fn copy(
    options: SqliteConnectOptions,
    partial: &Path,
    target: &Path,
) -> Result<BackupSummary, StorageError> {
    let mut source = options.connect().await.map_err(storage_error)?;
    let into = partial
        .to_str()
        .ok_or_else(|| StorageError::other("the backup path is not UTF-8"))?;
    sqlx::query("VACUUM INTO $1")
        .bind(into)
        .execute(&mut source)
        .await
        .map_err(storage_error)?;
    source.close().await.map_err(storage_error)?;

    let mut copy = SqliteConnectOptions::new()
        .filename(partial)
        .read_only(true)
        .connect()
        .await
        .map_err(storage_error)?;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut copy)
        .await
        .map_err(storage_error)?;
    if check != "ok" {
        return Err(StorageError::other(format!(
            "the copy fails its integrity check: {check}"
        )));
    }
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&mut copy)
        .await
        .map_err(storage_error)?;
    copy.close().await.map_err(storage_error)?;

    let io = |e: std::io::Error| StorageError::unavailable(e);
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(partial, target).map_err(io)?;
    #[cfg(unix)]
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(BackupSummary {
        path: target.to_owned(),
        bytes: std::fs::metadata(target).map_err(io)?.len(),
        messages: u64::try_from(messages).unwrap_or(0),
    })
}
