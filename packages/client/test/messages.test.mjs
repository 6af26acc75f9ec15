import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, msg } from './fakes.mjs';

test('builds the WebSocket URL: ws scheme, encoded room, token in the subprotocol, no since on a fresh start', async () => {
  const t = setup({ client: { url: 'https://relay.example:8443/', room: 'city:Саратов', token: 'a.b.c' } });
  await t.clock.tick(0);
  const u = new URL(t.ws.last().url);
  assert.equal(u.protocol, 'wss:');
  assert.equal(u.host, 'relay.example:8443');
  assert.equal(u.pathname, '/v1/rooms/' + encodeURIComponent('city:Саратов') + '/ws');
  assert.equal(u.searchParams.has('token'), false);
  assert.deepEqual(t.ws.last().protocols, ['relay.v1', 'bearer.a.b.c']);
  assert.equal(u.searchParams.has('since'), false);
  assert.deepEqual(t.statuses(), []);
  assert.equal(t.client.status, 'connecting');

  const s = setup({ client: { since: 12 } });
  await s.clock.tick(0);
  assert.equal(new URL(s.ws.last().url).protocol, 'ws:');
  assert.equal(s.ws.last().params.get('since'), '12');
});

test('welcome opens the room: lastSeq, user, presence and reads; join/leave keep presence', async () => {
  const t = setup();
  await t.clock.tick(0);
  t.ws.last().welcome({
    seq: 41,
    presence: [{ id: 'alice' }, { id: 'bob' }],
    reads: [{ user: { id: 'bob' }, seq: 40, at: 'x' }],
  });
  assert.equal(t.client.status, 'open');
  assert.deepEqual(t.statuses(), ['open']);
  assert.equal(t.client.lastSeq, 41);
  assert.equal(t.client.user.id, 'alice');
  assert.deepEqual(t.client.presence.map((u) => u.id), ['alice', 'bob']);
  assert.equal(t.client.reads.get('bob').seq, 40);
  t.ws.last().push({ type: 'presence', event: 'join', user: { id: 'carol' } });
  t.ws.last().push({ type: 'presence', event: 'join', user: { id: 'carol' } });
  t.ws.last().push({ type: 'presence', event: 'leave', user: { id: 'bob' }, last_seen: 'y' });
  assert.deepEqual(t.client.presence.map((u) => u.id), ['alice', 'carol']);
  t.ws.last().push({ type: 'read', user: { id: 'carol' }, seq: 41, at: 'z' });
  assert.equal(t.client.reads.get('carol').seq, 41);
  t.ws.last().push({ type: 'typing', user: { id: 'carol' }, active: true });
  assert.deepEqual(t.of('typing').map((f) => [f.user.id, f.active]), [['carol', true]]);
  // Live messages continue from the welcome's seq.
  t.ws.last().push(msg(42));
  assert.deepEqual(t.seqs(), [42]);
});

test('replayed and repeated messages are delivered once, in seq order', async () => {
  const t = setup();
  await t.clock.tick(0);
  t.ws.last().welcome({ seq: 5 });
  for (const seq of [4, 5, 6, 7, 6, 7]) t.ws.last().push(msg(seq));
  assert.deepEqual(t.seqs(), [6, 7]);
  assert.equal(t.client.lastSeq, 7);

  t.ws.last().serverClose(1012, 'restarting');
  await t.next();
  const ws = t.ws.last();
  assert.equal(ws.params.get('since'), '7', 'resumes after the last delivered seq');
  ws.welcome({ seq: 9 });
  // A server replaying too much (or a message also seen over HTTP) is still delivered once.
  for (const seq of [6, 7, 8, 9]) ws.push(msg(seq));
  ws.push({ type: 'synced', seq: 9 });
  ws.push(msg(9));
  ws.push(msg(10));
  assert.deepEqual(t.seqs(), [6, 7, 8, 9, 10]);
});

test('resume position: every reconnect asks for since = lastSeq', async () => {
  const t = setup({ client: { since: 0, maxFailures: 100 } });
  await t.clock.tick(0);
  assert.equal(t.ws.last().params.get('since'), '0');
  t.ws.last().welcome({ seq: 3 });
  assert.equal(t.client.lastSeq, 0, 'welcome seq does not move a resume position');
  for (const seq of [1, 2, 3]) t.ws.last().push(msg(seq));
  t.ws.last().push({ type: 'synced', seq: 3 });
  t.ws.last().serverClose(1006);
  await t.next();
  assert.equal(t.ws.last().params.get('since'), '3');
  t.ws.last().fail(); // a failed attempt keeps the position
  await t.next();
  assert.equal(t.ws.last().params.get('since'), '3');
  t.ws.last().welcome({ seq: 5 });
  t.ws.last().push(msg(4));
  t.ws.last().push(msg(5));
  t.ws.last().serverClose(1006);
  await t.next();
  assert.equal(t.ws.last().params.get('since'), '5');
  assert.deepEqual(t.seqs(), [1, 2, 3, 4, 5]);
});

test('a message ahead of a gap waits; the gap is filled from HTTP history', async () => {
  const t = setup({
    http: (c) => {
      if (c.method === 'GET' && c.query.after === '2') return { status: 200, body: { messages: [msg(3), msg(4)], has_more: false } };
    },
  });
  await t.clock.tick(0);
  t.ws.last().welcome({ seq: 2 });
  t.ws.last().push(msg(5));
  assert.deepEqual(t.seqs(), []);
  await t.clock.tick(0);
  assert.deepEqual(t.seqs(), [3, 4, 5]);
  assert.equal(t.calls[0].auth, 'Bearer T1');
  assert.equal(t.calls[0].path, '/v1/rooms/chat:1/messages');
});

test('reset: missed messages are fetched over HTTP page by page, then live ones follow', async () => {
  const pages = {
    10: { messages: [msg(11), msg(12)], has_more: true },
    12: { messages: [msg(13)], has_more: false },
  };
  const t = setup({ client: { since: 10 }, http: (c) => c.method === 'GET' && { status: 200, body: pages[c.query.after] } });
  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ seq: 13 });
  ws.push({ type: 'reset', seq: 13 });
  ws.push(msg(14)); // live traffic during the catch-up waits for it
  await t.clock.tick(0);
  assert.deepEqual(t.seqs(), [11, 12, 13, 14]);
  assert.deepEqual(t.calls.map((c) => [c.query.after, c.query.limit]), [['10', '200'], ['12', '200']]);
  assert.deepEqual(t.of('reset'), [{ seq: 13, from: 10 }]);
});

test('reset: far behind (over catchUpLimit) or ahead of the room jumps to the room seq', async () => {
  const t = setup({ client: { since: 10, catchUpLimit: 100 } });
  await t.clock.tick(0);
  t.ws.last().welcome({ seq: 5000 });
  t.ws.last().push({ type: 'reset', seq: 5000 });
  t.ws.last().push(msg(5001));
  await t.clock.tick(0);
  assert.deepEqual(t.seqs(), [5001]);
  assert.equal(t.calls.length, 0);

  const a = setup({ client: { since: 50 } });
  await a.clock.tick(0);
  a.ws.last().welcome({ seq: 3 });
  a.ws.last().push({ type: 'reset', seq: 3 });
  a.ws.last().push(msg(4));
  assert.equal(a.client.lastSeq, 4);
  assert.deepEqual(a.seqs(), [4]);
});
