//! The room's outgoing events batch by batch (see [`crate::events`]): at most one batch of a
//! room in the events queue at a time, so that they arrive in order; the next goes when the
//! consumer's word about it comes, or again when no word came in time (at least once).

use crate::error::RelayResult;
use crate::events::{BatchSettled, InFlight, QueuedBatch, MAX_BATCH_EVENTS};
use crate::room::Stamps;
use crate::room_machine::{Effect, RoomMachine};
use crate::room_sql::SqlRoomStore;
use crate::sql::Sql;

impl<E: Sql, C: Stamps> RoomMachine<SqlRoomStore<E>, C> {
    /// From the alarm: the batch to put on the queue now, named `batch_id`; `None` when events
    /// are off, nothing waits, or a batch is in the queue and may still be answered (the alarm
    /// is then set for when it may not).
    pub fn next_events_batch(
        &mut self,
        batch_id: String,
        out: &mut Vec<Effect>,
    ) -> RelayResult<Option<QueuedBatch>> {
        if !self.events_on() {
            return Ok(None);
        }
        let now = self.now_ms();
        let store = self.core().store();
        if let Some(in_flight) = store.events_in_flight()? {
            if in_flight.resend_at > now {
                self.events_queued(in_flight.resend_at, out);
                return Ok(None);
            }
            out.push(Effect::LogError(format!(
                "events of {} unanswered since their batch was queued: sent again",
                self.core().room()
            )));
        }
        let rows = store.pending_events(MAX_BATCH_EVENTS)?;
        Ok(QueuedBatch::from_rows(self.core().room(), batch_id, &rows))
    }

    /// The queue took `batch` (`Some(resend_after_ms)`: sent again if no word comes within
    /// that) or refused it (`None`: tried again shortly).
    pub fn events_batch_sent(
        &mut self,
        batch: &QueuedBatch,
        resend_after_ms: Option<i64>,
        out: &mut Vec<Effect>,
    ) -> RelayResult<()> {
        let Some(resend_after_ms) = resend_after_ms else {
            self.events_not_queued(out);
            return Ok(());
        };
        let in_flight = InFlight {
            batch: batch.batch.clone(),
            up_to: batch.up_to,
            resend_at: self.now_ms() + resend_after_ms,
        };
        self.core().store().set_events_in_flight(&in_flight)?;
        self.events_queued(in_flight.resend_at, out);
        Ok(())
    }

    /// The consumer is done with a batch (delivered, or dead-lettered): its events leave the
    /// outbox and the next batch goes at once. Word about any other batch changes nothing.
    pub fn events_batch_settled(
        &mut self,
        settled: &BatchSettled,
        out: &mut Vec<Effect>,
    ) -> RelayResult<()> {
        let store = self.core().store();
        let Some(in_flight) = store
            .events_in_flight()?
            .filter(|f| f.batch == settled.batch)
        else {
            return Ok(());
        };
        store.settle_events(in_flight.up_to)?;
        let remaining = store.event_count()?;
        self.events_settled(settled.dropped, remaining, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;
    use crate::config::Limits;
    use crate::events::QUEUE_RETRY_MS;
    use crate::room_test_support::{machine_over, test_store, SqlMachine};

    const T0: i64 = 1_800_000_000_000;

    /// A room with events `on` and `pending` events in its outbox.
    fn machine(on: bool, pending: usize) -> (SqlMachine, Rc<Cell<i64>>) {
        let store = test_store();
        for n in 0..pending {
            store.record_event(&format!(r#"{{"n":{n}}}"#)).unwrap();
        }
        let (m, now) = machine_over(store, "support:1", T0, Limits::from_vars(|_| None));
        (m.events(on), now)
    }

    fn logs(out: &[Effect]) -> usize {
        out.iter()
            .filter(|e| matches!(e, Effect::LogError(_)))
            .count()
    }

    #[test]
    fn a_room_without_events_or_without_pending_ones_sends_nothing() {
        let mut out = Vec::new();
        assert!(machine(false, 3)
            .0
            .next_events_batch("b".into(), &mut out)
            .unwrap()
            .is_none());
        assert!(machine(true, 0)
            .0
            .next_events_batch("b".into(), &mut out)
            .unwrap()
            .is_none());
        assert!(out.is_empty());
    }

    #[test]
    fn one_batch_at_a_time_and_the_next_when_word_about_it_comes() {
        let (mut m, _) = machine(true, MAX_BATCH_EVENTS + 5);
        let mut out = Vec::new();
        let first = m.next_events_batch("b1".into(), &mut out).unwrap().unwrap();
        assert_eq!(
            (first.batch.as_str(), first.up_to),
            ("b1", MAX_BATCH_EVENTS as u64)
        );
        assert_eq!(first.events.len(), MAX_BATCH_EVENTS);
        m.events_batch_sent(&first, Some(60_000), &mut out).unwrap();
        assert_eq!(out, [Effect::SetAlarm(T0 + 60_000)]);
        out.clear();
        m.on_alarm(&mut out);
        assert!(
            m.next_events_batch("b2".into(), &mut out)
                .unwrap()
                .is_none(),
            "b1 is in the queue"
        );
        assert_eq!(out, [Effect::SetAlarm(T0 + 60_000)]);

        out.clear();
        let stale = BatchSettled {
            batch: "b0".into(),
            dropped: false,
        };
        m.events_batch_settled(&stale, &mut out).unwrap();
        assert!(out.is_empty(), "word about another batch changes nothing");
        let settled = BatchSettled {
            batch: "b1".into(),
            dropped: false,
        };
        m.events_batch_settled(&settled, &mut out).unwrap();
        assert_eq!(out, [Effect::SetAlarm(T0)], "the rest goes at once");
        let second = m.next_events_batch("b2".into(), &mut out).unwrap().unwrap();
        assert_eq!(
            (second.events.len(), second.up_to),
            (5, MAX_BATCH_EVENTS as u64 + 5)
        );
    }

    #[test]
    fn an_unanswered_batch_goes_again_and_a_refused_one_is_retried_shortly() {
        let (mut m, now) = machine(true, 2);
        let mut out = Vec::new();
        let batch = m.next_events_batch("b1".into(), &mut out).unwrap().unwrap();
        m.events_batch_sent(&batch, Some(1_000), &mut out).unwrap();
        now.set(T0 + 1_000);
        out.clear();
        m.on_alarm(&mut out);
        let again = m.next_events_batch("b2".into(), &mut out).unwrap().unwrap();
        assert_eq!((again.up_to, logs(&out)), (2, 1), "the same events, logged");
        out.clear();
        m.events_batch_sent(&again, None, &mut out).unwrap();
        assert_eq!(out, [Effect::SetAlarm(T0 + 1_000 + QUEUE_RETRY_MS)]);
        // A dead-lettered batch leaves the outbox too, and says so in the log.
        m.events_batch_sent(&again, Some(1_000), &mut out).unwrap();
        out.clear();
        let dropped = BatchSettled {
            batch: "b2".into(),
            dropped: true,
        };
        m.events_batch_settled(&dropped, &mut out).unwrap();
        assert_eq!(logs(&out), 1);
        assert_eq!(m.core().store().event_count().unwrap(), 0);
    }
}
