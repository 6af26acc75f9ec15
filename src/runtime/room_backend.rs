//! The room's traffic with backends and other objects: backend publishes, members, the
//! coalesced `room.update` feeds of members' personal rooms, and stats reports, which the
//! rooms of one isolate send to the directory together.

use std::cell::RefCell;

use futures::future::join_all;
use serde_json::json;
use web_sys::Response;
use worker::wasm_bindgen_futures::spawn_local;
use worker::Env;

use super::room_object::{Loaded, Room};
use super::settle::sleep;
use super::{call_directory, call_room, http, internal, now_ms};
use crate::error::{RelayError, RelayResult};
use crate::feed::{self, Member, RoomUpdate, UPDATE_EVENT};
use crate::protocol::Publish;
use crate::room::Sender;
use crate::room_api::{DirectoryRequest, RoomRequest};
use crate::stats::{ReportQueue, RoomReport};
use crate::webhook::RoomBroadcast;

/// Feed updates sent per alarm run.
const FEED_BATCH: u32 = 100;

/// What the room owes other objects, in memory; feed debts are also in storage.
#[derive(Default)]
pub struct Outbox {
    feed_sent_ms: Option<i64>,
    feed_pending: bool,
    /// The last seq the directory was told; a run of the alarm reports a newer one even when
    /// no connection came or went, so that stats follow publishes without alarms of their own.
    reported_seq: Option<u64>,
}

thread_local! {
    /// The reports of every room of this isolate that wait for the next batch.
    static REPORTS: RefCell<ReportQueue> = RefCell::new(ReportQueue::default());
}

/// Queues a room's report for the isolate's next batch, and starts the timer that sends it
/// when none waits. The timer keeps the object that started it awake until it fires.
fn queue_report(env: &Env, report: RoomReport) {
    let delay_ms = REPORTS.with(|queue| queue.borrow_mut().push(report, now_ms()));
    if let Some(delay_ms) = delay_ms {
        spawn_local(send_reports(env.clone(), delay_ms));
    }
}

/// Sends the isolate's queued reports as one batch after `delay_ms`; a batch that fails is
/// queued again (newer reports of the same rooms win) and retried an interval later.
async fn send_reports(env: Env, delay_ms: i64) {
    sleep(u32::try_from(delay_ms).unwrap_or(u32::MAX)).await;
    let batch = REPORTS.with(|queue| queue.borrow_mut().take(now_ms()));
    if batch.is_empty() {
        return;
    }
    let request = DirectoryRequest::Reports(batch);
    let sent = call_directory(&env, &request)
        .await
        .and_then(|response| match response.status() {
            200 => Ok(()),
            _ => Err(RelayError::internal()),
        });
    if let (Err(err), DirectoryRequest::Reports(batch)) = (sent, request) {
        worker::console_error!("stats reports failed: {err}");
        let retry = REPORTS.with(|queue| queue.borrow_mut().put_back(batch, now_ms()));
        if let Some(delay_ms) = retry {
            spawn_local(Box::pin(send_reports(env, delay_ms)));
        }
    }
}

impl Loaded {
    /// The room's counts as the directory lists them; its seq counts as reported from now.
    fn report(&mut self) -> RoomReport {
        let presence = self.presence.as_ref();
        let report = RoomReport {
            room: self.core.room().to_string(),
            connections: presence.map_or(0, |p| p.connection_count()) as u64,
            users: presence.map_or(0, |p| p.user_count()) as u64,
            last_seq: self.core.last_seq(),
        };
        self.outbox.reported_seq = Some(report.last_seq);
        report
    }
}

/// Personal rooms feed nobody: their messages are the feed.
fn feeds_others(room: &str) -> bool {
    !room.starts_with("user:")
}

impl Room {
    /// A backend's event (or a feed update), persisted like a publish with `from: null`; the
    /// idempotency key is the broadcast `id`.
    pub(super) fn backend_publish(
        &self,
        request: RoomBroadcast,
        room: &str,
    ) -> RelayResult<Response> {
        let publish = Publish {
            cid: request.id,
            event: Some(request.event),
            data: request.data,
        };
        let published = self.with_loaded(Some(room), |l| {
            l.core.publish(
                Sender::Backend,
                &publish,
                &super::room_object::RuntimeStamps,
            )
        })?;
        self.answer_http_publish(published)
    }

    /// The room's members, after replacing them with `new_members` when given.
    pub(super) fn members(
        &self,
        new_members: Option<Vec<Member>>,
        room: &str,
    ) -> RelayResult<Response> {
        if let Some(members) = new_members {
            self.with_loaded(Some(room), |l| {
                l.has_members = Some(!members.is_empty());
                l.core.store().set_members(&members)
            })?;
        }
        let members = self.with_loaded(Some(room), |l| l.core.store().members())?;
        http::json(json!({"room": room, "members": members}).to_string(), 200)
            .map_err(internal("members response"))
    }

    /// Who is online now.
    pub(super) fn presence_list(&self, room: &str) -> RelayResult<Response> {
        self.with_loaded(Some(room), |_| Ok(()))?;
        self.ensure_presence()?;
        let (users, connections) = self.with_loaded(None, |l| {
            let presence = l.presence.as_ref().ok_or_else(RelayError::internal)?;
            Ok((presence.users(), presence.connection_count()))
        })?;
        http::json(
            json!({"room": room, "users": users, "connections": connections}).to_string(),
            200,
        )
        .map_err(internal("presence response"))
    }

    /// Marks members (all, or the one whose read marker moved) as owed a `room.update`.
    pub(super) fn queue_feed_updates(&self, only: Option<&str>) {
        let queued = self.with_loaded(None, |l| {
            if !feeds_others(l.core.room()) {
                return Ok(None);
            }
            let has_members = match l.has_members {
                Some(known) => known,
                None => !l.core.store().members()?.is_empty(),
            };
            l.has_members = Some(has_members);
            if !has_members {
                return Ok(None);
            }
            l.core.store().queue_feed(only, now_ms())?;
            l.outbox.feed_pending = true;
            Ok(Some(feed::next_update_at(l.outbox.feed_sent_ms, now_ms())))
        });
        match queued {
            Ok(Some(at)) => self.schedule_alarm(at),
            Ok(None) => {}
            Err(err) => worker::console_error!("could not queue feed updates: {err}"),
        }
    }

    /// Queues the room's current counts for the isolate's next report batch.
    pub(super) fn report_stats(&self) {
        if let Ok(report) = self.with_loaded(None, |l| Ok(l.report())) {
            queue_report(&self.env, report);
        }
    }

    /// From the alarm: a report when the seq moved in a room with connections, and what
    /// members are owed.
    pub(super) async fn send_outbox(&self) -> RelayResult<()> {
        let moved = self.with_loaded(None, |l| {
            let connected = l
                .presence
                .as_ref()
                .is_some_and(|p| p.connection_count() > 0);
            // A room without connections is not listed, so its seq alone is not news.
            let moved = connected && l.outbox.reported_seq != Some(l.core.last_seq());
            Ok(moved.then(|| l.report()))
        })?;
        if let Some(report) = moved {
            queue_report(&self.env, report);
        }
        self.send_feed_updates().await
    }

    async fn send_feed_updates(&self) -> RelayResult<()> {
        let due = self.with_loaded(None, |l| {
            let at = feed::next_update_at(l.outbox.feed_sent_ms, now_ms());
            Ok((l.outbox.feed_pending || l.outbox.feed_sent_ms.is_none(), at))
        })?;
        let (maybe_pending, at) = due;
        if !maybe_pending {
            return Ok(());
        }
        if at > now_ms() {
            self.schedule_alarm(at);
            return Ok(());
        }
        let updates = self.with_loaded(None, |l| {
            let store = l.core.store();
            let pending = store.pending_feed(FEED_BATCH)?;
            let last_seq = l.core.last_seq();
            let newest = match store.body(last_seq)? {
                Some(body) if last_seq > 0 => body,
                _ => return Ok(Vec::new()),
            };
            let mut updates = Vec::with_capacity(pending.len());
            for (member, version) in pending {
                let unread = store.unread_count(&member)?;
                let update = RoomUpdate::from_message(l.core.room(), last_seq, &newest, unread)?;
                updates.push((member, version, update));
            }
            Ok(updates)
        })?;
        self.with_loaded(None, |l| {
            l.outbox.feed_sent_ms = Some(now_ms());
            l.outbox.feed_pending = false;
            Ok(())
        })?;
        if updates.is_empty() {
            return Ok(());
        }
        let deliveries = updates.iter().map(|(member, _, update)| async move {
            let personal_room = format!("user:{member}");
            let broadcast = RoomBroadcast {
                event: UPDATE_EVENT.to_string(),
                data: serde_json::value::to_raw_value(update)
                    .map_err(|_| RelayError::internal())?,
                id: Some(update.key()),
            };
            let request = RoomRequest::Broadcast(broadcast);
            let response = call_room(&self.env, &personal_room, &request).await?;
            if response.status() == 200 {
                Ok(())
            } else {
                Err(RelayError::internal())
            }
        });
        let outcomes = join_all(deliveries).await;
        let mut failed = false;
        for ((member, version, _), outcome) in updates.iter().zip(outcomes) {
            match outcome {
                Ok(()) => self.with_loaded(None, |l| l.core.store().feed_sent(member, *version))?,
                Err(_) => failed = true,
            }
        }
        let more = self.with_loaded(None, |l| Ok(!l.core.store().pending_feed(1)?.is_empty()))?;
        if more || failed {
            self.with_loaded(None, |l| {
                l.outbox.feed_pending = true;
                Ok(())
            })?;
            self.schedule_alarm(now_ms() + feed::UPDATE_INTERVAL_MS);
        }
        Ok(())
    }
}
