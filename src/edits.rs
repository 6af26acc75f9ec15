//! Editing and deleting messages: the request (client frame or HTTP body), who may change a
//! message, the record committed for it at a new seq, and how a stored body becomes the
//! message's current version (one SQL expression, run by the room's SQLite and by D1).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::auth::User;
use crate::cid::validate_cid;
use crate::error::{RelayError, RelayResult};
use crate::room::StoredMessage;

/// The `event` of the record an edit commits.
pub const EDITED_EVENT: &str = "message.edited";
/// The `event` of the record a delete commits.
pub const DELETED_EVENT: &str = "message.deleted";
/// `MODERATOR_ROLES` when unset: token roles that may edit and delete anyone's message.
pub const DEFAULT_MODERATOR_ROLES: &str = "moderator,admin";
/// Roles `MODERATOR_ROLES` lists at most (the rest are ignored).
const MAX_MODERATOR_ROLES: usize = 32;

/// The room's table of changed messages: one row per message edited or deleted, kept for good
/// like the `messages` rows (small: no data, which stays in the records).
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS message_changes (
    ref_seq INTEGER PRIMARY KEY,
    edited_at TEXT,
    deleted_at TEXT,
    edit_seq INTEGER
)";

/// Whether an event name is one of the records edits and deletes commit: reserved for the
/// relay, so that no publish or broadcast can pass for one.
pub fn is_record_event(event: &str) -> bool {
    event == EDITED_EVENT || event == DELETED_EVENT
}

/// The body of a stored message (the column `of`, or a `?` parameter) after an edit: its
/// `data` replaced (by the next parameter, JSON text) and `edited_at` (the one after) set.
/// SQLite keeps the other keys and their order.
pub fn edited_body(of: &str) -> String {
    format!("json_set({of}, '$.data', json(?), '$.edited_at', ?)")
}

/// The body of a stored message after a delete: `data` null and `deleted_at` (the next
/// parameter) set.
pub fn deleted_body(of: &str) -> String {
    format!("json_set({of}, '$.data', json('null'), '$.deleted_at', ?)")
}

/// `MODERATOR_ROLES`: comma-separated token roles; unset means [`DEFAULT_MODERATOR_ROLES`],
/// empty means nobody moderates.
pub fn moderator_roles(var: Option<String>) -> Vec<String> {
    var.as_deref()
        .unwrap_or(DEFAULT_MODERATOR_ROLES)
        .split(',')
        .map(str::trim)
        .filter(|role| !role.is_empty())
        .take(MAX_MODERATOR_ROLES)
        .map(str::to_string)
        .collect()
}

/// A request to change message `seq`: new `data` for an edit, `None` for a delete.
#[derive(Debug)]
pub struct Change {
    pub cid: Option<String>,
    pub seq: u64,
    pub data: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct EditBody {
    cid: Option<String>,
    seq: Option<u64>,
    data: Box<RawValue>,
}

#[derive(Deserialize)]
struct DeleteBody {
    cid: Option<String>,
    seq: Option<u64>,
}

impl Change {
    /// An `edit` (`delete: false`) or `delete` client frame; the cid is required.
    pub fn from_frame(text: &str, delete: bool) -> RelayResult<Change> {
        let change = Change::parse(text, None, delete)?;
        if change.cid.is_none() {
            return Err(RelayError::bad_request(if delete {
                "delete needs a cid"
            } else {
                "edit needs a cid"
            }));
        }
        Ok(change)
    }

    /// The body of `PATCH` (edit) or `DELETE` `/v1/rooms/{room}/messages/{seq}`: `{"cid"?,
    /// "data"}` or `{"cid"?}` (a delete may have no body), held to the frame limit.
    pub fn from_http_body(
        body: &str,
        seq: u64,
        delete: bool,
        max_frame_bytes: usize,
    ) -> RelayResult<Change> {
        if body.len() > max_frame_bytes {
            return Err(RelayError::too_large("edit is larger than the frame limit"));
        }
        let body = match body.trim() {
            "" if delete => "{}",
            _ => body,
        };
        Change::parse(body, Some(seq), delete)
    }

    fn parse(text: &str, path_seq: Option<u64>, delete: bool) -> RelayResult<Change> {
        let kind = if delete { "delete" } else { "edit" };
        let invalid =
            |e: serde_json::Error| RelayError::bad_request(format!("invalid {kind}: {e}"));
        let (cid, seq, data) = if delete {
            let body: DeleteBody = serde_json::from_str(text).map_err(invalid)?;
            (body.cid, body.seq, None)
        } else {
            let body: EditBody = serde_json::from_str(text).map_err(invalid)?;
            if body.data.get() == "null" {
                return Err(RelayError::bad_request(
                    "edit data must not be null: delete the message instead",
                ));
            }
            (body.cid, body.seq, Some(body.data))
        };
        if let Some(cid) = &cid {
            validate_cid(cid)?;
        }
        let seq = match (path_seq, seq) {
            (Some(path), Some(body)) if path != body => {
                return Err(RelayError::bad_request(
                    "the body's seq differs from the path's",
                ))
            }
            (Some(seq), _) | (None, Some(seq)) => seq,
            (None, None) => return Err(RelayError::bad_request(format!("{kind} needs a seq"))),
        };
        if seq == 0 {
            return Err(RelayError::bad_request("seq must be at least 1"));
        }
        Ok(Change { cid, seq, data })
    }

    pub fn is_delete(&self) -> bool {
        self.data.is_none()
    }

    pub fn event(&self) -> &'static str {
        if self.is_delete() {
            DELETED_EVENT
        } else {
            EDITED_EVENT
        }
    }
}

/// What the room knows of the message a change names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `u:<sub>` for a user's message, `b:` for a backend's.
    pub sender_key: String,
    pub event: String,
    pub deleted: bool,
}

/// Whether `user` may change message `seq` (`None`: the room never had it): its author may,
/// and so may a user whose token role is a moderator's; a backend's message only a moderator.
/// Records of edits and deletes, and deleted messages, cannot be changed.
pub fn check(
    user: &User,
    seq: u64,
    target: Option<&Target>,
    moderator_roles: &[String],
) -> RelayResult<()> {
    let target = target.ok_or_else(|| RelayError::not_found(format!("no message {seq} here")))?;
    if is_record_event(&target.event) {
        return Err(RelayError::bad_request(format!(
            "{seq} is the record of an edit or delete, not a message"
        )));
    }
    let moderator = user
        .role
        .as_ref()
        .is_some_and(|role| moderator_roles.contains(role));
    if !moderator && target.sender_key != format!("u:{}", user.id) {
        return Err(RelayError::forbidden(
            if target.sender_key.starts_with("b:") {
                "only a moderator may change a backend's message"
            } else {
                "only the author or a moderator may change this message"
            },
        ));
    }
    if target.deleted {
        return Err(RelayError::not_found(format!("message {seq} was deleted")));
    }
    Ok(())
}

/// The record of a change, a `message` frame stored, broadcast and replayed like any other:
/// `ref_seq` names the message changed, `data` is its new data (`null` for a delete).
#[derive(Serialize)]
struct RecordFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    seq: u64,
    id: &'a str,
    event: &'static str,
    data: Option<&'a RawValue>,
    from: &'a User,
    #[serde(skip_serializing_if = "Option::is_none")]
    cid: Option<&'a str>,
    ts: &'a str,
    ref_seq: u64,
}

/// The record of `change` by `user`, as the room stores it at `seq`.
pub fn record(
    room: &str,
    seq: u64,
    id: String,
    ts: String,
    user: &User,
    change: &Change,
) -> RelayResult<StoredMessage> {
    let body = serde_json::to_string(&RecordFrame {
        kind: "message",
        room,
        seq,
        id: &id,
        event: change.event(),
        data: change.data.as_deref(),
        from: user,
        cid: change.cid.as_deref(),
        ts: &ts,
        ref_seq: change.seq,
    })
    .map_err(|_| RelayError::internal())?;
    Ok(StoredMessage {
        seq,
        id,
        event: change.event().to_string(),
        sender_key: format!("u:{}", user.id),
        cid: change.cid.clone(),
        ts,
        body,
    })
}

/// What a committed record does to the message it names, as the archive applies it to D1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub ref_seq: u64,
    /// The record's seq.
    pub seq: u64,
    /// The new data (JSON text); `None` for a delete.
    pub data: Option<String>,
    /// When (the record's `ts`): `edited_at` or `deleted_at`.
    pub at: String,
}

#[derive(Deserialize)]
struct RecordFields<'a> {
    ref_seq: u64,
    #[serde(borrow)]
    data: &'a RawValue,
    ts: String,
}

impl Applied {
    /// The change a stored message records; `None` for any other message.
    pub fn of(message: &StoredMessage) -> Option<Applied> {
        if !is_record_event(&message.event) {
            return None;
        }
        let fields: RecordFields = serde_json::from_str(&message.body).ok()?;
        Some(Applied {
            ref_seq: fields.ref_seq,
            seq: message.seq,
            data: (message.event == EDITED_EVENT).then(|| fields.data.get().to_string()),
            at: fields.ts,
        })
    }
}

/// The store's side of changes (the room's SQLite; see `room_edits`).
pub trait EditStore {
    /// The message at `seq`, if the room ever had it (its row outlives its body).
    fn edit_target(&self, seq: u64) -> RelayResult<Option<Target>>;
    /// Applies a committed record to the message it names: its state, and its body where the
    /// room still keeps it.
    fn apply_change(&self, applied: &Applied) -> RelayResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn user(id: &str, role: Option<&str>) -> User {
        User {
            id: id.into(),
            name: None,
            role: role.map(str::to_string),
        }
    }

    fn target(sender_key: &str) -> Target {
        Target {
            sender_key: sender_key.into(),
            event: "message".into(),
            deleted: false,
        }
    }

    fn roles() -> Vec<String> {
        moderator_roles(None)
    }

    #[test]
    fn moderator_roles_default_to_moderator_and_admin() {
        assert_eq!(roles(), ["moderator", "admin"]);
        assert_eq!(
            moderator_roles(Some(" mod , ,boss".into())),
            ["mod", "boss"]
        );
        assert!(moderator_roles(Some(String::new())).is_empty(), "nobody");
    }

    #[test]
    fn the_author_and_moderators_may_change_others_are_refused() {
        let ann = user("ann", None);
        assert!(check(&ann, 1, Some(&target("u:ann")), &roles()).is_ok());
        let refused = check(&ann, 1, Some(&target("u:bob")), &roles()).unwrap_err();
        assert_eq!(refused.code, ErrorCode::Forbidden);
        let mallory = user("mallory", Some("member"));
        assert_eq!(
            check(&mallory, 1, Some(&target("u:bob")), &roles())
                .unwrap_err()
                .code,
            ErrorCode::Forbidden
        );
        let moderator = user("mo", Some("moderator"));
        assert!(check(&moderator, 1, Some(&target("u:bob")), &roles()).is_ok());
        assert!(check(&user("ad", Some("admin")), 1, Some(&target("b:")), &roles()).is_ok());
        let backend = check(&ann, 1, Some(&target("b:")), &roles()).unwrap_err();
        assert_eq!(backend.code, ErrorCode::Forbidden);
        assert!(backend.message.contains("backend"), "{}", backend.message);
        // With MODERATOR_ROLES empty nobody moderates.
        assert!(check(&moderator, 1, Some(&target("u:bob")), &[]).is_err());
    }

    #[test]
    fn missing_deleted_and_record_targets_are_refused_clearly() {
        let ann = user("ann", None);
        let missing = check(&ann, 9, None, &roles()).unwrap_err();
        assert_eq!(
            (missing.code, missing.message.as_str()),
            (ErrorCode::NotFound, "no message 9 here")
        );
        let deleted = Target {
            deleted: true,
            ..target("u:ann")
        };
        let gone = check(&ann, 3, Some(&deleted), &roles()).unwrap_err();
        assert_eq!(
            (gone.code, gone.message.as_str()),
            (ErrorCode::NotFound, "message 3 was deleted")
        );
        for event in [EDITED_EVENT, DELETED_EVENT] {
            let record = Target {
                event: event.into(),
                ..target("u:ann")
            };
            assert_eq!(
                check(&ann, 4, Some(&record), &roles()).unwrap_err().code,
                ErrorCode::BadRequest
            );
        }
    }

    #[test]
    fn frames_need_cid_seq_and_non_null_data_for_an_edit() {
        let edit = Change::from_frame(
            r#"{"type":"edit","cid":"e1","seq":4,"data":{"t":1}}"#,
            false,
        )
        .unwrap();
        assert_eq!(
            (
                edit.cid.as_deref(),
                edit.seq,
                edit.data.as_ref().unwrap().get()
            ),
            (Some("e1"), 4, r#"{"t":1}"#)
        );
        assert_eq!(edit.event(), EDITED_EVENT);
        let delete = Change::from_frame(r#"{"type":"delete","cid":"d1","seq":4}"#, true).unwrap();
        assert!(delete.is_delete());
        assert_eq!(delete.event(), DELETED_EVENT);
        for (bad, is_delete) in [
            (r#"{"type":"edit","seq":4,"data":1}"#, false),
            (r#"{"type":"edit","cid":"e","seq":4}"#, false),
            (r#"{"type":"edit","cid":"e","seq":4,"data":null}"#, false),
            (r#"{"type":"edit","cid":"e","data":1}"#, false),
            (r#"{"type":"delete","cid":"e","seq":0}"#, true),
            (r#"{"type":"delete","cid":"","seq":1}"#, true),
            (r#"{"type":"delete","cid":"d","seq":-1}"#, true),
        ] {
            let err = Change::from_frame(bad, is_delete).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{bad}");
        }
    }

    #[test]
    fn http_bodies_take_the_seq_from_the_path_and_are_held_to_the_frame_limit() {
        let body = r#"{"cid":"e","data":"new"}"#;
        let edit = Change::from_http_body(body, 7, false, body.len()).unwrap();
        assert_eq!((edit.seq, edit.cid.as_deref()), (7, Some("e")));
        assert_eq!(
            Change::from_http_body(body, 7, false, body.len() - 1)
                .unwrap_err()
                .code,
            ErrorCode::TooLarge
        );
        let no_cid = Change::from_http_body(r#"{"data":1}"#, 7, false, 100).unwrap();
        assert_eq!(no_cid.cid, None, "optional over HTTP, as for a publish");
        let delete = Change::from_http_body("", 7, true, 100).unwrap();
        assert!(delete.is_delete() && delete.seq == 7);
        assert!(
            Change::from_http_body("", 7, false, 100).is_err(),
            "edit needs data"
        );
        let other = Change::from_http_body(r#"{"seq":8}"#, 7, true, 100).unwrap_err();
        assert_eq!(other.code, ErrorCode::BadRequest);
    }

    #[test]
    fn records_carry_ref_seq_and_the_new_data_and_the_archive_reads_them_back() {
        let mo = user("mo", Some("moderator"));
        let edit = Change::from_frame(r#"{"cid":"e","seq":3,"data":{"t":"new"}}"#, false).unwrap();
        let stored = record("chat:1", 9, "id9".into(), "T".into(), &mo, &edit).unwrap();
        assert_eq!(
            stored.body,
            r#"{"type":"message","room":"chat:1","seq":9,"id":"id9","event":"message.edited","data":{"t":"new"},"from":{"id":"mo","role":"moderator"},"cid":"e","ts":"T","ref_seq":3}"#
        );
        assert_eq!(
            (stored.event.as_str(), stored.sender_key.as_str()),
            (EDITED_EVENT, "u:mo")
        );
        assert_eq!(
            Applied::of(&stored),
            Some(Applied {
                ref_seq: 3,
                seq: 9,
                data: Some(r#"{"t":"new"}"#.into()),
                at: "T".into()
            })
        );
        let delete = Change::from_frame(r#"{"cid":"d","seq":3}"#, true).unwrap();
        let stored = record("chat:1", 10, "id10".into(), "U".into(), &mo, &delete).unwrap();
        let body: serde_json::Value = serde_json::from_str(&stored.body).unwrap();
        assert_eq!(
            (&body["data"], &body["event"], &body["ref_seq"]),
            (
                &serde_json::Value::Null,
                &serde_json::json!(DELETED_EVENT),
                &serde_json::json!(3)
            )
        );
        assert_eq!(Applied::of(&stored).unwrap().data, None);
        let plain = StoredMessage {
            event: "message".into(),
            ..stored
        };
        assert_eq!(Applied::of(&plain), None, "only records apply");
    }

    #[test]
    fn record_events_are_reserved() {
        assert!(is_record_event("message.edited") && is_record_event("message.deleted"));
        assert!(!is_record_event("message") && !is_record_event("message.created"));
    }
}
