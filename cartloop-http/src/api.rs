//! The JSON shapes of SPEC §5: camelCase, timestamps RFC 3339 in UTC.

use cartloop_core::chat::ConversationView;
use cartloop_core::domain::Message;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// `POST /chat/` body: `{"conversationId":1,"chat":{"payload":"...","userId":24}}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PostChatBody {
    pub conversation_id: i64,
    pub chat: ChatBody,
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

impl From<&Message> for ChatResponse {
    fn from(m: &Message) -> Self {
        Self {
            chat_id: m.id.0,
            status: m.status.as_str(),
            send_at: m.send_at.map(rfc3339),
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
