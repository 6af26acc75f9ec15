//! What the room keeps for `message.unread` (see [`crate::room_machine`]'s unread module): per
//! member, where their next streak of unread messages may start and which notice they have
//! not read past yet, in the room's SQLite so that a room woken from hibernation goes on.
//!
//! A member's streak is the messages by others after both their read marker and their
//! `after_seq` (the room's last seq when they were last online, or the newest message of their
//! last notice); records of edits and deletes are no messages. While `notified` (the first
//! seq of their last notice) is above their read marker, they get no new notice.

use serde::Deserialize;

use crate::edits::{DELETED_EVENT, EDITED_EVENT};
use crate::error::RelayResult;
use crate::room_sql::SqlRoomStore;
use crate::sql::{Sql, SqlValue};

/// A member whose streak has begun: its first message and when that was committed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UnreadCandidate {
    pub member_id: String,
    pub role: Option<String>,
    pub first_seq: u64,
    pub first_ts: String,
}

#[derive(Deserialize)]
struct StreakRow {
    n: u64,
    newest: Option<u64>,
}

fn seq(value: u64) -> SqlValue<'static> {
    SqlValue::Integer(value.min(i64::MAX as u64) as i64)
}

impl<E: Sql> SqlRoomStore<E> {
    /// Every member (the list holds at most [`crate::feed::MAX_MEMBERS`]) with a streak begun
    /// and no notice they have not read past, by member id.
    pub fn unread_candidates(&self) -> RelayResult<Vec<UnreadCandidate>> {
        self.query(
            "SELECT c.member_id, c.role, c.first_seq, m.ts AS first_ts FROM (
               SELECT mb.id AS member_id, mb.role AS role,
                 (SELECT x.seq FROM messages x
                  WHERE x.seq > MAX(COALESCE(r.seq, 0), COALESCE(w.after_seq, 0))
                    AND x.sender_key != ('u:' || mb.id) AND x.event NOT IN (?, ?)
                  ORDER BY x.seq LIMIT 1) AS first_seq
               FROM members mb
               LEFT JOIN reads r ON r.user_id = mb.id
               LEFT JOIN unread_watch w ON w.member_id = mb.id
               WHERE w.notified IS NULL OR COALESCE(r.seq, 0) >= w.notified
             ) c JOIN messages m ON m.seq = c.first_seq
             ORDER BY c.member_id",
            &[EDITED_EVENT.into(), DELETED_EVENT.into()],
        )
    }

    /// The member's streak from `first_seq`: how many messages, and the newest one's seq.
    pub fn unread_streak(&self, member_id: &str, first_seq: u64) -> RelayResult<(u64, u64)> {
        let sender_key = format!("u:{member_id}");
        let rows: Vec<StreakRow> = self.query(
            "SELECT COUNT(*) AS n, MAX(seq) AS newest FROM messages
             WHERE seq >= ? AND sender_key != ? AND event NOT IN (?, ?)",
            &[
                seq(first_seq),
                sender_key.as_str().into(),
                EDITED_EVENT.into(),
                DELETED_EVENT.into(),
            ],
        )?;
        let row = rows.into_iter().next();
        Ok(row.map_or((0, first_seq), |r| (r.n, r.newest.unwrap_or(first_seq))))
    }

    /// The member was told of the streak `first_seq..=newest_seq`.
    pub fn unread_notified(
        &self,
        member_id: &str,
        first_seq: u64,
        newest_seq: u64,
    ) -> RelayResult<()> {
        self.execute(
            "INSERT INTO unread_watch (member_id, after_seq, notified) VALUES (?, ?, ?)
             ON CONFLICT (member_id) DO UPDATE SET after_seq = excluded.after_seq,
               notified = excluded.notified",
            &[member_id.into(), seq(newest_seq), seq(first_seq)],
        )
    }

    /// The user was online up to the room's `last_seq`: if a member, their next streak starts
    /// after it, and their last notice is done with.
    pub fn unread_seen_online(&self, user_id: &str, last_seq: u64) -> RelayResult<()> {
        self.execute(
            "INSERT INTO unread_watch (member_id, after_seq, notified)
             SELECT id, ?, NULL FROM members WHERE id = ?
             ON CONFLICT (member_id) DO UPDATE SET after_seq = excluded.after_seq,
               notified = NULL",
            &[seq(last_seq), user_id.into()],
        )
    }
}
