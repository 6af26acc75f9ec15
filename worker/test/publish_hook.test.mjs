// Tests of worker/publish_hook.mjs: the signed POST against a real HTTP server on 127.0.0.1,
// bounded in time and in the size of the answer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { serve as serveOn } from "./local_server.mjs";
import { callPublishHook } from "../publish_hook.mjs";

const serve = (handler) => serveOn(handler, "/hook");

test("the call carries the body and the signature and gives status and answer", async () => {
  const seen = [];
  const { url, stop } = await serve((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      seen.push({ method: req.method, body, signature: req.headers["x-relay-signature"],
        type: req.headers["content-type"] });
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"action":"reject","reason":"no"}');
    });
  });
  try {
    const answer = await callPublishHook(url, '{"room":"r"}', "t=1,v1=ab", 2000, 1000);
    assert.deepEqual(answer, { status: 200, body: '{"action":"reject","reason":"no"}' });
    assert.deepEqual(seen, [{ method: "POST", body: '{"room":"r"}', signature: "t=1,v1=ab",
      type: "application/json" }]);
  } finally {
    await stop();
  }
});

test("no answer in time, a body sent too slowly, or no server give status 0", async () => {
  const { url, stop } = await serve((req, res) => {
    if (req.url === "/hook") return; // never answers
    res.writeHead(200);
    res.write('{"action":'); // and never ends
  });
  try {
    const started = Date.now();
    assert.deepEqual(await callPublishHook(url, "{}", "t=1,v1=ab", 200, 1000), { status: 0, body: "" });
    assert.deepEqual(await callPublishHook(`${url}/slow`, "{}", "t=1,v1=ab", 200, 1000),
      { status: 0, body: "" });
    assert.ok(Date.now() - started < 2000);
  } finally {
    await stop();
  }
  assert.equal((await callPublishHook(url, "{}", "t=1,v1=ab", 500, 1000)).status, 0);
});

test("an answer larger than the cap is no answer; a redirect is not followed", async () => {
  const { url, stop } = await serve((req, res) => {
    if (req.url === "/hook/moved") {
      res.writeHead(302, { location: "/hook" });
      return res.end();
    }
    res.writeHead(200);
    res.end("x".repeat(5000));
  });
  try {
    assert.deepEqual(await callPublishHook(url, "{}", "t=1,v1=ab", 2000, 1000), { status: 0, body: "" });
    assert.equal((await callPublishHook(`${url}/moved`, "{}", "t=1,v1=ab", 2000, 1000)).status, 302);
  } finally {
    await stop();
  }
});
