-- cartloop schema for SQLite, second version: the operator API's columns, retries that
-- keep `send_at`, idempotency keys per author, and deployment secrets.
--
-- Stores, users and conversations need nothing for the ids the database assigns: an
-- INTEGER PRIMARY KEY left out of an INSERT takes one above the largest stored id.

-- A store's own delivery window, as `HH:MM-HH:MM`; NULL: the deployment's default.
ALTER TABLE stores ADD COLUMN active_hours TEXT;

-- `email_key` is the client's email as compared (lowercased by the application), unique
-- among clients.
ALTER TABLE users ADD COLUMN unsubscribed_at INTEGER;
ALTER TABLE users ADD COLUMN email_key TEXT CHECK (role = 'client' OR email_key IS NULL);
UPDATE users SET email_key = lower(email) WHERE role = 'client';
CREATE UNIQUE INDEX users_client_email_key ON users (email_key) WHERE role = 'client';

-- SQLite cannot change a table's CHECK or UNIQUE constraints in place: the messages move
-- to a new table with the new statuses, `next_attempt_at` (when a message that failed
-- transiently is tried again; its `send_at` stays as it was) and no global uniqueness of
-- idempotency keys. Nothing references messages, so the old table can simply go.
CREATE TABLE messages_v2 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    author_id       INTEGER NOT NULL REFERENCES users (id),
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN
        ('new', 'sending', 'sent', 'failed', 'received', 'cancelled', 'suppressed')),
    created_at      INTEGER NOT NULL,
    send_at         INTEGER,
    sent_at         INTEGER,
    next_attempt_at INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      TEXT,
    lease_until     INTEGER,
    idempotency_key TEXT,
    CHECK (status <> 'new' OR send_at IS NOT NULL),
    CHECK (status <> 'sending' OR lease_until IS NOT NULL)
);
INSERT INTO messages_v2 (id, conversation_id, author_id, payload, status, created_at,
                         send_at, sent_at, attempts, last_error, lease_until, idempotency_key)
SELECT id, conversation_id, author_id, payload, status, created_at,
       send_at, sent_at, attempts, last_error, lease_until, idempotency_key
FROM messages;
-- New ids continue after every id ever given, as AUTOINCREMENT promised.
INSERT INTO sqlite_sequence (name, seq)
SELECT 'messages_v2', 0
WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'messages_v2');
UPDATE sqlite_sequence
SET seq = MAX(seq, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0))
WHERE name = 'messages_v2';
DROP TABLE messages;
ALTER TABLE messages_v2 RENAME TO messages;

-- Paging a conversation's messages, and each conversation's activity in the list.
CREATE INDEX messages_conversation_id ON messages (conversation_id, id);
CREATE UNIQUE INDEX messages_author_idempotency_key ON messages (author_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Claims and `next_due` read waiting messages in due order from these two partial indexes
-- (one per half of a claim), so they stay cheap however many messages were sent.
CREATE INDEX messages_new_due ON messages (COALESCE(next_attempt_at, send_at), id)
    WHERE status = 'new';
CREATE INDEX messages_sending_lease_until ON messages (lease_until, id)
    WHERE status = 'sending';
-- The hourly cap counts recent sends.
CREATE INDEX messages_sent_sent_at ON messages (sent_at) WHERE status = 'sent';
-- The conversations list: each row's pending count, and its filters.
CREATE INDEX messages_pending ON messages (conversation_id) WHERE status IN ('new', 'sending');
CREATE INDEX conversations_store_id ON conversations (store_id);
CREATE INDEX conversations_operator_id ON conversations (operator_id);

-- Values the deployment keeps, e.g. the key that signs reply and unsubscribe tokens.
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
