// The wait of a room's group commit (bound from Rust in src/runtime/room_object.rs): until the
// object's writes so far are durable, with a bound, so that frames queued behind a commit
// never wait on a storage that does not answer.

/**
 * Resolves when `storage.sync()` does ("durable"), when it fails ("failed", logged: the
 * object's storage is then broken and the runtime resets the object), or after `maxWaitMs`
 * ("overdue"), whichever comes first. Never rejects; leaves no timer behind.
 */
export function whenDurable(storage, maxWaitMs) {
  let timer;
  const overdue = new Promise((resolve) => {
    timer = setTimeout(() => resolve("overdue"), maxWaitMs);
  });
  let synced;
  try {
    synced = Promise.resolve(storage.sync()).then(
      () => "durable",
      (err) => {
        console.error("storage.sync() failed: " + err);
        return "failed";
      },
    );
  } catch (err) {
    console.error("storage.sync() failed: " + err);
    synced = Promise.resolve("failed");
  }
  return Promise.race([synced, overdue]).finally(() => clearTimeout(timer));
}
