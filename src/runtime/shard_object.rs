//! The `RoomShard` Durable Object (`<room>#<n>`): holds viewers the room placed on it past
//! `SHARD_VIEWERS` and fans the room's frames out to them. It opens one WebSocket link to the
//! room, delivers what comes down it in the room's seq order (pulling a range it missed from
//! the room), serves resumes from its window or the room's history, relays its viewers' frames
//! to the room (which sequences, commits and acks them) and reports its counts. The policy is
//! [`crate::shard_fanout`]; this is its shell.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::{Rc, Weak};

use js_sys::Promise;
use serde::Deserialize;
use serde_json::value::RawValue;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Request, Response};
use worker::wasm_bindgen_futures::{spawn_local, JsFuture};
use worker::worker_sys::DurableObjectState;
use worker::{Env, State, WebSocket};

use super::http::{self, header};
use super::replay_pump;
use super::room_object::{attach, connection_of};
use super::settle::{settle, sleep};
use super::{internal, percent_encode, send_to_room};
use crate::config::Limits;
use crate::disconnect;
use crate::error::{RelayError, RelayResult};
use crate::paging::SeqRange;
use crate::protocol;
use crate::replay::{self, Replay};
use crate::room::ResumePlan;
use crate::room_api::{
    Connect, RoomRequest, PLACEMENT_HEADER, ROOM_HEADER, SHARD_HEADER, SUBPROTOCOL_HEADER,
};
use crate::room_machine::{Connection, Pace};
use crate::room_name;
use crate::shard_fanout::{self, FromShard, Next, Placement, ToShard};

#[wasm_bindgen(module = "/worker/shard_link.mjs")]
extern "C" {
    #[wasm_bindgen(js_name = openLink, catch)]
    #[allow(clippy::too_many_arguments)]
    fn open_link(
        env: &Env,
        name: &str,
        url: &str,
        names: Vec<String>,
        values: Vec<String>,
        generation: u32,
        on_message: &JsValue,
        on_close: &JsValue,
    ) -> Result<Promise, JsValue>;
}

/// `WebSocket.readyState` of an open socket.
const OPEN: u16 = 1;
/// How long a viewer's connect waits for the link's hello (polled).
const LINK_WAIT_MS: u32 = 5_000;
const LINK_POLL_MS: u32 = 20;
/// Link attempts in a row before the shard gives up and closes its viewers (they reconnect
/// through the Worker and are placed again); the wait doubles from 100 ms up to 5 s.
const MAX_LINK_FAILURES: u32 = 8;
/// Viewers' frames held while the link opens; past it they are refused.
const MAX_WAITING_FRAMES: usize = 1_024;
/// Counts go to the room this long after a change (one report for a burst of connects).
const REPORT_DELAY_MS: u32 = 100;
/// Attempts at one pull before its range is given up (its messages stay in history).
const MAX_PULL_ATTEMPTS: u32 = 5;
/// Rounds of the expiry watch (each waits for an expiry or a minute).
const MAX_EXPIRY_ROUNDS: u32 = 1_000_000;
/// Link entries handled in one go.
const MAX_PUMP_STEPS: usize = shard_fanout::MAX_PENDING_ENTRIES + 1;

#[wasm_bindgen(js_name = RoomShard)]
pub struct ShardEntry {
    shard: Rc<Shard>,
}

struct Viewer {
    ws: WebSocket,
    user_id: String,
    /// Until when its token is accepted (unix seconds).
    exp: i64,
}

enum Link {
    Down,
    Opening,
    Up(web_sys::WebSocket),
}

struct Inner {
    /// The room and this shard's number, from the first connect.
    room: Option<String>,
    index: usize,
    sequence: shard_fanout::ShardSequence,
    link: Link,
    /// Counts link attempts: events of an older link are ignored.
    generation: u32,
    failures: u32,
    viewers: HashMap<String, Viewer>,
    waiting: VecDeque<String>,
    report_due: bool,
    /// Whether the task that closes viewers whose token expired is running.
    watching_expiry: bool,
}

pub struct Shard {
    me: Weak<Shard>,
    state: State,
    env: Env,
    inner: RefCell<Inner>,
    on_message: Closure<dyn FnMut(u32, String)>,
    on_close: Closure<dyn FnMut(u32)>,
}

#[wasm_bindgen(js_class = RoomShard)]
impl ShardEntry {
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> ShardEntry {
        let state = State::from(state);
        if let Ok(pair) =
            worker::WebSocketRequestResponsePair::new(protocol::PING_FRAME, protocol::PONG_FRAME)
        {
            state.set_websocket_auto_response(&pair);
        }
        let limits = Limits::from_vars(|name| env.var(name).ok().map(|v| v.to_string()));
        super::fanout::configure(limits.max_socket_buffer_bytes);
        let shard = Rc::new_cyclic(|me: &Weak<Shard>| {
            let for_message = me.clone();
            let for_close = me.clone();
            Shard {
                me: me.clone(),
                state,
                env,
                inner: RefCell::new(Inner {
                    room: None,
                    index: 0,
                    sequence: shard_fanout::ShardSequence::default(),
                    link: Link::Down,
                    generation: 0,
                    failures: 0,
                    viewers: HashMap::new(),
                    waiting: VecDeque::new(),
                    report_due: false,
                    watching_expiry: false,
                }),
                on_message: Closure::new(move |generation, text: String| {
                    if let Some(shard) = for_message.upgrade() {
                        shard.on_link_message(generation, &text);
                    }
                }),
                on_close: Closure::new(move |generation| {
                    if let Some(shard) = for_close.upgrade() {
                        shard.on_link_closed(generation);
                    }
                }),
            }
        });
        ShardEntry { shard }
    }

    pub fn fetch(&self, req: Request) -> JsValue {
        let shard = Rc::clone(&self.shard);
        settle(async move {
            let subprotocol = header(&req, SUBPROTOCOL_HEADER);
            let response = match shard.connect(&req).await {
                Ok(response) => response,
                Err(err) => match subprotocol {
                    Some(protocol) => http::refuse_on_socket(&err, &protocol)?,
                    None => http::error(&err)?,
                },
            };
            Ok(response.into())
        })
    }

    #[wasm_bindgen(js_name = webSocketMessage)]
    pub fn websocket_message(&self, ws: web_sys::WebSocket, message: JsValue) {
        let ws = WebSocket::from(ws);
        if ws.as_ref().ready_state() != OPEN {
            return;
        }
        let Some(conn) = connection_of(&ws) else {
            return;
        };
        // A shard object made anew under open sockets (its link and its sequence are gone
        // with the old one) cannot serve them: they reconnect through the room and resume.
        if self.shard.inner.borrow().room.is_none() {
            let _ = ws.close(
                Some(disconnect::INTERNAL.code),
                Some(disconnect::INTERNAL.reason),
            );
            return;
        }
        let up = FromShard::Frame {
            conn,
            text: message.as_string(),
        };
        if let Ok(text) = serde_json::to_string(&up) {
            if !self.shard.send_up(text) {
                let refusal = RelayError::internal().to_frame(None);
                super::fanout::send_to_socket(&self.shard.state, &ws, &refusal);
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
    ) {
        let ws = WebSocket::from(ws);
        let _ = ws.close(Some(1000), Some("closed"));
        self.shard.viewer_gone(&ws);
    }

    #[wasm_bindgen(js_name = webSocketError)]
    pub fn websocket_error(&self, ws: web_sys::WebSocket, _error: JsValue) {
        self.shard.viewer_gone(&WebSocket::from(ws));
    }
}

impl Shard {
    /// A viewer the room placed here: welcomed at the shard's last delivered seq, resumed
    /// from the window or the room's history.
    async fn connect(&self, req: &Request) -> RelayResult<Response> {
        let (room, index, placement, connect) = placed_connect(req)?;
        {
            let mut inner = self.inner.borrow_mut();
            if inner.room.is_none() {
                inner.room = Some(room);
                inner.index = index;
            }
        }
        self.wait_for_link().await?;
        let conn = Connection {
            conn_id: placement.conn_id,
            user: connect.caller.user,
            exp: connect.caller.exp,
            counts: false,
        };
        let (plan, welcome) = {
            let inner = self.inner.borrow();
            let last = inner.sequence.last().unwrap_or(0);
            let plan = connect.since.map(|since| inner.sequence.resume_plan(since));
            let welcome = shard_fanout::welcome_at(&placement.welcome, last, index)
                .ok_or_else(RelayError::internal)?;
            (plan, welcome)
        };
        let attachment = serde_json::to_string(&conn).map_err(|_| RelayError::internal())?;
        let accepted = super::fanout::accept(
            &self.state,
            connect.batched,
            &attachment,
            &welcome,
            connect.subprotocol.as_deref(),
        )
        .map_err(|err| internal("accept")(worker::Error::from(err)))?;
        let server = WebSocket::from(accepted.server());
        self.inner.borrow_mut().viewers.insert(
            conn.conn_id.clone(),
            Viewer {
                ws: server.clone(),
                user_id: conn.user.id.clone(),
                exp: conn.exp,
            },
        );
        self.schedule_report();
        self.watch_expiry();
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

    /// Opens the link unless it is open or opening, then waits (bounded) for its hello.
    async fn wait_for_link(&self) -> RelayResult<()> {
        for _ in 0..LINK_WAIT_MS / LINK_POLL_MS {
            self.ensure_link();
            let ready = {
                let inner = self.inner.borrow();
                matches!(inner.link, Link::Up(_)) && inner.sequence.last().is_some()
            };
            if ready {
                return Ok(());
            }
            sleep(LINK_POLL_MS).await;
        }
        worker::console_error!("the link to the room did not open in time");
        Err(RelayError::internal())
    }

    fn ensure_link(&self) {
        let (room, index, generation) = {
            let mut inner = self.inner.borrow_mut();
            if !matches!(inner.link, Link::Down) {
                return;
            }
            let Some(room) = inner.room.clone() else {
                return;
            };
            inner.link = Link::Opening;
            inner.generation += 1;
            (room, inner.index, inner.generation)
        };
        let Some(shard) = self.me.upgrade() else {
            return;
        };
        spawn_local(async move {
            let opened = shard.open(&room, index, generation).await;
            let mut inner = shard.inner.borrow_mut();
            if inner.generation != generation {
                return;
            }
            match opened {
                Some(ws) => {
                    inner.link = Link::Up(ws);
                    inner.failures = 0;
                }
                None => {
                    inner.link = Link::Down;
                    drop(inner);
                    shard.link_failed();
                }
            }
        });
    }

    async fn open(&self, room: &str, index: usize, generation: u32) -> Option<web_sys::WebSocket> {
        let wire = RoomRequest::ShardLink { shard: index }.encode().ok()?;
        let promise = open_link(
            &self.env,
            room,
            &format!("https://room{}", wire.path),
            vec![ROOM_HEADER.to_string()],
            vec![percent_encode(room)],
            generation,
            self.on_message.as_ref(),
            self.on_close.as_ref(),
        )
        .ok()?;
        let ws = JsFuture::from(promise).await.ok()?;
        ws.dyn_into::<web_sys::WebSocket>().ok()
    }

    /// The link could not open or broke: try again after a backoff while viewers are here;
    /// after [`MAX_LINK_FAILURES`] in a row, close them so that they come back through the
    /// Worker.
    fn link_failed(&self) {
        let failures = {
            let mut inner = self.inner.borrow_mut();
            inner.failures += 1;
            if inner.viewers.is_empty() {
                inner.sequence = shard_fanout::ShardSequence::default();
                return;
            }
            inner.failures
        };
        if failures > MAX_LINK_FAILURES {
            worker::console_error!("the link to the room failed {failures} times: closing");
            self.close_all(disconnect::INTERNAL.code, disconnect::INTERNAL.reason);
            return;
        }
        let Some(shard) = self.me.upgrade() else {
            return;
        };
        let wait = (100u32 << failures.min(6)).min(5_000);
        spawn_local(async move {
            sleep(wait).await;
            shard.ensure_link();
        });
    }

    fn on_link_closed(&self, generation: u32) {
        {
            let mut inner = self.inner.borrow_mut();
            if inner.generation != generation {
                return;
            }
            inner.generation += 1;
            inner.link = Link::Down;
        }
        self.link_failed();
    }

    fn on_link_message(&self, generation: u32, text: &str) {
        let overflow = {
            let mut inner = self.inner.borrow_mut();
            if inner.generation != generation {
                return;
            }
            match serde_json::from_str::<ToShard>(text) {
                Ok(ToShard::Hello { seq }) => {
                    inner.sequence.hello(seq);
                    false
                }
                Ok(ToShard::Batch { e }) => !inner.sequence.push(e),
                Err(_) => {
                    worker::console_error!("an unreadable frame on the link");
                    false
                }
            }
        };
        if overflow {
            self.drop_link();
            return;
        }
        self.flush_waiting();
        self.pump();
    }

    /// Gives up the link (too much behind a gap): the next one's hello finds what is missing.
    fn drop_link(&self) {
        let old = {
            let mut inner = self.inner.borrow_mut();
            inner.generation += 1;
            std::mem::replace(&mut inner.link, Link::Down)
        };
        if let Link::Up(ws) = old {
            let _ = ws.close_with_code_and_reason(1000, "catching up");
        }
        self.ensure_link();
    }

    /// Sends a frame to the room, or holds it while the link opens; `false` when it can be
    /// neither (the viewer gets an error).
    fn send_up(&self, text: String) -> bool {
        let sent = {
            let mut inner = self.inner.borrow_mut();
            match &inner.link {
                Link::Up(ws) if inner.waiting.is_empty() => ws.send_with_str(&text).is_ok(),
                _ if inner.waiting.len() < MAX_WAITING_FRAMES => {
                    inner.waiting.push_back(text);
                    true
                }
                _ => false,
            }
        };
        self.ensure_link();
        sent
    }

    fn flush_waiting(&self) {
        let mut inner = self.inner.borrow_mut();
        let Link::Up(ws) = &inner.link else {
            return;
        };
        let ws = ws.clone();
        while let Some(text) = inner.waiting.pop_front() {
            let _ = ws.send_with_str(&text);
        }
    }

    /// Delivers what the link brought, in seq order, until it runs out or a gap needs a pull.
    fn pump(&self) {
        for _ in 0..MAX_PUMP_STEPS {
            let next = self.inner.borrow_mut().sequence.next_step();
            match next {
                Next::Deliver(entry) => self.deliver(entry),
                Next::Pull { after, up_to } => {
                    self.pull(after, up_to);
                    return;
                }
                Next::Idle => return,
            }
        }
    }

    fn viewer_socket(&self, conn_id: &str) -> Option<WebSocket> {
        self.inner
            .borrow()
            .viewers
            .get(conn_id)
            .map(|v| v.ws.clone())
    }

    fn deliver(&self, entry: shard_fanout::LinkEntry) {
        if let Some(users) = entry.u {
            let (code, reason) = entry
                .c
                .unwrap_or((disconnect::DISCONNECTED.code, String::new()));
            let users: HashSet<String> = users.into_iter().collect();
            let sockets: Vec<WebSocket> = self
                .inner
                .borrow()
                .viewers
                .values()
                .filter(|v| users.contains(&v.user_id))
                .map(|v| v.ws.clone())
                .collect();
            super::fanout::flush(&self.state);
            for ws in sockets {
                let _ = ws.close(Some(code), Some(&reason));
            }
            return;
        }
        if let Some(conn_id) = entry.o {
            let Some(ws) = self.viewer_socket(&conn_id) else {
                return;
            };
            match (entry.c, entry.a) {
                (Some((code, reason)), _) => {
                    super::fanout::flush(&self.state);
                    let _ = ws.close(Some(code), Some(&reason));
                }
                (None, Some(exp)) => self.renewed(&conn_id, &ws, exp),
                (None, None) => super::fanout::send_to_socket(&self.state, &ws, &entry.f),
            }
            return;
        }
        let except = entry.x.and_then(|conn_id| self.viewer_socket(&conn_id));
        super::fanout::send_to_room(&self.state, &entry.f, except.as_ref(), Pace::Now);
    }

    /// Fetches a missed range from the room, hands it to the sequence and goes on.
    fn pull(&self, after: u64, up_to: u64) {
        let Some(shard) = self.me.upgrade() else {
            return;
        };
        spawn_local(async move {
            let mut rows = Vec::new();
            for attempt in 0..MAX_PULL_ATTEMPTS {
                match shard.fetch_range(after, up_to).await {
                    Ok(fetched) => {
                        rows = fetched;
                        break;
                    }
                    Err(err) => {
                        worker::console_error!("pull of {after}..{up_to} failed: {err}");
                        sleep(100 << attempt).await;
                    }
                }
            }
            let frames = shard.inner.borrow_mut().sequence.filled(up_to, rows);
            for frame in frames {
                super::fanout::send_to_room(&shard.state, &frame, None, Pace::Now);
            }
            shard.pump();
        });
    }

    /// The stored messages `after+1..=up_to` from the room (at most a history page).
    async fn fetch_range(&self, after: u64, up_to: u64) -> RelayResult<Vec<(u64, String)>> {
        #[derive(Deserialize)]
        struct PageRows<'a> {
            #[serde(borrow)]
            messages: Vec<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct SeqOf {
            seq: u64,
        }
        let room = self
            .inner
            .borrow()
            .room
            .clone()
            .ok_or_else(RelayError::internal)?;
        let wire = RoomRequest::ShardRange { after, up_to }.encode()?;
        let response = send_to_room(&self.env, &room, &wire).await?;
        let text = http::response_text(&response)
            .await
            .map_err(internal("shard range"))?;
        if response.status() != 200 {
            return Err(RelayError::internal());
        }
        let page: PageRows = serde_json::from_str(&text).map_err(|_| RelayError::internal())?;
        page.messages
            .into_iter()
            .map(|raw| {
                let seq = serde_json::from_str::<SeqOf>(raw.get())
                    .map_err(|_| RelayError::internal())?
                    .seq;
                Ok((seq, raw.get().to_string()))
            })
            .collect()
    }

    /// A resume's replay: from the window when it holds the range (in this turn, before any
    /// live frame), else page by page from the room, held frames following `synced`.
    fn replay(&self, ws: WebSocket, mut replay: Replay) {
        if let Some(range) = replay.next_fetch() {
            if let Some(rows) = self.window_page(&range) {
                if replay.add_rows(rows).is_err() {
                    let _ = ws.close(
                        Some(disconnect::INTERNAL.code),
                        Some(disconnect::INTERNAL.reason),
                    );
                    return;
                }
            }
        }
        let Some(shard) = self.me.upgrade() else {
            return;
        };
        let Some(replay) = replay_pump::send_first_page(&ws, replay) else {
            return;
        };
        spawn_local(async move {
            let fetch = |range: SeqRange| {
                let shard = Rc::clone(&shard);
                async move {
                    match shard.window_page(&range) {
                        Some(rows) => Ok(rows),
                        None => shard.fetch_range(range.after, range.before - 1).await,
                    }
                }
            };
            if let Err(err) = replay_pump::pump(&ws, replay, fetch).await {
                worker::console_error!("replay failed: {err}");
                let _ = ws.close(
                    Some(disconnect::INTERNAL.code),
                    Some(disconnect::INTERNAL.reason),
                );
            }
        });
    }

    /// A page of `range` from the shard's window, when it holds the range's start.
    fn window_page(&self, range: &SeqRange) -> Option<Vec<(u64, String)>> {
        let rows = self.inner.borrow().sequence.window_rows(
            range.after,
            range.before,
            replay::PAGE_MESSAGES as usize,
        );
        rows.filter(|rows| !rows.is_empty())
    }

    /// A viewer's token was renewed through the room: its connection keeps the new expiry.
    fn renewed(&self, conn_id: &str, ws: &WebSocket, exp: i64) {
        if let Some(conn) = connection_of(ws) {
            attach(ws, &Connection { exp, ..conn });
        }
        if let Some(viewer) = self.inner.borrow_mut().viewers.get_mut(conn_id) {
            viewer.exp = exp;
        }
    }

    /// Closes viewers whose token expired, even idle ones (their frames are checked by the
    /// room): a task that sleeps until the earliest expiry while viewers are here.
    fn watch_expiry(&self) {
        {
            let mut inner = self.inner.borrow_mut();
            if inner.watching_expiry {
                return;
            }
            inner.watching_expiry = true;
        }
        let Some(shard) = self.me.upgrade() else {
            return;
        };
        spawn_local(async move {
            // Each round sleeps at least until an expiry or a minute: bounded by the tokens'.
            for _ in 0..MAX_EXPIRY_ROUNDS {
                let earliest = shard.inner.borrow().viewers.values().map(|v| v.exp).min();
                let Some(earliest) = earliest else {
                    break;
                };
                let wait = (earliest.saturating_mul(1000) + 1 - super::now_ms()).clamp(0, 60_000);
                sleep(wait as u32).await;
                let now = super::now_ms();
                let expired: Vec<WebSocket> = shard
                    .inner
                    .borrow()
                    .viewers
                    .values()
                    .filter(|v| v.exp.saturating_mul(1000) < now)
                    .map(|v| v.ws.clone())
                    .collect();
                if !expired.is_empty() {
                    super::fanout::flush(&shard.state);
                }
                for ws in expired {
                    let _ = ws.close(
                        Some(disconnect::TOKEN_EXPIRED.code),
                        Some(disconnect::TOKEN_EXPIRED.reason),
                    );
                    shard.viewer_gone(&ws);
                }
            }
            shard.inner.borrow_mut().watching_expiry = false;
        });
    }

    fn viewer_gone(&self, ws: &WebSocket) {
        let Some(conn) = connection_of(ws) else {
            return;
        };
        if self
            .inner
            .borrow_mut()
            .viewers
            .remove(&conn.conn_id)
            .is_none()
        {
            return;
        }
        // Only over a link that is up: a link that broke took the room's view of it along.
        let gone = FromShard::Gone {
            conn_id: conn.conn_id,
        };
        if let (Ok(text), Link::Up(link)) =
            (serde_json::to_string(&gone), &self.inner.borrow().link)
        {
            let _ = link.send_with_str(&text);
        }
        self.schedule_report();
    }

    fn close_all(&self, code: u16, reason: &str) {
        let sockets: Vec<WebSocket> = self
            .inner
            .borrow_mut()
            .viewers
            .drain()
            .map(|(_, v)| v.ws)
            .collect();
        for ws in sockets {
            let _ = ws.close(Some(code), Some(reason));
        }
    }

    /// Reports the shard's counts to the room a little after a change; a shard left without
    /// viewers then closes its link (nothing keeps it awake).
    fn schedule_report(&self) {
        {
            let mut inner = self.inner.borrow_mut();
            if inner.report_due {
                return;
            }
            inner.report_due = true;
        }
        let Some(shard) = self.me.upgrade() else {
            return;
        };
        spawn_local(async move {
            sleep(REPORT_DELAY_MS).await;
            let (connections, users) = {
                let mut inner = shard.inner.borrow_mut();
                inner.report_due = false;
                let users: HashSet<&str> =
                    inner.viewers.values().map(|v| v.user_id.as_str()).collect();
                (inner.viewers.len(), users.len())
            };
            let counts = FromShard::Counts { connections, users };
            if let Ok(text) = serde_json::to_string(&counts) {
                shard.send_up(text);
            }
            if connections == 0 {
                shard.unlink();
            }
        });
    }

    /// No viewers left: the link closes and the shard forgets the sequence (a later viewer
    /// starts from the room's seq at the next hello).
    fn unlink(&self) {
        let old = {
            let mut inner = self.inner.borrow_mut();
            inner.generation += 1;
            inner.sequence = shard_fanout::ShardSequence::default();
            inner.waiting.clear();
            std::mem::replace(&mut inner.link, Link::Down)
        };
        if let Link::Up(ws) = old {
            let _ = ws.close_with_code_and_reason(1000, "no viewers");
        }
    }
}

/// What the room's placement forwarded: the room, the shard's number, the placement and the
/// viewer's connect.
fn placed_connect(req: &Request) -> RelayResult<(String, usize, Placement, Connect)> {
    let room = header(req, ROOM_HEADER)
        .map(|r| room_name::percent_decode(&r))
        .transpose()?
        .ok_or_else(|| RelayError::bad_request("missing room"))?;
    let index: usize = header(req, SHARD_HEADER)
        .and_then(|n| n.parse().ok())
        .filter(|n| *n < shard_fanout::MAX_SHARDS)
        .ok_or_else(|| RelayError::bad_request("missing shard"))?;
    let placement: Placement = header(req, PLACEMENT_HEADER)
        .and_then(|p| serde_json::from_str(&p).ok())
        .ok_or_else(|| RelayError::bad_request("missing placement"))?;
    let RoomRequest::Connect(connect) =
        RoomRequest::decode("GET", &req.url(), |n| header(req, n), None)?
    else {
        return Err(RelayError::bad_request("not a connect"));
    };
    Ok((room, index, placement, connect))
}
