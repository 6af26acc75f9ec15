-- Each user's read marker per room, written behind by the room; only ever moves forward.
CREATE TABLE IF NOT EXISTS read_state (
    room TEXT NOT NULL,
    user_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    read_at TEXT NOT NULL,
    PRIMARY KEY (room, user_id)
) WITHOUT ROWID;
