//! The room's outgoing events (see [`crate::events`]): recorded in the outbox as they happen,
//! in the same commit as what they tell, and the alarm's schedule for sending them.

use super::{Effect, MachineStore, RoomMachine};
use crate::auth::User;
use crate::error::RelayResult;
use crate::events::{self, UnreadStreak, MAX_OUTBOX_EVENTS, QUEUE_RETRY_MS, SEND_DELAY_MS};
use crate::protocol::{ReadMarker, Receipt};
use crate::room::{self, Stamps};

/// The machine's part of outgoing events.
#[derive(Debug, Default)]
pub(super) struct Outgoing {
    /// Whether this room has events (`EVENTS_URL` set and the room within `EVENTS_PREFIXES`).
    on: bool,
    /// Whether a batch is in the queue: new events then wait for word about it, not for a
    /// timer. Not known after a wake: the alarm looks it up.
    batch_queued: bool,
    /// Events in the outbox, once counted.
    outbox_len: Option<u64>,
    /// Events not recorded because the outbox was full, since the last batch settled.
    dropped: u64,
}

impl<S: MachineStore, C: Stamps> RoomMachine<S, C> {
    /// Records this room's events (see [`crate::events::EventsConfig::applies_to`]).
    pub fn events(mut self, on: bool) -> Self {
        self.events.on = on;
        self
    }

    pub fn events_on(&self) -> bool {
        self.events.on
    }

    /// Appends the event `build` makes (given its new id) to the outbox and has the alarm send
    /// it soon, unless a batch is in the queue (its settling sends the next). A full outbox
    /// drops it, logged once per run of drops.
    fn record_event(
        &mut self,
        build: impl FnOnce(&str) -> RelayResult<String>,
        out: &mut Vec<Effect>,
    ) {
        if !self.events.on {
            return;
        }
        let recorded = (|| -> RelayResult<bool> {
            let len = match self.events.outbox_len {
                Some(len) => len,
                None => self.core.store().event_count()?,
            };
            self.events.outbox_len = Some(len);
            if len >= MAX_OUTBOX_EVENTS {
                return Ok(false);
            }
            let event = build(&self.clock.new_id())?;
            self.core.store().record_event(&event)?;
            self.events.outbox_len = Some(len + 1);
            Ok(true)
        })();
        match recorded {
            Ok(true) if !self.events.batch_queued => {
                let at = self.clock.now_ms() + SEND_DELAY_MS;
                self.set_alarm(at, out);
            }
            Ok(true) => {}
            Ok(false) => {
                self.events.dropped += 1;
                if self.events.dropped == 1 {
                    out.push(Effect::LogError(format!(
                        "events of {} are dropped: its outbox holds {MAX_OUTBOX_EVENTS} undelivered events",
                        self.core.room()
                    )));
                }
            }
            // What the event tells is committed; the event is lost, and said so.
            Err(err) => out.push(Effect::LogError(format!(
                "could not record an event: {err}"
            ))),
        }
    }

    /// `message.created`, for a new message (`user`: `None` for a backend's broadcast).
    pub(super) fn message_created(
        &mut self,
        user: Option<&User>,
        receipt: &Receipt,
        frame: &str,
        out: &mut Vec<Effect>,
    ) {
        let room = self.core.room().to_string();
        self.record_event(
            |id| events::message_created(id, &room, receipt.seq, &receipt.ts, user, frame),
            out,
        );
    }

    /// `message.edited` / `message.deleted`, for the record `frame` of a change of `ref_seq`.
    pub(super) fn message_changed(
        &mut self,
        user: &User,
        receipt: &Receipt,
        frame: &str,
        ref_seq: u64,
        deleted: bool,
        out: &mut Vec<Effect>,
    ) {
        let room = self.core.room().to_string();
        self.record_event(
            |id| {
                events::message_changed(
                    id,
                    &room,
                    deleted,
                    receipt.seq,
                    ref_seq,
                    &receipt.ts,
                    user,
                    frame,
                )
            },
            out,
        );
    }

    pub(super) fn presence_joined(&mut self, user: &User, out: &mut Vec<Effect>) {
        let room = self.core.room().to_string();
        let ts = room::rfc3339_ms(self.clock.now_ms());
        self.record_event(|id| events::presence_joined(id, &room, &ts, user), out);
    }

    pub(super) fn presence_left(&mut self, user: &User, last_seen: &str, out: &mut Vec<Effect>) {
        let room = self.core.room().to_string();
        let ts = room::rfc3339_ms(self.clock.now_ms());
        self.record_event(
            |id| events::presence_left(id, &room, &ts, user, last_seen),
            out,
        );
    }

    pub(super) fn read_updated(&mut self, marker: &ReadMarker, out: &mut Vec<Effect>) {
        let room = self.core.room().to_string();
        self.record_event(|id| events::read_updated(id, &room, marker), out);
    }

    /// `message.unread`, for a member who left `streak` unread while offline.
    pub(super) fn message_unread(
        &mut self,
        member: &User,
        streak: &UnreadStreak<'_>,
        out: &mut Vec<Effect>,
    ) {
        let room = self.core.room().to_string();
        let ts = room::rfc3339_ms(self.clock.now_ms());
        self.record_event(
            |id| events::message_unread(id, &room, &ts, member, streak),
            out,
        );
    }

    /// A batch is in the queue: the next goes when word about it comes, or at `resend_at`.
    pub fn events_queued(&mut self, resend_at: i64, out: &mut Vec<Effect>) {
        self.events.batch_queued = true;
        self.set_alarm(resend_at, out);
    }

    /// The queue refused a batch: try again a little later.
    pub fn events_not_queued(&mut self, out: &mut Vec<Effect>) {
        self.events.batch_queued = false;
        let at = self.clock.now_ms() + QUEUE_RETRY_MS;
        self.set_alarm(at, out);
    }

    /// The batch in the queue is done with (`dropped`: dead-lettered); `remaining` events are
    /// left, which the alarm sends at once.
    pub fn events_settled(&mut self, dropped: bool, remaining: u64, out: &mut Vec<Effect>) {
        self.events.batch_queued = false;
        self.events.outbox_len = Some(remaining);
        if dropped {
            out.push(Effect::LogError(format!(
                "events of {} were dead-lettered after every delivery failed: the room moves on",
                self.core.room()
            )));
        }
        if self.events.dropped > 0 {
            out.push(Effect::LogError(format!(
                "{} events of {} were dropped while its outbox was full",
                self.events.dropped,
                self.core.room()
            )));
            self.events.dropped = 0;
        }
        if remaining > 0 {
            let now = self.clock.now_ms();
            self.set_alarm(now, out);
        }
    }
}
