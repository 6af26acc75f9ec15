// Run by packages/scripts/tarball-e2e.sh in a scratch project where both packed tarballs are
// installed: mints a token with @edge-relay/server's signToken, connects a RelayClient from
// @edge-relay/client to the relay at RELAY_URL (Node 22's global WebSocket), broadcasts with
// RelayServer and asserts that the client receives exactly that message, with the seq the
// broadcast returned. Every wait is bounded by WAIT_MS; exits non-zero on any failure.
import assert from 'node:assert/strict';
import { RelayClient } from '@edge-relay/client';
import { RelayServer, signToken } from '@edge-relay/server';

const WAIT_MS = 10_000;
const { RELAY_URL, JWT_SECRET, WEBHOOK_SECRET } = process.env;
for (const [name, value] of Object.entries({ RELAY_URL, JWT_SECRET, WEBHOOK_SECRET })) {
  if (!value) throw new Error(`${name} is not set`);
}

/** `promise`, or a rejection naming `what` after WAIT_MS. */
function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${WAIT_MS} ms`)), WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
const roomName = `tarball-${run}:orders`;
const token = await signToken({ secret: JWT_SECRET, sub: `tarball-${run}`, name: 'Tarball', rooms: ['tarball-*'], ttlSeconds: 120 });
const room = RelayClient.connect({ url: RELAY_URL, room: roomName, token });
const errors = [];
room.on('error', (error) => errors.push(`${error.code}: ${error.message}`));
try {
  const opened = new Promise((resolve) => {
    if (room.status === 'open') resolve();
    room.on('status', (status) => status === 'open' && resolve());
  });
  await within(opened, 'open socket');
  const received = within(room.once('message'), 'broadcast message');
  const relay = new RelayServer({ url: RELAY_URL, webhookSecret: WEBHOOK_SECRET });
  const outcome = await relay.broadcast([roomName], 'order:new', { order: 42, run }, { id: `order-${run}` });
  assert.equal(outcome.id, `order-${run}`);
  assert.equal(outcome.results.length, 1);
  const [result] = outcome.results;
  assert.equal(result.error, undefined, `the broadcast failed: ${JSON.stringify(result.error)}`);
  const message = await received;
  assert.deepEqual(message.data, { order: 42, run });
  assert.equal(message.event, 'order:new');
  assert.equal(message.seq, result.seq);
  assert.deepEqual(errors, []);
  console.log(`   a client from the tarball received the broadcast (seq ${message.seq})`);
} finally {
  room.close();
}
