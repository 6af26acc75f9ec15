//! The room's outbox of outgoing events (see [`crate::events`]): a table in its SQLite, written
//! in the same commit as what the event tells (a message, a read marker), read in batches by
//! the alarm, emptied up to a batch once the backend has it.
//!
//! Positions (`n`) only grow, also across an emptied outbox (the last settled one is kept in
//! meta), so that word about an old batch can never settle newer events.

use serde::Deserialize;

use crate::error::{RelayError, RelayResult};
use crate::events::InFlight;
use crate::room_sql::SqlRoomStore;
use crate::sql::{Sql, SqlValue};

/// Meta keys: the last settled position, and the batch in the queue (JSON [`InFlight`]).
const SETTLED: &str = "events_settled";
const IN_FLIGHT: &str = "events_in_flight";

#[derive(Deserialize)]
struct EventRow {
    n: u64,
    event: String,
}

#[derive(Deserialize)]
struct CountRow {
    n: u64,
}

impl<E: Sql> SqlRoomStore<E> {
    /// Appends an event after the last one (or after the last settled one when empty).
    pub fn record_event(&self, event: &str) -> RelayResult<()> {
        self.execute(
            "INSERT INTO events_outbox (n, event)
             SELECT COALESCE(MAX(n), (SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?), 0) + 1, ?
             FROM events_outbox",
            &[SETTLED.into(), event.into()],
        )
    }

    pub fn event_count(&self) -> RelayResult<u64> {
        let rows: Vec<CountRow> = self.query("SELECT COUNT(*) AS n FROM events_outbox", &[])?;
        Ok(rows.into_iter().next().map_or(0, |r| r.n))
    }

    /// The oldest `limit` events with their positions.
    pub fn pending_events(&self, limit: usize) -> RelayResult<Vec<(u64, String)>> {
        let rows: Vec<EventRow> = self.query(
            "SELECT n, event FROM events_outbox ORDER BY n LIMIT ?",
            &[SqlValue::Integer(limit as i64)],
        )?;
        Ok(rows.into_iter().map(|r| (r.n, r.event)).collect())
    }

    pub fn events_in_flight(&self) -> RelayResult<Option<InFlight>> {
        Ok(self
            .meta(IN_FLIGHT)?
            .and_then(|json| serde_json::from_str(&json).ok()))
    }

    pub fn set_events_in_flight(&self, in_flight: &InFlight) -> RelayResult<()> {
        let json = serde_json::to_string(in_flight).map_err(|_| RelayError::internal())?;
        self.set_meta(IN_FLIGHT, &json)
    }

    /// The batch in flight is done with (delivered or dead-lettered): its events leave the
    /// outbox and the next batch may go.
    pub fn settle_events(&self, up_to: u64) -> RelayResult<()> {
        self.execute(
            "DELETE FROM events_outbox WHERE n <= ?",
            &[SqlValue::Integer(up_to as i64)],
        )?;
        let settled = self
            .meta(SETTLED)?
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        self.set_meta(SETTLED, &settled.max(up_to).to_string())?;
        self.execute("DELETE FROM meta WHERE key = ?", &[IN_FLIGHT.into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> SqlRoomStore<rusqlite::Connection> {
        SqlRoomStore::open(crate::sql::in_memory()).unwrap()
    }

    #[test]
    fn events_keep_their_order_and_positions_never_repeat() {
        let store = store();
        assert_eq!(store.event_count().unwrap(), 0);
        for event in ["a", "b", "c"] {
            store.record_event(&format!(r#""{event}""#)).unwrap();
        }
        assert_eq!(store.event_count().unwrap(), 3);
        assert_eq!(
            store.pending_events(2).unwrap(),
            vec![(1, r#""a""#.to_string()), (2, r#""b""#.to_string())]
        );
        let in_flight = InFlight {
            batch: "b1".into(),
            up_to: 2,
            resend_at: 99,
        };
        store.set_events_in_flight(&in_flight).unwrap();
        assert_eq!(store.events_in_flight().unwrap(), Some(in_flight));

        store.settle_events(2).unwrap();
        assert_eq!(store.events_in_flight().unwrap(), None);
        assert_eq!(
            store.pending_events(10).unwrap(),
            vec![(3, r#""c""#.to_string())]
        );

        // Emptied, the outbox still counts on from the last settled position.
        store.settle_events(3).unwrap();
        assert_eq!(store.event_count().unwrap(), 0);
        store.record_event(r#""d""#).unwrap();
        assert_eq!(
            store.pending_events(10).unwrap(),
            vec![(4, r#""d""#.to_string())]
        );
        // Word about an older batch settles nothing newer.
        store.settle_events(2).unwrap();
        assert_eq!(store.event_count().unwrap(), 1);
    }
}
