import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, msg } from './fakes.mjs';

test('batched delivery is asked for by default (batch=1); batch: false leaves it out', async () => {
  const t = setup();
  await t.clock.tick(0);
  assert.equal(t.ws.last().params.get('batch'), '1');
  t.ws.last().welcome({ seq: 0 });
  t.ws.last().serverClose(1006);
  await t.next();
  assert.equal(t.ws.last().params.get('batch'), '1', 'on reconnects too');
  assert.equal(t.ws.last().params.get('since'), '0');

  const f = setup({ client: { batch: false } });
  await f.clock.tick(0);
  assert.equal(f.ws.last().params.has('batch'), false);
});

test('an array of two messages delivers both, in order', async () => {
  const t = setup();
  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ seq: 0 });
  ws.push([msg(1), msg(2)]);
  assert.deepEqual(t.seqs(), [1, 2]);
  assert.deepEqual(t.of('message').map((m) => m.data.text), ['m1', 'm2']);
  assert.equal(t.client.lastSeq, 2);
  // Out of order inside an array (or repeated across arrays) is still delivered once, in order.
  ws.push([msg(4), msg(3), msg(2)]);
  assert.deepEqual(t.seqs(), [1, 2, 3, 4]);
});

test('an array mixing a message and a presence frame handles both', async () => {
  const t = setup();
  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ seq: 0 });
  ws.push([msg(1), { type: 'presence', event: 'join', user: { id: 'carol' } }, { type: 'typing', user: { id: 'carol' }, active: true }]);
  assert.deepEqual(t.seqs(), [1]);
  assert.deepEqual(t.client.presence.map((u) => u.id), ['alice', 'carol']);
  assert.deepEqual(t.of('presence').map((p) => p.event), ['sync', 'join']);
  assert.deepEqual(t.of('typing').map((f) => f.user.id), ['carol']);
  // Order within the array is kept: the message event came before the join.
  const order = t.events.filter(([type]) => type === 'message' || type === 'presence').map(([type, v]) => type + ':' + (v.seq ?? v.event));
  assert.deepEqual(order, ['presence:sync', 'message:1', 'presence:join']);
});

test('acks inside an array settle their sends; plain objects and junk elements', async () => {
  const t = setup();
  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ seq: 0 });
  const a = t.client.send('a');
  const b = t.client.send('b');
  const ack = (cid, seq) => ({ type: 'ack', cid, seq, id: 'id' + seq, ts: 't' + seq, duplicate: false });
  ws.push([ack(a.cid, 1), msg(2), null, 7, 'x', [msg(9)], ack(b.cid, 3)]);
  assert.equal((await a).seq, 1);
  assert.equal((await b).seq, 3);
  assert.deepEqual(t.seqs(), [1, 2, 3], 'non-object elements (and nested arrays) are ignored');
  ws.push(msg(4)); // a single frame still comes as a plain object
  ws.push({ type: 'synced', seq: 4 });
  ws.push([]);
  ws.push(null);
  assert.deepEqual(t.seqs(), [1, 2, 3, 4]);
  assert.equal(t.of('synced').length, 1);
  assert.equal(t.client.status, 'open');
});

test('a listener that closes the client midway stops the rest of the array', async () => {
  const t = setup();
  await t.clock.tick(0);
  const ws = t.ws.last();
  ws.welcome({ seq: 0 });
  t.client.on('message', (m) => m.seq === 2 && t.client.close());
  ws.push([msg(1), msg(2), msg(3), { type: 'presence', event: 'join', user: { id: 'carol' } }]);
  assert.deepEqual(t.seqs(), [1, 2]);
  assert.deepEqual(t.of('presence').map((p) => p.event), ['sync']);
  assert.equal(t.client.status, 'closed');
});
