//! Backend requests: broadcast bodies (native and the legacy Realtime Service's), and how a
//! backend proves it holds the webhook secret (bearer, signature, or the legacy body token).

use hmac::{Hmac, Mac};
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::Sha256;

use crate::auth::secrets_equal;
use crate::cid::validate_cid;
use crate::error::{RelayError, RelayResult};
use crate::protocol::validate_event_name;
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
        // Repeats are merged before counting, so a list may name a room twice and still
        // reach 100 distinct rooms. The body size bounds the list itself.
        let mut unique: Vec<String> = Vec::with_capacity(rooms.len().min(MAX_BROADCAST_ROOMS));
        for room in rooms {
            if unique.contains(&room) {
                continue;
            }
            room_name::validate(&room)
                .map_err(|e| RelayError::bad_request(format!("room {:?}: {}", room, e.message)))?;
            unique.push(room);
            if unique.len() > MAX_BROADCAST_ROOMS {
                return Err(RelayError::bad_request(
                    "rooms must list 1..=100 distinct rooms",
                ));
            }
        }
        if unique.is_empty() {
            return Err(RelayError::bad_request(
                "rooms must list 1..=100 distinct rooms",
            ));
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

/// The request a signature must be bound to.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The URL path as the relay received it (still percent-encoded), without the query.
    pub path: &'a str,
    pub body: &'a [u8],
    /// Whether the body names every room the request touches (broadcasts): only then may a
    /// `v1` signature, which covers the body alone, authorise it. Path-scoped routes need `v2`.
    pub body_names_rooms: bool,
}

/// How a backend proved that it holds the webhook secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendProof {
    /// The secret itself (bearer, or the legacy body token).
    Secret,
    /// A fresh signature; `replay_key` is derived from the MAC that matched, so the same signed
    /// request sent twice carries the same key (see [`BackendProof::idempotency_key`]).
    Signature { replay_key: String },
}

impl BackendProof {
    /// The idempotency key for a signed broadcast that names none: a replay of the same signed
    /// request then delivers nothing again.
    pub fn idempotency_key(&self) -> Option<String> {
        match self {
            BackendProof::Secret => None,
            BackendProof::Signature { replay_key } => Some(format!("sig:{replay_key}")),
        }
    }
}

/// Deny unless the bearer secret, a valid fresh signature of `request`, or the legacy body
/// token matches `secret`.
pub fn authenticate_backend(
    credentials: &BackendCredentials<'_>,
    request: &SignedRequest<'_>,
    secret: &[u8],
    now_secs: i64,
) -> RelayResult<BackendProof> {
    let denied = || RelayError::unauthorized("missing or wrong webhook credentials");
    if secret.is_empty() {
        return Err(RelayError::internal());
    }
    let secret_matches = |given: &str| {
        if secrets_equal(given.as_bytes(), secret) {
            Ok(BackendProof::Secret)
        } else {
            Err(denied())
        }
    };
    if let Some(header) = credentials.authorization {
        let given = header.strip_prefix("Bearer ").ok_or_else(denied)?;
        return secret_matches(given.trim());
    }
    if let Some(signature) = credentials.signature {
        return verify_signature(signature, request, secret, now_secs);
    }
    if let Some(token) = credentials.body_token {
        return secret_matches(token);
    }
    Err(denied())
}

/// Longest hex MAC accepted in a signature element (SHA-256 is 64 hex digits).
const MAX_SIGNATURE_HEX: usize = 64;

/// Checks `t=<unix seconds>,v1=<hex>,v2=<hex>` within the tolerance: `v2` is the HMAC-SHA256
/// of `"t.METHOD.path.body"`, with the path as sent or percent-decoded; `v1`, of `"t.body"`,
/// counts only where the body names every room. Several elements of each kind may be sent
/// (a secret being rotated): any one that matches is enough.
pub fn verify_signature(
    header: &str,
    request: &SignedRequest<'_>,
    secret: &[u8],
    now_secs: i64,
) -> RelayResult<BackendProof> {
    let bad = |why: &str| RelayError::unauthorized(format!("signature rejected: {why}"));
    let mut timestamp = None;
    let mut v1 = Vec::new();
    let mut v2 = Vec::new();
    for part in header.split(',').map(str::trim).take(8) {
        let decode = |value: &str| {
            (value.len() <= MAX_SIGNATURE_HEX)
                .then(|| hex::decode(value).ok())
                .flatten()
                .ok_or_else(|| bad("not hex"))
        };
        match part.split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1.push(decode(value)?),
            Some(("v2", value)) => v2.push(decode(value)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| bad("no timestamp"))?;
    if now_secs.abs_diff(timestamp) > SIGNATURE_TOLERANCE_SECS.unsigned_abs() {
        return Err(bad("timestamp outside the 5 minute tolerance"));
    }
    let decoded_path = percent_decode_str(request.path).decode_utf8_lossy();
    let mut paths = vec![request.path];
    if decoded_path != request.path {
        paths.push(&decoded_path);
    }
    let v2_match = v2.iter().find(|given| {
        paths.iter().any(|path| {
            request_mac(secret, timestamp, request.method, path, request.body)
                .verify_slice(given)
                .is_ok()
        })
    });
    let v1_match = || {
        v1.iter().find(|given| {
            mac(secret, timestamp, request.body)
                .verify_slice(given)
                .is_ok()
        })
    };
    let matched = match v2_match {
        Some(matched) => matched,
        None if !request.body_names_rooms => {
            return Err(bad(if v1.is_empty() {
                "no matching v2 signature"
            } else {
                "this route needs a v2 signature (bound to the method and path)"
            }))
        }
        None => v1_match().ok_or_else(|| bad("no matching v1 or v2 signature"))?,
    };
    Ok(BackendProof::Signature {
        replay_key: hex::encode(&matched[..matched.len().min(16)]),
    })
}

/// The `v1` MAC: HMAC-SHA256 of `"t.body"`.
fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    mac_of_parts(secret, timestamp, &[body])
}

/// The `v2` MAC: HMAC-SHA256 of `"t.METHOD.path.body"`, the same construction as [`mac`] with
/// the method and path inserted before the body.
fn request_mac(
    secret: &[u8],
    timestamp: i64,
    method: &str,
    path: &str,
    body: &[u8],
) -> Hmac<Sha256> {
    mac_of_parts(
        secret,
        timestamp,
        &[method.as_bytes(), path.as_bytes(), body],
    )
}

/// HMAC-SHA256 of the timestamp and each part, joined with `.`: the one definition of what a
/// signature covers.
fn mac_of_parts(secret: &[u8], timestamp: i64, parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    for part in parts {
        mac.update(b".");
        mac.update(part);
    }
    mac
}

/// A signature header value with one element: `t=<timestamp>,<version>=<hex MAC>`.
fn header_value(timestamp: i64, version: &str, mac: Hmac<Sha256>) -> String {
    format!(
        "t={timestamp},{version}={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// A `v1` header value (`"t.body"`), as older backends send it; also used by tests and tools.
pub fn sign(body: &[u8], secret: &[u8], timestamp: i64) -> String {
    header_value(timestamp, "v1", mac(secret, timestamp, body))
}

/// A `v2` header value, bound to the request's method and path.
pub fn sign_request(
    method: &str,
    path: &str,
    body: &[u8],
    secret: &[u8],
    timestamp: i64,
) -> String {
    header_value(
        timestamp,
        "v2",
        request_mac(secret, timestamp, method, path, body),
    )
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

    /// A broadcast as the Worker sees it: the body names its rooms.
    fn broadcast_request(body: &[u8]) -> SignedRequest<'_> {
        SignedRequest {
            method: "POST",
            path: "/v1/broadcast",
            body,
            body_names_rooms: true,
        }
    }

    fn members_request<'a>(method: &'a str, path: &'a str, body: &'a [u8]) -> SignedRequest<'a> {
        SignedRequest {
            method,
            path,
            body,
            body_names_rooms: false,
        }
    }

    #[test]
    fn bearer_signature_and_body_token() {
        let body = br#"{"rooms":["a"]}"#;
        let request = broadcast_request(body);
        let ok =
            |c: BackendCredentials<'_>| authenticate_backend(&c, &request, SECRET, 1_000).is_ok();
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
        let request = broadcast_request(body);
        let header = sign(body, SECRET, 10_000);
        let at = |now: i64| verify_signature(&header, &request, SECRET, now);
        assert!(at(10_000 + SIGNATURE_TOLERANCE_SECS).is_ok());
        assert!(at(10_000 + SIGNATURE_TOLERANCE_SECS + 1).is_err());
        assert!(at(10_000 - SIGNATURE_TOLERANCE_SECS - 1).is_err());
        assert!(verify_signature(&header, &broadcast_request(b"payloaD"), SECRET, 10_000).is_err());
        assert!(verify_signature(&header, &request, b"other", 10_000).is_err());
        assert!(verify_signature("v1=00", &request, SECRET, 10_000).is_err());
        assert!(verify_signature("t=10000,v1=zz", &request, SECRET, 10_000).is_err());
        // A rotated secret can be sent alongside: any matching v1 is enough.
        let rotated = format!("{},v1={}", header, "00".repeat(32));
        assert!(verify_signature(&rotated, &request, SECRET, 10_000).is_ok());
    }

    #[test]
    fn extreme_timestamps_are_refused_without_overflow() {
        let request = broadcast_request(b"x");
        let now = 1_700_000_000_i64;
        // Before: (now - t).abs() wrapped for t = now - 2^63 and passed the window.
        for t in [
            i64::MIN,
            now.wrapping_sub(i64::MIN),
            i64::MAX,
            -now,
            now + 301,
        ] {
            let header = sign(b"x", SECRET, t);
            assert!(
                verify_signature(&header, &request, SECRET, now).is_err(),
                "t={t}"
            );
        }
        for now in [i64::MIN, i64::MAX] {
            assert!(verify_signature(&sign(b"x", SECRET, 0), &request, SECRET, now).is_err());
        }
        assert!(
            verify_signature(&sign(b"x", SECRET, i64::MIN), &request, SECRET, i64::MIN).is_ok()
        );
    }

    #[test]
    fn hex_elements_are_strict() {
        let request = broadcast_request(b"x");
        // A MAC whose first byte is below 0x10: `u8::from_str_radix` took "+b" for "0b", so
        // the same MAC had a second spelling.
        let (t, header) = (0..1_000)
            .map(|t| (t, sign(b"x", SECRET, t)))
            .find(|(_, header)| header.split_once(",v1=").unwrap().1.starts_with('0'))
            .expect("one MAC in 16 starts with a zero digit");
        let (prefix, hex_mac) = header.split_once(",v1=").unwrap();
        let malleable = format!("{prefix},v1=+{}", &hex_mac[1..]);
        assert!(verify_signature(&malleable, &request, SECRET, t).is_err());
        for junk in ["-0", " a", "0x"] {
            let malleable = format!("{prefix},v1={junk}{}", &hex_mac[2..]);
            assert!(
                verify_signature(&malleable, &request, SECRET, t).is_err(),
                "{junk}"
            );
        }
        let upper = format!("{prefix},v1={}", hex_mac.to_uppercase());
        assert!(verify_signature(&upper, &request, SECRET, t).is_ok());
    }

    #[test]
    fn v2_binds_the_method_and_path() {
        let body = br#"[{"id":"alice"}]"#;
        let put_a = members_request("PUT", "/v1/rooms/A/members", body);
        let header = sign_request("PUT", "/v1/rooms/A/members", body, SECRET, 500);
        assert!(verify_signature(&header, &put_a, SECRET, 500).is_ok());
        for other in [
            members_request("PUT", "/v1/rooms/B/members", body),
            members_request("GET", "/v1/rooms/A/members", body),
            members_request("PUT", "/v1/rooms/A/members", b"[]"),
        ] {
            assert!(
                verify_signature(&header, &other, SECRET, 500).is_err(),
                "{other:?}"
            );
        }
        // A v1 signature of the same body is not enough where the path picks the room.
        let v1 = sign(body, SECRET, 500);
        let err = verify_signature(&v1, &put_a, SECRET, 500).unwrap_err();
        assert!(err.message.contains("v2"), "{}", err.message);
        // v2 works for broadcasts too.
        let broadcast = broadcast_request(b"{}");
        let header = sign_request("POST", "/v1/broadcast", b"{}", SECRET, 500);
        assert!(verify_signature(&header, &broadcast, SECRET, 500).is_ok());
    }

    #[test]
    fn v2_accepts_the_path_as_sent_or_decoded() {
        let sent = "/v1/rooms/city%3A%D0%A1%D0%B0/members";
        let request = members_request("GET", sent, b"");
        for signed_path in [sent, "/v1/rooms/city:Са/members"] {
            let header = sign_request("GET", signed_path, b"", SECRET, 9);
            assert!(
                verify_signature(&header, &request, SECRET, 9).is_ok(),
                "{signed_path}"
            );
        }
        let header = sign_request("GET", "/v1/rooms/city:Сb/members", b"", SECRET, 9);
        assert!(verify_signature(&header, &request, SECRET, 9).is_err());
    }

    #[test]
    fn a_signed_request_has_a_stable_replay_key() {
        let body = br#"{"rooms":["a"],"event":"e","data":1}"#;
        let request = broadcast_request(body);
        let proof = |header: &str| verify_signature(header, &request, SECRET, 100).unwrap();
        let first = proof(&sign(body, SECRET, 100));
        assert_eq!(first, proof(&sign(body, SECRET, 100)));
        assert_ne!(first, proof(&sign(body, SECRET, 99)));
        assert_ne!(
            first,
            proof(&sign_request("POST", "/v1/broadcast", body, SECRET, 100))
        );
        let key = first.idempotency_key().unwrap();
        assert!(key.starts_with("sig:") && key.len() == 36, "{key}");
        validate_cid(&key).unwrap();
        assert_eq!(BackendProof::Secret.idempotency_key(), None);
    }

    #[test]
    fn repeated_rooms_count_once() {
        let mut rooms: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
        rooms.push("r7".to_string());
        let body = format!(
            r#"{{"rooms":{},"event":"e","data":1}}"#,
            serde_json::to_string(&rooms).unwrap()
        );
        assert_eq!(Broadcast::parse(&body).unwrap().rooms.len(), 100);
        rooms.push("r100".to_string());
        let body = format!(
            r#"{{"rooms":{},"event":"e","data":1}}"#,
            serde_json::to_string(&rooms).unwrap()
        );
        assert_eq!(
            Broadcast::parse(&body).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn macs_match_a_reference_hmac() {
        // Reference values from `printf '%s' "$MSG" | openssl dgst -sha256 -hmac webhook-secret`.
        assert_eq!(
            sign(b"{}", SECRET, 1_700_000_000),
            "t=1700000000,v1=1ca80a9e18507c4d07ef99f9a0e139c940cafc2e9520b9c3545e1574139a91f9"
        );
        assert_eq!(
            sign_request("POST", "/v1/broadcast", b"{}", SECRET, 1_700_000_000),
            "t=1700000000,v2=9d13786b9d891af5edcea3fb8cd4d3afe20acf1c50cfcfd4aa70dc32c37c868a"
        );
    }
}
