//! Operations surface: health and readiness, admin stats (`/v1/stats`, `/v1/stats/rooms` and
//! their legacy twins under `/api/v1/stats/`), and a room's presence over HTTP.
//!
//! Other test files run against the same relay at the same time, so totals are only checked
//! to include this test's own sockets, and per-room numbers only for this test's own rooms.
//! Rooms report to the stats debounced (about a second), hence the polling.

use relay_e2e::backend::*;
use relay_e2e::http::{self, ReqAuth};
use relay_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long stats may take to reflect a change.
const STATS_WAIT: Duration = Duration::from_secs(5);
/// How long a room may take to drop out after its last connection closed.
const DROP_WAIT: Duration = Duration::from_secs(10);

const ROOM_LISTS: [&str; 2] = ["/v1/stats/rooms", "/api/v1/stats/rooms"];
const TOTALS: [&str; 2] = ["/v1/stats", "/api/v1/stats/connections"];

/// Polls both room lists until `room`'s entry has `connections` and `users`; returns the
/// entry from `/v1/stats/rooms`.
async fn wait_for_entry(room: &str, connections: u64, users: u64) -> Value {
    let mut first = None;
    for path in ROOM_LISTS {
        let last_cell = RefCell::new(None);
        let last = &last_cell;
        let got = poll(STATS_WAIT, || async move {
            let e = stats_entry(&admin_get(path).await, room);
            last.replace(e.clone());
            e.filter(|e| e["connections"] == connections && e["users"] == users)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{path}: {room} never showed connections {connections}, users {users} within \
                 {STATS_WAIT:?}; last entry: {:?}",
                last_cell.borrow()
            )
        });
        first.get_or_insert(got);
    }
    first.expect("two lists polled")
}

/// Polls both room lists until `room` is no longer listed.
async fn wait_for_absence(room: &str) {
    for path in ROOM_LISTS {
        let last_cell = RefCell::new(None);
        let last = &last_cell;
        let gone = poll(DROP_WAIT, || async move {
            let e = stats_entry(&admin_get(path).await, room);
            let gone = e.is_none();
            last.replace(e);
            gone.then_some(())
        })
        .await;
        assert!(
            gone.is_some(),
            "{path}: {room} still listed {DROP_WAIT:?} after its last connection closed: {:?}",
            last_cell.borrow()
        );
    }
}

// ---- health ----------------------------------------------------------------------------

#[tokio::test]
async fn health_answers_get_and_head_without_auth() {
    let r = http::get("/health", &ReqAuth::None).await;
    r.assert_status(200);
    assert_eq!(r.json()["status"], "ok", "{}", r.body);
    let r = send_bytes(Method::HEAD, "/health", None, &[]).await;
    r.assert_status(200);
    assert!(r.body.is_empty(), "HEAD has no body: {:?}", r.body);
}

#[tokio::test]
async fn readiness_checks_d1() {
    for auth in [ReqAuth::None, ReqAuth::Bearer("junk".into())] {
        let r = http::get("/health/ready", &auth).await;
        r.assert_status(200);
        let v = r.json();
        assert_eq!(v["status"], "ok", "readiness: {v}");
        assert_eq!(v["checks"]["d1"], "ok", "readiness checks: {v}");
        let ct = r.header("content-type").unwrap_or_default();
        assert!(ct.contains("application/json"), "content-type {ct:?}");
    }
}

// ---- stats -----------------------------------------------------------------------------

#[tokio::test]
async fn stats_need_the_admin_secret() {
    let room = unique_room("e2e:stats");
    let auths = [
        ("no credentials", ReqAuth::None),
        (
            "wrong secret",
            ReqAuth::Bearer(format!("{}x", admin_secret())),
        ),
        ("webhook secret", ReqAuth::Bearer(webhook_secret())),
        (
            "a user JWT granting every room",
            ReqAuth::Bearer(token("nosy").rooms(["*"]).mint()),
        ),
        ("admin secret as ?token=", ReqAuth::Query(admin_secret())),
    ];
    let mut paths: Vec<String> = TOTALS
        .iter()
        .chain(&ROOM_LISTS)
        .map(|p| p.to_string())
        .collect();
    paths.push(room_path(&room, "presence"));
    for path in &paths {
        for (what, a) in &auths {
            if path.ends_with("/presence") && what.starts_with("a user JWT") {
                continue; // a JWT granting the room may read its presence
            }
            let r = http::get(path, a).await;
            assert_eq!(r.status, 401, "{path}, {what}: {} {}", r.status, r.body);
            r.assert_error(401, "unauthorized");
        }
    }
}

/// Once the connections have been reported, nothing about presence changes any more: the
/// room's later publishes alone must still reach `last_seq` (through the archive run).
#[tokio::test]
async fn last_seq_follows_publishes_after_the_connections_were_reported() {
    let room = unique_room("e2e:stats-seq");
    let carol = User::new("carol", "Carol", "customer");
    let (mut c, _) = Client::join_as(&room, &carol).await;
    let before = wait_for_entry(&room, 1, 1).await;
    assert_eq!(before["last_seq"], 0, "nothing published yet: {before}");
    // Past the report debounce, so that the next report is not one already pending.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    c.publish_acked("q-1", None, &json!({"text": "one"})).await;
    c.publish_acked("q-2", None, &json!({"text": "two"})).await;
    let room_ref = room.as_str();
    let shown = poll(STATS_WAIT, || async move {
        stats_entry(&admin_get("/v1/stats/rooms").await, room_ref).filter(|e| e["last_seq"] == 2)
    })
    .await;
    assert!(
        shown.is_some(),
        "last_seq 2 never reached the stats of {room}"
    );
}

#[tokio::test]
async fn room_stats_count_connections_and_distinct_users() {
    let room = unique_room("e2e:stats");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let (mut a1, _) = Client::join_as(&room, &alice).await;
    let (a2, _) = Client::join_as(&room, &alice).await;
    let (b1, _) = Client::join_as(&room, &bob).await;
    a1.publish_acked("s-1", None, &json!({"text": "one"})).await;
    a1.publish_acked("s-2", None, &json!({"text": "two"})).await;

    let e = wait_for_entry(&room, 3, 2).await;
    assert_eq!(e["room"], room.as_str());
    // last_seq follows the room (it may lag by the debounce, so poll for it).
    let room_ref = room.as_str();
    let with_seq = poll(STATS_WAIT, || async move {
        stats_entry(&admin_get("/v1/stats/rooms").await, room_ref).filter(|e| e["last_seq"] == 2)
    })
    .await;
    assert!(with_seq.is_some(), "last_seq 2 never shown; entry was {e}");

    // Totals include at least this test's sockets and room.
    for path in TOTALS {
        let (conns, rooms) = totals(path).await;
        assert!(conns >= 3, "{path}: connections {conns} < our 3 sockets");
        assert!(rooms >= 1, "{path}: rooms {rooms} < our 1 room");
    }
    // The totals are consistent with the room list taken together.
    let list = admin_get("/v1/stats/rooms").await;
    let listed: u64 = list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| u64_field(e, "connections"))
        .sum();
    assert!(
        listed >= 3,
        "room list sums to {listed} connections: {list}"
    );

    // One of Alice's two tabs closes: still two users.
    a2.close().await;
    wait_for_entry(&room, 2, 2).await;
    // Bob leaves: one user, one connection.
    b1.close().await;
    wait_for_entry(&room, 1, 1).await;
    // The last one leaves: the room drops out of the list.
    a1.close().await;
    wait_for_absence(&room).await;
}

#[tokio::test]
async fn a_dropped_connection_leaves_the_stats() {
    let room = unique_room("e2e:stats");
    let carol = User::anonymous("carol");
    let (c, _) = Client::join_as(&room, &carol).await;
    wait_for_entry(&room, 1, 1).await;
    // No close handshake: the TCP connection just goes away.
    c.abort();
    wait_for_absence(&room).await;
}

#[tokio::test]
async fn rooms_without_connections_are_not_listed() {
    // A room that has messages but never had a socket.
    let room = unique_room("e2e:stats");
    assert_eq!(broadcast_ok(&[&room], "ev", &json!(1), None).await, vec![1]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for path in ROOM_LISTS {
        assert!(
            stats_entry(&admin_get(path).await, &room).is_none(),
            "{path} lists {room} without connections"
        );
    }
}

/// The directory shard of a room as the relay picks it (FNV-1a 64 of the name, modulo 16),
/// so that the test can say it spread its rooms over many shards.
fn directory_shard(room: &str) -> u64 {
    let hash = room.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % 16
}

#[tokio::test]
async fn rooms_on_every_directory_shard_are_listed_and_counted_together() {
    let rooms: Vec<String> = (0..24).map(|_| unique_room("e2e:stats-shards")).collect();
    let shards: BTreeSet<u64> = rooms.iter().map(|r| directory_shard(r)).collect();
    assert!(shards.len() >= 8, "24 rooms over {} shards", shards.len());
    let mut clients = Vec::new();
    for room in &rooms {
        clients.push(Client::join_as(room, &User::anonymous("sharded")).await.0);
    }
    let rooms_ref = &rooms;
    let listed = poll(STATS_WAIT, || async move {
        let list = admin_get("/v1/stats/rooms").await;
        rooms_ref
            .iter()
            .all(|room| stats_entry(&list, room).is_some_and(|e| e["connections"] == 1))
            .then_some(list)
    })
    .await;
    assert!(listed.is_some(), "not every room of every shard was listed");
    for path in TOTALS {
        let (conns, listed_rooms) = totals(path).await;
        assert!(
            conns >= 24 && listed_rooms >= 24,
            "{path}: {conns} connections, {listed_rooms} rooms"
        );
    }
    drop(clients);
}

// ---- presence over HTTP ----------------------------------------------------------------

/// The user ids of a presence answer `{"room","users":[...],"connections"}`, checked.
fn presence_answer(v: &Value, room: &str) -> (Vec<String>, u64) {
    assert_eq!(v["room"], room, "presence.room in {v}");
    let users = v["users"]
        .as_array()
        .unwrap_or_else(|| panic!("presence.users must be an array: {v}"));
    let mut ids: Vec<String> = users
        .iter()
        .map(|u| str_field(u, "id").to_string())
        .collect();
    ids.sort();
    (ids, u64_field(v, "connections"))
}

#[tokio::test]
async fn presence_lists_the_users_of_a_room() {
    let room = unique_room("e2e:presence-http");
    let dana = User::new("dana", "Dana", "operator");
    let eve = User::anonymous("eve");
    let (_d1, _) = Client::join_as(&room, &dana).await;
    let (_d2, _) = Client::join_as(&room, &dana).await;
    let (_e1, _) = Client::join_as(&room, &eve).await;
    let path = room_path(&room, "presence");
    let mut want = vec![dana.id.clone(), eve.id.clone()];
    want.sort();

    // A JWT granting the room (here by prefix) and the admin bearer both may read it.
    let viewer = token("viewer").rooms(["e2e:presence-http:*"]).mint();
    for (what, a) in [
        ("user JWT", ReqAuth::Bearer(viewer.clone())),
        ("user JWT as ?token=", ReqAuth::Query(viewer)),
        ("admin secret", admin_auth()),
    ] {
        let r = http::get(&path, &a).await;
        assert_eq!(r.status, 200, "{what}: {} {}", r.status, r.body);
        let (ids, conns) = presence_answer(r.json(), &room);
        assert_eq!(ids, want, "{what}: users in {}", r.body);
        assert_eq!(conns, 3, "{what}: connections in {}", r.body);
        for u in r.json()["users"].as_array().unwrap() {
            if u["id"] == dana.id.as_str() {
                assert_user(u, &dana, "presence user");
            }
        }
    }

    // A token for other rooms is refused.
    let stranger = token("stranger").rooms(["e2e:other:*"]).mint();
    let r = http::get(&path, &ReqAuth::Bearer(stranger)).await;
    r.assert_error(403, "forbidden");

    // An empty room: no users, no connections.
    let empty = unique_room("e2e:presence-http");
    let r = http::get(&room_path(&empty, "presence"), &admin_auth()).await;
    r.assert_status(200);
    assert_eq!(presence_answer(r.json(), &empty), (vec![], 0), "{}", r.body);
}
