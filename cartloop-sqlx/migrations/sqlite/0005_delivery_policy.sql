-- The delivery policy (SPEC §11): a store's calendar, closures, frequency cap and reply
-- grace; a message's `sendAt`, the client's last message when it was written, the rule that
-- holds it, and its reservation under the frequency cap.

-- `active_hours` may now also hold a week as JSON (`{"mon":[...],...}`). Closures are a
-- JSON list; the cap is `{"count":3,"per":"24h"}` (NULL: off); the grace is `15m` (NULL:
-- the default).
ALTER TABLE stores ADD COLUMN closures TEXT NOT NULL DEFAULT '[]';
ALTER TABLE stores ADD COLUMN max_per_client TEXT;
ALTER TABLE stores ADD COLUMN reply_grace TEXT;

-- `not_before`: the operator's `sendAt`; `last_received`: when the client's last message in
-- the conversation was received, as it was when this one was written; `waiting_for`: the
-- rule that held it when it was last scheduled; `counted_at`: when its send was reserved
-- under the frequency cap (then when it was sent); NULL: it does not count.
ALTER TABLE messages ADD COLUMN not_before INTEGER;
ALTER TABLE messages ADD COLUMN last_received INTEGER;
ALTER TABLE messages ADD COLUMN waiting_for TEXT
    CHECK (waiting_for IN ('active_hours', 'closure', 'send_at', 'frequency_cap'));
ALTER TABLE messages ADD COLUMN counted_at INTEGER;

-- The cap counts a client's reservations across their conversations.
CREATE INDEX conversations_client_id ON conversations (client_id);
CREATE INDEX messages_counted_at ON messages (conversation_id, counted_at)
    WHERE counted_at IS NOT NULL;
-- A conversation's last received message.
CREATE INDEX messages_received ON messages (conversation_id, created_at)
    WHERE status = 'received';
