//! [`EventLog`]: the events every change writes (SPEC §10), read in id order; and
//! [`Webhooks`]: the store's endpoints, their delivery queue and the log of attempts.
//!
//! The delivery queue works like the message queue ([`super::DispatchQueue`]): a delivery
//! is claimed under a lease (one server has it; another takes it only once the lease ran
//! out), its result is fenced by the claim (delivery id and attempt), and a server that
//! stops hands back what it still holds.

use super::StorageError;
use crate::event::{Event, EventId, EventSelection, EventType};
use crate::ids::{ConversationId, StoreId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Which events to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventFilter {
    /// Only this store's (`None`: every store's).
    pub store: Option<StoreId>,
    /// Only this conversation's.
    pub conversation: Option<ConversationId>,
    /// Only these types (`None`: all).
    pub types: Option<Vec<EventType>>,
}

impl EventFilter {
    /// Whether `event` passes the filter.
    pub fn admits(&self, event: &Event) -> bool {
        self.store.is_none_or(|s| event.store_id == Some(s))
            && self
                .conversation
                .is_none_or(|c| event.conversation_id == Some(c))
            && self.types.as_ref().is_none_or(|t| t.contains(&event.kind))
    }
}

/// The event log. Storages write events themselves, in the transaction of each change;
/// this port reads them.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// At most `limit` events with ids above `after` that pass `filter`, in id order.
    /// Ids are assigned in commit order: once an id is read, no event with a lower id
    /// appears later.
    async fn events_after(
        &self,
        after: EventId,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<Event>, StorageError>;

    /// The highest event id written so far (`EventId(0)` when there is none).
    async fn last_event_id(&self) -> Result<EventId, StorageError>;

    /// Calls `on_event` whenever events may have been written, here or by another server
    /// on the same database; a hint to read, never the only way to find an event.
    async fn watch_events(&self, on_event: super::DueCallback) -> Result<(), StorageError>;

    /// Deletes the events written before `before` (but never the newest, so that
    /// [`last_event_id`](Self::last_event_id) stays), the deliveries of those events and
    /// the attempts logged before `before`; returns how many events.
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StorageError>;
}

/// Identifies a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WebhookId(pub i64);

/// A webhook to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    /// The store whose events it gets; `None`: every store's (an admin's).
    pub store_id: Option<StoreId>,
    /// Where deliveries go, `http(s)`, checked where it is made and at every delivery.
    pub url: String,
    /// Which events.
    pub events: EventSelection,
    /// The signing secret, `whsec_` and base64; shown once, kept to sign.
    pub secret: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A webhook as stored (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// The store whose events it gets; `None`: every store's.
    pub store_id: Option<StoreId>,
    /// Where deliveries go.
    pub url: String,
    /// Which events.
    pub events: EventSelection,
    /// Whether deliveries go out; a 410 answer turns it off.
    pub enabled: bool,
    /// Why it was turned off by the server (a 410), if it was.
    pub disabled_reason: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Changes to a webhook; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebhookChanges {
    /// New URL.
    pub url: Option<String>,
    /// New selection; events written from now on follow it.
    pub events: Option<EventSelection>,
    /// On or off; turning it on clears `disabled_reason` and lets waiting deliveries go.
    pub enabled: Option<bool>,
}

/// A delivery in hand: one event for one webhook, under a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    /// The delivery's id.
    pub id: i64,
    /// Which attempt this is (1 for the first).
    pub attempt: u32,
    /// When the event was written: deliveries are given up 3 days after.
    pub first_at: DateTime<Utc>,
    /// The webhook.
    pub webhook: Webhook,
    /// Its signing secret.
    pub secret: String,
    /// The event.
    pub event: Event,
}

/// How one attempt ended, as the delivery log shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptStatus {
    /// A 2xx came back in time.
    Delivered,
    /// It failed and will be tried again.
    Retrying,
    /// It failed and will not be tried again (given up, or the webhook was turned off).
    Failed,
}

impl AttemptStatus {
    /// The name the API shows.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Delivered, Self::Retrying, Self::Failed]
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

/// One attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// The webhook.
    pub webhook_id: WebhookId,
    /// The event's id (`None` for a `webhook.test`).
    pub event_id: Option<EventId>,
    /// The event's type.
    pub kind: EventType,
    /// Which attempt (1 for the first).
    pub attempt: u32,
    /// How it ended.
    pub status: AttemptStatus,
    /// The receiver's HTTP status, if it answered.
    pub response_status: Option<u16>,
    /// What went wrong, if anything did.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
    /// When it started.
    pub at: DateTime<Utc>,
}

/// What becomes of a claimed delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryNext {
    /// Done: delivered, or given up.
    Done,
    /// Try again at this instant.
    RetryAt(DateTime<Utc>),
    /// The receiver answered 410: the webhook is turned off with this reason, and the
    /// delivery waits for it to be turned on again.
    Disable(String),
}

/// The result of one claimed delivery: its log entry and what comes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryResult {
    /// The delivery's id and attempt, from its [`ClaimedDelivery`].
    pub delivery: (i64, u32),
    /// The attempt, for the log.
    pub attempt: DeliveryAttempt,
    /// What comes next.
    pub next: DeliveryNext,
}

/// Webhooks and their deliveries.
#[async_trait]
pub trait Webhooks: Send + Sync {
    /// Stores a webhook; events written from now on that it selects are queued for it.
    async fn create_webhook(&self, webhook: NewWebhook) -> Result<Webhook, StorageError>;

    /// The webhook `id`, if it exists.
    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>, StorageError>;

    /// The webhooks of `store` (`None`: all of them, deployment-wide ones included), by id.
    async fn list_webhooks(&self, store: Option<StoreId>) -> Result<Vec<Webhook>, StorageError>;

    /// Changes a webhook; `None` when it does not exist.
    async fn update_webhook(
        &self,
        id: WebhookId,
        changes: WebhookChanges,
    ) -> Result<Option<Webhook>, StorageError>;

    /// Deletes a webhook with its queue and log; whether it existed.
    async fn delete_webhook(&self, id: WebhookId) -> Result<bool, StorageError>;

    /// The signing secret of `id`, for a test send.
    async fn webhook_secret(&self, id: WebhookId) -> Result<Option<String>, StorageError>;

    /// Claims at most `limit` deliveries due at `now` of enabled webhooks, leased until
    /// `now + lease`: for each webhook and conversation only the oldest undelivered one, so
    /// events of a conversation go in order; a delivery whose lease ran out is claimable
    /// again (with the next attempt number).
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StorageError>;

    /// Records results, all in one transaction, each fenced by its claim: a result whose
    /// claim no longer holds changes nothing but is still logged. Returns how many claims
    /// still held.
    async fn record_deliveries(&self, results: Vec<DeliveryResult>) -> Result<u64, StorageError>;

    /// Hands back claimed deliveries not tried (a server stopping): due again at once, the
    /// attempt not counted.
    async fn release_deliveries(&self, deliveries: &[(i64, u32)]) -> Result<u64, StorageError>;

    /// Logs an attempt that belongs to no queued delivery (a test send).
    async fn log_attempt(&self, attempt: DeliveryAttempt) -> Result<(), StorageError>;

    /// The latest `limit` attempts for webhook `id`, newest first.
    async fn delivery_log(
        &self,
        id: WebhookId,
        limit: u32,
    ) -> Result<Vec<DeliveryAttempt>, StorageError>;

    /// When the oldest event still waiting for an enabled webhook was written.
    async fn oldest_undelivered(&self) -> Result<Option<DateTime<Utc>>, StorageError>;
}
