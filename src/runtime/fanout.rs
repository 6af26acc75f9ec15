//! Fan-out of frames to a room's sockets, in single calls into JavaScript: a frame crosses
//! from Rust once and the loop runs next to the sockets. Sockets that opted into batched
//! delivery (tag `batch`) get the frames of one turn of the room's event loop coalesced into
//! one WebSocket message, a JSON array of the frames in order; the others get each frame alone.

use wasm_bindgen::prelude::*;
use worker::{State, WebSocket};

/// The hibernation tag of sockets that take batched frames.
pub const BATCH_TAG: &str = "batch";

// Why a timer: the runtime delivers the frames that are already waiting for the room before it
// fires a zero-delay timer, so the frames published in one burst leave together. The queue is
// bounded: past MAX_ENTRIES frames or MAX_BYTES it is flushed at once. A socket accepted while
// frames wait would get frames from before its welcome, so the room flushes before accepting.
#[wasm_bindgen(inline_js = "
const BATCH = 'batch';
const MAX_ENTRIES = 256;
const MAX_BYTES = 1 << 20;
const queues = new WeakMap();

function send(ws, text) {
  try { ws.send(text); return 1; } catch (_) { return 0; /* closing sockets refuse frames */ }
}

function pack(frames) {
  return frames.length === 1 ? frames[0] : '[' + frames.join(',') + ']';
}

function enqueue(state, entry) {
  let queue = queues.get(state);
  if (queue === undefined) {
    queue = { entries: [], bytes: 0 };
    queues.set(state, queue);
    setTimeout(() => flushQueue(state), 0);
  }
  queue.entries.push(entry);
  queue.bytes += entry.frame.length;
  if (queue.entries.length >= MAX_ENTRIES || queue.bytes >= MAX_BYTES) flushQueue(state);
}

export function flushQueue(state) {
  const queue = queues.get(state);
  if (queue === undefined) return;
  queues.delete(state);
  const entries = queue.entries;
  const own = new Set();
  for (const e of entries) {
    if (e.except !== undefined) own.add(e.except);
    if (e.only !== undefined) own.add(e.only);
  }
  let shared;
  for (const ws of state.getWebSockets(BATCH)) {
    if (own.has(ws)) {
      const mine = [];
      for (const e of entries) {
        if (e.only === undefined ? e.except !== ws : e.only === ws) mine.push(e.frame);
      }
      if (mine.length > 0) send(ws, pack(mine));
      continue;
    }
    if (shared === undefined) {
      const all = [];
      for (const e of entries) if (e.only === undefined) all.push(e.frame);
      shared = all.length > 0 ? pack(all) : null;
    }
    if (shared !== null) send(ws, shared);
  }
}

export function sendToAll(state, frame, except) {
  const batched = state.getWebSockets(BATCH);
  const skip = batched.length > 0 ? new Set(batched) : undefined;
  let sent = 0;
  for (const ws of state.getWebSockets()) {
    if (ws === except || (skip !== undefined && skip.has(ws))) continue;
    sent += send(ws, frame);
  }
  if (skip !== undefined) {
    enqueue(state, { frame, except, only: undefined });
    sent += batched.length - (skip.has(except) ? 1 : 0);
  }
  return sent;
}

export function sendToOne(state, ws, frame) {
  if (queues.has(state) && state.getTags(ws).includes(BATCH)) {
    enqueue(state, { frame, except: undefined, only: ws });
  } else {
    send(ws, frame);
  }
}
")]
extern "C" {
    #[wasm_bindgen(js_name = sendToAll)]
    fn send_to_all(state: &JsValue, frame: &str, except: &JsValue) -> u32;
    #[wasm_bindgen(js_name = sendToOne)]
    fn send_to_one(state: &JsValue, ws: &JsValue, frame: &str);
    #[wasm_bindgen(js_name = flushQueue)]
    fn flush_queue(state: &JsValue);
}

fn raw(ws: &WebSocket) -> JsValue {
    let raw: &web_sys::WebSocket = ws.as_ref();
    raw.into()
}

/// Sends `frame` to every socket of the room except `except`; returns how many take it (now,
/// or with their next batch).
pub fn send_to_room(state: &State, frame: &str, except: Option<&WebSocket>) -> u32 {
    let except = except.map_or(JsValue::UNDEFINED, raw);
    send_to_all(state.as_raw(), frame, &except)
}

/// Sends a frame meant for one socket (an ack) in order with the room's frames to that socket.
pub fn send_to_socket(state: &State, ws: &WebSocket, frame: &str) {
    send_to_one(state.as_raw(), &raw(ws), frame);
}

/// Sends every frame still waiting for a batch now.
pub fn flush(state: &State) {
    flush_queue(state.as_raw());
}
