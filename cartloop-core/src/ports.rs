//! The ports: what the core needs from the outside world, as traits adapters implement.
//!
//! - [`Storage`]: conversations and messages, and claiming due messages with a lease.
//! - [`Mailer`]: delivers one email; its errors say whether a retry can help.
//! - [`Clock`]: the current instant, so every time rule is testable without sleeping.
//!
//! The server holds them as `Arc<dyn Storage>`, `Arc<dyn Mailer>` and `Arc<dyn Clock>`.
//! The core implements none of them for real: adapters do (`cartloop-sqlx`,
//! `cartloop-mail`, `cartloop-http`), and `testing` has in-memory doubles.

use crate::active_hours::ActiveHours;
use crate::domain::{
    ClaimToken, Claimed, Client, ClientChanges, Conversation, ConversationContext,
    ConversationStatus, Dataset, Message, NewClient, NewConversation, NewMessage, NewOperator,
    NewStore, Operator, Store,
};
use crate::email_address::EmailAddress;
use crate::ids::{ConversationId, MessageId, StoreId, UserId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::sync::Arc;
use std::time::Duration;

/// The cause of a [`StorageError`]: the adapter's own error, kept for logs and
/// [`std::error::Error::source`], never shown to API callers.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a storage call failed.
///
/// The `Display` text of each variant is safe to show to an API caller; the database's own
/// message, which may name tables, values or hosts, is only in [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A referenced row does not exist (e.g. a message for an unknown conversation). The
    /// text names what is missing, e.g. `conversation 9`.
    #[error("not found: {0}")]
    NotFound(String),
    /// A uniqueness rule was violated (e.g. a second client with the same email). The text
    /// says which.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The storage cannot be reached or has no free connection; retrying later may help.
    /// The HTTP layer answers 503.
    #[error("storage unavailable")]
    Unavailable(#[source] Cause),
    /// Anything else: a bug, corrupt data, an unexpected database error.
    #[error("storage error")]
    Other(#[source] Cause),
}

impl StorageError {
    /// An [`Unavailable`](Self::Unavailable) error with a plain-text cause.
    pub fn unavailable(cause: impl Into<Cause>) -> Self {
        Self::Unavailable(cause.into())
    }

    /// An [`Other`](Self::Other) error with a plain-text cause.
    pub fn other(cause: impl Into<Cause>) -> Self {
        Self::Other(cause.into())
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// The error with its chain of causes, for logs: `storage unavailable: pool timed out`.
    pub fn detail(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }
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

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    /// Rows inserted by this import (0 when the data was already there).
    pub inserted: u64,
}

/// The result of a conditional status change ([`Storage::cancel_message`],
/// [`Storage::retry_message`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The change was made; the message as it is now.
    Done(Message),
    /// The message was not in the status the change needs; the message as it is, unchanged.
    WrongStatus(Message),
    /// No such message.
    NotFound,
}

/// Which conversations [`Storage::list_conversations`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    /// Only this status.
    pub status: Option<ConversationStatus>,
    /// Only this store's.
    pub store_id: Option<StoreId>,
    /// Only this operator's.
    pub operator_id: Option<UserId>,
}

/// A fixed view of the data that paging through conversations keeps to, so that pages are
/// stable while new chats and conversations arrive: each conversation is placed by its
/// newest chat with an id up to [`max_message`](Self::max_message), and conversations with
/// an id above [`max_conversation`](Self::max_conversation) are left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// The highest chat id that counts.
    pub max_message: MessageId,
    /// The highest conversation id that counts.
    pub max_conversation: ConversationId,
}

/// Where a conversation stands in the activity order: by `activity` descending, then by id
/// descending. `activity` is the id of its newest chat within the [`Snapshot`], 0 when it has
/// none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ActivityKey {
    /// The newest chat id within the snapshot, or 0.
    pub activity: i64,
    /// The conversation.
    pub conversation: ConversationId,
}

/// One row of the conversations list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    /// The conversation.
    pub conversation: Conversation,
    /// Its client's name.
    pub client_name: String,
    /// The zone active hours use: the client's, else the store's.
    pub client_time_zone: Tz,
    /// Its newest chat now (which may be newer than the snapshot), if any.
    pub last_chat: Option<Message>,
    /// Its chats `new` or `sending` now.
    pub pending_count: u64,
    /// Its place in the order.
    pub key: ActivityKey,
}

/// How many messages wait to be sent, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Messages `new` or `sending`.
    pub waiting: u64,
    /// The earliest `send_at` among the waiting messages that are due at the instant asked
    /// about: `new` ones whose due instant (`next_attempt_at`, else `send_at`) has passed,
    /// and every `sending` one (it was due when it was claimed). `None` when there is none.
    /// Its age is how late the oldest email is.
    pub oldest_due: Option<DateTime<Utc>>,
}

/// Called when a message may have become due (see [`Storage::watch_due`]).
pub type DueCallback = Arc<dyn Fn() + Send + Sync>;

/// Stores, operators, clients, conversations and messages.
///
/// Every implementation MUST pass the conformance suite `cartloop_core::testing::conformance`
/// (feature `test-utils`; one line: `cartloop_core::storage_conformance_tests!`).
///
/// Errors: [`StorageError::Unavailable`] when the backing store cannot be reached (callers
/// may retry), [`StorageError::Other`] for anything unexpected; the contracts below say when
/// a method MUST return [`StorageError::NotFound`] or [`StorageError::Conflict`].
#[async_trait]
pub trait Storage: Send + Sync {
    // ---- conversations ------------------------------------------------------------------

    /// The conversation with its store, operator and client.
    ///
    /// MUST return `Ok(None)` for an unknown id.
    async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<Option<ConversationContext>, StorageError>;

    /// The conversation and a page of its messages, oldest first: the newest `page.limit`
    /// messages with an id below `page.before` (all ids when `None`). Both from one
    /// consistent read.
    ///
    /// MUST return `Ok(None)` for an unknown id.
    async fn conversation_page(
        &self,
        id: ConversationId,
        page: Page,
    ) -> Result<Option<(ConversationContext, Vec<Message>)>, StorageError>;

    /// A snapshot of the data as it is now, to page conversations against.
    async fn snapshot(&self) -> Result<Snapshot, StorageError>;

    /// Up to `limit` conversations matching `filter` within `snapshot`, in activity order
    /// (see [`ActivityKey`]), starting after `after` (from the start when `None`).
    ///
    /// MUST leave out conversations with an id above `snapshot.max_conversation`, and MUST
    /// compute each conversation's key from its chats with ids up to
    /// `snapshot.max_message` only, so that a conversation that receives chats while a
    /// client pages keeps its place: no conversation is skipped or repeated.
    async fn list_conversations(
        &self,
        filter: ConversationFilter,
        snapshot: Snapshot,
        after: Option<ActivityKey>,
        limit: u32,
    ) -> Result<Vec<ConversationSummary>, StorageError>;

    /// Creates a conversation, `open`, with the next id (above every id stored before,
    /// imported ones included), and returns it.
    ///
    /// MUST return [`StorageError::NotFound`] naming what is missing if the store, the
    /// operator or the client does not exist. (That the operator belongs to the store is
    /// the caller's rule, checked before.)
    async fn create_conversation(
        &self,
        conversation: NewConversation,
    ) -> Result<Conversation, StorageError>;

    /// Sets a conversation's status; returns `false` (and changes nothing) for an unknown id.
    /// Messages are left as they are.
    async fn set_conversation_status(
        &self,
        id: ConversationId,
        status: ConversationStatus,
    ) -> Result<bool, StorageError>;

    // ---- stores, operators, clients -----------------------------------------------------

    /// Creates a store with the next id and returns it.
    async fn create_store(&self, store: NewStore) -> Result<Store, StorageError>;

    /// One store, or `Ok(None)`.
    async fn store(&self, id: StoreId) -> Result<Option<Store>, StorageError>;

    /// Sets (or with `None` clears) the store's own window; returns the store as it is now,
    /// or `Ok(None)` for an unknown id.
    async fn set_store_hours(
        &self,
        id: StoreId,
        hours: Option<ActiveHours>,
    ) -> Result<Option<Store>, StorageError>;

    /// Creates an operator with the next user id (operators and clients share one id space).
    ///
    /// MUST return [`StorageError::NotFound`] if the store does not exist.
    async fn create_operator(&self, operator: NewOperator) -> Result<Operator, StorageError>;

    /// One operator, or `Ok(None)` (also when the id is a client's).
    async fn operator(&self, id: UserId) -> Result<Option<Operator>, StorageError>;

    /// Creates a client with the next user id.
    ///
    /// MUST return [`StorageError::Conflict`] if a client with the same email (compared
    /// case-insensitively) exists; the caller finds it with [`client_by_email`](Self::client_by_email).
    async fn create_client(&self, client: NewClient) -> Result<Client, StorageError>;

    /// One client, or `Ok(None)` (also when the id is an operator's).
    async fn client(&self, id: UserId) -> Result<Option<Client>, StorageError>;

    /// The client with this email (compared case-insensitively), or `Ok(None)`.
    async fn client_by_email(&self, email: &EmailAddress) -> Result<Option<Client>, StorageError>;

    /// Applies `changes`; returns the client as it is now, or `Ok(None)` for an unknown id.
    ///
    /// MUST return [`StorageError::Conflict`] (and change nothing) if the new email is
    /// another client's.
    async fn update_client(
        &self,
        id: UserId,
        changes: ClientChanges,
    ) -> Result<Option<Client>, StorageError>;

    /// Records that the client unsubscribed at `at`, unless it already had (the first
    /// instant is kept). Returns the client as it is now, or `Ok(None)` for an unknown id.
    async fn unsubscribe_client(
        &self,
        id: UserId,
        at: DateTime<Utc>,
    ) -> Result<Option<Client>, StorageError>;

    // ---- messages -----------------------------------------------------------------------

    /// Stores a new message and gives it the next id (ids grow with insertion order).
    /// `attempts` starts at 0, `sent_at` and `last_error` empty.
    ///
    /// When `message.idempotency_key` is set and the same author stored a message with the
    /// same key before, MUST store nothing and return that message with `created: false`
    /// (keys of different authors never collide).
    /// MUST return [`StorageError::NotFound`] if the conversation does not exist.
    async fn insert_message(&self, message: NewMessage) -> Result<Inserted, StorageError>;

    /// One message by id, or `Ok(None)`.
    async fn message(&self, id: MessageId) -> Result<Option<Message>, StorageError>;

    /// Cancels a message: `new` → `cancelled`, atomically with respect to claims, so that
    /// either the cancel or a claim wins and a cancelled message is never claimed.
    async fn cancel_message(&self, id: MessageId) -> Result<Transition, StorageError>;

    /// Retries a message: `failed` → `new` with `send_at = at` and `next_attempt_at`
    /// cleared, so it is due at `at`; `attempts` and `last_error` are kept.
    async fn retry_message(
        &self,
        id: MessageId,
        at: DateTime<Utc>,
    ) -> Result<Transition, StorageError>;

    // ---- dispatch -----------------------------------------------------------------------

    /// Claims up to `limit.batch` messages that are due at `now`: status `new` whose due
    /// instant (`next_attempt_at`, else `send_at`) is `<= now`, or status `sending` whose
    /// lease ended (`lease_until <= now`: the dispatcher holding it died). Earliest due
    /// instant first (for a `sending` message: its `lease_until`).
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

    /// Extends the leases of these claims to `until` (a heartbeat while their emails are
    /// being sent). Claims that no longer hold (fenced as in [`mark_sent`](Self::mark_sent))
    /// are left alone. Returns how many were extended.
    async fn renew_leases(
        &self,
        tokens: &[ClaimToken],
        until: DateTime<Utc>,
    ) -> Result<u64, StorageError>;

    /// Records that the message was accepted by the mail server: status `sent`,
    /// `sent_at = at`, `last_error` cleared.
    ///
    /// MUST change nothing and return `Ok(false)` unless the message is `sending` under this
    /// very claim (same `attempts`): a dispatcher whose lease expired cannot overwrite the
    /// claim that replaced it. Recording the same result twice under the same claim is
    /// harmless: the second call returns `Ok(false)`.
    async fn mark_sent(&self, token: ClaimToken, at: DateTime<Utc>) -> Result<bool, StorageError>;

    /// Puts the message back to `new`, due at `at`, and ends the lease.
    ///
    /// - With `error: Some(e)` (a retry after a transient failure): `next_attempt_at = at`
    ///   and `last_error = e`; `send_at` MUST NOT change (the message's age and the dispatch
    ///   lag count from it), and the claim counts as an attempt.
    /// - With `error: None` (the message was not tried: outside active hours, or handed
    ///   back): `send_at = at` and `next_attempt_at` cleared; the claim MUST NOT count, so
    ///   `attempts` goes back to its value before the claim.
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

    /// The client unsubscribed: status `suppressed`, `last_error = reason`.
    ///
    /// Same fencing as [`mark_sent`](Self::mark_sent).
    async fn mark_suppressed(
        &self,
        token: ClaimToken,
        reason: String,
    ) -> Result<bool, StorageError>;

    /// When the next message becomes claimable: the smallest due instant (`next_attempt_at`,
    /// else `send_at`) of `new` messages and `lease_until` of `sending` ones, or `None` when
    /// nothing is waiting.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StorageError>;

    /// How many messages wait, and the oldest one due at `now` (see [`Backlog`]).
    async fn backlog(&self, now: DateTime<Utc>) -> Result<Backlog, StorageError>;

    /// Asks to be told when a message may have become due: `on_due` MUST be called after
    /// each committed [`insert_message`](Self::insert_message) of a `new` message and each
    /// [`retry_message`](Self::retry_message), made through this storage or, where the
    /// backend can tell (PostgreSQL's `LISTEN/NOTIFY`), through any other process sharing
    /// the data. It may be called more often. Several callbacks may be registered.
    ///
    /// Backends that must run a task to listen spawn it on the current Tokio runtime.
    async fn watch_due(&self, on_due: DueCallback) -> Result<(), StorageError>;

    // ---- data sets, secrets, health -----------------------------------------------------

    /// Loads `data` as it is, ids included, all of it or nothing. Idempotent: rows that
    /// already exist (by id) are left as they are, so a second import inserts nothing.
    /// Ids assigned later by `create_*` and `insert_message` are above every imported id.
    async fn import(&self, data: &Dataset) -> Result<ImportSummary, StorageError>;

    /// The deployment's secret named `name`: the stored one, or `candidate`, stored now if
    /// none was. Concurrent callers (several servers) MUST all get the same value.
    async fn secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>, StorageError>;

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
    pub from_address: EmailAddress,
    /// The client's name.
    pub to_name: String,
    /// The client's address.
    pub to_address: EmailAddress,
    /// Where the client's reply goes (`Reply-To`): `reply+<token>@<reply domain>`
    /// (SPEC §8), if replies are wired.
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

    /// The message id and creation instant (ms) in a `Message-ID` made by
    /// [`message_id_for`](Self::message_id_for), with or without angle brackets.
    ///
    /// ```
    /// use cartloop_core::ports::Email;
    /// use cartloop_core::ids::MessageId;
    /// assert_eq!(
    ///     Email::parse_message_id("<cartloop.message.7.1795597200000@example.com>"),
    ///     Some((MessageId(7), 1795597200000))
    /// );
    /// assert_eq!(Email::parse_message_id("<CAF=abc@mail.gmail.com>"), None);
    /// ```
    pub fn parse_message_id(value: &str) -> Option<(MessageId, i64)> {
        let value = value.trim().trim_start_matches('<').trim_end_matches('>');
        let (local, _domain) = value.split_once('@')?;
        let rest = local.strip_prefix("cartloop.message.")?;
        let (id, created) = rest.split_once('.')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(id) || !digits(created) {
            return None;
        }
        Some((MessageId(id.parse().ok()?), created.parse().ok()?))
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

/// The addresses that let a client answer an email or leave (SPEC §8), signed so they
/// cannot be guessed or forged. The server's implementation signs tokens with the
/// deployment's secret (`cartloop_http::tokens`); without one, emails carry neither header.
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

/// The current instant, and waiting for a later one.
///
/// Every time rule and every background loop reads time through this port, so tests run at
/// fixed instants and never sleep for real (`testing::ManualClock`). The server's clock is
/// `cartloop_http::SystemClock` (Tokio's timer).
#[async_trait]
pub trait Clock: Send + Sync {
    /// Now, in UTC, to the millisecond (so that an instant reads the same in the API, in
    /// every storage and in logs).
    fn now(&self) -> DateTime<Utc>;

    /// Resolves once `duration` has passed on this clock.
    async fn sleep(&self, duration: Duration);
}
