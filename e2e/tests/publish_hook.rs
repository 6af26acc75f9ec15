//! The before-publish hook end to end: the relay (started with `PUBLISH_HOOK_URL` pointing at a
//! port on 127.0.0.1, `PUBLISH_HOOK_SECRET`, `PUBLISH_HOOK_PREFIXES=e2e-hook:` and a short
//! `PUBLISH_HOOK_TIMEOUT_MS`, see `run_e2e` in scripts/test) asks the hook these tests run on
//! that port before it commits a user's publish in an `e2e-hook:` room. The hook answers as
//! the published data tells it (`{"hook":"reject","reason":…}`, `{"hook":"replace","with":…}`,
//! `{"hook":"slow","ms":…}`, `{"hook":"hang"}`, `{"hook":"fail"}`, anything else accepted),
//! and records every call with whether its signature verified. Edits in those rooms ask it
//! too (their new data tells it the same way).
//!
//! The relay's `PUBLISH_HOOK_FAIL` (default `closed`) decides what the timeout test expects;
//! scripts/test runs the suite with `closed`, and the same test passes against a relay started
//! with `open`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::time::Instant as Deadline;

use relay_e2e::backend::{broadcast_ok, history_messages};
use relay_e2e::http::{self, publish, HttpResponse};
use relay_e2e::signing::{self, Answer, SignedRequest};
use relay_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};

/// Longest request the hook reads.
const MAX_REQUEST_BYTES: usize = 1 << 20;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: the hook tests need the relay's PUBLISH_HOOK_URL, PUBLISH_HOOK_SECRET and PUBLISH_HOOK_TIMEOUT_MS (scripts/test sets them)")
    })
}

/// One call the hook got.
#[derive(Debug, Clone)]
struct Call {
    request: Value,
    signed: bool,
}

/// The calls per room, in arrival order.
fn calls() -> &'static Mutex<HashMap<String, Vec<Call>>> {
    static CALLS: OnceLock<Mutex<HashMap<String, Vec<Call>>>> = OnceLock::new();
    CALLS.get_or_init(|| {
        signing::serve(
            &env("PUBLISH_HOOK_URL"),
            env("PUBLISH_HOOK_SECRET"),
            MAX_REQUEST_BYTES,
            hook,
        );
        Mutex::new(HashMap::new())
    })
}

/// Records a call and answers as its data says.
fn hook(SignedRequest { body, signed }: SignedRequest) -> Answer {
    let request: Value = serde_json::from_slice(&body).expect("a hook call is JSON");
    let room = request["room"].as_str().expect("room").to_string();
    let call = Call {
        request: request.clone(),
        signed,
    };
    calls().lock().unwrap().entry(room).or_default().push(call);
    let data = &request["data"];
    let accept = || Answer::json(json!({"action": "accept"}).to_string());
    match data["hook"].as_str() {
        Some("reject") => {
            Answer::json(json!({"action": "reject", "reason": data["reason"]}).to_string())
        }
        Some("replace") => {
            Answer::json(json!({"action": "replace", "data": data["with"]}).to_string())
        }
        Some("slow") => Answer {
            delay: Duration::from_millis(data["ms"].as_u64().unwrap_or(0)),
            ..accept()
        },
        Some("hang") => Answer {
            delay: timeout() + Duration::from_secs(1),
            ..accept()
        },
        Some("fail") => Answer::status(500),
        _ => accept(),
    }
}

/// How long the relay waits for the hook (`PUBLISH_HOOK_TIMEOUT_MS`).
fn timeout() -> Duration {
    Duration::from_millis(env("PUBLISH_HOOK_TIMEOUT_MS").parse().expect("a number"))
}

fn fails_open() -> bool {
    std::env::var("PUBLISH_HOOK_FAIL").is_ok_and(|mode| mode.trim() == "open")
}

/// The calls the hook got for `room`.
fn calls_for(room: &str) -> Vec<Call> {
    calls()
        .lock()
        .unwrap()
        .get(room)
        .cloned()
        .unwrap_or_default()
}

/// A room the hook watches (and starts the hook, so that it listens before the first call).
fn hook_room(name: &str) -> String {
    calls();
    unique_room(&format!("e2e-hook:{name}"))
}

/// Two users in a hooked room: the publisher and someone who watches.
async fn two_in(room: &str) -> (Client, Client, User) {
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let (a, _) = Client::join_as(room, &alice).await;
    let (b, _) = Client::join_as(room, &bob).await;
    (a, b, alice)
}

/// The frame for `cid` (ack or error) on the publisher's socket.
async fn reply_for(c: &mut Client, cid: &str, within: Duration) -> Value {
    let deadline = Deadline::now() + within;
    c.take_first(
        |v| {
            v.get("cid").and_then(Value::as_str) == Some(cid)
                && (v["type"] == "ack" || v["type"] == "error")
        },
        deadline,
    )
    .await
    .unwrap_or_else(|| {
        panic!(
            "no ack or error for {cid} within {within:?}; backlog: {:?}",
            c.backlog()
        )
    })
}

fn data_of(messages: &[Value]) -> Vec<Value> {
    messages.iter().map(|m| m["data"].clone()).collect()
}

#[tokio::test]
async fn an_accepted_publish_is_committed_and_the_hook_was_asked_signed() {
    let room = hook_room("accept");
    let (mut a, mut b, alice) = two_in(&room).await;
    let data = json!({"text": "hello", "hook": "accept"});
    let stamp = a.publish_acked("c1", Some("chat"), &data).await;
    assert_eq!(stamp.seq, 1);
    let seen = b.recv_until("message").await;
    assert_eq!((&seen["seq"], &seen["data"]), (&json!(1), &data));

    let calls = calls_for(&room);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].signed,
        "the call is signed with PUBLISH_HOOK_SECRET"
    );
    assert_eq!(
        calls[0].request,
        json!({"kind": "publish", "room": room,
            "user": {"id": alice.id, "name": "Alice", "role": "customer"},
            "event": "chat", "data": data, "cid": "c1"})
    );
}

#[tokio::test]
async fn a_rejected_publish_gets_the_reason_and_nobody_sees_it() {
    let room = hook_room("reject");
    let (mut a, mut b, alice) = two_in(&room).await;
    let data = json!({"text": "buy now", "hook": "reject", "reason": "no ads here"});
    a.publish("r1", None, &data).await;
    let refusal = reply_for(&mut a, "r1", Duration::from_secs(5)).await;
    assert_eq!(
        refusal,
        json!({"type": "error", "code": "rejected", "message": "no ads here", "cid": "r1"})
    );
    b.expect_no_message(SILENCE).await;

    // Over HTTP: 422 with the code and the reason.
    let auth = ReqAuth::Bearer(alice.token(&[&room]));
    let r = publish(&room, &auth, &json!({"cid": "r2", "data": data})).await;
    r.assert_error(422, "rejected");
    assert_eq!(r.json()["error"]["message"], "no ads here");
    b.expect_no_message(SILENCE).await;

    // The socket is still open, and nothing was stored.
    let ok = a.publish_acked("ok", None, &json!("fine")).await;
    assert_eq!(ok.seq, 1);
    assert_eq!(
        data_of(&history_messages(&room, &auth).await),
        [json!("fine")]
    );
}

#[tokio::test]
async fn a_replaced_publish_reaches_everyone_and_history_with_the_new_data() {
    let room = hook_room("replace");
    let (mut a, mut b, alice) = two_in(&room).await;
    let masked = json!({"text": "call me at ***"});
    a.publish(
        "p1",
        None,
        &json!({"text": "call me at 555-0100", "hook": "replace", "with": masked}),
    )
    .await;
    let ack = reply_for(&mut a, "p1", Duration::from_secs(5)).await;
    assert_eq!((&ack["type"], &ack["seq"]), (&json!("ack"), &json!(1)));
    assert_eq!(b.recv_until("message").await["data"], masked);

    let auth = ReqAuth::Bearer(alice.token(&[&room]));
    let r = publish(
        &room,
        &auth,
        &json!({"cid": "p2", "data": {"hook": "replace", "with": null}}),
    )
    .await;
    r.assert_status(200);
    assert_eq!(r.json()["seq"], 2);
    assert_eq!(b.recv_until("message").await["data"], Value::Null);
    assert_eq!(
        data_of(&history_messages(&room, &auth).await),
        [masked, Value::Null]
    );
}

#[tokio::test]
async fn a_hook_that_does_not_answer_in_time_or_fails_goes_by_the_fail_mode() {
    let room = hook_room("timeout");
    let (mut a, mut b, alice) = two_in(&room).await;
    let auth = ReqAuth::Bearer(alice.token(&[&room]));
    for (cid, data) in [
        ("late", json!({"hook": "hang"})),
        ("broken", json!({"hook": "fail"})),
    ] {
        let started = Instant::now();
        a.publish(cid, None, &data).await;
        let reply = reply_for(&mut a, cid, timeout() + Duration::from_secs(5)).await;
        if fails_open() {
            assert_eq!(reply["type"], "ack", "{reply}");
            assert_eq!(b.recv_until("message").await["data"], data);
        } else {
            assert_eq!(
                reply,
                json!({"type": "error", "code": "rejected", "message": "hook unavailable", "cid": cid})
            );
            b.expect_no_message(SILENCE).await;
        }
        assert!(
            started.elapsed() < timeout() + Duration::from_secs(3),
            "answered {:?} after the publish, the timeout is {:?}",
            started.elapsed(),
            timeout()
        );
    }
    let r = publish(
        &room,
        &auth,
        &json!({"cid": "http-late", "data": {"hook": "hang"}}),
    )
    .await;
    if fails_open() {
        r.assert_status(200);
    } else {
        r.assert_error(422, "rejected");
        assert_eq!(r.json()["error"]["message"], "hook unavailable");
    }
    let stored = history_messages(&room, &auth).await.len();
    assert_eq!(stored, if fails_open() { 3 } else { 0 });
}

#[tokio::test]
async fn a_slow_answer_holds_back_the_later_publishes_of_its_socket_only() {
    let room = hook_room("order");
    let (mut a, mut b, _) = two_in(&room).await;
    let carol = User::new("carol", "Carol", "customer");
    let (mut c, _) = Client::join_as(&room, &carol).await;
    // Half the timeout: time for carol's publish to get through meanwhile, and far enough
    // from the timeout that the slow answer still counts.
    let slow_ms = timeout().as_millis() as u64 / 2;
    let frames = [
        json!({"type": "publish", "cid": "m1", "data": {"n": 1, "hook": "slow", "ms": slow_ms}}),
        json!({"type": "publish", "cid": "m2", "data": {"n": 2}}),
        json!({"type": "publish", "cid": "m3", "data": {"n": 3, "hook": "reject", "reason": "no"}}),
        json!({"type": "publish", "cid": "m4", "data": {"n": 4}}),
    ];
    a.send_burst(frames.iter().map(Value::to_string)).await;
    // Carol's publish, sent after alice's burst, is not held back by alice's slow one.
    let carols = c.publish_acked("c1", None, &json!({"n": "carol"})).await;
    assert_eq!(carols.seq, 1);

    let mut replies = Vec::new();
    for _ in 0..4 {
        let deadline = Deadline::now() + Duration::from_secs(5);
        let reply = a
            .take_first(|v| v["type"] == "ack" || v["type"] == "error", deadline)
            .await
            .expect("a reply for each publish");
        replies.push((
            reply["cid"].clone(),
            reply["type"].clone(),
            reply["seq"].clone(),
        ));
    }
    assert_eq!(
        replies,
        [
            (json!("m1"), json!("ack"), json!(2)),
            (json!("m2"), json!("ack"), json!(3)),
            (json!("m3"), json!("error"), Value::Null),
            (json!("m4"), json!("ack"), json!(4)),
        ]
    );
    let seen = b.recv_messages(4, Duration::from_secs(5)).await;
    let order: Vec<Value> = seen.iter().map(|m| m["data"]["n"].clone()).collect();
    assert_eq!(order, [json!("carol"), json!(1), json!(2), json!(4)]);
}

#[tokio::test]
async fn repeats_broadcasts_and_other_rooms_do_not_call_the_hook() {
    let room = hook_room("skip");
    let (mut a, mut b, _) = two_in(&room).await;
    a.publish_acked("d1", None, &json!("once")).await;
    a.publish("d1", None, &json!("once")).await;
    let repeat = reply_for(&mut a, "d1", Duration::from_secs(5)).await;
    assert_eq!(
        (&repeat["seq"], &repeat["duplicate"]),
        (&json!(1), &json!(true))
    );
    b.recv_until("message").await;

    let seqs = broadcast_ok(&[&room], "notice", &json!({"hook": "reject"}), None).await;
    assert_eq!(seqs, [2]);
    assert_eq!(b.recv_until("message").await["seq"], 2);
    assert_eq!(
        calls_for(&room).len(),
        1,
        "only the first publish asked the hook"
    );

    let plain = unique_room("e2e-nohook");
    let dave = User::anonymous("dave");
    let (mut d, _) = Client::join_as(&plain, &dave).await;
    d.publish_acked("x", None, &json!({"hook": "reject"})).await;
    assert!(calls_for(&plain).is_empty());
}

/// `PATCH /v1/rooms/{room}/messages/{seq}`: an edit over HTTP.
async fn edit_http(room: &str, seq: u64, auth: &ReqAuth, body: &Value) -> HttpResponse {
    let path = room_path(room, &format!("messages/{seq}"));
    http::send(Method::PATCH, &path, auth, Some(body), &[]).await
}

fn edit_frame(cid: &str, seq: u64, data: &Value) -> Value {
    json!({"type": "edit", "cid": cid, "seq": seq, "data": data})
}

#[tokio::test]
async fn an_edit_the_hook_rejects_changes_nothing() {
    let room = hook_room("edit-reject");
    let (mut a, mut b, alice) = two_in(&room).await;
    let harmless = json!({"text": "nice shop"});
    let original = a.publish_acked("m1", None, &harmless).await;
    b.recv_until("message").await;

    let ad = json!({"text": "buy now", "hook": "reject", "reason": "no ads here"});
    a.send_json(&edit_frame("e1", original.seq, &ad)).await;
    let refusal = reply_for(&mut a, "e1", Duration::from_secs(5)).await;
    assert_eq!(
        refusal,
        json!({"type": "error", "code": "rejected", "message": "no ads here", "cid": "e1"})
    );
    b.expect_no_message(SILENCE).await;

    let auth = ReqAuth::Bearer(alice.token(&[&room]));
    let r = edit_http(
        &room,
        original.seq,
        &auth,
        &json!({"cid": "e2", "data": ad}),
    )
    .await;
    r.assert_error(422, "rejected");
    assert_eq!(r.json()["error"]["message"], "no ads here");
    b.expect_no_message(SILENCE).await;

    let stored = history_messages(&room, &auth).await;
    assert_eq!(data_of(&stored), [harmless], "only the original, unedited");
    assert!(stored[0].get("edited_at").is_none(), "{stored:?}");

    let calls = calls_for(&room);
    assert_eq!(calls.len(), 3, "the publish and both edits: {calls:?}");
    assert!(calls.iter().all(|c| c.signed));
    assert_eq!(
        calls[1].request,
        json!({"kind": "edit", "ref_seq": original.seq, "room": room,
            "user": {"id": alice.id, "name": "Alice", "role": "customer"},
            "event": "message", "data": ad, "cid": "e1"})
    );
}

#[tokio::test]
async fn an_edit_the_hook_replaces_reaches_everyone_and_history_with_the_new_data() {
    let room = hook_room("edit-replace");
    let (mut a, mut b, alice) = two_in(&room).await;
    let original = a.publish_acked("m1", None, &json!({"text": "hi"})).await;
    b.recv_until("message").await;

    let masked = json!({"text": "call me at ***"});
    let phone = json!({"text": "call me at 555-0100", "hook": "replace", "with": masked});
    a.send_json(&edit_frame("e1", original.seq, &phone)).await;
    let ack = reply_for(&mut a, "e1", Duration::from_secs(5)).await;
    assert_eq!((&ack["type"], &ack["seq"]), (&json!("ack"), &json!(2)));
    let record = b.recv_until("message").await;
    assert_eq!(
        (&record["event"], &record["ref_seq"], &record["data"]),
        (&json!("message.edited"), &json!(original.seq), &masked)
    );

    let auth = ReqAuth::Bearer(alice.token(&[&room]));
    let blanked = json!({"text": "***"});
    let r = edit_http(
        &room,
        original.seq,
        &auth,
        &json!({"cid": "e2", "data": {"hook": "replace", "with": blanked}}),
    )
    .await;
    r.assert_status(200);
    assert_eq!(r.json()["seq"], 3);
    assert_eq!(b.recv_until("message").await["data"], blanked);

    let stored = history_messages(&room, &auth).await;
    assert_eq!(data_of(&stored), [blanked.clone(), masked, blanked]);
    assert!(stored[0]["edited_at"].is_string(), "{stored:?}");
}
