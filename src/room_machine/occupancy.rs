//! The room's presence in counts mode (see [`crate::occupancy`]): when it switches, what a
//! welcome carries, the `occupancy` frames the alarm sends, and the paged presence list.

use super::{Connection, Effect, MachineStore, Pace, RoomMachine};
use crate::auth::User;
use crate::occupancy::{Counts, Flush, Occupancy, PresencePage};
use crate::presence::Presence;
use crate::protocol;
use crate::room::Stamps;

/// The counts a connection about to be accepted is welcomed with, when it gets counts rather
/// than the list (the room is in counts mode, or this connection takes it past its limit);
/// `on_shards`: the connections and users on the room's shards.
pub(super) fn welcome_counts(
    occupancy: &Occupancy,
    presence: &Presence,
    newcomer: &User,
    on_shards: (usize, usize),
) -> Option<Counts> {
    let (connections, users) = presence.counts_with(newcomer);
    let (connections, users) = (connections + on_shards.0, users + on_shards.1);
    occupancy
        .welcomes_with_counts(users)
        .then(|| Counts::new(connections, users))
}

impl<S: MachineStore, C: Stamps> RoomMachine<S, C> {
    /// The room's counts: its own sockets and its shards' viewers (a user with sockets on
    /// two objects counts on each).
    fn counts(&mut self) -> Counts {
        let presence = self.presence();
        let (connections, users) = (presence.connection_count(), presence.user_count());
        Counts::new(connections + self.on_shards.0, users + self.on_shards.1)
    }

    /// The room's shards reported their viewers (in all): occupancy and the directory count
    /// them from now on.
    pub fn shards_reported(&mut self, connections: usize, users: usize, out: &mut Vec<Effect>) {
        if self.on_shards == (connections, users) {
            return;
        }
        self.on_shards = (connections, users);
        self.occupancy_changed(None, out);
        out.push(Effect::Report(self.report()));
    }

    /// A viewer on a shard closed: what the room keeps about its frames goes (its protocol
    /// violations, its publishes still waiting for the hook, dropped uncommitted). It was
    /// never in the room's presence: its shard counts it.
    pub fn shard_viewer_gone(&mut self, conn_id: &str) {
        self.violations.remove(conn_id);
        self.hooked_socket_gone(conn_id);
    }

    /// The room's own open connections (a shard's viewers are the shard's).
    pub fn connection_count(&self) -> usize {
        self.presence.as_ref().map_or(0, |p| p.connection_count())
    }

    /// The room's presence limit (`PRESENCE_FULL_MAX` for this room).
    pub fn presence_full_max(mut self, full_max: usize) -> Self {
        self.occupancy = Occupancy::new(full_max);
        self
    }

    /// Presence changed (a connect of `connected`, or a close): in counts mode the counts are
    /// owed to the alarm; a switch marks every socket, a connect in counts mode its own.
    pub(super) fn occupancy_changed(
        &mut self,
        connected: Option<&Connection>,
        out: &mut Vec<Effect>,
    ) {
        let counts = self.counts();
        let empty = self.presence().is_empty() && self.on_shards.0 == 0;
        let now = self.clock.now_ms();
        let (switched, send_at) = self.occupancy.changed(counts, empty, now);
        if switched {
            out.push(Effect::MarkCounts);
        } else if let Some(conn) = connected.filter(|c| !c.counts) {
            if self.occupancy.counts_mode() {
                out.push(Effect::Reattach(Connection {
                    counts: true,
                    ..conn.clone()
                }));
            }
        }
        if let Some(at) = send_at {
            self.set_alarm(at, out);
        }
    }

    /// After leaves were announced: a room nobody is left in starts over in list mode.
    pub(super) fn occupancy_after_leaves(&mut self, out: &mut Vec<Effect>) {
        if self.presence().is_empty() {
            self.occupancy_changed(None, out);
        }
    }

    /// From the alarm: the `occupancy` frame owed, if due (else the alarm comes back then).
    pub(super) fn flush_occupancy(&mut self, out: &mut Vec<Effect>) {
        if self.presence.is_none() {
            return;
        }
        let counts = self.counts();
        match self.occupancy.flush(counts, self.clock.now_ms()) {
            Flush::Nothing => {}
            Flush::Send(counts) => out.push(Effect::Broadcast {
                frame: protocol::occupancy_frame(counts),
                skip_origin: false,
                pace: Pace::Presence,
            }),
            Flush::Later(at) => self.set_alarm(at, out),
        }
    }

    /// One page of who is present (see [`Presence::page`]), the id the next page starts
    /// after, and the room's connections.
    pub fn presence_page(&mut self, page: &PresencePage) -> (Vec<User>, Option<String>, usize) {
        let presence = self.presence();
        let (users, next) = presence.page(page.after.as_deref(), page.limit);
        (users, next, presence.connection_count())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    use super::*;
    use crate::config::Limits;
    use crate::error::RelayResult;
    use crate::paging::SeqRange;
    use crate::presence::LEAVE_GRACE_MS;
    use crate::protocol::Receipt;
    use crate::room::{MemoryRoomStore, ReadMarker, RoomCore, RoomStore, StoredMessage};

    const T0: i64 = 1_800_000_000_000;

    #[derive(Default)]
    struct Store(MemoryRoomStore, RefCell<Vec<String>>);

    impl Store {
        fn events_of(&self, kind: &str) -> usize {
            let kind = format!("\"type\":\"{kind}\"");
            self.1.borrow().iter().filter(|e| e.contains(&kind)).count()
        }
    }

    impl RoomStore for Store {
        fn last_seq(&self) -> RelayResult<u64> {
            self.0.last_seq()
        }
        fn find_by_cid(&self, sender_key: &str, cid: &str) -> RelayResult<Option<Receipt>> {
            self.0.find_by_cid(sender_key, cid)
        }
        fn append(&self, message: &StoredMessage) -> RelayResult<bool> {
            self.0.append(message)
        }
        fn page(&self, range: &SeqRange) -> RelayResult<Vec<(u64, String)>> {
            self.0.page(range)
        }
        fn oldest_kept_seq(&self) -> RelayResult<Option<u64>> {
            self.0.oldest_kept_seq()
        }
        fn read_marker(&self, user_id: &str) -> RelayResult<Option<u64>> {
            self.0.read_marker(user_id)
        }
        fn save_read(&self, marker: &ReadMarker) -> RelayResult<()> {
            self.0.save_read(marker)
        }
        fn recent_reads(&self, limit: u32) -> RelayResult<Vec<ReadMarker>> {
            self.0.recent_reads(limit)
        }
    }

    impl crate::edits::EditStore for Store {
        fn edit_target(&self, _seq: u64) -> RelayResult<Option<crate::edits::Target>> {
            Ok(None)
        }
        fn apply_change(&self, _applied: &crate::edits::Applied) -> RelayResult<()> {
            Ok(())
        }
    }

    impl MachineStore for Store {
        fn has_bans(&self) -> RelayResult<bool> {
            Ok(false)
        }
        fn is_banned(&self, _user_id: &str, _now_s: i64) -> RelayResult<bool> {
            Ok(false)
        }
        fn has_members(&self) -> RelayResult<bool> {
            Ok(false)
        }
        fn is_member(&self, _user_id: &str) -> RelayResult<bool> {
            Ok(false)
        }
        fn queue_feed(&self, _only: Option<&str>, _version: i64) -> RelayResult<()> {
            Ok(())
        }
        fn record_event(&self, event: &str) -> RelayResult<()> {
            self.1.borrow_mut().push(event.to_string());
            Ok(())
        }
        fn event_count(&self) -> RelayResult<u64> {
            Ok(self.1.borrow().len() as u64)
        }
    }

    #[derive(Clone)]
    struct Clock(Rc<Cell<i64>>);

    impl Stamps for Clock {
        fn now_ms(&self) -> i64 {
            self.0.get()
        }
        fn new_id(&self) -> String {
            format!("m{}", self.0.get())
        }
    }

    type Machine = RoomMachine<Store, Clock>;

    /// A room whose presence limit is `full_max`, with events on (to see `presence.*`).
    fn machine(full_max: usize) -> (Machine, Clock) {
        let clock = Clock(Rc::new(Cell::new(T0)));
        let core = RoomCore::open(Store::default(), "big:1".to_string()).unwrap();
        let machine = RoomMachine::new(core, clock.clone(), Limits::from_vars(|_| None), 0, None)
            .presence_full_max(full_max)
            .events(true);
        (machine, clock)
    }

    fn conn(n: usize) -> Connection {
        Connection {
            conn_id: format!("c{n}"),
            user: User {
                id: format!("u{n:03}"),
                name: None,
                role: None,
            },
            exp: T0 / 1000 + 3600,
            counts: false,
        }
    }

    /// Welcomes and counts connection `n`; returns its welcome and the effects.
    fn connect(m: &mut Machine, n: usize) -> (serde_json::Value, Vec<Effect>) {
        let welcome = serde_json::from_str(&m.welcome(&conn(n)).unwrap()).unwrap();
        let mut out = Vec::new();
        m.on_connected(&conn(n), &mut out);
        (welcome, out)
    }

    fn frames(out: &[Effect]) -> Vec<serde_json::Value> {
        out.iter()
            .filter_map(|e| match e {
                Effect::Broadcast { frame, .. } => Some(serde_json::from_str(frame).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn alarm(m: &mut Machine) -> Vec<Effect> {
        let mut out = Vec::new();
        m.on_alarm(&mut out);
        out
    }

    #[test]
    fn viewers_on_shards_count_in_occupancy_welcomes_and_reports() {
        let (mut m, _) = machine(3);
        m.restore([]);
        connect(&mut m, 0);
        let mut out = Vec::new();
        m.shards_reported(40, 30, &mut out);
        assert!(
            out.contains(&Effect::MarkCounts),
            "30 users on shards: counts mode"
        );
        let reported = out.iter().find_map(|e| match e {
            Effect::Report(r) => Some((r.connections, r.users)),
            _ => None,
        });
        assert_eq!(reported, Some((41, 31)));
        let (welcome, _) = connect(&mut m, 1);
        assert_eq!(
            welcome["occupancy"],
            serde_json::json!({"connections": 42, "users": 32})
        );
        let sent = frames(&alarm(&mut m));
        assert_eq!(
            sent,
            [serde_json::json!({"type": "occupancy", "connections": 42, "users": 32})]
        );
        let mut again = Vec::new();
        m.shards_reported(40, 30, &mut again);
        assert!(again.is_empty(), "the same counts change nothing");
    }

    #[test]
    fn at_the_limit_the_room_lists_and_announces_as_before() {
        let (mut m, _) = machine(3);
        m.restore([]);
        for n in 0..3 {
            let (welcome, out) = connect(&mut m, n);
            assert_eq!(welcome["presence"].as_array().unwrap().len(), n + 1);
            assert!(welcome.get("occupancy").is_none());
            let sent = frames(&out);
            assert_eq!(sent.len(), 1, "{sent:?}");
            assert_eq!(sent[0]["event"], "join");
            assert!(!out.contains(&Effect::MarkCounts));
        }
        assert!(frames(&alarm(&mut m)).is_empty(), "no occupancy frame");
    }

    #[test]
    fn past_the_limit_joins_become_coalesced_counts_and_events_stay_per_user() {
        let (mut m, clock) = machine(3);
        m.restore([]);
        for n in 0..3 {
            connect(&mut m, n);
        }
        // The fourth user switches the room: counts in its welcome, every socket marked, no
        // join, the counts owed to the alarm at once; the backend still hears the join.
        let (welcome, out) = connect(&mut m, 3);
        assert!(welcome.get("presence").is_none(), "{welcome}");
        assert_eq!(
            welcome["occupancy"],
            serde_json::json!({"connections": 4, "users": 4})
        );
        assert!(out.contains(&Effect::MarkCounts));
        assert!(frames(&out).is_empty(), "no join frame");
        assert!(out.contains(&Effect::SetAlarm(T0)));
        assert_eq!(m.core().store().events_of("presence.joined"), 4);
        // A storm of 100 more: no frame and no alarm per connect, each socket marked.
        for n in 4..104 {
            let (welcome, out) = connect(&mut m, n);
            assert_eq!(welcome["occupancy"]["users"], n + 1);
            assert!(frames(&out).is_empty());
            assert!(!out.iter().any(|e| matches!(e, Effect::SetAlarm(_))));
            assert!(out.contains(&Effect::Reattach(Connection {
                counts: true,
                ..conn(n)
            })));
        }
        assert_eq!(m.core().store().events_of("presence.joined"), 104);
        let sent = frames(&alarm(&mut m));
        assert_eq!(
            sent,
            [serde_json::json!({"type": "occupancy", "connections": 104, "users": 104})]
        );
        assert!(frames(&alarm(&mut m)).is_empty(), "sent once");
        // A close: the next counts wait for the interval, and the leave is not announced.
        clock.0.set(T0 + 500);
        let mut out = Vec::new();
        m.on_gone(&conn(7), &mut out);
        assert!(out.contains(&Effect::SetAlarm(T0 + 2_000)));
        clock.0.set(T0 + 500 + LEAVE_GRACE_MS + 100);
        let mut out = Vec::new();
        m.on_leaves_due(&mut out);
        assert!(frames(&out).is_empty(), "no leave frame: {out:?}");
        assert_eq!(m.core().store().events_of("presence.left"), 1);
        let sent = frames(&alarm(&mut m));
        assert_eq!(sent[0]["connections"], 103);
    }

    #[test]
    fn the_room_keeps_counts_until_empty_and_across_a_wake() {
        let (mut m, clock) = machine(1);
        m.restore([]);
        connect(&mut m, 0);
        let (_, out) = connect(&mut m, 1);
        assert!(out.contains(&Effect::MarkCounts));
        let mut out = Vec::new();
        m.on_gone(&conn(1), &mut out);
        // Back at the limit: still counts, also for a room woken with a marked socket.
        let (welcome, _) = connect(&mut m, 2);
        assert!(welcome.get("occupancy").is_some());
        let (mut woken, _) = machine(1);
        woken.restore([&Connection {
            counts: true,
            ..conn(0)
        }]);
        let (welcome, _) = connect(&mut woken, 5);
        assert!(welcome.get("occupancy").is_some(), "{welcome}");
        // Everyone leaves and the grace passes: the room starts over with lists.
        m.on_gone(&conn(0), &mut Vec::new());
        m.on_gone(&conn(2), &mut Vec::new());
        clock.0.set(T0 + LEAVE_GRACE_MS + 100);
        m.on_leaves_due(&mut Vec::new());
        let (welcome, _) = connect(&mut m, 3);
        assert_eq!(welcome["presence"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn the_presence_route_pages_by_user_id() {
        let (mut m, _) = machine(1);
        m.restore([]);
        for n in 0..5 {
            connect(&mut m, n);
        }
        let page = PresencePage {
            after: Some("u001".into()),
            limit: 2,
        };
        let (users, next, connections) = m.presence_page(&page);
        let ids: Vec<_> = users.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(
            (ids, next.as_deref(), connections),
            (vec!["u002", "u003"], Some("u003"), 5)
        );
    }
}
