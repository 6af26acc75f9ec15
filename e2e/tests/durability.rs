//! Durability across a kill of the relay: a message acknowledged to its publisher (a WebSocket
//! `ack`, an HTTP 200) is in the room's history with the acked seq after the server process was
//! killed with SIGKILL and started again on the same state, history has no gap, and a repeat of
//! the `cid` is still answered as a duplicate with the same seq. In a sharded room (publishers
//! on the room and on two shards) and in an unsharded one.
//!
//! The two tests are the two halves of one check that `scripts/test` (its `durability` step) runs
//! around a `kill -9` of `wrangler dev`'s process group, so they are `#[ignore]`d in the plain
//! e2e run and run there by name with `--ignored`. The write half publishes as fast as its
//! windows allow and appends every ack to the state file `DURABILITY_STATE` the moment it
//! arrives, until the relay goes away (it fails if that does not happen within
//! [`WRITE_BOUND`]); the check half, against the restarted relay, reads the file back.

use futures_util::future::join_all;
use relay_e2e::http::{self, ReqAuth};
use relay_e2e::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long the write half keeps publishing if the relay is never killed (then it fails).
const WRITE_BOUND: Duration = Duration::from_secs(150);
/// Publishes a socket keeps in flight, so that many arrive while a commit is running.
const WINDOW: usize = 32;
/// Where the publishing sockets of the sharded room sit: the room itself and two shards.
const SHARDED_WRITERS: [Option<u64>; 6] = [None, None, Some(0), Some(0), Some(1), Some(1)];
/// Publishing sockets of the unsharded room.
const PLAIN_WRITERS: usize = 3;
/// Concurrent HTTP publishers per room (one user, separate cid sequences).
const HTTP_LANES: usize = 2;
/// A live relay answers within this; silence that long means something is stuck.
const STALL: Duration = Duration::from_secs(15);
/// History page size (the relay's cap).
const PAGE: usize = 200;
/// More pages than any write half can fill.
const MAX_PAGES: usize = 1_000;

/// One line of the state file (JSON): the rooms first, then every ack as it arrived, and a
/// mark once every publisher has had one (scripts/test kills the relay only after it).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Record {
    Room { room: String, sharded: bool },
    Ack(Ack),
    EveryPublisherAcked,
}

/// An acknowledged publish: who sent which cid into which room, and the receipt.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ack {
    room: String,
    user: String,
    cid: String,
    seq: u64,
    id: String,
    route: Route,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Route {
    Socket,
    Http,
}

fn state_path() -> String {
    std::env::var("DURABILITY_STATE").unwrap_or_else(|_| {
        panic!(
            "DURABILITY_STATE (the path of the acked-messages file) is not set: these tests are \
             the two halves of scripts/test's durability step, around a kill -9 of the relay"
        )
    })
}

/// The state file of the write half: one `write` per line, no buffer in this process, so a
/// line is in the file as soon as its ack was seen.
struct StateFile {
    file: Mutex<File>,
    acks: AtomicUsize,
    publishers: usize,
    publishers_acked: AtomicUsize,
}

impl StateFile {
    fn create(path: &str, publishers: usize) -> StateFile {
        StateFile {
            file: Mutex::new(File::create(path).unwrap_or_else(|e| panic!("creating {path}: {e}"))),
            acks: AtomicUsize::new(0),
            publishers,
            publishers_acked: AtomicUsize::new(0),
        }
    }

    /// Called by each publisher at its first ack; the last one writes the mark.
    fn first_ack(&self) {
        if self.publishers_acked.fetch_add(1, Ordering::Relaxed) + 1 == self.publishers {
            self.append(&Record::EveryPublisherAcked);
        }
    }

    fn append(&self, record: &Record) {
        let mut line = serde_json::to_string(record).expect("a record serializes");
        line.push('\n');
        let mut file = self.file.lock().expect("the state file lock");
        file.write_all(line.as_bytes())
            .and_then(|()| file.flush())
            .expect("appending to the state file");
        if matches!(record, Record::Ack(_)) {
            self.acks.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The prefix and per-object limit of the first `SHARD_VIEWERS_PREFIXES` entry.
fn sharded_rooms() -> (String, usize) {
    first_prefix_limit("SHARD_VIEWERS_PREFIXES")
}

/// A connected socket, its user, and where it landed (`None`: on the room itself).
struct Viewer {
    client: Client,
    user: User,
    shard: Option<u64>,
}

async fn join(room: &str, user: User) -> Viewer {
    let (client, welcome) = Client::join(room, &user.token(&[room])).await;
    let shard = welcome
        .get("shard")
        .map(|s| s.as_u64().expect("a shard number"));
    Viewer {
        client,
        user,
        shard,
    }
}

/// `count` sockets, each its own user (connect limits are per user), 25 at a time.
async fn crowd(room: &str, count: usize) -> Vec<Viewer> {
    let mut viewers = Vec::with_capacity(count);
    while viewers.len() < count {
        let batch = (count - viewers.len()).min(25);
        let joins = (0..batch).map(|_| join(room, User::anonymous("dur")));
        viewers.extend(join_all(joins).await);
    }
    viewers
}

/// Takes a viewer placed at `place` out of `viewers`.
fn take_at(viewers: &mut Vec<Viewer>, place: Option<u64>) -> Viewer {
    let at = viewers
        .iter()
        .position(|v| v.shard == place)
        .unwrap_or_else(|| panic!("no viewer placed on {place:?}"));
    viewers.remove(at)
}

/// Why a publisher stopped.
#[derive(Debug)]
enum Ending {
    /// The connection broke without a close frame, or a request could not be made: the
    /// relay went away, which is what the write half waits for.
    RelayGone(String),
    /// Anything else fails the write half.
    Failed(String),
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::RelayGone(why) => write!(f, "the relay went away ({why})"),
            Ending::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// What one publisher did.
#[derive(Debug)]
struct Outcome {
    who: String,
    acks: usize,
    ending: Ending,
}

fn still_running() -> Ending {
    Ending::Failed(format!(
        "still publishing after {WRITE_BOUND:?}: the relay was never killed"
    ))
}

/// Publishes from `viewer` with [`WINDOW`] frames in flight until the connection breaks;
/// every ack goes to the state file as it arrives. A publish refused by the rate limit is sent
/// again later with the same cid (it was not stored).
async fn publish_over_socket(
    mut viewer: Viewer,
    room: String,
    state: Arc<StateFile>,
    stop_at: Instant,
) -> Outcome {
    let who = format!("socket on {:?} ({room})", viewer.shard);
    let mut numbered = 0u64;
    let mut in_flight: HashSet<String> = HashSet::new();
    let mut refused: VecDeque<String> = VecDeque::new();
    let (mut acks, mut last_seq) = (0, 0);
    let ending = 'publishing: loop {
        if Instant::now() >= stop_at {
            break still_running();
        }
        while in_flight.len() < WINDOW {
            let cid = refused.pop_front().unwrap_or_else(|| {
                numbered += 1;
                format!("s{numbered}")
            });
            let frame = json!({"type": "publish", "cid": cid, "data": {"cid": cid}});
            if let Err(e) = viewer.client.try_send_text(frame.to_string()).await {
                break 'publishing Ending::RelayGone(e);
            }
            in_flight.insert(cid);
        }
        let frame = match viewer.client.next_incoming(Instant::now() + STALL).await {
            None => {
                break Ending::Failed(format!(
                    "no frame for {STALL:?} with {} publishes in flight",
                    in_flight.len()
                ))
            }
            Some(Incoming::Closed { code: None, reason }) => break Ending::RelayGone(reason),
            Some(Incoming::Closed {
                code: Some(code),
                reason,
            }) => break Ending::Failed(format!("closed by the relay: {code} {reason}")),
            Some(Incoming::Json(frame)) => frame,
        };
        let cid = frame.get("cid").and_then(Value::as_str).unwrap_or_default();
        match ty(&frame) {
            "ack" if in_flight.remove(cid) => {
                let seq = u64_field(&frame, "seq");
                if frame["duplicate"] != json!(false) || seq <= last_seq {
                    break Ending::Failed(format!("after seq {last_seq}: {frame}"));
                }
                last_seq = seq;
                acks += 1;
                if acks == 1 {
                    state.first_ack();
                }
                state.append(&Record::Ack(Ack {
                    room: room.clone(),
                    user: viewer.user.id.clone(),
                    cid: cid.to_string(),
                    seq,
                    id: str_field(&frame, "id").to_string(),
                    route: Route::Socket,
                }));
            }
            "error" if frame["code"] == "rate_limited" && in_flight.remove(cid) => {
                refused.push_back(cid.to_string());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            "ack" | "error" => break Ending::Failed(format!("unexpected: {frame}")),
            _ => {} // the others' messages, presence
        }
    };
    Outcome { who, acks, ending }
}

/// An HTTP client with the suite's bounds whose failures are returned, not panicked: after the
/// kill a refused connection is the expected end.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(STALL)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("building the HTTP client")
}

/// Publishes over HTTP as `user`, one request at a time, cids `h<lane>-<n>`, until a request
/// fails; every 200 goes to the state file as it arrives.
async fn publish_over_http(
    room: String,
    user: User,
    lane: usize,
    state: Arc<StateFile>,
    stop_at: Instant,
) -> Outcome {
    let who = format!("HTTP lane {lane} ({room})");
    let client = http_client();
    let url = format!("{}{}", relay_url(), room_path(&room, "messages"));
    let token = user.token(&[room.as_str()]);
    let (mut numbered, mut acks, mut last_seq) = (0u64, 0, 0);
    let ending = loop {
        if Instant::now() >= stop_at {
            break still_running();
        }
        let cid = format!("h{lane}-{}", numbered + 1);
        let sent = client
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"cid": cid, "data": {"cid": cid}}))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => break Ending::RelayGone(e.to_string()),
        };
        let status = response.status().as_u16();
        let body = match response.text().await {
            Ok(b) => b,
            Err(e) => break Ending::RelayGone(e.to_string()),
        };
        if status == 429 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue; // the same cid again: it was not stored
        }
        let receipt: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let seq = receipt.get("seq").and_then(Value::as_u64).unwrap_or(0);
        if status != 200 || receipt["duplicate"] != json!(false) || seq <= last_seq {
            break Ending::Failed(format!("{status} after seq {last_seq}: {body}"));
        }
        numbered += 1;
        last_seq = seq;
        acks += 1;
        if acks == 1 {
            state.first_ack();
        }
        state.append(&Record::Ack(Ack {
            room: room.clone(),
            user: user.id.clone(),
            cid,
            seq,
            id: str_field(&receipt, "id").to_string(),
            route: Route::Http,
        }));
    };
    Outcome { who, acks, ending }
}

/// Reads (and drops) what a socket that does not publish receives, so that the relay never
/// sees it as a slow consumer, until its connection ends.
async fn listen(mut viewer: Viewer, stop_at: Instant) {
    while let Some(Incoming::Json(_)) = viewer.client.next_incoming(stop_at).await {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the first half of scripts/test's durability step: run there, around a kill -9"]
async fn acked_messages_are_recorded_until_the_relay_is_killed() {
    let state = Arc::new(StateFile::create(
        &state_path(),
        SHARDED_WRITERS.len() + PLAIN_WRITERS + 2 * HTTP_LANES,
    ));
    let stop_at = Instant::now() + WRITE_BOUND;
    let (prefix, per_object) = sharded_rooms();
    let sharded = unique_room(&format!("{prefix}durability"));
    let plain = unique_room("e2e:durability");
    state.append(&Record::Room {
        room: sharded.clone(),
        sharded: true,
    });
    state.append(&Record::Room {
        room: plain.clone(),
        sharded: false,
    });

    // The room's own sockets, two full shards and a few on a third.
    let mut viewers = crowd(&sharded, per_object * 3 + 5).await;
    let placed: BTreeMap<Option<u64>, usize> = viewers.iter().fold(BTreeMap::new(), |mut m, v| {
        *m.entry(v.shard).or_default() += 1;
        m
    });
    assert!(
        placed.len() >= 3,
        "viewers on the room and 2+ shards: {placed:?}"
    );

    // Every socket is connected before anyone publishes, so that all start together.
    let mut writers: Vec<(Viewer, &String)> = Vec::new();
    for place in SHARDED_WRITERS {
        writers.push((take_at(&mut viewers, place), &sharded));
    }
    writers.extend(
        crowd(&plain, PLAIN_WRITERS)
            .await
            .into_iter()
            .map(|v| (v, &plain)),
    );
    let mut publishers = Vec::new();
    for (viewer, room) in writers {
        publishers.push(tokio::spawn(publish_over_socket(
            viewer,
            room.clone(),
            state.clone(),
            stop_at,
        )));
    }
    for room in [&sharded, &plain] {
        let user = User::anonymous("dur-http");
        for lane in 0..HTTP_LANES {
            publishers.push(tokio::spawn(publish_over_http(
                room.clone(),
                user.clone(),
                lane,
                state.clone(),
                stop_at,
            )));
        }
    }
    let listeners: Vec<_> = viewers
        .into_iter()
        .map(|v| tokio::spawn(listen(v, stop_at)))
        .collect();
    println!("publishing into {sharded} (placed {placed:?}) and {plain} until the relay dies");

    let outcomes: Vec<Outcome> = join_all(publishers)
        .await
        .into_iter()
        .map(|joined| joined.expect("a publisher panicked"))
        .collect();
    for listener in listeners {
        listener.abort();
    }
    for o in &outcomes {
        println!("{}: {} acks, then {}", o.who, o.acks, o.ending);
    }
    println!("{} acks recorded", state.acks.load(Ordering::Relaxed));
    for o in &outcomes {
        assert!(
            matches!(o.ending, Ending::RelayGone(_)),
            "{} did not end by the relay going away: {}",
            o.who,
            o.ending
        );
        assert!(o.acks > 0, "{} was never acked", o.who);
    }
}

/// Every `after`-page of the room's history, in order.
async fn full_history(room: &str) -> Vec<Value> {
    let auth = ReqAuth::Bearer(User::anonymous("dur-reader").token(&[room]));
    let mut messages: Vec<Value> = Vec::new();
    for _ in 0..MAX_PAGES {
        let after = messages.last().map_or(0, |m| u64_field(m, "seq"));
        let r = http::history(room, &format!("after={after}&limit={PAGE}"), &auth).await;
        r.assert_status(200);
        let page = r.json()["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("a page of messages: {}", r.body))
            .clone();
        let has_more = r.json()["has_more"].as_bool().expect("has_more");
        if !has_more {
            messages.extend(page);
            return messages;
        }
        assert!(
            !page.is_empty(),
            "an empty page with has_more after {after}"
        );
        messages.extend(page);
    }
    panic!("{room}: history longer than {MAX_PAGES} pages");
}

/// History is 1..=N without a gap or a repeat, and holds every recorded ack at its seq, with
/// its id, sender and data; no sender's cid is stored twice.
fn check_history(room: &str, history: &[Value], acks: &[&Ack]) {
    if let Some((at, m)) = history
        .iter()
        .enumerate()
        .find(|(i, m)| u64_field(m, "seq") != *i as u64 + 1)
    {
        panic!(
            "{room}: history is not 1..={} without gaps: position {} holds seq {}",
            history.len(),
            at + 1,
            u64_field(m, "seq")
        );
    }
    let mut keys = HashSet::new();
    for m in history {
        let key = (m["from"]["id"].clone(), m["cid"].clone());
        assert!(keys.insert(key), "{room}: a sender's cid stored twice: {m}");
    }
    for ack in acks {
        let stored = usize::try_from(ack.seq)
            .ok()
            .and_then(|seq| history.get(seq.checked_sub(1)?))
            .unwrap_or_else(|| {
                panic!(
                    "{room}: acked seq {} ({ack:?}) lost: history ends at {}",
                    ack.seq,
                    history.len()
                )
            });
        let ctx = format!("{room}: acked {ack:?} but history holds {stored}");
        assert_eq!(stored["cid"], json!(ack.cid), "{ctx}");
        assert_eq!(stored["from"]["id"], json!(ack.user), "{ctx}");
        assert_eq!(stored["id"], json!(ack.id), "{ctx}");
        assert_eq!(stored["data"], json!({"cid": ack.cid}), "{ctx}");
    }
}

/// Sends every cid `user` had acked over its socket again, [`WINDOW`] at a time: each must be
/// answered as a duplicate with the acked seq and id.
async fn republish_over_socket(room: &str, user: &str, acks: &[&Ack]) -> Option<u64> {
    let mut viewer = join(
        room,
        User {
            id: user.to_string(),
            name: None,
            role: None,
        },
    )
    .await;
    let expected: HashMap<&str, &Ack> = acks.iter().map(|a| (a.cid.as_str(), *a)).collect();
    let mut unsent = acks.iter();
    let mut in_flight = 0;
    let mut answered = 0;
    while answered < acks.len() {
        while in_flight < WINDOW {
            let Some(ack) = unsent.next() else { break };
            let frame = json!({"type": "publish", "cid": ack.cid, "data": {"cid": ack.cid}});
            viewer.client.send_json(&frame).await;
            in_flight += 1;
        }
        let frame = viewer
            .client
            .take_first(
                |f| ty(f) == "ack" || ty(f) == "error",
                Instant::now() + STALL,
            )
            .await
            .unwrap_or_else(|| panic!("{room}: no answer to a repeated publish within {STALL:?}"));
        let cid = frame.get("cid").and_then(Value::as_str).unwrap_or_default();
        let ack = expected
            .get(cid)
            .unwrap_or_else(|| panic!("{room}: a repeated publish answered with {frame}"));
        assert_eq!(ty(&frame), "ack", "{room}: repeating {ack:?}: {frame}");
        assert_eq!(frame["duplicate"], json!(true), "{room}: {ack:?}: {frame}");
        assert_eq!(
            u64_field(&frame, "seq"),
            ack.seq,
            "{room}: {ack:?}: {frame}"
        );
        assert_eq!(str_field(&frame, "id"), ack.id, "{room}: {ack:?}: {frame}");
        in_flight -= 1;
        answered += 1;
    }
    viewer.client.close().await;
    viewer.shard
}

/// Posts every cid acked over HTTP again, a few at a time: each must be answered `200` as a
/// duplicate with the acked seq and id.
async fn republish_over_http(room: &str, acks: &[&Ack]) {
    for chunk in acks.chunks(8) {
        join_all(chunk.iter().map(|ack| async move {
            let user = User {
                id: ack.user.clone(),
                name: None,
                role: None,
            };
            let auth = ReqAuth::Bearer(user.token(&[room]));
            let r = http::publish(
                room,
                &auth,
                &json!({"cid": ack.cid, "data": {"cid": ack.cid}}),
            )
            .await;
            r.assert_status(200);
            let receipt = assert_receipt(r.json(), true);
            assert_eq!(receipt.seq, ack.seq, "{room}: {ack:?}: {}", r.body);
            assert_eq!(receipt.id, ack.id, "{room}: {ack:?}: {}", r.body);
        }))
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the second half of scripts/test's durability step: run there, after the restart"]
async fn every_recorded_ack_survives_the_restart() {
    let path = state_path();
    let file = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
    let (mut rooms, mut acks, mut every_publisher_acked) = (Vec::new(), Vec::new(), false);
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.expect("reading the state file");
        match serde_json::from_str(&line) {
            Ok(Record::Room { room, sharded }) => rooms.push((room, sharded)),
            Ok(Record::Ack(ack)) => acks.push(ack),
            Ok(Record::EveryPublisherAcked) => every_publisher_acked = true,
            Err(e) => panic!("{path}:{}: {e}: {line:?}", n + 1),
        }
    }
    assert_eq!(
        rooms.len(),
        2,
        "{path}: a sharded and a plain room: {rooms:?}"
    );
    assert!(
        every_publisher_acked,
        "{path}: some publisher never had an ack"
    );
    let (_, per_object) = sharded_rooms();

    for (room, sharded) in &rooms {
        let in_room: Vec<&Ack> = acks.iter().filter(|a| &a.room == room).collect();
        assert!(!in_room.is_empty(), "{path}: no ack recorded in {room}");
        let history = full_history(room).await;
        check_history(room, &history, &in_room);

        // Repeats over sockets placed the way the writers were: past the room's own limit,
        // on a shard, when the room is sharded.
        let fillers = if *sharded {
            crowd(room, per_object).await
        } else {
            Vec::new()
        };
        let mut by_socket_user: BTreeMap<&str, Vec<&Ack>> = BTreeMap::new();
        for ack in in_room.iter().filter(|a| a.route == Route::Socket) {
            by_socket_user.entry(&ack.user).or_default().push(ack);
        }
        for (user, acked) in &by_socket_user {
            let shard = republish_over_socket(room, user, acked).await;
            assert_eq!(
                shard.is_some(),
                *sharded,
                "{room}: repeats placed on {shard:?}"
            );
        }
        let over_http: Vec<&Ack> = in_room
            .iter()
            .copied()
            .filter(|a| a.route == Route::Http)
            .collect();
        assert!(!over_http.is_empty(), "{room}: no HTTP publish was acked");
        republish_over_http(room, &over_http).await;
        join_all(fillers.into_iter().map(|v| v.client.close())).await;
        println!(
            "{room}: {} acked messages ({} over HTTP) all in a gap-free history of {}, \
             every cid still a duplicate with its seq",
            in_room.len(),
            over_http.len(),
            history.len()
        );
    }
}
