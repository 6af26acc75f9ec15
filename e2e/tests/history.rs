//! History over HTTP: `GET /v1/rooms/{room}/messages` returns acknowledged messages in the
//! stored shape, with `after`/`before`/`limit` paging and 400 on bad parameters.

use relay_e2e::http::{self, ReqAuth};
use relay_e2e::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// One page: (seqs, has_more, messages).
async fn page(room: &str, auth: &ReqAuth, query: &str) -> (Vec<u64>, bool, Vec<Value>) {
    let r = http::history(room, query, auth).await;
    r.assert_status(200);
    let v = r.json();
    let messages = v["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("?{query}: messages must be an array: {v}"))
        .clone();
    let has_more = v["has_more"]
        .as_bool()
        .unwrap_or_else(|| panic!("?{query}: has_more must be a bool: {v}"));
    let seqs = messages.iter().map(|m| u64_field(m, "seq")).collect();
    (seqs, has_more, messages)
}

fn range(a: u64, b: u64) -> Vec<u64> {
    (a..=b).collect()
}

#[tokio::test]
async fn history_of_a_new_room_is_empty() {
    let room = unique_room("e2e:hist");
    let who = User::new("h", "H", "x");
    let auth = ReqAuth::Bearer(who.token(&[room.as_str()]));
    let r = http::history(&room, "", &auth).await;
    r.assert_status(200);
    assert_eq!(r.json()["messages"], json!([]));
    assert_eq!(r.json()["has_more"], json!(false));
}

#[tokio::test]
async fn history_serves_every_acked_message_with_paging() {
    const N: u64 = 30;
    let room = unique_room("e2e:hist");
    let alice = User::new("alice", "Alice", "customer");
    let token = alice.token(&[room.as_str()]);
    let (mut a, _) = Client::join_as(&room, &alice).await;
    let mut stamps = Vec::new();
    for i in 1..=N {
        let s = a
            .publish_acked(&format!("h{i}"), None, &json!({"i": i}))
            .await;
        assert_eq!(s.seq, i);
        stamps.push(s);
    }
    a.close().await;
    let auth = ReqAuth::Bearer(token.clone());

    // History is written behind to D1 shortly after the ack; wait (bounded) for all of it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let all = loop {
        let (seqs, has_more, msgs) = page(&room, &auth, "limit=200").await;
        if seqs.len() as u64 == N {
            assert!(!has_more);
            break msgs;
        }
        assert!(
            Instant::now() < deadline,
            "history still has {} of {N} messages after 10 s: {seqs:?}",
            seqs.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for (m, stamp) in all.iter().zip(&stamps) {
        let i = stamp.seq;
        let got = assert_message(
            m,
            &room,
            "message",
            &json!({"i": i}),
            &alice,
            Some(&format!("h{i}")),
        );
        assert_eq!(got.seq, stamp.seq);
        assert_eq!(got.id, stamp.id, "history id of seq {i} equals the ack's");
        // The same instant; the text may be re-rendered by storage (lenient on formatting
        // only: the contract says "RFC 3339 UTC", not a fixed precision).
        assert_eq!(
            got.instant(),
            stamp.instant(),
            "history ts of seq {i}: {} vs ack {}",
            got.ts,
            stamp.ts
        );
    }

    // Paging. A page is always ascending.
    let cases: &[(&str, Vec<u64>, bool)] = &[
        ("after=10&limit=5", range(11, 15), true),
        ("after=25&limit=10", range(26, 30), false),
        ("after=0&limit=3", range(1, 3), true),
        ("after=30", vec![], false),
        ("after=10&before=14&limit=2", range(11, 12), true),
        ("before=11&limit=5", range(6, 10), true),
        ("before=6", range(1, 5), false),
        ("before=1", vec![], false),
        ("before=31&limit=3", range(28, 30), true),
        ("limit=5", range(26, 30), true),
        ("", range(1, 30), false),
        ("limit=200", range(1, 30), false),
        // Larger than 200 is clamped, not an error.
        ("limit=500", range(1, 30), false),
    ];
    for (query, want, want_more) in cases {
        let (seqs, has_more, _) = page(&room, &auth, query).await;
        assert_eq!(&seqs, want, "?{query}: seqs");
        assert_eq!(has_more, *want_more, "?{query}: has_more");
    }
    // Both bounds with room to spare: the window is (10, 14). Whether has_more looks beyond
    // `before` is not spelled out by the contract, so only the seqs are checked.
    let (seqs, _, _) = page(&room, &auth, "after=10&before=14").await;
    assert_eq!(seqs, range(11, 13));

    // Token in the query works for history too, and gives the same page.
    let (seqs, _, _) = page(&room, &ReqAuth::Query(token.clone()), "after=10&limit=5").await;
    assert_eq!(seqs, range(11, 15));
}

#[tokio::test]
async fn history_limit_is_clamped_to_200() {
    // 205 messages over one connection, then limit=500 returns exactly 200.
    const N: u64 = 205;
    let room = unique_room("e2e:hist");
    let bob = User::new("bob", "Bob", "x");
    let auth = ReqAuth::Bearer(bob.token(&[room.as_str()]));
    let (mut b, _) = Client::join_as(&room, &bob).await;
    for i in 1..=N {
        b.publish_acked(&format!("m{i}"), None, &json!(i)).await;
    }
    b.close().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (seqs, _, _) = page(&room, &auth, "after=0&limit=500").await;
        if seqs.len() == 200 && seqs == range(1, 200) {
            break;
        }
        assert!(
            seqs.len() <= 200,
            "limit=500 must be clamped to 200, got {} messages",
            seqs.len()
        );
        assert!(
            Instant::now() < deadline,
            "history incomplete after 15 s: {} messages",
            seqs.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (seqs, has_more, _) = page(&room, &auth, "after=0&limit=500").await;
    assert_eq!(seqs, range(1, 200));
    assert!(has_more, "5 more exist after seq 200");
    let (seqs, has_more, _) = page(&room, &auth, "limit=500").await;
    assert_eq!(seqs, range(6, 205), "newest 200");
    assert!(has_more, "5 older exist before seq 6");
    // Integers beyond 64 bits are integers too: clamped like any large limit, and a seq
    // bound beyond every seq.
    for huge in ["9223372036854775808", "18446744073709551616"] {
        let (seqs, _, _) = page(&room, &auth, &format!("after=0&limit={huge}")).await;
        assert_eq!(seqs, range(1, 200), "limit={huge}");
        let (seqs, _, _) = page(&room, &auth, &format!("before={huge}&limit=2")).await;
        assert_eq!(seqs, range(204, 205), "before={huge}");
        let (seqs, has_more, _) = page(&room, &auth, &format!("after={huge}")).await;
        assert!(seqs.is_empty() && !has_more, "after={huge}");
    }
}

#[tokio::test]
async fn history_rejects_bad_parameters() {
    let room = unique_room("e2e:hist");
    let who = User::new("p", "P", "x");
    let auth = ReqAuth::Bearer(who.token(&[room.as_str()]));
    for query in [
        "limit=abc",
        "limit=-1",
        "limit=1.5",
        "after=-1",
        "after=abc",
        "before=-5",
        "before=x",
        "after=1e3",
    ] {
        http::history(&room, query, &auth)
            .await
            .assert_error(400, "bad_request");
    }
}
