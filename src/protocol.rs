//! The wire protocol v1: client frames parsed and validated, server frames built, and the limits.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::auth::User;
use crate::cid::validate_cid;
use crate::error::{RelayError, RelayResult};
use crate::occupancy::Counts;

/// Default largest text frame a client may send; larger frames close the socket with 4009.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;
pub const MAX_EVENT_CHARS: usize = 64;
pub const DEFAULT_EVENT: &str = "message";

/// A validated frame from a client.
#[derive(Debug)]
// Parsed by hand (`parse_client_frame`), on the `type` tag: the same shape for ts-rs.
#[cfg_attr(test, derive(ts_rs::TS), ts(tag = "type", rename_all = "lowercase"))]
pub enum ClientFrame {
    Publish(Publish),
    Typing {
        active: bool,
    },
    Read {
        seq: u64,
    },
    Ping,
    /// In-band renewal: a new token for the same user.
    Auth {
        token: String,
    },
    /// `edit` or `delete` of an earlier message (see [`crate::edits`]): two frames on the
    /// wire, mapped by hand in the wire types.
    #[cfg_attr(test, ts(skip))]
    Change(crate::edits::Change),
}

/// The longest token an `auth` frame may carry (RS256 tokens with many claims stay far below).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A publish request, from a WebSocket frame or an HTTP body.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Publish {
    #[cfg_attr(test, ts(optional))]
    pub cid: Option<String>,
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub event: Option<String>,
    #[cfg_attr(test, ts(type = "unknown"))]
    pub data: Box<RawValue>,
}

impl Publish {
    pub fn event_name(&self) -> &str {
        self.event.as_deref().unwrap_or(DEFAULT_EVENT)
    }

    /// The body of an HTTP publish (`POST /v1/rooms/{room}/messages`), held to the frame limit
    /// a socket's publish has; its `cid` is optional.
    pub fn from_http_body(body: &str, max_frame_bytes: usize) -> RelayResult<Publish> {
        if body.len() > max_frame_bytes {
            return Err(RelayError::too_large(
                "message is larger than the frame limit",
            ));
        }
        let publish: Publish = serde_json::from_str(body)
            .map_err(|e| RelayError::bad_request(format!("invalid publish body: {e}")))?;
        publish.validate(false)?;
        Ok(publish)
    }

    /// Checks `cid` (required over WebSocket, 1..=64 chars) and `event`.
    pub fn validate(&self, cid_required: bool) -> RelayResult<()> {
        match &self.cid {
            Some(cid) => validate_cid(cid)?,
            None if cid_required => return Err(RelayError::bad_request("publish needs a cid")),
            None => {}
        }
        if let Some(event) = &self.event {
            validate_event_name(event)?;
        }
        Ok(())
    }
}

/// Event names: 1..=64 characters of `[A-Za-z0-9_.:-]`.
pub fn validate_event_name(event: &str) -> RelayResult<()> {
    let ok = !event.is_empty()
        && event.len() <= MAX_EVENT_CHARS
        && event
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if crate::edits::is_record_event(event) {
        Err(RelayError::bad_request(format!(
            "event {event} is reserved for the relay's edit and delete records"
        )))
    } else if ok {
        Ok(())
    } else {
        Err(RelayError::bad_request(
            "event must be 1..=64 characters of A-Z a-z 0-9 _ . : -",
        ))
    }
}

#[derive(Deserialize)]
struct FrameHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    cid: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct TypingBody {
    active: bool,
}

#[derive(Deserialize)]
struct ReadBody {
    seq: u64,
}

#[derive(Deserialize)]
struct AuthBody {
    token: String,
}

/// A parse failure, with the frame's `cid` when one could be read, for the error frame.
#[derive(Debug)]
pub struct FrameError {
    pub error: RelayError,
    pub cid: Option<String>,
}

fn field_error(kind: &str, err: serde_json::Error) -> RelayError {
    RelayError::bad_request(format!("invalid {kind} frame: {err}"))
}

/// Parses one text frame. Size limits are checked by the caller before this.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let head: FrameHead = serde_json::from_str(text).map_err(|_| FrameError {
        error: RelayError::bad_request("frame is not a JSON object"),
        cid: None,
    })?;
    let cid = head
        .cid
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
        .filter(|cid| validate_cid(cid).is_ok());
    let fail = |error: RelayError| FrameError {
        error,
        cid: cid.clone(),
    };
    let kind = head
        .kind
        .ok_or_else(|| fail(RelayError::bad_request("frame has no type")))?;
    match kind.as_ref() {
        "publish" => {
            let publish: Publish =
                serde_json::from_str(text).map_err(|e| fail(field_error("publish", e)))?;
            publish.validate(true).map_err(fail)?;
            Ok(ClientFrame::Publish(publish))
        }
        "typing" => {
            let body: TypingBody =
                serde_json::from_str(text).map_err(|e| fail(field_error("typing", e)))?;
            Ok(ClientFrame::Typing {
                active: body.active,
            })
        }
        "read" => {
            let body: ReadBody =
                serde_json::from_str(text).map_err(|e| fail(field_error("read", e)))?;
            Ok(ClientFrame::Read { seq: body.seq })
        }
        "ping" => Ok(ClientFrame::Ping),
        "edit" | "delete" => crate::edits::Change::from_frame(text, kind == "delete")
            .map(ClientFrame::Change)
            .map_err(fail),
        "auth" => {
            let body: AuthBody =
                serde_json::from_str(text).map_err(|e| fail(field_error("auth", e)))?;
            if body.token.is_empty() || body.token.len() > MAX_TOKEN_BYTES {
                return Err(fail(RelayError::bad_request(format!(
                    "auth token must be 1..={MAX_TOKEN_BYTES} bytes"
                ))));
            }
            Ok(ClientFrame::Auth { token: body.token })
        }
        other => Err(fail(RelayError::bad_request(format!(
            "unknown frame type {:?}",
            truncate(other, 32)
        )))),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// A message as stored, replayed and broadcast.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct MessageFrame<'a> {
    #[serde(rename = "type")]
    #[cfg_attr(test, ts(type = r#""message""#))]
    pub kind: &'static str,
    pub room: &'a str,
    pub seq: u64,
    pub id: &'a str,
    pub event: &'a str,
    #[cfg_attr(test, ts(type = "unknown"))]
    pub data: &'a RawValue,
    pub from: Option<&'a User>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub cid: Option<&'a str>,
    pub ts: &'a str,
}

/// How far a user has read in a room: stored by the room, carried by `welcome` and `read` frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ReadMarker {
    pub user: User,
    pub seq: u64,
    pub at: String,
}

/// What a publisher learns about its message: the `ack` frame and the HTTP publish answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Receipt {
    pub seq: u64,
    pub id: String,
    pub ts: String,
    pub duplicate: bool,
}

/// The first frame of a connection.
#[derive(Debug)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Welcome<'a> {
    pub room: &'a str,
    pub conn_id: &'a str,
    pub user: &'a User,
    pub seq: u64,
    // Absent from the frame when `occupancy` is there. (Plain comments: ts-rs would copy doc
    // comments into the wire types.)
    #[cfg_attr(test, ts(as = "Option<Vec<User>>", optional))]
    pub presence: &'a [&'a User],
    // In a room past its presence limit: counts instead of the `presence` list (see
    // `crate::occupancy`).
    #[cfg_attr(test, ts(optional))]
    pub occupancy: Option<Counts>,
    pub reads: &'a [ReadMarker],
}

/// The frames the server builds per event, serialised in one place (the `Serialize` impl
/// below) straight from borrowed parts, with no `Value` tree in between: a welcome in a full
/// room lists up to a hundred users. Not here: `message` (the room stores its bytes, see
/// [`MessageFrame`]), `error` (`RelayError::to_frame`) and the fixed [`PING_FRAME`] and
/// [`PONG_FRAME`].
#[derive(Debug, Clone, Copy)]
// The Serialize impl below writes `type` first or in sorted order, and presence frames as
// `{"type":"presence","event":"join"|"leave",…}`: ts-rs expresses the tag and the flattened
// receipt with these attributes, but not a second constant field, so the presence frames are
// mapped by hand in `wire_types` (skipped here).
#[cfg_attr(test, derive(ts_rs::TS), ts(tag = "type", rename_all = "lowercase"))]
pub enum ServerFrame<'a> {
    Welcome(&'a Welcome<'a>),
    Ack {
        cid: &'a str,
        #[cfg_attr(test, ts(flatten))]
        receipt: &'a Receipt,
    },
    Typing {
        user: &'a User,
        active: bool,
    },
    Read(&'a ReadMarker),
    #[cfg_attr(test, ts(skip))]
    Join(&'a User),
    #[cfg_attr(test, ts(skip))]
    Leave {
        user: &'a User,
        last_seen: &'a str,
    },
    Synced {
        seq: u64,
    },
    Reset {
        seq: u64,
    },
    /// A renewal was accepted: the connection's token now expires at `exp` (unix seconds).
    Auth {
        exp: i64,
    },
    /// A big room's counts (see [`crate::occupancy`]).
    Occupancy(Counts),
}

impl ServerFrame<'_> {
    pub fn to_json(&self) -> String {
        // Cannot fail: every key is a string and every value plain data.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The key order is part of the bytes clients have always received: `welcome` leads with its
/// type, the others keep the sorted order of the `json!` maps they were first built with.
impl Serialize for ServerFrame<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match *self {
            ServerFrame::Welcome(welcome) => {
                map.serialize_entry("type", "welcome")?;
                map.serialize_entry("room", welcome.room)?;
                map.serialize_entry("conn_id", welcome.conn_id)?;
                map.serialize_entry("user", welcome.user)?;
                map.serialize_entry("seq", &welcome.seq)?;
                match &welcome.occupancy {
                    Some(counts) => map.serialize_entry("occupancy", counts)?,
                    None => map.serialize_entry("presence", welcome.presence)?,
                }
                map.serialize_entry("reads", welcome.reads)?;
            }
            ServerFrame::Ack { cid, receipt } => {
                map.serialize_entry("cid", cid)?;
                map.serialize_entry("duplicate", &receipt.duplicate)?;
                map.serialize_entry("id", &receipt.id)?;
                map.serialize_entry("seq", &receipt.seq)?;
                map.serialize_entry("ts", &receipt.ts)?;
                map.serialize_entry("type", "ack")?;
            }
            ServerFrame::Typing { user, active } => {
                map.serialize_entry("active", &active)?;
                map.serialize_entry("type", "typing")?;
                map.serialize_entry("user", user)?;
            }
            ServerFrame::Read(marker) => {
                map.serialize_entry("at", &marker.at)?;
                map.serialize_entry("seq", &marker.seq)?;
                map.serialize_entry("type", "read")?;
                map.serialize_entry("user", &marker.user)?;
            }
            ServerFrame::Join(user) => {
                map.serialize_entry("event", "join")?;
                map.serialize_entry("type", "presence")?;
                map.serialize_entry("user", user)?;
            }
            ServerFrame::Leave { user, last_seen } => {
                map.serialize_entry("event", "leave")?;
                map.serialize_entry("last_seen", last_seen)?;
                map.serialize_entry("type", "presence")?;
                map.serialize_entry("user", user)?;
            }
            ServerFrame::Synced { seq } => {
                map.serialize_entry("seq", &seq)?;
                map.serialize_entry("type", "synced")?;
            }
            ServerFrame::Auth { exp } => {
                map.serialize_entry("exp", &exp)?;
                map.serialize_entry("type", "auth")?;
            }
            ServerFrame::Reset { seq } => {
                map.serialize_entry("seq", &seq)?;
                map.serialize_entry("type", "reset")?;
            }
            ServerFrame::Occupancy(counts) => {
                map.serialize_entry("type", "occupancy")?;
                map.serialize_entry("connections", &counts.connections)?;
                map.serialize_entry("users", &counts.users)?;
            }
        }
        map.end()
    }
}

pub fn ack_frame(cid: &str, receipt: &Receipt) -> String {
    ServerFrame::Ack { cid, receipt }.to_json()
}

pub fn welcome_frame(welcome: &Welcome<'_>) -> String {
    ServerFrame::Welcome(welcome).to_json()
}

pub fn read_frame(marker: &ReadMarker) -> String {
    ServerFrame::Read(marker).to_json()
}

pub fn leave_frame(user: &User, last_seen: &str) -> String {
    ServerFrame::Leave { user, last_seen }.to_json()
}

pub fn synced_frame(seq: u64) -> String {
    ServerFrame::Synced { seq }.to_json()
}

pub fn reset_frame(seq: u64) -> String {
    ServerFrame::Reset { seq }.to_json()
}

pub fn auth_frame(exp: i64) -> String {
    ServerFrame::Auth { exp }.to_json()
}

pub fn join_frame(user: &User) -> String {
    ServerFrame::Join(user).to_json()
}

pub fn occupancy_frame(counts: Counts) -> String {
    ServerFrame::Occupancy(counts).to_json()
}

pub fn typing_frame(user: &User, active: bool) -> String {
    ServerFrame::Typing { user, active }.to_json()
}

/// Reads the `batch` query parameter of a connect: `1`/`true` opts into batched delivery
/// (several frames in one WebSocket message, as a JSON array), `0`/`false` keeps one frame per
/// message.
pub fn parse_batch_flag(value: &str) -> RelayResult<bool> {
    match value {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(RelayError::bad_request("batch must be 1, 0, true or false")),
    }
}

pub const PING_FRAME: &str = r#"{"type":"ping"}"#;
pub const PONG_FRAME: &str = r#"{"type":"pong"}"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn an_http_publish_body_is_held_to_the_frame_limit_and_needs_no_cid() {
        let body = r#"{"event":"note","data":{"text":"hi"}}"#;
        let publish = Publish::from_http_body(body, body.len()).unwrap();
        assert_eq!(publish.cid, None);
        assert_eq!(publish.event_name(), "note");
        let over = Publish::from_http_body(body, body.len() - 1).unwrap_err();
        assert_eq!(over.code, ErrorCode::TooLarge);
        for bad in [
            r#"{"data":1,"cid":""}"#,
            r#"{"data":1,"event":"a b"}"#,
            "[]",
            "{",
        ] {
            let refused = Publish::from_http_body(bad, 1_000).unwrap_err();
            assert_eq!(refused.code, ErrorCode::BadRequest, "{bad}");
        }
    }

    #[test]
    fn ack_and_join_frames_keep_their_bytes() {
        let receipt = Receipt {
            seq: 7,
            id: "m1".into(),
            ts: "2026-11-21T10:00:00.000Z".into(),
            duplicate: false,
        };
        let map = serde_json::json!({
            "type": "ack", "cid": "c\"1", "seq": 7, "id": "m1",
            "ts": "2026-11-21T10:00:00.000Z", "duplicate": false,
        });
        assert_eq!(ack_frame("c\"1", &receipt), map.to_string());
        let user = User {
            id: "ü".into(),
            name: Some("Ann".into()),
            role: None,
        };
        let map = serde_json::json!({"type": "presence", "event": "join", "user": &user});
        assert_eq!(join_frame(&user), map.to_string());
    }

    fn bad(text: &str) -> FrameError {
        parse_client_frame(text).expect_err(text)
    }

    #[test]
    fn parses_publish_with_and_without_event() {
        match parse_client_frame(r#"{"type":"publish","cid":"c1","data":{"text":"hi"}}"#).unwrap() {
            ClientFrame::Publish(p) => {
                assert_eq!(p.cid.as_deref(), Some("c1"));
                assert_eq!(p.event_name(), "message");
                assert_eq!(p.data.get(), r#"{"text":"hi"}"#);
            }
            other => panic!("{other:?}"),
        }
        match parse_client_frame(r#"{"type":"publish","cid":"c","event":"order:updated","data":1}"#)
            .unwrap()
        {
            ClientFrame::Publish(p) => assert_eq!(p.event_name(), "order:updated"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn publish_data_may_be_null_but_not_missing() {
        assert!(parse_client_frame(r#"{"type":"publish","cid":"c","data":null}"#).is_ok());
        let err = bad(r#"{"type":"publish","cid":"c"}"#);
        assert_eq!(err.error.code, ErrorCode::BadRequest);
        assert_eq!(err.cid.as_deref(), Some("c"));
    }

    #[test]
    fn publish_cid_rules() {
        assert!(bad(r#"{"type":"publish","data":1}"#)
            .error
            .message
            .contains("cid"));
        assert!(bad(r#"{"type":"publish","cid":"","data":1}"#).cid.is_none());
        assert!(bad(r#"{"type":"publish","cid":5,"data":1}"#).cid.is_none());
        let long = "x".repeat(65);
        bad(&format!(r#"{{"type":"publish","cid":"{long}","data":1}}"#));
        let max = "é".repeat(64);
        assert!(
            parse_client_frame(&format!(r#"{{"type":"publish","cid":"{max}","data":1}}"#)).is_ok()
        );
    }

    #[test]
    fn event_name_rules() {
        for good in ["message", "call:new", "a.b-c_d", &"e".repeat(64)] {
            assert!(validate_event_name(good).is_ok(), "{good}");
        }
        for wrong in ["", "has space", "ünicode", &"e".repeat(65), "a/b"] {
            assert!(validate_event_name(wrong).is_err(), "{wrong}");
        }
        bad(r#"{"type":"publish","cid":"c","event":"a b","data":1}"#);
    }

    #[test]
    fn parses_typing_read_ping() {
        assert!(matches!(
            parse_client_frame(r#"{"type":"typing","active":true}"#).unwrap(),
            ClientFrame::Typing { active: true }
        ));
        assert!(matches!(
            parse_client_frame(r#"{"type":"read","seq":7}"#).unwrap(),
            ClientFrame::Read { seq: 7 }
        ));
        assert!(matches!(
            parse_client_frame(r#"{"type": "ping"}"#).unwrap(),
            ClientFrame::Ping
        ));
        bad(r#"{"type":"typing","active":"yes"}"#);
        bad(r#"{"type":"read","seq":-1}"#);
    }

    #[test]
    fn rejects_non_objects_and_unknown_types() {
        for text in ["", "nope", "[]", "42", r#"{"data":1}"#, r#"{"type":7}"#] {
            assert_eq!(bad(text).error.code, ErrorCode::BadRequest, "{text}");
        }
        assert!(bad(r#"{"type":"shout"}"#)
            .error
            .message
            .contains("unknown frame type"));
    }

    #[test]
    fn message_frame_serialises_in_contract_shape() {
        let data = RawValue::from_string(r#"{"text":"hi"}"#.into()).unwrap();
        let user = User {
            id: "u1".into(),
            name: Some("Ann".into()),
            role: None,
        };
        let frame = MessageFrame {
            kind: "message",
            room: "r",
            seq: 3,
            id: "m1",
            event: "message",
            data: &data,
            from: Some(&user),
            cid: Some("c"),
            ts: "2026-01-01T00:00:00.000Z",
        };
        let v: serde_json::Value = serde_json::to_value(&frame).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["seq"], 3);
        assert_eq!(v["data"]["text"], "hi");
        assert_eq!(v["from"]["id"], "u1");
        assert!(v["from"].get("role").is_none());
        let backend = MessageFrame {
            from: None,
            cid: None,
            ..frame
        };
        let v: serde_json::Value = serde_json::to_value(&backend).unwrap();
        assert!(v["from"].is_null());
        assert!(v.get("cid").is_none());
    }

    #[test]
    fn welcome_frame_carries_every_field() {
        let alice = User {
            id: "alice".into(),
            name: Some("Alice".into()),
            role: None,
        };
        let bob = User {
            id: "bob".into(),
            name: None,
            role: None,
        };
        let read = ReadMarker {
            user: bob.clone(),
            seq: 3,
            at: "2026-11-21T10:00:00.000Z".into(),
        };
        let frame = welcome_frame(&Welcome {
            room: "chat:1",
            conn_id: "c0ffee",
            user: &alice,
            seq: 7,
            presence: &[&alice, &bob],
            occupancy: None,
            reads: std::slice::from_ref(&read),
        });
        let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(v["type"], "welcome");
        assert_eq!(v["room"], "chat:1");
        assert_eq!(v["conn_id"], "c0ffee");
        assert_eq!(v["user"]["id"], "alice");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["presence"][1]["id"], "bob");
        assert_eq!(v["reads"][0]["seq"], 3);
        assert_eq!(v.as_object().unwrap().len(), 7, "no other fields: {frame}");
    }

    #[test]
    fn batch_flag_accepts_only_its_four_spellings() {
        assert_eq!(parse_batch_flag("1"), Ok(true));
        assert_eq!(parse_batch_flag("true"), Ok(true));
        assert_eq!(parse_batch_flag("0"), Ok(false));
        assert_eq!(parse_batch_flag("false"), Ok(false));
        for bad in ["", "yes", "TRUE", "2", "1 "] {
            let err = parse_batch_flag(bad).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::BadRequest, "{bad:?}");
        }
    }

    /// The exact bytes of every server frame, as clients have always received them: most keep
    /// the sorted key order of the `json!` maps they were first built with.
    #[test]
    fn server_frames_keep_their_exact_bytes() {
        let ann = User {
            id: "ann".into(),
            name: Some("Ann \"A\" Ünal".into()),
            role: Some("agent".into()),
        };
        let bob = User {
            id: "bob\u{1}".into(),
            name: None,
            role: None,
        };
        let receipt = Receipt {
            seq: 18_446_744_073_709_551_615,
            id: "m\\1".into(),
            ts: "2026-11-21T10:00:00.000Z".into(),
            duplicate: true,
        };
        assert_eq!(
            ack_frame("c\"1", &receipt),
            r#"{"cid":"c\"1","duplicate":true,"id":"m\\1","seq":18446744073709551615,"ts":"2026-11-21T10:00:00.000Z","type":"ack"}"#
        );
        assert_eq!(
            typing_frame(&ann, true),
            r#"{"active":true,"type":"typing","user":{"id":"ann","name":"Ann \"A\" Ünal","role":"agent"}}"#
        );
        assert_eq!(
            typing_frame(&bob, false),
            r#"{"active":false,"type":"typing","user":{"id":"bob\u0001"}}"#
        );
        let marker = ReadMarker {
            user: ann.clone(),
            seq: 3,
            at: "2026-11-21T10:00:01.000Z".into(),
        };
        assert_eq!(
            read_frame(&marker),
            r#"{"at":"2026-11-21T10:00:01.000Z","seq":3,"type":"read","user":{"id":"ann","name":"Ann \"A\" Ünal","role":"agent"}}"#
        );
        assert_eq!(
            join_frame(&bob),
            r#"{"event":"join","type":"presence","user":{"id":"bob\u0001"}}"#
        );
        assert_eq!(
            leave_frame(&ann, "2026-11-21T10:00:02.000Z"),
            r#"{"event":"leave","last_seen":"2026-11-21T10:00:02.000Z","type":"presence","user":{"id":"ann","name":"Ann \"A\" Ünal","role":"agent"}}"#
        );
        assert_eq!(synced_frame(0), r#"{"seq":0,"type":"synced"}"#);
        assert_eq!(reset_frame(42), r#"{"seq":42,"type":"reset"}"#);
        assert_eq!(
            auth_frame(1_800_000_000),
            r#"{"exp":1800000000,"type":"auth"}"#
        );
        assert_eq!(
            welcome_frame(&Welcome {
                room: "city:Саратов",
                conn_id: "c0ffee",
                user: &ann,
                seq: 7,
                presence: &[&ann, &bob],
                occupancy: None,
                reads: std::slice::from_ref(&marker),
            }),
            concat!(
                r#"{"type":"welcome","room":"city:Саратов","conn_id":"c0ffee","#,
                r#""user":{"id":"ann","name":"Ann \"A\" Ünal","role":"agent"},"seq":7,"#,
                r#""presence":[{"id":"ann","name":"Ann \"A\" Ünal","role":"agent"},{"id":"bob\u0001"}],"#,
                r#""reads":[{"user":{"id":"ann","name":"Ann \"A\" Ünal","role":"agent"},"seq":3,"at":"2026-11-21T10:00:01.000Z"}]}"#
            )
        );
        assert_eq!(
            welcome_frame(&Welcome {
                room: "r",
                conn_id: "c",
                user: &bob,
                seq: 0,
                presence: &[],
                occupancy: None,
                reads: &[],
            }),
            r#"{"type":"welcome","room":"r","conn_id":"c","user":{"id":"bob\u0001"},"seq":0,"presence":[],"reads":[]}"#
        );
        assert_eq!(
            welcome_frame(&Welcome {
                room: "big",
                conn_id: "c",
                user: &bob,
                seq: 3,
                presence: &[],
                occupancy: Some(Counts::new(250, 101)),
                reads: &[],
            }),
            r#"{"type":"welcome","room":"big","conn_id":"c","user":{"id":"bob\u0001"},"seq":3,"occupancy":{"connections":250,"users":101},"reads":[]}"#
        );
        assert_eq!(
            occupancy_frame(Counts::new(250, 101)),
            r#"{"type":"occupancy","connections":250,"users":101}"#
        );
        let data = RawValue::from_string(r#"{"text":"hi"}"#.into()).unwrap();
        let message = MessageFrame {
            kind: "message",
            room: "r",
            seq: 9,
            id: "m9",
            event: "order:new",
            data: &data,
            from: Some(&bob),
            cid: Some("c9"),
            ts: "2026-11-21T10:00:03.000Z",
        };
        assert_eq!(
            serde_json::to_string(&message).unwrap(),
            r#"{"type":"message","room":"r","seq":9,"id":"m9","event":"order:new","data":{"text":"hi"},"from":{"id":"bob\u0001"},"cid":"c9","ts":"2026-11-21T10:00:03.000Z"}"#
        );
        assert_eq!(PING_FRAME, r#"{"type":"ping"}"#);
        assert_eq!(PONG_FRAME, r#"{"type":"pong"}"#);
    }

    #[test]
    fn auth_frames_carry_a_bounded_token() {
        match parse_client_frame(r#"{"type":"auth","token":"a.b.c"}"#) {
            Ok(ClientFrame::Auth { token }) => assert_eq!(token, "a.b.c"),
            other => panic!("{other:?}"),
        }
        let long = format!(
            r#"{{"type":"auth","token":"{}"}}"#,
            "x".repeat(MAX_TOKEN_BYTES + 1)
        );
        for bad in [
            r#"{"type":"auth"}"#,
            r#"{"type":"auth","token":7}"#,
            r#"{"type":"auth","token":""}"#,
            long.as_str(),
        ] {
            let err = parse_client_frame(bad).unwrap_err();
            assert_eq!(err.error.code, ErrorCode::BadRequest, "{bad}");
        }
    }
}
