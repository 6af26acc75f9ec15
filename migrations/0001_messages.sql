-- Every message of every room, written behind by the room's Durable Object; (room, seq) is unique,
-- so a retried batch inserts nothing twice.
CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    event TEXT NOT NULL,
    sender_key TEXT NOT NULL,
    cid TEXT,
    ts TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS messages_by_event ON messages (room, event, seq);
