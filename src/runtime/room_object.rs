//! The `Room` Durable Object: one per room, holding its hibernating sockets and its storage.
//!
//! Everything a connection needs after the object wakes lives in the socket's attachment
//! (`Attachment`) or in SQLite; the in-memory `Loaded` state is a cache rebuilt on demand.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use web_sys::{Request, Response};
use worker::wasm_bindgen_futures::spawn_local;
use worker::worker_sys::ext::WebSocketExt;
use worker::worker_sys::DurableObjectState;
use worker::{Env, State, WebSocket};

use super::archive::Archive;
use super::fanout::Pace;
use super::http::{self, header};
use super::settle::{settle, sleep};
use super::sql_store::SqlRoomStore;
use super::{internal, now_ms};
use crate::archive_schedule;
use crate::auth::User;
use crate::config::{Limits, MAX_PROTOCOL_VIOLATIONS};
use crate::error::{ErrorCode, RelayError, RelayResult};
use crate::paging::{HistoryQuery, SeqRange};
use crate::presence::{Presence, LEAVE_GRACE_MS};
use crate::protocol::{self, ClientFrame, Publish, Welcome};
use crate::random_ids::{random_below, random_id};
use crate::rate_limit::{RoomLimits, Verdict};
use crate::replay::{self, Replay};
use crate::room::{self, Published, ResumePlan, RoomCore, Sender, Stamps, MAX_REPLAY_MESSAGES};
use crate::room_api::{self, Caller, Connect, RoomRequest, ROOM_HEADER, SUBPROTOCOL_HEADER};
use crate::room_name;

/// `WebSocket.readyState` of an open socket.
const OPEN: u16 = 1;

/// Meta keys of the room's storage.
const META_ROOM: &str = "room";
const META_ARCHIVED: &str = "archived_seq";
const META_ARCHIVE_FAILURES: &str = "archive_failures";
/// When the archive may next try D1 after a failure (ms since the epoch; 0 when not failing).
const META_ARCHIVE_RETRY_AT: &str = "archive_retry_at";
/// Messages written to D1 per batch, and batches per alarm run.
const ARCHIVE_BATCH: u32 = 100;
const ARCHIVE_BATCHES_PER_RUN: u32 = 10;
/// Added to a leave's due time, so that the timer never fires just before it.
const LEAVE_SLACK_MS: i64 = 50;
/// Bound of one leave sweep: rounds of waiting for the next due leave.
const MAX_LEAVE_ROUNDS: u32 = 100_000;

/// What each socket carries through hibernation.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attachment {
    conn_id: String,
    user: User,
    exp: i64,
}

impl Attachment {
    /// Stored as one JSON string: a single crossing into JavaScript, where a JS object would
    /// take one per field (and the room reads it on every frame a socket sends).
    fn to_json(&self) -> RelayResult<String> {
        serde_json::to_string(self).map_err(|_| RelayError::internal())
    }

    /// The socket's attachment; `None` for a socket the room never accepted.
    fn of(ws: &WebSocket) -> Option<Attachment> {
        let raw: &web_sys::WebSocket = ws.as_ref();
        let text = raw.deserialize_attachment().ok()?.as_string()?;
        serde_json::from_str(&text).ok()
    }
}

pub(super) struct Loaded {
    pub(super) core: RoomCore<SqlRoomStore>,
    pub(super) presence: Option<Presence>,
    /// Protocol violations per connection (4400 past [`MAX_PROTOCOL_VIOLATIONS`]).
    violations: HashMap<String, u32>,
    /// Publish, typing and connect limits per user, over all their connections and HTTP.
    limits: RoomLimits,
    /// When the alarm is set for, as far as this instance knows (`None` after a wake).
    alarm_at: Option<i64>,
    /// Outbound traffic to other objects: feed updates and stats reports.
    pub(super) outbox: super::room_backend::Outbox,
    /// Whether the room has members (so publishes owe feed updates); `None` until looked up.
    pub(super) has_members: Option<bool>,
    /// Added to this room's archive delay, so that rooms busy since the same moment do not
    /// all write to D1 in the same instant (a burst that stalls every room of the isolate).
    archive_jitter_ms: i64,
    /// Until when a failing D1 is left alone (see [`archive_schedule`]); kept in storage too.
    archive_retry_at: Option<i64>,
    /// Whether a timer is already waiting to announce pending leaves.
    leave_sweep: bool,
}

pub(super) struct RuntimeStamps;

impl Stamps for RuntimeStamps {
    fn now_ms(&self) -> i64 {
        now_ms()
    }

    fn new_id(&self) -> String {
        random_id(now_ms())
    }
}

/// The room's Durable Object class as the runtime sees it. Its entry points are bound by hand
/// (rather than through `worker::DurableObject`) so that requests and responses pass as the
/// runtime's own objects, and so that work which never waits answers without a Promise.
#[wasm_bindgen(js_name = Room)]
pub struct RoomEntry {
    room: Rc<Room>,
}

/// One room's state: its storage, its sockets (held by the runtime) and its in-memory cache.
pub struct Room {
    /// The room itself, for work that outlives the event that started it (a paced replay).
    pub(super) me: Weak<Room>,
    pub(super) state: State,
    pub(super) env: Env,
    limits: Limits,
    loaded: RefCell<Option<Loaded>>,
}

#[wasm_bindgen(js_class = Room)]
impl RoomEntry {
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> RoomEntry {
        let state = State::from(state);
        if let Ok(pair) =
            worker::WebSocketRequestResponsePair::new(protocol::PING_FRAME, protocol::PONG_FRAME)
        {
            state.set_websocket_auto_response(&pair);
        }
        let limits = Limits::from_vars(|name| env.var(name).ok().map(|v| v.to_string()));
        super::fanout::configure(limits.max_socket_buffer_bytes);
        let room = Rc::new_cyclic(|me| Room {
            me: me.clone(),
            state,
            env,
            limits,
            loaded: RefCell::new(None),
        });
        RoomEntry { room }
    }

    pub fn fetch(&self, req: Request) -> JsValue {
        let room = Rc::clone(&self.room);
        settle(async move {
            let response = match room.handle(req).await {
                Ok(response) => response,
                Err(err) => http::error(&err)?,
            };
            Ok(response.into())
        })
    }

    #[wasm_bindgen(js_name = webSocketMessage)]
    pub fn websocket_message(&self, ws: web_sys::WebSocket, message: JsValue) {
        let ws = WebSocket::from(ws);
        if let Err(err) = self.room.on_message(&ws, message) {
            self.room.reject(&ws, err, None);
        }
    }

    #[wasm_bindgen(js_name = webSocketClose)]
    pub fn websocket_close(
        &self,
        ws: web_sys::WebSocket,
        _code: u16,
        _reason: String,
        _was_clean: bool,
    ) -> JsValue {
        let room = Rc::clone(&self.room);
        settle(async move {
            let ws = WebSocket::from(ws);
            // Completes the closing handshake where the runtime does not do it by itself.
            let _ = ws.close(Some(1000), Some("closed"));
            room.on_gone(&ws).await;
            Ok(JsValue::UNDEFINED)
        })
    }

    #[wasm_bindgen(js_name = webSocketError)]
    pub fn websocket_error(&self, ws: web_sys::WebSocket, _error: JsValue) -> JsValue {
        let room = Rc::clone(&self.room);
        settle(async move {
            room.on_gone(&WebSocket::from(ws)).await;
            Ok(JsValue::UNDEFINED)
        })
    }

    pub fn alarm(&self) -> JsValue {
        let room = Rc::clone(&self.room);
        settle(async move {
            let _ = room.with_loaded(None, |l| {
                l.alarm_at = None;
                Ok(())
            });
            if let Err(err) = room.archive_pending().await {
                worker::console_error!("archive run failed: {err}");
            }
            if let Err(err) = room.send_outbox().await {
                worker::console_error!("outbox run failed: {err}");
            }
            Ok(JsValue::UNDEFINED)
        })
    }
}

#[wasm_bindgen(inline_js = "
export function setAlarmAt(state, at) {
  state.storage.setAlarm(at).catch((err) => console.error('could not set the alarm: ' + err));
}
")]
extern "C" {
    /// Sets the room's alarm to `at` (milliseconds since the epoch) without waiting.
    #[wasm_bindgen(js_name = setAlarmAt)]
    fn set_alarm_at(state: &JsValue, at: f64);
}

/// A refused connect: on the socket when the client offered a subprotocol (the Worker says
/// which in [`Connect::subprotocol`]), as a browser cannot read an HTTP refusal of an upgrade.
fn refuse_connect(subprotocol: Option<String>, err: RelayError) -> RelayResult<Response> {
    match subprotocol {
        Some(protocol) => http::refuse_on_socket(&err, &protocol).map_err(internal("refusal")),
        None => Err(err),
    }
}

impl Room {
    /// Opens the room's storage on first use; `room` names it on its first request.
    pub(super) fn with_loaded<T>(
        &self,
        room: Option<&str>,
        f: impl FnOnce(&mut Loaded) -> RelayResult<T>,
    ) -> RelayResult<T> {
        let mut slot = self.loaded.borrow_mut();
        if slot.is_none() {
            let store = SqlRoomStore::open(self.state.storage().sql())?;
            let name = match (store.meta(META_ROOM)?, room) {
                (Some(name), _) => name,
                (None, Some(name)) => {
                    store.set_meta(META_ROOM, name)?;
                    name.to_string()
                }
                (None, None) => return Err(RelayError::internal()),
            };
            let archive_retry_at = store
                .meta(META_ARCHIVE_RETRY_AT)?
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|at| *at > 0);
            *slot = Some(Loaded {
                core: RoomCore::open(store, name)?,
                presence: None,
                violations: HashMap::new(),
                limits: RoomLimits::new(self.limits.rates.clone()),
                alarm_at: None,
                outbox: Default::default(),
                has_members: None,
                archive_jitter_ms: random_below(self.limits.archive_delay_ms / 2 + 1, now_ms())
                    as i64,
                leave_sweep: false,
                archive_retry_at,
            });
        }
        f(slot.as_mut().expect("loaded above"))
    }

    async fn handle(&self, req: Request) -> RelayResult<Response> {
        let room = header(&req, ROOM_HEADER)
            .map(|r| room_name::percent_decode(&r))
            .transpose()?
            .ok_or_else(|| RelayError::bad_request("missing room"))?;
        let method = req.method();
        let body = match room_api::has_body(&method) {
            true => Some(http::body_text(&req).await?),
            false => None,
        };
        let request = match RoomRequest::decode(&method, &req.url(), |n| header(&req, n), body) {
            Ok(request) => request,
            // Only a connect carries a subprotocol: a malformed one is refused where it can be read.
            Err(err) => return refuse_connect(header(&req, SUBPROTOCOL_HEADER), err),
        };
        match request {
            RoomRequest::Connect(connect) => {
                let subprotocol = connect.subprotocol.clone();
                let connected = async {
                    self.admit(&connect.caller, &room)?;
                    self.accept_connection(connect, &room).await
                };
                connected
                    .await
                    .or_else(|err| refuse_connect(subprotocol, err))
            }
            RoomRequest::History { query, .. } => self.history(&room, query).await,
            RoomRequest::Publish { caller, body } => self.http_publish(&caller, &body, &room),
            RoomRequest::Broadcast(broadcast) => self.backend_publish(broadcast, &room),
            RoomRequest::Members => self.members(None, &room),
            RoomRequest::SetMembers(members) => self.members(Some(members), &room),
            RoomRequest::Presence => self.presence_list(&room),
        }
    }

    /// Bounds a user's connection attempts to this room: a reconnect loop is refused with 429.
    fn admit(&self, caller: &Caller, room: &str) -> RelayResult<()> {
        self.with_loaded(Some(room), |l| {
            l.limits
                .connect(&caller.user.id, now_ms())
                .map_err(|retry_after_ms| RelayError {
                    retry_after_ms: Some(retry_after_ms),
                    ..RelayError::new(ErrorCode::RateLimited, "too many connection attempts")
                })
        })
    }

    async fn accept_connection(&self, connect: Connect, room: &str) -> RelayResult<Response> {
        let Connect {
            caller,
            since,
            batched,
            subprotocol,
        } = connect;
        let plan = match since {
            Some(since) => Some(self.with_loaded(Some(room), |l| Ok(l.core.resume_plan(since)))?),
            None => {
                self.with_loaded(Some(room), |_| Ok(()))?;
                None
            }
        };

        let attachment = Attachment {
            conn_id: random_id(now_ms()),
            user: caller.user,
            exp: caller.exp,
        };
        self.ensure_presence()?;
        let welcome = self.with_loaded(None, |l| {
            let reads = l.core.welcome_reads()?.to_vec();
            let presence = l.presence.get_or_insert_with(Presence::default);
            Ok(protocol::welcome_frame(&Welcome {
                room: l.core.room(),
                conn_id: &attachment.conn_id,
                user: &attachment.user,
                seq: l.core.last_seq(),
                presence: &presence.users_with(&attachment.user),
                reads: &reads,
            }))
        })?;
        let accepted = super::fanout::accept(
            &self.state,
            batched,
            &attachment.to_json()?,
            &welcome,
            subprotocol.as_deref(),
        )
        .map_err(|err| internal("accept")(worker::Error::from(err)))?;
        let server = WebSocket::from(accepted.server());
        let joined = self.with_loaded(None, |l| {
            let presence = l.presence.get_or_insert_with(Presence::default);
            Ok(presence.connect(&attachment.conn_id, &attachment.user))
        })?;
        if joined {
            self.broadcast_presence(&protocol::join_frame(&attachment.user), Some(&server));
        }
        match plan {
            Some(ResumePlan::Reset { seq }) => {
                super::fanout::end_replay(&server, &protocol::reset_frame(seq))
            }
            Some(ResumePlan::Replay { since, up_to }) => {
                self.replay(server, Replay::new(since, up_to))
            }
            None => {}
        }
        self.report_stats();
        Ok(accepted.response())
    }

    /// Starts a resume's replay. Its first page, when the room keeps it, goes out in this turn,
    /// before anything live can reach the socket: a replay that fits in it ends right here
    /// with `synced`. A longer one holds the socket's other frames back and continues in pages
    /// paced by the socket's reading (see [`Room::continue_replay`]).
    fn replay(&self, ws: WebSocket, mut replay: Replay) {
        let first_page = replay.next_fetch().map(|range| {
            let (rows, complete) = self.with_loaded(None, |l| l.core.local_page(&range))?;
            if complete {
                replay.add_rows(crate::paging::assemble(&range, rows).messages)?;
            }
            Ok::<_, RelayError>(())
        });
        if let Some(Err(err)) = first_page {
            worker::console_error!("replay could not start: {err}");
            self.close_socket(&ws, ErrorCode::Internal.close_code(), "internal error");
            return;
        }
        if let Some(page) = replay.next_page() {
            super::fanout::send_replay_page(&ws, &page);
        }
        if replay.is_done() {
            super::fanout::end_replay(&ws, &protocol::synced_frame(replay.sent()));
            return;
        }
        let Some(room) = self.me.upgrade() else {
            return;
        };
        super::fanout::hold(&ws, replay::MAX_REPLAY_MS);
        // The task's timers and D1 reads keep the object awake until the replay ends.
        spawn_local(async move {
            if let Err(err) = room.continue_replay(&ws, replay).await {
                worker::console_error!("replay failed: {err}");
                room.close_socket(&ws, ErrorCode::Internal.close_code(), "internal error");
            }
        });
    }

    /// Sends the rest of a replay page by page, each once the socket has taken most of the
    /// one before, then `synced` and the frames held meanwhile. A socket that closes stops it;
    /// one that does not drain, or whose replay outlasts [`replay::MAX_REPLAY_MS`], is closed
    /// with 4010 and resumes from what it got.
    async fn continue_replay(&self, ws: &WebSocket, mut replay: Replay) -> RelayResult<()> {
        let deadline = now_ms() + i64::from(replay::MAX_REPLAY_MS);
        // Each round but the last sends at least one message: the replay's bound bounds them.
        for _ in 0..=MAX_REPLAY_MESSAGES {
            if !super::fanout::drained(ws, replay::LOW_WATER_BYTES, replay::MAX_DRAIN_WAIT_MS).await
            {
                return Ok(());
            }
            if now_ms() > deadline {
                super::fanout::close_slow_consumer(ws);
                return Ok(());
            }
            if replay.is_done() {
                super::fanout::end_replay(ws, &protocol::synced_frame(replay.sent()));
                return Ok(());
            }
            if let Some(range) = replay.next_fetch() {
                replay.add_rows(self.replay_rows(&range).await?)?;
            }
            let Some(page) = replay.next_page() else {
                return Err(RelayError::internal());
            };
            if !super::fanout::send_replay_page(ws, &page) {
                return Ok(());
            }
        }
        Err(RelayError::internal())
    }

    /// The stored messages of `range` from the room's own storage and, for the bodies it no
    /// longer keeps, from the archive, as a history page reads them.
    async fn replay_rows(&self, range: &SeqRange) -> RelayResult<Vec<(u64, String)>> {
        let (name, local, complete) = self.with_loaded(None, |l| {
            let (rows, complete) = l.core.local_page(range)?;
            Ok((l.core.room().to_string(), rows, complete))
        })?;
        if complete {
            return Ok(crate::paging::assemble(range, local).messages);
        }
        let archive = Archive::new(self.env.d1("DB").map_err(internal("d1 binding"))?);
        let archived = archive.page(&name, range).await?;
        Ok(room::merge_page(range, local, archived).messages)
    }

    async fn history(&self, room: &str, query: HistoryQuery) -> RelayResult<Response> {
        let range = query.range();
        let (local, complete) = self.with_loaded(Some(room), |l| l.core.local_page(&range))?;
        let page = if complete {
            crate::paging::assemble(&range, local)
        } else {
            let archive = Archive::new(self.env.d1("DB").map_err(internal("d1 binding"))?);
            let archived = archive.page(room, &range).await?;
            room::merge_page(&range, local, archived)
        };
        http::json(page.to_json(), 200).map_err(internal("history response"))
    }

    fn http_publish(&self, caller: &Caller, body: &str, room: &str) -> RelayResult<Response> {
        if body.len() > self.limits.max_frame_bytes {
            return Err(RelayError::too_large(
                "message is larger than the frame limit",
            ));
        }
        let publish: Publish = serde_json::from_str(body)
            .map_err(|e| RelayError::bad_request(format!("invalid publish body: {e}")))?;
        publish.validate(false)?;
        let published = self.with_loaded(Some(room), |l| {
            match l.limits.publish(&caller.user.id, now_ms()) {
                Verdict::Allow => {}
                Verdict::Refuse { retry_after_ms } => {
                    return Err(RelayError::rate_limited(retry_after_ms))
                }
                Verdict::Close => return Err(RelayError::rate_limited(1_000)),
            }
            l.core
                .publish(Sender::User(&caller.user), &publish, &RuntimeStamps)
        })?;
        self.answer_http_publish(published)
    }

    /// Broadcasts a new message to every socket and answers the HTTP caller with the receipt.
    pub(super) fn answer_http_publish(&self, published: Published) -> RelayResult<Response> {
        if let Published::New { frame, .. } = &published {
            self.broadcast(frame, None);
            self.after_publish();
        }
        let receipt =
            serde_json::to_string(published.receipt()).map_err(|_| RelayError::internal())?;
        http::json(receipt, 200).map_err(internal("publish response"))
    }

    fn on_message(&self, ws: &WebSocket, message: JsValue) -> RelayResult<()> {
        // Frames that were already in flight when the room closed this socket are ignored.
        if ws.as_ref().ready_state() != OPEN {
            return Ok(());
        }
        let Some(text) = message.as_string() else {
            return Err(RelayError::bad_request(
                "binary frames are not supported; send JSON text",
            ));
        };
        if text.len() > self.limits.max_frame_bytes {
            self.close_socket(ws, ErrorCode::TooLarge.close_code(), "frame too large");
            return Ok(());
        }
        let attachment = Attachment::of(ws).ok_or_else(RelayError::internal)?;
        if attachment.exp * 1000 < now_ms() {
            self.close_socket(ws, ErrorCode::Unauthorized.close_code(), "token expired");
            return Ok(());
        }
        let frame = match protocol::parse_client_frame(&text) {
            Ok(frame) => frame,
            Err(err) => {
                self.reject(ws, err.error, err.cid.as_deref());
                return Ok(());
            }
        };
        match frame {
            ClientFrame::Ping => {
                self.send_to(ws, protocol::PONG_FRAME);
            }
            ClientFrame::Publish(publish) => {
                let cid = publish.cid.as_deref().unwrap_or_default();
                let verdict = self.with_loaded(None, |l| {
                    Ok(l.limits.publish(&attachment.user.id, now_ms()))
                })?;
                match verdict {
                    Verdict::Allow => {}
                    Verdict::Refuse { retry_after_ms } => {
                        self.send_to(
                            ws,
                            &RelayError::rate_limited(retry_after_ms).to_frame(Some(cid)),
                        );
                        return Ok(());
                    }
                    Verdict::Close => {
                        self.close_socket(
                            ws,
                            ErrorCode::RateLimited.close_code(),
                            "rate limit abuse",
                        );
                        return Ok(());
                    }
                }
                let published = self.with_loaded(None, |l| {
                    l.core
                        .publish(Sender::User(&attachment.user), &publish, &RuntimeStamps)
                });
                match published {
                    Ok(published) => {
                        self.send_to(ws, &protocol::ack_frame(cid, published.receipt()));
                        if let Published::New { frame, .. } = &published {
                            self.broadcast(frame, Some(ws));
                            self.after_publish();
                        }
                    }
                    Err(err) => self.reject(ws, err, Some(cid)),
                }
            }
            ClientFrame::Typing { active } => {
                // Typing beyond the rate is dropped silently: it is a hint, not data.
                let allowed = self.with_loaded(None, |l| {
                    let allowed = l.limits.typing(&attachment.user.id, now_ms());
                    if allowed {
                        if let Some(presence) = l.presence.as_mut() {
                            presence.set_typing(&attachment.user.id, active);
                        }
                    }
                    Ok(allowed)
                })?;
                if allowed {
                    self.broadcast(&protocol::typing_frame(&attachment.user, active), Some(ws));
                }
            }
            ClientFrame::Read { seq } => {
                let moved = self.with_loaded(None, |l| {
                    l.core.mark_read(&attachment.user, seq, &RuntimeStamps)
                });
                match moved {
                    Ok(Some(marker)) => {
                        self.broadcast(&protocol::read_frame(&marker), Some(ws));
                        self.schedule_archive();
                        self.queue_feed_updates(Some(&attachment.user.id));
                    }
                    Ok(None) => {}
                    Err(err) => self.reject(ws, err, None),
                }
            }
        }
        Ok(())
    }

    /// Sends an error frame; a connection that keeps sending bad frames is closed with 4400.
    fn reject(&self, ws: &WebSocket, err: RelayError, cid: Option<&str>) {
        self.send_to(ws, &err.to_frame(cid));
        if err.code != ErrorCode::BadRequest {
            return;
        }
        let conn_id = Attachment::of(ws).map(|a| a.conn_id).unwrap_or_default();
        let too_many = self
            .with_loaded(None, |l| {
                let violations = l.violations.entry(conn_id).or_default();
                *violations += 1;
                Ok(*violations > MAX_PROTOCOL_VIOLATIONS)
            })
            .unwrap_or(false);
        if too_many {
            self.close_socket(
                ws,
                ErrorCode::BadRequest.close_code(),
                "too many protocol violations",
            );
        }
    }

    /// Rebuilds presence from the sockets' attachments when the object has just woken.
    pub(super) fn ensure_presence(&self) -> RelayResult<()> {
        let needs_rebuild = self.with_loaded(None, |l| Ok(l.presence.is_none()))?;
        if !needs_rebuild {
            return Ok(());
        }
        let mut presence = Presence::default();
        for ws in self.state.get_websockets() {
            // Sockets already closing are not counted; their close handler still runs.
            if ws.as_ref().ready_state() != OPEN {
                continue;
            }
            if let Some(a) = Attachment::of(&ws) {
                presence.connect(&a.conn_id, &a.user);
            }
        }
        self.with_loaded(None, |l| {
            l.presence = Some(presence);
            Ok(())
        })
    }

    /// A socket closed or failed: uncount it; after the user's last one, wait out the leave
    /// grace and announce the leave (and the end of their typing) unless they came back.
    async fn on_gone(&self, ws: &WebSocket) {
        let Some(attachment) = Attachment::of(ws) else {
            return;
        };
        if self.ensure_presence().is_err() {
            return;
        }
        let start_sweep = self
            .with_loaded(None, |l| {
                l.violations.remove(&attachment.conn_id);
                let departing = l
                    .presence
                    .as_mut()
                    .is_some_and(|p| p.disconnect(&attachment.conn_id, &attachment.user, now_ms()));
                // One timer per room serves every pending leave: a mass disconnect must not
                // start a timer per socket.
                let start = departing && !l.leave_sweep;
                l.leave_sweep |= start;
                Ok(start)
            })
            .unwrap_or(false);
        self.report_stats();
        if start_sweep {
            self.announce_departures().await;
        }
    }

    /// Announces each pending leave when its grace has passed, until none is pending.
    async fn announce_departures(&self) {
        // Each round announces at least the earliest leave, or finds it cancelled.
        for _ in 0..MAX_LEAVE_ROUNDS {
            let next = self
                .with_loaded(None, |l| {
                    Ok(l.presence.as_ref().and_then(|p| p.next_departure_at()))
                })
                .ok()
                .flatten();
            let Some(due_at) = next else {
                break;
            };
            let wait_ms = (due_at - now_ms()).clamp(0, LEAVE_GRACE_MS) + LEAVE_SLACK_MS;
            sleep(wait_ms as u32).await;
            let departures = self
                .with_loaded(None, |l| {
                    Ok(l.presence
                        .as_mut()
                        .map(|p| p.due_departures(now_ms()))
                        .unwrap_or_default())
                })
                .unwrap_or_default();
            for departure in departures {
                if departure.was_typing {
                    self.broadcast(&protocol::typing_frame(&departure.user, false), None);
                }
                let last_seen = room::rfc3339_ms(departure.last_seen_ms);
                self.broadcast_presence(&protocol::leave_frame(&departure.user, &last_seen), None);
            }
        }
        let _ = self.with_loaded(None, |l| {
            l.leave_sweep = false;
            Ok(())
        });
    }

    /// Sends a frame to one socket, after the frames already queued for it (batched sockets).
    fn send_to(&self, ws: &WebSocket, frame: &str) {
        super::fanout::send_to_socket(&self.state, ws, frame);
    }

    /// Closes a socket from the room's side; the frames queued for it leave first.
    fn close_socket(&self, ws: &WebSocket, code: u16, reason: &str) {
        super::fanout::flush(&self.state);
        let _ = ws.close(Some(code), Some(reason));
    }

    /// Sends one pre-serialised frame to every socket of the room but `except`.
    pub(super) fn broadcast(&self, frame: &str, except: Option<&WebSocket>) {
        super::fanout::send_to_room(&self.state, frame, except, Pace::Now);
    }

    /// Like [`Room::broadcast`], for joins and leaves: sockets may get them a little later,
    /// together with others.
    fn broadcast_presence(&self, frame: &str, except: Option<&WebSocket>) {
        super::fanout::send_to_room(&self.state, frame, except, Pace::Presence);
    }

    fn schedule_archive(&self) {
        let due = self.with_loaded(None, |l| {
            let delay_ms = self.limits.archive_delay_ms as i64 + l.archive_jitter_ms;
            Ok(archive_schedule::due_after_write(
                now_ms(),
                delay_ms,
                l.archive_retry_at,
            ))
        });
        if let Ok(due) = due {
            self.schedule_alarm(due);
        }
    }

    /// Makes the alarm fire no later than `at` (the one alarm serves archive, feeds and stats).
    /// The storage write is not awaited: like every write of the object, it is committed
    /// before any of the object's later output leaves (the runtime's output gate).
    pub(super) fn schedule_alarm(&self, at: i64) {
        let known = self.with_loaded(None, |l| Ok(l.alarm_at)).ok().flatten();
        if known.is_some_and(|set_for| set_for <= at) {
            return;
        }
        set_alarm_at(self.state.as_raw(), at as f64);
        let _ = self.with_loaded(None, |l| {
            l.alarm_at = Some(at);
            Ok(())
        });
    }

    /// Everything that follows a new message: the archive write and members' feed updates.
    pub(super) fn after_publish(&self) {
        self.schedule_archive();
        self.queue_feed_updates(None);
    }

    /// Writes unarchived messages to D1 in batches; on failure, retries with backoff.
    async fn archive_pending(&self) -> RelayResult<()> {
        let retry_at = self.with_loaded(None, |l| Ok(l.archive_retry_at))?;
        if !archive_schedule::may_write(now_ms(), retry_at) {
            // The alarm fired for something else (a feed update, a stats report).
            if let Some(at) = retry_at {
                self.schedule_alarm(at);
            }
            return Ok(());
        }
        let (room, mut archived_seq) = self.with_loaded(None, |l| {
            let archived = l
                .core
                .store()
                .meta(META_ARCHIVED)?
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            Ok((l.core.room().to_string(), archived))
        })?;
        let archive = Archive::new(self.env.d1("DB").map_err(internal("d1 binding"))?);
        for _ in 0..ARCHIVE_BATCHES_PER_RUN {
            let batch = self.with_loaded(None, |l| {
                l.core.store().unarchived(archived_seq, ARCHIVE_BATCH)
            })?;
            let Some(last) = batch.last().map(|m| m.seq) else {
                break;
            };
            if let Err(err) = archive.write(&room, &batch).await {
                self.retry_archive_later()?;
                return Err(err);
            }
            archived_seq = last;
            self.with_loaded(None, |l| {
                let store = l.core.store();
                store.set_meta(META_ARCHIVED, &archived_seq.to_string())?;
                if l.archive_retry_at.take().is_some() {
                    store.set_meta(META_ARCHIVE_RETRY_AT, "0")?;
                }
                store.set_meta(META_ARCHIVE_FAILURES, "0")
            })?;
        }
        let reads = self.with_loaded(None, |l| l.core.store().unarchived_reads(ARCHIVE_BATCH))?;
        if !reads.is_empty() {
            if let Err(err) = archive.write_reads(&room, &reads).await {
                self.retry_archive_later()?;
                return Err(err);
            }
            self.with_loaded(None, |l| l.core.store().mark_reads_archived(&reads))?;
        }
        let (more, last_seq) = self.with_loaded(None, |l| {
            let store = l.core.store();
            store.prune_bodies(archived_seq, self.limits.hot_window)?;
            Ok((l.core.last_seq() > archived_seq, l.core.last_seq()))
        })?;
        if more || reads.len() == ARCHIVE_BATCH as usize {
            worker::console_log!("archive of {room} continues: {archived_seq} of {last_seq}");
            self.schedule_alarm(now_ms());
        }
        Ok(())
    }

    fn retry_archive_later(&self) -> RelayResult<()> {
        let retry_at = self.with_loaded(None, |l| {
            let store = l.core.store();
            let failures = store
                .meta(META_ARCHIVE_FAILURES)?
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
                .saturating_add(1);
            store.set_meta(META_ARCHIVE_FAILURES, &failures.to_string())?;
            let retry_at = now_ms() + archive_schedule::backoff_ms(failures) as i64;
            store.set_meta(META_ARCHIVE_RETRY_AT, &retry_at.to_string())?;
            l.archive_retry_at = Some(retry_at);
            Ok(retry_at)
        })?;
        self.schedule_alarm(retry_at);
        Ok(())
    }
}
