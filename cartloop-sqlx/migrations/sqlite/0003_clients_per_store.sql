-- cartloop schema for SQLite, third version: clients belong to a store (SPEC §9, "Stores
-- apart"). Every client gets a `store_id`; an email is unique within its store, not across
-- stores; a conversation's client must be of the conversation's store (a foreign key on
-- `(client_id, client_role, store_id)`).
--
-- The upgrade rule, the same as PostgreSQL's: a client with conversations in several stores
-- becomes one client per store. The original id stays with the store of its lowest-numbered
-- conversation; for each other store a new client (a new id above every user id, in order
-- of client and then of that store's lowest-numbered conversation; same name, email, zone
-- and unsubscribe) takes that store's conversations and the messages the client wrote in
-- them. A client with no conversation goes to the lowest-numbered store.

-- Clients, but no store at all: a store to hold them. It sends nothing until it has
-- conversations; its sender is a reserved `.invalid` address, to be replaced by a real one.
INSERT INTO stores (name, time_zone, sender_email)
SELECT 'Imported clients', 'UTC', 'clients@imported.invalid'
WHERE EXISTS (SELECT 1 FROM users WHERE role = 'client')
  AND NOT EXISTS (SELECT 1 FROM stores);

-- Where each client goes: one row per (client, store), `new_id` NULL for the store that
-- keeps the original id.
CREATE TABLE client_split (
    client_id          INTEGER NOT NULL,
    store_id           INTEGER NOT NULL,
    first_conversation INTEGER,
    new_id             INTEGER UNIQUE,
    PRIMARY KEY (client_id, store_id)
);
WITH pairs AS (
    SELECT client_id, store_id, MIN(id) AS first_conversation
    FROM conversations
    GROUP BY client_id, store_id
), ranked AS (
    SELECT client_id, store_id, first_conversation,
           ROW_NUMBER() OVER (PARTITION BY client_id ORDER BY first_conversation) AS nth
    FROM pairs
)
INSERT INTO client_split (client_id, store_id, first_conversation, new_id)
SELECT client_id, store_id, first_conversation, NULL FROM ranked WHERE nth = 1
UNION ALL
SELECT client_id, store_id, first_conversation,
       (SELECT COALESCE(MAX(id), 0) FROM users)
           + ROW_NUMBER() OVER (ORDER BY client_id, first_conversation)
FROM ranked WHERE nth > 1;
INSERT INTO client_split (client_id, store_id, first_conversation, new_id)
SELECT u.id, (SELECT MIN(id) FROM stores), NULL, NULL
FROM users u
WHERE u.role = 'client' AND NOT EXISTS (SELECT 1 FROM client_split s WHERE s.client_id = u.id);

-- SQLite cannot change a CHECK or a foreign key in place, and a referenced table cannot be
-- dropped inside a transaction (sqlx runs each migration in one, where `PRAGMA
-- foreign_keys = OFF` does nothing, and even deferred checks count the rows a DROP
-- orphans). So users, conversations and messages all move to new tables that reference
-- each other; the old ones are dropped children first, so no row is ever orphaned, and the
-- renames carry the new tables' references along.
CREATE TABLE users_v3 (
    id              INTEGER PRIMARY KEY,
    role            TEXT NOT NULL CHECK (role IN ('operator', 'client')),
    name            TEXT NOT NULL,
    store_id        INTEGER NOT NULL REFERENCES stores (id),
    operator_group  TEXT,
    email           TEXT,
    time_zone       TEXT,
    unsubscribed_at INTEGER,
    email_key       TEXT,
    -- Targets of the conversations' foreign keys: the role, and the client's store.
    UNIQUE (id, role),
    UNIQUE (id, role, store_id),
    CHECK (
        (role = 'operator' AND operator_group IS NOT NULL
            AND email IS NULL AND time_zone IS NULL AND email_key IS NULL)
        OR (role = 'client' AND email IS NOT NULL AND email_key IS NOT NULL
            AND operator_group IS NULL)
    )
);
INSERT INTO users_v3 (id, role, name, store_id, operator_group, email, time_zone,
                      unsubscribed_at, email_key)
SELECT u.id, u.role, u.name, COALESCE(u.store_id, s.store_id), u.operator_group, u.email,
       u.time_zone, u.unsubscribed_at, u.email_key
FROM users u
LEFT JOIN client_split s ON s.client_id = u.id AND s.new_id IS NULL AND u.role = 'client';
INSERT INTO users_v3 (id, role, name, store_id, operator_group, email, time_zone,
                      unsubscribed_at, email_key)
SELECT s.new_id, 'client', u.name, s.store_id, NULL, u.email, u.time_zone,
       u.unsubscribed_at, u.email_key
FROM client_split s
JOIN users u ON u.id = s.client_id
WHERE s.new_id IS NOT NULL;

CREATE TABLE conversations_v3 (
    id            INTEGER PRIMARY KEY,
    store_id      INTEGER NOT NULL REFERENCES stores (id),
    operator_id   INTEGER NOT NULL,
    -- Constant columns that let the foreign keys check the users' roles.
    operator_role TEXT NOT NULL DEFAULT 'operator' CHECK (operator_role = 'operator'),
    client_id     INTEGER NOT NULL,
    client_role   TEXT NOT NULL DEFAULT 'client' CHECK (client_role = 'client'),
    status        TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    discount_code TEXT,
    FOREIGN KEY (operator_id, operator_role) REFERENCES users_v3 (id, role),
    FOREIGN KEY (client_id, client_role, store_id) REFERENCES users_v3 (id, role, store_id)
);
INSERT INTO conversations_v3 (id, store_id, operator_id, operator_role, client_id,
                              client_role, status, discount_code)
SELECT c.id, c.store_id, c.operator_id, c.operator_role, COALESCE(s.new_id, c.client_id),
       c.client_role, c.status, c.discount_code
FROM conversations c
LEFT JOIN client_split s ON s.client_id = c.client_id AND s.store_id = c.store_id;

CREATE TABLE messages_v3 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations_v3 (id),
    author_id       INTEGER NOT NULL REFERENCES users_v3 (id),
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
-- A client's message in a conversation that moved to a new client is that client's.
INSERT INTO messages_v3 (id, conversation_id, author_id, payload, status, created_at,
                         send_at, sent_at, next_attempt_at, attempts, last_error,
                         lease_until, idempotency_key)
SELECT m.id, m.conversation_id,
       CASE WHEN m.author_id = c.client_id THEN COALESCE(s.new_id, m.author_id)
            ELSE m.author_id END,
       m.payload, m.status, m.created_at, m.send_at, m.sent_at, m.next_attempt_at,
       m.attempts, m.last_error, m.lease_until, m.idempotency_key
FROM messages m
JOIN conversations c ON c.id = m.conversation_id
LEFT JOIN client_split s ON s.client_id = c.client_id AND s.store_id = c.store_id;
-- New ids continue after every id ever given, as AUTOINCREMENT promised.
INSERT INTO sqlite_sequence (name, seq)
SELECT 'messages_v3', 0
WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'messages_v3');
UPDATE sqlite_sequence
SET seq = MAX(seq, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0))
WHERE name = 'messages_v3';

DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE users;
DROP TABLE client_split;
ALTER TABLE users_v3 RENAME TO users;
ALTER TABLE conversations_v3 RENAME TO conversations;
ALTER TABLE messages_v3 RENAME TO messages;

-- The indexes of 0002, on the new tables; a client's email is unique within its store.
CREATE UNIQUE INDEX users_client_email_key ON users (store_id, email_key) WHERE role = 'client';
CREATE INDEX conversations_store_id ON conversations (store_id);
CREATE INDEX conversations_operator_id ON conversations (operator_id);
CREATE INDEX messages_conversation_id ON messages (conversation_id, id);
CREATE UNIQUE INDEX messages_author_idempotency_key ON messages (author_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_new_due ON messages (COALESCE(next_attempt_at, send_at), id)
    WHERE status = 'new';
CREATE INDEX messages_sending_lease_until ON messages (lease_until, id)
    WHERE status = 'sending';
CREATE INDEX messages_sent_sent_at ON messages (sent_at) WHERE status = 'sent';
CREATE INDEX messages_pending ON messages (conversation_id) WHERE status IN ('new', 'sending');
