//! [`StorageError`]: why a storage call failed, in terms a caller can act on.

/// The cause of a [`StorageError`]: the adapter's own error, kept for logs and
/// [`std::error::Error::source`], never shown to API callers.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a storage call failed.
///
/// The `Display` text of each variant is safe to show to an API caller; the database's own
/// message, which may name tables, values or hosts, is only in [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A referenced row does not exist (e.g. a message for an unknown conversation). The
    /// text names what is missing, e.g. `conversation 9`.
    #[error("not found: {0}")]
    NotFound(String),
    /// A uniqueness rule was violated (e.g. a second client with the same email). The text
    /// says which.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The storage cannot be reached or has no free connection; retrying later may help.
    /// The HTTP layer answers 503.
    #[error("storage unavailable")]
    Unavailable(#[source] Cause),
    /// Anything else: a bug, corrupt data, an unexpected database error.
    #[error("storage error")]
    Other(#[source] Cause),
}

impl StorageError {
    /// An [`Unavailable`](Self::Unavailable) error with a plain-text cause.
    pub fn unavailable(cause: impl Into<Cause>) -> Self {
        Self::Unavailable(cause.into())
    }

    /// An [`Other`](Self::Other) error with a plain-text cause.
    pub fn other(cause: impl Into<Cause>) -> Self {
        Self::Other(cause.into())
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// The error with its chain of causes, for logs: `storage unavailable: pool timed out`.
    pub fn detail(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }
}
