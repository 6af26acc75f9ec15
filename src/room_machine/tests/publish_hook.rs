//! The room machine with a before-publish hook (`super::publish_hook`): what waits, in which order, and what is
//! committed, replaced or refused (a child of the machine's tests, for their fakes).

use super::*;
use crate::publish_hook::{FailMode, HookPolicy, MAX_PENDING_PER_ORIGIN, UNAVAILABLE_REASON};

const MAX_DATA_BYTES: usize = 64;

fn hooked(fail: FailMode) -> RoomMachine<Store, Clock> {
    hooked_in(limits(), fail)
}

/// Limits whose publish burst is far above the hook's bounds.
fn large_burst() -> Limits {
    let mut limits = limits();
    limits.rates.publish_burst = 1_000;
    limits
}

fn hooked_in(limits: Limits, fail: FailMode) -> RoomMachine<Store, Clock> {
    let (m, _) = machine_in("chat:1", limits);
    m.publish_hook(Some(HookPolicy {
        fail,
        timeout_ms: 500,
        max_data_bytes: MAX_DATA_BYTES,
    }))
}

fn publish_frame(cid: &str, data: &str) -> String {
    format!(r#"{{"type":"publish","cid":"{cid}","data":{data}}}"#)
}

/// The hook calls among the effects.
fn calls(out: &[Effect]) -> Vec<HookCall> {
    out.iter()
        .filter_map(|e| match e {
            Effect::CallHook(call) => Some(call.clone()),
            _ => None,
        })
        .collect()
}

/// A socket's publish, which must wait for the hook: its call.
fn hooked_publish(m: &mut RoomMachine<Store, Clock>, c: &Connection, cid: &str) -> HookCall {
    let out = frame(m, c, &publish_frame(cid, r#"{"text":"hi"}"#));
    match &out[..] {
        [Effect::CallHook(call)] => call.clone(),
        other => panic!("expected one hook call, got {other:?}"),
    }
}

fn answer(body: &str) -> HookReply {
    HookReply {
        status: Some(200),
        body: body.to_string(),
    }
}

fn accept() -> HookReply {
    answer(r#"{"action":"accept"}"#)
}

fn answered(m: &mut RoomMachine<Store, Clock>, call: &HookCall, reply: HookReply) -> Vec<Effect> {
    let mut out = Vec::new();
    m.on_hook_answer(call.ticket, reply, &mut out);
    out
}

#[test]
fn a_hooked_publish_waits_for_the_hook_then_is_committed_on_accept() {
    let mut m = hooked(FailMode::Closed);
    let alice = conn("c1", "alice");
    let call = hooked_publish(&mut m, &alice, "a");
    assert_eq!(
        m.core().last_seq(),
        0,
        "nothing is committed before the answer"
    );
    let asked: serde_json::Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(
        asked,
        serde_json::json!({"kind":"publish","room":"chat:1","user":{"id":"alice"},
            "event":"message","data":{"text":"hi"},"cid":"a"})
    );
    assert_eq!(
        call.max_answer_bytes,
        MAX_DATA_BYTES + crate::publish_hook::ANSWER_SLACK_BYTES
    );
    let out = answered(&mut m, &call, accept());
    let acks = replies(&out);
    assert_eq!(acks.len(), 1);
    assert_eq!(
        (&acks[0]["type"], &acks[0]["cid"]),
        (&"ack".into(), &"a".into())
    );
    let sent = broadcasts(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0["data"]["text"], "hi");
    assert!(sent[0].1, "the sender gets the ack, not the message");
    assert_eq!(m.core().last_seq(), 1);
}

#[test]
fn a_rejected_publish_gets_the_reason_and_nothing_is_stored_or_broadcast() {
    let mut m = hooked(FailMode::Closed).events(true);
    let alice = conn("c1", "alice");
    let call = hooked_publish(&mut m, &alice, "a");
    let out = answered(
        &mut m,
        &call,
        answer(r#"{"action":"reject","reason":"no links please"}"#),
    );
    assert_eq!(
        replies(&out),
        [
            serde_json::json!({"type":"error","code":"rejected","message":"no links please","cid":"a"})
        ]
    );
    assert!(broadcasts(&out).is_empty());
    assert_eq!(m.core().last_seq(), 0);
    assert!(
        m.core().store().events.borrow().is_empty(),
        "no event either"
    );
    assert!(
        m.violations.is_empty(),
        "a rejection is no protocol violation"
    );
}

#[test]
fn a_replaced_publish_is_stored_and_broadcast_with_the_new_data() {
    let mut m = hooked(FailMode::Closed);
    let alice = conn("c1", "alice");
    let call = hooked_publish(&mut m, &alice, "a");
    let out = answered(
        &mut m,
        &call,
        answer(r#"{"action":"replace","data":{"text":"***"}}"#),
    );
    assert_eq!(replies(&out)[0]["type"], "ack");
    assert_eq!(broadcasts(&out)[0].0["data"]["text"], "***");
    let range = crate::paging::SeqRange {
        after: 0,
        before: crate::paging::SEQ_CEILING,
        direction: crate::paging::Direction::Forward,
        fetch_limit: 10,
    };
    let (rows, _) = m.core().local_page(&range).unwrap();
    assert!(rows[0].1.contains(r#""data":{"text":"***"}"#), "{rows:?}");
}

#[test]
fn a_replacement_larger_than_publish_data_is_an_unusable_answer() {
    let mut m = hooked(FailMode::Closed);
    let alice = conn("c1", "alice");
    let call = hooked_publish(&mut m, &alice, "a");
    let big = format!(
        r#"{{"action":"replace","data":"{}"}}"#,
        "x".repeat(MAX_DATA_BYTES)
    );
    let out = answered(&mut m, &call, answer(&big));
    assert_eq!(replies(&out)[0]["code"], "rejected");
    assert_eq!(replies(&out)[0]["message"], UNAVAILABLE_REASON);
    assert_eq!(m.core().last_seq(), 0);
}

#[test]
fn without_a_usable_answer_fail_closed_refuses_and_fail_open_accepts_as_sent() {
    let unusable = [
        HookReply::default(),
        HookReply {
            status: Some(503),
            body: r#"{"action":"accept"}"#.into(),
        },
        answer("<html>"),
    ];
    for reply in unusable {
        let mut closed = hooked(FailMode::Closed);
        let alice = conn("c1", "alice");
        let call = hooked_publish(&mut closed, &alice, "a");
        let out = answered(&mut closed, &call, reply.clone());
        assert_eq!(
            replies(&out),
            [
                serde_json::json!({"type":"error","code":"rejected","message":UNAVAILABLE_REASON,"cid":"a"})
            ]
        );
        assert!(out
            .iter()
            .any(|e| matches!(e, Effect::LogError(l) if l.contains("refused"))));

        let mut open = hooked(FailMode::Open);
        let call = hooked_publish(&mut open, &alice, "a");
        let out = answered(&mut open, &call, reply);
        assert_eq!(replies(&out)[0]["type"], "ack");
        assert_eq!(broadcasts(&out)[0].0["data"]["text"], "hi");
    }
}

#[test]
fn a_hook_that_is_down_is_logged_now_and_then_not_per_publish() {
    let mut m = hooked_in(large_burst(), FailMode::Closed);
    let alice = conn("c1", "alice");
    let mut logs = 0;
    for n in 0..150 {
        let call = hooked_publish(&mut m, &alice, &format!("c{n}"));
        let out = answered(&mut m, &call, HookReply::default());
        logs += out
            .iter()
            .filter(|e| matches!(e, Effect::LogError(_)))
            .count();
    }
    assert_eq!(logs, 2);
}

#[test]
fn later_publishes_of_a_socket_never_overtake_one_waiting_for_the_hook() {
    let mut m = hooked(FailMode::Closed);
    let alice = conn("c1", "alice");
    let bob = conn("c2", "bob");
    let a = hooked_publish(&mut m, &alice, "a");
    let b = hooked_publish(&mut m, &alice, "b");
    let c = hooked_publish(&mut m, &alice, "c");
    let x = hooked_publish(&mut m, &bob, "x");
    assert!(answered(&mut m, &c, accept()).is_empty());
    assert!(answered(&mut m, &b, answer(r#"{"action":"reject"}"#)).is_empty());
    // Bob's socket is not held back by alice's slow answer.
    let out = answered(&mut m, &x, accept());
    assert_eq!(replies(&out)[0]["seq"], 1);
    // a's answer settles a, b and c, in the order they were sent.
    let out = answered(&mut m, &a, accept());
    let frames = replies(&out);
    let summary: Vec<(String, String)> = frames
        .iter()
        .map(|f| {
            (
                f["cid"].as_str().unwrap().to_string(),
                f["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a".to_string(), "ack".to_string()),
            ("b".to_string(), "error".to_string()),
            ("c".to_string(), "ack".to_string())
        ]
    );
    assert_eq!(
        (&frames[0]["seq"], &frames[2]["seq"]),
        (&2.into(), &3.into())
    );
    let seqs: Vec<u64> = broadcasts(&out)
        .iter()
        .map(|b| b.0["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3]);
}

#[test]
fn a_socket_with_too_many_publishes_waiting_gets_an_error_frame() {
    let mut m = hooked_in(large_burst(), FailMode::Closed);
    let alice = conn("c1", "alice");
    for n in 0..MAX_PENDING_PER_ORIGIN {
        hooked_publish(&mut m, &alice, &format!("c{n}"));
    }
    let out = frame(&mut m, &alice, &publish_frame("one-more", "1"));
    assert!(calls(&out).is_empty());
    let refusal = &replies(&out)[0];
    assert_eq!(refusal["code"], "rate_limited");
    assert_eq!(refusal["cid"], "one-more");
    // The same user's HTTP publishes count too, up to the user's bound.
    let publish: Publish = serde_json::from_str(r#"{"cid":"h","data":1}"#).unwrap();
    for _ in MAX_PENDING_PER_ORIGIN..crate::publish_hook::MAX_PENDING_PER_USER {
        let pending = m.publish_as_user(&alice.user, &publish, &mut Vec::new());
        assert!(matches!(pending, Ok(UserPublish::AwaitHook(_))));
    }
    let err = m
        .publish_as_user(&alice.user, &publish, &mut Vec::new())
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::RateLimited);
}

#[test]
fn a_repeat_of_a_committed_message_is_answered_without_the_hook() {
    let mut m = hooked(FailMode::Closed);
    let alice = conn("c1", "alice");
    let call = hooked_publish(&mut m, &alice, "a");
    answered(&mut m, &call, accept());
    let out = frame(&mut m, &alice, &publish_frame("a", "2"));
    assert!(calls(&out).is_empty(), "no second call");
    let ack = &replies(&out)[0];
    assert_eq!((&ack["seq"], &ack["duplicate"]), (&1.into(), &true.into()));
    let publish: Publish = serde_json::from_str(r#"{"cid":"a","data":2}"#).unwrap();
    let published = m.publish_as_user(&alice.user, &publish, &mut Vec::new());
    assert!(matches!(published, Ok(UserPublish::Done(r)) if r.duplicate && r.seq == 1));
}

#[test]
fn a_repeat_of_a_pending_publish_gets_the_outcome_of_the_first_to_commit() {
    let mut m = hooked(FailMode::Closed);
    let tab1 = conn("c1", "alice");
    let tab2 = conn("c2", "alice");
    let first = hooked_publish(&mut m, &tab1, "a");
    let repeat = hooked_publish(&mut m, &tab2, "a");
    answered(&mut m, &first, accept());
    // Whatever the hook says about the repeat, the cid keeps its one message.
    let out = answered(&mut m, &repeat, answer(r#"{"action":"reject"}"#));
    let ack = &replies(&out)[0];
    assert_eq!((&ack["type"], &ack["seq"]), (&"ack".into(), &1.into()));
    assert_eq!(ack["duplicate"], true);
    assert!(broadcasts(&out).is_empty());
    assert_eq!(m.core().last_seq(), 1);
}

#[test]
fn publishes_of_a_closed_socket_are_dropped_uncommitted() {
    let mut m = hooked(FailMode::Closed);
    let alice = conn("c1", "alice");
    let call = hooked_publish(&mut m, &alice, "a");
    m.on_gone(&alice, &mut Vec::new());
    let out = answered(&mut m, &call, accept());
    assert!(replies(&out).is_empty() && broadcasts(&out).is_empty());
    assert_eq!(m.core().last_seq(), 0);
    // Its share of the bounds is free again.
    for n in 0..MAX_PENDING_PER_ORIGIN {
        hooked_publish(&mut m, &conn("c3", "alice"), &format!("n{n}"));
    }
}

#[test]
fn an_http_publish_waits_for_its_own_answer() {
    let mut m = hooked(FailMode::Closed);
    let publish: Publish = serde_json::from_str(r#"{"cid":"h1","data":{"t":1}}"#).unwrap();
    let Ok(UserPublish::AwaitHook(call)) =
        m.publish_as_user(&user("alice"), &publish, &mut Vec::new())
    else {
        panic!("an HTTP publish in a hooked room waits for the hook");
    };
    let mut out = Vec::new();
    let receipt = m
        .on_http_hook_answer(call.ticket, accept(), &mut out)
        .unwrap();
    assert_eq!((receipt.seq, receipt.duplicate), (1, false));
    assert!(
        !broadcasts(&out)[0].1,
        "an HTTP publish reaches every socket"
    );

    let publish: Publish = serde_json::from_str(r#"{"data":2}"#).unwrap();
    let Ok(UserPublish::AwaitHook(call)) =
        m.publish_as_user(&user("alice"), &publish, &mut Vec::new())
    else {
        panic!("waits");
    };
    let mut out = Vec::new();
    let err = m
        .on_http_hook_answer(
            call.ticket,
            answer(r#"{"action":"reject","reason":"spam"}"#),
            &mut out,
        )
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (ErrorCode::Rejected, "spam")
    );
    assert!(out.is_empty());
    // An answer the room no longer knows (it restarted) stores nothing.
    assert!(m
        .on_http_hook_answer(99, accept(), &mut Vec::new())
        .is_err());
    assert_eq!(m.core().last_seq(), 1);
}

#[test]
fn backend_broadcasts_and_rooms_without_the_hook_do_not_wait() {
    let mut m = hooked(FailMode::Closed);
    let backend: Publish = serde_json::from_str(r#"{"cid":"b","data":1}"#).unwrap();
    let receipt = m.publish_as_backend(&backend, &mut Vec::new()).unwrap();
    assert_eq!(receipt.seq, 1);
    let (mut plain, _) = machine();
    let out = frame(&mut plain, &conn("c1", "alice"), &publish_frame("a", "1"));
    assert!(calls(&out).is_empty());
    assert_eq!(replies(&out)[0]["type"], "ack");
}
