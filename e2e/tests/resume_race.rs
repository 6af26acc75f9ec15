//! Resuming while others publish, and resuming across the hot window: `?since=S` replays every
//! message after S in order (from the room, and from D1 for bodies the room dropped), then
//! `synced`, then live traffic, with no gap and no duplicate.
//!
//! The relay under test runs with `ROOM_HOT_WINDOW=100` and `ARCHIVE_DELAY_MS=50`, so a room
//! with 250 messages keeps only the newest 100 bodies once archived.

use relay_e2e::http::{self, ReqAuth};
use relay_e2e::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Reads the frames after a welcome up to and including `synced`: the replayed messages and
/// the synced seq. Presence/typing/read frames are passed over and stay queued; a `reset`
/// or anything else fails.
async fn read_replay(c: &mut Client, since: u64, within: Duration) -> (Vec<Value>, u64) {
    let deadline = Instant::now() + within;
    let mut replayed = Vec::new();
    loop {
        let v = c
            .take_first(
                |v| matches!(ty(v), "message" | "synced" | "reset"),
                deadline,
            )
            .await
            .unwrap_or_else(|| {
                panic!(
                    "since={since}: no synced within {within:?}; {} messages replayed, last {:?}",
                    replayed.len(),
                    replayed.last()
                )
            });
        match ty(&v) {
            "message" => replayed.push(v),
            "synced" => {
                assert_eq!(
                    v.as_object().unwrap().len(),
                    2,
                    "synced is {{type,seq}}: {v}"
                );
                return (replayed, u64_field(&v, "seq"));
            }
            _ => panic!(
                "since={since}: expected a replay and synced, got {v} after {} messages",
                replayed.len()
            ),
        }
    }
}

/// Joins `room` as `who` with `?since=since`: the client, the welcome seq, the replayed
/// messages and the synced seq. Checks the replay is exactly `since+1..` in order and
/// `synced.seq` is its last seq (or `since` when nothing was replayed).
async fn resume(room: &str, who: &User, since: u64) -> (Client, u64, Vec<Value>) {
    let (mut c, welcome) =
        Client::join_with(room, &who.token(&[room]), Via::Query, Some(since)).await;
    let last = assert_welcome(&welcome, room, who);
    let (replayed, synced) = read_replay(&mut c, since, Duration::from_secs(30)).await;
    let seqs = seqs_of(&replayed);
    let want: Vec<u64> = (since + 1..since + 1 + seqs.len() as u64).collect();
    assert_eq!(
        seqs, want,
        "since={since}: the replay is every seq after it, in order, without gaps"
    );
    assert!(
        seqs.len() as u64 >= last.saturating_sub(since),
        "since={since}: welcome.seq is {last} but only {} messages were replayed",
        seqs.len()
    );
    assert_eq!(
        synced,
        seqs.last().copied().unwrap_or(since),
        "since={since}: synced.seq is the last replayed seq (or since)"
    );
    (c, last, replayed)
}

/// A receiver that drops its connection several times while others publish concurrently and
/// resumes each time with `since=<last seq it saw>` ends up with every seq exactly once.
#[tokio::test]
async fn reconnecting_mid_stream_with_since_loses_and_repeats_nothing() {
    const PUBLISHERS: usize = 3;
    const PER_PUBLISHER: usize = 50;
    const TOTAL: u64 = (PUBLISHERS * PER_PUBLISHER) as u64;
    let room = unique_room("e2e:resume-race");
    let reader = User::new("reader", "Reader", "viewer");

    // The reader is connected before anything is published.
    let (mut r, _) = Client::join_as(&room, &reader).await;

    let mut tasks = Vec::new();
    for k in 0..PUBLISHERS {
        let room = room.clone();
        tasks.push(tokio::spawn(async move {
            let u = User::new(&format!("pub{k}"), &format!("Publisher {k}"), "writer");
            let (mut c, _) = Client::join_as(&room, &u).await;
            let mut acks = Vec::new();
            for i in 0..PER_PUBLISHER {
                let cid = format!("p{k}-{i}");
                let s = c.publish_acked(&cid, None, &json!({"p": k, "i": i})).await;
                acks.push((s, cid));
                // About 25 per second each: the stream lasts a few seconds.
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            c.close().await;
            acks
        }));
    }

    // Read live; every 20 messages drop the connection (sometimes abruptly, sometimes with a
    // close handshake) and resume from the last seq seen.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen: Vec<Value> = Vec::new();
    let mut reconnects = 0;
    let mut since_last_reconnect = 0;
    let mut resumes: Vec<(u64, usize)> = Vec::new(); // (since, replayed count)
    while (seen.len() as u64) < TOTAL {
        let m = r
            .take_first(|v| ty(v) == "message", deadline)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "the reader saw {} of {TOTAL} messages within 90 s (last {:?})",
                    seen.len(),
                    seen.last().map(|m| &m["seq"])
                )
            });
        seen.push(m);
        since_last_reconnect += 1;
        if since_last_reconnect == 20 && (seen.len() as u64) < TOTAL - 10 {
            since_last_reconnect = 0;
            reconnects += 1;
            if reconnects % 2 == 0 {
                r.abort();
            } else {
                r.close().await;
            }
            let since = u64_field(seen.last().unwrap(), "seq");
            let (c, _, replayed) = resume(&room, &reader, since).await;
            resumes.push((since, replayed.len()));
            seen.extend(replayed);
            r = c;
        }
    }
    let mut acks: BTreeMap<u64, (Stamp, String)> = BTreeMap::new();
    for t in tasks {
        for (s, cid) in t.await.expect("publisher task") {
            assert!(acks.insert(s.seq, (s, cid)).is_none(), "seq acked twice");
        }
    }
    assert_eq!(
        acks.keys().copied().collect::<Vec<_>>(),
        (1..=TOTAL).collect::<Vec<_>>()
    );
    assert!(
        reconnects >= 3,
        "the test should have reconnected a few times"
    );
    assert_eq!(
        seqs_of(&seen),
        (1..=TOTAL).collect::<Vec<_>>(),
        "after {reconnects} resumes {resumes:?} the reader has every seq once, in order"
    );
    for m in &seen {
        let seq = u64_field(m, "seq");
        let (stamp, cid) = &acks[&seq];
        assert_eq!(m["cid"], cid.as_str(), "message {seq}: {m}");
        assert_eq!(&m["id"], stamp.id.as_str(), "message {seq}: {m}");
    }
    // Nothing more arrives.
    r.expect_no_message(Duration::from_millis(500)).await;
    r.close().await;
}

/// Many resumers connect with `since` while messages are published: each ends up with every
/// message after its `since` exactly once.
#[tokio::test]
async fn resuming_while_others_publish_has_no_gap_and_no_duplicate() {
    const TOTAL: u64 = 120;
    let room = unique_room("e2e:resume-race");
    let writer = User::new("writer", "Writer", "writer");
    let reader = User::new("reader", "Reader", "viewer");
    let room2 = room.clone();
    let acked = Arc::new(AtomicU64::new(0));
    let acked2 = acked.clone();
    let publisher = tokio::spawn(async move {
        let (mut c, _) = Client::join_as(&room2, &writer).await;
        for i in 1..=TOTAL {
            let s = c.publish_acked(&format!("w{i}"), None, &json!(i)).await;
            assert_eq!(s.seq, i);
            acked2.store(i, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        c.close().await;
    });
    // Resume at various points while the publisher runs.
    let mut checks = Vec::new();
    for round in 0..6u64 {
        tokio::time::sleep(Duration::from_millis(350)).await;
        let room = room.clone();
        let reader = reader.clone();
        // A since somewhere behind the current head (0 in the first round).
        let since = acked.load(Ordering::SeqCst) * round / 6;
        checks.push(tokio::spawn(async move {
            let (mut c, _, replayed) = resume(&room, &reader, since).await;
            let mut all = replayed;
            let missing = (TOTAL - since) as usize - all.len();
            all.extend(c.recv_messages(missing, Duration::from_secs(60)).await);
            assert_eq!(
                seqs_of(&all),
                (since + 1..=TOTAL).collect::<Vec<_>>(),
                "resumer since={since}: replay + live is every seq once, in order"
            );
            for m in &all {
                assert_eq!(m["data"], m["seq"], "payload matches seq: {m}");
            }
            c.expect_no_message(Duration::from_millis(300)).await;
            c.close().await;
        }));
    }
    publisher.await.expect("publisher");
    for t in checks {
        t.await.expect("resumer");
    }
}

/// Publishes `n` messages over HTTP from several users in parallel (each user has its own
/// rate bucket). Returns seq -> (user index, cid, body data, stamp).
async fn fill_over_http(
    room: &str,
    users: &[User],
    n: usize,
) -> BTreeMap<u64, (usize, String, Value, Stamp)> {
    let per_user = n.div_ceil(users.len());
    let mut tasks = Vec::new();
    for (k, u) in users.iter().enumerate() {
        let room = room.to_string();
        let auth = ReqAuth::Bearer(u.token(&[room.as_str()]));
        let count = per_user.min(n - (k * per_user).min(n));
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..count {
                let cid = format!("u{k}-{i}");
                let data = json!({"u": k, "i": i, "pad": "x".repeat(64)});
                let s = http::publish_ok(&room, &auth, &json!({"cid": cid, "data": data})).await;
                out.push((k, cid, data, s));
            }
            out
        }));
    }
    let mut by_seq = BTreeMap::new();
    for t in tasks {
        for (k, cid, data, s) in t.await.expect("HTTP publisher") {
            let seq = s.seq;
            assert!(
                by_seq.insert(seq, (k, cid, data, s)).is_none(),
                "seq {seq} answered twice"
            );
        }
    }
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        (1..=n as u64).collect::<Vec<_>>(),
        "HTTP publishes got seqs 1..={n}"
    );
    by_seq
}

/// 250 messages, more than the hot window of 100: after the archive ran, resume from 0 and
/// from 20 and history after=0 still see every message, the old ones read back from D1.
#[tokio::test]
async fn resume_and_history_reach_past_the_hot_window() {
    const N: usize = 250;
    let room = unique_room("e2e:resume-cold");
    let users: Vec<User> = (0..10)
        .map(|k| User::new(&format!("w{k}"), &format!("Writer {k}"), "writer"))
        .collect();
    let by_seq = fill_over_http(&room, &users, N).await;
    // Give the archive (ARCHIVE_DELAY_MS=50, batches of 100) time to write and trim.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let reader = User::new("reader", "Reader", "viewer");
    let check = |m: &Value| {
        let seq = u64_field(m, "seq");
        let (k, cid, data, stamp) = &by_seq[&seq];
        let got = assert_message(m, &room, "message", data, &users[*k], Some(cid));
        assert_eq!(&got, stamp, "message {seq} matches its HTTP receipt");
    };
    let mut replay0 = Vec::new();
    for since in [0u64, 20, 99, 150, 249] {
        let (c, last, replayed) = resume(&room, &reader, since).await;
        assert_eq!(last, N as u64, "welcome.seq");
        assert_eq!(
            replayed.len() as u64,
            N as u64 - since,
            "since={since}: the whole rest of the room is replayed"
        );
        replayed.iter().for_each(check);
        if since == 0 {
            replay0 = replayed;
        }
        c.close().await;
    }

    // History over HTTP: 1..=200 for after=0&limit=200, then the rest.
    let auth = ReqAuth::Bearer(reader.token(&[room.as_str()]));
    let r = http::history(&room, "after=0&limit=200", &auth).await;
    r.assert_status(200);
    let msgs = r.json()["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("messages array: {}", r.body))
        .clone();
    assert_eq!(
        seqs_of(&msgs),
        (1..=200).collect::<Vec<_>>(),
        "history after=0&limit=200"
    );
    assert_eq!(r.json()["has_more"], json!(true));
    // The stored JSON is exactly what was replayed (and broadcast).
    for (h, m) in msgs.iter().zip(&replay0) {
        assert_eq!(h, m, "history and replay agree at seq {}", h["seq"]);
    }
    let r = http::history(&room, "after=200&limit=200", &auth).await;
    r.assert_status(200);
    let rest = r.json()["messages"].as_array().unwrap().clone();
    assert_eq!(seqs_of(&rest), (201..=250).collect::<Vec<_>>());
    assert_eq!(r.json()["has_more"], json!(false));
    for (h, m) in rest.iter().zip(&replay0[200..]) {
        assert_eq!(h, m);
    }
    // The newest page, and a page straddling the hot window's edge.
    let r = http::history(&room, "before=160&limit=100", &auth).await;
    r.assert_status(200);
    let page = r.json()["messages"].as_array().unwrap().clone();
    assert_eq!(seqs_of(&page), (60..=159).collect::<Vec<_>>());
    assert_eq!(r.json()["has_more"], json!(true));
    for (h, m) in page.iter().zip(&replay0[59..159]) {
        assert_eq!(h, m);
    }
}

/// A resume from inside the archived part while new messages keep coming: replay from D1 and
/// the room, then live, without gap or duplicate.
#[tokio::test]
async fn resume_from_the_archive_while_others_publish() {
    const N: usize = 200;
    const LIVE: u64 = 40;
    let room = unique_room("e2e:resume-cold");
    let users: Vec<User> = (0..8)
        .map(|k| User::new(&format!("w{k}"), &format!("Writer {k}"), "writer"))
        .collect();
    fill_over_http(&room, &users, N).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let writer = User::new("live", "Live", "writer");
    let room2 = room.clone();
    let publisher = tokio::spawn(async move {
        let (mut c, _) = Client::join_as(&room2, &writer).await;
        for i in 0..LIVE {
            c.publish_acked(&format!("live-{i}"), None, &json!(i)).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c.close().await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reader = User::new("reader", "Reader", "viewer");
    let (mut c, _, replayed) = resume(&room, &reader, 10).await;
    let mut all = replayed;
    let missing = (N as u64 + LIVE - 10) as usize - all.len();
    all.extend(c.recv_messages(missing, Duration::from_secs(60)).await);
    publisher.await.expect("live publisher");
    assert_eq!(
        seqs_of(&all),
        (11..=N as u64 + LIVE).collect::<Vec<_>>(),
        "replay from the archive plus live traffic: every seq once, in order"
    );
    c.expect_no_message(Duration::from_millis(300)).await;
    c.close().await;
}
