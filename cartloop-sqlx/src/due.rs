//! [`DueWatch`]: who is told when a message may have become due, and the dialect's
//! background tasks that tell (and hear from) other processes.

use cartloop_core::ports::DueCallback;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};

/// Who is told when a message becomes due, and the background tasks that tell other
/// processes (on PostgreSQL). The tasks hold it weakly and are stopped when the last clone
/// of the storage is dropped.
#[derive(Default)]
pub struct DueWatch {
    callbacks: Mutex<Vec<DueCallback>>,
    /// Set when a committed write made a message due and other processes are still to be
    /// told; taken by the dialect's announcing task.
    #[cfg(feature = "postgres")]
    pub(crate) unannounced: Arc<tokio::sync::Notify>,
    tasks: Mutex<HashMap<&'static str, tokio::task::AbortHandle>>,
}

impl DueWatch {
    /// Calls every callback. They are copied out first, so a callback may call the storage.
    pub(crate) fn wake(&self) {
        let callbacks = self
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for on_due in callbacks {
            on_due();
        }
    }

    pub(crate) fn add(&self, on_due: DueCallback) {
        self.callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(on_due);
    }

    /// Starts the background task `name` unless it runs; `spawn` gets a weak handle, so the
    /// task does not keep the storage alive.
    pub(crate) fn start_task(
        self: &Arc<Self>,
        name: &'static str,
        spawn: impl FnOnce(std::sync::Weak<Self>) -> tokio::task::AbortHandle,
    ) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if tasks.get(name).is_none_or(|task| task.is_finished()) {
            tasks.insert(name, spawn(Arc::downgrade(self)));
        }
    }
}

impl Drop for DueWatch {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner);
        for task in tasks.values() {
            task.abort();
        }
    }
}
