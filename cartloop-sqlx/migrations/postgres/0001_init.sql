-- cartloop schema for PostgreSQL. Time zones are IANA names.

CREATE TABLE stores (
    id           BIGINT PRIMARY KEY,
    name         TEXT NOT NULL,
    time_zone    TEXT NOT NULL,
    sender_email TEXT NOT NULL
);

-- Operators and clients share one id space, so they share one table.
CREATE TABLE users (
    id             BIGINT PRIMARY KEY,
    role           TEXT NOT NULL CHECK (role IN ('operator', 'client')),
    name           TEXT NOT NULL,
    store_id       BIGINT REFERENCES stores (id),
    operator_group TEXT,
    email          TEXT,
    time_zone      TEXT,
    -- Target of the conversations' (id, role) foreign keys.
    UNIQUE (id, role),
    CHECK (
        (role = 'operator' AND store_id IS NOT NULL AND operator_group IS NOT NULL
            AND email IS NULL AND time_zone IS NULL)
        OR (role = 'client' AND email IS NOT NULL
            AND store_id IS NULL AND operator_group IS NULL)
    )
);

CREATE TABLE conversations (
    id            BIGINT PRIMARY KEY,
    store_id      BIGINT NOT NULL REFERENCES stores (id),
    operator_id   BIGINT NOT NULL,
    -- Constant columns that let the foreign keys check the users' roles.
    operator_role TEXT NOT NULL DEFAULT 'operator' CHECK (operator_role = 'operator'),
    client_id     BIGINT NOT NULL,
    client_role   TEXT NOT NULL DEFAULT 'client' CHECK (client_role = 'client'),
    status        TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    discount_code TEXT,
    FOREIGN KEY (operator_id, operator_role) REFERENCES users (id, role),
    FOREIGN KEY (client_id, client_role) REFERENCES users (id, role)
);

CREATE TABLE messages (
    id              BIGSERIAL PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id),
    author_id       BIGINT NOT NULL REFERENCES users (id),
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL
        CHECK (status IN ('new', 'sending', 'sent', 'failed', 'received')),
    created_at      TIMESTAMPTZ NOT NULL,
    send_at         TIMESTAMPTZ,
    sent_at         TIMESTAMPTZ,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      TEXT,
    lease_until     TIMESTAMPTZ,
    idempotency_key TEXT UNIQUE,
    CHECK (status <> 'new' OR send_at IS NOT NULL),
    CHECK (status <> 'sending' OR lease_until IS NOT NULL)
);

-- Paging a conversation's messages.
CREATE INDEX messages_conversation_id ON messages (conversation_id, id);
-- Claiming and `next_due`: only waiting messages are indexed, so both stay cheap however
-- many messages were sent.
CREATE INDEX messages_new_send_at ON messages (send_at) WHERE status = 'new';
CREATE INDEX messages_sending_lease_until ON messages (lease_until) WHERE status = 'sending';
-- The hourly cap counts recent sends.
CREATE INDEX messages_sent_sent_at ON messages (sent_at) WHERE status = 'sent';
