// Tests of worker/jwks_fetch.mjs against real HTTP servers on 127.0.0.1 (node:http): the
// answer it hands to Rust, and its bounds in time and size.
import { test } from "node:test";
import assert from "node:assert/strict";
import { serve as serveOn } from "./local_server.mjs";
import { fetchJwks } from "../jwks_fetch.mjs";

const JWKS = '{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}';
const CAP = 64 * 1024;

const serve = (handler) => serveOn(handler, "/.well-known/jwks.json");

test("a 200 gives the body and the Cache-Control header", async () => {
  const { url, stop } = await serve((req, res) => {
    assert.equal(req.headers.accept, "application/json");
    res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=300" });
    res.end(JWKS);
  });
  try {
    assert.deepEqual(await fetchJwks(url, 2000, CAP), { text: JWKS, cacheControl: "max-age=300" });
  } finally {
    await stop();
  }
});

test("without Cache-Control the header is null", async () => {
  const { url, stop } = await serve((req, res) => res.end(JWKS));
  try {
    assert.deepEqual(await fetchJwks(url, 2000, CAP), { text: JWKS, cacheControl: null });
  } finally {
    await stop();
  }
});

test("another status is a failure", async () => {
  const { url, stop } = await serve((req, res) => {
    res.writeHead(404);
    res.end("not here");
  });
  try {
    assert.deepEqual(await fetchJwks(url, 2000, CAP), { failed: "status 404" });
  } finally {
    await stop();
  }
});

test("a body over the cap is refused without reading it all", async () => {
  let written = 0;
  const { url, stop } = await serve((req, res) => {
    res.writeHead(200);
    const chunk = Buffer.alloc(16 * 1024, 0x78);
    const more = () => {
      // 10 MiB at most, written as the client reads.
      while (written < 10 * 1024 * 1024) {
        written += chunk.length;
        if (!res.write(chunk)) {
          res.once("drain", more);
          return;
        }
      }
      res.end();
    };
    more();
  });
  try {
    assert.deepEqual(await fetchJwks(url, 5000, CAP), { failed: "body larger than 65536 bytes" });
    assert.ok(written < 10 * 1024 * 1024, `the server wrote ${written} bytes`);
  } finally {
    await stop();
  }
});

test("a server that does not answer fails at the deadline", async () => {
  const { url, stop } = await serve(() => {});
  try {
    const start = Date.now();
    assert.deepEqual(await fetchJwks(url, 200, CAP), { failed: "no answer within 200 ms" });
    const elapsed = Date.now() - start;
    assert.ok(elapsed >= 150 && elapsed < 1500, `${elapsed} ms`);
  } finally {
    await stop();
  }
});

test("a body that trickles without end fails at the deadline", async () => {
  const { url, stop } = await serve((req, res) => {
    res.writeHead(200);
    res.write('{"keys":[');
    const timer = setInterval(() => res.write(" "), 20);
    res.on("close", () => clearInterval(timer));
  });
  try {
    const start = Date.now();
    assert.deepEqual(await fetchJwks(url, 300, CAP), { failed: "no answer within 300 ms" });
    assert.ok(Date.now() - start < 1500);
  } finally {
    await stop();
  }
});

test("a refused connection is a network error that does not name the URL", async () => {
  const { url, stop } = await serve(() => {});
  await stop();
  const withCredentials = url.replace("http://", "http://user:secret@");
  const outcome = await fetchJwks(url, 2000, CAP);
  assert.deepEqual(outcome, { failed: "network error" });
  const again = await fetchJwks(withCredentials, 2000, CAP);
  assert.ok(!JSON.stringify(again).includes("secret"));
});
