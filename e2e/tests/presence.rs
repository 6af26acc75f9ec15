//! Presence per user, not per tab: `join` on a user's first connection, `leave` only after
//! their last connection closed and a grace of 2 s (`LEAVE_GRACE_MS`) passed without a
//! reconnect, with `last_seen`; `welcome.presence` lists who is online; presence survives
//! the room hibernating.

use relay_e2e::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// The server waits the 2 s grace (about 2.05 s) before announcing a leave. A leave earlier
/// than this after the close started is a bug; the small margin covers the time the close
/// takes to reach the server.
const MIN_LEAVE_DELAY: Duration = Duration::from_millis(1900);
/// A leave must have arrived by then: the grace plus generous slack for a loaded machine.
const MAX_LEAVE_DELAY: Duration = Duration::from_millis(4500);
/// How long to keep listening for a late leave (to tell "late" from "never" in a failure).
const LEAVE_LISTEN: Duration = Duration::from_secs(10);

/// Waits for `who`'s leave on `c` and checks its shape, timing (relative to `closed_at`) and
/// `last_seen`. Returns the leave frame.
async fn expect_leave(c: &mut Client, who: &User, closed_at: Instant, ctx: &str) -> Value {
    let started = chrono::Utc::now() - chrono::Duration::from_std(closed_at.elapsed()).unwrap();
    let leave = c
        .take_first(
            |v| is_presence_of(v, "leave", who),
            closed_at + LEAVE_LISTEN,
        )
        .await
        .unwrap_or_else(|| {
            panic!(
                "{ctx}: no presence leave for {} within {LEAVE_LISTEN:?} of the close; \
                 frames seen: {:?}",
                who.id,
                c.backlog()
            )
        });
    let after = closed_at.elapsed();
    assert!(
        after >= MIN_LEAVE_DELAY,
        "{ctx}: leave for {} arrived {after:?} after the last connection started closing; \
         it must wait the 2 s grace: {leave}",
        who.id
    );
    assert!(
        after <= MAX_LEAVE_DELAY,
        "{ctx}: leave for {} arrived only {after:?} after the last connection started \
         closing; expected about 2 s (at most {MAX_LEAVE_DELAY:?}): {leave}",
        who.id
    );
    assert_user(&leave["user"], who, &format!("{ctx}: leave.user"));
    let last_seen = assert_rfc3339_utc(
        leave
            .get("last_seen")
            .unwrap_or_else(|| panic!("{ctx}: leave must carry last_seen: {leave}")),
        &format!("{ctx}: leave.last_seen"),
    );
    // last_seen is about when the user was last connected: not before the close started
    // (minus clock slack) and not after the leave arrived (plus slack).
    let now = chrono::Utc::now();
    assert!(
        last_seen >= started - chrono::Duration::seconds(2)
            && last_seen <= now + chrono::Duration::seconds(1),
        "{ctx}: leave.last_seen {last_seen} should lie between the close ({started}) and the \
         leave's arrival ({now}): {leave}"
    );
    leave
}

/// Takes `who`'s join from `c` within the default timeout.
async fn expect_join(c: &mut Client, who: &User, ctx: &str) -> Value {
    let join = c
        .take_first(
            |v| is_presence_of(v, "join", who),
            Instant::now() + DEFAULT_TIMEOUT,
        )
        .await
        .unwrap_or_else(|| {
            panic!(
                "{ctx}: no presence join for {}; frames seen: {:?}",
                who.id,
                c.backlog()
            )
        });
    assert_user(&join["user"], who, &format!("{ctx}: join.user"));
    join
}

/// The ids in `welcome.presence`, checked to be without duplicates (one entry per user).
fn presence_set(welcome: &Value) -> BTreeSet<String> {
    let ids = presence_ids(welcome);
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(
        set.len(),
        ids.len(),
        "welcome.presence lists users, each once: {welcome}"
    );
    set
}

/// The entry for `who` in `welcome.presence`, checked against the token's name and role.
fn assert_listed(welcome: &Value, who: &User) {
    let entry = welcome["presence"]
        .as_array()
        .unwrap_or_else(|| panic!("welcome.presence must be an array: {welcome}"))
        .iter()
        .find(|p| p["id"] == who.id.as_str())
        .unwrap_or_else(|| panic!("welcome.presence must list {}: {welcome}", who.id));
    assert_user(entry, who, "welcome.presence entry");
}

#[tokio::test]
async fn welcome_presence_lists_online_users_with_name_and_role() {
    let room = unique_room("e2e:presence");
    let alice = User::new("alice", "Alice", "customer");
    let anon = User::anonymous("anon");
    let bob = User::new("bob", "Bob", "manager");
    let (a, wa) = Client::join(&room, &alice.token(&[room.as_str()])).await;
    assert_welcome(&wa, &room, &alice);
    assert_eq!(presence_set(&wa), BTreeSet::from([alice.id.clone()]));
    let (n, wn) = Client::join(&room, &anon.token(&[room.as_str()])).await;
    assert_welcome(&wn, &room, &anon);
    let (a2, wa2) = Client::join(&room, &alice.token(&[room.as_str()])).await;
    assert_welcome(&wa2, &room, &alice);
    let (b, wb) = Client::join(&room, &bob.token(&[room.as_str()])).await;
    assert_welcome(&wb, &room, &bob);
    assert_eq!(
        presence_set(&wb),
        BTreeSet::from([alice.id.clone(), anon.id.clone(), bob.id.clone()]),
        "bob's welcome lists every online user once (alice has two tabs)"
    );
    assert_listed(&wb, &alice);
    assert_listed(&wb, &anon);
    assert_listed(&wb, &bob);
    for c in [a, n, a2, b] {
        c.close().await;
    }
}

#[tokio::test]
async fn two_tabs_one_join_and_one_leave_after_the_grace() {
    let room = unique_room("e2e:presence");
    let obs = User::new("obs", "Observer", "viewer");
    let alice = User::new("alice", "Alice", "customer");
    let (mut o, _) = Client::join_as(&room, &obs).await;

    let (mut a1, w1) = Client::join(&room, &alice.token(&[room.as_str()])).await;
    assert_welcome(&w1, &room, &alice);
    assert!(presence_set(&w1).contains(&obs.id), "{w1}");
    expect_join(&mut o, &alice, "first tab").await;

    let (a2, w2) = Client::join(&room, &alice.token(&[room.as_str()])).await;
    assert_welcome(&w2, &room, &alice);
    assert_eq!(
        presence_set(&w2),
        BTreeSet::from([obs.id.clone(), alice.id.clone()])
    );
    // The first tab does not hear about its own user's second tab either.
    o.expect_none("presence frame for alice's second tab", SILENCE, |v| {
        is_any_presence_of(v, &alice)
    })
    .await;
    a1.expect_none(
        "presence frame about alice's own second tab",
        Duration::from_millis(200),
        |v| is_any_presence_of(v, &alice),
    )
    .await;

    // Closing one tab of two: no leave, not even after the grace.
    a1.close().await;
    o.expect_none(
        "presence leave while alice still has a tab",
        Duration::from_millis(3000),
        |v| is_any_presence_of(v, &alice),
    )
    .await;

    // Closing the last tab: the leave comes only after the grace.
    let closed_at = Instant::now();
    a2.close().await;
    o.expect_none(
        "presence leave before the 2 s grace ended",
        Duration::from_millis(1500),
        |v| is_presence_of(v, "leave", &alice),
    )
    .await;
    expect_leave(&mut o, &alice, closed_at, "last tab closed").await;
    // Exactly one leave.
    o.expect_none("a second leave for alice", SILENCE, |v| {
        is_any_presence_of(v, &alice)
    })
    .await;

    // Afterwards alice is not listed any more.
    let carol = User::new("carol", "Carol", "viewer");
    let (c, wc) = Client::join(&room, &carol.token(&[room.as_str()])).await;
    assert_eq!(
        presence_set(&wc),
        BTreeSet::from([obs.id.clone(), carol.id.clone()]),
        "alice left: {wc}"
    );
    c.close().await;
    o.close().await;
}

#[tokio::test]
async fn quick_reconnect_within_the_grace_is_invisible_to_others() {
    let room = unique_room("e2e:presence");
    let obs = User::new("obs", "Observer", "viewer");
    let alice = User::new("alice", "Alice", "customer");
    let (mut o, _) = Client::join_as(&room, &obs).await;
    let (a, _) = Client::join_as(&room, &alice).await;
    expect_join(&mut o, &alice, "alice connects").await;

    // A page reload: the only tab closes, a new one opens 300 ms later.
    a.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (a, wa) = Client::join(&room, &alice.token(&[room.as_str()])).await;
    assert_welcome(&wa, &room, &alice);
    assert!(presence_set(&wa).contains(&obs.id));
    o.expect_none(
        "presence frame for alice after a reconnect within the grace",
        Duration::from_secs(4),
        |v| is_any_presence_of(v, &alice),
    )
    .await;

    // Alice is still listed for newcomers, once.
    let carol = User::new("carol", "Carol", "viewer");
    let (c, wc) = Client::join(&room, &carol.token(&[room.as_str()])).await;
    assert_eq!(
        presence_set(&wc),
        BTreeSet::from([obs.id.clone(), alice.id.clone(), carol.id.clone()])
    );
    expect_join(&mut o, &carol, "carol connects").await;

    // The real departure is still announced, once, after the grace.
    let closed_at = Instant::now();
    a.close().await;
    expect_leave(&mut o, &alice, closed_at, "alice leaves for good").await;
    o.expect_none("a second presence frame for alice", SILENCE, |v| {
        is_any_presence_of(v, &alice)
    })
    .await;
    c.close().await;
    o.close().await;
}

/// A join may wait up to 250 ms for company, but never behind a later frame: the joiner's
/// first frames (a typing signal, which has no ack, then a message) reach the others after its
/// join. A socket accepted while that join waits lists the joiner in its welcome and never
/// gets the join.
#[tokio::test]
async fn a_waiting_join_leaves_before_the_joiners_first_frames_and_not_to_later_sockets() {
    let room = unique_room("e2e:presence");
    let obs = User::new("obs", "Observer", "viewer");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "viewer");
    let (mut o, _) = Client::join_as(&room, &obs).await;

    let (mut a, _) = Client::join_as(&room, &alice).await;
    let (mut b, wb) = Client::join(&room, &bob.token(&[room.as_str()])).await;
    assert!(
        presence_set(&wb).contains(&alice.id),
        "bob's welcome lists alice, who connected first: {wb}"
    );
    a.send_json(&serde_json::json!({"type": "typing", "active": true}))
        .await;
    let stamp = a
        .publish_acked("first", None, &serde_json::json!("hello"))
        .await;

    let mut frames = Vec::new();
    while !frames.iter().any(|f: &Value| ty(f) == "message") {
        frames.push(o.recv_json().await);
    }
    let kinds: Vec<String> = frames
        .iter()
        .filter(|f| !is_presence_of(f, "join", &bob))
        .map(|f| match ty(f) {
            "presence" => format!("{}:{}", str_field(f, "event"), str_field(&f["user"], "id")),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            format!("join:{}", alice.id),
            "typing".into(),
            "message".into()
        ],
        "the observer gets alice's join, then her typing, then her message: {frames:?}"
    );
    assert_eq!(u64_field(&frames[frames.len() - 1], "seq"), stamp.seq);

    let message = b.recv_until("message").await;
    assert_eq!(
        u64_field(&message, "seq"),
        stamp.seq,
        "bob gets alice's message"
    );
    b.expect_none(
        "alice's join, although bob's welcome listed her",
        SILENCE,
        |v| is_presence_of(v, "join", &alice),
    )
    .await;
    assert!(
        !b.backlog()
            .iter()
            .any(|v| is_presence_of(v, "join", &alice)),
        "bob passed over alice's join: {:?}",
        b.backlog()
    );
    a.close().await;
    b.close().await;
    o.close().await;
}

#[tokio::test]
async fn connection_dropped_without_close_handshake_still_leaves_after_the_grace() {
    let room = unique_room("e2e:presence");
    let obs = User::new("obs", "Observer", "viewer");
    let alice = User::new("alice", "Alice", "customer");
    let (mut o, _) = Client::join_as(&room, &obs).await;
    let (a, _) = Client::join_as(&room, &alice).await;
    expect_join(&mut o, &alice, "alice connects").await;
    let closed_at = Instant::now();
    a.abort();
    expect_leave(&mut o, &alice, closed_at, "alice's socket dropped").await;
    o.close().await;
}

/// Slow (about 16 s): idle for longer than the 10 s hibernation threshold.
#[tokio::test]
async fn presence_survives_hibernation() {
    let room = unique_room("e2e:presence-hib");
    let alice = User::new("alice", "Alice", "customer");
    let bob = User::new("bob", "Bob", "manager");
    let (mut a, _) = Client::join_as(&room, &alice).await;

    // Nothing sent in either direction for longer than hibernation takes.
    tokio::time::sleep(Duration::from_secs(12)).await;

    let (mut b, wb) = Client::join(&room, &bob.token(&[room.as_str()])).await;
    assert_welcome(&wb, &room, &bob);
    assert_eq!(
        presence_set(&wb),
        BTreeSet::from([alice.id.clone(), bob.id.clone()]),
        "alice's hibernated connection is still online: {wb}"
    );
    assert_listed(&wb, &alice);
    // The hibernated connection hears about bob.
    expect_join(&mut a, &bob, "alice hears bob's join after hibernation").await;
    b.expect_none("presence frame about alice", SILENCE, |v| {
        is_any_presence_of(v, &alice)
    })
    .await;

    let closed_at = Instant::now();
    a.close().await;
    expect_leave(&mut b, &alice, closed_at, "alice leaves after hibernation").await;
    b.close().await;
}
