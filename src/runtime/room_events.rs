//! The room's outgoing events on their way to the events queue: the room's next batch handed
//! to the queue's producer binding, and the consumer's word about a batch handed to the room
//! (the policy is [`crate::room_events`]).

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use web_sys::Response;
use worker::wasm_bindgen_futures::JsFuture;
use worker::Env;

use super::room_object::Room;
use super::settings::settings;
use super::{http, internal, now_ms};
use crate::error::{RelayError, RelayResult};
use crate::events::BatchSettled;
use crate::random_ids::random_id;

#[wasm_bindgen(module = "/worker/events.mjs")]
extern "C" {
    /// Puts one batch on the events queue (the `EVENTS` producer binding).
    #[wasm_bindgen(js_name = sendToQueue, catch)]
    fn send_to_queue(env: &Env, body: &str) -> Result<Promise, JsValue>;
}

impl Room {
    /// From the alarm: the room's next batch of events to the queue, unless one is there
    /// (see [`crate::room_events`]).
    pub(super) async fn send_events(&self) -> RelayResult<()> {
        let settings = settings(&self.env);
        let Some(config) = settings.events.as_ref() else {
            return Ok(());
        };
        let batch_id = random_id(now_ms());
        let Some(batch) = self.run(None, None, |m, out| m.next_events_batch(batch_id, out))? else {
            return Ok(());
        };
        let body = serde_json::to_string(&batch).map_err(|_| RelayError::internal())?;
        let queued = match send_to_queue(&self.env, &body) {
            Ok(promise) => JsFuture::from(promise).await.map(|_| ()),
            Err(err) => Err(err),
        };
        let resend_after_ms = queued.is_ok().then(|| config.resend_after_ms());
        self.run(None, None, |m, out| {
            m.events_batch_sent(&batch, resend_after_ms, out)
        })?;
        queued.map_err(|err| internal("events queue")(worker::Error::from(err)))
    }

    /// The consumer is done with a batch (delivered, or dead-lettered).
    pub(super) fn events_settled(
        &self,
        settled: BatchSettled,
        room: &str,
    ) -> RelayResult<Response> {
        self.run(Some(room), None, |m, out| {
            m.events_batch_settled(&settled, out)
        })?;
        http::json("{}".to_string(), 200).map_err(internal("events answer"))
    }
}
