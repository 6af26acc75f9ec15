//! The stats directory in shards: which of the [`DIRECTORY_SHARDS`] directory objects keeps a
//! room's reports, an isolate's batch split per shard, and the shards' answers merged into the
//! one answer of the stats routes.
//!
//! One directory object for a whole deployment is a hot spot: every isolate that opens rooms
//! calls it. With K shards, chosen by a hash of the room name that never changes between
//! versions, a room always reports to the same shard, each shard sees about 1/K of the calls,
//! and a stats route asks all K at once (a fixed, small fan-out).

use serde::Deserialize;

use crate::error::{RelayError, RelayResult};
use crate::stats::{self, RoomReport};

/// How many directory objects share the rooms' reports. Changing it moves rooms to other
/// shards: their old reports stay behind until they report again (within a second of any
/// connect, leave or new message).
pub const DIRECTORY_SHARDS: usize = 16;

/// The shard that keeps a room's reports: FNV-1a (64 bits) of the room name's UTF-8 bytes,
/// modulo [`DIRECTORY_SHARDS`]. Fixed here rather than `std`'s hasher, whose output may change
/// between Rust versions (and with it every room's shard).
pub fn shard_of(room: &str) -> usize {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let hash = room.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    (hash % DIRECTORY_SHARDS as u64) as usize
}

/// The name of a shard's directory object.
pub fn shard_name(shard: usize) -> String {
    format!("directory-{shard}")
}

/// An isolate's batch split into one batch per shard (shards without reports left out), in
/// shard order.
pub fn split_by_shard(reports: Vec<RoomReport>) -> Vec<(usize, Vec<RoomReport>)> {
    let mut per_shard: Vec<Vec<RoomReport>> = vec![Vec::new(); DIRECTORY_SHARDS];
    for report in reports {
        per_shard[shard_of(&report.room)].push(report);
    }
    per_shard
        .into_iter()
        .enumerate()
        .filter(|(_, batch)| !batch.is_empty())
        .collect()
}

/// The shards' `{"connections","rooms"}` answers added up.
pub fn merge_totals(answers: &[String]) -> RelayResult<String> {
    #[derive(Deserialize)]
    struct Totals {
        connections: u64,
        rooms: u64,
    }
    let (mut connections, mut rooms) = (0u64, 0u64);
    for answer in answers {
        let totals: Totals = serde_json::from_str(answer).map_err(|_| RelayError::internal())?;
        connections = connections.saturating_add(totals.connections);
        rooms = rooms.saturating_add(totals.rooms);
    }
    Ok(serde_json::json!({"connections": connections, "rooms": rooms}).to_string())
}

/// The shards' `{"rooms":[…]}` listings as one, busiest first, at most
/// [`stats::MAX_LISTED_ROOMS`] rooms (a room lives in one shard, so none repeats).
pub fn merge_rooms(answers: &[String]) -> RelayResult<String> {
    #[derive(Deserialize)]
    struct Listing {
        rooms: Vec<RoomReport>,
    }
    let mut reports = Vec::new();
    for answer in answers {
        let listing: Listing = serde_json::from_str(answer).map_err(|_| RelayError::internal())?;
        reports.extend(listing.rooms);
    }
    Ok(stats::rooms_json(&reports))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(room: &str, connections: u64) -> RoomReport {
        RoomReport {
            room: room.into(),
            connections,
            users: connections,
            last_seq: 7,
        }
    }

    #[test]
    fn a_room_always_has_the_same_shard_and_rooms_spread_over_all_of_them() {
        // Pinned values: a change of the hash would move every room to another shard.
        assert_eq!(shard_of(""), 0xcbf2_9ce4_8422_2325 % 16);
        assert_eq!(shard_of("a"), 0xaf63_dc4c_8601_ec8c % 16);
        assert_eq!(shard_of("chat:1"), shard_of("chat:1"));
        let mut used = [0usize; DIRECTORY_SHARDS];
        for i in 0..1_600 {
            used[shard_of(&format!("room:{i}"))] += 1;
        }
        assert!(
            used.iter().all(|n| (50..=150).contains(n)),
            "roughly even: {used:?}"
        );
        assert_eq!(shard_name(3), "directory-3");
    }

    #[test]
    fn a_batch_is_split_per_shard_without_losing_or_moving_a_report() {
        let reports: Vec<RoomReport> = (0..100).map(|i| report(&format!("r{i}"), i)).collect();
        let split = split_by_shard(reports.clone());
        assert!(split.len() > 1 && split.len() <= DIRECTORY_SHARDS);
        assert!(split.windows(2).all(|w| w[0].0 < w[1].0), "in shard order");
        let mut rejoined = Vec::new();
        for (shard, batch) in split {
            assert!(!batch.is_empty());
            assert!(batch.iter().all(|r| shard_of(&r.room) == shard));
            rejoined.extend(batch);
        }
        rejoined.sort_by_key(|r| r.connections);
        assert_eq!(rejoined, reports);
        assert!(split_by_shard(Vec::new()).is_empty());
    }

    #[test]
    fn totals_add_up_over_the_shards() {
        let answers = [
            stats::totals_json(&[report("a", 2), report("b", 0)]),
            stats::totals_json(&[]),
            stats::totals_json(&[report("c", 5), report("d", 1)]),
        ];
        let merged: serde_json::Value =
            serde_json::from_str(&merge_totals(&answers).unwrap()).unwrap();
        assert_eq!(merged, serde_json::json!({"connections": 8, "rooms": 3}));
        assert_eq!(merge_totals(&[]).unwrap(), r#"{"connections":0,"rooms":0}"#);
        assert!(merge_totals(&["not json".into()]).is_err());
    }

    #[test]
    fn listings_merge_busiest_first_and_stay_bounded() {
        let answers = [
            stats::rooms_json(&[report("a", 2), report("b", 9)]),
            stats::rooms_json(&[report("c", 5), report("empty", 0)]),
        ];
        let merged = merge_rooms(&answers).unwrap();
        assert_eq!(stats::active_rooms(&merged).unwrap(), ["b", "c", "a"]);
        let listing: serde_json::Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(
            listing["rooms"][0],
            serde_json::json!({"room": "b", "connections": 9, "users": 9, "last_seq": 7})
        );
        let many: Vec<String> = (0..3)
            .map(|shard| {
                let reports: Vec<RoomReport> = (0..stats::MAX_LISTED_ROOMS)
                    .map(|i| report(&format!("s{shard}-{i}"), i as u64 + 1))
                    .collect();
                stats::rooms_json(&reports)
            })
            .collect();
        let merged = merge_rooms(&many).unwrap();
        assert_eq!(
            stats::active_rooms(&merged).unwrap().len(),
            stats::MAX_LISTED_ROOMS
        );
        assert!(merge_rooms(&["{}".into()]).is_err());
    }
}
