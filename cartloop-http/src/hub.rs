//! [`Hub`]: one reader of the event log per server, fanning new events out to every open
//! stream (SPEC §10 "Live stream").
//!
//! The reader starts with the first subscriber. It remembers the last id it read, and reads
//! the log after it ([`EventLog::events_after`](cartloop_core::ports::EventLog::events_after), in pages) whenever the storage says events
//! may have been written ([`EventLog::watch_events`](cartloop_core::ports::EventLog::watch_events): PostgreSQL's `LISTEN cartloop_events`
//! across servers, the storage's own writes on SQLite, and the sqlx storage's poll of the
//! log head every 200 ms), and at the latest every [`POLL`]. What it reads goes to the
//! subscribers through one bounded `tokio::sync::broadcast` channel: one query per batch
//! of events for the whole server, never one per subscriber.
//!
//! A subscriber that falls [`HubSettings::capacity`] events behind loses its place in the
//! channel (`Lagged`); the stream then ends with the last id it sent, and the client
//! resumes from the log. [`Hub::close`] ends every stream (the server is stopping).

use cartloop_core::event::{Event, EventId};
use cartloop_core::ports::{EventFilter, Storage};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, watch, Notify, OnceCell};

/// Longest the reader waits for a hint before it reads the log anyway.
pub const POLL: Duration = Duration::from_secs(1);
/// Events the reader asks the log for at once.
const PAGE: u32 = 500;
/// Events a subscriber may fall behind by default before it is cut off.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// The keep-alive comment's interval by default (SPEC §10: every 15 s).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How the hub and its streams behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubSettings {
    /// Events a subscriber may fall behind before its stream is cut off (the broadcast
    /// channel's size; at least 1).
    pub capacity: usize,
    /// How often an idle stream gets a keep-alive comment.
    pub keep_alive: Duration,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            keep_alive: DEFAULT_KEEP_ALIVE,
        }
    }
}

/// The server's one reader of the event log and its subscribers. Cheap to clone: clones
/// share the reader.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    settings: HubSettings,
    sender: broadcast::Sender<Arc<Event>>,
    /// The last id the reader has sent (set when it starts).
    head: AtomicI64,
    started: OnceCell<()>,
    wake: Arc<Notify>,
    closed: watch::Sender<bool>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("settings", &self.inner.settings)
            .field("subscribers", &self.inner.sender.receiver_count())
            .finish_non_exhaustive()
    }
}

/// One subscriber's place in the hub.
#[derive(Debug)]
pub struct Subscription {
    /// The events the reader reads from now on.
    pub events: broadcast::Receiver<Arc<Event>>,
    /// The last id the reader had sent when this subscription began: every later event
    /// comes through [`events`](Self::events).
    pub head: EventId,
    /// Turns true when the hub is closed.
    pub closed: watch::Receiver<bool>,
}

impl Hub {
    /// A hub over `storage`'s event log; its reader starts with the first subscriber.
    pub fn new(storage: Arc<dyn Storage>, settings: HubSettings) -> Self {
        let settings = HubSettings {
            capacity: settings.capacity.max(1),
            ..settings
        };
        let (sender, _) = broadcast::channel(settings.capacity);
        Self {
            inner: Arc::new(Inner {
                storage,
                settings,
                sender,
                head: AtomicI64::new(0),
                started: OnceCell::new(),
                wake: Arc::new(Notify::new()),
                closed: watch::Sender::new(false),
            }),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> HubSettings {
        self.inner.settings
    }

    /// The storage it reads.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// Subscribes to the events written from now on, starting the reader if it is not
    /// running yet.
    ///
    /// # Errors
    /// The storage's, when the reader cannot start (the log head cannot be read).
    pub async fn subscribe(&self) -> Result<Subscription, cartloop_core::ports::StorageError> {
        self.inner.started.get_or_try_init(|| self.start()).await?;
        let events = self.inner.sender.subscribe();
        Ok(Subscription {
            events,
            head: EventId(self.inner.head.load(Ordering::Acquire)),
            closed: self.inner.closed.subscribe(),
        })
    }

    /// Ends every stream and the reader: the server is stopping.
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
        self.inner.wake.notify_one();
    }

    async fn start(&self) -> Result<(), cartloop_core::ports::StorageError> {
        let inner = &self.inner;
        let wake = inner.wake.clone();
        inner
            .storage
            .watch_events(Arc::new(move || wake.notify_one()))
            .await?;
        let head = inner.storage.last_event_id().await?;
        inner.head.store(head.0, Ordering::Release);
        tokio::spawn(read(Arc::downgrade(inner), head));
        Ok(())
    }
}

/// The reader: follows the log from `head` while the hub is alive and open.
async fn read(hub: Weak<Inner>, mut head: EventId) {
    let mut closed = match hub.upgrade() {
        Some(inner) => inner.closed.subscribe(),
        None => return,
    };
    loop {
        let Some(inner) = hub.upgrade() else { return };
        if *closed.borrow() {
            return;
        }
        match inner
            .storage
            .events_after(head, &EventFilter::default(), PAGE)
            .await
        {
            Ok(events) => {
                let full = events.len() == PAGE as usize;
                for event in events {
                    head = event.id;
                    // No subscriber is not an error: the event is simply not wanted here.
                    let _ = inner.sender.send(Arc::new(event));
                }
                inner.head.store(head.0, Ordering::Release);
                if full {
                    continue;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the event stream's reader could not read the log")
            }
        }
        let wake = inner.wake.clone();
        drop(inner);
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            _ = closed.changed() => return,
        }
    }
}

/// Events read from the log at once while catching up.
const BACKLOG_PAGE: u32 = 500;

/// Why a [`Follower`] stopped early.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// It fell more than [`HubSettings::capacity`] events behind; resume after `last`.
    #[error("fell too far behind the event log; resume after {last}")]
    Lagged {
        /// The last event it gave.
        last: EventId,
    },
    /// The log could not be read; resume after `last`.
    #[error("the event log could not be read ({source}); resume after {last}")]
    Storage {
        /// The last event it gave.
        last: EventId,
        /// The storage's error.
        #[source]
        source: cartloop_core::ports::StorageError,
    },
}

/// Every event after an id that passes a filter: first those kept in the log (read in
/// pages), then the live ones from the hub, none missed and none twice. It subscribes to
/// the hub before it reads the log and skips live events at or below the last one it read
/// there, so an event written meanwhile comes once.
pub struct Follower {
    storage: Arc<dyn Storage>,
    filter: EventFilter,
    subscription: Subscription,
    backlog: std::collections::VecDeque<Event>,
    after: EventId,
    caught_up: bool,
    last: EventId,
    done: bool,
}

impl Hub {
    /// A [`Follower`] of the events after `after` (`None`: from now on) that pass `filter`.
    ///
    /// # Errors
    /// The storage's, when the reader cannot start.
    pub async fn follow(
        &self,
        after: Option<EventId>,
        filter: EventFilter,
    ) -> Result<Follower, cartloop_core::ports::StorageError> {
        let subscription = self.subscribe().await?;
        let after = after.unwrap_or(subscription.head);
        Ok(Follower {
            storage: self.inner.storage.clone(),
            filter,
            subscription,
            backlog: Default::default(),
            after,
            caught_up: false,
            last: after,
            done: false,
        })
    }
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("filter", &self.filter)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// The last event id it gave (where it started, before the first).
    pub fn last(&self) -> EventId {
        self.last
    }

    /// The next event; `None` once the hub is closed (or after an error).
    pub async fn next(&mut self) -> Option<Result<Event, FollowError>> {
        if self.done {
            return None;
        }
        while !self.caught_up {
            if let Some(event) = self.backlog.pop_front() {
                self.last = event.id;
                return Some(Ok(event));
            }
            match self
                .storage
                .events_after(self.after, &self.filter, BACKLOG_PAGE)
                .await
            {
                Ok(page) if page.is_empty() => self.caught_up = true,
                Ok(page) => {
                    self.after = page.last().map_or(self.after, |e| e.id);
                    self.backlog.extend(page);
                }
                Err(source) => {
                    self.done = true;
                    return Some(Err(FollowError::Storage {
                        last: self.last,
                        source,
                    }));
                }
            }
        }
        loop {
            let received = tokio::select! {
                received = self.subscription.events.recv() => received,
                _ = self.subscription.closed.wait_for(|closed| *closed) => return None,
            };
            match received {
                Ok(event) if event.id <= self.after || !self.filter.admits(&event) => continue,
                Ok(event) => {
                    self.last = event.id;
                    return Some(Ok(Event::clone(&event)));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.done = true;
                    return Some(Err(FollowError::Lagged { last: self.last }));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// As a `Stream`.
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Event, FollowError>> + Send + 'static {
        futures_util::stream::unfold(self, |mut follower| async move {
            let next = follower.next().await?;
            Some((next, follower))
        })
    }
}

impl Hub {
    /// The events after `after` (`None`: from now on) that pass `filter`, as a `Stream`
    /// that subscribes when first polled; it ends when the hub is closed, or after an
    /// error.
    pub fn events(
        &self,
        after: Option<EventId>,
        filter: EventFilter,
    ) -> impl futures_util::Stream<Item = Result<Event, FollowError>> + Send + 'static {
        enum State {
            Start(Hub, Option<EventId>, EventFilter),
            Following(Box<Follower>),
        }
        let start = State::Start(self.clone(), after, filter);
        futures_util::stream::unfold(start, |state| async move {
            let mut follower = match state {
                State::Following(follower) => follower,
                State::Start(hub, after, filter) => match hub.follow(after, filter).await {
                    Ok(follower) => Box::new(follower),
                    Err(source) => {
                        let last = after.unwrap_or_default();
                        let error = FollowError::Storage { last, source };
                        let ended = Box::new(Follower::ended(&hub, last));
                        return Some((Err(error), State::Following(ended)));
                    }
                },
            };
            let next = follower.next().await?;
            Some((next, State::Following(follower)))
        })
    }
}

impl Follower {
    /// A follower that gives nothing more (its start failed).
    fn ended(hub: &Hub, last: EventId) -> Self {
        Self {
            storage: hub.inner.storage.clone(),
            filter: EventFilter::default(),
            subscription: Subscription {
                events: hub.inner.sender.subscribe(),
                head: last,
                closed: hub.inner.closed.subscribe(),
            },
            backlog: Default::default(),
            after: last,
            caught_up: true,
            last,
            done: true,
        }
    }
}
