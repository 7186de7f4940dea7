//! The SQL both dialects run as written: SQLite understands PostgreSQL's `$1` parameters,
//! and the schemas have the same tables and columns. Only claiming and the bookkeeping of
//! imports differ, and live in the dialects' modules.
//!
//! Statements that change rows return what they changed (`RETURNING`), so that every
//! statement runs the same way and a caller sees whether its condition held.

/// A store's columns, prefixed by `$q` (e.g. `"s."`), as `store_*` names.
macro_rules! store_columns {
    ($q:literal) => {
        concat!(
            $q,
            "id AS store_id, ",
            $q,
            "name AS store_name, ",
            $q,
            "time_zone AS store_time_zone, ",
            $q,
            "sender_email AS store_sender_email, ",
            $q,
            "active_hours AS store_active_hours, ",
            $q,
            "closures AS store_closures, ",
            $q,
            "max_per_client AS store_max_per_client, ",
            $q,
            "reply_grace AS store_reply_grace"
        )
    };
}

/// An operator's columns (a `users` row), prefixed by `$q`, as `operator_*` names.
macro_rules! operator_columns {
    ($q:literal) => {
        concat!(
            $q,
            "id AS operator_id, ",
            $q,
            "name AS operator_name, ",
            $q,
            "store_id AS operator_store_id, ",
            $q,
            "operator_group AS operator_group"
        )
    };
}

/// A client's columns (a `users` row), prefixed by `$q`, as `client_*` names.
macro_rules! client_columns {
    ($q:literal) => {
        concat!(
            $q,
            "id AS client_id, ",
            $q,
            "store_id AS client_store_id, ",
            $q,
            "name AS client_name, ",
            $q,
            "email AS client_email, ",
            $q,
            "time_zone AS client_time_zone, ",
            $q,
            "unsubscribed_at AS client_unsubscribed_at"
        )
    };
}

/// A message's columns, prefixed by `$q`, under the names of [`MessageColumns`] with
/// prefix `$p`.
macro_rules! message_columns {
    ($q:literal, $p:literal) => {
        concat!(
            $q,
            "id AS ",
            $p,
            "id, ",
            $q,
            "conversation_id AS ",
            $p,
            "conversation_id, ",
            $q,
            "author_id AS ",
            $p,
            "author_id, ",
            $q,
            "payload AS ",
            $p,
            "payload, ",
            $q,
            "status AS ",
            $p,
            "status, ",
            $q,
            "created_at AS ",
            $p,
            "created_at, ",
            $q,
            "send_at AS ",
            $p,
            "send_at, ",
            $q,
            "next_attempt_at AS ",
            $p,
            "next_attempt_at, ",
            $q,
            "sent_at AS ",
            $p,
            "sent_at, ",
            $q,
            "attempts AS ",
            $p,
            "attempts, ",
            $q,
            "last_error AS ",
            $p,
            "last_error, ",
            $q,
            "not_before AS ",
            $p,
            "not_before, ",
            $q,
            "last_received AS ",
            $p,
            "last_received, ",
            $q,
            "waiting_for AS ",
            $p,
            "waiting_for"
        )
    };
}
pub(crate) use message_columns;

/// The names [`message_columns!`] gives a message's columns.
#[derive(Debug)]
pub(crate) struct MessageColumns {
    pub id: &'static str,
    pub conversation_id: &'static str,
    pub author_id: &'static str,
    pub payload: &'static str,
    pub status: &'static str,
    pub created_at: &'static str,
    pub send_at: &'static str,
    pub next_attempt_at: &'static str,
    pub sent_at: &'static str,
    pub attempts: &'static str,
    pub last_error: &'static str,
    pub not_before: &'static str,
    pub last_received: &'static str,
    pub waiting_for: &'static str,
}

macro_rules! message_names {
    ($p:literal) => {
        MessageColumns {
            id: concat!($p, "id"),
            conversation_id: concat!($p, "conversation_id"),
            author_id: concat!($p, "author_id"),
            payload: concat!($p, "payload"),
            status: concat!($p, "status"),
            created_at: concat!($p, "created_at"),
            send_at: concat!($p, "send_at"),
            next_attempt_at: concat!($p, "next_attempt_at"),
            sent_at: concat!($p, "sent_at"),
            attempts: concat!($p, "attempts"),
            last_error: concat!($p, "last_error"),
            not_before: concat!($p, "not_before"),
            last_received: concat!($p, "last_received"),
            waiting_for: concat!($p, "waiting_for"),
        }
    };
}

/// A message selected with `message_columns!("…", "")`.
pub(crate) const MESSAGE: MessageColumns = message_names!("");
/// A conversation's newest chat in the conversations list.
pub(crate) const LAST_CHAT: MessageColumns = message_names!("lc_");

/// A conversation with its store, operator and client: `c`, `s`, `o`, `u`.
macro_rules! context_columns {
    () => {
        concat!(
            "c.id AS c_id, c.status AS c_status, c.discount_code AS c_discount_code, ",
            store_columns!("s."),
            ", ",
            operator_columns!("o."),
            ", ",
            client_columns!("u.")
        )
    };
}

macro_rules! context_joins {
    () => {
        " JOIN stores s ON s.id = c.store_id \
          JOIN users o ON o.id = c.operator_id \
          JOIN users u ON u.id = c.client_id "
    };
}

// ---- conversations ---------------------------------------------------------------------

/// A read of many in one statement: for each object of the JSON array `$1` (with `ord` and
/// the fields `$fields` declares), the rows of `$read`, which names them `r.<field>`, with
/// the object's `ord`. `OFFSET 0` keeps each read a subquery of its own, run once per
/// object with the indexes the single read uses (joined in, the planner would hash-join
/// whole tables for the group).
#[cfg(feature = "postgres")]
macro_rules! group_read {
    ($fields:literal, $read:expr) => {
        concat!(
            "SELECT r.ord AS ord, x.* FROM json_to_recordset($1::json) AS r (ord BIGINT, ",
            $fields,
            ") CROSS JOIN LATERAL (",
            $read,
            " OFFSET 0) AS x"
        )
    };
}

/// The conversation `$id` (`context_columns!`).
macro_rules! conversation {
    ($id:literal) => {
        concat!(
            "SELECT ",
            context_columns!(),
            " FROM conversations c",
            context_joins!(),
            "WHERE c.id = ",
            $id
        )
    };
}

pub(crate) const CONVERSATION: &str = conversation!("$1");

/// [`CONVERSATION`] for a group of reads (see [`crate::group_read`]): one row per
/// conversation of `$1`, a JSON array of `{"ord", "id"}` objects, with its `ord`.
#[cfg(feature = "postgres")]
pub(crate) const PG_GROUP_CONVERSATION: &str = group_read!("id BIGINT", conversation!("r.id"));

/// The newest `$limit` messages of conversation `$id` with an id below `$before`, newest
/// first, as the table `newest`.
macro_rules! newest {
    ($id:literal, $before:literal, $limit:literal) => {
        concat!(
            "(SELECT * FROM messages WHERE conversation_id = ",
            $id,
            " AND id < ",
            $before,
            " ORDER BY id DESC LIMIT ",
            $limit,
            ") AS newest"
        )
    };
}

/// SQLite: the conversation `$1` (`context_columns!`) and, as `page`, a page of its
/// messages ([`newest!`] with `$2` and `$3`) in ONE row, as a JSON array of arrays
/// (`page_json` reads it). One row, not one per message: each row the driver hands over
/// costs a wake-up of the task waiting for it, more than the JSON.
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE_CONVERSATION_PAGE: &str = concat!(
    "SELECT ",
    context_columns!(),
    ", (SELECT json_group_array(json_array(id, conversation_id, author_id, payload, status, \
     created_at, send_at, sent_at, next_attempt_at, attempts, last_error, not_before, \
     last_received, waiting_for)) FROM ",
    newest!("$1", "$2", "$3"),
    ") AS page FROM conversations c",
    context_joins!(),
    "WHERE c.id = $1"
);

/// PostgreSQL: the conversation `$id` (`context_columns!`) and a page of its messages
/// ([`newest!`]) in ONE row, as one array per column (`p_id`, `p_author_id`, …; NULL for an
/// empty page). Arrays travel in PostgreSQL's binary format: no value is written as text
/// by the database and parsed again by the server, as JSON would be (measured: see
/// `BENCHMARKS.md`).
///
/// The page is of `c.id`, not of `$id`: planned with the id's value, PostgreSQL takes its
/// statistics for that conversation, and for one with many old messages (common in the
/// statistics, all below many newer messages of others) it walks the primary key back from
/// the newest message, filtering through every newer row (`EXPLAIN ANALYZE` at a million
/// messages: BENCHMARKS.md). Of `c.id` the page is planned for any conversation, on the
/// `(conversation_id, id)` index.
#[cfg(feature = "postgres")]
macro_rules! pg_conversation_page {
    ($id:literal, $before:literal, $limit:literal) => {
        concat!(
            "SELECT ",
            context_columns!(),
            ", p.* FROM conversations c",
            context_joins!(),
            "CROSS JOIN LATERAL (SELECT array_agg(id) AS p_id, \
             array_agg(author_id) AS p_author_id, array_agg(payload) AS p_payload, \
             array_agg(status) AS p_status, array_agg(created_at) AS p_created_at, \
             array_agg(send_at) AS p_send_at, array_agg(sent_at) AS p_sent_at, \
             array_agg(next_attempt_at) AS p_next_attempt_at, \
             array_agg(attempts) AS p_attempts, array_agg(last_error) AS p_last_error, \
             array_agg(not_before) AS p_not_before, \
             array_agg(last_received) AS p_last_received, \
             array_agg(waiting_for) AS p_waiting_for FROM ",
            newest!("c.id", $before, $limit),
            ") AS p WHERE c.id = ",
            $id
        )
    };
}

/// [`pg_conversation_page!`] with `$1`, `$2`, `$3`.
#[cfg(feature = "postgres")]
pub(crate) const PG_CONVERSATION_PAGE: &str = pg_conversation_page!("$1", "$2", "$3");

/// [`PG_CONVERSATION_PAGE`] for a group of reads: `$1` is a JSON array of
/// `{"ord", "id", "before", "lim"}` objects.
#[cfg(feature = "postgres")]
pub(crate) const PG_GROUP_CONVERSATION_PAGE: &str = group_read!(
    "id BIGINT, before BIGINT, lim BIGINT",
    pg_conversation_page!("r.id", "r.before", "r.lim")
);

pub(crate) const SNAPSHOT: &str = "\
    SELECT COALESCE((SELECT MAX(id) FROM messages), 0) AS max_message, \
           COALESCE((SELECT MAX(id) FROM conversations), 0) AS max_conversation";

/// The conversations a list page may hold, by the snapshot `$1` (highest message id) and
/// `$2` (highest conversation id) and the filters `$3`-`$5` (status, store, operator; NULL:
/// any).
macro_rules! listed {
    ($c:literal) => {
        concat!(
            $c,
            ".id <= $2 AND ($3 IS NULL OR ",
            $c,
            ".status = $3) \
             AND ($4 IS NULL OR ",
            $c,
            ".store_id = $4) \
             AND ($5 IS NULL OR ",
            $c,
            ".operator_id = $5)"
        )
    };
}

/// The rows of the list page `page` (`id`, `activity`): each conversation with its client,
/// zone, newest chat now and pending count now.
macro_rules! list_rows {
    () => {
        concat!(
            "SELECT page.activity, ",
            context_columns!(),
            ", ",
            message_columns!("lc.", "lc_"),
            ", (SELECT COUNT(*) FROM messages pm \
                WHERE pm.conversation_id = c.id AND pm.status IN ('new', 'sending')) AS pending \
             FROM page JOIN conversations c ON c.id = page.id",
            context_joins!(),
            "LEFT JOIN messages lc ON lc.id = (SELECT m.id FROM messages m \
                                               WHERE m.conversation_id = c.id \
                                               ORDER BY m.id DESC LIMIT 1) \
             ORDER BY page.activity DESC, page.id DESC"
        )
    };
}

/// A page of the conversations list from the newest messages: listed conversations (see
/// `listed!`) whose newest message up to `$1` is one of the `$7` newest messages below
/// `$6` (the activity to start after), at most `$8`.
///
/// When it finds a full page, that page is right: a conversation it did not see has no
/// message among those it read, so its activity is lower than all of theirs. It reads
/// `$7` messages and probes the `(conversation_id, id)` index once for each, however many
/// conversations and messages there are. Otherwise (few chats, strict filters, the end of
/// the list) the caller reads [`LIST_CONVERSATIONS`].
pub(crate) const LIST_RECENT_CONVERSATIONS: &str = concat!(
    "WITH recent AS MATERIALIZED ( \
         SELECT id, conversation_id FROM messages WHERE id <= $1 AND id < $6 \
         ORDER BY id DESC LIMIT $7), \
     page AS ( \
         SELECT r.conversation_id AS id, r.id AS activity \
         FROM recent r JOIN conversations lp ON lp.id = r.conversation_id \
         WHERE ",
    listed!("lp"),
    " AND NOT EXISTS (SELECT 1 FROM messages n WHERE n.conversation_id = r.conversation_id \
                       AND n.id > r.id AND n.id <= $1) \
         ORDER BY r.id DESC LIMIT $8) ",
    list_rows!()
);

/// A page of the conversations list: listed conversations (see `listed!`) after the
/// activity key `$6`, `$7`, at most `$8`.
///
/// A conversation's activity is its newest message up to `$1`, found by one probe of the
/// `(conversation_id, id)` index: the cost grows with the listed conversations, not with
/// the messages.
pub(crate) const LIST_CONVERSATIONS: &str = concat!(
    "WITH keyed AS MATERIALIZED ( \
         SELECT lp.id, COALESCE((SELECT m.id FROM messages m \
                                 WHERE m.conversation_id = lp.id AND m.id <= $1 \
                                 ORDER BY m.id DESC LIMIT 1), 0) AS activity \
         FROM conversations lp WHERE ",
    listed!("lp"),
    "), \
     page AS ( \
         SELECT id, activity FROM keyed \
         WHERE activity < $6 OR (activity = $6 AND id < $7) \
         ORDER BY activity DESC, id DESC LIMIT $8) ",
    list_rows!()
);

pub(crate) const INSERT_CONVERSATION: &str = "\
    INSERT INTO conversations (store_id, operator_id, client_id, status, discount_code) \
    VALUES ($1, $2, $3, 'open', $4) RETURNING id";

/// Which of a new conversation's references exist (for a `NotFound` that names it); a client
/// of another store does not count.
pub(crate) const CONVERSATION_REFERENCES: &str = "\
    SELECT (SELECT COUNT(*) FROM stores WHERE id = $1) AS store, \
           (SELECT COUNT(*) FROM users WHERE id = $2 AND role = 'operator') AS operator, \
           (SELECT COUNT(*) FROM users WHERE id = $3 AND role = 'client' AND store_id = $1) \
               AS client";

pub(crate) const SET_CONVERSATION_STATUS: &str =
    "UPDATE conversations SET status = $2 WHERE id = $1 RETURNING id";

/// Only to an operator of the conversation's store: no row back otherwise.
pub(crate) const REASSIGN_CONVERSATION: &str = "\
    UPDATE conversations SET operator_id = $2 WHERE id = $1 AND EXISTS \
        (SELECT 1 FROM users u WHERE u.id = $2 AND u.role = 'operator' \
            AND u.store_id = conversations.store_id) \
    RETURNING id";

// ---- stores, operators, clients --------------------------------------------------------

pub(crate) const INSERT_STORE: &str = "\
    INSERT INTO stores (name, time_zone, sender_email, active_hours) \
    VALUES ($1, $2, $3, $4) RETURNING id";

pub(crate) const STORE: &str = concat!(
    "SELECT ",
    store_columns!("s."),
    " FROM stores s WHERE s.id = $1"
);

/// `$2`, `$4`, `$6`: whether the calendar, the cap, the grace change, to `$3`, `$5`, `$7`.
pub(crate) const UPDATE_STORE: &str = concat!(
    "UPDATE stores SET active_hours = CASE WHEN $2 THEN $3 ELSE active_hours END, \
     max_per_client = CASE WHEN $4 THEN $5 ELSE max_per_client END, \
     reply_grace = CASE WHEN $6 THEN $7 ELSE reply_grace END \
     WHERE id = $1 RETURNING ",
    store_columns!("")
);

pub(crate) const SET_STORE_CLOSURES: &str = concat!(
    "UPDATE stores SET closures = $2 WHERE id = $1 RETURNING ",
    store_columns!("")
);

pub(crate) const INSERT_OPERATOR: &str = "\
    INSERT INTO users (role, name, store_id, operator_group) \
    VALUES ('operator', $1, $2, $3) RETURNING id";

pub(crate) const OPERATOR: &str = concat!(
    "SELECT ",
    operator_columns!("o."),
    " FROM users o WHERE o.id = $1 AND o.role = 'operator'"
);

pub(crate) const INSERT_CLIENT: &str = "\
    INSERT INTO users (role, store_id, name, email, email_key, time_zone) \
    VALUES ('client', $1, $2, $3, $4, $5) RETURNING id";

pub(crate) const CLIENT: &str = concat!(
    "SELECT ",
    client_columns!("u."),
    " FROM users u WHERE u.id = $1 AND u.role = 'client'"
);

pub(crate) const CLIENT_BY_EMAIL: &str = concat!(
    "SELECT ",
    client_columns!("u."),
    " FROM users u WHERE u.store_id = $1 AND u.email_key = $2 AND u.role = 'client'"
);

/// `$2`-`$4`: new name, email and email key (NULL: unchanged); `$5`: whether the zone
/// changes, to `$6`.
pub(crate) const UPDATE_CLIENT: &str = concat!(
    "UPDATE users SET name = COALESCE($2, name), email = COALESCE($3, email), \
     email_key = COALESCE($4, email_key), \
     time_zone = CASE WHEN $5 THEN $6 ELSE time_zone END \
     WHERE id = $1 AND role = 'client' RETURNING ",
    client_columns!("")
);

pub(crate) const UNSUBSCRIBE_CLIENT: &str = concat!(
    "UPDATE users SET unsubscribed_at = COALESCE(unsubscribed_at, $2) \
     WHERE id = $1 AND role = 'client' RETURNING ",
    client_columns!("")
);

// ---- messages --------------------------------------------------------------------------

pub(crate) const MESSAGE_BY_ID: &str = concat!(
    "SELECT ",
    message_columns!("", ""),
    " FROM messages WHERE id = $1"
);

pub(crate) const MESSAGE_BY_KEY: &str = concat!(
    "SELECT ",
    message_columns!("", ""),
    " FROM messages WHERE author_id = $1 AND idempotency_key = $2"
);

/// Returns no row when the author's idempotency key is taken; the caller then reads that
/// message.
pub(crate) const INSERT_MESSAGE: &str = concat!(
    "INSERT INTO messages \
     (conversation_id, author_id, payload, status, created_at, send_at, idempotency_key, \
      not_before, last_received, waiting_for) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (author_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
     RETURNING ",
    message_columns!("", "")
);

/// Which of a new message's references exist (for a `NotFound` that names it).
pub(crate) const MESSAGE_REFERENCES: &str = "\
    SELECT (SELECT COUNT(*) FROM conversations WHERE id = $1) AS conversation, \
           (SELECT COUNT(*) FROM users WHERE id = $2) AS author";

/// One conditional statement, so that a claim either sees the message `new` and takes it,
/// or sees it `cancelled`.
pub(crate) const CANCEL_MESSAGE: &str = concat!(
    "UPDATE messages SET status = 'cancelled' WHERE id = $1 AND status = 'new' RETURNING ",
    message_columns!("", "")
);

pub(crate) const RETRY_MESSAGE: &str = concat!(
    "UPDATE messages SET status = 'new', send_at = $2, next_attempt_at = NULL, \
     lease_until = NULL WHERE id = $1 AND status = 'failed' RETURNING ",
    message_columns!("", "")
);

// ---- dispatch --------------------------------------------------------------------------

/// The oldest `new` messages due at `$1` (at most `$2`), with the instant each became due.
///
/// Claims read these and the expired leases (`expired_leases!`) apart, each in the order
/// of its partial index, and merge them: that reads at most `2 * $2` rows however large
/// the backlog, where one query over both would sort the whole backlog (BENCHMARKS.md has
/// the figures at a million due messages). PostgreSQL appends a row lock.
macro_rules! new_due {
    () => {
        "SELECT id AS due_id, COALESCE(next_attempt_at, send_at) AS due_at FROM messages \
         WHERE status = 'new' AND COALESCE(next_attempt_at, send_at) <= $1 \
         ORDER BY COALESCE(next_attempt_at, send_at), id LIMIT $2"
    };
}
pub(crate) use new_due;

/// The oldest claims whose lease ended at `$1` (at most `$2`), like `new_due!`.
macro_rules! expired_leases {
    () => {
        "SELECT id AS due_id, lease_until AS due_at FROM messages \
         WHERE status = 'sending' AND lease_until <= $1 \
         ORDER BY lease_until, id LIMIT $2"
    };
}
pub(crate) use expired_leases;

/// How much of the hourly cap is spent at `$2`: messages sent at or after `$1` (an hour
/// earlier) and messages in flight under a live lease. Each half is answered from its
/// partial index.
pub(crate) const CAP_USED: &str = "\
    SELECT (SELECT COUNT(*) FROM messages WHERE status = 'sent' AND sent_at >= $1) \
         + (SELECT COUNT(*) FROM messages WHERE status = 'sending' AND lease_until > $2) \
         AS used";

/// `$1` the message, `$2` the claim's attempts: the fence of every result.
///
/// The status is compared as `status || ''` so that the comparison cannot select the
/// partial indexes `WHERE status = 'sending'`: PostgreSQL otherwise takes
/// `messages_sending_lease_until (lease_until, id)` for `id = $1` whenever its statistics
/// say few messages are sending, and scans the whole index for each message. During a
/// burst that index holds an entry for every message sent since the last vacuum, so each
/// result cost more than the one before (the burst's grouped `sent` records took 30–160 ms
/// for 100 messages). The primary key finds the one row instead.
macro_rules! fenced {
    () => {
        " WHERE id = $1 AND status || '' = 'sending' AND attempts = $2 RETURNING id"
    };
}

pub(crate) const RENEW_LEASE: &str = concat!("UPDATE messages SET lease_until = $3", fenced!());

/// A reservation under the frequency cap moves to the send's instant.
pub(crate) const MARK_SENT: &str = concat!(
    "UPDATE messages SET status = 'sent', sent_at = $3, last_error = NULL, lease_until = NULL, \
     counted_at = CASE WHEN counted_at IS NULL THEN NULL ELSE $3 END",
    fenced!()
);

/// `$3` the instant, `$4` the rule: the policy holds the message; not an attempt.
pub(crate) const HOLD: &str = concat!(
    "UPDATE messages SET status = 'new', lease_until = NULL, send_at = $3, \
     next_attempt_at = NULL, waiting_for = $4, counted_at = maybe_sent_at, attempts = attempts - 1",
    fenced!()
);

/// The client of the message `$1` if it is `sending` under the claim `$2`.
pub(crate) const CLAIM_CLIENT: &str = "\
    SELECT c.client_id AS client_id FROM messages m JOIN conversations c \
    ON c.id = m.conversation_id WHERE m.id = $1 AND m.status || '' = 'sending' \
    AND m.attempts = $2";

/// The reservations under the frequency cap of client `$1` at or after `$2`, except message
/// `$3`'s, oldest first.
pub(crate) const RESERVED_SENDS: &str = "\
    SELECT m.counted_at AS counted_at FROM conversations c \
    JOIN messages m ON m.conversation_id = c.id \
    WHERE c.client_id = $1 AND m.counted_at IS NOT NULL AND m.counted_at >= $2 AND m.id <> $3 \
    ORDER BY m.counted_at";

/// An attempt whose email may have gone keeps its reservation (if any): the instant every
/// later result but a send puts `counted_at` back to.
pub(crate) const KEEP_RESERVATION: &str = concat!(
    "UPDATE messages SET maybe_sent_at = COALESCE(counted_at, maybe_sent_at)",
    fenced!()
);

/// `$3` the instant of the reservation.
pub(crate) const RESERVE_SEND: &str = concat!("UPDATE messages SET counted_at = $3", fenced!());

/// The newest `received` message of conversation `$1`.
pub(crate) const LAST_RECEIVED: &str = "\
    SELECT MAX(created_at) AS last_received FROM messages \
    WHERE conversation_id = $1 AND status = 'received'";

/// `$3` the instant, `$4` the error. A retry after a transient error (`$4` set) waits for
/// `next_attempt_at` and keeps `send_at`; a deferral (`$4` NULL) moves `send_at` and does not
/// count as an attempt.
pub(crate) const RESCHEDULE: &str = concat!(
    "UPDATE messages SET status = 'new', lease_until = NULL, counted_at = maybe_sent_at, \
     send_at = CASE WHEN $4 IS NULL THEN $3 ELSE send_at END, \
     next_attempt_at = CASE WHEN $4 IS NULL THEN NULL ELSE $3 END, \
     last_error = COALESCE($4, last_error), \
     attempts = CASE WHEN $4 IS NULL THEN attempts - 1 ELSE attempts END",
    fenced!()
);

pub(crate) const MARK_FAILED: &str = concat!(
    "UPDATE messages SET status = 'failed', last_error = $3, lease_until = NULL, \
     counted_at = maybe_sent_at",
    fenced!()
);

/// No send was tried: the claim does not count as an attempt.
pub(crate) const MARK_SUPPRESSED: &str = concat!(
    "UPDATE messages SET status = 'suppressed', last_error = $3, lease_until = NULL, \
     counted_at = maybe_sent_at, attempts = attempts - 1",
    fenced!()
);

/// The first due instant of each half, each read from its partial index.
pub(crate) const NEXT_DUE: &str = "\
    SELECT (SELECT COALESCE(next_attempt_at, send_at) FROM messages WHERE status = 'new' \
            ORDER BY COALESCE(next_attempt_at, send_at), id LIMIT 1) AS new_due, \
           (SELECT lease_until FROM messages WHERE status = 'sending' \
            ORDER BY lease_until, id LIMIT 1) AS lease_due";

/// Counts read from the partial indexes of waiting messages.
pub(crate) const BACKLOG: &str = "\
    SELECT (SELECT COUNT(*) FROM messages WHERE status = 'new') AS new_count, \
           (SELECT COUNT(*) FROM messages WHERE status = 'sending') AS sending_count, \
           (SELECT MIN(send_at) FROM messages \
            WHERE status = 'new' AND COALESCE(next_attempt_at, send_at) <= $1) AS oldest_new, \
           (SELECT MIN(send_at) FROM messages WHERE status = 'sending') AS oldest_sending";

// ---- data sets, secrets, health --------------------------------------------------------

pub(crate) const IMPORT_STORE: &str = "\
    INSERT INTO stores (id, name, time_zone, sender_email, active_hours, closures, \
                        max_per_client, reply_grace) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING RETURNING id";

pub(crate) const IMPORT_OPERATOR: &str = "\
    INSERT INTO users (id, role, name, store_id, operator_group) \
    VALUES ($1, 'operator', $2, $3, $4) ON CONFLICT (id) DO NOTHING RETURNING id";

pub(crate) const IMPORT_CLIENT: &str = "\
    INSERT INTO users (id, role, store_id, name, email, email_key, time_zone, unsubscribed_at) \
    VALUES ($1, 'client', $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING id";

pub(crate) const IMPORT_CONVERSATION: &str = "\
    INSERT INTO conversations (id, store_id, operator_id, client_id, status, discount_code) \
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING id";

/// A message imported as `sending` has no lease to keep: it is due again at once.
pub(crate) const IMPORT_MESSAGE: &str = "\
    INSERT INTO messages (id, conversation_id, author_id, payload, status, created_at, \
                          send_at, next_attempt_at, sent_at, attempts, last_error, lease_until, \
                          not_before, last_received, waiting_for) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
            CASE WHEN $5 = 'sending' THEN COALESCE($7, $6) END, $12, $13, $14) \
    ON CONFLICT (id) DO NOTHING RETURNING id";

pub(crate) const INSERT_SECRET: &str =
    "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";

pub(crate) const SECRET: &str = "SELECT value FROM secrets WHERE name = $1";

pub(crate) const PING: &str = "SELECT 1";
