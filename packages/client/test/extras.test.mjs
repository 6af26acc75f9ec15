import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup } from './fakes.mjs';

test('typing is throttled to one true per 2 s and stops by itself', async () => {
  const t = setup();
  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ seq: 0 });
  const typing = () => ws.sent.filter((f) => f.type === 'typing').map((f) => f.active);
  for (let i = 0; i < 10; i++) {
    t.client.typing(true);
    await t.clock.tick(150);
  }
  assert.deepEqual(typing(), [true]);
  await t.clock.tick(500); // 2 s after the first
  t.client.typing(true);
  assert.deepEqual(typing(), [true, true]);
  await t.clock.tick(3000); // typingTimeout without a call
  assert.deepEqual(typing(), [true, true, false]);
  t.client.typing(false); // already off: nothing
  t.client.typing(true);
  t.client.typing(false);
  assert.deepEqual(typing(), [true, true, false, true, false]);
});

test('markRead sends increasing seqs only, and again on the next connection', async () => {
  const t = setup();
  await t.clock.tick(0);
  t.client.markRead(3); // offline: remembered
  let ws = t.ws.last();
  ws.welcome({ seq: 9 });
  t.client.markRead(2);
  t.client.markRead(5);
  t.client.markRead(); // lastSeq = 9
  assert.deepEqual(ws.sent.filter((f) => f.type === 'read').map((f) => f.seq), [3, 5, 9]);
  ws.serverClose(1006);
  await t.next();
  ws = t.ws.last();
  ws.welcome({ seq: 9 });
  assert.deepEqual(ws.sent.filter((f) => f.type === 'read').map((f) => f.seq), [9]);
});

test('heartbeat pings and drops a silent socket', async () => {
  const t = setup({ client: { heartbeat: 1000, maxFailures: 100 } });
  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ seq: 0 });
  await t.clock.tick(1000);
  assert.deepEqual(ws.sent.at(-1), { type: 'ping' });
  ws.push({ type: 'pong' });
  await t.clock.tick(1000);
  assert.equal(ws.sent.filter((f) => f.type === 'ping').length, 2);
  assert.equal(t.ws.sockets.length, 1);
  await t.clock.tick(1000); // no pong: dropped
  assert.ok(ws.closedWith);
  assert.equal(t.client.status, 'reconnecting');
  await t.next();
  assert.ok(t.ws.sockets.length > 1);
});

test('online/offline events drop and reconnect without waiting for the backoff', async () => {
  const events = new EventTarget();
  const t = setup({ client: { events, random: () => 1, maxFailures: 100 } });
  await t.clock.tick(0);
  t.ws.last().welcome({ seq: 0 });
  events.dispatchEvent(new Event('offline'));
  assert.equal(t.client.status, 'reconnecting');
  for (let i = 0; i < 5; i++) {
    await t.next();
    t.ws.last().fail();
  }
  const count = t.ws.sockets.length;
  events.dispatchEvent(new Event('online'));
  await t.clock.tick(0);
  assert.equal(t.ws.sockets.length, count + 1);
  t.ws.last().welcome({ seq: 0 });
  events.dispatchEvent(new Event('online')); // open already: nothing
  assert.equal(t.ws.sockets.length, count + 1);
  t.client.close();
});

test('on() returns an unsubscribe function; off() removes a listener', async () => {
  const t = setup();
  const seen = [];
  const fn = (s) => seen.push(s);
  const off = t.client.on('status', fn);
  await t.clock.tick(0);
  t.ws.last().welcome({ seq: 0 });
  off();
  t.client.close();
  assert.deepEqual(seen, ['open']);
});

test('a socket that never gets its welcome is dropped after connectTimeout and counts as a failure', async () => {
  const t = setup({ client: { connectTimeout: 4000, maxFailures: 2 } });
  await t.clock.tick(0);
  const first = t.ws.last();
  await t.clock.tick(3999);
  assert.equal(first.closedWith, undefined);
  await t.clock.tick(1);
  assert.ok(first.closedWith, 'closed by the client');
  assert.equal(t.client.status, 'reconnecting');
  await t.next();
  await t.clock.tick(4000);
  assert.equal(t.client.status, 'polling');
  t.client.close();
});
