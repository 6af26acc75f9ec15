// The before-publish hook's call, bound from Rust (src/runtime/publish_hook.rs): one signed POST
// whose request, status and capped body read all run under one deadline, so a backend that
// answers slowly, or sends its body slowly or without end, costs the waiting publish at most
// `timeoutMs` and `maxBytes`.

import { readBodyText } from "./body.mjs";

/** A promise that rejects when `signal` aborts; it never resolves. */
function whenAborted(signal) {
  return new Promise((_, reject) => {
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

async function postAndRead(url, body, signature, signal, maxBytes) {
  const response = await fetch(url, {
    method: "POST",
    body,
    headers: { "content-type": "application/json", "x-relay-signature": signature },
    // A redirect is no answer: the hook must answer itself (and stay on https).
    redirect: "manual",
    signal,
  });
  const read = await readBodyText(response, maxBytes);
  return read.refused ? { status: 0, body: "" } : { status: response.status, body: read.text };
}

/**
 * POSTs `body` to `url` with the signature header; resolves with `{ status, body }`, where
 * `status` is 0 when there was no complete answer within `timeoutMs`, no connection, or a body
 * larger than `maxBytes` bytes or not UTF-8. Never rejects.
 */
export async function callPublishHook(url, body, signature, timeoutMs, maxBytes) {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    return await Promise.race([
      postAndRead(url, body, signature, signal, maxBytes),
      whenAborted(signal),
    ]);
  } catch {
    return { status: 0, body: "" };
  }
}
