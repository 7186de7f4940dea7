//! The dispatch rules: claim due messages with a lease, re-check the window,
//! render, send, and record the result of each message as soon as it is known.
//!
//! [`Dispatcher::run`] is the loop a server runs (one per worker): a pass, then sleep until
//! the next message is due (at most [`DispatchConfig::poll_interval`]), woken early by
//! [`Dispatcher::wake`] — which the storage's `watch_due` calls for every new message, on
//! every server sharing a PostgreSQL database — and ended by [`Dispatcher::stop`].
//! [`Dispatcher::run_once`] is one pass. Everything runs on the caller's task and reads time
//! through the [`Clock`] port: no runtime, no spawned tasks, and tests never sleep.
//!
//! A pass claims up to [`DispatchConfig::batch_size`] messages (fewer under the hourly cap,
//! which the storage enforces atomically across every dispatcher on the same database) and
//! keeps up to [`DispatchConfig::concurrency`] emails in flight. While it sends, it renews
//! the leases of the messages it still holds every third of the lease (a heartbeat), so the
//! lease can be short and a crashed server's messages go out again within about a lease.
//!
//! Outcomes of one claimed message:
//! - the client unsubscribed: `suppressed`;
//! - the [delivery policy](crate::delivery_policy) holds it now, decided again with the
//!   conversation as it is (the client's zone, the store's calendar, closures, cap or reply
//!   grace may have changed): back to `new` at the decision's instant, with the rule that
//!   holds it, without counting an attempt. The frequency cap is counted in the storage: a
//!   message that may go reserves its send ([`DispatchQueue::reserve_send`]) atomically
//!   with every other dispatcher's reservations for the client, and is held until one more
//!   fits when the cap is full;
//! - the payload no longer renders (e.g. the discount code was removed): `failed`;
//! - sent: `sent`;
//! - permanent mail error: `failed` with the reason;
//! - transient or ambiguous mail error: tried again after an exponential backoff
//!   (`backoff_base * 2^(attempts-1)`, capped at `backoff_max`), moved to the window's next
//!   start when it falls outside; `failed` once the next try would come more than
//!   [`DispatchConfig::max_message_age`] after the message's `send_at`. Retries are by age,
//!   not count, so an SMTP outage of hours fails nothing. An *ambiguous* error (the server
//!   may already have accepted the email) is retried too: a possible duplicate, which
//!   receivers drop by its stable `Message-ID`, is better than a lost email. It keeps its
//!   reservation under the frequency cap ([`DispatchQueue::keep_reservation`]): an email
//!   that may have gone counts, so the cap holds even if it did. A transient error (the
//!   email was not handed over) releases it.
//!
//! Recording a result retries transient storage errors with backoff for as long as the
//! claim holds (recording is idempotent under the fence), each retry reported to the
//! observer; a message whose conversation cannot be read is handed back at once. Whatever
//! could not be recorded is reported with its cause and counted, never dropped silently;
//! its lease ends and the message is claimed again. A sent email whose record meets a full
//! or failing disk ([`DiskFault`]) is retried past its lease until the disk takes writes:
//! no dispatcher can claim it meanwhile, and this one (with its clones) claims nothing until
//! the record is through, so it is recorded instead of sent again. (Another process on the
//! same database may still claim it first once the disk takes writes.)

use crate::compose;
use crate::concurrent::{first, run_bounded, while_running, Signal};
use crate::delivery_policy::{DeliveryInput, WaitingFor};
use crate::disk_fault::DiskFault;
use crate::domain::{ClaimToken, Claimed, ConversationContext, Message};
use crate::ids::{ConversationId, MessageId};
use crate::ports::{
    ClaimLimit, Clock, DispatchQueue, DueCallback, Links, MailErrorKind, Mailer, Reservation,
    StorageError,
};
use crate::rules::Rules;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the dispatcher behaves. The delivery window is not here: it is the deployment's
/// [`Rules`] (or the store's own), shared with the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchConfig {
    /// How long a claim lasts unless renewed. A pass renews the claims it still holds every
    /// third of it, and starts no send once less than half of it is left (when renewals
    /// fail), so a claim never expires while its email is being sent in normal operation.
    /// A crashed dispatcher's messages are claimed again once it ends.
    pub lease: Duration,
    /// Most messages claimed per pass.
    pub batch_size: u32,
    /// Most emails of a pass in flight at once (at least one).
    pub concurrency: usize,
    /// First retry delay after a transient failure; doubles with each attempt.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// A message is given up (`failed`) once its next try would come this long after its
    /// `send_at` (the server's `MAX_MESSAGE_AGE`). Every message is tried at least once.
    pub max_message_age: Duration,
    /// At most this many emails per rolling hour (`None`: no cap). The storage enforces it
    /// while claiming, so it holds across the tasks, processes and servers that share one
    /// database (see [`ClaimLimit::hourly_cap`]).
    pub hourly_cap: Option<u32>,
    /// The longest [`Dispatcher::run`] sleeps between passes when nothing wakes it.
    pub poll_interval: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            batch_size: 100,
            concurrency: 8,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(15 * 60),
            max_message_age: Duration::from_secs(24 * 3600),
            hourly_cap: None,
            poll_interval: Duration::from_secs(5),
        }
    }
}

impl DispatchConfig {
    /// The delay before the retry that follows attempt number `attempts` (1-based).
    ///
    /// ```
    /// use cartloop_core::dispatch::DispatchConfig;
    /// use std::time::Duration;
    /// let c = DispatchConfig::default();
    /// assert_eq!(c.backoff(1), Duration::from_secs(30));
    /// assert_eq!(c.backoff(3), Duration::from_secs(120));
    /// assert_eq!(c.backoff(30), Duration::from_secs(900));
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

    fn heartbeat(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(10))
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Messages claimed.
    pub claimed: u32,
    /// Emails accepted by the mailer and recorded `sent`.
    pub sent: u32,
    /// Put back because the delivery policy holds it (active hours, a closure, a later
    /// `sendAt`, the frequency cap).
    pub deferred: u32,
    /// Put back for a retry after a transient failure.
    pub retried: u32,
    /// Given up.
    pub failed: u32,
    /// Not sent because the client unsubscribed.
    pub suppressed: u32,
    /// Results not recorded because the claim had been taken over (lease expired) or the
    /// message cancelled meanwhile.
    pub lost_claims: u32,
    /// Claimed but handed back unsent: the dispatcher was told to stop, its lease could not
    /// be renewed, or the message's conversation could not be read. Due again at once,
    /// without counting an attempt.
    pub released: u32,
    /// Results not recorded because the storage failed for as long as the claim held; the
    /// lease ends and the message is claimed again (each one reported with its cause).
    pub storage_errors: u32,
}

/// Which counter of a [`DispatchReport`] one claimed message adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tally {
    Sent,
    Deferred,
    Retried,
    Failed,
    Suppressed,
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
            Tally::Suppressed => &mut self.suppressed,
            Tally::LostClaim => &mut self.lost_claims,
            Tally::Released => &mut self.released,
            Tally::StorageError => &mut self.storage_errors,
        };
        *counter += 1;
    }
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent (accepted by the mail server) at the instant.
    Sent(DateTime<Utc>),
    /// Handed back unsent: due again at the instant.
    Deferred(DateTime<Utc>),
    /// The delivery policy holds it: re-scheduled to the instant, waiting for the rule.
    Held(DateTime<Utc>, WaitingFor),
    /// Transient failure: tried again at the instant.
    Retry(DateTime<Utc>, String),
    /// Given up, with the reason.
    Failed(String),
    /// The client unsubscribed.
    Suppressed,
}

/// What the dispatcher tells its observer (the server logs each event and counts it in
/// `/metrics`).
#[derive(Debug)]
pub enum Event<'a> {
    /// A message's outcome was recorded.
    Recorded {
        /// The message as claimed.
        message: &'a Message,
        /// What happened.
        outcome: &'a Outcome,
    },
    /// A message was handed back unsent (see [`DispatchReport::released`]).
    Released {
        /// The message as claimed.
        message: &'a Message,
        /// Why.
        reason: &'static str,
    },
    /// A result was not recorded because the claim no longer held.
    LostClaim {
        /// The message as claimed.
        message: &'a Message,
        /// The outcome that was not recorded.
        outcome: &'a Outcome,
    },
    /// A storage call failed and will be tried again (recording a result).
    StorageRetry {
        /// The message.
        message: MessageId,
        /// What was being done.
        action: &'static str,
        /// The failure.
        error: &'a StorageError,
    },
    /// A storage call failed for good: a pass could not claim, a lease could not be
    /// renewed, a result could not be recorded.
    StorageFailed {
        /// The message, if one was concerned.
        message: Option<MessageId>,
        /// What was being done.
        action: &'static str,
        /// The failure.
        error: &'a StorageError,
    },
}

/// A callback told every [`Event`].
type Observer = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

/// Sends due messages through the ports.
///
/// Cloning is cheap; clones share the stop flag, the wake-up signal and the records waiting
/// for a full disk, so several clones can [`run`](Self::run) as workers.
#[derive(Clone)]
pub struct Dispatcher {
    queue: Arc<dyn DispatchQueue>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    rules: Arc<Rules>,
    config: DispatchConfig,
    links: Option<Arc<dyn Links>>,
    observer: Option<Observer>,
    stopping: Arc<AtomicBool>,
    signal: Arc<Signal>,
    /// Sent emails whose record waits for a full disk after their claim ran out: while there
    /// are any, no clone claims, or the first claim once the disk takes writes could take
    /// one of them over and send it again before its record goes through.
    waiting_records: Arc<AtomicUsize>,
}

/// One of the dispatcher's `waiting_records`, for as long as it lives; the last one to go
/// wakes a worker, since claims were held back.
struct WaitingRecord<'a>(&'a Dispatcher);

impl<'a> WaitingRecord<'a> {
    fn new(dispatcher: &'a Dispatcher) -> Self {
        dispatcher.waiting_records.fetch_add(1, Ordering::SeqCst);
        Self(dispatcher)
    }
}

impl Drop for WaitingRecord<'_> {
    fn drop(&mut self) {
        if self.0.waiting_records.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.signal.notify_one();
        }
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A claim still held by a pass: its message is not recorded yet.
type Held = Arc<Mutex<HashSet<ClaimToken>>>;

impl Dispatcher {
    /// A dispatcher over the given ports, keeping to `rules` (the default window).
    pub fn new(
        queue: Arc<dyn DispatchQueue>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
        rules: Arc<Rules>,
        config: DispatchConfig,
    ) -> Self {
        Self {
            queue,
            mailer,
            clock,
            rules,
            config,
            links: None,
            observer: None,
            stopping: Arc::new(AtomicBool::new(false)),
            signal: Arc::new(Signal::default()),
            waiting_records: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Gives every email the `Reply-To` and unsubscribe headers (a signed reply address, one-click unsubscribe).
    pub fn with_links(mut self, links: Arc<dyn Links>) -> Self {
        self.links = Some(links);
        self
    }

    /// Calls `observer` with every [`Event`] (the server logs and counts them).
    pub fn with_observer(mut self, observer: impl Fn(&Event<'_>) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &DispatchConfig {
        &self.config
    }

    /// Asks this dispatcher and all its clones to stop: a pass in progress lets the emails
    /// in flight finish and hands the rest of its batch back at once, due now and without
    /// counting an attempt, so that another dispatcher (or this one after a restart) takes
    /// them without waiting for the lease to end. [`run`](Self::run) returns after that
    /// pass; later passes claim nothing.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.signal.close();
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Tells one sleeping worker that a message may be due now (or sooner than it thought).
    pub fn wake(&self) {
        self.signal.notify_one();
    }

    /// [`wake`](Self::wake) as a callback, for `Storage::watch_due`.
    pub fn waker(&self) -> DueCallback {
        let signal = Arc::downgrade(&self.signal);
        Arc::new(move || {
            if let Some(signal) = signal.upgrade() {
                signal.notify_one();
            }
        })
    }

    fn observe(&self, event: Event<'_>) {
        if let Some(observer) = &self.observer {
            observer(&event);
        }
    }

    /// When a pass next has work: the earliest due or lease-expiry instant.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn next_wake(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        self.queue.next_due().await
    }

    /// Runs passes until [`stop`](Self::stop): after a pass that claimed something, the next
    /// at once; otherwise it sleeps until the next message is due, at most
    /// [`DispatchConfig::poll_interval`], or until [`wake`](Self::wake). A due message that
    /// a pass could not claim (held back by the hourly cap, or taken by another
    /// dispatcher) makes it sleep the poll interval rather than spin. Failures are reported
    /// to the observer and the loop goes on.
    pub async fn run(&self) {
        while !self.is_stopping() {
            let started = self.clock.now();
            match self.run_once().await {
                Ok(report) if report.claimed > 0 => continue,
                Ok(_) => {}
                Err(e) => self.observe(Event::StorageFailed {
                    message: None,
                    action: "claim due messages",
                    error: &e,
                }),
            }
            let interval = self.config.poll_interval;
            let sleep = match self.next_wake().await {
                Ok(Some(at)) if at <= started => interval,
                Ok(Some(at)) => (at - self.clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(interval),
                Ok(None) => interval,
                Err(e) => {
                    self.observe(Event::StorageFailed {
                        message: None,
                        action: "read the next due instant",
                        error: &e,
                    });
                    interval
                }
            };
            first(self.clock.sleep(sleep), self.signal.notified()).await;
        }
    }

    /// One pass: claims due messages and handles them, up to `concurrency` at once, writing
    /// each result as soon as it is known, renewing the leases it holds meanwhile.
    ///
    /// # Errors
    /// Only when claiming fails; everything else is counted in the report and told to the
    /// observer.
    pub async fn run_once(&self) -> Result<DispatchReport, StorageError> {
        let mut report = DispatchReport::default();
        if self.is_stopping() || self.waiting_records.load(Ordering::SeqCst) > 0 {
            return Ok(report);
        }
        let now = self.clock.now();
        let limit = ClaimLimit {
            batch: self.config.batch_size,
            hourly_cap: self.config.hourly_cap,
        };
        let claimed = self.queue.claim_due(now, self.config.lease, limit).await?;
        report.claimed = claimed.len() as u32;
        if claimed.is_empty() {
            return Ok(report);
        }
        let held: Held = Arc::new(Mutex::new(claimed.iter().map(|c| c.token).collect()));
        let lease_until = Arc::new(Mutex::new(add(now, self.config.lease)));
        let contexts = self.read_contexts(&claimed).await;
        let contexts = &contexts;
        let sends = run_bounded(claimed, self.config.concurrency, |claim| {
            let (held, lease_until) = (held.clone(), lease_until.clone());
            async move {
                let token = claim.token;
                let tally = self.handle_claim(claim, contexts, &lease_until).await;
                lock(&held).remove(&token);
                tally
            }
        });
        let tallies = while_running(sends, self.heartbeat(&held, &lease_until)).await;
        for tally in tallies {
            report.count(tally);
        }
        Ok(report)
    }

    /// Each conversation of the batch, read in one call; `None` when reading failed (every
    /// message of the batch is then handed back), `Some(None)` for an unknown conversation.
    async fn read_contexts(
        &self,
        claimed: &[Claimed],
    ) -> HashMap<ConversationId, Option<Option<ConversationContext>>> {
        let mut ids: Vec<ConversationId> =
            claimed.iter().map(|c| c.message.conversation_id).collect();
        ids.sort_unstable();
        ids.dedup();
        match self.queue.contexts(&ids).await {
            Ok(found) => {
                let mut contexts: HashMap<_, _> = ids.iter().map(|id| (*id, Some(None))).collect();
                for context in found {
                    contexts.insert(context.conversation.id, Some(Some(context)));
                }
                contexts
            }
            Err(e) => {
                self.observe(Event::StorageFailed {
                    message: claimed.first().map(|c| c.message.id),
                    action: "read the conversations",
                    error: &e,
                });
                ids.into_iter().map(|id| (id, None)).collect()
            }
        }
    }

    async fn heartbeat(&self, held: &Held, lease_until: &Mutex<DateTime<Utc>>) {
        loop {
            self.clock.sleep(self.config.heartbeat()).await;
            let tokens: Vec<ClaimToken> = lock(held).iter().copied().collect();
            if tokens.is_empty() {
                continue;
            }
            let until = add(self.clock.now(), self.config.lease);
            match self.queue.renew_leases(&tokens, until).await {
                Ok(_) => *lock(lease_until) = until,
                Err(e) => self.observe(Event::StorageFailed {
                    message: None,
                    action: "renew leases",
                    error: &e,
                }),
            }
        }
    }

    async fn handle_claim(
        &self,
        claim: Claimed,
        contexts: &HashMap<ConversationId, Option<Option<ConversationContext>>>,
        lease_until: &Mutex<DateTime<Utc>>,
    ) -> Tally {
        let half_lease =
            chrono::Duration::from_std(self.config.lease / 2).unwrap_or(chrono::Duration::MAX);
        let lease_short = self.clock.now() + half_lease > *lock(lease_until);
        let context = contexts.get(&claim.message.conversation_id);
        let reason = if self.is_stopping() {
            Some("stopping")
        } else if lease_short {
            Some("lease could not be renewed")
        } else if !matches!(context, Some(Some(_))) {
            Some("conversation could not be read")
        } else {
            None
        };
        if let Some(reason) = reason {
            return self.release(claim, reason, lease_until).await;
        }
        let context = context.and_then(|c| c.as_ref()).and_then(|c| c.as_ref());
        let Claimed { message, token } = claim;
        let outcome = match context {
            None => Outcome::Failed(format!(
                "conversation {} no longer exists",
                message.conversation_id
            )),
            Some(context) => self.deliver(&message, token, context).await,
        };
        let recorded = self.record(token, &message, &outcome, lease_until).await;
        match recorded {
            Some(true) => {
                self.observe(Event::Recorded {
                    message: &message,
                    outcome: &outcome,
                });
                match outcome {
                    Outcome::Sent(_) => Tally::Sent,
                    Outcome::Deferred(_) | Outcome::Held(..) => Tally::Deferred,
                    Outcome::Retry(..) => Tally::Retried,
                    Outcome::Failed(_) => Tally::Failed,
                    Outcome::Suppressed => Tally::Suppressed,
                }
            }
            Some(false) => {
                self.observe(Event::LostClaim {
                    message: &message,
                    outcome: &outcome,
                });
                Tally::LostClaim
            }
            None => Tally::StorageError,
        }
    }

    /// Hands a claimed message back unsent, due again at once, without counting an attempt.
    async fn release(
        &self,
        claim: Claimed,
        reason: &'static str,
        lease_until: &Mutex<DateTime<Utc>>,
    ) -> Tally {
        let Claimed { message, token } = claim;
        let due = message.send_at.unwrap_or(message.created_at);
        let outcome = Outcome::Deferred(due);
        match self.record(token, &message, &outcome, lease_until).await {
            Some(true) => {
                self.observe(Event::Released {
                    message: &message,
                    reason,
                });
                Tally::Released
            }
            Some(false) => {
                self.observe(Event::LostClaim {
                    message: &message,
                    outcome: &outcome,
                });
                Tally::LostClaim
            }
            None => Tally::StorageError,
        }
    }

    /// Writes `outcome` under the claim; transient storage failures are retried with
    /// backoff while the claim holds. `Some(recorded)`, or `None` when it could not be
    /// written (reported).
    async fn record(
        &self,
        token: ClaimToken,
        message: &Message,
        outcome: &Outcome,
        lease_until: &Mutex<DateTime<Utc>>,
    ) -> Option<bool> {
        let action = match outcome {
            Outcome::Sent(_) => "record sent",
            Outcome::Deferred(_) => "reschedule",
            Outcome::Held(..) => "hold",
            Outcome::Retry(..) => "schedule a retry",
            Outcome::Failed(_) => "record failed",
            Outcome::Suppressed => "record suppressed",
        };
        let mut delay = Duration::from_millis(100);
        // Bounded twice: by the claim (renewed by the heartbeat) and by one lease's length
        // from the first failure, so a storage that renews but cannot record is not retried
        // for ever. Except for an email already sent while the disk refuses writes: it
        // refuses every dispatcher's claim too, so none can take this one over, and giving
        // up would have the email sent again once the disk takes writes. That is retried
        // until it is recorded (or the claim turns out taken over), the fault changes, or
        // the dispatcher stops; meanwhile this process claims nothing (`waiting_records`).
        let give_up_at = add(self.clock.now(), self.config.lease);
        let sent = matches!(outcome, Outcome::Sent(_));
        let mut waiting = None;
        loop {
            let result = match outcome {
                Outcome::Sent(at) => self.queue.mark_sent(token, *at).await,
                Outcome::Deferred(at) => self.queue.reschedule(token, *at, None).await,
                Outcome::Held(at, rule) => self.queue.hold(token, *at, Some(*rule)).await,
                Outcome::Retry(at, error) => {
                    self.queue.reschedule(token, *at, Some(error.clone())).await
                }
                Outcome::Failed(error) => self.queue.mark_failed(token, error.clone()).await,
                Outcome::Suppressed => {
                    self.queue
                        .mark_suppressed(token, "the client unsubscribed".to_owned())
                        .await
                }
            };
            let error = match result {
                Ok(recorded) => return Some(recorded),
                Err(e) => e,
            };
            let wait = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            let deadline = (*lock(lease_until)).min(give_up_at);
            let claim_holds = self.clock.now() + wait < deadline;
            let disk_holds = sent && DiskFault::of(&error).is_some() && !self.is_stopping();
            if !error.is_transient() || !(claim_holds || disk_holds) {
                self.observe(Event::StorageFailed {
                    message: Some(message.id),
                    action,
                    error: &error,
                });
                return None;
            }
            if !claim_holds && waiting.is_none() {
                waiting = Some(WaitingRecord::new(self));
            }
            self.observe(Event::StorageRetry {
                message: message.id,
                action,
                error: &error,
            });
            self.clock.sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    async fn deliver(
        &self,
        message: &Message,
        token: ClaimToken,
        context: &ConversationContext,
    ) -> Outcome {
        let now = self.clock.now();
        if context.client.unsubscribed_at.is_some() {
            return Outcome::Suppressed;
        }
        let calendar = context.calendar(self.rules.active_hours);
        let input = context.delivery_input(&calendar, now, message.timing(), &[]);
        // The store's rules first, without the cap; then the cap, counted in the storage.
        let uncapped = DeliveryInput {
            frequency_cap: None,
            ..input
        };
        if let Some(outcome) = held(uncapped.decide(), now) {
            return outcome;
        }
        let mut reserved = false;
        if let Some(cap) = input.frequency_cap.filter(|_| !input.is_reply()) {
            match self.queue.reserve_send(token, now, cap).await {
                Ok(Reservation::Granted) => reserved = true,
                Ok(Reservation::Full(sends)) => {
                    let decision = DeliveryInput {
                        recent_sends: &sends,
                        ..input
                    }
                    .decide();
                    // The storage and the rule count the same sends; should they ever
                    // disagree, the storage's count wins and the message waits a second.
                    return held(decision, now).unwrap_or(Outcome::Held(
                        add(now, Duration::from_secs(1)),
                        WaitingFor::FrequencyCap,
                    ));
                }
                // The claim is gone: recording anything is fenced off and counted as lost.
                Ok(Reservation::Lost) => return Outcome::Held(now, WaitingFor::FrequencyCap),
                Err(e) => {
                    self.observe(Event::StorageFailed {
                        message: Some(message.id),
                        action: "reserve a send under the frequency cap",
                        error: &e,
                    });
                    let due = message.send_at.unwrap_or(message.created_at);
                    return Outcome::Deferred(due);
                }
            }
        }
        // Checked again: the client's name or the discount code may have changed since the
        // message was written, and the client must never get more than the limit.
        let rendered = message
            .payload
            .render_checked(&context.render_values(), &self.rules.validation);
        let body = match rendered {
            Ok(body) => body,
            Err(e) => return Outcome::Failed(format!("cannot render message: {e}")),
        };
        let mut email = compose::email(message, context, body, now);
        if let Some(links) = &self.links {
            email.reply_to = links.reply_to(context);
            email.unsubscribe_url = links.unsubscribe_url(context);
        }
        let error = match self.mailer.send(&email).await {
            Ok(()) => return Outcome::Sent(self.clock.now()),
            Err(e) => e,
        };
        if error.kind == MailErrorKind::Permanent {
            return Outcome::Failed(error.message);
        }
        if reserved && error.kind == MailErrorKind::Ambiguous {
            self.keep_reservation(message, token).await;
        }
        let now = self.clock.now();
        let retry_at = DeliveryInput {
            now: add(now, self.config.backoff(message.attempts)),
            ..uncapped
        }
        .decide()
        .at;
        let due = message.send_at.unwrap_or(message.created_at);
        if retry_at > add(due, self.config.max_message_age) {
            return Outcome::Failed(format!(
                "gave up after {} attempts: not sent within {} of its send time; last error: {}",
                message.attempts,
                human(self.config.max_message_age),
                error.message
            ));
        }
        Outcome::Retry(retry_at, error.message)
    }

    /// The email may have gone: its send counts against the cap whatever is recorded next.
    /// Should the storage keep failing, the next result releases the reservation (the
    /// failure is reported).
    async fn keep_reservation(&self, message: &Message, token: ClaimToken) {
        let mut delay = Duration::from_millis(100);
        for tries_left in (0..3).rev() {
            let error = match self.queue.keep_reservation(token).await {
                Ok(_) => return,
                Err(e) => e,
            };
            if !error.is_transient() || tries_left == 0 {
                self.observe(Event::StorageFailed {
                    message: Some(message.id),
                    action: "keep the reservation of an email that may have gone",
                    error: &error,
                });
                return;
            }
            self.observe(Event::StorageRetry {
                message: message.id,
                action: "keep the reservation of an email that may have gone",
                error: &error,
            });
            self.clock.sleep(delay).await;
            delay *= 2;
        }
    }
}

/// The outcome of a decision that holds the message; `None` when it may go now.
fn held(decision: crate::delivery_policy::Decision, now: DateTime<Utc>) -> Option<Outcome> {
    match decision.waiting_for {
        Some(rule) if decision.at > now => Some(Outcome::Held(decision.at, rule)),
        _ => None,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn add(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| at.checked_add_signed(by))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `24h`, `90m`, `45s`: a duration as settings write it.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs > 0 && secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs > 0 && secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Calendar;
    use crate::chat::{post_chat, PostChat};
    use crate::demo::demo_data;
    use crate::domain::MessageStatus;
    use crate::ids::{MessageId, UserId};
    use crate::ports::prelude::*;
    use crate::ports::{Email, MailError, Mailer};
    use crate::rules::Rules;
    use crate::testing::{ManualClock, MemoryStorage, RecordingMailer};
    use chrono::TimeZone;
    use std::sync::Mutex;

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
        let dispatcher = Dispatcher::new(
            storage.clone(),
            mailer.clone(),
            clock.clone(),
            Arc::new(Rules::default()),
            config,
        );
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
            principal: crate::access::Principal::deployment_token(),
            user_id: Some(UserId(24)),
            payload: payload.to_owned(),
            idempotency_key: None,
            send_at: None,
        };
        post_chat(
            f.storage.as_ref(),
            f.clock.as_ref(),
            &Rules::default(),
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
        assert_eq!(sent[0].to_address.as_str(), "john.carter@example.com");
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
    async fn transient_errors_back_off_by_age_then_fail() {
        let config = DispatchConfig {
            max_message_age: Duration::from_secs(3600),
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
        assert_eq!(stored.send_at, Some(nine_am_chicago()), "sendAt stays");
        assert_eq!(
            stored.next_attempt_at,
            Some(nine_am_chicago() + chrono::Duration::seconds(30))
        );
        // Not due again before the backoff.
        f.clock.advance(chrono::Duration::seconds(29));
        assert_eq!(f.dispatcher.run_once().await.unwrap().claimed, 0);
        // 30 s, 60 s, 120 s, ... capped at 15 min: retried while the next try is within the
        // hour after sendAt.
        let mut attempts = 1;
        loop {
            let due = f.storage.next_due().await.unwrap().unwrap();
            f.clock.set(due);
            let report = f.dispatcher.run_once().await.unwrap();
            attempts += 1;
            if report.failed == 1 {
                break;
            }
            assert_eq!(report.retried, 1);
            assert!(attempts < 20, "never gave up");
        }
        let stored = f.storage.message(id).await.unwrap().unwrap();
        assert_eq!(stored.status, MessageStatus::Failed);
        assert!(f.clock.now() - nine_am_chicago() <= chrono::Duration::hours(1));
        assert!(f.clock.now() - nine_am_chicago() > chrono::Duration::minutes(40));
        let reason = stored.last_error.unwrap();
        assert!(reason.contains("not sent within 1h"), "{reason}");
        assert!(reason.contains("451 try later"), "{reason}");
        assert_eq!(f.mailer.attempts(), attempts);
    }

    #[tokio::test]
    async fn an_outage_of_hours_fails_nothing() {
        let f = fixture(
            RecordingMailer::new_error(MailError::transient("connection refused")),
            DispatchConfig::default(),
        )
        .await;
        let id = post(&f, "hi").await;
        // Three hours of refusals (a retry at most every 15 min), then the server is back.
        while f.clock.now() < nine_am_chicago() + chrono::Duration::hours(3) {
            f.dispatcher.run_once().await.unwrap();
            let due = f.storage.next_due().await.unwrap().unwrap();
            assert!(due - f.clock.now() <= chrono::Duration::minutes(15));
            f.clock.set(due);
        }
        f.mailer.set_error(None);
        assert_eq!(f.dispatcher.run_once().await.unwrap().sent, 1);
        let stored = f.storage.message(id).await.unwrap().unwrap();
        assert_eq!(stored.status, MessageStatus::Sent);
        assert_eq!(stored.send_at, Some(nine_am_chicago()));
    }

    #[tokio::test]
    async fn a_retry_outside_the_window_waits_for_it() {
        let f = fixture(
            RecordingMailer::new_error(MailError::transient("451 try later")),
            DispatchConfig::default(),
        )
        .await;
        // 19:59:45 in Chicago: the retry 30 s later would be after 20:00.
        f.clock
            .set(nine_am_chicago() + chrono::Duration::hours(11) - chrono::Duration::seconds(15));
        let id = post(&f, "hi").await;
        assert_eq!(f.dispatcher.run_once().await.unwrap().retried, 1);
        let stored = f.storage.message(id).await.unwrap().unwrap();
        assert_eq!(
            stored.next_attempt_at,
            Some(nine_am_chicago() + chrono::Duration::days(1))
        );
    }

    #[tokio::test]
    async fn an_unsubscribed_client_is_not_emailed() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let id = post(&f, "hi").await;
        f.storage
            .unsubscribe_client(UserId(27), f.clock.now())
            .await
            .unwrap();
        let report = f.dispatcher.run_once().await.unwrap();
        assert_eq!(report.suppressed, 1);
        assert!(f.mailer.messages().is_empty());
        let stored = f.storage.message(id).await.unwrap().unwrap();
        assert_eq!(stored.status, MessageStatus::Suppressed);
    }

    #[tokio::test]
    async fn a_store_window_changed_while_waiting_is_followed_at_send_time() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let id = post(&f, "hi").await;
        // Store 1 now opens at 10:00: at 09:00 Chicago the message waits another hour.
        let hours: crate::active_hours::ActiveHours = "10:00-20:00".parse().unwrap();
        f.storage
            .set_store_hours(crate::ids::StoreId(1), Some(Calendar::from(hours)))
            .await
            .unwrap();
        assert_eq!(f.dispatcher.run_once().await.unwrap().deferred, 1);
        let stored = f.storage.message(id).await.unwrap().unwrap();
        assert_eq!(
            stored.send_at,
            Some(nine_am_chicago() + chrono::Duration::hours(1))
        );
    }

    #[tokio::test]
    async fn a_cancelled_message_is_never_sent() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let id = post(&f, "hi").await;
        crate::chat::cancel_chat(f.storage.as_ref(), id)
            .await
            .unwrap();
        assert_eq!(f.dispatcher.run_once().await.unwrap().claimed, 0);
        assert!(f.mailer.messages().is_empty());
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

    /// A mail server that takes `secs` seconds of the manual clock per email: it waits for
    /// the test (or the heartbeat's own sleep) to move the clock.
    struct SlowMailer {
        clock: Arc<ManualClock>,
        secs: i64,
        inner: RecordingMailer,
    }

    #[async_trait::async_trait]
    impl Mailer for SlowMailer {
        async fn send(&self, email: &Email) -> Result<(), MailError> {
            self.clock
                .sleep(Duration::from_secs(self.secs as u64))
                .await;
            self.inner.send(email).await
        }
    }

    #[tokio::test]
    async fn leases_are_renewed_while_slow_sends_go_on() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let config = DispatchConfig {
            lease: Duration::from_secs(30),
            concurrency: 1,
            ..Default::default()
        };
        let slow = Arc::new(SlowMailer {
            clock: f.clock.clone(),
            secs: 20,
            inner: RecordingMailer::new_ok(),
        });
        let dispatcher = Dispatcher::new(
            f.storage.clone(),
            slow.clone(),
            f.clock.clone(),
            Arc::new(Rules::default()),
            config,
        );
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(post(&f, "hi").await);
        }
        // Five sends of 20 s each: 100 s, far past the 30 s lease, yet no claim ends: a
        // second dispatcher finds nothing to claim all along.
        let pass = tokio::spawn({
            let dispatcher = dispatcher.clone();
            async move { dispatcher.run_once().await.unwrap() }
        });
        let other = f.dispatcher.clone();
        for _ in 0..120 {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            assert_eq!(other.run_once().await.unwrap().claimed, 0);
            if pass.is_finished() {
                break;
            }
            f.clock.advance(chrono::Duration::seconds(1));
        }
        let report = pass.await.unwrap();
        assert_eq!((report.claimed, report.sent), (5, 5), "{report:?}");
        assert_eq!(
            slow.inner.messages().len(),
            5,
            "each email sent exactly once"
        );
        assert!(f.mailer.messages().is_empty());
    }

    #[tokio::test]
    async fn the_run_loop_sleeps_until_due_and_wakes_on_new_messages() {
        let config = DispatchConfig {
            poll_interval: Duration::from_secs(60),
            ..Default::default()
        };
        let f = fixture(RecordingMailer::new_ok(), config).await;
        // 08:59 in Chicago: the message is due at 09:00.
        f.clock
            .set(nine_am_chicago() - chrono::Duration::minutes(1));
        let id = post(&f, "early").await;
        let worker = tokio::spawn({
            let dispatcher = f.dispatcher.clone();
            async move { dispatcher.run().await }
        });
        while f.clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(f.clock.next_deadline(), Some(nine_am_chicago()));
        f.clock.set(nine_am_chicago());
        while f.mailer.messages().is_empty() {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            f.storage.message(id).await.unwrap().unwrap().status,
            MessageStatus::Sent
        );
        // Asleep for the poll interval; a new message and a wake-up send it at once.
        while f.clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        post(&f, "now").await;
        f.dispatcher.wake();
        while f.mailer.messages().len() < 2 {
            tokio::task::yield_now().await;
        }
        f.dispatcher.stop();
        worker.await.unwrap();
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
            let dispatcher = Dispatcher::new(
                f.storage.clone(),
                mailer.clone(),
                f.clock.clone(),
                Arc::new(Rules::default()),
                config,
            );
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
            // Long enough that the clock jumps of this mail server never shorten it.
            lease: Duration::from_secs(300),
            ..Default::default()
        };
        let mailer = Arc::new(StopDuringSecondSend {
            clock: f.clock.clone(),
            inner: RecordingMailer::new_ok(),
            dispatcher: std::sync::OnceLock::new(),
        });
        let dispatcher = Dispatcher::new(
            f.storage.clone(),
            mailer.clone(),
            f.clock.clone(),
            Arc::new(Rules::default()),
            config,
        );
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

    /// Runs one pass on its own task, moving the manual clock 100 ms at a time until it
    /// ends (the pass sleeps on the clock between storage retries).
    async fn drive_pass(f: &Fixture) -> DispatchReport {
        let pass = tokio::spawn({
            let dispatcher = f.dispatcher.clone();
            async move { dispatcher.run_once().await.unwrap() }
        });
        for _ in 0..10_000 {
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            if pass.is_finished() {
                return pass.await.unwrap();
            }
            f.clock.advance(chrono::Duration::milliseconds(100));
        }
        panic!("the pass never ended");
    }

    #[tokio::test]
    async fn recording_a_send_retries_a_storage_blip_instead_of_sending_twice() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let f = Fixture {
            dispatcher: f.dispatcher.clone().with_observer(move |event| {
                if let Event::StorageRetry { action, .. } = event {
                    seen.lock().unwrap().push(*action);
                }
            }),
            ..f
        };
        let id = post(&f, "hi").await;
        f.storage.fail_next("mark_sent", 3);
        let report = drive_pass(&f).await;
        assert_eq!((report.sent, report.storage_errors), (1, 0), "{report:?}");
        assert_eq!(events.lock().unwrap().as_slice(), ["record sent"; 3]);
        assert_eq!(
            f.storage.message(id).await.unwrap().unwrap().status,
            MessageStatus::Sent
        );
        assert_eq!(f.mailer.messages().len(), 1, "sent once");
        assert_eq!(f.dispatcher.run_once().await.unwrap().claimed, 0);
    }

    #[tokio::test]
    async fn a_record_that_keeps_failing_is_reported_and_left_to_the_lease() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let failures = Arc::new(Mutex::new(Vec::new()));
        let seen = failures.clone();
        let f = Fixture {
            dispatcher: f.dispatcher.clone().with_observer(move |event| {
                if let Event::StorageFailed { action, error, .. } = event {
                    seen.lock()
                        .unwrap()
                        .push(format!("{action}: {}", error.detail()));
                }
            }),
            ..f
        };
        let id = post(&f, "hi").await;
        // Recording fails, and so does every lease renewal: the claim runs out.
        f.storage.fail_next("mark_sent", u32::MAX);
        f.storage.fail_next("renew_leases", u32::MAX);
        let report = drive_pass(&f).await;
        assert_eq!((report.sent, report.storage_errors), (0, 1), "{report:?}");
        let failures = failures.lock().unwrap().clone();
        assert!(
            failures
                .iter()
                .any(|f| f.contains("record sent") && f.contains("injected failure")),
            "{failures:?}"
        );
        assert_eq!(
            f.storage.message(id).await.unwrap().unwrap().status,
            MessageStatus::Sending
        );
    }

    /// Advances the manual clock by `secs` seconds, half a second at a time, letting the
    /// spawned passes run in between.
    async fn run_for(f: &Fixture, secs: u32) {
        for _ in 0..secs * 2 {
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            f.clock.advance(chrono::Duration::milliseconds(500));
        }
    }

    #[tokio::test]
    async fn a_send_recorded_against_a_full_disk_waits_for_it_instead_of_sending_twice() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let id = post(&f, "hi").await;
        // The disk refuses every write for minutes: the record, the lease renewals, and any
        // other dispatcher's claim.
        f.storage.disk_full_next("mark_sent", u32::MAX);
        f.storage.disk_full_next("renew_leases", u32::MAX);
        let pass = tokio::spawn({
            let dispatcher = f.dispatcher.clone();
            async move { dispatcher.run_once().await.unwrap() }
        });
        run_for(&f, 120).await;
        assert!(!pass.is_finished(), "gave up the record");
        let other = Dispatcher::new(
            f.storage.clone(),
            f.mailer.clone(),
            f.clock.clone(),
            Arc::new(Rules::default()),
            DispatchConfig::default(),
        );
        f.storage.disk_full_next("claim_due", 1);
        assert!(other.run_once().await.is_err(), "another process's claim");
        // The disk takes writes again. Another worker of this dispatcher, the lease long
        // over, passes before the record's next retry: it claims nothing.
        f.storage.disk_full_next("mark_sent", 0);
        f.storage.disk_full_next("renew_leases", 0);
        let worker = f.dispatcher.clone().run_once().await.unwrap();
        assert_eq!(f.mailer.messages().len(), 1, "sent twice: {worker:?}");
        assert_eq!(worker.claimed, 0);
        run_for(&f, 5).await;
        assert!(pass.is_finished());
        let report = pass.await.unwrap();
        assert_eq!((report.sent, report.storage_errors), (1, 0), "{report:?}");
        assert_eq!(
            f.storage.message(id).await.unwrap().unwrap().status,
            MessageStatus::Sent
        );
        assert_eq!(other.run_once().await.unwrap().claimed, 0);
        assert_eq!(f.mailer.messages().len(), 1, "sent once");
    }

    #[tokio::test]
    async fn a_send_recorded_against_a_full_disk_gives_up_when_the_dispatcher_stops() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let id = post(&f, "hi").await;
        f.storage.disk_full_next("mark_sent", u32::MAX);
        f.storage.disk_full_next("renew_leases", u32::MAX);
        let pass = tokio::spawn({
            let dispatcher = f.dispatcher.clone();
            async move { dispatcher.run_once().await.unwrap() }
        });
        run_for(&f, 100).await;
        assert!(
            !pass.is_finished(),
            "gave up within 100 s, past its 30 s lease"
        );
        f.dispatcher.stop();
        run_for(&f, 5).await;
        assert!(pass.is_finished(), "a stopping dispatcher still retried");
        let report = pass.await.unwrap();
        assert_eq!((report.sent, report.storage_errors), (0, 1), "{report:?}");
        assert_eq!(
            f.storage.message(id).await.unwrap().unwrap().status,
            MessageStatus::Sending
        );
    }

    #[tokio::test]
    async fn a_claim_whose_conversation_cannot_be_read_is_handed_back_at_once() {
        let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
        let id = post(&f, "hi").await;
        f.storage.fail_next("contexts", 1);
        let report = f.dispatcher.run_once().await.unwrap();
        assert_eq!((report.claimed, report.released), (1, 1), "{report:?}");
        let stored = f.storage.message(id).await.unwrap().unwrap();
        assert_eq!((stored.status, stored.attempts), (MessageStatus::New, 0));
        // Due at once, not at the end of a lease.
        assert_eq!(f.dispatcher.run_once().await.unwrap().sent, 1);
    }

    #[tokio::test]
    async fn an_email_that_may_have_gone_counts_against_the_frequency_cap() {
        for (error, second_goes) in [
            (MailError::ambiguous("connection lost after DATA"), false),
            (MailError::transient("451 try later"), true),
        ] {
            let f = fixture(RecordingMailer::new_ok(), DispatchConfig::default()).await;
            let cap = crate::frequency_cap::FrequencyCap::new(1, "24h").unwrap();
            let changes = crate::domain::StoreChanges {
                max_per_client: Some(Some(cap)),
                ..Default::default()
            };
            f.storage
                .update_store(crate::ids::StoreId(1), changes)
                .await
                .unwrap();
            let first = post(&f, "first").await;
            f.mailer.fail_next(1, error.clone());
            let report = f.dispatcher.run_once().await.unwrap();
            assert_eq!(report.retried, 1, "{report:?}");

            // A second message to the same client before the first is tried again.
            let second = post(&f, "second").await;
            let report = f.dispatcher.run_once().await.unwrap();
            let stored = f.storage.message(second).await.unwrap().unwrap();
            if second_goes {
                assert_eq!(report.sent, 1, "{:?}: {report:?}", error.kind);
                assert_eq!(stored.status, MessageStatus::Sent);
            } else {
                assert_eq!(report.sent, 0, "{:?}: {report:?}", error.kind);
                assert_eq!(
                    (stored.status, stored.waiting_for, stored.send_at),
                    (
                        MessageStatus::New,
                        Some(WaitingFor::FrequencyCap),
                        Some(nine_am_chicago() + chrono::Duration::hours(24))
                    ),
                    "held until a day after the attempt that may have gone"
                );
                // The first is tried again and goes: it never waits for its own attempt.
                f.clock.advance(chrono::Duration::minutes(5));
                assert_eq!(f.dispatcher.run_once().await.unwrap().sent, 1);
                let sent = f.storage.message(first).await.unwrap().unwrap();
                assert_eq!(sent.status, MessageStatus::Sent);
            }
        }
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
