// Fetches the identity provider's JWKS for the relay's token verification (bound from Rust in
// src/runtime/jwks_fetch.rs), bounded in time and in size.
//
// One call from Rust does the whole fetch: the request, the status check and the capped body
// read all run under one deadline, so a server that answers slowly, or sends its body slowly or
// without end, costs at most `timeoutMs` and `maxBytes`. Failures come back as a short reason
// (never the URL, which may carry credentials), for the relay's log.

import { readBodyText } from "./body.mjs";

/** A promise that rejects when `signal` aborts; it never resolves. */
function whenAborted(signal) {
  return new Promise((_, reject) => {
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

async function fetchAndRead(url, signal, maxBytes) {
  const response = await fetch(url, { signal, headers: { accept: "application/json" } });
  if (response.status !== 200) {
    response.body?.cancel().catch(() => {});
    return { failed: `status ${response.status}` };
  }
  const read = await readBodyText(response, maxBytes);
  if (read.refused === "too_large") {
    return { failed: `body larger than ${maxBytes} bytes` };
  }
  if (read.refused) {
    return { failed: "body not UTF-8" };
  }
  return { text: read.text, cacheControl: response.headers.get("cache-control") };
}

/**
 * GETs `url` and resolves with `{ text, cacheControl }` (the body and the `Cache-Control`
 * header, or null) for a 200 whose body is at most `maxBytes` bytes of UTF-8, or with
 * `{ failed }` (a reason) otherwise, including when it takes longer than `timeoutMs`.
 * Never rejects.
 */
export async function fetchJwks(url, timeoutMs, maxBytes) {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    return await Promise.race([fetchAndRead(url, signal, maxBytes), whenAborted(signal)]);
  } catch {
    return { failed: signal.aborted ? `no answer within ${timeoutMs} ms` : "network error" };
  }
}
