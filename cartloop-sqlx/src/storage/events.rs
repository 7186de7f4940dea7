//! [`EventLog`] and [`Webhooks`] on SQL. The events themselves are written by the
//! triggers of migration 0007, in the transaction of each change; this file reads them,
//! keeps the webhooks and runs their delivery queue.

#[allow(unused_imports)]
use super::*;
use crate::due::DueWatch;
use cartloop_core::event::{self, Event, EventId, EventSelection, EventType};
use cartloop_core::ports::{
    AttemptStatus, ClaimedDelivery, DeliveryAttempt, DeliveryNext, DeliveryResult, EventFilter,
    EventLog, NewWebhook, Webhook, WebhookChanges, WebhookId, Webhooks,
};
use serde_json::Value;

/// How often the storage looks for events other writers committed, between the
/// notifications that say so (PostgreSQL) or instead of them (SQLite).
const EVENT_POLL: Duration = Duration::from_millis(200);

/// How often, where events are numbered after their commit ([`Dialect::SEQUENCE_EVENTS`]),
/// the storage numbers what was committed while something watches the log: the most an
/// event waits for its id, besides the reads that number first.
const SEQUENCE_POLL: Duration = Duration::from_millis(50);

/// The most events one call numbers ([`Dialect::SEQUENCE_EVENTS`]).
const SEQUENCE_BATCH: i64 = 5000;

/// Whether events wait to be numbered; one probe of a partial index.
const UNSEQUENCED: &str = "\
    SELECT CAST(COUNT(*) AS BIGINT) AS n FROM \
    (SELECT 1 FROM events WHERE id IS NULL LIMIT 1) AS waiting";

const EVENTS_AFTER: &str = "\
    SELECT id, kind, store_id, conversation_id, created_at, data FROM events \
    WHERE id > $1 AND ($2 IS NULL OR store_id = $2) AND ($3 IS NULL OR conversation_id = $3) \
      AND ($4 IS NULL OR $4 LIKE '%\"' || kind || '\"%') \
    ORDER BY id LIMIT $5";
const LAST_EVENT: &str = "SELECT COALESCE(MAX(id), 0) AS id FROM events";
// Ids grow with time: everything below the first id that is still kept goes, but never
// the newest event, whose id says where the log is.
const PRUNE_EVENTS: &str = "\
    DELETE FROM events WHERE id < COALESCE( \
        (SELECT id FROM events WHERE created_at >= $1 ORDER BY id LIMIT 1), \
        (SELECT MAX(id) FROM events))";
const PRUNE_ATTEMPTS: &str = "DELETE FROM webhook_attempts WHERE at < $1";

const WEBHOOK_COLUMNS: &str = "id, store_id, url, events, \
    CAST(CASE WHEN enabled THEN 1 ELSE 0 END AS BIGINT) AS enabled, disabled_reason, created_at";

// Only the head of each webhook's and conversation's line may go: the heads are found once
// per claim by one pass over the undelivered rows' index (`webhook_deliveries_chain`),
// not by a probe per waiting row, so a long line behind a retried event costs little.
const CLAIM: &str = "\
    SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
    WHERE w.enabled \
      AND ((d.status = 'pending' AND d.due_at <= $1) \
           OR (d.status = 'delivering' AND d.lease_until <= $1)) \
      AND (d.conversation_id IS NULL OR d.id IN ( \
           SELECT MIN(h.id) FROM webhook_deliveries h \
           WHERE h.status <> 'done' AND h.conversation_id IS NOT NULL \
           GROUP BY h.webhook_id, h.conversation_id)) \
    ORDER BY d.id LIMIT $2";

fn storage_text(what: &str, id: i64, e: impl std::fmt::Display) -> StorageError {
    StorageError::other(format!("{what} {id}: {e}"))
}

/// Rewrites the instants of an event's `data` (as the database wrote them: microseconds on
/// SQLite, RFC 3339 with an offset on PostgreSQL) as the API writes them.
fn api_times(data: &mut Value) -> Result<(), String> {
    let Value::Object(fields) = data else {
        return Err("data is not an object".into());
    };
    for key in ["createdAt", "sendAt", "sentAt"] {
        let Some(value) = fields.get_mut(key) else {
            continue;
        };
        let at = match &*value {
            Value::Null => continue,
            Value::Number(n) => n
                .as_i64()
                .and_then(DateTime::<Utc>::from_timestamp_micros)
                .ok_or_else(|| format!("{key}: {n} is no instant"))?,
            Value::String(s) => DateTime::parse_from_rfc3339(s)
                .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%#z"))
                .map_err(|e| format!("{key}: {s:?}: {e}"))?
                .with_timezone(&Utc),
            other => return Err(format!("{key}: {other} is no instant")),
        };
        *value = Value::String(event::time(at));
    }
    Ok(())
}

fn event_row<D: Dialect>(row: &DbRow<D>) -> Result<Event, StorageError> {
    let id = rows::int::<D>(row, "id")?;
    let kind = rows::text::<D>(row, "kind")?;
    let kind = EventType::parse(kind).ok_or_else(|| storage_text("event", id, kind))?;
    let mut data: Value = serde_json::from_str(rows::text::<D>(row, "data")?)
        .map_err(|e| storage_text("event", id, e))?;
    api_times(&mut data).map_err(|e| storage_text("event", id, e))?;
    Ok(Event {
        id: EventId(id),
        kind,
        created_at: rows::time::<D>(row, "created_at")?,
        store_id: Some(StoreId(rows::int::<D>(row, "store_id")?)),
        conversation_id: D::int(row, "conversation_id")?.map(ConversationId),
        data,
    })
}

fn selection_text(events: &EventSelection) -> String {
    serde_json::to_string(&events.names()).unwrap_or_else(|_| "[]".into())
}

fn webhook_row<D: Dialect>(row: &DbRow<D>) -> Result<Webhook, StorageError> {
    let id = rows::int::<D>(row, "id")?;
    let names: Vec<String> = serde_json::from_str(rows::text::<D>(row, "events")?)
        .map_err(|e| storage_text("webhook", id, e))?;
    Ok(Webhook {
        id: WebhookId(id),
        store_id: D::int(row, "store_id")?.map(StoreId),
        url: rows::text::<D>(row, "url")?.to_owned(),
        events: EventSelection::parse(&names).map_err(|e| storage_text("webhook", id, e))?,
        enabled: rows::int::<D>(row, "enabled")? != 0,
        disabled_reason: D::str(row, "disabled_reason")?.map(str::to_owned),
        created_at: rows::time::<D>(row, "created_at")?,
    })
}

fn attempt_row<D: Dialect>(row: &DbRow<D>) -> Result<DeliveryAttempt, StorageError> {
    let id = rows::int::<D>(row, "id")?;
    let kind = rows::text::<D>(row, "kind")?;
    let status = rows::text::<D>(row, "status")?;
    let number = |column: &str| -> Result<u64, StorageError> {
        let n = rows::int::<D>(row, column)?;
        u64::try_from(n).map_err(|e| storage_text("webhook attempt", id, e))
    };
    Ok(DeliveryAttempt {
        webhook_id: WebhookId(rows::int::<D>(row, "webhook_id")?),
        event_id: D::int(row, "event_id")?.map(EventId),
        kind: EventType::parse(kind).ok_or_else(|| storage_text("webhook attempt", id, kind))?,
        attempt: u32::try_from(number("attempt")?)
            .map_err(|e| storage_text("webhook attempt", id, e))?,
        status: AttemptStatus::parse(status)
            .ok_or_else(|| storage_text("webhook attempt", id, status))?,
        response_status: D::int(row, "response_status")?
            .map(|s| u16::try_from(s).map_err(|e| storage_text("webhook attempt", id, e)))
            .transpose()?,
        error: D::str(row, "error")?.map(str::to_owned),
        duration_ms: number("duration_ms")?,
        at: rows::time::<D>(row, "at")?,
    })
}

/// `(id, attempts) IN ((1, 2), ...)` for claims; the values are integers, written inline.
fn claims_in(claims: &[(i64, u32)]) -> String {
    let pairs: Vec<String> = claims
        .iter()
        .map(|(id, n)| format!("({id}, {n})"))
        .collect();
    format!("(id, attempts) IN ({})", pairs.join(", "))
}

fn ids_in(ids: &[i64]) -> String {
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    ids.join(", ")
}

/// Inserts `attempts` into the delivery log, one statement.
async fn insert_attempts<D: Dialect>(
    conn: &mut Conn<D>,
    attempts: &[DeliveryAttempt],
) -> Result<(), StorageError> {
    const COLUMNS: usize = 9;
    for chunk in attempts.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO webhook_attempts (webhook_id, event_id, kind, attempt, status, \
             response_status, error, duration_ms, at) VALUES ",
        );
        let mut params: Vec<Param<'_>> = Vec::with_capacity(chunk.len() * COLUMNS);
        for (i, a) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let n = i * COLUMNS;
            let marks: Vec<String> = (1..=COLUMNS).map(|k| format!("${}", n + k)).collect();
            sql.push('(');
            sql.push_str(&marks.join(", "));
            sql.push(')');
            let row: [Param<'_>; COLUMNS] = [
                a.webhook_id.0.into(),
                a.event_id.map(|e| e.0).into(),
                a.kind.as_str().into(),
                i64::from(a.attempt).into(),
                a.status.as_str().into(),
                a.response_status.map(i64::from).into(),
                a.error.as_deref().into(),
                i64::try_from(a.duration_ms).unwrap_or(i64::MAX).into(),
                a.at.into(),
            ];
            params.extend(row);
        }
        fetch::<D>(conn, &sql, &params).await?;
    }
    Ok(())
}

impl<D: Dialect> SqlStorage<D> {
    /// Numbers the events committed so far, where the dialect numbers them after their
    /// commit: a read of the log that follows a write sees the write's events.
    async fn sequence_events(&self) -> Result<(), StorageError> {
        sequence::<D>(&self.exec.pool, &self.exec.events).await
    }

    /// Wakes the event watchers whenever the log grows, however it grew: this process's
    /// writes, another server's (PostgreSQL's notifications wake sooner) or another
    /// process's on the same SQLite file. Stops with the storage.
    fn poll_events(&self, start: EventId) -> Result<(), StorageError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(StorageError::other)?;
        let pool = self.exec.pool.clone();
        self.exec.events.start_task("poll", |watch| {
            runtime
                .spawn(async move {
                    let mut last = Some(start.0);
                    loop {
                        if D::SEQUENCE_EVENTS.is_some() {
                            sequence_for::<D>(&pool, &watch, EVENT_POLL).await;
                        } else {
                            tokio::time::sleep(EVENT_POLL).await;
                        }
                        let Some(watch) = watch.upgrade() else { return };
                        let conn = pool.acquire().await;
                        let Ok(mut conn) = conn else { continue };
                        let Ok(rows) = fetch::<D>(&mut conn, LAST_EVENT, &[]).await else {
                            continue;
                        };
                        let now = rows
                            .first()
                            .and_then(|row| D::int(row, "id").ok().flatten());
                        if now.is_some() && now != last {
                            watch.wake();
                            last = now;
                        }
                    }
                })
                .abort_handle()
        });
        Ok(())
    }
}

/// Numbers the events committed before the call that have no id yet, batch after batch,
/// and wakes this process's watchers when it numbered any (the function notifies the other
/// servers). A batch short of [`SEQUENCE_BATCH`] numbered all there were: what commits
/// meanwhile waits for the next call (at most [`SEQUENCE_POLL`]), so that under a steady
/// stream of writes the calls come at that pace, each numbering many, rather than one after
/// another, each a lock, a notification and a few events (a sixth of PostgreSQL's time
/// while a burst drained, BENCHMARKS.md).
async fn sequence<D: Dialect>(
    pool: &sqlx::Pool<D::Db>,
    watch: &DueWatch,
) -> Result<(), StorageError> {
    let Some(statement) = D::SEQUENCE_EVENTS else {
        return Ok(());
    };
    let mut conn = pool.acquire().await.map_err(storage_error)?;
    loop {
        let waiting = fetch::<D>(&mut conn, UNSEQUENCED, &[]).await?;
        if waiting
            .first()
            .map(|row| count::<D>(row, "n"))
            .transpose()?
            != Some(1)
        {
            return Ok(());
        }
        let numbered = fetch::<D>(&mut conn, statement, &[SEQUENCE_BATCH.into()]).await?;
        let n = numbered
            .first()
            .map(|row| count::<D>(row, "n"))
            .transpose()?
            .unwrap_or(0);
        if n > 0 {
            watch.wake();
        }
        if n < SEQUENCE_BATCH.unsigned_abs() {
            return Ok(());
        }
    }
}

/// Numbers events every [`SEQUENCE_POLL`] for `period`, while the watch lives; a failure
/// is logged and tried again at the next turn.
async fn sequence_for<D: Dialect>(
    pool: &sqlx::Pool<D::Db>,
    watch: &std::sync::Weak<DueWatch>,
    period: Duration,
) {
    let until = tokio::time::Instant::now() + period;
    while tokio::time::Instant::now() < until {
        tokio::time::sleep(SEQUENCE_POLL).await;
        let Some(watch) = watch.upgrade() else { return };
        if let Err(e) = sequence::<D>(pool, &watch).await {
            tracing::warn!(error = %e, "could not number new events; trying again");
        }
    }
}

#[async_trait]
impl<D: Dialect> EventLog for SqlStorage<D> {
    async fn events_after(
        &self,
        after: EventId,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<Event>, StorageError> {
        let types = filter.types.as_ref().map(|types| {
            let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
            serde_json::to_string(&names).unwrap_or_default()
        });
        let params = [
            after.0.into(),
            filter.store.map(|s| s.0).into(),
            filter.conversation.map(|c| c.0).into(),
            types.as_deref().into(),
            i64::from(limit).into(),
        ];
        self.sequence_events().await?;
        let rows = self.exec.read(EVENTS_AFTER, &params).await?;
        rows.iter().map(event_row::<D>).collect()
    }

    async fn last_event_id(&self) -> Result<EventId, StorageError> {
        self.sequence_events().await?;
        let row = self.exec.read_one(LAST_EVENT, &[]).await?;
        let row = row.ok_or_else(|| StorageError::other("no last event row"))?;
        Ok(EventId(rows::int::<D>(&row, "id")?))
    }

    async fn watch_events(&self, on_event: DueCallback) -> Result<(), StorageError> {
        self.exec.events.add(on_event);
        let start = self.last_event_id().await?;
        self.poll_events(start)?;
        D::listen_events(&self.exec.pool, &self.exec.events)
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StorageError> {
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let pruned = async {
            let counted = fetch::<D>(
                tx.conn(),
                "SELECT COUNT(*) AS n FROM events \
             WHERE created_at < $1 AND id < (SELECT MAX(id) FROM events)",
                &[before.into()],
            )
            .await?;
            let n = counted
                .first()
                .map(|row| count::<D>(row, "n"))
                .transpose()?
                .unwrap_or(0);
            if n > 0 {
                fetch::<D>(tx.conn(), PRUNE_EVENTS, &[before.into()]).await?;
            }
            fetch::<D>(tx.conn(), PRUNE_ATTEMPTS, &[before.into()]).await?;
            Ok(n)
        }
        .await;
        self.exec.noted(tx.finish(pruned).await)
    }
}

#[async_trait]
impl<D: Dialect> Webhooks for SqlStorage<D> {
    async fn create_webhook(&self, new: NewWebhook) -> Result<Webhook, StorageError> {
        // Events committed before are queued (or not) by the selection they were
        // written under.
        self.sequence_events().await?;
        let sql = format!(
            "INSERT INTO webhooks (store_id, url, events, secret, created_at) \
             SELECT $1, $2, $3, $4, $5 \
             WHERE $1 IS NULL OR EXISTS (SELECT 1 FROM stores WHERE id = $1) \
             RETURNING {WEBHOOK_COLUMNS}"
        );
        let events = selection_text(&new.events);
        let params = [
            new.store_id.map(|s| s.0).into(),
            new.url.as_str().into(),
            events.as_str().into(),
            new.secret.as_str().into(),
            new.created_at.into(),
        ];
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let created = async {
            let rows = fetch::<D>(tx.conn(), &sql, &params).await?;
            rows.first()
                .map(webhook_row::<D>)
                .transpose()?
                .ok_or_else(|| {
                    StorageError::NotFound(format!("store {}", new.store_id.map_or(0, |s| s.0)))
                })
        }
        .await;
        self.exec.noted(tx.finish(created).await)
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>, StorageError> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1");
        let row = self.exec.read_one(&sql, &[id.0.into()]).await?;
        row.as_ref().map(webhook_row::<D>).transpose()
    }

    async fn list_webhooks(&self, store: Option<StoreId>) -> Result<Vec<Webhook>, StorageError> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE ($1 IS NULL OR store_id = $1) \
             ORDER BY id"
        );
        let rows = self.exec.read(&sql, &[store.map(|s| s.0).into()]).await?;
        rows.iter().map(webhook_row::<D>).collect()
    }

    async fn update_webhook(
        &self,
        id: WebhookId,
        changes: WebhookChanges,
    ) -> Result<Option<Webhook>, StorageError> {
        self.sequence_events().await?;
        let sql = format!(
            "UPDATE webhooks SET url = COALESCE($2, url), events = COALESCE($3, events), \
             enabled = COALESCE($4 = 1, enabled), \
             disabled_reason = CASE WHEN $4 = 1 THEN NULL ELSE disabled_reason END \
             WHERE id = $1 RETURNING {WEBHOOK_COLUMNS}"
        );
        let events = changes.events.as_ref().map(selection_text);
        let params = [
            id.0.into(),
            changes.url.as_deref().into(),
            events.as_deref().into(),
            changes.enabled.map(i64::from).into(),
        ];
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let updated = async {
            let rows = fetch::<D>(tx.conn(), &sql, &params).await?;
            rows.first().map(webhook_row::<D>).transpose()
        }
        .await;
        self.exec.noted(tx.finish(updated).await)
    }

    async fn delete_webhook(&self, id: WebhookId) -> Result<bool, StorageError> {
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let deleted = async {
            let rows = fetch::<D>(
                tx.conn(),
                "DELETE FROM webhooks WHERE id = $1 RETURNING id",
                &[id.0.into()],
            )
            .await?;
            Ok(!rows.is_empty())
        }
        .await;
        self.exec.noted(tx.finish(deleted).await)
    }

    async fn webhook_secret(&self, id: WebhookId) -> Result<Option<String>, StorageError> {
        let row = self
            .exec
            .read_one("SELECT secret FROM webhooks WHERE id = $1", &[id.0.into()])
            .await?;
        row.map(|row| rows::text::<D>(&row, "secret").map(str::to_owned))
            .transpose()
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StorageError> {
        self.sequence_events().await?;
        let until = super::lease_end(now, lease)?;
        let claim = format!(
            "UPDATE webhook_deliveries SET status = 'delivering', attempts = attempts + 1, \
             lease_until = $3 WHERE id IN ({CLAIM}{}) RETURNING id",
            D::LOCK_SKIP
        );
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let claimed = async {
            let params = [now.into(), i64::from(limit).into(), until.into()];
            let rows = fetch::<D>(tx.conn(), &claim, &params).await?;
            let ids = rows
                .iter()
                .map(|row| rows::int::<D>(row, "id"))
                .collect::<Result<Vec<_>, _>>()?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let details = format!(
                "SELECT d.id AS delivery_id, d.attempts AS attempt, \
                   d.created_at AS first_at, w.secret AS secret, \
                   w.id AS webhook_id, w.store_id AS webhook_store_id, w.url AS url, \
                   w.events AS events, w.disabled_reason AS disabled_reason, \
                   w.created_at AS webhook_created_at, \
                   e.id AS id, e.kind AS kind, e.store_id AS store_id, \
                   e.conversation_id AS conversation_id, e.created_at AS created_at, \
                   e.data AS data \
                 FROM webhook_deliveries d \
                 JOIN webhooks w ON w.id = d.webhook_id JOIN events e ON e.id = d.event_id \
                 WHERE d.id IN ({}) ORDER BY d.id",
                ids_in(&ids)
            );
            let rows = fetch::<D>(tx.conn(), &details, &[]).await?;
            let mut claimed = Vec::with_capacity(rows.len());
            for row in &rows {
                let delivery = rows::int::<D>(row, "delivery_id")?;
                let webhook_id = rows::int::<D>(row, "webhook_id")?;
                let names: Vec<String> = serde_json::from_str(rows::text::<D>(row, "events")?)
                    .map_err(|e| storage_text("webhook", webhook_id, e))?;
                let attempt = rows::int::<D>(row, "attempt")?;
                claimed.push(ClaimedDelivery {
                    id: delivery,
                    attempt: u32::try_from(attempt)
                        .map_err(|e| storage_text("webhook delivery", delivery, e))?,
                    first_at: rows::time::<D>(row, "first_at")?,
                    webhook: Webhook {
                        id: WebhookId(webhook_id),
                        store_id: D::int(row, "webhook_store_id")?.map(StoreId),
                        url: rows::text::<D>(row, "url")?.to_owned(),
                        events: EventSelection::parse(&names)
                            .map_err(|e| storage_text("webhook", webhook_id, e))?,
                        enabled: true,
                        disabled_reason: D::str(row, "disabled_reason")?.map(str::to_owned),
                        created_at: rows::time::<D>(row, "webhook_created_at")?,
                    },
                    secret: rows::text::<D>(row, "secret")?.to_owned(),
                    event: event_row::<D>(row)?,
                });
            }
            Ok(claimed)
        }
        .await;
        self.exec.noted(tx.finish(claimed).await)
    }

    async fn record_deliveries(&self, results: Vec<DeliveryResult>) -> Result<u64, StorageError> {
        if results.is_empty() {
            return Ok(0);
        }
        let done: Vec<(i64, u32)> = results
            .iter()
            .filter(|r| r.next == DeliveryNext::Done)
            .map(|r| r.delivery)
            .collect();
        // `status || ''`: found by the primary key, not by a scan of the whole partial
        // index on `delivering` (see the fence of messages' results in `sql`).
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let recorded = async {
            let mut held = 0;
            if !done.is_empty() {
                let sql = format!(
                    "UPDATE webhook_deliveries SET status = 'done', lease_until = NULL \
                     WHERE status || '' = 'delivering' AND {} RETURNING id",
                    claims_in(&done)
                );
                held += fetch::<D>(tx.conn(), &sql, &[]).await?.len() as u64;
            }
            for result in &results {
                let (id, attempt) = result.delivery;
                let fence = [id.into(), i64::from(attempt).into()];
                let (due, disable) = match &result.next {
                    DeliveryNext::Done => continue,
                    DeliveryNext::RetryAt(at) => (*at, None),
                    DeliveryNext::Disable(reason) => (result.attempt.at, Some(reason)),
                };
                let rows = fetch::<D>(
                    tx.conn(),
                    "UPDATE webhook_deliveries SET status = 'pending', lease_until = NULL, \
                     due_at = $3 \
                     WHERE id = $1 AND attempts = $2 AND status || '' = 'delivering' RETURNING id",
                    &[fence[0], fence[1], due.into()],
                )
                .await?;
                if rows.is_empty() {
                    continue;
                }
                held += 1;
                if let Some(reason) = disable {
                    fetch::<D>(
                        tx.conn(),
                        "UPDATE webhooks SET enabled = FALSE, disabled_reason = $2 \
                         WHERE id = $1",
                        &[result.attempt.webhook_id.0.into(), reason.as_str().into()],
                    )
                    .await?;
                }
            }
            let attempts: Vec<DeliveryAttempt> =
                results.iter().map(|r| r.attempt.clone()).collect();
            insert_attempts::<D>(tx.conn(), &attempts).await?;
            Ok(held)
        }
        .await;
        self.exec.noted(tx.finish(recorded).await)
    }

    async fn release_deliveries(&self, deliveries: &[(i64, u32)]) -> Result<u64, StorageError> {
        if deliveries.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE webhook_deliveries SET status = 'pending', lease_until = NULL, \
             attempts = attempts - 1 WHERE status || '' = 'delivering' AND {} RETURNING id",
            claims_in(deliveries)
        );
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let released = async { Ok(fetch::<D>(tx.conn(), &sql, &[]).await?.len() as u64) }.await;
        self.exec.noted(tx.finish(released).await)
    }

    async fn log_attempt(&self, attempt: DeliveryAttempt) -> Result<(), StorageError> {
        let _turn = self.exec.write_turn().await;
        let mut tx = self.exec.begin_write().await?;
        let logged = insert_attempts::<D>(tx.conn(), std::slice::from_ref(&attempt)).await;
        self.exec.noted(tx.finish(logged).await)
    }

    async fn delivery_log(
        &self,
        id: WebhookId,
        limit: u32,
    ) -> Result<Vec<DeliveryAttempt>, StorageError> {
        let rows = self
            .exec
            .read(
                "SELECT id, webhook_id, event_id, kind, attempt, status, response_status, \
                 error, duration_ms, at FROM webhook_attempts WHERE webhook_id = $1 \
                 ORDER BY id DESC LIMIT $2",
                &[id.0.into(), i64::from(limit).into()],
            )
            .await?;
        rows.iter().map(attempt_row::<D>).collect()
    }

    async fn oldest_undelivered(&self) -> Result<Option<DateTime<Utc>>, StorageError> {
        self.sequence_events().await?;
        let row = self
            .exec
            .read_one(
                "SELECT MIN(d.created_at) AS oldest FROM webhook_deliveries d \
                 JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.status <> 'done' AND w.enabled",
                &[],
            )
            .await?;
        match row {
            Some(row) => D::time(&row, "oldest"),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_rewritten_as_the_api_writes_them() {
        let mut sqlite = serde_json::json!({"createdAt": 1_764_061_200_000_000_i64, "sendAt": null, "sentAt": 1_764_061_200_250_000_i64});
        api_times(&mut sqlite).unwrap();
        assert_eq!(sqlite["createdAt"], "2025-11-25T09:00:00Z");
        assert_eq!(sqlite["sentAt"], "2025-11-25T09:00:00.250Z");
        assert_eq!(sqlite["sendAt"], Value::Null);
        let mut pg = serde_json::json!({"createdAt": "2025-11-25T10:00:00.25+01:00"});
        api_times(&mut pg).unwrap();
        assert_eq!(pg["createdAt"], "2025-11-25T09:00:00.250Z");
        assert!(api_times(&mut serde_json::json!({"createdAt": true})).is_err());
        assert!(api_times(&mut serde_json::json!([])).is_err());
    }

    #[test]
    fn claims_are_written_inline() {
        assert_eq!(
            claims_in(&[(1, 2), (3, 4)]),
            "(id, attempts) IN ((1, 2), (3, 4))"
        );
        assert_eq!(ids_in(&[5, 6]), "5, 6");
    }
}
