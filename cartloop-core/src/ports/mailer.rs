//! [`Mailer`]: delivers one email; its errors say whether a retry can help.

use crate::email_address::EmailAddress;
use crate::ids::MessageId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// One email, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The message it delivers.
    pub message_id: MessageId,
    /// `Message-ID` header value, without angle brackets, stable across retries: see
    /// [`message_id::format`](crate::message_id::format).
    pub message_id_header: String,
    /// The store's name, shown as the sender's name.
    pub from_name: String,
    /// The store's sender address.
    pub from_address: EmailAddress,
    /// The client's name.
    pub to_name: String,
    /// The client's address.
    pub to_address: EmailAddress,
    /// Where the client's reply goes (`Reply-To`): `reply+<token>@<reply domain>`
    /// if replies are wired.
    pub reply_to: Option<EmailAddress>,
    /// The one-click unsubscribe URL (`List-Unsubscribe`, with `List-Unsubscribe-Post:
    /// List-Unsubscribe=One-Click`, RFC 8058), if unsubscribing is wired.
    pub unsubscribe_url: Option<String>,
    /// Subject line.
    pub subject: String,
    /// The rendered message, UTF-8 plain text.
    pub body: String,
    /// The `Date` header.
    pub date: DateTime<Utc>,
}

/// How a failed delivery should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailErrorKind {
    /// Retrying may succeed: connection refused, timeout before the message was handed
    /// over, a 4xx reply.
    Transient,
    /// Retrying will not help: a 5xx reply to the email's envelope or content, an invalid
    /// address. (A 5xx while connecting or authenticating is a server or configuration
    /// problem that may be fixed: mailers report it as transient, and `max_attempts` bounds
    /// the retries.)
    Permanent,
    /// The outcome is unknown: the connection failed or timed out after the message data was
    /// sent, so the server may have accepted it. The dispatch rules retry it (a possible
    /// duplicate, which receivers can drop by `Message-ID`, is better than a lost email).
    Ambiguous,
}

/// A failed delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} mail error: {message}")]
pub struct MailError {
    /// How to treat it.
    pub kind: MailErrorKind,
    /// What happened, for `last_error` and logs.
    pub message: String,
}

impl MailError {
    /// A transient error.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: MailErrorKind::Transient,
            message: message.into(),
        }
    }

    /// A permanent error.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: MailErrorKind::Permanent,
            message: message.into(),
        }
    }

    /// An error after which the server may have accepted the message.
    pub fn ambiguous(message: impl Into<String>) -> Self {
        Self {
            kind: MailErrorKind::Ambiguous,
            message: message.into(),
        }
    }

    /// Whether a retry may help (transient or ambiguous).
    pub fn is_transient(&self) -> bool {
        self.kind != MailErrorKind::Permanent
    }

    /// Whether retrying is pointless.
    pub fn is_permanent(&self) -> bool {
        self.kind == MailErrorKind::Permanent
    }
}

/// Delivers emails.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one email.
    ///
    /// MUST return `Ok(())` only once the email has been accepted for delivery. Sending the
    /// same email twice (same `message_id_header`) MAY deliver it twice; receivers
    /// de-duplicate by `Message-ID`. Errors MUST be classified: see [`MailErrorKind`].
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}
