import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, msg } from './fakes.mjs';

function relayHttp(state) {
  return (c) => {
    if (state.offline) return { throws: true };
    if (c.method === 'GET') {
      const after = Number(c.query.after ?? 0);
      const rows = state.messages.filter((m) => m.seq > after);
      const limit = Number(c.query.limit ?? 50);
      if (c.query.after == null) return { status: 200, body: { messages: rows.slice(-limit), has_more: rows.length > limit } };
      return { status: 200, body: { messages: rows.slice(0, limit), has_more: rows.length > limit } };
    }
    if (c.method === 'POST') {
      if (state.limited) {
        state.limited--;
        return { status: 429, headers: { 'retry-after': '2' }, body: { error: { code: 'rate_limited', message: 'slow down' } } };
      }
      const old = state.messages.find((m) => m.cid === c.body.cid);
      if (old) return { status: 200, body: { seq: old.seq, id: old.id, ts: old.ts, duplicate: true } };
      const m = msg(state.messages.length + 1, { from: { id: 'alice', name: 'Alice' }, cid: c.body.cid, data: c.body.data });
      state.messages.push(m);
      return { status: 200, body: { seq: m.seq, id: m.id, ts: m.ts, duplicate: false } };
    }
  };
}

test('after 3 failed opens it polls over HTTP and sends with POST; switches back when a socket opens', async () => {
  const state = { messages: [msg(1), msg(2)] };
  const t = setup({ http: relayHttp(state), client: { since: 1, pollInterval: 3000 } });
  await t.clock.tick(0);
  t.ws.last().fail();
  await t.next();
  t.ws.last().fail();
  await t.next();
  assert.equal(t.client.status, 'reconnecting');
  assert.equal(t.calls.length, 0);
  t.ws.last().fail();
  await t.clock.tick(0);
  assert.equal(t.client.status, 'polling');
  assert.deepEqual(t.calls[0].query, { after: '1', limit: '200' });
  assert.equal(t.calls[0].auth, 'Bearer T1');
  assert.deepEqual(t.seqs(), [2]);

  // Polling picks up new messages every pollInterval.
  state.messages.push(msg(3));
  await t.clock.tick(3000);
  assert.deepEqual(t.seqs(), [2, 3]);

  // Sends go over HTTP with a cid; the own message arrives with the next poll.
  const p = t.client.send({ text: 'via http' });
  await t.clock.tick(0);
  const post = t.calls.find((c) => c.method === 'POST');
  assert.deepEqual(post.body, { cid: p.cid, data: { text: 'via http' } });
  assert.equal(post.path, '/v1/rooms/chat:1/messages');
  assert.deepEqual(await p, { seq: 4, id: 'id4', ts: '2026-11-21T09:00:00.000Z', duplicate: false, cid: p.cid });
  await t.clock.tick(100);
  assert.deepEqual(t.seqs(), [2, 3, 4]);

  // The socket keeps being retried in the background; when one opens, polling stops.
  const sockets = t.ws.sockets.length;
  await t.next();
  assert.ok(t.ws.sockets.length > sockets, 'still retrying the socket');
  assert.equal(t.client.status, 'polling');
  const ws = t.ws.last();
  assert.equal(ws.params.get('since'), '4');
  ws.welcome({ seq: 4 });
  ws.push({ type: 'synced', seq: 4 });
  assert.equal(t.client.status, 'open');
  const gets = t.calls.length;
  await t.clock.tick(30000);
  assert.equal(t.calls.length, gets, 'no more polling');
  assert.deepEqual(t.statuses(), ['reconnecting', 'polling', 'open']);
  ws.push(msg(5));
  assert.deepEqual(t.seqs(), [2, 3, 4, 5]);
});

test('polling: a send queued while offline is retried over HTTP with the same cid; 429 waits Retry-After', async () => {
  const state = { messages: [], offline: true, limited: 1 };
  const t = setup({ http: relayHttp(state), client: { maxFailures: 1, since: 0 } });
  await t.clock.tick(0);
  t.ws.last().fail();
  await t.clock.tick(0);
  assert.equal(t.client.status, 'polling');
  const p = t.client.send('hello');
  let settled = 0;
  p.then(() => settled++);
  await t.clock.tick(3000);
  state.offline = false;
  await t.clock.tick(3000); // poll: POST answers 429 Retry-After: 2
  const posts = () => t.calls.filter((c) => c.method === 'POST');
  assert.equal(posts().at(-1).body.cid, p.cid);
  assert.equal(state.messages.length, 0);
  await t.clock.tick(2000);
  assert.equal(state.messages.length, 1);
  assert.ok(posts().every((c) => c.body.cid === p.cid), 'every attempt used the same cid');
  assert.equal((await p).seq, 1);
  await t.clock.tick(10000);
  assert.equal(settled, 1);
  assert.deepEqual(t.seqs(), [1]);
  assert.equal(state.messages.length, 1);
});

test('polling from a fresh start begins at the room\'s newest seq', async () => {
  const state = { messages: [msg(1), msg(2), msg(3)] };
  const t = setup({ http: relayHttp(state), client: { maxFailures: 1 } });
  await t.clock.tick(0);
  t.ws.last().fail();
  await t.clock.tick(0);
  assert.equal(t.client.lastSeq, 3);
  assert.deepEqual(t.seqs(), []);
  state.messages.push(msg(4));
  await t.clock.tick(3000);
  assert.deepEqual(t.seqs(), [4]);
});

test('HTTP 403 while polling stops the client', async () => {
  const t = setup({ http: () => ({ status: 403, body: { error: { code: 'forbidden', message: 'room not granted' } } }), client: { maxFailures: 1 } });
  await t.clock.tick(0);
  t.ws.last().fail();
  await t.clock.tick(0);
  assert.equal(t.client.status, 'closed');
  assert.deepEqual(t.of('error').map((e) => [e.code, e.status]), [['forbidden', 403]]);
});
