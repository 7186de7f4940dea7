//! A client's reply by email (SPEC §8): matched to its conversation and stored as a
//! `received` chat. Parsing the raw email (MIME, quotes, signatures) is the mail adapter's
//! work (`cartloop_mail::inbound`); this module holds the rules.

use crate::domain::{MessageStatus, NewMessage, Role};
use crate::ids::{ConversationId, MessageId};
use crate::ports::{Clock, Email, Links, Storage, StorageError};
use crate::validate::Payload;

/// Longest reply text kept, in characters; longer replies are cut.
pub const MAX_REPLY_CHARS: usize = 10_000;

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
        let Some((id, created_ms)) = Email::parse_message_id(reference) else {
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
/// conversation's client. Replies are not held to the payload rules (SPEC §8); the text is
/// cut at [`MAX_REPLY_CHARS`]. A reply to a resolved conversation is stored too: the client's
/// words are never dropped.
///
/// # Errors
/// [`InboundError::Unmatched`], [`InboundError::Empty`], storage failures.
pub async fn receive_reply(
    storage: &dyn Storage,
    clock: &dyn Clock,
    links: &dyn Links,
    email: InboundEmail,
) -> Result<ReceivedReply, InboundError> {
    let text = email.text.trim();
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
    let text: String = text.chars().take(MAX_REPLY_CHARS).collect();
    let client = context.client.id;
    debug_assert_eq!(context.role_of(client), Some(Role::Client));
    let inserted = storage
        .insert_message(NewMessage {
            conversation_id,
            author_id: client,
            payload: Payload::text(&text),
            status: MessageStatus::Received,
            created_at: clock.now(),
            send_at: None,
            idempotency_key: email.message_id.map(|id| format!("email:{id}")),
        })
        .await?;
    Ok(ReceivedReply {
        chat_id: inserted.message.id,
        conversation_id: inserted.message.conversation_id,
        created: inserted.created,
    })
}
