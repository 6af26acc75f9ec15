//! Room members (`PUT/GET /v1/rooms/{room}/members`, webhook secret) and per-user feeds:
//! every message persisted in a room with members produces a persisted `room.update` message
//! in each member's personal room `user:<id>`, coalesced to about one per second per room,
//! newest state winning, and another one when the member's read marker moves.

use relay_e2e::backend::*;
use relay_e2e::http::ReqAuth;
use relay_e2e::*;
use serde_json::{json, Value};
use std::time::Duration;

/// How long a test waits for a coalesced update to show up.
const UPDATE_WAIT: Duration = Duration::from_secs(5);
/// Longer than the coalescing interval: after this, no pending update can still be on its way.
const SETTLE: Duration = Duration::from_millis(2500);

/// A member: their personal-room socket, and (when asked) a socket in a room, both on one
/// token granting `grant` (the personal room is always granted).
struct Member {
    user: User,
    token: String,
    feed: Client,
    room: Option<Client>,
}

impl Member {
    async fn new(prefix: &str, name: &str, role: &str, grant: &str, join: Option<&str>) -> Member {
        let user = User::new(prefix, name, role);
        let token = user.token(&[grant]);
        let (feed, w) = Client::join(&user_room(&user.id), &token).await;
        assert_welcome(&w, &user_room(&user.id), &user);
        let room_socket = match join {
            Some(room) => {
                let (c, w) = Client::join(room, &token).await;
                assert_welcome(&w, room, &user);
                Some(c)
            }
            None => None,
        };
        Member {
            user,
            token,
            feed,
            room: room_socket,
        }
    }

    fn id(&self) -> &str {
        &self.user.id
    }

    fn in_room(&mut self) -> &mut Client {
        self.room.as_mut().expect("this member joined the room")
    }
}

#[tokio::test]
async fn members_can_be_set_and_read_with_the_webhook_secret() {
    let room = unique_room("e2e:members");
    let r = get_members(&room, &webhook_auth()).await;
    r.assert_status(200);
    assert_eq!(r.json()["room"], room.as_str());
    assert!(
        member_ids(r.json()).is_empty(),
        "no members yet: {}",
        r.body
    );

    let list = json!([{"id": "cust-1", "role": "customer"}, {"id": "mgr-1", "role": "manager"}]);
    let r = put_members(&room, &list, &webhook_auth()).await;
    r.assert_status(200);
    assert_eq!(r.json()["room"], room.as_str(), "PUT answer: {}", r.body);
    assert_eq!(r.json()["members"], list, "PUT answer lists the members");
    let r = get_members(&room, &webhook_auth()).await;
    r.assert_status(200);
    assert_eq!(r.json()["room"], room.as_str());
    assert_eq!(r.json()["members"], list, "GET lists them: {}", r.body);

    // The wrapped form replaces the list; a member without a role has none.
    let wrapped = json!({"members": [{"id": "cust-1", "role": "customer"}, {"id": "mgr-2"}]});
    let r = put_members(&room, &wrapped, &webhook_auth()).await;
    r.assert_status(200);
    let r = get_members(&room, &webhook_auth()).await;
    assert_eq!(member_ids(r.json()), ["cust-1", "mgr-2"], "{}", r.body);
    assert_eq!(r.json()["members"][0]["role"], "customer");
    assert!(
        r.json()["members"][1]
            .get("role")
            .is_none_or(Value::is_null),
        "no role given: {}",
        r.body
    );

    // An empty list clears the members.
    let r = put_members(&room, &json!([]), &webhook_auth()).await;
    r.assert_status(200);
    assert!(member_ids(get_members(&room, &webhook_auth()).await.json()).is_empty());
}

#[tokio::test]
async fn members_need_the_webhook_secret() {
    let room = unique_room("e2e:members");
    set_members(&room, &["keep-1"]).await;
    let user_jwt = token("keep-1").rooms(["*"]).mint();
    let auths = [
        ("no credentials", ReqAuth::None),
        ("wrong secret", ReqAuth::Bearer("wrong".into())),
        ("admin secret", ReqAuth::Bearer(admin_secret())),
        ("a user JWT granting the room", ReqAuth::Bearer(user_jwt)),
    ];
    for (what, a) in &auths {
        let r = put_members(&room, &json!([{"id": "intruder"}]), a).await;
        assert_eq!(r.status, 401, "PUT, {what}: {} {}", r.status, r.body);
        r.assert_error(401, "unauthorized");
        let r = get_members(&room, a).await;
        assert_eq!(r.status, 401, "GET, {what}: {} {}", r.status, r.body);
        r.assert_error(401, "unauthorized");
    }
    let r = get_members(&room, &webhook_auth()).await;
    assert_eq!(member_ids(r.json()), ["keep-1"], "unchanged: {}", r.body);
}

#[tokio::test]
async fn invalid_member_lists_are_400() {
    let room = unique_room("e2e:members");
    set_members(&room, &["keep-1"]).await;
    for (what, body) in [
        ("not a list", json!({"id": "x"})),
        ("a list of strings", json!(["x", "y"])),
        ("an entry without id", json!([{"role": "manager"}])),
        ("an empty id", json!([{"id": ""}])),
        ("a repeated id", json!([{"id": "x"}, {"id": "x"}])),
    ] {
        let r = put_members(&room, &body, &webhook_auth()).await;
        assert_eq!(r.status, 400, "{what}: {} {}", r.status, r.body);
        r.assert_error(400, "bad_request");
    }
    let r = get_members(&room, &webhook_auth()).await;
    assert_eq!(member_ids(r.json()), ["keep-1"], "unchanged: {}", r.body);
}

#[tokio::test]
async fn dialog_members_get_coalesced_updates_with_unread_counts() {
    let dialog = unique_room("dialog");
    // A's token grants `dialog:*`, B's and C's the exact room.
    let mut a = Member::new("a", "Anna", "customer", "dialog:*", Some(&dialog)).await;
    let mut b = Member::new("b", "Boris", "manager", &dialog, Some(&dialog)).await;
    let mut c = Member::new("c", "Carl", "supervisor", &dialog, Some(&dialog)).await;
    set_members(&dialog, &[a.id(), b.id(), c.id()]).await;

    // A sends two messages, B one, in a burst.
    let burst_start = tokio::time::Instant::now();
    let long_text = "ю".repeat(150);
    let s1 = a
        .in_room()
        .publish_acked("a-1", None, &json!({"text": long_text}))
        .await;
    let s2 = a
        .in_room()
        .publish_acked("a-2", None, &json!({"text": "second from A"}))
        .await;
    b.in_room().recv_messages(2, DEFAULT_TIMEOUT).await;
    let s3 = b
        .in_room()
        .publish_acked("b-1", None, &json!({"text": "reply from B"}))
        .await;
    let burst = burst_start.elapsed();
    assert_eq!((s1.seq, s2.seq, s3.seq), (1, 2, 3));

    // Each member's last update carries the newest state: seq 3 and their own unread count.
    let b_id = b.user.id.clone();
    for (m, unread) in [(&mut a, 1u64), (&mut b, 2), (&mut c, 3)] {
        let personal = user_room(m.id());
        let seen = updates_until(&mut m.feed, &dialog, UPDATE_WAIT, |d| d["seq"] == 3).await;
        // Give a straggler (the coalesced tail) time to arrive, then take the newest.
        let mut tail = updates_for(&mut m.feed, &dialog, SETTLE).await;
        let mut all = seen;
        all.append(&mut tail);
        let last = all.last().expect("at least one update");
        let d = assert_update(last, &personal, &dialog);
        assert_eq!(d["seq"], 3, "{}: newest update {last}", m.id());
        assert_eq!(
            d["unread"],
            unread,
            "{}: unread in the newest update {last}; all: {all:#?}",
            m.id()
        );
        assert_eq!(d["event"], "message", "{last}");
        assert_eq!(d["from"]["id"], b_id.as_str(), "{last}");
        assert_eq!(d["preview"], "reply from B", "{last}");
        // Coalesced: a burst of three messages gives at most a few updates, seqs ascending.
        let seqs: Vec<u64> = all.iter().map(|u| u64_field(&u["data"], "seq")).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] <= w[1]),
            "{}: update seqs must not go back: {seqs:?}",
            m.id()
        );
        if burst < Duration::from_millis(500) {
            assert!(
                all.len() <= 2,
                "{}: three messages within {burst:?} must be coalesced (at most one update \
                 per second), got {all:#?}",
                m.id()
            );
        }
        // The personal room's own seqs count up like any room's.
        let own: Vec<u64> = all.iter().map(|u| u64_field(u, "seq")).collect();
        assert!(own.windows(2).all(|w| w[1] == w[0] + 1), "{own:?}");
        // No other feed traffic (the dialog's own messages never land in personal rooms).
        assert!(
            m.feed.backlog().iter().all(|v| ty(v) != "message"),
            "{}: unexpected frames in the personal room: {:?}",
            m.id(),
            m.feed.backlog()
        );
    }

    // C reads up to 3: C's next update says unread 0.
    c.in_room()
        .send_json(&json!({"type": "read", "seq": 3}))
        .await;
    let seen = updates_until(&mut c.feed, &dialog, UPDATE_WAIT, |d| d["unread"] == 0).await;
    let last = seen.last().expect("an update");
    let d = assert_update(last, &user_room(c.id()), &dialog);
    assert_eq!(d["seq"], 3, "the read marker does not change seq: {last}");
    // A and B are not told about C's read marker.
    for m in [&mut a, &mut b] {
        let extra = updates_for(&mut m.feed, &dialog, Duration::from_millis(1500)).await;
        assert!(
            extra.is_empty(),
            "{}: C's read must not update others: {extra:#?}",
            m.id()
        );
    }

    // The updates are persisted: C resumes them over HTTP from the personal room.
    let c_auth = ReqAuth::Bearer(c.token.clone());
    let stored = history_messages(&user_room(c.id()), &c_auth).await;
    assert!(!stored.is_empty(), "C's personal room has the updates");
    for m in &stored {
        assert_update(m, &user_room(c.id()), &dialog);
    }
    let last_stored = stored.last().unwrap();
    assert_eq!(
        last_stored, last,
        "history's last update is the one C's socket received"
    );
    assert_eq!(last_stored["data"]["unread"], 0);
    assert!(
        stored.iter().any(|m| m["data"]["unread"] == 3),
        "the unread-3 state is in C's history: {stored:#?}"
    );
    // Another member's token does not open C's personal room.
    let r = http::history(&user_room(c.id()), "", &ReqAuth::Bearer(a.token.clone())).await;
    r.assert_error(403, "forbidden");
}

#[tokio::test]
async fn update_preview_is_the_first_100_characters_of_text() {
    let room = unique_room("e2e:preview");
    let member = User::new("m", "Mia", "manager");
    let (mut feed, _) = Client::join(&user_room(&member.id), &member.token(&[])).await;
    let sender = User::new("s", "Sam", "customer");
    set_members(&room, &[&member.id]).await;
    let auth = ReqAuth::Bearer(sender.token(&[&room]));

    // Multi-byte characters: the preview is counted in characters, not bytes.
    let text: String = "Привет, мир! ".repeat(12);
    http::publish_ok(&room, &auth, &json!({"data": {"text": text, "extra": 1}})).await;
    let seen = updates_until(&mut feed, &room, UPDATE_WAIT, |d| d["seq"] == 1).await;
    let d = assert_update(seen.last().unwrap(), &user_room(&member.id), &room);
    let want: String = text.chars().take(100).collect();
    assert_eq!(d["preview"], want.as_str(), "preview of a long text");
    assert_eq!(d["unread"], 1);
    assert_eq!(d["from"]["id"], sender.id.as_str());
    assert_eq!(d["from"]["name"], "Sam");

    // Spaced out beyond the coalescing interval, so each gets its own update.
    let cases = [
        (
            json!({"data": {"text": "short"}, "event": "chat:msg"}),
            json!("short"),
            "chat:msg",
        ),
        (
            json!({"data": {"body": "no text field"}}),
            Value::Null,
            "message",
        ),
        (json!({"data": "a bare string"}), Value::Null, "message"),
    ];
    for (i, (body, preview, event)) in cases.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let seq = i as u64 + 2;
        http::publish_ok(&room, &auth, body).await;
        let seen = updates_until(&mut feed, &room, UPDATE_WAIT, |d| d["seq"] == seq).await;
        let d = assert_update(seen.last().unwrap(), &user_room(&member.id), &room);
        assert_eq!(&d["preview"], preview, "preview for {body}");
        assert_eq!(d["event"], *event, "event for {body}");
        assert_eq!(d["unread"], seq, "unread for {body}");
    }

    // A backend broadcast counts too: from null.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    broadcast_ok(&[&room], "chat:system", &json!({"text": "closed"}), None).await;
    let seen = updates_until(&mut feed, &room, UPDATE_WAIT, |d| d["seq"] == 5).await;
    let d = assert_update(seen.last().unwrap(), &user_room(&member.id), &room);
    assert_eq!(d["from"], Value::Null, "{d}");
    assert_eq!(d["event"], "chat:system");
    assert_eq!(d["preview"], "closed");
    assert_eq!(d["unread"], 5);
}

#[tokio::test]
async fn a_room_without_members_produces_no_updates() {
    let room = unique_room("e2e:nomembers");
    let user = User::new("u", "Una", "customer");
    let token = user.token(&[&room]);
    let (mut feed, _) = Client::join(&user_room(&user.id), &token).await;
    let other = User::new("o", "Otto", "customer");
    http::publish_ok(
        &room,
        &ReqAuth::Bearer(other.token(&[&room])),
        &json!({"data": {"text": "hi"}}),
    )
    .await;
    feed.expect_no_message(SETTLE).await;
    let stored = history_messages(&user_room(&user.id), &ReqAuth::Bearer(token)).await;
    assert!(stored.is_empty(), "{stored:?}");
}

#[tokio::test]
async fn replaced_manager_stops_getting_updates() {
    let room = unique_room("support");
    let mut customer = Member::new("cust", "Kate", "customer", &room, Some(&room)).await;
    let mut m1 = Member::new("mgr1", "Max", "manager", &room, None).await;
    let mut m2 = Member::new("mgr2", "Nina", "manager", &room, None).await;
    set_members(&room, &[customer.id(), m1.id()]).await;

    customer
        .in_room()
        .publish_acked("c-1", None, &json!({"text": "where is my order?"}))
        .await;
    let seen = updates_until(&mut m1.feed, &room, UPDATE_WAIT, |d| d["seq"] == 1).await;
    let d = assert_update(seen.last().unwrap(), &user_room(m1.id()), &room);
    assert_eq!(d["unread"], 1);
    assert_eq!(d["preview"], "where is my order?");
    // Let any coalesced tail for seq 1 arrive before the replacement.
    updates_for(&mut m1.feed, &room, SETTLE).await;
    m2.feed.expect_no_message(Duration::ZERO).await;

    // The backend reassigns the dialog and tells the room.
    set_members(&room, &[customer.id(), m2.id()]).await;
    let note = json!({"from": m1.id(), "to": m2.id()});
    assert_eq!(
        broadcast_ok(&[&room], "chat:reassigned", &note, None).await,
        vec![2]
    );
    let m = customer
        .in_room()
        .recv_messages(1, DEFAULT_TIMEOUT)
        .await
        .remove(0);
    assert_backend_message(&m, &room, "chat:reassigned", &note);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    customer
        .in_room()
        .publish_acked("c-2", None, &json!({"text": "hello?"}))
        .await;
    let seen = updates_until(&mut m2.feed, &room, UPDATE_WAIT, |d| d["seq"] == 3).await;
    let d = assert_update(seen.last().unwrap(), &user_room(m2.id()), &room);
    assert_eq!(d["preview"], "hello?");
    assert_eq!(d["from"]["id"], customer.id());
    // manager2 never read anything: both the broadcast and the customer's message count.
    assert_eq!(d["unread"], 3, "{d}");

    // manager1 gets nothing after the replacement.
    let after = updates_for(&mut m1.feed, &room, SETTLE).await;
    assert!(
        after.is_empty(),
        "a replaced manager must get no updates: {after:#?}"
    );
    m1.feed.expect_no_message(Duration::ZERO).await;
    let stored = history_messages(&user_room(m1.id()), &ReqAuth::Bearer(m1.token.clone())).await;
    assert!(
        stored.iter().all(|u| u["data"]["seq"] == 1),
        "manager1's feed holds only the seq-1 state: {stored:#?}"
    );
    // The customer, a member all along, has updates up to seq 3 (own messages not unread).
    let seen = updates_until(&mut customer.feed, &room, UPDATE_WAIT, |d| d["seq"] == 3).await;
    let d = assert_update(seen.last().unwrap(), &user_room(customer.id()), &room);
    assert_eq!(
        d["unread"], 1,
        "only the broadcast is unread for the customer: {d}"
    );
}
