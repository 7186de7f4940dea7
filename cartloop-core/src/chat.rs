//! Writing and reading a conversation: the rules behind `POST /chat/` and
//! `GET /conversation/{id}/`.

use crate::active_hours::ActiveHours;
use crate::domain::{
    ConversationContext, ConversationStatus, Message, MessageStatus, NewMessage, Role,
};
use crate::ids::{ConversationId, UserId};
use crate::ports::{Clock, Page, Storage, StorageError};
use crate::validate::{Payload, ValidationError, ValidationPolicy};
use chrono::{DateTime, Utc};

/// The rules a new message is held to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatRules {
    /// Length and characters.
    pub validation: ValidationPolicy,
    /// When emails may go out.
    pub active_hours: ActiveHours,
}

/// A message someone wants to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostChat {
    /// Where.
    pub conversation_id: ConversationId,
    /// Who: the conversation's operator or client.
    pub user_id: UserId,
    /// The payload as written.
    pub payload: String,
    /// Makes a retried request return the first result.
    pub idempotency_key: Option<String>,
}

/// What [`post_chat`] stored, and what it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The stored message, as it is now.
    pub message: Message,
    /// False when an earlier request with the same idempotency key stored it.
    pub created: bool,
    /// The status the message was stored with (`new` or `received`). A replay answers it
    /// too, so a retried request gets the first answer even after the message was sent.
    pub status: MessageStatus,
    /// When the message was first scheduled to be sent (`None` for a client's message):
    /// the first answer's `sendAt`, also on a replay.
    pub send_at: Option<DateTime<Utc>>,
}

/// Why a message was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostChatError {
    /// No such conversation.
    #[error("conversation {0} not found")]
    ConversationNotFound(ConversationId),
    /// The user is neither the conversation's operator nor its client.
    #[error("user {user} is not part of conversation {conversation}")]
    NotInConversation {
        /// The user.
        user: UserId,
        /// The conversation.
        conversation: ConversationId,
    },
    /// The conversation is resolved and takes no more messages.
    #[error("conversation {0} is resolved")]
    ConversationResolved(ConversationId),
    /// The payload failed validation.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The idempotency key was used before for a different message.
    #[error("idempotency key was already used for a different message")]
    IdempotencyKeyReused,
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Validates and stores a message (SPEC §3–4).
///
/// An operator's message is validated, rendered for the conversation's client (so a missing
/// discount code or a too-long rendering is caught now) and stored as `new` with `send_at`
/// the next instant inside the client's active hours. A client's message is validated and
/// stored as `received`. Nothing is stored when an error is returned.
///
/// # Errors
/// See [`PostChatError`]; checks run in its order.
pub async fn post_chat(
    storage: &dyn Storage,
    clock: &dyn Clock,
    rules: &ChatRules,
    request: PostChat,
) -> Result<Posted, PostChatError> {
    let id = request.conversation_id;
    let context = storage
        .conversation(id)
        .await?
        .ok_or(PostChatError::ConversationNotFound(id))?;
    let role = context
        .role_of(request.user_id)
        .ok_or(PostChatError::NotInConversation {
            user: request.user_id,
            conversation: id,
        })?;
    if context.conversation.status == ConversationStatus::Resolved {
        return Err(PostChatError::ConversationResolved(id));
    }
    let payload = Payload::parse(&request.payload, &rules.validation)?;
    let now = clock.now();
    let (status, send_at) = match role {
        Role::Operator => {
            payload.render_checked(&context.render_values(), &rules.validation)?;
            let tz = context.client_time_zone();
            (
                MessageStatus::New,
                Some(rules.active_hours.next_send_instant(now, tz)),
            )
        }
        Role::Client => (MessageStatus::Received, None),
    };
    let new = NewMessage {
        conversation_id: id,
        author_id: request.user_id,
        payload: payload.into_string(),
        status,
        created_at: now,
        send_at,
        idempotency_key: request.idempotency_key,
    };
    let inserted = storage.insert_message(new.clone()).await?;
    if inserted.created {
        return Ok(Posted {
            message: inserted.message,
            created: true,
            status: new.status,
            send_at: new.send_at,
        });
    }
    let first = inserted.message;
    if first.conversation_id != new.conversation_id
        || first.author_id != new.author_id
        || first.payload != new.payload
    {
        return Err(PostChatError::IdempotencyKeyReused);
    }
    // The first request computed its send instant from its own `now`, its `created_at`:
    // the same rule on the same instant gives the same answer.
    let send_at = match role {
        Role::Operator => Some(
            rules
                .active_hours
                .next_send_instant(first.created_at, context.client_time_zone()),
        ),
        Role::Client => None,
    };
    Ok(Posted {
        message: first,
        created: false,
        status,
        send_at,
    })
}

/// A conversation and one page of its messages, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationView {
    /// The conversation with its store, operator and client.
    pub context: ConversationContext,
    /// The page of messages.
    pub messages: Vec<Message>,
}

/// Reads a conversation with a page of its messages; `Ok(None)` for an unknown id.
///
/// # Errors
/// Storage failures.
pub async fn conversation_view(
    storage: &dyn Storage,
    id: ConversationId,
    page: Page,
) -> Result<Option<ConversationView>, StorageError> {
    let Some(context) = storage.conversation(id).await? else {
        return Ok(None);
    };
    let messages = storage.messages(id, page).await?;
    Ok(Some(ConversationView { context, messages }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::demo_data;
    use crate::testing::{ManualClock, MemoryStorage};
    use chrono::{TimeZone, Utc};

    async fn setup(now: chrono::DateTime<Utc>) -> (MemoryStorage, ManualClock) {
        let storage = MemoryStorage::new();
        storage.import(&demo_data()).await.unwrap();
        (storage, ManualClock::new(now))
    }

    fn request(conversation: i64, user: i64, payload: &str) -> PostChat {
        PostChat {
            conversation_id: ConversationId(conversation),
            user_id: UserId(user),
            payload: payload.to_owned(),
            idempotency_key: None,
        }
    }

    #[tokio::test]
    async fn operator_message_inside_hours_is_due_now() {
        // Client 27 is in America/Chicago: 15:00Z is 09:00 CST.
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap();
        let (storage, clock) = setup(now).await;
        let posted = post_chat(
            &storage,
            &clock,
            &ChatRules::default(),
            request(
                1,
                24,
                "Sure {{ username }}. Here is your code {{ discountCode }}",
            ),
        )
        .await
        .unwrap();
        assert_eq!(posted.message.status, MessageStatus::New);
        assert_eq!(posted.message.send_at, Some(now));
    }

    #[tokio::test]
    async fn operator_message_outside_hours_waits_for_the_window() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 14, 59, 0).unwrap();
        let (storage, clock) = setup(now).await;
        let posted = post_chat(
            &storage,
            &clock,
            &ChatRules::default(),
            request(1, 24, "hi"),
        )
        .await
        .unwrap();
        assert_eq!(
            posted.message.send_at,
            Some(Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap())
        );
    }

    #[tokio::test]
    async fn client_message_is_received_and_never_scheduled() {
        let (storage, clock) = setup(Utc::now()).await;
        let posted = post_chat(
            &storage,
            &clock,
            &ChatRules::default(),
            request(1, 27, "Thanks!"),
        )
        .await
        .unwrap();
        assert_eq!(posted.message.status, MessageStatus::Received);
        assert_eq!(posted.message.send_at, None);
    }

    #[tokio::test]
    async fn rejections_store_nothing() {
        let (storage, clock) = setup(Utc::now()).await;
        let rules = ChatRules::default();
        let page = Page {
            limit: 100,
            before: None,
        };
        let before = storage.messages(ConversationId(1), page).await.unwrap();
        let cases = [
            (request(999, 24, "hi"), "not found"),
            (request(1, 21, "hi"), "not part"),
            (request(24, 22, "hi"), "resolved"),
            (request(1, 24, "caf\u{e9}"), "invalid character"),
            // Conversation 4 has no discount code.
            (request(4, 21, "code {{ discountCode }}"), "no value"),
        ];
        for (req, needle) in cases {
            let err = post_chat(&storage, &clock, &rules, req).await.unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
        assert_eq!(
            storage.messages(ConversationId(1), page).await.unwrap(),
            before
        );
    }

    #[tokio::test]
    async fn a_replay_answers_as_the_first_request_after_the_message_was_sent() {
        // 14:59Z is 08:59 in Chicago: scheduled for 09:00 local.
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 14, 59, 0).unwrap();
        let (storage, clock) = setup(now).await;
        let rules = ChatRules::default();
        let mut req = request(1, 24, "hello");
        req.idempotency_key = Some("k2".into());
        let first = post_chat(&storage, &clock, &rules, req.clone())
            .await
            .unwrap();
        let nine = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap();
        assert_eq!(
            (first.status, first.send_at),
            (MessageStatus::New, Some(nine))
        );

        clock.advance(chrono::Duration::minutes(5));
        let claim = storage
            .claim_due(
                clock.now(),
                std::time::Duration::from_secs(60),
                crate::ports::ClaimLimit::batch(1),
            )
            .await
            .unwrap()
            .remove(0);
        assert!(storage.mark_sent(claim.token, clock.now()).await.unwrap());

        let again = post_chat(&storage, &clock, &rules, req).await.unwrap();
        assert!(!again.created);
        assert_eq!(again.message.status, MessageStatus::Sent);
        assert_eq!(
            (again.status, again.send_at),
            (MessageStatus::New, Some(nine))
        );
    }

    #[tokio::test]
    async fn idempotency_key_returns_the_first_result() {
        let (storage, clock) = setup(Utc::now()).await;
        let rules = ChatRules::default();
        let mut req = request(1, 24, "hello");
        req.idempotency_key = Some("k1".into());
        let first = post_chat(&storage, &clock, &rules, req.clone())
            .await
            .unwrap();
        let again = post_chat(&storage, &clock, &rules, req.clone())
            .await
            .unwrap();
        assert!(first.created && !again.created);
        assert_eq!(first.message, again.message);
        assert_eq!(
            (again.status, again.send_at),
            (MessageStatus::New, first.send_at)
        );
        req.payload = "something else".into();
        assert_eq!(
            post_chat(&storage, &clock, &rules, req).await.unwrap_err(),
            PostChatError::IdempotencyKeyReused
        );
    }
}
