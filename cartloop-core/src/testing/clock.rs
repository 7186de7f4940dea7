use crate::ports::Clock;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Timelike, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// A clock that stands still until told otherwise.
///
/// [`Clock::sleep`] on it waits until the clock is moved ([`set`](Self::set),
/// [`advance`](Self::advance)) past the sleeper's deadline, so a test drives a background
/// loop step by step and never waits for real ([`sleepers`](Self::sleepers) and
/// [`next_deadline`](Self::next_deadline) tell what the loop waits for).
///
/// Like every [`Clock`], it reads to the millisecond: sub-millisecond parts of the instants
/// it is given are dropped.
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    now: DateTime<Utc>,
    next_id: u64,
    /// (id, deadline, waker) of each pending sleep.
    sleepers: Vec<(u64, DateTime<Utc>, Waker)>,
}

/// `at` without its sub-millisecond part.
fn to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = at.nanosecond();
    at.with_nanosecond(nanos - nanos % 1_000_000).unwrap_or(at)
}

impl ManualClock {
    /// A clock reading `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            state: Mutex::new(State {
                now: to_millis(now),
                next_id: 0,
                sleepers: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the time, waking the sleepers whose deadline it reaches.
    pub fn set(&self, now: DateTime<Utc>) {
        let woken: Vec<Waker> = {
            let now = to_millis(now);
            let mut state = self.lock();
            state.now = now;
            let (due, waiting) = std::mem::take(&mut state.sleepers)
                .into_iter()
                .partition(|(_, deadline, _)| *deadline <= now);
            state.sleepers = waiting;
            due.into_iter().map(|(_, _, waker)| waker).collect()
        };
        for waker in woken {
            waker.wake();
        }
    }

    /// Moves the time by `by`.
    pub fn advance(&self, by: Duration) {
        let now = self.now() + by;
        self.set(now);
    }

    /// How many sleeps are waiting for the clock to move.
    pub fn sleepers(&self) -> usize {
        self.lock().sleepers.len()
    }

    /// How many sleeps wait for a deadline at most `by` from now: with `by` the dispatch
    /// interval, the idle dispatcher workers, and not the heartbeats of passes still
    /// sending (a third of a lease away).
    pub fn sleepers_within(&self, by: Duration) -> usize {
        let state = self.lock();
        let until = state.now + by;
        state
            .sleepers
            .iter()
            .filter(|(_, d, _)| *d <= until)
            .count()
    }

    /// The earliest deadline among the waiting sleeps.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.lock().sleepers.iter().map(|(_, d, _)| *d).min()
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    async fn sleep(&self, duration: std::time::Duration) {
        let by = Duration::from_std(duration).unwrap_or(Duration::MAX);
        let deadline = self
            .now()
            .checked_add_signed(by)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Sleep {
            clock: self,
            deadline,
            id: None,
        }
        .await;
    }
}

struct Sleep<'a> {
    clock: &'a ManualClock,
    deadline: DateTime<Utc>,
    id: Option<u64>,
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.clock.lock();
        if state.now >= self.deadline {
            return Poll::Ready(());
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                state.next_id += 1;
                state.next_id
            }
        };
        let deadline = self.deadline;
        state.sleepers.retain(|(i, _, _)| *i != id);
        state.sleepers.push((id, deadline, cx.waker().clone()));
        drop(state);
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for Sleep<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.clock.lock().sleepers.retain(|(i, _, _)| *i != id);
        }
    }
}
