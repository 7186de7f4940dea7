use crate::ports::Clock;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Timelike, Utc};
use std::sync::Mutex;

/// A clock that stands still until told otherwise.
///
/// [`sleep`](Clock::sleep) does not wait: it moves the clock forward by the duration and
/// yields to the executor once, so a loop that sleeps runs at full speed in a test while
/// every instant it reads is the one it would read in production. The durations slept are
/// kept ([`sleeps`](Self::sleeps)), so a test can check how long a loop meant to wait.
///
/// Like every [`Clock`], it reads to the millisecond: sub-millisecond parts of the instants
/// it is given are dropped.
///
/// ```
/// use cartloop_core::ports::Clock;
/// use cartloop_core::testing::ManualClock;
/// use chrono::{TimeZone, Utc};
/// use std::time::Duration;
///
/// let start = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
/// let clock = ManualClock::new(start);
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// clock.sleep(Duration::from_secs(90)).await;
/// # });
/// assert_eq!(clock.now(), start + chrono::Duration::seconds(90));
/// assert_eq!(clock.sleeps(), vec![Duration::from_secs(90)]);
/// ```
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    now: DateTime<Utc>,
    sleeps: Vec<std::time::Duration>,
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
                sleeps: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        self.lock().now = to_millis(now);
    }

    /// Moves the time by `by`.
    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        state.now = to_millis(state.now + by);
    }

    /// Every duration passed to [`sleep`](Clock::sleep) so far, in order.
    pub fn sleeps(&self) -> Vec<std::time::Duration> {
        self.lock().sleeps.clone()
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    async fn sleep(&self, duration: std::time::Duration) {
        {
            let mut state = self.lock();
            let by = Duration::from_std(duration).unwrap_or(Duration::MAX);
            state.now = to_millis(
                state
                    .now
                    .checked_add_signed(by)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            );
            state.sleeps.push(duration);
        }
        super::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::sync::Arc;
    use std::time::Duration as StdDuration;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
    }

    #[tokio::test]
    async fn sleep_advances_the_clock_without_waiting() {
        let clock = ManualClock::new(start());
        let real = std::time::Instant::now();
        for _ in 0..1000 {
            clock.sleep(StdDuration::from_secs(3600)).await;
        }
        assert!(real.elapsed() < StdDuration::from_secs(5));
        assert_eq!(clock.now(), start() + Duration::hours(1000));
        assert_eq!(clock.sleeps().len(), 1000);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sleep_lets_other_tasks_run() {
        let clock = Arc::new(ManualClock::new(start()));
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        let other =
            tokio::spawn(async move { flag.store(true, std::sync::atomic::Ordering::SeqCst) });
        // On a single thread the spawned task runs only if this one yields.
        clock.sleep(StdDuration::ZERO).await;
        assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
        other.await.unwrap();
    }

    #[test]
    fn reads_to_the_millisecond() {
        let clock = ManualClock::new(start() + Duration::nanoseconds(1_234_567));
        assert_eq!(clock.now(), start() + Duration::milliseconds(1));
        clock.advance(Duration::microseconds(2_500));
        assert_eq!(clock.now(), start() + Duration::milliseconds(3));
    }

    #[tokio::test]
    async fn an_endless_sleep_saturates() {
        let clock = ManualClock::new(start());
        clock.sleep(StdDuration::MAX).await;
        assert!(clock.now() > start() + Duration::days(1_000_000));
    }
}
