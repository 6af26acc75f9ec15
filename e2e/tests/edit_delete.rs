//! Edit and delete: `{"type":"edit"|"delete"}` frames and `PATCH`/`DELETE
//! /v1/rooms/{room}/messages/{seq}`, by the author or a moderator (`MODERATOR_ROLES`, default
//! `moderator,admin`), each committed as a record at a new seq (`message.edited` /
//! `message.deleted` with `ref_seq`): seen live, on resume with `since`, and in history as the
//! message's current version, also when the message is only in the D1 archive (the relay runs
//! with ROOM_HOT_WINDOW=100 and ARCHIVE_DELAY_MS=50).

use std::time::Duration;

use relay_e2e::backend::broadcast_ok;
use relay_e2e::http::{self, HttpResponse, ReqAuth};
use relay_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};

fn auth(who: &User, room: &str) -> ReqAuth {
    ReqAuth::Bearer(who.token(&[room]))
}

async fn edit_http(room: &str, seq: u64, who: &ReqAuth, body: &Value) -> HttpResponse {
    let path = room_path(room, &format!("messages/{seq}"));
    http::send(Method::PATCH, &path, who, Some(body), &[]).await
}

async fn delete_http(room: &str, seq: u64, who: &ReqAuth, body: Option<&Value>) -> HttpResponse {
    let path = room_path(room, &format!("messages/{seq}"));
    http::send(Method::DELETE, &path, who, body, &[]).await
}

/// The history page `query` of `room`.
async fn history(room: &str, who: &ReqAuth, query: &str) -> Vec<Value> {
    let r = http::history(room, query, who).await;
    r.assert_status(200);
    r.json()["messages"].as_array().unwrap().clone()
}

fn message_at(messages: &[Value], seq: u64) -> &Value {
    messages
        .iter()
        .find(|m| u64_field(m, "seq") == seq)
        .unwrap_or_else(|| panic!("no seq {seq} in {messages:?}"))
}

/// The next `message` frame (other frames passed over).
async fn next_message(c: &mut Client) -> Value {
    c.recv_until("message").await
}

#[tokio::test]
async fn the_author_edits_and_deletes_seen_live_and_in_history() {
    let room = unique_room("e2e:edit");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "customer");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let (mut b, _) = Client::join_as(&room, &bob).await;
    let original = a.publish_acked("m1", None, &json!({"text": "helo"})).await;
    assert_eq!(next_message(&mut b).await["seq"], original.seq);

    a.send_json(
        &json!({"type": "edit", "cid": "e1", "seq": original.seq, "data": {"text": "hello"}}),
    )
    .await;
    let ack = a.recv_ack("e1").await;
    assert_eq!(
        (ack["seq"].as_u64(), &ack["duplicate"]),
        (Some(2), &json!(false))
    );
    let edited = next_message(&mut b).await;
    assert_eq!(edited["event"], "message.edited");
    assert_eq!(edited["ref_seq"], original.seq);
    assert_eq!(edited["data"], json!({"text": "hello"}));
    assert_eq!(edited["seq"], 2);
    assert_eq!(edited["from"]["id"], alice.id.as_str());

    // Over HTTP: the record reaches every socket, the author's too.
    let alice_http = auth(&alice, &room);
    let r = delete_http(
        &room,
        original.seq,
        &alice_http,
        Some(&json!({"cid": "d1"})),
    )
    .await;
    r.assert_status(200);
    assert_eq!(
        (r.json()["seq"].as_u64(), &r.json()["duplicate"]),
        (Some(3), &json!(false))
    );
    for c in [&mut a, &mut b] {
        let deleted = next_message(c).await;
        assert_eq!(
            (
                &deleted["event"],
                &deleted["ref_seq"],
                &deleted["data"],
                &deleted["seq"]
            ),
            (
                &json!("message.deleted"),
                &json!(original.seq),
                &Value::Null,
                &json!(3)
            )
        );
    }
    let again = delete_http(
        &room,
        original.seq,
        &alice_http,
        Some(&json!({"cid": "d1"})),
    )
    .await;
    again.assert_status(200);
    assert_eq!(
        (again.json()["seq"].as_u64(), &again.json()["duplicate"]),
        (Some(3), &json!(true))
    );

    let shown = history(&room, &alice_http, "after=0").await;
    assert_eq!(
        seqs_of(&shown),
        [1, 2, 3],
        "the records stay in history, in order"
    );
    let current = message_at(&shown, 1);
    assert_eq!(current["data"], Value::Null);
    assert_eq!(current["event"], "message");
    assert_eq!(current["from"]["id"], alice.id.as_str());
    assert_rfc3339_utc(&current["edited_at"], "edited_at");
    assert_rfc3339_utc(&current["deleted_at"], "deleted_at");

    // A deleted message cannot be edited or deleted again; a missing seq is not found.
    a.send_json(&json!({"type": "edit", "cid": "e2", "seq": 1, "data": "x"}))
        .await;
    let err = a.recv_until("error").await;
    assert_eq!(
        (&err["code"], &err["cid"]),
        (&json!("not_found"), &json!("e2"))
    );
    delete_http(&room, 1, &alice_http, Some(&json!({"cid": "d2"})))
        .await
        .assert_error(404, "not_found");
    edit_http(&room, 999, &alice_http, &json!({"data": 1}))
        .await
        .assert_error(404, "not_found");
    edit_http(&room, 2, &alice_http, &json!({"data": 1}))
        .await
        .assert_error(400, "bad_request");
    // Edit data is bounded like publish data.
    let big = "x".repeat(70 * 1024);
    let m2 = a.publish_acked("m2", None, &json!("short")).await;
    edit_http(&room, m2.seq, &alice_http, &json!({"data": big}))
        .await
        .assert_error(413, "too_large");
}

#[tokio::test]
async fn others_are_refused_moderators_may() {
    let room = unique_room("e2e:edit");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "customer");
    let moderator = User::new("mod", "Mo", "moderator");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let (mut b, _) = Client::join_as(&room, &bob).await;
    let m1 = a.publish_acked("m1", None, &json!("alice's")).await;
    let backend_seq = broadcast_ok(&[&room], "notice", &json!("from the backend"), None).await[0];

    b.send_json(&json!({"type": "edit", "cid": "b1", "seq": m1.seq, "data": "bob's now"}))
        .await;
    let err = b.recv_until("error").await;
    assert_eq!(
        (&err["code"], &err["cid"]),
        (&json!("forbidden"), &json!("b1"))
    );
    delete_http(&room, m1.seq, &auth(&bob, &room), None)
        .await
        .assert_error(403, "forbidden");
    delete_http(&room, backend_seq, &auth(&alice, &room), None)
        .await
        .assert_error(403, "forbidden");

    let r = delete_http(&room, m1.seq, &auth(&moderator, &room), None).await;
    r.assert_status(200);
    let deleted = next_message(&mut a).await;
    let deleted = if deleted["seq"] == backend_seq {
        next_message(&mut a).await
    } else {
        deleted
    };
    assert_eq!(
        (
            &deleted["event"],
            &deleted["ref_seq"],
            &deleted["from"]["id"]
        ),
        (
            &json!("message.deleted"),
            &json!(m1.seq),
            &json!(moderator.id)
        )
    );
    let r = edit_http(
        &room,
        backend_seq,
        &auth(&moderator, &room),
        &json!({"cid": "fix", "data": "corrected"}),
    )
    .await;
    r.assert_status(200);
    let shown = history(&room, &auth(&bob, &room), "after=0").await;
    assert_eq!(message_at(&shown, m1.seq)["data"], Value::Null);
    assert_eq!(message_at(&shown, backend_seq)["data"], "corrected");
    assert_eq!(message_at(&shown, backend_seq)["from"], Value::Null);

    // A banned author is refused like a publish.
    let m2 = http::publish_ok(&room, &auth(&bob, &room), &json!({"data": "bob's"})).await;
    let ban = room_path(&room, &format!("bans/{}", encode_segment(&bob.id)));
    http::send(
        Method::PUT,
        &ban,
        &relay_e2e::backend::webhook_auth(),
        None,
        &[],
    )
    .await
    .assert_status(200);
    let refused = edit_http(&room, m2.seq, &auth(&bob, &room), &json!({"data": "again"})).await;
    refused.assert_error(403, "forbidden");
    assert!(refused.body.contains("banned"), "{}", refused.body);
}

#[tokio::test]
async fn resuming_with_since_replays_the_records_in_order() {
    let room = unique_room("e2e:edit");
    let alice = User::new("alice", "Alice", "customer");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    for i in 1..=3 {
        a.publish_acked(&format!("m{i}"), None, &json!(i)).await;
    }
    a.send_json(&json!({"type": "edit", "cid": "e", "seq": 1, "data": "one"}))
        .await;
    a.recv_ack("e").await;
    a.send_json(&json!({"type": "delete", "cid": "d", "seq": 2}))
        .await;
    a.recv_ack("d").await;

    let (mut resumed, _) =
        Client::join_with(&room, &alice.token(&[room.as_str()]), Via::Query, Some(3)).await;
    let edited = resumed.recv_until("message").await;
    let deleted = resumed.recv_until("message").await;
    assert_eq!(
        (
            &edited["seq"],
            &edited["event"],
            &edited["ref_seq"],
            &edited["data"]
        ),
        (
            &json!(4),
            &json!("message.edited"),
            &json!(1),
            &json!("one")
        )
    );
    assert_eq!(
        (&deleted["seq"], &deleted["event"], &deleted["ref_seq"]),
        (&json!(5), &json!("message.deleted"), &json!(2))
    );
    assert_eq!(resumed.recv_until("synced").await["seq"], 5);

    // From the start: the messages as they are now, then the records.
    let (mut fresh, _) =
        Client::join_with(&room, &alice.token(&[room.as_str()]), Via::Query, Some(0)).await;
    let replay = fresh.recv_messages(5, Duration::from_secs(5)).await;
    assert_eq!(seqs_of(&replay), [1, 2, 3, 4, 5]);
    assert_eq!(
        (&replay[0]["data"], &replay[1]["data"]),
        (&json!("one"), &Value::Null)
    );
}

/// Backend broadcasts enough to push the room's earlier bodies out of its hot window (100),
/// then waits for the archive to write and prune them.
async fn push_out_of_the_room(room: &str) {
    for i in 0..110 {
        broadcast_ok(&[room], "filler", &json!(i), None).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn history_is_current_for_messages_only_in_the_archive() {
    let room = unique_room("e2e:edit-archive");
    let alice = User::new("alice", "Alice", "customer");
    let alice_http = auth(&alice, &room);
    let first = http::publish_ok(&room, &alice_http, &json!({"cid": "m1", "data": "v1"})).await;
    let second =
        http::publish_ok(&room, &alice_http, &json!({"cid": "m2", "data": "doomed"})).await;
    push_out_of_the_room(&room).await;

    // The originals are only in D1 now; the changes are in the room, not yet in D1.
    edit_http(
        &room,
        first.seq,
        &alice_http,
        &json!({"cid": "e1", "data": "v2"}),
    )
    .await
    .assert_status(200);
    delete_http(&room, second.seq, &alice_http, Some(&json!({"cid": "d1"})))
        .await
        .assert_status(200);
    let check = |shown: Vec<Value>, when: &str| {
        assert_eq!(seqs_of(&shown), [1, 2, 3], "{when}");
        assert_eq!(shown[0]["data"], "v2", "{when}: {:?}", shown[0]);
        assert!(shown[0]["edited_at"].is_string(), "{when}: {:?}", shown[0]);
        assert_eq!(shown[1]["data"], Value::Null, "{when}: {:?}", shown[1]);
        assert!(shown[1]["deleted_at"].is_string(), "{when}: {:?}", shown[1]);
    };
    check(
        history(&room, &alice_http, "after=0&limit=3").await,
        "at once",
    );
    // The archive wrote the records (and the current versions) to D1.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    check(
        history(&room, &alice_http, "after=0&limit=3").await,
        "archived",
    );
    // The records leave the room too: D1 alone has the current versions.
    push_out_of_the_room(&room).await;
    check(
        history(&room, &alice_http, "after=0&limit=3").await,
        "from D1 alone",
    );
    check(
        history(&room, &alice_http, "before=4&limit=3").await,
        "backwards",
    );
}
