//! Fan-out of frames to a room's sockets, in single calls into JavaScript: a frame crosses
//! from Rust once and the loop runs next to the sockets. Sockets that opted into batched
//! delivery (tag `batch`) get the frames of one turn of the room's event loop coalesced into
//! one WebSocket message, a JSON array of the frames in order; the others (tag `plain`) get
//! each frame alone. Presence frames wait a little for every socket, so that a connection
//! storm costs each socket a few sends in one turn instead of one send per join. Every frame
//! to a socket goes through the module, which closes a socket whose unsent output passed its
//! bound (a slow consumer, 4010) instead of queueing more for it.

use wasm_bindgen::prelude::*;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{State, WebSocket};

use crate::error::SLOW_CONSUMER_CLOSE;
use crate::room_machine::Pace;

// The JavaScript side (the queue, its timer and bounds, the accept) is `worker/fanout.mjs`,
// with its own unit tests in `worker/test/fanout.test.mjs`.
#[wasm_bindgen(module = "/worker/fanout.mjs")]
extern "C" {
    #[wasm_bindgen(js_name = sendToAll)]
    fn send_to_all(state: &JsValue, frame: &str, except: &JsValue, delay_ms: u32);
    #[wasm_bindgen(js_name = sendToOne)]
    fn send_to_one(state: &JsValue, ws: &JsValue, frame: &str);
    #[wasm_bindgen(js_name = flushQueue)]
    fn flush_queue(state: &JsValue);
    #[wasm_bindgen(js_name = holdSocket)]
    fn hold_socket(ws: &JsValue, max_hold_ms: u32);
    #[wasm_bindgen(js_name = sendReplayPage)]
    fn send_replay_page_js(ws: &JsValue, page: &str) -> bool;
    #[wasm_bindgen(js_name = whenDrained)]
    fn when_drained(ws: &JsValue, low_water: f64, max_wait_ms: u32) -> js_sys::Promise;
    #[wasm_bindgen(js_name = endReplay)]
    fn end_replay_js(ws: &JsValue, frame: &str);
    #[wasm_bindgen(js_name = closeSlowConsumer)]
    fn close_slow_consumer_js(ws: &JsValue);
    #[wasm_bindgen(js_name = configureSlowConsumers)]
    fn configure_slow_consumers(max_buffered_bytes: f64, code: u16, reason: &str);
    #[wasm_bindgen(js_name = acceptSocket, catch)]
    fn accept_socket(
        state: &JsValue,
        batched: bool,
        attachment: &str,
        welcome: &str,
        subprotocol: Option<&str>,
    ) -> Result<Accepted, JsValue>;

    /// A socket just accepted, and the answer that hands its client end to the caller.
    pub type Accepted;
    #[wasm_bindgen(method, getter)]
    pub fn server(this: &Accepted) -> web_sys::WebSocket;
    #[wasm_bindgen(method, getter)]
    pub fn response(this: &Accepted) -> web_sys::Response;
}

fn raw(ws: &WebSocket) -> JsValue {
    let raw: &web_sys::WebSocket = ws.as_ref();
    raw.into()
}

/// How long a presence frame ([`Pace::Presence`]) may wait for company on its way to the
/// sockets.
const PRESENCE_BATCH_MS: u32 = 250;

/// Sends `frame` to every socket of the room except `except` (now, or with their next batch).
pub fn send_to_room(state: &State, frame: &str, except: Option<&WebSocket>, pace: Pace) {
    let except = except.map_or(JsValue::UNDEFINED, raw);
    let delay_ms = match pace {
        Pace::Now => 0,
        Pace::Presence => PRESENCE_BATCH_MS,
    };
    send_to_all(state.as_raw(), frame, &except, delay_ms)
}

/// Sends a frame meant for one socket (an ack, an error, a pong) in order with the room's
/// frames to that socket.
pub fn send_to_socket(state: &State, ws: &WebSocket, frame: &str) {
    send_to_one(state.as_raw(), &raw(ws), frame);
}

/// Holds back every frame for `ws` but its replay (broadcasts, batches, acks, errors) until
/// [`end_replay`], for at most `max_hold_ms`: they wait in order, bounded like the socket's
/// output.
pub fn hold(ws: &WebSocket, max_hold_ms: u32) {
    hold_socket(&raw(ws), max_hold_ms);
}

/// Sends one page of a resume's replay (frames joined by `\n`) ahead of anything held for
/// the socket. `false` once the socket is closed or was cut off as a slow consumer.
pub fn send_replay_page(ws: &WebSocket, page: &str) -> bool {
    send_replay_page_js(&raw(ws), page)
}

/// Waits until the socket's unsent output is at most `low_water` bytes: `true` then; `false`
/// if it closed meanwhile, or stayed above for `max_wait_ms` (then it is closed with 4010).
pub async fn drained(ws: &WebSocket, low_water: usize, max_wait_ms: u32) -> bool {
    let promise = when_drained(&raw(ws), low_water as f64, max_wait_ms);
    JsFuture::from(promise)
        .await
        .is_ok_and(|done| done.as_bool() == Some(true))
}

/// Sends the frame that ends a replay (`synced` or `reset`), then whatever was held for the
/// socket meanwhile, in order; from then on it gets its frames like any socket.
pub fn end_replay(ws: &WebSocket, frame: &str) {
    end_replay_js(&raw(ws), frame);
}

/// Closes a socket as a slow consumer (4010); it gets nothing more.
pub fn close_slow_consumer(ws: &WebSocket) {
    close_slow_consumer_js(&raw(ws));
}

/// Sets the bound of each socket's unsent output, past which the room closes it with
/// [`SLOW_CONSUMER_CLOSE`] instead of sending it more.
pub fn configure(max_socket_buffer_bytes: usize) {
    let (code, reason) = SLOW_CONSUMER_CLOSE;
    configure_slow_consumers(max_socket_buffer_bytes as f64, code, reason);
}

/// Sends every frame still waiting for a batch now.
pub fn flush(state: &State) {
    flush_queue(state.as_raw());
}

/// Accepts a new socket into the room (tagged `batch` or `plain`), stores its attachment
/// and sends its welcome. A batched socket is kept out of the frames already waiting for a
/// batch: they predate its welcome.
pub fn accept(
    state: &State,
    batched: bool,
    attachment: &str,
    welcome: &str,
    subprotocol: Option<&str>,
) -> Result<Accepted, JsValue> {
    accept_socket(state.as_raw(), batched, attachment, welcome, subprotocol)
}
