//! Publishing over HTTP: `POST /v1/rooms/{room}/messages` with a user JWT answers
//! `{"seq","id","ts","duplicate"}`, the message reaches every WebSocket of the room with
//! `from` = the token's user, a repeated `cid` is deduplicated, custom events work, and bad
//! requests get the documented errors.

use relay_e2e::http::{self, ReqAuth};
use relay_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// The message a WebSocket client receives for an HTTP publish, checked against the receipt.
async fn delivered(
    c: &mut Client,
    room: &str,
    event: &str,
    data: &Value,
    from: &User,
    cid: Option<&str>,
    receipt: &Stamp,
) -> Value {
    let m = c.recv_until("message").await;
    let got = assert_message(&m, room, event, data, from, cid);
    assert_eq!(
        &got, receipt,
        "the message carries the HTTP receipt's seq, id, ts"
    );
    m
}

#[tokio::test]
async fn publish_with_bearer_or_query_token_is_broadcast_with_from() {
    let room = unique_room("e2e:http-pub");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let (mut a, _) = Client::join_as(&room, &alice).await; // alice's own socket
    let (mut b, _) = Client::join_as(&room, &bob).await;
    let token = alice.token(&[room.as_str()]);

    let data = json!({"text": "over http"});
    let r = http::publish(
        &room,
        &ReqAuth::Bearer(token.clone()),
        &json!({"cid": "h1", "data": data}),
    )
    .await;
    r.assert_status(200);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.contains("application/json"), "content-type {ct:?}");
    let s1 = assert_receipt(r.json(), false);
    assert_eq!(s1.seq, 1, "{}", r.body);
    // Both sockets get it: HTTP publishes go to every socket of the room, the publishing
    // user's own included.
    let m1 = delivered(&mut b, &room, "message", &data, &alice, Some("h1"), &s1).await;
    delivered(&mut a, &room, "message", &data, &alice, Some("h1"), &s1).await;

    // ?token= works as well; a publish without cid has no cid.
    let data2 = json!([1, 2, 3]);
    let r = http::publish(
        &room,
        &ReqAuth::Query(token.clone()),
        &json!({"data": data2}),
    )
    .await;
    r.assert_status(200);
    let s2 = assert_receipt(r.json(), false);
    assert_eq!(s2.seq, 2);
    assert_ne!(s2.id, s1.id);
    delivered(&mut b, &room, "message", &data2, &alice, None, &s2).await;
    delivered(&mut a, &room, "message", &data2, &alice, None, &s2).await;

    // data may be null (present but null); a second publish without cid is a new message.
    let r = http::publish(&room, &ReqAuth::Bearer(token), &json!({"data": null})).await;
    r.assert_status(200);
    let s3 = assert_receipt(r.json(), false);
    assert_eq!(s3.seq, 3);
    delivered(&mut b, &room, "message", &Value::Null, &alice, None, &s3).await;
    delivered(&mut a, &room, "message", &Value::Null, &alice, None, &s3).await;

    // History holds exactly what was broadcast.
    let h = http::history(&room, "", &ReqAuth::Bearer(bob.token(&[room.as_str()]))).await;
    h.assert_status(200);
    let msgs = h.json()["messages"].as_array().unwrap().clone();
    assert_eq!(seqs_of(&msgs), vec![1, 2, 3]);
    assert_eq!(msgs[0], m1, "history returns the broadcast JSON");
    a.expect_no_message(Duration::from_millis(300)).await;
    b.expect_no_message(Duration::from_millis(300)).await;
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn repeated_cid_over_http_returns_the_original_and_is_not_broadcast_again() {
    let room = unique_room("e2e:http-pub");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let (mut b, _) = Client::join_as(&room, &bob).await;
    let auth = ReqAuth::Bearer(alice.token(&[room.as_str()]));
    let body = json!({"cid": "same", "event": "note", "data": {"n": 1}});
    let r = http::publish(&room, &auth, &body).await;
    r.assert_status(200);
    let first = assert_receipt(r.json(), false);
    delivered(
        &mut b,
        &room,
        "note",
        &json!({"n": 1}),
        &alice,
        Some("same"),
        &first,
    )
    .await;

    // The same body again, and the same cid with other data: the original answer.
    for (what, again_body) in [
        ("same body", body.clone()),
        (
            "same cid, other data",
            json!({"cid": "same", "data": {"n": 2}}),
        ),
    ] {
        let r = http::publish(&room, &auth, &again_body).await;
        r.assert_status(200);
        let again = assert_receipt(r.json(), true);
        assert_eq!(again, first, "{what}: the original seq, id and ts");
    }
    // ?token= and the same cid: still the same sender, still a duplicate.
    let r = http::publish(&room, &ReqAuth::Query(alice.token(&[room.as_str()])), &body).await;
    r.assert_status(200);
    assert_eq!(assert_receipt(r.json(), true), first);
    b.expect_no_message(SILENCE).await;

    // Another user with the same cid publishes a new message.
    let r = http::publish(&room, &ReqAuth::Bearer(bob.token(&[room.as_str()])), &body).await;
    r.assert_status(200);
    let other = assert_receipt(r.json(), false);
    assert_eq!(other.seq, first.seq + 1);

    let h = http::history(&room, "", &auth).await;
    h.assert_status(200);
    let msgs = h.json()["messages"].as_array().unwrap().clone();
    assert_eq!(seqs_of(&msgs), vec![1, 2], "one message per (sender, cid)");
    assert_eq!(
        msgs[0]["data"],
        json!({"n": 1}),
        "the first publish is kept"
    );
    b.close().await;
}

#[tokio::test]
async fn custom_events_over_http() {
    let room = unique_room("e2e:http-pub");
    let ops = User::new("ops", "Ops", "operator");
    let (mut w, _) = Client::join_as(&room, &User::new("watch", "Watcher", "viewer")).await;
    let auth = ReqAuth::Bearer(ops.token(&[room.as_str()]));
    let long_ok = "e".repeat(64);
    let events = [
        "order:updated",
        "a",
        "Z.y-x_w:0",
        "message",
        long_ok.as_str(),
    ];
    for (i, event) in events.iter().enumerate() {
        let data = json!({"i": i});
        let cid = format!("ev{i}");
        let r = http::publish(
            &room,
            &auth,
            &json!({"cid": cid, "event": event, "data": data}),
        )
        .await;
        r.assert_status(200);
        let s = assert_receipt(r.json(), false);
        delivered(&mut w, &room, event, &data, &ops, Some(&cid), &s).await;
    }
    // Invalid event names: 400, nothing stored or broadcast.
    let long_bad = "e".repeat(65);
    for bad in [
        json!(""),
        json!("with space"),
        json!("slash/no"),
        json!("ünicode"),
        json!(long_bad),
        json!(5),
    ] {
        let r = http::publish(&room, &auth, &json!({"event": bad, "data": 1})).await;
        assert_eq!(
            r.status, 400,
            "event {bad}: expected 400, got {} {}",
            r.status, r.body
        );
        r.assert_error(400, "bad_request");
    }
    w.expect_no_message(SILENCE).await;
    let h = http::history(&room, "", &auth).await;
    assert_eq!(
        seqs_of(h.json()["messages"].as_array().unwrap()),
        (1..=events.len() as u64).collect::<Vec<_>>()
    );
    w.close().await;
}

#[tokio::test]
async fn bad_bodies_are_400_and_oversized_messages_413() {
    let room = unique_room("e2e:http-pub");
    let alice = User::new("alice", "Alice", "customer");
    let (mut w, _) = Client::join_as(&room, &User::new("watch", "Watcher", "viewer")).await;
    let auth = ReqAuth::Bearer(alice.token(&[room.as_str()]));
    let path = room_path(&room, "messages");

    let raw_cases: [(&str, &str); 6] = [
        ("invalid JSON", "{not json"),
        ("empty body", ""),
        ("a JSON array", "[1,2]"),
        ("a JSON string", "\"data\""),
        ("no data", r#"{"cid":"c1"}"#),
        ("no data, only event", r#"{"event":"x"}"#),
    ];
    for (what, body) in raw_cases {
        let r = http::send_raw(Method::POST, &path, &auth, body).await;
        assert_eq!(r.status, 400, "{what}: got {} {}", r.status, r.body);
        r.assert_error(400, "bad_request");
    }
    let long_cid = "c".repeat(65);
    for (what, body) in [
        ("numeric cid", json!({"cid": 5, "data": 1})),
        ("65-char cid", json!({"cid": long_cid, "data": 1})),
        ("empty cid", json!({"cid": "", "data": 1})),
        (
            "cid with a control character",
            json!({"cid": "a\nb", "data": 1}),
        ),
    ] {
        let r = http::publish(&room, &auth, &body).await;
        assert_eq!(r.status, 400, "{what}: got {} {}", r.status, r.body);
        r.assert_error(400, "bad_request");
    }

    // A message over 64 KiB is 413 too_large; just under is fine.
    let r = http::publish(
        &room,
        &auth,
        &json!({"cid": "big", "data": "x".repeat(70_000)}),
    )
    .await;
    assert_eq!(
        r.status, 413,
        "70 000-byte data: got {} {}",
        r.status, r.body
    );
    r.assert_error(413, "too_large");
    w.expect_no_message(SILENCE).await;
    let data = json!("y".repeat(60_000));
    let r = http::publish(&room, &auth, &json!({"cid": "almost", "data": data})).await;
    r.assert_status(200);
    let s = assert_receipt(r.json(), false);
    assert_eq!(s.seq, 1, "none of the refused bodies was stored");
    delivered(&mut w, &room, "message", &data, &alice, Some("almost"), &s).await;
    // The 64-char cid limit is inclusive.
    let cid64 = "c".repeat(64);
    let r = http::publish(&room, &auth, &json!({"cid": cid64, "data": 2})).await;
    r.assert_status(200);
    assert_eq!(assert_receipt(r.json(), false).seq, 2);
    w.close().await;
}

#[tokio::test]
async fn publish_needs_a_token_granting_the_room() {
    let room = unique_room("e2e:http-pub");
    let alice = User::new("alice", "Alice", "customer");
    let (mut w, _) = Client::join_as(&room, &User::new("watch", "Watcher", "viewer")).await;
    let body = json!({"cid": "x", "data": 1});

    let r = http::publish(&room, &ReqAuth::None, &body).await;
    r.assert_error(401, "unauthorized");
    for bad in BadToken::ALL {
        let t = bad.mint(&alice.id, &[room.as_str()]);
        let r = http::publish(&room, &ReqAuth::Bearer(t), &body).await;
        assert_eq!(r.status, 401, "{bad:?}: got {} {}", r.status, r.body);
        r.assert_error(401, "unauthorized");
    }
    // Valid token, other room granted: 403.
    let other = unique_room("e2e:http-pub");
    let r = http::publish(
        &room,
        &ReqAuth::Bearer(alice.token(&[other.as_str()])),
        &body,
    )
    .await;
    r.assert_error(403, "forbidden");
    let r = http::publish(
        &room,
        &ReqAuth::Query(alice.token(&[other.as_str()])),
        &body,
    )
    .await;
    r.assert_error(403, "forbidden");
    // Authentication comes before body validation: no token and a bad body is still 401.
    let r = http::send_raw(
        Method::POST,
        &room_path(&room, "messages"),
        &ReqAuth::None,
        "{bad",
    )
    .await;
    r.assert_error(401, "unauthorized");
    w.expect_no_message(SILENCE).await;

    // A prefix grant works, and so does the user's own room.
    let prefix = format!("{}*", &room[..room.len() - 4]);
    let r = http::publish(
        &room,
        &ReqAuth::Bearer(alice.token(&[prefix.as_str()])),
        &body,
    )
    .await;
    r.assert_status(200);
    assert_eq!(assert_receipt(r.json(), false).seq, 1);
    let own = format!("user:{}", alice.id);
    let r = http::publish(&own, &ReqAuth::Bearer(alice.token(&[])), &body).await;
    r.assert_status(200);
    w.close().await;
}
