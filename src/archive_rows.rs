//! What one archive run of a room writes to D1 in one call, and its messages as JSON arrays
//! of rows, each inserted by one statement (`json_each`) instead of one statement per message.

use serde::Serialize;

use crate::room::{ReadMarker, StoredMessage};

/// Largest JSON text one insert statement binds (D1 takes values up to about 2 MB).
pub const MAX_ROWS_JSON_BYTES: usize = 512 * 1024;
/// A run takes messages until it holds this many ...
pub const MAX_RUN_MESSAGES: usize = 1_000;
/// ... or this many bytes of bodies (plus the last page read).
pub const MAX_RUN_BODY_BYTES: usize = 1 << 20;

/// The messages and read markers of one archive run, written to D1 in one call.
pub struct ArchiveRun {
    pub messages: Vec<StoredMessage>,
    pub reads: Vec<ReadMarker>,
}

impl ArchiveRun {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.reads.is_empty()
    }

    /// Whether `messages` reached a run's bound.
    pub fn full(messages: &[StoredMessage]) -> bool {
        messages.len() >= MAX_RUN_MESSAGES
            || messages.iter().map(|m| m.body.len()).sum::<usize>() >= MAX_RUN_BODY_BYTES
    }

    /// Whether the run stopped at a bound (of its messages, or `read_page` markers), so that
    /// more may wait that no publish has scheduled a run for.
    pub fn left_more_behind(&self, read_page: u32) -> bool {
        Self::full(&self.messages) || self.reads.len() >= read_page as usize
    }
}

/// One row as the insert reads it: `[seq, id, event, sender_key, cid, ts, body]`.
#[derive(Serialize)]
struct Row<'a>(
    u64,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a str,
    &'a str,
);

/// The messages as JSON arrays of rows, in order, each at most `max_bytes` long unless a
/// single row is longer (it then goes alone).
pub fn rows_json(messages: &[StoredMessage], max_bytes: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::from("[");
    for m in messages {
        let row = serde_json::to_string(&Row(
            m.seq,
            &m.id,
            &m.event,
            &m.sender_key,
            m.cid.as_deref(),
            &m.ts,
            &m.body,
        ))
        .expect("a row of strings and numbers serialises");
        if current.len() > 1 && current.len() + row.len() + 1 > max_bytes {
            current.push(']');
            chunks.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&row);
    }
    if current.len() > 1 {
        current.push(']');
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn message(seq: u64, body_len: usize) -> StoredMessage {
        StoredMessage {
            seq,
            id: format!("id{seq}"),
            event: "message".into(),
            sender_key: "u:ann".into(),
            cid: seq.is_multiple_of(2).then(|| format!("c{seq}")),
            ts: "2026-12-04T00:00:00.000Z".into(),
            body: format!("{{\"text\":\"{}\"}}", "x".repeat(body_len)),
        }
    }

    #[test]
    fn rows_keep_every_field_and_the_order() {
        let messages: Vec<StoredMessage> = (1..=3).map(|s| message(s, 5)).collect();
        let chunks = rows_json(&messages, MAX_ROWS_JSON_BYTES);
        assert_eq!(chunks.len(), 1);
        let rows: Value = serde_json::from_str(&chunks[0]).unwrap();
        assert_eq!(rows.as_array().unwrap().len(), 3);
        assert_eq!(rows[0][0], 1);
        assert_eq!(rows[0][4], Value::Null, "no cid");
        assert_eq!(rows[1][4], "c2");
        assert_eq!(
            rows[2][6], messages[2].body,
            "the body stays a string, byte for byte"
        );
        assert!(rows_json(&[], MAX_ROWS_JSON_BYTES).is_empty());
    }

    #[test]
    fn a_run_is_bounded_in_messages_and_bytes() {
        let small: Vec<StoredMessage> = (1..=999).map(|s| message(s, 10)).collect();
        assert!(!ArchiveRun::full(&small));
        let run = ArchiveRun {
            messages: small,
            reads: Vec::new(),
        };
        assert!(!run.left_more_behind(100));
        assert!(!run.is_empty());
        let thousand: Vec<StoredMessage> = (1..=1_000).map(|s| message(s, 10)).collect();
        assert!(ArchiveRun::full(&thousand));
        let large: Vec<StoredMessage> = (1..=20).map(|s| message(s, 60_000)).collect();
        assert!(ArchiveRun::full(&large), "1.2 MB of bodies");
        let empty = ArchiveRun {
            messages: Vec::new(),
            reads: Vec::new(),
        };
        assert!(empty.is_empty() && !empty.left_more_behind(100));
    }

    #[test]
    fn chunks_stay_under_the_bound() {
        let messages: Vec<StoredMessage> = (1..=100).map(|s| message(s, 1_000)).collect();
        let chunks = rows_json(&messages, 10_000);
        assert!(chunks.len() > 1);
        let mut seqs = Vec::new();
        for chunk in &chunks {
            assert!(chunk.len() <= 10_000, "{}", chunk.len());
            let rows: Vec<Value> = serde_json::from_str(chunk).unwrap();
            seqs.extend(rows.iter().map(|r| r[0].as_u64().unwrap()));
        }
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
        // A row larger than the bound goes alone.
        let big = rows_json(
            &[message(1, 50), message(2, 20_000), message(3, 50)],
            10_000,
        );
        assert_eq!(big.len(), 3);
    }
}
