import { test } from "node:test";
import assert from "node:assert/strict";
import { readBodyText } from "../body.mjs";

const KIB = 1024;
const CAP = 256 * KIB;

/**
 * A request whose body is a real ReadableStream that yields `chunks` (Uint8Arrays) one per
 * pull, counting the pulls and the cancellations, so a test can see how far the reader went.
 */
function streamedRequest(chunks) {
  const seen = { pulls: 0, cancels: 0 };
  let next = 0;
  const body = new ReadableStream({
    pull(controller) {
      seen.pulls++;
      if (next < chunks.length) {
        controller.enqueue(chunks[next++]);
      } else {
        controller.close();
      }
    },
    cancel() {
      seen.cancels++;
    },
  });
  const request = new Request("http://relay.test/v1/broadcast", {
    method: "POST",
    body,
    duplex: "half",
  });
  return { request, seen };
}

/** `total` bytes of ASCII `x`, cut into chunks of `size` bytes. */
function asciiChunks(total, size) {
  const chunks = [];
  for (let offset = 0; offset < total; offset += size) {
    chunks.push(new Uint8Array(Math.min(size, total - offset)).fill(0x78));
  }
  return chunks;
}

test("a body under the cap is read whole as text", async () => {
  const { request, seen } = streamedRequest([new TextEncoder().encode('{"rooms":["a"]}')]);
  assert.deepEqual(await readBodyText(request, CAP), { text: '{"rooms":["a"]}' });
  assert.equal(seen.cancels, 0);
});

test("a body of exactly the cap is accepted", async () => {
  const { request, seen } = streamedRequest(asciiChunks(CAP, 16 * KIB));
  const read = await readBodyText(request, CAP);
  assert.equal(read.refused, undefined);
  assert.equal(read.text.length, CAP);
  assert.equal(read.text, "x".repeat(CAP));
  assert.equal(seen.cancels, 0);
});

test("one byte over the cap is refused as too large and the stream cancelled", async () => {
  const { request, seen } = streamedRequest(asciiChunks(CAP + 1, 16 * KIB));
  assert.deepEqual(await readBodyText(request, CAP), { refused: "too_large" });
  assert.equal(seen.cancels, 1);
});

test("a 10 MiB body stops being read just past the cap", async () => {
  const chunkSize = 16 * KIB;
  const chunks = asciiChunks(10 * KIB * KIB, chunkSize);
  assert.equal(chunks.length, 640);
  const { request, seen } = streamedRequest(chunks);
  assert.deepEqual(await readBodyText(request, CAP), { refused: "too_large" });
  // 17 chunks pass the cap; the stream may pull one chunk ahead of the reader, no more.
  const chunksToPassCap = CAP / chunkSize + 1;
  assert.ok(
    seen.pulls >= chunksToPassCap && seen.pulls <= chunksToPassCap + 1,
    `pulled ${seen.pulls} of ${chunks.length} chunks`,
  );
  assert.equal(seen.cancels, 1);
});

test("a request without a body is an empty string", async () => {
  const request = new Request("http://relay.test/v1/broadcast", { method: "POST" });
  assert.equal(request.body, null);
  assert.deepEqual(await readBodyText(request, CAP), { text: "" });
});

test("an empty streamed body is an empty string", async () => {
  const { request } = streamedRequest([]);
  assert.deepEqual(await readBodyText(request, CAP), { text: "" });
});

test("invalid UTF-8 is refused, not replaced, and the stream cancelled", async () => {
  const { request, seen } = streamedRequest([
    new TextEncoder().encode('{"a":"'),
    new Uint8Array([0xff, 0xfe]),
    new TextEncoder().encode('"}'),
  ]);
  assert.deepEqual(await readBodyText(request, CAP), { refused: "not_utf8" });
  assert.equal(seen.cancels, 1);
});

test("a character cut short at the end of the body is refused as not UTF-8", async () => {
  const euro = new TextEncoder().encode("€");
  const { request } = streamedRequest([new TextEncoder().encode("price "), euro.subarray(0, 2)]);
  assert.deepEqual(await readBodyText(request, CAP), { refused: "not_utf8" });
});

test("multi-byte characters split across chunks are decoded whole", async () => {
  const text = "Саратов € 😀 done";
  const bytes = new TextEncoder().encode(text);
  // One byte per chunk splits every multi-byte character across chunks.
  const chunks = Array.from(bytes, (byte) => new Uint8Array([byte]));
  const { request } = streamedRequest(chunks);
  assert.deepEqual(await readBodyText(request, CAP), { text });
});

test("a leading byte order mark is kept as sent", async () => {
  const { request } = streamedRequest([new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])]);
  assert.deepEqual(await readBodyText(request, CAP), { text: "\uFEFF{}" });
});

test("the cap counts bytes, not characters", async () => {
  // 3 bytes per character: 4 characters are 12 bytes, over a cap of 10.
  const { request } = streamedRequest([new TextEncoder().encode("€€€€")]);
  assert.deepEqual(await readBodyText(request, 10), { refused: "too_large" });
});

test("a stream that fails rejects", async () => {
  const body = new ReadableStream({
    pull(controller) {
      controller.error(new Error("client went away"));
    },
  });
  const request = { body };
  await assert.rejects(readBodyText(request, CAP), /client went away/);
});
