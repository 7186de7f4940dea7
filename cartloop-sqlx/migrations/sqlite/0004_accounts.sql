-- cartloop schema for SQLite, fourth version: who may do what. Operators' sign-in
-- accounts, API keys and sessions (both kept only as SHA-256 hashes), failed sign-ins (the
-- lockout counts them here, so it holds across servers) and the audit log.

-- An operator's account: the email it signs in with (`email_key`, lowercased by the
-- application, unique across the deployment), its role and its Argon2id PHC string. An
-- operator without a row has no email, no password and the `operator` role.
CREATE TABLE operator_accounts (
    operator_id   INTEGER PRIMARY KEY REFERENCES users (id),
    email         TEXT,
    email_key     TEXT UNIQUE,
    role          TEXT NOT NULL DEFAULT 'operator' CHECK (role IN ('operator', 'manager')),
    password_hash TEXT,
    CHECK ((email IS NULL) = (email_key IS NULL))
);

CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL
        CHECK (role IN ('admin', 'manager', 'integration', 'operator', 'inbound')),
    store_id    INTEGER REFERENCES stores (id),
    operator_id INTEGER REFERENCES users (id),
    key_hash    BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX api_keys_store_id ON api_keys (store_id);

CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY,
    operator_id  INTEGER NOT NULL REFERENCES users (id),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL
);
CREATE INDEX sessions_operator_id ON sessions (operator_id);

CREATE TABLE login_failures (
    email_key TEXT NOT NULL,
    at        INTEGER NOT NULL
);
CREATE INDEX login_failures_email_key ON login_failures (email_key, at);
CREATE INDEX login_failures_at ON login_failures (at);

-- Never a password, key, session id or message text: what was done, to what, by whom.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor_kind  TEXT CHECK (actor_kind IN ('token', 'key', 'operator')),
    actor_id    INTEGER,
    actor_name  TEXT,
    action      TEXT NOT NULL,
    target_kind TEXT,
    target_id   TEXT,
    store_id    INTEGER,
    status      INTEGER NOT NULL
);
CREATE INDEX audit_log_store_id ON audit_log (store_id, id);
CREATE INDEX audit_log_at ON audit_log (at);
