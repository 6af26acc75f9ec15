//! Batched delivery (`?batch=1`): a batched socket may get a JSON array of ordinary v1 frames
//! in one WebSocket message. The frames of a burst are coalesced, stay in order and arrive
//! exactly once; acks are queued in order with the socket's other frames; a socket accepted
//! while frames wait never gets frames from before its welcome; resume still replays then
//! `synced`; `batch=0`/`false` or no parameter keeps one frame per message; any other value is
//! refused with 400 `bad_request`.
//!
//! The relay under test allows a burst of 40 publishes per connection, then 20 per second: a
//! publish refused with `rate_limited` is sent again a second later.

use relay_e2e::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Generous bound for a whole burst to be delivered: the test machine is small and busy.
const DELIVERY: Duration = Duration::from_secs(30);

/// Connects `who` to `room` with `batch=<batch>` (and `since`), reads the first WebSocket
/// message, which must be the welcome as a plain object (never inside an array), and checks
/// its shape. Returns the client and the welcome's seq.
async fn join_batched(room: &str, who: &User, batch: &str, since: Option<u64>) -> (Client, u64) {
    let (c, welcome) = join_batched_welcome(room, who, batch, since).await;
    (c, u64_field(&welcome, "seq"))
}

/// [`join_batched`] returning the whole welcome frame.
async fn join_batched_welcome(
    room: &str,
    who: &User,
    batch: &str,
    since: Option<u64>,
) -> (Client, Value) {
    let token = who.token(&[room]);
    let mut c =
        Client::connect_with_query(room, Some(&token), Via::Query, since, &[("batch", batch)])
            .await
            .unwrap_or_else(|e| panic!("joining {room:?} with batch={batch} failed: {e:?}"));
    let first = c.recv_json().await;
    assert!(
        first.is_object(),
        "batch={batch}: the first WebSocket message must be the welcome alone, got {first}"
    );
    assert_welcome(&first, room, who);
    (c, first)
}

/// What a client received, in order: every frame (taken out of batches) and how the
/// `message` frames were packed into WebSocket messages.
#[derive(Debug, Default)]
struct Received {
    frames: Vec<Value>,
    /// WebSocket messages that carried at least one `message` frame.
    carriers: usize,
    /// Of those, the ones that were arrays (batches).
    carrier_arrays: usize,
    /// Every WebSocket message that was an array.
    arrays: usize,
}

impl Received {
    fn messages(&self) -> Vec<&Value> {
        self.frames.iter().filter(|f| ty(f) == "message").collect()
    }

    fn message_seqs(&self) -> Vec<u64> {
        self.messages()
            .into_iter()
            .map(|m| u64_field(m, "seq"))
            .collect()
    }

    /// The frames other than presence (joins and leaves of the other test users).
    fn without_presence(&self) -> Vec<&Value> {
        self.frames.iter().filter(|f| ty(f) != "presence").collect()
    }
}

/// Reads WebSocket messages into `got` until `done(got)` holds; fails if the connection closes
/// or `within` passes first.
async fn receive_until(
    c: &mut Client,
    got: &mut Received,
    within: Duration,
    what: &str,
    done: impl Fn(&Received) -> bool,
) {
    let deadline = Instant::now() + within;
    while !done(got) {
        match c.next_incoming(deadline).await {
            Some(Incoming::Json(v)) => {
                let was_array = v.is_array();
                let frames = frames_of(v);
                if was_array {
                    got.arrays += 1;
                }
                if frames.iter().any(|f| ty(f) == "message") {
                    got.carriers += 1;
                    if was_array {
                        got.carrier_arrays += 1;
                    }
                }
                got.frames.extend(frames);
            }
            Some(Incoming::Closed { code, reason }) => panic!(
                "{what}: connection closed (code {code:?}, {reason}); received so far: {:?}",
                got.frames
            ),
            None => panic!(
                "{what}: not done within {within:?}; message seqs so far: {:?}",
                got.message_seqs()
            ),
        }
    }
}

/// Reads until `count` `message` frames have arrived.
async fn receive_messages(c: &mut Client, count: usize, what: &str) -> Received {
    let mut got = Received::default();
    receive_until(c, &mut got, DELIVERY, what, |r| r.messages().len() >= count).await;
    got
}

/// Everything that arrives within `within` (nothing may close the connection).
async fn receive_for(c: &mut Client, within: Duration) -> Received {
    let mut got = Received::default();
    let deadline = Instant::now() + within;
    while let Some(incoming) = c.next_incoming(deadline).await {
        match incoming {
            Incoming::Json(v) => {
                if v.is_array() {
                    got.arrays += 1;
                }
                got.frames.extend(frames_of(v));
            }
            Incoming::Closed { code, reason } => {
                panic!("connection closed (code {code:?}, {reason}) while waiting")
            }
        }
    }
    got
}

/// The publishes of one burst: cid `{prefix}{i}` with data `{"i": i}`.
fn burst_items(prefix: &str, range: std::ops::RangeInclusive<u64>) -> Vec<(String, Value)> {
    range
        .map(|i| (format!("{prefix}{i}"), json!({ "i": i })))
        .collect()
}

/// The outcome of [`publish_burst`].
#[derive(Debug, Default)]
struct Burst {
    /// `(cid, ack)` in arrival order.
    acks: Vec<(String, Stamp)>,
    /// Every other frame the publisher received meanwhile, in order.
    others: Vec<Value>,
    /// Publishes refused with `rate_limited` (and sent again).
    refused: usize,
}

/// Publishes every `(cid, data)` in one write burst without waiting for acks, then reads
/// (batches or single frames) until each has its ack. A publish refused with `rate_limited`
/// is sent again, in one burst with the other refused ones, a second later; any other error
/// fails the test.
async fn publish_burst(c: &mut Client, items: &[(String, Value)]) -> Burst {
    let mut out = Burst::default();
    let mut pending: Vec<&(String, Value)> = items.iter().collect();
    for round in 0..30 {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        let mut texts = Vec::with_capacity(pending.len());
        for (cid, data) in &pending {
            texts.push(json!({"type": "publish", "cid": cid, "data": data}).to_string());
        }
        c.send_burst(texts).await;
        let mut waiting: BTreeSet<&str> = pending.iter().map(|(cid, _)| cid.as_str()).collect();
        let mut refused = Vec::new();
        let deadline = Instant::now() + DELIVERY;
        while !waiting.is_empty() {
            let frames = match c.next_incoming(deadline).await {
                Some(Incoming::Json(v)) => frames_of(v),
                Some(Incoming::Closed { code, reason }) => panic!(
                    "publisher closed (code {code:?}, {reason}) with {} publishes unanswered",
                    waiting.len()
                ),
                None => panic!(
                    "no answer within {DELIVERY:?} for {} publishes: {waiting:?}",
                    waiting.len()
                ),
            };
            for f in frames {
                let cid = f.get("cid").and_then(Value::as_str).map(str::to_string);
                match (ty(&f), cid) {
                    ("ack", Some(cid)) => {
                        assert!(
                            waiting.remove(cid.as_str()),
                            "ack for a publish that is not waiting for one: {f}"
                        );
                        let stamp = assert_ack(&f, &cid, false);
                        out.acks.push((cid, stamp));
                    }
                    ("error", Some(cid))
                        if f.get("code").and_then(Value::as_str) == Some("rate_limited") =>
                    {
                        assert!(
                            waiting.remove(cid.as_str()),
                            "rate_limited for a publish that is not waiting: {f}"
                        );
                        refused.push(pending.iter().copied().find(|(c, _)| *c == cid).unwrap());
                    }
                    ("error", _) => panic!("a publish was refused: {f}"),
                    _ => out.others.push(f),
                }
            }
        }
        if refused.is_empty() {
            return out;
        }
        out.refused += refused.len();
        pending = refused;
    }
    panic!("publishes stayed rate limited for 30 rounds");
}

/// A batched and a plain (and a `batch=0`) receiver in one room while a sender publishes 50
/// messages in one burst: the plain ones get 50 single frames with seq 1..=50 in order; the
/// batched one gets the same 50 frames, in order, exactly once, in fewer WebSocket messages.
#[tokio::test]
async fn a_burst_reaches_a_batched_receiver_in_fewer_messages_and_a_plain_one_frame_by_frame() {
    let room = unique_room("e2e:batch");
    let batched = User::new("batched", "Batched", "viewer");
    let plain = User::new("plain", "Plain", "viewer");
    let zero = User::new("zero", "Batch Zero", "viewer");
    let sender = User::new("sender", "Sender", "writer");
    let (mut b, _) = join_batched(&room, &batched, "1", None).await;
    let (mut p, _) = Client::join_as(&room, &plain).await;
    let (mut z, _) = join_batched(&room, &zero, "0", None).await;
    let (mut s, seq) = Client::join_as(&room, &sender).await;
    assert_eq!(seq, 0);

    let items = burst_items("m", 1..=50);
    let burst = publish_burst(&mut s, &items).await;
    let expected: Vec<u64> = (1..=50).collect();
    let mut acked: Vec<(String, Stamp)> = burst.acks.clone();
    acked.sort_by_key(|(_, s)| s.seq);
    assert_eq!(
        acked.iter().map(|(_, s)| s.seq).collect::<Vec<_>>(),
        expected,
        "the 50 publishes are acked with seq 1..=50"
    );

    let got_plain = receive_messages(&mut p, 50, "plain receiver").await;
    let got_zero = receive_messages(&mut z, 50, "batch=0 receiver").await;
    let got_batched = receive_messages(&mut b, 50, "batched receiver").await;

    for (name, got) in [("plain", &got_plain), ("batch=0", &got_zero)] {
        assert_eq!(got.arrays, 0, "{name} receiver must never get an array");
        assert_eq!(
            got.carriers, 50,
            "{name} receiver: one WebSocket message per message frame"
        );
        assert_eq!(
            got.message_seqs(),
            expected,
            "{name} receiver: seq 1..=50 in order"
        );
    }
    for (m, (cid, stamp)) in got_plain.messages().into_iter().zip(&acked) {
        let i: u64 = cid[1..].parse().unwrap();
        let got = assert_message(m, &room, "message", &json!({ "i": i }), &sender, Some(cid));
        assert_eq!(
            &got, stamp,
            "plain receiver: message {} matches its ack",
            got.seq
        );
    }
    assert_eq!(
        got_batched.message_seqs(),
        expected,
        "batched receiver: every message exactly once, in seq order"
    );
    assert_eq!(
        got_batched.messages(),
        got_plain.messages(),
        "the batched receiver gets the very same frames as the plain one"
    );
    assert!(
        got_batched.carriers < 50 && got_batched.carrier_arrays >= 1,
        "a burst of 50 must be coalesced for the batched receiver: {} WebSocket messages, \
         {} of them arrays",
        got_batched.carriers,
        got_batched.carrier_arrays
    );
    eprintln!(
        "batched receiver: 50 messages in {} WebSocket messages ({} arrays); sender had {} \
         publishes refused by the rate limit",
        got_batched.carriers, got_batched.carrier_arrays, burst.refused
    );

    // Nothing arrives twice.
    for (name, c) in [("batched", &mut b), ("plain", &mut p), ("batch=0", &mut z)] {
        let late = receive_for(c, Duration::from_millis(500)).await;
        assert_eq!(
            late.messages(),
            Vec::<&Value>::new(),
            "{name} receiver: no message after the 50"
        );
    }
    for c in [b, p, z, s] {
        c.close().await;
    }
}

/// A batched sender publishing 20 messages at once gets its 20 acks (in batches or alone) in
/// seq order and never one of its own messages; another batched socket gets all 20.
#[tokio::test]
async fn a_batched_sender_gets_its_acks_in_order_and_never_its_own_messages() {
    let room = unique_room("e2e:batch");
    let sender = User::new("sender", "Sender", "writer");
    let other = User::new("other", "Other", "viewer");
    let (mut r, _) = join_batched(&room, &other, "1", None).await;
    let (mut s, _) = join_batched(&room, &sender, "1", None).await;

    let items = burst_items("a", 1..=20);
    let burst = publish_burst(&mut s, &items).await;
    assert_eq!(burst.refused, 0, "20 publishes are within the burst limit");
    assert_eq!(burst.acks.len(), 20);
    let seqs: Vec<u64> = burst.acks.iter().map(|(_, s)| s.seq).collect();
    assert_eq!(
        seqs,
        (1..=20).collect::<Vec<_>>(),
        "acks arrive in seq order, one per publish"
    );
    for (i, (cid, _)) in burst.acks.iter().enumerate() {
        assert_eq!(cid, &format!("a{}", i + 1), "acks in publish order");
    }
    assert!(
        !burst.others.iter().any(|f| ty(f) == "message"),
        "the sender got a message frame: {:?}",
        burst.others
    );
    let late = receive_for(&mut s, SILENCE).await;
    assert!(
        late.messages().is_empty(),
        "the sender got message frames: {:?}",
        late.messages()
    );

    let got = receive_messages(&mut r, 20, "batched receiver").await;
    assert_eq!(
        got.message_seqs(),
        seqs,
        "the other socket gets all 20 in order"
    );
    for (m, (cid, stamp)) in got.messages().into_iter().zip(&burst.acks) {
        let i: u64 = cid[1..].parse().unwrap();
        let m = assert_message(m, &room, "message", &json!({ "i": i }), &sender, Some(cid));
        assert_eq!(&m, stamp);
    }
    r.close().await;
    s.close().await;
}

/// Sockets connecting with `batch=1` while others publish in bursts (into a room that already
/// has batched sockets, so frames are waiting for a batch when they are accepted): the first
/// frame is the welcome, every message after it has seq > welcome.seq and they run without a
/// gap to the end of the traffic. Those that resume with `since=0` get the replay up to the
/// welcome's seq, `synced`, then the same live traffic.
#[tokio::test]
async fn a_socket_joining_mid_burst_gets_nothing_from_before_its_welcome() {
    joining_mid_burst("1").await;
}

/// The same with sockets that take one frame per message (`batch=0`): presence joins wait
/// for them too, and one accepted meanwhile must not get the joins from before its welcome.
#[tokio::test]
async fn a_plain_socket_joining_mid_burst_gets_nothing_from_before_its_welcome() {
    joining_mid_burst("0").await;
}

async fn joining_mid_burst(joiner_batch: &'static str) {
    let room = unique_room("e2e:batch");
    let observer = User::new("observer", "Observer", "viewer");
    let (mut o, _) = join_batched(&room, &observer, "1", None).await;

    // Three batched publishers, bursts of 4 every 150 ms each (a publish refused by the rate
    // limit is sent again a second later).
    let stop = Arc::new(AtomicBool::new(false));
    let mut publishers = Vec::new();
    for k in 0..3 {
        let u = User::new(&format!("pub{k}"), &format!("Publisher {k}"), "writer");
        let (mut c, _) = join_batched(&room, &u, "1", None).await;
        let stop = stop.clone();
        publishers.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            let mut next = 1u64;
            // At most 15 s of traffic, whatever happens to the test.
            for _round in 0..100 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let items = burst_items(&format!("p{k}-"), next..=next + 3);
                next += 4;
                let burst = publish_burst(&mut c, &items).await;
                acks.extend(burst.acks.into_iter().map(|(_, s)| s.seq));
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            (c, acks)
        }));
    }

    // Traffic has begun once the observer sees messages.
    let mut seen = Received::default();
    receive_until(&mut o, &mut seen, DELIVERY, "observer", |r| {
        r.messages().len() >= 6
    })
    .await;

    // Joiners in waves of two at once (so that one's presence join may wait for a batch
    // while the other is accepted); every other one resumes with since=0.
    let mut joiners = Vec::new();
    for wave in 0..4 {
        let mut connecting = Vec::new();
        for j in [2 * wave, 2 * wave + 1] {
            let u = User::new(&format!("late{j}"), &format!("Late {j}"), "viewer");
            let since = (j % 2 == 1).then_some(0);
            let room = room.clone();
            connecting.push(tokio::spawn(async move {
                let (c, welcome) = join_batched_welcome(&room, &u, joiner_batch, since).await;
                (j, since, c, welcome)
            }));
        }
        for t in connecting {
            let (j, since, c, welcome) = t.await.expect("joiner task");
            let welcome_seq = u64_field(&welcome, "seq");
            assert!(welcome_seq >= 6, "joiner {j} joined after traffic began");
            joiners.push((j, since, c, welcome_seq, presence_ids(&welcome)));
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..150))).await;
    }
    // Traffic goes on for a while after the last welcome.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut all_acks = Vec::new();
    let mut clients = Vec::new();
    for t in publishers {
        let (c, acks) = t.await.expect("publisher task");
        all_acks.extend(acks);
        clients.push(c);
    }
    all_acks.sort_unstable();
    let total = *all_acks.last().expect("acks");
    assert_eq!(
        all_acks,
        (1..=total).collect::<Vec<_>>(),
        "the publishers' acks cover 1..={total} once each"
    );

    receive_until(&mut o, &mut seen, DELIVERY, "observer", |r| {
        r.message_seqs().last() == Some(&total)
    })
    .await;
    assert_eq!(
        seen.message_seqs(),
        (1..=total).collect::<Vec<_>>(),
        "observer: every message once, in order"
    );

    for (j, since, mut c, welcome_seq, present) in joiners {
        assert!(
            welcome_seq < total,
            "joiner {j}: traffic continued after its welcome (seq {welcome_seq} of {total})"
        );
        let mut got = Received::default();
        receive_until(&mut c, &mut got, DELIVERY, &format!("joiner {j}"), |r| {
            r.message_seqs().last() == Some(&total)
        })
        .await;
        // A join of a user the welcome already listed was sent before the welcome.
        let mut present: BTreeSet<String> = present.into_iter().collect();
        for f in got.frames.iter().filter(|f| ty(f) == "presence") {
            let id = str_field(&f["user"], "id").to_string();
            match str_field(f, "event") {
                "join" => assert!(
                    present.insert(id),
                    "joiner {j}: presence join of a user its welcome already listed: {f}"
                ),
                _ => {
                    present.remove(&id);
                }
            }
        }
        let frames = got.without_presence();
        let (replayed, live) = match since {
            None => (Vec::new(), &frames[..]),
            Some(since) => {
                let at = frames
                    .iter()
                    .position(|f| ty(f) == "synced")
                    .unwrap_or_else(|| panic!("joiner {j}: no synced in {frames:?}"));
                assert_eq!(
                    frames[at],
                    &json!({"type": "synced", "seq": welcome_seq}),
                    "joiner {j}: synced at the welcome's seq"
                );
                let replayed: Vec<u64> = frames[..at].iter().map(|m| u64_field(m, "seq")).collect();
                assert!(
                    frames[..at].iter().all(|f| ty(f) == "message"),
                    "joiner {j}: only messages before synced: {:?}",
                    &frames[..at]
                );
                assert_eq!(
                    replayed,
                    (since + 1..=welcome_seq).collect::<Vec<_>>(),
                    "joiner {j}: replay after since={since}"
                );
                (replayed, &frames[at + 1..])
            }
        };
        let live_seqs: Vec<u64> = live
            .iter()
            .map(|f| {
                assert_eq!(ty(f), "message", "joiner {j}: only messages live, got {f}");
                u64_field(f, "seq")
            })
            .collect();
        if let Some(early) = live_seqs.iter().find(|&&s| s <= welcome_seq) {
            panic!(
                "joiner {j}: got seq {early} live although its welcome had seq {welcome_seq}; \
                 live seqs {live_seqs:?}"
            );
        }
        assert_eq!(
            live_seqs,
            (welcome_seq + 1..=total).collect::<Vec<_>>(),
            "joiner {j} (welcome seq {welcome_seq}): every later message once, in order, no gap"
        );
        eprintln!(
            "joiner {j}: welcome seq {welcome_seq}, {} replayed, {} live in {} WebSocket \
             messages ({} arrays)",
            replayed.len(),
            live_seqs.len(),
            got.carriers,
            got.carrier_arrays
        );
        c.close().await;
    }
    o.close().await;
    for c in clients {
        c.close().await;
    }
}

/// `batch` takes 1, true, 0 or false; any other value refuses the upgrade with 400.
#[tokio::test]
async fn batch_flag_values_other_than_1_true_0_false_are_refused() {
    let room = unique_room("e2e:batch");
    let who = User::new("flag", "Flag", "viewer");
    for value in ["1", "true", "0", "false"] {
        let (c, _) = join_batched(&room, &who, value, None).await;
        c.close().await;
    }
    let token = who.token(&[&room]);
    for value in ["yes", "TRUE", "2", ""] {
        match Client::connect_with_query(&room, Some(&token), Via::Query, None, &[("batch", value)])
            .await
        {
            Ok(_) => panic!("upgrade with batch={value:?} succeeded"),
            Err(e) => {
                e.assert_error(400, "bad_request", &format!("upgrade with batch={value:?}"))
                    .await
            }
        }
    }
}

/// Resume with `since=4&batch=1`: welcome, messages 5..=10 in order, `synced`, then live
/// traffic (a burst, possibly batched) after it.
#[tokio::test]
async fn resume_with_batch_replays_in_order_then_synced_then_live() {
    let room = unique_room("e2e:batch");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let mut stamps = Vec::new();
    for i in 1..=10u64 {
        let s = a
            .publish_acked(&format!("s{i}"), None, &json!({ "i": i }))
            .await;
        assert_eq!(s.seq, i);
        stamps.push(s);
    }

    let (mut b, welcome_seq) = join_batched(&room, &bob, "1", Some(4)).await;
    assert_eq!(welcome_seq, 10, "welcome.seq with since=4");
    let mut got = Received::default();
    receive_until(&mut b, &mut got, DELIVERY, "resuming socket", |r| {
        r.frames.iter().any(|f| ty(f) == "synced")
    })
    .await;
    let frames = got.without_presence();
    let (last, replayed) = frames.split_last().unwrap();
    assert_eq!(
        *last,
        &json!({"type": "synced", "seq": 10}),
        "synced after the replay"
    );
    assert_eq!(
        replayed
            .iter()
            .map(|m| u64_field(m, "seq"))
            .collect::<Vec<_>>(),
        (5..=10).collect::<Vec<_>>(),
        "replay after since=4, in order: {replayed:?}"
    );
    for m in replayed {
        let seq = u64_field(m, "seq");
        let got = assert_message(
            m,
            &room,
            "message",
            &json!({ "i": seq }),
            &alice,
            Some(&format!("s{seq}")),
        );
        assert_eq!(got, stamps[seq as usize - 1], "replayed message {seq}");
    }

    // Live traffic after synced: 11..=15, once each, in order.
    let burst = publish_burst(&mut a, &burst_items("live", 11..=15)).await;
    assert_eq!(
        burst.acks.iter().map(|(_, s)| s.seq).collect::<Vec<_>>(),
        (11..=15).collect::<Vec<_>>()
    );
    let mut live = Received::default();
    receive_until(&mut b, &mut live, DELIVERY, "resumed socket", |r| {
        r.messages().len() >= 5
    })
    .await;
    assert_eq!(live.message_seqs(), (11..=15).collect::<Vec<_>>());
    let late = receive_for(&mut b, Duration::from_millis(500)).await;
    assert!(
        late.messages().is_empty(),
        "nothing twice: {:?}",
        late.messages()
    );
    a.close().await;
    b.close().await;
}

/// Everything a socket gets within `within` (frames unpacked from batches) and its close code.
async fn frames_and_close(c: &mut Client, within: Duration) -> (Vec<Value>, Option<u16>) {
    let deadline = Instant::now() + within;
    let mut frames = Vec::new();
    while let Some(incoming) = c.next_incoming(deadline).await {
        match incoming {
            Incoming::Json(v) => frames.extend(frames_of(v)),
            Incoming::Closed { code, .. } => return (frames, code),
        }
    }
    (frames, None)
}

/// Five publishes followed by `last`, in one write, from a batched socket (with a batched
/// observer in the room so that frames really queue).
async fn five_publishes_then(last: String) -> (Vec<Value>, Option<u16>) {
    let room = unique_room("e2e:batch-own");
    let (_observer, _) = join_batched(&room, &User::new("watcher", "W", "w"), "1", None).await;
    let (mut sender, _) = join_batched(&room, &User::new("sender", "S", "w"), "1", None).await;
    let mut burst: Vec<String> = (1..=5)
        .map(|i| json!({"type": "publish", "cid": format!("c{i}"), "data": i}).to_string())
        .collect();
    burst.push(last);
    sender.send_burst(burst).await;
    frames_and_close(&mut sender, Duration::from_secs(3)).await
}

fn acks_first(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .take(5)
        .map(|f| format!("{}:{}", ty(f), f["cid"].as_str().unwrap_or("")))
        .collect()
}

#[tokio::test]
async fn errors_and_pongs_follow_the_acks_queued_before_them() {
    let expected: Vec<String> = (1..=5).map(|i| format!("ack:c{i}")).collect();
    let (frames, _) = five_publishes_then(r#"{"type":"nope"}"#.to_string()).await;
    assert_eq!(acks_first(&frames), expected, "{frames:?}");
    assert_eq!(frames.len(), 6, "{frames:?}");
    assert_eq!(
        (ty(&frames[5]), frames[5]["code"].as_str()),
        ("error", Some("bad_request"))
    );

    // A ping the room answers itself (the runtime's own reply needs the exact text).
    let (frames, _) = five_publishes_then(r#"{"type": "ping"}"#.to_string()).await;
    assert_eq!(acks_first(&frames), expected, "{frames:?}");
    assert_eq!(frames.len(), 6, "{frames:?}");
    assert_eq!(ty(&frames[5]), "pong");
}

#[tokio::test]
async fn a_batched_socket_closed_by_the_room_gets_its_queued_acks_first() {
    let oversized = json!({"type": "publish", "cid": "big", "data": "x".repeat(70_000)});
    let (frames, code) = five_publishes_then(oversized.to_string()).await;
    let expected: Vec<String> = (1..=5).map(|i| format!("ack:c{i}")).collect();
    assert_eq!(acks_first(&frames), expected, "{frames:?}");
    assert_eq!(code, Some(4009), "{frames:?}");
}
