//! Fuzz target: a request URL taken apart (`url_parts`), its query read as a history query
//! (`paging::HistoryQuery`), a page assembled from arbitrary store rows (`paging::assemble`),
//! and its path segments read as room names (`room_name`).
//!
//! Input: the URL up to the first `\n`, then rows of 8 bytes, each a seq (u64, little endian).
#![no_main]

use std::collections::BTreeSet;

use edge_relay::auth::User;
use edge_relay::paging::{self, Direction, HistoryQuery};
use edge_relay::room_api::{Caller, RoomRequest};
use edge_relay::{protocol, room_name, url_parts};
use libfuzzer_sys::fuzz_target;

/// The most rows one input hands to `assemble` (two sources of a 200 page and some).
const MAX_ROWS: usize = 1_000;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let url = String::from_utf8_lossy(&data[..split]);
    let seqs: Vec<u64> = data
        .get(split + 1..)
        .unwrap_or_default()
        .chunks_exact(8)
        .take(MAX_ROWS)
        .map(|chunk| u64::from_le_bytes(chunk.try_into().unwrap()))
        .collect();

    let path = url_parts::path(&url);
    assert!(
        path.starts_with('/') && !path.contains(['?', '#']),
        "{path:?}"
    );
    for segment in path.split('/') {
        check_room_name(segment);
    }
    let pairs = url_parts::query_pairs(&url);
    for (name, value) in &pairs {
        if name == "batch" {
            if let Ok(batch) = protocol::parse_batch_flag(value) {
                assert_eq!(batch, value == "1" || value == "true");
            }
        }
    }
    let query = HistoryQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    // Any non-negative integer is a valid seq or limit, however large (it saturates); only
    // limit=0 and what is not an integer are refused.
    let integer = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    let all_valid = pairs.iter().all(|(k, v)| match k.as_str() {
        "after" | "before" => integer(v),
        "limit" => integer(v) && v.bytes().any(|b| b != b'0'),
        _ => true,
    });
    assert!(
        !all_valid || query.is_ok(),
        "refused valid parameters: {pairs:?}"
    );
    if let Ok(query) = query {
        check_page(&query, seqs);
    }
});

/// An accepted query keeps its limit in 1..=200, survives being handed to the room (the
/// internal API's encoding and decoding), and its page holds at most `limit` rows of its range, ascending and unique: the
/// oldest of the range going forward, the newest going backward.
fn check_page(query: &HistoryQuery, seqs: Vec<u64>) {
    assert!((1..=paging::MAX_PAGE_LIMIT).contains(&query.limit));
    let caller = Caller {
        user: User {
            id: "u".into(),
            name: None,
            role: None,
        },
        exp: 0,
    };
    let request = RoomRequest::History {
        caller,
        query: *query,
    };
    let wire = request.encode().unwrap();
    let handed_on = format!("http://room{}", wire.path);
    let header = |name: &str| {
        wire.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    match RoomRequest::decode(wire.method, &handed_on, header, None) {
        Ok(RoomRequest::History { query: again, .. }) => assert_eq!(again, *query),
        other => panic!("{query:?} came back as {other:?}"),
    }

    let range = query.range();
    assert_eq!(range.fetch_limit, query.limit + 1);
    let in_range: BTreeSet<u64> = seqs
        .iter()
        .copied()
        .filter(|seq| range.after < *seq && *seq < range.before)
        .collect();
    let rows = seqs.iter().map(|seq| (*seq, seq.to_string())).collect();
    let page = paging::assemble(&range, rows);
    let limit = query.limit as usize;
    let expected: Vec<u64> = match range.direction {
        Direction::Forward => in_range.iter().copied().take(limit).collect(),
        Direction::Backward => {
            let newest: Vec<u64> = in_range.iter().rev().copied().take(limit).collect();
            newest.into_iter().rev().collect()
        }
    };
    let got: Vec<u64> = page.messages.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(got, expected, "{query:?}");
    assert_eq!(page.has_more, in_range.len() > limit);
    for (seq, body) in &page.messages {
        assert_eq!(*body, seq.to_string());
    }
    serde_json::from_str::<serde_json::Value>(&page.to_json()).unwrap();
}

/// A decoded room name round-trips through percent-encoding; an accepted one is 1..=128
/// bytes without whitespace, control characters, `/`, `?` or `#`.
fn check_room_name(segment: &str) {
    let Ok(decoded) = room_name::percent_decode(segment) else {
        assert!(room_name::from_path_segment(segment).is_err());
        return;
    };
    let encoded: String = decoded.bytes().map(|b| format!("%{b:02X}")).collect();
    if encoded.len() <= room_name::MAX_ROOM_NAME_BYTES * 3 {
        assert_eq!(room_name::percent_decode(&encoded).unwrap(), decoded);
    }
    let accepted = room_name::from_path_segment(segment);
    assert_eq!(accepted.is_ok(), room_name::validate(&decoded).is_ok());
    if let Ok(name) = accepted {
        assert_eq!(name, decoded);
        assert!((1..=room_name::MAX_ROOM_NAME_BYTES).contains(&name.len()));
        assert!(!name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#')));
    }
}
