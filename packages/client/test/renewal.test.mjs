// In-band token renewal: {"type":"auth","token"} before exp on the open socket; a reconnect only
// when the renewal fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup } from './fakes.mjs';

const jwt = (payload) => 'h.' + Buffer.from(JSON.stringify({ sub: 'alice', ...payload })).toString('base64url') + '.s';
const authFrames = (s) => s.sent.filter((f) => f.type === 'auth');

/** A client whose getToken mints a token valid `lifetime` seconds from the clock's now. */
function renewing(lifetime, client = {}) {
  const minted = [];
  let t = null; // getToken is first called inside connect(), at clock time 0
  t = setup({
    client: {
      token: undefined,
      getToken: () => {
        const iat = t ? Math.floor(t.clock.now() / 1000) : 0;
        minted.push(jwt({ iat, exp: iat + lifetime }));
        return minted.at(-1);
      },
      ...client,
    },
  });
  return { ...t, minted };
}

test('renews in band at 80 % of a 5-minute token, and again for the renewed one; no reconnect', async () => {
  const t = renewing(300);
  await t.clock.tick(0);
  const s = t.ws.last();
  s.welcome();
  await t.clock.tick(239000);
  assert.deepEqual(authFrames(s), []);
  await t.clock.tick(1000);
  assert.deepEqual(authFrames(s), [{ type: 'auth', token: t.minted[1] }]);
  s.push({ type: 'auth', exp: 540 });
  assert.deepEqual(t.of('auth'), [{ type: 'auth', exp: 540 }]);
  await t.clock.tick(239000); // t = 479 s: the next one is due at 240 + 240
  assert.equal(authFrames(s).length, 1);
  await t.clock.tick(1000);
  assert.deepEqual(authFrames(s).at(-1), { type: 'auth', token: t.minted[2] });
  assert.equal(t.ws.sockets.length, 1, 'never reconnected');
  assert.deepEqual(t.of('error'), []);
  s.push({ type: 'auth', exp: 780 });

  // A later reconnect uses the renewed token, without asking getToken again.
  s.serverClose(1012);
  const next = await t.next();
  assert.equal(next.token, t.minted[2]);
  assert.equal(t.minted.length, 3);
});

test('the renewal comes at the earlier of 80 % of the lifetime and 60 s before exp', async () => {
  for (const [lifetime, due] of [[3600, 2880], [90, 30], [300, 240]]) {
    const t = renewing(lifetime);
    await t.clock.tick(0);
    t.ws.last().welcome();
    await t.clock.tick(due * 1000 - 1);
    assert.equal(authFrames(t.ws.last()).length, 0, lifetime + ' s token: not yet');
    await t.clock.tick(1);
    assert.equal(authFrames(t.ws.last()).length, 1, lifetime + ' s token: renewed at ' + due + ' s');
  }
});

test('a refused renewal (error frame without cid) reconnects with a fresh token', async () => {
  for (const code of ['unauthorized', 'forbidden']) {
    const t = renewing(300);
    await t.clock.tick(0);
    const s = t.ws.last();
    s.welcome();
    await t.clock.tick(240000);
    assert.equal(authFrames(s).length, 1);
    s.push({ type: 'error', code, message: 'the token does not grant this room' });
    assert.deepEqual(t.of('error').map((e) => [e.code, e.message]), [[code, 'the token does not grant this room']]);
    assert.equal(s.closedWith, 1005, 'the socket was dropped');
    const next = await t.next();
    assert.equal(next.token, t.minted[2], 'a fresh token, not the refused one');
    next.welcome();
    assert.equal(t.client.status, 'open');
  }
});

test('a renewal without an answer within authTimeout counts as failed', async () => {
  const t = renewing(300, { authTimeout: 10000 });
  await t.clock.tick(0);
  const s = t.ws.last();
  s.welcome();
  await t.clock.tick(240000);
  assert.equal(authFrames(s).length, 1);
  await t.clock.tick(9999);
  assert.equal(s.closedWith, undefined);
  await t.clock.tick(1);
  assert.deepEqual(t.of('error').map((e) => e.code), ['timeout']);
  assert.equal(s.closedWith, 1005);
  const next = await t.next();
  assert.equal(next.token, t.minted[2]);
});

test('other errors without cid do not end a pending renewal', async () => {
  const t = renewing(300);
  await t.clock.tick(0);
  const s = t.ws.last();
  s.welcome();
  await t.clock.tick(240000);
  s.push({ type: 'error', code: 'bad_request', message: 'typing: active must be a boolean' });
  s.push({ type: 'auth', exp: 540 });
  assert.equal(s.closedWith, undefined);
  assert.deepEqual(t.of('auth').length, 1);
});

test('getToken handing back the same token: no auth frame, asked again halfway to exp, bounded', async () => {
  const token = jwt({ iat: 0, exp: 300 });
  let calls = 0;
  const t = setup({ client: { token: undefined, getToken: () => (calls++, token) } });
  await t.clock.tick(0);
  const s = t.ws.last();
  s.welcome();
  await t.clock.tick(240000);
  assert.equal(calls, 2);
  await t.clock.tick(30000); // halfway from 240 s to 300 s
  assert.equal(calls, 3);
  await t.clock.tick(600000);
  assert.ok(calls < 12, 'a handful of calls until exp, not a loop: ' + calls);
  assert.deepEqual(authFrames(s), []);
  assert.equal(t.clock.pending.length, 0, 'nothing scheduled after exp: the relay closes with 4001');
  assert.equal(t.ws.sockets.length, 1);
});

test('a getToken that throws during renewal is reported and asked again later; the socket stays', async () => {
  let fail = true;
  let n = 0;
  const t = setup({
    client: {
      token: undefined,
      getToken: () => {
        n++;
        if (n > 1 && fail) throw new Error('token endpoint down');
        return jwt({ iat: 0, exp: 300 + (n > 1 ? 300 : 0) });
      },
    },
  });
  await t.clock.tick(0);
  const s = t.ws.last();
  s.welcome();
  await t.clock.tick(240000);
  assert.deepEqual(t.of('error').map((e) => [e.code, e.message]), [['token', 'token endpoint down']]);
  assert.equal(s.closedWith, undefined);
  fail = false;
  await t.clock.tick(30000);
  assert.equal(authFrames(s).length, 1);
});

test('no renewal without getToken, nor for a token without exp', async () => {
  const t = setup({ client: { token: jwt({ exp: 300 }) } });
  await t.clock.tick(0);
  t.ws.last().welcome();
  await t.clock.tick(290000);
  assert.deepEqual(authFrames(t.ws.last()), []);

  let calls = 0;
  const u = setup({ client: { token: undefined, getToken: () => (calls++, 'opaque') } });
  await u.clock.tick(0);
  u.ws.last().welcome();
  await u.clock.tick(3600000);
  assert.deepEqual(authFrames(u.ws.last()), []);
  assert.equal(calls, 1);
});
