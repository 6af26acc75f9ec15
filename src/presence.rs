//! Presence per user, not per tab: which users a room's open connections belong to.

use std::collections::{BTreeMap, BTreeSet};

use crate::auth::User;

/// Connections by user; rebuilt from socket attachments after the room wakes. Connections are
/// tracked by id, so counting or uncounting one twice changes nothing.
#[derive(Debug, Default)]
pub struct Presence {
    users: BTreeMap<String, (User, BTreeSet<String>)>,
}

impl Presence {
    /// Counts a connection; true when it is the user's first (a `join` to announce).
    pub fn connect(&mut self, conn_id: &str, user: &User) -> bool {
        let (_, conns) = self
            .users
            .entry(user.id.clone())
            .or_insert_with(|| (user.clone(), BTreeSet::new()));
        conns.insert(conn_id.to_string()) && conns.len() == 1
    }

    /// Uncounts a connection; true when it was the user's last (a `leave` to announce).
    pub fn disconnect(&mut self, conn_id: &str, user_id: &str) -> bool {
        let Some((_, conns)) = self.users.get_mut(user_id) else {
            return false;
        };
        if !conns.remove(conn_id) {
            return false;
        }
        if conns.is_empty() {
            self.users.remove(user_id);
            return true;
        }
        false
    }

    pub fn users(&self) -> Vec<User> {
        self.users.values().map(|(user, _)| user.clone()).collect()
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn connection_count(&self) -> usize {
        self.users.values().map(|(_, conns)| conns.len()).sum()
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
        assert_eq!(p.user_count(), 2);
        assert_eq!(p.connection_count(), 3);
        assert!(!p.disconnect("c1", "a"));
        assert!(p.disconnect("c2", "a"));
        assert_eq!(p.users(), vec![user("b")]);
    }

    #[test]
    fn repeated_events_change_nothing() {
        let mut p = Presence::default();
        assert!(p.connect("c1", &user("a")));
        assert!(!p.connect("c1", &user("a")));
        assert!(p.disconnect("c1", "a"));
        assert!(
            !p.disconnect("c1", "a"),
            "a second close of one socket is no second leave"
        );
        assert!(!p.disconnect("zz", "nobody"));
    }
}
