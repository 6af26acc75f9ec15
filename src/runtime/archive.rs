//! The D1 archive: every room's messages written behind in batches, and read for history and resume.

use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

use crate::archive_rows::{self, ArchiveRun};
use crate::edits::{self, Applied};
use crate::error::{RelayError, RelayResult};
use crate::paging::{Direction, SeqRange};

/// Inserts the rows of one JSON array (see [`archive_rows`]); `WHERE true` tells SQLite's parser
/// that `ON CONFLICT` belongs to the insert, not to a join.
const INSERT_ROWS: &str = "INSERT INTO messages (room, seq, id, event, sender_key, cid, ts, body)
    SELECT ?1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
           json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),
           json_extract(value, '$[6]')
    FROM json_each(?2) WHERE true ON CONFLICT (room, seq) DO NOTHING";

fn archive_error(context: &'static str) -> impl Fn(worker::Error) -> RelayError {
    move |err| {
        worker::console_error!("archive failure in {context}: {err}");
        RelayError::internal()
    }
}

const UPSERT_READ: &str = "INSERT INTO read_state (room, user_id, seq, read_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (room, user_id) DO UPDATE SET seq = excluded.seq, read_at = excluded.read_at
    WHERE excluded.seq > read_state.seq";

/// Rewrites an archived message to its version after an edit (see [`edits::edited_body`]).
fn edit_statement() -> String {
    format!(
        "UPDATE messages SET body = {} WHERE room = ? AND seq = ?",
        edits::edited_body("body")
    )
}

/// Rewrites an archived message to its version after a delete.
fn delete_statement() -> String {
    format!(
        "UPDATE messages SET body = {} WHERE room = ? AND seq = ?",
        edits::deleted_body("body")
    )
}

#[derive(Deserialize)]
struct BodyRow {
    seq: u64,
    body: String,
}

pub struct Archive {
    db: D1Database,
}

impl Archive {
    pub fn new(db: D1Database) -> Self {
        Archive { db }
    }

    /// Writes a run's messages and read markers in one round trip (one D1 transaction): one
    /// statement per chunk of rows (a statement per message cost a crossing per value here
    /// and a statement each in D1), one per marker. Rows already present are left as they
    /// are; a marker never moves backwards, whatever order runs land in.
    pub async fn write(&self, room: &str, run: &ArchiveRun) -> RelayResult<()> {
        let rows = archive_rows::rows_json(&run.messages, archive_rows::MAX_ROWS_JSON_BYTES);
        let inserts = rows.iter().map(|rows| {
            self.db
                .prepare(INSERT_ROWS)
                .bind(&[JsValue::from_str(room), JsValue::from_str(rows)])
        });
        // After the inserts: a change's message is in D1 by then (written in an earlier run,
        // or in this one, which goes in seq order).
        let changes = run.messages.iter().filter_map(Applied::of).map(|change| {
            let room = JsValue::from_str(room);
            let ref_seq = JsValue::from_f64(change.ref_seq as f64);
            let at = JsValue::from_str(&change.at);
            match &change.data {
                Some(data) => self.db.prepare(edit_statement()).bind(&[
                    JsValue::from_str(data),
                    at,
                    room,
                    ref_seq,
                ]),
                None => self
                    .db
                    .prepare(delete_statement())
                    .bind(&[at, room, ref_seq]),
            }
        });
        let reads = run.reads.iter().map(|m| {
            self.db.prepare(UPSERT_READ).bind(&[
                JsValue::from_str(room),
                JsValue::from_str(&m.user.id),
                JsValue::from_f64(m.seq as f64),
                JsValue::from_str(&m.at),
            ])
        });
        let statements = inserts
            .chain(changes)
            .chain(reads)
            .collect::<Result<Vec<D1PreparedStatement>, _>>()
            .map_err(archive_error("bind"))?;
        let results = self
            .db
            .batch(statements)
            .await
            .map_err(archive_error("batch"))?;
        if results.iter().all(|r| r.success()) {
            Ok(())
        } else {
            worker::console_error!("archive batch reported a failed statement");
            Err(RelayError::internal())
        }
    }

    /// The rows of `range` for `room`, fetched like a room's own store does.
    pub async fn page(&self, room: &str, range: &SeqRange) -> RelayResult<Vec<(u64, String)>> {
        let statement = match range.direction {
            Direction::Forward => {
                "SELECT seq, body FROM messages WHERE room = ? AND seq > ? AND seq < ? ORDER BY seq ASC LIMIT ?"
            }
            Direction::Backward => {
                "SELECT seq, body FROM messages WHERE room = ? AND seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?"
            }
        };
        let rows: Vec<BodyRow> = self
            .db
            .prepare(statement)
            .bind(&[
                JsValue::from_str(room),
                JsValue::from_f64(range.after as f64),
                JsValue::from_f64(range.before as f64),
                JsValue::from_f64(f64::from(range.fetch_limit)),
            ])
            .map_err(archive_error("bind"))?
            .all()
            .await
            .map_err(archive_error("page"))?
            .results()
            .map_err(archive_error("decode"))?;
        Ok(rows.into_iter().map(|row| (row.seq, row.body)).collect())
    }
}
