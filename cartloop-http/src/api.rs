//! The API's JSON shapes: camelCase, timestamps RFC 3339 in UTC.
//!
//! Request bodies must be JSON objects (see [`Object`]); the §7 bodies refuse unknown
//! fields, so that a misspelt field (`timezone`) is an error rather than silently ignored.

use cartloop_core::calendar::Calendar;
use cartloop_core::chat::{ChatView, ConversationView, Draft};
use cartloop_core::closures::Closures;
use cartloop_core::delivery_policy::WaitingFor;
use cartloop_core::domain::{
    Client, ConversationContext, ConversationStatus, Message, MessageStatus, Store,
};
use cartloop_core::frequency_cap::FrequencyCap;
use cartloop_core::ids::MessageId;
use cartloop_core::json::Checked;
use cartloop_core::ports::ConversationSummary;
use cartloop_core::reply_grace::ReplyGrace;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::marker::PhantomData;
use utoipa::ToSchema;

/// A request body that must be a JSON object. serde's derive also takes an array of a
/// struct's fields in order (`[1, ["hi", 24]]`), which is not a way to write this API's
/// bodies.
#[derive(Debug)]
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object(deserializer).map(Self)
    }
}

/// Deserializes `T` from a JSON object only (see [`Object`]).
pub(crate) fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectVisitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_map(ObjectVisitor(PhantomData))
}

/// A PATCH field: absent (`None`: leave it), `null` (`Some(None)`: clear it) or a value.
pub(crate) fn patch<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

// ---- statuses -----------------------------------------------------------------------------

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ChatStatus {
    /// Waiting for its `sendAt`.
    New,
    /// Being sent.
    Sending,
    /// Accepted by the mail server.
    Sent,
    /// Given up on; see `lastError`.
    Failed,
    /// Written by the client.
    Received,
    /// Cancelled by an operator.
    Cancelled,
    /// Not sent: the client unsubscribed.
    Suppressed,
}

impl From<MessageStatus> for ChatStatus {
    fn from(status: MessageStatus) -> Self {
        match status {
            MessageStatus::New => Self::New,
            MessageStatus::Sending => Self::Sending,
            MessageStatus::Sent => Self::Sent,
            MessageStatus::Failed => Self::Failed,
            MessageStatus::Received => Self::Received,
            MessageStatus::Cancelled => Self::Cancelled,
            MessageStatus::Suppressed => Self::Suppressed,
        }
    }
}

/// The rule of the delivery policy that holds a message now (SPEC §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Waiting {
    /// The client is outside the store's calendar.
    ActiveHours,
    /// The store is closed.
    Closure,
    /// The operator asked for later.
    SendAt,
    /// The client had as many emails as the store's cap allows.
    FrequencyCap,
}

impl From<WaitingFor> for Waiting {
    fn from(rule: WaitingFor) -> Self {
        match rule {
            WaitingFor::ActiveHours => Self::ActiveHours,
            WaitingFor::Closure => Self::Closure,
            WaitingFor::SendAt => Self::SendAt,
            WaitingFor::FrequencyCap => Self::FrequencyCap,
        }
    }
}

/// Whether a conversation takes messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ConvStatus {
    /// Messages may be written.
    Open,
    /// Closed to new messages.
    Resolved,
}

impl From<ConversationStatus> for ConvStatus {
    fn from(status: ConversationStatus) -> Self {
        match status {
            ConversationStatus::Open => Self::Open,
            ConversationStatus::Resolved => Self::Resolved,
        }
    }
}

impl From<ConvStatus> for ConversationStatus {
    fn from(status: ConvStatus) -> Self {
        match status {
            ConvStatus::Open => Self::Open,
            ConvStatus::Resolved => Self::Resolved,
        }
    }
}

// ---- §5: chats and conversations ----------------------------------------------------------

/// `POST /chat/` and `POST /chat/preview/` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"conversationId": 1, "chat": {"payload": "Sure {{ username }}. Here is your code {{ discountCode }}", "userId": 24}}))]
pub(crate) struct PostChatBody {
    /// The conversation written to.
    pub conversation_id: i64,
    /// The message.
    #[serde(deserialize_with = "object")]
    pub chat: ChatBody,
}

/// The message of a [`PostChatBody`].
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChatBody {
    /// The template as written, e.g. `Hi << username >>`.
    pub payload: String,
    /// The writer: the conversation's operator or client. An operator's own key or
    /// session may leave it out (it is then itself) and may name only itself; everyone
    /// else gives it.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// Send later: not before this RFC 3339 instant (an operator's message), at most a
    /// minute back and 90 days ahead; absent or null: as soon as the store's rules allow.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-11-26T15:00:00Z")]
    pub send_at: Option<serde_json::Value>,
}

/// `POST /chat/` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChatResponse {
    chat_id: i64,
    /// `new` (an operator's message) or `received` (a client's).
    status: ChatStatus,
    /// When it will be emailed; null for a client's message.
    #[schema(format = DateTime)]
    send_at: Option<String>,
    /// The rule that holds it until `sendAt`; null: due now (or a client's message).
    waiting_for: Option<Waiting>,
}

impl ChatResponse {
    pub(crate) fn new(
        id: MessageId,
        status: MessageStatus,
        send_at: Option<DateTime<Utc>>,
        waiting_for: Option<WaitingFor>,
    ) -> Self {
        Self {
            chat_id: id.0,
            status: status.into(),
            send_at: send_at.map(rfc3339),
            waiting_for: waiting_for.map(Into::into),
        }
    }
}

/// A conversation with a page of its chats, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConversationResponse {
    conversation_id: i64,
    store_id: i64,
    operator_id: i64,
    client_id: i64,
    operator_group: String,
    status: ConvStatus,
    /// The zone active hours use: the client's, else the store's.
    #[schema(example = "America/Chicago")]
    client_time_zone: &'static str,
    chats: Vec<Chat>,
}

/// One chat of a [`ConversationResponse`].
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Chat {
    chat_id: i64,
    user_id: i64,
    payload: String,
    status: ChatStatus,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    send_at: Option<String>,
    #[schema(format = DateTime)]
    sent_at: Option<String>,
    /// For a `new` chat, the rule of the delivery policy that holds it now, as
    /// `GET /chat/{id}/` says; null when due, being sent, done, or a client's.
    waiting_for: Option<Waiting>,
}

impl ConversationResponse {
    /// `waiting_for[i]` is what holds `messages[i]` (missing: nothing).
    pub(crate) fn new(
        context: &ConversationContext,
        messages: &[Message],
        waiting_for: &[Option<WaitingFor>],
    ) -> Self {
        let c = context;
        Self {
            conversation_id: c.conversation.id.0,
            store_id: c.conversation.store_id.0,
            operator_id: c.conversation.operator_id.0,
            client_id: c.conversation.client_id.0,
            operator_group: c.operator.group.as_str().to_owned(),
            status: c.conversation.status.into(),
            client_time_zone: c.client_time_zone().name(),
            chats: messages
                .iter()
                .enumerate()
                .map(|(i, m)| Chat {
                    chat_id: m.id.0,
                    user_id: m.author_id.0,
                    payload: m.payload.as_str().to_owned(),
                    status: m.status.into(),
                    created_at: rfc3339(m.created_at),
                    send_at: m.send_at.map(rfc3339),
                    sent_at: m.sent_at.map(rfc3339),
                    waiting_for: waiting_for.get(i).copied().flatten().map(Into::into),
                })
                .collect(),
        }
    }
}

impl From<&ConversationView> for ConversationResponse {
    fn from(view: &ConversationView) -> Self {
        Self::new(&view.context, &view.messages, &view.waiting_for)
    }
}

/// `GET /healthz` answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`, or `degraded` while the storage answers reads but refuses writes.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// The storage: `ok`, `full` (its disk has no space left) or `failing` (its disk
    /// fails I/O). Writes are answered `503 storage_full` until it is `ok` again.
    #[schema(example = "ok")]
    pub storage: &'static str,
    /// What is wrong, for people, when `status` is `degraded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `GET /import_data/` answer: the demo data set's counts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportResponse {
    /// Always `ok`.
    pub status: &'static str,
    /// Rows inserted by this call (0 when the data was already there).
    pub inserted: u64,
    /// Stores in the data set.
    pub stores: usize,
    /// Operators in the data set.
    pub operators: usize,
    /// Clients in the data set.
    pub clients: usize,
    /// Conversations in the data set.
    pub conversations: usize,
    /// Chats in the data set.
    pub chats: usize,
}

// ---- §7: chats ----------------------------------------------------------------------------

/// One chat with what the client receives (`GET /chat/{id}/`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChatViewResponse {
    chat_id: i64,
    conversation_id: i64,
    user_id: i64,
    payload: String,
    /// What the client receives; null for a client's message.
    rendered_text: Option<String>,
    status: ChatStatus,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    send_at: Option<String>,
    #[schema(format = DateTime)]
    sent_at: Option<String>,
    /// How many times a dispatcher tried to send it.
    attempts: u32,
    /// Why the last attempt failed.
    last_error: Option<String>,
    /// The rule of the delivery policy that holds it now; null when due, being sent or
    /// done.
    waiting_for: Option<Waiting>,
    /// The operator's `sendAt` as requested, if any.
    #[schema(format = DateTime)]
    requested_send_at: Option<String>,
}

impl From<ChatView> for ChatViewResponse {
    fn from(view: ChatView) -> Self {
        let m = view.message;
        Self {
            chat_id: m.id.0,
            conversation_id: m.conversation_id.0,
            user_id: m.author_id.0,
            payload: m.payload.into_string(),
            rendered_text: view.rendered_text,
            status: m.status.into(),
            created_at: rfc3339(m.created_at),
            send_at: m.send_at.map(rfc3339),
            sent_at: m.sent_at.map(rfc3339),
            attempts: m.attempts,
            last_error: m.last_error,
            waiting_for: view.waiting_for.map(Into::into),
            requested_send_at: m.not_before.map(rfc3339),
        }
    }
}

/// `POST /chat/preview/` answer: what `POST /chat/` would store, nothing stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PreviewResponse {
    /// What the client would receive; null for a client's message.
    rendered_text: Option<String>,
    /// `new` or `received`.
    status: ChatStatus,
    /// When it would be emailed, in UTC.
    #[schema(format = DateTime)]
    send_at: Option<String>,
    /// The same instant in the client's zone, with its offset.
    #[schema(format = DateTime, example = "2026-11-25T09:00:00-06:00")]
    client_local_send_at: Option<String>,
    /// The rule that would hold it until `sendAt`; null: it would go now.
    waiting_for: Option<Waiting>,
    /// The zone of `clientLocalSendAt`: the client's, else the store's.
    client_time_zone: &'static str,
}

impl From<&Draft> for PreviewResponse {
    fn from(draft: &Draft) -> Self {
        let zone = draft.client_time_zone();
        Self {
            rendered_text: draft.rendered.clone(),
            status: draft.status.into(),
            send_at: draft.send_at.map(rfc3339),
            client_local_send_at: draft.send_at.map(|at| {
                at.with_timezone(&zone)
                    .to_rfc3339_opts(SecondsFormat::AutoSi, false)
            }),
            waiting_for: draft.waiting_for.map(Into::into),
            client_time_zone: zone.name(),
        }
    }
}

// ---- §7: directory ------------------------------------------------------------------------

/// `POST /stores/` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "Sneaker Hub", "timeZone": "America/Chicago", "senderEmail": "shop@sneakerhub.example.com", "activeHours": "08:00-21:00"}))]
pub(crate) struct CreateStoreBody {
    /// Display name.
    pub name: String,
    /// IANA time zone, e.g. `America/Chicago`.
    pub time_zone: String,
    /// The address emails are sent from.
    pub sender_email: String,
    /// The store's own calendar: a window `HH:MM-HH:MM` for every day, or a week
    /// (`{"mon":["09:00-12:00","13:00-20:00"],...,"sun":[]}`); absent or null: the
    /// deployment's window.
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = "08:00-21:00")]
    pub active_hours: Option<Checked<Calendar>>,
}

/// `PATCH /store/{id}/` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PatchStoreBody {
    /// `HH:MM-HH:MM` every day, a week (`{"mon":["09:00-12:00","13:00-20:00"],"sun":[]}`:
    /// a missing or empty day sends nothing), or null for the deployment's window; absent:
    /// unchanged.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Object>, example = json!({"mon": ["09:00-12:00", "13:00-20:00"], "sat": ["10:00-16:00"]}))]
    pub active_hours: Option<Option<Checked<Calendar>>>,
    /// The frequency cap per client, `{"count":3,"per":"24h"}`, or null: off; absent:
    /// unchanged.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Object>, example = json!({"count": 3, "per": "24h"}))]
    pub max_per_client: Option<Option<serde_json::Value>>,
    /// How long after a client's message an operator's message is a reply that goes at
    /// once: `15m` (the default), `0` (off), at most `24h`; absent: unchanged.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>, example = "15m")]
    pub reply_grace: Option<Option<serde_json::Value>>,
}

/// A store as `POST /stores/` answers it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoreCreated {
    store_id: i64,
    name: String,
    time_zone: &'static str,
    sender_email: String,
    /// The store's own calendar (a window every day, or a week); null: the deployment's.
    #[schema(value_type = Option<Object>)]
    active_hours: Option<Calendar>,
}

impl From<Store> for StoreCreated {
    fn from(store: Store) -> Self {
        Self {
            store_id: store.id.0,
            name: store.name.into_string(),
            time_zone: store.time_zone.name(),
            sender_email: store.sender_email.into_string(),
            active_hours: store.active_hours,
        }
    }
}

/// A store as `GET` and `PATCH /store/{id}/` answer it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoreResponse {
    store_id: i64,
    name: String,
    time_zone: &'static str,
    /// The store's own calendar (a window every day, or a week); null: the deployment's.
    #[schema(value_type = Option<Object>, example = "08:00-21:00")]
    active_hours: Option<Calendar>,
    /// The frequency cap per client; null: off.
    #[schema(value_type = Option<Object>, example = json!({"count": 3, "per": "24h"}))]
    max_per_client: Option<FrequencyCap>,
    /// The reply grace, e.g. `15m`; `0`: off.
    #[schema(value_type = String, example = "15m")]
    reply_grace: ReplyGrace,
    /// How many closures the store has (`GET /store/{id}/closures/` lists them).
    closures: usize,
}

impl From<Store> for StoreResponse {
    fn from(store: Store) -> Self {
        Self {
            store_id: store.id.0,
            name: store.name.into_string(),
            time_zone: store.time_zone.name(),
            active_hours: store.active_hours,
            max_per_client: store.max_per_client,
            reply_grace: store.reply_grace,
            closures: store.closures.as_slice().len(),
        }
    }
}

/// A store's closures (`GET` and `PUT /store/{id}/closures/`): client-local whole days
/// `{"date":"2026-12-25"}` and stretches `{"from":"2026-12-31T18:00","to":"2027-01-02T09:00"}`
/// (start included, end excluded), in the order given.
#[derive(Debug, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Vec<ClosureEntry>, example = json!([{"date": "2026-12-25"}, {"from": "2026-12-31T18:00", "to": "2027-01-02T09:00"}]))]
pub(crate) struct ClosuresResponse(pub Closures);

/// One closure: `date` alone, or `from` and `to`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClosureEntry {
    /// A whole client-local day, `YYYY-MM-DD`.
    #[schema(format = Date, example = "2026-12-25")]
    date: Option<String>,
    /// The client-local start, `YYYY-MM-DDTHH:MM`, included.
    #[schema(example = "2026-12-31T18:00")]
    from: Option<String>,
    /// The client-local end, `YYYY-MM-DDTHH:MM`, excluded; after `from`.
    #[schema(example = "2027-01-02T09:00")]
    to: Option<String>,
}

/// `POST /clients/` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"name": "Ann Lee", "email": "ann@example.com", "timeZone": "Europe/Berlin", "storeId": 1}))]
pub(crate) struct CreateClientBody {
    /// Display name (the `username` placeholder).
    pub name: String,
    /// Unique among the store's clients (compared case-insensitively); another store's
    /// client may have it.
    pub email: String,
    /// IANA time zone; absent or null: the store's applies.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The store the client shops at, which must exist; the client's conversations are all
    /// of this store. A store principal's own store when left out; required for admins.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub store_id: Option<i64>,
}

/// `PATCH /client/{id}/` body: absent fields are left as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PatchClientBody {
    /// New name.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// New email.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// New IANA zone; null clears it (the store's zone applies).
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<String>)]
    pub time_zone: Option<Option<String>>,
}

/// A client.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClientResponse {
    client_id: i64,
    /// The store the client shops at.
    store_id: i64,
    name: String,
    email: String,
    /// Null: the store's zone applies.
    time_zone: Option<&'static str>,
    /// Whether the client unsubscribed (gets no more email).
    unsubscribed: bool,
}

impl From<Client> for ClientResponse {
    fn from(client: Client) -> Self {
        Self {
            client_id: client.id.0,
            store_id: client.store_id.0,
            name: client.name.into_string(),
            email: client.email.into_string(),
            time_zone: client.time_zone.map(|tz| tz.name()),
            unsubscribed: client.unsubscribed_at.is_some(),
        }
    }
}

/// `POST /conversations/` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"storeId": 1, "operatorId": 24, "clientId": 27, "discountCode": "PROMO50"}))]
pub(crate) struct CreateConversationBody {
    /// The store; a store principal's own when left out.
    #[serde(default)]
    pub store_id: Option<i64>,
    /// One of the store's operators.
    pub operator_id: i64,
    /// The client.
    pub client_id: i64,
    /// The `discountCode` placeholder's value.
    #[serde(default)]
    pub discount_code: Option<String>,
}

/// `PATCH /conversation/{id}/` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PatchConversationBody {
    /// `resolved` or `open`.
    #[serde(default)]
    pub status: Option<ConvStatus>,
    /// Reassign to this operator of the conversation's store (a manager, an integration
    /// or an admin).
    #[serde(default)]
    pub operator_id: Option<i64>,
}

/// `GET /conversations/` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConversationsPage {
    /// Most recent activity first.
    pub conversations: Vec<ConversationRow>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One row of the conversations list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConversationRow {
    conversation_id: i64,
    store_id: i64,
    operator_id: i64,
    client_id: i64,
    client_name: String,
    status: ConvStatus,
    client_time_zone: &'static str,
    /// The newest chat.
    last_chat: Option<LastChat>,
    /// Chats waiting to be sent (`new` or `sending`).
    pending_count: u64,
}

/// The newest chat of a [`ConversationRow`].
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LastChat {
    chat_id: i64,
    user_id: i64,
    payload: String,
    status: ChatStatus,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<ConversationSummary> for ConversationRow {
    fn from(row: ConversationSummary) -> Self {
        let c = row.conversation;
        Self {
            conversation_id: c.id.0,
            store_id: c.store_id.0,
            operator_id: c.operator_id.0,
            client_id: c.client_id.0,
            client_name: row.client_name.into_string(),
            status: c.status.into(),
            client_time_zone: row.client_time_zone.name(),
            last_chat: row.last_chat.map(|m| LastChat {
                chat_id: m.id.0,
                user_id: m.author_id.0,
                payload: m.payload.into_string(),
                status: m.status.into(),
                created_at: rfc3339(m.created_at),
            }),
            pending_count: row.pending_count,
        }
    }
}

// ---- §8 -----------------------------------------------------------------------------------

/// `POST /inbound/email/` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplyStored {
    /// The `received` chat.
    pub chat_id: i64,
    /// Its conversation.
    pub conversation_id: i64,
}

/// `POST /unsubscribe/{token}` answer, when JSON is asked for.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Unsubscribed {
    /// Always `unsubscribed`.
    #[schema(example = "unsubscribed")]
    pub status: &'static str,
}

/// `2026-11-25T09:00:00Z`, with a fraction only when there is one.
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
