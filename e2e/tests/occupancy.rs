//! Presence in big rooms: past its `PRESENCE_FULL_MAX` users a room welcomes with counts and
//! sends `occupancy` frames (at most every 2 s) instead of joins and leaves, until it empties;
//! the presence route pages its users.
//!
//! The relay gives rooms under one prefix a small limit through `PRESENCE_FULL_MAX_PREFIXES`
//! (`prefix=N`, the first entry is used here), so that a few sockets make a big room while every
//! other test keeps the default of 100.

use relay_e2e::backend::*;
use relay_e2e::http;
use relay_e2e::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// The prefix and limit of the first `PRESENCE_FULL_MAX_PREFIXES` entry.
fn small_rooms() -> (String, usize) {
    first_prefix_limit("PRESENCE_FULL_MAX_PREFIXES")
}

fn small_room() -> (String, usize) {
    let (prefix, limit) = small_rooms();
    (unique_room(&format!("{prefix}room")), limit)
}

async fn join(room: &str, who: &User) -> (Client, Value) {
    Client::join(room, &who.token(&[room])).await
}

/// The next `occupancy` frame on `c` within `within`; panics on a `presence` frame first.
async fn next_occupancy(c: &mut Client, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    let frame = c
        .take_first(|v| matches!(ty(v), "occupancy" | "presence"), deadline)
        .await
        .unwrap_or_else(|| panic!("no occupancy frame within {within:?}: {:?}", c.backlog()));
    assert_eq!(
        ty(&frame),
        "occupancy",
        "a join or leave in counts mode: {frame}"
    );
    frame
}

#[tokio::test]
async fn past_its_limit_a_room_sends_counts_instead_of_joins_and_leaves() {
    let (room, limit) = small_room();
    let users: Vec<User> = (0..=limit + 1).map(|_| User::anonymous("occ")).collect();
    let mut first = Vec::new();
    for (i, who) in users[..limit].iter().enumerate() {
        let (c, welcome) = join(&room, who).await;
        assert_eq!(presence_ids(&welcome).len(), i + 1, "list mode: {welcome}");
        first.push(c);
    }
    let mut a = first.remove(0);
    for who in &users[1..limit] {
        let join = a.take_first(
            |v| is_presence_of(v, "join", who),
            Instant::now() + DEFAULT_TIMEOUT,
        );
        assert!(join.await.is_some(), "list mode: a join for {}", who.id);
    }
    // One more user: its welcome has counts, everyone else gets counts instead of its join.
    let (_over, welcome) = join(&room, &users[limit]).await;
    assert!(welcome.get("presence").is_none(), "{welcome}");
    let n = limit as u64 + 1;
    assert_eq!(welcome["occupancy"], json!({"connections": n, "users": n}));
    let switched = next_occupancy(&mut a, Duration::from_secs(5)).await;
    assert_eq!(
        switched,
        json!({"type": "occupancy", "connections": n, "users": n})
    );
    let switched_at = Instant::now();
    // Another one, then a leave: counts again, no sooner than the interval.
    let (last, welcome) = join(&room, &users[limit + 1]).await;
    assert_eq!(welcome["occupancy"]["users"], n + 1);
    let grown = next_occupancy(&mut a, Duration::from_secs(5)).await;
    assert_eq!(grown["users"], n + 1);
    assert!(
        switched_at.elapsed() >= Duration::from_millis(1_800),
        "two occupancy frames {:?} apart",
        switched_at.elapsed()
    );
    last.close().await;
    let shrunk = next_occupancy(&mut a, Duration::from_secs(5)).await;
    assert_eq!(
        shrunk,
        json!({"type": "occupancy", "connections": n, "users": n})
    );
    // The leave grace passes without a leave frame.
    let quiet = a
        .take_first(
            |v| ty(v) == "presence",
            Instant::now() + Duration::from_secs(3),
        )
        .await;
    assert!(quiet.is_none(), "a leave in counts mode: {quiet:?}");
}

#[tokio::test]
async fn a_room_keeps_counts_until_it_empties_then_lists_again() {
    let (room, limit) = small_room();
    let mut clients = Vec::new();
    for _ in 0..=limit {
        clients.push(join(&room, &User::anonymous("occ")).await.0);
    }
    // Back at the limit: still counts.
    clients.pop().expect("a client").close().await;
    let (again, welcome) = join(&room, &User::anonymous("occ")).await;
    assert!(welcome.get("occupancy").is_some(), "{welcome}");
    clients.push(again);
    for c in clients {
        c.close().await;
    }
    // Once the last leave grace (2 s) is over, the room starts over with a list (a probe
    // sooner would itself keep the room from emptying).
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let (_c, welcome) = join(&room, &User::anonymous("occ")).await;
    assert_eq!(presence_ids(&welcome).len(), 1, "{welcome}");
}

#[tokio::test]
async fn the_presence_route_lists_a_big_room_in_pages() {
    let (room, limit) = small_room();
    let mut clients = Vec::new();
    let mut want = Vec::new();
    for _ in 0..limit + 3 {
        let who = User::anonymous("occ");
        want.push(who.id.clone());
        clients.push(join(&room, &who).await.0);
    }
    want.sort();
    let path = room_path(&room, "presence");
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..want.len() {
        let query = match &after {
            Some(id) => format!("{path}?limit=2&after={}", encode_query(id)),
            None => format!("{path}?limit=2"),
        };
        let r = http::get(&query, &admin_auth()).await;
        r.assert_status(200);
        let page = r.json();
        assert_eq!(page["connections"], want.len() as u64, "{page}");
        let users = page["users"].as_array().expect("users");
        assert!(users.len() <= 2, "{page}");
        got.extend(users.iter().map(|u| str_field(u, "id").to_string()));
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(got, want, "every user once, in id order");
    // Without parameters, a room's users in one answer, as before.
    let r = http::get(&path, &admin_auth()).await;
    assert_eq!(r.json()["users"].as_array().map(Vec::len), Some(want.len()));
    assert_eq!(r.json()["next"], Value::Null);
    http::get(&format!("{path}?limit=0"), &admin_auth())
        .await
        .assert_error(400, "bad_request");
    drop(clients);
}

#[tokio::test]
async fn other_rooms_keep_the_default_limit() {
    let room = unique_room("e2e:occupancy-default");
    let mut clients = Vec::new();
    let (_, limit) = small_rooms();
    for _ in 0..=limit + 1 {
        let (c, welcome) = join(&room, &User::anonymous("occ")).await;
        assert!(welcome.get("occupancy").is_none(), "{welcome}");
        clients.push(c);
    }
}

#[tokio::test]
async fn a_room_woken_from_hibernation_keeps_counts_for_the_sockets_it_told() {
    let (room, limit) = small_room();
    let mut clients = Vec::new();
    for _ in 0..limit {
        clients.push(join(&room, &User::anonymous("occ")).await.0);
    }
    let (over, _) = join(&room, &User::anonymous("occ")).await;
    let mut a = clients.remove(0);
    let n = limit as u64 + 1;
    for _ in 1..limit {
        let join = a.take_first(|v| ty(v) == "presence", Instant::now() + DEFAULT_TIMEOUT);
        assert!(join.await.is_some(), "list mode: a join before the switch");
    }
    let switched = next_occupancy(&mut a, Duration::from_secs(5)).await;
    assert_eq!(switched["users"], n);
    // Back at the limit once the leave grace is over; then nothing for longer than
    // hibernation takes.
    over.close().await;
    let back = next_occupancy(&mut a, Duration::from_secs(6)).await;
    assert_eq!(back["users"], n - 1);
    tokio::time::sleep(Duration::from_secs(12)).await;
    // The woken room, now under its limit, still sends counts, not a leave.
    let gone = clients.pop().expect("a second client");
    gone.close().await;
    let counted = next_occupancy(&mut a, Duration::from_secs(6)).await;
    assert_eq!(counted["users"], n - 2, "{counted}");
}
