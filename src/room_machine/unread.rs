//! `message.unread`: a member who is offline in the room and has left a message by others
//! unread for `UNREAD_NOTIFY_AFTER_S` gets one event per streak (the storage side is
//! [`crate::room_unread`]). Only rooms with events and members look; the room's one alarm
//! looks, at most [`MAX_UNREAD_NOTICES_PER_RUN`] notices per run.

use chrono::DateTime;

use super::{Effect, MachineStore, RoomMachine};
use crate::auth::User;
use crate::error::RelayResult;
use crate::events::UnreadStreak;
use crate::room::Stamps;
use crate::room_sql::SqlRoomStore;
use crate::room_unread::UnreadCandidate;
use crate::sql::Sql;

/// Notices one alarm run records at most (a room has up to 1 000 members); those due beyond
/// it go in the next run, at once, so that one run never writes a thousand events.
pub const MAX_UNREAD_NOTICES_PER_RUN: usize = 100;
/// When a look failed (storage), how soon the alarm looks again.
const UNREAD_RETRY_MS: i64 = 5_000;

/// When members' streaks are next looked at.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnreadCheck {
    /// Not known (a room just opened or woken): the next alarm looks.
    #[default]
    Unknown,
    /// No streak can become due before a new message.
    Idle,
    /// The earliest moment a streak becomes due.
    At(i64),
}

impl<S: MachineStore, C: Stamps> RoomMachine<S, C> {
    /// Whether the room has members, looked up once and then kept (the members API tells the
    /// machine of changes).
    fn room_has_members(&mut self) -> RelayResult<bool> {
        if let Some(known) = self.has_members {
            return Ok(known);
        }
        let has_members = self.core.store().has_members()?;
        self.has_members = Some(has_members);
        Ok(has_members)
    }

    fn watches_unread(&mut self, out: &mut Vec<Effect>) -> bool {
        if !self.events_on() {
            return false;
        }
        match self.room_has_members() {
            Ok(has_members) => has_members,
            Err(err) => {
                out.push(Effect::LogError(format!(
                    "could not look up the members: {err}"
                )));
                false
            }
        }
    }

    /// After a new message (the streak it may start) or a read (which may end a streak and
    /// leave the rest unread): a look an interval later. Costs nothing in rooms without events
    /// or members (the members lookup is kept).
    pub(super) fn schedule_unread_check(&mut self, out: &mut Vec<Effect>) {
        if !self.watches_unread(out) {
            return;
        }
        let at = self.clock.now_ms() + self.limits.unread_notify_after_ms;
        self.unread_check = match self.unread_check {
            UnreadCheck::Unknown => UnreadCheck::Unknown,
            UnreadCheck::At(earlier) => UnreadCheck::At(earlier.min(at)),
            UnreadCheck::Idle => UnreadCheck::At(at),
        };
        self.set_alarm(at, out);
    }

    /// A user came online or went offline: what they were online for is no streak, and their
    /// last notice is done with.
    pub(super) fn seen_online(&mut self, user_id: &str, out: &mut Vec<Effect>) {
        if !self.watches_unread(out) {
            return;
        }
        let last_seq = self.core.last_seq();
        if let Err(err) = self.core.store().unread_seen_online(user_id, last_seq) {
            out.push(Effect::LogError(format!(
                "could not note a member online: {err}"
            )));
        }
    }
}

impl<E: Sql, C: Stamps> RoomMachine<SqlRoomStore<E>, C> {
    /// From the alarm (with presence restored): records `message.unread` for each offline
    /// member whose streak began an interval ago, up to [`MAX_UNREAD_NOTICES_PER_RUN`], and
    /// sets the alarm for the next streak to come due.
    pub fn notify_unread(&mut self, out: &mut Vec<Effect>) -> RelayResult<()> {
        if !self.events_on() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        match self.unread_check {
            UnreadCheck::Idle => return Ok(()),
            UnreadCheck::At(at) if at > now => {
                self.set_alarm(at, out);
                return Ok(());
            }
            UnreadCheck::Unknown | UnreadCheck::At(_) => {}
        }
        let looked = self.look_at_unread(now, out);
        if looked.is_err() {
            self.set_alarm(now + UNREAD_RETRY_MS, out);
        }
        looked
    }

    fn look_at_unread(&mut self, now: i64, out: &mut Vec<Effect>) -> RelayResult<()> {
        if !self.room_has_members()? {
            self.unread_check = UnreadCheck::Idle;
            return Ok(());
        }
        let after_ms = self.limits.unread_notify_after_ms;
        let mut next_at = None::<i64>;
        let mut sent = 0;
        for candidate in self.core.store().unread_candidates()? {
            let online = self
                .presence
                .as_ref()
                .is_some_and(|p| p.is_online(&candidate.member_id));
            if online {
                // Their going offline starts them afresh (see `seen_online`).
                continue;
            }
            // A commit time that does not parse counts as due: better a notice than none.
            let due_at = DateTime::parse_from_rfc3339(&candidate.first_ts)
                .map_or(now, |ts| ts.timestamp_millis() + after_ms);
            if due_at > now {
                next_at = Some(next_at.map_or(due_at, |at| at.min(due_at)));
                continue;
            }
            if sent == MAX_UNREAD_NOTICES_PER_RUN {
                next_at = Some(now);
                break;
            }
            self.notify_member(&candidate, out)?;
            sent += 1;
        }
        self.unread_check = match next_at {
            Some(at) => {
                self.set_alarm(at, out);
                UnreadCheck::At(at)
            }
            None => UnreadCheck::Idle,
        };
        Ok(())
    }

    fn notify_member(
        &mut self,
        candidate: &UnreadCandidate,
        out: &mut Vec<Effect>,
    ) -> RelayResult<()> {
        let store = self.core.store();
        let (unread, newest_seq) =
            store.unread_streak(&candidate.member_id, candidate.first_seq)?;
        let newest_frame = store.body(newest_seq)?;
        let member = User {
            id: candidate.member_id.clone(),
            name: None,
            role: candidate.role.clone(),
        };
        let streak = UnreadStreak {
            seq: candidate.first_seq,
            unread,
            newest_frame: newest_frame.as_deref(),
        };
        self.message_unread(&member, &streak, out);
        self.core
            .store()
            .unread_notified(&candidate.member_id, candidate.first_seq, newest_seq)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;
    use crate::feed::Member;
    use crate::protocol::Publish;
    use crate::room_machine::Connection;
    use crate::room_test_support::{sql_machine, SqlMachine};

    const T0: i64 = 1_800_000_000_000;
    const AFTER_MS: i64 = crate::config::DEFAULT_UNREAD_NOTIFY_AFTER_S as i64 * 1000;

    /// A room with events whose members are `members`.
    fn room(members: &[&str]) -> (SqlMachine, Rc<Cell<i64>>) {
        let (m, now) = sql_machine("support:1", T0);
        let mut m = m.events(true);
        let members: Vec<Member> = members
            .iter()
            .map(|id| Member {
                id: id.to_string(),
                role: None,
            })
            .collect();
        m.replace_members(&members, &mut Vec::new()).unwrap();
        m.restore([]);
        (m, now)
    }

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            name: None,
            role: None,
        }
    }

    fn conn(id: &str) -> Connection {
        Connection {
            conn_id: format!("c-{id}"),
            user: user(id),
            exp: T0 / 1000 + 86_400,
            counts: false,
        }
    }

    fn publish(m: &mut SqlMachine, author: &str, text: &str) -> Vec<Effect> {
        let publish = Publish {
            cid: Some(format!("{author}-{text}")),
            event: None,
            data: serde_json::value::to_raw_value(&serde_json::json!({ "text": text })).unwrap(),
        };
        let mut out = Vec::new();
        m.publish_as_user(&user(author), &publish, &mut out)
            .unwrap();
        out
    }

    fn read(m: &mut SqlMachine, reader: &str, seq: u64) {
        let frame = format!(r#"{{"type":"read","seq":{seq}}}"#);
        m.on_frame(&conn(reader), Some(&frame), &mut Vec::new());
    }

    /// The alarm at `at`: its effects and the `message.unread` events it recorded.
    fn alarm_at(
        m: &mut SqlMachine,
        now: &Cell<i64>,
        at: i64,
    ) -> (Vec<Effect>, Vec<serde_json::Value>) {
        now.set(at);
        let before = m.core().store().event_count().unwrap() as usize;
        let mut out = Vec::new();
        m.on_alarm(&mut out);
        m.notify_unread(&mut out).unwrap();
        let events = m.core().store().pending_events(100_000).unwrap();
        let unread = events[before..]
            .iter()
            .map(|(_, e)| serde_json::from_str::<serde_json::Value>(e).unwrap())
            .filter(|e| e["type"] == "message.unread")
            .collect();
        (out, unread)
    }

    fn who(events: &[serde_json::Value]) -> Vec<&str> {
        events
            .iter()
            .map(|e| e["user"]["id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn an_offline_member_who_has_not_read_is_told_after_the_interval_only() {
        // ann writes; bob reads; carol is online; dave is away.
        let (mut m, now) = room(&["ann", "bob", "carol", "dave"]);
        m.on_connected(&conn("carol"), &mut Vec::new());
        publish(&mut m, "ann", "hello");
        read(&mut m, "bob", 1);

        let (out, early) = alarm_at(&mut m, &now, T0 + AFTER_MS - 1);
        assert!(early.is_empty(), "{early:?}");
        assert!(out.contains(&Effect::SetAlarm(T0 + AFTER_MS)), "{out:?}");

        let (_, due) = alarm_at(&mut m, &now, T0 + AFTER_MS);
        assert_eq!(who(&due), ["dave"]);
        let event = &due[0];
        assert_eq!(event["room"], "support:1");
        assert_eq!(event["seq"], 1);
        assert_eq!(event["unread"], 1);
        assert_eq!(event["message"]["seq"], 1);
        assert_eq!(event["message"]["data"]["text"], "hello");
        assert!(event["id"].is_string() && event["ts"].is_string());
    }

    #[test]
    fn one_notice_per_streak_and_another_after_a_read_and_a_new_unread_message() {
        let (mut m, now) = room(&["ann", "dave"]);
        publish(&mut m, "ann", "one");
        let (_, first) = alarm_at(&mut m, &now, T0 + AFTER_MS);
        assert_eq!(who(&first), ["dave"]);

        // More left unread is the same streak: no other notice, however long.
        publish(&mut m, "ann", "two");
        let (out, same_streak) = alarm_at(&mut m, &now, T0 + 3 * AFTER_MS);
        assert!(same_streak.is_empty(), "{same_streak:?}");
        assert!(
            !out.iter().any(|e| matches!(e, Effect::SetAlarm(_))),
            "{out:?}"
        );

        // Read past the notice: "two", still unread an interval later, is a new streak.
        read(&mut m, "dave", 1);
        let (out, not_yet) = alarm_at(&mut m, &now, T0 + 3 * AFTER_MS);
        assert!(not_yet.is_empty(), "{not_yet:?}");
        assert!(
            out.contains(&Effect::SetAlarm(T0 + 4 * AFTER_MS)),
            "{out:?}"
        );
        let (_, second) = alarm_at(&mut m, &now, T0 + 4 * AFTER_MS);
        assert_eq!(who(&second), ["dave"]);
        assert_eq!(
            (second[0]["seq"].as_u64(), second[0]["unread"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(second[0]["message"]["data"]["text"], "two");
    }

    #[test]
    fn what_a_member_was_online_for_is_no_streak_and_coming_online_ends_one() {
        let (mut m, now) = room(&["ann", "dave"]);
        publish(&mut m, "ann", "one");
        let (_, first) = alarm_at(&mut m, &now, T0 + AFTER_MS);
        assert_eq!(who(&first), ["dave"]);

        // dave comes by without reading; "two" is published while he is there.
        let t1 = T0 + AFTER_MS;
        m.on_connected(&conn("dave"), &mut Vec::new());
        publish(&mut m, "ann", "two");
        let (_, online) = alarm_at(&mut m, &now, t1 + AFTER_MS);
        assert!(online.is_empty(), "{online:?}");
        m.on_gone(&conn("dave"), &mut Vec::new());
        now.set(t1 + AFTER_MS + crate::presence::LEAVE_GRACE_MS + super::super::LEAVE_SLACK_MS);
        m.on_leaves_due(&mut Vec::new());
        let (_, after_leaving) = alarm_at(&mut m, &now, t1 + 3 * AFTER_MS);
        assert!(after_leaving.is_empty(), "{after_leaving:?}");

        // A new message left unread once he is gone is a new streak.
        let t2 = t1 + 3 * AFTER_MS;
        publish(&mut m, "ann", "three");
        let (_, early) = alarm_at(&mut m, &now, t2 + AFTER_MS - 1);
        assert!(early.is_empty());
        let (_, due) = alarm_at(&mut m, &now, t2 + AFTER_MS);
        assert_eq!(who(&due), ["dave"]);
        assert_eq!(
            (due[0]["seq"].as_u64(), due[0]["unread"].as_u64()),
            (Some(3), Some(1))
        );
    }

    #[test]
    fn one_run_tells_a_bounded_number_of_members_and_the_next_runs_at_once() {
        let members: Vec<String> = (0..MAX_UNREAD_NOTICES_PER_RUN + 20)
            .map(|n| format!("m{n:03}"))
            .collect();
        let ids: Vec<&str> = members.iter().map(String::as_str).collect();
        let (mut m, now) = room(&ids);
        let broadcast = Publish {
            cid: Some("b".into()),
            event: Some("notice".into()),
            data: serde_json::value::to_raw_value(&1).unwrap(),
        };
        m.publish_as_backend(&broadcast, &mut Vec::new()).unwrap();
        let (out, first) = alarm_at(&mut m, &now, T0 + AFTER_MS);
        assert_eq!(first.len(), MAX_UNREAD_NOTICES_PER_RUN);
        assert!(out.contains(&Effect::SetAlarm(T0 + AFTER_MS)), "{out:?}");
        let (_, rest) = alarm_at(&mut m, &now, T0 + AFTER_MS);
        assert_eq!(rest.len(), 20);
        let mut told: Vec<&str> = who(&first);
        told.extend(who(&rest));
        told.sort();
        assert_eq!(told, ids);
    }

    #[test]
    fn rooms_without_events_or_without_members_never_look() {
        let (m, now) = sql_machine("support:1", T0);
        let mut m = m.events(true);
        m.restore([]);
        let out = publish(&mut m, "ann", "hi");
        assert!(!out.contains(&Effect::SetAlarm(T0 + AFTER_MS)));
        let (_, none) = alarm_at(&mut m, &now, T0 + AFTER_MS);
        assert!(none.is_empty());

        let (mut quiet, now) = room(&["ann", "dave"]);
        quiet = quiet.events(false);
        publish(&mut quiet, "ann", "hi");
        let (_, none) = alarm_at(&mut quiet, &now, T0 + AFTER_MS);
        assert!(none.is_empty());
    }

    #[test]
    fn a_room_woken_from_hibernation_still_tells() {
        // Two connections to one in-memory database: the room before and after its sleep.
        let uri = "file:unread-wake?mode=memory&cache=shared";
        let open = || {
            crate::room_sql::SqlRoomStore::open(rusqlite::Connection::open(uri).unwrap()).unwrap()
        };
        let limits = crate::config::Limits::from_vars(|_| None);
        let (asleep, _) = crate::room_test_support::machine_over(open(), "support:1", T0, limits);
        let mut asleep = asleep.events(true);
        let members = [Member {
            id: "dave".into(),
            role: Some("agent".into()),
        }];
        asleep.replace_members(&members, &mut Vec::new()).unwrap();
        publish(&mut asleep, "ann", "while you were away");

        let limits = crate::config::Limits::from_vars(|_| None);
        let (woken, now) = crate::room_test_support::machine_over(open(), "support:1", T0, limits);
        let mut woken = woken.events(true);
        woken.restore([]);
        let (_, due) = alarm_at(&mut woken, &now, T0 + AFTER_MS);
        assert_eq!(who(&due), ["dave"]);
        assert_eq!(due[0]["user"]["role"], "agent");
        drop(asleep);
    }
}
