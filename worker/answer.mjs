// Finishing touches on the relay's answers, each one call from Rust (bound in
// src/runtime/http.rs) where building them through web-sys would take a call per header:
// headers added to any response (the CORS headers), a WebSocket refusal a browser can read,
// and the relay's own answer when a room's answer to an upgrade fails.

/**
 * `response` with `values[i]` set as header `names[i]`. A response from another object (a
 * room) has immutable headers, so the answer is a new response around the same body stream:
 * nothing is read or buffered. A 101 is returned as it is: it carries a WebSocket, and CORS
 * does not apply to upgrades.
 */
export function withHeaders(response, names, values) {
  if (response.status === 101) {
    return response;
  }
  const answer = new Response(response.body, response);
  for (let i = 0; i < names.length; i++) {
    answer.headers.set(names[i], values[i]);
  }
  return answer;
}

/**
 * The answer to a WebSocket upgrade the relay refuses, for a client that offered `protocol`:
 * a 101 that selects it, with a socket already closed with `code` and `reason` and nothing
 * else sent. A browser reads those in its `close` event, where an HTTP error would reach it as
 * a bare 1006. `runtime` supplies `WebSocketPair` and `Response` (the globals; tests pass fakes,
 * as outside the Workers runtime neither a pair nor a 101 response can be made).
 */
export function refuseOnSocket(code, reason, protocol, runtime = globalThis) {
  const pair = new runtime.WebSocketPair();
  const client = pair[0];
  const server = pair[1];
  server.accept();
  server.close(code, reason);
  return new runtime.Response(null, {
    status: 101,
    webSocket: client,
    headers: { "sec-websocket-protocol": protocol },
  });
}

/**
 * The Promise of a room's answer to an upgrade, or, when that call fails (logged), of the
 * relay's internal error: `body` as a 500 with `contentType` and `cacheControl`, or, for an
 * upgrade that offered `protocol` (otherwise undefined), a refusal on the socket with
 * `closeCode` and `reason`.
 */
export function orInternalError(
  answer,
  body,
  contentType,
  cacheControl,
  protocol,
  closeCode,
  reason,
  runtime = globalThis,
) {
  return answer.catch((err) => {
    console.error("object fetch: " + err);
    if (protocol !== undefined) {
      return refuseOnSocket(closeCode, reason, protocol, runtime);
    }
    const headers = { "content-type": contentType, "cache-control": cacheControl };
    return new runtime.Response(body, { status: 500, headers });
  });
}
