//! [`DispatchQueue`]: the due messages a dispatcher claims with a lease, and what it records
//! of each.

use super::StorageError;
use crate::delivery_policy::WaitingFor;
use crate::domain::{ClaimToken, Claimed, ConversationContext};
use crate::frequency_cap::FrequencyCap;
use crate::ids::ConversationId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

pub use crate::hourly_cap::ClaimLimit;

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

/// The answer of [`DispatchQueue::reserve_send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// One more send fits: the message counts against the cap from now on.
    Granted,
    /// The cap is reached: the instants of the sends that fill it (the client's reserved
    /// sends since `now - per`, oldest first), from which the policy finds when one more
    /// fits. Nothing changed.
    Full(Vec<DateTime<Utc>>),
    /// The claim no longer holds (fenced as in [`DispatchQueue::mark_sent`]); nothing
    /// changed.
    Lost,
}

/// Called when a message may have become due (see [`DispatchQueue::watch_due`]).
pub type DueCallback = Arc<dyn Fn() + Send + Sync>;

/// The dispatch queue: due messages claimed under a lease, their results fenced by the claim.
///
/// Errors: [`StorageError::Unavailable`] when the backing store cannot be reached (the
/// dispatcher retries while its claims hold), [`StorageError::Other`] for anything else.
#[async_trait]
pub trait DispatchQueue: Send + Sync {
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

    /// The delivery policy holds the message: back to `new` with `send_at = at`,
    /// `next_attempt_at` cleared and `waiting_for` recorded, its lease ended and its
    /// reservation ([`reserve_send`](Self::reserve_send)) released. No send was tried, so
    /// the claim MUST NOT count: `attempts` goes back to its value before it.
    ///
    /// Same fencing as [`mark_sent`](Self::mark_sent).
    async fn hold(
        &self,
        token: ClaimToken,
        at: DateTime<Utc>,
        waiting_for: Option<WaitingFor>,
    ) -> Result<bool, StorageError>;

    /// Reserves one send of the claimed message under the frequency cap `cap` of its
    /// client at `now`: counts the client's other reserved sends (see
    /// [`delivery_facts`](super::Conversations::delivery_facts)) after `now - cap.per()`,
    /// and if fewer than `cap.count()`, reserves this one at `now` ([`Reservation::Granted`]),
    /// else changes nothing and answers [`Reservation::Full`] with their instants.
    ///
    /// MUST count and reserve atomically with respect to every other reservation for the
    /// same client, by any process on the same data, so that dispatchers sending at the
    /// same moment together never exceed the cap. A reservation stays when the message is
    /// [`mark_sent`](Self::mark_sent) (its instant becomes the send's) and is released by
    /// every other result ([`reschedule`](Self::reschedule), [`hold`](Self::hold),
    /// [`mark_failed`](Self::mark_failed), [`mark_suppressed`](Self::mark_suppressed)),
    /// unless an attempt whose email may have gone kept it
    /// ([`keep_reservation`](Self::keep_reservation)): then those results put it back to
    /// that attempt's instant. A claim whose lease ends keeps it: the email may have gone.
    ///
    /// MUST answer [`Reservation::Lost`] unless the message is `sending` under this claim.
    async fn reserve_send(
        &self,
        token: ClaimToken,
        now: DateTime<Utc>,
        cap: FrequencyCap,
    ) -> Result<Reservation, StorageError>;

    /// The claimed message's email may have gone (an ambiguous mail error: the server may
    /// have accepted it): its reservation under the frequency cap, if this claim holds one
    /// ([`reserve_send`](Self::reserve_send)), counts from now on as a send at the
    /// reservation's instant. Every later result but a send (which moves it to the send's
    /// instant) and every later reservation leave the message counted at that instant or
    /// a later one, so the cap never lets more emails through than it allows, even when the
    /// ambiguous one did go. Without a reservation, nothing changes.
    ///
    /// Same fencing as [`mark_sent`](Self::mark_sent).
    async fn keep_reservation(&self, token: ClaimToken) -> Result<bool, StorageError>;

    /// Gives up on the message: status `failed`, `last_error = error`.
    ///
    /// Same fencing as [`mark_sent`](Self::mark_sent).
    async fn mark_failed(&self, token: ClaimToken, error: String) -> Result<bool, StorageError>;

    /// The client unsubscribed: status `suppressed`, `last_error = reason`. No send was
    /// tried, so the claim MUST NOT count: `attempts` goes back to its value before it.
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
    /// each committed [`insert_message`](super::Conversations::insert_message) of a `new`
    /// message and each [`retry_message`](super::Conversations::retry_message), made through
    /// this storage or, where the backend can tell (PostgreSQL's `LISTEN/NOTIFY`), through any
    /// other process sharing the data. It may be called more often. Several callbacks may be registered.
    ///
    /// Backends that must run a task to listen spawn it on the current Tokio runtime.
    async fn watch_due(&self, on_due: DueCallback) -> Result<(), StorageError>;

    /// The conversations of claimed messages, with their store, operator and client as they
    /// are now (a client's zone or a store's window may have changed since the message was
    /// written), to render and address their emails.
    ///
    /// MUST return one entry per known id, in any order, and leave unknown ids out.
    async fn contexts(
        &self,
        ids: &[ConversationId],
    ) -> Result<Vec<ConversationContext>, StorageError>;
}
