//! A WebSocket client for the relay's `/v1/rooms/{room}/ws` route.
//!
//! Frames are read in order. The `recv_*` methods that look for a particular frame leave the
//! frames they pass over in a backlog, in arrival order, so nothing is ever silently skipped:
//! a later `recv_json` returns them first. Every wait is bounded ([`DEFAULT_TIMEOUT`] unless
//! said otherwise). Protocol-level ping/pong frames are not application frames and are
//! passed over; a binary or non-JSON frame from the server fails the test.
//!
//! On a batched connection (`batch=1`, see [`Client::connect_with_query`]) one WebSocket
//! message may be a JSON array of frames: the receiving methods return each WebSocket message
//! as it came, and [`crate::shape::frames_of`] takes the frames out of it.

use crate::config::ws_url;
use crate::shape::{assert_ack, assert_welcome, ty, Stamp};
use crate::token::User;
use crate::DEFAULT_TIMEOUT;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How the token travels with the upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `?token=<jwt>`.
    Query,
    /// `Authorization: Bearer <jwt>`.
    Bearer,
    /// `Sec-WebSocket-Protocol: relay.v1, bearer.<jwt>`.
    Subprotocol,
}

/// One thing read from the socket.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A JSON text frame.
    Json(Value),
    /// The connection closed: the close code if the server sent a close frame.
    Closed { code: Option<u16>, reason: String },
}

/// Why an upgrade did not happen.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // built once per failed connect in a test; size is moot
pub enum ConnectError {
    /// The server answered the upgrade request with a non-101 status. `body` holds only
    /// what arrived together with the headers (tungstenite reads no further); `url` and
    /// `request_headers` allow [`ConnectError::assert_error`] to repeat the request over
    /// plain HTTP to read the whole body.
    Http {
        status: u16,
        headers: HeaderMap,
        body: String,
        url: String,
        request_headers: HeaderMap,
    },
    /// Anything else (refused connection, protocol error, timeout).
    Other(String),
}

impl ConnectError {
    /// The HTTP status of a rejected upgrade.
    pub fn status(&self) -> Option<u16> {
        match self {
            ConnectError::Http { status, .. } => Some(*status),
            ConnectError::Other(_) => None,
        }
    }

    /// Asserts a rejection with `status` and the JSON error body with `code`. If the body
    /// did not arrive with the headers, the same upgrade request (same URL and headers,
    /// including `Upgrade: websocket`) is repeated with an HTTP client to read it.
    pub async fn assert_error(&self, status: u16, code: &str, ctx: &str) {
        match self {
            ConnectError::Http {
                status: got,
                body,
                url,
                request_headers,
                ..
            } => {
                assert_eq!(
                    *got, status,
                    "{ctx}: upgrade rejected with {got}, expected {status}; body {body:?}"
                );
                let parsed: Option<Value> = serde_json::from_str(body).ok();
                let v = match parsed {
                    Some(v) => v,
                    None => {
                        let mut again = crate::http::replay_upgrade(url, request_headers).await;
                        // A rate limit may have refilled meanwhile (connects refill at 5 per
                        // second): an accepted replay takes that token, so a few more replays
                        // reach the refusal again.
                        for _ in 0..REPLAYS_PAST_A_REFILL {
                            if status != 429 || again.status != 101 {
                                break;
                            }
                            again = crate::http::replay_upgrade(url, request_headers).await;
                        }
                        assert_eq!(
                            again.status, status,
                            "{ctx}: repeating the upgrade over HTTP gave {} {:?}",
                            again.status, again.body
                        );
                        again.json().clone()
                    }
                };
                crate::shape::assert_error_body(&v, code, ctx);
            }
            ConnectError::Other(e) => {
                panic!("{ctx}: expected an HTTP {status} rejection, got error: {e}")
            }
        }
    }
}

/// Replays of a rate-limited upgrade that may be accepted because its bucket refilled while the
/// first refusal was read: more than a loaded machine's refill during the replays.
const REPLAYS_PAST_A_REFILL: usize = 10;

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A connected WebSocket.
pub struct Client {
    ws: Stream,
    backlog: VecDeque<Value>,
    closed: Option<(Option<u16>, String)>,
    /// The room this client connected to (as given, not encoded).
    pub room: String,
    /// Headers of the `101 Switching Protocols` response.
    pub response_headers: HeaderMap,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("room", &self.room)
            .field("backlog", &self.backlog)
            .finish()
    }
}

/// Connect timeout (TCP + handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Client {
    /// Connects to `/v1/rooms/{room}/ws` (room percent-encoded here).
    pub async fn connect(
        room: &str,
        token: Option<&str>,
        via: Via,
        since: Option<u64>,
    ) -> Result<Client, ConnectError> {
        let mut c = Self::connect_raw(&crate::encode_segment(room), token, via, since).await?;
        c.room = room.to_string();
        Ok(c)
    }

    /// Connects to `/v1/rooms/{room_segment}/ws` with the path segment used exactly as given
    /// (for deliberately malformed names).
    pub async fn connect_raw(
        room_segment: &str,
        token: Option<&str>,
        via: Via,
        since: Option<u64>,
    ) -> Result<Client, ConnectError> {
        Self::connect_segment(room_segment, token, via, since, &[]).await
    }

    /// Like [`Client::connect`] with extra query parameters after `since` (values
    /// percent-encoded here), e.g. `&[("batch", "1")]` for batched delivery.
    pub async fn connect_with_query(
        room: &str,
        token: Option<&str>,
        via: Via,
        since: Option<u64>,
        extra: &[(&str, &str)],
    ) -> Result<Client, ConnectError> {
        let mut c =
            Self::connect_segment(&crate::encode_segment(room), token, via, since, extra).await?;
        c.room = room.to_string();
        Ok(c)
    }

    async fn connect_segment(
        room_segment: &str,
        token: Option<&str>,
        via: Via,
        since: Option<u64>,
        extra: &[(&str, &str)],
    ) -> Result<Client, ConnectError> {
        let mut query: Vec<String> = Vec::new();
        if let Some(s) = since {
            query.push(format!("since={s}"));
        }
        for (k, v) in extra {
            query.push(format!("{k}={}", crate::encode_query(v)));
        }
        if let (Some(t), Via::Query) = (token, via) {
            query.push(format!("token={}", crate::encode_query(t)));
        }
        let mut url = format!("{}/v1/rooms/{room_segment}/ws", ws_url());
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        let mut req = url
            .as_str()
            .into_client_request()
            .unwrap_or_else(|e| panic!("bad WebSocket URL {url}: {e}"));
        if let Some(t) = token {
            match via {
                Via::Query => {}
                Via::Bearer => {
                    req.headers_mut().insert(
                        "Authorization",
                        HeaderValue::from_str(&format!("Bearer {t}")).expect("header value"),
                    );
                }
                Via::Subprotocol => {
                    req.headers_mut().insert(
                        "Sec-WebSocket-Protocol",
                        HeaderValue::from_str(&format!("relay.v1, bearer.{t}"))
                            .expect("header value"),
                    );
                }
            }
        }
        Self::open(req, url, room_segment).await
    }

    /// Connects to `/v1/rooms/{room_segment}/ws?{query}` (segment and query used exactly as
    /// given; `query` may be empty) with `headers` added to the upgrade request, e.g. an
    /// `Origin` or a `Sec-WebSocket-Protocol` of the test's own.
    pub async fn connect_with_headers(
        room_segment: &str,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Client, ConnectError> {
        let mut url = format!("{}/v1/rooms/{room_segment}/ws", ws_url());
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let mut req = url
            .as_str()
            .into_client_request()
            .unwrap_or_else(|e| panic!("bad WebSocket URL {url}: {e}"));
        for (name, value) in headers {
            req.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        Self::open(req, url, room_segment).await
    }

    /// Sends the upgrade request `req` (to `url`) and waits for the handshake.
    async fn open(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
        url: String,
        room_segment: &str,
    ) -> Result<Client, ConnectError> {
        let request_headers = req.headers().clone();
        let res = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(req))
            .await
            .map_err(|_| ConnectError::Other(format!("connecting to {url} timed out")))?;
        match res {
            Ok((ws, resp)) => Ok(Client {
                ws,
                backlog: VecDeque::new(),
                closed: None,
                room: room_segment.to_string(),
                response_headers: resp.headers().clone(),
            }),
            Err(WsError::Http(resp)) => Err(ConnectError::Http {
                status: resp.status().as_u16(),
                headers: resp.headers().clone(),
                body: resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
                url: url.clone(),
                request_headers,
            }),
            Err(e) => Err(ConnectError::Other(format!("connecting to {url}: {e}"))),
        }
    }

    /// Connects with `?token=` and reads the first frame, which must be a `welcome`.
    /// Returns the client and the welcome frame.
    pub async fn join(room: &str, token: &str) -> (Client, Value) {
        Self::join_with(room, token, Via::Query, None).await
    }

    /// Like [`Client::join`] with a chosen token transport and optional `since`.
    pub async fn join_with(
        room: &str,
        token: &str,
        via: Via,
        since: Option<u64>,
    ) -> (Client, Value) {
        let mut c = Self::connect(room, Some(token), via, since)
            .await
            .unwrap_or_else(|e| panic!("joining room {room:?} failed: {e:?}"));
        let welcome = c.recv_json().await;
        assert_eq!(
            ty(&welcome),
            "welcome",
            "first frame must be welcome, got {welcome}"
        );
        (c, welcome)
    }

    /// Mints a token for `user` granting exactly `room`, joins, checks the full welcome shape
    /// and returns the client and the welcome's `seq`.
    pub async fn join_as(room: &str, user: &User) -> (Client, u64) {
        let (c, welcome) = Self::join(room, &user.token(&[room])).await;
        let seq = assert_welcome(&welcome, room, user);
        (c, seq)
    }

    /// The `Sec-WebSocket-Protocol` the server selected, if any.
    pub fn selected_protocol(&self) -> Option<String> {
        self.response_headers
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    // ---- sending ---------------------------------------------------------------------

    /// Sends a text frame; an error is returned, not panicked (the server may have closed).
    pub async fn try_send_text(&mut self, text: String) -> Result<(), String> {
        tokio::time::timeout(DEFAULT_TIMEOUT, self.ws.send(Message::text(text)))
            .await
            .map_err(|_| "sending timed out".to_string())?
            .map_err(|e| e.to_string())
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        if let Err(e) = self.try_send_text(text).await {
            panic!("sending a text frame failed: {e}");
        }
    }

    /// Sends a JSON value as a text frame.
    pub async fn send_json(&mut self, v: &Value) {
        self.send_text(v.to_string()).await;
    }

    /// Sends several text frames in one write: they are queued and flushed together, so
    /// that they reach the server as one burst.
    pub async fn send_burst(&mut self, texts: impl IntoIterator<Item = String>) {
        let ws = &mut self.ws;
        let burst = async move {
            for text in texts {
                ws.feed(Message::text(text)).await?;
            }
            ws.flush().await
        };
        tokio::time::timeout(DEFAULT_TIMEOUT, burst)
            .await
            .expect("sending a burst of frames timed out")
            .unwrap_or_else(|e| panic!("sending a burst of frames failed: {e}"));
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        tokio::time::timeout(DEFAULT_TIMEOUT, self.ws.send(Message::binary(bytes)))
            .await
            .expect("sending timed out")
            .unwrap_or_else(|e| panic!("sending a binary frame failed: {e}"));
    }

    /// Sends `{"type":"publish","cid","data"}` (plus `event` when given).
    pub async fn publish(&mut self, cid: &str, event: Option<&str>, data: &Value) {
        let mut frame = json!({"type": "publish", "cid": cid, "data": data});
        if let Some(e) = event {
            frame["event"] = json!(e);
        }
        self.send_json(&frame).await;
    }

    /// Publishes and waits for its `ack` (checked: `cid`, `duplicate:false`, shape). A
    /// `rate_limited` error for it is answered by waiting a second and sending the same frame
    /// again (bounded); any other error fails the test. Frames passed over stay in the backlog.
    pub async fn publish_acked(&mut self, cid: &str, event: Option<&str>, data: &Value) -> Stamp {
        for _attempt in 0..30 {
            self.publish(cid, event, data).await;
            let deadline = Instant::now() + Duration::from_secs(10);
            let reply = self
                .take_first(
                    |v| {
                        let for_me = v.get("cid").and_then(Value::as_str) == Some(cid)
                            || v.get("cid").is_none_or(Value::is_null);
                        (ty(v) == "ack" && v.get("cid").and_then(Value::as_str) == Some(cid))
                            || (ty(v) == "error" && for_me)
                    },
                    deadline,
                )
                .await
                .unwrap_or_else(|| {
                    panic!(
                        "no ack for publish cid={cid:?} within 10 s; backlog: {:?}",
                        self.backlog
                    )
                });
            if ty(&reply) == "ack" {
                return assert_ack(&reply, cid, false);
            }
            if reply.get("code").and_then(Value::as_str) == Some("rate_limited") {
                tokio::time::sleep(Duration::from_millis(1100)).await;
                continue;
            }
            panic!("publish cid={cid:?} got an error instead of an ack: {reply}");
        }
        panic!("publish cid={cid:?} stayed rate limited for 30 attempts");
    }

    /// The first `ack` for `cid` within [`DEFAULT_TIMEOUT`] (other frames stay queued).
    pub async fn recv_ack(&mut self, cid: &str) -> Value {
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        self.take_first(
            |v| ty(v) == "ack" && v.get("cid").and_then(Value::as_str) == Some(cid),
            deadline,
        )
        .await
        .unwrap_or_else(|| panic!("no ack for cid {cid:?}; frames seen: {:?}", self.backlog))
    }

    /// Sends `{"type":"ping"}` and waits for the `pong`.
    pub async fn ping(&mut self) {
        self.send_json(&json!({"type": "ping"})).await;
        let pong = self.recv_until("pong").await;
        assert_eq!(pong, json!({"type": "pong"}), "pong frame shape");
    }

    /// Sends a ping that the room itself answers, in order with the frames sent before it,
    /// and returns every frame (presence frames left out) that arrived before its `pong`.
    /// The text is deliberately not the exact `{"type":"ping"}`: that one may be answered
    /// by the runtime without the room seeing it, so its pong proves nothing about order.
    pub async fn frames_before_pong(&mut self) -> Vec<Value> {
        self.send_text(r#"{"type": "ping"}"#).await;
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        let mut before = Vec::new();
        loop {
            match self.next_incoming(deadline).await {
                Some(Incoming::Json(v)) if ty(&v) == "pong" => return before,
                Some(Incoming::Json(v)) if ty(&v) == "presence" => {}
                Some(Incoming::Json(v)) => before.push(v),
                Some(Incoming::Closed { code, reason }) => panic!(
                    "connection closed (code {code:?}, {reason}) while waiting for a pong; \
                     frames before: {before:?}"
                ),
                None => panic!("no pong within {DEFAULT_TIMEOUT:?}; frames before: {before:?}"),
            }
        }
    }

    /// Sends a close frame and waits (briefly, bounded) for the server's answer.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.closed.is_none() {
            if self.read_wire(deadline).await.is_none() {
                break;
            }
        }
    }

    /// Drops the connection without a close handshake: the TCP socket is simply closed, as
    /// when a browser tab crashes or the network goes away.
    pub fn abort(self) {
        drop(self);
    }

    // ---- receiving -------------------------------------------------------------------

    /// Reads one thing from the wire (not the backlog). `None` on timeout.
    async fn read_wire(&mut self, deadline: Instant) -> Option<Incoming> {
        if let Some((code, reason)) = &self.closed {
            return Some(Incoming::Closed {
                code: *code,
                reason: reason.clone(),
            });
        }
        loop {
            let next = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(n) => n,
            };
            let (code, reason) = match next {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or_else(|e| {
                        panic!(
                            "server sent a text frame that is not JSON ({e}): {:?}",
                            t.as_str()
                        )
                    });
                    return Some(Incoming::Json(v));
                }
                Some(Ok(Message::Binary(b))) => {
                    panic!(
                        "server sent a binary frame ({} bytes); the contract has JSON text frames only",
                        b.len()
                    )
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(f))) => match f {
                    Some(f) => (Some(u16::from(f.code)), f.reason.as_str().to_string()),
                    None => (None, "close frame without a code".to_string()),
                },
                Some(Err(e)) => (None, format!("connection error: {e}")),
                None => (None, "connection ended".to_string()),
            };
            self.closed = Some((code, reason.clone()));
            return Some(Incoming::Closed { code, reason });
        }
    }

    /// The next frame (backlog first), or `None` if nothing arrived by `deadline`.
    pub async fn next_incoming(&mut self, deadline: Instant) -> Option<Incoming> {
        if let Some(v) = self.backlog.pop_front() {
            return Some(Incoming::Json(v));
        }
        self.read_wire(deadline).await
    }

    /// The next JSON frame within `timeout`; panics on timeout or close.
    pub async fn recv_json_within(&mut self, timeout: Duration) -> Value {
        match self.next_incoming(Instant::now() + timeout).await {
            Some(Incoming::Json(v)) => v,
            Some(Incoming::Closed { code, reason }) => {
                panic!("connection closed (code {code:?}, {reason}) while waiting for a frame")
            }
            None => panic!("no frame within {timeout:?}"),
        }
    }

    /// The next JSON frame within [`DEFAULT_TIMEOUT`]. Skips nothing.
    pub async fn recv_json(&mut self) -> Value {
        self.recv_json_within(DEFAULT_TIMEOUT).await
    }

    /// The next JSON frame if one arrives within `timeout`; panics on close.
    pub async fn try_recv_json(&mut self, timeout: Duration) -> Option<Value> {
        match self.next_incoming(Instant::now() + timeout).await {
            Some(Incoming::Json(v)) => Some(v),
            Some(Incoming::Closed { code, reason }) => {
                panic!("connection closed (code {code:?}, {reason}) while waiting for a frame")
            }
            None => None,
        }
    }

    /// Takes out the first frame (backlog first, then the wire) matching `pred`; every other
    /// frame stays in the backlog in order. `None` if none arrived by `deadline`; panics if
    /// the connection closes first.
    pub async fn take_first(
        &mut self,
        pred: impl Fn(&Value) -> bool,
        deadline: Instant,
    ) -> Option<Value> {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        loop {
            match self.read_wire(deadline).await {
                Some(Incoming::Json(v)) if pred(&v) => return Some(v),
                Some(Incoming::Json(v)) => self.backlog.push_back(v),
                Some(Incoming::Closed { code, reason }) => panic!(
                    "connection closed (code {code:?}, {reason}); frames seen meanwhile: {:?}",
                    self.backlog
                ),
                None => return None,
            }
        }
    }

    /// The first frame of type `t` within [`DEFAULT_TIMEOUT`] (others stay queued).
    pub async fn recv_until(&mut self, t: &str) -> Value {
        self.recv_until_within(t, DEFAULT_TIMEOUT).await
    }

    /// The first frame of type `t` within `timeout` (others stay queued).
    pub async fn recv_until_within(&mut self, t: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        match self.take_first(|v| ty(v) == t, deadline).await {
            Some(v) => v,
            None => panic!(
                "no {t:?} frame within {timeout:?}; frames seen meanwhile: {:?}",
                self.backlog
            ),
        }
    }

    /// The first frame whose type is not in `ignore` (those stay queued), within
    /// [`DEFAULT_TIMEOUT`]. Used where unrelated frames (e.g. `presence`) may interleave.
    pub async fn recv_ignoring(&mut self, ignore: &[&str]) -> Value {
        let deadline = Instant::now() + DEFAULT_TIMEOUT;
        match self
            .take_first(|v| !ignore.contains(&ty(v)), deadline)
            .await
        {
            Some(v) => v,
            None => panic!(
                "no frame other than {ignore:?} within {DEFAULT_TIMEOUT:?}; seen: {:?}",
                self.backlog
            ),
        }
    }

    /// Waits `within` and fails if a frame matching `pred` arrives (or is queued). Other
    /// frames stay queued.
    pub async fn expect_none(
        &mut self,
        what: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) {
        if let Some(v) = self.take_first(pred, Instant::now() + within).await {
            panic!("unexpected {what}: {v}");
        }
    }

    /// Waits `within` and fails if any `message` frame arrives (or is queued).
    pub async fn expect_no_message(&mut self, within: Duration) {
        self.expect_none("message frame", within, |v| ty(v) == "message")
            .await;
    }

    /// Waits for the connection to close (JSON frames before it stay queued) and returns the
    /// close code, if a close frame carried one. Panics if still open after `within`.
    pub async fn expect_close(&mut self, within: Duration) -> (Option<u16>, String) {
        let deadline = Instant::now() + within;
        loop {
            match self.read_wire(deadline).await {
                Some(Incoming::Json(v)) => self.backlog.push_back(v),
                Some(Incoming::Closed { code, reason }) => return (code, reason),
                None => panic!(
                    "connection still open after {within:?}; frames seen: {:?}",
                    self.backlog
                ),
            }
        }
    }

    /// Takes out `count` `message` frames in arrival order within `within` (other frames stay
    /// queued); panics with what did arrive if they do not.
    pub async fn recv_messages(&mut self, count: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut got = Vec::with_capacity(count);
        while got.len() < count {
            match self.take_first(|v| ty(v) == "message", deadline).await {
                Some(m) => got.push(m),
                None => panic!(
                    "only {} of {count} messages arrived within {within:?}; last: {:?}",
                    got.len(),
                    got.last()
                ),
            }
        }
        got
    }

    /// Every frame (backlog first) that arrives within `within`; panics if the connection
    /// closes meanwhile.
    pub async fn drain_for(&mut self, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        let mut out: Vec<Value> = self.backlog.drain(..).collect();
        loop {
            match self.read_wire(deadline).await {
                Some(Incoming::Json(v)) => out.push(v),
                Some(Incoming::Closed { code, reason }) => panic!(
                    "connection closed (code {code:?}, {reason}); frames seen meanwhile: {out:?}"
                ),
                None => return out,
            }
        }
    }

    /// Every frame (backlog first) up to the connection's close, which must happen within
    /// `within`: the frames, and the close code and reason.
    pub async fn drain_until_close(
        &mut self,
        within: Duration,
    ) -> (Vec<Value>, Option<u16>, String) {
        let deadline = Instant::now() + within;
        let mut out: Vec<Value> = self.backlog.drain(..).collect();
        loop {
            match self.read_wire(deadline).await {
                Some(Incoming::Json(v)) => out.push(v),
                Some(Incoming::Closed { code, reason }) => return (out, code, reason),
                None => panic!(
                    "connection still open after {within:?}; {} frames seen, last: {:?}",
                    out.len(),
                    out.last()
                ),
            }
        }
    }

    /// Frames received but not yet taken.
    pub fn backlog(&self) -> &VecDeque<Value> {
        &self.backlog
    }

    /// Drops every frame queued in the backlog.
    pub fn clear_backlog(&mut self) {
        self.backlog.clear();
    }
}
