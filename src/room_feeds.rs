//! A room's members and the `room.update`s it owes their personal rooms (`user:<id>`): built
//! from the room's storage for the alarm to send, and recorded as they are delivered.

use crate::error::{RelayError, RelayResult};
use crate::feed::{Member, RoomUpdate, UPDATE_EVENT};
use crate::room::Stamps;
use crate::room_api::RoomRequest;
use crate::room_machine::{Effect, RoomMachine};
use crate::room_sql::SqlRoomStore;
use crate::sql::Sql;
use crate::webhook::RoomBroadcast;

/// One member's update: a backend broadcast into their personal room.
pub struct FeedUpdate {
    pub personal_room: String,
    pub request: RoomRequest,
    member: String,
    /// Which of the member's pending updates this is: a later change owes another one.
    version: i64,
}

impl<E: Sql, C: Stamps> RoomMachine<SqlRoomStore<E>, C> {
    /// Replaces the room's members: in a members-only room, those no longer on the list lose
    /// their sockets.
    pub fn replace_members(
        &mut self,
        members: &[Member],
        out: &mut Vec<Effect>,
    ) -> RelayResult<()> {
        let store = self.core().store();
        let before = store.members()?;
        store.set_members(members)?;
        self.members_replaced(&before, members, out);
        Ok(())
    }

    /// Up to `limit` of the updates members are owed, each with the room's newest message as it
    /// is now (an edit's or delete's record is not a message to preview, but it changes the
    /// one it names), the room's last seq and the member's unread count; none while the room
    /// keeps no message body to preview.
    pub fn owed_feed_updates(&self, limit: u32) -> RelayResult<Vec<FeedUpdate>> {
        let core = self.core();
        let store = core.store();
        let last_seq = core.last_seq();
        let newest = match store.newest_message_body()? {
            Some(body) if last_seq > 0 => body,
            _ => return Ok(Vec::new()),
        };
        let pending = store.pending_feed(limit)?;
        let mut updates = Vec::with_capacity(pending.len());
        for (member, version) in pending {
            let unread = store.unread_count(&member)?;
            let update = RoomUpdate::from_message(core.room(), last_seq, &newest, unread)?;
            let broadcast = RoomBroadcast {
                event: UPDATE_EVENT.to_string(),
                data: serde_json::value::to_raw_value(&update)
                    .map_err(|_| RelayError::internal())?,
                id: Some(update.key()),
            };
            updates.push(FeedUpdate {
                personal_room: format!("user:{member}"),
                request: RoomRequest::Broadcast(broadcast),
                member,
                version,
            });
        }
        Ok(updates)
    }

    /// The update reached the member's personal room: it is no longer owed, unless a later
    /// change owes another.
    pub fn feed_delivered(&self, update: &FeedUpdate) -> RelayResult<()> {
        self.core()
            .store()
            .feed_sent(&update.member, update.version)
    }

    /// Whether members are still owed updates.
    pub fn feed_owed(&self) -> RelayResult<bool> {
        Ok(!self.core().store().pending_feed(1)?.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::User;
    use crate::edits::Change;
    use crate::protocol::Publish;
    use crate::room_test_support::{sql_machine, SqlMachine};

    fn machine() -> SqlMachine {
        sql_machine("order:7", 1_700_000_000_000).0
    }

    fn member(id: &str) -> Member {
        Member {
            id: id.into(),
            role: None,
        }
    }

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            name: None,
            role: None,
        }
    }

    fn update_json(update: &FeedUpdate) -> serde_json::Value {
        let RoomRequest::Broadcast(broadcast) = &update.request else {
            panic!("a feed update is a broadcast");
        };
        assert_eq!(broadcast.event, UPDATE_EVENT);
        serde_json::from_str(broadcast.data.get()).unwrap()
    }

    #[test]
    fn each_member_is_owed_the_newest_message_with_their_unread_count_until_delivered() {
        let mut m = machine();
        let mut out = Vec::new();
        m.replace_members(&[member("ann"), member("bob")], &mut out)
            .unwrap();
        assert!(m.owed_feed_updates(10).unwrap().is_empty());
        let publish = Publish {
            cid: Some("c1".into()),
            event: None,
            data: serde_json::value::to_raw_value(&serde_json::json!({"text": "hi"})).unwrap(),
        };
        m.publish_as_user(&user("ann"), &publish, &mut out).unwrap();
        let updates = m.owed_feed_updates(10).unwrap();
        let mut seen: Vec<(String, u64)> = updates
            .iter()
            .map(|u| {
                let json = update_json(u);
                assert_eq!(json["room"], "order:7");
                assert_eq!(json["seq"], 1);
                assert_eq!(json["preview"], "hi");
                (u.personal_room.clone(), json["unread"].as_u64().unwrap())
            })
            .collect();
        seen.sort();
        assert_eq!(seen, [("user:ann".into(), 0), ("user:bob".into(), 1)]);
        m.feed_delivered(&updates[0]).unwrap();
        assert!(m.feed_owed().unwrap());
        m.feed_delivered(&updates[1]).unwrap();
        assert!(!m.feed_owed().unwrap());
    }

    fn text(t: &str) -> Box<serde_json::value::RawValue> {
        serde_json::value::to_raw_value(&serde_json::json!({ "text": t })).unwrap()
    }

    fn preview_for(m: &SqlMachine, member: &str) -> (u64, String, serde_json::Value, u64) {
        let updates = m.owed_feed_updates(10).unwrap();
        let update = updates
            .iter()
            .find(|u| u.personal_room == format!("user:{member}"))
            .expect("an update for the member");
        let json = update_json(update);
        (
            json["seq"].as_u64().unwrap(),
            json["event"].as_str().unwrap().to_string(),
            json["preview"].clone(),
            json["unread"].as_u64().unwrap(),
        )
    }

    #[test]
    fn the_preview_is_the_newest_message_as_edited_never_an_edit_or_delete_record() {
        let mut m = machine();
        let mut out = Vec::new();
        m.replace_members(&[member("ann"), member("bob")], &mut out)
            .unwrap();
        for (cid, t) in [("c1", "first"), ("c2", "second")] {
            let publish = Publish {
                cid: Some(cid.into()),
                event: None,
                data: text(t),
            };
            m.publish_as_user(&user("ann"), &publish, &mut out).unwrap();
        }
        let edit = |seq, t: Option<&str>, cid: &str| Change {
            cid: Some(cid.into()),
            seq,
            data: t.map(text),
        };
        // An edit of an older message: the preview stays the newest message.
        m.change_as_user(&user("ann"), &edit(1, Some("first, fixed"), "e1"), &mut out)
            .unwrap();
        assert_eq!(
            preview_for(&m, "bob"),
            (3, "message".into(), "second".into(), 2)
        );
        // An edit of the newest message: its new text, under its own event.
        m.change_as_user(
            &user("ann"),
            &edit(2, Some("second, fixed"), "e2"),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            preview_for(&m, "bob"),
            (4, "message".into(), "second, fixed".into(), 2)
        );
        // The newest message deleted: no text to preview.
        m.change_as_user(&user("ann"), &edit(2, None, "d2"), &mut out)
            .unwrap();
        assert_eq!(
            preview_for(&m, "bob"),
            (5, "message".into(), serde_json::Value::Null, 2)
        );
    }

    #[test]
    fn members_removed_from_a_members_only_room_lose_their_sockets() {
        let mut m = machine().members_only(true);
        let mut out = Vec::new();
        m.replace_members(&[member("ann"), member("bob")], &mut out)
            .unwrap();
        assert!(out.is_empty());
        m.replace_members(&[member("ann")], &mut out).unwrap();
        assert!(matches!(&out[..], [Effect::CloseUsers { user_ids, .. }] if user_ids == &["bob"]));
        assert_eq!(m.core().store().members().unwrap(), [member("ann")]);
    }
}
