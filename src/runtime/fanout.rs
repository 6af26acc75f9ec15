//! Fan-out of one frame to a room's sockets in a single call into JavaScript: the frame crosses
//! from Rust once and the loop runs next to the sockets, instead of one wrapper, one identity
//! check and one string conversion per receiver.

use wasm_bindgen::prelude::*;
use worker::{State, WebSocket};

#[wasm_bindgen(inline_js = "
export function sendToAll(state, frame, except) {
  let sent = 0;
  for (const ws of state.getWebSockets()) {
    if (ws === except) continue;
    try { ws.send(frame); sent++; } catch (_) { /* closing sockets refuse frames */ }
  }
  return sent;
}
")]
extern "C" {
    #[wasm_bindgen(js_name = sendToAll)]
    fn send_to_all(state: &JsValue, frame: &str, except: &JsValue) -> u32;
}

/// Sends `frame` to every socket of the room except `except`; returns how many took it.
pub fn send_to_room(state: &State, frame: &str, except: Option<&WebSocket>) -> u32 {
    let except = except.map_or(JsValue::UNDEFINED, |ws| {
        let raw: &web_sys::WebSocket = ws.as_ref();
        raw.into()
    });
    send_to_all(state.as_raw(), frame, &except)
}
