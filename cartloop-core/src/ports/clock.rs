//! [`Clock`]: the current instant, and waiting for a later one.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The current instant, and waiting for a later one.
///
/// Every time rule and every background loop reads time through this port, so tests run at
/// fixed instants and never sleep for real (`testing::ManualClock`). The server's clock is
/// `cartloop::server::SystemClock` (the system time and Tokio's timer).
#[async_trait]
pub trait Clock: Send + Sync {
    /// Now, in UTC, to the millisecond (so that an instant reads the same in the API, in
    /// every storage and in logs).
    fn now(&self) -> DateTime<Utc>;

    /// Resolves once `duration` has passed on this clock.
    async fn sleep(&self, duration: Duration);
}
