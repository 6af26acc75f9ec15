//! The room's traffic with backends and other objects: backend publishes, members, bans,
//! disconnects, presence lists, the events queue's word, and the coalesced `room.update`
//! feeds of members' personal rooms.

use futures::future::join_all;
use serde_json::json;
use web_sys::Response;

use super::room_object::{receipt_response, Room};
use super::{call_room, http, internal};
use crate::error::{RelayError, RelayResult};
use crate::feed::Member;
use crate::occupancy::PresencePage;
use crate::protocol::Publish;
use crate::room_api::RoomRequest;
use crate::room_machine::FeedDue;
use crate::webhook::RoomBroadcast;

/// Feed updates sent per alarm run.
const FEED_BATCH: u32 = 100;

impl Room {
    /// A backend's request (or another object's): broadcasts, members, disconnects, bans and
    /// the events queue's word.
    pub(super) fn backend_request(
        &self,
        request: RoomRequest,
        room: &str,
    ) -> RelayResult<Response> {
        match request {
            RoomRequest::Broadcast(broadcast) => self.backend_publish(broadcast, room),
            RoomRequest::Members => self.members(None, room),
            RoomRequest::SetMembers(members) => self.members(Some(members), room),
            RoomRequest::Disconnect(disconnect) => {
                self.run(Some(room), None, |m, out| {
                    m.disconnect_user(&disconnect.user, &disconnect.reason, out);
                    Ok(())
                })?;
                Ok(http::json("{}".to_string(), 200).map_err(internal("disconnect answer"))?)
            }
            RoomRequest::Ban(ban) => {
                let answer =
                    self.run(Some(room), None, |m, out| m.ban(&ban.user, ban.until, out))?;
                http::json(answer, 200).map_err(internal("ban answer"))
            }
            RoomRequest::Unban { user } => {
                let answer = self.run(Some(room), None, |m, out| m.unban(&user, out))?;
                http::json(answer, 200).map_err(internal("unban answer"))
            }
            RoomRequest::Bans => {
                let answer = self.machine(Some(room), |m| m.list_bans())?;
                http::json(answer, 200).map_err(internal("bans answer"))
            }
            RoomRequest::EventsSettled(settled) => self.events_settled(settled, room),
            _ => Err(RelayError::not_found("no such room route")),
        }
    }

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
        let receipt = self.run(Some(room), None, |m, out| {
            m.publish_as_backend(&publish, out)
        })?;
        receipt_response(&receipt)
    }

    /// The room's members, after replacing them with `new_members` when given: in a
    /// members-only room, those no longer on the list lose their sockets.
    pub(super) fn members(
        &self,
        new_members: Option<Vec<Member>>,
        room: &str,
    ) -> RelayResult<Response> {
        if let Some(members) = new_members {
            self.run(Some(room), None, |m, out| m.replace_members(&members, out))?;
        }
        let members = self.machine(Some(room), |m| m.core().store().members())?;
        http::json(json!({"room": room, "members": members}).to_string(), 200)
            .map_err(internal("members response"))
    }

    /// Who is online now: one page of them, by id.
    pub(super) fn presence_list(&self, room: &str, page: &PresencePage) -> RelayResult<Response> {
        self.restore_presence(Some(room))?;
        let (users, next, connections) = self.machine(None, |m| Ok(m.presence_page(page)))?;
        // Viewers on shards count too (the pages list the room's own users).
        let connections = connections + self.with_shards(|book| book.totals()).connections as usize;
        http::json(
            json!({"room": room, "users": users, "connections": connections, "next": next})
                .to_string(),
            200,
        )
        .map_err(internal("presence response"))
    }

    /// From the alarm: a report when the seq moved in a room with connections, and what
    /// members are owed.
    pub(super) async fn send_outbox(&self) -> RelayResult<()> {
        self.run(None, None, |m, out| {
            m.report_if_moved(out);
            Ok(())
        })?;
        if self.run(None, None, |m, out| Ok(m.feed_due(out)))? != FeedDue::Now {
            return Ok(());
        }
        let sent = self.send_feed_updates().await;
        if !matches!(sent, Ok(true)) {
            self.run(None, None, |m, out| {
                m.feed_unfinished(out);
                Ok(())
            })?;
        }
        sent.map(|_| ())
    }

    /// Sends one run's worth of the feed updates members are owed; `true` when none remain.
    async fn send_feed_updates(&self) -> RelayResult<bool> {
        let updates = self.machine(None, |m| m.owed_feed_updates(FEED_BATCH))?;
        if updates.is_empty() {
            return Ok(true);
        }
        let deliveries = updates.iter().map(|update| async move {
            let response = call_room(&self.env, &update.personal_room, &update.request).await?;
            match response.status() {
                200 => Ok(()),
                _ => Err(RelayError::internal()),
            }
        });
        let outcomes = join_all(deliveries).await;
        let mut failed = false;
        for (update, outcome) in updates.iter().zip(outcomes) {
            match outcome {
                Ok(()) => self.machine(None, |m| m.feed_delivered(update))?,
                Err(_) => failed = true,
            }
        }
        let owed = self.machine(None, |m| m.feed_owed())?;
        Ok(!owed && !failed)
    }
}
