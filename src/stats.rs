//! Connection statistics: what rooms report to the directory, and the answers of the stats routes.

use serde::{Deserialize, Serialize};

/// A room's counts as it last reported them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomReport {
    pub room: String,
    pub connections: u64,
    pub users: u64,
    pub last_seq: u64,
}

/// Minimum spacing of a room's reports; a report that would come sooner is sent when due.
pub const REPORT_INTERVAL_MS: i64 = 1_000;

/// `{"connections","rooms"}`: rooms with at least one connection.
pub fn totals_json(reports: &[RoomReport]) -> String {
    let connections: u64 = reports.iter().map(|r| r.connections).sum();
    let rooms = reports.iter().filter(|r| r.connections > 0).count();
    serde_json::json!({"connections": connections, "rooms": rooms}).to_string()
}

/// `{"rooms":[{"room","connections","users","last_seq"}]}`, busiest first.
pub fn rooms_json(reports: &[RoomReport]) -> String {
    let mut rooms: Vec<&RoomReport> = reports.iter().filter(|r| r.connections > 0).collect();
    rooms.sort_by(|a, b| {
        b.connections
            .cmp(&a.connections)
            .then_with(|| a.room.cmp(&b.room))
    });
    serde_json::json!({ "rooms": rooms }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(room: &str, connections: u64) -> RoomReport {
        RoomReport {
            room: room.into(),
            connections,
            users: connections,
            last_seq: 1,
        }
    }

    #[test]
    fn empty_rooms_drop_out() {
        let reports = vec![report("a", 2), report("b", 0), report("c", 5)];
        let totals: serde_json::Value = serde_json::from_str(&totals_json(&reports)).unwrap();
        assert_eq!(totals, serde_json::json!({"connections": 7, "rooms": 2}));
        let rooms: serde_json::Value = serde_json::from_str(&rooms_json(&reports)).unwrap();
        assert_eq!(rooms["rooms"][0]["room"], "c");
        assert_eq!(rooms["rooms"].as_array().unwrap().len(), 2);
        assert_eq!(rooms["rooms"][1]["last_seq"], 1);
    }
}
