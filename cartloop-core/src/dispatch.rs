//! The dispatch rules (SPEC §4): claim due messages with a lease, re-check the window,
//! render, send, and record the result of each message as soon as it is known.
//!
//! [`Dispatcher::run_once`] is one pass; the caller (the server) loops, sleeping until
//! [`Dispatcher::next_wake`] or a poll interval. A pass keeps up to
//! [`DispatchConfig::concurrency`] emails in flight, all on the caller's task: it is
//! runtime-agnostic, with no timers and no spawned tasks.
//!
//! With [`DispatchConfig::hourly_cap`], the storage claims no more than the cap leaves,
//! counting recent sends and claims in flight, atomically across every dispatcher on the
//! same database.
//!
//! Outcomes of one claimed message:
//! - outside the client's active hours now (the zone may have changed): back to `new` at the
//!   next window start, without counting an attempt;
//! - the payload no longer renders (e.g. the discount code was removed): `failed`;
//! - sent: `sent`;
//! - permanent mail error: `failed` with the reason;
//! - transient or ambiguous mail error: back to `new` after an exponential backoff
//!   (`backoff_base * 2^(attempts-1)`, capped), or `failed` once `max_attempts` is reached.
//!   An *ambiguous* error (the server may already have accepted the email) is retried too: a
//!   possible duplicate, which receivers drop by its stable `Message-ID`, is better than a
//!   lost email.
//!
//! A dispatcher that dies mid-send loses nothing: its lease expires and the message is
//! claimed again.

use crate::active_hours::ActiveHours;
use crate::concurrent::run_bounded;
use crate::domain::{Claimed, ConversationContext, Message};
use crate::ids::ConversationId;
use crate::ports::{ClaimLimit, Clock, Email, MailErrorKind, Mailer, Storage, StorageError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How the dispatcher behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchConfig {
    /// The delivery window, re-checked at send time.
    pub active_hours: ActiveHours,
    /// How long a claim lasts before another dispatcher may take the message. A pass stops
    /// sending once half of it has gone and releases the rest of its batch, so a slow mail
    /// server never lets a claim expire while its email is still to be sent (which would let
    /// a second dispatcher send it too). Keep it well above the mailer's worst-case send time.
    pub lease: Duration,
    /// Most messages claimed per pass.
    pub batch_size: u32,
    /// Most emails of a pass in flight at once (at least one). Each message is started only
    /// when a slot is free, and the half-lease rule above applies when it starts.
    pub concurrency: usize,
    /// Claims after which a transiently failing message is marked `failed`.
    pub max_attempts: u32,
    /// First retry delay; doubles with each attempt.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// At most this many emails per rolling hour (`None`: no cap). The storage enforces it
    /// while claiming, so it holds across the tasks, processes and servers that share one
    /// database (see [`ClaimLimit::hourly_cap`]).
    pub hourly_cap: Option<u32>,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            active_hours: ActiveHours::default(),
            lease: Duration::from_secs(300),
            batch_size: 100,
            concurrency: 8,
            max_attempts: 5,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
            hourly_cap: None,
        }
    }
}

impl DispatchConfig {
    /// The delay before retry number `attempts` (1-based) after a transient failure.
    ///
    /// ```
    /// use cartloop_core::dispatch::DispatchConfig;
    /// use std::time::Duration;
    /// let c = DispatchConfig::default();
    /// assert_eq!(c.backoff(1), Duration::from_secs(30));
    /// assert_eq!(c.backoff(3), Duration::from_secs(120));
    /// assert_eq!(c.backoff(30), Duration::from_secs(3600));
    /// ```
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff_base
            .checked_mul(factor)
            .unwrap_or(self.backoff_max)
            .min(self.backoff_max)
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Messages claimed.
    pub claimed: u32,
    /// Emails accepted by the mailer and recorded `sent`.
    pub sent: u32,
    /// Put back because the client is outside active hours.
    pub deferred: u32,
    /// Put back for a retry after a transient failure.
    pub retried: u32,
    /// Given up.
    pub failed: u32,
    /// Results not recorded because the claim had been taken over (lease expired).
    pub lost_claims: u32,
    /// Claimed but handed back unsent because the pass ran past half the lease, or the
    /// dispatcher was told to stop; due again at once, without counting an attempt.
    pub released: u32,
    /// Results not recorded because the storage failed; the lease will expire and the
    /// message will be claimed again.
    pub storage_errors: u32,
}

/// Which counter of a [`DispatchReport`] one claimed message adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tally {
    Sent,
    Deferred,
    Retried,
    Failed,
    LostClaim,
    Released,
    StorageError,
}

impl DispatchReport {
    fn count(&mut self, tally: Tally) {
        let counter = match tally {
            Tally::Sent => &mut self.sent,
            Tally::Deferred => &mut self.deferred,
            Tally::Retried => &mut self.retried,
            Tally::Failed => &mut self.failed,
            Tally::LostClaim => &mut self.lost_claims,
            Tally::Released => &mut self.released,
            Tally::StorageError => &mut self.storage_errors,
        };
        *counter += 1;
    }
}

/// What happened to one message, for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent.
    Sent,
    /// Outside the window: re-scheduled.
    Deferred(DateTime<Utc>),
    /// Transient failure: retry at the instant.
    Retry(DateTime<Utc>, String),
    /// Given up, with the reason.
    Failed(String),
}

/// A callback told each message's outcome.
type Observer = Arc<dyn Fn(&Message, &Outcome) + Send + Sync>;

/// Sends due messages through the ports.
#[derive(Clone)]
pub struct Dispatcher {
    storage: Arc<dyn Storage>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    config: DispatchConfig,
    observer: Option<Observer>,
    /// Set by [`Dispatcher::stop`], shared by every clone.
    stopping: Arc<AtomicBool>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher over the given ports.
    pub fn new(
        storage: Arc<dyn Storage>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
        config: DispatchConfig,
    ) -> Self {
        Self {
            storage,
            mailer,
            clock,
            config,
            observer: None,
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Asks this dispatcher and all its clones to stop: a pass in progress lets the emails
    /// in flight finish and hands the rest of its batch back at once, due now and without
    /// counting an attempt, so that another dispatcher (or this one after a restart) takes
    /// them without waiting for the lease to end. Later passes claim nothing.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Calls `observer` with every message's outcome (the server logs them).
    pub fn with_observer(
        mut self,
        observer: impl Fn(&Message, &Outcome) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &DispatchConfig {
        &self.config
    }

    /// When a pass next has work: the earliest due or lease-expiry instant.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn next_wake(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        self.storage.next_due().await
    }

    /// One pass: claims up to `batch_size` due messages (fewer under the hourly cap) and
    /// handles them, up to `concurrency` at once, writing each result as soon as it is
    /// known.
    ///
    /// # Errors
    /// Only when claiming fails; failures recording a single result are counted in
    /// [`DispatchReport::storage_errors`] and resolved by the lease.
    pub async fn run_once(&self) -> Result<DispatchReport, StorageError> {
        let mut report = DispatchReport::default();
        if self.is_stopping() {
            return Ok(report);
        }
        let now = self.clock.now();
        let limit = ClaimLimit {
            batch: self.config.batch_size,
            hourly_cap: self.config.hourly_cap,
        };
        let claimed = self
            .storage
            .claim_due(now, self.config.lease, limit)
            .await?;
        report.claimed = claimed.len() as u32;
        let half_lease =
            chrono::Duration::from_std(self.config.lease / 2).unwrap_or(chrono::Duration::MAX);
        let send_until = now
            .checked_add_signed(half_lease)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        // Each conversation of the batch is read once; `None` when reading it failed.
        let mut contexts: HashMap<ConversationId, Option<Option<ConversationContext>>> =
            HashMap::new();
        for claim in &claimed {
            let id = claim.message.conversation_id;
            if let std::collections::hash_map::Entry::Vacant(slot) = contexts.entry(id) {
                slot.insert(self.storage.conversation(id).await.ok());
            }
        }
        let contexts = &contexts;
        let tallies = run_bounded(claimed, self.config.concurrency, |claim| async move {
            if self.is_stopping() || self.clock.now() >= send_until {
                return self.release(claim, now).await;
            }
            match contexts.get(&claim.message.conversation_id) {
                Some(Some(context)) => self.handle(claim, context.as_ref()).await,
                // The lease will expire and the message will be claimed again.
                _ => Tally::StorageError,
            }
        })
        .await;
        for tally in tallies {
            report.count(tally);
        }
        Ok(report)
    }

    /// Hands a claimed message back unsent, due again at once, without counting an attempt.
    async fn release(&self, claim: Claimed, claimed_at: DateTime<Utc>) -> Tally {
        let due = claim.message.send_at.unwrap_or(claimed_at);
        match self.storage.reschedule(claim.token, due, None).await {
            Ok(true) => Tally::Released,
            Ok(false) => Tally::LostClaim,
            Err(_) => Tally::StorageError,
        }
    }

    async fn handle(&self, claim: Claimed, context: Option<&ConversationContext>) -> Tally {
        let Claimed { message, token } = claim;
        let now = self.clock.now();
        let outcome = match context {
            None => Outcome::Failed(format!(
                "conversation {} no longer exists",
                message.conversation_id
            )),
            Some(context) => self.deliver(&message, context, now).await,
        };
        let recorded = match &outcome {
            Outcome::Sent => self.storage.mark_sent(token, self.clock.now()).await,
            Outcome::Deferred(at) => self.storage.reschedule(token, *at, None).await,
            Outcome::Retry(at, error) => {
                self.storage
                    .reschedule(token, *at, Some(error.clone()))
                    .await
            }
            Outcome::Failed(error) => self.storage.mark_failed(token, error.clone()).await,
        };
        let tally = match recorded {
            Ok(true) => match outcome {
                Outcome::Sent => Tally::Sent,
                Outcome::Deferred(_) => Tally::Deferred,
                Outcome::Retry(..) => Tally::Retried,
                Outcome::Failed(_) => Tally::Failed,
            },
            Ok(false) => Tally::LostClaim,
            Err(_) => Tally::StorageError,
        };
        if let Some(observer) = &self.observer {
            observer(&message, &outcome);
        }
        tally
    }

    async fn deliver(
        &self,
        message: &Message,
        context: &ConversationContext,
        now: DateTime<Utc>,
    ) -> Outcome {
        let tz = context.client_time_zone();
        let hours = &self.config.active_hours;
        if !hours.contains(now, tz) {
            return Outcome::Deferred(hours.next_send_instant(now, tz));
        }
        let body = match message.payload.render(&context.render_values()) {
            Ok(body) => body,
            Err(e) => return Outcome::Failed(format!("cannot render message: {e}")),
        };
        let email = compose_email(message, context, body, now);
        match self.mailer.send(&email).await {
            Ok(()) => Outcome::Sent,
            Err(e) if e.kind == MailErrorKind::Permanent => Outcome::Failed(e.message),
            Err(e) if message.attempts >= self.config.max_attempts => Outcome::Failed(format!(
                "gave up after {} attempts: {}",
                message.attempts, e.message
            )),
            Err(e) => {
                let delay = self.config.backoff(message.attempts);
                let at =
                    now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
                Outcome::Retry(at, e.message)
            }
        }
    }
}

/// The email that delivers `message`, rendered as `body`, to the conversation's client.
pub fn compose_email(
    message: &Message,
    context: &ConversationContext,
    body: String,
    now: DateTime<Utc>,
) -> Email {
    Email {
        message_id: message.id,
        message_id_header: Email::message_id_for(
            message.id,
            message.created_at,
            context.store.sender_email.as_str(),
        ),
        reply_to: None,
        unsubscribe_url: None,
        from_name: context.store.name.clone(),
        from_address: context.store.sender_email.clone(),
        to_name: context.client.name.clone(),
        to_address: context.client.email.clone(),
        subject: format!("A message from {}", context.store.name),
        body,
        date: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{post_chat, ChatRules, PostChat};
    use crate::demo::demo_data;
    use crate::domain::MessageStatus;
    use crate::ids::{MessageId, UserId};
    use crate::ports::{Email, MailError, Mailer};
    use crate::testing::{ManualClock, MemoryStorage, RecordingMailer};
    use chrono::TimeZone;

    struct Fixture {
        storage: Arc<MemoryStorage>,
        mailer: Arc<RecordingMailer>,
        clock: Arc<ManualClock>,
        dispatcher: Dispatcher,
    }

    // 2026-11-25 15:00Z is 09:00 in Chicago, where client 27 (conversation 1) lives.
    fn nine_am_chicago() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap()
    }

    async fn fixture(mailer: RecordingMailer, config: DispatchConfig) -> Fixture {
        let storage = Arc::new(MemoryStorage::new());
        storage.import(&demo_data()).await.unwrap();
        let mailer = Arc::new(mailer);
        let clock = Arc::new(ManualClock::new(nine_am_chicago()));
        let dispatcher = Dispatcher::new(storage.clone(), mailer.clone(), clock.clone(), config);
        Fixture {
            storage,
            mailer,
            clock,
            dispatcher,
        }
    }

    async fn post(f: &Fixture, payload: &str) -> MessageId {
        let request = PostChat {
            conversation_id: ConversationId(1),
            user_id: UserId(24),
            payload: payload.to_owned(),
            idempotency_key: None,
        };
        post_chat(
            f.storage.as_ref(),
            f.clock.as_ref(),
            &ChatRules::default(),
            request,
        )
        .await
        .unwrap()
        .message
        .id
    }

    #[tokio::test]
    async fn sends_rendered_email_and_records_sent() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let id = post(
            &f,
            "Sure {{ username }}. Here is your code {{ discountCode }}",
        )
        .await;
        let report = f.dispatcher.run_once().await.unwrap();
        assert_eq!((report.claimed, report.sent), (1, 1));
        let sent = f.mailer.messages();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].body, "Sure John Carter. Here is your code PROMO50");
        assert_eq!(sent[0].to_address, "john.carter@example.com");
        assert_eq!(
            sent[0].message_id_header,
            format!(
                "cartloop.message.{id}.{}@sneakerhub.example.com",
                nine_am_chicago().timestamp_millis()
            )
        );
        let stored = f.storage.message(id).await.unwrap().unwrap();
        assert_eq!(stored.status, MessageStatus::Sent);
        assert_eq!(stored.sent_at, Some(nine_am_chicago()));
        // Nothing left to do.
        assert_eq!(f.dispatcher.run_once().await.unwrap().claimed, 0);
    }

    #[tokio::test]
    async fn message_written_before_the_window_goes_when_it_opens() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        f.clock
            .set(nine_am_chicago() - chrono::Duration::minutes(1));
        let id = post(&f, "early").await;
        assert_eq!(f.dispatcher.run_once().await.unwrap().claimed, 0);
        assert_eq!(
            f.dispatcher.next_wake().await.unwrap(),
            Some(nine_am_chicago())
        );
        f.clock.set(nine_am_chicago());
        assert_eq!(f.dispatcher.run_once().await.unwrap().sent, 1);
        assert_eq!(
            f.storage.message(id).await.unwrap().unwrap().status,
            MessageStatus::Sent
        );
    }

    #[tokio::test]
    async fn rechecks_the_window_at_send_time() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let id = post(&f, "hi").await;
        // The dispatcher only gets to it at 20:00 local: deferred to 09:00 next day.
        f.clock.set(nine_am_chicago() + chrono::Duration::hours(11));
        let report = f.dispatcher.run_once().await.unwrap();
        assert_eq!(report.deferred, 1);
        assert!(f.mailer.messages().is_empty());
        let stored = f.storage.message(id).await.unwrap().unwrap();
        assert_eq!(stored.status, MessageStatus::New);
        assert_eq!(
            stored.send_at,
            Some(nine_am_chicago() + chrono::Duration::days(1))
        );
        assert_eq!(stored.attempts, 0, "a deferral is not an attempt");
    }

    #[tokio::test]
    async fn transient_errors_back_off_then_fail() {
        let config = DispatchConfig {
            max_attempts: 3,
            ..Default::default()
        };
        let f = fixture(
            RecordingMailer::new_error(MailError::transient("451 try later")),
            config,
        )
        .await;
        let id = post(&f, "hi").await;
        assert_eq!(f.dispatcher.run_once().await.unwrap().retried, 1);
        let stored = f.storage.message(id).await.unwrap().unwrap();
        assert_eq!(stored.status, MessageStatus::New);
        assert_eq!(stored.attempts, 1);
        assert_eq!(stored.last_error.as_deref(), Some("451 try later"));
        assert_eq!(
            stored.send_at,
            Some(nine_am_chicago() + chrono::Duration::seconds(30))
        );
        // Not due again before the backoff.
        f.clock.advance(chrono::Duration::seconds(29));
        assert_eq!(f.dispatcher.run_once().await.unwrap().claimed, 0);
        f.clock.advance(chrono::Duration::seconds(1));
        assert_eq!(f.dispatcher.run_once().await.unwrap().retried, 1);
        assert_eq!(
            f.storage.message(id).await.unwrap().unwrap().send_at,
            Some(nine_am_chicago() + chrono::Duration::seconds(90))
        );
        f.clock.advance(chrono::Duration::seconds(60));
        assert_eq!(f.dispatcher.run_once().await.unwrap().failed, 1);
        let stored = f.storage.message(id).await.unwrap().unwrap();
        assert_eq!(stored.status, MessageStatus::Failed);
        assert_eq!(stored.attempts, 3);
        assert!(stored
            .last_error
            .unwrap()
            .contains("gave up after 3 attempts"));
        assert_eq!(f.mailer.attempts(), 3);
    }

    #[tokio::test]
    async fn permanent_error_fails_at_once() {
        let f = fixture(
            RecordingMailer::new_error(MailError::permanent("550 no such user")),
            DispatchConfig::default(),
        )
        .await;
        let id = post(&f, "hi").await;
        assert_eq!(f.dispatcher.run_once().await.unwrap().failed, 1);
        let stored = f.storage.message(id).await.unwrap().unwrap();
        assert_eq!(stored.status, MessageStatus::Failed);
        assert_eq!(stored.last_error.as_deref(), Some("550 no such user"));
    }

    #[tokio::test]
    async fn ambiguous_errors_are_retried() {
        let f = fixture(
            RecordingMailer::new_error(MailError::ambiguous("timeout after DATA")),
            DispatchConfig::default(),
        )
        .await;
        let id = post(&f, "hi").await;
        assert_eq!(f.dispatcher.run_once().await.unwrap().retried, 1);
        assert_eq!(
            f.storage.message(id).await.unwrap().unwrap().status,
            MessageStatus::New
        );
    }

    #[tokio::test]
    async fn crashed_dispatcher_loses_nothing() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let id = post(&f, "hi").await;
        // A dispatcher claims the message and dies before recording anything.
        let claimed = f
            .storage
            .claim_due(
                f.clock.now(),
                Duration::from_secs(60),
                ClaimLimit::batch(10),
            )
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(
            f.dispatcher.run_once().await.unwrap().claimed,
            0,
            "lease still held"
        );
        f.clock.advance(chrono::Duration::seconds(60));
        assert_eq!(f.dispatcher.run_once().await.unwrap().sent, 1);
        // The dead dispatcher's late result is ignored.
        assert!(!f
            .storage
            .mark_failed(claimed[0].token, "late".into())
            .await
            .unwrap());
        assert_eq!(
            f.storage.message(id).await.unwrap().unwrap().status,
            MessageStatus::Sent
        );
    }

    /// A mail server that takes 20 s per email.
    struct SlowMailer(Arc<ManualClock>, RecordingMailer);

    #[async_trait::async_trait]
    impl Mailer for SlowMailer {
        async fn send(&self, email: &Email) -> Result<(), MailError> {
            self.0.advance(chrono::Duration::seconds(20));
            self.1.send(email).await
        }
    }

    #[tokio::test]
    async fn slow_pass_releases_what_it_cannot_send_within_half_the_lease() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let config = DispatchConfig {
            lease: Duration::from_secs(60),
            concurrency: 1,
            ..Default::default()
        };
        let slow = Arc::new(SlowMailer(f.clock.clone(), RecordingMailer::new_ok()));
        let dispatcher = Dispatcher::new(f.storage.clone(), slow.clone(), f.clock.clone(), config);
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(post(&f, "hi").await);
        }
        // Sends at t=0 and t=20; at t=40 half the lease is gone: the other three go back.
        let report = dispatcher.run_once().await.unwrap();
        assert_eq!((report.claimed, report.sent, report.released), (5, 2, 3));
        for id in &ids[2..] {
            let stored = f.storage.message(*id).await.unwrap().unwrap();
            assert_eq!((stored.status, stored.attempts), (MessageStatus::New, 0));
            assert_eq!(stored.send_at, Some(nine_am_chicago()));
        }
        // Due at once for the next pass, which again sends two before its half-lease.
        let report = dispatcher.run_once().await.unwrap();
        assert_eq!((report.claimed, report.sent, report.released), (3, 2, 1));
        assert_eq!(dispatcher.run_once().await.unwrap().sent, 1);
        assert_eq!(slow.1.messages().len(), 5, "each email sent exactly once");
    }

    /// A mail server that answers only once `expected` sends are waiting, or when it has
    /// been polled many times: it proves how many emails are in flight at once.
    struct GatheringMailer {
        in_flight: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
        expected: usize,
        inner: RecordingMailer,
    }

    #[async_trait::async_trait]
    impl Mailer for GatheringMailer {
        async fn send(&self, email: &Email) -> Result<(), MailError> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            for _ in 0..100 {
                if self.in_flight.load(SeqCst) >= self.expected {
                    break;
                }
                tokio::task::yield_now().await;
            }
            tokio::task::yield_now().await;
            self.in_flight.fetch_sub(1, SeqCst);
            self.inner.send(email).await
        }
    }

    #[tokio::test]
    async fn a_pass_keeps_up_to_concurrency_emails_in_flight() {
        for (concurrency, expected_most) in [(4, 4), (1, 1)] {
            let config = DispatchConfig {
                concurrency,
                ..Default::default()
            };
            let f = fixture(RecordingMailer::new_ok(), config.clone()).await;
            let mailer = Arc::new(GatheringMailer {
                in_flight: Default::default(),
                most: Default::default(),
                expected: concurrency,
                inner: RecordingMailer::new_ok(),
            });
            let dispatcher =
                Dispatcher::new(f.storage.clone(), mailer.clone(), f.clock.clone(), config);
            let mut ids = Vec::new();
            for n in 0..10 {
                ids.push(post(&f, &format!("message {n}")).await);
            }
            let report = dispatcher.run_once().await.unwrap();
            assert_eq!((report.claimed, report.sent), (10, 10), "{report:?}");
            let most = mailer.most.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(most, expected_most, "concurrency {concurrency}");
            let mut sent: Vec<_> = mailer
                .inner
                .messages()
                .iter()
                .map(|e| e.message_id)
                .collect();
            sent.sort();
            assert_eq!(sent, ids, "each email once");
            for id in ids {
                let stored = f.storage.message(id).await.unwrap().unwrap();
                assert_eq!(stored.status, MessageStatus::Sent);
            }
        }
    }

    /// A mail server that takes 20 s per email and, during the second, the dispatcher is
    /// told to stop.
    struct StopDuringSecondSend {
        clock: Arc<ManualClock>,
        inner: RecordingMailer,
        dispatcher: std::sync::OnceLock<Dispatcher>,
    }

    #[async_trait::async_trait]
    impl Mailer for StopDuringSecondSend {
        async fn send(&self, email: &Email) -> Result<(), MailError> {
            if self.inner.attempts() == 1 {
                self.dispatcher.get().unwrap().stop();
            }
            self.clock.advance(chrono::Duration::seconds(20));
            self.inner.send(email).await
        }
    }

    #[tokio::test]
    async fn stopping_finishes_the_emails_in_flight_and_hands_back_the_rest() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let config = DispatchConfig {
            concurrency: 1,
            ..Default::default()
        };
        let mailer = Arc::new(StopDuringSecondSend {
            clock: f.clock.clone(),
            inner: RecordingMailer::new_ok(),
            dispatcher: std::sync::OnceLock::new(),
        });
        let dispatcher =
            Dispatcher::new(f.storage.clone(), mailer.clone(), f.clock.clone(), config);
        let _ = mailer.dispatcher.set(dispatcher.clone());
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(post(&f, "hi").await);
        }
        let report = dispatcher.run_once().await.unwrap();
        assert_eq!((report.claimed, report.sent, report.released), (5, 2, 3));
        for id in &ids[2..] {
            let stored = f.storage.message(*id).await.unwrap().unwrap();
            assert_eq!((stored.status, stored.attempts), (MessageStatus::New, 0));
        }
        // Due at once for any other dispatcher; this one (and its clones) claims nothing more.
        assert_eq!(f.storage.next_due().await.unwrap(), Some(nine_am_chicago()));
        assert_eq!(dispatcher.clone().run_once().await.unwrap().claimed, 0);
        assert_eq!(f.dispatcher.run_once().await.unwrap().sent, 3);
    }

    #[tokio::test]
    async fn hourly_cap_limits_sends() {
        let config = DispatchConfig {
            hourly_cap: Some(2),
            ..Default::default()
        };
        let f = fixture(RecordingMailer::new_ok(), config).await;
        for _ in 0..3 {
            post(&f, "hi").await;
        }
        assert_eq!(f.dispatcher.run_once().await.unwrap().sent, 2);
        assert_eq!(f.dispatcher.run_once().await.unwrap().claimed, 0);
        f.clock.advance(chrono::Duration::minutes(61));
        assert_eq!(f.dispatcher.run_once().await.unwrap().sent, 1);
    }

    #[tokio::test]
    async fn unrenderable_message_fails_with_reason() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let id = post(&f, "code {{ discountCode }}").await;
        f.storage.set_discount_code(ConversationId(1), None);
        assert_eq!(f.dispatcher.run_once().await.unwrap().failed, 1);
        let stored = f.storage.message(id).await.unwrap().unwrap();
        assert!(stored.last_error.unwrap().contains("discountCode"));
    }
}
