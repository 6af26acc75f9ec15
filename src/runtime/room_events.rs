//! The room's outgoing events (see [`crate::events`]): from the alarm, its next batch goes to
//! the events queue when none is there (or the one there went unanswered too long); the
//! consumer's word about a batch settles it and lets the next one go.

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use web_sys::Response;
use worker::wasm_bindgen_futures::JsFuture;
use worker::Env;

use super::room_object::Room;
use super::settings::settings;
use super::{http, internal, now_ms};
use crate::error::{RelayError, RelayResult};
use crate::events::{BatchSettled, InFlight, QueuedBatch, MAX_BATCH_EVENTS};
use crate::random_ids::random_id;

#[wasm_bindgen(module = "/worker/events.mjs")]
extern "C" {
    /// Puts one batch on the events queue (the `EVENTS` producer binding).
    #[wasm_bindgen(js_name = sendToQueue, catch)]
    fn send_to_queue(env: &Env, body: &str) -> Result<Promise, JsValue>;
}

/// What the alarm does about events.
enum Step {
    Nothing,
    /// A batch is in the queue: wait for word, or until then.
    Wait(i64),
    Send(QueuedBatch),
}

impl Room {
    /// From the alarm: the room's next batch of events to the queue, unless one is there.
    pub(super) async fn send_events(&self) -> RelayResult<()> {
        let settings = settings(&self.env);
        let Some(config) = settings.events.as_ref() else {
            return Ok(());
        };
        let now = now_ms();
        let step = self.machine(None, |m| {
            if !m.events_on() {
                return Ok(Step::Nothing);
            }
            let store = m.core().store();
            if let Some(in_flight) = store.events_in_flight()? {
                if in_flight.resend_at > now {
                    return Ok(Step::Wait(in_flight.resend_at));
                }
                worker::console_error!(
                    "events of {} unanswered since their batch was queued: sent again",
                    m.core().room()
                );
            }
            let rows = store.pending_events(MAX_BATCH_EVENTS)?;
            Ok(
                match QueuedBatch::from_rows(m.core().room(), random_id(now), &rows) {
                    Some(batch) => Step::Send(batch),
                    None => Step::Nothing,
                },
            )
        })?;
        let batch = match step {
            Step::Nothing => return Ok(()),
            Step::Wait(until) => {
                return self.run(None, None, |m, out| {
                    m.events_queued(until, out);
                    Ok(())
                })
            }
            Step::Send(batch) => batch,
        };
        let body = serde_json::to_string(&batch).map_err(|_| RelayError::internal())?;
        let queued = match send_to_queue(&self.env, &body) {
            Ok(promise) => JsFuture::from(promise).await.map(|_| ()),
            Err(err) => Err(err),
        };
        if let Err(err) = queued {
            self.run(None, None, |m, out| {
                m.events_not_queued(out);
                Ok(())
            })?;
            return Err(internal("events queue")(worker::Error::from(err)));
        }
        let in_flight = InFlight {
            batch: batch.batch,
            up_to: batch.up_to,
            resend_at: now_ms() + config.resend_after_ms(),
        };
        self.run(None, None, |m, out| {
            m.core().store().set_events_in_flight(&in_flight)?;
            m.events_queued(in_flight.resend_at, out);
            Ok(())
        })
    }

    /// The consumer is done with a batch (delivered, or dead-lettered): its events leave the
    /// outbox and the next batch goes at once. Word about any other batch changes nothing.
    pub(super) fn events_settled(
        &self,
        settled: BatchSettled,
        room: &str,
    ) -> RelayResult<Response> {
        self.run(Some(room), None, |m, out| {
            let store = m.core().store();
            let Some(in_flight) = store
                .events_in_flight()?
                .filter(|f| f.batch == settled.batch)
            else {
                return Ok(());
            };
            store.settle_events(in_flight.up_to)?;
            let remaining = store.event_count()?;
            m.events_settled(settled.dropped, remaining, out);
            Ok(())
        })?;
        http::json("{}".to_string(), 200).map_err(internal("events answer"))
    }
}
