//! Ordering under concurrency: several publishers in one room, every connection sees one
//! gap-free sequence, the same for all.

use relay_e2e::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const PUBLISHERS: usize = 4;
const PER_PUBLISHER: usize = 25;
const TOTAL: usize = PUBLISHERS * PER_PUBLISHER;

#[tokio::test]
async fn concurrent_publishers_produce_one_gap_free_order() {
    let room = unique_room("e2e:order");
    let r1 = User::new("recv1", "Receiver 1", "viewer");
    let r2 = User::new("recv2", "Receiver 2", "viewer");
    let (mut rc1, _) = Client::join_as(&room, &r1).await;
    let (mut rc2, _) = Client::join_as(&room, &r2).await;

    let mut publishers = Vec::new();
    for k in 0..PUBLISHERS {
        let u = User::new(&format!("pub{k}"), &format!("Publisher {k}"), "writer");
        let (c, seq) = Client::join_as(&room, &u).await;
        assert_eq!(seq, 0);
        publishers.push((k, u, c));
    }

    let within = Duration::from_secs(90);
    let recv1 = tokio::spawn(async move {
        let m = rc1.recv_messages(TOTAL, within).await;
        (rc1, m)
    });
    let recv2 = tokio::spawn(async move {
        let m = rc2.recv_messages(TOTAL, within).await;
        (rc2, m)
    });

    let mut tasks = Vec::new();
    for (k, u, mut c) in publishers {
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::with_capacity(PER_PUBLISHER);
            for i in 0..PER_PUBLISHER {
                let cid = format!("p{k}-{i}");
                let s = c.publish_acked(&cid, None, &json!({"p": k, "i": i})).await;
                acks.push((cid, s));
            }
            // Each publisher also receives everybody else's messages.
            let others = c.recv_messages(TOTAL - PER_PUBLISHER, within).await;
            (k, u, c, acks, others)
        }));
    }

    // seq -> (publisher, cid, id, ts) from the acks.
    let mut by_seq: BTreeMap<u64, (usize, String, Stamp)> = BTreeMap::new();
    let mut users = BTreeMap::new();
    let mut clients = Vec::new();
    for t in tasks {
        let (k, u, c, acks, others) = t.await.expect("publisher task");
        let seqs: Vec<u64> = acks.iter().map(|(_, s)| s.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "publisher {k}: acks must increase: {seqs:?}"
        );
        let other_seqs: Vec<u64> = others.iter().map(|m| u64_field(m, "seq")).collect();
        assert!(
            other_seqs.windows(2).all(|w| w[0] < w[1]),
            "publisher {k}: others' messages must arrive in seq order: {other_seqs:?}"
        );
        assert!(
            others.iter().all(|m| m["from"]["id"] != u.id.as_str()),
            "publisher {k} must not receive its own messages"
        );
        for (cid, s) in acks {
            let prev = by_seq.insert(s.seq, (k, cid, s.clone()));
            assert!(prev.is_none(), "seq {} acked twice: {prev:?}", s.seq);
        }
        users.insert(k, u);
        clients.push((c, seqs, other_seqs));
    }
    let expected: Vec<u64> = (1..=TOTAL as u64).collect();
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        expected,
        "acked seqs are 1..=100"
    );
    for (_, own, others) in &clients {
        // A publisher receives exactly the messages it did not publish.
        let not_received: BTreeSet<u64> = expected
            .iter()
            .copied()
            .filter(|s| !others.contains(s))
            .collect();
        assert_eq!(not_received, own.iter().copied().collect::<BTreeSet<u64>>());
    }

    let (rc1, m1) = recv1.await.expect("receiver 1");
    let (rc2, m2) = recv2.await.expect("receiver 2");
    for (name, msgs) in [("receiver 1", &m1), ("receiver 2", &m2)] {
        let seqs: Vec<u64> = msgs.iter().map(|m| u64_field(m, "seq")).collect();
        assert_eq!(
            seqs, expected,
            "{name}: every seq exactly once, in order, no gaps"
        );
        for m in msgs.iter() {
            let seq = u64_field(m, "seq");
            let (k, cid, stamp) = &by_seq[&seq];
            let i: usize = cid.rsplit('-').next().unwrap().parse().unwrap();
            let got = assert_message(
                m,
                &room,
                "message",
                &json!({"p": k, "i": i}),
                &users[k],
                Some(cid),
            );
            assert_eq!(&got, stamp, "{name}: message {seq} matches its ack");
        }
    }
    let ids1: Vec<&Value> = m1.iter().map(|m| &m["id"]).collect();
    let ids2: Vec<&Value> = m2.iter().map(|m| &m["id"]).collect();
    assert_eq!(
        ids1, ids2,
        "both receivers see the same message at every seq"
    );

    // Nothing more arrives afterwards.
    let (mut rc1, mut rc2) = (rc1, rc2);
    rc1.expect_no_message(Duration::from_millis(300)).await;
    rc2.expect_no_message(Duration::from_millis(300)).await;
    rc1.close().await;
    rc2.close().await;
    for (c, _, _) in clients {
        c.close().await;
    }
}
