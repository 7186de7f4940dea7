//! [`AuditLog`]: who did what, newest first.

use super::StorageError;
use crate::ids::StoreId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// How the actor of an entry authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorKind {
    /// The deployment token.
    Token,
    /// An API key (`id`: the key's id).
    Key,
    /// A signed-in operator (`id`: its user id).
    Operator,
}

impl ActorKind {
    /// The name the API shows.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Key => "key",
            Self::Operator => "operator",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Token, Self::Key, Self::Operator]
            .into_iter()
            .find(|kind| kind.as_str() == s)
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// How it authenticated.
    pub kind: ActorKind,
    /// The key's or operator's id; `None` for the token.
    pub id: Option<i64>,
    /// The key's or operator's name, as it was then.
    pub name: Option<String>,
}

/// An entry to record. It never holds a password, key, session id or message text: only
/// what was done (`action`, e.g. `POST /chat/`), to what, by whom, and the answer's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who; `None` when the request was refused before anyone was known (a 401).
    pub actor: Option<Actor>,
    /// What, e.g. `POST /chat/` or `login`.
    pub action: String,
    /// The kind of thing acted on, e.g. `conversation`.
    pub target_kind: Option<String>,
    /// Its id.
    pub target_id: Option<String>,
    /// The store it belongs to, when known: what a manager's view of the log keeps to.
    pub store_id: Option<StoreId>,
    /// The HTTP status answered.
    pub status: u16,
}

/// A recorded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increases with every entry.
    pub id: i64,
    /// The entry as recorded.
    pub entry: NewAuditEntry,
}

/// Which entries to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditFilter {
    /// Only this store's (`None`: every entry).
    pub store: Option<StoreId>,
    /// Only this actor's: its kind and, for keys and operators, its id.
    pub actor: Option<(ActorKind, Option<i64>)>,
    /// Only entries with ids below this one (the cursor of the previous page).
    pub before: Option<i64>,
}

/// The audit log.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Records `entries`, all or none, with increasing ids in their order.
    async fn append_audit(&self, entries: Vec<NewAuditEntry>) -> Result<(), StorageError>;

    /// At most `limit` entries matching `filter`, newest (highest id) first.
    async fn audit(&self, filter: AuditFilter, limit: u32)
        -> Result<Vec<AuditEntry>, StorageError>;

    /// Deletes the entries recorded before `before`; returns how many.
    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StorageError>;
}
