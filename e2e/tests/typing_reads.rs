//! Ephemeral room signals: `typing` (to everyone else, never stored, silently rate limited,
//! ended with `active:false` when a typing user leaves) and read receipts (`read`, monotonic
//! per user, broadcast to the other connections, listed in `welcome.reads`).

use relay_e2e::http::{self, ReqAuth};
use relay_e2e::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// Publishes `n` messages as `who` (their own connection) and closes it.
async fn seed(room: &str, who: &User, n: u64) {
    let (mut c, _) = Client::join_as(room, who).await;
    for i in 1..=n {
        let s = c
            .publish_acked(&format!("seed-{i}"), None, &json!({"i": i}))
            .await;
        assert_eq!(s.seq, i);
    }
    c.close().await;
}

fn typing(active: bool) -> Value {
    json!({"type": "typing", "active": active})
}

fn read(seq: u64) -> Value {
    json!({"type": "read", "seq": seq})
}

/// `welcome.reads` as (user id, seq) pairs, checking each entry's shape.
fn welcome_reads(welcome: &Value) -> Vec<(String, u64)> {
    welcome
        .get("reads")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("welcome.reads must be an array: {welcome}"))
        .iter()
        .map(|r| {
            assert!(r["user"].is_object(), "reads[].user must be an object: {r}");
            assert_rfc3339_utc(&r["at"], "welcome.reads[].at");
            (str_field(&r["user"], "id").to_string(), u64_field(r, "seq"))
        })
        .collect()
}

// ---- typing ------------------------------------------------------------------------------

#[tokio::test]
async fn typing_goes_to_everyone_else_and_is_not_stored() {
    let room = unique_room("e2e:typing");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let carol = User::anonymous("carol");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let (mut b, _) = Client::join_as(&room, &bob).await;
    let (mut c, _) = Client::join_as(&room, &carol).await;

    a.send_json(&typing(true)).await;
    for (who, cl) in [("bob", &mut b), ("carol", &mut c)] {
        let v = cl
            .take_first(|v| ty(v) == "typing", Instant::now() + DEFAULT_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("{who}: no typing frame; seen {:?}", cl.backlog()));
        assert_typing(&v, &alice, true);
        assert_eq!(
            v.as_object().unwrap().len(),
            3,
            "typing frame is {{type,user,active}}: {v}"
        );
    }
    // Never echoed to the sender.
    let echoed = a.frames_before_pong().await;
    assert!(
        echoed.iter().all(|v| ty(v) != "typing"),
        "the typing user must not get its own typing frame: {echoed:?}"
    );

    a.send_json(&typing(false)).await;
    for cl in [&mut b, &mut c] {
        let v = cl
            .take_first(|v| ty(v) == "typing", Instant::now() + DEFAULT_TIMEOUT)
            .await
            .expect("typing active:false");
        assert_typing(&v, &alice, false);
    }
    // Carol types: alice and bob hear it, carol does not.
    c.send_json(&typing(true)).await;
    for cl in [&mut a, &mut b] {
        let v = cl
            .take_first(|v| ty(v) == "typing", Instant::now() + DEFAULT_TIMEOUT)
            .await
            .expect("carol's typing");
        assert_typing(&v, &carol, true);
    }
    a.expect_none("a second typing frame", Duration::from_millis(300), |v| {
        ty(v) == "typing"
    })
    .await;
    let echoed = c.frames_before_pong().await;
    assert!(echoed.iter().all(|v| ty(v) != "typing"), "{echoed:?}");

    // Nothing was stored: no message in history, the room's seq is still 0.
    let r = http::history(&room, "", &ReqAuth::Bearer(alice.token(&[room.as_str()]))).await;
    r.assert_status(200);
    assert_eq!(r.json()["messages"], json!([]), "typing is never persisted");
    let (d, seq) = Client::join_as(&room, &User::new("dave", "Dave", "x")).await;
    assert_eq!(seq, 0, "typing does not advance the room's seq");
    for cl in [a, b, c, d] {
        cl.close().await;
    }
}

#[tokio::test]
async fn typing_beyond_the_burst_is_dropped_silently() {
    let room = unique_room("e2e:typing");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let (mut b, _) = Client::join_as(&room, &bob).await;

    // 20 typing frames at once, alternating (so that no deduplication can explain drops).
    let started = Instant::now();
    for i in 0..20 {
        a.send_json(&typing(i % 2 == 0)).await;
    }
    let replies = a.frames_before_pong().await;
    let burst_time = started.elapsed();
    assert!(
        replies.is_empty(),
        "excess typing must be dropped silently, without any frame to the sender: {replies:?}"
    );
    let got: Vec<Value> = b
        .drain_for(Duration::from_millis(1000))
        .await
        .into_iter()
        .filter(|v| ty(v) == "typing")
        .collect();
    // Burst 5, refilled at 2 per second while the frames were being sent.
    let allowed = 5 + (burst_time.as_secs_f64() * 2.0).ceil() as usize;
    assert!(
        !got.is_empty() && got.len() <= allowed,
        "bob should get between 1 and {allowed} of the 20 typing frames (burst 5, 2/s; sending \
         took {burst_time:?}), got {}: {got:?}",
        got.len()
    );
    for v in &got {
        assert_user(&v["user"], &alice, "typing.user");
        assert!(
            v["active"].is_boolean(),
            "typing.active must be a bool: {v}"
        );
    }

    // The connection is fine, and after a pause typing flows again.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    a.send_json(&typing(true)).await;
    let v = b
        .take_first(|v| ty(v) == "typing", Instant::now() + DEFAULT_TIMEOUT)
        .await
        .unwrap_or_else(|| panic!("typing after the bucket refilled; seen {:?}", b.backlog()));
    assert_typing(&v, &alice, true);
    let s = a.publish_acked("after-typing", None, &json!("ok")).await;
    assert_eq!(s.seq, 1, "dropped typing frames did not create messages");
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_typing_user_who_leaves_ends_typing_after_the_grace_before_the_leave() {
    let room = unique_room("e2e:typing");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let (mut b, _) = Client::join_as(&room, &bob).await;
    let (mut a, _) = Client::join_as(&room, &alice).await;
    a.send_json(&typing(true)).await;
    let v = b
        .take_first(|v| ty(v) == "typing", Instant::now() + DEFAULT_TIMEOUT)
        .await
        .expect("alice's typing");
    assert_typing(&v, &alice, true);
    b.clear_backlog();

    let closed_at = Instant::now();
    a.close().await;
    // Nothing about alice during the grace.
    b.expect_none(
        "typing or presence for alice during the 2 s grace",
        Duration::from_millis(1500),
        |v| is_typing_of(v, &alice) || is_any_presence_of(v, &alice),
    )
    .await;
    // Then typing active:false, then the leave: both about alice, in this order.
    let deadline = closed_at + Duration::from_secs(8);
    let mut about_alice = Vec::new();
    while about_alice.len() < 2 {
        match b
            .take_first(
                |v| is_typing_of(v, &alice) || is_any_presence_of(v, &alice),
                deadline,
            )
            .await
        {
            Some(v) => {
                if about_alice.is_empty() {
                    assert!(
                        closed_at.elapsed() >= Duration::from_millis(1900),
                        "the end of alice's typing came {:?} after her close, before the 2 s \
                         grace ended: {v}",
                        closed_at.elapsed()
                    );
                }
                about_alice.push(v);
            }
            None => panic!(
                "expected typing active:false then leave for alice within 8 s; got \
                 {about_alice:?}, other frames: {:?}",
                b.backlog()
            ),
        }
    }
    assert_typing(&about_alice[0], &alice, false);
    assert!(
        is_presence_of(&about_alice[1], "leave", &alice),
        "after typing:false comes the leave: {:?}",
        about_alice
    );
    b.close().await;
}

#[tokio::test]
async fn a_typing_user_who_reconnects_within_the_grace_causes_nothing() {
    // Not a requirement of its own beyond "invisible reconnect", but a reload while typing
    // must not announce anything either.
    let room = unique_room("e2e:typing");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let (mut b, _) = Client::join_as(&room, &bob).await;
    let (mut a, _) = Client::join_as(&room, &alice).await;
    a.send_json(&typing(true)).await;
    b.take_first(|v| ty(v) == "typing", Instant::now() + DEFAULT_TIMEOUT)
        .await
        .expect("alice's typing");
    b.clear_backlog();
    a.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (a, _) = Client::join_as(&room, &alice).await;
    b.expect_none(
        "presence frame for alice after an invisible reconnect",
        Duration::from_secs(4),
        |v| is_any_presence_of(v, &alice),
    )
    .await;
    a.close().await;
    b.close().await;
}

// ---- read receipts ----------------------------------------------------------------------

#[tokio::test]
async fn read_receipts_are_monotonic_and_go_to_the_other_connections() {
    let room = unique_room("e2e:reads");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    seed(&room, &alice, 5).await;
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let (mut b, _) = Client::join_as(&room, &bob).await;
    let (mut b2, _) = Client::join_as(&room, &bob).await; // bob's second tab

    // A forward move: broadcast to the other connections (bob's other tab included), not
    // to the sending connection.
    let before = chrono::Utc::now() - chrono::Duration::seconds(2);
    b.send_json(&read(3)).await;
    for (who, cl) in [("alice", &mut a), ("bob's other tab", &mut b2)] {
        let v = cl
            .take_first(|v| ty(v) == "read", Instant::now() + DEFAULT_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("{who}: no read frame; seen {:?}", cl.backlog()));
        let at = assert_read(&v, &bob, 3);
        assert!(
            at >= before && at <= chrono::Utc::now() + chrono::Duration::seconds(2),
            "{who}: read.at {at} should be about now: {v}"
        );
    }
    let echo = b.frames_before_pong().await;
    assert!(
        echo.iter().all(|v| ty(v) != "read"),
        "the sender must not get its own read frame: {echo:?}"
    );

    // Equal and lower values change nothing and broadcast nothing, without an error.
    for seq in [3, 2, 1, 0] {
        b.send_json(&read(seq)).await;
        let replies = b.frames_before_pong().await;
        assert!(
            replies.is_empty(),
            "read {seq} after 3 must be ignored silently: {replies:?}"
        );
    }
    // The same from bob's other tab: the mark is per user, not per connection.
    b2.send_json(&read(2)).await;
    let replies = b2.frames_before_pong().await;
    assert!(replies.is_empty(), "{replies:?}");
    a.expect_none("read frame for a non-forward move", SILENCE, |v| {
        ty(v) == "read"
    })
    .await;

    // Beyond the room's last seq: bad_request to the sender, nothing to others.
    b.send_json(&read(6)).await;
    let replies = b.frames_before_pong().await;
    assert_eq!(replies.len(), 1, "one error frame for read 6: {replies:?}");
    assert_error_frame(&replies[0], "bad_request");
    for (what, frame) in [
        ("read without seq", json!({"type": "read"})),
        (
            "read with a string seq",
            json!({"type": "read", "seq": "4"}),
        ),
        (
            "read with a negative seq",
            json!({"type": "read", "seq": -1}),
        ),
    ] {
        b.send_json(&frame).await;
        let replies = b.frames_before_pong().await;
        assert_eq!(replies.len(), 1, "{what}: one error frame: {replies:?}");
        assert_error_frame(&replies[0], "bad_request");
    }
    a.expect_none("read frame for a refused read", SILENCE, |v| {
        ty(v) == "read"
    })
    .await;
    b2.expect_none(
        "read frame for a refused read",
        Duration::from_millis(200),
        |v| ty(v) == "read",
    )
    .await;

    // Up to the last seq is fine, from the other tab; the first tab now hears it.
    b2.send_json(&read(5)).await;
    for cl in [&mut a, &mut b] {
        let v = cl
            .take_first(|v| ty(v) == "read", Instant::now() + DEFAULT_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("no read 5; seen {:?}", cl.backlog()));
        assert_read(&v, &bob, 5);
    }
    let echo = b2.frames_before_pong().await;
    assert!(echo.iter().all(|v| ty(v) != "read"), "{echo:?}");

    // Reads are not messages.
    let (c, welcome) =
        Client::join(&room, &User::new("carol", "C", "x").token(&[room.as_str()])).await;
    assert_eq!(u64_field(&welcome, "seq"), 5, "reads do not advance seq");
    assert_eq!(
        welcome_reads(&welcome),
        vec![(bob.id.clone(), 5)],
        "welcome.reads: {welcome}"
    );
    for cl in [a, b, b2, c] {
        cl.close().await;
    }
}

#[tokio::test]
async fn welcome_lists_reads_most_recently_moved_first() {
    let room = unique_room("e2e:reads");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let carol = User::anonymous("carol");
    seed(&room, &alice, 6).await;

    // A new room's welcome has an empty list.
    let other_room = unique_room("e2e:reads");
    let (o, w) = Client::join(&other_room, &alice.token(&[other_room.as_str()])).await;
    assert_eq!(welcome_reads(&w), vec![], "no reads yet: {w}");
    o.close().await;

    let (mut obs, _) = Client::join_as(&room, &User::new("obs", "Obs", "x")).await;
    // bob reads 2, carol 4, alice 6, then bob moves to 5: bob is the most recent.
    for (who, seq) in [(&bob, 2), (&carol, 4), (&alice, 6), (&bob, 5)] {
        let (mut c, _) = Client::join_as(&room, who).await;
        c.send_json(&read(seq)).await;
        let v = obs
            .take_first(|v| is_read_of(v, who), Instant::now() + DEFAULT_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("no read from {}; seen {:?}", who.id, obs.backlog()));
        assert_read(&v, who, seq);
        c.close().await;
        // Distinct `at` values even at millisecond resolution.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (c, welcome) = Client::join(
        &room,
        &User::new("late", "Late", "x").token(&[room.as_str()]),
    )
    .await;
    assert_eq!(
        welcome_reads(&welcome),
        vec![
            (bob.id.clone(), 5),
            (alice.id.clone(), 6),
            (carol.id.clone(), 4)
        ],
        "welcome.reads, most recently moved first: {welcome}"
    );
    // Each entry carries the user as the token showed it.
    let reads = welcome["reads"].as_array().unwrap();
    assert_user(&reads[0]["user"], &bob, "reads[0].user");
    assert_user(&reads[1]["user"], &alice, "reads[1].user");
    assert_user(&reads[2]["user"], &carol, "reads[2].user");
    let ats: Vec<_> = reads
        .iter()
        .map(|r| assert_rfc3339_utc(&r["at"], "reads[].at"))
        .collect();
    assert!(
        ats.windows(2).all(|w| w[0] >= w[1]),
        "reads[].at must not increase down the list: {welcome}"
    );
    c.close().await;
    obs.close().await;
}

/// Slow-ish (55 short connections).
#[tokio::test]
async fn welcome_lists_at_most_50_reads() {
    const USERS: usize = 55;
    let room = unique_room("e2e:reads");
    let writer = User::new("writer", "Writer", "x");
    seed(&room, &writer, 1).await;
    let (mut obs, _) = Client::join_as(&room, &User::new("obs", "Obs", "x")).await;
    let mut users = Vec::new();
    for i in 0..USERS {
        let u = User::new(&format!("r{i}"), &format!("Reader {i}"), "x");
        let (mut c, _) = Client::join_as(&room, &u).await;
        c.send_json(&read(1)).await;
        obs.take_first(|v| is_read_of(v, &u), Instant::now() + DEFAULT_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("no read from reader {i}"));
        c.close().await;
        users.push(u);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (c, welcome) = Client::join(
        &room,
        &User::new("late", "Late", "x").token(&[room.as_str()]),
    )
    .await;
    let reads = welcome_reads(&welcome);
    let want: Vec<(String, u64)> = users
        .iter()
        .rev()
        .take(50)
        .map(|u| (u.id.clone(), 1))
        .collect();
    assert_eq!(
        reads, want,
        "welcome.reads: the 50 most recent readers, newest first"
    );
    c.close().await;
    obs.close().await;
}
