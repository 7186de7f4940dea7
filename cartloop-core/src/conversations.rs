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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::demo_data;
    use crate::domain::{ConversationStatus, MessageStatus, NewConversation, NewMessage};
    use crate::ids::{StoreId, UserId};
    use crate::ports::prelude::*;
    use crate::testing::MemoryStorage;
    use crate::validate::Payload;
    use chrono::{TimeZone, Utc};

    fn cursor(max_message: i64, max_conversation: i64, activity: i64, after: i64) -> Cursor {
        Cursor {
            snapshot: Snapshot {
                max_message: MessageId(max_message),
                max_conversation: ConversationId(max_conversation),
            },
            after: ActivityKey {
                activity,
                conversation: ConversationId(after),
            },
        }
    }

    #[test]
    fn cursors_round_trip() {
        for c in [
            cursor(0, 0, 0, 0),
            cursor(900, 40, 512, 7),
            cursor(i64::MAX, i64::MAX, i64::MAX, i64::MAX),
        ] {
            let raw = c.encode();
            assert!(raw.starts_with("c1."), "{raw}");
            assert_eq!(Cursor::decode(&raw), Ok(c));
        }
        assert_eq!(cursor(900, 40, 512, 7).encode(), "c1.384.28.200.7");
    }

    #[test]
    fn foreign_cursors_are_refused() {
        for bad in [
            "",
            "c1",
            "c1.",
            "c2.1.2.3.4",
            "C1.1.2.3.4",
            "c1.1.2.3",
            "c1.1.2.3.4.5",
            "c1.1..3.4",
            "c1.1.2.3.g",
            "c1.1.2.3.-4",
            "c1.8000000000000000.1.2.3",
            "c1.00000000000000001.1.2.3",
            "c1 .1.2.3.4",
            "eyJhIjoxfQ==",
        ] {
            assert_eq!(Cursor::decode(bad), Err(InvalidCursor), "{bad:?}");
        }
    }

    fn chat(conversation: ConversationId, author: UserId) -> NewMessage {
        NewMessage {
            conversation_id: conversation,
            author_id: author,
            payload: Payload::text("hello"),
            status: MessageStatus::Received,
            created_at: Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap(),
            send_at: None,
            idempotency_key: None,
            not_before: None,
            last_received: None,
            waiting_for: None,
        }
    }

    async fn storage() -> MemoryStorage {
        let storage = MemoryStorage::new();
        storage.import(&demo_data()).await.unwrap();
        storage
    }

    #[tokio::test]
    async fn pages_cover_every_conversation_once_while_chats_arrive() {
        let storage = storage().await;
        let total = demo_data().conversations.len();
        let filter = ConversationFilter::default();
        let first = list_conversations(&storage, filter, 5, None).await.unwrap();
        let mut seen: Vec<ConversationId> = Vec::new();
        let mut page = first;
        let mut pages = 1;
        loop {
            seen.extend(page.conversations.iter().map(|r| r.conversation.id));
            // Between pages: a chat in the conversation listed last (it becomes the most
            // recent), a chat in one not listed yet, and a new conversation.
            let listed_last = *seen.last().unwrap();
            let context = storage.conversation(listed_last).await.unwrap().unwrap();
            storage
                .insert_message(chat(listed_last, context.client.id))
                .await
                .unwrap();
            let unlisted = ConversationId(2);
            if !seen.contains(&unlisted) {
                storage
                    .insert_message(chat(unlisted, UserId(1)))
                    .await
                    .unwrap();
            }
            storage
                .create_conversation(NewConversation {
                    store_id: StoreId(1),
                    operator_id: UserId(24),
                    client_id: UserId(27),
                    discount_code: None,
                })
                .await
                .unwrap();
            let Some(next) = page.next_cursor else { break };
            // As the API hands it out and gets it back.
            let next = Cursor::decode(&next.encode()).unwrap();
            page = list_conversations(&storage, filter, 5, Some(next))
                .await
                .unwrap();
            pages += 1;
        }
        let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), seen.len(), "repeated: {seen:?}");
        assert_eq!(seen.len(), total, "skipped: {seen:?}");
        assert_eq!(pages, total.div_ceil(5), "no empty last page");

        // A new first page sees the new chats and conversations.
        let fresh = list_conversations(&storage, filter, MAX_LIMIT, None)
            .await
            .unwrap();
        assert_eq!(fresh.conversations.len(), total + pages);
        assert_eq!(fresh.next_cursor, None);
    }

    #[tokio::test]
    async fn limits_are_clamped_and_filters_apply() {
        let storage = storage().await;
        let all = ConversationFilter::default();
        let one = list_conversations(&storage, all, 0, None).await.unwrap();
        assert_eq!(one.conversations.len(), 1);
        assert!(one.next_cursor.is_some());
        // Over MAX_LIMIT: clamped, still a whole list of the demo's 25.
        let many = list_conversations(&storage, all, 100_000, None)
            .await
            .unwrap();
        assert_eq!(many.conversations.len(), demo_data().conversations.len());
        assert_eq!(many.next_cursor, None);

        let resolved = ConversationFilter {
            status: Some(ConversationStatus::Resolved),
            ..ConversationFilter::default()
        };
        let page = list_conversations(&storage, resolved, 1, None)
            .await
            .unwrap();
        assert_eq!(page.conversations[0].conversation.id, ConversationId(24));
        let next = list_conversations(&storage, resolved, 1, page.next_cursor)
            .await
            .unwrap();
        assert_eq!(next.conversations[0].conversation.id, ConversationId(25));
        assert_eq!(next.next_cursor, None);
    }

    #[tokio::test]
    async fn most_recent_activity_first() {
        let storage = storage().await;
        let page = list_conversations(&storage, ConversationFilter::default(), 3, None)
            .await
            .unwrap();
        let ids: Vec<i64> = page
            .conversations
            .iter()
            .map(|r| r.conversation.id.0)
            .collect();
        // 24 holds the newest chat (5), 1 the next (3); then no chats, newest id first.
        assert_eq!(ids, [24, 1, 26]);
        storage
            .insert_message(chat(ConversationId(7), UserId(6)))
            .await
            .unwrap();
        let page = list_conversations(&storage, ConversationFilter::default(), 1, None)
            .await
            .unwrap();
        assert_eq!(page.conversations[0].conversation.id, ConversationId(7));
    }
}
