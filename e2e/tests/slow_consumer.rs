//! Slow consumers: a socket that stops reading is closed with 4010 `slow consumer` once its
//! unsent output passes the bound (`MAX_SOCKET_BUFFER_BYTES`, 2 MiB in the relay under test)
//! while the others keep receiving.

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
