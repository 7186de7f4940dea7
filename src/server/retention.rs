//! The event log's retention (SPEC §10, `EVENT_RETENTION`): events older than it are
//! pruned at start and every hour while the dispatcher runs.

use cartloop_core::ports::{Clock, Storage};
use std::sync::Arc;
use std::time::Duration;

/// How long events are kept when the deployment does not say.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often the log is pruned.
const EVERY: Duration = Duration::from_secs(3600);

/// Prunes the events older than `retention` now and every hour, until dropped. A failure
/// is logged and tried again at the next turn: the log only grows meanwhile.
pub(super) async fn prune_events(
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    retention: Duration,
) {
    let Ok(retention) = chrono::Duration::from_std(retention) else {
        return;
    };
    loop {
        let before = clock.now() - retention;
        match storage.prune_events(before).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, %before, "event log pruned"),
            Err(e) => tracing::warn!(error = %e.detail(), "event log pruning failed"),
        }
        tokio::time::sleep(EVERY).await;
    }
}
