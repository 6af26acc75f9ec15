// once, for await, loadOlder and the storage option (resume across reloads).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { historyOf, setup, msg } from './fakes.mjs';

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => msg(from + i));
/** An unsigned JWT whose payload is `claims` (the client only reads it). */
const jwt = (claims) => 'h.' + Buffer.from(JSON.stringify(claims)).toString('base64url') + '.s';

test('once calls its listener for the next event only; its promise form resolves, or rejects when the client closes', async () => {
  const t = setup();
  await t.clock.tick(0);
  const got = [];
  t.client.once('message', (m) => got.push(m.seq));
  const next = t.client.once('message');
  const welcome = t.client.once('welcome');
  t.ws.last().welcome({ seq: 0 });
  assert.equal((await welcome).seq, 0);
  t.ws.last().push(msg(1));
  t.ws.last().push(msg(2));
  assert.deepEqual(got, [1]);
  assert.equal((await next).seq, 1);
  const never = t.client.once('typing');
  t.client.close();
  await assert.rejects(never, { code: 'closed' });
  await assert.rejects(t.client.once('message'), { code: 'closed' });
  assert.equal(await t.client.once('status').catch((e) => e.code), 'closed', 'nothing more comes: rejected too');
});

test('for await yields the messages delivered from then on, in order, and ends when the client closes', async () => {
  const t = setup();
  await t.clock.tick(0);
  t.ws.last().welcome({ seq: 0 });
  const seen = [];
  const loop = (async () => {
    for await (const m of t.client) seen.push(m.seq);
    return 'ended';
  })();
  t.ws.last().push([msg(1), msg(2)]);
  await t.clock.tick(0);
  t.ws.last().push(msg(3));
  await t.clock.tick(0);
  t.client.close();
  assert.equal(await loop, 'ended');
  assert.deepEqual(seen, [1, 2, 3]);
});

test('for await: leaving the loop unsubscribes; a loop that falls iteratorBuffer behind gets what waited, then overflow', async () => {
  const t = setup({ client: { iteratorBuffer: 2 } });
  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ seq: 0 });
  const it = t.client[Symbol.asyncIterator]();
  ws.push([msg(1), msg(2), msg(3), msg(4)]); // nobody reads: 1 and 2 wait, 3 overflows
  assert.deepEqual((await it.next()).value.seq, 1);
  assert.deepEqual((await it.next()).value.seq, 2);
  await assert.rejects(it.next(), (e) => e.code === 'overflow' && e.seq === 2);
  assert.equal((await it.next()).done, true, 'the loop is over');
  assert.deepEqual(t.seqs(), [1, 2, 3, 4], 'the client itself delivered everything');

  const loop = (async () => {
    for await (const m of t.client) return m.seq; // leaving the loop calls return()
  })();
  await t.clock.tick(0);
  ws.push(msg(5));
  assert.equal(await loop, 5);
  const loops = t.client[Symbol.asyncIterator]();
  const first = loops.next();
  ws.push(msg(6));
  assert.equal((await first).value.seq, 6);
  await loops.return();
  ws.push(msg(7));
  assert.equal((await loops.next()).done, true, 'nothing after return()');
});

test('loadOlder pages through before= from the first welcome: older pages and live messages make one run without duplicates', async () => {
  const all = range(1, 12);
  const t = setup({ http: historyOf(all) });
  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ seq: 10 });
  ws.push(msg(11));
  const page = await t.client.loadOlder(4);
  assert.deepEqual(t.calls.at(-1).query, { before: '11', limit: '4' });
  assert.deepEqual(page.messages.map((m) => m.seq), [7, 8, 9, 10]);
  assert.equal(page.has_more, true);
  ws.push(msg(12));
  const older = await t.client.loadOlder(4);
  assert.deepEqual(older.messages.map((m) => m.seq), [3, 4, 5, 6]);
  const oldest = await t.client.loadOlder(4);
  assert.deepEqual(oldest.messages.map((m) => m.seq), [1, 2]);
  assert.equal(oldest.has_more, false);
  assert.deepEqual(await t.client.loadOlder(4), { messages: [], has_more: false }, 'nothing before seq 1: no request');
  const shown = [...oldest.messages, ...older.messages, ...page.messages].map((m) => m.seq).concat(t.seqs());
  assert.deepEqual(shown, range(1, 12).map((m) => m.seq));
});

test('loadOlder before any welcome learns the newest seq over HTTP; the socket, opened without since, then fetches what came in between', async () => {
  const all = range(1, 5);
  const t = setup({ http: historyOf(all) });
  const page = await t.client.loadOlder(3);
  assert.deepEqual(page.messages.map((m) => m.seq), [3, 4, 5]);
  assert.equal(t.ws.last().params.has('since'), false, 'the socket was opened before');
  all.push(msg(6), msg(7)); // published meanwhile
  t.ws.last().welcome({ seq: 7 });
  await t.clock.tick(0);
  assert.deepEqual(t.seqs(), [6, 7]);
  assert.deepEqual(t.calls.at(-1).query, { after: '5', limit: '200' });
});

test('storage: the last delivered seq is kept per room and user; a new client (a reload) resumes after it, replay before live, and loadOlder fills in before it', async () => {
  const store = new Map();
  const sessionStorage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  const token = jwt({ sub: 'alice' });
  const first = setup({ client: { token, storage: sessionStorage } });
  await first.clock.tick(0);
  assert.equal(first.ws.last().params.has('since'), false, 'nothing stored: live only');
  first.ws.last().welcome({ seq: 3 });
  const key = 'edge-relay:http://relay.test:chat:1:alice';
  assert.equal(store.get(key), '3');
  first.ws.last().push([msg(4), msg(5)]);
  assert.equal(store.get(key), '5');
  first.client.close();

  const all = range(1, 8);
  const reload = setup({ client: { token, storage: sessionStorage, since: 0 }, http: historyOf(all) });
  await reload.clock.tick(0);
  const ws = reload.ws.last();
  assert.equal(ws.params.get('since'), '5', 'the stored seq wins over since');
  ws.welcome({ seq: 7 });
  ws.push([msg(6), msg(7), { type: 'synced', seq: 7 }, msg(7), msg(8)]);
  assert.deepEqual(reload.seqs(), [6, 7, 8], 'in order, the replayed 7 once');
  const older = await reload.client.loadOlder(50);
  assert.deepEqual(older.messages.map((m) => m.seq), [1, 2, 3, 4, 5]);
  assert.equal(store.get(key), '8');

  const bob = setup({ client: { token: jwt({ sub: 'bob' }), storage: sessionStorage } });
  await bob.clock.tick(0);
  assert.equal(bob.ws.last().params.has('since'), false, 'another user does not get alice\'s position');
});

test('storage: an adapter {get, set} works too; a storage that throws or holds garbage is ignored', async () => {
  const kept = {};
  const adapter = { get: (k) => kept[k], set: (k, v) => (kept[k] = v) };
  const token = jwt({ sub: 'alice' });
  const t = setup({ client: { token, storage: adapter } });
  await t.clock.tick(0);
  t.ws.last().welcome({ seq: 41 });
  assert.deepEqual(kept, { 'edge-relay:http://relay.test:chat:1:alice': '41' });
  const again = setup({ client: { token, storage: adapter } });
  await again.clock.tick(0);
  assert.equal(again.ws.last().params.get('since'), '41');

  const denied = { getItem: () => { throw new Error('SecurityError'); }, setItem: () => { throw new Error('QuotaExceededError'); } };
  const d = setup({ client: { token, storage: denied } });
  await d.clock.tick(0);
  assert.equal(d.ws.last().params.has('since'), false);
  d.ws.last().welcome({ seq: 2 });
  d.ws.last().push(msg(3));
  assert.deepEqual(d.seqs(), [3]);

  const garbage = setup({ client: { token, storage: { get: () => 'x1', set: () => {} }, since: 4 } });
  await garbage.clock.tick(0);
  assert.equal(garbage.ws.last().params.get('since'), '4');
  const opaque = setup({ client: { token: 'not-a-jwt', storage: adapter } });
  await opaque.clock.tick(0);
  assert.equal(opaque.ws.last().params.has('since'), false, 'no sub: no key, nothing read');
});
