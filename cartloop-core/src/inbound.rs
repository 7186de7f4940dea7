//! A client's reply by email: matched to its conversation and stored as a
//! `received` chat. Parsing the raw email (MIME, quotes, signatures) is the mail adapter's
//! work (`cartloop_mail::inbound`); this module holds the rules.

use crate::domain::{ConversationStatus, MessageStatus, NewMessage, Role};
use crate::ids::{ConversationId, MessageId};
use crate::message_id;
use crate::ports::{Clock, Links, Storage, StorageError};
use crate::validate::Payload;

/// Longest reply text kept, in characters; longer replies are cut.
pub const MAX_REPLY_CHARS: usize = 10_000;

/// Longest `Message-ID` kept for recognizing a second delivery, in characters.
const MAX_MESSAGE_ID_CHARS: usize = 500;

/// A reply, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundEmail {
    /// The reply's own `Message-ID` (without brackets): a second delivery of the same
    /// email is stored once.
    pub message_id: Option<String>,
    /// Every recipient address (`To`, `Cc`, `Delivered-To`, `X-Original-To`), where the
    /// `reply+<token>@` address is looked for.
    pub recipients: Vec<String>,
    /// The ids of `In-Reply-To` then `References`, newest first, without brackets.
    pub references: Vec<String>,
    /// The new text only: quoted original and signature removed.
    pub text: String,
}

/// What [`receive_reply`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedReply {
    /// The chat.
    pub chat_id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// False when this email was stored before (same `Message-ID`).
    pub created: bool,
}

/// Why a reply was not stored.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// Neither a signed reply address nor a reference to an email we sent.
    #[error("the email names no conversation: no valid reply+ address and no reference to an email we sent")]
    Unmatched,
    /// Nothing is left once quotes and signature are removed.
    #[error("the reply has no text of its own")]
    Empty,
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Finds the conversation a reply belongs to: by a signed `reply+<token>@` recipient, else
/// by a `Message-ID` we sent named in `In-Reply-To`/`References` (its id and creation
/// instant must both match a stored operator's message).
///
/// # Errors
/// Storage failures.
pub async fn match_conversation(
    storage: &dyn Storage,
    links: &dyn Links,
    email: &InboundEmail,
) -> Result<Option<ConversationId>, StorageError> {
    if let Some(id) = email
        .recipients
        .iter()
        .find_map(|address| links.conversation_of_reply(address))
    {
        return Ok(Some(id));
    }
    for reference in &email.references {
        let Some((id, created_ms)) = message_id::parse(reference) else {
            continue;
        };
        let Some(message) = storage.message(id).await? else {
            continue;
        };
        let ours = message.created_at.timestamp_millis() == created_ms
            && !matches!(message.status, MessageStatus::Received);
        if ours {
            return Ok(Some(message.conversation_id));
        }
    }
    Ok(None)
}

/// Stores a client's reply in its conversation as a `received` chat written by the
/// conversation's client. Replies are not held to the payload rules, but control
/// and invisible characters are dropped (a NUL cannot even be stored by PostgreSQL) and the
/// text is cut at [`MAX_REPLY_CHARS`]. A reply to a resolved conversation is stored too, and
/// reopens it: the client's words are never dropped, and the operator sees them in the open
/// conversations.
///
/// # Errors
/// [`InboundError::Unmatched`], [`InboundError::Empty`], storage failures.
pub async fn receive_reply(
    storage: &dyn Storage,
    clock: &dyn Clock,
    links: &dyn Links,
    email: InboundEmail,
) -> Result<ReceivedReply, InboundError> {
    let text = crate::text::clean(email.text.trim(), MAX_REPLY_CHARS);
    let text = text.trim();
    if text.is_empty() {
        return Err(InboundError::Empty);
    }
    let conversation_id = match_conversation(storage, links, &email)
        .await?
        .ok_or(InboundError::Unmatched)?;
    let context = storage
        .conversation(conversation_id)
        .await?
        .ok_or(InboundError::Unmatched)?;
    let client = context.client.id;
    debug_assert_eq!(context.role_of(client), Some(Role::Client));
    let inserted = storage
        .insert_message(NewMessage {
            conversation_id,
            author_id: client,
            payload: Payload::text(text),
            status: MessageStatus::Received,
            created_at: clock.now(),
            send_at: None,
            idempotency_key: email
                .message_id
                .map(|id| format!("email:{}", crate::text::clean(&id, MAX_MESSAGE_ID_CHARS)))
                .filter(|key| key.len() > "email:".len()),
            not_before: None,
            last_received: None,
            waiting_for: None,
        })
        .await?;
    if inserted.created && context.conversation.status == ConversationStatus::Resolved {
        storage
            .set_conversation_status(conversation_id, ConversationStatus::Open)
            .await?;
    }
    Ok(ReceivedReply {
        chat_id: inserted.message.id,
        conversation_id: inserted.message.conversation_id,
        created: inserted.created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::demo_data;
    use crate::domain::{ConversationContext, Message};
    use crate::email_address::EmailAddress;
    use crate::ids::UserId;
    use crate::ports::prelude::*;
    use crate::ports::Page;
    use crate::testing::{ManualClock, MemoryStorage};
    use chrono::{TimeZone, Utc};

    /// Reply addresses `reply+conv-<id>@reply.example.com`, "signed" by their form only.
    struct FakeLinks;

    impl Links for FakeLinks {
        fn reply_to(&self, context: &ConversationContext) -> Option<EmailAddress> {
            let id = context.conversation.id;
            EmailAddress::parse(&format!("reply+conv-{id}@reply.example.com")).ok()
        }

        fn unsubscribe_url(&self, _: &ConversationContext) -> Option<String> {
            None
        }

        fn conversation_of_reply(&self, address: &str) -> Option<ConversationId> {
            let local = address.strip_suffix("@reply.example.com")?;
            let id = local.strip_prefix("reply+conv-")?;
            id.parse().ok().map(ConversationId)
        }

        fn client_of_unsubscribe(&self, _: &str) -> Option<UserId> {
            None
        }
    }

    async fn setup() -> (MemoryStorage, ManualClock) {
        let storage = MemoryStorage::new();
        storage.import(&demo_data()).await.unwrap();
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap());
        (storage, clock)
    }

    async fn chats(storage: &MemoryStorage, id: i64) -> Vec<Message> {
        let page = Page {
            limit: 1000,
            before: None,
        };
        let (_, messages) = storage
            .conversation_page(ConversationId(id), page)
            .await
            .unwrap()
            .unwrap();
        messages
    }

    /// The Message-ID we sent message `id` with.
    async fn sent_id(storage: &MemoryStorage, id: i64) -> String {
        let message = storage.message(MessageId(id)).await.unwrap().unwrap();
        message_id::format(
            message.id,
            message.created_at,
            "hello@sneakerhub.example.com",
        )
    }

    fn email(text: &str) -> InboundEmail {
        InboundEmail {
            text: text.to_owned(),
            ..InboundEmail::default()
        }
    }

    #[tokio::test]
    async fn a_reply_address_names_the_conversation() {
        let (storage, clock) = setup().await;
        let reply = InboundEmail {
            recipients: vec![
                "hello@sneakerhub.example.com".into(),
                "reply+conv-1@reply.example.com".into(),
            ],
            ..email("Yes please, size 42. Merci, c'est \u{e7}a \u{1f44d}")
        };
        let stored = receive_reply(&storage, &clock, &FakeLinks, reply)
            .await
            .unwrap();
        assert_eq!(stored.conversation_id, ConversationId(1));
        assert!(stored.created);
        let message = storage.message(stored.chat_id).await.unwrap().unwrap();
        assert_eq!(message.author_id, UserId(27), "written by the client");
        assert_eq!(message.status, MessageStatus::Received);
        assert_eq!(
            message.payload.as_str(),
            "Yes please, size 42. Merci, c'est \u{e7}a \u{1f44d}",
            "replies are not held to the payload's character set"
        );
        assert_eq!((message.created_at, message.send_at), (clock.now(), None));
    }

    #[tokio::test]
    async fn the_reply_address_wins_over_references() {
        let (storage, _) = setup().await;
        let reply = InboundEmail {
            recipients: vec!["reply+conv-2@reply.example.com".into()],
            references: vec![sent_id(&storage, 3).await],
            ..email("hi")
        };
        let matched = match_conversation(&storage, &FakeLinks, &reply).await;
        assert_eq!(matched.unwrap(), Some(ConversationId(2)));
    }

    #[tokio::test]
    async fn references_name_a_message_we_sent() {
        let (storage, clock) = setup().await;
        let reply = InboundEmail {
            recipients: vec!["hello@sneakerhub.example.com".into()],
            references: vec!["CAF=abc@mail.gmail.com".into(), sent_id(&storage, 3).await],
            ..email("Thanks!")
        };
        let stored = receive_reply(&storage, &clock, &FakeLinks, reply)
            .await
            .unwrap();
        assert_eq!(stored.conversation_id, ConversationId(1));
        assert_eq!(chats(&storage, 1).await.len(), 4);
    }

    #[tokio::test]
    async fn a_reference_must_match_the_creation_instant_and_an_operator_message() {
        let (storage, _) = setup().await;
        let message = storage.message(MessageId(3)).await.unwrap().unwrap();
        // Message 3 as a database reset would have numbered another message.
        let other_time = message.created_at + chrono::Duration::milliseconds(1);
        let stale = message_id::format(message.id, other_time, "x@example.com");
        // Message 2 is the client's own: never sent by us.
        let clients = sent_id(&storage, 2).await;
        let unknown = message_id::format(MessageId(999), message.created_at, "x@example.com");
        for reference in [stale, clients, unknown] {
            let reply = InboundEmail {
                references: vec![reference.clone()],
                ..email("hi")
            };
            let matched = match_conversation(&storage, &FakeLinks, &reply).await;
            assert_eq!(matched.unwrap(), None, "{reference}");
        }
    }

    #[tokio::test]
    async fn unmatched_and_empty_replies_store_nothing() {
        let (storage, clock) = setup().await;
        let before = chats(&storage, 1).await;
        let unmatched = InboundEmail {
            recipients: vec![
                "reply+forged@reply.example.com".into(),
                "reply+conv-999@reply.example.com".into(),
            ],
            references: vec!["<CAF=abc@mail.gmail.com>".into()],
            ..email("hello?")
        };
        let err = receive_reply(&storage, &clock, &FakeLinks, unmatched)
            .await
            .unwrap_err();
        assert!(matches!(err, InboundError::Unmatched), "{err:?}");
        let err = receive_reply(&storage, &clock, &FakeLinks, email("no address"))
            .await
            .unwrap_err();
        assert!(matches!(err, InboundError::Unmatched), "{err:?}");
        let empty = InboundEmail {
            recipients: vec!["reply+conv-1@reply.example.com".into()],
            ..email(" \n\t \n")
        };
        let err = receive_reply(&storage, &clock, &FakeLinks, empty)
            .await
            .unwrap_err();
        assert!(matches!(err, InboundError::Empty), "{err:?}");
        assert_eq!(chats(&storage, 1).await, before);
    }

    #[tokio::test]
    async fn a_second_delivery_is_stored_once() {
        let (storage, clock) = setup().await;
        let reply = InboundEmail {
            message_id: Some("CAF=reply-1@mail.gmail.com".into()),
            recipients: vec!["reply+conv-1@reply.example.com".into()],
            ..email("See you")
        };
        let first = receive_reply(&storage, &clock, &FakeLinks, reply.clone())
            .await
            .unwrap();
        let second = receive_reply(&storage, &clock, &FakeLinks, reply)
            .await
            .unwrap();
        assert!(first.created && !second.created);
        assert_eq!(first.chat_id, second.chat_id);
        assert_eq!(chats(&storage, 1).await.len(), 4);
        // Without a Message-ID there is nothing to tell deliveries apart: both are kept.
        for _ in 0..2 {
            let plain = InboundEmail {
                recipients: vec!["reply+conv-1@reply.example.com".into()],
                ..email("See you")
            };
            receive_reply(&storage, &clock, &FakeLinks, plain)
                .await
                .unwrap();
        }
        assert_eq!(chats(&storage, 1).await.len(), 6);
    }

    #[tokio::test]
    async fn long_replies_are_cut_and_resolved_conversations_still_listen() {
        let (storage, clock) = setup().await;
        let reply = InboundEmail {
            recipients: vec!["reply+conv-24@reply.example.com".into()],
            ..email(&format!("  {}  ", "\u{e9}".repeat(MAX_REPLY_CHARS + 5)))
        };
        let stored = receive_reply(&storage, &clock, &FakeLinks, reply)
            .await
            .unwrap();
        assert_eq!(stored.conversation_id, ConversationId(24));
        let message = storage.message(stored.chat_id).await.unwrap().unwrap();
        assert_eq!(message.payload.as_str().chars().count(), MAX_REPLY_CHARS);
        assert!(message.payload.as_str().starts_with('\u{e9}'), "trimmed");
        // Conversation 24's client: Olivia Smith as a client of store 2.
        assert_eq!(message.author_id, UserId(29));
    }
}
