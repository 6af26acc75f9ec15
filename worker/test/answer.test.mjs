import { test } from "node:test";
import assert from "node:assert/strict";
import { orInternalError, refuseOnSocket, withHeaders } from "../answer.mjs";

/** A response whose headers cannot change, as one that comes back from another object. */
function immutableResponse(body, init) {
  const response = new Response(body, init);
  const headers = response.headers;
  const refuse = () => {
    throw new TypeError("Can't modify immutable headers.");
  };
  headers.set = refuse;
  headers.append = refuse;
  headers.delete = refuse;
  return response;
}

test("headers are added to a copy that keeps status, headers and body", async () => {
  const original = immutableResponse('{"error":{"code":"rate_limited"}}', {
    status: 429,
    statusText: "Too Many Requests",
    headers: { "content-type": "application/json", "retry-after": "2" },
  });
  const answer = withHeaders(
    original,
    ["access-control-allow-origin", "vary"],
    ["https://app.example", "Origin"],
  );
  assert.notEqual(answer, original);
  assert.equal(answer.status, 429);
  assert.equal(answer.statusText, "Too Many Requests");
  assert.equal(answer.headers.get("content-type"), "application/json");
  assert.equal(answer.headers.get("retry-after"), "2");
  assert.equal(answer.headers.get("access-control-allow-origin"), "https://app.example");
  assert.equal(answer.headers.get("vary"), "Origin");
  assert.equal(await answer.text(), '{"error":{"code":"rate_limited"}}');
});

test("a response without a body stays without one", async () => {
  const answer = withHeaders(new Response(null, { status: 204 }), ["allow"], ["GET"]);
  assert.equal(answer.status, 204);
  assert.equal(answer.body, null);
  assert.equal(answer.headers.get("allow"), "GET");
});

test("a 101 is returned untouched", () => {
  const upgrade = { status: 101, headers: new Headers() };
  assert.equal(withHeaders(upgrade, ["vary"], ["Origin"]), upgrade);
  assert.equal(upgrade.headers.get("vary"), null);
});

/** A fake of the runtime's WebSocketPair and Response, recording what happens to the pair. */
function fakeRuntime() {
  const events = [];
  class FakeSocket {
    constructor(end) {
      this.end = end;
    }
    accept() {
      events.push([this.end, "accept"]);
    }
    close(code, reason) {
      events.push([this.end, "close", code, reason]);
    }
    send(data) {
      events.push([this.end, "send", data]);
    }
  }
  class WebSocketPair {
    constructor() {
      this[0] = new FakeSocket("client");
      this[1] = new FakeSocket("server");
    }
  }
  class FakeResponse {
    constructor(body, init) {
      this.body = body;
      this.init = init;
    }
  }
  return { runtime: { WebSocketPair, Response: FakeResponse }, events };
}

test("a refusal is a 101 with the protocol whose server end is closed at once", () => {
  const { runtime, events } = fakeRuntime();
  const answer = refuseOnSocket(4003, "origin not allowed", "relay.v1", runtime);
  assert.deepEqual(events, [
    ["server", "accept"],
    ["server", "close", 4003, "origin not allowed"],
  ]);
  assert.equal(answer.body, null);
  assert.equal(answer.init.status, 101);
  assert.equal(answer.init.webSocket.end, "client");
  assert.deepEqual(answer.init.headers, { "sec-websocket-protocol": "relay.v1" });
});

test("a room's answer passes through untouched", async () => {
  const { runtime } = fakeRuntime();
  const upgrade = { status: 101 };
  const answer = orInternalError(
    Promise.resolve(upgrade),
    "{}",
    "a/b",
    "no-store",
    undefined,
    1011,
    "internal error",
    runtime,
  );
  assert.equal(await answer, upgrade);
});

/** Runs `work` with console.error captured, restoring it afterwards. */
async function capturingErrors(work) {
  const logged = [];
  const original = console.error;
  console.error = (line) => logged.push(line);
  try {
    return { result: await work(), logged };
  } finally {
    console.error = original;
  }
}

test("a failed room call is the relay's 500, logged", async () => {
  const { result, logged } = await capturingErrors(() =>
    orInternalError(
      Promise.reject(new Error("room gone")),
      '{"error":{}}',
      "application/json",
      "no-store",
      undefined,
      1011,
      "internal error",
    ),
  );
  assert.equal(result.status, 500);
  assert.equal(result.headers.get("content-type"), "application/json");
  assert.equal(result.headers.get("cache-control"), "no-store");
  assert.equal(await result.text(), '{"error":{}}');
  assert.deepEqual(logged, ["object fetch: Error: room gone"]);
});

test("with the subprotocol offered, a failed room call is a 1011 close", async () => {
  const { runtime, events } = fakeRuntime();
  const { result } = await capturingErrors(() =>
    orInternalError(
      Promise.reject(new Error("room gone")),
      "{}",
      "a/b",
      "no-store",
      "relay.v1",
      1011,
      "internal error",
      runtime,
    ),
  );
  assert.equal(result.init.status, 101);
  assert.deepEqual(result.init.headers, { "sec-websocket-protocol": "relay.v1" });
  assert.deepEqual(events, [
    ["server", "accept"],
    ["server", "close", 1011, "internal error"],
  ]);
});
