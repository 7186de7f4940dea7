//! The conversations list (`GET /conversations/`): most recent activity first, paged with
//! an opaque cursor that stays valid, and skips or repeats nothing, while chats arrive.
//!
//! The first page takes a [`Snapshot`] of the data (the highest chat and conversation ids)
//! and every later page keeps to it: a conversation's place is its newest chat *within the
//! snapshot*, so a new chat does not move it past the cursor, and conversations created
//! after the first page are not listed (a new first page shows them).

use crate::ids::{ConversationId, MessageId};
use crate::ports::{
    ActivityKey, ConversationFilter, ConversationSummary, Snapshot, Storage, StorageError,
};

/// Rows per page when none is asked for.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most rows per page.
pub const MAX_LIMIT: u32 = 500;

/// Where a page starts: the snapshot and the last row of the page before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The first page's snapshot.
    pub snapshot: Snapshot,
    /// The last row already listed.
    pub after: ActivityKey,
}

/// A cursor that is not one this server handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor: pass the nextCursor of the previous page as it is")]
pub struct InvalidCursor;

const CURSOR_PREFIX: &str = "c1";

impl Cursor {
    /// The cursor as the API shows it: opaque to clients, stable across servers.
    pub fn encode(&self) -> String {
        let numbers = [
            self.snapshot.max_message.0,
            self.snapshot.max_conversation.0,
            self.after.activity,
            self.after.conversation.0,
        ];
        let mut out = String::from(CURSOR_PREFIX);
        for n in numbers {
            out.push('.');
            out.push_str(&format!("{n:x}"));
        }
        out
    }

    /// Reads a cursor made by [`encode`](Self::encode).
    ///
    /// # Errors
    /// [`InvalidCursor`] for anything else.
    ///
    /// ```
    /// use cartloop_core::conversations::Cursor;
    /// use cartloop_core::ids::{ConversationId, MessageId};
    /// use cartloop_core::ports::{ActivityKey, Snapshot};
    /// let cursor = Cursor {
    ///     snapshot: Snapshot { max_message: MessageId(900), max_conversation: ConversationId(40) },
    ///     after: ActivityKey { activity: 512, conversation: ConversationId(7) },
    /// };
    /// assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
    /// assert!(Cursor::decode("c1.zz").is_err());
    /// ```
    pub fn decode(raw: &str) -> Result<Self, InvalidCursor> {
        let mut parts = raw.split('.');
        if parts.next() != Some(CURSOR_PREFIX) {
            return Err(InvalidCursor);
        }
        let mut number = || {
            parts
                .next()
                .filter(|p| !p.is_empty() && p.len() <= 16)
                .and_then(|p| i64::from_str_radix(p, 16).ok())
                .filter(|n| *n >= 0)
                .ok_or(InvalidCursor)
        };
        let cursor = Self {
            snapshot: Snapshot {
                max_message: MessageId(number()?),
                max_conversation: ConversationId(number()?),
            },
            after: ActivityKey {
                activity: number()?,
                conversation: ConversationId(number()?),
            },
        };
        if parts.next().is_some() {
            return Err(InvalidCursor);
        }
        Ok(cursor)
    }
}

/// One page of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationPage {
    /// The rows, most recent activity first.
    pub conversations: Vec<ConversationSummary>,
    /// The cursor of the next page; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

/// Why the list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The cursor is not one this server handed out.
    #[error(transparent)]
    InvalidCursor(#[from] InvalidCursor),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One page of conversations matching `filter`: the first (`cursor: None`) or the one after
/// `cursor`. `limit` is clamped to `1..=MAX_LIMIT`.
///
/// # Errors
/// Storage failures.
pub async fn list_conversations(
    storage: &dyn Storage,
    filter: ConversationFilter,
    limit: u32,
    cursor: Option<Cursor>,
) -> Result<ConversationPage, StorageError> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let (snapshot, after) = match cursor {
        Some(cursor) => (cursor.snapshot, Some(cursor.after)),
        None => (storage.snapshot().await?, None),
    };
    let mut conversations = storage
        .list_conversations(filter, snapshot, after, limit + 1)
        .await?;
    let next_cursor = if conversations.len() > limit as usize {
        conversations.truncate(limit as usize);
        conversations.last().map(|last| Cursor {
            snapshot,
            after: last.key,
        })
    } else {
        None
    };
    Ok(ConversationPage {
        conversations,
        next_cursor,
    })
}
