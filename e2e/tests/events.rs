//! Outgoing events end to end: the relay (started with `EVENTS_URL` pointing at a port on
//! 127.0.0.1, `EVENTS_SECRET`, `EVENTS_PREFIXES=e2e-events:` and a small `EVENTS_MAX_ATTEMPTS`,
//! see `run_e2e` in scripts/test) delivers its rooms' events through the local queue of
//! `wrangler dev` to the sink these tests run on that port. The sink answers per room as each
//! test tells it: failing the first deliveries, answering too late, down for a while, or
//! refusing everything (the dead-letter path). Every event must arrive, signed, and per room
//! in the order it happened.
//!
//! `EVENTS_DOWN_SECS` (default 3) sets how long the backend is down in
//! `nothing_is_lost_while_the_backend_is_down`; it must stay within the relay's retry schedule
//! (1 + 2 + 4 ... s over `EVENTS_MAX_ATTEMPTS` deliveries), e.g. 30 with
//! `EVENTS_MAX_ATTEMPTS=7` (63 s).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use relay_e2e::backend::{broadcast_ok, set_members};
use relay_e2e::signing::{self, Answer, SignedRequest};
use relay_e2e::*;
use serde_json::{json, Value};

/// Longest wait for events that should arrive (a few backoffs of the local queue).
const ARRIVAL: Duration = Duration::from_secs(90);
/// Longest request the sink reads.
const MAX_REQUEST_BYTES: usize = 4 << 20;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: the events tests need the relay's EVENTS_URL, EVENTS_SECRET and EVENTS_MAX_ATTEMPTS (scripts/test sets them)")
    })
}

/// How the sink answers a room's deliveries.
#[derive(Clone, Copy)]
enum Rule {
    /// 500 for the first n deliveries, then 200.
    FailFirst(u32),
    /// The first delivery is answered only after [`too_late`]; then 200.
    HangFirst,
    /// 503 until then, then 200.
    DownUntil(Instant),
    /// 400 for every delivery.
    Refuse,
}

#[derive(Default)]
struct Sink {
    rules: HashMap<String, Rule>,
    /// Deliveries per room, answered or not.
    attempts: HashMap<String, u32>,
    /// Accepted deliveries per room, in arrival order: their events.
    accepted: HashMap<String, Vec<Vec<Value>>>,
    /// Deliveries whose signature did not verify (they are refused with 401).
    bad_signatures: u32,
}

fn sink() -> &'static Mutex<Sink> {
    static SINK: OnceLock<Mutex<Sink>> = OnceLock::new();
    SINK.get_or_init(|| {
        signing::serve(
            &env("EVENTS_URL"),
            env("EVENTS_SECRET"),
            MAX_REQUEST_BYTES,
            judge,
        );
        Mutex::new(Sink::default())
    })
}

/// Records a delivery and decides its answer, which comes too late for a first delivery the
/// room's rule hangs (such a delivery counts as failed, as the relay no longer waits for it).
fn judge(request: SignedRequest) -> Answer {
    let body = &request.body;
    let mut sink = sink().lock().unwrap();
    if !request.signed {
        sink.bad_signatures += 1;
        return Answer::status(401);
    }
    let delivery: Value = serde_json::from_slice(body).expect("a delivery is JSON");
    let events = delivery["events"].as_array().expect("events array").clone();
    assert!(
        !events.is_empty() && events.len() <= 100,
        "1..=100 events a delivery"
    );
    let room = events[0]["room"].as_str().expect("room").to_string();
    assert!(
        events.iter().all(|e| e["room"] == room.as_str()),
        "one room a delivery"
    );
    let attempt = {
        let n = sink.attempts.entry(room.clone()).or_default();
        *n += 1;
        *n
    };
    if matches!(sink.rules.get(&room), Some(Rule::HangFirst)) && attempt == 1 {
        return Answer {
            delay: too_late(),
            ..Answer::status(200)
        };
    }
    let status = match sink.rules.get(&room) {
        Some(Rule::FailFirst(n)) if attempt <= *n => 500,
        Some(Rule::DownUntil(until)) if Instant::now() < *until => 503,
        Some(Rule::Refuse) => 400,
        _ => 200,
    };
    if status == 200 {
        sink.accepted.entry(room).or_default().push(events);
    }
    Answer::status(status)
}

/// Longer than the relay waits for an answer (`EVENTS_TIMEOUT_MS`).
fn too_late() -> Duration {
    let timeout_ms: u64 = env("EVENTS_TIMEOUT_MS").parse().expect("a number");
    Duration::from_millis(timeout_ms + 1_000)
}

fn set_rule(room: &str, rule: Rule) {
    sink().lock().unwrap().rules.insert(room.to_string(), rule);
}

fn attempts(room: &str) -> u32 {
    sink()
        .lock()
        .unwrap()
        .attempts
        .get(room)
        .copied()
        .unwrap_or(0)
}

/// Every event accepted for `room`, in arrival order (repeats included).
fn arrived(room: &str) -> Vec<Value> {
    let sink = sink().lock().unwrap();
    assert_eq!(
        sink.bad_signatures, 0,
        "every delivery is signed with EVENTS_SECRET"
    );
    sink.accepted
        .get(room)
        .map(|deliveries| deliveries.concat())
        .unwrap_or_default()
}

/// Waits until `done` holds for the room's arrived events; returns them.
async fn wait_for(room: &str, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + ARRIVAL;
    loop {
        let events = arrived(room);
        if done(&events) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not arrive within {ARRIVAL:?}; arrived: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `message.created` seqs in arrival order, each the first time its id came.
fn first_message_seqs(events: &[Value]) -> Vec<u64> {
    let mut seen = HashSet::new();
    events
        .iter()
        .filter(|e| e["type"] == "message.created")
        .filter(|e| seen.insert(e["id"].as_str().unwrap().to_string()))
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

/// Per room in order: an event is either new and after every event before it, or a repeat of
/// one that came before (at least once), never new and out of order.
fn assert_in_order(events: &[Value]) {
    let mut seen = HashSet::new();
    let mut last_seq = 0;
    for event in events.iter().filter(|e| e["type"] == "message.created") {
        let id = event["id"].as_str().expect("id").to_string();
        let seq = event["seq"].as_u64().expect("seq");
        if seen.insert(id) {
            assert!(
                seq > last_seq,
                "seq {seq} arrived after {last_seq}: {events:?}"
            );
            last_seq = seq;
        }
    }
}

/// At least once allows repeats, but here nothing causes one: the sink answers every delivery
/// at once and the room keeps one batch in flight, so each event arrives exactly once.
fn assert_no_repeats(events: &[Value]) {
    let mut seen = HashSet::new();
    for event in events {
        let id = event["id"].as_str().expect("id");
        assert!(seen.insert(id), "event {id} arrived twice: {events:?}");
    }
}

fn events_room(name: &str) -> String {
    unique_room(&format!("e2e-events:{name}"))
}

#[tokio::test]
async fn every_event_arrives_signed_and_in_order_despite_failed_deliveries() {
    let room = events_room("order");
    set_rule(&room, Rule::FailFirst(2));
    let alice = User::new("alice", "Alice", "customer");
    let (mut a, _) = Client::join_as(&room, &alice).await;
    for i in 1..=30u64 {
        let stamp = a
            .publish_acked(&format!("m{i}"), None, &json!({"i": i}))
            .await;
        assert_eq!(stamp.seq, i);
    }
    let seqs = broadcast_ok(&[&room], "order:new", &json!({"id": 42}), Some("order-42")).await;
    assert_eq!(seqs, [31]);
    a.send_json(&json!({"type": "read", "seq": 31})).await;
    a.close().await;

    let events = wait_for(&room, "31 messages, a read and a leave", |events| {
        first_message_seqs(events).len() == 31
            && events.iter().any(|e| e["type"] == "presence.left")
    })
    .await;
    assert!(
        attempts(&room) >= 3,
        "the first two deliveries failed and were retried"
    );
    assert_in_order(&events);
    assert_no_repeats(&events);
    assert_eq!(first_message_seqs(&events), (1..=31).collect::<Vec<_>>());

    let firsts: Vec<&Value> = {
        let mut seen = HashSet::new();
        events
            .iter()
            .filter(|e| seen.insert(e["id"].as_str().unwrap().to_string()))
            .collect()
    };
    let types: Vec<&str> = firsts.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"presence.joined"));
    assert_eq!(&types[types.len() - 2..], ["read.updated", "presence.left"]);
    for event in &firsts {
        assert_eq!(event["room"], room.as_str());
        assert_rfc3339_utc(&event["ts"], "event ts");
        assert!(event["id"].as_str().is_some_and(|id| !id.is_empty()));
    }
    let first = firsts
        .iter()
        .find(|e| e["type"] == "message.created")
        .unwrap();
    assert_eq!(first["user"]["id"], alice.id.as_str());
    assert_eq!(first["message"]["seq"], 1);
    assert_eq!(first["message"]["data"], json!({"i": 1}));
    let backend = firsts
        .iter()
        .find(|e| e["seq"] == 31 && e["type"] == "message.created");
    let backend = backend.expect("the backend's broadcast has its event");
    assert_eq!(backend["user"], Value::Null);
    assert_eq!(backend["message"]["event"], "order:new");
    let read = firsts.iter().find(|e| e["type"] == "read.updated").unwrap();
    assert_eq!(
        (read["seq"].as_u64(), read["user"]["id"].as_str()),
        (Some(31), Some(alice.id.as_str()))
    );
}

#[tokio::test]
async fn nothing_is_lost_while_the_backend_is_down() {
    let room = events_room("down");
    let down_for = Duration::from_secs(
        std::env::var("EVENTS_DOWN_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3),
    );
    let up_at = Instant::now() + down_for;
    set_rule(&room, Rule::DownUntil(up_at));
    let bob = User::new("bob", "Bob", "agent");
    let auth = http::ReqAuth::Bearer(bob.token(&[&room]));
    for i in 1..=20u64 {
        let stamp =
            http::publish_ok(&room, &auth, &json!({"cid": format!("d{i}"), "data": i})).await;
        assert_eq!(stamp.seq, i);
    }
    let events = wait_for(&room, "20 messages", |events| {
        first_message_seqs(events).len() == 20
    })
    .await;
    assert!(Instant::now() >= up_at, "nothing was accepted while down");
    assert!(
        attempts(&room) >= 2,
        "deliveries were refused while the backend was down"
    );
    assert_in_order(&events);
    assert_no_repeats(&events);
    assert_eq!(first_message_seqs(&events), (1..=20).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_batch_refused_every_time_is_dead_lettered_and_the_room_moves_on() {
    let room = events_room("dead");
    let max_attempts: u32 = env("EVENTS_MAX_ATTEMPTS").parse().expect("a number");
    set_rule(&room, Rule::Refuse);
    let bob = User::new("bob", "Bob", "agent");
    let auth = http::ReqAuth::Bearer(bob.token(&[&room]));
    http::publish_ok(&room, &auth, &json!({"cid": "lost", "data": 1})).await;

    let deadline = Instant::now() + ARRIVAL;
    while attempts(&room) < max_attempts {
        assert!(
            Instant::now() < deadline,
            "only {} deliveries",
            attempts(&room)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every delivery of the batch was refused: it goes to the dead-letter queue, whose
    // consumer tells the room, which sends what came after.
    set_rule(&room, Rule::FailFirst(0));
    http::publish_ok(&room, &auth, &json!({"cid": "next", "data": 2})).await;
    let events = wait_for(&room, "the message after the dead letter", |events| {
        !first_message_seqs(events).is_empty()
    })
    .await;
    assert_eq!(first_message_seqs(&events), [2]);
    assert_eq!(
        attempts(&room),
        max_attempts + 1,
        "no delivery after the last refused one"
    );
}

#[tokio::test]
async fn a_delivery_answered_too_late_is_delivered_again() {
    let room = events_room("late");
    set_rule(&room, Rule::HangFirst);
    let bob = User::new("bob", "Bob", "agent");
    let auth = http::ReqAuth::Bearer(bob.token(&[&room]));
    for i in 1..=3u64 {
        http::publish_ok(&room, &auth, &json!({"cid": format!("l{i}"), "data": i})).await;
    }
    let events = wait_for(&room, "3 messages", |events| {
        first_message_seqs(events).len() == 3
    })
    .await;
    assert!(attempts(&room) >= 2, "the late delivery was retried");
    assert_in_order(&events);
    assert_no_repeats(&events);
    assert_eq!(first_message_seqs(&events), [1, 2, 3]);
}

#[tokio::test]
async fn edits_and_deletes_arrive_as_events_in_seq_order() {
    let room = events_room("edits");
    let ann = User::new("ann", "Ann", "customer");
    let moderator = User::new("mod", "Mo", "moderator");
    let (mut a, _) = Client::join_as(&room, &ann).await;
    a.publish_acked("m1", None, &json!("first")).await;
    a.send_json(&json!({"type": "edit", "cid": "e1", "seq": 1, "data": "fixed"}))
        .await;
    a.recv_ack("e1").await;
    let path = room_path(&room, "messages/1");
    let auth = http::ReqAuth::Bearer(moderator.token(&[&room]));
    http::send(reqwest::Method::DELETE, &path, &auth, None, &[])
        .await
        .assert_status(200);

    let events = wait_for(&room, "the edit and the delete", |events| {
        events.iter().any(|e| e["type"] == "message.deleted")
    })
    .await;
    assert_no_repeats(&events);
    let changes: Vec<(&str, u64, u64, &str)> = events
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("message."))
        })
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["seq"].as_u64().unwrap(),
                e["ref_seq"].as_u64().unwrap_or(0),
                e["user"]["id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("message.created", 1, 0, ann.id.as_str()),
            ("message.edited", 2, 1, ann.id.as_str()),
            ("message.deleted", 3, 1, moderator.id.as_str()),
        ]
    );
    let edited = events
        .iter()
        .find(|e| e["type"] == "message.edited")
        .unwrap();
    assert_eq!(
        (&edited["message"]["data"], &edited["message"]["ref_seq"]),
        (&json!("fixed"), &json!(1))
    );
}

/// `UNREAD_NOTIFY_AFTER_S` as the relay has it (scripts/test sets 5; the relay's default is 60).
fn unread_after() -> Duration {
    let seconds = std::env::var("UNREAD_NOTIFY_AFTER_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(seconds)
}

fn unread_notices(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["type"] == "message.unread")
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_offline_member_who_leaves_messages_unread_is_told_once() {
    let room = events_room("unread");
    // alice writes and carol is online: neither is told; bob is away.
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "agent");
    let carol = User::new("carol", "Carol", "agent");
    set_members(&room, &[&alice.id, &bob.id, &carol.id]).await;
    let (carol_socket, _) = Client::join_as(&room, &carol).await;
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let started = Instant::now();
    a.publish_acked("u1", None, &json!({"text": "one"})).await;
    a.publish_acked("u2", None, &json!({"text": "two"})).await;

    let events = wait_for(&room, "message.unread", |events| {
        !unread_notices(events).is_empty()
    })
    .await;
    assert!(
        started.elapsed() >= unread_after(),
        "told before the interval"
    );
    let notices = unread_notices(&events);
    assert_eq!(notices.len(), 1, "bob only: {notices:?}");
    let notice = &notices[0];
    assert_eq!(notice["room"], room.as_str());
    assert_eq!(notice["user"]["id"], bob.id.as_str());
    assert_eq!(
        (notice["seq"].as_u64(), notice["unread"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(notice["message"]["seq"], 2);
    assert_eq!(notice["message"]["data"]["text"], "two");
    assert_rfc3339_utc(&notice["ts"], "message.unread ts");

    // More left unread is the same streak: no other notice.
    a.publish_acked("u3", None, &json!({"text": "three"})).await;
    tokio::time::sleep(unread_after() + Duration::from_secs(3)).await;
    let events = wait_for(&room, "the third message", |events| {
        first_message_seqs(events).contains(&3)
    })
    .await;
    assert_eq!(unread_notices(&events).len(), 1, "{events:?}");
    a.close().await;
    carol_socket.close().await;
    // Their leaves arrive while the sink still listens (they start no streak either).
    let events = wait_for(&room, "both leaves", |events| {
        events
            .iter()
            .filter(|e| e["type"] == "presence.left")
            .count()
            == 2
    })
    .await;
    assert_eq!(unread_notices(&events).len(), 1, "{events:?}");
    assert_no_repeats(&events);
}
