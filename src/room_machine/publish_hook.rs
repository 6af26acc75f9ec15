//! The room's side of the before-publish hook (see [`crate::publish_hook`]): in a hooked room a
//! user's publish or edit (socket or HTTP) waits in its origin's queue while the runtime calls
//! the hook, and is committed as sent, committed with the replaced data, or refused when its
//! answer is in and every earlier one of its origin was settled. Deletes add no content and
//! never wait. Rooms without the hook never get here.

use serde_json::value::RawValue;

use super::{Connection, Effect, MachineStore, Pace, RoomMachine};
use crate::auth::User;
use crate::edits::Change;
use crate::error::{RelayError, RelayResult};
use crate::protocol::{self, Publish, Receipt};
use crate::publish_hook::{self, Asked, FailMode, HookPolicy, Pending, Verdict};
use crate::room::{Published, Sender, Stamps};

/// Unusable answers between two log lines about them: a hook that is down must not log once
/// per publish.
const LOG_EVERY_UNUSABLE: u64 = 100;

/// What a publish or an edit waiting for the hook needs to be committed.
#[derive(Debug)]
pub(super) struct HookedPublish {
    user: User,
    cid: Option<String>,
    event: Option<String>,
    data: Box<RawValue>,
    /// `Some(seq)` for an edit of message `seq`, committed as its record.
    edit_of: Option<u64>,
}

impl HookedPublish {
    fn publish(user: &User, publish: &Publish) -> Self {
        HookedPublish {
            user: user.clone(),
            cid: publish.cid.clone(),
            event: publish.event.clone(),
            data: publish.data.clone(),
            edit_of: None,
        }
    }

    /// `None` for a delete.
    fn edit(user: &User, change: &Change) -> Option<Self> {
        Some(HookedPublish {
            user: user.clone(),
            cid: change.cid.clone(),
            event: None,
            data: change.data.clone()?,
            edit_of: Some(change.seq),
        })
    }
}

/// The machine's part of the hook.
#[derive(Debug, Default)]
pub(super) struct Hook {
    /// `Some` when this room's user publishes go through the hook.
    policy: Option<HookPolicy>,
    pending: Pending<HookedPublish>,
    /// Unusable answers so far.
    unusable: u64,
}

/// A call of the hook for the runtime to make; its answer comes back with the ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookCall {
    pub ticket: u64,
    /// The signed JSON body ([`publish_hook::request_body`]).
    pub body: String,
    /// The most of the answer worth reading.
    pub max_answer_bytes: usize,
}

/// The hook's answer as the runtime got it: `status` `None` without one in time.
#[derive(Debug, Clone, Default)]
pub struct HookReply {
    pub status: Option<u16>,
    pub body: String,
}

/// A user's HTTP publish: answered now, or after the hook call.
#[derive(Debug)]
pub enum UserPublish {
    Done(Receipt),
    AwaitHook(HookCall),
}

/// A hooked publish's first step.
enum HookStep {
    /// A repeat of a committed message: answered as such without asking the hook.
    Duplicate(Receipt),
    Call(HookCall),
}

impl<S: MachineStore, C: Stamps> RoomMachine<S, C> {
    /// Sends this room's user publishes through the hook (see
    /// [`crate::publish_hook::HookConfig::applies_to`]).
    pub fn publish_hook(mut self, policy: Option<HookPolicy>) -> Self {
        self.hook.policy = policy;
        self
    }

    /// Queues a user's publish or edit for the hook: `None` when the room has no hook. A
    /// repeat is answered as such, and an edit the user may not make is refused, without
    /// asking the hook.
    fn begin_hooked(
        &mut self,
        origin: Option<&str>,
        item: HookedPublish,
    ) -> Option<RelayResult<HookStep>> {
        let policy = self.hook.policy?;
        Some(self.queue_for_hook(policy, origin, item))
    }

    fn queue_for_hook(
        &mut self,
        policy: HookPolicy,
        origin: Option<&str>,
        item: HookedPublish,
    ) -> RelayResult<HookStep> {
        if let Some(receipt) = self.committed(&item.user, item.cid.as_deref())? {
            return Ok(HookStep::Duplicate(receipt));
        }
        let (asked, event) = match item.edit_of {
            None => {
                let event = item.event.as_deref().unwrap_or(protocol::DEFAULT_EVENT);
                (Asked::Publish, event.to_string())
            }
            Some(ref_seq) => {
                let target = self.changeable(&item.user, ref_seq)?;
                (Asked::Edit { ref_seq }, target.event)
            }
        };
        let body = publish_hook::request_body(
            asked,
            self.core.room(),
            &item.user,
            &event,
            &item.data,
            item.cid.as_deref(),
        );
        let user_id = item.user.id.clone();
        let retry_after_ms = u64::from(policy.timeout_ms);
        let ticket = self
            .hook
            .pending
            .add(origin, &user_id, item, retry_after_ms)?;
        Ok(HookStep::Call(HookCall {
            ticket,
            body,
            max_answer_bytes: policy.max_answer_bytes(),
        }))
    }

    /// The receipt of the user's message with this cid, as a repeat, when it is committed.
    fn committed(&self, user: &User, cid: Option<&str>) -> RelayResult<Option<Receipt>> {
        let Some(cid) = cid else {
            return Ok(None);
        };
        let receipt = self
            .core
            .store()
            .find_by_cid(&Sender::User(user).key(), cid)?;
        Ok(receipt.map(|receipt| Receipt {
            duplicate: true,
            ..receipt
        }))
    }

    /// A socket's publish in a hooked room: queued behind the socket's earlier ones with a call
    /// of the hook, answered at once as a repeat, or refused at a bound. False when the room
    /// has no hook (the publish goes on as before).
    pub(super) fn publish_via_hook(
        &mut self,
        conn: &Connection,
        publish: &Publish,
        out: &mut Vec<Effect>,
    ) -> bool {
        self.hook.policy.is_some()
            && self.socket_via_hook(conn, HookedPublish::publish(&conn.user, publish), out)
    }

    /// A socket's edit in a hooked room, queued like its publishes (after the check of who may
    /// make it). False when the room has no hook, and for a delete.
    pub(super) fn edit_via_hook(
        &mut self,
        conn: &Connection,
        change: &Change,
        out: &mut Vec<Effect>,
    ) -> bool {
        if self.hook.policy.is_none() {
            return false;
        }
        match HookedPublish::edit(&conn.user, change) {
            Some(item) => self.socket_via_hook(conn, item, out),
            None => false,
        }
    }

    fn socket_via_hook(
        &mut self,
        conn: &Connection,
        item: HookedPublish,
        out: &mut Vec<Effect>,
    ) -> bool {
        let cid = item.cid.clone().unwrap_or_default();
        let Some(step) = self.begin_hooked(Some(&conn.conn_id), item) else {
            return false;
        };
        match step {
            Ok(HookStep::Duplicate(receipt)) => {
                out.push(Effect::Reply(protocol::ack_frame(&cid, &receipt)))
            }
            Ok(HookStep::Call(call)) => out.push(Effect::CallHook(call)),
            Err(err) => self.reject(conn, err, Some(&cid), out),
        }
        true
    }

    /// An HTTP publish in a hooked room, after the checks every user publish has.
    pub(super) fn http_publish_via_hook(
        &mut self,
        user: &User,
        publish: &Publish,
    ) -> Option<RelayResult<UserPublish>> {
        self.http_via_hook(HookedPublish::publish(user, publish))
    }

    /// An HTTP edit in a hooked room (`None` for a delete), after the checks every user
    /// change has.
    pub(super) fn http_edit_via_hook(
        &mut self,
        user: &User,
        change: &Change,
    ) -> Option<RelayResult<UserPublish>> {
        self.http_via_hook(HookedPublish::edit(user, change)?)
    }

    fn http_via_hook(&mut self, item: HookedPublish) -> Option<RelayResult<UserPublish>> {
        let step = self.begin_hooked(None, item)?;
        Some(step.map(|step| match step {
            HookStep::Duplicate(receipt) => UserPublish::Done(receipt),
            HookStep::Call(call) => UserPublish::AwaitHook(call),
        }))
    }

    /// The hook answered a socket's publish or edit (the event's socket): it and the ones
    /// behind it that were answered already are settled in order, each with an `ack` or an
    /// `error` frame (`rejected` and the reason); one whose socket closed meanwhile is
    /// forgotten.
    pub fn on_hook_answer(&mut self, ticket: u64, reply: HookReply, out: &mut Vec<Effect>) {
        let Some(verdict) = self.verdict(&reply, out) else {
            return;
        };
        for (item, verdict) in self.hook.pending.answered(ticket, verdict) {
            let cid = item.cid.clone().unwrap_or_default();
            match self.settle_hooked(item, verdict, true, out) {
                Ok(receipt) => out.push(Effect::Reply(protocol::ack_frame(&cid, &receipt))),
                Err(err) => out.push(Effect::Reply(err.to_frame(Some(&cid)))),
            }
        }
    }

    /// The hook answered an HTTP publish or edit: its receipt, or why it was refused.
    pub fn on_http_hook_answer(
        &mut self,
        ticket: u64,
        reply: HookReply,
        out: &mut Vec<Effect>,
    ) -> RelayResult<Receipt> {
        let verdict = self.verdict(&reply, out).ok_or_else(RelayError::internal)?;
        let Some((item, verdict)) = self.hook.pending.answered(ticket, verdict).pop() else {
            // The room restarted meanwhile: the publish is unknown and nothing was stored.
            return Err(RelayError::internal());
        };
        self.settle_hooked(item, verdict, false, out)
    }

    /// A socket closed: its publishes still waiting for the hook are dropped uncommitted
    /// (the client sends them again when it reconnects, as for any publish without an ack).
    pub(super) fn hooked_socket_gone(&mut self, conn_id: &str) {
        self.hook.pending.drop_origin(conn_id);
    }

    /// The verdict of a reply, by the fail mode when it is unusable (logged now and then).
    fn verdict(&mut self, reply: &HookReply, out: &mut Vec<Effect>) -> Option<Verdict> {
        let policy = self.hook.policy?;
        let answer = publish_hook::read_answer(reply.status, &reply.body, policy.max_data_bytes);
        if let Err(why) = answer {
            self.hook.unusable += 1;
            if self.hook.unusable % LOG_EVERY_UNUSABLE == 1 {
                let outcome = match policy.fail {
                    FailMode::Open => "accepted as sent",
                    FailMode::Closed => "refused",
                };
                out.push(Effect::LogError(format!(
                    "publish hook of {}: {why}; the publish is {outcome} ({} unusable answers so far)",
                    self.core.room(),
                    self.hook.unusable
                )));
            }
        }
        Some(policy.decide(answer))
    }

    /// Commits a hooked publish or edit as its verdict says. A repeat of a message committed
    /// while it waited is answered as a repeat whatever the verdict, so that a cid keeps one
    /// outcome; an edit is checked again (its message may have been deleted meanwhile).
    fn settle_hooked(
        &mut self,
        item: HookedPublish,
        verdict: Verdict,
        skip_origin: bool,
        out: &mut Vec<Effect>,
    ) -> RelayResult<Receipt> {
        let data = match verdict {
            Verdict::Accept => item.data,
            Verdict::Replace(data) => data,
            Verdict::Reject(reason) => {
                return match self.committed(&item.user, item.cid.as_deref())? {
                    Some(receipt) => Ok(receipt),
                    None => Err(Verdict::rejection(&reason)),
                };
            }
        };
        if let Some(ref_seq) = item.edit_of {
            let change = Change {
                cid: item.cid,
                seq: ref_seq,
                data: Some(data),
            };
            let published = self.commit_change(&item.user, &change)?;
            let receipt = published.receipt().clone();
            self.announce_change(&item.user, &change, published, skip_origin, out);
            return Ok(receipt);
        }
        let publish = Publish {
            cid: item.cid,
            event: item.event,
            data,
        };
        match self
            .core
            .publish(Sender::User(&item.user), &publish, &self.clock)?
        {
            Published::New { receipt, frame } => {
                self.message_created(Some(&item.user), &receipt, &frame, out);
                out.push(Effect::Broadcast {
                    frame,
                    skip_origin,
                    pace: Pace::Now,
                });
                self.after_publish(out);
                Ok(receipt)
            }
            Published::Duplicate(receipt) => Ok(receipt),
        }
    }
}
