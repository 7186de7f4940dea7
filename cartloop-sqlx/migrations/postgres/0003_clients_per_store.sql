-- cartloop schema for PostgreSQL, third version: clients belong to a store (SPEC §9,
-- "Stores apart"). Every client gets a `store_id`; an email is unique within its store, not
-- across stores; a conversation's client must be of the conversation's store (a foreign key
-- on `(client_id, client_role, store_id)`).
--
-- The upgrade rule, the same as SQLite's: a client with conversations in several stores
-- becomes one client per store. The original id stays with the store of its lowest-numbered
-- conversation; for each other store a new client (a new id above every user id given so
-- far, in order of client and then of that store's lowest-numbered conversation; same name,
-- email, zone and unsubscribe) takes that store's conversations and the messages the client
-- wrote in them. A client with no conversation goes to the lowest-numbered store.

-- Clients, but no store at all: a store to hold them. It sends nothing until it has
-- conversations; its sender is a reserved `.invalid` address, to be replaced by a real one.
INSERT INTO stores (name, time_zone, sender_email)
SELECT 'Imported clients', 'UTC', 'clients@imported.invalid'
WHERE EXISTS (SELECT 1 FROM users WHERE role = 'client')
  AND NOT EXISTS (SELECT 1 FROM stores);

-- Where each client goes: one row per (client, store), `new_id` NULL for the store that
-- keeps the original id. New ids start above the largest id and above the last one the
-- sequence gave (a refused insert uses one up), so none is ever given twice.
CREATE TABLE client_split (
    client_id          BIGINT NOT NULL,
    store_id           BIGINT NOT NULL,
    first_conversation BIGINT,
    new_id             BIGINT UNIQUE,
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
), base AS (
    SELECT GREATEST(
        (SELECT COALESCE(MAX(id), 0) FROM users),
        COALESCE(pg_sequence_last_value(pg_get_serial_sequence('users', 'id')::regclass), 0)
    ) AS top
)
INSERT INTO client_split (client_id, store_id, first_conversation, new_id)
SELECT client_id, store_id, first_conversation, NULL FROM ranked WHERE nth = 1
UNION ALL
SELECT client_id, store_id, first_conversation,
       (SELECT top FROM base) + ROW_NUMBER() OVER (ORDER BY client_id, first_conversation)
FROM ranked WHERE nth > 1;
INSERT INTO client_split (client_id, store_id, first_conversation, new_id)
SELECT u.id, (SELECT MIN(id) FROM stores), NULL, NULL
FROM users u
WHERE u.role = 'client' AND NOT EXISTS (SELECT 1 FROM client_split s WHERE s.client_id = u.id);

-- Clients take a store; the old rule (clients have none) and the deployment-wide
-- uniqueness of emails go first.
ALTER TABLE users DROP CONSTRAINT users_check;
DROP INDEX users_client_email_key;
UPDATE users u SET store_id = s.store_id
FROM client_split s
WHERE s.client_id = u.id AND s.new_id IS NULL AND u.role = 'client';
INSERT INTO users (id, role, name, store_id, email, time_zone, unsubscribed_at, email_key)
SELECT s.new_id, 'client', u.name, s.store_id, u.email, u.time_zone, u.unsubscribed_at,
       u.email_key
FROM client_split s
JOIN users u ON u.id = s.client_id
WHERE s.new_id IS NOT NULL;
-- The identity continues after the new ids (only moved when there are some, so never back).
SELECT setval(pg_get_serial_sequence('users', 'id')::regclass, MAX(new_id))
FROM client_split
HAVING MAX(new_id) IS NOT NULL;

ALTER TABLE users
    ALTER COLUMN store_id SET NOT NULL,
    ADD CONSTRAINT users_check CHECK (
        (role = 'operator' AND operator_group IS NOT NULL
            AND email IS NULL AND time_zone IS NULL)
        OR (role = 'client' AND email IS NOT NULL AND operator_group IS NULL)
    ),
    -- Target of the conversations' foreign key on the client's store.
    ADD CONSTRAINT users_id_role_store_id_key UNIQUE (id, role, store_id);
CREATE UNIQUE INDEX users_client_email_key ON users (store_id, email_key) WHERE role = 'client';

-- A client's message in a conversation that moves to a new client is that client's; then
-- the conversation moves.
UPDATE messages m SET author_id = s.new_id
FROM conversations c, client_split s
WHERE c.id = m.conversation_id AND m.author_id = c.client_id
  AND s.client_id = c.client_id AND s.store_id = c.store_id AND s.new_id IS NOT NULL;
UPDATE conversations c SET client_id = s.new_id
FROM client_split s
WHERE s.client_id = c.client_id AND s.store_id = c.store_id AND s.new_id IS NOT NULL;

ALTER TABLE conversations
    DROP CONSTRAINT conversations_client_id_client_role_fkey,
    ADD CONSTRAINT conversations_client_id_client_role_store_id_fkey
        FOREIGN KEY (client_id, client_role, store_id) REFERENCES users (id, role, store_id);

DROP TABLE client_split;
