//! Idempotent publishes: a client that lost its connection before reading the ack resends
//! with the same `cid` and the room ends up with exactly one message; WebSocket and HTTP
//! share the (sender, cid) key; the key outlives the message body's stay in the hot window;
//! `cid` is required over WebSocket.

use relay_e2e::http::{self, ReqAuth};
use relay_e2e::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Every message of `room` from history (after=0, pages of 200), in order.
async fn full_history(room: &str, auth: &ReqAuth) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    loop {
        let after = out.last().map(|m| u64_field(m, "seq")).unwrap_or(0);
        let r = http::history(room, &format!("after={after}&limit=200"), auth).await;
        r.assert_status(200);
        let page = r.json()["messages"].as_array().unwrap().clone();
        let more = r.json()["has_more"].as_bool().unwrap();
        out.extend(page);
        if !more {
            return out;
        }
    }
}

#[tokio::test]
async fn publish_lost_with_its_connection_then_retried_is_stored_once() {
    const ROUNDS: usize = 8;
    let room = unique_room("e2e:idem");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let (mut b, _) = Client::join_as(&room, &bob).await;

    let mut acks: Vec<(String, Value, Stamp, bool)> = Vec::new();
    for i in 0..ROUNDS {
        let cid = format!("lost-{i}");
        let data = json!({"round": i});
        let (mut a, _) = Client::join_as(&room, &alice).await;
        a.publish(&cid, None, &data).await;
        if i % 2 == 0 {
            // Gone without a close handshake, right after the frame was written.
            a.abort();
        } else {
            // An immediate close handshake; the ack (if any) is never read.
            a.close().await;
        }
        // Reconnect and resend the same frame.
        let (mut a, _) = Client::join_as(&room, &alice).await;
        a.publish(&cid, None, &data).await;
        let ack = a.recv_ack(&cid).await;
        let duplicate = ack
            .get("duplicate")
            .and_then(Value::as_bool)
            .unwrap_or_else(|| panic!("ack.duplicate must be a bool: {ack}"));
        let stamp = assert_ack(&ack, &cid, duplicate);
        // A third attempt on the new connection is a duplicate of whichever was stored.
        a.publish(&cid, None, &data).await;
        let third = assert_ack(&a.recv_ack(&cid).await, &cid, true);
        assert_eq!(
            third, stamp,
            "round {i}: the third attempt returns the stored message"
        );
        acks.push((cid, data, stamp, duplicate));
        a.close().await;
    }

    // bob saw exactly one message per cid, matching the retry's ack.
    let msgs = b.recv_messages(ROUNDS, Duration::from_secs(10)).await;
    b.expect_no_message(Duration::from_millis(1500)).await;
    assert_eq!(
        seqs_of(&msgs),
        (1..=ROUNDS as u64).collect::<Vec<_>>(),
        "one message per round, gap-free"
    );
    for (m, (cid, data, stamp, _)) in msgs.iter().zip(&acks) {
        let got = assert_message(m, &room, "message", data, &alice, Some(cid));
        assert_eq!(
            &got, stamp,
            "the message bob got is the one the retry was acked with"
        );
    }
    // History, after the archive had time to run: one message per cid.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hist = full_history(&room, &ReqAuth::Bearer(bob.token(&[room.as_str()]))).await;
    let mut per_cid: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for m in &hist {
        per_cid
            .entry(str_field(m, "cid").to_string())
            .or_default()
            .push(u64_field(m, "seq"));
    }
    for (cid, _, stamp, duplicate) in &acks {
        assert_eq!(
            per_cid.get(cid),
            Some(&vec![stamp.seq]),
            "history must hold exactly one message with cid {cid} (retry ack: seq {}, \
             duplicate {duplicate}); history: {hist:?}",
            stamp.seq
        );
    }
    assert_eq!(hist.len(), ROUNDS, "nothing else in history: {hist:?}");
    let stored_first = acks.iter().filter(|a| a.3).count();
    eprintln!("{stored_first} of {ROUNDS} first attempts were stored before the drop");
    b.close().await;
}

#[tokio::test]
async fn the_same_cid_on_two_connections_at_once_is_stored_once() {
    let room = unique_room("e2e:idem");
    let alice = User::new("alice", "Alice", "customer");
    let (mut a1, _) = Client::join_as(&room, &alice).await;
    let (mut a2, _) = Client::join_as(&room, &alice).await;
    let data = json!("racing");
    // Both frames are written before either ack is read.
    a1.publish("race", None, &data).await;
    a2.publish("race", None, &data).await;
    let k1 = a1.recv_ack("race").await;
    let k2 = a2.recv_ack("race").await;
    let d1 = k1["duplicate"].as_bool().expect("duplicate flag");
    let d2 = k2["duplicate"].as_bool().expect("duplicate flag");
    assert!(
        d1 != d2,
        "exactly one of the two acks is the original: {k1} / {k2}"
    );
    assert_eq!(assert_ack(&k1, "race", d1), assert_ack(&k2, "race", d2));
    // Only the original is broadcast, once, and only to the tab that did not store it.
    let (stored_by, other) = if d1 {
        (&mut a2, &mut a1)
    } else {
        (&mut a1, &mut a2)
    };
    stored_by
        .expect_no_message(Duration::from_millis(500))
        .await;
    let m = other.recv_until("message").await;
    assert_eq!(u64_field(&m, "seq"), 1);
    other.expect_no_message(Duration::from_millis(500)).await;
    a1.close().await;
    a2.close().await;
}

#[tokio::test]
async fn websocket_and_http_share_the_idempotency_key() {
    let room = unique_room("e2e:idem");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let (mut b, _) = Client::join_as(&room, &bob).await;
    let auth = ReqAuth::Bearer(alice.token(&[room.as_str()]));

    // WebSocket first, then HTTP.
    let data = json!({"via": "ws"});
    let s1 = a.publish_acked("shared-1", None, &data).await;
    b.recv_until("message").await;
    let r = http::publish(&room, &auth, &json!({"cid": "shared-1", "data": data})).await;
    r.assert_status(200);
    assert_eq!(
        assert_receipt(r.json(), true),
        s1,
        "HTTP retry of a WebSocket publish"
    );

    // HTTP first, then WebSocket.
    let data2 = json!({"via": "http"});
    let r = http::publish(
        &room,
        &auth,
        &json!({"cid": "shared-2", "event": "x.y", "data": data2}),
    )
    .await;
    r.assert_status(200);
    let s2 = assert_receipt(r.json(), false);
    assert_eq!(s2.seq, 2);
    b.recv_until("message").await;
    a.recv_until("message").await; // HTTP publishes reach the publisher's sockets too
    a.publish("shared-2", Some("x.y"), &data2).await;
    assert_eq!(
        assert_ack(&a.recv_ack("shared-2").await, "shared-2", true),
        s2,
        "WebSocket retry of an HTTP publish"
    );
    b.expect_no_message(SILENCE).await;
    a.expect_no_message(Duration::from_millis(200)).await;

    // Bob's identical cid is his own message.
    let r = http::publish(
        &room,
        &ReqAuth::Bearer(bob.token(&[room.as_str()])),
        &json!({"cid": "shared-1", "data": 0}),
    )
    .await;
    r.assert_status(200);
    assert_eq!(assert_receipt(r.json(), false).seq, 3);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn cid_is_required_over_websocket() {
    let room = unique_room("e2e:idem");
    let alice = User::new("alice", "Alice", "customer");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let (mut b, _) = Client::join_as(&room, &User::new("bob", "Bob", "x")).await;
    for frame in [
        json!({"type": "publish", "data": {"x": 1}}),
        json!({"type": "publish", "cid": null, "data": {"x": 1}}),
        json!({"type": "publish", "cid": "", "data": {"x": 1}}),
    ] {
        a.send_json(&frame).await;
        let v = a.recv_ignoring(&["presence"]).await;
        assert_error_frame(&v, "bad_request");
        a.ping().await;
    }
    b.expect_no_message(SILENCE).await;
    let s = a.publish_acked("now-with-cid", None, &json!(1)).await;
    assert_eq!(s.seq, 1, "none of the cid-less publishes was stored");
    a.close().await;
    b.close().await;
}

/// The room keeps every (sender, cid) key even after the body left the hot window (100
/// messages on the test relay) and lives only in D1.
#[tokio::test]
async fn a_cid_is_still_known_after_its_message_left_the_hot_window() {
    let room = unique_room("e2e:idem-cold");
    let alice = User::new("alice", "Alice", "customer");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let data = json!({"first": true});
    let first = a.publish_acked("ancient", None, &data).await;
    assert_eq!(first.seq, 1);

    // 130 more messages from 5 other users (26 each, within their HTTP bursts).
    let mut tasks = Vec::new();
    for k in 0..5 {
        let room = room.clone();
        tasks.push(tokio::spawn(async move {
            let u = User::new(&format!("fill{k}"), "Filler", "x");
            let auth = ReqAuth::Bearer(u.token(&[room.as_str()]));
            for i in 0..26 {
                http::publish_ok(&room, &auth, &json!({"cid": format!("f{i}"), "data": i})).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("filler");
    }
    // Let the archive run and trim the room to its newest 100 bodies.
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.clear_backlog();

    let (mut w, _) = Client::join_as(&room, &User::new("watch", "W", "x")).await;
    a.publish("ancient", None, &data).await;
    assert_eq!(
        assert_ack(&a.recv_ack("ancient").await, "ancient", true),
        first,
        "a WebSocket retry of message 1 after 130 newer ones"
    );
    let r = http::publish(
        &room,
        &ReqAuth::Bearer(alice.token(&[room.as_str()])),
        &json!({"cid": "ancient", "data": data}),
    )
    .await;
    r.assert_status(200);
    assert_eq!(assert_receipt(r.json(), true), first, "the same over HTTP");
    w.expect_no_message(SILENCE).await;
    // Message 1 itself is still served (from D1).
    let h = http::history(
        &room,
        "after=0&limit=1",
        &ReqAuth::Bearer(alice.token(&[room.as_str()])),
    )
    .await;
    h.assert_status(200);
    let m = &h.json()["messages"][0];
    assert_eq!(
        assert_message(m, &room, "message", &data, &alice, Some("ancient")),
        first
    );
    let deadline = Instant::now() + Duration::from_secs(1);
    assert!(
        w.take_first(|v| ty(v) == "message", deadline)
            .await
            .is_none(),
        "no broadcast for the duplicates"
    );
    a.close().await;
    w.close().await;
}
