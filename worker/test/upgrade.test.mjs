import { test } from "node:test";
import assert from "node:assert/strict";
import { upgradeObject, upgradeViaRoom } from "../upgrade.mjs";

/** A namespace whose stubs record what they are asked and answer with `answer`. */
function fakeNamespace(answer) {
  const calls = [];
  return {
    calls,
    getByName(name) {
      return {
        fetch(url, init) {
          calls.push({ name, url, init });
          return answer;
        },
      };
    },
  };
}

test("the upgrade goes to the named object with its headers and upgrade: websocket", () => {
  const rooms = fakeNamespace(Promise.resolve("101"));
  const env = { ROOMS: rooms, DIRECTORY: fakeNamespace(null) };
  upgradeObject(
    env,
    "ROOMS",
    "city:Саратов",
    "https://room/connect?since=4&batch=1",
    ["x-relay-caller", "x-relay-room"],
    ['{"user":{"id":"a"},"exp":1}', "city:%D0%A1"],
  );
  assert.deepEqual(rooms.calls, [
    {
      name: "city:Саратов",
      url: "https://room/connect?since=4&batch=1",
      init: {
        headers: {
          upgrade: "websocket",
          "x-relay-caller": '{"user":{"id":"a"},"exp":1}',
          "x-relay-room": "city:%D0%A1",
        },
      },
    },
  ]);
  assert.equal(env.DIRECTORY.calls.length, 0);
});

test("the answer is the stub's own Promise, not a wrapper", () => {
  const answer = Promise.resolve("101");
  const env = { ROOMS: fakeNamespace(answer) };
  assert.equal(upgradeObject(env, "ROOMS", "r", "https://room/connect", [], []), answer);
});

test("a stub that throws makes the call throw (Rust gets the error)", () => {
  const env = {
    ROOMS: {
      getByName() {
        throw new TypeError("name too long");
      },
    },
  };
  assert.throws(() => upgradeObject(env, "ROOMS", "r", "https://room/connect", [], []), TypeError);
});

test("a connect the room places on a shard goes on to that shard with the placement", async () => {
  const placed = {
    status: 200,
    headers: new Map([["x-relay-shard", "3"]]),
    text: async () => '{"conn_id":"c","welcome":"w"}',
  };
  const rooms = fakeNamespace(Promise.resolve(placed));
  const shards = fakeNamespace(Promise.resolve("101 from the shard"));
  const env = { ROOMS: rooms, SHARDS: shards };
  const answer = await upgradeViaRoom(env, "r", "https://room/connect?since=4", ["x-relay-room"], ["r"]);
  assert.equal(answer, "101 from the shard");
  assert.deepEqual(shards.calls, [
    {
      name: "r#3",
      url: "https://room/connect?since=4",
      init: {
        headers: {
          upgrade: "websocket",
          "x-relay-room": "r",
          "x-relay-shard": "3",
          "x-relay-placement": '{"conn_id":"c","welcome":"w"}',
        },
      },
    },
  ]);
});

test("a connect the room takes itself (or refuses) is the room's answer", async () => {
  for (const status of [101, 403, 429]) {
    const own = { status, headers: new Map() };
    const env = { ROOMS: fakeNamespace(Promise.resolve(own)), SHARDS: fakeNamespace(null) };
    assert.equal(await upgradeViaRoom(env, "r", "https://room/connect", [], []), own);
    assert.equal(env.SHARDS.calls.length, 0);
  }
});
