//! Edits and deletes carried out by the room (see [`crate::edits`]): checked, committed as a
//! record at a new seq and applied to the message in the same turn, then acked, broadcast,
//! archived and told as an outgoing event like a publish.

use super::publish_hook::UserPublish;
use super::{Connection, Effect, MachineStore, Pace, RoomMachine};
use crate::auth::User;
use crate::edits::{self, Applied, Change, Target};
use crate::error::{RelayError, RelayResult};
use crate::protocol::{self, Receipt};
use crate::room::{self, Published, Stamps};

impl<S: MachineStore, C: Stamps> RoomMachine<S, C> {
    /// An `edit` or `delete` frame: limited like a publish (the same bucket), acked to the
    /// sender and broadcast to the others.
    pub(super) fn on_change(&mut self, conn: &Connection, change: &Change, out: &mut Vec<Effect>) {
        let cid = change.cid.as_deref().unwrap_or_default();
        if !self.within_publish_rate(conn, cid, out) {
            return;
        }
        if self.edit_via_hook(conn, change, out) {
            return;
        }
        match self.commit_change(&conn.user, change) {
            Ok(published) => {
                out.push(Effect::Reply(protocol::ack_frame(cid, published.receipt())));
                self.announce_change(&conn.user, change, published, true, out);
            }
            Err(err) => self.reject(conn, err, Some(cid), out),
        }
    }

    /// An edit or delete over HTTP, limited like a user's HTTP publish; broadcast to every
    /// socket, the user's own too. In a hooked room an edit waits for the hook call the
    /// runtime makes.
    pub fn change_as_user(
        &mut self,
        user: &User,
        change: &Change,
        out: &mut Vec<Effect>,
    ) -> RelayResult<UserPublish> {
        self.admit_http_publish(user)?;
        if let Some(hooked) = self.http_edit_via_hook(user, change) {
            return hooked;
        }
        let published = self.commit_change(user, change)?;
        let receipt = published.receipt().clone();
        self.announce_change(user, change, published, false, out);
        Ok(UserPublish::Done(receipt))
    }

    /// Message `seq` as the room knows it, when `user` may change it.
    pub(super) fn changeable(&self, user: &User, seq: u64) -> RelayResult<Target> {
        let target = self.core.store().edit_target(seq)?;
        edits::check(user, seq, target.as_ref(), &self.limits.moderator_roles)?;
        target.ok_or_else(RelayError::internal)
    }

    /// A repeated (user, cid) gets the first receipt back, as for a publish (cids are one
    /// namespace per sender); otherwise the change is checked, its record committed at the
    /// next seq and applied to the message it names.
    pub(super) fn commit_change(&mut self, user: &User, change: &Change) -> RelayResult<Published> {
        let store = self.core.store();
        if let Some(cid) = &change.cid {
            if let Some(original) = store.find_by_cid(&format!("u:{}", user.id), cid)? {
                return Ok(Published::Duplicate(Receipt {
                    duplicate: true,
                    ..original
                }));
            }
        }
        self.changeable(user, change.seq)?;
        let seq = self.core.last_seq() + 1;
        let ts = room::rfc3339_ms(self.clock.now_ms());
        let record = edits::record(
            self.core.room(),
            seq,
            self.clock.new_id(),
            ts.clone(),
            user,
            change,
        )?;
        if !self.core.append(&record)? {
            return Err(RelayError::internal());
        }
        self.core.store().apply_change(&Applied {
            ref_seq: change.seq,
            seq,
            data: change.data.as_ref().map(|data| data.get().to_string()),
            at: ts.clone(),
        })?;
        Ok(Published::New {
            receipt: Receipt {
                seq,
                id: record.id,
                ts,
                duplicate: false,
            },
            frame: record.body,
        })
    }

    /// A new record goes to the room's sockets, the outgoing events and the archive; a
    /// repeated one nowhere.
    pub(super) fn announce_change(
        &mut self,
        user: &User,
        change: &Change,
        published: Published,
        skip_origin: bool,
        out: &mut Vec<Effect>,
    ) {
        let Published::New { receipt, frame } = published else {
            return;
        };
        self.message_changed(user, &receipt, &frame, change.seq, change.is_delete(), out);
        out.push(Effect::Broadcast {
            frame,
            skip_origin,
            pace: Pace::Now,
        });
        self.schedule_archive(out);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use serde_json::Value;

    use super::*;
    use crate::config::Limits;
    use crate::error::ErrorCode;
    use crate::paging::{Direction, SeqRange};
    use crate::protocol::Publish;
    use crate::room_test_support::{machine_over, test_store, SqlMachine as Machine};

    const T0: i64 = 1_800_000_000_000;

    fn machine_with(limits: Limits) -> (Machine, Rc<Cell<i64>>) {
        let (m, now) = machine_over(test_store(), "chat:1", T0, limits);
        (m.events(true), now)
    }

    fn machine() -> (Machine, Rc<Cell<i64>>) {
        machine_with(Limits::from_vars(|_| None))
    }

    fn user(id: &str, role: Option<&str>) -> User {
        User {
            id: id.into(),
            name: None,
            role: role.map(str::to_string),
        }
    }

    fn conn(user: User) -> Connection {
        Connection {
            conn_id: format!("c-{}", user.id),
            user,
            exp: T0 / 1000 + 3600,
            counts: false,
        }
    }

    fn publish(m: &mut Machine, as_user: &User, text: &str) -> u64 {
        let publish: Publish =
            serde_json::from_str(&format!(r#"{{"data":{{"text":"{text}"}}}}"#)).unwrap();
        match m
            .publish_as_user(as_user, &publish, &mut Vec::new())
            .unwrap()
        {
            UserPublish::Done(receipt) => receipt.seq,
            UserPublish::AwaitHook(_) => panic!("this room has no hook"),
        }
    }

    /// The receipt of a change committed at once.
    fn done(changed: RelayResult<UserPublish>) -> Receipt {
        match changed.unwrap() {
            UserPublish::Done(receipt) => receipt,
            UserPublish::AwaitHook(call) => panic!("unexpected hook call {call:?}"),
        }
    }

    fn frame(m: &mut Machine, c: &Connection, text: &str) -> Vec<Effect> {
        let mut out = Vec::new();
        m.on_frame(c, Some(text), &mut out);
        out
    }

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn reply(out: &[Effect]) -> Value {
        out.iter()
            .find_map(|e| match e {
                Effect::Reply(f) => Some(json(f)),
                _ => None,
            })
            .expect("a reply")
    }

    fn broadcast(out: &[Effect]) -> Option<(Value, bool)> {
        out.iter().find_map(|e| match e {
            Effect::Broadcast {
                frame, skip_origin, ..
            } => Some((json(frame), *skip_origin)),
            _ => None,
        })
    }

    fn history(m: &Machine) -> Vec<Value> {
        let range = SeqRange {
            after: 0,
            before: crate::paging::SEQ_CEILING,
            direction: Direction::Forward,
            fetch_limit: 100,
        };
        let (rows, _) = m.core().local_page(&range).unwrap();
        rows.iter().map(|(_, body)| json(body)).collect()
    }

    fn events(m: &Machine) -> Vec<Value> {
        m.core()
            .store()
            .pending_events(100)
            .unwrap()
            .iter()
            .map(|(_, e)| json(e))
            .collect()
    }

    #[test]
    fn the_author_edits_then_deletes_each_a_new_seq_acked_broadcast_and_told() {
        let (mut m, now) = machine();
        let ann = conn(user("ann", None));
        let seq = publish(&mut m, &ann.user, "first");
        now.set(T0 + 1_000);
        let out = frame(
            &mut m,
            &ann,
            r#"{"type":"edit","cid":"e1","seq":1,"data":{"text":"second"}}"#,
        );
        let ack = reply(&out);
        assert_eq!(
            (&ack["type"], &ack["seq"], &ack["cid"]),
            (&"ack".into(), &2.into(), &"e1".into())
        );
        let (record, skip_origin) = broadcast(&out).expect("broadcast");
        assert!(skip_origin, "the sender has the ack");
        assert_eq!(record["event"], "message.edited");
        assert_eq!(record["ref_seq"], seq);
        assert_eq!(record["data"]["text"], "second");
        assert_eq!(record["from"]["id"], "ann");

        let shown = history(&m);
        assert_eq!(
            shown[0]["data"]["text"], "second",
            "history shows the current version"
        );
        assert_eq!(shown[0]["edited_at"], "2027-01-15T08:00:01.000Z");
        assert_eq!(shown[0]["seq"], 1);
        assert_eq!(
            shown[1]["event"], "message.edited",
            "the record stays in history"
        );

        now.set(T0 + 2_000);
        let out = frame(&mut m, &ann, r#"{"type":"delete","cid":"d1","seq":1}"#);
        assert_eq!(reply(&out)["seq"], 3);
        let (record, _) = broadcast(&out).unwrap();
        assert_eq!(
            (&record["event"], &record["data"]),
            (&"message.deleted".into(), &Value::Null)
        );
        let shown = history(&m);
        assert_eq!(shown[0]["data"], Value::Null);
        assert_eq!(shown[0]["deleted_at"], "2027-01-15T08:00:02.000Z");
        assert_eq!(shown[0]["from"]["id"], "ann", "who wrote it stays");

        let told: Vec<(Value, Value)> = events(&m)
            .iter()
            .map(|e| (e["type"].clone(), e["ref_seq"].clone()))
            .collect();
        assert_eq!(
            told,
            [
                ("message.created".into(), Value::Null),
                ("message.edited".into(), 1.into()),
                ("message.deleted".into(), 1.into())
            ]
        );
        assert_eq!(events(&m)[2]["message"]["seq"], 3);

        // A deleted message cannot be edited or deleted again.
        let out = frame(
            &mut m,
            &ann,
            r#"{"type":"edit","cid":"e2","seq":1,"data":1}"#,
        );
        assert_eq!(
            (
                &reply(&out)["code"],
                &reply(&out)["message"],
                &reply(&out)["cid"]
            ),
            (
                &"not_found".into(),
                &"message 1 was deleted".into(),
                &"e2".into()
            )
        );
        assert!(broadcast(&out).is_none());
        assert_eq!(m.core().last_seq(), 3, "nothing committed");
    }

    #[test]
    fn a_repeated_cid_is_acked_as_a_duplicate_even_after_the_delete() {
        let (mut m, _) = machine();
        let ann = conn(user("ann", None));
        publish(&mut m, &ann.user, "x");
        let first = frame(&mut m, &ann, r#"{"type":"delete","cid":"d","seq":1}"#);
        let again = frame(&mut m, &ann, r#"{"type":"delete","cid":"d","seq":1}"#);
        assert_eq!(reply(&again)["duplicate"], true);
        assert_eq!(reply(&again)["seq"], reply(&first)["seq"]);
        assert_eq!(reply(&again)["id"], reply(&first)["id"]);
        assert!(broadcast(&again).is_none());
        assert_eq!(m.core().last_seq(), 2);
        let mut out = Vec::new();
        let over_http = done(m.change_as_user(
            &ann.user,
            &Change::from_http_body("{\"cid\":\"d\"}", 1, true, 1000).unwrap(),
            &mut out,
        ));
        assert!(over_http.duplicate && over_http.seq == 2 && out.is_empty());
    }

    #[test]
    fn others_are_refused_moderators_may_and_backend_messages_are_for_moderators() {
        let (mut m, _) = machine();
        let ann = user("ann", None);
        publish(&mut m, &ann, "ann's");
        let backend: Publish = serde_json::from_str(r#"{"data":"from the backend"}"#).unwrap();
        m.publish_as_backend(&backend, &mut Vec::new()).unwrap();

        let bob = conn(user("bob", Some("member")));
        let out = frame(
            &mut m,
            &bob,
            r#"{"type":"edit","cid":"b","seq":1,"data":"mine"}"#,
        );
        assert_eq!(reply(&out)["code"], "forbidden");
        let out = frame(
            &mut m,
            &conn(ann.clone()),
            r#"{"type":"delete","cid":"a","seq":2}"#,
        );
        assert_eq!(reply(&out)["code"], "forbidden", "a backend's message");
        let mut out = Vec::new();
        let refused = m
            .change_as_user(
                &bob.user,
                &Change::from_http_body("", 1, true, 100).unwrap(),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::Forbidden);
        assert_eq!(m.core().last_seq(), 2, "nothing committed");

        let moderator = user("mo", Some("moderator"));
        let mut out = Vec::new();
        let receipt = done(m.change_as_user(
            &moderator,
            &Change::from_http_body("", 1, true, 100).unwrap(),
            &mut out,
        ));
        assert_eq!(receipt.seq, 3);
        let (record, skip_origin) = broadcast(&out).unwrap();
        assert!(!skip_origin, "over HTTP every socket gets it");
        assert_eq!(record["from"]["id"], "mo");
        let admin = conn(user("root", Some("admin")));
        let out = frame(
            &mut m,
            &admin,
            r#"{"type":"edit","cid":"x","seq":2,"data":"fixed"}"#,
        );
        assert_eq!(reply(&out)["type"], "ack");
        assert_eq!(history(&m)[1]["data"], "fixed");

        // Missing seqs and records are clear errors.
        let out = frame(
            &mut m,
            &admin,
            r#"{"type":"edit","cid":"y","seq":99,"data":1}"#,
        );
        assert_eq!(reply(&out)["message"], "no message 99 here");
        let out = frame(&mut m, &admin, r#"{"type":"delete","cid":"z","seq":3}"#);
        assert_eq!(reply(&out)["code"], "bad_request");
    }

    #[test]
    fn moderator_roles_come_from_the_variable() {
        let limits = Limits::from_vars(|name| (name == "MODERATOR_ROLES").then(|| "staff".into()));
        let (mut m, _) = machine_with(limits);
        publish(&mut m, &user("ann", None), "x");
        let mo = conn(user("mo", Some("moderator")));
        let out = frame(&mut m, &mo, r#"{"type":"delete","cid":"a","seq":1}"#);
        assert_eq!(reply(&out)["code"], "forbidden");
        let staff = conn(user("st", Some("staff")));
        let out = frame(&mut m, &staff, r#"{"type":"delete","cid":"a","seq":1}"#);
        assert_eq!(reply(&out)["type"], "ack");
    }

    #[test]
    fn history_from_the_archive_shows_changes_the_archive_does_not_have_yet() {
        let (mut m, _) = machine();
        let ann = conn(user("ann", None));
        for n in 0..4 {
            publish(&mut m, &ann.user, &format!("m{n}"));
        }
        // Bodies 1..=3 archived and pruned: the archive's copies are the originals.
        let archived: Vec<(u64, String)> = m
            .core()
            .store()
            .unarchived(0, 3)
            .unwrap()
            .into_iter()
            .map(|msg| (msg.seq, msg.body))
            .collect();
        m.core().store().prune_bodies(3, 1).unwrap();
        frame(
            &mut m,
            &ann,
            r#"{"type":"edit","cid":"e","seq":1,"data":"new"}"#,
        );
        frame(
            &mut m,
            &ann,
            r#"{"type":"edit","cid":"f","seq":2,"data":"edited"}"#,
        );
        frame(&mut m, &ann, r#"{"type":"delete","cid":"g","seq":2}"#);
        let current = m.core().store().current_versions(archived.clone()).unwrap();
        let bodies: Vec<Value> = current.iter().map(|(_, b)| json(b)).collect();
        assert_eq!(
            (&bodies[0]["data"], &bodies[0]["edited_at"]),
            (&"new".into(), &history(&m)[1]["ts"])
        );
        assert_eq!(bodies[1]["data"], Value::Null);
        assert!(bodies[1]["deleted_at"].is_string() && bodies[1]["edited_at"].is_string());
        assert_eq!(
            bodies[2],
            json(&archived[2].1),
            "an unchanged message as it was"
        );
        // Applying again what the archive already has changes nothing.
        let twice = m.core().store().current_versions(current.clone()).unwrap();
        assert_eq!(twice, current);
    }

    #[test]
    fn records_are_not_unread_messages() {
        let (mut m, _) = machine();
        let ann = conn(user("ann", None));
        publish(&mut m, &ann.user, "one");
        publish(&mut m, &ann.user, "two");
        frame(
            &mut m,
            &ann,
            r#"{"type":"edit","cid":"e","seq":1,"data":"uno"}"#,
        );
        frame(&mut m, &ann, r#"{"type":"delete","cid":"d","seq":2}"#);
        assert_eq!(m.core().store().unread_count("bob").unwrap(), 2);
    }

    #[test]
    fn publishes_cannot_pass_for_records() {
        let (mut m, _) = machine();
        let out = frame(
            &mut m,
            &conn(user("ann", None)),
            r#"{"type":"publish","cid":"p","event":"message.edited","data":1}"#,
        );
        assert_eq!(reply(&out)["code"], "bad_request");
        assert_eq!(m.core().last_seq(), 0);
    }

    mod hooked {
        //! Edits in a room with the before-publish hook: asked like a publish, after the
        //! author/moderator check; deletes never ask.

        use super::*;
        use crate::publish_hook::{FailMode, HookPolicy, UNAVAILABLE_REASON};
        use crate::room_machine::publish_hook::{HookCall, HookReply};

        /// A room whose message 1 ("harmless", by ann) was published before the hook was set,
        /// then hooked.
        fn hooked_with_a_message(fail: FailMode) -> Machine {
            let (mut m, _) = machine();
            publish(&mut m, &user("ann", None), "harmless");
            m.publish_hook(Some(HookPolicy {
                fail,
                timeout_ms: 500,
                max_data_bytes: 1_000,
            }))
        }

        fn call_of(out: &[Effect]) -> HookCall {
            match out {
                [Effect::CallHook(call)] => call.clone(),
                other => panic!("expected one hook call, got {other:?}"),
            }
        }

        fn no_call(out: &[Effect]) {
            assert!(
                !out.iter().any(|e| matches!(e, Effect::CallHook(_))),
                "the hook is not asked: {out:?}"
            );
        }

        fn answer(m: &mut Machine, call: &HookCall, body: &str) -> Vec<Effect> {
            let reply = HookReply {
                status: Some(200),
                body: body.to_string(),
            };
            let mut out = Vec::new();
            m.on_hook_answer(call.ticket, reply, &mut out);
            out
        }

        fn replies(out: &[Effect]) -> Vec<Value> {
            out.iter()
                .filter_map(|e| match e {
                    Effect::Reply(f) => Some(json(f)),
                    _ => None,
                })
                .collect()
        }

        const EDIT: &str = r#"{"type":"edit","cid":"e1","seq":1,"data":{"text":"buy now"}}"#;

        #[test]
        fn an_edit_asks_the_hook_first_and_is_committed_on_accept() {
            let mut m = hooked_with_a_message(FailMode::Closed);
            let ann = conn(user("ann", None));
            let call = call_of(&frame(&mut m, &ann, EDIT));
            assert_eq!(
                m.core().last_seq(),
                1,
                "nothing committed before the answer"
            );
            assert_eq!(
                json(&call.body),
                serde_json::json!({"kind":"edit","ref_seq":1,"room":"chat:1",
                    "user":{"id":"ann"},"event":"message","data":{"text":"buy now"},"cid":"e1"})
            );
            let out = answer(&mut m, &call, r#"{"action":"accept"}"#);
            let ack = reply(&out);
            assert_eq!((&ack["type"], &ack["seq"]), (&"ack".into(), &2.into()));
            let (record, skip_origin) = broadcast(&out).expect("broadcast");
            assert!(skip_origin);
            assert_eq!(
                (&record["event"], &record["data"]["text"]),
                (&"message.edited".into(), &"buy now".into())
            );
            assert_eq!(history(&m)[0]["data"]["text"], "buy now");
        }

        #[test]
        fn a_rejected_edit_commits_nothing_and_gets_the_reason() {
            let mut m = hooked_with_a_message(FailMode::Closed);
            let ann = conn(user("ann", None));
            let call = call_of(&frame(&mut m, &ann, EDIT));
            let out = answer(&mut m, &call, r#"{"action":"reject","reason":"no ads"}"#);
            assert_eq!(
                replies(&out),
                [
                    serde_json::json!({"type":"error","code":"rejected","message":"no ads","cid":"e1"})
                ]
            );
            assert!(broadcast(&out).is_none());
            assert_eq!(m.core().last_seq(), 1);
            assert_eq!(history(&m)[0]["data"]["text"], "harmless");
            assert!(history(&m)[0]["edited_at"].is_null());
            assert_eq!(events(&m).len(), 1, "only the publish was told");
        }

        #[test]
        fn a_replaced_edit_is_committed_with_the_hooks_data() {
            let mut m = hooked_with_a_message(FailMode::Closed);
            let ann = conn(user("ann", None));
            let call = call_of(&frame(&mut m, &ann, EDIT));
            let out = answer(
                &mut m,
                &call,
                r#"{"action":"replace","data":{"text":"***"}}"#,
            );
            assert_eq!(reply(&out)["type"], "ack");
            let (record, _) = broadcast(&out).unwrap();
            assert_eq!(record["data"]["text"], "***");
            assert_eq!(history(&m)[0]["data"]["text"], "***");
            assert_eq!(history(&m)[1]["data"]["text"], "***", "the record too");
        }

        #[test]
        fn without_a_usable_answer_a_closed_room_refuses_the_edit() {
            let mut m = hooked_with_a_message(FailMode::Closed);
            let ann = conn(user("ann", None));
            let call = call_of(&frame(&mut m, &ann, EDIT));
            let mut out = Vec::new();
            m.on_hook_answer(call.ticket, HookReply::default(), &mut out);
            let refusal = replies(&out)
                .into_iter()
                .find(|r| r["type"] == "error")
                .expect("an error frame");
            assert_eq!(
                (&refusal["code"], &refusal["message"]),
                (&"rejected".into(), &UNAVAILABLE_REASON.into())
            );
            assert_eq!(m.core().last_seq(), 1);
        }

        #[test]
        fn an_edit_is_decided_after_an_earlier_hooked_publish_of_its_socket() {
            let mut m = hooked_with_a_message(FailMode::Closed);
            let ann = conn(user("ann", None));
            let publish_call = call_of(&frame(
                &mut m,
                &ann,
                r#"{"type":"publish","cid":"p","data":"second"}"#,
            ));
            let edit_call = call_of(&frame(&mut m, &ann, EDIT));
            let early = answer(&mut m, &edit_call, r#"{"action":"accept"}"#);
            assert!(early.is_empty(), "held back behind the publish: {early:?}");
            assert_eq!(m.core().last_seq(), 1);
            let out = answer(&mut m, &publish_call, r#"{"action":"accept"}"#);
            let acks: Vec<(Value, Value)> = replies(&out)
                .iter()
                .map(|r| (r["cid"].clone(), r["seq"].clone()))
                .collect();
            assert_eq!(acks, [("p".into(), 2.into()), ("e1".into(), 3.into())]);
        }

        #[test]
        fn a_refused_edit_and_a_delete_never_reach_the_hook() {
            let mut m = hooked_with_a_message(FailMode::Closed);
            let bob = conn(user("bob", None));
            let out = frame(&mut m, &bob, EDIT);
            no_call(&out);
            assert_eq!(
                (&reply(&out)["code"], &reply(&out)["cid"]),
                (&"forbidden".into(), &"e1".into())
            );
            let out = frame(
                &mut m,
                &bob,
                r#"{"type":"edit","cid":"e9","seq":9,"data":1}"#,
            );
            no_call(&out);
            assert_eq!(reply(&out)["code"], "not_found");

            let ann = conn(user("ann", None));
            let out = frame(&mut m, &ann, r#"{"type":"delete","cid":"d","seq":1}"#);
            no_call(&out);
            assert_eq!(
                (&reply(&out)["type"], &reply(&out)["seq"]),
                (&"ack".into(), &2.into())
            );
            // An edit of the deleted message is refused before the hook too.
            no_call(&frame(&mut m, &ann, EDIT));
        }

        #[test]
        fn an_http_edit_waits_for_the_hook_and_an_http_delete_does_not() {
            let mut m = hooked_with_a_message(FailMode::Closed);
            let ann = user("ann", None);
            let body = r#"{"cid":"h1","data":{"text":"spam"}}"#;
            let edit = Change::from_http_body(body, 1, false, 1000).unwrap();
            let call = match m.change_as_user(&ann, &edit, &mut Vec::new()).unwrap() {
                UserPublish::AwaitHook(call) => call,
                UserPublish::Done(receipt) => panic!("committed unasked: {receipt:?}"),
            };
            assert_eq!(json(&call.body)["kind"], "edit");
            assert_eq!(m.core().last_seq(), 1);
            let reply = HookReply {
                status: Some(200),
                body: r#"{"action":"reject","reason":"no spam"}"#.to_string(),
            };
            let refused = m
                .on_http_hook_answer(call.ticket, reply, &mut Vec::new())
                .unwrap_err();
            assert_eq!(
                (refused.code, refused.message.as_str()),
                (ErrorCode::Rejected, "no spam")
            );
            assert_eq!(m.core().last_seq(), 1);

            let delete = Change::from_http_body("", 1, true, 1000).unwrap();
            let mut out = Vec::new();
            assert_eq!(done(m.change_as_user(&ann, &delete, &mut out)).seq, 2);
            no_call(&out);
        }

        #[test]
        fn a_repeated_edit_is_acked_as_a_duplicate_without_asking_again() {
            let mut m = hooked_with_a_message(FailMode::Closed);
            let ann = conn(user("ann", None));
            let call = call_of(&frame(&mut m, &ann, EDIT));
            answer(&mut m, &call, r#"{"action":"accept"}"#);
            let out = frame(&mut m, &ann, EDIT);
            no_call(&out);
            assert_eq!(
                (&reply(&out)["seq"], &reply(&out)["duplicate"]),
                (&2.into(), &true.into())
            );
        }
    }
}
