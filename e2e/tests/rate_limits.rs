//! Rate limits: a token bucket per user and room (20/s, burst 40), shared by the user's sockets
//! and HTTP publishes, refuses excess WebSocket publishes with `rate_limited` (echoing the cid)
//! without storing them, closes a connection with 4008 after more than 50 refusals without a
//! one-second pause (an accepted publish in between does not clear them), over HTTP answers 429
//! with `Retry-After`, and survives reconnecting; connection attempts of one user to one room
//! are bounded too (burst 30, 5/s, then 429).

use relay_e2e::http::{self, ReqAuth};
use relay_e2e::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;

const BURST: usize = 40;
const PER_SECOND: f64 = 20.0;
const STRIKES: usize = 50;

fn publish_frame(cid: &str, i: usize) -> String {
    json!({"type": "publish", "cid": cid, "data": {"i": i}}).to_string()
}

/// Sorts the frames a publisher got into acks (cid -> seq) and rate_limited errors (cids),
/// failing on anything else except presence frames.
fn sort_replies(frames: &[Value]) -> (BTreeMap<String, u64>, Vec<String>) {
    let mut acks = BTreeMap::new();
    let mut refused = Vec::new();
    for v in frames {
        match ty(v) {
            "ack" => {
                let cid = str_field(v, "cid").to_string();
                let s = assert_ack(v, &cid, false);
                assert!(
                    acks.insert(cid, s.seq).is_none(),
                    "two acks for one cid: {v}"
                );
            }
            "error" => {
                assert_error_frame(v, "rate_limited");
                let cid = v
                    .get("cid")
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("a rate_limited error echoes the cid: {v}"));
                refused.push(cid.to_string());
            }
            "presence" => {}
            _ => panic!("unexpected frame for a publisher: {v}"),
        }
    }
    (acks, refused)
}

#[tokio::test]
async fn a_flooding_connection_is_limited_then_closed_with_4008() {
    const SENT: usize = 200;
    let room = unique_room("e2e:rate");
    let flooder = User::new("flood", "Flooder", "x");
    let watcher = User::new("watch", "Watcher", "x");
    let (mut w, _) = Client::join_as(&room, &watcher).await;
    let (mut f, _) = Client::join_as(&room, &flooder).await;

    let started = Instant::now();
    let mut written = 0;
    for i in 0..SENT {
        // The server may close mid-burst: stop at the first failed write.
        if f.try_send_text(publish_frame(&format!("f{i}"), i))
            .await
            .is_err()
        {
            break;
        }
        written += 1;
    }
    let (frames, code, reason) = f.drain_until_close(Duration::from_secs(20)).await;
    // Refills can only have happened until the server closed the connection.
    let burst_time = started.elapsed();
    assert_eq!(
        code,
        Some(4008),
        "the flooder is closed with 4008 (reason {reason:?}); {written} frames written, \
         frames received: {frames:?}"
    );
    let (acks, refused) = sort_replies(&frames);
    let k = acks.len();
    assert!(!refused.is_empty(), "at least one rate_limited error");
    assert!(
        refused.len() >= STRIKES,
        "more than {STRIKES} refusals before the close: only {} errors",
        refused.len()
    );
    for cid in &refused {
        assert!(!acks.contains_key(cid), "cid {cid} both acked and refused");
    }
    // The burst passes; beyond it only what the bucket refilled while the frames arrived.
    let refill = (burst_time.as_secs_f64() * PER_SECOND).ceil() as usize;
    assert!(
        k >= BURST && k <= BURST + refill + 2,
        "acked publishes: {k}, expected the burst of {BURST} plus at most ~{refill} refilled \
         (from the first frame to the close: {burst_time:?})"
    );
    let acked_seqs: BTreeSet<u64> = acks.values().copied().collect();
    assert_eq!(
        acked_seqs,
        (1..=k as u64).collect::<BTreeSet<_>>(),
        "acked seqs are 1..={k}"
    );

    // The watcher receives exactly the acked publishes, nothing refused.
    let msgs = w.recv_messages(k, Duration::from_secs(15)).await;
    let extra: Vec<Value> = w
        .drain_for(Duration::from_millis(1500))
        .await
        .into_iter()
        .filter(|v| ty(v) == "message")
        .collect();
    if !extra.is_empty() {
        let extra_cids: Vec<&str> = extra.iter().map(|m| str_field(m, "cid")).collect();
        let refused_too: Vec<&&str> = extra_cids
            .iter()
            .filter(|c| refused.iter().any(|r| r == *c))
            .collect();
        let tail: Vec<String> = frames
            .iter()
            .rev()
            .take(5)
            .rev()
            .map(|v| format!("{}:{}", ty(v), v["cid"]))
            .collect();
        panic!(
            "the watcher got {} message(s) the flooder never got an ack for: {extra:?}. The \
             flooder wrote {written} frames and got {k} acks and {} rate_limited errors, \
             then close {code:?} {reason:?}; its last replies before the close: {tail:?}; \
             of the extra cids, refused with rate_limited: {refused_too:?}",
            extra.len(),
            refused.len()
        );
    }
    assert_eq!(seqs_of(&msgs), (1..=k as u64).collect::<Vec<_>>());
    for m in &msgs {
        let cid = str_field(m, "cid");
        assert_eq!(
            acks.get(cid),
            Some(&u64_field(m, "seq")),
            "message {m} matches an ack"
        );
    }
    // And history holds exactly those.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let auth = ReqAuth::Bearer(watcher.token(&[room.as_str()]));
    let h = http::history(&room, "after=0&limit=200", &auth).await;
    h.assert_status(200);
    let hist = h.json()["messages"].as_array().unwrap().clone();
    assert_eq!(seqs_of(&hist), (1..=k as u64).collect::<Vec<_>>());
    for m in &hist {
        assert!(
            acks.contains_key(str_field(m, "cid")),
            "refused publish was stored: {m}"
        );
    }
    // The room is fine for others.
    w.ping().await;
    let s = w.publish_acked("after-flood", None, &json!(1)).await;
    assert_eq!(s.seq, k as u64 + 1);
    w.close().await;
}

/// A flooder that paces its frames (100 a second, five times the rate) gets a publish accepted
/// every 50 ms from the refill, between a few refusals: it is still closed once it has had
/// more than 50 refusals without a pause, while the same user's other socket stays open.
/// (Before, an accepted publish cleared the count, so only a flood faster than 50 refusals
/// per refill interval was ever closed.)
#[tokio::test]
async fn a_paced_flooder_is_closed_although_the_refill_lets_some_publishes_through() {
    let room = unique_room("e2e:rate");
    let flooder = User::new("paced", "Paced", "x");
    let (mut other_tab, _) = Client::join_as(&room, &flooder).await;
    let (mut f, _) = Client::join_as(&room, &flooder).await;
    let mut written = 0;
    for i in 0..400 {
        if f.try_send_text(publish_frame(&format!("p{i}"), i))
            .await
            .is_err()
        {
            break;
        }
        written += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (frames, code, reason) = f.drain_until_close(Duration::from_secs(20)).await;
    assert_eq!(
        code,
        Some(4008),
        "the paced flooder is closed with 4008 (reason {reason:?}); {written} frames written"
    );
    let (acks, refused) = sort_replies(&frames);
    assert!(
        refused.len() >= STRIKES,
        "more than {STRIKES} refusals before the close: {}",
        refused.len()
    );
    // The refill let publishes through between the refusals: the count was not cleared.
    let first_refusal = frames
        .iter()
        .position(|v| ty(v) == "error")
        .expect("a refusal");
    let acked_after = frames[first_refusal..]
        .iter()
        .filter(|v| ty(v) == "ack")
        .count();
    assert!(
        acked_after >= 2,
        "publishes accepted between the refusals: {acked_after} ({} acks, {} refusals)",
        acks.len(),
        refused.len()
    );
    // The count is the socket's: the user's other socket is still open.
    other_tab.clear_backlog();
    other_tab.ping().await;
    other_tab.close().await;
}

#[tokio::test]
async fn a_limited_user_recovers_and_other_users_are_not_limited() {
    let room = unique_room("e2e:rate");
    let alice = User::new("alice", "Alice", "x");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let (mut a2, _) = Client::join_as(&room, &alice).await; // same user, other connection
    let (mut b, _) = Client::join_as(&room, &User::new("bob", "Bob", "x")).await;
    for i in 0..BURST + 10 {
        a.send_text(publish_frame(&format!("a{i}"), i)).await;
    }
    // Collect the 50 replies.
    let mut replies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while replies.len() < BURST + 10 {
        match a
            .take_first(|v| matches!(ty(v), "ack" | "error"), deadline)
            .await
        {
            Some(v) => replies.push(v),
            None => panic!("only {} of 50 replies: {replies:?}", replies.len()),
        }
    }
    let (acks, refused) = sort_replies(&replies);
    assert!(!refused.is_empty(), "50 publishes at once exceed the burst");
    assert!(
        acks.len() >= BURST,
        "the burst of {BURST} passes: {}",
        acks.len()
    );

    // The bucket is the user's: their other connection is limited too (it was not before,
    // so a second tab or a reconnect doubled the rate) ...
    a2.clear_backlog();
    let (a2_acked, a2_refused) = publish_burst(&mut a2, "other-conn", 10).await;
    assert!(
        a2_refused >= 5,
        "the user's other connection shares the empty bucket: {a2_acked} of 10 acked"
    );
    // ... while another user publishes freely.
    b.clear_backlog();
    b.publish("other-user", None, &json!("free")).await;
    let v = b
        .take_first(
            |v| matches!(ty(v), "ack" | "error") && v["cid"] == "other-user",
            Instant::now() + DEFAULT_TIMEOUT,
        )
        .await
        .expect("a reply to the other user");
    assert_ack(&v, "other-user", false);

    // After a pause the limited connection publishes again and was not closed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.ping().await;
    let s = a.publish_acked("recovered", None, &json!("ok")).await;
    let stored = acks.len() + a2_acked + 2;
    assert_eq!(s.seq, stored as u64);
    // The refused ones were not stored: resume from 0 sees acked + 2.
    let (mut r, _) =
        Client::join_with(&room, &alice.token(&[room.as_str()]), Via::Query, Some(0)).await;
    let mut replayed = Vec::new();
    loop {
        let v = r.recv_ignoring(&["presence"]).await;
        if ty(&v) == "synced" {
            break;
        }
        replayed.push(v);
    }
    assert_eq!(seqs_of(&replayed), (1..=stored as u64).collect::<Vec<_>>());
    for m in &replayed {
        let cid = str_field(m, "cid");
        assert!(
            !refused.iter().any(|c| c == cid),
            "refused {cid} was stored"
        );
    }
    for c in [a, a2, r] {
        c.close().await;
    }
}

#[tokio::test]
async fn http_publishes_beyond_the_burst_get_429_with_retry_after() {
    const POSTS: usize = 70;
    let room = unique_room("e2e:rate-http");
    let alice = User::new("alice", "Alice", "x");
    let bob = User::new("bob", "Bob", "x");
    let (mut w, _) = Client::join_as(&room, &User::new("watch", "W", "x")).await;
    let auth = ReqAuth::Bearer(alice.token(&[room.as_str()]));

    // All at once.
    let mut tasks = Vec::new();
    for i in 0..POSTS {
        let room = room.clone();
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            let r = http::publish(&room, &auth, &json!({"cid": format!("h{i}"), "data": i})).await;
            (i, r)
        }));
    }
    let mut accepted: BTreeMap<u64, String> = BTreeMap::new();
    let mut limited = 0;
    let mut max_retry = 0u64;
    for t in tasks {
        let (i, r) = t.await.expect("POST task");
        match r.status {
            200 => {
                let s = assert_receipt(r.json(), false);
                assert!(accepted.insert(s.seq, format!("h{i}")).is_none());
            }
            429 => {
                r.assert_error(429, "rate_limited");
                let ra = r
                    .header("retry-after")
                    .unwrap_or_else(|| panic!("a 429 carries Retry-After: {:?}", r.headers));
                let secs: u64 = ra
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("Retry-After must be whole seconds, got {ra:?}"));
                assert!(secs >= 1, "Retry-After is at least 1 s, got {secs}");
                max_retry = max_retry.max(secs);
                limited += 1;
            }
            other => panic!("POST {i}: unexpected {other} {}", r.body),
        }
    }
    let k = accepted.len();
    assert!(
        limited >= 1,
        "{POSTS} posts at once must hit the limit (all {k} accepted)"
    );
    assert!(k >= BURST, "the burst of {BURST} passes over HTTP too: {k}");
    assert_eq!(
        accepted.keys().copied().collect::<Vec<_>>(),
        (1..=k as u64).collect::<Vec<_>>()
    );

    // Another user is not limited by alice's bucket.
    let r = http::publish(
        &room,
        &ReqAuth::Bearer(bob.token(&[room.as_str()])),
        &json!({"cid": "bob", "data": 0}),
    )
    .await;
    r.assert_status(200);
    let bob_seq = assert_receipt(r.json(), false).seq;
    assert_eq!(bob_seq, k as u64 + 1);

    // Exactly the accepted ones (and bob's) were broadcast.
    let msgs = w.recv_messages(k + 1, Duration::from_secs(15)).await;
    w.expect_no_message(SILENCE).await;
    assert_eq!(seqs_of(&msgs), (1..=k as u64 + 1).collect::<Vec<_>>());
    for m in &msgs[..k] {
        assert_eq!(
            accepted.get(&u64_field(m, "seq")).map(String::as_str),
            m["cid"].as_str()
        );
    }

    // After Retry-After, alice may publish again.
    tokio::time::sleep(Duration::from_millis(max_retry.min(5) * 1000 + 100)).await;
    let r = http::publish(&room, &auth, &json!({"cid": "later", "data": 1})).await;
    r.assert_status(200);
    assert_eq!(assert_receipt(r.json(), false).seq, bob_seq + 1);
    w.close().await;
}

/// Publishes `count` frames on `c` and sorts the replies (other frames are skipped):
/// (acked, refused).
async fn publish_burst(c: &mut Client, tag: &str, count: usize) -> (usize, usize) {
    c.send_burst((0..count).map(|i| publish_frame(&format!("{tag}-{i}"), i)))
        .await;
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while frames.len() < count {
        let v = c
            .try_recv_json(deadline.saturating_duration_since(Instant::now()))
            .await
            .unwrap_or_else(|| panic!("{tag}: only {} replies to {count}", frames.len()));
        if matches!(ty(&v), "ack" | "error") {
            frames.push(v);
        }
    }
    let (acks, refused) = sort_replies(&frames);
    (acks.len(), refused.len())
}

#[tokio::test]
async fn reconnecting_does_not_refill_the_publish_bucket() {
    let room = unique_room("e2e:rate");
    let user = User::new("loop", "Looper", "x");
    let started = Instant::now();
    let (mut first, _) = Client::join_as(&room, &user).await;
    let (acked, _) = publish_burst(&mut first, "a", BURST).await;
    assert_eq!(acked, BURST, "the burst passes");
    first.close().await;
    // Before: every new connection brought a full bucket of its own (a reconnect loop got
    // 395 publishes a second accepted).
    let mut acked_later = 0;
    for round in 0..3 {
        let (mut again, _) = Client::join_as(&room, &user).await;
        let (acked, refused) = publish_burst(&mut again, &format!("r{round}"), 10).await;
        assert_eq!(acked + refused, 10);
        acked_later += acked;
        again.close().await;
    }
    let refill = (started.elapsed().as_secs_f64() * PER_SECOND).ceil() as usize;
    assert!(
        acked_later <= refill + 1,
        "after reconnecting only the refill passes: {acked_later} acked, ~{refill} refilled"
    );
    // HTTP publishes draw from the same bucket as the user's sockets.
    let (mut c, _) = Client::join_as(&room, &user).await;
    publish_burst(&mut c, "drain", BURST).await;
    let auth = ReqAuth::Bearer(user.token(&[room.as_str()]));
    let posts =
        (0..20).map(|i| {
            let (room, auth) = (&room, &auth);
            async move {
                http::publish(room, auth, &json!({"cid": format!("http{i}"), "data": i})).await
            }
        });
    let refused = futures_util::future::join_all(posts)
        .await
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert!(
        refused >= 10,
        "HTTP publishes after the sockets emptied the bucket: {refused} of 20 refused"
    );
}

#[tokio::test]
async fn a_reconnect_loop_is_refused_beyond_the_connect_burst() {
    const CONNECT_BURST: usize = 30;
    let room = unique_room("e2e:rate");
    let user = User::new("loop", "Looper", "x");
    let token = user.token(&[room.as_str()]);
    let started = Instant::now();
    let mut opened = 0;
    let mut refusal = None;
    for _ in 0..CONNECT_BURST * 3 {
        match Client::connect(&room, Some(&token), Via::Query, None).await {
            Ok(c) => {
                opened += 1;
                c.abort();
            }
            Err(err) => {
                refusal = Some(err);
                break;
            }
        }
    }
    let refill = (started.elapsed().as_secs_f64() * 5.0).ceil() as usize;
    let refusal = refusal.unwrap_or_else(|| {
        panic!(
            "{opened} connections of one user in {:?}, none refused",
            started.elapsed()
        )
    });
    refusal
        .assert_error(429, "rate_limited", "a reconnect loop")
        .await;
    if let ConnectError::Http { headers, .. } = &refusal {
        assert!(headers.contains_key("retry-after"), "{headers:?}");
    }
    assert!(
        (CONNECT_BURST..=CONNECT_BURST + refill + 1).contains(&opened),
        "{opened} connections before the refusal (burst {CONNECT_BURST}, ~{refill} refilled)"
    );
    // Other users are not affected.
    Client::join_as(&room, &User::new("other", "Other", "x")).await;
}
