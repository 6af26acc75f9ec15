//! The WebSocket surface of one room: `welcome`, publish -> `ack` + `message` fan-out,
//! isolation between rooms, ping/pong, error frames for bad input, the frame size limit,
//! custom events, idempotent publishes, presence, and a room that hibernates in between.

use relay_e2e::*;
use serde_json::{json, Value};
use std::time::Duration;

/// A presence frame about `who` with `event`.
fn is_presence(v: &Value, event: &str, who: &User) -> bool {
    ty(v) == "presence" && v["event"] == event && v["user"]["id"] == who.id.as_str()
}

#[tokio::test]
async fn welcome_is_the_first_frame() {
    let room = unique_room("e2e:ws");
    let alice = User::new("alice", "Alice", "customer");
    let (a, seq) = Client::join_as(&room, &alice).await;
    assert_eq!(seq, 0, "a new room's welcome.seq is 0");

    // A second user sees both users in presence; a user without name/role claims shows none.
    let anon = User::anonymous("anon");
    let (b, welcome) = Client::join(&room, &anon.token(&[room.as_str()])).await;
    assert_eq!(assert_welcome(&welcome, &room, &anon), 0);
    let ids = presence_ids(&welcome);
    assert!(
        ids.contains(&alice.id),
        "presence must include alice: {welcome}"
    );
    let a_entry = welcome["presence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == alice.id.as_str())
        .unwrap();
    assert_user(a_entry, &alice, "presence[alice]");
    // conn_ids differ between connections.
    let (a2, w2) = Client::join(&room, &alice.token(&[room.as_str()])).await;
    assert_welcome(&w2, &room, &alice);
    assert_ne!(
        welcome["conn_id"], w2["conn_id"],
        "each connection has its own conn_id"
    );
    for c in [a, b, a2] {
        c.close().await;
    }
}

#[tokio::test]
async fn publish_is_acked_to_sender_and_delivered_to_everyone_else() {
    let room = unique_room("e2e:ws");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let (mut a2, _) = Client::join_as(&room, &alice).await; // alice's second tab
    let (mut b, _) = Client::join_as(&room, &bob).await;

    let data = json!({"text": "hi"});
    a.send_json(&json!({"type": "publish", "cid": "c1", "data": {"text": "hi"}}))
        .await;
    let ack = a.recv_ack("c1").await;
    let stamp = assert_ack(&ack, "c1", false);
    assert_eq!(stamp.seq, 1, "first message of a room has seq 1: {ack}");

    for (who, c) in [("bob", &mut b), ("alice's other tab", &mut a2)] {
        let m = c.recv_until("message").await;
        let got = assert_message(&m, &room, "message", &data, &alice, Some("c1"));
        assert_eq!(
            got, stamp,
            "{who}: message carries the ack's seq, id and ts: {m}"
        );
    }
    // The publishing connection gets the ack, not the message.
    a.expect_no_message(SILENCE).await;
    // And nobody gets it twice.
    b.expect_no_message(Duration::from_millis(200)).await;
    a2.expect_no_message(Duration::from_millis(200)).await;

    // The other direction: bob publishes, both of alice's tabs receive.
    let data2 = json!({"n": 2, "nested": {"list": [1, "two", null, true]}});
    let s2 = b.publish_acked("bob-1", None, &data2).await;
    assert_eq!(s2.seq, 2);
    for c in [&mut a, &mut a2] {
        let m = c.recv_until("message").await;
        assert_eq!(
            assert_message(&m, &room, "message", &data2, &bob, Some("bob-1")),
            s2
        );
    }
    for c in [a, a2, b] {
        c.close().await;
    }
}

#[tokio::test]
async fn another_room_receives_nothing() {
    let room = unique_room("e2e:ws");
    let elsewhere = unique_room("e2e:ws");
    let alice = User::new("alice", "Alice", "customer");
    let carol = User::new("carol", "Carol", "customer");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    // carol may read both rooms but is connected only to the other one.
    let (mut c, welcome) = Client::join(
        &elsewhere,
        &carol.token(&[room.as_str(), elsewhere.as_str()]),
    )
    .await;
    assert_welcome(&welcome, &elsewhere, &carol);
    a.publish_acked("c1", None, &json!({"text": "only here"}))
        .await;
    c.expect_none("frame from the other room", SILENCE, |v| {
        ty(v) == "message" || v.to_string().contains(&alice.id)
    })
    .await;
    assert_eq!(presence_ids(&welcome), vec![carol.id.clone()]);
    a.close().await;
    c.close().await;
}

#[tokio::test]
async fn ping_gets_pong() {
    let room = unique_room("e2e:ws");
    let (mut a, _) = Client::join_as(&room, &User::new("p", "P", "x")).await;
    for _ in 0..3 {
        a.send_json(&json!({"type": "ping"})).await;
        // Nothing but (possibly) presence may come before the pong.
        let v = a.recv_ignoring(&["presence"]).await;
        assert_eq!(v, json!({"type": "pong"}));
    }
    a.close().await;
}

#[tokio::test]
async fn bad_frames_get_bad_request_and_the_connection_stays_usable() {
    let room = unique_room("e2e:ws");
    let user = User::new("bad", "Bad", "x");
    let long_cid = "x".repeat(65);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("invalid JSON", Some("{not json".into())),
        ("JSON that is not an object", Some("[1,2,3]".into())),
        ("no type", Some(r#"{"cid":"c","data":{}}"#.into())),
        ("unknown type", Some(r#"{"type":"nope"}"#.into())),
        (
            "publish without data",
            Some(r#"{"type":"publish","cid":"c1"}"#.into()),
        ),
        (
            "publish with numeric cid",
            Some(r#"{"type":"publish","cid":5,"data":{}}"#.into()),
        ),
        (
            "publish with a 65-char cid",
            Some(json!({"type":"publish","cid":long_cid,"data":{}}).to_string()),
        ),
        ("binary frame", None),
    ];
    // One fresh connection per case: a server may close after *repeated* violations (4400).
    for (what, frame) in cases {
        let (mut c, _) = Client::join_as(&room, &user).await;
        match frame {
            Some(text) => c.send_text(text).await,
            None => c.send_binary(vec![0x7b, 0x00, 0xff]).await,
        }
        let v = c.recv_ignoring(&["presence"]).await;
        assert_eq!(ty(&v), "error", "{what}: expected an error frame, got {v}");
        assert_error_frame(&v, "bad_request");
        c.ping().await;
        c.close().await;
    }
    // None of it was persisted.
    let (c, seq) = Client::join_as(&room, &user).await;
    assert_eq!(seq, 0, "bad frames must not create messages");
    c.close().await;
}

#[tokio::test]
async fn frame_over_64_kib_closes_with_4009() {
    let room = unique_room("e2e:ws");
    let (mut a, _) = Client::join_as(&room, &User::new("big", "Big", "x")).await;
    let (mut b, _) = Client::join_as(&room, &User::new("bystander", "By", "x")).await;
    let frame = json!({"type": "publish", "cid": "big", "data": "x".repeat(70_000)}).to_string();
    assert!(frame.len() > 64 * 1024);
    // The server may close while the frame is still being written: a send error is fine.
    let _ = a.try_send_text(frame).await;
    let (code, reason) = a.expect_close(DEFAULT_TIMEOUT).await;
    assert_eq!(
        code,
        Some(4009),
        "close code for a too large frame (reason {reason:?})"
    );
    // Other connections are unaffected and nothing was published.
    b.ping().await;
    b.expect_no_message(Duration::from_millis(300)).await;
    let s = b.publish_acked("after", None, &json!(1)).await;
    assert_eq!(s.seq, 1, "the oversized frame must not have been persisted");
    b.close().await;
}

#[tokio::test]
async fn frame_under_the_limit_is_accepted() {
    let room = unique_room("e2e:ws");
    let (mut a, _) = Client::join_as(&room, &User::new("big", "Big", "x")).await;
    let data = json!("y".repeat(60_000));
    let s = a.publish_acked("almost-big", None, &data).await;
    assert_eq!(s.seq, 1);
    a.ping().await;
    a.close().await;
}

#[tokio::test]
async fn custom_event_is_delivered_with_its_name() {
    let room = unique_room("e2e:ws");
    let ops = User::new("ops", "Ops", "operator");
    let dir = User::new("dir", "Director", "director");
    let (mut a, _) = Client::join_as(&room, &ops).await;
    let (mut b, _) = Client::join_as(&room, &dir).await;
    let data = json!({"order": 42, "status": "paid"});
    let s = a.publish_acked("e1", Some("order:updated"), &data).await;
    let m = b.recv_until("message").await;
    assert_eq!(
        assert_message(&m, &room, "order:updated", &data, &ops, Some("e1")),
        s
    );
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn invalid_event_name_is_bad_request() {
    let room = unique_room("e2e:ws");
    let (mut a, _) = Client::join_as(&room, &User::new("ev", "Ev", "x")).await;
    let (mut b, _) = Client::join_as(&room, &User::new("watch", "W", "x")).await;
    a.publish("e1", Some("order updated"), &json!({})).await;
    let v = a.recv_ignoring(&["presence"]).await;
    assert_error_frame(&v, "bad_request");
    a.ping().await;
    b.expect_no_message(SILENCE).await;
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn cid_of_64_chars_is_accepted() {
    let room = unique_room("e2e:ws");
    let (mut a, _) = Client::join_as(&room, &User::new("cid", "Cid", "x")).await;
    let cid = "c".repeat(64);
    let s = a.publish_acked(&cid, None, &json!({"ok": true})).await;
    assert_eq!(s.seq, 1);
    a.close().await;
}

#[tokio::test]
async fn repeated_cid_returns_the_original_ack_and_is_not_broadcast_again() {
    let room = unique_room("e2e:ws");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "customer");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let (mut b, _) = Client::join_as(&room, &bob).await;
    let data = json!({"text": "once"});
    let first = a.publish_acked("dup-1", None, &data).await;
    b.recv_until("message").await;

    // Same connection, same cid.
    a.publish("dup-1", None, &data).await;
    let again = assert_ack(&a.recv_ack("dup-1").await, "dup-1", true);
    assert_eq!(
        again, first,
        "a duplicate carries the original seq, id and ts"
    );
    // Same sender from another connection, same cid.
    let (mut a2, _) = Client::join_as(&room, &alice).await;
    a2.publish("dup-1", None, &data).await;
    let again2 = assert_ack(&a2.recv_ack("dup-1").await, "dup-1", true);
    assert_eq!(again2, first);
    b.expect_no_message(SILENCE).await;

    // The same cid from another user is a different message.
    let other = b.publish_acked("dup-1", None, &data).await;
    assert_eq!(other.seq, first.seq + 1);
    // A new cid is a new message.
    let next = a.publish_acked("dup-2", None, &data).await;
    assert_eq!(next.seq, first.seq + 2);
    for c in [a, a2, b] {
        c.close().await;
    }
}

#[tokio::test]
async fn presence_joins_and_leaves_per_user_not_per_tab() {
    let room = unique_room("e2e:ws");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let (mut a, _) = Client::join_as(&room, &alice).await;

    let (b1, _) = Client::join_as(&room, &bob).await;
    let join = a
        .take_first(
            |v| is_presence(v, "join", &bob),
            tokio::time::Instant::now() + DEFAULT_TIMEOUT,
        )
        .await
        .unwrap_or_else(|| panic!("no presence join for bob; seen {:?}", a.backlog()));
    assert_user(&join["user"], &bob, "presence.user");

    // A second tab of bob: no new join.
    let (b2, _) = Client::join_as(&room, &bob).await;
    a.expect_none("presence join for bob's second tab", SILENCE, |v| {
        is_presence(v, "join", &bob)
    })
    .await;
    // Closing one of two tabs: no leave.
    b2.close().await;
    a.expect_none("presence leave while bob still has a tab", SILENCE, |v| {
        is_presence(v, "leave", &bob)
    })
    .await;
    // Closing the last tab: leave.
    b1.close().await;
    let leave = a
        .take_first(
            |v| is_presence(v, "leave", &bob),
            tokio::time::Instant::now() + DEFAULT_TIMEOUT,
        )
        .await
        .unwrap_or_else(|| panic!("no presence leave for bob; seen {:?}", a.backlog()));
    assert_user(&leave["user"], &bob, "presence.user");
    a.close().await;
}

/// Slow (about 13 s): runs in parallel with the other tests of this file.
#[tokio::test]
async fn room_keeps_its_state_across_hibernation() {
    let room = unique_room("e2e:hib");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let first = a
        .publish_acked("h1", None, &json!({"before": "sleep"}))
        .await;
    assert_eq!(first.seq, 1);

    // Idle for longer than the 10 s hibernation threshold.
    tokio::time::sleep(Duration::from_secs(12)).await;

    a.send_json(&json!({"type": "ping"})).await;
    assert_eq!(
        a.recv_ignoring(&["presence"]).await,
        json!({"type": "pong"})
    );
    let second = a
        .publish_acked("h2", None, &json!({"after": "sleep"}))
        .await;
    assert_eq!(
        second.seq,
        first.seq + 1,
        "sequence continues after hibernation"
    );
    assert_ne!(second.id, first.id);

    let (mut b, welcome) = Client::join(&room, &bob.token(&[room.as_str()])).await;
    assert_eq!(
        assert_welcome(&welcome, &room, &bob),
        second.seq,
        "welcome.seq is the last seq"
    );
    assert!(
        presence_ids(&welcome).contains(&alice.id),
        "alice's hibernated connection is still present: {welcome}"
    );
    // The hibernated connection still receives, and its identity survived (from = alice).
    let s3 = b.publish_acked("h3", None, &json!("to alice")).await;
    let m = a.recv_until("message").await;
    assert_eq!(
        assert_message(&m, &room, "message", &json!("to alice"), &bob, Some("h3")),
        s3
    );
    b.ping().await;
    a.publish_acked("h4", None, &json!("from alice")).await;
    let m = b.recv_until("message").await;
    assert_message(
        &m,
        &room,
        "message",
        &json!("from alice"),
        &alice,
        Some("h4"),
    );
    // A duplicate cid from before the sleep is still recognised.
    a.publish("h1", None, &json!({"before": "sleep"})).await;
    assert_eq!(assert_ack(&a.recv_ack("h1").await, "h1", true), first);
    a.close().await;
    b.close().await;
}
