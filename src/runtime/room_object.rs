//! The `Room` Durable Object: turns the runtime's callbacks (a request, a frame, a close, the
//! alarm) into calls of the room's [`RoomMachine`] and carries out the effects it returns.
//!
//! Everything a connection needs after the object wakes lives in the socket's attachment (its
//! [`Connection`]) or in SQLite; the machine's in-memory state is rebuilt on demand.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use wasm_bindgen::prelude::*;
use web_sys::{Request, Response};
use worker::wasm_bindgen_futures::{spawn_local, JsFuture};
use worker::worker_sys::ext::WebSocketExt;
use worker::worker_sys::DurableObjectState;
use worker::{Env, State, WebSocket};

use super::archive::Archive;
use super::http::{self, header};
use super::replay_pump;
use super::settings::{settings, verify_token};
use super::settle::{settle, sleep};
use super::sql::SqlRoomStore;
use super::{internal, now_ms};
use crate::config::Limits;
use crate::disconnect::{self, Disconnect};
use crate::edits::Change;
use crate::error::{RelayError, RelayResult};
use crate::group_commit::{Arrival, GroupCommit, MAX_COMMIT_WAIT_MS};
use crate::paging::{self, HistoryQuery, Page, SeqRange};
use crate::protocol::{self, Publish, Receipt};
use crate::random_ids::{random_below, random_id};
use crate::replay::Replay;
use crate::room::{self, ResumePlan, RoomCore, Stamps};
use crate::room_api::{self, Caller, Connect, RoomRequest, ROOM_HEADER, SUBPROTOCOL_HEADER};
use crate::room_archive;
use crate::room_machine::{Connection, Effect, RoomMachine, UserPublish};
use crate::room_name;
use crate::shard_fanout::ShardBook;

// The alarm's JavaScript side is `worker/alarm.mjs`, with its tests in `worker/test/`.
#[wasm_bindgen(module = "/worker/alarm.mjs")]
extern "C" {
    /// Makes the room's alarm fire no later than `at` (ms since the epoch), without waiting.
    #[wasm_bindgen(js_name = setAlarmNoLaterThan)]
    fn set_alarm_no_later_than(state: &JsValue, at: f64);
}

// The group commit's wait is `worker/commit.mjs`, with its tests in `worker/test/`.
#[wasm_bindgen(module = "/worker/commit.mjs")]
extern "C" {
    /// Resolves to "durable" when the writes so far are, "failed" or "overdue" (after
    /// `max_wait_ms`) otherwise; never rejects.
    #[wasm_bindgen(js_name = whenDurable)]
    fn when_durable(storage: &JsValue, max_wait_ms: u32) -> js_sys::Promise;
}

/// `WebSocket.readyState` of an open socket.
const OPEN: u16 = 1;

/// Bound of one leave sweep: rounds of waiting for the next due leave.
const MAX_LEAVE_ROUNDS: u32 = 100_000;

pub(super) type Machine = RoomMachine<SqlRoomStore, RuntimeStamps>;

/// A socket's connection, from its attachment: one JSON string, a single crossing into
/// JavaScript where a JS object would take one per field (the room reads it on every frame).
/// `None` for a socket the room never accepted.
pub(super) fn connection_of(ws: &WebSocket) -> Option<Connection> {
    let raw: &web_sys::WebSocket = ws.as_ref();
    let text = raw.deserialize_attachment().ok()?.as_string()?;
    serde_json::from_str(&text).ok()
}

/// Stores a socket's connection as its attachment (see [`connection_of`]).
pub(super) fn attach(ws: &WebSocket, conn: &Connection) {
    if let Ok(json) = serde_json::to_string(conn) {
        let raw: &web_sys::WebSocket = ws.as_ref();
        let _ = raw.serialize_attachment(JsValue::from_str(&json));
    }
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

/// One room's object: its storage, its sockets (held by the runtime) and its machine.
pub struct Room {
    /// The room itself, for work that outlives the event that started it (a paced replay).
    pub(super) me: Weak<Room>,
    pub(super) state: State,
    pub(super) env: Env,
    pub(super) limits: Limits,
    /// The room's state and policy, opened on first use; borrowed once per event.
    machine: RefCell<Option<Machine>>,
    /// The effects of the event being applied, kept between events for their capacity.
    effects: Cell<Vec<Effect>>,
    /// Where viewers past `SHARD_VIEWERS` go (see [`crate::shard_fanout`]); rebuilt from the
    /// links' attachments on first use after a wake.
    pub(super) shards: RefCell<Option<ShardBook>>,
    /// Frames that wait for the commit in flight, to share the next one (`group_commit`).
    group: RefCell<GroupCommit<QueuedFrame, web_sys::WebSocket>>,
}

/// A frame as it arrived: its socket and its text (`None` for a binary frame).
type QueuedFrame = (WebSocket, Option<String>);

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
            machine: RefCell::new(None),
            effects: Cell::new(Vec::new()),
            shards: RefCell::new(None),
            group: RefCell::new(GroupCommit::default()),
        });
        RoomEntry { room }
    }

    pub fn fetch(&self, req: Request) -> JsValue {
        let room = Rc::clone(&self.room);
        room.handle_queued_frames();
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
        // Frames that were already in flight when the room closed this socket are ignored (and
        // checked again when handled: a queued frame waits).
        if ws.as_ref().ready_state() != OPEN {
            return;
        }
        let text = message.as_string();
        let bytes = text.as_ref().map_or(0, String::len);
        // Its source: the runtime hands the room the same object for a socket every time.
        let source: web_sys::WebSocket = ws.as_ref().clone();
        let arrival = self
            .room
            .group
            .borrow_mut()
            .arrive((ws, text), source, bytes, now_ms());
        if let Arrival::Handle { frames, watch } = arrival {
            self.room.handle_frames(frames);
            if watch {
                self.room.watch_commit();
            }
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
        room.handle_queued_frames();
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
        room.handle_queued_frames();
        settle(async move {
            room.on_gone(&WebSocket::from(ws)).await;
            Ok(JsValue::UNDEFINED)
        })
    }

    pub fn alarm(&self) -> JsValue {
        let room = Rc::clone(&self.room);
        room.handle_queued_frames();
        settle(async move {
            let _ = room.run(None, None, |m, out| {
                m.on_alarm(out);
                Ok(())
            });
            room.expire_tokens();
            if let Err(err) = room.archive_pending().await {
                worker::console_error!("archive run failed: {err}");
            }
            if let Err(err) = room.send_outbox().await {
                worker::console_error!("outbox run failed: {err}");
            }
            // Before the events run, so that the notices leave with it.
            let unread = room
                .restore_presence(None)
                .and_then(|()| room.run(None, None, |m, out| m.notify_unread(out)));
            if let Err(err) = unread {
                worker::console_error!("unread run failed: {err}");
            }
            if let Err(err) = room.send_events().await {
                worker::console_error!("events run failed: {err}");
            }
            Ok(JsValue::UNDEFINED)
        })
    }
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
    /// The room's machine, opened on first use; `room` names it on its first request.
    pub(super) fn machine<T>(
        &self,
        room: Option<&str>,
        f: impl FnOnce(&mut Machine) -> RelayResult<T>,
    ) -> RelayResult<T> {
        let mut slot = self.machine.borrow_mut();
        let machine = match slot.as_mut() {
            Some(machine) => machine,
            None => slot.insert(self.open_machine(room)?),
        };
        f(machine)
    }

    fn open_machine(&self, room: Option<&str>) -> RelayResult<Machine> {
        let store = SqlRoomStore::open(self.state.storage().sql())?;
        let name = store.room_name(room)?;
        let archive_retry_at = room_archive::retry_at(&store)?;
        let archive_jitter_ms = random_below(self.limits.archive_delay_ms / 2 + 1, now_ms()) as i64;
        let settings = settings(&self.env);
        let members_only = settings.members_only.match_room(&name);
        let events = settings
            .events
            .as_ref()
            .is_some_and(|e| e.applies_to(&name));
        let publish_hook = settings
            .publish_hook
            .as_ref()
            .filter(|hook| hook.applies_to(&name))
            .map(|hook| hook.policy(self.limits.max_frame_bytes));
        let presence_full_max = settings.presence_limits.for_room(&name);
        let machine = RoomMachine::new(
            RoomCore::open(store, name)?,
            RuntimeStamps,
            self.limits.clone(),
            archive_jitter_ms,
            archive_retry_at,
        );
        Ok(machine
            .members_only(members_only)
            .events(events)
            .publish_hook(publish_hook)
            .presence_full_max(presence_full_max))
    }

    /// Handles frames in the order they arrived, in this turn: their writes share one
    /// transaction, and their acks leave when it is durable.
    fn handle_frames(&self, frames: Vec<QueuedFrame>) {
        for (ws, text) in frames {
            // Frames that were already in flight when the room closed this socket are ignored.
            if ws.as_ref().ready_state() != OPEN {
                continue;
            }
            let handled = match connection_of(&ws) {
                Some(conn) => self.run(None, Some(&ws), |m, out| {
                    m.on_frame(&conn, text.as_deref(), out);
                    Ok(())
                }),
                // A shard's link: its viewers' frames share the commits too.
                None => {
                    self.on_link_message(&ws, text);
                    continue;
                }
            };
            if let Err(err) = handled {
                super::fanout::send_to_socket(&self.state, &ws, &err.to_frame(None));
            }
        }
    }

    /// Waits for the writes so far to be durable, then handles the frames that arrived
    /// meanwhile, together, and waits for their commit in turn, until none came.
    fn watch_commit(&self) {
        let Some(room) = self.me.upgrade() else {
            return;
        };
        spawn_local(async move {
            // Handled whatever the outcome: after a failed commit the runtime resets the object
            // (and their writes fail), and an overdue one only loses the grouping.
            let storage = room.state.storage();
            let waited = JsFuture::from(when_durable(storage.as_raw(), MAX_COMMIT_WAIT_MS)).await;
            if waited.ok().and_then(|v| v.as_string()).as_deref() == Some("overdue") {
                worker::console_error!(
                    "a commit took over {MAX_COMMIT_WAIT_MS} ms; handling the frames queued behind it"
                );
            }
            let frames = room.group.borrow_mut().committed(now_ms());
            if !frames.is_empty() {
                room.handle_frames(frames);
                room.watch_commit();
            }
        });
    }

    /// Handles the frames still queued before another event of the room, which came after them.
    fn handle_queued_frames(&self) {
        let frames = self.group.borrow_mut().take_before_event(now_ms());
        self.handle_frames(frames);
    }

    /// Runs one event through the machine (borrowed once), then applies its effects, for the
    /// socket the event came from when there is one. Returns after how many ms pending leaves
    /// are due, when the event asks for that wake-up.
    pub(super) fn run<T>(
        &self,
        room: Option<&str>,
        origin: Option<&WebSocket>,
        event: impl FnOnce(&mut Machine, &mut Vec<Effect>) -> RelayResult<T>,
    ) -> RelayResult<T> {
        self.run_waking(room, origin, event).0
    }

    fn run_waking<T>(
        &self,
        room: Option<&str>,
        origin: Option<&WebSocket>,
        event: impl FnOnce(&mut Machine, &mut Vec<Effect>) -> RelayResult<T>,
    ) -> (RelayResult<T>, Option<i64>) {
        let mut effects = self.effects.take();
        let result = self.machine(room, |m| event(m, &mut effects));
        let wake = self.apply(origin, &mut effects);
        self.effects.set(effects);
        (result, wake)
    }

    /// Carries out effects in order; never touches the machine.
    fn apply(&self, origin: Option<&WebSocket>, effects: &mut Vec<Effect>) -> Option<i64> {
        let mut wake_for_leaves = None;
        for effect in effects.drain(..) {
            match effect {
                Effect::Broadcast {
                    frame,
                    skip_origin,
                    pace,
                } => {
                    let except = origin.filter(|_| skip_origin);
                    super::fanout::send_to_room(&self.state, &frame, except, pace);
                    self.forward_to_shards(&frame, None);
                }
                Effect::CloseConnections { conn_ids, close } => {
                    self.close_where(|c| conn_ids.contains(&c.conn_id), close.code, close.reason)
                }
                Effect::CloseUsers {
                    user_ids,
                    code,
                    reason,
                } => {
                    self.close_users_on_shards(&user_ids, code, &reason);
                    self.close_where(|c| user_ids.contains(&c.user.id), code, &reason)
                }
                Effect::SetAlarm(at) => set_alarm_no_later_than(self.state.as_raw(), at as f64),
                Effect::WakeForLeaves { after_ms } => wake_for_leaves = Some(after_ms),
                Effect::Report(report) => super::reports::queue_report(&self.env, report),
                Effect::MarkCounts => {
                    for ws in self.state.get_websockets() {
                        if let Some(conn) = connection_of(&ws).filter(|c| !c.counts) {
                            attach(
                                &ws,
                                &Connection {
                                    counts: true,
                                    ..conn
                                },
                            );
                        }
                    }
                }
                Effect::LogError(line) => worker::console_error!("{line}"),
                for_origin => {
                    if let Some(ws) = origin {
                        self.apply_to_origin(ws, for_origin);
                    }
                }
            }
        }
        wake_for_leaves
    }

    /// The effects meant for the socket the event came from (an event without one, e.g. the
    /// alarm, has none of these).
    fn apply_to_origin(&self, ws: &WebSocket, effect: Effect) {
        match effect {
            Effect::Reply(frame) => super::fanout::send_to_socket(&self.state, ws, &frame),
            Effect::Close(close) => self.close_socket(ws, close),
            Effect::CallHook(call) => self.call_hook_for_socket(ws.clone(), call),
            Effect::VerifyToken(token) => self.verify_renewal(ws.clone(), token),
            Effect::Reattach(conn) => attach(ws, &conn),
            // Room-wide effects: applied by `apply`, never handed here.
            _ => {}
        }
    }

    /// Closes the sockets whose connection `matches`, after the frames queued for them.
    fn close_where(&self, matches: impl Fn(&Connection) -> bool, code: u16, reason: &str) {
        super::fanout::flush(&self.state);
        for ws in self.state.get_websockets() {
            if connection_of(&ws).is_some_and(|c| matches(&c)) {
                let _ = ws.close(Some(code), Some(reason));
            }
        }
    }

    /// Verifies a connection's renewal token (which may wait for the identity provider's
    /// keys), then hands the outcome to the machine as an event of its own.
    fn verify_renewal(&self, ws: WebSocket, token: String) {
        let Some(room) = self.me.upgrade() else {
            return;
        };
        spawn_local(async move {
            let verified = verify_token(&room.env, &token).await;
            // A socket that closed meanwhile, or was never accepted, renews nothing.
            let Some(conn) = connection_of(&ws).filter(|_| ws.as_ref().ready_state() == OPEN)
            else {
                return;
            };
            let _ = room.run(None, Some(&ws), |m, out| {
                m.on_renewal(&conn, verified, out);
                Ok(())
            });
        });
    }

    /// The connections of the sockets still open (closing ones still get their close event).
    fn open_connections(&self) -> Vec<Connection> {
        self.state
            .get_websockets()
            .iter()
            .filter(|ws| ws.as_ref().ready_state() == OPEN)
            .filter_map(connection_of)
            .collect()
    }

    /// Rebuilds presence from the sockets' attachments when the object has just woken.
    pub(super) fn restore_presence(&self, room: Option<&str>) -> RelayResult<()> {
        if self.machine(room, |m| Ok(m.needs_connections()))? {
            let open = self.open_connections();
            self.machine(None, |m| {
                m.restore(&open);
                Ok(())
            })?;
        }
        Ok(())
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
                self.connect(connect, &room)
                    .await
                    .or_else(|err| refuse_connect(subprotocol, err))
            }
            RoomRequest::History { caller, query } => {
                self.machine(Some(&room), |m| m.check_member(&caller.user))?;
                self.history(&room, query).await
            }
            RoomRequest::Publish { caller, body } => self.http_publish(&caller, &body, &room).await,
            RoomRequest::Change {
                caller,
                seq,
                delete,
                body,
            } => {
                let change =
                    Change::from_http_body(&body, seq, delete, self.limits.max_frame_bytes)?;
                let changed = self.run(Some(&room), None, |m, out| {
                    m.change_as_user(&caller.user, &change, out)
                })?;
                let receipt = match changed {
                    UserPublish::Done(receipt) => receipt,
                    UserPublish::AwaitHook(call) => self.hooked_http_publish(call).await?,
                };
                receipt_response(&receipt)
            }
            RoomRequest::Presence { caller, page } => {
                if let Some(caller) = caller {
                    self.machine(Some(&room), |m| m.check_member(&caller.user))?;
                }
                self.presence_list(&room, &page)
            }
            RoomRequest::ShardLink { shard } => self.accept_link(&room, shard),
            RoomRequest::ShardRange { after, up_to } => self.shard_range(&room, after, up_to).await,
            backend => self.backend_request(backend, &room),
        }
    }

    /// A connect admitted, then placed on a shard when the room is full of viewers, or taken
    /// here.
    async fn connect(&self, connect: Connect, room: &str) -> RelayResult<Response> {
        self.admit(&connect.caller, room)?;
        if let Some(placed) = self.place_connection(&connect, room)? {
            return Ok(placed);
        }
        self.accept_connection(connect, room).await
    }

    /// Bounds a user's connection attempts to this room: a reconnect loop is refused with 429.
    fn admit(&self, caller: &Caller, room: &str) -> RelayResult<()> {
        self.machine(Some(room), |m| m.admit(&caller.user))
    }

    async fn accept_connection(&self, connect: Connect, room: &str) -> RelayResult<Response> {
        let Connect {
            caller,
            since,
            batched,
            subprotocol,
        } = connect;
        let conn = Connection {
            conn_id: random_id(now_ms()),
            user: caller.user,
            exp: caller.exp,
            counts: false,
        };
        self.restore_presence(Some(room))?;
        let (plan, welcome) = self.machine(None, |m| {
            let plan = since.map(|since| m.resume_plan(since));
            Ok((plan, m.welcome(&conn)?))
        })?;
        let welcome = self.with_reconnect_window(welcome)?;
        let attachment = serde_json::to_string(&conn).map_err(|_| RelayError::internal())?;
        let accepted = super::fanout::accept(
            &self.state,
            batched,
            &attachment,
            &welcome,
            subprotocol.as_deref(),
        )
        .map_err(|err| internal("accept")(worker::Error::from(err)))?;
        let server = WebSocket::from(accepted.server());
        self.run(None, Some(&server), |m, out| {
            m.on_connected(&conn, out);
            Ok(())
        })?;
        match plan {
            Some(ResumePlan::Reset { seq }) => {
                super::fanout::end_replay(&server, &protocol::reset_frame(seq))
            }
            Some(ResumePlan::Replay { since, up_to }) => {
                self.replay(server, Replay::new(since, up_to))
            }
            None => {}
        }
        Ok(accepted.response())
    }

    /// Starts a resume's replay. Its first page, when the room keeps it, goes out in this turn,
    /// before anything live can reach the socket: a replay that fits in it ends right here
    /// with `synced`. A longer one holds the socket's other frames back and continues in pages
    /// paced by the socket's reading (see [`replay_pump`]).
    fn replay(&self, ws: WebSocket, mut replay: Replay) {
        let first_page = replay.next_fetch().map(|range| {
            let (rows, complete) = self.machine(None, |m| m.core().local_page(&range))?;
            if complete {
                replay.add_rows(paging::assemble(&range, rows).messages)?;
            }
            Ok::<_, RelayError>(())
        });
        if let Some(Err(err)) = first_page {
            worker::console_error!("replay could not start: {err}");
            self.close_socket(&ws, disconnect::INTERNAL);
            return;
        }
        let Some(room) = self.me.upgrade() else {
            return;
        };
        let Some(replay) = replay_pump::send_first_page(&ws, replay) else {
            return;
        };
        // The task's timers and D1 reads keep the object awake until the replay ends.
        spawn_local(async move {
            let fetch = |range: SeqRange| {
                let room = Rc::clone(&room);
                async move { Ok(room.page(None, &range).await?.messages) }
            };
            if let Err(err) = replay_pump::pump(&ws, replay, fetch).await {
                worker::console_error!("replay failed: {err}");
                room.close_socket(&ws, disconnect::INTERNAL);
            }
        });
    }

    /// The stored messages of `range` from the room's own storage and, for the bodies it no
    /// longer keeps, from the archive: a history page, or a resume's next rows.
    pub(super) async fn page(&self, room: Option<&str>, range: &SeqRange) -> RelayResult<Page> {
        let (name, local, complete) = self.machine(room, |m| {
            let (rows, complete) = m.core().local_page(range)?;
            Ok((m.core().room().to_string(), rows, complete))
        })?;
        if complete {
            return Ok(paging::assemble(range, local));
        }
        let archive = Archive::new(self.env.d1("DB").map_err(internal("d1 binding"))?);
        let archived = archive.page(&name, range).await?;
        // The archive writes behind: changes it does not have yet come from the room.
        let archived = self.machine(None, |m| m.core().store().current_versions(archived))?;
        Ok(room::merge_page(range, local, archived))
    }

    async fn history(&self, room: &str, query: HistoryQuery) -> RelayResult<Response> {
        let page = self.page(Some(room), &query.range()).await?;
        http::json(page.to_json(), 200).map_err(internal("history response"))
    }

    async fn http_publish(&self, caller: &Caller, body: &str, room: &str) -> RelayResult<Response> {
        let publish = Publish::from_http_body(body, self.limits.max_frame_bytes)?;
        let published = self.run(Some(room), None, |m, out| {
            m.publish_as_user(&caller.user, &publish, out)
        })?;
        let receipt = match published {
            UserPublish::Done(receipt) => receipt,
            UserPublish::AwaitHook(call) => self.hooked_http_publish(call).await?,
        };
        receipt_response(&receipt)
    }

    /// A socket closed or failed: the machine uncounts it; after the user's last one, the
    /// close waits out the leave grace and has the leave announced unless they came back.
    async fn on_gone(&self, ws: &WebSocket) {
        let Some(conn) = connection_of(ws) else {
            self.on_link_gone(ws);
            return;
        };
        if self.restore_presence(None).is_err() {
            return;
        }
        let (_, mut wake) = self.run_waking(None, Some(ws), |m, out| {
            m.on_gone(&conn, out);
            Ok(())
        });
        // Each round announces at least the earliest leave, or finds it cancelled.
        for _ in 0..MAX_LEAVE_ROUNDS {
            let Some(after_ms) = wake else {
                break;
            };
            sleep(after_ms as u32).await;
            wake = self
                .run_waking(None, None, |m, out| {
                    m.on_leaves_due(out);
                    Ok(())
                })
                .1;
        }
    }

    /// Closes a socket from the room's side; the frames queued for it leave first.
    fn close_socket(&self, ws: &WebSocket, close: Disconnect) {
        super::fanout::flush(&self.state);
        let _ = ws.close(Some(close.code), Some(close.reason));
    }

    /// From the alarm: closes the connections whose token expired, even idle ones.
    fn expire_tokens(&self) {
        if !self.machine(None, |m| Ok(m.expiry_due())).unwrap_or(false) {
            return;
        }
        let open = self.open_connections();
        let _ = self.run(None, None, |m, out| {
            m.expire(&open, out);
            Ok(())
        });
    }

    /// One archive run (see [`crate::room_archive`]): its rows to D1 in one call, then how
    /// that ended back to the machine.
    async fn archive_pending(&self) -> RelayResult<()> {
        let Some(run) = self.run(None, None, |m, out| m.next_archive_run(out))? else {
            return Ok(());
        };
        let archive = Archive::new(self.env.d1("DB").map_err(internal("d1 binding"))?);
        let written = archive.write(&run.room, &run.rows).await;
        self.run(None, None, |m, out| {
            m.archive_run_ended(&run, written.is_ok(), out)
        })?;
        written
    }
}

/// The answer to an HTTP publish: its receipt.
pub(super) fn receipt_response(receipt: &Receipt) -> RelayResult<Response> {
    let receipt = serde_json::to_string(receipt).map_err(|_| RelayError::internal())?;
    http::json(receipt, 200).map_err(internal("publish response"))
}
