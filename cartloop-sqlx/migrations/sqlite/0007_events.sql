-- Events (SPEC §10): every change writes its event in its own transaction, by the triggers
-- below, so no change is without its event and no event without its change. SQLite has
-- one writer at a time, so ids are given in commit order. Each event is queued at once for
-- every enabled webhook that selects it (`webhook_deliveries`).
--
-- `data` is the thing's API shape after the change, with instants as stored (INTEGER
-- microseconds); the storage writes them as RFC 3339 when it reads an event.

CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    store_id        INTEGER NOT NULL,
    conversation_id INTEGER,
    created_at      INTEGER NOT NULL,
    data            TEXT NOT NULL
);

CREATE TABLE webhooks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL: a deployment-wide webhook (an admin's), which gets every store's events.
    store_id        INTEGER REFERENCES stores (id),
    url             TEXT NOT NULL,
    -- A JSON array of event types, or ["*"].
    events          TEXT NOT NULL,
    secret          TEXT NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    disabled_reason TEXT,
    created_at      INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    -- Deliveries of one webhook and conversation go in id order.
    conversation_id INTEGER,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivering', 'done')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    due_at          INTEGER NOT NULL,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    CHECK (status <> 'delivering' OR lease_until IS NOT NULL)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_at, id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_lease ON webhook_deliveries (lease_until, id)
    WHERE status = 'delivering';
CREATE INDEX webhook_deliveries_chain ON webhook_deliveries (webhook_id, conversation_id, id)
    WHERE status <> 'done';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);

CREATE TABLE webhook_attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        INTEGER,
    kind            TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('delivered', 'retrying', 'failed')),
    response_status INTEGER,
    error           TEXT,
    duration_ms     INTEGER NOT NULL,
    at              INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_webhook ON webhook_attempts (webhook_id, id);

-- Queues each event for the webhooks that select it.
CREATE TRIGGER events_queue AFTER INSERT ON events BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event_id, conversation_id, status, due_at,
                                    created_at)
    SELECT w.id, NEW.id, NEW.conversation_id, 'pending', NEW.created_at, NEW.created_at
    FROM webhooks w
    WHERE w.enabled = 1
      AND (w.store_id IS NULL OR w.store_id = NEW.store_id)
      AND (w.events = '["*"]' OR instr(w.events, '"' || NEW.kind || '"') > 0);
END;

-- Chats: stored (an operator's), received (a client's), and their final statuses.
CREATE TRIGGER messages_event_insert AFTER INSERT ON messages BEGIN
    INSERT INTO events (kind, store_id, conversation_id, created_at, data)
    SELECT CASE NEW.status WHEN 'received' THEN 'chat.received' ELSE 'chat.created' END,
           c.store_id, NEW.conversation_id,
           CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER),
           json_object('chatId', NEW.id, 'conversationId', NEW.conversation_id,
                       'userId', NEW.author_id, 'payload', NEW.payload,
                       'status', NEW.status, 'createdAt', NEW.created_at,
                       'sendAt', NEW.send_at, 'sentAt', NEW.sent_at,
                       'attempts', NEW.attempts, 'lastError', NEW.last_error)
    FROM conversations c WHERE c.id = NEW.conversation_id;
END;

CREATE TRIGGER messages_event_status AFTER UPDATE OF status ON messages
WHEN NEW.status <> OLD.status AND NEW.status IN ('sent', 'failed', 'cancelled', 'suppressed')
BEGIN
    INSERT INTO events (kind, store_id, conversation_id, created_at, data)
    SELECT 'chat.' || NEW.status, c.store_id, NEW.conversation_id,
           CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER),
           json_object('chatId', NEW.id, 'conversationId', NEW.conversation_id,
                       'userId', NEW.author_id, 'payload', NEW.payload,
                       'status', NEW.status, 'createdAt', NEW.created_at,
                       'sendAt', NEW.send_at, 'sentAt', NEW.sent_at,
                       'attempts', NEW.attempts, 'lastError', NEW.last_error)
    FROM conversations c WHERE c.id = NEW.conversation_id;
END;

-- Conversations: created, resolved, reopened, assigned.
CREATE VIEW conversation_event_data AS
SELECT c.id AS conversation_id, c.store_id,
       json_object('conversationId', c.id, 'storeId', c.store_id,
                   'operatorId', c.operator_id, 'clientId', c.client_id,
                   'operatorGroup', o.operator_group, 'status', c.status,
                   'clientTimeZone', COALESCE(cl.time_zone, s.time_zone)) AS data
FROM conversations c
JOIN users o ON o.id = c.operator_id
JOIN users cl ON cl.id = c.client_id
JOIN stores s ON s.id = c.store_id;

CREATE TRIGGER conversations_event_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO events (kind, store_id, conversation_id, created_at, data)
    SELECT 'conversation.created', v.store_id, v.conversation_id,
           CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER), v.data
    FROM conversation_event_data v WHERE v.conversation_id = NEW.id;
END;

CREATE TRIGGER conversations_event_status AFTER UPDATE OF status ON conversations
WHEN NEW.status <> OLD.status BEGIN
    INSERT INTO events (kind, store_id, conversation_id, created_at, data)
    SELECT CASE NEW.status WHEN 'resolved' THEN 'conversation.resolved'
                           ELSE 'conversation.reopened' END,
           v.store_id, v.conversation_id,
           CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER), v.data
    FROM conversation_event_data v WHERE v.conversation_id = NEW.id;
END;

CREATE TRIGGER conversations_event_operator AFTER UPDATE OF operator_id ON conversations
WHEN NEW.operator_id <> OLD.operator_id BEGIN
    INSERT INTO events (kind, store_id, conversation_id, created_at, data)
    SELECT 'conversation.assigned', v.store_id, v.conversation_id,
           CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER), v.data
    FROM conversation_event_data v WHERE v.conversation_id = NEW.id;
END;

-- Clients: created, unsubscribed.
CREATE TRIGGER users_event_client AFTER INSERT ON users WHEN NEW.role = 'client' BEGIN
    INSERT INTO events (kind, store_id, conversation_id, created_at, data)
    VALUES ('client.created', NEW.store_id, NULL,
            CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER),
            json_object('clientId', NEW.id, 'storeId', NEW.store_id, 'name', NEW.name,
                        'email', NEW.email, 'timeZone', NEW.time_zone,
                        'unsubscribed', json(CASE WHEN NEW.unsubscribed_at IS NULL
                                                  THEN 'false' ELSE 'true' END)));
END;

CREATE TRIGGER users_event_unsubscribed AFTER UPDATE OF unsubscribed_at ON users
WHEN NEW.role = 'client' AND OLD.unsubscribed_at IS NULL AND NEW.unsubscribed_at IS NOT NULL
BEGIN
    INSERT INTO events (kind, store_id, conversation_id, created_at, data)
    VALUES ('client.unsubscribed', NEW.store_id, NULL,
            CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER),
            json_object('clientId', NEW.id, 'storeId', NEW.store_id, 'name', NEW.name,
                        'email', NEW.email, 'timeZone', NEW.time_zone,
                        'unsubscribed', json('true')));
END;
