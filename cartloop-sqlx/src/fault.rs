//! [`FaultWatch`]: whether the database can write to its disk, as the storage's calls last
//! found it, for `ping` (and so `/healthz`), and the log lines about it.
//!
//! A full disk refuses every write, so it would otherwise log one line per request and per
//! dispatcher pass. The watch logs the first fault, then at most one line a minute while it
//! lasts (with how many calls were refused meanwhile), and one when a write succeeds again.

use cartloop_core::disk_fault::{DiskFault, DiskFaultKind};
use cartloop_core::ports::StorageError;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The longest between two log lines about a fault that lasts.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// See the [module docs](self).
#[derive(Default)]
pub(crate) struct FaultWatch {
    /// Set while `fault` is `Some`: successful writes, the common case, look at this only.
    degraded: AtomicBool,
    fault: Mutex<Option<Fault>>,
}

struct Fault {
    kind: DiskFaultKind,
    since: DateTime<Utc>,
    started: Instant,
    /// The database's message of the latest fault.
    cause: String,
    refused: u64,
    logged_at: Instant,
    refused_since_log: u64,
}

impl FaultWatch {
    /// Notes the result of a storage call: a disk fault marks the storage degraded.
    pub(crate) fn note(&self, error: &StorageError) {
        if let Some(fault) = DiskFault::of(error) {
            let cause =
                std::error::Error::source(fault).map_or_else(String::new, |c| c.to_string());
            self.fault(fault.kind(), cause);
        }
    }

    /// Notes a sqlx error, as [`note`](Self::note).
    pub(crate) fn note_sqlx(&self, error: &sqlx::Error) {
        if let Some(kind) = crate::error::disk_fault(error) {
            self.fault(kind, error.to_string());
        }
    }

    fn fault(&self, kind: DiskFaultKind, cause: String) {
        let now = Instant::now();
        let mut state = self.fault.lock().unwrap_or_else(PoisonError::into_inner);
        match state.as_mut() {
            None => {
                tracing::error!(
                    fault = ?kind,
                    %cause,
                    "the database cannot write to its disk (full or failing): writes are refused \
                     (503 storage_full) until it can again; reads go on"
                );
                *state = Some(Fault {
                    kind,
                    since: Utc::now(),
                    started: now,
                    cause,
                    refused: 1,
                    logged_at: now,
                    refused_since_log: 0,
                });
                self.degraded.store(true, Ordering::Release);
            }
            Some(fault) => {
                fault.kind = kind;
                fault.cause = cause;
                fault.refused += 1;
                fault.refused_since_log += 1;
                if now.duration_since(fault.logged_at) >= LOG_EVERY {
                    tracing::error!(
                        fault = ?kind,
                        cause = %fault.cause,
                        since = %fault.since,
                        refused = fault.refused_since_log,
                        "the database still cannot write to its disk"
                    );
                    fault.logged_at = now;
                    fault.refused_since_log = 0;
                }
            }
        }
    }

    /// A write stored something: the disk takes writes again.
    pub(crate) fn stored(&self) {
        if !self.degraded.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.fault.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(fault) = state.take() {
            self.degraded.store(false, Ordering::Release);
            tracing::info!(
                after_secs = fault.started.elapsed().as_secs(),
                refused = fault.refused,
                "the database writes to its disk again"
            );
        }
    }

    /// The fault, as `ping` reports it, while the storage is degraded.
    pub(crate) fn degraded(&self) -> Option<StorageError> {
        if !self.degraded.load(Ordering::Acquire) {
            return None;
        }
        let state = self.fault.lock().unwrap_or_else(PoisonError::into_inner);
        state.as_ref().map(|fault| {
            DiskFault::new(
                fault.kind,
                format!(
                    "writes refused since {} ({} so far): {}",
                    fault
                        .since
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    fault.refused,
                    fault.cause
                ),
            )
            .into_error()
        })
    }
}
