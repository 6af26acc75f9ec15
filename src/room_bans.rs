//! A room's bans carried out: stored in the room's SQLite, the banned user's sockets closed,
//! lifted, listed; each answer as the backend gets it.

use serde_json::json;

use crate::error::RelayResult;
use crate::room::Stamps;
use crate::room_machine::{Effect, RoomMachine};
use crate::room_sql::SqlRoomStore;
use crate::sql::Sql;

impl<E: Sql, C: Stamps> RoomMachine<SqlRoomStore<E>, C> {
    /// Bans `user` until `until` (unix seconds; `None`: for good); their sockets close.
    pub fn ban(
        &mut self,
        user: &str,
        until: Option<i64>,
        out: &mut Vec<Effect>,
    ) -> RelayResult<String> {
        let now_s = self.now_ms().div_euclid(1000);
        self.core().store().ban(user, until, now_s)?;
        self.bans_changed(Some(user), out);
        Ok(json!({"room": self.core().room(), "user": user, "until": until}).to_string())
    }

    /// Lifts `user`'s ban, if they had one.
    pub fn unban(&mut self, user: &str, out: &mut Vec<Effect>) -> RelayResult<String> {
        let lifted = self.core().store().unban(user)?;
        self.bans_changed(None, out);
        Ok(json!({"room": self.core().room(), "user": user, "lifted": lifted}).to_string())
    }

    /// The bans that hold now.
    pub fn list_bans(&self) -> RelayResult<String> {
        let now_s = self.now_ms().div_euclid(1000);
        let bans = self.core().store().bans(now_s)?;
        Ok(json!({"room": self.core().room(), "bans": bans}).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::User;
    use crate::disconnect;
    use crate::error::ErrorCode;
    use crate::room_test_support::sql_machine;

    const NOW_S: i64 = 1_800_000_000;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            name: None,
            role: None,
        }
    }

    fn json(text: &str) -> serde_json::Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_banned_user_is_refused_and_their_sockets_close_until_the_ban_ends_or_is_lifted() {
        let (mut m, now) = sql_machine("chat:1", NOW_S * 1000);
        assert!(m.admit(&user("eve")).is_ok(), "no bans: admitted");
        let mut out = Vec::new();
        let answer = json(&m.ban("eve", Some(NOW_S + 60), &mut out).unwrap());
        assert_eq!(
            answer,
            serde_json::json!({"room": "chat:1", "user": "eve", "until": NOW_S + 60})
        );
        assert_eq!(
            out,
            [Effect::CloseUsers {
                user_ids: vec!["eve".into()],
                code: disconnect::BANNED.code,
                reason: "banned".into(),
            }]
        );
        let refused = m.admit(&user("eve")).unwrap_err();
        assert_eq!(
            (refused.code, refused.message.as_str()),
            (ErrorCode::Forbidden, "banned")
        );
        assert_eq!(
            m.check_member(&user("eve")).unwrap_err().code,
            ErrorCode::Forbidden
        );
        assert!(m.check_member(&user("ann")).is_ok(), "only eve is banned");
        assert_eq!(json(&m.list_bans().unwrap())["bans"][0]["user"], "eve");

        now.set((NOW_S + 60) * 1000);
        assert!(m.check_member(&user("eve")).is_ok(), "the ban ended");
        assert_eq!(json(&m.list_bans().unwrap())["bans"], serde_json::json!([]));

        m.ban("eve", None, &mut out).unwrap();
        assert!(m.check_member(&user("eve")).is_err(), "banned for good");
        let lifted = json(&m.unban("eve", &mut out).unwrap());
        assert_eq!(lifted["lifted"], true);
        assert!(m.check_member(&user("eve")).is_ok());
        assert_eq!(json(&m.unban("eve", &mut out).unwrap())["lifted"], false);
    }
}
