-- An email that may have gone counts against the frequency cap (SPEC §11). After an
-- ambiguous mail error (the server may have accepted the email) the message's reservation
-- is kept: `maybe_sent_at` is its instant, and every result but a send puts `counted_at`
-- back to it instead of releasing the reservation. NULL: no attempt may have gone.
ALTER TABLE messages ADD COLUMN maybe_sent_at INTEGER;
