//! The hourly cap: at most N emails in any rolling hour, counted over every dispatcher that
//! shares the data. A claim may take what is left of the cap once the emails sent in the last
//! hour and those in flight (claimed, about to be sent) are counted.

/// How many messages one [`DispatchQueue::claim_due`](crate::ports::DispatchQueue::claim_due) may take.
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
