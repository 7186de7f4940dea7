//! The ports: what the core needs from the outside world, as traits adapters implement. One
//! trait per concern, each method with its contract:
//!
//! - [`Directory`]: stores, operators and clients;
//! - [`Conversations`]: conversations and their messages;
//! - [`DispatchQueue`]: claiming due messages with a lease and recording what became of them;
//! - [`Admin`]: importing data sets, the deployment's secrets, health;
//! - [`ApiKeys`]: the API keys handed out, stored as hashes;
//! - [`Accounts`]: operators' sign-in accounts, sessions and failed sign-ins;
//! - [`AuditLog`]: who did what;
//! - [`EventLog`]: the events every change writes; [`Webhooks`]: the store's endpoints,
//!   their delivery queue and log;
//! - [`Storage`]: all of the above in one value, implemented for every type that implements
//!   them (a new concern is a new port here and one more bound on [`Storage`]);
//! - [`Mailer`]: delivers one email; its errors say whether a retry can help;
//! - [`Links`]: the signed reply and unsubscribe addresses of an email;
//! - [`Clock`]: the current instant, so every time rule is testable without sleeping.
//!
//! The server holds them as `Arc<dyn Storage>`, `Arc<dyn Mailer>` and `Arc<dyn Clock>`; the
//! dispatcher takes only the queue (`Arc<dyn DispatchQueue>`, from [`Storage::into_queue`]).
//! The core implements none of them for real: adapters do (`cartloop-sqlx`, `cartloop-mail`,
//! the runtime), and `testing` has in-memory doubles and the conformance suite every
//! storage passes.
//!
//! # Layout
//! One file per port: `directory`, `conversations`, `queue` (with the [`Backlog`] and the
//! wake-up callback), `admin`, `mailer` (with [`Email`] and [`MailError`]), `links`,
//! `clock`, `keys`, `sessions` (the [`Accounts`] port), `audit`, `events` (with [`Webhooks`]); `error`: [`StorageError`], which every storage port returns.

mod admin;
mod audit;
mod clock;
mod conversations;
mod directory;
mod error;
mod events;
mod keys;
mod links;
mod mailer;
mod queue;
mod sessions;

pub use admin::{Admin, ImportSummary};
pub use audit::{Actor, ActorKind, AuditEntry, AuditFilter, AuditLog, NewAuditEntry};
pub use clock::Clock;
pub use conversations::{
    ActivityKey, ConversationFilter, ConversationSummary, Conversations, DeliveryFacts, Inserted,
    Page, Snapshot, Transition,
};
pub use directory::Directory;
pub use error::{Cause, StorageError};
pub use events::{
    AttemptStatus, ClaimedDelivery, DeliveryAttempt, DeliveryNext, DeliveryResult, EventFilter,
    EventLog, NewWebhook, Webhook, WebhookChanges, WebhookId, Webhooks,
};
pub use keys::{ApiKeyRecord, ApiKeys, NewApiKey, SecretHash};
pub use links::Links;
pub use mailer::{Email, MailError, MailErrorKind, Mailer};
pub use queue::{Backlog, ClaimLimit, DispatchQueue, DueCallback, Reservation};
pub use sessions::{
    AccountChanges, Accounts, NewAccount, OperatorAccount, SessionLimits, SessionRecord, SignIn,
};

use std::sync::Arc;

/// The storage ports' traits, imported for their methods only: `use
/// cartloop_core::ports::prelude::*;` lets a concrete storage (or an `Arc<dyn Storage>`) call
/// every port's methods.
pub mod prelude {
    pub use super::Accounts as _;
    pub use super::Admin as _;
    pub use super::ApiKeys as _;
    pub use super::AuditLog as _;
    pub use super::Conversations as _;
    pub use super::Directory as _;
    pub use super::DispatchQueue as _;
    pub use super::EventLog as _;
    pub use super::Storage;
    pub use super::Webhooks as _;
}

/// Every storage port in one value: what the server and the API take.
///
/// Implemented for every type that implements the ports, so a storage implements
/// [`Directory`], [`Conversations`], [`DispatchQueue`], [`Admin`], [`ApiKeys`], [`Accounts`],
/// [`AuditLog`], [`EventLog`] and [`Webhooks`] and is a `Storage`.
/// Every implementation MUST pass the conformance suite `cartloop_core::testing::conformance`
/// (feature `test-utils`; one line: `cartloop_core::storage_conformance_tests!`).
pub trait Storage:
    Directory
    + Conversations
    + DispatchQueue
    + Admin
    + ApiKeys
    + Accounts
    + AuditLog
    + EventLog
    + Webhooks
{
    /// The same storage as its dispatch queue alone, for a
    /// [`Dispatcher`](crate::dispatch::Dispatcher).
    fn into_queue(self: Arc<Self>) -> Arc<dyn DispatchQueue>;
}

impl<T> Storage for T
where
    T: Directory
        + Conversations
        + DispatchQueue
        + Admin
        + ApiKeys
        + Accounts
        + AuditLog
        + EventLog
        + Webhooks
        + 'static,
{
    fn into_queue(self: Arc<Self>) -> Arc<dyn DispatchQueue> {
        self
    }
}
