//! Slow consumers: a socket that stops reading is closed with 4010 `slow consumer` once its
//! unsent output passes the bound (`MAX_SOCKET_BUFFER_BYTES`, 2 MiB in the relay under test)
//! while the others keep receiving; a resume of 10 000 messages (about 10 MB, well past the
//! bound) is sent in pages paced by the reader, in order, and then live traffic follows.

use relay_e2e::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The relay's default bound of a socket's unsent output.
const BOUND: u64 = 2 << 20;

/// A pooled HTTP client for bulk publishing (the suite's helper opens a connection per request).
fn bulk_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("building the HTTP client")
}

/// Publishes `count` messages into `room` through `POST /v1/broadcast` with the webhook bearer,
/// `concurrency` at a time, each with `pad` bytes of padding; returns when all were answered 200.
async fn publish_many(room: &str, count: u64, pad: usize, concurrency: usize) {
    let client = bulk_client();
    let next = Arc::new(AtomicU64::new(0));
    let padding = "x".repeat(pad);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, room, padding) = (
            client.clone(),
            next.clone(),
            room.to_string(),
            padding.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count {
                    return;
                }
                let body =
                    json!({"rooms": [room], "event": "fill", "data": {"i": i, "pad": padding}});
                let res = client
                    .post(format!("{}/v1/broadcast", relay_url()))
                    .bearer_auth(webhook_secret())
                    .json(&body)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("broadcast {i} failed: {e}"));
                let status = res.status().as_u16();
                assert_eq!(status, 200, "broadcast {i}: {:?}", res.text().await);
            }
        }));
    }
    for t in tasks {
        t.await.expect("publisher task");
    }
}

/// The `message` frames of one WebSocket message (a plain frame or a batch), in order.
fn messages_in(v: Value) -> Vec<Value> {
    frames_of(v)
        .into_iter()
        .filter(|f| ty(f) == "message")
        .collect()
}

/// A socket that stops reading while about 3 times the bound plus what the network path
/// absorbs is published is closed with 4010; a reading socket in the same room gets every
/// message in order, and keeps getting them afterwards.
#[tokio::test]
async fn a_socket_that_stops_reading_is_closed_with_4010_while_others_keep_receiving() {
    const PAD: usize = 16 * 1024;
    // The bound counts only what the relay holds: the kernel's buffers and wrangler dev's
    // proxy take several MiB more (about 8 MiB measured here), so the publishing goes well past.
    const PUBLISHED: u64 = 3 * BOUND + (16 << 20);
    const COUNT: u64 = PUBLISHED / PAD as u64;
    let room = unique_room("e2e:slow");
    let slow_user = User::new("slow", "Slow", "viewer");
    let reader_user = User::new("reader", "Reader", "viewer");
    let (mut slow, _) = Client::join_as(&room, &slow_user).await;
    let token = reader_user.token(&[room.as_str()]);
    let mut reader =
        Client::connect_with_query(&room, Some(&token), Via::Query, None, &[("batch", "1")])
            .await
            .expect("reader connects");
    assert_eq!(ty(&reader.recv_json().await), "welcome");

    // The reader reads all along, on its own task; the slow socket is simply not polled.
    let reading = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut seqs = Vec::new();
        while (seqs.len() as u64) < COUNT {
            match reader.next_incoming(deadline).await {
                Some(Incoming::Json(v)) => {
                    seqs.extend(messages_in(v).iter().map(|m| u64_field(m, "seq")))
                }
                Some(Incoming::Closed { code, reason }) => panic!(
                    "the reading socket was closed ({code:?} {reason}) after {} messages",
                    seqs.len()
                ),
                None => panic!("the reader got {} of {COUNT} messages in 90 s", seqs.len()),
            }
        }
        (reader, seqs)
    });
    let started = Instant::now();
    publish_many(&room, COUNT, PAD, 8).await;
    let publish_time = started.elapsed();
    let (mut reader, seqs) = reading.await.expect("reader task");
    assert_eq!(
        seqs,
        (1..=COUNT).collect::<Vec<_>>(),
        "the reading socket gets every message once, in order"
    );

    // Now the slow socket reads: what was already on its way, then the close.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    let (code, reason) = loop {
        match slow.next_incoming(deadline).await {
            Some(Incoming::Json(v)) => got.extend(
                frames_of(v)
                    .iter()
                    .filter(|f| ty(f) == "message")
                    .map(|m| u64_field(m, "seq")),
            ),
            Some(Incoming::Closed { code, reason }) => break (code, reason),
            None => panic!(
                "the slow socket was never closed: after {} MiB published in {publish_time:?} it \
                 got {} of {COUNT} messages, then nothing for 30 s",
                PUBLISHED >> 20,
                got.len()
            ),
        }
    };
    assert_eq!(
        (code, reason.as_str()),
        (Some(4010), "slow consumer"),
        "the slow socket must be closed as a slow consumer (after {} of {COUNT} messages)",
        got.len()
    );
    assert_eq!(
        got,
        (1..=got.len() as u64).collect::<Vec<_>>(),
        "what the slow socket got before the close is a gapless prefix"
    );
    assert!(
        (got.len() as u64) < COUNT,
        "the slow socket was closed before the end of the stream"
    );
    eprintln!(
        "slow socket closed with 4010 after {} of {COUNT} messages; {} MiB published in \
         {publish_time:?}",
        got.len(),
        PUBLISHED >> 20
    );

    // The relay keeps working for the reader.
    let after = backend::broadcast_ok(&[room.as_str()], "after", &json!("after"), None).await;
    assert_eq!(after, vec![COUNT + 1]);
    let deadline = Instant::now() + DEFAULT_TIMEOUT;
    let next = reader
        .take_first(|v| !messages_in(v.clone()).is_empty(), deadline)
        .await
        .expect("the reader gets the next message");
    assert_eq!(seqs_of(&messages_in(next)), vec![COUNT + 1]);
    reader.close().await;
}

/// A resume of 10 000 messages of about 1 KiB (10 MB, five times the bound; most of them read
/// back from D1, as the relay under test keeps 100 in the room) by a client that reads at a
/// moderate pace: welcome, exactly seqs 1..=10 000 in order, `synced`, then a message
/// published during the replay; the socket is not closed.
#[tokio::test]
async fn a_resume_of_10000_messages_is_paced_and_complete() {
    const COUNT: u64 = 10_000;
    let room = unique_room("e2e:slow-resume");
    publish_many(&room, COUNT, 1000, 16).await;

    let reader = User::new("reader", "Reader", "viewer");
    let started = Instant::now();
    let (mut c, welcome) =
        Client::join_with(&room, &reader.token(&[room.as_str()]), Via::Query, Some(0)).await;
    assert_eq!(assert_welcome(&welcome, &room, &reader), COUNT);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut expected = 1;
    let mut live_published = false;
    let synced = loop {
        let v = match c.next_incoming(deadline).await {
            Some(Incoming::Json(v)) => v,
            Some(Incoming::Closed { code, reason }) => panic!(
                "the resuming socket was closed ({code:?} {reason}) after {} of {COUNT} \
                 replayed messages",
                expected - 1
            ),
            None => panic!("the replay stalled after {} messages", expected - 1),
        };
        match ty(&v) {
            "message" => {
                assert_eq!(
                    u64_field(&v, "seq"),
                    expected,
                    "the replay is in order: {v}"
                );
                expected += 1;
            }
            "synced" => break v,
            "presence" => continue,
            _ => panic!("only messages before synced, got {v}"),
        }
        if expected % 100 == 0 {
            // A moderate reader: at most about 5 MB/s.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if expected == 2_000 && !live_published {
            live_published = true;
            let seqs = backend::broadcast_ok(&[room.as_str()], "live", &json!("live"), None).await;
            assert_eq!(seqs, vec![COUNT + 1]);
        }
    };
    let replay_time = started.elapsed();
    assert_eq!(expected - 1, COUNT, "every message once, then synced");
    assert_eq!(synced, json!({"type": "synced", "seq": COUNT}));
    let live = c
        .recv_until_within("message", Duration::from_secs(10))
        .await;
    assert_eq!(
        u64_field(&live, "seq"),
        COUNT + 1,
        "live traffic after synced: {live}"
    );
    assert_eq!(live["data"], json!("live"));
    c.expect_no_message(Duration::from_millis(300)).await;
    c.close().await;
    eprintln!("resume of {COUNT} messages read in {replay_time:?}");
}
