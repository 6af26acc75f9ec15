//! Backend signatures bound to what they authorise: a `v2` element covers the method and path
//! as well as the body, path-scoped routes refuse `v1`, a replayed signed broadcast without an
//! `id` delivers nothing again, and extreme timestamps are refused.

use relay_e2e::backend::*;
use relay_e2e::signing::hmac_hex;
use relay_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};

/// The hex HMAC-SHA256 under the webhook secret of `parts` joined with `.`.
fn mac_hex(parts: &[&[u8]]) -> String {
    hmac_hex(webhook_secret().as_bytes(), parts)
}

/// `t=<t>,v1=<HMAC of "t.body">`.
fn sign_v1(t: i64, body: &[u8]) -> String {
    let t_text = t.to_string();
    format!("t={t},v1={}", mac_hex(&[t_text.as_bytes(), body]))
}

/// `t=<t>,v2=<HMAC of "t.METHOD.path.body">`.
fn sign_v2(t: i64, method: &str, path: &str, body: &[u8]) -> String {
    let t_text = t.to_string();
    let parts: [&[u8]; 4] = [t_text.as_bytes(), method.as_bytes(), path.as_bytes(), body];
    format!("t={t},v2={}", mac_hex(&parts))
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn signed(method: Method, path: &str, body: &[u8], header: &str) -> HttpResponse {
    let body = (!body.is_empty()).then(|| body.to_vec());
    send_bytes(method, path, body, &[("X-Relay-Signature", header)]).await
}

/// `POST /v1/broadcast` of `body` with a `v1` signature made at `t`.
async fn broadcast_signed_v1(t: i64, body: &[u8]) -> HttpResponse {
    signed(Method::POST, "/v1/broadcast", body, &sign_v1(t, body)).await
}

fn members_body(ids: &[&str]) -> Vec<u8> {
    let members: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
    serde_json::to_vec(&members).unwrap()
}

#[tokio::test]
async fn a_v2_signature_works_only_for_its_own_method_and_path() {
    let (a, b) = (unique_room("e2e:sig"), unique_room("e2e:sig"));
    set_members(&b, &["bob"]).await;
    let path_a = room_path(&a, "members");
    let path_b = room_path(&b, "members");
    let body = members_body(&["mallory"]);
    let header = sign_v2(now_secs(), "PUT", &path_a, &body);

    let r = signed(Method::PUT, &path_a, &body, &header).await;
    r.assert_status(200);
    assert_eq!(member_ids(r.json()), ["mallory"]);

    // The same headers and body replayed on another room, or with another method.
    let replay = signed(Method::PUT, &path_b, &body, &header).await;
    replay.assert_error(401, "unauthorized");
    let as_get = signed(Method::GET, &path_a, b"", &header).await;
    as_get.assert_error(401, "unauthorized");
    let r = get_members(&b, &webhook_auth()).await;
    assert_eq!(
        member_ids(r.assert_status(200).json()),
        ["bob"],
        "B unchanged"
    );

    // A signed read of A's members cannot read B's.
    let read_a = sign_v2(now_secs(), "GET", &path_a, b"");
    signed(Method::GET, &path_a, b"", &read_a)
        .await
        .assert_status(200);
    signed(Method::GET, &path_b, b"", &read_a)
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn the_decoded_path_may_be_signed_too() {
    let room = unique_room("e2e:sig:Саратов");
    let decoded_path = format!("/v1/rooms/{room}/members");
    let sent_path = room_path(&room, "members");
    assert_ne!(decoded_path, sent_path, "the room name needs encoding");
    let body = members_body(&["alice"]);
    let header = sign_v2(now_secs(), "PUT", &decoded_path, &body);
    let r = signed(Method::PUT, &sent_path, &body, &header).await;
    r.assert_status(200);
    assert_eq!(member_ids(r.json()), ["alice"]);
}

#[tokio::test]
async fn path_scoped_routes_refuse_v1_signatures() {
    let room = unique_room("e2e:sig");
    set_members(&room, &["bob"]).await;
    let path = room_path(&room, "members");
    let body = members_body(&["mallory"]);
    let r = signed(Method::PUT, &path, &body, &sign_v1(now_secs(), &body)).await;
    r.assert_error(401, "unauthorized");
    let message = r.json()["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("v2"),
        "the refusal says v2 is needed: {message}"
    );
    signed(Method::GET, &path, b"", &sign_v1(now_secs(), b""))
        .await
        .assert_error(401, "unauthorized");
    let r = get_members(&room, &webhook_auth()).await;
    assert_eq!(member_ids(r.assert_status(200).json()), ["bob"]);
}

#[tokio::test]
async fn a_replayed_signed_broadcast_without_id_delivers_nothing_again() {
    let room = unique_room("e2e:sig");
    let who = User::new("listener", "Listener", "agent");
    let (mut c, _) = Client::join_as(&room, &who).await;
    for (kind, sign) in [
        ("v1", sign_v1 as fn(i64, &[u8]) -> String),
        ("v2", |t, body: &[u8]| {
            sign_v2(t, "POST", "/v1/broadcast", body)
        }),
    ] {
        let body = broadcast_body(&[&room], "replayed", &json!(kind), None).to_string();
        let header = sign(now_secs(), body.as_bytes());
        let first = signed(Method::POST, "/v1/broadcast", body.as_bytes(), &header).await;
        let seq = assert_results(first.assert_status(200).json(), &[&room])[0];
        let replay = signed(Method::POST, "/v1/broadcast", body.as_bytes(), &header).await;
        assert_eq!(
            assert_results(replay.assert_status(200).json(), &[&room]),
            [seq],
            "{kind}: the replay answers the original seq"
        );
        let m = c.recv_messages(1, DEFAULT_TIMEOUT).await.remove(0);
        assert_backend_message(&m, &room, "replayed", &json!(kind));
        c.expect_no_message(SILENCE).await;
    }
    // A new signature of the same body (another second) is a new request.
    let body = broadcast_body(&[&room], "twice", &json!(1), None).to_string();
    for t in [now_secs() - 1, now_secs()] {
        let r = broadcast_signed_v1(t, body.as_bytes()).await;
        r.assert_status(200);
    }
    assert_eq!(c.recv_messages(2, DEFAULT_TIMEOUT).await.len(), 2);
}

#[tokio::test]
async fn extreme_timestamps_are_refused() {
    let room = unique_room("e2e:sig");
    let body = broadcast_body(&[&room], "ev", &json!(1), None).to_string();
    let now = now_secs();
    // now - 2^63 wrapped around in `(now - t).abs()` and passed the 300 s window.
    for t in [now.wrapping_sub(i64::MIN), i64::MIN, i64::MAX, now - 301] {
        let r = broadcast_signed_v1(t, body.as_bytes()).await;
        assert_eq!(r.status, 401, "t={t}: {}", r.body);
        r.assert_error(401, "unauthorized");
    }
    let history = history_messages(
        &room,
        &ReqAuth::Bearer(User::new("u", "U", "x").token(&[&room])),
    )
    .await;
    assert!(history.is_empty(), "nothing delivered: {history:?}");
}

#[tokio::test]
async fn a_broadcast_may_name_a_room_twice_beside_a_hundred_others() {
    let base = unique_room("e2e:sig");
    let mut rooms: Vec<String> = (0..100).map(|i| format!("{base}:{i}")).collect();
    rooms.push(rooms[3].clone());
    let names: Vec<&str> = rooms.iter().map(String::as_str).collect();
    let r = broadcast(
        &broadcast_body(&names, "ev", &json!(1), None),
        &webhook_auth(),
    )
    .await;
    assert_eq!(
        assert_results(r.assert_status(200).json(), &names).len(),
        100
    );
    rooms.push(format!("{base}:100"));
    let names: Vec<&str> = rooms.iter().map(String::as_str).collect();
    broadcast(
        &broadcast_body(&names, "ev", &json!(1), None),
        &webhook_auth(),
    )
    .await
    .assert_error(400, "bad_request");
}
