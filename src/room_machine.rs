//! The room's policy as a state machine: the Durable Object turns each runtime callback into a
//! call here and applies the [`Effect`]s that come back. No I/O and no `worker`: storage is the
//! [`MachineStore`] trait, time and ids are [`Stamps`].
//!
//! Where things happen: a client frame is parsed in [`RoomMachine::on_frame`]; its seq is
//! assigned and the message committed by [`RoomCore::publish`]; the archive is scheduled by
//! [`RoomMachine::after_publish`] and written by the object's alarm; fan-out is the
//! [`Effect::Broadcast`] the object hands to its sockets.

use std::cell::Cell;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::archive_schedule;
use crate::auth::{Identity, User};
use crate::bans;
use crate::config::{Limits, MAX_PROTOCOL_VIOLATIONS};
use crate::disconnect::{self, Disconnect};
use crate::error::{ErrorCode, RelayError, RelayResult};
use crate::feed::{self, Member};
use crate::occupancy::{Occupancy, DEFAULT_PRESENCE_FULL_MAX};
use crate::presence::{Presence, LEAVE_GRACE_MS};
use crate::protocol::{self, ClientFrame, Publish, Receipt, Welcome};
use crate::rate_limit::{RoomLimits, Verdict};
use crate::room::{self, Published, ResumePlan, RoomCore, RoomStore, Sender, Stamps};
use crate::stats::RoomReport;

mod edits;
mod occupancy;
mod outgoing;
mod publish_hook;
mod unread;

pub use publish_hook::{HookCall, HookReply, UserPublish};

/// Added to a leave's due time, so that the timer never fires just before it.
const LEAVE_SLACK_MS: i64 = 50;

/// What each socket carries through hibernation (stored as its attachment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub conn_id: String,
    pub user: User,
    /// Until when the token is accepted (its `exp` plus the clock leeway, unix seconds); the
    /// socket is closed with 4001 once it has passed.
    pub exp: i64,
    /// Whether the room has told this connection it is in counts mode: while such a socket
    /// is open, a room woken from hibernation stays in counts mode (see [`crate::occupancy`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counts: bool,
}

impl Connection {
    fn expired(&self, now_ms: i64) -> bool {
        self.exp.saturating_mul(1000) < now_ms
    }
}

/// How soon a broadcast frame must reach batched sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// With the batch of the current turn.
    Now,
    /// A little later, together with others: joins and leaves of a connection storm reach each
    /// socket in a few sends instead of one per join.
    Presence,
}

/// What the object does after an event, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A frame for the socket the event came from, in order with the room's frames to it.
    Reply(String),
    /// A frame for every socket of the room; with `skip_origin`, not the event's own.
    Broadcast {
        frame: String,
        skip_origin: bool,
        pace: Pace,
    },
    /// Close the event's own socket, after the frames queued for it.
    Close(Disconnect),
    /// Close the sockets of these connections.
    CloseConnections {
        conn_ids: Vec<String>,
        close: Disconnect,
    },
    /// Close every socket of these users, with this code and reason.
    CloseUsers {
        user_ids: Vec<String>,
        code: u16,
        reason: String,
    },
    /// Call the before-publish hook for the event's socket, then hand the answer to
    /// [`RoomMachine::on_hook_answer`].
    CallHook(HookCall),
    /// Verify a token that renews the event's connection, then call
    /// [`RoomMachine::on_renewal`] with the outcome.
    VerifyToken(String),
    /// Store this as the event's socket's connection (its attachment).
    Reattach(Connection),
    /// Make the room's alarm fire no later than this (ms since the epoch).
    SetAlarm(i64),
    /// Call [`RoomMachine::on_leaves_due`] after this many ms.
    WakeForLeaves { after_ms: i64 },
    /// Queue the room's counts for the isolate's next stats batch.
    Report(RoomReport),
    /// Mark every socket's connection as told counts mode (`counts` in its attachment).
    MarkCounts,
    /// A failure the room carries on after, for the log (never a secret: errors carry none).
    LogError(String),
}

/// Storage the machine needs beyond the sequencer's [`RoomStore`].
pub trait MachineStore: RoomStore + crate::edits::EditStore {
    /// Whether the room has any ban, expired ones included.
    fn has_bans(&self) -> RelayResult<bool>;
    /// Whether a ban of this user holds at `now_s`.
    fn is_banned(&self, user_id: &str, now_s: i64) -> RelayResult<bool>;
    /// Whether the room has members (whose feeds a new message updates).
    fn has_members(&self) -> RelayResult<bool>;
    /// Whether this user is on the room's members list.
    fn is_member(&self, user_id: &str) -> RelayResult<bool>;
    /// Marks members (all, or `only`) as owed a `room.update` of this version.
    fn queue_feed(&self, only: Option<&str>, version: i64) -> RelayResult<()>;
    /// Appends an outgoing event to the room's outbox (see [`crate::events_outbox`]).
    fn record_event(&self, event: &str) -> RelayResult<()>;
    /// Events waiting in the outbox.
    fn event_count(&self) -> RelayResult<u64>;
    /// The user was online up to `last_seq`: a member's next unread streak starts after it
    /// (see [`crate::room_unread`]). Only the room's SQLite keeps streaks; the tests' plain
    /// stores keep nothing.
    fn unread_seen_online(&self, _user_id: &str, _last_seq: u64) -> RelayResult<()> {
        Ok(())
    }
}

/// When the feed updates a room owes are next sent (see [`RoomMachine::feed_due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedDue {
    Nothing,
    Now,
    At(i64),
}

/// One room's state and policy.
pub struct RoomMachine<S, C> {
    core: RoomCore<S>,
    clock: C,
    limits: Limits,
    /// Rebuilt from the sockets' attachments after a wake (see [`RoomMachine::restore`]).
    presence: Option<Presence>,
    /// Protocol violations per connection (4400 past [`MAX_PROTOCOL_VIOLATIONS`]).
    violations: HashMap<String, u32>,
    /// Publish, typing and connect limits per user, over all their connections and HTTP.
    rates: RoomLimits,
    /// When the alarm is set for, as far as this instance knows (`None` after a wake).
    alarm_at: Option<i64>,
    /// Added to this room's archive delay, so that rooms busy since the same moment do not
    /// all write to D1 in the same instant (a burst that stalls every room of the isolate).
    archive_jitter_ms: i64,
    /// Until when a failing D1 is left alone (see [`archive_schedule`]).
    archive_retry_at: Option<i64>,
    /// When the pending archive write is due, when known: an alarm that fires earlier for
    /// something else (outgoing events, a feed update) leaves the write to its batch.
    archive_due_at: Option<i64>,
    /// Whether a wake-up for pending leaves is already on its way.
    leave_sweep: bool,
    /// Whether the room has members; `None` until looked up.
    has_members: Option<bool>,
    /// Whether the room has bans; `None` until looked up (a room without any asks once).
    has_bans: Cell<Option<bool>>,
    feed_sent_ms: Option<i64>,
    feed_pending: bool,
    /// The last seq the directory was told: an alarm run reports a newer one.
    reported_seq: Option<u64>,
    /// The earliest token expiry among the connections, when known (not after a wake).
    next_expiry_ms: Option<i64>,
    /// Whether only the room's members may connect, read and publish (`MEMBERS_ONLY_PREFIXES`).
    members_only: bool,
    /// Outgoing events (see [`outgoing`]).
    events: outgoing::Outgoing,
    /// The before-publish hook (see [`publish_hook`]).
    hook: publish_hook::Hook,
    /// Counts instead of joins and leaves in a big room (see [`occupancy`]).
    occupancy: Occupancy,
    /// When members' unread messages are next looked at (see [`unread`]).
    unread_check: unread::UnreadCheck,
    /// Connections and users on the room's shards, as they last reported (see
    /// [`crate::shard_fanout`]): counted in occupancy and reports.
    on_shards: (usize, usize),
}

impl<S: MachineStore, C: Stamps> RoomMachine<S, C> {
    pub fn new(
        core: RoomCore<S>,
        clock: C,
        limits: Limits,
        archive_jitter_ms: i64,
        archive_retry_at: Option<i64>,
    ) -> Self {
        RoomMachine {
            core,
            clock,
            rates: RoomLimits::new(limits.rates.clone()),
            limits,
            presence: None,
            violations: HashMap::new(),
            alarm_at: None,
            archive_jitter_ms,
            archive_retry_at,
            archive_due_at: None,
            leave_sweep: false,
            has_members: None,
            has_bans: Cell::new(None),
            feed_sent_ms: None,
            feed_pending: false,
            reported_seq: None,
            next_expiry_ms: None,
            members_only: false,
            events: outgoing::Outgoing::default(),
            hook: publish_hook::Hook::default(),
            occupancy: Occupancy::new(DEFAULT_PRESENCE_FULL_MAX),
            unread_check: unread::UnreadCheck::default(),
            on_shards: (0, 0),
        }
    }

    /// Admits only the room's members (`MEMBERS_ONLY_PREFIXES`, see [`crate::room_prefixes`]).
    pub fn members_only(mut self, members_only: bool) -> Self {
        self.members_only = members_only;
        self
    }

    pub fn core(&self) -> &RoomCore<S> {
        &self.core
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether presence must be rebuilt from the open sockets before the next event.
    pub fn needs_connections(&self) -> bool {
        self.presence.is_none()
    }

    /// Rebuilds presence from the connections of the sockets still open, after a wake.
    pub fn restore<'a>(&mut self, open: impl IntoIterator<Item = &'a Connection>) {
        let mut presence = Presence::default();
        let mut next_expiry = None::<i64>;
        let mut told_counts = false;
        for conn in open {
            told_counts |= conn.counts;
            presence.connect(&conn.conn_id, &conn.user);
            let expiry = conn.exp.saturating_mul(1000);
            next_expiry = Some(next_expiry.map_or(expiry, |at| at.min(expiry)));
        }
        self.occupancy.restore(told_counts, presence.user_count());
        self.presence = Some(presence);
        self.next_expiry_ms = next_expiry;
    }

    fn presence(&mut self) -> &mut Presence {
        self.presence.get_or_insert_with(Presence::default)
    }

    // ---- client frames -------------------------------------------------------------------

    /// A frame from a connection; `None` for a binary frame.
    pub fn on_frame(&mut self, conn: &Connection, text: Option<&str>, out: &mut Vec<Effect>) {
        let Some(text) = text else {
            let err = RelayError::bad_request("binary frames are not supported; send JSON text");
            self.reject(conn, err, None, out);
            return;
        };
        if text.len() > self.limits.max_frame_bytes {
            out.push(Effect::Close(disconnect::FRAME_TOO_LARGE));
            return;
        }
        if conn.expired(self.clock.now_ms()) {
            out.push(Effect::Close(disconnect::TOKEN_EXPIRED));
            return;
        }
        match protocol::parse_client_frame(text) {
            Err(err) => self.reject(conn, err.error, err.cid.as_deref(), out),
            Ok(ClientFrame::Ping) => out.push(Effect::Reply(protocol::PONG_FRAME.to_string())),
            Ok(ClientFrame::Publish(publish)) => self.on_publish(conn, &publish, out),
            Ok(ClientFrame::Typing { active }) => self.on_typing(conn, active, out),
            Ok(ClientFrame::Read { seq }) => self.on_read(conn, seq, out),
            Ok(ClientFrame::Auth { token }) => out.push(Effect::VerifyToken(token)),
            Ok(ClientFrame::Change(change)) => self.on_change(conn, &change, out),
        }
    }

    /// The outcome of verifying a connection's renewal token: a valid token of the same user
    /// that still grants the room replaces the connection's expiry; anything else is answered
    /// with an error frame and the old token stays.
    pub fn on_renewal(
        &mut self,
        conn: &Connection,
        verified: RelayResult<Identity>,
        out: &mut Vec<Effect>,
    ) {
        let renewed = verified.and_then(|identity| {
            if identity.user.id != conn.user.id {
                return Err(RelayError::unauthorized(
                    "the new token is for another user",
                ));
            }
            identity.check_access(self.core.room())?;
            self.check_member(&identity.user)?;
            Ok(identity)
        });
        match renewed {
            Ok(identity) => {
                out.push(Effect::Reattach(Connection {
                    exp: identity.accepted_until,
                    ..conn.clone()
                }));
                out.push(Effect::Reply(protocol::auth_frame(identity.expires_at)));
            }
            Err(err) => out.push(Effect::Reply(err.to_frame(None))),
        }
    }

    /// Whether a socket's publish, edit or delete (one bucket) is within the user's rate; if
    /// not, the refusal (with `cid`) or, for abuse, the close is in `out`.
    fn within_publish_rate(&mut self, conn: &Connection, cid: &str, out: &mut Vec<Effect>) -> bool {
        match self
            .rates
            .publish(&conn.user.id, &conn.conn_id, self.clock.now_ms())
        {
            Verdict::Allow => true,
            Verdict::Refuse { retry_after_ms } => {
                let refusal = RelayError::rate_limited(retry_after_ms).to_frame(Some(cid));
                out.push(Effect::Reply(refusal));
                false
            }
            Verdict::Close => {
                out.push(Effect::Close(disconnect::RATE_LIMIT_ABUSE));
                false
            }
        }
    }

    fn on_publish(&mut self, conn: &Connection, publish: &Publish, out: &mut Vec<Effect>) {
        let cid = publish.cid.as_deref().unwrap_or_default();
        if !self.within_publish_rate(conn, cid, out) {
            return;
        }
        if self.publish_via_hook(conn, publish, out) {
            return;
        }
        match self
            .core
            .publish(Sender::User(&conn.user), publish, &self.clock)
        {
            Ok(published) => {
                out.push(Effect::Reply(protocol::ack_frame(cid, published.receipt())));
                if let Published::New { receipt, frame } = published {
                    self.message_created(Some(&conn.user), &receipt, &frame, out);
                    out.push(Effect::Broadcast {
                        frame,
                        skip_origin: true,
                        pace: Pace::Now,
                    });
                    self.after_publish(out);
                }
            }
            Err(err) => self.reject(conn, err, Some(cid), out),
        }
    }

    /// Typing beyond the rate is dropped silently: it is a hint, not data.
    fn on_typing(&mut self, conn: &Connection, active: bool, out: &mut Vec<Effect>) {
        if !self.rates.typing(&conn.user.id, self.clock.now_ms()) {
            return;
        }
        if let Some(presence) = self.presence.as_mut() {
            presence.set_typing(&conn.user.id, active);
        }
        out.push(Effect::Broadcast {
            frame: protocol::typing_frame(&conn.user, active),
            skip_origin: true,
            pace: Pace::Now,
        });
    }

    fn on_read(&mut self, conn: &Connection, seq: u64, out: &mut Vec<Effect>) {
        match self.core.mark_read(&conn.user, seq, &self.clock) {
            Ok(Some(marker)) => {
                self.read_updated(&marker, out);
                self.schedule_unread_check(out);
                out.push(Effect::Broadcast {
                    frame: protocol::read_frame(&marker),
                    skip_origin: true,
                    pace: Pace::Now,
                });
                self.schedule_archive(out);
                self.queue_feed_updates(Some(&conn.user.id), out);
            }
            Ok(None) => {}
            Err(err) => self.reject(conn, err, None, out),
        }
    }

    /// Answers with an error frame; a connection that keeps sending bad frames is closed.
    pub fn reject(
        &mut self,
        conn: &Connection,
        err: RelayError,
        cid: Option<&str>,
        out: &mut Vec<Effect>,
    ) {
        out.push(Effect::Reply(err.to_frame(cid)));
        if err.code != ErrorCode::BadRequest {
            return;
        }
        let violations = self.violations.entry(conn.conn_id.clone()).or_default();
        *violations += 1;
        if *violations > MAX_PROTOCOL_VIOLATIONS {
            out.push(Effect::Close(disconnect::PROTOCOL_VIOLATIONS));
        }
    }

    // ---- connections ---------------------------------------------------------------------

    /// Whether `user` may use the room at all: not while banned, and in a members-only room
    /// only as a member.
    pub fn check_member(&self, user: &User) -> RelayResult<()> {
        if self.is_banned(&user.id)? {
            return Err(bans::refusal());
        }
        if !self.members_only || self.core.store().is_member(&user.id)? {
            return Ok(());
        }
        Err(RelayError::forbidden("not a member of this room"))
    }

    fn is_banned(&self, user_id: &str) -> RelayResult<bool> {
        let has_bans = match self.has_bans.get() {
            Some(known) => known,
            None => {
                let has_bans = self.core.store().has_bans()?;
                self.has_bans.set(Some(has_bans));
                has_bans
            }
        };
        let now_s = self.clock.now_ms().div_euclid(1000);
        Ok(has_bans && self.core.store().is_banned(user_id, now_s)?)
    }

    /// A user was banned (`Some`) or a ban lifted (`None`): a banned user's sockets close
    /// with 4003 `banned`.
    pub fn bans_changed(&mut self, banned: Option<&str>, out: &mut Vec<Effect>) {
        self.has_bans.set(None);
        if let Some(user_id) = banned {
            self.has_bans.set(Some(true));
            out.push(Effect::CloseUsers {
                user_ids: vec![user_id.to_string()],
                code: disconnect::BANNED.code,
                reason: disconnect::BANNED.reason.to_string(),
            });
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Admits a connection: a member where the room asks for one, and within the user's
    /// connection attempts (a reconnect loop is refused with 429).
    pub fn admit(&mut self, user: &User) -> RelayResult<()> {
        self.check_member(user)?;
        self.rates
            .connect(&user.id, self.clock.now_ms())
            .map_err(|retry_after_ms| RelayError {
                retry_after_ms: Some(retry_after_ms),
                ..RelayError::new(ErrorCode::RateLimited, "too many connection attempts")
            })
    }

    /// How a connection resuming after `since` catches up, decided before it is accepted.
    pub fn resume_plan(&self, since: u64) -> ResumePlan {
        self.core.resume_plan(since)
    }

    /// The welcome frame of a connection about to be accepted.
    pub fn welcome(&mut self, conn: &Connection) -> RelayResult<String> {
        let reads = self.core.welcome_reads()?.to_vec();
        let presence = self.presence.get_or_insert_with(Presence::default);
        let counts =
            occupancy::welcome_counts(&self.occupancy, presence, &conn.user, self.on_shards);
        let listed = match counts {
            Some(_) => Vec::new(),
            None => presence.users_with(&conn.user),
        };
        Ok(protocol::welcome_frame(&Welcome {
            room: self.core.room(),
            conn_id: &conn.conn_id,
            user: &conn.user,
            seq: self.core.last_seq(),
            presence: &listed,
            occupancy: counts,
            reads: &reads,
        }))
    }

    /// A connection was accepted (it is the event's own socket): announce the user if they
    /// are new, and watch the token's expiry.
    pub fn on_connected(&mut self, conn: &Connection, out: &mut Vec<Effect>) {
        let joined = self.presence().connect(&conn.conn_id, &conn.user);
        self.occupancy_changed(Some(conn), out);
        if joined {
            if !self.occupancy.counts_mode() {
                out.push(Effect::Broadcast {
                    frame: protocol::join_frame(&conn.user),
                    skip_origin: true,
                    pace: Pace::Presence,
                });
            }
            self.presence_joined(&conn.user, out);
            self.seen_online(&conn.user.id, out);
        }
        let expiry = conn.exp.saturating_mul(1000);
        if self.next_expiry_ms.is_none_or(|at| expiry < at) {
            self.next_expiry_ms = Some(expiry);
        }
        self.set_alarm(expiry.saturating_add(1), out);
        out.push(Effect::Report(self.report()));
    }

    /// A socket closed or failed: uncount it; after the user's last one, wait out the leave
    /// grace and announce the leave (and the end of their typing) unless they came back.
    pub fn on_gone(&mut self, conn: &Connection, out: &mut Vec<Effect>) {
        self.violations.remove(&conn.conn_id);
        self.hooked_socket_gone(&conn.conn_id);
        let now = self.clock.now_ms();
        let departing = self.presence().disconnect(&conn.conn_id, &conn.user, now);
        self.occupancy_changed(None, out);
        out.push(Effect::Report(self.report()));
        // One wake-up per room serves every pending leave: a mass disconnect must not start a
        // timer per socket.
        if departing && !self.leave_sweep {
            self.leave_sweep = true;
            self.wake_for_next_leave(out);
        }
    }

    /// The wake-up for pending leaves: announces those due and waits for the next one.
    pub fn on_leaves_due(&mut self, out: &mut Vec<Effect>) {
        let now = self.clock.now_ms();
        for departure in self.presence().due_departures(now) {
            if departure.was_typing {
                out.push(Effect::Broadcast {
                    frame: protocol::typing_frame(&departure.user, false),
                    skip_origin: false,
                    pace: Pace::Now,
                });
            }
            let last_seen = room::rfc3339_ms(departure.last_seen_ms);
            if !self.occupancy.counts_mode() {
                out.push(Effect::Broadcast {
                    frame: protocol::leave_frame(&departure.user, &last_seen),
                    skip_origin: false,
                    pace: Pace::Presence,
                });
            }
            self.presence_left(&departure.user, &last_seen, out);
            self.seen_online(&departure.user.id, out);
        }
        self.occupancy_after_leaves(out);
        self.wake_for_next_leave(out);
    }

    fn wake_for_next_leave(&mut self, out: &mut Vec<Effect>) {
        match self.presence().next_departure_at() {
            Some(due_at) => {
                let wait_ms = (due_at - self.clock.now_ms()).clamp(0, LEAVE_GRACE_MS);
                out.push(Effect::WakeForLeaves {
                    after_ms: wait_ms + LEAVE_SLACK_MS,
                });
            }
            None => self.leave_sweep = false,
        }
    }

    // ---- publishes over HTTP -------------------------------------------------------------

    /// Whether `user` may publish (or edit) over HTTP now: a member where the room asks for
    /// one, within their publish rate (a user over it just waits: HTTP has no socket to close).
    pub(crate) fn admit_http_publish(&mut self, user: &User) -> RelayResult<()> {
        self.check_member(user)?;
        self.rates
            .publish_without_socket(&user.id, self.clock.now_ms())
            .map_err(RelayError::rate_limited)
    }

    /// A user's publish over HTTP, limited like one over their sockets; in a hooked room it
    /// waits for the hook call the runtime makes.
    pub fn publish_as_user(
        &mut self,
        user: &User,
        publish: &Publish,
        out: &mut Vec<Effect>,
    ) -> RelayResult<UserPublish> {
        self.admit_http_publish(user)?;
        if let Some(hooked) = self.http_publish_via_hook(user, publish) {
            return hooked;
        }
        self.publish(Sender::User(user), publish, out)
            .map(UserPublish::Done)
    }

    /// A backend's broadcast, persisted like a publish with `from: null`.
    pub fn publish_as_backend(
        &mut self,
        publish: &Publish,
        out: &mut Vec<Effect>,
    ) -> RelayResult<Receipt> {
        self.publish(Sender::Backend, publish, out)
    }

    fn publish(
        &mut self,
        sender: Sender<'_>,
        publish: &Publish,
        out: &mut Vec<Effect>,
    ) -> RelayResult<Receipt> {
        match self.core.publish(sender, publish, &self.clock)? {
            Published::New { receipt, frame } => {
                let user = match sender {
                    Sender::User(user) => Some(user),
                    Sender::Backend => None,
                };
                self.message_created(user, &receipt, &frame, out);
                out.push(Effect::Broadcast {
                    frame,
                    skip_origin: false,
                    pace: Pace::Now,
                });
                self.after_publish(out);
                Ok(receipt)
            }
            Published::Duplicate(receipt) => Ok(receipt),
        }
    }

    /// Everything that follows a new message: the archive write, members' feed updates and
    /// the look at what they leave unread.
    fn after_publish(&mut self, out: &mut Vec<Effect>) {
        self.schedule_archive(out);
        self.queue_feed_updates(None, out);
        self.schedule_unread_check(out);
    }

    // ---- alarm: archive, feeds, stats, expiry ---------------------------------------------

    /// Makes the alarm fire no later than `at`; the one alarm serves archive, feeds, stats
    /// and token expiry.
    pub fn set_alarm(&mut self, at: i64, out: &mut Vec<Effect>) {
        if self.alarm_at.is_some_and(|set_for| set_for <= at) {
            return;
        }
        self.alarm_at = Some(at);
        out.push(Effect::SetAlarm(at));
    }

    /// The alarm fired: it is no longer set, so the next token expiry needs it again (an
    /// expiry already due is the alarm's look at the connections, [`RoomMachine::expire`]).
    pub fn on_alarm(&mut self, out: &mut Vec<Effect>) {
        self.alarm_at = None;
        self.flush_occupancy(out);
        if let Some(at) = self.next_expiry_ms.filter(|at| *at >= self.clock.now_ms()) {
            self.set_alarm(at.saturating_add(1), out);
        }
    }

    fn schedule_archive(&mut self, out: &mut Vec<Effect>) {
        let delay_ms = self.limits.archive_delay_ms as i64 + self.archive_jitter_ms;
        let due =
            archive_schedule::due_after_write(self.clock.now_ms(), delay_ms, self.archive_retry_at);
        self.archive_due_at = Some(self.archive_due_at.map_or(due, |at| at.min(due)));
        self.set_alarm(due, out);
    }

    /// Whether the archive may write to D1 now; when its batch is not due yet, or a failing
    /// D1 is left alone, the alarm is set for then instead. A write takes what is pending:
    /// what comes meanwhile schedules the next one.
    pub fn archive_may_write(&mut self, out: &mut Vec<Effect>) -> bool {
        if let Some(due) = self.archive_due_at.filter(|due| *due > self.clock.now_ms()) {
            self.set_alarm(due, out);
            return false;
        }
        if archive_schedule::may_write(self.clock.now_ms(), self.archive_retry_at) {
            self.archive_due_at = None;
            return true;
        }
        if let Some(at) = self.archive_retry_at {
            self.set_alarm(at, out);
        }
        false
    }

    /// An archive write failed for the `failures`th time in a row: retry after a backoff.
    /// Returns when (to be kept in storage too).
    pub fn archive_failed(&mut self, failures: u32, out: &mut Vec<Effect>) -> i64 {
        let retry_at = self.clock.now_ms() + archive_schedule::backoff_ms(failures) as i64;
        self.archive_retry_at = Some(retry_at);
        self.archive_due_at = Some(retry_at);
        self.set_alarm(retry_at, out);
        retry_at
    }

    /// An archive write succeeded; true when the room was backing off until now.
    pub fn archive_succeeded(&mut self) -> bool {
        self.archive_retry_at.take().is_some()
    }

    /// The archive has more to write: run again at once.
    pub fn archive_continues(&mut self, out: &mut Vec<Effect>) {
        let now = self.clock.now_ms();
        self.set_alarm(now, out);
    }

    /// Whether the alarm must look at every connection's token expiry now (or, after a wake,
    /// cannot know and must look).
    pub fn expiry_due(&self) -> bool {
        self.next_expiry_ms
            .is_none_or(|at| at < self.clock.now_ms())
    }

    /// The alarm's look at the open connections: those whose token expired are closed, and
    /// the alarm is set for the next expiry.
    pub fn expire<'a>(
        &mut self,
        open: impl IntoIterator<Item = &'a Connection>,
        out: &mut Vec<Effect>,
    ) {
        let now = self.clock.now_ms();
        let mut expired = Vec::new();
        let mut next = None::<i64>;
        for conn in open {
            if conn.expired(now) {
                expired.push(conn.conn_id.clone());
            } else {
                let at = conn.exp.saturating_mul(1000);
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        self.next_expiry_ms = next;
        if let Some(at) = next {
            self.set_alarm(at.saturating_add(1), out);
        }
        if !expired.is_empty() {
            out.push(Effect::CloseConnections {
                conn_ids: expired,
                close: disconnect::TOKEN_EXPIRED,
            });
        }
    }

    /// The room's counts as the directory lists them; its seq counts as reported from now.
    pub(super) fn report(&mut self) -> RoomReport {
        let presence = self.presence.as_ref();
        let report = RoomReport {
            room: self.core.room().to_string(),
            connections: (presence.map_or(0, |p| p.connection_count()) + self.on_shards.0) as u64,
            users: (presence.map_or(0, |p| p.user_count()) + self.on_shards.1) as u64,
            last_seq: self.core.last_seq(),
        };
        self.reported_seq = Some(report.last_seq);
        report
    }

    /// From the alarm: a report when the seq moved in a room with connections (a room
    /// without connections is not listed, so its seq alone is not news).
    pub fn report_if_moved(&mut self, out: &mut Vec<Effect>) {
        let connected = self
            .presence
            .as_ref()
            .is_some_and(|p| p.connection_count() > 0);
        if connected && self.reported_seq != Some(self.core.last_seq()) {
            out.push(Effect::Report(self.report()));
        }
    }

    // ---- members' feeds ------------------------------------------------------------------

    /// Personal rooms feed nobody: their messages are the feed.
    fn feeds_others(&self) -> bool {
        !self.core.room().starts_with("user:")
    }

    /// The members list was replaced: in a members-only room, those no longer on it lose
    /// their sockets (4003).
    pub fn members_replaced(&mut self, before: &[Member], after: &[Member], out: &mut Vec<Effect>) {
        self.has_members = Some(!after.is_empty());
        if !self.members_only {
            return;
        }
        let removed: Vec<String> = before
            .iter()
            .filter(|old| !after.iter().any(|new| new.id == old.id))
            .map(|old| old.id.clone())
            .collect();
        if !removed.is_empty() {
            out.push(Effect::CloseUsers {
                user_ids: removed,
                code: disconnect::REMOVED_FROM_ROOM.code,
                reason: disconnect::REMOVED_FROM_ROOM.reason.to_string(),
            });
        }
    }

    /// A backend disconnects a user (`POST /v1/users/{user}/disconnect`): their sockets close
    /// with 4003 and the backend's reason.
    pub fn disconnect_user(&mut self, user_id: &str, reason: &str, out: &mut Vec<Effect>) {
        out.push(Effect::CloseUsers {
            user_ids: vec![user_id.to_string()],
            code: disconnect::DISCONNECTED.code,
            reason: reason.to_string(),
        });
    }

    /// Marks members (all, or the one whose read marker moved) as owed a `room.update`.
    fn queue_feed_updates(&mut self, only: Option<&str>, out: &mut Vec<Effect>) {
        if !self.feeds_others() {
            return;
        }
        let has_members = match self.has_members {
            Some(known) => Ok(known),
            None => self.core.store().has_members(),
        };
        let now = self.clock.now_ms();
        let queued = has_members.and_then(|has_members| {
            self.has_members = Some(has_members);
            if has_members {
                self.core.store().queue_feed(only, now)?;
            }
            Ok(has_members)
        });
        match queued {
            Ok(true) => {
                self.feed_pending = true;
                let at = feed::next_update_at(self.feed_sent_ms, now);
                self.set_alarm(at, out);
            }
            Ok(false) => {}
            // The message is committed; a lost feed update is only a late unread count.
            Err(err) => out.push(Effect::LogError(format!(
                "could not queue feed updates: {err}"
            ))),
        }
    }

    /// Whether feed updates are owed, and when they may go (at most one run per interval).
    pub fn feed_due(&mut self, out: &mut Vec<Effect>) -> FeedDue {
        // After a wake the room does not know: storage may hold debts of an earlier life.
        let maybe_pending = self.feed_pending || self.feed_sent_ms.is_none();
        if !maybe_pending {
            return FeedDue::Nothing;
        }
        let now = self.clock.now_ms();
        let at = feed::next_update_at(self.feed_sent_ms, now);
        if at > now {
            self.set_alarm(at, out);
            return FeedDue::At(at);
        }
        self.feed_sent_ms = Some(now);
        self.feed_pending = false;
        FeedDue::Now
    }

    /// Some feed updates remain (more than one run's worth, or failed): run again later.
    pub fn feed_unfinished(&mut self, out: &mut Vec<Effect>) {
        self.feed_pending = true;
        let at = self.clock.now_ms() + feed::UPDATE_INTERVAL_MS;
        self.set_alarm(at, out);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;
    use crate::paging::SeqRange;
    use crate::room::{MemoryRoomStore, ReadMarker, StoredMessage};

    #[derive(Default)]
    struct Store {
        inner: MemoryRoomStore,
        members: Cell<bool>,
        member_ids: RefCell<Vec<String>>,
        feed_fails: Cell<bool>,
        queued: RefCell<Vec<(Option<String>, i64)>>,
        /// The outbox: events recorded and not yet settled.
        events: RefCell<Vec<String>>,
    }

    impl RoomStore for Store {
        fn last_seq(&self) -> RelayResult<u64> {
            self.inner.last_seq()
        }
        fn find_by_cid(&self, sender_key: &str, cid: &str) -> RelayResult<Option<Receipt>> {
            self.inner.find_by_cid(sender_key, cid)
        }
        fn append(&self, message: &StoredMessage) -> RelayResult<bool> {
            self.inner.append(message)
        }
        fn page(&self, range: &SeqRange) -> RelayResult<Vec<(u64, String)>> {
            self.inner.page(range)
        }
        fn oldest_kept_seq(&self) -> RelayResult<Option<u64>> {
            self.inner.oldest_kept_seq()
        }
        fn read_marker(&self, user_id: &str) -> RelayResult<Option<u64>> {
            self.inner.read_marker(user_id)
        }
        fn save_read(&self, marker: &ReadMarker) -> RelayResult<()> {
            self.inner.save_read(marker)
        }
        fn recent_reads(&self, limit: u32) -> RelayResult<Vec<ReadMarker>> {
            self.inner.recent_reads(limit)
        }
    }

    impl MachineStore for Store {
        fn has_bans(&self) -> RelayResult<bool> {
            Ok(false)
        }
        fn is_banned(&self, _user_id: &str, _now_s: i64) -> RelayResult<bool> {
            Ok(false)
        }
        fn has_members(&self) -> RelayResult<bool> {
            Ok(self.members.get())
        }
        fn is_member(&self, user_id: &str) -> RelayResult<bool> {
            Ok(self.member_ids.borrow().iter().any(|id| id == user_id))
        }
        fn queue_feed(&self, only: Option<&str>, version: i64) -> RelayResult<()> {
            if self.feed_fails.get() {
                return Err(RelayError::internal());
            }
            self.queued
                .borrow_mut()
                .push((only.map(str::to_string), version));
            Ok(())
        }
        fn record_event(&self, event: &str) -> RelayResult<()> {
            self.events.borrow_mut().push(event.to_string());
            Ok(())
        }
        fn event_count(&self) -> RelayResult<u64> {
            Ok(self.events.borrow().len() as u64)
        }
    }

    /// Edits are tested over the room's SQLite (`room_machine::edits`): here no message is
    /// ever found to change.
    impl crate::edits::EditStore for Store {
        fn edit_target(&self, _seq: u64) -> RelayResult<Option<crate::edits::Target>> {
            Ok(None)
        }
        fn apply_change(&self, _applied: &crate::edits::Applied) -> RelayResult<()> {
            Err(RelayError::internal())
        }
    }

    #[derive(Clone)]
    struct Clock(std::rc::Rc<Cell<i64>>);

    impl Stamps for Clock {
        fn now_ms(&self) -> i64 {
            self.0.get()
        }
        fn new_id(&self) -> String {
            format!("id-{}", self.0.get())
        }
    }

    const T0: i64 = 1_700_000_000_000;

    fn limits() -> Limits {
        Limits::from_vars(|_| None)
    }

    fn machine_in(room: &str, limits: Limits) -> (RoomMachine<Store, Clock>, Clock) {
        let clock = Clock(std::rc::Rc::new(Cell::new(T0)));
        let core = RoomCore::open(Store::default(), room.to_string()).unwrap();
        let machine = RoomMachine::new(core, clock.clone(), limits, 0, None);
        (machine, clock)
    }

    fn machine() -> (RoomMachine<Store, Clock>, Clock) {
        machine_in("chat:1", limits())
    }

    fn user(id: &str) -> User {
        User {
            id: id.to_string(),
            name: None,
            role: None,
        }
    }

    fn conn(id: &str, user_id: &str) -> Connection {
        Connection {
            conn_id: id.to_string(),
            user: user(user_id),
            exp: T0 / 1000 + 3600,
            counts: false,
        }
    }

    fn frame(m: &mut RoomMachine<Store, Clock>, c: &Connection, text: &str) -> Vec<Effect> {
        let mut out = Vec::new();
        m.on_frame(c, Some(text), &mut out);
        out
    }

    fn replies(effects: &[Effect]) -> Vec<serde_json::Value> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Reply(frame) => Some(serde_json::from_str(frame).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn broadcasts(effects: &[Effect]) -> Vec<(serde_json::Value, bool, Pace)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Broadcast {
                    frame,
                    skip_origin,
                    pace,
                } => Some((serde_json::from_str(frame).unwrap(), *skip_origin, *pace)),
                _ => None,
            })
            .collect()
    }

    fn closes(effects: &[Effect]) -> Vec<Disconnect> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Close(d) => Some(*d),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_publish_is_acked_to_its_sender_then_broadcast_to_the_others_then_archived() {
        let (mut m, _) = machine();
        let alice = conn("c1", "alice");
        let out = frame(&mut m, &alice, r#"{"type":"publish","cid":"a","data":1}"#);
        assert!(matches!(&out[0], Effect::Reply(f) if f.contains(r#""type":"ack""#)));
        let sent = broadcasts(&out);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0["seq"], 1);
        assert!(sent[0].1, "the sender gets the ack, not the message");
        assert_eq!(sent[0].2, Pace::Now);
        let archive_at = T0 + limits().archive_delay_ms as i64;
        assert_eq!(out.last(), Some(&Effect::SetAlarm(archive_at)));
    }

    #[test]
    fn a_repeated_cid_is_acked_as_duplicate_and_not_broadcast_again() {
        let (mut m, _) = machine();
        let alice = conn("c1", "alice");
        frame(&mut m, &alice, r#"{"type":"publish","cid":"a","data":1}"#);
        let out = frame(&mut m, &alice, r#"{"type":"publish","cid":"a","data":1}"#);
        assert_eq!(replies(&out)[0]["duplicate"], true);
        assert_eq!(replies(&out)[0]["seq"], 1);
        assert!(broadcasts(&out).is_empty());
    }

    #[test]
    fn the_alarm_is_set_once_for_the_earliest_time() {
        let (mut m, clock) = machine();
        let alice = conn("c1", "alice");
        let first = frame(&mut m, &alice, r#"{"type":"publish","cid":"a","data":1}"#);
        assert!(first.iter().any(|e| matches!(e, Effect::SetAlarm(_))));
        clock.0.set(T0 + 10);
        let second = frame(&mut m, &alice, r#"{"type":"publish","cid":"b","data":1}"#);
        assert!(!second.iter().any(|e| matches!(e, Effect::SetAlarm(_))));
        m.on_alarm(&mut Vec::new());
        let third = frame(&mut m, &alice, r#"{"type":"publish","cid":"c","data":1}"#);
        assert!(third.iter().any(|e| matches!(e, Effect::SetAlarm(_))));
    }

    #[test]
    fn ping_gets_pong() {
        let (mut m, _) = machine();
        let out = frame(&mut m, &conn("c1", "alice"), r#"{"type":"ping"}"#);
        assert_eq!(out, vec![Effect::Reply(protocol::PONG_FRAME.to_string())]);
    }

    #[test]
    fn bad_frames_are_answered_and_too_many_close_the_connection() {
        let (mut m, _) = machine();
        let alice = conn("c1", "alice");
        for n in 1..=MAX_PROTOCOL_VIOLATIONS {
            let out = frame(&mut m, &alice, "not json");
            assert_eq!(replies(&out)[0]["code"], "bad_request", "violation {n}");
            assert!(closes(&out).is_empty());
        }
        // Another connection has its own count.
        let other = frame(&mut m, &conn("c2", "alice"), "not json");
        assert!(closes(&other).is_empty());
        let out = frame(&mut m, &alice, "not json");
        assert_eq!(closes(&out), vec![disconnect::PROTOCOL_VIOLATIONS]);
        // A closed connection's count is forgotten.
        m.on_gone(&alice, &mut Vec::new());
        assert!(closes(&frame(&mut m, &alice, "not json")).is_empty());
    }

    #[test]
    fn a_binary_frame_is_a_violation() {
        let (mut m, _) = machine();
        let mut out = Vec::new();
        m.on_frame(&conn("c1", "alice"), None, &mut out);
        assert_eq!(replies(&out)[0]["code"], "bad_request");
    }

    #[test]
    fn an_oversized_frame_closes_with_4009() {
        let (mut m, _) = machine();
        let big = format!(
            r#"{{"type":"publish","cid":"a","data":"{}"}}"#,
            "x".repeat(limits().max_frame_bytes)
        );
        let out = frame(&mut m, &conn("c1", "alice"), &big);
        assert_eq!(out, vec![Effect::Close(disconnect::FRAME_TOO_LARGE)]);
    }

    #[test]
    fn a_frame_after_the_token_expired_closes_with_4001() {
        let (mut m, clock) = machine();
        let alice = conn("c1", "alice");
        clock.0.set(alice.exp * 1000 + 1);
        let out = frame(&mut m, &alice, r#"{"type":"publish","cid":"a","data":1}"#);
        assert_eq!(out, vec![Effect::Close(disconnect::TOKEN_EXPIRED)]);
        assert_eq!(m.core().last_seq(), 0, "nothing was published");
    }

    #[test]
    fn publishes_past_the_rate_are_refused_then_abuse_closes() {
        let mut limits = limits();
        limits.rates.publish_burst = 2;
        limits.rates.publish_per_second = 1;
        limits.rates.max_strikes = 5;
        let (mut m, _) = machine_in("chat:1", limits);
        let alice = conn("c1", "alice");
        let mut refused = 0;
        let mut closed = false;
        for n in 0..200 {
            let out = frame(
                &mut m,
                &alice,
                &format!(r#"{{"type":"publish","cid":"m{n}","data":1}}"#),
            );
            if let Some(reply) = replies(&out).first() {
                if reply["code"] == "rate_limited" {
                    refused += 1;
                    assert_eq!(reply["cid"], format!("m{n}"));
                }
            }
            if closes(&out) == vec![disconnect::RATE_LIMIT_ABUSE] {
                closed = true;
                break;
            }
        }
        assert_eq!(m.core().last_seq(), 2, "only the burst was published");
        assert!(refused > 0 && closed);
    }

    #[test]
    fn http_publishes_share_the_users_bucket_with_their_sockets() {
        let mut limits = limits();
        limits.rates.publish_burst = 1;
        let (mut m, _) = machine_in("chat:1", limits);
        let alice = conn("c1", "alice");
        frame(&mut m, &alice, r#"{"type":"publish","cid":"a","data":1}"#);
        let publish: Publish = serde_json::from_str(r#"{"cid":"b","data":1}"#).unwrap();
        let err = m
            .publish_as_user(&alice.user, &publish, &mut Vec::new())
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
        // Another user is not limited by alice.
        let mut out = Vec::new();
        let published = m.publish_as_user(&user("bob"), &publish, &mut out);
        assert!(matches!(published, Ok(UserPublish::Done(receipt)) if receipt.seq == 2));
        assert!(
            !broadcasts(&out)[0].1,
            "an HTTP publish reaches every socket"
        );
    }

    #[test]
    fn typing_is_broadcast_to_others_and_silently_dropped_past_its_rate() {
        let (mut m, _) = machine();
        let alice = conn("c1", "alice");
        m.restore([&alice]);
        let out = frame(&mut m, &alice, r#"{"type":"typing","active":true}"#);
        let sent = broadcasts(&out);
        assert_eq!(sent[0].0["type"], "typing");
        assert!(sent[0].1);
        let mut dropped = 0;
        for _ in 0..100 {
            if frame(&mut m, &alice, r#"{"type":"typing","active":true}"#).is_empty() {
                dropped += 1;
            }
        }
        assert!(dropped > 0);
    }

    #[test]
    fn reads_move_forward_once_and_owe_member_feeds() {
        let (mut m, _) = machine();
        m.core().store().members.set(true);
        let alice = conn("c1", "alice");
        frame(&mut m, &alice, r#"{"type":"publish","cid":"a","data":1}"#);
        m.core().store().queued.borrow_mut().clear();
        let out = frame(&mut m, &alice, r#"{"type":"read","seq":1}"#);
        assert_eq!(broadcasts(&out)[0].0["type"], "read");
        assert_eq!(
            m.core().store().queued.borrow().as_slice(),
            &[(Some("alice".to_string()), T0)]
        );
        assert!(frame(&mut m, &alice, r#"{"type":"read","seq":1}"#).is_empty());
        let beyond = frame(&mut m, &alice, r#"{"type":"read","seq":9}"#);
        assert_eq!(replies(&beyond)[0]["code"], "bad_request");
    }

    #[test]
    fn personal_rooms_and_rooms_without_members_owe_no_feeds() {
        for (room, members) in [("user:alice", true), ("chat:1", false)] {
            let (mut m, _) = machine_in(room, limits());
            m.core().store().members.set(members);
            frame(
                &mut m,
                &conn("c1", "alice"),
                r#"{"type":"publish","cid":"a","data":1}"#,
            );
            assert!(m.core().store().queued.borrow().is_empty(), "{room}");
        }
    }

    #[test]
    fn feed_updates_go_at_most_once_per_interval() {
        let (mut m, clock) = machine();
        m.core().store().members.set(true);
        let mut out = Vec::new();
        // After a wake the room may owe updates from an earlier life.
        assert_eq!(m.feed_due(&mut out), FeedDue::Now);
        assert_eq!(m.feed_due(&mut out), FeedDue::Nothing);
        frame(
            &mut m,
            &conn("c1", "alice"),
            r#"{"type":"publish","cid":"a","data":1}"#,
        );
        let next = T0 + feed::UPDATE_INTERVAL_MS;
        assert_eq!(m.feed_due(&mut out), FeedDue::At(next));
        clock.0.set(next);
        assert_eq!(m.feed_due(&mut out), FeedDue::Now);
        m.feed_unfinished(&mut out);
        clock.0.set(next + feed::UPDATE_INTERVAL_MS);
        assert_eq!(m.feed_due(&mut out), FeedDue::Now);
    }

    #[test]
    fn joins_are_announced_once_per_user_and_leaves_after_the_grace() {
        let (mut m, clock) = machine();
        m.restore([]);
        let (a1, a2, bob) = (conn("c1", "alice"), conn("c2", "alice"), conn("c3", "bob"));
        let mut out = Vec::new();
        m.on_connected(&a1, &mut out);
        assert_eq!(broadcasts(&out)[0].0["event"], "join");
        assert_eq!(broadcasts(&out)[0].2, Pace::Presence);
        let mut out = Vec::new();
        m.on_connected(&a2, &mut out);
        assert!(broadcasts(&out).is_empty(), "a second tab is not a join");
        m.on_connected(&bob, &mut Vec::new());
        frame(&mut m, &a1, r#"{"type":"typing","active":true}"#);

        let mut out = Vec::new();
        m.on_gone(&a1, &mut out);
        assert!(!out
            .iter()
            .any(|e| matches!(e, Effect::WakeForLeaves { .. })));
        let mut out = Vec::new();
        m.on_gone(&a2, &mut out);
        let wake = out.iter().find_map(|e| match e {
            Effect::WakeForLeaves { after_ms } => Some(*after_ms),
            _ => None,
        });
        assert_eq!(wake, Some(LEAVE_GRACE_MS + LEAVE_SLACK_MS));
        // A second departure during the sweep starts no second wake-up.
        let mut out = Vec::new();
        m.on_gone(&bob, &mut out);
        assert!(!out
            .iter()
            .any(|e| matches!(e, Effect::WakeForLeaves { .. })));

        clock.0.set(T0 + LEAVE_GRACE_MS + LEAVE_SLACK_MS);
        let mut out = Vec::new();
        m.on_leaves_due(&mut out);
        let sent = broadcasts(&out);
        let kinds: Vec<_> = sent
            .iter()
            .map(|(f, _, _)| f["event"].as_str().unwrap_or("typing").to_string())
            .collect();
        assert_eq!(kinds, ["typing", "leave", "leave"]);
        assert_eq!(sent[0].0["active"], false);
        assert!(sent[1].0["last_seen"].is_string());
        assert!(!out
            .iter()
            .any(|e| matches!(e, Effect::WakeForLeaves { .. })));
        let everyone = crate::occupancy::PresencePage::default();
        assert_eq!(m.presence_page(&everyone), (vec![], None, 0));
    }

    #[test]
    fn a_quick_reconnect_cancels_the_leave() {
        let (mut m, clock) = machine();
        m.restore([]);
        let a1 = conn("c1", "alice");
        m.on_connected(&a1, &mut Vec::new());
        m.on_gone(&a1, &mut Vec::new());
        let mut out = Vec::new();
        m.on_connected(&conn("c2", "alice"), &mut out);
        assert!(broadcasts(&out).is_empty(), "no join after a reload");
        clock.0.set(T0 + LEAVE_GRACE_MS + LEAVE_SLACK_MS);
        let mut out = Vec::new();
        m.on_leaves_due(&mut out);
        assert!(broadcasts(&out).is_empty(), "no leave either");
    }

    #[test]
    fn welcome_lists_the_newcomer_with_those_present() {
        let (mut m, _) = machine();
        m.restore([&conn("c1", "bob")]);
        let welcome: serde_json::Value =
            serde_json::from_str(&m.welcome(&conn("c2", "alice")).unwrap()).unwrap();
        let ids: Vec<_> = welcome["presence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, ["alice", "bob"]);
    }

    #[test]
    fn connect_attempts_are_bounded_per_user() {
        let (mut m, _) = machine();
        let alice = user("alice");
        let burst = limits().rates.connect_burst;
        for _ in 0..burst {
            m.admit(&alice).unwrap();
        }
        let err = m.admit(&alice).unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert!(err.retry_after_ms.is_some());
        m.admit(&user("bob")).unwrap();
    }

    #[test]
    fn idle_connections_are_closed_when_their_token_expires() {
        let (mut m, clock) = machine();
        m.restore([]);
        let mut early = conn("c1", "alice");
        early.exp = T0 / 1000 + 60;
        let late = conn("c2", "bob");
        let mut out = Vec::new();
        m.on_connected(&late, &mut out);
        assert!(out.contains(&Effect::SetAlarm(late.exp * 1000 + 1)));
        let mut out = Vec::new();
        m.on_connected(&early, &mut out);
        assert!(out.contains(&Effect::SetAlarm(early.exp * 1000 + 1)));

        assert!(!m.expiry_due());
        // The expiry's alarm fires: nothing is set before the look at the connections.
        clock.0.set(early.exp * 1000 + 1);
        let mut out = Vec::new();
        m.on_alarm(&mut out);
        assert!(out.is_empty(), "{out:?}");
        assert!(m.expiry_due());
        let mut out = Vec::new();
        m.expire([&early, &late], &mut out);
        assert!(out.contains(&Effect::CloseConnections {
            conn_ids: vec!["c1".into()],
            close: disconnect::TOKEN_EXPIRED
        }));
        assert!(out.contains(&Effect::SetAlarm(late.exp * 1000 + 1)));
        assert!(!m.expiry_due());
    }

    #[test]
    fn after_a_wake_the_alarm_must_look_at_the_connections() {
        let (m, _) = machine();
        assert!(m.expiry_due());
    }

    #[test]
    fn an_alarm_for_events_does_not_bring_the_archive_write_forward() {
        let (m, clock) = machine();
        let mut m = m.events(true);
        frame(
            &mut m,
            &conn("c1", "alice"),
            r#"{"type":"publish","cid":"a","data":1}"#,
        );
        let due = T0 + limits().archive_delay_ms as i64;
        clock.0.set(T0 + crate::events::SEND_DELAY_MS);
        let mut out = Vec::new();
        m.on_alarm(&mut out);
        assert!(!m.archive_may_write(&mut out));
        assert_eq!(out, vec![Effect::SetAlarm(due)]);
        clock.0.set(due);
        m.on_alarm(&mut Vec::new());
        assert!(m.archive_may_write(&mut Vec::new()));
        // A publish while D1 is written is due a delay later, not at the next events alarm.
        frame(
            &mut m,
            &conn("c1", "alice"),
            r#"{"type":"publish","cid":"b","data":1}"#,
        );
        m.archive_succeeded();
        let mut out = Vec::new();
        m.on_alarm(&mut out);
        assert!(!m.archive_may_write(&mut out));
        assert_eq!(
            out,
            vec![Effect::SetAlarm(due + limits().archive_delay_ms as i64)]
        );
    }

    #[test]
    fn a_failing_archive_backs_off_and_recovers() {
        let (mut m, clock) = machine();
        let mut out = Vec::new();
        assert!(m.archive_may_write(&mut out));
        let retry_at = m.archive_failed(3, &mut out);
        assert_eq!(retry_at, T0 + archive_schedule::backoff_ms(3) as i64);
        assert_eq!(out, vec![Effect::SetAlarm(retry_at)]);
        // A publish meanwhile does not bring the write forward.
        let publish = frame(
            &mut m,
            &conn("c1", "alice"),
            r#"{"type":"publish","cid":"a","data":1}"#,
        );
        assert!(!publish
            .iter()
            .any(|e| matches!(e, Effect::SetAlarm(at) if *at < retry_at)));
        m.on_alarm(&mut Vec::new());
        let mut out = Vec::new();
        assert!(!m.archive_may_write(&mut out));
        assert_eq!(out, vec![Effect::SetAlarm(retry_at)]);
        clock.0.set(retry_at);
        assert!(m.archive_may_write(&mut Vec::new()));
        assert!(m.archive_succeeded());
        assert!(!m.archive_succeeded());
    }

    #[test]
    fn stats_are_reported_on_connect_and_leave_and_when_the_seq_moved() {
        let (mut m, _) = machine();
        m.restore([]);
        let alice = conn("c1", "alice");
        let mut out = Vec::new();
        m.on_connected(&alice, &mut out);
        let report = out.iter().find_map(|e| match e {
            Effect::Report(r) => Some(r.clone()),
            _ => None,
        });
        assert_eq!(report.map(|r| (r.connections, r.users)), Some((1, 1)));
        let mut out = Vec::new();
        m.report_if_moved(&mut out);
        assert!(out.is_empty(), "nothing new");
        frame(&mut m, &alice, r#"{"type":"publish","cid":"a","data":1}"#);
        m.report_if_moved(&mut out);
        assert!(matches!(&out[..], [Effect::Report(r)] if r.last_seq == 1));
    }

    fn member(id: &str) -> Member {
        Member {
            id: id.to_string(),
            role: None,
        }
    }

    /// A members-only room whose list holds `members`.
    fn members_only_machine(members: &[&str]) -> RoomMachine<Store, Clock> {
        let (m, _) = machine();
        let m = m.members_only(true);
        let ids = members.iter().map(|id| id.to_string());
        m.core().store().member_ids.borrow_mut().extend(ids);
        m
    }

    #[test]
    fn a_members_only_room_admits_members_only() {
        let mut m = members_only_machine(&["alice"]);
        m.admit(&user("alice")).unwrap();
        let publish: Publish = serde_json::from_str(r#"{"cid":"a","data":1}"#).unwrap();
        m.publish_as_user(&user("alice"), &publish, &mut Vec::new())
            .unwrap();
        for err in [
            m.admit(&user("mallory")).unwrap_err(),
            m.check_member(&user("mallory")).unwrap_err(),
            m.publish_as_user(&user("mallory"), &publish, &mut Vec::new())
                .unwrap_err(),
        ] {
            assert_eq!(err.code, ErrorCode::Forbidden);
            assert_eq!(err.message, "not a member of this room");
        }
        assert_eq!(m.core().last_seq(), 1);
    }

    #[test]
    fn other_rooms_do_not_ask_for_membership() {
        let (mut m, _) = machine();
        m.admit(&user("mallory")).unwrap();
        m.check_member(&user("mallory")).unwrap();
    }

    #[test]
    fn removed_members_lose_their_sockets_in_members_only_rooms() {
        let before = [member("alice"), member("bob")];
        let after = [member("bob"), member("carol")];
        let mut m = members_only_machine(&[]);
        let mut out = Vec::new();
        m.members_replaced(&before, &after, &mut out);
        assert_eq!(
            out,
            vec![Effect::CloseUsers {
                user_ids: vec!["alice".into()],
                code: 4003,
                reason: "removed from the room".into(),
            }]
        );
        let (mut open_room, _) = machine();
        let mut out = Vec::new();
        open_room.members_replaced(&before, &after, &mut out);
        assert!(out.is_empty(), "membership grants nothing in other rooms");
    }

    #[test]
    fn a_disconnected_user_loses_every_socket_with_the_reason() {
        let (mut m, _) = machine();
        let mut out = Vec::new();
        m.disconnect_user("alice", "account suspended", &mut out);
        assert_eq!(
            out,
            vec![Effect::CloseUsers {
                user_ids: vec!["alice".into()],
                code: 4003,
                reason: "account suspended".into(),
            }]
        );
    }

    fn identity(user_id: &str, grants: &[&str], exp: i64) -> Identity {
        Identity {
            user: user(user_id),
            grants: grants.iter().map(|g| g.to_string()).collect(),
            expires_at: exp,
            accepted_until: exp + 30,
        }
    }

    #[test]
    fn an_auth_frame_asks_for_its_token_to_be_verified() {
        let (mut m, _) = machine();
        let out = frame(
            &mut m,
            &conn("c1", "alice"),
            r#"{"type":"auth","token":"t.k.n"}"#,
        );
        assert_eq!(out, vec![Effect::VerifyToken("t.k.n".into())]);
        let empty = frame(
            &mut m,
            &conn("c1", "alice"),
            r#"{"type":"auth","token":""}"#,
        );
        assert_eq!(replies(&empty)[0]["code"], "bad_request");
    }

    #[test]
    fn a_valid_renewal_replaces_the_expiry_and_answers_with_it() {
        let (mut m, _) = machine();
        let alice = conn("c1", "alice");
        let exp = alice.exp + 7200;
        let mut out = Vec::new();
        m.on_renewal(&alice, Ok(identity("alice", &["chat:*"], exp)), &mut out);
        assert_eq!(
            out,
            vec![
                Effect::Reattach(Connection {
                    exp: exp + 30,
                    ..alice.clone()
                }),
                Effect::Reply(protocol::auth_frame(exp)),
            ]
        );
    }

    #[test]
    fn a_refused_renewal_is_an_error_frame_and_changes_nothing() {
        let mut m = members_only_machine(&["alice"]);
        let alice = conn("c1", "alice");
        let exp = alice.exp + 7200;
        let cases = [
            (
                Err(RelayError::unauthorized("bad signature")),
                "unauthorized",
            ),
            (Ok(identity("mallory", &["*"], exp)), "unauthorized"),
            (Ok(identity("alice", &["other:*"], exp)), "forbidden"),
        ];
        for (verified, code) in cases {
            let mut out = Vec::new();
            m.on_renewal(&alice, verified, &mut out);
            assert_eq!(out.len(), 1, "{out:?}");
            assert_eq!(replies(&out)[0]["code"], code);
            assert!(replies(&out)[0].get("cid").is_none());
        }
        // A member removed meanwhile cannot renew either.
        m.core().store().member_ids.borrow_mut().clear();
        let mut out = Vec::new();
        m.on_renewal(&alice, Ok(identity("alice", &["*"], exp)), &mut out);
        assert_eq!(replies(&out)[0]["code"], "forbidden");
        // Refusals are not protocol violations.
        assert!(m.violations.is_empty());
    }

    #[test]
    fn an_alarm_for_other_work_leaves_the_expiry_watched() {
        let (mut m, _) = machine();
        m.restore([]);
        let alice = conn("c1", "alice");
        m.on_connected(&alice, &mut Vec::new());
        // A publish brings the alarm forward to the archive write...
        frame(&mut m, &alice, r#"{"type":"publish","cid":"a","data":1}"#);
        // ...and when that alarm has fired, the expiry needs the alarm again.
        let mut out = Vec::new();
        m.on_alarm(&mut out);
        assert_eq!(out, vec![Effect::SetAlarm(alice.exp * 1000 + 1)]);
    }

    #[test]
    fn a_feed_that_cannot_be_queued_is_logged_and_the_publish_stands() {
        let (mut m, _) = machine();
        m.core().store().members.set(true);
        m.core().store().feed_fails.set(true);
        let out = frame(
            &mut m,
            &conn("c1", "alice"),
            r#"{"type":"publish","cid":"a","data":1}"#,
        );
        assert_eq!(replies(&out)[0]["type"], "ack");
        assert_eq!(broadcasts(&out).len(), 1);
        assert!(out.iter().any(
            |e| matches!(e, Effect::LogError(line) if line.starts_with("could not queue feed"))
        ));
    }

    mod publish_hook;

    // ---- outgoing events -----------------------------------------------------------------

    fn recorded(m: &RoomMachine<Store, Clock>) -> Vec<serde_json::Value> {
        m.core()
            .store()
            .events
            .borrow()
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect()
    }

    #[test]
    fn without_events_nothing_is_recorded() {
        let (mut m, _) = machine();
        frame(
            &mut m,
            &conn("c1", "alice"),
            r#"{"type":"publish","cid":"a","data":1}"#,
        );
        m.on_connected(&conn("c2", "bob"), &mut Vec::new());
        assert!(recorded(&m).is_empty());
    }

    #[test]
    fn publishes_joins_reads_and_leaves_are_recorded_in_the_order_they_happen() {
        let (m, clock) = machine();
        let mut m = m.events(true);
        let alice = conn("c1", "alice");
        m.on_connected(&alice, &mut Vec::new());
        m.on_connected(&conn("c1b", "alice"), &mut Vec::new());
        frame(
            &mut m,
            &alice,
            r#"{"type":"publish","cid":"a","data":{"t":1}}"#,
        );
        let backend = Publish {
            cid: Some("b1".into()),
            event: Some("order".into()),
            data: serde_json::value::to_raw_value(&2).unwrap(),
        };
        m.publish_as_backend(&backend, &mut Vec::new()).unwrap();
        // A repeat is no new message, and no new event.
        m.publish_as_backend(&backend, &mut Vec::new()).unwrap();
        frame(&mut m, &alice, r#"{"type":"read","seq":2}"#);
        m.on_gone(&alice, &mut Vec::new());
        m.on_gone(&conn("c1b", "alice"), &mut Vec::new());
        clock.0.set(T0 + LEAVE_GRACE_MS + LEAVE_SLACK_MS);
        m.on_leaves_due(&mut Vec::new());

        let events = recorded(&m);
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "presence.joined",
                "message.created",
                "message.created",
                "read.updated",
                "presence.left"
            ]
        );
        assert_eq!(events[1]["seq"], 1);
        assert_eq!(events[1]["user"]["id"], "alice");
        assert_eq!(events[1]["message"]["data"]["t"], 1);
        assert_eq!(events[2]["seq"], 2);
        assert_eq!(events[2]["user"], serde_json::Value::Null);
        assert_eq!(events[3]["seq"], 2);
        assert!(events
            .iter()
            .all(|e| e["room"] == "chat:1" && e["id"].is_string()));
    }

    #[test]
    fn events_are_sent_soon_unless_a_batch_is_queued_and_settling_sends_the_rest() {
        let (m, _) = machine();
        let mut m = m.events(true);
        let alice = conn("c1", "alice");
        let out = frame(&mut m, &alice, r#"{"type":"publish","cid":"a","data":1}"#);
        assert!(out.contains(&Effect::SetAlarm(T0 + crate::events::SEND_DELAY_MS)));

        let mut out = Vec::new();
        m.on_alarm(&mut out);
        m.events_queued(T0 + 60_000, &mut out);
        assert_eq!(out, vec![Effect::SetAlarm(T0 + 60_000)]);
        let out = frame(&mut m, &alice, r#"{"type":"publish","cid":"b","data":1}"#);
        assert!(!out.contains(&Effect::SetAlarm(T0 + crate::events::SEND_DELAY_MS)));

        let mut out = Vec::new();
        m.events_settled(false, 1, &mut out);
        assert_eq!(out, vec![Effect::SetAlarm(T0)]);
        let mut out = Vec::new();
        m.on_alarm(&mut out);
        m.events_settled(true, 0, &mut out);
        assert!(matches!(&out[..], [Effect::LogError(line)] if line.contains("dead-lettered")));
    }

    #[test]
    fn a_full_outbox_drops_new_events_and_says_so_once() {
        let (m, _) = machine();
        let mut m = m.events(true);
        for n in 0..crate::events::MAX_OUTBOX_EVENTS {
            m.core().store().record_event(&n.to_string()).unwrap();
        }
        let alice = conn("c1", "alice");
        let first = frame(&mut m, &alice, r#"{"type":"publish","cid":"a","data":1}"#);
        let second = frame(&mut m, &alice, r#"{"type":"publish","cid":"b","data":1}"#);
        assert_eq!(
            broadcasts(&second).len(),
            1,
            "the message itself is not refused"
        );
        let logs = |out: &[Effect]| {
            out.iter()
                .filter(|e| matches!(e, Effect::LogError(_)))
                .count()
        };
        assert_eq!((logs(&first), logs(&second)), (1, 0));
        assert_eq!(
            m.core().store().event_count().unwrap(),
            crate::events::MAX_OUTBOX_EVENTS
        );
        let mut out = Vec::new();
        m.events_settled(false, 0, &mut out);
        assert!(out
            .iter()
            .any(|e| matches!(e, Effect::LogError(l) if l.starts_with("2 events"))));
    }
}
