//! The events queue's consumer (bound in `worker/bind.mjs` through `worker/queue.mjs`): one
//! room's batch POSTed, signed, to `EVENTS_URL`, and the room told when it is done with; on
//! the dead-letter queue, the room told that the batch was given up.

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use worker::wasm_bindgen_futures::{future_to_promise, JsFuture};
use worker::Env;

use super::settings::settings;
use super::{call_room, now_ms};
use crate::events::{self, BatchSettled, Next, QueuedBatch};
use crate::room_api::RoomRequest;

/// A dead letter whose room could not be told is tried again this much later.
const TELL_ROOM_RETRY_S: u32 = 10;

#[wasm_bindgen(module = "/worker/events.mjs")]
extern "C" {
    /// The status of a signed POST, 0 without an answer in time.
    #[wasm_bindgen(js_name = postEvents)]
    fn post_events(url: &str, body: &str, signature: &str, timeout_ms: u32) -> Promise;
}

/// Handles one queue message (`queue`: the queue's name; `attempts`: 1 on the first
/// delivery); resolves with what the queue does next ([`Next::to_json`]).
#[wasm_bindgen(js_name = deliverEvents)]
pub fn deliver_events(env: Env, queue: String, body: String, attempts: u32) -> Promise {
    future_to_promise(async move {
        let next = deliver(&env, &queue, &body, attempts).await;
        Ok(JsValue::from_str(&next.to_json()))
    })
}

async fn deliver(env: &Env, queue: &str, body: &str, attempts: u32) -> Next {
    let Ok(batch) = serde_json::from_str::<QueuedBatch>(body) else {
        worker::console_error!("an events queue message is not a batch: dropped");
        return Next::Ack;
    };
    if events::is_dead_letter_queue(queue) {
        worker::console_error!(
            "{} events of {} dead-lettered after every delivery failed",
            batch.events.len(),
            batch.room
        );
        return match tell_room(env, &batch, true).await {
            true => Next::Ack,
            false => Next::Retry {
                delay_s: TELL_ROOM_RETRY_S,
            },
        };
    }
    let settings = settings(env);
    let Some(config) = settings.events.as_ref() else {
        worker::console_error!(
            "events of {} queued, but events are off now: dropped",
            batch.room
        );
        return Next::Ack;
    };
    let delivery = batch.delivery_body();
    let signature = events::signature(&delivery, &config.target.secret, now_ms() / 1000);
    let answer = JsFuture::from(post_events(
        &config.target.url,
        &delivery,
        &signature,
        config.timeout_ms,
    ))
    .await;
    let status = answer
        .ok()
        .and_then(|status| status.as_f64())
        .filter(|status| *status > 0.0)
        .map(|status| status as u16);
    let next = events::after_delivery(status, attempts, config.max_attempts);
    match next {
        // Delivered: a room that cannot be told now sends the batch again later (at least once).
        Next::Ack => {
            tell_room(env, &batch, false).await;
        }
        _ => worker::console_log!(
            "events of {} not delivered (attempt {attempts}, status {})",
            batch.room,
            status.map_or("none".to_string(), |s| s.to_string())
        ),
    }
    next
}

/// Tells the batch's room that it is done with it; whether the room took it.
async fn tell_room(env: &Env, batch: &QueuedBatch, dropped: bool) -> bool {
    let request = RoomRequest::EventsSettled(BatchSettled {
        batch: batch.batch.clone(),
        dropped,
    });
    match call_room(env, &batch.room, &request).await {
        Ok(response) if response.status() == 200 => true,
        _ => {
            worker::console_error!("the room {} could not be told about its events", batch.room);
            false
        }
    }
}
