//! The runtime's [`Clock`]: the system time and Tokio's timer. It lives with the runtime,
//! not in an adapter: it is the one clock the API and the dispatcher share in production.

use async_trait::async_trait;
use cartloop_core::ports::Clock;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use std::time::Duration;

/// The system clock, to the millisecond, sleeping on Tokio's timer (so `sleep` needs a
/// Tokio runtime).
///
/// ```
/// use cartloop_core::ports::Clock;
/// use cartloop::server::SystemClock;
/// let now = SystemClock.now();
/// assert_eq!(now.timestamp_subsec_nanos() % 1_000_000, 0);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        // Milliseconds, as the port asks: every storage keeps instants to the millisecond.
        now.duration_trunc(TimeDelta::milliseconds(1))
            .unwrap_or(now)
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sleeps_on_tokios_timer() {
        let start = tokio::time::Instant::now();
        SystemClock.sleep(Duration::from_secs(60)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }
}
