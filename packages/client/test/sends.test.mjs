import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, msg } from './fakes.mjs';

const ack = (cid, seq, duplicate = false) => ({ type: 'ack', cid, seq, id: 'id' + seq, ts: 't' + seq, duplicate });

test('send resolves on the ack and delivers the own message in order', async () => {
  const t = setup();
  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ seq: 1 });
  const p = t.client.send({ text: 'hi' }, { event: 'chat' });
  const [frame] = ws.published();
  assert.deepEqual(frame, { type: 'publish', cid: p.cid, event: 'chat', data: { text: 'hi' } });
  ws.push(msg(2)); // someone else's message first
  ws.push(ack(p.cid, 3));
  assert.deepEqual(await p, { seq: 3, id: 'id3', ts: 't3', duplicate: false, cid: p.cid });
  const own = t.of('message').at(-1);
  assert.deepEqual(own, { type: 'message', room: 'chat:1', seq: 3, id: 'id3', event: 'chat', data: { text: 'hi' }, from: { id: 'alice', name: 'Alice' }, cid: p.cid, ts: 't3' });
  assert.deepEqual(t.seqs(), [2, 3]);
  assert.equal(t.client.pending, 0);
});

test('every send gets a unique cid, also across clients', async () => {
  const a = setup();
  const b = setup();
  const cids = new Set();
  for (let i = 0; i < 50; i++) {
    for (const c of [a.client, b.client]) {
      const p = c.send(i);
      p.catch(() => {});
      cids.add(p.cid);
    }
  }
  assert.equal(cids.size, 100);
  for (const cid of cids) assert.ok(cid.length >= 1 && cid.length <= 64);
  a.client.close();
  b.client.close();
});

test('offline queue: sends wait, go out after reconnect with the same cid, resolve once', async () => {
  const t = setup({ client: { maxFailures: 100 } });
  await t.clock.tick(0);
  t.ws.last().welcome({ seq: 0 });
  t.ws.last().serverClose(1006);
  const resolved = [];
  const sends = ['a', 'b', 'c'].map((text) => {
    const p = t.client.send({ text });
    p.then((r) => resolved.push([text, r.seq, r.duplicate]));
    return p;
  });
  assert.equal(t.client.pending, 3);

  // Attempt 1: opens, sends all three, gets one ack, then dies before the others are acked.
  await t.next();
  let ws = t.ws.last();
  ws.welcome({ seq: 0 });
  assert.deepEqual(ws.published().map((f) => f.cid), sends.map((p) => p.cid));
  ws.push(ack(sends[0].cid, 1));
  ws.serverClose(1006);
  await t.clock.tick(0);
  assert.deepEqual(resolved, [['a', 1, false]]);

  // Attempt 2: b was committed before the drop (replayed), c was not.
  await t.next();
  ws = t.ws.last();
  assert.equal(ws.params.get('since'), '1');
  ws.welcome({ seq: 2 });
  assert.deepEqual(ws.published().map((f) => f.cid), [sends[1].cid, sends[2].cid], 'same cids again');
  ws.push(msg(2, { from: { id: 'alice', name: 'Alice' }, cid: sends[1].cid, data: { text: 'b' } }));
  ws.push({ type: 'synced', seq: 2 });
  ws.push(ack(sends[1].cid, 2, true)); // the relay deduplicated (alice, cid)
  ws.push(ack(sends[2].cid, 3));
  ws.push(ack(sends[2].cid, 3, true)); // a stray repeat changes nothing
  await t.clock.tick(0);
  assert.deepEqual(resolved, [['a', 1, false], ['b', 2, true], ['c', 3, false]]);
  assert.deepEqual(t.seqs(), [1, 2, 3]);
  assert.deepEqual(t.of('message').map((m) => m.data.text), ['a', 'b', 'c']);
  assert.equal(t.client.pending, 0);
});

test('bad_request and forbidden errors reject that send; rate_limited retries it with the same cid', async () => {
  const t = setup();
  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ seq: 0 });
  const bad = t.client.send({ x: 1 }, { event: 'no spaces' });
  const limited = t.client.send({ text: 'later' });
  ws.push({ type: 'error', code: 'bad_request', message: 'event must be ...', cid: bad.cid });
  await assert.rejects(bad, (e) => e.code === 'bad_request' && e.cid === bad.cid);
  ws.push({ type: 'error', code: 'rate_limited', message: 'slow down', cid: limited.cid });
  assert.equal(ws.published().length, 2);
  await t.clock.tick(2000);
  const again = ws.published().filter((f) => f.cid === limited.cid);
  assert.equal(again.length, 2, 'retried once, same cid');
  ws.push(ack(limited.cid, 1));
  assert.equal((await limited).seq, 1);
  const denied = t.client.send(1);
  ws.push({ type: 'error', code: 'forbidden', message: 'no', cid: denied.cid });
  await assert.rejects(denied, { code: 'forbidden' });
  // An error without a (known) cid is an error event.
  ws.push({ type: 'error', code: 'bad_request', message: 'unknown frame type' });
  assert.deepEqual(t.of('error').map((e) => e.code), ['bad_request']);
});

test('a send over the frame limit is refused locally; close() rejects what is pending', async () => {
  const t = setup({ client: { maxFrameBytes: 1024 } });
  await assert.rejects(t.client.send('x'.repeat(2000)), { code: 'too_large' });
  const p = t.client.send('queued');
  t.client.close();
  await assert.rejects(p, { code: 'closed' });
  await assert.rejects(t.client.send('after'), { code: 'closed' });
  assert.equal(t.client.status, 'closed');
});
