//! Presence per user, not per tab: which users a room's open connections belong to.

use std::collections::BTreeMap;

use crate::auth::User;

/// Connections by user; rebuilt from socket attachments after the room wakes.
#[derive(Debug, Default)]
pub struct Presence {
    users: BTreeMap<String, (User, u32)>,
}

impl Presence {
    /// Counts a connection; true when it is the user's first (a `join` to announce).
    pub fn connect(&mut self, user: &User) -> bool {
        let entry = self
            .users
            .entry(user.id.clone())
            .or_insert_with(|| (user.clone(), 0));
        entry.1 += 1;
        entry.1 == 1
    }

    /// Uncounts a connection; true when it was the user's last (a `leave` to announce).
    pub fn disconnect(&mut self, user_id: &str) -> bool {
        match self.users.get_mut(user_id) {
            Some((_, count)) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                self.users.remove(user_id);
                true
            }
            None => false,
        }
    }

    pub fn users(&self) -> Vec<User> {
        self.users.values().map(|(user, _)| user.clone()).collect()
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn connection_count(&self) -> u32 {
        self.users.values().map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> User {
        User { id: id.into(), name: None, role: None }
    }

    #[test]
    fn two_tabs_join_once_and_leave_after_the_last() {
        let mut p = Presence::default();
        assert!(p.connect(&user("a")));
        assert!(!p.connect(&user("a")));
        assert!(p.connect(&user("b")));
        assert_eq!(p.user_count(), 2);
        assert_eq!(p.connection_count(), 3);
        assert!(!p.disconnect("a"));
        assert!(p.disconnect("a"));
        assert!(!p.disconnect("a"), "unknown users change nothing");
        assert_eq!(p.users(), vec![user("b")]);
    }
}
