//! A room's edits and deletes in its SQLite: the state of each changed message, its body
//! rewritten in place while the room keeps it, and the current version of rows that history
//! reads from the archive before the archive has the change.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::edits::{self, Applied, EditStore, Target};
use crate::error::RelayResult;
use crate::room::RoomStore;
use crate::room_sql::SqlRoomStore;
use crate::sql::{Sql, SqlValue};

#[derive(Deserialize)]
struct TargetRow {
    sender_key: String,
    event: String,
    deleted_at: Option<String>,
}

#[derive(Deserialize)]
struct ChangeRow {
    ref_seq: u64,
    edited_at: Option<String>,
    deleted_at: Option<String>,
    edit_seq: Option<u64>,
}

#[derive(Deserialize)]
struct BodyRow {
    body: String,
}

#[derive(Deserialize)]
struct RecordData<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
}

fn seq(value: u64) -> SqlValue<'static> {
    SqlValue::Integer(value.min(i64::MAX as u64) as i64)
}

impl<E: Sql> EditStore for SqlRoomStore<E> {
    fn edit_target(&self, seq_: u64) -> RelayResult<Option<Target>> {
        let rows: Vec<TargetRow> = self.query(
            "SELECT m.sender_key, m.event, c.deleted_at FROM messages m
             LEFT JOIN message_changes c ON c.ref_seq = m.seq WHERE m.seq = ?",
            &[seq(seq_)],
        )?;
        Ok(rows.into_iter().next().map(|row| Target {
            sender_key: row.sender_key,
            event: row.event,
            deleted: row.deleted_at.is_some(),
        }))
    }

    fn apply_change(&self, applied: &Applied) -> RelayResult<()> {
        match &applied.data {
            Some(data) => {
                self.execute(
                    "INSERT INTO message_changes (ref_seq, edited_at, edit_seq) VALUES (?, ?, ?)
                     ON CONFLICT (ref_seq) DO UPDATE SET edited_at = excluded.edited_at,
                     edit_seq = excluded.edit_seq",
                    &[
                        seq(applied.ref_seq),
                        applied.at.as_str().into(),
                        seq(applied.seq),
                    ],
                )?;
                self.execute(
                    &format!(
                        "UPDATE messages SET body = {} WHERE seq = ? AND body IS NOT NULL",
                        edits::edited_body("body")
                    ),
                    &[
                        data.as_str().into(),
                        applied.at.as_str().into(),
                        seq(applied.ref_seq),
                    ],
                )
            }
            None => {
                self.execute(
                    "INSERT INTO message_changes (ref_seq, deleted_at) VALUES (?, ?)
                     ON CONFLICT (ref_seq) DO UPDATE SET deleted_at = excluded.deleted_at",
                    &[seq(applied.ref_seq), applied.at.as_str().into()],
                )?;
                self.execute(
                    &format!(
                        "UPDATE messages SET body = {} WHERE seq = ? AND body IS NOT NULL",
                        edits::deleted_body("body")
                    ),
                    &[applied.at.as_str().into(), seq(applied.ref_seq)],
                )
            }
        }
    }
}

impl<E: Sql> SqlRoomStore<E> {
    /// History rows as they are now. Rows the room keeps are current already (changes rewrite
    /// them); rows from the archive get the changes whose records the archive may not have
    /// yet (it writes behind). Re-applying one it has changes nothing.
    pub fn current_versions(
        &self,
        mut rows: Vec<(u64, String)>,
    ) -> RelayResult<Vec<(u64, String)>> {
        let kept_from = self.oldest_kept_seq()?.unwrap_or(u64::MAX);
        let archived = rows.iter().map(|(s, _)| *s).filter(|s| *s < kept_from);
        let (Some(low), Some(high)) = (archived.clone().min(), archived.max()) else {
            return Ok(rows);
        };
        // Seqs are consecutive, so a page's span (and this) is bounded by its limit.
        let changes: Vec<ChangeRow> = self.query(
            "SELECT ref_seq, edited_at, deleted_at, edit_seq FROM message_changes
             WHERE ref_seq >= ? AND ref_seq <= ?",
            &[seq(low), seq(high)],
        )?;
        for change in changes {
            let Some((_, body)) = rows.iter_mut().find(|(s, _)| *s == change.ref_seq) else {
                continue;
            };
            // The record of the latest edit, while the room keeps it: the archive may lack it.
            let record = match change.edit_seq {
                Some(edit_seq) => self.body(edit_seq)?,
                None => None,
            };
            if let (Some(record), Some(edited_at)) = (record, &change.edited_at) {
                let data = serde_json::from_str::<RecordData>(&record)
                    .map_err(|_| crate::error::RelayError::internal())?
                    .data
                    .get();
                *body = self.rewritten(
                    &edits::edited_body("?"),
                    &[body.as_str().into(), data.into(), edited_at.as_str().into()],
                )?;
            }
            if let Some(deleted_at) = &change.deleted_at {
                *body = self.rewritten(
                    &edits::deleted_body("?"),
                    &[body.as_str().into(), deleted_at.as_str().into()],
                )?;
            }
        }
        Ok(rows)
    }

    /// A body rewritten by SQLite's JSON functions, as the stored ones are.
    fn rewritten(&self, expression: &str, bindings: &[SqlValue<'_>]) -> RelayResult<String> {
        let rows: Vec<BodyRow> = self.query(&format!("SELECT {expression} AS body"), bindings)?;
        rows.into_iter()
            .next()
            .map(|row| row.body)
            .ok_or_else(crate::error::RelayError::internal)
    }
}
