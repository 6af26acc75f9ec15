// Tests of worker/events.mjs: the signed POST against a real HTTP server on 127.0.0.1, and the
// send to the queue binding.
import { test } from "node:test";
import assert from "node:assert/strict";
import { serve as serveOn } from "./local_server.mjs";
import { postEvents, sendToQueue } from "../events.mjs";

const serve = (handler) => serveOn(handler, "/events");

test("a POST carries the body and the signature and gives the status", async () => {
  const seen = [];
  const { url, stop } = await serve((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      seen.push({ method: req.method, body, signature: req.headers["x-relay-signature"],
        type: req.headers["content-type"] });
      res.writeHead(seen.length === 1 ? 503 : 204);
      res.end();
    });
  });
  try {
    assert.equal(await postEvents(url, '{"events":[]}', "t=1,v1=ab", 2000), 503);
    assert.equal(await postEvents(url, '{"events":[1]}', "t=2,v1=cd", 2000), 204);
    assert.deepEqual(seen[1], { method: "POST", body: '{"events":[1]}', signature: "t=2,v1=cd",
      type: "application/json" });
  } finally {
    await stop();
  }
});

test("no answer in time, or no server, gives 0", async () => {
  const { url, stop } = await serve(() => {});
  try {
    const started = Date.now();
    assert.equal(await postEvents(url, "{}", "t=1,v1=ab", 200), 0);
    assert.ok(Date.now() - started < 2000);
  } finally {
    await stop();
  }
  assert.equal(await postEvents(url, "{}", "t=1,v1=ab", 500), 0);
});

test("a batch goes to the EVENTS binding as text", async () => {
  const sent = [];
  await sendToQueue({ EVENTS: { send: async (...args) => sent.push(args) } }, '{"room":"r"}');
  assert.deepEqual(sent, [['{"room":"r"}', { contentType: "text" }]]);
});
