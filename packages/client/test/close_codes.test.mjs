// Close codes: which ones stop the client for good, which reconnect, and which count towards the
// HTTP fallback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup } from './fakes.mjs';

const closes = (t) => t.of('error').map((e) => [e.code, e.closeCode, e.message]);

/** Asserts the client stopped: status closed, no socket or request later, no timer left. */
async function assertStopped(t) {
  assert.equal(t.client.status, 'closed');
  const sockets = t.ws.sockets.length;
  const calls = t.calls.length;
  await t.clock.tick(600000);
  assert.equal(t.ws.sockets.length, sockets, 'no reconnect');
  assert.equal(t.calls.length, calls, 'no HTTP polling');
  assert.equal(t.clock.pending.length, 0, 'no timers left');
}

test('4001 when getToken gives the same token again: stops with the relay\'s reason', async () => {
  let n = 0;
  const t = setup({ client: { token: undefined, getToken: async () => (n++, 'same') } });
  await t.clock.tick(0);
  t.ws.last().welcome();
  t.ws.last().serverClose(4001, 'token expired');
  await t.clock.tick(30000);
  assert.equal(n, 2, 'asked for a new token once');
  assert.deepEqual(closes(t), [['unauthorized', 4001, 'token expired']]);
  assert.equal(t.of('error')[0].reason, 'token expired');
  await assertStopped(t);
});

test('4001 when getToken gives no token: stops', async () => {
  const tokens = ['tok1', null];
  const t = setup({ client: { token: undefined, getToken: async () => tokens.shift() } });
  await t.clock.tick(0);
  t.ws.last().welcome();
  const rejected = assert.rejects(t.client.send('x'), { code: 'unauthorized' });
  t.ws.last().serverClose(4001, 'token expired');
  await t.clock.tick(30000);
  await rejected;
  assert.deepEqual(closes(t), [['unauthorized', 4001, 'token expired']]);
  await assertStopped(t);
});

test('4001 at the handshake for a fresh token too: stops after one new token', async () => {
  let n = 0;
  const t = setup({ client: { token: undefined, getToken: async () => 'tok' + ++n } });
  await t.clock.tick(0);
  t.ws.last().serverClose(4001, 'invalid token: bad signature');
  const s = await t.next();
  assert.equal(s.token, 'tok2');
  s.serverClose(4001, 'invalid token: bad signature');
  await t.clock.tick(0);
  assert.equal(n, 2);
  assert.deepEqual(closes(t), [['unauthorized', 4001, 'invalid token: bad signature']]);
  await assertStopped(t);
});

test('4003 at the handshake (origin not allowed, room not granted): stops at once, no polling', async () => {
  for (const reason of ['origin not allowed', 'the token does not grant this room', 'removed from the room', 'banned']) {
    const t = setup({ client: { maxFailures: 1 } });
    await t.clock.tick(0);
    t.ws.last().serverClose(4003, reason);
    await t.clock.tick(0);
    assert.deepEqual(closes(t), [['forbidden', 4003, reason]]);
    assert.deepEqual(t.statuses(), ['closed']);
    await assertStopped(t);
  }
});

test('4400 at the handshake stops (the request itself is bad); after the welcome it reconnects', async () => {
  const t = setup();
  await t.clock.tick(0);
  t.ws.last().serverClose(4400, 'since must be a non-negative integer');
  await t.clock.tick(0);
  assert.deepEqual(closes(t), [['bad_request', 4400, 'since must be a non-negative integer']]);
  await assertStopped(t);

  const u = setup();
  await u.clock.tick(0);
  u.ws.last().welcome();
  u.ws.last().serverClose(4400, 'too many refused frames');
  await u.next();
  assert.deepEqual(closes(u), [['bad_request', 4400, 'too many refused frames']]);
  assert.equal(u.client.status, 'reconnecting');
});

test('4008 at the handshake: error, reconnect with backoff, never HTTP polling', async () => {
  const t = setup({ client: { maxFailures: 2, since: 7 } });
  await t.clock.tick(0);
  for (let i = 0; i < 4; i++) {
    t.ws.last().serverClose(4008, 'too many connection attempts');
    await t.next();
  }
  assert.equal(t.calls.length, 0, 'the relay answered: polling would be refused too');
  assert.equal(t.client.status, 'reconnecting');
  assert.equal(t.of('error').length, 4);
  assert.deepEqual(closes(t)[0], ['rate_limited', 4008, 'too many connection attempts']);
  assert.equal(t.ws.last().params.get('since'), '7');
  t.ws.last().welcome({ seq: 7 });
  assert.equal(t.client.status, 'open');
});

test('4010 slow consumer reconnects with since and is no error', async () => {
  const t = setup({ client: { since: 3 } });
  await t.clock.tick(0);
  t.ws.last().welcome({ seq: 3 });
  t.ws.last().serverClose(4010, 'slow consumer');
  const s = await t.next();
  assert.equal(s.params.get('since'), '3');
  assert.deepEqual(t.of('error'), []);
});

test('HTTP 401 while polling when getToken gives no new token: stops', async () => {
  let n = 0;
  const t = setup({
    client: { token: undefined, getToken: async () => (n++, 'same'), maxFailures: 1, since: 0 },
    http: () => ({ status: 401, body: { error: { code: 'unauthorized', message: 'invalid token: expired or without exp' } } }),
  });
  await t.clock.tick(0);
  t.ws.last().fail();
  await t.clock.tick(0);
  assert.deepEqual(t.of('error').map((e) => [e.code, e.status, e.message]), [['unauthorized', 401, 'invalid token: expired or without exp']]);
  assert.equal(t.calls.length, 1, 'the same token is not sent again');
  await assertStopped(t);
});

test('HTTP 401 while polling with a new token from getToken: retried once with it, no error', async () => {
  let n = 0;
  const t = setup({
    client: { token: undefined, getToken: async () => 'tok' + ++n, maxFailures: 1, since: 0 },
    http: (c) => (c.auth === 'Bearer tok1' ? { status: 401, body: { error: { code: 'unauthorized', message: 'expired' } } } : { status: 200, body: { messages: [], has_more: false } }),
  });
  await t.clock.tick(0);
  t.ws.last().fail();
  await t.clock.tick(0);
  assert.deepEqual(t.calls.map((c) => c.auth), ['Bearer tok1', 'Bearer tok2']);
  assert.deepEqual(t.of('error'), []);
  assert.equal(t.client.status, 'polling');
  await t.clock.tick(3000);
  assert.equal(t.calls.at(-1).auth, 'Bearer tok2');
});
