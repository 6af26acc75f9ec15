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
