//! The audit log: what [`authenticate`](crate::auth::authenticate) records of every request
//! that changed something or was refused, written in the background in batches
//! ([`AuditSink`]), and `GET /audit/`.
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

use crate::api::rfc3339;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{self, parse_id, QueryMap};
use crate::AppState;
use axum::extract::State;
use axum::http::Method;
use axum::Json;
use cartloop_core::access::{self, Listing};
use cartloop_core::ids::StoreId;
use cartloop_core::ports::{ActorKind, AuditEntry, AuditFilter, Clock, NewAuditEntry, Storage};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;

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
    pub(crate) caller: Option<&'a Caller>,
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
        let store_id = target_store.or_else(|| outcome.caller.and_then(|c| c.principal.store()));
        self.push(NewAuditEntry {
            at: self.inner.clock.now(),
            actor: outcome.caller.map(|c| c.actor.clone()),
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

/// Who did it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ActorResponse {
    /// `token`, `key` or `operator`.
    #[schema(example = "operator")]
    kind: &'static str,
    /// The key's or the operator's id.
    id: Option<i64>,
    /// Its name then.
    name: Option<String>,
}

/// What it was done to.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TargetResponse {
    /// E.g. `conversation`.
    kind: Option<String>,
    /// Its id.
    id: Option<String>,
}

/// One entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditEntryResponse {
    /// Increases with every entry.
    id: i64,
    /// When (RFC 3339).
    at: String,
    /// Who; `null` for a request refused before anyone was known.
    actor: Option<ActorResponse>,
    /// What, e.g. `POST /chat/`, `login`.
    #[schema(example = "POST /chat/")]
    action: String,
    /// To what.
    target: TargetResponse,
    /// The store it concerns.
    store_id: Option<i64>,
    /// The status answered.
    status: u16,
}

impl From<AuditEntry> for AuditEntryResponse {
    fn from(e: AuditEntry) -> Self {
        let entry = e.entry;
        Self {
            id: e.id,
            at: rfc3339(entry.at),
            actor: entry.actor.map(|actor| ActorResponse {
                kind: actor.kind.as_str(),
                id: actor.id,
                name: actor.name,
            }),
            action: entry.action,
            target: TargetResponse {
                kind: entry.target_kind,
                id: entry.target_id,
            },
            store_id: entry.store_id.map(|s| s.0),
            status: entry.status,
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditPage {
    /// Newest first.
    entries: Vec<AuditEntryResponse>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// The audit log, newest first: every change that succeeded, every refusal (401, 403) and
/// every sign-in. A manager sees its store's entries, an admin all (or one store's).
#[utoipa::path(
    get,
    path = "/audit/",
    tag = "access",
    params(
        ("storeId" = Option<i64>, Query, description = "Only this store's entries", minimum = 1),
        ("actor" = Option<String>, Query, description = "Only this actor's: `token`, `key:<id>` or `operator:<id>`"),
        ("limit" = Option<u32>, Query, description = "Entries per page (1 to 500, default 50)", minimum = 1),
        ("cursor" = Option<String>, Query, description = "The previous page's `nextCursor`"),
    ),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`audit.read`)", body = ErrorBody),
        (status = 404, description = "`store_not_found`: another store", body = ErrorBody),
    )
)]
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    QueryMap(query): QueryMap,
) -> Result<Json<AuditPage>, ApiError> {
    let requested = match query.get("storeId") {
        None => None,
        Some(raw) => Some(StoreId(parse_id(raw).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "invalid storeId {}: expected a store id",
                    extract::quoted(raw)
                ),
            )
            .with_field("storeId")
        })?)),
    };
    let store = access::list_scope(&caller.principal, Listing::Audit, requested).map_err(|d| {
        crate::auth::denied(d, || {
            ApiError::not_found(
                "store_not_found",
                format!("store {} not found", requested.map_or(0, |s| s.0)),
            )
        })
    })?;
    let actor = match query.get("actor") {
        None => None,
        Some(raw) => Some(parse_actor(raw)?),
    };
    let limit = match query.get("limit") {
        None => 50,
        Some(raw) => extract::parse_limit(raw, 500)?,
    };
    let before = match query.get("cursor") {
        None => None,
        Some(raw) => Some(parse_id(raw).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "invalid cursor {}: pass a nextCursor as it was given",
                    extract::quoted(raw)
                ),
            )
            .with_field("cursor")
        })?),
    };
    state.audit.flush().await;
    let filter = AuditFilter {
        store,
        actor,
        before,
    };
    let entries = state.storage.audit(filter, limit).await?;
    let next_cursor = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(Json(AuditPage {
        entries: entries.into_iter().map(AuditEntryResponse::from).collect(),
        next_cursor,
    }))
}

fn parse_actor(raw: &str) -> Result<(ActorKind, Option<i64>), ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_query",
            format!(
                "invalid actor {}: expected `token`, `key:<id>` or `operator:<id>`",
                extract::quoted(raw)
            ),
        )
        .with_field("actor")
    };
    match raw.split_once(':') {
        None if raw == "token" => Ok((ActorKind::Token, None)),
        None => Err(invalid()),
        Some((kind, id)) => {
            let kind = ActorKind::parse(kind)
                .filter(|k| *k != ActorKind::Token)
                .ok_or_else(invalid)?;
            Ok((kind, Some(parse_id(id).ok_or_else(invalid)?)))
        }
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

    #[test]
    fn actors_parse() {
        assert_eq!(parse_actor("token").unwrap(), (ActorKind::Token, None));
        assert_eq!(parse_actor("key:3").unwrap(), (ActorKind::Key, Some(3)));
        assert_eq!(
            parse_actor("operator:24").unwrap(),
            (ActorKind::Operator, Some(24))
        );
        for bad in ["", "key", "key:", "key:x", "token:1", "robot:1"] {
            assert!(parse_actor(bad).is_err(), "{bad:?}");
        }
    }
}
