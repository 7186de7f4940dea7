//! The ports: what the core needs from the outside world, as traits adapters implement.
//!
//! - [`Storage`]: conversations and messages, and claiming due messages with a lease.
//! - [`Mailer`]: delivers one email; its errors say whether a retry can help.
//! - [`Clock`]: the current instant, so every time rule is testable without sleeping.
//!
//! The server holds them as `Arc<dyn Storage>`, `Arc<dyn Mailer>` and `Arc<dyn Clock>`.

use crate::demo::DemoData;
use crate::domain::{ClaimToken, Claimed, ConversationContext, Message, NewMessage};
use crate::ids::{ConversationId, MessageId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Why a storage call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// A referenced row does not exist (e.g. a message for an unknown conversation).
    #[error("not found: {0}")]
    NotFound(String),
    /// A constraint was violated (e.g. a duplicate id with different content).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The storage cannot be reached or has no free connection; retrying later may help.
    /// The HTTP layer answers 503.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, corrupt data, an unexpected database error.
    #[error("storage error: {0}")]
    Other(String),
}

/// The result of [`Storage::insert_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// The stored message (the earlier one, when `created` is false).
    pub message: Message,
    /// False when the idempotency key was seen before and nothing new was stored.
    pub created: bool,
}

/// A page of a conversation's messages, counted back from the newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// How many messages at most.
    pub limit: u32,
    /// Only messages older than this one (smaller id).
    pub before: Option<MessageId>,
}

/// How many messages one [`Storage::claim_due`] may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimLimit {
    /// Most messages this claim takes.
    pub batch: u32,
    /// At most this many emails per rolling hour. The budget left for a claim at `now` is
    /// the cap minus the messages sent in `[now - 1 h, now]` and minus those in flight
    /// (`sending` under a lease that has not ended), since each of those is about to be
    /// sent. `None`: no cap.
    pub hourly_cap: Option<u32>,
}

impl ClaimLimit {
    /// Up to `batch` messages, no hourly cap.
    pub const fn batch(batch: u32) -> Self {
        Self {
            batch,
            hourly_cap: None,
        }
    }

    /// How many a claim may take when `used` of the hourly cap is spent (`used` counts
    /// recent sends and messages in flight).
    ///
    /// ```
    /// use cartloop_core::ports::ClaimLimit;
    /// let limit = ClaimLimit { batch: 100, hourly_cap: Some(90) };
    /// assert_eq!(limit.allowed(0), 90);
    /// assert_eq!(limit.allowed(85), 5);
    /// assert_eq!(limit.allowed(120), 0);
    /// assert_eq!(ClaimLimit::batch(100).allowed(5_000), 100);
    /// ```
    pub fn allowed(&self, used: u64) -> u32 {
        match self.hourly_cap {
            None => self.batch,
            Some(cap) => {
                let left = u64::from(cap).saturating_sub(used);
                self.batch.min(u32::try_from(left).unwrap_or(u32::MAX))
            }
        }
    }
}

/// What a demo import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    /// Rows inserted by this import (0 when the data was already there).
    pub inserted: u64,
}

/// Conversations and messages.
///
/// Every implementation MUST pass the conformance suite `cartloop_core::testing::conformance`
/// (feature `test-utils`; one line: `cartloop_core::storage_conformance_tests!`).
#[async_trait]
pub trait Storage: Send + Sync {
    /// The conversation with its store, operator and client.
    ///
    /// MUST return `Ok(None)` for an unknown id.
    async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<Option<ConversationContext>, StorageError>;

    /// A page of the conversation's messages, oldest first: the newest `page.limit` messages
    /// with an id below `page.before` (all ids when `None`).
    ///
    /// MUST return an empty list for an unknown conversation.
    async fn messages(&self, id: ConversationId, page: Page) -> Result<Vec<Message>, StorageError>;

    /// Stores a new message and gives it the next id (ids grow with insertion order).
    /// `attempts` starts at 0, `sent_at` and `last_error` empty.
    ///
    /// When `message.idempotency_key` is set and a message was stored with the same key
    /// before, MUST store nothing and return that message with `created: false`.
    /// MUST return [`StorageError::NotFound`] if the conversation does not exist.
    async fn insert_message(&self, message: NewMessage) -> Result<Inserted, StorageError>;

    /// One message by id, or `Ok(None)`.
    async fn message(&self, id: MessageId) -> Result<Option<Message>, StorageError>;

    /// Claims up to `limit.batch` messages that are due at `now`: status `new` with
    /// `send_at <= now`, or status `sending` whose lease ended (`lease_until <= now`: the
    /// dispatcher holding it died). Oldest `send_at` first.
    ///
    /// Each claimed message MUST be set to `sending` with `lease_until = now + lease` and
    /// `attempts + 1`, atomically, so that concurrent callers (other tasks, processes or
    /// servers on the same database) never claim the same message while its lease lasts.
    /// Ties are broken by id.
    /// The returned [`ClaimToken`] carries the new `attempts` as a fencing token.
    ///
    /// With `limit.hourly_cap: Some(cap)`, MUST claim no more than `cap` minus the messages
    /// counted by [`ClaimLimit::hourly_cap`], and MUST count and claim atomically with
    /// respect to every other capped claim on the same data, so that dispatchers claiming
    /// at the same moment together stay under the cap.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: ClaimLimit,
    ) -> Result<Vec<Claimed>, StorageError>;

    /// Records that the message was accepted by the mail server: status `sent`,
    /// `sent_at = at`, `last_error` cleared.
    ///
    /// MUST change nothing and return `Ok(false)` unless the message is `sending` under this
    /// very claim (same `attempts`): a dispatcher whose lease expired cannot overwrite the
    /// claim that replaced it.
    async fn mark_sent(&self, token: ClaimToken, at: DateTime<Utc>) -> Result<bool, StorageError>;

    /// Puts the message back to `new` with `send_at = at` and ends the lease.
    ///
    /// - With `error: Some(e)` (a retry after a transient failure): `last_error = e`, and the
    ///   claim counts as an attempt.
    /// - With `error: None` (the message was not tried: outside active hours): the claim
    ///   MUST NOT count, so `attempts` goes back to its value before the claim.
    ///
    /// Same fencing as [`mark_sent`](Self::mark_sent).
    async fn reschedule(
        &self,
        token: ClaimToken,
        at: DateTime<Utc>,
        error: Option<String>,
    ) -> Result<bool, StorageError>;

    /// Gives up on the message: status `failed`, `last_error = error`.
    ///
    /// Same fencing as [`mark_sent`](Self::mark_sent).
    async fn mark_failed(&self, token: ClaimToken, error: String) -> Result<bool, StorageError>;

    /// When the next message becomes claimable: the smallest `send_at` of `new` messages and
    /// `lease_until` of `sending` ones, or `None` when nothing is waiting.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StorageError>;

    /// Loads the demo data set, all of it or nothing. Idempotent: rows that already exist
    /// (by id) are left as they are, so a second import inserts nothing.
    async fn import(&self, data: &DemoData) -> Result<ImportSummary, StorageError>;

    /// Cheap liveness check of the backing store.
    async fn ping(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// One email, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The message it delivers.
    pub message_id: MessageId,
    /// `Message-ID` header value, without angle brackets, stable across retries: see
    /// [`Email::message_id_for`].
    pub message_id_header: String,
    /// The store's name, shown as the sender's name.
    pub from_name: String,
    /// The store's sender address.
    pub from_address: String,
    /// The client's name.
    pub to_name: String,
    /// The client's address.
    pub to_address: String,
    /// Subject line.
    pub subject: String,
    /// The rendered message, UTF-8 plain text.
    pub body: String,
    /// The `Date` header.
    pub date: DateTime<Utc>,
}

impl Email {
    /// The `Message-ID` (without angle brackets) for a message created at `created_at` and
    /// sent from `sender`: `cartloop.message.<id>.<created_at in ms>@<sender domain>`.
    ///
    /// Every retry of a message carries the same id, so receivers can drop duplicates. The
    /// creation time keeps it unique beyond one database's ids: a message 7 written after
    /// the database was reset must not be dropped as a duplicate of the old message 7.
    ///
    /// ```
    /// use cartloop_core::ports::Email;
    /// use cartloop_core::ids::MessageId;
    /// use chrono::{TimeZone, Utc};
    /// let created = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
    /// assert_eq!(
    ///     Email::message_id_for(MessageId(7), created, "shop@example.com"),
    ///     "cartloop.message.7.1795597200000@example.com"
    /// );
    /// ```
    pub fn message_id_for(id: MessageId, created_at: DateTime<Utc>, sender: &str) -> String {
        let domain = sender
            .rsplit_once('@')
            .map(|(_, d)| d)
            .filter(|d| !d.is_empty())
            .unwrap_or("cartloop.invalid");
        let created = created_at.timestamp_millis();
        format!("cartloop.message.{id}.{created}@{domain}")
    }
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

/// The current instant.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock, to the millisecond, so that an instant reads the same in the
/// API, in every storage and in logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        use chrono::SubsecRound;
        Utc::now().trunc_subsecs(3)
    }
}
