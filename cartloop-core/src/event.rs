//! Events (SPEC §10): what happened, written with the change itself, for webhooks and the
//! live stream.
//!
//! An event is `{"id","type","createdAt","storeId","data"}`: `id` increases with every event
//! of the deployment and is shown as `evt_` and twelve digits, so that ids order the same
//! as strings and as numbers; `data` is the thing's API shape after the change. Storages
//! write events in the transaction of the change (a transactional outbox); this module
//! names the types, formats ids and builds the shapes, so every storage writes the same.

use crate::domain::{Client, Conversation, Message, MessageStatus};
use crate::ids::{ConversationId, StoreId};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::fmt;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A conversation was created.
    ConversationCreated,
    /// A conversation was resolved.
    ConversationResolved,
    /// A resolved conversation was opened again.
    ConversationReopened,
    /// A conversation was given to another operator.
    ConversationAssigned,
    /// An operator's message was stored.
    ChatCreated,
    /// A client's message arrived, by `POST /chat/` or by email.
    ChatReceived,
    /// An operator's message was accepted by the mail server.
    ChatSent,
    /// An operator's message was given up on.
    ChatFailed,
    /// An operator's message was cancelled before it went.
    ChatCancelled,
    /// An operator's message was not sent: its client had unsubscribed.
    ChatSuppressed,
    /// A client was created.
    ClientCreated,
    /// A client unsubscribed.
    ClientUnsubscribed,
    /// `POST /webhook/{id}/test/`: sent at once to one webhook, never stored.
    WebhookTest,
}

impl EventType {
    /// Every type a storage writes, in the order SPEC §10 lists them.
    pub const STORED: [Self; 12] = [
        Self::ConversationCreated,
        Self::ConversationResolved,
        Self::ConversationReopened,
        Self::ConversationAssigned,
        Self::ChatCreated,
        Self::ChatReceived,
        Self::ChatSent,
        Self::ChatFailed,
        Self::ChatCancelled,
        Self::ChatSuppressed,
        Self::ClientCreated,
        Self::ClientUnsubscribed,
    ];

    /// The type's name, e.g. `chat.sent`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ConversationCreated => "conversation.created",
            Self::ConversationResolved => "conversation.resolved",
            Self::ConversationReopened => "conversation.reopened",
            Self::ConversationAssigned => "conversation.assigned",
            Self::ChatCreated => "chat.created",
            Self::ChatReceived => "chat.received",
            Self::ChatSent => "chat.sent",
            Self::ChatFailed => "chat.failed",
            Self::ChatCancelled => "chat.cancelled",
            Self::ChatSuppressed => "chat.suppressed",
            Self::ClientCreated => "client.created",
            Self::ClientUnsubscribed => "client.unsubscribed",
            Self::WebhookTest => "webhook.test",
        }
    }

    /// The type named `name` (one a storage writes, or `webhook.test`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::STORED
            .into_iter()
            .chain([Self::WebhookTest])
            .find(|kind| kind.as_str() == name)
    }

    /// The event a message's new status makes, if any: `new` (an operator's message
    /// stored) and `received` when it is inserted, the final statuses when it changes.
    pub fn of_message(status: MessageStatus, inserted: bool) -> Option<Self> {
        match (status, inserted) {
            (MessageStatus::Received, true) => Some(Self::ChatReceived),
            (_, true) => Some(Self::ChatCreated),
            (MessageStatus::Sent, false) => Some(Self::ChatSent),
            (MessageStatus::Failed, false) => Some(Self::ChatFailed),
            (MessageStatus::Cancelled, false) => Some(Self::ChatCancelled),
            (MessageStatus::Suppressed, false) => Some(Self::ChatSuppressed),
            _ => None,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event's id: increases with every event of the deployment; `EventId(0)` is "before
/// the first".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId(pub i64);

impl EventId {
    /// The id as the API shows it, `evt_000000000123`.
    pub fn to_text(self) -> String {
        format!("evt_{:012}", self.0)
    }

    /// The id `text` shows: `evt_` and digits (or the bare number, as a `Last-Event-ID`
    /// sent by hand may be).
    pub fn parse(text: &str) -> Option<Self> {
        let digits = text.trim().strip_prefix("evt_").unwrap_or(text.trim());
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(Self)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its id.
    pub id: EventId,
    /// What happened.
    pub kind: EventType,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// The store it belongs to; `None` only for a `webhook.test` of a deployment-wide hook.
    pub store_id: Option<StoreId>,
    /// The conversation it is about, when it is about one: events of one conversation reach
    /// a webhook in order.
    pub conversation_id: Option<ConversationId>,
    /// The thing's API shape after the change.
    pub data: Value,
}

impl Event {
    /// The event as webhooks and the stream carry it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id.to_text(),
            "type": self.kind.as_str(),
            "createdAt": time(self.created_at),
            "storeId": self.store_id.map(StoreId::get),
            "data": self.data,
        })
    }
}

/// An instant as the API writes it: RFC 3339 in UTC, fractions only when there are any.
pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A chat's shape in events: `{"chatId","conversationId","userId","payload","status",
/// "createdAt","sendAt","sentAt","attempts","lastError"}`.
pub fn chat_data(message: &Message) -> Value {
    json!({
        "chatId": message.id.get(),
        "conversationId": message.conversation_id.get(),
        "userId": message.author_id.get(),
        "payload": message.payload.as_str(),
        "status": message.status.as_str(),
        "createdAt": time(message.created_at),
        "sendAt": message.send_at.map(time),
        "sentAt": message.sent_at.map(time),
        "attempts": message.attempts,
        "lastError": message.last_error,
    })
}

/// A conversation's shape in events: the §5 shape without its chats,
/// `{"conversationId","storeId","operatorId","clientId","operatorGroup","status",
/// "clientTimeZone"}`.
pub fn conversation_data(
    conversation: &Conversation,
    operator_group: &str,
    client_time_zone: &str,
) -> Value {
    json!({
        "conversationId": conversation.id.get(),
        "storeId": conversation.store_id.get(),
        "operatorId": conversation.operator_id.get(),
        "clientId": conversation.client_id.get(),
        "operatorGroup": operator_group,
        "status": conversation.status.as_str(),
        "clientTimeZone": client_time_zone,
    })
}

/// A client's shape in events, as `POST /clients/` answers it:
/// `{"clientId","storeId","name","email","timeZone","unsubscribed"}`.
pub fn client_data(client: &Client) -> Value {
    json!({
        "clientId": client.id.get(),
        "storeId": client.store_id.get(),
        "name": client.name.as_str(),
        "email": client.email.as_str(),
        "timeZone": client.time_zone.map(|tz| tz.name()),
        "unsubscribed": client.unsubscribed_at.is_some(),
    })
}

/// Which events a webhook gets: some types, or all (`["*"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSelection {
    /// Every type.
    All,
    /// These types, without repeats, in the order given.
    Only(Vec<EventType>),
}

/// Why an event list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// The list is empty.
    #[error("events must name at least one event type, or be [\"*\"]")]
    Empty,
    /// A name is not an event type.
    #[error("events[{index}]: {name:?} is not an event type")]
    Unknown {
        /// Where in the list.
        index: usize,
        /// The name given.
        name: String,
    },
}

impl EventSelection {
    /// The selection `names` give: `["*"]` (or `"*"` among them) is all.
    ///
    /// # Errors
    /// [`SelectionError`] for an empty list or a name that is no stored event type.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, SelectionError> {
        if names.is_empty() {
            return Err(SelectionError::Empty);
        }
        if names.iter().any(|n| n.as_ref() == "*") {
            return Ok(Self::All);
        }
        let mut kinds = Vec::with_capacity(names.len());
        for (index, name) in names.iter().enumerate() {
            let kind = EventType::parse(name.as_ref())
                .filter(|kind| *kind != EventType::WebhookTest)
                .ok_or_else(|| SelectionError::Unknown {
                    index,
                    name: name.as_ref().to_owned(),
                })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok(Self::Only(kinds))
    }

    /// Whether it selects `kind`.
    pub fn selects(&self, kind: EventType) -> bool {
        match self {
            Self::All => true,
            Self::Only(kinds) => kinds.contains(&kind),
        }
    }

    /// The names, as the API shows them (`["*"]` for all).
    pub fn names(&self) -> Vec<&'static str> {
        match self {
            Self::All => vec!["*"],
            Self::Only(kinds) => kinds.iter().map(|k| k.as_str()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_as_strings_and_numbers() {
        let ids = [
            EventId(1),
            EventId(9),
            EventId(10),
            EventId(123_456_789_012),
        ];
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_text() < pair[1].to_text());
        }
        assert_eq!(EventId(123).to_text(), "evt_000000000123");
        assert_eq!(EventId::parse("evt_000000000123"), Some(EventId(123)));
        assert_eq!(EventId::parse("123"), Some(EventId(123)));
        for bad in [
            "",
            "evt_",
            "evt_-1",
            "evt_12a",
            "x",
            "evt_1234567890123456789",
        ] {
            assert_eq!(EventId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_type_parses_back() {
        for kind in EventType::STORED
            .into_iter()
            .chain([EventType::WebhookTest])
        {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventType::parse("chat.deleted"), None);
    }

    #[test]
    fn selections() {
        assert_eq!(EventSelection::parse(&["*"]), Ok(EventSelection::All));
        let only = EventSelection::parse(&["chat.sent", "chat.sent", "client.created"]).unwrap();
        assert_eq!(only.names(), ["chat.sent", "client.created"]);
        assert!(only.selects(EventType::ChatSent));
        assert!(!only.selects(EventType::ChatFailed));
        assert_eq!(
            EventSelection::parse::<&str>(&[]),
            Err(SelectionError::Empty)
        );
        assert!(matches!(
            EventSelection::parse(&["chat.sent", "webhook.test"]),
            Err(SelectionError::Unknown { index: 1, .. })
        ));
    }

    #[test]
    fn message_events() {
        use MessageStatus::*;
        assert_eq!(
            EventType::of_message(New, true),
            Some(EventType::ChatCreated)
        );
        assert_eq!(
            EventType::of_message(Received, true),
            Some(EventType::ChatReceived)
        );
        assert_eq!(
            EventType::of_message(Sent, false),
            Some(EventType::ChatSent)
        );
        assert_eq!(EventType::of_message(Sending, false), None);
        assert_eq!(EventType::of_message(New, false), None);
    }
}
