//! A batch of messages for the D1 archive as JSON arrays of rows, each inserted by one
//! statement (`json_each`) instead of one statement per message.

use serde::Serialize;

use crate::room::StoredMessage;

/// Largest JSON text one insert statement binds (D1 takes values up to about 2 MB).
pub const MAX_ROWS_JSON_BYTES: usize = 512 * 1024;

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
