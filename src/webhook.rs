//! Backend requests: broadcast bodies (native and the legacy Realtime Service's), and how a
//! backend proves it holds the webhook secret (bearer, signature, or the legacy body token).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::Sha256;

use crate::auth::secrets_equal;
use crate::error::{RelayError, RelayResult};
use crate::protocol::{validate_cid, validate_event_name};
use crate::room_name;

pub const MAX_BROADCAST_ROOMS: usize = 100;
pub const MAX_BROADCAST_DATA_BYTES: usize = 64 * 1024;
/// How far a signature's timestamp may be from now.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;
pub const SIGNATURE_HEADER: &str = "x-relay-signature";

/// A validated broadcast: one event to several rooms.
#[derive(Debug)]
pub struct Broadcast {
    pub rooms: Vec<String>,
    pub event: String,
    pub data: Box<RawValue>,
    /// Idempotency key, scoped per room.
    pub id: Option<String>,
}

/// What a room is asked to publish for a backend.
#[derive(Debug, Serialize, Deserialize)]
pub struct RoomBroadcast {
    pub event: String,
    pub data: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Deserialize)]
struct BroadcastBody {
    rooms: Vec<String>,
    event: String,
    data: Box<RawValue>,
    #[serde(default)]
    id: Option<String>,
}

impl Broadcast {
    fn validated(
        rooms: Vec<String>,
        event: String,
        data: Box<RawValue>,
        id: Option<String>,
    ) -> RelayResult<Self> {
        if rooms.is_empty() || rooms.len() > MAX_BROADCAST_ROOMS {
            return Err(RelayError::bad_request("rooms must list 1..=100 rooms"));
        }
        let mut unique: Vec<String> = Vec::with_capacity(rooms.len());
        for room in rooms {
            room_name::validate(&room)
                .map_err(|e| RelayError::bad_request(format!("room {:?}: {}", room, e.message)))?;
            if !unique.contains(&room) {
                unique.push(room);
            }
        }
        validate_event_name(&event)?;
        if data.get().len() > MAX_BROADCAST_DATA_BYTES {
            return Err(RelayError::too_large("data is larger than 64 KiB"));
        }
        if let Some(id) = &id {
            validate_cid(id)
                .map_err(|_| RelayError::bad_request("id must be 1..=64 characters"))?;
        }
        Ok(Broadcast {
            rooms: unique,
            event,
            data,
            id,
        })
    }

    /// Parses `{"rooms":[..],"event","data","id"?}`.
    pub fn parse(body: &str) -> RelayResult<Self> {
        let body: BroadcastBody = serde_json::from_str(body)
            .map_err(|e| RelayError::bad_request(format!("invalid broadcast body: {e}")))?;
        Self::validated(body.rooms, body.event, body.data, body.id)
    }

    pub fn for_room(&self) -> RoomBroadcast {
        RoomBroadcast {
            event: self.event.clone(),
            data: self.data.clone(),
            id: self.id.clone(),
        }
    }
}

/// The legacy Realtime Service's broadcast routes: path suffix, event, and payload field.
const LEGACY_ROUTES: [(&str, &str, &str); 5] = [
    ("call-new", "call:new", "call"),
    ("call-updated", "call:updated", "call"),
    ("order-new", "order:new", "order"),
    ("order-updated", "order:updated", "order"),
    ("notification", "notification", "notification"),
];

/// Whether `kind` (the last path segment of `/api/v1/broadcast/{kind}`) is a legacy route.
pub fn is_legacy_kind(kind: &str) -> bool {
    LEGACY_ROUTES.iter().any(|(k, _, _)| *k == kind)
}

/// A legacy body `{"token"?, "call"|"order"|"notification": {...}, "rooms":[...], "id"?}`:
/// the broadcast, and the body token if one was given.
pub fn parse_legacy(kind: &str, body: &str) -> RelayResult<(Broadcast, Option<String>)> {
    let (_, event, field) = LEGACY_ROUTES
        .iter()
        .find(|(k, _, _)| *k == kind)
        .ok_or_else(|| RelayError::not_found("no such broadcast kind"))?;
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(body)
        .map_err(|e| RelayError::bad_request(format!("invalid broadcast body: {e}")))?;
    let token = match object.remove("token") {
        Some(serde_json::Value::String(token)) => Some(token),
        Some(_) => return Err(RelayError::bad_request("token must be a string")),
        None => None,
    };
    let rooms: Vec<String> = object
        .remove("rooms")
        .map(serde_json::from_value)
        .transpose()
        .map_err(|_| RelayError::bad_request("rooms must be a list of room names"))?
        .ok_or_else(|| RelayError::bad_request("rooms is required"))?;
    let payload = object
        .remove(*field)
        .ok_or_else(|| RelayError::bad_request(format!("{field} is required")))?;
    let id = match object.remove("id") {
        Some(serde_json::Value::String(id)) => Some(id),
        Some(_) => return Err(RelayError::bad_request("id must be a string")),
        None => None,
    };
    let data = serde_json::value::to_raw_value(&payload).map_err(|_| RelayError::internal())?;
    Ok((
        Broadcast::validated(rooms, event.to_string(), data, id)?,
        token,
    ))
}

/// How a backend request presented the webhook secret.
#[derive(Debug, Default)]
pub struct BackendCredentials<'a> {
    pub authorization: Option<&'a str>,
    pub signature: Option<&'a str>,
    /// Only the legacy routes accept the secret in the body.
    pub body_token: Option<&'a str>,
}

/// Deny unless the bearer secret, a valid fresh signature of `body`, or the legacy body token
/// matches `secret`.
pub fn authenticate_backend(
    credentials: &BackendCredentials<'_>,
    body: &[u8],
    secret: &[u8],
    now_secs: i64,
) -> RelayResult<()> {
    let denied = || RelayError::unauthorized("missing or wrong webhook credentials");
    if secret.is_empty() {
        return Err(RelayError::internal());
    }
    if let Some(header) = credentials.authorization {
        let given = header.strip_prefix("Bearer ").ok_or_else(denied)?;
        return if secrets_equal(given.trim().as_bytes(), secret) {
            Ok(())
        } else {
            Err(denied())
        };
    }
    if let Some(signature) = credentials.signature {
        return verify_signature(signature, body, secret, now_secs);
    }
    if let Some(token) = credentials.body_token {
        return if secrets_equal(token.as_bytes(), secret) {
            Ok(())
        } else {
            Err(denied())
        };
    }
    Err(denied())
}

/// Checks `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">` within the tolerance.
pub fn verify_signature(
    header: &str,
    body: &[u8],
    secret: &[u8],
    now_secs: i64,
) -> RelayResult<()> {
    let bad = |why: &str| RelayError::unauthorized(format!("signature rejected: {why}"));
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',').map(str::trim).take(8) {
        match part.split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => {
                signatures.push(decode_hex(value).ok_or_else(|| bad("not hex"))?)
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| bad("no timestamp"))?;
    if now_secs.abs_diff(timestamp) > SIGNATURE_TOLERANCE_SECS as u64 {
        return Err(bad("timestamp outside the 5 minute tolerance"));
    }
    let valid = signatures.iter().any(|signature| {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(signature).is_ok()
    });
    if valid {
        Ok(())
    } else {
        Err(bad("no matching v1 signature"))
    }
}

/// The header value a backend sends; also used by tests and tools.
pub fn sign(body: &[u8], secret: &[u8], timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    const SECRET: &[u8] = b"webhook-secret";

    #[test]
    fn parses_and_dedupes_rooms() {
        let b = Broadcast::parse(
            r#"{"rooms":["a","b","a"],"event":"order:new","data":{"id":1},"id":"k1"}"#,
        )
        .unwrap();
        assert_eq!(b.rooms, vec!["a", "b"]);
        assert_eq!(b.event, "order:new");
        assert_eq!(b.id.as_deref(), Some("k1"));
        assert_eq!(b.for_room().data.get(), r#"{"id":1}"#);
    }

    #[test]
    fn rejects_bad_broadcasts() {
        let many: Vec<String> = (0..101).map(|i| format!("r{i}")).collect();
        let cases = [
            r#"{"rooms":[],"event":"e","data":1}"#.to_string(),
            format!(
                r#"{{"rooms":{},"event":"e","data":1}}"#,
                serde_json::to_string(&many).unwrap()
            ),
            r#"{"rooms":["bad room"],"event":"e","data":1}"#.to_string(),
            r#"{"rooms":["a"],"event":"bad event","data":1}"#.to_string(),
            r#"{"rooms":["a"],"data":1}"#.to_string(),
            r#"{"rooms":["a"],"event":"e"}"#.to_string(),
            r#"{"rooms":["a"],"event":"e","data":1,"id":""}"#.to_string(),
            "not json".to_string(),
        ];
        for body in cases {
            assert_eq!(
                Broadcast::parse(&body).unwrap_err().code,
                ErrorCode::BadRequest,
                "{body}"
            );
        }
        let big = format!(
            r#"{{"rooms":["a"],"event":"e","data":"{}"}}"#,
            "x".repeat(MAX_BROADCAST_DATA_BYTES)
        );
        assert_eq!(
            Broadcast::parse(&big).unwrap_err().code,
            ErrorCode::TooLarge
        );
    }

    #[test]
    fn legacy_bodies_map_to_events() {
        let (b, token) = parse_legacy(
            "order-new",
            r#"{"token":"s","order":{"id":7},"rooms":["operators","city:Саратов"]}"#,
        )
        .unwrap();
        assert_eq!(b.event, "order:new");
        assert_eq!(b.data.get(), r#"{"id":7}"#);
        assert_eq!(token.as_deref(), Some("s"));
        let (b, token) =
            parse_legacy("call-updated", r#"{"call":{"id":1},"rooms":["a"]}"#).unwrap();
        assert_eq!(b.event, "call:updated");
        assert!(token.is_none());
        assert!(parse_legacy("order-new", r#"{"call":{},"rooms":["a"]}"#).is_err());
        assert!(parse_legacy("order-new", r#"{"order":{}}"#).is_err());
        assert_eq!(
            parse_legacy("nope", "{}").unwrap_err().code,
            ErrorCode::NotFound
        );
        assert!(is_legacy_kind("notification") && !is_legacy_kind("call"));
    }

    #[test]
    fn bearer_signature_and_body_token() {
        let body = br#"{"rooms":["a"]}"#;
        let ok = |c: BackendCredentials<'_>| authenticate_backend(&c, body, SECRET, 1_000).is_ok();
        assert!(ok(BackendCredentials {
            authorization: Some("Bearer webhook-secret"),
            ..Default::default()
        }));
        assert!(!ok(BackendCredentials {
            authorization: Some("Bearer wrong"),
            ..Default::default()
        }));
        assert!(!ok(BackendCredentials {
            authorization: Some("webhook-secret"),
            ..Default::default()
        }));
        assert!(!ok(BackendCredentials::default()));
        let signature = sign(body, SECRET, 1_000);
        assert!(ok(BackendCredentials {
            signature: Some(&signature),
            ..Default::default()
        }));
        assert!(ok(BackendCredentials {
            body_token: Some("webhook-secret"),
            ..Default::default()
        }));
        assert!(!ok(BackendCredentials {
            body_token: Some("webhook-secreT"),
            ..Default::default()
        }));
    }

    #[test]
    fn signatures_expire_and_bind_the_body() {
        let body = b"payload";
        let header = sign(body, SECRET, 10_000);
        assert!(verify_signature(&header, body, SECRET, 10_000 + SIGNATURE_TOLERANCE_SECS).is_ok());
        assert!(
            verify_signature(&header, body, SECRET, 10_000 + SIGNATURE_TOLERANCE_SECS + 1).is_err()
        );
        assert!(
            verify_signature(&header, body, SECRET, 10_000 - SIGNATURE_TOLERANCE_SECS - 1).is_err()
        );
        assert!(verify_signature(&header, b"payloaD", SECRET, 10_000).is_err());
        assert!(verify_signature(&header, body, b"other", 10_000).is_err());
        assert!(verify_signature("v1=00", body, SECRET, 10_000).is_err());
        assert!(verify_signature("t=10000,v1=zz", body, SECRET, 10_000).is_err());
        // A rotated secret can be sent alongside: any matching v1 is enough.
        let rotated = format!("{},v1={}", header, "00".repeat(32));
        assert!(verify_signature(&rotated, body, SECRET, 10_000).is_ok());
    }
}
