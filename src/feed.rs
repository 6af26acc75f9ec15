//! Room members and per-user update feeds: member lists, `room.update` payloads, and the
//! coalescing rule that keeps a busy room from multiplying its traffic.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::auth::User;
use crate::error::{RelayError, RelayResult};

pub const MAX_MEMBERS: usize = 1_000;
const MAX_MEMBER_ID_BYTES: usize = 256;
const PREVIEW_CHARS: usize = 100;
/// The event of the messages a member's personal room receives.
pub const UPDATE_EVENT: &str = "room.update";
/// At most one update per (member, room) per this interval; the newest state wins.
pub const UPDATE_INTERVAL_MS: i64 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MembersBody {
    List(Vec<Member>),
    Wrapped { members: Vec<Member> },
}

/// Parses `[{id, role?}]` (or `{"members":[...]}`): at most 1 000 distinct members.
pub fn parse_members(body: &str) -> RelayResult<Vec<Member>> {
    let members = match serde_json::from_str::<MembersBody>(body) {
        Ok(MembersBody::List(list)) | Ok(MembersBody::Wrapped { members: list }) => list,
        Err(_) => {
            return Err(RelayError::bad_request(
                "members must be a list of {\"id\", \"role\"?} objects",
            ))
        }
    };
    if members.len() > MAX_MEMBERS {
        return Err(RelayError::bad_request("at most 1000 members"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for member in &members {
        if member.id.is_empty() || member.id.len() > MAX_MEMBER_ID_BYTES {
            return Err(RelayError::bad_request("member ids must be 1..=256 bytes"));
        }
        if member
            .role
            .as_ref()
            .is_some_and(|r| r.len() > MAX_MEMBER_ID_BYTES)
        {
            return Err(RelayError::bad_request(
                "member roles must be at most 256 bytes",
            ));
        }
        if !seen.insert(member.id.as_str()) {
            return Err(RelayError::bad_request(format!(
                "member {:?} is listed twice",
                member.id
            )));
        }
    }
    Ok(members)
}

/// The `data` of a `room.update` message in a member's personal room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct RoomUpdate {
    pub room: String,
    pub seq: u64,
    pub event: String,
    pub from: Option<User>,
    pub preview: Option<String>,
    pub unread: u64,
}

/// What the update needs from a stored message body.
#[derive(Deserialize)]
struct MessageView<'a> {
    event: String,
    #[serde(borrow)]
    data: &'a RawValue,
    from: Option<User>,
}

#[derive(Deserialize)]
struct TextField {
    text: Option<String>,
}

impl RoomUpdate {
    /// Builds the update from the room's newest message body and the member's unread count.
    pub fn from_message(room: &str, seq: u64, body: &str, unread: u64) -> RelayResult<Self> {
        let view: MessageView = serde_json::from_str(body).map_err(|_| RelayError::internal())?;
        let preview = serde_json::from_str::<TextField>(view.data.get())
            .ok()
            .and_then(|d| d.text)
            .map(|text| text.chars().take(PREVIEW_CHARS).collect());
        Ok(RoomUpdate {
            room: room.to_string(),
            seq,
            event: view.event,
            from: view.from,
            preview,
            unread,
        })
    }

    /// Idempotency key of this update in the member's room: a retried delivery of the same
    /// state is stored once, a changed state (new seq or unread) is a new message.
    pub fn key(&self) -> String {
        let digest = Sha256::digest(self.room.as_bytes());
        let room_hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("upd:{room_hash}:{}:{}", self.seq, self.unread)
    }
}

/// When the next batch of updates may go out, given when the last one went.
pub fn next_update_at(last_sent_ms: Option<i64>, now_ms: i64) -> i64 {
    match last_sent_ms {
        Some(last) => now_ms.max(last + UPDATE_INTERVAL_MS),
        None => now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_in_both_shapes() {
        let list = parse_members(r#"[{"id":"a","role":"manager"},{"id":"b"}]"#).unwrap();
        assert_eq!(list[0].role.as_deref(), Some("manager"));
        assert_eq!(
            parse_members(r#"{"members":[{"id":"a"}]}"#).unwrap().len(),
            1
        );
        assert!(parse_members("[]").unwrap().is_empty());
    }

    #[test]
    fn members_are_validated() {
        for body in [
            r#"[{"id":""}]"#,
            r#"[{"id":"a"},{"id":"a"}]"#,
            r#"[{"role":"x"}]"#,
            r#"{"x":1}"#,
            "nope",
        ] {
            assert!(parse_members(body).is_err(), "{body}");
        }
        let many: Vec<_> = (0..=MAX_MEMBERS)
            .map(|i| serde_json::json!({"id": i.to_string()}))
            .collect();
        assert!(parse_members(&serde_json::to_string(&many).unwrap()).is_err());
    }

    #[test]
    fn update_takes_event_sender_and_a_short_preview() {
        let body = format!(
            r#"{{"type":"message","room":"d","seq":4,"id":"x","event":"message","data":{{"text":"{}"}},"from":{{"id":"ann"}},"ts":"t"}}"#,
            "é".repeat(150)
        );
        let update = RoomUpdate::from_message("d", 4, &body, 2).unwrap();
        assert_eq!(update.event, "message");
        assert_eq!(update.from.as_ref().map(|u| u.id.as_str()), Some("ann"));
        assert_eq!(
            update.preview.as_ref().map(|p| p.chars().count()),
            Some(100)
        );
        assert_eq!(update.unread, 2);
        let no_text = r#"{"type":"message","room":"d","seq":5,"id":"y","event":"order:new","data":[1],"from":null,"ts":"t"}"#;
        let update = RoomUpdate::from_message("d", 5, no_text, 0).unwrap();
        assert!(update.preview.is_none() && update.from.is_none());
    }

    #[test]
    fn keys_change_with_state_and_fit_a_cid() {
        let body = r#"{"event":"message","data":{},"from":null}"#;
        let a = RoomUpdate::from_message(&"r".repeat(128), 9, body, 3).unwrap();
        let b = RoomUpdate::from_message(&"r".repeat(128), 9, body, 0).unwrap();
        assert_ne!(a.key(), b.key());
        assert!(a.key().len() <= 64);
        assert_eq!(
            a.key(),
            RoomUpdate::from_message(&"r".repeat(128), 9, body, 3)
                .unwrap()
                .key()
        );
    }

    #[test]
    fn updates_are_spaced_by_the_interval() {
        assert_eq!(next_update_at(None, 5_000), 5_000);
        assert_eq!(next_update_at(Some(4_500), 5_000), 5_500);
        assert_eq!(next_update_at(Some(1_000), 5_000), 5_000);
    }
}
