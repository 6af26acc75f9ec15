// verifyEvents of the built package: deliveries signed here independently with node:crypto (the
// relay's "<t>.<raw body>" v1 scheme) verify and parse; a missing, malformed, wrong or stale
// signature, an oversized or malformed body are refused with the status to answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { verifyEvents, RelayError } from '../dist/index.js';

const SECRET = 'events-secret';
const T = 1_700_000_000;
const at = (seconds) => new Date(seconds * 1000);
const sign = (body, { secret = SECRET, t = T } = {}) =>
  `t=${t},v1=${createHmac('sha256', secret).update(`${t}.`).update(body).digest('hex')}`;

const EVENTS = [
  {
    id: 'ev-1',
    type: 'message.created',
    room: 'support:7',
    seq: 12,
    ts: '2023-11-14T22:13:20.000Z',
    user: { id: 'ann', name: 'Ann' },
    message: {
      type: 'message',
      room: 'support:7',
      seq: 12,
      id: 'm-12',
      event: 'message',
      data: { text: 'Привет, é€😀' },
      from: { id: 'ann', name: 'Ann' },
      cid: 'c1',
      ts: '2023-11-14T22:13:20.000Z',
    },
  },
  { id: 'ev-2', type: 'presence.left', room: 'support:7', ts: '2023-11-14T22:13:21.000Z', user: { id: 'max' }, last_seen: '2023-11-14T22:13:00.000Z' },
  { id: 'ev-3', type: 'read.updated', room: 'support:7', seq: 12, ts: '2023-11-14T22:13:22.000Z', user: { id: 'max', role: 'manager' } },
];
const BODY = JSON.stringify({ events: EVENTS });

/** Expects `promise` to reject with a RelayError of this code and status. */
async function refused(promise, code, status) {
  await assert.rejects(promise, (error) => {
    assert.ok(RelayError.is(error), String(error));
    assert.equal(error.code, code, error.message);
    assert.equal(error.status, status);
    return true;
  });
}

test('a delivery signed independently verifies and parses, from text, bytes or a Request', async () => {
  const signature = sign(BODY);
  assert.deepEqual(await verifyEvents({ body: BODY, signature }, SECRET, { now: at(T) }), EVENTS);
  const bytes = new TextEncoder().encode(BODY);
  assert.deepEqual(await verifyEvents({ body: bytes, signature }, new TextEncoder().encode(SECRET), { now: at(T + 10) }), EVENTS);
  const request = new Request('https://backend.example/relay-events', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Relay-Signature': signature },
    body: BODY,
  });
  assert.deepEqual(await verifyEvents(request, SECRET, { now: at(T) }), EVENTS);
  // Node's header types allow a list: read joined by commas.
  const [t, v1] = signature.split(',');
  assert.deepEqual(await verifyEvents({ body: BODY, signature: [t, v1] }, SECRET, { now: at(T) }), EVENTS);
  // The relay's own empty batch shape (src/events.rs signs it the same way).
  assert.deepEqual(await verifyEvents({ body: '{"events":[]}', signature: sign('{"events":[]}') }, SECRET, { now: at(T) }), []);
});

test('a missing, malformed, wrong-secret or tampered signature is refused with 401', async () => {
  const now = { now: at(T) };
  await refused(verifyEvents({ body: BODY, signature: undefined }, SECRET, now), 'unauthorized', 401);
  await refused(verifyEvents({ body: BODY, signature: '' }, SECRET, now), 'unauthorized', 401);
  await refused(verifyEvents(new Request('https://b.example/', { method: 'POST', body: BODY }), SECRET, now), 'unauthorized', 401);
  await refused(verifyEvents({ body: BODY, signature: sign(BODY, { secret: 'other' }) }, SECRET, now), 'unauthorized', 401);
  await refused(verifyEvents({ body: BODY.replace('ann', 'eve'), signature: sign(BODY) }, SECRET, now), 'unauthorized', 401);
  const mac = sign(BODY).split('v1=')[1];
  for (const header of [`v1=${mac}`, `t=${T}`, `t=${T},v1=${mac.slice(1)}`, `t=${T},v1=zz${mac.slice(2)}`, `t=${T},v2=${mac}`, `t=x,v1=${mac}`]) {
    await refused(verifyEvents({ body: BODY, signature: header }, SECRET, now), 'unauthorized', 401);
  }
  // A flipped last hex digit: same length, one bit off.
  const flipped = mac.slice(0, -1) + (mac.endsWith('0') ? '1' : '0');
  await refused(verifyEvents({ body: BODY, signature: `t=${T},v1=${flipped}` }, SECRET, now), 'unauthorized', 401);
});

test('during a secret rotation any one of several v1 MACs is enough', async () => {
  const old = sign(BODY, { secret: 'old-secret' }).split('v1=')[1];
  const current = sign(BODY).split('v1=')[1];
  const header = `t=${T}, v1=${old}, v1=${current}`;
  assert.equal((await verifyEvents({ body: BODY, signature: header }, SECRET, { now: at(T) })).length, 3);
  assert.equal((await verifyEvents({ body: BODY, signature: header }, 'old-secret', { now: at(T) })).length, 3);
});

test('timestamps further than the tolerance from the clock are refused, either way', async () => {
  const signature = sign(BODY);
  for (const offset of [-300, 0, 300]) {
    assert.equal((await verifyEvents({ body: BODY, signature }, SECRET, { now: at(T + offset) })).length, 3, `offset ${offset}`);
  }
  for (const offset of [-301, 301, 86_400]) {
    await refused(verifyEvents({ body: BODY, signature }, SECRET, { now: at(T + offset) }), 'unauthorized', 401);
  }
  assert.equal((await verifyEvents({ body: BODY, signature }, SECRET, { now: at(T + 30), toleranceSeconds: 30 })).length, 3);
  await refused(verifyEvents({ body: BODY, signature }, SECRET, { now: at(T + 31), toleranceSeconds: 30 }), 'unauthorized', 401);
  // Without `now`, the real clock: a signature made now verifies, one from 2023 does not.
  const fresh = sign(BODY, { t: Math.floor(Date.now() / 1000) });
  assert.equal((await verifyEvents({ body: BODY, signature: fresh }, SECRET)).length, 3);
  await refused(verifyEvents({ body: BODY, signature }, SECRET), 'unauthorized', 401);
});

test('a correctly signed body that is not {"events":[...]} is refused with 400', async () => {
  for (const body of ['not json', '[]', 'null', '{"events":{}}', '{"events":[{"id":"x","type":"message.created","room":"r"}]}', '{"events":[null]}']) {
    await refused(verifyEvents({ body, signature: sign(body) }, SECRET, { now: at(T) }), 'bad_request', 400);
  }
  const invalidUtf8 = new Uint8Array([0x7b, 0xff, 0x7d]);
  await refused(verifyEvents({ body: invalidUtf8, signature: sign(invalidUtf8) }, SECRET, { now: at(T) }), 'bad_request', 400);
});

test('bodies past maxBodyBytes are refused with 413, a streamed Request without reading it all', async () => {
  const signature = sign(BODY);
  const small = { now: at(T), maxBodyBytes: Buffer.byteLength(BODY) - 1 };
  await refused(verifyEvents({ body: BODY, signature }, SECRET, small), 'too_large', 413);
  assert.equal((await verifyEvents({ body: BODY, signature }, SECRET, { now: at(T), maxBodyBytes: Buffer.byteLength(BODY) })).length, 3);
  let pulled = 0;
  const endless = new ReadableStream({
    pull(controller) {
      pulled += 1;
      controller.enqueue(new Uint8Array(64 * 1024));
    },
  });
  const request = new Request('https://b.example/', { method: 'POST', body: endless, duplex: 'half', headers: { 'X-Relay-Signature': signature } });
  await refused(verifyEvents(request, SECRET, { now: at(T) }), 'too_large', 413);
  assert.ok(pulled <= 20, `read ${pulled} chunks of 64 KiB for a 1 MiB limit`);
  const declared = { headers: new Headers({ 'X-Relay-Signature': signature, 'Content-Length': '5000000' }), arrayBuffer: () => assert.fail('read') };
  await refused(verifyEvents(declared, SECRET, { now: at(T) }), 'too_large', 413);
});

test('bad options and an empty secret are refused before anything is read', async () => {
  const delivery = { body: BODY, signature: sign(BODY) };
  await refused(verifyEvents(delivery, SECRET, { toleranceSeconds: -1 }), 'invalid_argument', 0);
  await refused(verifyEvents(delivery, SECRET, { maxBodyBytes: 0 }), 'invalid_argument', 0);
  await refused(verifyEvents(delivery, ''), 'invalid_argument', 0);
});
