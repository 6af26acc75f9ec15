//! Helpers for the backend and operator surfaces: `POST /v1/broadcast` (and the legacy
//! `/api/v1/broadcast/{kind}`), room members and `room.update` feeds, stats and presence.
//!
//! Requests go through [`crate::http`]; [`send_bytes`] sends a raw body with any headers
//! (for signed requests, whose signature covers the exact bytes). Messages sent by a backend
//! are checked with [`assert_backend_message`] (`from: null`). Every wait is bounded.

use crate::config::{admin_secret, webhook_secret};
use crate::http::{self, HttpResponse, ReqAuth};
use crate::shape::{assert_rfc3339_utc, str_field, ty, u64_field, Stamp};
use crate::ws::Client;
use reqwest::Method;
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The event of the messages a member's personal room receives.
pub const UPDATE_EVENT: &str = "room.update";

/// `Authorization: Bearer <WEBHOOK_SECRET>`.
pub fn webhook_auth() -> ReqAuth {
    ReqAuth::Bearer(webhook_secret())
}

/// `Authorization: Bearer <ADMIN_SECRET>`.
pub fn admin_auth() -> ReqAuth {
    ReqAuth::Bearer(admin_secret())
}

/// Sends `method path_and_query` with `body` exactly as given (no `Authorization` unless it
/// is among `headers`; `Content-Type: application/json` is added when there is a body).
pub async fn send_bytes(
    method: Method,
    path_and_query: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> HttpResponse {
    http::send_bytes(method, path_and_query, &ReqAuth::None, body, headers).await
}

// ---- broadcast -----------------------------------------------------------------------

/// The body of a `/v1/broadcast`: `{"rooms","event","data","id"?}`.
pub fn broadcast_body(rooms: &[&str], event: &str, data: &Value, id: Option<&str>) -> Value {
    let mut body = json!({"rooms": rooms, "event": event, "data": data});
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    body
}

/// `POST /v1/broadcast` with a JSON `body` and `auth`.
pub async fn broadcast(body: &Value, auth: &ReqAuth) -> HttpResponse {
    http::send(Method::POST, "/v1/broadcast", auth, Some(body), &[]).await
}

/// `POST /v1/broadcast` with the webhook bearer that must succeed; returns the seq of each
/// room of `rooms` (duplicates removed, first appearance kept) in that order.
pub async fn broadcast_ok(rooms: &[&str], event: &str, data: &Value, id: Option<&str>) -> Vec<u64> {
    let r = broadcast(&broadcast_body(rooms, event, data, id), &webhook_auth()).await;
    r.assert_status(200);
    assert_results(r.json(), rooms)
}

/// `rooms` without repeats, in order of first appearance.
pub fn dedup(rooms: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in rooms {
        if !out.iter().any(|o| o == r) {
            out.push(r.to_string());
        }
    }
    out
}

/// Checks `{"results":[{"room","seq"}...]}` against the requested `rooms`: one entry per
/// distinct room, in the order the rooms were first listed, each with a seq (no error).
/// Returns the seqs in that order.
pub fn assert_results(v: &Value, rooms: &[&str]) -> Vec<u64> {
    let results = v
        .get("results")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("broadcast answer needs a results array: {v}"));
    let got_rooms: Vec<&str> = results.iter().map(|r| str_field(r, "room")).collect();
    assert_eq!(
        got_rooms,
        dedup(rooms),
        "broadcast results must list each distinct room once, in the listed order: {v}"
    );
    results
        .iter()
        .map(|r| {
            assert!(
                r.get("error").is_none(),
                "room {} failed in a broadcast: {v}",
                r["room"]
            );
            let seq = u64_field(r, "seq");
            assert!(seq >= 1, "a broadcast seq starts at 1: {v}");
            seq
        })
        .collect()
}

/// `POST /api/v1/broadcast/{kind}` (legacy Realtime Service API) with a JSON body.
pub async fn legacy_broadcast(kind: &str, body: &Value, auth: &ReqAuth) -> HttpResponse {
    http::send(
        Method::POST,
        &format!("/api/v1/broadcast/{kind}"),
        auth,
        Some(body),
        &[],
    )
    .await
}

/// A `message` sent by a backend: `{"type":"message","room","seq","id","event","data",
/// "from":null,"ts"}`. Returns its stamp.
pub fn assert_backend_message(v: &Value, room: &str, event: &str, data: &Value) -> Stamp {
    let stamp = crate::shape::assert_message_envelope(v, room, event, data);
    assert_eq!(
        v.get("from"),
        Some(&Value::Null),
        "message.from must be null for a backend message: {v}"
    );
    crate::shape::assert_message_id(&stamp.id, "message.id");
    stamp
}

/// Every message of `room`'s history (up to 200), read with `auth`; must answer 200.
pub async fn history_messages(room: &str, auth: &ReqAuth) -> Vec<Value> {
    let r = http::history(room, "limit=200", auth).await;
    r.assert_status(200);
    r.json()["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("history of {room} needs a messages array: {}", r.body))
        .clone()
}

// ---- members and feeds ---------------------------------------------------------------

/// `PUT /v1/rooms/{room}/members` with `body` and `auth`.
pub async fn put_members(room: &str, body: &Value, auth: &ReqAuth) -> HttpResponse {
    http::send(
        Method::PUT,
        &crate::room_path(room, "members"),
        auth,
        Some(body),
        &[],
    )
    .await
}

/// `GET /v1/rooms/{room}/members` with `auth`.
pub async fn get_members(room: &str, auth: &ReqAuth) -> HttpResponse {
    http::get(&crate::room_path(room, "members"), auth).await
}

/// Sets the members of `room` to `ids` (no roles) with the webhook secret; must answer 200
/// listing them.
pub async fn set_members(room: &str, ids: &[&str]) {
    let body: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
    let r = put_members(room, &json!(body), &webhook_auth()).await;
    r.assert_status(200);
    assert_eq!(member_ids(r.json()), ids, "PUT members answer: {}", r.body);
}

/// The ids of `{"members":[{"id",..}...]}`, in order.
pub fn member_ids(v: &Value) -> Vec<String> {
    v.get("members")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("needs a members array: {v}"))
        .iter()
        .map(|m| str_field(m, "id").to_string())
        .collect()
}

/// The personal room of a user.
pub fn user_room(id: &str) -> String {
    format!("user:{id}")
}

/// A `room.update` message (in any personal room) about `room`.
pub fn is_update_about(v: &Value, room: &str) -> bool {
    ty(v) == "message" && v["event"] == UPDATE_EVENT && v["data"]["room"] == room
}

/// Checks the shape of a `room.update` message in `personal` about `room`:
/// `from: null`, data `{room, seq, event, from, preview, unread}`. Returns `data`.
pub fn assert_update(v: &Value, personal: &str, room: &str) -> Value {
    assert_eq!(ty(v), "message", "expected a message, got {v}");
    assert_eq!(v["room"], personal, "update.room in {v}");
    assert_eq!(v["event"], UPDATE_EVENT, "update.event in {v}");
    assert_eq!(v.get("from"), Some(&Value::Null), "update.from in {v}");
    u64_field(v, "seq");
    assert_rfc3339_utc(&v["ts"], "update.ts");
    let d = &v["data"];
    assert_eq!(d["room"], room, "update.data.room in {v}");
    u64_field(d, "seq");
    u64_field(d, "unread");
    str_field(d, "event");
    for field in ["from", "preview"] {
        assert!(
            d.get(field).is_some(),
            "update.data.{field} must be present (null or a value): {v}"
        );
    }
    assert!(
        d["preview"].is_null() || d["preview"].is_string(),
        "update.data.preview must be a string or null: {v}"
    );
    assert!(
        d["from"].is_null() || d["from"].is_object(),
        "update.data.from must be a user object or null: {v}"
    );
    d.clone()
}

/// Reads `c` (a personal-room socket) until an update about `room` satisfying `pred`
/// arrives, or `within` passes. Returns every update about `room` taken meanwhile (in order;
/// the last one satisfies `pred`), or panics listing them. Other frames stay queued.
pub async fn updates_until(
    c: &mut Client,
    room: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        match c.take_first(|v| is_update_about(v, room), deadline).await {
            Some(u) => {
                let hit = pred(&u["data"]);
                seen.push(u);
                if hit {
                    return seen;
                }
            }
            None => panic!(
                "no matching room.update about {room} in {} within {within:?}; updates seen: \
                 {seen:#?}",
                c.room
            ),
        }
    }
}

/// Every update about `room` that arrives on `c` within `within` (others stay queued).
pub async fn updates_for(c: &mut Client, room: &str, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(u) = c.take_first(|v| is_update_about(v, room), deadline).await {
        seen.push(u);
    }
    seen
}

// ---- stats and presence --------------------------------------------------------------

/// Polls `probe` every 250 ms until it gives `Some`, for at most `within`.
pub async fn poll<T, F, Fut>(within: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `GET path` with the admin bearer; must answer 200 with JSON.
pub async fn admin_get(path: &str) -> Value {
    let r = http::get(path, &admin_auth()).await;
    r.assert_status(200);
    r.json().clone()
}

/// The entry of `room` in a `{"rooms":[{"room","connections","users","last_seq"}...]}`
/// answer (each entry's shape checked), if listed.
pub fn stats_entry(v: &Value, room: &str) -> Option<Value> {
    let rooms = v
        .get("rooms")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("stats answer needs a rooms array: {v}"));
    let mut found = None;
    for e in rooms {
        let name = str_field(e, "room");
        let conns = u64_field(e, "connections");
        let users = u64_field(e, "users");
        u64_field(e, "last_seq");
        assert!(
            conns >= 1,
            "stats lists only rooms with a connection, got {e}"
        );
        assert!(
            users >= 1 && users <= conns,
            "stats entry needs 1 <= users <= connections: {e}"
        );
        if name == room {
            assert!(found.is_none(), "room {room} listed twice in {v}");
            found = Some(e.clone());
        }
    }
    found
}

/// `{"connections":N,"rooms":N}` of `GET path` (admin), shape checked: (connections, rooms).
pub async fn totals(path: &str) -> (u64, u64) {
    let v = admin_get(path).await;
    (u64_field(&v, "connections"), u64_field(&v, "rooms"))
}
