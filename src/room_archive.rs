//! The room's archive runs: what one run writes to D1, read from the room's storage, and the
//! bookkeeping after it succeeded (what is archived, what may be pruned) or failed (backoff).
//!
//! Every D1 call and every commit costs the isolate a disk flush (see bench/README.md), so a
//! run is one D1 call and one commit: messages published while it waits for D1 are written by
//! the next run, which their publishes scheduled; a run continues at once only when its bound
//! left messages behind.

use crate::archive_rows::ArchiveRun;
use crate::error::RelayResult;
use crate::room::{Stamps, StoredMessage};
use crate::room_machine::{Effect, RoomMachine};
use crate::room_sql::SqlRoomStore;
use crate::sql::Sql;

/// Meta keys of the archive's bookkeeping in the room's storage.
const META_ARCHIVED: &str = "archived_seq";
const META_FAILURES: &str = "archive_failures";
/// When the archive may next try D1 after a failure (ms since the epoch; 0 when not failing).
const META_RETRY_AT: &str = "archive_retry_at";
/// Rows read from the room's storage at a time, and read markers written per run.
const PAGE: u32 = 100;

/// A run on its way to D1: the room's name, where it starts, and its rows.
pub struct PendingRun {
    pub room: String,
    /// The last seq archived before this run.
    after: u64,
    pub rows: ArchiveRun,
}

/// When a failing archive may next try D1, as kept in storage across wakes.
pub fn retry_at<E: Sql>(store: &SqlRoomStore<E>) -> RelayResult<Option<i64>> {
    Ok(meta_number(store, META_RETRY_AT)?.filter(|at| *at > 0))
}

fn meta_number<E: Sql, T: std::str::FromStr>(
    store: &SqlRoomStore<E>,
    key: &str,
) -> RelayResult<Option<T>> {
    Ok(store.meta(key)?.and_then(|v| v.parse().ok()))
}

impl<E: Sql, C: Stamps> RoomMachine<SqlRoomStore<E>, C> {
    /// The next run from the alarm: `None` when D1 is being left alone after failures (the
    /// alarm is then set for the retry) or when nothing waits.
    pub fn next_archive_run(&mut self, out: &mut Vec<Effect>) -> RelayResult<Option<PendingRun>> {
        if !self.archive_may_write(out) {
            return Ok(None);
        }
        let store = self.core().store();
        let after = meta_number(store, META_ARCHIVED)?.unwrap_or(0);
        let rows = ArchiveRun {
            messages: unarchived_run(store, after)?,
            reads: store.unarchived_reads(PAGE)?,
        };
        if rows.is_empty() {
            return Ok(None);
        }
        let room = self.core().room().to_string();
        Ok(Some(PendingRun { room, after, rows }))
    }

    /// Records how a run's D1 write ended, in one commit: on success what is archived now
    /// (bodies past the hot window may go) and, when the run stopped at its bound, another
    /// run at once; on failure the next attempt after a backoff.
    pub fn archive_run_ended(
        &mut self,
        run: &PendingRun,
        written: bool,
        out: &mut Vec<Effect>,
    ) -> RelayResult<()> {
        if !written {
            let failures = meta_number::<E, u32>(self.core().store(), META_FAILURES)?
                .unwrap_or(0)
                .saturating_add(1);
            let retry_at = self.archive_failed(failures, out);
            let store = self.core().store();
            store.set_meta(META_FAILURES, &failures.to_string())?;
            return store.set_meta(META_RETRY_AT, &retry_at.to_string());
        }
        let archived = run.rows.messages.last().map_or(run.after, |m| m.seq);
        let recovered = self.archive_succeeded();
        let hot_window = self.limits().hot_window;
        let store = self.core().store();
        store.set_meta(META_ARCHIVED, &archived.to_string())?;
        if recovered {
            store.set_meta(META_RETRY_AT, "0")?;
        }
        store.set_meta(META_FAILURES, "0")?;
        store.mark_reads_archived(&run.rows.reads)?;
        store.prune_bodies(archived, hot_window)?;
        if run.rows.left_more_behind(PAGE) {
            self.archive_continues(out);
        }
        Ok(())
    }
}

/// The messages one run writes: pages after `archived` until one comes back short or the
/// run's bound ([`ArchiveRun::full`]) is reached.
fn unarchived_run<E: Sql>(
    store: &SqlRoomStore<E>,
    archived: u64,
) -> RelayResult<Vec<StoredMessage>> {
    let mut messages: Vec<StoredMessage> = Vec::new();
    loop {
        let after = messages.last().map_or(archived, |m| m.seq);
        let page = store.unarchived(after, PAGE)?;
        let short = page.len() < PAGE as usize;
        messages.extend(page);
        if short || ArchiveRun::full(&messages) {
            return Ok(messages);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;
    use crate::archive_rows::MAX_RUN_MESSAGES;
    use crate::archive_schedule::backoff_ms;
    use crate::auth::User;
    use crate::config::Limits;
    use crate::room::{ReadMarker, RoomStore};
    use crate::room_test_support::{machine_over, test_store, SqlMachine};

    const T0: i64 = 1_700_000_000_000;

    /// A machine over a room whose storage holds messages 1..=`messages`.
    fn machine(messages: u64) -> (SqlMachine, Rc<Cell<i64>>) {
        let store = test_store();
        for seq in 1..=messages {
            let message = StoredMessage {
                seq,
                id: format!("id{seq}"),
                event: "message".into(),
                sender_key: "u:ann".into(),
                cid: Some(format!("c{seq}")),
                ts: "2026-12-04T00:00:00.000Z".into(),
                body: format!("{{\"seq\":{seq}}}"),
            };
            assert!(store.append(&message).unwrap());
        }
        let limits = Limits::from_vars(|name| (name == "ROOM_HOT_WINDOW").then(|| "100".into()));
        machine_over(store, "chat:1", T0, limits)
    }

    fn seqs(run: &PendingRun) -> Vec<u64> {
        run.rows.messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn a_run_takes_what_is_unarchived_and_its_success_prunes_past_the_hot_window() {
        let (mut m, _) = machine(250);
        let marker = ReadMarker {
            user: User {
                id: "bob".into(),
                name: None,
                role: None,
            },
            seq: 7,
            at: "2026-12-04T00:00:00.000Z".into(),
        };
        m.core().store().save_read(&marker).unwrap();
        let mut out = Vec::new();
        let run = m.next_archive_run(&mut out).unwrap().expect("a run");
        assert_eq!(run.room, "chat:1");
        assert_eq!(seqs(&run), (1..=250).collect::<Vec<_>>());
        assert_eq!(run.rows.reads.len(), 1);
        m.archive_run_ended(&run, true, &mut out).unwrap();
        assert!(
            out.is_empty(),
            "a run under its bound asks for no other: {out:?}"
        );
        let store = m.core().store();
        assert_eq!(
            store.body(150).unwrap(),
            None,
            "archived and past the window"
        );
        assert!(store.body(151).unwrap().is_some(), "within the hot window");
        assert!(m.next_archive_run(&mut out).unwrap().is_none());
    }

    #[test]
    fn a_run_at_its_bound_runs_again_at_once_and_the_next_starts_after_it() {
        let total = MAX_RUN_MESSAGES as u64 + 20;
        let (mut m, _) = machine(total);
        let mut out = Vec::new();
        let first = m.next_archive_run(&mut out).unwrap().unwrap();
        assert_eq!(first.rows.messages.len(), MAX_RUN_MESSAGES);
        m.archive_run_ended(&first, true, &mut out).unwrap();
        assert_eq!(out, [Effect::SetAlarm(T0)]);
        let second = m.next_archive_run(&mut out).unwrap().unwrap();
        assert_eq!(
            seqs(&second),
            (MAX_RUN_MESSAGES as u64 + 1..=total).collect::<Vec<_>>()
        );
    }

    #[test]
    fn failures_back_off_and_a_success_clears_them() {
        let (mut m, clock) = machine(3);
        let mut out = Vec::new();
        let run = m.next_archive_run(&mut out).unwrap().unwrap();
        m.archive_run_ended(&run, false, &mut out).unwrap();
        m.archive_run_ended(&run, false, &mut out).unwrap();
        let second_retry = T0 + backoff_ms(2) as i64;
        assert_eq!(retry_at(m.core().store()).unwrap(), Some(second_retry));
        // Kept in storage, where a woken room reads it (`retry_at`); an alarm before then
        // leaves D1 alone and sets itself for the retry.
        out.clear();
        m.on_alarm(&mut out);
        assert!(m.next_archive_run(&mut out).unwrap().is_none());
        assert_eq!(out, [Effect::SetAlarm(second_retry)]);
        clock.set(second_retry);
        let retried = m.next_archive_run(&mut out).unwrap().unwrap();
        assert_eq!(
            seqs(&retried),
            [1, 2, 3],
            "nothing was archived by a failure"
        );
        m.archive_run_ended(&retried, true, &mut out).unwrap();
        assert_eq!(retry_at(m.core().store()).unwrap(), None);
        assert_eq!(
            meta_number::<_, u32>(m.core().store(), META_FAILURES).unwrap(),
            Some(0)
        );
    }
}
