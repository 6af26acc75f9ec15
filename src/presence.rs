//! Presence per user, not per tab: who is online, deferred leaves, and who is typing.
//!
//! Rule against flicker: when a user's last connection closes, the `leave` is announced only
//! after [`LEAVE_GRACE_MS`]; a connection of the same user within that time cancels it and no
//! `join` is announced either, so a quick reconnect (a page reload) is invisible to others.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::auth::User;

pub const LEAVE_GRACE_MS: i64 = 2_000;
/// Closed connection ids remembered, so that a close and an error of one socket count once.
const GONE_MEMORY: usize = 1_024;

/// A user whose leave is due: announce `typing active:false` first when `was_typing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    pub user: User,
    pub last_seen_ms: i64,
    pub was_typing: bool,
}

/// Connections by user; rebuilt from socket attachments after the room wakes.
#[derive(Debug, Default)]
pub struct Presence {
    online: BTreeMap<String, (User, BTreeSet<String>)>,
    /// The connections in `online`, counted as they come and go: a big room asks per connect.
    connections: usize,
    departing: BTreeMap<String, (User, i64)>,
    gone: VecDeque<String>,
    typing: BTreeSet<String>,
}

impl Presence {
    /// Counts a connection; true when others should be told the user joined.
    pub fn connect(&mut self, conn_id: &str, user: &User) -> bool {
        let returning = self.departing.remove(&user.id).is_some();
        let (_, conns) = self
            .online
            .entry(user.id.clone())
            .or_insert_with(|| (user.clone(), BTreeSet::new()));
        let added = conns.insert(conn_id.to_string());
        let first = added && conns.len() == 1;
        self.connections += usize::from(added);
        first && !returning
    }

    /// Uncounts a closed connection; true when it was the user's last, so a leave is now
    /// pending (see [`Presence::due_departures`]). A connection is uncounted only once.
    pub fn disconnect(&mut self, conn_id: &str, user: &User, now_ms: i64) -> bool {
        if self.gone.iter().any(|gone| gone == conn_id) {
            return false;
        }
        if self.gone.len() == GONE_MEMORY {
            self.gone.pop_front();
        }
        self.gone.push_back(conn_id.to_string());
        if let Some((_, conns)) = self.online.get_mut(&user.id) {
            self.connections -= usize::from(conns.remove(conn_id));
            if !conns.is_empty() {
                return false;
            }
            self.online.remove(&user.id);
        }
        if self.departing.contains_key(&user.id) {
            return false;
        }
        self.departing
            .insert(user.id.clone(), (user.clone(), now_ms));
        true
    }

    /// Removes and returns the departures whose grace time has passed.
    pub fn due_departures(&mut self, now_ms: i64) -> Vec<Departure> {
        let due: Vec<String> = self
            .departing
            .iter()
            .filter(|(_, (_, left_ms))| now_ms - left_ms >= LEAVE_GRACE_MS)
            .map(|(id, _)| id.clone())
            .collect();
        due.into_iter()
            .filter_map(|id| {
                let (user, last_seen_ms) = self.departing.remove(&id)?;
                let was_typing = self.typing.remove(&id);
                Some(Departure {
                    user,
                    last_seen_ms,
                    was_typing,
                })
            })
            .collect()
    }

    /// When the earliest pending leave is due, if any.
    pub fn next_departure_at(&self) -> Option<i64> {
        self.departing
            .values()
            .map(|(_, left_ms)| left_ms + LEAVE_GRACE_MS)
            .min()
    }

    /// Records a typing state; typing of users who are not online is ignored.
    pub fn set_typing(&mut self, user_id: &str, active: bool) {
        if active && self.online.contains_key(user_id) {
            self.typing.insert(user_id.to_string());
        } else {
            self.typing.remove(user_id);
        }
    }

    /// Users others currently see as present (online, or within their leave grace).
    pub fn users(&self) -> Vec<User> {
        self.present(None).into_iter().cloned().collect()
    }

    /// The present users as a connection of `newcomer` will see them once it is counted:
    /// the welcome is built before the socket is accepted, and presence changes only after.
    pub fn users_with<'a>(&'a self, newcomer: &'a User) -> Vec<&'a User> {
        self.present(Some(newcomer))
    }

    fn present<'a>(&'a self, newcomer: Option<&'a User>) -> Vec<&'a User> {
        let mut users: Vec<&User> = self.online.values().map(|(user, _)| user).collect();
        users.extend(self.departing.values().map(|(user, _)| user));
        let newcomer = newcomer.filter(|new| {
            !self.online.contains_key(&new.id) && !self.departing.contains_key(&new.id)
        });
        users.extend(newcomer);
        users.sort_by(|a, b| a.id.cmp(&b.id));
        users
    }

    pub fn is_online(&self, user_id: &str) -> bool {
        self.online.contains_key(user_id)
    }

    pub fn user_count(&self) -> usize {
        self.online.len()
    }

    pub fn connection_count(&self) -> usize {
        self.connections
    }

    /// Whether nobody is online or within their leave grace.
    pub fn is_empty(&self) -> bool {
        self.online.is_empty() && self.departing.is_empty()
    }

    /// (connections, users online) once a connection of `newcomer` is counted, as its welcome
    /// shows them: no list is built.
    pub fn counts_with(&self, newcomer: &User) -> (usize, usize) {
        let new_user = !self.online.contains_key(&newcomer.id);
        (
            self.connections + 1,
            self.online.len() + usize::from(new_user),
        )
    }

    /// One page of the present users (online or within their leave grace), by id, those after
    /// `after` first; the id to ask after for the next page when there may be more.
    pub fn page(&self, after: Option<&str>, limit: usize) -> (Vec<User>, Option<String>) {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, |id| Excluded(id.to_string()));
        let mut online = self
            .online
            .range::<String, _>((from.clone(), Unbounded))
            .map(|(_, (user, _))| user)
            .peekable();
        let mut departing = self
            .departing
            .range::<String, _>((from, Unbounded))
            .map(|(_, (user, _))| user)
            .peekable();
        let mut users = Vec::new();
        // Both maps are ordered by id and never hold the same user: merge them.
        while users.len() < limit {
            let next = match (online.peek(), departing.peek()) {
                (Some(a), Some(b)) if a.id <= b.id => online.next(),
                (Some(_), Some(_)) => departing.next(),
                (Some(_), None) => online.next(),
                (None, _) => departing.next(),
            };
            match next {
                Some(user) => users.push(user.clone()),
                None => break,
            }
        }
        let more = online.peek().is_some() || departing.peek().is_some();
        let next = more.then(|| users.last().map(|u| u.id.clone())).flatten();
        (users, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            name: None,
            role: None,
        }
    }

    #[test]
    fn two_tabs_join_once_and_leave_after_the_last() {
        let mut p = Presence::default();
        assert!(p.connect("c1", &user("a")));
        assert!(!p.connect("c2", &user("a")));
        assert!(p.connect("c3", &user("b")));
        assert_eq!((p.user_count(), p.connection_count()), (2, 3));
        assert!(!p.disconnect("c1", &user("a"), 1_000));
        assert!(p.disconnect("c2", &user("a"), 1_000));
        assert!(p.due_departures(1_000 + LEAVE_GRACE_MS - 1).is_empty());
        let due = p.due_departures(1_000 + LEAVE_GRACE_MS);
        assert_eq!(
            due,
            vec![Departure {
                user: user("a"),
                last_seen_ms: 1_000,
                was_typing: false
            }]
        );
        assert_eq!(p.users(), vec![user("b")]);
    }

    #[test]
    fn quick_reconnect_is_neither_a_leave_nor_a_join() {
        let mut p = Presence::default();
        assert!(p.connect("c1", &user("a")));
        assert!(p.disconnect("c1", &user("a"), 0));
        assert_eq!(p.users(), vec![user("a")], "still shown during the grace");
        assert!(
            !p.connect("c2", &user("a")),
            "no join after a quick reconnect"
        );
        assert!(
            p.due_departures(10 * LEAVE_GRACE_MS).is_empty(),
            "no leave either"
        );
        assert!(p.is_online("a"));
    }

    #[test]
    fn close_and_error_of_one_socket_count_once() {
        let mut p = Presence::default();
        p.connect("c1", &user("a"));
        p.connect("c2", &user("a"));
        assert!(!p.disconnect("c1", &user("a"), 0));
        assert!(!p.disconnect("c1", &user("a"), 0));
        assert!(p.is_online("a"), "the second tab keeps the user online");
    }

    #[test]
    fn a_socket_missed_by_the_rebuild_still_produces_a_leave() {
        // After waking, sockets already closing are not counted; their close still ends the user.
        let mut p = Presence::default();
        assert!(p.disconnect("closing", &user("a"), 0));
        assert_eq!(p.due_departures(LEAVE_GRACE_MS).len(), 1);
    }

    #[test]
    fn departing_typist_is_reported() {
        let mut p = Presence::default();
        p.connect("c1", &user("a"));
        p.set_typing("a", true);
        p.set_typing("ghost", true);
        p.disconnect("c1", &user("a"), 0);
        let due = p.due_departures(LEAVE_GRACE_MS);
        assert!(due[0].was_typing);
    }

    #[test]
    fn the_welcome_list_counts_the_newcomer_once() {
        let mut p = Presence::default();
        p.connect("c1", &user("b"));
        let ids = |users: Vec<&User>| users.iter().map(|u| u.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(p.users_with(&user("a"))), ["a", "b"]);
        assert_eq!(
            ids(p.users_with(&user("b"))),
            ["b"],
            "a second tab is not a second user"
        );
        p.disconnect("c1", &user("b"), 0);
        assert_eq!(
            ids(p.users_with(&user("b"))),
            ["b"],
            "returning within the grace"
        );
        assert_eq!(
            p.users(),
            vec![user("b")],
            "asking does not count the newcomer"
        );
    }

    #[test]
    fn next_departure_is_the_earliest_pending_leave() {
        let mut p = Presence::default();
        assert_eq!(p.next_departure_at(), None);
        p.connect("c1", &user("a"));
        p.connect("c2", &user("b"));
        p.disconnect("c2", &user("b"), 1_500);
        p.disconnect("c1", &user("a"), 1_000);
        assert_eq!(p.next_departure_at(), Some(1_000 + LEAVE_GRACE_MS));
        assert_eq!(p.due_departures(1_000 + LEAVE_GRACE_MS).len(), 1);
        assert_eq!(p.next_departure_at(), Some(1_500 + LEAVE_GRACE_MS));
        p.connect("c3", &user("b"));
        assert_eq!(p.next_departure_at(), None);
    }

    #[test]
    fn connections_are_counted_as_they_come_and_go() {
        let mut p = Presence::default();
        p.connect("c1", &user("a"));
        p.connect("c1", &user("a"));
        p.connect("c2", &user("a"));
        p.connect("c3", &user("b"));
        assert_eq!(p.connection_count(), 3);
        assert_eq!(p.counts_with(&user("a")), (4, 2));
        assert_eq!(p.counts_with(&user("z")), (4, 3));
        p.disconnect("c2", &user("a"), 0);
        p.disconnect("c2", &user("a"), 0);
        p.disconnect("c9", &user("a"), 0);
        assert_eq!(p.connection_count(), 2);
        p.disconnect("c1", &user("a"), 0);
        p.disconnect("c3", &user("b"), 0);
        assert_eq!(p.connection_count(), 0);
        assert!(!p.is_empty(), "within the leave grace");
        p.due_departures(LEAVE_GRACE_MS);
        assert!(p.is_empty());
    }

    #[test]
    fn pages_list_online_and_departing_users_in_id_order_once() {
        let mut p = Presence::default();
        for (i, id) in ["e", "a", "c", "d", "b"].iter().enumerate() {
            p.connect(&format!("c{i}"), &user(id));
        }
        p.disconnect("c2", &user("c"), 0);
        p.disconnect("c0", &user("e"), 0);
        let ids = |users: Vec<User>| users.into_iter().map(|u| u.id).collect::<Vec<_>>();
        let (first, next) = p.page(None, 2);
        assert_eq!(
            (ids(first), next.as_deref()),
            (vec!["a".into(), "b".into()], Some("b"))
        );
        let (second, next) = p.page(Some("b"), 2);
        assert_eq!(
            (ids(second), next.as_deref()),
            (vec!["c".into(), "d".into()], Some("d"))
        );
        let (last, next) = p.page(Some("d"), 2);
        assert_eq!((ids(last), next), (vec!["e".to_string()], None));
        let (all, next) = p.page(None, 5);
        assert_eq!((all, next), (p.users(), None), "a page of all is the list");
        assert_eq!(p.page(Some("zz"), 5), (vec![], None));
        assert_eq!(
            p.page(Some("a0"), 1).0,
            vec![user("b")],
            "after an absent id"
        );
    }
}
