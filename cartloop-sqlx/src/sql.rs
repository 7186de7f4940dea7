//! The SQL both backends run as written: SQLite understands PostgreSQL's `$1` parameters,
//! and the schemas have the same tables and columns. Only claiming and the bookkeeping of
//! imports differ, and live in the backends' modules.

/// The columns [`crate::rows::message`] reads, in `SELECT` and `RETURNING` lists.
macro_rules! message_columns {
    () => {
        "id, conversation_id, author_id, payload, status, created_at, send_at, sent_at, \
         attempts, last_error"
    };
}
pub(crate) use message_columns;

pub(crate) const CONVERSATION: &str = "\
    SELECT c.id, c.store_id, c.operator_id, c.client_id, c.status, c.discount_code, \
           s.name AS store_name, s.time_zone AS store_time_zone, s.sender_email, \
           o.name AS operator_name, o.store_id AS operator_store_id, o.operator_group, \
           u.name AS client_name, u.email AS client_email, u.time_zone AS client_time_zone \
    FROM conversations c \
    JOIN stores s ON s.id = c.store_id \
    JOIN users o ON o.id = c.operator_id \
    JOIN users u ON u.id = c.client_id \
    WHERE c.id = $1";

/// The newest `$3` messages below id `$2`, newest first (the caller reverses them).
pub(crate) const MESSAGES_PAGE: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE conversation_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
);

pub(crate) const MESSAGE: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE id = $1"
);

pub(crate) const MESSAGE_BY_KEY: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE idempotency_key = $1"
);

/// Returns no row when the idempotency key is taken; the caller then reads that message.
pub(crate) const INSERT_MESSAGE: &str = concat!(
    "INSERT INTO messages \
     (conversation_id, author_id, payload, status, created_at, send_at, idempotency_key) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (idempotency_key) DO NOTHING \
     RETURNING ",
    message_columns!()
);

/// The oldest `new` messages due at `$1` (at most `$2`), with the instant each became due.
///
/// Claims read these and the expired leases (`expired_leases`) apart, each in the order of
/// its partial index, and merge them: that reads at most `2 * $2` rows however large the
/// backlog, where one query over both would sort the whole backlog (0.7 s for a million
/// due messages on PostgreSQL, against 1 ms). PostgreSQL appends a row lock.
macro_rules! new_due {
    () => {
        "SELECT id AS due_id, send_at AS due_at FROM messages \
         WHERE status = 'new' AND send_at <= $1 \
         ORDER BY send_at, id LIMIT $2"
    };
}
pub(crate) use new_due;

/// The oldest claims whose lease ended at `$1` (at most `$2`), like `new_due`.
macro_rules! expired_leases {
    () => {
        "SELECT id AS due_id, lease_until AS due_at FROM messages \
         WHERE status = 'sending' AND lease_until <= $1 \
         ORDER BY lease_until, id LIMIT $2"
    };
}
pub(crate) use expired_leases;

/// `$1` the message, `$2` the claim's attempts: the fence of every result.
macro_rules! fenced {
    () => {
        " WHERE id = $1 AND status = 'sending' AND attempts = $2"
    };
}

pub(crate) const MARK_SENT: &str = concat!(
    "UPDATE messages SET status = 'sent', sent_at = $3, last_error = NULL, lease_until = NULL",
    fenced!()
);

/// A deferral (`$4` NULL) does not count as an attempt; a retry keeps the attempt and
/// records its error.
pub(crate) const RESCHEDULE: &str = concat!(
    "UPDATE messages SET status = 'new', send_at = $3, lease_until = NULL, \
     last_error = COALESCE($4, last_error), \
     attempts = CASE WHEN $4 IS NULL THEN attempts - 1 ELSE attempts END",
    fenced!()
);

pub(crate) const MARK_FAILED: &str = concat!(
    "UPDATE messages SET status = 'failed', last_error = $3, lease_until = NULL",
    fenced!()
);

/// Each half is answered from its partial index.
pub(crate) const NEXT_DUE: &str = "\
    SELECT MIN(due_at) AS next_due FROM ( \
        SELECT MIN(send_at) AS due_at FROM messages WHERE status = 'new' \
        UNION ALL \
        SELECT MIN(lease_until) AS due_at FROM messages WHERE status = 'sending' \
    ) AS waiting";

/// How much of the hourly cap is spent at `$2`: messages sent at or after `$1` (an hour
/// earlier) and messages in flight under a live lease. Each half is answered from its
/// partial index.
pub(crate) const CAP_USED: &str = "\
    SELECT (SELECT COUNT(*) FROM messages WHERE status = 'sent' AND sent_at >= $1) \
         + (SELECT COUNT(*) FROM messages WHERE status = 'sending' AND lease_until > $2) \
         AS used";

pub(crate) const IMPORT_STORE: &str = "\
    INSERT INTO stores (id, name, time_zone, sender_email) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (id) DO NOTHING";

pub(crate) const IMPORT_OPERATOR: &str = "\
    INSERT INTO users (id, role, name, store_id, operator_group) \
    VALUES ($1, 'operator', $2, $3, $4) \
    ON CONFLICT (id) DO NOTHING";

pub(crate) const IMPORT_CLIENT: &str = "\
    INSERT INTO users (id, role, name, email, time_zone) VALUES ($1, 'client', $2, $3, $4) \
    ON CONFLICT (id) DO NOTHING";

pub(crate) const IMPORT_CONVERSATION: &str = "\
    INSERT INTO conversations (id, store_id, operator_id, client_id, status, discount_code) \
    VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (id) DO NOTHING";

/// A message imported as `sending` has no lease to keep: it is due again at once.
pub(crate) const IMPORT_MESSAGE: &str = "\
    INSERT INTO messages (id, conversation_id, author_id, payload, status, created_at, \
                          send_at, sent_at, attempts, last_error, lease_until) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
            CASE WHEN $5 = 'sending' THEN COALESCE($7, $6) END) \
    ON CONFLICT (id) DO NOTHING";

pub(crate) const PING: &str = "SELECT 1";
