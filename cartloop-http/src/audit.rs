//! The audit log: what the authentication layer (`auth`) records of every request
//! that changed something or was refused, written in the background in batches
//! ([`AuditSink`]). `GET /audit/` reads it (`accounts`).
//!
//! An entry holds who (the token, a key, an operator), what (`POST /chat/`), to what (the
//! kind and id of the thing, from the path or from the handler), in which store, and the
//! status answered. Never a password, key, session id or message text: bodies are not
//! looked at.
//!
//! Entries are written by one task, many per transaction, so recording costs a request a
//! channel send, not a database write. A reader of the log first waits for what was
//! recorded before it ([`AuditSink::flush`]). What a crash can cost: the entries of the
//! last moments not yet written (at most one batch, milliseconds of traffic). A storage
//! that refuses the batch is retried three times, then the batch is counted as lost and
//! logged with its cause.

use axum::http::Method;
use cartloop_core::ids::StoreId;
use cartloop_core::ports::{Actor, Clock, NewAuditEntry, Storage};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long entries are kept when the deployment does not say (`AUDIT_RETENTION`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// Entries waiting to be written at most; beyond, entries are counted as lost.
const QUEUE: usize = 65_536;
/// Entries per write at most.
const BATCH: usize = 512;
/// How often old entries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Set on a response by a handler that knows better than the path what it acted on: the
/// thing it created, or the store of what it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditTarget {
    /// E.g. `conversation`, `api_key`.
    pub kind: &'static str,
    /// Its id.
    pub id: String,
    /// Its store.
    pub store: Option<StoreId>,
}

impl AuditTarget {
    /// `kind` `id` of `store`.
    pub fn new(kind: &'static str, id: impl ToString, store: Option<StoreId>) -> Self {
        Self {
            kind,
            id: id.to_string(),
            store,
        }
    }
}

/// One request as the audit log sees it.
pub(crate) struct Outcome<'a> {
    /// Who, and its store; `None` for a request refused before anyone was known.
    pub(crate) caller: Option<(&'a Actor, Option<StoreId>)>,
    pub(crate) method: &'a Method,
    pub(crate) route: Option<&'static str>,
    pub(crate) path: &'a str,
    pub(crate) status: u16,
    pub(crate) target: Option<&'a AuditTarget>,
}

enum Message {
    Entry(Box<NewAuditEntry>),
    Flush(oneshot::Sender<()>),
}

/// Records audit entries in the background. Cloning shares the writer.
#[derive(Clone)]
pub struct AuditSink {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    retention: Duration,
    sender: OnceLock<mpsc::Sender<Message>>,
    lost: AtomicU64,
    failed_writes: AtomicU64,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink")
            .field("retention", &self.inner.retention)
            .field("lost", &self.lost())
            .finish_non_exhaustive()
    }
}

impl AuditSink {
    /// A sink writing to `storage`, keeping entries `retention` long. Its task starts with
    /// the first entry (on the runtime of the request that records it).
    pub fn new(storage: Arc<dyn Storage>, clock: Arc<dyn Clock>, retention: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                storage,
                clock,
                retention,
                sender: OnceLock::new(),
                lost: AtomicU64::new(0),
                failed_writes: AtomicU64::new(0),
            }),
        }
    }

    /// Entries given up on: the queue was full, or the storage refused them four times.
    pub fn lost(&self) -> u64 {
        self.inner.lost.load(Ordering::Relaxed)
    }

    /// Batch writes the storage refused (each retried, up to three times).
    pub fn failed_writes(&self) -> u64 {
        self.inner.failed_writes.load(Ordering::Relaxed)
    }

    fn sender(&self) -> &mpsc::Sender<Message> {
        self.inner.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE);
            tokio::spawn(write_loop(self.inner.clone(), receiver));
            sender
        })
    }

    /// Queues `entry`.
    pub fn push(&self, entry: NewAuditEntry) {
        if self
            .sender()
            .try_send(Message::Entry(Box::new(entry)))
            .is_err()
        {
            let lost = self.inner.lost.fetch_add(1, Ordering::Relaxed) + 1;
            if lost.is_power_of_two() {
                tracing::error!(lost, "audit log queue full: entries lost");
            }
        }
    }

    /// Waits until everything queued before this call is written (or given up on).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.sender().send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// Records `outcome` if it is a change that succeeded or a refusal.
    pub(crate) fn record(&self, outcome: Outcome<'_>) {
        let refused = matches!(outcome.status, 401 | 403);
        let changed = !matches!(
            *outcome.method,
            Method::GET | Method::HEAD | Method::OPTIONS
        ) && (200..300).contains(&outcome.status)
            && outcome.route != Some("/chat/preview/");
        if !(refused || changed) {
            return;
        }
        let route = outcome.route.unwrap_or("(unknown route)");
        let (target_kind, target_id, target_store) = match outcome.target {
            Some(target) => (
                Some(target.kind.to_owned()),
                Some(target.id.clone()),
                target.store,
            ),
            None => match target_of(outcome.route, outcome.path) {
                Some((kind, id)) => (Some(kind), Some(id), None),
                None => (None, None, None),
            },
        };
        let store_id = target_store.or_else(|| outcome.caller.and_then(|(_, store)| store));
        self.push(NewAuditEntry {
            at: self.inner.clock.now(),
            actor: outcome.caller.map(|(actor, _)| actor.clone()),
            action: format!("{} {route}", outcome.method),
            target_kind,
            target_id,
            store_id,
            status: outcome.status,
        });
    }
}

/// The kind and id of what a path names: the last `{...}` of its route, e.g.
/// `/conversation/{id}/` at `/conversation/7/` is `conversation` `7`.
fn target_of(route: Option<&str>, path: &str) -> Option<(String, String)> {
    let route = route?;
    let template: Vec<_> = route.trim_matches('/').split('/').collect();
    let actual: Vec<_> = path.trim_matches('/').split('/').collect();
    let suffix = actual.len().checked_sub(template.len())?;
    let at = template.iter().rposition(|s| s.starts_with('{'))?;
    if at == 0 {
        return None;
    }
    let kind = template[at - 1].replace('-', "_");
    let id = actual[suffix + at];
    // A path segment is at most what the route matched; ids are short.
    let id: String = id.chars().take(64).collect();
    (kind != "unsubscribe").then_some((kind, id))
}

async fn write_loop(inner: Arc<Inner>, mut receiver: mpsc::Receiver<Message>) {
    let mut last_prune: Option<std::time::Instant> = None;
    while let Some(first) = receiver.recv().await {
        let mut entries = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Entry(entry) => entries.push(*entry),
                Message::Flush(done) => flushes.push(done),
            }
            if entries.len() < BATCH {
                next = receiver.try_recv().ok();
            }
        }
        if !entries.is_empty() {
            write(&inner, entries).await;
        }
        for done in flushes {
            let _ = done.send(());
        }
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(std::time::Instant::now());
            prune(&inner).await;
        }
    }
}

async fn write(inner: &Inner, entries: Vec<NewAuditEntry>) {
    let count = entries.len() as u64;
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=4 {
        match inner.storage.append_audit(entries.clone()).await {
            Ok(()) => return,
            Err(e) => {
                inner.failed_writes.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(attempt, entries = count, error = %e.detail(), "audit log write failed");
                if attempt < 4 {
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
            }
        }
    }
    inner.lost.fetch_add(count, Ordering::Relaxed);
    tracing::error!(
        entries = count,
        "audit log entries lost: the storage refused them four times"
    );
}

async fn prune(inner: &Inner) {
    let Ok(retention) = chrono::Duration::from_std(inner.retention) else {
        return;
    };
    let before = inner.clock.now() - retention;
    match inner.storage.prune_audit(before).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, %before, "audit log pruned"),
        Err(e) => tracing::warn!(error = %e.detail(), "audit log pruning failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_come_from_the_last_path_parameter() {
        let t = |route, path| target_of(Some(route), path);
        assert_eq!(
            t("/conversation/{id}/", "/conversation/7/"),
            Some(("conversation".into(), "7".into()))
        );
        assert_eq!(
            t("/api-key/{id}/", "/api/api-key/3"),
            Some(("api_key".into(), "3".into()))
        );
        assert_eq!(
            t("/chat/{id}/retry/", "/chat/12/retry/"),
            Some(("chat".into(), "12".into()))
        );
        assert_eq!(t("/chat/", "/chat/"), None);
        assert_eq!(
            t("/unsubscribe/{token}", "/unsubscribe/secret"),
            None,
            "never a token"
        );
        assert_eq!(target_of(None, "/x/1/"), None);
    }
}
