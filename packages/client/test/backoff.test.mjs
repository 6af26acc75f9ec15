import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from '../dist/index.js';
import { setup } from './fakes.mjs';

test('backoffDelay stays within [0, min(cap, base * 2^n)] (full jitter)', () => {
  for (let n = 0; n < 16; n++) {
    const bound = Math.min(20000, 500 * 2 ** n);
    for (const r of [0, 1e-9, 0.25, 0.5, 0.999999]) {
      const d = backoffDelay(n, 500, 20000, () => r);
      assert.ok(d >= 0 && d <= bound, `attempt ${n}, random ${r}: ${d} not in [0, ${bound}]`);
    }
    assert.equal(backoffDelay(n, 500, 20000, () => 0), 0);
    assert.ok(Math.abs(backoffDelay(n, 500, 20000, () => 1) - bound) < 1e-9);
  }
  // With the real Math.random too.
  for (let i = 0; i < 1000; i++) {
    const n = i % 12;
    const d = backoffDelay(n);
    assert.ok(d >= 0 && d <= Math.min(20000, 500 * 2 ** n));
  }
});

test('reconnect delays follow the backoff: 500, 1000, 2000 ... capped at 20000 ms', async () => {
  const t = setup({ client: { random: () => 0.999999, maxFailures: 100 } });
  await t.clock.tick(0);
  assert.equal(t.ws.sockets.length, 1);
  const expected = [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000];
  for (const bound of expected) {
    const count = t.ws.sockets.length;
    t.ws.last().fail();
    await t.clock.tick(bound * 0.999999 - 2);
    assert.equal(t.ws.sockets.length, count, `no reconnect before ${bound} ms`);
    await t.clock.tick(2);
    assert.equal(t.ws.sockets.length, count + 1, `reconnect by ${bound} ms`);
  }
  assert.equal(t.client.status, 'reconnecting');
});

test('a stable connection resets the backoff; random() = 0 reconnects at once', async () => {
  const t = setup({ client: { random: () => 1, maxFailures: 100 } });
  await t.clock.tick(0);
  for (let i = 0; i < 4; i++) {
    t.ws.last().fail();
    await t.clock.tick(20000);
  }
  t.ws.last().welcome();
  await t.clock.tick(5000); // stableAfter
  const count = t.ws.sockets.length;
  t.ws.last().serverClose(1012, 'restarting');
  await t.clock.tick(499);
  assert.equal(t.ws.sockets.length, count);
  await t.clock.tick(1);
  assert.equal(t.ws.sockets.length, count + 1, 'back to the 500 ms bound');

  const z = setup({ client: { random: () => 0 } });
  await z.clock.tick(0);
  z.ws.last().welcome();
  z.ws.last().serverClose(1006);
  await z.clock.tick(0);
  assert.equal(z.ws.sockets.length, 2);
});
