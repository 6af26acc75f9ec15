// Tests of worker/queue.mjs: the consumer's handling of a queue batch, with stand-ins for the
// queue's messages and the dead-letter queue's binding.
import { test } from "node:test";
import assert from "node:assert/strict";
import { settleEventBatch } from "../queue.mjs";

function message(body, attempts) {
  const m = { body, attempts, acked: 0, retried: [] };
  m.ack = () => m.acked++;
  m.retry = (options) => m.retried.push(options);
  return m;
}

test("each message is acked, retried with its delay, or sent to the dead-letter queue", async (t) => {
  t.mock.method(console, "error", () => {});
  const dead = [];
  const env = { EVENTS_DLQ: { send: async (body, options) => dead.push([body, options]) } };
  const messages = [message("a", 1), message("b", 2), message("c", 3), message("d", 1), message("e", 1)];
  const answers = {
    a: '{"action":"ack"}',
    b: '{"action":"retry","delaySeconds":2}',
    c: '{"action":"dead_letter"}',
    d: '{"action":"something else"}',
  };
  const calls = [];
  await settleEventBatch({ queue: "q", messages }, env, async (queue, body, attempts) => {
    calls.push([queue, body, attempts]);
    if (body === "e") throw new Error("boom");
    return answers[body];
  }, 7);
  assert.deepEqual(calls.map((c) => c.join(":")), ["q:a:1", "q:b:2", "q:c:3", "q:d:1", "q:e:1"]);
  const [a, b, c, d, e] = messages;
  assert.deepEqual([a.acked, a.retried], [1, []]);
  assert.deepEqual([b.acked, b.retried], [0, [{ delaySeconds: 2 }]]);
  assert.deepEqual([c.acked, c.retried], [1, []]);
  assert.deepEqual(dead, [["c", { contentType: "text" }]]);
  assert.deepEqual([d.acked, d.retried], [0, [{ delaySeconds: 7 }]]);
  assert.deepEqual([e.acked, e.retried], [0, [{ delaySeconds: 7 }]]);
});
