//! Connection statistics: what rooms report to the directory, how the rooms of one isolate
//! send their reports together, how a directory shard keeps them, and the stats routes'
//! answers (merged over the shards by [`crate::directory_shards`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{RelayError, RelayResult};
use crate::sql::{Sql, SqlValue};

/// A room's counts as it last reported them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomReport {
    pub room: String,
    pub connections: u64,
    pub users: u64,
    pub last_seq: u64,
}

/// Minimum spacing of an isolate's report batches; a report that would come sooner waits.
pub const REPORT_INTERVAL_MS: i64 = 1_000;
/// Rooms whose reports one batch carries at most; a fuller queue is sent at once.
pub const MAX_BATCH_REPORTS: usize = 1_000;
/// A send scheduled this long ago that has not happened (its timer died with the object that
/// set it) no longer stops a new one from being scheduled.
const STALE_SCHEDULE_MS: i64 = 5 * REPORT_INTERVAL_MS;

/// The reports of the rooms of one isolate, waiting to go to the directory together: the newest
/// report of a room replaces an older one, and the isolate sends at most one batch per
/// interval (a busy isolate then makes one directory call a second, not one per room).
#[derive(Debug, Default)]
pub struct ReportQueue {
    pending: HashMap<String, RoomReport>,
    last_sent_ms: Option<i64>,
    /// When a send was scheduled, while one waits.
    scheduled_at_ms: Option<i64>,
}

impl ReportQueue {
    /// Queues a room's report; when no send waits, the delay after which one must be made.
    /// The first batch waits an interval too: a room filling up (a connect storm) then
    /// reports once, not per connection.
    pub fn push(&mut self, report: RoomReport, now_ms: i64) -> Option<i64> {
        self.pending.insert(report.room.clone(), report);
        self.schedule(now_ms)
    }

    /// Everything queued, for one batch; the next batch waits an interval from now.
    pub fn take(&mut self, now_ms: i64) -> Vec<RoomReport> {
        self.scheduled_at_ms = None;
        self.last_sent_ms = Some(now_ms);
        self.pending.drain().map(|(_, report)| report).collect()
    }

    /// A batch that could not be sent: its reports are queued again unless a newer one of the
    /// same room came meanwhile; the delay of the retry, as for [`ReportQueue::push`].
    pub fn put_back(&mut self, reports: Vec<RoomReport>, now_ms: i64) -> Option<i64> {
        for report in reports {
            self.pending.entry(report.room.clone()).or_insert(report);
        }
        self.schedule(now_ms)
    }

    fn schedule(&mut self, now_ms: i64) -> Option<i64> {
        if self.pending.is_empty() {
            return None;
        }
        let full = self.pending.len() >= MAX_BATCH_REPORTS;
        let waiting = self
            .scheduled_at_ms
            .is_some_and(|at| now_ms.saturating_sub(at) < STALE_SCHEDULE_MS);
        if waiting && !full {
            return None;
        }
        self.scheduled_at_ms = Some(now_ms);
        if full {
            return Some(0);
        }
        let earliest = self.last_sent_ms.unwrap_or(now_ms) + REPORT_INTERVAL_MS;
        Some(earliest.max(now_ms) - now_ms)
    }
}

/// `{"connections","rooms"}`: rooms with at least one connection.
pub fn totals_json(reports: &[RoomReport]) -> String {
    let connections: u64 = reports.iter().map(|r| r.connections).sum();
    let rooms = reports.iter().filter(|r| r.connections > 0).count();
    serde_json::json!({"connections": connections, "rooms": rooms}).to_string()
}

/// `{"rooms":[{"room","connections","users","last_seq"}]}`, busiest first, at most
/// [`MAX_LISTED_ROOMS`].
pub fn rooms_json(reports: &[RoomReport]) -> String {
    let mut rooms: Vec<&RoomReport> = reports.iter().filter(|r| r.connections > 0).collect();
    rooms.sort_by(|a, b| {
        b.connections
            .cmp(&a.connections)
            .then_with(|| a.room.cmp(&b.room))
    });
    rooms.truncate(MAX_LISTED_ROOMS);
    serde_json::json!({ "rooms": rooms }).to_string()
}

/// The room names of a [`rooms_json`] listing.
pub fn active_rooms(listing: &str) -> RelayResult<Vec<String>> {
    #[derive(Deserialize)]
    struct Listing {
        rooms: Vec<Listed>,
    }
    #[derive(Deserialize)]
    struct Listed {
        room: String,
    }
    let listing: Listing = serde_json::from_str(listing).map_err(|_| RelayError::internal())?;
    Ok(listing
        .rooms
        .into_iter()
        .map(|listed| listed.room)
        .collect())
}

/// Most rooms a stats answer lists (and a directory shard reads).
pub const MAX_LISTED_ROOMS: usize = 10_000;

/// The directory's table of the rooms' latest reports, over any SQLite.
pub struct DirectoryStore<E> {
    sql: E,
}

impl<E: Sql> DirectoryStore<E> {
    pub fn open(sql: E) -> RelayResult<Self> {
        sql.write(
            "CREATE TABLE IF NOT EXISTS rooms (room TEXT PRIMARY KEY, connections INTEGER NOT NULL,
             users INTEGER NOT NULL, last_seq INTEGER NOT NULL)",
            &[],
        )?;
        Ok(DirectoryStore { sql })
    }

    /// Keeps a room's latest report; a room without connections drops out.
    pub fn keep(&self, report: &RoomReport) -> RelayResult<()> {
        let room = SqlValue::Text(&report.room);
        let count = |n: u64| SqlValue::Integer(i64::try_from(n).unwrap_or(i64::MAX));
        if report.connections == 0 {
            self.sql
                .write("DELETE FROM rooms WHERE room = ?", &[room])?;
        } else {
            self.sql.write(
                "INSERT INTO rooms (room, connections, users, last_seq) VALUES (?, ?, ?, ?)
                 ON CONFLICT (room) DO UPDATE SET connections = excluded.connections,
                 users = excluded.users, last_seq = excluded.last_seq",
                &[
                    room,
                    count(report.connections),
                    count(report.users),
                    count(report.last_seq),
                ],
            )?;
        }
        Ok(())
    }

    /// The kept reports, at most [`MAX_LISTED_ROOMS`].
    pub fn reports(&self) -> RelayResult<Vec<RoomReport>> {
        self.sql.rows(
            "SELECT room, connections, users, last_seq FROM rooms LIMIT ?",
            &[SqlValue::Integer(MAX_LISTED_ROOMS as i64)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_isolate_sends_one_batch_per_interval_with_the_newest_report_per_room() {
        let mut queue = ReportQueue::default();
        // A storm into two rooms: one timer, after an interval, for every report.
        assert_eq!(queue.push(report("a", 1), 0), Some(REPORT_INTERVAL_MS));
        assert_eq!(queue.push(report("a", 2), 10), None);
        assert_eq!(queue.push(report("b", 1), 20), None);
        let mut batch = queue.take(1_000);
        batch.sort_by(|x, y| x.room.cmp(&y.room));
        assert_eq!(batch, vec![report("a", 2), report("b", 1)]);
        assert!(queue.take(1_000).is_empty());
        // The next report waits for the interval since the last batch.
        assert_eq!(queue.push(report("a", 0), 1_300), Some(700));
        assert_eq!(queue.push(report("c", 4), 3_000), None);
        assert_eq!(queue.take(3_000).len(), 2);
        assert_eq!(queue.push(report("a", 1), 9_000), Some(0));
    }

    #[test]
    fn a_failed_batch_is_retried_without_undoing_newer_reports() {
        let mut queue = ReportQueue::default();
        queue.push(report("a", 1), 0);
        let batch = queue.take(1_000);
        assert_eq!(queue.push(report("a", 5), 1_100), Some(900));
        assert_eq!(queue.put_back(batch, 1_200), None, "a send already waits");
        assert_eq!(queue.take(2_000), vec![report("a", 5)]);
        assert_eq!(queue.put_back(vec![report("b", 1)], 2_100), Some(900));
    }

    #[test]
    fn a_schedule_whose_timer_died_is_replaced_and_the_queue_is_bounded() {
        let mut queue = ReportQueue::default();
        assert!(queue.push(report("a", 1), 0).is_some());
        assert_eq!(queue.push(report("b", 1), 4_000), None);
        assert_eq!(
            queue.push(report("c", 1), 6_000),
            Some(1_000),
            "stale schedule"
        );
        queue.take(6_000);
        for i in 0..MAX_BATCH_REPORTS - 1 {
            queue.push(report(&format!("r{i}"), 1), 6_100);
        }
        assert_eq!(
            queue.push(report("last", 1), 6_200),
            Some(0),
            "full: send now"
        );
    }

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

    #[test]
    fn a_listing_gives_the_rooms_with_connections() {
        let listing = rooms_json(&[report("a", 2), report("b", 0), report("c", 5)]);
        assert_eq!(active_rooms(&listing).unwrap(), ["c", "a"]);
        assert!(active_rooms("{}").is_err());
    }

    #[test]
    fn the_directory_keeps_the_latest_report_of_each_room_with_connections() {
        let store = DirectoryStore::open(crate::sql::in_memory()).unwrap();
        assert!(store.reports().unwrap().is_empty());
        store.keep(&report("a", 4)).unwrap();
        store.keep(&report("b", 2)).unwrap();
        store.keep(&report("a", 6)).unwrap();
        let mut kept = store.reports().unwrap();
        kept.sort_by(|x, y| x.room.cmp(&y.room));
        assert_eq!(kept, [report("a", 6), report("b", 2)]);
        // A room whose last connection left drops out; reporting it again changes nothing.
        store.keep(&report("a", 0)).unwrap();
        store.keep(&report("a", 0)).unwrap();
        assert_eq!(store.reports().unwrap(), [report("b", 2)]);
        // Opening again keeps the table.
        let store = DirectoryStore { sql: store.sql };
        assert_eq!(store.reports().unwrap().len(), 1);
    }
}
