import { test } from "node:test";
import assert from "node:assert/strict";
import { upgradeObject } from "../upgrade.mjs";

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
