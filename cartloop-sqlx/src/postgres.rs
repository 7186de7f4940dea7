//! The PostgreSQL dialect: for production and for several servers on one database.
//!
//! Instants are `TIMESTAMPTZ`. Claiming is one statement that locks the due rows with
//! `FOR UPDATE SKIP LOCKED`: servers claiming at the same moment each take different
//! messages, and none waits for another. Capped claims take turns on an advisory lock.
//!
//! A message made due through one server wakes the dispatchers of every server: after the
//! write commits, a background task sends `NOTIFY cartloop_due` (one for all the writes
//! since its last one), and every server's listener task calls its watchers on each
//! notification. The notification is not sent inside the writing transaction: PostgreSQL
//! serializes the commits of notifying transactions, WAL flush included, which cut inserts
//! to a small fraction (BENCHMARKS.md, "Design choices measured").

use crate::dialect::{Codec, Dialect, GroupRead, PoolOptions};
use crate::due::DueWatch;
use crate::error::decode_error;
use crate::rows::{self, MessageParts};
use crate::sql::{self, expired_leases, message_columns};
use crate::storage::SqlStorage;
use crate::ACQUIRE_TIMEOUT;
use cartloop_core::domain::Message;
use cartloop_core::ports::StorageError;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// The array column `name` of a page row.
fn array<'r, T>(row: &'r PgRow, name: &str) -> Result<Vec<T>, StorageError>
where
    Vec<T>: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(name).map_err(decode_error)
}

/// A pooled connection idle at least this long is pinged before it is used again.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The PostgreSQL schema, embedded in the binary.
pub static PG_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL dialect of [`SqlStorage`].
#[derive(Debug, Clone, Copy)]
pub enum Postgres {}

/// [`Storage`](cartloop_core::ports::Storage) on PostgreSQL.
pub type PgStorage = SqlStorage<Postgres>;

/// The channel due messages are announced on.
const CHANNEL: &str = "cartloop_due";

/// The listener's `application_name`, so that operators can tell its connection apart.
const LISTENER_NAME: &str = "cartloop-due-listener";

/// The channel the events' triggers notify at commit (migration 0007).
const EVENTS_CHANNEL: &str = "cartloop_events";

/// The `application_name` of the events listener's connection.
const EVENTS_LISTENER_NAME: &str = "cartloop-events-listener";

/// The shortest and longest waits before a lost listener connects again.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(30));

/// The shortest time between two announcements of one server: writes in between share the
/// next one.
const ANNOUNCE_SPACING: Duration = Duration::from_millis(5);

/// Claims up to `$2` messages due at `$1` with a lease until `$3`; returns each claimed
/// message with the instant it became due. The CTEs that lock are materialized, so that
/// rows are locked and limited exactly once; rows another claim (or a cancel) has locked
/// are skipped.
///
/// The `new` messages are `new_due!` in another form: the first `$2` of the partial index
/// `messages_new_due`, then those due at `$1`. The index is in due order, so they are the
/// same rows, but the only plan is an ordered walk of `$2` index entries. With the
/// condition inside, PostgreSQL plans by its statistics of when messages fall due, and
/// after a backlog comes due at once those are stale: it read every due row through a
/// bitmap and sorted them, 6 ms and more per claim at 20,000 due (BENCHMARKS.md). The walk
/// also locks the not-yet-due rows among the first `$2` until the statement ends; nothing
/// else waits on them longer than that.
const CLAIM_DUE: &str = concat!(
    "WITH new_due AS MATERIALIZED (\
       SELECT due_id, due_at FROM ( \
         SELECT id AS due_id, COALESCE(next_attempt_at, send_at) AS due_at FROM messages \
         WHERE status = 'new' ORDER BY COALESCE(next_attempt_at, send_at), id LIMIT $2 \
         FOR UPDATE SKIP LOCKED) AS first \
       WHERE due_at <= $1), \
     expired AS MATERIALIZED (",
    expired_leases!(),
    " FOR UPDATE SKIP LOCKED), \
     due AS (SELECT due_id, due_at FROM new_due \
             UNION ALL SELECT due_id, due_at FROM expired \
             ORDER BY due_at, due_id LIMIT $2) \
     UPDATE messages SET status = 'sending', attempts = attempts + 1, lease_until = $3 \
     FROM due WHERE messages.id = due.due_id \
     RETURNING due.due_at, ",
    message_columns!("messages.", "")
);

/// Inserts the messages of the JSON array `$1` (see [`Dialect::GROUP_INSERT`]). Each row
/// takes its id from the sequence first, so that the inserted rows can be joined back to
/// their `ord`; a row skipped for its idempotency key leaves a gap in the ids, as a failed
/// insert does.
const GROUP_INSERT: &str = concat!(
    "WITH input AS MATERIALIZED ( \
       SELECT t.*, nextval(pg_get_serial_sequence('messages', 'id')) AS new_id \
       FROM json_to_recordset($1::json) AS t (ord BIGINT, conversation_id BIGINT, \
         author_id BIGINT, payload TEXT, status TEXT, created_at TIMESTAMPTZ, \
         send_at TIMESTAMPTZ, idempotency_key TEXT, not_before TIMESTAMPTZ, \
         last_received TIMESTAMPTZ, waiting_for TEXT)), \
     inserted AS ( \
       INSERT INTO messages \
       (id, conversation_id, author_id, payload, status, created_at, send_at, idempotency_key, \
        not_before, last_received, waiting_for) \
       SELECT new_id, conversation_id, author_id, payload, status, created_at, send_at, \
         idempotency_key, not_before, last_received, waiting_for FROM input ORDER BY ord \
       ON CONFLICT (author_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
       RETURNING ",
    message_columns!("", ""),
    ") SELECT input.ord AS ord, inserted.* FROM inserted JOIN input ON input.new_id = inserted.id"
);

/// Records the sends of the JSON array `$1` (objects with `ord`, `id`, `attempts`, `at`: the
/// parameters of [`sql::MARK_SENT`]), each under its own claim as the single statement
/// does; returns the `ord` of each one whose claim held (see [`Dialect::GROUP_MARK_SENT`]).
/// One statement, so the chat events' trigger runs once for the group. The status is
/// compared as in [`sql::MARK_SENT`]'s fence, so that each row is found by its primary key.
const GROUP_MARK_SENT: &str = "WITH input AS ( \
       SELECT * FROM json_to_recordset($1::json) AS t (ord BIGINT, id BIGINT, attempts BIGINT, \
         at TIMESTAMPTZ)) \
     UPDATE messages SET status = 'sent', sent_at = input.at, last_error = NULL, \
       lease_until = NULL, \
       counted_at = CASE WHEN messages.counted_at IS NULL THEN NULL ELSE input.at END \
     FROM input \
     WHERE messages.id = input.id AND messages.status || '' = 'sending' \
       AND messages.attempts = input.attempts \
     RETURNING input.ord AS ord";

impl Codec for Postgres {
    type Db = sqlx::Postgres;
    type Instant = DateTime<Utc>;

    fn encode(at: DateTime<Utc>) -> DateTime<Utc> {
        at
    }

    fn decode(at: DateTime<Utc>) -> Result<DateTime<Utc>, StorageError> {
        Ok(at)
    }
}

impl Dialect for Postgres {
    const SERIAL_WRITES: bool = false;
    const BEGIN_WRITE: &'static str = "BEGIN";
    const CLAIM: &'static str = CLAIM_DUE;
    const CONVERSATION_PAGE: &'static str = sql::PG_CONVERSATION_PAGE;
    const CLAIM_DUE_AT: Option<&'static str> = None;
    // "cartloop" in ASCII; held until the transaction ends.
    const CAP_LOCK: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(7161121149532958576)");
    // The two-key form: its keys never meet the one-key locks'. Clients whose ids share the
    // key only take turns with each other.
    const CLIENT_LOCK: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(1129466956, ($1::bigint % 2147483647)::int)");
    // Waits for the inserts in flight and holds new ones back for as long as the snapshot
    // reads two maximums. Tables in the order the import locks them.
    const SNAPSHOT_LOCK: Option<&'static str> =
        Some("LOCK TABLE conversations, messages IN SHARE MODE");
    // Blocks inserts (and other imports) until commit, so that none takes an id from a
    // sequence before it has been moved past the imported ids.
    const IMPORT_LOCK: Option<&'static str> =
        Some("LOCK TABLE stores, users, conversations, messages IN SHARE ROW EXCLUSIVE MODE");
    const GROUP_INSERT: Option<&'static str> = Some(GROUP_INSERT);
    const GROUP_MARK_SENT: Option<&'static str> = Some(GROUP_MARK_SENT);
    const GROUP_CONVERSATION: Option<GroupRead> = Some(GroupRead {
        sql: sql::PG_GROUP_CONVERSATION,
        names: &["id"],
    });
    const GROUP_CONVERSATION_PAGE: Option<GroupRead> = Some(GroupRead {
        sql: sql::PG_GROUP_CONVERSATION_PAGE,
        names: &["id", "before", "lim"],
    });
    const AFTER_IMPORT: Option<&'static str> = Some(
        "SELECT setval(pg_get_serial_sequence(t.name, 'id')::regclass, t.max_id) \
         FROM (VALUES ('stores', (SELECT MAX(id) FROM stores)), \
                      ('users', (SELECT MAX(id) FROM users)), \
                      ('conversations', (SELECT MAX(id) FROM conversations)), \
                      ('messages', (SELECT MAX(id) FROM messages))) AS t (name, max_id) \
         WHERE t.max_id > COALESCE( \
             pg_sequence_last_value(pg_get_serial_sequence(t.name, 'id')::regclass), 0)",
    );

    fn page(row: &PgRow) -> Result<Vec<Message>, StorageError> {
        // An empty page aggregates to NULL arrays.
        let Some(ids) = row
            .try_get::<Option<Vec<i64>>, _>("p_id")
            .map_err(decode_error)?
        else {
            return Ok(Vec::new());
        };
        let conversation_id = rows::int::<Self>(row, "c_id")?;
        let authors: Vec<i64> = array(row, "p_author_id")?;
        let payloads: Vec<String> = array(row, "p_payload")?;
        let statuses: Vec<String> = array(row, "p_status")?;
        let created: Vec<DateTime<Utc>> = array(row, "p_created_at")?;
        let send: Vec<Option<DateTime<Utc>>> = array(row, "p_send_at")?;
        let sent: Vec<Option<DateTime<Utc>>> = array(row, "p_sent_at")?;
        let next: Vec<Option<DateTime<Utc>>> = array(row, "p_next_attempt_at")?;
        let attempts: Vec<i32> = array(row, "p_attempts")?;
        let mut last_errors: Vec<Option<String>> = array(row, "p_last_error")?;
        let not_before: Vec<Option<DateTime<Utc>>> = array(row, "p_not_before")?;
        let last_received: Vec<Option<DateTime<Utc>>> = array(row, "p_last_received")?;
        let waiting_for: Vec<Option<String>> = array(row, "p_waiting_for")?;
        let n = ids.len();
        let lengths = [
            authors.len(),
            payloads.len(),
            statuses.len(),
            created.len(),
            send.len(),
            sent.len(),
            next.len(),
            attempts.len(),
            last_errors.len(),
            not_before.len(),
            last_received.len(),
            waiting_for.len(),
        ];
        if lengths.iter().any(|&len| len != n) {
            return Err(StorageError::other("a page's columns differ in length"));
        }
        let mut messages = Vec::with_capacity(n);
        for (i, last_error) in last_errors.drain(..).enumerate() {
            messages.push(rows::checked_message(MessageParts {
                id: ids[i],
                conversation_id,
                author_id: authors[i],
                payload: &payloads[i],
                status: &statuses[i],
                created_at: created[i],
                send_at: send[i],
                sent_at: sent[i],
                next_attempt_at: next[i],
                attempts: attempts[i].into(),
                last_error,
                not_before: not_before[i],
                last_received: last_received[i],
                waiting_for: waiting_for[i].as_deref(),
            })?);
        }
        messages.sort_by_key(|m| m.id);
        Ok(messages)
    }

    fn migrator() -> &'static Migrator {
        &PG_MIGRATOR
    }

    fn configure(
        options: PgConnectOptions,
    ) -> Result<(PoolOptions<Self>, PgConnectOptions), StorageError> {
        // sqlx pings every connection it takes from the pool: a round trip more for each
        // statement. Only a connection idle for a while is checked (a server restart or a
        // firewall may have dropped it); one that served a request a moment ago is used at
        // once, and if it died meanwhile the statement fails as unavailable (503, retried by
        // the dispatcher) and the pool replaces it.
        let pool = PoolOptions::<Self>::new()
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < PING_IF_IDLE_FOR {
                        return Ok(true);
                    }
                    Ok(sqlx::Connection::ping(conn).await.is_ok())
                })
            });
        Ok((pool, options))
    }

    async fn prepare(_options: &PgConnectOptions) -> Result<(), StorageError> {
        Ok(())
    }

    fn announce_due(pool: &PgPool, due: &Arc<DueWatch>) {
        due.unannounced.notify_one();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (pool, unannounced) = (pool.clone(), due.unannounced.clone());
        due.start_task("announce", |_| {
            runtime.spawn(announce(pool, unannounced)).abort_handle()
        });
    }

    fn listen_due(pool: &PgPool, due: &Arc<DueWatch>) -> Result<(), StorageError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(StorageError::other)?;
        let options = (*pool.connect_options())
            .clone()
            .application_name(LISTENER_NAME);
        due.start_task("listen", |due| {
            runtime.spawn(listen(options, due, CHANNEL)).abort_handle()
        });
        Ok(())
    }

    fn listen_events(pool: &PgPool, events: &Arc<DueWatch>) -> Result<(), StorageError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(StorageError::other)?;
        let options = (*pool.connect_options())
            .clone()
            .application_name(EVENTS_LISTENER_NAME);
        events.start_task("listen", |events| {
            runtime
                .spawn(listen(options, events, EVENTS_CHANNEL))
                .abort_handle()
        });
        Ok(())
    }

    const LOCK_SKIP: &'static str = " FOR UPDATE OF d SKIP LOCKED";

    const SEQUENCE_EVENTS: Option<&'static str> = Some("SELECT cartloop_sequence_events($1) AS n");
}

/// Sends one `NOTIFY` whenever writes made messages due since the last one, at most one
/// every [`ANNOUNCE_SPACING`]. Stopped when the storage is dropped.
async fn announce(pool: PgPool, unannounced: Arc<Notify>) {
    loop {
        unannounced.notified().await;
        let notify = sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL);
        if let Err(e) = notify.execute(&pool).await {
            // The other servers find the message at their next poll.
            tracing::warn!(error = %e, "could not announce due messages to other servers");
        }
        tokio::time::sleep(ANNOUNCE_SPACING).await;
    }
}

/// Listens on `channel` ([`CHANNEL`] or [`EVENTS_CHANNEL`]) and wakes the watchers on every
/// notification, and once after each (re)connection, since notifications sent while
/// disconnected are lost. That wake-up comes once `LISTEN` has returned, so nothing sent
/// after it is missed. Reconnects with exponential backoff. Ends with the storage.
async fn listen(options: PgConnectOptions, due: Weak<DueWatch>, channel: &'static str) {
    // A pool of its own, so that the listener's connection is not taken from the storage's.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options);
    let mut backoff = BACKOFF.0;
    loop {
        let error = match subscribe(&pool, channel).await {
            Ok(mut listener) => {
                backoff = BACKOFF.0;
                loop {
                    let Some(watch) = due.upgrade() else { return };
                    watch.wake();
                    drop(watch);
                    match listener.try_recv().await {
                        Ok(Some(_)) => {}
                        // The connection was lost. sqlx would reconnect inside the next
                        // `try_recv` and wake us only at the next notification: listen
                        // again here instead, so the catch-up wake-up follows `LISTEN`.
                        Ok(None) => break None,
                        Err(e) => break Some(e),
                    }
                }
            }
            Err(e) => Some(e),
        };
        match error {
            None => tracing::warn!("the {channel} listener lost its connection; listening again"),
            Some(error) => {
                tracing::warn!(
                    error = %error,
                    retry_in = ?backoff,
                    channel,
                    "cannot listen for notifications on PostgreSQL; retrying"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
            }
        }
    }
}

async fn subscribe(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}
