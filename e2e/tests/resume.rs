//! Resuming with `?since=S`: replay of every message after S in order, then `synced`; a
//! `reset` when S is ahead of the room; live traffic continues without gaps or duplicates.

use relay_e2e::*;
use serde_json::{json, Value};

/// Publishes `n` messages as `who` into `room` (a fresh room) and returns their stamps.
async fn seed(room: &str, who: &User, n: u64) -> Vec<Stamp> {
    let (mut c, _) = Client::join_as(room, who).await;
    let mut out = Vec::new();
    for i in 1..=n {
        let s = c
            .publish_acked(&format!("s{i}"), None, &json!({"i": i}))
            .await;
        assert_eq!(s.seq, i);
        out.push(s);
    }
    c.close().await;
    out
}

/// Joins with `since` and returns the client and the frames after the welcome up to and
/// including the first `synced` or `reset` (presence frames are passed over, left queued).
async fn join_since(room: &str, who: &User, since: u64, last: u64) -> (Client, Vec<Value>) {
    let (mut c, welcome) =
        Client::join_with(room, &who.token(&[room]), Via::Query, Some(since)).await;
    assert_eq!(
        assert_welcome(&welcome, room, who),
        last,
        "welcome.seq with since={since}"
    );
    let mut frames = Vec::new();
    loop {
        let v = c.recv_ignoring(&["presence"]).await;
        let t = ty(&v).to_string();
        frames.push(v);
        if t == "synced" || t == "reset" {
            return (c, frames);
        }
        assert_eq!(
            t, "message",
            "only messages before synced/reset: {:?}",
            frames
        );
    }
}

#[tokio::test]
async fn since_replays_everything_after_it_then_synced_then_live() {
    let room = unique_room("e2e:resume");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let stamps = seed(&room, &alice, 10).await;

    let (mut b, frames) = join_since(&room, &bob, 4, 10).await;
    let (last, replayed) = frames.split_last().unwrap();
    assert_eq!(last, &json!({"type": "synced", "seq": 10}));
    let seqs: Vec<u64> = replayed.iter().map(|m| u64_field(m, "seq")).collect();
    assert_eq!(seqs, (5..=10).collect::<Vec<_>>(), "replay after since=4");
    for m in replayed {
        let seq = u64_field(m, "seq");
        let got = assert_message(
            m,
            &room,
            "message",
            &json!({"i": seq}),
            &alice,
            Some(&format!("s{seq}")),
        );
        let want = &stamps[seq as usize - 1];
        assert_eq!(got.id, want.id);
        assert_eq!(got.instant(), want.instant());
    }

    // Live traffic continues right after: seq 11, once.
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let s = a.publish_acked("live", None, &json!("live")).await;
    assert_eq!(s.seq, 11);
    let m = b.recv_until("message").await;
    assert_eq!(
        assert_message(&m, &room, "message", &json!("live"), &alice, Some("live")),
        s
    );
    b.expect_no_message(SILENCE).await;
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn since_zero_replays_the_whole_room() {
    let room = unique_room("e2e:resume");
    let alice = User::new("alice", "Alice", "customer");
    seed(&room, &alice, 5).await;
    let (c, frames) = join_since(&room, &alice, 0, 5).await;
    let seqs: Vec<u64> = frames[..frames.len() - 1]
        .iter()
        .map(|m| u64_field(m, "seq"))
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert_eq!(frames.last().unwrap(), &json!({"type": "synced", "seq": 5}));
    c.close().await;
}

#[tokio::test]
async fn since_equal_to_last_is_synced_without_replay() {
    let room = unique_room("e2e:resume");
    let alice = User::new("alice", "Alice", "customer");
    seed(&room, &alice, 3).await;
    let (mut c, frames) = join_since(&room, &alice, 3, 3).await;
    assert_eq!(frames, vec![json!({"type": "synced", "seq": 3})]);
    c.expect_no_message(SILENCE).await;
    c.close().await;
}

#[tokio::test]
async fn since_on_a_new_room_is_synced_at_zero() {
    let room = unique_room("e2e:resume");
    let alice = User::new("alice", "Alice", "customer");
    let (c, frames) = join_since(&room, &alice, 0, 0).await;
    assert_eq!(frames, vec![json!({"type": "synced", "seq": 0})]);
    c.close().await;
}

#[tokio::test]
async fn since_beyond_the_last_seq_is_reset_without_replay() {
    let room = unique_room("e2e:resume");
    let alice = User::new("alice", "Alice", "customer");
    seed(&room, &alice, 3).await;
    let (mut c, frames) = join_since(&room, &alice, 50, 3).await;
    assert_eq!(frames, vec![json!({"type": "reset", "seq": 3})]);
    c.expect_no_message(SILENCE).await;
    // The connection is live afterwards.
    let s = c.publish_acked("after-reset", None, &json!(1)).await;
    assert_eq!(s.seq, 4);
    c.close().await;
}
