//! The entities: stores, operators, clients, conversations and messages.

use crate::active_hours::ActiveHours;
use crate::calendar::Calendar;
use crate::closures::Closures;
use crate::delivery_policy::{DeliveryInput, WaitingFor};
use crate::discount_code::DiscountCode;
use crate::email_address::EmailAddress;
use crate::frequency_cap::FrequencyCap;
use crate::ids::{ConversationId, MessageId, StoreId, UserId};
use crate::name::Name;
use crate::reply_grace::ReplyGrace;
use crate::validate::Payload;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// A shop whose operators chat with its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    /// The store's id.
    pub id: StoreId,
    /// Display name, used in the email's From and Subject.
    pub name: Name,
    /// The store's IANA time zone; the active-hours fallback for clients without one.
    pub time_zone: Tz,
    /// The address emails to this store's clients are sent from.
    pub sender_email: EmailAddress,
    /// The store's own calendar (one window every day, or a week); `None`: the
    /// deployment's default window every day.
    pub active_hours: Option<Calendar>,
    /// Local days and stretches when the store sends nothing.
    pub closures: Closures,
    /// At most this many operator emails to one client in any rolling span; `None`: off.
    pub max_per_client: Option<FrequencyCap>,
    /// How long after a client's message an operator's message is a reply.
    pub reply_grace: ReplyGrace,
}

impl Store {
    /// A store with the default delivery settings: the deployment's window, no closures,
    /// no cap, the default reply grace.
    pub fn new(id: StoreId, name: Name, time_zone: Tz, sender_email: EmailAddress) -> Self {
        Self {
            id,
            name,
            time_zone,
            sender_email,
            active_hours: None,
            closures: Closures::default(),
            max_per_client: None,
            reply_grace: ReplyGrace::default(),
        }
    }
}

/// A store employee who writes to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The operator's user id.
    pub id: UserId,
    /// Display name (the `operator` placeholder).
    pub name: Name,
    /// The store the operator works for.
    pub store_id: StoreId,
    /// The operator's group, e.g. `sales` or `support`.
    pub group: Name,
}

/// A shopper of one store. The same person shopping at two stores is two clients, each
/// with its own id, zone and unsubscribe (SPEC §9, "Stores apart").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client's user id.
    pub id: UserId,
    /// The store the client shops at; its conversations are all of this store.
    pub store_id: StoreId,
    /// Display name (the `username` placeholder).
    pub name: Name,
    /// Where the client's emails go; unique among the store's clients (compared
    /// case-insensitively), not across stores.
    pub email: EmailAddress,
    /// The client's IANA time zone, if known.
    pub time_zone: Option<Tz>,
    /// When the client unsubscribed (from this store); `None` while subscribed. An unsubscribed
    /// client gets no more email: new operator messages are refused and waiting ones are
    /// `suppressed` at send time.
    pub unsubscribed_at: Option<DateTime<Utc>>,
}

/// Whether a conversation still takes messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    /// Messages may be written.
    Open,
    /// Closed: new messages are refused with a conflict.
    Resolved,
}

/// A conversation between one operator and one client of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The conversation's id.
    pub id: ConversationId,
    /// The store it belongs to.
    pub store_id: StoreId,
    /// The operator writing.
    pub operator_id: UserId,
    /// The client written to.
    pub client_id: UserId,
    /// Open or resolved.
    pub status: ConversationStatus,
    /// The `discountCode` placeholder's value, if the conversation has one.
    pub discount_code: Option<DiscountCode>,
}

/// A conversation with everything needed to validate, render and address its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationContext {
    /// The conversation itself.
    pub conversation: Conversation,
    /// Its store.
    pub store: Store,
    /// Its operator.
    pub operator: Operator,
    /// Its client.
    pub client: Client,
}

impl ConversationContext {
    /// The zone the active hours use: the client's, else the store's.
    pub fn client_time_zone(&self) -> Tz {
        self.client.time_zone.unwrap_or(self.store.time_zone)
    }

    /// The calendar this conversation's emails keep to: the store's own, else `default`
    /// (the deployment's window) every day.
    pub fn calendar(&self, default: ActiveHours) -> Cow<'_, Calendar> {
        match &self.store.active_hours {
            Some(calendar) => Cow::Borrowed(calendar),
            None => Cow::Owned(Calendar::Daily(default)),
        }
    }

    /// The facts the delivery policy decides `message` from at `now`, with this store's
    /// settings and `calendar` (from [`calendar`](Self::calendar)); `recent_sends` are the
    /// client's sends that count against the cap.
    pub fn delivery_input<'a>(
        &'a self,
        calendar: &'a Calendar,
        now: DateTime<Utc>,
        timing: MessageTiming,
        recent_sends: &'a [DateTime<Utc>],
    ) -> DeliveryInput<'a> {
        DeliveryInput {
            now,
            created_at: timing.created_at,
            send_at: timing.not_before,
            time_zone: self.client_time_zone(),
            calendar,
            closures: &self.store.closures,
            frequency_cap: self.store.max_per_client,
            reply_grace: self.store.reply_grace,
            recent_sends,
            last_received: timing.last_received,
        }
    }

    /// Who `user` is in this conversation, if anyone.
    pub fn role_of(&self, user: UserId) -> Option<Role> {
        if user == self.operator.id {
            Some(Role::Operator)
        } else if user == self.client.id {
            Some(Role::Client)
        } else {
            None
        }
    }

    /// The values the template placeholders take in this conversation.
    pub fn render_values(&self) -> crate::template::RenderValues<'_> {
        crate::template::RenderValues {
            username: &self.client.name,
            discount_code: self.conversation.discount_code.as_deref(),
            operator: &self.operator.name,
        }
    }
}

/// The facts of a message that the delivery policy needs, fixed when it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageTiming {
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// The operator's `sendAt`: never sent before it.
    pub not_before: Option<DateTime<Utc>>,
    /// When the client's last message in the conversation before it was received.
    pub last_received: Option<DateTime<Utc>>,
}

/// The side of a conversation a user is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The store's operator: messages are emailed.
    Operator,
    /// The client: messages are recorded as `received`.
    Client,
}

/// Where a message is in its life.
///
/// An operator's message goes `new` → `sending` → `sent` | `failed`; `sending` may go back to
/// `new` when it is re-scheduled (outside active hours, or a transient failure); `new` →
/// `cancelled` (an operator cancelled it); `sending` → `suppressed` (the client had
/// unsubscribed); `failed` → `new` (an operator retried it). A client's message is
/// `received` and never emailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Waiting for its `send_at`.
    New,
    /// Claimed by a dispatcher whose lease has not expired.
    Sending,
    /// Accepted by the mail server.
    Sent,
    /// Given up: permanent error or too old to send (see `last_error`).
    Failed,
    /// Written by the client; never emailed.
    Received,
    /// Cancelled by an operator before it was sent; never sent afterwards.
    Cancelled,
    /// Not sent because the client unsubscribed.
    Suppressed,
}

impl MessageStatus {
    /// The status as stored and shown in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Received => "received",
            Self::Cancelled => "cancelled",
            Self::Suppressed => "suppressed",
        }
    }

    /// Every status, in the order of the type.
    pub const ALL: [Self; 7] = [
        Self::New,
        Self::Sending,
        Self::Sent,
        Self::Failed,
        Self::Received,
        Self::Cancelled,
        Self::Suppressed,
    ];

    /// Whether a message in this status still waits to be sent (`new` or `sending`): what
    /// `pendingCount` counts.
    pub const fn is_pending(self) -> bool {
        matches!(self, Self::New | Self::Sending)
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a known status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for MessageStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "new" => Self::New,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "failed" => Self::Failed,
            "received" => Self::Received,
            "cancelled" => Self::Cancelled,
            "suppressed" => Self::Suppressed,
            other => return Err(UnknownStatus(other.to_owned())),
        })
    }
}

impl ConversationStatus {
    /// The status as stored and shown in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
        }
    }
}

impl fmt::Display for ConversationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConversationStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "resolved" => Ok(Self::Resolved),
            other => Err(UnknownStatus(other.to_owned())),
        }
    }
}

/// A stored message ("chat").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message's id; ids grow with insertion order within a storage.
    pub id: MessageId,
    /// The conversation it belongs to.
    pub conversation_id: ConversationId,
    /// Who wrote it: the conversation's operator or client.
    pub author_id: UserId,
    /// The payload exactly as written (placeholders not rendered), validated when it was
    /// written and parsed once when loaded.
    pub payload: Payload,
    /// Where it is in its life.
    pub status: MessageStatus,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// When it may be emailed (operator messages only): when it was first scheduled, or
    /// re-scheduled for the window or by a retry. A transient failure does not move it, so
    /// the message's age and the dispatch lag count from here.
    pub send_at: Option<DateTime<Utc>>,
    /// When a message waiting after a transient failure is tried again; `None`: at
    /// `send_at`. The message is due at `next_attempt_at.unwrap_or(send_at)`.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the mail server accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// How many times a dispatcher claimed it.
    pub attempts: u32,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// The operator's `sendAt`, as requested: it is never sent before it.
    pub not_before: Option<DateTime<Utc>>,
    /// When the client's last message in the conversation was received, as it was when this
    /// one was written (whether it is a reply, [`crate::reply_grace`]).
    pub last_received: Option<DateTime<Utc>>,
    /// The rule of the delivery policy that held it when it was last scheduled; `None`:
    /// it was due.
    pub waiting_for: Option<WaitingFor>,
}

impl Message {
    /// The facts the delivery policy decides this message from.
    pub fn timing(&self) -> MessageTiming {
        MessageTiming {
            created_at: self.created_at,
            not_before: self.not_before,
            last_received: self.last_received,
        }
    }
}

/// A message to store, as produced by [`crate::chat::post_chat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The conversation it belongs to.
    pub conversation_id: ConversationId,
    /// Who wrote it.
    pub author_id: UserId,
    /// The validated payload as written.
    pub payload: Payload,
    /// `New` for operators, `Received` for clients.
    pub status: MessageStatus,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When it may be emailed (`None` for client messages).
    pub send_at: Option<DateTime<Utc>>,
    /// A client-chosen key, scoped to the author: a second insert by the same author with
    /// the same key returns the first message.
    pub idempotency_key: Option<String>,
    /// The operator's `sendAt`, if any.
    pub not_before: Option<DateTime<Utc>>,
    /// When the client's last message in the conversation was received.
    pub last_received: Option<DateTime<Utc>>,
    /// The rule that holds it as scheduled (`None`: due at once).
    pub waiting_for: Option<WaitingFor>,
}

/// A store to create (`POST /stores/`); the storage assigns the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStore {
    /// Display name.
    pub name: Name,
    /// IANA time zone.
    pub time_zone: Tz,
    /// Sender address.
    pub sender_email: EmailAddress,
    /// Own calendar, or `None` for the deployment's window.
    pub active_hours: Option<Calendar>,
}

/// Changes to a store's delivery settings (`PATCH /store/{id}/`); `None` leaves a field as
/// it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreChanges {
    /// New calendar: `Some(None)` goes back to the deployment's window.
    pub active_hours: Option<Option<Calendar>>,
    /// New cap: `Some(None)` turns it off.
    pub max_per_client: Option<Option<FrequencyCap>>,
    /// New reply grace.
    pub reply_grace: Option<ReplyGrace>,
}

/// An operator to create (`POST /operators/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOperator {
    /// Display name.
    pub name: Name,
    /// The store, which must exist.
    pub store_id: StoreId,
    /// The group, e.g. `sales`.
    pub group: Name,
}

/// A client to create (`POST /clients/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClient {
    /// The store the client shops at, which must exist.
    pub store_id: StoreId,
    /// Display name.
    pub name: Name,
    /// Address; unique among the store's clients (compared case-insensitively).
    pub email: EmailAddress,
    /// IANA zone, if known.
    pub time_zone: Option<Tz>,
}

/// Changes to a client (`PATCH /client/{id}/`); `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientChanges {
    /// New name.
    pub name: Option<Name>,
    /// New address (unique among the store's clients).
    pub email: Option<EmailAddress>,
    /// New zone: `Some(None)` clears it (the store's zone applies).
    pub time_zone: Option<Option<Tz>>,
}

/// A conversation to create (`POST /conversations/`); it starts `open`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConversation {
    /// The store.
    pub store_id: StoreId,
    /// The store's operator.
    pub operator_id: UserId,
    /// The client.
    pub client_id: UserId,
    /// The `discountCode` placeholder's value.
    pub discount_code: Option<DiscountCode>,
}

/// Rows loaded as they are, ids included, by [`crate::ports::Admin::import`]: e.g. the demo
/// data set ([`crate::demo::demo_data`]) or a migration from another system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dataset {
    /// Stores.
    pub stores: Vec<Store>,
    /// Operators.
    pub operators: Vec<Operator>,
    /// Clients.
    pub clients: Vec<Client>,
    /// Conversations.
    pub conversations: Vec<Conversation>,
    /// Messages.
    pub messages: Vec<Message>,
}

/// A message claimed by a dispatcher, with what is needed to email it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The message, with `status == Sending` and `attempts` already counting this claim.
    pub message: Message,
    /// Fencing token for this claim: results written with a stale token are ignored.
    pub token: ClaimToken,
}

/// Identifies one claim of one message, so a dispatcher whose lease expired cannot overwrite
/// the result of the dispatcher that claimed the message after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimToken {
    /// The claimed message.
    pub message_id: MessageId,
    /// The message's `attempts` after this claim; each claim increments it.
    pub attempt: u32,
}
