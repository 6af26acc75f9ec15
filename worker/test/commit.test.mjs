import { test } from "node:test";
import assert from "node:assert/strict";
import { whenDurable } from "../commit.mjs";

/** A storage whose sync() settles when the test says so. */
function fakeStorage() {
  const storage = { calls: 0 };
  storage.settled = new Promise((resolve, reject) => {
    storage.resolve = resolve;
    storage.reject = reject;
  });
  storage.sync = () => {
    storage.calls += 1;
    return storage.settled;
  };
  return storage;
}

test("resolves durable once sync() does, before the bound", async () => {
  const storage = fakeStorage();
  const started = Date.now();
  const waiting = whenDurable(storage, 10_000);
  storage.resolve();
  assert.equal(await waiting, "durable");
  assert.equal(storage.calls, 1);
  // The bound's timer is cleared: this resolved long before it.
  assert.ok(Date.now() - started < 1000);
});

test("a storage that never answers is overdue after the bound", async () => {
  const storage = fakeStorage();
  const started = Date.now();
  assert.equal(await whenDurable(storage, 30), "overdue");
  assert.ok(Date.now() - started >= 25);
});

test("a failed sync() resolves failed, logged, never rejects", async (t) => {
  const logged = [];
  t.mock.method(console, "error", (line) => logged.push(line));
  const storage = fakeStorage();
  const waiting = whenDurable(storage, 10_000);
  storage.reject(new Error("broken"));
  assert.equal(await waiting, "failed");
  assert.match(logged[0], /broken/);

  const throwing = { sync: () => { throw new Error("gone"); } };
  assert.equal(await whenDurable(throwing, 10_000), "failed");
  assert.match(logged[1], /gone/);
});
