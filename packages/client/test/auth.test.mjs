import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup } from './fakes.mjs';

const jwt = (payload) => 'h.' + Buffer.from(JSON.stringify(payload)).toString('base64url') + '.s';

test('4001 close: getToken is called again and the new token is used', async () => {
  let n = 0;
  const getToken = async () => 'tok' + ++n;
  const t = setup({ client: { getToken, token: undefined } });
  await t.clock.tick(0);
  assert.equal(t.ws.last().token, 'tok1');
  t.ws.last().welcome({ seq: 0 });
  t.ws.last().serverClose(1012); // other closes keep the token
  await t.next();
  assert.equal(t.ws.last().token, 'tok1');
  t.ws.last().welcome({ seq: 0 });
  t.ws.last().serverClose(4001, 'token expired');
  await t.next();
  assert.equal(n, 2);
  assert.equal(t.ws.last().token, 'tok2');
  t.ws.last().welcome({ seq: 0 });
  assert.equal(t.client.status, 'open');
  assert.deepEqual(t.of('error'), [], 'a refresh is not an error');
});

test('a token about to expire is refreshed before connecting', async () => {
  const tokens = [jwt({ sub: 'alice', exp: 30 }), jwt({ sub: 'alice', exp: 100000 })];
  let calls = 0;
  // Sockets that never get their welcome: no in-band renewal, only the check before connecting.
  const t = setup({ client: { getToken: () => tokens[calls++], token: undefined, connectTimeout: 600000 } });
  await t.clock.tick(0);
  assert.equal(t.ws.last().token, tokens[0]); // exp 30 s, now 0: fine
  t.ws.last().serverClose(1006);
  await t.next();
  assert.equal(t.ws.last().token, tokens[0], 'still valid: not refreshed');
  await t.clock.tick(25000);
  t.ws.last().serverClose(1006);
  await t.next(); // now within 10 s of exp
  assert.equal(t.ws.last().token, tokens[1]);
  assert.equal(calls, 2);
});

test('4001 with a fixed token cannot recover: closed with an unauthorized error', async () => {
  const t = setup();
  await t.clock.tick(0);
  t.ws.last().welcome({ seq: 0 });
  t.ws.last().serverClose(4001);
  await t.clock.tick(60000);
  assert.equal(t.client.status, 'closed');
  assert.deepEqual(t.of('error').map((e) => [e.code, e.closeCode]), [['unauthorized', 4001]]);
  assert.equal(t.ws.sockets.length, 1);
});

test('4003 close stops for good: error event, status closed, pending sends rejected', async () => {
  const t = setup();
  await t.clock.tick(0);
  t.ws.last().welcome({ seq: 0 });
  t.ws.last().serverClose(1006);
  const p = t.client.send('x');
  await t.next();
  t.ws.last().serverClose(4003, 'room not granted');
  await assert.rejects(p, { code: 'forbidden' });
  assert.equal(t.client.status, 'closed');
  assert.deepEqual(t.statuses(), ['open', 'reconnecting', 'closed']);
  assert.deepEqual(t.of('error').map((e) => [e.code, e.closeCode, e.message]), [['forbidden', 4003, 'room not granted']]);
  const count = t.ws.sockets.length;
  await t.clock.tick(600000);
  assert.equal(t.ws.sockets.length, count, 'no reconnect after 4003');
  assert.equal(t.clock.pending.length, 0, 'no timers left');
});

test('4008, 4009 and 4400 are reported and reconnected', async () => {
  const t = setup({ client: { maxFailures: 100 } });
  await t.clock.tick(0);
  for (const code of [4008, 4009, 4400]) {
    t.ws.last().welcome({ seq: 0 });
    t.ws.last().serverClose(code);
    await t.next();
  }
  assert.deepEqual(t.of('error').map((e) => e.code), ['rate_limited', 'too_large', 'bad_request']);
  assert.equal(t.ws.sockets.length, 4);
  assert.notEqual(t.client.status, 'closed');
});
