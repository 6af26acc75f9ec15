//! Group commit: bursts of publishes from many sockets at once, so that most of them arrive
//! while an earlier commit is in flight and share a later one. Each socket's acks must still
//! come in the order of its publishes, with increasing seqs; a repeated cid within a burst is
//! answered as a duplicate of the first; every seq is acked once, reaches every other socket
//! once and in order, and is in the room's history.

use relay_e2e::backend::history_messages;
use relay_e2e::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const PUBLISHERS: usize = 12;
/// Frames per burst: publishes, one of them repeating an earlier cid, and a typing frame.
const UNIQUE_PER_PUBLISHER: usize = 9;
const TOTAL: usize = PUBLISHERS * UNIQUE_PER_PUBLISHER;

#[tokio::test]
async fn bursts_from_many_sockets_keep_order_dedup_and_every_message() {
    let room = unique_room("e2e:group");
    let viewer = User::new("gviewer", "Viewer", "viewer");
    let (mut watcher, _) = Client::join_as(&room, &viewer).await;
    let mut publishers = Vec::new();
    for k in 0..PUBLISHERS {
        let u = User::new(&format!("gpub{k}"), &format!("Publisher {k}"), "writer");
        let (c, _) = Client::join_as(&room, &u).await;
        publishers.push((k, u, c));
    }
    // Everybody's joins have gone out; only what follows is looked at.
    for (_, _, c) in publishers.iter_mut() {
        c.drain_for(Duration::from_millis(300)).await;
    }
    watcher.drain_for(Duration::from_millis(300)).await;

    let within = Duration::from_secs(60);
    let watching = tokio::spawn(async move {
        let m = watcher.recv_messages(TOTAL, within).await;
        (watcher, m)
    });
    let mut tasks = Vec::new();
    for (k, u, mut c) in publishers {
        tasks.push(tokio::spawn(async move {
            // cids in sending order: p{k}-0 .. p{k}-8, with p{k}-2 sent again after p{k}-4.
            let mut cids: Vec<String> = (0..UNIQUE_PER_PUBLISHER)
                .map(|i| format!("p{k}-{i}"))
                .collect();
            cids.insert(5, format!("p{k}-2"));
            let mut frames: Vec<String> = cids
                .iter()
                .map(|cid| {
                    let i: usize = cid.rsplit('-').next().unwrap().parse().unwrap();
                    json!({"type": "publish", "cid": cid, "data": {"p": k, "i": i}}).to_string()
                })
                .collect();
            frames.insert(3, json!({"type": "typing", "active": true}).to_string());
            c.send_burst(frames).await;
            let mut acks = Vec::new();
            while acks.len() < cids.len() {
                let deadline = tokio::time::Instant::now() + within;
                let ack = c
                    .take_first(|v| ty(v) == "ack" || ty(v) == "error", deadline)
                    .await
                    .unwrap_or_else(|| panic!("publisher {k}: only {} acks", acks.len()));
                assert_eq!(ty(&ack), "ack", "publisher {k}: {ack}");
                acks.push(ack);
            }
            let others = c.recv_messages(TOTAL - UNIQUE_PER_PUBLISHER, within).await;
            (k, u, c, cids, acks, others)
        }));
    }

    let mut by_seq: BTreeMap<u64, (usize, String)> = BTreeMap::new();
    let mut users = BTreeMap::new();
    let mut clients = Vec::new();
    for t in tasks {
        let (k, u, c, cids, acks, others) = t.await.expect("publisher task");
        let got_cids: Vec<&str> = acks.iter().map(|a| str_field(a, "cid")).collect();
        assert_eq!(
            got_cids, cids,
            "publisher {k}: acks in the order of the publishes"
        );
        let mut first_seq = BTreeMap::new();
        let mut last = 0;
        for (ack, cid) in acks.iter().zip(&cids) {
            match first_seq.get(cid) {
                None => {
                    let s = assert_ack(ack, cid, false);
                    assert!(s.seq > last, "publisher {k}: seqs increase: {acks:?}");
                    last = s.seq;
                    first_seq.insert(cid.clone(), s.seq);
                    let prev = by_seq.insert(s.seq, (k, cid.clone()));
                    assert!(prev.is_none(), "seq {} acked twice: {prev:?}", s.seq);
                }
                Some(&seq) => {
                    let s = assert_ack(ack, cid, true);
                    assert_eq!(s.seq, seq, "publisher {k}: the repeated cid keeps its seq");
                }
            }
        }
        let other_seqs: Vec<u64> = others.iter().map(|m| u64_field(m, "seq")).collect();
        assert!(
            other_seqs.windows(2).all(|w| w[0] < w[1]),
            "publisher {k}: others' messages in seq order: {other_seqs:?}"
        );
        users.insert(k, u);
        clients.push((c, other_seqs));
    }
    let expected: Vec<u64> = (1..=TOTAL as u64).collect();
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        expected,
        "every unique publish got its own seq, without gaps"
    );
    for (k, (_, others)) in clients.iter().enumerate() {
        let not_own: Vec<u64> = expected
            .iter()
            .copied()
            .filter(|s| by_seq[s].0 != k)
            .collect();
        assert_eq!(
            others, &not_own,
            "publisher {k} receives exactly the others' messages"
        );
    }

    let (watcher, seen) = watching.await.expect("watcher");
    let seen_seqs: Vec<u64> = seen.iter().map(|m| u64_field(m, "seq")).collect();
    assert_eq!(
        seen_seqs, expected,
        "the viewer sees every seq once, in order"
    );
    for m in &seen {
        let (k, cid) = &by_seq[&u64_field(m, "seq")];
        let i: usize = cid.rsplit('-').next().unwrap().parse().unwrap();
        assert_message(
            m,
            &room,
            "message",
            &json!({"p": k, "i": i}),
            &users[k],
            Some(cid),
        );
    }

    let auth = ReqAuth::Bearer(viewer.token(&[&room]));
    let history = history_messages(&room, &auth).await;
    let stored: Vec<(u64, &str)> = history
        .iter()
        .map(|m| (u64_field(m, "seq"), m["cid"].as_str().unwrap_or("")))
        .collect();
    let acked: Vec<(u64, &str)> = by_seq
        .iter()
        .map(|(seq, (_, cid))| (*seq, cid.as_str()))
        .collect();
    assert_eq!(
        stored, acked,
        "history holds every acked message at its seq"
    );

    for (c, _) in clients {
        c.close().await;
    }
    watcher.close().await;
}
