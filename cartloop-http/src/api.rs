//! The JSON shapes of SPEC §5: camelCase, timestamps RFC 3339 in UTC.

use cartloop_core::chat::ConversationView;
use cartloop_core::domain::MessageStatus;
use cartloop_core::ids::MessageId;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::marker::PhantomData;

/// `POST /chat/` body: `{"conversationId":1,"chat":{"payload":"...","userId":24}}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PostChatBody {
    pub conversation_id: i64,
    #[serde(deserialize_with = "object")]
    pub chat: ChatBody,
}

/// Deserializes `T` from a JSON object only. serde's derive also takes an array of the
/// fields in order (`[1, ["hi", 24]]`), which is not a way to write this API's bodies.
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

/// A [`PostChatBody`] that must be a JSON object, as [`object`] explains.
#[derive(Debug)]
pub(crate) struct PostChatObject(pub PostChatBody);

impl<'de> Deserialize<'de> for PostChatObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object(deserializer).map(Self)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChatBody {
    pub payload: String,
    pub user_id: i64,
}

/// `POST /chat/` answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChatResponse {
    chat_id: i64,
    status: &'static str,
    send_at: Option<String>,
}

impl ChatResponse {
    pub(crate) fn new(
        id: MessageId,
        status: MessageStatus,
        send_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            chat_id: id.0,
            status: status.as_str(),
            send_at: send_at.map(rfc3339),
        }
    }
}

/// `GET /conversation/{id}/` answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConversationResponse {
    conversation_id: i64,
    store_id: i64,
    operator_id: i64,
    client_id: i64,
    operator_group: String,
    status: &'static str,
    client_time_zone: &'static str,
    chats: Vec<Chat>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Chat {
    chat_id: i64,
    user_id: i64,
    payload: String,
    status: &'static str,
    created_at: String,
    send_at: Option<String>,
    sent_at: Option<String>,
}

impl From<&ConversationView> for ConversationResponse {
    fn from(view: &ConversationView) -> Self {
        let c = &view.context;
        Self {
            conversation_id: c.conversation.id.0,
            store_id: c.conversation.store_id.0,
            operator_id: c.conversation.operator_id.0,
            client_id: c.conversation.client_id.0,
            operator_group: c.operator.group.clone(),
            status: c.conversation.status.as_str(),
            client_time_zone: c.client_time_zone().name(),
            chats: view
                .messages
                .iter()
                .map(|m| Chat {
                    chat_id: m.id.0,
                    user_id: m.author_id.0,
                    payload: m.payload.clone(),
                    status: m.status.as_str(),
                    created_at: rfc3339(m.created_at),
                    send_at: m.send_at.map(rfc3339),
                    sent_at: m.sent_at.map(rfc3339),
                })
                .collect(),
        }
    }
}

/// `2026-11-25T09:00:00Z`, with a fraction only when there is one.
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
