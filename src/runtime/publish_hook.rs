//! The before-publish hook's call (`worker/publish_hook.mjs`): the room's [`HookCall`] signed
//! with `PUBLISH_HOOK_SECRET` and POSTed to `PUBLISH_HOOK_URL` within `PUBLISH_HOOK_TIMEOUT_MS`;
//! the answer goes back to the room's machine, which decides (see [`crate::publish_hook`]).

use js_sys::{Promise, Reflect};
use wasm_bindgen::prelude::*;
use worker::wasm_bindgen_futures::{spawn_local, JsFuture};
use worker::{Env, WebSocket};

use super::now_ms;
use super::room_object::Room;
use super::settings::settings;
use crate::error::RelayResult;
use crate::protocol::Receipt;
use crate::room_machine::{HookCall, HookReply};
use crate::webhook;

/// `WebSocket.readyState` of an open socket.
const OPEN: u16 = 1;

#[wasm_bindgen(module = "/worker/publish_hook.mjs")]
extern "C" {
    /// `{status, body}` of a signed POST; status 0 without a complete answer in time.
    #[wasm_bindgen(js_name = callPublishHook)]
    fn call_publish_hook(
        url: &str,
        body: &str,
        signature: &str,
        timeout_ms: u32,
        max_bytes: u32,
    ) -> Promise;
}

/// Asks the hook. Without a usable target (the log said why at startup) there is no answer,
/// and the room's fail mode decides.
pub(super) async fn ask(env: &Env, call: &HookCall) -> HookReply {
    let settings = settings(env);
    let Some(config) = settings.publish_hook.as_ref() else {
        return HookReply::default();
    };
    let Some(target) = config.target.as_ref() else {
        return HookReply::default();
    };
    let signature = webhook::sign(
        call.body.as_bytes(),
        target.secret.as_bytes(),
        now_ms() / 1000,
    );
    let max_bytes = u32::try_from(call.max_answer_bytes).unwrap_or(u32::MAX);
    let promise = call_publish_hook(
        &target.url,
        &call.body,
        &signature,
        config.timeout_ms,
        max_bytes,
    );
    let Ok(answer) = JsFuture::from(promise).await else {
        return HookReply::default();
    };
    let field = |name: &str| Reflect::get(&answer, &JsValue::from_str(name)).ok();
    let status = field("status")
        .and_then(|status| status.as_f64())
        .filter(|status| (1.0..=999.0).contains(status))
        .map(|status| status as u16);
    let body = field("body")
        .and_then(|body| body.as_string())
        .unwrap_or_default();
    HookReply { status, body }
}

impl Room {
    /// Calls the hook for a socket's publish or edit; the answer is the machine's next event
    /// for that socket. A socket that closed meanwhile gets nothing (its close dropped it).
    pub(super) fn call_hook_for_socket(&self, ws: WebSocket, call: HookCall) {
        let Some(room) = self.me.upgrade() else {
            return;
        };
        // The pending fetch keeps the object awake until the answer or the timeout.
        spawn_local(async move {
            let reply = ask(&room.env, &call).await;
            if ws.as_ref().ready_state() != OPEN {
                return;
            }
            let _ = room.run(None, Some(&ws), |m, out| {
                m.on_hook_answer(call.ticket, reply, out);
                Ok(())
            });
        });
    }

    /// Calls the hook for an HTTP publish or edit and settles it with the answer.
    pub(super) async fn hooked_http_publish(&self, call: HookCall) -> RelayResult<Receipt> {
        let reply = ask(&self.env, &call).await;
        self.run(None, None, |m, out| {
            m.on_http_hook_answer(call.ticket, reply, out)
        })
    }
}
