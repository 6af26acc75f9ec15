//! The room's side of the before-publish hook (see [`crate::publish_hook`]): in a hooked room a
//! user's publish (socket or HTTP) waits in its origin's queue while the runtime calls the hook,
//! and is committed as sent, committed with the replaced data, or refused when its answer is in
//! and every earlier publish of its origin was settled. Rooms without the hook never get here.

use serde_json::value::RawValue;

use super::{Effect, MachineStore, Pace, RoomMachine};
use crate::auth::User;
use crate::error::{RelayError, RelayResult};
use crate::protocol::{self, Publish, Receipt};
use crate::publish_hook::{self, FailMode, HookPolicy, Pending, Verdict};
use crate::room::{Published, Sender, Stamps};

/// Unusable answers between two log lines about them: a hook that is down must not log once
/// per publish.
const LOG_EVERY_UNUSABLE: u64 = 100;

/// What a publish waiting for the hook needs to be committed.
#[derive(Debug)]
pub(super) struct HookedPublish {
    user: User,
    cid: Option<String>,
    event: Option<String>,
    data: Box<RawValue>,
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

    /// Queues a user's publish for the hook: `None` when the room has no hook.
    fn begin_hooked(
        &mut self,
        origin: Option<&str>,
        user: &User,
        publish: &Publish,
    ) -> Option<RelayResult<HookStep>> {
        let policy = self.hook.policy?;
        let mut step = || -> RelayResult<HookStep> {
            if let Some(receipt) = self.committed(user, publish.cid.as_deref())? {
                return Ok(HookStep::Duplicate(receipt));
            }
            let body = publish_hook::request_body(
                self.core.room(),
                user,
                publish.event_name(),
                &publish.data,
                publish.cid.as_deref(),
            );
            let item = HookedPublish {
                user: user.clone(),
                cid: publish.cid.clone(),
                event: publish.event.clone(),
                data: publish.data.clone(),
            };
            let retry_after_ms = u64::from(policy.timeout_ms);
            let ticket = self
                .hook
                .pending
                .add(origin, &user.id, item, retry_after_ms)?;
            Ok(HookStep::Call(HookCall {
                ticket,
                body,
                max_answer_bytes: policy.max_answer_bytes(),
            }))
        };
        Some(step())
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
        conn_id: &str,
        user: &User,
        publish: &Publish,
        out: &mut Vec<Effect>,
    ) -> bool {
        let Some(step) = self.begin_hooked(Some(conn_id), user, publish) else {
            return false;
        };
        let cid = publish.cid.as_deref().unwrap_or_default();
        match step {
            Ok(HookStep::Duplicate(receipt)) => {
                out.push(Effect::Reply(protocol::ack_frame(cid, &receipt)))
            }
            Ok(HookStep::Call(call)) => out.push(Effect::CallHook(call)),
            Err(err) => out.push(Effect::Reply(err.to_frame(Some(cid)))),
        }
        true
    }

    /// An HTTP publish in a hooked room, after the checks every user publish has.
    pub(super) fn http_publish_via_hook(
        &mut self,
        user: &User,
        publish: &Publish,
    ) -> Option<RelayResult<UserPublish>> {
        let step = self.begin_hooked(None, user, publish)?;
        Some(step.map(|step| match step {
            HookStep::Duplicate(receipt) => UserPublish::Done(receipt),
            HookStep::Call(call) => UserPublish::AwaitHook(call),
        }))
    }

    /// The hook answered a socket's publish (the event's socket): that publish and the ones
    /// behind it that were answered already are settled in order, each with an `ack` or an
    /// `error` frame (`rejected` and the reason); a publish whose socket closed meanwhile is
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

    /// The hook answered an HTTP publish: its receipt, or why it was refused.
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

    /// Commits a hooked publish as its verdict says. A repeat of a message committed while it
    /// waited is answered as a repeat whatever the verdict, so that a cid keeps one outcome.
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
