// The Worker's queue handler (bound in bind.mjs): the consumer of the events queue and of its
// dead-letter queue. The decisions are Rust's (src/events.rs: what a delivery's status means,
// the backoff, when a batch is dead-lettered); this module carries them out on the queue's
// messages.

/**
 * Handles one batch of the events queue or of its dead-letter queue: each message (one room's
 * batch of events) goes to `deliver(queueName, body, attempts)`, whose answer (JSON) says what
 * to do with it: `ack`, `retry` after `delaySeconds`, or `dead_letter` (sent on to the
 * `EVENTS_DLQ` producer binding, then acked). Messages of different rooms are independent, so
 * they are delivered side by side. A `deliver` that fails is retried after `fallbackDelay` s.
 */
export async function settleEventBatch(batch, env, deliver, fallbackDelay = 10) {
  await Promise.all(
    batch.messages.map(async (message) => {
      try {
        const next = JSON.parse(await deliver(batch.queue, String(message.body), message.attempts));
        if (next.action === "ack") {
          message.ack();
        } else if (next.action === "retry") {
          message.retry({ delaySeconds: next.delaySeconds });
        } else if (next.action === "dead_letter") {
          await env.EVENTS_DLQ.send(message.body, { contentType: "text" });
          message.ack();
        } else {
          message.retry({ delaySeconds: fallbackDelay });
        }
      } catch (error) {
        console.error("events delivery failed:", String(error));
        message.retry({ delaySeconds: fallbackDelay });
      }
    }),
  );
}
