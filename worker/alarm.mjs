// The room's one alarm (bound from Rust in src/runtime/room_object.rs): set without waiting,
// and only ever brought forward.
//
// A room that has just woken does not know when its alarm is set for, and a token's expiry
// may be an hour away while an archive write is due in seconds: setting the later time would
// push the earlier work back. So the alarm moves only when the new time is earlier.

/**
 * Makes `state`'s alarm fire no later than `at` (ms since the epoch). Returns the promise of
 * the storage calls, for tests; a failure is logged, never thrown.
 */
export function setAlarmNoLaterThan(state, at) {
  const storage = state.storage;
  return storage
    .getAlarm()
    .then((current) => {
      if (current === null || current === undefined || at < current) {
        return storage.setAlarm(at);
      }
    })
    .catch((err) => console.error("could not set the alarm: " + err));
}
