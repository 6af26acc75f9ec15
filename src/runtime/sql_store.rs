//! The room's own storage: the Durable Object's SQLite, behind the core's `RoomStore` trait.

use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

use crate::error::{RelayError, RelayResult};
use crate::feed::Member;
use crate::paging::{Direction, SeqRange};
use crate::protocol::Receipt;
use crate::room::{ReadMarker, RoomStore, StoredMessage};

const SCHEMA: [&str; 6] = [
    "CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        event TEXT NOT NULL,
        sender_key TEXT NOT NULL,
        cid TEXT,
        ts TEXT NOT NULL,
        body TEXT
    )",
    "CREATE UNIQUE INDEX IF NOT EXISTS messages_by_cid ON messages (sender_key, cid) WHERE cid IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS reads (
        user_id TEXT PRIMARY KEY,
        user_json TEXT NOT NULL,
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        moved INTEGER NOT NULL,
        archived INTEGER NOT NULL DEFAULT 0
    )",
    "CREATE TABLE IF NOT EXISTS members (id TEXT PRIMARY KEY, role TEXT)",
    "CREATE TABLE IF NOT EXISTS feed_pending (member_id TEXT PRIMARY KEY, version INTEGER NOT NULL)",
];

/// Logs the storage failure and returns an error that reveals nothing of it.
pub fn storage_error(context: &str) -> impl Fn(worker::Error) -> RelayError + '_ {
    move |err| {
        worker::console_error!("storage failure in {context}: {err}");
        RelayError::internal()
    }
}

/// Meta key: the lowest seq whose body the room still keeps.
const KEPT_FROM: &str = "kept_from";

/// The largest integer a JavaScript number holds exactly (2^53 - 1).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A seq, count or time as an SQL parameter, which reaches SQLite as a JavaScript number. A
/// page bound may be the paging ceiling (`i64::MAX`, e.g. every history read without
/// `before`), which a number cannot hold exactly (the binding logged a warning for it on each
/// read): it is capped at 2^53 - 1, which no seq reaches, so no comparison changes.
fn int(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(value.min(MAX_SAFE_INTEGER) as i64)
}

pub struct SqlRoomStore {
    sql: SqlStorage,
}

#[derive(Deserialize)]
struct SeqRow {
    seq: Option<u64>,
}

#[derive(Deserialize)]
struct BodyRow {
    seq: u64,
    body: String,
}

#[derive(Deserialize)]
struct ReceiptRow {
    seq: u64,
    id: String,
    ts: String,
}

#[derive(Deserialize)]
struct MessageRow {
    seq: u64,
    id: String,
    event: String,
    sender_key: String,
    cid: Option<String>,
    ts: String,
    body: String,
}

#[derive(Deserialize)]
struct ReadRow {
    user_json: String,
    seq: u64,
    at: String,
}

impl ReadRow {
    fn into_marker(self) -> Option<ReadMarker> {
        let user = serde_json::from_str(&self.user_json).ok()?;
        Some(ReadMarker {
            user,
            seq: self.seq,
            at: self.at,
        })
    }
}

#[derive(Deserialize)]
struct PendingRow {
    member_id: String,
    version: i64,
}

#[derive(Deserialize)]
struct CountRow {
    n: u64,
}

#[derive(Deserialize)]
struct BodyOnly {
    body: String,
}

#[derive(Deserialize)]
struct MetaRow {
    value: String,
}

impl SqlRoomStore {
    pub fn open(sql: SqlStorage) -> RelayResult<Self> {
        for statement in SCHEMA {
            sql.exec(statement, None).map_err(storage_error("schema"))?;
        }
        Ok(SqlRoomStore { sql })
    }

    fn query<T: serde::de::DeserializeOwned>(
        &self,
        statement: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> RelayResult<Vec<T>> {
        self.sql
            .exec(statement, Some(bindings))
            .and_then(|cursor| cursor.to_array::<T>())
            .map_err(storage_error(statement))
    }

    fn execute(&self, statement: &str, bindings: Vec<SqlStorageValue>) -> RelayResult<()> {
        self.changed(statement, bindings).map(|_| ())
    }

    /// Runs a write; whether it changed any row.
    fn changed(&self, statement: &str, bindings: Vec<SqlStorageValue>) -> RelayResult<bool> {
        self.sql
            .exec(statement, Some(bindings))
            .map(|cursor| cursor.rows_written() > 0)
            .map_err(storage_error(statement))
    }

    pub fn meta(&self, key: &str) -> RelayResult<Option<String>> {
        let rows: Vec<MetaRow> =
            self.query("SELECT value FROM meta WHERE key = ?", vec![key.into()])?;
        Ok(rows.into_iter().next().map(|row| row.value))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> RelayResult<()> {
        self.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![key.into(), value.into()],
        )
    }

    /// Messages not yet written to the archive, oldest first.
    pub fn unarchived(&self, after_seq: u64, limit: u32) -> RelayResult<Vec<StoredMessage>> {
        let rows: Vec<MessageRow> = self.query(
            "SELECT seq, id, event, sender_key, cid, ts, body FROM messages
             WHERE seq > ? AND body IS NOT NULL ORDER BY seq LIMIT ?",
            vec![int(after_seq), int(u64::from(limit))],
        )?;
        Ok(rows
            .into_iter()
            .map(|row| StoredMessage {
                seq: row.seq,
                id: row.id,
                event: row.event,
                sender_key: row.sender_key,
                cid: row.cid,
                ts: row.ts,
                body: row.body,
            })
            .collect())
    }

    pub fn members(&self) -> RelayResult<Vec<Member>> {
        self.query("SELECT id, role FROM members ORDER BY id", vec![])
    }

    pub fn is_member(&self, user_id: &str) -> RelayResult<bool> {
        let rows: Vec<serde_json::Value> =
            self.query("SELECT id FROM members WHERE id = ?", vec![user_id.into()])?;
        Ok(!rows.is_empty())
    }

    /// Replaces the member list; updates pending for removed members are dropped.
    pub fn set_members(&self, members: &[Member]) -> RelayResult<()> {
        self.execute("DELETE FROM members", vec![])?;
        for member in members {
            self.execute(
                "INSERT INTO members (id, role) VALUES (?, ?)",
                vec![member.id.as_str().into(), member.role.as_deref().into()],
            )?;
        }
        self.execute(
            "DELETE FROM feed_pending WHERE member_id NOT IN (SELECT id FROM members)",
            vec![],
        )
    }

    /// Marks members (all, or one) as owed an update; the version tells later changes apart.
    pub fn queue_feed(&self, only: Option<&str>, version: i64) -> RelayResult<()> {
        let upsert = "INSERT INTO feed_pending (member_id, version) SELECT id, ? FROM members";
        let conflict = " ON CONFLICT (member_id) DO UPDATE SET version = excluded.version";
        match only {
            Some(member) => self.execute(
                &format!("{upsert} WHERE id = ?{conflict}"),
                vec![SqlStorageValue::Integer(version), member.into()],
            ),
            None => self.execute(
                &format!("{upsert} WHERE true{conflict}"),
                vec![SqlStorageValue::Integer(version)],
            ),
        }
    }

    pub fn pending_feed(&self, limit: u32) -> RelayResult<Vec<(String, i64)>> {
        let rows: Vec<PendingRow> = self.query(
            "SELECT member_id, version FROM feed_pending LIMIT ?",
            vec![int(u64::from(limit))],
        )?;
        Ok(rows.into_iter().map(|r| (r.member_id, r.version)).collect())
    }

    pub fn feed_sent(&self, member_id: &str, version: i64) -> RelayResult<()> {
        self.execute(
            "DELETE FROM feed_pending WHERE member_id = ? AND version = ?",
            vec![member_id.into(), SqlStorageValue::Integer(version)],
        )
    }

    /// Messages after the member's read marker that others sent.
    pub fn unread_count(&self, member_id: &str) -> RelayResult<u64> {
        let marker = self.read_marker(member_id)?.unwrap_or(0);
        let rows: Vec<CountRow> = self.query(
            "SELECT COUNT(*) AS n FROM messages WHERE seq > ? AND sender_key != ?",
            vec![int(marker), format!("u:{member_id}").into()],
        )?;
        Ok(rows.into_iter().next().map_or(0, |r| r.n))
    }

    /// The stored body of one message, if the room still keeps it.
    pub fn body(&self, seq: u64) -> RelayResult<Option<String>> {
        let rows: Vec<BodyOnly> = self.query(
            "SELECT body FROM messages WHERE seq = ? AND body IS NOT NULL",
            vec![int(seq)],
        )?;
        Ok(rows.into_iter().next().map(|r| r.body))
    }

    /// Read markers not yet written to the archive.
    pub fn unarchived_reads(&self, limit: u32) -> RelayResult<Vec<ReadMarker>> {
        let rows: Vec<ReadRow> = self.query(
            "SELECT user_json, seq, at FROM reads WHERE archived = 0 LIMIT ?",
            vec![int(u64::from(limit))],
        )?;
        Ok(rows.into_iter().filter_map(ReadRow::into_marker).collect())
    }

    /// Marks markers archived, unless they moved again meanwhile.
    pub fn mark_reads_archived(&self, markers: &[ReadMarker]) -> RelayResult<()> {
        for marker in markers {
            self.execute(
                "UPDATE reads SET archived = 1 WHERE user_id = ? AND seq = ?",
                vec![marker.user.id.as_str().into(), int(marker.seq)],
            )?;
        }
        Ok(())
    }

    /// Drops the bodies of archived messages older than the newest `keep`; the rows stay
    /// so that idempotency keys keep working.
    pub fn prune_bodies(&self, archived_seq: u64, keep: u64) -> RelayResult<()> {
        let last = self.last_seq()?;
        let kept_from = archived_seq.min(last.saturating_sub(keep)) + 1;
        if kept_from <= self.kept_from()? {
            return Ok(());
        }
        self.execute(
            "UPDATE messages SET body = NULL WHERE seq < ? AND body IS NOT NULL",
            vec![int(kept_from)],
        )?;
        self.set_meta(KEPT_FROM, &kept_from.to_string())
    }

    fn kept_from(&self) -> RelayResult<u64> {
        Ok(self
            .meta(KEPT_FROM)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(1))
    }
}

impl RoomStore for SqlRoomStore {
    fn last_seq(&self) -> RelayResult<u64> {
        let rows: Vec<SeqRow> = self.query("SELECT MAX(seq) AS seq FROM messages", vec![])?;
        Ok(rows.into_iter().next().and_then(|r| r.seq).unwrap_or(0))
    }

    fn find_by_cid(&self, sender_key: &str, cid: &str) -> RelayResult<Option<Receipt>> {
        let rows: Vec<ReceiptRow> = self.query(
            "SELECT seq, id, ts FROM messages WHERE sender_key = ? AND cid = ?",
            vec![sender_key.into(), cid.into()],
        )?;
        Ok(rows.into_iter().next().map(|row| Receipt {
            seq: row.seq,
            id: row.id,
            ts: row.ts,
            duplicate: false,
        }))
    }

    fn append(&self, message: &StoredMessage) -> RelayResult<bool> {
        self.changed(
            "INSERT INTO messages (seq, id, event, sender_key, cid, ts, body) VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
            vec![
                int(message.seq),
                message.id.as_str().into(),
                message.event.as_str().into(),
                message.sender_key.as_str().into(),
                message.cid.as_deref().into(),
                message.ts.as_str().into(),
                message.body.as_str().into(),
            ],
        )
    }

    fn page(&self, range: &SeqRange) -> RelayResult<Vec<(u64, String)>> {
        let statement = match range.direction {
            Direction::Forward => {
                "SELECT seq, body FROM messages WHERE seq > ? AND seq < ? AND body IS NOT NULL ORDER BY seq ASC LIMIT ?"
            }
            Direction::Backward => {
                "SELECT seq, body FROM messages WHERE seq > ? AND seq < ? AND body IS NOT NULL ORDER BY seq DESC LIMIT ?"
            }
        };
        let rows: Vec<BodyRow> = self.query(
            statement,
            vec![
                int(range.after),
                int(range.before),
                int(u64::from(range.fetch_limit)),
            ],
        )?;
        Ok(rows.into_iter().map(|row| (row.seq, row.body)).collect())
    }

    fn oldest_kept_seq(&self) -> RelayResult<Option<u64>> {
        let kept_from = self.kept_from()?;
        Ok((kept_from <= self.last_seq()?).then_some(kept_from))
    }

    fn read_marker(&self, user_id: &str) -> RelayResult<Option<u64>> {
        let rows: Vec<SeqRow> = self.query(
            "SELECT seq FROM reads WHERE user_id = ?",
            vec![user_id.into()],
        )?;
        Ok(rows.into_iter().next().and_then(|r| r.seq))
    }

    fn save_read(&self, marker: &ReadMarker) -> RelayResult<()> {
        let user_json = serde_json::to_string(&marker.user).map_err(|_| RelayError::internal())?;
        self.execute(
            "INSERT INTO reads (user_id, user_json, seq, at, moved, archived) VALUES (?, ?, ?, ?, ?, 0)
             ON CONFLICT (user_id) DO UPDATE SET user_json = excluded.user_json, seq = excluded.seq,
             at = excluded.at, moved = excluded.moved, archived = 0",
            vec![
                marker.user.id.as_str().into(),
                user_json.into(),
                int(marker.seq),
                marker.at.as_str().into(),
                SqlStorageValue::Integer(super::now_ms()),
            ],
        )
    }

    fn recent_reads(&self, limit: u32) -> RelayResult<Vec<ReadMarker>> {
        let rows: Vec<ReadRow> = self.query(
            "SELECT user_json, seq, at FROM reads ORDER BY moved DESC LIMIT ?",
            vec![int(u64::from(limit))],
        )?;
        Ok(rows.into_iter().filter_map(ReadRow::into_marker).collect())
    }
}
