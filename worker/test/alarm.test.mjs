import { test } from "node:test";
import assert from "node:assert/strict";
import { setAlarmNoLaterThan } from "../alarm.mjs";

/** A Durable Object state whose storage keeps one alarm, and records the calls. */
function fakeState(initial = null, { failSet = false } = {}) {
  const calls = [];
  let alarm = initial;
  return {
    calls,
    get alarm() {
      return alarm;
    },
    storage: {
      getAlarm: async () => alarm,
      setAlarm: async (at) => {
        calls.push(at);
        if (failSet) throw new Error("storage is gone");
        alarm = at;
      },
    },
  };
}

test("an unset alarm is set", async () => {
  const state = fakeState();
  await setAlarmNoLaterThan(state, 5000);
  assert.equal(state.alarm, 5000);
});

test("an earlier time moves the alarm forward", async () => {
  const state = fakeState(9000);
  await setAlarmNoLaterThan(state, 5000);
  assert.equal(state.alarm, 5000);
});

test("a later time leaves the earlier alarm alone", async () => {
  const state = fakeState(5000);
  await setAlarmNoLaterThan(state, 3_600_000);
  assert.equal(state.alarm, 5000);
  assert.deepEqual(state.calls, []);
});

test("a storage failure is logged, not thrown", async () => {
  const state = fakeState(null, { failSet: true });
  const logged = [];
  const original = console.error;
  console.error = (line) => logged.push(line);
  try {
    await setAlarmNoLaterThan(state, 5000);
  } finally {
    console.error = original;
  }
  assert.equal(logged.length, 1);
  assert.match(logged[0], /could not set the alarm/);
});
