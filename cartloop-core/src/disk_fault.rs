//! [`DiskFault`]: a storage that answers but cannot write to its disk, because the disk is
//! full or failing.
//!
//! It is a passing fault, not a bug: the storage refuses the write, keeps what it had, and
//! works again once an operator frees space. Storages report it as
//! [`StorageError::Unavailable`] whose cause is a `DiskFault`, so every caller that retries
//! unavailable storage retries this too, and the HTTP layer can answer it with a code of its
//! own (`503 storage_full` with `Retry-After`) instead of a generic 503.

use crate::ports::{Cause, StorageError};

/// What the disk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFaultKind {
    /// No space left: SQLite's `SQLITE_FULL`, PostgreSQL's `disk_full` (53100), `ENOSPC`.
    Full,
    /// A read, write or sync of the disk failed (SQLite's `SQLITE_IOERR` family).
    Io,
}

/// The cause inside [`StorageError::Unavailable`] when the storage cannot write to its
/// disk. The `Display` text is safe to show; the database's own error is the
/// [`source`](std::error::Error::source).
///
/// ```
/// use cartloop_core::disk_fault::{DiskFault, DiskFaultKind};
/// use cartloop_core::ports::StorageError;
///
/// let error = DiskFault::new(DiskFaultKind::Full, "database or disk is full").into_error();
/// assert!(error.is_transient());
/// assert_eq!(DiskFault::of(&error).map(DiskFault::kind), Some(DiskFaultKind::Full));
/// assert!(DiskFault::of(&StorageError::unavailable("pool timed out")).is_none());
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{}", match .kind {
    DiskFaultKind::Full => "the database's disk is full",
    DiskFaultKind::Io => "the database's disk failed an I/O operation",
})]
pub struct DiskFault {
    kind: DiskFaultKind,
    #[source]
    source: Cause,
}

impl DiskFault {
    /// A fault of `kind`, caused by `source` (the database's error, for logs).
    pub fn new(kind: DiskFaultKind, source: impl Into<Cause>) -> Self {
        Self {
            kind,
            source: source.into(),
        }
    }

    /// What the disk did.
    pub fn kind(&self) -> DiskFaultKind {
        self.kind
    }

    /// The fault as the error storages return: [`StorageError::Unavailable`].
    pub fn into_error(self) -> StorageError {
        StorageError::Unavailable(Box::new(self))
    }

    /// The disk fault `error` reports, if it reports one.
    pub fn of(error: &StorageError) -> Option<&Self> {
        match error {
            StorageError::Unavailable(cause) => cause.downcast_ref::<Self>(),
            _ => None,
        }
    }
}
