// Outgoing events, bound from Rust (src/runtime/room_events.rs, src/runtime/events_delivery.rs):
// the room's send of a batch to the events queue, and the signed POST of a batch to the
// backend. The consumer's side of the queue is worker/queue.mjs.

/** Puts one batch (a JSON string) on the events queue (the `EVENTS` producer binding). */
export function sendToQueue(env, body) {
  return env.EVENTS.send(body, { contentType: "text" });
}

/**
 * POSTs `body` to `url` with the signature header; resolves with the status, or 0 when there
 * was no answer within `timeoutMs` or no connection. Never rejects.
 */
export async function postEvents(url, body, signature, timeoutMs) {
  try {
    const response = await fetch(url, {
      method: "POST",
      body,
      headers: { "content-type": "application/json", "x-relay-signature": signature },
      signal: AbortSignal.timeout(timeoutMs),
    });
    response.body?.cancel().catch(() => {});
    return response.status;
  } catch {
    return 0;
  }
}
