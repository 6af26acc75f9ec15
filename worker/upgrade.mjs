// The WebSocket connect from the Worker to a room's Durable Object, in one call from Rust
// (bound in src/runtime/mod.rs): a connect storm makes one per connection, and building the
// stub, the headers and the request through web-sys would take a crossing for each.

/**
 * Asks the object `name` of namespace `env[binding]` for a WebSocket upgrade of `url`, with
 * `values[i]` as header `names[i]` besides `upgrade: websocket`. The answer is the stub's own
 * Promise of the object's response (a 101 carrying the socket, or its refusal), passed on
 * untouched.
 */
export function upgradeObject(env, binding, name, url, names, values) {
  const headers = { upgrade: "websocket" };
  for (let i = 0; i < names.length; i++) {
    headers[names[i]] = values[i];
  }
  return env[binding].getByName(name).fetch(url, { headers });
}

// The room's answer to a connect it places on a shard carries this header (the shard's number)
// and the placement as its body; the upgrade then goes to the shard object `<room>#<n>` with
// both as headers (src/room_api.rs names them too).
const SHARD_HEADER = "x-relay-shard";
const PLACEMENT_HEADER = "x-relay-placement";

/**
 * A viewer's connect: to the room `name` first; when the room places it on a shard (past
 * SHARD_VIEWERS sockets), on to that shard. Resolves to the 101 (or refusal) of whichever
 * object took it.
 */
export async function upgradeViaRoom(env, name, url, names, values) {
  const answer = await upgradeObject(env, "ROOMS", name, url, names, values);
  const shard = answer.status === 200 ? answer.headers.get(SHARD_HEADER) : null;
  if (shard === null) return answer;
  const placement = await answer.text();
  return upgradeObject(env, "SHARDS", `${name}#${shard}`, url, [...names, SHARD_HEADER, PLACEMENT_HEADER],
    [...values, shard, placement]);
}
