//! [`Conversations`]: conversations and their messages, as the API reads and writes them.

use super::StorageError;
use crate::domain::{
    Conversation, ConversationContext, ConversationStatus, Message, NewConversation, NewMessage,
};
use crate::ids::{ConversationId, MessageId, StoreId, UserId};
use crate::name::Name;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The result of [`Conversations::insert_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// The stored message (the earlier one, when `created` is false).
    pub message: Message,
    /// False when the idempotency key was seen before and nothing new was stored.
    pub created: bool,
}

/// A page of a conversation's messages, counted back from the newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// How many messages at most.
    pub limit: u32,
    /// Only messages older than this one (smaller id).
    pub before: Option<MessageId>,
}

/// The result of a conditional status change ([`Conversations::cancel_message`],
/// [`Conversations::retry_message`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The change was made; the message as it is now.
    Done(Message),
    /// The message was not in the status the change needs; the message as it is, unchanged.
    WrongStatus(Message),
    /// No such message.
    NotFound,
}

/// Which conversations [`Conversations::list_conversations`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    /// Only this status.
    pub status: Option<ConversationStatus>,
    /// Only this store's.
    pub store_id: Option<StoreId>,
    /// Only this operator's.
    pub operator_id: Option<UserId>,
}

/// A fixed view of the data that paging through conversations keeps to, so that pages are
/// stable while new chats and conversations arrive: each conversation is placed by its
/// newest chat with an id up to [`max_message`](Self::max_message), and conversations with
/// an id above [`max_conversation`](Self::max_conversation) are left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// The highest chat id that counts.
    pub max_message: MessageId,
    /// The highest conversation id that counts.
    pub max_conversation: ConversationId,
}

/// Where a conversation stands in the activity order: by `activity` descending, then by id
/// descending. `activity` is the id of its newest chat within the [`Snapshot`], 0 when it has
/// none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ActivityKey {
    /// The newest chat id within the snapshot, or 0.
    pub activity: i64,
    /// The conversation.
    pub conversation: ConversationId,
}

/// One row of the conversations list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    /// The conversation.
    pub conversation: Conversation,
    /// Its client's name.
    pub client_name: Name,
    /// The zone active hours use: the client's, else the store's.
    pub client_time_zone: Tz,
    /// Its newest chat now (which may be newer than the snapshot), if any.
    pub last_chat: Option<Message>,
    /// Its chats `new` or `sending` now.
    pub pending_count: u64,
    /// Its place in the order.
    pub key: ActivityKey,
}

/// What the delivery policy needs to know of a conversation's past when a message is
/// written ([`Conversations::delivery_facts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFacts {
    /// When the emails that count against the frequency cap were sent to the client (or
    /// reserved, while being sent), oldest first.
    pub recent_sends: Vec<DateTime<Utc>>,
    /// When the client's newest `received` message in the conversation was written.
    pub last_received: Option<DateTime<Utc>>,
}

/// Conversations and their messages.
///
/// Errors: as [`StorageError`] says; the contracts below say when a method MUST return
/// [`StorageError::NotFound`] or [`StorageError::Conflict`].
#[async_trait]
pub trait Conversations: Send + Sync {
    /// The conversation with its store, operator and client.
    ///
    /// MUST return `Ok(None)` for an unknown id.
    async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<Option<ConversationContext>, StorageError>;

    /// The conversation and a page of its messages, oldest first: the newest `page.limit`
    /// messages with an id below `page.before` (all ids when `None`). Both from one
    /// consistent read.
    ///
    /// MUST return `Ok(None)` for an unknown id.
    async fn conversation_page(
        &self,
        id: ConversationId,
        page: Page,
    ) -> Result<Option<(ConversationContext, Vec<Message>)>, StorageError>;

    /// A snapshot of the data as it is now, to page conversations against.
    async fn snapshot(&self) -> Result<Snapshot, StorageError>;

    /// Up to `limit` conversations matching `filter` within `snapshot`, in activity order
    /// (see [`ActivityKey`]), starting after `after` (from the start when `None`).
    ///
    /// MUST leave out conversations with an id above `snapshot.max_conversation`, and MUST
    /// compute each conversation's key from its chats with ids up to
    /// `snapshot.max_message` only, so that a conversation that receives chats while a
    /// client pages keeps its place: no conversation is skipped or repeated.
    async fn list_conversations(
        &self,
        filter: ConversationFilter,
        snapshot: Snapshot,
        after: Option<ActivityKey>,
        limit: u32,
    ) -> Result<Vec<ConversationSummary>, StorageError>;

    /// Creates a conversation, `open`, with the next id (above every id stored before,
    /// imported ones included), and returns it.
    ///
    /// MUST return [`StorageError::NotFound`] naming what is missing if the store, the
    /// operator or the client does not exist, or if the client is another store's (a
    /// conversation's client is of its store; the caller checks it first, for a clearer
    /// error). (That the operator belongs to the store is the caller's rule, checked before.)
    async fn create_conversation(
        &self,
        conversation: NewConversation,
    ) -> Result<Conversation, StorageError>;

    /// Sets a conversation's status; returns `false` (and changes nothing) for an unknown id.
    /// Messages are left as they are.
    async fn set_conversation_status(
        &self,
        id: ConversationId,
        status: ConversationStatus,
    ) -> Result<bool, StorageError>;

    /// Assigns the conversation to operator `operator`, who MUST be an operator of the
    /// conversation's store (else nothing changes and the answer is `false`, as for an
    /// unknown conversation). Waiting messages keep their author.
    async fn reassign_conversation(
        &self,
        id: ConversationId,
        operator: UserId,
    ) -> Result<bool, StorageError>;

    /// Stores a new message and gives it the next id (ids grow with insertion order).
    /// `attempts` starts at 0, `sent_at` and `last_error` empty.
    ///
    /// When `message.idempotency_key` is set and the same author stored a message with the
    /// same key before, MUST store nothing and return that message with `created: false`
    /// (keys of different authors never collide).
    /// MUST return [`StorageError::NotFound`] if the conversation does not exist.
    async fn insert_message(&self, message: NewMessage) -> Result<Inserted, StorageError>;

    /// The delivery facts of conversation `id` whose client is `client`:
    ///
    /// - `recent_sends` MUST hold the instant of every send to `client` (in any of the
    ///   client's conversations) reserved by [`DispatchQueue::reserve_send`] at or after
    ///   `since`, whether the message is `sent` by now or still being sent, oldest first;
    ///   no other message (replies never reserve);
    /// - `last_received` MUST be the `created_at` of the newest `received` message of
    ///   conversation `id`, or `None`.
    ///
    /// An unknown conversation or client has no facts: `Ok` with both empty.
    ///
    /// [`DispatchQueue::reserve_send`]: super::DispatchQueue::reserve_send
    async fn delivery_facts(
        &self,
        id: ConversationId,
        client: UserId,
        since: DateTime<Utc>,
    ) -> Result<DeliveryFacts, StorageError>;

    /// One message by id, or `Ok(None)`.
    async fn message(&self, id: MessageId) -> Result<Option<Message>, StorageError>;

    /// Cancels a message: `new` → `cancelled`, atomically with respect to claims, so that
    /// either the cancel or a claim wins and a cancelled message is never claimed.
    async fn cancel_message(&self, id: MessageId) -> Result<Transition, StorageError>;

    /// Retries a message: `failed` → `new` with `send_at = at` and `next_attempt_at`
    /// cleared, so it is due at `at`; `attempts` and `last_error` are kept.
    async fn retry_message(
        &self,
        id: MessageId,
        at: DateTime<Utc>,
    ) -> Result<Transition, StorageError>;
}
