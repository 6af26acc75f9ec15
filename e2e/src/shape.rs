//! Assertions on the exact shapes of the wire contract v1: error bodies, `welcome`, `ack`,
//! `message`, `error` frames and timestamps. Extra fields are tolerated (the contract may be
//! extended); every field the contract names is checked.

use crate::token::User;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// The `type` of a frame, or `""`.
pub fn ty(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("")
}

/// A field that must be an unsigned integer.
pub fn u64_field(v: &Value, field: &str) -> u64 {
    v.get(field)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("field {field:?} must be an unsigned integer in {v}"))
}

/// A field that must be a string.
pub fn str_field<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("field {field:?} must be a string in {v}"))
}

/// `{"error":{"code":<code>,"message":<non-empty string>}}`.
pub fn assert_error_body(v: &Value, code: &str, ctx: &str) {
    let err = v
        .get("error")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("{ctx}: expected {{\"error\":{{..}}}}, got {v}"));
    assert_eq!(
        err.get("code").and_then(Value::as_str),
        Some(code),
        "{ctx}: error code in {v}"
    );
    let msg = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{ctx}: error.message must be a string in {v}"));
    assert!(
        !msg.is_empty(),
        "{ctx}: error.message must not be empty in {v}"
    );
}

/// An RFC 3339 timestamp in UTC (`Z` or `+00:00`).
pub fn assert_rfc3339_utc(v: &Value, ctx: &str) -> DateTime<Utc> {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{ctx}: timestamp must be a string, got {v}"));
    let t = DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{ctx}: {s:?} is not RFC 3339: {e}"));
    assert_eq!(
        t.offset().local_minus_utc(),
        0,
        "{ctx}: timestamp {s:?} must be in UTC"
    );
    t.with_timezone(&Utc)
}

/// A user object `{"id","name"?,"role"?}` matching `who` (name/role present iff the token had
/// them).
pub fn assert_user(v: &Value, who: &User, ctx: &str) {
    assert!(v.is_object(), "{ctx}: user must be an object, got {v}");
    assert_eq!(
        v.get("id").and_then(Value::as_str),
        Some(who.id.as_str()),
        "{ctx}: user.id in {v}"
    );
    for (field, want) in [("name", &who.name), ("role", &who.role)] {
        let got = v.get(field).filter(|x| !x.is_null());
        match want {
            Some(w) => assert_eq!(
                got.and_then(Value::as_str),
                Some(w.as_str()),
                "{ctx}: user.{field} in {v}"
            ),
            None => assert!(got.is_none(), "{ctx}: user.{field} should be absent in {v}"),
        }
    }
}

/// The ids in a `presence` array.
pub fn presence_ids(welcome: &Value) -> Vec<String> {
    welcome
        .get("presence")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("welcome.presence must be an array in {welcome}"))
        .iter()
        .map(|p| {
            p.get("id")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("presence entries need a string id: {welcome}"))
                .to_string()
        })
        .collect()
}

/// The first frame: `{"type":"welcome","room","conn_id","user","seq","presence"}`. Returns the
/// welcome's `seq`.
pub fn assert_welcome(v: &Value, room: &str, who: &User) -> u64 {
    assert_eq!(ty(v), "welcome", "first frame must be a welcome, got {v}");
    assert_eq!(
        v.get("room").and_then(Value::as_str),
        Some(room),
        "welcome.room in {v}"
    );
    // The contract does not type conn_id; accept a non-empty string or a number.
    match v.get("conn_id") {
        Some(Value::String(s)) => assert!(!s.is_empty(), "welcome.conn_id is empty in {v}"),
        Some(Value::Number(_)) => {}
        _ => panic!("welcome.conn_id must be a string (or number) in {v}"),
    }
    assert_user(&v["user"], who, "welcome.user");
    let seq = u64_field(v, "seq");
    let presence = v["presence"]
        .as_array()
        .unwrap_or_else(|| panic!("welcome.presence must be an array in {v}"));
    let me = presence
        .iter()
        .find(|p| p.get("id").and_then(Value::as_str) == Some(who.id.as_str()))
        .unwrap_or_else(|| panic!("welcome.presence must include the connecting user: {v}"));
    assert_user(me, who, "welcome.presence[me]");
    seq
}

/// What an ack or a message carries: the message's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    pub id: String,
    pub ts: String,
}

impl Stamp {
    /// The timestamp as an instant.
    pub fn instant(&self) -> DateTime<Utc> {
        assert_rfc3339_utc(&Value::String(self.ts.clone()), "stamp.ts")
    }
}

/// `{"type":"ack","cid","seq","id","ts","duplicate"}`.
pub fn assert_ack(v: &Value, cid: &str, duplicate: bool) -> Stamp {
    assert_eq!(ty(v), "ack", "expected an ack, got {v}");
    assert_eq!(
        v.get("cid").and_then(Value::as_str),
        Some(cid),
        "ack.cid in {v}"
    );
    assert_eq!(
        v.get("duplicate").and_then(Value::as_bool),
        Some(duplicate),
        "ack.duplicate in {v}"
    );
    let stamp = Stamp {
        seq: u64_field(v, "seq"),
        id: str_field(v, "id").to_string(),
        ts: str_field(v, "ts").to_string(),
    };
    assert!(stamp.seq >= 1, "ack.seq starts at 1: {v}");
    assert!(!stamp.id.is_empty(), "ack.id must not be empty: {v}");
    assert_rfc3339_utc(&v["ts"], "ack.ts");
    stamp
}

/// The parts every `message` shares: type, room, event, data, and a well-formed seq, id and ts.
pub fn assert_message_envelope(v: &Value, room: &str, event: &str, data: &Value) -> Stamp {
    assert_eq!(ty(v), "message", "expected a message, got {v}");
    assert_eq!(
        v.get("room").and_then(Value::as_str),
        Some(room),
        "message.room in {v}"
    );
    assert_eq!(
        v.get("event").and_then(Value::as_str),
        Some(event),
        "message.event in {v}"
    );
    assert_eq!(v.get("data"), Some(data), "message.data in {v}");
    let stamp = Stamp {
        seq: u64_field(v, "seq"),
        id: str_field(v, "id").to_string(),
        ts: str_field(v, "ts").to_string(),
    };
    assert!(stamp.seq >= 1, "message.seq starts at 1: {v}");
    assert!(!stamp.id.is_empty(), "message.id must not be empty: {v}");
    assert_rfc3339_utc(&v["ts"], "message.ts");
    stamp
}

/// `{"type":"message","room","seq","id","event","data","from","cid"?,"ts"}` as published by
/// `from` over WebSocket or the user HTTP route.
pub fn assert_message(
    v: &Value,
    room: &str,
    event: &str,
    data: &Value,
    from: &User,
    cid: Option<&str>,
) -> Stamp {
    let stamp = assert_message_envelope(v, room, event, data);
    assert_user(&v["from"], from, "message.from");
    let got_cid = v.get("cid").filter(|c| !c.is_null());
    match cid {
        Some(c) => assert_eq!(
            got_cid.and_then(Value::as_str),
            Some(c),
            "message.cid in {v}"
        ),
        None => assert!(got_cid.is_none(), "message.cid should be absent in {v}"),
    }
    stamp
}

/// `{"type":"error","code":<code>,"message":<string>,"cid"?}`.
pub fn assert_error_frame(v: &Value, code: &str) {
    assert_eq!(ty(v), "error", "expected an error frame, got {v}");
    assert_eq!(
        v.get("code").and_then(Value::as_str),
        Some(code),
        "error.code in {v}"
    );
    assert!(
        v.get("message").and_then(Value::as_str).is_some(),
        "error.message must be a string in {v}"
    );
}

/// `id` as the contract writes it: 32 lowercase or uppercase hex characters.
pub fn assert_message_id(id: &str, ctx: &str) {
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{ctx}: id must be 32 hex characters, got {id:?}"
    );
}

/// The answer of an HTTP publish: `{"seq","id","ts","duplicate"}`.
pub fn assert_receipt(v: &Value, duplicate: bool) -> Stamp {
    assert_eq!(
        v.get("duplicate").and_then(Value::as_bool),
        Some(duplicate),
        "receipt.duplicate in {v}"
    );
    let stamp = Stamp {
        seq: u64_field(v, "seq"),
        id: str_field(v, "id").to_string(),
        ts: str_field(v, "ts").to_string(),
    };
    assert!(stamp.seq >= 1, "receipt.seq starts at 1: {v}");
    assert_message_id(&stamp.id, "receipt.id");
    assert_rfc3339_utc(&v["ts"], "receipt.ts");
    stamp
}

/// A `presence` frame with `event` (`join`/`leave`) about `who`.
pub fn is_presence_of(v: &Value, event: &str, who: &User) -> bool {
    ty(v) == "presence"
        && v.get("event").and_then(Value::as_str) == Some(event)
        && v["user"]["id"] == who.id.as_str()
}

/// Any `presence` frame about `who`.
pub fn is_any_presence_of(v: &Value, who: &User) -> bool {
    ty(v) == "presence" && v["user"]["id"] == who.id.as_str()
}

/// A `typing` frame about `who`.
pub fn is_typing_of(v: &Value, who: &User) -> bool {
    ty(v) == "typing" && v["user"]["id"] == who.id.as_str()
}

/// A `read` frame about `who`.
pub fn is_read_of(v: &Value, who: &User) -> bool {
    ty(v) == "read" && v["user"]["id"] == who.id.as_str()
}

/// `{"type":"typing","user":<who>,"active":<active>}`.
pub fn assert_typing(v: &Value, who: &User, active: bool) {
    assert_eq!(ty(v), "typing", "expected a typing frame, got {v}");
    assert_user(&v["user"], who, "typing.user");
    assert_eq!(
        v.get("active").and_then(Value::as_bool),
        Some(active),
        "typing.active in {v}"
    );
}

/// `{"type":"read","user":<who>,"seq":<seq>,"at":<RFC 3339>}`; returns `at`.
pub fn assert_read(v: &Value, who: &User, seq: u64) -> DateTime<Utc> {
    assert_eq!(ty(v), "read", "expected a read frame, got {v}");
    assert_user(&v["user"], who, "read.user");
    assert_eq!(u64_field(v, "seq"), seq, "read.seq in {v}");
    assert_rfc3339_utc(&v["at"], "read.at")
}

/// The `seq`s of a list of message frames.
pub fn seqs_of(messages: &[Value]) -> Vec<u64> {
    messages.iter().map(|m| u64_field(m, "seq")).collect()
}

/// The frames of one WebSocket message of a batched connection (`batch=1`): a plain frame
/// object is one frame; an array holds several frames in order. Checks the batch shape: an
/// array has at least two elements (one frame is sent as the plain object), each an object
/// with a string `type`.
pub fn frames_of(message: Value) -> Vec<Value> {
    let frames = match message {
        Value::Array(frames) => {
            assert!(
                frames.len() >= 2,
                "a batch of fewer than two frames must be sent as a plain object: {frames:?}"
            );
            frames
        }
        frame => vec![frame],
    };
    for f in &frames {
        assert!(
            f.is_object() && f.get("type").is_some_and(Value::is_string),
            "every frame must be an object with a string type, got {f}"
        );
    }
    frames
}
