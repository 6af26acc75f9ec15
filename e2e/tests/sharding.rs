//! Sharded fan-out: past its `SHARD_VIEWERS` sockets a room places new viewers on shards
//! (their welcome names the shard); every socket still gets every message once, in seq order;
//! viewers on different shards publish through the room and are acked in one order; a viewer
//! resumes with `since` on another shard without a gap; the presence route counts every
//! socket, the shards' too.
//!
//! The relay gives rooms under one prefix a small limit through `SHARD_VIEWERS_PREFIXES`
//! (`prefix=N`, the first entry is used here), so that a few hundred sockets spread over
//! several shards while every other room keeps the default of 10,000.

use futures_util::future::join_all;
use relay_e2e::backend::{admin_get, stats_entry};
use relay_e2e::http::{self, ReqAuth};
use relay_e2e::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The prefix and per-object limit of the first `SHARD_VIEWERS_PREFIXES` entry.
fn sharded_rooms() -> (String, usize) {
    first_prefix_limit("SHARD_VIEWERS_PREFIXES")
}

/// One connected viewer: its client, user and where it landed (`None`: the room itself).
struct Viewer {
    client: Client,
    user: User,
    shard: Option<u64>,
}

async fn join(room: &str, user: User, since: Option<u64>) -> (Viewer, Value) {
    let (client, welcome) = Client::join_with(room, &user.token(&[room]), Via::Query, since).await;
    assert_eq!(str_field(&welcome, "room"), room, "{welcome}");
    let shard = welcome
        .get("shard")
        .map(|s| s.as_u64().expect("a shard number"));
    (
        Viewer {
            client,
            user,
            shard,
        },
        welcome,
    )
}

/// Connects `count` viewers (each its own user), 25 at a time.
async fn crowd(room: &str, count: usize) -> Vec<Viewer> {
    let mut viewers = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(25) {
        let joins = chunk
            .iter()
            .map(|_| join(room, User::anonymous("shv"), None));
        viewers.extend(join_all(joins).await.into_iter().map(|(v, _)| v));
    }
    viewers
}

/// Where the viewers landed: how many on the room, how many on each shard.
fn spread(viewers: &[Viewer]) -> (usize, BTreeMap<u64, usize>) {
    let mut shards = BTreeMap::new();
    let mut own = 0;
    for v in viewers {
        match v.shard {
            Some(shard) => *shards.entry(shard).or_default() += 1,
            None => own += 1,
        }
    }
    (own, shards)
}

/// The `connections` the presence route counts, once it reaches `want` (shards report
/// within a fraction of a second); panics with the last count otherwise.
async fn connections_reach(room: &str, asker: &User, want: u64) {
    let auth = ReqAuth::Bearer(asker.token(&[room]));
    let path = room_path(room, "presence");
    let mut last = None;
    for _ in 0..50 {
        let r = http::get(&path, &auth).await;
        r.assert_status(200);
        let connections = u64_field(r.json(), "connections");
        if connections == want {
            return;
        }
        last = Some(connections);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("presence connections stayed at {last:?}, want {want}");
}

/// The room's `connections` in `/v1/stats/rooms`, once it is `want` (rooms report at most
/// once a second); panics with the last entry otherwise.
async fn stats_reach(room: &str, want: u64) {
    let mut last = None;
    for _ in 0..40 {
        last = stats_entry(&admin_get("/v1/stats/rooms").await, room);
        if last.as_ref().map(|e| u64_field(e, "connections")) == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("stats never listed {want} connections: {last:?}");
}

/// Publishes `n` messages over HTTP as `who`; their seqs.
async fn publish_over_http(room: &str, who: &User, n: usize, tag: &str) -> Vec<u64> {
    let auth = ReqAuth::Bearer(who.token(&[room]));
    let mut seqs = Vec::new();
    for i in 0..n {
        let body = json!({"cid": format!("{tag}-{i}"), "data": {"i": i}});
        seqs.push(http::publish_ok(room, &auth, &body).await.seq);
    }
    seqs
}

/// The seqs of the messages `c` receives: `count` of them, then nothing more for a moment
/// (no repeat).
async fn seqs_received(c: &mut Client, count: usize) -> Vec<u64> {
    let messages = c.recv_messages(count, Duration::from_secs(20)).await;
    let extra = c.drain_for(Duration::from_millis(300)).await;
    assert!(
        extra.iter().all(|f| ty(f) != "message"),
        "a message more than the {count} sent: {extra:?}"
    );
    messages.iter().map(|m| u64_field(m, "seq")).collect()
}

#[tokio::test]
async fn a_big_room_fans_out_through_shards_once_each_in_seq_order() {
    let (prefix, per_object) = sharded_rooms();
    let room = unique_room(&format!("{prefix}fan"));
    let total = per_object * 8;
    let mut viewers = crowd(&room, total).await;
    let (own, shards) = spread(&viewers);
    assert_eq!(
        own, per_object,
        "the room holds its limit itself: {shards:?}"
    );
    assert!(shards.len() >= 3, "several shards: {shards:?}");
    assert_eq!(shards.values().sum::<usize>(), total - per_object);

    let publisher = User::anonymous("shp");
    connections_reach(&room, &publisher, total as u64).await;
    stats_reach(&room, total as u64).await;
    let sent = publish_over_http(&room, &publisher, 30, "fan").await;
    assert_eq!(sent, (1..=30).collect::<Vec<_>>());
    let received = join_all(
        viewers
            .iter_mut()
            .map(|v| async { seqs_received(&mut v.client, sent.len()).await }),
    )
    .await;
    for (got, v) in received.iter().zip(&viewers) {
        assert_eq!(got, &sent, "{} on shard {:?}", v.user.id, v.shard);
    }

    // Viewers leave from the room and from shards: the counts follow.
    let leaving: Vec<Viewer> = viewers.drain(..per_object * 2).collect();
    join_all(leaving.into_iter().map(|v| v.client.close())).await;
    connections_reach(&room, &publisher, (total - per_object * 2) as u64).await;
    stats_reach(&room, (total - per_object * 2) as u64).await;
}

#[tokio::test]
async fn viewers_on_different_shards_publish_through_the_room_in_one_order() {
    let (prefix, per_object) = sharded_rooms();
    let room = unique_room(&format!("{prefix}pub"));
    let mut viewers = crowd(&room, per_object * 3 + 2).await;
    // One publisher on the room, one on each of the first three shards.
    let mut publishers = Vec::new();
    for place in [None, Some(0), Some(1), Some(2)] {
        let at = viewers
            .iter()
            .position(|v| v.shard == place)
            .unwrap_or_else(|| panic!("a viewer on {place:?}"));
        publishers.push(viewers.remove(at));
    }
    const EACH: usize = 5;
    let acks = join_all(publishers.iter_mut().map(|p| async {
        let mut seqs = Vec::new();
        for i in 0..EACH {
            let cid = format!("{}-{i}", p.user.id);
            p.client.publish(&cid, None, &json!({"i": i})).await;
        }
        for i in 0..EACH {
            let ack = p.client.recv_ack(&format!("{}-{i}", p.user.id)).await;
            assert_eq!(ack["duplicate"], json!(false), "{ack}");
            seqs.push(u64_field(&ack, "seq"));
        }
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "a socket's publishes in order: {seqs:?}"
        );
        seqs
    }))
    .await;
    let all: BTreeSet<u64> = acks.iter().flatten().copied().collect();
    let total = (publishers.len() * EACH) as u64;
    assert_eq!(all, (1..=total).collect(), "one seq each, no gap: {acks:?}");

    // Everyone else gets all of them in seq order; a publisher gets the others' in order.
    let everyone: Vec<u64> = (1..=total).collect();
    let seen = join_all(
        viewers
            .iter_mut()
            .map(|v| async { seqs_received(&mut v.client, total as usize).await }),
    )
    .await;
    for (got, v) in seen.iter().zip(&viewers) {
        assert_eq!(got, &everyone, "{} on shard {:?}", v.user.id, v.shard);
    }
    for (p, own) in publishers.iter_mut().zip(&acks) {
        let others: Vec<u64> = everyone
            .iter()
            .filter(|s| !own.contains(s))
            .copied()
            .collect();
        let got = seqs_received(&mut p.client, others.len()).await;
        assert_eq!(got, others, "publisher on {:?}", p.shard);
    }
}

#[tokio::test]
async fn a_viewer_resumes_on_another_shard_without_a_gap() {
    let (prefix, per_object) = sharded_rooms();
    let room = unique_room(&format!("{prefix}resume"));
    let publisher = User::anonymous("shp");
    let mut viewers = crowd(&room, per_object * 2 + per_object / 2).await;
    let at = viewers
        .iter()
        .position(|v| v.shard == Some(1))
        .expect("a viewer on shard 1");
    let mut leaver = viewers.remove(at);
    let first = publish_over_http(&room, &publisher, 5, "a").await;
    assert_eq!(seqs_received(&mut leaver.client, 5).await, first);
    let user = leaver.user.clone();
    leaver.client.close().await;
    let missed = publish_over_http(&room, &publisher, 5, "b").await;
    // Shard 1 fills up meanwhile, so the comeback lands on a shard that never saw 1..=10.
    connections_reach(
        &room,
        &publisher,
        (per_object * 2 + per_object / 2 - 1) as u64,
    )
    .await;
    viewers.extend(crowd(&room, per_object - per_object / 2 + 1).await);

    let (mut back, welcome) = join(&room, user, Some(5)).await;
    assert!(
        back.shard.is_some_and(|s| s != 1),
        "resumed on another shard: {welcome}"
    );
    let mut replay = Vec::new();
    loop {
        let frame = back.client.recv_ignoring(&["presence"]).await;
        match ty(&frame) {
            "message" => replay.push(u64_field(&frame, "seq")),
            "synced" => {
                assert_eq!(u64_field(&frame, "seq"), 10, "{frame}");
                break;
            }
            other => panic!("only messages before synced, got {other}: {frame}"),
        }
    }
    assert_eq!(replay, missed, "the replay is exactly what was missed");
    let live = publish_over_http(&room, &publisher, 3, "c").await;
    assert_eq!(
        seqs_received(&mut back.client, 3).await,
        live,
        "then live, no gap"
    );

    // A viewer that drops and comes back onto the shard it left resumes from its window.
    let at = viewers
        .iter()
        .position(|v| v.shard == Some(0))
        .expect("a viewer on shard 0");
    let mut again = viewers.remove(at);
    let seen = seqs_received(&mut again.client, 13).await;
    assert_eq!(seen, (1..=13).collect::<Vec<_>>());
    let user = again.user.clone();
    again.client.close().await;
    connections_reach(&room, &publisher, (viewers.len() + 1) as u64).await;
    let missed = publish_over_http(&room, &publisher, 4, "d").await;
    let (mut back, welcome) = join(&room, user, Some(13)).await;
    assert_eq!(back.shard, Some(0), "{welcome}");
    let frames = back.client.recv_messages(4, Duration::from_secs(10)).await;
    let replayed: Vec<u64> = frames.iter().map(|m| u64_field(m, "seq")).collect();
    assert_eq!(replayed, missed);
    let synced = back.client.recv_until("synced").await;
    assert_eq!(u64_field(&synced, "seq"), 17, "{synced}");

    // A since beyond what the room has is a reset on a shard as on the room.
    let (mut ahead, welcome) = join(&room, User::anonymous("shv"), Some(99)).await;
    assert!(ahead.shard.is_some(), "placed on a shard: {welcome}");
    let reset = ahead.client.recv_ignoring(&["presence", "occupancy"]).await;
    assert_eq!(reset, json!({"type": "reset", "seq": 17}));
}

/// The relay's default `JWT_LEEWAY_SECS`: tokens stay accepted this long past `exp`.
const LEEWAY_SECS: i64 = 30;

#[tokio::test]
async fn a_viewer_on_a_shard_renews_its_token_and_is_closed_once_it_expires() {
    let (prefix, per_object) = sharded_rooms();
    let room = unique_room(&format!("{prefix}renew"));
    let _room_full = crowd(&room, per_object).await;
    let user = User::anonymous("shr");
    // Accepted for 3 more seconds: `exp` in the past, within the leeway.
    let short = user
        .builder()
        .rooms([room.as_str()])
        .exp_in(3 - LEEWAY_SECS)
        .mint();
    let (mut renewed, welcome) = Client::join(&room, &short).await;
    assert!(welcome.get("shard").is_some(), "on a shard: {welcome}");
    let (mut not_renewed, welcome) = Client::join(&room, &short).await;
    assert!(welcome.get("shard").is_some(), "on a shard: {welcome}");

    let longer = user
        .builder()
        .rooms([room.as_str()])
        .exp_in(12 - LEEWAY_SECS)
        .mint();
    renewed
        .send_json(&json!({"type": "auth", "token": longer}))
        .await;
    let answer = renewed.recv_ignoring(&["presence"]).await;
    assert_eq!(answer["type"], "auth", "{answer}");
    // The idle one is closed when its token ends; the renewed one is still there then.
    let (code, reason) = not_renewed.expect_close(Duration::from_secs(10)).await;
    assert_eq!((code, reason.as_str()), (Some(4001), "token expired"));
    renewed.ping().await;
    let (code, reason) = renewed.expect_close(Duration::from_secs(15)).await;
    assert_eq!((code, reason.as_str()), (Some(4001), "token expired"));
}

#[tokio::test]
async fn typing_and_bans_reach_viewers_on_shards() {
    let (prefix, per_object) = sharded_rooms();
    let room = unique_room(&format!("{prefix}typing"));
    let mut viewers = crowd(&room, per_object + 6).await;
    let on_room = viewers
        .iter()
        .position(|v| v.shard.is_none())
        .expect("a viewer on the room");
    let mut on_room = viewers.remove(on_room);
    let at = viewers
        .iter()
        .position(|v| v.shard == Some(0))
        .expect("a viewer on shard 0");
    let mut typist = viewers.remove(at);
    let at = viewers
        .iter()
        .position(|v| v.shard == Some(0))
        .expect("another viewer on shard 0");
    let mut neighbour = viewers.remove(at);

    // Typing on a shard goes through the room to everyone else, not back to the typist.
    typist
        .client
        .send_json(&json!({"type": "typing", "active": true}))
        .await;
    for v in [&mut on_room, &mut neighbour] {
        let typing = v.client.recv_until("typing").await;
        assert_eq!(str_field(&typing["user"], "id"), typist.user.id, "{typing}");
    }
    typist
        .client
        .expect_none("its own typing", Duration::from_millis(500), |f| {
            ty(f) == "typing"
        })
        .await;

    // A ban closes the user's socket on its shard; the others stay.
    let path = room_path(&room, &format!("bans/{}", encode_segment(&typist.user.id)));
    http::send(
        reqwest::Method::PUT,
        &path,
        &relay_e2e::backend::webhook_auth(),
        None,
        &[],
    )
    .await
    .assert_status(200);
    let (code, reason) = typist.client.expect_close(Duration::from_secs(5)).await;
    assert_eq!((code, reason.as_str()), (Some(4003), "banned"));
    neighbour.client.ping().await;
}
