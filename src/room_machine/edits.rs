//! Edits and deletes carried out by the room (see [`crate::edits`]): checked, committed as a
//! record at a new seq and applied to the message in the same turn, then acked, broadcast,
//! archived and told as an outgoing event like a publish.

use super::{Connection, Effect, MachineStore, Pace, RoomMachine};
use crate::auth::User;
use crate::disconnect;
use crate::edits::{self, Applied, Change};
use crate::error::{RelayError, RelayResult};
use crate::protocol::{self, Receipt};
use crate::rate_limit::Verdict;
use crate::room::{self, Published, Stamps};

impl<S: MachineStore, C: Stamps> RoomMachine<S, C> {
    /// An `edit` or `delete` frame: limited like a publish (the same bucket), acked to the
    /// sender and broadcast to the others.
    pub(super) fn on_change(&mut self, conn: &Connection, change: &Change, out: &mut Vec<Effect>) {
        let cid = change.cid.as_deref().unwrap_or_default();
        match self.rates.publish(&conn.user.id, self.clock.now_ms()) {
            Verdict::Allow => {}
            Verdict::Refuse { retry_after_ms } => {
                let refusal = RelayError::rate_limited(retry_after_ms).to_frame(Some(cid));
                out.push(Effect::Reply(refusal));
                return;
            }
            Verdict::Close => {
                out.push(Effect::Close(disconnect::RATE_LIMIT_ABUSE));
                return;
            }
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
    /// socket, the user's own too.
    pub fn change_as_user(
        &mut self,
        user: &User,
        change: &Change,
        out: &mut Vec<Effect>,
    ) -> RelayResult<Receipt> {
        self.check_member(user)?;
        match self.rates.publish(&user.id, self.clock.now_ms()) {
            Verdict::Allow => {}
            Verdict::Refuse { retry_after_ms } => {
                return Err(RelayError::rate_limited(retry_after_ms))
            }
            Verdict::Close => return Err(RelayError::rate_limited(1_000)),
        }
        let published = self.commit_change(user, change)?;
        let receipt = published.receipt().clone();
        self.announce_change(user, change, published, false, out);
        Ok(receipt)
    }

    /// A repeated (user, cid) gets the first receipt back, as for a publish (cids are one
    /// namespace per sender); otherwise the change is checked, its record committed at the
    /// next seq and applied to the message it names.
    fn commit_change(&mut self, user: &User, change: &Change) -> RelayResult<Published> {
        let store = self.core.store();
        if let Some(cid) = &change.cid {
            if let Some(original) = store.find_by_cid(&format!("u:{}", user.id), cid)? {
                return Ok(Published::Duplicate(Receipt {
                    duplicate: true,
                    ..original
                }));
            }
        }
        let target = store.edit_target(change.seq)?;
        edits::check(
            user,
            change.seq,
            target.as_ref(),
            &self.limits.moderator_roles,
        )?;
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
    fn announce_change(
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
    use crate::room_machine::publish_hook::UserPublish;
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
        let over_http = m
            .change_as_user(
                &ann.user,
                &Change::from_http_body("{\"cid\":\"d\"}", 1, true, 1000).unwrap(),
                &mut out,
            )
            .unwrap();
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
        let receipt = m
            .change_as_user(
                &moderator,
                &Change::from_http_body("", 1, true, 100).unwrap(),
                &mut out,
            )
            .unwrap();
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
}
