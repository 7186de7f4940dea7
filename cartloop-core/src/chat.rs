//! Writing and reading messages: the rules behind `POST /chat/`, `POST /chat/preview/`,
//! `GET /conversation/{id}/`, `GET /chat/{id}/`, `DELETE /chat/{id}/` and
//! `POST /chat/{id}/retry/`.

use crate::access::{self, Denied, Principal};
use crate::delivery_policy::{Decision, WaitingFor};
use crate::domain::{
    ConversationContext, ConversationStatus, Message, MessageStatus, MessageTiming, NewMessage,
    Role,
};
use crate::ids::{ConversationId, MessageId, UserId};
use crate::ports::{Clock, DeliveryFacts, Page, Storage, StorageError, Transition};
use crate::rules::Rules;
use crate::send_at::{SendAt, SendAtError};
use crate::validate::{Payload, ValidationError};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A message someone wants to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostChat {
    /// Where.
    pub conversation_id: ConversationId,
    /// Who makes the request: what it may write, and as whom.
    pub principal: Principal,
    /// As whom: the conversation's operator or client; `None`: as the principal decides
    /// ([`access::may_write_as`]).
    pub user_id: Option<UserId>,
    /// The payload as written.
    pub payload: String,
    /// Makes a retried request return the first result (scoped to the user).
    pub idempotency_key: Option<String>,
    /// Send later: not before this RFC 3339 instant (an operator's message only).
    pub send_at: Option<String>,
}

/// What [`post_chat`] stored, and what it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The stored message, as it is now.
    pub message: Message,
    /// The conversation's store.
    pub store: Option<crate::ids::StoreId>,
    /// False when an earlier request with the same idempotency key stored it.
    pub created: bool,
    /// The status the message was stored with (`new` or `received`). A replay answers it
    /// too, so a retried request gets the first answer even after the message was sent.
    pub status: MessageStatus,
    /// When the message was first scheduled to be sent (`None` for a client's message):
    /// the first answer's `sendAt`, also on a replay.
    pub send_at: Option<DateTime<Utc>>,
}

/// Why a message was not stored (or previewed).
#[derive(Debug, thiserror::Error)]
pub enum PostChatError {
    /// No such conversation (or one of another store).
    #[error("conversation {0} not found")]
    ConversationNotFound(ConversationId),
    /// The principal may not write here, or not as this user.
    #[error("forbidden: this needs the {missing} permission")]
    Forbidden {
        /// The missing [`access::permission`].
        missing: &'static str,
    },
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
    /// The client unsubscribed: operators may not write to them any more.
    #[error("client {0} unsubscribed and gets no more messages")]
    ClientUnsubscribed(UserId),
    /// The payload failed validation.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The requested `sendAt` is malformed, too far in the past or too far ahead.
    #[error(transparent)]
    InvalidSendAt(#[from] SendAtError),
    /// The idempotency key was used before for a different message.
    #[error("idempotency key was already used for a different message")]
    IdempotencyKeyReused,
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A checked message, before it is stored: what [`post_chat`] stores and
/// [`preview_chat`] shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The conversation, with its store, operator and client.
    pub context: ConversationContext,
    /// Who writes: the author the message gets.
    pub author: UserId,
    /// Their side of the conversation.
    pub role: Role,
    /// The validated payload.
    pub payload: Payload,
    /// What the client receives (`None` for a client's message, which is never emailed).
    pub rendered: Option<String>,
    /// `new` for an operator's message, `received` for a client's.
    pub status: MessageStatus,
    /// When it will be sent (`None` for a client's message).
    pub send_at: Option<DateTime<Utc>>,
    /// The rule that holds it until `send_at` (`None`: due now, or a client's message).
    pub waiting_for: Option<WaitingFor>,
    /// What the delivery policy decides it from.
    pub timing: MessageTiming,
}

impl Draft {
    /// The zone the send instant is in: the client's, else the store's.
    pub fn client_time_zone(&self) -> Tz {
        self.context.client_time_zone()
    }
}

/// Checks a message as [`post_chat`] would, at `now`, without storing anything.
///
/// An operator's message is validated, rendered for the conversation's client (so a missing
/// discount code or a too-long rendering is caught now) and scheduled by the
/// [delivery policy](crate::delivery_policy): its `sendAt` (`send_at`, checked by
/// [`SendAt`]), the store's calendar (else the deployment's window) in the client's zone,
/// closures, the frequency cap and the reply grace. A client's message is validated and
/// `received`.
///
/// # Errors
/// See [`PostChatError`]; checks run in its order.
pub async fn draft_chat(
    storage: &dyn Storage,
    rules: &Rules,
    now: DateTime<Utc>,
    conversation_id: ConversationId,
    author: (&Principal, Option<UserId>),
    payload: &str,
    send_at: Option<&str>,
) -> Result<Draft, PostChatError> {
    let id = conversation_id;
    let context = storage
        .conversation(id)
        .await?
        .ok_or(PostChatError::ConversationNotFound(id))?;
    let (principal, requested) = author;
    let user_id =
        access::may_write_as(principal, &context.conversation, requested).map_err(|denied| {
            match denied {
                Denied::NotFound => PostChatError::ConversationNotFound(id),
                Denied::Forbidden { missing } => PostChatError::Forbidden { missing },
            }
        })?;
    let role = context
        .role_of(user_id)
        .ok_or(PostChatError::NotInConversation {
            user: user_id,
            conversation: id,
        })?;
    if context.conversation.status == ConversationStatus::Resolved {
        return Err(PostChatError::ConversationResolved(id));
    }
    if role == Role::Operator && context.client.unsubscribed_at.is_some() {
        return Err(PostChatError::ClientUnsubscribed(context.client.id));
    }
    let payload = Payload::parse(payload, &rules.validation)?;
    let mut timing = MessageTiming {
        created_at: now,
        not_before: None,
        last_received: None,
    };
    let (rendered, status, decision) = match role {
        Role::Operator => {
            let text = payload.render_checked(&context.render_values(), &rules.validation)?;
            timing.not_before = send_at
                .map(|text| SendAt::parse(text, now))
                .transpose()?
                .map(SendAt::instant);
            let decision = decide(storage, rules, &context, now, timing).await?;
            (Some(text), MessageStatus::New, Some(decision))
        }
        Role::Client => (None, MessageStatus::Received, None),
    };
    if let Some((_, last_received)) = decision {
        timing.last_received = last_received;
    }
    Ok(Draft {
        context,
        author: user_id,
        role,
        payload,
        rendered,
        status,
        send_at: decision.map(|(d, _)| d.at),
        waiting_for: decision.and_then(|(d, _)| d.waiting_for),
        timing,
    })
}

/// The delivery policy's decision at `now` for a message of `context` with `timing`
/// (whose `last_received` is read from the storage), and that `last_received`. Sends
/// after `timing.created_at` are left out, so a replayed request decides as the first.
async fn decide(
    storage: &dyn Storage,
    rules: &Rules,
    context: &ConversationContext,
    now: DateTime<Utc>,
    timing: MessageTiming,
) -> Result<(Decision, Option<DateTime<Utc>>), StorageError> {
    let facts = delivery_facts(storage, context, now).await?;
    Ok(decide_from(&facts, rules, context, now, timing))
}

/// What the decisions at `now` of `context`'s messages are made from: one read for any
/// number of them.
async fn delivery_facts(
    storage: &dyn Storage,
    context: &ConversationContext,
    now: DateTime<Utc>,
) -> Result<DeliveryFacts, StorageError> {
    let since = match context.store.max_per_client {
        Some(cap) => now - cap.per(),
        None => now,
    };
    storage
        .delivery_facts(context.conversation.id, context.client.id, since)
        .await
}

/// [`decide`] from facts already read.
fn decide_from(
    facts: &DeliveryFacts,
    rules: &Rules,
    context: &ConversationContext,
    now: DateTime<Utc>,
    timing: MessageTiming,
) -> (Decision, Option<DateTime<Utc>>) {
    let last_received = facts.last_received.filter(|at| *at <= timing.created_at);
    let sends: Vec<_> = facts
        .recent_sends
        .iter()
        .copied()
        .filter(|at| *at <= timing.created_at)
        .collect();
    let calendar = context.calendar(rules.active_hours);
    let timing = MessageTiming {
        last_received,
        ..timing
    };
    let decision = context
        .delivery_input(&calendar, now, timing, &sends)
        .decide();
    (decision, last_received)
}

/// The rule that holds `message` at `now`, decided again from `facts` (see [`chat_view`]);
/// `None` unless it is `new` and not yet due.
fn waiting_for_now(
    facts: Option<&DeliveryFacts>,
    rules: &Rules,
    context: &ConversationContext,
    now: DateTime<Utc>,
    message: &Message,
) -> Option<WaitingFor> {
    let facts = facts.filter(|_| is_waiting(message, now))?;
    let (decision, _) = decide_from(facts, rules, context, now, message.timing());
    decision.waiting_for.or(message.waiting_for)
}

/// Whether `message` is `new` and due only after `now`.
fn is_waiting(message: &Message, now: DateTime<Utc>) -> bool {
    message.status == MessageStatus::New && message.send_at.is_some_and(|at| at > now)
}

/// Validates and stores a message: see [`draft_chat`] for the checks. Nothing is
/// stored when an error is returned.
///
/// # Errors
/// See [`PostChatError`]; checks run in its order.
pub async fn post_chat(
    storage: &dyn Storage,
    clock: &dyn Clock,
    rules: &Rules,
    request: PostChat,
) -> Result<Posted, PostChatError> {
    let now = clock.now();
    let draft = draft_chat(
        storage,
        rules,
        now,
        request.conversation_id,
        (&request.principal, request.user_id),
        &request.payload,
        request.send_at.as_deref(),
    )
    .await?;
    let new = NewMessage {
        conversation_id: request.conversation_id,
        author_id: draft.author,
        payload: draft.payload,
        status: draft.status,
        created_at: now,
        send_at: draft.send_at,
        idempotency_key: request.idempotency_key,
        not_before: draft.timing.not_before,
        last_received: draft.timing.last_received,
        waiting_for: draft.waiting_for,
    };
    let (status, send_at) = (new.status, new.send_at);
    let (conversation_id, author_id) = (new.conversation_id, new.author_id);
    let payload = new.payload.as_str().to_owned();
    let inserted = storage.insert_message(new).await?;
    if inserted.created {
        return Ok(Posted {
            message: inserted.message,
            store: Some(draft.context.conversation.store_id),
            created: true,
            status,
            send_at,
        });
    }
    let first = inserted.message;
    if first.conversation_id != conversation_id
        || first.author_id != author_id
        || first.payload.as_str() != payload
    {
        return Err(PostChatError::IdempotencyKeyReused);
    }
    // The first request computed its send instant from its own `now`, its `created_at`:
    // the same rule on the same instant gives the same answer (unless the store's settings
    // changed in between, when the answer follows the settings in force).
    let send_at = match draft.role {
        Role::Operator => {
            let timing = first.timing();
            let context = &draft.context;
            let (decision, _) = decide(storage, rules, context, first.created_at, timing).await?;
            Some(decision.at)
        }
        Role::Client => None,
    };
    Ok(Posted {
        message: first,
        store: Some(draft.context.conversation.store_id),
        created: false,
        status,
        send_at,
    })
}

/// What `POST /chat/preview/` answers: [`draft_chat`] at the clock's now.
///
/// # Errors
/// As [`post_chat`], without the idempotency error.
pub async fn preview_chat(
    storage: &dyn Storage,
    clock: &dyn Clock,
    rules: &Rules,
    conversation_id: ConversationId,
    author: (&Principal, Option<UserId>),
    payload: &str,
    send_at: Option<&str>,
) -> Result<Draft, PostChatError> {
    draft_chat(
        storage,
        rules,
        clock.now(),
        conversation_id,
        author,
        payload,
        send_at,
    )
    .await
}

/// A conversation and one page of its messages, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationView {
    /// The conversation with its store, operator and client.
    pub context: ConversationContext,
    /// The page of messages.
    pub messages: Vec<Message>,
    /// For each of `messages`, in the same order, the rule of the delivery policy that
    /// holds it now, as [`ChatView::waiting_for`]; `None` when it is due, being sent, done
    /// or a client's.
    pub waiting_for: Vec<Option<WaitingFor>>,
}

/// Reads a conversation with a page of its messages, and why each waiting one waits at the
/// clock's now (as [`chat_view`] decides it); `Ok(None)` for an unknown id. The decisions
/// cost one more read for the whole page, and none when no message of it waits.
///
/// # Errors
/// Storage failures.
pub async fn conversation_view(
    storage: &dyn Storage,
    clock: &dyn Clock,
    rules: &Rules,
    id: ConversationId,
    page: Page,
) -> Result<Option<ConversationView>, StorageError> {
    let Some((context, messages)) = storage.conversation_page(id, page).await? else {
        return Ok(None);
    };
    let now = clock.now();
    let facts = match messages.iter().any(|m| is_waiting(m, now)) {
        true => Some(delivery_facts(storage, &context, now).await?),
        false => None,
    };
    let waiting_for = messages
        .iter()
        .map(|m| waiting_for_now(facts.as_ref(), rules, &context, now, m))
        .collect();
    Ok(Some(ConversationView {
        context,
        messages,
        waiting_for,
    }))
}

/// One message with what the client receives (`GET /chat/{id}/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatView {
    /// The message.
    pub message: Message,
    /// The text rendered for the client as the conversation is now: `None` for a client's
    /// message, or when it no longer renders (e.g. the discount code was removed).
    pub rendered_text: Option<String>,
    /// The rule of the delivery policy that holds the message now; `None` when it is due,
    /// being sent, or done.
    pub waiting_for: Option<WaitingFor>,
}

/// Why a message could not be read, cancelled or retried.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// No such message.
    #[error("chat {0} not found")]
    NotFound(MessageId),
    /// Only a `new` message can be cancelled.
    #[error("chat {id} is {status}; only a new message can be cancelled")]
    NotCancellable {
        /// The message.
        id: MessageId,
        /// Its status.
        status: MessageStatus,
    },
    /// Only a `failed` message can be retried.
    #[error("chat {id} is {status}; only a failed message can be retried")]
    NotRetryable {
        /// The message.
        id: MessageId,
        /// Its status.
        status: MessageStatus,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Reads a message with its rendered text and, for a message still waiting at the clock's
/// now, the rule that holds it: decided again with the conversation as it is now (the
/// `sendAt` may have passed while the calendar still holds it), else the rule recorded
/// when it was last scheduled.
///
/// # Errors
/// [`ChatError::NotFound`], storage failures.
pub async fn chat_view(
    storage: &dyn Storage,
    clock: &dyn Clock,
    rules: &Rules,
    id: MessageId,
) -> Result<ChatView, ChatError> {
    let message = storage.message(id).await?.ok_or(ChatError::NotFound(id))?;
    with_rendering(storage, Some((clock.now(), rules)), message).await
}

async fn with_rendering(
    storage: &dyn Storage,
    now: Option<(DateTime<Utc>, &Rules)>,
    message: Message,
) -> Result<ChatView, ChatError> {
    let context = storage.conversation(message.conversation_id).await?;
    let waiting_for = match (&context, now) {
        (Some(context), Some((now, rules))) if is_waiting(&message, now) => {
            let facts = delivery_facts(storage, context, now).await?;
            waiting_for_now(Some(&facts), rules, context, now, &message)
        }
        _ => None,
    };
    let rendered_text = context.and_then(|context| {
        (context.role_of(message.author_id) == Some(Role::Operator))
            .then(|| message.payload.render(&context.render_values()).ok())
            .flatten()
    });
    Ok(ChatView {
        message,
        rendered_text,
        waiting_for,
    })
}

/// Cancels a `new` message: it is never sent afterwards. A dispatcher that claimed the
/// message first wins (the message is `sending` and this answers
/// [`ChatError::NotCancellable`]); once cancelled, no claim takes it.
///
/// # Errors
/// [`ChatError::NotFound`], [`ChatError::NotCancellable`], storage failures.
pub async fn cancel_chat(storage: &dyn Storage, id: MessageId) -> Result<ChatView, ChatError> {
    match storage.cancel_message(id).await? {
        Transition::Done(message) => with_rendering(storage, None, message).await,
        Transition::WrongStatus(message) => Err(ChatError::NotCancellable {
            id,
            status: message.status,
        }),
        Transition::NotFound => Err(ChatError::NotFound(id)),
    }
}

/// Puts a `failed` message back to `new`, due now if the client is inside the
/// conversation's window, else at its next start.
///
/// # Errors
/// [`ChatError::NotFound`], [`ChatError::NotRetryable`], storage failures.
pub async fn retry_chat(
    storage: &dyn Storage,
    clock: &dyn Clock,
    rules: &Rules,
    id: MessageId,
) -> Result<ChatView, ChatError> {
    let message = storage.message(id).await?.ok_or(ChatError::NotFound(id))?;
    if message.status != MessageStatus::Failed {
        return Err(ChatError::NotRetryable {
            id,
            status: message.status,
        });
    }
    let now = clock.now();
    let at = match storage.conversation(message.conversation_id).await? {
        Some(context) => {
            let calendar = context.calendar(rules.active_hours);
            // The cap is the dispatcher's to apply when it sends.
            let input = context.delivery_input(&calendar, now, message.timing(), &[]);
            crate::delivery_policy::DeliveryInput {
                frequency_cap: None,
                ..input
            }
            .decide()
            .at
        }
        None => now,
    };
    match storage.retry_message(id, at).await? {
        Transition::Done(message) => with_rendering(storage, Some((now, rules)), message).await,
        Transition::WrongStatus(message) => Err(ChatError::NotRetryable {
            id,
            status: message.status,
        }),
        Transition::NotFound => Err(ChatError::NotFound(id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Calendar;
    use crate::demo::demo_data;
    use crate::ports::prelude::*;
    use crate::testing::{ManualClock, MemoryStorage};
    use chrono::{TimeZone, Utc};

    const ADMIN: Principal = Principal::deployment_token();

    async fn setup(now: chrono::DateTime<Utc>) -> (MemoryStorage, ManualClock) {
        let storage = MemoryStorage::new();
        storage.import(&demo_data()).await.unwrap();
        (storage, ManualClock::new(now))
    }

    fn request(conversation: i64, user: i64, payload: &str) -> PostChat {
        PostChat {
            conversation_id: ConversationId(conversation),
            principal: ADMIN,
            user_id: Some(UserId(user)),
            payload: payload.to_owned(),
            idempotency_key: None,
            send_at: None,
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
            &Rules::default(),
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
        let posted = post_chat(&storage, &clock, &Rules::default(), request(1, 24, "hi"))
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
            &Rules::default(),
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
        let rules = Rules::default();
        let page = Page {
            limit: 100,
            before: None,
        };
        let before = storage
            .conversation_page(ConversationId(1), page)
            .await
            .unwrap();
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
            storage
                .conversation_page(ConversationId(1), page)
                .await
                .unwrap(),
            before
        );
    }

    #[tokio::test]
    async fn a_replay_answers_as_the_first_request_after_the_message_was_sent() {
        // 14:59Z is 08:59 in Chicago: scheduled for 09:00 local.
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 14, 59, 0).unwrap();
        let (storage, clock) = setup(now).await;
        let rules = Rules::default();
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
        let rules = Rules::default();
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
        assert!(matches!(
            post_chat(&storage, &clock, &rules, req).await.unwrap_err(),
            PostChatError::IdempotencyKeyReused
        ));
    }

    fn all() -> Page {
        Page {
            limit: 1000,
            before: None,
        }
    }

    async fn chats(storage: &MemoryStorage, id: i64) -> Vec<Message> {
        let clock = ManualClock::new(nine_chicago());
        conversation_view(
            storage,
            &clock,
            &Rules::default(),
            ConversationId(id),
            all(),
        )
        .await
        .unwrap()
        .unwrap()
        .messages
    }

    /// 15:00Z: 09:00 in Chicago (client 27, conversation 1).
    fn nine_chicago() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap()
    }

    #[tokio::test]
    async fn preview_renders_and_schedules_but_stores_nothing() {
        let early = nine_chicago() - chrono::Duration::hours(2);
        let (storage, clock) = setup(early).await;
        let rules = Rules::default();
        let before = chats(&storage, 1).await;
        let draft = preview_chat(
            &storage,
            &clock,
            &rules,
            ConversationId(1),
            (&ADMIN, Some(UserId(24))),
            "Hi << username >>, code {{discountCode}} from <<operator.Name>>",
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            draft.rendered.as_deref(),
            Some("Hi John Carter, code PROMO50 from Dan Brooks")
        );
        assert_eq!(
            (draft.role, draft.status, draft.send_at),
            (Role::Operator, MessageStatus::New, Some(nine_chicago()))
        );
        assert_eq!(draft.client_time_zone(), chrono_tz::America::Chicago);
        let client = preview_chat(
            &storage,
            &clock,
            &rules,
            ConversationId(1),
            (&ADMIN, Some(UserId(27))),
            "Thanks",
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            (client.rendered, client.status, client.send_at),
            (None, MessageStatus::Received, None)
        );
        let err = preview_chat(
            &storage,
            &clock,
            &rules,
            ConversationId(1),
            (&ADMIN, Some(UserId(24))),
            "caf\u{e9}",
            None,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, PostChatError::Invalid(_)), "{err:?}");
        assert_eq!(chats(&storage, 1).await, before, "a preview stores nothing");
    }

    #[tokio::test]
    async fn whitespace_only_payloads_are_empty() {
        let (storage, clock) = setup(nine_chicago()).await;
        for blank in ["", " ", "  \n \n"] {
            let err = post_chat(&storage, &clock, &Rules::default(), request(1, 24, blank))
                .await
                .unwrap_err();
            match err {
                PostChatError::Invalid(e) => assert_eq!(e.code(), "empty_payload", "{blank:?}"),
                other => panic!("{blank:?}: {other:?}"),
            }
        }
        assert_eq!(chats(&storage, 1).await.len(), 3);
    }

    #[tokio::test]
    async fn the_store_window_is_used_at_post() {
        let (storage, clock) = setup(nine_chicago()).await;
        let rules = Rules::default();
        let night: crate::active_hours::ActiveHours = "21:00-08:00".parse().unwrap();
        storage
            .set_store_hours(crate::ids::StoreId(1), Some(Calendar::from(night)))
            .await
            .unwrap();
        // 09:00 in Chicago is outside 21:00-08:00: it waits for 21:00 CST (03:00Z).
        let posted = post_chat(&storage, &clock, &rules, request(1, 24, "hi"))
            .await
            .unwrap();
        let nine_pm = Utc.with_ymd_and_hms(2026, 11, 26, 3, 0, 0).unwrap();
        assert_eq!(posted.send_at, Some(nine_pm));
        assert_eq!(posted.message.send_at, Some(nine_pm));
        // Back to the deployment's window: due at once.
        storage
            .set_store_hours(crate::ids::StoreId(1), None)
            .await
            .unwrap();
        let posted = post_chat(&storage, &clock, &rules, request(1, 24, "hi"))
            .await
            .unwrap();
        assert_eq!(posted.send_at, Some(nine_chicago()));
        // The deployment's window when the store has none.
        let rules = Rules {
            active_hours: "10:00-11:00".parse().unwrap(),
            ..Rules::default()
        };
        let posted = post_chat(&storage, &clock, &rules, request(1, 24, "hi"))
            .await
            .unwrap();
        assert_eq!(
            posted.send_at,
            Some(nine_chicago() + chrono::Duration::hours(1))
        );
    }

    #[tokio::test]
    async fn an_unsubscribed_client_gets_no_operator_message_but_may_still_write() {
        let (storage, clock) = setup(nine_chicago()).await;
        let rules = Rules::default();
        storage
            .unsubscribe_client(UserId(27), nine_chicago())
            .await
            .unwrap();
        let err = post_chat(&storage, &clock, &rules, request(1, 24, "hi"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, PostChatError::ClientUnsubscribed(UserId(27))),
            "{err:?}"
        );
        let err = preview_chat(
            &storage,
            &clock,
            &rules,
            ConversationId(1),
            (&ADMIN, Some(UserId(24))),
            "hi",
            None,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, PostChatError::ClientUnsubscribed(_)),
            "{err:?}"
        );
        let own = post_chat(&storage, &clock, &rules, request(1, 27, "Still here"))
            .await
            .unwrap();
        assert_eq!(own.message.status, MessageStatus::Received);
        assert_eq!(chats(&storage, 1).await.len(), 4);
    }

    #[tokio::test]
    async fn reading_a_chat_renders_operator_messages_only() {
        let (storage, clock) = setup(nine_chicago()).await;
        let operator = chat_view(&storage, &clock, &Rules::default(), MessageId(3))
            .await
            .unwrap();
        assert_eq!(
            operator.rendered_text.as_deref(),
            Some("Sure John Carter. Here is your code PROMO50")
        );
        let client = chat_view(&storage, &clock, &Rules::default(), MessageId(2))
            .await
            .unwrap();
        assert_eq!(client.rendered_text, None);
        // The discount code was removed since: the message no longer renders.
        storage.set_discount_code(ConversationId(1), None);
        let operator = chat_view(&storage, &clock, &Rules::default(), MessageId(3))
            .await
            .unwrap();
        assert_eq!(operator.rendered_text, None);
        let err = chat_view(&storage, &clock, &Rules::default(), MessageId(999))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ChatError::NotFound(MessageId(999))),
            "{err:?}"
        );
        let missing = conversation_view(
            &storage,
            &clock,
            &Rules::default(),
            ConversationId(999),
            all(),
        )
        .await;
        assert_eq!(missing.unwrap(), None);
    }

    #[tokio::test]
    async fn only_a_new_message_can_be_cancelled() {
        let (storage, clock) = setup(nine_chicago() - chrono::Duration::hours(1)).await;
        let rules = Rules::default();
        let posted = post_chat(
            &storage,
            &clock,
            &rules,
            request(1, 24, "Hi << username >>"),
        )
        .await
        .unwrap();
        let id = posted.message.id;
        let view = cancel_chat(&storage, id).await.unwrap();
        assert_eq!(view.message.status, MessageStatus::Cancelled);
        assert_eq!(view.rendered_text.as_deref(), Some("Hi John Carter"));
        let err = cancel_chat(&storage, id).await.unwrap_err();
        assert!(
            matches!(
                err,
                ChatError::NotCancellable {
                    status: MessageStatus::Cancelled,
                    ..
                }
            ),
            "{err:?}"
        );
        // Claimed by a dispatcher first: the claim wins.
        let posted = post_chat(&storage, &clock, &rules, request(1, 24, "second"))
            .await
            .unwrap();
        let claimed = storage
            .claim_due(
                nine_chicago(),
                std::time::Duration::from_secs(60),
                crate::ports::ClaimLimit::batch(10),
            )
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "the cancelled message is not claimed");
        let err = cancel_chat(&storage, posted.message.id).await.unwrap_err();
        assert!(
            matches!(
                err,
                ChatError::NotCancellable {
                    status: MessageStatus::Sending,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = cancel_chat(&storage, MessageId(2)).await.unwrap_err();
        assert!(
            matches!(
                err,
                ChatError::NotCancellable {
                    status: MessageStatus::Received,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = cancel_chat(&storage, MessageId(999)).await.unwrap_err();
        assert!(matches!(err, ChatError::NotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn only_a_failed_message_can_be_retried_and_it_keeps_to_the_window() {
        let (storage, clock) = setup(nine_chicago()).await;
        let rules = Rules::default();
        let posted = post_chat(&storage, &clock, &rules, request(1, 24, "hi"))
            .await
            .unwrap();
        let id = posted.message.id;
        let err = retry_chat(&storage, &clock, &rules, id).await.unwrap_err();
        assert!(
            matches!(
                err,
                ChatError::NotRetryable {
                    status: MessageStatus::New,
                    ..
                }
            ),
            "{err:?}"
        );
        let claim = storage
            .claim_due(
                clock.now(),
                std::time::Duration::from_secs(60),
                crate::ports::ClaimLimit::batch(10),
            )
            .await
            .unwrap()
            .remove(0);
        assert!(storage
            .mark_failed(claim.token, "550 no such user".into())
            .await
            .unwrap());

        // 21:00 in Chicago: outside the window, so due at 09:00 tomorrow.
        clock.set(nine_chicago() + chrono::Duration::hours(12));
        let view = retry_chat(&storage, &clock, &rules, id).await.unwrap();
        let tomorrow = nine_chicago() + chrono::Duration::days(1);
        assert_eq!(view.message.status, MessageStatus::New);
        assert_eq!(view.message.send_at, Some(tomorrow));
        assert_eq!(view.message.attempts, 1);
        assert_eq!(view.message.last_error.as_deref(), Some("550 no such user"));
        assert_eq!(view.rendered_text.as_deref(), Some("hi"));

        // Failed again, retried inside the store's own window: due at once.
        let claim = storage
            .claim_due(
                tomorrow,
                std::time::Duration::from_secs(60),
                crate::ports::ClaimLimit::batch(10),
            )
            .await
            .unwrap()
            .remove(0);
        assert!(storage
            .mark_failed(claim.token, "550".into())
            .await
            .unwrap());
        storage
            .set_store_hours(crate::ids::StoreId(1), Some("20:00-22:00".parse().unwrap()))
            .await
            .unwrap();
        let view = retry_chat(&storage, &clock, &rules, id).await.unwrap();
        assert_eq!(view.message.send_at, Some(clock.now()));

        let err = retry_chat(&storage, &clock, &rules, MessageId(2))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ChatError::NotRetryable {
                    status: MessageStatus::Received,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = retry_chat(&storage, &clock, &rules, MessageId(999))
            .await
            .unwrap_err();
        assert!(matches!(err, ChatError::NotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn send_later_waits_for_its_instant_and_then_for_the_window() {
        let (storage, clock) = setup(nine_chicago()).await;
        let rules = Rules::default();
        // 19:30 in Chicago today: inside the window; the message waits for it.
        let later = nine_chicago() + chrono::Duration::minutes(630);
        let mut ask = request(1, 24, "Later");
        ask.send_at = Some(later.to_rfc3339());
        let posted = post_chat(&storage, &clock, &rules, ask).await.unwrap();
        assert_eq!(posted.send_at, Some(later));
        assert_eq!(posted.message.not_before, Some(later));
        assert_eq!(posted.message.waiting_for, Some(WaitingFor::SendAt));
        let view = chat_view(&storage, &clock, &rules, posted.message.id)
            .await
            .unwrap();
        assert_eq!(view.waiting_for, Some(WaitingFor::SendAt));

        // 21:00 in Chicago is outside: it goes at 09:00 the next morning.
        let night = nine_chicago() + chrono::Duration::hours(12);
        let mut ask = request(1, 24, "Tonight");
        ask.send_at = Some(night.to_rfc3339());
        let posted = post_chat(&storage, &clock, &rules, ask).await.unwrap();
        assert_eq!(
            posted.send_at,
            Some(nine_chicago() + chrono::Duration::days(1))
        );
        // Once its sendAt has passed, what holds it is the window.
        clock.set(night + chrono::Duration::minutes(5));
        let view = chat_view(&storage, &clock, &rules, posted.message.id)
            .await
            .unwrap();
        assert_eq!(view.waiting_for, Some(WaitingFor::ActiveHours));
    }

    /// Conversation 1's messages and what holds each, as its page says.
    async fn waiting(
        storage: &MemoryStorage,
        clock: &ManualClock,
    ) -> std::collections::HashMap<MessageId, Option<WaitingFor>> {
        let rules = Rules::default();
        let view = conversation_view(storage, clock, &rules, ConversationId(1), all())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(view.waiting_for.len(), view.messages.len());
        view.messages
            .iter()
            .map(|m| m.id)
            .zip(view.waiting_for)
            .collect()
    }

    #[tokio::test]
    async fn the_conversation_says_why_each_waiting_message_waits() {
        let (storage, clock) = setup(nine_chicago()).await;
        let rules = Rules::default();
        let due = post_chat(&storage, &clock, &rules, request(1, 24, "Now"))
            .await
            .unwrap();
        // For 19:30 Chicago, inside the window; for 21:00, outside it (09:00 tomorrow).
        let mut ask = request(1, 24, "Later");
        ask.send_at = Some((nine_chicago() + chrono::Duration::minutes(630)).to_rfc3339());
        let later = post_chat(&storage, &clock, &rules, ask).await.unwrap();
        let night = nine_chicago() + chrono::Duration::hours(12);
        let mut ask = request(1, 24, "Tonight");
        ask.send_at = Some(night.to_rfc3339());
        let tonight = post_chat(&storage, &clock, &rules, ask).await.unwrap();

        let now = waiting(&storage, &clock).await;
        assert_eq!(now[&due.message.id], None, "due now");
        assert_eq!(now[&later.message.id], Some(WaitingFor::SendAt));
        assert_eq!(now[&tonight.message.id], Some(WaitingFor::SendAt));
        assert_eq!(now[&MessageId(2)], None, "a client's message");
        // Each as `GET /chat/{id}/` answers it.
        for (id, rule) in &now {
            let view = chat_view(&storage, &clock, &rules, *id).await.unwrap();
            assert_eq!(view.waiting_for, *rule, "chat {id}");
        }

        // Past the second sendAt, what holds it is the window, decided again now.
        clock.set(night + chrono::Duration::minutes(5));
        let after = waiting(&storage, &clock).await;
        assert_eq!(after[&tonight.message.id], Some(WaitingFor::ActiveHours));
        assert_eq!(after[&later.message.id], None, "due since 19:30");
    }

    #[tokio::test]
    async fn a_bad_send_at_is_refused_and_nothing_is_stored() {
        let (storage, clock) = setup(nine_chicago()).await;
        let before = chats(&storage, 1).await;
        for bad in ["tomorrow", "2026-11-25T14:58:00Z", "2027-03-01T00:00:00Z"] {
            let mut ask = request(1, 24, "Later");
            ask.send_at = Some(bad.to_owned());
            let err = post_chat(&storage, &clock, &Rules::default(), ask)
                .await
                .unwrap_err();
            assert!(
                matches!(err, PostChatError::InvalidSendAt(_)),
                "{bad}: {err:?}"
            );
        }
        assert_eq!(chats(&storage, 1).await, before);
    }

    #[tokio::test]
    async fn a_reply_at_1958_goes_at_once_and_later_messages_wait() {
        // 19:58 in Chicago; the client wrote at 19:50.
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 1, 58, 0).unwrap();
        let (storage, clock) = setup(at - chrono::Duration::minutes(8)).await;
        let rules = Rules::default();
        post_chat(&storage, &clock, &rules, request(1, 27, "Is it in stock?"))
            .await
            .unwrap();
        clock.set(at);
        let reply = post_chat(&storage, &clock, &rules, request(1, 24, "Yes"))
            .await
            .unwrap();
        assert_eq!(reply.send_at, Some(at));
        assert_eq!(reply.message.waiting_for, None);
        assert_eq!(
            reply.message.last_received,
            Some(at - chrono::Duration::minutes(8))
        );
        // Twenty minutes later it is no reply, and 20:18 is outside the window.
        clock.set(at + chrono::Duration::minutes(20));
        let late = post_chat(&storage, &clock, &rules, request(1, 24, "Anything else?"))
            .await
            .unwrap();
        assert_eq!(late.message.waiting_for, Some(WaitingFor::ActiveHours));
        assert_eq!(
            late.send_at,
            Some(nine_chicago() + chrono::Duration::days(1))
        );
    }
}
