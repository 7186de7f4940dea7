//! The email that delivers a message: from the store, to the client, with a `Message-ID`
//! that stays the same across retries.

use crate::domain::{ConversationContext, Message};
use crate::message_id;
use crate::ports::Email;
use chrono::{DateTime, Utc};

/// The email that delivers `message`, rendered as `body`, to the conversation's client
/// (without the reply and unsubscribe headers, which the
/// [`Dispatcher`](crate::dispatch::Dispatcher) adds from its [`Links`](crate::ports::Links)).
pub fn email(
    message: &Message,
    context: &ConversationContext,
    body: String,
    now: DateTime<Utc>,
) -> Email {
    Email {
        message_id: message.id,
        message_id_header: message_id::format(
            message.id,
            message.created_at,
            context.store.sender_email.as_str(),
        ),
        from_name: context.store.name.as_str().to_owned(),
        from_address: context.store.sender_email.clone(),
        to_name: context.client.name.as_str().to_owned(),
        to_address: context.client.email.clone(),
        reply_to: None,
        unsubscribe_url: None,
        subject: format!("A message from {}", context.store.name),
        body,
        date: now,
    }
}
