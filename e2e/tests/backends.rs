//! Backend delivery: `POST /v1/broadcast` (bearer and `X-Relay-Signature` forms, per-room
//! idempotency key, validation that delivers nothing) and the legacy Realtime Service API
//! `POST /api/v1/broadcast/{kind}`, including the call-center fan-out scenario.

use relay_e2e::backend::*;
use relay_e2e::http::ReqAuth;
use relay_e2e::signing::hmac_hex;
use relay_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

// ---- helpers ---------------------------------------------------------------------------

/// `t=<t>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`.
fn signature(key: &[u8], t: i64, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hmac_hex(key, &[t.to_string().as_bytes(), body])
    )
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `POST /v1/broadcast` with the raw `body` and only an `X-Relay-Signature` header.
async fn signed_broadcast(body: &[u8], header: &str) -> HttpResponse {
    send_bytes(
        Method::POST,
        "/v1/broadcast",
        Some(body.to_vec()),
        &[("X-Relay-Signature", header)],
    )
    .await
}

/// A listener in `room` (its own user) and a token that may read the room's history.
async fn listener(room: &str) -> (Client, ReqAuth) {
    let who = User::new("listener", "Listener", "agent");
    let (c, _) = Client::join_as(room, &who).await;
    (c, ReqAuth::Bearer(who.token(&[room])))
}

/// Takes the next `message` of `c` (within the default timeout) and checks it is the backend
/// message `event`/`data` in `c`'s room with `seq`.
async fn expect_backend_message(c: &mut Client, event: &str, data: &Value, seq: u64) -> Stamp {
    let room = c.room.clone();
    let m = c.recv_messages(1, DEFAULT_TIMEOUT).await.remove(0);
    let s = assert_backend_message(&m, &room, event, data);
    assert_eq!(s.seq, seq, "seq of the broadcast in {room}: {m}");
    s
}

/// After a refused request: the socket gets no message and the room's history stays empty.
async fn assert_nothing_delivered(c: &mut Client, auth: &ReqAuth) {
    c.expect_no_message(SILENCE).await;
    let room = c.room.clone();
    let hist = history_messages(&room, auth).await;
    assert!(
        hist.is_empty(),
        "history of {room} must stay empty: {hist:?}"
    );
}

// ---- /v1/broadcast ---------------------------------------------------------------------

#[tokio::test]
async fn broadcast_reaches_every_socket_of_every_room_and_is_stored() {
    let a = unique_room("e2e:bc");
    let b = unique_room("e2e:bc");
    // Room a already has one message, so its broadcast seq is 2 while b's is 1.
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::anonymous("bob");
    let (mut a1, _) = Client::join_as(&a, &alice).await;
    let (mut a2, _) = Client::join_as(&a, &bob).await;
    let (mut b1, b_auth) = listener(&b).await;
    a1.publish_acked("first", None, &json!({"text": "hello"}))
        .await;
    a2.recv_messages(1, DEFAULT_TIMEOUT).await;

    let data = json!({"text": "maintenance at 22:00", "level": 2, "tags": ["ops"]});
    let seqs = broadcast_ok(&[&a, &b], "system:notice", &data, None).await;
    assert_eq!(seqs, vec![2, 1], "per-room seqs of the broadcast");

    let s_a1 = expect_backend_message(&mut a1, "system:notice", &data, 2).await;
    let s_a2 = expect_backend_message(&mut a2, "system:notice", &data, 2).await;
    assert_eq!(s_a1, s_a2, "both sockets of room a see the same message");
    let s_b = expect_backend_message(&mut b1, "system:notice", &data, 1).await;

    // Persisted exactly like a publish: history returns the same message.
    let hist_a = history_messages(&a, &ReqAuth::Bearer(alice.token(&[&a]))).await;
    assert_eq!(seqs_of(&hist_a), vec![1, 2], "history of a: {hist_a:?}");
    let stored = assert_backend_message(&hist_a[1], &a, "system:notice", &data);
    assert_eq!(
        stored, s_a1,
        "history carries the broadcast's seq, id and ts"
    );
    let hist_b = history_messages(&b, &b_auth).await;
    assert_eq!(hist_b.len(), 1, "history of b: {hist_b:?}");
    assert_eq!(
        assert_backend_message(&hist_b[0], &b, "system:notice", &data),
        s_b
    );

    // Nothing else arrives (in particular no second copy).
    for c in [&mut a1, &mut a2, &mut b1] {
        c.expect_no_message(SILENCE).await;
    }
}

#[tokio::test]
async fn broadcast_data_may_be_any_json_value() {
    let room = unique_room("e2e:bc");
    let (mut c, _) = listener(&room).await;
    let values = [
        json!(null),
        json!("plain"),
        json!(42),
        json!([1, {"x": true}]),
    ];
    for (i, data) in values.iter().enumerate() {
        let seqs = broadcast_ok(&[&room], "value", data, None).await;
        assert_eq!(seqs, vec![i as u64 + 1]);
        expect_backend_message(&mut c, "value", data, i as u64 + 1).await;
    }
}

#[tokio::test]
async fn broadcast_results_follow_the_listed_order_and_repeated_rooms_get_it_once() {
    let a = unique_room("e2e:bc");
    let b = unique_room("e2e:bc");
    let c_room = unique_room("e2e:bc");
    let (mut ca, a_auth) = listener(&a).await;
    let (mut cc, _) = listener(&c_room).await;
    // A message in c first, so the seqs differ per room.
    broadcast_ok(&[&c_room], "warmup", &json!(1), None).await;
    expect_backend_message(&mut cc, "warmup", &json!(1), 1).await;

    let listed = [
        c_room.as_str(),
        a.as_str(),
        b.as_str(),
        a.as_str(),
        c_room.as_str(),
    ];
    let r = broadcast(
        &broadcast_body(&listed, "fanout", &json!({"n": 1}), None),
        &webhook_auth(),
    )
    .await;
    r.assert_status(200);
    let seqs = assert_results(r.json(), &listed);
    assert_eq!(seqs, vec![2, 1, 1], "seqs of [c, a, b]: {}", r.body);

    expect_backend_message(&mut ca, "fanout", &json!({"n": 1}), 1).await;
    expect_backend_message(&mut cc, "fanout", &json!({"n": 1}), 2).await;
    ca.expect_no_message(SILENCE).await;
    cc.expect_no_message(Duration::from_millis(200)).await;
    assert_eq!(
        history_messages(&a, &a_auth).await.len(),
        1,
        "a stored once"
    );
}

#[tokio::test]
async fn broadcast_id_is_an_idempotency_key_per_room() {
    let a = unique_room("e2e:bcid");
    let b = unique_room("e2e:bcid");
    let c_room = unique_room("e2e:bcid");
    let (mut ca, a_auth) = listener(&a).await;
    let (mut cb, b_auth) = listener(&b).await;
    let (mut cc, c_auth) = listener(&c_room).await;
    let key = format!("job-{}", random_suffix());
    let data = json!({"text": "invoice ready"});

    let first = broadcast_ok(&[&a, &b], "invoice", &data, Some(&key)).await;
    assert_eq!(first, vec![1, 1]);
    let m_a = expect_backend_message(&mut ca, "invoice", &data, 1).await;
    expect_backend_message(&mut cb, "invoice", &data, 1).await;

    // The same request again: same seqs, nothing delivered or stored again.
    let again = broadcast_ok(&[&a, &b], "invoice", &data, Some(&key)).await;
    assert_eq!(
        again, first,
        "a repeated broadcast returns the original seqs"
    );
    // A repeat that differs in event/data is still the same key: still nothing new.
    let changed = broadcast_ok(&[&b, &a], "invoice", &json!({"text": "other"}), Some(&key)).await;
    assert_eq!(changed, vec![1, 1], "the key decides, per room");
    ca.expect_no_message(SILENCE).await;
    cb.expect_no_message(Duration::from_millis(200)).await;
    let hist_a = history_messages(&a, &a_auth).await;
    assert_eq!(hist_a.len(), 1, "history of a holds one copy: {hist_a:?}");
    assert_eq!(
        assert_backend_message(&hist_a[0], &a, "invoice", &data),
        m_a
    );
    assert_eq!(history_messages(&b, &b_auth).await.len(), 1);

    // Scoped per room: the key is new to c, so c gets it while a still does not.
    let mixed = broadcast_ok(&[&a, &c_room], "invoice", &data, Some(&key)).await;
    assert_eq!(mixed, vec![1, 1]);
    expect_backend_message(&mut cc, "invoice", &data, 1).await;
    ca.expect_no_message(SILENCE).await;
    assert_eq!(history_messages(&c_room, &c_auth).await.len(), 1);

    // Another key is another message.
    let other = broadcast_ok(&[&a], "invoice", &data, Some(&format!("{key}-2"))).await;
    assert_eq!(other, vec![2]);
    expect_backend_message(&mut ca, "invoice", &data, 2).await;
    // Without a key every request is delivered.
    assert_eq!(broadcast_ok(&[&a], "invoice", &data, None).await, vec![3]);
    assert_eq!(broadcast_ok(&[&a], "invoice", &data, None).await, vec![4]);
    ca.recv_messages(2, DEFAULT_TIMEOUT).await;
}

#[tokio::test]
async fn invalid_broadcasts_are_refused_and_deliver_nothing() {
    let room = unique_room("e2e:bcbad");
    let (mut c, auth) = listener(&room).await;
    let ok_data = json!({"text": "never delivered"});

    let many: Vec<String> = (0..100).map(|_| unique_room("e2e:bcmany")).collect();
    let mut too_many: Vec<&str> = vec![room.as_str()];
    too_many.extend(many.iter().map(String::as_str));
    assert_eq!(too_many.len(), 101);

    let json_cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "no rooms",
            broadcast_body(&[], "ev", &ok_data, None),
            400,
            "bad_request",
        ),
        (
            "101 rooms",
            broadcast_body(&too_many, "ev", &ok_data, None),
            400,
            "bad_request",
        ),
        (
            "room name with a space",
            broadcast_body(&[&room, "bad room"], "ev", &ok_data, None),
            400,
            "bad_request",
        ),
        (
            "room name with a slash",
            broadcast_body(&[&room, "a/b"], "ev", &ok_data, None),
            400,
            "bad_request",
        ),
        (
            "empty room name",
            broadcast_body(&[&room, ""], "ev", &ok_data, None),
            400,
            "bad_request",
        ),
        (
            "room name over 128 bytes",
            broadcast_body(&[&room, &"r".repeat(129)], "ev", &ok_data, None),
            400,
            "bad_request",
        ),
        (
            "event with a space",
            broadcast_body(&[&room], "bad event", &ok_data, None),
            400,
            "bad_request",
        ),
        (
            "event with a slash",
            broadcast_body(&[&room], "a/b", &ok_data, None),
            400,
            "bad_request",
        ),
        (
            "empty event",
            broadcast_body(&[&room], "", &ok_data, None),
            400,
            "bad_request",
        ),
        (
            "event over 64 characters",
            broadcast_body(&[&room], &"e".repeat(65), &ok_data, None),
            400,
            "bad_request",
        ),
        (
            "data over 64 KiB",
            broadcast_body(&[&room], "ev", &json!("x".repeat(64 * 1024 + 16)), None),
            413,
            "too_large",
        ),
        (
            "rooms is not a list",
            json!({"rooms": room, "event": "ev", "data": ok_data}),
            400,
            "bad_request",
        ),
        (
            "no event",
            json!({"rooms": [room], "data": ok_data}),
            400,
            "bad_request",
        ),
    ];
    for (what, body, status, code) in &json_cases {
        let r = broadcast(body, &webhook_auth()).await;
        assert_eq!(
            r.status, *status,
            "{what}: expected {status}, got {} {}",
            r.status, r.body
        );
        r.assert_error(*status, code);
    }

    // A body over 256 KiB (valid JSON, data well under 64 KiB: the rest is whitespace).
    let small = broadcast_body(&[&room], "ev", &ok_data, None).to_string();
    let padded = format!(
        "{}{}{}",
        &small[..small.len() - 1],
        " ".repeat(257 * 1024),
        "}"
    );
    assert!(serde_json::from_str::<Value>(&padded).is_ok());
    let secret_header = format!("Bearer {}", webhook_secret());
    let raw_cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("body over 256 KiB", padded.into_bytes(), 413, "too_large"),
        (
            "truncated JSON",
            format!("{{\"rooms\":[\"{room}\"],\"event\":\"ev\",\"data\":").into_bytes(),
            400,
            "bad_request",
        ),
        ("not JSON", b"rooms=all".to_vec(), 400, "bad_request"),
        ("empty body", Vec::new(), 400, "bad_request"),
    ];
    for (what, body, status, code) in raw_cases {
        let r = send_bytes(
            Method::POST,
            "/v1/broadcast",
            Some(body),
            &[("Authorization", secret_header.as_str())],
        )
        .await;
        assert_eq!(
            r.status, status,
            "{what}: expected {status}, got {} {}",
            r.status, r.body
        );
        r.assert_error(status, code);
    }

    assert_nothing_delivered(&mut c, &auth).await;
    // The room still works: a valid broadcast afterwards is its first message.
    assert_eq!(broadcast_ok(&[&room], "ev", &ok_data, None).await, vec![1]);
    expect_backend_message(&mut c, "ev", &ok_data, 1).await;
}

#[tokio::test]
async fn broadcast_without_the_webhook_secret_is_401_and_delivers_nothing() {
    let room = unique_room("e2e:bcauth");
    let (mut c, auth) = listener(&room).await;
    let body = broadcast_body(&[&room], "ev", &json!({"text": "forged"}), None);
    let user_jwt = token("mallory").rooms(["*"]).mint();
    let auths = [
        ("no credentials", ReqAuth::None),
        (
            "wrong secret",
            ReqAuth::Bearer(format!("{}x", webhook_secret())),
        ),
        ("empty bearer", ReqAuth::Bearer(String::new())),
        ("admin secret", ReqAuth::Bearer(admin_secret())),
        ("a user JWT granting every room", ReqAuth::Bearer(user_jwt)),
        ("secret as ?token=", ReqAuth::Query(webhook_secret())),
    ];
    for (what, a) in &auths {
        let r = broadcast(&body, a).await;
        assert_eq!(r.status, 401, "{what}: got {} {}", r.status, r.body);
        r.assert_error(401, "unauthorized");
    }
    // The legacy body token is not a credential on /v1/broadcast.
    let mut with_token = body.clone();
    with_token["token"] = json!(webhook_secret());
    let r = broadcast(&with_token, &ReqAuth::None).await;
    assert_eq!(
        r.status, 401,
        "body token on /v1/broadcast: {} {}",
        r.status, r.body
    );
    r.assert_error(401, "unauthorized");

    assert_nothing_delivered(&mut c, &auth).await;
}

#[tokio::test]
async fn signed_broadcast_is_accepted() {
    let room = unique_room("e2e:bcsig");
    let (mut c, auth) = listener(&room).await;
    let key = webhook_secret();
    let data = json!({"text": "signed", "n": 1});
    // Deliberately unusual formatting: the signature covers the raw bytes as sent.
    let body =
        format!("{{ \"rooms\" : [\"{room}\"],\n  \"event\": \"signed:event\", \"data\": {data} }}");
    let r = signed_broadcast(
        body.as_bytes(),
        &signature(key.as_bytes(), now_secs(), body.as_bytes()),
    )
    .await;
    r.assert_status(200);
    assert_eq!(assert_results(r.json(), &[&room]), vec![1]);
    expect_backend_message(&mut c, "signed:event", &data, 1).await;

    // Clock skew well inside the 300 s tolerance, both ways.
    for (i, skew) in [-120i64, 120].into_iter().enumerate() {
        let body = broadcast_body(&[&room], "skewed", &json!(skew), None).to_string();
        let header = signature(key.as_bytes(), now_secs() + skew, body.as_bytes());
        let r = signed_broadcast(body.as_bytes(), &header).await;
        r.assert_status(200);
        assert_eq!(assert_results(r.json(), &[&room]), vec![i as u64 + 2]);
        expect_backend_message(&mut c, "skewed", &json!(skew), i as u64 + 2).await;
    }
    // The signature works with an idempotency key like the bearer form.
    let body = broadcast_body(&[&room], "keyed", &json!(1), Some("sig-key")).to_string();
    for _ in 0..2 {
        let header = signature(key.as_bytes(), now_secs(), body.as_bytes());
        let r = signed_broadcast(body.as_bytes(), &header).await;
        r.assert_status(200);
        assert_eq!(assert_results(r.json(), &[&room]), vec![4]);
    }
    expect_backend_message(&mut c, "keyed", &json!(1), 4).await;
    c.expect_no_message(SILENCE).await;
    assert_eq!(history_messages(&room, &auth).await.len(), 4);
}

#[tokio::test]
async fn bad_signatures_are_401_and_deliver_nothing() {
    let room = unique_room("e2e:bcsig");
    let (mut c, auth) = listener(&room).await;
    let key = webhook_secret();
    let body = broadcast_body(&[&room], "ev", &json!({"text": "forged"}), None).to_string();
    let other_body = broadcast_body(&[&room], "ev", &json!({"text": "other"}), None).to_string();
    let now = now_secs();
    let good = signature(key.as_bytes(), now, body.as_bytes());
    let good_hex = good.split_once(",v1=").expect("v1 part").1.to_string();

    let cases: Vec<(&str, String)> = vec![
        (
            "timestamp 400 s old",
            signature(key.as_bytes(), now - 400, body.as_bytes()),
        ),
        (
            "timestamp 400 s ahead",
            signature(key.as_bytes(), now + 400, body.as_bytes()),
        ),
        (
            "timestamp a day old",
            signature(key.as_bytes(), now - 86_400, body.as_bytes()),
        ),
        (
            "signature of a different body",
            signature(key.as_bytes(), now, other_body.as_bytes()),
        ),
        (
            "wrong key",
            signature(b"not-the-webhook-secret", now, body.as_bytes()),
        ),
        (
            "admin secret as key",
            signature(admin_secret().as_bytes(), now, body.as_bytes()),
        ),
        (
            "valid signature under another timestamp",
            format!("t={},v1={good_hex}", now - 1),
        ),
        ("no timestamp", format!("v1={good_hex}")),
        ("no signature", format!("t={now}")),
        ("garbage", "nonsense".to_string()),
        ("truncated signature", good[..good.len() - 2].to_string()),
    ];
    for (what, header) in &cases {
        let r = signed_broadcast(body.as_bytes(), header).await;
        assert_eq!(
            r.status, 401,
            "{what} (X-Relay-Signature: {header}): got {} {}",
            r.status, r.body
        );
        r.assert_error(401, "unauthorized");
    }
    assert_nothing_delivered(&mut c, &auth).await;
}

// ---- legacy Realtime Service API -------------------------------------------------------

/// (route kind, body field, event name).
const LEGACY_KINDS: [(&str, &str, &str); 5] = [
    ("call-new", "call", "call:new"),
    ("call-updated", "call", "call:updated"),
    ("order-new", "order", "order:new"),
    ("order-updated", "order", "order:updated"),
    ("notification", "notification", "notification"),
];

#[tokio::test]
async fn legacy_broadcast_kinds_map_to_events() {
    let room = unique_room("e2e:legacy");
    let other = unique_room("e2e:legacy");
    let (mut c, auth) = listener(&room).await;
    let (mut c2, _) = listener(&other).await;
    for (i, (kind, field, event)) in LEGACY_KINDS.iter().enumerate() {
        let object = json!({"id": 1000 + i, "kind": kind, "text": format!("#{i}")});
        let mut body = json!({"token": webhook_secret(), "rooms": [room, other]});
        body[*field] = object.clone();
        let r = legacy_broadcast(kind, &body, &ReqAuth::None).await;
        r.assert_status(200);
        let seq = i as u64 + 1;
        assert_eq!(
            assert_results(r.json(), &[&room, &other]),
            vec![seq, seq],
            "{kind}: {}",
            r.body
        );
        expect_backend_message(&mut c, event, &object, seq).await;
        expect_backend_message(&mut c2, event, &object, seq).await;
    }
    let hist = history_messages(&room, &auth).await;
    let events: Vec<&str> = hist.iter().map(|m| str_field(m, "event")).collect();
    assert_eq!(
        events,
        LEGACY_KINDS.iter().map(|k| k.2).collect::<Vec<_>>(),
        "stored events"
    );
    for m in &hist {
        assert_eq!(m.get("from"), Some(&Value::Null), "stored from: {m}");
    }
}

#[tokio::test]
async fn legacy_broadcast_accepts_the_bearer_instead_of_the_body_token() {
    let room = unique_room("e2e:legacy");
    let (mut c, _) = listener(&room).await;
    let call = json!({"id": "c-1", "status": "ringing", "operator": null});
    let body = json!({"call": call, "rooms": [room]});
    let r = legacy_broadcast("call-new", &body, &webhook_auth()).await;
    r.assert_status(200);
    assert_eq!(assert_results(r.json(), &[&room]), vec![1]);
    expect_backend_message(&mut c, "call:new", &call, 1).await;
    c.expect_no_message(SILENCE).await;
}

#[tokio::test]
async fn legacy_broadcast_refusals() {
    let room = unique_room("e2e:legacy");
    let (mut c, auth) = listener(&room).await;
    let order = json!({"id": 7, "total": "12.50"});

    let cases: Vec<(&str, Value, ReqAuth)> = vec![
        (
            "wrong body token",
            json!({"token": format!("{}x", webhook_secret()), "order": order, "rooms": [room]}),
            ReqAuth::None,
        ),
        (
            "no token at all",
            json!({"order": order, "rooms": [room]}),
            ReqAuth::None,
        ),
        (
            "wrong bearer",
            json!({"order": order, "rooms": [room]}),
            ReqAuth::Bearer("wrong".into()),
        ),
        (
            "admin secret as body token",
            json!({"token": admin_secret(), "order": order, "rooms": [room]}),
            ReqAuth::None,
        ),
    ];
    for (what, body, a) in &cases {
        let r = legacy_broadcast("order-new", body, a).await;
        assert_eq!(r.status, 401, "{what}: got {} {}", r.status, r.body);
        r.assert_error(401, "unauthorized");
    }
    // Unknown kinds are not routes, whatever the credentials.
    for kind in ["order-deleted", "orders-new", "call", "ORDER-NEW"] {
        let body = json!({"token": webhook_secret(), "order": order, "rooms": [room]});
        let r = legacy_broadcast(kind, &body, &webhook_auth()).await;
        assert_eq!(r.status, 404, "kind {kind}: got {} {}", r.status, r.body);
        r.assert_error(404, "not_found");
    }
    assert_nothing_delivered(&mut c, &auth).await;
}

#[tokio::test]
async fn call_center_order_reaches_operators_directors_and_city_once() {
    let operators = unique_room("operators");
    let directors = unique_room("directors");
    let city = unique_room("city");
    let op1 = User::new("op1", "Olga", "operator");
    let op2 = User::new("op2", "Oleg", "operator");
    let op_city = User::new("op3", "Oksana", "operator");
    let director = User::new("dir", "Dmitry", "director");

    // op1 and op2 in the operators room, op3 in its city, the director in directors only.
    let (mut s_op1, _) = Client::join(&operators, &op1.token(&[&operators])).await;
    let (mut s_op2, _) = Client::join(&operators, &op2.token(&[&operators])).await;
    let (mut s_city, _) = Client::join(&city, &op_city.token(&[&city])).await;
    let (mut s_dir, _) = Client::join(&directors, &director.token(&[&directors])).await;

    let order =
        json!({"id": 5521, "city": city, "status": "new", "items": [{"sku": "A1", "qty": 2}]});
    let body = json!({
        "token": webhook_secret(),
        "order": order,
        "rooms": [operators, directors, city],
    });
    let r = legacy_broadcast("order-new", &body, &ReqAuth::None).await;
    r.assert_status(200);
    assert_eq!(
        assert_results(r.json(), &[&operators, &directors, &city]),
        vec![1, 1, 1]
    );

    for s in [&mut s_op1, &mut s_op2, &mut s_city, &mut s_dir] {
        expect_backend_message(s, "order:new", &order, 1).await;
    }
    // Exactly once each: nothing further within a second.
    for s in [&mut s_op1, &mut s_op2, &mut s_city, &mut s_dir] {
        s.expect_no_message(SILENCE).await;
    }
}
