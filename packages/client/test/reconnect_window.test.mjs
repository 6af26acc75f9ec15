// The reconnect window of a big room's welcome: after an unexpected close the first retry waits a
// random time in [0, reconnect_window_ms) when that is longer than the backoff, once per close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup } from './fakes.mjs';

/** Asserts that the next socket opens exactly `ms` after now (none a moment before). */
async function reopensAfter(t, ms, what) {
  const count = t.ws.sockets.length;
  await t.clock.tick(ms - 1);
  assert.equal(t.ws.sockets.length, count, `${what}: no socket before ${ms} ms`);
  await t.clock.tick(1);
  assert.equal(t.ws.sockets.length, count + 1, `${what}: a socket at ${ms} ms`);
  return t.ws.last();
}

test('a 1012 after a welcome with a 50 s window reconnects at random * 50 s, not after the ~500 ms backoff', async () => {
  for (const [random, at] of [[0.5, 25000], [0.9, 45000], [0.02, 1000]]) {
    const t = setup({ client: { random: () => random } });
    await t.clock.tick(0);
    t.ws.last().welcome({ reconnect_window_ms: 50000 });
    t.ws.last().serverClose(1012, 'restarting');
    assert.equal(t.client.status, 'reconnecting');
    await reopensAfter(t, at, `random ${random}`);
    assert.ok(at < 50000);
  }
  // The largest random() the source gives stays inside the window.
  const t = setup({ client: { random: () => 0.999999 } });
  await t.clock.tick(0);
  t.ws.last().welcome({ reconnect_window_ms: 50000 });
  t.ws.last().serverClose(1012, 'restarting');
  await t.clock.tick(49999.99);
  assert.equal(t.ws.sockets.length, 2, 'back within [0, 50000)');
});

test('without a window the timing is the backoff of today', async () => {
  const t = setup(); // random 0.5: half of the 500 ms bound
  await t.clock.tick(0);
  t.ws.last().welcome();
  t.ws.last().serverClose(1012, 'restarting');
  await reopensAfter(t, 250, 'no window');
  // A window of 0 (a small room) too.
  t.ws.last().welcome({ reconnect_window_ms: 0 });
  t.ws.last().serverClose(1012, 'restarting');
  await reopensAfter(t, 500, 'window 0, second attempt (1000 ms bound)');
});

test('the window is used once per close: later attempts use the backoff', async () => {
  const t = setup({ client: { maxFailures: 100 } });
  await t.clock.tick(0);
  t.ws.last().welcome({ reconnect_window_ms: 50000 });
  t.ws.last().serverClose(1012, 'restarting');
  let s = await reopensAfter(t, 25000, 'first attempt');
  s.fail(); // the relay is still coming up: no welcome on this socket
  s = await reopensAfter(t, 500, 'second attempt (1000 ms bound)');
  s.fail();
  s = await reopensAfter(t, 1000, 'third attempt (2000 ms bound)');
  // A welcome gives the window again, for the next close only; a welcome without one clears it.
  s.welcome({ reconnect_window_ms: 50000 });
  s.serverClose(1006);
  s = await reopensAfter(t, 25000, 'after the next welcome');
  s.welcome();
  s.serverClose(1006);
  await reopensAfter(t, 4000, 'welcome without a window (attempt 4: 8000 ms bound)');
});

test('a window shorter than the backoff leaves the backoff', async () => {
  const t = setup({ client: { random: () => 1, maxFailures: 100 } });
  await t.clock.tick(0);
  t.ws.last().fail();
  await t.clock.tick(500);
  t.ws.last().fail();
  await t.clock.tick(1000); // attempt 2 next: 2000 ms bound
  t.ws.last().welcome({ reconnect_window_ms: 1500 });
  t.ws.last().serverClose(1012, 'restarting');
  await reopensAfter(t, 2000, 'backoff over the 1500 ms window');
});

test('1001, 1006, 1011, 1013 and a silent socket (network drop) spread their return; 4xxx closes do not', async () => {
  for (const code of [1001, 1006, 1011, 1013]) {
    const t = setup();
    await t.clock.tick(0);
    t.ws.last().welcome({ reconnect_window_ms: 10000 });
    t.ws.last().serverClose(code);
    await reopensAfter(t, 5000, `close ${code}`);
  }
  const h = setup({ client: { heartbeat: 25000 } });
  await h.clock.tick(0);
  h.ws.last().welcome({ reconnect_window_ms: 10000 });
  await h.clock.tick(50000); // two silent periods: the ping got no answer, the socket is dropped
  assert.equal(h.ws.sockets[0].closedWith, 1005, 'dropped');
  assert.equal(h.client.status, 'reconnecting');
  await reopensAfter(h, 5000, 'heartbeat drop');

  for (const code of [4008, 4009, 4010, 4400]) {
    const t = setup();
    await t.clock.tick(0);
    t.ws.last().welcome({ reconnect_window_ms: 10000 });
    t.ws.last().serverClose(code);
    await reopensAfter(t, 250, `close ${code}`);
  }
  let n = 0;
  const r = setup({ client: { token: undefined, getToken: async () => 'tok' + ++n } });
  await r.clock.tick(0);
  r.ws.last().welcome({ reconnect_window_ms: 10000 });
  r.ws.last().serverClose(4001, 'token expired');
  await reopensAfter(r, 250, 'close 4001 with a new token');
});

test('a refused token renewal reconnects after the backoff, not the window (no deploy)', async () => {
  const jwt = (payload) => 'h.' + Buffer.from(JSON.stringify(payload)).toString('base64url') + '.s';
  let n = 0;
  const t = setup({ client: { token: undefined, getToken: () => jwt({ sub: 'alice', n: n++, iat: 0, exp: 300 }) } });
  await t.clock.tick(0);
  t.ws.last().welcome({ reconnect_window_ms: 50000 });
  await t.clock.tick(240000); // 80 % of the lifetime: the renewal goes out
  assert.equal(t.ws.last().sent.filter((f) => f.type === 'auth').length, 1);
  t.ws.last().push({ type: 'error', code: 'unauthorized', message: 'invalid token' });
  assert.equal(t.client.status, 'reconnecting');
  await reopensAfter(t, 250, 'after a refused renewal');
});

test('the window is capped at 120 s; reconnect() and close() do not wait it out', async () => {
  const t = setup({ client: { random: () => 0.999999 } });
  await t.clock.tick(0);
  t.ws.last().welcome({ reconnect_window_ms: 1e9 });
  t.ws.last().serverClose(1012);
  await t.clock.tick(120000);
  assert.equal(t.ws.sockets.length, 2, 'back within 120 s');

  t.ws.last().welcome({ reconnect_window_ms: 50000 });
  t.client.reconnect();
  await t.clock.tick(0);
  assert.equal(t.ws.sockets.length, 3, 'reconnect() opens at once');
  t.ws.last().welcome({ reconnect_window_ms: 50000 });
  t.client.close();
  assert.equal(t.client.status, 'closed');
  await t.clock.tick(200000);
  assert.equal(t.ws.sockets.length, 3);
  assert.equal(t.clock.pending.length, 0, 'no timer left');
});
