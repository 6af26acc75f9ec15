// Reads a request body as UTF-8 text, but never more of it than a cap (bound from Rust in
// src/runtime/http.rs).
//
// `arrayBuffer()` or `text()` read a body whole before anything can look at its size, so a
// body sent without Content-Length (chunked) of any size was buffered and copied into wasm
// memory before the relay could refuse it. This reads the stream chunk by chunk and cancels it
// as soon as the bytes read pass the cap, so the runtime stops reading from the client and drops
// what it buffered; at most one chunk past the cap is ever held. The whole read is one call
// from Rust, however many chunks the body has.

/** Decodes strictly: invalid UTF-8 is refused, not replaced; a leading BOM is kept as sent. */
function strictDecoder() {
  return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
}

/** Cancels the rest of a body without waiting for it: the answer does not depend on it. */
function stopReading(reader) {
  reader.cancel().catch(() => {});
}

/**
 * Reads `request.body` (any object with a `body` that is null or a ReadableStream of
 * Uint8Array) up to `maxBytes` bytes. Resolves with `{ text }`, the body as a string (empty for
 * no body), or with `{ refused: "too_large" }` once more than `maxBytes` bytes arrive, or with
 * `{ refused: "not_utf8" }` when the bytes are not UTF-8; in both refusals the stream is
 * cancelled. Rejects only when the stream itself fails (e.g. the client went away).
 */
export async function readBodyText(request, maxBytes) {
  const body = request.body;
  if (body === null) {
    return { text: "" };
  }
  const reader = body.getReader();
  const decoder = strictDecoder();
  let total = 0;
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      break;
    }
    total += value.byteLength;
    if (total > maxBytes) {
      stopReading(reader);
      return { refused: "too_large" };
    }
    try {
      text += decoder.decode(value, { stream: true });
    } catch {
      stopReading(reader);
      return { refused: "not_utf8" };
    }
  }
  try {
    // Flushes a character left incomplete by the last chunk, which is invalid at the end.
    text += decoder.decode();
  } catch {
    return { refused: "not_utf8" };
  }
  return { text };
}
