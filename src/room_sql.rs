//! The room's own storage: its SQLite schema and statements behind the core's `RoomStore`
//! trait, over any SQLite that runs them ([`Sql`]): the Durable Object's in the Worker, an
//! in-process one in the tests.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::bans::{self, Ban, MAX_BANS};
use crate::error::{RelayError, RelayResult};
use crate::feed::Member;
use crate::paging::{Direction, SeqRange};
use crate::protocol::Receipt;
use crate::room::{ReadMarker, RoomStore, StoredMessage};
use crate::room_machine::MachineStore;
use crate::sql::{Sql, SqlValue};

const SCHEMA: [&str; 10] = [
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
    "CREATE TABLE IF NOT EXISTS bans (user_id TEXT PRIMARY KEY, until INTEGER)",
    // The outbox of outgoing events (its statements are in events_outbox.rs).
    "CREATE TABLE IF NOT EXISTS events_outbox (n INTEGER PRIMARY KEY, event TEXT NOT NULL)",
    crate::edits::SCHEMA,
    // Members whose unread streak is watched for message.unread (statements in room_unread.rs).
    "CREATE TABLE IF NOT EXISTS unread_watch (
        member_id TEXT PRIMARY KEY,
        after_seq INTEGER NOT NULL,
        notified INTEGER
    )",
];

/// Meta key: the lowest seq whose body the room still keeps.
const KEPT_FROM: &str = "kept_from";
/// The room's name (see [`SqlRoomStore::room_name`]).
const ROOM_NAME: &str = "room";

/// The largest integer a JavaScript number holds exactly (2^53 - 1).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A seq, count or time as an SQL parameter, which reaches SQLite as a JavaScript number. A
/// page bound may be the paging ceiling (`i64::MAX`, e.g. every history read without
/// `before`), which a number cannot hold exactly (the binding logged a warning for it on each
/// read): it is capped at 2^53 - 1, which no seq reaches, so no comparison changes.
fn int(value: u64) -> SqlValue<'static> {
    SqlValue::Integer(value.min(MAX_SAFE_INTEGER) as i64)
}

pub struct SqlRoomStore<E> {
    sql: E,
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

#[derive(Deserialize)]
struct BanRow {
    user_id: String,
    until: Option<i64>,
}

impl<E: Sql> SqlRoomStore<E> {
    pub fn open(sql: E) -> RelayResult<Self> {
        for statement in SCHEMA {
            sql.write(statement, &[])?;
        }
        Ok(SqlRoomStore { sql })
    }

    pub(crate) fn query<T: DeserializeOwned>(
        &self,
        statement: &str,
        bindings: &[SqlValue<'_>],
    ) -> RelayResult<Vec<T>> {
        self.sql.rows(statement, bindings)
    }

    pub(crate) fn execute(&self, statement: &str, bindings: &[SqlValue<'_>]) -> RelayResult<()> {
        self.sql.write(statement, bindings).map(|_| ())
    }

    /// Runs a write; whether it changed any row.
    fn changed(&self, statement: &str, bindings: &[SqlValue<'_>]) -> RelayResult<bool> {
        Ok(self.sql.write(statement, bindings)? > 0)
    }

    pub fn meta(&self, key: &str) -> RelayResult<Option<String>> {
        let rows: Vec<MetaRow> =
            self.query("SELECT value FROM meta WHERE key = ?", &[key.into()])?;
        Ok(rows.into_iter().next().map(|row| row.value))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> RelayResult<()> {
        self.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[key.into(), value.into()],
        )
    }

    /// The room's name: an alarm or a socket's event does not carry it, so the first request
    /// that names the room (`given`) keeps it here. Internal when it was never given.
    pub fn room_name(&self, given: Option<&str>) -> RelayResult<String> {
        match (self.meta(ROOM_NAME)?, given) {
            (Some(name), _) => Ok(name),
            (None, Some(name)) => {
                self.set_meta(ROOM_NAME, name)?;
                Ok(name.to_string())
            }
            (None, None) => Err(RelayError::internal()),
        }
    }

    /// Bans `user` (for good when `until` is `None`), replacing a ban they had. Expired bans
    /// go first; past [`MAX_BANS`] a new one is refused.
    pub fn ban(&self, user: &str, until: Option<i64>, now_s: i64) -> RelayResult<()> {
        self.execute(
            "DELETE FROM bans WHERE until <= ?",
            &[SqlValue::Integer(now_s)],
        )?;
        let rows: Vec<CountRow> = self.query(
            "SELECT COUNT(*) AS n FROM bans WHERE user_id != ?",
            &[user.into()],
        )?;
        if rows.first().map_or(0, |r| r.n) >= MAX_BANS {
            return Err(RelayError::bad_request(format!(
                "a room keeps at most {MAX_BANS} bans"
            )));
        }
        self.execute(
            "INSERT INTO bans (user_id, until) VALUES (?, ?)
             ON CONFLICT (user_id) DO UPDATE SET until = excluded.until",
            &[user.into(), until.map_or(SqlValue::Null, SqlValue::Integer)],
        )
    }

    /// Lifts `user`'s ban; whether there was one.
    pub fn unban(&self, user: &str) -> RelayResult<bool> {
        self.changed("DELETE FROM bans WHERE user_id = ?", &[user.into()])
    }

    /// The bans that hold at `now_s`, by user.
    pub fn bans(&self, now_s: i64) -> RelayResult<Vec<Ban>> {
        let rows: Vec<BanRow> = self.query(
            "SELECT user_id, until FROM bans WHERE until IS NULL OR until > ? ORDER BY user_id",
            &[SqlValue::Integer(now_s)],
        )?;
        Ok(rows
            .into_iter()
            .map(|row| Ban {
                user: row.user_id,
                until: row.until,
            })
            .collect())
    }

    /// Messages not yet written to the archive, oldest first.
    pub fn unarchived(&self, after_seq: u64, limit: u32) -> RelayResult<Vec<StoredMessage>> {
        let rows: Vec<MessageRow> = self.query(
            "SELECT seq, id, event, sender_key, cid, ts, body FROM messages
             WHERE seq > ? AND body IS NOT NULL ORDER BY seq LIMIT ?",
            &[int(after_seq), int(u64::from(limit))],
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
        self.query("SELECT id, role FROM members ORDER BY id", &[])
    }

    pub fn is_member(&self, user_id: &str) -> RelayResult<bool> {
        let rows: Vec<serde_json::Value> =
            self.query("SELECT id FROM members WHERE id = ?", &[user_id.into()])?;
        Ok(!rows.is_empty())
    }

    /// Replaces the member list; updates pending for removed members are dropped.
    pub fn set_members(&self, members: &[Member]) -> RelayResult<()> {
        self.execute("DELETE FROM members", &[])?;
        for member in members {
            self.execute(
                "INSERT INTO members (id, role) VALUES (?, ?)",
                &[member.id.as_str().into(), member.role.as_deref().into()],
            )?;
        }
        self.execute(
            "DELETE FROM feed_pending WHERE member_id NOT IN (SELECT id FROM members)",
            &[],
        )?;
        self.execute(
            "DELETE FROM unread_watch WHERE member_id NOT IN (SELECT id FROM members)",
            &[],
        )
    }

    /// Marks members (all, or one) as owed an update; the version tells later changes apart.
    pub fn queue_feed(&self, only: Option<&str>, version: i64) -> RelayResult<()> {
        let upsert = "INSERT INTO feed_pending (member_id, version) SELECT id, ? FROM members";
        let conflict = " ON CONFLICT (member_id) DO UPDATE SET version = excluded.version";
        match only {
            Some(member) => self.execute(
                &format!("{upsert} WHERE id = ?{conflict}"),
                &[SqlValue::Integer(version), member.into()],
            ),
            None => self.execute(
                &format!("{upsert} WHERE true{conflict}"),
                &[SqlValue::Integer(version)],
            ),
        }
    }

    pub fn pending_feed(&self, limit: u32) -> RelayResult<Vec<(String, i64)>> {
        let rows: Vec<PendingRow> = self.query(
            "SELECT member_id, version FROM feed_pending LIMIT ?",
            &[int(u64::from(limit))],
        )?;
        Ok(rows.into_iter().map(|r| (r.member_id, r.version)).collect())
    }

    pub fn feed_sent(&self, member_id: &str, version: i64) -> RelayResult<()> {
        self.execute(
            "DELETE FROM feed_pending WHERE member_id = ? AND version = ?",
            &[member_id.into(), SqlValue::Integer(version)],
        )
    }

    /// Messages after the member's read marker that others sent (records of edits and
    /// deletes are not new messages).
    pub fn unread_count(&self, member_id: &str) -> RelayResult<u64> {
        let marker = self.read_marker(member_id)?.unwrap_or(0);
        let sender_key = format!("u:{member_id}");
        let rows: Vec<CountRow> = self.query(
            "SELECT COUNT(*) AS n FROM messages WHERE seq > ? AND sender_key != ?
             AND event NOT IN (?, ?)",
            &[
                int(marker),
                sender_key.as_str().into(),
                crate::edits::EDITED_EVENT.into(),
                crate::edits::DELETED_EVENT.into(),
            ],
        )?;
        Ok(rows.into_iter().next().map_or(0, |r| r.n))
    }

    /// The current version of the room's newest message (not a record of an edit or delete),
    /// if the room still keeps its body.
    pub fn newest_message_body(&self) -> RelayResult<Option<String>> {
        let rows: Vec<BodyOnly> = self.query(
            "SELECT body FROM messages WHERE body IS NOT NULL AND event NOT IN (?, ?)
             ORDER BY seq DESC LIMIT 1",
            &[
                crate::edits::EDITED_EVENT.into(),
                crate::edits::DELETED_EVENT.into(),
            ],
        )?;
        Ok(rows.into_iter().next().map(|r| r.body))
    }

    /// The stored body of one message, if the room still keeps it.
    pub fn body(&self, seq: u64) -> RelayResult<Option<String>> {
        let rows: Vec<BodyOnly> = self.query(
            "SELECT body FROM messages WHERE seq = ? AND body IS NOT NULL",
            &[int(seq)],
        )?;
        Ok(rows.into_iter().next().map(|r| r.body))
    }

    /// Read markers not yet written to the archive.
    pub fn unarchived_reads(&self, limit: u32) -> RelayResult<Vec<ReadMarker>> {
        let rows: Vec<ReadRow> = self.query(
            "SELECT user_json, seq, at FROM reads WHERE archived = 0 LIMIT ?",
            &[int(u64::from(limit))],
        )?;
        Ok(rows.into_iter().filter_map(ReadRow::into_marker).collect())
    }

    /// Marks markers archived, unless they moved again meanwhile.
    pub fn mark_reads_archived(&self, markers: &[ReadMarker]) -> RelayResult<()> {
        for marker in markers {
            self.execute(
                "UPDATE reads SET archived = 1 WHERE user_id = ? AND seq = ?",
                &[marker.user.id.as_str().into(), int(marker.seq)],
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
            &[int(kept_from)],
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

impl<E: Sql> MachineStore for SqlRoomStore<E> {
    fn has_bans(&self) -> RelayResult<bool> {
        let rows: Vec<CountRow> = self.query("SELECT COUNT(*) AS n FROM bans", &[])?;
        Ok(rows.first().is_some_and(|r| r.n > 0))
    }

    fn is_banned(&self, user_id: &str, now_s: i64) -> RelayResult<bool> {
        let rows: Vec<BanRow> = self.query(
            "SELECT user_id, until FROM bans WHERE user_id = ?",
            &[user_id.into()],
        )?;
        Ok(rows
            .first()
            .is_some_and(|ban| bans::holds(ban.until, now_s)))
    }

    fn has_members(&self) -> RelayResult<bool> {
        Ok(!self.members()?.is_empty())
    }

    fn is_member(&self, user_id: &str) -> RelayResult<bool> {
        SqlRoomStore::is_member(self, user_id)
    }

    fn queue_feed(&self, only: Option<&str>, version: i64) -> RelayResult<()> {
        SqlRoomStore::queue_feed(self, only, version)
    }

    fn record_event(&self, event: &str) -> RelayResult<()> {
        SqlRoomStore::record_event(self, event)
    }

    fn event_count(&self) -> RelayResult<u64> {
        SqlRoomStore::event_count(self)
    }

    fn unread_seen_online(&self, user_id: &str, last_seq: u64) -> RelayResult<()> {
        SqlRoomStore::unread_seen_online(self, user_id, last_seq)
    }
}

impl<E: Sql> RoomStore for SqlRoomStore<E> {
    fn last_seq(&self) -> RelayResult<u64> {
        let rows: Vec<SeqRow> = self.query("SELECT MAX(seq) AS seq FROM messages", &[])?;
        Ok(rows.into_iter().next().and_then(|r| r.seq).unwrap_or(0))
    }

    fn find_by_cid(&self, sender_key: &str, cid: &str) -> RelayResult<Option<Receipt>> {
        let rows: Vec<ReceiptRow> = self.query(
            "SELECT seq, id, ts FROM messages WHERE sender_key = ? AND cid = ?",
            &[sender_key.into(), cid.into()],
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
            &[
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
            &[
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
        let rows: Vec<SeqRow> =
            self.query("SELECT seq FROM reads WHERE user_id = ?", &[user_id.into()])?;
        Ok(rows.into_iter().next().and_then(|r| r.seq))
    }

    fn save_read(&self, marker: &ReadMarker) -> RelayResult<()> {
        let user_json = serde_json::to_string(&marker.user).map_err(|_| RelayError::internal())?;
        self.execute(
            "INSERT INTO reads (user_id, user_json, seq, at, moved, archived)
             VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(moved), 0) + 1 FROM reads), 0)
             ON CONFLICT (user_id) DO UPDATE SET user_json = excluded.user_json, seq = excluded.seq,
             at = excluded.at, moved = excluded.moved, archived = 0",
            &[
                marker.user.id.as_str().into(),
                user_json.as_str().into(),
                int(marker.seq),
                marker.at.as_str().into(),
            ],
        )
    }

    fn recent_reads(&self, limit: u32) -> RelayResult<Vec<ReadMarker>> {
        let rows: Vec<ReadRow> = self.query(
            "SELECT user_json, seq, at FROM reads ORDER BY moved DESC LIMIT ?",
            &[int(u64::from(limit))],
        )?;
        Ok(rows.into_iter().filter_map(ReadRow::into_marker).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::User;

    fn store() -> SqlRoomStore<rusqlite::Connection> {
        SqlRoomStore::open(crate::sql::in_memory()).unwrap()
    }

    fn message(seq: u64, sender: &str, cid: Option<&str>) -> StoredMessage {
        StoredMessage {
            seq,
            id: format!("id{seq}"),
            event: "message".into(),
            sender_key: format!("u:{sender}"),
            cid: cid.map(str::to_string),
            ts: format!("2026-12-04T00:00:{seq:02}.000Z"),
            body: format!("{{\"seq\":{seq}}}"),
        }
    }

    fn fill(store: &SqlRoomStore<rusqlite::Connection>, n: u64) {
        for seq in 1..=n {
            let cid = format!("c{seq}");
            assert!(store.append(&message(seq, "ann", Some(&cid))).unwrap());
        }
    }

    fn seqs(rows: &[(u64, String)]) -> Vec<u64> {
        rows.iter().map(|(seq, _)| *seq).collect()
    }

    fn marker(user: &str, seq: u64) -> ReadMarker {
        ReadMarker {
            user: User {
                id: user.into(),
                name: Some(format!("{user}!")),
                role: None,
            },
            seq,
            at: "2026-12-04T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn a_repeated_sender_and_cid_is_refused_and_finds_the_original() {
        let store = store();
        assert_eq!(store.last_seq().unwrap(), 0);
        assert!(store.append(&message(1, "ann", Some("a"))).unwrap());
        assert!(
            !store.append(&message(2, "ann", Some("a"))).unwrap(),
            "same sender and cid"
        );
        assert!(
            store.append(&message(2, "bob", Some("a"))).unwrap(),
            "another sender's cid"
        );
        assert!(store.append(&message(3, "ann", None)).unwrap());
        assert!(
            store.append(&message(4, "ann", None)).unwrap(),
            "messages without cid"
        );
        assert!(
            !store.append(&message(4, "cid", Some("x"))).unwrap(),
            "a taken seq"
        );
        assert_eq!(store.last_seq().unwrap(), 4);
        let original = store.find_by_cid("u:ann", "a").unwrap().unwrap();
        assert_eq!((original.seq, original.id.as_str()), (1, "id1"));
        assert_eq!(original.ts, "2026-12-04T00:00:01.000Z");
        assert!(store.find_by_cid("u:ann", "b").unwrap().is_none());
    }

    #[test]
    fn pages_go_both_ways_within_their_bounds_and_skip_pruned_bodies() {
        let store = store();
        fill(&store, 10);
        let forward = SeqRange {
            after: 2,
            before: 9,
            direction: Direction::Forward,
            fetch_limit: 3,
        };
        assert_eq!(seqs(&store.page(&forward).unwrap()), [3, 4, 5]);
        let backward = SeqRange {
            direction: Direction::Backward,
            ..forward
        };
        let page = store.page(&backward).unwrap();
        assert_eq!(seqs(&page), [8, 7, 6]);
        assert_eq!(page[0].1, "{\"seq\":8}");
        let everything = SeqRange {
            after: 0,
            before: crate::paging::SEQ_CEILING,
            direction: Direction::Forward,
            fetch_limit: 100,
        };
        assert_eq!(
            store.page(&everything).unwrap().len(),
            10,
            "the ceiling is capped, not lost"
        );
        store.prune_bodies(10, 6).unwrap();
        assert_eq!(seqs(&store.page(&forward).unwrap()), [5, 6, 7]);
        assert_eq!(store.body(4).unwrap(), None);
        assert_eq!(store.body(5).unwrap().as_deref(), Some("{\"seq\":5}"));
    }

    #[test]
    fn pruning_keeps_the_unarchived_and_the_newest_and_never_moves_back() {
        let store = store();
        fill(&store, 10);
        assert_eq!(store.oldest_kept_seq().unwrap(), Some(1));
        // Archived up to 4, keep 3: only what is archived goes.
        store.prune_bodies(4, 3).unwrap();
        assert_eq!(store.oldest_kept_seq().unwrap(), Some(5));
        // Archived up to 9, keep 3: the newest three stay.
        store.prune_bodies(9, 3).unwrap();
        assert_eq!(store.oldest_kept_seq().unwrap(), Some(8));
        store.prune_bodies(5, 3).unwrap();
        assert_eq!(store.oldest_kept_seq().unwrap(), Some(8), "never back");
        // The rows stay: their cids still refuse a repeat.
        assert!(!store.append(&message(11, "ann", Some("c2"))).unwrap());
        let unarchived = store.unarchived(0, 100).unwrap();
        assert_eq!(
            unarchived.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [8, 9, 10]
        );
        assert_eq!(
            unarchived[0],
            message(8, "ann", Some("c8")),
            "every field read back"
        );
        assert_eq!(store.unarchived(8, 1).unwrap()[0].seq, 9);
    }

    #[test]
    fn read_markers_move_archive_and_list_the_latest_first() {
        let store = store();
        assert_eq!(store.read_marker("ann").unwrap(), None);
        store.save_read(&marker("ann", 3)).unwrap();
        store.save_read(&marker("bob", 5)).unwrap();
        store.save_read(&marker("cy", 1)).unwrap();
        store.save_read(&marker("ann", 4)).unwrap();
        assert_eq!(store.read_marker("ann").unwrap(), Some(4));
        let recent = store.recent_reads(2).unwrap();
        assert_eq!(
            recent,
            [marker("ann", 4), marker("cy", 1)],
            "in the order they moved"
        );
        let pending = store.unarchived_reads(10).unwrap();
        assert_eq!(pending.len(), 3);
        // Bob's marker moves while the archive writes the others: it stays pending.
        store.save_read(&marker("bob", 6)).unwrap();
        store.mark_reads_archived(&pending).unwrap();
        assert_eq!(store.unarchived_reads(10).unwrap(), [marker("bob", 6)]);
    }

    #[test]
    fn feed_updates_are_owed_to_members_by_version() {
        let store = store();
        assert!(!store.has_members().unwrap());
        let members = |ids: &[&str]| -> Vec<Member> {
            ids.iter()
                .map(|id| Member {
                    id: id.to_string(),
                    role: (*id == "ann").then(|| "owner".to_string()),
                })
                .collect()
        };
        store.set_members(&members(&["bob", "ann"])).unwrap();
        assert!(store.has_members().unwrap());
        assert_eq!(store.members().unwrap(), members(&["ann", "bob"]));
        assert!(MachineStore::is_member(&store, "bob").unwrap());
        assert!(!MachineStore::is_member(&store, "eve").unwrap());
        store.queue_feed(None, 7).unwrap();
        store.queue_feed(Some("ann"), 9).unwrap();
        store.queue_feed(Some("eve"), 9).unwrap();
        let mut pending = store.pending_feed(10).unwrap();
        pending.sort();
        assert_eq!(pending, [("ann".to_string(), 9), ("bob".to_string(), 7)]);
        // An update sent for an older version leaves the newer one owed.
        store.feed_sent("ann", 7).unwrap();
        store.feed_sent("bob", 7).unwrap();
        assert_eq!(store.pending_feed(10).unwrap(), [("ann".to_string(), 9)]);
        // A member removed is owed nothing.
        store.set_members(&members(&["bob"])).unwrap();
        assert!(store.pending_feed(10).unwrap().is_empty());
    }

    #[test]
    fn unread_counts_what_others_sent_after_the_marker() {
        let store = store();
        for (seq, sender) in [(1, "bob"), (2, "ann"), (3, "bob"), (4, "bob"), (5, "ann")] {
            store.append(&message(seq, sender, None)).unwrap();
        }
        assert_eq!(store.unread_count("ann").unwrap(), 3);
        store.save_read(&marker("ann", 3)).unwrap();
        assert_eq!(store.unread_count("ann").unwrap(), 1);
        assert_eq!(store.unread_count("bob").unwrap(), 2);
    }

    #[test]
    fn the_first_name_given_is_the_room_s_for_good() {
        let store = store();
        assert!(store.room_name(None).is_err(), "a room never named");
        assert_eq!(store.room_name(Some("chat:1")).unwrap(), "chat:1");
        assert_eq!(store.room_name(None).unwrap(), "chat:1");
        assert_eq!(store.room_name(Some("other")).unwrap(), "chat:1");
    }

    #[test]
    fn meta_values_are_replaced() {
        let store = store();
        assert_eq!(store.meta("room").unwrap(), None);
        store.set_meta("room", "a").unwrap();
        store.set_meta("room", "b").unwrap();
        assert_eq!(store.meta("room").unwrap().as_deref(), Some("b"));
    }
}
