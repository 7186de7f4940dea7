//! [`Links`]: the signed addresses that let a client answer an email or leave.

use crate::domain::ConversationContext;
use crate::email_address::EmailAddress;
use crate::ids::{ConversationId, UserId};

/// The addresses that let a client answer an email or leave, signed so they
/// cannot be guessed or forged. The server's implementation signs tokens with the
/// deployment's secret (`cartloop::server::SignedLinks`); without one, emails carry neither header.
pub trait Links: Send + Sync {
    /// The `Reply-To` address of this conversation's emails (`reply+<token>@<domain>`).
    fn reply_to(&self, context: &ConversationContext) -> Option<EmailAddress>;

    /// The one-click unsubscribe URL of this conversation's client.
    fn unsubscribe_url(&self, context: &ConversationContext) -> Option<String>;

    /// The conversation a reply address names, if it is one of ours and its signature
    /// holds (checked in constant time).
    fn conversation_of_reply(&self, address: &str) -> Option<ConversationId>;

    /// The client an unsubscribe token names, if its signature holds.
    fn client_of_unsubscribe(&self, token: &str) -> Option<UserId>;
}
